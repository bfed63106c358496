#pragma once
// kubesim's object store: every object of every resource, with Kubernetes' semantics applied
// on write (uid, one monotonic resourceVersion, generation bumped on spec changes only,
// creationTimestamp, namespaces that must exist, generateName, deletionTimestamp + finalizers,
// ownerReference garbage collection, status subresource split) and a bounded event history that
// watches replay from (older than the history: 410 Gone).
//
// The HTTP API layer (sim/api) and the simulated controllers (sim/world) both write through it,
// so a controller's write is seen by watches exactly like a client's.
//
// CustomResourceDefinitions are objects like any other; creating, updating or deleting one
// (apiextensions.k8s.io/v1 customresourcedefinitions) registers, changes or unregisters the
// resources it defines, sets its status (Established, NamesAccepted, acceptedNames), and
// deleting it deletes its custom objects.
//
// Thread affinity: the io_context thread only; no locks.
// Callbacks (watch subscriptions, on_change) run synchronously, in resourceVersion order, after
// the write that caused them is committed and before that write returns. A callback may call
// back into the store (even write): such nested writes are queued and their changes delivered
// after the current one, never re-entrantly.
#include <boost/assert/source_location.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kubesim {

// A Kubernetes error, sent to clients as a Status object.
struct api_error {
  int code = 500;              // HTTP status
  std::string reason;          // NotFound, AlreadyExists, Conflict, Invalid, Gone, ...
  std::string message;
  boost::json::object details; // name, group, kind, causes[]
};

template <class T>
using result = boost::system::result<T, api_error>;

// "404 NotFound: deployments.apps \"x\" not found" (logs, test failures).
std::ostream& operator<<(std::ostream& os, const api_error& e);
// For result<T>::value() on an error: a bug in the caller.
[[noreturn]] void throw_exception_from_error(const api_error& e, const boost::source_location& loc);

// One cause of a 422 Invalid ("spec.replicas: Invalid value: -1: must be greater than or equal to 0").
struct field_error {
  std::string reason;   // FieldValueRequired, FieldValueInvalid, FieldValueForbidden, ...
  std::string field;    // "spec.replicas"
  std::string message;  // "Invalid value: -1: must be greater than or equal to 0"
};

struct printer_column {
  std::string name, type, json_path, description, format;
  int priority = 0;
};

// One served group/version/resource.
struct resource_info {
  std::string group;      // "" for the core group
  std::string version;
  std::string resource;   // plural, lower case
  std::string singular;
  std::string kind;
  std::string list_kind;
  bool namespaced = true;
  bool status_subresource = false;
  bool scale_subresource = false;
  std::vector<std::string> short_names;
  std::vector<std::string> categories;
  std::vector<printer_column> columns;               // CRD additionalPrinterColumns
  std::optional<boost::json::value> schema;          // CRD openAPIV3Schema, if any
  // Added by the store (defaults fit a custom resource):
  std::vector<std::string> verbs;                    // as listed by discovery
  bool custom = false;                               // defined by a CRD (no strategic merge)
  bool tracks_generation = true;                     // metadata.generation is maintained
  // Scale subresource paths (".spec.replicas" style), for CRDs and the built-in workloads.
  std::string scale_spec_replicas_path;
  std::string scale_status_replicas_path;
  std::string scale_label_selector_path;
  std::string api_version() const { return group.empty() ? version : group + "/" + version; }
  // "deployments.apps", "pods": how error messages name a resource.
  std::string qualified() const { return group.empty() ? resource : resource + "." + group; }
};

using object_ptr = std::shared_ptr<const boost::json::object>;

enum class event_type { added, modified, deleted };

struct change {
  event_type type;
  const resource_info* resource;
  object_ptr object;        // for deleted: the last state, carrying the deletion's resourceVersion
  object_ptr previous;      // for modified/deleted: the state before (null for added)
  std::uint64_t resource_version;
};

enum class propagation { background, foreground, orphan };

struct delete_options {
  propagation policy = propagation::background;
  std::string precondition_uid;               // non-empty: 409 Conflict unless it matches
  std::string precondition_resource_version;  // likewise
};

struct list_options {
  std::function<bool(const boost::json::object&)> match;  // selectors; null matches all
  std::int64_t limit = 0;                                  // 0 = no limit
  std::string continue_token;
};

struct list_result {
  std::vector<object_ptr> items;
  std::uint64_t resource_version = 0;
  std::string continue_token;
  std::optional<std::int64_t> remaining_item_count;
};

struct store_options {
  // Changes kept per resource for watch resumption; a watch from an older resourceVersion
  // gets 410 Gone.
  std::size_t history_limit = 10'000;
  // The wall clock for creationTimestamp / deletionTimestamp (injected so tests can step it).
  std::function<std::chrono::system_clock::time_point()> now;
  // Seed for uids and generateName suffixes (0: from std::random_device).
  std::uint64_t seed = 0;
};

class store;

// Live until destroyed; the callback sees every change of one resource (optionally one
// namespace) after `from_rv`, history first, in resourceVersion order. May outlive the store.
class watch_subscription {
 public:
  virtual ~watch_subscription() = default;
};

class store {
 public:
  virtual ~store() = default;

  // Resources: the built-in kinds are registered at construction; CRDs add and remove theirs.
  // Pointers stay valid for the store's life (a resource whose CRD was deleted is no longer
  // found, but its resource_info is not freed).
  virtual const resource_info* find(std::string_view group, std::string_view version,
                                    std::string_view resource) const = 0;
  virtual const resource_info* find_kind(std::string_view api_version, std::string_view kind) const = 0;
  virtual std::vector<const resource_info*> resources() const = 0;

  virtual result<object_ptr> get(const resource_info& r, std::string_view ns, std::string_view name) const = 0;
  virtual result<list_result> list(const resource_info& r, std::string_view ns, const list_options& opts) const = 0;
  // `obj` as sent by the client; the store fills metadata. Validation against a CRD schema is
  // the API layer's job, before this call.
  virtual result<object_ptr> create(const resource_info& r, std::string_view ns, boost::json::object obj) = 0;
  // Replaces the object (or only its status when `status` is true; the main resource ignores
  // status). A non-empty metadata.resourceVersion that is stale gives 409 Conflict. An update
  // that changes nothing returns the stored object and emits no event (as a real server).
  virtual result<object_ptr> update(const resource_info& r, std::string_view ns, std::string_view name,
                                    boost::json::object obj, bool status) = 0;
  // Deletes, or marks with deletionTimestamp while finalizers remain. Returns the object as
  // it was deleted or marked; `deleted` tells which (when non-null).
  virtual result<object_ptr> remove(const resource_info& r, std::string_view ns, std::string_view name,
                                    const delete_options& opts, bool* deleted = nullptr) = 0;
  result<object_ptr> remove(const resource_info& r, std::string_view ns, std::string_view name,
                            propagation p = propagation::background) {
    delete_options o;
    o.policy = p;
    return remove(r, ns, name, o);
  }

  // Watches one resource (ns empty: all namespaces) from `from_rv` (0: from now, after an
  // ADDED for every existing object). 410 Gone if from_rv is older than the kept history.
  virtual result<std::unique_ptr<watch_subscription>> watch(
      const resource_info& r, std::string_view ns, std::uint64_t from_rv,
      std::function<void(const change&)> cb) = 0;

  // Every change of every resource, for the simulated controllers.
  virtual void on_change(std::function<void(const change&)> cb) = 0;

  // A mutating admission webhook of a simulated controller (Knative's defaulting, say): `mutate`
  // sees every create and every update of the main resource of group/resource (plural), as the
  // client sent it, before the store's defaults and validation. Not called for status updates.
  virtual void on_admission(std::string group, std::string resource,
                            std::function<void(boost::json::object&)> mutate) = 0;

  virtual std::uint64_t resource_version() const = 0;
  // Fault injection: forget the event history, so every watch resuming from an older
  // resourceVersion gets 410 Gone.
  virtual void compact() = 0;
  virtual std::size_t object_count() const = 0;
};

std::unique_ptr<store> make_store();
std::unique_ptr<store> make_store(store_options opts);

// Helpers shared by the API layer and the controllers.

// The Status-style errors a real server sends ("deployments.apps \"x\" not found").
api_error not_found(const resource_info& r, std::string_view name);
api_error bad_request_error(std::string message);
// 422 Invalid: "Deployment.apps \"x\" is invalid: spec.selector: Required value".
api_error invalid(std::string_view kind, std::string_view group, std::string_view name,
                  const std::vector<field_error>& errs);
api_error conflict(const resource_info& r, std::string_view name, std::string_view why);
api_error forbidden(const resource_info& r, std::string_view name, std::string_view why);
// `resourceVersion` "123" -> 123; nullopt if not a non-negative integer.
std::optional<std::uint64_t> parse_resource_version(std::string_view s) noexcept;
// metadata.<field> as a string ("" if absent).
std::string_view meta_string(const boost::json::object& obj, std::string_view field) noexcept;

}  // namespace kubesim
