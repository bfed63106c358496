// Exact pacing across restarts (issue 11): every analysis step leaves its time, in milliseconds,
// in status.lastTransitionTime, and a restarted daemon (no memory of its last step) paces from it,
// so a restart neither shortens nor lengthens a wait.
#include <doctest/doctest.h>

#include <algorithm>
#include <variant>

#include "tests/core/rollout_world.hpp"

using namespace canaryd::core;
using canaryd::test::fixture_canary_json;
using canaryd::test::must_decode;
using canaryd::test::world;
using namespace std::chrono_literals;

namespace {

void start_run(world& w) {
  w.tick();
  w.make_primary_ready();
  w.step();
  REQUIRE(w.cd.status.phase == canary_phase::initialized);
  w.image = "quay.io/stefanprodan/podinfo:1.2.1";
  w.step();
  REQUIRE(w.cd.status.phase == canary_phase::progressing);
  w.make_canary_ready();
}

void restart(world& w) { w.restart(fixture_canary_json()); }

std::size_t index_of_first(const decision& d, auto pred) {
  auto it = std::find_if(d.steps.begin(), d.steps.end(), pred);
  return static_cast<std::size_t>(it - d.steps.begin());
}

}  // namespace

TEST_CASE("a step taken at a sub-second instant is written with milliseconds and a restart waits out the rest exactly") {
  world w(must_decode(fixture_canary_json()));
  start_run(w);
  w.now += 1min + 340ms;
  w.tick();
  REQUIRE(w.current_routes().canary == 10);
  const wall_time stepped_at = w.now;
  CHECK(encode_status(w.cd.status).find(R"("lastTransitionTime":")" + format_rfc3339_ms(stepped_at) + R"(")") !=
        std::string::npos);
  CHECK(format_rfc3339_ms(stepped_at).ends_with(".340Z"));

  restart(w);
  REQUIRE(w.cd.status.last_transition_time == stepped_at);
  // One millisecond before the interval is over: no step (with seconds, the restart saw the
  // step at :00 and advanced 340 ms early).
  w.now = stepped_at + 1min - 1ms;
  auto d = w.tick();
  CHECK_FALSE(d.step_taken);
  CHECK(w.current_routes().canary == 10);
  CHECK(d.wake_at == stepped_at + 1min);
  w.now = stepped_at + 1min;
  d = w.tick();
  CHECK(d.step_taken);
  CHECK(w.current_routes().canary == 20);
}

TEST_CASE("a step that only records a warning writes its time before the warning, so a restart does not hurry the next") {
  world w(must_decode(fixture_canary_json()));
  start_run(w);
  w.step();
  REQUIRE(w.current_routes().canary == 10);
  w.target_ready = false;  // the canary's pods are rolling: the next steps only warn
  w.now += 1min + 250ms;
  const int writes = w.status_writes;
  auto d = w.tick();
  REQUIRE(d.step_taken);
  CHECK(w.status_writes == writes + 1);
  CHECK(w.cd.status.last_transition_time == w.now);
  CHECK(w.cd.status.canary_weight == 10);
  const auto write_at = index_of_first(d, [](const rollout_step& s) { return std::holds_alternative<write_status>(s); });
  const auto event_at = index_of_first(d, [](const rollout_step& s) { return std::holds_alternative<record_event>(s); });
  CHECK(write_at < event_at);
  CHECK(event_at < d.steps.size());
  const wall_time warned_at = w.now;

  restart(w);
  w.now = warned_at + 1min - 1ms;
  d = w.tick();
  CHECK_FALSE(d.step_taken);
  CHECK(d.wake_at == warned_at + 1min);
  w.now = warned_at + 1min;
  d = w.tick();
  CHECK(d.step_taken);
}

TEST_CASE("a step that writes the status anyway gets no second write for its time") {
  world w(must_decode(fixture_canary_json()));
  start_run(w);
  const int writes = w.status_writes;
  auto d = w.step();
  REQUIRE(d.step_taken);
  CHECK(w.status_writes == writes + 1);
  CHECK(w.cd.status.last_transition_time == w.now);
}

TEST_CASE("a wake before the interval is over writes nothing") {
  world w(must_decode(fixture_canary_json()));
  start_run(w);
  w.step();
  const int writes = w.status_writes;
  w.now += 30s;
  auto d = w.tick();
  CHECK_FALSE(d.step_taken);
  CHECK(w.status_writes == writes);
}
