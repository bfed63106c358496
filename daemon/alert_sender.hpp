#pragma once
// Delivers a canary's alerts (core::send_alert steps) to its AlertProviders, as Flagger's
// Controller.alert: with no spec.analysis.alerts, to the global notifier (-msteams-url, else
// -slack-url; none if neither is set); otherwise to each alert whose severity matches
// (core::alert_matches), through its AlertProvider (providerRef.namespace defaults to the
// canary's) and, with a secretRef, the Secret's `address` (required) and `token` (optional) keys,
// read from the provider's namespace. Providers and Secrets come from the watch caches: an alert
// makes no API request.
//
// Each POST has a 5 s deadline (Flagger's), goes through the provider's HTTP proxy if it has one,
// and runs in its own coroutine: send() returns at once, so a slow or dead notifier never delays
// the rollout. A failure (unresolvable provider, transport error, non-2xx answer) is logged at
// error with the `canary` field, handed to on_failure() (a Warning Event on the Canary) and
// counted in canaryd_alert_failures_total{provider,type}; a
// success is counted in canaryd_alerts_sent_total{provider,type}. `provider` is
// "<name>.<namespace>" of the AlertProvider, or "global" for the -slack-url/-msteams-url notifier.
//
// Proxies (spec.proxy, -slack-proxy-url, -msteams-proxy-url), as Go's http.Transport: an
// http:// hook URL is sent to the proxy in absolute-URI form; an https:// one goes through a
// CONNECT tunnel, with TLS to the hook's host inside it (verified against the system store).
//
// Thread affinity: the io_context thread only; no locks. Lifetime: stop() (or the destructor)
// closes the connections of posts in flight; their coroutines then finish on their own. The
// caches, options and metrics registry must outlive the sender's posts (the app owns all of
// them, stops the sender before its caches, and outlives the drain).
#include <boost/asio/any_io_executor.hpp>

#include <functional>
#include <memory>
#include <string>

#include "core/canary.hpp"
#include "core/rollout.hpp"
#include "daemon/options.hpp"

namespace canaryd {

namespace k8s {
class cache;
}
class metrics_registry;

class alert_sender {
 public:
  alert_sender(boost::asio::any_io_executor ex, k8s::cache& alert_providers, k8s::cache& secrets,
               const options& opts, metrics_registry& metrics);
  ~alert_sender();
  alert_sender(const alert_sender&) = delete;
  alert_sender& operator=(const alert_sender&) = delete;

  // Starts delivering `a` about `c` to every notifier that should get it; returns at once.
  void send(const core::canary& c, const core::send_alert& a);
  // Called with every alert that could not be delivered (unresolvable AlertProvider, missing
  // Secret, transport error, timeout, non-2xx answer) and a one-line message naming the provider
  // (the runner records it as a Warning Event on the Canary). nullptr: none. Must not block.
  void on_failure(std::function<void(const core::canary&, const std::string&)> f);
  // Cancels the posts in flight; later send() calls do nothing.
  void stop();

  struct state;  // internal, shared with the post coroutines

 private:
  std::shared_ptr<state> state_;
};

}  // namespace canaryd
