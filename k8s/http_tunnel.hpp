#pragma once
// The CONNECT tunnel (RFC 9110 §9.3.6) through an HTTP proxy, shared by the HTTP client and the
// metric providers that speak another protocol over TCP (splunk's SignalFlow WebSocket).
// Includes Asio's TCP socket: only .cpp files that already use Asio include this header.
//
// Thread affinity: the socket's executor. No deadline of its own: the caller's applies.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include <string>

namespace canaryd::http {

// Asks the proxy at the other end of `s` for a tunnel to `authority` ("host:port", IPv6 in
// brackets) and reads its answer head; afterwards `s` carries bytes to and from the origin.
// Errors: errc::connect_failed (the proxy refused or broke off), errc::protocol_error (bytes
// after the proxy's 2xx head, before the origin could have spoken).
boost::asio::awaitable<boost::system::error_code> open_tunnel(boost::asio::ip::tcp::socket& s,
                                                              const std::string& authority);

}  // namespace canaryd::http
