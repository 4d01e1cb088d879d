#pragma once
// Reading an edit's result back: the target holds the new value and every other value, key,
// anchor and alias of every document is as it was. An edit that fails this is not returned, so
// a layout the locator misreads costs an error, never a wrong commit.
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "service/edit/tree_edit.hpp"

namespace tollgate::edit {

struct CheckedTarget {
  std::size_t document = 0;
  std::size_t old_node = npos;  // the replaced scalar in the old tree
  bool created = false;         // or: the path's last key was added
};

[[nodiscard]] std::optional<EditError> check_set(const Tree& old_tree, std::string_view new_text,
                                                 std::span<const PathSegment> segments, std::string_view path,
                                                 std::string_view value, std::span<const CheckedTarget> targets);

// That the new tree's documents equal the old ones except where an edit meant to change them:
// `*_hole` (a node holding different data) and `*_skip` (a key, with its value, or a list item
// that only one of the trees has); npos for none.
struct Difference {
  std::size_t old_hole = npos;
  std::size_t new_hole = npos;
  std::size_t old_skip = npos;
  std::size_t new_skip = npos;
};
[[nodiscard]] std::optional<EditError> check_rest(const Tree& old_tree, const Tree& new_tree, const Difference& diff,
                                                  std::string_view what);

[[nodiscard]] EditError readback_error(std::string_view what, const std::string& why);

}  // namespace tollgate::edit
