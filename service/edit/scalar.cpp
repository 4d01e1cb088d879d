#include "service/edit/scalar.hpp"

#include <re2/re2.h>

#include <algorithm>
#include <vector>

namespace tollgate::edit {
namespace {

bool is_break(char c) { return c == '\n' || c == '\r'; }
bool is_blank(char c) { return c == ' ' || c == '\t'; }
bool is_space(char c) { return is_blank(c) || is_break(c); }
bool is_flow_indicator(char c) { return c == ',' || c == '[' || c == ']' || c == '{' || c == '}'; }

// Characters YAML does not allow unescaped in a scalar (or that YAML 1.1 reads as line breaks):
// C0 controls but tab, DEL, C1 controls, U+2028/U+2029, U+FEFF, U+FFFE/U+FFFF. Line breaks are
// judged by the callers.
bool needs_escape_at(std::string_view s, std::size_t i, std::size_t& len) {
  auto b = [&](std::size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u; };
  len = 1;
  unsigned char c = b(i);
  if (c < 0x20 && c != '\t') return true;
  if (c == 0x7F) return true;
  if (c == 0xC2 && b(i + 1) >= 0x80 && b(i + 1) <= 0x9F) return len = 2, true;
  if (c == 0xE2 && b(i + 1) == 0x80 && (b(i + 2) == 0xA8 || b(i + 2) == 0xA9)) return len = 3, true;
  if (c == 0xEF && b(i + 1) == 0xBB && b(i + 2) == 0xBF) return len = 3, true;
  if (c == 0xEF && b(i + 1) == 0xBF && (b(i + 2) == 0xBE || b(i + 2) == 0xBF)) return len = 3, true;
  return false;
}

bool has_unescapable(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    std::size_t len = 1;
    if (needs_escape_at(s, i, len)) return true;
  }
  return false;
}

std::size_t line_end(std::string_view text, std::size_t pos) {
  while (pos < text.size() && !is_break(text[pos])) ++pos;
  return pos;
}

std::size_t next_line(std::string_view text, std::size_t pos) {
  pos = line_end(text, pos);
  if (pos < text.size() && text[pos] == '\r') ++pos;
  if (pos < text.size() && text[pos] == '\n') ++pos;
  return pos;
}

// End of the plain text that starts at `i` on its line, trailing blanks excluded.
std::size_t plain_line_end(std::string_view text, std::size_t i, bool in_flow) {
  std::size_t last = i;
  for (std::size_t j = i; j < text.size(); ++j) {
    char c = text[j];
    if (is_break(c)) break;
    if (c == '#' && j > i && is_blank(text[j - 1])) break;
    if (c == ':' && (j + 1 == text.size() || is_space(text[j + 1]) || (in_flow && is_flow_indicator(text[j + 1])))) {
      break;
    }
    if (in_flow && is_flow_indicator(c)) break;
    if (!is_blank(c)) last = j + 1;
  }
  return last;
}

struct BlockLayout {
  char style = '|';
  int digit = 0;                  // explicit indentation indicator, 0 if none
  std::size_t indicators_end = 0;  // past `|2-`
  std::size_t header_end = 0;      // end of the header line (before its line break)
  std::size_t content_indent = 0;  // 0: no content lines
  std::size_t end = 0;
};

std::optional<BlockLayout> block_layout(std::string_view text, std::size_t content, std::string_view value) {
  BlockLayout l;
  l.style = text[content];
  std::size_t i = content + 1;
  for (int k = 0; k < 2 && i < text.size(); ++k, ++i) {
    char c = text[i];
    if (c >= '1' && c <= '9') {
      l.digit = c - '0';
    } else if (c != '+' && c != '-') {
      break;
    }
  }
  l.indicators_end = i;
  l.header_end = line_end(text, i);
  l.end = i;
  if (value.find_first_not_of('\n') == std::string_view::npos) return l;  // no content lines
  std::size_t pos = next_line(text, l.header_end);
  // The first line with text gives the indentation, less the value's own leading spaces when an
  // indentation indicator allowed them.
  std::size_t first = pos;
  while (first < text.size()) {
    std::size_t e = line_end(text, first);
    if (text.substr(first, e - first).find_first_not_of(" \t") != std::string_view::npos) break;
    first = next_line(text, first);
  }
  std::size_t m = 0;
  while (first + m < text.size() && text[first + m] == ' ') ++m;
  std::size_t k = 0;
  if (l.digit != 0) {
    while (k < value.size() && value[k] == ' ') ++k;
  }
  if (m <= k) return std::nullopt;
  l.content_indent = m - k;
  for (std::size_t ls = pos; ls < text.size(); ls = next_line(text, ls)) {
    std::size_t e = line_end(text, ls);
    std::string_view line = text.substr(ls, e - ls);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    std::size_t indent = 0;
    while (indent < line.size() && line[indent] == ' ') ++indent;
    if (indent < l.content_indent) break;
    l.end = e;
  }
  return l;
}

}  // namespace

PlainKind classify_plain(std::string_view s) {
  static const RE2 null_re("~|null|Null|NULL|");
  static const RE2 bool_re("y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF");
  // YAML 1.2 core, then the YAML 1.1 forms (binary, leading-zero octal, underscores, base 60).
  static const RE2 int_re(
      "[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+|"
      "[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+");
  // `1.2.3` stays a string: YAML 1.1's own regex would take it, but no parser in use does.
  static const RE2 float_re(
      "[-+]?(?:\\.[0-9]+|[0-9]+(?:\\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\\.(?:inf|Inf|INF)|\\.(?:nan|NaN|NAN)|"
      "[-+]?[0-9][0-9_]*\\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?\\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?|"
      "[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\\.[0-9_]*");
  static const RE2 time_re(
      "[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:(?:[Tt]|[ \\t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\\.[0-9]*)?"
      "(?:[ \\t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)?");
  re2::StringPiece p(s.data(), s.size());
  if (RE2::FullMatch(p, null_re)) return PlainKind::null;
  if (RE2::FullMatch(p, bool_re)) return PlainKind::boolean;
  if (RE2::FullMatch(p, int_re)) return PlainKind::integer;
  if (RE2::FullMatch(p, float_re)) return PlainKind::floating;
  if (RE2::FullMatch(p, time_re)) return PlainKind::timestamp;
  if (s == "<<" || s == "=") return PlainKind::special;
  return PlainKind::string;
}

const char* describe(PlainKind kind) {
  switch (kind) {
    case PlainKind::string: return "a string";
    case PlainKind::null: return "null";
    case PlainKind::boolean: return "a boolean";
    case PlainKind::integer: return "an integer";
    case PlainKind::floating: return "a float";
    case PlainKind::timestamp: return "a timestamp";
    case PlainKind::special: return "a merge key";
  }
  return "a string";
}

bool plain_syntax_ok(std::string_view s, bool in_flow) {
  if (s.empty()) return false;
  if (is_blank(s.front()) || is_blank(s.back())) return false;
  if (s.substr(0, 3) == "---" || s.substr(0, 3) == "...") return false;
  char c0 = s[0];
  if (c0 == '-' || c0 == '?' || c0 == ':') {
    if (s.size() == 1 || is_blank(s[1]) || (in_flow && is_flow_indicator(s[1]))) return false;
  } else if (std::string_view(",[]{}#&*!|>'\"%@`").find(c0) != std::string_view::npos) {
    return false;
  }
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    std::size_t len = 1;
    if (is_break(c) || c == '\t' || needs_escape_at(s, i, len)) return false;
    if (c == ':' && (i + 1 == s.size() || is_blank(s[i + 1]) || (in_flow && is_flow_indicator(s[i + 1])))) return false;
    if (c == '#' && i > 0 && is_blank(s[i - 1])) return false;
    if (in_flow && is_flow_indicator(c)) return false;
  }
  return true;
}

bool single_quote_ok(std::string_view s) {
  return s.find_first_of("\r\n") == std::string_view::npos && !has_unescapable(s);
}

std::string single_quoted(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    out += c;
    if (c == '\'') out += '\'';
  }
  return out + "'";
}

std::string double_quoted(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size();) {
    char c = s[i];
    std::size_t len = 1;
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (needs_escape_at(s, i, len)) {
      // Decode the (one-, two- or three-byte) character and write it as \uXXXX.
      unsigned cp = static_cast<unsigned char>(c);
      if (len == 2) cp = ((cp & 0x1Fu) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3Fu);
      if (len == 3) {
        cp = ((cp & 0x0Fu) << 12) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 6) |
             (static_cast<unsigned char>(s[i + 2]) & 0x3Fu);
      }
      out += "\\u";
      for (int shift = 12; shift >= 0; shift -= 4) out += hex[(cp >> shift) & 0xFu];
      i += len;
      continue;
    } else {
      out += c;
    }
    ++i;
  }
  return out + "\"";
}

std::size_t skip_properties(std::string_view text, std::size_t pos) {
  while (pos < text.size() && (text[pos] == '&' || text[pos] == '!')) {
    if (text.substr(pos, 2) == "!<") {
      std::size_t close = text.find('>', pos);
      pos = close == std::string_view::npos ? text.size() : close + 1;
    } else {
      while (pos < text.size() && !is_space(text[pos]) && !is_flow_indicator(text[pos])) ++pos;
    }
    while (pos < text.size() && is_blank(text[pos])) ++pos;
  }
  return pos;
}

std::size_t skip_blanks(std::string_view text, std::size_t pos) {
  while (pos < text.size()) {
    if (is_space(text[pos])) {
      ++pos;
    } else if (text[pos] == '#') {
      pos = line_end(text, pos);
    } else {
      break;
    }
  }
  return pos;
}

std::optional<std::size_t> plain_end(std::string_view text, std::size_t content, bool in_flow,
                                     std::string_view value) {
  std::size_t end = plain_line_end(text, content, in_flow);
  std::string folded(text.substr(content, end - content));
  // A plain scalar may go on over more lines (folded into one with spaces); follow it until the
  // folded text is the parsed value.
  while (folded != value) {
    if (folded.size() >= value.size() || value.compare(0, folded.size(), folded) != 0) return std::nullopt;
    std::size_t ls = next_line(text, end);
    std::size_t empty_lines = 0;
    std::size_t first = ls;
    while (true) {
      if (first >= text.size()) return std::nullopt;
      while (first < text.size() && is_blank(text[first])) ++first;
      if (first < text.size() && is_break(text[first])) {
        ++empty_lines;
        first = next_line(text, first);
        continue;
      }
      break;
    }
    if (first >= text.size() || text[first] == '#') return std::nullopt;
    std::size_t e = plain_line_end(text, first, in_flow);
    if (e == first) return std::nullopt;
    folded += empty_lines == 0 ? std::string(" ") : std::string(empty_lines, '\n');
    folded.append(text.substr(first, e - first));
    end = e;
  }
  return end;
}

std::optional<std::size_t> quoted_end(std::string_view text, std::size_t content) {
  char q = text[content];
  for (std::size_t j = content + 1; j < text.size(); ++j) {
    if (q == '"' && text[j] == '\\') {
      ++j;
    } else if (text[j] == q) {
      if (q == '\'' && j + 1 < text.size() && text[j + 1] == '\'') {
        ++j;
      } else {
        return j + 1;
      }
    }
  }
  return std::nullopt;
}

std::optional<std::size_t> block_end(std::string_view text, std::size_t content, std::string_view value) {
  auto l = block_layout(text, content, value);
  if (!l) return std::nullopt;
  return l->end;
}

std::optional<std::string> rewrite_block(std::string_view text, std::size_t content, std::size_t end,
                                         std::string_view value) {
  if (value.empty() || value.find('\r') != std::string_view::npos) return std::nullopt;
  for (std::size_t start = 0; start <= value.size();) {  // line by line: '\n' is what a block holds
    std::size_t nl = std::min(value.find('\n', start), value.size());
    if (has_unescapable(value.substr(start, nl - start))) return std::nullopt;
    start = nl + 1;
  }
  if (value == "\n" || (value.size() >= 2 && value.substr(value.size() - 2) == "\n\n")) return std::nullopt;
  // The old layout: read it with a stand-in value that has text and no leading spaces (the
  // indentation indicator, if any, then decides how much of the first line's indentation counts).
  std::string_view old_text = text.substr(content, end - content);
  if (old_text.find_first_of("\r\n") == std::string_view::npos) return std::nullopt;  // no content lines
  auto l = block_layout(text, content, "x");
  if (!l || l->content_indent == 0) return std::nullopt;
  bool trailing_break = value.back() == '\n';
  std::string_view body = trailing_break ? value.substr(0, value.size() - 1) : value;
  std::vector<std::string_view> lines;
  for (std::size_t start = 0;;) {
    std::size_t nl = body.find('\n', start);
    lines.push_back(body.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start));
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  // A first line that starts blank needs an indentation indicator, and with one the content
  // indentation depends on the parent's, which this text alone does not say: quote those instead.
  if (l->digit != 0 || lines.front().empty() || is_blank(lines.front().front())) return std::nullopt;
  std::string brk = (l->header_end < text.size() && text[l->header_end] == '\r') ? "\r\n" : "\n";
  char style = (l->style == '>' && lines.size() == 1) ? '>' : '|';
  std::string out(1, style);
  if (!trailing_break) out += '-';
  out.append(text.substr(l->indicators_end, l->header_end - l->indicators_end));
  for (auto line : lines) {
    out += brk;
    if (!line.empty()) {
      out.append(l->content_indent, ' ');
      out.append(line);
    }
  }
  return out;
}

}  // namespace tollgate::edit
