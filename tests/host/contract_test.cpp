// GitHubHost against GitHub's own description of its API (@octokit/openapi@23.0.2): every
// request body the client sends is validated against the operation's requestBody schema by
// tests/host/contract.mjs, which answers with the spec's examples (200/201, 405, 409, 422 and
// rate-limit answers), so the client's reading of those answers is checked too.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "service/host/github_host.hpp"
#include "tests/host/node_process.hpp"

using namespace tollgate::tests;
using namespace std::chrono_literals;
namespace host = tollgate::service::host;

namespace {

struct Contract {
  Contract() : server({std::string(TOLLGATE_SOURCE_DIR) + "/tests/host/contract.mjs", "serve"}), url(server.ready()["url"].get<std::string>()) {}
  NodeProcess server;
  std::string url;
  host::HttpClient control{host::HttpClientOptions{.max_attempts = 1, .etag_cache_entries = 0}};

  // The answer to the next API request: the spec's example for `status` unless `body` is given.
  void next(int status, const nlohmann::json& headers = nlohmann::json::object(), const nlohmann::json& body = nullptr) {
    nlohmann::json n = {{"status", status}, {"headers", headers}};
    if (!body.is_null()) n["body"] = body;
    auto r = control.request(host::HttpRequest{.method = "POST", .url = url + "/_contract/next", .body = n.dump()});
    if (!r || r->status != 200) throw std::runtime_error("contract: cannot queue an answer");
  }
  nlohmann::json log() {
    auto r = control.request(host::HttpRequest{.url = url + "/_contract/log"});
    if (!r) throw std::runtime_error("contract: no log");
    return nlohmann::json::parse(r->body);
  }
};

}  // namespace

TEST_CASE("the GitHub client's requests and its reading of answers match GitHub's API description", "[github][contract]") {
  Contract c;
  auto options = host::HttpClientOptions{.backoff_base = 10ms, .backoff_max = 50ms, .secondary_limit_min = 200ms};
  host::HttpClient client(options);
  host::GitHubHost gh(client, std::make_shared<host::StaticToken>("ghp_contract"), host::GitHubHostOptions{.api_url = c.url});
  const host::RepoRef repo{"octocat", "Hello-World"};

  // The spec's list example has no PR for this branch, so the PR is created: the spec's example
  // answer is PR 1347.
  auto pr = gh.create_pull_request(repo, host::NewPullRequest{.head = "tollgate/p/dev/1",
                                                              .base = "main",
                                                              .title = "Promote p 1.2.3 to dev",
                                                              .body = "Release 1.2.3",
                                                              .draft = true,
                                                              .labels = {"promotion"},
                                                              .reviewers = {"octocat"}});
  REQUIRE(pr);
  CHECK(pr->number == 1347);
  CHECK(pr->head_ref == "new-topic");
  CHECK(pr->head_sha == "6dcb09b5b57875f334f61aebed695e2e4193db5e");
  CHECK(pr->base_ref == "master");

  auto updated = gh.update_pull_request(repo, 1347, host::PullRequestUpdate{.title = "t", .body = "b", .base = "main"});
  REQUIRE(updated);
  REQUIRE(gh.close_pull_request(repo, 1347));

  SECTION("merge: 200, 405 and 409 as the spec's examples give them") {
    auto merged = gh.merge_pull_request(repo, 1347, pr->head_sha, host::MergeMethod::rebase, "Promote");
    REQUIRE(merged);
    CHECK(merged->outcome == host::MergeOutcome::merged);
    CHECK(merged->sha == "6dcb09b5b57875f334f61aebed695e2e4193db5e");
    c.next(405);
    auto blocked = gh.merge_pull_request(repo, 1347, pr->head_sha, host::MergeMethod::merge);
    REQUIRE(blocked);
    CHECK(blocked->outcome == host::MergeOutcome::not_mergeable);
    CHECK(blocked->message == "Pull Request is not mergeable");
    c.next(409);
    auto moved = gh.merge_pull_request(repo, 1347, pr->head_sha, host::MergeMethod::squash);
    REQUIRE(moved);
    CHECK(moved->outcome == host::MergeOutcome::head_moved);
    CHECK(moved->message == "Head branch was modified. Review and try the merge again.");
  }

  SECTION("422: GitHub's message and its errors[] entries") {
    c.next(422);
    auto failed = gh.update_pull_request(repo, 1347, host::PullRequestUpdate{.title = "x"});
    REQUIRE_FALSE(failed);
    CHECK(failed.error().kind == host::HostError::Kind::validation);
    CHECK(failed.error().message ==
          "PATCH /repos/octocat/Hello-World/pulls/1347: 422 Validation Failed: A pull request already exists for octocat:new-feature.");
  }

  SECTION("rate-limit answers: exhausted quota until reset, then retry-after") {
    const auto t0 = std::chrono::steady_clock::now();
    c.next(403, {{"x-ratelimit-remaining", "0"}, {"x-ratelimit-reset", "{now+1}"}});
    c.next(429, {{"retry-after", "1"}});
    auto got = gh.get_pull_request(repo, 1347);
    REQUIRE(got);
    CHECK(std::chrono::steady_clock::now() - t0 >= 1s);
    const auto rates = client.rate_limits();
    REQUIRE(rates.size() == 1);
    CHECK(rates.begin()->second.primary_waits == 1);
    CHECK(rates.begin()->second.secondary_waits == 1);
  }

  SECTION("comments, reactions, statuses and the reads") {
    auto comment = gh.upsert_sticky_comment(repo, 1347, "run-7", "stage dev: open");
    REQUIRE(comment);
    CHECK(comment->id == 1);
    REQUIRE(gh.add_reaction(repo, 1347, comment->id, "rocket"));
    REQUIRE(gh.set_commit_status(repo, pr->head_sha, host::CommitStatus{.state = "success", .context = "tollgate/gates",
                                                                         .description = "all gates passed", .target_url = "https://t.example/runs/7"}));
    auto checks = gh.get_checks(repo, pr->head_sha);
    REQUIRE(checks);
    CHECK(checks->combined_state == "success");
    CHECK_FALSE(checks->checks.empty());
    auto reviews = gh.list_reviews(repo, 1347);
    REQUIRE(reviews);
    REQUIRE_FALSE(reviews->empty());
    CHECK((*reviews)[0].state == "APPROVED");
    auto perm = gh.user_permission(repo, "octocat");
    REQUIRE(perm);
    CHECK(*perm == host::Permission::admin);
    auto member = gh.is_team_member("github", "justice-league", "octocat");
    REQUIRE(member);
    CHECK(*member);
    auto files = gh.list_changed_files(repo, 1347);
    REQUIRE(files);
    REQUIRE_FALSE(files->empty());
    CHECK((*files)[0].filename == "file1.txt");
  }

  // Every request the client sent was an operation of the spec with a valid body, and every
  // answer served (the spec's examples, or a synthesised error body) matched its schema.
  const auto log = c.log();
  CHECK(log.size() >= 6);
  for (const auto& entry : log) {
    INFO(entry.dump());
    CHECK(entry["template"].is_string());
    CHECK(entry["request_errors"].is_null());
    CHECK(entry["response_errors"].is_null());
    CHECK(entry["auth"] == true);
  }
}

TEST_CASE("GitHub App auth follows the spec: the installation token answer is read and an expired one renewed", "[github][contract][app]") {
  Contract c;
  const auto dir = make_temp_dir("tollgate-app-");
  REQUIRE(std::system(("openssl genrsa -out " + (dir / "app.pem").string() + " 2048 >/dev/null 2>&1").c_str()) == 0);
  std::ifstream in(dir / "app.pem");
  const std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::filesystem::remove_all(dir);

  host::HttpClient client(host::HttpClientOptions{.backoff_base = 10ms, .backoff_max = 50ms});
  auto app = std::make_shared<host::GitHubAppToken>(
      client, host::GitHubAppOptions{.api_url = c.url, .app_id = "Iv1.8a61f9b3a7aba766", .private_key_pem = pem, .installation_id = 1});
  auto token = app->token();
  REQUIRE(token);
  CHECK(*token == "ghs_16C7e42F292c6912E7710c838347Ae178B4a");  // the spec's example
  // The example's expires_at (2016) is long past: the next call asks for a new token.
  host::GitHubHost gh(client, app, host::GitHubHostOptions{.api_url = c.url});
  REQUIRE(gh.get_pull_request(host::RepoRef{"octocat", "Hello-World"}, 1347));

  const auto log = c.log();
  REQUIRE(log.size() == 3);
  CHECK(log[0]["template"] == "/app/installations/{installation_id}/access_tokens");
  CHECK(log[1]["template"] == "/app/installations/{installation_id}/access_tokens");
  CHECK(log[2]["template"] == "/repos/{owner}/{repo}/pulls/{pull_number}");
  for (const auto& entry : log) {
    INFO(entry.dump());
    CHECK(entry["request_errors"].is_null());
    CHECK(entry["auth"] == true);
  }
}
