#pragma once
// Config tracking for workload targets (Flagger's ConfigTracker, flagger-behaviour.md §3.7):
// which ConfigMaps and Secrets a target's pod template references and their checksums, the
// -primary copies promotion writes, and the flagger-id annotation that makes every promotion
// roll the primary. Shared by the Deployment, DaemonSet and StatefulSet controllers.
//
// Reads: only the caches in `cluster`. Writes: the -primary copies, skipped when the cached copy
// already holds the same data, labels, annotations and ownerReferences.
// Thread affinity: the io_context thread. Errors: values (text_result, action_result).
#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/canary.hpp"
#include "core/primary.hpp"
#include "core/revision.hpp"
#include "daemon/cluster.hpp"
#include "daemon/options.hpp"

namespace canaryd {

// One tracked config: a referenced ConfigMap or Secret that exists and is trackable.
struct tracked_config {
  std::string key;  // configmap/<name>, secret/<name>
  core::config_ref ref;
  k8s::object_ptr object;
  std::string checksum;
};

// spec.template of a workload (Deployment, DaemonSet, StatefulSet) as JSON text; empty when
// absent or not JSON.
std::string pod_template_json(std::string_view workload_json);

class config_tracker {
 public:
  config_tracker(cluster& k, const options& opts);

  // GetTargetConfigs: every referenced config that exists and is trackable; a missing mandatory
  // one is Flagger's get-query error, a missing optional one is skipped. Empty when config
  // tracking is off or the workload has no pod template.
  core::text_result<std::vector<tracked_config>> tracked(const core::canary& c, bool has_template,
                                                         const core::decoded<std::vector<core::config_ref>>& refs) const;
  // The same from the pod template's JSON (pod_template_json(); empty: no template).
  core::text_result<std::vector<tracked_config>> tracked(const core::canary& c, std::string_view template_json) const;

  // The primary_options for these tracked configs (selector labels, include-label prefixes and
  // the keys whose references are renamed to -primary).
  core::primary_options options_for(const std::vector<tracked_config>& configs) const;

  // CreatePrimaryConfigs: writes the -primary copy of every tracked config whose cached copy
  // differs (Update, Create when missing).
  boost::asio::awaitable<action_result> write_primary_copies(const core::canary& c,
                                                             const std::vector<tracked_config>& configs,
                                                             const core::primary_options& o);

  // A random UUID v4: Flagger's flagger-id template annotation, new on every promotion so the
  // primary always rolls.
  std::string new_flagger_id();

  // -primary config writes attempted, ever (a caller compares it before and after a sync to
  // learn whether anything was written).
  std::size_t writes() const noexcept { return writes_; }

 private:
  cluster& k_;
  const options& opts_;
  std::mt19937_64 random_;
  std::size_t writes_ = 0;
};

}  // namespace canaryd
