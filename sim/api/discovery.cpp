#include "sim/api/discovery.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

namespace kubesim::discovery {
namespace json = boost::json;

namespace {

// Parses "v<major>[alpha|beta<minor>]"; kind 3 GA, 2 beta, 1 alpha, 0 not Kubernetes-like.
struct parsed_version {
  int kind = 0;
  long major = 0, minor = 0;
};

parsed_version parse(std::string_view v) {
  parsed_version p;
  if (v.size() < 2 || v[0] != 'v' || !std::isdigit(static_cast<unsigned char>(v[1]))) return p;
  std::size_t i = 1;
  while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) p.major = p.major * 10 + (v[i++] - '0');
  if (i == v.size()) {
    p.kind = 3;
    return p;
  }
  auto rest = v.substr(i);
  std::size_t n = 0;
  if (rest.starts_with("beta")) {
    p.kind = 2;
    n = 4;
  } else if (rest.starts_with("alpha")) {
    p.kind = 1;
    n = 5;
  } else {
    return {};
  }
  rest = rest.substr(n);
  if (rest.empty()) return {};
  for (char c : rest) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return {};
    p.minor = p.minor * 10 + (c - '0');
  }
  return p;
}

json::object group_version(std::string_view group, std::string_view version) {
  return json::object{{"groupVersion", std::string(group) + "/" + std::string(version)}, {"version", version}};
}

// group -> versions in preference order
std::map<std::string, std::vector<std::string>> groups_of(const std::vector<const resource_info*>& resources) {
  std::map<std::string, std::set<std::string>> sets;
  for (auto* r : resources)
    if (!r->group.empty()) sets[r->group].insert(r->version);
  std::map<std::string, std::vector<std::string>> out;
  for (auto& [g, vs] : sets) {
    std::vector<std::string> v(vs.begin(), vs.end());
    std::sort(v.begin(), v.end(), version_before);
    out[g] = std::move(v);
  }
  return out;
}

json::object group_object(const std::string& name, const std::vector<std::string>& versions) {
  json::array vs;
  for (const auto& v : versions) vs.push_back(group_version(name, v));
  return json::object{{"name", name}, {"versions", std::move(vs)}, {"preferredVersion", group_version(name, versions.front())}};
}

json::array strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

}  // namespace

bool version_before(std::string_view a, std::string_view b) {
  auto pa = parse(a), pb = parse(b);
  if (pa.kind != pb.kind) return pa.kind > pb.kind;
  if (pa.kind == 0) return a < b;
  if (pa.major != pb.major) return pa.major > pb.major;
  return pa.minor > pb.minor;
}

json::object version() {
  return json::object{{"major", "1"},
                      {"minor", "30"},
                      {"gitVersion", git_version},
                      {"gitCommit", "7c48c2bd72b9bf5c44d21d7338cc7bea77d0ad2a"},
                      {"gitTreeState", "clean"},
                      {"buildDate", "2024-04-17T17:27:03Z"},
                      {"goVersion", "go1.22.2"},
                      {"compiler", "gc"},
                      {"platform", "linux/amd64"}};
}

json::object api_versions(std::string_view server_address) {
  return json::object{
      {"kind", "APIVersions"},
      {"versions", json::array{"v1"}},
      {"serverAddressByClientCIDRs",
       json::array{json::object{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", server_address}}}}};
}

json::object group_list(const std::vector<const resource_info*>& resources) {
  json::array groups;
  // Built-in groups first in registration order, as a real server lists them.
  std::vector<std::string> order;
  for (auto* r : resources)
    if (!r->group.empty() && std::find(order.begin(), order.end(), r->group) == order.end()) order.push_back(r->group);
  auto all = groups_of(resources);
  for (const auto& g : order) groups.push_back(group_object(g, all[g]));
  return json::object{{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", std::move(groups)}};
}

json::object group(const std::vector<const resource_info*>& resources, std::string_view name) {
  auto all = groups_of(resources);
  auto it = all.find(std::string(name));
  if (it == all.end()) return {};
  auto g = group_object(it->first, it->second);
  json::object out{{"kind", "APIGroup"}, {"apiVersion", "v1"}};
  for (auto& kv : g) out[kv.key()] = kv.value();
  return out;
}

json::object resource_list(const std::vector<const resource_info*>& resources, std::string_view group,
                           std::string_view version) {
  json::array list;
  for (auto* r : resources) {
    if (r->group != group || r->version != version) continue;
    json::object e{{"name", r->resource},
                   {"singularName", r->singular},
                   {"namespaced", r->namespaced},
                   {"kind", r->kind},
                   {"verbs", strings(r->verbs)}};
    if (!r->short_names.empty()) e["shortNames"] = strings(r->short_names);
    if (!r->categories.empty()) e["categories"] = strings(r->categories);
    list.push_back(std::move(e));
    if (r->status_subresource)
      list.push_back(json::object{{"name", r->resource + "/status"},
                                  {"singularName", ""},
                                  {"namespaced", r->namespaced},
                                  {"kind", r->kind},
                                  {"verbs", json::array{"get", "patch", "update"}}});
    if (r->scale_subresource)
      list.push_back(json::object{{"name", r->resource + "/scale"},
                                  {"singularName", ""},
                                  {"namespaced", r->namespaced},
                                  {"group", "autoscaling"},
                                  {"version", "v1"},
                                  {"kind", "Scale"},
                                  {"verbs", json::array{"get", "patch", "update"}}});
  }
  if (list.empty()) return {};
  std::string gv = group.empty() ? std::string(version) : std::string(group) + "/" + std::string(version);
  return json::object{{"kind", "APIResourceList"}, {"apiVersion", "v1"}, {"groupVersion", gv}, {"resources", std::move(list)}};
}

json::object root_paths(const std::vector<const resource_info*>& resources) {
  std::set<std::string> paths = {"/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/openapi/v2", "/version"};
  for (auto* r : resources) {
    if (r->group.empty()) continue;
    paths.insert("/apis/" + r->group);
    paths.insert("/apis/" + r->group + "/" + r->version);
  }
  json::array a;
  for (const auto& p : paths) a.emplace_back(p);
  return json::object{{"paths", std::move(a)}};
}

}  // namespace kubesim::discovery
