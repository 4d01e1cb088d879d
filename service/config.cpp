#include "service/config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "pipeline/duration.hpp"
#include "pipeline/glob.hpp"
#include "pipeline/suggest.hpp"
#include "pipeline/yaml_doc.hpp"

namespace tollgate::service {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using pipeline::Diagnostic;
using pipeline::ProblemKind;

class Reader {
 public:
  Reader(const pipeline::YamlDocument& doc, std::string file, fs::path dir)
      : doc_(doc), file_(std::move(file)), dir_(std::move(dir)) {}

  std::vector<Diagnostic>& problems() { return problems_; }

  void error(const std::string& ptr, const std::string& key_path, const std::string& msg, bool at_key = false) {
    problems_.push_back({file_, at_key ? doc_.map.key(ptr) : doc_.map.value(ptr), ProblemKind::semantic, ptr,
                         "'" + key_path + "': " + msg});
  }

  // Reports keys of `obj` not in `known` ("did you mean").
  void known_keys(const json& obj, const std::string& ptr, const std::string& where,
                  const std::vector<std::string>& known) {
    for (const auto& [k, _] : obj.items()) {
      if (std::find(known.begin(), known.end(), k) != known.end()) continue;
      std::string child = ptr + "/" + pipeline::pointer_token(k);
      problems_.push_back({file_, doc_.map.key(child), ProblemKind::semantic, child,
                           "unknown key '" + k + "' in " + where + pipeline::did_you_mean(k, known)});
    }
  }

  std::optional<std::string> string(const json& obj, const char* key, const std::string& ptr, const std::string& path) {
    auto it = obj.find(key);
    if (it == obj.end()) return std::nullopt;
    if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
      error(ptr + "/" + key, path, "must be a non-empty string");
      return std::nullopt;
    }
    return it->get<std::string>();
  }

  std::optional<std::chrono::milliseconds> duration(const json& obj, const char* key, const std::string& ptr,
                                                    const std::string& path) {
    if (auto it = obj.find(key); it != obj.end() && it->is_number()) {
      error(ptr + "/" + key, path, "must be a duration such as '30s' or '2m' (a number needs a unit)");
      return std::nullopt;
    }
    auto s = string(obj, key, ptr, path);
    if (!s) return std::nullopt;
    auto d = pipeline::parse_duration(*s);
    if (!d || d->count() == 0) {
      error(ptr + "/" + key, path, d ? "must be longer than 0s" : "bad duration: " + d.error());
      return std::nullopt;
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(*d);
  }

  std::optional<std::uint64_t> count(const json& obj, const char* key, const std::string& ptr, const std::string& path,
                                     std::uint64_t min, std::uint64_t max) {
    auto it = obj.find(key);
    if (it == obj.end()) return std::nullopt;
    if (!it->is_number_integer() || it->get<std::int64_t>() < static_cast<std::int64_t>(min) ||
        it->get<std::uint64_t>() > max) {
      error(ptr + "/" + key, path, "must be a whole number from " + std::to_string(min) + " to " + std::to_string(max));
      return std::nullopt;
    }
    return it->get<std::uint64_t>();
  }

  // Sizes: a number of bytes, or "512KiB", "25MiB", "1GiB".
  std::optional<std::uint64_t> size(const json& obj, const char* key, const std::string& ptr, const std::string& path) {
    auto it = obj.find(key);
    if (it == obj.end()) return std::nullopt;
    if (it->is_number_integer() && it->get<std::int64_t>() > 0) return it->get<std::uint64_t>();
    if (it->is_string()) {
      const std::string& s = it->get_ref<const std::string&>();
      std::size_t digits = s.find_first_not_of("0123456789");
      if (digits > 0 && digits != std::string::npos && digits <= 9) {
        std::uint64_t n = std::stoull(s.substr(0, digits));
        std::string unit = s.substr(digits);
        std::uint64_t mult = unit == "KiB" ? 1024ULL : unit == "MiB" ? 1024ULL * 1024 : unit == "GiB" ? 1024ULL * 1024 * 1024 : 0;
        if (mult && n > 0) return n * mult;
      }
    }
    error(ptr + "/" + key, path, "must be a size such as 26214400, '512KiB' or '25MiB'");
    return std::nullopt;
  }

  // A secret from `<key>_file` (relative to the config) or `<key>_env`; `several` allows one
  // secret per line (rotation). Values are never put in messages.
  std::vector<Secret> secrets(const json& obj, const std::string& base, const std::string& ptr, const std::string& path,
                              bool several) {
    std::vector<Secret> out;
    auto file = string(obj, (base + "_file").c_str(), ptr, path + "." + base + "_file");
    auto env = string(obj, (base + "_env").c_str(), ptr, path + "." + base + "_env");
    if (file && env) {
      error(ptr + "/" + base + "_env", path + "." + base + "_env", "give either '" + base + "_file' or '" + base + "_env', not both");
      return out;
    }
    std::string text;
    if (file) {
      fs::path p = fs::path(*file).is_absolute() ? fs::path(*file) : dir_ / *file;
      std::ifstream in(p, std::ios::binary);
      if (!in) {
        error(ptr + "/" + base + "_file", path + "." + base + "_file", "cannot read '" + p.string() + "'");
        return out;
      }
      std::ostringstream ss;
      ss << in.rdbuf();
      text = ss.str();
    } else if (env) {
      const char* v = std::getenv(env->c_str());
      if (!v) {
        error(ptr + "/" + base + "_env", path + "." + base + "_env", "environment variable '" + *env + "' is not set");
        return out;
      }
      text = v;
    } else {
      return out;
    }
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
      std::size_t start = line.find_first_not_of(" \t");
      if (start == std::string::npos) continue;
      out.emplace_back(line.substr(start));
      if (!several) break;
    }
    if (out.empty()) {
      std::string key = file ? base + "_file" : base + "_env";
      error(ptr + "/" + key, path + "." + key, "holds no secret (it is empty)");
    }
    return out;
  }

  fs::path resolve(const std::string& p) const {
    return (fs::path(p).is_absolute() ? fs::path(p) : dir_ / p).lexically_normal();
  }

 private:
  const pipeline::YamlDocument& doc_;
  std::string file_;
  fs::path dir_;
  std::vector<Diagnostic> problems_;
};

// Whether some key of `obj` looks like a misspelling of `key` (reported as such already).
bool has_typo_of(const json& obj, const std::string& key) {
  for (const auto& [k, _] : obj.items()) {
    if (k != key && pipeline::closest(k, std::vector<std::string>{key}) == key) return true;
  }
  return false;
}

void read_api(Reader& r, const json& api, Config& cfg) {
  if (!api.is_object()) {
    r.error("/api", "api", "must be a mapping with 'tokens' and 'anonymous_read'");
    return;
  }
  r.known_keys(api, "/api", "'api'", {"anonymous_read", "tokens"});
  if (auto it = api.find("anonymous_read"); it != api.end()) {
    if (!it->is_boolean()) {
      r.error("/api/anonymous_read", "api.anonymous_read", "must be true or false");
    } else {
      cfg.api.anonymous_read = it->get<bool>();
    }
  }
  auto tokens = api.find("tokens");
  if (tokens == api.end()) return;
  if (!tokens->is_array()) {
    r.error("/api/tokens", "api.tokens", "must be a list of {name, role, token_file}");
    return;
  }
  std::set<std::string> names;
  for (std::size_t i = 0; i < tokens->size(); ++i) {
    const json& t = (*tokens)[i];
    const std::string ptr = "/api/tokens/" + std::to_string(i);
    const std::string path = "api.tokens[" + std::to_string(i) + "]";
    if (!t.is_object()) {
      r.error(ptr, path, "must be a mapping with 'name', 'role' and 'token_file' (or 'token_env')");
      continue;
    }
    r.known_keys(t, ptr, "an API token", {"name", "role", "token_file", "token_env", "login"});
    ApiToken token;
    if (auto name = r.string(t, "name", ptr, path + ".name")) {
      const bool ok = (*name)[0] != '-' && name->size() <= 64 &&
                      name->find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") == std::string::npos;
      if (!ok) r.error(ptr + "/name", path + ".name", "use lower-case letters, digits and '-' (at most 64), e.g. 'dashboard'");
      if (!names.insert(*name).second) r.error(ptr + "/name", path + ".name", "another token is named '" + *name + "'");
      token.name = *name;
    } else if (!t.contains("name")) {
      r.error(ptr, path, "missing 'name' (it names the token in logs and the audit log)", true);
    }
    if (auto role = r.string(t, "role", ptr, path + ".role")) {
      if (*role != "read" && *role != "operator") {
        r.error(ptr + "/role", path + ".role",
                "must be 'read' or 'operator'; got '" + *role + "'" +
                    pipeline::did_you_mean(*role, std::vector<std::string>{"read", "operator"}));
      }
      token.operator_role = *role == "operator";
    } else if (!t.contains("role")) {
      r.error(ptr, path, "missing 'role' (read or operator)", true);
    }
    if (auto login = r.string(t, "login", ptr, path + ".login")) token.login = *login;
    auto secret = r.secrets(t, "token", ptr, path, /*several=*/false);
    if (secret.empty()) {
      if (!t.contains("token_file") && !t.contains("token_env")) {
        r.error(ptr, path, "missing 'token_file' or 'token_env' (the token itself never goes in this file)", true);
      }
      continue;
    }
    if (secret.front().value().size() < 16) {
      r.error(ptr, path, "the token is shorter than 16 characters; use a random one, e.g. 'openssl rand -hex 32'", true);
      continue;
    }
    for (const auto& other : cfg.api.tokens) {
      // Which of two equal tokens a request presents cannot be told: one could carry the other's role.
      if (other.token.value() == secret.front().value()) {
        r.error(ptr, path, "holds the same token as '" + other.name + "'; give every token its own value", true);
      }
    }
    token.token = secret.front();
    cfg.api.tokens.push_back(std::move(token));
  }
}

void read_host(Reader& r, const std::string& name, const json& h, const std::string& ptr, Config& cfg) {
  std::string path = "hosts." + name;
  if (!h.is_object()) {
    r.error(ptr, path, "must be a mapping with 'kind', 'api_url' and the webhook secret");
    return;
  }
  r.known_keys(h, ptr, "host '" + name + "'",
               {"kind", "api_url", "webhook_secret_file", "webhook_secret_env", "token_file", "token_env", "app", "repos"});
  HostConfig host;
  host.name = name;
  if (name.empty() || name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_") != std::string::npos) {
    r.error(ptr, path, "host names appear in /hooks/<name>: use lower-case letters, digits, '-' and '_'", true);
  }
  if (auto kind = r.string(h, "kind", ptr, path + ".kind")) {
    if (auto k = webhooks::host_kind_from_string(*kind)) {
      host.kind = *k;
    } else {
      r.error(ptr + "/kind", path + ".kind",
              "must be 'github', 'gitlab' or 'gitea'; got '" + *kind + "'" +
                  pipeline::did_you_mean(*kind, std::vector<std::string>{"github", "gitlab", "gitea"}));
    }
  } else if (!h.contains("kind") && !has_typo_of(h, "kind")) {
    r.error(ptr, path, "missing 'kind' (github, gitlab or gitea)", true);
  }
  if (auto api = r.string(h, "api_url", ptr, path + ".api_url")) {
    if (api->rfind("https://", 0) != 0 && api->rfind("http://", 0) != 0) {
      r.error(ptr + "/api_url", path + ".api_url", "must start with 'https://' (or 'http://' for a local test host)");
    }
    host.api_url = *api;
  } else {
    host.api_url = host.kind == webhooks::HostKind::github ? "https://api.github.com"
                   : host.kind == webhooks::HostKind::gitlab ? "https://gitlab.com/api/v4"
                                                             : "";
    if (host.api_url.empty() && !h.contains("api_url")) {
      r.error(ptr, path, "missing 'api_url' (a Gitea instance has no default address)", true);
    }
  }
  host.webhook_secrets = r.secrets(h, "webhook_secret", ptr, path, /*several=*/true);
  if (host.webhook_secrets.empty() && !h.contains("webhook_secret_file") && !h.contains("webhook_secret_env")) {
    r.error(ptr, path, "missing 'webhook_secret_file' or 'webhook_secret_env': deliveries cannot be verified without it", true);
  }
  auto token = r.secrets(h, "token", ptr, path, /*several=*/false);
  if (!token.empty()) host.token = token.front();
  if (auto it = h.find("app"); it != h.end()) {
    if (!it->is_object()) {
      r.error(ptr + "/app", path + ".app", "must be a mapping with 'id' and 'private_key_file'");
    } else {
      r.known_keys(*it, ptr + "/app", "'" + path + ".app'", {"id", "private_key_file", "private_key_env"});
      AppAuth app;
      if (auto id = r.count(*it, "id", ptr + "/app", path + ".app.id", 1, INT64_MAX)) app.id = static_cast<std::int64_t>(*id);
      else if (!it->contains("id")) r.error(ptr + "/app", path + ".app", "missing 'id' (the GitHub App's id)", true);
      auto key = r.secrets(*it, "private_key", ptr + "/app", path + ".app", /*several=*/false);
      if (!key.empty()) {
        // The whole PEM, not only its first line.
        auto file = it->find("private_key_file");
        if (file != it->end() && file->is_string()) {
          std::ifstream in(r.resolve(file->get<std::string>()), std::ios::binary);
          std::ostringstream ss;
          ss << in.rdbuf();
          app.private_key = Secret(ss.str());
        } else {
          app.private_key = key.front();
        }
        if (app.private_key.value().find("PRIVATE KEY-----") == std::string::npos) {
          r.error(ptr + "/app", path + ".app", "the private key is not a PEM private key", true);
        }
      }
      host.app = std::move(app);
    }
  }
  if (host.token && host.app) r.error(ptr + "/app", path + ".app", "give either a token or an app, not both", true);
  if (auto it = h.find("repos"); it != h.end()) {
    if (!it->is_array() || it->empty()) {
      r.error(ptr + "/repos", path + ".repos", "must be a non-empty list of 'owner/name' globs such as 'acme/*'");
    } else {
      for (std::size_t i = 0; i < it->size(); ++i) {
        const json& g = (*it)[i];
        std::string at = ptr + "/repos/" + std::to_string(i);
        if (!g.is_string()) {
          r.error(at, path + ".repos", "items must be strings such as 'acme/*'");
          continue;
        }
        auto compiled = pipeline::Glob::compile(g.get<std::string>());
        if (!compiled) {
          r.error(at, path + ".repos", "bad glob '" + g.get<std::string>() + "': " + compiled.error().message);
          continue;
        }
        host.repos.push_back(g.get<std::string>());
      }
    }
  }
  cfg.hosts[name] = std::move(host);
}

}  // namespace

tl::expected<Config, std::vector<Diagnostic>> parse_config(const std::string& text, const std::string& file,
                                                          const std::string& dir) {
  auto doc = pipeline::parse_yaml(text, file);
  if (!doc) return tl::unexpected(std::vector<Diagnostic>{doc.error()});
  Reader r(*doc, file, dir);
  Config cfg;
  cfg.file = file;
  const json& root = doc->json;
  if (!root.is_object()) {
    return tl::unexpected(std::vector<Diagnostic>{
        {file, {1, 1}, ProblemKind::semantic, "", "the configuration must be a mapping (listen, database, hosts, ...)"}});
  }
  r.known_keys(root, "", "the configuration", {"listen", "database", "data_dir", "public_url", "hosts", "intake", "engine", "api"});
  if (auto listen = r.string(root, "listen", "", "listen")) {
    auto colon = listen->rfind(':');
    std::string port = colon == std::string::npos ? "" : listen->substr(colon + 1);
    bool ok = colon != std::string::npos && colon > 0 && !port.empty() && port.size() <= 5 &&
              port.find_first_not_of("0123456789") == std::string::npos && std::stoul(port) <= 65535;
    if (!ok) {
      r.error("/listen", "listen", "must be IP:PORT such as '127.0.0.1:8080' (port 0 picks a free one)");
    } else {
      cfg.listen_host = listen->substr(0, colon);
      if (cfg.listen_host.size() > 2 && cfg.listen_host.front() == '[' && cfg.listen_host.back() == ']') {
        cfg.listen_host = cfg.listen_host.substr(1, cfg.listen_host.size() - 2);
      }
      cfg.listen_port = static_cast<std::uint16_t>(std::stoul(port));
      in6_addr any{};
      if (inet_pton(AF_INET, cfg.listen_host.c_str(), &any) != 1 && inet_pton(AF_INET6, cfg.listen_host.c_str(), &any) != 1) {
        r.error("/listen", "listen",
                "'" + cfg.listen_host.substr(0, 64) + "' is not an IP address: listen on an address such as '127.0.0.1:8080', "
                "'0.0.0.0:8080' (every interface) or '[::]:8080' (names are not resolved)");
      }
    }
  }
  if (auto db = r.string(root, "database", "", "database")) {
    const bool url = db->rfind("postgres://", 0) == 0 || db->rfind("postgresql://", 0) == 0;
    cfg.database = url ? *db : r.resolve(*db).string();
    if (!url && db->find("://") != std::string::npos) {
      r.error("/database", "database",
              "'" + db->substr(0, db->find("://")) + "://' is not a database this tollgate knows: use a SQLite file path, "
              "or postgres://user@host:5432/dbname for PostgreSQL");
    }
  } else {
    cfg.database = r.resolve(cfg.database).string();
  }
  cfg.data_dir = r.resolve(r.string(root, "data_dir", "", "data_dir").value_or(cfg.data_dir)).string();
  if (auto url = r.string(root, "public_url", "", "public_url")) {
    if (url->rfind("https://", 0) != 0 && url->rfind("http://", 0) != 0) {
      r.error("/public_url", "public_url", "must start with 'https://' or 'http://'");
    }
    cfg.public_url = *url;
    while (!cfg.public_url.empty() && cfg.public_url.back() == '/') cfg.public_url.pop_back();
  }
  if (auto it = root.find("intake"); it != root.end()) {
    if (!it->is_object()) {
      r.error("/intake", "intake", "must be a mapping");
    } else {
      r.known_keys(*it, "/intake", "'intake'",
                   {"max_body", "header_timeout", "body_timeout", "idle_timeout", "max_connections", "shutdown_timeout",
                    "sqlite_synchronous", "keep_bodies"});
      if (auto v = r.size(*it, "max_body", "/intake", "intake.max_body")) cfg.intake.max_body_bytes = *v;
      if (auto v = r.duration(*it, "header_timeout", "/intake", "intake.header_timeout")) cfg.intake.header_timeout = *v;
      if (auto v = r.duration(*it, "body_timeout", "/intake", "intake.body_timeout")) cfg.intake.body_timeout = *v;
      if (auto v = r.duration(*it, "idle_timeout", "/intake", "intake.idle_timeout")) cfg.intake.idle_timeout = *v;
      if (auto v = r.duration(*it, "shutdown_timeout", "/intake", "intake.shutdown_timeout")) cfg.intake.shutdown_timeout = *v;
      if (auto v = r.count(*it, "max_connections", "/intake", "intake.max_connections", 1, 100000)) cfg.intake.max_connections = *v;
      if (auto v = r.string(*it, "sqlite_synchronous", "/intake", "intake.sqlite_synchronous")) {
        if (*v != "normal" && *v != "full") {
          r.error("/intake/sqlite_synchronous", "intake.sqlite_synchronous", "must be 'normal' or 'full'");
        } else {
          cfg.intake.sqlite_synchronous = *v;
        }
      }
      if (auto k = it->find("keep_bodies"); k != it->end()) {
        const std::string keep = k->is_string() ? k->get<std::string>() : std::string();
        auto d = pipeline::parse_duration(keep);
        if (keep == "forever") {
          cfg.intake.keep_bodies = std::chrono::milliseconds{0};
        } else if (!k->is_string() || !d || *d < std::chrono::hours(1)) {
          r.error("/intake/keep_bodies", "intake.keep_bodies",
                  std::string("must be a duration from 1h to 366d such as '30d' or '72h', or 'forever'") +
                      (k->is_string() && !d ? " (" + d.error() + ")" : ""));
        } else {
          cfg.intake.keep_bodies = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
        }
      }
    }
  }
  if (auto it = root.find("engine"); it != root.end()) {
    if (!it->is_object()) {
      r.error("/engine", "engine", "must be a mapping");
    } else {
      r.known_keys(*it, "/engine", "'engine'", {"workers", "resync_interval", "checks_settle", "merge_retry", "probe_interval", "lease"});
      if (auto v = r.count(*it, "workers", "/engine", "engine.workers", 1, 256)) cfg.engine.workers = static_cast<unsigned>(*v);
      if (auto v = r.duration(*it, "resync_interval", "/engine", "engine.resync_interval")) cfg.engine.resync_interval = *v;
      if (auto v = r.duration(*it, "checks_settle", "/engine", "engine.checks_settle")) cfg.engine.checks_settle = *v;
      if (auto v = r.duration(*it, "merge_retry", "/engine", "engine.merge_retry")) cfg.engine.merge_retry = *v;
      if (auto v = r.duration(*it, "probe_interval", "/engine", "engine.probe_interval")) cfg.engine.probe_interval = *v;
      if (auto v = r.duration(*it, "lease", "/engine", "engine.lease")) {
        if (*v < std::chrono::seconds(3) || *v > std::chrono::hours(1)) {
          r.error("/engine/lease", "engine.lease",
                  "must be between 3s and 1h: how long a job stays with a replica that stopped renewing it (default 30s)");
        } else {
          cfg.engine.lease = *v;
        }
      }
    }
  }
  if (auto it = root.find("api"); it != root.end()) read_api(r, *it, cfg);
  auto hosts = root.find("hosts");
  if (hosts == root.end()) {
    r.error("", "hosts", "missing: name at least one Git host (e.g. 'github:' with its kind and webhook secret)");
  } else if (!hosts->is_object() || hosts->empty()) {
    r.error("/hosts", "hosts", "must map host names to their settings, e.g. 'github: {kind: github, ...}'");
  } else {
    for (const auto& [name, h] : hosts->items()) read_host(r, name, h, "/hosts/" + pipeline::pointer_token(name), cfg);
  }
  if (!r.problems().empty()) {
    pipeline::sort_and_dedupe(r.problems());
    return tl::unexpected(std::move(r.problems()));
  }
  return cfg;
}

tl::expected<Config, std::vector<Diagnostic>> load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return tl::unexpected(std::vector<Diagnostic>{
        {path, {1, 1}, ProblemKind::yaml, "", "cannot read the configuration file"}});
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  fs::path dir = fs::path(path).parent_path();
  return parse_config(ss.str(), path, dir.empty() ? "." : dir.string());
}

}  // namespace tollgate::service
