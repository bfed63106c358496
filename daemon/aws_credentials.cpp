#include "daemon/aws_credentials.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <random>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "daemon/metric_provider.hpp"
#include "k8s/http_client.hpp"

namespace canaryd {

namespace asio = boost::asio;

namespace {

constexpr std::chrono::seconds sts_timeout{10};
constexpr std::chrono::seconds container_timeout{5};
constexpr std::chrono::seconds imds_timeout{1};  // the SDKs' IMDS client: 1 s per attempt
constexpr std::chrono::minutes refresh_before{5};
constexpr int max_attempts = 3;
constexpr std::chrono::milliseconds backoff_base{100};
constexpr int imds_token_ttl = 21600;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string unescape_xml(std::string s) {
  static const std::pair<const char*, const char*> entities[] = {
      {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}, {"&amp;", "&"}};
  for (const auto& [from, to] : entities) {
    for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + 1)) s.replace(at, std::strlen(from), to);
  }
  return s;
}

using creds_result = boost::system::result<aws_credentials, std::string>;
using http_result = boost::system::result<http::response, std::string>;

// aws_credentials is constructible from a string (aggregate), so errors are made explicitly.
creds_result fail(std::string message) { return creds_result(boost::system::in_place_error, std::move(message)); }

std::string trimmed(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  auto first = std::find_if(s.begin(), s.end(), [](unsigned char c) { return !std::isspace(c); });
  return std::string(first, s.end());
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool retryable(const http_result& r) { return !r || r->status >= 500 || r->status == 429; }

// One request to a credential source, retried as the SDKs' standard retryer does (bounded):
// at most max_attempts, on a transport error, a 5xx or a 429, after a fully jittered
// exponential backoff. Returns the last attempt's outcome.
asio::awaitable<http_result> send_retrying(provider_env& penv, const std::string& base, const http::request& req,
                                           std::chrono::milliseconds timeout) {
  static std::mt19937 rng{std::random_device{}()};
  http_result res = std::string("not sent");
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    if (attempt > 0) {
      std::uniform_real_distribution<double> jitter(0.0, 1.0);
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(backoff_base * (1 << (attempt - 1)) * jitter(rng));
      asio::steady_timer timer(penv.executor(), wait);
      co_await timer.async_wait(asio::use_awaitable);
    }
    res = co_await penv.send(base, false, req, timeout);
    if (!retryable(res)) break;
  }
  co_return res;
}

// The request target (path and query) of a URL, "/" for none.
std::string target_of(const std::string& url) {
  auto u = boost::urls::parse_uri(url);
  if (!u) return "/";
  std::string t(u->encoded_path());
  if (t.empty()) t = "/";
  if (u->has_query()) t += "?" + std::string(u->encoded_query());
  return t;
}

bool is_true(const std::string& v) {
  std::string l = v;
  for (auto& c : l) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return l == "true";
}

}  // namespace

std::optional<std::string> xml_text(std::string_view xml, std::string_view tag) {
  const std::string open = fmt::format("<{}>", tag);
  const std::string close = fmt::format("</{}>", tag);
  auto a = xml.find(open);
  if (a == std::string_view::npos) return std::nullopt;
  a += open.size();
  auto b = xml.find(close, a);
  if (b == std::string_view::npos) return std::nullopt;
  return unescape_xml(std::string(xml.substr(a, b - a)));
}

boost::system::result<aws_temporary_credentials, std::string> read_aws_credentials_json(std::string_view body) {
  using out_t = boost::system::result<aws_temporary_credentials, std::string>;
  auto bad = [](std::string why) { return out_t(boost::system::in_place_error, std::move(why)); };
  boost::system::error_code ec;
  boost::json::value doc = boost::json::parse(body, ec);
  if (ec || !doc.is_object()) return bad("the answer is not a JSON object");
  const auto& o = doc.as_object();
  auto str = [&](const char* k) -> std::string {
    auto* v = o.if_contains(k);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
  };
  if (auto* code = o.if_contains("Code"); code && (!code->is_string() || code->as_string() != "Success")) {
    return bad(fmt::format("the answer's Code is {}: {}", boost::json::serialize(*code), str("Message")));
  }
  aws_temporary_credentials t;
  t.creds = aws_credentials{str("AccessKeyId"), str("SecretAccessKey"), str("Token")};
  if (t.creds.access_key_id.empty() || t.creds.secret_access_key.empty()) return bad("the answer has no AccessKeyId or SecretAccessKey");
  auto expires = core::parse_rfc3339(str("Expiration"));
  if (!expires) return bad(fmt::format("the answer's Expiration \"{}\" is not an RFC 3339 time", str("Expiration")));
  t.expires = *expires;
  return t;
}

bool allowed_container_uri(std::string_view uri) {
  auto u = boost::urls::parse_uri(uri);
  if (!u) return false;
  if (u->scheme() == "https") return true;
  if (u->scheme() != "http") return false;
  std::string host(u->encoded_host());
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost" || host == "::1" || host == "169.254.170.2" || host == "169.254.170.23" ||
      host == "fd00:ec2::23")
    return true;
  return host.rfind("127.", 0) == 0;
}

asio::awaitable<boost::system::result<aws_credentials, std::string>> aws_credential_chain::get(provider_env& penv,
                                                                                               const std::string& region) {
  // 1. The environment.
  if (!env("AWS_ACCESS_KEY_ID").empty() && !env("AWS_SECRET_ACCESS_KEY").empty()) {
    co_return aws_credentials{env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), env("AWS_SESSION_TOKEN")};
  }
  // 2. Web identity.
  if (!env("AWS_WEB_IDENTITY_TOKEN_FILE").empty() && !env("AWS_ROLE_ARN").empty()) co_return co_await web_identity(penv, region);
  // 3. The container credentials endpoint.
  if (!env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").empty() || !env("AWS_CONTAINER_CREDENTIALS_FULL_URI").empty())
    co_return co_await container(penv);
  // 4. IMDSv2.
  if (is_true(env("AWS_EC2_METADATA_DISABLED"))) {
    co_return fail(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_WEB_IDENTITY_TOKEN_FILE and "
        "AWS_ROLE_ARN, or AWS_CONTAINER_CREDENTIALS_FULL_URI (the EC2 instance metadata service is disabled by "
        "AWS_EC2_METADATA_DISABLED)");
  }
  auto r = co_await imds(penv);
  if (!r) {
    co_return fail(fmt::format(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_WEB_IDENTITY_TOKEN_FILE and "
        "AWS_ROLE_ARN, or AWS_CONTAINER_CREDENTIALS_FULL_URI; the EC2 instance metadata service: {}",
        r.error()));
  }
  co_return *r;
}

asio::awaitable<aws_credential_chain::creds_result> aws_credential_chain::container(provider_env& penv) {
  const std::string relative = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  const std::string uri = !relative.empty() ? "http://169.254.170.2" + relative : env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (relative.empty() && !allowed_container_uri(uri)) {
    co_return fail(fmt::format(
        "container credentials: AWS_CONTAINER_CREDENTIALS_FULL_URI {} must be https, or http to a loopback address or "
        "the ECS/EKS container agent",
        uri));
  }
  const std::string key = "container|" + uri;
  if (auto it = cache_.find(key); it != cache_.end() && penv.now() + refresh_before < it->second.expires) {
    co_return it->second.creds;
  }
  http::request req;
  req.method = "GET";
  req.target = target_of(uri);
  req.headers.push_back({"Accept", "application/json"});
  std::string token;
  if (const std::string file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"); !file.empty()) {
    auto text = read_file(file);
    if (!text) co_return fail(fmt::format("container credentials: AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {} cannot be read", file));
    token = trimmed(*text);
  } else {
    token = env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
  }
  if (token.find_first_of("\r\n") != std::string::npos) co_return fail("container credentials: the authorization token has a line break");
  if (!token.empty()) req.headers.push_back({"Authorization", token});
  auto res = co_await send_retrying(penv, uri, req, container_timeout);
  if (!res) co_return fail(fmt::format("container credentials from {}: {}", uri, res.error()));
  if (res->status != 200) {
    // The agents answer {"code": ..., "message": ...}.
    std::string why = res->body;
    boost::system::error_code ec;
    auto doc = boost::json::parse(res->body, ec);
    if (!ec && doc.is_object()) {
      auto* c = doc.as_object().if_contains("code");
      auto* m = doc.as_object().if_contains("message");
      if (c && m && c->is_string() && m->is_string()) why = fmt::format("{}: {}", std::string(c->as_string()), std::string(m->as_string()));
    }
    co_return fail(fmt::format("container credentials from {}: {} {}", uri, res->status, why));
  }
  auto t = read_aws_credentials_json(res->body);
  if (!t) co_return fail(fmt::format("container credentials from {}: {}", uri, t.error()));
  cache_[key] = cached{t->creds, t->expires};
  co_return t->creds;
}

asio::awaitable<aws_credential_chain::creds_result> aws_credential_chain::imds(provider_env& penv) {
  std::string endpoint = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  if (endpoint.empty()) {
    std::string mode = env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
    for (auto& c : mode) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    endpoint = mode == "ipv6" ? "http://[fd00:ec2::254]" : "http://169.254.169.254";
  }
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  const std::string base_path = provider_detail::url_path(endpoint).value_or("");
  const std::string key = "imds|" + endpoint;
  if (auto it = cache_.find(key); it != cache_.end() && penv.now() + refresh_before < it->second.expires) {
    co_return it->second.creds;
  }
  // A GET with the session token, fetched (PUT) when there is none or it is near its end; a 401
  // drops it and tries once more with a new one.
  auto get = [&](std::string path) -> asio::awaitable<http_result> {
    for (int round = 0; round < 2; ++round) {
      if (imds_token_.empty() || penv.now() + std::chrono::minutes(1) >= imds_token_expires_) {
        http::request put;
        put.method = "PUT";
        put.target = provider_detail::join_path(base_path, "/latest/api/token");
        put.headers.push_back({"X-aws-ec2-metadata-token-ttl-seconds", std::to_string(imds_token_ttl)});
        auto t = co_await send_retrying(penv, endpoint, put, imds_timeout);
        if (!t) co_return http_result(boost::system::in_place_error, fmt::format("PUT /latest/api/token: {}", t.error()));
        if (t->status != 200) {
          co_return http_result(boost::system::in_place_error,
                                fmt::format("PUT /latest/api/token: {} {}", t->status, trimmed(t->body)));
        }
        imds_token_ = trimmed(t->body);
        imds_token_expires_ = penv.now() + std::chrono::seconds(imds_token_ttl);
      }
      http::request req;
      req.method = "GET";
      req.target = provider_detail::join_path(base_path, path);
      req.headers.push_back({"X-aws-ec2-metadata-token", imds_token_});
      auto r = co_await send_retrying(penv, endpoint, req, imds_timeout);
      if (r && r->status == 401 && round == 0) {
        imds_token_.clear();
        continue;
      }
      if (!r) co_return http_result(boost::system::in_place_error, fmt::format("GET {}: {}", path, r.error()));
      co_return r;
    }
    co_return http_result(boost::system::in_place_error, "unreachable");
  };
  const std::string roles_path = "/latest/meta-data/iam/security-credentials/";
  auto roles = co_await get(roles_path);
  if (!roles) co_return fail(roles.error());
  if (roles->status == 404) co_return fail("the EC2 instance has no IAM role (GET " + roles_path + ": 404)");
  if (roles->status != 200) co_return fail(fmt::format("GET {}: {} {}", roles_path, roles->status, trimmed(roles->body)));
  std::string role = trimmed(roles->body);
  if (auto nl = role.find('\n'); nl != std::string::npos) role = trimmed(role.substr(0, nl));
  if (role.empty()) co_return fail("the EC2 instance has no IAM role (GET " + roles_path + " answered nothing)");
  auto res = co_await get(roles_path + role);
  if (!res) co_return fail(res.error());
  if (res->status != 200) co_return fail(fmt::format("GET {}{}: {} {}", roles_path, role, res->status, trimmed(res->body)));
  auto t = read_aws_credentials_json(res->body);
  if (!t) co_return fail(fmt::format("GET {}{}: {}", roles_path, role, t.error()));
  cache_[key] = cached{t->creds, t->expires};
  co_return t->creds;
}

asio::awaitable<aws_credential_chain::creds_result> aws_credential_chain::web_identity(provider_env& penv,
                                                                                       const std::string& region) {
  const std::string token_file = env("AWS_WEB_IDENTITY_TOKEN_FILE");
  const std::string role = env("AWS_ROLE_ARN");
  const std::string key = "web|" + role + "|" + region;
  if (auto it = cache_.find(key); it != cache_.end() && penv.now() + refresh_before < it->second.expires) {
    co_return it->second.creds;
  }
  auto text = read_file(token_file);
  if (!text) co_return fail(fmt::format("web identity token file {} cannot be read", token_file));
  std::string token = *text;
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
  std::string session = env("AWS_ROLE_SESSION_NAME");
  if (session.empty()) session = fmt::format("canaryd-{}", provider_detail::unix_seconds(penv.now()));
  std::string endpoint = env("AWS_ENDPOINT_URL_STS");
  if (endpoint.empty()) endpoint = env("AWS_ENDPOINT_URL");
  if (endpoint.empty()) endpoint = fmt::format("https://sts.{}.amazonaws.com", region);

  http::request req;
  req.method = "POST";
  req.target = provider_detail::join_path(provider_detail::url_path(endpoint).value_or(""), "/");
  req.headers.push_back({"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"});
  req.body = provider_detail::form_encode({{"Action", "AssumeRoleWithWebIdentity"},
                                           {"Version", "2011-06-15"},
                                           {"RoleArn", role},
                                           {"RoleSessionName", session},
                                           {"WebIdentityToken", token}});
  auto res = co_await send_retrying(penv, endpoint, req, sts_timeout);
  if (!res) co_return fail(fmt::format("AssumeRoleWithWebIdentity failed: {}", res.error()));
  if (res->status != 200) {
    co_return fail(fmt::format("AssumeRoleWithWebIdentity failed: {} {}", res->status,
                               xml_text(res->body, "Message").value_or(res->body)));
  }
  auto id = xml_text(res->body, "AccessKeyId");
  auto secret = xml_text(res->body, "SecretAccessKey");
  auto session_token = xml_text(res->body, "SessionToken");
  auto expiration = xml_text(res->body, "Expiration");
  auto expires = expiration ? core::parse_rfc3339(*expiration) : std::nullopt;
  if (!id || !secret || !session_token || !expires) {
    co_return fail(fmt::format("AssumeRoleWithWebIdentity answered without credentials: {}", res->body));
  }
  cached c{aws_credentials{*id, *secret, *session_token}, *expires};
  cache_[key] = c;
  co_return c.creds;
}

}  // namespace canaryd
