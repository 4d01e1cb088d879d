#include "service/host/gitlab_host.hpp"

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

// Projects are addressed by their URL-encoded full path: "group/sub/name" → "group%2Fsub%2Fname".
std::string project_path(const RepoRef& r) { return "/projects/" + pct(r.owner + "/" + r.name); }
std::string mr_path(const RepoRef& r, std::int64_t iid) { return project_path(r) + "/merge_requests/" + std::to_string(iid); }

std::string username_of(const json& j, const char* key) { return rest::str_in(j, key, "username"); }

HostError bad_answer(const std::string& what, const std::string& why) { return rest::bad_answer("gitlab", what, why); }

// GitLab's render_validation_error! answers 400.
HostError::Kind kind_of(int status) { return status == 400 ? HostError::Kind::validation : rest::kind_of(status); }

// GitLab's error bodies: {"message": "..."}, {"message": ["..."]}, {"message": {"field": ["..."]}}
// or {"error": "..."}; flattened to one line ("target_branch is invalid; title can't be blank").
std::string describe(const HttpResponse& r) {
  const json j = json::parse(r.body, nullptr, false);
  std::string out;
  if (j.is_object()) {
    if (auto m = j.find("message"); m != j.end()) {
      std::vector<std::string> parts;
      if (m->is_string()) {
        parts.push_back(m->get<std::string>());
      } else if (m->is_array()) {
        for (const auto& e : *m)
          if (e.is_string()) parts.push_back(e.get<std::string>());
      } else if (m->is_object()) {
        for (const auto& [field, v] : m->items()) {
          if (v.is_string()) parts.push_back(field + " " + v.get<std::string>());
          if (v.is_array())
            for (const auto& e : v)
              if (e.is_string()) parts.push_back(field + " " + e.get<std::string>());
        }
      }
      for (std::size_t i = 0; i < parts.size(); ++i) out += (i == 0 ? "" : "; ") + parts[i];
    }
    if (out.empty()) out = str(j, "error");
  }
  return rest::one_line(std::move(out), r.status);
}

// `path` with its page= parameter set to `page`.
std::string with_page(const std::string& path, const std::string& page) {
  const auto q = path.find('?');
  std::string out = path.substr(0, q) + "?";
  if (q != std::string::npos) {
    std::string_view query(path);
    query.remove_prefix(q + 1);
    while (!query.empty()) {
      const auto amp = query.find('&');
      const auto part = query.substr(0, amp);
      if (!part.starts_with("page=") && !part.empty()) out.append(part).push_back('&');
      if (amp == std::string_view::npos) break;
      query.remove_prefix(amp + 1);
    }
  }
  return out + "page=" + page;
}

// Link is left out on some large lists (keyset pagination aside); x-next-page is always there.
std::string next_page(const std::string& path, const HttpResponse& res) {
  std::string next = rest::next_link(res.header("link"));
  if (next.empty() && !res.header("x-next-page").empty()) next = with_page(path, res.header("x-next-page"));
  return next;
}

rest::Dialect gitlab_dialect(GitLabHostOptions::Auth auth) {
  const bool bearer = auth == GitLabHostOptions::Auth::bearer;
  return rest::Dialect{.headers = {{"Accept", "application/json"}},
                       .auth_header = bearer ? "Authorization" : "PRIVATE-TOKEN",
                       .auth_scheme = bearer ? "Bearer " : "",
                       .describe = describe,
                       .kind_of = kind_of,
                       .next_page = next_page};
}

// Whether the merge can happen as far as git is concerned (GitHub's `mergeable`): unknown while
// GitLab is still checking. detailed_merge_status (15.6+) first; policy blockers such as
// ci_must_pass or not_approved fall back to the git-level merge_status.
std::optional<bool> mergeable_of(const std::string& detailed, const std::string& merge_status) {
  if (detailed == "mergeable") return true;
  if (detailed == "conflict" || detailed == "need_rebase" || detailed == "broken_status") return false;
  if (detailed == "checking" || detailed == "unchecked" || detailed == "preparing" || detailed == "approvals_syncing") return std::nullopt;
  if (merge_status == "can_be_merged") return true;
  if (merge_status == "cannot_be_merged") return false;
  return std::nullopt;  // unchecked, checking, cannot_be_merged_recheck
}

HostResult<PullRequest> mr_from(const json& j) {
  if (!j.is_object()) return tl::unexpected(bad_answer("merge request", "not an object"));
  const auto iid = int_field(j, "iid");
  if (!iid) return tl::unexpected(bad_answer("merge request", "no 'iid'"));
  const std::string state = str(j, "state");
  const std::string where = "merge request !" + std::to_string(*iid);
  if (state.empty()) return tl::unexpected(bad_answer(where, "no 'state'"));
  PullRequest pr;
  pr.number = *iid;
  // locked: GitLab is merging it right now; still open until the merge lands.
  pr.state = state == "opened" || state == "locked" ? "open" : "closed";
  pr.merged = state == "merged";
  if (auto d = j.find("draft"); d != j.end() && d->is_boolean()) {
    pr.draft = d->get<bool>();
  } else if (auto w = j.find("work_in_progress"); w != j.end() && w->is_boolean()) {
    pr.draft = w->get<bool>();
  }
  pr.title = str(j, "title");
  pr.body = str(j, "description");
  pr.head_ref = str(j, "source_branch");
  pr.base_ref = str(j, "target_branch");
  if (pr.head_ref.empty() || pr.base_ref.empty()) return tl::unexpected(bad_answer(where, "no 'source_branch' or 'target_branch'"));
  pr.head_sha = str(j, "sha");
  pr.html_url = str(j, "web_url");
  pr.author = username_of(j, "author");
  const std::string detailed = str(j, "detailed_merge_status");
  const std::string merge_status = str(j, "merge_status");
  pr.mergeable = mergeable_of(detailed, merge_status);
  pr.mergeable_state = detailed.empty() ? merge_status : detailed;
  pr.merge_commit_sha = str(j, "merge_commit_sha");
  if (pr.merge_commit_sha.empty()) pr.merge_commit_sha = str(j, "squash_commit_sha");
  // A fast-forward merge has neither: the target branch moved to the MR's head.
  if (pr.merge_commit_sha.empty() && pr.merged) pr.merge_commit_sha = pr.head_sha;
  // merge_user (GitLab 14.7+) replaces the deprecated merged_by.
  pr.merged_by = username_of(j, "merge_user");
  if (pr.merged_by.empty()) pr.merged_by = username_of(j, "merged_by");
  if (auto l = j.find("labels"); l != j.end() && l->is_array()) {
    for (const auto& label : *l) {
      if (label.is_string()) pr.labels.push_back(label.get<std::string>());
      if (label.is_object()) pr.labels.push_back(str(label, "name"));  // with_labels_details=true
    }
  }
  return pr;
}

std::string join(const std::vector<std::string>& items, char sep) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out.push_back(sep);
    out += items[i];
  }
  return out;
}

// GitHub's reaction names (what tollgate speaks) as GitLab award emoji names.
std::optional<std::string> emoji_for(const std::string& content) {
  if (content == "+1") return "thumbsup";
  if (content == "-1") return "thumbsdown";
  if (content == "laugh") return "laughing";
  if (content == "hooray") return "tada";
  if (content == "confused" || content == "heart" || content == "rocket" || content == "eyes") return content;
  return std::nullopt;
}

// A GitLab commit status as tollgate's error | failure | pending | success.
std::string state_of(const std::string& gitlab) {
  if (gitlab == "success") return "success";
  if (gitlab == "failed") return "failure";
  if (gitlab == "canceled" || gitlab == "skipped") return "error";  // ended without passing
  return "pending";  // created, waiting_for_resource, preparing, pending, running, manual, scheduled, ...
}

// A note as a comment; `what` names it in the error when it has no id.
HostResult<Comment> note_from(const json& n, const std::string& what) {
  const auto id = n.is_object() ? int_field(n, "id") : std::nullopt;
  if (!id) return tl::unexpected(bad_answer(what, "no 'id'"));
  return Comment{*id, str(n, "body"), username_of(n, "author")};
}

}  // namespace

GitLabHost::GitLabHost(HttpClient& client, std::shared_ptr<TokenSource> auth, GitLabHostOptions options)
    : options_(std::move(options)), api_(client, std::move(auth), options_.api_url, gitlab_dialect(options_.auth)) {}

HostResult<std::optional<std::int64_t>> GitLabHost::user_id(const std::string& username) {
  auto res = api_.call("GET", "/users?username=" + pct(username), nullptr, false, {200});
  if (!res) return tl::unexpected(res.error());
  const json j = json::parse(res->body, nullptr, false);
  if (!j.is_array()) return tl::unexpected(bad_answer("users", "not a list"));
  for (const auto& u : j) {
    if (!u.is_object()) continue;
    if (!rest::iequals(str(u, "username"), username)) continue;
    const auto id = int_field(u, "id");
    if (!id) return tl::unexpected(bad_answer("user '" + username + "'", "no 'id'"));
    return std::optional<std::int64_t>{*id};
  }
  return std::optional<std::int64_t>{};
}

HostResult<std::vector<PullRequest>> GitLabHost::list_merge_requests(const RepoRef& repo, const std::string& head_branch, const char* state) {
  auto items = api_.get_list(project_path(repo) + "/merge_requests?state=" + state + "&source_branch=" + pct(head_branch) +
                                 "&per_page=" + std::to_string(options_.per_page),
                             bad_answer("merge requests", "not a list"));
  if (!items) return tl::unexpected(items.error());
  return rest::pulls_with_head(*items, head_branch, mr_from);
}

HostResult<std::optional<PullRequest>> GitLabHost::find_pull_request(const RepoRef& repo, const std::string& head_branch) {
  // Open ones first (the usual case, one small request); otherwise the newest closed or merged.
  for (const char* state : {"opened", "all"}) {
    auto list = list_merge_requests(repo, head_branch, state);
    if (!list) return tl::unexpected(list.error());
    std::optional<PullRequest> best;
    for (auto& pr : *list)
      if (rest::better_match(pr, best)) best = std::move(pr);
    if (best) return best;
  }
  return std::optional<PullRequest>{};
}

HostResult<PullRequest> GitLabHost::create_pull_request(const RepoRef& repo, const NewPullRequest& spec) {
  // Find before create: an MR from an earlier attempt (or a lost response) is reused.
  HostResult<std::vector<PullRequest>> open = std::vector<PullRequest>{};
  if (!spec.looked_up) open = list_merge_requests(repo, spec.head, "opened");
  if (!open) return tl::unexpected(open.error());
  if (!open->empty()) {
    const auto extras = rest::follow_up(spec);
    if (!extras) return open->front();
    return update_pull_request(repo, open->front().number, *extras);
  }
  std::vector<std::int64_t> reviewer_ids;
  // GitLab has no team reviewers: "@group/subgroup" entries are left out (approval rules are
  // where GitLab puts teams).
  for (const auto& login : rest::split_reviewers(spec.reviewers).users) {
    auto id = user_id(login);
    if (!id) return tl::unexpected(id.error());
    if (!*id) return tl::unexpected(HostError{HostError::Kind::validation, 0, "gitlab: reviewer '" + login + "' is not a user"});
    reviewer_ids.push_back(**id);
  }
  // GitLab has no draft flag on create: the "Draft: " title prefix makes it one.
  const bool prefixed = spec.title.starts_with("Draft:") || spec.title.starts_with("[Draft]") || spec.title.starts_with("(Draft)");
  json body = {{"source_branch", spec.head},
               {"target_branch", spec.base},
               {"title", spec.draft && !prefixed ? "Draft: " + spec.title : spec.title},
               {"description", spec.body}};
  if (!spec.labels.empty()) body["labels"] = join(spec.labels, ',');
  if (!reviewer_ids.empty()) body["reviewer_ids"] = reviewer_ids;
  const std::string text = body.dump();
  // Safe to resend: GitLab refuses a second open MR for the same source branch with a 409.
  auto res = api_.call("POST", project_path(repo) + "/merge_requests", &text, true, {201});
  if (!res) {
    if (res.error().kind != HostError::Kind::conflict) return tl::unexpected(res.error());
    auto again = list_merge_requests(repo, spec.head, "opened");
    if (!again) return tl::unexpected(again.error());
    if (again->empty()) return tl::unexpected(res.error());
    return again->front();
  }
  auto created = mr_from(json::parse(res->body, nullptr, false));
  if (created) created->created = true;
  return created;
}

HostResult<PullRequest> GitLabHost::update_pull_request(const RepoRef& repo, std::int64_t number, const PullRequestUpdate& u) {
  json body = json::object();
  if (u.title) body["title"] = *u.title;
  if (u.body) body["description"] = *u.body;
  if (u.base) body["target_branch"] = *u.base;
  if (u.labels) body["labels"] = join(*u.labels, ',');  // replaces the set; "" clears it
  if (!u.reviewers.empty()) {
    // reviewer_ids replaces the set: keep the current reviewers and add the new ones.
    auto current = api_.call("GET", mr_path(repo, number), nullptr, false, {200});
    if (!current) return tl::unexpected(current.error());
    const json mr = json::parse(current->body, nullptr, false);
    if (!mr.is_object()) return tl::unexpected(bad_answer("merge request", "not an object"));
    std::vector<std::int64_t> ids;
    if (auto r = mr.find("reviewers"); r != mr.end() && r->is_array())
      for (const auto& user : *r)
        if (auto id = user.is_object() ? int_field(user, "id") : std::nullopt) ids.push_back(*id);
    for (const auto& login : rest::split_reviewers(u.reviewers).users) {
      auto id = user_id(login);
      if (!id) return tl::unexpected(id.error());
      if (!*id) return tl::unexpected(HostError{HostError::Kind::validation, 0, "gitlab: reviewer '" + login + "' is not a user"});
      if (std::find(ids.begin(), ids.end(), **id) == ids.end()) ids.push_back(**id);
    }
    body["reviewer_ids"] = ids;
  }
  if (body.empty()) return get_pull_request(repo, number);
  const std::string text = body.dump();
  auto res = api_.call("PUT", mr_path(repo, number), &text, true, {200});
  if (!res) return tl::unexpected(res.error());
  return mr_from(json::parse(res->body, nullptr, false));
}

HostResult<PullRequest> GitLabHost::close_pull_request(const RepoRef& repo, std::int64_t number) {
  const std::string text = json{{"state_event", "close"}}.dump();
  auto res = api_.call("PUT", mr_path(repo, number), &text, true, {200});
  if (!res) return tl::unexpected(res.error());
  return mr_from(json::parse(res->body, nullptr, false));
}

HostResult<Repository> GitLabHost::get_repository(const RepoRef& repo) {
  auto res = api_.call("GET", project_path(repo), nullptr, false, {200});
  if (!res) return tl::unexpected(res.error());
  const json j = json::parse(res->body, nullptr, false);
  if (!j.is_object() || str(j, "http_url_to_repo").empty()) return tl::unexpected(HostError{HostError::Kind::other, 0, "gitlab: get project: unexpected response body"});
  return Repository{str(j, "path_with_namespace"), str(j, "http_url_to_repo"), str(j, "web_url"), str(j, "default_branch")};
}

HostResult<std::string> GitLabHost::current_user() {
  auto res = api_.call("GET", "/user", nullptr, false, {200});
  if (!res) return tl::unexpected(res.error());
  const json j = json::parse(res->body, nullptr, false);
  if (!j.is_object() || str(j, "username").empty()) return tl::unexpected(HostError{HostError::Kind::other, 0, "gitlab: get user: unexpected response body"});
  return str(j, "username");
}

HostResult<PullRequest> GitLabHost::get_pull_request(const RepoRef& repo, std::int64_t number) {
  auto res = api_.call("GET", mr_path(repo, number), nullptr, false, {200});
  if (!res) return tl::unexpected(res.error());
  return mr_from(json::parse(res->body, nullptr, false));
}

HostResult<MergeResult> GitLabHost::merge_pull_request(const RepoRef& repo, std::int64_t number, const std::string& expected_head_sha,
                                                       MergeMethod method, const std::string& commit_title) {
  // The merge method (merge commit, semi-linear, fast-forward) is a project setting on GitLab;
  // the API chooses only whether to squash.
  if (method == MergeMethod::rebase)
    return tl::unexpected(HostError{HostError::Kind::other, 0,
                                    "gitlab: merge method 'rebase' is not supported: set the project's merge method to fast-forward instead"});
  json body = {{"sha", expected_head_sha}, {"squash", method == MergeMethod::squash}};
  if (!commit_title.empty()) body[method == MergeMethod::squash ? "squash_commit_message" : "merge_commit_message"] = commit_title;
  const std::string text = body.dump();
  // 405/406/422: not mergeable now (draft, closed, pipeline, approvals, conflicts; 422 on
  // GitLab 16+); 409: the SHA is not the source branch's head.
  auto res = api_.call("PUT", mr_path(repo, number) + "/merge", &text, true, {200, 405, 406, 409, 422});
  if (!res) return tl::unexpected(res.error());
  const json j = json::parse(res->body, nullptr, false);
  if (res->status == 200) {
    auto pr = mr_from(j);
    if (!pr) return tl::unexpected(pr.error());
    if (!pr->merged)
      return tl::unexpected(HostError{HostError::Kind::transient, 200, "gitlab: merge request !" + std::to_string(number) + " accepted but not merged yet"});
    return MergeResult{MergeOutcome::merged, pr->merge_commit_sha.empty() ? pr->head_sha : pr->merge_commit_sha, {}};
  }
  MergeResult out;
  out.message = describe(*res);
  if (res->status == 409) {
    out.outcome = MergeOutcome::head_moved;
    return out;
  }
  // A merge that went through but whose answer was lost (or that finished after a 200 "not yet")
  // answers 405/422 when repeated: merged at the expected head counts as merged.
  auto pr = get_pull_request(repo, number);
  if (pr && pr->merged && pr->head_sha == expected_head_sha) return MergeResult{MergeOutcome::merged, pr->merge_commit_sha, {}};
  out.outcome = MergeOutcome::not_mergeable;
  return out;
}

HostResult<Comment> GitLabHost::upsert_sticky_comment(const RepoRef& repo, std::int64_t number, const std::string& key,
                                                      const std::string& text, const StickyHint& hint) {
  const std::string notes = mr_path(repo, number) + "/notes";
  return rest::upsert_sticky(
      key, text, options_.create_attempts, hint,
      {.list = [&] {
         return api_.get_list(notes + "?sort=asc&order_by=created_at&per_page=" + std::to_string(options_.per_page),
                              bad_answer("notes", "not a list"));
       },
       .ignore = [](const json& n) { return !n.is_object() || flag(n, "system"); },
       .read = [](const json& n) { return note_from(n, "note"); },
       .edit = [&](std::int64_t id, const std::string& body) {
         return api_.send("PUT", notes + "/" + std::to_string(id), json{{"body", body}}.dump(), true, {200});
       },
       .post = [&](const std::string& body) -> HostResult<Comment> {
         const std::string post = json{{"body", body}}.dump();
         auto res = api_.call("POST", notes, &post, false, {201});
         if (!res) return tl::unexpected(res.error());
         return note_from(json::parse(res->body, nullptr, false), "created note");
       }});
}

HostResult<void> GitLabHost::add_reaction(const RepoRef& repo, std::int64_t number, std::int64_t comment_id, const std::string& content) {
  const auto name = emoji_for(content);
  if (!name)
    return tl::unexpected(HostError{HostError::Kind::validation, 0,
                                    "gitlab: reaction '" + content + "' has no award emoji (+1, -1, laugh, hooray, confused, heart, rocket, eyes)"});
  const std::string text = json{{"name", *name}}.dump();
  auto res = api_.call("POST", mr_path(repo, number) + "/notes/" + std::to_string(comment_id) + "/award_emoji", &text, true, {200, 201, 404});
  if (!res) return tl::unexpected(res.error());
  // A repeat answers 404 "Award Emoji Name has already been taken": the reaction is there.
  if (res->status == 404 && describe(*res).find("has already been taken") == std::string::npos)
    return tl::unexpected(HostError{HostError::Kind::not_found, 404, "POST " + mr_path(repo, number) + "/notes/" + std::to_string(comment_id) +
                                                                         "/award_emoji: 404 " + describe(*res)});
  return {};
}

HostResult<void> GitLabHost::set_commit_status(const RepoRef& repo, const std::string& sha, const CommitStatus& s) {
  std::string state;
  if (s.state == "success" || s.state == "pending") state = s.state;
  if (s.state == "failure" || s.state == "error") state = "failed";
  if (state.empty()) return tl::unexpected(HostError{HostError::Kind::validation, 0, "gitlab: commit status state '" + s.state + "' is not one of error, failure, pending, success"});
  const std::string text = rest::status_body(s, state, "name");
  auto res = api_.call("POST", project_path(repo) + "/statuses/" + pct(sha), &text, true, {200, 201, 400});
  if (!res) return tl::unexpected(res.error());
  // Posting the state a status already has answers 400 "Cannot transition status via :run from
  // :running": a repeat, not a failure.
  if (res->status == 400 && describe(*res).find("Cannot transition status") == std::string::npos)
    return tl::unexpected(HostError{HostError::Kind::validation, 400, "POST " + project_path(repo) + "/statuses: 400 " + describe(*res)});
  return {};
}

HostResult<Checks> GitLabHost::get_checks(const RepoRef& repo, const std::string& ref) {
  // CI jobs are commit statuses too, so one list covers pipelines and external statuses; by
  // default only the latest status per name is listed.
  auto items = api_.get_list(project_path(repo) + "/repository/commits/" + pct(ref) + "/statuses?per_page=" + std::to_string(options_.per_page),
                             bad_answer("commit statuses", "not a list"));
  if (!items) return tl::unexpected(items.error());
  Checks out;
  bool failed = false;
  bool pending = false;
  for (const auto& st : *items) {
    if (!st.is_object() || str(st, "status").empty()) return tl::unexpected(bad_answer("commit status", "no 'status'"));
    const std::string state = state_of(str(st, "status"));
    // allow_failure jobs may fail without blocking, as in GitLab's own pipeline status.
    if ((state == "failure" || state == "error") && !flag(st, "allow_failure")) failed = true;
    if (state == "pending") pending = true;
    out.checks.push_back(Check{Check::Source::status, str(st, "name"), state, {}});
  }
  out.combined_state = failed ? "failure" : (pending || out.checks.empty()) ? "pending" : "success";
  return out;
}

HostResult<std::vector<Review>> GitLabHost::list_reviews(const RepoRef& repo, std::int64_t number) {
  auto res = api_.call("GET", mr_path(repo, number) + "/approvals", nullptr, false, {200});
  if (!res) return tl::unexpected(res.error());
  const json j = json::parse(res->body, nullptr, false);
  const auto by = j.is_object() ? j.find("approved_by") : j.end();
  if (!j.is_object() || by == j.end() || !by->is_array()) return tl::unexpected(bad_answer("approvals", "no 'approved_by'"));
  std::vector<Review> out;
  for (const auto& a : *by) {
    const auto user = a.is_object() ? a.find("user") : a.end();
    if (!a.is_object() || user == a.end() || !user->is_object()) return tl::unexpected(bad_answer("approvals", "an entry without 'user'"));
    // GitLab approvals carry no commit: they apply to the MR (and are reset on push if the
    // project says so), so commit_id stays empty.
    out.push_back(Review{int_field(*user, "id").value_or(0), str(*user, "username"), "APPROVED", {}});
  }
  return out;
}

HostResult<Permission> GitLabHost::user_permission(const RepoRef& repo, const std::string& login) {
  auto id = user_id(login);
  if (!id) return tl::unexpected(id.error());
  if (!*id) return Permission::none;
  // members/all includes members inherited from the project's groups.
  auto res = api_.call("GET", project_path(repo) + "/members/all/" + std::to_string(**id), nullptr, false, {200, 404});
  if (!res) return tl::unexpected(res.error());
  if (res->status == 404) return Permission::none;
  const json j = json::parse(res->body, nullptr, false);
  const auto level = j.is_object() ? int_field(j, "access_level") : std::nullopt;
  if (!level) return tl::unexpected(bad_answer("member '" + login + "'", "no 'access_level'"));
  // 50 owner, 40 maintainer, 30 developer, 20 reporter, 10 guest (15 planner, 5 minimal access).
  if (*level >= 50) return Permission::admin;
  if (*level >= 40) return Permission::maintain;
  if (*level >= 30) return Permission::write;
  if (*level >= 20) return Permission::triage;
  if (*level >= 10) return Permission::read;
  return Permission::none;
}

HostResult<bool> GitLabHost::is_team_member(const std::string& org, const std::string& team, const std::string& login) {
  auto id = user_id(login);
  if (!id) return tl::unexpected(id.error());
  if (!*id) return false;
  // Direct members of the subgroup only: members/all would count everyone inherited from `org`.
  auto res = api_.call("GET", "/groups/" + pct(org + "/" + team) + "/members/" + std::to_string(**id), nullptr, false, {200, 404});
  if (!res) return tl::unexpected(res.error());
  if (res->status == 404) {
    // "404 Group Not Found" is a wrong team name, not a non-member.
    const std::string why = describe(*res);
    if (why.find("Group Not Found") != std::string::npos)
      return tl::unexpected(HostError{HostError::Kind::not_found, 404, "gitlab: group '" + org + "/" + team + "' not found"});
    return false;
  }
  const json j = json::parse(res->body, nullptr, false);
  if (!j.is_object()) return tl::unexpected(bad_answer("group member", "not an object"));
  const std::string state = str(j, "state");
  return state.empty() || state == "active";
}

HostResult<std::optional<std::string>> GitLabHost::read_file(const RepoRef& repo, const std::string& path, const std::string& ref) {
  auto res = api_.call("GET", project_path(repo) + "/repository/files/" + pct(path) + "/raw?ref=" + pct(ref), nullptr, false, {200, 404});
  if (!res) return tl::unexpected(res.error());
  if (res->status == 404) return std::optional<std::string>{};
  return std::optional<std::string>{std::move(res->body)};
}

HostResult<std::vector<ChangedFile>> GitLabHost::list_changed_files(const RepoRef& repo, std::int64_t number) {
  auto items = api_.get_list(mr_path(repo, number) + "/diffs?per_page=" + std::to_string(options_.per_page),
                             bad_answer("merge request diffs", "not a list"));
  if (!items) return tl::unexpected(items.error());
  std::vector<ChangedFile> out;
  for (const auto& d : *items) {
    if (!d.is_object() || str(d, "new_path").empty()) return tl::unexpected(bad_answer("merge request diff", "no 'new_path'"));
    ChangedFile f{str(d, "new_path"), "modified", {}};
    if (flag(d, "new_file")) f.status = "added";
    if (flag(d, "deleted_file")) f.status = "removed";
    if (flag(d, "renamed_file")) {
      f.status = "renamed";
      f.previous_filename = str(d, "old_path");
    }
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace tollgate::service::host
