#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "service/config.hpp"

using namespace tollgate::service;
namespace fs = std::filesystem;

namespace {
struct Dir {
  fs::path path = fs::temp_directory_path() / ("tollgate-config-" + std::to_string(::getpid()));
  Dir() {
    fs::create_directories(path / "secrets");
    std::ofstream(path / "secrets/webhook") << "new-secret\n\nold-secret\n";
    std::ofstream(path / "secrets/token") << "ghp_token\n";
    std::ofstream(path / "secrets/empty") << "\n";
  }
  ~Dir() { fs::remove_all(path); }
};

std::string messages(const std::vector<tollgate::pipeline::Diagnostic>& ds) {
  std::string out;
  for (const auto& d : ds) out += tollgate::pipeline::format_text(d) + "\n";
  return out;
}
}  // namespace

TEST_CASE("a complete configuration is read, with secrets from files and the environment", "[config]") {
  Dir dir;
  ::setenv("TOLLGATE_TEST_GL_SECRET", "gl-secret", 1);
  auto cfg = parse_config(R"(listen: 0.0.0.0:9090
database: state/tollgate.db
public_url: https://tollgate.example.com/
hosts:
  github:
    kind: github
    webhook_secret_file: secrets/webhook
    token_file: secrets/token
    repos: ["acme/*"]
  gitlab:
    kind: gitlab
    api_url: https://gitlab.example.com/api/v4
    webhook_secret_env: TOLLGATE_TEST_GL_SECRET
intake:
  max_body: 5MiB
  header_timeout: 5s
  sqlite_synchronous: full
  keep_bodies: 7d
)",
                          "tollgate.yaml", dir.path.string());
  INFO((cfg ? std::string() : messages(cfg.error())));
  REQUIRE(cfg);
  CHECK(cfg->listen_host == "0.0.0.0");
  CHECK(cfg->listen_port == 9090);
  CHECK(cfg->database == (dir.path / "state/tollgate.db").string());
  CHECK(cfg->public_url == "https://tollgate.example.com");
  const auto& gh = cfg->hosts.at("github");
  CHECK(gh.api_url == "https://api.github.com");
  REQUIRE(gh.webhook_secrets.size() == 2);  // rotation: both lines are valid
  CHECK(gh.webhook_secrets[1].value() == "old-secret");
  CHECK(gh.token->value() == "ghp_token");
  CHECK(gh.repos == std::vector<std::string>{"acme/*"});
  CHECK(cfg->hosts.at("gitlab").webhook_secrets.at(0).value() == "gl-secret");
  CHECK(cfg->intake.max_body_bytes == 5u * 1024 * 1024);
  CHECK(cfg->intake.header_timeout == std::chrono::seconds(5));
  CHECK(cfg->intake.sqlite_synchronous == "full");
  CHECK(cfg->intake.keep_bodies == std::chrono::hours(7 * 24));
}

TEST_CASE("intake.keep_bodies: 30 days unless set, 'forever' keeps them, less than an hour is refused", "[config]") {
  Dir dir;
  {
    std::ofstream(dir.path / "s") << "secret\n";
  }
  const std::string hosts = "hosts:\n  github:\n    kind: github\n    webhook_secret_file: s\n";
  auto unset = parse_config(hosts, "t.yaml", dir.path.string());
  REQUIRE(unset);
  CHECK(unset->intake.keep_bodies == std::chrono::hours(30 * 24));
  auto forever = parse_config(hosts + "intake:\n  keep_bodies: forever\n", "t.yaml", dir.path.string());
  REQUIRE(forever);
  CHECK(forever->intake.keep_bodies.count() == 0);
  auto hour = parse_config(hosts + "intake:\n  keep_bodies: 1h\n", "t.yaml", dir.path.string());
  REQUIRE(hour);
  CHECK(hour->intake.keep_bodies == std::chrono::hours(1));
  for (const auto& [value, why] : std::vector<std::pair<std::string, std::string>>{
           {"10m", ""}, {"30", ""}, {"'30'", " ('30' has no unit (use s, m, h or d))"}, {"never", ""}, {"400d", ""}}) {
    INFO(value);
    auto bad = parse_config(hosts + "intake:\n  keep_bodies: " + value + "\n", "t.yaml", dir.path.string());
    REQUIRE_FALSE(bad);
    CHECK_THAT(messages(bad.error()),
               Catch::Contains("t.yaml:6:16: error: 'intake.keep_bodies': must be a duration from 1h to 366d such as '30d' or "
                               "'72h', or 'forever'" + why));
  }
}

TEST_CASE("listen must be an IP address: names are not resolved", "[config]") {
  Dir dir;
  const std::string hosts = "hosts:\n  github:\n    kind: github\n    webhook_secret_file: secrets/webhook\n";
  for (const char* ok : {"127.0.0.1:0", "0.0.0.0:8080", "[::]:8080", "[::1]:9000"}) {
    auto cfg = parse_config("listen: '" + std::string(ok) + "'\n" + hosts, "tollgate.yaml", dir.path.string());
    INFO(ok << ": " << (cfg ? std::string() : messages(cfg.error())));
    CHECK(cfg);
  }
  auto cfg = parse_config("listen: localhost:8080\n" + hosts, "tollgate.yaml", dir.path.string());
  REQUIRE_FALSE(cfg);
  CHECK(messages(cfg.error()) ==
        "tollgate.yaml:1:9: error: 'listen': 'localhost' is not an IP address: listen on an address such as '127.0.0.1:8080', "
        "'0.0.0.0:8080' (every interface) or '[::]:8080' (names are not resolved)\n");
}

TEST_CASE("configuration mistakes are all reported, naming the key", "[config]") {
  Dir dir;
  auto cfg = parse_config(R"(listen: localhost
hsts: {}
hosts:
  github:
    knd: github
    webhook_secret_file: secrets/missing
  gitea:
    kind: gitee
    webhook_secret_file: secrets/empty
intake:
  max_body: 25MB
  body_timeout: 30
)",
                          "tollgate.yaml", dir.path.string());
  REQUIRE_FALSE(cfg);
  const std::string out = messages(cfg.error());
  CHECK(out ==
        "tollgate.yaml:1:9: error: 'listen': must be IP:PORT such as '127.0.0.1:8080' (port 0 picks a free one)\n"
        "tollgate.yaml:2:1: error: unknown key 'hsts' in the configuration; did you mean 'hosts'?\n"
        "tollgate.yaml:5:5: error: unknown key 'knd' in host 'github'; did you mean 'kind'?\n"
        "tollgate.yaml:6:26: error: 'hosts.github.webhook_secret_file': cannot read '" + (dir.path / "secrets/missing").string() + "'\n"
        "tollgate.yaml:8:11: error: 'hosts.gitea.kind': must be 'github', 'gitlab' or 'gitea'; got 'gitee'; did you mean 'gitea'?\n"
        "tollgate.yaml:9:26: error: 'hosts.gitea.webhook_secret_file': holds no secret (it is empty)\n"
        "tollgate.yaml:11:13: error: 'intake.max_body': must be a size such as 26214400, '512KiB' or '25MiB'\n"
        "tollgate.yaml:12:17: error: 'intake.body_timeout': must be a duration such as '30s' or '2m' (a number needs a unit)\n");
  // Secrets never appear in messages.
  CHECK(out.find("new-secret") == std::string::npos);
}

TEST_CASE("a host without a webhook secret is refused", "[config]") {
  Dir dir;
  auto cfg = parse_config("hosts:\n  github:\n    kind: github\n", "t.yaml", dir.path.string());
  REQUIRE_FALSE(cfg);
  CHECK(messages(cfg.error()) ==
        "t.yaml:2:3: error: 'hosts.github': missing 'webhook_secret_file' or 'webhook_secret_env': deliveries cannot be "
        "verified without it\n");
}

TEST_CASE("a postgres:// database is kept as a URL; other schemes are refused", "[config]") {
  Dir dir;
  {
    std::ofstream(dir.path / "s") << "secret\n";
  }
  const std::string hosts = "hosts:\n  github:\n    kind: github\n    webhook_secret_file: s\n";
  auto accepted = parse_config("database: postgresql://tollgate@db/tollgate\n" + hosts, "t.yaml", dir.path.string());
  REQUIRE(accepted);
  CHECK(accepted->database == "postgresql://tollgate@db/tollgate");  // a URL, not a path under the config's directory
  auto short_scheme = parse_config("database: postgres://tollgate@db:5432/tollgate?sslmode=require\n" + hosts, "t.yaml", dir.path.string());
  REQUIRE(short_scheme);
  CHECK(short_scheme->database == "postgres://tollgate@db:5432/tollgate?sslmode=require");
  auto other = parse_config("database: mysql://db/tollgate\n" + hosts, "t.yaml", dir.path.string());
  REQUIRE_FALSE(other);
  CHECK_THAT(messages(other.error()), Catch::Contains("'mysql://' is not a database this tollgate knows"));
}

TEST_CASE("the API's tokens are read from files; their mistakes are reported by key", "[config]") {
  Dir dir;
  std::ofstream(dir.path / "secrets/api-read") << "read-0123456789abcdef\n";
  std::ofstream(dir.path / "secrets/api-ops") << "ops-0123456789abcdef\n";
  std::ofstream(dir.path / "secrets/short") << "abc\n";
  const std::string hosts = "hosts:\n  github: {kind: github, webhook_secret_file: secrets/webhook}\n";
  auto cfg = parse_config(hosts + R"(api:
  anonymous_read: true
  tokens:
    - {name: dashboard, role: read, token_file: secrets/api-read}
    - {name: alice-cli, role: operator, token_file: secrets/api-ops, login: alice}
)",
                          "tollgate.yaml", dir.path.string());
  INFO((cfg ? std::string() : messages(cfg.error())));
  REQUIRE(cfg);
  CHECK(cfg->api.anonymous_read);
  REQUIRE(cfg->api.tokens.size() == 2);
  CHECK(cfg->api.tokens[0].name == "dashboard");
  CHECK_FALSE(cfg->api.tokens[0].operator_role);
  CHECK(cfg->api.tokens[0].token.value() == "read-0123456789abcdef");
  CHECK(cfg->api.tokens[1].operator_role);
  CHECK(cfg->api.tokens[1].login == "alice");

  auto bad = parse_config(hosts + R"(api:
  anonymous_read: "yes"
  tokens:
    - {name: Dash, role: reader, token_file: secrets/api-read}
    - {name: dash2, role: read, token_file: secrets/short}
    - {name: dash3, role: read}
    - {name: dash3, role: read, token_file: secrets/api-ops, tokne: x}
    - {name: dash4, role: operator, token_file: secrets/api-ops}
)",
                          "tollgate.yaml", dir.path.string());
  REQUIRE_FALSE(bad);
  const std::string text = messages(bad.error());
  CHECK(text.find("'api.anonymous_read': must be true or false") != std::string::npos);
  CHECK(text.find("'api.tokens[0].name': use lower-case letters") != std::string::npos);
  CHECK(text.find("'api.tokens[0].role': must be 'read' or 'operator'; got 'reader'") != std::string::npos);
  CHECK(text.find("'api.tokens[1]': the token is shorter than 16 characters") != std::string::npos);
  CHECK(text.find("'api.tokens[2]': missing 'token_file' or 'token_env'") != std::string::npos);
  CHECK(text.find("another token is named 'dash3'") != std::string::npos);
  CHECK(text.find("unknown key 'tokne' in an API token") != std::string::npos);
  CHECK(text.find("'api.tokens[4]': holds the same token as 'dash3'") != std::string::npos);
  // A token never appears in a message.
  CHECK(text.find("0123456789abcdef") == std::string::npos);
  CHECK(text.find("abc\n") == std::string::npos);
}

TEST_CASE("engine.lease is a duration between 3s and 1h", "[config]") {
  Dir dir;
  {
    std::ofstream(dir.path / "s") << "secret\n";
  }
  const std::string hosts = "hosts:\n  github:\n    kind: github\n    webhook_secret_file: s\n";
  auto defaulted = parse_config(hosts, "t.yaml", dir.path.string());
  REQUIRE(defaulted);
  CHECK(defaulted->engine.lease == std::chrono::seconds(30));
  auto set = parse_config("engine:\n  lease: 10s\n" + hosts, "t.yaml", dir.path.string());
  REQUIRE(set);
  CHECK(set->engine.lease == std::chrono::seconds(10));
  auto short_lease = parse_config("engine:\n  lease: 1s\n" + hosts, "t.yaml", dir.path.string());
  REQUIRE_FALSE(short_lease);
  CHECK(messages(short_lease.error()) ==
        "t.yaml:2:10: error: 'engine.lease': must be between 3s and 1h: how long a job stays with a replica that "
        "stopped renewing it (default 30s)\n");
}
