#pragma once
// The service configuration (`tollgate serve --config tollgate.yaml`), read and checked at start:
// every problem is reported with its file, line, column and the key it concerns.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "pipeline/diagnostic.hpp"
#include "webhooks/event.hpp"

namespace tollgate::service {

// Holds a secret; never printed. Compare with constant_time_equal() or use value() at the edge.
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string v) : value_(std::move(v)) {}
  [[nodiscard]] const std::string& value() const { return value_; }
  [[nodiscard]] bool empty() const { return value_.empty(); }

 private:
  std::string value_;
};

struct AppAuth {
  std::int64_t id = 0;
  Secret private_key;  // PEM
};

struct HostConfig {
  std::string name;  // as in /hooks/<name>
  webhooks::HostKind kind = webhooks::HostKind::github;
  std::string api_url;
  std::vector<Secret> webhook_secrets;  // any one may sign a delivery (rotation)
  std::optional<Secret> token;
  std::optional<AppAuth> app;
  std::vector<std::string> repos;  // globs of owner/name; deliveries for others are refused
};

struct IntakeConfig {
  std::size_t max_body_bytes = 25 * 1024 * 1024;
  std::chrono::milliseconds header_timeout{10'000};  // to read the request line and headers
  std::chrono::milliseconds body_timeout{30'000};    // to read the body
  std::chrono::milliseconds idle_timeout{60'000};    // between requests on a keep-alive connection
  std::size_t max_connections = 1024;
  std::chrono::milliseconds shutdown_timeout{10'000};
  std::string sqlite_synchronous = "normal";  // normal: survives a crash of tollgate; full: of the machine
  // Bodies of deliveries done with are dropped once older than this (service/body_retention.hpp);
  // zero ("forever") keeps them.
  std::chrono::milliseconds keep_bodies{30LL * 24 * 3600 * 1000};
};

// The promotion engine's timings (DESIGN.md's defaults; tests shorten them).
struct EngineConfig {
  unsigned workers = 4;                              // job worker threads
  std::chrono::milliseconds resync_interval{300'000};  // re-read open promotion PRs (missed webhooks)
  std::chrono::milliseconds checks_settle{10'000};     // `checks: all` waits this long after a head push
  std::chrono::milliseconds merge_retry{60'000};       // after a 405
  std::chrono::milliseconds probe_interval{15'000};    // between verify probes
  std::chrono::milliseconds lease{30'000};             // a job's hold on it (renewed while it runs)
};

// A named bearer token of the REST API (docs/api.md).
struct ApiToken {
  std::string name;          // [a-z0-9][a-z0-9-]*: in logs and the audit log, never the token
  bool operator_role = false;  // read: GET only; operator: the POST actions too
  Secret token;
  std::string login;  // the host login it acts as (permission and teams read from the host); empty: none
};

struct ApiConfig {
  bool anonymous_read = false;  // GET /api/v1/... without a token
  std::vector<ApiToken> tokens;
};

struct Config {
  std::string file;  // where it was read from
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 8080;
  std::string database = "./tollgate.db";
  std::string data_dir = "./data";
  std::string public_url = "http://127.0.0.1:8080";
  std::map<std::string, HostConfig> hosts;
  IntakeConfig intake;
  EngineConfig engine;
  ApiConfig api;
};

// Reads and checks the file; paths inside it are relative to its directory. Secrets are read from
// the files and environment variables it names.
[[nodiscard]] tl::expected<Config, std::vector<pipeline::Diagnostic>> load_config(const std::string& path);

// The same, from text (tests); `dir` is where relative paths resolve.
[[nodiscard]] tl::expected<Config, std::vector<pipeline::Diagnostic>> parse_config(const std::string& text,
                                                                                   const std::string& file,
                                                                                   const std::string& dir);

}  // namespace tollgate::service
