// The AWS credential chain's last two sources end to end (daemon/aws_credentials.hpp): the real
// canaryd, with no keys or web identity in its environment, signs CloudWatch GetMetricData with
// temporary keys from the container credentials endpoint (EKS Pod Identity: a full URI and an
// authorization token file) or from the EC2 instance metadata service (IMDSv2), both played by
// the strict loopback servers of tests/e2e/metric_apis.py, which answer their first request 503
// (retried), and verify every signature. Keys that near their expiry are fetched again; a
// rotated token file is re-read. The same holds for web identity (IRSA) through STS.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <strings.h>

#include <csignal>
#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "tests/e2e/harness.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

// A CloudWatch template (Flagger's documented query shape) with no address: the endpoint comes
// from AWS_ENDPOINT_URL_CLOUDWATCH, as the SDKs read it.
std::string cloudwatch_template(const std::string& name) {
  return "apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata:\n  name: " + name +
         "\n  namespace: demo\nspec:\n  provider:\n    type: cloudwatch\n    region: us-east-1\n  query: |\n"
         "    [{\"Id\": \"e1\", \"Expression\": \"m1 * 1\", \"Label\": \"scenario-good\"},\n"
         "     {\"Id\": \"m1\", \"ReturnData\": false, \"MetricStat\": {\"Period\": 60, \"Stat\": \"Sum\", \"Metric\": "
         "{\"Namespace\": \"Canary\", \"MetricName\": \"Errors\", \"Dimensions\": [{\"Name\": \"app\", \"Value\": "
         "\"{{ target }}\"}]}}}]\n";
}

std::string header(const json::value& req, const char* key) {
  for (const auto& [k, v] : req.at("headers").as_object())
    if (strcasecmp(std::string(k).c_str(), key) == 0) return std::string(v.as_string());
  return {};
}

std::vector<json::value> read_log(const std::filesystem::path& p) {
  std::vector<json::value> out;
  std::istringstream in(read_text(p));
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(json::parse(l));
  return out;
}

struct apis_server {
  temp_dir dir;
  std::filesystem::path log = dir.path() / "requests.jsonl";
  int port = free_port();
  std::unique_ptr<child> proc;
  explicit apis_server(const json::object& creds) {
    proc = std::make_unique<child>(
        std::vector<std::string>{"python3", (source_root() / "tests" / "e2e" / "metric_apis.py").string(),
                                 std::to_string(port), json::serialize(creds), log.string()},
        std::map<std::string, std::string>{}, dir.path() / "apis.err");
    REQUIRE_MESSAGE(proc->wait_for_line("listening", 20s), proc->stderr_text());
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

// Runs one canary on a CloudWatch template to promotion with canaryd's `env`; returns its events.
event_list promote(const kubesim_instance& sim, const std::string& name, const std::map<std::string, std::string>& env,
                   const std::function<void()>& while_running = {}) {
  sim.kubectl_ok({"apply", "-f", "-"}, "---\n" + cloudwatch_template(name) + "---\n" + metric_target_yaml(name));
  auto d = start_canaryd(sim, {}, env);
  sim.kubectl_ok({"apply", "-f", "-"}, canary_yaml(name, name,
                                                   "    metrics:\n"
                                                   "    - name: errors\n"
                                                   "      templateRef:\n"
                                                   "        name: " + name + "\n"
                                                   "      thresholdRange:\n"
                                                   "        max: 1\n"
                                                   "      interval: 30s\n"));
  REQUIRE_MESSAGE(wait_phase(sim, name, "Initialized", 30s), dump(canary_events(sim, name)));
  if (while_running) while_running();
  sim.kubectl_ok({"-n", "demo", "set", "image", "deployment/" + name, "podinfod=ghcr.io/stefanprodan/podinfo:6.0.1"});
  bool promoted = wait_phase(sim, name, "Succeeded", 40s);
  auto evs = canary_events(sim, name);
  REQUIRE_MESSAGE(promoted, dump(evs));
  CHECK(lacks_event(evs, "Warning", "Error checking metric providers"));
  CHECK(lacks_event(evs, "Warning", "Metric query failed"));
  d.proc->signal(SIGTERM);
  auto code = d.proc->wait(10s);
  REQUIRE(code);
  CHECK(*code == 0);
  return evs;
}

// canaryd's environment with every earlier source of the chain empty.
std::map<std::string, std::string> bare_env(const std::string& api_url) {
  return {{"AWS_ACCESS_KEY_ID", ""},
          {"AWS_SECRET_ACCESS_KEY", ""},
          {"AWS_WEB_IDENTITY_TOKEN_FILE", ""},
          {"AWS_ROLE_ARN", ""},
          {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", ""},
          {"AWS_CONTAINER_CREDENTIALS_FULL_URI", ""},
          {"AWS_CONTAINER_AUTHORIZATION_TOKEN", ""},
          {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", ""},
          {"AWS_EC2_METADATA_DISABLED", ""},
          {"AWS_ENDPOINT_URL_CLOUDWATCH", api_url}};
}

}  // namespace

TEST_CASE("cloudwatch with the container credentials endpoint (EKS Pod Identity): retried, refreshed before expiry, the token file re-read") {
  kubesim_instance sim;
  setup_cluster(sim);
  // Keys that expire 5 min + 2 s after they are issued: canaryd keeps them 2 s, then fetches anew.
  apis_server apis(json::object{{"aws_access_key_id", "AKIDNOTUSED"},
                                {"aws_secret_access_key", "not-used"},
                                {"aws_container_tokens", json::array{"pod-identity-token-1", "pod-identity-token-2"}},
                                {"aws_imds_role", "never-asked"},
                                {"aws_expires_in", 302}});
  const auto token_file = apis.dir.path() / "eks-pod-identity-token";
  std::ofstream(token_file) << "pod-identity-token-1\n";
  auto env = bare_env(apis.url());
  env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = apis.url() + "/v1/credentials";
  env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = token_file.string();
  // IMDS is reachable too, but the chain stops at the container endpoint.
  env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = apis.url();
  promote(sim, "cw-container", env, [&] {
    // The agent rotates the token: the next fetch must carry the new one.
    std::ofstream(token_file) << "pod-identity-token-2\n";
  });

  int fetched = 0, refused = 0, cloudwatch_calls = 0, imds_calls = 0;
  std::set<std::string> tokens_sent, keys_used;
  for (const auto& r : read_log(apis.log)) {
    INFO(json::serialize(r));
    CHECK(std::string(r.at("answer").as_string()).rfind("strict:", 0) == std::string::npos);
    const std::string api(r.at("api").as_string());
    const auto status = r.at("status").to_number<std::int64_t>();
    if (api == "container_credentials") {
      tokens_sent.insert(header(r, "Authorization"));
      if (status == 503) ++refused;
      if (status == 200) ++fetched;
    }
    if (api == "imds") ++imds_calls;
    if (api == "cloudwatch") {
      ++cloudwatch_calls;
      const std::string auth = header(r, "Authorization");
      CHECK(auth.find("Credential=ASIACTR") != std::string::npos);
      CHECK(header(r, "X-Amz-Security-Token").rfind("session-token-CTR-", 0) == 0);
      keys_used.insert(auth.substr(auth.find("Credential=") + 11, 20));
    }
  }
  CHECK(refused == 1);                   // the first answer was a 503, retried
  CHECK(fetched >= 2);                   // refreshed before expiry...
  CHECK(fetched < cloudwatch_calls);     // ...but kept in between
  CHECK(keys_used.size() >= 2);          // and the new keys used
  CHECK(tokens_sent == std::set<std::string>{"pod-identity-token-1", "pod-identity-token-2"});
  CHECK(imds_calls == 0);
}

TEST_CASE("cloudwatch with web identity (IRSA): keys refreshed before expiry, the rotated token file re-read") {
  kubesim_instance sim;
  setup_cluster(sim);
  // STS keys that expire 5 min + 2 s after they are issued: canaryd keeps them 2 s, then
  // exchanges the token file's content again, which the kubelet has rotated meanwhile.
  apis_server apis(json::object{{"aws_access_key_id", "AKIDNOTUSED"},
                                {"aws_secret_access_key", "not-used"},
                                {"aws_role_arn", "arn:aws:iam::123456789012:role/canaryd"},
                                {"aws_web_identity_tokens", json::array{"web-identity-token-1", "web-identity-token-2"}},
                                {"aws_expires_in", 302}});
  const auto token_file = apis.dir.path() / "token";
  std::ofstream(token_file) << "web-identity-token-1\n";
  auto env = bare_env(apis.url());
  env["AWS_WEB_IDENTITY_TOKEN_FILE"] = token_file.string();
  env["AWS_ROLE_ARN"] = "arn:aws:iam::123456789012:role/canaryd";
  env["AWS_ROLE_SESSION_NAME"] = "canaryd-e2e";
  env["AWS_ENDPOINT_URL_STS"] = apis.url();
  promote(sim, "cw-irsa-rotate", env, [&] { std::ofstream(token_file) << "web-identity-token-2\n"; });

  std::vector<std::string> tokens_sent;
  std::set<std::string> keys_used;
  int cloudwatch_calls = 0;
  for (const auto& r : read_log(apis.log)) {
    INFO(json::serialize(r));
    CHECK(std::string(r.at("answer").as_string()).rfind("strict:", 0) == std::string::npos);
    const std::string api(r.at("api").as_string());
    if (api == "sts") {
      CHECK(r.at("status").to_number<std::int64_t>() == 200);
      const std::string body(r.at("body").as_string());
      const auto at = body.find("WebIdentityToken=");
      REQUIRE(at != std::string::npos);
      tokens_sent.push_back(body.substr(at + 17, body.find('&', at) - at - 17));
    }
    if (api == "cloudwatch") {
      ++cloudwatch_calls;
      const std::string auth = header(r, "Authorization");
      CHECK(header(r, "X-Amz-Security-Token").rfind("session-token-", 0) == 0);
      keys_used.insert(auth.substr(auth.find("Credential=") + 11, 20));
    }
  }
  // The first exchange used the first token, and every one after the rotation the new one.
  REQUIRE(tokens_sent.size() >= 2);
  CHECK(tokens_sent.front() == "web-identity-token-1");
  CHECK(tokens_sent.back() == "web-identity-token-2");
  CHECK(std::is_sorted(tokens_sent.begin(), tokens_sent.end()));
  CHECK(static_cast<int>(tokens_sent.size()) < cloudwatch_calls);  // kept between exchanges
  CHECK(keys_used.size() >= 2);                                      // and the new keys used
}

TEST_CASE("cloudwatch with IMDSv2: a session token first, then the role and its keys; IMDS disabled is a named failure") {
  kubesim_instance sim;
  setup_cluster(sim);
  apis_server apis(json::object{{"aws_access_key_id", "AKIDNOTUSED"},
                                {"aws_secret_access_key", "not-used"},
                                {"aws_imds_role", "canaryd-node-role"}});
  auto env = bare_env(apis.url());
  env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = apis.url() + "/";
  promote(sim, "cw-imds", env);

  std::vector<std::string> sequence;
  int cloudwatch_calls = 0;
  for (const auto& r : read_log(apis.log)) {
    INFO(json::serialize(r));
    CHECK(std::string(r.at("answer").as_string()).rfind("strict:", 0) == std::string::npos);
    const std::string api(r.at("api").as_string());
    const auto status = r.at("status").to_number<std::int64_t>();
    if (api == "imds") {
      sequence.push_back(std::string(r.at("method").as_string()) + " " + std::string(r.at("path").as_string()) + " " +
                         std::to_string(status));
      if (r.at("method").as_string() == "PUT") CHECK(header(r, "X-aws-ec2-metadata-token-ttl-seconds") == "21600");
      if (r.at("method").as_string() == "GET") CHECK(header(r, "X-aws-ec2-metadata-token") == "imds-session-0");
    }
    if (api == "cloudwatch") {
      ++cloudwatch_calls;
      CHECK(header(r, "Authorization").find("Credential=ASIAIMD") != std::string::npos);
      CHECK(header(r, "X-Amz-Security-Token").rfind("session-token-IMD-", 0) == 0);
    }
  }
  // The token (its first PUT answered 503 and retried), the role, its keys: once, as they last an hour.
  CHECK(sequence == std::vector<std::string>{"PUT /latest/api/token 503", "PUT /latest/api/token 200",
                                             "GET /latest/meta-data/iam/security-credentials/ 200",
                                             "GET /latest/meta-data/iam/security-credentials/canaryd-node-role 200"});
  CHECK(cloudwatch_calls >= 3);

  // With IMDS disabled and nothing else, every check fails, naming why.
  env["AWS_EC2_METADATA_DISABLED"] = "true";
  sim.kubectl_ok({"apply", "-f", "-"}, "---\n" + cloudwatch_template("cw-none") + "---\n" + metric_target_yaml("cw-none"));
  auto d = start_canaryd(sim, {}, env);
  sim.kubectl_ok({"apply", "-f", "-"}, canary_yaml("cw-none", "cw-none",
                                                   "    metrics:\n"
                                                   "    - name: errors\n"
                                                   "      templateRef:\n"
                                                   "        name: cw-none\n"
                                                   "      thresholdRange:\n"
                                                   "        max: 1\n"
                                                   "      interval: 30s\n"));
  REQUIRE_MESSAGE(wait_phase(sim, "cw-none", "Initialized", 30s), dump(canary_events(sim, "cw-none")));
  sim.kubectl_ok({"-n", "demo", "set", "image", "deployment/cw-none", "podinfod=ghcr.io/stefanprodan/podinfo:6.0.1"});
  bool failed = wait_phase(sim, "cw-none", "Failed", 40s);
  auto evs = canary_events(sim, "cw-none");
  INFO(dump(evs));
  CHECK(failed);
  CHECK(has_event(evs, "Warning", "the EC2 instance metadata service is disabled by AWS_EC2_METADATA_DISABLED"));
  CHECK(image_of(sim, "cw-none-primary") == "ghcr.io/stefanprodan/podinfo:6.0.0");
  d.proc->signal(SIGTERM);
  auto code = d.proc->wait(10s);
  REQUIRE(code);
  CHECK(*code == 0);
}
