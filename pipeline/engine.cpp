// The promotion state machine: stage lifecycle, PR events, timers and job results, and the public
// entry points. See engine.hpp and docs/engine.md (the transition table); gates, verification and
// commands are in engine_gates.cpp, engine_verify.cpp and engine_commands.cpp.
#include "pipeline/engine.hpp"

#include <algorithm>
#include <utility>

#include "pipeline/duration.hpp"
#include "pipeline/engine_machine.hpp"

namespace tollgate::pipeline {
namespace detail {

std::string epoch(TimePoint t) { return std::to_string(t.time_since_epoch().count()); }

std::string short_sha(const std::string& sha) { return sha.substr(0, 7); }

std::string mention(const std::string& login) { return login.empty() || login[0] == '@' ? login : "@" + login; }

bool is_own_check(const std::string& name) { return name.rfind("tollgate/", 0) == 0; }

Machine::Machine(const Pipeline& def, const RunState& run, const Context& cx) : def_(def), cx_(cx), now_(cx.now) {
  out_.run = run;
}

void Machine::audit(const std::string& stage, std::string from, std::string to, std::string actor, std::string reason) {
  out_.transitions.push_back({stage, std::move(from), std::move(to), std::move(actor), std::move(reason)});
}

std::string Machine::key(std::initializer_list<std::string> parts) const {
  std::string k;
  for (const auto& p : parts) k += p + ":";
  return k + run().id;
}

void Machine::arm(StageState& st, const std::string& name, TimePoint at, int seq) {
  auto it = st.timers.find(name);
  if (it != st.timers.end() && it->second == at) return;
  st.timers[name] = at;
  job({.kind = JobKind::timer,
       .key = key({"timer", st.name, name, epoch(at), std::to_string(seq)}),
       .stage = st.name,
       .timer = name,
       .at = at,
       .seq = seq});
}

void Machine::publish(StageState& st, const std::string& state, const std::string& description) {
  if (st.pr == 0 || (st.status_state == state && st.status_description == description)) return;
  st.status_state = state;
  st.status_description = description;
  ++st.sticky_rev;
  std::string repo = repo_of(st);
  if (!st.head_sha.empty()) {
    job({.kind = JobKind::set_commit_status,
         .key = key({"status", st.name, std::to_string(st.sticky_rev)}),
         .stage = st.name,
         .repo = repo,
         .pr = st.pr,
         .sha = st.head_sha,
         .state = state,
         .text = description,
         .seq = st.sticky_rev});
  }
  job({.kind = JobKind::upsert_sticky_comment,
       .key = key({"sticky", st.name, std::to_string(st.sticky_rev)}),
       .stage = st.name,
       .repo = repo,
       .pr = st.pr,
       .text = description,
       .seq = st.sticky_rev});
}

void Machine::move(StageState& st, StageStatus to, const std::string& actor, const std::string& reason) {
  audit(st.name, to_string(st.status), to_string(to), actor, reason);
  st.status = to;
  if (is_terminal(to)) {
    st.finished_at = now_;
    st.timers.clear();
  }
}

void Machine::move_run(RunStatus to, const std::string& actor, const std::string& reason) {
  audit("", to_string(run().status), to_string(to), actor, reason);
  run().status = to;
  if (is_terminal(to)) run().finished_at = now_;
}

void Machine::send_prepare(StageState& st) {
  job({.kind = JobKind::prepare_branch,
       .key = key({"prepare", st.name, std::to_string(st.retries) + "." + std::to_string(st.attempt)}),
       .stage = st.name,
       .repo = repo_of(st),
       .text = st.branch,
       .attempt = st.attempt});
}

void Machine::send_open_pr(StageState& st) {
  job({.kind = JobKind::open_pr,
       .key = key({"open_pr", st.name, std::to_string(st.retries) + "." + std::to_string(st.attempt)}),
       .stage = st.name,
       .repo = repo_of(st),
       .sha = st.head_sha,
       .text = st.branch,
       .attempt = st.attempt});
}

void Machine::send_merge(StageState& st) {
  ++st.merge_seq;
  job({.kind = JobKind::merge_pr,
       .key = key({"merge", st.name, st.expected_merge_sha, std::to_string(st.merge_seq)}),
       .stage = st.name,
       .repo = repo_of(st),
       .pr = st.pr,
       .sha = st.expected_merge_sha,
       .seq = st.merge_seq,
       .attempt = st.attempt});
}

void Machine::start_stage(StageState& st, const std::string& reason) {
  st.branch = "tollgate/" + def_.name + "/" + st.name + "/" + run().id;
  st.started_at = now_;
  st.attempt = 0;
  move(st, StageStatus::preparing, bot(), reason);
  send_prepare(st);
}

void Machine::start_ready_stages() {
  if (yielding()) return;  // the newer run promotes from here
  for (auto& st : run().stages) {
    if (st.status != StageStatus::waiting) continue;
    const Stage* sd = def_of(st);
    if (!sd) continue;
    bool ready = std::all_of(sd->after.begin(), sd->after.end(), [&](const std::string& up) {
      const StageState* u = run().stage(up);
      return u && (u->status == StageStatus::promoted || u->status == StageStatus::skipped);
    });
    if (!ready) continue;
    std::string reason = sd->after.empty() ? "run started" : "upstream promoted";
    start_stage(st, reason);
  }
}

void Machine::stage_done() {
  const auto all_done = [&] {
    return std::all_of(run().stages.begin(), run().stages.end(), [](const StageState& s) {
      return s.status == StageStatus::promoted || s.status == StageStatus::skipped;
    });
  };
  if (!all_done() && give_way()) return;  // a newer run goes on from here, not this one
  start_ready_stages();
  if (all_done() && run().status == RunStatus::running) move_run(RunStatus::succeeded, bot(), "every stage promoted");
}

bool Machine::has_newer() const { return !cx_.superseded_by.empty() && def_.concurrency == Concurrency::supersede; }

bool Machine::yielding() const { return has_newer() && run().status == RunStatus::running; }

std::string Machine::yield_reason() const {
  return "run '" + cx_.superseded_by + "' is newer: this run merges nothing more and stops once its stages at work are done";
}

bool Machine::give_way() {
  if (!yielding() || under_way(run())) return false;
  end_run(RunStatus::superseded, bot(),
          "superseded by run '" + cx_.superseded_by + "' (it came while this run was merging, verifying or rolling back)");
  return true;
}

void Machine::promote(StageState& st, const std::string& reason) {
  move(st, StageStatus::promoted, bot(), reason);
  publish(st, "success", "promoted");
  stage_done();
}

void Machine::end_run(RunStatus to, const std::string& actor, const std::string& reason) {
  if (is_terminal(run().status)) return;
  StageStatus stage_to = to == RunStatus::superseded ? StageStatus::superseded : StageStatus::aborted;
  for (auto& st : run().stages) {
    if (is_terminal(st.status)) continue;
    bool had_pr = st.pr != 0 && st.status != StageStatus::verifying;
    move(st, stage_to, actor, reason);
    if (had_pr) {
      publish(st, "error", std::string(to_string(stage_to)) + ": " + reason);
      job({.kind = JobKind::close_pr,
           .key = key({"close", st.name, std::to_string(st.pr)}),
           .stage = st.name,
           .repo = repo_of(st),
           .pr = st.pr,
           .text = reason});
    }
  }
  move_run(to, actor, reason);
}

void Machine::fail(StageState& st, const std::string& reason, const std::string& actor) {
  st.failed_in = st.status;
  st.failure = reason;
  move(st, StageStatus::failed, actor, reason);
  publish(st, "failure", reason);
  const Stage* sd = def_of(st);
  if (st.failed_in == StageStatus::verifying && sd && sd->on_failure == OnFailure::rollback &&
      st.rollback == RollbackPhase::none) {
    begin_rollback(st, actor, "rolling back: " + reason);
    return;
  }
  if (run().status == RunStatus::running)
    end_run(RunStatus::failed, actor, "stage '" + st.name + "' failed: " + reason);
}

bool Machine::retry_later(StageState& st, const std::string& message) {
  if (st.attempt + 1 >= cx_.options.max_attempts) return false;
  ++st.attempt;
  audit(st.name, to_string(st.status), to_string(st.status), bot(),
        "retrying (attempt " + std::to_string(st.attempt + 1) + "): " + message);
  arm(st, "retry", now_ + seconds{10 << std::min(st.attempt, 6)}, st.attempt);
  return true;
}

void Machine::resend(StageState& st) {
  switch (st.status) {
    case StageStatus::preparing:
      if (st.head_sha.empty()) {
        send_prepare(st);
      } else {
        send_open_pr(st);
      }
      break;
    case StageStatus::merging:
      send_merge(st);
      break;
    case StageStatus::verifying:
      send_probe(st);
      break;
    default:
      break;
  }
}

StageState* Machine::stage_by_pr(const std::string& repo, std::int64_t pr) {
  if (pr == 0) return nullptr;
  for (auto& st : run().stages) {
    const Stage* sd = def_of(st);
    if (sd && same_repo(sd->repo, repo) && (st.pr == pr || st.revert_pr == pr)) return &st;
  }
  return nullptr;
}

void Machine::on(const PrMerged& in) {
  StageState* st = stage_by_pr(in.repo, in.pr);
  if (!st) return;
  if (st->revert_pr == in.pr && st->pr != in.pr) {
    if (st->rollback == RollbackPhase::merging || st->rollback == RollbackPhase::failed) rollback_done(*st, in.by);
    return;
  }
  if (!running()) return;
  if (st->status != StageStatus::open && st->status != StageStatus::merging) return;
  bool person = !in.by_tollgate;
  enter_verifying(*st, in.merge_sha, person ? in.by : bot(), person);
}

void Machine::on(const PrClosed& in) {
  StageState* st = stage_by_pr(in.repo, in.pr);
  if (st && st->revert_pr == in.pr && st->pr != in.pr) {
    // A person closed the revert PR: the rollback will not happen. Without this the run would wait
    // for its merge forever (and with `concurrency: queue`, every later run behind it).
    if (st->rollback != RollbackPhase::merging || in.by == bot()) return;
    st->rollback = RollbackPhase::failed;
    audit(st->name, to_string(st->status), to_string(st->status), in.by,
          "revert PR #" + std::to_string(in.pr) + " closed by " + mention(in.by) + " without merging: no rollback");
    if (running()) end_run(RunStatus::failed, in.by, "stage '" + st->name + "' failed and its revert PR was closed");
    return;
  }
  if (!st || st->pr != in.pr || !running() || in.by == bot()) return;
  if (st->status != StageStatus::open && st->status != StageStatus::merging && st->status != StageStatus::preparing)
    return;
  std::string reason = "PR #" + std::to_string(in.pr) + " closed by " + mention(in.by);
  move(*st, StageStatus::aborted, in.by, reason);
  publish(*st, "error", "aborted: " + reason);
  end_run(RunStatus::aborted, in.by, reason);
}

void Machine::change_head(StageState& st, const std::string& sha, const std::string& why) {
  std::size_t before = st.approvals.size();
  st.approvals.erase(
      std::remove_if(st.approvals.begin(), st.approvals.end(), [&](const Approval& a) { return a.sha != sha; }),
      st.approvals.end());
  std::string reason = why + ": head " + short_sha(st.head_sha) + " -> " + short_sha(sha);
  if (st.approvals.size() != before)
    reason += "; " + std::to_string(before - st.approvals.size()) + " approval(s) dropped";
  audit(st.name, to_string(st.status), to_string(st.status), bot(), reason);
  st.head_sha = sha;
  st.head_set_at = now_;
  st.head_stale = false;
  st.status_state.clear();  // the new head has no tollgate/<stage> status yet: publish again
  st.merge_refused_at.reset();
  st.gates_passed_at.reset();
}

void Machine::on(const HeadChanged& in) {
  StageState* st = stage_by_pr(in.repo, in.pr);
  if (!st || st->pr != in.pr || !running()) return;
  if (st->status != StageStatus::open && st->status != StageStatus::merging) return;
  if (in.sha == st->head_sha) {
    if (!st->head_stale) return;
    st->head_stale = false;
    audit(st->name, to_string(st->status), to_string(st->status), bot(), "head confirmed at " + short_sha(in.sha));
  } else {
    change_head(*st, in.sha, "PR head changed");
  }
  evaluate(*st);  // merging: the merge bound to the old head answers 409, which re-evaluates
}

void Machine::on(const CheckCompleted& in) {
  if (!running() || is_own_check(in.name)) return;
  for (auto& st : run().stages) {
    const Stage* sd = def_of(st);
    if (!sd || !same_repo(sd->repo, in.repo)) continue;
    // While preparing, once the branch is pushed: CI may report before the PR is opened.
    bool on_head = (st.status == StageStatus::open || st.status == StageStatus::merging ||
                    (st.status == StageStatus::preparing && !st.head_sha.empty())) &&
                   in.sha == st.head_sha;
    bool on_merge = st.status == StageStatus::verifying && in.sha == st.merge_sha;
    if (!on_head && !on_merge) continue;
    auto it = st.checks.find(in.name);
    if (it != st.checks.end() && it->second.sha == in.sha && it->second.state == in.state) continue;
    st.checks[in.name] = {in.sha, in.state, now_};
    if (st.status == StageStatus::open) {
      st.merge_refused_at.reset();  // a new result is the "not yet" of a 405 being answered
      evaluate(st);
    } else if (st.status == StageStatus::verifying) {
      evaluate_verify_checks(st);
    }
  }
}

void Machine::on(const TimerFired& in) {
  StageState* st = run().stage(in.stage);
  if (!st) return;
  auto it = st->timers.find(in.name);
  if (it == st->timers.end() || it->second > now_) return;  // cancelled, re-armed later, or fired already
  st->timers.erase(it);
  const std::string& n = in.name;
  if (n == "retry") {
    if (running() && in.seq == st->attempt) resend(*st);
  } else if (n == "settle" || n == "soak" || n == "window" || n == "merge_retry") {
    if (st->status == StageStatus::open) {
      evaluate(*st);
    } else if (st->status == StageStatus::verifying) {
      evaluate_verify_checks(*st);
    }
  } else if (n == "verify_wait") {
    const VerifyStep* step = current_step(*st);
    if (st->status == StageStatus::verifying && running() && step && std::holds_alternative<WaitStep>(step->action))
      next_step(*st);
  } else if (n == "verify_poll") {
    if (st->status == StageStatus::verifying && running() && in.seq == st->probe_seq) send_probe(*st);
  } else if (n == "verify_timeout") {
    if (st->status == StageStatus::verifying && running()) {
      const Stage* sd = def_of(*st);
      std::string reason =
          "verification timed out after " + format_duration(sd && sd->verify ? sd->verify->timeout : seconds{0});
      if (!st->failure.empty()) reason += " (last: " + st->failure + ")";
      fail(*st, reason, bot());
    }
  } else if (n == "resync") {
    if (running() && st->pr != 0 && (st->status == StageStatus::open || st->status == StageStatus::merging)) {
      job({.kind = JobKind::resync_pr,
           .key = key({"resync", st->name, epoch(now_)}),
           .stage = st->name,
           .repo = repo_of(*st),
           .pr = st->pr});
      arm(*st, "resync", now_ + cx_.options.resync_interval);
    }
  }
}

void Machine::on(const JobResult& r) {
  StageState* st = run().stage(r.stage);
  if (!st) return;
  using O = JobResult::Outcome;
  // Revert jobs also finish for runs that already ended (a /rollback after success).
  if (r.kind == JobKind::open_revert_pr) {
    if (st->rollback != RollbackPhase::opening) return;
    if (r.outcome == O::ok) {
      st->revert_pr = r.pr;
      st->revert_head_sha = r.sha;
      st->rollback = RollbackPhase::merging;
      audit(st->name, to_string(st->status), to_string(st->status), bot(),
            "revert PR #" + std::to_string(r.pr) + " opened");
      const Stage* sd = def_of(*st);
      if (sd && sd->merge == MergeMode::automatic) {
        job({.kind = JobKind::merge_revert_pr,
             .key = key({"merge_revert", st->name, std::to_string(r.pr)}),
             .stage = st->name,
             .repo = sd->repo,
             .pr = r.pr,
             .sha = r.sha});
      }
    } else {
      st->rollback = RollbackPhase::failed;
      audit(st->name, to_string(st->status), to_string(st->status), bot(),
            "revert PR could not be opened: " + r.message);
      if (running()) end_run(RunStatus::failed, bot(), "stage '" + st->name + "' failed and its rollback failed");
    }
    return;
  }
  if (r.kind == JobKind::merge_revert_pr) {
    if (st->rollback != RollbackPhase::merging || r.pr != st->revert_pr) return;
    if (r.outcome == O::ok) {
      rollback_done(*st, bot());
    } else {
      st->rollback = RollbackPhase::failed;
      audit(st->name, to_string(st->status), to_string(st->status), bot(),
            "revert PR #" + std::to_string(st->revert_pr) + " needs a person to merge it: " + r.message);
      if (running()) end_run(RunStatus::failed, bot(), "stage '" + st->name + "' failed; its revert PR awaits a merge");
    }
    return;
  }
  if (r.kind == JobKind::open_pr && r.outcome == O::ok && r.pr > 0 && st->pr == 0 &&
      (st->status == StageStatus::superseded || st->status == StageStatus::aborted)) {
    // The PR was opened after the stage ended (superseded or aborted while preparing, its open_pr
    // job already on its way): close it, or a person could merge an outdated promotion. The
    // number is kept, so the same result again changes nothing. (A failed stage may be retried,
    // and its open_pr then finds this PR by its branch.)
    st->pr = r.pr;
    audit(st->name, to_string(st->status), to_string(st->status), bot(),
          "PR #" + std::to_string(r.pr) + " was opened after the stage was " + to_string(st->status) + ": closing it");
    job({.kind = JobKind::close_pr,
         .key = key({"close-late", st->name, std::to_string(st->retries), std::to_string(r.pr)}),
         .stage = st->name,
         .repo = repo_of(*st),
         .pr = r.pr,
         .text = "stage " + std::string(to_string(st->status))});
    return;
  }
  if (!running()) return;
  switch (r.kind) {
    case JobKind::prepare_branch:
      on_prepared(*st, r);
      break;
    case JobKind::open_pr:
      on_opened(*st, r);
      break;
    case JobKind::merge_pr:
      on_merge(*st, r);
      break;
    case JobKind::verify_probe:
      if (st->status == StageStatus::verifying && r.step == st->verify_step && r.seq == st->probe_seq)
        probe_result(*st, r);
      break;
    default:
      break;  // statuses, comments, reactions, closes: nothing waits on them
  }
}

void Machine::technical_failure(StageState& st, const JobResult& r, const std::string& what) {
  if (r.outcome == JobResult::Outcome::retryable && retry_later(st, what + ": " + r.message)) return;
  fail(st, what + ": " + r.message, bot());
}

void Machine::on_prepared(StageState& st, const JobResult& r) {
  if (st.status != StageStatus::preparing || !st.head_sha.empty() || r.attempt != st.attempt) return;
  using O = JobResult::Outcome;
  if (r.outcome == O::no_change) {
    move(st, StageStatus::skipped, bot(), "already at this version");
    stage_done();
  } else if (r.outcome == O::ok && r.sha.empty()) {
    // A result the runner should never send; taken as a failure, not as a branch at no commit
    // (which would also make the same result count again: found by fuzz_engine).
    fail(st, "preparing the branch reported success without a commit", bot());
  } else if (r.outcome == O::ok) {
    st.head_sha = r.sha;
    st.head_set_at = now_;
    st.attempt = 0;
    audit(st.name, "preparing", "preparing", bot(), "branch '" + st.branch + "' at " + short_sha(r.sha));
    send_open_pr(st);
  } else {
    technical_failure(st, r, "preparing the branch failed");
  }
}

void Machine::on_opened(StageState& st, const JobResult& r) {
  if (st.status != StageStatus::preparing || st.head_sha.empty() || r.attempt != st.attempt) return;
  if (r.outcome != JobResult::Outcome::ok) {
    technical_failure(st, r, "opening the PR failed");
    return;
  }
  if (r.pr <= 0) {
    fail(st, "opening the PR reported success without a PR number", bot());
    return;
  }
  st.pr = r.pr;
  if (!r.sha.empty() && r.sha != st.head_sha) {
    st.head_sha = r.sha;
    st.head_set_at = now_;
  }
  st.opened_at = now_;
  st.attempt = 0;
  move(st, StageStatus::open, bot(), "PR #" + std::to_string(r.pr) + " opened");
  arm(st, "resync", now_ + cx_.options.resync_interval);
  evaluate(st);
}

void Machine::on_merge(StageState& st, const JobResult& r) {
  // Only the answer to the merge last sent counts (seq), so a late answer to an older one is ignored;
  // and only once (attempt): a retryable answer delivered twice must not spend two attempts
  // (found by fuzz_engine).
  if (st.status != StageStatus::merging || r.pr != st.pr || r.seq != st.merge_seq || r.attempt != st.attempt) return;
  using O = JobResult::Outcome;
  switch (r.outcome) {
    case O::ok:
      enter_verifying(st, r.sha, bot(), false);
      break;
    case O::not_mergeable:
      st.merge_refused_at = now_;
      // The host's reason (a required check, a review, a draft, a disallowed merge method) is kept
      // in the audit log: the merge is tried again after merge_retry, and a person may need to act.
      move(st, StageStatus::open, bot(),
           "the host refused the merge (405): " + (r.message.empty() ? std::string("waiting on checks") : r.message.substr(0, 300)));
      evaluate(st);
      break;
    case O::head_moved:
      move(st, StageStatus::open, bot(),
           "the PR head moved (409): re-evaluating" + (r.message.empty() ? std::string() : ": " + r.message.substr(0, 300)));
      if (!r.sha.empty() && r.sha != st.head_sha) {
        change_head(st, r.sha, "merge answered 409");
      } else if (st.head_sha == st.expected_merge_sha) {  // else a HeadChanged already told us
        // Some hosts also answer 409 when the head did not move (Gitea: a push hook refused, a
        // conflict). If the resync confirms the same head, the merge waits merge_retry like after
        // a 405 instead of being sent again at once, 409 after 409; a new head clears this.
        st.merge_refused_at = now_;
        st.head_stale = true;
        job({.kind = JobKind::resync_pr,
             .key = key({"resync", st.name, "409", std::to_string(st.merge_seq)}),
             .stage = st.name,
             .repo = repo_of(st),
             .pr = st.pr});
      }
      evaluate(st);
      break;
    default:
      technical_failure(st, r, "merging the PR failed");
      break;
  }
}

}  // namespace detail

using detail::Machine;

RunState make_run(const Pipeline& def, std::string id, SourceFacts source,
                  std::vector<std::pair<std::string, std::string>> release, TimePoint created_at) {
  RunState r;
  r.id = std::move(id);
  r.pipeline = def.name;
  r.status = RunStatus::queued;
  r.source = std::move(source);
  r.release = std::move(release);
  r.created_at = created_at;
  for (const auto& s : def.stages) {
    StageState st;
    st.name = s.name;
    r.stages.push_back(std::move(st));
  }
  return r;
}

Step start_run(const Pipeline& def, const RunState& run, const Context& cx) {
  Machine m(def, run, cx);
  if (run.status != RunStatus::queued) return std::move(m).finish();
  m.move_run(RunStatus::running, cx.options.bot_login, "run started");
  m.start_ready_stages();
  return std::move(m).finish();
}

bool under_way(const RunState& run) {
  return std::any_of(run.stages.begin(), run.stages.end(), [](const StageState& s) {
    return s.status == StageStatus::merging || s.status == StageStatus::verifying ||
           s.rollback == RollbackPhase::opening || s.rollback == RollbackPhase::merging;
  });
}

Step apply(const Pipeline& def, const RunState& run, const Input& in, const Context& cx) {
  Machine m(def, run, cx);
  std::visit([&](const auto& x) { m.on(x); }, in);
  // Whatever the input, a run left to finish a merge, verification or rollback gives way to the
  // newer run once that is done (a merge refused, say, leaves the stage open: no stage_done).
  (void)m.give_way();
  return std::move(m).finish();
}

ConcurrencyDecision admit_run(const Pipeline& def, const std::vector<RunState>& in_flight, const RunState& incoming,
                              const Context& cx) {
  ConcurrencyDecision d;
  auto older_live = [&](const RunState& r) {
    return r.pipeline == incoming.pipeline && r.id != incoming.id && !is_terminal(r.status) &&
           std::pair(r.created_at, r.id) < std::pair(incoming.created_at, incoming.id);
  };
  if (def.concurrency == Concurrency::queue) {
    for (const auto& r : in_flight) {
      if (r.pipeline == incoming.pipeline && r.id != incoming.id && r.status == RunStatus::running) {
        d.incoming.run = incoming;
        d.incoming.transitions.push_back(
            {"", "queued", "queued", cx.options.bot_login, "waiting for run '" + r.id + "' to finish"});
        return d;
      }
    }
    d.incoming = start_run(def, incoming, cx);
    return d;
  }
  for (const auto& r : in_flight) {
    if (!older_live(r)) continue;
    if (under_way(r)) continue;  // superseded once that is done: Context::superseded_by
    Machine m(def, r, cx);
    m.end_run(RunStatus::superseded, cx.options.bot_login, "superseded by run '" + incoming.id + "'");
    d.others.push_back(std::move(m).finish());
  }
  d.incoming = start_run(def, incoming, cx);
  return d;
}

std::optional<std::string> next_queued(const std::vector<RunState>& runs) {
  const RunState* best = nullptr;
  for (const auto& r : runs) {
    if (r.status == RunStatus::running) return std::nullopt;
    if (r.status != RunStatus::queued) continue;
    if (!best || std::pair(r.created_at, r.id) < std::pair(best->created_at, best->id)) best = &r;
  }
  if (!best) return std::nullopt;
  return best->id;
}

}  // namespace tollgate::pipeline
