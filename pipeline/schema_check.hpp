#pragma once
// Structural validation of a pipeline document against schemas/pipeline.schema.json (valijson),
// with valijson's generic results turned into compiler-style messages at the user's lines.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/diagnostic.hpp"
#include "pipeline/yaml_doc.hpp"

namespace tollgate::pipeline {

// The published JSON Schema (embedded at build time from schemas/pipeline.schema.json).
[[nodiscard]] const nlohmann::json& pipeline_schema();

[[nodiscard]] std::vector<Diagnostic> check_schema(const YamlDocument& doc, const std::string& file);

}  // namespace tollgate::pipeline
