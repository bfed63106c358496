#pragma once
// Leader election for canaryd replicas (-enable-leader-election): the Lease
// `flagger-leader-election` in -leader-election-namespace, decided by core/lease.hpp.
//
// A standby reads the Lease every retry period and takes it when it is free or expired; the
// leader renews it every retry period. may_write() is the fence: true only while leading and
// within the renew deadline of the last successful renewal, so a leader that stalls stops
// writing before anyone else can hold the lease. Losing the lease (another holder, or no renewal
// within the deadline) calls on_lost once; canaryd then exits 1, as Flagger does.
//
// Thread affinity: the io_context thread. Requests: a GET per retry period while standing by,
// an UPDATE per retry period while leading.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "core/lease.hpp"
#include "k8s/api_client.hpp"

namespace canaryd {

inline constexpr const char* leader_lease_name = "flagger-leader-election";

class leader_elector {
 public:
  leader_elector(k8s::api_client& client, std::string ns, std::string identity, core::lease_timing timing);

  // Runs until stop() or lost leadership. on_started runs once when this replica becomes the
  // leader; on_lost once when it stops being one.
  boost::asio::awaitable<void> run(std::function<void()> on_started, std::function<void()> on_lost);
  void stop() {
    stopped_ = true;
    if (timer_) timer_->cancel();
  }

  bool leading() const { return leading_; }
  bool may_write() const;
  const std::string& identity() const { return identity_; }

 private:
  k8s::api_client& client_;
  std::string ns_, identity_;
  core::lease_timing timing_;
  bool leading_ = false;
  bool stopped_ = false;
  std::chrono::steady_clock::time_point last_renew_{};
  std::optional<core::lease_record> last_written_;
  std::optional<boost::asio::steady_timer> timer_;
};

// "<hostname>_<random>", as client-go's identity (<hostname>_<uuid>).
std::string leader_identity();

}  // namespace canaryd
