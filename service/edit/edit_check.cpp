#include "service/edit/edit_check.hpp"

namespace tollgate::edit {

EditError readback_error(std::string_view what, const std::string& why) {
  return EditError{EditErrorKind::not_editable,
                   std::string(what) + ": the edited file does not read back as intended (" + why +
                       "), so it is left unchanged; edit this part of the file by hand and report the layout"};
}

std::optional<EditError> check_rest(const Tree& old_tree, const Tree& new_tree, const Difference& diff,
                                    std::string_view what) {
  if (old_tree.documents.size() != new_tree.documents.size()) {
    return readback_error(what, "it has " + std::to_string(new_tree.documents.size()) + " documents instead of " +
                                    std::to_string(old_tree.documents.size()));
  }
  for (std::size_t d = 0; d < old_tree.documents.size(); ++d) {
    if (canonical(old_tree, old_tree.documents[d], diff.old_hole, diff.old_skip) !=
        canonical(new_tree, new_tree.documents[d], diff.new_hole, diff.new_skip)) {
      return readback_error(what, "other values in document " + std::to_string(d + 1) + " change too");
    }
  }
  return std::nullopt;
}

std::optional<EditError> check_set(const Tree& old_tree, std::string_view new_text,
                                   std::span<const PathSegment> segments, std::string_view path,
                                   std::string_view value, std::span<const CheckedTarget> targets) {
  std::string what = "path '" + std::string(path) + "'";
  auto new_tree = read_tree(new_text, old_tree.format);
  if (!new_tree) return readback_error(what, new_tree.error().message);
  if (old_tree.documents.size() != new_tree->documents.size()) {
    return readback_error(what, "the number of documents changes");
  }
  for (std::size_t d = 0; d < old_tree.documents.size(); ++d) {
    std::size_t old_root = old_tree.documents[d];
    std::size_t new_root = new_tree->documents[d];
    const CheckedTarget* t = nullptr;
    for (const auto& c : targets) {
      if (c.document == d) t = &c;
    }
    if (t == nullptr) {
      if (canonical(old_tree, old_root) != canonical(*new_tree, new_root)) {
        return readback_error(what, "document " + std::to_string(d + 1) + " changes too");
      }
      continue;
    }
    auto r = resolve(*new_tree, new_root, segments, path, false);
    if (!r) return readback_error(what, "the path no longer leads to a value");
    const Node& n = new_tree->at(r->node);
    std::string got = n.kind == NodeKind::scalar ? n.value : "";
    if (got != value) return readback_error(what, "the value reads back as '" + got + "'");
    bool same = t->created ? canonical(old_tree, old_root) == canonical(*new_tree, new_root, npos, key_of(*new_tree, r->node))
                           : canonical(old_tree, old_root, t->old_node) == canonical(*new_tree, new_root, r->node);
    if (!same) return readback_error(what, "other values change too");
  }
  return std::nullopt;
}

}  // namespace tollgate::edit
