#include "service/host/gitea_host.hpp"

#include <algorithm>
#include <string_view>

#include <nlohmann/json.hpp>

namespace tollgate::service::host {

using nlohmann::json;

namespace {

using rest::flag;
using rest::int_field;
using rest::pct;
using rest::str;

std::string repo_path(const RepoRef& r) { return "/repos/" + pct(r.owner) + "/" + pct(r.name); }

std::string login_of(const json& j, const char* key) { return rest::str_in(j, key, "login"); }

HostError bad_answer(const std::string& what, const std::string& why) { return rest::bad_answer("gitea", what, why); }

// Gitea's APIError / APIValidationError / APINotFound: {"message", "url"} plus "errors" on 404s.
std::string describe(const HttpResponse& r) {
  const json j = json::parse(r.body, nullptr, false);
  std::string out = j.is_object() ? str(j, "message") : std::string{};
  if (j.is_object())
    if (auto e = j.find("errors"); e != j.end() && e->is_array())
      for (const auto& item : *e)
        if (item.is_string()) out += (out.empty() ? "" : ": ") + item.get<std::string>();
  return rest::one_line(std::move(out), r.status);
}

// Gitea marks work in progress by a title prefix (WORK_IN_PROGRESS_PREFIXES, "WIP:" and "[WIP]"
// by default); newer versions also answer "draft".
bool wip_title(std::string_view title) {
  auto starts = [&](std::string_view p) { return title.size() >= p.size() && rest::iequals(title.substr(0, p.size()), p); };
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
  pr.merged_by = login_of(j, "merged_by");
  if (auto l = j.find("labels"); l != j.end() && l->is_array())
    for (const auto& label : *l)
      if (label.is_object()) pr.labels.push_back(str(label, "name"));
  return pr;
}

// A comment; `what` names it in the error when it has no id.
HostResult<Comment> comment_from(const json& c, const std::string& what) {
  const auto id = c.is_object() ? int_field(c, "id") : std::nullopt;
  if (!id) return tl::unexpected(bad_answer(what, "no 'id'"));
  return Comment{*id, str(c, "body"), login_of(c, "user")};
}

rest::Dialect gitea_dialect() {
  return rest::Dialect{.headers = {{"Accept", "application/json"}}, .auth_scheme = "token ", .describe = describe};
}

}  // namespace

GiteaHost::GiteaHost(HttpClient& client, std::shared_ptr<TokenSource> auth, GiteaHostOptions options)
    : options_(std::move(options)), api_(client, std::move(auth), options_.api_url, gitea_dialect()) {}

HostResult<std::vector<PullRequest>> GiteaHost::open_pulls_for(const RepoRef& repo, const std::string& head_branch) {
  auto items = api_.get_list(repo_path(repo) + "/pulls?state=open&limit=" + std::to_string(options_.limit),
                             bad_answer("pull requests", "not a list"));
  if (!items) return tl::unexpected(items.error());
  return rest::pulls_with_head(*items, head_branch, pull_from);
}

HostResult<std::optional<PullRequest>> GiteaHost::find_pull_request(const RepoRef& repo, const std::string& head_branch) {
  auto open = open_pulls_for(repo, head_branch);
  if (!open) return tl::unexpected(open.error());
  if (!open->empty()) return std::optional<PullRequest>{open->front()};
  auto items = api_.get_list(repo_path(repo) + "/pulls?state=closed&sort=recentupdate&limit=" + std::to_string(options_.limit),
                             bad_answer("pull requests", "not a list"), options_.closed_pages);
  if (!items) return tl::unexpected(items.error());
  auto closed = rest::pulls_with_head(*items, head_branch, pull_from);
  if (!closed) return tl::unexpected(closed.error());
  std::optional<PullRequest> best;
  for (auto& pr : *closed)
    if (!best || pr.number > best->number) best = std::move(pr);
  return best;
}

HostResult<std::vector<std::int64_t>> GiteaHost::label_ids(const RepoRef& repo, const std::vector<std::string>& names) {
  std::vector<std::int64_t> ids;
  if (names.empty()) return ids;
  auto items = api_.get_list(repo_path(repo) + "/labels?limit=" + std::to_string(options_.limit), bad_answer("labels", "not a list"));
  if (!items) return tl::unexpected(items.error());
  std::vector<std::pair<std::string, std::int64_t>> known;
  for (const auto& l : *items)
    if (auto id = l.is_object() ? int_field(l, "id") : std::nullopt) known.emplace_back(str(l, "name"), *id);
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
  HostResult<std::vector<PullRequest>> open = std::vector<PullRequest>{};
  if (!spec.looked_up) open = open_pulls_for(repo, spec.head);
  if (!open) return tl::unexpected(open.error());
  PullRequest pr;
  if (!open->empty()) {
    const auto extras = rest::follow_up(spec);
    if (!extras) return open->front();
    return update_pull_request(repo, open->front().number, *extras);
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
  auto res = api_.call("POST", repo_path(repo) + "/pulls", &text, true, {201});
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
    pr.created = true;
  }
  if (spec.reviewers.empty()) return pr;
  auto updated = update_pull_request(repo, pr.number, PullRequestUpdate{.reviewers = spec.reviewers});
  if (updated) updated->created = pr.created;
  return updated;
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
    auto res = api_.call("PATCH", path, &text, true, {200, 201});  // the swagger says 201; absolute values
    if (!res) return tl::unexpected(res.error());
    auto pr = pull_from(json::parse(res->body, nullptr, false));
    if (!pr) return tl::unexpected(pr.error());
    result = std::move(*pr);
  }
  if (u.labels) {
    auto ids = label_ids(repo, *u.labels);
    if (!ids) return tl::unexpected(ids.error());
    const std::string text = json{{"labels", *ids}}.dump();  // replaces the set; [] clears it
    auto res = api_.call("PUT", repo_path(repo) + "/issues/" + std::to_string(number) + "/labels", &text, true, {200});
    if (!res) return tl::unexpected(res.error());
    if (result) result->labels = *u.labels;
  }
  if (!u.reviewers.empty()) {
    // Teams ("@org/team") are requested by name.
    const auto who = rest::split_reviewers(u.reviewers);
    json request{{"reviewers", who.users}};
    if (!who.teams.empty()) request["team_reviewers"] = who.teams;
    const std::string text = request.dump();
    auto sent = api_.send("POST", path + "/requested_reviewers", text, true, {201});  // requesting twice is harmless
    if (!sent) return tl::unexpected(sent.error());
  }
  if (result) return *result;
  return get_pull_request(repo, number);
}

HostResult<PullRequest> GiteaHost::close_pull_request(const RepoRef& repo, std::int64_t number) {
  const std::string text = json{{"state", "closed"}}.dump();
  auto res = api_.call("PATCH", repo_path(repo) + "/pulls/" + std::to_string(number), &text, true, {200, 201});
  if (!res) return tl::unexpected(res.error());
  return pull_from(json::parse(res->body, nullptr, false));
}

HostResult<Repository> GiteaHost::get_repository(const RepoRef& repo) {
  auto res = api_.call("GET", repo_path(repo), nullptr, false, {200});
  if (!res) return tl::unexpected(res.error());
  const json j = json::parse(res->body, nullptr, false);
  if (!j.is_object() || str(j, "clone_url").empty()) return tl::unexpected(HostError{HostError::Kind::other, 0, "gitea: get repository: unexpected response body"});
  return Repository{str(j, "full_name"), str(j, "clone_url"), str(j, "html_url"), str(j, "default_branch")};
}

HostResult<std::string> GiteaHost::current_user() {
  auto res = api_.call("GET", "/user", nullptr, false, {200});
  if (!res) return tl::unexpected(res.error());
  const json j = json::parse(res->body, nullptr, false);
  if (!j.is_object() || str(j, "login").empty()) return tl::unexpected(HostError{HostError::Kind::other, 0, "gitea: get user: unexpected response body"});
  return str(j, "login");
}

HostResult<PullRequest> GiteaHost::get_pull_request(const RepoRef& repo, std::int64_t number) {
  auto res = api_.call("GET", repo_path(repo) + "/pulls/" + std::to_string(number), nullptr, false, {200});
  if (!res) return tl::unexpected(res.error());
  return pull_from(json::parse(res->body, nullptr, false));
}

HostResult<MergeResult> GiteaHost::merge_pull_request(const RepoRef& repo, std::int64_t number, const std::string& expected_head_sha,
                                                      MergeMethod method, const std::string& commit_title) {
  json body = {{"Do", rest::method_name(method)}, {"head_commit_id", expected_head_sha}};
  if (!commit_title.empty()) body["MergeTitleField"] = commit_title;
  const std::string text = body.dump();
  // Bound to the head commit, so a resend cannot merge anything else: 405 not mergeable (or
  // already merged), 409 head moved.
  auto res = api_.call("POST", repo_path(repo) + "/pulls/" + std::to_string(number) + "/merge", &text, true, {200, 405, 409});
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
                                                     const std::string& text, const StickyHint& hint) {
  const std::string comments = repo_path(repo) + "/issues/" + std::to_string(number) + "/comments";
  return rest::upsert_sticky(
      key, text, options_.create_attempts, hint,
      {.list = [&] { return api_.get_list(comments, bad_answer("comments", "not a list")); },
       .read = [](const json& c) { return comment_from(c, "comment"); },
       .edit = [&](std::int64_t id, const std::string& body) {
         return api_.send("PATCH", repo_path(repo) + "/issues/comments/" + std::to_string(id), json{{"body", body}}.dump(), true, {200});
       },
       .post = [&](const std::string& body) -> HostResult<Comment> {
         const std::string post = json{{"body", body}}.dump();
         auto res = api_.call("POST", comments, &post, false, {201});
         if (!res) return tl::unexpected(res.error());
         return comment_from(json::parse(res->body, nullptr, false), "created comment");
       }});
}

HostResult<void> GiteaHost::add_reaction(const RepoRef& repo, std::int64_t /*number*/, std::int64_t comment_id, const std::string& content) {
  const std::string text = json{{"content", content}}.dump();
  // 200 with the existing reaction on a repeat: safe to resend. A reaction outside the
  // instance's [ui] REACTIONS list is a 403.
  return api_.send("POST", repo_path(repo) + "/issues/comments/" + std::to_string(comment_id) + "/reactions", text, true, {200, 201});
}

HostResult<void> GiteaHost::set_commit_status(const RepoRef& repo, const std::string& sha, const CommitStatus& s) {
  const std::string text = rest::status_body(s, s.state, "context");
  // A repeated status with the same context supersedes the first: safe to resend.
  return api_.send("POST", repo_path(repo) + "/statuses/" + pct(sha), text, true, {200, 201});
}

HostResult<Checks> GiteaHost::get_checks(const RepoRef& repo, const std::string& ref) {
  // Gitea Actions report as commit statuses: the combined status covers CI too.
  auto pages = api_.get_pages(repo_path(repo) + "/commits/" + pct(ref) + "/status?limit=" + std::to_string(options_.limit));
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
  auto items = api_.get_list(repo_path(repo) + "/pulls/" + std::to_string(number) + "/reviews?limit=" + std::to_string(options_.limit),
                             bad_answer("reviews", "not a list"));
  if (!items) return tl::unexpected(items.error());
  std::vector<Review> out;
  for (const auto& r : *items) {
    if (!r.is_object() || str(r, "state").empty()) return tl::unexpected(bad_answer("review", "no 'state'"));
    std::string state = str(r, "state");
    if (state == "REQUEST_REVIEW") continue;  // a pending request, not a review
    if (state == "REQUEST_CHANGES") state = "CHANGES_REQUESTED";
    if (state == "COMMENT") state = "COMMENTED";
    if (flag(r, "dismissed")) state = "DISMISSED";
    out.push_back(Review{int_field(r, "id").value_or(0), login_of(r, "user"), state, str(r, "commit_id")});
  }
  return out;
}

HostResult<Permission> GiteaHost::user_permission(const RepoRef& repo, const std::string& login) {
  auto res = api_.call("GET", repo_path(repo) + "/collaborators/" + pct(login) + "/permission", nullptr, false, {200, 404});
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
  auto items = api_.get_list("/orgs/" + pct(org) + "/teams?limit=" + std::to_string(options_.limit), bad_answer("teams", "not a list"));
  if (!items) return tl::unexpected(items.error());
  std::optional<std::int64_t> team_id;
  for (const auto& t : *items)
    if (t.is_object() && rest::iequals(str(t, "name"), team)) team_id = int_field(t, "id");
  if (!team_id) return tl::unexpected(HostError{HostError::Kind::not_found, 404, "gitea: team '" + team + "' not found in '" + org + "'"});
  auto res = api_.call("GET", "/teams/" + std::to_string(*team_id) + "/members/" + pct(login), nullptr, false, {200, 404});
  if (!res) return tl::unexpected(res.error());
  return res->status == 200;
}

HostResult<std::optional<std::string>> GiteaHost::read_file(const RepoRef& repo, const std::string& path, const std::string& ref) {
  auto res = api_.call("GET", repo_path(repo) + "/raw/" + pct(path, true) + "?ref=" + pct(ref), nullptr, false, {200, 404});
  if (!res) return tl::unexpected(res.error());
  if (res->status == 404) return std::optional<std::string>{};
  return std::optional<std::string>{std::move(res->body)};
}

HostResult<std::vector<ChangedFile>> GiteaHost::list_changed_files(const RepoRef& repo, std::int64_t number) {
  auto items = api_.get_list(repo_path(repo) + "/pulls/" + std::to_string(number) + "/files?limit=" + std::to_string(options_.limit),
                             bad_answer("changed files", "not a list"));
  if (!items) return tl::unexpected(items.error());
  std::vector<ChangedFile> out;
  for (const auto& f : *items) {
    if (!f.is_object() || str(f, "filename").empty()) return tl::unexpected(bad_answer("changed file", "no 'filename'"));
    std::string status = str(f, "status");
    if (status == "deleted") status = "removed";
    if (status == "changed") status = "modified";
    out.push_back(ChangedFile{str(f, "filename"), status, str(f, "previous_filename")});
  }
  return out;
}

}  // namespace tollgate::service::host
