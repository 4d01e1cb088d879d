#pragma once
// Turns stored deliveries into Events, off the request path: a worker reads new inbox rows,
// normalises them (webhooks::normalize) and records the Event, or why it was ignored or failed.
// (The promotion engine consumes these Events in a later milestone.)
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "service/inbox.hpp"
#include "webhooks/event.hpp"

namespace tollgate::service {

class Normalizer {
 public:
  Normalizer(std::string database, std::map<std::string, webhooks::HostKind> hosts);
  ~Normalizer();
  void start(Inbox& inbox);  // outcomes are written through the inbox's writer
  void nudge();  // new deliveries were committed
  // Called (on the normaliser's thread) after each batch of outcomes is committed. Set before start().
  void on_recorded(std::function<void()> callback) { on_recorded_ = std::move(callback); }
  // intake.keep_bodies: while idle, this thread drops the bodies older than this of deliveries
  // done with (service/body_retention.hpp); zero keeps them. Set before start().
  void keep_bodies(std::chrono::milliseconds keep) { keep_bodies_ = keep; }
  void stop();   // finishes the batch in hand

 private:
  void loop();
  void drop_old_bodies(store::Db& db, std::int64_t cursor);
  std::string database_;
  Inbox* inbox_ = nullptr;
  std::map<std::string, webhooks::HostKind> hosts_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool nudged_ = false;
  std::atomic<std::uint64_t> commits_{0};  // inbox commits so far (nudges)
  std::function<void()> on_recorded_;
  std::chrono::milliseconds keep_bodies_{0};
  std::chrono::steady_clock::time_point next_drop_{};
  std::thread thread_;
};

[[nodiscard]] nlohmann::json to_json(const webhooks::Event& event);

}  // namespace tollgate::service
