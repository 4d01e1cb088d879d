// GitLab webhook payloads (X-Gitlab-Event) -> Events. Field names follow GitLab's "Webhook events"
// documentation (docs.gitlab.com/user/project/integrations/webhook_events). The body's object_kind
// decides the kind: the header only selects which deliveries are worth reading.
#include <array>
#include <utility>

#include "webhooks/normalize_common.hpp"

namespace tollgate::webhooks::detail {

namespace {

constexpr std::array kUsed = {std::string_view("Merge Request Hook"), std::string_view("Note Hook"),
                              std::string_view("Pipeline Hook"), std::string_view("Push Hook")};

// GitLab lists at most 20 commits in a push payload (total_commits_count has the real number).
constexpr std::size_t kMaxPushCommits = 20;

// GitLab user objects carry no bot flag. Its bots are recognisable by username: project and group
// access tokens act as users named project_<id>_bot_<suffix> / group_<id>_bot_<suffix> (older
// releases: project_<id>_bot<n>), and GitLab's own internal bots have fixed names.
bool gitlab_bot(std::string_view username) {
  for (std::string_view prefix : {"project_", "group_"}) {
    if (username.substr(0, prefix.size()) != prefix) continue;
    std::size_t i = prefix.size();
    std::size_t digits = i;
    while (i < username.size() && username[i] >= '0' && username[i] <= '9') ++i;
    if (i > digits && username.substr(i, 4) == "_bot") return true;
  }
  for (std::string_view name : {"alert-bot", "support-bot", "visual-review-bot", "security-bot",
                                "automation-bot", "gitlab-admin-bot", "gitlab-llm-bot"}) {
    if (iequals(username, name)) return true;
  }
  return false;
}

Actor user(const Node& u) {
  Actor a;
  a.login = u.string("username");
  a.bot = gitlab_bot(a.login);
  return a;
}

Event event_for(const Node& root) {
  Event e;
  e.host = HostKind::gitlab;
  e.repo = root.object("project").repo_path("path_with_namespace");
  return e;
}

// A merge request from a Merge Request Hook's object_attributes. Merge request hooks name the
// author only by author_id; the author's username is known only when the event is its opening.
PullRequest merge_request(const Node& attrs) {
  PullRequest pr;
  pr.number = attrs.positive_integer("iid");
  pr.url = attrs.string("url");
  pr.title = attrs.string("title");
  pr.head_ref = attrs.string("source_branch");
  pr.head_sha = attrs.object("last_commit").commit_id("id");
  pr.base_ref = attrs.string("target_branch");
  return pr;
}

Normalized on_merge_request(Reader& r, const Node& root) {
  Node attrs = root.object("object_attributes");
  std::string action = attrs.string("action");
  if (r.failed()) return ignored(r);
  Event e = event_for(root);
  Actor actor = user(root.object("user"));
  // approval / approved (the last required approval) are one person's approval; unapproval /
  // unapproved withdraw it. DESIGN.md counts a native approval like /approve.
  if (action == "approval" || action == "approved" || action == "unapproval" || action == "unapproved") {
    ReviewEvent re;
    re.state = (action == "approval" || action == "approved") ? ReviewEvent::State::approved
                                                               : ReviewEvent::State::dismissed;
    re.pr = merge_request(attrs);
    re.commit_sha = re.pr.head_sha;  // GitLab approvals are of the merge request at its current head
    re.author = std::move(actor);
    e.payload = std::move(re);
    return finish(r, std::move(e));
  }
  PullRequestEvent pe;
  if (action == "open" || action == "reopen") {
    pe.action = PullRequestEvent::Action::opened;
  } else if (action == "merge") {
    pe.action = PullRequestEvent::Action::merged;
  } else if (action == "close") {
    pe.action = PullRequestEvent::Action::closed_unmerged;
  } else if (action == "update" && attrs.has("oldrev")) {
    // oldrev is present only when the update pushed new commits (GitLab's documentation); other
    // updates are edits of the title, labels, assignees ...
    pe.action = PullRequestEvent::Action::head_changed;
  } else {
    return ignored(r);
  }
  pe.pr = merge_request(attrs);
  if (action == "open") pe.pr.author = actor;
  if (pe.action == PullRequestEvent::Action::merged) {
    // merge_commit_sha is null for a squash (squash_commit_sha) and for a fast-forward merge,
    // where the target branch moved to the MR's head: that head is what was merged.
    pe.merge_sha = attrs.optional_commit_id("merge_commit_sha");
    if (pe.merge_sha.empty()) pe.merge_sha = attrs.optional_commit_id("squash_commit_sha");
    if (pe.merge_sha.empty()) pe.merge_sha = pe.pr.head_sha;
  }
  pe.sender = std::move(actor);
  e.payload = std::move(pe);
  return finish(r, std::move(e));
}

Normalized on_note(Reader& r, const Node& root) {
  Node attrs = root.object("object_attributes");
  std::string type = attrs.string("noteable_type");
  // action ("create" / "update") is sent by newer GitLab releases; without it the note is new.
  std::string action = attrs.optional_string("action");
  bool system = attrs.optional_boolean("system").value_or(false);
  if (r.failed() || type != "MergeRequest" || system || (!action.empty() && action != "create")) return ignored(r);
  CommentEvent ce;
  Node mr = root.object("merge_request");
  ce.pr.number = mr.positive_integer("iid");
  ce.pr.url = mr.optional_string("url");
  std::string note_url = attrs.optional_string("url");
  if (ce.pr.url.empty()) ce.pr.url = note_url.substr(0, note_url.find('#'));
  if (ce.pr.url.empty()) mr.fail("url", "missing");
  ce.pr.title = mr.optional_string("title");
  ce.pr.head_ref = mr.optional_string("source_branch");
  ce.pr.base_ref = mr.optional_string("target_branch");
  if (Node last = mr.optional_object("last_commit")) ce.pr.head_sha = last.optional_commit_id("id");
  ce.comment_id = attrs.positive_integer("id");
  ce.body = attrs.string("note");
  ce.author = user(root.object("user"));
  Event e = event_for(root);
  e.payload = std::move(ce);
  return finish(r, std::move(e));
}

std::optional<StatusEvent::State> pipeline_state(std::string_view s) {
  using S = StatusEvent::State;
  if (s == "success") return S::success;
  if (s == "failed") return S::failure;
  if (s == "canceled" || s == "cancelled") return S::cancelled;
  if (s == "skipped") return S::skipped;
  // Not finished yet; "manual" is a pipeline stopped at a manual job, which is not a result either.
  for (std::string_view waiting : {"created", "waiting_for_resource", "preparing", "pending", "running", "scheduled",
                                   "manual", "canceling"}) {
    if (s == waiting) return S::pending;
  }
  return std::nullopt;
}

Normalized on_pipeline(Reader& r, const Node& root) {
  Node attrs = root.object("object_attributes");
  StatusEvent se;
  std::string status = attrs.string("status");
  if (auto state = pipeline_state(status)) {
    se.state = *state;
  } else if (!r.failed()) {
    attrs.fail("status", "unknown value " + quote(status));
  }
  se.sha = attrs.commit_id("sha");
  // Pipelines are named only when the CI file sets workflow:name; one stable name otherwise, so
  // that `checks: [gitlab-ci]` can require it.
  se.name = attrs.optional_string("name");
  if (se.name.empty()) se.name = "gitlab-ci";
  se.url = attrs.optional_string("url");
  Event e = event_for(root);
  e.payload = std::move(se);
  return finish(r, std::move(e));
}

Normalized on_push(Reader& r, const Node& root) {
  PushEvent pe;
  pe.ref = root.string("ref");
  pe.before = root.commit_id("before");
  pe.after = root.commit_id("after");
  // user_username is documented for push hooks; user_name is a display name, not an account, so
  // it is not a stand-in when user_username is absent (older releases).
  pe.pusher.login = root.optional_string("user_username");
  pe.pusher.bot = gitlab_bot(pe.pusher.login);
  Node commits = root.optional_array("commits");
  ChangedFiles files = changed_files(commits);
  pe.changed_files = std::move(files.files);
  std::optional<std::int64_t> total = root.optional_integer("total_commits_count");
  bool all_listed = total ? static_cast<std::int64_t>(commits.size()) >= *total : commits.size() < kMaxPushCommits;
  pe.changed_files_complete = files.complete && all_listed;
  Event e = event_for(root);
  e.payload = std::move(pe);
  return finish(r, std::move(e));
}

std::string_view kind_from_header(std::string_view event_type) {
  if (event_type == "Merge Request Hook") return "merge_request";
  if (event_type == "Note Hook") return "note";
  if (event_type == "Pipeline Hook") return "pipeline";
  if (event_type == "Push Hook") return "push";
  return "";
}

}  // namespace

bool gitlab_uses(std::string_view event_type) {
  for (auto used : kUsed) {
    if (event_type == used) return true;
  }
  return false;
}

Normalized normalize_gitlab(std::string_view event_type, const nlohmann::json& payload) {
  Reader r(payload);
  Node root = r.root();
  std::string kind = root.optional_string("object_kind");
  if (kind.empty()) kind = root.optional_string("event_name");  // system hooks name it so
  if (kind.empty()) kind = kind_from_header(event_type);
  if (r.failed()) return ignored(r);
  if (kind == "merge_request") return on_merge_request(r, root);
  if (kind == "note") return on_note(r, root);
  if (kind == "pipeline") return on_pipeline(r, root);
  if (kind == "push") return on_push(r, root);
  return ignored(r);  // tag_push, build, issue, ...: not used
}

}  // namespace tollgate::webhooks::detail
