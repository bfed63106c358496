#pragma once
// systemd's readiness protocol (sd_notify(3)) without libsystemd: one datagram with
// newline-separated assignments ("READY=1", "STOPPING=1", "STATUS=...") sent to the
// AF_UNIX socket named by $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).
//
// Thread affinity: none (no state beyond the environment). The send is a non-blocking
// sendto on a fresh socket, so it never stalls the io_context.
#include <string>
#include <string_view>

namespace canaryd {

// Sends `state` to $NOTIFY_SOCKET. Returns "" when sent or when NOTIFY_SOCKET is unset or
// empty (not run by systemd: nothing to do); otherwise a one-line reason for the log.
// Never throws.
std::string sd_notify(std::string_view state);

}  // namespace canaryd
