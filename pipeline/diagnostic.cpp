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
  using Key = std::tuple<std::string, Position, std::string>;
  std::set<Key> schema_flagged, refined;
  for (const auto& d : diags) {
    Key k{d.file, d.pos, d.path};
    if (d.kind != ProblemKind::semantic) schema_flagged.insert(k);
    if (d.refines_schema) refined.insert(k);
  }
  std::vector<Diagnostic> out;
  std::set<std::tuple<std::string, Position, std::string>> seen;
  for (auto& d : diags) {
    Key k{d.file, d.pos, d.path};
    if (d.kind == ProblemKind::semantic && schema_flagged.count(k)) {
      if (!d.refines_schema) continue;  // restates the schema's finding
      d.kind = ProblemKind::schema;     // says it better, and the schema does reject the node
    } else if (d.kind == ProblemKind::schema && refined.count(k)) {
      continue;
    }
    if (!seen.insert({d.file, d.pos, d.message}).second) continue;
    out.push_back(std::move(d));
  }
  diags = std::move(out);
}

}  // namespace tollgate::pipeline
