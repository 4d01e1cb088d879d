// The engine's persisted state: names of states, lookups, the JSON form the service stores, and
// the texts /status and /help reply with.
#include <algorithm>
#include <array>
#include <cctype>
#include <nlohmann/json.hpp>
#include <string_view>

#include "pipeline/engine.hpp"

namespace tollgate::pipeline {
namespace {

using nlohmann::json;

constexpr std::array<const char*, 6> kRunNames{"queued", "running", "succeeded", "failed", "aborted", "superseded"};
constexpr std::array<const char*, 10> kStageNames{"waiting",  "preparing", "open",   "merging", "verifying",
                                                  "promoted", "skipped",   "failed", "aborted", "superseded"};
constexpr std::array<const char*, 3> kCheckNames{"pending", "success", "failure"};
constexpr std::array<const char*, 5> kRollbackNames{"none", "opening", "merging", "done", "failed"};

template <class E, std::size_t N>
E enum_from(const json& j, const std::array<const char*, N>& names) {
  const std::string s = j.get<std::string>();
  for (std::size_t i = 0; i < N; ++i) {
    if (s == names[i]) return static_cast<E>(i);
  }
  throw json::other_error::create(501, "unknown state '" + s + "'", &j);
}

template <class E, std::size_t N>
std::string enum_name(E e, const std::array<const char*, N>& names) {
  return names[static_cast<std::size_t>(e)];
}

json time_json(TimePoint t) { return t.time_since_epoch().count(); }  // unix milliseconds
TimePoint time_from(const json& j) { return TimePoint{std::chrono::milliseconds{j.get<long long>()}}; }  // unix milliseconds

json opt_time(const std::optional<TimePoint>& t) { return t ? time_json(*t) : json(nullptr); }
std::optional<TimePoint> opt_time_from(const json& j, const char* k) {
  auto it = j.find(k);
  if (it == j.end() || it->is_null()) return std::nullopt;
  return time_from(*it);
}

json stage_json(const StageState& s) {
  json checks = json::object();
  for (const auto& [name, c] : s.checks) {
    checks[name] = {{"sha", c.sha}, {"state", enum_name(c.state, kCheckNames)}, {"at", time_json(c.at)}};
  }
  json approvals = json::array();
  for (const auto& a : s.approvals) {
    approvals.push_back({{"login", a.login}, {"sha", a.sha}, {"via_review", a.via_review}, {"at", time_json(a.at)}});
  }
  json timers = json::object();
  for (const auto& [name, at] : s.timers) timers[name] = time_json(at);
  return {
      {"name", s.name},
      {"status", to_string(s.status)},
      {"branch", s.branch},
      {"pr", s.pr},
      {"head_sha", s.head_sha},
      {"head_set_at", time_json(s.head_set_at)},
      {"head_stale", s.head_stale},
      {"expected_merge_sha", s.expected_merge_sha},
      {"merge_sha", s.merge_sha},
      {"merged_by", s.merged_by},
      {"merged_by_person", s.merged_by_person},
      {"merge_refused_at", opt_time(s.merge_refused_at)},
      {"checks", checks},
      {"approvals", approvals},
      {"hold", s.hold ? json{{"by", s.hold->by}, {"reason", s.hold->reason}} : json(nullptr)},
      {"started_at", opt_time(s.started_at)},
      {"opened_at", opt_time(s.opened_at)},
      {"gates_passed_at", opt_time(s.gates_passed_at)},
      {"verify_started_at", opt_time(s.verify_started_at)},
      {"finished_at", opt_time(s.finished_at)},
      {"verify_step", s.verify_step},
      {"step_started_at", opt_time(s.step_started_at)},
      {"passing_since", opt_time(s.passing_since)},
      {"probe_seq", s.probe_seq},
      {"attempt", s.attempt},
      {"retries", s.retries},
      {"merge_seq", s.merge_seq},
      {"failed_in", to_string(s.failed_in)},
      {"failure", s.failure},
      {"rollback", enum_name(s.rollback, kRollbackNames)},
      {"revert_pr", s.revert_pr},
      {"revert_head_sha", s.revert_head_sha},
      {"status_state", s.status_state},
      {"status_description", s.status_description},
      {"sticky_rev", s.sticky_rev},
      {"timers", timers},
      {"seen_comments", s.seen_comments},
      {"seen_reviews", s.seen_reviews},
  };
}

StageState stage_from(const json& j) {
  StageState s;
  s.name = j.at("name").get<std::string>();
  s.status = enum_from<StageStatus>(j.at("status"), kStageNames);
  s.branch = j.at("branch").get<std::string>();
  s.pr = j.at("pr").get<std::int64_t>();
  s.head_sha = j.at("head_sha").get<std::string>();
  s.head_set_at = time_from(j.at("head_set_at"));
  s.head_stale = j.at("head_stale").get<bool>();
  s.expected_merge_sha = j.at("expected_merge_sha").get<std::string>();
  s.merge_sha = j.at("merge_sha").get<std::string>();
  s.merged_by = j.at("merged_by").get<std::string>();
  s.merged_by_person = j.at("merged_by_person").get<bool>();
  s.merge_refused_at = opt_time_from(j, "merge_refused_at");
  for (const auto& [name, c] : j.at("checks").items()) {
    s.checks[name] = {c.at("sha").get<std::string>(), enum_from<CheckState>(c.at("state"), kCheckNames),
                      time_from(c.at("at"))};
  }
  for (const auto& a : j.at("approvals")) {
    s.approvals.push_back({a.at("login").get<std::string>(), a.at("sha").get<std::string>(),
                           a.at("via_review").get<bool>(), time_from(a.at("at"))});
  }
  if (const auto& h = j.at("hold"); !h.is_null())
    s.hold = Hold{h.at("by").get<std::string>(), h.at("reason").get<std::string>()};
  s.started_at = opt_time_from(j, "started_at");
  s.opened_at = opt_time_from(j, "opened_at");
  s.gates_passed_at = opt_time_from(j, "gates_passed_at");
  s.verify_started_at = opt_time_from(j, "verify_started_at");
  s.finished_at = opt_time_from(j, "finished_at");
  s.verify_step = j.at("verify_step").get<int>();
  s.step_started_at = opt_time_from(j, "step_started_at");
  s.passing_since = opt_time_from(j, "passing_since");
  s.probe_seq = j.at("probe_seq").get<int>();
  s.attempt = j.at("attempt").get<int>();
  s.retries = j.at("retries").get<int>();
  s.merge_seq = j.at("merge_seq").get<int>();
  s.failed_in = enum_from<StageStatus>(j.at("failed_in"), kStageNames);
  s.failure = j.at("failure").get<std::string>();
  s.rollback = enum_from<RollbackPhase>(j.at("rollback"), kRollbackNames);
  s.revert_pr = j.at("revert_pr").get<std::int64_t>();
  s.revert_head_sha = j.at("revert_head_sha").get<std::string>();
  s.status_state = j.at("status_state").get<std::string>();
  s.status_description = j.at("status_description").get<std::string>();
  s.sticky_rev = j.at("sticky_rev").get<int>();
  for (const auto& [name, at] : j.at("timers").items()) s.timers[name] = time_from(at);
  s.seen_comments = j.at("seen_comments").get<std::vector<std::int64_t>>();
  s.seen_reviews = j.at("seen_reviews").get<std::vector<std::int64_t>>();
  return s;
}

}  // namespace

const char* to_string(RunStatus s) { return kRunNames[static_cast<std::size_t>(s)]; }
const char* to_string(StageStatus s) { return kStageNames[static_cast<std::size_t>(s)]; }

const char* to_string(JobKind k) {
  static constexpr std::array<const char*, 13> names{
      "prepare_branch", "open_pr",  "set_commit_status", "upsert_sticky_comment",
      "merge_pr",       "close_pr", "open_revert_pr",    "merge_revert_pr",
      "add_reaction",   "reply",    "verify_probe",      "resync_pr",
      "timer"};
  return names[static_cast<std::size_t>(k)];
}

bool same_repo(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

bool is_terminal(RunStatus s) { return s != RunStatus::queued && s != RunStatus::running; }

bool is_terminal(StageStatus s) {
  return s == StageStatus::promoted || s == StageStatus::skipped || s == StageStatus::failed ||
         s == StageStatus::aborted || s == StageStatus::superseded;
}

const StageState* RunState::stage(std::string_view name) const {
  auto it = std::find_if(stages.begin(), stages.end(), [&](const StageState& s) { return s.name == name; });
  return it == stages.end() ? nullptr : &*it;
}

StageState* RunState::stage(std::string_view name) {
  return const_cast<StageState*>(static_cast<const RunState&>(*this).stage(name));
}

void to_json(json& j, const RunState& r) {
  json release = json::array();
  for (const auto& [k, v] : r.release) release.push_back({k, v});
  json stages = json::array();
  for (const auto& s : r.stages) stages.push_back(stage_json(s));
  j = {
      {"version", 1},
      {"id", r.id},
      {"pipeline", r.pipeline},
      {"status", to_string(r.status)},
      {"source",
       {{"repo", r.source.repo},
        {"branch", r.source.branch},
        {"sha", r.source.sha},
        {"pr", r.source.pr},
        {"author", r.source.author},
        {"title", r.source.title}}},
      {"release", release},
      {"created_at", time_json(r.created_at)},
      {"finished_at", opt_time(r.finished_at)},
      {"stages", stages},
  };
}

void from_json(const json& j, RunState& r) {
  if (j.at("version").get<int>() != 1) throw json::other_error::create(501, "unknown run state version", &j);
  r = RunState{};
  r.id = j.at("id").get<std::string>();
  r.pipeline = j.at("pipeline").get<std::string>();
  r.status = enum_from<RunStatus>(j.at("status"), kRunNames);
  const json& s = j.at("source");
  r.source = {s.at("repo").get<std::string>(), s.at("branch").get<std::string>(), s.at("sha").get<std::string>(),
              s.at("pr").get<std::int64_t>(), s.at("author").get<std::string>(), s.value("title", std::string{})};
  for (const auto& kv : j.at("release"))
    r.release.emplace_back(kv.at(0).get<std::string>(), kv.at(1).get<std::string>());
  r.created_at = time_from(j.at("created_at"));
  r.finished_at = opt_time_from(j, "finished_at");
  for (const auto& st : j.at("stages")) r.stages.push_back(stage_from(st));
}

std::string render_status(const RunState& run) {
  std::string out = "Run `" + run.id + "` of `" + run.pipeline + "`: " + to_string(run.status) +
                    "\n\n| stage | state | PR | |\n|---|---|---|---|\n";
  for (const auto& s : run.stages) {
    out += "| " + s.name + " | " + to_string(s.status) + " | " + (s.pr ? "#" + std::to_string(s.pr) : "") + " | " +
           (s.status == StageStatus::failed ? s.failure : s.status_description) + " |\n";
  }
  return out;
}

std::string help_text() {
  return "Commands (one per line, at the start of the line):\n"
         "- `/approve [note]`: approve this head\n"
         "- `/unapprove`: withdraw your approval\n"
         "- `/hold [reason]`, `/unhold`: block / unblock this stage's merge\n"
         "- `/retry`: retry the failed step of this stage\n"
         "- `/abort [reason]`: abort the run and close its open PRs\n"
         "- `/rollback`: revert a promoted stage\n"
         "- `/status`, `/help`: the run table, this list";
}

}  // namespace tollgate::pipeline
