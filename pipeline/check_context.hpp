#pragma once
// Shared by the loader and the semantic checks: where problems go and how they are located.
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/diagnostic.hpp"
#include "pipeline/validate.hpp"
#include "pipeline/yaml_doc.hpp"

namespace tollgate::pipeline::detail {

struct CheckContext {
  std::string_view text;
  const std::string& file;
  const YamlDocument& doc;
  const ValidateOptions& options;
  std::vector<Diagnostic>& out;

  void error_at_value(const std::string& ptr, std::string msg) const {
    out.push_back({file, doc.map.value(ptr), ProblemKind::semantic, ptr, std::move(msg)});
  }
  void refine_at_value(const std::string& ptr, std::string msg) const {
    out.push_back({file, doc.map.value(ptr), ProblemKind::semantic, ptr, std::move(msg), true});
  }
  void error_at_key(const std::string& ptr, std::string msg) const {
    out.push_back({file, doc.map.key(ptr), ProblemKind::semantic, ptr, std::move(msg)});
  }
  // At byte `offset` inside the string scalar at `ptr` whose value is `value`, where the source
  // lets us map it exactly (plain, quoted or literal-block scalars); else at the scalar.
  void error_in_scalar(const std::string& ptr, std::string_view value, std::size_t offset, std::string msg) const;
};

// Position of byte `offset` of `value`, the scalar starting at `pos` in `text`.
[[nodiscard]] Position locate_in_scalar(std::string_view text, Position pos, std::string_view value, std::size_t offset);

}  // namespace tollgate::pipeline::detail
