#pragma once
// An HTTP/1.1 client for Git host APIs: TLS, keep-alive pools, retries, rate limits, ETags.
// Beast stays in http_client.cpp (pimpl): this header is cheap to include.
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <tl/expected.hpp>

namespace tollgate::service::host {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string url{};  // absolute: http(s)://host[:port]/path?query
  Headers headers{};
  std::string body{};
  // A POST/PATCH the caller made safe to repeat (e.g. found-before-created, or an idempotency
  // key). GET, HEAD, PUT, DELETE and OPTIONS are retried anyway.
  bool retry_safe = false;
  // GETs send If-None-Match with the cached ETag; a 304 returns the cached body.
  bool conditional = true;
  std::optional<std::chrono::milliseconds> timeout{};  // per attempt; default: the client's
};

struct HttpResponse {
  int status = 0;
  Headers headers{};  // names in lower case
  std::string body{};
  bool from_cache = false;  // the server said 304 and the body is the cached one
  int attempts = 0;         // requests sent, retries included
  [[nodiscard]] std::string header(std::string_view lower_case_name) const;
};

enum class HttpErrorKind {
  bad_request,   // unusable URL or request
  connect,       // DNS or TCP connect failed
  tls,           // handshake or certificate verification failed
  proxy,         // the proxy refused the CONNECT
  timeout,       // no complete answer within the timeout
  reset,         // connection reset or closed before a complete answer
  protocol,      // not HTTP, or a body over the limit
  rate_limited,  // the quota would be back only after max_rate_limit_wait
  shutdown,      // the client is being destroyed
};

struct HttpError {
  HttpErrorKind kind{};
  std::string message{};  // one line; never contains header values
};

using HttpResult = tl::expected<HttpResponse, HttpError>;

[[nodiscard]] std::string_view to_string(HttpErrorKind kind);

// Quota as the host last reported it (x-ratelimit-*), per host and identity; -1 when never seen.
struct RateLimitState {
  long limit = -1;
  long remaining = -1;
  std::int64_t reset_epoch = 0;  // seconds
  std::uint64_t primary_waits = 0;
  std::uint64_t secondary_waits = 0;
};

// One attempt, for metrics and tests; carries no header values (tokens never leave the client).
struct AttemptInfo {
  std::string method{};
  std::string url{};
  int status = 0;  // 0: no answer
  int attempt = 1;
  std::string error{};                 // empty when answered
  std::chrono::milliseconds wait{};  // before the next attempt (0: none)
};

struct HttpClientOptions {
  std::chrono::milliseconds timeout{30'000};
  int max_attempts = 4;  // for 5xx, resets and timeouts
  std::chrono::milliseconds backoff_base{250};
  std::chrono::milliseconds backoff_max{16'000};
  // Secondary limit without retry-after: wait at least this, doubling on each repeat.
  std::chrono::milliseconds secondary_limit_min{60'000};
  int max_rate_limit_waits = 5;
  // A limit that would be lifted later than this is returned as an error instead of waited out.
  std::chrono::milliseconds max_rate_limit_wait{15 * 60'000};
  std::size_t max_per_host = 8;   // concurrent requests per host:port
  std::size_t max_idle_per_host = 8;
  std::chrono::milliseconds idle_timeout{4'000};  // below Node's and nginx's keep-alive timeouts
  std::string ca_file{};  // PEM bundle; empty: the system store
  std::optional<std::string> https_proxy{};  // nullopt: HTTPS_PROXY / https_proxy
  std::optional<std::string> no_proxy{};     // nullopt: NO_PROXY / no_proxy
  std::string user_agent = "tollgate";
  std::size_t etag_cache_entries = 2048;
  std::size_t body_limit = 64 * 1024 * 1024;
  std::function<void(const AttemptInfo&)> on_attempt{};  // called on the I/O thread
};

// Requests run on one I/O thread owned by the client; results come back through a callback (on
// that thread), a future, or the blocking request() for callers on other threads.
class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  void async_request(HttpRequest request, std::function<void(HttpResult)> done);
  [[nodiscard]] std::future<HttpResult> request_async(HttpRequest request);
  // Blocks until done; an error when called on the client's own I/O thread.
  [[nodiscard]] HttpResult request(HttpRequest request);

  // Key: "host:port", plus " identity=XXXXXXXX" (8 hex digits of the SHA-256 of the
  // Authorization value) for authenticated requests: quotas are per identity.
  [[nodiscard]] std::map<std::string, RateLimitState> rate_limits() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_{};
};

// Whether `host` matches a NO_PROXY list ("a.com,.b.org,10.0.0.1,*").
[[nodiscard]] bool no_proxy_matches(std::string_view no_proxy, std::string_view host);

}  // namespace tollgate::service::host
