#include "webhooks/receiver.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <memory>
#include <vector>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/sha.h>
#include <simdjson.h>


namespace tollgate::webhooks {
namespace {

constexpr char kHex[] = "0123456789abcdef";

std::string to_hex(const unsigned char* data, std::size_t n) {
  std::string out(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[data[i] >> 4];
    out[2 * i + 1] = kHex[data[i] & 0xF];
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool printable_token(std::string_view s, std::size_t max) {
  return !s.empty() && s.size() <= max &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

bool is_hex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+' && plus_is_space) {
      out += ' ';
    } else if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int hi = hex_value(text[i + 1]), lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

namespace {

// application/x-www-form-urlencoded: the value of `payload`, percent-decoded.
std::optional<std::string> form_payload(std::string_view body) {
  std::size_t pos = 0;
  while (pos <= body.size()) {
    std::size_t end = body.find('&', pos);
    if (end == std::string_view::npos) end = body.size();
    std::string_view pair = body.substr(pos, end - pos);
    if (pair.substr(0, 8) == "payload=") return percent_decode(pair.substr(8), /*plus_is_space=*/true);
    pos = end + 1;
  }
  return std::nullopt;
}

struct Kind {
  const char* event_header;
  const char* delivery_header;  // nullptr: see GitLab below
  const char* signature_header;
  const char* name;
};

constexpr Kind kGithub{"X-GitHub-Event", "X-GitHub-Delivery", "X-Hub-Signature-256", "GitHub"};
constexpr Kind kGitlab{"X-Gitlab-Event", nullptr, "X-Gitlab-Token", "GitLab"};
constexpr Kind kGitea{"X-Gitea-Event", "X-Gitea-Delivery", "X-Gitea-Signature", "Gitea"};

const Kind& kind_of(HostKind k) {
  switch (k) {
    case HostKind::github: return kGithub;
    case HostKind::gitlab: return kGitlab;
    case HostKind::gitea: return kGitea;
  }
  return kGithub;
}

Verdict reject(int status, std::string message, std::string_view event = {}, std::string_view id = {}) {
  Verdict v;
  v.outcome = Verdict::Outcome::reject;
  v.status = status;
  v.message = std::move(message);
  v.event_type = std::string(event);
  v.delivery_id = std::string(id);
  return v;
}

}  // namespace

namespace {

// OpenSSL 3's one-shot HMAC() looks the algorithm up in the provider store (under a lock) and sets
// the key up again on every call: ~3 us of the ~22 that a 25 KB delivery's HMAC takes here. A
// context per thread and key is set up once; EVP_MAC_init without a key starts it again with the
// key it has. (OpenSSL 3.0.0-3.0.2 returned success without restarting: openssl/openssl#17811,
// fixed in 3.0.3; so the first use in a process checks that a restarted context gives RFC 4231's
// answer, and otherwise every call takes the one-shot path.) At most kMaxContexts per thread, the
// least recently used going first. Keys come from the configuration, never from a request: a
// request only picks the host whose secrets are tried.
constexpr std::size_t kMaxContexts = 64;

using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)>;

// A fresh HMAC-SHA256 context with `key` set up; null if OpenSSL fails.
MacCtxPtr keyed_context(EVP_MAC* mac, std::string_view key) {
  MacCtxPtr ctx(EVP_MAC_CTX_new(mac), &EVP_MAC_CTX_free);
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
  if (!ctx || EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(key.data()), key.size(), params) != 1) {
    return MacCtxPtr(nullptr, &EVP_MAC_CTX_free);
  }
  return ctx;
}

bool mac_once(EVP_MAC_CTX* ctx, bool restart, std::string_view data, unsigned char (&out)[32]) {
  std::size_t n = 0;
  return (!restart || EVP_MAC_init(ctx, nullptr, 0, nullptr) == 1) &&
         EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1 &&
         EVP_MAC_final(ctx, out, &n, sizeof out) == 1 && n == sizeof out;
}

// Whether a restarted context computes what it should (RFC 4231, test case 2, twice on one context).
bool restart_works() {
  static const bool works = [] {
    ERR_set_mark();
    EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (mac == nullptr) {
      ERR_pop_to_mark();
      return false;
    }
    auto ctx = keyed_context(mac, "Jefe");
    static constexpr unsigned char expected[32] = {
        0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
        0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    unsigned char first[32], second[32];
    const bool ok = ctx && mac_once(ctx.get(), false, "what do ya want for nothing?", first) &&
                    mac_once(ctx.get(), true, "what do ya want for nothing?", second) &&
                    std::equal(first, first + 32, expected) && std::equal(second, second + 32, expected);
    EVP_MAC_free(mac);
    ERR_pop_to_mark();  // as each call does: no errors of ours left behind, none of others cleared
    return ok;
  }();
  return works;
}

class MacContexts {
 public:
  MacContexts() { entries_.reserve(kMaxContexts); }
  MacContexts(const MacContexts&) = delete;
  MacContexts& operator=(const MacContexts&) = delete;
  ~MacContexts() {
    for (auto& e : entries_) wipe(*e);
    EVP_MAC_free(mac_);
  }

  // The MAC of `data` under `key` into `out`; false: OpenSSL failed (the context is dropped).
  bool mac(std::string_view key, std::string_view data, unsigned char (&out)[32]) {
    auto it = std::find_if(entries_.begin(), entries_.end(), [key](const auto& e) { return e->key == key; });
    bool fresh = false;
    if (it == entries_.end()) {
      if (mac_ == nullptr) mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
      if (mac_ == nullptr) return false;
      auto ctx = keyed_context(mac_, key);
      if (!ctx) return false;
      auto entry = std::make_unique<Entry>(std::move(ctx));
      entry->key.assign(key);  // in place: no other copy of the secret to wipe
      if (entries_.size() == kMaxContexts) {
        wipe(*entries_.front());
        entries_.erase(entries_.begin());
      }
      entries_.push_back(std::move(entry));
      it = entries_.end() - 1;
      fresh = true;
    } else if (it != entries_.end() - 1) {
      std::rotate(it, it + 1, entries_.end());  // most recently used last
      it = entries_.end() - 1;
    }
    if (mac_once((*it)->ctx.get(), !fresh, data, out)) return true;
    wipe(**it);
    entries_.erase(it);
    return false;
  }

 private:
  struct Entry {
    explicit Entry(MacCtxPtr c) : ctx(std::move(c)) {}
    std::string key;
    MacCtxPtr ctx;
  };
  static void wipe(Entry& e) { OPENSSL_cleanse(e.key.data(), e.key.size()); }
  EVP_MAC* mac_ = nullptr;
  std::vector<std::unique_ptr<Entry>> entries_;
};

}  // namespace

bool hmac_sha256(std::string_view key, std::string_view data, unsigned char (&out)[32]) {
  // An empty key takes the one-shot path: EVP_MAC_init would read a null pointer as "no key".
  if (!key.empty() && restart_works()) {
    thread_local MacContexts contexts;
    ERR_set_mark();
    const bool ok = contexts.mac(key, data, out);
    ERR_pop_to_mark();  // a failure is answered below; leave no errors behind for others to find
    if (ok) return true;
  }
  unsigned char full[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
           data.size(), full, &len) == nullptr ||
      len != sizeof out) {
    return false;
  }
  std::copy(full, full + sizeof out, out);
  return true;
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  unsigned char out[32];
  return hmac_sha256(key, data, out) ? to_hex(out, sizeof out) : std::string();
}

bool constant_time_equal(std::string_view secret, std::string_view given) {
  // Every byte of the given value is compared with a byte of the secret (cycled through it), so
  // neither an early exit nor the number of steps says how long the secret is.
  std::size_t diff = secret.size() ^ given.size();
  if (secret.empty()) return given.empty();
  std::size_t j = 0;
  for (char c : given) {
    diff |= static_cast<unsigned char>(c ^ secret[j]);
    j = (j + 1 == secret.size()) ? 0 : j + 1;
  }
  return diff == 0;
}

Verdict receive(const ReceiverConfig& config, const HeaderLookup& header, std::string body) {
  static_assert(kBodyPadding >= simdjson::SIMDJSON_PADDING);
  const Kind& kind = kind_of(config.kind);

  // 1. Which host sent it, and which event. Gitea also sends GitHub's headers: look for it first.
  if (config.kind != HostKind::gitea && (!header("X-Gitea-Event").empty() || !header("X-Gitea-Delivery").empty())) {
    return reject(400, std::string("this delivery comes from Gitea (X-Gitea-Event) but the host is configured as ") +
                           to_string(config.kind) + "; set its kind to gitea");
  }
  if (config.kind != HostKind::gitlab && !header("X-Gitlab-Event").empty()) {
    return reject(400, std::string("this delivery comes from GitLab (X-Gitlab-Event) but the host is configured as ") +
                           to_string(config.kind) + "; set its kind to gitlab");
  }
  std::string_view event = header(kind.event_header);
  // Gitea leaves X-Gitea-Event empty for some events (commit statuses) and names them only in
  // X-Gitea-Event-Type.
  if (event.empty() && config.kind == HostKind::gitea) event = header("X-Gitea-Event-Type");
  if (event.empty()) {
    return reject(400, std::string("missing ") + kind.event_header + " header: not a " + kind.name + " webhook delivery");
  }
  if (!printable_token(event, 100)) return reject(400, std::string("malformed ") + kind.event_header + " header");

  std::string delivery_id;
  if (kind.delivery_header) {
    delivery_id = std::string(header(kind.delivery_header));
    if (delivery_id.empty()) return reject(400, std::string("missing ") + kind.delivery_header + " header", event);
  } else {
    // GitLab: Idempotency-Key is stable across retries (17.4+); X-Gitlab-Event-UUID before that;
    // else the body's digest, so an identical resend is still recognised.
    delivery_id = std::string(header("Idempotency-Key"));
    if (delivery_id.empty()) delivery_id = std::string(header("X-Gitlab-Event-UUID"));
    if (delivery_id.empty()) {
      unsigned char digest[SHA256_DIGEST_LENGTH];
      SHA256(reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest);
      delivery_id = "sha256:" + to_hex(digest, sizeof digest);
    }
  }
  if (!printable_token(delivery_id, 200)) return reject(400, "malformed delivery id header", event);

  // 2. Signature, over the raw body, with any configured secret.
  std::string_view signature = header(kind.signature_header);
  if (signature.empty()) {
    return reject(401, std::string("missing ") + kind.signature_header +
                           " header: give the webhook the secret configured for this host", event, delivery_id);
  }
  bool signed_ok = false;
  if (config.kind == HostKind::gitlab) {
    for (const auto& s : config.secrets) signed_ok |= constant_time_equal(s, signature);
  } else {
    std::string_view hex = signature;
    if (config.kind == HostKind::github) {
      if (hex.substr(0, 7) != "sha256=") {
        return reject(401, "X-Hub-Signature-256 must be 'sha256=' followed by 64 hex digits", event, delivery_id);
      }
      hex.remove_prefix(7);
    }
    if (!is_hex64(hex)) {
      return reject(401, std::string(kind.signature_header) + " must hold 64 hex digits", event, delivery_id);
    }
    std::string given = lower(hex);
    for (const auto& s : config.secrets) signed_ok |= constant_time_equal(hmac_sha256_hex(s, body), given);
  }
  if (!signed_ok) {
    return reject(401, "signature does not match any secret configured for this host", event, delivery_id);
  }

  Verdict v;
  v.event_type = std::string(event);
  v.delivery_id = delivery_id;
  if (config.kind == HostKind::github && event == "ping") {
    v.outcome = Verdict::Outcome::ping;
    v.status = 200;
    v.message = "pong";
    return v;
  }
  if (!is_used_event(config.kind, event)) {
    v.outcome = Verdict::Outcome::ignore;
    v.status = 202;
    v.message = "accepted; tollgate does not use '" + std::string(event) + "' events, so it was not stored";
    return v;
  }

  // 3. Content type and JSON.
  std::string content_type = lower(header("Content-Type"));
  content_type = content_type.substr(0, content_type.find(';'));
  while (!content_type.empty() && content_type.back() == ' ') content_type.pop_back();
  std::string json;
  if (content_type == "application/json") {
    json = std::move(body);
    json.reserve(json.size() + simdjson::SIMDJSON_PADDING);
  } else if (content_type == "application/x-www-form-urlencoded" && config.kind != HostKind::gitlab) {
    auto payload = form_payload(body);
    if (!payload) {
      return reject(400, "form-encoded delivery without a well-formed 'payload' field", event, delivery_id);
    }
    json = std::move(*payload);
    json.reserve(json.size() + simdjson::SIMDJSON_PADDING);
  } else {
    return reject(415,
                  content_type.empty() ? std::string("missing Content-Type: send application/json")
                                       : "unsupported Content-Type '" + content_type +
                                             "': set the webhook's content type to application/json",
                  event, delivery_id);
  }
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  // The string's capacity includes simdjson's padding (reserved above), so it parses in place
  // instead of copying 25 KB into a padded buffer first.
  if (auto err = parser.parse(json.data(), json.size(), /*realloc_if_needed=*/json.capacity() < json.size() + simdjson::SIMDJSON_PADDING).get(root); err) {
    return reject(400, std::string("body is not valid JSON: ") + simdjson::error_message(err), event, delivery_id);
  }
  if (!root.is_object()) return reject(400, "body must be a JSON object", event, delivery_id);
  std::string_view repo;
  auto full_name = config.kind == HostKind::gitlab ? root.at_pointer("/project/path_with_namespace")
                                                   : root.at_pointer("/repository/full_name");
  if (full_name.error() == simdjson::SUCCESS && full_name.get(repo) != simdjson::SUCCESS) repo = {};
  if (!config.repos.empty() && !repo.empty()) {
    bool allowed = false;
    for (const auto& glob : config.repos) {
      if (glob.matches(repo)) {
        allowed = true;
        break;
      }
    }
    if (!allowed) {
      return reject(403, "repository '" + std::string(repo) + "' is not among this host's 'repos'", event, delivery_id);
    }
  }
  v.outcome = Verdict::Outcome::store;
  v.status = 202;
  v.message = "accepted";
  v.delivery = Delivery{delivery_id, std::string(event), std::string(repo), std::move(json)};
  return v;
}

}  // namespace tollgate::webhooks
