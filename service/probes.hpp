#pragma once
// The service side of `verify` probes (DESIGN.md "verify"; docs/engine.md, "verifying" rows): the
// engine schedules a `verify_probe` job for an `http` or `prometheus` step and judges what comes
// back; these functions run one probe and say what they saw. They block (one request, at most
// `ProbeOptions::timeout` once the host name is resolved) and never throw on bad answers.
//
// Outcomes, and how the job runner reports them to the engine (JobResult::Outcome):
//   pass      -> ok            the check held
//   fail      -> probe_failed  the check did not hold: this is a verdict about the deployed service
//   retryable -> retryable     we could not look (the observer failed, not the service)
//   terminal  -> terminal      looking again cannot help: the step itself is wrong (the engine
//                              fails the stage at once, with `message`)
// The engine treats fail and retryable alike (the `for` streak restarts, the verify timeout
// decides); the difference is what the message and the audit log say.
//
// http (GET the rendered url, compare the status with `expect`):
//   - status == expect: pass; any other status, 5xx included: fail ("answered 503, expected 200").
//     Redirects are not followed (a 301 is a status like any other). A 429 (or a 403 the client
//     reads as a rate limit) is a fail too: the client does not wait it out.
//   - connection refused, DNS failure, timeout, reset, TLS failure, not HTTP, body over the limit:
//     fail. A health check is about the service answering: one that does not answer is unhealthy
//     (right after a merge it may still be rolling out; the streak and the timeout handle that).
//   - the proxy refused the CONNECT, or the HTTP client is shutting down: retryable (our side).
//   - the url template does not render, or renders to no usable http(s) url: terminal.
// prometheus (GET <url>/api/v1/query?query=<rendered query, percent-encoded>, Accept: JSON):
//   - every series (or the scalar) within the bounds: pass; `below: x` means value < x, `above: x`
//     means value > x, both: both. A value out of bounds, NaN, no series ("query returned no
//     series"): fail, naming the series that failed (the first four, and how many more).
//   - Prometheus unreachable (connect, timeout, reset, TLS); an answer that is not the API's JSON
//     envelope, unless it is a 4xx; a malformed envelope; `status: error` of type timeout /
//     canceled / unavailable / internal, or sent with a 5xx / 429 (Prometheus answers 503 when a
//     query times out): retryable. Prometheus being down says nothing about the deployed service.
//   - `status: error` otherwise (400 bad_data: the query does not parse; 422 execution: it cannot
//     run), a result that is a matrix or a string, a native histogram sample, no `below`/`above`,
//     an empty query, a 4xx that is not the API's JSON (wrong url, authentication; 408 and 429
//     excepted): terminal, with Prometheus's own message. A bad query does not fix itself.
//
// URLs (both steps' `url`, and the query, are templates; missing variables render empty): the
// rendered url is trimmed, and bytes that may not appear in a URL (spaces, quotes, non-ASCII,
// control characters) are percent-encoded, so a template value with a space cannot break the
// request line. Host names must be ASCII (no IDN). `user:password@` in a url is sent as HTTP Basic
// authentication. Messages are one line and never carry credentials or the probed url's query
// string (it may hold a token): `https://host/path?…`.
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "pipeline/model.hpp"

namespace tollgate::service {

namespace host {
class HttpClient;
}

// Template values for `{{release.version}}`, `{{stage.name}}`, ...: nested objects, as
// templates::render takes them ({"release": {"version": "1.2.3"}, "stage": {"name": "prod"}}).
using TemplateValues = nlohmann::json;

struct ProbeOptions {
  // Per request: connect, TLS handshake and the complete answer (DNS resolution excepted).
  std::chrono::milliseconds timeout{10'000};
  // A client to send the probes with. It should be one for probes only, with max_attempts = 1 and
  // max_rate_limit_waits = 0: a probe is one look, the engine polls again. Null: each probe uses a
  // private client set up so (and `ca_file`, `body_limit` below).
  host::HttpClient* client = nullptr;
  std::string ca_file{};                     // PEM bundle for https; empty: the system store
  std::size_t body_limit = 16 * 1024 * 1024;  // larger answers fail (http) / are retryable (prometheus)
};

struct ProbeResult {
  enum class Kind { pass, fail, retryable, terminal };
  Kind kind = Kind::fail;
  std::string message{};  // one line: what was seen against what was expected; never a secret
};

[[nodiscard]] const char* to_string(ProbeResult::Kind kind);

[[nodiscard]] ProbeResult run_http_probe(const pipeline::HttpStep& step, const TemplateValues& vars,
                                         const ProbeOptions& options = {});
[[nodiscard]] ProbeResult run_prometheus_probe(const pipeline::PrometheusStep& step, const TemplateValues& vars,
                                               const ProbeOptions& options = {});

// Helpers, exposed for tests.
// Percent-encodes everything but the unreserved characters (A-Z a-z 0-9 - . _ ~): a query value.
[[nodiscard]] std::string percent_encode_component(std::string_view text);

}  // namespace tollgate::service
