#pragma once
// The primitive edits on a located tree, each a byte splice: find a node by path, replace a
// scalar, add or remove a mapping entry. `set` and `image` are built from these.
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "pipeline/yaml_path.hpp"
#include "service/edit/doc_tree.hpp"

namespace tollgate::edit {

using pipeline::PathSegment;

struct Splice {
  std::size_t offset = 0;
  std::size_t length = 0;
  std::string text;
};

// The text with the (non-overlapping) splices applied.
[[nodiscard]] std::string apply(std::string_view text, std::vector<Splice> splices);

// `spec.containers[0].image`, with keys quoted as the path syntax needs.
[[nodiscard]] std::string format_path(std::span<const PathSegment> segments);

[[nodiscard]] EditError error_at(EditErrorKind kind, const Tree& tree, std::size_t byte, std::string message);

struct Resolved {
  std::size_t node = npos;        // the node the path names
  std::size_t missing_in = npos;  // or: the mapping that lacks the path's last key
};

// Follows `segments` from `root`. `path` is the path as the user wrote it, for messages.
[[nodiscard]] tl::expected<Resolved, EditError> resolve(const Tree& tree, std::size_t root,
                                                        std::span<const PathSegment> segments, std::string_view path,
                                                        bool allow_missing_last);

// How a new value is written where the old one was plain.
enum class Typing {
  preserve,  // stays plain if it resolves to the same type as the old value (`replicas: 3` -> 4)
  string,    // always reads back as a string (a kustomize newTag)
};

// The splice that makes scalar (or empty) `node` hold `value`, keeping its quoting style where
// the value can be written in it. An empty splice list means the node already holds the value.
[[nodiscard]] tl::expected<std::vector<Splice>, EditError> replace_scalar(const Tree& tree, std::size_t node,
                                                                          std::string_view value,
                                                                          std::string_view path, Typing typing);

// The splice that adds `key: value` as the last entry of `mapping`, indented like its keys.
[[nodiscard]] tl::expected<Splice, EditError> add_entry(const Tree& tree, std::size_t mapping, std::string_view key,
                                                        std::string_view value, std::string_view path);

// The splice that removes the entry whose key node is `key` (its whole line(s) in block style).
[[nodiscard]] tl::expected<Splice, EditError> remove_entry(const Tree& tree, std::size_t key, std::string_view path);

// A new value or key written in the file's syntax: plain where that reads back as the same
// string, else double-quoted (always double-quoted strings in JSON).
[[nodiscard]] std::string new_scalar_text(const Tree& tree, std::string_view value, bool in_flow);
[[nodiscard]] std::string new_key_text(const Tree& tree, std::string_view key, bool in_flow);

// Bytes from the start of the line to `byte`.
[[nodiscard]] std::size_t column_bytes(std::string_view text, std::size_t byte);

// Where the line holding `byte` ends, past its line break (the text's size if it has none).
[[nodiscard]] std::size_t after_line(std::string_view text, std::size_t byte);

// The line break ending the line that holds `byte` ("\r\n" or "\n"), or the file's own.
[[nodiscard]] std::string line_break_at(const Tree& tree, std::size_t byte);

// The scalar text of a key node ("" for an empty key); false for keys that are not scalars.
[[nodiscard]] bool key_text(const Tree& tree, std::size_t key, std::string& out);

// The path from the document root to `node`, if every step is a scalar key or an index.
[[nodiscard]] std::optional<std::string> path_to(const Tree& tree, std::size_t node);

}  // namespace tollgate::edit

namespace tollgate::edit {

// `set` on parsed path segments: replaces the scalar in every document where the path exists,
// else adds the last key when `create` and exactly one document has the mapping for it. The
// result is read back and checked before it is returned.
[[nodiscard]] tl::expected<EditResult, EditError> set_path(std::string_view text, FileFormat format,
                                                           std::span<const PathSegment> segments,
                                                           std::string_view path, std::string_view value, bool create,
                                                           Typing typing);

}  // namespace tollgate::edit
