#include "k8s/http_client.hpp"

#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <list>
#include <optional>
#include <variant>
#include <vector>

#include "k8s/http_tunnel.hpp"
#include "k8s/log.hpp"
#include "k8s/tls_context.hpp"

namespace canaryd::http {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using namespace asio::experimental::awaitable_operators;

// http_tunnel.hpp
asio::awaitable<error_code> open_tunnel(tcp::socket& s, const std::string& authority) {
  constexpr auto use_tuple_ = asio::as_tuple(asio::use_awaitable);
  bhttp::request<bhttp::empty_body> req{bhttp::verb::connect, authority, 11};
  req.set(bhttp::field::host, authority);
  auto [wec, written] = co_await bhttp::async_write(s, req, use_tuple_);
  if (wec) co_return make_error_code(errc::connect_failed);
  beast::flat_buffer buf;
  bhttp::response_parser<bhttp::empty_body> p;
  p.skip(true);  // a 2xx answer to CONNECT has no body: the tunnel starts after the head
  auto [rec, read] = co_await bhttp::async_read_header(s, buf, p, use_tuple_);
  if (rec) {
    log::debug("http proxy CONNECT failed", {{"authority", authority}, {"error", rec.message()}});
    co_return make_error_code(errc::connect_failed);
  }
  const unsigned status = p.get().result_int();
  if (status < 200 || status > 299) {
    log::warn("http proxy refused CONNECT", {{"authority", authority}, {"status", status}});
    co_return make_error_code(errc::connect_failed);
  }
  // The origin speaks first only after our ClientHello: any byte here is the proxy's mistake.
  if (buf.size() != 0) co_return make_error_code(errc::protocol_error);
  co_return error_code{};
}

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
using tls_stream = asio::ssl::stream<tcp::socket>;
using steady = std::chrono::steady_clock;
// Idle pooled connections older than this are not reused (Go's http.Transport uses 90 s; the
// servers we talk to close theirs after 30 s or more, and a stale one costs a retry).
constexpr auto max_idle_age = std::chrono::seconds(25);

tcp::socket& tcp_of(tcp::socket& s) { return s; }
tcp::socket& tcp_of(tls_stream& s) { return s.next_layer(); }

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}
bool has_ctl(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 && c != '\t') return true;
  return false;
}

// A request this layer refuses to put on the wire (it would split into two messages).
bool valid_request(const request& r) {
  if (r.method.empty() || !std::all_of(r.method.begin(), r.method.end(), is_token_char)) return false;
  // origin-form ("/path?query"), asterisk-form ("*"), or absolute-form ("http://host/path"),
  // which a forward proxy needs (RFC 9112 §3.2.2; alert providers with spec.proxy).
  const bool absolute = r.target.starts_with("http://") || r.target.starts_with("https://");
  if (r.target.empty() || (r.target[0] != '/' && r.target != "*" && !absolute)) return false;
  for (char c : r.target)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
  for (const auto& h : r.headers) {
    if (h.name.empty() || !std::all_of(h.name.begin(), h.name.end(), is_token_char) || has_ctl(h.value)) return false;
  }
  return true;
}

bool is_parse_error(const error_code& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
         ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message && ec != bhttp::error::need_buffer;
}

// What a failed read or write of an exchange means to the caller.
error_code map_io_error(const error_code& ec, bool shut_down) {
  if (shut_down) return errc::cancelled;
  if (ec == bhttp::error::body_limit || ec == bhttp::error::buffer_overflow) return errc::body_too_large;
  if (is_parse_error(ec)) return errc::protocol_error;
  if (ec == asio::error::operation_aborted) return errc::cancelled;
  return errc::closed;
}

// A reused keep-alive connection that the server had already closed: nothing of a response came.
bool looks_stale(const error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::ssl::error::stream_truncated;
}

struct connection_base {
  virtual void close_socket() noexcept = 0;

 protected:
  ~connection_base() = default;
};

template <class Stream>
struct connection;

// State shared by the client object, its in-flight calls and its open streams, so that none of
// them dangles when another goes first. One thread: no locking.
template <class Stream>
struct core {
  asio::any_io_executor ex;
  origin where;
  client_options opts;
  std::string host_header;  // "host:port" (brackets for IPv6), port omitted when default
  std::string server_name;  // SNI / name to verify
  std::optional<asio::ssl::context> ssl;
  // `live` is declared before `idle`: idle connections unregister from it when destroyed.
  std::list<connection_base*> live;  // every open connection: idle, in a call, or in a stream
  std::vector<std::unique_ptr<connection<Stream>>> idle;
  bool shut_down = false;

  std::unique_ptr<connection<Stream>> take_idle();
  void put_idle(std::unique_ptr<connection<Stream>> c);
  void shutdown() noexcept {
    shut_down = true;
    idle.clear();
    for (auto* c : live) c->close_socket();
  }
};

template <class Stream>
struct connection final : connection_base {
  template <class... A>
  connection(core<Stream>& c, A&&... stream_args) : owner(c), stream(std::forward<A>(stream_args)...) {
    self = owner.live.insert(owner.live.end(), this);
  }
  ~connection() { owner.live.erase(self); }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  void close_socket() noexcept override {
    error_code ignored;
    tcp_of(stream).close(ignored);
  }

  // A quick look at an idle socket: has the server closed it meanwhile? Bytes waiting on a TLS
  // connection may be a close_notify or a session ticket, so only a plain one with data is dead.
  bool looks_alive() {
    auto& s = tcp_of(stream);
    if (!s.is_open()) return false;
    char byte;
    auto n = ::recv(s.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
    return std::is_same_v<Stream, tls_stream>;
  }

  core<Stream>& owner;
  Stream stream;
  beast::flat_buffer buffer;
  bool reused = false;
  steady::time_point idle_since{};
  std::list<connection_base*>::iterator self;
};

template <class Stream>
std::unique_ptr<connection<Stream>> core<Stream>::take_idle() {
  while (!idle.empty()) {
    auto c = std::move(idle.back());
    idle.pop_back();
    if (steady::now() - c->idle_since < max_idle_age && c->looks_alive()) return c;
  }
  return nullptr;
}

template <class Stream>
void core<Stream>::put_idle(std::unique_ptr<connection<Stream>> c) {
  if (shut_down || idle.size() >= opts.max_idle_connections) return;  // destroying it closes it
  c->reused = true;
  c->idle_since = steady::now();
  idle.push_back(std::move(c));
}

template <class Stream>
using conn_ptr = std::unique_ptr<connection<Stream>>;

// Resolve, connect (through a CONNECT tunnel if configured) and (for TLS) handshake. No
// deadline of its own: the caller's applies.
template <class Stream>
asio::awaitable<boost::system::result<conn_ptr<Stream>>> connect(std::shared_ptr<core<Stream>> c) {
  conn_ptr<Stream> conn;
  if constexpr (std::is_same_v<Stream, tls_stream>) {
    conn = std::make_unique<connection<Stream>>(*c, c->ex, *c->ssl);
    if (auto ec = set_client_identity(conn->stream.native_handle(), c->server_name, c->opts.tls.verify)) {
      log::warn("TLS server name not usable", {{"host", c->server_name}});
      co_return ec;
    }
  } else {
    conn = std::make_unique<connection<Stream>>(*c, c->ex);
  }
  const bool tunnel = std::is_same_v<Stream, tls_stream> && c->opts.connect_proxy.has_value();
  const origin& dial = tunnel ? *c->opts.connect_proxy : c->where;
  const std::string dial_port = !dial.port.empty() ? dial.port : dial.scheme == "https" ? "443" : "80";
  tcp::resolver resolver(c->ex);
  auto [rec, endpoints] = co_await resolver.async_resolve(dial.host, dial_port, use_tuple);
  if (c->shut_down) co_return errc::cancelled;
  if (rec) {
    log::debug("http resolve failed", {{"host", dial.host}, {"error", rec.message()}});
    co_return errc::connect_failed;
  }
  auto [cec, ep] = co_await asio::async_connect(tcp_of(conn->stream), endpoints, use_tuple);
  if (c->shut_down) co_return errc::cancelled;
  if (cec) {
    log::debug("http connect failed", {{"host", dial.host}, {"port", dial_port}, {"error", cec.message()}});
    co_return errc::connect_failed;
  }
  error_code ignored;
  tcp_of(conn->stream).set_option(tcp::no_delay(true), ignored);
  if (tunnel) {
    const std::string host = c->where.host.find(':') != std::string::npos ? "[" + c->where.host + "]" : c->where.host;
    auto tec = co_await open_tunnel(tcp_of(conn->stream), host + ":" + c->where.port);
    if (c->shut_down) co_return errc::cancelled;
    if (tec) co_return tec;
  }
  if constexpr (std::is_same_v<Stream, tls_stream>) {
    auto [hec] = co_await conn->stream.async_handshake(asio::ssl::stream_base::client, use_tuple);
    if (c->shut_down) co_return errc::cancelled;
    if (hec) {
      log::warn("TLS handshake failed", {{"host", c->where.host},
                                          {"port", c->where.port},
                                          {"error", hec.message()},
                                          {"verify", verify_result_text(conn->stream.native_handle())}});
      co_return errc::tls_failed;
    }
  }
  co_return conn;
}

using wire_request = bhttp::request<bhttp::string_body>;

// Writes `m` on a pooled or new connection and reads the response head into `p` (emplaced
// fresh per attempt). Retries once on a new connection when a reused one turns out to have
// been closed by the server before any byte of the response.
template <class Stream, class Body>
asio::awaitable<boost::system::result<conn_ptr<Stream>>> write_and_read_head(
    std::shared_ptr<core<Stream>> c, const wire_request& m, std::optional<bhttp::response_parser<Body>>& p,
    std::optional<std::uint64_t> body_limit) {
  for (int attempt = 0;; ++attempt) {
    auto conn = c->take_idle();
    if (!conn) {
      auto r = co_await connect(c);
      if (!r) co_return r.error();
      conn = std::move(*r);
    }
    const bool may_retry = conn->reused && attempt == 0;
    auto [wec, wn] = co_await bhttp::async_write(conn->stream, m, use_tuple);
    if (wec) {
      if (may_retry && !c->shut_down && looks_stale(wec)) continue;
      co_return map_io_error(wec, c->shut_down);
    }
    p.emplace();
    if (body_limit) {
      p->body_limit(*body_limit);
    } else {
      p->body_limit(boost::none);
    }
    if (m.method() == bhttp::verb::head) p->skip(true);
    auto [rec, rn] = co_await bhttp::async_read_header(conn->stream, conn->buffer, *p, use_tuple);
    if (rec) {
      if (may_retry && !c->shut_down && !p->got_some() && looks_stale(rec)) continue;
      co_return map_io_error(rec, c->shut_down);
    }
    co_return conn;
  }
}

template <class Fields>
void copy_head(const bhttp::response_header<Fields>& h, response& out) {
  out.status = static_cast<int>(h.result_int());
  for (const auto& f : h) out.headers.push_back(header{std::string(f.name_string()), std::string(f.value())});
}

// Body-less responses: HEAD, 1xx, 204, 304.
template <class Stream>
asio::awaitable<boost::system::result<response>> exchange(std::shared_ptr<core<Stream>> c, const wire_request& m) {
  std::optional<bhttp::response_parser<bhttp::string_body>> p;
  auto conn = co_await write_and_read_head(c, m, p, std::optional<std::uint64_t>(c->opts.max_body_bytes));
  if (!conn) co_return conn.error();
  if (!p->is_done()) {
    auto [ec, n] = co_await bhttp::async_read((*conn)->stream, (*conn)->buffer, *p, use_tuple);
    if (ec) co_return map_io_error(ec, c->shut_down);
  }
  response res;
  copy_head(p->get(), res);
  res.body = std::move(p->get().body());
  if (p->get().keep_alive()) c->put_idle(std::move(*conn));
  co_return res;
}

// The request as it goes on the wire, with Host, User-Agent and Content-Length defaulted.
template <class Stream>
wire_request to_wire(const core<Stream>& c, request& req) {
  wire_request m;
  m.version(11);
  m.method_string(req.method);
  m.target(req.target);
  for (const auto& h : req.headers) {
    if (beast::iequals(h.name, "content-length") || beast::iequals(h.name, "transfer-encoding")) continue;
    m.insert(h.name, h.value);
  }
  if (m.find(bhttp::field::host) == m.end()) m.set(bhttp::field::host, c.host_header);
  if (m.find(bhttp::field::user_agent) == m.end() && !c.opts.user_agent.empty())
    m.set(bhttp::field::user_agent, c.opts.user_agent);
  const bool needs_length = !req.body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "PATCH";
  m.body() = std::move(req.body);
  if (needs_length) m.content_length(m.body().size());
  return m;
}

template <class T>
bool timer_won_or_cancelled(const T& r, bool& cancelled) {
  if (r.index() != 1) return false;
  cancelled = std::get<0>(std::get<1>(r)) == asio::error::operation_aborted;
  return true;
}

template <class Stream>
asio::awaitable<boost::system::result<response>> send_within(std::shared_ptr<core<Stream>> c, request req,
                                                             std::chrono::milliseconds timeout) {
  if (c->shut_down) co_return errc::cancelled;
  if (!valid_request(req)) {
    log::warn("http request refused: bad method, target or header", {{"method", req.method}, {"target", req.target}});
    co_return errc::bad_config;
  }
  const auto m = to_wire(*c, req);
  asio::steady_timer timer(c->ex, timeout);
  try {
    auto r = co_await (exchange(c, m) || timer.async_wait(use_tuple));
    bool cancelled = false;
    if (timer_won_or_cancelled(r, cancelled)) co_return cancelled || c->shut_down ? errc::cancelled : errc::timeout;
    co_return std::move(std::get<0>(r));
  } catch (const boost::system::system_error& e) {
    // The caller cancelled this call (asio per-operation cancellation).
    if (e.code() != asio::error::operation_aborted) throw;
  }
  co_return errc::cancelled;
}

template <class Stream>
class stream_impl final : public body_stream {
 public:
  explicit stream_impl(std::shared_ptr<core<Stream>> c) : c_(std::move(c)) {}
  ~stream_impl() override = default;

  const response& head() const noexcept override { return head_; }

  asio::awaitable<boost::system::result<std::string>> read_some(std::chrono::milliseconds idle) override {
    if (failed_) co_return failed_;
    if (ended_) co_return std::string();
    asio::steady_timer timer(c_->ex, idle);
    try {
      auto r = co_await (read_piece() || timer.async_wait(use_tuple));
      bool cancelled = false;
      if (timer_won_or_cancelled(r, cancelled)) co_return fail(cancelled || c_->shut_down ? errc::cancelled : errc::timeout);
      auto& piece = std::get<0>(r);
      if (!piece) co_return fail(piece.error());
      co_return std::move(*piece);
    } catch (const boost::system::system_error& e) {
      if (e.code() != asio::error::operation_aborted) throw;
    }
    co_return fail(errc::cancelled);
  }

  void close() noexcept override {
    if (conn_) conn_->close_socket();  // a pending read fails; the object goes with the stream
    if (!ended_ && !failed_) failed_ = errc::closed;
  }

  // Declared first so that it outlives conn_, which unregisters from it.
  std::shared_ptr<core<Stream>> c_;
  // Opening: the connection and a parser with the response head read.
  conn_ptr<Stream> conn_;
  std::optional<bhttp::response_parser<bhttp::buffer_body>> parser_;
  response head_;

  void started() {
    copy_head(parser_->get(), head_);
    if (parser_->is_done()) finish();
  }

 private:
  error_code fail(error_code ec) {
    failed_ = ec;
    if (conn_) conn_->close_socket();
    return ec;
  }

  void finish() {
    ended_ = true;
    if (parser_->get().keep_alive() && conn_) c_->put_idle(std::move(conn_));
  }

  // The next decoded body bytes; empty at the end of the body.
  asio::awaitable<boost::system::result<std::string>> read_piece() {
    std::string out;
    char buf[16384];
    while (out.empty()) {
      if (parser_->is_done()) {
        finish();
        break;
      }
      parser_->get().body().data = buf;
      parser_->get().body().size = sizeof buf;
      auto [ec, n] = co_await bhttp::async_read_some(conn_->stream, conn_->buffer, *parser_, use_tuple);
      if (ec == bhttp::error::need_buffer) ec = {};
      if (ec) co_return map_io_error(ec, c_->shut_down);
      out.append(buf, sizeof buf - parser_->get().body().size);
    }
    co_return out;
  }

  bool ended_ = false;
  error_code failed_;
};

template <class Stream>
asio::awaitable<error_code> open_into(std::shared_ptr<core<Stream>> c, const wire_request& m, stream_impl<Stream>& s) {
  auto conn = co_await write_and_read_head(c, m, s.parser_, std::optional<std::uint64_t>());
  if (!conn) co_return conn.error();
  s.conn_ = std::move(*conn);
  co_return error_code{};
}

template <class Stream>
asio::awaitable<boost::system::result<std::unique_ptr<body_stream>>> open_within(
    std::shared_ptr<core<Stream>> c, request req, std::chrono::milliseconds timeout) {
  if (c->shut_down) co_return errc::cancelled;
  if (!valid_request(req)) {
    log::warn("http request refused: bad method, target or header", {{"method", req.method}, {"target", req.target}});
    co_return errc::bad_config;
  }
  const auto m = to_wire(*c, req);
  auto s = std::make_unique<stream_impl<Stream>>(c);
  asio::steady_timer timer(c->ex, timeout);
  try {
    auto r = co_await (open_into(c, m, *s) || timer.async_wait(use_tuple));
    bool cancelled = false;
    if (timer_won_or_cancelled(r, cancelled)) co_return cancelled || c->shut_down ? errc::cancelled : errc::timeout;
    if (auto ec = std::get<0>(r)) co_return ec;
    s->started();
    co_return std::unique_ptr<body_stream>(std::move(s));
  } catch (const boost::system::system_error& e) {
    if (e.code() != asio::error::operation_aborted) throw;
  }
  co_return errc::cancelled;
}

template <class Stream>
class client_impl final : public client {
 public:
  explicit client_impl(std::shared_ptr<core<Stream>> c) : c_(std::move(c)) {}
  ~client_impl() override { c_->shutdown(); }

  asio::awaitable<boost::system::result<response>> send(request req, std::chrono::milliseconds timeout) override {
    return send_within(c_, std::move(req), timeout);
  }
  asio::awaitable<boost::system::result<std::unique_ptr<body_stream>>> open_stream(
      request req, std::chrono::milliseconds head_timeout) override {
    return open_within(c_, std::move(req), head_timeout);
  }
  void shutdown() noexcept override { c_->shutdown(); }

 private:
  std::shared_ptr<core<Stream>> c_;
};

template <class Stream>
std::shared_ptr<core<Stream>> make_core(asio::any_io_executor ex, origin o, client_options opts) {
  auto c = std::make_shared<core<Stream>>();
  c->ex = std::move(ex);
  const bool default_port = (o.scheme == "https" && o.port == "443") || (o.scheme == "http" && o.port == "80");
  c->host_header = o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host;
  if (!default_port) c->host_header += ":" + o.port;
  c->server_name = opts.tls.server_name.empty() ? o.host : opts.tls.server_name;
  c->where = std::move(o);
  c->opts = std::move(opts);
  return c;
}

}  // namespace

boost::system::result<origin> parse_origin(std::string_view url) {
  origin o;
  const auto sep = url.find("://");
  if (sep == std::string_view::npos) return errc::bad_config;
  o.scheme.clear();
  for (char ch : url.substr(0, sep)) o.scheme.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
  if (o.scheme != "http" && o.scheme != "https") return errc::bad_config;
  auto rest = url.substr(sep + 3);
  const auto authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.empty() || authority.find('@') != std::string_view::npos) return errc::bad_config;
  std::string_view host, port;
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return errc::bad_config;
    host = authority.substr(1, close - 1);
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return errc::bad_config;
      port = after.substr(1);
    }
  } else {
    const auto colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (host.empty() || has_ctl(host) || host.find_first_of(" \\") != std::string_view::npos) return errc::bad_config;
  if (!port.empty()) {
    unsigned n = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
    if (ec != std::errc() || end != port.data() + port.size() || n == 0 || n > 65535) return errc::bad_config;
  }
  o.host = std::string(host);
  o.port = port.empty() ? (o.scheme == "https" ? "443" : "80") : std::string(port);
  return o;
}

boost::system::result<std::unique_ptr<client>> make_client(asio::any_io_executor ex, origin o, client_options opts) {
  if (o.scheme != "http" && o.scheme != "https") {
    log::warn("http client: unsupported scheme", {{"scheme", o.scheme}});
    return errc::bad_config;
  }
  if (o.host.empty()) {
    log::warn("http client: empty host");
    return errc::bad_config;
  }
  if (o.port.empty()) o.port = o.scheme == "https" ? "443" : "80";
  if (o.scheme == "http") {
    auto c = make_core<tcp::socket>(std::move(ex), std::move(o), std::move(opts));
    return std::unique_ptr<client>(std::make_unique<client_impl<tcp::socket>>(std::move(c)));
  }
  auto ctx = make_client_context(opts.tls);
  if (!ctx) return ctx.error();
  auto c = make_core<tls_stream>(std::move(ex), std::move(o), std::move(opts));
  c->ssl.emplace(std::move(*ctx));
  return std::unique_ptr<client>(std::make_unique<client_impl<tls_stream>>(std::move(c)));
}

}  // namespace canaryd::http
