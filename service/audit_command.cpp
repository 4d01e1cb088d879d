#include "service/audit_command.hpp"

#include <filesystem>
#include <limits>
#include <ostream>

#include <nlohmann/json.hpp>

#include "service/config.hpp"
#include "service/store.hpp"

namespace tollgate::cli {

namespace {

using service::store::Db;
using json = nlohmann::json;

// Opens the database of `args` (from --database, or the configuration's `database`).
std::optional<Db> open_database(const AuditArgs& args, const char* command, std::ostream& err) {
  std::string path = args.database;
  if (path.empty()) {
    auto config = service::load_config(args.config.empty() ? "tollgate.yaml" : args.config);
    if (!config) {
      for (const auto& d : config.error()) err << pipeline::format_text(d) << "\n";
      return std::nullopt;
    }
    path = config->database;
  }
  if (!service::store::is_postgres(path) && !std::filesystem::is_regular_file(path)) {
    err << "tollgate " << command << ": error: database '" << path << "' does not exist (tollgate serve creates it)\n";
    return std::nullopt;
  }
  auto db = Db::open(path);
  if (!db) {
    err << "tollgate " << command << ": error: database '" << service::store::redact(path) << "': " << db.error().message << "\n";
    return std::nullopt;
  }
  return std::move(*db);
}

// Runs a query and prints each row as a JSON line built by `row`. 2 on errors.
template <typename Row>
int print_rows(Db& db, const std::string& sql, const AuditArgs& args, const char* command, std::ostream& out,
               std::ostream& err, Row row) {
  auto q = db.prepare(sql);
  if (!q) {
    err << "tollgate " << command << ": error: " << q.error().message
        << " (a database from an older tollgate: start tollgate serve once to migrate it)\n";
    return 2;
  }
  // No --limit: every row (SQLite reads LIMIT -1 so, PostgreSQL refuses it).
  q->bind(1, args.run).bind(2, args.status).bind(3, args.limit.value_or(std::numeric_limits<std::int64_t>::max()));
  while (true) {
    auto step = q->step();
    if (!step) {
      err << "tollgate " << command << ": error: " << step.error().message << "\n";
      return 2;
    }
    if (!*step) break;
    out << row(*q).dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  }
  return 0;
}

}  // namespace

int run_runs(const AuditArgs& args, std::ostream& out, std::ostream& err) {
  auto db = open_database(args, "runs", err);
  if (!db) return 2;
  const std::string sql =
      "SELECT * FROM (SELECT id, host, repo, pipeline, status, definition_sha, state, created_at, updated_at, finished_at "
      "FROM runs WHERE (?1 = '' OR id = ?1) AND (?2 = '' OR status = ?2) ORDER BY created_at DESC, id DESC LIMIT ?3) "
      "AS newest ORDER BY created_at, id";
  return print_rows(*db, sql, args, "runs", out, err, [](const service::store::Stmt& q) {
    json row{{"id", q.text(0)},     {"host", q.text(1)},           {"repo", q.text(2)},
             {"pipeline", q.text(3)}, {"status", q.text(4)},       {"sha", q.text(5)},
             {"created_at", q.int64(7)}, {"updated_at", q.int64(8)}};
    if (!q.is_null(9)) row["finished_at"] = q.int64(9);
    // The stages in brief; the whole state is in the database (runs.state) for deeper digging.
    const json state = json::parse(q.text(6), nullptr, false);
    json stages = json::array();
    if (state.is_object() && state.contains("stages") && state["stages"].is_array()) {
      for (const auto& st : state["stages"]) {
        if (!st.is_object()) continue;
        json s{{"name", st.value("name", "")}, {"status", st.value("status", "")}};
        if (st.value("pr", 0) > 0) s["pr"] = st["pr"];
        if (!st.value("failure", std::string{}).empty()) s["failure"] = st["failure"];
        stages.push_back(std::move(s));
      }
    }
    row["stages"] = std::move(stages);
    return row;
  });
}

int run_audit(const AuditArgs& args, std::ostream& out, std::ostream& err) {
  auto db = open_database(args, "audit", err);
  if (!db) return 2;
  const std::string sql =
      "SELECT * FROM (SELECT id, run_id, seq, at, stage, from_state, to_state, actor, reason, input FROM audit "
      "WHERE (?1 = '' OR run_id = ?1) AND CAST(?2 AS TEXT) = CAST(?2 AS TEXT) ORDER BY id DESC LIMIT ?3) AS newest ORDER BY id";
  int rc = print_rows(*db, sql, args, "audit", out, err, [](const service::store::Stmt& q) {
    json row{{"run", q.text(1)}, {"seq", q.int64(2)}, {"at", q.int64(3)}, {"stage", q.text(4)}, {"from", q.text(5)},
             {"to", q.text(6)},  {"actor", q.text(7)}, {"reason", q.text(8)}};
    if (!q.is_null(9)) row["input"] = q.text(9);
    return row;
  });
  if (rc != 0 || !args.jobs) return rc;
  // Side effects: every job of the run (or all runs), with its outcome.
  const std::string jobs_sql =
      "SELECT * FROM (SELECT id, run_id, kind, stage, state, attempts, last_error, created_at, finished_at, key FROM jobs "
      "WHERE (?1 = '' OR run_id = ?1) AND CAST(?2 AS TEXT) = CAST(?2 AS TEXT) ORDER BY id DESC LIMIT ?3) AS newest ORDER BY id";
  return print_rows(*db, jobs_sql, args, "audit", out, err, [](const service::store::Stmt& q) {
    json row{{"job", q.int64(0)},   {"run", q.text(1)},      {"kind", q.text(2)},       {"stage", q.text(3)},
             {"state", q.text(4)},  {"attempts", q.int64(5)}, {"created_at", q.int64(7)}, {"key", q.text(9)}};
    if (!q.is_null(6)) row["error"] = q.text(6);
    if (!q.is_null(8)) row["finished_at"] = q.int64(8);
    return row;
  });
}

}  // namespace tollgate::cli
