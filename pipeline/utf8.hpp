#pragma once
// UTF-8 checks: pipeline files are UTF-8 text, and every message built from them must stay valid
// UTF-8 (it ends up in JSON, check-run annotations and PR comments).
#include <cstddef>
#include <optional>
#include <string_view>

namespace tollgate::pipeline {

// Length of the well-formed UTF-8 sequence starting at s[i] (1..4), or 0 if it is not one
// (overlong forms, surrogates and code points above U+10FFFF are not).
[[nodiscard]] inline std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  auto cont = [&](std::size_t k) { return k < s.size() && (byte(k) & 0xC0) == 0x80; };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(i + 1) || !cont(i + 2)) return 0;
    if (c == 0xE0 && byte(i + 1) < 0xA0) return 0;  // overlong
    if (c == 0xED && byte(i + 1) >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    if (c == 0xF0 && byte(i + 1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && byte(i + 1) >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

// Byte offset of the first ill-formed sequence, or nothing if `s` is valid UTF-8.
[[nodiscard]] inline std::optional<std::size_t> utf8_error(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = utf8_sequence_length(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

// The longest prefix of `s` of at most `max` bytes that does not split a character.
[[nodiscard]] inline std::string_view utf8_prefix(std::string_view s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end);
}

// The character starting at s[i], for quoting in messages (input is checked to be UTF-8 first;
// a stray byte would come back alone).
[[nodiscard]] inline std::string_view utf8_char_at(std::string_view s, std::size_t i) {
  std::size_t n = utf8_sequence_length(s, i);
  return s.substr(i, n == 0 ? 1 : n);
}

}  // namespace tollgate::pipeline
