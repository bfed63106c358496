#pragma once
// Messages canaryd writes where users read them: the Promoted condition's message and Event
// messages. Both are one line and at most max_message_bytes long (a status or an Event is no
// place for a 630 KB list of errors or a receiver's HTML error page), and name what they are
// about. These helpers shape text from untrusted sources (HTTP bodies, field values) into that.
//
// Thread affinity: none (pure). Errors: none.
#include <cstddef>
#include <string>
#include <string_view>

namespace canaryd::core {

// The longest condition or Event message canaryd writes, in bytes.
inline constexpr std::size_t max_message_bytes = 1024;
// The most of an HTTP response body quoted in a message, in bytes.
inline constexpr std::size_t max_body_excerpt_bytes = 200;

// `text` on one line (CR, LF, tabs and other control characters become spaces, runs of spaces
// one space, no leading or trailing space), cut to at most `max` bytes at a UTF-8 character
// boundary with "..." at the end when cut.
std::string one_line(std::string_view text, std::size_t max = max_message_bytes);

// What of an HTTP response body a message may quote: markup removed (anything between '<' and
// '>', so an HTML error page becomes its text; <script>/<style> contents dropped), entities
// &amp; &lt; &gt; &quot; &#39; &nbsp; decoded, then one_line(..., max).
std::string body_excerpt(std::string_view body, std::size_t max = max_body_excerpt_bytes);

// The host (and port when present) of an absolute URL, "" when it has none:
// "http://user@flagger-loadtester.test:8080/gate/check" -> "flagger-loadtester.test:8080".
std::string url_host(std::string_view url);

}  // namespace canaryd::core
