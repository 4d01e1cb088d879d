#pragma once
// The git writer: turns a stage's edits into one promotion commit on top of an environment
// repository's base branch and pushes it to tollgate's own branch, through a persistent bare
// mirror per repository (no clone, no working tree). How it works: docs/git-writer.md.
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include <tl/expected.hpp>

namespace tollgate::service::host {
class HttpClient;
}

namespace tollgate::git {

struct CopySource;  // service/git/tree_edits.hpp

struct Credentials {
  std::string username = "x-access-token";  // GitHub's user for installation and app tokens
  std::string token;                        // sent as the HTTP basic password; never logged
};

// `set`: one scalar at a YAML / JSON path (service/edit).
struct SetEdit {
  std::string file;
  std::string path;
  std::string value;
};

// `image`: a kustomization `images:` entry by name (service/edit).
struct ImageEdit {
  std::string file;
  std::string name;
  std::string tag;
};

// `replace`: every match of an RE2 pattern; `\1`..`\9` in the replacement name groups.
// A pattern that matches nothing is an error (a typo would otherwise promote nothing, silently).
struct ReplaceEdit {
  std::string file;
  std::string pattern;
  std::string replacement;
};

// `copy`: a file or a directory (`from` ending in `/` or naming a tree) of the source repository
// at `source_sha`, written to `to` in the environment repository. A directory replaces the one at
// `to`: files gone from the source are removed. A file goes to `to`, or into it when `to` ends
// in `/`. The source is fetched into its own mirror only when the sha is not there yet.
struct CopyEdit {
  std::string source_url;
  std::string source_sha;  // 40 hex digits
  std::string from;
  std::string to;
  Credentials source_credentials;  // an empty token means the request's credentials
};

using Edit = std::variant<SetEdit, ImageEdit, ReplaceEdit, CopyEdit>;

struct Identity {
  std::string name = "tollgate";
  std::string email = "tollgate@localhost";
};

struct PromotionRequest {
  std::string url;            // https://host/owner/name(.git), without credentials
  Credentials credentials;
  std::string base_branch;    // e.g. `main`
  std::string target_branch;  // deterministic, e.g. `tollgate/payments/dev/42`; force-pushed
  std::string message;        // commit message
  Identity author;
  Identity committer;
  std::vector<Edit> edits;
};

enum class Outcome {
  pushed,      // a new commit was pushed to the target branch
  up_to_date,  // the target branch already holds this change on this base: nothing pushed
  unchanged,   // the edits change nothing on the base branch: no commit, nothing pushed
};

struct PromotionResult {
  Outcome outcome = Outcome::unchanged;
  std::string base_commit;    // the base branch tip the change was built on
  std::string commit;         // the target branch tip (empty when unchanged)
  bool created_branch = false;  // pushed: the target branch did not exist on the host before
  std::vector<std::string> changed_files;  // paths whose contents the edits changed
};

enum class ErrorKind {
  unauthorized,     // the host refused the credentials (never retried)
  rejected,         // the host refused the pushed ref (hook, protection); message has its reason
  not_found,        // the repository or its base branch does not exist
  edit_failed,      // an edit cannot be applied; message names the file and the path / pattern
  invalid_request,  // a malformed URL, branch name or edit
  unavailable,      // network errors or 5xx that outlasted the retries
  other,
};

struct Error {
  ErrorKind kind = ErrorKind::other;
  std::string message;  // one line, names the repository, never the token
};

// A branch whose tip reverts `commit` (a merge, squash or rebase commit on the base branch) on
// top of the base tip: service/git/git_revert.cpp.
struct RevertRequest {
  std::string url;  // https://host/owner/name(.git), without credentials
  Credentials credentials;
  std::string base_branch;
  std::string target_branch;  // deterministic; force-pushed
  std::string commit;         // 40 hex digits, reachable from the base branch
  std::string message;
  Identity author;
  Identity committer;
};

struct RevertResult {
  Outcome outcome = Outcome::unchanged;  // unchanged: the base already holds the revert
  std::string base_commit;
  std::string commit;  // the target branch tip (empty when unchanged)
};

struct GitWriterOptions {
  std::filesystem::path data_dir;  // mirrors live in <data_dir>/mirrors/<host>/<owner>/<name>.git
  int max_attempts = 3;            // per network operation, for transient failures only
  std::chrono::milliseconds backoff{250};  // doubled after every failed attempt
  // Push with tollgate's own smart HTTP exchange, sending exactly the objects a promotion adds
  // (service/git/smart_http.hpp), and fetch into an existing mirror with protocol v2, asking only
  // for the two branches (service/git/upload_pack_v2.hpp); false: always libgit2, which walks the
  // base tree to push and lists every ref of the repository to fetch.
  bool smart_http = true;
};

// Counters for metrics and tests.
struct GitWriterStats {
  std::uint64_t fetches = 0;
  std::uint64_t v2_fetches = 0;          // of those, in protocol v2 (service/git/upload_pack_v2.hpp)
  std::uint64_t up_to_date_fetches = 0;  // of those, the mirror had the tips: no pack was asked for
  std::uint64_t pushes = 0;
  std::uint64_t pushes_without_advertisement = 0;  // of those, smart pushes that skipped the GET
  std::uint64_t credential_requests = 0;  // calls of libgit2's credentials callback
  std::uint64_t retries = 0;
};

// promote() blocks on the network and on the mirror's lock: call it from worker threads, never
// from the I/O threads. Promotions into one repository fetch and commit one at a time (a mutex per
// mirror); their smart-HTTP pushes run in parallel, except that promotions of the same target
// branch run one at a time from fetch to push. Different repositories proceed in parallel on their
// callers' threads. Thread-safe.
class GitWriter {
 public:
  explicit GitWriter(GitWriterOptions options);
  GitWriter(const GitWriter&) = delete;
  GitWriter& operator=(const GitWriter&) = delete;
  ~GitWriter();

  [[nodiscard]] tl::expected<PromotionResult, Error> promote(const PromotionRequest& request);
  // Same mirror, lock and push as promote(); a revert that conflicts with later changes on the
  // base is `edit_failed`, a commit not on the base branch `not_found`.
  [[nodiscard]] tl::expected<RevertResult, Error> revert(const RevertRequest& request);

  [[nodiscard]] GitWriterStats stats() const;

  // Internal: updated by service/git's network code; read through stats().
  struct Counters {
    std::atomic<std::uint64_t> fetches{0};
    std::atomic<std::uint64_t> v2_fetches{0};
    std::atomic<std::uint64_t> up_to_date_fetches{0};
    std::atomic<std::uint64_t> pushes{0};
    std::atomic<std::uint64_t> pushes_without_advertisement{0};
    std::atomic<std::uint64_t> credential_requests{0};
    std::atomic<std::uint64_t> retries{0};
  };

 private:
  std::shared_ptr<std::mutex> mirror_lock(const std::string& mirror_path);
  [[nodiscard]] tl::expected<CopySource, Error> read_copy_source(const CopyEdit& edit,
                                                                        const Credentials& fallback);

  GitWriterOptions options_;
  Counters counters_;
  std::unique_ptr<service::host::HttpClient> http_;
  std::mutex locks_mutex_;
  std::map<std::string, std::shared_ptr<std::mutex>> locks_;
  // Promotions of one target branch run one at a time from fetch to push; the mirror's lock is
  // held only from the fetch to the commit. Striped by a hash of (mirror, branch): two branches
  // sharing a stripe merely wait for each other.
  std::array<std::mutex, 64> branch_locks_;
};

}  // namespace tollgate::git
