#include "sim/api/store.hpp"

#include "sim/api/base64.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <charconv>
#include <ctime>
#include <deque>
#include <map>
#include <ostream>
#include <stdexcept>
#include <random>
#include <set>
#include <unordered_map>

#include "k8s/log.hpp"
#include "sim/api/builtin.hpp"
#include "sim/api/crd.hpp"

namespace kubesim {
namespace json = boost::json;
namespace log = canaryd::log;

// ---------------------------------------------------------------------------------------------
// Shared helpers (declared in store.hpp)

std::optional<std::uint64_t> parse_resource_version(std::string_view s) noexcept {
  if (s.empty()) return std::nullopt;
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string_view meta_string(const json::object& obj, std::string_view field) noexcept {
  auto* m = obj.if_contains("metadata");
  if (!m || !m->is_object()) return {};
  auto* v = m->get_object().if_contains(field);
  if (!v || !v->is_string()) return {};
  return v->get_string();
}

std::ostream& operator<<(std::ostream& os, const api_error& e) {
  return os << e.code << " " << e.reason << ": " << e.message;
}

void throw_exception_from_error(const api_error& e, const boost::source_location&) {
  throw std::runtime_error(fmt::format("{} {}: {}", e.code, e.reason, e.message));
}

namespace {
json::object details_of(const resource_info& r, std::string_view name) {
  json::object d;
  if (!name.empty()) d["name"] = name;
  if (!r.group.empty()) d["group"] = r.group;
  d["kind"] = r.resource;
  return d;
}
}  // namespace

api_error not_found(const resource_info& r, std::string_view name) {
  return {404, "NotFound", fmt::format("{} \"{}\" not found", r.qualified(), name), details_of(r, name)};
}

api_error bad_request_error(std::string message) { return {400, "BadRequest", std::move(message), {}}; }

api_error invalid(std::string_view kind, std::string_view group, std::string_view name,
                  const std::vector<field_error>& errs) {
  std::string qualified = group.empty() ? std::string(kind) : fmt::format("{}.{}", kind, group);
  std::string msg = fmt::format("{} \"{}\" is invalid: ", qualified, name);
  if (errs.size() == 1) {
    msg += errs[0].field + ": " + errs[0].message;
  } else {
    msg += "[";
    for (std::size_t i = 0; i < errs.size(); ++i) {
      if (i) msg += ", ";
      msg += errs[i].field + ": " + errs[i].message;
    }
    msg += "]";
  }
  json::object d;
  d["name"] = name;
  if (!group.empty()) d["group"] = group;
  d["kind"] = kind;
  json::array causes;
  for (const auto& e : errs)
    causes.push_back(json::object{{"reason", e.reason}, {"message", e.message}, {"field", e.field}});
  d["causes"] = std::move(causes);
  return {422, "Invalid", std::move(msg), std::move(d)};
}

api_error conflict(const resource_info& r, std::string_view name, std::string_view why) {
  return {409, "Conflict", fmt::format("Operation cannot be fulfilled on {} \"{}\": {}", r.qualified(), name, why),
          details_of(r, name)};
}

api_error forbidden(const resource_info& r, std::string_view name, std::string_view why) {
  return {403, "Forbidden", fmt::format("{} \"{}\" is forbidden: {}", r.qualified(), name, why), details_of(r, name)};
}

namespace {

constexpr std::string_view stale_message =
    "the object has been modified; please apply your changes to the latest version and try again";

api_error already_exists(const resource_info& r, std::string_view name) {
  return {409, "AlreadyExists", fmt::format("{} \"{}\" already exists", r.qualified(), name), details_of(r, name)};
}

api_error namespace_not_found(std::string_view ns) {
  return {404, "NotFound", fmt::format("namespaces \"{}\" not found", ns),
          json::object{{"name", ns}, {"kind", "namespaces"}}};
}

api_error expired(std::string message) { return {410, "Expired", std::move(message), {}}; }

api_error resource_gone(const resource_info& r) {
  return {404, "NotFound", "the server could not find the requested resource",
          json::object{{"group", r.group}, {"kind", r.resource}}};
}

}  // namespace

// --- base64 (continue tokens, Secret data) ---
namespace {
constexpr char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}  // namespace

std::string base64_encode(std::string_view in) {
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    std::uint32_t n = (std::uint8_t(in[i]) << 16) | (std::uint8_t(in[i + 1]) << 8) | std::uint8_t(in[i + 2]);
    out += b64[(n >> 18) & 63];
    out += b64[(n >> 12) & 63];
    out += b64[(n >> 6) & 63];
    out += b64[n & 63];
  }
  if (i + 1 == in.size()) {
    std::uint32_t n = std::uint8_t(in[i]) << 16;
    out += b64[(n >> 18) & 63];
    out += b64[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    std::uint32_t n = (std::uint8_t(in[i]) << 16) | (std::uint8_t(in[i + 1]) << 8);
    out += b64[(n >> 18) & 63];
    out += b64[(n >> 12) & 63];
    out += b64[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    const char* p = std::char_traits<char>::find(b64, 64, c);
    if (!p) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(p - b64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

namespace {

// ---------------------------------------------------------------------------------------------

struct collection;
using key_type = std::pair<std::string, std::string>;  // namespace ("" when cluster-scoped), name

struct ref {
  collection* c = nullptr;
  std::string ns, name;
  auto operator<=>(const ref&) const = default;
};

struct history_entry {
  event_type type;
  object_ptr object;
  object_ptr previous;
  std::uint64_t rv;
};

struct subscriber {
  std::string ns;
  std::function<void(const change&)> cb;
  std::uint64_t replayed_rv = 0;  // changes up to here came by replay; live ones start after
  bool active = true;
};

// Every version of one group/resource shares a collection (objects keep the apiVersion they
// were written with; the API layer presents them in the version asked for).
struct collection {
  std::string group, resource;
  std::vector<resource_info*> versions;
  resource_info* primary = nullptr;
  std::map<key_type, object_ptr> objects;
  // Objects per namespace ("" for cluster-scoped): a page's remainingItemCount without walking
  // the rest of the collection (that walk, on every page, was 38% of kubesim's CPU when canaryd
  // listed 132,000 objects at start).
  std::map<std::string, std::int64_t, std::less<>> ns_objects;
  std::deque<history_entry> history;
  std::uint64_t compacted_rv = 0;  // history holds every change after this
  std::vector<std::shared_ptr<subscriber>> subs;
  std::string crd_name;  // for custom resources: the CRD defining them
  bool retired = false;
};

class subscription_impl final : public watch_subscription {
 public:
  explicit subscription_impl(std::shared_ptr<subscriber> s) : s_(std::move(s)) {}
  // Only marks: the callback may be running right now (a watch that ends itself); the store
  // drops inactive subscribers after its dispatch.
  ~subscription_impl() override { s_->active = false; }

 private:
  std::shared_ptr<subscriber> s_;
};

json::object& meta_of(json::object& o) {
  auto& m = o["metadata"];
  if (!m.is_object()) m = json::object();
  return m.as_object();
}

const json::object* meta_ptr(const json::object& o) {
  auto* m = o.if_contains("metadata");
  return m ? m->if_object() : nullptr;
}

std::vector<std::string> finalizers_of(const json::object& o) {
  std::vector<std::string> out;
  if (auto* m = meta_ptr(o))
    if (auto* f = m->if_contains("finalizers"); f && f->is_array())
      for (const auto& v : f->as_array())
        if (v.is_string()) out.emplace_back(v.get_string());
  return out;
}

bool has_finalizer(const json::object& o, std::string_view f) {
  auto fs = finalizers_of(o);
  return std::find(fs.begin(), fs.end(), f) != fs.end();
}

void set_finalizers(json::object& o, const std::vector<std::string>& fs) {
  auto& m = meta_of(o);
  if (fs.empty()) {
    m.erase("finalizers");
    return;
  }
  json::array a;
  for (const auto& f : fs) a.emplace_back(f);
  m["finalizers"] = std::move(a);
}

bool deleting(const json::object& o) {
  auto* m = meta_ptr(o);
  return m && m->contains("deletionTimestamp");
}

std::set<std::string> owner_uids(const json::object* o) {
  std::set<std::string> out;
  if (!o) return out;
  if (auto* m = meta_ptr(*o))
    if (auto* refs = m->if_contains("ownerReferences"); refs && refs->is_array())
      for (const auto& r : refs->as_array())
        if (r.is_object())
          if (auto* u = r.as_object().if_contains("uid"); u && u->is_string()) out.emplace(u->get_string());
  return out;
}

// Everything but metadata and status: what a spec change means for metadata.generation.
bool spec_equal(const json::object& a, const json::object& b) {
  auto skip = [](std::string_view k) { return k == "metadata" || k == "status" || k == "apiVersion" || k == "kind"; };
  std::size_t na = 0, nb = 0;
  for (const auto& kv : a) {
    if (skip(kv.key())) continue;
    ++na;
    auto* v = b.if_contains(kv.key());
    if (!v || *v != kv.value()) return false;
  }
  for (const auto& kv : b)
    if (!skip(kv.key())) ++nb;
  return na == nb;
}

class store_impl final : public store {
 public:
  explicit store_impl(store_options opts) : opts_(std::move(opts)) {
    if (!opts_.now) opts_.now = [] { return std::chrono::system_clock::now(); };
    rng_.seed(opts_.seed ? opts_.seed : std::random_device{}());
    for (auto& r : builtin::resources()) {
      auto* c = new_collection(r.group, r.resource);
      auto* info = keep(std::move(r));
      c->versions.push_back(info);
      c->primary = info;
      index(info);
    }
    ns_col_ = by_gr_.at("/namespaces");
    crd_col_ = by_gr_.at("apiextensions.k8s.io/customresourcedefinitions");
    for (auto ns : {"default", "kube-system", "kube-public", "kube-node-lease"}) {
      json::object o{{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", json::object{{"name", ns}}}};
      auto r = do_create(*ns_col_->primary, "", std::move(o));
      assert(r);
      (void)r;
    }
    flush();
  }

  using store::remove;

  const resource_info* find(std::string_view group, std::string_view version,
                            std::string_view resource) const override {
    auto it = by_gvr_.find(fmt::format("{}/{}/{}", group, version, resource));
    return it == by_gvr_.end() ? nullptr : it->second;
  }

  const resource_info* find_kind(std::string_view api_version, std::string_view kind) const override {
    auto it = by_kind_.find(fmt::format("{}/{}", api_version, kind));
    return it == by_kind_.end() ? nullptr : it->second;
  }

  std::vector<const resource_info*> resources() const override {
    std::vector<const resource_info*> out;
    for (auto* c : order_)
      for (auto* v : c->versions) out.push_back(v);
    return out;
  }

  result<object_ptr> get(const resource_info& r, std::string_view ns, std::string_view name) const override {
    auto* c = collection_of(r);
    if (!c) return resource_gone(r);
    auto it = c->objects.find(key_type(r.namespaced ? ns : "", name));
    if (it == c->objects.end()) return not_found(r, name);
    return it->second;
  }

  result<list_result> list(const resource_info& r, std::string_view ns, const list_options& opts) const override {
    auto* c = collection_of(r);
    if (!c) return resource_gone(r);
    if (!r.namespaced) ns = {};
    list_result out;
    out.resource_version = rv_;
    key_type start(std::string(ns), "");
    bool skip_start = false;
    std::int64_t returned_before = 0;  // items of the earlier pages
    if (!opts.continue_token.empty()) {
      auto t = decode_continue(opts.continue_token);
      if (!t) return bad_request_error("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)");
      out.resource_version = t->rv;
      start = t->start;
      returned_before = t->returned;
      if (!ns.empty() && start.first != ns) return bad_request_error("continue key is not valid: key does not match the request");
      skip_start = true;
    }
    auto it = c->objects.lower_bound(start);
    if (skip_start && it != c->objects.end() && it->first == start) ++it;
    std::int64_t remaining = 0;
    bool more = false;
    const key_type* last = nullptr;
    for (; it != c->objects.end(); ++it) {
      if (!ns.empty() && it->first.first != ns) break;
      if (opts.match && !opts.match(*it->second)) continue;
      if (opts.limit > 0 && static_cast<std::int64_t>(out.items.size()) >= opts.limit) {
        more = true;
        break;
      }
      out.items.push_back(it->second);
      last = &it->first;
    }
    if (more && last) {
      const std::int64_t returned = returned_before + static_cast<std::int64_t>(out.items.size());
      out.continue_token = encode_continue(out.resource_version, *last, returned);
      // The real server counts remaining items only without selectors. Counted from the scope's
      // size and the items returned so far, so objects created or deleted behind the cursor
      // during the pagination make it an estimate, as the API documents it may be.
      if (!opts.match) {
        std::int64_t total = static_cast<std::int64_t>(c->objects.size());
        if (!ns.empty()) {
          auto n = c->ns_objects.find(ns);
          total = n == c->ns_objects.end() ? 0 : n->second;
        }
        remaining = std::max<std::int64_t>(1, total - returned);  // `more`: at least one follows
        out.remaining_item_count = remaining;
      }
    }
    return out;
  }

  result<object_ptr> create(const resource_info& r, std::string_view ns, json::object obj) override {
    auto res = do_create(r, ns, std::move(obj));
    flush();
    return res;
  }

  result<object_ptr> update(const resource_info& r, std::string_view ns, std::string_view name, json::object obj,
                            bool status) override {
    auto res = do_update(r, ns, name, std::move(obj), status);
    flush();
    return res;
  }

  result<object_ptr> remove(const resource_info& r, std::string_view ns, std::string_view name,
                            const delete_options& opts, bool* deleted) override {
    auto res = do_remove(r, ns, name, opts, deleted);
    flush();
    return res;
  }

  result<std::unique_ptr<watch_subscription>> watch(const resource_info& r, std::string_view ns, std::uint64_t from_rv,
                                                    std::function<void(const change&)> cb) override {
    auto* c = collection_of(r);
    if (!c) return resource_gone(r);
    if (!r.namespaced) ns = {};
    if (from_rv != 0 && from_rv < c->compacted_rv)
      return expired(fmt::format("too old resource version: {} ({})", from_rv, c->compacted_rv + 1));
    std::erase_if(c->subs, [](const auto& s) { return !s->active; });
    auto sub = std::make_shared<subscriber>();
    sub->ns = std::string(ns);
    sub->cb = std::move(cb);
    sub->replayed_rv = rv_;
    if (from_rv == 0) {
      auto it = c->objects.lower_bound(key_type(std::string(ns), ""));
      for (; it != c->objects.end(); ++it) {
        if (!ns.empty() && it->first.first != ns) break;
        change ch{event_type::added, c->primary, it->second, nullptr,
                  parse_resource_version(meta_string(*it->second, "resourceVersion")).value_or(0)};
        invoke(sub->cb, ch);
      }
    } else {
      for (const auto& h : c->history) {
        if (h.rv <= from_rv) continue;
        if (!ns.empty() && meta_string(*h.object, "namespace") != ns) continue;
        change ch{h.type, c->primary, h.object, h.previous, h.rv};
        invoke(sub->cb, ch);
      }
    }
    c->subs.push_back(sub);
    return std::unique_ptr<watch_subscription>(new subscription_impl(std::move(sub)));
  }

  void on_change(std::function<void(const change&)> cb) override { callbacks_.push_back(std::move(cb)); }

  void on_admission(std::string group, std::string resource, std::function<void(json::object&)> mutate) override {
    admission_.push_back({std::move(group), std::move(resource), std::move(mutate)});
  }

  std::uint64_t resource_version() const override { return rv_; }

  void compact() override {
    for (auto& c : collections_) {
      c->history.clear();
      c->compacted_rv = rv_;
    }
    log::info("event history compacted", {{"resourceVersion", rv_}});
  }

  std::size_t object_count() const override { return uid_index_.size(); }

 private:
  // --- registry ---

  resource_info* keep(resource_info r) {
    infos_.push_back(std::make_unique<resource_info>(std::move(r)));
    return infos_.back().get();
  }

  collection* new_collection(const std::string& group, const std::string& resource) {
    collections_.push_back(std::make_unique<collection>());
    auto* c = collections_.back().get();
    c->group = group;
    c->resource = resource;
    c->compacted_rv = rv_;
    by_gr_[group + "/" + resource] = c;
    order_.push_back(c);
    return c;
  }

  void index(resource_info* r) {
    by_gvr_[fmt::format("{}/{}/{}", r->group, r->version, r->resource)] = r;
    by_kind_[fmt::format("{}/{}", r->api_version(), r->kind)] = r;
  }

  void unindex(resource_info* r) {
    auto k1 = fmt::format("{}/{}/{}", r->group, r->version, r->resource);
    if (auto it = by_gvr_.find(k1); it != by_gvr_.end() && it->second == r) by_gvr_.erase(it);
    auto k2 = fmt::format("{}/{}", r->api_version(), r->kind);
    if (auto it = by_kind_.find(k2); it != by_kind_.end() && it->second == r) by_kind_.erase(it);
  }

  collection* collection_of(const resource_info& r) const {
    auto it = by_gr_.find(r.group + "/" + r.resource);
    if (it == by_gr_.end()) return nullptr;
    auto* c = it->second;
    if (std::find(c->versions.begin(), c->versions.end(), &r) == c->versions.end()) return nullptr;
    return c;
  }

  // Registers (or re-registers after an update) the resources a CRD defines.
  void register_crd(const json::object& crd_obj) {
    auto name = std::string(meta_string(crd_obj, "name"));
    auto infos = crd::resources_of(crd_obj);
    const auto& spec = crd_obj.at("spec").as_object();
    std::string group(spec.at("group").as_string());
    std::string plural(spec.at("names").as_object().at("plural").as_string());
    collection* c = nullptr;
    if (auto it = crd_collections_.find(name); it != crd_collections_.end()) {
      c = it->second;
    } else {
      if (by_gr_.contains(group + "/" + plural)) {
        log::warn("CRD names conflict with a served resource; not serving it", {{"crd", name}});
        return;
      }
      c = new_collection(group, plural);
      c->crd_name = name;
      crd_collections_[name] = c;
    }
    std::string storage;
    if (auto* vs = spec.if_contains("versions"); vs && vs->is_array())
      for (const auto& v : vs->as_array())
        if (v.is_object())
          if (auto* s = v.as_object().if_contains("storage"); s && s->is_bool() && s->get_bool())
            storage = std::string(v.as_object().at("name").as_string());
    std::vector<resource_info*> next;
    for (auto& info : infos) {
      auto it = std::find_if(c->versions.begin(), c->versions.end(),
                             [&](resource_info* v) { return v->version == info.version; });
      resource_info* p;
      if (it != c->versions.end()) {
        p = *it;
        unindex(p);
        *p = std::move(info);  // in place: pointers held by running requests stay valid
      } else {
        p = keep(std::move(info));
      }
      next.push_back(p);
    }
    for (auto* old : c->versions)
      if (std::find(next.begin(), next.end(), old) == next.end()) unindex(old);
    c->versions = std::move(next);
    c->primary = nullptr;
    for (auto* v : c->versions) {
      index(v);
      if (v->version == storage) c->primary = v;
    }
    if (!c->primary && !c->versions.empty()) c->primary = c->versions.front();
  }

  void unregister_crd(const std::string& name) {
    auto it = crd_collections_.find(name);
    if (it == crd_collections_.end()) return;
    auto* c = it->second;
    for (auto* v : c->versions) unindex(v);
    c->versions.clear();
    by_gr_.erase(c->group + "/" + c->resource);
    std::erase(order_, c);
    c->retired = true;
    crd_collections_.erase(it);
    log::info("CRD unregistered", {{"crd", name}});
  }

  // --- time, ids ---

  std::string now_string() const {
    auto t = std::chrono::system_clock::to_time_t(opts_.now());
    std::tm tm{};
    gmtime_r(&t, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                       tm.tm_hour, tm.tm_min, tm.tm_sec);
  }

  std::string new_uid() {
    std::uint64_t a = rng_(), b = rng_();
    // Version 4, variant 1.
    a = (a & ~0xf000ull) | 0x4000ull;
    b = (b & ~(3ull << 62)) | (2ull << 62);
    return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xffff, b >> 48,
                       b & 0xffffffffffffull);
  }

  std::string random_suffix() {
    static constexpr char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
    std::string s;
    for (int i = 0; i < 5; ++i) s += alphabet[rng_() % (sizeof(alphabet) - 1)];
    return s;
  }

  std::string encode_continue(std::uint64_t rv, const key_type& k, std::int64_t returned) const {
    json::object t{{"v", "meta.k8s.io/v1"}, {"rv", rv}, {"ns", k.first}, {"start", k.second}, {"n", returned}};
    return base64_encode(json::serialize(t));
  }

  struct continue_point {
    std::uint64_t rv = 0;
    key_type start;
    std::int64_t returned = 0;  // items returned by the pages before
  };

  static std::optional<continue_point> decode_continue(std::string_view token) {
    auto text = base64_decode(token);
    if (!text) return std::nullopt;
    boost::system::error_code ec;
    auto v = json::parse(*text, ec);
    if (ec || !v.is_object()) return std::nullopt;
    const auto& o = v.as_object();
    auto* rv = o.if_contains("rv");
    auto* ns = o.if_contains("ns");
    auto* start = o.if_contains("start");
    if (!rv || !rv->is_number() || !ns || !ns->is_string() || !start || !start->is_string()) return std::nullopt;
    std::uint64_t n = rv->is_uint64() ? rv->as_uint64() : rv->is_int64() ? static_cast<std::uint64_t>(rv->as_int64()) : 0;
    continue_point out{n, key_type(std::string(ns->as_string()), std::string(start->as_string())), 0};
    if (auto* returned = o.if_contains("n"); returned && returned->is_int64()) out.returned = returned->as_int64();
    return out;
  }

  // --- commit and dispatch ---

  object_ptr commit_put(collection* c, const key_type& k, json::object o, const object_ptr& prev) {
    auto rv = ++rv_;
    meta_of(o)["resourceVersion"] = std::to_string(rv);
    auto p = std::make_shared<const json::object>(std::move(o));
    ref self{c, k.first, k.second};
    auto old_owners = owner_uids(prev.get());
    auto new_owners = owner_uids(p.get());
    for (const auto& u : old_owners)
      if (!new_owners.contains(u)) drop_dependent(u, self);
    for (const auto& u : new_owners) dependents_[u].insert(self);
    if (!prev) {
      uid_index_[std::string(meta_string(*p, "uid"))] = self;
      if (!k.first.empty()) ++ns_count_[k.first];
      ++c->ns_objects[k.first];
    }
    c->objects[k] = p;
    record(c, prev ? event_type::modified : event_type::added, p, prev, rv);
    return p;
  }

  object_ptr commit_erase(collection* c, const key_type& k) {
    auto it = c->objects.find(k);
    assert(it != c->objects.end());
    object_ptr prev = it->second;
    c->objects.erase(it);
    if (auto n = c->ns_objects.find(k.first); n != c->ns_objects.end() && --n->second <= 0) c->ns_objects.erase(n);
    auto rv = ++rv_;
    json::object last = *prev;
    meta_of(last)["resourceVersion"] = std::to_string(rv);
    auto p = std::make_shared<const json::object>(std::move(last));
    ref self{c, k.first, k.second};
    for (const auto& u : owner_uids(prev.get())) drop_dependent(u, self);
    uid_index_.erase(std::string(meta_string(*prev, "uid")));
    if (!k.first.empty())
      if (auto n = ns_count_.find(k.first); n != ns_count_.end() && --n->second == 0) ns_count_.erase(n);
    record(c, event_type::deleted, p, prev, rv);
    return p;
  }

  void drop_dependent(const std::string& owner, const ref& dep) {
    auto it = dependents_.find(owner);
    if (it == dependents_.end()) return;
    it->second.erase(dep);
    if (it->second.empty()) dependents_.erase(it);
  }

  void record(collection* c, event_type t, const object_ptr& obj, const object_ptr& prev, std::uint64_t rv) {
    c->history.push_back({t, obj, prev, rv});
    while (c->history.size() > opts_.history_limit) {
      c->compacted_rv = c->history.front().rv;
      c->history.pop_front();
    }
    pending_.push_back({c, change{t, c->primary, obj, prev, rv}});
  }

  void invoke(const std::function<void(const change&)>& cb, const change& ch) {
    if (!cb) return;
    try {
      cb(ch);
    } catch (const std::exception& e) {
      log::error("store callback failed", {{"error", e.what()}});
    }
  }

  void flush() {
    if (dispatching_) return;
    dispatching_ = true;
    std::set<collection*> touched;
    while (!pending_.empty()) {
      auto [c, ch] = std::move(pending_.front());
      pending_.pop_front();
      touched.insert(c);
      auto ns = meta_string(*ch.object, "namespace");
      for (std::size_t i = 0; i < c->subs.size(); ++i) {
        auto s = c->subs[i];  // a copy: the vector may grow while the callback runs
        if (!s->active || ch.resource_version <= s->replayed_rv) continue;
        if (!s->ns.empty() && s->ns != ns) continue;
        invoke(s->cb, ch);
      }
      for (std::size_t i = 0; i < callbacks_.size(); ++i) {
        auto cb = callbacks_[i];
        invoke(cb, ch);
      }
    }
    for (auto* c : touched) std::erase_if(c->subs, [](const auto& s) { return !s->active; });
    dispatching_ = false;
  }

  // --- writes ---

  void admit(const resource_info& r, json::object& o) const {
    for (const auto& a : admission_)
      if (a.group == r.group && a.resource == r.resource) a.mutate(o);
  }

  result<object_ptr> do_create(const resource_info& r, std::string_view ns_in, json::object o) {
    auto* c = collection_of(r);
    if (!c) return resource_gone(r);
    std::string ns = r.namespaced ? std::string(ns_in) : std::string();
    if (r.namespaced && ns.empty()) return bad_request_error("the namespace of the object must be set");
    if (auto* m = o.if_contains("metadata"); m && !m->is_object() && !m->is_null())
      return bad_request_error("metadata must be an object");
    admit(r, o);
    auto& meta = meta_of(o);
    if (auto mns = meta_string(o, "namespace"); r.namespaced && !mns.empty() && mns != ns)
      return bad_request_error("the namespace of the provided object does not match the namespace sent on the request");
    if (!r.namespaced) meta.erase("namespace");
    else meta["namespace"] = ns;
    if (auto rv = meta_string(o, "resourceVersion"); !rv.empty())
      return bad_request_error("resourceVersion should not be set on objects to be created");

    std::string name(meta_string(o, "name"));
    bool generated = false;
    if (name.empty()) {
      auto gen = meta_string(o, "generateName");
      if (gen.empty())
        return invalid(r.kind, r.group, "", {{"FieldValueRequired", "metadata.name", "Required value: name or generateName is required"}});
      for (int attempt = 0; attempt < 16; ++attempt) {
        name = std::string(gen) + random_suffix();
        if (!c->objects.contains(key_type(ns, name))) break;
      }
      meta["name"] = name;
      generated = true;
    }
    if (r.namespaced) {
      auto nsit = ns_col_->objects.find(key_type("", ns));
      if (nsit == ns_col_->objects.end()) return namespace_not_found(ns);
      if (deleting(*nsit->second))
        return forbidden(r, name, fmt::format("unable to create new content in namespace {} because it is being terminated", ns));
    }
    if (c->objects.contains(key_type(ns, name))) {
      (void)generated;
      return already_exists(r, name);
    }

    // Server-owned metadata.
    meta.erase("uid");
    meta.erase("deletionTimestamp");
    meta.erase("deletionGracePeriodSeconds");
    meta.erase("selfLink");
    meta.erase("managedFields");
    meta.erase("generation");
    meta["uid"] = new_uid();
    meta["creationTimestamp"] = now_string();
    if (r.tracks_generation) meta["generation"] = 1;
    o["apiVersion"] = r.api_version();
    o["kind"] = r.kind;

    bool is_crd = c == crd_col_;
    if (r.status_subresource && !is_crd) {
      if (r.custom) o.erase("status");
      else o["status"] = json::object();
    }
    if (!r.custom) builtin::apply_defaults(r, o, nullptr, next_ip_);
    if (c == ns_col_) o["status"] = json::object{{"phase", "Active"}};
    if (r.group.empty() && r.resource == "pods")
      o["status"] = json::object{{"phase", "Pending"}, {"qosClass", "BestEffort"}};

    auto errs = builtin::validate_metadata(r, meta_of(o));
    auto kind_errs = builtin::validate(r, o, nullptr);
    errs.insert(errs.end(), kind_errs.begin(), kind_errs.end());
    if (is_crd) {
      crd::apply_defaults(o);
      auto crd_errs = crd::validate(o, nullptr);
      errs.insert(errs.end(), crd_errs.begin(), crd_errs.end());
    }
    if (!errs.empty()) return invalid(r.kind, r.group, name, errs);
    if (is_crd) crd::set_status(o, nullptr, now_string(), false);

    auto p = commit_put(c, key_type(ns, name), std::move(o), nullptr);
    if (is_crd) register_crd(*p);
    return p;
  }

  result<object_ptr> do_update(const resource_info& r, std::string_view ns_in, std::string_view name,
                               json::object in, bool status) {
    auto* c = collection_of(r);
    if (!c) return resource_gone(r);
    std::string ns = r.namespaced ? std::string(ns_in) : std::string();
    key_type k(ns, std::string(name));
    auto it = c->objects.find(k);
    if (it == c->objects.end()) return not_found(r, name);
    object_ptr old = it->second;
    if (auto* m = in.if_contains("metadata"); m && !m->is_object() && !m->is_null())
      return bad_request_error("metadata must be an object");
    if (auto n = meta_string(in, "name"); !n.empty() && n != name)
      return bad_request_error(fmt::format("the name of the object ({}) does not match the name on the URL ({})", n, name));
    if (auto mns = meta_string(in, "namespace"); r.namespaced && !mns.empty() && mns != ns)
      return bad_request_error("the namespace of the provided object does not match the namespace sent on the request");
    if (auto rv = meta_string(in, "resourceVersion"); !rv.empty() && rv != meta_string(*old, "resourceVersion"))
      return conflict(r, name, stale_message);
    if (auto uid = meta_string(in, "uid"); !uid.empty() && uid != meta_string(*old, "uid"))
      return conflict(r, name, fmt::format("Precondition failed: UID in precondition: {}, UID in object meta: {}", uid,
                                           meta_string(*old, "uid")));

    bool is_crd = c == crd_col_;
    json::object o;
    if (status) {
      o = *old;
      if (auto* s = in.if_contains("status")) o["status"] = *s;
      else o.erase("status");
    } else {
      o = std::move(in);
      admit(r, o);
      auto& meta = meta_of(o);
      const auto* old_meta = meta_ptr(*old);
      for (auto f : {"uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"}) {
        meta.erase(f);
        if (old_meta)
          if (auto* v = old_meta->if_contains(f)) meta[f] = *v;
      }
      meta.erase("selfLink");
      meta.erase("managedFields");
      meta["name"] = name;
      if (r.namespaced) meta["namespace"] = ns;
      else meta.erase("namespace");
      if (meta.contains("generateName") && meta.at("generateName").is_null()) meta.erase("generateName");
      if (r.status_subresource) {
        if (auto* s = old->if_contains("status")) o["status"] = *s;
        else o.erase("status");
      }
      if (c == ns_col_) {
        if (auto* s = old->if_contains("spec")) o["spec"] = *s;
      }
      if (!r.custom) builtin::apply_defaults(r, o, old.get(), next_ip_);
      // No new finalizers once deletion started.
      if (deleting(*old)) {
        auto before = finalizers_of(*old);
        for (const auto& f : finalizers_of(o))
          if (std::find(before.begin(), before.end(), f) == before.end())
            return invalid(r.kind, r.group, name,
                           {{"FieldValueForbidden", "metadata.finalizers",
                             "Forbidden: no new finalizers can be added if the object is being deleted, found new "
                             "finalizers []string{\"" + f + "\"}"}});
      }
      auto errs = builtin::validate_metadata(r, meta_of(o));
      auto kind_errs = builtin::validate(r, o, old.get());
      errs.insert(errs.end(), kind_errs.begin(), kind_errs.end());
      if (is_crd) {
        crd::apply_defaults(o);
        auto crd_errs = crd::validate(o, old.get());
        errs.insert(errs.end(), crd_errs.begin(), crd_errs.end());
      }
      if (!errs.empty()) return invalid(r.kind, r.group, name, errs);
      if (is_crd) {
        const json::object* old_status = nullptr;
        if (auto* s = old->if_contains("status")) old_status = s->if_object();
        crd::set_status(o, old_status, now_string(), deleting(*old));
      }
    }
    o["apiVersion"] = r.api_version();
    o["kind"] = r.kind;
    // Unchanged: no new resourceVersion, no event (as a real server).
    meta_of(o)["resourceVersion"] = std::string(meta_string(*old, "resourceVersion"));
    if (o == *old) return old;
    if (r.tracks_generation && !status && !spec_equal(o, *old)) {
      std::int64_t gen = 0;
      if (auto* m = meta_ptr(*old))
        if (auto* g = m->if_contains("generation"); g && g->is_int64()) gen = g->as_int64();
      meta_of(o)["generation"] = gen + 1;
    }
    auto p = commit_put(c, k, std::move(o), old);
    if (is_crd) register_crd(*p);
    if (deleting(*p)) maybe_finish(c, k);
    return p;
  }

  result<object_ptr> do_remove(const resource_info& r, std::string_view ns_in, std::string_view name,
                               const delete_options& opts, bool* deleted) {
    auto* c = collection_of(r);
    if (!c) return resource_gone(r);
    std::string ns = r.namespaced ? std::string(ns_in) : std::string();
    key_type k(ns, std::string(name));
    auto it = c->objects.find(k);
    if (it == c->objects.end()) return not_found(r, name);
    const auto& cur = *it->second;
    if (!opts.precondition_uid.empty() && opts.precondition_uid != meta_string(cur, "uid"))
      return conflict(r, name, fmt::format("Precondition failed: UID in precondition: {}, UID in object meta: {}",
                                           opts.precondition_uid, meta_string(cur, "uid")));
    if (!opts.precondition_resource_version.empty() &&
        opts.precondition_resource_version != meta_string(cur, "resourceVersion"))
      return conflict(r, name,
                      fmt::format("Precondition failed: ResourceVersion in precondition: {}, ResourceVersion in meta: {}",
                                  opts.precondition_resource_version, meta_string(cur, "resourceVersion")));
    if (c == ns_col_ && (name == "default" || name == "kube-system" || name == "kube-public"))
      return forbidden(r, name, "this namespace may not be deleted");
    bool erased = false;
    auto p = delete_object(c, k, opts.policy, erased);
    if (deleted) *deleted = erased;
    return p;
  }

  // Is a deleting object still held (finalizers, or content of a namespace or CRD)?
  bool held(collection* c, const json::object& o) const {
    if (!finalizers_of(o).empty()) return true;
    auto name = std::string(meta_string(o, "name"));
    if (c == ns_col_) return ns_count_.contains(name);
    if (c == crd_col_)
      if (auto it = crd_collections_.find(name); it != crd_collections_.end()) return !it->second->objects.empty();
    return false;
  }

  bool has_dependents(const std::string& uid) const {
    auto it = dependents_.find(uid);
    return it != dependents_.end() && !it->second.empty();
  }

  object_ptr lookup(collection* c, const key_type& k) const {
    auto it = c->objects.find(k);
    return it == c->objects.end() ? nullptr : it->second;
  }

  object_ptr delete_object(collection* c, const key_type& k, propagation policy, bool& erased) {
    object_ptr cur = lookup(c, k);
    std::string uid(meta_string(*cur, "uid"));
    if (policy == propagation::orphan) orphan_dependents(uid);
    json::object o = *cur;
    bool changed = false;
    bool was_deleting = deleting(o);
    if (policy == propagation::foreground && has_dependents(uid) && !has_finalizer(o, "foregroundDeletion")) {
      auto fs = finalizers_of(o);
      fs.push_back("foregroundDeletion");
      set_finalizers(o, fs);
      changed = true;
    }
    if (!held(c, o) && !changed) {
      erased = true;
      return erase_object(c, k, policy);
    }
    if (!was_deleting) {
      auto& m = meta_of(o);
      m["deletionTimestamp"] = now_string();
      m["deletionGracePeriodSeconds"] = 0;
      if (c == ns_col_) {
        auto& st = o["status"];
        if (!st.is_object()) st = json::object();
        st.as_object()["phase"] = "Terminating";
      }
      if (c == crd_col_) {
        const json::object* old_status = nullptr;
        if (auto* s = cur->if_contains("status")) old_status = s->if_object();
        crd::set_status(o, old_status, now_string(), true);
      }
      changed = true;
    }
    object_ptr p = cur;
    if (changed) p = commit_put(c, k, std::move(o), cur);
    // Content and dependents go now; the object follows when nothing holds it any more.
    auto name = k.second;
    if (c == ns_col_) delete_namespace_content(name);
    if (c == crd_col_)
      if (auto it = crd_collections_.find(name); it != crd_collections_.end()) delete_all(it->second);
    if (policy == propagation::foreground) delete_dependents(uid, propagation::foreground);
    erased = false;
    if (auto last = maybe_finish(c, k)) {
      erased = true;
      return last;
    }
    if (auto now = lookup(c, k)) return now;
    erased = true;  // finished inside the cascade (a foreground owner whose last dependent went)
    return p;
  }

  // Erases a deleting object that nothing holds any more; returns its last state if it did.
  object_ptr maybe_finish(collection* c, const key_type& k) {
    auto cur = lookup(c, k);
    if (!cur || !deleting(*cur) || held(c, *cur)) return nullptr;
    return erase_object(c, k, propagation::background);
  }

  object_ptr erase_object(collection* c, const key_type& k, propagation policy) {
    auto last = commit_erase(c, k);
    if (c == crd_col_) unregister_crd(k.second);
    std::string uid(meta_string(*last, "uid"));
    // Garbage collection: dependents whose every owner is gone are deleted; the others lose
    // their reference to this owner.
    delete_dependents(uid, policy == propagation::foreground ? propagation::foreground : propagation::background);
    for (const auto& owner : owner_uids(last.get())) check_foreground(owner);
    if (!k.first.empty()) maybe_finish(ns_col_, key_type("", k.first));
    if (!c->crd_name.empty() && c->objects.empty()) maybe_finish(crd_col_, key_type("", c->crd_name));
    return last;
  }

  void delete_dependents(const std::string& uid, propagation policy) {
    auto it = dependents_.find(uid);
    if (it == dependents_.end()) return;
    std::vector<ref> deps(it->second.begin(), it->second.end());
    for (const auto& d : deps) {
      key_type dk(d.ns, d.name);
      auto dep = lookup(d.c, dk);
      if (!dep) continue;
      auto owners = owner_uids(dep.get());
      bool other_owner = std::any_of(owners.begin(), owners.end(),
                                     [&](const std::string& u) { return u != uid && uid_index_.contains(u); });
      if (other_owner) {
        remove_owner_ref(d.c, dk, uid);
        continue;
      }
      if (deleting(*dep) && policy != propagation::foreground) continue;
      bool ignored = false;
      delete_object(d.c, dk, policy, ignored);
    }
  }

  void remove_owner_ref(collection* c, const key_type& k, const std::string& uid) {
    auto cur = lookup(c, k);
    if (!cur) return;
    json::object o = *cur;
    auto& m = meta_of(o);
    if (auto* refs = m.if_contains("ownerReferences"); refs && refs->is_array()) {
      json::array kept;
      for (const auto& rv : refs->as_array())
        if (!(rv.is_object() && rv.as_object().contains("uid") && rv.as_object().at("uid") == json::value(uid)))
          kept.push_back(rv);
      if (kept.empty()) m.erase("ownerReferences");
      else m["ownerReferences"] = std::move(kept);
    }
    commit_put(c, k, std::move(o), cur);
  }

  void orphan_dependents(const std::string& uid) {
    auto it = dependents_.find(uid);
    if (it == dependents_.end()) return;
    std::vector<ref> deps(it->second.begin(), it->second.end());
    for (const auto& d : deps) remove_owner_ref(d.c, key_type(d.ns, d.name), uid);
  }

  // An owner in foreground deletion loses its foregroundDeletion finalizer once its last
  // dependent is gone.
  void check_foreground(const std::string& owner_uid) {
    auto it = uid_index_.find(owner_uid);
    if (it == uid_index_.end() || has_dependents(owner_uid)) return;
    ref r = it->second;
    key_type k(r.ns, r.name);
    auto cur = lookup(r.c, k);
    if (!cur || !deleting(*cur) || !has_finalizer(*cur, "foregroundDeletion")) return;
    json::object o = *cur;
    auto fs = finalizers_of(o);
    std::erase(fs, std::string("foregroundDeletion"));
    set_finalizers(o, fs);
    commit_put(r.c, k, std::move(o), cur);
    maybe_finish(r.c, k);
  }

  void delete_namespace_content(const std::string& ns) {
    for (auto* c : std::vector<collection*>(order_)) {
      if (c->versions.empty() || !c->primary->namespaced) continue;
      std::vector<key_type> keys;
      for (auto it = c->objects.lower_bound(key_type(ns, "")); it != c->objects.end() && it->first.first == ns; ++it)
        keys.push_back(it->first);
      for (const auto& k : keys) {
        auto cur = lookup(c, k);
        if (!cur || deleting(*cur)) continue;
        bool ignored = false;
        delete_object(c, k, propagation::background, ignored);
      }
    }
  }

  void delete_all(collection* c) {
    std::vector<key_type> keys;
    for (const auto& kv : c->objects) keys.push_back(kv.first);
    for (const auto& k : keys) {
      auto cur = lookup(c, k);
      if (!cur || deleting(*cur)) continue;
      bool ignored = false;
      delete_object(c, k, propagation::background, ignored);
    }
  }

  store_options opts_;
  std::uint64_t rv_ = 0;
  std::mt19937_64 rng_;
  std::uint32_t next_ip_ = (10u << 24) | (96u << 16) | 1u;  // 10.96.0.1 (the kubernetes service's)

  std::vector<std::unique_ptr<resource_info>> infos_;      // every resource_info ever (never freed)
  std::vector<std::unique_ptr<collection>> collections_;  // likewise
  std::vector<collection*> order_;                         // served, in registration order
  std::map<std::string, resource_info*, std::less<>> by_gvr_;
  std::map<std::string, resource_info*, std::less<>> by_kind_;
  std::map<std::string, collection*, std::less<>> by_gr_;
  std::map<std::string, collection*> crd_collections_;
  collection* ns_col_ = nullptr;
  collection* crd_col_ = nullptr;

  std::unordered_map<std::string, ref> uid_index_;
  std::unordered_map<std::string, std::set<ref>> dependents_;  // owner uid -> dependents
  std::unordered_map<std::string, std::size_t> ns_count_;       // namespaced objects per namespace

  std::vector<std::function<void(const change&)>> callbacks_;
  struct admission {
    std::string group, resource;
    std::function<void(json::object&)> mutate;
  };
  std::vector<admission> admission_;
  std::deque<std::pair<collection*, change>> pending_;
  bool dispatching_ = false;
};

}  // namespace

std::unique_ptr<store> make_store() { return make_store(store_options{}); }
std::unique_ptr<store> make_store(store_options opts) { return std::make_unique<store_impl>(std::move(opts)); }

}  // namespace kubesim
