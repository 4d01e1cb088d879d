#pragma once
// A repository's HTTPS URL taken apart: where its mirror lives, and how it may appear in logs.
#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace tollgate::git {

struct RepoUrl {
  std::string scheme;  // http | https
  std::string host;    // with the port, if any
  std::string owner;
  std::string name;    // without `.git`

  // `owner/name`, the repository's name in messages and logs.
  [[nodiscard]] std::string full_name() const { return owner + "/" + name; }
  // The mirror's folder under <data_dir>/mirrors: `host/owner/name.git` (`:` of a port as `_`).
  [[nodiscard]] std::string mirror_dir() const;
};

// Accepts http(s)://host[:port]/[prefix/]owner/name[.git]; refuses credentials in the URL (they
// would end up in logs and in the mirror's config) and path segments that could escape data_dir.
[[nodiscard]] tl::expected<RepoUrl, std::string> parse_repo_url(std::string_view url);

}  // namespace tollgate::git
