// Alerts end to end: the real canaryd against kubesim walks a canary through a release while
// AlertProviders of type slack (address from a Secret, with a token), msteams, discord, gchat and
// rocket (through an HTTP proxy) point at a receiver in this test, one https provider goes
// through it as a CONNECT proxy, and one points at a closed port. The receiver checks Flagger's payloads arrive for the severities each alert is configured
// with and for no other; the dead provider is logged and counted and does not stop the canary.
#include <doctest/doctest.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <csignal>
#include <mutex>
#include <thread>

#include "k8s/http_server.hpp"
#include "tests/e2e/harness.hpp"
#include "tests/support/kubesim.hpp"
#include "tests/support/process.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
namespace http = canaryd::http;
using namespace canaryd::test;
using namespace std::chrono_literals;
using namespace boost::asio::experimental::awaitable_operators;

namespace {

struct received {
  std::string path;
  std::string host;
  std::string authorization;
  std::string content_type;
  json::value body;
  std::chrono::steady_clock::time_point at;
};

// An HTTP receiver on 127.0.0.1:<port 0> running its own io_context on a thread. It records
// every POST and answers 200, except that "/gate" answers 403 to its first request (so a
// confirm-rollout gate holds the canary once) and 200 after, "/fail" always answers 500, and
// "/slow" answers only after 20 s (or when the client gives up and closes the connection).
class receiver {
 public:
  receiver() : work_(io_.get_executor()) {
    http::server_options so;
    so.listen = "127.0.0.1:0";
    auto s = http::start_server(io_.get_executor(), so,
                                [this](const http::request& req, const http::peer_info&,
                                       http::responder& out) -> asio::awaitable<void> {
                                  http::response res;
                                  res.status = record(req);
                                  if (req.target == "/slow") {
                                    asio::steady_timer t(co_await asio::this_coro::executor, 20s);
                                    co_await (t.async_wait(asio::use_awaitable) || out.wait_closed());
                                    if (out.closed()) co_return;
                                  }
                                  res.body = res.status == 200 ? "ok" : res.status == 500 ? "boom" : "not yet";
                                  co_await out.send(std::move(res));
                                });
    REQUIRE_MESSAGE(s, "cannot start the receiver: " << s.error().message());
    server_ = std::move(*s);
    port_ = server_->port();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~receiver() {
    asio::post(io_, [this] { server_->stop(); });
    work_.reset();
    thread_.join();
  }
  receiver(const receiver&) = delete;
  receiver& operator=(const receiver&) = delete;

  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

  // The POSTs to `path` so far.
  std::vector<received> at(const std::string& path) const {
    std::lock_guard lock(mu_);
    std::vector<received> out;
    for (const auto& r : all_)
      if (r.path == path) out.push_back(r);
    return out;
  }

 private:
  int record(const http::request& req) {
    received r;
    r.path = req.target;
    r.host = std::string(req.header("Host").value_or(""));
    r.authorization = std::string(req.header("Authorization").value_or(""));
    r.content_type = std::string(req.header("Content-Type").value_or(""));
    r.at = std::chrono::steady_clock::now();
    boost::system::error_code ec;
    r.body = json::parse(req.body, ec);
    std::lock_guard lock(mu_);
    const bool gate = r.path == "/gate";
    const bool fail = r.path == "/fail";
    all_.push_back(std::move(r));
    if (gate && ++gate_calls_ == 1) return 403;
    return fail ? 500 : 200;
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::unique_ptr<http::server> server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;  // the receiver thread writes, the test thread reads
  std::vector<received> all_;
  int gate_calls_ = 0;
};

// The alert texts in the order received: attachments[0].text (Slack-compatible) or
// sections[0].activityTitle (MS Teams).
std::vector<std::string> texts(const std::vector<received>& rs) {
  std::vector<std::string> out;
  for (const auto& r : rs) {
    if (!r.body.is_object()) continue;
    auto t = str_at(r.body.as_object().contains("attachments") ? r.body.at_pointer("/attachments/0") : json::value(),
                    {"text"});
    if (t.empty() && r.body.as_object().contains("sections")) t = str_at(r.body.at_pointer("/sections/0"), {"activityTitle"});
    out.push_back(t);
  }
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += "  " + s + "\n";
  return out;
}

const received* find_text(const std::vector<received>& rs, const std::string& text) {
  for (const auto& r : rs) {
    auto t = texts({r});
    if (!t.empty() && t[0] == text) return &r;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("alerts reach slack, msteams, discord, rocket (through a proxy) and gchat providers with Flagger's payloads, filtered by severity; a dead one is logged and counted") {
  receiver rx;
  const int dead_port = free_port();  // bound and released: nothing listens there

  kubesim_instance sim;
  setup_cluster(sim);
  sim.kubectl_ok({"-n", "demo", "create", "secret", "generic", "slack-hook",
                  "--from-literal=address=" + rx.url("/slack-secret"), "--from-literal=token=s3cr3t"});
  const std::string providers =
      "apiVersion: flagger.app/v1beta1\n"
      "kind: AlertProvider\n"
      "metadata: {name: on-call, namespace: demo}\n"
      "spec: {type: slack, channel: ops, username: canary-bot, secretRef: {name: slack-hook}}\n"
      "---\n"
      "apiVersion: flagger.app/v1beta1\n"
      "kind: AlertProvider\n"
      "metadata: {name: teams, namespace: demo}\n"
      "spec: {type: msteams, address: \"" + rx.url("/teams") + "\"}\n"
      "---\n"
      "apiVersion: flagger.app/v1beta1\n"
      "kind: AlertProvider\n"
      "metadata: {name: discord, namespace: demo}\n"
      "spec: {type: discord, address: \"" + rx.url("/discord") + "\"}\n"
      "---\n"
      "apiVersion: flagger.app/v1beta1\n"
      "kind: AlertProvider\n"
      "metadata: {name: dead, namespace: demo}\n"
      "spec: {type: slack, address: \"http://127.0.0.1:" + std::to_string(dead_port) + "/hook\"}\n"
      "---\n"
      "apiVersion: flagger.app/v1beta1\n"
      "kind: AlertProvider\n"
      "metadata: {name: rocket, namespace: demo}\n"
      "spec: {type: rocket, address: \"http://rocket.example.invalid/hooks/abc\", proxy: \"" + rx.url("/") + "\"}\n"
      "---\n"
      "apiVersion: flagger.app/v1beta1\n"
      "kind: AlertProvider\n"
      "metadata: {name: gchat, namespace: demo}\n"
      "spec: {type: gchat, address: \"" + rx.url("/gchat?key=k1") + "\"}\n"
      "---\n"
      "apiVersion: flagger.app/v1beta1\n"
      "kind: AlertProvider\n"
      "metadata: {name: tls-proxy, namespace: demo}\n"
      "spec: {type: slack, address: \"https://hooks.example.invalid/x\", proxy: \"" + rx.url("/") + "\"}\n"
      "---\n"
      "apiVersion: flagger.app/v1beta1\n"
      "kind: AlertProvider\n"
      "metadata: {name: failing, namespace: demo}\n"
      "spec: {type: msteams, address: \"" + rx.url("/fail") + "\"}\n"
      "---\n"
      "apiVersion: flagger.app/v1beta1\n"
      "kind: AlertProvider\n"
      "metadata: {name: slow, namespace: demo}\n"
      "spec: {type: slack, address: \"" + rx.url("/slow") + "\"}\n";
  sim.kubectl_ok({"apply", "-f", "-"}, providers);

  auto d = start_canaryd(sim, {"-cluster-name=e2e-cluster"});
  init_podinfo(sim, canary_yaml("podinfo", "podinfo",
                                "    webhooks:\n"
                                "    - name: gate\n"
                                "      type: confirm-rollout\n"
                                "      url: " + rx.url("/gate") + "\n"
                                "    alerts:\n"
                                "    - name: on-call\n"
                                "      severity: info\n"
                                "      providerRef: {name: on-call}\n"
                                "    - name: teams\n"
                                "      severity: error\n"
                                "      providerRef: {name: teams, namespace: demo}\n"
                                "    - name: discord\n"
                                "      severity: warn\n"
                                "      providerRef: {name: discord}\n"
                                "    - name: dead\n"
                                "      severity: info\n"
                                "      providerRef: {name: dead}\n"
                                "    - name: rocket\n"
                                "      severity: info\n"
                                "      providerRef: {name: rocket}\n"
                                "    - name: gchat\n"
                                "      providerRef: {name: gchat}\n"
                                "    - name: tls-proxy\n"
                                "      severity: error\n"
                                "      providerRef: {name: tls-proxy}\n"
                                "    - name: failing\n"
                                "      severity: warn\n"
                                "      providerRef: {name: failing}\n"
                                "    - name: slow\n"
                                "      severity: info\n"
                                "      providerRef: {name: slow}\n"));

  // A release: the gate holds it once (a warn alert), then it promotes (info alerts).
  sim.kubectl_ok({"-n", "demo", "set", "image", "deployment/podinfo", "podinfod=ghcr.io/stefanprodan/podinfo:6.0.1"});
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 60s), dump(canary_events(sim, "podinfo")));
  const std::string done = "Canary analysis completed successfully, promotion finished.";
  CHECK(eventually([&] { return contains(texts(rx.at("/slack-secret")), done); }, 10s));

  // info: every alert, at the Secret's address, with its token and the provider's channel/user.
  auto slack = rx.at("/slack-secret");
  INFO("slack got:\n" << join(texts(slack)));
  CHECK(contains(texts(slack), "New Deployment detected, initialization completed."));
  CHECK(contains(texts(slack), "Canary is waiting for approval."));
  CHECK(contains(texts(slack), "New revision detected, progressing canary analysis."));
  CHECK(contains(texts(slack), done));
  for (const auto& r : slack) {
    CHECK(r.authorization == "Bearer s3cr3t");
    CHECK(r.content_type == "application/json");
    CHECK(str_at(r.body, {"channel"}) == "ops");
    CHECK(str_at(r.body, {"username"}) == "canary-bot");
    CHECK(str_at(r.body, {"icon_emoji"}) == ":rocket:");
    CHECK(str_at(r.body, {"icon_url"}) == "");
    CHECK(str_at(r.body.at_pointer("/attachments/0"), {"author_name"}) == "podinfo.demo");
    CHECK(str_at(r.body.at_pointer("/attachments/0"), {"color"}) == "good");
    CHECK(r.body.at_pointer("/attachments/0/mrkdwn_in") == json::array{"text"});
  }
  if (const auto* rev = find_text(slack, "New revision detected, progressing canary analysis.")) {
    // with_metadata: Cluster (-cluster-name), Target, thresholds, deadline, routing, short:false.
    const auto& fields = rev->body.at_pointer("/attachments/0/fields").as_array();
    REQUIRE(fields.size() == 5);
    CHECK(str_at(fields[0], {"title"}) == "Cluster");
    CHECK(str_at(fields[0], {"value"}) == "e2e-cluster");
    CHECK(str_at(fields[1], {"title"}) == "Target");
    CHECK(str_at(fields[1], {"value"}) == "Deployment/podinfo.demo");
    CHECK(str_at(fields[2], {"title"}) == "Failed checks threshold");
    CHECK(str_at(fields[2], {"value"}) == "2");
    CHECK(str_at(fields[3], {"title"}) == "Progress deadline");
    CHECK(str_at(fields[3], {"value"}) == "600s");
    CHECK(str_at(fields[4], {"title"}) == "Traffic routing");
    CHECK(str_at(fields[4], {"value"}) == "Blue/Green");
    CHECK(fields[0].at("short") == false);
  }
  if (const auto* gate = find_text(slack, "Canary is waiting for approval.")) {
    const auto& fields = gate->body.at_pointer("/attachments/0/fields").as_array();
    REQUIRE(fields.size() == 1);  // no metadata: the Cluster field only
    CHECK(str_at(fields[0], {"title"}) == "Cluster");
  }

  // The slow webhook did not hold the rollout: the gate's alert and the next tick's alert (one
  // 1 s interval later) reached Slack well within the 5 s each blocked post would have taken.
  {
    const auto* waiting = find_text(slack, "Canary is waiting for approval.");
    const auto* revision = find_text(slack, "New revision detected, progressing canary analysis.");
    REQUIRE(waiting);
    REQUIRE(revision);
    CHECK(revision->at - waiting->at < 4s);
    CHECK(rx.at("/slow").size() >= 3);
  }

  // rocket through its HTTP proxy (the receiver): the absolute URI and the origin's Host.
  auto rocket = rx.at("http://rocket.example.invalid/hooks/abc");
  CHECK_MESSAGE(contains(texts(rocket), done), join(texts(rocket)) << "canaryd's errors:\n" << [&] {
    std::string errors;
    for (const auto& l : d.proc->lines())
      if (l.find("\"level\":\"error\"") != std::string::npos) errors += l + "\n";
    return errors;
  }());
  for (const auto& r : rocket) {
    CHECK(r.host == "rocket.example.invalid");
    CHECK(str_at(r.body.at_pointer("/attachments/0"), {"color"}) == "#0076D7");
    CHECK(str_at(r.body, {"username"}) == "flagger");
    CHECK(str_at(r.body, {"channel"}) == "general");
  }
  // gchat, no severity (info, as Flagger's docs say), query kept: the card with the message first.
  auto gchat = rx.at("/gchat?key=k1");
  REQUIRE(!gchat.empty());
  CHECK(str_at(gchat[0].body.at_pointer("/cards/0/header"), {"title"}) == "Flagger");
  CHECK(str_at(gchat[0].body.at_pointer("/cards/0/header"), {"subtitle"}) == "podinfo.demo");
  CHECK(str_at(gchat[0].body.at_pointer("/cards/0/header"), {"imageUrl"}) == "https://flagger.app/favicon.png");
  CHECK(str_at(gchat[0].body.at_pointer("/cards/0/sections/0/widgets/0/textParagraph"), {"text"}) ==
        "<font color=#848484><strong>New Deployment detected, initialization completed.</strong></font>");
  CHECK(str_at(gchat[0].body.at_pointer("/cards/0/sections/1/widgets/0/textParagraph"), {"text"}) ==
        "Cluster<br><font color=#848484><strong>e2e-cluster</strong></font>");

  // warn: the gate's alert only, posted Slack-compatible to <address>/slack.
  auto discord = rx.at("/discord/slack");
  CHECK(rx.at("/discord").empty());
  CHECK_MESSAGE(texts(discord) == std::vector<std::string>{"Canary is waiting for approval."}, join(texts(discord)));
  // error: nothing yet.
  CHECK_MESSAGE(rx.at("/teams").empty(), join(texts(rx.at("/teams"))));

  // The dead provider: an error line with the canary field, a counter, and the run went on.
  auto line = d.proc->wait_for_line("\"provider\":\"dead.demo\"", 5s);
  REQUIRE(line);
  INFO(*line);
  auto l = json::parse(*line);
  CHECK(str_at(l, {"msg"}).rfind("alert can't be sent: ", 0) == 0);
  CHECK(str_at(l, {"canary"}) == "podinfo.demo");
  CHECK(str_at(l, {"provider"}) == "dead.demo");
  CHECK(str_at(l, {"level"}) == "error");
  // The webhook answering 500: an error with the status and body; hook paths never logged.
  auto fail_line = d.proc->wait_for_line("\"provider\":\"failing.demo\"", 5s);
  REQUIRE_MESSAGE(fail_line, [&] {
    std::string all;
    for (const auto& l : d.proc->lines()) all += l + "\n";
    return all;
  }());
  CHECK_MESSAGE(fail_line->find("HTTP 500: boom") != std::string::npos, *fail_line);
  CHECK(rx.at("/fail").size() == 1);  // the warn alert only; no retries
  for (const auto& l : d.proc->lines())
    CHECK_MESSAGE(l.find("/hook") == std::string::npos, l);  // the dead provider's path
  // The slow webhook: the post gave up at its 5 s deadline.
  auto slow_line = d.proc->wait_for_line("\"provider\":\"slow.demo\"", 10s);
  REQUIRE(slow_line);
  CHECK_MESSAGE(slow_line->find("deadline exceeded") != std::string::npos, *slow_line);
  auto metrics = http_call("GET", "http://127.0.0.1:" + std::to_string(d.port) + "/metrics");
  REQUIRE(metrics);
  CHECK_MESSAGE(metrics->body.find("canaryd_alert_failures_total{provider=\"dead.demo\",type=\"slack\"}") !=
                    std::string::npos,
                metrics->body);
  CHECK(metrics->body.find("canaryd_alerts_sent_total{provider=\"on-call.demo\",type=\"slack\"}") != std::string::npos);
  CHECK(metrics->body.find("canaryd_alert_failures_total{provider=\"failing.demo\",type=\"msteams\"} 1") != std::string::npos);

  // A release that fails at its progress deadline: error alerts reach all three, in red for Teams.
  sim.kubectl_ok({"-n", "demo", "patch", "canary", "podinfo", "--type", "merge", "-p", R"({"spec":{"progressDeadlineSeconds":3}})"});
  const std::string broken =
      R"({"spec":{"strategy":{"rollingUpdate":{"maxUnavailable":0}},"template":{"metadata":{"annotations":{"kubesim.dev/ready":"false"}},)"
      R"("spec":{"containers":[{"name":"podinfod","image":"ghcr.io/stefanprodan/podinfo:6.0.2"}]}}}})";
  sim.kubectl_ok({"-n", "demo", "patch", "deployment", "podinfo", "--type", "strategic", "-p", broken});
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Failed", 60s), dump(canary_events(sim, "podinfo")));
  CHECK(eventually([&] { return !rx.at("/teams").empty(); }, 10s));
  auto teams = rx.at("/teams");
  INFO("teams got:\n" << join(texts(teams)));
  REQUIRE(!teams.empty());
  for (const auto& r : teams) {
    CHECK(texts({r})[0].rfind("Progress deadline exceeded", 0) == 0);
    CHECK(str_at(r.body, {"@type"}) == "MessageCard");
    CHECK(str_at(r.body, {"@context"}) == "http://schema.org/extensions");
    CHECK(str_at(r.body, {"themeColor"}) == "FF0000");
    CHECK(str_at(r.body, {"summary"}) == "podinfo.demo");
    CHECK(str_at(r.body.at_pointer("/sections/0"), {"activitySubtitle"}) == "podinfo.demo");
    CHECK(str_at(r.body.at_pointer("/sections/0/facts/0"), {"name"}) == "Cluster");
    CHECK(r.authorization.empty());
  }
  // https through a proxy: a CONNECT for the hook's host reached the proxy (our receiver, which
  // is no real proxy, so the tunnel fails and that is logged); nothing bypassed the proxy.
  auto tls_line = d.proc->wait_for_line("\"provider\":\"tls-proxy.demo\"", 10s);
  REQUIRE(tls_line);
  CHECK(!rx.at("hooks.example.invalid:443").empty());
  CHECK(rx.at("https://hooks.example.invalid/x").empty());
  CHECK(eventually([&] { return rx.at("/discord/slack").size() >= 2; }, 5s));
  discord = rx.at("/discord/slack");
  CHECK(str_at(discord.back().body.at_pointer("/attachments/0"), {"color"}) == "danger");
  const auto last_slack = rx.at("/slack-secret");
  CHECK(str_at(last_slack.back().body.at_pointer("/attachments/0"), {"color"}) == "danger");

  d.proc->signal(SIGTERM);
  auto code = d.proc->wait(5s);
  REQUIRE(code);
  CHECK(*code == 0);
}

TEST_CASE("a canary without analysis.alerts alerts through the global -slack-url notifier") {
  receiver rx;
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim, {"-slack-url", rx.url("/global"), "-slack-channel", "deploys", "-slack-token", "tok"});
  init_podinfo(sim);
  CHECK(eventually([&] { return !rx.at("/global").empty(); }, 10s));
  auto got = rx.at("/global");
  REQUIRE(!got.empty());
  CHECK(texts(got)[0] == "New Deployment detected, initialization completed.");
  CHECK(str_at(got[0].body, {"channel"}) == "deploys");
  CHECK(str_at(got[0].body, {"username"}) == "flagger");
  CHECK(got[0].authorization == "Bearer tok");
  const auto& fields = got[0].body.at_pointer("/attachments/0/fields").as_array();
  REQUIRE(!fields.empty());
  CHECK(str_at(fields[0], {"title"}) == "Target");  // no -cluster-name: no Cluster field
}
