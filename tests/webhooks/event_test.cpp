// Host kinds and which event types are used.
#include "helpers.hpp"

using namespace tollgate::webhooks;
using namespace tollgate::webhooks::test;

TEST_CASE("host kinds round-trip through their names", "[webhooks]") {
  for (HostKind kind : {HostKind::github, HostKind::gitlab, HostKind::gitea}) {
    CHECK(host_kind_from_string(to_string(kind)) == kind);
  }
  CHECK(std::string(to_string(HostKind::gitlab)) == "gitlab");
  CHECK_FALSE(host_kind_from_string("GitHub").has_value());
  CHECK_FALSE(host_kind_from_string("forgejo").has_value());
  CHECK_FALSE(host_kind_from_string("").has_value());
}

TEST_CASE("the used event types of each host", "[webhooks]") {
  auto [host, type, used] = GENERATE(table<HostKind, const char*, bool>({
      {HostKind::github, "pull_request", true},
      {HostKind::github, "issue_comment", true},
      {HostKind::github, "pull_request_review", true},
      {HostKind::github, "status", true},
      {HostKind::github, "check_run", true},
      {HostKind::github, "push", true},
      {HostKind::github, "ping", false},
      {HostKind::github, "check_suite", false},
      {HostKind::github, "pull_request_review_comment", false},
      {HostKind::github, "workflow_run", false},
      {HostKind::github, "Push", false},
      {HostKind::gitlab, "Merge Request Hook", true},
      {HostKind::gitlab, "Note Hook", true},
      {HostKind::gitlab, "Pipeline Hook", true},
      {HostKind::gitlab, "Push Hook", true},
      {HostKind::gitlab, "Tag Push Hook", false},
      {HostKind::gitlab, "pull_request", false},
      {HostKind::gitea, "pull_request", true},
      {HostKind::gitea, "issue_comment", true},
      {HostKind::gitea, "pull_request_approved", true},
      {HostKind::gitea, "pull_request_rejected", true},
      {HostKind::gitea, "pull_request_comment", true},
      {HostKind::gitea, "pull_request_review_approved", true},
      {HostKind::gitea, "pull_request_review_rejected", true},
      {HostKind::gitea, "pull_request_review_comment", true},
      {HostKind::gitea, "status", true},
      {HostKind::gitea, "push", true},
      {HostKind::gitea, "issues", false},
      {HostKind::gitea, "Push Hook", false},
  }));
  INFO(to_string(host) << " " << type);
  CHECK(is_used_event(host, type) == used);
}

TEST_CASE("an unused event type is ignored whatever its body", "[webhooks]") {
  for (const char* body : {"null", "[]", "{}", "\"text\"", "{\"action\": 5}"}) {
    require_ignored(HostKind::github, "ping", parse(body));
    require_ignored(HostKind::gitlab, "Issue Hook", parse(body));
    require_ignored(HostKind::gitea, "fork", parse(body));
  }
}
