#include "service/host/gitea_host.hpp"

#include <algorithm>
#include <cctype>
#include <string_view>

#include <nlohmann/json.hpp>

namespace tollgate::service::host {

using nlohmann::json;

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

std::optional<std::int64_t> int_field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<std::int64_t>();
}

// A boolean field; false when absent or not a boolean (json::value would throw on a mismatch).
bool flag(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

std::string login_of(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_object() ? str(*it, "login") : std::string{};
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
}

HostError bad_answer(const std::string& what, const std::string& why) {
  return HostError{HostError::Kind::other, 0, "gitea: " + what + ": " + why};
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

// Gitea's APIError / APIValidationError / APINotFound: {"message", "url"} plus "errors" on 404s.
std::string describe(const HttpResponse& r) {
  const json j = json::parse(r.body, nullptr, false);
  std::string out = j.is_object() ? str(j, "message") : std::string{};
  if (j.is_object())
    if (auto e = j.find("errors"); e != j.end() && e->is_array())
      for (const auto& item : *e)
        if (item.is_string()) out += (out.empty() ? "" : ": ") + item.get<std::string>();
  if (out.empty()) out = "http " + std::to_string(r.status);
  for (char& c : out)
    if (c == '\n') c = ' ';
  return out;
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

// Gitea marks work in progress by a title prefix (WORK_IN_PROGRESS_PREFIXES, "WIP:" and "[WIP]"
// by default); newer versions also answer "draft".
bool wip_title(std::string_view title) {
  auto starts = [&](std::string_view p) { return title.size() >= p.size() && iequals(title.substr(0, p.size()), p); };
  return starts("WIP:") || starts("[WIP]");
}

HostResult<PullRequest> pull_from(const json& j) {
  if (!j.is_object()) return tl::unexpected(bad_answer("pull request", "not an object"));
  const auto number = int_field(j, "number");
  if (!number) return tl::unexpected(bad_answer("pull request", "no 'number'"));
  const std::string where = "pull request #" + std::to_string(*number);
  PullRequest pr;
  pr.number = *number;
  pr.state = str(j, "state");
  if (pr.state != "open" && pr.state != "closed") return tl::unexpected(bad_answer(where, "no 'state' (open | closed)"));
  pr.merged = flag(j, "merged");
  pr.title = str(j, "title");
  pr.draft = j.contains("draft") && j["draft"].is_boolean() ? j["draft"].get<bool>() : wip_title(pr.title);
  pr.body = str(j, "body");
  pr.html_url = str(j, "html_url");
  pr.author = login_of(j, "user");
  const auto head = j.find("head");
  const auto base = j.find("base");
  if (head == j.end() || !head->is_object() || base == j.end() || !base->is_object())
    return tl::unexpected(bad_answer(where, "no 'head' or 'base'"));
  pr.head_ref = str(*head, "ref");
  pr.head_sha = str(*head, "sha");
  pr.base_ref = str(*base, "ref");
  if (pr.head_ref.empty() || pr.base_ref.empty()) return tl::unexpected(bad_answer(where, "no 'head.ref' or 'base.ref'"));
  if (auto m = j.find("mergeable"); m != j.end() && m->is_boolean() && pr.state == "open") pr.mergeable = m->get<bool>();
  pr.merge_commit_sha = str(j, "merge_commit_sha");
  if (auto l = j.find("labels"); l != j.end() && l->is_array())
    for (const auto& label : *l)
      if (label.is_object()) pr.labels.push_back(str(label, "name"));
  return pr;
}

std::string_view merge_style(MergeMethod m) {
  switch (m) {
    case MergeMethod::merge: return "merge";
    case MergeMethod::squash: return "squash";
    case MergeMethod::rebase: return "rebase";
  }
  return "merge";
}

}  // namespace

GiteaHost::GiteaHost(HttpClient& client, std::shared_ptr<TokenSource> auth, GiteaHostOptions options)
    : client_(client), auth_(std::move(auth)), options_(std::move(options)) {
  while (options_.api_url.ends_with('/')) options_.api_url.pop_back();
}

HostResult<HttpResponse> GiteaHost::call(const std::string& method, const std::string& path, const std::string* body, bool retry_safe,
                                         std::initializer_list<int> ok) {
  HttpRequest req;
  req.method = method;
  req.url = path.starts_with("http") ? path : options_.api_url + path;
  req.retry_safe = retry_safe;
  req.headers = {{"Accept", "application/json"}};
  if (auth_) {
    auto token = auth_->token();
    if (!token) return tl::unexpected(token.error());
    req.headers.emplace_back("Authorization", "token " + *token);
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

HostResult<std::vector<std::string>> GiteaHost::get_pages(const std::string& path, int max_pages) {
  std::vector<std::string> pages;
  std::string next = path;
  for (int i = 0; !next.empty() && i < max_pages; ++i) {
    auto res = call("GET", next, nullptr, false, {200});
    if (!res) return tl::unexpected(res.error());
    pages.push_back(std::move(res->body));
    next = next_link(res->header("link"));
  }
  return pages;
}

HostResult<std::vector<PullRequest>> GiteaHost::open_pulls_for(const RepoRef& repo, const std::string& head_branch) {
  auto pages = get_pages(repo_path(repo) + "/pulls?state=open&limit=" + std::to_string(options_.limit));
  if (!pages) return tl::unexpected(pages.error());
  std::vector<PullRequest> out;
  for (const auto& page : *pages) {
    const json j = json::parse(page, nullptr, false);
    if (!j.is_array()) return tl::unexpected(bad_answer("pull requests", "not a list"));
    for (const auto& item : j) {
      auto pr = pull_from(item);
      if (!pr) return tl::unexpected(pr.error());
      if (pr->head_ref == head_branch) out.push_back(std::move(*pr));
    }
  }
  return out;
}

HostResult<std::optional<PullRequest>> GiteaHost::find_pull_request(const RepoRef& repo, const std::string& head_branch) {
  auto open = open_pulls_for(repo, head_branch);
  if (!open) return tl::unexpected(open.error());
  if (!open->empty()) return std::optional<PullRequest>{open->front()};
  auto pages = get_pages(repo_path(repo) + "/pulls?state=closed&sort=recentupdate&limit=" + std::to_string(options_.limit), options_.closed_pages);
  if (!pages) return tl::unexpected(pages.error());
  std::optional<PullRequest> best;
  for (const auto& page : *pages) {
    const json j = json::parse(page, nullptr, false);
    if (!j.is_array()) return tl::unexpected(bad_answer("pull requests", "not a list"));
    for (const auto& item : j) {
      auto pr = pull_from(item);
      if (!pr) return tl::unexpected(pr.error());
      if (pr->head_ref == head_branch && (!best || pr->number > best->number)) best = std::move(*pr);
    }
  }
  return best;
}

HostResult<std::vector<std::int64_t>> GiteaHost::label_ids(const RepoRef& repo, const std::vector<std::string>& names) {
  std::vector<std::int64_t> ids;
  if (names.empty()) return ids;
  auto pages = get_pages(repo_path(repo) + "/labels?limit=" + std::to_string(options_.limit));
  if (!pages) return tl::unexpected(pages.error());
  std::vector<std::pair<std::string, std::int64_t>> known;
  for (const auto& page : *pages) {
    const json j = json::parse(page, nullptr, false);
    if (!j.is_array()) return tl::unexpected(bad_answer("labels", "not a list"));
    for (const auto& l : j)
      if (auto id = l.is_object() ? int_field(l, "id") : std::nullopt) known.emplace_back(str(l, "name"), *id);
  }
  for (const auto& name : names) {
    auto it = std::find_if(known.begin(), known.end(), [&](const auto& k) { return k.first == name; });
    if (it == known.end())
      return tl::unexpected(HostError{HostError::Kind::validation, 0,
                                      "gitea: label '" + name + "' does not exist in '" + repo.owner + "/" + repo.name + "'"});
    ids.push_back(it->second);
  }
  return ids;
}

HostResult<PullRequest> GiteaHost::create_pull_request(const RepoRef& repo, const NewPullRequest& spec) {
  // Find before create: a PR from an earlier attempt (or a lost response) is reused.
  auto open = open_pulls_for(repo, spec.head);
  if (!open) return tl::unexpected(open.error());
  PullRequest pr;
  if (!open->empty()) {
    pr = open->front();
    PullRequestUpdate extras;
    if (!spec.labels.empty()) extras.labels = spec.labels;
    extras.reviewers = spec.reviewers;
    if (!extras.labels && extras.reviewers.empty()) return pr;
    return update_pull_request(repo, pr.number, extras);
  }
  auto labels = label_ids(repo, spec.labels);
  if (!labels) return tl::unexpected(labels.error());
  json body = {{"head", spec.head},
               {"base", spec.base},
               {"title", spec.draft && !wip_title(spec.title) ? "WIP: " + spec.title : spec.title},
               {"body", spec.body}};
  if (!labels->empty()) body["labels"] = *labels;
  const std::string text = body.dump();
  // Safe to resend: Gitea refuses a second open PR for the same head and base with a 409.
  auto res = call("POST", repo_path(repo) + "/pulls", &text, true, {201});
  if (!res) {
    if (res.error().kind != HostError::Kind::conflict) return tl::unexpected(res.error());
    auto again = open_pulls_for(repo, spec.head);
    if (!again) return tl::unexpected(again.error());
    if (again->empty()) return tl::unexpected(res.error());
    pr = again->front();
  } else {
    auto created = pull_from(json::parse(res->body, nullptr, false));
    if (!created) return tl::unexpected(created.error());
    pr = std::move(*created);
  }
  if (spec.reviewers.empty()) return pr;
  return update_pull_request(repo, pr.number, PullRequestUpdate{.reviewers = spec.reviewers});
}

HostResult<PullRequest> GiteaHost::update_pull_request(const RepoRef& repo, std::int64_t number, const PullRequestUpdate& u) {
  const std::string path = repo_path(repo) + "/pulls/" + std::to_string(number);
  json patch = json::object();
  if (u.title) patch["title"] = *u.title;
  if (u.body) patch["body"] = *u.body;
  if (u.base) patch["base"] = *u.base;
  std::optional<PullRequest> result;
  if (!patch.empty()) {
    const std::string text = patch.dump();
    auto res = call("PATCH", path, &text, true, {200, 201});  // the swagger says 201; absolute values
    if (!res) return tl::unexpected(res.error());
    auto pr = pull_from(json::parse(res->body, nullptr, false));
    if (!pr) return tl::unexpected(pr.error());
    result = std::move(*pr);
  }
  if (u.labels) {
    auto ids = label_ids(repo, *u.labels);
    if (!ids) return tl::unexpected(ids.error());
    const std::string text = json{{"labels", *ids}}.dump();  // replaces the set; [] clears it
    auto res = call("PUT", repo_path(repo) + "/issues/" + std::to_string(number) + "/labels", &text, true, {200});
    if (!res) return tl::unexpected(res.error());
    if (result) result->labels = *u.labels;
  }
  if (!u.reviewers.empty()) {
    const std::string text = json{{"reviewers", u.reviewers}}.dump();
    auto res = call("POST", path + "/requested_reviewers", &text, true, {201});  // requesting twice is harmless
    if (!res) return tl::unexpected(res.error());
  }
  if (result) return *result;
  return get_pull_request(repo, number);
}

HostResult<PullRequest> GiteaHost::close_pull_request(const RepoRef& repo, std::int64_t number) {
  const std::string text = json{{"state", "closed"}}.dump();
  auto res = call("PATCH", repo_path(repo) + "/pulls/" + std::to_string(number), &text, true, {200, 201});
  if (!res) return tl::unexpected(res.error());
  return pull_from(json::parse(res->body, nullptr, false));
}

HostResult<PullRequest> GiteaHost::get_pull_request(const RepoRef& repo, std::int64_t number) {
  auto res = call("GET", repo_path(repo) + "/pulls/" + std::to_string(number), nullptr, false, {200});
  if (!res) return tl::unexpected(res.error());
  return pull_from(json::parse(res->body, nullptr, false));
}

HostResult<MergeResult> GiteaHost::merge_pull_request(const RepoRef& repo, std::int64_t number, const std::string& expected_head_sha,
                                                      MergeMethod method, const std::string& commit_title) {
  json body = {{"Do", merge_style(method)}, {"head_commit_id", expected_head_sha}};
  if (!commit_title.empty()) body["MergeTitleField"] = commit_title;
  const std::string text = body.dump();
  // Bound to the head commit, so a resend cannot merge anything else: 405 not mergeable (or
  // already merged), 409 head moved.
  auto res = call("POST", repo_path(repo) + "/pulls/" + std::to_string(number) + "/merge", &text, true, {200, 405, 409});
  if (!res) return tl::unexpected(res.error());
  if (res->status == 409) return MergeResult{MergeOutcome::head_moved, {}, describe(*res)};
  // The 200 answer is empty: the merge commit comes from the PR. A 405 for a PR merged at the
  // expected head (a resend whose first answer was lost) is a merge too.
  auto pr = get_pull_request(repo, number);
  if (res->status == 200) {
    if (!pr) return tl::unexpected(pr.error());
    return MergeResult{MergeOutcome::merged, pr->merge_commit_sha, {}};
  }
  if (pr && pr->merged && pr->head_sha == expected_head_sha) return MergeResult{MergeOutcome::merged, pr->merge_commit_sha, {}};
  return MergeResult{MergeOutcome::not_mergeable, {}, describe(*res)};
}

HostResult<Comment> GiteaHost::upsert_sticky_comment(const RepoRef& repo, std::int64_t number, const std::string& key,
                                                     const std::string& text) {
  const std::string marker = sticky_marker(key);
  const std::string full = text.find(marker) != std::string::npos ? text : marker + "\n" + text;
  HostError last{HostError::Kind::other, 0, "sticky comment: no attempt"};
  for (int round = 0; round < std::max(options_.create_attempts, 1); ++round) {
    // Find before create: a comment posted by an attempt whose answer was lost is found here.
    auto pages = get_pages(repo_path(repo) + "/issues/" + std::to_string(number) + "/comments");
    if (!pages) return tl::unexpected(pages.error());
    for (const auto& page : *pages) {
      const json j = json::parse(page, nullptr, false);
      if (!j.is_array()) return tl::unexpected(bad_answer("comments", "not a list"));
      for (const auto& c : j) {
        const std::string b = c.is_object() ? str(c, "body") : std::string{};
        if (b.find(marker) == std::string::npos) continue;
        const auto id = int_field(c, "id");
        if (!id) return tl::unexpected(bad_answer("comment", "no 'id'"));
        Comment found{*id, b, login_of(c, "user")};
        if (b == full) return found;
        const std::string patch = json{{"body", full}}.dump();
        auto res = call("PATCH", repo_path(repo) + "/issues/comments/" + std::to_string(*id), &patch, true, {200});
        if (!res) return tl::unexpected(res.error());
        found.body = full;
        return found;
      }
    }
    const std::string post = json{{"body", full}}.dump();
    auto res = call("POST", repo_path(repo) + "/issues/" + std::to_string(number) + "/comments", &post, false, {201});
    if (res) {
      const json c = json::parse(res->body, nullptr, false);
      const auto id = c.is_object() ? int_field(c, "id") : std::nullopt;
      if (!id) return tl::unexpected(bad_answer("created comment", "no 'id'"));
      return Comment{*id, str(c, "body"), login_of(c, "user")};
    }
    if (res.error().kind != HostError::Kind::transient) return tl::unexpected(res.error());
    last = res.error();
  }
  return tl::unexpected(last);
}

HostResult<void> GiteaHost::add_reaction(const RepoRef& repo, std::int64_t /*number*/, std::int64_t comment_id, const std::string& content) {
  const std::string text = json{{"content", content}}.dump();
  // 200 with the existing reaction on a repeat: safe to resend. A reaction outside the
  // instance's [ui] REACTIONS list is a 403.
  auto res = call("POST", repo_path(repo) + "/issues/comments/" + std::to_string(comment_id) + "/reactions", &text, true, {200, 201});
  if (!res) return tl::unexpected(res.error());
  return {};
}

HostResult<void> GiteaHost::set_commit_status(const RepoRef& repo, const std::string& sha, const CommitStatus& s) {
  json body = {{"state", s.state}, {"context", s.context}};
  if (!s.description.empty()) body["description"] = s.description;
  if (!s.target_url.empty()) body["target_url"] = s.target_url;
  const std::string text = body.dump();
  // A repeated status with the same context supersedes the first: safe to resend.
  auto res = call("POST", repo_path(repo) + "/statuses/" + pct(sha), &text, true, {200, 201});
  if (!res) return tl::unexpected(res.error());
  return {};
}

HostResult<Checks> GiteaHost::get_checks(const RepoRef& repo, const std::string& ref) {
  // Gitea Actions report as commit statuses: the combined status covers CI too.
  auto pages = get_pages(repo_path(repo) + "/commits/" + pct(ref) + "/status?limit=" + std::to_string(options_.limit));
  if (!pages) return tl::unexpected(pages.error());
  Checks out;
  for (const auto& page : *pages) {
    const json j = json::parse(page, nullptr, false);
    const auto statuses = j.is_object() ? j.find("statuses") : j.end();
    if (!j.is_object() || statuses == j.end() || !(statuses->is_array() || statuses->is_null()))
      return tl::unexpected(bad_answer("combined status", "no 'statuses'"));
    if (out.combined_state.empty()) out.combined_state = str(j, "state");
    if (statuses->is_array())
      for (const auto& st : *statuses) out.checks.push_back(Check{Check::Source::status, str(st, "context"), str(st, "status"), {}});
  }
  // Gitea's fifth state, warning, does not pass: tollgate treats it as a failure. No statuses
  // at all reads as pending, as on GitHub.
  if (out.combined_state == "warning" || out.combined_state == "error") out.combined_state = "failure";
  if (out.combined_state.empty()) out.combined_state = "pending";
  return out;
}

HostResult<std::vector<Review>> GiteaHost::list_reviews(const RepoRef& repo, std::int64_t number) {
  auto pages = get_pages(repo_path(repo) + "/pulls/" + std::to_string(number) + "/reviews?limit=" + std::to_string(options_.limit));
  if (!pages) return tl::unexpected(pages.error());
  std::vector<Review> out;
  for (const auto& page : *pages) {
    const json j = json::parse(page, nullptr, false);
    if (!j.is_array()) return tl::unexpected(bad_answer("reviews", "not a list"));
    for (const auto& r : j) {
      if (!r.is_object() || str(r, "state").empty()) return tl::unexpected(bad_answer("review", "no 'state'"));
      std::string state = str(r, "state");
      if (state == "REQUEST_REVIEW") continue;  // a pending request, not a review
      if (state == "REQUEST_CHANGES") state = "CHANGES_REQUESTED";
      if (state == "COMMENT") state = "COMMENTED";
      if (flag(r, "dismissed")) state = "DISMISSED";
      out.push_back(Review{int_field(r, "id").value_or(0), login_of(r, "user"), state, str(r, "commit_id")});
    }
  }
  return out;
}

HostResult<Permission> GiteaHost::user_permission(const RepoRef& repo, const std::string& login) {
  auto res = call("GET", repo_path(repo) + "/collaborators/" + pct(login) + "/permission", nullptr, false, {200, 404});
  if (!res) return tl::unexpected(res.error());
  if (res->status == 404) return Permission::none;
  const json j = json::parse(res->body, nullptr, false);
  if (!j.is_object() || !j.contains("permission")) return tl::unexpected(bad_answer("permission of '" + login + "'", "no 'permission'"));
  const std::string p = str(j, "permission");
  if (p == "owner" || p == "admin") return Permission::admin;
  if (p == "write") return Permission::write;
  if (p == "read") return Permission::read;
  return Permission::none;
}

HostResult<bool> GiteaHost::is_team_member(const std::string& org, const std::string& team, const std::string& login) {
  // Teams are addressed by ID: find the team by name in the organisation first.
  auto pages = get_pages("/orgs/" + pct(org) + "/teams?limit=" + std::to_string(options_.limit));
  if (!pages) return tl::unexpected(pages.error());
  std::optional<std::int64_t> team_id;
  for (const auto& page : *pages) {
    const json j = json::parse(page, nullptr, false);
    if (!j.is_array()) return tl::unexpected(bad_answer("teams", "not a list"));
    for (const auto& t : j)
      if (t.is_object() && iequals(str(t, "name"), team)) team_id = int_field(t, "id");
  }
  if (!team_id) return tl::unexpected(HostError{HostError::Kind::not_found, 404, "gitea: team '" + team + "' not found in '" + org + "'"});
  auto res = call("GET", "/teams/" + std::to_string(*team_id) + "/members/" + pct(login), nullptr, false, {200, 404});
  if (!res) return tl::unexpected(res.error());
  return res->status == 200;
}

HostResult<std::optional<std::string>> GiteaHost::read_file(const RepoRef& repo, const std::string& path, const std::string& ref) {
  auto res = call("GET", repo_path(repo) + "/raw/" + pct(path, true) + "?ref=" + pct(ref), nullptr, false, {200, 404});
  if (!res) return tl::unexpected(res.error());
  if (res->status == 404) return std::optional<std::string>{};
  return std::optional<std::string>{std::move(res->body)};
}

HostResult<std::vector<ChangedFile>> GiteaHost::list_changed_files(const RepoRef& repo, std::int64_t number) {
  auto pages = get_pages(repo_path(repo) + "/pulls/" + std::to_string(number) + "/files?limit=" + std::to_string(options_.limit));
  if (!pages) return tl::unexpected(pages.error());
  std::vector<ChangedFile> out;
  for (const auto& page : *pages) {
    const json j = json::parse(page, nullptr, false);
    if (!j.is_array()) return tl::unexpected(bad_answer("changed files", "not a list"));
    for (const auto& f : j) {
      if (!f.is_object() || str(f, "filename").empty()) return tl::unexpected(bad_answer("changed file", "no 'filename'"));
      std::string status = str(f, "status");
      if (status == "deleted") status = "removed";
      if (status == "changed") status = "modified";
      out.push_back(ChangedFile{str(f, "filename"), status, str(f, "previous_filename")});
    }
  }
  return out;
}

}  // namespace tollgate::service::host
