#pragma once
// The test Git host (tests/githost/server.mjs) started for one test, with an organisation, users
// and an environment repository, scripted through its admin API.
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "service/host/github_host.hpp"
#include "service/host/http_client.hpp"
#include "tests/host/node_process.hpp"

namespace tollgate::tests {

namespace host = tollgate::service::host;

class World {
 public:
  World() : githost_({std::string(TOLLGATE_SOURCE_DIR) + "/tests/githost/server.mjs", "--exit-on-stdin-close"}) {
    api_url = githost_.ready()["api_url"].get<std::string>();
    admin("POST", "/orgs", {{"login", "acme"}});
    for (const char* login : {"tollgate-bot", "alice", "bob"}) {
      auto u = admin("POST", "/users", {{"login", login}, {"x_access_token", std::string(login) == "tollgate-bot"}});
      tokens[login] = u["token"].get<std::string>();
    }
    admin("POST", "/orgs/acme/teams", {{"name", "SRE"}, {"slug", "sre"}, {"members", {{"alice", "member"}}}});
    auto created = admin("POST", "/repos",
                      {{"owner", "acme"},
                       {"name", "env-dev"},
                       {"files", {{"apps/payments/values.yaml", "image:\n  tag: v1\n"}, {"README.md", "# env-dev\n"}}},
                       {"branches",
                        {{"tollgate/payments/dev/1", {{"files", {{"apps/payments/values.yaml", "image:\n  tag: v2\n"}}}}},
                         {"tollgate/payments/dev/2", {{"files", {{"apps/payments/values.yaml", "image:\n  tag: v3\n"}}}}}}},
                       {"collaborators", {{"tollgate-bot", "write"}, {"alice", "admin"}, {"bob", "triage"}}}});
    main_sha = created["branches"]["main"].get<std::string>();
  }

  // An admin API call; throws on a non-2xx answer (test setup, not the code under test).
  nlohmann::json admin(const std::string& method, const std::string& path, const nlohmann::json& body = nullptr) {
    host::HttpRequest req{.method = method, .url = api_url + "/_admin" + path};
    if (!body.is_null()) {
      req.body = body.dump();
      req.headers = {{"Content-Type", "application/json"}};
    }
    auto res = admin_client_.request(std::move(req));
    if (!res) throw std::runtime_error("admin " + path + ": " + res.error().message);
    if (res->status >= 300) throw std::runtime_error("admin " + path + ": " + std::to_string(res->status) + " " + res->body);
    return res->body.empty() ? nlohmann::json() : nlohmann::json::parse(res->body);
  }

  // API requests the host saw (method, path, status, fault) since the last clear.
  nlohmann::json requests() { return admin("GET", "/requests"); }
  int count_requests(const std::string& method, const std::string& path_regex_free_suffix) {
    int n = 0;
    for (const auto& r : requests()) {
      const std::string p = r["path"].get<std::string>();
      if (r["method"] == method && p.substr(0, p.find('?')).ends_with(path_regex_free_suffix)) ++n;
    }
    return n;
  }

  std::unique_ptr<host::GitHubHost> github(host::HttpClient& client, const std::string& login = "tollgate-bot") {
    return std::make_unique<host::GitHubHost>(client, std::make_shared<host::StaticToken>(tokens.at(login)),
                                              host::GitHubHostOptions{.api_url = api_url});
  }

  std::string api_url;
  std::string main_sha;
  std::map<std::string, std::string> tokens;
  const host::RepoRef repo{"acme", "env-dev"};

 private:
  NodeProcess githost_;
  host::HttpClient admin_client_{host::HttpClientOptions{.max_attempts = 1, .etag_cache_entries = 0}};
};

// Fast retries and rate-limit waits, so fault tests take milliseconds to seconds.
inline host::HttpClientOptions fast_options() {
  return host::HttpClientOptions{.timeout = std::chrono::milliseconds(5'000),
                                 .max_attempts = 4,
                                 .backoff_base = std::chrono::milliseconds(20),
                                 .backoff_max = std::chrono::milliseconds(200),
                                 .secondary_limit_min = std::chrono::milliseconds(300)};
}

}  // namespace tollgate::tests
