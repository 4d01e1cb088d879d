#pragma once
// Internal to the engine: the one-input state machine that apply(), start_run() and admit_run()
// drive. Its members are defined by topic in engine.cpp (lifecycle, PR events, timers, job
// results), engine_gates.cpp, engine_verify.cpp (verification, rollback) and engine_commands.cpp
// (comments, reviews, API actions). Not part of pipeline/'s public API.
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pipeline/engine.hpp"

namespace tollgate::pipeline::detail {

using std::chrono::seconds;

std::string epoch(TimePoint t);
std::string short_sha(const std::string& sha);
std::string mention(const std::string& login);
bool is_own_check(const std::string& name);
// Whether `w` is open at `t`, given the zone's UTC offset at `t`.
bool window_open_at(const Window& w, TimePoint t, seconds offset);

// Works on a copy of one run; every change it makes is recorded in the Step it finishes with.
class Machine {
 public:
  Machine(const Pipeline& def, const RunState& run, const Context& cx);
  Step finish() && { return std::move(out_); }

  RunState& run() { return out_.run; }

  const Stage* def_of(const StageState& st) const { return def_.stage(st.name); }
  std::string repo_of(const StageState& st) const {
    const Stage* sd = def_of(st);
    return sd ? sd->repo : "";
  }

  // ---- audit and jobs -------------------------------------------------------------------------

  void audit(const std::string& stage, std::string from, std::string to, std::string actor, std::string reason);
  std::string key(std::initializer_list<std::string> parts) const;
  const RunState& run() const { return out_.run; }

  void job(Job j) { out_.jobs.push_back(std::move(j)); }

  void refuse(std::string why) { out_.refused = std::move(why); }

  std::string bot() const { return cx_.options.bot_login; }

  // Sets a timer unless the same one is already set.
  void arm(StageState& st, const std::string& name, TimePoint at, int seq = 0);

  // Publishes the tollgate/<stage> status and the sticky comment when what they say changed.
  void publish(StageState& st, const std::string& state, const std::string& description);
  void move(StageState& st, StageStatus to, const std::string& actor, const std::string& reason);
  void move_run(RunStatus to, const std::string& actor, const std::string& reason);

  // ---- stage lifecycle --------------------------------------------------------------------------

  void send_prepare(StageState& st);
  void send_open_pr(StageState& st);
  void send_merge(StageState& st);
  void start_stage(StageState& st, const std::string& reason);
  void start_ready_stages();
  void stage_done();
  // Context::superseded_by names a newer run (a supersede pipeline): /retry is refused.
  bool has_newer() const;
  // ... and this run is running: it starts no stage and no merge, and ends superseded (give_way)
  // once nothing of it is under way (under_way). yield_reason() says so on its PRs and in replies.
  bool yielding() const;
  std::string yield_reason() const;
  bool give_way();
  void promote(StageState& st, const std::string& reason);

  // Ends the run: every unfinished stage ends too (aborted, or superseded), their PRs closed.
  void end_run(RunStatus to, const std::string& actor, const std::string& reason);
  void fail(StageState& st, const std::string& reason, const std::string& actor);
  void begin_rollback(StageState& st, const std::string& actor, const std::string& reason);
  void rollback_done(StageState& st, const std::string& by);

  // A retryable failure sends the job again (with backoff) until max_attempts; then it fails.
  bool retry_later(StageState& st, const std::string& message);
  void resend(StageState& st);

  // ---- gates ------------------------------------------------------------------------------------

  struct Verdict {
    bool pass = true;
    bool failed_check = false;
    std::vector<std::string> waiting;
  };

  // `checks` on `sha` against `sel`, settle time counted from `since`.
  Verdict evaluate_checks(StageState& st, const CheckSelection& sel, const std::string& sha, TimePoint since);
  std::optional<seconds> offset(const std::string& zone, TimePoint t) const;
  std::optional<TimePoint> next_window_opening(const Window& w) const;
  std::vector<std::string> approvers_on_head(const StageState& st) const;
  TimePoint soak_base(const StageState& st, const Stage& sd) const;

  // Re-evaluates the gates of an open stage; merges when they all hold and merge is automatic.
  void evaluate(StageState& st);

  // ---- verification -----------------------------------------------------------------------------

  void enter_verifying(StageState& st, const std::string& merge_sha, const std::string& by, bool person);
  void start_step(StageState& st);
  void next_step(StageState& st);
  void send_probe(StageState& st);
  const VerifyStep* current_step(const StageState& st) const;
  void evaluate_verify_checks(StageState& st);
  seconds probe_for(const VerifyStep& step) const;
  void probe_result(StageState& st, const JobResult& r);

  // ---- inputs -----------------------------------------------------------------------------------

  StageState* stage_by_pr(const std::string& repo, std::int64_t pr);
  bool running() const { return run().status == RunStatus::running; }

  void on(const PrMerged& in);
  void on(const PrClosed& in);
  void change_head(StageState& st, const std::string& sha, const std::string& why);
  void on(const HeadChanged& in);
  void on(const CheckCompleted& in);
  std::optional<ApprovalGate> gate_of(const StageState& st) const;

  // Adds an approval; false when this login already approved this head.
  bool add_approval(StageState& st, const std::string& login, bool via_review, const std::string& note = {});
  bool remove_approval(StageState& st, const std::string& login, const std::string& why);
  void on(const ReviewSubmitted& in);

  // Runs one accepted command; the refusal text when the state does not allow it.
  std::optional<std::string> execute(StageState& st, const Command& c, const ActorFacts& who);
  std::optional<std::string> do_hold(StageState& st, const std::string& by, const std::string& reason);
  std::optional<std::string> do_unhold(StageState& st, const std::string& by);
  std::optional<std::string> do_abort(const std::string& by, const std::string& reason);
  std::optional<std::string> do_retry(StageState& st, const std::string& by);
  std::optional<std::string> do_rollback(StageState& st, const std::string& by);
  void on(const CommentCreated& in);
  void on(const TimerFired& in);
  void on(const JobResult& r);
  void technical_failure(StageState& st, const JobResult& r, const std::string& what);
  void on_prepared(StageState& st, const JobResult& r);
  void on_opened(StageState& st, const JobResult& r);
  void on_merge(StageState& st, const JobResult& r);
  void on(const ApiAction& a);

 private:
  const Pipeline& def_;
  const Context& cx_;
  TimePoint now_;
  Step out_;
};

}  // namespace tollgate::pipeline::detail
