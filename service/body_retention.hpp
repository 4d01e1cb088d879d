#pragma once
// Old bodies are dropped (intake.keep_bodies): the inbox would otherwise grow by a few KB with
// every delivery for as long as tollgate runs (~3.6 KB for a GitHub pull request, compressed: some
// GB a year for a busy organisation). Only bodies nothing will read again go: a delivery that
// was ignored or failed, or was normalised and applied by the engine, and was received before the
// cutoff. The row stays (its delivery id still recognises a redelivery; its normalised event and
// its size as received are kept). Bodies go in id order, so one number says which are gone
// (delivery_bodies_dropped.through, schema 6).
#include <cstdint>
#include <string>

#include <tl/expected.hpp>

#include "service/inbox.hpp"
#include "service/store.hpp"

namespace tollgate::service {

struct BodiesDropped {
  std::int64_t through = 0;  // every delivery with an id up to this has no body any more
  std::int64_t rows = 0;     // bodies dropped by this step
  std::int64_t bytes = 0;    // their stored size
};

// One step: reads (on `reader`) the deliveries after the watermark in id order, at most `limit`,
// up to the first that must keep its body (received at or after `before_ms`, unix milliseconds;
// not normalised yet; or normalised but not yet applied by the engine), and empties their bodies
// and moves the watermark in one transaction of the inbox's writer. rows == 0: nothing to drop now.
[[nodiscard]] tl::expected<BodiesDropped, std::string> drop_old_bodies(store::Db& reader, Inbox& inbox,
                                                                       std::int64_t before_ms, int limit);

// The watermark (0: no body dropped, or a database older than schema 6).
[[nodiscard]] std::int64_t bodies_dropped_through(store::Db& db);

}  // namespace tollgate::service
