#pragma once
// RAII owners for the libgit2 handles the git writer uses, and the one place that turns a libgit2
// return code into a message (read at once, on the calling thread, as libgit2's errors are
// thread-local). Internal to service/git: no handle leaves this folder.
#include <memory>
#include <string>

#include <git2.h>

namespace tollgate::git::lg {

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const noexcept { Free(p); }
};

template <class T, void (*Free)(T*)>
using Owned = std::unique_ptr<T, Deleter<T, Free>>;

using Repository = Owned<git_repository, git_repository_free>;
using Remote = Owned<git_remote, git_remote_free>;
using Commit = Owned<git_commit, git_commit_free>;
using Tree = Owned<git_tree, git_tree_free>;
using TreeEntry = Owned<git_tree_entry, git_tree_entry_free>;
using Blob = Owned<git_blob, git_blob_free>;
using Signature = Owned<git_signature, git_signature_free>;
using Reference = Owned<git_reference, git_reference_free>;

// git_libgit2_init once per process (never shut down: other threads may still use it).
void init_once();

// libgit2's last error on this thread as one line (or a generic text naming `code`).
[[nodiscard]] std::string error_message(int code);

// The class of libgit2's last error on this thread (GIT_ERROR_NET, ...), or GIT_ERROR_NONE.
[[nodiscard]] int error_class();

[[nodiscard]] std::string to_hex(const git_oid& oid);

}  // namespace tollgate::git::lg
