#include "pipeline/yaml_path.hpp"

namespace tollgate::pipeline {

tl::expected<std::vector<PathSegment>, PathError> parse_yaml_path(std::string_view p) {
  std::vector<PathSegment> out;
  std::size_t i = 0;
  if (p.empty()) return tl::unexpected(PathError{0, "path is empty"});
  bool expect_key = true;  // at the start and after '.'
  while (i < p.size()) {
    if (p[i] == '[') {
      std::size_t close = p.find(']', i);
      if (i + 1 < p.size() && p[i + 1] == '"') {
        std::string key;
        std::size_t j = i + 2;
        bool closed = false;
        for (; j < p.size(); ++j) {
          if (p[j] == '\\' && j + 1 < p.size()) {
            key += p[++j];
          } else if (p[j] == '"') {
            closed = true;
            break;
          } else {
            key += p[j];
          }
        }
        if (!closed || j + 1 >= p.size() || p[j + 1] != ']') {
          return tl::unexpected(PathError{i, "quoted key must look like [\"key\"]"});
        }
        if (key.empty()) return tl::unexpected(PathError{i, "quoted key is empty"});
        out.emplace_back(std::move(key));
        i = j + 2;
      } else {
        if (close == std::string_view::npos) return tl::unexpected(PathError{i, "'[' is never closed"});
        std::string_view num = p.substr(i + 1, close - i - 1);
        if (num.empty() || num.size() > 9 || num.find_first_not_of("0123456789") != std::string_view::npos) {
          return tl::unexpected(PathError{i + 1, "list index '" + std::string(num) +
                                                     "' must be a number; quote keys as [\"key\"]"});
        }
        out.emplace_back(static_cast<std::size_t>(std::stoul(std::string(num))));
        i = close + 1;
      }
      if (i < p.size() && p[i] != '.' && p[i] != '[') {
        return tl::unexpected(PathError{i, "expected '.' or '[' after ']'"});
      }
      expect_key = false;
      continue;
    }
    if (p[i] == '.') {
      if (expect_key) return tl::unexpected(PathError{i, "empty key before '.'"});
      ++i;
      expect_key = true;
      if (i == p.size()) return tl::unexpected(PathError{i - 1, "path ends with '.'"});
      continue;
    }
    if (!expect_key) return tl::unexpected(PathError{i, "expected '.' or '['"});
    std::size_t end = p.find_first_of(".[", i);
    if (end == std::string_view::npos) end = p.size();
    out.emplace_back(std::string(p.substr(i, end - i)));
    i = end;
    expect_key = false;
  }
  return out;
}

}  // namespace tollgate::pipeline
