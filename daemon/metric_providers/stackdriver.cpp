// stackdriver: Cloud Monitoring's MQL query (https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.timeSeries/query):
//   POST <address or https://monitoring.googleapis.com>/v3/projects/<project>/timeSeries:query
//   Authorization: Bearer <access token>, {"query": "<MQL>"}; 5 s.
// Secret keys: "project" (required when a secret is named) and optional "serviceAccountKey" (the
// JSON key): a JWT signed RS256 with the key's private_key, exchanged at its token_uri for an
// access token (RFC 7523). Without a key: the metadata server's token
// (http://metadata.google.internal, or $GCE_METADATA_HOST). Tokens are kept until a minute before
// they expire. The value, as Flagger picks it: the first value of the first point of the first
// time series (MQL answers newest first); no series or no point is no values. IsOnline sends an
// empty query: a 200 or 400 (INVALID_ARGUMENT) is online.
#include <boost/json.hpp>

#include <fmt/format.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdlib>
#include <memory>

#include "core/hash.hpp"
#include "core/metric_answers.hpp"
#include "daemon/metric_provider.hpp"
#include "k8s/config.hpp"
#include "k8s/http_client.hpp"

namespace canaryd {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace provider_detail;

namespace {

constexpr std::chrono::seconds timeout{5};
constexpr const char* scope = "https://www.googleapis.com/auth/monitoring.read";

// A text or why there is none; both are strings, so each is made explicitly.
using text_result = boost::system::result<std::string, std::string>;
text_result ok(std::string v) { return text_result(boost::system::in_place_value, std::move(v)); }
text_result err(std::string e) { return text_result(boost::system::in_place_error, std::move(e)); }

std::string base64url(std::string_view in) {
  std::string b = k8s::base64_encode(in);
  for (auto& c : b) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  while (!b.empty() && b.back() == '=') b.pop_back();
  return b;
}

// RS256 over `data` with the PEM private key, or the reason it failed.
text_result rs256(std::string_view pem, std::string_view data) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr, EVP_PKEY_free);
  if (!key) return err("serviceAccountKey: private_key is not a PEM private key");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    return err("serviceAccountKey: cannot sign with private_key");
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    return err("serviceAccountKey: cannot sign with private_key");
  }
  sig.resize(len);
  return ok(std::move(sig));
}

struct service_account {
  std::string client_email;
  std::string private_key;
  std::string private_key_id;
  std::string token_uri;
};

class stackdriver_provider final : public metric_provider {
 public:
  stackdriver_provider(provider_env& env, std::string address, std::string project, std::optional<service_account> sa)
      : env_(env), address_(std::move(address)), project_(std::move(project)), sa_(std::move(sa)) {}

  asio::awaitable<core::metric_observation> run_query(std::string query) override {
    auto res = co_await call(std::move(query));
    if (!res) co_return failed(fmt::format("error requesting stackdriver: {}", res.error()));
    if (res->status != 200) co_return failed(fmt::format("error requesting stackdriver: {}", google_error(*res)));
    co_return core::read_stackdriver_answer(res->body);
  }

  asio::awaitable<std::string> is_online() override {
    auto res = co_await call("");
    if (!res) co_return fmt::format("unexpected error: {}", res.error());
    if (res->status != 200 && res->status != 400) co_return fmt::format("unexpected status code: {}", google_error(*res));
    co_return std::string();
  }

 private:
  static std::string google_error(const http::response& res) {
    boost::system::error_code ec;
    json::value doc = json::parse(res.body, ec);
    if (!ec && doc.is_object()) {
      if (auto* e = doc.as_object().if_contains("error"); e && e->is_object()) {
        std::string status, message;
        if (auto* s = e->as_object().if_contains("status"); s && s->is_string()) status = std::string(s->as_string());
        if (auto* m = e->as_object().if_contains("message"); m && m->is_string()) message = std::string(m->as_string());
        return fmt::format("rpc error: code = {} desc = {}", status, message);
      }
    }
    return fmt::format("{} {}", res.status, res.body);
  }

  asio::awaitable<boost::system::result<http::response, std::string>> call(std::string query) {
    auto token = co_await access_token();
    if (!token) co_return token.error();
    http::request req;
    req.method = "POST";
    req.target = join_path(url_path(address_).value_or(""),
                           fmt::format("/v3/projects/{}/timeSeries:query", http::percent_encode(project_)));
    req.headers.push_back({"Authorization", "Bearer " + *token});
    req.headers.push_back({"Content-Type", "application/json"});
    req.body = json::serialize(json::object{{"query", query}});
    co_return co_await env_.send(address_, false, std::move(req), timeout);
  }

  // The access token: from the service-account key (JWT bearer grant) or the metadata server.
  asio::awaitable<text_result> access_token() {
    // Keyed by the whole key, not the account's name: two secrets may name one account and
    // hold different keys, and a token got with one must not serve the other.
    const std::string key =
        sa_ ? fmt::format("{}|{}|{}", sa_->client_email, sa_->token_uri, core::to_hex(core::fnv1a64(sa_->private_key)))
            : std::string("metadata");
    auto& cache = env_.google_tokens();
    if (auto it = cache.find(key); it != cache.end() && env_.now() + std::chrono::minutes(1) < it->second.second) {
      co_return ok(it->second.first);
    }
    http::request req;
    std::string base;
    if (sa_) {
      const std::int64_t now = unix_seconds(env_.now());
      const std::string header = json::serialize(json::object{{"alg", "RS256"}, {"typ", "JWT"}, {"kid", sa_->private_key_id}});
      const std::string claims = json::serialize(json::object{
          {"iss", sa_->client_email}, {"scope", scope}, {"aud", sa_->token_uri}, {"iat", now}, {"exp", now + 3600}});
      const std::string signing_input = base64url(header) + "." + base64url(claims);
      auto sig = rs256(sa_->private_key, signing_input);
      if (!sig) co_return err(sig.error());
      base = sa_->token_uri;
      req.method = "POST";
      req.target = url_path(base).value_or("/");
      if (req.target.empty()) req.target = "/";
      req.headers.push_back({"Content-Type", "application/x-www-form-urlencoded"});
      req.body = form_encode({{"grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
                              {"assertion", signing_input + "." + base64url(*sig)}});
    } else {
      const char* host = std::getenv("GCE_METADATA_HOST");
      base = fmt::format("http://{}", host && *host ? host : "metadata.google.internal");
      req.target = "/computeMetadata/v1/instance/service-accounts/default/token";
      req.headers.push_back({"Metadata-Flavor", "Google"});
    }
    auto res = co_await env_.send(base, false, std::move(req), timeout);
    if (!res) co_return err(fmt::format("oauth2: cannot fetch token: {}", res.error()));
    if (res->status != 200) co_return err(fmt::format("oauth2: cannot fetch token: {} {}", res->status, res->body));
    boost::system::error_code ec;
    json::value doc = json::parse(res->body, ec);
    const json::object* o = ec ? nullptr : doc.if_object();
    const json::value* tok = o ? o->if_contains("access_token") : nullptr;
    const json::value* exp = o ? o->if_contains("expires_in") : nullptr;
    if (!tok || !tok->is_string()) co_return err(fmt::format("oauth2: no access_token in '{}'", res->body));
    const auto lifetime = std::chrono::seconds(exp && exp->is_number() ? exp->to_number<std::int64_t>() : 3600);
    std::string t(tok->as_string());
    cache[key] = {t, env_.now() + lifetime};
    co_return ok(std::move(t));
  }

  provider_env& env_;
  std::string address_;
  std::string project_;
  std::optional<service_account> sa_;
};

}  // namespace

provider_result make_stackdriver_provider(provider_env& env, const provider_config& cfg) {
  std::string project;
  std::optional<service_account> sa;
  if (cfg.credentials) {
    auto p = cfg.credentials->find("project");
    if (p == cfg.credentials->end()) return fmt::format("{} credentials does not contain a project id", cfg.spec.type);
    project = p->second;
    if (auto k = cfg.credentials->find("serviceAccountKey"); k != cfg.credentials->end()) {
      boost::system::error_code ec;
      json::value doc = json::parse(k->second, ec);
      const json::object* o = ec ? nullptr : doc.if_object();
      auto field = [&](const char* name) -> std::string {
        const json::value* v = o ? o->if_contains(name) : nullptr;
        return v && v->is_string() ? std::string(v->as_string()) : std::string();
      };
      service_account s{field("client_email"), field("private_key"), field("private_key_id"), field("token_uri")};
      if (s.token_uri.empty()) s.token_uri = "https://oauth2.googleapis.com/token";
      if (s.client_email.empty() || s.private_key.empty()) {
        return std::string("serviceAccountKey is not a service account key (client_email and private_key)");
      }
      sa = std::move(s);
    }
  }
  std::string address = cfg.spec.address.empty() ? "https://monitoring.googleapis.com" : cfg.spec.address;
  if (!url_path(address) || !http::parse_origin(address)) return fmt::format("stackdriver address {} is not a valid URL", address);
  return std::make_unique<stackdriver_provider>(env, std::move(address), std::move(project), std::move(sa));
}

}  // namespace canaryd
