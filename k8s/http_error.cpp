#include "k8s/http_error.hpp"

#include <string>

namespace canaryd::http {
namespace {
class category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "canaryd.http"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::timeout: return "deadline exceeded";
      case errc::connect_failed: return "connection failed";
      case errc::tls_failed: return "TLS handshake or certificate verification failed";
      case errc::protocol_error: return "malformed HTTP message";
      case errc::body_too_large: return "body too large";
      case errc::closed: return "connection closed";
      case errc::cancelled: return "cancelled";
      case errc::bad_config: return "bad TLS or endpoint configuration";
    }
    return "unknown http error";
  }
};
}  // namespace

const boost::system::error_category& category() noexcept {
  static const category_impl c;
  return c;
}

}  // namespace canaryd::http
