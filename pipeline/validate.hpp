#pragma once
// Loading a pipeline file: YAML -> schema check -> typed model -> semantic checks. Every problem is
// reported, each at its line and column.
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "pipeline/diagnostic.hpp"
#include "pipeline/model.hpp"
#include "pipeline/yaml_doc.hpp"

namespace tollgate::pipeline {

struct ValidateOptions {
  // Reads a template file named by `pr.body`, relative to the source repository's root. When
  // unset, such references are accepted unchecked (their check happens when a run reads them).
  std::function<tl::expected<std::string, std::string>(const std::string& path)> read_file;
  // Name a template file is reported under (e.g. its path); defaults to the path itself.
  std::function<std::string(const std::string& path)> display_path;
  std::function<bool(std::string_view)> timezone_exists;  // default: the system tz database
  YamlLimits limits;
};

struct LoadResult {
  std::optional<PipelineFile> file;  // set only when there are no problems
  std::vector<Diagnostic> problems;  // sorted by position
  [[nodiscard]] bool ok() const { return problems.empty(); }
};

[[nodiscard]] LoadResult load_pipeline(std::string_view text, const std::string& filename,
                                       const ValidateOptions& options = {});

// Whether a `pr.body` value names a template file rather than being the template itself:
// one line, no spaces, ending in ".mustache".
[[nodiscard]] bool is_template_path(std::string_view body);

}  // namespace tollgate::pipeline
