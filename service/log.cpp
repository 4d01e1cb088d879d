#include "service/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace tollgate::service::log {
namespace {
std::atomic<Level> g_level{Level::info};
std::mutex g_mutex;

const char* name(Level l) {
  switch (l) {
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warn";
    case Level::error: return "error";
  }
  return "info";
}

std::string timestamp() {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}
}  // namespace

void set_level(Level level) { g_level = level; }
bool enabled(Level level) { return level >= g_level.load(std::memory_order_relaxed); }

void write(Level level, std::string_view msg, const nlohmann::json& fields) {
  if (!enabled(level)) return;
  // Appended piece by piece rather than through an ordered_json copy of `fields`: this runs once
  // per delivery, and building a second JSON tree cost more than the rest of the line.
  constexpr auto replace = nlohmann::json::error_handler_t::replace;
  std::string out;
  out.reserve(256);
  out += R"({"ts":")";
  out += timestamp();
  out += R"(","level":")";
  out += name(level);
  out += R"(","msg":)";
  out += nlohmann::json(msg).dump(-1, ' ', false, replace);
  if (fields.is_object()) {
    for (const auto& [k, v] : fields.items()) {
      if (k == "ts" || k == "level" || k == "msg") continue;  // never shadow the fixed keys
      out += ',';
      out += nlohmann::json(k).dump(-1, ' ', false, replace);
      out += ':';
      out += v.dump(-1, ' ', false, replace);
    }
  }
  out += "}\n";
  std::lock_guard lock(g_mutex);
  std::fwrite(out.data(), 1, out.size(), stderr);
}

}  // namespace tollgate::service::log
