#include "service/git/tree_edits.hpp"

#include <map>
#include <optional>

#include <re2/re2.h>

#include "service/edit/edit.hpp"
#include "service/git/libgit2.hpp"

namespace tollgate::git {
namespace {

struct FileState {
  std::string original;
  std::string text;
  git_filemode_t mode = GIT_FILEMODE_BLOB;
};

Error edit_error(const std::string& repo, const std::string& file, const std::string& message) {
  return Error{ErrorKind::edit_failed, "repo '" + repo + "': file '" + file + "': " + message};
}

bool valid_file_path(const std::string& path) {
  if (path.empty() || path.front() == '/' || path.back() == '/') return false;
  std::size_t start = 0;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string_view seg(path.data() + start, end - start);
    if (seg.empty() || seg == "." || seg == ".." || seg == ".git") return false;
    start = end + 1;
  }
  return true;
}

class Overlay {
 public:
  Overlay(git_repository* repo, git_tree* base, const std::string& name) : repo_(repo), base_(base), name_(name) {}

  // The current contents of `path` (after the edits applied so far), loaded from the base tree.
  tl::expected<FileState*, Error> file(const std::string& path) {
    if (auto it = files_.find(path); it != files_.end()) return &it->second;
    if (!valid_file_path(path)) {
      return tl::unexpected(Error{ErrorKind::invalid_request, "repo '" + name_ + "': invalid file path '" + path + "'"});
    }
    git_tree_entry* raw_entry = nullptr;
    int rc = git_tree_entry_bypath(&raw_entry, base_, path.c_str());
    if (rc == GIT_ENOTFOUND) return tl::unexpected(edit_error(name_, path, "not found on the base branch"));
    if (rc < 0) return tl::unexpected(edit_error(name_, path, lg::error_message(rc)));
    lg::TreeEntry entry(raw_entry);
    if (git_tree_entry_type(entry.get()) != GIT_OBJECT_BLOB ||
        git_tree_entry_filemode(entry.get()) == GIT_FILEMODE_LINK) {
      return tl::unexpected(edit_error(name_, path, "not a regular file"));
    }
    git_blob* raw_blob = nullptr;
    rc = git_blob_lookup(&raw_blob, repo_, git_tree_entry_id(entry.get()));
    if (rc < 0) return tl::unexpected(edit_error(name_, path, lg::error_message(rc)));
    lg::Blob blob(raw_blob);
    FileState state;
    state.original.assign(static_cast<const char*>(git_blob_rawcontent(blob.get())),
                          static_cast<std::size_t>(git_blob_rawsize(blob.get())));
    state.text = state.original;
    state.mode = git_tree_entry_filemode(entry.get());
    return &files_.emplace(path, std::move(state)).first->second;
  }

  std::map<std::string, FileState>& files() { return files_; }

 private:
  git_repository* repo_;
  git_tree* base_;
  const std::string& name_;
  std::map<std::string, FileState> files_;
};

std::string edit_message(const edit::EditError& e) { return e.message; }

}  // namespace

tl::expected<TreeChange, Error> apply_edits(git_repository* repo, git_tree* base, const std::vector<Edit>& edits,
                                            const std::string& name) {
  Overlay overlay(repo, base, name);
  for (const Edit& e : edits) {
    if (const auto* set = std::get_if<SetEdit>(&e)) {
      auto f = overlay.file(set->file);
      if (!f) return tl::unexpected(f.error());
      auto r = edit::set_value((*f)->text, edit::format_for(set->file), set->path, set->value);
      if (!r) return tl::unexpected(edit_error(name, set->file, "set '" + set->path + "': " + edit_message(r.error())));
      (*f)->text = std::move(r->text);
    } else if (const auto* image = std::get_if<ImageEdit>(&e)) {
      auto f = overlay.file(image->file);
      if (!f) return tl::unexpected(f.error());
      auto r = edit::set_image((*f)->text, edit::ImageEdit{image->name, image->tag});
      if (!r) {
        return tl::unexpected(edit_error(name, image->file, "image '" + image->name + "': " + edit_message(r.error())));
      }
      (*f)->text = std::move(r->text);
    } else if (const auto* replace = std::get_if<ReplaceEdit>(&e)) {
      RE2 re(replace->pattern, RE2::Quiet);
      if (!re.ok()) {
        return tl::unexpected(edit_error(name, replace->file,
                                         "replace: invalid pattern '" + replace->pattern + "': " + re.error()));
      }
      std::string why;
      if (!re.CheckRewriteString(replace->replacement, &why)) {
        return tl::unexpected(edit_error(name, replace->file,
                                         "replace: invalid replacement '" + replace->replacement + "': " + why));
      }
      auto f = overlay.file(replace->file);
      if (!f) return tl::unexpected(f.error());
      if (RE2::GlobalReplace(&(*f)->text, re, replace->replacement) == 0) {
        return tl::unexpected(edit_error(name, replace->file, "replace: pattern '" + replace->pattern + "' matches nothing"));
      }
    } else {
      return tl::unexpected(Error{ErrorKind::invalid_request, "repo '" + name + "': copy edits are not supported yet"});
    }
  }

  TreeChange out;
  git_oid_cpy(&out.tree, git_tree_id(base));
  std::vector<git_tree_update> updates;
  for (auto& [path, state] : overlay.files()) {
    if (state.text == state.original) continue;
    git_tree_update u{};
    u.action = GIT_TREE_UPDATE_UPSERT;
    u.filemode = state.mode;
    u.path = path.c_str();
    int rc = git_blob_create_from_buffer(&u.id, repo, state.text.data(), state.text.size());
    if (rc < 0) return tl::unexpected(Error{ErrorKind::other, "repo '" + name + "': write blob: " + lg::error_message(rc)});
    updates.push_back(u);
    out.changed_files.push_back(path);
  }
  if (updates.empty()) return out;
  int rc = git_tree_create_updated(&out.tree, repo, base, updates.size(), updates.data());
  if (rc < 0) return tl::unexpected(Error{ErrorKind::other, "repo '" + name + "': build tree: " + lg::error_message(rc)});
  return out;
}

}  // namespace tollgate::git
