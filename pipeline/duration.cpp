#include "pipeline/duration.hpp"

#include <cstdint>

#include "pipeline/utf8.hpp"

namespace tollgate::pipeline {

namespace {
constexpr std::int64_t kMaxSeconds = 366LL * 24 * 3600;  // a year: anything longer is a mistake
}

namespace {

// "30 minutes" / "1 hour 30 min" -> "30m" / "1h30m", to suggest the short form; "" if the text is
// not such a phrase.
std::string short_form(std::string_view text) {
  static const std::pair<const char*, char> words[] = {
      {"seconds", 's'}, {"second", 's'}, {"secs", 's'}, {"sec", 's'},  {"minutes", 'm'}, {"minute", 'm'},
      {"mins", 'm'},    {"min", 'm'},    {"hours", 'h'}, {"hour", 'h'}, {"hrs", 'h'},     {"hr", 'h'},
      {"days", 'd'},    {"day", 'd'}};
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    std::size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    if (i == start) return "";
    out += text.substr(start, i - start);
    while (i < text.size() && text[i] == ' ') ++i;
    std::size_t word = i;
    while (i < text.size() && ((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= 'A' && text[i] <= 'Z'))) ++i;
    std::string w(text.substr(word, i - word));
    for (auto& c : w) c = static_cast<char>(c | 0x20);
    char unit = 0;
    for (const auto& [name, u] : words) {
      if (w == name || (w.size() == 1 && w[0] == u)) unit = u;
    }
    if (!unit) return "";
    out += unit;
    while (i < text.size() && (text[i] == ' ' || text[i] == ',')) ++i;
    if (i + 3 < text.size() && text.substr(i, 4) == "and ") i += 4;
  }
  return out;
}

}  // namespace

tl::expected<std::chrono::seconds, std::string> parse_duration(std::string_view text) {
  if (text.empty()) return tl::unexpected(std::string("empty duration"));
  if (text.find_first_not_of("0123456789dhms") != std::string_view::npos) {
    std::string fixed = short_form(text);
    if (!fixed.empty() && fixed != text && fixed.find_first_not_of("0123456789dhms") == std::string::npos) {
      return tl::unexpected("write '" + std::string(text) + "' as '" + fixed + "' (e.g. '90s', '30m', '1h30m', '2d')");
    }
  }
  std::int64_t total = 0;
  int last_rank = 5;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t start = i;
    std::int64_t n = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      n = n * 10 + (text[i] - '0');
      if (n > kMaxSeconds) return tl::unexpected("duration '" + std::string(text) + "' is longer than a year");
      ++i;
    }
    if (i == start) {
      return tl::unexpected("'" + std::string(utf8_char_at(text, i)) + "' in '" + std::string(text) +
                            "' is not a number; write e.g. '90s', '30m', '1h30m' or '2d'");
    }
    if (i == text.size()) {
      return tl::unexpected("'" + std::string(text.substr(start)) + "' has no unit (use s, m, h or d)");
    }
    int rank = 0;
    std::int64_t unit = 1;
    switch (text[i]) {
      case 'd': rank = 4; unit = 86400; break;
      case 'h': rank = 3; unit = 3600; break;
      case 'm': rank = 2; unit = 60; break;
      case 's': rank = 1; unit = 1; break;
      default:
        return tl::unexpected("unknown unit '" + std::string(utf8_char_at(text, i)) + "' in '" + std::string(text) +
                              "' (use s, m, h or d)");
    }
    if (rank >= last_rank) {
      return tl::unexpected("units in '" + std::string(text) + "' must go from largest to smallest, each once (e.g. '1h30m')");
    }
    last_rank = rank;
    total += n * unit;
    if (total > kMaxSeconds) return tl::unexpected("duration '" + std::string(text) + "' is longer than a year");
    ++i;
  }
  return std::chrono::seconds(total);
}

std::string format_duration(std::chrono::seconds d) {
  std::int64_t s = d.count();
  if (s == 0) return "0s";
  std::string out;
  for (auto [unit, suffix] : {std::pair{86400LL, 'd'}, {3600LL, 'h'}, {60LL, 'm'}, {1LL, 's'}}) {
    if (s >= unit) {
      out += std::to_string(s / unit) + suffix;
      s %= unit;
    }
  }
  return out;
}

}  // namespace tollgate::pipeline
