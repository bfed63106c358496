#pragma once
// Client-side rate limiting of API requests: a token bucket (QPS, burst) like client-go's
// flowcontrol.NewTokenBucketRateLimiter (Flagger's -kubeconfig-qps / -kubeconfig-burst), which
// also pauses every request after a 429 for the server's Retry-After.
//
// token_bucket is pure (time is passed in, so tests step a manual clock); rate_limiter wraps it
// with an Asio timer for coroutines.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>

namespace canaryd::k8s {

class token_bucket {
 public:
  using clock = std::chrono::steady_clock;
  using time_point = clock::time_point;
  using duration = clock::duration;

  // qps <= 0 disables limiting. The bucket starts full (burst tokens). burst < 1 counts as 1.
  token_bucket(double qps, int burst, time_point now) noexcept;

  // Takes one token and returns how long its holder must wait before using it (zero if one was
  // available now). Reservations queue: the n-th caller beyond the burst waits n/qps.
  duration reserve(time_point now) noexcept;
  // Gives back a token whose holder gave up (its deadline would pass before its turn).
  void cancel_reservation() noexcept;
  // Nobody proceeds before `until` (a 429 with Retry-After). Never shortens a pause.
  void pause_until(time_point until) noexcept;

  double qps() const noexcept { return qps_; }
  int burst() const noexcept { return burst_; }
  // Tokens available at `now` (negative while reservations are queued).
  double tokens(time_point now) const noexcept;

 private:
  void advance(time_point now) noexcept;

  double qps_;
  int burst_;
  double tokens_;
  time_point last_;
  time_point paused_until_{};
};

// Thread affinity: the io_context thread of `ex`; no locking.
class rate_limiter {
 public:
  rate_limiter(boost::asio::any_io_executor ex, double qps, int burst);

  // Waits for a token. Returns errc::timeout at once (giving the token back) when the wait
  // would end after `deadline`; operation_aborted if the awaiting coroutine is cancelled.
  boost::asio::awaitable<boost::system::error_code> acquire(token_bucket::time_point deadline);
  // Honours a 429: pauses every acquire for `retry_after` from now.
  void pause_for(std::chrono::milliseconds retry_after) noexcept;

  token_bucket& bucket() noexcept { return bucket_; }
  std::uint64_t throttled() const noexcept { return throttled_; }  // acquires that had to wait
  std::chrono::nanoseconds total_wait() const noexcept { return total_wait_; }

 private:
  boost::asio::any_io_executor ex_;
  token_bucket bucket_;
  std::uint64_t throttled_ = 0;
  std::chrono::nanoseconds total_wait_{0};
};

}  // namespace canaryd::k8s
