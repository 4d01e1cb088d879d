#pragma once
// HttpClient::rate_limits() in the Prometheus text format, for /metrics.
#include <map>
#include <string>

#include "service/host/http_client.hpp"

namespace tollgate::service::host {

// Gauges tollgate_host_rate_limit_{limit,remaining,reset_timestamp_seconds} and the counter
// tollgate_host_rate_limit_waits_total{kind=primary|secondary}, labelled host="host:port" and
// identity="XXXXXXXX" (the credential fingerprint; empty when anonymous). Quotas never reported
// (-1) are left out.
[[nodiscard]] std::string rate_limit_metrics(const std::map<std::string, RateLimitState>& rates);

}  // namespace tollgate::service::host
