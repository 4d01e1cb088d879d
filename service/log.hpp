#pragma once
// Structured logs: one JSON object per line on stderr, e.g.
// {"ts":"2026-11-23T15:20:01.123Z","level":"info","msg":"delivery stored","host":"github",...}
// Callers never pass secrets; message text is one line, lower case.
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

namespace tollgate::service::log {

enum class Level { debug, info, warn, error };

void set_level(Level level);
[[nodiscard]] bool enabled(Level level);
void write(Level level, std::string_view msg, const nlohmann::json& fields = nlohmann::json::object());

inline void info(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) { write(Level::info, msg, fields); }
inline void warn(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) { write(Level::warn, msg, fields); }
inline void error(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) { write(Level::error, msg, fields); }

}  // namespace tollgate::service::log
