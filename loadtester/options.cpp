#include "loadtester/options.hpp"

#include <charconv>
#include <fmt/format.h>
#include <functional>
#include <regex>
#include <string_view>

#include "core/duration.hpp"

namespace canaryd::loadtester {
namespace {

using setter = std::function<std::optional<std::string>(options&, std::string_view)>;

struct flag_def {
  std::string_view name;
  std::string_view type;  // shown in the usage; "" for a boolean flag
  std::string_view help;
  setter set;
};

std::optional<bool> parse_bool(std::string_view v) {
  // Go's strconv.ParseBool.
  if (v == "1" || v == "t" || v == "T" || v == "true" || v == "TRUE" || v == "True") return true;
  if (v == "0" || v == "f" || v == "F" || v == "false" || v == "FALSE" || v == "False") return false;
  return std::nullopt;
}

setter boolean(bool options::*m) {
  return [m](options& o, std::string_view v) -> std::optional<std::string> {
    auto b = parse_bool(v);
    if (!b) return fmt::format("invalid boolean value \"{}\"", v);
    o.*m = *b;
    return std::nullopt;
  };
}

const std::vector<flag_def>& flags() {
  static const std::vector<flag_def> defs = {
      {"port", " string", "Port to listen on (default 9090, as Flagger's binary; its Helm chart passes -port=8080).",
       [](options& o, std::string_view v) -> std::optional<std::string> {
         int n = -1;
         auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
         if (ec != std::errc{} || p != v.data() + v.size() || n < 0 || n > 65535)
           return fmt::format("invalid port \"{}\"", v);
         o.port = n;
         return std::nullopt;
       }},
      {"listen-address", " string", "Address to bind -port on (default: all interfaces).",
       [](options& o, std::string_view v) -> std::optional<std::string> {
         o.listen_address = std::string(v);
         return std::nullopt;
       }},
      {"timeout", " duration", "Load test exec timeout: a command still running after it is killed (default 1h0m0s).",
       [](options& o, std::string_view v) -> std::optional<std::string> {
         auto d = parse_go_duration(v);
         if (!d || d->count() <= 0) return fmt::format("invalid duration \"{}\" (want a positive Go duration like 30s or 1h)", v);
         o.timeout = *d;
         return std::nullopt;
       }},
      {"log-level", " string", "Log level can be: debug, info, warning, error (default info).",
       [](options& o, std::string_view v) -> std::optional<std::string> {
         if (v != "debug" && v != "info" && v != "warn" && v != "warning" && v != "error" && v != "fatal" && v != "panic")
           return fmt::format("invalid log level \"{}\" (want debug, info, warn or error)", v);
         o.log_level = std::string(v);
         return std::nullopt;
       }},
      {"namespace-regexp", " string", "Only canaries whose namespace matches this regular expression may run tasks.",
       [](options& o, std::string_view v) -> std::optional<std::string> {
         try {
           std::regex re{std::string(v)};
         } catch (const std::regex_error& e) {
           return fmt::format("invalid regular expression \"{}\": {}", v, e.what());
         }
         o.namespace_regexp = std::string(v);
         return std::nullopt;
       }},
      {"zap-encoding", " string", "Accepted for compatibility: logs are always JSON lines.",
       [](options& o, std::string_view v) -> std::optional<std::string> {
         if (v != "json" && v != "console") return fmt::format("invalid zap-encoding \"{}\"", v);
         o.zap_encoding = std::string(v);
         return std::nullopt;
       }},
      {"zap-replace-globals", "", "Accepted for compatibility.", boolean(&options::zap_replace_globals)},
      {"version", "", "Print the version and exit.", boolean(&options::version)},
      {"help", "", "Print this help and exit.", boolean(&options::help)},
      {"h", "", "Print this help and exit.", boolean(&options::help)},
  };
  return defs;
}

const flag_def* find_flag(std::string_view name) {
  for (const auto& f : flags())
    if (f.name == name) return &f;
  return nullptr;
}

}  // namespace

std::optional<std::string> parse_options(const std::vector<std::string>& args, options& out) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    if (a.size() < 2 || a[0] != '-') return fmt::format("unexpected argument \"{}\"", a);
    a.remove_prefix(a[1] == '-' ? 2 : 1);
    if (a.empty() || a[0] == '-' || a[0] == '=') return fmt::format("bad flag syntax: {}", args[i]);
    std::string_view name = a, value;
    bool has_value = false;
    if (auto eq = a.find('='); eq != std::string_view::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      has_value = true;
    }
    const flag_def* f = find_flag(name);
    if (f == nullptr) return fmt::format("flag provided but not defined: -{}", name);
    if (!has_value) {
      if (f->type.empty()) {
        value = "true";
      } else {
        if (i + 1 >= args.size()) return fmt::format("flag needs an argument: -{}", name);
        value = args[++i];
      }
    }
    if (auto err = f->set(out, value)) return fmt::format("invalid value \"{}\" for flag -{}: {}", value, name, *err);
  }
  return std::nullopt;
}

std::string usage() {
  std::string s = "Usage of canary-loadtester:\n";
  for (const auto& f : flags()) s += fmt::format("  -{}{}\n    \t{}\n", f.name, f.type, f.help);
  return s;
}

}  // namespace canaryd::loadtester
