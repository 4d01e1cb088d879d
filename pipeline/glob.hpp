#pragma once
// Branch and path globs: `*` (within one path segment), `**` (any number of segments), `?`,
// `[abc]`, `[a-z]`, `[!x]`, `{a,b}` and `\` escapes. Compiled to RE2, so matching is linear time.
#include <memory>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace re2 { class RE2; }

namespace tollgate::pipeline {

struct GlobError {
  std::size_t offset = 0;  // byte offset in the pattern
  std::string message;
};

class Glob {
 public:
  [[nodiscard]] static tl::expected<Glob, GlobError> compile(std::string_view pattern);
  [[nodiscard]] bool matches(std::string_view text) const;
  [[nodiscard]] const std::string& pattern() const { return pattern_; }
  [[nodiscard]] const std::string& regex() const { return regex_; }

 private:
  std::string pattern_;
  std::string regex_;
  std::shared_ptr<const re2::RE2> re_;
};

}  // namespace tollgate::pipeline
