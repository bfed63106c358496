// Cluster configuration: kubeconfig files (every auth and TLS variant), KUBECONFIG merging,
// in-cluster service accounts, flag precedence, and the one-line errors of bad input. Files
// are written to a temporary directory; nothing talks to a server here.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "k8s/config.hpp"
#include "k8s/tls_cert.hpp"
#include "tests/support/process.hpp"

namespace fs = std::filesystem;
namespace k8s = canaryd::k8s;
using canaryd::test::temp_dir;

namespace {

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out << text;
}

struct pki {
  canaryd::tls::key_pair ca;
  canaryd::tls::key_pair client;
  canaryd::tls::key_pair other_client;
  pki() {
    ca = canaryd::tls::make_ca("test-ca").value();
    canaryd::tls::leaf_options lo;
    lo.common_name = "alice";
    lo.client = true;
    lo.server = false;
    client = canaryd::tls::make_leaf(ca, lo).value();
    other_client = canaryd::tls::make_leaf(ca, lo).value();
  }
};

const pki& certs() {
  static const pki p;
  return p;
}

// Runs `f` expecting a config_error; returns its message (and checks it is one line).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const k8s::config_error& e) {
    std::string msg = e.what();
    CHECK_MESSAGE(msg.find('\n') == std::string::npos, "error spans lines: " << msg);
    return msg;
  }
  FAIL("no config_error was thrown");
  return {};
}

// Sets (or unsets, with nullptr) an environment variable for the scope.
class scoped_env {
 public:
  scoped_env(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
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

const char* basic_kubeconfig = R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: c1
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: pki/ca.crt
    tls-server-name: kubernetes.default
- name: c2
  cluster:
    server: http://10.0.0.2:8080/prefix/
contexts:
- name: dev
  context:
    cluster: c1
    user: u1
    namespace: team-a
- name: other
  context:
    cluster: c2
    user: u2
users:
- name: u1
  user:
    token: abc123
- name: u2
  user:
    username: admin
    password: s3cret
)";

}  // namespace

TEST_CASE("a kubeconfig's current context gives the server, CA file, token and namespace") {
  temp_dir d;
  write(d.path() / "pki" / "ca.crt", certs().ca.cert_pem);
  write(d.path() / "config", basic_kubeconfig);
  auto c = k8s::load_kubeconfig({d.path() / "config"});
  CHECK(c.server == "https://127.0.0.1:6443");
  CHECK(c.tls.ca_pem == certs().ca.cert_pem);
  CHECK(c.tls.verify);
  CHECK(c.tls.server_name == "kubernetes.default");
  CHECK(c.token == "abc123");
  CHECK(c.namespace_name == "team-a");
  CHECK(c.context_name == "dev");
  CHECK(c.cluster_name == "c1");
  CHECK(c.user_name == "u1");
  CHECK_FALSE(c.in_cluster);
  CHECK_FALSE(c.basic);
  CHECK_FALSE(c.exec);
}

TEST_CASE("an explicit context wins over current-context; without a namespace it is default") {
  temp_dir d;
  write(d.path() / "pki" / "ca.crt", certs().ca.cert_pem);
  write(d.path() / "config", basic_kubeconfig);
  auto c = k8s::load_kubeconfig({d.path() / "config"}, "other");
  CHECK(c.server == "http://10.0.0.2:8080/prefix/");
  CHECK(c.namespace_name == "default");
  REQUIRE(c.basic);
  CHECK(c.basic->username == "admin");
  CHECK(c.basic->password == "s3cret");
  CHECK(c.tls.ca_pem.empty());
}

TEST_CASE("-master overrides the kubeconfig's server but keeps its credentials") {
  temp_dir d;
  write(d.path() / "pki" / "ca.crt", certs().ca.cert_pem);
  write(d.path() / "config", basic_kubeconfig);
  auto c = k8s::load_kubeconfig({d.path() / "config"}, "", "https://192.168.1.1:443");
  CHECK(c.server == "https://192.168.1.1:443");
  CHECK(c.token == "abc123");
  CHECK(c.source.find("-master") != std::string::npos);
}

TEST_CASE("inline base64 data: certificate-authority-data and client certificate/key data") {
  temp_dir d;
  std::string cfg = "current-context: x\nclusters:\n- name: c\n  cluster:\n    server: https://h:1\n"
                    "    certificate-authority-data: " + k8s::base64_encode(certs().ca.cert_pem) +
                    "\n    certificate-authority: /does/not/matter\n"
                    "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                    "users:\n- name: u\n  user:\n"
                    "    client-certificate-data: " + k8s::base64_encode(certs().client.cert_pem) +
                    "\n    client-key-data: " + k8s::base64_encode(certs().client.key_pem) + "\n";
  write(d.path() / "config", cfg);
  auto c = k8s::load_kubeconfig({d.path() / "config"});
  CHECK(c.tls.ca_pem == certs().ca.cert_pem);  // data wins over the file, as in client-go
  CHECK(c.tls.cert_pem == certs().client.cert_pem);
  CHECK(c.tls.key_pem == certs().client.key_pem);
}

TEST_CASE("client certificate and key files are read relative to the kubeconfig") {
  temp_dir d;
  write(d.path() / "sub" / "me.crt", certs().client.cert_pem);
  write(d.path() / "sub" / "me.key", certs().client.key_pem);
  write(d.path() / "sub" / "config",
        "current-context: x\nclusters:\n- name: c\n  cluster: {server: 'https://h:1', insecure-skip-tls-verify: true}\n"
        "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
        "users:\n- name: u\n  user: {client-certificate: me.crt, client-key: me.key}\n");
  auto c = k8s::load_kubeconfig({d.path() / "sub" / "config"});
  CHECK_FALSE(c.tls.verify);
  CHECK(c.tls.cert_pem == certs().client.cert_pem);
  CHECK(c.tls.key_pem == certs().client.key_pem);
}

TEST_CASE("tokenFile is resolved, read once to fail early, and wins over a static token") {
  temp_dir d;
  write(d.path() / "tok", "file-token\n");
  write(d.path() / "config",
        "current-context: x\nclusters:\n- name: c\n  cluster: {server: 'https://h:1'}\n"
        "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
        "users:\n- name: u\n  user: {tokenFile: tok, token: static}\n");
  auto c = k8s::load_kubeconfig({d.path() / "config"});
  CHECK(c.token_file == d.path() / "tok");
  CHECK(c.token == "static");

  fs::remove(d.path() / "tok");
  auto msg = error_of([&] { k8s::load_kubeconfig({d.path() / "config"}); });
  CHECK(msg.find("cannot read tokenFile " + (d.path() / "tok").string() + ": No such file or directory") !=
        std::string::npos);
}

TEST_CASE("exec plugins: v1 and v1beta1 with args, env, installHint and provideClusterInfo") {
  temp_dir d;
  write(d.path() / "config", R"(current-context: v1
clusters:
- name: c
  cluster: {server: 'https://h:1'}
contexts:
- name: v1
  context: {cluster: c, user: exec-v1}
- name: beta
  context: {cluster: c, user: exec-beta}
users:
- name: exec-v1
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: ./bin/get-token
      args: ["--cluster", "prod"]
      env:
      - name: FOO
        value: bar
      installHint: install get-token from example.com
      provideClusterInfo: true
      interactiveMode: Never
- name: exec-beta
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args: [eks, get-token]
)");
  auto v1 = k8s::load_kubeconfig({d.path() / "config"});
  REQUIRE(v1.exec);
  CHECK(v1.exec->api_version == "client.authentication.k8s.io/v1");
  CHECK(v1.exec->command == (d.path() / "./bin/get-token").string());
  CHECK(v1.exec->args == std::vector<std::string>{"--cluster", "prod"});
  REQUIRE(v1.exec->env.size() == 1);
  CHECK(v1.exec->env[0].first == "FOO");
  CHECK(v1.exec->env[0].second == "bar");
  CHECK(v1.exec->install_hint == "install get-token from example.com");
  CHECK(v1.exec->provide_cluster_info);

  auto beta = k8s::load_kubeconfig({d.path() / "config"}, "beta");
  REQUIRE(beta.exec);
  CHECK(beta.exec->command == "aws");  // a bare name is looked up on PATH
  CHECK_FALSE(beta.exec->provide_cluster_info);
}

TEST_CASE("exec plugin configuration errors are named") {
  temp_dir d;
  auto with_exec = [&](const std::string& exec) {
    write(d.path() / "config", "current-context: x\nclusters:\n- name: c\n  cluster: {server: 'https://h:1'}\n"
                               "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                               "users:\n- name: u\n  user:\n    exec: " + exec + "\n");
    return error_of([&] { k8s::load_kubeconfig({d.path() / "config"}); });
  };
  CHECK(with_exec("{apiVersion: client.authentication.k8s.io/v1alpha1, command: x}").find("is not supported") !=
        std::string::npos);
  CHECK(with_exec("{apiVersion: client.authentication.k8s.io/v1beta1}").find("command is required") !=
        std::string::npos);
  CHECK(with_exec("{apiVersion: client.authentication.k8s.io/v1, command: x}").find("interactiveMode is required") !=
        std::string::npos);
}

TEST_CASE("KUBECONFIG lists merge: the first definition of a name wins, paths resolve per file") {
  temp_dir d;
  write(d.path() / "a" / "ca.crt", certs().ca.cert_pem);
  write(d.path() / "a" / "config",
        "clusters:\n- name: shared\n  cluster: {server: 'https://first:1', certificate-authority: ca.crt}\n"
        "users:\n- name: u\n  user: {token: first-token}\n");
  write(d.path() / "b" / "config",
        "current-context: ctx\n"
        "clusters:\n- name: shared\n  cluster: {server: 'https://second:1'}\n"
        "contexts:\n- name: ctx\n  context: {cluster: shared, user: u, namespace: from-b}\n"
        "users:\n- name: u\n  user: {token: second-token}\n");
  auto files = k8s::split_path_list((d.path() / "a" / "config").string() + "::" + (d.path() / "b" / "config").string());
  REQUIRE(files.size() == 2);
  auto c = k8s::load_kubeconfig(files);
  CHECK(c.server == "https://first:1");
  CHECK(c.tls.ca_pem == certs().ca.cert_pem);
  CHECK(c.token == "first-token");
  CHECK(c.namespace_name == "from-b");

  scoped_env kc("KUBECONFIG", ((d.path() / "a" / "config").string() + ":" + (d.path() / "b" / "config").string()).c_str());
  scoped_env host("KUBERNETES_SERVICE_HOST", nullptr);
  auto via_env = k8s::load_config({});
  CHECK(via_env.server == "https://first:1");
}

TEST_CASE("bad kubeconfigs give one-line errors that say what is wrong") {
  temp_dir d;
  const auto cfg = d.path() / "config";
  const std::string where = "kubeconfig " + cfg.string();

  SUBCASE("a missing file") {
    auto msg = error_of([&] { k8s::load_kubeconfig({cfg}); });
    CHECK(msg == "cannot read kubeconfig " + cfg.string() + ": No such file or directory");
  }
  SUBCASE("malformed YAML") {
    write(cfg, "clusters:\n- name: [unclosed\n  cluster: {\n");
    auto msg = error_of([&] { k8s::load_kubeconfig({cfg}); });
    CHECK(msg.rfind(where + ": malformed YAML at line", 0) == 0);
  }
  SUBCASE("not a map") {
    write(cfg, "- just\n- a list\n");
    CHECK(error_of([&] { k8s::load_kubeconfig({cfg}); }).find("not a kubeconfig") != std::string::npos);
  }
  SUBCASE("a missing context") {
    write(d.path() / "pki" / "ca.crt", certs().ca.cert_pem);
    write(cfg, basic_kubeconfig);
    auto msg = error_of([&] { k8s::load_kubeconfig({cfg}, "foo"); });
    CHECK(msg == where + ": context \"foo\" not found");
  }
  SUBCASE("no current context") {
    write(cfg, "clusters: []\ncontexts: []\nusers: []\n");
    CHECK(error_of([&] { k8s::load_kubeconfig({cfg}); }) ==
          where + ": no current-context is set and no --context was given");
  }
  SUBCASE("a context naming a missing cluster or user") {
    write(cfg, "current-context: x\ncontexts:\n- name: x\n  context: {cluster: nope, user: u}\n");
    CHECK(error_of([&] { k8s::load_kubeconfig({cfg}); }) == where + ": cluster \"nope\" (of context \"x\") not found");
    write(cfg, "current-context: x\nclusters:\n- name: c\n  cluster: {server: 'https://h:1'}\n"
               "contexts:\n- name: x\n  context: {cluster: c, user: ghost}\n");
    CHECK(error_of([&] { k8s::load_kubeconfig({cfg}); }) == where + ": user \"ghost\" (of context \"x\") not found");
  }
  SUBCASE("a missing certificate-authority file") {
    write(cfg, "current-context: x\nclusters:\n- name: c\n  cluster: {server: 'https://h:1', certificate-authority: /nope/ca.crt}\n"
               "contexts:\n- name: x\n  context: {cluster: c}\n");
    auto msg = error_of([&] { k8s::load_kubeconfig({cfg}); });
    CHECK(msg == where + ": cluster \"c\": cannot read certificate-authority /nope/ca.crt: No such file or directory");
  }
  SUBCASE("a certificate-authority that is not a certificate") {
    write(d.path() / "ca.crt", "hello\n");
    write(cfg, "current-context: x\nclusters:\n- name: c\n  cluster: {server: 'https://h:1', certificate-authority: ca.crt}\n"
               "contexts:\n- name: x\n  context: {cluster: c}\n");
    auto msg = error_of([&] { k8s::load_kubeconfig({cfg}); });
    CHECK(msg.find("certificate-authority " + (d.path() / "ca.crt").string() + ": no PEM certificate") !=
          std::string::npos);
  }
  SUBCASE("bad base64") {
    write(cfg, "current-context: x\nclusters:\n- name: c\n  cluster: {server: 'https://h:1', certificate-authority-data: '!!!'}\n"
               "contexts:\n- name: x\n  context: {cluster: c}\n");
    CHECK(error_of([&] { k8s::load_kubeconfig({cfg}); }).find("certificate-authority-data is not valid base64") !=
          std::string::npos);
  }
  SUBCASE("a client key that does not match its certificate") {
    write(cfg, "current-context: x\nclusters:\n- name: c\n  cluster: {server: 'https://h:1'}\n"
               "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
               "users:\n- name: u\n  user:\n    client-certificate-data: " +
                   k8s::base64_encode(certs().client.cert_pem) +
                   "\n    client-key-data: " + k8s::base64_encode(certs().other_client.key_pem) + "\n");
    CHECK(error_of([&] { k8s::load_kubeconfig({cfg}); }).find("client key does not match the client certificate") !=
          std::string::npos);
  }
  SUBCASE("a certificate without a key") {
    write(cfg, "current-context: x\nclusters:\n- name: c\n  cluster: {server: 'https://h:1'}\n"
               "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
               "users:\n- name: u\n  user:\n    client-certificate-data: " +
                   k8s::base64_encode(certs().client.cert_pem) + "\n");
    CHECK(error_of([&] { k8s::load_kubeconfig({cfg}); }).find("client-certificate is set without client-key") !=
          std::string::npos);
  }
  SUBCASE("insecure-skip-tls-verify together with a CA") {
    write(cfg, "current-context: x\nclusters:\n- name: c\n  cluster: {server: 'https://h:1', insecure-skip-tls-verify: true, "
               "certificate-authority-data: " + k8s::base64_encode(certs().ca.cert_pem) + "}\n"
               "contexts:\n- name: x\n  context: {cluster: c}\n");
    CHECK(error_of([&] { k8s::load_kubeconfig({cfg}); }).find("both set") != std::string::npos);
  }
  SUBCASE("a server that is not a URL") {
    write(cfg, "current-context: x\nclusters:\n- name: c\n  cluster: {server: 'localhost:6443'}\n"
               "contexts:\n- name: x\n  context: {cluster: c}\n");
    CHECK(error_of([&] { k8s::load_kubeconfig({cfg}); }) ==
          where + ": server \"localhost:6443\" is not an http:// or https:// URL");
  }
  SUBCASE("an unsupported auth-provider") {
    write(cfg, "current-context: x\nclusters:\n- name: c\n  cluster: {server: 'https://h:1'}\n"
               "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
               "users:\n- name: u\n  user: {auth-provider: {name: oidc}}\n");
    CHECK(error_of([&] { k8s::load_kubeconfig({cfg}); }).find("auth-provider \"oidc\" is not supported") !=
          std::string::npos);
  }
  SUBCASE("an insecure flag that is not a boolean") {
    write(cfg, "current-context: x\nclusters:\n- name: c\n  cluster: {server: 'https://h:1', insecure-skip-tls-verify: maybe}\n"
               "contexts:\n- name: x\n  context: {cluster: c}\n");
    CHECK(error_of([&] { k8s::load_kubeconfig({cfg}); }).find("insecure-skip-tls-verify must be true or false") !=
          std::string::npos);
  }
}

TEST_CASE("in-cluster: service host and port, token, ca.crt and namespace from the service-account dir") {
  temp_dir d;
  write(d.path() / "token", "sa-token\n");
  write(d.path() / "ca.crt", certs().ca.cert_pem);
  write(d.path() / "namespace", "flagger-system");
  scoped_env host("KUBERNETES_SERVICE_HOST", "10.96.0.1");
  scoped_env port("KUBERNETES_SERVICE_PORT", "443");
  auto c = k8s::load_in_cluster(d.path());
  CHECK(c.in_cluster);
  CHECK(c.server == "https://10.96.0.1:443");
  CHECK(c.token_file == d.path() / "token");
  CHECK(c.tls.ca_pem == certs().ca.cert_pem);
  CHECK(c.tls.verify);
  CHECK(c.namespace_name == "flagger-system");

  SUBCASE("load_config picks in-cluster when no flag is given, with CANARYD_SA_DIR") {
    scoped_env sa("CANARYD_SA_DIR", d.path().c_str());
    auto viaflags = k8s::load_config({});
    CHECK(viaflags.in_cluster);
    CHECK(viaflags.token_file == d.path() / "token");
  }
  SUBCASE("an IPv6 service host is bracketed") {
    scoped_env host6("KUBERNETES_SERVICE_HOST", "fd00::1");
    CHECK(k8s::load_in_cluster(d.path()).server == "https://[fd00::1]:443");
  }
  SUBCASE("a missing token is a one-line error") {
    fs::remove(d.path() / "token");
    CHECK(error_of([&] { k8s::load_in_cluster(d.path()); }) ==
          "in-cluster: cannot read service-account token " + (d.path() / "token").string() +
              ": No such file or directory");
  }
  SUBCASE("without a namespace file the namespace is default") {
    fs::remove(d.path() / "namespace");
    CHECK(k8s::load_in_cluster(d.path()).namespace_name == "default");
  }
}

TEST_CASE("in-cluster without the service env vars is an error") {
  scoped_env host("KUBERNETES_SERVICE_HOST", nullptr);
  temp_dir d;
  CHECK(error_of([&] { k8s::load_in_cluster(d.path()); }).find("KUBERNETES_SERVICE_HOST") != std::string::npos);
}

TEST_CASE("flag precedence: -kubeconfig, then in-cluster, then -master alone, then KUBECONFIG") {
  temp_dir d;
  write(d.path() / "pki" / "ca.crt", certs().ca.cert_pem);
  write(d.path() / "config", basic_kubeconfig);
  write(d.path() / "sa" / "token", "t");
  write(d.path() / "sa" / "ca.crt", certs().ca.cert_pem);
  scoped_env host("KUBERNETES_SERVICE_HOST", "10.0.0.1");
  scoped_env port("KUBERNETES_SERVICE_PORT", "443");
  scoped_env kc("KUBECONFIG", nullptr);

  k8s::config_flags f;
  f.service_account_dir = d.path() / "sa";
  CHECK(k8s::load_config(f).in_cluster);

  f.kubeconfig = (d.path() / "config").string();
  auto c = k8s::load_config(f);
  CHECK_FALSE(c.in_cluster);
  CHECK(c.token == "abc123");

  f.kubeconfig.clear();
  f.master = "http://127.0.0.1:8001";
  auto m = k8s::load_config(f);
  CHECK(m.server == "http://127.0.0.1:8001");
  CHECK(m.token.empty());

  scoped_env nohost("KUBERNETES_SERVICE_HOST", nullptr);
  scoped_env home("HOME", d.path().c_str());  // no ~/.kube/config there
  f.master.clear();
  CHECK(error_of([&] { k8s::load_config(f); }).find("no cluster configuration") != std::string::npos);
}

TEST_CASE("base64 decoding accepts padding and line breaks and rejects garbage") {
  CHECK(k8s::base64_decode("aGVsbG8=") == std::optional<std::string>("hello"));
  CHECK(k8s::base64_decode("aGVs\nbG8h") == std::optional<std::string>("hello!"));
  CHECK(k8s::base64_decode("") == std::optional<std::string>(""));
  CHECK_FALSE(k8s::base64_decode("a"));
  CHECK_FALSE(k8s::base64_decode("aGVsbG8=x"));
  CHECK_FALSE(k8s::base64_decode("a*b="));
  for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    CHECK(k8s::base64_decode(k8s::base64_encode(s)) == std::optional<std::string>(s));
  }
}
