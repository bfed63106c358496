// Leader election decisions over a Lease, as client-go's, and the write fence.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include "core/lease.hpp"

using namespace canaryd::core;
using namespace std::chrono_literals;
namespace json = boost::json;

TEST_CASE("who may take the Lease: nobody's or expired leases are taken, a live one is waited for") {
  const wall_time now = *parse_rfc3339("2026-11-28T10:00:00Z");
  CHECK(next_lease_action(std::nullopt, "a", now) == lease_action::create);
  lease_record r;
  r.holder = "b";
  r.duration_seconds = 60;
  r.renew_time = now - 30s;
  CHECK(next_lease_action(r, "a", now) == lease_action::wait);
  CHECK(next_lease_action(r, "b", now) == lease_action::renew);
  r.renew_time = now - 61s;
  CHECK(next_lease_action(r, "a", now) == lease_action::acquire);
  r.renew_time.reset();
  CHECK(next_lease_action(r, "a", now) == lease_action::acquire);
  r.holder.clear();
  r.renew_time = now;
  CHECK(next_lease_action(r, "a", now) == lease_action::acquire);
}

TEST_CASE("the Lease body: holder, duration, micro-second times, transitions counted on a takeover") {
  const wall_time now = *parse_rfc3339("2026-11-28T10:00:00.250Z");
  lease_timing t;
  auto created = json::parse(lease_body("flagger-leader-election", "ns", std::nullopt, lease_action::create, "a", now, t));
  CHECK(created.at_pointer("/metadata/name") == "flagger-leader-election");
  CHECK(created.at_pointer("/spec/holderIdentity") == "a");
  CHECK(created.at_pointer("/spec/leaseDurationSeconds") == 60);
  CHECK(created.at_pointer("/spec/renewTime") == "2026-11-28T10:00:00.250000Z");
  CHECK(created.at_pointer("/spec/leaseTransitions") == 0);

  auto rec = read_lease(json::serialize(created));
  REQUIRE(rec);
  rec->resource_version = "7";
  auto taken = json::parse(lease_body("flagger-leader-election", "ns", rec, lease_action::acquire, "b", now + 70s, t));
  CHECK(taken.at_pointer("/metadata/resourceVersion") == "7");
  CHECK(taken.at_pointer("/spec/holderIdentity") == "b");
  CHECK(taken.at_pointer("/spec/leaseTransitions") == 1);
  auto renewed = json::parse(lease_body("flagger-leader-election", "ns", rec, lease_action::renew, "a", now + 5s, t));
  CHECK(renewed.at_pointer("/spec/acquireTime") == "2026-11-28T10:00:00.250000Z");  // kept
  CHECK(renewed.at_pointer("/spec/renewTime") == "2026-11-28T10:00:05.250000Z");
}

TEST_CASE("a leader may write only within the renew deadline of its last renewal, which ends before the lease") {
  lease_timing t;
  const auto renewed = std::chrono::steady_clock::time_point{} + 100s;
  CHECK(may_write(renewed, renewed + 14s, t));
  CHECK_FALSE(may_write(renewed, renewed + 15s, t));
  CHECK(t.renew_deadline < t.lease_duration);
}
