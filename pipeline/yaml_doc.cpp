#include "pipeline/yaml_doc.hpp"

#include <cstdio>

#include "pipeline/utf8.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <sstream>

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
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

// Builds JSON straight from yaml-cpp's parse events: no yaml-cpp node tree, which would cost as
// much again as the parse itself.
struct Stop {
  Diagnostic diag;
};

class JsonBuilder final : public YAML::EventHandler {
 public:
  JsonBuilder(std::string_view text, const std::string& file, const YamlLimits& limits, SourceMap& map)
      : text_(text), file_(file), limits_(limits), map_(map) {}

  nlohmann::json take() { return std::move(root_); }
  int documents() const { return documents_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    ++documents_;
    if (documents_ >= 2) {
      // yaml-cpp 0.7 "recovers" from some junk (a stray ',' at the start of a line) by starting
      // empty documents at the same place forever. A real second document follows a '---' or
      // '...' line, and always moves forward.
      if (mark.pos <= last_document_pos_ || !after_document_marker(mark)) {
        stop(mark, "", "invalid YAML: unexpected content here; check this line's indentation and punctuation "
                       "against the lines above");
      }
    }
    if (documents_ == 2) second_document_ = mark;
    last_document_pos_ = mark.pos;
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (documents_ > 1 && frames_.empty()) return;  // an empty document after a trailing '---'
    single_document();
    if (key_expected()) stop(mark, frames_.back().ptr, "a mapping key must be a plain string, not empty");
    auto ptr = begin_value(empty_value_mark(mark));
    // `key:` with nothing after it: the key is where the user looks.
    if (!frames_.empty() && frames_.back().value.is_object() && frames_.back().key_pos.line > 0) {
      map_.set_value(ptr, frames_.back().key_pos);
    }
    finish_value(nlohmann::json(nullptr), ptr, anchor, 1);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    single_document();
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) stop(mark, "", "alias refers to an unknown anchor");
    if (key_expected()) stop(mark, frames_.back().ptr, "a mapping key must be a plain string, not an alias");
    auto ptr = begin_value(mark);
    count(it->second.second, mark, ptr);
    finish_value(nlohmann::json(it->second.first), ptr, 0, it->second.second);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    single_document();
    if (tag == "!") closed_quote(mark);
    // yaml-cpp refuses bad escapes itself; this guards valijson, which reads past invalid UTF-8.
    if (utf8_error(value)) {
      stop(mark, frames_.empty() ? "" : frames_.back().ptr,
           "string holds an escape that is not a character (such as '\\uD800'); remove it");
    }
    if (key_expected()) {
      Frame& f = frames_.back();
      f.key = value;
      f.key_pos = to_position(mark);
      f.has_key = true;
      auto [it, inserted] = f.first_seen.emplace(value, f.key_pos);
      if (!inserted) {
        stop(mark, f.ptr, "duplicate key '" + value + "' (first defined at line " + std::to_string(it->second.line) + ")");
      }
      return;
    }
    auto ptr = begin_value(mark);
    nlohmann::json v;
    if (tag == "?") {
      v = resolve_plain(value);
    } else if (tag == "!" || tag == "tag:yaml.org,2002:str") {
      v = value;
    } else if (tag == "tag:yaml.org,2002:int" || tag == "tag:yaml.org,2002:float" || tag == "tag:yaml.org,2002:bool" ||
               tag == "tag:yaml.org,2002:null") {
      v = resolve_plain(value);
      if (v.is_string()) stop(mark, ptr, "value '" + value + "' does not match its tag '" + tag + "'");
    } else {
      stop(mark, ptr, "unsupported tag '" + tag + "'; remove it");
    }
    finish_value(std::move(v), ptr, anchor, 1);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(mark, tag, anchor, nlohmann::json::array(), "list");
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(mark, tag, anchor, nlohmann::json::object(), "mapping");
  }
  void OnMapEnd() override { close(); }

 private:
  struct Frame {
    nlohmann::json value;
    std::string ptr;
    YAML::anchor_t anchor = 0;
    std::size_t nodes = 1;  // in this subtree, after alias expansion
    // maps only
    bool has_key = false;
    std::string key;
    Position key_pos;
    std::map<std::string, Position> first_seen;
  };

  [[noreturn]] void stop(const YAML::Mark& mark, const std::string& ptr, std::string msg) {
    Position pos = to_position(mark);
    if (pos.line == 0) pos = map_.value(ptr);
    throw Stop{Diagnostic{file_, pos, ProblemKind::yaml, ptr, std::move(msg)}};
  }

  // yaml-cpp marks an empty value where the next token starts (often the next line); point at the
  // '-' or ':' that introduced it instead.
  YAML::Mark empty_value_mark(const YAML::Mark& mark) const {
    if (mark.pos <= 0 || static_cast<std::size_t>(mark.pos) > text_.size()) return mark;
    std::size_t i = static_cast<std::size_t>(mark.pos);
    while (i > 0 && (text_[i - 1] == ' ' || text_[i - 1] == '\t' || text_[i - 1] == '\n' || text_[i - 1] == '\r')) --i;
    if (i == 0 || (text_[i - 1] != '-' && text_[i - 1] != ':')) return mark;
    YAML::Mark m;
    m.pos = static_cast<int>(i - 1);
    m.line = static_cast<int>(std::count(text_.begin(), text_.begin() + static_cast<std::ptrdiff_t>(i - 1), '\n'));
    std::size_t line_start = text_.rfind('\n', i - 1);
    m.column = static_cast<int>(i - 1 - (line_start == std::string_view::npos ? 0 : line_start + 1));
    return m;
  }

  // Whether the only thing between the previous line break and `mark` is a document marker line
  // ('---' or '...', possibly followed by the document's first node on the same line).
  bool after_document_marker(const YAML::Mark& mark) const {
    if (mark.pos < 0 || static_cast<std::size_t>(mark.pos) > text_.size()) return false;
    // From the end of the mark's own line (the marker may be on it) backwards.
    std::size_t eol = text_.find('\n', static_cast<std::size_t>(mark.pos));
    std::string_view before = text_.substr(0, eol == std::string_view::npos ? text_.size() : eol);
    // Skip blank and comment lines backwards to the marker line.
    std::size_t end = before.size();
    while (true) {
      std::size_t line_start = before.rfind('\n', end == 0 ? 0 : end - 1);
      line_start = (end == 0 || line_start == std::string_view::npos) ? 0 : line_start + 1;
      std::string_view line = before.substr(line_start, end - line_start);
      std::size_t first = line.find_first_not_of(" \t\r");
      if (line.rfind("---", 0) == 0 || line.rfind("...", 0) == 0) return true;
      if (first != std::string_view::npos && line[first] != '#') return false;
      if (line_start == 0) return false;
      end = line_start - 1;
    }
  }

  void single_document() {
    if (documents_ > 1) {
      // Point at the '---' that starts the second document.
      std::size_t at = std::min<std::size_t>(static_cast<std::size_t>(std::max(0, second_document_.pos)), text_.size());
      std::size_t dash = text_.rfind("---", at);
      int line = second_document_.line + 1;
      if (dash != std::string_view::npos) {
        line = 1 + static_cast<int>(std::count(text_.begin(), text_.begin() + static_cast<std::ptrdiff_t>(dash), '\n'));
      }
      throw Stop{Diagnostic{file_, {line, 1}, ProblemKind::yaml, "",
                            "file holds more than one YAML document; a pipeline file is one document (remove this '---' and what follows, or merge the documents)"}};
    }
  }

  // yaml-cpp ends a quoted scalar that is never closed at the end of the file, silently taking
  // every following line into it; refuse that.
  void closed_quote(const YAML::Mark& mark) {
    if (mark.pos < 0 || static_cast<std::size_t>(mark.pos) >= text_.size()) return;
    std::size_t i = static_cast<std::size_t>(mark.pos);
    char q = text_[i];
    if (q != '"' && q != '\'') return;
    for (++i; i < text_.size(); ++i) {
      if (q == '"' && text_[i] == '\\') {
        ++i;
      } else if (text_[i] == q) {
        if (q == '\'' && i + 1 < text_.size() && text_[i + 1] == '\'') {
          ++i;
        } else {
          return;
        }
      }
    }
    stop(mark, "", std::string("quoted string is never closed; add the closing ") + q);
  }

  bool key_expected() const { return !frames_.empty() && frames_.back().value.is_object() && !frames_.back().has_key; }

  // The pointer of the value that starts now, with its position (and its key's) recorded.
  std::string begin_value(const YAML::Mark& mark) {
    std::string ptr;
    if (!frames_.empty()) {
      Frame& f = frames_.back();
      if (f.value.is_array()) {
        ptr = f.ptr + "/" + std::to_string(f.value.size());
      } else {
        ptr = f.ptr + "/" + pointer_token(f.key);
        if (f.key_pos.line > 0) map_.set_key(ptr, f.key_pos);
      }
    }
    Position pos = to_position(mark);
    if (pos.line > 0) map_.set_value(ptr, pos);
    return ptr;
  }

  void count(std::size_t n, const YAML::Mark& mark, const std::string& ptr) {
    visited_ += n;
    if (visited_ > limits_.max_nodes) {
      stop(mark, ptr, "document expands to more than " + std::to_string(limits_.max_nodes) +
                          " nodes (deeply nested aliases?); simplify the anchors");
    }
  }

  void open(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor, nlohmann::json empty,
            const char* what) {
    single_document();
    if (key_expected()) stop(mark, frames_.back().ptr, std::string("a mapping key must be a plain string, not a ") + what);
    if (tag != "?" && tag != "!" && tag != "tag:yaml.org,2002:seq" && tag != "tag:yaml.org,2002:map") {
      stop(mark, "", "unsupported tag '" + tag + "'; remove it");
    }
    std::string ptr = begin_value(mark);
    if (frames_.size() >= limits_.max_depth) {
      stop(mark, ptr, "nested more than " + std::to_string(limits_.max_depth) + " levels deep; a pipeline file needs far fewer");
    }
    count(1, mark, ptr);
    Frame f;
    f.value = std::move(empty);
    f.ptr = std::move(ptr);
    f.anchor = anchor;
    frames_.push_back(std::move(f));
  }

  void close() {
    Frame f = std::move(frames_.back());
    frames_.pop_back();
    finish_value(std::move(f.value), f.ptr, f.anchor, f.nodes, /*counted=*/true);
  }

  void finish_value(nlohmann::json v, const std::string& ptr, YAML::anchor_t anchor, std::size_t nodes,
                    bool counted = false) {
    if (!counted && nodes == 1) count(1, {}, ptr);
    if (anchor != 0) anchors_[anchor] = {v, nodes};
    if (frames_.empty()) {
      root_ = std::move(v);
      return;
    }
    Frame& parent = frames_.back();
    parent.nodes += nodes;
    if (parent.value.is_array()) {
      parent.value.push_back(std::move(v));
    } else {
      parent.value[parent.key] = std::move(v);
      parent.has_key = false;
    }
  }

  std::string_view text_;
  const std::string& file_;
  const YamlLimits& limits_;
  SourceMap& map_;
  YAML::Mark second_document_;
  int last_document_pos_ = -1;
  std::vector<Frame> frames_;
  std::map<YAML::anchor_t, std::pair<nlohmann::json, std::size_t>> anchors_;
  nlohmann::json root_;
  std::size_t visited_ = 0;
  int documents_ = 0;
};

Position position_of_byte(std::string_view text, std::size_t byte) {
  std::size_t line_start = text.rfind('\n', byte == 0 ? 0 : byte - 1);
  line_start = (byte == 0 || line_start == std::string_view::npos) ? 0 : line_start + 1;
  return {1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(byte), '\n')),
          1 + static_cast<int>(byte - line_start)};
}

// yaml-cpp's messages name parser states; say what the user should look at instead.
std::string explain_parse_error(std::string_view text, const YAML::Exception& e) {
  const std::string& m = e.msg;
  std::string line;
  if (e.mark.pos >= 0 && static_cast<std::size_t>(e.mark.pos) <= text.size()) {
    std::size_t start = text.rfind('\n', e.mark.pos > 0 ? static_cast<std::size_t>(e.mark.pos) - 1 : 0);
    start = start == std::string_view::npos ? 0 : start + 1;
    std::size_t end = text.find('\n', start);
    line = std::string(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
  }
  bool tab_indent = line.find_first_not_of(" \t") != std::string::npos &&
                    line.substr(0, line.find_first_not_of(" \t")).find('\t') != std::string::npos;
  if (tab_indent) return "this line is indented with a tab; YAML indentation must use spaces";
  if (m == YAML::ErrorMsg::END_OF_SEQ_FLOW) return "a '[' list is never closed; add the ']' (or check the quotes inside it)";
  if (m == YAML::ErrorMsg::END_OF_MAP_FLOW) return "a '{' mapping is never closed; add the '}' (or check the quotes inside it)";
  if (m == YAML::ErrorMsg::END_OF_SEQ || m == YAML::ErrorMsg::END_OF_MAP || m == YAML::ErrorMsg::BLOCK_ENTRY ||
      m == YAML::ErrorMsg::MAP_VALUE || m == YAML::ErrorMsg::MAP_KEY) {
    return "unexpected structure here (" + m + "); check this line's indentation against the lines above";
  }
  if (m == YAML::ErrorMsg::UNKNOWN_ANCHOR) {
    std::size_t star = line.find('*');
    std::string name;
    if (star != std::string::npos) {
      std::size_t end = line.find_first_of(" ,]}\t", star);
      name = line.substr(star + 1, end == std::string::npos ? std::string::npos : end - star - 1);
    }
    return name.empty() ? "alias refers to an anchor that is not defined above it"
                        : "alias '*" + name + "' refers to an anchor '&" + name + "' that is not defined above it";
  }
  if (m.rfind(YAML::ErrorMsg::INVALID_UNICODE, 0) == 0) {
    return "a '\\u' or '\\U' escape names code point " + m.substr(std::string(YAML::ErrorMsg::INVALID_UNICODE).size()) +
           ", which is not a character";
  }
  if (m == YAML::ErrorMsg::FLOW_END) return "a ']' or '}' here closes nothing";
  if (m.empty()) return "cannot be read";
  return m;
}

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
    return problem(position_of_byte(text, text.find('\0')), "file contains a NUL byte; a pipeline file is UTF-8 text");
  }
  if (auto bad = utf8_error(text)) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(text[*bad]));
    return problem(position_of_byte(text, *bad), std::string("file is not valid UTF-8 (byte ") + hex +
                                                     "); save it as UTF-8");
  }
  YamlDocument doc;
  JsonBuilder builder(text, file, limits, doc.map);
  try {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    while (parser.HandleNextDocument(builder)) {
    }
  } catch (const Stop& s) {
    return tl::unexpected(s.diag);
  } catch (const YAML::DeepRecursion& e) {
    Position pos = to_position(e.mark);
    return problem(pos.line ? pos : Position{1, 1}, "invalid YAML: nested more than " + std::to_string(e.depth()) +
                                                        " levels deep");
  } catch (const YAML::Exception& e) {
    Position pos = to_position(e.mark);
    if (pos.line == 0) pos = {1, 1};
    std::string why = explain_parse_error(text, e);
    if (why.find("indented with a tab") != std::string::npos && e.mark.pos >= 0) {
      // Point at the tab itself.
      std::size_t start = text.rfind('\n', e.mark.pos > 0 ? static_cast<std::size_t>(e.mark.pos) - 1 : 0);
      start = start == std::string_view::npos ? 0 : start + 1;
      std::size_t tab = text.find('\t', start);
      if (tab != std::string_view::npos) pos.column = static_cast<int>(tab - start) + 1;
    }
    return problem(pos, "invalid YAML: " + why);
  } catch (const std::exception& e) {
    return problem({1, 1}, std::string("invalid YAML: ") + e.what());
  }
  doc.json = builder.take();
  if (builder.documents() == 0 || doc.json.is_null()) {
    return problem({1, 1}, "file is empty; a pipeline file starts with 'version: 1'");
  }
  return doc;
}

}  // namespace tollgate::pipeline
