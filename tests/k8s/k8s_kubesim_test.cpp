// The Kubernetes client against the real kubesim binary: CRUD, patches, status, pagination and
// selectors; TLS with a bearer token, a client certificate, an exec plugin and in-cluster
// service-account files; kubesim's fault injection (cut watches, compaction, 429, 500s); and
// the one-line errors of bad input.
//
// Each TEST_CASE starts its own kubesim (tests/support/kubesim.hpp) and runs a fresh
// io_context; test bodies are free coroutines whose state lives in the TEST_CASE frame.
#include <doctest/doctest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <map>
#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "k8s/api_client.hpp"
#include "k8s/cache.hpp"
#include "k8s/config.hpp"
#include "k8s/credentials.hpp"
#include "k8s/log.hpp"
#include "k8s/tls_cert.hpp"
#include "k8s/watch.hpp"
#include "tests/support/kubesim.hpp"
#include "tests/support/process.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace json = boost::json;
namespace k8s = canaryd::k8s;
using canaryd::test::kubesim_instance;
using canaryd::test::kubesim_options;
using canaryd::test::temp_dir;
using namespace std::chrono_literals;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
const k8s::resource configmaps{"", "v1", "configmaps", true};
const k8s::resource namespaces{"", "v1", "namespaces", false};
const k8s::resource deployments{"apps", "v1", "deployments", true};

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(use_tuple);
}

template <class Pred>
asio::awaitable<bool> eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) co_return false;
    co_await sleep_for(10ms);
  }
  co_return true;
}

template <class Body>
void run_io(asio::io_context& io, Body body, std::chrono::seconds limit = 60s) {
  bool done = false;
  std::exception_ptr failure;
  asio::co_spawn(io, std::move(body), [&](std::exception_ptr e) {
    done = true;
    failure = e;
  });
  io.run_for(limit);
  REQUIRE_MESSAGE(done, "the test coroutine did not finish");
  if (failure) std::rethrow_exception(failure);
}

void write(const fs::path& p, const std::string& text, bool executable = false) {
  fs::create_directories(p.parent_path());
  {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
  }
  if (executable) fs::permissions(p, fs::perms::owner_all, fs::perm_options::replace);
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

k8s::api_client_options test_options() {
  k8s::api_client_options o;
  o.timeout = 10s;
  o.retry_backoff = {20ms, 500ms, 2.0, 0.5};
  return o;
}

std::unique_ptr<k8s::api_client> client_for(asio::any_io_executor ex, const k8s::cluster_config& cfg,
                                            k8s::api_client_options o = test_options()) {
  auto c = k8s::api_client::create(ex, cfg, std::move(o));
  REQUIRE_MESSAGE(c.has_value(), c.error().what());
  return std::move(*c);
}

k8s::cluster_config kubesim_config(const kubesim_instance& sim) {
  return k8s::load_kubeconfig({sim.kubeconfig()});
}

std::string cm(const std::string& ns, const std::string& name, const std::string& v,
               const std::map<std::string, std::string>& labels = {}) {
  json::object meta{{"name", name}, {"namespace", ns}};
  if (!labels.empty()) {
    json::object l;
    for (const auto& [k, val] : labels) l[k] = val;
    meta["labels"] = l;
  }
  return json::serialize(json::object{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", meta},
                                      {"data", json::object{{"v", v}}}});
}

asio::awaitable<void> ensure_namespace(k8s::api_client& c, const std::string& name) {
  const std::string body = json::serialize(
      json::object{{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", json::object{{"name", name}}}});
  auto r = co_await c.create(namespaces, "", body);
  REQUIRE_MESSAGE((r.has_value() || k8s::is_already_exists(r.error())), (r ? "" : r.error().what()));
}

// POST /kubesim/faults through the client (same auth as everything else). `faults` is JSON text
// (not a braced json::object: GCC 12 and temporaries inside co_await).
asio::awaitable<void> set_faults(k8s::api_client& admin, std::string faults) {
  auto r = co_await admin.request("POST", "/kubesim/faults", std::move(faults));
  REQUIRE_MESSAGE(r.has_value(), r.error().what());
}

std::uint64_t count(const k8s::request_stats& s, const std::string& verb, int code) {
  auto it = s.requests.find({verb, code});
  return it == s.requests.end() ? 0 : it->second;
}

std::string data_v(const k8s::object& o) {
  auto v = o.to_value();
  auto* d = v.as_object().if_contains("data");
  if (!d) return {};
  auto* x = d->as_object().if_contains("v");
  return x ? std::string(x->as_string()) : std::string();
}

// ---------------------------------------------------------------------------------------------

struct crud_state {
  std::vector<std::string> failures;
  void check(bool ok, const std::string& what) {
    if (!ok) failures.push_back(what);
  }
};

asio::awaitable<void> crud(const kubesim_instance* sim, crud_state* st) {
  auto ex = co_await asio::this_coro::executor;
  auto c = client_for(ex, kubesim_config(*sim));
  co_await ensure_namespace(*c, "crud");

  const std::string body = cm("crud", "one", "1");
  auto created = co_await c->create(configmaps, "crud", body);
  REQUIRE_MESSAGE(created.has_value(), created.error().what());
  st->check(created->name() == "one" && created->namespace_name() == "crud" && !created->uid().empty(), "create");
  auto dup = co_await c->create(configmaps, "crud", body);
  st->check(!dup && k8s::is_already_exists(dup.error()), "AlreadyExists");

  auto got = co_await c->get(configmaps, "crud", "one");
  st->check(got && got->resource_version() == created->resource_version() && data_v(*got) == "1", "get");
  auto missing = co_await c->get(configmaps, "crud", "nope");
  st->check(!missing && k8s::is_not_found(missing.error()) && missing.error().http_status == 404, "NotFound");

  // Update with the current resourceVersion succeeds; with the old one it is a Conflict value.
  auto edited = created->to_value();
  edited.at("data").as_object()["v"] = "2";
  const std::string update_body = json::serialize(edited);
  auto updated = co_await c->update(configmaps, "crud", "one", update_body);
  st->check(updated && data_v(*updated) == "2" && updated->resource_version() != created->resource_version(), "update");
  auto stale = co_await c->update(configmaps, "crud", "one", update_body);
  st->check(!stale && k8s::is_conflict(stale.error()) && stale.error().http_status == 409, "Conflict");
  if (!stale) st->check(stale.error().what().find("409 Conflict") != std::string::npos, "Conflict message");

  // Patches: merge, JSON patch, strategic merge.
  const std::string merge = R"({"data":{"m":"merged"}})";
  auto p1 = co_await c->patch(configmaps, "crud", "one", k8s::patch_type::merge, merge);
  st->check(p1 && p1->to_value().at("data").at("m").as_string() == "merged", "merge patch");
  const std::string jp = R"([{"op":"replace","path":"/data/v","value":"json"}])";
  auto p2 = co_await c->patch(configmaps, "crud", "one", k8s::patch_type::json, jp);
  st->check(p2 && data_v(*p2) == "json", "json patch");
  const std::string bad_jp = R"([{"op":"test","path":"/data/v","value":"not-this"}])";
  auto p3 = co_await c->patch(configmaps, "crud", "one", k8s::patch_type::json, bad_jp);
  st->check(!p3 && !p3.error().is_transport(), "failed json patch test is a Status value");

  const std::string deploy = R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"crud"},
    "spec":{"replicas":1,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},
    "spec":{"containers":[{"name":"app","image":"nginx:1"},{"name":"sidecar","image":"envoy:1"}]}}}})";
  auto d = co_await c->create(deployments, "crud", deploy);
  REQUIRE_MESSAGE(d.has_value(), d.error().what());
  const std::string smp = R"({"spec":{"template":{"spec":{"containers":[{"name":"app","image":"nginx:2"}]}}}})";
  auto p4 = co_await c->patch(deployments, "crud", "web", k8s::patch_type::strategic, smp);
  REQUIRE_MESSAGE(p4.has_value(), p4.error().what());
  auto containers = p4->to_value().at("spec").at("template").at("spec").at("containers").as_array();
  st->check(containers.size() == 2, "strategic merge keeps the sidecar");
  for (const auto& ct : containers) {
    if (ct.at("name") == "app") st->check(ct.at("image") == "nginx:2", "strategic merge sets the image");
  }
  st->check(p4->generation() == 2, "generation bumped by the spec change");

  // Status subresource: patch_status changes status only.
  const std::string status_patch = R"({"status":{"observedGeneration":7}})";
  auto s1 = co_await c->patch_status(deployments, "crud", "web", k8s::patch_type::merge, status_patch);
  st->check(s1 && s1->to_value().at("status").at("observedGeneration").to_number<int>() == 7, "patch_status");
  auto current = co_await c->get(deployments, "crud", "web");
  REQUIRE(current.has_value());
  auto with_status = current->to_value();
  with_status.at("status").as_object()["observedGeneration"] = 9;
  const std::string status_body = json::serialize(with_status);
  auto s2 = co_await c->update_status(deployments, "crud", "web", status_body);
  st->check(s2 && s2->to_value().at("status").at("observedGeneration").to_number<int>() == 9, "update_status");

  // Delete with a propagation policy, then it is gone.
  k8s::delete_options background;
  background.policy = k8s::propagation::background;
  auto del = co_await c->remove(deployments, "crud", "web", background);
  st->check(del.has_value(), "delete");
  auto after = co_await c->get(deployments, "crud", "web");
  st->check(!after && k8s::is_not_found(after.error()), "deleted");
  auto del_missing = co_await c->remove(configmaps, "crud", "nope");
  st->check(!del_missing && k8s::is_not_found(del_missing.error()), "delete of a missing object");
}

}  // namespace

TEST_CASE("kubesim: CRUD, patches, status and delete; Conflict, AlreadyExists and NotFound are values") {
  canaryd::log::set_level(canaryd::log::level::warn);
  kubesim_instance sim;
  asio::io_context io;
  crud_state st;
  run_io(io, crud(&sim, &st));
  CHECK_MESSAGE(st.failures.empty(), "failed: " << [&] {
    std::string s;
    for (auto& f : st.failures) s += f + "; ";
    return s;
  }());
}

namespace {
struct list_state {
  int pages = 0;
  std::size_t paged = 0;
  std::set<std::string> names;
  std::size_t all = 0;
  std::size_t red = 0, red_or_blue = 0, not_red = 0, by_name = 0;
  std::string list_rv;
};

asio::awaitable<void> lists(const kubesim_instance* sim, list_state* st) {
  auto ex = co_await asio::this_coro::executor;
  auto c = client_for(ex, kubesim_config(*sim));
  co_await ensure_namespace(*c, "lists");
  for (int i = 0; i < 25; ++i) {
    const std::string color = i % 3 == 0 ? "red" : i % 3 == 1 ? "blue" : "green";
    const std::string body = cm("lists", "item-" + std::to_string(100 + i), "x", {{"color", color}});
    auto r = co_await c->create(configmaps, "lists", body);
    REQUIRE_MESSAGE(r.has_value(), r.error().what());
  }
  k8s::list_options lo;
  lo.limit = 10;
  for (;;) {
    auto page = co_await c->list(configmaps, "lists", lo);
    REQUIRE_MESSAGE(page.has_value(), page.error().what());
    ++st->pages;
    st->paged += page->items.size();
    for (const auto& o : page->items) st->names.insert(std::string(o.name()));
    if (page->continue_token.empty()) break;
    lo.continue_token = page->continue_token;
  }
  const k8s::list_options none;
  auto all = co_await c->list_all(configmaps, "lists", none, 7);
  REQUIRE(all.has_value());
  st->all = all->items.size();
  st->list_rv = all->resource_version;

  k8s::list_options sel;
  sel.label_selector = "color=red";
  st->red = (co_await c->list(configmaps, "lists", sel)).value().items.size();
  sel.label_selector = "color in (red,blue)";
  st->red_or_blue = (co_await c->list(configmaps, "lists", sel)).value().items.size();
  sel.label_selector = "color!=red,color";
  st->not_red = (co_await c->list(configmaps, "lists", sel)).value().items.size();
  k8s::list_options field;
  field.field_selector = "metadata.name=item-105";
  st->by_name = (co_await c->list(configmaps, "lists", field)).value().items.size();
}
}  // namespace

TEST_CASE("kubesim: list pagination with limit/continue, label and field selectors") {
  canaryd::log::set_level(canaryd::log::level::warn);
  kubesim_instance sim;
  asio::io_context io;
  list_state st;
  run_io(io, lists(&sim, &st));
  CHECK(st.pages == 3);
  CHECK(st.paged == 25);
  CHECK(st.names.size() == 25);
  CHECK(st.all == 25);
  CHECK_FALSE(st.list_rv.empty());
  CHECK(st.red == 9);
  CHECK(st.red_or_blue == 17);
  CHECK(st.not_red == 16);
  CHECK(st.by_name == 1);
}

// ---------------------------------------------------------------------------------------------
// Authentication over TLS.

namespace {
struct auth_state {
  std::string token_result, cert_result, exec_result, in_cluster_result;
  std::uint64_t exec_runs = 0;
};

asio::awaitable<std::string> try_get(k8s::cluster_config cfg, int times, std::uint64_t* exec_runs = nullptr) {
  auto ex = co_await asio::this_coro::executor;
  auto c = client_for(ex, cfg);
  std::string out = "ok";
  for (int i = 0; i < times; ++i) {
    auto r = co_await c->list(namespaces, "");
    if (!r) {
      out = r.error().what();
      break;
    }
  }
  if (exec_runs) *exec_runs = c->creds().exec_runs();
  co_return out;
}

asio::awaitable<void> auth_variants(k8s::cluster_config token, k8s::cluster_config cert, k8s::cluster_config exec,
                                    k8s::cluster_config in_cluster, auth_state* st) {
  st->token_result = co_await try_get(std::move(token), 1);
  st->cert_result = co_await try_get(std::move(cert), 1);
  st->exec_result = co_await try_get(std::move(exec), 10, &st->exec_runs);
  st->in_cluster_result = co_await try_get(std::move(in_cluster), 1);
}

// Sets an environment variable for the scope.
class scoped_env {
 public:
  scoped_env(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~scoped_env() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};
}  // namespace

TEST_CASE("kubesim over TLS: bearer token, client certificate, exec plugin (run once, cached), in-cluster") {
  canaryd::log::set_level(canaryd::log::level::warn);
  kubesim_options so;
  so.tls = true;
  kubesim_instance sim(so);
  temp_dir d;
  const auto kc = sim.kubeconfig();
  auto token_cfg = kubesim_config(sim);
  REQUIRE(token_cfg.server.rfind("https://", 0) == 0);
  REQUIRE_FALSE(token_cfg.tls.ca_pem.empty());
  const std::string token = token_cfg.token;
  REQUIRE_FALSE(token.empty());
  const std::string ca_file = kc.string() + ".ca.crt";

  // Client certificate, from kubesim's files, through a kubeconfig of our own.
  write(d.path() / "cert.kubeconfig",
        "current-context: c\nclusters:\n- name: k\n  cluster:\n    server: " + token_cfg.server +
            "\n    certificate-authority: " + ca_file + "\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n"
            "users:\n- name: u\n  user:\n    client-certificate: " + kc.string() + ".client.crt\n    client-key: " +
            kc.string() + ".client.key\n");
  auto cert_cfg = k8s::load_kubeconfig({d.path() / "cert.kubeconfig"});

  // An exec plugin printing kubesim's token, counting its runs.
  write(d.path() / "plugin.sh",
        "#!/bin/sh\necho run >> " + (d.path() / "runs").string() +
            "\nprintf '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\","
            "\"status\":{\"token\":\"%s\"}}' \"$SIM_TOKEN\"\n",
        true);
  write(d.path() / "exec.kubeconfig",
        "current-context: c\nclusters:\n- name: k\n  cluster:\n    server: " + token_cfg.server +
            "\n    certificate-authority: " + ca_file + "\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n"
            "users:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n"
            "      command: ./plugin.sh\n      env: [{name: SIM_TOKEN, value: \"" + token + "\"}]\n");
  auto exec_cfg = k8s::load_kubeconfig({d.path() / "exec.kubeconfig"});

  // In-cluster: the service-account files in a temporary directory, the env vars at kubesim.
  write(d.path() / "sa" / "token", token + "\n");
  write(d.path() / "sa" / "ca.crt", read(ca_file));
  write(d.path() / "sa" / "namespace", "default");
  auto port = token_cfg.server.substr(token_cfg.server.rfind(':') + 1);
  scoped_env host("KUBERNETES_SERVICE_HOST", "127.0.0.1");
  scoped_env port_env("KUBERNETES_SERVICE_PORT", port);
  scoped_env sa("CANARYD_SA_DIR", (d.path() / "sa").string());
  auto in_cluster_cfg = k8s::load_config({});
  REQUIRE(in_cluster_cfg.in_cluster);

  asio::io_context io;
  auth_state st;
  run_io(io, auth_variants(token_cfg, cert_cfg, exec_cfg, in_cluster_cfg, &st));
  CHECK(st.token_result == "ok");
  CHECK(st.cert_result == "ok");
  CHECK(st.exec_result == "ok");
  CHECK(st.exec_runs == 1);
  CHECK(read(d.path() / "runs") == "run\n");
  CHECK(st.in_cluster_result == "ok");
}

namespace {
struct bad_state {
  std::string unreachable, wrong_ca, expired, no_auth;
};

asio::awaitable<void> bad_inputs(k8s::cluster_config unreachable, k8s::cluster_config wrong_ca,
                                 k8s::cluster_config expired, k8s::cluster_config no_auth, bad_state* st) {
  st->unreachable = co_await try_get(std::move(unreachable), 1);
  st->wrong_ca = co_await try_get(std::move(wrong_ca), 1);
  st->expired = co_await try_get(std::move(expired), 1);
  st->no_auth = co_await try_get(std::move(no_auth), 1);
}

bool one_line(const std::string& s) { return !s.empty() && s.find('\n') == std::string::npos; }
}  // namespace

TEST_CASE("kubesim bad input: unreachable server, wrong CA, expired token, missing context, malformed kubeconfig") {
  canaryd::log::set_level(canaryd::log::level::error);
  kubesim_options so;
  so.tls = true;
  so.extra_args = {"--token", "old-robot:expired-secret:1"};
  kubesim_instance sim(so);
  auto good = kubesim_config(sim);

  auto unreachable = good;
  unreachable.server = "https://127.0.0.1:" + std::to_string(canaryd::test::free_port());
  auto wrong_ca = good;
  wrong_ca.tls.ca_pem = canaryd::tls::make_ca("not-kubesim").value().cert_pem;
  auto expired = good;
  expired.token = "expired-secret";
  auto no_auth = good;
  no_auth.token.clear();

  asio::io_context io;
  bad_state st;
  run_io(io, bad_inputs(unreachable, wrong_ca, expired, no_auth, &st));
  INFO("unreachable: " << st.unreachable);
  INFO("wrong CA: " << st.wrong_ca);
  INFO("expired: " << st.expired);
  INFO("no auth: " << st.no_auth);
  MESSAGE("unreachable: " << st.unreachable);
  MESSAGE("wrong CA: " << st.wrong_ca);
  MESSAGE("expired: " << st.expired);
  CHECK(one_line(st.unreachable));
  CHECK(st.unreachable.find("connection failed") != std::string::npos);
  CHECK(one_line(st.wrong_ca));
  CHECK(st.wrong_ca.find("certificate verification failed") != std::string::npos);
  CHECK(st.wrong_ca.find("attempts") == std::string::npos);  // not retried: it cannot pass later
  CHECK(one_line(st.expired));
  CHECK(st.expired.find("401 Unauthorized") != std::string::npos);
  CHECK(st.expired.find("rejected the bearer token of user \"kubesim-admin\" from kubeconfig") != std::string::npos);
  CHECK(one_line(st.no_auth));
  CHECK(st.no_auth.find("401 Unauthorized") != std::string::npos);

  // Configuration errors, against kubesim's own kubeconfig.
  try {
    k8s::config_flags f;
    f.kubeconfig = sim.kubeconfig().string();
    f.context = "nope";
    (void)k8s::load_config(f);
    FAIL("no error for a missing context");
  } catch (const k8s::config_error& e) {
    CHECK(std::string(e.what()) == "kubeconfig " + sim.kubeconfig().string() + ": context \"nope\" not found");
  }
  temp_dir d;
  write(d.path() / "broken", read(sim.kubeconfig()).substr(0, 40) + "\n  - : [\n");
  try {
    (void)k8s::load_kubeconfig({d.path() / "broken"});
    FAIL("no error for a malformed kubeconfig");
  } catch (const k8s::config_error& e) {
    CHECK(one_line(e.what()));
    CHECK(std::string(e.what()).find("malformed YAML") != std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------------
// Fault injection.

namespace {
struct fault_state {
  bool got_after_429 = false;
  long waited_ms = 0;
  int gets_ok = 0;
  int posts_failed_500 = 0, posts_ok = 0;
  k8s::request_stats stats;
};

asio::awaitable<void> faults(const kubesim_instance* sim, fault_state* st) {
  auto ex = co_await asio::this_coro::executor;
  auto cfg = kubesim_config(*sim);
  auto admin = client_for(ex, cfg);
  auto opts = test_options();
  opts.max_attempts = 12;
  auto c = client_for(ex, cfg, opts);
  co_await ensure_namespace(*c, "faults");
  const std::string body = cm("faults", "x", "1");
  REQUIRE((co_await c->create(configmaps, "faults", body)).has_value());

  // Every request is throttled (Retry-After: 1) for ~600 ms, then none.
  co_await set_faults(*admin, R"({"throttle_rate":1.0,"retry_after_seconds":1})");
  auto lift = [](k8s::api_client* a) -> asio::awaitable<void> {
    co_await sleep_for(600ms);
    co_await set_faults(*a, R"({"throttle_rate":0.0})");
  };
  asio::co_spawn(ex, lift(admin.get()), [](std::exception_ptr e) { REQUIRE(!e); });
  auto t0 = std::chrono::steady_clock::now();
  auto r = co_await c->get(configmaps, "faults", "x");
  st->waited_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  st->got_after_429 = r.has_value();

  // A third of the requests fail with 500: GETs are retried and all succeed; POSTs are not.
  co_await set_faults(*admin, R"({"error_rate":0.3})");
  for (int i = 0; i < 40; ++i) {
    auto g = co_await c->get(configmaps, "faults", "x");
    if (g) ++st->gets_ok;
  }
  for (int i = 0; i < 20; ++i) {
    const std::string b = cm("faults", "p" + std::to_string(i), "1");
    auto p = co_await c->create(configmaps, "faults", b);
    if (p) {
      ++st->posts_ok;
    } else if (p.error().http_status == 500) {
      ++st->posts_failed_500;
    }
  }
  co_await set_faults(*admin, R"({"error_rate":0.0})");
  st->stats = c->stats();
}
}  // namespace

TEST_CASE("kubesim faults: 429 is retried after Retry-After; 500s are retried for GETs, not for POSTs") {
  canaryd::log::set_level(canaryd::log::level::error);
  kubesim_instance sim;
  asio::io_context io;
  fault_state st;
  run_io(io, faults(&sim, &st));
  CHECK(st.got_after_429);
  CHECK(st.waited_ms >= 900);
  CHECK(count(st.stats, "GET", 429) >= 1);
  CHECK(st.stats.retry_after_waits >= 1);
  CHECK(st.gets_ok == 40);
  CHECK(count(st.stats, "GET", 500) >= 1);
  CHECK(st.posts_ok + st.posts_failed_500 == 20);
  CHECK(st.posts_failed_500 >= 1);
  CHECK(count(st.stats, "POST", 500) == static_cast<std::uint64_t>(st.posts_failed_500));
}

namespace {
// The consumer's view, checked for consistency: no add of a present key, no update or delete
// of an absent one, and how often each (name, resourceVersion) was delivered.
struct recorder {
  std::map<std::string, std::string> view;  // name -> data.v
  std::map<std::string, int> deliveries;    // "name@rv" -> times
  std::vector<std::string> log;
  bool consistent = true;
  int synced = 0;
  void on(const k8s::watch_event& ev) {
    std::string name(ev.object->name());
    log.push_back(std::string(k8s::to_string(ev.type)) + " " + name);
    ++deliveries[name + "@" + ev.object->resource_version() + "/" + std::string(k8s::to_string(ev.type))];
    switch (ev.type) {
      case k8s::event_type::added:
        if (view.contains(name)) consistent = false;
        view[name] = data_v(*ev.object);
        break;
      case k8s::event_type::modified:
        if (!view.contains(name)) consistent = false;
        view[name] = data_v(*ev.object);
        break;
      case k8s::event_type::deleted:
        if (!view.erase(name)) consistent = false;
        break;
    }
  }
  int duplicates() const {
    int d = 0;
    for (const auto& [k, n] : deliveries) d += n > 1 ? n - 1 : 0;
    return d;
  }
};

asio::awaitable<std::map<std::string, std::string>> server_view(k8s::api_client& c, const std::string& ns) {
  auto l = co_await c.list_all(configmaps, ns);
  REQUIRE_MESSAGE(l.has_value(), l.error().what());
  std::map<std::string, std::string> m;
  for (const auto& o : l->items) m[std::string(o.name())] = data_v(o);
  co_return m;
}

struct watch_state {
  bool synced = false, after_drops = false, after_compact = false;
  int created = 0;
  std::map<std::string, std::string> expected;
  std::vector<std::string> compact_events;
  k8s::watch_stats stats;
};

asio::awaitable<void> watch_faults(const kubesim_instance* sim, recorder* rec, watch_state* st) {
  auto ex = co_await asio::this_coro::executor;
  auto cfg = kubesim_config(*sim);
  auto admin = client_for(ex, cfg);
  auto c = client_for(ex, cfg);
  co_await ensure_namespace(*c, "watched");
  for (int i = 0; i < 5; ++i) {
    const std::string b = cm("watched", "pre-" + std::to_string(i), "0");
    REQUIRE((co_await c->create(configmaps, "watched", b)).has_value());
  }
  k8s::watch_options wo;
  wo.res = configmaps;
  wo.namespace_name = "watched";
  wo.retry = {std::chrono::milliseconds(300), std::chrono::milliseconds(1000), 2.0, 0.0};
  wo.min_healthy_stream = 0ms;
  k8s::watcher w(*c, wo, [rec](const k8s::watch_event& ev) { rec->on(ev); }, [rec] { ++rec->synced; });
  bool running = true;
  asio::co_spawn(ex, w.run(), [&running](std::exception_ptr e) {
    running = false;
    REQUIRE(!e);
  });
  st->synced = co_await eventually([&] { return rec->synced == 1 && rec->view.size() == 5; });

  // Cut the watch three times while objects are being created, updated and deleted.
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 10; ++i) {
      const std::string b = cm("watched", "r" + std::to_string(round) + "-" + std::to_string(i), "1");
      auto r = co_await c->create(configmaps, "watched", b);
      REQUIRE_MESSAGE(r.has_value(), r.error().what());
      ++st->created;
      if (i == 4) co_await set_faults(*admin, R"({"drop_watches":true})");
    }
    const std::string patch = R"({"data":{"v":"patched"}})";
    REQUIRE((co_await c->patch(configmaps, "watched", "pre-" + std::to_string(round), k8s::patch_type::merge, patch))
                .has_value());
    REQUIRE((co_await c->remove(configmaps, "watched", "r" + std::to_string(round) + "-0")).has_value());
  }
  st->expected = co_await server_view(*c, "watched");
  st->after_drops = co_await eventually([&] { return rec->view == st->expected; });

  // Compaction while the watch is cut: changes happen while it waits to reconnect (300 ms
  // backoff), then the history is compacted, so it resumes from a resourceVersion that is gone,
  // gets 410, relists, and delivers only what changed meanwhile.
  const auto before = rec->log.size();
  co_await set_faults(*admin, R"({"drop_watches":true})");
  const std::string patch = R"({"data":{"v":"while-away"}})";
  REQUIRE((co_await c->patch(configmaps, "watched", "pre-4", k8s::patch_type::merge, patch)).has_value());
  REQUIRE((co_await c->remove(configmaps, "watched", "pre-3")).has_value());
  const std::string added = cm("watched", "while-away", "1");
  REQUIRE((co_await c->create(configmaps, "watched", added)).has_value());
  co_await set_faults(*admin, R"({"compact":true})");
  st->expected = co_await server_view(*c, "watched");
  st->after_compact = co_await eventually([&] { return rec->view == st->expected && w.stats().relists_gone >= 1; });
  st->compact_events.assign(rec->log.begin() + static_cast<std::ptrdiff_t>(before), rec->log.end());
  st->stats = w.stats();
  w.stop();
  co_await eventually([&] { return !running; });
}
}  // namespace

TEST_CASE("kubesim faults: dropped watches resume and compaction relists, with no lost or duplicated event") {
  canaryd::log::set_level(canaryd::log::level::warn);
  kubesim_instance sim;
  asio::io_context io;
  recorder rec;
  watch_state st;
  run_io(io, watch_faults(&sim, &rec, &st), 90s);
  CHECK(st.synced);
  CHECK(st.after_drops);
  CHECK(st.after_compact);
  CHECK(rec.consistent);
  CHECK(rec.duplicates() == 0);
  CHECK(rec.synced == 1);
  CHECK(st.stats.streams >= 3);
  CHECK(st.stats.relists_gone >= 1);
  // The relist delivered exactly the three changes made while the watch was away.
  auto compact_events = st.compact_events;
  std::sort(compact_events.begin(), compact_events.end());
  CHECK(compact_events == std::vector<std::string>{"added while-away", "deleted pre-3", "modified pre-4"});
  // Every created object was delivered as added exactly once (none lost).
  int adds = 0;
  for (const auto& [k, n] : rec.deliveries) {
    if (k.ends_with("/added") && k.rfind("r", 0) == 0) adds += n;
  }
  CHECK(adds == st.created);
  CHECK(rec.view == st.expected);
}

namespace {
struct cache_state {
  bool synced = false;
  bool found = false;
  std::size_t size = 0;
  int adds = 0, updates = 0, deletes = 0;
  long latency_ms = -1;
};

asio::awaitable<void> cache_run(const kubesim_instance* sim, cache_state* st) {
  auto ex = co_await asio::this_coro::executor;
  auto c = client_for(ex, kubesim_config(*sim));
  co_await ensure_namespace(*c, "cached");
  k8s::watch_options wo;
  wo.res = configmaps;
  wo.label_selector = "app=cached";
  k8s::cache cache(*c, wo);
  std::chrono::steady_clock::time_point created_at{}, seen_at{};
  cache.subscribe({[&](const k8s::object_ptr& o) {
                     ++st->adds;
                     if (o->name() == "probe") seen_at = std::chrono::steady_clock::now();
                   },
                   [&](const k8s::object_ptr&, const k8s::object_ptr&) { ++st->updates; },
                   [&](const k8s::object_ptr&) { ++st->deletes; }});
  bool running = true;
  asio::co_spawn(ex, cache.run(), [&running](std::exception_ptr e) {
    running = false;
    REQUIRE(!e);
  });
  st->synced = co_await cache.wait_synced(10s);
  const std::string other = cm("cached", "unlabelled", "1");
  REQUIRE((co_await c->create(configmaps, "cached", other)).has_value());
  const std::string probe = cm("cached", "probe", "1", {{"app", "cached"}});
  created_at = std::chrono::steady_clock::now();
  REQUIRE((co_await c->create(configmaps, "cached", probe)).has_value());
  co_await eventually([&] { return cache.get("cached", "probe") != nullptr; });
  st->latency_ms = std::chrono::duration_cast<std::chrono::milliseconds>(seen_at - created_at).count();
  const std::string patch = R"({"data":{"v":"2"}})";
  REQUIRE((co_await c->patch(configmaps, "cached", "probe", k8s::patch_type::merge, patch)).has_value());
  co_await eventually([&] { return st->updates == 1; });
  REQUIRE((co_await c->remove(configmaps, "cached", "probe")).has_value());
  co_await eventually([&] { return st->deletes == 1; });
  st->found = cache.get("cached", "probe") == nullptr && cache.get("cached", "unlabelled") == nullptr;
  st->size = cache.size();
  cache.stop();
  co_await eventually([&] { return !running; });
}
}  // namespace

TEST_CASE("kubesim: a cache with a label selector syncs and sees a change within 100 ms") {
  canaryd::log::set_level(canaryd::log::level::warn);
  kubesim_instance sim;
  asio::io_context io;
  cache_state st;
  run_io(io, cache_run(&sim, &st));
  CHECK(st.synced);
  CHECK(st.adds == 1);
  CHECK(st.updates == 1);
  CHECK(st.deletes == 1);
  CHECK(st.found);
  CHECK(st.size == 0);
  CHECK(st.latency_ms >= 0);
  CHECK(st.latency_ms < 100);
}

namespace {
struct fence_state {
  bool fenced_write_refused = false;
  std::string fenced_message;
  bool read_passed = false;
  bool lease_passed = false;
  bool reopened_write_passed = false;
  bool write_reached_server = false;
};

asio::awaitable<void> fence(const kubesim_instance* sim, fence_state* st) {
  auto ex = co_await asio::this_coro::executor;
  auto c = client_for(ex, kubesim_config(*sim));
  bool open = false;
  c->set_fence([&open](const canaryd::http::request& r) {
    return open || r.method == "GET" || r.target.starts_with("/apis/coordination.k8s.io/");
  });
  auto refused = co_await c->create(configmaps, "default", cm("default", "fenced", "1"));
  st->fenced_write_refused = !refused && refused.error().code == canaryd::http::errc::cancelled;
  if (!refused) st->fenced_message = refused.error().message;
  st->read_passed = (co_await c->list(configmaps, "default")).has_value();
  const k8s::resource leases{"coordination.k8s.io", "v1", "leases", true};
  auto lease = co_await c->create(leases, "default",
                                  R"({"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"l"},"spec":{}})");
  st->lease_passed = lease.has_value();
  open = true;
  st->reopened_write_passed = (co_await c->create(configmaps, "default", cm("default", "open", "1"))).has_value();
  auto got = co_await c->get(configmaps, "default", "fenced");
  st->write_reached_server = got.has_value();
}
}  // namespace

TEST_CASE("kubesim: a closed write fence keeps writes from being sent; reads and the Lease pass") {
  canaryd::log::set_level(canaryd::log::level::warn);
  kubesim_instance sim;
  asio::io_context io;
  fence_state st;
  run_io(io, fence(&sim, &st));
  CHECK(st.fenced_write_refused);
  CHECK(st.fenced_message.find("fenced") != std::string::npos);
  CHECK(st.read_passed);
  CHECK(st.lease_passed);
  CHECK(st.reopened_write_passed);
  CHECK_FALSE(st.write_reached_server);
}
