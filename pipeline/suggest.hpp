#pragma once
// "did you mean" suggestions for misspelt keys, enum values and names.
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace tollgate::pipeline {

// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions), case-insensitive.
[[nodiscard]] std::size_t edit_distance(std::string_view a, std::string_view b);

// The closest candidate if it is close enough to be a plausible typo of `word`, else nothing.
[[nodiscard]] std::optional<std::string> closest(std::string_view word,
                                                 std::span<const std::string> candidates);

// "; did you mean 'x'?" or "".
[[nodiscard]] std::string did_you_mean(std::string_view word, std::span<const std::string> candidates);

}  // namespace tollgate::pipeline
