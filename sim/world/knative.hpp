#pragma once
// kubesim's Knative Serving (serving.knative.dev/v1), written from Knative's documentation (the
// Serving API spec and the descriptions of the published CRDs, shared/reference/crds/knative);
// it shares no code with canaryd, whose test oracle it is. Active once the CRDs are created.
//
//  - Admission (Knative's defaulting webhook, traffic only): a spec.traffic entry of a Service or
//    Route written without latestRevision is stored with latestRevision = (revisionName == "").
//  - Service <name> -> Configuration <name> (spec.template copied) and Route <name> (spec.traffic
//    copied; without traffic, 100 % to the latest ready revision), both controlled by the Service.
//  - Configuration -> a Revision per template generation: <configuration>-00001, -00002, ... (the
//    configuration's metadata.generation, five digits), or template.metadata.name when the user
//    names it. A Revision carries the template's labels and annotations plus
//    serving.knative.dev/{configuration,configurationGeneration,service} and its spec.
//  - Revision -> a Deployment <revision>-deployment (replicas 1, pods labelled
//    serving.knative.dev/revision=<revision>, the template's annotations, so kubesim's pod
//    conventions apply: kubesim.dev/ready-after, kubesim.dev/ready: "false", error rate, latency)
//    and a Service <revision>-private selecting its pods (label
//    networking.internal.knative.dev/serviceType: Private: a backend, it sends no requests of its
//    own). Progress deadline: the serving.knative.dev/progress-deadline annotation (a Go
//    duration), default 600 s.
//  - Revision status: Ready True once the Deployment has an available replica; False with reason
//    ProgressDeadlineExceeded when the Deployment says so; Unknown (Deploying) otherwise.
//  - Configuration status: latestCreatedRevisionName, latestReadyRevisionName (the newest ready
//    revision), Ready as the latest created revision's.
//  - Route status: traffic with each target resolved (latestRevision: true -> the configuration's
//    latest ready revision; every entry says latestRevision true or false, as Knative writes it);
//    a target naming a missing revision keeps the previous traffic and Ready False
//    (RevisionMissing); url http://<name>.<namespace>.example.com.
//  - Service status: observedGeneration, latestCreatedRevisionName, latestReadyRevisionName,
//    traffic and url from its Route, conditions Ready, ConfigurationsReady, RoutesReady.
// Simplifications: no scale to zero or autoscaling (one pod per revision), no tags' URLs, no
// queue-proxy sidecar; the Service's spec.template changes take effect at once.
//
// The traffic emulator (traffic_model.cpp) sends a Knative Service's clients through its
// status.traffic split and counts Envoy's envoy_cluster_upstream_rq{envoy_cluster_name=
// "<ns>/<revision>"} families, as the Kourier gateway exports them.
//
// Level-based: every change marks the owning Knative Service dirty; a posted drain reconciles
// each dirty Service's whole chain from the store. Thread affinity: the io_context thread of `ex`.
#include <boost/asio/any_io_executor.hpp>

#include <memory>

#include "sim/api/store.hpp"

namespace kubesim::world {

namespace knative {
inline constexpr std::string_view group = "serving.knative.dev";
inline constexpr std::string_view revision_label = "serving.knative.dev/revision";
inline constexpr std::string_view service_label = "serving.knative.dev/service";
inline constexpr std::string_view configuration_label = "serving.knative.dev/configuration";
inline constexpr std::string_view generation_label = "serving.knative.dev/configurationGeneration";
inline constexpr std::string_view service_type_label = "networking.internal.knative.dev/serviceType";
inline constexpr std::string_view progress_deadline_annotation = "serving.knative.dev/progress-deadline";
}  // namespace knative

class knative_serving {
 public:
  // Subscribes to the store and reconciles the Knative Services that exist. Does not block.
  knative_serving(boost::asio::any_io_executor ex, store& s);
  ~knative_serving();
  knative_serving(const knative_serving&) = delete;
  knative_serving& operator=(const knative_serving&) = delete;

  class impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace kubesim::world
