#include "pipeline/engine.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

using namespace tollgate::pipeline;
using namespace std::chrono_literals;
using std::chrono::seconds;

namespace {

// Monday 2026-11-23 00:00 UTC.
const TimePoint kMonday{seconds{1795392000}};

class FixedZones final : public TimeZones {
 public:
  std::map<std::string, seconds, std::less<>> offsets{{"UTC", 0s}, {"Europe/Berlin", 3600s}};
  std::optional<seconds> utc_offset(std::string_view zone, TimePoint) const override {
    auto it = offsets.find(zone);
    if (it == offsets.end()) return std::nullopt;
    return it->second;
  }
};

Stage stage(std::string name, std::vector<std::string> after, std::string repo) {
  Stage s;
  s.name = std::move(name);
  s.after = std::move(after);
  s.repo = std::move(repo);
  return s;
}

// dev: checks all, verify (wait 2m, http 200 for 1m, timeout 15m); qa: soak 30m + 1 approval from
// alice or @acme/qa; prod: 2 approvals from @acme/sre, window mon-thu 09:00-16:00 Europe/Berlin.
Pipeline payments() {
  Pipeline p;
  p.name = "payments";
  Stage dev = stage("dev", {}, "acme/env-dev");
  dev.gates.checks = CheckSelection{};
  Verify v;
  v.timeout = 15min;
  v.steps.push_back({"", WaitStep{2min}});
  v.steps.push_back({"", HttpStep{"https://dev.example/healthz", 200, 1min}});
  dev.verify = v;
  Stage qa = stage("qa", {"dev"}, "acme/env-qa");
  qa.gates.checks = CheckSelection{};
  qa.gates.soak = 30min;
  qa.gates.approvals = ApprovalGate{1, {"alice", "@acme/qa"}, false};
  Stage prod = stage("prod", {"qa"}, "acme/env-prod");
  prod.gates.approvals = ApprovalGate{2, {"@acme/sre"}, false};
  prod.gates.window = Window{{0, 1, 2, 3}, 9 * 60, 16 * 60, "Europe/Berlin"};
  p.stages = {dev, qa, prod};
  return p;
}

ActorFacts person(std::string login, ActorFacts::Permission perm = ActorFacts::Permission::write,
                  std::vector<std::string> teams = {}) {
  return ActorFacts{std::move(login), false, perm, std::move(teams)};
}

std::string sha(char c) { return std::string(40, c); }

// The fake world: a clock, the run as the store holds it, the audit log, and the timers the jobs
// asked for (fired by advance(), so hours pass in microseconds).
struct World {
  Pipeline def;
  FixedZones zones;
  TimePoint now = kMonday + 10h;  // Monday 10:00 UTC
  RunState run;
  std::vector<Transition> audit;
  std::vector<Job> timers;
  std::vector<Job> all_jobs;
  Step last;
  EngineOptions options{};

  explicit World(Pipeline p, std::string id = "r1") : def(std::move(p)) {
    run = make_run(def, std::move(id), SourceFacts{"acme/payments", "main", sha('s'), 7, "dave"},
                   {{"version", "abc1234"}}, now);
  }

  std::string superseded_by;  // what the store says of newer runs (Context::superseded_by)

  Context cx() const { return Context{now, &zones, options, superseded_by}; }

  void take(Step s) {
    run = s.run;
    audit.insert(audit.end(), s.transitions.begin(), s.transitions.end());
    for (const auto& j : s.jobs) {
      all_jobs.push_back(j);
      if (j.kind == JobKind::timer) timers.push_back(j);
    }
    last = std::move(s);
  }

  Step& start() {
    take(start_run(def, run, cx()));
    return last;
  }

  Step& in(const Input& input) {
    take(apply(def, run, input, cx()));
    return last;
  }

  // Moves the clock, firing due timers in time order.
  void advance(std::chrono::milliseconds d) {
    TimePoint until = now + d;
    for (;;) {
      std::sort(timers.begin(), timers.end(), [](const Job& a, const Job& b) { return *a.at < *b.at; });
      if (timers.empty() || *timers.front().at > until) break;
      Job t = timers.front();
      timers.erase(timers.begin());
      now = std::max(now, *t.at);
      in(TimerFired{t.stage, t.timer, t.seq});
    }
    now = until;
  }

  const StageState& st(const std::string& name) const { return *run.stage(name); }

  std::string repo(const std::string& name) const { return def.stage(name)->repo; }

  // preparing -> open with PR `pr` at head `head`.
  void open(const std::string& name, std::int64_t pr, const std::string& head) {
    in(JobResult{.kind = JobKind::prepare_branch, .stage = name, .outcome = JobResult::Outcome::ok, .sha = head});
    in(JobResult{.kind = JobKind::open_pr, .stage = name, .outcome = JobResult::Outcome::ok, .pr = pr, .sha = head});
  }

  void check(const std::string& name, const std::string& on, const std::string& check, CheckState s) {
    in(CheckCompleted{repo(name), on, check, s});
  }

  Step& comment(const std::string& name, std::int64_t id, ActorFacts who, std::string body) {
    return in(CommentCreated{repo(name), st(name).pr, id, std::move(who), std::move(body)});
  }

  // Answers the last merge job of `name` with `outcome`.
  Step& merge_answer(const std::string& name, JobResult::Outcome outcome, std::string s = "") {
    return in(JobResult{.kind = JobKind::merge_pr,
                        .stage = name,
                        .outcome = outcome,
                        .pr = st(name).pr,
                        .sha = std::move(s),
                        .seq = st(name).merge_seq});
  }

  // dev opened with PR `pr` at sha('a'), its checks green: tollgate has sent the merge.
  void dev_merging(std::int64_t pr = 11) {
    open("dev", pr, sha('a'));
    check("dev", sha('a'), "ci", CheckState::success);
    advance(10s);
    REQUIRE(st("dev").status == StageStatus::merging);
  }

  // The open, gate-free path of dev: checks green, merged by tollgate, verified.
  void promote_dev(std::int64_t pr = 11) {
    dev_merging(pr);
    merge_answer("dev", JobResult::Outcome::ok, sha('m'));
    REQUIRE(st("dev").status == StageStatus::verifying);
    advance(2min);
    probe_ok("dev");
    advance(1min);
    probe_ok("dev");
    REQUIRE(st("dev").status == StageStatus::promoted);
  }

  void probe_ok(const std::string& name, JobResult::Outcome o = JobResult::Outcome::ok, std::string message = "") {
    in(JobResult{.kind = JobKind::verify_probe,
                 .stage = name,
                 .outcome = o,
                 .step = st(name).verify_step,
                 .seq = st(name).probe_seq,
                 .message = std::move(message)});
  }
};

// One stage merged by hand whose failed verification rolls back (its revert PR is merged by hand too).
Pipeline manual_rollback() {
  Pipeline p;
  p.name = "x";
  Stage s = stage("dev", {}, "acme/env-dev");
  s.merge = MergeMode::manual;
  s.on_failure = OnFailure::rollback;
  Verify v;
  v.steps.push_back({"", HttpStep{"https://x/healthz", 200, 0s}});
  s.verify = v;
  p.stages = {s};
  return p;
}

const Job* find_job(const Step& s, JobKind k, const std::string& stage = "") {
  for (const auto& j : s.jobs) {
    if (j.kind == k && (stage.empty() || j.stage == stage)) return &j;
  }
  return nullptr;
}

bool has_audit(const std::vector<Transition>& log, const std::string& stage, const std::string& to,
               const std::string& reason_part) {
  return std::any_of(log.begin(), log.end(), [&](const Transition& t) {
    return t.stage == stage && t.to == to && t.reason.find(reason_part) != std::string::npos;
  });
}

std::vector<JobKind> kinds(const Step& s) {
  std::vector<JobKind> out;
  for (const auto& j : s.jobs) out.push_back(j.kind);
  return out;
}

}  // namespace

TEST_CASE("starting a run moves its root stages to preparing with a deterministic branch", "[engine]") {
  World w(payments());
  REQUIRE(w.run.status == RunStatus::queued);
  Step& s = w.start();
  CHECK(w.run.status == RunStatus::running);
  CHECK(w.st("dev").status == StageStatus::preparing);
  CHECK(w.st("qa").status == StageStatus::waiting);
  CHECK(w.st("prod").status == StageStatus::waiting);
  REQUIRE(s.jobs.size() == 1);
  CHECK(s.jobs[0].kind == JobKind::prepare_branch);
  CHECK(s.jobs[0].text == "tollgate/payments/dev/r1");
  CHECK(s.jobs[0].repo == "acme/env-dev");
  CHECK(has_audit(s.transitions, "", "running", "run started"));
  CHECK(has_audit(s.transitions, "dev", "preparing", "run started"));
  // Starting twice does nothing.
  Step again = start_run(w.def, w.run, w.cx());
  CHECK(again.transitions.empty());
  CHECK(again.jobs.empty());
}

TEST_CASE("a job result claiming success without its data fails the stage once (found by fuzz_engine)", "[engine]") {
  using O = JobResult::Outcome;
  World w(payments());
  w.start();
  JobResult prepared{.kind = JobKind::prepare_branch, .stage = "dev", .outcome = O::ok};  // no sha
  w.in(prepared);
  CHECK(w.st("dev").status == StageStatus::failed);
  CHECK(w.run.status == RunStatus::failed);
  CHECK(has_audit(w.last.transitions, "dev", "failed", "without a commit"));
  Step again = apply(w.def, w.run, prepared, w.cx());
  CHECK(again.transitions.empty());
  CHECK(again.jobs.empty());

  World v(payments());
  v.start();
  v.in(JobResult{.kind = JobKind::prepare_branch, .stage = "dev", .outcome = O::ok, .sha = sha('h')});
  JobResult opened{.kind = JobKind::open_pr, .stage = "dev", .outcome = O::ok, .sha = sha('h')};  // no PR number
  v.in(opened);
  CHECK(v.st("dev").status == StageStatus::failed);
  CHECK(v.st("dev").pr == 0);
  Step twice = apply(v.def, v.run, opened, v.cx());
  CHECK(twice.transitions.empty());
  CHECK(twice.jobs.empty());
}

TEST_CASE("a retryable merge answer delivered twice spends one attempt (found by fuzz_engine)", "[engine]") {
  World w(payments());
  w.start();
  w.open("dev", 11, sha('a'));
  w.check("dev", sha('a'), "ci", CheckState::success);
  w.advance(10s);
  REQUIRE(w.st("dev").status == StageStatus::merging);
  JobResult failed{.kind = JobKind::merge_pr, .stage = "dev", .outcome = JobResult::Outcome::retryable, .pr = 11,
                   .seq = w.st("dev").merge_seq, .attempt = w.st("dev").attempt, .message = "502 from the host"};
  w.in(failed);
  CHECK(w.st("dev").attempt == 1);
  CHECK(has_audit(w.last.transitions, "dev", "merging", "retrying (attempt 2)"));
  Step again = apply(w.def, w.run, failed, w.cx());
  CHECK(again.run == w.run);
  CHECK(again.transitions.empty());
  CHECK(again.jobs.empty());
}

TEST_CASE("every stage transition, one input at a time", "[engine]") {
  using O = JobResult::Outcome;
  struct Row {
    const char* name;
    std::function<void(World&)> setup;  // brings dev to the state the row starts from
    std::function<Input(World&)> input;
    StageStatus dev;
    RunStatus run;
    std::vector<JobKind> jobs;  // job kinds the input schedules, in order
  };
  auto opened = [](World& w) { w.open("dev", 11, sha('a')); };
  auto green = [](World& w) {
    w.open("dev", 11, sha('a'));
    w.check("dev", sha('a'), "ci", CheckState::pending);
    w.advance(10s);
  };
  auto merging = [](World& w) {
    w.open("dev", 11, sha('a'));
    w.check("dev", sha('a'), "ci", CheckState::success);
    w.advance(10s);
  };
  auto verifying = [](World& w) {
    w.open("dev", 11, sha('a'));
    w.check("dev", sha('a'), "ci", CheckState::success);
    w.advance(10s);
    w.merge_answer("dev", O::ok, sha('m'));
  };
  auto probing = [verifying](World& w) {
    verifying(w);
    w.advance(2min);
  };
  auto nothing = [](World&) {};
  std::vector<Row> rows{
      {"preparing + branch written -> preparing, PR opened next",
       nothing,
       [](World&) -> Input {
         return JobResult{.kind = JobKind::prepare_branch, .stage = "dev", .outcome = O::ok, .sha = sha('a')};
       },
       StageStatus::preparing,
       RunStatus::running,
       {JobKind::open_pr}},
      {"preparing + no change -> skipped ('already at this version'), qa starts",
       nothing,
       [](World&) -> Input {
         return JobResult{.kind = JobKind::prepare_branch, .stage = "dev", .outcome = O::no_change};
       },
       StageStatus::skipped,
       RunStatus::running,
       {JobKind::prepare_branch}},
      {"preparing + terminal error -> failed, run failed",
       nothing,
       [](World&) -> Input {
         return JobResult{
             .kind = JobKind::prepare_branch, .stage = "dev", .outcome = O::terminal, .message = "push rejected"};
       },
       StageStatus::failed,
       RunStatus::failed,
       {}},
      {"preparing + retryable error -> preparing, retry timer",
       nothing,
       [](World&) -> Input {
         return JobResult{.kind = JobKind::prepare_branch, .stage = "dev", .outcome = O::retryable, .message = "502"};
       },
       StageStatus::preparing,
       RunStatus::running,
       {JobKind::timer}},
      {"preparing + PR opened -> open, status + sticky + timers",
       [](World& w) {
         w.in(JobResult{.kind = JobKind::prepare_branch, .stage = "dev", .outcome = O::ok, .sha = sha('a')});
       },
       [](World&) -> Input {
         return JobResult{.kind = JobKind::open_pr, .stage = "dev", .outcome = O::ok, .pr = 11, .sha = sha('a')};
       },
       StageStatus::open,
       RunStatus::running,
       {JobKind::timer, JobKind::timer, JobKind::set_commit_status, JobKind::upsert_sticky_comment}},
      {"open + green check after settle -> merging with the expected head",
       green,
       [](World&) -> Input {
         return CheckCompleted{"acme/env-dev", sha('a'), "ci", CheckState::success};
       },
       StageStatus::merging,
       RunStatus::running,
       {JobKind::set_commit_status, JobKind::upsert_sticky_comment, JobKind::merge_pr}},
      {"open + red check -> open, status failure",
       green,
       [](World&) -> Input {
         return CheckCompleted{"acme/env-dev", sha('a'), "ci", CheckState::failure};
       },
       StageStatus::open,
       RunStatus::running,
       {JobKind::set_commit_status, JobKind::upsert_sticky_comment}},
      {"open + check on a stale sha -> ignored",
       green,
       [](World&) -> Input {
         return CheckCompleted{"acme/env-dev", sha('z'), "ci", CheckState::success};
       },
       StageStatus::open,
       RunStatus::running,
       {}},
      {"open + tollgate's own status -> ignored",
       green,
       [](World&) -> Input {
         return CheckCompleted{"acme/env-dev", sha('a'), "tollgate/dev", CheckState::failure};
       },
       StageStatus::open,
       RunStatus::running,
       {}},
      {"open + another PR merged -> ignored",
       opened,
       [](World&) -> Input {
         return PrMerged{"acme/env-dev", 99, sha('m'), "carol", false};
       },
       StageStatus::open,
       RunStatus::running,
       {}},
      {"open + merged by a person -> verifying",
       opened,
       [](World&) -> Input {
         return PrMerged{"acme/env-dev", 11, sha('m'), "carol", false};
       },
       StageStatus::verifying,
       RunStatus::running,
       {JobKind::set_commit_status, JobKind::upsert_sticky_comment, JobKind::timer, JobKind::timer}},
      {"open + closed by a person -> aborted, run aborted",
       opened,
       [](World&) -> Input {
         return PrClosed{"acme/env-dev", 11, "carol"};
       },
       StageStatus::aborted,
       RunStatus::aborted,
       {JobKind::set_commit_status, JobKind::upsert_sticky_comment}},
      {"open + head changed -> open, settle timer and status on the new head",
       opened,
       [](World& w) -> Input {
         w.now += 5s;
         return HeadChanged{"acme/env-dev", 11, sha('b')};
       },
       StageStatus::open,
       RunStatus::running,
       {JobKind::timer, JobKind::set_commit_status, JobKind::upsert_sticky_comment}},
      {"merging + merged -> verifying (wait step, timeout)",
       merging,
       [](World& w) -> Input {
         return JobResult{.kind = JobKind::merge_pr,
                          .stage = "dev",
                          .outcome = O::ok,
                          .pr = 11,
                          .sha = sha('m'),
                          .seq = w.st("dev").merge_seq};
       },
       StageStatus::verifying,
       RunStatus::running,
       {JobKind::set_commit_status, JobKind::upsert_sticky_comment, JobKind::timer, JobKind::timer}},
      {"merging + 405 -> open, waiting on checks, merge retry timer",
       merging,
       [](World& w) -> Input {
         return JobResult{.kind = JobKind::merge_pr,
                          .stage = "dev",
                          .outcome = O::not_mergeable,
                          .pr = 11,
                          .seq = w.st("dev").merge_seq};
       },
       StageStatus::open,
       RunStatus::running,
       {JobKind::timer, JobKind::set_commit_status, JobKind::upsert_sticky_comment}},
      {"merging + 409 with the new head -> open on the new head",
       merging,
       [](World& w) -> Input {
         return JobResult{.kind = JobKind::merge_pr,
                          .stage = "dev",
                          .outcome = O::head_moved,
                          .pr = 11,
                          .sha = sha('b'),
                          .seq = w.st("dev").merge_seq};
       },
       StageStatus::open,
       RunStatus::running,
       {JobKind::timer, JobKind::set_commit_status, JobKind::upsert_sticky_comment}},
      {"merging + 409 without a head -> open, resync",
       merging,
       [](World& w) -> Input {
         return JobResult{.kind = JobKind::merge_pr,
                          .stage = "dev",
                          .outcome = O::head_moved,
                          .pr = 11,
                          .seq = w.st("dev").merge_seq};
       },
       StageStatus::open,
       RunStatus::running,
       // the merge_retry timer: if the resync finds the same head, the merge is not sent again at once
       {JobKind::resync_pr, JobKind::timer, JobKind::set_commit_status, JobKind::upsert_sticky_comment}},
      {"merging + answer to an older merge -> ignored",
       merging,
       [](World& w) -> Input {
         return JobResult{.kind = JobKind::merge_pr,
                          .stage = "dev",
                          .outcome = O::not_mergeable,
                          .pr = 11,
                          .seq = w.st("dev").merge_seq - 1};
       },
       StageStatus::merging,
       RunStatus::running,
       {}},
      {"merging + merged webhook from tollgate's own merge -> verifying",
       merging,
       [](World&) -> Input {
         return PrMerged{"acme/env-dev", 11, sha('m'), "tollgate", true};
       },
       StageStatus::verifying,
       RunStatus::running,
       {JobKind::set_commit_status, JobKind::upsert_sticky_comment, JobKind::timer, JobKind::timer}},
      {"verifying + wait over -> http probe",
       verifying,
       [](World& w) -> Input {
         w.now += 2min;
         return TimerFired{"dev", "verify_wait", 0};
       },
       StageStatus::verifying,
       RunStatus::running,
       {JobKind::verify_probe}},
      {"verifying + probe passes, not yet for 1m -> poll timer",
       probing,
       [](World& w) -> Input {
         return JobResult{
             .kind = JobKind::verify_probe, .stage = "dev", .outcome = O::ok, .step = 1, .seq = w.st("dev").probe_seq};
       },
       StageStatus::verifying,
       RunStatus::running,
       {JobKind::timer}},
      {"verifying + probe fails -> still verifying, poll timer",
       probing,
       [](World& w) -> Input {
         return JobResult{.kind = JobKind::verify_probe,
                          .stage = "dev",
                          .outcome = O::probe_failed,
                          .step = 1,
                          .seq = w.st("dev").probe_seq,
                          .message = "got 503"};
       },
       StageStatus::verifying,
       RunStatus::running,
       {JobKind::timer}},
      {"verifying + probe terminal error -> failed (stop), run failed",
       probing,
       [](World& w) -> Input {
         return JobResult{.kind = JobKind::verify_probe,
                          .stage = "dev",
                          .outcome = O::terminal,
                          .step = 1,
                          .seq = w.st("dev").probe_seq,
                          .message = "bad url"};
       },
       StageStatus::failed,
       RunStatus::failed,
       {JobKind::set_commit_status, JobKind::upsert_sticky_comment}},
      {"verifying + timeout -> failed (stop), run failed",
       probing,
       [](World& w) -> Input {
         w.now += 13min;
         return TimerFired{"dev", "verify_timeout", 0};
       },
       StageStatus::failed,
       RunStatus::failed,
       {JobKind::set_commit_status, JobKind::upsert_sticky_comment}},
      {"verifying + stale probe answer -> ignored",
       probing,
       [](World& w) -> Input {
         return JobResult{.kind = JobKind::verify_probe,
                          .stage = "dev",
                          .outcome = O::ok,
                          .step = 1,
                          .seq = w.st("dev").probe_seq + 5};
       },
       StageStatus::verifying,
       RunStatus::running,
       {}},
      {"verifying + the same PR merged again -> ignored",
       verifying,
       [](World&) -> Input {
         return PrMerged{"acme/env-dev", 11, sha('m'), "carol", false};
       },
       StageStatus::verifying,
       RunStatus::running,
       {}},
      {"open + API abort -> aborted, PR closed",
       opened,
       [](World&) -> Input {
         return ApiAction{ApiAction::Kind::abort, "", "erin", "wrong release"};
       },
       StageStatus::aborted,
       RunStatus::aborted,
       {JobKind::set_commit_status, JobKind::upsert_sticky_comment, JobKind::close_pr}},
  };
  for (const auto& row : rows) {
    DYNAMIC_SECTION(row.name) {
      World w(payments());
      w.start();
      row.setup(w);
      Input input = row.input(w);
      Step& s = w.in(input);
      CHECK(w.st("dev").status == row.dev);
      CHECK(w.run.status == row.run);
      CHECK(kinds(s) == row.jobs);
      // Every change of the stage is audited; an ignored input leaves no trace at all.
      if (row.jobs.empty() && s.transitions.empty()) CHECK(s.run == apply(w.def, s.run, input, w.cx()).run);
      for (const auto& t : s.transitions) CHECK(!t.actor.empty());
      // Applying the same input again changes nothing and schedules nothing.
      Step again = apply(w.def, w.run, input, w.cx());
      CHECK(again.transitions.empty());
      CHECK(again.jobs.empty());
      CHECK(again.run == w.run);
    }
  }
}

TEST_CASE("a whole run goes dev -> qa -> prod with soak, approvals and the window", "[engine]") {
  World w(payments());
  w.start();
  w.promote_dev(11);
  CHECK(w.st("dev").merged_by == "tollgate");
  CHECK_FALSE(w.st("dev").merged_by_person);
  REQUIRE(w.st("qa").status == StageStatus::preparing);
  CHECK(find_job(w.last, JobKind::prepare_branch, "qa")->text == "tollgate/payments/qa/r1");

  w.open("qa", 21, sha('b'));
  w.check("qa", sha('b'), "ci", CheckState::success);
  w.comment("qa", 1001, person("alice"), "/approve looks good");
  CHECK(find_job(w.last, JobKind::add_reaction) != nullptr);
  CHECK(has_audit(w.audit, "qa", "open", "approved " + sha('b').substr(0, 7) + " (/approve): looks good"));  // the note is kept
  CHECK(w.st("qa").status == StageStatus::open);  // soaking: 30m since dev was promoted
  CHECK(w.st("qa").status_description.find("soaking") != std::string::npos);
  w.advance(29min);
  CHECK(w.st("qa").status == StageStatus::open);
  w.advance(2min);
  REQUIRE(w.st("qa").status == StageStatus::merging);
  w.merge_answer("qa", JobResult::Outcome::ok, sha('n'));
  REQUIRE(w.st("qa").status == StageStatus::promoted);  // no verify steps
  REQUIRE(w.st("prod").status == StageStatus::preparing);

  // Monday 10:31 UTC = 11:31 Berlin: inside the window. Two SRE approvals.
  w.open("prod", 31, sha('c'));
  ActorFacts sre1 = person("sam", ActorFacts::Permission::read, {"@acme/sre"});
  ActorFacts sre2 = person("sue", ActorFacts::Permission::read, {"@acme/sre"});
  w.comment("prod", 2001, sre1, "/approve");
  CHECK(w.st("prod").status == StageStatus::open);
  CHECK(w.st("prod").status_description == "1 of 2 approvals");
  w.comment("prod", 2002, sre2, "/approve");
  REQUIRE(w.st("prod").status == StageStatus::merging);
  w.merge_answer("prod", JobResult::Outcome::ok, sha('p'));
  CHECK(w.st("prod").status == StageStatus::promoted);
  CHECK(w.run.status == RunStatus::succeeded);
  CHECK(has_audit(w.audit, "", "succeeded", "every stage promoted"));
}

TEST_CASE("the window holds the merge until it opens, in the stage's time zone", "[engine]") {
  Pipeline p;
  p.name = "payments";
  Stage prod = stage("prod", {}, "acme/env-prod");
  prod.gates.window = Window{{0, 1, 2, 3}, 9 * 60, 16 * 60, "Europe/Berlin"};
  p.stages = {prod};
  World w(p);
  w.now = kMonday + 4 * 24h + 10h;  // Friday 10:00 UTC: friday is not a window day
  w.start();
  w.open("prod", 31, sha('c'));
  REQUIRE(w.st("prod").status == StageStatus::open);
  CHECK(w.st("prod").status_description == "outside the deployment window");
  // Next opening: Monday 09:00 Berlin = 08:00 UTC.
  TimePoint next_monday = kMonday + 7 * 24h + 8h;
  REQUIRE(w.st("prod").timers.count("window") == 1);
  CHECK(w.st("prod").timers.at("window") == next_monday);
  w.advance(next_monday - w.now - 1s);
  CHECK(w.st("prod").status == StageStatus::open);
  w.advance(1s);
  CHECK(w.st("prod").status == StageStatus::merging);

  SECTION("an unknown zone never opens") {
    World u(p);
    u.zones.offsets.erase("Europe/Berlin");
    u.start();
    u.open("prod", 31, sha('c'));
    CHECK(u.st("prod").status == StageStatus::open);
    CHECK(u.st("prod").status_description == "unknown time zone 'Europe/Berlin'");
  }
}

TEST_CASE("a window that spans midnight belongs to the day it starts on", "[engine]") {
  Pipeline p;
  p.name = "night";
  Stage s = stage("prod", {}, "acme/env-prod");
  s.gates.window = Window{{4}, 22 * 60, 2 * 60, "UTC"};  // friday 22:00 - saturday 02:00
  p.stages = {s};
  auto at = [&](TimePoint t) {
    World w(p);
    w.now = t;
    w.start();
    w.open("prod", 1, sha('c'));
    return w.st("prod").status;
  };
  CHECK(at(kMonday + 4 * 24h + 23h) == StageStatus::merging);  // friday 23:00
  CHECK(at(kMonday + 5 * 24h + 1h) == StageStatus::merging);   // saturday 01:00
  CHECK(at(kMonday + 5 * 24h + 3h) == StageStatus::open);      // saturday 03:00
  CHECK(at(kMonday + 3 * 24h + 23h) == StageStatus::open);     // thursday 23:00
}

TEST_CASE("an approval arriving before the checks finish still counts when they do", "[engine]") {
  World w(payments());
  w.start();
  w.promote_dev();
  w.open("qa", 21, sha('b'));
  w.check("qa", sha('b'), "ci", CheckState::pending);
  w.comment("qa", 1001, person("alice"), "/approve");
  w.advance(31min);
  CHECK(w.st("qa").status == StageStatus::open);
  CHECK(w.st("qa").status_description == "waiting on check 'ci'");
  w.check("qa", sha('b'), "ci", CheckState::success);
  REQUIRE(w.st("qa").status == StageStatus::merging);
  CHECK(find_job(w.last, JobKind::merge_pr)->sha == sha('b'));
}

TEST_CASE("a head change after an approval drops it; the merge is bound to the new head", "[engine]") {
  World w(payments());
  w.start();
  w.promote_dev();
  w.open("qa", 21, sha('b'));
  w.comment("qa", 1001, person("alice"), "/approve");
  REQUIRE(w.st("qa").approvals.size() == 1);
  w.in(HeadChanged{"acme/env-qa", 21, sha('c')});
  CHECK(w.st("qa").approvals.empty());
  CHECK(has_audit(w.last.transitions, "qa", "open", "1 approval(s) dropped"));
  w.check("qa", sha('c'), "ci", CheckState::success);
  w.advance(31min);
  CHECK(w.st("qa").status == StageStatus::open);
  CHECK(w.st("qa").status_description == "0 of 1 approvals");
  // A review given on the old head does not count.
  w.in(ReviewSubmitted{ReviewSubmitted::Kind::approved, "acme/env-qa", 21, 501, person("alice"), sha('b')});
  CHECK(w.last.transitions.empty());
  CHECK(w.st("qa").status == StageStatus::open);
  w.comment("qa", 1002, person("alice"), "/approve");
  REQUIRE(w.st("qa").status == StageStatus::merging);
  CHECK(find_job(w.last, JobKind::merge_pr)->sha == sha('c'));
}

TEST_CASE("a head change while merging is answered by a 409 and re-evaluated", "[engine]") {
  World w(payments());
  w.start();
  w.open("dev", 11, sha('a'));
  w.check("dev", sha('a'), "ci", CheckState::success);
  w.advance(10s);
  REQUIRE(w.st("dev").status == StageStatus::merging);
  w.in(HeadChanged{"acme/env-dev", 11, sha('b')});
  CHECK(w.st("dev").status == StageStatus::merging);
  w.merge_answer("dev", JobResult::Outcome::head_moved);
  CHECK(w.st("dev").status == StageStatus::open);
  CHECK(w.st("dev").head_sha == sha('b'));
  w.check("dev", sha('b'), "ci", CheckState::success);
  w.advance(10s);
  REQUIRE(w.st("dev").status == StageStatus::merging);
  CHECK(find_job(w.last, JobKind::merge_pr)->sha == sha('b'));
}

TEST_CASE("a 405 from the host means not yet: the merge is sent again later", "[engine]") {
  World w(payments());
  w.start();
  w.open("dev", 11, sha('a'));
  w.advance(10s);
  REQUIRE(w.st("dev").status == StageStatus::merging);
  std::string first = find_job(w.last, JobKind::merge_pr)->key;
  w.in(JobResult{.kind = JobKind::merge_pr,
                 .stage = "dev",
                 .outcome = JobResult::Outcome::not_mergeable,
                 .pr = 11,
                 .seq = w.st("dev").merge_seq,
                 .message = "Required status check \"e2e\" is expected."});
  CHECK(w.st("dev").status == StageStatus::open);
  CHECK(has_audit(w.last.transitions, "dev", "open", "405"));
  CHECK(has_audit(w.last.transitions, "dev", "open", "Required status check \"e2e\" is expected."));  // the host's reason
  w.advance(30s);
  CHECK(w.st("dev").status == StageStatus::open);
  SECTION("after the retry delay") {
    w.advance(30s);
    REQUIRE(w.st("dev").status == StageStatus::merging);
    CHECK(find_job(w.last, JobKind::merge_pr)->key != first);
  }
  SECTION("or as soon as a new check result arrives") {
    w.check("dev", sha('a'), "required-review-bot", CheckState::success);
    REQUIRE(w.st("dev").status == StageStatus::merging);
  }
}

TEST_CASE("webhooks spelling the repository in another case reach the stage", "[engine]") {
  World w(payments());  // the pipeline file says acme/env-dev
  w.start();
  w.open("dev", 11, sha('a'));
  w.in(CheckCompleted{"Acme/Env-Dev", sha('a'), "ci", CheckState::failure});
  CHECK(w.st("dev").checks.count("ci") == 1);
  w.in(PrMerged{"ACME/env-dev", 11, sha('m'), "carol", false});
  CHECK(w.st("dev").status == StageStatus::verifying);
  CHECK(w.st("dev").merged_by_person);
}

TEST_CASE("a check reported after the branch is pushed but before the PR is opened counts", "[engine]") {
  World w(payments());
  w.start();
  w.in(JobResult{.kind = JobKind::prepare_branch, .stage = "dev", .outcome = JobResult::Outcome::ok, .sha = sha('a')});
  REQUIRE(w.st("dev").status == StageStatus::preparing);
  w.check("dev", sha('a'), "ci", CheckState::failure);
  CHECK(w.st("dev").checks.count("ci") == 1);
  w.check("dev", sha('z'), "other", CheckState::success);  // not the pushed head
  CHECK(w.st("dev").checks.count("other") == 0);
  w.in(JobResult{.kind = JobKind::open_pr, .stage = "dev", .outcome = JobResult::Outcome::ok, .pr = 11, .sha = sha('a')});
  w.advance(10s);
  // The failure seen before the PR existed holds the merge (checks: all).
  CHECK(w.st("dev").status == StageStatus::open);
  CHECK(find_job(w.last, JobKind::merge_pr) == nullptr);
}

TEST_CASE("a 409 whose resync finds the same head waits merge_retry instead of merging again at once", "[engine]") {
  World w(payments());
  w.start();
  w.open("dev", 11, sha('a'));
  w.advance(10s);
  REQUIRE(w.st("dev").status == StageStatus::merging);
  w.in(JobResult{.kind = JobKind::merge_pr,
                 .stage = "dev",
                 .outcome = JobResult::Outcome::head_moved,
                 .pr = 11,
                 .seq = w.st("dev").merge_seq,
                 .message = "merge conflict"});
  REQUIRE(w.st("dev").status == StageStatus::open);
  CHECK(has_audit(w.last.transitions, "dev", "open", "409): re-evaluating: merge conflict"));
  REQUIRE(find_job(w.last, JobKind::resync_pr, "dev") != nullptr);
  // The resync: the head is where it was. No merge at once (a 409 loop), but after merge_retry.
  w.in(HeadChanged{"acme/env-dev", 11, sha('a')});
  CHECK(w.st("dev").status == StageStatus::open);
  CHECK(find_job(w.last, JobKind::merge_pr) == nullptr);
  w.advance(61s);
  CHECK(w.st("dev").status == StageStatus::merging);
  SECTION("a new head found by the resync merges without waiting") {
    World v(payments());
    v.start();
    v.open("dev", 11, sha('a'));
    v.advance(10s);
    v.merge_answer("dev", JobResult::Outcome::head_moved);
    v.in(HeadChanged{"acme/env-dev", 11, sha('b')});
    v.advance(11s);  // the checks settle on the new head; not merge_retry's 60 s
    CHECK(v.st("dev").status == StageStatus::merging);
  }
}

TEST_CASE("a person merging during the upstream's verification changes nothing downstream", "[engine]") {
  World w(payments());
  w.start();
  w.open("dev", 11, sha('a'));
  w.check("dev", sha('a'), "ci", CheckState::success);
  w.advance(10s);
  w.merge_answer("dev", JobResult::Outcome::ok, sha('m'));
  REQUIRE(w.st("dev").status == StageStatus::verifying);
  // The person's merge webhook of the dev PR arrives late (tollgate merged it): ignored.
  Step& s = w.in(PrMerged{"acme/env-dev", 11, sha('m'), "carol", false});
  CHECK(s.transitions.empty());
  CHECK(w.st("dev").merged_by == "tollgate");
  CHECK(w.st("qa").status == StageStatus::waiting);
  w.advance(2min);
  w.probe_ok("dev");
  w.advance(1min);
  w.probe_ok("dev");
  REQUIRE(w.st("qa").status == StageStatus::preparing);

  // qa: a person merges the PR before its gates pass: verifying/promoted, audited as theirs.
  w.open("qa", 21, sha('b'));
  w.in(PrMerged{"acme/env-qa", 21, sha('n'), "carol", false});
  CHECK(w.st("qa").status == StageStatus::promoted);
  CHECK(w.st("qa").merged_by_person);
  CHECK(has_audit(w.audit, "qa", "verifying", "merged by @carol"));
  CHECK(w.st("prod").status == StageStatus::preparing);
}

TEST_CASE("a person merging while tollgate's merge is in flight wins; the late answer is ignored", "[engine]") {
  World w(payments());
  w.start();
  w.open("dev", 11, sha('a'));
  w.advance(10s);
  REQUIRE(w.st("dev").status == StageStatus::merging);
  int seq = w.st("dev").merge_seq;
  w.in(PrMerged{"acme/env-dev", 11, sha('m'), "carol", false});
  CHECK(w.st("dev").status == StageStatus::verifying);
  CHECK(w.st("dev").merged_by_person);
  Step& late = w.in(JobResult{
      .kind = JobKind::merge_pr, .stage = "dev", .outcome = JobResult::Outcome::not_mergeable, .pr = 11, .seq = seq});
  CHECK(late.transitions.empty());
  CHECK(w.st("dev").status == StageStatus::verifying);
}

TEST_CASE("a newer run supersedes one waiting for approval and closes its PR", "[engine]") {
  World old(payments(), "r1");
  old.start();
  old.promote_dev(11);
  old.open("qa", 21, sha('b'));
  REQUIRE(old.st("qa").status == StageStatus::open);

  World fresh(payments(), "r2");
  fresh.now = old.now + 1h;
  ConcurrencyDecision d = admit_run(fresh.def, {old.run}, fresh.run, fresh.cx());
  REQUIRE(d.others.size() == 1);
  const RunState& superseded = d.others[0].run;
  CHECK(superseded.status == RunStatus::superseded);
  CHECK(superseded.stage("dev")->status == StageStatus::promoted);
  CHECK(superseded.stage("qa")->status == StageStatus::superseded);
  CHECK(superseded.stage("prod")->status == StageStatus::superseded);
  const Job* close = find_job(d.others[0], JobKind::close_pr, "qa");
  REQUIRE(close != nullptr);
  CHECK(close->pr == 21);
  CHECK(has_audit(d.others[0].transitions, "", "superseded", "superseded by run 'r2'"));
  CHECK(d.incoming.run.status == RunStatus::running);
  CHECK(d.incoming.run.stage("dev")->status == StageStatus::preparing);

  // Its late inputs are ignored.
  old.run = superseded;
  Step& s = old.comment("qa", 1001, person("alice"), "/approve");
  CHECK(s.run.stage("qa")->approvals.empty());

  SECTION("a run with a merge under way is left to finish") {
    World busy(payments(), "r3");
    busy.start();
    busy.open("dev", 11, sha('a'));
    busy.advance(10s);
    REQUIRE(busy.st("dev").status == StageStatus::merging);
    ConcurrencyDecision d2 = admit_run(fresh.def, {busy.run}, fresh.run, fresh.cx());
    CHECK(d2.others.empty());
    CHECK(d2.incoming.run.status == RunStatus::running);
  }
  SECTION("a newer run is never superseded by an older one") {
    ConcurrencyDecision d3 = admit_run(fresh.def, {d.incoming.run}, old.run, old.cx());
    CHECK(d3.others.empty());
  }
}

TEST_CASE("a run left to finish its merge gives way to the newer run once the merge is verified", "[engine]") {
  World old(payments(), "r1");
  old.start();
  old.dev_merging(11);
  World fresh(payments(), "r2");
  fresh.now = old.now + 1min;
  ConcurrencyDecision d = admit_run(fresh.def, {old.run}, fresh.run, fresh.cx());
  REQUIRE(d.others.empty());  // left to finish its merge

  // From now on the store names the newer run in the context of every input to the old one.
  old.superseded_by = "r2";
  old.merge_answer("dev", JobResult::Outcome::ok, sha('m'));
  REQUIRE(old.st("dev").status == StageStatus::verifying);
  CHECK(old.run.status == RunStatus::running);  // its verification is under way: not cut
  old.advance(2min);
  old.probe_ok("dev");
  old.advance(1min);
  old.probe_ok("dev");
  const Step& last = old.last;
  CHECK(old.st("dev").status == StageStatus::promoted);
  // qa does not start: r2 promotes from here, and r1's older version never overtakes it.
  CHECK(old.run.status == RunStatus::superseded);
  CHECK(old.st("qa").status == StageStatus::superseded);
  CHECK(old.st("prod").status == StageStatus::superseded);
  CHECK(find_job(last, JobKind::prepare_branch, "qa") == nullptr);
  CHECK(has_audit(last.transitions, "", "superseded", "superseded by run 'r2'"));

  SECTION("without a newer run, the same verification goes on to qa") {
    World alone(payments(), "r3");
    alone.start();
    alone.promote_dev();
    CHECK(alone.run.status == RunStatus::running);
    CHECK(alone.st("qa").status == StageStatus::preparing);
  }
  SECTION("a merge the host refused leaves the stage open: the run gives way at its next input") {
    World refused(payments(), "r4");
    refused.start();
    refused.dev_merging(12);
    refused.superseded_by = "r5";
    refused.merge_answer("dev", JobResult::Outcome::not_mergeable);
    CHECK(refused.run.status == RunStatus::superseded);
    CHECK(find_job(refused.last, JobKind::close_pr, "dev") != nullptr);
  }
  SECTION("a failed run with a newer one refuses /retry") {
    World failed(payments(), "r8");
    failed.start();
    failed.in(JobResult{.kind = JobKind::prepare_branch, .stage = "dev", .outcome = JobResult::Outcome::terminal, .message = "no access"});
    REQUIRE(failed.run.status == RunStatus::failed);
    failed.superseded_by = "r9";
    Step& s = failed.in(ApiAction{ApiAction::Kind::retry, "dev", "erin", ""});
    CHECK(s.refused.find("run 'r9' is newer") != std::string::npos);
    CHECK(s.jobs.empty());
    CHECK(failed.run.status == RunStatus::failed);
  }
  SECTION("a queue pipeline never gives way") {
    Pipeline p = payments();
    p.concurrency = Concurrency::queue;
    World queued(p, "r6");
    queued.superseded_by = "r7";
    queued.start();
    queued.promote_dev();
    CHECK(queued.run.status == RunStatus::running);
    CHECK(queued.st("qa").status == StageStatus::preparing);
  }
}

TEST_CASE("a run that gives way starts no merge and no stage while another of its stages merges", "[engine]") {
  Pipeline p;
  p.name = "regions";
  p.stages = {stage("eu", {}, "acme/env-eu"), stage("us", {}, "acme/env-us"), stage("global", {"eu", "us"}, "acme/env-global")};
  World w(p, "r1");
  w.start();
  w.open("eu", 1, sha('a'));
  REQUIRE(w.st("eu").status == StageStatus::merging);  // no gates
  w.superseded_by = "r2";                              // a newer run came while eu merges
  w.open("us", 2, sha('b'));
  CHECK(w.st("us").status == StageStatus::open);  // its gates pass, but no new merge
  CHECK(find_job(w.last, JobKind::merge_pr, "us") == nullptr);
  CHECK(w.st("us").status_description.find("run 'r2' is newer") != std::string::npos);  // and the PR says why
  Step& approve = w.comment("us", 5, person("alice"), "/approve");
  const Job* reply = find_job(approve, JobKind::reply, "us");
  REQUIRE(reply != nullptr);
  CHECK(reply->text.find("Approve that run's PR instead") != std::string::npos);
  CHECK(w.st("us").approvals.empty());
  CHECK(w.run.status == RunStatus::running);       // eu's merge is under way
  w.merge_answer("eu", JobResult::Outcome::ok, sha('1'));
  CHECK(w.st("eu").status == StageStatus::promoted);
  CHECK(w.run.status == RunStatus::superseded);
  CHECK(w.st("us").status == StageStatus::superseded);
  CHECK(w.st("global").status == StageStatus::superseded);
  const Job* close = find_job(w.last, JobKind::close_pr, "us");
  REQUIRE(close != nullptr);
  CHECK(close->pr == 2);
}

TEST_CASE("a run that is rolling back is left to finish the rollback", "[engine]") {
  Pipeline p = payments();
  p.stages[0].on_failure = OnFailure::rollback;
  World w(p, "r1");
  w.start();
  w.dev_merging();
  w.merge_answer("dev", JobResult::Outcome::ok, sha('m'));
  w.advance(2min);
  w.probe_ok("dev", JobResult::Outcome::terminal, "500 from /healthz");
  REQUIRE(w.st("dev").rollback == RollbackPhase::opening);
  REQUIRE(w.run.status == RunStatus::running);
  World fresh(p, "r2");
  fresh.now = w.now + 1min;
  CHECK(admit_run(fresh.def, {w.run}, fresh.run, fresh.cx()).others.empty());
  w.superseded_by = "r2";
  w.check("dev", sha('z'), "ci", CheckState::success);  // any input: the run is given the chance to give way
  CHECK(w.run.status == RunStatus::running);
  CHECK(w.st("dev").rollback == RollbackPhase::opening);
}

TEST_CASE("queue concurrency: runs go one by one", "[engine]") {
  Pipeline p = payments();
  p.concurrency = Concurrency::queue;
  World first(p, "r1");
  first.start();
  World second(p, "r2");
  second.now = first.now + 1min;
  ConcurrencyDecision d = admit_run(p, {first.run}, second.run, second.cx());
  CHECK(d.others.empty());
  CHECK(d.incoming.run.status == RunStatus::queued);
  CHECK(d.incoming.jobs.empty());
  CHECK(next_queued({first.run, d.incoming.run}) == std::nullopt);
  first.in(ApiAction{ApiAction::Kind::abort, "", "erin", ""});
  REQUIRE(first.run.status == RunStatus::aborted);
  CHECK(next_queued({first.run, d.incoming.run}) == std::optional<std::string>("r2"));
  ConcurrencyDecision d2 = admit_run(p, {first.run}, d.incoming.run, second.cx());
  CHECK(d2.incoming.run.status == RunStatus::running);
}

TEST_CASE("stages fan out and fan in along `after`", "[engine]") {
  Pipeline p;
  p.name = "dag";
  p.stages = {stage("a", {}, "acme/a"), stage("b", {"a"}, "acme/b"), stage("c", {"a"}, "acme/c"),
              stage("d", {"b", "c"}, "acme/d")};
  World w(p);
  w.start();
  CHECK(w.st("a").status == StageStatus::preparing);
  CHECK(w.st("b").status == StageStatus::waiting);
  w.in(JobResult{.kind = JobKind::prepare_branch, .stage = "a", .outcome = JobResult::Outcome::no_change});
  CHECK(w.st("a").status == StageStatus::skipped);
  CHECK(has_audit(w.last.transitions, "a", "skipped", "already at this version"));
  CHECK(w.st("b").status == StageStatus::preparing);
  CHECK(w.st("c").status == StageStatus::preparing);
  CHECK(w.st("d").status == StageStatus::waiting);
  w.open("b", 2, sha('b'));
  REQUIRE(w.st("b").status == StageStatus::merging);  // no gates
  w.merge_answer("b", JobResult::Outcome::ok, sha('1'));
  CHECK(w.st("b").status == StageStatus::promoted);
  CHECK(w.st("d").status == StageStatus::waiting);  // c not yet
  w.open("c", 3, sha('c'));
  w.merge_answer("c", JobResult::Outcome::ok, sha('2'));
  CHECK(w.st("d").status == StageStatus::preparing);
  CHECK(w.run.status == RunStatus::running);
  w.in(JobResult{.kind = JobKind::prepare_branch, .stage = "d", .outcome = JobResult::Outcome::no_change});
  CHECK(w.run.status == RunStatus::succeeded);
}

TEST_CASE("on_failure: rollback opens and merges a revert PR, then fails the run", "[engine]") {
  Pipeline p = payments();
  p.stages[0].on_failure = OnFailure::rollback;
  World w(p);
  w.start();
  w.open("dev", 11, sha('a'));
  w.advance(10s);
  w.merge_answer("dev", JobResult::Outcome::ok, sha('m'));
  w.advance(2min);
  w.probe_ok("dev", JobResult::Outcome::probe_failed, "got 503");
  for (int i = 0; i < 100 && w.st("dev").status == StageStatus::verifying; ++i) {
    w.advance(15s);
    if (w.st("dev").status == StageStatus::verifying) w.probe_ok("dev", JobResult::Outcome::probe_failed, "got 503");
  }
  REQUIRE(w.st("dev").status == StageStatus::failed);
  CHECK(has_audit(w.audit, "dev", "failed", "timed out after 15m (last: got 503)"));
  CHECK(w.run.status == RunStatus::running);  // until the revert lands
  CHECK(w.st("dev").rollback == RollbackPhase::opening);
  auto revert_it = std::find_if(w.all_jobs.begin(), w.all_jobs.end(),
                                [](const Job& j) { return j.kind == JobKind::open_revert_pr; });
  const Job* revert = revert_it == w.all_jobs.end() ? nullptr : &*revert_it;
  REQUIRE(revert != nullptr);
  CHECK(revert->sha == sha('m'));
  w.in(JobResult{
      .kind = JobKind::open_revert_pr, .stage = "dev", .outcome = JobResult::Outcome::ok, .pr = 12, .sha = sha('r')});
  const Job* merge = find_job(w.last, JobKind::merge_revert_pr, "dev");
  REQUIRE(merge != nullptr);
  CHECK(merge->pr == 12);
  w.in(JobResult{.kind = JobKind::merge_revert_pr, .stage = "dev", .outcome = JobResult::Outcome::ok, .pr = 12});
  CHECK(w.st("dev").rollback == RollbackPhase::done);
  CHECK(w.run.status == RunStatus::failed);
  CHECK(w.st("qa").status == StageStatus::aborted);
}

TEST_CASE("on_failure: stop fails the run at once; /retry verifies again", "[engine]") {
  World w(payments());
  w.start();
  w.open("dev", 11, sha('a'));
  w.advance(10s);
  w.merge_answer("dev", JobResult::Outcome::ok, sha('m'));
  w.advance(2min);
  w.probe_ok("dev", JobResult::Outcome::terminal, "no route to host");
  REQUIRE(w.st("dev").status == StageStatus::failed);
  CHECK(w.run.status == RunStatus::failed);
  CHECK(find_job(w.last, JobKind::open_revert_pr) == nullptr);

  Step& refused = w.comment("dev", 3001, person("rita", ActorFacts::Permission::read), "/retry");
  CHECK(find_job(refused, JobKind::reply) != nullptr);
  CHECK(w.run.status == RunStatus::failed);

  w.comment("dev", 3002, person("walt"), "/retry");
  CHECK(find_job(w.last, JobKind::add_reaction) != nullptr);
  CHECK(w.run.status == RunStatus::running);
  CHECK(w.st("dev").status == StageStatus::verifying);
  CHECK(w.st("dev").verify_step == 1);
  CHECK(w.st("qa").status == StageStatus::waiting);
  w.probe_ok("dev");
  w.advance(1min);
  w.probe_ok("dev");
  CHECK(w.st("dev").status == StageStatus::promoted);
  CHECK(w.st("qa").status == StageStatus::preparing);
}

TEST_CASE("/rollback on a promoted stage reverts it", "[engine]") {
  World w(payments());
  w.start();
  w.promote_dev();
  w.comment("dev", 4001, person("walt"), "/rollback");
  CHECK(w.st("dev").status == StageStatus::failed);
  REQUIRE(find_job(w.last, JobKind::open_revert_pr, "dev") != nullptr);
  Step& again = w.comment("dev", 4002, person("walt"), "/rollback");
  REQUIRE(find_job(again, JobKind::reply) != nullptr);
  CHECK(find_job(again, JobKind::reply)->text.find("only a promoted stage") != std::string::npos);
}

TEST_CASE("refused commands get a reply saying why and change nothing", "[engine]") {
  World w(payments());
  w.start();
  w.promote_dev();
  w.open("qa", 21, sha('b'));

  SECTION("someone outside the gate's from list") {
    Step& s = w.comment("qa", 1001, person("mallory"), "/approve");
    CHECK(w.st("qa").approvals.empty());
    CHECK(find_job(s, JobKind::add_reaction) == nullptr);
    const Job* reply = find_job(s, JobKind::reply);
    REQUIRE(reply != nullptr);
    CHECK(reply->comment_id == 1001);
    CHECK(reply->text.find("@mallory cannot approve") != std::string::npos);
    CHECK(s.transitions.empty());
  }
  SECTION("the release's author approving their own change") {
    Step& s = w.comment("qa", 1002, person("dave", ActorFacts::Permission::admin, {"@acme/qa"}), "/approve");
    CHECK(w.st("qa").approvals.empty());
    REQUIRE(find_job(s, JobKind::reply) != nullptr);
    CHECK(find_job(s, JobKind::reply)->text.find("author of this change") != std::string::npos);
  }
  SECTION("an approving review from the author does not count either") {
    Step& s = w.in(ReviewSubmitted{ReviewSubmitted::Kind::approved, "acme/env-qa", 21, 77, person("dave"), sha('b')});
    CHECK(w.st("qa").approvals.empty());
    CHECK(find_job(s, JobKind::reply) != nullptr);
  }
  SECTION("a bot's comment is ignored without a reply") {
    ActorFacts bot = person("renovate[bot]");
    bot.bot = true;
    Step& s = w.comment("qa", 1003, bot, "/approve");
    CHECK(s.jobs.empty());
    CHECK(w.st("qa").seen_comments.empty());
  }
  SECTION("a comment on a PR tollgate did not open is ignored") {
    Step& s = w.in(CommentCreated{"acme/env-qa", 999, 1004, person("alice"), "/approve"});
    CHECK(s.jobs.empty());
    CHECK(s.transitions.empty());
  }
  SECTION("an unknown command gets a did-you-mean") {
    Step& s = w.comment("qa", 1005, person("alice"), "/aprove");
    REQUIRE(find_job(s, JobKind::reply) != nullptr);
    CHECK(find_job(s, JobKind::reply)->text.find("did you mean `/approve`") != std::string::npos);
  }
  SECTION("a comment without commands is not answered") {
    Step& s = w.comment("qa", 1006, person("alice"), "LGTM, but waiting for Bob");
    CHECK(s.jobs.empty());
  }
}

TEST_CASE("approvals count once per person, by comment or native review", "[engine]") {
  World w(payments());
  w.start();
  w.promote_dev();
  w.advance(1h);  // soak over
  w.open("qa", 21, sha('b'));
  // Make qa need two approvals for this test.
  for (auto& s : w.def.stages) {
    if (s.name == "qa") s.gates.approvals->count = 2;
  }
  w.advance(10s);
  w.in(ReviewSubmitted{ReviewSubmitted::Kind::approved, "acme/env-qa", 21, 501, person("alice"), ""});
  CHECK(w.st("qa").approvals.size() == 1);
  w.comment("qa", 1001, person("alice"), "/approve");
  CHECK(w.st("qa").approvals.size() == 1);
  REQUIRE(find_job(w.last, JobKind::reply) != nullptr);
  CHECK(find_job(w.last, JobKind::reply)->text.find("already approved") != std::string::npos);
  w.in(ReviewSubmitted{ReviewSubmitted::Kind::approved, "acme/env-qa", 21, 502, person("alice"), ""});
  CHECK(w.st("qa").approvals.size() == 1);
  CHECK(w.st("qa").status_description == "1 of 2 approvals");

  SECTION("a second person makes two") {
    w.in(ReviewSubmitted{ReviewSubmitted::Kind::approved, "acme/env-qa", 21, 503,
                         person("quinn", ActorFacts::Permission::read, {"@acme/qa"}), sha('b')});
    CHECK(w.st("qa").status == StageStatus::merging);
  }
  SECTION("a dismissed review withdraws the approval") {
    w.in(ReviewSubmitted{ReviewSubmitted::Kind::dismissed, "acme/env-qa", 21, 501, person("alice"), ""});
    CHECK(w.st("qa").approvals.empty());
    CHECK(has_audit(w.last.transitions, "qa", "open", "dismissed"));
  }
  SECTION("/unapprove withdraws it; a second /unapprove is refused") {
    w.comment("qa", 1002, person("alice"), "/unapprove");
    CHECK(w.st("qa").approvals.empty());
    CHECK(find_job(w.last, JobKind::add_reaction) != nullptr);
    w.comment("qa", 1003, person("alice"), "/unapprove");
    CHECK(find_job(w.last, JobKind::reply) != nullptr);
  }
}

TEST_CASE("/hold blocks the merge until /unhold", "[engine]") {
  World w(payments());
  w.start();
  w.open("dev", 11, sha('a'));
  w.comment("dev", 5001, person("walt"), "/hold waiting for the DB migration");
  CHECK(find_job(w.last, JobKind::add_reaction) != nullptr);
  REQUIRE(w.st("dev").hold.has_value());
  CHECK(w.st("dev").hold->by == "walt");
  w.check("dev", sha('a'), "ci", CheckState::success);
  w.advance(1h);
  CHECK(w.st("dev").status == StageStatus::open);
  CHECK(w.st("dev").status_description == "held by @walt: waiting for the DB migration");
  Step& twice = w.comment("dev", 5002, person("walt"), "/hold");
  CHECK(find_job(twice, JobKind::reply)->text.find("already held") != std::string::npos);
  Step& reader = w.comment("dev", 5003, person("rita", ActorFacts::Permission::read), "/unhold");
  CHECK(find_job(reader, JobKind::reply) != nullptr);
  CHECK(w.st("dev").hold.has_value());
  w.comment("dev", 5004, person("walt"), "/unhold");
  CHECK_FALSE(w.st("dev").hold.has_value());
  CHECK(w.st("dev").status == StageStatus::merging);
  CHECK(has_audit(w.audit, "dev", "open", "held: waiting for the DB migration"));
  CHECK(has_audit(w.audit, "dev", "open", "unheld"));
}

TEST_CASE("/status and /help reply to anyone; /abort closes the run's open PRs", "[engine]") {
  World w(payments());
  w.start();
  w.open("dev", 11, sha('a'));
  Step& s = w.comment("dev", 6001, person("guest", ActorFacts::Permission::none), "/status\n/help");
  REQUIRE(find_job(s, JobKind::reply) != nullptr);
  CHECK(find_job(s, JobKind::reply)->text.find("| dev | open | #11 |") != std::string::npos);
  CHECK(find_job(s, JobKind::reply)->text.find("/rollback") != std::string::npos);
  CHECK(find_job(s, JobKind::add_reaction) != nullptr);
  w.comment("dev", 6002, person("walt"), "/abort bad build");
  CHECK(w.run.status == RunStatus::aborted);
  CHECK(find_job(w.last, JobKind::close_pr, "dev") != nullptr);
  CHECK(has_audit(w.audit, "", "aborted", "aborted by @walt: bad build"));
  Step api = apply(w.def, w.run, ApiAction{ApiAction::Kind::hold, "dev", "erin", ""}, w.cx());
  CHECK(api.refused.find("nothing to hold") != std::string::npos);
  Step none = apply(w.def, w.run, ApiAction{ApiAction::Kind::hold, "nope", "erin", ""}, w.cx());
  CHECK(none.refused == "run 'r1' has no stage 'nope'");
}

TEST_CASE("API actions follow the comment commands' rules and say in the audit log how they came", "[engine]") {
  World w(payments());
  w.start();
  w.promote_dev();
  w.advance(1h);  // soak over
  w.open("qa", 21, sha('b'));
  w.advance(10s);
  using K = ApiAction::Kind;
  SECTION("an approval without the actor's facts is refused") {
    Step s = apply(w.def, w.run, ApiAction{K::approve, "qa", "alice", ""}, w.cx());
    CHECK(s.refused == "an approval needs the approver's permission and teams");
    CHECK(s.run == w.run);
  }
  SECTION("someone outside the gate's `from` list cannot approve") {
    Step s = apply(w.def, w.run, ApiAction{K::approve, "qa", "mallory", "", person("mallory"), "api:ci"}, w.cx());
    CHECK(s.refused.find("@mallory") != std::string::npos);
    CHECK(s.transitions.empty());
  }
  SECTION("an approver in the list approves; the audit names the token and keeps the note") {
    w.in(ApiAction{K::approve, "qa", "alice", "looks good", person("alice", ActorFacts::Permission::read), "api:alice-cli"});
    CHECK(w.last.refused.empty());
    CHECK(w.st("qa").status == StageStatus::merging);
    CHECK(has_audit(w.audit, "qa", "open", "approved " + sha('b').substr(0, 7) + " (API): looks good"));
    bool named = false;
    for (const auto& t : w.audit) named = named || t.actor == "alice (api:alice-cli)";
    CHECK(named);
  }
  SECTION("hold needs write access; a token acting as itself has it") {
    Step s = apply(w.def, w.run, ApiAction{K::hold, "qa", "rita", "", person("rita", ActorFacts::Permission::read), ""}, w.cx());
    CHECK(s.refused.find("write access") != std::string::npos);
    w.in(ApiAction{K::hold, "qa", "api:ops", "freeze", person("api:ops"), ""});
    REQUIRE(w.st("qa").hold.has_value());
    CHECK(w.st("qa").hold->by == "api:ops");
  }
}

TEST_CASE("checks: named checks must be reported; all waits the settle time", "[engine]") {
  Pipeline p;
  p.name = "x";
  Stage s = stage("dev", {}, "acme/env-dev");
  s.gates.checks = CheckSelection{CheckSelection::Mode::named, {"build", "lint"}};
  p.stages = {s};
  World w(p);
  w.start();
  w.open("dev", 1, sha('a'));
  CHECK(w.st("dev").status_description == "waiting on check 'build'; waiting on check 'lint'");
  w.check("dev", sha('a'), "build", CheckState::success);
  w.check("dev", sha('a'), "unrelated", CheckState::failure);
  CHECK(w.st("dev").status == StageStatus::open);
  w.check("dev", sha('a'), "lint", CheckState::failure);
  CHECK(w.st("dev").status_state == "failure");
  w.check("dev", sha('a'), "lint", CheckState::success);  // a newer result succeeds
  CHECK(w.st("dev").status == StageStatus::merging);

  SECTION("all: no check at all passes once the settle time is over") {
    Pipeline q = p;
    q.stages[0].gates.checks = CheckSelection{};
    World v(q);
    v.start();
    v.open("dev", 1, sha('a'));
    CHECK(v.st("dev").status_description == "waiting for checks to report");
    v.advance(9s);
    CHECK(v.st("dev").status == StageStatus::open);
    v.advance(1s);
    CHECK(v.st("dev").status == StageStatus::merging);
  }
}

TEST_CASE("merge: manual reports the gates and waits for a person", "[engine]") {
  Pipeline p;
  p.name = "x";
  Stage s = stage("dev", {}, "acme/env-dev");
  s.merge = MergeMode::manual;
  p.stages = {s};
  World w(p);
  w.start();
  w.open("dev", 1, sha('a'));
  CHECK(w.st("dev").status == StageStatus::open);
  CHECK(w.st("dev").status_state == "success");
  CHECK(find_job(w.last, JobKind::merge_pr) == nullptr);
  w.in(PrMerged{"acme/env-dev", 1, sha('m'), "carol", false});
  CHECK(w.run.status == RunStatus::succeeded);
}

TEST_CASE("retryable job failures retry with backoff, then fail the stage", "[engine]") {
  World w(payments());
  w.start();
  for (int i = 0; i < 4; ++i) {
    w.in(JobResult{.kind = JobKind::prepare_branch,
                   .stage = "dev",
                   .outcome = JobResult::Outcome::retryable,
                   .attempt = w.st("dev").attempt,
                   .message = "502"});
    REQUIRE(w.st("dev").status == StageStatus::preparing);
    w.advance(1h);
    const Job* again = find_job(w.last, JobKind::prepare_branch);
    REQUIRE(again != nullptr);
    CHECK(again->attempt == i + 1);
  }
  w.in(JobResult{.kind = JobKind::prepare_branch,
                 .stage = "dev",
                 .outcome = JobResult::Outcome::retryable,
                 .attempt = w.st("dev").attempt,
                 .message = "502"});
  CHECK(w.st("dev").status == StageStatus::failed);
  CHECK(w.run.status == RunStatus::failed);
}

TEST_CASE("job keys are unique per side effect and stable across replays", "[engine]") {
  World w(payments());
  w.start();
  w.promote_dev();
  std::set<std::string> keys;
  for (const auto& j : w.all_jobs) {
    INFO(j.key);
    CHECK(keys.insert(j.key).second);
    CHECK(j.key.find(":r1") != std::string::npos);
  }
  // The same inputs from the same state give the same keys.
  World replay(payments());
  replay.start();
  replay.promote_dev();
  REQUIRE(replay.all_jobs.size() == w.all_jobs.size());
  for (std::size_t i = 0; i < w.all_jobs.size(); ++i) CHECK(replay.all_jobs[i] == w.all_jobs[i]);
}

TEST_CASE("the run state survives a JSON round trip", "[engine]") {
  World w(payments());
  w.start();
  w.promote_dev();
  w.open("qa", 21, sha('b'));
  w.check("qa", sha('b'), "ci", CheckState::pending);
  w.comment("qa", 1001, person("alice"), "/approve");
  w.comment("qa", 1002, person("walt"), "/hold reason with \"quotes\"");
  w.in(ReviewSubmitted{ReviewSubmitted::Kind::approved, "acme/env-qa", 21, 501,
                       person("quinn", ActorFacts::Permission::read, {"@acme/qa"}), ""});
  nlohmann::json j = w.run;
  std::string text = j.dump();
  RunState back = nlohmann::json::parse(text).get<RunState>();
  CHECK(back == w.run);
  CHECK(j.at("stages").at(1).at("status") == "open");
  CHECK(j.at("stages").at(1).at("approvals").size() == 2);

  nlohmann::json bad = j;
  bad["stages"][0]["status"] = "exploded";
  CHECK_THROWS_AS(bad.get<RunState>(), nlohmann::json::exception);
  bad = j;
  bad.erase("id");
  CHECK_THROWS_AS(bad.get<RunState>(), nlohmann::json::exception);
}

TEST_CASE("replaying every input of a whole run twice never changes anything the second time", "[engine]") {
  // Records every input applied; then re-applies each one to the state it produced.
  World w(payments());
  w.start();
  std::vector<std::tuple<RunState, Input, TimePoint>> seen;
  auto step = [&](Input in) {
    w.in(in);
    seen.emplace_back(w.run, in, w.now);
  };
  step(JobResult{.kind = JobKind::prepare_branch, .stage = "dev", .outcome = JobResult::Outcome::ok, .sha = sha('a')});
  step(JobResult{
      .kind = JobKind::open_pr, .stage = "dev", .outcome = JobResult::Outcome::ok, .pr = 11, .sha = sha('a')});
  step(CheckCompleted{"acme/env-dev", sha('a'), "ci", CheckState::success});
  step(CommentCreated{"acme/env-dev", 11, 7001, person("walt"), "/hold"});
  step(CommentCreated{"acme/env-dev", 11, 7002, person("walt"), "/unhold"});
  w.now += 10s;
  step(TimerFired{"dev", "settle", 0});
  REQUIRE(w.st("dev").status == StageStatus::merging);
  step(JobResult{.kind = JobKind::merge_pr,
                 .stage = "dev",
                 .outcome = JobResult::Outcome::ok,
                 .pr = 11,
                 .sha = sha('m'),
                 .seq = w.st("dev").merge_seq});
  w.now += 2min;
  step(TimerFired{"dev", "verify_wait", 0});
  step(
      JobResult{.kind = JobKind::verify_probe, .stage = "dev", .outcome = JobResult::Outcome::ok, .step = 1, .seq = 1});
  w.now += 1min;
  step(TimerFired{"dev", "verify_poll", 1});
  step(
      JobResult{.kind = JobKind::verify_probe, .stage = "dev", .outcome = JobResult::Outcome::ok, .step = 1, .seq = 2});
  REQUIRE(w.st("dev").status == StageStatus::promoted);
  step(JobResult{.kind = JobKind::prepare_branch, .stage = "qa", .outcome = JobResult::Outcome::ok, .sha = sha('b')});
  step(
      JobResult{.kind = JobKind::open_pr, .stage = "qa", .outcome = JobResult::Outcome::ok, .pr = 21, .sha = sha('b')});
  step(CommentCreated{"acme/env-qa", 21, 7003, person("alice"), "/approve"});
  step(ReviewSubmitted{ReviewSubmitted::Kind::approved, "acme/env-qa", 21, 801, person("mallory"), ""});
  step(HeadChanged{"acme/env-qa", 21, sha('c')});
  step(PrClosed{"acme/env-qa", 21, "carol"});
  REQUIRE(w.run.status == RunStatus::aborted);
  for (std::size_t i = 0; i < seen.size(); ++i) {
    INFO("input " << i);
    const auto& [state, input, at] = seen[i];
    Step again = apply(w.def, state, input, Context{at, &w.zones, {}});
    CHECK(again.transitions.empty());
    CHECK(again.jobs.empty());
    CHECK(again.run == state);
  }
}

TEST_CASE("verify: a checks step judges the statuses on the merge commit", "[engine]") {
  Pipeline p;
  p.name = "x";
  Stage s = stage("dev", {}, "acme/env-dev");
  Verify v;
  v.steps.push_back({"", ChecksStep{CheckSelection{CheckSelection::Mode::named, {"deploy"}}}});
  s.verify = v;
  p.stages = {s};
  World w(p);
  w.start();
  w.open("dev", 1, sha('a'));
  w.merge_answer("dev", JobResult::Outcome::ok, sha('m'));
  REQUIRE(w.st("dev").status == StageStatus::verifying);
  w.check("dev", sha('a'), "deploy", CheckState::success);  // the PR head, not the merge commit
  CHECK(w.st("dev").status == StageStatus::verifying);
  SECTION("green") {
    w.check("dev", sha('m'), "deploy", CheckState::success);
    CHECK(w.st("dev").status == StageStatus::promoted);
    CHECK(w.run.status == RunStatus::succeeded);
  }
  SECTION("red fails at once") {
    w.check("dev", sha('m'), "deploy", CheckState::failure);
    CHECK(w.st("dev").status == StageStatus::failed);
    CHECK(w.st("dev").failure == "verification failed: check 'deploy' failed");
  }
}

TEST_CASE("/retry of a stage that failed while preparing sends the job again under a new key", "[engine]") {
  World w(payments());
  w.start();
  std::string first = find_job(w.last, JobKind::prepare_branch)->key;
  w.in(JobResult{.kind = JobKind::prepare_branch,
                 .stage = "dev",
                 .outcome = JobResult::Outcome::terminal,
                 .message = "no access"});
  REQUIRE(w.run.status == RunStatus::failed);
  CHECK(w.st("qa").status == StageStatus::aborted);
  Step& s = w.in(ApiAction{ApiAction::Kind::retry, "dev", "erin", ""});
  CHECK(s.refused.empty());
  CHECK(w.run.status == RunStatus::running);
  CHECK(w.st("dev").status == StageStatus::preparing);
  CHECK(w.st("qa").status == StageStatus::waiting);
  const Job* again = find_job(s, JobKind::prepare_branch, "dev");
  REQUIRE(again != nullptr);
  CHECK(again->key != first);
  Step twice = apply(w.def, w.run, ApiAction{ApiAction::Kind::retry, "dev", "erin", ""}, w.cx());
  CHECK(twice.refused.find("only a failed stage") != std::string::npos);
  CHECK(twice.jobs.empty());
}

TEST_CASE("a rollback of a manual stage waits for a person to merge the revert PR", "[engine]") {
  World w(manual_rollback());
  w.start();
  w.open("dev", 1, sha('a'));
  w.in(PrMerged{"acme/env-dev", 1, sha('m'), "carol", false});
  w.probe_ok("dev", JobResult::Outcome::terminal, "certificate expired");
  REQUIRE(w.st("dev").rollback == RollbackPhase::opening);
  w.in(JobResult{
      .kind = JobKind::open_revert_pr, .stage = "dev", .outcome = JobResult::Outcome::ok, .pr = 2, .sha = sha('r')});
  CHECK(find_job(w.last, JobKind::merge_revert_pr) == nullptr);
  CHECK(w.run.status == RunStatus::running);
  w.in(PrMerged{"acme/env-dev", 2, sha('v'), "carol", false});
  CHECK(w.st("dev").rollback == RollbackPhase::done);
  CHECK(w.run.status == RunStatus::failed);
  CHECK(has_audit(w.audit, "dev", "failed", "revert PR #2 merged"));
}

TEST_CASE("a PR opened after its run was aborted (its open_pr job already on its way) is closed once", "[engine]") {
  World w(payments());
  w.start();
  w.in(JobResult{.kind = JobKind::prepare_branch, .stage = "dev", .outcome = JobResult::Outcome::ok, .sha = sha('a')});
  REQUIRE(find_job(w.last, JobKind::open_pr, "dev") != nullptr);
  using K = ApiAction::Kind;
  w.in(ApiAction{K::abort, "", "ops", "wrong version", person("ops"), "api:ops"});
  REQUIRE(w.run.status == RunStatus::aborted);
  REQUIRE(w.st("dev").status == StageStatus::aborted);
  CHECK(find_job(w.last, JobKind::close_pr) == nullptr);  // no PR yet

  const JobResult opened{.kind = JobKind::open_pr, .stage = "dev", .outcome = JobResult::Outcome::ok, .pr = 11, .sha = sha('a')};
  w.in(opened);
  const Job* close = find_job(w.last, JobKind::close_pr, "dev");
  REQUIRE(close != nullptr);
  CHECK(close->pr == 11);
  CHECK(close->repo == "acme/env-dev");
  CHECK(has_audit(w.audit, "dev", "aborted", "PR #11 was opened after the stage was aborted: closing it"));
  CHECK(w.run.status == RunStatus::aborted);
  // The same result again (a redelivery, a retried job): nothing more.
  w.in(opened);
  CHECK(w.last.jobs.empty());
  CHECK(w.last.transitions.empty());
}

TEST_CASE("a revert PR closed without merging ends the rollback and the run", "[engine]") {
  World w(manual_rollback());
  w.start();
  w.open("dev", 1, sha('a'));
  w.in(PrMerged{"acme/env-dev", 1, sha('m'), "carol", false});
  w.probe_ok("dev", JobResult::Outcome::terminal, "certificate expired");
  w.in(JobResult{
      .kind = JobKind::open_revert_pr, .stage = "dev", .outcome = JobResult::Outcome::ok, .pr = 2, .sha = sha('r')});
  REQUIRE(w.st("dev").rollback == RollbackPhase::merging);
  REQUIRE(w.run.status == RunStatus::running);
  w.in(PrClosed{"acme/env-dev", 2, "carol"});
  CHECK(w.st("dev").rollback == RollbackPhase::failed);
  CHECK(w.run.status == RunStatus::failed);
  CHECK(has_audit(w.audit, "dev", "failed", "revert PR #2 closed by @carol without merging"));
  w.in(PrClosed{"acme/env-dev", 2, "carol"});
  CHECK(w.last.transitions.empty());
}

TEST_CASE("/retry of a stage that failed while open arms the resync again", "[engine]") {
  World w(payments());
  w.start();
  w.open("dev", 11, sha('a'));
  w.advance(10s);
  REQUIRE(w.st("dev").status == StageStatus::merging);
  w.merge_answer("dev", JobResult::Outcome::terminal);
  REQUIRE(w.st("dev").status == StageStatus::failed);
  w.comment("dev", 1001, person("alice"), "/retry");
  REQUIRE(w.st("dev").status == StageStatus::merging);  // open again, and its gates pass
  bool resync = std::any_of(w.last.jobs.begin(), w.last.jobs.end(),
                            [](const Job& j) { return j.kind == JobKind::timer && j.timer == "resync"; });
  CHECK(resync);
}

TEST_CASE("an open PR is resynced periodically; the same PR number in another repo is not ours", "[engine]") {
  World w(payments());
  w.start();
  w.open("dev", 11, sha('a'));
  w.check("dev", sha('a'), "ci", CheckState::pending);
  w.advance(5min);
  bool resynced = std::any_of(w.all_jobs.begin(), w.all_jobs.end(),
                              [](const Job& j) { return j.kind == JobKind::resync_pr && j.pr == 11; });
  CHECK(resynced);
  Step& s = w.in(PrClosed{"acme/elsewhere", 11, "carol"});
  CHECK(s.transitions.empty());
  CHECK(w.st("dev").status == StageStatus::open);
  w.in(ReviewSubmitted{ReviewSubmitted::Kind::changes_requested, "acme/env-dev", 11, 9, person("walt"), ""});
  CHECK(w.last.transitions.empty());  // walt had no approval to withdraw
}

TEST_CASE("a new head gets the tollgate status even when the gates say the same", "[engine]") {
  Pipeline p;
  p.name = "x";
  p.stages = {stage("dev", {}, "acme/env-dev")};
  World w(p);
  w.start();
  w.in(JobResult{.kind = JobKind::prepare_branch, .stage = "dev", .outcome = JobResult::Outcome::ok, .sha = sha('a')});
  w.in(ApiAction{ApiAction::Kind::hold, "dev", "erin", "freeze"});
  w.in(
      JobResult{.kind = JobKind::open_pr, .stage = "dev", .outcome = JobResult::Outcome::ok, .pr = 1, .sha = sha('a')});
  REQUIRE(w.st("dev").status == StageStatus::open);
  CHECK(w.st("dev").status_description == "held by @erin: freeze");
  Step& s = w.in(HeadChanged{"acme/env-dev", 1, sha('b')});
  const Job* status = find_job(s, JobKind::set_commit_status);
  REQUIRE(status != nullptr);
  CHECK(status->sha == sha('b'));
  CHECK(status->text == "held by @erin: freeze");
}
