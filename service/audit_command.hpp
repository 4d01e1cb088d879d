#pragma once
// `tollgate runs` and `tollgate audit`: the engine's runs and audit log as JSON lines, for
// operators (what happened, who did it, why) and for tests.
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>

namespace tollgate::cli {

struct AuditArgs {
  std::string config;    // a service configuration naming the database, or
  std::string database;  // the database file itself
  std::string run;       // runs: only this run; audit: only this run's entries
  std::string status;    // runs: only runs in this status
  std::optional<std::int64_t> limit;  // the newest N (printed oldest first)
  bool jobs = false;     // audit: the run's side effects too (the job table), after its entries
};

// Exit 0 with the rows on `out`; 2 with a message on `err` when the database cannot be read.
int run_runs(const AuditArgs& args, std::ostream& out, std::ostream& err);
int run_audit(const AuditArgs& args, std::ostream& out, std::ostream& err);

}  // namespace tollgate::cli
