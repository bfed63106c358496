#pragma once
// Label and field selectors with Kubernetes' syntax, semantics and error messages
// (k8s.io/apimachinery/pkg/labels and pkg/fields):
//  - label selector strings from the labelSelector query parameter: comma-separated
//    requirements `k`, `!k`, `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k>1`, `k<1`;
//    keys and values are validated like label keys and values;
//  - LabelSelector objects (matchLabels, matchExpressions In/NotIn/Exists/DoesNotExist), as
//    workload specs carry them; a missing (null) selector selects nothing, {} selects everything;
//  - field selectors (`metadata.name=x,metadata.namespace!=y`, operators =, ==, !=) on the fields
//    a resource supports (metadata.name and metadata.namespace everywhere, more per resource).
// A parse error is a value whose message is worded like the apiserver's (it answers 400).
#include <boost/assert/source_location.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kubesim {

struct selector_error {
  std::string message;
};

template <class T>
using selector_result = boost::system::result<T, selector_error>;

[[noreturn]] inline void throw_exception_from_error(const selector_error& e, const boost::source_location&) {
  throw std::invalid_argument(e.message);
}

enum class selector_op { exists, does_not_exist, equals, double_equals, not_equals, in, not_in, greater_than, less_than };

struct label_requirement {
  std::string key;
  selector_op op = selector_op::exists;
  std::vector<std::string> values;  // sorted, unique

  bool matches(const boost::json::object* labels) const;
  std::string to_string() const;  // "k in (a,b)"
};

class label_selector {
 public:
  label_selector() = default;                // selects everything
  static label_selector nothing();            // selects nothing (a null LabelSelector)

  // `labels` is metadata.labels (may be null: no labels).
  bool matches(const boost::json::object* labels) const;
  // Reads metadata.labels of `object`.
  bool matches_object(const boost::json::object& object) const;
  bool empty() const noexcept { return !nothing_ && requirements_.empty(); }
  bool selects_nothing() const noexcept { return nothing_; }
  const std::vector<label_requirement>& requirements() const noexcept { return requirements_; }
  // The canonical form: requirements sorted by key, joined by ',' ("app=podinfo,tier in (a,b)").
  std::string to_string() const;

 private:
  friend selector_result<label_selector> parse_label_selector(std::string_view);
  friend selector_result<label_selector> label_selector_from_object(const boost::json::value&);
  friend label_selector label_selector_from_map(const boost::json::object&);
  std::vector<label_requirement> requirements_;
  bool nothing_ = false;
};

// The labelSelector query parameter. "" selects everything.
selector_result<label_selector> parse_label_selector(std::string_view s);
// A metav1.LabelSelector; null selects nothing, {} everything.
selector_result<label_selector> label_selector_from_object(const boost::json::value& v);
// A Service's spec.selector (a map of equalities); an empty map selects everything.
label_selector label_selector_from_map(const boost::json::object& m);

struct field_requirement {
  std::string field;  // "metadata.name"
  bool equal = true;  // = and == versus !=
  std::string value;
};

class field_selector {
 public:
  field_selector() = default;  // selects everything
  bool matches(const boost::json::object& object) const;
  bool empty() const noexcept { return requirements_.empty(); }
  const std::vector<field_requirement>& requirements() const noexcept { return requirements_; }

 private:
  friend selector_result<field_selector> parse_field_selector(std::string_view, const std::vector<std::string>&);
  std::vector<field_requirement> requirements_;
};

// The fieldSelector query parameter. Fields other than metadata.name, metadata.namespace and
// `extra_fields` ("status.phase", "spec.nodeName" for pods, ...) fail with
// "field label not supported: <field>". A field missing from an object compares as "".
selector_result<field_selector> parse_field_selector(std::string_view s, const std::vector<std::string>& extra_fields = {});

// The string at a dotted path ("spec.nodeName") of an object, "" if missing; numbers and
// booleans in their JSON text.
std::string field_value(const boost::json::object& object, std::string_view dotted_path);

}  // namespace kubesim
