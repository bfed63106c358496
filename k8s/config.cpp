#include "k8s/config.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <yaml-cpp/yaml.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

namespace canaryd::k8s {
namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& msg) { throw config_error(msg); }

std::string dq(std::string_view s) { return fmt::format("\"{}\"", s); }

// Reads a whole file or fails with "cannot read <what> <path>: <reason>".
std::string read_file(const fs::path& p, std::string_view what, std::string_view prefix) {
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    int err = errno;
    std::error_code ec;
    std::string reason = err != 0 ? std::strerror(err) : "cannot open";
    if (fs::is_directory(p, ec)) reason = "is a directory";
    fail(fmt::format("{}cannot read {} {}: {}", prefix, what, p.string(), reason));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail(fmt::format("{}cannot read {} {}: read error", prefix, what, p.string()));
  return ss.str();
}

// The first OpenSSL error as text, and the queue cleared.
std::string openssl_reason() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no PEM data found";
  std::array<char, 256> buf{};
  ERR_error_string_n(e, buf.data(), buf.size());
  // "error:0480006C:PEM routines::no start line" -> keep the part after the last ':'
  std::string s = buf.data();
  auto pos = s.rfind(':');
  return pos == std::string::npos ? s : s.substr(pos + 1);
}

struct bio_deleter {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
using bio_ptr = std::unique_ptr<BIO, bio_deleter>;
struct x509_deleter {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
using x509_ptr = std::unique_ptr<X509, x509_deleter>;
struct pkey_deleter {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;

bio_ptr mem_bio(const std::string& pem) {
  return bio_ptr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Returns "" when `pem` holds at least one certificate, else the reason.
std::string check_certificates(const std::string& pem) {
  ERR_clear_error();
  auto bio = mem_bio(pem);
  x509_ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return "no PEM certificate in it (" + openssl_reason() + ")";
  ERR_clear_error();
  return {};
}

// Returns "" when the key parses and matches the certificate, else the reason.
std::string check_key_pair(const std::string& cert_pem, const std::string& key_pem) {
  ERR_clear_error();
  auto cb = mem_bio(cert_pem);
  x509_ptr cert(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
  if (!cert) return "client certificate: no PEM certificate in it (" + openssl_reason() + ")";
  auto kb = mem_bio(key_pem);
  pkey_ptr key(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  if (!key) return "client key: no PEM private key in it (" + openssl_reason() + ")";
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return "client key does not match the client certificate";
  }
  return {};
}

std::string scalar(const YAML::Node& map, const char* key, std::string_view ctx) {
  if (!map.IsMap()) return {};
  YAML::Node n = map[key];
  if (!n.IsDefined() || n.IsNull()) return {};
  if (!n.IsScalar()) fail(fmt::format("{}: {} must be a string", ctx, key));
  return n.Scalar();
}

bool boolean(const YAML::Node& map, const char* key, std::string_view ctx) {
  if (!map.IsMap()) return false;
  YAML::Node n = map[key];
  if (!n.IsDefined() || n.IsNull()) return false;
  bool v = false;
  if (!n.IsScalar() || !YAML::convert<bool>::decode(n, v)) {
    fail(fmt::format("{}: {} must be true or false", ctx, key));
  }
  return v;
}

// One named entry (cluster, user or context) with the file it came from.
struct entry {
  YAML::Node body;
  fs::path file;
};

struct merged {
  std::map<std::string, entry> clusters, users, contexts;
  std::string current_context;
  std::string files_text;  // "/a" or "/a:/b" for messages
};

void collect(const YAML::Node& root, const char* list_key, const char* body_key, const fs::path& file,
             std::map<std::string, entry>& out) {
  YAML::Node list = root[list_key];
  if (!list.IsDefined() || list.IsNull()) return;
  if (!list.IsSequence()) fail(fmt::format("kubeconfig {}: {} must be a list", file.string(), list_key));
  for (const auto& item : list) {
    if (!item.IsMap()) fail(fmt::format("kubeconfig {}: every entry of {} must be a map", file.string(), list_key));
    std::string name = scalar(item, "name", "kubeconfig " + file.string());
    if (name.empty()) fail(fmt::format("kubeconfig {}: an entry of {} has no name", file.string(), list_key));
    YAML::Node body = item[body_key];
    if (body.IsDefined() && !body.IsNull() && !body.IsMap()) {
      fail(fmt::format("kubeconfig {}: {} {} must be a map", file.string(), body_key, dq(name)));
    }
    // An entry without a body (`- name: x` alone) gets an empty one: yaml-cpp's node for a
    // missing key is a zombie whose every later use (IsMap(), Type()) throws InvalidNode, which
    // escaped load_kubeconfig as an uncaught exception (found by fuzz/kubeconfig).
    out.try_emplace(name, entry{body.IsDefined() ? body : YAML::Node(), file});  // first file wins
  }
}

merged load_files(const std::vector<fs::path>& files) {
  merged m;
  for (const auto& f : files) {
    if (!m.files_text.empty()) m.files_text += ":";
    m.files_text += f.string();
  }
  if (files.empty()) fail("kubeconfig: no file given");
  for (const auto& f : files) {
    std::string text = read_file(f, "kubeconfig", "");
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      fail(fmt::format("kubeconfig {}: malformed YAML at line {}, column {}: {}", f.string(), e.mark.line + 1,
                       e.mark.column + 1, e.msg));
    }
    if (root.IsNull() || !root.IsDefined()) continue;  // an empty file contributes nothing
    if (!root.IsMap()) fail(fmt::format("kubeconfig {}: not a kubeconfig (the document is not a map)", f.string()));
    std::string kind = scalar(root, "kind", "kubeconfig " + f.string());
    if (!kind.empty() && kind != "Config") {
      fail(fmt::format("kubeconfig {}: kind is {}, expected Config", f.string(), dq(kind)));
    }
    collect(root, "clusters", "cluster", f, m.clusters);
    collect(root, "users", "user", f, m.users);
    collect(root, "contexts", "context", f, m.contexts);
    if (m.current_context.empty()) m.current_context = scalar(root, "current-context", "kubeconfig " + f.string());
  }
  return m;
}

fs::path resolve(const fs::path& p, const fs::path& kubeconfig_file) {
  if (p.empty() || p.is_absolute()) return p;
  return kubeconfig_file.parent_path() / p;
}

std::string decode_data(const std::string& b64, std::string_view field, std::string_view ctx) {
  auto v = base64_decode(b64);
  if (!v) fail(fmt::format("{}: {} is not valid base64", ctx, field));
  return *v;
}

void check_server(const std::string& server, std::string_view ctx) {
  if (server.rfind("https://", 0) != 0 && server.rfind("http://", 0) != 0) {
    fail(fmt::format("{}: server {} is not an http:// or https:// URL", ctx, dq(server)));
  }
  auto rest = std::string_view(server).substr(server.find("//") + 2);
  if (rest.empty() || rest.front() == '/' || rest.front() == ':') {
    fail(fmt::format("{}: server {} has no host", ctx, dq(server)));
  }
}

exec_plugin_config parse_exec(const YAML::Node& n, const fs::path& file, std::string_view ctx) {
  exec_plugin_config e;
  std::string ectx = std::string(ctx) + ": exec";
  e.api_version = scalar(n, "apiVersion", ectx);
  if (e.api_version.empty()) fail(ectx + ": apiVersion is required");
  if (e.api_version != "client.authentication.k8s.io/v1" && e.api_version != "client.authentication.k8s.io/v1beta1") {
    fail(fmt::format("{}: apiVersion {} is not supported (use client.authentication.k8s.io/v1 or /v1beta1)", ectx,
                     dq(e.api_version)));
  }
  e.command = scalar(n, "command", ectx);
  if (e.command.empty()) fail(ectx + ": command is required");
  if (e.command.find('/') != std::string::npos) e.command = resolve(e.command, file).string();
  YAML::Node args = n["args"];
  if (args.IsDefined() && !args.IsNull()) {
    if (!args.IsSequence()) fail(ectx + ": args must be a list of strings");
    for (const auto& a : args) {
      if (!a.IsScalar()) fail(ectx + ": args must be a list of strings");
      e.args.push_back(a.Scalar());
    }
  }
  YAML::Node env = n["env"];
  if (env.IsDefined() && !env.IsNull()) {
    if (!env.IsSequence()) fail(ectx + ": env must be a list of {name, value}");
    for (const auto& v : env) {
      std::string name = scalar(v, "name", ectx + ": env");
      if (name.empty()) fail(ectx + ": an env entry has no name");
      e.env.emplace_back(name, scalar(v, "value", ectx + ": env"));
    }
  }
  e.install_hint = scalar(n, "installHint", ectx);
  e.provide_cluster_info = boolean(n, "provideClusterInfo", ectx);
  e.interactive_mode = scalar(n, "interactiveMode", ectx);
  if (e.api_version == "client.authentication.k8s.io/v1" && e.interactive_mode.empty()) {
    fail(ectx + ": interactiveMode is required for client.authentication.k8s.io/v1 (Never, IfAvailable or Always)");
  }
  if (e.interactive_mode == "Always") {
    fail(ectx + ": interactiveMode Always needs a terminal, and canaryd has none");
  }
  return e;
}

std::string pem_or_file(const YAML::Node& body, const char* data_key, const char* file_key, const fs::path& file,
                        std::string_view ctx, std::string_view what) {
  std::string data = scalar(body, data_key, ctx);
  if (!data.empty()) return decode_data(data, data_key, ctx);
  std::string path = scalar(body, file_key, ctx);
  if (path.empty()) return {};
  return read_file(resolve(path, file), what, std::string(ctx) + ": ");
}

}  // namespace

std::vector<fs::path> split_path_list(const std::string& list) {
  std::vector<fs::path> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    auto colon = list.find(':', start);
    if (colon == std::string::npos) colon = list.size();
    if (colon > start) out.emplace_back(list.substr(start, colon - start));
    start = colon + 1;
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  out.reserve(in.size() * 3 / 4);
  unsigned buf = 0;
  int bits = 0;
  int pad = 0;
  std::size_t symbols = 0;
  for (char c : in) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++pad;
      continue;
    }
    if (pad > 0) return std::nullopt;  // data after padding
    int v = value(c);
    if (v < 0) return std::nullopt;
    ++symbols;
    buf = (buf << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buf >> bits) & 0xFF));
    }
  }
  if (pad > 2 || symbols % 4 == 1) return std::nullopt;
  if (pad > 0 && (symbols + static_cast<std::size_t>(pad)) % 4 != 0) return std::nullopt;
  return out;
}

std::string base64_encode(std::string_view in) {
  static constexpr char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out.push_back(table[(v >> 18) & 63]);
    out.push_back(table[(v >> 12) & 63]);
    out.push_back(table[(v >> 6) & 63]);
    out.push_back(table[v & 63]);
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out.push_back(table[(v >> 18) & 63]);
    out.push_back(table[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? table[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

cluster_config load_kubeconfig(const std::vector<fs::path>& files, const std::string& context,
                               const std::string& master) {
  merged m = load_files(files);
  const std::string where = "kubeconfig " + m.files_text;
  std::string ctx_name = context.empty() ? m.current_context : context;
  if (ctx_name.empty()) {
    fail(where + ": no current-context is set and no --context was given");
  }
  auto ctx_it = m.contexts.find(ctx_name);
  if (ctx_it == m.contexts.end()) fail(fmt::format("{}: context {} not found", where, dq(ctx_name)));
  const YAML::Node& ctx = ctx_it->second.body;
  const std::string ctx_where = fmt::format("{}: context {}", where, dq(ctx_name));

  cluster_config c;
  c.context_name = ctx_name;
  c.source = fmt::format("{} (context {})", where, dq(ctx_name));
  c.cluster_name = scalar(ctx, "cluster", ctx_where);
  c.user_name = scalar(ctx, "user", ctx_where);
  std::string ns = scalar(ctx, "namespace", ctx_where);
  if (!ns.empty()) c.namespace_name = ns;

  // Cluster.
  if (c.cluster_name.empty() && master.empty()) fail(ctx_where + " names no cluster");
  if (!c.cluster_name.empty()) {
    auto cl_it = m.clusters.find(c.cluster_name);
    if (cl_it == m.clusters.end()) {
      fail(fmt::format("{}: cluster {} (of context {}) not found", where, dq(c.cluster_name), dq(ctx_name)));
    }
    const YAML::Node& cl = cl_it->second.body;
    const fs::path& file = cl_it->second.file;
    const std::string cl_where = fmt::format("kubeconfig {}: cluster {}", file.string(), dq(c.cluster_name));
    c.server = scalar(cl, "server", cl_where);
    c.tls.verify = !boolean(cl, "insecure-skip-tls-verify", cl_where);
    c.tls.server_name = scalar(cl, "tls-server-name", cl_where);
    std::string ca_data = scalar(cl, "certificate-authority-data", cl_where);
    std::string ca_file = scalar(cl, "certificate-authority", cl_where);
    if (!ca_data.empty()) {
      c.tls.ca_pem = decode_data(ca_data, "certificate-authority-data", cl_where);
      if (auto why = check_certificates(c.tls.ca_pem); !why.empty()) {
        fail(cl_where + ": certificate-authority-data: " + why);
      }
    } else if (!ca_file.empty()) {
      fs::path p = resolve(ca_file, file);
      c.tls.ca_pem = read_file(p, "certificate-authority", cl_where + ": ");
      if (auto why = check_certificates(c.tls.ca_pem); !why.empty()) {
        fail(fmt::format("{}: certificate-authority {}: {}", cl_where, p.string(), why));
      }
    }
    if (!c.tls.verify && !c.tls.ca_pem.empty()) {
      // client-go refuses this combination too: one of the two is a mistake.
      fail(cl_where + ": insecure-skip-tls-verify and a certificate-authority are both set; remove one");
    }
  }
  if (!master.empty()) {
    c.server = master;
    c.source += ", -master " + master;
  }
  if (c.server.empty()) fail(fmt::format("{}: cluster {} has no server", where, dq(c.cluster_name)));
  check_server(c.server, where);

  // User (optional: a context without a user talks anonymously).
  if (!c.user_name.empty()) {
    auto u_it = m.users.find(c.user_name);
    if (u_it == m.users.end()) {
      fail(fmt::format("{}: user {} (of context {}) not found", where, dq(c.user_name), dq(ctx_name)));
    }
    const YAML::Node& u = u_it->second.body;
    const fs::path& file = u_it->second.file;
    const std::string u_where = fmt::format("kubeconfig {}: user {}", file.string(), dq(c.user_name));
    if (u.IsMap() && u["auth-provider"].IsDefined() && !u["auth-provider"].IsNull()) {
      std::string name = scalar(u["auth-provider"], "name", u_where + ": auth-provider");
      fail(fmt::format("{}: auth-provider {} is not supported; use an exec credential plugin", u_where, dq(name)));
    }
    c.token = scalar(u, "token", u_where);
    std::string token_file = scalar(u, "tokenFile", u_where);
    if (!token_file.empty()) {
      c.token_file = resolve(token_file, file);
      std::string t = read_file(c.token_file, "tokenFile", u_where + ": ");
      if (t.find_first_not_of(" \t\r\n") == std::string::npos) {
        fail(fmt::format("{}: tokenFile {} is empty", u_where, c.token_file.string()));
      }
    }
    std::string username = scalar(u, "username", u_where);
    std::string password = scalar(u, "password", u_where);
    if (!username.empty() || !password.empty()) c.basic = basic_auth{username, password};
    c.tls.cert_pem = pem_or_file(u, "client-certificate-data", "client-certificate", file, u_where, "client-certificate");
    c.tls.key_pem = pem_or_file(u, "client-key-data", "client-key", file, u_where, "client-key");
    if (c.tls.cert_pem.empty() != c.tls.key_pem.empty()) {
      fail(u_where + (c.tls.cert_pem.empty() ? ": client-key is set without client-certificate"
                                             : ": client-certificate is set without client-key"));
    }
    if (!c.tls.cert_pem.empty()) {
      if (auto why = check_key_pair(c.tls.cert_pem, c.tls.key_pem); !why.empty()) fail(u_where + ": " + why);
    }
    if (u.IsMap() && u["exec"].IsDefined() && !u["exec"].IsNull()) {
      if (!u["exec"].IsMap()) fail(u_where + ": exec must be a map");
      c.exec = parse_exec(u["exec"], file, u_where);
    }
    if (c.basic && (!c.token.empty() || !c.token_file.empty())) {
      fail(u_where + ": username/password and a token are both set; remove one");
    }
  }
  return c;
}

cluster_config load_in_cluster(const fs::path& sa_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || *host == '\0' || port == nullptr || *port == '\0') {
    fail("in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set");
  }
  cluster_config c;
  c.in_cluster = true;
  c.source = "in-cluster (" + sa_dir.string() + ")";
  std::string h = host;
  if (h.find(':') != std::string::npos && h.front() != '[') h = "[" + h + "]";  // IPv6
  c.server = fmt::format("https://{}:{}", h, port);
  c.token_file = sa_dir / "token";
  std::string t = read_file(c.token_file, "service-account token", "in-cluster: ");
  if (t.find_first_not_of(" \t\r\n") == std::string::npos) {
    fail(fmt::format("in-cluster: service-account token {} is empty", c.token_file.string()));
  }
  fs::path ca = sa_dir / "ca.crt";
  c.tls.ca_pem = read_file(ca, "service-account ca.crt", "in-cluster: ");
  if (auto why = check_certificates(c.tls.ca_pem); !why.empty()) {
    fail(fmt::format("in-cluster: ca.crt {}: {}", ca.string(), why));
  }
  std::ifstream ns_in(sa_dir / "namespace");
  std::string ns;
  if (ns_in && std::getline(ns_in, ns)) {
    while (!ns.empty() && (ns.back() == ' ' || ns.back() == '\r' || ns.back() == '\t')) ns.pop_back();
    if (!ns.empty()) c.namespace_name = ns;
  }
  return c;
}

cluster_config load_config(const config_flags& flags) {
  if (!flags.kubeconfig.empty()) {
    auto files = split_path_list(flags.kubeconfig);
    return load_kubeconfig(files, flags.context, flags.master);
  }
  const char* service_host = std::getenv("KUBERNETES_SERVICE_HOST");
  if (flags.master.empty() && service_host != nullptr && *service_host != '\0') {
    fs::path dir = flags.service_account_dir;
    if (dir.empty()) {
      const char* env = std::getenv("CANARYD_SA_DIR");
      dir = env != nullptr && *env != '\0' ? fs::path(env) : fs::path("/var/run/secrets/kubernetes.io/serviceaccount");
    }
    cluster_config c = load_in_cluster(dir);
    if (!flags.context.empty()) fail("--context " + dq(flags.context) + " needs a kubeconfig, but none was given (running in-cluster)");
    return c;
  }
  if (!flags.master.empty() && flags.context.empty()) {
    cluster_config c;
    c.server = flags.master;
    c.source = "-master " + flags.master;
    check_server(c.server, "-master");
    return c;
  }
  if (const char* env = std::getenv("KUBECONFIG"); env != nullptr && *env != '\0') {
    auto files = split_path_list(env);
    if (!files.empty()) return load_kubeconfig(files, flags.context, flags.master);
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    fs::path p = fs::path(home) / ".kube" / "config";
    std::error_code ec;
    if (fs::exists(p, ec)) return load_kubeconfig({p}, flags.context, flags.master);
  }
  fail("no cluster configuration: give -kubeconfig or -master, set KUBECONFIG, or run in a cluster "
       "(KUBERNETES_SERVICE_HOST is not set)");
}

}  // namespace canaryd::k8s
