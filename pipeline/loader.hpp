#pragma once
#include "pipeline/check_context.hpp"
#include "pipeline/model.hpp"

namespace tollgate::pipeline::detail {

// JSON -> model, reporting field-level problems (durations, globs, patterns, paths, templates).
[[nodiscard]] PipelineFile build_model(const CheckContext& cx);

// Cross-references: unique names, `after` targets and cycles.
void check_references(const CheckContext& cx, PipelineFile& file);

}  // namespace tollgate::pipeline::detail
