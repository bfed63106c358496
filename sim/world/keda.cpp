#include "sim/world/keda.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "k8s/http_client.hpp"
#include "k8s/log.hpp"

namespace kubesim::world {

namespace {

namespace json = boost::json;
namespace asio = boost::asio;
namespace http = canaryd::http;
namespace log = canaryd::log;
using steady = std::chrono::steady_clock;

constexpr std::string_view paused_annotation = "autoscaling.keda.sh/paused-replicas";

const json::object* obj_of(const json::object* o, std::string_view k) {
  if (o == nullptr) return nullptr;
  auto it = o->find(k);
  return it != o->end() && it->value().is_object() ? &it->value().as_object() : nullptr;
}
const json::array* arr_of(const json::object* o, std::string_view k) {
  if (o == nullptr) return nullptr;
  auto it = o->find(k);
  return it != o->end() && it->value().is_array() ? &it->value().as_array() : nullptr;
}
std::string str_of(const json::object* o, std::string_view k) {
  if (o == nullptr) return {};
  auto it = o->find(k);
  return it != o->end() && it->value().is_string() ? std::string(it->value().as_string()) : std::string();
}
std::optional<std::int64_t> int_of(const json::object* o, std::string_view k) {
  if (o == nullptr) return std::nullopt;
  auto it = o->find(k);
  if (it == o->end()) return std::nullopt;
  if (it->value().is_int64()) return it->value().as_int64();
  if (it->value().is_uint64()) return static_cast<std::int64_t>(it->value().as_uint64());
  if (it->value().is_double()) return static_cast<std::int64_t>(it->value().as_double());
  return std::nullopt;
}
std::optional<double> number_of(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::string t(s);
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::string percent_encode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : s) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out += static_cast<char>(ch);
    } else {
      out += '%';
      out += hex[ch >> 4];
      out += hex[ch & 15];
    }
  }
  return out;
}

std::string rfc3339_now() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The value of a Prometheus /api/v1/query answer: the first sample of a vector, a scalar, or 0
// for an empty vector (KEDA's ignoreNullValues default); nullopt when the answer is an error.
std::optional<double> prometheus_value(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object() || str_of(&v.as_object(), "status") != "success") return std::nullopt;
  const json::object* data = obj_of(&v.as_object(), "data");
  const std::string type = str_of(data, "resultType");
  const json::array* result = arr_of(data, "result");
  const json::array* sample = nullptr;
  if (type == "vector" && result != nullptr) {
    if (result->empty()) return 0.0;
    if ((*result)[0].is_object()) sample = arr_of(&(*result)[0].as_object(), "value");
  } else if (type == "scalar" && result != nullptr) {
    sample = result;
  }
  if (sample == nullptr || sample->size() != 2 || !(*sample)[1].is_string()) return std::nullopt;
  return number_of((*sample)[1].as_string());
}

void set_condition(json::array& conds, std::string_view type, std::string_view status, std::string_view reason,
                   std::string_view message) {
  json::object c{{"type", type}, {"status", status}, {"reason", reason}, {"message", message}};
  for (auto& e : conds) {
    if (e.is_object() && str_of(&e.as_object(), "type") == type) {
      e = std::move(c);
      return;
    }
  }
  conds.push_back(std::move(c));
}

struct trigger_state {
  std::optional<double> value;  // last answer; nullopt: never answered or failing
  std::string error;
};

struct so_state {
  steady::time_point next_poll{};
  std::vector<trigger_state> triggers;
  std::optional<steady::time_point> last_active;
  std::string last_active_time;  // RFC 3339, for status.lastActiveTime
};

class keda_impl final : public keda_operator, public std::enable_shared_from_this<keda_impl> {
 public:
  keda_impl(asio::any_io_executor ex, store& s, keda_options opts)
      : ex_(std::move(ex)), store_(s), opts_(opts), timer_(ex_) {}

  void start() {
    std::weak_ptr<keda_impl> weak = weak_from_this();
    store_.on_change([weak](const change& c) {
      if (auto self = weak.lock()) self->observe(c);
    });
    asio::co_spawn(ex_, [self = shared_from_this()]() { return self->loop(); }, [](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        log::error("kubesim KEDA loop failed", {{"error", x.what()}});
      }
    });
  }

  void stop() override {
    stopped_ = true;
    timer_.cancel();
    for (auto& [_, c] : clients_) c->shutdown();
  }

 private:
  void observe(const change& c) {
    if (stopped_ || c.resource == nullptr || !c.object) return;
    const json::object* meta = obj_of(c.object.get(), "metadata");
    const std::string key = str_of(meta, "namespace") + "/" + str_of(meta, "name");
    if (c.resource->group == "keda.sh" && c.resource->resource == "scaledobjects") {
      if (c.type == event_type::deleted) {
        states_.erase(key);
        return;
      }
      // Our own status writes change neither the spec nor the annotations: no early poll.
      if (c.previous) {
        const json::object* before = obj_of(c.previous.get(), "metadata");
        auto annotations = [&](const json::object* m) { return obj_of(m, "annotations") ? *obj_of(m, "annotations") : json::object(); };
        if (obj_of(c.previous.get(), "spec") && obj_of(c.object.get(), "spec") &&
            *obj_of(c.previous.get(), "spec") == *obj_of(c.object.get(), "spec") && annotations(before) == annotations(meta)) {
          states_.try_emplace(key);
          return;
        }
      }
      // A spec or annotation change is acted on at once, with a fresh poll.
      states_[key].next_poll = steady::time_point{};
      timer_.cancel();
    }
  }

  asio::awaitable<void> loop() {
    while (!stopped_) {
      std::vector<std::string> keys;
      for (const auto& [k, _] : states_) keys.push_back(k);
      for (const auto& k : keys) {
        if (stopped_) co_return;
        try {
          co_await reconcile(k);
        } catch (const std::exception& e) {
          log::error("kubesim KEDA reconcile failed", {{"scaledobject", k}, {"error", e.what()}});
        }
      }
      timer_.expires_after(opts_.tick);
      boost::system::error_code ec;
      co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  const resource_info* so_resource() const { return store_.find("keda.sh", "v1alpha1", "scaledobjects"); }
  const resource_info* hpa_resource() const { return store_.find("autoscaling", "v2", "horizontalpodautoscalers"); }

  asio::awaitable<std::optional<double>> query(const std::string& server, const std::string& promql, std::string& error) {
    auto o = http::parse_origin(server);
    if (!o) {
      error = "bad serverAddress " + server;
      co_return std::nullopt;
    }
    const std::string origin_key = o->scheme + "://" + o->host + ":" + o->port;
    auto it = clients_.find(origin_key);
    if (it == clients_.end()) {
      http::client_options co;
      co.user_agent = "kubesim-keda";
      auto c = http::make_client(ex_, *o, co);
      if (!c) {
        error = c.error().message();
        co_return std::nullopt;
      }
      it = clients_.emplace(origin_key, std::move(*c)).first;
    }
    // serverAddress may carry a path prefix (http://prometheus:9090/prom).
    std::string prefix;
    if (auto scheme_end = server.find("://"); scheme_end != std::string::npos) {
      if (auto slash = server.find('/', scheme_end + 3); slash != std::string::npos) prefix = server.substr(slash);
    }
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    http::request req;
    req.target = prefix + "/api/v1/query?query=" + percent_encode(promql);
    auto res = co_await it->second->send(std::move(req), opts_.query_timeout);
    if (!res) {
      error = res.error().message();
      co_return std::nullopt;
    }
    if (res->status != 200) {
      error = "prometheus answered " + std::to_string(res->status) + ": " + res->body.substr(0, 200);
      co_return std::nullopt;
    }
    auto v = prometheus_value(res->body);
    if (!v) error = "prometheus answer not understood: " + res->body.substr(0, 200);
    co_return v;
  }

  asio::awaitable<void> reconcile(const std::string& key) {
    const resource_info* so_r = so_resource();
    const resource_info* hpa_r = hpa_resource();
    if (so_r == nullptr || hpa_r == nullptr) co_return;
    const std::string ns = key.substr(0, key.find('/'));
    const std::string name = key.substr(key.find('/') + 1);
    auto got = store_.get(*so_r, ns, name);
    if (!got) {
      states_.erase(key);
      co_return;
    }
    object_ptr so = *got;
    const json::object* meta = obj_of(so.get(), "metadata");
    if (meta != nullptr && meta->contains("deletionTimestamp")) co_return;
    const json::object* spec = obj_of(so.get(), "spec");
    const json::object* ref = obj_of(spec, "scaleTargetRef");
    const std::string target_api = str_of(ref, "apiVersion").empty() ? "apps/v1" : str_of(ref, "apiVersion");
    const std::string target_kind = str_of(ref, "kind").empty() ? "Deployment" : str_of(ref, "kind");
    const std::string target_name = str_of(ref, "name");
    const std::int64_t min_count = int_of(spec, "minReplicaCount").value_or(0);
    const std::int64_t max_count = int_of(spec, "maxReplicaCount").value_or(100);
    const std::optional<std::int64_t> idle_count = int_of(spec, "idleReplicaCount");
    const std::int64_t polling = int_of(spec, "pollingInterval").value_or(30);
    const std::int64_t cooldown = int_of(spec, "cooldownPeriod").value_or(300);
    const json::object* advanced = obj_of(spec, "advanced");
    const json::object* hpa_config = obj_of(advanced, "horizontalPodAutoscalerConfig");
    const std::string hpa_name = str_of(hpa_config, "name").empty() ? "keda-hpa-" + name : str_of(hpa_config, "name");
    const json::array* triggers = arr_of(spec, "triggers");

    json::object status;
    if (const auto* old = obj_of(so.get(), "status")) status = *old;
    json::array conds;
    if (const auto* c = arr_of(&status, "conditions")) conds = *c;

    const resource_info* target_r = store_.find_kind(target_api, target_kind);
    object_ptr target;
    if (target_r != nullptr) {
      if (auto t = store_.get(*target_r, ns, target_name)) target = *t;
    }
    if (!target) {
      set_condition(conds, "Ready", "False", "ScaledObjectCheckFailed",
                    "ScaledObject doesn't have correct scaleTargetRef specification: " + target_kind + " " + target_name +
                        " not found");
      status["conditions"] = std::move(conds);
      write_status(*so_r, *so, std::move(status));
      co_return;
    }
    status["scaleTargetKind"] = target_api + "." + target_kind;
    status["scaleTargetGVKR"] = json::object{{"group", target_r->group},
                                             {"version", target_r->version},
                                             {"kind", target_r->kind},
                                             {"resource", target_r->resource}};
    status["hpaName"] = hpa_name;
    json::array metric_names;
    for (std::size_t i = 0; triggers != nullptr && i < triggers->size(); ++i) {
      const json::object* t = (*triggers)[i].is_object() ? &(*triggers)[i].as_object() : nullptr;
      metric_names.push_back(json::string("s" + std::to_string(i) + "-" + str_of(t, "type")));
    }
    status["externalMetricNames"] = metric_names;
    const std::int64_t current = int_of(obj_of(target.get(), "spec"), "replicas").value_or(1);
    if (!status.contains("originalReplicaCount")) status["originalReplicaCount"] = current;

    // Paused: the target pinned, no HPA.
    std::optional<std::int64_t> paused;
    if (const json::object* annotations = obj_of(meta, "annotations")) {
      if (auto it = annotations->find(paused_annotation); it != annotations->end() && it->value().is_string()) {
        if (auto n = number_of(it->value().as_string()); n && *n >= 0) paused = static_cast<std::int64_t>(*n);
      }
    }
    if (paused) {
      delete_hpa(*hpa_r, ns, hpa_name, *so);
      scale(*target_r, *target, *paused);
      status["pausedReplicaCount"] = *paused;
      set_condition(conds, "Ready", "True", "ScaledObjectReady", "ScaledObject is defined correctly and is ready for scaling");
      set_condition(conds, "Active", "False", "ScalerNotActive", "Scaling is paused");
      set_condition(conds, "Fallback", "False", "NoFallbackFound", "No fallbacks are active on this scaled object");
      set_condition(conds, "Paused", "True", "ScaledObjectPaused", "ScaledObject is paused");
      status["conditions"] = std::move(conds);
      write_status(*so_r, *so, std::move(status));
      co_return;
    }
    status.erase("pausedReplicaCount");
    ensure_hpa(*hpa_r, ns, hpa_name, *so, target_api, target_kind, target_name, std::max<std::int64_t>(min_count, 1),
               max_count);

    // Poll the triggers when due.
    so_state& st = states_[key];
    const auto now = steady::now();
    if (now >= st.next_poll) {
      st.next_poll = now + std::chrono::seconds(std::max<std::int64_t>(polling, 1));
      const std::size_t n = triggers ? triggers->size() : 0;
      st.triggers.resize(n);
      for (std::size_t i = 0; i < n; ++i) {
        const json::object* t = (*triggers)[i].is_object() ? &(*triggers)[i].as_object() : nullptr;
        if (str_of(t, "type") != "prometheus") continue;
        const json::object* md = obj_of(t, "metadata");
        std::string error;
        auto v = co_await query(str_of(md, "serverAddress"), str_of(md, "query"), error);
        if (stopped_) co_return;
        auto& ts = states_[key].triggers;  // the map may have changed while the query ran
        if (i >= ts.size()) co_return;
        ts[i].value = v;
        ts[i].error = error;
        if (!v) log::debug("kubesim KEDA trigger failed", {{"scaledobject", key}, {"error", error}});
      }
    }
    // The object may have changed while the queries ran: act on what the store holds now.
    auto fresh = store_.get(*so_r, ns, name);
    if (!fresh || *fresh != so) co_return;  // the change re-queued it
    if (auto t = store_.get(*target_r, ns, target_name)) target = *t;

    so_state& s = states_[key];
    bool active = false;
    bool failing = false;
    std::optional<std::int64_t> wanted_by_metrics;
    for (std::size_t i = 0; triggers != nullptr && i < triggers->size() && i < s.triggers.size(); ++i) {
      const json::object* t = (*triggers)[i].is_object() ? &(*triggers)[i].as_object() : nullptr;
      if (str_of(t, "type") != "prometheus") continue;
      const json::object* md = obj_of(t, "metadata");
      if (!s.triggers[i].value) {
        failing = true;
        continue;
      }
      const double value = *s.triggers[i].value;
      const double threshold = number_of(str_of(md, "threshold")).value_or(1.0);
      const double activation = number_of(str_of(md, "activationThreshold")).value_or(0.0);
      if (value > activation) active = true;
      if (threshold > 0) {
        const auto r = static_cast<std::int64_t>(std::ceil(value / threshold));
        wanted_by_metrics = std::max(wanted_by_metrics.value_or(0), r);
      }
    }
    if (active) {
      s.last_active = now;
      s.last_active_time = rfc3339_now();
    }
    if (!s.last_active_time.empty()) status["lastActiveTime"] = s.last_active_time;
    const std::int64_t replicas = int_of(obj_of(target.get(), "spec"), "replicas").value_or(1);
    const std::int64_t floor = std::max<std::int64_t>(min_count, 1);
    std::optional<std::int64_t> desired;
    if (replicas == 0) {
      if (active) desired = std::clamp(wanted_by_metrics.value_or(floor), floor, std::max(floor, max_count));
    } else if (!active && min_count == 0 && !failing &&
               (!s.last_active || now - *s.last_active >= std::chrono::seconds(cooldown))) {
      desired = idle_count.value_or(0);
    } else if (wanted_by_metrics) {
      desired = std::clamp(*wanted_by_metrics, floor, std::max(floor, max_count));
    }
    if (desired) scale(*target_r, *target, *desired);

    set_condition(conds, "Ready", failing ? "False" : "True", failing ? "TriggerError" : "ScaledObjectReady",
                  failing ? "Triggers defined in ScaledObject are not working correctly"
                          : "ScaledObject is defined correctly and is ready for scaling");
    set_condition(conds, "Active", active ? "True" : "False", active ? "ScalerActive" : "ScalerNotActive",
                  active ? "Scaling is performed because triggers are active"
                         : "Scaling is not performed because triggers are not active");
    set_condition(conds, "Fallback", "False", "NoFallbackFound", "No fallbacks are active on this scaled object");
    set_condition(conds, "Paused", "False", "ScaledObjectUnpaused", "pause annotation removed for ScaledObject");
    status["conditions"] = std::move(conds);
    write_status(*so_r, *so, std::move(status));
  }

  void write_status(const resource_info& r, const json::object& current, json::object status) {
    if (const auto* old = obj_of(&current, "status"); old != nullptr && *old == status) return;
    json::object o = current;
    o["status"] = std::move(status);
    const json::object* meta = obj_of(&current, "metadata");
    auto res = store_.update(r, str_of(meta, "namespace"), str_of(meta, "name"), std::move(o), true);
    if (!res) log::debug("kubesim KEDA status write failed", {{"error", res.error().message}});
  }

  void scale(const resource_info& r, const json::object& target, std::int64_t replicas) {
    const json::object* spec = obj_of(&target, "spec");
    if (int_of(spec, "replicas").value_or(1) == replicas) return;
    json::object o = target;
    o["spec"].as_object()["replicas"] = replicas;
    const json::object* meta = obj_of(&target, "metadata");
    auto res = store_.update(r, str_of(meta, "namespace"), str_of(meta, "name"), std::move(o), false);
    if (!res) {
      log::debug("kubesim KEDA scale failed", {{"error", res.error().message}});
    } else {
      log::info("kubesim KEDA scaled", {{"target", str_of(meta, "name")}, {"replicas", replicas}});
    }
  }

  static bool controlled_by(const json::object& o, const json::object& owner) {
    const json::array* refs = arr_of(obj_of(&o, "metadata"), "ownerReferences");
    const std::string uid = str_of(obj_of(&owner, "metadata"), "uid");
    if (refs == nullptr) return false;
    for (const auto& r : *refs) {
      if (r.is_object() && str_of(&r.as_object(), "uid") == uid) return true;
    }
    return false;
  }

  void delete_hpa(const resource_info& hpa_r, const std::string& ns, const std::string& hpa_name, const json::object& so) {
    auto existing = store_.get(hpa_r, ns, hpa_name);
    if (!existing || !controlled_by(**existing, so)) return;
    (void)store_.remove(hpa_r, ns, hpa_name);
  }

  void ensure_hpa(const resource_info& hpa_r, const std::string& ns, const std::string& hpa_name, const json::object& so,
                  const std::string& api, const std::string& kind, const std::string& target, std::int64_t min_replicas,
                  std::int64_t max_replicas) {
    const json::object* meta = obj_of(&so, "metadata");
    const json::object* spec = obj_of(&so, "spec");
    const std::string so_name = str_of(meta, "name");
    json::array metrics;
    const json::array* triggers = arr_of(spec, "triggers");
    for (std::size_t i = 0; triggers != nullptr && i < triggers->size(); ++i) {
      const json::object* t = (*triggers)[i].is_object() ? &(*triggers)[i].as_object() : nullptr;
      std::string threshold = str_of(obj_of(t, "metadata"), "threshold");
      if (threshold.empty()) threshold = "1";
      json::object target_spec{{"type", "AverageValue"}, {"averageValue", threshold}};
      if (str_of(t, "metricType") == "Value") target_spec = json::object{{"type", "Value"}, {"value", threshold}};
      metrics.push_back(json::object{
          {"type", "External"},
          {"external",
           json::object{{"metric", json::object{{"name", "s" + std::to_string(i) + "-" + str_of(t, "type")},
                                                {"selector", json::object{{"matchLabels",
                                                                           json::object{{"scaledobject.keda.sh/name", so_name}}}}}}},
                        {"target", std::move(target_spec)}}}});
    }
    json::object hspec{{"scaleTargetRef", json::object{{"apiVersion", api}, {"kind", kind}, {"name", target}}},
                       {"minReplicas", min_replicas},
                       {"maxReplicas", max_replicas},
                       {"metrics", std::move(metrics)}};
    if (const json::object* behavior = obj_of(obj_of(obj_of(spec, "advanced"), "horizontalPodAutoscalerConfig"), "behavior"))
      hspec["behavior"] = *behavior;
    auto existing = store_.get(hpa_r, ns, hpa_name);
    if (existing) {
      if (!controlled_by(**existing, so)) return;  // someone else's HPA: KEDA reports it; kubesim leaves it
      const json::object* old = obj_of(existing->get(), "spec");
      if (old != nullptr && *old == hspec) return;
      json::object o = **existing;
      o["spec"] = std::move(hspec);
      (void)store_.update(hpa_r, ns, hpa_name, std::move(o), false);
      return;
    }
    json::object hmeta{{"name", hpa_name},
                       {"namespace", ns},
                       {"labels", json::object{{"app.kubernetes.io/managed-by", "keda-operator"},
                                               {"app.kubernetes.io/name", hpa_name},
                                               {"app.kubernetes.io/part-of", so_name},
                                               {"scaledobject.keda.sh/name", so_name}}},
                       {"ownerReferences", json::array{json::object{{"apiVersion", "keda.sh/v1alpha1"},
                                                                    {"kind", "ScaledObject"},
                                                                    {"name", so_name},
                                                                    {"uid", str_of(meta, "uid")},
                                                                    {"controller", true},
                                                                    {"blockOwnerDeletion", true}}}}};
    json::object hpa{{"apiVersion", "autoscaling/v2"}, {"kind", "HorizontalPodAutoscaler"}, {"metadata", std::move(hmeta)},
                     {"spec", std::move(hspec)}};
    auto res = store_.create(hpa_r, ns, std::move(hpa));
    if (!res) log::debug("kubesim KEDA HPA create failed", {{"error", res.error().message}});
  }

  asio::any_io_executor ex_;
  store& store_;
  keda_options opts_;
  asio::steady_timer timer_;
  bool stopped_ = false;
  std::map<std::string, so_state> states_;  // "ns/name" of every ScaledObject
  std::map<std::string, std::unique_ptr<http::client>> clients_;  // by origin
};

}  // namespace

std::unique_ptr<keda_operator> start_keda(asio::any_io_executor ex, store& s, keda_options opts) {
  auto impl = std::make_shared<keda_impl>(std::move(ex), s, opts);
  impl->start();
  // The caller owns a handle whose destruction stops the loop; the loop holds the impl.
  struct handle final : keda_operator {
    std::shared_ptr<keda_impl> impl;
    explicit handle(std::shared_ptr<keda_impl> i) : impl(std::move(i)) {}
    ~handle() override { impl->stop(); }
    void stop() override { impl->stop(); }
  };
  return std::make_unique<handle>(std::move(impl));
}

}  // namespace kubesim::world
