// libFuzzer target: the promotion engine driven by arbitrary sequences of inputs (webhooks, job
// results, timers, comments, API actions), interpreted from the fuzz bytes over small domains so
// that most inputs concern the run. After every step it checks the engine's promises
// (pipeline/engine.hpp, docs/engine.md):
//  - apply() never throws, and the state survives its JSON round trip unchanged;
//  - applying the same input again to the new state changes nothing and schedules nothing;
//  - job keys are unique within a step, and a key is never reused for a different side effect;
//  - every stage or run status change has its audit entry;
//  - a run that succeeded, was aborted or superseded stays so; a promoted stage only leaves
//    "promoted" for "failed" (a rollback).
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/engine.hpp"
#include "pipeline/validate.hpp"

using namespace tollgate::pipeline;

namespace {

constexpr const char* kFile = R"(version: 1
pipelines:
  - name: app
    on:
      merged: { branches: [main] }
    stages:
      - name: dev
        repo: acme/env-dev
        edits:
          - file: values.yaml
            set: { image.tag: "{{release.version}}" }
        gates:
          checks: all
        verify:
          timeout: 10m
          steps:
            - wait: 1m
      - name: qa
        repo: acme/env-qa
        edits:
          - file: values.yaml
            set: { image.tag: "{{release.version}}" }
        gates:
          checks: [ci/build]
          soak: 1h
          approvals: { count: 1, from: [alice, "@acme/release"] }
        verify:
          timeout: 5m
          steps:
            - checks: all
            - http: { url: "https://qa.example/health", for: 1m }
        on_failure: rollback
      - name: canary
        repo: acme/env-canary
        after: [dev]
        edits:
          - file: values.yaml
            set: { image.tag: "{{release.version}}" }
        gates:
          checks: none
        verify:
          timeout: 5m
          steps:
            - wait: 3m
      - name: prod
        repo: acme/env-prod
        after: [qa, canary]
        edits:
          - file: values.yaml
            set: { image.tag: "{{release.version}}" }
        merge: manual
        gates:
          approvals: { count: 2 }
          window: { days: [mon, tue, wed, thu], hours: "09:00-17:00", timezone: UTC }
)";

const Pipeline& def() {
  static const Pipeline p = [] {
    auto r = load_pipeline(kFile, "fuzz.yaml");
    if (!r.ok()) {
      for (const auto& d : r.problems) std::fprintf(stderr, "%s\n", format_text(d).c_str());
      std::abort();
    }
    return r.file->pipelines.at(0);
  }();
  return p;
}

struct Bytes {
  const std::uint8_t* p;
  std::size_t n;
  std::uint8_t next() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  bool done() const { return n == 0; }
  template <typename T>
  const T& pick(const std::vector<T>& v) { return v[next() % v.size()]; }
};

const std::vector<std::string> kRepos{"acme/env-dev", "acme/env-qa", "acme/env-canary", "acme/env-prod", "acme/other"};
const std::vector<std::string> kShas{"a1", "b2", "c3", "d4"};
const std::vector<std::string> kLogins{"alice", "bob", "carol", "tollgate", "renovate[bot]"};
const std::vector<std::string> kChecks{"ci/build", "ci/lint", "tollgate/dev"};
const std::vector<std::string> kBodies{"/approve", "/unapprove", "/hold wait", "/unhold", "/retry", "/abort no",
                                       "/rollback", "/status", "/help", "/aprove", "lgtm\n/approve ok", "```\n/approve\n```"};

ActorFacts actor(Bytes& b) {
  ActorFacts a;
  a.login = b.pick(kLogins);
  a.bot = a.login.find("[bot]") != std::string::npos;
  a.permission = static_cast<ActorFacts::Permission>(b.next() % 6);
  if (b.next() % 2) a.teams.push_back("@acme/release");
  return a;
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "engine invariant violated: %s\n", what);
    std::abort();
  }
}

bool is_done(RunStatus s) { return s == RunStatus::succeeded || s == RunStatus::aborted || s == RunStatus::superseded; }

// With TOLLGATE_FUZZ_STATS set (e.g. when replaying a corpus: fuzz_engine -runs=0 DIR), prints at
// exit how often each stage and run status was reached: evidence that the bytes drive runs deep.
struct Reached {
  std::map<std::string, long> counts;
  ~Reached() {
    if (!std::getenv("TOLLGATE_FUZZ_STATS")) return;
    for (const auto& [k, v] : counts) std::fprintf(stderr, "reached %-22s %ld\n", k.c_str(), v);
  }
};
Reached g_reached;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Bytes b{data, size};
  Context cx;
  cx.now = TimePoint{std::chrono::seconds{1'795'000'000}};  // a Thursday, 2026-11-19 ~10:13 UTC
  RunState run = make_run(def(), "r1", SourceFacts{"acme/app", "main", "s0", 5, "carol"}, {{"version", "s0"}}, cx.now);
  Step step = start_run(def(), run, cx);
  std::vector<Job> jobs = step.jobs;  // every job ever scheduled: results and timers come from these
  std::map<std::string, Job> by_key;
  run = step.run;

  const int newer_at = b.next() % 4 == 0 ? static_cast<int>(b.next() % 64) : -1;
  for (int round = 0; round < 64 && !b.done(); ++round) {
    cx.now += std::chrono::seconds{(b.next() % 4 == 0) ? 3600 * (b.next() % 30) : 7 * (b.next() % 20)};
    Input in;
    const Job* job = jobs.empty() ? nullptr : &jobs[b.next() % jobs.size()];
    const StageState* st = &run.stages[b.next() % run.stages.size()];
    const std::string repo = b.next() % 4 ? def().stage(st->name)->repo : b.pick(kRepos);
    const std::int64_t pr = b.next() % 5 ? st->pr : static_cast<std::int64_t>(b.next() % 4);
    const std::string head = b.next() % 3 ? st->head_sha : b.pick(kShas);
    switch (b.next() % 11) {
      case 0:
        in = PrMerged{repo, pr, b.pick(kShas), b.pick(kLogins), b.next() % 2 == 0};
        break;
      case 1:
        in = PrClosed{repo, pr, b.pick(kLogins)};
        break;
      case 2:
        in = HeadChanged{repo, pr, b.pick(kShas)};
        break;
      case 3:
        in = CheckCompleted{repo, b.next() % 2 ? head : st->merge_sha, b.pick(kChecks), static_cast<CheckState>(b.next() % 3)};
        break;
      case 4:
        in = ReviewSubmitted{static_cast<ReviewSubmitted::Kind>(b.next() % 3), repo, pr, static_cast<std::int64_t>(b.next()),
                             actor(b), head};
        break;
      case 5:
        in = CommentCreated{repo, pr, static_cast<std::int64_t>(b.next()) + 1000 * round, actor(b), b.pick(kBodies)};
        break;
      case 6:
      case 7: {  // a job's answer
        if (!job || job->kind == JobKind::timer) {
          in = TimerFired{st->name, b.next() % 2 ? "soak" : "settle", 0};
          break;
        }
        JobResult r;
        r.kind = job->kind;
        r.stage = job->stage;
        r.outcome = static_cast<JobResult::Outcome>(b.next() % 7);
        r.pr = b.next() % 4 ? (job->pr ? job->pr : 10 + static_cast<std::int64_t>(b.next() % 3)) : 0;
        r.sha = b.next() % 3 ? b.pick(kShas) : job->sha;
        r.step = job->step;
        r.seq = job->seq;
        r.attempt = job->attempt;
        r.message = "fuzz";
        in = r;
        break;
      }
      case 8:
      case 9: {  // a timer coming due
        const Job* timer = nullptr;
        for (std::size_t k = 0, start = b.next(); k < jobs.size(); ++k) {
          const Job& j = jobs[(start + k) % jobs.size()];
          if (j.kind == JobKind::timer) {
            timer = &j;
            break;
          }
        }
        if (timer) {
          if (timer->at && *timer->at > cx.now) cx.now = *timer->at;
          in = TimerFired{timer->stage, timer->timer, timer->seq};
        } else {
          in = TimerFired{st->name, "resync", 0};
        }
        break;
      }
      default: {
        // Half of them with the actor's facts (authorized like a comment), half vouched for.
        ApiAction a{static_cast<ApiAction::Kind>(b.next() % 7), b.next() % 4 ? st->name : "", b.pick(kLogins), "fuzz"};
        if (b.next() % 2) {
          a.facts = ActorFacts{a.actor, false, static_cast<ActorFacts::Permission>(b.next() % 6), {}};
          a.via = "api:fuzz";
        }
        in = std::move(a);
        break;
      }
    }

    // In one input of four a newer run of the pipeline comes at some round (and stays): from then on
    // this run starts no stage and ends as soon as nothing of it is under way (concurrency:
    // supersede). The other inputs keep exploring runs that go deep.
    if (round == newer_at) cx.superseded_by = "r2";
    const RunState before = run;
    step = apply(def(), run, in, cx);
    run = step.run;
    if (!cx.superseded_by.empty()) {
      check(run.status != RunStatus::running || under_way(run), "a run with a newer one went on with nothing under way");
      // The only merge it may still send is one already under way, sent again after a transient
      // failure (the "retry" timer).
      const auto* timer = std::get_if<TimerFired>(&in);
      for (const auto& j : step.jobs) {
        check(j.kind != JobKind::merge_pr || (timer && timer->name == "retry"), "a run with a newer one started a merge");
      }
      for (std::size_t i = 0; i < run.stages.size(); ++i) {
        check(before.stages[i].status != StageStatus::waiting || run.stages[i].status == StageStatus::waiting ||
                  run.stages[i].status == StageStatus::superseded || run.stages[i].status == StageStatus::aborted ||
                  run.stages[i].status == StageStatus::failed,
              "a run with a newer one started a stage");
      }
    }
    if (before.status != run.status) ++g_reached.counts[std::string("run ") + to_string(run.status)];
    for (std::size_t i = 0; i < run.stages.size(); ++i) {
      if (before.stages[i].status != run.stages[i].status)
        ++g_reached.counts["stage " + run.stages[i].name + " " + to_string(run.stages[i].status)];
    }

    // Audit: every status change is recorded.
    if (before.status != run.status) {
      bool audited = false;
      for (const auto& t : step.transitions) audited |= t.stage.empty() && t.to == to_string(run.status);
      check(audited, "a run status change without its audit entry");
    }
    for (std::size_t i = 0; i < run.stages.size(); ++i) {
      const auto from = before.stages[i].status, to = run.stages[i].status;
      if (from == to) continue;
      bool audited = false;
      for (const auto& t : step.transitions) audited |= t.stage == run.stages[i].name && t.to == to_string(to);
      check(audited, "a stage status change without its audit entry");
      check(from != StageStatus::promoted || to == StageStatus::failed, "a promoted stage moved other than to failed");
    }
    check(!is_done(before.status) || before.status == run.status, "a finished run changed status");

    // Job keys: unique in the step, and one key always means the same side effect.
    std::map<std::string, int> seen;
    for (const auto& j : step.jobs) {
      check(!j.key.empty(), "a job without a key");
      check(++seen[j.key] == 1, "two jobs with one key in a step");
      auto [it, inserted] = by_key.emplace(j.key, j);
      if (!inserted) {
        Job a = it->second, c = j;
        a.at.reset();  // a re-armed timer may move
        c.at.reset();
        check(a == c, "one key used for two different jobs");
      }
      jobs.push_back(j);
    }
    if (jobs.size() > 512) jobs.erase(jobs.begin(), jobs.begin() + 256);

    // The same input again: nothing more happens.
    Step again = apply(def(), run, in, cx);
    if (!(again.run == run) || !again.transitions.empty() || !again.jobs.empty()) {
      std::fprintf(stderr, "input #%zu (variant index) applied twice:\n", in.index());
      if (const auto* r = std::get_if<JobResult>(&in))
        std::fprintf(stderr, "  job result %s stage %s outcome %d\n", to_string(r->kind), r->stage.c_str(), static_cast<int>(r->outcome));
      if (const auto* t = std::get_if<TimerFired>(&in)) std::fprintf(stderr, "  timer %s %s %d\n", t->stage.c_str(), t->name.c_str(), t->seq);
      for (const auto& t : again.transitions)
        std::fprintf(stderr, "  transition %s: %s -> %s (%s)\n", t.stage.c_str(), t.from.c_str(), t.to.c_str(), t.reason.c_str());
      for (const auto& jb : again.jobs) std::fprintf(stderr, "  job %s\n", jb.key.c_str());
      nlohmann::json a = run, c = again.run;
      std::fprintf(stderr, "  state change: %s\n", nlohmann::json::diff(a, c).dump().c_str());
    }
    check(again.run == run, "an input applied twice changed the state twice");
    check(again.transitions.empty() && again.jobs.empty(), "an input applied twice scheduled or audited twice");

    // The stored form is the state.
    nlohmann::json j = run;
    check(j.get<RunState>() == run, "the JSON round trip changed the state");
  }
  return 0;
}
