#include "pipeline/yaml_doc.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

namespace tollgate::pipeline {
namespace {

Position to_position(const YAML::Mark& m) {
  if (m.line < 0 || m.column < 0) return {0, 0};
  return {m.line + 1, m.column + 1};
}

bool is_null_plain(std::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

bool all_of(std::string_view s, bool (*pred)(char)) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!pred(c)) return false;
  }
  return true;
}
bool is_dec(char c) { return c >= '0' && c <= '9'; }
bool is_oct(char c) { return c >= '0' && c <= '7'; }
bool is_hex(char c) { return is_dec(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// YAML 1.2 core schema resolution of a plain (unquoted, untagged) scalar.
nlohmann::json resolve_plain(const std::string& s) {
  if (is_null_plain(s)) return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  std::string_view v = s;
  auto parse_int = [](std::string_view digits, int base, bool negative) -> nlohmann::json {
    std::uint64_t u = 0;
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), u, base);
    if (ec == std::errc() && p == digits.data() + digits.size()) {
      if (!negative) {
        if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          return static_cast<std::int64_t>(u);
        }
        return u;
      }
      if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) + 1) {
        return static_cast<std::int64_t>(0 - u);
      }
    }
    return nullptr;  // out of range: handled as a float below
  };
  if (v.size() > 2 && v[0] == '0' && v[1] == 'o' && all_of(v.substr(2), is_oct)) {
    auto r = parse_int(v.substr(2), 8, false);
    if (!r.is_null()) return r;
  }
  if (v.size() > 2 && v[0] == '0' && v[1] == 'x' && all_of(v.substr(2), is_hex)) {
    auto r = parse_int(v.substr(2), 16, false);
    if (!r.is_null()) return r;
  }
  {
    bool negative = !v.empty() && v[0] == '-';
    std::string_view digits = (!v.empty() && (v[0] == '-' || v[0] == '+')) ? v.substr(1) : v;
    if (all_of(digits, is_dec)) {
      auto r = parse_int(digits, 10, negative);
      if (!r.is_null()) return r;
      return std::strtod(s.c_str(), nullptr);
    }
  }
  if (v == ".inf" || v == ".Inf" || v == ".INF" || v == "+.inf" || v == "+.Inf" || v == "+.INF") {
    return std::numeric_limits<double>::infinity();
  }
  if (v == "-.inf" || v == "-.Inf" || v == "-.INF") return -std::numeric_limits<double>::infinity();
  if (v == ".nan" || v == ".NaN" || v == ".NAN") return std::numeric_limits<double>::quiet_NaN();
  // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
  std::size_t i = 0;
  if (i < v.size() && (v[i] == '-' || v[i] == '+')) ++i;
  std::size_t int_digits = 0, frac_digits = 0;
  while (i < v.size() && is_dec(v[i])) ++i, ++int_digits;
  bool dot = false;
  if (i < v.size() && v[i] == '.') {
    dot = true;
    ++i;
    while (i < v.size() && is_dec(v[i])) ++i, ++frac_digits;
  }
  bool ok = (int_digits > 0 || (dot && frac_digits > 0));
  if (ok && i < v.size() && (v[i] == 'e' || v[i] == 'E')) {
    ++i;
    if (i < v.size() && (v[i] == '-' || v[i] == '+')) ++i;
    std::size_t exp_digits = 0;
    while (i < v.size() && is_dec(v[i])) ++i, ++exp_digits;
    ok = exp_digits > 0;
  }
  if (ok && i == v.size()) return std::strtod(s.c_str(), nullptr);
  return s;
}

class Converter {
 public:
  Converter(const std::string& file, const YamlLimits& limits, SourceMap& map)
      : file_(file), limits_(limits), map_(map) {}

  tl::expected<nlohmann::json, Diagnostic> convert(const YAML::Node& node, const std::string& ptr,
                                                   std::size_t depth = 0) {
    if (depth > limits_.max_depth) {
      return fail(node, ptr, "nested more than " + std::to_string(limits_.max_depth) +
                                 " levels deep; a pipeline file needs far fewer");
    }
    if (++visited_ > limits_.max_nodes) {
      return fail(node, ptr, "document expands to more than " + std::to_string(limits_.max_nodes) +
                                 " nodes (deeply nested aliases?); simplify the anchors");
    }
    Position pos = to_position(node.Mark());
    if (pos.line > 0) map_.set_value(ptr, pos);
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        return nullptr;
      case YAML::NodeType::Scalar: {
        const std::string& tag = node.Tag();
        const std::string& s = node.Scalar();
        if (tag == "?") return resolve_plain(s);
        if (tag == "!" || tag == "tag:yaml.org,2002:str") return s;
        if (tag == "tag:yaml.org,2002:int" || tag == "tag:yaml.org,2002:float" ||
            tag == "tag:yaml.org,2002:bool" || tag == "tag:yaml.org,2002:null") {
          auto r = resolve_plain(s);
          if (r.is_string()) return fail(node, ptr, "value '" + s + "' does not match its tag '" + tag + "'");
          return r;
        }
        return fail(node, ptr, "unsupported tag '" + tag + "'; remove it");
      }
      case YAML::NodeType::Sequence: {
        auto arr = nlohmann::json::array();
        std::size_t i = 0;
        for (const auto& item : node) {
          auto v = convert(item, ptr + "/" + std::to_string(i++), depth + 1);
          if (!v) return v;
          arr.push_back(std::move(*v));
        }
        return arr;
      }
      case YAML::NodeType::Map: {
        auto obj = nlohmann::json::object();
        std::map<std::string, Position> first_seen;
        for (const auto& kv : node) {
          const YAML::Node& k = kv.first;
          if (!k.IsScalar()) {
            return fail(k, ptr, "a mapping key must be a plain string, not a " +
                                    std::string(k.IsMap() ? "mapping" : k.IsSequence() ? "list" : "null"));
          }
          const std::string& key = k.Scalar();
          Position kpos = to_position(k.Mark());
          auto [it, inserted] = first_seen.emplace(key, kpos);
          if (!inserted) {
            return fail(k, ptr, "duplicate key '" + key + "' (first defined at line " +
                                    std::to_string(it->second.line) + ")");
          }
          std::string child = ptr + "/" + pointer_token(key);
          if (kpos.line > 0) map_.set_key(child, kpos);
          auto v = convert(kv.second, child, depth + 1);
          if (!v) return v;
          obj[key] = std::move(*v);
        }
        return obj;
      }
    }
    return nullptr;
  }

 private:
  tl::unexpected<Diagnostic> fail(const YAML::Node& node, const std::string& ptr, std::string msg) {
    Position pos = to_position(node.Mark());
    if (pos.line == 0) pos = map_.value(ptr);
    return tl::unexpected(Diagnostic{file_, pos, ProblemKind::yaml, ptr, std::move(msg)});
  }

  const std::string& file_;
  const YamlLimits& limits_;
  SourceMap& map_;
  std::size_t visited_ = 0;
};

}  // namespace

std::string pointer_token(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

Position SourceMap::value(std::string_view ptr) const {
  std::string p(ptr);
  while (true) {
    if (auto it = values_.find(p); it != values_.end()) return it->second;
    if (p.empty()) return {1, 1};
    p.resize(p.rfind('/'));
  }
}

Position SourceMap::key(std::string_view ptr) const {
  if (auto it = keys_.find(std::string(ptr)); it != keys_.end()) return it->second;
  return value(ptr);
}

tl::expected<YamlDocument, Diagnostic> parse_yaml(std::string_view text, const std::string& file,
                                                  const YamlLimits& limits) {
  auto problem = [&](Position pos, std::string msg) {
    return tl::unexpected(Diagnostic{file, pos, ProblemKind::yaml, "", std::move(msg)});
  };
  if (text.size() > limits.max_bytes) {
    return problem({1, 1}, "file is " + std::to_string(text.size()) + " bytes; a pipeline file may be at most " +
                               std::to_string(limits.max_bytes) + " bytes");
  }
  if (text.find('\0') != std::string_view::npos) {
    return problem({1, 1}, "file contains a NUL byte; a pipeline file is UTF-8 text");
  }
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::DeepRecursion& e) {
    Position pos = to_position(e.mark);
    return problem(pos.line ? pos : Position{1, 1}, "invalid YAML: nested more than " + std::to_string(e.depth()) +
                                                        " levels deep");
  } catch (const YAML::Exception& e) {
    Position pos = to_position(e.mark);
    if (pos.line == 0) pos = {1, 1};
    std::string msg = e.msg;
    if (msg.empty()) msg = "cannot be read";
    return problem(pos, "invalid YAML: " + msg);
  } catch (const std::exception& e) {
    return problem({1, 1}, std::string("invalid YAML: ") + e.what());
  }
  if (docs.empty() || (docs.size() == 1 && docs[0].IsNull())) {
    return problem({1, 1}, "file is empty; a pipeline file starts with 'version: 1'");
  }
  if (docs.size() > 1) {
    Position pos = to_position(docs[1].Mark());
    if (pos.line == 0) pos = {1, 1};
    return problem(pos, "file holds " + std::to_string(docs.size()) +
                            " YAML documents; a pipeline file is one document (remove the '---' separators)");
  }
  YamlDocument doc;
  Converter conv(file, limits, doc.map);
  try {
    auto json = conv.convert(docs[0], "");
    if (!json) return tl::unexpected(json.error());
    doc.json = std::move(*json);
  } catch (const YAML::Exception& e) {
    return problem(to_position(e.mark).line ? to_position(e.mark) : Position{1, 1}, "invalid YAML: " + e.msg);
  }
  return doc;
}

}  // namespace tollgate::pipeline
