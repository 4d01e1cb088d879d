#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "webhooks/receiver.hpp"

using namespace tollgate::webhooks;

namespace {

struct Headers {
  std::map<std::string, std::string> values;  // lower-case names
  HeaderLookup lookup() const {
    return [this](std::string_view name) -> std::string_view {
      std::string key(name);
      for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto it = values.find(key);
      return it == values.end() ? std::string_view{} : std::string_view(it->second);
    };
  }
};

const std::string kSecret = "It's a Secret to Everybody";
const std::string kBody = R"({"action":"opened","repository":{"full_name":"acme/app"},"number":1})";

Headers github(const std::string& event, const std::string& body, const std::string& secret = kSecret) {
  Headers h;
  h.values["x-github-event"] = event;
  h.values["x-github-delivery"] = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
  h.values["x-hub-signature-256"] = "sha256=" + hmac_sha256_hex(secret, body);
  h.values["content-type"] = "application/json";
  return h;
}

ReceiverConfig config(HostKind kind = HostKind::github) {
  ReceiverConfig c;
  c.kind = kind;
  c.secrets = {"old-secret", kSecret};
  return c;
}

}  // namespace

TEST_CASE("HMAC-SHA256 matches GitHub's documented test vector", "[receiver]") {
  CHECK(hmac_sha256_hex(kSecret, "Hello, World!") == "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
  CHECK(constant_time_equal("abc", "abc"));
  CHECK_FALSE(constant_time_equal("abc", "abd"));
  CHECK_FALSE(constant_time_equal("abc", "abcd"));
  // A given value that repeats the secret (the comparison cycles through it) is still not equal.
  CHECK_FALSE(constant_time_equal("abc", "abcabc"));
  CHECK_FALSE(constant_time_equal("abc", "ab"));
  CHECK_FALSE(constant_time_equal("abc", ""));
  CHECK_FALSE(constant_time_equal("", "a"));
  CHECK(constant_time_equal("", ""));
}

TEST_CASE("HMAC-SHA256 with contexts kept per thread and key: RFC 4231's vectors, many keys, many threads", "[receiver]") {
  // RFC 4231 test cases 1, 2 and 6 (a key longer than SHA-256's block).
  CHECK(hmac_sha256_hex(std::string(20, '\x0b'), "Hi There") == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  CHECK(hmac_sha256_hex("Jefe", "what do ya want for nothing?") == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  CHECK(hmac_sha256_hex(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First") ==
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  // Each against OpenSSL's one-shot HMAC(): the same key again and again with other data (a
  // context kept and restarted: without the restart the second MAC would cover both messages),
  // keys taking turns (a kept context per key), more keys than a thread keeps (64: the least
  // recently used go and are set up again when they come back), and an empty key.
  const auto one_shot = [](const std::string& key, const std::string& data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    REQUIRE(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
                 data.size(), out, &len) != nullptr);
    return std::string(reinterpret_cast<const char*>(out), len);
  };
  const auto ours = [](const std::string& key, const std::string& data) {
    unsigned char out[32];
    REQUIRE(hmac_sha256(key, data, out));
    return std::string(reinterpret_cast<const char*>(out), sizeof out);
  };
  CHECK(ours("", "body") == one_shot("", "body"));
  // (key, data) in the order a thread uses them.
  const auto sequence = [](int thread) {
    std::vector<std::pair<std::string, std::string>> calls;
    for (int i = 0; i < 6; ++i) calls.emplace_back("k1", "message " + std::to_string(i));
    for (int round = 0; round < 10; ++round) {
      for (int k = 0; k < 5; ++k) calls.emplace_back("key-" + std::to_string(k), "{\"round\":" + std::to_string(round) + "}");
    }
    for (int k = 0; k < 80; ++k) calls.emplace_back("many-" + std::to_string((k + thread * 13) % 80), "m" + std::to_string(k));
    for (int k = 0; k < 80; k += 7) calls.emplace_back("many-" + std::to_string(k), "again " + std::to_string(k));
    calls.emplace_back("k1", "");
    return calls;
  };
  for (const auto& [key, data] : sequence(0)) {
    INFO(key << " / " << data);
    CHECK(ours(key, data) == one_shot(key, data));
  }
  std::vector<std::pair<std::string, std::string>> expected[4];
  for (int t = 0; t < 4; ++t) {
    for (const auto& [key, data] : sequence(t)) expected[t].emplace_back(key, one_shot(key, data));
  }
  std::atomic<int> compared{0}, mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const auto calls = sequence(t);
      for (std::size_t i = 0; i < calls.size(); ++i) {
        unsigned char out[32];
        if (!hmac_sha256(calls[i].first, calls[i].second, out) ||
            std::string(reinterpret_cast<const char*>(out), sizeof out) != expected[t][i].second) {
          ++mismatches;
        }
        ++compared;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(compared.load() == 4 * static_cast<int>(sequence(0).size()));
  CHECK(mismatches.load() == 0);
}

TEST_CASE("a signed GitHub delivery of a used event is to be stored", "[receiver]") {
  auto h = github("pull_request", kBody);
  auto v = receive(config(), h.lookup(), kBody);
  REQUIRE(v.outcome == Verdict::Outcome::store);
  CHECK(v.status == 202);
  CHECK(v.delivery.delivery_id == "72d3162e-cc78-11e3-81ab-4c9367dc0958");
  CHECK(v.delivery.event_type == "pull_request");
  CHECK(v.delivery.repo == "acme/app");
  CHECK(v.delivery.body == kBody);
}

TEST_CASE("deliveries are refused in the documented order, each with its status", "[receiver]") {
  SECTION("no event header") {
    Headers h = github("pull_request", kBody);
    h.values.erase("x-github-event");
    auto v = receive(config(), h.lookup(), kBody);
    CHECK(v.status == 400);
    CHECK(v.message == "missing X-GitHub-Event header: not a GitHub webhook delivery");
  }
  SECTION("missing signature") {
    Headers h = github("pull_request", kBody);
    h.values.erase("x-hub-signature-256");
    auto v = receive(config(), h.lookup(), kBody);
    CHECK(v.status == 401);
    CHECK(v.message == "missing X-Hub-Signature-256 header: give the webhook the secret configured for this host");
  }
  SECTION("wrong secret") {
    auto h = github("pull_request", kBody, "guess");
    auto v = receive(config(), h.lookup(), kBody);
    CHECK(v.status == 401);
    CHECK(v.message == "signature does not match any secret configured for this host");
  }
  SECTION("the signature is over the raw body: a changed byte fails") {
    auto h = github("pull_request", kBody);
    std::string tampered = kBody;
    tampered[5] = 'X';
    CHECK(receive(config(), h.lookup(), tampered).status == 401);
  }
  SECTION("a bad signature is refused even for an event tollgate does not use") {
    auto h = github("issues", kBody, "guess");
    CHECK(receive(config(), h.lookup(), kBody).status == 401);
  }
  SECTION("not JSON") {
    std::string body = "{\"action\": ";
    auto h = github("pull_request", body);
    auto v = receive(config(), h.lookup(), body);
    CHECK(v.status == 400);
    CHECK(v.message.rfind("body is not valid JSON", 0) == 0);
  }
  SECTION("JSON but not an object") {
    std::string body = "[1,2]";
    auto h = github("pull_request", body);
    CHECK(receive(config(), h.lookup(), body).message == "body must be a JSON object");
  }
  SECTION("a content type that is neither JSON nor a form") {
    auto h = github("pull_request", kBody);
    h.values["content-type"] = "text/plain";
    auto v = receive(config(), h.lookup(), kBody);
    CHECK(v.status == 415);
    CHECK(v.message == "unsupported Content-Type 'text/plain': set the webhook's content type to application/json");
  }
  SECTION("a Gitea delivery sent to a GitHub host") {
    auto h = github("pull_request", kBody);
    h.values["x-gitea-event"] = "pull_request";
    auto v = receive(config(), h.lookup(), kBody);
    CHECK(v.status == 400);
    CHECK(v.message == "this delivery comes from Gitea (X-Gitea-Event) but the host is configured as github; set its kind to gitea");
  }
  SECTION("a repository outside the allowlist") {
    auto c = config();
    c.repos.push_back(*tollgate::pipeline::Glob::compile("other/*"));
    auto h = github("pull_request", kBody);
    auto v = receive(c, h.lookup(), kBody);
    CHECK(v.status == 403);
    CHECK(v.message == "repository 'acme/app' is not among this host's 'repos'");
  }
}

TEST_CASE("pings are answered and unused events acknowledged, neither stored", "[receiver]") {
  auto ping = github("ping", R"({"zen":"Keep it logically awesome."})");
  CHECK(receive(config(), ping.lookup(), R"({"zen":"Keep it logically awesome."})").outcome == Verdict::Outcome::ping);
  auto issues = github("issues", kBody);
  auto v = receive(config(), issues.lookup(), kBody);
  CHECK(v.outcome == Verdict::Outcome::ignore);
  CHECK(v.status == 202);
}

TEST_CASE("GitHub's form encoding carries the payload in payload=", "[receiver]") {
  std::string form = "payload=%7B%22action%22%3A%22opened%22%2C%22repository%22%3A%7B%22full_name%22%3A%22acme%2Fapp%22%7D%7D";
  auto h = github("pull_request", form);
  h.values["content-type"] = "application/x-www-form-urlencoded";
  auto v = receive(config(), h.lookup(), form);
  REQUIRE(v.outcome == Verdict::Outcome::store);
  CHECK(v.delivery.body == R"({"action":"opened","repository":{"full_name":"acme/app"}})");
  CHECK(v.delivery.repo == "acme/app");
  std::string broken = "payload=%7";
  auto hb = github("pull_request", broken);
  hb.values["content-type"] = "application/x-www-form-urlencoded";
  CHECK(receive(config(), hb.lookup(), broken).status == 400);
}

TEST_CASE("GitLab compares its token in constant time; Gitea signs with bare hex", "[receiver]") {
  const std::string body = R"({"object_kind":"push","project":{"path_with_namespace":"group/sub/app"}})";
  Headers gl;
  gl.values["x-gitlab-event"] = "Push Hook";
  gl.values["x-gitlab-token"] = kSecret;
  gl.values["content-type"] = "application/json";
  auto v = receive(config(HostKind::gitlab), gl.lookup(), body);
  REQUIRE(v.outcome == Verdict::Outcome::store);
  CHECK(v.delivery.repo == "group/sub/app");
  CHECK(v.delivery.delivery_id.rfind("sha256:", 0) == 0);  // no idempotency header: the body's digest
  gl.values["idempotency-key"] = "f00d";
  CHECK(receive(config(HostKind::gitlab), gl.lookup(), body).delivery.delivery_id == "f00d");
  gl.values["x-gitlab-token"] = "nope";
  CHECK(receive(config(HostKind::gitlab), gl.lookup(), body).status == 401);

  const std::string gbody = R"({"repository":{"full_name":"acme/app"}})";
  Headers gt;
  gt.values["x-gitea-event"] = "push";
  gt.values["x-github-event"] = "push";  // Gitea sends both
  gt.values["x-gitea-delivery"] = "d-1";
  gt.values["x-gitea-signature"] = hmac_sha256_hex(kSecret, gbody);
  gt.values["content-type"] = "application/json";
  auto g = receive(config(HostKind::gitea), gt.lookup(), gbody);
  REQUIRE(g.outcome == Verdict::Outcome::store);
  CHECK(g.delivery.delivery_id == "d-1");
}
