#include "service/edit/edit.hpp"

#include "pipeline/utf8.hpp"
#include "service/edit/edit_check.hpp"
#include "service/edit/tree_edit.hpp"

namespace tollgate::edit {
namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

struct Target {
  std::size_t document = 0;
  std::size_t node = npos;        // replaced in place
  std::size_t missing_in = npos;  // or added to this mapping
};

}  // namespace

FileFormat format_for(std::string_view file_name) {
  std::string lower(file_name);
  for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return ends_with(lower, ".json") ? FileFormat::json : FileFormat::yaml;
}

tl::expected<EditResult, EditError> set_path(std::string_view text, FileFormat format,
                                             std::span<const PathSegment> segments, std::string_view path,
                                             std::string_view value, bool create, Typing typing) {
  if (auto bad = pipeline::utf8_error(value)) {
    return tl::unexpected(EditError{EditErrorKind::not_editable,
                                    "path '" + std::string(path) + "': the new value is not valid UTF-8 (byte " +
                                        std::to_string(*bad) + ")"});
  }
  auto tree = read_tree(text, format);
  if (!tree) return tl::unexpected(tree.error());

  std::vector<Target> found, creatable;
  std::optional<EditError> first_error, relevant_error;
  for (std::size_t d = 0; d < tree->documents.size(); ++d) {
    auto r = resolve(*tree, tree->documents[d], segments, path, create);
    if (r && r->node != npos) {
      found.push_back({d, r->node, npos});
    } else if (r) {
      creatable.push_back({d, npos, r->missing_in});
    } else {
      if (!first_error) first_error = r.error();
      // In a file of several documents, report the one the path's first step leads into.
      if (!relevant_error && resolve(*tree, tree->documents[d], segments.first(1), path, false)) {
        relevant_error = r.error();
      }
    }
  }
  std::vector<Target> targets = found.empty() ? creatable : found;
  if (targets.empty()) return tl::unexpected(relevant_error ? *relevant_error : *first_error);
  if (found.empty() && targets.size() > 1) {
    std::string lines;
    for (const auto& t : targets) {
      lines += (lines.empty() ? "" : ", ") +
               std::to_string(position_of(text, tree->at(t.missing_in).content).line);
    }
    const Node& m = tree->at(targets[1].missing_in);
    Position p = position_of(text, m.content);
    return tl::unexpected(EditError{EditErrorKind::not_found,
                                    "path '" + std::string(path) + "': " + std::to_string(targets.size()) +
                                        " documents could take the missing key '" +
                                        std::get<std::string>(segments.back()) + "' (mappings at lines " + lines +
                                        "); add it by hand to the one meant",
                                    p.line, p.column});
  }

  std::vector<Splice> splices;
  for (const auto& t : targets) {
    if (t.node != npos) {
      auto s = replace_scalar(*tree, t.node, value, path, typing);
      if (!s) return tl::unexpected(s.error());
      splices.insert(splices.end(), s->begin(), s->end());
    } else {
      auto s = add_entry(*tree, t.missing_in, std::get<std::string>(segments.back()), value, path);
      if (!s) return tl::unexpected(s.error());
      splices.push_back(std::move(*s));
    }
  }
  if (splices.empty()) return EditResult{std::string(text), false};
  std::string out = apply(text, splices);

  // Read the result back: the target holds the value and nothing else changed, or no edit.
  std::vector<CheckedTarget> checks;
  for (const auto& t : targets) checks.push_back({t.document, t.node, t.node == npos});
  if (auto bad = check_set(*tree, out, segments, path, value, checks)) return tl::unexpected(*bad);
  return EditResult{std::move(out), true};
}

tl::expected<EditResult, EditError> set_value(std::string_view text, FileFormat format, std::string_view path,
                                              std::string_view value, const SetOptions& options) {
  auto segments = pipeline::parse_yaml_path(path);
  if (!segments) {
    return tl::unexpected(EditError{EditErrorKind::invalid_path,
                                    "invalid path '" + std::string(path) + "': " + segments.error().message +
                                        " (at character " + std::to_string(segments.error().offset + 1) + ")"});
  }
  return set_path(text, format, *segments, path, value, options.create_missing_key, Typing::preserve);
}

}  // namespace tollgate::edit
