#pragma once
// tests/host/fixture_server.mjs started for one test: a GitLab- or Gitea-shaped API answering from
// tests/fixtures/hosts/, scripted per test, recording what the client sent.
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "service/host/http_client.hpp"
#include "tests/host/node_process.hpp"

namespace tollgate::tests {

class FixtureHost {
 public:
  // `flavor`: "gitlab" or "gitea"; API requests without `token` get the host's 401.
  explicit FixtureHost(const std::string& flavor, const std::string& token = "s3cret")
      : server_({std::string(TOLLGATE_SOURCE_DIR) + "/tests/host/fixture_server.mjs", "--flavor", flavor, "--token", token}),
        api_url(server_.ready()["api_url"].get<std::string>()),
        admin_url_(server_.ready()["admin_url"].get<std::string>()) {}

  // Answer `method path` (the encoded path after /api/v4 or /api/v1) with `status` and a fixture
  // file (relative to tests/fixtures/hosts/); `extra` adds query, patch, headers, body, text, once.
  void on(const std::string& method, const std::string& path, int status, const std::string& fixture,
          nlohmann::json extra = nlohmann::json::object()) {
    extra["method"] = method;
    extra["path"] = path;
    extra["status"] = status;
    if (!fixture.empty()) extra["fixture"] = fixture;
    admin("POST", "/routes", nlohmann::json::array({extra}));
  }

  // Requests seen (method, path, query, headers with credentials masked, body), oldest first.
  nlohmann::json requests() { return admin("GET", "/requests"); }
  nlohmann::json requests(const std::string& method, const std::string& path) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : requests())
      if (r["method"] == method && r["path"] == path) out.push_back(r);
    return out;
  }
  int count(const std::string& method, const std::string& path) { return static_cast<int>(requests(method, path).size()); }
  // The last request to `method path`; throws when there was none.
  nlohmann::json last(const std::string& method, const std::string& path) {
    auto all = requests(method, path);
    if (all.empty()) throw std::runtime_error("no request " + method + " " + path);
    return all.back();
  }
  void forget() { admin("POST", "/forget"); }
  void clear() { admin("POST", "/clear"); }

 private:
  nlohmann::json admin(const std::string& method, const std::string& path, const nlohmann::json& body = nullptr) {
    service::host::HttpRequest req{.method = method, .url = admin_url_ + path};
    if (!body.is_null()) {
      req.body = body.dump();
      req.headers = {{"Content-Type", "application/json"}};
    }
    auto res = client_.request(std::move(req));
    if (!res) throw std::runtime_error("fixture server " + path + ": " + res.error().message);
    if (res->status != 200) throw std::runtime_error("fixture server " + path + ": " + std::to_string(res->status) + " " + res->body);
    return nlohmann::json::parse(res->body);
  }

  NodeProcess server_;

 public:
  const std::string api_url;

 private:
  const std::string admin_url_;
  service::host::HttpClient client_{service::host::HttpClientOptions{.max_attempts = 1, .etag_cache_entries = 0}};
};

// Quick retries, no ETag cache: every call reaches the fixture server.
inline service::host::HttpClientOptions fixture_client_options() {
  using namespace std::chrono_literals;
  return service::host::HttpClientOptions{.max_attempts = 2, .backoff_base = 5ms, .backoff_max = 20ms, .etag_cache_entries = 0};
}

}  // namespace tollgate::tests
