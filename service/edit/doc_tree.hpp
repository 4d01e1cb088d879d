#pragma once
// A YAML or JSON file read into a tree of nodes that know their byte ranges in the text, so an
// edit can replace exactly one scalar. yaml-cpp decides the structure; the ranges are measured
// here from yaml-cpp's start marks (it reports no ends) and checked against its parsed values.
#include <cstddef>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "service/edit/edit.hpp"

namespace tollgate::edit {

inline constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();

enum class NodeKind { scalar, empty, mapping, sequence, alias };
enum class ScalarStyle { plain, single_quoted, double_quoted, literal, folded };

struct Node {
  NodeKind kind = NodeKind::empty;
  ScalarStyle style = ScalarStyle::plain;
  bool flow = false;        // collections: written as {...} / [...]
  bool in_flow = false;     // inside a flow collection (other characters end a plain scalar there)
  bool is_null = false;     // a plain null (`~`, `null`) or an empty value
  std::size_t begin = 0;    // first byte, anchor and tag included
  std::size_t content = 0;  // first byte after anchor and tag: the quote, '|', '{', '-', first key
  std::size_t end = 0;      // one past the last byte (collections: of the closing bracket / last child)
  std::string value;        // scalars: the value as parsed
  std::string tag;          // "?" plain, "!" quoted or block, else the full tag
  std::size_t anchor = 0;   // yaml-cpp's anchor id defined on this node, 0 if none
  std::size_t alias_of = npos;  // aliases: the node they refer to
  std::size_t parent = npos;
  std::vector<std::size_t> children;  // mappings: key, value, key, value, ...; sequences: items
};

struct Tree {
  std::string_view text;
  FileFormat format = FileFormat::yaml;
  std::vector<Node> nodes;
  std::vector<std::size_t> documents;  // root node of each document
  std::string eol = "\n";              // the file's line break ("\r\n" if its first one is)

  [[nodiscard]] const Node& at(std::size_t i) const { return nodes[i]; }
};

struct Position {
  int line = 0;
  int column = 0;  // in characters
};

[[nodiscard]] Position position_of(std::string_view text, std::size_t byte);

[[nodiscard]] tl::expected<Tree, EditError> read_tree(std::string_view text, FileFormat format);

// The node of a mapping entry's key, given the entry's value node (npos for non-entries).
[[nodiscard]] std::size_t key_of(const Tree& tree, std::size_t value);

// The anchor name written on a node (`base` for `&base`), empty if none.
[[nodiscard]] std::string anchor_name(const Tree& tree, std::size_t node);

// A text form of the node and everything under it in which two trees compare equal exactly when
// they hold the same data; `hole` (a node index) is written as a placeholder, and `skip` (a key,
// with its value, or a list item) is left out.
[[nodiscard]] std::string canonical(const Tree& tree, std::size_t node, std::size_t hole = npos,
                                    std::size_t skip = npos);

}  // namespace tollgate::edit
