#include "sim/json/merge_patch.hpp"

namespace kubesim {
namespace json = boost::json;

void apply_merge_patch(json::value& target, const json::value& patch) {
  if (!patch.is_object()) {
    target = patch;
    return;
  }
  if (!target.is_object()) target = json::object(target.storage());
  auto& obj = target.get_object();
  for (const auto& kv : patch.get_object()) {
    if (kv.value().is_null()) {
      obj.erase(kv.key());
      continue;
    }
    auto it = obj.find(kv.key());
    if (it == obj.end()) {
      // A new member still goes through the merge so that nulls nested in it vanish.
      json::value fresh;
      apply_merge_patch(fresh, kv.value());
      obj.emplace(kv.key(), std::move(fresh));
    } else {
      apply_merge_patch(it->value(), kv.value());
    }
  }
}

json::value merge_patch(json::value target, const json::value& patch) {
  apply_merge_patch(target, patch);
  return target;
}

}  // namespace kubesim
