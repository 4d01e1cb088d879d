#pragma once
// `tollgate inbox`: prints stored deliveries as JSON lines, bodies decoded, for operators (what
// arrived, what became of it) and for tests.
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>

namespace tollgate::cli {

struct InboxArgs {
  std::string config;    // a service configuration naming the database, or
  std::string database;  // the database file itself
  std::string state;     // only deliveries in this state (new, normalized, ignored, failed)
  std::string delivery;  // only this delivery id
  std::optional<std::int64_t> limit;  // the newest N (printed oldest first)
  bool with_body = true;
};

// Exit 0 with the rows on `out`; 2 with a message on `err` when the database cannot be read.
int run_inbox(const InboxArgs& args, std::ostream& out, std::ostream& err);

}  // namespace tollgate::cli
