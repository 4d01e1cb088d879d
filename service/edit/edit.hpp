#pragma once
// In-memory edits of environment-repository files (the `set` and `image` stage edits): each one
// changes only the bytes of its target, so the promotion diff is exactly the new version. Pure
// functions over file contents; the git writer reads and writes the blobs. Semantics: docs/edits.md.
#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace tollgate::edit {

enum class FileFormat { yaml, json };

// JSON for `*.json` files, else YAML (a JSON file is read by its own strict reader so that the
// result stays JSON: string values double-quoted, new members with quoted keys).
[[nodiscard]] FileFormat format_for(std::string_view file_name);

enum class EditErrorKind {
  invalid_path,   // the path itself is malformed (`a..b`, `a[x]`)
  not_found,      // the path does not lead to a value in this file
  not_editable,   // it leads somewhere this edit cannot or will not write (alias, mapping, tag)
  invalid_file,   // the file is not valid YAML / JSON
};

struct EditError {
  EditErrorKind kind = EditErrorKind::not_found;
  std::string message;  // one line, names the path, the segment and the line/column, says how to fix
  int line = 0;         // 1-based position in the file the message refers to; 0 if none
  int column = 0;       // 1-based, in characters
};

struct EditResult {
  std::string text;      // the new file contents (identical bytes when nothing changed)
  bool changed = false;
};

struct SetOptions {
  // Whether a missing last key of the path is added to its (existing) mapping. Missing keys
  // before the last one are always an error.
  bool create_missing_key = true;
};

// Sets the scalar at `path` (`image.tag`, `spec.containers[0].image`, `metadata.labels["a.b/c"]`)
// to the string `value`, keeping the scalar's quoting style where the value can be written in it.
[[nodiscard]] tl::expected<EditResult, EditError> set_value(std::string_view text, FileFormat format,
                                                            std::string_view path, std::string_view value,
                                                            const SetOptions& options = {});

struct ImageEdit {
  std::string name;  // the `name:` of the kustomization `images:` entry
  // `v1.2.3` sets newTag, `sha256:<hex>` sets digest, `v1.2.3@sha256:<hex>` sets both.
  std::string tag;
};

// Points a kustomization's `images:` entry for `edit.name` at `edit.tag`, adding the entry (or
// the `images:` list) when it is missing.
[[nodiscard]] tl::expected<EditResult, EditError> set_image(std::string_view text, const ImageEdit& edit);

}  // namespace tollgate::edit
