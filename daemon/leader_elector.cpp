#include "daemon/leader_elector.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>
#include <unistd.h>

#include <random>

#include "k8s/log.hpp"

namespace canaryd {

namespace asio = boost::asio;

namespace {
const k8s::resource leases{"coordination.k8s.io", "v1", "leases", true};
}

std::string leader_identity() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "canaryd");
  std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}_{:016x}", host, rng());
}

leader_elector::leader_elector(k8s::api_client& client, std::string ns, std::string identity, core::lease_timing timing)
    : client_(client), ns_(std::move(ns)), identity_(std::move(identity)), timing_(timing) {}

bool leader_elector::may_write() const {
  return leading_ && core::may_write(last_renew_, std::chrono::steady_clock::now(), timing_);
}

asio::awaitable<void> leader_elector::run(std::function<void()> on_started, std::function<void()> on_lost) {
  timer_.emplace(co_await asio::this_coro::executor);
  asio::steady_timer& timer = *timer_;
  const std::string where = fmt::format("{}/{}", ns_, leader_lease_name);
  log::info("leader election: trying to acquire the lease", {{"lease", where}, {"identity", identity_}});
  while (!stopped_) {
    // The leader renews from what it last wrote; a standby (or a leader after a conflict) reads.
    std::optional<core::lease_record> current = leading_ ? last_written_ : std::nullopt;
    bool known = leading_ && last_written_.has_value();
    if (!known) {
      auto got = co_await client_.get(leases, ns_, leader_lease_name);
      if (got) {
        current = core::read_lease(got->json());
        known = current.has_value();
      } else if (k8s::is_not_found(got.error())) {
        known = true;  // no Lease: create it
      } else {
        log::warn(fmt::format("leader election: cannot read the lease: {}", got.error().what()), {{"lease", where}});
      }
    }
    if (known && !stopped_) {
      const auto now = core::wall_clock::now();
      const core::lease_action action = core::next_lease_action(current, identity_, now);
      if (action == core::lease_action::wait) {
        if (leading_) {
          log::error(fmt::format("leader election lost: the lease is held by {}", current->holder), {{"lease", where}});
          leading_ = false;
          on_lost();
          co_return;
        }
      } else {
        const std::string body = core::lease_body(leader_lease_name, ns_, current, action, identity_, now, timing_);
        k8s::api_result<k8s::object> wrote = k8s::api_error{};
        if (action == core::lease_action::create) {
          wrote = co_await client_.create(leases, ns_, body);
        } else {
          wrote = co_await client_.update(leases, ns_, leader_lease_name, body);
        }
        if (wrote) {
          last_renew_ = std::chrono::steady_clock::now();
          last_written_ = core::read_lease(wrote->json());
          if (!leading_ && !stopped_) {
            leading_ = true;
            log::info("leader election: became the leader", {{"lease", where}, {"identity", identity_}});
            on_started();
          }
        } else {
          last_written_.reset();  // read it again next time (a conflict: someone else wrote)
          if (!k8s::is_conflict(wrote.error()) && !k8s::is_already_exists(wrote.error())) {
            log::warn(fmt::format("leader election: cannot write the lease: {}", wrote.error().what()), {{"lease", where}});
          }
        }
      }
    }
    if (leading_ && !may_write()) {
      log::error("leader election lost: the lease was not renewed within the renew deadline", {{"lease", where}});
      leading_ = false;
      on_lost();
      co_return;
    }
    timer.expires_after(timing_.retry_period);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

}  // namespace canaryd
