#pragma once
// Applies a stage's edits to the files of a base tree, in memory: reads the blobs, rewrites their
// contents with service/edit (set, image) or RE2 (replace), writes only the changed blobs and
// builds the new tree with git_tree_create_updated, so the cost grows with the change, not with
// the repository.
#include <string>
#include <vector>

#include <git2.h>
#include <tl/expected.hpp>

#include "service/git/git_writer.hpp"

namespace tollgate::git {

struct TreeChange {
  git_oid tree{};                          // equals the base tree's id when nothing changed
  std::vector<std::string> changed_files;  // in path order
};

// Errors are `edit_failed` (naming the file and the path or pattern) or `invalid_request`;
// `repo_name` (owner/name) goes into the messages.
[[nodiscard]] tl::expected<TreeChange, Error> apply_edits(git_repository* repo, git_tree* base,
                                                          const std::vector<Edit>& edits,
                                                          const std::string& repo_name);

}  // namespace tollgate::git
