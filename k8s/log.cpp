#include "k8s/log.hpp"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <string>

#include "k8s/json_text.hpp"

namespace canaryd::log {
namespace {
std::atomic<level> g_level{level::info};
std::atomic<std::FILE*> g_sink{nullptr};

std::string_view name(level l) {
  switch (l) {
    case level::debug: return "debug";
    case level::info: return "info";
    case level::warn: return "warn";
    case level::error: return "error";
  }
  return "info";
}
}  // namespace

bool parse_level(std::string_view s, level& out) noexcept {
  if (s == "debug") out = level::debug;
  else if (s == "info") out = level::info;
  else if (s == "warn" || s == "warning") out = level::warn;
  else if (s == "error" || s == "fatal" || s == "panic") out = level::error;
  else return false;
  return true;
}

void set_level(level l) noexcept { g_level = l; }
level current_level() noexcept { return g_level; }
void set_sink(std::FILE* f) noexcept { g_sink = f; }
bool enabled(level l) noexcept { return l >= g_level.load(std::memory_order_relaxed); }

std::string short_caller(const loc& where) {
  std::string_view file = where.file_name();
  // Keep "dir/file.cpp": cut before the second-to-last '/'.
  if (auto last = file.rfind('/'); last != std::string_view::npos && last > 0) {
    if (auto prev = file.rfind('/', last - 1); prev != std::string_view::npos) file.remove_prefix(prev + 1);
  }
  return fmt::format("{}:{}", file, where.line());
}

void write(level l, std::string_view msg, std::initializer_list<field> fields, const loc& where) {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto secs = system_clock::to_time_t(now);
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);

  std::string line;
  line.reserve(128 + msg.size());
  line += "{\"level\":\"";
  line += name(l);
  line += "\",\"ts\":\"";
  fmt::format_to(std::back_inserter(line), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  line += "\",\"caller\":";
  json_text::append_quoted(line, short_caller(where));
  line += ",\"msg\":";
  json_text::append_quoted(line, msg);
  for (const auto& f : fields) {
    line.push_back(',');
    json_text::append_quoted(line, f.key);
    line.push_back(':');
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string_view>) {
            json_text::append_quoted(line, v);
          } else if constexpr (std::is_same_v<T, bool>) {
            line += v ? "true" : "false";
          } else if constexpr (std::is_same_v<T, double>) {
            if (std::isfinite(v)) fmt::format_to(std::back_inserter(line), "{}", v);
            else line += "null";
          } else {
            fmt::format_to(std::back_inserter(line), "{}", v);
          }
        },
        f.value);
  }
  line += "}\n";
  std::FILE* sink = g_sink.load();
  if (sink == nullptr) sink = stderr;
  std::fwrite(line.data(), 1, line.size(), sink);
  std::fflush(sink);
}

}  // namespace canaryd::log
