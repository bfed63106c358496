#pragma once
// The provider-neutral half of kubesim's traffic model: what a provider's routing objects decide
// for one class of simulated request at one entry point (a Service its clients call, or a
// Gateway they enter through). A provider is a reader of its routing objects that turns a
// request into a routing_decision; the planner (traffic_model.cpp) resolves the decision's
// backends to ready pods and workloads, and the counters (metrics.hpp) count what reaches them.
// So a new provider adds a reader and, where it has its own, metric families, not a new
// traffic engine.
//
// Pure data: no JSON ownership (subset labels point into the objects of the plan's snapshot).
#include <boost/json/object.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace kubesim::world {

// A share of the requests sent to a backend Service (and, optionally, only to those of its ready
// pods that carry `subset` labels).
struct backend_share {
  double share = 0;  // of the flow's rate, 0..1
  std::string service_namespace;
  std::string service;
  const boost::json::object* subset = nullptr;  // pod labels narrowing the Service's ready pods
  bool mirrored = false;                        // a copy: its response is discarded
  std::string path;                             // the path the backend sees (after rewrites); empty: unchanged
  // Cookies the response sets on the client (`name=value`, from a Set-Cookie response header
  // with a positive or absent Max-Age) and the names it deletes (Max-Age <= 0).
  std::vector<std::string> set_cookies;
  std::vector<std::string> delete_cookies;
  // How the proxy answers when the Service does not exist / has no ready pod (Envoy: Istio
  // answers 503 for both; Gateway API asks 500 for an invalid backendRef, 503 for no endpoints).
  int no_service_code = 503;
  int no_endpoints_code = 503;
  // The Envoy cluster that carries this share ("<ns>/<revision>" for Knative's gateway), counted
  // in envoy_cluster_upstream_rq*; empty: no Envoy series.
  std::string envoy_cluster;
};

// A share of the requests the proxy answers itself (no route 404, redirect 30x, direct response,
// invalid backend 500, fault abort ...).
struct answered_share {
  double share = 0;
  int code = 0;
};

struct routing_decision {
  std::string router;  // the routing object that decided, "HTTPRoute test/podinfo"; empty for none
  std::vector<backend_share> backends;
  std::vector<answered_share> answered;
  std::vector<std::string> problems;  // one sentence each, logged by the emulator
};

// Reads a Set-Cookie header value into the cookie it sets ("name=value") or, with Max-Age <= 0, the
// one it deletes ("name=value" too; only the name counts). Ignores values without "name=".
void read_set_cookie(std::string_view value, std::vector<std::string>& set, std::vector<std::string>& deleted);

// A client's Cookie header ("a=1; b=2") after a response that sets `set` and deletes `deleted`:
// a set cookie replaces the one of the same name in place, or is appended; a deleted one goes.
std::string apply_cookies(std::string_view cookie_header, const std::vector<std::string>& set,
                          const std::vector<std::string>& deleted);

}  // namespace kubesim::world
