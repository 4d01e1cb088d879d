#pragma once
// A problem found in a pipeline file, located at a line and column, as a compiler reports it.
#include <string>
#include <vector>

namespace tollgate::pipeline {

enum class ProblemKind {
  yaml,      // the file is not well-formed YAML (or is too large / too deep to read safely)
  schema,    // violates schemas/pipeline.schema.json
  semantic,  // passes the schema but breaks a rule beyond it (cycles, unknown names, templates...)
};

struct Position {
  int line = 1;    // 1-based
  int column = 1;  // 1-based
  friend bool operator==(const Position&, const Position&) = default;
  friend auto operator<=>(const Position&, const Position&) = default;
};

struct Diagnostic {
  std::string file;      // file the position refers to (the pipeline file, or a template file)
  Position pos;
  ProblemKind kind = ProblemKind::semantic;
  std::string path;      // JSON pointer of the offending node, e.g. /pipelines/0/stages/1/gates
  std::string message;   // one line, lower case, identifiers in quotes
  // A semantic message that says more precisely what the schema check also rejected on the same
  // node (e.g. why '30m1h' is not a duration): it replaces the schema's message there.
  bool refines_schema = false;
};

[[nodiscard]] const char* to_string(ProblemKind kind);

// `FILE:LINE:COL: error: message`
[[nodiscard]] std::string format_text(const Diagnostic& d);

// Orders by file and position (stable, so check order breaks ties), drops exact repeats, and
// keeps one message per node where the schema and a semantic rule both flag it: the refining
// semantic message (counted as a schema problem) if there is one, else the schema's.
void sort_and_dedupe(std::vector<Diagnostic>& diags);

}  // namespace tollgate::pipeline
