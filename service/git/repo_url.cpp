#include "service/git/repo_url.hpp"

#include <vector>

namespace tollgate::git {
namespace {

bool safe_segment(std::string_view s) {
  if (s.empty() || s == "." || s == "..") return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.';
    if (!ok) return false;
  }
  return true;
}

bool safe_host(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
              c == ':' || c == '[' || c == ']';
    if (!ok) return false;
  }
  return s != "." && s != "..";
}

}  // namespace

std::string RepoUrl::mirror_dir() const {
  std::string h = host;
  for (char& c : h) {
    if (c == ':' || c == '[' || c == ']') c = '_';
  }
  return h + "/" + owner + "/" + name + ".git";
}

tl::expected<RepoUrl, std::string> parse_repo_url(std::string_view url) {
  RepoUrl out;
  auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return tl::unexpected(std::string("not an http(s) url"));
  out.scheme = std::string(url.substr(0, scheme_end));
  if (out.scheme != "http" && out.scheme != "https") {
    return tl::unexpected("unsupported scheme '" + out.scheme + "' (http or https)");
  }
  std::string_view rest = url.substr(scheme_end + 3);
  auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (authority.find('@') != std::string_view::npos) {
    return tl::unexpected(std::string("the url must not carry credentials"));
  }
  if (!safe_host(authority)) return tl::unexpected(std::string("invalid host in url"));
  out.host = std::string(authority);
  if (slash == std::string_view::npos) return tl::unexpected(std::string("the url has no owner/name path"));
  std::string_view path = rest.substr(slash + 1);
  if (auto q = path.find_first_of("?#"); q != std::string_view::npos) {
    return tl::unexpected(std::string("the url must not have a query or fragment"));
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  std::vector<std::string_view> segments;
  while (!path.empty()) {
    auto s = path.find('/');
    segments.push_back(path.substr(0, s));
    if (s == std::string_view::npos) break;
    path.remove_prefix(s + 1);
  }
  if (segments.size() < 2) return tl::unexpected(std::string("the url has no owner/name path"));
  std::string_view name = segments.back();
  if (name.size() > 4 && name.substr(name.size() - 4) == ".git") name.remove_suffix(4);
  std::string_view owner = segments[segments.size() - 2];
  if (!safe_segment(owner) || !safe_segment(name)) {
    return tl::unexpected(std::string("invalid owner or repository name in url"));
  }
  out.owner = std::string(owner);
  out.name = std::string(name);
  return out;
}

}  // namespace tollgate::git
