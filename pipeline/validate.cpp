#include "pipeline/validate.hpp"

#include "pipeline/check_context.hpp"
#include "pipeline/loader.hpp"
#include "pipeline/schema_check.hpp"

namespace tollgate::pipeline {

namespace detail {

Position locate_in_scalar(std::string_view text, Position pos, std::string_view value, std::size_t offset) {
  if (offset > value.size()) return pos;
  // Find the start of the scalar's line in the source.
  std::size_t line_start = 0;
  for (int l = 1; l < pos.line; ++l) {
    line_start = text.find('\n', line_start);
    if (line_start == std::string_view::npos) return pos;
    ++line_start;
  }
  std::size_t at = line_start + static_cast<std::size_t>(pos.column - 1);
  if (at > text.size()) return pos;
  std::string_view rest = text.substr(at);
  std::string_view prefix = value.substr(0, offset);
  bool multi_line = value.find('\n') != std::string_view::npos;
  auto line_of = [&](std::string_view s) {
    std::size_t n = 0;
    for (char c : s) n += c == '\n';
    return n;
  };
  if (!multi_line) {
    if (rest.substr(0, value.size()) == value) return {pos.line, pos.column + static_cast<int>(offset)};
    if (!rest.empty() && (rest[0] == '"' || rest[0] == '\'') && rest.substr(1, value.size()) == value) {
      return {pos.line, pos.column + 1 + static_cast<int>(offset)};
    }
    return pos;
  }
  if (!rest.empty() && rest[0] == '|') {
    // Literal block: value line k is source line pos.line + 1 + k, after the block's indentation.
    std::size_t content = text.find('\n', at);
    if (content == std::string_view::npos) return pos;
    ++content;
    std::size_t indent = 0;
    while (content + indent < text.size() && text[content + indent] == ' ') ++indent;
    std::size_t k = line_of(prefix);
    std::size_t last_nl = prefix.rfind('\n');
    std::size_t col = last_nl == std::string_view::npos ? offset : offset - last_nl - 1;
    return {pos.line + 1 + static_cast<int>(k), static_cast<int>(indent + col) + 1};
  }
  if (pos.line == 1 && pos.column == 1 && text == value) {
    // A whole template file.
    std::size_t last_nl = prefix.rfind('\n');
    std::size_t col = last_nl == std::string_view::npos ? offset : offset - last_nl - 1;
    return {1 + static_cast<int>(line_of(prefix)), static_cast<int>(col) + 1};
  }
  return pos;
}

void CheckContext::error_in_scalar(const std::string& ptr, std::string_view value, std::size_t offset,
                                   std::string msg) const {
  Position pos = locate_in_scalar(text, doc.map.value(ptr), value, offset);
  out.push_back({file, pos, ProblemKind::semantic, ptr, std::move(msg)});
}

}  // namespace detail

bool is_template_path(std::string_view body) {
  constexpr std::string_view suffix = ".mustache";
  return body.size() > suffix.size() && body.substr(body.size() - suffix.size()) == suffix &&
         body.find_first_of(" \t\n{}") == std::string_view::npos;
}

const Stage* Pipeline::stage(std::string_view n) const {
  for (const auto& s : stages) {
    if (s.name == n) return &s;
  }
  return nullptr;
}

LoadResult load_pipeline(std::string_view text, const std::string& filename, const ValidateOptions& options) {
  LoadResult result;
  auto doc = parse_yaml(text, filename, options.limits);
  if (!doc) {
    result.problems.push_back(doc.error());
    return result;
  }
  result.problems = check_schema(*doc, filename);
  detail::CheckContext cx{text, filename, *doc, options, result.problems};
  PipelineFile file = detail::build_model(cx);
  detail::check_references(cx, file);
  sort_and_dedupe(result.problems);
  if (result.problems.empty()) result.file = std::move(file);
  return result;
}

}  // namespace tollgate::pipeline
