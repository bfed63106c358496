#include "daemon/sd_notify.hpp"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace canaryd {

std::string sd_notify(std::string_view state) {
  const char* env = std::getenv("NOTIFY_SOCKET");
  if (!env || !*env) return {};
  std::string_view path(env);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // Abstract socket names start with '@' in the variable and with a NUL byte in the address.
  if (path.size() >= sizeof(addr.sun_path) || (path[0] != '/' && path[0] != '@'))
    return fmt::format("NOTIFY_SOCKET \"{}\" is not an absolute path or @abstract name", path);
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (path[0] == '@') addr.sun_path[0] = '\0';
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return fmt::format("cannot create the notify socket: {}", std::strerror(errno));
  ssize_t n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr), len);
  int err = errno;
  ::close(fd);
  if (n < 0) return fmt::format("cannot notify {}: {}", path, std::strerror(err));
  if (static_cast<std::size_t>(n) != state.size()) return fmt::format("short notify datagram to {}", path);
  return {};
}

}  // namespace canaryd
