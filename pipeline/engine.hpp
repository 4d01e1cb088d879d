#pragma once
// The promotion state machine (DESIGN.md, "State machine"), pure and deterministic: one Input and
// the persisted RunState in, the new RunState, its audit entries and the jobs to schedule out.
// No I/O and no clock reads: `service/` applies each Step in one transaction with the event
// marked consumed, and runs the jobs (every job carries a deterministic idempotency key).
#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "pipeline/commands.hpp"
#include "pipeline/model.hpp"

namespace tollgate::pipeline {

using TimePoint = std::chrono::sys_time<std::chrono::milliseconds>;  // milliseconds: a 3 s soak is 3 s, not 2.1

// ---------------------------------------------------------------------------------------------
// Persisted state

enum class RunStatus { queued, running, succeeded, failed, aborted, superseded };
enum class StageStatus { waiting, preparing, open, merging, verifying, promoted, skipped, failed, aborted, superseded };

[[nodiscard]] const char* to_string(RunStatus s);
[[nodiscard]] const char* to_string(StageStatus s);
[[nodiscard]] bool is_terminal(RunStatus s);
[[nodiscard]] bool is_terminal(StageStatus s);  // promoted, skipped, failed, aborted, superseded
// Whether two owner/name spellings are the same repository: hosts treat them case-insensitively,
// and webhooks carry the host's spelling, which need not be the pipeline file's.
[[nodiscard]] bool same_repo(std::string_view a, std::string_view b);

enum class CheckState { pending, success, failure };  // skipped / neutral map to success

// The latest result of one status / check run, and the commit it was reported on.
struct CheckSeen {
  std::string sha{};
  CheckState state = CheckState::pending;
  TimePoint at{};
  friend bool operator==(const CheckSeen&, const CheckSeen&) = default;
};

// One person's approval of one head (a head change drops it).
struct Approval {
  std::string login{};
  std::string sha{};  // the head it was given on; dropped when the head changes
  bool via_review = false;
  TimePoint at{};
  friend bool operator==(const Approval&, const Approval&) = default;
};

// A /hold on a stage: who and why.
struct Hold {
  std::string by{};
  std::string reason{};
  friend bool operator==(const Hold&, const Hold&) = default;
};

// Where a rollback (on_failure: rollback, or /rollback on a promoted stage) stands.
enum class RollbackPhase { none, opening, merging, done, failed };

// The persisted state of one stage of one run.
struct StageState {
  std::string name{};
  StageStatus status = StageStatus::waiting;
  std::string branch{};              // tollgate/<pipeline>/<stage>/<run>
  std::int64_t pr = 0;               // promotion PR, once opened
  std::string head_sha{};            // PR head (set by the prepare result, then head changes)
  TimePoint head_set_at{};           // for the checks settle time
  bool head_stale = false;           // a 409 said the head moved and the new one is not known yet
  std::string expected_merge_sha{};  // head the merge job was sent for
  std::string merge_sha{};           // the merge commit, once merged
  std::string merged_by{};           // login; "tollgate" when tollgate merged it
  bool merged_by_person = false;
  std::optional<TimePoint> merge_refused_at;  // 405: host refused the merge (branch protection)
  std::map<std::string, CheckSeen> checks;    // latest result per name (PR head and merge commit)
  std::vector<Approval> approvals;
  std::optional<Hold> hold;
  std::optional<TimePoint> started_at, opened_at, gates_passed_at, verify_started_at, finished_at;
  // Verification progress.
  int verify_step = 0;
  std::optional<TimePoint> step_started_at;
  std::optional<TimePoint> passing_since;  // probe steps with `for`: first pass of the current streak
  int probe_seq = 0;                       // probes sent for the current step; timers carry it
  // Retries and failure.
  int attempt = 0;                               // attempt of the current job (retryable failures)
  int retries = 0;                               // /retry count; part of job keys so a retry sends new jobs
  int merge_seq = 0;                             // merges sent; part of the merge key (a 405 then a new merge)
  StageStatus failed_in = StageStatus::waiting;  // where it failed, for /retry
  std::string failure{};
  // Rollback.
  RollbackPhase rollback = RollbackPhase::none;
  std::int64_t revert_pr = 0;
  std::string revert_head_sha{};
  // What was last published, so unchanged results publish nothing.
  std::string status_state, status_description;
  int sticky_rev = 0;
  std::map<std::string, TimePoint> timers;  // name -> when it is set to fire
  std::vector<std::int64_t> seen_comments;  // comment ids already handled
  std::vector<std::int64_t> seen_reviews;   // review ids already handled
  friend bool operator==(const StageState&, const StageState&) = default;
};

// The change being promoted: where it came from and who wrote it.
struct SourceFacts {
  std::string repo{};
  std::string branch{};
  std::string sha{};
  std::int64_t pr = 0;
  std::string author{};  // the source PR's author (the pusher for a push trigger)
  std::string title{};   // the source PR's title (empty for a push)
  friend bool operator==(const SourceFacts&, const SourceFacts&) = default;
};

// The persisted state of one run: what the service stores (as JSON) between inputs.
struct RunState {
  std::string id{};
  std::string pipeline{};
  RunStatus status = RunStatus::queued;
  SourceFacts source;
  std::vector<std::pair<std::string, std::string>> release;  // rendered release values
  TimePoint created_at{};
  std::optional<TimePoint> finished_at;
  std::vector<StageState> stages;  // definition order

  [[nodiscard]] const StageState* stage(std::string_view name) const;
  [[nodiscard]] StageState* stage(std::string_view name);
  friend bool operator==(const RunState&, const RunState&) = default;
};

void to_json(nlohmann::json& j, const RunState& r);
void from_json(const nlohmann::json& j, RunState& r);  // throws nlohmann::json::exception when malformed

// ---------------------------------------------------------------------------------------------
// Inputs: one per stored event, timer, job result or API action.

// A promotion (or revert) PR was merged.
struct PrMerged {
  std::string repo{};
  std::int64_t pr = 0;
  std::string merge_sha{};
  std::string by{};          // login
  bool by_tollgate = false;  // the merge tollgate itself made (its own token)
};
// A promotion PR was closed without a merge.
struct PrClosed {
  std::string repo{};
  std::int64_t pr = 0;
  std::string by{};
};
// A push changed a PR's head (or a resync confirmed it).
struct HeadChanged {
  std::string repo{};
  std::int64_t pr = 0;
  std::string sha{};
};
// A commit status or check run reported a result.
struct CheckCompleted {
  std::string repo{};
  std::string sha{};
  std::string name{};
  CheckState state = CheckState::pending;
};
// A pull-request review was submitted or dismissed.
struct ReviewSubmitted {
  enum class Kind { approved, dismissed, changes_requested } kind = Kind::approved;
  std::string repo{};
  std::int64_t pr = 0;
  std::int64_t review_id = 0;
  ActorFacts author{};
  std::string sha{};  // the head it was given on; empty: the current head
};
// A new comment on a PR (edits never come here).
struct CommentCreated {
  std::string repo{};
  std::int64_t pr = 0;
  std::int64_t comment_id = 0;
  ActorFacts author{};
  std::string body{};
};
// A timer job came due.
struct TimerFired {
  std::string stage{};
  std::string name{};  // settle, soak, window, merge_retry, verify_wait, verify_poll, verify_timeout, resync
  int seq = 0;         // verify_poll: the probe it was set for
};

enum class JobKind {
  prepare_branch,         // git writer: apply the stage's edits on the branch; result: head sha or no change
  open_pr,                // find-or-open the PR for the branch; result: pr number (+ head sha)
  set_commit_status,      // tollgate/<stage> on `sha`
  upsert_sticky_comment,  // the one status comment, found by its hidden marker
  merge_pr,               // bound to `sha` (the expected head)
  close_pr,
  open_revert_pr,  // result: revert pr number + head sha
  merge_revert_pr,
  add_reaction,  // on comment_id
  reply,         // text on the PR, answering comment_id (0: a review)
  verify_probe,  // http / prometheus step `step`, probe number `seq`; result pass / fail
  resync_pr,     // read the PR from the host; answers come back as PrMerged/PrClosed/HeadChanged
  timer,         // fire TimerFired{stage, timer, seq} at `at`
};
[[nodiscard]] const char* to_string(JobKind k);

// What a job reported when it finished.
struct JobResult {
  enum class Outcome {
    ok,             // prepare: head sha; open_pr / open_revert_pr: pr + head sha; merge: merge sha
    no_change,      // prepare: the edits changed nothing
    not_mergeable,  // merge: 405
    head_moved,     // merge: 409 (sha: the new head, when the host said; else a resync is sent)
    probe_failed,   // verify_probe: the business check did not hold (message says why)
    retryable,      // technical error worth retrying
    terminal,       // technical error not worth retrying
  };
  JobKind kind = JobKind::prepare_branch;
  std::string stage{};
  Outcome outcome = Outcome::ok;
  std::int64_t pr = 0;
  std::string sha{};
  int step = 0;     // verify_probe: the job's step
  int seq = 0;      // verify_probe and merge_pr: the job's seq
  int attempt = 0;  // prepare_branch / open_pr: the job's attempt
  std::string message{};
};

// A stage or run action from the API or the command line (already authenticated).
struct ApiAction {
  enum class Kind { abort, retry, hold, unhold, rollback, approve, unapprove } kind = Kind::abort;
  std::string stage{};  // empty: abort applies to the run
  std::string actor{};
  std::string reason{};  // a hold's or an abort's reason, an approval's note
  // What the service knows of the actor (host permission, teams), as for a comment: when given,
  // the action is authorized by the comment commands' rules (pipeline::authorize); when not, the
  // caller vouches for it (approve and unapprove always need it).
  std::optional<ActorFacts> facts{};
  std::string via{};  // how it came, for the audit log ("api:<token>"): recorded as "actor (via)"
};

using Input = std::variant<PrMerged, PrClosed, HeadChanged, CheckCompleted, ReviewSubmitted, CommentCreated, TimerFired,
                           JobResult, ApiAction>;

// ---------------------------------------------------------------------------------------------
// Outputs

// One audit entry. Every change is audited: state changes (from != to) and changes inside a state
// such as approvals, holds and dropped approvals (from == to). Stage empty: the run itself.
struct Transition {
  std::string stage{};
  std::string from, to;
  std::string actor{};  // login, or "tollgate"
  std::string reason{};
  friend bool operator==(const Transition&, const Transition&) = default;
};

// A side effect to run (or a timer to set), with its idempotency key.
struct Job {
  JobKind kind = JobKind::timer;
  std::string key{};    // idempotency key; the same side effect always has the same key
  std::string stage{};  // empty: run-level
  std::string repo{};
  std::int64_t pr = 0;
  std::string sha{};
  std::int64_t comment_id = 0;
  std::string state{};            // set_commit_status: pending | success | failure; add_reaction: the reaction
  std::string text{};             // reply / status description / close reason / branch
  std::string timer{};            // timer: its name
  std::optional<TimePoint> at{};  // timer: when; other jobs: not before
  int step = 0;
  int seq = 0;  // verify_probe, merge_pr; set_commit_status / upsert_sticky_comment: the stage's sticky_rev
  int attempt = 0;
  friend bool operator==(const Job&, const Job&) = default;
};

// The result of one input: the new state, its audit entries, the jobs to schedule.
struct Step {
  RunState run;
  std::vector<Transition> transitions;
  std::vector<Job> jobs;
  std::string refused{};  // an ApiAction that could not be done: why (the API answers 409 with it)
};

// Local time in a zone. Implemented by service/ with the tz database; tests use fixed offsets.
class TimeZones {
 public:
  virtual ~TimeZones() = default;
  // UTC offset of `zone` at `at` (local = utc + offset); nothing when the zone is unknown.
  [[nodiscard]] virtual std::optional<std::chrono::seconds> utc_offset(std::string_view zone, TimePoint at) const = 0;
};

// Every zone is UTC. Enough for pipelines without windows, and for tests.
class UtcZones final : public TimeZones {
 public:
  [[nodiscard]] std::optional<std::chrono::seconds> utc_offset(std::string_view, TimePoint) const override {
    return std::chrono::seconds{0};
  }
};

// Tunables; the defaults are DESIGN.md's.
struct EngineOptions {
  std::chrono::seconds checks_settle{10};     // `checks: all` waits this long after a head push
  std::chrono::seconds merge_retry{60};       // after a 405, merge again after this (or a new check)
  std::chrono::seconds probe_interval{15};    // between verify probes
  std::chrono::seconds resync_interval{300};  // resync of an open PR, in case webhooks were missed
  int max_attempts = 5;                       // retryable job failures before the stage fails
  std::string bot_login = "tollgate";
};

// A stage of the run is merging or verifying, or rolling back (its revert PR opening or merging).
[[nodiscard]] bool under_way(const RunState& run);

// What apply() knows of the world besides the run: the time and the time zones.
struct Context {
  TimePoint now{};
  const TimeZones* zones = nullptr;  // null: UTC
  EngineOptions options{};
  // A newer run of the same pipeline (concurrency: supersede), whatever its status; empty when
  // there is none. A run that was merging, verifying or rolling back when that run came (so was
  // left to finish, see admit_run) starts no further stage: it ends superseded as soon as nothing
  // of it is under way, instead of promoting its older version after the newer one. A failed run
  // with a newer one refuses /retry.
  std::string superseded_by{};
};

// A new run of `def`: every stage waiting, in definition order, run queued (start_run starts it).
[[nodiscard]] RunState make_run(const Pipeline& def, std::string id, SourceFacts source,
                                std::vector<std::pair<std::string, std::string>> release, TimePoint created_at);

// queued -> running; stages with no `after` -> preparing, each with its prepare_branch job.
[[nodiscard]] Step start_run(const Pipeline& def, const RunState& run, const Context& cx);

// Applies one input. Inputs that concern neither this run nor its stages (another PR, a stale sha,
// a result of a job the run no longer waits for) return the run unchanged, with no transition and
// no job; so does an input applied a second time.
[[nodiscard]] Step apply(const Pipeline& def, const RunState& run, const Input& in, const Context& cx);

// Concurrency between runs of one pipeline, when `incoming` (queued) arrives while `in_flight`
// (other runs of the same pipeline, any state) exist.
//   supersede: every older running run with no stage merging, verifying or rolling back is
//     superseded (its unfinished stages -> superseded, their open PRs closed) and `incoming`
//     starts. Runs with a merge, verification or rollback under way finish that on their own
//     (cutting them would leave an environment half-promoted) and are superseded then
//     (Context::superseded_by).
//   queue: `incoming` stays queued while another run is running; when a run ends, next_queued
//     names the oldest queued run to start.
struct ConcurrencyDecision {
  std::vector<Step> others;  // steps for runs of in_flight that change (superseded)
  Step incoming;             // started, or unchanged (queued)
};
[[nodiscard]] ConcurrencyDecision admit_run(const Pipeline& def, const std::vector<RunState>& in_flight,
                                            const RunState& incoming, const Context& cx);
[[nodiscard]] std::optional<std::string> next_queued(const std::vector<RunState>& runs);

// The run table /status replies with (one line per stage), and the command list /help replies with.
[[nodiscard]] std::string render_status(const RunState& run);
[[nodiscard]] std::string help_text();

}  // namespace tollgate::pipeline
