#pragma once
// Reads YAML text into JSON (YAML 1.2 core schema typing) plus a map from JSON pointer to the
// line and column each node came from, so every later check can point at the user's text.
#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>

#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

#include "pipeline/diagnostic.hpp"

namespace tollgate::pipeline {

struct YamlLimits {
  std::size_t max_bytes = 4 * 1024 * 1024;   // a pipeline file is a few KiB; refuse megabytes
  std::size_t max_nodes = 1'000'000;         // after alias expansion (defeats "billion laughs")
  std::size_t max_depth = 64;                // a pipeline file nests about ten levels
};

class SourceMap {
 public:
  void set_value(const std::string& ptr, Position p) { values_[ptr] = p; }
  void set_key(const std::string& ptr, Position p) { keys_[ptr] = p; }
  // Where the node at `ptr` starts; falls back to the nearest ancestor that has a position.
  [[nodiscard]] Position value(std::string_view ptr) const;
  // Where the key naming the member at `ptr` starts; falls back to value(ptr).
  [[nodiscard]] Position key(std::string_view ptr) const;

 private:
  std::unordered_map<std::string, Position> values_;
  std::unordered_map<std::string, Position> keys_;
};

struct YamlDocument {
  nlohmann::json json;
  SourceMap map;
};

// Escapes one JSON pointer reference token ("~" -> "~0", "/" -> "~1").
[[nodiscard]] std::string pointer_token(std::string_view key);

// On failure returns the one problem that stops reading (kind yaml).
[[nodiscard]] tl::expected<YamlDocument, Diagnostic> parse_yaml(std::string_view text,
                                                               const std::string& file,
                                                               const YamlLimits& limits = {});

}  // namespace tollgate::pipeline
