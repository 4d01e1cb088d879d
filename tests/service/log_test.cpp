// The hand-built JSON on the intake's hot path: log lines from views (log::write_fields), JSON
// strings (log::append_json_string), the answers of /hooks (json_response), and the metrics of a
// 202. Each is checked by parsing it back with nlohmann (what a log shipper or client would do).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "service/intake.hpp"
#include "service/log.hpp"
#include "service/metrics.hpp"

using namespace tollgate::service;
namespace fs = std::filesystem;

namespace {

std::string as_json_string(std::string_view s) {
  std::string out;
  log::append_json_string(out, s);
  return out;
}

// What `f` writes to stderr.
template <typename F>
std::string capture_stderr(F f) {
  const fs::path file = fs::temp_directory_path() / ("tollgate-log-test-" + std::to_string(::getpid()));
  std::fflush(stderr);
  const int saved = ::dup(2);
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE(fd >= 0);
  ::dup2(fd, 2);
  f();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  ::close(fd);
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  fs::remove(file);
  return ss.str();
}

}  // namespace

TEST_CASE("JSON strings: plain ASCII as is, the rest escaped, invalid UTF-8 replaced", "[log]") {
  CHECK(as_json_string("delivery stored") == R"("delivery stored")");
  CHECK(as_json_string("") == R"("")");
  CHECK(as_json_string("a \"quoted\" \\ path") == R"("a \"quoted\" \\ path")");
  CHECK(as_json_string("line\nbreak\ttab") == R"("line\nbreak\ttab")");
  CHECK(as_json_string("caf\xc3\xa9") == "\"caf\xc3\xa9\"");
  CHECK(as_json_string("bad \xff byte") == "\"bad \xef\xbf\xbd byte\"");
  for (std::string_view s : {"x", "\x01", "\"", "\\", "\x7f", "ok\xc3"}) {
    INFO(s);
    CHECK(nlohmann::json::parse(as_json_string(s)).is_string());
  }
}

TEST_CASE("write_fields: one parseable line with the fixed keys first and typed values", "[log]") {
  const std::string delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
  const std::string line = capture_stderr([&] {
    log::write_fields(log::Level::info, "delivery stored",
                      {{"delivery", delivery}, {"n", std::int64_t{42}}, {"ms", 1.5}, {"ok", true}, {"msg", "shadow"},
                       {"repo", "a\"b"}});
  });
  REQUIRE(line.size() > 1);
  CHECK(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);
  CHECK(line.rfind(R"({"ts":")", 0) == 0);
  auto j = nlohmann::json::parse(line);
  CHECK(std::regex_match(j["ts"].get<std::string>(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
  CHECK(j["level"] == "info");
  CHECK(j["msg"] == "delivery stored");  // a field cannot shadow a fixed key
  CHECK(j["delivery"] == delivery);
  CHECK(j["n"] == 42);
  CHECK(j["ms"] == 1.5);
  CHECK(j["ok"] == true);
  CHECK(j["repo"] == "a\"b");

  log::set_level(log::Level::warn);
  const std::string quiet = capture_stderr([] { log::write_fields(log::Level::info, "not shown", {{"k", "v"}}); });
  log::set_level(log::Level::info);
  CHECK(quiet.empty());
}

TEST_CASE("log::Batch: a thread's lines are written together when the batch ends, others' at once", "[log]") {
  auto stderr_bytes = [] {
    struct stat st {};
    return ::fstat(2, &st) == 0 ? static_cast<long>(st.st_size) : -1L;
  };
  long inside = -1, after_other_thread = -1, after_batch = -1;
  const std::string out = capture_stderr([&] {
    {
      log::Batch batch;
      log::write_fields(log::Level::info, "delivery stored", {{"delivery", "d-1"}});
      log::write_fields(log::Level::info, "delivery stored", {{"delivery", "d-2"}});
      log::info("delivery stored", {{"delivery", "d-3"}});
      inside = stderr_bytes();
      std::thread other([] { log::warn("from another thread"); });
      other.join();
      after_other_thread = stderr_bytes();
    }
    after_batch = stderr_bytes();
    log::info("after the batch");
  });
  CHECK(inside == 0);                 // nothing written while the batch lives
  CHECK(after_other_thread > 0);      // another thread's line is not held back
  CHECK(after_batch > after_other_thread);
  std::vector<nlohmann::json> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  REQUIRE(lines.size() == 5);
  CHECK(lines[0]["msg"] == "from another thread");
  CHECK(lines[1]["delivery"] == "d-1");
  CHECK(lines[2]["delivery"] == "d-2");
  CHECK(lines[3]["delivery"] == "d-3");
  CHECK(lines[4]["msg"] == "after the batch");  // written directly again
}

TEST_CASE("the answers of /hooks: the message, and the delivery id when known", "[intake]") {
  auto accepted = json_response(202, "status", "accepted", "abc-1");
  CHECK(accepted.status == 202);
  CHECK(accepted.body == "{\"delivery\":\"abc-1\",\"status\":\"accepted\"}\n");
  auto refused = json_response(401, "error", "signature does not match \"x\"");
  CHECK(nlohmann::json::parse(refused.body) == nlohmann::json{{"error", "signature does not match \"x\""}});
}

TEST_CASE("a 202's metrics: latency, the request and the delivery, one series per label set", "[metrics]") {
  Metrics m;
  m.answered_202("github", "pull_request", "stored", 0.003);
  m.answered_202("github", "pull_request", "stored", 0.0004);
  m.answered_202("github", "issue_comment", "duplicate", 0.02);
  m.delivery("github", "pull_request", "stored");
  const std::string text = m.render(std::nullopt);
  CHECK(text.find("tollgate_deliveries_total{host=\"github\",event=\"pull_request\",outcome=\"stored\"} 3\n") != std::string::npos);
  CHECK(text.find("tollgate_deliveries_total{host=\"github\",event=\"issue_comment\",outcome=\"duplicate\"} 1\n") != std::string::npos);
  CHECK(text.find("tollgate_http_requests_total{route=\"/hooks/{host}\",status=\"202\"} 3\n") != std::string::npos);
  CHECK(text.find("tollgate_intake_duration_seconds_bucket{le=\"0.0005\"} 1\n") != std::string::npos);
  CHECK(text.find("tollgate_intake_duration_seconds_bucket{le=\"0.005\"} 2\n") != std::string::npos);
  CHECK(text.find("tollgate_intake_duration_seconds_count 3\n") != std::string::npos);
}
