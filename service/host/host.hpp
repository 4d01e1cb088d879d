#pragma once
// What tollgate asks of a Git host's API (pull requests, comments, statuses, permissions, files);
// one implementation per host kind. Calls block: run them off the I/O threads.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <tl/expected.hpp>

namespace tollgate::service::host {

struct HostError {
  enum class Kind {
    not_found,
    unauthorized,  // bad or missing credentials: never retried
    forbidden,
    validation,    // 422: message carries the host's message and errors[]
    conflict,
    rate_limited,
    transient,     // 5xx, timeouts, resets left after the client's retries
    other,
  };
  Kind kind = Kind::other;
  int status = 0;  // HTTP status; 0 when no answer
  std::string message{};
};

template <typename T>
using HostResult = tl::expected<T, HostError>;

struct RepoRef {
  std::string owner{};
  std::string name{};
};

struct PullRequest {
  std::int64_t number = 0;
  std::string state{};  // open | closed
  bool merged = false;
  bool draft = false;
  std::string title{};
  std::string body{};
  std::string head_ref{};
  std::string head_sha{};
  std::string base_ref{};
  std::string html_url{};
  std::string author{};
  std::optional<bool> mergeable{};  // unknown while the host computes it
  std::string mergeable_state{};
  std::string merge_commit_sha{};
  std::string merged_by{};  // login of who merged it, when merged and the host says
  bool created = false;     // create_pull_request: this call opened it (the host answered 201)
  std::vector<std::string> labels{};
};

struct NewPullRequest {
  std::string head{};  // branch in the same repository
  std::string base{};
  std::string title{};
  std::string body{};
  bool draft = false;
  std::vector<std::string> labels{};
  std::vector<std::string> reviewers{};
  // The caller looked for a PR with this head just now and found none open: create_pull_request
  // then posts without looking again (a refusal because one exists is still resolved by a lookup).
  bool looked_up = false;
};

struct PullRequestUpdate {
  std::optional<std::string> title{};
  std::optional<std::string> body{};
  std::optional<std::string> base{};
  std::optional<std::vector<std::string>> labels{};  // replaces the set
  std::vector<std::string> reviewers{};              // added
};

enum class MergeMethod { merge, squash, rebase };
enum class MergeOutcome { merged, not_mergeable, head_moved };

struct MergeResult {
  MergeOutcome outcome = MergeOutcome::merged;
  std::string sha{};      // the merge commit when merged
  std::string message{};  // the host's reason otherwise
};

struct Comment {
  std::int64_t id = 0;
  std::string body{};
  std::string author{};
};

struct CommitStatus {
  std::string state{};  // error | failure | pending | success
  std::string context{};
  std::string description{};
  std::string target_url{};
};

// One status or check run on a commit.
struct Check {
  enum class Source { status, check_run };
  Source source = Source::status;
  std::string name{};        // status context or check run name
  std::string state{};       // status: its state; check run: queued | in_progress | completed
  std::string conclusion{};  // check runs only
};

struct Checks {
  std::string combined_state{};  // of the statuses: failure | pending | success
  std::vector<Check> checks{};
};

struct Review {
  std::int64_t id = 0;
  std::string author{};
  std::string state{};  // APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED | PENDING
  std::string commit_id{};
};

enum class Permission { none, read, triage, write, maintain, admin };

struct ChangedFile {
  std::string filename{};
  std::string status{};  // added | removed | modified | renamed | ...
  std::string previous_filename{};
};

// A problem to show on a line of a file in a check's results.
struct Annotation {
  std::string path{};
  int line = 1;
  int column = 0;  // 0: the whole line
  std::string message{};
};

// The result of a check tollgate runs on a commit (the pipeline file check): a GitHub check run
// with annotations, a commit status (with the summary as its description) on other hosts.
struct CheckReport {
  std::string name{};        // check run name / status context
  bool success = true;
  std::string title{};       // one line
  std::string summary{};     // Markdown
  std::vector<Annotation> annotations{};
};

// A repository as the host describes it: where to clone it and its default branch.
struct Repository {
  std::string full_name{};
  std::string clone_url{};  // https (or http) URL for git, without credentials
  std::string html_url{};   // web page
  std::string default_branch{};
};

// What the caller knows of a sticky comment, to save listing the PR's comments: its id from an
// earlier upsert (edited directly; when it is gone, the upsert goes on as without a hint), or that
// the PR was opened moments ago by tollgate itself, so no comment can hold the marker yet (posted
// directly; a post that fails transiently is looked for before the next one, as always).
struct StickyHint {
  std::int64_t comment_id = 0;
  bool new_pr = false;
};

class Host {
 public:
  virtual ~Host() = default;

  // Hosts that do not override these (test doubles) answer `other`.
  [[nodiscard]] virtual HostResult<Repository> get_repository(const RepoRef& repo);
  // The login of the account the token belongs to (tollgate's own account on the host).
  [[nodiscard]] virtual HostResult<std::string> current_user();
  // Publishes `report` on `sha`, replacing an earlier report of the same name (idempotent).
  // Default: a commit status named report.name whose description is the title.
  [[nodiscard]] virtual HostResult<void> publish_check(const RepoRef& repo, const std::string& sha, const CheckReport& report);

  [[nodiscard]] virtual HostResult<std::optional<PullRequest>> find_pull_request(const RepoRef& repo, const std::string& head_branch) = 0;
  // Idempotent: an open PR for the head branch is returned instead of a second one.
  [[nodiscard]] virtual HostResult<PullRequest> create_pull_request(const RepoRef& repo, const NewPullRequest& pr) = 0;
  [[nodiscard]] virtual HostResult<PullRequest> update_pull_request(const RepoRef& repo, std::int64_t number, const PullRequestUpdate& update) = 0;
  [[nodiscard]] virtual HostResult<PullRequest> close_pull_request(const RepoRef& repo, std::int64_t number) = 0;
  [[nodiscard]] virtual HostResult<PullRequest> get_pull_request(const RepoRef& repo, std::int64_t number) = 0;
  [[nodiscard]] virtual HostResult<MergeResult> merge_pull_request(const RepoRef& repo, std::int64_t number, const std::string& expected_head_sha,
                                                                   MergeMethod method, const std::string& commit_title = {}) = 0;
  // The comment holding `<!-- tollgate:KEY -->` is edited in place, or created once.
  [[nodiscard]] virtual HostResult<Comment> upsert_sticky_comment(const RepoRef& repo, std::int64_t number, const std::string& key,
                                                                  const std::string& body, const StickyHint& hint) = 0;
  [[nodiscard]] HostResult<Comment> upsert_sticky_comment(const RepoRef& repo, std::int64_t number, const std::string& key,
                                                          const std::string& body) {
    return upsert_sticky_comment(repo, number, key, body, StickyHint{});
  }
  // `number` is the PR the comment is on (GitLab addresses a note through its merge request).
  [[nodiscard]] virtual HostResult<void> add_reaction(const RepoRef& repo, std::int64_t number, std::int64_t comment_id,
                                                     const std::string& content) = 0;
  [[nodiscard]] virtual HostResult<void> set_commit_status(const RepoRef& repo, const std::string& sha, const CommitStatus& status) = 0;
  [[nodiscard]] virtual HostResult<Checks> get_checks(const RepoRef& repo, const std::string& ref) = 0;
  [[nodiscard]] virtual HostResult<std::vector<Review>> list_reviews(const RepoRef& repo, std::int64_t number) = 0;
  [[nodiscard]] virtual HostResult<Permission> user_permission(const RepoRef& repo, const std::string& login) = 0;
  [[nodiscard]] virtual HostResult<bool> is_team_member(const std::string& org, const std::string& team, const std::string& login) = 0;
  // nullopt when the file does not exist at that ref.
  [[nodiscard]] virtual HostResult<std::optional<std::string>> read_file(const RepoRef& repo, const std::string& path, const std::string& ref) = 0;
  [[nodiscard]] virtual HostResult<std::vector<ChangedFile>> list_changed_files(const RepoRef& repo, std::int64_t number) = 0;
};

[[nodiscard]] std::string sticky_marker(const std::string& key);  // "<!-- tollgate:KEY -->"

}  // namespace tollgate::service::host
