#pragma once
// The network side of the git writer: fetches into and pushes from a bare mirror with libgit2,
// with token auth that gives up at the first refusal, refused refs read from
// push_update_reference, and retries with backoff for transient failures only.
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>

#include <git2.h>
#include <tl/expected.hpp>

#include "service/git/git_writer.hpp"
#include "service/git/libgit2.hpp"
#include "service/git/repo_url.hpp"

namespace tollgate::service::host {
class HttpClient;
}

namespace tollgate::git {

// One repository on the host and how to reach it. References only: lives for one call.
struct Remote {
  const RepoUrl& url;
  const std::string& url_string;  // as given; never logged (the host may log it, we do not)
  const Credentials& credentials;
  const GitWriterOptions& options;
  GitWriter::Counters& counters;
  service::host::HttpClient* http = nullptr;  // pushes and fetches speak smart HTTP through it; null: libgit2
};

struct RemoteHeads {
  git_oid base{};
  std::optional<git_oid> target;  // set when the target branch exists on the host
};

// Lists the host's refs and fetches only `base_branch` (and `target_branch` if the host has it)
// into the mirror's refs/heads/. A missing base branch is `not_found`.
[[nodiscard]] tl::expected<RemoteHeads, Error> fetch_branches(git_repository* repo, const Remote& remote,
                                                              const std::string& base_branch,
                                                              const std::string& target_branch);

// Fetches every branch of the host into the mirror's refs/heads/ (copy sources: the release sha
// is reachable from one of them).
[[nodiscard]] tl::expected<std::monostate, Error> fetch_all_branches(git_repository* repo, const Remote& remote);

// Force-pushes `commit` (the mirror's refs/heads/<target_branch>) to the same ref on the host.
// `parent_tree` is the tree of its parent, which the host has: with `remote.http`, the pack sent
// holds only the objects `commit` adds to it (service/git/smart_http.hpp); libgit2's push is the
// fallback for hosts that answer otherwise than git's smart HTTP protocol describes. `seen`: what
// the fetch under the same mirror lock saw of the branch on the host (RemoteHeads::target); with
// it, the first attempt may skip the ref advertisement (the host still checks the old value).
// `mirror_guard` (held on entry, held again on return): the smart-HTTP attempts and the waits
// between retries run without it — they only read objects of `repo`, a handle of the caller's
// own — so other promotions into the repository can fetch meanwhile; libgit2's push, which may
// write into the mirror, runs with it.
[[nodiscard]] tl::expected<std::monostate, Error> push_branch(git_repository* repo, const Remote& remote,
                                                              const std::string& target_branch, const git_oid& commit,
                                                              const git_tree* parent_tree,
                                                              const RemoteHeads* seen = nullptr,
                                                              std::unique_lock<std::mutex>* mirror_guard = nullptr);

// Opens the bare mirror at `path`, creating it (and its parent folders) when missing.
[[nodiscard]] tl::expected<lg::Repository, Error> open_mirror(const std::filesystem::path& path,
                                                              const std::string& name, bool& created);

// Removes the `*.lock` files of a mirror (top level and under refs/): only while no one else can be
// using it (the caller holds its lock; one process per data directory). Returns how many.
std::size_t remove_stale_locks(const std::filesystem::path& mirror);

// A mirror ready for one promotion or revert: opened (created if need be) with `base_branch`
// (and `target_branch`, when the host has it) fetched. A mirror created for a repository that turns
// out not to exist (or not to be ours) is removed again rather than left behind empty forever.
struct FetchedMirror {
  lg::Repository repo;
  RemoteHeads heads;
};
[[nodiscard]] tl::expected<FetchedMirror, Error> open_and_fetch(const std::filesystem::path& path, const std::string& name,
                                                                const Remote& remote, const std::string& base_branch,
                                                                const std::string& target_branch);

// Removes refs/heads/<branch> from the mirror when it goes out of scope. The target branch lives
// in the mirror only for one call: kept, one ref per run would pile up and every later fetch would
// offer them all to the host as "have"s. Its objects stay.
struct ForgetBranch {
  git_repository* repo;
  std::string ref;
  ForgetBranch(git_repository* r, const std::string& branch) : repo(r), ref("refs/heads/" + branch) {}
  ForgetBranch(const ForgetBranch&) = delete;
  ForgetBranch& operator=(const ForgetBranch&) = delete;
  ~ForgetBranch();
};

}  // namespace tollgate::git
