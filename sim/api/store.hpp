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
// Thread affinity: the io_context thread only; no locks. Callbacks run synchronously inside the
// write that caused them and must not re-enter a write on the same object.
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <functional>
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
  std::string api_version() const { return group.empty() ? version : group + "/" + version; }
};

using object_ptr = std::shared_ptr<const boost::json::object>;

enum class event_type { added, modified, deleted };

struct change {
  event_type type;
  const resource_info* resource;
  object_ptr object;        // for deleted: the last state
  object_ptr previous;      // for modified/deleted: the state before (null for added)
  std::uint64_t resource_version;
};

enum class propagation { background, foreground, orphan };

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

class store;

// Live until destroyed; the callback sees every change of one resource (optionally one
// namespace) after `from_rv`, history first, in resourceVersion order.
class watch_subscription {
 public:
  virtual ~watch_subscription() = default;
};

class store {
 public:
  virtual ~store() = default;

  // Resources: the built-in kinds are registered at construction; CRDs add and remove theirs.
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
  // status). A non-empty metadata.resourceVersion that is stale gives 409 Conflict.
  virtual result<object_ptr> update(const resource_info& r, std::string_view ns, std::string_view name,
                                    boost::json::object obj, bool status) = 0;
  // Deletes, or marks with deletionTimestamp while finalizers remain. Returns the object as
  // it was deleted or marked.
  virtual result<object_ptr> remove(const resource_info& r, std::string_view ns, std::string_view name,
                                    propagation p = propagation::background) = 0;

  // Watches one resource (ns empty: all namespaces) from `from_rv` (0: from now, after an
  // ADDED for every existing object). 410 Gone if from_rv is older than the kept history.
  virtual result<std::unique_ptr<watch_subscription>> watch(
      const resource_info& r, std::string_view ns, std::uint64_t from_rv,
      std::function<void(const change&)> cb) = 0;

  // Every change of every resource, for the simulated controllers.
  virtual void on_change(std::function<void(const change&)> cb) = 0;

  virtual std::uint64_t resource_version() const = 0;
  // Fault injection: forget the event history, so every watch resuming from an older
  // resourceVersion gets 410 Gone.
  virtual void compact() = 0;
  virtual std::size_t object_count() const = 0;
};

std::unique_ptr<store> make_store();

}  // namespace kubesim
