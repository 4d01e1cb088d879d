// libFuzzer target: arbitrary JSON through the three hosts' normalisers. The first byte picks a host
// and one of its used event types; the rest is the body. Any crash, sanitizer report or exception
// escaping normalize() is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "webhooks/event.hpp"

namespace {

using tollgate::webhooks::HostKind;

struct Target {
  HostKind host;
  std::string_view event_type;
};

// Every used event type, plus one unused per host (which must always come back as "nothing").
constexpr Target kTargets[] = {
    {HostKind::github, "pull_request"},
    {HostKind::github, "issue_comment"},
    {HostKind::github, "pull_request_review"},
    {HostKind::github, "status"},
    {HostKind::github, "check_run"},
    {HostKind::github, "push"},
    {HostKind::github, "ping"},
    {HostKind::gitlab, "Merge Request Hook"},
    {HostKind::gitlab, "Note Hook"},
    {HostKind::gitlab, "Pipeline Hook"},
    {HostKind::gitlab, "Push Hook"},
    {HostKind::gitlab, "Tag Push Hook"},
    {HostKind::gitea, "pull_request"},
    {HostKind::gitea, "issue_comment"},
    {HostKind::gitea, "pull_request_approved"},
    {HostKind::gitea, "pull_request_rejected"},
    {HostKind::gitea, "pull_request_comment"},
    {HostKind::gitea, "pull_request_review_approved"},
    {HostKind::gitea, "status"},
    {HostKind::gitea, "push"},
    {HostKind::gitea, "fork"},
};
constexpr std::size_t kTargetCount = sizeof(kTargets) / sizeof(kTargets[0]);

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const Target& target = kTargets[data[0] % kTargetCount];
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  nlohmann::json payload = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (payload.is_discarded()) return 0;

  auto result = tollgate::webhooks::normalize(target.host, target.event_type, payload);
  bool used = tollgate::webhooks::is_used_event(target.host, target.event_type);
  // Invariants: unused types are ignored; an event belongs to the host it was read for and names a
  // repository; an error names a path ("<path>: <what>").
  if (!used && (!result || result->has_value())) __builtin_trap();
  if (result && result->has_value()) {
    const auto& event = **result;
    if (event.host != target.host || event.repo.empty()) __builtin_trap();
    if (const auto* pr = std::get_if<tollgate::webhooks::PullRequestEvent>(&event.payload)) {
      if (pr->pr.number <= 0 || pr->pr.head_sha.empty()) __builtin_trap();
    }
  }
  if (!result) {
    const std::string& message = result.error().message;
    auto colon = message.find(": ");
    if (colon == std::string::npos || colon == 0 || message.find('\n') != std::string::npos) __builtin_trap();
  }
  return 0;
}
