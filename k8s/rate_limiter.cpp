#include "k8s/rate_limiter.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "k8s/http_error.hpp"

namespace canaryd::k8s {

token_bucket::token_bucket(double qps, int burst, time_point now) noexcept
    : qps_(qps), burst_(std::max(burst, 1)), tokens_(std::max(burst, 1)), last_(now) {}

void token_bucket::advance(time_point now) noexcept {
  if (now <= last_) return;
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(static_cast<double>(burst_), tokens_ + elapsed * qps_);
  last_ = now;
}

double token_bucket::tokens(time_point now) const noexcept {
  token_bucket copy = *this;
  copy.advance(now);
  return copy.tokens_;
}

token_bucket::duration token_bucket::reserve(time_point now) noexcept {
  duration wait{0};
  if (qps_ > 0) {
    advance(now);
    tokens_ -= 1.0;
    if (tokens_ < 0) {
      wait = std::chrono::duration_cast<duration>(std::chrono::duration<double>(-tokens_ / qps_));
    }
  }
  if (paused_until_ > now) wait = std::max(wait, duration(paused_until_ - now));
  return wait;
}

void token_bucket::cancel_reservation() noexcept {
  if (qps_ > 0) tokens_ = std::min(static_cast<double>(burst_), tokens_ + 1.0);
}

void token_bucket::pause_until(time_point until) noexcept {
  paused_until_ = std::max(paused_until_, until);
}

rate_limiter::rate_limiter(boost::asio::any_io_executor ex, double qps, int burst)
    : ex_(std::move(ex)), bucket_(qps, burst, token_bucket::clock::now()) {}

boost::asio::awaitable<boost::system::error_code> rate_limiter::acquire(token_bucket::time_point deadline) {
  const auto now = token_bucket::clock::now();
  const auto wait = bucket_.reserve(now);
  if (wait <= token_bucket::duration::zero()) co_return boost::system::error_code{};
  if (now + wait > deadline) {
    bucket_.cancel_reservation();
    co_return make_error_code(http::errc::timeout);
  }
  ++throttled_;
  total_wait_ += wait;
  boost::asio::steady_timer timer(ex_, wait);
  auto [ec] = co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
  co_return ec;
}

void rate_limiter::pause_for(std::chrono::milliseconds retry_after) noexcept {
  bucket_.pause_until(token_bucket::clock::now() + retry_after);
}

}  // namespace canaryd::k8s
