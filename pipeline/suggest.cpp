#include "pipeline/suggest.hpp"

#include <algorithm>
#include <cctype>
#include <vector>

namespace tollgate::pipeline {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); };
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::size_t> prev2(m + 1), prev(m + 1), cur(m + 1);
  for (std::size_t j = 0; j <= m; ++j) prev[j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= m; ++j) {
      std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) && lower(a[i - 2]) == lower(b[j - 1])) {
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
      }
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[m];
}

std::optional<std::string> closest(std::string_view word, std::span<const std::string> candidates) {
  if (word.empty() || word.size() > 256) return std::nullopt;
  std::optional<std::string> best;
  std::size_t best_d = static_cast<std::size_t>(-1);
  for (const auto& c : candidates) {
    if (c == word) continue;
    std::size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  if (!best) return std::nullopt;
  // A typo changes at most about a third of a word (and always allows one edit).
  std::size_t limit = std::max<std::size_t>(1, std::max(word.size(), best->size()) / 3);
  if (best_d <= limit) return best;
  // Else a word that starts with a candidate, or is its start: 'automatic' -> 'auto',
  // 'squash-merge' -> 'squash'; or names its last part: 'version' -> 'release.version'.
  std::optional<std::string> affix;
  for (const auto& c : candidates) {
    bool prefix = std::min(word.size(), c.size()) >= 3 && (word.rfind(c, 0) == 0 || c.rfind(word, 0) == 0);
    bool suffix = c.size() > word.size() && c.compare(c.size() - word.size() - 1, std::string::npos, "." + std::string(word)) == 0;
    if (prefix || suffix) {
      if (affix) return std::nullopt;  // ambiguous
      affix = c;
    }
  }
  return affix;
}

std::string did_you_mean(std::string_view word, std::span<const std::string> candidates) {
  if (auto c = closest(word, candidates)) return "; did you mean '" + *c + "'?";
  return "";
}

}  // namespace tollgate::pipeline
