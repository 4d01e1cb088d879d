#include "service/body_retention.hpp"

#include <vector>

namespace tollgate::service {

std::int64_t bodies_dropped_through(store::Db& db) {
  auto q = db.prepare("SELECT through FROM delivery_bodies_dropped WHERE id = 1");
  if (!q) return 0;  // schema 5 or older
  auto row = q->step();
  const std::int64_t through = row && *row ? q->int64(0) : 0;
  q->reset();
  return through;
}

tl::expected<BodiesDropped, std::string> drop_old_bodies(store::Db& reader, Inbox& inbox, std::int64_t before_ms,
                                                         int limit) {
  BodiesDropped result;
  result.through = bodies_dropped_through(reader);
  // The engine marks a delivery it applied as consumed ('delivery:<id>', engine_service.cpp).
  auto q = reader.prepare(
      "SELECT d.id, d.received_at, COALESCE(o.state, ''), "
      "CASE WHEN EXISTS (SELECT 1 FROM consumed c WHERE c.key = 'delivery:' || d.id) THEN 1 ELSE 0 END, length(d.body) "
      "FROM deliveries d LEFT JOIN delivery_outcomes o ON o.delivery = d.id WHERE d.id > ?1 ORDER BY d.id LIMIT ?2");
  if (!q) return tl::unexpected("cannot read the deliveries: " + q.error().message);
  q->bind(1, result.through).bind(2, static_cast<std::int64_t>(limit));
  std::int64_t upto = result.through;
  while (true) {
    auto row = q->step();
    if (!row) {
      q->reset();
      return tl::unexpected("cannot read the deliveries: " + row.error().message);
    }
    if (!*row) break;
    const std::string state = q->text(2);
    const bool done = state == "ignored" || state == "failed" || (state == "normalized" && q->int64(3) != 0);
    if (q->int64(1) >= before_ms || !done) break;
    upto = q->int64(0);
    ++result.rows;
    result.bytes += q->int64(4);
  }
  q->reset();
  if (result.rows == 0) return result;
  // What made these rows droppable never changes back (outcomes and consumed marks are only
  // added, received_at never changes), so reading outside the transaction is safe; the watermark
  // only moves forward (a second replica doing the same on PostgreSQL changes nothing).
  const std::int64_t from = result.through;
  auto error = inbox.transact_sync([from, upto](store::Db& db) -> std::string {
    // SQLite: the rows are written again rather than updated. An UPDATE that shrinks a row leaves
    // its page as it was, nearly empty, and new deliveries never go there (ids only grow): the
    // file would keep every page it ever had. REPLACE deletes and inserts, and the deletes merge
    // the emptied pages and free the rest for new deliveries (tests/service/inbox_test.cpp).
    // Every column is listed: a migration that adds one to deliveries must add it here.
    // PostgreSQL reuses the space of an UPDATE by itself (vacuum).
    const char* sql =
        db.kind() == store::Kind::sqlite
            ? "INSERT OR REPLACE INTO deliveries (id, host, delivery_id, event, repo, received_at, body, body_encoding, body_size) "
              "SELECT id, host, delivery_id, event, repo, received_at, ?1, 'identity', body_size FROM deliveries "
              "WHERE id > ?2 AND id <= ?3 ORDER BY id"
            : "UPDATE deliveries SET body = ?1, body_encoding = 'identity' WHERE id > ?2 AND id <= ?3";
    auto empty = db.prepare(sql);
    if (!empty) return empty.error().message;
    empty->bind_blob(1, std::string_view("", 0)).bind(2, from).bind(3, upto);
    if (auto r = empty->step(); !r) return r.error().message;
    auto mark = db.prepare("UPDATE delivery_bodies_dropped SET through = ?1 WHERE id = 1 AND through < ?1");
    if (!mark) return mark.error().message;
    mark->bind(1, upto);
    if (auto r = mark->step(); !r) return r.error().message;
    return {};
  });
  if (!error.empty()) return tl::unexpected("cannot drop old bodies: " + error);
  result.through = upto;
  return result;
}

}  // namespace tollgate::service
