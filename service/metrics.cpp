#include "service/metrics.hpp"

#include <sstream>

namespace tollgate::service {

std::string metrics_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void Metrics::count_delivery(std::string_view host, std::string_view event, std::string_view outcome) {
  auto key = std::tuple{host, event, outcome};
  auto it = deliveries_.find(key);
  if (it == deliveries_.end()) {
    it = deliveries_.emplace(std::tuple{std::string(host), std::string(event), std::string(outcome)}, 0).first;
  }
  ++it->second;
}

void Metrics::count_request(std::string_view route, int status) {
  auto it = requests_.find(std::tuple{route, status});
  if (it == requests_.end()) it = requests_.emplace(std::tuple{std::string(route), status}, 0).first;
  ++it->second;
}

void Metrics::observe_latency(double seconds) {
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++latency_buckets_[i];
  }
  ++latency_count_;
  latency_sum_ += seconds;
}

void Metrics::delivery(const std::string& host, const std::string& event, const std::string& outcome) {
  std::lock_guard lock(mutex_);
  count_delivery(host, event, outcome);
}

void Metrics::http_request(const std::string& route, int status) {
  std::lock_guard lock(mutex_);
  count_request(route, status);
}

void Metrics::answered_202(std::string_view host, std::string_view event, std::string_view outcome, double seconds) {
  std::lock_guard lock(mutex_);
  observe_latency(seconds);
  count_request("/hooks/{host}", 202);
  count_delivery(host, event, outcome);
}

void Metrics::connection_refused() {
  std::lock_guard lock(mutex_);
  ++refused_;
}

std::string Metrics::render(std::optional<std::int64_t> inbox_depth, std::optional<std::int64_t> requests_in_progress) const {
  std::ostringstream out;
  std::lock_guard lock(mutex_);
  out << "# HELP tollgate_deliveries_total Webhook deliveries by host, event and outcome.\n"
      << "# TYPE tollgate_deliveries_total counter\n";
  for (const auto& [k, n] : deliveries_) {
    out << "tollgate_deliveries_total{host=\"" << metrics_label(std::get<0>(k)) << "\",event=\"" << metrics_label(std::get<1>(k))
        << "\",outcome=\"" << metrics_label(std::get<2>(k)) << "\"} " << n << "\n";
  }
  out << "# HELP tollgate_intake_duration_seconds Time from a delivery's last byte to its answer.\n"
      << "# TYPE tollgate_intake_duration_seconds histogram\n";
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    out << "tollgate_intake_duration_seconds_bucket{le=\"" << kBuckets[i] << "\"} " << latency_buckets_[i] << "\n";
  }
  out << "tollgate_intake_duration_seconds_bucket{le=\"+Inf\"} " << latency_count_ << "\n"
      << "tollgate_intake_duration_seconds_sum " << latency_sum_ << "\n"
      << "tollgate_intake_duration_seconds_count " << latency_count_ << "\n";
  out << "# HELP tollgate_http_requests_total HTTP requests by route and status.\n"
      << "# TYPE tollgate_http_requests_total counter\n";
  for (const auto& [k, n] : requests_) {
    out << "tollgate_http_requests_total{route=\"" << metrics_label(std::get<0>(k)) << "\",status=\"" << std::get<1>(k) << "\"} " << n << "\n";
  }
  out << "# HELP tollgate_connections_refused_total Connections closed at once because the connection cap was reached.\n"
      << "# TYPE tollgate_connections_refused_total counter\n"
      << "tollgate_connections_refused_total " << refused_ << "\n";
  if (inbox_depth) {
    out << "# HELP tollgate_inbox_depth Deliveries stored but not yet processed.\n"
        << "# TYPE tollgate_inbox_depth gauge\n"
        << "tollgate_inbox_depth " << *inbox_depth << "\n";
  }
  if (requests_in_progress) {
    out << "# HELP tollgate_intake_requests_in_progress Webhook requests being read or checked: headers received, not yet queued for the inbox or refused.\n"
        << "# TYPE tollgate_intake_requests_in_progress gauge\n"
        << "tollgate_intake_requests_in_progress " << *requests_in_progress << "\n";
  }
  for (const auto& source : sources_) out << source();
  return out.str();
}

}  // namespace tollgate::service
