#include "service/git/tree_edits.hpp"

#include <map>
#include <set>

#include <re2/re2.h>

#include "service/edit/edit.hpp"
#include "service/git/libgit2.hpp"

namespace tollgate::git {
namespace {

struct FileState {
  std::string original;
  std::string text;
  git_filemode_t original_mode = GIT_FILEMODE_BLOB;
  git_filemode_t mode = GIT_FILEMODE_BLOB;
  bool existed = false;  // in the base tree
  bool exists = false;   // after the edits so far
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

std::string strip_slashes(std::string p) {
  while (!p.empty() && p.back() == '/') p.pop_back();
  while (!p.empty() && p.front() == '/') p.erase(0, 1);
  return p;
}

bool is_file_mode(git_filemode_t mode) {
  return mode == GIT_FILEMODE_BLOB || mode == GIT_FILEMODE_BLOB_EXECUTABLE || mode == GIT_FILEMODE_LINK;
}

// Every file below `tree`, as (path relative to it, blob id, mode). Submodules are refused.
tl::expected<std::vector<std::tuple<std::string, git_oid, git_filemode_t>>, std::string> list_files(git_tree* tree) {
  struct Walk {
    std::vector<std::tuple<std::string, git_oid, git_filemode_t>> files;
    std::string bad;
  } walk;
  int rc = git_tree_walk(
      tree, GIT_TREEWALK_PRE,
      [](const char* root, const git_tree_entry* entry, void* payload) -> int {
        auto* w = static_cast<Walk*>(payload);
        git_filemode_t mode = git_tree_entry_filemode(entry);
        if (mode == GIT_FILEMODE_TREE) return 0;
        std::string path = std::string(root) + git_tree_entry_name(entry);
        if (!is_file_mode(mode)) {
          w->bad = path;
          return -1;
        }
        w->files.emplace_back(path, *git_tree_entry_id(entry), mode);
        return 0;
      },
      &walk);
  if (!walk.bad.empty()) return tl::unexpected("'" + walk.bad + "' is a submodule");
  if (rc < 0) return tl::unexpected(lg::error_message(rc));
  return std::move(walk.files);
}

tl::expected<std::string, std::string> read_blob(git_repository* repo, const git_oid& id) {
  git_blob* raw = nullptr;
  if (int rc = git_blob_lookup(&raw, repo, &id); rc < 0) return tl::unexpected(lg::error_message(rc));
  lg::Blob blob(raw);
  return std::string(static_cast<const char*>(git_blob_rawcontent(blob.get())),
                     static_cast<std::size_t>(git_blob_rawsize(blob.get())));
}

class Overlay {
 public:
  Overlay(git_repository* repo, git_tree* base, const std::string& name) : repo_(repo), base_(base), name_(name) {}

  // The state of `path` after the edits so far, loaded from the base tree on first use.
  tl::expected<FileState*, Error> load(const std::string& path) {
    if (auto it = files_.find(path); it != files_.end()) return &it->second;
    if (!valid_file_path(path)) {
      return tl::unexpected(Error{ErrorKind::invalid_request, "repo '" + name_ + "': invalid file path '" + path + "'"});
    }
    FileState state;
    git_tree_entry* raw_entry = nullptr;
    int rc = git_tree_entry_bypath(&raw_entry, base_, path.c_str());
    if (rc < 0 && rc != GIT_ENOTFOUND) return tl::unexpected(edit_error(name_, path, lg::error_message(rc)));
    if (rc == 0) {
      lg::TreeEntry entry(raw_entry);
      git_filemode_t mode = git_tree_entry_filemode(entry.get());
      if (!is_file_mode(mode)) return tl::unexpected(edit_error(name_, path, "is a directory or a submodule"));
      auto text = read_blob(repo_, *git_tree_entry_id(entry.get()));
      if (!text) return tl::unexpected(edit_error(name_, path, text.error()));
      state.original = std::move(*text);
      state.text = state.original;
      state.original_mode = state.mode = mode;
      state.existed = state.exists = true;
    }
    return &files_.emplace(path, std::move(state)).first->second;
  }

  // A regular file that exists now, for the content edits.
  tl::expected<FileState*, Error> file(const std::string& path) {
    auto f = load(path);
    if (!f) return f;
    if (!(*f)->exists) return tl::unexpected(edit_error(name_, path, "not found on the base branch"));
    if ((*f)->mode == GIT_FILEMODE_LINK) return tl::unexpected(edit_error(name_, path, "is a symbolic link"));
    return f;
  }

  // The files below `dir` now: the base tree's, plus and minus the edits so far.
  tl::expected<std::set<std::string>, Error> files_below(const std::string& dir) {
    std::set<std::string> out;
    git_tree_entry* raw_entry = nullptr;
    int rc = git_tree_entry_bypath(&raw_entry, base_, dir.c_str());
    if (rc < 0 && rc != GIT_ENOTFOUND) return tl::unexpected(edit_error(name_, dir, lg::error_message(rc)));
    if (rc == 0) {
      lg::TreeEntry entry(raw_entry);
      if (git_tree_entry_type(entry.get()) != GIT_OBJECT_TREE) {
        return tl::unexpected(edit_error(name_, dir, "copy: the destination is a file, not a directory"));
      }
      git_tree* raw_tree = nullptr;
      if (int r = git_tree_lookup(&raw_tree, repo_, git_tree_entry_id(entry.get())); r < 0) {
        return tl::unexpected(edit_error(name_, dir, lg::error_message(r)));
      }
      lg::Tree tree(raw_tree);
      auto listed = list_files(tree.get());
      if (!listed) return tl::unexpected(edit_error(name_, dir, listed.error()));
      for (auto& [path, id, mode] : *listed) out.insert(dir + "/" + path);
    }
    const std::string prefix = dir + "/";
    for (auto it = files_.lower_bound(prefix); it != files_.end() && it->first.rfind(prefix, 0) == 0; ++it) {
      if (it->second.exists) out.insert(it->first);
      else out.erase(it->first);
    }
    return out;
  }

  std::map<std::string, FileState>& files() { return files_; }

 private:
  git_repository* repo_;
  git_tree* base_;
  const std::string& name_;
  std::map<std::string, FileState> files_;
};

tl::expected<void, Error> apply_copy(Overlay& overlay, const CopyEdit& copy, const CopySource& source,
                                     const std::string& name) {
  auto put = [&](const std::string& path, const CopiedFile& f) -> tl::expected<void, Error> {
    auto state = overlay.load(path);
    if (!state) return tl::unexpected(state.error());
    (*state)->text = f.content;
    (*state)->mode = f.mode;
    (*state)->exists = true;
    return {};
  };
  if (!source.directory) {
    std::string to = copy.to;
    if (!to.empty() && to.back() == '/') to += source.name;
    return put(strip_slashes(to), source.files.front());
  }
  const std::string dir = strip_slashes(copy.to);
  if (dir.empty() || !valid_file_path(dir)) {
    return tl::unexpected(Error{ErrorKind::invalid_request, "repo '" + name + "': copy: invalid destination '" + copy.to + "'"});
  }
  auto present = overlay.files_below(dir);
  if (!present) return tl::unexpected(present.error());
  std::set<std::string> copied;
  for (const CopiedFile& f : source.files) {
    std::string path = dir + "/" + f.path;
    copied.insert(path);
    if (auto r = put(path, f); !r) return r;
  }
  for (const std::string& path : *present) {
    if (copied.count(path) != 0) continue;
    auto state = overlay.load(path);
    if (!state) return tl::unexpected(state.error());
    (*state)->exists = false;
  }
  return {};
}

}  // namespace

tl::expected<CopySource, Error> read_copy_source(git_repository* repo, git_tree* tree, const std::string& from,
                                                 const std::string& repo_name) {
  const std::string path = strip_slashes(from);
  if (path.empty() || !valid_file_path(path)) {
    return tl::unexpected(Error{ErrorKind::invalid_request, "repo '" + repo_name + "': copy: invalid source path '" + from + "'"});
  }
  git_tree_entry* raw_entry = nullptr;
  int rc = git_tree_entry_bypath(&raw_entry, tree, path.c_str());
  if (rc == GIT_ENOTFOUND) return tl::unexpected(edit_error(repo_name, path, "copy: not found at the release commit"));
  if (rc < 0) return tl::unexpected(edit_error(repo_name, path, lg::error_message(rc)));
  lg::TreeEntry entry(raw_entry);
  CopySource out;
  out.name = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
  git_filemode_t mode = git_tree_entry_filemode(entry.get());
  if (is_file_mode(mode)) {
    auto text = read_blob(repo, *git_tree_entry_id(entry.get()));
    if (!text) return tl::unexpected(edit_error(repo_name, path, text.error()));
    out.files.push_back(CopiedFile{"", std::move(*text), mode});
    return out;
  }
  if (mode != GIT_FILEMODE_TREE) return tl::unexpected(edit_error(repo_name, path, "copy: a submodule cannot be copied"));
  out.directory = true;
  git_tree* raw_tree = nullptr;
  if (int r = git_tree_lookup(&raw_tree, repo, git_tree_entry_id(entry.get())); r < 0) {
    return tl::unexpected(edit_error(repo_name, path, lg::error_message(r)));
  }
  lg::Tree sub(raw_tree);
  auto listed = list_files(sub.get());
  if (!listed) return tl::unexpected(edit_error(repo_name, path, "copy: " + listed.error()));
  for (auto& [rel, id, file_mode] : *listed) {
    auto text = read_blob(repo, id);
    if (!text) return tl::unexpected(edit_error(repo_name, path + "/" + rel, text.error()));
    out.files.push_back(CopiedFile{rel, std::move(*text), file_mode});
  }
  return out;
}

tl::expected<TreeChange, Error> apply_edits(git_repository* repo, git_tree* base, const std::vector<Edit>& edits,
                                            const std::vector<CopySource>& copies, const std::string& name) {
  Overlay overlay(repo, base, name);
  std::size_t next_copy = 0;
  for (const Edit& e : edits) {
    if (const auto* set = std::get_if<SetEdit>(&e)) {
      auto f = overlay.file(set->file);
      if (!f) return tl::unexpected(f.error());
      auto r = edit::set_value((*f)->text, edit::format_for(set->file), set->path, set->value);
      if (!r) return tl::unexpected(edit_error(name, set->file, "set '" + set->path + "': " + r.error().message));
      (*f)->text = std::move(r->text);
    } else if (const auto* image = std::get_if<ImageEdit>(&e)) {
      auto f = overlay.file(image->file);
      if (!f) return tl::unexpected(f.error());
      auto r = edit::set_image((*f)->text, edit::ImageEdit{image->name, image->tag});
      if (!r) return tl::unexpected(edit_error(name, image->file, "image '" + image->name + "': " + r.error().message));
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
      const auto& copy = std::get<CopyEdit>(e);
      if (next_copy >= copies.size()) {
        return tl::unexpected(Error{ErrorKind::other, "repo '" + name + "': copy: source not read"});
      }
      if (auto r = apply_copy(overlay, copy, copies[next_copy++], name); !r) return tl::unexpected(r.error());
    }
  }

  TreeChange out;
  git_oid_cpy(&out.tree, git_tree_id(base));
  std::vector<git_tree_update> updates;
  for (auto& [path, state] : overlay.files()) {
    git_tree_update u{};
    u.path = path.c_str();
    if (state.exists) {
      if (state.existed && state.text == state.original && state.mode == state.original_mode) continue;
      u.action = GIT_TREE_UPDATE_UPSERT;
      u.filemode = state.mode;
      int rc = git_blob_create_from_buffer(&u.id, repo, state.text.data(), state.text.size());
      if (rc < 0) return tl::unexpected(Error{ErrorKind::other, "repo '" + name + "': write blob: " + lg::error_message(rc)});
    } else {
      if (!state.existed) continue;
      u.action = GIT_TREE_UPDATE_REMOVE;
    }
    updates.push_back(u);
    out.changed_files.push_back(path);
  }
  if (updates.empty()) return out;
  int rc = git_tree_create_updated(&out.tree, repo, base, updates.size(), updates.data());
  if (rc < 0) return tl::unexpected(Error{ErrorKind::other, "repo '" + name + "': build tree: " + lg::error_message(rc)});
  return out;
}

}  // namespace tollgate::git
