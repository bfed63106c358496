// splunk: Splunk Observability Cloud (SignalFx) SignalFlow over a WebSocket, as Flagger's
// SplunkProvider drives signalflow-client-go
// (https://dev.splunk.com/observability/docs/signalflow/messages/websocket_request_messages):
//   stream URL: provider.address + "/v2/signalflow", its first "http" replaced by "ws" and then
//   its first "api" by "stream" (https://api.us1.signalfx.com -> wss://stream.us1.signalfx.com),
//   connected at <stream URL>/connect; HTTPS_PROXY (wss) or HTTP_PROXY (ws) through a CONNECT
//   tunnel, as gorilla/websocket's default dialer.
//   -> {"type":"authenticate","token":<sf_token_key>}        <- {"type":"authenticated",...}
//   -> {"type":"execute","program":<query>,"channel":"ch-1","start":<now-10*interval ms>,
//       "stop":<now ms>,"resolution":0,"maxDelay":0,"immediate":true,"timezone":""}
//   <- control-message STREAM_START/JOB_START, message, metadata, data (binary, or JSON), ...,
//      control-message END_OF_CHANNEL
// The data points of the whole window are collected; points without a value are dropped; none
// left is no_values; points of more than one time series are "multiple values"; the value is the
// last point received (the newest), as Flagger takes it. The exchange (connect, TLS, handshake,
// authentication, computation) has 5 s, Flagger's timeout. IsOnline:
// GET <address + "/v2/metric?limit=1", first "ws" -> "http", first "stream" -> "api"> with
// X-SF-Token, 5 s, 200 wanted.
// Differences from Flagger (docs/metric-providers.md): an error message, a refused token, a
// CHANNEL_ABORT or a connection closed before END_OF_CHANNEL fail the query (Flagger's client
// ends the computation's data and Flagger judges the points it got so far, or waits on its
// reconnect loop); a NaN value is no_values (Flagger returns NaN).
//
// Thread affinity: the io_context thread. Beast's WebSocket stays in this translation unit.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/zlib/inflate_stream.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include <fmt/format.h>

#include <bit>
#include <cstring>
#include <set>

#include "daemon/metric_provider.hpp"
#include "daemon/outbound.hpp"
#include "k8s/http_client.hpp"
#include "k8s/http_tunnel.hpp"
#include "k8s/tls_context.hpp"

namespace canaryd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using namespace provider_detail;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr std::chrono::seconds timeout{5};
constexpr auto close_timeout = std::chrono::seconds(1);
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr const char* channel_name = "ch-1";  // signalflow-client-go's first channel on a new client

std::string replace_first(std::string s, std::string_view from, std::string_view to) {
  if (auto at = s.find(from); at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

// One data point: its time series (the 8-byte TSID) and its value, if it has one.
struct point {
  std::string tsid;
  std::optional<double> value;
};

// What the computation's messages told so far.
struct computation {
  bool authenticated = false;
  bool ended = false;
  std::optional<core::metric_observation> failure;
  std::vector<point> points;
};

std::uint64_t big_endian(const unsigned char* p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

// signalflow-client-go's ComputationError text: "<code>[ (<errorType>)][: <message>]".
std::string computation_error(const json::object& m) {
  std::string out = "0";
  if (auto* c = m.if_contains("error"); c && c->is_number()) out = fmt::format("{}", c->to_number<std::int64_t>());
  if (auto* t = m.if_contains("errorType"); t && t->is_string() && !t->as_string().empty())
    out += fmt::format(" ({})", std::string_view(t->as_string()));
  if (auto* msg = m.if_contains("message"); msg && msg->is_string() && !msg->as_string().empty())
    out += fmt::format(": {}", std::string_view(msg->as_string()));
  return out;
}

// A JSON message (a text frame, or a binary one flagged JSON).
void on_json(computation& c, std::string_view text) {
  boost::system::error_code ec;
  json::value doc = json::parse(text, ec);
  if (ec || !doc.is_object()) {
    c.failure = failed(fmt::format("error executing query: could not parse SignalFlow message: {}", text.substr(0, 200)));
    return;
  }
  const json::object& m = doc.as_object();
  auto str = [&](const char* k) -> std::string {
    auto* v = m.if_contains(k);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
  };
  const std::string type = str("type");
  if (type == "authenticated") {
    c.authenticated = true;
    return;
  }
  if (type == "error") {
    // Before "authenticated" it is the token's refusal; after, the computation's error.
    c.failure = failed(fmt::format("error executing query: {}{}", c.authenticated ? "" : "authentication failed: ",
                                   computation_error(m)));
    return;
  }
  if (m.contains("channel") && str("channel") != channel_name) return;  // not ours
  if (type == "control-message") {
    const std::string event = str("event");
    if (event == "END_OF_CHANNEL") c.ended = true;
    if (event == "CHANNEL_ABORT" || event == "ABORT_CHANNEL") {
      std::string why;
      if (auto* info = m.if_contains("abortInfo")) why = ": " + json::serialize(*info);
      c.failure = failed(fmt::format("error executing query: computation aborted{}", why));
    }
    return;
  }
  if (type == "data") {
    // {"type":"data","channel":..,"logicalTimestampMs":..,"data":[{"tsId":"..","value":..}]}
    auto* data = m.if_contains("data");
    if (!data || !data->is_array()) return;
    for (const auto& e : data->as_array()) {
      if (!e.is_object()) continue;
      point p;
      if (auto* id = e.as_object().if_contains("tsId"); id && id->is_string()) p.tsid = std::string(id->as_string());
      if (auto* v = e.as_object().if_contains("value"); v && v->is_number()) p.value = v->to_number<double>();
      c.points.push_back(std::move(p));
    }
  }
  // message (JOB_RUNNING_RESOLUTION, ...), metadata, event, expired-tsid: nothing to take.
}

// A gzip member's deflate data, inflated (RFC 1952 header and trailer around RFC 1951 data).
std::optional<std::string> gunzip(std::string_view in) {
  const auto* b = reinterpret_cast<const unsigned char*>(in.data());
  if (in.size() < 18 || b[0] != 0x1f || b[1] != 0x8b || b[2] != 8) return std::nullopt;
  const unsigned flags = b[3];
  std::size_t at = 10;
  if (flags & 4) {  // FEXTRA
    if (at + 2 > in.size()) return std::nullopt;
    at += 2 + (b[at] | (b[at + 1] << 8));
  }
  for (unsigned f : {8u, 16u}) {  // FNAME, FCOMMENT: zero-terminated
    if (!(flags & f)) continue;
    while (at < in.size() && b[at] != 0) ++at;
    ++at;
  }
  if (flags & 2) at += 2;  // FHCRC
  if (at >= in.size()) return std::nullopt;
  beast::zlib::inflate_stream zs;
  beast::zlib::z_params zp;
  std::string out(std::max<std::size_t>(in.size() * 4, 4096), '\0');
  zp.next_in = in.data() + at;
  zp.avail_in = in.size() - at;
  zp.next_out = out.data();
  zp.avail_out = out.size();
  for (;;) {
    error_code ec;
    zs.write(zp, beast::zlib::Flush::sync, ec);
    if (ec == beast::zlib::error::end_of_stream) break;
    if (ec && ec != beast::zlib::error::need_buffers) return std::nullopt;
    if (zp.avail_out == 0) {
      if (out.size() >= (16u << 20)) return std::nullopt;
      const std::size_t used = out.size();
      out.resize(used * 2);
      zp.next_out = out.data() + used;
      zp.avail_out = out.size() - used;
      continue;
    }
    if (zp.avail_in == 0) return std::nullopt;  // truncated
  }
  out.resize(zp.total_out);
  return out;
}

// A binary message (https://dev.splunk.com/observability/docs/signalflow/messages/websocket_response_messages,
// binary encoding): a 20-byte header (version 1, message type, flags: 1 compressed with gzip,
// 2 JSON; reserved; the channel name, NUL-padded to 16 bytes), then for a data message (type 5)
// the logical timestamp (8 bytes), the count (4) and per point its value type (1: long,
// 2: double, 3: int; 0: none), its TSID (8) and its value (8), all big-endian.
void on_binary(computation& c, std::string_view msg) {
  auto fail = [&](std::string why) { c.failure = failed("error executing query: " + why); };
  if (msg.size() <= 20) return fail(fmt::format("expected SignalFlow message of at least 21 bytes, got {} bytes", msg.size()));
  const auto* h = reinterpret_cast<const unsigned char*>(msg.data());
  if (h[0] != 1) return fail(fmt::format("unsupported SignalFlow binary message version {}", h[0]));
  const unsigned type = h[1];
  const unsigned flags = h[2];
  std::string_view channel(msg.data() + 4, 16);
  channel = channel.substr(0, channel.find('\0'));
  if (channel != channel_name) return;
  std::string body(msg.substr(20));
  if (flags & 1) {
    auto inflated = gunzip(body);
    if (!inflated) return fail("could not decompress a SignalFlow message");
    body = std::move(*inflated);
  }
  if (flags & 2) return on_json(c, body);
  if (type != 5) return;  // only data messages are binary-encoded
  const auto* d = reinterpret_cast<const unsigned char*>(body.data());
  if (body.size() < 12) return fail("truncated SignalFlow data message");
  const std::uint64_t count = big_endian(d + 8, 4);
  if (body.size() < 12 + 17 * count) return fail("truncated SignalFlow data message");
  for (std::uint64_t i = 0; i < count; ++i) {
    const unsigned char* e = d + 12 + 17 * i;
    point p;
    p.tsid.assign(reinterpret_cast<const char*>(e + 1), 8);
    const std::uint64_t raw = big_endian(e + 9, 8);
    switch (e[0]) {
      case 1: p.value = static_cast<double>(static_cast<std::int64_t>(raw)); break;
      case 2: p.value = std::bit_cast<double>(raw); break;
      // signalflow-client-go reads an int from the value's first four bytes.
      case 3: p.value = static_cast<double>(static_cast<std::int32_t>(big_endian(e + 9, 4))); break;
      default: break;  // no value
    }
    c.points.push_back(std::move(p));
  }
}

// Flagger's choice among the computation's points.
core::metric_observation judge(const computation& c) {
  std::vector<const point*> valued;
  std::set<std::string> series;
  for (const point& p : c.points) {
    if (!p.value) continue;
    valued.push_back(&p);
    series.insert(p.tsid);
  }
  if (valued.empty()) return no_values("invalid response: no values found");
  if (series.size() > 1) return failed("invalid response: query returned multiple values");
  return value(*valued.back()->value);
}

struct stream_url {
  bool tls = false;
  std::string host;
  std::string port;
  std::string target;  // path (and query) of the connect endpoint
};

template <class Next>
asio::awaitable<core::metric_observation> converse(websocket::stream<Next>& ws, const stream_url& u,
                                                   const std::string& token, std::string program,
                                                   std::int64_t start_ms, std::int64_t stop_ms) {
  ws.read_message_max(16u << 20);
  ws.set_option(websocket::stream_base::decorator(
      [](websocket::request_type& r) { r.set(beast::http::field::user_agent, "canaryd"); }));
  const bool default_port = u.port == (u.tls ? "443" : "80");
  const std::string host = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
  const std::string host_header = default_port ? host : host + ":" + u.port;
  websocket::response_type res;
  // (No temporaries inside co_await expressions: GCC 12 destroys some of them twice.)
  auto [hec] = co_await ws.async_handshake(res, host_header, u.target, use_tuple);
  if (hec) {
    std::string why = hec.message();
    if (hec == websocket::error::upgrade_declined) why = fmt::format("bad handshake: {} {}", res.result_int(), res.body());
    co_return failed(fmt::format("error executing query: could not connect Signalflow websocket: {}", why));
  }
  ws.text(true);
  computation c;
  beast::flat_buffer buf;
  auto send = [&](const json::object& m) -> asio::awaitable<error_code> {
    const std::string text = json::serialize(m);
    auto [wec, n] = co_await ws.async_write(asio::buffer(text), use_tuple);
    co_return wec;
  };
  // Reads one message into `c`; an error is the failure.
  auto receive = [&]() -> asio::awaitable<void> {
    buf.clear();
    auto [rec, n] = co_await ws.async_read(buf, use_tuple);
    if (rec == websocket::error::closed) {
      c.failure = failed(fmt::format("error executing query: websocket closed: {} {}", static_cast<unsigned>(ws.reason().code),
                                     std::string(ws.reason().reason.data(), ws.reason().reason.size())));
      co_return;
    }
    if (rec) {
      c.failure = failed(fmt::format("error executing query: {}", rec.message()));
      co_return;
    }
    const std::string_view text(static_cast<const char*>(buf.data().data()), buf.size());
    if (ws.got_text()) {
      on_json(c, text);
    } else {
      on_binary(c, text);
    }
  };
  json::object authenticate;
  authenticate["type"] = "authenticate";
  authenticate["token"] = token;
  if (auto ec = co_await send(authenticate))
    co_return failed(fmt::format("error executing query: failed to send auth: {}", ec.message()));
  while (!c.authenticated && !c.failure) co_await receive();
  if (c.failure) co_return *c.failure;
  json::object execute;
  execute["type"] = "execute";
  execute["program"] = std::move(program);
  execute["channel"] = std::string(channel_name);
  execute["start"] = start_ms;
  execute["stop"] = stop_ms;
  execute["resolution"] = 0;
  execute["maxDelay"] = 0;
  execute["immediate"] = true;
  execute["timezone"] = std::string();
  if (auto ec = co_await send(execute)) co_return failed(fmt::format("error executing query: {}", ec.message()));
  while (!c.ended && !c.failure) co_await receive();
  if (c.failure) co_return *c.failure;
  // The computation ended: say goodbye (the server answers the close), briefly.
  asio::steady_timer t(co_await asio::this_coro::executor, close_timeout);
  co_await (ws.async_close(websocket::close_code::normal, use_tuple) || t.async_wait(use_tuple));
  co_return judge(c);
}

// Closes `s` when `t` fires, so that every operation on it ends (Beast 1.81's WebSocket
// operations do not all honour per-operation cancellation).
asio::awaitable<void> deadline(asio::steady_timer& t, tcp::socket& s) {
  auto [ec] = co_await t.async_wait(use_tuple);
  if (ec) co_return;
  error_code ignored;
  s.close(ignored);
}

class splunk_provider final : public metric_provider {
 public:
  splunk_provider(provider_env& env, std::string stream_url, std::string validation_url, std::string token,
                  std::int64_t from_delta_ms)
      : env_(env), stream_url_(std::move(stream_url)), validation_url_(std::move(validation_url)),
        token_(std::move(token)), from_delta_ms_(from_delta_ms) {}

  asio::awaitable<core::metric_observation> run_query(std::string query) override {
    // path.Join(<stream URL path>, "connect"), as signalflow-client-go dials it.
    const std::string connect_url = stream_url_ + "/connect";
    auto url = boost::urls::parse_uri(connect_url);  // a view of connect_url
    if (!url || (url->scheme() != "ws" && url->scheme() != "wss") || url->host().empty())
      co_return failed(fmt::format("error creating signalflow client: {} is not a ws:// or wss:// URL", stream_url_));
    stream_url u;
    u.tls = url->scheme() == "wss";
    u.host = std::string(url->host_address());
    u.port = url->has_port() ? std::string(url->port()) : u.tls ? "443" : "80";
    u.target = std::string(url->encoded_path());
    while (u.target.find("//") != std::string::npos) u.target.replace(u.target.find("//"), 2, "/");
    if (url->has_query()) u.target += "?" + std::string(url->encoded_query());

    const auto now_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(env_.now().time_since_epoch()).count();
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex, timeout);
    tcp::socket sock(ex);
    auto exchange = [&]() -> asio::awaitable<core::metric_observation> {
      // gorilla/websocket's default dialer: the proxy of ws's http or wss's https, always CONNECT.
      const std::string proxy =
          core::proxy_for(process_proxy_environment(), u.tls ? "https" : "http", u.host, u.port);
      std::optional<http::origin> via;
      if (!proxy.empty()) {
        auto o = http::parse_origin(proxy);
        if (!o) co_return failed(fmt::format("error executing query: invalid proxy URL {}", proxy));
        via = *o;
      }
      const std::string dial_host = via ? via->host : u.host;
      const std::string dial_port = via ? (via->port.empty() ? "80" : via->port) : u.port;
      tcp::resolver resolver(ex);
      auto [rec, endpoints] = co_await resolver.async_resolve(dial_host, dial_port, use_tuple);
      if (rec) co_return failed(fmt::format("error executing query: could not connect Signalflow websocket: {}", rec.message()));
      auto [cec, ep] = co_await asio::async_connect(sock, endpoints, use_tuple);
      if (cec) co_return failed(fmt::format("error executing query: could not connect Signalflow websocket: {}", cec.message()));
      if (via) {
        const std::string host = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
        const std::string authority = host + ":" + u.port;
        if (auto tec = co_await http::open_tunnel(sock, authority))
          co_return failed(fmt::format("error executing query: proxy {}: {}", proxy, tec.message()));
      }
      if (!u.tls) {
        websocket::stream<tcp::socket&> ws(sock);
        co_return co_await converse(ws, u, token_, std::move(query), now_ms - from_delta_ms_, now_ms);
      }
      http::tls_client_config tc;
      auto ctx = http::make_client_context(tc);
      if (!ctx) co_return failed("error executing query: TLS setup failed");
      websocket::stream<asio::ssl::stream<tcp::socket&>> ws(sock, *ctx);
      if (auto ec = http::set_client_identity(ws.next_layer().native_handle(), u.host, true))
        co_return failed(fmt::format("error executing query: TLS server name {}: {}", u.host, ec.message()));
      auto [hec] = co_await ws.next_layer().async_handshake(asio::ssl::stream_base::client, use_tuple);
      if (hec)
        co_return failed(fmt::format("error executing query: could not connect Signalflow websocket: tls: {} ({})",
                                     hec.message(), http::verify_result_text(ws.next_layer().native_handle())));
      co_return co_await converse(ws, u, token_, std::move(query), now_ms - from_delta_ms_, now_ms);
    };
    auto r = co_await (exchange() || deadline(timer, sock));
    if (r.index() == 1) co_return failed(fmt::format("error executing query: no answer within {}s", timeout.count()));
    timer.cancel();
    co_return std::get<0>(std::move(r));
  }

  asio::awaitable<std::string> is_online() override {
    auto u = boost::urls::parse_uri(validation_url_);
    if (!u || u->host().empty()) co_return fmt::format("error http.NewRequest: {} is not a valid URL", validation_url_);
    http::request req;
    req.target = std::string(u->encoded_path()) + (u->has_query() ? "?" + std::string(u->encoded_query()) : "");
    req.headers.push_back({"X-SF-Token", token_});
    const std::string base = std::string(u->scheme()) + "://" + std::string(u->encoded_authority());
    auto res = co_await env_.send(base, false, std::move(req), timeout);
    co_return health_verdict(res);
  }

 private:
  provider_env& env_;
  std::string stream_url_;
  std::string validation_url_;
  std::string token_;
  std::int64_t from_delta_ms_;
};

}  // namespace

provider_result make_splunk_provider(provider_env& env, const provider_config& cfg) {
  const std::string& address = cfg.spec.address;
  if (address.empty()) return std::string("splunk endpoint is not set");
  // Flagger's textual rewrites, kept as they are (an "api" or "http" elsewhere in the address
  // is replaced too, as Flagger replaces it).
  std::string stream_url = replace_first(replace_first(address + "/v2/signalflow", "http", "ws"), "api", "stream");
  std::string validation_url = replace_first(replace_first(address + "/v2/metric?limit=1", "ws", "http"), "stream", "api");
  const auto* token = credential(cfg, "sf_token_key");
  if (!token) return std::string("splunk credentials does not contain sf_token_key");
  auto interval = parse_interval(cfg.interval);
  if (!interval) return interval.error();
  // int64(10 * md.Milliseconds()), as Flagger computes it.
  const std::int64_t from_delta_ms = 10 * interval->count();
  return std::make_unique<splunk_provider>(env, std::move(stream_url), std::move(validation_url), *token,
                                           from_delta_ms);
}

}  // namespace canaryd
