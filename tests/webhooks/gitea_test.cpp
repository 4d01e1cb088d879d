// Gitea / Forgejo normaliser over the go-playground/webhooks example deliveries and the files derived
// from them (tests/fixtures/webhooks/README.md).
#include <string>
#include <vector>

#include "helpers.hpp"

using namespace tollgate::webhooks;
using namespace tollgate::webhooks::test;
using nlohmann::json;

namespace {
constexpr auto kGitea = HostKind::gitea;
json gitea(std::string_view name) { return fixture("gitea", name); }
}  // namespace

TEST_CASE("an opened Gitea pull request carries number, head, base and author", "[webhooks][gitea]") {
  std::string repo;
  auto pe = require_payload<PullRequestEvent>(kGitea, "pull_request", gitea("pull-request-event.json"), &repo);
  CHECK(repo == "example/example");
  CHECK(pe.action == PullRequestEvent::Action::opened);
  CHECK(pe.pr.number == 2);
  CHECK(pe.pr.url == "http://localhost:3000/example/example/pulls/2");
  CHECK(pe.pr.title == "update");
  CHECK(pe.pr.head_ref == "master");
  CHECK(pe.pr.head_sha == "48e773f892a831faa47c0a160d1b7f0cd369ae2a");
  CHECK(pe.pr.base_ref == "master");
  CHECK(pe.pr.author == Actor{"example2", false});
  CHECK(pe.sender == Actor{"example2", false});
}

TEST_CASE("Gitea pull request actions map to merged, closed, head changed or nothing", "[webhooks][gitea]") {
  auto merged = require_payload<PullRequestEvent>(kGitea, "pull_request", gitea("pull-request-merged-event.json"));
  CHECK(merged.action == PullRequestEvent::Action::merged);
  CHECK(merged.merge_sha == "3fa4d7c5b0e2a1f6c8d9e0b7a6c5d4e3f2a1b0c9");
  CHECK(merged.sender == Actor{"example2", false});

  auto closed = gitea("pull-request-merged-event.json");
  closed["pull_request"]["merged"] = false;
  CHECK(require_payload<PullRequestEvent>(kGitea, "pull_request", closed).action ==
        PullRequestEvent::Action::closed_unmerged);

  auto sync = require_payload<PullRequestEvent>(kGitea, "pull_request", gitea("pull-request-synchronized-event.json"));
  CHECK(sync.action == PullRequestEvent::Action::head_changed);
  CHECK(sync.pr.head_sha == "9c1b2a3d4e5f60718293a4b5c6d7e8f901234567");
  // The same delivery under its detailed name (X-Gitea-Event-Type).
  CHECK(require_payload<PullRequestEvent>(kGitea, "pull_request_sync", gitea("pull-request-synchronized-event.json"))
            .action == PullRequestEvent::Action::head_changed);

  require_ignored(kGitea, "pull_request", gitea("pull-request-label-event.json"));
}

TEST_CASE("a new comment on a Gitea pull request becomes a comment event", "[webhooks][gitea]") {
  auto payload = gitea("pull-request-comment-event.json");
  std::string repo;
  auto ce = require_payload<CommentEvent>(kGitea, "issue_comment", payload, &repo);
  CHECK(repo == "example/example");
  CHECK(ce.pr.number == 2);
  CHECK(ce.pr.url == "http://localhost:3000/example/example/pulls/2");
  CHECK(ce.pr.title == "update");
  CHECK(ce.pr.author == Actor{"example2", false});
  CHECK(ce.comment_id == 6);
  CHECK(ce.author == Actor{"example", false});
  CHECK(ce.body == "example");
  // X-Gitea-Event-Type names a comment on a PR pull_request_comment.
  CHECK(require_payload<CommentEvent>(kGitea, "pull_request_comment", payload).comment_id == 6);

  SECTION("edits are ignored") {
    payload["action"] = "edited";
    require_ignored(kGitea, "issue_comment", payload);
  }
  SECTION("Gitea Actions' pseudo-user is a bot") {
    payload["comment"]["user"]["login"] = "gitea-actions";
    payload["comment"]["user"]["id"] = -2;
    CHECK(require_payload<CommentEvent>(kGitea, "issue_comment", payload).author == Actor{"gitea-actions", true});
  }
}

TEST_CASE("a comment on a plain Gitea issue is ignored", "[webhooks][gitea]") {
  require_ignored(kGitea, "issue_comment", gitea("issue-comment-event.json"));
}

TEST_CASE("Gitea reviews: approved, rejected and comment, under either event name", "[webhooks][gitea]") {
  auto [event_type, file, expected] = GENERATE(table<const char*, const char*, ReviewEvent::State>({
      {"pull_request_approved", "pull-request-review-approved-event.json", ReviewEvent::State::approved},
      {"pull_request_review_approved", "pull-request-review-approved-event.json", ReviewEvent::State::approved},
      {"pull_request_rejected", "pull-request-review-rejected-event.json", ReviewEvent::State::changes_requested},
      {"pull_request_review_rejected", "pull-request-review-rejected-event.json", ReviewEvent::State::changes_requested},
      {"pull_request_comment", "pull-request-review-event.json", ReviewEvent::State::commented},
      {"pull_request_review_comment", "pull-request-review-event.json", ReviewEvent::State::commented},
      // Older releases sent comment reviews with X-Gitea-Event: issue_comment.
      {"issue_comment", "pull-request-review-event.json", ReviewEvent::State::commented},
  }));
  INFO(event_type << " " << file);
  std::string repo;
  auto re = require_payload<ReviewEvent>(kGitea, event_type, gitea(file), &repo);
  CHECK(repo == "example/example");
  CHECK(re.state == expected);
  CHECK(re.pr.number == 2);
  CHECK(re.pr.head_sha == "48e773f892a831faa47c0a160d1b7f0cd369ae2a");
  CHECK(re.author == Actor{"example", false});  // the sender: Gitea's review payload names no reviewer
  CHECK(re.review_id == 0);
  CHECK(re.commit_sha.empty());
}

TEST_CASE("a Gitea review's type wins over the event name; the name stands in when it is missing",
          "[webhooks][gitea]") {
  auto payload = gitea("pull-request-review-approved-event.json");
  CHECK(require_payload<ReviewEvent>(kGitea, "pull_request_rejected", payload).state == ReviewEvent::State::approved);
  payload["review"].erase("type");
  CHECK(require_payload<ReviewEvent>(kGitea, "pull_request_rejected", payload).state ==
        ReviewEvent::State::changes_requested);
  payload["review"]["type"] = "pull_request_review_bogus";
  CHECK(require_error(kGitea, "pull_request_rejected", payload) ==
        "review.type: unknown value 'pull_request_review_bogus'");
  payload["review"]["type"] = "pull_request_review_approved";
  payload["action"] = "review_requested";
  require_ignored(kGitea, "pull_request_approved", payload);
}

TEST_CASE("a Gitea commit status carries sha, context, state and target", "[webhooks][gitea]") {
  auto payload = gitea("status-event.json");
  std::string repo;
  auto se = require_payload<StatusEvent>(kGitea, "status", payload, &repo);
  CHECK(repo == "example/example");
  CHECK(se.sha == "67b56589a45103f891bdee7c0546e5d40bc02001");
  CHECK(se.name == "ci/build");
  CHECK(se.state == StatusEvent::State::success);
  CHECK(se.url == "http://localhost:3000/example/example/actions/runs/1");

  auto [state, expected] = GENERATE(table<const char*, StatusEvent::State>({
      {"pending", StatusEvent::State::pending},
      {"success", StatusEvent::State::success},
      {"failure", StatusEvent::State::failure},
      {"error", StatusEvent::State::error},
      {"warning", StatusEvent::State::neutral},
      {"skipped", StatusEvent::State::skipped},
  }));
  payload["state"] = state;
  CHECK(require_payload<StatusEvent>(kGitea, "status", payload).state == expected);
}

TEST_CASE("a Gitea push carries its files; without total_commits, 5 or more may be cut short", "[webhooks][gitea]") {
  auto payload = gitea("push-event.json");
  std::string repo;
  auto pe = require_payload<PushEvent>(kGitea, "push", payload, &repo);
  CHECK(repo == "example/example");
  CHECK(pe.ref == "refs/heads/master");
  CHECK(pe.before == "0000000000000000000000000000000000000000");
  CHECK(pe.after == "67b56589a45103f891bdee7c0546e5d40bc02001");
  CHECK(pe.pusher == Actor{"example", false});
  CHECK(pe.changed_files == std::vector<std::string>{"example"});
  CHECK(pe.changed_files_complete);

  payload["total_commits"] = 7;
  CHECK_FALSE(require_payload<PushEvent>(kGitea, "push", payload).changed_files_complete);
  payload.erase("total_commits");
  json commit = payload["commits"][0];
  for (int i = 0; i < 4; ++i) payload["commits"].push_back(commit);
  CHECK_FALSE(require_payload<PushEvent>(kGitea, "push", payload).changed_files_complete);
  payload["total_commits"] = 5;
  CHECK(require_payload<PushEvent>(kGitea, "push", payload).changed_files_complete);
}

TEST_CASE("Gitea events tollgate does not use", "[webhooks][gitea]") {
  for (const char* unused : {"create", "delete", "fork", "issues", "release", "repository", "wiki", "",
                             "pull_request_review_request", "pull_request_assign"}) {
    CHECK_FALSE(is_used_event(kGitea, unused));
    require_ignored(kGitea, unused, gitea("pull-request-event.json"));
  }
}
