#include "sim/world/controllers.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <deque>
#include <exception>
#include <limits>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "k8s/log.hpp"
#include "sim/json/selector.hpp"

namespace kubesim::world {
namespace json = boost::json;
namespace asio = boost::asio;
namespace log = canaryd::log;
using steady = std::chrono::steady_clock;
using wall = std::chrono::system_clock;

// ---------------------------------------------------------------------------------------------
// Go durations
// ---------------------------------------------------------------------------------------------

bool parse_go_duration(std::string_view s, std::chrono::nanoseconds& out) noexcept {
  if (s.empty()) return false;
  if (s == "0") {
    out = std::chrono::nanoseconds(0);
    return true;
  }
  if (s.front() == '-') return false;
  if (s.front() == '+') s.remove_prefix(1);
  double total = 0;
  while (!s.empty()) {
    std::size_t i = 0;
    while (i < s.size() && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.')) ++i;
    if (i == 0) return false;
    const std::string num(s.substr(0, i));
    if (num == ".") return false;
    char* end = nullptr;
    const double v = std::strtod(num.c_str(), &end);
    if (end != num.c_str() + num.size()) return false;
    s.remove_prefix(i);
    std::size_t u = 0;
    while (u < s.size() && !((s[u] >= '0' && s[u] <= '9') || s[u] == '.')) ++u;
    const std::string_view unit = s.substr(0, u);
    s.remove_prefix(u);
    double scale = 0;
    if (unit == "ns") {
      scale = 1;
    } else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") {
      scale = 1e3;
    } else if (unit == "ms") {
      scale = 1e6;
    } else if (unit == "s") {
      scale = 1e9;
    } else if (unit == "m") {
      scale = 60e9;
    } else if (unit == "h") {
      scale = 3600e9;
    } else {
      return false;  // a missing unit is an error too, as in Go (except for "0")
    }
    total += v * scale;
  }
  if (!std::isfinite(total) || total > 9.2e18) return false;
  out = std::chrono::nanoseconds(static_cast<std::int64_t>(total));
  return true;
}

std::vector<simulated_node> make_nodes(const controller_options& opts) {
  std::vector<simulated_node> out;
  for (int i = 0; i < std::max(0, opts.nodes); ++i) {
    simulated_node n;
    n.name = "node-" + std::to_string(i);
    n.labels = {{"kubernetes.io/hostname", n.name}, {"kubernetes.io/os", "linux"}, {"kubernetes.io/arch", "amd64"}};
    for (const auto& [k, v] : opts.node_labels) n.labels[k] = v;
    if (auto it = opts.node_labels_by_node.find(i); it != opts.node_labels_by_node.end())
      for (const auto& [k, v] : it->second) n.labels[k] = v;
    out.push_back(std::move(n));
  }
  return out;
}

namespace {

// ---------------------------------------------------------------------------------------------
// JSON helpers (objects come from the store: anything may be missing or of the wrong type)
// ---------------------------------------------------------------------------------------------

const json::object* obj_of(const json::object* o, std::string_view key) {
  if (o == nullptr) return nullptr;
  auto it = o->find(key);
  return it == o->end() ? nullptr : it->value().if_object();
}

const json::array* arr_of(const json::object* o, std::string_view key) {
  if (o == nullptr) return nullptr;
  auto it = o->find(key);
  return it == o->end() ? nullptr : it->value().if_array();
}

std::string str_of(const json::object* o, std::string_view key) {
  if (o == nullptr) return {};
  auto it = o->find(key);
  if (it == o->end() || !it->value().is_string()) return {};
  return std::string(it->value().get_string());
}

std::optional<std::int64_t> int_of(const json::object* o, std::string_view key) {
  if (o == nullptr) return std::nullopt;
  auto it = o->find(key);
  if (it == o->end()) return std::nullopt;
  const json::value& v = it->value();
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) return static_cast<std::int64_t>(v.get_uint64());
  if (v.is_double()) return static_cast<std::int64_t>(v.get_double());
  return std::nullopt;
}

bool bool_of(const json::object* o, std::string_view key) {
  if (o == nullptr) return false;
  auto it = o->find(key);
  return it != o->end() && it->value().is_bool() && it->value().get_bool();
}

const json::object* meta(const json::object& o) { return obj_of(&o, "metadata"); }
std::string name_of(const json::object& o) { return str_of(meta(o), "name"); }
std::string uid_of(const json::object& o) { return str_of(meta(o), "uid"); }
bool deleting(const json::object& o) {
  const auto* m = meta(o);
  return m != nullptr && m->contains("deletionTimestamp");
}
std::string annotation(const json::object* m, std::string_view key) { return str_of(obj_of(m, "annotations"), key); }
std::string label(const json::object* m, std::string_view key) { return str_of(obj_of(m, "labels"), key); }

json::object& object_at(json::object& o, std::string_view key) {
  json::value& v = o[key];
  if (!v.is_object()) v = json::object();
  return v.get_object();
}

struct owner_ref {
  std::string kind, name, uid;
};

// The controller ownerReference of an object, if any.
std::optional<owner_ref> controller_of(const json::object& o) {
  const auto* refs = arr_of(meta(o), "ownerReferences");
  if (refs == nullptr) return std::nullopt;
  for (const auto& r : *refs) {
    const auto* ro = r.if_object();
    if (ro == nullptr || !bool_of(ro, "controller")) continue;
    return owner_ref{str_of(ro, "kind"), str_of(ro, "name"), str_of(ro, "uid")};
  }
  return std::nullopt;
}

json::object owner_reference(const resource_info& r, const json::object& owner) {
  return json::object{{"apiVersion", r.api_version()}, {"kind", r.kind},       {"name", name_of(owner)},
                      {"uid", uid_of(owner)},          {"controller", true}, {"blockOwnerDeletion", true}};
}

// Canonical JSON (object members sorted), so that a template hashes the same whatever order
// its members arrived in.
void canonical(const json::value& v, std::string& out) {
  if (const auto* o = v.if_object()) {
    std::vector<const json::key_value_pair*> members;
    for (const auto& kv : *o) members.push_back(&kv);
    std::sort(members.begin(), members.end(), [](auto* a, auto* b) { return a->key() < b->key(); });
    out += '{';
    for (std::size_t i = 0; i < members.size(); ++i) {
      if (i > 0) out += ',';
      out += json::serialize(json::value(members[i]->key()));
      out += ':';
      canonical(members[i]->value(), out);
    }
    out += '}';
  } else if (const auto* a = v.if_array()) {
    out += '[';
    for (std::size_t i = 0; i < a->size(); ++i) {
      if (i > 0) out += ',';
      canonical((*a)[i], out);
    }
    out += ']';
  } else {
    out += json::serialize(v);
  }
}

constexpr std::string_view safe_alphabet = "bcdfghjklmnpqrstvwxz2456789";

// ComputeHash(): FNV-32a of the template, its decimal digits mapped onto Kubernetes' "safe"
// alphabet (rand.SafeEncodeString), as in pod-template-hash values like "7b5c9d4f8".
std::string template_hash(const json::object& tmpl) {
  std::string text;
  canonical(json::value(tmpl), text);
  std::uint32_t h = 2166136261u;
  for (unsigned char c : text) {
    h ^= c;
    h *= 16777619u;
  }
  std::string digits = std::to_string(h);
  for (char& c : digits) c = safe_alphabet[static_cast<std::size_t>(c) % safe_alphabet.size()];
  return digits;
}

std::string rfc3339(wall::time_point t) {
  const std::time_t tt = wall::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<wall::time_point> parse_rfc3339(std::string_view s) {
  std::tm tm{};
  const std::string str(s);
  const char* end = strptime(str.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr) return std::nullopt;
  return wall::from_time_t(timegm(&tm));
}

// An int-or-percent of `total`, rounded up or down (intstr.GetScaledValueFromIntOrPercent).
std::int64_t scaled(const json::value* v, std::int64_t total, bool round_up, std::int64_t fallback_percent) {
  double percent = static_cast<double>(fallback_percent);
  if (v != nullptr) {
    if (v->is_int64()) return v->get_int64();
    if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
    if (v->is_string()) {
      std::string s(v->get_string());
      if (!s.empty() && s.back() == '%') s.pop_back();
      char* end = nullptr;
      const double p = std::strtod(s.c_str(), &end);
      if (end == s.c_str() + s.size() && !s.empty()) percent = p;
    }
  }
  const double x = percent * static_cast<double>(total) / 100.0;
  return static_cast<std::int64_t>(round_up ? std::ceil(x) : std::floor(x));
}

// ---------------------------------------------------------------------------------------------
// Conditions (SetDeploymentCondition semantics)
// ---------------------------------------------------------------------------------------------

const json::object* find_condition(const json::array& conds, std::string_view type) {
  for (const auto& c : conds)
    if (const auto* o = c.if_object(); o != nullptr && str_of(o, "type") == type) return o;
  return nullptr;
}

// Sets a condition unless one with the same status and reason is there; keeps
// lastTransitionTime when the status does not change; the changed condition moves last.
void set_condition(json::array& conds, std::string_view type, std::string_view status, std::string_view reason,
                   std::string_view message, const std::string& now) {
  const json::object* cur = find_condition(conds, type);
  if (cur != nullptr && str_of(cur, "status") == status && str_of(cur, "reason") == reason) return;
  std::string transition = now;
  if (cur != nullptr && str_of(cur, "status") == status) transition = str_of(cur, "lastTransitionTime");
  json::array out;
  for (auto& c : conds)
    if (!(c.is_object() && str_of(&c.get_object(), "type") == type)) out.push_back(std::move(c));
  out.push_back(json::object{{"type", type},
                             {"status", status},
                             {"lastUpdateTime", now},
                             {"lastTransitionTime", transition},
                             {"reason", reason},
                             {"message", message}});
  conds = std::move(out);
}

void remove_condition(json::array& conds, std::string_view type) {
  json::array out;
  for (auto& c : conds)
    if (!(c.is_object() && str_of(&c.get_object(), "type") == type)) out.push_back(std::move(c));
  conds = std::move(out);
}

// Writes `v` under `key`, or erases the key when `v` is 0 and the Go field is omitempty.
void put(json::object& o, std::string_view key, std::int64_t v, bool omitempty) {
  if (v == 0 && omitempty) {
    o.erase(key);
  } else {
    o[key] = v;
  }
}

bool pod_ready(const json::object& pod) {
  const auto* conds = arr_of(obj_of(&pod, "status"), "conditions");
  if (conds == nullptr) return false;
  const auto* c = find_condition(*conds, "Ready");
  return c != nullptr && str_of(c, "status") == "True";
}

// ---------------------------------------------------------------------------------------------
// Work items
// ---------------------------------------------------------------------------------------------

enum class kind : std::uint8_t { deployment, replicaset, daemonset, statefulset, hpa };

struct work_key {
  kind k;
  std::string ns, name;
  bool operator==(const work_key&) const = default;
};

struct work_key_hash {
  std::size_t operator()(const work_key& w) const noexcept {
    std::size_t h = std::hash<std::string>()(w.ns);
    h ^= std::hash<std::string>()(w.name) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h ^ static_cast<std::size_t>(w.k);
  }
};

const char* kind_name(kind k) {
  switch (k) {
    case kind::deployment: return "Deployment";
    case kind::replicaset: return "ReplicaSet";
    case kind::daemonset: return "DaemonSet";
    case kind::statefulset: return "StatefulSet";
    case kind::hpa: return "HorizontalPodAutoscaler";
  }
  return "";
}

std::optional<kind> kind_of_owner(std::string_view k) {
  if (k == "Deployment") return kind::deployment;
  if (k == "ReplicaSet") return kind::replicaset;
  if (k == "DaemonSet") return kind::daemonset;
  if (k == "StatefulSet") return kind::statefulset;
  return std::nullopt;
}

// When a pod becomes ready (or never), decided when the controllers first see it.
struct pod_timing {
  steady::time_point ready_at;
  bool never = false;
};

constexpr std::string_view ready_after_annotation = "kubesim.dev/ready-after";
constexpr std::string_view ready_annotation = "kubesim.dev/ready";

}  // namespace

// ---------------------------------------------------------------------------------------------
// The controllers
// ---------------------------------------------------------------------------------------------

class controllers::impl : public std::enable_shared_from_this<impl> {
 public:
  impl(asio::any_io_executor ex, store& s, controller_options opts)
      : ex_(std::move(ex)), store_(s), opts_(std::move(opts)), nodes_(make_nodes(opts_)), timer_(ex_) {
    if (!opts_.now) opts_.now = [] { return wall::now(); };
    rng_.seed(opts_.seed != 0 ? opts_.seed : std::random_device{}());
    deploy_r_ = store_.find("apps", "v1", "deployments");
    rs_r_ = store_.find("apps", "v1", "replicasets");
    ds_r_ = store_.find("apps", "v1", "daemonsets");
    ss_r_ = store_.find("apps", "v1", "statefulsets");
    pod_r_ = store_.find("", "v1", "pods");
    pvc_r_ = store_.find("", "v1", "persistentvolumeclaims");
    pv_r_ = store_.find("", "v1", "persistentvolumes");
    hpa_r_ = store_.find("autoscaling", "v2", "horizontalpodautoscalers");
  }

  void start() {
    std::weak_ptr<impl> weak = weak_from_this();
    store_.on_change([weak](const change& c) {
      if (auto self = weak.lock()) self->observe(c);
    });
    // Whatever exists already (objects created before the controllers started).
    for (const resource_info* r : {pod_r_, rs_r_, deploy_r_, ds_r_, ss_r_, hpa_r_}) {
      if (r == nullptr) continue;
      auto all = store_.list(*r, "", list_options{});
      if (!all) continue;
      for (const auto& o : all->items) observe_object(r, o, nullptr, false);
    }
  }

  void stop() {
    stopped_ = true;
    timer_.cancel();
  }

  void pause(bool p) {
    paused_ = p;
    if (!p) schedule_drain();
  }
  bool paused() const noexcept { return paused_; }
  const std::vector<simulated_node>& nodes() const noexcept { return nodes_; }
  std::size_t pending() const noexcept { return queue_.size(); }

 private:
  // ---- change intake: indexes and dirty marks, nothing else (callbacks run inside writes) ----

  void observe(const change& c) {
    if (stopped_) return;
    observe_object(c.resource, c.object, c.previous, c.type == event_type::deleted);
  }

  void observe_object(const resource_info* r, const object_ptr& obj, const object_ptr& previous, bool removed) {
    if (r == nullptr || !obj) return;
    const json::object& o = *obj;
    const std::string ns = str_of(meta(o), "namespace");
    const std::string name = name_of(o);
    if (r == pod_r_) {
      if (previous) unindex(pods_by_owner_, *previous);
      if (removed) {
        timings_.erase(uid_of(o));
      } else {
        index(pods_by_owner_, o);
      }
      if (auto owner = controller_of(o)) {
        if (auto k = kind_of_owner(owner->kind)) enqueue({*k, ns, owner->name});
      }
      return;
    }
    if (r == rs_r_) {
      if (previous) unindex(rs_by_owner_, *previous);
      if (!removed) index(rs_by_owner_, o);
      if (!removed) enqueue({kind::replicaset, ns, name});
      if (auto owner = controller_of(o); owner && owner->kind == "Deployment") enqueue({kind::deployment, ns, owner->name});
      enqueue_hpas(ns, "ReplicaSet", name);
      return;
    }
    if (r == deploy_r_ || r == ds_r_ || r == ss_r_) {
      const kind k = r == deploy_r_ ? kind::deployment : (r == ds_r_ ? kind::daemonset : kind::statefulset);
      if (!removed) enqueue({k, ns, name});
      enqueue_hpas(ns, r->kind, name);
      return;
    }
    if (r == hpa_r_) {
      if (previous) hpa_targets_[target_key(ns, *previous)].erase(name);
      if (!removed) {
        hpa_targets_[target_key(ns, o)].insert(name);
        enqueue({kind::hpa, ns, name});
      }
    }
  }

  using owner_index = std::unordered_map<std::string, std::set<std::string>>;

  static void index(owner_index& idx, const json::object& o) {
    if (auto owner = controller_of(o); owner && !owner->uid.empty()) idx[owner->uid].insert(name_of(o));
  }
  static void unindex(owner_index& idx, const json::object& o) {
    auto owner = controller_of(o);
    if (!owner) return;
    auto it = idx.find(owner->uid);
    if (it == idx.end()) return;
    it->second.erase(name_of(o));
    if (it->second.empty()) idx.erase(it);
  }

  static std::string target_key(const std::string& ns, const json::object& hpa) {
    const auto* ref = obj_of(obj_of(&hpa, "spec"), "scaleTargetRef");
    return ns + "/" + str_of(ref, "kind") + "/" + str_of(ref, "name");
  }

  void enqueue_hpas(const std::string& ns, std::string_view k, const std::string& name) {
    auto it = hpa_targets_.find(ns + "/" + std::string(k) + "/" + name);
    if (it == hpa_targets_.end()) return;
    for (const auto& h : it->second) enqueue({kind::hpa, ns, h});
  }

  // ---- the work queue ----

  void enqueue(work_key k) {
    if (queued_.insert(k).second) queue_.push_back(std::move(k));
    schedule_drain();
  }

  void schedule_drain() {
    if (drain_posted_ || paused_ || stopped_ || queue_.empty()) return;
    drain_posted_ = true;
    asio::post(ex_, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->drain();
    });
  }

  void drain() {
    drain_posted_ = false;
    // A batch at a time, so that API requests interleave with a burst of reconciles.
    for (int i = 0; i < 256 && !queue_.empty() && !paused_ && !stopped_; ++i) {
      work_key k = std::move(queue_.front());
      queue_.pop_front();
      queued_.erase(k);
      try {
        reconcile(k);
      } catch (const std::exception& e) {
        // A malformed object must not take kubesim down; the next change retries it.
        log::error("controller reconcile failed",
                   {{"kind", kind_name(k.k)}, {"namespace", k.ns}, {"name", k.name}, {"error", e.what()}});
      }
    }
    schedule_drain();
  }

  void reconcile(const work_key& k) {
    switch (k.k) {
      case kind::deployment: reconcile_deployment(k.ns, k.name); break;
      case kind::replicaset: reconcile_replicaset(k.ns, k.name); break;
      case kind::daemonset: reconcile_daemonset(k.ns, k.name); break;
      case kind::statefulset: reconcile_statefulset(k.ns, k.name); break;
      case kind::hpa: reconcile_hpa(k.ns, k.name); break;
    }
  }

  // ---- timers: one steady_timer for every pending wake-up ----

  struct wake {
    steady::time_point at;
    work_key key;
    bool operator>(const wake& o) const { return at > o.at; }
  };

  void wake_at(steady::time_point at, const work_key& k) {
    auto [it, inserted] = scheduled_.try_emplace(k, at);
    if (!inserted) {
      if (it->second <= at) return;
      it->second = at;
    }
    wakes_.push(wake{at, k});
    if (at < armed_) arm(at);
  }

  void arm(steady::time_point at) {
    armed_ = at;
    timer_.expires_at(at);
    timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;  // re-armed earlier, or stopped
      if (auto self = weak.lock()) self->on_timer();
    });
  }

  void on_timer() {
    armed_ = steady::time_point::max();
    const auto now = steady::now();
    while (!wakes_.empty() && wakes_.top().at <= now) {
      wake w = wakes_.top();
      wakes_.pop();
      auto it = scheduled_.find(w.key);
      if (it != scheduled_.end() && it->second == w.at) {
        scheduled_.erase(it);
        enqueue(w.key);  // while paused it only waits in the queue
      }
    }
    if (!wakes_.empty()) arm(wakes_.top().at);
  }

  // ---- store access ----

  object_ptr get(const resource_info* r, const std::string& ns, const std::string& name) const {
    if (r == nullptr) return nullptr;
    auto got = store_.get(*r, ns, name);
    return got ? *got : nullptr;
  }

  std::vector<object_ptr> owned(const owner_index& idx, const resource_info* r, const std::string& ns,
                                const std::string& owner_uid) const {
    std::vector<object_ptr> out;
    auto it = idx.find(owner_uid);
    if (it == idx.end()) return out;
    for (const auto& n : it->second)
      if (auto o = get(r, ns, n); o && !deleting(*o)) out.push_back(o);
    return out;
  }

  bool write_status(const resource_info* r, const json::object& current, json::object status) {
    if (const auto* old = obj_of(&current, "status"); old != nullptr && *old == status) return true;
    json::object o = current;
    o["status"] = std::move(status);
    auto res = store_.update(*r, str_of(meta(current), "namespace"), name_of(current), std::move(o), true);
    if (!res) {
      log::debug("controller status write failed", {{"kind", r->kind}, {"name", name_of(current)}, {"error", res.error().message}});
      return false;
    }
    return true;
  }

  object_ptr write(const resource_info* r, json::object o) {
    const std::string ns = str_of(meta(o), "namespace");
    const std::string name = name_of(o);
    auto res = store_.update(*r, ns, name, std::move(o), false);
    if (!res) {
      log::debug("controller write failed", {{"kind", r->kind}, {"name", name}, {"error", res.error().message}});
      return nullptr;
    }
    return *res;
  }

  void remove(const resource_info* r, const std::string& ns, const std::string& name) {
    auto res = store_.remove(*r, ns, name, propagation::background);
    if (!res && res.error().code != 404) {
      log::debug("controller delete failed", {{"kind", r->kind}, {"name", name}, {"error", res.error().message}});
    }
  }

  std::string now_string() const { return rfc3339(opts_.now()); }

  std::string random_suffix(std::size_t n = 5) {
    std::uniform_int_distribution<std::size_t> d(0, safe_alphabet.size() - 1);
    std::string s;
    for (std::size_t i = 0; i < n; ++i) s += safe_alphabet[d(rng_)];
    return s;
  }

  // ---- pods ----

  pod_timing timing_for(const json::object& pod) {
    const std::string uid = uid_of(pod);
    if (auto it = timings_.find(uid); it != timings_.end()) return it->second;
    pod_timing t;
    const auto* m = meta(pod);
    const std::string ready = annotation(m, ready_annotation);
    std::chrono::nanoseconds delay = opts_.ready_after;
    if (ready == "false") {
      t.never = true;
    } else if (const std::string after = annotation(m, ready_after_annotation); !after.empty()) {
      if (!parse_go_duration(after, delay)) {
        log::warn("bad kubesim.dev/ready-after annotation, using the default",
                  {{"pod", name_of(pod)}, {"value", after}});
        delay = opts_.ready_after;
      }
    }
    t.ready_at = steady::now() + std::chrono::duration_cast<steady::duration>(delay);
    timings_.emplace(uid, t);
    return t;
  }

  json::object pod_status(const json::object& pod, bool ready, const std::string& node_ip, const std::string& pod_ip,
                          const std::string& started) {
    const std::string now = now_string();
    json::array containers;
    std::vector<std::string> names;
    if (const auto* cs = arr_of(obj_of(&pod, "spec"), "containers")) {
      for (const auto& c : *cs) {
        const auto* co = c.if_object();
        const std::string cname = str_of(co, "name");
        names.push_back(cname);
        containers.push_back(json::object{
            {"name", cname},
            {"image", str_of(co, "image")},
            {"imageID", ""},
            {"containerID", "containerd://" + uid_of(pod) + "-" + cname},
            {"ready", ready},
            {"started", true},
            {"restartCount", 0},
            {"state", json::object{{"running", json::object{{"startedAt", started}}}}},
        });
      }
    }
    std::string unready = "[";
    for (std::size_t i = 0; i < names.size(); ++i) unready += (i ? " " : "") + names[i];
    unready += "]";
    auto cond = [&](std::string_view type, bool ok) {
      json::object c{{"type", type}, {"status", ok ? "True" : "False"}, {"lastProbeTime", nullptr},
                     {"lastTransitionTime", ok && (type == "Ready" || type == "ContainersReady") ? now : started}};
      if (!ok) {
        c["reason"] = "ContainersNotReady";
        c["message"] = "containers with unready status: " + unready;
      }
      return c;
    };
    return json::object{
        {"phase", "Running"},
        {"conditions", json::array{cond("Initialized", true), cond("Ready", ready), cond("ContainersReady", ready),
                                   cond("PodScheduled", true)}},
        {"hostIP", node_ip},
        {"podIP", pod_ip},
        {"podIPs", json::array{json::object{{"ip", pod_ip}}}},
        {"startTime", started},
        {"containerStatuses", std::move(containers)},
        {"qosClass", "BestEffort"},
    };
  }

  std::string node_ip(const std::string& node) const {
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      if (nodes_[i].name == node) return "172.18.0." + std::to_string(i + 2);
    return "172.18.0.1";
  }

  std::string next_pod_ip() {
    const std::uint32_t n = next_pod_ip_++;
    return "10.244." + std::to_string((n >> 8) & 0xff) + "." + std::to_string(n & 0xff);
  }

  // Creates a pod from `tmpl`, owned by `owner`, scheduled on `node`, Running (not yet ready
  // unless its readiness delay is zero). Returns false if the store refused.
  bool create_pod(const resource_info& owner_r, const json::object& owner, const json::object& tmpl,
                  const std::string& name, const std::string& node, const json::object& extra_labels) {
    const std::string ns = str_of(meta(owner), "namespace");
    json::object md;
    md["name"] = name;
    md["namespace"] = ns;
    json::object labels;
    if (const auto* l = obj_of(obj_of(&tmpl, "metadata"), "labels")) labels = *l;
    for (const auto& kv : extra_labels) labels[kv.key()] = kv.value();
    md["labels"] = std::move(labels);
    if (const auto* a = obj_of(obj_of(&tmpl, "metadata"), "annotations")) md["annotations"] = *a;
    md["ownerReferences"] = json::array{owner_reference(owner_r, owner)};
    json::object spec;
    if (const auto* s = obj_of(&tmpl, "spec")) spec = *s;
    if (!node.empty()) spec["nodeName"] = node;
    json::object pod{{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", std::move(md)}, {"spec", std::move(spec)}};
    auto created = store_.create(*pod_r_, ns, std::move(pod));
    if (!created) {
      log::debug("controller pod create failed", {{"pod", name}, {"error", created.error().message}});
      return false;
    }
    const json::object& p = **created;
    const pod_timing t = timing_for(p);
    const bool ready_now = !t.never && t.ready_at <= steady::now();
    const std::string started = now_string();
    write_status(pod_r_, p, pod_status(p, ready_now, node_ip(node), next_pod_ip(), started));
    return true;
  }

  // Marks the pods whose readiness delay has passed as ready; schedules `k` for the next one.
  // Returns the number of ready pods.
  std::int64_t progress_readiness(std::vector<object_ptr>& pods, const work_key& k) {
    std::int64_t ready = 0;
    std::optional<steady::time_point> next;
    const auto now = steady::now();
    for (auto& pod : pods) {
      if (pod_ready(*pod)) {
        ++ready;
        continue;
      }
      const pod_timing t = timing_for(*pod);
      if (t.never) continue;
      if (t.ready_at > now) {
        if (!next || t.ready_at < *next) next = t.ready_at;
        continue;
      }
      const auto* st = obj_of(pod.get(), "status");
      json::object status = pod_status(*pod, true, str_of(st, "hostIP"), str_of(st, "podIP"),
                                       str_of(st, "startTime").empty() ? now_string() : str_of(st, "startTime"));
      if (write_status(pod_r_, *pod, std::move(status))) {
        ++ready;
        if (auto fresh = get(pod_r_, str_of(meta(*pod), "namespace"), name_of(*pod))) pod = fresh;
      }
    }
    if (next) wake_at(*next, k);
    return ready;
  }

  // ---- ReplicaSets ----

  void reconcile_replicaset(const std::string& ns, const std::string& name) {
    auto rs = get(rs_r_, ns, name);
    if (!rs || deleting(*rs)) return;
    const json::object* spec = obj_of(rs.get(), "spec");
    const std::int64_t desired = std::max<std::int64_t>(0, int_of(spec, "replicas").value_or(1));
    const json::object* tmpl = obj_of(spec, "template");
    const std::string uid = uid_of(*rs);
    std::vector<object_ptr> pods = owned(pods_by_owner_, pod_r_, ns, uid);

    if (static_cast<std::int64_t>(pods.size()) > desired) {
      // Scale down: unready pods first, then the newest (as the ReplicaSet controller ranks them).
      std::stable_sort(pods.begin(), pods.end(), [](const object_ptr& a, const object_ptr& b) {
        const bool ra = pod_ready(*a), rb = pod_ready(*b);
        if (ra != rb) return !ra;
        return str_of(meta(*a), "creationTimestamp") > str_of(meta(*b), "creationTimestamp");
      });
      while (static_cast<std::int64_t>(pods.size()) > desired) {
        remove(pod_r_, ns, name_of(*pods.front()));
        pods.erase(pods.begin());
      }
    } else if (tmpl != nullptr) {
      for (auto n = static_cast<std::int64_t>(pods.size()); n < desired; ++n) {
        const std::string node = nodes_.empty() ? std::string() : nodes_[next_node_++ % nodes_.size()].name;
        const std::string pod_name = name + "-" + random_suffix();
        if (!create_pod(*rs_r_, *rs, *tmpl, pod_name, node, json::object())) break;
        if (auto p = get(pod_r_, ns, pod_name)) pods.push_back(p);
      }
    }

    const std::int64_t ready = progress_readiness(pods, {kind::replicaset, ns, name});
    json::object status;
    if (const auto* old = obj_of(rs.get(), "status")) status = *old;
    put(status, "replicas", static_cast<std::int64_t>(pods.size()), false);
    put(status, "fullyLabeledReplicas", static_cast<std::int64_t>(pods.size()), true);
    put(status, "readyReplicas", ready, true);
    put(status, "availableReplicas", ready, true);
    put(status, "observedGeneration", int_of(meta(*rs), "generation").value_or(0), true);
    write_status(rs_r_, *rs, std::move(status));
  }

  // ---- Deployments ----

  static std::int64_t revision_of(const json::object& rs) {
    const std::string r = annotation(meta(rs), "deployment.kubernetes.io/revision");
    char* end = nullptr;
    const long long v = std::strtoll(r.c_str(), &end, 10);
    return (r.empty() || end != r.c_str() + r.size()) ? 0 : v;
  }

  static std::int64_t rs_status(const json::object& rs, std::string_view field) {
    return int_of(obj_of(&rs, "status"), field).value_or(0);
  }
  static std::int64_t rs_spec_replicas(const json::object& rs) {
    return int_of(obj_of(&rs, "spec"), "replicas").value_or(1);
  }

  // deploymentutil.MaxUnavailable()
  static std::int64_t max_unavailable(const json::object* spec, std::int64_t desired) {
    const auto* strategy = obj_of(spec, "strategy");
    const std::string type = str_of(strategy, "type");
    if ((type != "RollingUpdate" && !type.empty()) || desired == 0) return 0;
    const auto* ru = obj_of(strategy, "rollingUpdate");
    auto member = [&](std::string_view k) -> const json::value* {
      if (ru == nullptr) return nullptr;
      auto it = ru->find(k);
      return it == ru->end() ? nullptr : &it->value();
    };
    const std::int64_t surge = scaled(member("maxSurge"), desired, true, 25);
    std::int64_t unavailable = scaled(member("maxUnavailable"), desired, false, 25);
    if (surge == 0 && unavailable == 0) unavailable = 1;
    return std::min(unavailable, desired);
  }

  json::object new_replicaset(const json::object& d, const json::object& tmpl, const std::string& hash,
                              std::int64_t desired, std::int64_t revision) {
    const std::string ns = str_of(meta(d), "namespace");
    const std::string name = name_of(d) + "-" + hash;
    json::object t = tmpl;
    auto& tmeta = object_at(t, "metadata");
    object_at(tmeta, "labels")["pod-template-hash"] = hash;
    json::object labels = tmeta["labels"].get_object();
    json::object selector;
    if (const auto* sel = obj_of(obj_of(&d, "spec"), "selector")) selector = *sel;
    object_at(selector, "matchLabels")["pod-template-hash"] = hash;
    const auto* dspec = obj_of(&d, "spec");
    const std::int64_t surge = desired + scaled(nullptr, desired, true, 25);
    json::object md{{"name", name},
                    {"namespace", ns},
                    {"labels", std::move(labels)},
                    {"annotations",
                     json::object{{"deployment.kubernetes.io/desired-replicas", std::to_string(desired)},
                                  {"deployment.kubernetes.io/max-replicas", std::to_string(surge)},
                                  {"deployment.kubernetes.io/revision", std::to_string(revision)}}},
                    {"ownerReferences", json::array{owner_reference(*deploy_r_, d)}}};
    json::object spec{{"replicas", desired}, {"selector", std::move(selector)}, {"template", std::move(t)}};
    if (auto mrs = int_of(dspec, "minReadySeconds")) spec["minReadySeconds"] = *mrs;
    return json::object{{"apiVersion", "apps/v1"}, {"kind", "ReplicaSet"}, {"metadata", std::move(md)}, {"spec", std::move(spec)}};
  }

  void reconcile_deployment(const std::string& ns, const std::string& name) {
    auto d = get(deploy_r_, ns, name);
    if (!d || deleting(*d)) return;
    const json::object* spec = obj_of(d.get(), "spec");
    const json::object* tmpl = obj_of(spec, "template");
    if (tmpl == nullptr) return;
    const std::int64_t desired = std::max<std::int64_t>(0, int_of(spec, "replicas").value_or(1));
    const bool paused = bool_of(spec, "paused");
    const bool recreate = str_of(obj_of(spec, "strategy"), "type") == "Recreate";
    const std::string hash = template_hash(*tmpl);
    const std::string uid = uid_of(*d);
    const std::string now = now_string();

    std::vector<object_ptr> all = owned(rs_by_owner_, rs_r_, ns, uid);
    object_ptr new_rs;
    std::int64_t max_revision = 0;
    for (const auto& rs : all) {
      max_revision = std::max(max_revision, revision_of(*rs));
      if (label(meta(*rs), "pod-template-hash") == hash) new_rs = rs;
    }

    json::object status;
    if (const auto* old = obj_of(d.get(), "status")) status = *old;
    json::array conds;
    if (const auto* c = arr_of(&status, "conditions")) conds = *c;
    const std::optional<std::int64_t> deadline = int_of(spec, "progressDeadlineSeconds");

    // getNewReplicaSet(): create the ReplicaSet of this template, or bring the found one to
    // the desired size and the newest revision.
    if (!paused) {
      if (!new_rs) {
        json::object rs = new_replicaset(*d, *tmpl, hash, desired, max_revision + 1);
        const std::string rs_name = name_of(rs);
        auto created = store_.create(*rs_r_, ns, std::move(rs));
        if (!created) {
          if (created.error().code == 409) {
            // <deploy>-<hash> exists but is not ours (or not indexed yet): adopt by name.
            new_rs = get(rs_r_, ns, rs_name);
            if (new_rs && uid_of(*new_rs) != uid) new_rs = nullptr;
          }
          if (!new_rs) {
            log::debug("controller replicaset create failed", {{"deployment", name}, {"error", created.error().message}});
            return;
          }
        } else {
          new_rs = *created;
          all.push_back(new_rs);
          max_revision += 1;
          if (deadline) {
            set_condition(conds, "Progressing", "True", "NewReplicaSetCreated",
                          "Created new replica set \"" + name_of(*new_rs) + "\"", now);
          }
        }
      } else {
        json::object rs = *new_rs;
        bool dirty = false;
        if (rs_spec_replicas(rs) != desired) {
          object_at(rs, "spec")["replicas"] = desired;
          dirty = true;
        }
        if (revision_of(rs) < max_revision || (revision_of(rs) == max_revision && revision_of(rs) == 0)) {
          // A template rolled back to: its ReplicaSet becomes the newest revision.
          auto& ann = object_at(object_at(rs, "metadata"), "annotations");
          ann["deployment.kubernetes.io/revision"] = std::to_string(max_revision + 1);
          max_revision += 1;
          dirty = true;
        }
        if (dirty) {
          if (auto w = write(rs_r_, std::move(rs))) new_rs = w;
        }
        if (deadline && find_condition(conds, "Progressing") == nullptr) {
          set_condition(conds, "Progressing", "True", "FoundNewReplicaSet",
                        "Found new replica set \"" + name_of(*new_rs) + "\"", now);
        }
      }
    }

    // Old ReplicaSets go to 0 once the new one is fully available (Recreate: at once).
    const bool new_available =
        new_rs && rs_status(*new_rs, "availableReplicas") >= desired && rs_status(*new_rs, "replicas") >= desired;
    std::vector<object_ptr> old_sets;
    for (auto& rs : all) {
      if (new_rs && name_of(*rs) == name_of(*new_rs)) {
        rs = new_rs;
        continue;
      }
      if (!paused && (new_available || recreate) && rs_spec_replicas(*rs) != 0) {
        json::object scaled_down = *rs;
        object_at(scaled_down, "spec")["replicas"] = 0;
        if (auto w = write(rs_r_, std::move(scaled_down))) rs = w;
      }
      old_sets.push_back(rs);
    }

    // cleanupDeployment(): drained old ReplicaSets beyond revisionHistoryLimit go, oldest first.
    const std::int64_t history = int_of(spec, "revisionHistoryLimit").value_or(10);
    std::vector<object_ptr> drained;
    for (const auto& rs : old_sets)
      if (rs_spec_replicas(*rs) == 0 && rs_status(*rs, "replicas") == 0) drained.push_back(rs);
    if (static_cast<std::int64_t>(drained.size()) > history) {
      std::sort(drained.begin(), drained.end(), [](const object_ptr& a, const object_ptr& b) { return revision_of(*a) < revision_of(*b); });
      const auto excess = static_cast<std::int64_t>(drained.size()) - history;
      for (std::int64_t i = 0; i < excess; ++i) {
        remove(rs_r_, ns, name_of(*drained[static_cast<std::size_t>(i)]));
        std::erase_if(all, [&](const object_ptr& rs) { return name_of(*rs) == name_of(*drained[static_cast<std::size_t>(i)]); });
      }
    }

    // The deployment carries the revision of its newest ReplicaSet.
    if (new_rs) {
      const std::string revision = std::to_string(revision_of(*new_rs));
      if (annotation(meta(*d), "deployment.kubernetes.io/revision") != revision) {
        json::object updated = *d;
        object_at(object_at(updated, "metadata"), "annotations")["deployment.kubernetes.io/revision"] = revision;
        if (auto w = write(deploy_r_, std::move(updated))) {
          d = w;
        } else {
          return;  // changed under us: the change requeued it
        }
      }
    }

    // calculateStatus()
    std::int64_t replicas = 0, ready = 0, available = 0, total_spec = 0;
    for (const auto& rs : all) {
      replicas += rs_status(*rs, "replicas");
      ready += rs_status(*rs, "readyReplicas");
      available += rs_status(*rs, "availableReplicas");
      total_spec += rs_spec_replicas(*rs);
    }
    const std::int64_t updated = new_rs ? rs_status(*new_rs, "replicas") : 0;
    const std::int64_t generation = int_of(meta(*d), "generation").value_or(0);
    const json::object* old_status = obj_of(d.get(), "status");
    const std::int64_t old_updated = int_of(old_status, "updatedReplicas").value_or(0);
    const std::int64_t old_replicas = int_of(old_status, "replicas").value_or(0);
    const std::int64_t old_ready = int_of(old_status, "readyReplicas").value_or(0);
    const std::int64_t old_available = int_of(old_status, "availableReplicas").value_or(0);

    put(status, "observedGeneration", generation, true);
    put(status, "replicas", replicas, true);
    put(status, "updatedReplicas", updated, true);
    put(status, "readyReplicas", ready, true);
    put(status, "availableReplicas", available, true);
    put(status, "unavailableReplicas", std::max<std::int64_t>(0, total_spec - available), true);

    if (available >= desired - max_unavailable(spec, desired)) {
      set_condition(conds, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", now);
    } else {
      set_condition(conds, "Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.", now);
    }

    // syncRolloutStatus(): the Progressing condition.
    if (paused) {
      if (deadline) set_condition(conds, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", now);
    } else if (deadline) {
      const json::object* cur = find_condition(conds, "Progressing");
      if (cur != nullptr && str_of(cur, "reason") == "DeploymentPaused") {
        set_condition(conds, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed", now);
        cur = find_condition(conds, "Progressing");
      }
      const std::string rs_name = new_rs ? name_of(*new_rs) : std::string();
      const std::string subject = new_rs ? "ReplicaSet \"" + rs_name + "\"" : "Deployment \"" + name + "\"";
      const bool complete_already = replicas == updated && cur != nullptr && str_of(cur, "reason") == "NewReplicaSetAvailable";
      if (!complete_already) {
        const bool complete = updated == desired && replicas == desired && available == desired;
        const bool progressing = updated > old_updated || (replicas - updated) < (old_replicas - old_updated) ||
                                 ready > old_ready || available > old_available;
        if (complete) {
          set_condition(conds, "Progressing", "True", "NewReplicaSetAvailable", subject + " has successfully progressed.", now);
        } else if (progressing) {
          const std::string transition =
              (cur != nullptr && str_of(cur, "status") == "True") ? str_of(cur, "lastTransitionTime") : now;
          remove_condition(conds, "Progressing");
          conds.push_back(json::object{{"type", "Progressing"},
                                       {"status", "True"},
                                       {"lastUpdateTime", now},
                                       {"lastTransitionTime", transition},
                                       {"reason", "ReplicaSetUpdated"},
                                       {"message", subject + " is progressing."}});
        } else if (cur != nullptr && str_of(cur, "reason") != "NewReplicaSetAvailable" &&
                   str_of(cur, "reason") != "ProgressDeadlineExceeded") {
          // DeploymentTimedOut(): no progress since lastUpdateTime + progressDeadlineSeconds.
          const auto from = parse_rfc3339(str_of(cur, "lastUpdateTime"));
          if (from && *from + std::chrono::seconds(*deadline) < opts_.now()) {
            set_condition(conds, "Progressing", "False", "ProgressDeadlineExceeded", subject + " has timed out progressing.", now);
          }
        }
      }
      // requeueStuckDeployment(): look again when the deadline would pass.
      const json::object* after = find_condition(conds, "Progressing");
      const std::string reason = str_of(after, "reason");
      if (after != nullptr && reason != "NewReplicaSetAvailable" && reason != "ProgressDeadlineExceeded") {
        if (const auto from = parse_rfc3339(str_of(after, "lastUpdateTime"))) {
          auto left = *from + std::chrono::seconds(*deadline) - opts_.now();
          if (left < wall::duration::zero()) left = wall::duration::zero();
          wake_at(steady::now() + std::chrono::duration_cast<steady::duration>(left) + std::chrono::milliseconds(50),
                  {kind::deployment, ns, name});
        }
      }
    } else {
      remove_condition(conds, "Progressing");
    }
    if (conds.empty()) {
      status.erase("conditions");
    } else {
      status["conditions"] = std::move(conds);
    }
    write_status(deploy_r_, *d, std::move(status));
  }

  // ---- DaemonSets ----

  bool node_matches(const simulated_node& n, const json::object* node_selector) const {
    if (node_selector == nullptr) return true;
    for (const auto& kv : *node_selector) {
      auto it = n.labels.find(std::string(kv.key()));
      if (it == n.labels.end() || !kv.value().is_string() || it->second != kv.value().get_string()) return false;
    }
    return true;
  }

  void reconcile_daemonset(const std::string& ns, const std::string& name) {
    auto ds = get(ds_r_, ns, name);
    if (!ds || deleting(*ds)) return;
    const json::object* spec = obj_of(ds.get(), "spec");
    const json::object* tmpl = obj_of(spec, "template");
    if (tmpl == nullptr) return;
    const std::string hash = template_hash(*tmpl);
    const std::int64_t generation = int_of(meta(*ds), "generation").value_or(1);
    const json::object* node_selector = obj_of(obj_of(tmpl, "spec"), "nodeSelector");
    std::vector<object_ptr> pods = owned(pods_by_owner_, pod_r_, ns, uid_of(*ds));

    std::vector<object_ptr> kept;
    std::int64_t desired = 0;
    for (const auto& node : nodes_) {
      std::vector<object_ptr> here;
      for (const auto& p : pods)
        if (str_of(obj_of(p.get(), "spec"), "nodeName") == node.name) here.push_back(p);
      if (!node_matches(node, node_selector)) {
        for (const auto& p : here) remove(pod_r_, ns, name_of(*p));
        continue;
      }
      ++desired;
      object_ptr current;
      for (const auto& p : here) {
        if (!current && label(meta(*p), "controller-revision-hash") == hash) {
          current = p;
        } else if (p != current) {
          remove(pod_r_, ns, name_of(*p));  // an old revision, or a duplicate
        }
      }
      if (!current) {
        const std::string pod_name = name + "-" + random_suffix();
        const json::object extra{{"controller-revision-hash", hash}, {"pod-template-generation", std::to_string(generation)}};
        if (create_pod(*ds_r_, *ds, *tmpl, pod_name, node.name, extra)) current = get(pod_r_, ns, pod_name);
      }
      if (current) kept.push_back(current);
    }
    // Pods on nodes that do not exist (any more).
    for (const auto& p : pods) {
      const std::string n = str_of(obj_of(p.get(), "spec"), "nodeName");
      if (std::none_of(nodes_.begin(), nodes_.end(), [&](const simulated_node& s) { return s.name == n; }))
        remove(pod_r_, ns, name_of(*p));
    }

    const std::int64_t ready = progress_readiness(kept, {kind::daemonset, ns, name});
    std::int64_t updated = 0;
    for (const auto& p : kept)
      if (label(meta(*p), "controller-revision-hash") == hash) ++updated;
    json::object status;
    if (const auto* old = obj_of(ds.get(), "status")) status = *old;
    put(status, "currentNumberScheduled", static_cast<std::int64_t>(kept.size()), false);
    put(status, "numberMisscheduled", 0, false);
    put(status, "desiredNumberScheduled", desired, false);
    put(status, "numberReady", ready, false);
    put(status, "observedGeneration", generation, true);
    put(status, "updatedNumberScheduled", updated, true);
    put(status, "numberAvailable", ready, true);
    put(status, "numberUnavailable", std::max<std::int64_t>(0, desired - ready), true);
    write_status(ds_r_, *ds, std::move(status));
  }

  // ---- StatefulSets ----

  // The PersistentVolumeClaims of ordinal `i` (<claim>-<sts>-<i>, one per volumeClaimTemplate),
  // created when missing and bound at once to a PersistentVolume pvc-<claim uid> of the requested
  // size, as a dynamic provisioner would. With persistentVolumeClaimRetentionPolicy.whenDeleted
  // Delete a claim carries the StatefulSet's ownerReference, so it goes with the StatefulSet.
  void ensure_claims(const json::object& ss, std::int64_t i) {
    if (pvc_r_ == nullptr) return;
    const json::object* spec = obj_of(&ss, "spec");
    const json::array* templates = arr_of(spec, "volumeClaimTemplates");
    if (templates == nullptr) return;
    const std::string ns = str_of(meta(ss), "namespace");
    const bool delete_with_set = str_of(obj_of(spec, "persistentVolumeClaimRetentionPolicy"), "whenDeleted") == "Delete";
    for (const auto& tv : *templates) {
      const json::object* t = tv.if_object();
      if (t == nullptr) continue;
      const std::string claim = name_of(*t) + "-" + name_of(ss) + "-" + std::to_string(i);
      if (get(pvc_r_, ns, claim)) continue;
      json::object md{{"name", claim}, {"namespace", ns}};
      if (const auto* ml = obj_of(obj_of(spec, "selector"), "matchLabels")) md["labels"] = *ml;
      if (delete_with_set) {
        json::object ref = owner_reference(*ss_r_, ss);
        ref["controller"] = false;
        md["ownerReferences"] = json::array{std::move(ref)};
      }
      json::object pspec;
      if (const auto* ts = obj_of(t, "spec")) pspec = *ts;
      if (str_of(&pspec, "storageClassName").empty()) pspec["storageClassName"] = "standard";
      if (str_of(&pspec, "volumeMode").empty()) pspec["volumeMode"] = "Filesystem";
      json::object pvc{{"apiVersion", "v1"}, {"kind", "PersistentVolumeClaim"}, {"metadata", std::move(md)}, {"spec", pspec}};
      auto created = store_.create(*pvc_r_, ns, std::move(pvc));
      if (!created) {
        log::debug("controller claim create failed", {{"claim", claim}, {"error", created.error().message}});
        continue;
      }
      const std::string volume = "pvc-" + uid_of(**created);
      const std::string size = str_of(obj_of(obj_of(&pspec, "resources"), "requests"), "storage");
      json::array modes;
      if (const auto* m = arr_of(&pspec, "accessModes")) modes = *m;
      if (pv_r_ != nullptr) {
        json::object pv{{"apiVersion", "v1"},
                        {"kind", "PersistentVolume"},
                        {"metadata", json::object{{"name", volume}}},
                        {"spec", json::object{{"capacity", json::object{{"storage", size.empty() ? "1Gi" : size}}},
                                              {"accessModes", modes},
                                              {"persistentVolumeReclaimPolicy", "Delete"},
                                              {"storageClassName", str_of(&pspec, "storageClassName")},
                                              {"volumeMode", "Filesystem"},
                                              {"claimRef", json::object{{"kind", "PersistentVolumeClaim"},
                                                                        {"namespace", ns},
                                                                        {"name", claim},
                                                                        {"uid", uid_of(**created)}}}}}};
        if (auto v = store_.create(*pv_r_, "", std::move(pv))) write_status(pv_r_, **v, json::object{{"phase", "Bound"}});
      }
      json::object bound = **created;
      object_at(bound, "spec")["volumeName"] = volume;
      if (auto w = write(pvc_r_, std::move(bound))) {
        write_status(pvc_r_, *w,
                     json::object{{"phase", "Bound"},
                                  {"accessModes", modes},
                                  {"capacity", json::object{{"storage", size.empty() ? "1Gi" : size}}}});
      }
    }
  }

  // Claims of ordinals >= `replicas` go when the retention policy says whenScaled: Delete.
  void release_claims(const json::object& ss, std::int64_t replicas) {
    if (pvc_r_ == nullptr) return;
    const json::object* spec = obj_of(&ss, "spec");
    if (str_of(obj_of(spec, "persistentVolumeClaimRetentionPolicy"), "whenScaled") != "Delete") return;
    const json::array* templates = arr_of(spec, "volumeClaimTemplates");
    if (templates == nullptr) return;
    const std::string ns = str_of(meta(ss), "namespace");
    auto all = store_.list(*pvc_r_, ns, list_options{});
    if (!all) return;
    for (const auto& tv : *templates) {
      const json::object* t = tv.if_object();
      if (t == nullptr) continue;
      const std::string prefix = name_of(*t) + "-" + name_of(ss) + "-";
      for (const auto& pvc : all->items) {
        const std::string n = name_of(*pvc);
        if (!n.starts_with(prefix)) continue;
        const std::string suffix = n.substr(prefix.size());
        char* end = nullptr;
        const long long ord = std::strtoll(suffix.c_str(), &end, 10);
        if (!suffix.empty() && end == suffix.c_str() + suffix.size() && ord >= replicas) remove(pvc_r_, ns, n);
      }
    }
  }

  // The pod template of ordinal `i`: the claims' volumes added (replacing same-named volumes).
  static json::object ordinal_template(const json::object& ss, const json::object& tmpl, std::int64_t i) {
    const json::array* templates = arr_of(obj_of(&ss, "spec"), "volumeClaimTemplates");
    if (templates == nullptr || templates->empty()) return tmpl;
    json::object t = tmpl;
    json::object& pspec = object_at(t, "spec");
    json::array volumes;
    std::set<std::string> claims;
    for (const auto& tv : *templates)
      if (const auto* c = tv.if_object()) claims.insert(name_of(*c));
    if (const auto* v = arr_of(&pspec, "volumes")) {
      for (const auto& vol : *v)
        if (!(vol.is_object() && claims.contains(str_of(&vol.get_object(), "name")))) volumes.push_back(vol);
    }
    for (const auto& c : claims) {
      volumes.push_back(json::object{
          {"name", c},
          {"persistentVolumeClaim", json::object{{"claimName", c + "-" + name_of(ss) + "-" + std::to_string(i)}}}});
    }
    pspec["volumes"] = std::move(volumes);
    return t;
  }

  void reconcile_statefulset(const std::string& ns, const std::string& name) {
    auto ss = get(ss_r_, ns, name);
    if (!ss || deleting(*ss)) return;
    const json::object* spec = obj_of(ss.get(), "spec");
    const json::object* tmpl = obj_of(spec, "template");
    if (tmpl == nullptr) return;
    const std::int64_t desired = std::max<std::int64_t>(0, int_of(spec, "replicas").value_or(1));
    const bool parallel = str_of(spec, "podManagementPolicy") == "Parallel";
    const std::string update_revision = name + "-" + template_hash(*tmpl);
    const json::object* old_status = obj_of(ss.get(), "status");
    std::string current_revision = str_of(old_status, "currentRevision");
    if (current_revision.empty()) current_revision = update_revision;

    std::map<std::int64_t, object_ptr> by_ordinal;
    for (const auto& p : owned(pods_by_owner_, pod_r_, ns, uid_of(*ss))) {
      const std::string pn = name_of(*p);
      const std::string suffix = pn.size() > name.size() + 1 ? pn.substr(name.size() + 1) : std::string();
      char* end = nullptr;
      const long long ord = std::strtoll(suffix.c_str(), &end, 10);
      if (suffix.empty() || end != suffix.c_str() + suffix.size() || ord < 0) {
        remove(pod_r_, ns, pn);
        continue;
      }
      by_ordinal[ord] = p;
    }
    // Scale down from the highest ordinal.
    for (auto it = by_ordinal.begin(); it != by_ordinal.end();) {
      if (it->first >= desired) {
        remove(pod_r_, ns, name_of(*it->second));
        it = by_ordinal.erase(it);
      } else {
        ++it;
      }
    }
    release_claims(*ss, desired);
    std::vector<object_ptr> pods;
    for (auto& [ord, p] : by_ordinal) pods.push_back(p);
    std::int64_t ready = progress_readiness(pods, {kind::statefulset, ns, name});
    by_ordinal.clear();
    for (const auto& p : pods) {
      const std::string pn = name_of(*p);
      by_ordinal[std::strtoll(pn.substr(name.size() + 1).c_str(), nullptr, 10)] = p;
    }

    // Scale up: OrderedReady waits for each predecessor to be ready.
    bool blocked = false;
    for (std::int64_t i = 0; i < desired && !blocked; ++i) {
      auto it = by_ordinal.find(i);
      if (it != by_ordinal.end()) {
        if (!parallel && !pod_ready(*it->second)) blocked = true;
        continue;
      }
      const std::string pod_name = name + "-" + std::to_string(i);
      const json::object extra{{"controller-revision-hash", update_revision},
                               {"statefulset.kubernetes.io/pod-name", pod_name},
                               {"apps.kubernetes.io/pod-index", std::to_string(i)}};
      const std::string node = nodes_.empty() ? std::string() : nodes_[static_cast<std::size_t>(i) % nodes_.size()].name;
      ensure_claims(*ss, i);
      if (!create_pod(*ss_r_, *ss, ordinal_template(*ss, *tmpl, i), pod_name, node, extra)) break;
      if (auto p = get(pod_r_, ns, pod_name)) {
        by_ordinal[i] = p;
        if (pod_ready(*p)) {
          ++ready;
        } else if (!parallel) {
          blocked = true;
        }
      }
    }
    // Timers for pods created just now.
    pods.clear();
    for (auto& [ord, p] : by_ordinal) pods.push_back(p);
    ready = progress_readiness(pods, {kind::statefulset, ns, name});

    // Rolling update: all present and ready, replace the highest ordinal still on an old revision.
    const bool all_ready = static_cast<std::int64_t>(by_ordinal.size()) == desired &&
                           std::all_of(pods.begin(), pods.end(), [](const object_ptr& p) { return pod_ready(*p); });
    std::int64_t updated = 0, current = 0;
    for (const auto& p : pods) {
      const std::string rev = label(meta(*p), "controller-revision-hash");
      if (rev == update_revision) ++updated;
      if (rev == current_revision) ++current;
    }
    // updateStrategy: OnDelete replaces nothing; RollingUpdate only ordinals >= partition.
    const json::object* strategy = obj_of(spec, "updateStrategy");
    const bool on_delete = str_of(strategy, "type") == "OnDelete";
    const std::int64_t partition = std::max<std::int64_t>(0, int_of(obj_of(strategy, "rollingUpdate"), "partition").value_or(0));
    if (all_ready && !on_delete && updated < static_cast<std::int64_t>(pods.size())) {
      for (auto it = by_ordinal.rbegin(); it != by_ordinal.rend() && it->first >= partition; ++it) {
        if (label(meta(*it->second), "controller-revision-hash") != update_revision) {
          remove(pod_r_, ns, name_of(*it->second));
          break;  // recreated with the update revision on the next pass (the delete requeues us)
        }
      }
    }
    if (updated == static_cast<std::int64_t>(pods.size()) && static_cast<std::int64_t>(pods.size()) == desired) {
      current_revision = update_revision;
      current = updated;
    }

    json::object status;
    if (old_status != nullptr) status = *old_status;
    put(status, "observedGeneration", int_of(meta(*ss), "generation").value_or(0), true);
    put(status, "replicas", static_cast<std::int64_t>(pods.size()), false);
    put(status, "readyReplicas", ready, true);
    put(status, "availableReplicas", ready, false);
    put(status, "currentReplicas", current, true);
    put(status, "updatedReplicas", updated, true);
    status["currentRevision"] = current_revision;
    status["updateRevision"] = update_revision;
    put(status, "collisionCount", 0, false);
    write_status(ss_r_, *ss, std::move(status));
  }

  // ---- HorizontalPodAutoscalers ----

  void reconcile_hpa(const std::string& ns, const std::string& name) {
    auto hpa = get(hpa_r_, ns, name);
    if (!hpa || deleting(*hpa)) return;
    const json::object* spec = obj_of(hpa.get(), "spec");
    const json::object* ref = obj_of(spec, "scaleTargetRef");
    const std::string target_kind = str_of(ref, "kind");
    const std::string target_name = str_of(ref, "name");
    const std::int64_t min_replicas = int_of(spec, "minReplicas").value_or(1);
    const std::int64_t max_replicas = int_of(spec, "maxReplicas").value_or(min_replicas);
    const resource_info* target_r = store_.find_kind(str_of(ref, "apiVersion"), target_kind);
    object_ptr target = target_r != nullptr ? get(target_r, ns, target_name) : nullptr;
    const std::string now = now_string();

    json::object status;
    if (const auto* old = obj_of(hpa.get(), "status")) status = *old;
    json::array conds;
    if (const auto* c = arr_of(&status, "conditions")) conds = *c;
    put(status, "observedGeneration", int_of(meta(*hpa), "generation").value_or(0), true);
    if (!target) {
      std::string plural = target_r != nullptr ? target_r->resource : std::string("deployments");
      std::string group = target_r != nullptr ? target_r->group : std::string("apps");
      set_condition(conds, "AbleToScale", "False", "FailedGetScale",
                    "the HPA controller was unable to get the target's current scale: " + plural + "/scale" +
                        (group.empty() ? "" : "." + group) + " \"" + target_name + "\" not found",
                    now);
      put(status, "desiredReplicas", int_of(&status, "desiredReplicas").value_or(0), false);
    } else {
      const std::int64_t spec_replicas = int_of(obj_of(target.get(), "spec"), "replicas").value_or(1);
      const std::int64_t current = int_of(obj_of(target.get(), "status"), "replicas").value_or(0);
      put(status, "currentReplicas", current, true);
      set_condition(conds, "AbleToScale", "True", "SucceededGetScale", "the HPA controller was able to get the target's current scale", now);
      if (spec_replicas == 0) {
        put(status, "desiredReplicas", 0, false);
        set_condition(conds, "ScalingActive", "False", "ScalingDisabled",
                      "scaling is disabled since the replica count of the target is zero", now);
      } else {
        const std::int64_t desired = std::clamp(spec_replicas, min_replicas, std::max(min_replicas, max_replicas));
        put(status, "desiredReplicas", desired, false);
        set_condition(conds, "ScalingActive", "True", "ValidMetricFound",
                      "the HPA was able to successfully calculate a replica count from the target's replicas", now);
        if (desired != spec_replicas) {
          set_condition(conds, "ScalingLimited", "True", desired > spec_replicas ? "TooFewReplicas" : "TooManyReplicas",
                        desired > spec_replicas ? "the desired replica count is less than the minimum replica count"
                                                : "the desired replica count is more than the maximum replica count",
                        now);
        } else {
          set_condition(conds, "ScalingLimited", "False", "DesiredWithinRange",
                        "the desired count is within the acceptable range", now);
        }
      }
    }
    status["conditions"] = std::move(conds);
    write_status(hpa_r_, *hpa, std::move(status));
  }

  asio::any_io_executor ex_;
  store& store_;
  controller_options opts_;
  std::vector<simulated_node> nodes_;
  const resource_info* deploy_r_ = nullptr;
  const resource_info* rs_r_ = nullptr;
  const resource_info* ds_r_ = nullptr;
  const resource_info* ss_r_ = nullptr;
  const resource_info* pod_r_ = nullptr;
  const resource_info* pvc_r_ = nullptr;
  const resource_info* pv_r_ = nullptr;
  const resource_info* hpa_r_ = nullptr;

  owner_index rs_by_owner_;    // deployment uid -> ReplicaSet names
  owner_index pods_by_owner_;  // ReplicaSet/DaemonSet/StatefulSet uid -> pod names
  std::unordered_map<std::string, std::set<std::string>> hpa_targets_;  // "ns/Kind/name" -> HPA names
  std::unordered_map<std::string, pod_timing> timings_;                 // pod uid -> readiness

  std::deque<work_key> queue_;
  std::unordered_set<work_key, work_key_hash> queued_;
  bool drain_posted_ = false;
  bool paused_ = false;
  bool stopped_ = false;

  asio::steady_timer timer_;
  steady::time_point armed_ = steady::time_point::max();
  std::priority_queue<wake, std::vector<wake>, std::greater<>> wakes_;
  std::unordered_map<work_key, steady::time_point, work_key_hash> scheduled_;

  std::mt19937_64 rng_;
  std::size_t next_node_ = 0;
  std::uint32_t next_pod_ip_ = 2;
};

controllers::controllers(asio::any_io_executor ex, store& s, controller_options opts)
    : impl_(std::make_shared<impl>(std::move(ex), s, std::move(opts))) {
  impl_->start();
}

controllers::~controllers() { impl_->stop(); }

void controllers::pause(bool paused) { impl_->pause(paused); }
bool controllers::paused() const noexcept { return impl_->paused(); }
const std::vector<simulated_node>& controllers::nodes() const noexcept { return impl_->nodes(); }
std::size_t controllers::pending() const noexcept { return impl_->pending(); }

}  // namespace kubesim::world
