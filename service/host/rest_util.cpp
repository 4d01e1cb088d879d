#include "service/host/rest_util.hpp"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

namespace tollgate::service::host {

std::string sticky_marker(const std::string& key) { return "<!-- tollgate:" + key + " -->"; }

HostResult<Repository> Host::get_repository(const RepoRef& repo) {
  return tl::unexpected(HostError{HostError::Kind::other, 0, "this host cannot describe " + repo.owner + "/" + repo.name});
}

HostResult<void> Host::publish_check(const RepoRef& repo, const std::string& sha, const CheckReport& report) {
  CommitStatus status;
  status.state = report.success ? "success" : "failure";
  status.context = report.name;
  status.description = report.title.size() > 140 ? report.title.substr(0, 137) + "..." : report.title;
  return set_commit_status(repo, sha, status);
}

HostResult<std::string> Host::current_user() {
  return tl::unexpected(HostError{HostError::Kind::other, 0, "this host cannot name the token's user"});
}

}  // namespace tollgate::service::host

namespace tollgate::service::host::rest {

std::string pct(std::string_view s, bool keep_slash) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

std::optional<std::int64_t> int_field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<std::int64_t>();
}

// json::value would throw on a type mismatch.
bool flag(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

std::string str_in(const json& j, const char* object, const char* key) {
  auto it = j.find(object);
  return it != j.end() && it->is_object() ? str(*it, key) : std::string{};
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
}

HostError bad_answer(std::string_view host, const std::string& what, const std::string& why) {
  return HostError{HostError::Kind::other, 0, std::string(host) + ": " + what + ": " + why};
}

HostError::Kind kind_of(int status) {
  switch (status) {
    case 401: return HostError::Kind::unauthorized;
    case 403: return HostError::Kind::forbidden;
    case 404: return HostError::Kind::not_found;
    case 409: return HostError::Kind::conflict;
    case 422: return HostError::Kind::validation;
    case 429: return HostError::Kind::rate_limited;
    default: return status >= 500 ? HostError::Kind::transient : HostError::Kind::other;
  }
}

std::string one_line(std::string message, int status) {
  if (message.empty()) return "http " + std::to_string(status);
  std::replace(message.begin(), message.end(), '\n', ' ');
  return message;
}

std::string next_link(const std::string& link) {
  std::size_t pos = 0;
  while ((pos = link.find('<', pos)) != std::string::npos) {
    const auto close = link.find('>', pos);
    if (close == std::string::npos) break;
    const auto end = link.find(',', close);
    const std::string params = link.substr(close, end == std::string::npos ? std::string::npos : end - close);
    if (params.find("rel=\"next\"") != std::string::npos) return link.substr(pos + 1, close - pos - 1);
    pos = close;
  }
  return {};
}

std::string_view method_name(MergeMethod m) {
  switch (m) {
    case MergeMethod::merge: return "merge";
    case MergeMethod::squash: return "squash";
    case MergeMethod::rebase: return "rebase";
  }
  return "merge";
}

bool better_match(const PullRequest& pr, const std::optional<PullRequest>& best) {
  return !best || (pr.state == "open" && best->state != "open") || (pr.state == best->state && pr.number > best->number);
}

HostResult<std::vector<PullRequest>> pulls_with_head(const std::vector<json>& items, const std::string& head_branch,
                                                     HostResult<PullRequest> (*parse)(const json&)) {
  std::vector<PullRequest> out;
  for (const auto& item : items) {
    auto pr = parse(item);
    if (!pr) return tl::unexpected(pr.error());
    if (pr->head_ref == head_branch) out.push_back(std::move(*pr));
  }
  return out;
}

std::string status_body(const CommitStatus& s, const std::string& state, const char* name_key) {
  json body = {{"state", state}, {name_key, s.context}};
  if (!s.description.empty()) body["description"] = s.description;
  if (!s.target_url.empty()) body["target_url"] = s.target_url;
  return body.dump();
}

std::optional<PullRequestUpdate> follow_up(const NewPullRequest& spec) {
  PullRequestUpdate extras;
  if (!spec.labels.empty()) extras.labels = spec.labels;
  extras.reviewers = spec.reviewers;
  if (!extras.labels && extras.reviewers.empty()) return std::nullopt;
  return extras;
}

HostResult<Comment> upsert_sticky(const std::string& key, const std::string& text, int attempts, const StickyHint& hint,
                                  const StickyComments& comments) {
  const std::string marker = sticky_marker(key);
  const std::string full = text.find(marker) != std::string::npos ? text : marker + "\n" + text;
  if (hint.comment_id > 0) {
    auto edited = comments.edit(hint.comment_id, full);
    if (edited) return Comment{hint.comment_id, full, {}};
    // Deleted since (or never ours to edit): find it or post it as without the hint.
    if (edited.error().kind != HostError::Kind::not_found) return tl::unexpected(edited.error());
  }
  HostError last{HostError::Kind::other, 0, "sticky comment: no attempt"};
  for (int round = 0; round < std::max(attempts, 1); ++round) {
    if (round == 0 && hint.new_pr && hint.comment_id <= 0) {
      auto posted = comments.post(full);
      if (posted || posted.error().kind != HostError::Kind::transient) return posted;
      last = posted.error();
      continue;
    }
    auto items = comments.list();
    if (!items) return tl::unexpected(items.error());
    for (const auto& item : *items) {
      if (comments.ignore && comments.ignore(item)) continue;
      if (str(item, "body").find(marker) == std::string::npos) continue;
      auto found = comments.read(item);
      if (!found || found->body == full) return found;
      auto edited = comments.edit(found->id, full);
      if (!edited) return tl::unexpected(edited.error());
      found->body = full;
      return found;
    }
    auto posted = comments.post(full);
    if (posted || posted.error().kind != HostError::Kind::transient) return posted;
    last = posted.error();
  }
  return tl::unexpected(last);
}

Client::Client(HttpClient& http, std::shared_ptr<TokenSource> auth, std::string api_url, Dialect dialect)
    : http_(http), auth_(std::move(auth)), api_url_(std::move(api_url)), dialect_(std::move(dialect)) {
  while (api_url_.ends_with('/')) api_url_.pop_back();
}

HostResult<HttpResponse> Client::call(const std::string& method, const std::string& path, const std::string* body, bool retry_safe,
                                      std::initializer_list<int> ok, const std::string& accept) {
  HttpRequest req;
  req.method = method;
  req.url = path.starts_with("http") ? path : api_url_ + path;
  req.retry_safe = retry_safe;
  req.headers = dialect_.headers;
  if (!accept.empty())
    for (auto& [name, value] : req.headers)
      if (name == "Accept") value = accept;
  if (auth_) {
    auto token = auth_->token();
    if (!token) return tl::unexpected(token.error());
    req.headers.emplace_back(dialect_.auth_header, dialect_.auth_scheme + *token);
  }
  if (body) {
    req.body = *body;
    req.headers.emplace_back("Content-Type", "application/json");
  }
  const std::string where = method + " " + path.substr(0, path.find('?'));
  auto res = http_.request(std::move(req));
  if (!res) {
    const auto k = res.error().kind;
    const auto kind = k == HttpErrorKind::rate_limited ? HostError::Kind::rate_limited
                      : (k == HttpErrorKind::timeout || k == HttpErrorKind::reset || k == HttpErrorKind::connect)
                          ? HostError::Kind::transient
                          : HostError::Kind::other;
    return tl::unexpected(HostError{kind, 0, where + ": " + res.error().message});
  }
  if (std::find(ok.begin(), ok.end(), res->status) != ok.end()) return std::move(*res);
  return tl::unexpected(
      HostError{dialect_.kind_of(res->status), res->status, where + ": " + std::to_string(res->status) + " " + dialect_.describe(*res)});
}

HostResult<void> Client::send(const std::string& method, const std::string& path, const std::string& body, bool retry_safe,
                              std::initializer_list<int> ok) {
  auto res = call(method, path, &body, retry_safe, ok);
  if (!res) return tl::unexpected(res.error());
  return {};
}

HostResult<std::vector<std::string>> Client::get_pages(const std::string& path, int max_pages) {
  std::vector<std::string> pages;
  std::string next = path;
  for (int i = 0; !next.empty() && i < max_pages; ++i) {
    auto res = call("GET", next, nullptr, false, {200});
    if (!res) return tl::unexpected(res.error());
    std::string following = dialect_.next_page ? dialect_.next_page(next, *res) : next_link(res->header("link"));
    pages.push_back(std::move(res->body));
    next = std::move(following);
  }
  return pages;
}

HostResult<std::vector<json>> Client::get_list(const std::string& path, const HostError& not_a_list, int max_pages) {
  auto pages = get_pages(path, max_pages);
  if (!pages) return tl::unexpected(pages.error());
  std::vector<json> items;
  for (const auto& page : *pages) {
    json j = json::parse(page, nullptr, false);
    if (!j.is_array()) return tl::unexpected(not_a_list);
    for (auto& item : j) items.push_back(std::move(item));
  }
  return items;
}

ReviewerSplit split_reviewers(const std::vector<std::string>& reviewers) {
  ReviewerSplit out;
  for (const auto& r : reviewers) {
    if (r.size() > 1 && r[0] == '@') {
      const auto slash = r.find('/');
      out.teams.push_back(slash == std::string::npos ? r.substr(1) : r.substr(slash + 1));
    } else {
      out.users.push_back(r);
    }
  }
  return out;
}

}  // namespace tollgate::service::host::rest
