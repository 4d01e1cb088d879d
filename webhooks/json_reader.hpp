#pragma once
// Checked, path-aware reads of an untrusted JSON payload for the normalisers.
//
// A Reader remembers the first problem it meets ("pull_request.head.sha: missing") and from then on
// every read returns an empty value. A normaliser therefore reads all the fields it needs straight
// through and checks failed() once before using them, with no exception and no branch per field.
// Nothing here calls nlohmann's throwing or asserting accessors (at(), operator[] on a missing key,
// get<>() on a wrong type): every access is preceded by a type check.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "webhooks/event.hpp"

namespace tollgate::webhooks::detail {

class Reader;

// One value of the payload (or nothing, after a failed read) with its path from the root.
class Node {
 public:
  [[nodiscard]] explicit operator bool() const { return value_ != nullptr; }
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string path_of(std::string_view key) const;

  // Whether the key is present with a non-null value (no type check, never fails).
  [[nodiscard]] bool has(std::string_view key) const;

  // Required members: missing, null or of the wrong type fail the reader.
  [[nodiscard]] Node object(std::string_view key) const;
  [[nodiscard]] Node array(std::string_view key) const;
  [[nodiscard]] std::string string(std::string_view key) const;
  [[nodiscard]] std::int64_t integer(std::string_view key) const;
  [[nodiscard]] std::int64_t positive_integer(std::string_view key) const;  // numbers and ids
  [[nodiscard]] bool boolean(std::string_view key) const;
  [[nodiscard]] std::string commit_id(std::string_view key) const;  // 40 or 64 hex digits
  [[nodiscard]] std::string repo_path(std::string_view key) const;  // "owner/name", "group/sub/name"

  // Optional members: missing or null give an empty value; a wrong type still fails.
  [[nodiscard]] Node optional_object(std::string_view key) const;
  [[nodiscard]] Node optional_array(std::string_view key) const;
  [[nodiscard]] std::string optional_string(std::string_view key) const;
  [[nodiscard]] std::optional<std::int64_t> optional_integer(std::string_view key) const;
  [[nodiscard]] std::optional<bool> optional_boolean(std::string_view key) const;
  [[nodiscard]] std::string optional_commit_id(std::string_view key) const;

  // Arrays: size() is 0 for an empty node; element(i) / string_element(i) read one item.
  [[nodiscard]] std::size_t size() const;
  [[nodiscard]] Node element(std::size_t i) const;
  [[nodiscard]] std::string string_element(std::size_t i) const;

  // Records "<path>.<key>: <message>" as the reader's error (if it has none yet).
  void fail(std::string_view key, std::string_view message) const;

 private:
  friend class Reader;
  Node(Reader* reader, const nlohmann::json* value, std::string path)
      : reader_(reader), value_(value), path_(std::move(path)) {}
  // The member if present and non-null, after checking that this node is an object.
  [[nodiscard]] const nlohmann::json* member(std::string_view key) const;
  [[nodiscard]] const nlohmann::json* required(std::string_view key, bool (*is_type)(const nlohmann::json&),
                                               std::string_view expected) const;
  [[nodiscard]] const nlohmann::json* optional(std::string_view key, bool (*is_type)(const nlohmann::json&),
                                               std::string_view expected) const;

  Reader* reader_ = nullptr;
  const nlohmann::json* value_ = nullptr;
  std::string path_;
};

class Reader {
 public:
  explicit Reader(const nlohmann::json& payload) : payload_(payload) {}
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // The payload's root object; a non-object body fails with "payload: expected an object".
  [[nodiscard]] Node root();
  [[nodiscard]] bool failed() const { return error_.has_value(); }
  [[nodiscard]] const NormalizeError& error() const { return *error_; }
  void fail(std::string_view path, std::string_view message);

 private:
  const nlohmann::json& payload_;
  std::optional<NormalizeError> error_;
};

// A payload value quoted for an error message: at most ~60 bytes, cut on a UTF-8 boundary,
// control characters replaced, so a hostile value cannot make the message long or multi-line.
[[nodiscard]] std::string quote(std::string_view value);

[[nodiscard]] bool is_commit_id(std::string_view s);
[[nodiscard]] bool ends_with(std::string_view s, std::string_view suffix);
[[nodiscard]] bool iequals(std::string_view a, std::string_view b);  // ASCII case-insensitive

}  // namespace tollgate::webhooks::detail
