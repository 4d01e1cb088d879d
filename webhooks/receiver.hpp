#pragma once
// Checks one webhook delivery as it arrives, without a socket: which host kind sent it, whether
// tollgate uses the event, its signature, content type and JSON. Order (STYLE.md): known event ->
// signature (401) -> parse (400); only then is it stored and answered.
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/glob.hpp"
#include "webhooks/event.hpp"

namespace tollgate::webhooks {

struct ReceiverConfig {
  HostKind kind = HostKind::github;
  std::vector<std::string> secrets;  // any one may sign (rotation); never logged
  std::vector<pipeline::Glob> repos;  // owner/name globs; empty = any repository
};

// Case-insensitive header lookup; empty view when absent.
using HeaderLookup = std::function<std::string_view(std::string_view name)>;

struct Delivery {
  std::string delivery_id;  // unique per delivery, stable across redeliveries
  std::string event_type;   // the event header's value
  std::string repo;         // owner/name from the payload, when it names one
  std::string body;         // the JSON payload (decoded from a form's payload= field if need be)
};

struct Verdict {
  enum class Outcome {
    store,    // a used event, verified: store `delivery`, then answer 202
    ignore,   // verified, but tollgate does not use this event (or this repository): 202, not stored
    ping,     // verified ping: 200
    reject,   // `status` with `message`
  };
  Outcome outcome = Outcome::reject;
  int status = 400;
  std::string message;        // one line, for the response body and the log; no secrets
  std::string event_type;     // as far as known, for logs and metrics
  std::string delivery_id;    // as far as known
  Delivery delivery;          // for store
};

// `body` is the raw request body; the signature is checked over exactly these bytes. Taken by
// value: a JSON body becomes the delivery's payload without a copy (give it capacity for
// kBodyPadding more bytes and it is parsed in place, too).
[[nodiscard]] Verdict receive(const ReceiverConfig& config, const HeaderLookup& header, std::string body);

// Spare capacity the JSON parser wants after a body (simdjson's padding).
inline constexpr std::size_t kBodyPadding = 64;

// HMAC-SHA256 of `data` into `out`; false if OpenSSL failed. May keep keyed contexts per thread,
// so that a key is not set up again for every delivery.
[[nodiscard]] bool hmac_sha256(std::string_view key, std::string_view data, unsigned char (&out)[32]);
// The same, as lower-case hex (empty if OpenSSL failed).
[[nodiscard]] std::string hmac_sha256_hex(std::string_view key, std::string_view data);

// Percent-decoding (`plus_is_space`: '+' is a space, as in a form or a query string); nothing when
// a '%' is not followed by two hex digits.
[[nodiscard]] std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space);

// Compares a secret with a value someone gave, without leaking where they differ or how long the
// secret is: the time taken depends only on the given value's length.
[[nodiscard]] bool constant_time_equal(std::string_view secret, std::string_view given);

}  // namespace tollgate::webhooks
