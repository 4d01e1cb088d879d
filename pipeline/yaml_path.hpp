#pragma once
// Paths into YAML/JSON documents used by `set` edits: `image.tag`, `spec.containers[0].image`,
// `metadata.annotations["example.com/rev"]`.
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <tl/expected.hpp>

namespace tollgate::pipeline {

using PathSegment = std::variant<std::string, std::size_t>;  // key or list index

struct PathError {
  std::size_t offset = 0;
  std::string message;
};

[[nodiscard]] tl::expected<std::vector<PathSegment>, PathError> parse_yaml_path(std::string_view path);

}  // namespace tollgate::pipeline
