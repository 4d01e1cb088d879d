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
