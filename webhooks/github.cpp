// GitHub webhook payloads (X-GitHub-Event) -> Events. Field names follow GitHub's "Webhook events
// and payloads" documentation and @octokit/webhooks-schemas; the tests run every example of
// @octokit/webhooks-examples through here.
#include <array>
#include <utility>

#include "webhooks/normalize_common.hpp"

namespace tollgate::webhooks::detail {

namespace {

constexpr std::array kUsed = {std::string_view("pull_request"), std::string_view("issue_comment"),
                              std::string_view("pull_request_review"), std::string_view("status"),
                              std::string_view("check_run"), std::string_view("push")};

// GitHub's push webhook lists at most this many commits (its documentation, "push" event).
constexpr std::size_t kMaxPushCommits = 2048;

// A GitHub user object: apps act as users of type "Bot" whose login ends in "[bot]".
Actor user(const Node& u) {
  Actor a;
  a.login = u.string("login");
  a.bot = u.optional_string("type") == "Bot" || ends_with(a.login, "[bot]");
  return a;
}

Event event_for(const Node& root) {
  Event e;
  e.host = HostKind::github;
  e.repo = root.object("repository").repo_path("full_name");
  return e;
}

// A pull request object: the full one of pull_request events or the "simple" one of reviews.
PullRequest pull_request(const Node& pr) { return github_shaped_pull_request(pr, user); }

Normalized on_pull_request(Reader& r, const Node& root) {
  std::string action = root.string("action");
  if (r.failed()) return ignored(r);
  PullRequestEvent pe;
  if (action == "opened" || action == "reopened") {
    pe.action = PullRequestEvent::Action::opened;
  } else if (action == "closed") {
    pe.action = PullRequestEvent::Action::closed_unmerged;
  } else if (action == "synchronize") {
    pe.action = PullRequestEvent::Action::head_changed;
  } else {
    return ignored(r);  // labeled, assigned, edited, review_requested, ...
  }
  Node pr = root.object("pull_request");
  pe.pr = pull_request(pr);
  pe.sender = user(root.object("sender"));
  if (action == "closed" && pr.boolean("merged")) {
    pe.action = PullRequestEvent::Action::merged;
    pe.merge_sha = pr.commit_id("merge_commit_sha");
  }
  Event e = event_for(root);
  e.payload = std::move(pe);
  return finish(r, std::move(e));
}

Normalized on_issue_comment(Reader& r, const Node& root) {
  std::string action = root.string("action");
  if (r.failed() || action != "created") return ignored(r);  // edits and deletions never count
  Node issue = root.object("issue");
  Node links = issue.optional_object("pull_request");
  if (!links) return ignored(r);  // a comment on a plain issue
  CommentEvent ce;
  ce.pr.number = issue.positive_integer("number");
  ce.pr.url = links.optional_string("html_url");
  if (ce.pr.url.empty()) ce.pr.url = issue.string("html_url");
  ce.pr.title = issue.optional_string("title");
  ce.pr.author = user(issue.object("user"));
  Node comment = root.object("comment");
  ce.comment_id = comment.positive_integer("id");
  ce.author = user(comment.object("user"));
  ce.body = comment.string("body");
  Event e = event_for(root);
  e.payload = std::move(ce);
  return finish(r, std::move(e));
}

Normalized on_pull_request_review(Reader& r, const Node& root) {
  std::string action = root.string("action");
  if (r.failed()) return ignored(r);
  ReviewEvent re;
  Node review = root.object("review");
  if (action == "submitted") {
    // Webhooks spell review states in lower case (the REST API in upper case): accept both.
    std::string state = review.string("state");
    if (iequals(state, "approved")) {
      re.state = ReviewEvent::State::approved;
    } else if (iequals(state, "changes_requested")) {
      re.state = ReviewEvent::State::changes_requested;
    } else if (iequals(state, "commented")) {
      re.state = ReviewEvent::State::commented;
    } else if (!r.failed()) {
      review.fail("state", "unknown value " + quote(state));
    }
  } else if (action == "dismissed") {
    re.state = ReviewEvent::State::dismissed;
  } else {
    return ignored(r);  // edited
  }
  re.pr = pull_request(root.object("pull_request"));
  re.review_id = review.positive_integer("id");
  re.commit_sha = review.optional_commit_id("commit_id");
  re.author = user(review.object("user"));
  Event e = event_for(root);
  e.payload = std::move(re);
  return finish(r, std::move(e));
}

Normalized on_status(Reader& r, const Node& root) {
  StatusEvent se;
  std::string state = root.string("state");
  if (state == "pending") {
    se.state = StatusEvent::State::pending;
  } else if (state == "success") {
    se.state = StatusEvent::State::success;
  } else if (state == "failure") {
    se.state = StatusEvent::State::failure;
  } else if (state == "error") {
    se.state = StatusEvent::State::error;
  } else if (!r.failed()) {
    root.fail("state", "unknown value " + quote(state));
  }
  se.sha = root.commit_id("sha");
  se.name = root.string("context");
  se.url = root.optional_string("target_url");
  Event e = event_for(root);
  e.payload = std::move(se);
  return finish(r, std::move(e));
}

Normalized on_check_run(Reader& r, const Node& root) {
  std::string action = root.string("action");
  if (r.failed() || action != "completed") return ignored(r);  // created, rerequested, ...
  Node run = root.object("check_run");
  StatusEvent se;
  se.check_run = true;
  std::string conclusion = run.string("conclusion");
  if (auto state = conclusion_state(conclusion)) {
    se.state = *state;
  } else if (!r.failed()) {
    run.fail("conclusion", "unknown value " + quote(conclusion));
  }
  se.sha = run.commit_id("head_sha");
  se.name = run.string("name");
  se.url = run.optional_string("details_url");
  if (se.url.empty()) se.url = run.optional_string("html_url");
  Event e = event_for(root);
  e.payload = std::move(se);
  return finish(r, std::move(e));
}

Normalized on_push(Reader& r, const Node& root) {
  PushEvent pe;
  pe.ref = root.string("ref");
  pe.before = root.commit_id("before");
  pe.after = root.commit_id("after");
  pe.forced = root.optional_boolean("forced").value_or(false);
  // pusher is {name, email}: name is the GitHub login for pushes by users and apps alike; sender
  // (a full user object) says whether that account is a bot.
  Node sender = root.optional_object("sender");
  pe.pusher.login = root.object("pusher").optional_string("name");
  if (sender) {
    Actor s = user(sender);
    if (pe.pusher.login.empty()) pe.pusher.login = s.login;
    if (s.login == pe.pusher.login) pe.pusher.bot = s.bot;
  }
  if (pe.pusher.login.empty()) root.fail("pusher.name", "missing");
  if (ends_with(pe.pusher.login, "[bot]")) pe.pusher.bot = true;
  Node commits = root.optional_array("commits");
  ChangedFiles files = changed_files(commits);
  pe.changed_files = std::move(files.files);
  pe.changed_files_complete = files.complete && commits.size() < kMaxPushCommits;
  Event e = event_for(root);
  e.payload = std::move(pe);
  return finish(r, std::move(e));
}

}  // namespace

bool github_uses(std::string_view event_type) {
  for (auto used : kUsed) {
    if (event_type == used) return true;
  }
  return false;
}

Normalized normalize_github(std::string_view event_type, const nlohmann::json& payload) {
  Reader r(payload);
  Node root = r.root();
  if (r.failed()) return ignored(r);
  if (event_type == "pull_request") return on_pull_request(r, root);
  if (event_type == "issue_comment") return on_issue_comment(r, root);
  if (event_type == "pull_request_review") return on_pull_request_review(r, root);
  if (event_type == "status") return on_status(r, root);
  if (event_type == "check_run") return on_check_run(r, root);
  if (event_type == "push") return on_push(r, root);
  return ignored(r);
}

}  // namespace tollgate::webhooks::detail
