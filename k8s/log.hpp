#pragma once
// JSON-lines logging with Flagger's (zap's) field names, in its order: {"level","ts","caller","msg",...}.
// One line per call, written whole with one fwrite, so lines never interleave.
//
// Thread affinity: any thread may call, but the sink and level are set once at startup.
#include <cstdint>
#include <cstdio>
#include <string>
#include <initializer_list>
#include <string_view>
#include <variant>
#include <version>
#if defined(__cpp_lib_source_location)
#include <source_location>
#endif

namespace canaryd::log {

// The call site of a log line. std::source_location where the library has it; clang 14 with
// libstdc++ 12 (the fuzz build) lacks the __builtin_source_location it needs, so there the same
// interface is made from the builtins clang and GCC have had for long.
#if defined(__cpp_lib_source_location)
using loc = std::source_location;
#else
class loc {
 public:
  static constexpr loc current(const char* file = __builtin_FILE(), const char* function = __builtin_FUNCTION(),
                               unsigned line = __builtin_LINE()) noexcept {
    loc l;
    l.file_ = file;
    l.function_ = function;
    l.line_ = line;
    return l;
  }
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr const char* function_name() const noexcept { return function_; }
  constexpr std::uint_least32_t line() const noexcept { return line_; }
  constexpr std::uint_least32_t column() const noexcept { return 0; }

 private:
  const char* file_ = "";
  const char* function_ = "";
  std::uint_least32_t line_ = 0;
};
#endif

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

// `where` becomes zap's short `caller` field: the source file's directory and name, and the
// line ("daemon/canary_runner.cpp:120"), taken at the call site by the defaults below.
void write(level l, std::string_view msg, std::initializer_list<field> fields = {},
           const loc& where = loc::current());

// The short caller of a source location: the last directory and the file name, with the line.
std::string short_caller(const loc& where);

inline void debug(std::string_view m, std::initializer_list<field> f = {}, const loc& w = loc::current()) {
  if (enabled(level::debug)) write(level::debug, m, f, w);
}
inline void info(std::string_view m, std::initializer_list<field> f = {}, const loc& w = loc::current()) {
  if (enabled(level::info)) write(level::info, m, f, w);
}
inline void warn(std::string_view m, std::initializer_list<field> f = {}, const loc& w = loc::current()) {
  if (enabled(level::warn)) write(level::warn, m, f, w);
}
inline void error(std::string_view m, std::initializer_list<field> f = {}, const loc& w = loc::current()) {
  write(level::error, m, f, w);
}

}  // namespace canaryd::log
