#include "pipeline/glob.hpp"

#include <vector>

#include <re2/re2.h>

namespace tollgate::pipeline {

namespace {
void append_literal(std::string& re, char c) {
  static const std::string_view special = "\\^$.|?*+()[]{}";
  if (special.find(c) != std::string_view::npos) re += '\\';
  re += c;
}
}  // namespace

tl::expected<Glob, GlobError> Glob::compile(std::string_view p) {
  if (p.empty()) return tl::unexpected(GlobError{0, "empty pattern"});
  std::string re = "^";
  std::vector<std::size_t> braces;  // offsets of open '{'
  for (std::size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    switch (c) {
      case '\\':
        if (i + 1 == p.size()) return tl::unexpected(GlobError{i, "pattern ends with an escape '\\'"});
        append_literal(re, p[++i]);
        break;
      case '*':
        if (i + 1 < p.size() && p[i + 1] == '*') {
          bool seg_start = i == 0 || p[i - 1] == '/';
          i += 1;
          while (i + 1 < p.size() && p[i + 1] == '*') ++i;
          if (seg_start && i + 1 < p.size() && p[i + 1] == '/') {
            re += "(?:.*/)?";  // "**/" matches zero or more whole segments
            ++i;
          } else {
            re += ".*";
          }
        } else {
          re += "[^/]*";
        }
        break;
      case '?':
        re += "[^/]";
        break;
      case '[': {
        std::size_t j = i + 1;
        std::string cls = "[";
        if (j < p.size() && (p[j] == '!' || p[j] == '^')) {
          cls += '^';
          ++j;
        }
        std::size_t first = j;
        bool closed = false;
        for (; j < p.size(); ++j) {
          char d = p[j];
          if (d == ']' && j > first) {
            closed = true;
            break;
          }
          if (d == '\\') {
            if (j + 1 == p.size()) break;
            d = p[++j];
            cls += '\\';
            cls += d;
            continue;
          }
          if (d == '-' && j > first && j + 1 < p.size() && p[j + 1] != ']') {
            char lo = p[j - 1], hi = p[j + 1];
            if (hi < lo) {
              return tl::unexpected(GlobError{j - 1, "range '" + std::string{lo} + "-" + std::string{hi} + "' is out of order"});
            }
            cls += '-';
            continue;
          }
          if (d == '[' || d == ']' || d == '^' || d == '\\') cls += '\\';
          cls += d;
        }
        if (!closed) return tl::unexpected(GlobError{i, "'[' is never closed; escape it as '\\[' to match it literally"});
        cls += ']';
        re += cls;
        i = j;
        break;
      }
      case '{':
        braces.push_back(i);
        re += "(?:";
        break;
      case ',':
        if (braces.empty()) {
          re += ',';
        } else {
          re += '|';
        }
        break;
      case '}':
        if (braces.empty()) return tl::unexpected(GlobError{i, "'}' has no matching '{'"});
        braces.pop_back();
        re += ')';
        break;
      default:
        append_literal(re, c);
    }
  }
  if (!braces.empty()) {
    return tl::unexpected(GlobError{braces.back(), "'{' is never closed; escape it as '\\{' to match it literally"});
  }
  re += "$";
  RE2::Options opts;
  opts.set_log_errors(false);
  opts.set_dot_nl(true);
  auto compiled = std::make_shared<const RE2>(re, opts);
  if (!compiled->ok()) return tl::unexpected(GlobError{0, "cannot compile: " + compiled->error()});
  Glob g;
  g.pattern_ = std::string(p);
  g.regex_ = std::move(re);
  g.re_ = std::move(compiled);
  return g;
}

bool Glob::matches(std::string_view text) const {
  return re_ && RE2::FullMatch(re2::StringPiece(text.data(), text.size()), *re_);
}

}  // namespace tollgate::pipeline
