#pragma once
// Leader election over a coordination.k8s.io/v1 Lease, as client-go's leaderelection (which
// Flagger uses: lease `flagger-leader-election`, 60 s lease, 15 s renew deadline, 5 s retry;
// flagger-behaviour.md §9). Pure: the edge reads the Lease, asks what to do, writes the body.
//
// Fencing (the reason this is more than client-go): a leader may write only while
// `may_write(last_renew, now)` holds, i.e. until its last successful renewal plus the renew
// deadline, which is shorter than the lease duration. A leader that was paused (SIGSTOP, a long
// GC, a partition) therefore stops writing before another replica can take the lease over, and
// never writes again: the edge exits as Flagger does (os.Exit(1) on lost leadership).
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "core/wall_time.hpp"

namespace canaryd::core {

struct lease_timing {
  std::chrono::milliseconds lease_duration{60'000};
  std::chrono::milliseconds renew_deadline{15'000};
  std::chrono::milliseconds retry_period{5'000};
};

// What a Lease says (spec), and its resourceVersion for the optimistic update.
struct lease_record {
  std::string holder;  // spec.holderIdentity ("" = free)
  int duration_seconds = 0;
  std::optional<wall_time> acquire_time;
  std::optional<wall_time> renew_time;
  int transitions = 0;
  std::string resource_version;
};

// nullopt when the JSON is not a Lease we can read.
std::optional<lease_record> read_lease(std::string_view json);

enum class lease_action {
  create,     // no Lease: create it, holding it
  acquire,    // free or expired: take it over (update with resourceVersion)
  renew,      // ours: renew it
  wait,       // someone else's and live: look again after retry_period
};

// `current` is nullopt when the Lease does not exist.
lease_action next_lease_action(const std::optional<lease_record>& current, std::string_view me, wall_time now);

// The Lease object to POST or PUT for `action` (create, acquire or renew) by `me` at `now`.
std::string lease_body(std::string_view name, std::string_view ns, const std::optional<lease_record>& current,
                       lease_action action, std::string_view me, wall_time now, const lease_timing& timing);

// Whether a leader whose last successful renewal (or acquisition) was at `last_renew` may still
// write at `now` (monotonic times).
inline bool may_write(std::chrono::steady_clock::time_point last_renew, std::chrono::steady_clock::time_point now,
                      const lease_timing& timing) {
  return now - last_renew < timing.renew_deadline;
}

}  // namespace canaryd::core
