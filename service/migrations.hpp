#pragma once
// The store's schema migrations, in order; each file's position is its version. The same names
// exist for SQLite (schemas/migrations/) and PostgreSQL (schemas/migrations/postgres/), so both
// stores are at the same version with the same tables, save SQLite's delivery_keys and
// delivery_keys_merged (0005: its replay detection; PostgreSQL keeps a UNIQUE constraint instead).
// Never edit a released one: add the next.
#include <array>
#include <string_view>

namespace tollgate::service {

inline constexpr std::array<std::string_view, 6> kMigrations{"0001_inbox.sql",         "0002_outcomes.sql",
                                                            "0003_engine.sql",        "0004_api.sql",
                                                            "0005_delivery_keys.sql", "0006_body_retention.sql"};

}  // namespace tollgate::service
