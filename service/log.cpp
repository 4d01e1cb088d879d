#include "service/log.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
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

void append_timestamp(std::string& out) {
  append_utc_time(out,
                  std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

thread_local std::string* t_batch = nullptr;  // set while a Batch lives on this thread

void write_out(std::string_view lines) {
  std::lock_guard lock(g_mutex);
  std::fwrite(lines.data(), 1, lines.size(), stderr);
}

void emit(std::string& out) {
  out += "}\n";
  if (t_batch != nullptr) {
    *t_batch += out;
    return;
  }
  write_out(out);
}

void begin(std::string& out, Level level, std::string_view msg) {
  out.reserve(256);
  out += R"({"ts":")";
  append_timestamp(out);
  out += R"(","level":")";
  out += name(level);
  out += R"(","msg":)";
  append_json_string(out, msg);
}

}  // namespace

// The date and time are formatted once per second per thread (this runs for every log line), the
// milliseconds every time.
void append_utc_time(std::string& out, std::int64_t unix_ms) {
  const std::int64_t secs = unix_ms >= 0 ? unix_ms / 1000 : (unix_ms - 999) / 1000;
  const int ms = static_cast<int>(unix_ms - secs * 1000);
  thread_local std::int64_t cached_secs = -1;
  thread_local char cached[64] = {};
  thread_local int cached_len = 0;
  if (secs != cached_secs) {
    const std::time_t t = static_cast<std::time_t>(secs);
    std::tm tm{};
    gmtime_r(&t, &tm);
    cached_len = std::snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                               tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cached_secs = secs;
  }
  out.append(cached, static_cast<std::size_t>(std::max(cached_len, 0)));
  const char frac[] = {'.', static_cast<char>('0' + ms / 100), static_cast<char>('0' + ms / 10 % 10),
                       static_cast<char>('0' + ms % 10), 'Z'};
  out.append(frac, sizeof frac);
}

void append_json_string(std::string& out, std::string_view s) {
  // Printable ASCII without '"' or '\\' (nearly every key, id and message) is copied as is;
  // anything else goes through nlohmann's escaping, which also repairs invalid UTF-8.
  for (char c : s) {
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
      out += nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      return;
    }
  }
  out += '"';
  out += s;
  out += '"';
}

namespace {
bool fixed_key(std::string_view k) { return k == "ts" || k == "level" || k == "msg"; }
}  // namespace

void write_fields(Level level, std::string_view msg, std::initializer_list<Field> fields) {
  if (!enabled(level)) return;
  std::string out;
  begin(out, level, msg);
  for (const auto& [k, v] : fields) {
    if (fixed_key(k)) continue;
    out += ',';
    append_json_string(out, k);
    out += ':';
    if (const auto* sv = std::get_if<std::string_view>(&v)) {
      append_json_string(out, *sv);
    } else if (const auto* i = std::get_if<std::int64_t>(&v)) {
      out += std::to_string(*i);
    } else if (const auto* d = std::get_if<double>(&v)) {
      out += nlohmann::json(*d).dump();
    } else {
      out += std::get<bool>(v) ? "true" : "false";
    }
  }
  emit(out);
}

Batch::Batch() {
  thread_local std::string buffer;
  buffer.clear();
  t_batch = &buffer;
}

Batch::~Batch() {
  std::string* lines = t_batch;
  t_batch = nullptr;
  if (lines == nullptr || lines->empty()) return;
  write_out(*lines);
  lines->clear();
}

void set_level(Level level) { g_level = level; }
bool enabled(Level level) { return level >= g_level.load(std::memory_order_relaxed); }

void write(Level level, std::string_view msg, const nlohmann::json& fields) {
  if (!enabled(level)) return;
  // Appended piece by piece rather than through an ordered_json copy of `fields` (a second JSON
  // tree cost more than the rest of the line). Lines written per request use write_fields.
  std::string out;
  begin(out, level, msg);
  if (fields.is_object()) {
    for (const auto& [k, v] : fields.items()) {
      if (fixed_key(k)) continue;  // never shadow the fixed keys
      out += ',';
      append_json_string(out, k);
      out += ':';
      out += v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
  }
  emit(out);
}

}  // namespace tollgate::service::log
