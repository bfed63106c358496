#pragma once
// Revision identity of a canary's target (flagger-behaviour.md §2.1 lastAppliedSpec, §3.7).
//
// A revision is the pair (hash of the target's pod template, checksums of the ConfigMaps and
// Secrets it references). Flagger hashes a Go struct dump that no other program can reproduce;
// we hash the template's canonical JSON (members sorted recursively, no whitespace) with FNV-1a
// 64, written as 16 hex digits. Key order and formatting never change the hash; any value change
// does. The tracked-config checksums, on the other hand, are Flagger's own (first 8 bytes of the
// SHA-256 of Go's JSON encoding of `data`, in hex), so status.trackedConfigs written by Flagger
// stays valid when canaryd takes over.
//
// Adoption rule (issue 4): a status whose lastAppliedSpec is not one of our hashes was written
// by Flagger; if the primary already runs the target's template, the daemon takes the target as
// the promoted baseline without a run (see rollout.hpp, observed_state::primary_matches_target).
#include <string>
#include <string_view>
#include <vector>

#include "core/canary.hpp"
#include "core/field_error.hpp"

namespace canaryd::core {

struct revision_options {
  // DaemonSet targets: Flagger scales a DaemonSet to zero with the nodeSelector
  // flagger.app/scale-to-zero, which must not count as a change; an absent and an empty
  // nodeSelector are the same.
  bool daemonset = false;
};

// The revision of a pod template (Deployment/DaemonSet spec.template) or of any other JSON value
// that stands for a target's revision (a Service target's spec). Errors only for invalid JSON.
decoded<std::string> pod_template_revision(std::string_view template_json, const revision_options& options = {});

// True for a hash this code produces (16 lowercase hex digits). Flagger's hashes are at most 10
// characters of its safe-encoding alphabet, so the two never collide.
bool is_canaryd_revision(std::string_view revision);

// Flagger's tracked-config checksum of a ConfigMap or Secret object (the whole object's JSON):
// hex of the first 8 bytes of sha256(json.Marshal(data)). An absent or empty `data` hashes as Go's
// nil map ("null"), as the API server omits empty maps. [quirk] Flagger ignores a ConfigMap's
// binaryData, so changing it starts no run; fixed: when binaryData is present it is hashed too
// (the checksum is unchanged for objects without binaryData, so Flagger's values stay valid).
decoded<std::string> config_checksum(std::string_view object_json);

// Whether Flagger tracks this ConfigMap/Secret at all: not when annotated
// flagger.app/config-tracking: disable*, and for Secrets only the types Opaque (or unset),
// kubernetes.io/basic-auth, kubernetes.io/ssh-auth and kubernetes.io/tls.
bool is_tracked_config(std::string_view object_json);

// A ConfigMap or Secret referenced by a pod template.
struct config_ref {
  enum class kind_t { config_map, secret };
  kind_t kind = kind_t::config_map;
  std::string name;
  bool optional = false;  // every reference to it says optional: true

  // The key in status.trackedConfigs: "configmap/<name>" or "secret/<name>".
  std::string key() const;
  friend bool operator==(const config_ref&, const config_ref&) = default;
};

// Every ConfigMap and Secret a pod template references (volumes, projected volume sources,
// env valueFrom and envFrom, in containers and initContainers), sorted by key, each once.
decoded<std::vector<config_ref>> find_config_refs(std::string_view pod_template_json);

// The checksum Flagger sends as "checksum" in webhook payloads: a hash of lastAppliedSpec and
// trackedConfigs, so a receiver can tell revisions apart. Ours is FNV-1a 64 of their canonical
// JSON (Flagger's is its Go hash of the same two fields).
std::string webhook_checksum(const canary_status& status);

}  // namespace canaryd::core
