#pragma once
// Structured logs: one JSON object per line on stderr, e.g.
// {"ts":"2026-11-23T15:20:01.123Z","level":"info","msg":"delivery stored","host":"github",...}
// Callers never pass secrets; message text is one line, lower case.
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include <nlohmann/json.hpp>

namespace tollgate::service::log {

enum class Level { debug, info, warn, error };

void set_level(Level level);
[[nodiscard]] bool enabled(Level level);
void write(Level level, std::string_view msg, const nlohmann::json& fields = nlohmann::json::object());

inline void info(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) { write(Level::info, msg, fields); }
inline void warn(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) { write(Level::warn, msg, fields); }
inline void error(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) { write(Level::error, msg, fields); }

// The same line from fields that are views: no JSON tree is built. For lines written once per
// request (the views must outlive the call only).
using Value = std::variant<std::string_view, std::int64_t, double, bool>;
using Field = std::pair<std::string_view, Value>;
void write_fields(Level level, std::string_view msg, std::initializer_list<Field> fields);

// While a Batch lives on a thread, that thread's lines are collected and written together (one
// write(2), one lock) when it ends: for a thread that logs many lines at once (the inbox writer,
// one line per delivery of a commit). Lines of other threads are not delayed. Not nestable.
class Batch {
 public:
  Batch();
  ~Batch();
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;
};

// `s` as a JSON string, quotes included, appended to `out` (invalid UTF-8 becomes U+FFFD).
void append_json_string(std::string& out, std::string_view s);

// Appends RFC 3339 UTC with milliseconds ("2026-11-23T15:20:01.123Z") of a unix time in ms.
void append_utc_time(std::string& out, std::int64_t unix_ms);

}  // namespace tollgate::service::log
