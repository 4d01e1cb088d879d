// The job executor (service/job_executor) against a fake Git host that behaves the way the host
// clients document (create_pull_request idempotent by head branch, merge bound to the head sha,
// a repeated merge answering 405 like GitHub, sticky comments by hidden marker, failures
// injected per call), and against a real git server (lighttpd + git http-backend, the pattern of
// tests/gitwriter) for prepare_branch and open_revert_pr. Every job kind is executed twice where
// it matters: a crash between a side effect and the commit of its result runs the job again.
#include "service/job_executor.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <set>

#include <unistd.h>

#include "tests/gitwriter/git_server.hpp"

using namespace tollgate;
using service::ExecContext;
using service::ExecOutcome;
using service::execute;
namespace host = tollgate::service::host;
namespace fs = std::filesystem;
using pipeline::Job;
using pipeline::JobKind;
using pipeline::JobResult;
using O = JobResult::Outcome;

namespace {

// ---------------------------------------------------------------------------------------------
// A fake host with the documented behaviour of service/host's clients.

class FakeHost final : public host::Host {
 public:
  struct Repo {
    std::vector<host::PullRequest> prs;
    std::map<std::int64_t, std::vector<host::Comment>> comments;  // per PR
    std::map<std::string, std::map<std::string, host::CommitStatus>> statuses;  // sha -> context -> status
    std::map<std::string, std::string> branches;  // head branch -> sha (for new PRs)
    std::map<std::string, std::string> files;     // "path@ref" -> contents
  };
  std::map<std::string, Repo> repos;
  std::set<std::pair<std::int64_t, std::string>> reactions;  // (comment id, content)
  std::map<std::string, int> calls;
  std::map<std::string, std::deque<host::HostError>> fail_next;  // method -> errors to answer first
  std::set<std::string> lose_answer;  // method: do it, then answer a transient error (once)
  bool protect = false;               // branch protection: merges answer 405 while true
  std::string bot = "tollgate";
  std::int64_t next_number = 1;
  std::int64_t next_comment = 1000;
  int merge_commits = 0;
  std::function<std::string(const std::string& branch)> head_of;  // set: branch heads from a git server

  Repo& repo(const host::RepoRef& r) { return repos[r.owner + "/" + r.name]; }

  host::PullRequest* pr(const host::RepoRef& r, std::int64_t n) {
    for (auto& p : repo(r).prs)
      if (p.number == n) return &p;
    return nullptr;
  }

  std::optional<host::HostError> injected(const std::string& method) {
    ++calls[method];
    auto it = fail_next.find(method);
    if (it == fail_next.end() || it->second.empty()) return std::nullopt;
    auto e = it->second.front();
    it->second.pop_front();
    return e;
  }
  bool lost(const std::string& method) { return lose_answer.erase(method) > 0; }
  static host::HostError transient() { return {host::HostError::Kind::transient, 502, "502 bad gateway"}; }
  static host::HostError not_found() { return {host::HostError::Kind::not_found, 404, "404 Not Found"}; }

  host::HostResult<std::optional<host::PullRequest>> find_pull_request(const host::RepoRef& r, const std::string& head) override {
    if (auto e = injected("find")) return tl::unexpected(*e);
    std::optional<host::PullRequest> best;
    for (const auto& p : repo(r).prs) {
      if (p.head_ref != head) continue;
      if (!best || (p.state == "open" && best->state != "open") || (p.state == best->state && p.number > best->number)) best = p;
    }
    return best;
  }
  host::HostResult<host::PullRequest> create_pull_request(const host::RepoRef& r, const host::NewPullRequest& spec) override {
    if (auto e = injected("create")) return tl::unexpected(*e);
    for (const auto& p : repo(r).prs)
      if (p.head_ref == spec.head && p.state == "open") return p;  // idempotent by head branch
    host::PullRequest p;
    p.number = next_number++;
    p.state = "open";
    p.title = spec.title;
    p.body = spec.body;
    p.draft = spec.draft;
    p.head_ref = spec.head;
    p.base_ref = spec.base;
    p.head_sha = head_of ? head_of(spec.head) : repo(r).branches[spec.head];
    p.labels = spec.labels;
    p.author = bot;
    repo(r).prs.push_back(p);
    if (lost("create")) return tl::unexpected(transient());
    p.created = true;  // this answer only: the stored PR is not "just created" for later lookups
    return p;
  }
  std::map<std::string, host::Repository> described;  // what get_repository answers
  host::HostResult<host::Repository> get_repository(const host::RepoRef& r) override {
    if (auto e = injected("repo")) return tl::unexpected(*e);
    auto it = described.find(r.owner + "/" + r.name);
    if (it == described.end()) return tl::unexpected(not_found());
    return it->second;
  }
  host::HostResult<host::PullRequest> update_pull_request(const host::RepoRef&, std::int64_t, const host::PullRequestUpdate&) override {
    return tl::unexpected(not_found());
  }
  host::HostResult<host::PullRequest> close_pull_request(const host::RepoRef& r, std::int64_t n) override {
    if (auto e = injected("close")) return tl::unexpected(*e);
    auto* p = pr(r, n);
    if (!p) return tl::unexpected(not_found());
    p->state = "closed";
    if (lost("close")) return tl::unexpected(transient());
    return *p;
  }
  host::HostResult<host::PullRequest> get_pull_request(const host::RepoRef& r, std::int64_t n) override {
    if (auto e = injected("get")) return tl::unexpected(*e);
    auto* p = pr(r, n);
    if (!p) return tl::unexpected(not_found());
    return *p;
  }
  host::HostResult<host::MergeResult> merge_pull_request(const host::RepoRef& r, std::int64_t n, const std::string& sha,
                                                         host::MergeMethod, const std::string&) override {
    if (auto e = injected("merge")) return tl::unexpected(*e);
    auto* p = pr(r, n);
    if (!p) return tl::unexpected(not_found());
    // GitHub: a merged or closed PR, or one branch protection holds, is 405 "not mergeable".
    if (p->merged || p->state != "open" || protect)
      return host::MergeResult{host::MergeOutcome::not_mergeable, {}, "Pull Request is not mergeable"};
    if (p->head_sha != sha) return host::MergeResult{host::MergeOutcome::head_moved, {}, "Head branch was modified"};
    p->merged = true;
    p->state = "closed";
    p->merged_by = bot;
    p->merge_commit_sha = std::string(39, 'c') + std::to_string(++merge_commits % 10);
    if (lost("merge")) return tl::unexpected(transient());
    return host::MergeResult{host::MergeOutcome::merged, p->merge_commit_sha, {}};
  }
  int sticky_lists = 0;  // upserts that had to look through the PR's comments
  host::HostResult<host::Comment> upsert_sticky_comment(const host::RepoRef& r, std::int64_t n, const std::string& key,
                                                        const std::string& text, const host::StickyHint& hint) override {
    if (auto e = injected("sticky")) return tl::unexpected(*e);
    const std::string marker = host::sticky_marker(key);
    const std::string full = text.find(marker) != std::string::npos ? text : marker + "\n" + text;
    auto& list = repo(r).comments[n];
    // The hint is trusted the way the hosts' clients trust it (rest::upsert_sticky): an id is
    // edited if it still exists; "new PR" posts without looking.
    if (hint.comment_id > 0) {
      for (auto& c : list)
        if (c.id == hint.comment_id) {
          c.body = full;
          return c;
        }
    } else if (hint.new_pr) {
      list.push_back({next_comment++, full, bot});
      return list.back();
    }
    ++sticky_lists;
    for (auto& c : list) {
      if (c.body.find(marker) == std::string::npos) continue;
      c.body = full;
      return c;
    }
    list.push_back({next_comment++, full, bot});
    return list.back();
  }
  host::HostResult<void> add_reaction(const host::RepoRef&, std::int64_t, std::int64_t comment, const std::string& content) override {
    if (auto e = injected("react")) return tl::unexpected(*e);
    reactions.insert({comment, content});  // one per user and content, like the hosts
    return {};
  }
  host::HostResult<void> set_commit_status(const host::RepoRef& r, const std::string& sha, const host::CommitStatus& s) override {
    if (auto e = injected("status")) return tl::unexpected(*e);
    if (s.description.size() > 140)
      return tl::unexpected(host::HostError{host::HostError::Kind::validation, 422, "description is too long (maximum is 140 characters)"});
    repo(r).statuses[sha][s.context] = s;
    return {};
  }
  std::map<std::string, host::Checks> checks;  // sha -> what get_checks lists
  host::HostResult<host::Checks> get_checks(const host::RepoRef&, const std::string& sha) override {
    if (auto e = injected("checks")) return tl::unexpected(*e);
    auto it = checks.find(sha);
    return it == checks.end() ? host::Checks{} : it->second;
  }
  host::HostResult<std::vector<host::Review>> list_reviews(const host::RepoRef&, std::int64_t) override { return std::vector<host::Review>{}; }
  host::HostResult<host::Permission> user_permission(const host::RepoRef&, const std::string&) override { return host::Permission::write; }
  host::HostResult<bool> is_team_member(const std::string&, const std::string&, const std::string&) override { return false; }
  host::HostResult<std::optional<std::string>> read_file(const host::RepoRef& r, const std::string& path, const std::string& ref) override {
    if (auto e = injected("read_file")) return tl::unexpected(*e);
    auto& files = repo(r).files;
    auto it = files.find(path + "@" + ref);
    if (it == files.end()) return std::optional<std::string>{};
    return std::optional<std::string>{it->second};
  }
  host::HostResult<std::vector<host::ChangedFile>> list_changed_files(const host::RepoRef&, std::int64_t) override {
    return std::vector<host::ChangedFile>{};
  }
};

// ---------------------------------------------------------------------------------------------
// A pipeline: payments, one stage dev in acme/env-dev.

const std::string kSourceSha = "0123456789abcdef0123456789abcdef01234567";
const std::string kHead = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const std::string kOtherHead = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

pipeline::Pipeline payments() {
  pipeline::Pipeline p;
  p.name = "payments";
  p.release = {{"version", "{{source.short_sha}}"}};
  pipeline::Stage dev;
  dev.name = "dev";
  dev.repo = "acme/env-dev";
  dev.branch = "main";
  dev.edits.push_back({"/e0", "apps/payments/values.yaml", pipeline::SetEdit{{{"image.tag", "{{release.version}}"}}}});
  dev.edits.push_back({"/e1", "VERSION", pipeline::ReplaceEdit{"v[0-9.]+", "{{release.version}}"}});
  dev.pr.labels = {"promotion"};
  dev.gates.checks = pipeline::CheckSelection{};
  dev.gates.approvals = pipeline::ApprovalGate{};
  p.stages.push_back(dev);
  return p;
}

pipeline::RunState run_of(const pipeline::Pipeline& def, const std::string& version = "v1.1.0") {
  pipeline::SourceFacts src{"acme/payments", "main", kSourceSha, 42, "alice"};
  auto run = pipeline::make_run(def, "r1", src, {{"version", version}}, pipeline::TimePoint{std::chrono::seconds{1'700'000'000}});
  pipeline::Context cx{.now = pipeline::TimePoint{std::chrono::seconds{1'700'000'000}}};
  return pipeline::start_run(def, run, cx).run;
}

struct World {
  FakeHost host;
  pipeline::Pipeline def = payments();
  pipeline::RunState run = run_of(def);
  git::GitWriter* writer = nullptr;
  std::function<std::string(const std::string&)> clone_url = [](const std::string& r) { return "https://git.invalid/" + r; };
  service::HostHints* hints = nullptr;  // set: the process's memory of what it did (tests of HostHints)

  ExecContext cx() {
    return ExecContext{.def = def,
                       .run = run,
                       .host = host,
                       .writer = writer,
                       .clone_url = clone_url,
                       .pr_url = [](const std::string& r, std::int64_t n) { return "https://git.example/" + r + "/pull/" + std::to_string(n); },
                       .credentials = {.username = "tollgate", .token = "s3cret-token"},
                       .bot_login = "tollgate",
                       .public_url = "https://tollgate.example/",
                       .host_name = "github",
                       .hints = hints};
  }
  pipeline::StageState& dev() { return *run.stage("dev"); }
  FakeHost::Repo& env() { return host.repos["acme/env-dev"]; }

  // A stage with its PR open at kHead (what the engine holds after open_pr).
  std::int64_t open_pr_at(const std::string& head) {
    env().branches[dev().branch] = head;
    auto pr = host.create_pull_request({"acme", "env-dev"}, {.head = dev().branch, .base = "main", .title = "t"});
    REQUIRE(pr);
    dev().pr = pr->number;
    dev().head_sha = head;
    dev().status = pipeline::StageStatus::open;
    return pr->number;
  }
};

Job job_of(JobKind kind, std::int64_t pr = 0) {
  Job j;
  j.kind = kind;
  j.stage = "dev";
  j.repo = "acme/env-dev";
  j.pr = pr;
  return j;
}

const JobResult& result(const ExecOutcome& out) {
  REQUIRE(out.kind == ExecOutcome::Kind::done);
  REQUIRE(out.inputs.size() == 1);
  REQUIRE(std::holds_alternative<JobResult>(out.inputs[0]));
  return std::get<JobResult>(out.inputs[0]);
}

host::HostError error_of(host::HostError::Kind k, int status, std::string message) { return {k, status, std::move(message)}; }

}  // namespace

// ---------------------------------------------------------------------------------------------

TEST_CASE("open_pr opens one PR with the default templates, and a second execution finds it", "[job_executor]") {
  World w;
  w.env().branches[w.dev().branch] = kHead;
  Job j = job_of(JobKind::open_pr);
  j.text = w.dev().branch;
  j.sha = kHead;
  j.attempt = 2;

  auto first = execute(j, w.cx());
  const auto& r1 = result(first);
  CHECK(r1.kind == JobKind::open_pr);
  CHECK(r1.outcome == O::ok);
  CHECK(r1.pr == 1);
  CHECK(r1.sha == kHead);
  CHECK(r1.attempt == 2);
  REQUIRE(w.env().prs.size() == 1);
  const auto& pr = w.env().prs[0];
  CHECK(pr.title == "Promote payments v1.1.0 to dev");
  CHECK(pr.base_ref == "main");
  CHECK(pr.head_ref == "tollgate/payments/dev/r1");
  CHECK(pr.labels == std::vector<std::string>{"promotion"});
  CHECK(pr.body.find("[acme/payments@0123456](https://git.example/acme/payments/pull/42)") != std::string::npos);
  CHECK(pr.body.find("@alice") != std::string::npos);
  CHECK(pr.body.find("[r1](https://tollgate.example/runs/r1)") != std::string::npos);
  CHECK(pr.body.find("Promoted from") == std::string::npos);  // a root stage has no upstream

  auto second = execute(j, w.cx());
  CHECK(result(second).outcome == O::ok);
  CHECK(result(second).pr == 1);
  CHECK(w.env().prs.size() == 1);
  CHECK(w.host.calls["create"] == 1);  // found by head branch before creating
}

TEST_CASE("open_pr: an answer lost after the PR was created gives one PR on the next execution", "[job_executor]") {
  World w;
  Job j = job_of(JobKind::open_pr);
  j.text = w.dev().branch;
  j.sha = kHead;
  w.host.lose_answer.insert("create");
  auto first = execute(j, w.cx());
  CHECK(result(first).outcome == O::retryable);
  CHECK(first.kind == ExecOutcome::Kind::done);  // the engine counts the attempt
  auto second = execute(j, w.cx());
  CHECK(result(second).outcome == O::ok);
  CHECK(result(second).pr == 1);
  CHECK(w.env().prs.size() == 1);
}

TEST_CASE("open_pr renders a custom title and a body template read from the source repository", "[job_executor]") {
  World w;
  auto& sd = w.def.stages[0];
  sd.pr.title = "Deploy {{release.version}} ({{source.author}}) to {{stage.name}}\nignored second line";
  sd.pr.body = "templates/body.md.mustache";
  sd.pr.body_is_file = true;
  sd.pr.draft = true;
  w.host.repos["acme/payments"].files["templates/body.md.mustache@" + kSourceSha] = "Run {{run.id}} for {{pipeline.name}}{{#source.pr}} #{{source.pr}}{{/source.pr}}";
  Job j = job_of(JobKind::open_pr);
  j.text = w.dev().branch;
  CHECK(result(execute(j, w.cx())).outcome == O::ok);
  REQUIRE(w.env().prs.size() == 1);
  CHECK(w.env().prs[0].title == "Deploy v1.1.0 (alice) to dev");
  CHECK(w.env().prs[0].body == "Run r1 for payments #42");
  CHECK(w.env().prs[0].draft);

  SECTION("a missing body template is terminal") {
    World w2;
    w2.def.stages[0].pr.body = "nope.md";
    w2.def.stages[0].pr.body_is_file = true;
    auto out = execute(j, w2.cx());
    CHECK(result(out).outcome == O::terminal);
    CHECK(result(out).message.find("nope.md") != std::string::npos);
    CHECK(w2.env().prs.empty());
  }
  SECTION("a push-triggered run (no source PR) renders no PR number") {
    World w3;
    w3.run.source.pr = 0;
    w3.def.stages[0].pr.body = "x{{#source.pr}} #{{source.pr}}{{/source.pr}}y";
    CHECK(result(execute(j, w3.cx())).outcome == O::ok);
    CHECK(w3.env().prs[0].body == "xy");
  }
}

TEST_CASE("open_pr maps host errors: retryable, terminal, rate limits", "[job_executor]") {
  World w;
  Job j = job_of(JobKind::open_pr);
  j.text = w.dev().branch;
  j.attempt = 1;
  using K = host::HostError::Kind;

  SECTION("5xx after the client's retries: retryable") {
    w.host.fail_next["create"].push_back(FakeHost::transient());
    auto out = execute(j, w.cx());
    CHECK(out.kind == ExecOutcome::Kind::done);
    CHECK(result(out).outcome == O::retryable);
    CHECK(result(out).attempt == 1);
    CHECK(result(out).message.find("502") != std::string::npos);
    CHECK(w.env().prs.empty());
    CHECK(result(execute(j, w.cx())).outcome == O::ok);  // the next attempt goes through
  }
  SECTION("rate limited: retryable, with the wait the client reported") {
    w.host.fail_next["find"].push_back(error_of(K::rate_limited, 0, "GET /repos/acme/env-dev/pulls: rate limited for another 42 s"));
    auto out = execute(j, w.cx());
    CHECK(result(out).outcome == O::retryable);
    REQUIRE(out.retry_after);
    CHECK(*out.retry_after == std::chrono::seconds(43));
  }
  SECTION("401, 403, 404 and 422 are terminal") {
    auto [kind, status] = GENERATE(std::pair{K::unauthorized, 401}, std::pair{K::forbidden, 403}, std::pair{K::not_found, 404},
                                   std::pair{K::validation, 422});
    w.host.fail_next["create"].push_back(error_of(kind, status, "POST /repos/acme/env-dev/pulls: " + std::to_string(status) + " nope"));
    auto out = execute(j, w.cx());
    CHECK(out.kind == ExecOutcome::Kind::done);
    CHECK(result(out).outcome == O::terminal);
    CHECK(out.error.find(std::to_string(status)) != std::string::npos);
    CHECK(out.error.find('\n') == std::string::npos);
  }
}

TEST_CASE("merge_pr: ok with the merge commit, and ok again when executed a second time", "[job_executor]") {
  World w;
  auto n = w.open_pr_at(kHead);
  Job j = job_of(JobKind::merge_pr, n);
  j.sha = kHead;
  j.seq = 3;
  j.attempt = 1;
  auto first = execute(j, w.cx());
  const auto r1 = result(first);
  CHECK(r1.outcome == O::ok);
  CHECK(r1.pr == n);
  CHECK(r1.seq == 3);
  CHECK(r1.attempt == 1);
  CHECK(r1.sha == w.env().prs[0].merge_commit_sha);
  CHECK(w.env().prs[0].merged);
  // The host answers 405 to the repeated merge; the PR says it is merged at the expected head.
  auto second = execute(j, w.cx());
  CHECK(result(second).outcome == O::ok);
  CHECK(result(second).sha == r1.sha);
  CHECK(w.host.merge_commits == 1);
}

TEST_CASE("merge_pr: a lost answer to a merge that went through is ok", "[job_executor]") {
  World w;
  auto n = w.open_pr_at(kHead);
  Job j = job_of(JobKind::merge_pr, n);
  j.sha = kHead;
  w.host.lose_answer.insert("merge");
  auto out = execute(j, w.cx());
  CHECK(result(out).outcome == O::ok);
  CHECK(result(out).sha == w.env().prs[0].merge_commit_sha);
}

TEST_CASE("merge_pr: 405, 409 and errors", "[job_executor]") {
  World w;
  auto n = w.open_pr_at(kHead);
  Job j = job_of(JobKind::merge_pr, n);
  j.sha = kHead;
  j.seq = 1;

  SECTION("branch protection: not_mergeable") {
    w.host.protect = true;
    auto out = execute(j, w.cx());
    CHECK(result(out).outcome == O::not_mergeable);
    CHECK(result(out).seq == 1);
    CHECK(result(out).message.find("not mergeable") != std::string::npos);
  }
  SECTION("the head moved: head_moved with the new head") {
    w.env().prs[0].head_sha = kOtherHead;
    auto out = execute(j, w.cx());
    CHECK(result(out).outcome == O::head_moved);
    CHECK(result(out).sha == kOtherHead);
    CHECK_FALSE(w.env().prs[0].merged);
  }
  SECTION("the head moved, but the PR read cannot say to what: head_moved without a sha") {
    w.env().prs[0].head_sha = kOtherHead;
    w.host.fail_next["get"].push_back(FakeHost::transient());
    auto out = execute(j, w.cx());
    CHECK(result(out).outcome == O::head_moved);
    CHECK(result(out).sha.empty());
  }
  SECTION("merged by a person at another head: head_moved, never ok") {
    w.env().prs[0].head_sha = kOtherHead;
    w.env().prs[0].merged = true;
    w.env().prs[0].state = "closed";
    w.env().prs[0].merge_commit_sha = std::string(40, 'd');
    auto out = execute(j, w.cx());
    CHECK(result(out).outcome == O::head_moved);
    CHECK(result(out).sha == kOtherHead);
  }
  SECTION("a closed PR: not_mergeable, saying so") {
    w.env().prs[0].state = "closed";
    auto out = execute(j, w.cx());
    CHECK(result(out).outcome == O::not_mergeable);
    CHECK(result(out).message.find("closed") != std::string::npos);
  }
  SECTION("a 5xx: retryable; a 403: terminal") {
    w.host.fail_next["merge"].push_back(FakeHost::transient());
    CHECK(result(execute(j, w.cx())).outcome == O::retryable);
    w.host.fail_next["merge"].push_back(error_of(host::HostError::Kind::forbidden, 403, "Resource not accessible by integration"));
    CHECK(result(execute(j, w.cx())).outcome == O::terminal);
    CHECK_FALSE(w.env().prs[0].merged);
  }
}

TEST_CASE("merge_revert_pr reports on the revert PR", "[job_executor]") {
  World w;
  auto n = w.open_pr_at(kHead);
  Job j = job_of(JobKind::merge_revert_pr, n);
  j.sha = kHead;
  auto out = execute(j, w.cx());
  CHECK(result(out).kind == JobKind::merge_revert_pr);
  CHECK(result(out).outcome == O::ok);
  CHECK(result(out).pr == n);
  CHECK(result(execute(j, w.cx())).outcome == O::ok);
}

TEST_CASE("set_commit_status: tollgate/<stage> with a link to the run; an older revision run late publishes the latest", "[job_executor]") {
  World w;
  auto n = w.open_pr_at(kHead);
  w.dev().status_state = "pending";
  w.dev().status_description = "waiting for approvals (0/1)";
  Job j = job_of(JobKind::set_commit_status, n);
  j.sha = kHead;
  j.state = "pending";
  j.text = "waiting for approvals (0/1)";
  auto out = execute(j, w.cx());
  CHECK(out.kind == ExecOutcome::Kind::done);
  CHECK(out.inputs.empty());
  auto s = w.env().statuses[kHead]["tollgate/dev"];
  CHECK(s.state == "pending");
  CHECK(s.description == "waiting for approvals (0/1)");
  CHECK(s.target_url == "https://tollgate.example/runs/r1");

  // A newer revision was published since; the old job executed again must not bring back its text.
  w.dev().status_state = "success";
  w.dev().status_description = "gates passed";
  CHECK(execute(j, w.cx()).kind == ExecOutcome::Kind::done);
  CHECK(w.env().statuses[kHead]["tollgate/dev"].state == "success");

  SECTION("an older head keeps the job's own text") {
    Job old = j;
    old.sha = kOtherHead;
    old.state = "failure";
    old.text = "x";
    CHECK(execute(old, w.cx()).kind == ExecOutcome::Kind::done);
    CHECK(w.env().statuses[kOtherHead]["tollgate/dev"].state == "failure");
  }
  SECTION("a long description is cut to the host's 140 characters, not refused") {
    w.dev().status_description = std::string(200, 'x');
    CHECK(execute(j, w.cx()).kind == ExecOutcome::Kind::done);
    CHECK(w.env().statuses[kHead]["tollgate/dev"].description.size() == 140);
  }
  SECTION("errors: 5xx retry, 422 terminal") {
    w.host.fail_next["status"].push_back(FakeHost::transient());
    auto r = execute(j, w.cx());
    CHECK(r.kind == ExecOutcome::Kind::retry);
    CHECK(r.inputs.empty());
    w.host.fail_next["status"].push_back(error_of(host::HostError::Kind::validation, 422, "Validation Failed"));
    CHECK(execute(j, w.cx()).kind == ExecOutcome::Kind::terminal);
  }
}

TEST_CASE("upsert_sticky_comment: one status comment, edited in place, with the template's marker", "[job_executor]") {
  World w;
  auto n = w.open_pr_at(kHead);
  w.dev().status_state = "pending";
  w.dev().status_description = "waiting for approvals (0/1)";
  w.dev().approvals.push_back({"bob", kOtherHead, false, {}});  // on an older head: not counted
  Job j = job_of(JobKind::upsert_sticky_comment, n);
  j.text = "waiting for approvals (0/1)";
  CHECK(execute(j, w.cx()).kind == ExecOutcome::Kind::done);
  CHECK(execute(j, w.cx()).kind == ExecOutcome::Kind::done);
  auto& comments = w.env().comments[n];
  REQUIRE(comments.size() == 1);
  const std::string& body = comments[0].body;
  const std::string marker = "<!-- tollgate:status payments/dev/r1 -->";
  REQUIRE(body.find(marker) != std::string::npos);
  CHECK(body.find(marker, body.find(marker) + 1) == std::string::npos);  // the template's own, not a second one
  CHECK(body.find("**open — waiting for approvals (0/1)**") != std::string::npos);
  CHECK(body.find("| approvals | 0/1 | comment `/approve` |") != std::string::npos);
  CHECK(body.find("| checks | passing |") != std::string::npos);
  CHECK(body.find("Release `v1.1.0`") != std::string::npos);
  CHECK(body.find("| dev | open | #1 |") != std::string::npos);  // the run table

  w.dev().approvals.push_back({"carol", kHead, false, {}});
  w.dev().status_description = "gates passed";
  CHECK(execute(j, w.cx()).kind == ExecOutcome::Kind::done);
  REQUIRE(comments.size() == 1);
  CHECK(comments[0].body.find("| approvals | 1/1 | @carol |") != std::string::npos);
  CHECK(comments[0].body.find("gates passed") != std::string::npos);
}

TEST_CASE("a status or status comment of a revision superseded since is skipped: the newer one publishes", "[job_executor]") {
  World w;
  auto n = w.open_pr_at(kHead);
  w.dev().status_state = "success";
  w.dev().status_description = "promoted";
  w.dev().sticky_rev = 3;  // revision 2 was "merging", 3 "promoted"
  Job status = job_of(JobKind::set_commit_status, n);
  status.sha = kHead;
  status.state = "pending";
  status.text = "merging";
  status.seq = 2;
  Job sticky = job_of(JobKind::upsert_sticky_comment, n);
  sticky.text = "merging";
  sticky.seq = 2;
  CHECK(execute(status, w.cx()).kind == ExecOutcome::Kind::done);
  CHECK(execute(sticky, w.cx()).kind == ExecOutcome::Kind::done);
  CHECK(w.env().statuses[kHead].empty());
  CHECK(w.env().comments[n].empty());

  SECTION("the latest revision publishes") {
    status.seq = sticky.seq = 3;
    CHECK(execute(status, w.cx()).kind == ExecOutcome::Kind::done);
    CHECK(execute(sticky, w.cx()).kind == ExecOutcome::Kind::done);
    CHECK(w.env().statuses[kHead]["tollgate/dev"].description == "promoted");
    REQUIRE(w.env().comments[n].size() == 1);
  }
  SECTION("jobs stored without a revision (seq 0), and a status for another head, still publish") {
    status.seq = sticky.seq = 0;
    CHECK(execute(status, w.cx()).kind == ExecOutcome::Kind::done);
    CHECK(execute(sticky, w.cx()).kind == ExecOutcome::Kind::done);
    CHECK(w.env().statuses[kHead].size() == 1);
    CHECK(w.env().comments[n].size() == 1);
    Job old = status;
    old.seq = 2;
    old.sha = kOtherHead;
    CHECK(execute(old, w.cx()).kind == ExecOutcome::Kind::done);
    CHECK(w.env().statuses[kOtherHead].size() == 1);
  }
}

TEST_CASE("status comments: with the process's cache, a PR it opened is commented on and updated without listing", "[job_executor]") {
  World w;
  service::HostHints cache;
  w.hints = &cache;
  auto cx = [&] { return w.cx(); };
  w.env().branches[w.dev().branch] = kHead;
  Job open = job_of(JobKind::open_pr);
  open.text = w.dev().branch;
  open.sha = kHead;
  const auto n = result(execute(open, cx())).pr;
  w.dev().pr = n;
  w.dev().head_sha = kHead;
  w.dev().status = pipeline::StageStatus::open;
  w.dev().status_state = "pending";
  w.dev().status_description = "merging";

  Job sticky = job_of(JobKind::upsert_sticky_comment, n);
  CHECK(execute(sticky, cx()).kind == ExecOutcome::Kind::done);  // posted at once
  CHECK(execute(sticky, cx()).kind == ExecOutcome::Kind::done);  // the same text: nothing sent
  w.dev().status_description = "promoted";
  CHECK(execute(sticky, cx()).kind == ExecOutcome::Kind::done);  // edited by id
  CHECK(w.host.sticky_lists == 0);
  REQUIRE(w.env().comments[n].size() == 1);
  CHECK(w.env().comments[n][0].body.find("promoted") != std::string::npos);

  SECTION("a comment deleted since is posted again after a look") {
    w.env().comments[n].clear();
    w.dev().status_description = "verifying";
    CHECK(execute(sticky, cx()).kind == ExecOutcome::Kind::done);
    CHECK(w.host.sticky_lists == 1);
    REQUIRE(w.env().comments[n].size() == 1);
    CHECK(w.env().comments[n][0].body.find("verifying") != std::string::npos);
  }
  SECTION("a failed update is looked for next time (its post may have landed)") {
    w.host.fail_next["sticky"].push_back(FakeHost::transient());
    w.dev().status_description = "verifying";
    CHECK(execute(sticky, cx()).kind == ExecOutcome::Kind::retry);
    CHECK(execute(sticky, cx()).kind == ExecOutcome::Kind::done);
    CHECK(w.host.sticky_lists == 1);
    CHECK(w.env().comments[n].size() == 1);
  }
  SECTION("a PR found open (not opened by this call) is listed before the first comment") {
    World other;
    service::HostHints fresh;
    other.env().branches[other.dev().branch] = kHead;
    other.host.create_pull_request({"acme", "env-dev"}, {.head = other.dev().branch, .base = "main", .title = "t"});
    auto c = other.cx();
    c.hints = &fresh;
    const auto m = result(execute(open, c)).pr;
    other.dev().pr = m;
    other.dev().status = pipeline::StageStatus::open;
    CHECK(execute(job_of(JobKind::upsert_sticky_comment, m), c).kind == ExecOutcome::Kind::done);
    CHECK(other.host.sticky_lists == 1);
  }
}

TEST_CASE("reply: one reply per answered comment however often it runs", "[job_executor]") {
  World w;
  auto n = w.open_pr_at(kHead);
  Job j = job_of(JobKind::reply, n);
  j.comment_id = 77;
  j.key = "reply:77:r1";
  j.text = "`/approve` refused: @alice wrote this change";
  CHECK(execute(j, w.cx()).kind == ExecOutcome::Kind::done);
  CHECK(execute(j, w.cx()).kind == ExecOutcome::Kind::done);
  auto& comments = w.env().comments[n];
  REQUIRE(comments.size() == 1);
  CHECK(comments[0].body.find(j.text) != std::string::npos);

  Job other = j;
  other.comment_id = 78;
  other.key = "reply:78:r1";
  CHECK(execute(other, w.cx()).kind == ExecOutcome::Kind::done);
  Job review = j;
  review.comment_id = 0;
  review.key = "reply:review:5:r1";
  CHECK(execute(review, w.cx()).kind == ExecOutcome::Kind::done);
  CHECK(execute(review, w.cx()).kind == ExecOutcome::Kind::done);
  CHECK(comments.size() == 3);

  w.host.fail_next["sticky"].push_back(error_of(host::HostError::Kind::rate_limited, 0, "rate limited (403)"));
  auto limited = execute(j, w.cx());
  CHECK(limited.kind == ExecOutcome::Kind::retry);
  REQUIRE(limited.retry_after);
  CHECK(*limited.retry_after == std::chrono::seconds(60));
}

TEST_CASE("add_reaction: the job's reaction on the comment, harmless twice", "[job_executor]") {
  World w;
  auto n = w.open_pr_at(kHead);
  Job j = job_of(JobKind::add_reaction, n);
  j.comment_id = 77;
  j.state = "+1";
  CHECK(execute(j, w.cx()).kind == ExecOutcome::Kind::done);
  CHECK(execute(j, w.cx()).kind == ExecOutcome::Kind::done);
  CHECK(w.host.reactions == std::set<std::pair<std::int64_t, std::string>>{{77, "+1"}});
  w.host.fail_next["react"].push_back(FakeHost::not_found());  // the comment was deleted
  CHECK(execute(j, w.cx()).kind == ExecOutcome::Kind::terminal);
}

TEST_CASE("close_pr: closes once; an already closed PR is done", "[job_executor]") {
  World w;
  auto n = w.open_pr_at(kHead);
  Job j = job_of(JobKind::close_pr, n);
  j.text = "superseded by run r2";
  CHECK(execute(j, w.cx()).kind == ExecOutcome::Kind::done);
  CHECK(w.env().prs[0].state == "closed");
  CHECK(execute(j, w.cx()).kind == ExecOutcome::Kind::done);
  CHECK(w.host.calls["close"] == 1);

  SECTION("a lost answer is done once the PR reads closed") {
    World w2;
    auto m = w2.open_pr_at(kHead);
    w2.host.lose_answer.insert("close");
    CHECK(execute(job_of(JobKind::close_pr, m), w2.cx()).kind == ExecOutcome::Kind::done);
  }
  SECTION("a 5xx on the close: retry") {
    World w2;
    auto m = w2.open_pr_at(kHead);
    w2.host.fail_next["close"].push_back(FakeHost::transient());
    auto out = execute(job_of(JobKind::close_pr, m), w2.cx());
    CHECK(out.kind == ExecOutcome::Kind::retry);
    CHECK(out.error.find("closing PR #1") != std::string::npos);
  }
}

TEST_CASE("resync_pr: merged (by tollgate or a person), closed, or the current head", "[job_executor]") {
  World w;
  auto n = w.open_pr_at(kHead);
  Job j = job_of(JobKind::resync_pr, n);
  auto& pr = w.env().prs[0];

  SECTION("open: HeadChanged with the current head") {
    pr.head_sha = kOtherHead;
    auto out = execute(j, w.cx());
    REQUIRE(out.inputs.size() == 1);
    auto& h = std::get<pipeline::HeadChanged>(out.inputs[0]);
    CHECK(h.repo == "acme/env-dev");
    CHECK(h.pr == n);
    CHECK(h.sha == kOtherHead);
  }
  SECTION("open: and the checks on the head, as the engine counts them (a webhook may have been lost)") {
    using Src = host::Check::Source;
    w.host.checks[kHead].checks = {{Src::status, "ci/build", "success", ""},
                                   {Src::status, "lint", "failed", ""},          // GitLab
                                   {Src::status, "deploy-preview", "warning", ""},  // Gitea: not a failure
                                   {Src::status, "e2e", "pending", ""},
                                   {Src::check_run, "sast", "completed", "neutral"},
                                   {Src::check_run, "perf", "completed", "timed_out"},
                                   {Src::check_run, "docs", "in_progress", ""}};
    auto out = execute(j, w.cx());
    REQUIRE(out.inputs.size() == 8);
    CHECK(std::holds_alternative<pipeline::HeadChanged>(out.inputs[0]));
    std::map<std::string, pipeline::CheckState> got;
    for (std::size_t i = 1; i < out.inputs.size(); ++i) {
      const auto& c = std::get<pipeline::CheckCompleted>(out.inputs[i]);
      CHECK(c.repo == "acme/env-dev");
      CHECK(c.sha == kHead);
      got[c.name] = c.state;
    }
    using S = pipeline::CheckState;
    CHECK(got == std::map<std::string, S>{{"ci/build", S::success}, {"lint", S::failure}, {"deploy-preview", S::success},
                                          {"e2e", S::pending}, {"sast", S::success}, {"perf", S::failure}, {"docs", S::pending}});
  }
  SECTION("open: checks that cannot be read leave the PR's state") {
    w.host.fail_next["checks"].push_back(FakeHost::transient());
    auto out = execute(j, w.cx());
    CHECK(out.kind == ExecOutcome::Kind::done);
    REQUIRE(out.inputs.size() == 1);
    CHECK(std::holds_alternative<pipeline::HeadChanged>(out.inputs[0]));
  }
  SECTION("merged by tollgate") {
    pr.merged = true;
    pr.state = "closed";
    pr.merge_commit_sha = std::string(40, 'e');
    pr.merged_by = "Tollgate";
    auto out = execute(j, w.cx());
    auto& m = std::get<pipeline::PrMerged>(out.inputs.at(0));
    CHECK(m.by_tollgate);
    CHECK(m.merge_sha == std::string(40, 'e'));
  }
  SECTION("merged by a person") {
    pr.merged = true;
    pr.state = "closed";
    pr.merged_by = "alice";
    auto m = std::get<pipeline::PrMerged>(execute(j, w.cx()).inputs.at(0));
    CHECK_FALSE(m.by_tollgate);
    CHECK(m.by == "alice");
  }
  SECTION("merged, the host does not say by whom, at the head tollgate was merging") {
    pr.merged = true;
    pr.state = "closed";
    w.dev().status = pipeline::StageStatus::merging;
    w.dev().expected_merge_sha = kHead;
    CHECK(std::get<pipeline::PrMerged>(execute(j, w.cx()).inputs.at(0)).by_tollgate);
    w.dev().expected_merge_sha = kOtherHead;
    CHECK_FALSE(std::get<pipeline::PrMerged>(execute(j, w.cx()).inputs.at(0)).by_tollgate);
  }
  SECTION("closed") {
    pr.state = "closed";
    CHECK(std::holds_alternative<pipeline::PrClosed>(execute(j, w.cx()).inputs.at(0)));
  }
  SECTION("a read error: retry, no input") {
    w.host.fail_next["get"].push_back(FakeHost::transient());
    auto out = execute(j, w.cx());
    CHECK(out.kind == ExecOutcome::Kind::retry);
    CHECK(out.inputs.empty());
  }
}

TEST_CASE("verify_probe and timer jobs are not the executor's", "[job_executor]") {
  World w;
  CHECK(execute(job_of(JobKind::verify_probe), w.cx()).kind == ExecOutcome::Kind::terminal);
  CHECK(execute(job_of(JobKind::timer), w.cx()).kind == ExecOutcome::Kind::terminal);
}

// ---------------------------------------------------------------------------------------------
// With a real git server: prepare_branch and open_revert_pr.

namespace {

const std::string kValues = "image:\n  repository: ghcr.io/acme/payments   # built by CI\n  tag: \"v1.0.0\"\n";
const std::string kVersion = "release v1.0.0\n";

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "tollgate-executor-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

struct GitWorld : World {
  TempDir tmp;
  test::GitServer server{tmp.path / "server", "tollgate", "s3cret-token"};
  git::GitWriter git_writer{git::GitWriterOptions{.data_dir = tmp.path / "data", .max_attempts = 1,
                                                  .backoff = std::chrono::milliseconds(10)}};
  GitWorld() {
    server.create_repo("acme", "env-dev", {{"apps/payments/values.yaml", kValues}, {"VERSION", kVersion}});
    writer = &git_writer;
    clone_url = [this](const std::string& r) {
      auto slash = r.find('/');
      return server.url(r.substr(0, slash), r.substr(slash + 1));
    };
  }
  Job prepare_job() {
    // The job the engine sent when the run started.
    pipeline::Context ecx{.now = pipeline::TimePoint{std::chrono::seconds{1'700'000'000}}};
    auto fresh = pipeline::make_run(def, "r1", run.source, run.release, pipeline::TimePoint{});
    auto step = pipeline::start_run(def, fresh, ecx);
    REQUIRE(step.jobs.size() == 1);
    REQUIRE(step.jobs[0].kind == JobKind::prepare_branch);
    return step.jobs[0];
  }
};

}  // namespace

TEST_CASE("prepare_branch pushes the rendered edits once; a second execution finds them there", "[job_executor][git]") {
  GitWorld w;
  Job j = w.prepare_job();
  CHECK(j.text == "tollgate/payments/dev/r1");
  auto first = execute(j, w.cx());
  const auto r1 = result(first);
  CHECK(r1.kind == JobKind::prepare_branch);
  CHECK(r1.outcome == O::ok);
  CHECK(r1.sha == w.server.rev_parse("acme", "env-dev", "tollgate/payments/dev/r1"));
  CHECK(w.server.show("acme", "env-dev", r1.sha, "VERSION") == "release v1.1.0\n");
  CHECK(w.server.show("acme", "env-dev", r1.sha, "apps/payments/values.yaml").find("tag: \"v1.1.0\"") != std::string::npos);
  CHECK(w.server.rev_parse("acme", "env-dev", r1.sha + "^") == w.server.rev_parse("acme", "env-dev", "main"));
  const auto pushes = w.git_writer.stats().pushes;

  auto second = execute(j, w.cx());
  CHECK(result(second).outcome == O::ok);
  CHECK(result(second).sha == r1.sha);
  CHECK(w.git_writer.stats().pushes == pushes);  // nothing pushed again

  SECTION("already at this version: no_change") {
    GitWorld same;
    same.run.release = {{"version", "v1.0.0"}};
    CHECK(result(execute(same.prepare_job(), same.cx())).outcome == O::no_change);
    CHECK(same.server.rev_parse("acme", "env-dev", "tollgate/payments/dev/r1").empty());
  }
}

TEST_CASE("open_pr right after this process created the branch opens without a lookup; any later execution looks", "[job_executor][git]") {
  GitWorld w;
  service::HostHints hints;
  w.hints = &hints;
  auto cx = [&] { return w.cx(); };
  Job prepare = w.prepare_job();
  const auto pushed = result(execute(prepare, cx()));
  REQUIRE(pushed.outcome == O::ok);
  w.host.head_of = [&](const std::string& branch) { return w.server.rev_parse("acme", "env-dev", branch); };
  Job open = job_of(JobKind::open_pr);
  open.text = prepare.text;
  open.sha = pushed.sha;
  CHECK(result(execute(open, cx())).pr == 1);
  CHECK(w.host.calls["find"] == 0);
  // Executed again (its result lost): it looks, and finds the PR.
  CHECK(result(execute(open, cx())).pr == 1);
  CHECK(w.host.calls["find"] == 1);
  CHECK(w.env().prs.size() == 1);

  SECTION("a branch that was already on the host (prepare executed again) is looked for") {
    REQUIRE(result(execute(prepare, cx())).outcome == O::ok);  // up to date: not created
    CHECK(result(execute(open, cx())).pr == 1);
    CHECK(w.host.calls["find"] == 2);
  }
}

TEST_CASE("prepare_branch and open_pr take the clone URL and the default branch from the host when not given", "[job_executor][git]") {
  GitWorld w;
  w.def.stages[0].branch.reset();
  w.clone_url = nullptr;
  w.host.described["acme/env-dev"] = {"acme/env-dev", w.server.url("acme", "env-dev"), "https://git.example/acme/env-dev", "main"};
  Job j = w.prepare_job();
  auto prepared = execute(j, w.cx());
  CHECK(result(prepared).outcome == O::ok);
  CHECK(result(prepared).sha == w.server.rev_parse("acme", "env-dev", "tollgate/payments/dev/r1"));
  Job open = job_of(JobKind::open_pr);
  open.text = j.text;
  CHECK(result(execute(open, w.cx())).outcome == O::ok);
  CHECK(w.env().prs.at(0).base_ref == "main");

  SECTION("a failed lookup is the job's failure") {
    w.host.fail_next["repo"].push_back(FakeHost::transient());
    CHECK(result(execute(j, w.cx())).outcome == O::retryable);
    w.host.described.clear();
    CHECK(result(execute(j, w.cx())).outcome == O::terminal);  // 404
  }
}

TEST_CASE("prepare_branch maps git errors", "[job_executor][git]") {
  GitWorld w;
  Job j = w.prepare_job();
  SECTION("an edit that cannot apply: terminal, naming the file") {
    w.def.stages[0].edits.push_back({"/e2", "missing.yaml", pipeline::SetEdit{{{"a", "b"}}}});
    auto out = execute(j, w.cx());
    CHECK(result(out).outcome == O::terminal);
    CHECK(result(out).message.find("missing.yaml") != std::string::npos);
  }
  SECTION("refused credentials: terminal, and the token is never in the message") {
    auto cx = w.cx();
    cx.credentials.token = "wrong-token";
    auto out = execute(j, cx);
    CHECK(result(out).outcome == O::terminal);
    CHECK(result(out).message.find("wrong-token") == std::string::npos);
  }
  SECTION("a server that does not answer: retryable") {
    w.clone_url = [](const std::string& r) { return "http://127.0.0.1:1/git/" + r + ".git"; };
    CHECK(result(execute(j, w.cx())).outcome == O::retryable);
  }
  SECTION("a push the host refuses: terminal") {
    w.server.reject_pushes("acme", "env-dev", "protected by policy");
    auto out = execute(j, w.cx());
    CHECK(result(out).outcome == O::terminal);
    CHECK(result(out).message.find("protected by policy") != std::string::npos);
  }
  SECTION("no writer: terminal") {
    w.writer = nullptr;
    CHECK(result(execute(j, w.cx())).outcome == O::terminal);
  }
}

TEST_CASE("open_revert_pr pushes a revert of the stage's merge and opens one PR for it", "[job_executor][git]") {
  GitWorld w;
  const std::string dir = w.server.repo_dir("acme", "env-dev").string();
  auto prepared = result(execute(w.prepare_job(), w.cx()));
  REQUIRE(prepared.outcome == O::ok);
  const std::string base_before = w.server.rev_parse("acme", "env-dev", "main");
  const bool merge_commit = GENERATE(false, true);
  std::string merged;
  if (merge_commit) {
    // A true merge commit (parents: main, the promotion), as GitHub's "merge" method makes.
    const std::string tree = test::sh("git -C " + test::quote(dir) + " rev-parse " + prepared.sha + "^{tree}").substr(0, 40);
    merged = test::sh("git -C " + test::quote(dir) + " commit-tree " + tree + " -p " + base_before + " -p " + prepared.sha +
                      " -m 'Merge pull request #1'");
    merged = merged.substr(0, 40);
  } else {
    merged = prepared.sha;  // squash / rebase: one commit on main
  }
  test::sh("git -C " + test::quote(dir) + " update-ref refs/heads/main " + merged);
  // Later changes to other files on main do not get in the way.
  w.server.commit("acme", "env-dev", "main", {{"README.md", "later\n"}}, "docs");

  w.dev().status = pipeline::StageStatus::verifying;
  w.dev().pr = 1;
  w.dev().merge_sha = merged;
  w.dev().rollback = pipeline::RollbackPhase::opening;
  Job j = job_of(JobKind::open_revert_pr, 1);
  j.sha = merged;

  auto first = execute(j, w.cx());
  const auto r = result(first);
  CHECK(r.kind == JobKind::open_revert_pr);
  REQUIRE(r.outcome == O::ok);
  const std::string branch = "tollgate/payments/dev/r1-revert";
  const std::string tip = w.server.rev_parse("acme", "env-dev", branch);
  CHECK(r.sha == tip);
  CHECK(w.server.show("acme", "env-dev", tip, "VERSION") == kVersion);
  CHECK(w.server.show("acme", "env-dev", tip, "apps/payments/values.yaml") == kValues);
  CHECK(w.server.show("acme", "env-dev", tip, "README.md") == "later\n");
  CHECK(w.server.rev_parse("acme", "env-dev", tip + "^") == w.server.rev_parse("acme", "env-dev", "main"));
  REQUIRE(w.env().prs.size() == 1);
  CHECK(r.pr == w.env().prs[0].number);
  CHECK(w.env().prs[0].head_ref == branch);
  CHECK(w.env().prs[0].base_ref == "main");
  CHECK(w.env().prs[0].title == "Roll back payments v1.1.0 in dev");

  // Executed again: the same PR, no second push.
  w.env().prs[0].head_sha = tip;
  const auto pushes = w.git_writer.stats().pushes;
  auto second = execute(j, w.cx());
  CHECK(result(second).outcome == O::ok);
  CHECK(result(second).pr == r.pr);
  CHECK(result(second).sha == tip);
  CHECK(w.env().prs.size() == 1);
  CHECK(w.git_writer.stats().pushes == pushes);
}

TEST_CASE("open_revert_pr: a commit that is not on the base branch is terminal", "[job_executor][git]") {
  GitWorld w;
  w.dev().status = pipeline::StageStatus::verifying;
  Job j = job_of(JobKind::open_revert_pr, 1);
  j.sha = std::string(40, 'f');
  auto out = execute(j, w.cx());
  CHECK(result(out).outcome == O::terminal);
  CHECK(result(out).message.find("not on branch 'main'") != std::string::npos);
  CHECK(w.env().prs.empty());
}

TEST_CASE("a run driven by the engine and the executor, every job executed twice, promotes with one PR", "[job_executor][git]") {
  GitWorld w;
  w.def.stages[0].gates = {};  // no gate: merged as soon as the PR is open
  w.host.head_of = [&](const std::string& branch) { return w.server.rev_parse("acme", "env-dev", branch); };
  pipeline::Context ecx{.now = pipeline::TimePoint{std::chrono::seconds{1'700'000'100}}};
  auto fresh = pipeline::make_run(w.def, "r1", w.run.source, w.run.release, pipeline::TimePoint{});
  auto step = pipeline::start_run(w.def, fresh, ecx);
  w.run = step.run;
  std::deque<Job> queue(step.jobs.begin(), step.jobs.end());
  std::map<JobKind, int> executed;
  int guard = 0;
  while (!queue.empty() && ++guard < 100) {
    Job j = queue.front();
    queue.pop_front();
    if (j.kind == JobKind::timer) continue;
    ++executed[j.kind];
    // A crash after the side effect: the job runs again, and both answers reach the engine.
    for (int round = 0; round < 2; ++round) {
      auto out = execute(j, w.cx());
      INFO(pipeline::to_string(j.kind) << " round " << round << ": " << out.error);
      REQUIRE(out.kind == ExecOutcome::Kind::done);
      for (const auto& in : out.inputs) {
        auto next = pipeline::apply(w.def, w.run, in, ecx);
        w.run = next.run;
        queue.insert(queue.end(), next.jobs.begin(), next.jobs.end());
      }
    }
  }
  CHECK(w.run.status == pipeline::RunStatus::succeeded);
  CHECK(w.dev().status == pipeline::StageStatus::promoted);
  CHECK(executed[JobKind::prepare_branch] == 1);
  CHECK(executed[JobKind::open_pr] == 1);
  CHECK(executed[JobKind::merge_pr] == 1);
  REQUIRE(w.env().prs.size() == 1);
  CHECK(w.env().prs[0].merged);
  CHECK(w.dev().merge_sha == w.env().prs[0].merge_commit_sha);
  CHECK(w.env().comments[w.env().prs[0].number].size() == 1);  // one sticky status comment
  CHECK(w.env().statuses[w.env().prs[0].head_sha]["tollgate/dev"].state == "success");
}

TEST_CASE("host hints: with other replicas acting on the same PRs, only the comment id is hinted", "[job_executor]") {
  for (const bool shared : {false, true}) {
    CAPTURE(shared);
    tollgate::service::HostHints h;
    h.set_shared(shared);
    bool unchanged = true;
    h.opened("github", "acme/env-dev", 7);
    // One process: a PR it just opened has no comment yet. Replicas: another may have posted one.
    CHECK(h.hint("github", "acme/env-dev", 7, "k", 1, unchanged).new_pr == !shared);
    CHECK_FALSE(unchanged);
    h.stored("github", "acme/env-dev", 7, "k", 1001, 42);
    const auto again = h.hint("github", "acme/env-dev", 7, "k", 42, unchanged);
    CHECK(again.comment_id == 1001);  // an edit by id is safe either way (gone: 404, then a lookup)
    CHECK_FALSE(again.new_pr);
    CHECK(unchanged == !shared);  // another replica may have rewritten the text since
  }
}

TEST_CASE("a job that cannot run at all: a terminal result where the engine waits on one, else a terminal failure", "[job_executor]") {
  Job merge{.kind = JobKind::merge_pr, .key = "k", .stage = "dev", .repo = "acme/env-dev", .pr = 7};
  merge.seq = 3;
  ExecOutcome waited = service::cannot_run(merge, "host 'github' is not configured");
  CHECK(waited.kind == ExecOutcome::Kind::done);  // the engine counts it, as any job result
  REQUIRE(waited.inputs.size() == 1);
  const auto* r = std::get_if<JobResult>(&waited.inputs[0]);
  REQUIRE(r != nullptr);
  CHECK(r->kind == JobKind::merge_pr);
  CHECK(r->outcome == O::terminal);
  CHECK(r->stage == "dev");
  CHECK(r->pr == 7);
  CHECK(r->seq == 3);
  CHECK(r->message == "host 'github' is not configured");

  Job status{.kind = JobKind::set_commit_status, .key = "s", .stage = "dev", .repo = "acme/env-dev"};
  ExecOutcome plain = service::cannot_run(status, "host 'github' is not configured");
  CHECK(plain.kind == ExecOutcome::Kind::terminal);
  CHECK(plain.inputs.empty());
  CHECK(plain.error == "host 'github' is not configured");
}
