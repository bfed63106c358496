#include "k8s/http_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <charconv>
#include <list>
#include <variant>

#include "k8s/log.hpp"
#include "k8s/tls_context.hpp"

namespace canaryd::http {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t header_limit = 64 * 1024;

tcp::socket& tcp_of(tcp::socket& s) { return s; }
tcp::socket& tcp_of(asio::ssl::stream<tcp::socket>& s) { return s.next_layer(); }

std::string format_endpoint(const tcp::endpoint& ep) {
  const auto a = ep.address();
  if (a.is_v6()) return "[" + a.to_string() + "]:" + std::to_string(ep.port());
  return a.to_string() + ":" + std::to_string(ep.port());
}

boost::system::result<tcp::endpoint> parse_listen(std::string_view s) {
  const auto colon = s.rfind(':');
  if (colon == std::string_view::npos) return errc::bad_config;
  std::string_view host = s.substr(0, colon), port_text = s.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  auto [end, perr] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (perr != std::errc() || end != port_text.data() + port_text.size() || port > 65535 || port_text.empty())
    return errc::bad_config;
  asio::ip::address addr;
  if (host.empty()) {
    addr = asio::ip::address_v4::any();
  } else if (host == "localhost") {
    addr = asio::ip::address_v4::loopback();
  } else {
    error_code ec;
    addr = asio::ip::make_address(std::string(host), ec);
    if (ec) return errc::bad_config;
  }
  return tcp::endpoint(addr, static_cast<unsigned short>(port));
}

// The timeout branch of `op || timer` as an error, or the operation's own error.
template <class Tuple, class Timer>
error_code outcome(const std::variant<Tuple, Timer>& r) {
  if (r.index() == 1) return errc::timeout;
  return std::get<0>(std::get<0>(r));
}

class connection_base {
 public:
  virtual void close_now(errc reason) noexcept = 0;

 protected:
  ~connection_base() = default;
};

// Shared by the server object and every coroutine it started, so that destroying the server
// while connections still unwind is safe. One thread: no locking.
struct server_state {
  server_state(const asio::any_io_executor& ex, server_options o, handler hd)
      : acceptor(ex), opts(std::move(o)), h(std::move(hd)), slot_freed(ex, asio::steady_timer::time_point::max()) {}
  tcp::acceptor acceptor;
  server_options opts;
  handler h;
  std::optional<asio::ssl::context> ssl;
  std::list<connection_base*> connections;
  std::uint64_t accepted = 0;
  // Connections accepted and not yet finished (counted from the accept, before the connection
  // registers itself), for max_connections.
  std::size_t active = 0;
  asio::steady_timer slot_freed;  // never expires; cancelled when a connection ends, or on stop()
  bool stopped = false;
};

void log_failure(std::string_view what, std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    log::error(what, {{"error", x.what()}});
  } catch (...) {
    log::error(what, {{"error", "unknown exception"}});
  }
}

// One connection: reads requests one after another, calls the handler, and is the handler's
// responder. Lives in the frame of serve_connection(); registered in server_state::connections
// so stop() and drop_connections() can close it.
template <class Stream>
class connection final : public responder, public connection_base {
 public:
  static constexpr bool is_tls = std::is_same_v<Stream, asio::ssl::stream<tcp::socket>>;

  template <class... A>
  connection(std::shared_ptr<server_state> st, peer_info peer, A&&... stream_args)
      : st_(std::move(st)),
        stream_(std::forward<A>(stream_args)...),
        peer_(std::move(peer)),
        closed_signal_(tcp_of(stream_).get_executor(), asio::steady_timer::time_point::max()) {
    self_ = st_->connections.insert(st_->connections.end(), this);
  }
  ~connection() { st_->connections.erase(self_); }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  asio::awaitable<void> run() {
    if constexpr (is_tls) {
      if (!co_await handshake()) co_return close_now(errc::closed);
    }
    while (!closed_) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(header_limit);
      parser.body_limit(st_->opts.max_body_bytes);
      asio::steady_timer timer(executor(), st_->opts.header_timeout);
      auto r = co_await (read_request(parser) || timer.async_wait(use_tuple));
      if (closed_) co_return;
      if (r.index() == 1) {
        log::debug("http connection idle timeout", {{"remote", peer_.address}});
        co_return close_now(errc::closed);
      }
      if (error_code ec = std::get<0>(r)) {
        if (ec == bhttp::error::body_limit) {
          co_await reject(413, "request body too large");
        } else if (ec == bhttp::error::header_limit) {
          co_await reject(431, "request header too large");
        } else if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
                   ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
          log::debug("http malformed request", {{"remote", peer_.address}, {"error", ec.message()}});
          co_await reject(400, "malformed request: " + ec.message());
        }
        co_return close_now(errc::closed);
      }
      co_await handle(parser.get());
      if (closed_) co_return;
      if (!keep_alive_) {
        error_code ignored;
        tcp_of(stream_).shutdown(tcp::socket::shutdown_send, ignored);
        co_return close_now(errc::closed);
      }
    }
  }

  // responder ------------------------------------------------------------------------------

  asio::awaitable<error_code> send(response res) override {
    if (auto ec = may_reply("send")) co_return ec;
    reply_ = reply_state::sent;
    status_ = res.status;
    bhttp::response<bhttp::string_body> m{static_cast<bhttp::status>(res.status), version_};
    for (auto& h : res.headers) {
      if (beast::iequals(h.name, "content-length") || beast::iequals(h.name, "transfer-encoding")) continue;
      if (beast::iequals(h.name, "connection") && beast::iequals(h.value, "close")) keep_alive_ = false;
      m.insert(h.name, h.value);
    }
    const bool bodyless = res.status < 200 || res.status == 204 || res.status == 304;
    if (bodyless) {
      res.body.clear();
    } else {
      m.content_length(res.body.size());
    }
    m.body() = std::move(res.body);
    m.keep_alive(keep_alive_);
    asio::steady_timer timer(executor(), st_->opts.write_timeout);
    error_code ec;
    if (head_) {
      bhttp::response_serializer<bhttp::string_body> sr{m};
      ec = outcome(co_await (bhttp::async_write_header(stream_, sr, use_tuple) || timer.async_wait(use_tuple)));
    } else {
      ec = outcome(co_await (bhttp::async_write(stream_, m, use_tuple) || timer.async_wait(use_tuple)));
    }
    co_return write_failed(ec);
  }

  asio::awaitable<error_code> begin_stream(int status, headers hs) override {
    if (auto ec = may_reply("begin_stream")) co_return ec;
    reply_ = reply_state::streaming;
    status_ = status;
    bhttp::response<bhttp::empty_body> m{static_cast<bhttp::status>(status), version_};
    for (auto& h : hs) {
      if (beast::iequals(h.name, "content-length") || beast::iequals(h.name, "transfer-encoding")) continue;
      if (beast::iequals(h.name, "connection") && beast::iequals(h.value, "close")) keep_alive_ = false;
      m.insert(h.name, h.value);
    }
    m.chunked(true);
    m.keep_alive(keep_alive_);
    bhttp::response_serializer<bhttp::empty_body> sr{m};
    asio::steady_timer timer(executor(), st_->opts.write_timeout);
    co_return write_failed(
        outcome(co_await (bhttp::async_write_header(stream_, sr, use_tuple) || timer.async_wait(use_tuple))));
  }

  asio::awaitable<error_code> write_chunk(std::string_view data) override {
    if (closed_) co_return closed_reason_;
    if (reply_ != reply_state::streaming) co_return misuse("write_chunk outside a stream");
    if (data.empty()) co_return error_code{};  // an empty chunk would end the body
    asio::steady_timer timer(executor(), st_->opts.write_timeout);
    co_return write_failed(outcome(co_await (
        asio::async_write(stream_, bhttp::make_chunk(asio::buffer(data)), use_tuple) || timer.async_wait(use_tuple))));
  }

  asio::awaitable<error_code> end_stream() override {
    if (closed_) co_return closed_reason_;
    if (reply_ != reply_state::streaming) co_return misuse("end_stream outside a stream");
    reply_ = reply_state::ended;
    asio::steady_timer timer(executor(), st_->opts.write_timeout);
    co_return write_failed(outcome(
        co_await (asio::async_write(stream_, bhttp::make_chunk_last(), use_tuple) || timer.async_wait(use_tuple))));
  }

  void abort() noexcept override { close_now(errc::closed); }
  bool closed() const noexcept override { return closed_; }

  asio::awaitable<void> wait_closed() override {
    if (closed_) co_return;
    co_await closed_signal_.async_wait(use_tuple);
  }

  void close_now(errc reason) noexcept override {
    if (closed_) return;
    closed_ = true;
    closed_reason_ = reason;
    error_code ignored;
    tcp_of(stream_).close(ignored);
    closed_signal_.cancel();
  }

 private:
  enum class reply_state { none, sent, streaming, ended };

  asio::any_io_executor executor() { return tcp_of(stream_).get_executor(); }

  asio::awaitable<bool> handshake() {
    asio::steady_timer timer(executor(), st_->opts.header_timeout);
    error_code ec =
        outcome(co_await (stream_.async_handshake(asio::ssl::stream_base::server, use_tuple) || timer.async_wait(use_tuple)));
    if (ec) {
      log::debug("tls handshake failed", {{"remote", peer_.address},
                                          {"error", ec.message()},
                                          {"verify", verify_result_text(stream_.native_handle())}});
      co_return false;
    }
    auto subject = verified_peer_subject(stream_.native_handle());
    if (subject.verified) {
      peer_.cert_common_name = std::move(subject.common_name);
      peer_.cert_organizations = std::move(subject.organizations);
    }
    co_return true;
  }

  // Reads one request (head, then body), answering "Expect: 100-continue" in between.
  asio::awaitable<error_code> read_request(bhttp::request_parser<bhttp::string_body>& parser) {
    auto [ec, n] = co_await bhttp::async_read_header(stream_, buffer_, parser, use_tuple);
    if (ec) co_return ec;
    const auto& m = parser.get();
    if (auto it = m.find(bhttp::field::expect); it != m.end() && beast::iequals(it->value(), "100-continue")) {
      bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, m.version()};
      auto [wec, wn] = co_await bhttp::async_write(stream_, cont, use_tuple);
      if (wec) co_return wec;
    }
    if (parser.is_done()) co_return error_code{};
    auto [bec, bn] = co_await bhttp::async_read(stream_, buffer_, parser, use_tuple);
    co_return bec;
  }

  asio::awaitable<void> handle(bhttp::request<bhttp::string_body>& m) {
    request req;
    req.method = std::string(m.method_string());
    req.target = std::string(m.target());
    for (const auto& f : m) req.headers.push_back(header{std::string(f.name_string()), std::string(f.value())});
    req.body = std::move(m.body());
    keep_alive_ = m.keep_alive();
    head_ = m.method() == bhttp::verb::head;
    version_ = m.version();
    reply_ = reply_state::none;
    status_ = 0;
    handler_error_.clear();
    const auto started = std::chrono::steady_clock::now();

    co_await (call_handler(req) || watch_peer());

    if (!handler_error_.empty())
      log::error("http handler failed",
                 {{"method", req.method}, {"target", req.target}, {"error", handler_error_}});
    if (!closed_ && reply_ == reply_state::none) {
      if (handler_error_.empty())
        log::error("http handler returned without a response", {{"method", req.method}, {"target", req.target}});
      response res;
      res.status = 500;
      res.headers.push_back(header{"Content-Type", "text/plain; charset=utf-8"});
      res.body = "internal server error\n";
      co_await send(std::move(res));
    }
    if (reply_ == reply_state::streaming) close_now(errc::closed);  // a stream the handler never ended
    if (log::enabled(log::level::debug)) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
      log::debug("http request", {{"method", req.method},
                                  {"target", req.target},
                                  {"status", status_},
                                  {"remote", peer_.address},
                                  {"ms", static_cast<std::int64_t>(ms.count())}});
    }
  }

  asio::awaitable<void> call_handler(const request& req) {
    try {
      co_await st_->h(req, peer_, *this);
    } catch (const std::exception& e) {
      handler_error_ = e.what();
    } catch (...) {
      handler_error_ = "unknown exception";
    }
    if (!handler_error_.empty() && reply_ == reply_state::streaming) close_now(errc::closed);
  }

  // Runs while the handler does and notices a peer that goes away (a watch client that closed
  // its connection) so the handler's closed()/wait_closed() tell it. Bytes that arrive instead
  // (a pipelined request) stay in buffer_ for the next read. Ends only when cancelled by the
  // handler's completion, so the handler itself is never cancelled.
  asio::awaitable<void> watch_peer() {
    auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(4096), use_tuple);
    if (!ec) buffer_.commit(n);
    // Ending now is for when the handler has finished: ending early would cancel the handler.
    asio::cancellation_state cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none) co_return;
    if (ec) close_now(errc::closed);
    asio::steady_timer forever(executor(), asio::steady_timer::time_point::max());
    co_await forever.async_wait(use_tuple);
  }

  // A response the server makes itself; then close, draining what the client still sends so
  // it reads the response instead of a connection reset.
  asio::awaitable<void> reject(int status, std::string message) {
    bhttp::response<bhttp::string_body> m{static_cast<bhttp::status>(status), 11};
    m.set(bhttp::field::content_type, "text/plain; charset=utf-8");
    m.body() = std::move(message) + "\n";
    m.prepare_payload();
    m.keep_alive(false);
    asio::steady_timer timer(executor(), st_->opts.write_timeout);
    error_code ec = outcome(co_await (bhttp::async_write(stream_, m, use_tuple) || timer.async_wait(use_tuple)));
    if (ec || closed_) co_return;
    tcp_of(stream_).shutdown(tcp::socket::shutdown_send, ec);
    asio::steady_timer linger(executor(), std::chrono::seconds(1));
    co_await (drain() || linger.async_wait(use_tuple));
  }

  asio::awaitable<void> drain() {
    std::array<char, 16384> buf;
    for (std::size_t total = 0; total < (16u << 20);) {
      auto [ec, n] = co_await tcp_of(stream_).async_read_some(asio::buffer(buf), use_tuple);
      if (ec) co_return;
      total += n;
    }
  }

  error_code may_reply(std::string_view what) {
    if (closed_) return closed_reason_;
    if (reply_ != reply_state::none) return misuse(what);
    return {};
  }

  error_code misuse(std::string_view what) {
    log::error("http handler misused its responder", {{"call", what}});
    return errc::protocol_error;
  }

  error_code write_failed(error_code ec) {
    if (!ec) return ec;
    if (closed_) return closed_reason_;
    close_now(errc::closed);
    return ec == errc::timeout ? ec : error_code(errc::closed);
  }

  std::shared_ptr<server_state> st_;
  Stream stream_;
  peer_info peer_;
  asio::steady_timer closed_signal_;  // never expires; cancelled on close to wake wait_closed()
  std::list<connection_base*>::iterator self_;
  beast::flat_buffer buffer_;
  bool closed_ = false;
  errc closed_reason_ = errc::closed;
  bool keep_alive_ = true;
  bool head_ = false;
  unsigned version_ = 11;
  reply_state reply_ = reply_state::none;
  int status_ = 0;
  std::string handler_error_;
};

asio::awaitable<void> serve_connection_body(std::shared_ptr<server_state> st, tcp::socket sock) {
  if (st->stopped) co_return;
  error_code ec;
  sock.set_option(tcp::no_delay(true), ec);
  peer_info peer;
  auto remote = sock.remote_endpoint(ec);
  if (ec) co_return;  // already gone
  peer.address = format_endpoint(remote);
  if (st->ssl) {
    peer.tls = true;
    connection<asio::ssl::stream<tcp::socket>> c(st, std::move(peer), std::move(sock), *st->ssl);
    co_await c.run();
  } else {
    connection<tcp::socket> c(st, std::move(peer), std::move(sock));
    co_await c.run();
  }
}

asio::awaitable<void> serve_connection(std::shared_ptr<server_state> st, tcp::socket sock) {
  struct slot {
    server_state& st;
    ~slot() {
      --st.active;
      st.slot_freed.cancel();  // wakes an accept loop waiting at max_connections
    }
  } held{*st};
  co_await serve_connection_body(st, std::move(sock));
}

asio::awaitable<void> accept_loop(std::shared_ptr<server_state> st) {
  while (!st->stopped) {
    if (st->opts.max_connections > 0 && st->active >= st->opts.max_connections) {
      // At the limit: accept nothing until a connection ends. Clients queue in the kernel's
      // listen backlog (and beyond it are refused by the kernel), costing us no memory.
      co_await st->slot_freed.async_wait(use_tuple);
      continue;
    }
    auto [ec, sock] = co_await st->acceptor.async_accept(use_tuple);
    if (st->stopped) co_return;
    if (ec) {
      // EMFILE and friends: back off instead of spinning; the listener stays up.
      log::warn("http accept failed", {{"error", ec.message()}});
      asio::steady_timer pause(st->acceptor.get_executor(), std::chrono::milliseconds(100));
      co_await pause.async_wait(use_tuple);
      continue;
    }
    ++st->accepted;
    ++st->active;
    asio::co_spawn(st->acceptor.get_executor(), serve_connection(st, std::move(sock)),
                   [](std::exception_ptr e) { log_failure("http connection failed", e); });
  }
}

class server_impl final : public server {
 public:
  explicit server_impl(std::shared_ptr<server_state> st) : st_(std::move(st)) {
    error_code ec;
    local_ = st_->acceptor.local_endpoint(ec);
  }
  ~server_impl() override { stop(); }

  std::string local_address() const override { return format_endpoint(local_); }
  unsigned short port() const override { return local_.port(); }

  void stop() noexcept override {
    if (st_->stopped) return;
    st_->stopped = true;
    error_code ignored;
    st_->acceptor.close(ignored);
    st_->slot_freed.cancel();
    close_all(errc::cancelled);
  }

  void drop_connections() noexcept override { close_all(errc::closed); }
  std::uint64_t accepted_connections() const noexcept override { return st_->accepted; }
  std::size_t open_connections() const noexcept override { return st_->connections.size(); }

 private:
  void close_all(errc reason) noexcept {
    // close_now() completes nothing inline (handlers run later), so the list is stable here.
    for (auto* c : st_->connections) c->close_now(reason);
  }

  std::shared_ptr<server_state> st_;
  tcp::endpoint local_;
};

}  // namespace

boost::system::result<std::unique_ptr<server>> start_server(asio::any_io_executor ex, server_options opts,
                                                            handler h) {
  if (!h) {
    log::warn("http server has no handler");
    return errc::bad_config;
  }
  auto ep = parse_listen(opts.listen);
  if (!ep) {
    log::warn("bad listen address", {{"listen", opts.listen}});
    return ep.error();
  }
  auto st = std::make_shared<server_state>(ex, std::move(opts), std::move(h));
  if (st->opts.tls) {
    auto ctx = make_server_context(*st->opts.tls);
    if (!ctx) return ctx.error();
    st->ssl.emplace(std::move(*ctx));
  }
  error_code ec;
  st->acceptor.open(ep->protocol(), ec);
  if (!ec) st->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) st->acceptor.bind(*ep, ec);
  if (!ec) st->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    log::warn("http listen failed", {{"listen", st->opts.listen}, {"error", ec.message()}});
    return ec;
  }
  asio::co_spawn(ex, accept_loop(st), [](std::exception_ptr e) { log_failure("http accept loop failed", e); });
  return std::unique_ptr<server>(std::make_unique<server_impl>(std::move(st)));
}

}  // namespace canaryd::http
