#include "service/host/github_host.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace tollgate::service::host {

using nlohmann::json;

std::string sticky_marker(const std::string& key) { return "<!-- tollgate:" + key + " -->"; }

namespace {

std::string pct(std::string_view s, bool keep_slash = false) {
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

std::string repo_path(const RepoRef& r) { return "/repos/" + pct(r.owner) + "/" + pct(r.name); }

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

std::int64_t num(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<std::int64_t>() : 0;
}

std::string login_of(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_object() ? str(*it, "login") : std::string{};
}

HostError::Kind kind_of(int status) {
  switch (status) {
    case 401: return HostError::Kind::unauthorized;
    case 403: return HostError::Kind::forbidden;
    case 404: return HostError::Kind::not_found;
    case 409: return HostError::Kind::conflict;
    case 422: return HostError::Kind::validation;
    default: return status >= 500 ? HostError::Kind::transient : HostError::Kind::other;
  }
}

// "Validation Failed: A pull request already exists for acme:b." — GitHub's message, then each
// entry of errors[] (a string, a message, or resource/field/code).
std::string describe(const HttpResponse& r) {
  const json j = json::parse(r.body, nullptr, false);
  if (!j.is_object()) return "http " + std::to_string(r.status);
  std::string out = str(j, "message");
  if (out.empty()) out = "http " + std::to_string(r.status);
  if (auto it = j.find("errors"); it != j.end() && it->is_array()) {
    std::vector<std::string> parts;
    for (const auto& e : *it) {
      if (e.is_string()) {
        parts.push_back(e.get<std::string>());
      } else if (e.is_object() && !str(e, "message").empty()) {
        parts.push_back(str(e, "message"));
      } else if (e.is_object()) {
        parts.push_back(str(e, "resource") + " '" + str(e, "field") + "' " + str(e, "code"));
      }
    }
    for (std::size_t i = 0; i < parts.size(); ++i) out += (i == 0 ? ": " : "; ") + parts[i];
  }
  for (char& c : out)
    if (c == '\n') c = ' ';
  return out;
}

PullRequest pr_from(const json& j) {
  PullRequest pr;
  pr.number = num(j, "number");
  pr.state = str(j, "state");
  pr.merged = j.value("merged", false) || !j.value("merged_at", json()).is_null();
  pr.draft = j.value("draft", false);
  pr.title = str(j, "title");
  pr.body = str(j, "body");
  pr.html_url = str(j, "html_url");
  pr.author = login_of(j, "user");
  if (auto h = j.find("head"); h != j.end() && h->is_object()) {
    pr.head_ref = str(*h, "ref");
    pr.head_sha = str(*h, "sha");
  }
  if (auto b = j.find("base"); b != j.end() && b->is_object()) pr.base_ref = str(*b, "ref");
  if (auto m = j.find("mergeable"); m != j.end() && m->is_boolean()) pr.mergeable = m->get<bool>();
  pr.mergeable_state = str(j, "mergeable_state");
  pr.merge_commit_sha = str(j, "merge_commit_sha");
  if (auto l = j.find("labels"); l != j.end() && l->is_array())
    for (const auto& label : *l) pr.labels.push_back(label.is_object() ? str(label, "name") : std::string{});
  return pr;
}

// The URL of rel="next" in a Link header, or empty.
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

template <typename T>
HostResult<T> parse_error(const std::string& what) {
  return tl::unexpected(HostError{HostError::Kind::other, 0, what + ": unexpected response body"});
}

}  // namespace

GitHubHost::GitHubHost(HttpClient& client, std::shared_ptr<TokenSource> auth, GitHubHostOptions options)
    : client_(client), auth_(std::move(auth)), options_(std::move(options)) {
  while (options_.api_url.ends_with('/')) options_.api_url.pop_back();
}

HostResult<HttpResponse> GitHubHost::call(const std::string& method, const std::string& path, const std::string* body,
                                          bool retry_safe, std::initializer_list<int> ok, const std::string& accept) {
  HttpRequest req;
  req.method = method;
  req.url = path.starts_with("http") ? path : options_.api_url + path;
  req.retry_safe = retry_safe;
  req.headers = {{"Accept", accept.empty() ? "application/vnd.github+json" : accept}, {"X-GitHub-Api-Version", "2022-11-28"}};
  if (auth_) {
    auto token = auth_->token();
    if (!token) return tl::unexpected(token.error());
    req.headers.emplace_back("Authorization", "Bearer " + *token);
  }
  if (body) {
    req.body = *body;
    req.headers.emplace_back("Content-Type", "application/json");
  }
  const std::string where = method + " " + path.substr(0, path.find('?'));
  auto res = client_.request(std::move(req));
  if (!res) {
    const auto k = res.error().kind;
    const auto kind = k == HttpErrorKind::rate_limited ? HostError::Kind::rate_limited
                      : (k == HttpErrorKind::timeout || k == HttpErrorKind::reset || k == HttpErrorKind::connect)
                          ? HostError::Kind::transient
                          : HostError::Kind::other;
    return tl::unexpected(HostError{kind, 0, where + ": " + res.error().message});
  }
  if (std::find(ok.begin(), ok.end(), res->status) != ok.end()) return std::move(*res);
  return tl::unexpected(HostError{kind_of(res->status), res->status, where + ": " + std::to_string(res->status) + " " + describe(*res)});
}

HostResult<std::vector<std::string>> GitHubHost::get_pages(const std::string& path) {
  std::vector<std::string> pages;
  std::string next = path;
  for (int i = 0; !next.empty() && i < 100; ++i) {
    auto res = call("GET", next, nullptr, false, {200});
    if (!res) return tl::unexpected(res.error());
    pages.push_back(std::move(res->body));
    next = next_link(res->header("link"));
  }
  return pages;
}

HostResult<std::optional<PullRequest>> GitHubHost::find_pull_request(const RepoRef& repo, const std::string& head_branch) {
  auto pages = get_pages(repo_path(repo) + "/pulls?state=all&per_page=" + std::to_string(options_.per_page) + "&head=" + pct(repo.owner + ":" + head_branch));
  if (!pages) return tl::unexpected(pages.error());
  std::optional<PullRequest> best;
  for (const auto& page : *pages) {
    const json j = json::parse(page, nullptr, false);
    if (!j.is_array()) return parse_error<std::optional<PullRequest>>("find pull request");
    for (const auto& item : j) {
      PullRequest pr = pr_from(item);
      if (pr.head_ref != head_branch) continue;
      // An open one wins; among closed ones, the newest.
      if (!best || (pr.state == "open" && best->state != "open") || (pr.state == best->state && pr.number > best->number))
        best = std::move(pr);
    }
  }
  return best;
}

HostResult<PullRequest> GitHubHost::create_pull_request(const RepoRef& repo, const NewPullRequest& spec) {
  // Find before create: a PR from an earlier attempt (or a lost response) is reused.
  auto existing = find_pull_request(repo, spec.head);
  if (!existing) return tl::unexpected(existing.error());
  PullRequest pr;
  if (*existing && (*existing)->state == "open") {
    pr = **existing;
  } else {
    json body = {{"title", spec.title}, {"head", spec.head}, {"base", spec.base}, {"body", spec.body}, {"draft", spec.draft}};
    const std::string text = body.dump();
    // Safe to resend: GitHub refuses a second open PR for the same head with a 422.
    auto res = call("POST", repo_path(repo) + "/pulls", &text, true, {201});
    if (!res) {
      if (res.error().kind != HostError::Kind::validation || res.error().message.find("already exists") == std::string::npos)
        return tl::unexpected(res.error());
      auto again = find_pull_request(repo, spec.head);
      if (!again) return tl::unexpected(again.error());
      if (!*again) return tl::unexpected(res.error());
      pr = **again;
    } else {
      const json j = json::parse(res->body, nullptr, false);
      if (!j.is_object()) return parse_error<PullRequest>("create pull request");
      pr = pr_from(j);
    }
  }
  PullRequestUpdate extras;
  if (!spec.labels.empty()) extras.labels = spec.labels;
  extras.reviewers = spec.reviewers;
  if (!extras.labels && extras.reviewers.empty()) return pr;
  return update_pull_request(repo, pr.number, extras);
}

HostResult<PullRequest> GitHubHost::update_pull_request(const RepoRef& repo, std::int64_t number, const PullRequestUpdate& u) {
  const std::string path = repo_path(repo) + "/pulls/" + std::to_string(number);
  std::optional<PullRequest> result;
  json patch = json::object();
  if (u.title) patch["title"] = *u.title;
  if (u.body) patch["body"] = *u.body;
  if (u.base) patch["base"] = *u.base;
  if (!patch.empty()) {
    const std::string text = patch.dump();
    auto res = call("PATCH", path, &text, true, {200});  // absolute values: safe to resend
    if (!res) return tl::unexpected(res.error());
    const json j = json::parse(res->body, nullptr, false);
    if (!j.is_object()) return parse_error<PullRequest>("update pull request");
    result = pr_from(j);
  }
  if (u.labels) {
    const std::string text = json{{"labels", *u.labels}}.dump();
    auto res = call("PUT", repo_path(repo) + "/issues/" + std::to_string(number) + "/labels", &text, true, {200});
    if (!res) return tl::unexpected(res.error());
    if (result) {
      result->labels.clear();
      const json j = json::parse(res->body, nullptr, false);
      if (j.is_array())
        for (const auto& l : j) result->labels.push_back(str(l, "name"));
    }
  }
  if (!u.reviewers.empty()) {
    const std::string text = json{{"reviewers", u.reviewers}}.dump();
    auto res = call("POST", path + "/requested_reviewers", &text, true, {201});  // adding twice is harmless
    if (!res) return tl::unexpected(res.error());
  }
  if (result && !u.labels) return *result;
  return get_pull_request(repo, number);
}

HostResult<PullRequest> GitHubHost::close_pull_request(const RepoRef& repo, std::int64_t number) {
  const std::string text = json{{"state", "closed"}}.dump();
  auto res = call("PATCH", repo_path(repo) + "/pulls/" + std::to_string(number), &text, true, {200});
  if (!res) return tl::unexpected(res.error());
  const json j = json::parse(res->body, nullptr, false);
  if (!j.is_object()) return parse_error<PullRequest>("close pull request");
  return pr_from(j);
}

HostResult<PullRequest> GitHubHost::get_pull_request(const RepoRef& repo, std::int64_t number) {
  auto res = call("GET", repo_path(repo) + "/pulls/" + std::to_string(number), nullptr, false, {200});
  if (!res) return tl::unexpected(res.error());
  const json j = json::parse(res->body, nullptr, false);
  if (!j.is_object()) return parse_error<PullRequest>("get pull request");
  return pr_from(j);
}

HostResult<MergeResult> GitHubHost::merge_pull_request(const RepoRef& repo, std::int64_t number, const std::string& expected_head_sha,
                                                       MergeMethod method, const std::string& commit_title) {
  json body = {{"sha", expected_head_sha}, {"merge_method", method_name(method)}};
  if (!commit_title.empty()) body["commit_title"] = commit_title;
  const std::string text = body.dump();
  auto res = call("PUT", repo_path(repo) + "/pulls/" + std::to_string(number) + "/merge", &text, true, {200, 405, 409});
  if (!res) return tl::unexpected(res.error());
  const json j = json::parse(res->body, nullptr, false);
  MergeResult out;
  out.message = j.is_object() ? str(j, "message") : std::string{};
  if (res->status == 200) {
    out.outcome = MergeOutcome::merged;
    out.sha = j.is_object() ? str(j, "sha") : std::string{};
    return out;
  }
  if (res->status == 405 && res->attempts > 1) {
    // A resent merge whose first attempt went through answers 405 (already merged).
    auto pr = get_pull_request(repo, number);
    if (pr && pr->merged && pr->head_sha == expected_head_sha) return MergeResult{MergeOutcome::merged, pr->merge_commit_sha, {}};
  }
  out.outcome = res->status == 405 ? MergeOutcome::not_mergeable : MergeOutcome::head_moved;
  return out;
}

HostResult<Comment> GitHubHost::upsert_sticky_comment(const RepoRef& repo, std::int64_t number, const std::string& key,
                                                      const std::string& text) {
  const std::string marker = sticky_marker(key);
  const std::string full = text.find(marker) != std::string::npos ? text : marker + "\n" + text;
  const std::string list_path = repo_path(repo) + "/issues/" + std::to_string(number) + "/comments?per_page=" + std::to_string(options_.per_page);
  HostError last{HostError::Kind::other, 0, "sticky comment: no attempt"};
  for (int round = 0; round < std::max(options_.create_attempts, 1); ++round) {
    // Find before create: a comment posted by an attempt whose answer was lost is found here.
    auto pages = get_pages(list_path);
    if (!pages) return tl::unexpected(pages.error());
    for (const auto& page : *pages) {
      const json j = json::parse(page, nullptr, false);
      if (!j.is_array()) return parse_error<Comment>("list comments");
      for (const auto& c : j) {
        const std::string b = str(c, "body");
        if (b.find(marker) == std::string::npos) continue;
        Comment found{num(c, "id"), b, login_of(c, "user")};
        if (b == full) return found;
        const std::string patch = json{{"body", full}}.dump();
        auto res = call("PATCH", repo_path(repo) + "/issues/comments/" + std::to_string(found.id), &patch, true, {200});
        if (!res) return tl::unexpected(res.error());
        found.body = full;
        return found;
      }
    }
    const std::string post = json{{"body", full}}.dump();
    auto res = call("POST", repo_path(repo) + "/issues/" + std::to_string(number) + "/comments", &post, false, {201});
    if (res) {
      const json c = json::parse(res->body, nullptr, false);
      if (!c.is_object()) return parse_error<Comment>("create comment");
      return Comment{num(c, "id"), str(c, "body"), login_of(c, "user")};
    }
    if (res.error().kind != HostError::Kind::transient) return tl::unexpected(res.error());
    last = res.error();
  }
  return tl::unexpected(last);
}

HostResult<void> GitHubHost::add_reaction(const RepoRef& repo, std::int64_t /*number*/, std::int64_t comment_id, const std::string& content) {
  const std::string text = json{{"content", content}}.dump();
  // GitHub answers 200 with the existing reaction on a repeat: safe to resend.
  auto res = call("POST", repo_path(repo) + "/issues/comments/" + std::to_string(comment_id) + "/reactions", &text, true, {200, 201});
  if (!res) return tl::unexpected(res.error());
  return {};
}

HostResult<void> GitHubHost::set_commit_status(const RepoRef& repo, const std::string& sha, const CommitStatus& s) {
  json body = {{"state", s.state}, {"context", s.context}};
  if (!s.description.empty()) body["description"] = s.description;
  if (!s.target_url.empty()) body["target_url"] = s.target_url;
  const std::string text = body.dump();
  // A repeated status with the same context replaces the first one: safe to resend.
  auto res = call("POST", repo_path(repo) + "/statuses/" + pct(sha), &text, true, {201});
  if (!res) return tl::unexpected(res.error());
  return {};
}

HostResult<Checks> GitHubHost::get_checks(const RepoRef& repo, const std::string& ref) {
  Checks out;
  auto status = call("GET", repo_path(repo) + "/commits/" + pct(ref) + "/status?per_page=100", nullptr, false, {200});
  if (!status) return tl::unexpected(status.error());
  const json s = json::parse(status->body, nullptr, false);
  if (!s.is_object()) return parse_error<Checks>("combined status");
  out.combined_state = str(s, "state");
  if (auto it = s.find("statuses"); it != s.end() && it->is_array())
    for (const auto& st : *it) out.checks.push_back(Check{Check::Source::status, str(st, "context"), str(st, "state"), {}});
  auto pages = get_pages(repo_path(repo) + "/commits/" + pct(ref) + "/check-runs?per_page=" + std::to_string(options_.per_page));
  if (!pages) return tl::unexpected(pages.error());
  for (const auto& page : *pages) {
    const json c = json::parse(page, nullptr, false);
    if (!c.is_object()) return parse_error<Checks>("check runs");
    if (auto it = c.find("check_runs"); it != c.end() && it->is_array())
      for (const auto& run : *it) out.checks.push_back(Check{Check::Source::check_run, str(run, "name"), str(run, "status"), str(run, "conclusion")});
  }
  return out;
}

HostResult<std::vector<Review>> GitHubHost::list_reviews(const RepoRef& repo, std::int64_t number) {
  auto pages = get_pages(repo_path(repo) + "/pulls/" + std::to_string(number) + "/reviews?per_page=" + std::to_string(options_.per_page));
  if (!pages) return tl::unexpected(pages.error());
  std::vector<Review> out;
  for (const auto& page : *pages) {
    const json j = json::parse(page, nullptr, false);
    if (!j.is_array()) return parse_error<std::vector<Review>>("list reviews");
    for (const auto& r : j) out.push_back(Review{num(r, "id"), login_of(r, "user"), str(r, "state"), str(r, "commit_id")});
  }
  return out;
}

HostResult<Permission> GitHubHost::user_permission(const RepoRef& repo, const std::string& login) {
  auto res = call("GET", repo_path(repo) + "/collaborators/" + pct(login) + "/permission", nullptr, false, {200, 404});
  if (!res) return tl::unexpected(res.error());
  if (res->status == 404) return Permission::none;
  const json j = json::parse(res->body, nullptr, false);
  if (!j.is_object()) return parse_error<Permission>("user permission");
  // role_name carries the finer roles (triage, maintain) that "permission" folds into read/write.
  const std::string role = str(j, "role_name");
  if (role == "triage") return Permission::triage;
  if (role == "maintain") return Permission::maintain;
  const std::string p = str(j, "permission");
  if (p == "admin") return Permission::admin;
  if (p == "maintain") return Permission::maintain;
  if (p == "write") return Permission::write;
  if (p == "triage") return Permission::triage;
  if (p == "read") return Permission::read;
  return Permission::none;
}

HostResult<bool> GitHubHost::is_team_member(const std::string& org, const std::string& team, const std::string& login) {
  auto res = call("GET", "/orgs/" + pct(org) + "/teams/" + pct(team) + "/memberships/" + pct(login), nullptr, false, {200, 404});
  if (!res) return tl::unexpected(res.error());
  if (res->status == 404) return false;
  const json j = json::parse(res->body, nullptr, false);
  return j.is_object() && str(j, "state") == "active";
}

HostResult<std::optional<std::string>> GitHubHost::read_file(const RepoRef& repo, const std::string& path, const std::string& ref) {
  auto res = call("GET", repo_path(repo) + "/contents/" + pct(path, true) + "?ref=" + pct(ref), nullptr, false, {200, 404},
                  "application/vnd.github.raw");
  if (!res) return tl::unexpected(res.error());
  if (res->status == 404) return std::optional<std::string>{};
  return std::optional<std::string>{std::move(res->body)};
}

HostResult<std::vector<ChangedFile>> GitHubHost::list_changed_files(const RepoRef& repo, std::int64_t number) {
  auto pages = get_pages(repo_path(repo) + "/pulls/" + std::to_string(number) + "/files?per_page=" + std::to_string(options_.per_page));
  if (!pages) return tl::unexpected(pages.error());
  std::vector<ChangedFile> out;
  for (const auto& page : *pages) {
    const json j = json::parse(page, nullptr, false);
    if (!j.is_array()) return parse_error<std::vector<ChangedFile>>("list files");
    for (const auto& f : j) out.push_back(ChangedFile{str(f, "filename"), str(f, "status"), str(f, "previous_filename")});
  }
  return out;
}

}  // namespace tollgate::service::host
