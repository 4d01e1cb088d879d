#include "pipeline/validate.hpp"

#include <algorithm>

#include "pipeline/check_context.hpp"
#include "pipeline/loader.hpp"
#include "pipeline/schema_check.hpp"

namespace tollgate::pipeline {

namespace detail {

Position locate_in_scalar(std::string_view text, Position pos, std::string_view value, std::size_t offset) {
  if (offset > value.size()) return pos;
  auto position_of = [&](std::size_t byte) {
    std::size_t line_start = text.rfind('\n', byte == 0 ? 0 : byte - 1);
    line_start = (byte == 0 || line_start == std::string_view::npos) ? 0 : line_start + 1;
    return Position{1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(byte), '\n')),
                    1 + static_cast<int>(byte - line_start)};
  };
  // The scalar's first byte in the source.
  std::size_t start = 0;
  for (int l = 1; l < pos.line; ++l) {
    start = text.find('\n', start);
    if (start == std::string_view::npos) return pos;
    ++start;
  }
  start += static_cast<std::size_t>(pos.column - 1);
  if (start > text.size()) return pos;
  // Quoting, escapes and block folding make value offsets differ from source offsets, so find
  // the text at `offset` (up to the end of its line) in the source, counting earlier repeats of
  // it in the value: the k-th occurrence in the value is the k-th in the source after `start`.
  std::string_view needle = value.substr(offset, std::min<std::size_t>(value.find('\n', offset), offset + 40) - offset);
  if (needle.empty()) return pos;
  std::size_t k = 0;
  for (std::size_t at = value.find(needle); at != std::string_view::npos && at < offset; at = value.find(needle, at + 1)) ++k;
  std::size_t found = text.find(needle, start);
  for (std::size_t i = 0; i < k && found != std::string_view::npos; ++i) found = text.find(needle, found + 1);
  if (found == std::string_view::npos) return pos;
  return position_of(found);
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
