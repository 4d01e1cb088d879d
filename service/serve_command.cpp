#include "service/serve_command.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>

#include "pipeline/glob.hpp"
#include "service/api.hpp"
#include "service/config.hpp"
#include "service/engine_service.hpp"
#include "service/git/git_writer.hpp"
#include "service/host/gitea_host.hpp"
#include "service/host/github_host.hpp"
#include "service/host/gitlab_host.hpp"
#include "service/host/http_client.hpp"
#include "service/host/token_source.hpp"
#include "service/store.hpp"
#include "service/tz.hpp"
#include "service/http_server.hpp"
#include "service/inbox.hpp"
#include "service/intake.hpp"
#include "service/log.hpp"
#include "service/metrics.hpp"
#include "service/normalizer.hpp"

namespace tollgate::cli {

namespace {

using namespace tollgate::service;

// The API clients of the configured hosts that have a token: the promotion engine acts only
// through those (a host with webhook secrets only is intake without promotions).
struct HostClients {
  std::vector<std::unique_ptr<host::Host>> owned;
  std::map<std::string, EngineHost> engine;
};

HostClients make_host_clients(const Config& config, host::HttpClient& client) {
  HostClients out;
  for (const auto& [name, hc] : config.hosts) {
    if (!hc.token) {
      log::warn(hc.app ? "host uses a GitHub App, which promotions do not support yet: intake only"
                       : "host has no token: intake only, no promotions",
                {{"host", name}});
      continue;
    }
    auto auth = std::make_shared<host::StaticToken>(hc.token->value());
    std::unique_ptr<host::Host> api;
    std::string git_user;
    switch (hc.kind) {
      case webhooks::HostKind::github:
        api = std::make_unique<host::GitHubHost>(client, auth, host::GitHubHostOptions{.api_url = hc.api_url});
        git_user = "x-access-token";
        break;
      case webhooks::HostKind::gitlab:
        api = std::make_unique<host::GitLabHost>(client, auth, host::GitLabHostOptions{.api_url = hc.api_url});
        git_user = "oauth2";
        break;
      case webhooks::HostKind::gitea:
        api = std::make_unique<host::GiteaHost>(client, auth, host::GiteaHostOptions{.api_url = hc.api_url});
        git_user = "tollgate";
        break;
    }
    EngineHost eh;
    eh.kind = hc.kind;
    eh.api = api.get();
    if (auto me = api->current_user(); me) {
      eh.bot_login = *me;
      if (hc.kind == webhooks::HostKind::gitea) git_user = *me;
    } else {
      log::warn("cannot read the token's user: its own merges and comments are recognised as 'tollgate'",
                {{"host", name}, {"error", me.error().message}});
    }
    const std::string token = hc.token->value();
    eh.credentials = [git_user, token] { return git::Credentials{git_user, token}; };
    // Clone URLs and default branches as the host's API reports them, read once per repository.
    auto repos = std::make_shared<std::pair<std::mutex, std::map<std::string, host::Repository>>>();
    host::Host* raw = api.get();
    auto repository = [repos, raw](const std::string& repo) -> host::Repository {
      {
        std::lock_guard lock(repos->first);
        if (auto it = repos->second.find(repo); it != repos->second.end()) return it->second;
      }
      const auto slash = repo.rfind('/');
      auto info = raw->get_repository(host::RepoRef{repo.substr(0, slash == std::string::npos ? 0 : slash),
                                                    slash == std::string::npos ? repo : repo.substr(slash + 1)});
      if (!info) return {};
      std::lock_guard lock(repos->first);
      repos->second[repo] = *info;
      return *info;
    };
    eh.clone_url = [repository](const std::string& repo) { return repository(repo).clone_url; };
    eh.default_branch = [repository](const std::string& repo) { return repository(repo).default_branch; };
    // Web links to a PR: GitHub /pull/N, GitLab /-/merge_requests/N, Gitea /pulls/N.
    const char* pr_segment = hc.kind == webhooks::HostKind::gitlab ? "/-/merge_requests/"
                             : hc.kind == webhooks::HostKind::gitea ? "/pulls/"
                                                                     : "/pull/";
    eh.pr_url = [repository, pr_segment](const std::string& repo, std::int64_t pr) {
      auto web = repository(repo).html_url;
      if (web.empty() || pr <= 0) return std::string{};
      return web + pr_segment + std::to_string(pr);
    };
    // The API's links: from what the engine already read, never a request to the host (a host
    // that is down must not slow the dashboard).
    eh.cached_pr_url = [repos, pr_segment](const std::string& repo, std::int64_t pr) {
      std::lock_guard lock(repos->first);
      auto it = repos->second.find(repo);
      if (it == repos->second.end() || it->second.html_url.empty() || pr <= 0) return std::string{};
      return it->second.html_url + pr_segment + std::to_string(pr);
    };
    out.engine.emplace(name, std::move(eh));
    out.owned.push_back(std::move(api));
  }
  return out;
}

// Every connection holds a descriptor, and the soft limit is often 1024 while the hard one is far
// higher: take what is allowed, and say so when intake.max_connections cannot be reached.
void raise_open_files_limit(std::size_t max_connections) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  const rlim_t need = static_cast<rlim_t>(max_connections) + 64;  // plus the database, logs, host clients
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < need) {
    tollgate::service::log::warn("open-files limit is below intake.max_connections",
                                 {{"limit", static_cast<std::uint64_t>(lim.rlim_cur)},
                                  {"max_connections", max_connections},
                                  {"hint", "raise it (ulimit -n, LimitNOFILE=) or lower intake.max_connections; "
                                           "connections past the limit wait in the backlog"}});
  }
}

}  // namespace

int run_serve(const std::string& config_path, unsigned threads) {
  using namespace tollgate::service;
  auto config = load_config(config_path);
  if (!config) {
    for (const auto& d : config.error()) std::cerr << pipeline::format_text(d) << "\n";
    std::cerr << "tollgate: the configuration has " << config.error().size()
              << (config.error().size() == 1 ? " problem" : " problems") << "; not starting\n";
    return 2;
  }
  namespace fs = std::filesystem;
  fs::path db_dir = store::is_postgres(config->database) ? fs::path() : fs::path(config->database).parent_path();
  if (!db_dir.empty() && !fs::is_directory(db_dir)) {
    std::cerr << config_path << ": error: 'database': directory '" << db_dir.string() << "' does not exist\n";
    return 2;
  }
  // The replica's name (TOLLGATE_REPLICA, e.g. a pod's name; else the host name): its workers'
  // job leases carry it, and a restart takes back the leases its earlier process held.
  std::string replica;
  if (const char* r = std::getenv("TOLLGATE_REPLICA"); r != nullptr) {
    replica = r;
    const bool valid = !replica.empty() && replica.size() <= 63 && std::all_of(replica.begin(), replica.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.';
    });
    if (!valid) {
      std::cerr << "tollgate: TOLLGATE_REPLICA='" << replica
                << "' is not a replica name: use 1 to 63 letters, digits, '-', '_' or '.' (e.g. the pod's name), "
                   "unique among the replicas of one database\n";
      return 2;
    }
  }
  std::map<std::string, webhooks::HostKind> kinds;
  for (const auto& [name, host] : config->hosts) kinds[name] = host.kind;
  Normalizer normalizer(config->database, kinds);
  InboxOptions inbox_options{.path = config->database,
                             .synchronous_full = config->intake.sqlite_synchronous == "full",
                             .on_commit = [&normalizer] { normalizer.nudge(); }};
  auto inbox = Inbox::open(inbox_options);
  if (!inbox) {
    // Not a configuration error as such (the database may be starting, or its lock held by a
    // process on its way out): exit 1, which a supervisor restarts, unlike 2.
    log::error("cannot open the inbox", {{"error", inbox.error()}});
    return 1;
  }
  Metrics metrics;
  Intake intake(*config, **inbox, metrics);
  // The engine's parts, before the server: the API acts through the engine.
  host::HttpClient api_client;
  auto clients = make_host_clients(*config, api_client);
  git::GitWriter writer(git::GitWriterOptions{.data_dir = config->data_dir});
  TzDatabase zones;
  EngineServiceOptions engine_options;
  engine_options.database = config->database;
  engine_options.public_url = config->public_url;
  engine_options.zones = &zones;
  engine_options.workers = config->engine.workers;
  engine_options.lease = config->engine.lease;
  engine_options.replica = replica;
  const auto secs = [](std::chrono::milliseconds ms) {
    return std::max(std::chrono::seconds(1), std::chrono::duration_cast<std::chrono::seconds>(ms));
  };
  engine_options.engine.resync_interval = secs(config->engine.resync_interval);
  engine_options.engine.checks_settle = std::chrono::duration_cast<std::chrono::seconds>(config->engine.checks_settle);
  engine_options.engine.merge_retry = secs(config->engine.merge_retry);
  engine_options.engine.probe_interval = secs(config->engine.probe_interval);
  // A manual run obeys the host's `repos` allowlist, as its webhooks do.
  std::map<std::string, std::vector<pipeline::Glob>> allowlists;
  for (const auto& [name, host] : config->hosts) {
    if (host.repos.empty()) continue;
    auto& globs = allowlists[name];
    for (const auto& r : host.repos) {
      if (auto g = pipeline::Glob::compile(r)) globs.push_back(std::move(*g));
    }
  }
  engine_options.repo_allowed = [allowlists](const std::string& host, const std::string& repo) {
    auto it = allowlists.find(host);
    if (it == allowlists.end()) return true;
    return std::any_of(it->second.begin(), it->second.end(), [&](const pipeline::Glob& g) { return g.matches(repo); });
  };
  EngineService engine(engine_options, **inbox, clients.engine, &writer);
  ApiOptions api_options;
  api_options.database = config->database;
  api_options.config = config->api;
  api_options.engine = &engine;
  api_options.zones = &zones;
  for (const auto& [name, _] : config->hosts) api_options.hosts.push_back(name);
  api_options.pr_url = [&clients](const std::string& host, const std::string& repo, std::int64_t pr) {
    auto it = clients.engine.find(host);
    return it != clients.engine.end() && it->second.cached_pr_url ? it->second.cached_pr_url(repo, pr) : std::string{};
  };
  Api api(api_options);
  HttpServer server(*config, intake, &api);
  raise_open_files_limit(config->intake.max_connections);
  auto port = server.listen();
  if (!port) {
    log::error("cannot start", {{"error", port.error()}});
    return 1;  // e.g. the port is still held by the process before us: worth a restart
  }
  metrics.add_source([&engine] { return engine.metrics_text(); });
  metrics.add_source([&api] { return api.metrics_text(); });
  normalizer.on_recorded([&engine] { engine.nudge(); });
  normalizer.keep_bodies(config->intake.keep_bodies);
  normalizer.start(**inbox);
  engine.start();
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  nlohmann::json hosts = nlohmann::json::array();
  for (const auto& [name, host] : config->hosts) {
    hosts.push_back({{"name", name}, {"kind", webhooks::to_string(host.kind)}, {"secrets", host.webhook_secrets.size()}});
  }
  log::info("listening", {{"address", config->listen_host + ":" + std::to_string(*port)},
                          {"database", store::redact(config->database)},
                          {"schema_version", (*inbox)->schema_version()},
                          {"synchronous", config->intake.sqlite_synchronous},
                          {"threads", threads},
                          {"api_tokens", config->api.tokens.size()},
                          {"anonymous_read", config->api.anonymous_read},
                          {"hosts", hosts}});
  server.run(threads);
  normalizer.stop();  // finishes the batch in hand (its outcomes go through the inbox writer)
  engine.stop();      // finishes the job in hand; an unfinished one is leased again after a restart
  (*inbox)->stop();   // every accepted delivery is committed before we exit
  log::info("stopped");
  return 0;
}

}  // namespace tollgate::cli
