#include "service/engine_service.hpp"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <set>

#include <nlohmann/json.hpp>

#include "pipeline/triggers.hpp"
#include "pipeline/validate.hpp"
#include "service/body_codec.hpp"
#include "service/engine_inputs.hpp"
#include "service/inbox.hpp"
#include "service/job_executor.hpp"
#include "service/log.hpp"
#include "service/probes.hpp"
#include "service/run_store.hpp"
#include "service/store.hpp"
#include "templates/mustache.hpp"

namespace tollgate::service {

namespace {

using json = nlohmann::json;
using runs::Instant;

// A stable run id for (host, repo, pipeline, sha): a merged PR that also arrives as a push, or a
// delivery applied again after a crash, finds the run it started instead of starting another.
std::string make_run_id(const std::string& host, const std::string& repo, const std::string& pipeline,
                        const std::string& sha) {
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a 64
  for (const std::string* part : {&host, &repo, &pipeline, &sha}) {
    for (unsigned char c : *part) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    h ^= 0xff;
    h *= 1099511628211ULL;
  }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return std::string(out, 12);
}

pipeline::ActorFacts::Permission to_actor_permission(host::Permission p) {
  using P = pipeline::ActorFacts::Permission;
  switch (p) {
    case host::Permission::none: return P::none;
    case host::Permission::read: return P::read;
    case host::Permission::triage: return P::triage;
    case host::Permission::write: return P::write;
    case host::Permission::maintain: return P::maintain;
    case host::Permission::admin: return P::admin;
  }
  return P::none;
}

// The repository and PR an input concerns (PR-routed inputs), or the commit (checks).
struct Route {
  std::string repo;
  std::int64_t pr = 0;
  std::string sha;  // set: route by commit
};

std::optional<Route> route_of(const pipeline::Input& in) {
  return std::visit(
      [](const auto& i) -> std::optional<Route> {
        using T = std::decay_t<decltype(i)>;
        if constexpr (std::is_same_v<T, pipeline::CheckCompleted>) {
          return Route{i.repo, 0, i.sha};
        } else if constexpr (std::is_same_v<T, pipeline::PrMerged> || std::is_same_v<T, pipeline::PrClosed> ||
                             std::is_same_v<T, pipeline::HeadChanged> || std::is_same_v<T, pipeline::ReviewSubmitted> ||
                             std::is_same_v<T, pipeline::CommentCreated>) {
          return Route{i.repo, i.pr, {}};
        } else {
          return std::nullopt;
        }
      },
      in);
}

// The author of the change a trigger promotes: the source PR's author, or the pusher.
std::string source_author(const webhooks::Event& e) {
  if (const auto* pr = std::get_if<webhooks::PullRequestEvent>(&e.payload)) return pr->pr.author.login;
  if (const auto* push = std::get_if<webhooks::PushEvent>(&e.payload)) return push->pusher.login;
  return {};
}

std::string source_title(const webhooks::Event& e) {
  if (const auto* pr = std::get_if<webhooks::PullRequestEvent>(&e.payload)) return pr->pr.title;
  return {};
}

// "@org/team" entries of a stage's approvals gate.
std::vector<std::pair<std::string, std::string>> gate_teams(const pipeline::Stage& stage) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!stage.gates.approvals) return out;
  for (const auto& who : stage.gates.approvals->from) {
    if (who.size() < 4 || who[0] != '@') continue;
    const auto slash = who.find('/');
    if (slash == std::string::npos || slash == 1 || slash + 1 == who.size()) continue;
    out.emplace_back(who.substr(1, slash - 1), who.substr(slash + 1));
  }
  return out;
}

}  // namespace

struct EngineService::Impl {
  EngineServiceOptions options;
  Inbox& inbox;
  std::map<std::string, EngineHost> hosts;
  git::GitWriter* writer;
  HostHints hints;  // what the workers just did on the host, to spare it lookups

  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  std::uint64_t generation = 0;  // bumped by every nudge
  std::thread events_thread;
  std::thread leases_thread;
  std::vector<std::thread> worker_threads;
  std::string replica;  // this replica's name: the start of its workers' lease owners

  // Jobs at work in this process (id -> lease owner): their leases are renewed while they run.
  std::mutex working_mutex;
  std::map<std::int64_t, std::string> working;

  std::atomic<std::uint64_t> events{0}, runs_started{0}, jobs_done{0}, jobs_retried{0}, jobs_failed{0};
  // Every delivery up to here is consumed, or waits for its held host (events thread).
  std::int64_t cursor = 0;

  // Gauges for /metrics, refreshed by the events thread (at most once a second).
  mutable std::mutex gauges_mutex;
  std::map<std::string, std::int64_t> job_gauges, run_gauges;
  std::chrono::steady_clock::time_point gauges_at{};

  void refresh_gauges(store::Db& rdb) {
    const auto now = std::chrono::steady_clock::now();
    if (now - gauges_at < std::chrono::seconds(1)) return;
    gauges_at = now;
    auto jobs = runs::job_counts(rdb);
    std::map<std::string, std::int64_t> by_status;
    for (const char* st : {"queued", "running", "succeeded", "failed", "aborted", "superseded"}) by_status[st] = 0;
    if (auto q = rdb.prepare("SELECT status, COUNT(*) FROM runs GROUP BY status")) {
      while (true) {
        auto row = q->step();
        if (!row || !*row) break;
        by_status[q->text(0)] = q->int64(1);
      }
    }
    std::lock_guard lock(gauges_mutex);
    if (jobs) job_gauges = std::move(*jobs);
    run_gauges = std::move(by_status);
  }

  std::mutex defs_mutex;
  std::map<std::string, std::shared_ptr<const pipeline::PipelineFile>, std::less<>> defs;  // by text

  Impl(EngineServiceOptions o, Inbox& i, std::map<std::string, EngineHost> h, git::GitWriter* w)
      : options(std::move(o)), inbox(i), hosts(std::move(h)), writer(w), replica(options.replica) {
    hints.set_shared(store::is_postgres(options.database));  // other replicas act on the same PRs
    if (replica.empty()) {
      char name[256] = {};
      (void)::gethostname(name, sizeof name - 1);
      replica = name[0] != 0 ? name : "tollgate";
    }
  }

  // ------------------------------------------------------------------------------------------
  // Time and context

  [[nodiscard]] pipeline::TimePoint now() const {
    if (options.now) return options.now();
    return std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
  }
  [[nodiscard]] Instant now_ms() const {
    if (options.now) return std::chrono::time_point_cast<std::chrono::milliseconds>(options.now());
    return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  }
  [[nodiscard]] pipeline::Context context() const {
    return pipeline::Context{now(), options.zones, options.engine};
  }
  [[nodiscard]] pipeline::Context context_for(const std::string& host) const {
    auto cx = context();
    if (auto it = hosts.find(host); it != hosts.end()) cx.options.bot_login = it->second.bot_login;
    return cx;
  }

  // The pipeline file a run is pinned to, parsed once per distinct text.
  std::shared_ptr<const pipeline::PipelineFile> parse_definition(const std::string& text, std::string* error) {
    {
      std::lock_guard lock(defs_mutex);
      if (auto it = defs.find(text); it != defs.end()) return it->second;
    }
    auto loaded = pipeline::load_pipeline(text, options.pipeline_file);
    if (!loaded.ok() || !loaded.file) {
      if (error) {
        *error = loaded.problems.empty() ? std::string("the pipeline file does not load")
                                         : pipeline::format_text(loaded.problems.front());
      }
      return nullptr;
    }
    auto file = std::make_shared<const pipeline::PipelineFile>(std::move(*loaded.file));
    std::lock_guard lock(defs_mutex);
    if (defs.size() > 256) defs.clear();
    defs.emplace(text, file);
    return file;
  }

  const pipeline::Pipeline* pipeline_of(const runs::RunRecord& rec, std::shared_ptr<const pipeline::PipelineFile>& holder) {
    std::string error;
    holder = parse_definition(rec.definition, &error);
    if (!holder) {
      log::error("run definition does not load", {{"run", rec.id}, {"error", error}});
      return nullptr;
    }
    for (const auto& p : holder->pipelines) {
      if (p.name == rec.pipeline) return &p;
    }
    log::error("run definition has no such pipeline", {{"run", rec.id}, {"pipeline", rec.pipeline}});
    return nullptr;
  }

  // ------------------------------------------------------------------------------------------
  // Applying inputs (writer thread, inside a transaction)

  // Applies one input to one run and saves what changed. Errors are SQLite's (the transaction
  // rolls back); a run that cannot be read is logged and left alone, so it cannot hold up others.
  std::string apply_to_run(store::Db& db, const std::string& run_id, const pipeline::Input& input,
                           const std::string& key, bool* scheduled = nullptr, std::string* refused = nullptr) {
    if (auto locked = runs::lock_runs(db); !locked) return locked.error();  // other replicas
    auto rec = runs::load_run(db, run_id);
    if (!rec) {
      log::error("run cannot be read", {{"run", run_id}, {"error", rec.error()}});
      return {};
    }
    if (!*rec) return {};
    std::shared_ptr<const pipeline::PipelineFile> holder;
    const pipeline::Pipeline* def = pipeline_of(**rec, holder);
    if (!def) return {};
    auto cx = context_for((*rec)->host);
    const auto status = (*rec)->state.status;
    if (def->concurrency == pipeline::Concurrency::supersede &&
        (status == pipeline::RunStatus::running || status == pipeline::RunStatus::failed)) {
      // A run left to finish a merge, verification or rollback when a newer one came gives way
      // then; a failed one is not retried behind the newer one's back.
      auto newer = runs::newer_run(db, (*rec)->host, (*rec)->repo, (*rec)->pipeline, (*rec)->created_at);
      if (!newer) return newer.error();
      if (*newer) cx.superseded_by = **newer;
    }
    const auto step = pipeline::apply(*def, (*rec)->state, input, cx);
    if (refused) *refused = step.refused;
    if (step.run == (*rec)->state && step.transitions.empty() && step.jobs.empty()) {
      // An ended run (commands like /retry and /rollback still reach it through the engine).
      if (pipeline::is_terminal((*rec)->state.status)) return audit_late_pr_event(db, **rec, *def, input, key);
      return {};
    }
    auto saved = runs::save_step(db, **rec, step, key, now_ms(), runs::stage_repos(*def));
    if (!saved) return saved.error();
    if (scheduled && saved->scheduled > 0) *scheduled = true;
    if (!pipeline::is_terminal((*rec)->state.status) && pipeline::is_terminal(step.run.status)) {
      log::info("run finished", {{"run", run_id}, {"pipeline", (*rec)->pipeline}, {"status", pipeline::to_string(step.run.status)}});
      return start_next_queued(db, **rec, key, scheduled);
    }
    return {};
  }

  // A person merged a PR of a run that had already ended (e.g. a superseded run's PR, merged
  // before tollgate closed it): the environment changed outside the run, which the engine no
  // longer acts on. The run's audit log records it, so the change is not invisible. (Closing such
  // a PR changes nothing and is not recorded.)
  std::string audit_late_pr_event(store::Db& db, const runs::RunRecord& rec, const pipeline::Pipeline& def,
                                  const pipeline::Input& input, const std::string& key) {
    const auto* merged = std::get_if<pipeline::PrMerged>(&input);
    if (!merged || merged->by_tollgate) return {};
    const std::int64_t pr = merged->pr;
    const std::string& repo = merged->repo;
    for (const auto& st : rec.state.stages) {
      const auto* sd = def.stage(st.name);
      if (!sd || (st.pr != pr && st.revert_pr != pr) || !pipeline::same_repo(sd->repo, repo)) continue;
      pipeline::Step step;
      step.run = rec.state;
      const std::string status = pipeline::to_string(st.status);
      const std::string& who = merged->by;
      step.transitions.push_back({st.name, status, status, who.empty() ? std::string("unknown") : who,
                                  "PR #" + std::to_string(pr) + " merged" + (who.empty() ? "" : " by @" + who) + " after the run was " +
                                      pipeline::to_string(rec.state.status) + ": the environment changed outside the run"});
      auto saved = runs::save_step(db, rec, step, key, now_ms(), runs::stage_repos(def));
      if (!saved) return saved.error();
      log::warn("a PR of an ended run was merged", {{"run", rec.id}, {"stage", st.name}, {"pr", pr}, {"by", who}});
      return {};
    }
    return {};
  }

  // concurrency: queue — when a run ends, the oldest queued run of its pipeline starts.
  std::string start_next_queued(store::Db& db, const runs::RunRecord& ended, const std::string& key, bool* scheduled) {
    auto in_flight = runs::in_flight_runs(db, ended.host, ended.repo, ended.pipeline);
    if (!in_flight) return in_flight.error();
    std::vector<pipeline::RunState> states;
    for (const auto& r : *in_flight) states.push_back(r.state);
    const auto next = pipeline::next_queued(states);
    if (!next) return {};
    for (const auto& r : *in_flight) {
      if (r.id != *next) continue;
      std::shared_ptr<const pipeline::PipelineFile> holder;
      const pipeline::Pipeline* def = pipeline_of(r, holder);
      if (!def) return {};
      const auto step = pipeline::start_run(*def, r.state, context_for(r.host));
      auto saved = runs::save_step(db, r, step, key, now_ms(), runs::stage_repos(*def));
      if (!saved) return saved.error();
      if (scheduled && saved->scheduled > 0) *scheduled = true;
    }
    return {};
  }

  // Offers a webhook input to every run it concerns.
  std::string offer(store::Db& db, const std::string& host, const pipeline::Input& input, const std::string& key,
                    bool* scheduled) {
    const auto route = route_of(input);
    if (!route) return {};
    auto ids = route->sha.empty() ? runs::runs_by_pr(db, host, route->repo, route->pr)
                                  : runs::runs_by_sha(db, host, route->repo, route->sha);
    if (!ids) return ids.error();
    for (const auto& id : *ids) {
      if (auto err = apply_to_run(db, id, input, key, scheduled); !err.empty()) return err;
    }
    return {};
  }

  // ------------------------------------------------------------------------------------------
  // Triggers: read .tollgate.yaml at the commit, start one run per matching pipeline.

  struct NewRun {
    std::string pipeline;
    std::string definition;
    pipeline::SourceFacts source;
    std::vector<std::pair<std::string, std::string>> release;
  };

  enum class Fetch { ok, none, retry };

  // A run of `def` for `source`: its release values rendered. Nothing when one does not render
  // (logged: the file's author has to fix the template).
  std::optional<NewRun> make_new_run(const std::string& host_name, const EngineHost& host, const pipeline::Pipeline& def,
                                     const std::string& text, pipeline::SourceFacts source) {
    NewRun run;
    run.pipeline = def.name;
    run.definition = text;
    run.source = std::move(source);
    const auto& src = run.source;
    json vars = {{"source",
                  {{"host", host_name},
                   {"repo", src.repo},
                   {"branch", src.branch},
                   {"sha", src.sha},
                   {"short_sha", src.sha.substr(0, 7)},
                   {"pr", src.pr},
                   {"pr_title", src.title},
                   {"pr_url", host.pr_url && src.pr > 0 ? host.pr_url(src.repo, src.pr) : std::string{}},
                   {"author", src.author}}},
                 {"pipeline", {{"name", def.name}}}};
    for (const auto& [key, tmpl] : def.release) {
      auto value = templates::render(tmpl, vars);
      if (!value) {
        log::error("release value does not render: no run started",
                   {{"repo", src.repo}, {"pipeline", def.name}, {"value", key}, {"error", value.error()}});
        return std::nullopt;
      }
      run.release.emplace_back(key, *value);
      vars["release"][key] = *value;
    }
    return run;
  }

  Fetch prepare_trigger(const std::string& host_name, EngineHost& host, const SourceTrigger& trigger,
                        const webhooks::Event& event, std::vector<NewRun>& out) {
    auto text = host.api->read_file(host::RepoRef{owner_of(trigger.repo), name_of(trigger.repo)}, options.pipeline_file,
                                    trigger.sha);
    if (!text) {
      const auto kind = text.error().kind;
      if (kind == host::HostError::Kind::transient || kind == host::HostError::Kind::rate_limited) {
        log::warn("cannot read the pipeline file yet", {{"repo", trigger.repo}, {"sha", trigger.sha}, {"error", text.error().message}});
        return Fetch::retry;
      }
      log::error("cannot read the pipeline file", {{"repo", trigger.repo}, {"sha", trigger.sha}, {"error", text.error().message}});
      return Fetch::none;
    }
    if (!*text) {  // no pipeline file: not a tollgate repository
      log::info("no pipeline file: nothing to promote",
                {{"repo", trigger.repo}, {"sha", trigger.sha}, {"file", options.pipeline_file}});
      return Fetch::none;
    }
    std::string error;
    auto file = parse_definition(**text, &error);
    if (!file) {
      log::warn("pipeline file has errors: no run started",
                {{"repo", trigger.repo}, {"sha", trigger.sha}, {"error", error}});
      return Fetch::none;
    }
    auto match = pipeline::match_triggers(*file, trigger.event);
    if (!match.need_changed_files.empty() && trigger.pr > 0) {
      auto files = host.api->list_changed_files(host::RepoRef{owner_of(trigger.repo), name_of(trigger.repo)}, trigger.pr);
      if (!files) {
        const auto kind = files.error().kind;
        if (kind == host::HostError::Kind::transient || kind == host::HostError::Kind::rate_limited) return Fetch::retry;
        log::error("cannot list the changed files", {{"repo", trigger.repo}, {"pr", trigger.pr}, {"error", files.error().message}});
        return Fetch::none;
      }
      auto full = trigger.event;
      full.changed_files.clear();
      for (const auto& f : *files) {
        full.changed_files.push_back(f.filename);
        if (!f.previous_filename.empty()) full.changed_files.push_back(f.previous_filename);
      }
      full.changed_files_complete = true;
      match = pipeline::match_triggers(*file, full);
    }
    for (const auto& why : match.skipped) log::info("pipeline not started", {{"repo", trigger.repo}, {"reason", why}});
    // Who wrote the change (allow_author: false depends on it) and its title. GitLab's merge
    // hook names the author only by id: then the merge request itself is read.
    std::string author = source_author(event);
    std::string title = source_title(event);
    if (!match.pipelines.empty() && trigger.pr > 0 && (author.empty() || title.empty())) {
      auto pr = host.api->get_pull_request(host::RepoRef{owner_of(trigger.repo), name_of(trigger.repo)}, trigger.pr);
      if (!pr) {
        const auto kind = pr.error().kind;
        if (kind == host::HostError::Kind::transient || kind == host::HostError::Kind::rate_limited) return Fetch::retry;
        log::error("cannot read the source PR: no run started (its author decides who may approve)",
                   {{"repo", trigger.repo}, {"pr", trigger.pr}, {"error", pr.error().message}});
        return Fetch::none;
      }
      if (author.empty()) author = pr->author;
      if (title.empty()) title = pr->title;
    }
    for (const auto& name : match.pipelines) {
      const pipeline::Pipeline* def = nullptr;
      for (const auto& p : file->pipelines) {
        if (p.name == name) def = &p;
      }
      if (!def) continue;
      pipeline::SourceFacts source{trigger.repo, trigger.event.branch, trigger.sha, trigger.pr, author, title};
      if (auto run = make_new_run(host_name, host, *def, **text, std::move(source))) out.push_back(std::move(*run));
    }
    return Fetch::ok;
  }

  std::string start_runs(store::Db& db, const std::string& host, const std::vector<NewRun>& new_runs,
                         const std::string& key, bool* scheduled) {
    for (const auto& nr : new_runs) {
      const std::string id = make_run_id(host, nr.source.repo, nr.pipeline, nr.source.sha);
      if (auto locked = runs::lock_runs(db); !locked) return locked.error();
      auto existing = runs::load_run(db, id);
      if (!existing) return existing.error();
      if (*existing) continue;  // one run per (pipeline, sha)
      std::string error;
      auto file = parse_definition(nr.definition, &error);
      if (!file) continue;
      const pipeline::Pipeline* def = nullptr;
      for (const auto& p : file->pipelines) {
        if (p.name == nr.pipeline) def = &p;
      }
      if (!def) continue;
      const auto cx = context_for(host);
      auto in_flight = runs::in_flight_runs(db, host, nr.source.repo, nr.pipeline);
      if (!in_flight) return in_flight.error();
      // Runs are ordered by creation (supersede: older runs give way): a new run is created after
      // every run in flight, even within the same millisecond.
      pipeline::TimePoint created = cx.now;
      for (const auto& r : *in_flight) created = std::max(created, r.state.created_at + std::chrono::milliseconds(1));
      runs::RunRecord rec;
      rec.id = id;
      rec.host = host;
      rec.repo = nr.source.repo;
      rec.pipeline = nr.pipeline;
      rec.definition = nr.definition;
      rec.definition_sha = nr.source.sha;
      rec.state = pipeline::make_run(*def, id, nr.source, nr.release, created);
      rec.created_at = created;
      rec.updated_at = rec.created_at;
      if (auto in = runs::insert_run(db, rec); !in) return in.error();
      std::vector<pipeline::RunState> others;
      std::vector<const runs::RunRecord*> other_recs;
      for (const auto& r : *in_flight) {
        others.push_back(r.state);
        other_recs.push_back(&r);
      }
      const auto decision = pipeline::admit_run(*def, others, rec.state, cx);
      for (const auto& step : decision.others) {
        for (const auto* other : other_recs) {
          if (other->id != step.run.id) continue;
          std::shared_ptr<const pipeline::PipelineFile> holder;
          const pipeline::Pipeline* other_def = pipeline_of(*other, holder);
          if (!other_def) continue;
          auto saved = runs::save_step(db, *other, step, key, now_ms(), runs::stage_repos(*other_def));
          if (!saved) return saved.error();
          if (scheduled && saved->scheduled > 0) *scheduled = true;
        }
      }
      auto saved = runs::save_step(db, rec, decision.incoming, key, now_ms(), runs::stage_repos(*def));
      if (!saved) return saved.error();
      if (scheduled && saved->scheduled > 0) *scheduled = true;
      ++runs_started;
      log::info("run started", {{"run", id},
                                {"pipeline", nr.pipeline},
                                {"repo", nr.source.repo},
                                {"sha", nr.source.sha},
                                {"status", pipeline::to_string(decision.incoming.run.status)}});
    }
    return {};
  }

  // ------------------------------------------------------------------------------------------
  // Pipeline file checks: a PR that changes .tollgate.yaml gets a check run (a status on hosts
  // without check runs) with every problem annotated on its line.

  // false: the host API is unavailable (retry later).
  bool check_pipeline_file(EngineHost& host, const webhooks::Event& event) {
    const auto* pr = std::get_if<webhooks::PullRequestEvent>(&event.payload);
    if (!pr || (pr->action != webhooks::PullRequestEvent::Action::opened &&
                pr->action != webhooks::PullRequestEvent::Action::head_changed)) {
      return true;
    }
    if (pr->pr.head_ref.rfind("tollgate/", 0) == 0 || pr->pr.head_sha.empty()) return true;  // its own promotion PRs
    const host::RepoRef repo{owner_of(event.repo), name_of(event.repo)};
    auto transient = [](const host::HostError& e) {
      return e.kind == host::HostError::Kind::transient || e.kind == host::HostError::Kind::rate_limited;
    };
    auto files = host.api->list_changed_files(repo, pr->pr.number);
    if (!files) {
      if (transient(files.error())) return false;
      log::warn("cannot list a PR's files for the pipeline file check",
                {{"repo", event.repo}, {"pr", pr->pr.number}, {"error", files.error().message}});
      return true;
    }
    const bool touched = std::any_of(files->begin(), files->end(), [&](const host::ChangedFile& f) {
      return f.filename == options.pipeline_file || f.previous_filename == options.pipeline_file;
    });
    if (!touched) return true;
    auto text = host.api->read_file(repo, options.pipeline_file, pr->pr.head_sha);
    if (!text) {
      if (transient(text.error())) return false;
      log::warn("cannot read the pipeline file for its check", {{"repo", event.repo}, {"error", text.error().message}});
      return true;
    }
    host::CheckReport report;
    report.name = "tollgate/pipeline-file";
    if (!*text) {
      report.title = options.pipeline_file + " removed: merges no longer start runs";
      report.summary = "This pull request deletes `" + options.pipeline_file + "`.";
    } else {
      pipeline::ValidateOptions vo;
      vo.read_file = [&host, &repo, &pr](const std::string& path) -> tl::expected<std::string, std::string> {
        auto f = host.api->read_file(repo, path, pr->pr.head_sha);
        if (!f) return tl::unexpected("cannot read " + path + ": " + f.error().message);
        if (!*f) return tl::unexpected(path + " does not exist in this commit");
        return **f;
      };
      const auto loaded = pipeline::load_pipeline(**text, options.pipeline_file, vo);
      report.success = loaded.ok();
      if (loaded.ok()) {
        const auto n = loaded.file ? loaded.file->pipelines.size() : 0;
        report.title = options.pipeline_file + " is valid: " + std::to_string(n) + (n == 1 ? " pipeline" : " pipelines");
        report.summary = "No problems found.";
      } else {
        const auto n = loaded.problems.size();
        report.title = std::to_string(n) + (n == 1 ? " problem" : " problems") + " in " + options.pipeline_file;
        for (const auto& d : loaded.problems) {
          report.summary += "- `" + pipeline::format_text(d) + "`\n";
          report.annotations.push_back({d.file.empty() ? options.pipeline_file : d.file, d.pos.line, d.pos.column, d.message});
        }
      }
    }
    auto published = host.api->publish_check(repo, pr->pr.head_sha, report);
    if (!published) {
      if (transient(published.error())) return false;
      log::warn("cannot publish the pipeline file check", {{"repo", event.repo}, {"error", published.error().message}});
      return true;
    }
    log::info("pipeline file checked", {{"repo", event.repo}, {"pr", pr->pr.number}, {"sha", pr->pr.head_sha},
                                        {"problems", report.annotations.size()}});
    return true;
  }

  // ------------------------------------------------------------------------------------------
  // Comments and reviews: the author's permission, and the teams the gates ask about.

  bool fill_actor_facts(store::Db& rdb, const std::string& host_name, EngineHost& host, EngineEvent& ee) {
    for (auto& input : ee.inputs) {
      pipeline::ActorFacts* actor = nullptr;
      std::string repo;
      std::int64_t pr = 0;
      if (auto* c = std::get_if<pipeline::CommentCreated>(&input)) {
        actor = &c->author;
        repo = c->repo;
        pr = c->pr;
      } else if (auto* r = std::get_if<pipeline::ReviewSubmitted>(&input)) {
        actor = &r->author;
        repo = r->repo;
        pr = r->pr;
      }
      if (!actor || actor->login.empty()) continue;
      // Only for PRs tollgate runs: a comment elsewhere costs no API call.
      auto ids = runs::runs_by_pr(rdb, host_name, repo, pr);
      if (!ids || ids->empty()) continue;
      auto perm = host.api->user_permission(host::RepoRef{owner_of(repo), name_of(repo)}, actor->login);
      if (!perm) {
        const auto kind = perm.error().kind;
        if (kind == host::HostError::Kind::transient || kind == host::HostError::Kind::rate_limited) return false;
        log::warn("cannot read a commenter's permission: treated as none",
                  {{"repo", repo}, {"login", actor->login}, {"error", perm.error().message}});
      } else {
        actor->permission = to_actor_permission(*perm);
      }
      std::set<std::pair<std::string, std::string>> teams;
      for (const auto& id : *ids) {
        auto rec = runs::load_run(rdb, id);
        if (!rec || !*rec) continue;
        std::shared_ptr<const pipeline::PipelineFile> holder;
        const pipeline::Pipeline* def = pipeline_of(**rec, holder);
        if (!def) continue;
        for (const auto& st : (*rec)->state.stages) {
          if (st.pr != pr) continue;
          if (const auto* stage = def->stage(st.name)) {
            for (auto& t : gate_teams(*stage)) teams.insert(std::move(t));
          }
        }
      }
      for (const auto& [org, team] : teams) {
        auto member = host.api->is_team_member(org, team, actor->login);
        if (!member) {
          const auto kind = member.error().kind;
          if (kind == host::HostError::Kind::transient || kind == host::HostError::Kind::rate_limited) return false;
          continue;
        }
        if (*member) actor->teams.push_back("@" + org + "/" + team);
      }
    }
    return true;
  }

  static std::string owner_of(const std::string& repo) {
    const auto slash = repo.rfind('/');
    return slash == std::string::npos ? std::string{} : repo.substr(0, slash);
  }
  static std::string name_of(const std::string& repo) {
    const auto slash = repo.rfind('/');
    return slash == std::string::npos ? repo : repo.substr(slash + 1);
  }

  // ------------------------------------------------------------------------------------------
  // Events: normalised deliveries in id order, each consumed once.

  struct DeliveryRow {
    std::int64_t id = 0;
    std::string host, event, body, encoding;
    std::int64_t size = 0;
  };

  // How long a host whose API was unavailable waits before its deliveries are tried again.
  static constexpr std::chrono::seconds kHeldRetry{5};

  // Hosts whose API was unavailable for one of their deliveries (events thread). That delivery and
  // the host's later ones wait, in order, and are tried again at `retry_at`; other hosts'
  // deliveries go on meanwhile. Runs belong to one host's events, so no order between hosts is lost.
  struct Held {
    std::int64_t from = 0;  // the delivery that could not be handled
    std::chrono::steady_clock::time_point retry_at;
  };
  std::map<std::string, Held> held_hosts;
  std::string retrying;  // the held host whose deliveries are being tried again (events thread)

  void hold(const std::string& host, std::int64_t from) {
    auto [it, fresh] = held_hosts.try_emplace(host);
    it->second = Held{from, std::chrono::steady_clock::now() + kHeldRetry};
    if (host == retrying) retrying.clear();  // still unavailable: the rest of its deliveries wait again
    if (fresh) {
      log::warn("host API unavailable: this host's deliveries wait, in order, and other hosts' go on",
                {{"host", host}, {"delivery", from}, {"retry_in_s", static_cast<std::int64_t>(kHeldRetry.count())}});
    }
  }

  // What became of rows given to apply_rows.
  struct Applied {
    std::size_t consumed = 0;
    std::int64_t last = 0;  // the last row dealt with: consumed, or left to its held host
    bool failed = false;    // a database error: nothing after the rows consumed so far was dealt with
  };

  // Applies rows (in delivery order), each consumed once. A row of a held host is left for later;
  // a row whose host's API is unavailable holds its host from that row on.
  Applied apply_rows(store::Db& rdb, const std::vector<DeliveryRow>& rows) {
    Applied out;
    // Deliveries that change nothing (most of them: events of repositories without a pipeline,
    // comments that are not commands, hosts without a token) are consumed together, in one
    // transaction; one that starts runs or feeds a run is applied on its own, after the ones
    // before it, so that it reads the state they left. Order is kept either way.
    std::vector<std::int64_t> idle;
    std::int64_t dealt = 0;  // the last row dealt with, idle rows not yet consumed included
    const auto flush_idle = [&]() -> bool {
      if (idle.empty()) return true;
      auto err = inbox.transact_sync([&](store::Db& db) -> std::string {
        for (const auto id : idle) {
          if (auto fresh = runs::try_consume(db, delivery_key(id), now_ms()); !fresh) return fresh.error();
        }
        return {};
      });
      if (!err.empty()) {
        log::error("deliveries not consumed", {{"from", idle.front()}, {"to", idle.back()}, {"error", err}});
        return false;
      }
      out.consumed += idle.size();
      events += idle.size();
      idle.clear();
      return true;
    };
    for (const auto& row : rows) {
      if (row.host != retrying && held_hosts.contains(row.host)) {
        dealt = row.id;
        continue;
      }
      auto prepared = prepare_delivery(rdb, row);
      if (!prepared) {
        // The rows before it are consumed first: a held host is tried again from this row on, so
        // none of its rows below may be left unconsumed.
        if (!flush_idle()) {
          out.failed = true;
          return out;
        }
        out.last = dealt;
        hold(row.host, row.id);
        dealt = row.id;
        continue;
      }
      if (prepared->new_runs.empty() && prepared->inputs.empty()) {
        idle.push_back(row.id);
        dealt = row.id;
        continue;
      }
      if (!flush_idle()) {
        out.failed = true;
        return out;
      }
      out.last = dealt;
      if (!apply_delivery(row, *prepared)) {
        out.failed = true;
        return out;
      }
      dealt = out.last = row.id;
      ++out.consumed;
      ++events;
    }
    if (!flush_idle()) {
      out.failed = true;
      return out;
    }
    out.last = dealt;
    return out;
  }

  // Returns how many were consumed. *blocked: a database error stopped the pass (try again in a
  // while). *retry_at: when a held host is due to be tried again (unchanged if none is held).
  std::size_t drain_events(store::Db& rdb, bool* blocked, std::chrono::steady_clock::time_point* retry_at = nullptr) {
    // Driven by the outcomes (rowid = delivery id), which exist only for deliveries the
    // normaliser has done: the scan ends where the normaliser is. Scanning deliveries instead
    // read the whole not-yet-normalised backlog (every row of it) at every nudge.
    static constexpr std::string_view kSelect =
        "SELECT d.id, d.host, d.event, d.body, d.body_encoding, COALESCE(d.body_size, length(d.body)) "
        "FROM delivery_outcomes o JOIN deliveries d ON d.id = o.delivery "
        "WHERE o.state = 'normalized' AND NOT EXISTS (SELECT 1 FROM consumed c WHERE c.key = 'delivery:' || o.delivery) ";
    auto q = rdb.prepare(std::string(kSelect) + "AND o.delivery > ?1 ORDER BY o.delivery LIMIT 64");
    if (!q) {
      log::error("cannot read normalised deliveries", {{"error", q.error().message}});
      if (blocked) *blocked = true;
      return 0;
    }
    const auto read = [](store::Stmt& st, std::vector<DeliveryRow>& rows) -> bool {
      rows.clear();
      while (true) {
        auto more = st.step();
        if (!more) {
          log::error("cannot read normalised deliveries", {{"error", more.error().message}});
          st.reset();
          return false;
        }
        if (!*more) break;
        rows.push_back({st.int64(0), st.text(1), st.text(2), st.text(3), st.text(4), st.int64(5)});
      }
      st.reset();
      return true;
    };
    std::size_t consumed = 0;
    std::vector<DeliveryRow> rows;
    // 1. Held hosts that are due: their waiting deliveries first, in order.
    const auto now = std::chrono::steady_clock::now();
    std::vector<std::string> due;
    for (const auto& [host, h] : held_hosts) {
      if (h.retry_at <= now) due.push_back(host);
    }
    // A held host's deliveries, from the one that waits up to the cursor (the later ones are the
    // main scan's). Prepared only when one is due: this runs at every nudge.
    std::optional<store::Stmt> q_host;
    if (!due.empty()) {
      auto prepared = rdb.prepare(std::string(kSelect) +
                                  "AND o.delivery >= ?1 AND o.delivery <= ?2 AND d.host = ?3 ORDER BY o.delivery LIMIT 64");
      if (!prepared) {
        log::error("cannot read normalised deliveries", {{"error", prepared.error().message}});
        if (blocked) *blocked = true;
        return 0;
      }
      q_host = std::move(*prepared);
    }
    for (const auto& host : due) {
      retrying = host;
      std::int64_t from = held_hosts[host].from;
      while (retrying == host) {  // until its deliveries up to the cursor are done, or it is held again
        q_host->reset();
        q_host->bind(1, from);
        q_host->bind(2, cursor);
        q_host->bind(3, host);
        const bool ok = read(*q_host, rows);
        const auto r = ok && !rows.empty() ? apply_rows(rdb, rows) : Applied{};
        consumed += r.consumed;
        if (!ok || r.failed) {  // tried again at the next pass; what was consumed is skipped then
          retrying.clear();
          if (blocked) *blocked = true;
          return consumed;
        }
        if (rows.empty()) {
          held_hosts.erase(host);
          retrying.clear();
          log::info("host API available again: its deliveries go on", {{"host", host}});
          break;
        }
        from = r.last + 1;
      }
    }
    // 2. Everything after the cursor, in order; held hosts' deliveries are left for them.
    while (true) {
      q->reset();
      q->bind(1, cursor);
      if (!read(*q, rows)) {
        if (blocked) *blocked = true;
        break;
      }
      if (rows.empty()) break;
      const auto r = apply_rows(rdb, rows);
      consumed += r.consumed;
      if (r.last > cursor) cursor = r.last;
      if (r.failed) {
        if (blocked) *blocked = true;
        break;
      }
    }
    if (retry_at) {
      for (const auto& [host, h] : held_hosts) *retry_at = std::min(*retry_at, h.retry_at);
    }
    return consumed;
  }

  static std::string delivery_key(std::int64_t id) { return std::string(kDeliveryConsumedPrefix) + std::to_string(id); }

  // What a delivery does: the runs it starts and the inputs it gives to runs.
  struct PreparedDelivery {
    std::vector<NewRun> new_runs;
    std::vector<pipeline::Input> inputs;
  };

  // Reads what the delivery needs from the host (its pipeline file, the actor's permission) and
  // works out what it does. nullopt: not now, the host API is unavailable (retry later).
  std::optional<PreparedDelivery> prepare_delivery(store::Db& rdb, const DeliveryRow& row) {
    PreparedDelivery out;
    auto host_it = hosts.find(row.host);
    if (host_it == hosts.end() || !host_it->second.api) return out;
    auto& host = host_it->second;
    auto encoding = body_encoding_from(row.encoding);
    auto body = encoding ? decode_body(*encoding, row.body, static_cast<std::size_t>(row.size))
                         : tl::expected<std::string, std::string>(tl::unexpect, encoding.error());
    if (!body) {
      log::error("delivery body cannot be read", {{"delivery", row.id}, {"error", body.error()}});
      return out;
    }
    auto event = webhooks::normalize(host.kind, row.event, json::parse(*body, nullptr, false));
    if (!event || !*event) return out;
    if (!check_pipeline_file(host, **event)) return std::nullopt;
    auto ee = translate(**event, host.bot_login);
    if (ee.needs_actor_facts && !fill_actor_facts(rdb, row.host, host, ee)) return std::nullopt;
    // tollgate's own promotion PRs (branches tollgate/...) never start runs: their merges are
    // inputs of the runs that opened them, and reading .tollgate.yaml in an environment
    // repository would cost an API call per promotion for nothing.
    const auto* pr_event = std::get_if<webhooks::PullRequestEvent>(&(*event)->payload);
    const bool own_branch = pr_event && pr_event->pr.head_ref.rfind("tollgate/", 0) == 0;
    if (ee.trigger && !own_branch) {
      if (prepare_trigger(row.host, host, *ee.trigger, **event, out.new_runs) == Fetch::retry) return std::nullopt;
    }
    out.inputs = std::move(ee.inputs);
    return out;
  }

  // Consumes the delivery and applies what it does, in one transaction. false: not applied (logged).
  bool apply_delivery(const DeliveryRow& row, const PreparedDelivery& prepared) {
    const std::string key = delivery_key(row.id);
    bool scheduled = false;
    const std::string host_name = row.host;
    auto err = inbox.transact_sync([&](store::Db& db) -> std::string {
      auto fresh = runs::try_consume(db, key, now_ms());
      if (!fresh) return fresh.error();
      if (!*fresh) return {};
      if (auto e = start_runs(db, host_name, prepared.new_runs, key, &scheduled); !e.empty()) return e;
      for (const auto& input : prepared.inputs) {
        if (auto e = offer(db, host_name, input, key, &scheduled); !e.empty()) return e;
      }
      return {};
    });
    if (!err.empty()) {
      log::error("delivery not applied", {{"delivery", row.id}, {"error", err}});
      return false;
    }
    if (scheduled) nudge_workers();
    return true;
  }

  // ------------------------------------------------------------------------------------------
  // Jobs

  std::chrono::seconds backoff(int attempts) const {
    const int shift = std::clamp(attempts - 1, 0, 6);
    return std::chrono::seconds(5) * (1 << shift);  // 5 s, 10 s, ... 320 s
  }

  ExecOutcome run_probe(const pipeline::Job& job, const pipeline::Pipeline& def, const pipeline::RunState& run,
                        const EngineHost& host) {
    ExecOutcome out;
    pipeline::JobResult result;
    result.kind = pipeline::JobKind::verify_probe;
    result.stage = job.stage;
    result.step = job.step;
    result.seq = job.seq;
    const pipeline::Stage* stage = def.stage(job.stage);
    if (!stage || !stage->verify || job.step < 0 || static_cast<std::size_t>(job.step) >= stage->verify->steps.size()) {
      result.outcome = pipeline::JobResult::Outcome::terminal;
      result.message = "verify step " + std::to_string(job.step) + " of stage " + job.stage + " does not exist";
      out.inputs.emplace_back(std::move(result));
      return out;
    }
    json release = json::object();
    for (const auto& [k, v] : run.release) release[k] = v;
    const json vars = {{"release", release},
                       {"pipeline", {{"name", def.name}}},
                       {"stage", {{"name", stage->name}, {"repo", stage->repo}, {"branch", stage->branch.value_or("")}}},
                       {"run", {{"id", run.id}, {"url", run_url(options.public_url, run.id)}}},
                       {"source",
                        {{"repo", run.source.repo},
                         {"branch", run.source.branch},
                         {"sha", run.source.sha},
                         {"short_sha", run.source.sha.substr(0, 7)},
                         {"pr", run.source.pr},
                         {"author", run.source.author},
                         {"pr_url", host.pr_url ? host.pr_url(run.source.repo, run.source.pr) : std::string{}}}}};
    const auto& action = stage->verify->steps[static_cast<std::size_t>(job.step)].action;
    ProbeResult probe;
    if (const auto* h = std::get_if<pipeline::HttpStep>(&action)) {
      probe = run_http_probe(*h, vars, ProbeOptions{});
    } else if (const auto* p = std::get_if<pipeline::PrometheusStep>(&action)) {
      probe = run_prometheus_probe(*p, vars, ProbeOptions{});
    } else {
      probe = {ProbeResult::Kind::terminal, "verify step " + std::to_string(job.step) + " is not a probe"};
    }
    switch (probe.kind) {
      case ProbeResult::Kind::pass: result.outcome = pipeline::JobResult::Outcome::ok; break;
      case ProbeResult::Kind::fail: result.outcome = pipeline::JobResult::Outcome::probe_failed; break;
      case ProbeResult::Kind::retryable: result.outcome = pipeline::JobResult::Outcome::retryable; break;
      case ProbeResult::Kind::terminal: result.outcome = pipeline::JobResult::Outcome::terminal; break;
    }
    result.message = probe.message;
    out.inputs.emplace_back(std::move(result));
    return out;
  }

  // Git writes to one repository from several replicas go one at a time: a session lock on the
  // worker's connection, held for the write (let go if the replica dies, with the connection).
  static std::function<std::shared_ptr<void>(const std::string&)> repo_lock(store::Db& rdb, const std::string& host) {
    return [&rdb, host](const std::string& repo) -> std::shared_ptr<void> {
      std::string name = "tollgate:repo\n" + host + "\n";
      for (const char c : repo) name.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
      if (auto l = store::lock(rdb, name); !l) {
        // The push is safe without it (a branch tollgate alone writes; a rejected push is retried).
        log::warn("git write not serialised with other replicas", {{"repo", repo}, {"error", store::describe(l.error())}});
        return nullptr;
      }
      return std::shared_ptr<void>(nullptr, [&rdb, name](void*) { (void)store::unlock(rdb, name); });
    };
  }

  // Claims and runs one due job. false: none was due.
  bool run_one_job(store::Db& rdb, const std::string& owner) {
    runs::Claim claim;
    auto err = inbox.transact_sync([&](store::Db& db) -> std::string {
      auto c = runs::claim_jobs(db, now_ms(), owner, options.lease, 1);
      if (!c) return c.error();
      claim = std::move(*c);
      return {};
    });
    if (!err.empty()) {
      log::error("cannot claim jobs", {{"error", err}});
      return false;
    }
    for (const auto& why : claim.broken) log::error("job cannot be read: failed", {{"error", why}});
    if (claim.jobs.empty()) return !claim.broken.empty();
    const auto& cj = claim.jobs.front();
    const std::string key = "job:" + std::to_string(cj.id);
    {
      std::lock_guard lock(working_mutex);
      working[cj.id] = owner;
    }
    struct Release {
      Impl& self;
      std::int64_t id;
      ~Release() {
        std::lock_guard lock(self.working_mutex);
        self.working.erase(id);
      }
    } release{*this, cj.id};

    if (cj.job.kind == pipeline::JobKind::timer) {
      const pipeline::Input input = pipeline::TimerFired{cj.job.stage, cj.job.timer, cj.job.seq};
      finish_job(cj, owner, key, ExecOutcome{ExecOutcome::Kind::done, {input}, {}, std::nullopt});
      return true;
    }

    auto rec = runs::load_run(rdb, cj.run_id);
    ExecOutcome outcome;
    if (!rec || !*rec) {
      outcome = {ExecOutcome::Kind::terminal, {}, "its run " + cj.run_id + " cannot be read", std::nullopt};
    } else {
      std::shared_ptr<const pipeline::PipelineFile> holder;
      const pipeline::Pipeline* def = pipeline_of(**rec, holder);
      auto host_it = hosts.find((*rec)->host);
      if (!def) {
        outcome = {ExecOutcome::Kind::terminal, {}, "the run's definition does not load", std::nullopt};
      } else if (host_it == hosts.end() || !host_it->second.api) {
        // The run's host left the configuration (or lost its token): a stage waiting on this job
        // fails with the reason, rather than waiting for ever.
        outcome = cannot_run(cj.job, "host '" + (*rec)->host + "' is not configured (or has no token): its jobs cannot run");
      } else if (cj.job.kind == pipeline::JobKind::verify_probe) {
        outcome = run_probe(cj.job, *def, (*rec)->state, host_it->second);
      } else {
        const auto& host = host_it->second;
        ExecContext cx{*def, (*rec)->state, *host.api, writer, host.clone_url};
        cx.default_branch = host.default_branch;
        cx.pr_url = host.pr_url;
        if (host.credentials) cx.credentials = host.credentials();
        cx.bot_login = host.bot_login;
        cx.public_url = options.public_url;
        cx.host_name = (*rec)->host;
        cx.source_pr_title = (*rec)->state.source.title;
        cx.hints = &hints;
        if (rdb.kind() == store::Kind::postgres) cx.lock_repo = repo_lock(rdb, (*rec)->host);
        log::info("job started", {{"job", cj.id}, {"kind", pipeline::to_string(cj.job.kind)}, {"run", cj.run_id},
                                  {"stage", cj.job.stage}, {"attempt", cj.attempts}});
        outcome = execute(cj.job, cx);
      }
    }
    finish_job(cj, owner, key, outcome);
    return true;
  }

  void finish_job(const runs::ClaimedJob& cj, const std::string& owner, const std::string& key, const ExecOutcome& outcome) {
    bool scheduled = false;
    bool lost = false;
    auto kind = outcome.kind;
    if (kind == ExecOutcome::Kind::retry && cj.attempts >= options.max_job_attempts) kind = ExecOutcome::Kind::terminal;
    auto err = inbox.transact_sync([&](store::Db& db) -> std::string {
      tl::expected<bool, std::string> held;
      if (kind == ExecOutcome::Kind::retry) {
        const auto wait = outcome.retry_after.value_or(backoff(cj.attempts));
        held = runs::retry_job(db, cj.id, owner, now_ms() + wait, outcome.error);
      } else if (kind == ExecOutcome::Kind::terminal) {
        held = runs::fail_job(db, cj.id, owner, outcome.error, now_ms());
      } else {
        held = runs::complete_job(db, cj.id, owner, now_ms());
      }
      if (!held) return held.error();
      if (!*held) {
        lost = true;  // the lease ran out and another worker has the job: its result counts
        return "lease lost";
      }
      if (kind == ExecOutcome::Kind::done) {
        for (const auto& input : outcome.inputs) {
          if (auto e = apply_to_run(db, cj.run_id, input, key, &scheduled); !e.empty()) return e;
        }
      }
      return {};
    });
    if (lost) {
      log::warn("job result dropped: its lease ran out", {{"job", cj.id}, {"kind", pipeline::to_string(cj.job.kind)}});
      return;
    }
    if (!err.empty()) {
      log::error("job result not applied", {{"job", cj.id}, {"error", err}});
      return;
    }
    switch (kind) {
      case ExecOutcome::Kind::done: ++jobs_done; break;
      case ExecOutcome::Kind::retry:
        ++jobs_retried;
        log::warn("job will be retried", {{"job", cj.id}, {"kind", pipeline::to_string(cj.job.kind)}, {"run", cj.run_id},
                                          {"attempt", cj.attempts}, {"error", outcome.error}});
        break;
      case ExecOutcome::Kind::terminal:
        ++jobs_failed;
        log::error("job failed", {{"job", cj.id}, {"kind", pipeline::to_string(cj.job.kind)}, {"run", cj.run_id},
                                  {"attempts", cj.attempts}, {"error", outcome.error}});
        break;
    }
    // A job that will be retried has not finished: its next attempt logs that (the chaos tests
    // count "job finished" once per job).
    if (kind != ExecOutcome::Kind::retry && (cj.job.kind != pipeline::JobKind::timer || scheduled)) {
      log::info("job finished", {{"job", cj.id}, {"kind", pipeline::to_string(cj.job.kind)}, {"run", cj.run_id},
                                 {"stage", cj.job.stage}});
    }
    if (scheduled) nudge_workers();
  }

  // ------------------------------------------------------------------------------------------
  // Threads

  void nudge_workers() {
    std::lock_guard lock(mutex);
    ++generation;
    wake.notify_all();
  }

  // Sleeps until a nudge, `until`, or stop. false: stopping.
  bool sleep_until(std::uint64_t seen, std::chrono::steady_clock::time_point until) {
    std::unique_lock lock(mutex);
    wake.wait_until(lock, until, [&] { return stopping || generation != seen; });
    return !stopping;
  }

  std::uint64_t current_generation() {
    std::lock_guard lock(mutex);
    return generation;
  }

  void events_loop() {
    (void)::pthread_setname_np(::pthread_self(), "tg-events");
    // Behind intake, like the normaliser: under a burst of deliveries the I/O threads and the
    // inbox writer get the CPU first (a 202 is owed within seconds; a promotion step is not).
    (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
    auto rdb = store::Db::open(options.database);
    if (!rdb) {
      log::error("engine cannot open the database", {{"error", rdb.error().message}});
      return;
    }
    // On PostgreSQL every replica has an events thread and one at a time applies deliveries: the
    // one holding the lock, which passes to another replica when this one dies (with its
    // connection). So deliveries are applied in order, and a run's events one after the other.
    const bool shared = rdb->kind() == store::Kind::postgres;
    bool leading = !shared;
    std::uint64_t led_session = 0;  // the connection's session that holds the lock
    while (true) {
      const auto seen = current_generation();
      if (shared && leading && rdb->session() != led_session) {
        leading = false;  // the connection was opened again: the lock went with the old one
        log::warn("the engine's connection was opened again; asking for the lead again");
      }
      if (!leading) {
        auto got = store::try_lock(*rdb, "tollgate:events");
        if (got && *got) {
          leading = true;
          led_session = rdb->session();
          cursor = 0;  // what the previous leader left is found by what it consumed
          held_hosts.clear();
          retrying.clear();
          log::info("this replica applies deliveries now");
        } else {
          if (!got) log::warn("engine cannot ask for the lead", {{"error", store::describe(got.error())}});
          refresh_gauges(*rdb);
          std::unique_lock lock(mutex);  // asks again in a second (nudges are for the leader)
          if (wake.wait_for(lock, std::chrono::seconds(1), [&] { return stopping; })) return;
          continue;
        }
      }
      bool blocked = false;
      auto next = std::chrono::steady_clock::now() + options.idle_poll;
      drain_events(*rdb, &blocked, &next);
      if (blocked) {
        // The database failed us: try again in a while (nudges do not help).
        std::unique_lock lock(mutex);
        if (wake.wait_for(lock, std::chrono::seconds(5), [&] { return stopping; })) return;
        continue;
      }
      refresh_gauges(*rdb);
      if (!sleep_until(seen, next)) return;
    }
  }

  // Renews the leases of the jobs this process is at, three times per lease, so that a lease
  // runs out only when its replica is gone (or stuck): a job may take longer than a lease.
  void leases_loop() {
    (void)::pthread_setname_np(::pthread_self(), "tg-leases");
    const auto every = std::max<std::chrono::milliseconds>(options.lease / 3, std::chrono::milliseconds(100));
    while (true) {
      {
        std::unique_lock lock(mutex);
        if (wake.wait_for(lock, every, [&] { return stopping; })) return;
      }
      std::map<std::string, std::vector<std::int64_t>> by_owner;
      {
        std::lock_guard lock(working_mutex);
        for (const auto& [id, owner] : working) by_owner[owner].push_back(id);
      }
      if (by_owner.empty()) continue;
      std::int64_t asked = 0;
      const auto until = now_ms() + options.lease;
      const auto err = inbox.transact_sync([&](store::Db& db) -> std::string {
        for (const auto& [owner, ids] : by_owner) {
          asked += static_cast<std::int64_t>(ids.size());
          if (auto n = runs::renew_leases(db, ids, owner, until); !n) return n.error();
        }
        return {};
      });
      if (!err.empty()) log::error("cannot renew job leases", {{"error", err}, {"jobs", asked}});
    }
  }

  void worker_loop(unsigned index) {
    const std::string name = "tg-job-" + std::to_string(index);
    (void)::pthread_setname_np(::pthread_self(), name.c_str());
    (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);  // behind intake, as above
    const std::string owner = replica + ":" + std::to_string(::getpid()) + ":" + std::to_string(index);
    auto rdb = store::Db::open(options.database);
    if (!rdb) {
      log::error("job worker cannot open the database", {{"error", rdb.error().message}});
      return;
    }
    while (true) {
      {
        std::lock_guard lock(mutex);
        if (stopping) return;
      }
      const auto seen = current_generation();
      if (run_one_job(*rdb, owner)) continue;
      auto until = std::chrono::steady_clock::now() + options.idle_poll;
      if (auto next = runs::next_due(*rdb); next && *next) {
        const auto in = **next - now_ms();
        if (in < options.idle_poll) until = std::chrono::steady_clock::now() + std::max(in, std::chrono::milliseconds(0));
      }
      if (!sleep_until(seen, until)) return;
    }
  }

  // ------------------------------------------------------------------------------------------
  // The REST API's actions and manual triggers (service/api.cpp calls these off the I/O threads).

  static bool transient(const host::HostError& e) {
    return e.kind == host::HostError::Kind::transient || e.kind == host::HostError::Kind::rate_limited;
  }

  // The actor's facts as for a comment: permission on `repo`, membership of the teams `stage`'s
  // gate names. A token without login acts with write access and no teams.
  tl::expected<pipeline::ActorFacts, ApiOutcome> api_facts(EngineHost& host, const ApiActor& actor, const std::string& repo,
                                                           const pipeline::Stage* stage) {
    pipeline::ActorFacts facts;
    if (actor.login.empty()) {
      facts.login = "api:" + actor.token;
      facts.permission = pipeline::ActorFacts::Permission::write;
      return facts;
    }
    facts.login = actor.login;
    auto perm = host.api->user_permission(host::RepoRef{owner_of(repo), name_of(repo)}, actor.login);
    if (!perm) {
      if (transient(perm.error())) {
        return tl::unexpected(ApiOutcome{ApiOutcome::Kind::unavailable,
                                         "cannot read @" + actor.login + "'s permission on " + repo + " from the host: " +
                                             perm.error().message + "; retry later"});
      }
      log::warn("cannot read an API actor's permission: treated as none",
                {{"repo", repo}, {"login", actor.login}, {"error", perm.error().message}});
    } else {
      facts.permission = to_actor_permission(*perm);
    }
    if (stage) {
      for (const auto& [org, team] : gate_teams(*stage)) {
        auto member = host.api->is_team_member(org, team, actor.login);
        if (!member) {
          if (transient(member.error())) {
            return tl::unexpected(ApiOutcome{ApiOutcome::Kind::unavailable,
                                             "cannot read the members of @" + org + "/" + team + " from the host: " +
                                                 member.error().message + "; retry later"});
          }
          continue;
        }
        if (*member) facts.teams.push_back("@" + org + "/" + team);
      }
    }
    return facts;
  }

  ApiOutcome act(const std::string& run_id, pipeline::ApiAction action, const ApiActor& actor, const std::string& key) {
    using K = ApiOutcome::Kind;
    auto rdb = store::Db::open(options.database);
    if (!rdb) return {K::failed, "cannot open the database: " + rdb.error().message};
    auto rec = runs::load_run(*rdb, run_id);
    if (!rec) return {K::failed, rec.error()};
    if (!*rec) return {K::not_found, "no run '" + run_id + "'"};
    std::shared_ptr<const pipeline::PipelineFile> holder;
    const pipeline::Pipeline* def = pipeline_of(**rec, holder);
    if (!def) return {K::failed, "run '" + run_id + "': its pinned pipeline file does not load"};
    const pipeline::Stage* stage = nullptr;
    if (action.kind != pipeline::ApiAction::Kind::abort) {
      stage = def->stage(action.stage);
      if (!stage) return {K::not_found, "run '" + run_id + "' has no stage '" + action.stage + "'"};
    }
    auto host_it = hosts.find((*rec)->host);
    if (host_it == hosts.end() || !host_it->second.api) {
      return {K::unavailable, "host '" + (*rec)->host + "' has no API token configured: its runs cannot be acted on"};
    }
    // Permission on the repository a comment would be in: the stage's; for an abort, that of the
    // stage the run is at (the newest one started), as an /abort on its PR.
    std::string repo = stage ? stage->repo : def->stages.empty() ? (*rec)->repo : def->stages.front().repo;
    if (!stage) {
      for (const auto& st : (*rec)->state.stages) {
        const auto* sd = def->stage(st.name);
        if (sd && st.started_at && st.status != pipeline::StageStatus::waiting) repo = sd->repo;
      }
    }
    auto facts = api_facts(host_it->second, actor, repo, stage);
    if (!facts) return facts.error();
    action.actor = facts->login;
    action.facts = std::move(*facts);
    if (!actor.login.empty()) action.via = "api:" + actor.token;
    std::string refused;
    bool scheduled = false;
    bool repeated = false;
    const std::string input_key = "api:" + key;
    auto err = inbox.transact_sync([&](store::Db& db) -> std::string {
      auto fresh = runs::try_consume(db, input_key, now_ms());
      if (!fresh) return fresh.error();
      if (!*fresh) {
        repeated = true;
        return {};
      }
      if (auto e = apply_to_run(db, run_id, action, input_key, &scheduled, &refused); !e.empty()) return e;
      return refused.empty() ? std::string{} : std::string("refused");  // a refusal consumes nothing
    });
    if (!refused.empty()) return {K::refused, refused};
    if (!err.empty()) {
      log::error("API action not applied", {{"run", run_id}, {"error", err}});
      return {K::failed, "the action could not be saved: " + err};
    }
    if (scheduled) nudge_workers();
    log::info("API action", {{"run", run_id},
                             {"stage", action.stage},
                             {"token", actor.token},
                             {"actor", action.actor},
                             {"repeated", repeated}});
    return {K::done, {}};
  }

  ApiOutcome trigger(const std::string& host_name, const std::string& repo_as_given, const std::string& sha,
                     const std::string& branch, const std::string& pipeline_name, const ApiActor& actor) {
    using K = ApiOutcome::Kind;
    auto host_it = hosts.find(host_name);
    if (host_it == hosts.end() || !host_it->second.api) {
      return {K::not_found, "no host '" + host_name + "' with an API token is configured"};
    }
    auto& host = host_it->second;
    // The allowlist first, so nothing about a repository outside it is asked of the host.
    auto outside = [&](const std::string& repo) {
      return options.repo_allowed && !options.repo_allowed(host_name, repo);
    };
    if (outside(repo_as_given)) {
      return {K::forbidden, "host '" + host_name + "' does not act on " + repo_as_given + ": it is not in hosts." + host_name + ".repos"};
    }
    // The repository as the host spells it (runs are unique per repository, pipeline and commit,
    // and webhooks name it so), and proof that it exists.
    auto info = host.api->get_repository(host::RepoRef{owner_of(repo_as_given), name_of(repo_as_given)});
    if (!info) {
      if (transient(info.error())) return {K::unavailable, "cannot read " + repo_as_given + " from the host: " + info.error().message};
      return {K::not_found, "cannot read " + repo_as_given + " from the host: " + info.error().message};
    }
    const std::string repo = info->full_name.empty() ? repo_as_given : info->full_name;
    if (outside(repo)) {
      return {K::forbidden, "host '" + host_name + "' does not act on " + repo + ": it is not in hosts." + host_name + ".repos"};
    }
    auto text = host.api->read_file(host::RepoRef{owner_of(repo), name_of(repo)}, options.pipeline_file, sha);
    if (!text) {
      if (transient(text.error())) return {K::unavailable, "cannot read " + options.pipeline_file + ": " + text.error().message};
      return {K::not_found, "cannot read " + options.pipeline_file + " of " + repo + " at " + sha + ": " + text.error().message};
    }
    if (!*text) return {K::not_found, repo + " has no " + options.pipeline_file + " at " + sha};
    std::string error;
    auto file = parse_definition(**text, &error);
    if (!file) return {K::refused, options.pipeline_file + " of " + repo + " at " + sha.substr(0, 7) + " has errors: " + error};
    std::vector<NewRun> new_runs;
    std::vector<std::string> names;
    for (const auto& p : file->pipelines) {
      names.push_back(p.name);
      if (!pipeline_name.empty() && p.name != pipeline_name) continue;
      const std::string author = actor.login.empty() ? "api:" + actor.token : actor.login;
      auto run = make_new_run(host_name, host, p, **text, pipeline::SourceFacts{repo, branch, sha, 0, author, ""});
      if (!run) return {K::refused, "pipeline '" + p.name + "': a release value does not render (see the log)"};
      new_runs.push_back(std::move(*run));
    }
    if (new_runs.empty()) {
      std::string known;
      for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
      return {K::not_found, "the pipeline file of " + repo + " at " + sha.substr(0, 7) + " has no pipeline '" + pipeline_name +
                                "' (it has: " + known + ")"};
    }
    ApiOutcome out;
    for (const auto& nr : new_runs) out.runs.push_back(make_run_id(host_name, repo, nr.pipeline, sha));
    bool scheduled = false;
    auto err = inbox.transact_sync([&](store::Db& db) -> std::string {
      for (const auto& id : out.runs) {
        auto existing = runs::load_run(db, id);
        if (!existing) return existing.error();
        if (!*existing) out.created = true;
      }
      const std::string key = "api:trigger:" + host_name + ":" + repo + ":" + sha + ":" + pipeline_name;
      return start_runs(db, host_name, new_runs, key, &scheduled);
    });
    if (!err.empty()) {
      log::error("manual trigger not applied", {{"repo", repo}, {"sha", sha}, {"error", err}});
      return {K::failed, "the runs could not be saved: " + err};
    }
    if (scheduled) nudge_workers();
    log::info("runs triggered by the API", {{"repo", repo}, {"sha", sha}, {"token", actor.token}, {"created", out.created}});
    return out;
  }
};

EngineService::EngineService(EngineServiceOptions options, Inbox& inbox, std::map<std::string, EngineHost> hosts,
                             git::GitWriter* writer)
    : impl_(std::make_unique<Impl>(std::move(options), inbox, std::move(hosts), writer)) {}

EngineService::~EngineService() { stop(); }

void EngineService::start() {
  // One process serves a SQLite database: jobs still leased were leased by a process that is gone.
  // Their runs would otherwise wait out the lease (side effects are idempotent: running them again
  // is safe).
  std::int64_t released = 0;
  // On PostgreSQL other replicas hold live leases: only this replica's (by its name: an earlier
  // process of it) are released; a dead replica's run out on their own.
  const std::string prefix = impl_->replica + ":";
  const auto err = impl_->inbox.transact_sync([&released, &prefix](store::Db& db) -> std::string {
    auto n = runs::release_leases(db, db.kind() == store::Kind::sqlite ? std::string_view{} : std::string_view{prefix});
    if (!n) return n.error();
    released = *n;
    return {};
  });
  if (!err.empty()) {
    log::error("cannot release the jobs of an earlier process", {{"error", err}});
  } else if (released > 0) {
    log::info("jobs of an earlier process released", {{"jobs", released}});
  }
  impl_->events_thread = std::thread([this] { impl_->events_loop(); });
  impl_->leases_thread = std::thread([this] { impl_->leases_loop(); });
  for (unsigned i = 0; i < std::max(1U, impl_->options.workers); ++i) {
    impl_->worker_threads.emplace_back([this, i] { impl_->worker_loop(i + 1); });
  }
}

void EngineService::nudge() { impl_->nudge_workers(); }

void EngineService::stop() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
    impl_->wake.notify_all();
  }
  if (impl_->events_thread.joinable()) impl_->events_thread.join();
  if (impl_->leases_thread.joinable()) impl_->leases_thread.join();
  for (auto& t : impl_->worker_threads) {
    if (t.joinable()) t.join();
  }
  impl_->worker_threads.clear();
}

std::string EngineService::metrics_text() const {
  std::string out;
  {
    std::lock_guard lock(impl_->gauges_mutex);
    out += "# HELP tollgate_runs Promotion runs by status.\n# TYPE tollgate_runs gauge\n";
    for (const auto& [status, n] : impl_->run_gauges) out += "tollgate_runs{status=\"" + status + "\"} " + std::to_string(n) + "\n";
    out += "# HELP tollgate_jobs Engine jobs (side effects and timers) by state.\n# TYPE tollgate_jobs gauge\n";
    for (const auto& [state, n] : impl_->job_gauges) out += "tollgate_jobs{state=\"" + state + "\"} " + std::to_string(n) + "\n";
  }
  const auto s = stats();
  auto counter = [&out](const char* name, const char* help, std::uint64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name + " " + std::to_string(v) + "\n";
  };
  counter("tollgate_engine_events_total", "Normalised deliveries the engine consumed.", s.events);
  counter("tollgate_runs_started_total", "Runs started by merges and pushes.", s.runs_started);
  counter("tollgate_jobs_done_total", "Jobs finished.", s.jobs_done);
  counter("tollgate_jobs_retried_total", "Job attempts that failed and will be retried.", s.jobs_retried);
  counter("tollgate_jobs_failed_total", "Jobs that failed for good.", s.jobs_failed);
  return out;
}

ApiOutcome EngineService::act(const std::string& run_id, pipeline::ApiAction action, const ApiActor& actor,
                              const std::string& idempotency_key) {
  return impl_->act(run_id, std::move(action), actor, idempotency_key);
}

ApiOutcome EngineService::trigger(const std::string& host, const std::string& repo, const std::string& sha,
                                  const std::string& branch, const std::string& pipeline, const ApiActor& actor) {
  return impl_->trigger(host, repo, sha, branch, pipeline, actor);
}

EngineStats EngineService::stats() const {
  return {impl_->events.load(), impl_->runs_started.load(), impl_->jobs_done.load(), impl_->jobs_retried.load(),
          impl_->jobs_failed.load()};
}

}  // namespace tollgate::service
