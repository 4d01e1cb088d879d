#pragma once
// Dropping old bodies (service/body_retention.hpp), the same on SQLite and PostgreSQL: which
// deliveries lose their body, in which order, and what stays.
#include <chrono>
#include <future>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "service/body_codec.hpp"
#include "service/body_retention.hpp"
#include "service/inbox.hpp"
#include "service/store.hpp"

namespace retention_test {

using namespace tollgate::service;

inline std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

inline StoreResult store_one(Inbox& inbox, StoredDelivery d) {
  std::promise<StoreResult> p;
  auto f = p.get_future();
  inbox.store(std::move(d), [&p](StoreResult r, const std::string&) { p.set_value(r); });
  return f.get();
}

inline void record(Inbox& inbox, std::vector<DeliveryOutcome> outcomes) {
  std::promise<std::string> p;
  auto f = p.get_future();
  inbox.record(std::move(outcomes), [&p](bool ok, const std::string& error) { p.set_value(ok ? "" : error); });
  REQUIRE(f.get().empty());
}

inline void write(Inbox& inbox, const std::string& sql) {
  INFO(sql);
  REQUIRE(inbox.transact_sync([&sql](store::Db& db) -> std::string {
            auto r = db.exec(sql);
            return r ? "" : r.error().message;
          }) == "");
}

// id, length(body) and body_encoding of the delivery with this delivery id.
struct Row {
  std::int64_t id = 0, length = 0;
  std::string encoding;
};
inline Row row_of(store::Db& db, const std::string& delivery_id) {
  auto q = db.prepare("SELECT id, length(body), body_encoding FROM deliveries WHERE delivery_id = ?1");
  REQUIRE(q);
  q->bind(1, delivery_id);
  auto step = q->step();
  REQUIRE((step && *step));
  Row r{q->int64(0), q->int64(1), q->text(2)};
  q->reset();
  return r;
}

// delivery_bodies_dropped.through: every delivery up to it has had its body dropped.
inline std::int64_t dropped_through(store::Db& db) {
  auto q = db.prepare("SELECT through FROM delivery_bodies_dropped WHERE id = 1");
  REQUIRE(q);
  REQUIRE(q->step().value_or(false));
  const std::int64_t through = q->int64(0);
  q->reset();
  return through;
}

// Six deliveries: d1..d5 received 40 days ago, d6 now; a cutoff of 30 days.
inline void check_dropping(Inbox& inbox, store::Db& reader) {
  std::string json = "{\"items\":[";
  for (int i = 0; i < 200; ++i) json += (i ? "," : "") + std::string("{\"name\":\"item\",\"n\":") + std::to_string(i) + "}";
  json += "]}";
  const auto packed = encode_body(json);
  REQUIRE(packed.encoding == BodyEncoding::lz4);
  for (const char* id : {"d1", "d2", "d3", "d4", "d5", "d6"}) {
    REQUIRE(store_one(inbox, {"github", id, "push", "acme/app", packed.bytes, packed.encoding, packed.size}) == StoreResult::stored);
  }
  write(inbox, "UPDATE deliveries SET received_at = received_at - 3456000000 WHERE delivery_id <> 'd6'");
  const Row d1 = row_of(reader, "d1"), d2 = row_of(reader, "d2"), d3 = row_of(reader, "d3"), d4 = row_of(reader, "d4"),
            d5 = row_of(reader, "d5"), d6 = row_of(reader, "d6");
  CHECK(d1.length == static_cast<std::int64_t>(packed.bytes.size()));
  const std::int64_t before = now_ms() - 30LL * 24 * 3600 * 1000;

  const auto columns = [&reader] {
    auto q = reader.prepare("SELECT id, host, delivery_id, event, repo, received_at, body_size FROM deliveries ORDER BY id");
    REQUIRE(q);
    std::vector<std::string> rows;
    while (q->step().value_or(false)) {
      std::string row;
      for (int c = 0; c < 7; ++c) row += q->text(c) + "|";
      rows.push_back(row);
    }
    return rows;
  };
  const auto before_dropping = columns();
  REQUIRE(before_dropping.size() == 6);

  // Nothing is done with yet: no outcome at all.
  auto none = drop_old_bodies(reader, inbox, before, 500);
  REQUIRE(none);
  CHECK(none->rows == 0);
  CHECK(none->through == 0);
  CHECK(none->held_by == d1.id);
  CHECK(none->held_because == "not normalised yet");

  // d3 is normalised but the engine has not applied it: it holds back itself and what follows.
  record(inbox, {{d1.id, "ignored"}, {d2.id, "normalized", "{}"}, {d3.id, "normalized", "{}"}, {d4.id, "failed", "", "bad"},
                 {d5.id, "ignored"}, {d6.id, "ignored"}});
  write(inbox, "INSERT INTO consumed (key, at) VALUES ('delivery:" + std::to_string(d2.id) + "', 0)");
  auto first = drop_old_bodies(reader, inbox, before, 500);
  REQUIRE(first);
  CHECK(first->rows == 2);
  CHECK(first->through == d2.id);
  CHECK(first->bytes == 2 * static_cast<std::int64_t>(packed.bytes.size()));
  CHECK(row_of(reader, "d1").length == 0);
  CHECK(row_of(reader, "d1").encoding == "identity");
  CHECK(row_of(reader, "d2").length == 0);
  CHECK(row_of(reader, "d3").length == d3.length);
  CHECK(dropped_through(reader) == d2.id);
  CHECK(first->held_by == d3.id);
  CHECK(first->held_because == "normalised but not applied by the engine yet");
  auto again = drop_old_bodies(reader, inbox, before, 500);
  REQUIRE(again);
  CHECK(again->rows == 0);
  CHECK(again->held_by == d3.id);

  // Once applied, d3 goes, and the failed and ignored ones after it; d6 is too young. A byte
  // limit stops a step after the row that reaches it; a row limit after that many rows.
  write(inbox, "INSERT INTO consumed (key, at) VALUES ('delivery:" + std::to_string(d3.id) + "', 0)");
  auto capped = drop_old_bodies(reader, inbox, before, 500, 1);
  REQUIRE(capped);
  CHECK(capped->rows == 1);
  CHECK(capped->through == d3.id);
  CHECK_FALSE(capped->held_by);
  auto two = drop_old_bodies(reader, inbox, before, 2);
  REQUIRE(two);
  CHECK(two->rows == 2);
  CHECK(two->through == d5.id);
  CHECK_FALSE(two->held_by);
  auto rest = drop_old_bodies(reader, inbox, before, 2);
  REQUIRE(rest);
  CHECK(rest->rows == 0);
  CHECK(rest->through == d5.id);
  CHECK_FALSE(rest->held_by);  // stopped at d6, too young
  CHECK(row_of(reader, "d5").length == 0);
  CHECK(row_of(reader, "d6").length == d6.length);
  CHECK(dropped_through(reader) == d5.id);
  // With a cutoff in the future d6 goes too.
  auto last = drop_old_bodies(reader, inbox, now_ms() + 60000, 500);
  REQUIRE(last);
  CHECK(last->rows == 1);
  CHECK(last->through == d6.id);

  // The rows stay, every column but the body as it was (size as received included), and so do
  // the outcomes; a redelivery is still recognised.
  CHECK(columns() == before_dropping);
  CHECK(row_of(reader, "d6").length == 0);
  auto kept = reader.prepare("SELECT COUNT(*), MIN(body_size) FROM deliveries");
  REQUIRE(kept);
  REQUIRE(kept->step().value_or(false));
  CHECK(kept->int64(0) == 6);
  CHECK(kept->int64(1) == static_cast<std::int64_t>(json.size()));
  kept->reset();
  auto outcomes = reader.prepare("SELECT COUNT(*) FROM delivery_outcomes");
  REQUIRE(outcomes);
  REQUIRE(outcomes->step().value_or(false));
  CHECK(outcomes->int64(0) == 6);
  outcomes->reset();
  CHECK(store_one(inbox, {"github", "d1", "push", "acme/app", packed.bytes, packed.encoding, packed.size}) == StoreResult::duplicate);
}

}  // namespace retention_test
