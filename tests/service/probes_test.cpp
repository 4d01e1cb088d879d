// verify probes (service/probes.hpp) against a tiny HTTP server on 127.0.0.1: canned statuses and
// bodies, Prometheus-shaped answers (the /api/v1/query envelope of the Prometheus HTTP API), a
// slow endpoint, a port nobody listens on, and malformed answers.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "service/host/http_client.hpp"
#include "service/probes.hpp"

using namespace tollgate::service;
using tollgate::pipeline::HttpStep;
using tollgate::pipeline::PrometheusStep;
using Kind = ProbeResult::Kind;
using namespace std::chrono_literals;

namespace {

struct Canned {
  int status = 200;
  std::string body{};
  std::string content_type = "application/json";
  std::chrono::milliseconds delay{0};
  std::string raw{};  // sent as is instead of an HTTP answer
  std::string extra_headers{};
};

struct Seen {
  std::string target;
  std::string head;  // request line and headers
};

// One thread accepting, one thread per connection; every answer closes the connection.
class TestServer {
 public:
  TestServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 64) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~TestServer() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    ::shutdown(fd_, SHUT_RDWR);
    acceptor_.join();
    ::close(fd_);
    std::vector<std::thread> workers;
    {
      std::lock_guard lock(mutex_);
      workers.swap(workers_);
    }
    for (auto& t : workers) t.join();
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  [[nodiscard]] std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void route(const std::string& path, Canned c) {
    std::lock_guard lock(mutex_);
    routes_[path] = std::move(c);
  }
  [[nodiscard]] std::vector<Seen> seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  void accept_loop() {
    while (true) {
      const int c = ::accept(fd_, nullptr, nullptr);
      std::lock_guard lock(mutex_);
      if (c < 0 || stopping_) {
        if (c >= 0) ::close(c);
        return;
      }
      workers_.emplace_back([this, c] { serve(c); });
    }
  }

  void serve(int c) {
    timeval tv{5, 0};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string req;
    char buf[4096];
    while (req.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      req.append(buf, static_cast<std::size_t>(n));
    }
    const auto sp1 = req.find(' ');
    const auto sp2 = req.find(' ', sp1 == std::string::npos ? 0 : sp1 + 1);
    std::string target = sp1 != std::string::npos && sp2 != std::string::npos ? req.substr(sp1 + 1, sp2 - sp1 - 1) : "";
    Canned answer{404, "not found", "text/plain"};
    {
      std::unique_lock lock(mutex_);
      seen_.push_back(Seen{target, req.substr(0, req.find("\r\n\r\n"))});
      if (auto it = routes_.find(target.substr(0, target.find('?'))); it != routes_.end()) answer = it->second;
      if (answer.delay.count() > 0) cv_.wait_for(lock, answer.delay, [this] { return stopping_; });
    }
    std::string out = answer.raw;
    if (out.empty()) {
      out = "HTTP/1.1 " + std::to_string(answer.status) + " Whatever\r\nContent-Type: " + answer.content_type +
            "\r\nContent-Length: " + std::to_string(answer.body.size()) + "\r\nConnection: close\r\n" +
            answer.extra_headers + "\r\n" + answer.body;
    }
    std::size_t off = 0;
    while (off < out.size()) {
      const ssize_t n = ::send(c, out.data() + off, out.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    ::shutdown(c, SHUT_WR);
    ::close(c);
  }

  int fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  std::map<std::string, Canned> routes_;
  std::vector<Seen> seen_;
};

// A port on 127.0.0.1 that nobody listens on (bound, then released).
int unused_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

ProbeOptions fast() {
  ProbeOptions o;
  o.timeout = 2000ms;
  return o;
}

const TemplateValues vars = {{"release", {{"version", "1.2.3"}}}, {"stage", {{"name", "prod east"}}}};

HttpStep http(std::string url, int expect = 200) {
  HttpStep s;
  s.url = std::move(url);
  s.expect = expect;
  return s;
}

PrometheusStep prom(std::string url, std::string query, std::optional<double> below, std::optional<double> above = {}) {
  PrometheusStep s;
  s.url = std::move(url);
  s.query = std::move(query);
  s.below = below;
  s.above = above;
  return s;
}

std::string vector_answer(const std::vector<std::pair<std::string, std::string>>& job_values) {
  nlohmann::json result = nlohmann::json::array();
  for (const auto& [job, value] : job_values)
    result.push_back({{"metric", {{"__name__", "errors"}, {"job", job}}}, {"value", {1435781451.781, value}}});
  return nlohmann::json{{"status", "success"}, {"data", {{"resultType", "vector"}, {"result", result}}}}.dump();
}

std::string scalar_answer(const std::string& value) {
  return nlohmann::json{{"status", "success"},
                        {"data", {{"resultType", "scalar"}, {"result", {1435781451.781, value}}}}}
      .dump();
}

std::string error_answer(const std::string& type, const std::string& error) {
  return nlohmann::json{{"status", "error"}, {"errorType", type}, {"error", error}}.dump();
}

bool one_line(const std::string& s) { return s.find_first_of("\r\n") == std::string::npos; }

std::string decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("http probe: the status is compared with expect", "[probes]") {
  TestServer server;
  server.route("/healthz", Canned{200, "ok", "text/plain"});
  server.route("/down", Canned{503, "upstream unavailable", "text/plain"});
  server.route("/moved", Canned{301, "", "text/plain", 0ms, "", "Location: https://elsewhere.example/healthz?token=s3cret\r\n"});
  server.route("/gone", Canned{404, "", "text/plain"});
  server.route("/created", Canned{201, "{}", "application/json"});

  auto r = run_http_probe(http(server.base() + "/healthz"), vars, fast());
  CHECK(r.kind == Kind::pass);
  CHECK(r.message == "GET " + server.base() + "/healthz answered 200");

  r = run_http_probe(http(server.base() + "/down"), vars, fast());
  CHECK(r.kind == Kind::fail);
  CHECK(r.message == "GET " + server.base() + "/down answered 503, expected 200");
  // one request: a probe is one look, the engine polls again
  CHECK(server.seen().size() == 2);

  r = run_http_probe(http(server.base() + "/moved"), vars, fast());
  CHECK(r.kind == Kind::fail);
  CHECK(r.message == "GET " + server.base() + "/moved answered 301, expected 200 (redirect to https://elsewhere.example/healthz?…)");

  r = run_http_probe(http(server.base() + "/gone", 404), vars, fast());
  CHECK(r.kind == Kind::pass);
  r = run_http_probe(http(server.base() + "/created", 200), vars, fast());
  CHECK(r.kind == Kind::fail);
  CHECK(r.message.find("answered 201, expected 200") != std::string::npos);
  r = run_http_probe(http(server.base() + "/created", 201), vars, fast());
  CHECK(r.kind == Kind::pass);
}

TEST_CASE("http probe: a service that does not answer fails the probe", "[probes]") {
  SECTION("connection refused") {
    const int port = unused_port();
    auto r = run_http_probe(http("http://127.0.0.1:" + std::to_string(port) + "/healthz"), vars, fast());
    CHECK(r.kind == Kind::fail);
    CHECK(r.message.find("GET http://127.0.0.1:" + std::to_string(port) + "/healthz: connect") == 0);
    CHECK(r.message.find("expected 200") != std::string::npos);
  }
  SECTION("timeout") {
    TestServer server;
    server.route("/slow", Canned{200, "ok", "text/plain", 10'000ms});
    ProbeOptions o;
    o.timeout = 300ms;
    const auto start = std::chrono::steady_clock::now();
    auto r = run_http_probe(http(server.base() + "/slow"), vars, o);
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK(r.kind == Kind::fail);
    CHECK(r.message.find("no answer within 300 ms") != std::string::npos);
    CHECK(took < 5s);
  }
  SECTION("not HTTP") {
    TestServer server;
    server.route("/garbage", Canned{200, "", "", 0ms, "SSH-2.0-OpenSSH_9.2\r\n\r\n"});
    auto r = run_http_probe(http(server.base() + "/garbage"), vars, fast());
    CHECK(r.kind == Kind::fail);
    CHECK(one_line(r.message));
  }
  SECTION("closed without an answer") {
    TestServer server;
    server.route("/hangup", Canned{200, "", "", 0ms, "H"});
    auto r = run_http_probe(http(server.base() + "/hangup"), vars, fast());
    CHECK(r.kind == Kind::fail);
  }
}

TEST_CASE("http probe: the url is rendered, and unsafe bytes are encoded", "[probes]") {
  TestServer server;
  server.route("/version/1.2.3", Canned{200, "ok", "text/plain"});
  auto r = run_http_probe(http(server.base() + "/version/{{release.version}}?stage={{stage.name}}&token=s3cret"), vars,
                          fast());
  CHECK(r.kind == Kind::pass);
  REQUIRE(server.seen().size() == 1);
  CHECK(server.seen()[0].target == "/version/1.2.3?stage=prod%20east&token=s3cret");
  // the query string (it may hold a token) stays out of the message
  CHECK(r.message == "GET " + server.base() + "/version/1.2.3?… answered 200");

  // whitespace around the rendered url is dropped
  r = run_http_probe(http("  " + server.base() + "/version/{{release.version}}\n"), vars, fast());
  CHECK(r.kind == Kind::pass);
}

TEST_CASE("http probe: credentials in the url become Basic authentication and stay out of messages", "[probes]") {
  TestServer server;
  server.route("/private", Canned{401, "", "text/plain"});
  auto r = run_http_probe(http("http://probe:p%40ss@" + server.base().substr(7) + "/private"), vars, fast());
  CHECK(r.kind == Kind::fail);
  CHECK(r.message == "GET " + server.base() + "/private answered 401, expected 200");
  REQUIRE(server.seen().size() == 1);
  // base64("probe:p@ss")
  CHECK(server.seen()[0].head.find("Authorization: Basic cHJvYmU6cEBzcw==") != std::string::npos);
  CHECK(server.seen()[0].target == "/private");

  const std::string refused = "http://probe:hunter2@127.0.0.1:" + std::to_string(unused_port()) + "/private?token=t0ken";
  r = run_http_probe(http(refused), vars, fast());
  CHECK(r.kind == Kind::fail);
  CHECK(r.message.find("hunter2") == std::string::npos);
  CHECK(r.message.find("t0ken") == std::string::npos);
  CHECK(r.message.find("connect: Connection refused") != std::string::npos);
}

TEST_CASE("probes can share a client", "[probes]") {
  TestServer server;
  server.route("/healthz", Canned{200, "ok", "text/plain"});
  server.route("/api/v1/query", Canned{200, scalar_answer("0.5")});
  host::HttpClientOptions co;
  co.max_attempts = 1;
  co.max_rate_limit_waits = 0;
  host::HttpClient client(co);
  ProbeOptions o = fast();
  o.client = &client;
  for (int i = 0; i < 3; ++i) {
    CHECK(run_http_probe(http(server.base() + "/healthz"), vars, o).kind == Kind::pass);
    CHECK(run_prometheus_probe(prom(server.base(), "x", 1), vars, o).kind == Kind::pass);
  }
  CHECK(server.seen().size() == 6);
}

TEST_CASE("http probe: a url that is not one after rendering is terminal", "[probes]") {
  const TemplateValues v = {{"base", ""}, {"port", "99999"}};
  for (const char* url : {"{{base}}/healthz", "ftp://example.com/healthz", "http://", "http:///healthz",
                          "http://127.0.0.1:{{port}}/healthz", "http://127.0.0.1:/x", "http://exa mple.com/",
                          "http://[::1/healthz", "http://ex%41mple.com/", "mailto:a@b", "{{#release}}unclosed",
                          "http://probe:hunter2@/healthz", "ftp://probe:hunter2@example.com/", "probe:hunter2@x"}) {
    CAPTURE(url);
    auto r = run_http_probe(http(url), v, fast());
    CHECK(r.kind == Kind::terminal);
    CHECK(!r.message.empty());
    CHECK(one_line(r.message));
    CHECK(r.message.find("hunter2") == std::string::npos);
  }
}

TEST_CASE("prometheus probe: below and above", "[probes]") {
  TestServer server;
  const std::string q = "sum(rate(errors[5m]))";
  auto answer = [&](const std::string& body) { server.route("/api/v1/query", Canned{200, body}); };

  answer(vector_answer({{"api", "0.002"}}));
  auto r = run_prometheus_probe(prom(server.base(), q, 0.01), vars, fast());
  CHECK(r.kind == Kind::pass);
  CHECK(r.message == "query 'sum(rate(errors[5m]))': errors{job=\"api\"} = 0.002, below 0.01");

  answer(vector_answer({{"api", "0.03"}}));
  r = run_prometheus_probe(prom(server.base(), q, 0.01), vars, fast());
  CHECK(r.kind == Kind::fail);
  CHECK(r.message == "query 'sum(rate(errors[5m]))': errors{job=\"api\"} = 0.03, expected below 0.01");

  // below is strict
  answer(vector_answer({{"api", "0.01"}}));
  CHECK(run_prometheus_probe(prom(server.base(), q, 0.01), vars, fast()).kind == Kind::fail);

  answer(scalar_answer("42"));
  r = run_prometheus_probe(prom(server.base(), "scalar(up)", std::nullopt, 1), vars, fast());
  CHECK(r.kind == Kind::pass);
  CHECK(r.message == "query 'scalar(up)': value = 42, above 1");
  answer(scalar_answer("0.5"));
  r = run_prometheus_probe(prom(server.base(), "scalar(up)", std::nullopt, 1), vars, fast());
  CHECK(r.kind == Kind::fail);
  CHECK(r.message == "query 'scalar(up)': value = 0.5, expected above 1");

  // both: a range
  answer(scalar_answer("3"));
  CHECK(run_prometheus_probe(prom(server.base(), "x", 5, 1), vars, fast()).kind == Kind::pass);
  answer(scalar_answer("7"));
  r = run_prometheus_probe(prom(server.base(), "x", 5, 1), vars, fast());
  CHECK(r.kind == Kind::fail);
  CHECK(r.message == "query 'x': value = 7, expected above 1 and below 5");

  // NaN holds no bound; infinities compare as numbers; exponents parse
  answer(scalar_answer("NaN"));
  r = run_prometheus_probe(prom(server.base(), "x", 5), vars, fast());
  CHECK(r.kind == Kind::fail);
  CHECK(r.message == "query 'x': value = NaN, expected below 5");
  answer(scalar_answer("+Inf"));
  CHECK(run_prometheus_probe(prom(server.base(), "x", 5), vars, fast()).kind == Kind::fail);
  CHECK(run_prometheus_probe(prom(server.base(), "x", std::nullopt, 5), vars, fast()).kind == Kind::pass);
  answer(scalar_answer("-Inf"));
  CHECK(run_prometheus_probe(prom(server.base(), "x", 5), vars, fast()).kind == Kind::pass);
  answer(scalar_answer("1e-05"));
  CHECK(run_prometheus_probe(prom(server.base(), "x", 0.0001), vars, fast()).kind == Kind::pass);
}

TEST_CASE("prometheus probe: no series, and several series", "[probes]") {
  TestServer server;
  auto answer = [&](const std::string& body) { server.route("/api/v1/query", Canned{200, body}); };

  answer(vector_answer({}));
  auto r = run_prometheus_probe(prom(server.base(), "errors", 1), vars, fast());
  CHECK(r.kind == Kind::fail);
  CHECK(r.message == "query 'errors': query returned no series");

  answer(vector_answer({{"api", "0.1"}, {"web", "0.2"}, {"worker", "0.3"}}));
  r = run_prometheus_probe(prom(server.base(), "errors", 1), vars, fast());
  CHECK(r.kind == Kind::pass);
  CHECK(r.message == "query 'errors': all 3 series below 1");

  answer(vector_answer({{"api", "0.1"}, {"web", "2.5"}, {"worker", "0.3"}}));
  r = run_prometheus_probe(prom(server.base(), "errors", 1), vars, fast());
  CHECK(r.kind == Kind::fail);
  CHECK(r.message == "query 'errors': 1 of 3 series not below 1: errors{job=\"web\"} = 2.5");

  std::vector<std::pair<std::string, std::string>> many;
  for (int i = 0; i < 10; ++i) many.emplace_back("job" + std::to_string(i), std::to_string(i + 10));
  answer(vector_answer(many));
  r = run_prometheus_probe(prom(server.base(), "errors", 1), vars, fast());
  CHECK(r.kind == Kind::fail);
  CHECK(r.message.find("10 of 10 series not below 1: errors{job=\"job0\"} = 10; errors{job=\"job1\"} = 11") !=
        std::string::npos);
  CHECK(r.message.find("; and 6 more") != std::string::npos);
}

TEST_CASE("prometheus probe: the query is rendered and percent-encoded; the url may have a path", "[probes]") {
  TestServer server;
  server.route("/prom/api/v1/query", Canned{200, scalar_answer("0")});
  const std::string templ = "sum(rate(http_requests_total{job=\"api\", version=\"{{release.version}}\", code=~\"5..\"}[5m])) / 2 + 1";
  const std::string rendered = "sum(rate(http_requests_total{job=\"api\", version=\"1.2.3\", code=~\"5..\"}[5m])) / 2 + 1";
  auto r = run_prometheus_probe(prom(server.base() + "/prom/", templ, 1), vars, fast());
  CHECK(r.kind == Kind::pass);
  REQUIRE(server.seen().size() == 1);
  const std::string target = server.seen()[0].target;
  const std::string prefix = "/prom/api/v1/query?query=";
  REQUIRE(target.rfind(prefix, 0) == 0);
  const std::string encoded = target.substr(prefix.size());
  CHECK(encoded.find_first_of(" \"{}+=&[]/") == std::string::npos);
  CHECK(decode(encoded) == rendered);
  CHECK(encoded == percent_encode_component(rendered));
  CHECK(server.seen()[0].head.find("Accept: application/json") != std::string::npos);

  CHECK(percent_encode_component("a b+c&d=e/f~g.h-i_j%") == "a%20b%2Bc%26d%3De%2Ff~g.h-i_j%25");
  CHECK(percent_encode_component("\xc3\xa9") == "%C3%A9");

  // the url is a template too
  const TemplateValues v = {{"prom", server.base() + "/prom"}};
  CHECK(run_prometheus_probe(prom("{{prom}}", "up", 1), v, fast()).kind == Kind::pass);
}

TEST_CASE("prometheus probe: errors Prometheus reports", "[probes]") {
  TestServer server;
  SECTION("a bad query is terminal, with Prometheus's message") {
    server.route("/api/v1/query",
                 Canned{400, error_answer("bad_data", "invalid parameter \"query\": 1:5: parse error: unexpected \"}\"\nat line 1")});
    auto r = run_prometheus_probe(prom(server.base(), "sum(}", 1), vars, fast());
    CHECK(r.kind == Kind::terminal);
    CHECK(r.message.find("bad_data") != std::string::npos);
    CHECK(r.message.find("parse error: unexpected \"}\" at line 1") != std::string::npos);
    CHECK(one_line(r.message));
  }
  SECTION("a query that cannot be executed is terminal") {
    server.route("/api/v1/query", Canned{422, error_answer("execution", "many-to-many matching not allowed")});
    auto r = run_prometheus_probe(prom(server.base(), "a / b", 1), vars, fast());
    CHECK(r.kind == Kind::terminal);
    CHECK(r.message.find("many-to-many matching not allowed") != std::string::npos);
  }
  SECTION("a query timeout is retryable") {
    server.route("/api/v1/query", Canned{503, error_answer("timeout", "query timed out in expression evaluation")});
    auto r = run_prometheus_probe(prom(server.base(), "x", 1), vars, fast());
    CHECK(r.kind == Kind::retryable);
    CHECK(r.message.find("query timed out") != std::string::npos);
  }
  SECTION("a range vector is terminal") {
    server.route("/api/v1/query",
                 Canned{200, R"({"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}]}})"});
    auto r = run_prometheus_probe(prom(server.base(), "errors[5m]", 1), vars, fast());
    CHECK(r.kind == Kind::terminal);
    CHECK(r.message.find("range vector") != std::string::npos);
  }
  SECTION("a string result is terminal") {
    server.route("/api/v1/query", Canned{200, R"({"status":"success","data":{"resultType":"string","result":[1,"a"]}})"});
    CHECK(run_prometheus_probe(prom(server.base(), "\"a\"", 1), vars, fast()).kind == Kind::terminal);
  }
  SECTION("a step without bounds is terminal, without asking") {
    auto r = run_prometheus_probe(prom(server.base(), "x", std::nullopt), vars, fast());
    CHECK(r.kind == Kind::terminal);
    CHECK(server.seen().empty());
  }
  SECTION("an empty query or a base url with a query string is terminal") {
    CHECK(run_prometheus_probe(prom(server.base(), "{{nothing}}", 1), vars, fast()).kind == Kind::terminal);
    CHECK(run_prometheus_probe(prom(server.base() + "/?x=1", "up", 1), vars, fast()).kind == Kind::terminal);
    CHECK(run_prometheus_probe(prom("prometheus:9090", "up", 1), vars, fast()).kind == Kind::terminal);
    CHECK(server.seen().empty());
  }
}

TEST_CASE("prometheus probe: Prometheus unreachable or answering nonsense", "[probes]") {
  SECTION("connection refused is retryable") {
    auto r = run_prometheus_probe(prom("http://127.0.0.1:" + std::to_string(unused_port()), "up", 1), vars, fast());
    CHECK(r.kind == Kind::retryable);
    CHECK(r.message.find("connect") != std::string::npos);
  }
  SECTION("timeout is retryable") {
    TestServer server;
    server.route("/api/v1/query", Canned{200, scalar_answer("0"), "application/json", 10'000ms});
    ProbeOptions o;
    o.timeout = 300ms;
    auto r = run_prometheus_probe(prom(server.base(), "up", 1), vars, o);
    CHECK(r.kind == Kind::retryable);
    CHECK(r.message.find("no answer within 300 ms") != std::string::npos);
  }
  SECTION("an HTML error page from a proxy is retryable") {
    TestServer server;
    server.route("/api/v1/query", Canned{502, "<html><body>Bad Gateway</body></html>", "text/html"});
    auto r = run_prometheus_probe(prom(server.base(), "up", 1), vars, fast());
    CHECK(r.kind == Kind::retryable);
    CHECK(r.message == "prometheus " + server.base() + "/api/v1/query answered HTTP 502 without a Prometheus API answer (content-type text/html)");
  }
  SECTION("a 404 that is not Prometheus is terminal") {
    TestServer server;  // no route: 404 text/plain
    auto r = run_prometheus_probe(prom(server.base(), "up", 1), vars, fast());
    CHECK(r.kind == Kind::terminal);
    CHECK(r.message.find("is the url a Prometheus server?") != std::string::npos);
  }
  SECTION("malformed answers never crash and never pass") {
    TestServer server;
    const std::vector<std::string> bodies = {
        "",
        "not json",
        "null",
        "[]",
        "42",
        "\"success\"",
        R"({"status":"success"})",
        R"({"status":"success","data":null})",
        R"({"status":"success","data":{}})",
        R"({"status":"success","data":{"resultType":7,"result":[]}})",
        R"({"status":"success","data":{"resultType":"vector"}})",
        R"({"status":"success","data":{"resultType":"vector","result":{}}})",
        R"({"status":"success","data":{"resultType":"vector","result":[1,2]}})",
        R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}})",
        R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[]}]}})",
        R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1]}]}})",
        R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"abc"]}]}})",
        R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.5x"]}]}})",
        R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,""]}]}})",
        R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,null]}]}})",
        R"({"status":"success","data":{"resultType":"vector","result":[{"metric":7,"value":[1,{}]}]}})",
        R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{}]}]}})",
        R"({"status":"success","data":{"resultType":"scalar","result":"0"}})",
        R"({"status":"success","data":{"resultType":"scalar","result":[1]}})",
        R"({"status":"success","data":{"resultType":"scalar","result":[1,true]}})",
        R"({"status":"success","data":{"resultType":"weird","result":[]}})",
        R"({"status":"maybe","data":{}})",
        R"({"status":null})",
        R"({"status":"error"})",
        R"({"status":"error","errorType":5,"error":["x"]})",
        std::string(100'000, '['),
        R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"a\u0000b\nc"},"value":[1,"5"]}]}})",
    };
    for (const auto& body : bodies) {
      CAPTURE(body.substr(0, 120));
      server.route("/api/v1/query", Canned{200, body});
      auto r = run_prometheus_probe(prom(server.base(), "up", 1), vars, fast());
      CHECK(r.kind != Kind::pass);
      CHECK(!r.message.empty());
      CHECK(one_line(r.message));
    }
    // every truncation of a good answer
    const std::string good = vector_answer({{"api", "0.5"}, {"web", "0.25"}});
    for (std::size_t n = 0; n < good.size(); n += 5) {
      CAPTURE(n);
      server.route("/api/v1/query", Canned{200, good.substr(0, n)});
      auto r = run_prometheus_probe(prom(server.base(), "up", 1), vars, fast());
      CHECK(r.kind != Kind::pass);
    }
    server.route("/api/v1/query", Canned{200, good});
    CHECK(run_prometheus_probe(prom(server.base(), "up", 1), vars, fast()).kind == Kind::pass);
  }
}
