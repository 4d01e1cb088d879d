// After the merge: the verify steps in order within the timeout, then promotion; on failure the
// rollback (a revert PR, opened and merged by jobs). See docs/engine.md, the verifying rows.
#include <algorithm>
#include <string>
#include <variant>

#include "pipeline/duration.hpp"
#include "pipeline/engine_machine.hpp"

namespace tollgate::pipeline::detail {

void Machine::begin_rollback(StageState& st, const std::string& actor, const std::string& reason) {
  st.rollback = RollbackPhase::opening;
  audit(st.name, to_string(st.status), to_string(st.status), actor, reason);
  job({.kind = JobKind::open_revert_pr,
       .key = key({"revert", st.name, std::to_string(st.retries)}),
       .stage = st.name,
       .repo = repo_of(st),
       .pr = st.pr,
       .sha = st.merge_sha});
}

void Machine::rollback_done(StageState& st, const std::string& by) {
  st.rollback = RollbackPhase::done;
  audit(st.name, to_string(st.status), to_string(st.status), by,
        "revert PR #" + std::to_string(st.revert_pr) + " merged");
  if (run().status == RunStatus::running || run().status == RunStatus::succeeded) {
    // A rollback of a finished run reopens nothing: the run records that it did not hold.
    if (run().status == RunStatus::succeeded) {
      move_run(RunStatus::failed, by, "stage '" + st.name + "' rolled back");
    } else {
      end_run(RunStatus::failed, by, "stage '" + st.name + "' failed and was rolled back");
    }
  }
}

void Machine::enter_verifying(StageState& st, const std::string& merge_sha, const std::string& by, bool person) {
  st.merge_sha = merge_sha;
  st.merged_by = by;
  st.merged_by_person = person;
  st.timers.clear();
  move(st, StageStatus::verifying, by, person ? "merged by " + mention(by) : "merged");
  const Stage* sd = def_of(st);
  st.verify_started_at = now_;
  st.verify_step = 0;
  if (!sd || !sd->verify || sd->verify->steps.empty()) {
    promote(st, "no verification steps");
    return;
  }
  publish(st, "pending", "verifying");
  arm(st, "verify_timeout", now_ + sd->verify->timeout);
  start_step(st);
}

void Machine::start_step(StageState& st) {
  const Stage* sd = def_of(st);
  if (!sd || !sd->verify) return;
  if (st.verify_step >= static_cast<int>(sd->verify->steps.size())) {
    promote(st, "verification passed");
    return;
  }
  st.step_started_at = now_;
  st.passing_since.reset();
  st.probe_seq = 0;
  st.attempt = 0;
  const auto& action = sd->verify->steps[static_cast<std::size_t>(st.verify_step)].action;
  if (const auto* w = std::get_if<WaitStep>(&action)) {
    arm(st, "verify_wait", now_ + w->duration);
  } else if (std::holds_alternative<ChecksStep>(action)) {
    evaluate_verify_checks(st);
  } else {
    send_probe(st);
  }
}

void Machine::next_step(StageState& st) {
  ++st.verify_step;
  start_step(st);
}

void Machine::send_probe(StageState& st) {
  ++st.probe_seq;
  job({.kind = JobKind::verify_probe,
       .key = key({"probe", st.name, std::to_string(st.retries), std::to_string(st.verify_step),
                   std::to_string(st.probe_seq)}),
       .stage = st.name,
       .repo = repo_of(st),
       .pr = st.pr,
       .sha = st.merge_sha,
       .step = st.verify_step,
       .seq = st.probe_seq});
}

const VerifyStep* Machine::current_step(const StageState& st) const {
  const Stage* sd = def_of(st);
  if (!sd || !sd->verify || st.verify_step < 0 || st.verify_step >= static_cast<int>(sd->verify->steps.size()))
    return nullptr;
  return &sd->verify->steps[static_cast<std::size_t>(st.verify_step)];
}

void Machine::evaluate_verify_checks(StageState& st) {
  const VerifyStep* step = current_step(st);
  if (!step) return;
  const auto* c = std::get_if<ChecksStep>(&step->action);
  if (!c) return;
  Verdict v = evaluate_checks(st, c->selection, st.merge_sha, st.step_started_at.value_or(now_));
  if (v.pass) {
    next_step(st);
  } else if (v.failed_check) {
    // A red check on the merge commit is a verdict, not a delay: fail now rather than at timeout.
    fail(st, "verification failed: " + v.waiting.front(), bot());
  }
}

seconds Machine::probe_for(const VerifyStep& step) const {
  if (const auto* h = std::get_if<HttpStep>(&step.action)) return h->for_duration;
  if (const auto* p = std::get_if<PrometheusStep>(&step.action)) return p->for_duration;
  return seconds{0};
}

void Machine::probe_result(StageState& st, const JobResult& r) {
  const VerifyStep* step = current_step(st);
  if (!step) return;
  using O = JobResult::Outcome;
  if (r.outcome == O::terminal) {
    fail(st, "verification failed: " + r.message, bot());
    return;
  }
  if (r.outcome == O::ok) {
    if (!st.passing_since) st.passing_since = now_;
    seconds held = std::chrono::duration_cast<seconds>(now_ - *st.passing_since);
    seconds need = probe_for(*step);
    if (held >= need) {
      next_step(st);
      return;
    }
    arm(st, "verify_poll", now_ + std::min(cx_.options.probe_interval, need - held), st.probe_seq);
    return;
  }
  // probe_failed or retryable: not yet; the timeout decides.
  st.passing_since.reset();
  st.failure = r.message;
  arm(st, "verify_poll", now_ + cx_.options.probe_interval, st.probe_seq);
}

}  // namespace tollgate::pipeline::detail
