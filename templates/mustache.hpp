#pragma once
// Mustache templates for PR titles, bodies, commit messages and comments: syntax and variable
// checks at validation time, rendering at run time (kainjow mustache, no HTML escaping: the
// output is Markdown or plain text, so `{{x}}` and `{{{x}}}` render the same).
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

namespace tollgate::templates {

struct TemplateError {
  TemplateError() = default;
  TemplateError(std::size_t at, std::string text, std::string unknown = {})
      : offset(at), message(std::move(text)), unknown_variable(std::move(unknown)) {}
  std::size_t offset = 0;  // byte offset in the template text
  std::string message;
  std::string unknown_variable;  // set when the error is a variable not in the known set
};

struct VariableUse {
  std::string name;       // as written, trimmed: "release.version", "."
  std::size_t offset = 0; // of the name in the template text
  bool in_section = false;
  bool opens_section = false;
};

// Parses the template; on success lists every variable it reads.
[[nodiscard]] tl::expected<std::vector<VariableUse>, TemplateError> scan(std::string_view text);

// The variables a template may use: full dotted names ("source.sha") and the groups they belong
// to ("source").
class VariableSet {
 public:
  void add(std::string name);
  [[nodiscard]] bool contains(std::string_view name) const { return names_.count(std::string(name)) > 0; }
  [[nodiscard]] bool is_group(std::string_view name) const { return groups_.count(std::string(name)) > 0; }
  [[nodiscard]] std::vector<std::string> names() const { return {names_.begin(), names_.end()}; }

 private:
  std::set<std::string> names_;
  std::set<std::string> groups_;
};

// The variable set of DESIGN.md (`release.*` being the given release value names).
[[nodiscard]] VariableSet standard_variables(const std::vector<std::string>& release_names);
// What release values themselves may use: source.*, pipeline.name and run.*.
[[nodiscard]] VariableSet release_variables();

// Parse errors, then one error per use of a variable that is not in `known` (callers add hints).
[[nodiscard]] std::vector<TemplateError> check(std::string_view text, const VariableSet& known);

// Renders with `vars` (nested objects: {"source": {"sha": ...}, ...}).
[[nodiscard]] tl::expected<std::string, std::string> render(std::string_view text, const nlohmann::json& vars);

// Default templates shipped in templates/: "pr-title", "pr-body", "commit-message",
// "status-comment". Empty if there is no such template.
[[nodiscard]] std::string_view default_template(std::string_view name);

}  // namespace tollgate::templates
