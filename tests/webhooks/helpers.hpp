#pragma once
// Shared by the webhook normaliser tests: fixture loading and result checks.
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <variant>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "webhooks/event.hpp"

namespace tollgate::webhooks::test {

inline std::string source_path(std::string_view relative) {
  return std::string(TOLLGATE_SOURCE_DIR) + "/" + std::string(relative);
}

inline nlohmann::json load_json(std::string_view relative) {
  std::ifstream in(source_path(relative), std::ios::binary);
  INFO("reading " << relative << " (for node_modules/: run npm ci in the repository root)");
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  auto json = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  REQUIRE_FALSE(json.is_discarded());
  return json;
}

// tests/fixtures/webhooks/<host>/<name>
inline nlohmann::json fixture(std::string_view host, std::string_view name) {
  return load_json("tests/fixtures/webhooks/" + std::string(host) + "/" + std::string(name));
}

inline nlohmann::json parse(std::string_view text) {
  auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  REQUIRE_FALSE(json.is_discarded());
  return json;
}

using Result = tl::expected<std::optional<Event>, NormalizeError>;

inline Result run(HostKind host, std::string_view type, const nlohmann::json& payload) {
  Result result = std::optional<Event>();
  REQUIRE_NOTHROW(result = normalize(host, type, payload));
  return result;
}

inline Event require_event(HostKind host, std::string_view type, const nlohmann::json& payload) {
  Result result = run(host, type, payload);
  if (!result) FAIL("normalize(" << to_string(host) << ", " << type << ") failed: " << result.error().message);
  REQUIRE(result->has_value());
  REQUIRE((*result)->host == host);
  return **result;
}

template <class T>
T require_payload(HostKind host, std::string_view type, const nlohmann::json& payload, std::string* repo = nullptr) {
  Event event = require_event(host, type, payload);
  REQUIRE(std::holds_alternative<T>(event.payload));
  if (repo != nullptr) *repo = event.repo;
  return std::get<T>(event.payload);
}

inline void require_ignored(HostKind host, std::string_view type, const nlohmann::json& payload) {
  Result result = run(host, type, payload);
  if (!result) FAIL("normalize(" << to_string(host) << ", " << type << ") failed: " << result.error().message);
  REQUIRE_FALSE(result->has_value());
}

inline std::string require_error(HostKind host, std::string_view type, const nlohmann::json& payload) {
  Result result = run(host, type, payload);
  REQUIRE_FALSE(result.has_value());
  return result.error().message;
}

}  // namespace tollgate::webhooks::test
