#pragma once
// Durations in pipeline files: one or more of <n>d <n>h <n>m <n>s, largest unit first ("1h30m").
#include <chrono>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace tollgate::pipeline {

// Error text says what is wrong, e.g. "'30' has no unit (use s, m, h or d)".
[[nodiscard]] tl::expected<std::chrono::seconds, std::string> parse_duration(std::string_view text);

// Inverse of parse_duration, shortest form: 5400s -> "1h30m".
[[nodiscard]] std::string format_duration(std::chrono::seconds d);

}  // namespace tollgate::pipeline
