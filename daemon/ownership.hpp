#pragma once
// Ownership: canaryd changes only what it created or what the user handed it (docs/ownership.md).
// Before a tick acts, refusal() says whether anything the Canary would write belongs to someone
// else; core::decide() then touches nothing and reports it (Promoted=False, reason Refused, and
// a Warning Event naming the owner). The rules, in the order checked:
//
//   1. One Canary per target and per apex Service: of the Canaries in a namespace that name the
//      same targetRef (kind and name) or the same apex Service, the oldest (creationTimestamp,
//      then name) drives it; the others are refused.
//   2. The target must not be controlled by a Canary (another Canary's primary).
//   3. <target>-primary (workload and, with an HPA autoscalerRef, its -primary HPA),
//      <apex>-primary and <apex>-canary Services, and the -primary copies of tracked ConfigMaps
//      and Secrets: when they exist, their controller (metadata.ownerReferences[controller])
//      must be this Canary, or none (an object without a controller is taken over, as Flagger
//      does).
//   4. The provider's mesh objects (Istio VirtualService and DestinationRules, Gateway API
//      HTTPRoute): when they exist, controlled by this Canary or by nothing, as in rule 3.
//   5. The apex Service may be the user's (Flagger takes it over by design) but not one
//      controlled by another Canary.
//
// Reads only the caches; the ownerReferences of an object are parsed once per resourceVersion.
// The claims of rule 1 are an index kept up to date from the Canary cache (canary_changed /
// canary_removed), so a check costs a few map look-ups even with 10,000 Canaries.
//
// Thread affinity: the io_context thread only. Errors: none (a refusal is a message).
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/canary.hpp"
#include "core/rollout.hpp"
#include "daemon/cluster.hpp"

namespace canaryd {

class ownership {
 public:
  explicit ownership(cluster& k) : k_(k) {}

  // The Canary `key` ("namespace/name") appeared or may have changed in the cache: refresh its
  // claims (cheap when its resourceVersion is unchanged). Returns the other Canaries whose
  // standing may have changed (to wake).
  std::vector<std::string> canary_changed(const std::string& key);
  // The Canary left the cache. Returns the Canaries to wake (the ones it may have held back).
  std::vector<std::string> canary_removed(const std::string& key);

  // "" when `c` may act; else why not, naming the object and its owner. `obs` is the tick's
  // observation (its tracked_configs name the configs whose -primary copies are checked).
  // `mesh_objects`: the provider's objects that exist (mesh_router::existing), with their kinds.
  std::string refusal(const core::canary& c, const core::observed_state& obs,
                      const std::vector<std::pair<std::string, k8s::object_ptr>>& mesh_objects = {}) const;

  // Rule 4 for one object of `kind`, as the mesh router asks right before it updates it.
  std::string foreign_mesh_object(const core::canary& c, const std::string& kind, const k8s::object& o) const;

 private:
  struct claim {
    std::string version;     // the Canary's resourceVersion the claim was read from
    std::string created;     // metadata.creationTimestamp (RFC 3339, compares as text)
    // status.phase is set: the Canary has been driven (by canaryd or Flagger). It breaks a tie
    // of creationTimestamp, which has second precision: a Canary created in the same second as
    // the one already driving the target must not take it over because its name sorts first.
    bool driven = false;
    std::vector<std::string> keys;  // index keys: "<ns>/target/<kind>/<name>", "<ns>/service/<apex>"
  };
  struct controller {
    std::string version;  // uid/resourceVersion of the object it was read from
    std::string kind;     // "" when there is no controller
    std::string name;
  };

  // The order of rule 1: older first; in one second, the driven one; then by name.
  using rank = std::tuple<std::string, bool, std::string>;
  static rank rank_of(const claim& c, const std::string& key);
  std::vector<std::string> drop(const std::string& key);
  // The oldest other claimant of `index_key`, if older than `self` (else "").
  std::string older_claimant(const std::string& index_key, const std::string& self) const;
  const controller& controller_of(const char* kind, const k8s::object& o) const;
  // The refusal for an object that must be controlled by `c` or by nothing.
  std::string foreign(const core::canary& c, const char* kind, const k8s::object_ptr& o, bool any_controller) const {
    return o ? foreign(c, kind, *o, any_controller) : std::string();
  }
  std::string foreign(const core::canary& c, const char* kind, const k8s::object& o, bool any_controller) const;

  cluster& k_;
  std::map<std::string, claim, std::less<>> claims_;                  // canary key -> claim
  std::map<std::string, std::set<std::string>, std::less<>> index_;   // index key -> canary keys
  mutable std::map<std::string, controller, std::less<>> controllers_;  // "<kind>/<ns>/<name>" -> controller
};

}  // namespace canaryd
