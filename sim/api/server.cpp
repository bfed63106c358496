#include "sim/api/server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <deque>
#include <map>
#include <random>
#include <set>

#include "k8s/json_text.hpp"
#include "k8s/log.hpp"
#include "sim/api/discovery.hpp"
#include "sim/api/external_metrics.hpp"
#include "sim/api/table.hpp"
#include "sim/api/yaml_json.hpp"
#include "sim/json/json_patch.hpp"
#include "sim/json/merge_patch.hpp"
#include "sim/json/schema.hpp"
#include "sim/json/selector.hpp"
#include "sim/json/strategic_merge.hpp"

namespace kubesim {
namespace {

namespace asio = boost::asio;
namespace http = canaryd::http;
namespace json = boost::json;
namespace log = canaryd::log;
using namespace asio::experimental::awaitable_operators;
using steady = std::chrono::steady_clock;
using sys_clock = std::chrono::system_clock;

constexpr std::string_view json_type = "application/json";

// --- Status objects ------------------------------------------------------------------------

json::object status_object(const api_error& e) {
  json::object s{{"kind", "Status"}, {"apiVersion", "v1"}, {"metadata", json::object()}, {"status", "Failure"},
                 {"message", e.message}};
  if (!e.reason.empty()) s["reason"] = e.reason;
  if (!e.details.empty()) s["details"] = e.details;
  s["code"] = e.code;
  return s;
}

http::response json_response(int code, std::string body, std::string_view content_type = json_type) {
  http::response r;
  r.status = code;
  r.headers.push_back({"Content-Type", std::string(content_type)});
  r.headers.push_back({"Cache-Control", "no-cache, private"});
  r.body = std::move(body);
  return r;
}

http::response error_response(const api_error& e) { return json_response(e.code, json::serialize(status_object(e))); }

api_error path_not_found() { return {404, "NotFound", "the server could not find the requested resource", {}}; }
api_error method_not_allowed() {
  return {405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}};
}
api_error unauthorized() { return {401, "Unauthorized", "Unauthorized", {}}; }
api_error internal(std::string_view why) {
  return {500, "InternalError", fmt::format("Internal error occurred: {}", why),
          json::object{{"causes", json::array{json::object{{"message", why}}}}}};
}
api_error unsupported_media(std::string_view accepted) {
  return {415, "UnsupportedMediaType",
          fmt::format("the body of the request was in an unknown format - accepted media types include: {}", accepted), {}};
}

// --- small helpers ---------------------------------------------------------------------------

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

// "application/json; charset=utf-8" -> "application/json"
std::string media_type(std::optional<std::string_view> v) {
  if (!v) return {};
  auto s = *v;
  auto semi = s.find(';');
  return lower(trim(s.substr(0, semi)));
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    auto p = s.find(sep, start);
    out.emplace_back(s.substr(start, p == std::string_view::npos ? std::string_view::npos : p - start));
    if (p == std::string_view::npos) break;
    start = p + 1;
  }
  return out;
}

std::string rfc3339(sys_clock::time_point t) {
  auto secs = sys_clock::to_time_t(t);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

bool truthy(std::optional<std::string_view> v) { return v && (*v == "true" || *v == "1"); }

// Serializes an object, presenting it in `api_version` (objects keep the version they were
// written in; a multi-version CRD serves them in each) and, for items of a built-in list,
// without apiVersion and kind (a real server's typed lists carry no TypeMeta per item).
void append_object(std::string& out, const json::object& o, std::string_view api_version, bool strip_type) {
  auto* av = o.if_contains("apiVersion");
  bool same = av && av->is_string() && av->get_string() == api_version;
  if (!strip_type && same) {
    out += json::serialize(o);
    return;
  }
  out += '{';
  bool first = true;
  for (const auto& kv : o) {
    bool type_key = kv.key() == "apiVersion" || kv.key() == "kind";
    if (strip_type && type_key) continue;
    if (!first) out += ',';
    first = false;
    canaryd::json_text::append_quoted(out, kv.key());
    out += ':';
    if (kv.key() == "apiVersion") canaryd::json_text::append_quoted(out, api_version);
    else out += json::serialize(kv.value());
  }
  out += '}';
}

json::object presented(const json::object& o, const resource_info& r) {
  auto* av = o.if_contains("apiVersion");
  if (av && av->is_string() && av->get_string() == r.api_version()) return o;
  json::object copy = o;
  copy["apiVersion"] = r.api_version();
  return copy;
}

// --- content negotiation ---------------------------------------------------------------------

struct output_format {
  enum kind_t { object, table, partial } kind = object;
  std::string api_version = "meta.k8s.io/v1";  // of a Table or PartialObjectMetadata
  std::string content_type = std::string(json_type);
};

result<output_format> negotiate(std::optional<std::string_view> accept) {
  output_format f;
  if (!accept || trim(*accept).empty()) return f;
  bool protobuf_only = true;
  for (const auto& range : split(*accept, ',')) {
    auto parts = split(range, ';');
    auto type = lower(trim(parts[0]));
    std::map<std::string, std::string> params;
    for (std::size_t i = 1; i < parts.size(); ++i) {
      auto eq = parts[i].find('=');
      if (eq == std::string::npos) continue;
      params[lower(trim(parts[i].substr(0, eq)))] = trim(parts[i].substr(eq + 1));
    }
    bool json_like = type == "application/json" || type == "*/*" || type == "application/*" ||
                     type == "application/yaml";
    if (!json_like) continue;
    protobuf_only = false;
    auto as = params["as"];
    if (as.empty()) return f;
    if (params["g"] != "meta.k8s.io") continue;
    auto v = params["v"];
    if (v != "v1" && v != "v1beta1") continue;
    if (as == "Table") {
      f.kind = output_format::table;
      f.api_version = "meta.k8s.io/" + v;
      f.content_type = fmt::format("application/json;as=Table;v={};g=meta.k8s.io", v);
      return f;
    }
    if (as == "PartialObjectMetadata" || as == "PartialObjectMetadataList") {
      f.kind = output_format::partial;
      f.api_version = "meta.k8s.io/" + v;
      f.content_type = fmt::format("application/json;as={};v={};g=meta.k8s.io", as, v);
      return f;
    }
  }
  if (protobuf_only) {
    // Only protobuf (which kubesim does not speak) or something unknown: JSON is still what a
    // Kubernetes client can read, and client-go always lists it as a fallback.
    return f;
  }
  return api_error{406, "NotAcceptable",
                   "only the following media types are accepted: application/json, application/yaml, "
                   "application/vnd.kubernetes.protobuf",
                   {}};
}

// --- routing -----------------------------------------------------------------------------------

struct route {
  const resource_info* r = nullptr;
  std::string ns;
  std::string name;
  std::string sub;       // "", "status", "scale"
  bool watch_path = false;  // /api/v1/watch/...
};

// Fields a field selector may name, beyond metadata.name and metadata.namespace.
std::vector<std::string> selectable_fields(const resource_info& r) {
  if (r.custom) return {};
  if (r.group.empty() && r.resource == "pods")
    return {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork",
            "status.phase", "status.podIP", "status.nominatedNodeName"};
  if (r.group.empty() && r.resource == "events")
    return {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
            "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
            "reportingComponent", "source", "type"};
  if (r.group == "events.k8s.io" && r.resource == "events")
    return {"regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid", "reason", "type",
            "reportingController"};
  if (r.group.empty() && r.resource == "secrets") return {"type"};
  if (r.group.empty() && r.resource == "namespaces") return {"status.phase"};
  if (r.group == "apps" && r.resource == "replicasets") return {"status.replicas"};
  return {};
}

struct selectors {
  label_selector labels;
  field_selector fields;
  bool any() const { return !labels.empty() || !fields.empty(); }
  bool matches(const json::object& o) const { return labels.matches_object(o) && fields.matches(o); }
};

result<selectors> parse_selectors(std::string_view labels, std::string_view fields, const resource_info& r) {
  selectors s;
  if (!labels.empty()) {
    auto p = parse_label_selector(labels);
    if (!p) return bad_request_error(p.error().message);
    s.labels = std::move(*p);
  }
  if (!fields.empty()) {
    auto p = parse_field_selector(fields, selectable_fields(r));
    if (!p) return bad_request_error(p.error().message);
    s.fields = std::move(*p);
  }
  return s;
}

result<selectors> parse_selectors(const http::target_parts& t, const resource_info& r) {
  return parse_selectors(t.param("labelSelector").value_or(""), t.param("fieldSelector").value_or(""), r);
}

// ".spec.replicas" -> the value there (null if missing)
const json::value* at_path(const json::object& o, std::string_view path) {
  if (path.starts_with(".")) path.remove_prefix(1);
  const json::object* cur = &o;
  const json::value* v = nullptr;
  for (const auto& key : split(path, '.')) {
    if (!cur) return nullptr;
    v = cur->if_contains(key);
    if (!v) return nullptr;
    cur = v->if_object();
  }
  return v;
}

void set_path(json::object& o, std::string_view path, json::value v) {
  if (path.starts_with(".")) path.remove_prefix(1);
  auto keys = split(path, '.');
  json::object* cur = &o;
  for (std::size_t i = 0; i + 1 < keys.size(); ++i) {
    auto& next = (*cur)[keys[i]];
    if (!next.is_object()) next = json::object();
    cur = &next.as_object();
  }
  (*cur)[keys.back()] = std::move(v);
}

// --- watch sessions ----------------------------------------------------------------------------

struct watch_session {
  explicit watch_session(asio::any_io_executor ex) : wake(ex) {}
  asio::steady_timer wake;
  std::deque<std::string> queue;
  bool dropped = false;
  bool overflow = false;
  bool first_table = true;
};

struct request_record {
  std::string verb;      // get, list, watch, create, update, patch, delete, deletecollection; "get" for paths
  std::string resource;  // "deployments.apps", "deployments.apps/status"; "" for non-resource paths
  std::string ns;
  std::string user;
  int code = 0;
};

class api_impl final : public api_server {
 public:
  api_impl(asio::any_io_executor ex, store& s, fault_settings& faults, api_options opts)
      : ex_(std::move(ex)), store_(s), faults_(faults), opts_(std::move(opts)) {
    if (!opts_.now) opts_.now = [] { return sys_clock::now(); };
    rng_.seed(opts_.seed ? opts_.seed : std::random_device{}());
    if (!opts_.request_log_path.empty()) {
      request_log_ = std::fopen(opts_.request_log_path.c_str(), "a");
      if (!request_log_)
        throw std::runtime_error(fmt::format("cannot open the request log {}", opts_.request_log_path));
    }
  }

  ~api_impl() override {
    stop();
    if (request_log_) std::fclose(request_log_);
  }

  http::handler handler() override {
    return [this](const http::request& req, const http::peer_info& peer, http::responder& out) {
      return handle(req, peer, out);
    };
  }

  void set_address(std::string host_port) override { address_ = std::move(host_port); }
  void add_token(bearer_token t) override { opts_.tokens.push_back(std::move(t)); }

  void drop_watches() override {
    for (auto* s : sessions_) {
      s->dropped = true;
      s->wake.cancel();
    }
    log::info("watch streams cut", {{"count", sessions_.size()}});
  }

  std::size_t open_watches() const override { return sessions_.size(); }

  json::object stats() const override {
    auto to_obj = [](const std::map<std::string, std::uint64_t>& m) {
      json::object o;
      for (const auto& [k, v] : m) o[k] = v;
      return o;
    };
    json::object by_client_verb;
    for (const auto& [client, verbs] : by_client_verb_) by_client_verb[client] = to_obj(verbs);
    return json::object{{"total", total_},
                        {"by_verb", to_obj(by_verb_)},
                        {"by_resource", to_obj(by_resource_)},
                        {"by_user_agent", to_obj(by_user_agent_)},
                        {"by_client", to_obj(by_client_)},
                        {"by_client_verb", std::move(by_client_verb)},
                        {"by_code", to_obj(by_code_)},
                        {"watches_open", sessions_.size()},
                        {"objects", store_.object_count()},
                        {"resourceVersion", std::to_string(store_.resource_version())}};
  }

  void stop() override {
    stopping_ = true;
    for (auto* s : sessions_) s->wake.cancel();
  }

 private:
  // --- the request pipeline -------------------------------------------------------------------

  asio::awaitable<void> handle(const http::request& req, const http::peer_info& peer, http::responder& out) {
    auto started = steady::now();
    request_record rec;
    rec.verb = lower(req.method);
    auto target = http::split_target(req.target);
    std::string user_agent(req.header("User-Agent").value_or(""));

    // Everything up to the answer is synchronous; only the fault latency and the answer itself
    // (or a watch stream) are awaited.
    std::optional<http::response> res;
    std::optional<watch_request> watch;
    bool delay = false;
    try {
      auto user = authenticate(req, peer, target.path);
      if (!user) {
        res = error_response(unauthorized());
      } else {
        rec.user = *user;
        if (target.path.starts_with("/kubesim/")) {
          res = admin(req, target, rec);
        } else if (auto f = inject_fault(req.method, target.path, user_agent)) {
          res = std::move(*f);
        } else {
          delay = faults_.latency.count() > 0 && faults_applies(req.method, target.path, user_agent) &&
                  !health_path(target.path);
          if (!delay) res = dispatch(req, target, rec, watch);
        }
      }
    } catch (const std::exception& e) {
      log::error("request failed", {{"path", target.path}, {"error", e.what()}});
      res = error_response(internal(e.what()));
    }
    if (delay) {
      asio::steady_timer t(ex_, faults_.latency);
      co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
      try {
        res = dispatch(req, target, rec, watch);
      } catch (const std::exception& e) {
        log::error("request failed", {{"path", target.path}, {"error", e.what()}});
        res = error_response(internal(e.what()));
      }
    }

    if (watch) {
      rec.code = 200;
      account(rec, user_agent);
      co_await serve_watch(*watch, out);
      log_request(req, target, rec, user_agent, started);  // a watch is logged when it ends
      co_return;
    }
    if (!res) res = error_response(internal("no response"));
    rec.code = res->status;
    account(rec, user_agent);
    // Logged before the answer leaves, so a client that got its answer finds the line written.
    log_request(req, target, rec, user_agent, started);
    co_await out.send(std::move(*res));
  }

  static bool health_path(std::string_view p) {
    return p == "/healthz" || p == "/livez" || p == "/readyz" || p.starts_with("/healthz/") ||
           p.starts_with("/livez/") || p.starts_with("/readyz/");
  }

  std::optional<std::string> authenticate(const http::request& req, const http::peer_info& peer,
                                          std::string_view path) const {
    if (!opts_.require_auth) return std::string("admin");
    auto authz = req.header("Authorization");
    if (authz) {
      auto v = trim(*authz);
      if (v.size() > 7 && lower(v.substr(0, 7)) == "bearer ") {
        auto token = trim(std::string_view(v).substr(7));
        auto now = sys_clock::now();
        for (const auto& t : opts_.tokens)
          if (t.token == token && (!t.expires || *t.expires > now)) return t.user;
      }
      return std::nullopt;  // presented credentials that do not verify: 401, never anonymous
    }
    if (peer.cert_common_name) return *peer.cert_common_name;
    if (health_path(path) || path == "/version" || path == "/version/") return std::string("system:anonymous");
    return std::nullopt;
  }

  bool faults_applies(std::string_view method, std::string_view path, std::string_view user_agent) const {
    return (faults_.user_agent.empty() || user_agent.find(faults_.user_agent) != std::string_view::npos) &&
           (faults_.path_contains.empty() || path.find(faults_.path_contains) != std::string_view::npos) &&
           (faults_.method.empty() || method == faults_.method);
  }

  std::optional<http::response> inject_fault(std::string_view method, std::string_view path, std::string_view user_agent) {
    if (health_path(path) || !faults_applies(method, path, user_agent)) return std::nullopt;
    if (faults_.fail_next > 0) {
      --faults_.fail_next;
      return error_response(internal("kubesim: injected fault"));
    }
    if (faults_.error_rate <= 0 && faults_.throttle_rate <= 0) return std::nullopt;
    double u = std::uniform_real_distribution<double>(0, 1)(rng_);
    if (u < faults_.error_rate) return error_response(internal("kubesim: injected fault"));
    if (u < faults_.error_rate + faults_.throttle_rate) {
      api_error e{429, "TooManyRequests", "Too many requests, please try again later.",
                  json::object{{"retryAfterSeconds", faults_.retry_after_seconds}}};
      auto r = error_response(e);
      r.headers.push_back({"Retry-After", std::to_string(faults_.retry_after_seconds)});
      return r;
    }
    return std::nullopt;
  }

  void account(const request_record& rec, std::string_view user_agent) {
    ++total_;
    ++by_verb_[rec.verb];
    ++by_resource_[rec.resource.empty() ? std::string("(nonresource)") : rec.resource];
    std::string ua = user_agent.empty() ? std::string("(none)") : std::string(user_agent);
    ++by_user_agent_[ua];
    auto client = ua.substr(0, ua.find('/'));
    ++by_client_[client];
    ++by_client_verb_[client][rec.verb];
    ++by_code_[std::to_string(rec.code)];
  }

  void log_request(const http::request& req, const http::target_parts& target, const request_record& rec,
                   std::string_view user_agent, steady::time_point started) {
    auto ms = std::chrono::duration<double, std::milli>(steady::now() - started).count();
    log::debug("request", {{"verb", rec.verb}, {"path", target.path}, {"code", rec.code}, {"ms", ms}});
    if (!request_log_) return;
    auto q = req.target.find('?');
    json::object line{{"time", rfc3339(sys_clock::now())},
                      {"verb", rec.verb},
                      {"method", req.method},
                      {"path", target.path},
                      {"query", q == std::string::npos ? std::string() : req.target.substr(q + 1)},
                      {"resource", rec.resource},
                      {"namespace", rec.ns},
                      {"user", rec.user},
                      {"user_agent", user_agent},
                      {"code", rec.code},
                      {"duration_ms", ms}};
    auto text = json::serialize(line) + "\n";
    std::fwrite(text.data(), 1, text.size(), request_log_);
    std::fflush(request_log_);
  }

  // --- admin endpoints ------------------------------------------------------------------------

  json::object fault_json() const {
    return json::object{{"error_rate", faults_.error_rate},
                        {"throttle_rate", faults_.throttle_rate},
                        {"retry_after_seconds", faults_.retry_after_seconds},
                        {"latency_ms", faults_.latency.count()},
                        {"user_agent", faults_.user_agent},
                        {"path_contains", faults_.path_contains},
                        {"method", faults_.method},
                        {"fail_next", faults_.fail_next},
                        {"pause_controllers", faults_.pause_controllers},
                        {"watches_open", sessions_.size()}};
  }

  http::response admin(const http::request& req, const http::target_parts& t, request_record& rec) {
    rec.resource = "(kubesim)";
    const auto& path = t.path;
    auto body_object = [&]() -> result<json::object> {
      boost::system::error_code ec;
      auto v = json::parse(req.body.empty() ? std::string_view("{}") : std::string_view(req.body), ec);
      if (ec || !v.is_object()) return bad_request_error("the body must be a JSON object");
      return std::move(v.as_object());
    };
    if (path == "/kubesim/faults") {
      if (req.method == "GET") return json_response(200, json::serialize(fault_json()));
      if (req.method != "POST" && req.method != "PUT" && req.method != "PATCH") return error_response(method_not_allowed());
      auto b = body_object();
      if (!b) return error_response(b.error());
      auto number = [](const json::value& v) -> std::optional<double> {
        if (v.is_number()) return v.to_number<double>();
        return std::nullopt;
      };
      // Validate everything first, then apply: a bad request changes nothing.
      fault_settings next = faults_;
      for (const auto& kv : *b) {
        auto key = std::string_view(kv.key());
        const auto& v = kv.value();
        if (key == "error_rate" || key == "throttle_rate") {
          auto n = number(v);
          if (!n || *n < 0 || *n > 1) return error_response(bad_request_error(fmt::format("{} must be a number in [0, 1]", key)));
          (key == "error_rate" ? next.error_rate : next.throttle_rate) = *n;
        } else if (key == "retry_after_seconds") {
          auto n = number(v);
          if (!n || *n < 0) return error_response(bad_request_error("retry_after_seconds must be a non-negative number"));
          next.retry_after_seconds = static_cast<int>(*n);
        } else if (key == "latency_ms") {
          auto n = number(v);
          if (!n || *n < 0 || *n > 600'000) return error_response(bad_request_error("latency_ms must be in [0, 600000]"));
          next.latency = std::chrono::milliseconds(static_cast<std::int64_t>(*n));
        } else if (key == "user_agent" || key == "path_contains" || key == "method") {
          if (!v.is_string()) return error_response(bad_request_error(fmt::format("{} must be a string", key)));
          (key == "user_agent" ? next.user_agent : key == "method" ? next.method : next.path_contains) =
              std::string(v.get_string());
        } else if (key == "fail_next") {
          auto n = number(v);
          if (!n || *n < 0) return error_response(bad_request_error("fail_next must be a non-negative number"));
          next.fail_next = static_cast<long long>(*n);
        } else if (key == "pause_controllers" || key == "drop_watches" || key == "compact") {
          if (!v.is_bool()) return error_response(bad_request_error(fmt::format("{} must be a boolean", key)));
          if (key == "pause_controllers") next.pause_controllers = v.get_bool();
        } else {
          return error_response(bad_request_error(fmt::format("unknown fault setting {}", key)));
        }
      }
      faults_ = next;
      if (auto* d = b->if_contains("compact"); d && d->get_bool()) store_.compact();
      if (auto* d = b->if_contains("drop_watches"); d && d->get_bool()) drop_watches();
      log::info("fault settings changed", {{"settings", std::string_view(json::serialize(fault_json()))}});
      if (opts_.on_faults_changed) opts_.on_faults_changed(faults_);
      return json_response(200, json::serialize(fault_json()));
    }
    if (path == "/kubesim/stats") {
      if (req.method == "GET") return json_response(200, json::serialize(stats()));
      if (req.method == "DELETE") {
        total_ = 0;
        by_verb_.clear();
        by_resource_.clear();
        by_user_agent_.clear();
        by_client_.clear();
        by_client_verb_.clear();
        by_code_.clear();
        return json_response(200, json::serialize(stats()));
      }
      return error_response(method_not_allowed());
    }
    if (path == "/kubesim/tokens") {
      if (req.method != "POST") return error_response(method_not_allowed());
      auto b = body_object();
      if (!b) return error_response(b.error());
      auto* token = b->if_contains("token");
      auto* name = b->if_contains("name");
      if (!token || !token->is_string() || token->get_string().empty())
        return error_response(bad_request_error("token must be a non-empty string"));
      bearer_token t;
      t.token = std::string(token->get_string());
      t.user = name && name->is_string() ? std::string(name->get_string()) : std::string("kubesim-user");
      if (auto* e = b->if_contains("expires"); e && e->is_number())
        t.expires = sys_clock::time_point(std::chrono::seconds(e->to_number<std::int64_t>()));
      add_token(std::move(t));
      return json_response(201, R"({"status":"Success"})");
    }
    return error_response(path_not_found());
  }

  // --- dispatch -------------------------------------------------------------------------------

  struct watch_request {
    const resource_info* r = nullptr;
    std::string ns;
    std::uint64_t from_rv = 0;
    selectors sel;
    bool bookmarks = false;
    bool initial_events_end = false;
    std::chrono::seconds timeout{0};
    output_format format;
  };

  http::response dispatch(const http::request& req, const http::target_parts& t, request_record& rec,
                          std::optional<watch_request>& watch) {
    const auto& path = t.path;
    auto segs = split(path, '/');
    // "/a/b" -> ["", "a", "b"]; drop the leading "" and a trailing "".
    if (!segs.empty() && segs.front().empty()) segs.erase(segs.begin());
    if (!segs.empty() && segs.back().empty()) segs.pop_back();
    bool get = req.method == "GET" || req.method == "HEAD";
    auto resources = store_.resources();

    if (segs.empty()) return get ? json_response(200, json::serialize(discovery::root_paths(resources))) : error_response(method_not_allowed());
    if (health_path(path)) return text_response(get, "ok");
    if (path == "/version" || path == "/version/")
      return get ? json_response(200, json::serialize(discovery::version())) : error_response(method_not_allowed());
    if (path == "/openapi/v2") {
      // kubectl's client-side validation reads this; an empty document makes it validate nothing.
      if (!get) return error_response(method_not_allowed());
      auto r = json_response(200, "", "application/octet-stream");
      return r;
    }
    if (segs[0] == "api") {
      if (segs.size() == 1) return get ? json_response(200, json::serialize(discovery::api_versions(address_))) : error_response(method_not_allowed());
      if (segs[1] != "v1") return error_response(path_not_found());
      if (segs.size() == 2) {
        if (!get) return error_response(method_not_allowed());
        return json_response(200, json::serialize(discovery::resource_list(resources, "", "v1")));
      }
      return resource_request(req, t, rec, watch, "", "v1", std::vector<std::string>(segs.begin() + 2, segs.end()));
    }
    if (segs[0] == "apis") {
      if (segs.size() == 1) {
        if (!get) return error_response(method_not_allowed());
        auto groups = discovery::group_list(resources);
        groups["groups"].as_array().push_back(external_metrics::group_entry());
        return json_response(200, json::serialize(groups));
      }
      if (segs[1] == external_metrics::group) return external_metrics_request(req, t, rec, segs);
      if (segs.size() == 2) {
        auto g = discovery::group(resources, segs[1]);
        if (g.empty()) return error_response(path_not_found());
        return get ? json_response(200, json::serialize(g)) : error_response(method_not_allowed());
      }
      if (segs.size() == 3) {
        auto l = discovery::resource_list(resources, segs[1], segs[2]);
        if (l.empty()) return error_response(path_not_found());
        return get ? json_response(200, json::serialize(l)) : error_response(method_not_allowed());
      }
      return resource_request(req, t, rec, watch, segs[1], segs[2], std::vector<std::string>(segs.begin() + 3, segs.end()));
    }
    return error_response(path_not_found());
  }

  // external.metrics.k8s.io (sim/api/external_metrics.hpp): values from labelled ConfigMaps.
  http::response external_metrics_request(const http::request& req, const http::target_parts& t, request_record& rec,
                                          const std::vector<std::string>& segs) {
    if (req.method != "GET" && req.method != "HEAD") return error_response(method_not_allowed());
    const resource_info* cms = store_.find("", "v1", "configmaps");
    if (!cms) return error_response(path_not_found());
    auto configmaps = [&](std::string_view ns) -> std::vector<object_ptr> {
      auto l = store_.list(*cms, ns, list_options{});
      return l ? std::move(l->items) : std::vector<object_ptr>{};
    };
    if (segs.size() == 2) return json_response(200, json::serialize(external_metrics::api_group()));
    if (segs[2] != external_metrics::version) return error_response(path_not_found());
    if (segs.size() == 3) return json_response(200, json::serialize(external_metrics::resource_list(configmaps(""))));
    // namespaces/<ns>/<metric>
    if (segs.size() != 6 || segs[3] != "namespaces") return error_response(path_not_found());
    rec.verb = "get";
    rec.resource = std::string(external_metrics::group) + "/" + segs[5];
    rec.ns = segs[4];
    auto list = external_metrics::values(configmaps(segs[4]), segs[5], t.param("labelSelector").value_or(""),
                                         opts_.now());
    if (!list) return error_response(list.error());
    return json_response(200, json::serialize(*list));
  }

  static http::response text_response(bool get, std::string body) {
    if (!get) return error_response(method_not_allowed());
    http::response r;
    r.headers.push_back({"Content-Type", "text/plain; charset=utf-8"});
    r.body = std::move(body);
    return r;
  }

  http::response resource_request(const http::request& req, const http::target_parts& t, request_record& rec,
                                  std::optional<watch_request>& watch, const std::string& group,
                                  const std::string& version, std::vector<std::string> rest) {
    route rt;
    if (!rest.empty() && rest[0] == "watch") {
      rt.watch_path = true;
      rest.erase(rest.begin());
    }
    if (rest.empty()) return error_response(path_not_found());
    // namespaces/<ns>/<resource>/... versus the namespaces resource itself.
    if (rest[0] == "namespaces" && rest.size() >= 3 && !(rest.size() == 3 && (rest[2] == "status" || rest[2] == "finalize"))) {
      rt.ns = rest[1];
      rest.erase(rest.begin(), rest.begin() + 2);
    }
    if (rest.size() > 3) return error_response(path_not_found());
    rt.r = store_.find(group, version, rest[0]);
    if (!rt.r) return error_response(path_not_found());
    if (rest.size() >= 2) rt.name = rest[1];
    if (rest.size() == 3) rt.sub = rest[2];
    const auto& r = *rt.r;
    rec.resource = r.qualified() + (rt.sub.empty() ? "" : "/" + rt.sub);
    rec.ns = rt.ns;
    if (!rt.ns.empty() && !r.namespaced) return error_response(path_not_found());
    if (!rt.name.empty() && r.namespaced && rt.ns.empty()) return error_response(path_not_found());
    if (!rt.sub.empty() && !((rt.sub == "status" && r.status_subresource) || (rt.sub == "scale" && r.scale_subresource)))
      return error_response(path_not_found());

    const auto& m = req.method;
    if (rt.watch_path) {
      if (m != "GET") return error_response(method_not_allowed());
      rec.verb = "watch";
      return start_watch(t, rt, watch, req);
    }
    if (rt.name.empty()) {
      if (m == "GET" || m == "HEAD") {
        if (truthy(t.param("watch"))) {
          rec.verb = "watch";
          return start_watch(t, rt, watch, req);
        }
        rec.verb = "list";
        return do_list(req, t, rt);
      }
      if (m == "POST") {
        rec.verb = "create";
        if (r.namespaced && rt.ns.empty()) return error_response(method_not_allowed());
        return do_create(req, t, rt);
      }
      if (m == "DELETE") {
        rec.verb = "deletecollection";
        if (r.namespaced && rt.ns.empty()) return error_response(method_not_allowed());
        return do_delete_collection(req, t, rt);
      }
      return error_response(method_not_allowed());
    }
    if (m == "GET" || m == "HEAD") {
      rec.verb = "get";
      return do_get(req, t, rt);
    }
    if (m == "PUT") {
      rec.verb = "update";
      return do_update(req, t, rt);
    }
    if (m == "PATCH") {
      rec.verb = "patch";
      return do_patch(req, t, rt);
    }
    if (m == "DELETE") {
      rec.verb = "delete";
      if (!rt.sub.empty()) return error_response(method_not_allowed());
      return do_delete(req, t, rt);
    }
    return error_response(method_not_allowed());
  }

  // --- bodies ---------------------------------------------------------------------------------

  result<json::value> decode_value(const http::request& req, bool yaml_allowed = true) const {
    if (req.body.size() > opts_.max_body_bytes)
      return api_error{413, "RequestEntityTooLarge", fmt::format("Request entity too large: limit is {}", opts_.max_body_bytes), {}};
    auto type = media_type(req.header("Content-Type"));
    if (type.empty() || type == "application/json" || type == "*/*") {
      boost::system::error_code ec;
      json::parse_options po;
      po.max_depth = 1000;
      auto v = json::parse(req.body, ec, {}, po);
      if (ec) return bad_request_error(fmt::format("couldn't get version/kind; json parse error: {}", ec.message()));
      return v;
    }
    if (yaml_allowed && (type == "application/yaml" || type == "application/x-yaml" || type == "text/yaml")) {
      auto v = yaml_to_json(req.body);
      if (!v) return bad_request_error(fmt::format("couldn't get version/kind; yaml parse error: {}", v.error().message));
      return std::move(*v);
    }
    return unsupported_media("application/json, application/yaml");
  }

  result<json::object> decode_object(const http::request& req, const resource_info& r, std::string_view expect_kind,
                                     std::string_view expect_api_version) const {
    auto v = decode_value(req);
    if (!v) return v.error();
    if (!v->is_object()) return bad_request_error("couldn't get version/kind; json parse error: the body must be a JSON object");
    auto& o = v->as_object();
    if (auto* av = o.if_contains("apiVersion"); av && !av->is_null()) {
      if (!av->is_string()) return bad_request_error("apiVersion must be a string");
      if (av->get_string() != expect_api_version)
        return bad_request_error(fmt::format("the API version in the data ({}) does not match the expected API version ({})",
                                       std::string_view(av->get_string()), expect_api_version));
    } else if (r.custom) {
      return bad_request_error(fmt::format("Object 'apiVersion' is missing in '{}'", req.body.substr(0, 200)));
    }
    if (auto* k = o.if_contains("kind"); k && !k->is_null()) {
      if (!k->is_string()) return bad_request_error("kind must be a string");
      if (k->get_string() != expect_kind)
        return bad_request_error(fmt::format("the kind in the data ({}) does not match the expected kind ({})",
                                       std::string_view(k->get_string()), expect_kind));
    } else if (r.custom) {
      return bad_request_error(fmt::format("Object 'Kind' is missing in '{}'", req.body.substr(0, 200)));
    }
    if (auto* meta = o.if_contains("metadata"); meta && !meta->is_null() && !meta->is_object())
      return bad_request_error(fmt::format("{} in version \"{}\" cannot be handled as a {}: metadata must be an object",
                                     r.kind, r.version, r.kind));
    return std::move(o);
  }

  // Schema pruning, defaulting and validation of a custom object (a real server does them in
  // this order). No-op for built-in kinds and CRDs without a schema.
  std::optional<api_error> check_custom(const resource_info& r, json::object& o) const {
    if (!r.custom || !r.schema) return std::nullopt;
    json::value v = std::move(o);
    prune(*r.schema, v);
    kubesim::apply_defaults(*r.schema, v);
    auto errs = kubesim::validate(*r.schema, v);
    o = std::move(v.as_object());
    if (errs.empty()) return std::nullopt;
    auto name = meta_string(o, "name");
    std::string qualified = r.kind + "." + r.group;
    json::array causes;
    for (const auto& e : errs)
      causes.push_back(json::object{{"reason", e.reason}, {"message", e.message}, {"field", e.field}});
    return api_error{422, "Invalid", invalid_message(qualified, name, errs),
                     json::object{{"name", name}, {"group", r.group}, {"kind", r.kind}, {"causes", std::move(causes)}}};
  }

  static std::optional<api_error> refuse_dry_run(const http::target_parts& t) {
    if (auto d = t.param("dryRun"); d && !d->empty())
      return bad_request_error("dryRun is not supported by kubesim");
    return std::nullopt;
  }

  // --- verbs ----------------------------------------------------------------------------------

  http::response object_response(int code, const object_ptr& o, const resource_info& r,
                                 const http::request& req) const {
    auto fmt_r = negotiate(req.header("Accept"));
    if (!fmt_r) return error_response(fmt_r.error());
    if (fmt_r->kind == output_format::table) {
      auto tbl = table::make(r, {o}, include_of(req), true, opts_.now(),
                             json::object{{"resourceVersion", std::string(meta_string(*o, "resourceVersion"))}},
                             fmt_r->api_version);
      return json_response(code, json::serialize(tbl), fmt_r->content_type);
    }
    if (fmt_r->kind == output_format::partial)
      return json_response(code, json::serialize(table::partial_metadata(*o, fmt_r->api_version)), fmt_r->content_type);
    std::string body;
    append_object(body, *o, r.api_version(), false);
    return json_response(code, std::move(body));
  }

  static table::include_object include_of(const http::request& req) {
    auto t = http::split_target(req.target);
    auto v = t.param("includeObject");
    if (!v || *v == "Metadata") return table::include_object::metadata;
    if (*v == "Object") return table::include_object::object;
    return table::include_object::none;
  }

  http::response do_get(const http::request& req, const http::target_parts&, const route& rt) {
    auto o = store_.get(*rt.r, rt.ns, rt.name);
    if (!o) return error_response(o.error());
    if (rt.sub == "scale") return json_response(200, json::serialize(scale_of(*rt.r, **o)));
    return object_response(200, *o, *rt.r, req);
  }

  http::response do_list(const http::request& req, const http::target_parts& t, const route& rt) {
    const auto& r = *rt.r;
    auto fmt_r = negotiate(req.header("Accept"));
    if (!fmt_r) return error_response(fmt_r.error());
    auto sel = parse_selectors(t, r);
    if (!sel) return error_response(sel.error());
    list_options lo;
    if (sel->any()) {
      auto s = *sel;
      lo.match = [s](const json::object& o) { return s.matches(o); };
    }
    if (auto l = t.param("limit"); l && !l->empty()) {
      try {
        std::size_t used = 0;
        lo.limit = std::stoll(std::string(*l), &used);
        if (used != l->size()) throw std::invalid_argument("limit");
      } catch (const std::exception&) {
        return error_response(bad_request_error(fmt::format("limit: invalid value \"{}\"", *l)));
      }
    }
    if (auto c = t.param("continue")) lo.continue_token = std::string(*c);
    auto res = store_.list(r, rt.ns, lo);
    if (!res) return error_response(res.error());
    json::object meta{{"resourceVersion", std::to_string(res->resource_version)}};
    if (!res->continue_token.empty()) meta["continue"] = res->continue_token;
    if (res->remaining_item_count) meta["remainingItemCount"] = *res->remaining_item_count;
    if (fmt_r->kind == output_format::table) {
      auto tbl = table::make(r, res->items, include_of(req), true, opts_.now(), std::move(meta), fmt_r->api_version);
      return json_response(200, json::serialize(tbl), fmt_r->content_type);
    }
    std::string body;
    body.reserve(res->items.size() * 1024 + 256);
    if (fmt_r->kind == output_format::partial) {
      body += R"({"kind":"PartialObjectMetadataList","apiVersion":)";
      canaryd::json_text::append_quoted(body, fmt_r->api_version);
    } else {
      body += R"({"kind":)";
      canaryd::json_text::append_quoted(body, r.list_kind);
      body += R"(,"apiVersion":)";
      canaryd::json_text::append_quoted(body, r.api_version());
    }
    body += R"(,"metadata":)";
    body += json::serialize(meta);
    body += R"(,"items":[)";
    bool first = true;
    for (const auto& item : res->items) {
      if (!first) body += ',';
      first = false;
      if (fmt_r->kind == output_format::partial) body += json::serialize(table::partial_metadata(*item, fmt_r->api_version));
      else append_object(body, *item, r.api_version(), !r.custom);
    }
    body += "]}";
    return json_response(200, std::move(body), fmt_r->content_type);
  }

  http::response do_create(const http::request& req, const http::target_parts& t, const route& rt) {
    const auto& r = *rt.r;
    if (auto e = refuse_dry_run(t)) return error_response(*e);
    auto o = decode_object(req, r, r.kind, r.api_version());
    if (!o) return error_response(o.error());
    if (r.custom && r.status_subresource) o->erase("status");  // dropped before validation, as a real server
    if (auto e = check_custom(r, *o)) return error_response(*e);
    auto made = store_.create(r, rt.ns, std::move(*o));
    if (!made) return error_response(made.error());
    return object_response(201, *made, r, req);
  }

  http::response do_update(const http::request& req, const http::target_parts& t, const route& rt) {
    const auto& r = *rt.r;
    if (auto e = refuse_dry_run(t)) return error_response(*e);
    if (rt.sub == "scale") {
      auto o = decode_object(req, r, "Scale", "autoscaling/v1");
      if (!o) return error_response(o.error());
      return write_scale(req, rt, *o);
    }
    auto o = decode_object(req, r, r.kind, r.api_version());
    if (!o) return error_response(o.error());
    auto res = write(rt, std::move(*o));
    if (!res) return error_response(res.error());
    return object_response(200, *res, r, req);
  }

  // A whole-object write to the main resource or the status subresource, with custom-resource
  // validation of what the store will keep.
  result<object_ptr> write(const route& rt, json::object o) {
    const auto& r = *rt.r;
    bool status = rt.sub == "status";
    if (r.custom && r.schema) {
      auto old = store_.get(r, rt.ns, rt.name);
      if (!old) return old.error();
      json::object candidate;
      if (status) {
        candidate = **old;
        if (auto* s = o.if_contains("status")) candidate["status"] = *s;
        else candidate.erase("status");
        if (auto rv = meta_string(o, "resourceVersion"); !rv.empty())
          candidate["metadata"].as_object()["resourceVersion"] = rv;
        else
          candidate["metadata"].as_object().erase("resourceVersion");
      } else {
        candidate = std::move(o);
        if (r.status_subresource) {
          if (auto* s = (*old)->if_contains("status")) candidate["status"] = *s;
          else candidate.erase("status");
        }
      }
      if (auto e = check_custom(r, candidate)) return *e;
      return store_.update(r, rt.ns, rt.name, std::move(candidate), status);
    }
    return store_.update(r, rt.ns, rt.name, std::move(o), status);
  }

  http::response do_patch(const http::request& req, const http::target_parts& t, const route& rt) {
    const auto& r = *rt.r;
    if (auto e = refuse_dry_run(t)) return error_response(*e);
    if (req.body.size() > opts_.max_body_bytes)
      return error_response(api_error{413, "RequestEntityTooLarge",
                                      fmt::format("Request entity too large: limit is {}", opts_.max_body_bytes), {}});
    auto type = media_type(req.header("Content-Type"));
    std::string accepted = r.custom ? "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                                    : "application/json-patch+json, application/merge-patch+json, "
                                      "application/strategic-merge-patch+json, application/apply-patch+yaml";
    const smp_type* smp = nullptr;
    if (type == "application/strategic-merge-patch+json") {
      smp = r.custom ? nullptr : strategic_schema(rt.sub == "scale" ? "autoscaling/v1" : r.api_version(),
                                                  rt.sub == "scale" ? "Scale" : r.kind);
      if (!smp) return error_response(unsupported_media(accepted));
    } else if (type != "application/json-patch+json" && type != "application/merge-patch+json") {
      // Server-side apply (application/apply-patch+yaml) is not implemented: refused like an
      // unknown format, so a client sees a clear 415 rather than a wrong merge.
      return error_response(unsupported_media(accepted));
    }
    boost::system::error_code ec;
    json::parse_options po;
    po.max_depth = 1000;
    auto patch = json::parse(req.body, ec, {}, po);
    if (ec) return error_response(bad_request_error(fmt::format("error decoding patch: {}", ec.message())));

    auto cur = store_.get(r, rt.ns, rt.name);
    if (!cur) return error_response(cur.error());
    json::value doc = rt.sub == "scale" ? json::value(scale_of(r, **cur)) : json::value(presented(**cur, r));
    json::value patched;
    if (type == "application/json-patch+json") {
      auto p = apply_json_patch(doc, patch);
      if (!p) return error_response(from_patch_error(p.error()));
      patched = std::move(*p);
    } else if (type == "application/merge-patch+json") {
      if (!patch.is_object()) return error_response(bad_request_error("error decoding patch: the merge patch must be a JSON object"));
      patched = merge_patch(doc, patch);
    } else {
      auto p = strategic_merge(doc, patch, *smp);
      if (!p) return error_response(from_patch_error(p.error()));
      patched = std::move(*p);
    }
    if (!patched.is_object()) return error_response(bad_request_error("the patched object is not a JSON object"));
    auto& po_obj = patched.as_object();
    if (rt.sub == "scale") return write_scale(req, rt, po_obj);
    // The patch may not change identity.
    if (auto n = meta_string(po_obj, "name"); n != rt.name)
      return error_response(bad_request_error(fmt::format("the name of the object ({}) does not match the name on the URL ({})", n, rt.name)));
    if (auto* av = po_obj.if_contains("apiVersion"); !av || !av->is_string() || av->get_string() != r.api_version())
      return error_response(bad_request_error(fmt::format("the API version in the data does not match the expected API version ({})", r.api_version())));
    if (auto* k = po_obj.if_contains("kind"); !k || !k->is_string() || k->get_string() != r.kind)
      return error_response(bad_request_error(fmt::format("the kind in the data does not match the expected kind ({})", r.kind)));
    auto res = write(rt, std::move(po_obj));
    if (!res) return error_response(res.error());
    return object_response(200, *res, r, req);
  }

  // A real server hides the cause of a failed patch (patch_error::detail); it is logged here.
  static api_error from_patch_error(const patch_error& e) {
    log::debug("patch failed", {{"detail", e.detail}});
    return api_error{e.code, e.reason, e.message, {}};
  }

  // --- scale ----------------------------------------------------------------------------------

  json::object scale_of(const resource_info& r, const json::object& o) const {
    json::object meta;
    for (auto key : {"name", "namespace", "uid", "resourceVersion", "creationTimestamp"})
      if (auto s = meta_string(o, key); !s.empty()) meta[key] = s;
    json::value replicas = 0;
    if (auto* v = at_path(o, r.scale_spec_replicas_path); v && v->is_number()) replicas = *v;
    json::object status{{"replicas", 0}};
    if (auto* v = at_path(o, r.scale_status_replicas_path); v && v->is_number()) status["replicas"] = *v;
    if (!r.scale_label_selector_path.empty()) {
      if (auto* v = at_path(o, r.scale_label_selector_path)) {
        if (v->is_string()) {
          status["selector"] = *v;
        } else if (v->is_object()) {
          auto s = label_selector_from_object(*v);
          if (s && !s->to_string().empty()) status["selector"] = s->to_string();
        }
      }
    }
    return json::object{{"kind", "Scale"}, {"apiVersion", "autoscaling/v1"}, {"metadata", std::move(meta)},
                        {"spec", json::object{{"replicas", replicas}}}, {"status", std::move(status)}};
  }

  http::response write_scale(const http::request& req, const route& rt, const json::object& scale) {
    const auto& r = *rt.r;
    auto cur = store_.get(r, rt.ns, rt.name);
    if (!cur) return error_response(cur.error());
    auto* rep = at_path(scale, ".spec.replicas");
    if (!rep || !rep->is_int64() || rep->as_int64() < 0) {
      json::value bad = rep ? *rep : json::value(nullptr);
      return error_response(invalid("Scale", "autoscaling", rt.name,
                                    {{"FieldValueInvalid", "spec.replicas",
                                      fmt::format("Invalid value: {}: must be greater than or equal to 0", json::serialize(bad))}}));
    }
    auto rv = meta_string(scale, "resourceVersion");
    if (!rv.empty() && rv != meta_string(**cur, "resourceVersion"))
      return error_response(conflict(r, rt.name, "the object has been modified; please apply your changes to the latest version and try again"));
    json::object next = **cur;
    set_path(next, r.scale_spec_replicas_path, rep->as_int64());
    route main = rt;
    main.sub.clear();
    auto res = write(main, std::move(next));
    if (!res) return error_response(res.error());
    (void)req;
    return json_response(200, json::serialize(scale_of(r, **res)));
  }

  // --- delete ---------------------------------------------------------------------------------

  result<delete_options> delete_options_of(const http::request& req, const http::target_parts& t) const {
    delete_options o;
    std::string policy;
    if (!req.body.empty()) {
      boost::system::error_code ec;
      auto v = json::parse(req.body, ec);
      if (ec || !v.is_object()) return bad_request_error(fmt::format("error decoding DeleteOptions: {}", ec ? ec.message() : "not an object"));
      const auto& b = v.as_object();
      if (auto* p = b.if_contains("propagationPolicy"); p && p->is_string()) policy = std::string(p->get_string());
      if (auto* orphan = b.if_contains("orphanDependents"); orphan && orphan->is_bool() && policy.empty())
        policy = orphan->get_bool() ? "Orphan" : "Background";
      if (auto* pre = b.if_contains("preconditions"); pre && pre->is_object()) {
        if (auto* u = pre->as_object().if_contains("uid"); u && u->is_string()) o.precondition_uid = std::string(u->get_string());
        if (auto* rv = pre->as_object().if_contains("resourceVersion"); rv && rv->is_string())
          o.precondition_resource_version = std::string(rv->get_string());
      }
      if (auto* d = b.if_contains("dryRun"); d && d->is_array() && !d->as_array().empty())
        return bad_request_error("dryRun is not supported by kubesim");
    }
    if (auto p = t.param("propagationPolicy")) policy = std::string(*p);
    if (auto orphan = t.param("orphanDependents"); orphan && policy.empty()) policy = *orphan == "true" ? "Orphan" : "Background";
    if (policy.empty() || policy == "Background") o.policy = propagation::background;
    else if (policy == "Foreground") o.policy = propagation::foreground;
    else if (policy == "Orphan") o.policy = propagation::orphan;
    else
      return invalid("DeleteOptions", "meta.k8s.io", "",
                     {{"FieldValueNotSupported", "propagationPolicy",
                       fmt::format("Unsupported value: \"{}\": supported values: \"Foreground\", \"Background\", \"Orphan\"", policy)}});
    return o;
  }

  http::response do_delete(const http::request& req, const http::target_parts& t, const route& rt) {
    const auto& r = *rt.r;
    if (auto e = refuse_dry_run(t)) return error_response(*e);
    auto opts = delete_options_of(req, t);
    if (!opts) return error_response(opts.error());
    bool deleted = false;
    auto res = store_.remove(r, rt.ns, rt.name, *opts, &deleted);
    if (!res) return error_response(res.error());
    if (!deleted) return object_response(202, *res, r, req);  // still there: finalizers hold it
    json::object details{{"name", rt.name}, {"kind", r.resource}, {"uid", meta_string(**res, "uid")}};
    if (!r.group.empty()) details["group"] = r.group;
    json::object s{{"kind", "Status"}, {"apiVersion", "v1"}, {"metadata", json::object()}, {"status", "Success"},
                   {"details", std::move(details)}};
    return json_response(200, json::serialize(s));
  }

  http::response do_delete_collection(const http::request& req, const http::target_parts& t, const route& rt) {
    const auto& r = *rt.r;
    if (auto e = refuse_dry_run(t)) return error_response(*e);
    auto sel = parse_selectors(t, r);
    if (!sel) return error_response(sel.error());
    auto opts = delete_options_of(req, t);
    if (!opts) return error_response(opts.error());
    list_options lo;
    if (sel->any()) {
      auto s = *sel;
      lo.match = [s](const json::object& o) { return s.matches(o); };
    }
    auto items = store_.list(r, rt.ns, lo);
    if (!items) return error_response(items.error());
    std::string body = R"({"kind":)";
    canaryd::json_text::append_quoted(body, r.list_kind);
    body += R"(,"apiVersion":)";
    canaryd::json_text::append_quoted(body, r.api_version());
    body += fmt::format(R"(,"metadata":{{"resourceVersion":"{}"}},"items":[)", store_.resource_version());
    bool first = true;
    for (const auto& item : items->items) {
      auto res = store_.remove(r, meta_string(*item, "namespace"), meta_string(*item, "name"), *opts);
      if (!res) continue;  // gone meanwhile (a cascade took it)
      if (!first) body += ',';
      first = false;
      append_object(body, **res, r.api_version(), !r.custom);
    }
    body += "]}";
    return json_response(200, std::move(body));
  }

  // --- watch ----------------------------------------------------------------------------------

  http::response start_watch(const http::target_parts& t, const route& rt, std::optional<watch_request>& watch,
                             const http::request& req) {
    if (!rt.sub.empty()) return error_response(method_not_allowed());
    watch_request w;
    w.r = rt.r;
    w.ns = rt.ns;
    auto fmt_r = negotiate(req.header("Accept"));
    if (!fmt_r) return error_response(fmt_r.error());
    w.format = *fmt_r;
    // /watch/namespaces/<ns>/<resource>/<name> watches one object.
    std::string fields(t.param("fieldSelector").value_or(""));
    if (!rt.name.empty()) fields = fields.empty() ? "metadata.name=" + rt.name : fields + ",metadata.name=" + rt.name;
    auto sel = parse_selectors(t.param("labelSelector").value_or(""), fields, *rt.r);
    if (!sel) return error_response(sel.error());
    w.sel = std::move(*sel);
    auto rv = t.param("resourceVersion").value_or("");
    if (!rv.empty()) {
      auto n = parse_resource_version(rv);
      if (!n) return error_response(bad_request_error(fmt::format("invalid resource version: {}", rv)));
      w.from_rv = *n;
    }
    w.bookmarks = truthy(t.param("allowWatchBookmarks"));
    w.initial_events_end = truthy(t.param("sendInitialEvents")) && w.from_rv == 0;
    w.timeout = opts_.default_watch_timeout;
    if (auto ts = t.param("timeoutSeconds"); ts && !ts->empty()) {
      try {
        auto v = std::stoll(std::string(*ts));
        if (v > 0) w.timeout = std::chrono::seconds(v);
      } catch (const std::exception&) {
        return error_response(bad_request_error(fmt::format("timeoutSeconds: invalid value \"{}\"", *ts)));
      }
    }
    watch = std::move(w);
    return {};
  }

  std::string event_line(std::string_view type, const json::object& obj, const watch_request& w, watch_session& s) {
    std::string line = R"({"type":)";
    canaryd::json_text::append_quoted(line, type);
    line += R"(,"object":)";
    if (w.format.kind == output_format::table) {
      auto p = std::make_shared<const json::object>(obj);
      auto tbl = table::make(*w.r, {p}, table::include_object::object, s.first_table, opts_.now(),
                             json::object{{"resourceVersion", std::string(meta_string(obj, "resourceVersion"))}},
                             w.format.api_version);
      s.first_table = false;
      line += json::serialize(tbl);
    } else if (w.format.kind == output_format::partial) {
      line += json::serialize(table::partial_metadata(obj, w.format.api_version));
    } else {
      append_object(line, obj, w.r->api_version(), false);
    }
    line += "}\n";
    return line;
  }

  void enqueue(watch_session& s, std::string line) {
    if (s.overflow) return;
    if (s.queue.size() >= opts_.max_watch_queue) {
      s.overflow = true;
      s.queue.clear();
    } else {
      s.queue.push_back(std::move(line));
    }
    s.wake.cancel();
  }

  void on_watch_change(watch_session& s, const watch_request& w, const change& ch) {
    bool now = w.sel.matches(*ch.object);
    bool before = ch.previous && w.sel.matches(*ch.previous);
    switch (ch.type) {
      case event_type::added:
        if (now) enqueue(s, event_line("ADDED", *ch.object, w, s));
        return;
      case event_type::modified:
        if (now && before) enqueue(s, event_line("MODIFIED", *ch.object, w, s));
        else if (now) enqueue(s, event_line("ADDED", *ch.object, w, s));
        else if (before) {
          // It left the selection: a real server's watch cache reports DELETED (its last
          // matching state at this resourceVersion).
          json::object gone = *ch.previous;
          gone["metadata"].as_object()["resourceVersion"] = std::to_string(ch.resource_version);
          enqueue(s, event_line("DELETED", gone, w, s));
        }
        return;
      case event_type::deleted:
        if (now) enqueue(s, event_line("DELETED", *ch.object, w, s));
        return;
    }
  }

  std::string bookmark_line(const watch_request& w, bool initial_end) const {
    json::object meta{{"resourceVersion", std::to_string(store_.resource_version())}};
    if (initial_end) meta["annotations"] = json::object{{"k8s.io/initial-events-end", "true"}};
    json::object obj{{"kind", w.r->kind}, {"apiVersion", w.r->api_version()}, {"metadata", std::move(meta)}};
    return json::serialize(json::object{{"type", "BOOKMARK"}, {"object", std::move(obj)}}) + "\n";
  }

  asio::awaitable<void> serve_watch(const watch_request& w, http::responder& out) {
    watch_session s(ex_);
    sessions_.insert(&s);
    struct unregister {
      api_impl* self;
      watch_session* s;
      ~unregister() { self->sessions_.erase(s); }
    } guard{this, &s};

    auto sub = store_.watch(*w.r, w.ns, w.from_rv, [this, &s, &w](const change& ch) { on_watch_change(s, w, ch); });
    http::headers hs;
    hs.push_back({"Content-Type", w.format.content_type});
    hs.push_back({"Cache-Control", "no-cache, private"});
    if (!sub) {
      // Too old: a real server answers 200 and sends the 410 as an ERROR event.
      auto ec = co_await out.begin_stream(200, hs);
      if (ec) co_return;
      auto line = json::serialize(json::object{{"type", "ERROR"}, {"object", status_object(sub.error())}}) + "\n";
      if (co_await out.write_chunk(line)) co_return;
      co_await out.end_stream();
      co_return;
    }
    if (w.initial_events_end) enqueue(s, bookmark_line(w, true));
    if (co_await out.begin_stream(200, hs)) co_return;

    auto deadline = steady::now() + w.timeout;
    auto next_bookmark = steady::now() + opts_.bookmark_interval;
    while (true) {
      if (s.dropped || s.overflow) {
        if (s.overflow) log::warn("watch cut: the client reads too slowly", {{"resource", w.r->qualified()}});
        out.abort();
        break;
      }
      if (!s.queue.empty()) {
        std::string chunk;
        while (!s.queue.empty() && chunk.size() < (1u << 20)) {
          chunk += s.queue.front();
          s.queue.pop_front();
        }
        if (co_await out.write_chunk(chunk)) break;
        continue;
      }
      if (stopping_ || store_.find(w.r->group, w.r->version, w.r->resource) != w.r) {
        co_await out.end_stream();
        break;
      }
      auto now = steady::now();
      if (now >= deadline) {
        co_await out.end_stream();
        break;
      }
      if (w.bookmarks && now >= next_bookmark) {
        enqueue(s, bookmark_line(w, false));
        next_bookmark = now + opts_.bookmark_interval;
        continue;
      }
      auto until = w.bookmarks ? std::min(deadline, next_bookmark) : deadline;
      s.wake.expires_at(until);
      auto r = co_await (s.wake.async_wait(asio::as_tuple(asio::use_awaitable)) || out.wait_closed());
      if (r.index() == 1 || out.closed()) break;
    }
    sub->reset();
  }

  asio::any_io_executor ex_;
  store& store_;
  fault_settings& faults_;
  api_options opts_;
  std::string address_ = "127.0.0.1:0";
  std::mt19937_64 rng_;
  std::FILE* request_log_ = nullptr;
  std::set<watch_session*> sessions_;
  bool stopping_ = false;

  std::uint64_t total_ = 0;
  std::map<std::string, std::uint64_t> by_verb_, by_resource_, by_user_agent_, by_client_, by_code_;
  std::map<std::string, std::map<std::string, std::uint64_t>> by_client_verb_;
};

}  // namespace

std::unique_ptr<api_server> make_api_server(asio::any_io_executor ex, store& s, fault_settings& faults,
                                            api_options opts) {
  return std::make_unique<api_impl>(std::move(ex), s, faults, std::move(opts));
}

}  // namespace kubesim
