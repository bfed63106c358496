// MetricTemplate providers end to end: the real canaryd against kubesim runs one Canary per
// (provider, scenario) at once, each with its own MetricTemplate, against loopback servers that
// implement the SaaS APIs strictly (tests/e2e/metric_apis.py: datadog, newrelic, dynatrace,
// influxdb; cloudwatch, whose SigV4 signatures it verifies with the test's secret key; and
// stackdriver, whose service-account JWTs it verifies with the test's public key). A good value
// promotes; a bad one rolls back; an empty series, a null/NaN value, a 429, a slow answer, a
// refused credential and a provider that is down each fail the checks
// (never pass) with an Event that names the provider, the template and the reason. The requests
// each provider sent are then checked against the API's documented shape.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <strings.h>

#include <csignal>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <atomic>
#include <mutex>
#include <set>
#include <sstream>
#include <stop_token>
#include <thread>

#include "tests/e2e/harness.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

// The canary's one metric: the template of the same name, at most 1, interval 30s.
std::string provider_canary(const std::string& name) {
  return canary_yaml(name, name,
                     "    metrics:\n"
                     "    - name: errors\n"
                     "      templateRef:\n"
                     "        name: " + name + "\n"
                     "      thresholdRange:\n"
                     "        max: 1\n"
                     "      interval: 30s\n");
}

// Each provider's query, with the scenario word the loopback server answers by.
const std::map<std::string, std::string> queries = {
    {"datadog", "avg:http.errors{kube_deployment:{{ target }},scenario:SCENARIO}.as_count()"},
    {"newrelic",
     "SELECT filter(count(*), WHERE httpResponseCode >= '500') / count(*) * 100 AS result FROM Transaction "
     "WHERE appName = '{{ target }}' AND scenario = 'SCENARIO'"},
    {"dynatrace", "builtin:service.errors.total.rate:filter(and(eq(deployment,{{ target }}),eq(scenario,SCENARIO)))"},
    {"influxdb",
     "from(bucket: \"canary\")\n  |> range(start: -{{ interval }})\n"
     "  |> filter(fn: (r) => r.deployment == \"{{ target }}\" and r.scenario == \"SCENARIO\")\n  |> mean()"},
    {"stackdriver",
     "fetch k8s_container\n| metric 'custom.googleapis.com/http/errors'\n"
     "| filter resource.container_name == '{{ target }}' && metric.scenario == 'SCENARIO'\n"
     "| align rate({{ interval }})\n| every {{ interval }}"},
    // Flagger's documented shape: an expression over MetricStat queries.
    {"cloudwatch",
     "[\n  {\"Id\": \"e1\", \"Expression\": \"m1 / m2 * 100\", \"Label\": \"scenario-SCENARIO\"},\n"
     "  {\"Id\": \"m1\", \"ReturnData\": false, \"MetricStat\": {\"Period\": 60, \"Stat\": \"Sum\", \"Metric\": "
     "{\"Namespace\": \"Canary\", \"MetricName\": \"Errors\", \"Dimensions\": [{\"Name\": \"app\", \"Value\": "
     "\"{{ target }}\"}]}}},\n"
     "  {\"Id\": \"m2\", \"ReturnData\": false, \"MetricStat\": {\"Period\": 60, \"Stat\": \"Sum\", \"Metric\": "
     "{\"Namespace\": \"Canary\", \"MetricName\": \"Requests\", \"Dimensions\": [{\"Name\": \"app\", \"Value\": "
     "\"{{ target }}\"}]}}}\n]"},
};

std::string template_yaml(const std::string& name, const std::string& type, const std::string& address,
                          const std::string& secret, const std::string& scenario) {
  std::string q = replaced(queries.at(type), "SCENARIO", scenario);
  std::string indented = "    " + replaced(q, "\n", "\n    ");
  return "apiVersion: flagger.app/v1beta1\n"
         "kind: MetricTemplate\n"
         "metadata:\n"
         "  name: " + name + "\n"
         "  namespace: demo\n"
         "spec:\n"
         "  provider:\n"
         "    type: " + type + "\n"
         "    address: " + address + "\n" +
         // CloudWatch takes no secret: the AWS credential chain, and the template's region.
         (type == "cloudwatch" ? "    region: " + secret + "\n" : "    secretRef:\n      name: " + secret + "\n") +
         "  query: |\n" + indented + "\n";
}

struct scenario_case {
  std::string provider;
  std::string scenario;  // good, bad, empty, nan, throttled, slow, unauthorized, down
  std::string name() const { return provider + "-" + scenario; }
};

// An RSA key (PEM) and its modulus (hex), made with the openssl tool.
std::pair<std::string, std::string> rsa_key(const std::filesystem::path& dir, const std::string& name) {
  const auto pem = dir / (name + ".pem");
  auto gen = run({"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", pem.string()});
  REQUIRE_MESSAGE(gen.exit_code == 0, gen.err);
  auto mod = run({"openssl", "rsa", "-in", pem.string(), "-noout", "-modulus"});
  REQUIRE_MESSAGE(mod.exit_code == 0, mod.err);
  std::string n = mod.out.substr(mod.out.find('=') + 1);
  while (!n.empty() && (n.back() == '\n' || n.back() == '\r')) n.pop_back();
  return {read_text(pem), n};
}

// Reads canaryd's output on a thread of its own until stopped: with dozens of canaries at 1 s
// canaryd logs faster than a test that polls kubectl would read, and a canaryd blocked on a
// write to its stdout pipe stops ticking. Only this thread touches the child while it runs.
class drainer {
 public:
  explicit drainer(child& p) : thread_([&p](std::stop_token st) {
    while (!st.stop_requested()) p.read_line(std::chrono::milliseconds(100));
  }) {}

 private:
  std::jthread thread_;
};

std::vector<json::value> read_log(const std::filesystem::path& p) {
  std::vector<json::value> out;
  std::istringstream in(read_text(p));
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(json::parse(l));
  return out;
}

std::string param(const json::value& req, const char* key) {
  auto* v = req.at("params").as_object().if_contains(key);
  if (!v || !v->is_array() || v->as_array().empty()) return {};
  return std::string(v->as_array()[0].as_string());
}

std::string header(const json::value& req, const char* key) {
  for (const auto& [k, v] : req.at("headers").as_object())
    if (strcasecmp(std::string(k).c_str(), key) == 0) return std::string(v.as_string());
  return {};
}

}  // namespace

TEST_CASE("datadog, newrelic, dynatrace, influxdb, cloudwatch and stackdriver templates promote on a good value, roll back on a bad one and never pass without data") {
  kubesim_instance sim;
  setup_cluster(sim);

  const std::map<std::string, std::string> creds = {
      {"datadog_api_key", "dd-api-4f2a"},      {"datadog_application_key", "dd-app-9c1e"},
      {"newrelic_account_id", "1234567"},      {"newrelic_query_key", "NRIQ-77aa"},
      {"dynatrace_token", "dt0c01.ABC.DEF"},   {"token", "influx-tok-31"},
      {"org", "canary-org"}};
  // canaryd's AWS credentials (its environment), and what the loopback AWS verifies with.
  const std::map<std::string, std::string> aws_env = {{"AWS_ACCESS_KEY_ID", "AKIDCANARYDTEST"},
                                                      {"AWS_SECRET_ACCESS_KEY", "c4n4ryd/S3cret+Key/EXAMPLE"}};
  temp_dir dir;
  // The service account's key, and another key that signs assertions Google would refuse.
  const auto [sa_pem, sa_modulus] = rsa_key(dir.path(), "sa");
  const auto [wrong_pem, wrong_modulus] = rsa_key(dir.path(), "wrong");
  json::object creds_json;
  for (const auto& [k, v] : creds) creds_json[k] = v;
  creds_json["google_rsa_n"] = sa_modulus;
  creds_json["google_key_id"] = "4f1e0c0ffee";
  creds_json["google_client_email"] = "canaryd@canary-project.iam.gserviceaccount.com";
  creds_json["google_project"] = "canary-project";
  creds_json["aws_access_key_id"] = aws_env.at("AWS_ACCESS_KEY_ID");
  creds_json["aws_secret_access_key"] = aws_env.at("AWS_SECRET_ACCESS_KEY");
  creds_json["aws_role_arn"] = "arn:aws:iam::123456789012:role/canaryd";
  creds_json["aws_web_identity_token"] = "eyJhbGciOiJSUzI1NiJ9.service-account-token.sig";
  const auto log = dir.path() / "requests.jsonl";
  const int port = free_port();
  child apis({"python3", (source_root() / "tests" / "e2e" / "metric_apis.py").string(), std::to_string(port),
              json::serialize(creds_json), log.string()},
             {}, dir.path() / "apis.err");
  REQUIRE_MESSAGE(apis.wait_for_line("listening", 20s), apis.stderr_text());
  const std::string api_url = "http://127.0.0.1:" + std::to_string(port);
  auto sa_key = [&](const std::string& pem) {
    return json::serialize(json::object{{"type", "service_account"},
                                        {"project_id", "canary-project"},
                                        {"private_key_id", "4f1e0c0ffee"},
                                        {"private_key", pem},
                                        {"client_email", "canaryd@canary-project.iam.gserviceaccount.com"},
                                        {"token_uri", api_url + "/token"}});
  };
  const std::string down_url = "http://127.0.0.1:" + std::to_string(free_port());

  // Two secrets: the right keys, and the same keys with wrong values (newrelic's account id kept).
  std::vector<std::string> good_secret{"-n", "demo", "create", "secret", "generic", "api-keys"};
  std::vector<std::string> bad_secret{"-n", "demo", "create", "secret", "generic", "wrong-keys"};
  for (const auto& [k, v] : creds) {
    good_secret.push_back("--from-literal=" + k + "=" + v);
    bad_secret.push_back("--from-literal=" + k + "=" + (k == "newrelic_account_id" || k == "org" ? v : "wrong"));
  }
  good_secret.push_back("--from-literal=project=canary-project");
  good_secret.push_back("--from-literal=serviceAccountKey=" + sa_key(sa_pem));
  bad_secret.push_back("--from-literal=project=canary-project");
  bad_secret.push_back("--from-literal=serviceAccountKey=" + sa_key(wrong_pem));
  sim.kubectl_ok(good_secret);
  sim.kubectl_ok(bad_secret);

  std::vector<scenario_case> cases;
  for (const char* s : {"good", "bad", "empty", "nan", "unauthorized"}) {
    for (const char* p : {"datadog", "newrelic", "dynatrace", "influxdb"}) cases.push_back({p, s});
  }
  cases.push_back({"datadog", "down"});
  cases.push_back({"influxdb", "down"});
  cases.push_back({"datadog", "throttled"});
  cases.push_back({"dynatrace", "throttled"});
  cases.push_back({"newrelic", "slow"});
  for (const char* s : {"good", "bad", "empty", "unauthorized", "down"}) cases.push_back({"cloudwatch", s});
  for (const char* s : {"good", "bad", "empty", "nan", "unauthorized", "down"}) cases.push_back({"stackdriver", s});

  std::string manifests;
  for (const auto& c : cases) {
    const std::string scen = c.scenario == "unauthorized" || c.scenario == "down" ? "good" : c.scenario;
    // A wrong credential: the wrong keys in the secret; for CloudWatch a signature scoped to a
    // region the endpoint does not serve.
    std::string secret = c.scenario == "unauthorized" ? "wrong-keys" : "api-keys";
    if (c.provider == "cloudwatch") secret = c.scenario == "unauthorized" ? "eu-west-1" : "us-east-1";
    manifests += "---\n" + template_yaml(c.name(), c.provider, c.scenario == "down" ? down_url : api_url, secret, scen);
    manifests += "---\n" + metric_target_yaml(c.name());
  }
  sim.kubectl_ok({"apply", "-f", "-"}, manifests);
  auto d = start_canaryd(sim, {"-kubeconfig-qps=2000", "-kubeconfig-burst=4000"}, aws_env);
  auto output = std::make_unique<drainer>(*d.proc);
  std::string canaries;
  for (const auto& c : cases) canaries += "---\n" + provider_canary(c.name());
  sim.kubectl_ok({"apply", "-f", "-"}, canaries);

  auto phases = [&] {
    std::map<std::string, std::string> out;
    auto v = get_json(sim, {"canaries"});
    if (v.is_null()) return out;
    for (const auto& item : v.at("items").as_array())
      out[str_at(item, {"metadata", "name"})] = str_at(item, {"status", "phase"});
    return out;
  };
  auto all_in = [&](const std::function<bool(const scenario_case&, const std::string&)>& pred) {
    auto p = phases();
    for (const auto& c : cases)
      if (!pred(c, p[c.name()])) return false;
    return true;
  };
  REQUIRE_MESSAGE(eventually([&] { return all_in([](auto&, auto& ph) { return ph == "Initialized"; }); }, 60s),
                  "not all canaries initialized");

  std::vector<std::string> set_image{"-n", "demo", "set", "image"};
  for (const auto& c : cases) set_image.push_back("deployment/" + c.name());
  set_image.push_back("podinfod=ghcr.io/stefanprodan/podinfo:6.0.1");
  sim.kubectl_ok(set_image);

  // Every canary ends: good ones Succeeded, the rest Failed; none of those passes.
  auto want = [](const scenario_case& c) { return c.scenario == "good" ? "Succeeded" : "Failed"; };
  bool done = eventually(
      [&] {
        return all_in([&](const scenario_case&, const std::string& ph) {
          return ph == "Succeeded" || ph == "Failed";
        });
      },
      90s);
  auto final_phases = phases();
  for (const auto& c : cases) {
    auto evs = canary_events(sim, c.name());
    INFO(c.name() << " events:\n" << dump(evs));
    CHECK(final_phases[c.name()] == want(c));
    const std::string tmpl = "(" + c.provider + " provider, metric template " + c.name() + ".demo)";
    const std::string& s = c.scenario;
    if (s == "good") {
      CHECK(has_event(evs, "Normal", "Advance " + c.name() + ".demo canary iteration 3/3"));
      CHECK(lacks_event(evs, "Warning", "Halt"));
      CHECK(lacks_event(evs, "Warning", "Metric query failed"));
      CHECK(image_of(sim, c.name() + "-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1");
    } else {
      CHECK(image_of(sim, c.name() + "-primary") == "ghcr.io/stefanprodan/podinfo:6.0.0");
      CHECK(has_event(evs, "Warning", "Rolling back " + c.name() + ".demo failed checks threshold reached 2"));
    }
    if (s == "bad") CHECK(has_event(evs, "Warning", "Halt " + c.name() + ".demo advancement errors 5.00 > 1"));
    if (s == "empty" || s == "nan") {
      CHECK(has_event(evs, "Warning", "Halt advancement no values found for custom metric: errors: "));
      CHECK(has_event(evs, "Warning", "no values found " + tmpl));
    }
    if (s == "unauthorized" || s == "throttled" || s == "slow" || s == "down") {
      CHECK(has_event(evs, "Warning", "Metric query failed for errors: "));
      CHECK(has_event(evs, "Warning", tmpl));
    }
    if (s == "unauthorized") {
      const char* refusal =
          c.provider == "datadog"      ? "error response: {\"errors\": [\"Forbidden\"]}"
          : c.provider == "newrelic"   ? "error response: {\"error\": \"Invalid query key\"}"
          : c.provider == "dynatrace"  ? "Token Authentication failed"
          : c.provider == "cloudwatch" ? "error requesting cloudwatch: SignatureDoesNotMatch: Credential should be scoped "
                                         "to a valid region, not 'eu-west-1'. (status code: 403)"
          : c.provider == "stackdriver" ? "error requesting stackdriver: oauth2: cannot fetch token: 400 "
                                          "{\"error\": \"invalid_grant\", \"error_description\": \"Invalid JWT Signature.\"}"
                                       : "error accessing influxdb query api: unauthorized access";
      CHECK(has_event(evs, "Warning", refusal));
      // Initialisation already asked the provider whether it answers (IsOnline).
      CHECK(has_event(evs, "Warning", "Error checking metric providers: " + c.provider + " in metric template " +
                                          c.name() + ".demo not available"));
    }
    if (s == "throttled") CHECK(has_event(evs, "Warning", "Rate limit exceeded"));
    if (s == "slow" || (s == "down" && c.provider == "datadog")) CHECK(has_event(evs, "Warning", "request failed: "));
    if (s == "down" && c.provider == "influxdb") CHECK(has_event(evs, "Warning", "error accessing influxdb query api: "));
    if (s == "down" && c.provider == "cloudwatch") CHECK(has_event(evs, "Warning", "error requesting cloudwatch: "));
    if (s == "down" && c.provider == "stackdriver") CHECK(has_event(evs, "Warning", "error requesting stackdriver: "));
  }
  REQUIRE(done);

  // The requests, against each API's documentation. The server refused anything else with
  // "strict:", so first: nothing was refused that way.
  auto reqs = read_log(log);
  REQUIRE(!reqs.empty());
  std::map<std::string, int> seen;
  for (const auto& r : reqs) {
    const std::string answer(r.at("answer").as_string());
    INFO(json::serialize(r));
    CHECK(answer.rfind("strict:", 0) == std::string::npos);
    const std::string api(r.at("api").as_string());
    const std::string path(r.at("path").as_string());
    const int status = static_cast<int>(r.at("status").to_number<std::int64_t>());
    if (status != 200) continue;
    if (api == "datadog" && path == "/api/v1/query") {
      // from = now - 10 x 30s, in seconds.
      CHECK(std::stoll(param(r, "to")) - std::stoll(param(r, "from")) == 300);
      // (The server checked at receipt that `to` was now.)
      CHECK(header(r, "DD-API-KEY") == "dd-api-4f2a");
      CHECK(header(r, "DD-APPLICATION-KEY") == "dd-app-9c1e");
      CHECK(param(r, "query").find("kube_deployment:datadog-") != std::string::npos);
    }
    if (api == "newrelic") {
      const std::string nrql = param(r, "nrql");
      CHECK(nrql.ends_with(" SINCE 30 seconds ago"));
      CHECK(path == "/v1/accounts/1234567/query");
      if (nrql.rfind("SELECT * FROM Metric", 0) == 0) ++seen["newrelic online"];
    }
    if (api == "dynatrace" && path == "/api/v2/metrics/query") {
      CHECK(std::stoll(param(r, "to")) - std::stoll(param(r, "from")) == 300000);
      CHECK(std::stoll(param(r, "to")) % 1000 == 0);
      CHECK(param(r, "resolution") == "Inf");
      CHECK(header(r, "Authorization") == "Api-Token dt0c01.ABC.DEF");
    }
    if (api == "influxdb") {
      auto body = json::parse(r.at("body").as_string());
      const std::string flux(body.at("query").as_string());
      CHECK(param(r, "org") == "canary-org");
      CHECK(header(r, "Authorization") == "Token influx-tok-31");
      if (flux.find("r.deployment") != std::string::npos) {
        // Rendered as written, line breaks kept (Flux is not collapsed), interval filled in.
        CHECK(flux.find("from(bucket: \"canary\")\n  |> range(start: -30s)\n") == 0);
        CHECK(flux.find("r.deployment == \"influxdb-") != std::string::npos);
      }
      if (flux == "from(bucket: \"default\") |> range(start: -2h)") ++seen["influxdb online"];
    }
    if (api == "cloudwatch") {
      // Signed by canaryd's key for us-east-1/monitoring (the server verified the signature).
      CHECK(header(r, "Authorization").find("Credential=AKIDCANARYDTEST/") != std::string::npos);
      CHECK(header(r, "Authorization").find("/us-east-1/monitoring/aws4_request") != std::string::npos);
      auto body = json::parse(r.at("body").as_string());
      CHECK(body.at("EndTime").to_number<std::int64_t>() - body.at("StartTime").to_number<std::int64_t>() == 300);
      CHECK(body.at("MaxDatapoints").to_number<std::int64_t>() == 20);
      CHECK(json::serialize(body.at("MetricDataQueries")).find("\"Value\":\"cloudwatch-") != std::string::npos);
    }
    if (api == "stackdriver") {
      CHECK(path == "/v3/projects/canary-project/timeSeries:query");
      CHECK(header(r, "Authorization").rfind("Bearer ya29.canaryd-", 0) == 0);
      const std::string mql(json::parse(r.at("body").as_string()).at("query").as_string());
      if (!mql.empty()) CHECK(mql.find("resource.container_name == 'stackdriver-") != std::string::npos);
    }
    if (api == "datadog" && path == "/api/v1/validate") ++seen["datadog online"];
    if (api == "dynatrace" && path == "/api/v2/metrics" && param(r, "pageSize") == "1") ++seen["dynatrace online"];
    ++seen[api];
  }
  // CloudWatch's IsOnline is an empty query, answered 400 (a valid, authorised request).
  for (const auto& r : reqs) {
    if (r.at("api").as_string() == "cloudwatch" && r.at("status").to_number<std::int64_t>() == 400 &&
        std::string(r.at("answer").as_string()).find("MetricDataQueries must be specified") != std::string::npos)
      ++seen["cloudwatch online"];
    if (r.at("api").as_string() == "stackdriver" && r.at("status").to_number<std::int64_t>() == 400 &&
        std::string(r.at("answer").as_string()).find("INVALID_ARGUMENT") != std::string::npos)
      ++seen["stackdriver online"];
  }
  for (const char* k : {"datadog", "newrelic", "dynatrace", "influxdb", "cloudwatch", "cloudwatch online", "stackdriver",
                        "stackdriver online", "google_token",
                        "datadog online", "newrelic online",
                        "dynatrace online", "influxdb online"}) {
    CHECK_MESSAGE(seen[k] > 0, "no successful request: " << k);
  }

  output.reset();
  d.proc->signal(SIGTERM);
  auto code = d.proc->wait(10s);
  REQUIRE(code);
  CHECK(*code == 0);
}

TEST_CASE("cloudwatch with web identity (IRSA): canaryd exchanges the token with STS and signs with the temporary keys") {
  kubesim_instance sim;
  setup_cluster(sim);
  temp_dir dir;
  const auto log = dir.path() / "requests.jsonl";
  const auto token_file = dir.path() / "token";
  const std::string token = "eyJhbGciOiJSUzI1NiJ9.service-account-token.sig";
  {
    std::ofstream out(token_file);
    out << token << "\n";
  }
  json::object creds_json{{"aws_access_key_id", "AKIDNOTUSED"},
                          {"aws_secret_access_key", "not-used"},
                          {"aws_role_arn", "arn:aws:iam::123456789012:role/canaryd"},
                          {"aws_web_identity_token", token}};
  const int port = free_port();
  child apis({"python3", (source_root() / "tests" / "e2e" / "metric_apis.py").string(), std::to_string(port),
              json::serialize(creds_json), log.string()},
             {}, dir.path() / "apis.err");
  REQUIRE_MESSAGE(apis.wait_for_line("listening", 20s), apis.stderr_text());
  const std::string api_url = "http://127.0.0.1:" + std::to_string(port);

  // No address in the template: the endpoint comes from AWS_ENDPOINT_URL_CLOUDWATCH, as the SDKs
  // read it; STS from AWS_ENDPOINT_URL_STS. Static keys are unset so the chain goes past them.
  std::string tmpl = template_yaml("cloudwatch-irsa", "cloudwatch", api_url, "us-east-1", "good");
  tmpl.replace(tmpl.find("    address: " + api_url + "\n"), 14 + api_url.size(), "");
  sim.kubectl_ok({"apply", "-f", "-"}, "---\n" + tmpl + "---\n" + metric_target_yaml("cloudwatch-irsa"));
  auto d = start_canaryd(sim, {},
                         {{"AWS_ACCESS_KEY_ID", ""},
                          {"AWS_SECRET_ACCESS_KEY", ""},
                          {"AWS_WEB_IDENTITY_TOKEN_FILE", token_file.string()},
                          {"AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/canaryd"},
                          {"AWS_ROLE_SESSION_NAME", "canaryd-e2e"},
                          {"AWS_ENDPOINT_URL_STS", api_url},
                          {"AWS_ENDPOINT_URL_CLOUDWATCH", api_url}});
  sim.kubectl_ok({"apply", "-f", "-"}, provider_canary("cloudwatch-irsa"));
  REQUIRE_MESSAGE(wait_phase(sim, "cloudwatch-irsa", "Initialized", 60s), dump(canary_events(sim, "cloudwatch-irsa")));
  sim.kubectl_ok({"-n", "demo", "set", "image", "deployment/cloudwatch-irsa", "podinfod=ghcr.io/stefanprodan/podinfo:6.0.1"});
  bool promoted = wait_phase(sim, "cloudwatch-irsa", "Succeeded", 60s);
  auto evs = canary_events(sim, "cloudwatch-irsa");
  REQUIRE_MESSAGE(promoted, dump(evs));
  CHECK(lacks_event(evs, "Warning", "Error checking metric providers"));

  // One exchange (the temporary keys are kept until near their expiry), then every GetMetricData
  // signed with them and carrying their session token.
  int sts_calls = 0, cloudwatch_calls = 0;
  for (const auto& r : read_log(log)) {
    INFO(json::serialize(r));
    CHECK(std::string(r.at("answer").as_string()).rfind("strict:", 0) == std::string::npos);
    if (r.at("api").as_string() == "sts") {
      ++sts_calls;
      CHECK(r.at("status").to_number<std::int64_t>() == 200);
      const std::string body(r.at("body").as_string());
      CHECK(body.find("RoleSessionName=canaryd-e2e") != std::string::npos);
      CHECK(header(r, "Authorization").empty());
    }
    if (r.at("api").as_string() == "cloudwatch") {
      ++cloudwatch_calls;
      CHECK(header(r, "Authorization").find("Credential=ASIA") != std::string::npos);
      CHECK(header(r, "X-Amz-Security-Token").rfind("session-token-", 0) == 0);
      CHECK(header(r, "Authorization").find("x-amz-security-token") != std::string::npos);
    }
  }
  CHECK(sts_calls == 1);
  CHECK(cloudwatch_calls >= 3);

  d.proc->signal(SIGTERM);
  auto code = d.proc->wait(10s);
  REQUIRE(code);
  CHECK(*code == 0);
}

namespace {

std::string keptn_crd(const std::string& plural, const std::string& kind) {
  return "apiVersion: apiextensions.k8s.io/v1\n"
         "kind: CustomResourceDefinition\n"
         "metadata:\n"
         "  name: " + plural + ".metrics.keptn.sh\n"
         "spec:\n"
         "  group: metrics.keptn.sh\n"
         "  names:\n"
         "    kind: " + kind + "\n"
         "    listKind: " + kind + "List\n"
         "    plural: " + plural + "\n"
         "  scope: Namespaced\n"
         "  versions:\n"
         "  - name: v1beta1\n"
         "    served: true\n"
         "    storage: true\n"
         "    subresources:\n"
         "      status: {}\n"
         "    schema:\n"
         "      openAPIV3Schema:\n"
         "        type: object\n"
         "        x-kubernetes-preserve-unknown-fields: true\n";
}

}  // namespace

TEST_CASE("keptn templates read KeptnMetrics and run Analyses through the Kubernetes API; no value never passes") {
  kubesim_instance sim;
  setup_cluster(sim);
  sim.kubectl_ok({"apply", "-f", "-"}, keptn_crd("keptnmetrics", "KeptnMetric") + "---\n" + keptn_crd("analyses", "Analysis"));

  // KeptnMetrics with the value Keptn's metrics operator would have written into their status.
  const std::map<std::string, std::string> metric_values = {{"good", "0.5"}, {"bad", "5"}, {"nan", "NaN"}};
  std::string manifests;
  for (const char* s : {"good", "bad", "nan", "empty"}) {
    manifests += std::string("---\napiVersion: metrics.keptn.sh/v1beta1\nkind: KeptnMetric\nmetadata:\n  name: errors-") + s +
                 "\n  namespace: demo\nspec:\n  provider:\n    name: prometheus\n  query: sum(errors)\n  fetchIntervalSeconds: 5\n";
  }
  // Canaries: four on KeptnMetrics (max 1), three on Analyses (min 1: the Analysis passed).
  struct keptn_case {
    std::string name;
    std::string query;
    std::string range;
    std::string want;
  };
  const std::vector<keptn_case> cases = {
      {"keptn-good", "keptnmetric/demo/errors-good", "max: 1", "Succeeded"},
      {"keptn-bad", "keptnmetric/demo/errors-bad", "max: 1", "Failed"},
      {"keptn-nan", "keptnmetric/demo/errors-nan", "max: 1", "Failed"},
      {"keptn-empty", "keptnmetric/demo/errors-empty", "max: 1", "Failed"},
      {"keptn-pass", "analysis/demo/slo-pass/30s/target={{ target }};tier=web", "min: 1", "Succeeded"},
      {"keptn-fail", "analysis/demo/slo-fail/30s/target={{ target }}", "min: 1", "Failed"},
      {"keptn-stuck", "analysis/demo/slo-stuck", "min: 1", "Failed"},
  };
  for (const auto& c : cases) {
    manifests += "---\napiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata:\n  name: " + c.name +
                 "\n  namespace: demo\nspec:\n  provider:\n    type: keptn\n  query: " + c.query + "\n";
    manifests += "---\n" + metric_target_yaml(c.name);
  }
  sim.kubectl_ok({"apply", "-f", "-"}, manifests);
  for (const auto& [s, v] : metric_values) {
    sim.kubectl_ok({"-n", "demo", "patch", "keptnmetric", "errors-" + s, "--subresource=status", "--type=merge", "-p",
                    "{\"status\":{\"value\":\"" + v + "\",\"rawValue\":\"" + v + "\"}}"});
  }

  // Keptn's analysis controller, played by the test: completes each new Analysis of slo-pass
  // (pass) and slo-fail (fail), leaves slo-stuck alone, and records what it was asked.
  std::atomic<bool> stop{false};
  std::mutex seen_mu;
  std::vector<json::value> analyses_seen;
  std::thread keptn([&] {
    std::set<std::string> done;
    while (!stop) {
      auto list = get_json(sim, {"analyses"});
      if (!list.is_null()) {
        for (const auto& a : list.at("items").as_array()) {
          const std::string name = str_at(a, {"metadata", "name"});
          const std::string def = str_at(a, {"spec", "analysisDefinition", "name"});
          if (done.count(name) || def == "slo-stuck") continue;
          done.insert(name);
          {
            std::lock_guard lock(seen_mu);
            analyses_seen.push_back(a);
          }
          sim.kubectl({"-n", "demo", "patch", "analysis", name, "--subresource=status", "--type=merge", "-p",
                       std::string("{\"status\":{\"state\":\"Completed\",\"pass\":") + (def == "slo-pass" ? "true" : "false") +
                           "}}"});
        }
      }
      std::this_thread::sleep_for(200ms);
    }
  });
  struct stop_keptn {
    std::atomic<bool>& stop;
    std::thread& t;
    ~stop_keptn() {
      stop = true;
      t.join();
    }
  } stopper{stop, keptn};

  auto d = start_canaryd(sim);
  auto output = std::make_unique<drainer>(*d.proc);
  std::string canaries;
  for (const auto& c : cases) {
    canaries += "---\n" + canary_yaml(c.name, c.name,
                                      "    metrics:\n"
                                      "    - name: errors\n"
                                      "      templateRef:\n"
                                      "        name: " + c.name + "\n"
                                      "      thresholdRange:\n"
                                      "        " + c.range + "\n"
                                      "      interval: 30s\n");
  }
  sim.kubectl_ok({"apply", "-f", "-"}, canaries);
  for (const auto& c : cases) REQUIRE_MESSAGE(wait_phase(sim, c.name, "Initialized", 60s), dump(canary_events(sim, c.name)));
  std::vector<std::string> set_image{"-n", "demo", "set", "image"};
  for (const auto& c : cases) set_image.push_back("deployment/" + c.name);
  set_image.push_back("podinfod=ghcr.io/stefanprodan/podinfo:6.0.1");
  sim.kubectl_ok(set_image);

  for (const auto& c : cases) {
    bool ended = wait_phase(sim, c.name, c.want, 120s);
    auto evs = canary_events(sim, c.name);
    INFO(c.name << " phase " << phase_of(sim, c.name) << " events:\n" << dump(evs));
    CHECK(ended);
    const std::string tmpl = "(keptn provider, metric template " + c.name + ".demo)";
    if (c.want == "Succeeded") {
      CHECK(lacks_event(evs, "Warning", "Halt"));
      continue;
    }
    if (c.name == "keptn-bad") CHECK(has_event(evs, "Warning", "Halt keptn-bad.demo advancement errors 5.00 > 1"));
    if (c.name == "keptn-fail") CHECK(has_event(evs, "Warning", "Halt keptn-fail.demo advancement errors 0.00 < 1"));
    if (c.name == "keptn-nan") CHECK(has_event(evs, "Warning", "no values found " + tmpl));
    if (c.name == "keptn-empty") {
      CHECK(has_event(evs, "Warning",
                      "Metric query failed for errors: could not retrieve KeptnMetric - no value found in resource "
                      "demo/errors-empty " + tmpl));
    }
    if (c.name == "keptn-stuck") {
      CHECK(has_event(evs, "Warning",
                      "Metric query failed for errors: encountered timeout while waiting for Keptn Analysis "
                      "demo/slo-stuck to be finished " + tmpl));
    }
  }
  // The Analyses canaryd created, as Flagger writes them: the definition, the timeframe and the
  // arguments from the query; each deleted once read.
  {
    std::lock_guard lock(seen_mu);
    REQUIRE(!analyses_seen.empty());
    for (const auto& a : analyses_seen) {
      const std::string def = str_at(a, {"spec", "analysisDefinition", "name"});
      CHECK(str_at(a, {"metadata", "name"}).rfind(def + "-", 0) == 0);
      CHECK(str_at(a, {"spec", "timeframe", "recent"}) == "30s");
      if (def == "slo-pass") {
        CHECK(str_at(a, {"spec", "args", "target"}) == "keptn-pass");
        CHECK(str_at(a, {"spec", "args", "tier"}) == "web");
      }
    }
  }
  CHECK(eventually([&] {
    auto list = get_json(sim, {"analyses"});
    return !list.is_null() && list.at("items").as_array().empty();
  }, 20s));

  output.reset();
  d.proc->signal(SIGTERM);
  auto code = d.proc->wait(10s);
  REQUIRE(code);
  CHECK(*code == 0);
}

// splunk (SignalFx SignalFlow over a WebSocket): metric_apis.py's SignalFlow class speaks RFC 6455
// and the SignalFlow messages itself and checks the handshake, the authenticate message and the
// execute message's fields; the binary data messages it answers (one gzip-compressed) carry a
// first point the provider must not take and, for "good", a last one without a value it must skip.
TEST_CASE("splunk templates run SignalFlow over a WebSocket: the last point promotes or rolls back, and no data, NaN, errors, slowness and a refused token never pass") {
  kubesim_instance sim;
  setup_cluster(sim);
  temp_dir dir;
  const auto log = dir.path() / "requests.jsonl";
  const int port = free_port();
  child apis({"python3", (source_root() / "tests" / "e2e" / "metric_apis.py").string(), std::to_string(port),
              json::serialize(json::object{{"sf_token_key", "sf-Tok-5e1f"}}), log.string()},
             {}, dir.path() / "apis.err");
  REQUIRE_MESSAGE(apis.wait_for_line("listening", 20s), apis.stderr_text());
  const std::string api_url = "http://127.0.0.1:" + std::to_string(port);
  const std::string down_url = "http://127.0.0.1:" + std::to_string(free_port());
  sim.kubectl_ok({"-n", "demo", "create", "secret", "generic", "sf-keys", "--from-literal=sf_token_key=sf-Tok-5e1f"});
  sim.kubectl_ok({"-n", "demo", "create", "secret", "generic", "sf-wrong", "--from-literal=sf_token_key=wrong"});

  const std::vector<std::string> scenarios = {"good",  "bad",  "empty",        "nan", "multiple",
                                              "error", "slow", "unauthorized", "down"};
  auto name_of = [](const std::string& s) { return "splunk-" + s; };
  std::string manifests;
  for (const auto& s : scenarios) {
    const std::string scen = s == "unauthorized" || s == "down" ? "good" : s;
    manifests += "---\napiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata:\n  name: " + name_of(s) +
                 "\n  namespace: demo\nspec:\n  provider:\n    type: splunk\n    address: " +
                 (s == "down" ? down_url : api_url) + "\n    secretRef:\n      name: " +
                 (s == "unauthorized" ? "sf-wrong" : "sf-keys") +
                 "\n  query: |\n    data('demo.errors', filter=filter('deployment', '{{ target }}') and "
                 "filter('scenario', '" + scen + "')).mean().publish()\n";
    manifests += "---\n" + metric_target_yaml(name_of(s));
  }
  sim.kubectl_ok({"apply", "-f", "-"}, manifests);
  auto d = start_canaryd(sim);
  auto output = std::make_unique<drainer>(*d.proc);
  std::string canaries;
  for (const auto& s : scenarios) canaries += "---\n" + provider_canary(name_of(s));
  sim.kubectl_ok({"apply", "-f", "-"}, canaries);

  auto phases = [&] {
    std::map<std::string, std::string> out;
    auto v = get_json(sim, {"canaries"});
    if (v.is_null()) return out;
    for (const auto& item : v.at("items").as_array())
      out[str_at(item, {"metadata", "name"})] = str_at(item, {"status", "phase"});
    return out;
  };
  auto all = [&](const std::function<bool(const std::string&)>& pred) {
    auto p = phases();
    for (const auto& s : scenarios)
      if (!pred(p[name_of(s)])) return false;
    return true;
  };
  REQUIRE_MESSAGE(eventually([&] { return all([](const std::string& ph) { return ph == "Initialized"; }); }, 60s),
                  "not all canaries initialized");
  std::vector<std::string> set_image{"-n", "demo", "set", "image"};
  for (const auto& s : scenarios) set_image.push_back("deployment/" + name_of(s));
  set_image.push_back("podinfod=ghcr.io/stefanprodan/podinfo:6.0.1");
  sim.kubectl_ok(set_image);
  const bool done =
      eventually([&] { return all([](const std::string& ph) { return ph == "Succeeded" || ph == "Failed"; }); }, 90s);

  auto final_phases = phases();
  for (const auto& s : scenarios) {
    const std::string n = name_of(s);
    auto evs = canary_events(sim, n);
    INFO(n << " events:\n" << dump(evs));
    const std::string tmpl = "(splunk provider, metric template " + n + ".demo)";
    CHECK(final_phases[n] == (s == "good" ? "Succeeded" : "Failed"));
    if (s == "good") {
      CHECK(has_event(evs, "Normal", "Advance " + n + ".demo canary iteration 3/3"));
      CHECK(lacks_event(evs, "Warning", "Halt"));
      CHECK(image_of(sim, n + "-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1");
      continue;
    }
    CHECK(image_of(sim, n + "-primary") == "ghcr.io/stefanprodan/podinfo:6.0.0");
    CHECK(has_event(evs, "Warning", "Rolling back " + n + ".demo failed checks threshold reached 2"));
    if (s == "bad") CHECK(has_event(evs, "Warning", "Halt " + n + ".demo advancement errors 5.00 > 1"));
    if (s == "empty") CHECK(has_event(evs, "Warning", "invalid response: no values found " + tmpl));
    if (s == "nan") CHECK(has_event(evs, "Warning", "value is nan: no values found " + tmpl));
    if (s == "empty" || s == "nan")
      CHECK(has_event(evs, "Warning", "Halt advancement no values found for custom metric: errors: "));
    auto failed_with = [&](const std::string& why) {
      CHECK(has_event(evs, "Warning", "Metric query failed for errors: " + why + " " + tmpl));
    };
    if (s == "multiple") failed_with("invalid response: query returned multiple values");
    if (s == "error")
      failed_with("error executing query: 400 (ANALYTICS_PROGRAM_NAME_ERROR): Program name 'scenario_error' is not "
                  "defined");
    if (s == "slow") failed_with("error executing query: no answer within 5s");
    if (s == "unauthorized") {
      failed_with("error executing query: authentication failed: 401 (UNAUTHORIZED): Invalid auth token");
      CHECK(has_event(evs, "Warning", "Error checking metric providers: splunk in metric template " + n +
                                          ".demo not available: error response: {\"code\": 401, \"message\": "
                                          "\"Unauthorized\"}"));
    }
    if (s == "down") {
      CHECK(has_event(evs, "Warning", "Metric query failed for errors: error executing query: could not connect "
                                      "Signalflow websocket: "));
      CHECK(has_event(evs, "Warning", "Error checking metric providers: splunk in metric template " + n +
                                          ".demo not available: request failed: "));
    }
  }
  REQUIRE(done);

  // What canaryd sent, against the SignalFlow documentation: nothing refused as "strict:"; the
  // stream endpoint; the token in the authenticate message; the execute message over the
  // window of 10 x the metric's 30s interval ending now (the server checked "now" at receipt).
  auto reqs = read_log(log);
  REQUIRE(!reqs.empty());
  std::map<std::string, int> seen;
  for (const auto& r : reqs) {
    INFO(json::serialize(r));
    const std::string answer(r.at("answer").as_string());
    CHECK(answer.rfind("strict:", 0) == std::string::npos);
    const std::string path(r.at("path").as_string());
    const auto status = r.at("status").to_number<std::int64_t>();
    if (path == "/v2/metric") {
      CHECK(param(r, "limit") == "1");
      if (status == 200) {
        CHECK(header(r, "X-SF-Token") == "sf-Tok-5e1f");
        ++seen["online"];
      }
      continue;
    }
    CHECK(path == "/v2/signalflow/connect");
    CHECK(status == 101);
    CHECK(header(r, "Sec-WebSocket-Version") == "13");
    auto msgs = json::parse(r.at("body").as_string()).as_array();
    REQUIRE(!msgs.empty());
    CHECK(msgs[0] == json::value(json::object{{"type", "authenticate"},
                                              {"token", answer == "unauthorized" ? "wrong" : "sf-Tok-5e1f"}}));
    ++seen[answer.substr(0, answer.find(' '))];
    if (msgs.size() < 2) continue;
    const auto& ex = msgs[1].as_object();
    CHECK(ex.at("type") == "execute");
    CHECK(ex.at("channel") == "ch-1");
    CHECK(ex.at("immediate") == true);
    CHECK(ex.at("resolution") == 0);
    CHECK(ex.at("maxDelay") == 0);
    CHECK(ex.at("timezone") == "");
    CHECK(ex.at("stop").to_number<std::int64_t>() - ex.at("start").to_number<std::int64_t>() == 300000);
    const std::string program(ex.at("program").as_string());
    CHECK(program.rfind("data('demo.errors', filter=filter('deployment', 'splunk-", 0) == 0);
  }
  for (const char* k : {"online", "good", "bad", "empty", "nan", "multiple", "error", "slow", "unauthorized"})
    CHECK_MESSAGE(seen[k] > 0, "no request answered: " << std::string(k));

  output.reset();
  d.proc->signal(SIGTERM);
  auto code = d.proc->wait(10s);
  REQUIRE(code);
  CHECK(*code == 0);
}
