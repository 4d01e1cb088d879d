// Runs the engine's host and git jobs; see job_executor.hpp for what makes each one idempotent.
#include "service/job_executor.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <utility>

#include <nlohmann/json.hpp>

#include "pipeline/duration.hpp"
#include "service/engine_inputs.hpp"
#include "service/log.hpp"
#include "webhooks/event.hpp"
#include "templates/mustache.hpp"

namespace tollgate::service {
namespace {

using nlohmann::json;
using pipeline::Job;
using pipeline::JobKind;
using pipeline::JobResult;
using O = JobResult::Outcome;

// ---------------------------------------------------------------------------------------------
// Failures

// A technical failure: retry it, or not.
struct Failure {
  bool retry = true;
  std::string message;
  std::optional<std::chrono::seconds> after{};
};

// "... rate limited for another 42 s" (service/host/http_client.cpp): when the quota is back.
std::optional<std::chrono::seconds> rate_limit_wait(const std::string& message) {
  static constexpr std::string_view kFor = "rate limited for another ";
  auto at = message.find(kFor);
  if (at == std::string::npos) return std::nullopt;
  const char* begin = message.data() + at + kFor.size();
  long secs = 0;
  auto [end, ec] = std::from_chars(begin, message.data() + message.size(), secs);
  if (ec != std::errc{} || end == begin) return std::nullopt;
  return std::chrono::seconds(secs + 1);
}

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\r', ' ');
  return s;
}

// Host errors. Retried: what may go away by itself — rate limits (after the quota's reset when the
// client said), 5xx / timeouts / resets that outlasted the client's own retries, a 409 (the host's
// state moving under us, e.g. a ref being updated) and `other` (unreadable answers, odd statuses:
// the engine's attempt budget bounds them). Not retried: 401 (credentials are refused: "never
// retried", host.hpp), 403 (the token lacks a permission; rate-limit 403s are handled by the client
// and arrive as rate_limited), 404 (repository or PR gone, or no access) and 422 (the host rejects
// the request itself: the same request would be rejected again).
Failure classify(const host::HostError& e, const std::string& what) {
  using K = host::HostError::Kind;
  Failure f{true, one_line(what + ": " + e.message)};
  switch (e.kind) {
    case K::rate_limited:
      f.after = rate_limit_wait(e.message).value_or(std::chrono::seconds(60));
      break;
    case K::transient:
    case K::conflict:
    case K::other:
      break;
    case K::unauthorized:
    case K::forbidden:
    case K::not_found:
    case K::validation:
      f.retry = false;
      break;
  }
  return f;
}

// Git writer errors: network trouble and unexpected libgit2 failures are retried; a refused
// credential or push, a missing repository / branch, an edit that cannot apply and a malformed
// request would fail the same way again.
Failure classify(const git::Error& e) {
  using K = git::ErrorKind;
  const bool retry = e.kind == K::unavailable || e.kind == K::other;
  return Failure{retry, one_line(e.message)};
}

ExecOutcome done() { return ExecOutcome{}; }

ExecOutcome failed(Failure f) {
  ExecOutcome out;
  out.kind = f.retry ? ExecOutcome::Kind::retry : ExecOutcome::Kind::terminal;
  out.error = std::move(f.message);
  out.retry_after = f.after;
  return out;
}

// The result of a job the engine waits on.
JobResult result_of(const Job& job, O outcome) {
  JobResult r;
  r.kind = job.kind;
  r.stage = job.stage;
  r.outcome = outcome;
  r.pr = job.pr;
  r.seq = job.seq;
  r.step = job.step;
  r.attempt = job.attempt;
  return r;
}

ExecOutcome report(JobResult r) {
  ExecOutcome out;
  out.inputs.emplace_back(std::move(r));
  return out;
}

// A failure of a job the engine counts attempts for: a JobResult, and the job itself is done.
ExecOutcome report_failure(const Job& job, const Failure& f) {
  JobResult r = result_of(job, f.retry ? O::retryable : O::terminal);
  r.message = f.message;
  ExecOutcome out = report(std::move(r));
  out.error = f.message;
  out.retry_after = f.after;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Small things

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::optional<host::RepoRef> repo_ref(const std::string& full) {
  const auto slash = full.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == full.size()) return std::nullopt;
  return host::RepoRef{full.substr(0, slash), full.substr(slash + 1)};
}

host::MergeMethod merge_method(pipeline::MergeMethod m) {
  switch (m) {
    case pipeline::MergeMethod::merge: return host::MergeMethod::merge;
    case pipeline::MergeMethod::squash: return host::MergeMethod::squash;
    case pipeline::MergeMethod::rebase: return host::MergeMethod::rebase;
  }
  return host::MergeMethod::merge;
}

// At most `max` bytes, cut on a UTF-8 character boundary.
std::string truncate_utf8(std::string s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  s.resize(cut);
  return s;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// Keys go into an HTML comment (the sticky marker), which a `>` or a line break would break.
std::string marker_safe(std::string key) {
  for (auto& c : key)
    if (c == '>' || c == '<' || c == '\n' || c == '\r') c = '_';
  return key;
}

// The base branch of a stage's PRs: `branch:`, else the repository's default branch (from the
// runner's lookup, else from the host). A failed lookup is the job's failure.
tl::expected<std::string, Failure> base_branch(const pipeline::Stage& sd, const ExecContext& cx) {
  if (sd.branch && !sd.branch->empty()) return *sd.branch;
  if (cx.default_branch) {
    std::string b = cx.default_branch(sd.repo);
    if (!b.empty()) return b;
  }
  auto ref = repo_ref(sd.repo);
  if (!ref) return tl::unexpected(Failure{false, "invalid repository '" + sd.repo + "'"});
  auto repo = cx.host.get_repository(*ref);
  if (!repo) return tl::unexpected(classify(repo.error(), "reading the default branch of " + sd.repo));
  if (repo->default_branch.empty()) return tl::unexpected(Failure{false, sd.repo + " has no default branch"});
  return repo->default_branch;
}

// The https URL to clone `repo` at: the runner's, else the one the host's API reports (DESIGN.md).
tl::expected<std::string, Failure> clone_url_of(const std::string& full, const ExecContext& cx) {
  if (cx.clone_url) {
    std::string url = cx.clone_url(full);
    if (!url.empty()) return url;
  }
  auto ref = repo_ref(full);
  if (!ref) return tl::unexpected(Failure{false, "invalid repository '" + full + "'"});
  auto repo = cx.host.get_repository(*ref);
  if (!repo) return tl::unexpected(classify(repo.error(), "reading the clone URL of " + full));
  if (repo->clone_url.empty()) return tl::unexpected(Failure{false, full + ": the host reports no clone URL"});
  return repo->clone_url;
}

std::string pr_link(const ExecContext& cx, const std::string& repo, std::int64_t pr) {
  return cx.pr_url && pr > 0 ? cx.pr_url(repo, pr) : std::string{};
}

// ---------------------------------------------------------------------------------------------
// Templates

// The variables of DESIGN.md ("Template variables") for one stage of the run.
// `base`: the stage's base branch (stage.branch); callers that did not resolve it pass `branch:`.
json template_vars(const ExecContext& cx, const pipeline::Stage& sd, const std::string& base) {
  const auto& src = cx.run.source;
  json source = {{"host", cx.host_name},
                 {"repo", src.repo},
                 {"branch", src.branch},
                 {"sha", src.sha},
                 {"short_sha", src.sha.substr(0, 7)},
                 // false, not 0: `{{#source.pr}}` must skip its section for a push-triggered run.
                 {"pr", src.pr > 0 ? json(std::to_string(src.pr)) : json(false)},
                 {"pr_title", cx.source_pr_title},
                 {"pr_url", pr_link(cx, src.repo, src.pr)},
                 {"author", src.author},
                 {"changed_files", cx.source_changed_files}};
  json release = json::object();
  for (const auto& [k, v] : cx.run.release) release[k] = v;
  json upstream = false;
  if (!sd.after.empty()) {
    const pipeline::Stage* up = cx.def.stage(sd.after.front());
    const pipeline::StageState* ups = cx.run.stage(sd.after.front());
    upstream = {{"name", sd.after.front()},
                {"pr_url", up && ups ? pr_link(cx, up->repo, ups->pr) : std::string{}}};
  }
  return json{{"source", std::move(source)},
              {"release", std::move(release)},
              {"pipeline", {{"name", cx.def.name}}},
              {"stage", {{"name", sd.name}, {"repo", sd.repo}, {"branch", base}}},
              {"run", {{"id", cx.run.id}, {"url", run_url(cx.public_url, cx.run.id)}}},
              {"upstream", std::move(upstream)}};
}

// Renders `custom` when set, else the default template `name`. Errors are terminal: the text
// will not render better next time.
tl::expected<std::string, Failure> render(const std::optional<std::string>& custom, std::string_view name, const json& vars,
                                          const std::string& what) {
  std::string_view text = custom ? std::string_view(*custom) : templates::default_template(name);
  auto out = templates::render(text, vars);
  if (!out) return tl::unexpected(Failure{false, what + ": template error: " + out.error()});
  return *out;
}

// The commit message of a promotion (custom or default template), without trailing blank lines.
tl::expected<std::string, Failure> commit_message(const pipeline::Stage& sd, const json& vars) {
  auto m = render(sd.pr.commit_message, "commit-message", vars, "commit message");
  if (!m) return m;
  std::string msg = std::move(*m);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  if (msg.empty()) return tl::unexpected(Failure{false, "commit message: the template renders to nothing"});
  return msg;
}

// One gate row of the status comment: {name, state, detail}.
json gate_row(std::string name, std::string state, std::string detail) {
  return json{{"name", std::move(name)}, {"state", std::move(state)}, {"detail", std::move(detail)}};
}

// The gate table of the status comment, from the definition and what the run has seen.
json gate_rows(const pipeline::Stage& sd, const pipeline::StageState& st) {
  json rows = json::array();
  const auto& g = sd.gates;
  if (g.checks && g.checks->mode != pipeline::CheckSelection::Mode::none) {
    std::vector<std::string> failing, pending;
    int passing = 0;
    auto count = [&](const std::string& name, const pipeline::CheckSeen* c) {
      if (!c || c->sha != st.head_sha || c->state == pipeline::CheckState::pending) {
        pending.push_back(name);
      } else if (c->state == pipeline::CheckState::failure) {
        failing.push_back(name);
      } else {
        ++passing;
      }
    };
    if (g.checks->mode == pipeline::CheckSelection::Mode::named) {
      for (const auto& n : g.checks->names) {
        auto it = st.checks.find(n);
        count(n, it == st.checks.end() ? nullptr : &it->second);
      }
    } else {
      for (const auto& [n, c] : st.checks)
        if (n.rfind("tollgate/", 0) != 0 && c.sha == st.head_sha) count(n, &c);
    }
    auto join = [](const std::vector<std::string>& v) {
      std::string out;
      for (const auto& x : v) out += (out.empty() ? "" : ", ") + x;
      return out;
    };
    if (!failing.empty()) {
      rows.push_back(gate_row("checks", "failing", join(failing)));
    } else if (!pending.empty()) {
      rows.push_back(gate_row("checks", "pending", join(pending)));
    } else {
      rows.push_back(gate_row("checks", "passing", std::to_string(passing) + " passing"));
    }
  }
  if (g.approvals) {
    std::string who;
    int n = 0;
    for (const auto& a : st.approvals) {
      if (a.sha != st.head_sha) continue;
      ++n;
      who += (who.empty() ? "@" : ", @") + a.login;
    }
    rows.push_back(gate_row("approvals", std::to_string(n) + "/" + std::to_string(g.approvals->count),
                            who.empty() ? "comment `/approve`" : who));
  }
  if (g.soak) rows.push_back(gate_row("soak", pipeline::format_duration(*g.soak), "after the upstream promotion"));
  if (g.window) {
    char hours[32];
    std::snprintf(hours, sizeof hours, "%02d:%02d-%02d:%02d", g.window->start_minute / 60, g.window->start_minute % 60,
                  g.window->end_minute / 60, g.window->end_minute % 60);
    rows.push_back(gate_row("window", hours, g.window->timezone.empty() ? "UTC" : g.window->timezone));
  }
  if (st.hold) {
    rows.push_back(gate_row("hold", "held", "by @" + st.hold->by + (st.hold->reason.empty() ? "" : ": " + st.hold->reason)));
  }
  return rows;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public helpers

namespace {
std::string pr_id(const std::string& host, const std::string& repo, std::int64_t pr) {
  return host + '\n' + repo + '#' + std::to_string(pr);
}
}  // namespace

void HostHints::branch_created(const std::string& host, const std::string& repo, const std::string& branch) {
  std::lock_guard lock(mu_);
  if (created_branches_.size() >= kMaxEntries) created_branches_.clear();
  created_branches_.insert(host + '\n' + repo + '\n' + branch);
}

bool HostHints::take_created_branch(const std::string& host, const std::string& repo, const std::string& branch) {
  std::lock_guard lock(mu_);
  return created_branches_.erase(host + '\n' + repo + '\n' + branch) > 0;
}

void HostHints::opened(const std::string& host, const std::string& repo, std::int64_t pr) {
  std::lock_guard lock(mu_);
  if (opened_.size() >= kMaxEntries) opened_.clear();
  opened_.insert(pr_id(host, repo, pr));
}

host::StickyHint HostHints::hint(const std::string& host, const std::string& repo, std::int64_t pr, const std::string& key,
                                   std::size_t text_hash, bool& unchanged) const {
  const std::string id = pr_id(host, repo, pr);
  std::lock_guard lock(mu_);
  host::StickyHint out;
  unchanged = false;
  if (auto it = comments_.find(id + '\n' + key); it != comments_.end()) {
    out.comment_id = it->second.id;
    unchanged = !shared_ && it->second.text_hash == text_hash;
  } else {
    out.new_pr = !shared_ && opened_.contains(id);
  }
  return out;
}

void HostHints::stored(const std::string& host, const std::string& repo, std::int64_t pr, const std::string& key,
                         std::int64_t comment_id, std::size_t text_hash) {
  std::string id = pr_id(host, repo, pr);
  std::lock_guard lock(mu_);
  // Whatever happened, the PR is no longer one nothing was posted on.
  opened_.erase(id);
  id += '\n';
  id += key;
  if (comment_id <= 0) {
    comments_.erase(id);
    return;
  }
  if (comments_.size() >= kMaxEntries) comments_.clear();
  comments_[id] = Entry{comment_id, text_hash};
}

std::string run_url(const std::string& public_url, const std::string& run_id) {
  std::string base = public_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base + "/runs/" + run_id;
}

std::string status_comment_key(const std::string& pipeline, const std::string& stage, const std::string& run_id) {
  // The marker templates/status-comment.mustache writes: `<!-- tollgate:status P/S/R -->`.
  return "status " + pipeline + "/" + stage + "/" + run_id;
}

std::string reply_comment_key(const Job& job) {
  // The engine's key is `reply:<comment id>:<run>` (or `reply:review:<review id>:<run>`): one per
  // answered comment, the same for every execution of the job.
  if (!job.key.empty()) return marker_safe(job.key);
  return "reply:" + std::to_string(job.comment_id) + ":" + job.stage;
}

std::string status_context(const std::string& stage) { return "tollgate/" + stage; }

std::string revert_branch(const std::string& stage_branch) { return stage_branch + "-revert"; }

namespace {

// ---------------------------------------------------------------------------------------------
// The jobs

struct Target {
  const pipeline::Stage* sd = nullptr;
  const pipeline::StageState* st = nullptr;
  host::RepoRef repo;
  std::string repo_name;
};

// The stage and the repository a job is about; nullopt with the reason when it cannot be found.
tl::expected<Target, Failure> target_of(const Job& job, const ExecContext& cx, bool need_stage) {
  Target t;
  t.sd = cx.def.stage(job.stage);
  t.st = cx.run.stage(job.stage);
  if (need_stage && (!t.sd || !t.st))
    return tl::unexpected(Failure{false, "stage '" + job.stage + "' is not in run " + cx.run.id});
  t.repo_name = !job.repo.empty() ? job.repo : t.sd ? t.sd->repo : std::string{};
  auto ref = repo_ref(t.repo_name);
  if (!ref) return tl::unexpected(Failure{false, "invalid repository '" + t.repo_name + "'"});
  t.repo = *ref;
  return t;
}

ExecOutcome run_prepare(const Job& job, const ExecContext& cx) {
  auto t = target_of(job, cx, true);
  if (!t) return report_failure(job, t.error());
  const pipeline::Stage& sd = *t->sd;
  if (!cx.writer) return report_failure(job, {false, "no git writer configured"});
  const std::string branch = !job.text.empty() ? job.text : t->st->branch;
  if (branch.empty()) return report_failure(job, {false, "no branch for stage '" + sd.name + "'"});
  auto base = base_branch(sd, cx);
  if (!base) return report_failure(job, base.error());
  auto url = clone_url_of(t->repo_name, cx);
  if (!url) return report_failure(job, url.error());

  const json vars = template_vars(cx, sd, *base);
  git::PromotionRequest req;
  req.url = std::move(*url);
  req.credentials = cx.credentials;
  req.base_branch = *base;
  req.target_branch = branch;
  auto message = commit_message(sd, vars);
  if (!message) return report_failure(job, message.error());
  req.message = std::move(*message);
  req.author = cx.identity;
  req.committer = cx.identity;

  for (const auto& e : sd.edits) {
    auto r = [&](const std::string& text) { return render(text, {}, vars, "edit " + e.ptr); };
    if (const auto* set = std::get_if<pipeline::SetEdit>(&e.action)) {
      for (const auto& [path, value] : set->values) {
        auto v = r(value);
        if (!v) return report_failure(job, v.error());
        req.edits.emplace_back(git::SetEdit{e.file, path, std::move(*v)});
      }
    } else if (const auto* image = std::get_if<pipeline::ImageEdit>(&e.action)) {
      if (image->new_name) {
        return report_failure(job, {false, "edit " + e.ptr + ": image newName is not supported by the git writer"});
      }
      std::string tag, digest;
      if (image->tag) {
        auto v = r(*image->tag);
        if (!v) return report_failure(job, v.error());
        tag = std::move(*v);
      }
      if (image->digest) {
        auto v = r(*image->digest);
        if (!v) return report_failure(job, v.error());
        digest = std::move(*v);
      }
      // The edit library's form: `tag`, `sha256:<hex>` or `tag@sha256:<hex>`.
      std::string value = tag.empty() ? digest : digest.empty() ? tag : tag + "@" + digest;
      if (value.empty()) return report_failure(job, {false, "edit " + e.ptr + ": image edit renders neither a tag nor a digest"});
      req.edits.emplace_back(git::ImageEdit{e.file, image->name, std::move(value)});
    } else if (const auto* replace = std::get_if<pipeline::ReplaceEdit>(&e.action)) {
      auto v = r(replace->with);
      if (!v) return report_failure(job, v.error());
      req.edits.emplace_back(git::ReplaceEdit{e.file, replace->pattern, std::move(*v)});
    } else if (const auto* copy = std::get_if<pipeline::CopyEdit>(&e.action)) {
      auto source_url = clone_url_of(cx.run.source.repo, cx);
      if (!source_url) return report_failure(job, source_url.error());
      git::CopyEdit c;
      c.source_url = std::move(*source_url);
      c.source_sha = cx.run.source.sha;
      c.from = copy->from;
      c.to = copy->to;  // source_credentials empty: the request's
      req.edits.emplace_back(std::move(c));
    }
  }

  const auto held = cx.lock_repo ? cx.lock_repo(t->repo_name) : nullptr;
  auto res = cx.writer->promote(req);
  if (!res) return report_failure(job, classify(res.error()));
  if (res->outcome == git::Outcome::unchanged) return report(result_of(job, O::no_change));
  if (res->created_branch && cx.hints) cx.hints->branch_created(cx.host_name, t->repo_name, branch);
  JobResult ok = result_of(job, O::ok);
  ok.sha = res->commit;
  return report(std::move(ok));
}

// The PR body: inline template, a template file of the source repository, or the default one.
tl::expected<std::string, Failure> pr_body(const pipeline::Stage& sd, const json& vars, const ExecContext& cx) {
  if (sd.pr.body && sd.pr.body_is_file) {
    auto repo = repo_ref(cx.run.source.repo);
    if (!repo) return tl::unexpected(Failure{false, "invalid source repository '" + cx.run.source.repo + "'"});
    auto file = cx.host.read_file(*repo, *sd.pr.body, cx.run.source.sha);
    if (!file) return tl::unexpected(classify(file.error(), "reading the PR body template '" + *sd.pr.body + "'"));
    if (!*file) {
      return tl::unexpected(Failure{false, "PR body template '" + *sd.pr.body + "' not found in " + cx.run.source.repo + "@" +
                                               cx.run.source.sha.substr(0, 7)});
    }
    return render(**file, {}, vars, "PR body");
  }
  return render(sd.pr.body, "pr-body", vars, "PR body");
}

tl::expected<std::string, Failure> pr_title(const std::optional<std::string>& custom, const json& vars) {
  auto title = render(custom, "pr-title", vars, "PR title");
  if (!title) return title;
  std::string t = first_line(*title);
  while (!t.empty() && t.back() == ' ') t.pop_back();
  if (t.empty()) return tl::unexpected(Failure{false, "PR title: the template renders to nothing"});
  return t;
}

// An open or merged PR whose head is `branch`: the one an earlier execution opened.
tl::expected<std::optional<host::PullRequest>, Failure> existing_pr(const Target& t, const std::string& branch,
                                                                     const ExecContext& cx) {
  auto found = cx.host.find_pull_request(t.repo, branch);
  if (!found) return tl::unexpected(classify(found.error(), "looking up the PR of branch '" + branch + "'"));
  if (*found && (*found)->head_ref == branch && ((*found)->state == "open" || (*found)->merged)) return *found;
  return std::optional<host::PullRequest>{};
}

ExecOutcome run_open_pr(const Job& job, const ExecContext& cx) {
  auto t = target_of(job, cx, true);
  if (!t) return report_failure(job, t.error());
  const pipeline::Stage& sd = *t->sd;
  const std::string branch = !job.text.empty() ? job.text : t->st->branch;
  if (branch.empty()) return report_failure(job, {false, "no branch for stage '" + sd.name + "'"});

  auto done_with = [&](const host::PullRequest& pr) {
    JobResult ok = result_of(job, O::ok);
    ok.pr = pr.number;
    ok.sha = !pr.head_sha.empty() ? pr.head_sha : job.sha;
    return report(std::move(ok));
  };
  // Looked up first: a re-execution finds the PR the first one opened (even if merged since) —
  // unless this process created the branch moments ago and this is the first open for it, when
  // there can be no earlier one (HostHints; taken now, so a retry of this job looks).
  if (!(cx.hints && cx.hints->take_created_branch(cx.host_name, t->repo_name, branch))) {
    auto existing = existing_pr(*t, branch, cx);
    if (!existing) return report_failure(job, existing.error());
    if (*existing) return done_with(**existing);
  }

  auto base = base_branch(sd, cx);
  if (!base) return report_failure(job, base.error());
  const json vars = template_vars(cx, sd, *base);
  auto title = pr_title(sd.pr.title, vars);
  if (!title) return report_failure(job, title.error());
  auto body = pr_body(sd, vars, cx);
  if (!body) return report_failure(job, body.error());
  host::NewPullRequest spec;
  spec.head = branch;
  spec.base = *base;
  spec.title = std::move(*title);
  spec.body = std::move(*body);
  spec.draft = sd.pr.draft;
  spec.labels = sd.pr.labels;
  spec.reviewers = sd.pr.reviewers;
  spec.looked_up = true;  // just now, above
  // Idempotent too (host.hpp): an open PR for the head branch is returned instead of a second one.
  auto created = cx.host.create_pull_request(t->repo, spec);
  if (!created) return report_failure(job, classify(created.error(), "opening the PR for '" + branch + "'"));
  if (created->number <= 0) return report_failure(job, {true, "opening the PR for '" + branch + "': no PR number in the answer"});
  if (created->created && cx.hints) cx.hints->opened(cx.host_name, t->repo_name, created->number);
  return done_with(*created);
}

// A status or status comment of an older revision, when the stage has published a newer one since:
// the newer revision's job is queued (publish schedules both with each revision) and publishes the
// latest text, so this one is skipped. seq 0: a job stored before revisions were recorded on jobs.
bool superseded(const Job& job, const Target& t) { return job.seq > 0 && t.st && t.st->sticky_rev > job.seq; }

ExecOutcome run_set_status(const Job& job, const ExecContext& cx) {
  auto t = target_of(job, cx, false);
  if (!t) return failed(t.error());
  if (job.sha.empty()) return failed({false, "set_commit_status: no commit"});
  if (superseded(job, *t) && t->st->head_sha == job.sha) return done();
  host::CommitStatus s;
  s.context = status_context(job.stage);
  s.state = job.state;
  s.description = job.text;
  // The latest status published for this head wins: an older revision executed again after a
  // newer one (a crash, a slow worker) must not put the older text back.
  if (t->st && t->st->head_sha == job.sha && !t->st->status_state.empty()) {
    s.state = t->st->status_state;
    s.description = t->st->status_description;
  }
  if (s.state != "pending" && s.state != "success" && s.state != "failure" && s.state != "error")
    return failed({false, "set_commit_status: invalid state '" + s.state + "'"});
  s.description = truncate_utf8(one_line(s.description), 140);  // GitHub refuses longer (422)
  s.target_url = cx.public_url.empty() ? std::string{} : run_url(cx.public_url, cx.run.id);
  auto r = cx.host.set_commit_status(t->repo, job.sha, s);
  if (!r) return failed(classify(r.error(), "setting " + s.context + " on " + job.sha.substr(0, 7)));
  return done();
}

std::string status_comment(const Job& job, const Target& t, const ExecContext& cx) {
  json vars = t.sd ? template_vars(cx, *t.sd, t.sd->branch.value_or("")) : json::object();
  std::string summary = job.text;
  json gates = json::array();
  if (t.st) {
    // The stage's current text, not the job's: an older revision executed late shows the latest.
    if (!t.st->status_description.empty()) summary = t.st->status_description;
    const std::string status = pipeline::to_string(t.st->status);
    summary = summary.empty() || summary == status ? status : status + " — " + summary;
    if (t.sd) gates = gate_rows(*t.sd, *t.st);
  }
  vars["status"] = {{"summary", summary}, {"gates", gates}, {"state", t.st ? t.st->status_state : job.state}};
  auto body = templates::render(templates::default_template("status-comment"), vars);
  std::string text = body ? *body : "**" + summary + "**\n";
  text += "\n<details><summary>All stages</summary>\n\n" + pipeline::render_status(cx.run) + "\n</details>\n";
  return text;
}

ExecOutcome run_sticky(const Job& job, const ExecContext& cx) {
  auto t = target_of(job, cx, false);
  if (!t) return failed(t.error());
  if (job.pr <= 0) return failed({false, "upsert_sticky_comment: no PR"});
  if (superseded(job, *t) && t->st->pr == job.pr) return done();
  const std::string key = status_comment_key(cx.def.name, job.stage, cx.run.id);
  const std::string text = status_comment(job, *t, cx);
  const std::size_t text_hash = std::hash<std::string>{}(text);
  host::StickyHint hint;
  if (cx.hints) {
    bool unchanged = false;
    hint = cx.hints->hint(cx.host_name, t->repo_name, job.pr, key, text_hash, unchanged);
    if (unchanged) return done();
  }
  auto r = cx.host.upsert_sticky_comment(t->repo, job.pr, key, text, hint);
  if (!r) {
    if (cx.hints) cx.hints->stored(cx.host_name, t->repo_name, job.pr, key, 0, 0);  // list next time
    return failed(classify(r.error(), "updating the status comment on #" + std::to_string(job.pr)));
  }
  if (cx.hints) cx.hints->stored(cx.host_name, t->repo_name, job.pr, key, r->id, text_hash);
  return done();
}

// The PR as the host has it now, to learn what happened to a merge whose answer was not "merged".
std::optional<host::PullRequest> current_pr(const Target& t, std::int64_t number, const ExecContext& cx) {
  auto pr = cx.host.get_pull_request(t.repo, number);
  if (!pr) return std::nullopt;
  return *pr;
}

// merge_pr and merge_revert_pr: bound to job.sha. A merge that already went through (an earlier
// execution whose result was lost) is found on the PR and reported ok, whatever the host answers
// to the repeated merge (GitHub: 405 "Pull Request is not mergeable").
ExecOutcome run_merge(const Job& job, const ExecContext& cx) {
  auto t = target_of(job, cx, false);
  if (!t) return report_failure(job, t.error());
  if (job.pr <= 0 || job.sha.empty()) return report_failure(job, {false, "merge: no PR or no expected head"});
  const std::string what = "merging PR #" + std::to_string(job.pr);

  auto merged_ok = [&](const std::string& sha) {
    JobResult ok = result_of(job, O::ok);
    ok.sha = sha;
    return report(std::move(ok));
  };
  // Merged at the expected head (by this job, earlier): ok with the merge commit.
  auto merged_here = [&](const std::optional<host::PullRequest>& pr) {
    return pr && pr->merged && pr->head_sha == job.sha && !pr->merge_commit_sha.empty();
  };

  host::MergeMethod method = t->sd ? merge_method(t->sd->pr.merge_method) : host::MergeMethod::merge;
  std::string title;
  if (job.kind == JobKind::merge_pr && t->sd && t->sd->pr.commit_message) {
    auto m = commit_message(*t->sd, template_vars(cx, *t->sd, t->sd->branch.value_or("")));
    if (m) title = first_line(*m);
  }
  auto m = cx.host.merge_pull_request(t->repo, job.pr, job.sha, method, title);
  if (!m) {
    // The answer may have been lost after the merge went through.
    if (auto pr = current_pr(*t, job.pr, cx); merged_here(pr)) return merged_ok(pr->merge_commit_sha);
    return report_failure(job, classify(m.error(), what));
  }
  switch (m->outcome) {
    case host::MergeOutcome::merged: {
      if (!m->sha.empty()) return merged_ok(m->sha);
      if (auto pr = current_pr(*t, job.pr, cx); merged_here(pr)) return merged_ok(pr->merge_commit_sha);
      // Merged, but the merge commit is not known yet: the next attempt finds it on the PR.
      return report_failure(job, {true, what + ": merged, but the host did not say the merge commit yet"});
    }
    case host::MergeOutcome::not_mergeable: {
      auto pr = current_pr(*t, job.pr, cx);
      if (merged_here(pr)) return merged_ok(pr->merge_commit_sha);
      if (pr && !pr->head_sha.empty() && pr->head_sha != job.sha) {
        // Merged or refused at another head: the head moved under the merge.
        JobResult moved = result_of(job, O::head_moved);
        moved.sha = pr->head_sha;
        moved.message = one_line(what + ": the head is now " + pr->head_sha.substr(0, 7));
        return report(std::move(moved));
      }
      if (pr && (pr->mergeable_state == "dirty" || pr->mergeable == std::optional<bool>{false})) {
        // A conflict with the base branch does not go away by waiting on checks: the stage fails
        // with the reason (a person resolves it, then /retry).
        JobResult conflict = result_of(job, O::terminal);
        conflict.message = one_line(what + ": the promotion PR conflicts with " + (pr->base_ref.empty() ? "its base" : pr->base_ref) +
                                    (m->message.empty() ? "" : " (" + m->message + ")"));
        return report(std::move(conflict));
      }
      JobResult refused = result_of(job, O::not_mergeable);
      refused.message = one_line(what + ": " + (pr && pr->state == "closed" && !pr->merged ? "the PR is closed"
                                                 : m->message.empty() ? "not mergeable"
                                                                      : m->message));
      return report(std::move(refused));
    }
    case host::MergeOutcome::head_moved: {
      auto pr = current_pr(*t, job.pr, cx);
      if (merged_here(pr)) return merged_ok(pr->merge_commit_sha);
      JobResult moved = result_of(job, O::head_moved);
      // The new head when the host shows one; empty: the engine resyncs to learn it.
      if (pr && pr->head_sha != job.sha) moved.sha = pr->head_sha;
      moved.message = one_line(what + ": " + (m->message.empty() ? "the head moved" : m->message));
      return report(std::move(moved));
    }
  }
  return report_failure(job, {false, what + ": unknown merge outcome"});
}

ExecOutcome run_close(const Job& job, const ExecContext& cx) {
  auto t = target_of(job, cx, false);
  if (!t) return failed(t.error());
  if (job.pr <= 0) return failed({false, "close_pr: no PR"});
  const std::string what = "closing PR #" + std::to_string(job.pr);
  auto pr = cx.host.get_pull_request(t->repo, job.pr);
  if (!pr) return failed(classify(pr.error(), what));
  if (pr->state != "open") return done();  // closed (or merged) already: by us earlier, or by someone
  auto closed = cx.host.close_pull_request(t->repo, job.pr);
  if (!closed) {
    // Closed meanwhile (a lost answer, a person): done all the same.
    if (auto again = cx.host.get_pull_request(t->repo, job.pr); again && again->state != "open") return done();
    return failed(classify(closed.error(), what));
  }
  return done();
}

ExecOutcome run_open_revert(const Job& job, const ExecContext& cx) {
  auto t = target_of(job, cx, true);
  if (!t) return report_failure(job, t.error());
  const pipeline::Stage& sd = *t->sd;
  const pipeline::StageState& st = *t->st;
  if (job.sha.empty()) return report_failure(job, {false, "no merge commit to revert"});
  const std::string stage_branch =
      !st.branch.empty() ? st.branch : "tollgate/" + cx.def.name + "/" + sd.name + "/" + cx.run.id;
  const std::string branch = revert_branch(stage_branch);

  auto done_with = [&](const host::PullRequest& pr, const std::string& fallback_sha) {
    JobResult ok = result_of(job, O::ok);
    ok.pr = pr.number;
    ok.sha = !pr.head_sha.empty() ? pr.head_sha : fallback_sha;
    return report(std::move(ok));
  };
  auto existing = existing_pr(*t, branch, cx);
  if (!existing) return report_failure(job, existing.error());
  if (*existing) return done_with(**existing, {});

  if (!cx.writer) return report_failure(job, {false, "no git writer configured"});
  auto base = base_branch(sd, cx);
  if (!base) return report_failure(job, base.error());
  auto url = clone_url_of(t->repo_name, cx);
  if (!url) return report_failure(job, url.error());
  const std::string version = [&] {
    for (const auto& [k, v] : cx.run.release)
      if (k == "version") return v;
    return cx.run.source.sha.substr(0, 7);
  }();
  const std::string title = "Roll back " + cx.def.name + " " + version + " in " + sd.name;
  const std::string pr_ref = job.pr > 0 ? "#" + std::to_string(job.pr) : std::string("the promotion");
  git::RevertRequest req;
  req.url = std::move(*url);
  req.credentials = cx.credentials;
  req.base_branch = *base;
  req.target_branch = branch;
  req.commit = job.sha;
  req.message = title + "\n\nThis reverts commit " + job.sha + " (" + pr_ref + ").\nRun: " + run_url(cx.public_url, cx.run.id);
  req.author = cx.identity;
  req.committer = cx.identity;
  const auto held = cx.lock_repo ? cx.lock_repo(t->repo_name) : nullptr;
  auto res = cx.writer->revert(req);
  if (!res) return report_failure(job, classify(res.error()));
  if (res->outcome == git::Outcome::unchanged) {
    return report_failure(job, {false, "commit " + job.sha.substr(0, 7) + " is already reverted on '" + req.base_branch + "'"});
  }
  host::NewPullRequest spec;
  spec.head = branch;
  spec.base = req.base_branch;
  spec.title = title;
  spec.body = "This pull request rolls **" + cx.def.name + "** back in **" + sd.name + "** (`" + sd.repo +
              "`): it reverts " + pr_ref + " (merge commit `" + job.sha.substr(0, 12) + "`).\n\n" +
              "Run: [" + cx.run.id + "](" + run_url(cx.public_url, cx.run.id) + ")\n\n" +
              "<sub>Opened by tollgate.</sub>\n";
  spec.labels = sd.pr.labels;
  spec.reviewers = sd.pr.reviewers;
  auto created = cx.host.create_pull_request(t->repo, spec);
  if (!created) return report_failure(job, classify(created.error(), "opening the revert PR for '" + branch + "'"));
  if (created->number <= 0) return report_failure(job, {true, "opening the revert PR: no PR number in the answer"});
  return done_with(*created, res->commit);
}

ExecOutcome run_reaction(const Job& job, const ExecContext& cx) {
  auto t = target_of(job, cx, false);
  if (!t) return failed(t.error());
  if (job.comment_id <= 0) return failed({false, "add_reaction: no comment"});
  // Hosts keep one reaction per user and content: a second execution adds nothing.
  auto r = cx.host.add_reaction(t->repo, job.pr, job.comment_id, job.state.empty() ? "+1" : job.state);
  if (!r) return failed(classify(r.error(), "reacting to comment " + std::to_string(job.comment_id)));
  return done();
}

ExecOutcome run_reply(const Job& job, const ExecContext& cx) {
  auto t = target_of(job, cx, false);
  if (!t) return failed(t.error());
  if (job.pr <= 0) return failed({false, "reply: no PR"});
  // A sticky comment per answered comment: executed twice, the reply is edited, not posted again.
  auto r = cx.host.upsert_sticky_comment(t->repo, job.pr, reply_comment_key(job), job.text);
  if (!r) return failed(classify(r.error(), "replying on #" + std::to_string(job.pr)));
  return done();
}

// A check as the host lists it, as the engine counts it (as the webhooks map them): passed
// (success, neutral, skipped; Gitea's warning), failed, or not finished.
pipeline::CheckState check_state_of(const host::Check& c) {
  using S = pipeline::CheckState;
  auto any_of = [](std::string_view v, std::initializer_list<std::string_view> names) {
    return std::any_of(names.begin(), names.end(), [&](std::string_view n) { return iequals(v, n); });
  };
  if (c.source == host::Check::Source::check_run) {
    if (!iequals(c.state, "completed")) return S::pending;
    const auto state = webhooks::conclusion_state(c.conclusion);  // as the check_run webhook maps it
    return state ? check_state(*state) : S::failure;
  }
  if (any_of(c.state, {"success", "neutral", "skipped", "warning"})) return S::success;
  if (any_of(c.state, {"failure", "error", "failed", "canceled", "cancelled"})) return S::failure;
  return S::pending;
}

ExecOutcome run_resync(const Job& job, const ExecContext& cx) {
  auto t = target_of(job, cx, false);
  if (!t) return failed(t.error());
  if (job.pr <= 0) return failed({false, "resync_pr: no PR"});
  auto pr = cx.host.get_pull_request(t->repo, job.pr);
  if (!pr) return failed(classify(pr.error(), "reading PR #" + std::to_string(job.pr)));
  ExecOutcome out;
  if (pr->merged) {
    pipeline::PrMerged m{t->repo_name, job.pr, pr->merge_commit_sha, pr->merged_by, false};
    if (!pr->merged_by.empty()) {
      m.by_tollgate = iequals(pr->merged_by, cx.bot_login);
    } else if (t->st && t->st->status == pipeline::StageStatus::merging && t->st->expected_merge_sha == pr->head_sha) {
      // The host did not say who merged it (GitLab without merge_user, a list answer): merged at
      // the head tollgate's own merge was sent for, while that merge was under way: tollgate's.
      m.by_tollgate = true;
      m.by = cx.bot_login;
    }
    out.inputs.emplace_back(std::move(m));
  } else if (pr->state == "closed") {
    // Hosts do not report who closed a PR on the PR itself: `by` stays empty.
    out.inputs.emplace_back(pipeline::PrClosed{t->repo_name, job.pr, {}});
  } else if (!pr->head_sha.empty()) {
    out.inputs.emplace_back(pipeline::HeadChanged{t->repo_name, job.pr, pr->head_sha});
    // The checks on the head too: a status or check run whose webhook was lost (or came while
    // the PR was being opened) would otherwise be waited for until the gate times out. A failed
    // read is not the resync's failure: the PR's state still counts, the next resync reads again.
    if (auto checks = cx.host.get_checks(t->repo, pr->head_sha)) {
      for (const auto& c : checks->checks) {
        if (c.name.empty()) continue;
        out.inputs.emplace_back(pipeline::CheckCompleted{t->repo_name, pr->head_sha, c.name, check_state_of(c)});
      }
    } else {
      log::warn("resync: the checks could not be read", {{"repo", t->repo_name},
                                                         {"pr", job.pr},
                                                         {"sha", pr->head_sha},
                                                         {"error", one_line(checks.error().message)}});
    }
  }
  return out;
}

bool reports_result(JobKind k) {
  return k == JobKind::prepare_branch || k == JobKind::open_pr || k == JobKind::merge_pr || k == JobKind::open_revert_pr ||
         k == JobKind::merge_revert_pr;
}

}  // namespace

ExecOutcome cannot_run(const Job& job, const std::string& message) {
  const Failure f{false, one_line(message)};
  return reports_result(job.kind) ? report_failure(job, f) : failed(f);
}

ExecOutcome execute(const Job& job, const ExecContext& cx) {
  try {
    switch (job.kind) {
      case JobKind::prepare_branch: return run_prepare(job, cx);
      case JobKind::open_pr: return run_open_pr(job, cx);
      case JobKind::set_commit_status: return run_set_status(job, cx);
      case JobKind::upsert_sticky_comment: return run_sticky(job, cx);
      case JobKind::merge_pr:
      case JobKind::merge_revert_pr: return run_merge(job, cx);
      case JobKind::close_pr: return run_close(job, cx);
      case JobKind::open_revert_pr: return run_open_revert(job, cx);
      case JobKind::add_reaction: return run_reaction(job, cx);
      case JobKind::reply: return run_reply(job, cx);
      case JobKind::resync_pr: return run_resync(job, cx);
      case JobKind::verify_probe:
      case JobKind::timer: break;
    }
    return failed({false, std::string("not a host job: ") + pipeline::to_string(job.kind)});
  } catch (const std::exception& e) {
    // A bug, not a state of the world: retrying would fail the same way.
    Failure f{false, one_line(std::string(pipeline::to_string(job.kind)) + ": internal error: " + e.what())};
    return reports_result(job.kind) ? report_failure(job, f) : failed(f);
  }
}

}  // namespace tollgate::service
