#include "service/normalizer.hpp"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <vector>

#include "service/body_codec.hpp"
#include "service/body_retention.hpp"
#include "service/log.hpp"
#include "service/store.hpp"

namespace tollgate::service {

namespace {

nlohmann::json actor(const webhooks::Actor& a) { return {{"login", a.login}, {"bot", a.bot}}; }

nlohmann::json pr(const webhooks::PullRequest& p) {
  return {{"number", p.number},     {"url", p.url},           {"title", p.title},        {"head_ref", p.head_ref},
          {"head_sha", p.head_sha}, {"base_ref", p.base_ref}, {"author", actor(p.author)}};
}

struct ToJson {
  nlohmann::json operator()(const webhooks::PullRequestEvent& e) const {
    static const char* actions[] = {"opened", "merged", "closed_unmerged", "head_changed"};
    return {{"type", "pull_request"}, {"action", actions[static_cast<int>(e.action)]}, {"pr", pr(e.pr)},
            {"merge_sha", e.merge_sha}, {"sender", actor(e.sender)}};
  }
  nlohmann::json operator()(const webhooks::CommentEvent& e) const {
    return {{"type", "comment"}, {"pr", pr(e.pr)}, {"comment_id", e.comment_id}, {"author", actor(e.author)}, {"body", e.body}};
  }
  nlohmann::json operator()(const webhooks::ReviewEvent& e) const {
    static const char* states[] = {"approved", "changes_requested", "commented", "dismissed"};
    return {{"type", "review"}, {"state", states[static_cast<int>(e.state)]}, {"pr", pr(e.pr)},
            {"review_id", e.review_id}, {"commit_sha", e.commit_sha}, {"author", actor(e.author)}};
  }
  nlohmann::json operator()(const webhooks::StatusEvent& e) const {
    static const char* states[] = {"pending", "success", "failure", "error", "cancelled", "skipped", "neutral"};
    return {{"type", "status"}, {"sha", e.sha}, {"name", e.name}, {"state", states[static_cast<int>(e.state)]},
            {"url", e.url}, {"check_run", e.check_run}};
  }
  nlohmann::json operator()(const webhooks::PushEvent& e) const {
    return {{"type", "push"},      {"ref", e.ref},       {"before", e.before}, {"after", e.after},
            {"pusher", actor(e.pusher)}, {"changed_files", e.changed_files},
            {"changed_files_complete", e.changed_files_complete}, {"forced", e.forced}};
  }
};

}  // namespace

nlohmann::json to_json(const webhooks::Event& event) {
  auto j = std::visit(ToJson{}, event.payload);
  j["host"] = webhooks::to_string(event.host);
  j["repo"] = event.repo;
  return j;
}

Normalizer::Normalizer(std::string database, std::map<std::string, webhooks::HostKind> hosts)
    : database_(std::move(database)), hosts_(std::move(hosts)) {}

Normalizer::~Normalizer() { stop(); }

void Normalizer::start(Inbox& inbox) {
  inbox_ = &inbox;
  thread_ = std::thread([this] { loop(); });
}

void Normalizer::nudge() {
  commits_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  nudged_ = true;
  wake_.notify_one();
}

void Normalizer::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    wake_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

namespace {
constexpr std::string_view kLeaderLock = "tollgate:normalizer";
}  // namespace

void Normalizer::loop() {
  (void)::pthread_setname_np(::pthread_self(), "tg-normalize");
  // Intake first: answering deliveries fast matters more than processing them at once, so this
  // thread yields the CPU to the I/O threads under load and catches up when they are idle.
  (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
  auto db = store::Db::open(database_);
  if (!db) {
    log::error("normalizer cannot open the database", {{"error", db.error().message}});
    return;
  }
  // This connection only reads; checkpoints are the inbox's checkpointer's job (SQLite).
  if (auto r = db->kind() == store::Kind::sqlite ? db->exec("PRAGMA wal_autocheckpoint=0") : tl::expected<void, store::Error>{}; !r) {
    log::error("normalizer cannot configure its connection", {{"error", r.error().message}});
    return;
  }
  // Deliveries are processed in id order and each gets an outcome row, so the ones still waiting
  // are those after the last outcome (ids only grow and become visible in order: the inbox has one
  // writer, and on PostgreSQL the replicas' inboxes commit deliveries one after the other; rows are
  // never deleted).
  auto cursor_stmt = db->prepare("SELECT COALESCE(MAX(delivery), 0) FROM delivery_outcomes");
  auto select = db->prepare(
      "SELECT id, host, event, body, body_encoding, COALESCE(body_size, length(body)) FROM deliveries "
      "WHERE id > ? ORDER BY id LIMIT 256");
  if (!cursor_stmt || !select) {
    log::error("normalizer cannot prepare its statements", {{"error", (!cursor_stmt ? cursor_stmt.error() : select.error()).message}});
    return;
  }
  // On PostgreSQL every replica runs a normaliser, and one at a time works: the one holding the
  // lock (it passes to another when its replica dies, with the connection). Outcomes are then
  // written in id order by one process, which the cursor and the engine's event order rely on.
  const bool shared = db->kind() == store::Kind::postgres;
  bool leading = !shared;
  std::uint64_t led_session = 0;  // the connection's session that holds the lock
  std::int64_t cursor = 0;
  const auto read_cursor = [&] {
    if (auto row = cursor_stmt->step(); row && *row) cursor = cursor_stmt->int64(0);
    cursor_stmt->reset();
  };
  if (leading) read_cursor();
  struct Row {
    std::int64_t id;
    std::string host, event, body, encoding;
    std::int64_t size;
  };
  while (true) {
    {
      // Between batches: a backlog must not hold up shutdown; what is left is picked up at the
      // next start (outcomes are written in id order, so nothing is skipped or done twice).
      std::lock_guard lock(mutex_);
      if (stopping_) return;
    }
    if (shared && leading && db->session() != led_session) {
      leading = false;  // the connection was opened again: the lock went with the old one
      log::warn("the normaliser's connection was opened again; asking for the lead again");
    }
    if (!leading) {
      auto got = store::try_lock(*db, kLeaderLock);
      if (got && *got) {
        leading = true;
        led_session = db->session();
        read_cursor();  // where the previous leader stopped
        log::info("this replica normalises deliveries now", {{"after", cursor}});
      } else {
        if (!got) log::warn("normalizer cannot ask for the lead", {{"error", store::describe(got.error())}});
        std::unique_lock lock(mutex_);
        wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; });
        continue;
      }
    }
    std::vector<Row> rows;
    select->reset();
    select->bind(1, cursor);
    while (true) {
      auto step = select->step();
      if (!step || !*step) break;
      rows.push_back({select->int64(0), select->text(1), select->text(2), select->text(3), select->text(4),
                      select->int64(5)});
    }
    select->reset();
    if (!rows.empty()) {
      const auto batch_started = std::chrono::steady_clock::now();
      const auto commits_before = commits_.load(std::memory_order_relaxed);
      // Parsed and normalised here; the outcomes are written by the inbox's single writer, so
      // this thread never holds SQLite's write lock and the 202s never wait on it.
      std::vector<DeliveryOutcome> outcomes(rows.size());
      for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto& row = rows[i];
        auto& out = outcomes[i];
        out.delivery = row.id;
        out.state = "failed";
        [&] {
          auto host = hosts_.find(row.host);
          if (host == hosts_.end()) {
            out.error = "host '" + row.host + "' is no longer configured";
            return;
          }
          auto encoding = body_encoding_from(row.encoding);
          if (!encoding) {
            out.error = encoding.error();
            return;
          }
          auto body = decode_body(*encoding, row.body, static_cast<std::size_t>(std::max<std::int64_t>(row.size, 0)));
          if (!body) {
            out.error = body.error();
            return;
          }
          auto payload = nlohmann::json::parse(*body, nullptr, /*allow_exceptions=*/false);
          if (payload.is_discarded()) {
            out.error = "stored body is not JSON";
            return;
          }
          auto event = webhooks::normalize(host->second, row.event, payload);
          if (!event) {
            out.error = event.error().message;
          } else if (!*event) {
            out.state = "ignored";
          } else {
            out.state = "normalized";
            out.event_json = to_json(**event).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
          }
        }();
        if (out.state == "failed") {
          log::warn("delivery cannot be normalised", {{"id", row.id}, {"host", row.host}, {"event", row.event}, {"error", out.error}});
        }
      }
      std::promise<std::pair<bool, std::string>> recorded;
      auto result = recorded.get_future();
      inbox_->record(std::move(outcomes), [&recorded](bool ok, const std::string& error) { recorded.set_value({ok, error}); });
      auto [committed, error] = result.get();
      if (committed) {
        cursor = rows.back().id;
        if (on_recorded_) on_recorded_();
        // Intake first: while deliveries keep arriving (the inbox committed more than once during
        // this batch), rest up to nineteen times as long as the batch took, so normalising uses at
        // most about a twentieth of a core during a burst. It still progresses, and the rest ends
        // as soon as the burst does (no delivery committed for 100 ms): a slow batch (a sanitizer
        // build, a loaded machine) must not leave the backlog untouched for long after the burst;
        // inbox depth (/metrics) shows the backlog meanwhile.
        if (commits_.load(std::memory_order_relaxed) - commits_before > 1) {
          const auto until = std::chrono::steady_clock::now() + (std::chrono::steady_clock::now() - batch_started) * 19;
          auto seen = commits_.load(std::memory_order_relaxed);
          std::unique_lock lock(mutex_);
          while (!stopping_) {
            const auto now = std::chrono::steady_clock::now();
            if (now >= until) break;
            const auto slice = std::min<std::chrono::steady_clock::duration>(until - now, std::chrono::milliseconds(100));
            wake_.wait_for(lock, slice, [this] { return stopping_; });
            const auto deliveries_committed = commits_.load(std::memory_order_relaxed);
            if (deliveries_committed == seen) break;  // quiet: the burst is over
            seen = deliveries_committed;
          }
          if (stopping_) return;
        }
      } else {
        // The rows stay waiting and are read again; do not spin on a database that refuses writes.
        log::warn("normalizer could not record outcomes; retrying", {{"first", rows.front().id}, {"error", error}});
        std::unique_lock lock(mutex_);
        wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; });
        if (stopping_) return;
      }
      continue;  // there may be more
    }
    if (keep_bodies_.count() > 0 && std::chrono::steady_clock::now() >= next_drop_) drop_old_bodies(*db, cursor);
    std::unique_lock lock(mutex_);
    if (stopping_) return;
    wake_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stopping_ || nudged_; });
    nudged_ = false;
    if (stopping_) return;
  }
}

// Idle here means no delivery is waiting to be normalised. A pass drops bodies in steps of up to
// 500 (about 8 MB) and gives way to intake and normalising: it stops after a step once a delivery
// was committed here (a nudge), once one is waiting to be normalised (on PostgreSQL, committed by
// any replica), or after 200 ms. The next pass comes a second later if this one stopped early, else
// ten minutes on.
void Normalizer::drop_old_bodies(store::Db& db, std::int64_t cursor) {
  using namespace std::chrono;
  const auto started = steady_clock::now();
  const std::int64_t before_ms = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count() -
                                 keep_bodies_.count();
  auto waiting = db.prepare("SELECT 1 FROM deliveries WHERE id > ? LIMIT 1");
  BodiesDropped total;
  bool more = false;
  while (true) {
    auto dropped = service::drop_old_bodies(db, *inbox_, before_ms, 500);
    if (!dropped) {
      log::warn("old delivery bodies not dropped; trying again in a minute", {{"error", dropped.error()}});
      next_drop_ = steady_clock::now() + minutes(1);
      return;
    }
    total.through = dropped->through;
    total.rows += dropped->rows;
    total.bytes += dropped->bytes;
    total.held_by = dropped->held_by;
    total.held_because = dropped->held_because;
    if (dropped->rows == 0) break;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) break;
      more = nudged_;
    }
    if (!more && waiting) {
      waiting->reset();
      waiting->bind(1, cursor);
      auto row = waiting->step();
      more = row && *row;
      waiting->reset();
    }
    if (more || steady_clock::now() - started > milliseconds(200)) {
      more = true;
      break;
    }
  }
  if (total.rows > 0) {
    log::info("old delivery bodies dropped", {{"bodies", total.rows},
                                              {"bytes", total.bytes},
                                              {"through", total.through},
                                              {"ms", duration<double, std::milli>(steady_clock::now() - started).count()}});
  }
  if (!more && total.held_by) {
    // Once a pass (every ten minutes): what keeps older bodies, so that a stuck engine shows.
    log::info("old delivery bodies held back", {{"id", *total.held_by}, {"reason", total.held_because}, {"through", total.through}});
  }
  next_drop_ = steady_clock::now() + (more ? seconds(1) : minutes(10));
}

}  // namespace tollgate::service
