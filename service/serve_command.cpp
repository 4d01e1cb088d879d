#include "service/serve_command.hpp"

#include <filesystem>
#include <iostream>
#include <thread>

#include "service/config.hpp"
#include "service/http_server.hpp"
#include "service/inbox.hpp"
#include "service/intake.hpp"
#include "service/log.hpp"
#include "service/metrics.hpp"
#include "service/normalizer.hpp"

namespace tollgate::cli {

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
  fs::path db_dir = fs::path(config->database).parent_path();
  if (!db_dir.empty() && !fs::is_directory(db_dir)) {
    std::cerr << config_path << ": error: 'database': directory '" << db_dir.string() << "' does not exist\n";
    return 2;
  }
  std::map<std::string, webhooks::HostKind> kinds;
  for (const auto& [name, host] : config->hosts) kinds[name] = host.kind;
  Normalizer normalizer(config->database, kinds);
  InboxOptions inbox_options{.path = config->database,
                             .synchronous_full = config->intake.sqlite_synchronous == "full",
                             .on_commit = [&normalizer] { normalizer.nudge(); }};
  auto inbox = Inbox::open(inbox_options);
  if (!inbox) {
    log::error("cannot open the inbox", {{"error", inbox.error()}});
    return 2;
  }
  Metrics metrics;
  Intake intake(*config, **inbox, metrics);
  HttpServer server(*config, intake);
  auto port = server.listen();
  if (!port) {
    log::error("cannot start", {{"error", port.error()}});
    return 2;
  }
  normalizer.start(**inbox);
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  nlohmann::json hosts = nlohmann::json::array();
  for (const auto& [name, host] : config->hosts) {
    hosts.push_back({{"name", name}, {"kind", webhooks::to_string(host.kind)}, {"secrets", host.webhook_secrets.size()}});
  }
  log::info("listening", {{"address", config->listen_host + ":" + std::to_string(*port)},
                          {"database", config->database},
                          {"schema_version", (*inbox)->schema_version()},
                          {"synchronous", config->intake.sqlite_synchronous},
                          {"threads", threads},
                          {"hosts", hosts}});
  server.run(threads);
  normalizer.stop();  // finishes the batch in hand (its outcomes go through the inbox writer)
  (*inbox)->stop();   // every accepted delivery is committed before we exit
  log::info("stopped");
  return 0;
}

}  // namespace tollgate::cli
