#include "webhooks/json_reader.hpp"

#include <limits>
#include <utility>

namespace tollgate::webhooks::detail {

namespace {

bool is_object(const nlohmann::json& j) { return j.is_object(); }
bool is_array(const nlohmann::json& j) { return j.is_array(); }
bool is_string(const nlohmann::json& j) { return j.is_string(); }
bool is_boolean(const nlohmann::json& j) { return j.is_boolean(); }
bool is_number(const nlohmann::json& j) { return j.is_number(); }

// nlohmann stores integers that fit as int64, larger positive ones as uint64 and anything with a
// fraction or exponent (or beyond uint64) as double.
std::optional<std::int64_t> as_int64(const nlohmann::json& j) {
  if (j.is_number_unsigned()) {
    auto u = j.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
    return static_cast<std::int64_t>(u);
  }
  if (j.is_number_integer()) return j.get<std::int64_t>();
  return std::nullopt;
}

std::string join(std::string_view path, std::string_view key) {
  std::string out;
  out.reserve(path.size() + key.size() + 1);
  out += path;
  if (!path.empty()) out += '.';
  out += key;
  return out;
}

}  // namespace

Node Reader::root() {
  if (!payload_.is_object()) {
    fail("payload", "expected an object");
    return Node(this, nullptr, "");
  }
  return Node(this, &payload_, "");
}

void Reader::fail(std::string_view path, std::string_view message) {
  if (error_) return;
  std::string text(path.empty() ? std::string_view("payload") : path);
  text += ": ";
  text += message;
  error_ = NormalizeError{std::move(text)};
}

std::string Node::path_of(std::string_view key) const { return join(path_, key); }

void Node::fail(std::string_view key, std::string_view message) const {
  if (reader_ != nullptr) reader_->fail(key.empty() ? path_ : path_of(key), message);
}

const nlohmann::json* Node::member(std::string_view key) const {
  if (value_ == nullptr || reader_->failed() || !value_->is_object()) return nullptr;
  auto it = value_->find(key);
  if (it == value_->end() || it->is_null()) return nullptr;
  return &*it;
}

bool Node::has(std::string_view key) const { return member(key) != nullptr; }

const nlohmann::json* Node::required(std::string_view key, bool (*is_type)(const nlohmann::json&),
                                     std::string_view expected) const {
  if (value_ == nullptr || reader_->failed()) return nullptr;
  if (!value_->is_object()) {
    fail("", "expected an object");
    return nullptr;
  }
  const nlohmann::json* v = member(key);
  if (v == nullptr) {
    fail(key, "missing");
    return nullptr;
  }
  if (!is_type(*v)) {
    fail(key, expected);
    return nullptr;
  }
  return v;
}

const nlohmann::json* Node::optional(std::string_view key, bool (*is_type)(const nlohmann::json&),
                                     std::string_view expected) const {
  if (value_ != nullptr && !reader_->failed() && !value_->is_object()) {
    fail("", "expected an object");
    return nullptr;
  }
  const nlohmann::json* v = member(key);
  if (v != nullptr && !is_type(*v)) {
    fail(key, expected);
    return nullptr;
  }
  return v;
}

Node Node::object(std::string_view key) const {
  const auto* v = required(key, is_object, "expected an object");
  return Node(reader_, v, path_of(key));
}

Node Node::array(std::string_view key) const {
  const auto* v = required(key, is_array, "expected an array");
  return Node(reader_, v, path_of(key));
}

Node Node::optional_object(std::string_view key) const {
  const auto* v = optional(key, is_object, "expected an object");
  return Node(reader_, v, path_of(key));
}

Node Node::optional_array(std::string_view key) const {
  const auto* v = optional(key, is_array, "expected an array");
  return Node(reader_, v, path_of(key));
}

std::string Node::string(std::string_view key) const {
  const auto* v = required(key, is_string, "expected a string");
  return v != nullptr ? v->get<std::string>() : std::string();
}

std::string Node::optional_string(std::string_view key) const {
  const auto* v = optional(key, is_string, "expected a string");
  return v != nullptr ? v->get<std::string>() : std::string();
}

std::int64_t Node::integer(std::string_view key) const {
  const auto* v = required(key, is_number, "expected an integer");
  if (v == nullptr) return 0;
  auto n = as_int64(*v);
  if (!n) {
    fail(key, v->is_number_float() ? "expected an integer" : "integer out of range");
    return 0;
  }
  return *n;
}

std::optional<std::int64_t> Node::optional_integer(std::string_view key) const {
  if (member(key) == nullptr) return std::nullopt;
  std::int64_t n = integer(key);
  if (reader_->failed()) return std::nullopt;
  return n;
}

std::int64_t Node::positive_integer(std::string_view key) const {
  std::int64_t n = integer(key);
  if (value_ != nullptr && !reader_->failed() && n <= 0) {
    fail(key, "expected a positive integer");
    return 0;
  }
  return n;
}

bool Node::boolean(std::string_view key) const {
  const auto* v = required(key, is_boolean, "expected a boolean");
  return v != nullptr && v->get<bool>();
}

std::optional<bool> Node::optional_boolean(std::string_view key) const {
  const auto* v = optional(key, is_boolean, "expected a boolean");
  if (v == nullptr) return std::nullopt;
  return v->get<bool>();
}

std::string Node::commit_id(std::string_view key) const {
  std::string s = string(key);
  if (value_ != nullptr && !reader_->failed() && !is_commit_id(s)) {
    fail(key, "expected a commit id (40 or 64 hex digits), got " + quote(s));
    return {};
  }
  return s;
}

std::string Node::repo_path(std::string_view key) const {
  std::string s = string(key);
  if (value_ == nullptr || reader_->failed()) return s;
  auto slash = s.find('/');
  if (slash == std::string::npos || slash == 0 || s.back() == '/') {
    fail(key, "expected a repository path such as 'owner/name', got " + quote(s));
    return {};
  }
  return s;
}

std::string Node::optional_commit_id(std::string_view key) const {
  std::string s = optional_string(key);
  if (!s.empty() && !is_commit_id(s)) {
    fail(key, "expected a commit id (40 or 64 hex digits), got " + quote(s));
    return {};
  }
  return s;
}

std::size_t Node::size() const {
  if (value_ == nullptr || reader_->failed() || !value_->is_array()) return 0;
  return value_->size();
}

Node Node::element(std::size_t i) const {
  std::string path = path_ + "[" + std::to_string(i) + "]";
  if (i >= size()) return Node(reader_, nullptr, std::move(path));
  return Node(reader_, &(*value_)[i], std::move(path));
}

std::string Node::string_element(std::size_t i) const {
  if (i >= size()) return {};
  const nlohmann::json& v = (*value_)[i];
  if (!v.is_string()) {
    reader_->fail(path_ + "[" + std::to_string(i) + "]", "expected a string");
    return {};
  }
  return v.get<std::string>();
}

std::string quote(std::string_view value) {
  constexpr std::size_t kMax = 60;
  std::string out = "'";
  std::size_t n = value.size();
  bool cut = false;
  if (n > kMax) {
    n = kMax;
    // Back up to the start of a UTF-8 sequence so the message stays valid UTF-8.
    while (n > 0 && (static_cast<unsigned char>(value[n]) & 0xC0) == 0x80) --n;
    cut = true;
  }
  for (std::size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(value[i]);
    out += (c < 0x20 || c == 0x7F) ? '?' : static_cast<char>(c);
  }
  if (cut) out += "...";
  out += "'";
  return out;
}

bool is_commit_id(std::string_view s) {
  if (s.size() != 40 && s.size() != 64) return false;
  for (char c : s) {
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex) return false;
  }
  return true;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace tollgate::webhooks::detail
