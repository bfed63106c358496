#pragma once
// The pure half of the Kubernetes Service router (Flagger's KubernetesDefaultRouter,
// flagger-behaviour.md §5): the apex `<svc>`, `<svc>-primary` and `<svc>-canary` ClusterIP
// Services built from the Canary and its target, and the write (if any) that brings an existing
// Service to them. mesh/service_router.cpp reads the inputs from the caches and sends the writes.
//
// Flagger's reconcileService, kept:
//   - a missing Service is created with the Canary's controller ownerReference;
//   - an existing one gets ports and selector replaced when they differ (ports compared as a set
//     ordered by port, nodePorts of same-named ports kept), everything else of the object kept
//     (clusterIP, type, ...): a user's apex Service is taken over, not recreated;
//   - labels and annotations are replaced only on Services this Canary owns (controller ref);
//   - annotations always carry filterMetadata's `kustomize.toolkit.fluxcd.io/reconcile` and
//     `helm.toolkit.fluxcd.io/driftDetection` (`disabled`).
// Differences: extra ports from portDiscovery are ordered by name (Flagger ranges over a Go map,
// so its order is random; ports are compared as a set either way), and the update is sent only
// when something differs, so an idle reconcile writes nothing.
//
// Thread affinity: none (pure). Errors: result values with Flagger's messages; bad JSON is an
// error, never a crash.
#include <boost/system/result.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/canary.hpp"

namespace canaryd::core {

template <class T>
using service_result = boost::system::result<T, std::string>;

// What Flagger's GetMetadata returns for a Deployment or DaemonSet target: the selector label
// (the first of -selector-labels in spec.selector.matchLabels), its value, and with
// service.portDiscovery the container ports to expose next to the main one.
struct target_metadata {
  std::string label;
  std::string label_value;
  std::vector<std::pair<std::string, int>> ports;  // name -> containerPort, sorted by name
};

// `target_json` is the target Deployment/DaemonSet (kind taken from canary.spec.targetRef.kind,
// lowercased in messages, as Flagger's). Errors: `deployment <name>.<ns> spec.selector.matchLabels
// must contain one of [app name app.kubernetes.io/name]`, or bad JSON.
service_result<target_metadata> read_target_metadata(const canary& c, std::string_view target_json,
                                                     const std::vector<std::string>& selector_labels);

// Flagger's getPorts: every container port of the pod template except the main one (targetPort
// by number or name, or service.port when targetPort is unset) and except the containers named
// istio-proxy and envoy (flagger-behaviour.md §2.1); an unnamed port is named `tcp-<container>-<index>`.
// `template_spec_json` is spec.template.spec.
std::vector<std::pair<std::string, int>> discover_ports(const canary& c, std::string_view template_spec_json);

struct service_port {
  std::string name;
  std::string protocol = "TCP";
  int port = 0;
  int_or_string target_port;
  std::string app_protocol;  // "" = unset
  int node_port = 0;         // 0 = unset
  friend bool operator==(const service_port& a, const service_port& b) {
    return a.name == b.name && a.protocol == b.protocol && a.port == b.port && a.app_protocol == b.app_protocol &&
           a.node_port == b.node_port && a.target_port.is_string == b.target_port.is_string &&
           (a.target_port.is_string ? a.target_port.string_value == b.target_port.string_value
                                    : a.target_port.int_value == b.target_port.int_value);
  }
};

struct desired_service {
  std::string name;
  std::string namespace_;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::map<std::string, std::string> selector;
  std::vector<service_port> ports;
  bool headless = false;              // clusterIP None (creation only: clusterIP is immutable)
  std::string traffic_distribution;   // "" = unset
  // Label/annotation keys (service.unmanagedMetadata) whose current values are kept on update.
  std::vector<std::string> unmanaged_labels;
  std::vector<std::string> unmanaged_annotations;
};

// filterMetadata: the annotations that keep Flux and Helm from reverting what canaryd manages
// (`kustomize.toolkit.fluxcd.io/reconcile` and `helm.toolkit.fluxcd.io/driftDetection`: `disabled`),
// added to every object a router generates.
void filter_metadata(std::map<std::string, std::string>& annotations);

enum class service_role {
  apex,     // <svc>: selects <value>-primary, metadata service.apex
  primary,  // <svc>-primary: selects <value>-primary, metadata service.primary
  canary,   // <svc>-canary: selects <value>, metadata service.canary
  restore,  // <svc> on finalize: selects <value> (the target's own pods), no custom metadata
};
std::string_view to_string(service_role r);

// The Service Flagger's reconcileService wants for `role`.
desired_service build_service(const canary& c, const target_metadata& t, service_role role);

struct service_set {
  desired_service apex;
  desired_service primary;
  desired_service canary;
};
service_set build_services(const canary& c, const target_metadata& t);

// The Service to POST: the desired object with the Canary's controller ownerReference.
std::string service_create_body(const canary& c, const desired_service& s);

// The existing Service (`existing_json`, as the API server returns it) brought to `s`, for a PUT
// (it keeps metadata.resourceVersion, clusterIP and every field Flagger does not manage), or
// nullopt when nothing differs. Errors: bad JSON.
service_result<std::optional<std::string>> service_update_body(const canary& c, const desired_service& s,
                                                               std::string_view existing_json);

// Whether `service_json` has a controller ownerReference of kind Canary: (has one, named `canary_name`).
std::pair<bool, bool> owned_by_canary(std::string_view service_json, std::string_view canary_name);

// Flagger's kubeRouter.Finalize for the apex Service `existing_json`: nothing when a Canary owns
// it (the garbage collector removes it with the Canary); otherwise its selector goes back to the
// one in kubectl's last-applied-configuration annotation when there is one, else to
// {<label>: <value>} with Flagger's ports. Returns the PUT body, or nullopt when nothing differs.
// Errors: bad JSON, or an unparsable last-applied annotation (Flagger's message).
service_result<std::optional<std::string>> apex_finalize_body(const canary& c, const target_metadata& t,
                                                              std::string_view existing_json);

}  // namespace canaryd::core
