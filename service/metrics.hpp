#pragma once
// Prometheus metrics of the intake, rendered in the text exposition format for GET /metrics.
#include <array>
#include <atomic>
#include <functional>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace tollgate::service {

// A Prometheus label value: backslash, quote and newline escaped.
[[nodiscard]] std::string metrics_label(const std::string& value);

class Metrics {
 public:
  // outcome: stored, duplicate, ignored, ping, rejected_<status>, failed
  void delivery(const std::string& host, const std::string& event, const std::string& outcome);
  void http_request(const std::string& route, int status);
  void connection_refused();
  // A delivery answered 202 after the inbox committed it (stored or duplicate): its latency,
  // delivery() and http_request() in one go, under one lock.
  void answered_202(std::string_view host, std::string_view event, std::string_view outcome, double seconds);

  // `inbox_depth`: deliveries waiting to be processed, read at scrape time.
  // `requests_in_progress`: webhook requests being read or checked (Inbox::arriving_now).
  [[nodiscard]] std::string render(std::optional<std::int64_t> inbox_depth,
                                   std::optional<std::int64_t> requests_in_progress = std::nullopt) const;

  // More metrics, appended to render()'s (the promotion engine's); set before serving. Must be
  // cheap: it runs on an I/O thread.
  void add_source(std::function<std::string()> source) { sources_.push_back(std::move(source)); }

  static constexpr std::array<double, 12> kBuckets{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                                   0.05,   0.1,   0.25,  0.5,   1.0,  2.5};

 private:
  mutable std::mutex mutex_;
  // Transparent comparators: the hot path looks keys up by views, allocating only for a new series.
  std::map<std::tuple<std::string, std::string, std::string>, std::uint64_t, std::less<>> deliveries_;
  std::map<std::tuple<std::string, int>, std::uint64_t, std::less<>> requests_;
  void count_delivery(std::string_view host, std::string_view event, std::string_view outcome);
  void count_request(std::string_view route, int status);
  void observe_latency(double seconds);
  std::array<std::uint64_t, kBuckets.size()> latency_buckets_{};
  std::uint64_t latency_count_ = 0;
  double latency_sum_ = 0;
  std::uint64_t refused_ = 0;
  std::vector<std::function<std::string()>> sources_;
};

}  // namespace tollgate::service
