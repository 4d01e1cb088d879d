#pragma once
// The host-independent form of the webhook deliveries tollgate acts on. Receivers store raw
// deliveries; normalise() turns one into an Event (or says it is not one tollgate uses).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <tl/expected.hpp>

namespace tollgate::webhooks {

enum class HostKind { github, gitlab, gitea };

[[nodiscard]] const char* to_string(HostKind kind);
[[nodiscard]] std::optional<HostKind> host_kind_from_string(std::string_view s);

struct Actor {
  std::string login;  // GitHub/Gitea login, GitLab username
  bool bot = false;   // GitHub type "Bot" / "[bot]" suffix; GitLab bot users; Gitea bots
  friend bool operator==(const Actor&, const Actor&) = default;
};

struct PullRequest {
  std::int64_t number = 0;  // GitHub/Gitea number, GitLab merge request iid
  std::string url;          // web URL
  std::string title;
  std::string head_ref;     // source branch
  std::string head_sha;
  std::string base_ref;     // target branch
  Actor author;
  friend bool operator==(const PullRequest&, const PullRequest&) = default;
};

struct PullRequestEvent {
  enum class Action { opened, merged, closed_unmerged, head_changed };
  Action action = Action::opened;
  PullRequest pr;
  std::string merge_sha;  // merged: the merge commit
  Actor sender;           // who did it (merged by, closed by, pushed)
  friend bool operator==(const PullRequestEvent&, const PullRequestEvent&) = default;
};

struct CommentEvent {
  PullRequest pr;           // at least number and url; other fields when the payload has them
  std::int64_t comment_id = 0;
  Actor author;
  std::string body;
  friend bool operator==(const CommentEvent&, const CommentEvent&) = default;
};

struct ReviewEvent {
  enum class State { approved, changes_requested, commented, dismissed };
  State state = State::commented;
  PullRequest pr;
  std::int64_t review_id = 0;
  std::string commit_sha;  // the head the review was given on, when the payload says
  Actor author;
  friend bool operator==(const ReviewEvent&, const ReviewEvent&) = default;
};

struct StatusEvent {
  enum class State { pending, success, failure, error, cancelled, skipped, neutral };
  std::string sha;
  std::string name;       // status context, check run name, GitLab pipeline/job name
  State state = State::pending;
  std::string url;        // target/details URL
  bool check_run = false; // GitHub check run rather than commit status
  friend bool operator==(const StatusEvent&, const StatusEvent&) = default;
};

// A GitHub check run's conclusion as a state (success, failure, neutral, cancelled, skipped);
// nothing for a conclusion GitHub does not document.
[[nodiscard]] std::optional<StatusEvent::State> conclusion_state(std::string_view conclusion);

struct PushEvent {
  std::string ref;  // refs/heads/main
  std::string before, after;
  Actor pusher;
  std::vector<std::string> changed_files;  // added, modified and removed paths, when given
  // False when the host cut the commit list short (GitLab sends at most 20 commits, Gitea 5 by
  // default, GitHub 2048) or a commit came without its file lists: changed_files is then only a
  // part, and a `paths:` filter must ask the host for the comparison before.. after.
  bool changed_files_complete = true;
  bool forced = false;  // GitHub only; GitLab and Gitea payloads do not say
  friend bool operator==(const PushEvent&, const PushEvent&) = default;
};

struct Event {
  HostKind host = HostKind::github;
  std::string repo;  // "owner/name" ("group/sub/name" on GitLab)
  std::variant<PullRequestEvent, CommentEvent, ReviewEvent, StatusEvent, PushEvent> payload;
  friend bool operator==(const Event&, const Event&) = default;
};

struct NormalizeError {
  std::string message;  // what is missing or malformed, with its JSON path: "pull_request.number: missing"
};

// Whether deliveries of this event type (the X-GitHub-Event / X-Gitlab-Event / X-Gitea-Event
// header value) can ever become an Event. Others are acknowledged without being stored.
[[nodiscard]] bool is_used_event(HostKind host, std::string_view event_type);

// One delivery -> an Event; nothing when the delivery is of a used type but not an action
// tollgate acts on (e.g. a PR labelled, a comment edited, a check run created) or of a type that
// is not used at all; an error when the payload lacks what its type promises. Never throws.
[[nodiscard]] tl::expected<std::optional<Event>, NormalizeError> normalize(HostKind host, std::string_view event_type,
                                                                           const nlohmann::json& payload);

}  // namespace tollgate::webhooks
