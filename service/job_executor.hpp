#pragma once
// Runs one engine job (pipeline::Job) against the Git host and the git writer, and says what to
// feed back into the run. Every execution is idempotent on the host, because a crash between the
// side effect and the commit of its result makes the runner execute the same job again:
//   prepare_branch   deterministic branch, built on the base tip; the same tree on the same base
//                    is "up to date" (no second push)
//   open_pr          looked up by head branch before one is created (and the host's create is
//                    idempotent by head branch too)
//   set_commit_status / upsert_sticky_comment   replace by context / by hidden marker
//   merge_pr, merge_revert_pr   bound to the expected head; "already merged at that head" is ok
//   close_pr         an already closed PR is done
//   open_revert_pr   deterministic `<branch>-revert` branch, looked up by head branch first
//   add_reaction     hosts keep one reaction per user and content
//   reply            a sticky comment keyed by the job's key (one reply per answered comment)
//   resync_pr        read-only
// verify_probe and timer jobs are not run here (service/probes, the timer wheel).
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "pipeline/engine.hpp"
#include "pipeline/model.hpp"
#include "service/git/git_writer.hpp"
#include "service/host/host.hpp"

namespace tollgate::service {

// What this process has just done on the host, to spare it lookups. Only hints: lost with the
// process (the next execution then looks as usual). Shared by the job workers.
//  - Status comments (host::StickyHint): the PRs it opened itself, and the id and text of each
//    comment it posted or edited (a comment deleted since is found missing by the edit).
//  - Branches its prepare_branch created on the host (they did not exist before the push): the
//    first open_pr for such a branch needs no lookup for a PR from an earlier execution, since
//    there was none; taken on use, so any later execution looks.
class HostHints {
 public:
  // Other processes act on the same PRs (replicas on one database): a PR this process opened may
  // have had a comment posted by another, and a comment's text may have been rewritten by one, so
  // the hints that assume otherwise (new_pr, an unchanged text) are not given; the comment's id
  // still is (an edit of a comment that is gone is a 404, then a lookup). The branch hint stays:
  // a second PR from one branch is refused by the host, and the client then reads the open one.
  void set_shared(bool shared) {
    std::lock_guard lock(mu_);
    shared_ = shared;
  }
  void branch_created(const std::string& host, const std::string& repo, const std::string& branch);
  // Whether `branch` was created by this process and not yet opened; forgets it either way.
  [[nodiscard]] bool take_created_branch(const std::string& host, const std::string& repo, const std::string& branch);

  // `pr` was opened by this process just now: no comment on it can hold a marker yet.
  void opened(const std::string& host, const std::string& repo, std::int64_t pr);
  // The hint for updating `key` on `pr` to a text whose hash is `text_hash`; `unchanged` is set
  // when the comment was last written with that very text by this process.
  [[nodiscard]] host::StickyHint hint(const std::string& host, const std::string& repo, std::int64_t pr, const std::string& key,
                                      std::size_t text_hash, bool& unchanged) const;
  // The comment for `key` on `pr` is `comment_id` and holds the text hashed `text_hash`; 0 forgets it.
  void stored(const std::string& host, const std::string& repo, std::int64_t pr, const std::string& key, std::int64_t comment_id,
              std::size_t text_hash);

 private:
  struct Entry {
    std::int64_t id = 0;
    std::size_t text_hash = 0;
  };
  static constexpr std::size_t kMaxEntries = 50000;  // then forgotten wholesale (each miss costs one listing)
  mutable std::mutex mu_;
  bool shared_ = false;
  std::unordered_set<std::string> opened_;
  std::unordered_set<std::string> created_branches_;
  std::unordered_map<std::string, Entry> comments_;
};

struct ExecContext {
  const pipeline::Pipeline& def;  // the definition the run is pinned to
  const pipeline::RunState& run;  // the run's current stored state
  host::Host& host;               // client for the stage repositories' host (and the source repository's)
  git::GitWriter* writer = nullptr;  // prepare_branch and open_revert_pr; null: those jobs fail (terminal)
  // https clone URL of `owner/name`, without credentials; unset or empty: host.get_repository's.
  std::function<std::string(const std::string& repo)> clone_url{};
  // The default branch of `owner/name`, for stages without `branch:`; unset or empty:
  // host.get_repository's (a failed lookup fails the job like any host error).
  std::function<std::string(const std::string& repo)> default_branch{};
  // Link to a PR for templates (`source.pr_url`, `upstream.pr_url`); unset: those are empty.
  std::function<std::string(const std::string& repo, std::int64_t pr)> pr_url{};
  git::Credentials credentials{};
  std::string bot_login = "tollgate";
  std::string public_url{};  // links to the run page: <public_url>/runs/<run id>
  std::string host_name{};   // `source.host` in templates (the name in /hooks/<host>)
  std::string source_pr_title{};                  // `source.pr_title`, when the service knows it
  std::vector<std::string> source_changed_files{};  // `source.changed_files`
  git::Identity identity{};                      // author and committer of promotion commits
  HostHints* hints = nullptr;                 // optional: fewer lookups (see HostHints)
  // Held around a git write to `owner/name` (prepare_branch, open_revert_pr): writes to one
  // repository from several replicas go one at a time. Unset: no lock beyond the writer's own.
  std::function<std::shared_ptr<void>(const std::string& repo)> lock_repo{};
};

struct ExecOutcome {
  enum class Kind {
    done,      // nothing more to do for this job (inputs, if any, go to the run)
    retry,     // a technical failure worth retrying (runner: backoff, or retry_after)
    terminal,  // a failure not worth retrying (runner: log / audit `error`, drop the job)
  };
  Kind kind = Kind::done;
  // Inputs to apply to the run: a JobResult for prepare_branch / open_pr / merge_pr /
  // open_revert_pr / merge_revert_pr (also for their retryable / terminal failures: the engine
  // counts attempts for those, so `kind` stays done); PrMerged / PrClosed / HeadChanged from resync_pr.
  std::vector<pipeline::Input> inputs;
  // One line, never a token: why a retry / terminal job failed; also set (for the log) when a
  // JobResult reports a retryable / terminal failure.
  std::string error;
  std::optional<std::chrono::seconds> retry_after;  // e.g. from a rate limit
};

[[nodiscard]] ExecOutcome execute(const pipeline::Job& job, const ExecContext& cx);

// A job that cannot be run at all (e.g. its host is no longer in the configuration): for the kinds
// the engine waits on, a terminal JobResult with `message`, so the stage fails with the reason
// instead of waiting for ever; for the others, a terminal failure.
[[nodiscard]] ExecOutcome cannot_run(const pipeline::Job& job, const std::string& message);

// Helpers, public for tests and for the runner.
// `<public_url>/runs/<id>` (no double slash).
[[nodiscard]] std::string run_url(const std::string& public_url, const std::string& run_id);
// The sticky key of a stage's status comment; the same as the marker in templates/status-comment.
[[nodiscard]] std::string status_comment_key(const std::string& pipeline, const std::string& stage, const std::string& run_id);
// The sticky key of the one reply a `reply` job posts (derived from the job's idempotency key).
[[nodiscard]] std::string reply_comment_key(const pipeline::Job& job);
// `tollgate/<stage>`.
[[nodiscard]] std::string status_context(const std::string& stage);
// The branch of a stage's revert PR.
[[nodiscard]] std::string revert_branch(const std::string& stage_branch);

}  // namespace tollgate::service
