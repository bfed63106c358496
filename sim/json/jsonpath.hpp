#pragma once
// The JSONPath subset that CRD additionalPrinterColumns and `kubectl get -o jsonpath` use
// (k8s.io/client-go/util/jsonpath): `.status.phase`, `{.spec.analysis.maxWeight}`,
// `.metadata.labels['app.kubernetes.io/name']`, `.items[0]`, `.items[-1]`, `[*]`, `.*`,
// `..name`, and filters `[?(@.type=="Promoted")]` with ==, !=, <, <=, >, >= against string,
// number and boolean literals, or `[?(@.field)]` for presence.
// A path is compiled once (per CRD column) and evaluated per object; a member that is missing
// simply yields no result, as the apiserver's table converter shows an empty cell.
#include <boost/assert/source_location.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kubesim {

struct jsonpath_error {
  std::string message;
};

[[noreturn]] inline void throw_exception_from_error(const jsonpath_error& e, const boost::source_location&) {
  throw std::invalid_argument(e.message);
}

class jsonpath {
 public:
  struct step;  // one segment; see jsonpath.cpp

  // Accepts an optional surrounding "{...}" and a leading "$".
  static boost::system::result<jsonpath, jsonpath_error> parse(std::string_view expression);

  // The matching values, in document order; pointers into `root`.
  std::vector<const boost::json::value*> find(const boost::json::value& root) const;

  const std::string& expression() const noexcept { return expression_; }

 private:
  std::string expression_;
  std::shared_ptr<const std::vector<step>> steps_;
};

// How kubectl prints one result: strings raw, everything else as JSON text.
std::string jsonpath_text(const boost::json::value& v);

}  // namespace kubesim
