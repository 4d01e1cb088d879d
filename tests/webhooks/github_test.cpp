// GitHub normaliser: every real example of @octokit/webhooks-examples@7.6.1, field values of
// representative ones, and the three payloads derived from them (tests/fixtures/webhooks/github/).
#include <map>
#include <string>
#include <vector>

#include "helpers.hpp"

using namespace tollgate::webhooks;
using namespace tollgate::webhooks::test;
using nlohmann::json;

namespace {

constexpr auto kGitHub = HostKind::github;
constexpr const char* kExamples = "node_modules/@octokit/webhooks-examples/api.github.com/index.json";

// index.json: [{name: event, examples: [payload, ...]}, ...]
const json& examples() {
  static const json all = load_json(kExamples);
  return all;
}

json example(std::string_view event, std::size_t index) {
  for (const auto& group : examples()) {
    if (group.at("name") == event) return group.at("examples").at(index);
  }
  FAIL("no examples for " << event);
  return {};
}

std::string describe(const Event& e) {
  return std::visit(
      [](const auto& p) -> std::string {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, PullRequestEvent>) {
          switch (p.action) {
            case PullRequestEvent::Action::opened: return "pull_request:opened";
            case PullRequestEvent::Action::merged: return "pull_request:merged";
            case PullRequestEvent::Action::closed_unmerged: return "pull_request:closed_unmerged";
            case PullRequestEvent::Action::head_changed: return "pull_request:head_changed";
          }
        } else if constexpr (std::is_same_v<T, CommentEvent>) {
          return "comment";
        } else if constexpr (std::is_same_v<T, ReviewEvent>) {
          switch (p.state) {
            case ReviewEvent::State::approved: return "review:approved";
            case ReviewEvent::State::changes_requested: return "review:changes_requested";
            case ReviewEvent::State::commented: return "review:commented";
            case ReviewEvent::State::dismissed: return "review:dismissed";
          }
        } else if constexpr (std::is_same_v<T, StatusEvent>) {
          return p.check_run ? "check_run" : "status";
        } else {
          return "push";
        }
        return "?";
      },
      e.payload);
}

}  // namespace

TEST_CASE("every GitHub example payload is normalised or ignored, none fails", "[webhooks][github]") {
  // The package's examples are well-formed deliveries, so no used example may produce an error.
  // Should a future version add one that genuinely lacks a field, list it here with the reason.
  const std::map<std::string, std::string> expected_errors = {};

  std::size_t payloads = 0, used = 0;
  std::map<std::string, int> produced;  // describe(event) -> count
  std::vector<std::string> unexpected;
  for (const auto& group : examples()) {
    const std::string event_type = group.at("name").get<std::string>();
    const auto& list = group.at("examples");
    for (std::size_t i = 0; i < list.size(); ++i) {
      ++payloads;
      const std::string id = event_type + "#" + std::to_string(i);
      Result result = run(kGitHub, event_type, list[i]);
      if (!is_used_event(kGitHub, event_type)) {
        // Unused types are acknowledged without being stored; normalize ignores them too.
        if (!result || result->has_value()) unexpected.push_back(id + ": an unused event type was not ignored");
        continue;
      }
      ++used;
      if (!result) {
        auto known = expected_errors.find(id);
        if (known == expected_errors.end()) unexpected.push_back(id + ": " + result.error().message);
        WARN(id << ": " << result.error().message);
        continue;
      }
      if (result->has_value()) {
        REQUIRE((*result)->repo == list[i].at("repository").at("full_name").get<std::string>());
        ++produced[describe(**result)];
      }
    }
  }
  INFO([&] {
    std::string all;
    for (const auto& u : unexpected) all += u + "\n";
    return all;
  }());
  CHECK(unexpected.empty());
  CHECK(payloads == 329);
  CHECK(examples().size() == 58);
  CHECK(used == 29 + 9 + 4 + 4 + 9 + 7);  // pull_request, issue_comment, review, status, check_run, push

  // What the 62 used examples become: opened 4 + reopened 2; closed 2 (none merged); synchronize
  // 1; the 9 issue comments are all on plain issues or edits; 3 commented + 1 dismissed review;
  // 4 statuses; 3 of 9 check runs are completed; 7 pushes. The rest are actions tollgate ignores.
  const std::map<std::string, int> expected = {
      {"pull_request:opened", 6}, {"pull_request:closed_unmerged", 2}, {"pull_request:head_changed", 1},
      {"review:commented", 3},    {"review:dismissed", 1},             {"status", 4},
      {"check_run", 3},           {"push", 7}};
  CHECK(produced == expected);
}

TEST_CASE("an opened pull request carries its number, head, base, author and repository", "[webhooks][github]") {
  std::string repo;
  auto pe = require_payload<PullRequestEvent>(kGitHub, "pull_request", example("pull_request", 0), &repo);
  CHECK(repo == "Codertocat/Hello-World");
  CHECK(pe.action == PullRequestEvent::Action::opened);
  CHECK(pe.pr.number == 2);
  CHECK(pe.pr.url == "https://github.com/Codertocat/Hello-World/pull/2");
  CHECK(pe.pr.title == "Update the README with new information.");
  CHECK(pe.pr.head_ref == "changes");
  CHECK(pe.pr.head_sha == "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
  CHECK(pe.pr.base_ref == "master");
  CHECK(pe.pr.author == Actor{"Codertocat", false});
  CHECK(pe.sender == Actor{"Codertocat", false});
  CHECK(pe.merge_sha.empty());
}

TEST_CASE("GitHub pull request actions map to opened, closed, head changed or nothing", "[webhooks][github]") {
  CHECK(require_payload<PullRequestEvent>(kGitHub, "pull_request", example("pull_request", 18)).action ==
        PullRequestEvent::Action::opened);  // reopened
  auto closed = require_payload<PullRequestEvent>(kGitHub, "pull_request", example("pull_request", 3));
  CHECK(closed.action == PullRequestEvent::Action::closed_unmerged);
  CHECK(closed.merge_sha.empty());  // merge_commit_sha is set (a test merge) but the PR was not merged
  CHECK(require_payload<PullRequestEvent>(kGitHub, "pull_request", example("pull_request", 22)).action ==
        PullRequestEvent::Action::head_changed);  // synchronize
  for (std::size_t labeled_etc : {1, 5, 8, 10, 15, 20, 21, 23, 25, 27}) {
    INFO("pull_request example " << labeled_etc);
    require_ignored(kGitHub, "pull_request", example("pull_request", labeled_etc));
  }
}

TEST_CASE("a merged pull request carries the merge commit and who merged it", "[webhooks][github]") {
  std::string repo;
  auto pe = require_payload<PullRequestEvent>(kGitHub, "pull_request",
                                              fixture("github", "pull_request.closed.merged.json"), &repo);
  CHECK(repo == "Codertocat/Hello-World");
  CHECK(pe.action == PullRequestEvent::Action::merged);
  CHECK(pe.merge_sha == "c4295bd74fb0f4fda03689c3df3f2803b658fd85");
  CHECK(pe.sender == Actor{"Codertocat", false});
  CHECK(pe.pr.number == 2);
  CHECK(pe.pr.head_sha == "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
}

TEST_CASE("a merged pull request without a merge commit is an error, not a merge without one", "[webhooks][github]") {
  auto payload = fixture("github", "pull_request.closed.merged.json");
  payload["pull_request"]["merge_commit_sha"] = nullptr;
  CHECK(require_error(kGitHub, "pull_request", payload) == "pull_request.merge_commit_sha: missing");
}

TEST_CASE("a new comment on a pull request becomes a comment event", "[webhooks][github]") {
  auto payload = fixture("github", "issue_comment.created.on_pull_request.json");
  std::string repo;
  auto ce = require_payload<CommentEvent>(kGitHub, "issue_comment", payload, &repo);
  CHECK(repo == "Codertocat/Hello-World");
  CHECK(ce.pr.number == 1);
  CHECK(ce.pr.url == "https://github.com/Codertocat/Hello-World/pull/1");
  CHECK(ce.pr.title == "Spelling error in the README file");
  CHECK(ce.pr.author == Actor{"Codertocat", false});
  CHECK(ce.comment_id == 492700400);
  CHECK(ce.author == Actor{"Codertocat", false});
  CHECK(ce.body == "/approve");

  SECTION("a bot's comment says so") {
    payload["comment"]["user"]["type"] = "Bot";
    payload["comment"]["user"]["login"] = "ci-helper[bot]";
    CHECK(require_payload<CommentEvent>(kGitHub, "issue_comment", payload).author == Actor{"ci-helper[bot]", true});
    payload["comment"]["user"]["type"] = "User";  // the login suffix alone is enough
    CHECK(require_payload<CommentEvent>(kGitHub, "issue_comment", payload).author.bot);
  }
  SECTION("edits and deletions are ignored") {
    for (const char* action : {"edited", "deleted"}) {
      payload["action"] = action;
      require_ignored(kGitHub, "issue_comment", payload);
    }
  }
}

TEST_CASE("comments on plain issues, edits and deletions are ignored", "[webhooks][github]") {
  for (std::size_t i = 0; i < 9; ++i) {
    INFO("issue_comment example " << i);
    require_ignored(kGitHub, "issue_comment", example("issue_comment", i));
  }
}

TEST_CASE("an approved review becomes an approval bound to the reviewed commit", "[webhooks][github]") {
  auto payload = fixture("github", "pull_request_review.submitted.approved.json");
  std::string repo;
  auto re = require_payload<ReviewEvent>(kGitHub, "pull_request_review", payload, &repo);
  CHECK(repo == "Codertocat/Hello-World");
  CHECK(re.state == ReviewEvent::State::approved);
  CHECK(re.review_id == 237895671);
  CHECK(re.commit_sha == "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
  CHECK(re.author == Actor{"Codertocat", false});
  CHECK(re.pr.number == 2);
  CHECK(re.pr.url == "https://github.com/Codertocat/Hello-World/pull/2");

  SECTION("review states") {
    auto [state, expected] = GENERATE(table<const char*, ReviewEvent::State>({
        {"approved", ReviewEvent::State::approved},
        {"APPROVED", ReviewEvent::State::approved},  // the REST spelling, should it ever appear
        {"changes_requested", ReviewEvent::State::changes_requested},
        {"commented", ReviewEvent::State::commented},
    }));
    payload["review"]["state"] = state;
    CHECK(require_payload<ReviewEvent>(kGitHub, "pull_request_review", payload).state == expected);
  }
  SECTION("an unknown state is an error naming it") {
    payload["review"]["state"] = "pending";
    CHECK(require_error(kGitHub, "pull_request_review", payload) == "review.state: unknown value 'pending'");
  }
  SECTION("an edited review is ignored") {
    payload["action"] = "edited";
    require_ignored(kGitHub, "pull_request_review", payload);
  }
}

TEST_CASE("a dismissed review becomes a dismissal", "[webhooks][github]") {
  auto re = require_payload<ReviewEvent>(kGitHub, "pull_request_review", example("pull_request_review", 1));
  CHECK(re.state == ReviewEvent::State::dismissed);
  CHECK(re.pr.number == 2);
}

TEST_CASE("a commit status carries its sha, context, state and target", "[webhooks][github]") {
  auto payload = example("status", 0);
  std::string repo;
  auto se = require_payload<StatusEvent>(kGitHub, "status", payload, &repo);
  CHECK(repo == "Codertocat/Hello-World");
  CHECK(se.sha == "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
  CHECK(se.name == "default");
  CHECK(se.state == StatusEvent::State::success);
  CHECK(se.url.empty());  // target_url is null in the example
  CHECK_FALSE(se.check_run);

  auto [state, expected] = GENERATE(table<const char*, StatusEvent::State>({
      {"pending", StatusEvent::State::pending},
      {"success", StatusEvent::State::success},
      {"failure", StatusEvent::State::failure},
      {"error", StatusEvent::State::error},
  }));
  payload["state"] = state;
  payload["target_url"] = "https://ci.example.com/build/1";
  se = require_payload<StatusEvent>(kGitHub, "status", payload);
  CHECK(se.state == expected);
  CHECK(se.url == "https://ci.example.com/build/1");
}

TEST_CASE("a completed check run becomes a status with its conclusion", "[webhooks][github]") {
  auto failed = require_payload<StatusEvent>(kGitHub, "check_run", example("check_run", 1));
  CHECK(failed.check_run);
  CHECK(failed.state == StatusEvent::State::failure);
  CHECK(failed.name == "Octocoders-linter");
  CHECK(failed.sha == "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
  CHECK(failed.url == "https://octocoders.io");  // details_url
  CHECK(require_payload<StatusEvent>(kGitHub, "check_run", example("check_run", 2)).state ==
        StatusEvent::State::success);

  SECTION("conclusions") {
    auto payload = example("check_run", 1);
    auto [conclusion, expected] = GENERATE(table<const char*, StatusEvent::State>({
        {"success", StatusEvent::State::success},
        {"failure", StatusEvent::State::failure},
        {"neutral", StatusEvent::State::neutral},
        {"cancelled", StatusEvent::State::cancelled},
        {"skipped", StatusEvent::State::skipped},
        {"timed_out", StatusEvent::State::failure},
        {"action_required", StatusEvent::State::failure},
        {"stale", StatusEvent::State::cancelled},
    }));
    payload["check_run"]["conclusion"] = conclusion;
    CHECK(require_payload<StatusEvent>(kGitHub, "check_run", payload).state == expected);
  }
  SECTION("without a details URL, the check run's page") {
    auto payload = example("check_run", 1);
    payload["check_run"].erase("details_url");
    CHECK(require_payload<StatusEvent>(kGitHub, "check_run", payload).url ==
          "https://github.com/Codertocat/Hello-World/runs/128620228");
  }
  SECTION("created, rerequested and requested_action are ignored") {
    for (std::size_t i : {0, 4, 5, 6, 7, 8}) require_ignored(kGitHub, "check_run", example("check_run", i));
  }
  SECTION("completed without a conclusion is an error") {
    auto payload = example("check_run", 1);
    payload["check_run"]["conclusion"] = nullptr;
    CHECK(require_error(kGitHub, "check_run", payload) == "check_run.conclusion: missing");
  }
}

TEST_CASE("a push carries ref, before, after, pusher and its changed files", "[webhooks][github]") {
  auto payload = example("push", 4);
  std::string repo;
  auto pe = require_payload<PushEvent>(kGitHub, "push", payload, &repo);
  CHECK(repo == "Codertocat/Hello-World");
  CHECK(pe.ref == "refs/heads/master");
  CHECK(pe.before == "0000000000000000000000000000000000000000");
  CHECK(pe.after == "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
  CHECK(pe.pusher == Actor{"Codertocat", false});
  CHECK(pe.changed_files == std::vector<std::string>{"README.md"});
  CHECK(pe.changed_files_complete);
  CHECK_FALSE(pe.forced);

  SECTION("files from all commits, each once, in order of appearance") {
    payload["forced"] = true;
    payload["commits"] = json::parse(R"([
      {"id": "1", "added": ["a", "b"], "modified": ["c"], "removed": []},
      {"id": "2", "added": [], "modified": ["b", "d"], "removed": ["a", "e"]}])");
    pe = require_payload<PushEvent>(kGitHub, "push", payload);
    CHECK(pe.changed_files == std::vector<std::string>{"a", "b", "c", "d", "e"});
    CHECK(pe.changed_files_complete);
    CHECK(pe.forced);
  }
  SECTION("a commit without file lists makes the list incomplete") {
    payload["commits"][0].erase("modified");
    CHECK_FALSE(require_payload<PushEvent>(kGitHub, "push", payload).changed_files_complete);
  }
  SECTION("GitHub lists at most 2048 commits: a full list may be cut short") {
    json commit = payload["commits"][0];
    payload["commits"] = json::array();
    for (int i = 0; i < 2048; ++i) payload["commits"].push_back(commit);
    pe = require_payload<PushEvent>(kGitHub, "push", payload);
    CHECK(pe.changed_files == std::vector<std::string>{"README.md"});
    CHECK_FALSE(pe.changed_files_complete);
  }
  SECTION("a bot's push says so") {
    payload["pusher"]["name"] = "release-app[bot]";
    payload["sender"]["login"] = "release-app[bot]";
    payload["sender"]["type"] = "Bot";
    CHECK(require_payload<PushEvent>(kGitHub, "push", payload).pusher == Actor{"release-app[bot]", true});
  }
  SECTION("without pusher.name, the sender's login") {
    payload["pusher"].erase("name");
    CHECK(require_payload<PushEvent>(kGitHub, "push", payload).pusher.login == "Codertocat");
  }
}

TEST_CASE("a tag push lists no files even though its head commit has some", "[webhooks][github]") {
  // Example 0 pushes an existing commit as a tag: head_commit shows that commit's files, but the
  // push itself (commits: []) changed nothing.
  auto pe = require_payload<PushEvent>(kGitHub, "push", example("push", 0));
  CHECK(pe.ref == "refs/tags/simple-tag");
  CHECK(pe.changed_files.empty());
}

TEST_CASE("ping is known but not used", "[webhooks][github]") {
  CHECK_FALSE(is_used_event(kGitHub, "ping"));
  require_ignored(kGitHub, "ping", example("ping", 0));
}
