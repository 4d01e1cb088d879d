// Comment commands, reviews and API actions on a run: authorization (pipeline::authorize), then
// what each does to the state; replies and reactions as jobs. See docs/engine.md, "Comments".
#include <algorithm>
#include <utility>

#include "pipeline/engine_machine.hpp"

namespace tollgate::pipeline::detail {

std::optional<ApprovalGate> Machine::gate_of(const StageState& st) const {
  const Stage* sd = def_of(st);
  return sd ? sd->gates.approvals : std::nullopt;
}

bool Machine::add_approval(StageState& st, const std::string& login, bool via_review, const std::string& note) {
  for (const auto& a : st.approvals) {
    if (a.sha == st.head_sha && a.login == login) return false;
  }
  st.approvals.push_back({login, st.head_sha, via_review, now_});
  // The note (`/approve looks good`, or the API's reason) stays in the audit log with the approval.
  audit(st.name, to_string(st.status), to_string(st.status), login,
        std::string("approved ") + short_sha(st.head_sha) + (via_review ? " (review)" : " (/approve)") +
            (note.empty() ? "" : ": " + note));
  return true;
}

bool Machine::remove_approval(StageState& st, const std::string& login, const std::string& why) {
  std::size_t before = st.approvals.size();
  st.approvals.erase(
      std::remove_if(st.approvals.begin(), st.approvals.end(), [&](const Approval& a) { return a.login == login; }),
      st.approvals.end());
  if (st.approvals.size() == before) return false;
  audit(st.name, to_string(st.status), to_string(st.status), login, why);
  return true;
}

void Machine::on(const ReviewSubmitted& in) {
  StageState* st = stage_by_pr(in.repo, in.pr);
  if (!st || st->pr != in.pr || !running() || in.author.bot) return;
  if (st->status != StageStatus::open) return;
  const std::string sha = in.sha.empty() ? st->head_sha : in.sha;
  using K = ReviewSubmitted::Kind;
  if (in.kind == K::approved) {
    if (sha != st->head_sha) return;  // given on an older head: it would have been dropped
    if (std::find(st->seen_reviews.begin(), st->seen_reviews.end(), in.review_id) != st->seen_reviews.end()) return;
    st->seen_reviews.push_back(in.review_id);
    Decision d =
        authorize({CommandKind::approve, "", 0}, in.author, gate_of(*st), run().source.author, approvers_on_head(*st));
    if (!d.accepted) {
      job({.kind = JobKind::reply,
           .key = key({"reply", "review", std::to_string(in.review_id)}),
           .stage = st->name,
           .repo = repo_of(*st),
           .pr = st->pr,
           .text = "This approving review does not count: " + d.reason});
      return;
    }
    if (add_approval(*st, in.author.login, true)) evaluate(*st);
    return;
  }
  // Dismissal carries the id of the approving review; removing twice removes nothing.
  if (remove_approval(
          *st, in.author.login,
          in.kind == K::dismissed ? "approving review dismissed" : "changes requested: approval withdrawn")) {
    evaluate(*st);
  }
}

std::optional<std::string> Machine::execute(StageState& st, const Command& c, const ActorFacts& who) {
  const std::string& login = who.login;
  switch (c.kind) {
    case CommandKind::status:
    case CommandKind::help:
      return std::nullopt;
    case CommandKind::approve:
      if (!running() || st.status != StageStatus::open) {
        return "stage '" + st.name + "' is " + to_string(st.status) + ": approvals count only while its PR is open.";
      }
      if (yielding()) return yield_reason() + ". Approve that run's PR instead.";
      if (!add_approval(st, login, false, c.argument)) return mention(login) + " already approved " + short_sha(st.head_sha) + ".";
      evaluate(st);
      return std::nullopt;
    case CommandKind::unapprove:
      if (!remove_approval(st, login, "approval withdrawn (/unapprove)"))
        return mention(login) + " has no approval to withdraw.";
      evaluate(st);
      return std::nullopt;
    case CommandKind::hold:
      return do_hold(st, login, c.argument);
    case CommandKind::unhold:
      return do_unhold(st, login);
    case CommandKind::retry:
      return do_retry(st, login);
    case CommandKind::abort:
      return do_abort(login, c.argument);
    case CommandKind::rollback:
      return do_rollback(st, login);
  }
  return std::nullopt;
}

std::optional<std::string> Machine::do_hold(StageState& st, const std::string& by, const std::string& reason) {
  if (!running() || is_terminal(st.status))
    return "stage '" + st.name + "' is " + to_string(st.status) + ": nothing to hold.";
  if (st.hold) return "stage '" + st.name + "' is already held by " + mention(st.hold->by) + ".";
  st.hold = Hold{by, reason};
  audit(st.name, to_string(st.status), to_string(st.status), by, "held" + (reason.empty() ? "" : ": " + reason));
  if (st.status == StageStatus::open) evaluate(st);
  return std::nullopt;
}

std::optional<std::string> Machine::do_unhold(StageState& st, const std::string& by) {
  if (!st.hold) return "stage '" + st.name + "' is not held.";
  st.hold.reset();
  audit(st.name, to_string(st.status), to_string(st.status), by, "unheld");
  evaluate(st);
  return std::nullopt;
}

std::optional<std::string> Machine::do_abort(const std::string& by, const std::string& reason) {
  if (!running() && run().status != RunStatus::queued)
    return std::string("the run is already ") + to_string(run().status) + ".";
  end_run(RunStatus::aborted, by, "aborted by " + mention(by) + (reason.empty() ? "" : ": " + reason));
  return std::nullopt;
}

std::optional<std::string> Machine::do_retry(StageState& st, const std::string& by) {
  if (st.status != StageStatus::failed)
    return "stage '" + st.name + "' is " + to_string(st.status) + ": only a failed stage can be retried.";
  if (st.rollback != RollbackPhase::none) return "stage '" + st.name + "' was rolled back; start a new run instead.";
  if (run().status != RunStatus::failed && run().status != RunStatus::running) {
    return std::string("the run is ") + to_string(run().status) + ".";
  }
  if (has_newer()) {
    return "run '" + cx_.superseded_by + "' is newer: retrying this one would promote an older version after it. "
           "Retry that run, or merge a new change.";
  }
  // Stages the failure aborted come back to where they were: waiting, to start again in order.
  for (auto& other : run().stages) {
    if (&other != &st && other.status == StageStatus::aborted) {
      move(other, StageStatus::waiting, by, "run retried by " + mention(by));
      // A fresh stage, but counters that feed job keys go on, so its jobs get new keys.
      StageState fresh;
      fresh.name = other.name;
      fresh.retries = other.retries + 1;
      fresh.sticky_rev = other.sticky_rev;
      fresh.merge_seq = other.merge_seq;
      fresh.seen_comments = other.seen_comments;
      fresh.seen_reviews = other.seen_reviews;
      other = std::move(fresh);
    }
  }
  if (run().status == RunStatus::failed) {
    audit("", to_string(run().status), to_string(RunStatus::running), by,
          "stage '" + st.name + "' retried by " + mention(by));
    run().status = RunStatus::running;
    run().finished_at.reset();
  }
  ++st.retries;
  st.attempt = 0;
  st.finished_at.reset();
  std::string reason = "retried by " + mention(by);
  switch (st.failed_in) {
    case StageStatus::merging:
    case StageStatus::open:
      move(st, StageStatus::open, by, reason);
      // The failure cleared the stage's timers: a merge or close webhook lost from now on would
      // otherwise never be noticed.
      arm(st, "resync", now_ + cx_.options.resync_interval);
      evaluate(st);
      break;
    case StageStatus::verifying:
      move(st, StageStatus::verifying, by, reason);
      if (const Stage* sd = def_of(st); sd && sd->verify) arm(st, "verify_timeout", now_ + sd->verify->timeout);
      publish(st, "pending", "verifying");
      start_step(st);
      break;
    default:
      move(st, StageStatus::preparing, by, reason);
      if (st.pr == 0) st.head_sha.clear();
      resend(st);
      break;
  }
  return std::nullopt;
}

std::optional<std::string> Machine::do_rollback(StageState& st, const std::string& by) {
  if (st.status != StageStatus::promoted || st.merge_sha.empty()) {
    return "stage '" + st.name + "' is " + to_string(st.status) + ": only a promoted stage can be rolled back.";
  }
  if (st.rollback != RollbackPhase::none) return "stage '" + st.name + "' is already rolled back.";
  st.failed_in = StageStatus::promoted;
  st.failure = "rolled back by " + mention(by);
  move(st, StageStatus::failed, by, st.failure);
  begin_rollback(st, by, "rollback requested by " + mention(by));
  return std::nullopt;
}

void Machine::on(const CommentCreated& in) {
  StageState* st = stage_by_pr(in.repo, in.pr);
  if (!st || st->pr != in.pr || in.author.bot) return;
  if (std::find(st->seen_comments.begin(), st->seen_comments.end(), in.comment_id) != st->seen_comments.end()) return;
  ParsedComment parsed = parse_comment(in.body);
  if (parsed.commands.empty() && parsed.unknown.empty()) return;
  st->seen_comments.push_back(in.comment_id);
  std::vector<std::string> lines;
  bool accepted_any = false;
  for (const auto& c : parsed.commands) {
    Decision d = authorize(c, in.author, gate_of(*st), run().source.author, approvers_on_head(*st));
    if (!d.accepted) {
      lines.push_back("`/" + std::string(to_string(c.kind)) + "` refused: " + d.reason);
      continue;
    }
    if (auto no = execute(*st, c, in.author)) {
      lines.push_back("`/" + std::string(to_string(c.kind)) + "` refused: " + *no);
      continue;
    }
    accepted_any = true;
    if (c.kind == CommandKind::status) lines.push_back(render_status(run()));
    if (c.kind == CommandKind::help) lines.push_back(help_text());
  }
  for (const auto& u : parsed.unknown) {
    lines.push_back("`/" + u.word + "` is not a tollgate command" +
                    (u.suggestion ? "; did you mean `/" + *u.suggestion + "`?" : ". Comment `/help` for the list."));
  }
  std::string repo = repo_of(*st);
  if (accepted_any) {
    job({.kind = JobKind::add_reaction,
         .key = key({"react", std::to_string(in.comment_id)}),
         .stage = st->name,
         .repo = repo,
         .pr = in.pr,
         .comment_id = in.comment_id,
         .state = "+1"});
  }
  if (!lines.empty()) {
    std::string text;
    for (const auto& l : lines) text += (text.empty() ? "" : "\n\n") + l;
    job({.kind = JobKind::reply,
         .key = key({"reply", std::to_string(in.comment_id)}),
         .stage = st->name,
         .repo = repo,
         .pr = in.pr,
         .comment_id = in.comment_id,
         .text = text});
  }
}

void Machine::on(const ApiAction& a) {
  using K = ApiAction::Kind;
  static constexpr CommandKind kCommand[] = {CommandKind::abort,    CommandKind::retry,   CommandKind::hold,
                                             CommandKind::unhold,   CommandKind::rollback, CommandKind::approve,
                                             CommandKind::unapprove};
  const Command command{kCommand[static_cast<std::size_t>(a.kind)], a.reason, 0};
  StageState* st = a.kind == K::abort ? nullptr : run().stage(a.stage);
  if (a.kind != K::abort && !st) {
    refuse("run '" + run().id + "' has no stage '" + a.stage + "'");
    return;
  }
  if (a.facts) {
    // The comment commands' rules: who may approve (the gate's `from`, allow_author), write access
    // for the others.
    Decision d = authorize(command, *a.facts, st ? gate_of(*st) : std::nullopt, run().source.author,
                           st ? approvers_on_head(*st) : std::vector<std::string>{});
    if (!d.accepted) {
      refuse(d.reason);
      return;
    }
  } else if (a.kind == K::approve || a.kind == K::unapprove) {
    refuse("an approval needs the approver's permission and teams");
    return;
  }
  std::optional<std::string> no;
  const std::size_t first = out_.transitions.size();
  if (a.kind == K::abort) {
    no = do_abort(a.actor, a.reason);
  } else {
    ActorFacts who = a.facts.value_or(ActorFacts{});
    who.login = a.actor;
    no = execute(*st, command, who);
  }
  if (no) {
    refuse(*no);
    return;
  }
  // The audit log says how the action came, and keeps an approval's note.
  for (std::size_t i = first; i < out_.transitions.size(); ++i) {
    Transition& t = out_.transitions[i];
    if (t.actor != a.actor) continue;
    if (!a.via.empty()) t.actor += " (" + a.via + ")";
    // "approved abc1234 (/approve)[: note]": the first " (/approve)" is the one add_approval wrote.
    const std::string comment_form = " (/approve)";
    if (auto at = t.reason.find(comment_form); a.kind == K::approve && t.reason.rfind("approved ", 0) == 0 && at != std::string::npos) {
      t.reason.replace(at, comment_form.size(), " (API)");
    }
  }
}

}  // namespace tollgate::pipeline::detail
