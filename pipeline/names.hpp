#pragma once
// Checks of names users write: git branch names, repository-relative paths, IANA time zones.
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tollgate::pipeline {

// Why `name` is not a valid git branch name (git check-ref-format rules), or nothing if it is.
[[nodiscard]] std::optional<std::string> branch_name_problem(std::string_view name);

// Why `path` is not a safe path relative to a repository root (absolute, `..`, empty segment,
// backslash, control characters), or nothing if it is.
[[nodiscard]] std::optional<std::string> relative_path_problem(std::string_view path);

// Whether `name` is a zone in the system tz database ($TZDIR, else /usr/share/zoneinfo).
[[nodiscard]] bool system_timezone_exists(std::string_view name);

// Zone names listed by the system tz database (zone1970.tab, plus "UTC"), for suggestions.
[[nodiscard]] const std::vector<std::string>& system_timezone_names();

}  // namespace tollgate::pipeline
