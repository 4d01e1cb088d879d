#include "service/host/rate_metrics.hpp"

#include <string_view>

namespace tollgate::service::host {

namespace {

std::string escape(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

std::string labels(const std::string& key) {
  constexpr std::string_view marker = " identity=";
  const auto at = key.find(marker);
  const std::string host = key.substr(0, at);
  const std::string identity = at == std::string::npos ? std::string() : key.substr(at + marker.size());
  return "host=\"" + escape(host) + "\",identity=\"" + escape(identity) + "\"";
}

}  // namespace

std::string rate_limit_metrics(const std::map<std::string, RateLimitState>& rates) {
  std::string out;
  const auto gauge = [&](const char* name, const char* help, auto value_of) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n";
    for (const auto& [key, r] : rates) {
      if (r.limit < 0 && r.remaining < 0) continue;
      out += std::string(name) + "{" + labels(key) + "} " + std::to_string(value_of(r)) + "\n";
    }
  };
  gauge("tollgate_host_rate_limit_limit", "Requests allowed in the host's rate-limit window (x-ratelimit-limit).",
        [](const RateLimitState& r) { return static_cast<long long>(r.limit); });
  gauge("tollgate_host_rate_limit_remaining", "Requests left in the host's rate-limit window (x-ratelimit-remaining).",
        [](const RateLimitState& r) { return static_cast<long long>(r.remaining); });
  gauge("tollgate_host_rate_limit_reset_timestamp_seconds", "When the window resets (x-ratelimit-reset, Unix time).",
        [](const RateLimitState& r) { return static_cast<long long>(r.reset_epoch); });
  out += "# HELP tollgate_host_rate_limit_waits_total Requests held back by a rate limit.\n"
         "# TYPE tollgate_host_rate_limit_waits_total counter\n";
  for (const auto& [key, r] : rates) {
    out += "tollgate_host_rate_limit_waits_total{" + labels(key) + ",kind=\"primary\"} " + std::to_string(r.primary_waits) + "\n";
    out += "tollgate_host_rate_limit_waits_total{" + labels(key) + ",kind=\"secondary\"} " + std::to_string(r.secondary_waits) + "\n";
  }
  return out;
}

}  // namespace tollgate::service::host
