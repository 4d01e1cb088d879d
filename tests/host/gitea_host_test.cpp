// GiteaHost against tests/host/fixture_server.mjs answering with bodies written from Gitea's API
// description (templates/swagger/v1_json.tmpl; tests/fixtures/hosts/gitea/, sources in the README
// there): every Host method, what the client sends and how it reads Gitea's answers.
#include <catch2/catch.hpp>

#include "service/host/gitea_host.hpp"
#include "tests/host/fixture_host.hpp"

using namespace tollgate::tests;
namespace host = tollgate::service::host;
using nlohmann::json;

namespace {

const host::RepoRef repo{"acme", "env-dev"};
const std::string base = "/repos/acme/env-dev";
const std::string pulls = base + "/pulls";
const std::string pull3 = pulls + "/3";
const std::string head = "tollgate/payments/dev/1";
const std::string sha = "8888888888888888888888888888888888888888";

struct Gitea {
  explicit Gitea(const std::string& token = "s3cret")
      : server("gitea"), gt(client, std::make_shared<host::StaticToken>(token), host::GiteaHostOptions{.api_url = server.api_url}) {}
  FixtureHost server;
  host::HttpClient client{fixture_client_options()};
  host::GiteaHost gt;
};

host::NewPullRequest promotion() {
  return host::NewPullRequest{.head = head, .base = "main", .title = "Promote payments v2 to dev", .body = "Release v2"};
}

json state(const std::string& s) { return {{"query", {{"state", s}}}}; }

}  // namespace

TEST_CASE("a Gitea pull request is found by head branch among open ones, then recently closed ones", "[gitea]") {
  Gitea t;
  t.server.on("GET", pulls, 200, "gitea/pulls_other.json", state("open"));

  SECTION("none for this branch is nullopt") {
    t.server.on("GET", pulls, 200, "gitea/pulls_empty.json", state("closed"));
    auto none = t.gt.find_pull_request(repo, head);
    REQUIRE(none);
    CHECK_FALSE(none->has_value());
    const auto sent = t.server.requests("GET", pulls);
    REQUIRE(sent.size() == 2);
    CHECK(sent[0]["query"]["state"] == "open");
    CHECK(sent[0]["query"]["limit"] == "50");
    CHECK(sent[1]["query"]["state"] == "closed");
    CHECK(sent[1]["query"]["sort"] == "recentupdate");
    CHECK(sent[0]["headers"]["authorization"] == "token ***");
  }

  SECTION("a closed one") {
    t.server.on("GET", pulls, 200, "gitea/pulls_closed.json", state("closed"));
    auto found = t.gt.find_pull_request(repo, head);
    REQUIRE(found);
    REQUIRE(found->has_value());
    CHECK((*found)->number == 1);
    CHECK((*found)->state == "closed");
  }

  SECTION("an open one on the second page (Link rel=next)") {
    t.server.on("GET", pulls, 200, "gitea/pulls_other.json",
                {{"query", {{"state", "open"}}}, {"headers", {{"link", "<{api_url}" + pulls + "?limit=50&page=2&state=open>; rel=\"next\""}}}});
    t.server.on("GET", pulls, 200, "gitea/pulls.json", {{"query", {{"state", "open"}, {"page", "2"}}}});
    auto found = t.gt.find_pull_request(repo, head);
    REQUIRE(found);
    REQUIRE(found->has_value());
    const auto& pr = **found;
    CHECK(pr.number == 3);
    CHECK(pr.state == "open");
    CHECK(pr.head_ref == head);
    CHECK(pr.head_sha == sha);
    CHECK(pr.base_ref == "main");
    CHECK(pr.author == "tollgate-bot");
    CHECK(pr.mergeable == std::optional<bool>{true});
    CHECK(pr.labels == std::vector<std::string>{"promotion"});
    CHECK(pr.html_url == "https://gitea.example.com/acme/env-dev/pulls/3");
    CHECK(t.server.count("GET", pulls) == 2);
  }
}

TEST_CASE("a Gitea pull request is created once, with label IDs, reviewers and the WIP prefix", "[gitea]") {
  Gitea t;
  t.server.on("GET", base + "/labels", 200, "gitea/labels.json");

  SECTION("created when none is open") {
    t.server.on("GET", pulls, 200, "gitea/pulls_empty.json", state("open"));
    t.server.on("POST", pulls, 201, "gitea/pull.json");
    t.server.on("POST", pull3 + "/requested_reviewers", 201, "gitea/review_requests.json");
    t.server.on("GET", pull3, 200, "gitea/pull.json");
    auto spec = promotion();
    spec.draft = true;
    spec.labels = {"promotion", "dev"};
    spec.reviewers = {"alice"};
    auto pr = t.gt.create_pull_request(repo, spec);
    REQUIRE(pr);
    CHECK(pr->number == 3);
    CHECK(pr->created);  // kept through the follow-up request for reviewers
    const auto sent = t.server.last("POST", pulls);
    CHECK(sent["body"] == json{{"head", head}, {"base", "main"}, {"title", "WIP: Promote payments v2 to dev"}, {"body", "Release v2"}, {"labels", {11, 12}}});
    CHECK(sent["headers"]["authorization"] == "token ***");
    CHECK(t.server.last("POST", pull3 + "/requested_reviewers")["body"] == json{{"reviewers", {"alice"}}});
  }

  SECTION("an open one is returned instead of a second") {
    t.server.on("GET", pulls, 200, "gitea/pulls.json", state("open"));
    auto pr = t.gt.create_pull_request(repo, promotion());
    REQUIRE(pr);
    CHECK(pr->number == 3);
    CHECK_FALSE(pr->created);
    CHECK(t.server.count("POST", pulls) == 0);
    CHECK(t.server.requests().size() == 1);
  }

  SECTION("a 409 from a create that raced another is answered with the open one") {
    t.server.on("GET", pulls, 200, "gitea/pulls.json", state("open"));
    t.server.on("GET", pulls, 200, "gitea/pulls_empty.json", {{"query", {{"state", "open"}}}, {"once", true}});
    t.server.on("POST", pulls, 409, "gitea/create_409.json");
    auto pr = t.gt.create_pull_request(repo, promotion());
    REQUIRE(pr);
    CHECK(pr->number == 3);
    CHECK(t.server.count("POST", pulls) == 1);
  }

  SECTION("a label the repository does not have is refused before anything is created") {
    t.server.on("GET", pulls, 200, "gitea/pulls_empty.json", state("open"));
    auto spec = promotion();
    spec.labels = {"no-such-label"};
    auto pr = t.gt.create_pull_request(repo, spec);
    REQUIRE_FALSE(pr);
    CHECK(pr.error().kind == host::HostError::Kind::validation);
    CHECK(pr.error().message.find("'no-such-label'") != std::string::npos);
    CHECK(t.server.count("POST", pulls) == 0);
  }

  SECTION("Gitea's 422 comes back as validation with its message") {
    t.server.on("GET", pulls, 200, "gitea/pulls_empty.json", state("open"));
    t.server.on("POST", pulls, 422, "gitea/validation_422.json");
    auto spec = promotion();
    spec.base = "";
    auto pr = t.gt.create_pull_request(repo, spec);
    REQUIRE_FALSE(pr);
    CHECK(pr.error().kind == host::HostError::Kind::validation);
    CHECK(pr.error().status == 422);
    CHECK(pr.error().message.find("[Base]: Required") != std::string::npos);
  }
}

TEST_CASE("a Gitea pull request is updated, read and closed", "[gitea]") {
  Gitea t;

  SECTION("update: fields by PATCH, labels replaced by ID, reviewers requested") {
    t.server.on("PATCH", pull3, 201, "gitea/pull.json", {{"patch", {{"title", "Promote payments v3 to dev"}}}});
    t.server.on("GET", base + "/labels", 200, "gitea/labels.json");
    t.server.on("PUT", base + "/issues/3/labels", 200, "gitea/labels.json");
    t.server.on("POST", pull3 + "/requested_reviewers", 201, "gitea/review_requests.json");
    auto pr = t.gt.update_pull_request(repo, 3,
                                       host::PullRequestUpdate{.title = "Promote payments v3 to dev", .body = "Release v3", .base = "release",
                                                               .labels = std::vector<std::string>{"dev"}, .reviewers = {"alice"}});
    REQUIRE(pr);
    CHECK(pr->title == "Promote payments v3 to dev");
    CHECK(pr->labels == std::vector<std::string>{"dev"});
    CHECK(t.server.last("PATCH", pull3)["body"] == json{{"title", "Promote payments v3 to dev"}, {"body", "Release v3"}, {"base", "release"}});
    CHECK(t.server.last("PUT", base + "/issues/3/labels")["body"] == json{{"labels", {12}}});
    CHECK(t.server.last("POST", pull3 + "/requested_reviewers")["body"] == json{{"reviewers", {"alice"}}});
  }

  SECTION("close") {
    t.server.on("PATCH", pull3, 201, "gitea/pull_closed.json");
    auto pr = t.gt.close_pull_request(repo, 3);
    REQUIRE(pr);
    CHECK(pr->state == "closed");
    CHECK(t.server.last("PATCH", pull3)["body"] == json{{"state", "closed"}});
  }

  SECTION("a WIP pull request is a draft") {
    t.server.on("GET", pull3, 200, "gitea/pull_wip.json");
    auto pr = t.gt.get_pull_request(repo, 3);
    REQUIRE(pr);
    CHECK(pr->draft);
    CHECK(pr->mergeable == std::optional<bool>{false});
    t.server.on("GET", pull3, 200, "gitea/pull_wip.json", {{"patch", {{"draft", nullptr}}}});  // versions without "draft"
    auto old = t.gt.get_pull_request(repo, 3);
    REQUIRE(old);
    CHECK(old->draft);
  }

  SECTION("an answer without the fields tollgate needs is an error, not a crash") {
    t.server.on("GET", pull3, 200, "gitea/pull.json", {{"patch", {{"head", nullptr}}}});
    auto pr = t.gt.get_pull_request(repo, 3);
    REQUIRE_FALSE(pr);
    CHECK(pr.error().kind == host::HostError::Kind::other);
    CHECK(pr.error().message.find("'head'") != std::string::npos);
  }
}

TEST_CASE("Gitea merges bound to the head commit: merged, not mergeable (405), head moved (409)", "[gitea]") {
  Gitea t;
  const std::string merge = pull3 + "/merge";

  SECTION("merged: the merge commit is read from the pull request") {
    t.server.on("POST", merge, 200, "", {{"text", ""}});
    t.server.on("GET", pull3, 200, "gitea/pull_merged.json");
    auto r = t.gt.merge_pull_request(repo, 3, sha, host::MergeMethod::squash, "Promote payments v2");
    REQUIRE(r);
    CHECK(r->outcome == host::MergeOutcome::merged);
    CHECK(r->sha == "9999999999999999999999999999999999999999");
    CHECK(t.server.last("POST", merge)["body"] == json{{"Do", "squash"}, {"head_commit_id", sha}, {"MergeTitleField", "Promote payments v2"}});
    REQUIRE(t.gt.merge_pull_request(repo, 3, sha, host::MergeMethod::rebase));
    CHECK(t.server.last("POST", merge)["body"]["Do"] == "rebase");
  }

  SECTION("405 is not mergeable with Gitea's message") {
    t.server.on("POST", merge, 405, "gitea/merge_405.json");
    t.server.on("GET", pull3, 200, "gitea/pull.json");
    auto r = t.gt.merge_pull_request(repo, 3, sha, host::MergeMethod::merge);
    REQUIRE(r);
    CHECK(r->outcome == host::MergeOutcome::not_mergeable);
    CHECK(r->message == "Not all required status checks successful");
  }

  SECTION("a 405 without a body (as the swagger documents it) is not mergeable too") {
    t.server.on("POST", merge, 405, "", {{"text", ""}});
    t.server.on("GET", pull3, 200, "gitea/pull.json");
    auto r = t.gt.merge_pull_request(repo, 3, sha, host::MergeMethod::merge);
    REQUIRE(r);
    CHECK(r->outcome == host::MergeOutcome::not_mergeable);
    CHECK(r->message == "http 405");
  }

  SECTION("a 405 for a pull request already merged at that head is merged") {
    t.server.on("POST", merge, 405, "gitea/merge_405.json");
    t.server.on("GET", pull3, 200, "gitea/pull_merged.json");
    auto r = t.gt.merge_pull_request(repo, 3, sha, host::MergeMethod::merge);
    REQUIRE(r);
    CHECK(r->outcome == host::MergeOutcome::merged);
  }

  SECTION("409 is head moved") {
    t.server.on("POST", merge, 409, "gitea/merge_409.json");
    auto r = t.gt.merge_pull_request(repo, 3, "1111111111111111111111111111111111111111", host::MergeMethod::merge);
    REQUIRE(r);
    CHECK(r->outcome == host::MergeOutcome::head_moved);
    CHECK(r->message == "head out of date");
    CHECK(t.server.count("GET", pull3) == 0);
  }
}

TEST_CASE("Gitea answers 401 for a bad token and 404 for what is not there", "[gitea]") {
  SECTION("401 is unauthorized, sent once") {
    Gitea t("wrong-token");
    auto pr = t.gt.get_pull_request(repo, 3);
    REQUIRE_FALSE(pr);
    CHECK(pr.error().kind == host::HostError::Kind::unauthorized);
    CHECK(pr.error().status == 401);
    CHECK(pr.error().message.find("wrong-token") == std::string::npos);
    CHECK(t.server.requests().size() == 1);
  }

  SECTION("404 is not_found, or nullopt for a file, or none for a permission") {
    Gitea t;
    t.server.on("GET", pulls + "/99", 404, "gitea/error_404.json");
    auto pr = t.gt.get_pull_request(repo, 99);
    REQUIRE_FALSE(pr);
    CHECK(pr.error().kind == host::HostError::Kind::not_found);
    CHECK(pr.error().message.find("The target couldn't be found.") != std::string::npos);

    t.server.on("GET", base + "/raw/missing.yaml", 404, "gitea/error_404.json");
    auto file = t.gt.read_file(repo, "missing.yaml", "main");
    REQUIRE(file);
    CHECK_FALSE(file->has_value());

    t.server.on("GET", base + "/collaborators/ghost/permission", 404, "gitea/error_404.json");
    auto p = t.gt.user_permission(repo, "ghost");
    REQUIRE(p);
    CHECK(*p == host::Permission::none);
  }
}

TEST_CASE("Gitea sticky comments, reactions and commit statuses", "[gitea]") {
  Gitea t;
  const std::string comments = base + "/issues/3/comments";

  SECTION("the sticky comment is created once, then edited in place, and left alone when unchanged") {
    t.server.on("GET", comments, 200, "gitea/comments.json");
    t.server.on("POST", comments, 201, "gitea/comment.json");
    auto first = t.gt.upsert_sticky_comment(repo, 3, "run-1", "stage dev: open");
    REQUIRE(first);
    CHECK(first->id == 406);
    CHECK(t.server.last("POST", comments)["body"] == json{{"body", "<!-- tollgate:run-1 -->\nstage dev: open"}});

    t.server.on("GET", comments, 200, "gitea/comments_sticky.json");
    t.server.on("PATCH", base + "/issues/comments/405", 200, "gitea/comment.json");
    auto second = t.gt.upsert_sticky_comment(repo, 3, "run-1", "stage dev: merging");
    REQUIRE(second);
    CHECK(second->id == 405);
    CHECK(t.server.last("PATCH", base + "/issues/comments/405")["body"] == json{{"body", "<!-- tollgate:run-1 -->\nstage dev: merging"}});

    auto same = t.gt.upsert_sticky_comment(repo, 3, "run-1", "stage dev: open");
    REQUIRE(same);
    CHECK(same->id == 405);
    CHECK(t.server.count("POST", comments) == 1);
    CHECK(t.server.count("PATCH", base + "/issues/comments/405") == 1);
  }

  SECTION("a comment whose answer was lost (502) is found by its marker instead of posted twice") {
    t.server.on("GET", comments, 200, "gitea/comments_sticky.json");
    t.server.on("GET", comments, 200, "gitea/comments.json", {{"once", true}});
    t.server.on("POST", comments, 502, "", {{"text", "Bad Gateway"}, {"once", true}});
    auto c = t.gt.upsert_sticky_comment(repo, 3, "run-1", "stage dev: open");
    REQUIRE(c);
    CHECK(c->id == 405);
    CHECK(t.server.count("POST", comments) == 1);
  }

  SECTION("reactions: created, repeated, refused") {
    const std::string reactions = base + "/issues/comments/405/reactions";
    t.server.on("POST", reactions, 201, "gitea/reaction.json");
    REQUIRE(t.gt.add_reaction(repo, 3, 405, "+1"));
    CHECK(t.server.last("POST", reactions)["body"] == json{{"content", "+1"}});
    t.server.on("POST", reactions, 200, "gitea/reaction.json");
    REQUIRE(t.gt.add_reaction(repo, 3, 405, "+1"));
    t.server.on("POST", reactions, 403, "gitea/error_403.json");
    auto refused = t.gt.add_reaction(repo, 3, 405, "party");
    REQUIRE_FALSE(refused);
    CHECK(refused.error().kind == host::HostError::Kind::forbidden);
  }

  SECTION("a commit status is sent with tollgate's states as they are") {
    t.server.on("POST", base + "/statuses/" + sha, 201, "gitea/status.json");
    REQUIRE(t.gt.set_commit_status(repo, sha, host::CommitStatus{.state = "failure", .context = "tollgate/gates",
                                                                  .description = "gate 'soak' failed", .target_url = "https://t.example/runs/7"}));
    CHECK(t.server.last("POST", base + "/statuses/" + sha)["body"] ==
          json{{"state", "failure"}, {"context", "tollgate/gates"}, {"description", "gate 'soak' failed"}, {"target_url", "https://t.example/runs/7"}});
  }
}

TEST_CASE("Gitea reads: combined status, reviews, permissions, teams by name, raw files, PR files", "[gitea]") {
  Gitea t;

  SECTION("the combined status; warning does not pass") {
    const std::string status = base + "/commits/" + sha + "/status";
    t.server.on("GET", status, 200, "gitea/combined_status.json");
    auto checks = t.gt.get_checks(repo, sha);
    REQUIRE(checks);
    CHECK(checks->combined_state == "pending");
    REQUIRE(checks->checks.size() == 2);
    CHECK(checks->checks[0].name == "ci/build");
    CHECK(checks->checks[0].state == "success");
    CHECK(checks->checks[1].state == "pending");
    t.server.on("GET", status, 200, "gitea/combined_status_warning.json");
    auto warning = t.gt.get_checks(repo, sha);
    REQUIRE(warning);
    CHECK(warning->combined_state == "failure");
  }

  SECTION("reviews in GitHub's vocabulary; review requests left out") {
    t.server.on("GET", pull3 + "/reviews", 200, "gitea/reviews.json");
    auto reviews = t.gt.list_reviews(repo, 3);
    REQUIRE(reviews);
    REQUIRE(reviews->size() == 3);
    CHECK((*reviews)[0].author == "alice");
    CHECK((*reviews)[0].state == "APPROVED");
    CHECK((*reviews)[0].commit_id == sha);
    CHECK((*reviews)[1].state == "DISMISSED");
    CHECK((*reviews)[2].state == "COMMENTED");
  }

  SECTION("collaborator permissions") {
    auto [permission, expected] = GENERATE(std::make_pair("owner", host::Permission::admin), std::make_pair("admin", host::Permission::admin),
                                           std::make_pair("write", host::Permission::write), std::make_pair("read", host::Permission::read),
                                           std::make_pair("none", host::Permission::none));
    t.server.on("GET", base + "/collaborators/alice/permission", 200, "gitea/permission.json", {{"patch", {{"permission", permission}}}});
    auto p = t.gt.user_permission(repo, "alice");
    REQUIRE(p);
    CHECK(*p == expected);
  }

  SECTION("a team is found by name across pages, then its membership is asked") {
    t.server.on("GET", "/orgs/acme/teams", 200, "gitea/teams.json",
                {{"headers", {{"link", "<{api_url}/orgs/acme/teams?limit=50&page=2>; rel=\"next\", <{api_url}/orgs/acme/teams?limit=50&page=2>; rel=\"last\""}}}});
    t.server.on("GET", "/orgs/acme/teams", 200, "gitea/teams_page2.json", {{"query", {{"page", "2"}}}});
    t.server.on("GET", "/teams/6/members/alice", 200, "gitea/user.json");
    auto yes = t.gt.is_team_member("acme", "sre", "alice");
    REQUIRE(yes);
    CHECK(*yes);
    t.server.on("GET", "/teams/6/members/alice", 404, "gitea/error_404.json");
    auto no = t.gt.is_team_member("acme", "sre", "alice");
    REQUIRE(no);
    CHECK_FALSE(*no);
    auto unknown = t.gt.is_team_member("acme", "no-such-team", "alice");
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error().kind == host::HostError::Kind::not_found);
  }

  SECTION("a raw file at a ref") {
    t.server.on("GET", base + "/raw/apps/payments/values.yaml", 200, "", {{"text", "image:\n  tag: v1\n"}, {"query", {{"ref", head}}}});
    auto text = t.gt.read_file(repo, "apps/payments/values.yaml", head);
    REQUIRE(text);
    REQUIRE(text->has_value());
    CHECK(**text == "image:\n  tag: v1\n");
  }

  SECTION("the files of a pull request") {
    t.server.on("GET", pull3 + "/files", 200, "gitea/changed_files.json");
    auto files = t.gt.list_changed_files(repo, 3);
    REQUIRE(files);
    REQUIRE(files->size() == 4);
    CHECK((*files)[0].status == "modified");
    CHECK((*files)[1].status == "added");
    CHECK((*files)[2].status == "renamed");
    CHECK((*files)[2].previous_filename == "apps/old/values.yaml");
    CHECK((*files)[3].status == "removed");
  }
}
