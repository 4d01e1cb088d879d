#pragma once
// The PostgreSQL store's schema: the migrations of schemas/migrations/postgres/, applied in order
// at start, each in a transaction of its own (PostgreSQL's DDL is transactional). Several
// replicas starting at once take turns under an advisory lock, so each migration runs once.
#include <string>

#include <tl/expected.hpp>

#include "service/pg.hpp"

namespace tollgate::service::pg {

// The schema version after applying what was missing, or why not (the migration's name and
// PostgreSQL's message).
[[nodiscard]] tl::expected<int, std::string> migrate(Db& db);

}  // namespace tollgate::service::pg
