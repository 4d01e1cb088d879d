#include "webhooks/normalize_common.hpp"

#include <unordered_set>
#include <utility>

namespace tollgate::webhooks::detail {

Normalized finish(const Reader& reader, Event event) {
  if (reader.failed()) return tl::unexpected(reader.error());
  return std::optional<Event>(std::move(event));
}

Normalized ignored(const Reader& reader) {
  if (reader.failed()) return tl::unexpected(reader.error());
  return std::optional<Event>();
}

PullRequest github_shaped_pull_request(const Node& pr, Actor (*user)(const Node&)) {
  PullRequest out;
  out.number = pr.positive_integer("number");
  out.url = pr.string("html_url");
  out.title = pr.string("title");
  Node head = pr.object("head");
  out.head_ref = head.string("ref");
  out.head_sha = head.commit_id("sha");
  out.base_ref = pr.object("base").string("ref");
  out.author = user(pr.object("user"));
  return out;
}

ChangedFiles changed_files(const Node& commits) {
  ChangedFiles out;
  std::unordered_set<std::string> seen;
  for (std::size_t i = 0; i < commits.size(); ++i) {
    Node commit = commits.element(i);
    for (std::string_view list : {"added", "modified", "removed"}) {
      Node paths = commit.optional_array(list);
      if (!paths) {
        out.complete = false;
        continue;
      }
      for (std::size_t j = 0; j < paths.size(); ++j) {
        std::string path = paths.string_element(j);
        if (path.empty()) continue;
        if (seen.insert(path).second) out.files.push_back(std::move(path));
      }
    }
  }
  return out;
}

}  // namespace tollgate::webhooks::detail
