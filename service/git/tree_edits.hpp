#pragma once
// Applies a stage's edits to the files of a base tree, in memory: reads the blobs, rewrites their
// contents with service/edit (set, image), RE2 (replace) or the source repository's files (copy),
// writes only the changed blobs and builds the new tree with git_tree_create_updated, so the cost
// grows with the change, not with the repository.
#include <string>
#include <vector>

#include <git2.h>
#include <tl/expected.hpp>

#include "service/git/git_writer.hpp"

namespace tollgate::git {

struct CopiedFile {
  std::string path;  // relative to the copied directory; empty when a single file was copied
  std::string content;
  git_filemode_t mode = GIT_FILEMODE_BLOB;
};

// The files a `copy` edit takes from the source repository, read before the edits are applied
// (the source lives in another mirror, under another lock).
struct CopySource {
  bool directory = false;
  std::string name;  // the last segment of `from`, for `to` ending in `/`
  std::vector<CopiedFile> files;
};

// Reads `from` (a file or a directory, recursively) out of `tree`. Errors are `edit_failed`.
[[nodiscard]] tl::expected<CopySource, Error> read_copy_source(git_repository* repo, git_tree* tree,
                                                               const std::string& from,
                                                               const std::string& repo_name);

struct TreeChange {
  git_oid tree{};                          // equals the base tree's id when nothing changed
  std::vector<std::string> changed_files;  // added, modified or removed, in path order
};

// `copies` holds one CopySource per CopyEdit of `edits`, in order. Errors are `edit_failed`
// (naming the file and the path or pattern) or `invalid_request`; `repo_name` (owner/name) goes
// into the messages.
[[nodiscard]] tl::expected<TreeChange, Error> apply_edits(git_repository* repo, git_tree* base,
                                                          const std::vector<Edit>& edits,
                                                          const std::vector<CopySource>& copies,
                                                          const std::string& repo_name);

}  // namespace tollgate::git
