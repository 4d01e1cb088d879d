#include "service/body_retention.hpp"

namespace tollgate::service {

namespace {

tl::expected<std::int64_t, std::string> watermark(store::Db& db) {
  auto q = db.prepare("SELECT through FROM delivery_bodies_dropped WHERE id = 1");
  if (!q) return tl::unexpected(q.error().message);
  auto row = q->step();
  if (!row) return tl::unexpected(row.error().message);
  if (!*row) return tl::unexpected(std::string("delivery_bodies_dropped has no row"));
  const std::int64_t through = q->int64(0);
  q->reset();
  return through;
}

}  // namespace

tl::expected<BodiesDropped, std::string> drop_old_bodies(store::Db& reader, Inbox& inbox, std::int64_t before_ms,
                                                         int limit, std::int64_t max_bytes) {
  BodiesDropped result;
  auto through = watermark(reader);
  if (!through) return tl::unexpected("cannot read how far bodies were dropped: " + through.error());
  result.through = *through;
  // A delivery the engine applied is marked consumed under kDeliveryConsumedPrefix + its id.
  auto q = reader.prepare(
      "SELECT d.id, d.received_at, COALESCE(o.state, ''), "
      "CASE WHEN EXISTS (SELECT 1 FROM consumed c WHERE c.key = CAST(?3 AS TEXT) || d.id) THEN 1 ELSE 0 END, "
      "length(d.body) FROM deliveries d LEFT JOIN delivery_outcomes o ON o.delivery = d.id "
      "WHERE d.id > ?1 ORDER BY d.id LIMIT ?2");
  if (!q) return tl::unexpected("cannot read the deliveries: " + q.error().message);
  q->bind(1, result.through).bind(2, static_cast<std::int64_t>(limit)).bind(3, kDeliveryConsumedPrefix);
  std::int64_t upto = result.through;
  while (result.bytes < max_bytes) {
    auto row = q->step();
    if (!row) {
      q->reset();
      return tl::unexpected("cannot read the deliveries: " + row.error().message);
    }
    if (!*row) break;
    if (q->int64(1) >= before_ms) break;
    const std::string state = q->text(2);
    if (state.empty() || (state == "normalized" && q->int64(3) == 0)) {
      result.held_by = q->int64(0);
      result.held_because = state.empty() ? "not normalised yet" : "normalised but not applied by the engine yet";
      break;
    }
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
    // file would keep every page it ever had. REPLACE deletes each row and inserts it again; the
    // deletes merge the emptied pages and free the rest for new deliveries
    // (tests/service/inbox_test.cpp). That holds because deliveries is the parent of a foreign
    // key (delivery_outcomes) and the writer has foreign keys on: otherwise SQLite overwrites a
    // replaced row in place, as an UPDATE does. PostgreSQL reuses an UPDATE's space by itself
    // (vacuum).
    const std::string sql =
        db.kind() == store::Kind::sqlite
            ? "INSERT OR REPLACE INTO deliveries (" + std::string(kDeliveryColumns) +
                  ") SELECT id, host, delivery_id, event, repo, received_at, ?1, 'identity', body_size FROM deliveries "
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
