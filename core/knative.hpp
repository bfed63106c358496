#pragma once
// Knative Service targets with provider `knative` (Flagger's KnativeController and KnativeRouter,
// flagger-behaviour.md §4 and §5), pure: what canaryd reads from a Knative Service
// (serving.knative.dev/v1) and its Revisions, and the writes it makes to the Knative Service.
//
//  - The primary is a revision, named by the annotation flagger.app/primary-revision on the
//    Knative Service; the canary is the latest created revision (status.latestCreatedRevisionName),
//    which is also what is tracked as the target's revision (status.lastAppliedSpec).
//  - Initialize (phase "" or Initializing): annotation = latestCreatedRevisionName, and
//    spec.traffic = [{latestRevision: true, percent: 0}, {revisionName: <primary>, percent: 100}].
//  - Promote: the annotation moves to latestCreatedRevisionName.
//  - Routes: spec.traffic as above with the weights (SetRoutes); read back from status.traffic
//    (GetRoutes), so they are the routes Knative has put in force.
//  - Finalize (revertOnDeletion): the annotation is removed (spec.traffic stays as it is, as Flagger).
//  - Readiness: a Revision's Ready condition.
// Differences from Flagger (docs/targets.md):
//  - GetRoutes: the primary's entry is the one naming the primary revision without
//    latestRevision: true (or, when there is none, right after a promotion, the first naming it,
//    as Flagger). Flagger always takes the first entry naming it, which right after
//    initialization (latest revision = primary revision) is the latestRevision entry at 0 %.
//  - Readiness: a Revision whose Ready condition is False (Knative gave up on it, e.g.
//    ProgressDeadlineExceeded) is a failure, and one that is not ready once the Canary's progress
//    deadline has passed since status.lastTransitionTime too, so a never-ready revision is rolled
//    back; Flagger reports every not-ready revision as retriable and waits for ever.
//
// Thread affinity: none (pure).
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/canary.hpp"
#include "core/router.hpp"
#include "core/rollout.hpp"
#include "core/services.hpp"
#include "core/wall_time.hpp"

namespace canaryd::core {

inline constexpr std::string_view knative_primary_revision_annotation = "flagger.app/primary-revision";

inline const object_kind knative_service_kind{"serving.knative.dev", "v1", "services", "Service", true};
inline const object_kind knative_revision_kind{"serving.knative.dev", "v1", "revisions", "Revision", true};

struct knative_traffic_target {
  std::string revision_name;
  std::optional<bool> latest_revision;
  std::optional<long long> percent;
};

// What canaryd reads from a Knative Service, parsed once per object version.
struct knative_service_state {
  std::optional<std::string> parse_error;
  std::optional<std::string> primary_revision;  // the annotation; nullopt when absent
  std::string latest_created;                   // status.latestCreatedRevisionName
  std::vector<knative_traffic_target> status_traffic;
};
knative_service_state read_knative_service(std::string_view ksvc_json);

// A Revision's Ready condition.
struct knative_revision_state {
  std::optional<std::string> parse_error;
  std::string ready = "Unknown";  // "True", "False" or "Unknown"
  std::string reason, message;
};
knative_revision_state read_knative_revision(std::string_view revision_json);

// IsCanaryReady (the latest created revision) and IsPrimaryReady (the primary revision), with
// Flagger's messages: "Knative Revision <name>.<ns> is not ready" (plus the condition's reason
// and message when Knative gave one), "Knative Revision <name>.<ns> get query error: ..." when
// it is missing (waiting). See the header comment for failures.
readiness knative_revision_readiness(const canary& c, const std::string& revision, const knative_revision_state* rev,
                                     wall_time now);

// GetRoutes from the Knative Service (status.traffic), with Flagger's errors.
service_result<traffic_routes> knative_read_routes(const canary& c, std::string_view ksvc_json);

// Initialize's write: the PUT body, or nullopt when the Service already has the annotation and
// traffic it would write. Error: no latest created revision yet.
service_result<std::optional<std::string>> knative_initialize_body(const canary& c, std::string_view ksvc_json);
// Promote's write: the annotation moved to the latest created revision (nullopt: already there).
service_result<std::optional<std::string>> knative_promote_body(const canary& c, std::string_view ksvc_json);

// The `knative` provider's rules (KnativeRouter): the one object is the user's Knative Service,
// which holds the routes; it is never created; reconcile adds the annotation when missing;
// finalize removes it.
std::unique_ptr<route_provider> make_knative_provider();

}  // namespace canaryd::core
