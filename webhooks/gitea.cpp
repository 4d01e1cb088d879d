// Gitea / Forgejo webhook payloads (X-Gitea-Event) -> Events. Field names follow Gitea's payload
// structs (modules/structs/hook.go) and its webhook notifier (services/webhook/notifier.go).
//
// Event names: Gitea sends X-Gitea-Event = HookEventType.Event() and X-Gitea-Event-Type = the
// detailed type. Reviews therefore arrive as pull_request_approved / pull_request_rejected /
// pull_request_comment in X-Gitea-Event, and as pull_request_review_approved / _rejected /
// _comment in X-Gitea-Event-Type (and in older releases' X-Gitea-Event). Both spellings are
// accepted. "pull_request_comment" is ambiguous (the Event-Type of a comment on a PR, the Event of
// a comment review), and old releases delivered comment reviews under issue_comment, so the
// comment-or-review decision is taken from the payload's shape, not from the name.
#include <array>
#include <utility>

#include "webhooks/normalize_common.hpp"

namespace tollgate::webhooks::detail {

namespace {

constexpr std::array kUsed = {
    std::string_view("pull_request"),          std::string_view("pull_request_sync"),
    std::string_view("issue_comment"),         std::string_view("pull_request_comment"),
    std::string_view("pull_request_approved"), std::string_view("pull_request_rejected"),
    std::string_view("pull_request_review_approved"), std::string_view("pull_request_review_rejected"),
    std::string_view("pull_request_review_comment"),  std::string_view("status"),
    std::string_view("push")};

// Gitea cuts a push's commit list to [ui] FEED_MAX_COMMIT_NUM (default 5); newer releases send the
// real count as total_commits, older ones do not.
constexpr std::size_t kDefaultMaxPushCommits = 5;

// Gitea's Actions runner acts as the pseudo-user "gitea-actions" with id -2 (Forgejo: the same
// id); integrations conventionally use "[bot]" logins.
Actor user(const Node& u) {
  Actor a;
  a.login = u.optional_string("login");
  if (a.login.empty()) a.login = u.string("username");
  a.bot = ends_with(a.login, "[bot]") || a.login == "gitea-actions" || a.login == "forgejo-actions" ||
          u.optional_integer("id") == -2;
  return a;
}

Event event_for(const Node& root) {
  Event e;
  e.host = HostKind::gitea;
  e.repo = root.object("repository").repo_path("full_name");
  return e;
}

PullRequest pull_request(const Node& pr) { return github_shaped_pull_request(pr, user); }

Normalized on_review(Reader& r, const Node& root, std::string_view event_type) {
  using S = ReviewEvent::State;
  Node review = root.object("review");
  std::string type = review.optional_string("type");
  if (r.failed()) return ignored(r);
  // The review's own type first (it is in the signed body), the event name when it is missing.
  std::string_view kind = type.empty() ? event_type : std::string_view(type);
  ReviewEvent re;
  if (kind == "pull_request_review_approved" || kind == "pull_request_approved") {
    re.state = S::approved;
  } else if (kind == "pull_request_review_rejected" || kind == "pull_request_rejected") {
    re.state = S::changes_requested;
  } else if (kind == "pull_request_review_comment" || kind == "pull_request_comment") {
    re.state = S::commented;
  } else {
    review.fail("type", "unknown value " + quote(kind));
    return ignored(r);
  }
  re.pr = pull_request(root.object("pull_request"));
  // Gitea's review payload is {type, content}: no review id and no commit; the reviewer is the sender.
  re.author = user(root.object("sender"));
  Event e = event_for(root);
  e.payload = std::move(re);
  return finish(r, std::move(e));
}

// Review deliveries all have action "reviewed".
Normalized on_review_event(Reader& r, const Node& root, std::string_view event_type) {
  std::string action = root.string("action");
  if (r.failed() || action != "reviewed") return ignored(r);
  return on_review(r, root, event_type);
}

Normalized on_pull_request(Reader& r, const Node& root, std::string_view event_type) {
  std::string action = root.string("action");
  if (r.failed()) return ignored(r);
  if (action == "reviewed") return on_review(r, root, event_type);
  PullRequestEvent pe;
  if (action == "opened" || action == "reopened") {
    pe.action = PullRequestEvent::Action::opened;
  } else if (action == "closed") {
    pe.action = PullRequestEvent::Action::closed_unmerged;
  } else if (action == "synchronized") {
    pe.action = PullRequestEvent::Action::head_changed;
  } else {
    return ignored(r);  // assigned, label_updated, milestoned, edited, review_requested, ...
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
  if (r.failed() || action != "created") return ignored(r);  // edited, deleted
  Node issue = root.object("issue");
  // issue.pull_request is null on a plain issue; is_pull says the same in newer releases.
  bool is_pull = static_cast<bool>(issue.optional_object("pull_request")) ||
                 root.optional_boolean("is_pull").value_or(false);
  if (r.failed() || !is_pull) return ignored(r);
  CommentEvent ce;
  ce.pr.number = issue.positive_integer("number");
  ce.pr.url = issue.string("html_url");
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

// Gitea commit status states: pending, success, error, failure, warning (and skipped in newer
// releases). A warning is neither a pass nor a failure: neutral, like a GitHub neutral check.
Normalized on_status(Reader& r, const Node& root) {
  using S = StatusEvent::State;
  StatusEvent se;
  std::string state = root.string("state");
  if (state == "pending") {
    se.state = S::pending;
  } else if (state == "success") {
    se.state = S::success;
  } else if (state == "failure") {
    se.state = S::failure;
  } else if (state == "error") {
    se.state = S::error;
  } else if (state == "warning") {
    se.state = S::neutral;
  } else if (state == "skipped") {
    se.state = S::skipped;
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

Normalized on_push(Reader& r, const Node& root) {
  PushEvent pe;
  pe.ref = root.string("ref");
  pe.before = root.commit_id("before");
  pe.after = root.commit_id("after");
  pe.pusher = user(root.object("pusher"));
  Node commits = root.optional_array("commits");
  ChangedFiles files = changed_files(commits);
  pe.changed_files = std::move(files.files);
  std::optional<std::int64_t> total = root.optional_integer("total_commits");
  bool all_listed =
      total ? static_cast<std::int64_t>(commits.size()) >= *total : commits.size() < kDefaultMaxPushCommits;
  pe.changed_files_complete = files.complete && all_listed;
  Event e = event_for(root);
  e.payload = std::move(pe);
  return finish(r, std::move(e));
}

}  // namespace

bool gitea_uses(std::string_view event_type) {
  for (auto used : kUsed) {
    if (event_type == used) return true;
  }
  return false;
}

Normalized normalize_gitea(std::string_view event_type, const nlohmann::json& payload) {
  Reader r(payload);
  Node root = r.root();
  if (r.failed()) return ignored(r);
  if (event_type == "push") return on_push(r, root);
  if (event_type == "status") return on_status(r, root);
  if (event_type == "pull_request" || event_type == "pull_request_sync") return on_pull_request(r, root, event_type);
  if (event_type == "issue_comment" || event_type == "pull_request_comment") {
    // A comment has "comment" and "issue"; a review (old releases sent comment reviews under
    // issue_comment) has "review" and "pull_request".
    if (!root.has("comment") && root.has("review") && root.has("pull_request")) {
      return on_review_event(r, root, event_type);
    }
    return on_issue_comment(r, root);
  }
  return on_review_event(r, root, event_type);  // the review event names
}

}  // namespace tollgate::webhooks::detail
