// GitLabHost against tests/host/fixture_server.mjs answering with bodies written from GitLab's REST
// API documentation (tests/fixtures/hosts/gitlab/, sources in the README there): every Host
// method, what the client sends (endpoint, encoded project path, JSON fields, auth header) and how
// it reads GitLab's answers, errors included.
#include <catch2/catch.hpp>

#include "service/host/gitlab_host.hpp"
#include "tests/host/fixture_host.hpp"

using namespace tollgate::tests;
namespace host = tollgate::service::host;
using nlohmann::json;

namespace {

// A project in a nested group: its ID in URLs is the encoded full path.
const host::RepoRef repo{"acme/platform", "env-dev"};
const std::string project = "/projects/acme%2Fplatform%2Fenv-dev";
const std::string mrs = project + "/merge_requests";
const std::string mr7 = mrs + "/7";
const std::string head = "tollgate/payments/dev/1";
const std::string sha = "8888888888888888888888888888888888888888";

struct GitLab {
  explicit GitLab(const std::string& token = "s3cret", host::GitLabHostOptions::Auth auth = host::GitLabHostOptions::Auth::private_token)
      : server("gitlab"),
        gl(client, std::make_shared<host::StaticToken>(token), host::GitLabHostOptions{.api_url = server.api_url, .auth = auth}) {}
  FixtureHost server;
  host::HttpClient client{fixture_client_options()};
  host::GitLabHost gl;
};

host::NewPullRequest promotion() {
  return host::NewPullRequest{.head = head, .base = "main", .title = "Promote payments v2 to dev", .body = "Release v2"};
}

json by_branch(const std::string& state) { return {{"query", {{"state", state}, {"source_branch", head}}}}; }

}  // namespace

TEST_CASE("a GitLab merge request is found by source branch, opened first, then any state", "[gitlab]") {
  GitLab t;
  t.server.on("GET", mrs, 200, "gitlab/merge_requests_empty.json", by_branch("opened"));

  SECTION("none at all is nullopt") {
    t.server.on("GET", mrs, 200, "gitlab/merge_requests_empty.json", by_branch("all"));
    auto none = t.gl.find_pull_request(repo, head);
    REQUIRE(none);
    CHECK_FALSE(none->has_value());
    const auto sent = t.server.requests("GET", mrs);
    REQUIRE(sent.size() == 2);
    CHECK(sent[0]["query"]["state"] == "opened");
    CHECK(sent[0]["query"]["per_page"] == "100");
    CHECK(sent[1]["query"]["state"] == "all");
    CHECK(sent[0]["headers"]["private-token"] == "***");
    CHECK_FALSE(sent[0]["headers"].contains("authorization"));
  }

  SECTION("a closed one is found when none is open") {
    t.server.on("GET", mrs, 200, "gitlab/merge_requests_closed.json", by_branch("all"));
    auto found = t.gl.find_pull_request(repo, head);
    REQUIRE(found);
    REQUIRE(found->has_value());
    CHECK((*found)->number == 5);
    CHECK((*found)->state == "closed");
    CHECK_FALSE((*found)->merged);
  }

  SECTION("an open one is read with GitLab's field names") {
    t.server.on("GET", mrs, 200, "gitlab/merge_requests.json", by_branch("opened"));
    auto found = t.gl.find_pull_request(repo, head);
    REQUIRE(found);
    REQUIRE(found->has_value());
    const auto& pr = **found;
    CHECK(pr.number == 7);
    CHECK(pr.state == "open");
    CHECK(pr.head_ref == head);
    CHECK(pr.head_sha == sha);
    CHECK(pr.base_ref == "main");
    CHECK(pr.title == "Promote payments v2 to dev");
    CHECK(pr.body == "Release v2");
    CHECK(pr.author == "admin");
    CHECK(pr.html_url == "https://gitlab.example.com/acme/env-dev/-/merge_requests/7");
    CHECK(pr.mergeable == std::optional<bool>{true});
    CHECK(pr.mergeable_state == "mergeable");
    CHECK(pr.labels == std::vector<std::string>{"promotion"});
    CHECK(t.server.count("GET", mrs) == 1);  // no second list when one is open
  }
}

TEST_CASE("a GitLab merge request is created once, with labels, reviewer IDs and the Draft prefix", "[gitlab]") {
  GitLab t;
  t.server.on("GET", "/users", 200, "gitlab/users.json", {{"query", {{"username", "alice"}}}});

  SECTION("created when none is open") {
    t.server.on("GET", mrs, 200, "gitlab/merge_requests_empty.json", by_branch("opened"));
    t.server.on("POST", mrs, 201, "gitlab/merge_request.json");
    auto spec = promotion();
    spec.draft = true;
    spec.labels = {"promotion", "dev"};
    spec.reviewers = {"alice"};
    auto pr = t.gl.create_pull_request(repo, spec);
    REQUIRE(pr);
    CHECK(pr->number == 7);
    CHECK(pr->state == "open");
    CHECK(pr->created);
    const auto sent = t.server.last("POST", mrs);
    CHECK(sent["body"]["source_branch"] == head);
    CHECK(sent["body"]["target_branch"] == "main");
    CHECK(sent["body"]["title"] == "Draft: Promote payments v2 to dev");
    CHECK(sent["body"]["description"] == "Release v2");
    CHECK(sent["body"]["labels"] == "promotion,dev");
    CHECK(sent["body"]["reviewer_ids"] == json::array({2}));
    CHECK(sent["headers"]["content-type"] == "application/json");
    CHECK(sent["headers"]["private-token"] == "***");
  }

  SECTION("an open one is returned instead of a second, and only gets the labels and reviewers") {
    t.server.on("GET", mrs, 200, "gitlab/merge_requests.json", by_branch("opened"));
    auto plain = t.gl.create_pull_request(repo, promotion());
    REQUIRE(plain);
    CHECK(plain->number == 7);
    CHECK_FALSE(plain->created);
    CHECK(t.server.count("POST", mrs) == 0);
    CHECK(t.server.count("PUT", mr7) == 0);

    t.server.on("GET", mr7, 200, "gitlab/merge_request.json");
    t.server.on("GET", "/users", 200, "gitlab/users.json", {{"query", {{"username", "bob"}}}, {"patch", {{"id", 3}, {"username", "bob"}}}});
    t.server.on("PUT", mr7, 200, "gitlab/merge_request.json", {{"patch", {{"labels", {"promotion", "dev"}}}}});
    auto spec = promotion();
    spec.labels = {"promotion", "dev"};
    spec.reviewers = {"bob"};
    auto pr = t.gl.create_pull_request(repo, spec);
    REQUIRE(pr);
    CHECK(pr->number == 7);
    CHECK(pr->labels == std::vector<std::string>{"promotion", "dev"});
    CHECK(t.server.count("POST", mrs) == 0);
    const auto put = t.server.last("PUT", mr7);
    CHECK(put["body"]["labels"] == "promotion,dev");
    CHECK(put["body"]["reviewer_ids"] == json::array({2, 3}));  // alice kept, bob added
  }

  SECTION("a 409 from a create that raced another is answered with the open one") {
    t.server.on("GET", mrs, 200, "gitlab/merge_requests.json", by_branch("opened"));
    json once = by_branch("opened");
    once["once"] = true;
    t.server.on("GET", mrs, 200, "gitlab/merge_requests_empty.json", once);
    t.server.on("POST", mrs, 409, "gitlab/create_409.json");
    auto pr = t.gl.create_pull_request(repo, promotion());
    REQUIRE(pr);
    CHECK(pr->number == 7);
    CHECK(t.server.count("POST", mrs) == 1);
  }

  SECTION("an unknown reviewer is a validation error before anything is created") {
    t.server.on("GET", mrs, 200, "gitlab/merge_requests_empty.json", by_branch("opened"));
    t.server.on("GET", "/users", 200, "gitlab/users_empty.json", {{"query", {{"username", "nobody"}}}});
    auto spec = promotion();
    spec.reviewers = {"nobody"};
    auto pr = t.gl.create_pull_request(repo, spec);
    REQUIRE_FALSE(pr);
    CHECK(pr.error().kind == host::HostError::Kind::validation);
    CHECK(pr.error().message.find("'nobody'") != std::string::npos);
    CHECK(t.server.count("POST", mrs) == 0);
  }

  SECTION("GitLab's 400 validation messages come back as one line") {
    t.server.on("GET", mrs, 200, "gitlab/merge_requests_empty.json", by_branch("opened"));
    t.server.on("POST", mrs, 400, "gitlab/create_400.json");
    auto pr = t.gl.create_pull_request(repo, promotion());
    REQUIRE_FALSE(pr);
    CHECK(pr.error().kind == host::HostError::Kind::validation);
    CHECK(pr.error().status == 400);
    INFO(pr.error().message);
    CHECK(pr.error().message.find("target_branch is invalid") != std::string::npos);
    CHECK(pr.error().message.find("title can't be blank") != std::string::npos);
  }
}

TEST_CASE("a GitLab merge request is updated, read and closed", "[gitlab]") {
  GitLab t;

  SECTION("update sends GitLab's field names") {
    t.server.on("PUT", mr7, 200, "gitlab/merge_request.json", {{"patch", {{"title", "Promote payments v3 to dev"}}}});
    auto pr = t.gl.update_pull_request(repo, 7,
                                       host::PullRequestUpdate{.title = "Promote payments v3 to dev", .body = "Release v3", .base = "release",
                                                               .labels = std::vector<std::string>{}});
    REQUIRE(pr);
    CHECK(pr->title == "Promote payments v3 to dev");
    const auto put = t.server.last("PUT", mr7);
    CHECK(put["body"] == json{{"title", "Promote payments v3 to dev"}, {"description", "Release v3"}, {"target_branch", "release"}, {"labels", ""}});
  }

  SECTION("close") {
    t.server.on("PUT", mr7, 200, "gitlab/merge_request_closed.json");
    auto pr = t.gl.close_pull_request(repo, 7);
    REQUIRE(pr);
    CHECK(pr->state == "closed");
    CHECK_FALSE(pr->merged);
    CHECK(t.server.last("PUT", mr7)["body"] == json{{"state_event", "close"}});
  }

  SECTION("mergeability while GitLab checks, and a draft with conflicts") {
    t.server.on("GET", mr7, 200, "gitlab/merge_request_checking.json");
    auto checking = t.gl.get_pull_request(repo, 7);
    REQUIRE(checking);
    CHECK_FALSE(checking->mergeable.has_value());
    CHECK(checking->mergeable_state == "checking");

    t.server.on("GET", mr7, 200, "gitlab/merge_request_draft_conflict.json");
    auto draft = t.gl.get_pull_request(repo, 7);
    REQUIRE(draft);
    CHECK(draft->draft);
    CHECK(draft->mergeable == std::optional<bool>{false});
    CHECK(draft->mergeable_state == "conflict");

    t.server.on("GET", mr7, 200, "gitlab/merge_request_merged.json");
    auto merged = t.gl.get_pull_request(repo, 7);
    REQUIRE(merged);
    CHECK(merged->state == "closed");
    CHECK(merged->merged);
    CHECK(merged->merge_commit_sha == "9999999999999999999999999999999999999999");

    // Fast-forward: no merge or squash commit; the target branch is at the MR's head.
    t.server.on("GET", mr7, 200, "gitlab/merge_request_merged.json",
                {{"patch", {{"merge_commit_sha", nullptr}, {"squash_commit_sha", nullptr}}}});
    auto fast = t.gl.get_pull_request(repo, 7);
    REQUIRE(fast);
    CHECK(fast->merged);
    CHECK(fast->merge_commit_sha == fast->head_sha);
    CHECK_FALSE(fast->head_sha.empty());
  }

  SECTION("an answer without the fields tollgate needs is an error, not a crash") {
    t.server.on("GET", mr7, 200, "", {{"body", {{"id", 84}, {"title", "no iid"}}}});
    auto pr = t.gl.get_pull_request(repo, 7);
    REQUIRE_FALSE(pr);
    CHECK(pr.error().kind == host::HostError::Kind::other);
    CHECK(pr.error().message.find("'iid'") != std::string::npos);

    t.server.on("GET", mr7, 200, "", {{"text", "<html>maintenance</html>"}});
    auto html = t.gl.get_pull_request(repo, 7);
    REQUIRE_FALSE(html);
    CHECK(html.error().kind == host::HostError::Kind::other);
  }
}

TEST_CASE("GitLab merges bound to the head SHA: merged, not mergeable (405/406/422), head moved (409)", "[gitlab]") {
  GitLab t;
  const std::string merge = mr7 + "/merge";

  SECTION("merged, with the SHA and squash flag sent") {
    t.server.on("PUT", merge, 200, "gitlab/merge_request_merged.json");
    auto r = t.gl.merge_pull_request(repo, 7, sha, host::MergeMethod::merge);
    REQUIRE(r);
    CHECK(r->outcome == host::MergeOutcome::merged);
    CHECK(r->sha == "9999999999999999999999999999999999999999");
    CHECK(t.server.last("PUT", merge)["body"] == json{{"sha", sha}, {"squash", false}});

    REQUIRE(t.gl.merge_pull_request(repo, 7, sha, host::MergeMethod::squash, "Promote payments v2"));
    CHECK(t.server.last("PUT", merge)["body"] == json{{"sha", sha}, {"squash", true}, {"squash_commit_message", "Promote payments v2"}});
  }

  SECTION("405, 406 and 422 are not mergeable, with GitLab's message") {
    auto [status, fixture, message] = GENERATE(std::make_tuple(405, "gitlab/merge_405.json", "405 Method Not Allowed"),
                                               std::make_tuple(406, "gitlab/merge_406.json", "Branch cannot be merged"),
                                               std::make_tuple(422, "gitlab/merge_422.json", "Branch cannot be merged"));
    t.server.on("PUT", merge, status, fixture);
    t.server.on("GET", mr7, 200, "gitlab/merge_request.json");
    auto r = t.gl.merge_pull_request(repo, 7, sha, host::MergeMethod::merge);
    REQUIRE(r);
    CHECK(r->outcome == host::MergeOutcome::not_mergeable);
    CHECK(r->message == message);
  }

  SECTION("a 405 for a merge request already merged at that head (a lost answer) is merged") {
    t.server.on("PUT", merge, 405, "gitlab/merge_405.json");
    t.server.on("GET", mr7, 200, "gitlab/merge_request_merged.json");
    auto r = t.gl.merge_pull_request(repo, 7, sha, host::MergeMethod::merge);
    REQUIRE(r);
    CHECK(r->outcome == host::MergeOutcome::merged);
    CHECK(r->sha == "9999999999999999999999999999999999999999");
  }

  SECTION("409 is head moved") {
    t.server.on("PUT", merge, 409, "gitlab/merge_409.json");
    auto r = t.gl.merge_pull_request(repo, 7, "1111111111111111111111111111111111111111", host::MergeMethod::merge);
    REQUIRE(r);
    CHECK(r->outcome == host::MergeOutcome::head_moved);
    CHECK(r->message.find("SHA does not match HEAD of source branch") != std::string::npos);
  }

  SECTION("rebase is not a merge API option on GitLab: an error, nothing sent") {
    auto r = t.gl.merge_pull_request(repo, 7, sha, host::MergeMethod::rebase);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("'rebase'") != std::string::npos);
    CHECK(t.server.requests().empty());
  }
}

TEST_CASE("GitLab answers 401 for a bad token and 404 for what is not there", "[gitlab]") {
  SECTION("401 is unauthorized, sent once") {
    GitLab t("wrong-token");
    auto pr = t.gl.get_pull_request(repo, 7);
    REQUIRE_FALSE(pr);
    CHECK(pr.error().kind == host::HostError::Kind::unauthorized);
    CHECK(pr.error().status == 401);
    CHECK(pr.error().message.find("401 Unauthorized") != std::string::npos);
    CHECK(pr.error().message.find("wrong-token") == std::string::npos);
    CHECK(t.server.requests().size() == 1);
  }

  SECTION("a Bearer token is sent as Authorization") {
    GitLab t("s3cret", host::GitLabHostOptions::Auth::bearer);
    t.server.on("GET", mr7, 200, "gitlab/merge_request.json");
    REQUIRE(t.gl.get_pull_request(repo, 7));
    const auto sent = t.server.last("GET", mr7);
    CHECK(sent["headers"]["authorization"] == "Bearer ***");
    CHECK_FALSE(sent["headers"].contains("private-token"));
  }

  SECTION("404 is not_found, or nullopt for a file") {
    GitLab t;
    t.server.on("GET", project + "/merge_requests/99", 404, "gitlab/error_404.json");
    auto pr = t.gl.get_pull_request(repo, 99);
    REQUIRE_FALSE(pr);
    CHECK(pr.error().kind == host::HostError::Kind::not_found);
    CHECK(pr.error().message.find("404 Not found") != std::string::npos);

    t.server.on("GET", project + "/repository/files/missing.yaml/raw", 404, "gitlab/error_404.json");
    auto file = t.gl.read_file(repo, "missing.yaml", "main");
    REQUIRE(file);
    CHECK_FALSE(file->has_value());
  }
}

TEST_CASE("GitLab sticky notes, award emoji and commit statuses", "[gitlab]") {
  GitLab t;
  const std::string notes = mr7 + "/notes";

  SECTION("the sticky note is created once, then edited in place, and left alone when unchanged") {
    t.server.on("GET", notes, 200, "gitlab/notes.json");
    t.server.on("POST", notes, 201, "gitlab/note.json");
    auto first = t.gl.upsert_sticky_comment(repo, 7, "run-1", "stage dev: open");
    REQUIRE(first);
    CHECK(first->id == 306);
    CHECK(first->author == "tollgate-bot");
    CHECK(t.server.last("POST", notes)["body"]["body"] == "<!-- tollgate:run-1 -->\nstage dev: open");
    CHECK(t.server.last("GET", notes)["query"]["sort"] == "asc");

    t.server.on("GET", notes, 200, "gitlab/notes_sticky.json");  // what GitLab lists now
    t.server.on("PUT", notes + "/305", 200, "gitlab/note.json");
    auto second = t.gl.upsert_sticky_comment(repo, 7, "run-1", "stage dev: merging");
    REQUIRE(second);
    CHECK(second->id == 305);
    CHECK(second->body == "<!-- tollgate:run-1 -->\nstage dev: merging");
    CHECK(t.server.last("PUT", notes + "/305")["body"]["body"] == "<!-- tollgate:run-1 -->\nstage dev: merging");

    auto same = t.gl.upsert_sticky_comment(repo, 7, "run-1", "stage dev: open");
    REQUIRE(same);
    CHECK(same->id == 305);
    CHECK(t.server.count("POST", notes) == 1);
    CHECK(t.server.count("PUT", notes + "/305") == 1);
  }

  SECTION("a note whose answer was lost (502) is found by its marker instead of posted twice") {
    t.server.on("GET", notes, 200, "gitlab/notes_sticky.json");              // after the lost post
    t.server.on("GET", notes, 200, "gitlab/notes.json", {{"once", true}});   // before it
    t.server.on("POST", notes, 502, "", {{"text", "<html>502 Bad Gateway</html>"}, {"once", true}});
    auto c = t.gl.upsert_sticky_comment(repo, 7, "run-1", "stage dev: open");
    REQUIRE(c);
    CHECK(c->id == 305);
    CHECK(t.server.count("POST", notes) == 1);
    CHECK(t.server.count("GET", notes) == 2);
  }

  SECTION("reactions are award emoji on the note; a repeat is fine; unknown names are refused") {
    const std::string award = notes + "/305/award_emoji";
    t.server.on("POST", award, 201, "gitlab/award_emoji.json");
    REQUIRE(t.gl.add_reaction(repo, 7, 305, "+1"));
    CHECK(t.server.last("POST", award)["body"] == json{{"name", "thumbsup"}});
    REQUIRE(t.gl.add_reaction(repo, 7, 305, "hooray"));
    CHECK(t.server.last("POST", award)["body"] == json{{"name", "tada"}});

    t.server.on("POST", award, 404, "gitlab/award_emoji_404.json");
    CHECK(t.gl.add_reaction(repo, 7, 305, "+1"));

    auto bad = t.gl.add_reaction(repo, 7, 305, "party");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().kind == host::HostError::Kind::validation);
    CHECK(t.server.count("POST", award) == 3);

    t.server.on("POST", notes + "/999/award_emoji", 404, "gitlab/error_404.json");
    auto missing = t.gl.add_reaction(repo, 7, 999, "+1");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().kind == host::HostError::Kind::not_found);
  }

  SECTION("commit statuses use GitLab's states and names; a repeated state is not an error") {
    const std::string statuses = project + "/statuses/" + sha;
    t.server.on("POST", statuses, 201, "gitlab/commit_status.json");
    REQUIRE(t.gl.set_commit_status(repo, sha, host::CommitStatus{.state = "failure", .context = "tollgate/gates",
                                                                  .description = "gate 'soak' failed", .target_url = "https://t.example/runs/7"}));
    CHECK(t.server.last("POST", statuses)["body"] ==
          json{{"state", "failed"}, {"name", "tollgate/gates"}, {"description", "gate 'soak' failed"}, {"target_url", "https://t.example/runs/7"}});
    REQUIRE(t.gl.set_commit_status(repo, sha, host::CommitStatus{.state = "pending", .context = "tollgate/gates"}));
    CHECK(t.server.last("POST", statuses)["body"] == json{{"state", "pending"}, {"name", "tollgate/gates"}});

    t.server.on("POST", statuses, 400, "gitlab/commit_status_400.json");
    CHECK(t.gl.set_commit_status(repo, sha, host::CommitStatus{.state = "pending", .context = "tollgate/gates"}));

    t.server.on("POST", statuses, 400, "", {{"body", {{"message", {{"state", {"does not have a valid value"}}}}}}});
    auto bad = t.gl.set_commit_status(repo, sha, host::CommitStatus{.state = "success", .context = "tollgate/gates"});
    REQUIRE_FALSE(bad);
    CHECK(bad.error().kind == host::HostError::Kind::validation);

    auto unknown = t.gl.set_commit_status(repo, sha, host::CommitStatus{.state = "neutral", .context = "x"});
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error().kind == host::HostError::Kind::validation);
  }
}

TEST_CASE("GitLab reads: paged statuses and diffs, approvals, access levels, subgroup membership, raw files", "[gitlab]") {
  GitLab t;
  t.server.on("GET", "/users", 200, "gitlab/users.json", {{"query", {{"username", "alice"}}}});
  t.server.on("GET", "/users", 200, "gitlab/users_empty.json", {{"query", {{"username", "ghost"}}}});

  SECTION("statuses over two pages by Link, allow_failure not blocking") {
    const std::string statuses = project + "/repository/commits/" + sha + "/statuses";
    t.server.on("GET", statuses, 200, "gitlab/commit_statuses.json",
                {{"headers", {{"link", "<{api_url}" + statuses + "?page=2&per_page=100>; rel=\"next\""}, {"x-next-page", "2"}}}});
    t.server.on("GET", statuses, 200, "gitlab/commit_statuses_page2.json", {{"query", {{"page", "2"}}}});
    auto checks = t.gl.get_checks(repo, sha);
    REQUIRE(checks);
    REQUIRE(checks->checks.size() == 3);
    CHECK(checks->checks[0].name == "bundler:audit");
    CHECK(checks->checks[0].state == "failure");
    CHECK(checks->checks[1].state == "pending");
    CHECK(checks->checks[2].name == "tollgate/gates");
    CHECK(checks->checks[2].state == "success");
    CHECK(checks->combined_state == "pending");
    CHECK(t.server.count("GET", statuses) == 2);
  }

  SECTION("diffs over two pages by x-next-page alone") {
    const std::string diffs = mr7 + "/diffs";
    t.server.on("GET", diffs, 200, "gitlab/merge_request_diffs.json", {{"headers", {{"x-next-page", "2"}, {"x-page", "1"}}}});
    t.server.on("GET", diffs, 200, "gitlab/merge_request_diffs_page2.json", {{"query", {{"page", "2"}}}, {"headers", {{"x-next-page", ""}}}});
    auto files = t.gl.list_changed_files(repo, 7);
    REQUIRE(files);
    REQUIRE(files->size() == 4);
    CHECK((*files)[0].filename == "apps/payments/values.yaml");
    CHECK((*files)[0].status == "modified");
    CHECK((*files)[1].status == "added");
    CHECK((*files)[2].filename == "apps/new/values.yaml");
    CHECK((*files)[2].status == "renamed");
    CHECK((*files)[2].previous_filename == "apps/old/values.yaml");
    CHECK((*files)[3].status == "removed");
    const auto sent = t.server.requests("GET", diffs);
    REQUIRE(sent.size() == 2);
    CHECK(sent[1]["query"]["page"] == "2");
    CHECK(sent[1]["query"]["per_page"] == "100");
  }

  SECTION("approvals are APPROVED reviews") {
    t.server.on("GET", mr7 + "/approvals", 200, "gitlab/approvals.json");
    auto reviews = t.gl.list_reviews(repo, 7);
    REQUIRE(reviews);
    REQUIRE(reviews->size() == 1);
    CHECK((*reviews)[0].author == "alice");
    CHECK((*reviews)[0].state == "APPROVED");
    CHECK((*reviews)[0].id == 2);
  }

  SECTION("access levels map to permissions") {
    auto [level, expected] = GENERATE(std::make_pair(50, host::Permission::admin), std::make_pair(40, host::Permission::maintain),
                                      std::make_pair(30, host::Permission::write), std::make_pair(20, host::Permission::triage),
                                      std::make_pair(10, host::Permission::read), std::make_pair(5, host::Permission::none));
    t.server.on("GET", project + "/members/all/2", 200, "gitlab/member.json", {{"patch", {{"access_level", level}}}});
    auto p = t.gl.user_permission(repo, "alice");
    REQUIRE(p);
    CHECK(*p == expected);
  }

  SECTION("no member or no user is no permission") {
    t.server.on("GET", project + "/members/all/2", 404, "gitlab/error_404.json");
    auto p = t.gl.user_permission(repo, "alice");
    REQUIRE(p);
    CHECK(*p == host::Permission::none);
    auto ghost = t.gl.user_permission(repo, "ghost");
    REQUIRE(ghost);
    CHECK(*ghost == host::Permission::none);
  }

  SECTION("a team is the subgroup org/team; its direct members count") {
    const std::string member = "/groups/acme%2Fsre/members/2";
    t.server.on("GET", member, 200, "gitlab/member.json");
    auto yes = t.gl.is_team_member("acme", "sre", "alice");
    REQUIRE(yes);
    CHECK(*yes);
    t.server.on("GET", member, 404, "gitlab/error_404.json");
    auto no = t.gl.is_team_member("acme", "sre", "alice");
    REQUIRE(no);
    CHECK_FALSE(*no);
    t.server.on("GET", member, 404, "gitlab/error_404_group.json");
    auto wrong = t.gl.is_team_member("acme", "sre", "alice");
    REQUIRE_FALSE(wrong);
    CHECK(wrong.error().kind == host::HostError::Kind::not_found);
  }

  SECTION("a raw file at a ref, its path encoded as one segment") {
    const std::string file = project + "/repository/files/apps%2Fpayments%2Fvalues.yaml/raw";
    t.server.on("GET", file, 200, "", {{"text", "image:\n  tag: v1\n"}, {"query", {{"ref", "tollgate/payments/dev/1"}}}});
    auto text = t.gl.read_file(repo, "apps/payments/values.yaml", "tollgate/payments/dev/1");
    REQUIRE(text);
    REQUIRE(text->has_value());
    CHECK(**text == "image:\n  tag: v1\n");
  }
}
