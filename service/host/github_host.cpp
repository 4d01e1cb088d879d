#include "service/host/github_host.hpp"

#include <nlohmann/json.hpp>

namespace tollgate::service::host {

using nlohmann::json;

namespace {

using rest::int_field;
using rest::pct;
using rest::str;

std::string repo_path(const RepoRef& r) { return "/repos/" + pct(r.owner) + "/" + pct(r.name); }

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
  return rest::one_line(std::move(out), r.status);
}

rest::Dialect github_dialect() {
  return rest::Dialect{.headers = {{"Accept", "application/vnd.github+json"}, {"X-GitHub-Api-Version", "2022-11-28"}},
                       .describe = describe};
}

PullRequest pr_from(const json& j) {
  PullRequest pr;
  pr.number = int_field(j, "number").value_or(0);
  pr.state = str(j, "state");
  pr.merged = j.value("merged", false) || !j.value("merged_at", json()).is_null();
  pr.draft = j.value("draft", false);
  pr.title = str(j, "title");
  pr.body = str(j, "body");
  pr.html_url = str(j, "html_url");
  pr.author = rest::str_in(j, "user", "login");
  if (auto h = j.find("head"); h != j.end() && h->is_object()) {
    pr.head_ref = str(*h, "ref");
    pr.head_sha = str(*h, "sha");
  }
  if (auto b = j.find("base"); b != j.end() && b->is_object()) pr.base_ref = str(*b, "ref");
  if (auto m = j.find("mergeable"); m != j.end() && m->is_boolean()) pr.mergeable = m->get<bool>();
  pr.mergeable_state = str(j, "mergeable_state");
  pr.merge_commit_sha = str(j, "merge_commit_sha");
  pr.merged_by = rest::str_in(j, "merged_by", "login");  // only in the single-PR answer
  if (auto l = j.find("labels"); l != j.end() && l->is_array())
    for (const auto& label : *l) pr.labels.push_back(label.is_object() ? str(label, "name") : std::string{});
  return pr;
}

HostError parse_error(const std::string& what) { return HostError{HostError::Kind::other, 0, what + ": unexpected response body"}; }

}  // namespace

GitHubHost::GitHubHost(HttpClient& client, std::shared_ptr<TokenSource> auth, GitHubHostOptions options)
    : options_(std::move(options)), api_(client, std::move(auth), options_.api_url, github_dialect()) {}

HostResult<std::optional<PullRequest>> GitHubHost::find_pull_request(const RepoRef& repo, const std::string& head_branch) {
  auto items = api_.get_list(
      repo_path(repo) + "/pulls?state=all&per_page=" + std::to_string(options_.per_page) + "&head=" + pct(repo.owner + ":" + head_branch),
      parse_error("find pull request"));
  if (!items) return tl::unexpected(items.error());
  std::optional<PullRequest> best;
  for (const auto& item : *items) {
    PullRequest pr = pr_from(item);
    if (pr.head_ref != head_branch) continue;
    // An open one wins; among closed ones, the newest.
    if (rest::better_match(pr, best)) best = std::move(pr);
  }
  return best;
}

HostResult<PullRequest> GitHubHost::create_pull_request(const RepoRef& repo, const NewPullRequest& spec) {
  // Find before create: a PR from an earlier attempt (or a lost response) is reused.
  HostResult<std::optional<PullRequest>> existing = std::optional<PullRequest>{};
  if (!spec.looked_up) existing = find_pull_request(repo, spec.head);
  if (!existing) return tl::unexpected(existing.error());
  PullRequest pr;
  if (*existing && (*existing)->state == "open") {
    pr = **existing;
  } else {
    json body = {{"title", spec.title}, {"head", spec.head}, {"base", spec.base}, {"body", spec.body}, {"draft", spec.draft}};
    const std::string text = body.dump();
    // Safe to resend: GitHub refuses a second open PR for the same head with a 422.
    auto res = api_.call("POST", repo_path(repo) + "/pulls", &text, true, {201});
    if (!res) {
      if (res.error().kind != HostError::Kind::validation || res.error().message.find("already exists") == std::string::npos)
        return tl::unexpected(res.error());
      auto again = find_pull_request(repo, spec.head);
      if (!again) return tl::unexpected(again.error());
      if (!*again) return tl::unexpected(res.error());
      pr = **again;
    } else {
      const json j = json::parse(res->body, nullptr, false);
      if (!j.is_object()) return tl::unexpected(parse_error("create pull request"));
      pr = pr_from(j);
      pr.created = true;
    }
  }
  const auto extras = rest::follow_up(spec);
  if (!extras) return pr;
  auto updated = update_pull_request(repo, pr.number, *extras);
  if (updated) updated->created = pr.created;
  return updated;
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
    auto res = api_.call("PATCH", path, &text, true, {200});  // absolute values: safe to resend
    if (!res) return tl::unexpected(res.error());
    const json j = json::parse(res->body, nullptr, false);
    if (!j.is_object()) return tl::unexpected(parse_error("update pull request"));
    result = pr_from(j);
  }
  if (u.labels) {
    const std::string text = json{{"labels", *u.labels}}.dump();
    auto res = api_.call("PUT", repo_path(repo) + "/issues/" + std::to_string(number) + "/labels", &text, true, {200});
    if (!res) return tl::unexpected(res.error());
    if (result) {
      result->labels.clear();
      const json j = json::parse(res->body, nullptr, false);
      if (j.is_array())
        for (const auto& l : j) result->labels.push_back(str(l, "name"));
    }
  }
  if (!u.reviewers.empty()) {
    // Teams ("@org/team") are requested by slug.
    const auto who = rest::split_reviewers(u.reviewers);
    json request{{"reviewers", who.users}};
    if (!who.teams.empty()) request["team_reviewers"] = who.teams;
    const std::string text = request.dump();
    auto sent = api_.send("POST", path + "/requested_reviewers", text, true, {201});  // adding twice is harmless
    if (!sent) return tl::unexpected(sent.error());
  }
  if (result && !u.labels) return *result;
  return get_pull_request(repo, number);
}

HostResult<PullRequest> GitHubHost::close_pull_request(const RepoRef& repo, std::int64_t number) {
  const std::string text = json{{"state", "closed"}}.dump();
  auto res = api_.call("PATCH", repo_path(repo) + "/pulls/" + std::to_string(number), &text, true, {200});
  if (!res) return tl::unexpected(res.error());
  const json j = json::parse(res->body, nullptr, false);
  if (!j.is_object()) return tl::unexpected(parse_error("close pull request"));
  return pr_from(j);
}

HostResult<Repository> GitHubHost::get_repository(const RepoRef& repo) {
  auto res = api_.call("GET", repo_path(repo), nullptr, false, {200});
  if (!res) return tl::unexpected(res.error());
  const json j = json::parse(res->body, nullptr, false);
  if (!j.is_object() || str(j, "clone_url").empty()) return tl::unexpected(parse_error("get repository"));
  return Repository{str(j, "full_name"), str(j, "clone_url"), str(j, "html_url"), str(j, "default_branch")};
}

HostResult<std::string> GitHubHost::current_user() {
  auto res = api_.call("GET", "/user", nullptr, false, {200});
  if (!res) return tl::unexpected(res.error());
  const json j = json::parse(res->body, nullptr, false);
  if (!j.is_object() || str(j, "login").empty()) return tl::unexpected(parse_error("get user"));
  return str(j, "login");
}

HostResult<PullRequest> GitHubHost::get_pull_request(const RepoRef& repo, std::int64_t number) {
  auto res = api_.call("GET", repo_path(repo) + "/pulls/" + std::to_string(number), nullptr, false, {200});
  if (!res) return tl::unexpected(res.error());
  const json j = json::parse(res->body, nullptr, false);
  if (!j.is_object()) return tl::unexpected(parse_error("get pull request"));
  return pr_from(j);
}

HostResult<MergeResult> GitHubHost::merge_pull_request(const RepoRef& repo, std::int64_t number, const std::string& expected_head_sha,
                                                       MergeMethod method, const std::string& commit_title) {
  json body = {{"sha", expected_head_sha}, {"merge_method", rest::method_name(method)}};
  if (!commit_title.empty()) body["commit_title"] = commit_title;
  const std::string text = body.dump();
  auto res = api_.call("PUT", repo_path(repo) + "/pulls/" + std::to_string(number) + "/merge", &text, true, {200, 405, 409});
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
                                                      const std::string& text, const StickyHint& hint) {
  const std::string comments = repo_path(repo) + "/issues/" + std::to_string(number) + "/comments";
  auto comment_from = [](const json& c) { return Comment{int_field(c, "id").value_or(0), str(c, "body"), rest::str_in(c, "user", "login")}; };
  return rest::upsert_sticky(
      key, text, options_.create_attempts, hint,
      {.list = [&] { return api_.get_list(comments + "?per_page=" + std::to_string(options_.per_page), parse_error("list comments")); },
       .read = [&](const json& c) -> HostResult<Comment> { return comment_from(c); },
       .edit = [&](std::int64_t id, const std::string& body) {
         return api_.send("PATCH", repo_path(repo) + "/issues/comments/" + std::to_string(id), json{{"body", body}}.dump(), true, {200});
       },
       .post = [&](const std::string& body) -> HostResult<Comment> {
         const std::string post = json{{"body", body}}.dump();
         auto res = api_.call("POST", comments, &post, false, {201});
         if (!res) return tl::unexpected(res.error());
         const json c = json::parse(res->body, nullptr, false);
         if (!c.is_object()) return tl::unexpected(parse_error("create comment"));
         return comment_from(c);
       }});
}

HostResult<void> GitHubHost::add_reaction(const RepoRef& repo, std::int64_t /*number*/, std::int64_t comment_id, const std::string& content) {
  const std::string text = json{{"content", content}}.dump();
  // GitHub answers 200 with the existing reaction on a repeat: safe to resend.
  return api_.send("POST", repo_path(repo) + "/issues/comments/" + std::to_string(comment_id) + "/reactions", text, true, {200, 201});
}

HostResult<void> GitHubHost::set_commit_status(const RepoRef& repo, const std::string& sha, const CommitStatus& s) {
  const std::string text = rest::status_body(s, s.state, "context");
  // A repeated status with the same context replaces the first one: safe to resend.
  return api_.send("POST", repo_path(repo) + "/statuses/" + pct(sha), text, true, {201});
}

HostResult<void> GitHubHost::publish_check(const RepoRef& repo, const std::string& sha, const CheckReport& report) {
  // One result per check name and commit: a completed run of this check on this commit (a
  // redelivered webhook, a crash after the request) is the result already. The same file at the
  // same commit validates the same way.
  // Only GitHub Apps may create check runs: a token gets 403 ("You must authenticate via a GitHub
  // App"), and a fine-grained token without the Checks permission may not even list them. The
  // result then goes out as a commit status of the same name (no annotations; the title says why).
  const auto token_cannot = [](const HostError& e) { return e.kind == HostError::Kind::forbidden; };
  std::int64_t existing = 0;
  auto found = api_.call("GET", repo_path(repo) + "/commits/" + pct(sha) + "/check-runs?check_name=" + pct(report.name), nullptr,
                         false, {200});
  if (!found && token_cannot(found.error())) return Host::publish_check(repo, sha, report);
  if (!found) return tl::unexpected(found.error());
  if (const json j = json::parse(found->body, nullptr, false); j.is_object()) {
    if (auto runs = j.find("check_runs"); runs != j.end() && runs->is_array()) {
      for (const auto& r : *runs) {
        if (str(r, "name") != report.name || !r.contains("id") || !r["id"].is_number_integer()) continue;
        if (str(r, "status") == "completed") return {};
        existing = r["id"].get<std::int64_t>();  // left in progress by an interrupted publish
        break;
      }
    }
  }
  // The API takes at most 50 annotations per request, and appends those of each update: the run
  // is created in progress with the first 50, updated with the rest, then completed.
  auto page = [&](std::size_t& next) {
    json annotations = json::array();
    for (; next < report.annotations.size() && annotations.size() < 50; ++next) {
      const auto& a = report.annotations[next];
      json item = {{"path", a.path}, {"start_line", a.line}, {"end_line", a.line}, {"annotation_level", "failure"}, {"message", a.message}};
      if (a.column > 0) {
        item["start_column"] = a.column;
        item["end_column"] = a.column;
      }
      annotations.push_back(std::move(item));
    }
    return annotations;
  };
  const json output_head = {{"title", report.title}, {"summary", report.summary}};
  std::size_t next = existing == 0 ? 0 : report.annotations.size();
  while (true) {
    json output = output_head;
    output["annotations"] = page(next);
    const bool last = next >= report.annotations.size();
    json body = {{"output", output}};
    if (last) {
      body["status"] = "completed";
      body["conclusion"] = report.success ? "success" : "failure";
    } else {
      body["status"] = "in_progress";
    }
    if (existing == 0) {
      body["name"] = report.name;
      body["head_sha"] = sha;
      const std::string text = body.dump();
      auto res = api_.call("POST", repo_path(repo) + "/check-runs", &text, false, {201});
      if (!res && token_cannot(res.error())) return Host::publish_check(repo, sha, report);
      if (!res) return tl::unexpected(res.error());
      const json created = json::parse(res->body, nullptr, false);
      if (!created.is_object() || !created.contains("id") || !created["id"].is_number_integer())
        return tl::unexpected(parse_error("create check run"));
      existing = created["id"].get<std::int64_t>();
    } else {
      const std::string text = body.dump();
      auto res = api_.call("PATCH", repo_path(repo) + "/check-runs/" + std::to_string(existing), &text, true, {200});
      if (!res) return tl::unexpected(res.error());
    }
    if (last) return {};
  }
}

HostResult<Checks> GitHubHost::get_checks(const RepoRef& repo, const std::string& ref) {
  Checks out;
  auto status = api_.call("GET", repo_path(repo) + "/commits/" + pct(ref) + "/status?per_page=100", nullptr, false, {200});
  if (!status) return tl::unexpected(status.error());
  const json s = json::parse(status->body, nullptr, false);
  if (!s.is_object()) return tl::unexpected(parse_error("combined status"));
  out.combined_state = str(s, "state");
  if (auto it = s.find("statuses"); it != s.end() && it->is_array())
    for (const auto& st : *it) out.checks.push_back(Check{Check::Source::status, str(st, "context"), str(st, "state"), {}});
  auto pages = api_.get_pages(repo_path(repo) + "/commits/" + pct(ref) + "/check-runs?per_page=" + std::to_string(options_.per_page));
  if (!pages) return tl::unexpected(pages.error());
  for (const auto& page : *pages) {
    const json c = json::parse(page, nullptr, false);
    if (!c.is_object()) return tl::unexpected(parse_error("check runs"));
    if (auto it = c.find("check_runs"); it != c.end() && it->is_array())
      for (const auto& run : *it) out.checks.push_back(Check{Check::Source::check_run, str(run, "name"), str(run, "status"), str(run, "conclusion")});
  }
  return out;
}

HostResult<std::vector<Review>> GitHubHost::list_reviews(const RepoRef& repo, std::int64_t number) {
  auto items = api_.get_list(repo_path(repo) + "/pulls/" + std::to_string(number) + "/reviews?per_page=" + std::to_string(options_.per_page),
                             parse_error("list reviews"));
  if (!items) return tl::unexpected(items.error());
  std::vector<Review> out;
  for (const auto& r : *items)
    out.push_back(Review{int_field(r, "id").value_or(0), rest::str_in(r, "user", "login"), str(r, "state"), str(r, "commit_id")});
  return out;
}

HostResult<Permission> GitHubHost::user_permission(const RepoRef& repo, const std::string& login) {
  auto res = api_.call("GET", repo_path(repo) + "/collaborators/" + pct(login) + "/permission", nullptr, false, {200, 404});
  if (!res) return tl::unexpected(res.error());
  if (res->status == 404) return Permission::none;
  const json j = json::parse(res->body, nullptr, false);
  if (!j.is_object()) return tl::unexpected(parse_error("user permission"));
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
  auto res = api_.call("GET", "/orgs/" + pct(org) + "/teams/" + pct(team) + "/memberships/" + pct(login), nullptr, false, {200, 404});
  if (!res) return tl::unexpected(res.error());
  if (res->status == 404) return false;
  const json j = json::parse(res->body, nullptr, false);
  return j.is_object() && str(j, "state") == "active";
}

HostResult<std::optional<std::string>> GitHubHost::read_file(const RepoRef& repo, const std::string& path, const std::string& ref) {
  auto res = api_.call("GET", repo_path(repo) + "/contents/" + pct(path, true) + "?ref=" + pct(ref), nullptr, false, {200, 404},
                       "application/vnd.github.raw");
  if (!res) return tl::unexpected(res.error());
  if (res->status == 404) return std::optional<std::string>{};
  return std::optional<std::string>{std::move(res->body)};
}

HostResult<std::vector<ChangedFile>> GitHubHost::list_changed_files(const RepoRef& repo, std::int64_t number) {
  auto items = api_.get_list(repo_path(repo) + "/pulls/" + std::to_string(number) + "/files?per_page=" + std::to_string(options_.per_page),
                             parse_error("list files"));
  if (!items) return tl::unexpected(items.error());
  std::vector<ChangedFile> out;
  for (const auto& f : *items) out.push_back(ChangedFile{str(f, "filename"), str(f, "status"), str(f, "previous_filename")});
  return out;
}

}  // namespace tollgate::service::host
