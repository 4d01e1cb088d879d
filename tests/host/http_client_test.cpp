// HttpClient over TLS (a CA and server certificate made with the openssl CLI, served by node
// https), through a CONNECT proxy, and GitHub App auth against a JWT-checking endpoint.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "service/host/github_host.hpp"
#include "service/host/http_client.hpp"
#include "tests/host/node_process.hpp"

using namespace tollgate::tests;
namespace host = tollgate::service::host;

namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void sh(const std::string& cmd) {
  if (std::system((cmd + " >/dev/null 2>&1").c_str()) != 0) throw std::runtime_error("failed: " + cmd);
}

// A CA, a server certificate for DNS:localhost signed by it, and an RSA key for a GitHub App.
struct Pki {
  Pki() : dir(make_temp_dir("tollgate-tls-")) {
    const std::string d = dir.string();
    sh("cd " + d + " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=tollgate-test-ca");
    sh("cd " + d + " && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost");
    {
      std::ofstream ext(dir / "ext.cnf");
      ext << "subjectAltName=DNS:localhost\n";
    }
    sh("cd " + d + " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf");
    sh("cd " + d + " && openssl genrsa -out app.pem 2048 && openssl rsa -in app.pem -pubout -out app.pub.pem");
  }
  ~Pki() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::filesystem::path dir;
};

struct TlsWorld {
  TlsWorld()
      : server({std::string(TOLLGATE_SOURCE_DIR) + "/tests/host/tls_server.mjs", (pki.dir / "server.pem").string(),
                (pki.dir / "server.key").string(), (pki.dir / "app.pub.pem").string()}),
        https_port(server.ready()["https_port"].get<int>()),
        proxy_port(server.ready()["proxy_port"].get<int>()) {}
  Pki pki;
  NodeProcess server;
  int https_port;
  int proxy_port;
  std::string url(const std::string& host, const std::string& path) const {
    return "https://" + host + ":" + std::to_string(https_port) + path;
  }
  nlohmann::json stats() {
    host::HttpClient c(host::HttpClientOptions{.ca_file = (pki.dir / "ca.pem").string(), .https_proxy = "", .no_proxy = ""});
    auto r = c.request(host::HttpRequest{.url = url("localhost", "/stats"), .conditional = false});
    if (!r) throw std::runtime_error(r.error().message);
    return nlohmann::json::parse(r->body);
  }
};

host::HttpClientOptions no_env_proxy() { return host::HttpClientOptions{.max_attempts = 1, .https_proxy = "", .no_proxy = ""}; }

}  // namespace

TEST_CASE("TLS: the peer is verified against the CA file + by hostname + with SNI", "[http][tls]") {
  TlsWorld w;

  SECTION("with the test CA") {
    auto options = no_env_proxy();
    options.ca_file = (w.pki.dir / "ca.pem").string();
    host::HttpClient client(options);
    auto r = client.request(host::HttpRequest{.url = w.url("localhost", "/hello")});
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "hello over tls");
    // The connection is kept and reused.
    auto again = client.request(host::HttpRequest{.url = w.url("localhost", "/hello")});
    REQUIRE(again);
    CHECK(again->attempts == 1);
  }
  SECTION("without it (system store only): an unknown issuer") {
    host::HttpClient client(no_env_proxy());
    auto r = client.request(host::HttpRequest{.url = w.url("localhost", "/hello")});
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == host::HttpErrorKind::tls);
    INFO(r.error().message);
    CHECK(r.error().message.find("certificate verify failed") != std::string::npos);
    CHECK((r.error().message.find("local issuer") != std::string::npos || r.error().message.find("self-signed") != std::string::npos));
  }
  SECTION("an unreadable CA file is an error on use, not a crash") {
    auto options = no_env_proxy();
    options.ca_file = (w.pki.dir / "missing.pem").string();
    host::HttpClient client(options);
    auto r = client.request(host::HttpRequest{.url = w.url("localhost", "/hello")});
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == host::HttpErrorKind::tls);
    CHECK(r.error().message.find("missing.pem") != std::string::npos);
  }
  SECTION("a name the certificate does not carry") {
    auto options = no_env_proxy();
    options.ca_file = (w.pki.dir / "ca.pem").string();
    host::HttpClient client(options);
    auto r = client.request(host::HttpRequest{.url = w.url("127.0.0.1", "/hello")});
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == host::HttpErrorKind::tls);
    INFO(r.error().message);
    CHECK(r.error().message.find("mismatch") != std::string::npos);
  }
}

TEST_CASE("HTTPS through a CONNECT proxy + unless NO_PROXY matches", "[http][proxy]") {
  TlsWorld w;
  auto options = no_env_proxy();
  options.ca_file = (w.pki.dir / "ca.pem").string();
  options.https_proxy = "http://127.0.0.1:" + std::to_string(w.proxy_port);
  {
    host::HttpClient client(options);
    auto r = client.request(host::HttpRequest{.url = w.url("localhost", "/hello")});
    REQUIRE(r);
    CHECK(r->body == "hello over tls");
  }
  CHECK(w.stats()["proxy_connects"] == 1);
  options.no_proxy = "example.com,localhost";
  {
    host::HttpClient client(options);
    auto r = client.request(host::HttpRequest{.url = w.url("localhost", "/hello")});
    REQUIRE(r);
  }
  CHECK(w.stats()["proxy_connects"] == 1);
}

TEST_CASE("NO_PROXY entries match hosts and their subdomains", "[http][proxy]") {
  CHECK(host::no_proxy_matches("*", "api.github.com"));
  CHECK(host::no_proxy_matches("github.com", "api.github.com"));
  CHECK(host::no_proxy_matches(".github.com", "api.github.com"));
  CHECK(host::no_proxy_matches("a.org, github.com:443", "github.com"));
  CHECK_FALSE(host::no_proxy_matches("hub.com", "github.com"));
  CHECK_FALSE(host::no_proxy_matches("", "github.com"));
  CHECK(host::no_proxy_matches("127.0.0.1", "127.0.0.1"));
}

TEST_CASE("GitHub App: an RS256 JWT buys an installation token + cached until 5 minutes before expiry", "[github][app]") {
  TlsWorld w;
  auto options = no_env_proxy();
  options.ca_file = (w.pki.dir / "ca.pem").string();
  host::HttpClient client(options);
  host::GitHubAppToken app(client, host::GitHubAppOptions{.api_url = w.url("localhost", ""),
                                                          .app_id = "12345",
                                                          .private_key_pem = slurp(w.pki.dir / "app.pem"),
                                                          .installation_id = 42});
  auto t1 = app.token();
  REQUIRE(t1);
  CHECK(*t1 == "ghs_installation_42_1");
  auto t2 = app.token();
  REQUIRE(t2);
  CHECK(*t2 == *t1);
  auto stats = w.stats();
  CHECK(stats["token_requests"] == 1);
  CHECK(stats["last_jwt"]["payload"]["iss"] == "12345");
  CHECK(stats["last_jwt"]["header"]["alg"] == "RS256");

  // Within renew_before of the expiry (here: always), a new token is fetched.
  host::GitHubAppToken eager(client, host::GitHubAppOptions{.api_url = w.url("localhost", ""),
                                                            .app_id = "12345",
                                                            .private_key_pem = slurp(w.pki.dir / "app.pem"),
                                                            .installation_id = 42,
                                                            .renew_before = std::chrono::seconds(3600 + 60)});
  auto t3 = eager.token();
  REQUIRE(t3);
  CHECK(*t3 == "ghs_installation_42_2");
  auto t4 = eager.token();
  REQUIRE(t4);
  CHECK(*t4 == "ghs_installation_42_3");

  host::GitHubAppToken bad(client, host::GitHubAppOptions{.api_url = w.url("localhost", ""),
                                                          .app_id = "12345",
                                                          .private_key_pem = "not a key",
                                                          .installation_id = 42});
  auto none = bad.token();
  REQUIRE_FALSE(none);
  CHECK(none.error().kind == host::HostError::Kind::unauthorized);
}

TEST_CASE("a POST on a kept-alive connection the server has closed is resent once on a new one", "[http][pool]") {
  TlsWorld w;
  auto options = no_env_proxy();
  options.ca_file = (w.pki.dir / "ca.pem").string();
  options.idle_timeout = std::chrono::seconds(30);  // longer than the server's 500 ms keep-alive
  host::HttpClient client(options);
  auto first = client.request(host::HttpRequest{.url = w.url("localhost", "/hello")});
  REQUIRE(first);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  // Not retry_safe: only the "closed before any answer on a reused connection" rule resends it.
  auto post = client.request(host::HttpRequest{.method = "POST", .url = w.url("localhost", "/app/installations/1/access_tokens")});
  REQUIRE(post);
  CHECK(post->status == 401);
  CHECK(post->attempts == 1);
  CHECK(w.stats()["token_requests"] == 1);
}
