#include <catch2/catch.hpp>

#include "service/host/rate_metrics.hpp"

namespace host = tollgate::service::host;

TEST_CASE("rate limits are exported in the Prometheus text format per host and identity", "[http][metrics]") {
  std::map<std::string, host::RateLimitState> rates;
  rates["api.github.com:443 identity=0a1b2c3d"] = host::RateLimitState{.limit = 5000, .remaining = 4990, .reset_epoch = 1700000000,
                                                                        .primary_waits = 1, .secondary_waits = 2};
  rates["127.0.0.1:8080"] = host::RateLimitState{};  // never reported: no gauges, counters at 0
  const std::string text = host::rate_limit_metrics(rates);
  CHECK(text.find("# TYPE tollgate_host_rate_limit_remaining gauge\n") != std::string::npos);
  CHECK(text.find("tollgate_host_rate_limit_remaining{host=\"api.github.com:443\",identity=\"0a1b2c3d\"} 4990\n") != std::string::npos);
  CHECK(text.find("tollgate_host_rate_limit_limit{host=\"api.github.com:443\",identity=\"0a1b2c3d\"} 5000\n") != std::string::npos);
  CHECK(text.find("tollgate_host_rate_limit_reset_timestamp_seconds{host=\"api.github.com:443\",identity=\"0a1b2c3d\"} 1700000000\n") !=
        std::string::npos);
  CHECK(text.find("tollgate_host_rate_limit_waits_total{host=\"api.github.com:443\",identity=\"0a1b2c3d\",kind=\"secondary\"} 2\n") !=
        std::string::npos);
  CHECK(text.find("tollgate_host_rate_limit_remaining{host=\"127.0.0.1:8080\"") == std::string::npos);
  CHECK(text.find("tollgate_host_rate_limit_waits_total{host=\"127.0.0.1:8080\",identity=\"\",kind=\"primary\"} 0\n") != std::string::npos);
}
