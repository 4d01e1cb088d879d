#include "service/normalizer.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <vector>

#include "service/log.hpp"
#include "service/sqlite.hpp"

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

void Normalizer::start() { thread_ = std::thread([this] { loop(); }); }

void Normalizer::nudge() {
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

void Normalizer::loop() {
  // Intake first: answering deliveries fast matters more than processing them at once, so this
  // thread yields the CPU to the I/O threads under load and catches up when they are idle.
  (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
  auto db = sqlite::Db::open(database_);
  if (!db) {
    log::error("normalizer cannot open the database", {{"error", db.error().message}});
    return;
  }
  auto select = db->prepare("SELECT id, host, event, body FROM deliveries WHERE state = 'new' ORDER BY id LIMIT 256");
  auto update = db->prepare("UPDATE deliveries SET state = ?, event_json = ?, error = ? WHERE id = ?");
  if (!select || !update) {
    log::error("normalizer cannot prepare its statements", {{"error", (!select ? select.error() : update.error()).message}});
    return;
  }
  struct Row {
    std::int64_t id;
    std::string host, event, body;
  };
  while (true) {
    std::vector<Row> rows;
    select->reset();
    while (true) {
      auto step = select->step();
      if (!step || !*step) break;
      rows.push_back({select->int64(0), select->text(1), select->text(2), select->text(3)});
    }
    select->reset();
    if (!rows.empty()) {
      // Parse and normalise first, outside any transaction: SQLite's write lock is then held only
      // for the updates, never while parsing, so the inbox writer (and the 202s) never wait on it.
      struct Outcome {
        std::string state = "failed", event_json, error;
      };
      std::vector<Outcome> outcomes(rows.size());
      for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto& row = rows[i];
        auto& out = outcomes[i];
        auto host = hosts_.find(row.host);
        if (host == hosts_.end()) {
          out.error = "host '" + row.host + "' is no longer configured";
          continue;
        }
        auto payload = nlohmann::json::parse(row.body, nullptr, /*allow_exceptions=*/false);
        if (payload.is_discarded()) {
          out.error = "stored body is not JSON";
          continue;
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
        if (out.state == "failed") {
          log::warn("delivery cannot be normalised", {{"id", row.id}, {"host", row.host}, {"event", row.event}, {"error", out.error}});
        }
      }
      if (db->exec("BEGIN IMMEDIATE")) {
        for (std::size_t i = 0; i < rows.size(); ++i) {
          const auto& out = outcomes[i];
          update->reset();
          update->bind(1, out.state);
          if (out.event_json.empty()) update->bind_null(2); else update->bind(2, out.event_json);
          if (out.error.empty()) update->bind_null(3); else update->bind(3, out.error);
          update->bind(4, rows[i].id);
          (void)update->step();
        }
        update->reset();
        if (!db->exec("COMMIT")) (void)db->exec("ROLLBACK");
      }
      continue;  // there may be more
    }
    std::unique_lock lock(mutex_);
    if (stopping_) return;
    wake_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stopping_ || nudged_; });
    nudged_ = false;
    if (stopping_) return;
  }
}

}  // namespace tollgate::service
