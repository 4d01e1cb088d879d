#pragma once
// The REST API (/api/v1, docs/api.md), its live event stream and the dashboard's files. Requests
// come from the HTTP server already read; handle() reads the store on its own connections and
// hands actions to the engine, so it blocks: the server calls it off its I/O threads.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/engine.hpp"
#include "service/config.hpp"
#include "service/intake.hpp"

namespace tollgate::service {

class EngineService;

struct ApiOptions {
  std::string database;
  ApiConfig config;
  EngineService* engine = nullptr;  // null: the POST actions answer 503
  std::vector<std::string> hosts{};  // configured host names (a manual trigger names one)
  // Web link of a PR of a configured host (empty when unknown).
  std::function<std::string(const std::string& host, const std::string& repo, std::int64_t pr)> pr_url{};
  const pipeline::TimeZones* zones = nullptr;  // for `window.open`; null: UTC
  std::function<std::chrono::system_clock::time_point()> now{};  // null: the system clock
};

// The delivery metrics of one pipeline over a window (docs/api.md, GET /api/v1/delivery).
struct DeliveryFigures {
  std::string host, repo, pipeline;
  std::int64_t deployments = 0;
  std::int64_t changes = 0, failed_changes = 0;
  std::vector<double> lead_times;  // seconds, one per deployment
  std::vector<double> restores;    // seconds, one per restored failure
};

class Api {
 public:
  explicit Api(ApiOptions options);
  ~Api();
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  // Whether `path` is the API's or the dashboard's (/, /assets/..., /runs/{id}, /api/...).
  [[nodiscard]] static bool owns(std::string_view path);
  // Whether it is the event stream, which the server serves itself with events_after().
  [[nodiscard]] static bool is_event_stream(std::string_view path);

  // Answers one request (blocking: reads the store, may wait for the engine and the host).
  [[nodiscard]] HttpResponse handle(const HttpRequest& request);
  // Whether the request carries a token that may read (`operate`: act), or may read without one.
  // Cheap (no store): the server asks before giving a request one of its few action or stream
  // slots, so requests without a good token cannot take them.
  [[nodiscard]] bool admits(const HttpRequest& request, bool operate);

  // The event stream: nothing when the request may open it (the server then writes the stream),
  // else the error to answer. `after` receives where the stream starts: Last-Event-ID, or the
  // newest entry (a new client is sent what happens from now on).
  [[nodiscard]] std::optional<HttpResponse> open_stream(const HttpRequest& request, std::int64_t& after);
  // The audit entries written after `after` as server-sent events (at most 200), moving `after`
  // past them; empty when there are none. Nothing on a store error (the stream ends). `full`: the
  // batch was full, so more are waiting.
  [[nodiscard]] std::optional<std::string> events_after(std::int64_t& after, bool* full = nullptr);

  // Delivery metrics of every pipeline over the last `window` (figures for /metrics and the API).
  [[nodiscard]] std::vector<DeliveryFigures> delivery(std::chrono::seconds window, const std::string& host = {},
                                                      const std::string& repo = {}, const std::string& pipeline = {});
  // Prometheus text of the delivery metrics over 30 days. Computed on the first call; later calls
  // answer from a cache that a thread of its own refreshes when it is over 30 s old, so /metrics
  // (answered on an I/O thread) never waits for the query.
  [[nodiscard]] std::string metrics_text();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tollgate::service
