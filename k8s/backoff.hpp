#pragma once
// Jittered exponential backoff. Pure: no clock, no I/O; randomness is injected so tests are exact.
//
// next() returns initial * factor^n (capped at max), spread by "equal jitter" on the upper
// side: delay * (1 + jitter * r) with r in [0,1), capped at max again. Like client-go's
// wait.Backoff with Jitter (the delay never drops below the deterministic step, so a storm of
// clients that failed together spreads out without anyone retrying sooner than planned).
//
// Thread affinity: none (a value type); one owner at a time.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <random>

namespace canaryd::k8s {

struct backoff_policy {
  std::chrono::milliseconds initial{200};
  std::chrono::milliseconds max{30'000};
  double factor = 2.0;
  double jitter = 0.2;  // 0 disables jitter
};

class backoff {
 public:
  // `random01` returns a uniform value in [0,1); the default draws from a seeded PRNG.
  explicit backoff(backoff_policy p = {}, std::function<double()> random01 = {})
      : policy_(p), random01_(std::move(random01)) {
    if (!random01_) {
      random01_ = [rng = std::minstd_rand(std::random_device{}())]() mutable {
        return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
      };
    }
  }

  // The delay before the next attempt; each call grows the step.
  std::chrono::milliseconds next() {
    double base = static_cast<double>(policy_.initial.count());
    const double cap = static_cast<double>(policy_.max.count());
    for (int i = 0; i < attempts_ && base < cap; ++i) base *= policy_.factor;
    base = std::min(base, cap);
    ++attempts_;
    double d = base;
    if (policy_.jitter > 0) {
      double r = std::clamp(random01_(), 0.0, 1.0);
      d = base * (1.0 + policy_.jitter * r);
    }
    d = std::min(d, cap);
    return std::chrono::milliseconds(static_cast<std::int64_t>(d));
  }

  // Back to the initial step (after a success).
  void reset() noexcept { attempts_ = 0; }
  int attempts() const noexcept { return attempts_; }
  const backoff_policy& policy() const noexcept { return policy_; }

 private:
  backoff_policy policy_;
  std::function<double()> random01_;
  int attempts_ = 0;
};

}  // namespace canaryd::k8s
