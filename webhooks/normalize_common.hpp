#pragma once
// Internals shared by the three host normalisers (github.cpp, gitlab.cpp, gitea.cpp).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <tl/expected.hpp>

#include "webhooks/event.hpp"
#include "webhooks/json_reader.hpp"

namespace tollgate::webhooks::detail {

using Normalized = tl::expected<std::optional<Event>, NormalizeError>;

[[nodiscard]] bool github_uses(std::string_view event_type);
[[nodiscard]] bool gitlab_uses(std::string_view event_type);
[[nodiscard]] bool gitea_uses(std::string_view event_type);

// Only called for used event types (normalize() filters the others out).
[[nodiscard]] Normalized normalize_github(std::string_view event_type, const nlohmann::json& payload);
[[nodiscard]] Normalized normalize_gitlab(std::string_view event_type, const nlohmann::json& payload);
[[nodiscard]] Normalized normalize_gitea(std::string_view event_type, const nlohmann::json& payload);

// The reader's first error, else the event.
[[nodiscard]] Normalized finish(const Reader& reader, Event event);
// The reader's first error, else "not an action tollgate acts on".
[[nodiscard]] Normalized ignored(const Reader& reader);

// A pull request object in GitHub's shape, which Gitea copies (number, html_url, title, head/base
// refs, head sha, user). `user` maps the host's user object (bot detection differs per host).
[[nodiscard]] PullRequest github_shaped_pull_request(const Node& pr, Actor (*user)(const Node&));

struct ChangedFiles {
  std::vector<std::string> files;  // first occurrence order, each path once
  bool complete = true;            // false when a commit came without its file lists
};
// The added, modified and removed paths of a push's commits array (GitHub, GitLab and Gitea all
// use these three names).
[[nodiscard]] ChangedFiles changed_files(const Node& commits);

}  // namespace tollgate::webhooks::detail
