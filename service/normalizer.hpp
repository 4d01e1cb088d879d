#pragma once
// Turns stored deliveries into Events, off the request path: a worker reads new inbox rows,
// normalises them (webhooks::normalize) and records the Event, or why it was ignored or failed.
// (The promotion engine consumes these Events in a later milestone.)
#include <atomic>
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
  void stop();   // finishes the batch in hand

 private:
  void loop();
  std::string database_;
  Inbox* inbox_ = nullptr;
  std::map<std::string, webhooks::HostKind> hosts_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool nudged_ = false;
  std::atomic<std::uint64_t> commits_{0};  // inbox commits so far (nudges)
  std::function<void()> on_recorded_;
  std::thread thread_;
};

[[nodiscard]] nlohmann::json to_json(const webhooks::Event& event);

}  // namespace tollgate::service
