#pragma once
// Old bodies are dropped (intake.keep_bodies): the inbox would otherwise grow by a few KB with
// every delivery for as long as tollgate runs (~3.6 KB for a GitHub pull request, compressed: some
// GB a year for a busy organisation). Only bodies nothing will read again go: a delivery that
// was ignored or failed, or was normalised and applied by the engine, and was received before the
// cutoff. The row stays (its delivery id still recognises a redelivery; its normalised event and
// its size as received are kept). Bodies go in id order, so one number says which are gone
// (delivery_bodies_dropped.through, schema 6).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "service/inbox.hpp"
#include "service/store.hpp"

namespace tollgate::service {

// Every column of deliveries (schema 6), in order: SQLite rewrites dropped rows whole (see
// body_retention.cpp), so a migration that adds a column must add it here (a test compares this
// with the table).
inline constexpr std::string_view kDeliveryColumns =
    "id, host, delivery_id, event, repo, received_at, body, body_encoding, body_size";

struct BodiesDropped {
  std::int64_t through = 0;  // every delivery with an id up to this has no body any more
  std::int64_t rows = 0;     // bodies dropped by this step
  std::int64_t bytes = 0;    // their stored size
  // The delivery that stopped the step although it is older than the cutoff, and why ("not
  // normalised yet", "normalised but not applied by the engine yet"); unset if the step stopped at
  // a delivery too young, at the end, or at its limits.
  std::optional<std::int64_t> held_by;
  std::string held_because;
};

// One step: reads (on `reader`) the deliveries after the watermark in id order, at most `limit`
// and about `max_bytes` of bodies, up to the first that must keep its body (received at or after
// `before_ms`, unix milliseconds; not normalised yet; or normalised but not yet applied by the
// engine), and empties their bodies and moves the watermark in one transaction of the inbox's
// writer. rows == 0: nothing to drop now.
[[nodiscard]] tl::expected<BodiesDropped, std::string> drop_old_bodies(store::Db& reader, Inbox& inbox,
                                                                       std::int64_t before_ms, int limit,
                                                                       std::int64_t max_bytes = 8 << 20);

}  // namespace tollgate::service
