#pragma once
// What every per-canary task shares: the API client (writes) and the watch caches (reads) of
// the kinds canaryd touches. Reads come from here, never from the API server: an idle canary
// makes no request.
//
// Thread affinity: the io_context thread only. The caches are owned by the app and outlive
// every canary task.
#include <boost/system/result.hpp>

#include <string>

#include "k8s/api_client.hpp"
#include "k8s/cache.hpp"

namespace canaryd {

// The outcome of an action on the cluster: nothing, or a message for a Warning event and a log
// line (Flagger's recordEventWarningf("%v", err)).
using action_result = boost::system::result<void, std::string>;

namespace resources {
inline const k8s::resource canaries{"flagger.app", "v1beta1", "canaries", true};
inline const k8s::resource metric_templates{"flagger.app", "v1beta1", "metrictemplates", true};
inline const k8s::resource alert_providers{"flagger.app", "v1beta1", "alertproviders", true};
inline const k8s::resource deployments{"apps", "v1", "deployments", true};
inline const k8s::resource daemonsets{"apps", "v1", "daemonsets", true};
inline const k8s::resource statefulsets{"apps", "v1", "statefulsets", true};
inline const k8s::resource services{"", "v1", "services", true};
inline const k8s::resource configmaps{"", "v1", "configmaps", true};
inline const k8s::resource secrets{"", "v1", "secrets", true};
inline const k8s::resource events{"", "v1", "events", true};
inline const k8s::resource hpas{"autoscaling", "v2", "horizontalpodautoscalers", true};
}  // namespace resources

struct cluster {
  k8s::api_client& client;
  k8s::cache& canaries;
  k8s::cache& deployments;
  k8s::cache& services;
  k8s::cache& configmaps;
  k8s::cache& secrets;
  k8s::cache& hpas;
  k8s::cache& metric_templates;
  k8s::cache& daemonsets;
  k8s::cache& statefulsets;
  // -kubeconfig-service-mesh: the mesh objects' cluster (mesh/router.hpp's router_context);
  // nullptr: the main cluster.
  k8s::api_client* mesh_client = nullptr;
  bool mesh_owner_references = true;  // false when the mesh cluster is another API server
};

}  // namespace canaryd
