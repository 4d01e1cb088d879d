#include "service/api.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/duration.hpp"
#include "pipeline/engine_machine.hpp"
#include "pipeline/names.hpp"
#include "pipeline/validate.hpp"
#include "service/engine_service.hpp"
#include "service/log.hpp"
#include "service/metrics.hpp"
#include "service/run_store.hpp"
#include "service/store.hpp"
#include "webhooks/receiver.hpp"

namespace tollgate_dashboard {
std::string_view embedded(std::string_view name);
}

namespace tollgate::service {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::system_clock;

// ---------------------------------------------------------------------------------------------
// Small pieces

HttpResponse error(int status, const std::string& message) { return json_response(status, "error", message); }

HttpResponse json_ok(int status, const json& body) {
  return {status, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"};
}

// RFC 3339 UTC with milliseconds, from unix milliseconds.
std::string iso(std::int64_t ms) {
  std::string out;
  log::append_utc_time(out, ms);
  return out;
}
json iso_or_null(const std::optional<std::int64_t>& ms) { return ms ? json(iso(*ms)) : json(nullptr); }
json iso_or_null(const std::optional<pipeline::TimePoint>& t) {
  return t ? json(iso(t->time_since_epoch().count())) : json(nullptr);
}
std::int64_t ms_of(pipeline::TimePoint t) { return t.time_since_epoch().count(); }

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const auto at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) break;
    start = at + 1;
  }
  return out;
}

// A request's query: known keys only, each once.
struct Query {
  std::map<std::string, std::string> values;
  std::string problem;  // non-empty: answer 400 with it
  [[nodiscard]] std::optional<std::string> get(const std::string& key) const {
    auto it = values.find(key);
    if (it == values.end()) return std::nullopt;
    return it->second;
  }
};

Query parse_query(std::string_view target, std::initializer_list<const char*> known) {
  Query q;
  const auto mark = target.find('?');
  if (mark == std::string_view::npos) return q;
  for (auto part : split(target.substr(mark + 1), '&')) {
    if (part.empty()) continue;
    const auto eq = part.find('=');
    auto key = webhooks::percent_decode(part.substr(0, eq), true);
    auto value = webhooks::percent_decode(eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1), true);
    if (!key || !value) {
      q.problem = "malformed query string: a '%' not followed by two hex digits";
      return q;
    }
    bool ok = false;
    std::string list;
    for (const char* k : known) {
      ok = ok || *key == k;
      list += std::string(list.empty() ? "" : ", ") + k;
    }
    if (!ok) {
      q.problem = "unknown query parameter '" + key->substr(0, 40) + "'" +
                  (list.empty() ? std::string(": this endpoint takes none") : " (this endpoint takes: " + list + ")");
      return q;
    }
    if (!q.values.emplace(*key, *value).second) {
      q.problem = "query parameter '" + *key + "' is given twice";
      return q;
    }
  }
  return q;
}

// `limit` within [1, max], default `def`.
std::optional<std::int64_t> parse_limit(const Query& q, std::int64_t def, std::int64_t max, std::string& problem) {
  auto v = q.get("limit");
  if (!v) return def;
  const bool digits = !v->empty() && v->size() <= 6 && v->find_first_not_of("0123456789") == std::string::npos;
  const std::int64_t n = digits ? std::stoll(*v) : 0;
  if (n < 1 || n > max) {
    problem = "'limit' must be a whole number from 1 to " + std::to_string(max) + "; got '" + v->substr(0, 20) + "'";
    return std::nullopt;
  }
  return n;
}

// Reads a page: the query asked for limit + 1 rows; each of the first `limit` becomes an item.
// Returns the items and whether there are more, or SQLite's error.
template <class Item>
tl::expected<std::pair<json, bool>, std::string> read_page(store::Stmt& s, std::int64_t limit, Item item) {
  json items = json::array();
  while (true) {
    auto row = s.step();
    if (!row) return tl::unexpected(row.error().message);
    if (!*row) return std::pair{std::move(items), false};
    if (static_cast<std::int64_t>(items.size()) == limit) return std::pair{std::move(items), true};
    items.push_back(item(s));
  }
}

// A WHERE clause of just the filters given: SQLite uses an index for "column = ?", not for the
// "?1 IS NULL OR column = ?1" form that would serve every combination with one statement.
struct Where {
  std::string sql;
  std::vector<std::variant<std::string, std::int64_t>> args;

  void add(const std::string& clause) { sql += (sql.empty() ? " WHERE " : " AND ") + clause; }
  void equals(const char* column, const std::optional<std::string>& value) {
    if (!value) return;
    add(std::string(column) + " = ?");
    args.emplace_back(*value);
  }
  // Binds the arguments from 1; returns the next index.
  int bind(store::Stmt& s) const {
    int i = 1;
    for (const auto& a : args) {
      if (const auto* text = std::get_if<std::string>(&a)) s.bind(i++, *text); else s.bind(i++, std::get<std::int64_t>(a));
    }
    return i;
  }
};

const char* kRunStatuses[] = {"queued", "running", "succeeded", "failed", "aborted", "superseded"};
const char* kDays[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

std::string hhmm(int minute) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%02d:%02d", (minute / 60) % 25, minute % 60);
  return buf;
}

json checks_json(const std::optional<pipeline::CheckSelection>& c) {
  if (!c) return nullptr;
  switch (c->mode) {
    case pipeline::CheckSelection::Mode::all: return "all";
    case pipeline::CheckSelection::Mode::none: return "none";
    case pipeline::CheckSelection::Mode::named: return c->names;
  }
  return nullptr;
}

json approvals_json(const std::optional<pipeline::ApprovalGate>& a) {
  if (!a) return nullptr;
  return {{"count", a->count}, {"from", a->from}, {"allow_author", a->allow_author}};
}

json window_json(const std::optional<pipeline::Window>& w) {
  if (!w) return nullptr;
  json days = json::array();
  for (int d : w->days) days.push_back(kDays[d % 7]);
  return {{"days", days}, {"hours", hhmm(w->start_minute) + "-" + hhmm(w->end_minute)}, {"timezone", w->timezone}};
}

const char* merge_name(pipeline::MergeMode m) { return m == pipeline::MergeMode::manual ? "manual" : "auto"; }

// A random idempotency key for a request that sent none.
std::string random_key() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    static std::atomic<std::uint64_t> counter{0};
    return "fallback-" + std::to_string(Clock::now().time_since_epoch().count()) + "-" + std::to_string(++counter);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

// The answer to an engine outcome that is not done.
std::optional<HttpResponse> outcome_error(const ApiOutcome& outcome) {
  using O = ApiOutcome::Kind;
  switch (outcome.kind) {
    case O::done: return std::nullopt;
    case O::not_found: return error(404, outcome.message);
    case O::forbidden: return error(403, outcome.message);
    case O::refused: return error(409, outcome.message);
    case O::unavailable: return error(503, outcome.message);
    case O::failed: return error(500, outcome.message);
  }
  return error(500, outcome.message);
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  // Nearest rank: the smallest value with at least q of the values at or below it.
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct Api::Impl {
  ApiOptions options;

  // Read connections, one per concurrent request.
  std::mutex pool_mutex;
  std::vector<store::Db> pool;

  // Pipeline files by text, parsed once.
  std::mutex defs_mutex;
  std::map<std::string, std::shared_ptr<const pipeline::PipelineFile>, std::less<>> defs;

  // The delivery gauges of /metrics: computed by `refresher` when they are over 30 s old.
  std::mutex metrics_mutex;
  std::condition_variable metrics_wake;
  std::string metrics_cache;
  std::chrono::steady_clock::time_point metrics_at{};
  bool metrics_wanted = false, stopping = false;
  std::thread refresher;

  explicit Impl(ApiOptions o) : options(std::move(o)) {}
  ~Impl() {
    {
      std::lock_guard lock(metrics_mutex);
      stopping = true;
    }
    metrics_wake.notify_all();
    if (refresher.joinable()) refresher.join();
  }

  struct Conn {
    Impl* impl;
    std::optional<store::Db> db;
    Conn(Impl* i, store::Db d) : impl(i), db(std::move(d)) {}
    Conn(Conn&& o) noexcept : impl(o.impl), db(std::move(o.db)) { o.db.reset(); }
    ~Conn() {
      if (!db) return;
      std::lock_guard lock(impl->pool_mutex);
      if (impl->pool.size() < 8) impl->pool.push_back(std::move(*db));
    }
    store::Db& operator*() { return *db; }
  };

  tl::expected<Conn, std::string> conn() {
    {
      std::lock_guard lock(pool_mutex);
      if (!pool.empty()) {
        Conn c(this, std::move(pool.back()));
        pool.pop_back();
        return c;
      }
    }
    auto db = store::Db::open(options.database);
    if (!db) return tl::unexpected("cannot open the database: " + db.error().message);
    return Conn(this, std::move(*db));
  }

  std::int64_t now_ms() const {
    const auto t = options.now ? options.now() : Clock::now();
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  }

  std::shared_ptr<const pipeline::PipelineFile> definition(const std::string& text) {
    {
      std::lock_guard lock(defs_mutex);
      if (auto it = defs.find(text); it != defs.end()) return it->second;
    }
    auto loaded = pipeline::load_pipeline(text, ".tollgate.yaml");
    if (!loaded.ok() || !loaded.file) return nullptr;
    auto file = std::make_shared<const pipeline::PipelineFile>(std::move(*loaded.file));
    std::lock_guard lock(defs_mutex);
    if (defs.size() > 64) defs.clear();
    defs.emplace(text, file);
    return file;
  }

  const pipeline::Pipeline* pipeline_in(const std::shared_ptr<const pipeline::PipelineFile>& file, const std::string& name) {
    if (!file) return nullptr;
    for (const auto& p : file->pipelines) {
      if (p.name == name) return &p;
    }
    return nullptr;
  }

  json pr_json(const std::string& host, const std::string& repo, std::int64_t pr) {
    if (pr <= 0) return nullptr;
    std::string url = options.pr_url ? options.pr_url(host, repo, pr) : std::string{};
    return {{"number", pr}, {"url", url.empty() ? json(nullptr) : json(url)}};
  }

  // ------------------------------------------------------------------------------------------
  // Authentication

  enum class Access { read, operate };

  // The token of the request, or the answer to give instead (nothing and no token: anonymous).
  std::variant<const ApiToken*, HttpResponse> authenticate(const HttpRequest& request, Access need) {
    std::string_view auth = request.header("authorization");
    if (auth.empty()) {
      if (need == Access::read && options.config.anonymous_read) return static_cast<const ApiToken*>(nullptr);
      auto r = error(401, need == Access::read
                              ? "this endpoint needs a token: send 'Authorization: Bearer TOKEN' with a token from 'api.tokens'"
                              : "actions need an operator token: send 'Authorization: Bearer TOKEN' with a token whose role is operator");
      r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"tollgate\"");
      return r;
    }
    const std::string_view scheme = "Bearer ";
    if (auth.size() <= scheme.size() || !std::equal(scheme.begin(), scheme.end(), auth.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
        })) {
      auto r = error(401, "the Authorization header must be 'Bearer TOKEN'");
      r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"tollgate\", error=\"invalid_request\"");
      return r;
    }
    std::string_view presented = auth.substr(scheme.size());
    while (!presented.empty() && presented.front() == ' ') presented.remove_prefix(1);
    const ApiToken* found = nullptr;
    for (const auto& t : options.config.tokens) {
      // Every token is compared, in constant time, so timing tells nothing about which is close.
      if (webhooks::constant_time_equal(t.token.value(), presented)) found = &t;
    }
    if (!found) {
      auto r = error(401, "unknown token (tokens are configured under 'api.tokens')");
      r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"tollgate\", error=\"invalid_token\"");
      return r;
    }
    if (need == Access::operate && !found->operator_role) {
      return error(403, "token '" + found->name + "' is read-only; actions need a token whose role is operator");
    }
    return found;
  }

  // ------------------------------------------------------------------------------------------
  // Runs

  // A run's summary: its columns, the source and each stage's [name, status] read from the state
  // JSON by the database (SQLite's JSON1 functions, PostgreSQL's jsonb ones), and its rowid.
  static constexpr const char* kSqliteSummaryColumns =
      "id, host, repo, pipeline, status, version, json_extract(state, '$.source'), "
      "(SELECT json_group_array(json_array(json_extract(value, '$.name'), json_extract(value, '$.status'))) "
      "FROM json_each(runs.state, '$.stages')), created_at, updated_at, finished_at, rowid";
  static constexpr const char* kPostgresSummaryColumns =
      "id, host, repo, pipeline, status, version, (state::jsonb -> 'source')::text, "
      "COALESCE((SELECT json_agg(json_build_array(st.value ->> 'name', st.value ->> 'status'))::text "
      "FROM jsonb_array_elements(state::jsonb -> 'stages') AS st(value)), '[]'), created_at, updated_at, finished_at, rowid";
  const char* const kSummaryColumns =
      store::is_postgres(options.database) ? kPostgresSummaryColumns : kSqliteSummaryColumns;

  json summary_of(const store::Stmt& s) {
    const json source = json::parse(s.text(6), nullptr, false);
    const json stages_raw = json::parse(s.text(7), nullptr, false);
    json stages = json::array();
    if (stages_raw.is_array()) {
      for (const auto& pair : stages_raw) {
        if (pair.is_array() && pair.size() == 2) stages.push_back({{"name", pair[0]}, {"status", pair[1]}});
      }
    }
    const std::string host = s.text(1);
    const auto str = [&](const char* k) {
      return source.is_object() && source.contains(k) && source[k].is_string() ? source[k].get<std::string>() : std::string{};
    };
    const std::int64_t pr = source.is_object() && source.contains("pr") && source["pr"].is_number_integer()
                                ? source["pr"].get<std::int64_t>()
                                : 0;
    json pr_url = nullptr;
    if (pr > 0) {
      if (auto p = pr_json(host, str("repo"), pr); !p["url"].is_null()) pr_url = p["url"];
    }
    return {{"id", s.text(0)},
            {"host", host},
            {"repo", s.text(2)},
            {"pipeline", s.text(3)},
            {"status", s.text(4)},
            {"version", s.text(5)},
            {"source",
             {{"repo", str("repo")},
              {"branch", str("branch")},
              {"sha", str("sha")},
              {"pr", pr > 0 ? json(pr) : json(nullptr)},
              {"author", str("author")},
              {"title", str("title")},
              {"pr_url", pr_url}}},
            {"created_at", iso(s.int64(8))},
            {"updated_at", iso(s.int64(9))},
            {"finished_at", s.is_null(10) ? json(nullptr) : json(iso(s.int64(10)))},
            {"stages", stages}};
  }

  tl::expected<std::optional<json>, std::string> summary(store::Db& db, const std::string& id) {
    auto q = db.prepare(std::string("SELECT ") + kSummaryColumns + " FROM runs WHERE id = ?");
    if (!q) return tl::unexpected(q.error().message);
    q->bind(1, id);
    auto row = q->step();
    if (!row) return tl::unexpected(row.error().message);
    if (!*row) return std::optional<json>{};
    return std::optional<json>{summary_of(*q)};
  }

  HttpResponse list_runs(const HttpRequest& request) {
    auto q = parse_query(request.target, {"pipeline", "repo", "host", "state", "limit", "cursor"});
    if (!q.problem.empty()) return error(400, q.problem);
    std::string problem;
    auto limit = parse_limit(q, 50, 200, problem);
    if (!limit) return error(400, problem);
    auto state = q.get("state");
    if (state && std::none_of(std::begin(kRunStatuses), std::end(kRunStatuses), [&](const char* s) { return *state == s; })) {
      return error(400, "'state' must be one of queued, running, succeeded, failed, aborted, superseded; got '" +
                            state->substr(0, 40) + "'");
    }
    // Cursor: "<created_at>.<rowid>" of the last run of the previous page.
    std::optional<std::pair<std::int64_t, std::int64_t>> after;
    if (auto c = q.get("cursor")) {
      const auto dot = c->find('.');
      const bool ok = dot != std::string::npos && dot > 0 && dot <= 18 && c->size() - dot - 1 <= 18 && c->size() > dot + 1 &&
                      c->find_first_not_of("0123456789.") == std::string::npos && c->find('.', dot + 1) == std::string::npos;
      if (!ok) return error(400, "'cursor' is not one this API gave out: pass the 'next_cursor' of the previous page unchanged");
      after = std::pair{std::stoll(c->substr(0, dot)), std::stoll(c->substr(dot + 1))};
    }
    auto db = conn();
    if (!db) return error(503, db.error());
    Where where;
    for (const char* key : {"pipeline", "repo", "host"}) where.equals(key, q.get(key));
    where.equals("status", state);
    if (after) {
      where.add("(created_at < ? OR (created_at = ? AND rowid < ?))");
      where.args.insert(where.args.end(), {after->first, after->first, after->second});
    }
    auto s = (**db).prepare(std::string("SELECT ") + kSummaryColumns + " FROM runs" + where.sql +
                            " ORDER BY created_at DESC, rowid DESC LIMIT ?");
    if (!s) return error(503, "reading runs: " + s.error().message);
    s->bind(where.bind(*s), *limit + 1);
    std::string next;
    auto page = read_page(*s, *limit, [&](const store::Stmt& row) {
      next = std::to_string(row.int64(8)) + "." + std::to_string(row.int64(11));
      return summary_of(row);
    });
    if (!page) return error(503, "reading runs: " + page.error());
    return json_ok(200, {{"runs", page->first}, {"next_cursor", page->second ? json(next) : json(nullptr)}});
  }

  json stage_detail(const runs::RunRecord& rec, const pipeline::Pipeline* def, const pipeline::StageState& st) {
    const pipeline::Stage* sd = def ? def->stage(st.name) : nullptr;
    const std::int64_t now = now_ms();
    json gates = {{"checks", nullptr}, {"soak", nullptr}, {"window", nullptr}, {"approvals", nullptr}};
    json results = json::array();
    for (const auto& [name, c] : st.checks) {
      static constexpr const char* kStates[] = {"pending", "success", "failure"};
      results.push_back({{"name", name}, {"state", kStates[static_cast<int>(c.state)]}, {"sha", c.sha}, {"at", iso(ms_of(c.at))}});
    }
    if (sd && sd->gates.checks) gates["checks"] = {{"required", checks_json(sd->gates.checks)}, {"results", results}};
    if (sd && sd->gates.soak) {
      // As the engine counts it: from when every upstream stage was promoted (or the PR opened).
      std::optional<std::int64_t> since;
      if (sd->after.empty()) {
        if (st.opened_at) since = ms_of(*st.opened_at);
      } else {
        std::int64_t base = 0;
        bool all = true;
        for (const auto& up : sd->after) {
          const auto* u = rec.state.stage(up);
          if (!u || !u->finished_at || (u->status != pipeline::StageStatus::promoted && u->status != pipeline::StageStatus::skipped)) {
            all = false;
          } else {
            base = std::max(base, ms_of(*u->finished_at));
          }
        }
        if (all) since = base;
      }
      const std::int64_t soak_s = sd->gates.soak->count();
      json remaining = nullptr;
      if (since) remaining = std::max<std::int64_t>(0, (*since + soak_s * 1000 - now + 999) / 1000);
      gates["soak"] = {{"seconds", soak_s}, {"since", iso_or_null(since)}, {"remaining_seconds", remaining}};
    }
    if (sd && sd->gates.window) {
      json w = window_json(sd->gates.window);
      const pipeline::UtcZones utc;
      const pipeline::TimeZones& zones = options.zones ? *options.zones : static_cast<const pipeline::TimeZones&>(utc);
      const pipeline::TimePoint t{std::chrono::milliseconds(now)};
      auto offset = zones.utc_offset(sd->gates.window->timezone, t);
      w["open"] = offset ? json(pipeline::detail::window_open_at(*sd->gates.window, t, *offset)) : json(nullptr);
      gates["window"] = w;
    }
    if (sd && sd->gates.approvals) {
      json given = json::array();
      for (const auto& a : st.approvals) {
        if (a.sha != st.head_sha) continue;
        given.push_back({{"login", a.login}, {"at", iso(ms_of(a.at))}, {"via_review", a.via_review}});
      }
      json ap = approvals_json(sd->gates.approvals);
      ap["given"] = given;
      gates["approvals"] = ap;
    }
    const std::string repo = sd ? sd->repo : std::string{};
    json verify = nullptr;
    if (sd && sd->verify) {
      verify = {{"step", st.verify_step},
                {"steps", sd->verify->steps.size()},
                {"started_at", iso_or_null(st.verify_started_at)}};
    }
    return {{"name", st.name},
            {"status", pipeline::to_string(st.status)},
            {"repo", repo},
            {"branch", sd && sd->branch ? json(*sd->branch) : json(nullptr)},
            {"after", sd ? sd->after : std::vector<std::string>{}},
            {"merge", sd ? merge_name(sd->merge) : "auto"},
            {"pr", pr_json(rec.host, repo, st.pr)},
            {"revert_pr", pr_json(rec.host, repo, st.revert_pr)},
            {"head_sha", st.head_sha},
            {"merge_sha", st.merge_sha},
            {"merged_by", st.merged_by},
            {"started_at", iso_or_null(st.started_at)},
            {"opened_at", iso_or_null(st.opened_at)},
            {"gates_passed_at", iso_or_null(st.gates_passed_at)},
            {"finished_at", iso_or_null(st.finished_at)},
            {"failure", st.failure},
            {"hold", st.hold ? json{{"by", st.hold->by}, {"reason", st.hold->reason}} : json(nullptr)},
            {"gates", gates},
            {"verify", verify}};
  }

  // One read transaction, so the summary and the stages come from the same commit.
  struct ReadTx {
    store::Db& db;
    bool open;
    explicit ReadTx(store::Db& d) : db(d), open(static_cast<bool>(d.exec("BEGIN"))) {}
    ~ReadTx() {
      if (open) (void)db.exec("COMMIT");
    }
  };

  tl::expected<std::optional<json>, std::string> run_detail(store::Db& db, const std::string& id) {
    ReadTx tx(db);
    auto base = summary(db, id);
    if (!base) return tl::unexpected(base.error());
    if (!*base) return std::optional<json>{};
    auto rec = runs::load_run(db, id);
    if (!rec) return tl::unexpected(rec.error());
    if (!*rec) return std::optional<json>{};
    auto file = definition((*rec)->definition);
    const pipeline::Pipeline* def = pipeline_in(file, (*rec)->pipeline);
    json out = std::move(**base);
    out["definition_sha"] = (*rec)->definition_sha;
    json release = json::object();
    for (const auto& [k, v] : (*rec)->state.release) release[k] = v;
    out["release"] = release;
    json stages = json::array();
    for (const auto& st : (*rec)->state.stages) stages.push_back(stage_detail(**rec, def, st));
    out["stages"] = stages;
    return std::optional<json>{std::move(out)};
  }

  HttpResponse get_run(const std::string& id, const HttpRequest& request) {
    auto q = parse_query(request.target, {});
    if (!q.problem.empty()) return error(400, q.problem);
    auto db = conn();
    if (!db) return error(503, db.error());
    auto run = run_detail(**db, id);
    if (!run) return error(503, "reading run '" + id.substr(0, 64) + "': " + run.error());
    if (!*run) return error(404, "no run '" + id.substr(0, 64) + "'");
    return json_ok(200, **run);
  }

  // ------------------------------------------------------------------------------------------
  // Pipelines

  HttpResponse list_pipelines(const HttpRequest& request) {
    auto q = parse_query(request.target, {"host", "repo", "name"});
    if (!q.problem.empty()) return error(400, q.problem);
    auto db = conn();
    if (!db) return error(503, db.error());
    Where where;
    where.equals("host", q.get("host"));
    where.equals("repo", q.get("repo"));
    where.equals("pipeline", q.get("name"));
    auto groups = (**db).prepare("SELECT host, repo, pipeline, COUNT(*), SUM(CASE WHEN status IN ('queued', 'running') THEN 1 ELSE 0 END) FROM runs" +
                                 where.sql + " GROUP BY host, repo, pipeline ORDER BY repo, pipeline, host");
    if (!groups) return error(503, "reading pipelines: " + groups.error().message);
    where.bind(*groups);
    struct Group {
      std::string host, repo, name;
      std::int64_t total, running;
    };
    std::vector<Group> found;
    while (true) {
      auto row = groups->step();
      if (!row) return error(503, "reading pipelines: " + row.error().message);
      if (!*row) break;
      found.push_back({groups->text(0), groups->text(1), groups->text(2), groups->int64(3), groups->int64(4)});
    }
    json out = json::array();
    for (const auto& g : found) {
      auto p = pipeline_json(**db, g.host, g.repo, g.name);
      if (!p) return error(503, "reading pipeline '" + g.name + "': " + p.error());
      (*p)["counts"] = {{"running", g.running}, {"total", g.total}};
      out.push_back(std::move(*p));
    }
    return json_ok(200, {{"pipelines", out}});
  }

  tl::expected<json, std::string> pipeline_json(store::Db& db, const std::string& host, const std::string& repo,
                                                const std::string& name) {
    auto newest = db.prepare(std::string("SELECT ") + kSummaryColumns + ", definition FROM runs WHERE host = ? AND repo = ? AND "
                             "pipeline = ? ORDER BY created_at DESC, rowid DESC LIMIT 1");
    if (!newest) return tl::unexpected(newest.error().message);
    newest->bind(1, host).bind(2, repo).bind(3, name);
    auto row = newest->step();
    if (!row) return tl::unexpected(row.error().message);
    json latest_run = nullptr;
    std::shared_ptr<const pipeline::PipelineFile> file;
    if (*row) {
      latest_run = summary_of(*newest);
      file = definition(newest->text(12));
    }
    const pipeline::Pipeline* def = pipeline_in(file, name);
    // The environment's version: the stage promoted (or found already there) most recently, which
    // is not always the newest run's (an older run retried after a newer one).
    auto current = db.prepare(
        "SELECT s.run_id, r.version, s.finished_at FROM run_stages s JOIN runs r ON r.id = s.run_id "
        "WHERE s.host = ? AND s.repo = ? AND s.pipeline = ? AND s.stage = ? AND s.finished_at IS NOT NULL AND "
        "s.status IN ('promoted', 'skipped') ORDER BY s.finished_at DESC LIMIT 1");
    auto latest = db.prepare(
        "SELECT s.run_id, s.status, r.version FROM run_stages s JOIN runs r ON r.id = s.run_id "
        "WHERE s.host = ? AND s.repo = ? AND s.pipeline = ? AND s.stage = ? AND s.started_at IS NOT NULL "
        "ORDER BY s.run_created DESC LIMIT 1");
    if (!current) return tl::unexpected(current.error().message);
    if (!latest) return tl::unexpected(latest.error().message);
    json stages = json::array();
    if (def) {
      for (const auto& sd : def->stages) {
        json cur = nullptr, last = nullptr;
        current->reset();
        current->bind(1, host).bind(2, repo).bind(3, name).bind(4, sd.name);
        if (auto r = current->step(); !r) {
          return tl::unexpected(r.error().message);
        } else if (*r) {
          cur = {{"version", current->text(1)},
                 {"run_id", current->text(0)},
                 {"promoted_at", current->is_null(2) ? json(nullptr) : json(iso(current->int64(2)))}};
        }
        latest->reset();
        latest->bind(1, host).bind(2, repo).bind(3, name).bind(4, sd.name);
        if (auto r = latest->step(); !r) {
          return tl::unexpected(r.error().message);
        } else if (*r) {
          last = {{"run_id", latest->text(0)}, {"status", latest->text(1)}, {"version", latest->text(2)}};
        }
        stages.push_back({{"name", sd.name},
                          {"repo", sd.repo},
                          {"branch", sd.branch ? json(*sd.branch) : json(nullptr)},
                          {"after", sd.after},
                          {"gates",
                           {{"checks", checks_json(sd.gates.checks)},
                            {"soak_seconds", sd.gates.soak ? json(sd.gates.soak->count()) : json(nullptr)},
                            {"approvals", approvals_json(sd.gates.approvals)},
                            {"window", window_json(sd.gates.window)}}},
                          {"merge", merge_name(sd.merge)},
                          {"current", cur},
                          {"latest", last}});
      }
    }
    return json{{"host", host}, {"repo", repo}, {"name", name}, {"stages", stages}, {"latest_run", latest_run}};
  }

  // ------------------------------------------------------------------------------------------
  // Audit log and the event stream

  static constexpr int kEventBatch = 200;
  static constexpr const char* kAuditColumns =
      "a.id, a.run_id, r.pipeline, a.seq, a.at, a.stage, a.from_state, a.to_state, a.actor, a.reason";

  static json audit_of(const store::Stmt& s) {
    return {{"id", s.int64(0)},   {"run_id", s.text(1)},     {"pipeline", s.text(2)}, {"seq", s.int64(3)},
            {"at", iso(s.int64(4))}, {"stage", s.text(5)}, {"from", s.text(6)},     {"to", s.text(7)},
            {"actor", s.text(8)}, {"reason", s.text(9)}};
  }

  HttpResponse list_audit(const HttpRequest& request) {
    auto q = parse_query(request.target, {"run", "pipeline", "limit", "cursor"});
    if (!q.problem.empty()) return error(400, q.problem);
    std::string problem;
    auto limit = parse_limit(q, 100, 500, problem);
    if (!limit) return error(400, problem);
    std::optional<std::int64_t> before;
    if (auto c = q.get("cursor")) {
      if (c->empty() || c->size() > 18 || c->find_first_not_of("0123456789") != std::string::npos) {
        return error(400, "'cursor' is not one this API gave out: pass the 'next_cursor' of the previous page unchanged");
      }
      before = std::stoll(*c);
    }
    auto db = conn();
    if (!db) return error(503, db.error());
    Where where;
    where.equals("a.run_id", q.get("run"));
    where.equals("r.pipeline", q.get("pipeline"));
    if (before) {
      where.add("a.id < ?");
      where.args.emplace_back(*before);
    }
    auto s = (**db).prepare(std::string("SELECT ") + kAuditColumns + " FROM audit a JOIN runs r ON r.id = a.run_id" +
                            where.sql + " ORDER BY a.id DESC LIMIT ?");
    if (!s) return error(503, "reading the audit log: " + s.error().message);
    s->bind(where.bind(*s), *limit + 1);
    auto page = read_page(*s, *limit, audit_of);
    if (!page) return error(503, "reading the audit log: " + page.error());
    const json& entries = page->first;
    json next = page->second ? json(std::to_string(entries.back()["id"].get<std::int64_t>())) : json(nullptr);
    return json_ok(200, {{"entries", entries}, {"next_cursor", next}});
  }

  std::optional<HttpResponse> open_stream(const HttpRequest& request, std::int64_t& after);

  std::optional<std::string> events_after(std::int64_t& after, bool* full) {
    auto db = conn();
    if (!db) return std::nullopt;
    auto s = (**db).prepare(std::string("SELECT ") + kAuditColumns +
                            " FROM audit a JOIN runs r ON r.id = a.run_id WHERE a.id > ? ORDER BY a.id LIMIT " +
                            std::to_string(kEventBatch));
    if (!s) return std::nullopt;
    s->bind(1, after);
    std::string out;
    int rows = 0;
    while (true) {
      auto row = s->step();
      if (!row) return std::nullopt;
      if (!*row) break;
      ++rows;
      after = s->int64(0);
      out += "id: " + std::to_string(after) + "\nevent: audit\ndata: " +
             audit_of(*s).dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
    }
    if (full) *full = rows == kEventBatch;
    return out;
  }

  // ------------------------------------------------------------------------------------------
  // Delivery metrics

  std::vector<DeliveryFigures> delivery(std::chrono::seconds window, const std::string& host, const std::string& repo,
                                        const std::string& name, std::string* problem) {
    std::vector<DeliveryFigures> out;
    auto db = conn();
    if (!db) {
      *problem = db.error();
      return out;
    }
    const std::int64_t since = now_ms() - window.count() * 1000;
    // The runs that ended in the window: when each reached production (its run-level transition to
    // succeeded, which stays in the audit log when a rollback later fails the run) and when a stage
    // of it was rolled back.
    auto s = (**db).prepare(
        "SELECT host, repo, pipeline, status, created_at, finished_at, "
        "(SELECT MIN(finished_at) FROM run_stages WHERE run_id = runs.id AND rollback <> 'none') AS rolled_back, "
        "(SELECT MIN(at) FROM audit WHERE run_id = runs.id AND stage = '' AND to_state = 'succeeded') AS deployed "
        "FROM runs WHERE finished_at >= ?1 AND (CAST(?2 AS TEXT) IS NULL OR host = ?2) AND "
        "(CAST(?3 AS TEXT) IS NULL OR repo = ?3) AND (CAST(?4 AS TEXT) IS NULL OR pipeline = ?4) ORDER BY finished_at");
    if (!s) {
      *problem = s.error().message;
      return out;
    }
    s->bind(1, since);
    if (host.empty()) s->bind_null(2); else s->bind(2, host);
    if (repo.empty()) s->bind_null(3); else s->bind(3, repo);
    if (name.empty()) s->bind_null(4); else s->bind(4, name);
    // Events per pipeline: a deployment (with its lead time) or a failure, at a time.
    struct Event {
      std::int64_t at;
      bool failure;
      double lead;
    };
    std::map<std::tuple<std::string, std::string, std::string>, std::vector<Event>> events;
    std::map<std::tuple<std::string, std::string, std::string>, std::pair<std::int64_t, std::int64_t>> changes;
    while (true) {
      auto row = s->step();
      if (!row) {
        *problem = row.error().message;
        return {};
      }
      if (!*row) break;
      const bool failed = s->text(3) == "failed";
      const bool rolled_back = !s->is_null(6);
      const bool deployed = !s->is_null(7);
      if (!deployed && !failed && !rolled_back) continue;  // aborted or superseded: not a change
      auto key = std::tuple{s->text(0), s->text(1), s->text(2)};
      const std::int64_t created = s->int64(4), finished = s->int64(5);
      auto& ev = events[key];
      auto& [count, failures] = changes[key];
      ++count;
      if (deployed) ev.push_back({s->int64(7), false, static_cast<double>(s->int64(7) - created) / 1000.0});
      if (failed || rolled_back) {
        ++failures;
        ev.push_back({rolled_back ? std::max(s->int64(6), created) : finished, true, 0});
      }
    }
    for (auto& [key, ev] : events) {
      std::stable_sort(ev.begin(), ev.end(), [](const Event& a, const Event& b) { return a.at < b.at; });
      DeliveryFigures f;
      std::tie(f.host, f.repo, f.pipeline) = key;
      f.changes = changes[key].first;
      f.failed_changes = changes[key].second;
      std::optional<std::int64_t> broken_since;
      for (const auto& e : ev) {
        if (e.failure) {
          if (!broken_since) broken_since = e.at;
          continue;
        }
        ++f.deployments;
        f.lead_times.push_back(e.lead);
        if (broken_since) {
          f.restores.push_back(static_cast<double>(e.at - *broken_since) / 1000.0);
          broken_since.reset();
        }
      }
      out.push_back(std::move(f));
    }
    return out;
  }

  static json figures_json(const DeliveryFigures& f, std::chrono::seconds window) {
    const double days = static_cast<double>(window.count()) / 86400.0;
    json lead = nullptr, restore = nullptr;
    if (!f.lead_times.empty()) lead = {{"median", quantile(f.lead_times, 0.5)}, {"p90", quantile(f.lead_times, 0.9)}};
    if (!f.restores.empty()) restore = {{"median", quantile(f.restores, 0.5)}};
    return {{"host", f.host},
            {"repo", f.repo},
            {"pipeline", f.pipeline},
            {"deployments", f.deployments},
            {"deployments_per_day", static_cast<double>(f.deployments) / days},
            {"lead_time_seconds", lead},
            {"change_failure_rate",
             f.changes > 0 ? json(static_cast<double>(f.failed_changes) / static_cast<double>(f.changes)) : json(nullptr)},
            {"failed_changes", f.failed_changes},
            {"changes", f.changes},
            {"time_to_restore_seconds", restore}};
  }

  HttpResponse get_delivery(const HttpRequest& request) {
    auto q = parse_query(request.target, {"host", "repo", "pipeline", "window"});
    if (!q.problem.empty()) return error(400, q.problem);
    std::chrono::seconds window = std::chrono::hours(24 * 30);
    if (auto w = q.get("window")) {
      auto d = pipeline::parse_duration(*w);
      if (!d || d->count() < 60 || *d > std::chrono::hours(24 * 365)) {
        return error(400, "'window' must be a duration from 1m to 365d such as '7d' or '12h'; got '" + w->substr(0, 40) + "'" +
                              (d ? "" : " (" + d.error() + ")"));
      }
      window = *d;
    }
    std::string problem;
    auto figures = delivery(window, q.get("host").value_or(""), q.get("repo").value_or(""), q.get("pipeline").value_or(""),
                            &problem);
    if (!problem.empty()) return error(503, "reading the runs: " + problem);
    json pipelines = json::array();
    for (const auto& f : figures) pipelines.push_back(figures_json(f, window));
    return json_ok(200, {{"window_seconds", window.count()}, {"pipelines", pipelines}});
  }

  std::string metrics_text() {
    std::unique_lock lock(metrics_mutex);
    if (metrics_cache.empty()) {
      // The first scrape computes them (it runs once, at about start).
      lock.unlock();
      std::string fresh = render_delivery_metrics();
      lock.lock();
      metrics_cache = std::move(fresh);
      metrics_at = std::chrono::steady_clock::now();
      return metrics_cache;
    }
    if (std::chrono::steady_clock::now() - metrics_at >= std::chrono::seconds(30)) {
      if (!refresher.joinable()) refresher = std::thread([this] { refresh_loop(); });
      metrics_wanted = true;
      metrics_wake.notify_one();
    }
    return metrics_cache;
  }

  void refresh_loop() {
    std::unique_lock lock(metrics_mutex);
    while (true) {
      metrics_wake.wait(lock, [this] { return metrics_wanted || stopping; });
      if (stopping) return;
      metrics_wanted = false;
      lock.unlock();
      std::string fresh = render_delivery_metrics();
      lock.lock();
      metrics_cache = std::move(fresh);
      metrics_at = std::chrono::steady_clock::now();
    }
  }

  std::string render_delivery_metrics() {
    const std::chrono::seconds window = std::chrono::hours(24 * 30);
    std::string problem;
    auto figures = delivery(window, {}, {}, {}, &problem);
    std::string out;
    auto family = [&out](const char* name, const char* type, const char* help) {
      out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    };
    auto labels = [](const DeliveryFigures& f, const std::string& extra = {}) {
      return "{host=\"" + metrics_label(f.host) + "\",repo=\"" + metrics_label(f.repo) + "\",pipeline=\"" +
             metrics_label(f.pipeline) + "\"" + extra + "}";
    };
    auto number = [](double v) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.6g", v);
      return std::string(buf);
    };
    family("tollgate_delivery_deployments", "gauge", "Runs that reached production in the last 30 days.");
    for (const auto& f : figures) out += "tollgate_delivery_deployments" + labels(f) + " " + std::to_string(f.deployments) + "\n";
    family("tollgate_delivery_lead_time_seconds", "gauge",
           "Lead time from a run's start to its production promotion, over the last 30 days.");
    for (const auto& f : figures) {
      if (f.lead_times.empty()) continue;
      out += "tollgate_delivery_lead_time_seconds" + labels(f, ",quantile=\"0.5\"") + " " + number(quantile(f.lead_times, 0.5)) + "\n";
      out += "tollgate_delivery_lead_time_seconds" + labels(f, ",quantile=\"0.9\"") + " " + number(quantile(f.lead_times, 0.9)) + "\n";
    }
    family("tollgate_delivery_change_failure_rate", "gauge",
           "Changes that failed or were rolled back, as a fraction of changes, over the last 30 days.");
    for (const auto& f : figures) {
      if (f.changes == 0) continue;
      out += "tollgate_delivery_change_failure_rate" + labels(f) + " " +
             number(static_cast<double>(f.failed_changes) / static_cast<double>(f.changes)) + "\n";
    }
    family("tollgate_delivery_time_to_restore_seconds", "gauge",
           "Median time from a failed change to the next deployment, over the last 30 days.");
    for (const auto& f : figures) {
      if (f.restores.empty()) continue;
      out += "tollgate_delivery_time_to_restore_seconds" + labels(f, ",quantile=\"0.5\"") + " " +
             number(quantile(f.restores, 0.5)) + "\n";
    }
    if (!problem.empty()) log::warn("delivery metrics not computed", {{"error", problem}});
    return out;
  }

  // ------------------------------------------------------------------------------------------
  // Actions

  std::variant<json, HttpResponse> body_object(const HttpRequest& request, std::initializer_list<const char*> known) {
    if (request.body.empty()) return json::object();
    json body = json::parse(request.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return error(400, "the body must be a JSON object (or empty)");
    }
    for (const auto& [k, v] : body.items()) {
      if (std::find_if(known.begin(), known.end(), [&](const char* n) { return k == n; }) == known.end()) {
        std::string list;
        for (const char* n : known) list += std::string(list.empty() ? "" : ", ") + n;
        return error(400, "unknown field '" + k.substr(0, 40) + "' in the body (it takes: " + list + ")");
      }
      if (!v.is_string()) return error(400, "'" + k + "' must be a string");
    }
    return body;
  }

  HttpResponse act(const HttpRequest& request, const ApiToken* token, const std::string& run_id, const std::string& stage,
                   const std::string& action_name) {
    using K = pipeline::ApiAction::Kind;
    static const std::map<std::string, K, std::less<>> kActions{{"approve", K::approve}, {"unapprove", K::unapprove},
                                                                 {"hold", K::hold},       {"unhold", K::unhold},
                                                                 {"retry", K::retry},     {"rollback", K::rollback}};
    K kind = K::abort;
    if (!stage.empty() || action_name != "abort") {
      auto it = kActions.find(action_name);
      if (it == kActions.end()) {
        return error(404, "no stage action '" + action_name.substr(0, 40) +
                              "': use approve, unapprove, hold, unhold, retry or rollback (abort is POST /api/v1/runs/{id}/abort)");
      }
      kind = it->second;
    }
    auto parsed = body_object(request, {"reason"});
    if (auto* r = std::get_if<HttpResponse>(&parsed)) return *r;
    const json& body = std::get<json>(parsed);
    std::string reason = body.value("reason", "");
    if (reason.size() > 1000) return error(400, "'reason' is longer than 1000 characters");
    std::string key(request.header("idempotency-key"));
    if (key.size() > 100 || std::any_of(key.begin(), key.end(), [](char c) { return c < 0x21 || c > 0x7e; })) {
      return error(400, "the Idempotency-Key header must be 1 to 100 printable characters without spaces");
    }
    // The key is the client's, per token and per action: two clients choosing the same key do not
    // collide, and a key sent again with another action is another request.
    key = key.empty() ? random_key() : token->name + ":" + run_id + ":" + stage + ":" + action_name + ":" + key;
    if (!options.engine) return error(503, "the promotion engine is not running");
    pipeline::ApiAction action{kind, stage, "", reason, std::nullopt};
    auto outcome = options.engine->act(run_id, action, ApiActor{token->name, token->login}, key);
    if (auto failed = outcome_error(outcome)) return *failed;
    auto db = conn();
    if (!db) return error(503, db.error());
    auto run = run_detail(**db, run_id);
    if (!run || !*run) return error(503, "the action was applied, but the run cannot be read back");
    return json_ok(200, {{"run", **run}});
  }

  static bool is_sha(const std::string& s) {
    return (s.size() == 40 || s.size() == 64) && s.find_first_not_of("0123456789abcdef") == std::string::npos;
  }

  HttpResponse trigger(const HttpRequest& request, const ApiToken* token) {
    auto parsed = body_object(request, {"host", "repo", "sha", "branch", "pipeline"});
    if (auto* r = std::get_if<HttpResponse>(&parsed)) return *r;
    const json& body = std::get<json>(parsed);
    std::string host = body.value("host", "");
    const std::string repo = body.value("repo", "");
    const std::string sha = body.value("sha", "");
    const std::string branch = body.value("branch", "");
    const std::string pipeline_name = body.value("pipeline", "");
    const bool repo_chars = std::all_of(repo.begin(), repo.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '/' || c == '-' || c == '_' || c == '.';
    });
    if (repo.empty() || repo.size() > 255 || !repo_chars || repo.find('/') == std::string::npos || repo.front() == '/' ||
        repo.back() == '/' || repo.find("//") != std::string::npos) {
      return error(400, "'repo' must be the source repository as 'owner/name' (GitLab: 'group/subgroup/name'): letters, "
                        "digits, '-', '_', '.', at most 255 characters");
    }
    if (!is_sha(sha)) return error(400, "'sha' must be a full commit SHA (40 lower-case hex digits) of 'repo'");
    if (!branch.empty()) {
      if (branch.size() > 255) return error(400, "'branch' is longer than 255 characters");
      if (auto problem = pipeline::branch_name_problem(branch)) return error(400, "'branch' is not a branch name: " + *problem);
    }
    if (pipeline_name.size() > 200 ||
        std::any_of(pipeline_name.begin(), pipeline_name.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; })) {
      return error(400, "'pipeline' must be the name of a pipeline of the file (at most 200 characters, one line)");
    }
    if (host.empty()) {
      if (options.hosts.size() != 1) {
        return error(400, "'host' is required: several hosts are configured (" + std::to_string(options.hosts.size()) + ")");
      }
      host = options.hosts.front();
    } else if (std::find(options.hosts.begin(), options.hosts.end(), host) == options.hosts.end()) {
      return error(404, "no host '" + host.substr(0, 64) + "' is configured");
    }
    if (!options.engine) return error(503, "the promotion engine is not running");
    auto outcome = options.engine->trigger(host, repo, sha, branch, pipeline_name, ApiActor{token->name, token->login});
    if (auto failed = outcome_error(outcome)) return *failed;
    auto db = conn();
    if (!db) return error(503, db.error());
    json runs = json::array();
    for (const auto& id : outcome.runs) {
      auto s = summary(**db, id);
      if (s && *s) runs.push_back(std::move(**s));
    }
    return json_ok(outcome.created ? 201 : 200, {{"runs", runs}});
  }

  // ------------------------------------------------------------------------------------------
  // Routing

  HttpResponse dashboard_file(const HttpRequest& request, std::string_view path) {
    if (request.method != "GET") {
      auto r = error(405, "use GET for " + std::string(path.substr(0, 100)));
      r.allow = "GET";
      return r;
    }
    std::string_view name = path == "/" ? "index.html" : path.substr(8);  // after "/assets/"
    const std::string_view content = tollgate_dashboard::embedded(name);
    if (content.empty() || (path != "/" && name == "index.html")) {
      return error(404, "no dashboard file '" + std::string(path.substr(0, 100)) + "'");
    }
    const bool js = name.size() > 3 && name.substr(name.size() - 3) == ".js";
    const bool css = name.size() > 4 && name.substr(name.size() - 4) == ".css";
    HttpResponse r{200,
                   js    ? "text/javascript; charset=utf-8"
                   : css ? "text/css; charset=utf-8"
                         : "text/html; charset=utf-8",
                   std::string(content)};
    r.headers.emplace_back("Cache-Control", "no-cache");
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    if (!js && !css) {
      r.headers.emplace_back("Content-Security-Policy",
                             "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                             "connect-src 'self'; frame-ancestors 'none'");
    }
    return r;
  }

  HttpResponse handle(const HttpRequest& request) {
    std::string_view path = request.target;
    path = path.substr(0, path.find('?'));
    if (path == "/" || path.substr(0, 8) == "/assets/") return dashboard_file(request, path);
    if (path.substr(0, 6) == "/runs/") {
      // run.url in PRs and comments: the dashboard's run view.
      const std::string id(path.substr(6));
      if (id.empty() || id.size() > 64 || id.find_first_not_of("0123456789abcdefghijklmnopqrstuvwxyz-") != std::string::npos) {
        return error(404, "no run '" + id.substr(0, 64) + "'");
      }
      HttpResponse r{302, "text/plain; charset=utf-8", "see ../#/runs/" + id + "\n"};
      r.headers.emplace_back("Location", "../#/runs/" + id);
      return r;
    }
    if (path.substr(0, 8) != "/api/v1/") return error(404, "no such endpoint; the API is under /api/v1 (see docs/api.md)");
    std::vector<std::string> seg;
    for (auto part : split(path.substr(8), '/')) {
      auto d = webhooks::percent_decode(part, false);
      if (!d) return error(400, "malformed path: a '%' not followed by two hex digits");
      seg.push_back(std::move(*d));
    }
    const bool get = request.method == "GET";
    const bool post = request.method == "POST";
    auto method_not_allowed = [&](const char* allow) {
      auto r = error(405, std::string("use ") + allow + " for " + std::string(path.substr(0, 100)));
      r.allow = allow;
      return r;
    };
    // Which route, and its method.
    enum class Route { pipelines, runs, run, audit, delivery, abort, stage_action, none } route = Route::none;
    if (seg.size() == 1 && seg[0] == "pipelines") route = Route::pipelines;
    else if (seg.size() == 1 && seg[0] == "runs") route = Route::runs;
    else if (seg.size() == 2 && seg[0] == "runs" && !seg[1].empty()) route = Route::run;
    else if (seg.size() == 1 && seg[0] == "audit") route = Route::audit;
    else if (seg.size() == 1 && seg[0] == "delivery") route = Route::delivery;
    else if (seg.size() == 3 && seg[0] == "runs" && seg[2] == "abort") route = Route::abort;
    else if (seg.size() == 5 && seg[0] == "runs" && seg[2] == "stages" && !seg[3].empty()) route = Route::stage_action;
    if (route == Route::none) return error(404, "no such endpoint: " + std::string(path.substr(0, 100)) + " (see docs/api.md)");
    const bool is_post_route = route == Route::abort || route == Route::stage_action;
    if (is_post_route && !post) return method_not_allowed("POST");
    if (route == Route::runs && !get && !post) return method_not_allowed("GET, POST");
    if (!is_post_route && route != Route::runs && !get) return method_not_allowed("GET");
    const Access need = post ? Access::operate : Access::read;
    auto auth = authenticate(request, need);
    if (auto* r = std::get_if<HttpResponse>(&auth)) return *r;
    const ApiToken* token = std::get<const ApiToken*>(auth);
    switch (route) {
      case Route::pipelines: return list_pipelines(request);
      case Route::runs: return post ? trigger(request, token) : list_runs(request);
      case Route::run: return get_run(seg[1], request);
      case Route::audit: return list_audit(request);
      case Route::delivery: return get_delivery(request);
      case Route::abort: return act(request, token, seg[1], "", "abort");
      case Route::stage_action: return act(request, token, seg[1], seg[3], seg[4]);
      case Route::none: break;
    }
    return error(404, "no such endpoint");
  }
};

Api::Api(ApiOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Api::~Api() = default;

bool Api::owns(std::string_view path) {
  path = path.substr(0, path.find('?'));
  return path == "/" || path.substr(0, 8) == "/assets/" || path.substr(0, 6) == "/runs/" || path == "/api" ||
         path.substr(0, 5) == "/api/";
}

bool Api::is_event_stream(std::string_view path) { return path.substr(0, path.find('?')) == "/api/v1/events"; }

bool Api::admits(const HttpRequest& request, bool operate) {
  return std::holds_alternative<const ApiToken*>(impl_->authenticate(request, operate ? Impl::Access::operate : Impl::Access::read));
}

HttpResponse Api::handle(const HttpRequest& request) {
  try {
    return impl_->handle(request);
  } catch (const std::exception& e) {
    // A bug, not the client's fault: logged with the route, never with the request's headers.
    log::error("API request failed", {{"target", request.target.substr(0, 100)}, {"error", e.what()}});
    return error(500, "internal error while answering this request (logged)");
  }
}

std::optional<HttpResponse> Api::open_stream(const HttpRequest& request, std::int64_t& after) {
  try {
    return impl_->open_stream(request, after);
  } catch (const std::exception& e) {
    log::error("event stream failed", {{"error", e.what()}});
    return error(500, "internal error while opening the event stream (logged)");
  }
}

std::optional<HttpResponse> Api::Impl::open_stream(const HttpRequest& request, std::int64_t& after) {
  if (request.method != "GET") {
    auto r = error(405, "use GET for /api/v1/events");
    r.allow = "GET";
    return r;
  }
  auto q = parse_query(request.target, {});
  if (!q.problem.empty()) return error(400, q.problem);
  auto auth = authenticate(request, Access::read);
  if (auto* r = std::get_if<HttpResponse>(&auth)) return *r;
  std::string_view last = request.header("last-event-id");
  if (!last.empty()) {
    if (last.size() > 18 || last.find_first_not_of("0123456789") != std::string_view::npos) {
      return error(400, "Last-Event-ID must be the id of an event this stream sent");
    }
  }
  auto db = conn();
  if (!db) return error(503, db.error());
  auto s = (**db).prepare("SELECT COALESCE(MAX(id), 0) FROM audit");
  if (!s) return error(503, "reading the audit log: " + s.error().message);
  auto row = s->step();
  if (!row || !*row) return error(503, "reading the audit log");
  after = s->int64(0);
  // A client resumes where it left off; an id past the newest (a database restored from an older
  // backup) resumes from the newest, rather than staying silent until the ids catch up.
  if (!last.empty()) after = std::min<std::int64_t>(after, std::stoll(std::string(last)));
  return std::nullopt;
}

std::optional<std::string> Api::events_after(std::int64_t& after, bool* full) {
  try {
    return impl_->events_after(after, full);
  } catch (const std::exception& e) {
    log::error("event stream failed", {{"error", e.what()}});
    return std::nullopt;
  }
}

std::vector<DeliveryFigures> Api::delivery(std::chrono::seconds window, const std::string& host, const std::string& repo,
                                           const std::string& pipeline) {
  std::string problem;
  return impl_->delivery(window, host, repo, pipeline, &problem);
}

std::string Api::metrics_text() { return impl_->metrics_text(); }

}  // namespace tollgate::service
