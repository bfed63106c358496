#pragma once
// JSON-lines logging with Flagger's field names: {"level","ts","caller","msg",...}.
// One line per call, written whole with one fwrite, so lines never interleave.
//
// Thread affinity: any thread may call, but the sink and level are set once at startup.
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <string_view>
#include <variant>

namespace canaryd::log {

enum class level { debug = 0, info, warn, error };

// "debug", "info", "warn", "error" (also "warning", "fatal", "panic" mapped to error); false if unknown.
bool parse_level(std::string_view s, level& out) noexcept;
void set_level(level l) noexcept;
level current_level() noexcept;
void set_sink(std::FILE* f) noexcept;  // default stderr
bool enabled(level l) noexcept;

struct field {
  using value_type = std::variant<std::string_view, std::int64_t, double, bool>;
  std::string_view key;
  value_type value;
  field(std::string_view k, std::string_view v) : key(k), value(v) {}
  field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  field(std::string_view k, bool v) : key(k), value(v) {}
  field(std::string_view k, double v) : key(k), value(v) {}
  template <class I>
    requires(std::is_integral_v<I> && !std::is_same_v<I, bool>)
  field(std::string_view k, I v) : key(k), value(static_cast<std::int64_t>(v)) {}
};

void write(level l, std::string_view msg, std::initializer_list<field> fields = {});

inline void debug(std::string_view m, std::initializer_list<field> f = {}) { if (enabled(level::debug)) write(level::debug, m, f); }
inline void info(std::string_view m, std::initializer_list<field> f = {}) { if (enabled(level::info)) write(level::info, m, f); }
inline void warn(std::string_view m, std::initializer_list<field> f = {}) { if (enabled(level::warn)) write(level::warn, m, f); }
inline void error(std::string_view m, std::initializer_list<field> f = {}) { write(level::error, m, f); }

}  // namespace canaryd::log
