#include "webhooks/event.hpp"

#include "webhooks/normalize_common.hpp"

namespace tollgate::webhooks {

const char* to_string(HostKind kind) {
  switch (kind) {
    case HostKind::github: return "github";
    case HostKind::gitlab: return "gitlab";
    case HostKind::gitea: return "gitea";
  }
  return "unknown";
}

std::optional<HostKind> host_kind_from_string(std::string_view s) {
  if (s == "github") return HostKind::github;
  if (s == "gitlab") return HostKind::gitlab;
  if (s == "gitea") return HostKind::gitea;
  return std::nullopt;
}

bool is_used_event(HostKind host, std::string_view event_type) {
  switch (host) {
    case HostKind::github: return detail::github_uses(event_type);
    case HostKind::gitlab: return detail::gitlab_uses(event_type);
    case HostKind::gitea: return detail::gitea_uses(event_type);
  }
  return false;
}

tl::expected<std::optional<Event>, NormalizeError> normalize(HostKind host, std::string_view event_type,
                                                             const nlohmann::json& payload) {
  if (!is_used_event(host, event_type)) return std::optional<Event>();
  switch (host) {
    case HostKind::github: return detail::normalize_github(event_type, payload);
    case HostKind::gitlab: return detail::normalize_gitlab(event_type, payload);
    case HostKind::gitea: return detail::normalize_gitea(event_type, payload);
  }
  return std::optional<Event>();
}

// Check run conclusions -> states. timed_out and action_required are failures (the check did not
// pass and a person must act). stale means GitHub gave up on a run that never reported a result
// (incomplete for 14 days): like a cancelled run it has no verdict, and re-running it is the fix,
// so it maps to cancelled.
std::optional<StatusEvent::State> conclusion_state(std::string_view c) {
  using S = StatusEvent::State;
  if (c == "success") return S::success;
  if (c == "failure" || c == "timed_out" || c == "action_required") return S::failure;
  if (c == "neutral") return S::neutral;
  if (c == "cancelled" || c == "stale") return S::cancelled;
  if (c == "skipped") return S::skipped;
  return std::nullopt;
}

}  // namespace tollgate::webhooks
