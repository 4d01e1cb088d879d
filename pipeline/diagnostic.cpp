#include "pipeline/diagnostic.hpp"

#include <algorithm>
#include <set>
#include <tuple>

namespace tollgate::pipeline {

const char* to_string(ProblemKind kind) {
  switch (kind) {
    case ProblemKind::yaml: return "yaml";
    case ProblemKind::schema: return "schema";
    case ProblemKind::semantic: return "semantic";
  }
  return "semantic";
}

std::string format_text(const Diagnostic& d) {
  return d.file + ":" + std::to_string(d.pos.line) + ":" + std::to_string(d.pos.column) +
         ": error: " + d.message;
}

void sort_and_dedupe(std::vector<Diagnostic>& diags) {
  // Stable: among problems at one position, the one reported first (by check order) stays first.
  std::stable_sort(diags.begin(), diags.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.file, a.pos) < std::tie(b.file, b.pos);
  });
  std::set<std::tuple<std::string, Position, std::string>> schema_flagged;
  for (const auto& d : diags) {
    if (d.kind != ProblemKind::semantic) schema_flagged.insert({d.file, d.pos, d.path});
  }
  std::vector<Diagnostic> out;
  std::set<std::tuple<std::string, Position, std::string>> seen;
  for (auto& d : diags) {
    // A semantic rule that restates a schema failure on the same node is noise.
    if (d.kind == ProblemKind::semantic && schema_flagged.count({d.file, d.pos, d.path})) continue;
    if (!seen.insert({d.file, d.pos, d.message}).second) continue;
    out.push_back(std::move(d));
  }
  diags = std::move(out);
}

}  // namespace tollgate::pipeline
