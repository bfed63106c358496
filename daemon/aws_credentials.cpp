#include "daemon/aws_credentials.hpp"

#include <fmt/format.h>

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
constexpr std::chrono::minutes refresh_before{5};

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

// aws_credentials is constructible from a string (aggregate), so errors are made explicitly.
creds_result fail(std::string message) { return creds_result(boost::system::in_place_error, std::move(message)); }

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

asio::awaitable<boost::system::result<aws_credentials, std::string>> aws_credential_chain::get(provider_env& penv,
                                                                                               const std::string& region) {
  // 1. The environment.
  if (!env("AWS_ACCESS_KEY_ID").empty() && !env("AWS_SECRET_ACCESS_KEY").empty()) {
    co_return aws_credentials{env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), env("AWS_SESSION_TOKEN")};
  }
  // 2. Web identity.
  const std::string token_file = env("AWS_WEB_IDENTITY_TOKEN_FILE");
  const std::string role = env("AWS_ROLE_ARN");
  if (token_file.empty() || role.empty()) {
    co_return fail(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_WEB_IDENTITY_TOKEN_FILE and "
        "AWS_ROLE_ARN");
  }
  const std::string key = role + "|" + region;
  if (auto it = web_identity_.find(key); it != web_identity_.end() && penv.now() + refresh_before < it->second.expires) {
    co_return it->second.creds;
  }
  std::ifstream in(token_file);
  if (!in) co_return fail(fmt::format("web identity token file {} cannot be read", token_file));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string token = ss.str();
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
  auto res = co_await penv.send(endpoint, false, std::move(req), sts_timeout);
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
  web_identity_[key] = c;
  co_return c.creds;
}

}  // namespace canaryd
