// GitLab normaliser over the go-playground/webhooks example deliveries and the files derived from
// them (tests/fixtures/webhooks/README.md).
#include <string>
#include <vector>

#include "helpers.hpp"

using namespace tollgate::webhooks;
using namespace tollgate::webhooks::test;
using nlohmann::json;

namespace {
constexpr auto kGitLab = HostKind::gitlab;
constexpr const char* kMergeRequestHook = "Merge Request Hook";

json gitlab(std::string_view name) { return fixture("gitlab", name); }
}  // namespace

TEST_CASE("an opened merge request carries iid, branches, last commit and its author", "[webhooks][gitlab]") {
  std::string repo;
  auto pe = require_payload<PullRequestEvent>(kGitLab, kMergeRequestHook, gitlab("merge-request-event.json"), &repo);
  CHECK(repo == "gitlabhq/gitlab-test");
  CHECK(pe.action == PullRequestEvent::Action::opened);
  CHECK(pe.pr.number == 1);
  CHECK(pe.pr.url == "http://example.com/diaspora/merge_requests/1");
  CHECK(pe.pr.title == "MS-Viewport");
  CHECK(pe.pr.head_ref == "ms-viewport");
  CHECK(pe.pr.head_sha == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
  CHECK(pe.pr.base_ref == "master");
  CHECK(pe.pr.author == Actor{"root", false});  // whoever opens a merge request is its author
  CHECK(pe.sender == Actor{"root", false});
}

TEST_CASE("GitLab merge request actions map to merged, closed, head changed or nothing", "[webhooks][gitlab]") {
  auto merged = require_payload<PullRequestEvent>(kGitLab, kMergeRequestHook, gitlab("merge-request-merge-event.json"));
  CHECK(merged.action == PullRequestEvent::Action::merged);
  CHECK(merged.merge_sha == "8b4e5e4a0f4b1c2d3e4f5a6b7c8d9e0f1a2b3c4d");
  CHECK(merged.sender == Actor{"root", false});
  CHECK(merged.pr.author.login.empty());  // merge request hooks name the author only by id

  CHECK(require_payload<PullRequestEvent>(kGitLab, kMergeRequestHook, gitlab("merge-request-close-event.json")).action ==
        PullRequestEvent::Action::closed_unmerged);
  auto update = require_payload<PullRequestEvent>(kGitLab, kMergeRequestHook, gitlab("merge-request-update-event.json"));
  CHECK(update.action == PullRequestEvent::Action::head_changed);
  CHECK(update.pr.head_sha == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");

  SECTION("an update without oldrev changed no code: ignored") {
    auto payload = gitlab("merge-request-update-event.json");
    payload["object_attributes"].erase("oldrev");
    require_ignored(kGitLab, kMergeRequestHook, payload);
  }
  SECTION("reopen is an opening") {
    auto payload = gitlab("merge-request-event.json");
    payload["object_attributes"]["action"] = "reopen";
    auto pe = require_payload<PullRequestEvent>(kGitLab, kMergeRequestHook, payload);
    CHECK(pe.action == PullRequestEvent::Action::opened);
    CHECK(pe.pr.author.login.empty());  // the reopener need not be the author
  }
  SECTION("a squash merge (merge_commit_sha null) carries the squash commit") {
    auto payload = gitlab("merge-request-merge-event.json");
    payload["object_attributes"]["merge_commit_sha"] = nullptr;
    payload["object_attributes"]["squash_commit_sha"] = "1111111111111111111111111111111111111111";
    CHECK(require_payload<PullRequestEvent>(kGitLab, kMergeRequestHook, payload).merge_sha ==
          "1111111111111111111111111111111111111111");
  }
  SECTION("a fast-forward merge (neither merge_commit_sha nor squash_commit_sha) merged the MR's head") {
    auto payload = gitlab("merge-request-merge-event.json");
    payload["object_attributes"]["merge_commit_sha"] = nullptr;
    payload["object_attributes"]["squash_commit_sha"] = nullptr;
    auto pe = require_payload<PullRequestEvent>(kGitLab, kMergeRequestHook, payload);
    CHECK_FALSE(pe.pr.head_sha.empty());
    CHECK(pe.merge_sha == pe.pr.head_sha);
  }
}

TEST_CASE("GitLab approvals become reviews", "[webhooks][gitlab]") {
  auto payload = gitlab("merge-request-approval-event.json");
  for (const char* action : {"approval", "approved"}) {
    payload["object_attributes"]["action"] = action;
    auto re = require_payload<ReviewEvent>(kGitLab, kMergeRequestHook, payload);
    CHECK(re.state == ReviewEvent::State::approved);
    CHECK(re.author == Actor{"root", false});
    CHECK(re.pr.number == 1);
    CHECK(re.commit_sha == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
  }
  for (const char* action : {"unapproval", "unapproved"}) {
    payload["object_attributes"]["action"] = action;
    CHECK(require_payload<ReviewEvent>(kGitLab, kMergeRequestHook, payload).state == ReviewEvent::State::dismissed);
  }
}

TEST_CASE("a note on a merge request becomes a comment event", "[webhooks][gitlab]") {
  auto payload = gitlab("comment-merge-request-event.json");
  std::string repo;
  auto ce = require_payload<CommentEvent>(kGitLab, "Note Hook", payload, &repo);
  CHECK(repo == "gitlab-org/gitlab-test");
  CHECK(ce.pr.number == 1);
  // This merge_request object has no url: the note's URL without its anchor.
  CHECK(ce.pr.url == "http://example.com/gitlab-org/gitlab-test/merge_requests/1");
  CHECK(ce.pr.title == "Tempora et eos debitis quae laborum et.");
  CHECK(ce.pr.head_ref == "master");
  CHECK(ce.pr.base_ref == "markdown");
  CHECK(ce.pr.head_sha == "562e173be03b8ff2efb05345d12df18815438a4b");
  CHECK(ce.comment_id == 1244);
  CHECK(ce.author == Actor{"root", false});
  CHECK(ce.body == "This MR needs work.");

  SECTION("the merge request's own url wins") {
    payload["merge_request"]["url"] = "http://example.com/gitlab-org/gitlab-test/-/merge_requests/1";
    CHECK(require_payload<CommentEvent>(kGitLab, "Note Hook", payload).pr.url ==
          "http://example.com/gitlab-org/gitlab-test/-/merge_requests/1");
  }
  SECTION("edited notes and system notes are ignored") {
    payload["object_attributes"]["action"] = "update";
    require_ignored(kGitLab, "Note Hook", payload);
    payload["object_attributes"]["action"] = "create";
    CHECK(require_payload<CommentEvent>(kGitLab, "Note Hook", payload).body == "This MR needs work.");
    payload["object_attributes"]["system"] = true;
    require_ignored(kGitLab, "Note Hook", payload);
  }
  SECTION("bot users: project and group access tokens") {
    payload["user"]["username"] = "project_278964_bot_3b2f5e1c";
    CHECK(require_payload<CommentEvent>(kGitLab, "Note Hook", payload).author.bot);
    payload["user"]["username"] = "group_9970_bot2";
    CHECK(require_payload<CommentEvent>(kGitLab, "Note Hook", payload).author.bot);
    payload["user"]["username"] = "project_manager";
    CHECK_FALSE(require_payload<CommentEvent>(kGitLab, "Note Hook", payload).author.bot);
  }
}

TEST_CASE("notes on issues and commits are ignored", "[webhooks][gitlab]") {
  require_ignored(kGitLab, "Note Hook", gitlab("comment-issue-event.json"));
  require_ignored(kGitLab, "Note Hook", gitlab("comment-commit-event.json"));
}

TEST_CASE("a pipeline becomes a status named after the pipeline", "[webhooks][gitlab]") {
  auto payload = gitlab("pipeline-event.json");
  std::string repo;
  auto se = require_payload<StatusEvent>(kGitLab, "Pipeline Hook", payload, &repo);
  CHECK(repo == "gitlab-org/gitlab-test");
  CHECK(se.sha == "bcbb5ec396a2c0f828686f14fac9b80b780504f2");
  CHECK(se.name == "pipeline_name");
  CHECK(se.state == StatusEvent::State::success);
  CHECK(se.url == "http://192.168.64.1:3005/gitlab-org/gitlab-test/-/pipelines/31");
  CHECK_FALSE(se.check_run);

  SECTION("an unnamed pipeline is gitlab-ci") {
    payload["object_attributes"].erase("name");
    CHECK(require_payload<StatusEvent>(kGitLab, "Pipeline Hook", payload).name == "gitlab-ci");
    payload["object_attributes"]["name"] = nullptr;
    CHECK(require_payload<StatusEvent>(kGitLab, "Pipeline Hook", payload).name == "gitlab-ci");
  }
  SECTION("pipeline statuses") {
    auto [status, expected] = GENERATE(table<const char*, StatusEvent::State>({
        {"success", StatusEvent::State::success},
        {"failed", StatusEvent::State::failure},
        {"canceled", StatusEvent::State::cancelled},
        {"skipped", StatusEvent::State::skipped},
        {"running", StatusEvent::State::pending},
        {"pending", StatusEvent::State::pending},
        {"created", StatusEvent::State::pending},
        {"manual", StatusEvent::State::pending},
        {"waiting_for_resource", StatusEvent::State::pending},
    }));
    payload["object_attributes"]["status"] = status;
    CHECK(require_payload<StatusEvent>(kGitLab, "Pipeline Hook", payload).state == expected);
  }
  SECTION("an unknown status is an error naming it") {
    payload["object_attributes"]["status"] = "exploded";
    CHECK(require_error(kGitLab, "Pipeline Hook", payload) == "object_attributes.status: unknown value 'exploded'");
  }
}

TEST_CASE("a GitLab push carries its files and says when GitLab cut the list short", "[webhooks][gitlab]") {
  std::string repo;
  auto pe = require_payload<PushEvent>(kGitLab, "Push Hook", gitlab("push-event.json"), &repo);
  CHECK(repo == "mike/diaspora");
  CHECK(pe.ref == "refs/heads/master");
  CHECK(pe.before == "95790bf891e76fee5e1747ab589903a6a1f80f22");
  CHECK(pe.after == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
  CHECK(pe.changed_files == std::vector<std::string>{"CHANGELOG", "app/controller/application.rb"});
  CHECK_FALSE(pe.changed_files_complete);  // total_commits_count 4, 2 listed
  CHECK(pe.pusher.login.empty());          // no user_username in this (older) delivery
  CHECK_FALSE(pe.forced);                  // GitLab does not say

  auto payload = gitlab("push-event-user-username.json");
  CHECK(require_payload<PushEvent>(kGitLab, "Push Hook", payload).pusher == Actor{"jsmith", false});
  payload["total_commits_count"] = 2;
  CHECK(require_payload<PushEvent>(kGitLab, "Push Hook", payload).changed_files_complete);
}

TEST_CASE("the body's object_kind decides, not the header", "[webhooks][gitlab]") {
  CHECK(require_payload<PullRequestEvent>(kGitLab, "Push Hook", gitlab("merge-request-merge-event.json")).action ==
        PullRequestEvent::Action::merged);
  require_ignored(kGitLab, "Push Hook", gitlab("tag-event.json"));  // tag_push is not used
  auto payload = gitlab("push-event.json");
  payload.erase("object_kind");  // without it, the header
  CHECK(require_payload<PushEvent>(kGitLab, "Push Hook", payload).ref == "refs/heads/master");
}

TEST_CASE("GitLab hooks other than merge request, note, pipeline and push are not used", "[webhooks][gitlab]") {
  for (const char* used : {"Merge Request Hook", "Note Hook", "Pipeline Hook", "Push Hook"}) {
    CHECK(is_used_event(kGitLab, used));
  }
  for (const char* unused : {"Tag Push Hook", "Issue Hook", "Job Hook", "Wiki Page Hook", "System Hook", "push",
                             "merge_request", "merge request hook"}) {
    CHECK_FALSE(is_used_event(kGitLab, unused));
    require_ignored(kGitLab, unused, gitlab("merge-request-event.json"));
  }
}
