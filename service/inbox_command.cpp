#include "service/inbox_command.hpp"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <ostream>

#include <nlohmann/json.hpp>

#include "service/body_codec.hpp"
#include "service/config.hpp"
#include "service/store.hpp"

namespace tollgate::cli {

using service::store::Db;

int run_inbox(const InboxArgs& args, std::ostream& out, std::ostream& err) {
  std::string path = args.database;
  if (path.empty()) {
    auto config = service::load_config(args.config.empty() ? "tollgate.yaml" : args.config);
    if (!config) {
      for (const auto& d : config.error()) err << pipeline::format_text(d) << "\n";
      return 2;
    }
    path = config->database;
  }
  if (!service::store::is_postgres(path) && !std::filesystem::is_regular_file(path)) {
    err << "tollgate inbox: error: database '" << path << "' does not exist (tollgate serve creates it)\n";
    return 2;
  }
  if (!args.state.empty() && args.state != "new" && args.state != "normalized" && args.state != "ignored" &&
      args.state != "failed") {
    err << "tollgate inbox: error: --state '" << args.state << "' is not one of new, normalized, ignored, failed\n";
    return 2;
  }
  auto db = Db::open(path);
  if (!db) {
    err << "tollgate inbox: error: database '" << service::store::redact(path) << "': " << db.error().message << "\n";
    return 2;
  }
  // Bodies of deliveries up to delivery_bodies_dropped.through were dropped for their age
  // (intake.keep_bodies): said so, not decoded. Read in the same statement as the rows, so that
  // bodies dropped meanwhile are not shown as broken ones. (Schema 5 and older: no such table.)
  const bool droppable = db->prepare("SELECT through FROM delivery_bodies_dropped").has_value();
  std::string with;
  std::string where = "(?1 = '' OR state = ?1) AND (?2 = '' OR delivery_id = ?2)";
  bool keyed = false;  // schema 5 or later (an older database is read as it is, not migrated)
  if (!args.delivery.empty() && db->kind() == service::store::Kind::sqlite) {
    if (auto t = db->prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'delivery_keys'"); t) {
      auto row = t->step();
      keyed = row && *row;
    }
  }
  if (keyed) {
    // SQLite's deliveries have no index on the delivery id (schema 5: service/inbox.cpp, Keys).
    // Rather than read every row, look the id up in delivery_keys, once per host (the hosts found
    // by skipping along its primary key), and among the deliveries not merged into it yet.
    with =
        "WITH RECURSIVE hosts(host) AS (SELECT (SELECT MIN(host) FROM delivery_keys) UNION ALL "
        "SELECT (SELECT MIN(host) FROM delivery_keys WHERE host > hosts.host) FROM hosts WHERE hosts.host IS NOT NULL) ";
    where +=
        " AND id IN (SELECT delivery FROM delivery_keys WHERE host IN (SELECT host FROM hosts) AND delivery_id = ?2 "
        "UNION ALL SELECT id FROM deliveries WHERE id > (SELECT COALESCE(MAX(through), 0) FROM delivery_keys_merged) "
        "AND delivery_id = ?2)";
  }
  std::string sql =
      "SELECT id, host, delivery_id, event, repo, received_at, state, error, event_json, body, body_encoding, "
      "COALESCE(body_size, length(body)), processed_at, " +
      std::string(droppable ? "(SELECT MAX(through) FROM delivery_bodies_dropped)" : "0") + " AS dropped_through FROM inbox WHERE " + where + " ORDER BY id DESC LIMIT ?3";
  auto q = db->prepare(with + "SELECT * FROM (" + sql + ") AS newest ORDER BY id");
  if (!q) {
    err << "tollgate inbox: error: database '" << service::store::redact(path) << "': " << q.error().message
        << " (a database from an older tollgate: start tollgate serve once to migrate it)\n";
    return 2;
  }
  q->bind(1, args.state).bind(2, args.delivery).bind(3, args.limit.value_or(std::numeric_limits<std::int64_t>::max()));  // no --limit: all
  constexpr auto replace = nlohmann::json::error_handler_t::replace;
  while (true) {
    auto step = q->step();
    if (!step) {
      err << "tollgate inbox: error: " << step.error().message << "\n";
      return 2;
    }
    if (!*step) break;
    nlohmann::json row{{"id", q->int64(0)},          {"host", q->text(1)},  {"delivery_id", q->text(2)},
                       {"event", q->text(3)},        {"repo", q->text(4)},  {"received_at", q->int64(5)},
                       {"state", q->text(6)}};
    if (!q->is_null(7)) row["error"] = q->text(7);
    if (!q->is_null(8)) {
      auto normalized = nlohmann::json::parse(q->text(8), nullptr, false);
      row["normalized"] = normalized.is_discarded() ? nlohmann::json(q->text(8)) : normalized;
    }
    if (!q->is_null(12)) row["processed_at"] = q->int64(12);
    row["body_size"] = q->int64(11);
    if (q->int64(0) <= q->int64(13)) {
      row["body_dropped"] = true;  // older than intake.keep_bodies and done with
    } else if (args.with_body) {
      auto encoding = service::body_encoding_from(q->text(10));
      auto body = encoding ? service::decode_body(*encoding, q->text(9), static_cast<std::size_t>(std::max<std::int64_t>(q->int64(11), 0)))
                           : tl::unexpected(encoding.error());
      if (body) {
        row["body"] = *body;
      } else {
        row["body_error"] = body.error();
      }
    }
    out << row.dump(-1, ' ', false, replace) << "\n";
  }
  return 0;
}

}  // namespace tollgate::cli
