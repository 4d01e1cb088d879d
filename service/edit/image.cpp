// The `image` edit: a kustomization's `images:` entry, found by name, gets the new tag or digest.
#include <algorithm>

#include "service/edit/edit.hpp"
#include "service/edit/edit_check.hpp"
#include "service/edit/scalar.hpp"
#include "service/edit/tree_edit.hpp"

namespace tollgate::edit {
namespace {

struct Wanted {
  std::string name;
  std::string tag;     // newTag, empty if not set
  std::string digest;  // digest, empty if not set
};

// The mapping value of `key` in `mapping` (npos if absent); the key node through `key_node`.
std::size_t member(const Tree& tree, std::size_t mapping, std::string_view key, std::size_t* key_node = nullptr) {
  const Node& m = tree.at(mapping);
  if (m.kind != NodeKind::mapping) return npos;
  for (std::size_t k = 0; k + 1 < m.children.size(); k += 2) {
    std::string text;
    if (key_text(tree, m.children[k], text) && text == key) {
      if (key_node != nullptr) *key_node = m.children[k];
      return m.children[k + 1];
    }
  }
  return npos;
}

std::string scalar_of(const Tree& tree, std::size_t node) {
  return node != npos && tree.at(node).kind == NodeKind::scalar ? tree.at(node).value : "";
}

// Indexes of the `images:` items named `name`.
std::vector<std::size_t> entries_named(const Tree& tree, std::size_t images, std::string_view name) {
  std::vector<std::size_t> out;
  const Node& s = tree.at(images);
  for (std::size_t i = 0; i < s.children.size(); ++i) {
    std::size_t n = member(tree, s.children[i], "name");
    if (n != npos && scalar_of(tree, n) == name) out.push_back(i);
  }
  return out;
}

// How far the file indents a block list under its key: 0 for `key:\n- a`, 2 for `key:\n  - a`.
std::size_t list_indent(const Tree& tree) {
  for (std::size_t i = 0; i < tree.nodes.size(); ++i) {
    const Node& s = tree.at(i);
    if (s.kind != NodeKind::sequence || s.flow || s.parent == npos) continue;
    std::size_t key = key_of(tree, i);
    if (key == npos || tree.at(s.parent).flow) continue;
    std::size_t dash = column_bytes(tree.text, s.content);
    std::size_t col = column_bytes(tree.text, tree.at(key).begin);
    if (dash >= col) return dash - col;
  }
  return 0;  // kustomize's own layout
}

// The lines of a new block list item, each ended by `brk`.
std::string block_item(const Tree& tree, const Wanted& w, std::size_t dash, std::size_t key_offset,
                       const std::string& brk) {
  std::string pad(dash + key_offset, ' ');
  std::string out(dash, ' ');
  out += "-" + std::string(key_offset - 1, ' ') + "name: " + new_scalar_text(tree, w.name, false) + brk;
  if (!w.tag.empty()) out += pad + "newTag: " + new_scalar_text(tree, w.tag, false) + brk;
  if (!w.digest.empty()) out += pad + "digest: " + new_scalar_text(tree, w.digest, false) + brk;
  return out;
}

std::string flow_item(const Tree& tree, const Wanted& w) {
  std::string out = "{name: " + new_scalar_text(tree, w.name, true);
  if (!w.tag.empty()) out += ", newTag: " + new_scalar_text(tree, w.tag, true);
  if (!w.digest.empty()) out += ", digest: " + new_scalar_text(tree, w.digest, true);
  return out + "}";
}

// Inserts whole lines after the line holding `after`, keeping a missing final line break missing.
Splice lines_after(const Tree& tree, std::size_t after, std::string lines) {
  std::size_t at = after_line(tree.text, after);
  if (at == tree.text.size() && (tree.text.empty() || tree.text.back() != '\n')) {
    std::string brk = tree.eol;
    if (lines.size() >= brk.size()) lines.erase(lines.size() - brk.size());
    return Splice{at, 0, (tree.text.empty() ? "" : brk) + lines};
  }
  return Splice{at, 0, std::move(lines)};
}

struct Step {
  Splice splice;
  Difference diff;  // old-tree parts of the expected difference; new-tree parts are found after
  bool adds_images = false;
  bool adds_item = false;
};

tl::expected<std::optional<Step>, EditError> add_entry_step(const Tree& tree, const Wanted& w, const std::string& what) {
  std::size_t root = tree.documents.front();
  const Node& r = tree.at(root);
  std::string brk = tree.eol;
  if (r.kind == NodeKind::empty) {
    std::string lines = "images:" + brk + block_item(tree, w, list_indent(tree), 2, brk);
    std::string prefix = (!tree.text.empty() && tree.text.back() != '\n') ? brk : "";
    return Step{Splice{tree.text.size(), 0, prefix + lines}, Difference{root, npos, npos, npos}, true, false};
  }
  if (r.kind != NodeKind::mapping) {
    return tl::unexpected(error_at(EditErrorKind::not_editable, tree, r.begin,
                                   what + ": the kustomization is " + std::string(r.kind == NodeKind::sequence ? "a list" : "not a mapping") +
                                       "; it must be a mapping with an 'images:' list"));
  }
  std::size_t images_key = npos;
  std::size_t images = member(tree, root, "images", &images_key);
  if (images == npos) {
    if (r.flow || r.children.empty() || tree.at(r.children.back()).end == npos) {
      return tl::unexpected(error_at(EditErrorKind::not_editable, tree, r.begin,
                                     what + ": cannot add 'images:' to the mapping at the document root written as '{...}'; "
                                            "add 'images: []' by hand"));
    }
    std::size_t key_col = column_bytes(tree.text, tree.at(r.children.front()).begin);
    std::size_t last = tree.at(r.children.back()).end;
    std::string lb = line_break_at(tree, last);
    std::string lines = std::string(key_col, ' ') + "images:" + lb + block_item(tree, w, key_col + list_indent(tree), 2, lb);
    return Step{lines_after(tree, last, lines), Difference{}, true, false};
  }
  const Node& s = tree.at(images);
  if (s.kind == NodeKind::empty) {
    std::size_t key_col = column_bytes(tree.text, tree.at(images_key).begin);
    std::string lb = line_break_at(tree, s.end);
    return Step{lines_after(tree, s.end, block_item(tree, w, key_col + list_indent(tree), 2, lb)),
                Difference{images, npos, npos, npos}, false, false};
  }
  if (s.kind != NodeKind::sequence) {
    return tl::unexpected(error_at(EditErrorKind::not_editable, tree, s.begin,
                                   what + ": 'images' (line " + std::to_string(position_of(tree.text, s.begin).line) +
                                       ") is not a list; kustomize expects a list of entries with 'name:'"));
  }
  auto named = entries_named(tree, images, w.name);
  if (named.size() > 1) {
    std::string lines;
    for (std::size_t i : named) {
      lines += (lines.empty() ? "" : " and ") + std::to_string(position_of(tree.text, tree.at(s.children[i]).begin).line);
    }
    return tl::unexpected(error_at(EditErrorKind::not_editable, tree, tree.at(s.children[named[1]]).begin,
                                   what + ": 'images' has more than one entry named '" + w.name + "' (lines " + lines +
                                       "); remove the duplicates"));
  }
  if (!named.empty()) return std::optional<Step>{};
  if (s.end == npos) {
    return tl::unexpected(error_at(EditErrorKind::not_editable, tree, s.begin,
                                   what + ": cannot tell where the 'images' list ends in the text"));
  }
  if (s.flow) {
    std::string item = flow_item(tree, w);
    if (s.children.empty()) return Step{Splice{s.content + 1, 0, item}, Difference{}, false, true};
    return Step{Splice{tree.at(s.children.back()).end, 0, ", " + item}, Difference{}, false, true};
  }
  std::size_t dash = column_bytes(tree.text, s.content);
  std::size_t offset = 2;
  for (std::size_t c : s.children) {
    const Node& item = tree.at(c);
    if (item.kind == NodeKind::mapping && !item.flow) {
      std::size_t col = column_bytes(tree.text, item.content);
      if (col > dash) offset = col - dash;
      break;
    }
  }
  std::string lb = line_break_at(tree, s.end);
  return Step{lines_after(tree, s.end, block_item(tree, w, dash, offset, lb)), Difference{}, false, true};
}

// Finds the entry in a (re-read) tree: the `images` list and the item's index.
bool locate(const Tree& tree, const Wanted& w, std::size_t& images, std::size_t& index) {
  std::size_t root = tree.documents.front();
  images = member(tree, root, "images");
  if (images == npos || tree.at(images).kind != NodeKind::sequence) return false;
  auto named = entries_named(tree, images, w.name);
  if (named.size() != 1) return false;
  index = named.front();
  return true;
}

}  // namespace

tl::expected<EditResult, EditError> set_image(std::string_view text, const ImageEdit& edit) {
  std::string what = "image '" + edit.name + "'";
  if (edit.name.empty()) return tl::unexpected(EditError{EditErrorKind::invalid_path, "image edit has an empty name"});
  Wanted w{edit.name, edit.tag, ""};
  if (edit.tag.rfind("sha256:", 0) == 0) {
    w.tag.clear();
    w.digest = edit.tag;
  } else if (auto at = edit.tag.find('@'); at != std::string::npos) {
    w.tag = edit.tag.substr(0, at);
    w.digest = edit.tag.substr(at + 1);
  }
  if ((w.tag.empty() && w.digest.empty()) || (!w.digest.empty() && w.digest.find(':') == std::string::npos)) {
    return tl::unexpected(EditError{EditErrorKind::invalid_path,
                                    what + ": tag '" + edit.tag +
                                        "' is neither a tag, a digest ('sha256:...') nor both ('v1@sha256:...')"});
  }

  std::string cur(text);
  bool changed = false;
  auto tree = read_tree(cur, FileFormat::yaml);
  if (!tree) return tl::unexpected(tree.error());
  if (tree->documents.size() > 1) {
    return tl::unexpected(EditError{EditErrorKind::not_editable,
                                    what + ": the file holds " + std::to_string(tree->documents.size()) +
                                        " YAML documents; a kustomization is one"});
  }

  // 1. The entry exists (adding it, or the list, with the wanted values).
  auto step = add_entry_step(*tree, w, what);
  if (!step) return tl::unexpected(step.error());
  if (*step) {
    std::string next = apply(cur, {(*step)->splice});
    auto after = read_tree(next, FileFormat::yaml);
    if (!after) return tl::unexpected(readback_error(what, after.error().message));
    std::size_t images = npos, index = 0;
    if (!locate(*after, w, images, index)) return tl::unexpected(readback_error(what, "the entry is not found"));
    Difference diff = (*step)->diff;
    std::size_t item = after->at(images).children[index];
    if ((*step)->adds_item) diff.new_skip = item;
    if ((*step)->adds_images && diff.old_hole == npos) {
      member(*after, after->documents.front(), "images", &diff.new_skip);
    } else if (diff.old_hole != npos) {
      diff.new_hole = diff.old_hole == tree->documents.front() ? after->documents.front() : images;
    }
    if (auto bad = check_rest(*tree, *after, diff, what)) return tl::unexpected(*bad);
    cur = std::move(next);
    changed = true;
  }

  // 2. newTag and digest, each a checked `set` on the entry; 3. the stale one of them removed
  // (kustomize lets a digest override a tag, so an old digest would pin the old image).
  struct Field {
    const char* key;
    const std::string* value;
  };
  for (Field f : {Field{"newTag", &w.tag}, Field{"digest", &w.digest}}) {
    auto t = read_tree(cur, FileFormat::yaml);
    if (!t) return tl::unexpected(t.error());
    std::size_t images = npos, index = 0;
    if (!locate(*t, w, images, index)) return tl::unexpected(readback_error(what, "the entry is not found"));
    std::vector<PathSegment> path{std::string("images"), index, std::string(f.key)};
    std::string path_text = format_path(path);
    std::size_t key = npos;
    std::size_t value_node = member(*t, t->at(images).children[index], f.key, &key);
    if (!f.value->empty()) {
      auto r = set_path(cur, FileFormat::yaml, path, path_text, *f.value, true, Typing::string);
      if (!r) return tl::unexpected(r.error());
      if (r->changed) {
        cur = std::move(r->text);
        changed = true;
      }
    } else if (value_node != npos) {
      // Removing the first of two same-named keys would leave the other in force (and an edit
      // that is never done: the next run would remove it too), as setting one does (set_path).
      std::vector<std::size_t> same;
      const Node& entry = t->at(t->at(images).children[index]);
      for (std::size_t k = 0; k + 1 < entry.children.size(); k += 2) {
        std::string name;
        if (key_text(*t, entry.children[k], name) && name == f.key) same.push_back(entry.children[k]);
      }
      if (same.size() > 1) {
        return tl::unexpected(error_at(EditErrorKind::not_editable, *t, t->at(same[1]).begin,
                                       "path '" + path_text + "': key '" + f.key + "' appears more than once in the entry (lines " +
                                           std::to_string(position_of(t->text, t->at(same[0]).begin).line) + " and " +
                                           std::to_string(position_of(t->text, t->at(same[1]).begin).line) +
                                           "); remove the duplicates"));
      }
      auto s = remove_entry(*t, key, path_text);
      if (!s) return tl::unexpected(s.error());
      std::string next = apply(cur, {*s});
      auto after = read_tree(next, FileFormat::yaml);
      if (!after) return tl::unexpected(readback_error(what, after.error().message));
      if (auto bad = check_rest(*t, *after, Difference{npos, npos, key, npos}, what)) return tl::unexpected(*bad);
      cur = std::move(next);
      changed = true;
    }
  }
  return EditResult{std::move(cur), changed};
}

}  // namespace tollgate::edit
