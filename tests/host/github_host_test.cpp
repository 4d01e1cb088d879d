// GitHubHost and HttpClient against the test Git host (tests/githost/server.mjs): every Host
// method, fault injection, rate limits and conditional GETs.
#include <catch2/catch.hpp>

#include <chrono>
#include <mutex>
#include <thread>

#include "tests/host/world.hpp"

using namespace tollgate::tests;
using namespace std::chrono_literals;
namespace host = tollgate::service::host;
using Clock = std::chrono::steady_clock;

namespace {

host::NewPullRequest promotion(const std::string& branch) {
  return host::NewPullRequest{.head = branch,
                              .base = "main",
                              .title = "Promote payments v2 to dev",
                              .body = "Release v2",
                              .labels = {"promotion"},
                              .reviewers = {"alice"}};
}

}  // namespace

TEST_CASE("a promotion PR is found by head branch + created once + updated + read and closed", "[github]") {
  World w;
  host::HttpClient client(fast_options());
  auto gh = w.github(client);

  auto none = gh->find_pull_request(w.repo, "tollgate/payments/dev/1");
  REQUIRE(none);
  CHECK_FALSE(none->has_value());

  auto pr = gh->create_pull_request(w.repo, promotion("tollgate/payments/dev/1"));
  REQUIRE(pr);
  CHECK(pr->number > 0);
  CHECK(pr->state == "open");
  CHECK(pr->head_ref == "tollgate/payments/dev/1");
  CHECK(pr->head_sha.size() == 40);
  CHECK(pr->base_ref == "main");
  CHECK(pr->labels == std::vector<std::string>{"promotion"});

  CHECK(pr->created);

  // A second create (a re-run job) finds the first PR instead of opening another.
  auto again = gh->create_pull_request(w.repo, promotion("tollgate/payments/dev/1"));
  REQUIRE(again);
  CHECK(again->number == pr->number);
  CHECK_FALSE(again->created);
  CHECK(w.count_requests("POST", "/pulls") == 1);

  // The caller says it just looked and found none (wrongly here, as after a lost answer): no
  // lookup first, and GitHub's 422 "already exists" still ends in the one PR.
  const int gets = w.count_requests("GET", "/pulls");
  auto spec = promotion("tollgate/payments/dev/1");
  spec.looked_up = true;
  auto blind = gh->create_pull_request(w.repo, spec);
  REQUIRE(blind);
  CHECK(blind->number == pr->number);
  CHECK_FALSE(blind->created);
  CHECK(w.count_requests("POST", "/pulls") == 2);
  CHECK(w.count_requests("GET", "/pulls") == gets + 1);  // only the lookup after the 422

  auto found = gh->find_pull_request(w.repo, "tollgate/payments/dev/1");
  REQUIRE(found);
  REQUIRE(found->has_value());
  CHECK((*found)->number == pr->number);

  auto updated = gh->update_pull_request(w.repo, pr->number,
                                         host::PullRequestUpdate{.title = "Promote payments v3 to dev", .body = "Release v3",
                                                                 .labels = std::vector<std::string>{"promotion", "dev"}});
  REQUIRE(updated);
  CHECK(updated->title == "Promote payments v3 to dev");
  CHECK(updated->body == "Release v3");
  CHECK(updated->labels.size() == 2);

  auto got = gh->get_pull_request(w.repo, pr->number);
  REQUIRE(got);
  CHECK(got->title == "Promote payments v3 to dev");
  CHECK_FALSE(got->merged);

  auto closed = gh->close_pull_request(w.repo, pr->number);
  REQUIRE(closed);
  CHECK(closed->state == "closed");
  auto after_close = gh->find_pull_request(w.repo, "tollgate/payments/dev/1");
  REQUIRE(after_close);
  REQUIRE(after_close->has_value());
  CHECK((*after_close)->state == "closed");

  auto missing = gh->get_pull_request(w.repo, 9999);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().kind == host::HostError::Kind::not_found);
}

TEST_CASE("a draft PR is created as a draft", "[github]") {
  World w;
  host::HttpClient client(fast_options());
  auto gh = w.github(client);
  auto spec = promotion("tollgate/payments/dev/2");
  spec.draft = true;
  spec.labels.clear();
  spec.reviewers.clear();
  auto pr = gh->create_pull_request(w.repo, spec);
  REQUIRE(pr);
  CHECK(pr->draft);
}

TEST_CASE("publish_check: a check run, or a commit status of the same name where the token may not create one (403)", "[github]") {
  World w;
  host::HttpClient client(fast_options());
  auto gh = w.github(client);
  auto pr = gh->create_pull_request(w.repo, promotion("tollgate/payments/dev/1"));
  REQUIRE(pr);
  host::CheckReport report{.name = "tollgate/pipeline-file", .success = false, .title = "2 problems in .tollgate.yaml", .summary = "..."};
  REQUIRE(gh->publish_check(w.repo, pr->head_sha, report));
  auto checks = gh->get_checks(w.repo, pr->head_sha);
  REQUIRE(checks);
  REQUIRE(checks->checks.size() == 1);
  CHECK(checks->checks[0].source == host::Check::Source::check_run);
  CHECK(checks->checks[0].conclusion == "failure");

  // As GitHub answers a personal access token (only GitHub Apps may create check runs).
  w.admin("PUT", "/faults", {{"kind", "status"}, {"status", 403}, {"method", "POST"}, {"path", "/check-runs$"},
                             {"message", "You must authenticate via a GitHub App."}});
  auto other = gh->create_pull_request(w.repo, promotion("tollgate/payments/dev/2"));
  REQUIRE(other);
  auto published = gh->publish_check(w.repo, other->head_sha, report);
  REQUIRE(published);
  CHECK(w.count_requests("POST", "/check-runs") == 2);
  auto fell_back = gh->get_checks(w.repo, other->head_sha);
  REQUIRE(fell_back);
  REQUIRE(fell_back->checks.size() == 1);
  CHECK(fell_back->checks[0].source == host::Check::Source::status);
  CHECK(fell_back->checks[0].name == "tollgate/pipeline-file");
  CHECK(fell_back->checks[0].state == "failure");
}

TEST_CASE("merge: a moved head is 409 head_moved + a blocked merge 405 not_mergeable (values not errors)", "[github]") {
  World w;
  host::HttpClient client(fast_options());
  auto gh = w.github(client);
  auto pr = gh->create_pull_request(w.repo, promotion("tollgate/payments/dev/1"));
  REQUIRE(pr);

  auto moved = gh->merge_pull_request(w.repo, pr->number, w.main_sha, host::MergeMethod::squash);
  REQUIRE(moved);
  CHECK(moved->outcome == host::MergeOutcome::head_moved);
  CHECK(moved->message.find("Head branch was modified") != std::string::npos);

  w.admin("PUT", "/faults", {{"kind", "not_mergeable"}, {"count", 1}});
  auto blocked = gh->merge_pull_request(w.repo, pr->number, pr->head_sha, host::MergeMethod::squash);
  REQUIRE(blocked);
  CHECK(blocked->outcome == host::MergeOutcome::not_mergeable);
  CHECK(blocked->message == "Pull Request is not mergeable");

  auto merged = gh->merge_pull_request(w.repo, pr->number, pr->head_sha, host::MergeMethod::squash, "Promote payments v2");
  REQUIRE(merged);
  CHECK(merged->outcome == host::MergeOutcome::merged);
  CHECK(merged->sha.size() == 40);
  auto got = gh->get_pull_request(w.repo, pr->number);
  REQUIRE(got);
  CHECK(got->merged);
  CHECK(got->state == "closed");
}

TEST_CASE("a 422 comes back with GitHub's message and errors[] text", "[github]") {
  World w;
  host::HttpClient client(fast_options());
  auto gh = w.github(client);
  auto spec = promotion("tollgate/payments/dev/2");
  spec.base = "no-such-branch";
  auto pr = gh->create_pull_request(w.repo, spec);
  REQUIRE_FALSE(pr);
  CHECK(pr.error().kind == host::HostError::Kind::validation);
  CHECK(pr.error().status == 422);
  INFO(pr.error().message);
  CHECK(pr.error().message.find("Validation Failed") != std::string::npos);
  CHECK(pr.error().message.find("base") != std::string::npos);

  auto bad_reaction = gh->add_reaction(w.repo, 1, 1, "party");
  REQUIRE_FALSE(bad_reaction);
}

TEST_CASE("comments + reactions + statuses + checks + reviews + permissions + teams + files", "[github]") {
  World w;
  host::HttpClient client(fast_options());
  auto gh = w.github(client);
  auto pr = gh->create_pull_request(w.repo, promotion("tollgate/payments/dev/1"));
  REQUIRE(pr);

  SECTION("the sticky comment is created once, then edited in place") {
    auto first = gh->upsert_sticky_comment(w.repo, pr->number, "run-1", "stage dev: open");
    REQUIRE(first);
    CHECK(first->body.find("<!-- tollgate:run-1 -->") != std::string::npos);
    auto second = gh->upsert_sticky_comment(w.repo, pr->number, "run-1", "stage dev: merging");
    REQUIRE(second);
    CHECK(second->id == first->id);
    CHECK(second->body.find("merging") != std::string::npos);
    auto same = gh->upsert_sticky_comment(w.repo, pr->number, "run-1", "stage dev: merging");
    REQUIRE(same);
    CHECK(w.count_requests("POST", "/comments") == 1);
    CHECK(w.count_requests("PATCH", "/comments/" + std::to_string(first->id)) == 1);

    auto other = gh->upsert_sticky_comment(w.repo, pr->number, "run-2", "another run");
    REQUIRE(other);
    CHECK(other->id != first->id);

    REQUIRE(gh->add_reaction(w.repo, pr->number, first->id, "+1"));
    REQUIRE(gh->add_reaction(w.repo, pr->number, first->id, "+1"));  // a repeat is fine (200)
    auto bad = gh->add_reaction(w.repo, pr->number, first->id, "party");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().kind == host::HostError::Kind::validation);
  }

  SECTION("hints spare the listing: posted at once on a new PR, edited at once by id, a stale id found again") {
    auto first = gh->upsert_sticky_comment(w.repo, pr->number, "run-1", "v1", host::StickyHint{.new_pr = true});
    REQUIRE(first);
    CHECK(w.count_requests("GET", "/comments") == 0);
    CHECK(w.count_requests("POST", "/comments") == 1);
    auto second = gh->upsert_sticky_comment(w.repo, pr->number, "run-1", "v2", host::StickyHint{.comment_id = first->id});
    REQUIRE(second);
    CHECK(second->id == first->id);
    CHECK(w.count_requests("GET", "/comments") == 0);
    CHECK(w.count_requests("PATCH", "/comments/" + std::to_string(first->id)) == 1);
    // An id that is gone (404): the comment is looked for by its marker and edited, not posted again.
    auto third = gh->upsert_sticky_comment(w.repo, pr->number, "run-1", "v3", host::StickyHint{.comment_id = first->id + 1000});
    REQUIRE(third);
    CHECK(third->id == first->id);
    CHECK(w.count_requests("GET", "/comments") == 1);
    CHECK(w.count_requests("POST", "/comments") == 1);
    auto listed = gh->upsert_sticky_comment(w.repo, pr->number, "run-1", "v3");
    REQUIRE(listed);
    CHECK(listed->body.find("v3") != std::string::npos);
  }

  SECTION("commit statuses and check runs make up the checks") {
    REQUIRE(gh->set_commit_status(w.repo, pr->head_sha,
                                  host::CommitStatus{.state = "pending", .context = "tollgate/gates", .description = "waiting for approvals",
                                                     .target_url = "http://127.0.0.1:8080/runs/1"}));
    w.admin("POST", "/repos/acme/env-dev/statuses/" + pr->head_sha, {{"state", "success"}, {"context", "ci/build"}, {"user", "alice"}});
    w.admin("POST", "/repos/acme/env-dev/check-runs",
            {{"name", "lint"}, {"head_sha", pr->head_sha}, {"status", "completed"}, {"conclusion", "failure"}});
    auto checks = gh->get_checks(w.repo, pr->head_sha);
    REQUIRE(checks);
    CHECK(checks->combined_state == "pending");
    REQUIRE(checks->checks.size() == 3);
    bool saw_lint = false;
    for (const auto& c : checks->checks) {
      if (c.name == "lint") {
        saw_lint = true;
        CHECK(c.source == host::Check::Source::check_run);
        CHECK(c.state == "completed");
        CHECK(c.conclusion == "failure");
      }
      if (c.name == "tollgate/gates") CHECK(c.state == "pending");
    }
    CHECK(saw_lint);
    auto bad = gh->set_commit_status(w.repo, pr->head_sha, host::CommitStatus{.state = "green", .context = "x"});
    REQUIRE_FALSE(bad);
    CHECK(bad.error().kind == host::HostError::Kind::validation);
  }

  SECTION("reviews, permissions and team membership") {
    w.admin("POST", "/repos/acme/env-dev/pulls/" + std::to_string(pr->number) + "/reviews", {{"user", "alice"}, {"state", "APPROVED"}});
    auto reviews = gh->list_reviews(w.repo, pr->number);
    REQUIRE(reviews);
    REQUIRE(reviews->size() == 1);
    CHECK((*reviews)[0].author == "alice");
    CHECK((*reviews)[0].state == "APPROVED");
    CHECK((*reviews)[0].commit_id == pr->head_sha);

    auto admin_perm = gh->user_permission(w.repo, "alice");
    REQUIRE(admin_perm);
    CHECK(*admin_perm == host::Permission::admin);
    auto triage = gh->user_permission(w.repo, "bob");
    REQUIRE(triage);
    CHECK(*triage == host::Permission::triage);
    auto bot = gh->user_permission(w.repo, "tollgate-bot");
    REQUIRE(bot);
    CHECK(*bot == host::Permission::write);

    auto member = gh->is_team_member("acme", "sre", "alice");
    REQUIRE(member);
    CHECK(*member);
    auto not_member = gh->is_team_member("acme", "sre", "bob");
    REQUIRE(not_member);
    CHECK_FALSE(*not_member);
  }

  SECTION("files at a ref and a PR's changed files") {
    auto file = gh->read_file(w.repo, "apps/payments/values.yaml", "tollgate/payments/dev/1");
    REQUIRE(file);
    REQUIRE(file->has_value());
    CHECK(**file == "image:\n  tag: v2\n");
    auto on_main = gh->read_file(w.repo, "apps/payments/values.yaml", "main");
    REQUIRE(on_main);
    CHECK(**on_main == "image:\n  tag: v1\n");
    auto missing = gh->read_file(w.repo, "nope.txt", "main");
    REQUIRE(missing);
    CHECK_FALSE(missing->has_value());

    auto files = gh->list_changed_files(w.repo, pr->number);
    REQUIRE(files);
    REQUIRE(files->size() == 1);
    CHECK((*files)[0].filename == "apps/payments/values.yaml");
    CHECK((*files)[0].status == "modified");
  }
}

TEST_CASE("5xx answers and resets are retried until the request succeeds", "[github][faults]") {
  World w;
  host::HttpClient client(fast_options());
  auto gh = w.github(client);
  auto pr = gh->create_pull_request(w.repo, promotion("tollgate/payments/dev/1"));
  REQUIRE(pr);
  const std::string pr_path = "/pulls/" + std::to_string(pr->number);
  w.admin("DELETE", "/requests");

  SECTION("502 twice") {
    w.admin("PUT", "/faults", {{"kind", "status"}, {"status", 502}, {"count", 2}, {"path", pr_path + "$"}});
    auto got = gh->get_pull_request(w.repo, pr->number);
    REQUIRE(got);
    CHECK(w.count_requests("GET", pr_path) == 3);
  }
  SECTION("a reset connection") {
    w.admin("PUT", "/faults", {{"kind", "reset"}, {"count", 1}, {"path", pr_path + "$"}});
    auto got = gh->get_pull_request(w.repo, pr->number);
    REQUIRE(got);
    CHECK(w.count_requests("GET", pr_path) == 2);
  }
  SECTION("5xx on every attempt gives up after max_attempts with a transient error") {
    w.admin("PUT", "/faults", {{"kind", "status"}, {"status", 503}, {"path", pr_path + "$"}});
    auto got = gh->get_pull_request(w.repo, pr->number);
    REQUIRE_FALSE(got);
    CHECK(got.error().kind == host::HostError::Kind::transient);
    CHECK(got.error().status == 503);
    CHECK(w.count_requests("GET", pr_path) == 4);
  }
}

TEST_CASE("a request that never answers times out + and is retried", "[github][faults]") {
  World w;
  auto options = fast_options();
  options.timeout = 400ms;
  options.max_attempts = 2;
  host::HttpClient client(options);
  auto gh = w.github(client);

  w.admin("PUT", "/faults", {{"kind", "timeout"}, {"hold_ms", 3000}, {"count", 1}, {"path", "/contents/"}});
  auto file = gh->read_file(w.repo, "README.md", "main");
  REQUIRE(file);
  CHECK(**file == "# env-dev\n");

  w.admin("PUT", "/faults", {{"kind", "timeout"}, {"hold_ms", 3000}, {"path", "/contents/"}});
  const auto t0 = Clock::now();
  auto timed_out = gh->read_file(w.repo, "README.md", "main");
  REQUIRE_FALSE(timed_out);
  CHECK(timed_out.error().kind == host::HostError::Kind::transient);
  INFO(timed_out.error().message);
  CHECK(timed_out.error().message.find("timeout") != std::string::npos);
  CHECK(Clock::now() - t0 < 2500ms);
}

TEST_CASE("a secondary rate limit waits retry-after (or the configured minimum) before retrying", "[github][ratelimit]") {
  World w;
  host::HttpClient client(fast_options());
  auto gh = w.github(client);

  w.admin("PUT", "/faults", {{"kind", "secondary_rate_limit"}, {"retry_after", 1}, {"count", 1}});
  auto t0 = Clock::now();
  REQUIRE(gh->user_permission(w.repo, "alice"));
  CHECK(Clock::now() - t0 >= 1000ms);

  w.admin("PUT", "/faults", {{"kind", "secondary_rate_limit"}, {"retry_after", nullptr}, {"count", 1}});
  t0 = Clock::now();
  REQUIRE(gh->user_permission(w.repo, "alice"));
  CHECK(Clock::now() - t0 >= 300ms);
  const auto rates = client.rate_limits();
  REQUIRE(rates.size() == 1);
  CHECK(rates.begin()->second.secondary_waits == 2);
}

TEST_CASE("an exhausted primary quota waits until x-ratelimit-reset + and the quota is exposed", "[github][ratelimit]") {
  World w;
  host::HttpClient client(fast_options());
  auto gh = w.github(client);
  REQUIRE(gh->user_permission(w.repo, "alice"));
  auto rates = client.rate_limits();
  REQUIRE(rates.size() == 1);
  CHECK(rates.begin()->second.limit == 5000);
  CHECK(rates.begin()->second.remaining > 4990);

  w.admin("PUT", "/faults", {{"kind", "primary_rate_limit"}, {"count", 1}, {"reset_in", 2}});
  const auto t0 = Clock::now();
  REQUIRE(gh->user_permission(w.repo, "alice"));
  CHECK(Clock::now() - t0 >= 1000ms);
  CHECK(client.rate_limits().begin()->second.primary_waits == 1);

  SECTION("a reset too far away is an error, not a wait") {
    auto options = fast_options();
    options.max_rate_limit_wait = 5s;
    host::HttpClient impatient(options);
    auto gh2 = w.github(impatient);
    w.admin("PUT", "/faults", {{"kind", "primary_rate_limit"}, {"count", 1}, {"reset_in", 3600}, {"status", 429}});
    auto limited = gh2->user_permission(w.repo, "alice");
    REQUIRE_FALSE(limited);
    CHECK(limited.error().kind == host::HostError::Kind::rate_limited);
    w.admin("PUT", "/rate-limit", {{"remaining", 5000}});
  }
}

TEST_CASE("a wrong token fails fast with 401 + without retries", "[github][auth]") {
  World w;
  host::HttpClient client(fast_options());
  host::GitHubHost gh(client, std::make_shared<host::StaticToken>("not-a-token"), host::GitHubHostOptions{.api_url = w.api_url});
  w.admin("DELETE", "/requests");
  auto pr = gh.get_pull_request(w.repo, 1);
  REQUIRE_FALSE(pr);
  CHECK(pr.error().kind == host::HostError::Kind::unauthorized);
  CHECK(pr.error().message.find("Bad credentials") != std::string::npos);
  CHECK(pr.error().message.find("not-a-token") == std::string::npos);
  CHECK(w.requests().size() == 1);
}

TEST_CASE("no duplicate PR or comment when a create is answered with a 5xx", "[github][faults]") {
  World w;
  host::HttpClient client(fast_options());
  auto gh = w.github(client);

  w.admin("PUT", "/faults", {{"kind", "status"}, {"status", 502}, {"count", 2}, {"method", "POST"}, {"path", "/pulls$"}});
  auto pr = gh->create_pull_request(w.repo, promotion("tollgate/payments/dev/1"));
  REQUIRE(pr);
  auto again = gh->create_pull_request(w.repo, promotion("tollgate/payments/dev/1"));
  REQUIRE(again);
  CHECK(again->number == pr->number);

  // A comment is not safe to resend blindly: the client gives up on it, the host looks for the
  // marker again before posting a second time.
  w.admin("PUT", "/faults", {{"kind", "status"}, {"status", 502}, {"count", 1}, {"method", "POST"}, {"path", "/comments$"}});
  auto c = gh->upsert_sticky_comment(w.repo, pr->number, "run-1", "stage dev: open");
  REQUIRE(c);
  auto c2 = gh->upsert_sticky_comment(w.repo, pr->number, "run-1", "stage dev: open");
  REQUIRE(c2);
  CHECK(c2->id == c->id);
  auto listing = w.admin("GET", "/repos/acme/env-dev/pulls/" + std::to_string(pr->number));
  CHECK(listing["comments"].get<int>() == 1);
  auto prs = gh->find_pull_request(w.repo, "tollgate/payments/dev/1");
  REQUIRE(prs);
  CHECK((*prs)->number == pr->number);
}

TEST_CASE("conditional GETs: a 304 answers from the ETag cache and costs no quota", "[http][etag]") {
  World w;
  host::HttpClient client(fast_options());
  const host::HttpRequest req{.method = "GET",
                              .url = w.api_url + "/repos/acme/env-dev",
                              .headers = {{"Authorization", "Bearer " + w.tokens["tollgate-bot"]}}};
  auto first = client.request(req);
  REQUIRE(first);
  CHECK(first->status == 200);
  CHECK_FALSE(first->from_cache);
  const auto remaining = client.rate_limits().begin()->second.remaining;
  auto second = client.request(req);
  REQUIRE(second);
  CHECK(second->status == 200);
  CHECK(second->from_cache);
  CHECK(second->body == first->body);
  CHECK(client.rate_limits().begin()->second.remaining == remaining);
  // (The test host's request log shows 200 for a 304 answer: it logs before the ETag check.)

  // Another identity does not share the cache entry.
  auto other = req;
  other.headers = {{"Authorization", "Bearer " + w.tokens["alice"]}};
  auto third = client.request(other);
  REQUIRE(third);
  CHECK_FALSE(third->from_cache);
}

TEST_CASE("concurrent requests to one host are capped", "[http]") {
  World w;
  auto options = fast_options();
  options.max_per_host = 2;
  host::HttpClient client(options);
  w.admin("PUT", "/faults", {{"kind", "latency"}, {"latency_ms", 300}});
  std::vector<std::future<host::HttpResult>> futures;
  const auto t0 = Clock::now();
  for (int i = 0; i < 6; ++i) futures.push_back(client.request_async(host::HttpRequest{.url = w.api_url + "/rate_limit"}));
  for (auto& f : futures) {
    auto r = f.get();
    REQUIRE(r);
    CHECK(r->status == 200);
  }
  CHECK(Clock::now() - t0 >= 900ms);  // 6 requests, 2 at a time, 300 ms each
}

TEST_CASE("attempt reports carry no header values", "[http]") {
  World w;
  auto options = fast_options();
  std::vector<host::AttemptInfo> seen;
  std::mutex m;
  options.on_attempt = [&](const host::AttemptInfo& a) {
    std::lock_guard lock(m);
    seen.push_back(a);
  };
  host::HttpClient client(options);
  w.admin("PUT", "/faults", {{"kind", "status"}, {"status", 500}, {"count", 1}});
  auto r = client.request(host::HttpRequest{.url = w.api_url + "/user", .headers = {{"Authorization", "Bearer secret-token-xyz"}}});
  REQUIRE(r);
  CHECK(r->attempts == 2);
  std::lock_guard lock(m);
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].status == 500);
  CHECK(seen[0].wait.count() >= 0);
  for (const auto& a : seen) CHECK(a.url.find("secret-token-xyz") == std::string::npos);
}

TEST_CASE("lists follow Link rel=next pages: a sticky comment on a later page is found", "[github]") {
  World w;
  host::HttpClient client(fast_options());
  host::GitHubHost gh(client, std::make_shared<host::StaticToken>(w.tokens.at("tollgate-bot")),
                      host::GitHubHostOptions{.api_url = w.api_url, .per_page = 2});
  auto pr = gh.create_pull_request(w.repo, promotion("tollgate/payments/dev/1"));
  REQUIRE(pr);
  const std::string comments = "/repos/acme/env-dev/pulls/" + std::to_string(pr->number) + "/comments";
  for (int i = 0; i < 3; ++i) w.admin("POST", comments, {{"user", "alice"}, {"body", "comment " + std::to_string(i)}});
  auto first = gh.upsert_sticky_comment(w.repo, pr->number, "run-1", "v1");
  REQUIRE(first);
  for (int i = 3; i < 6; ++i) w.admin("POST", comments, {{"user", "alice"}, {"body", "comment " + std::to_string(i)}});
  auto second = gh.upsert_sticky_comment(w.repo, pr->number, "run-1", "v2");
  REQUIRE(second);
  CHECK(second->id == first->id);
  CHECK(w.count_requests("POST", "/comments") == 1);
  CHECK(w.count_requests("GET", "/comments") >= 4 + 2);  // 2 pages, then 4 pages
}

TEST_CASE("quotas are per identity: one exhausted token does not hold back another", "[github][ratelimit]") {
  World w;
  auto options = fast_options();
  options.max_rate_limit_wait = 5s;
  host::HttpClient client(options);
  auto bot = w.github(client);
  auto bob = w.github(client, "bob");
  REQUIRE(bot->user_permission(w.repo, "alice"));
  w.admin("PUT", "/rate-limit", {{"login", "bob"}, {"remaining", 0}, {"reset_in", 3600}});
  auto limited = bob->user_permission(w.repo, "alice");
  REQUIRE_FALSE(limited);
  CHECK(limited.error().kind == host::HostError::Kind::rate_limited);
  const auto t0 = Clock::now();
  REQUIRE(bot->user_permission(w.repo, "alice"));
  CHECK(Clock::now() - t0 < 1s);
  const auto rates = client.rate_limits();
  REQUIRE(rates.size() == 2);
  for (const auto& [key, rate] : rates) {
    CHECK(key.find(" identity=") != std::string::npos);
    CHECK(key.find(w.tokens.at("bob")) == std::string::npos);
  }
}
