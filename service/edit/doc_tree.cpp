#include "service/edit/doc_tree.hpp"

#include <map>
#include <sstream>

#include <nlohmann/json.hpp>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "service/edit/scalar.hpp"

namespace tollgate::edit {
namespace {

constexpr std::size_t max_nodes = 2'000'000;  // an environment file has hundreds
constexpr int max_json_depth = 256;

bool is_break(char c) { return c == '\n' || c == '\r'; }
bool is_space(char c) { return c == ' ' || c == '\t' || is_break(c); }
bool ends_token(char c) { return is_space(c) || c == ',' || c == '[' || c == ']' || c == '{' || c == '}'; }

EditError file_error(std::string_view text, std::size_t byte, const std::string& what) {
  Position p = position_of(text, std::min(byte, text.size()));
  return EditError{EditErrorKind::invalid_file,
                   what + " at line " + std::to_string(p.line) + ", column " + std::to_string(p.column), p.line,
                   p.column};
}

struct Failure {
  EditError error;
};

// Builds the tree from yaml-cpp's parse events. yaml-cpp marks where each node starts (its
// anchor or tag included); ends are measured here and checked against the parsed value.
class Builder final : public YAML::EventHandler {
 public:
  Builder(Tree& tree, std::size_t base) : t_(tree), text_(tree.text), base_(base) {}

  void OnDocumentStart(const YAML::Mark& mark) override {
    std::size_t p = at(mark);
    // yaml-cpp 0.7 can "recover" from junk by starting empty documents at one place forever.
    if (documents_ > 0 && p <= last_document_) fail(p, "invalid YAML: unexpected content");
    ++documents_;
    last_document_ = p;
    document_start_ = p;
    roots_before_ = t_.documents.size();
  }
  void OnDocumentEnd() override {
    if (t_.documents.size() == roots_before_) {
      Node n;
      n.is_null = true;
      n.begin = n.content = n.end = document_start_;
      add(std::move(n));
    }
  }

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    std::size_t p = at(mark);
    std::size_t parent = stack_.empty() ? npos : stack_.back();
    std::size_t cur = empty_position(parent);
    Node n;
    n.is_null = true;
    n.tag = "?";
    n.anchor = anchor;
    n.begin = n.content = n.end = cur;
    if (skip_blanks(text_, cur) == p) {
      std::size_t c = skip_properties(text_, p);
      std::size_t len = null_literal(c, parent);
      bool own_line_ok = text_.substr(cur, c - cur).find('\n') == std::string_view::npos || in_flow(parent) ||
                         expects_key(parent) || column_bytes(c) > entry_column(parent, cur);
      if (len > 0 && own_line_ok) {
        n.kind = NodeKind::scalar;
        n.value = std::string(text_.substr(c, len));
        n.begin = p;
        n.content = c;
        n.end = c + len;
      } else if (c > p) {  // `key: &a` or `key: !!null` with nothing after
        std::size_t e = c;
        while (e > p && (text_[e - 1] == ' ' || text_[e - 1] == '\t')) --e;
        n.begin = p;
        n.content = n.end = e;
      }
    }
    add(std::move(n));
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Node n;
    n.kind = NodeKind::alias;
    n.begin = n.content = at(mark);
    std::size_t e = n.begin + 1;
    while (e < text_.size() && !ends_token(text_[e])) ++e;
    n.end = e;
    auto it = anchors_.find(anchor);
    n.alias_of = it == anchors_.end() ? npos : it->second;
    add(std::move(n));
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    Node n;
    n.kind = NodeKind::scalar;
    n.tag = tag;
    n.anchor = anchor;
    n.value = value;
    n.begin = at(mark);
    n.content = content_after_properties(n.begin);
    std::size_t parent = stack_.empty() ? npos : stack_.back();
    n.in_flow = in_flow(parent);
    char c = n.content < text_.size() ? text_[n.content] : '\0';
    std::optional<std::size_t> end;
    if (tag == "?" || (c != '"' && c != '\'' && c != '|' && c != '>')) {
      n.style = ScalarStyle::plain;
      end = plain_end(text_, n.content, n.in_flow, value);
    } else if (c == '"' || c == '\'') {
      n.style = c == '"' ? ScalarStyle::double_quoted : ScalarStyle::single_quoted;
      end = quoted_end(text_, n.content);
    } else {
      n.style = c == '|' ? ScalarStyle::literal : ScalarStyle::folded;
      end = block_end(text_, n.content, value);
    }
    n.end = end.value_or(npos);  // unlocated: an error only if an edit targets it
    add(std::move(n));
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value style) override {
    open(NodeKind::sequence, mark, tag, anchor, style);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value style) override {
    open(NodeKind::mapping, mark, tag, anchor, style);
  }
  void OnMapEnd() override { close(); }

 private:
  [[noreturn]] void fail(std::size_t byte, const std::string& what) { throw Failure{file_error(text_, byte, what)}; }

  std::size_t at(const YAML::Mark& m) const {
    return std::min(base_ + static_cast<std::size_t>(std::max(0, m.pos)), text_.size());
  }

  std::size_t content_after_properties(std::size_t p) const {
    std::size_t c = skip_properties(text_, p);
    return c > p ? skip_blanks(text_, c) : p;
  }

  bool in_flow(std::size_t parent) const {
    return parent != npos && (t_.nodes[parent].flow || t_.nodes[parent].in_flow);
  }
  bool expects_key(std::size_t parent) const {
    return parent != npos && t_.nodes[parent].kind == NodeKind::mapping && t_.nodes[parent].children.size() % 2 == 0;
  }

  std::size_t column_bytes(std::size_t byte) const {
    std::size_t ls = text_.rfind('\n', byte == 0 ? 0 : byte - 1);
    ls = (byte == 0 || ls == std::string_view::npos) ? 0 : ls + 1;
    return byte - ls;
  }

  // The column of what introduced a value (its key, or the '-' of a list item): a null written
  // on a later line belongs to that value only if indented further.
  std::size_t entry_column(std::size_t parent, std::size_t cur) const {
    if (parent == npos) return 0;
    const Node& p = t_.nodes[parent];
    if (p.kind == NodeKind::mapping && !p.children.empty()) return column_bytes(t_.nodes[p.children.back()].begin);
    return cur > 0 ? column_bytes(cur - 1) : 0;
  }

  std::size_t null_literal(std::size_t c, std::size_t parent) const {
    for (std::string_view lit : {"null", "Null", "NULL", "~"}) {
      if (text_.substr(c, lit.size()) != lit) continue;
      std::size_t e = c + lit.size();
      if (e == text_.size() || is_space(text_[e]) || (in_flow(parent) && ends_token(text_[e])) ||
          (text_[e] == ':' && (e + 1 == text_.size() || is_space(text_[e + 1])))) {
        return lit.size();
      }
    }
    return 0;
  }

  // Where an empty node at this point of the parent would sit: just after the ':' or '-' that
  // introduced it (or the '[' / ',' in a flow list).
  std::size_t empty_position(std::size_t parent) const {
    if (parent == npos) return document_start_;
    const Node& p = t_.nodes[parent];
    std::size_t prev = p.children.empty() ? npos : t_.nodes[p.children.back()].end;
    if (p.kind == NodeKind::mapping) {
      if (p.children.size() % 2 == 1) {
        if (prev == npos) return p.content;
        std::size_t pos = skip_blanks(text_, prev);
        return (pos < text_.size() && text_[pos] == ':') ? pos + 1 : prev;
      }
      if (prev == npos) return p.flow ? p.content + 1 : p.content;
      std::size_t pos = skip_blanks(text_, prev);
      return (p.flow && pos < text_.size() && text_[pos] == ',') ? pos + 1 : pos;
    }
    if (p.flow) {
      if (p.children.empty()) return p.content + 1;
      if (prev == npos) return p.content;
      std::size_t pos = skip_blanks(text_, prev);
      return (pos < text_.size() && text_[pos] == ',') ? pos + 1 : prev;
    }
    std::size_t from = p.children.empty() ? p.content : prev;
    if (from == npos) return p.content;
    std::size_t pos = skip_blanks(text_, from);
    return (pos < text_.size() && text_[pos] == '-') ? pos + 1 : from;
  }

  void open(NodeKind kind, const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
            YAML::EmitterStyle::value style) {
    Node n;
    n.kind = kind;
    n.tag = tag;
    n.anchor = anchor;
    n.flow = style == YAML::EmitterStyle::Flow;
    n.begin = at(mark);
    n.content = content_after_properties(n.begin);
    std::size_t idx = add(std::move(n));
    stack_.push_back(idx);
  }

  void close() {
    std::size_t idx = stack_.back();
    stack_.pop_back();
    Node& n = t_.nodes[idx];
    std::size_t last = n.children.empty() ? npos : t_.nodes[n.children.back()].end;
    if (!n.flow) {
      n.end = n.children.empty() ? n.content : last;
      return;
    }
    std::size_t pos = n.children.empty() ? n.content + 1 : last;
    if (pos == npos) {
      n.end = npos;
      return;
    }
    while (true) {
      pos = skip_blanks(text_, pos);
      if (pos < text_.size() && text_[pos] == ',') {
        ++pos;
        continue;
      }
      break;
    }
    char want = n.kind == NodeKind::mapping ? '}' : ']';
    n.end = (pos < text_.size() && text_[pos] == want) ? pos + 1 : npos;
  }

  std::size_t add(Node n) {
    if (t_.nodes.size() >= max_nodes) fail(n.begin, "file has more than " + std::to_string(max_nodes) + " nodes");
    std::size_t parent = stack_.empty() ? npos : stack_.back();
    n.parent = parent;
    n.in_flow = in_flow(parent);
    std::size_t idx = t_.nodes.size();
    if (n.anchor != 0) anchors_[n.anchor] = idx;
    t_.nodes.push_back(std::move(n));
    if (parent == npos) {
      t_.documents.push_back(idx);
    } else {
      t_.nodes[parent].children.push_back(idx);
    }
    return idx;
  }

  Tree& t_;
  std::string_view text_;
  std::size_t base_;
  std::vector<std::size_t> stack_;
  std::map<YAML::anchor_t, std::size_t> anchors_;
  std::size_t document_start_ = 0;
  std::size_t last_document_ = 0;
  std::size_t roots_before_ = 0;
  int documents_ = 0;
};

// Reads JSON (already checked to be valid by nlohmann) into the same tree: objects and arrays
// are flow collections, strings double-quoted scalars, other values plain scalars.
class JsonReader {
 public:
  explicit JsonReader(Tree& tree) : t_(tree), text_(tree.text) {}

  void read() {
    std::size_t root = value(npos, 0);
    t_.documents.push_back(root);
  }

 private:
  [[noreturn]] void fail(const std::string& what) { throw Failure{file_error(text_, pos_, what)}; }

  void skip() {
    while (pos_ < text_.size() && is_space(text_[pos_])) ++pos_;
  }

  std::size_t add(Node n, std::size_t parent) {
    n.parent = parent;
    n.in_flow = parent != npos;
    std::size_t idx = t_.nodes.size();
    t_.nodes.push_back(std::move(n));
    if (parent != npos) t_.nodes[parent].children.push_back(idx);
    return idx;
  }

  std::size_t value(std::size_t parent, int depth) {
    if (depth > max_json_depth) fail("invalid JSON: nested more than " + std::to_string(max_json_depth) + " levels");
    skip();
    if (pos_ >= text_.size()) fail("invalid JSON: unexpected end");
    char c = text_[pos_];
    if (c == '{' || c == '[') {
      Node n;
      n.kind = c == '{' ? NodeKind::mapping : NodeKind::sequence;
      n.flow = true;
      n.begin = n.content = pos_;
      std::size_t idx = add(std::move(n), parent);
      char close = c == '{' ? '}' : ']';
      ++pos_;
      skip();
      if (pos_ < text_.size() && text_[pos_] == close) {
        t_.nodes[idx].end = ++pos_;
        return idx;
      }
      while (true) {
        if (c == '{') {
          skip();
          if (pos_ >= text_.size() || text_[pos_] != '"') fail("invalid JSON: expected a key");
          value(idx, depth + 1);
          skip();
          if (pos_ >= text_.size() || text_[pos_] != ':') fail("invalid JSON: expected ':'");
          ++pos_;
        }
        value(idx, depth + 1);
        skip();
        if (pos_ < text_.size() && text_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < text_.size() && text_[pos_] == close) break;
        fail(std::string("invalid JSON: expected ',' or '") + close + "'");
      }
      t_.nodes[idx].end = ++pos_;
      return idx;
    }
    Node n;
    n.kind = NodeKind::scalar;
    n.begin = n.content = pos_;
    if (c == '"') {
      n.style = ScalarStyle::double_quoted;
      n.tag = "!";
      n.value = string();
    } else {
      while (pos_ < text_.size() && !ends_token(text_[pos_]) && text_[pos_] != ':') ++pos_;
      n.style = ScalarStyle::plain;
      n.tag = "?";
      n.value = std::string(text_.substr(n.begin, pos_ - n.begin));
      n.is_null = n.value == "null";
    }
    n.end = pos_;
    return add(std::move(n), parent);
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  unsigned hex4() {
    if (pos_ + 4 > text_.size()) fail("invalid JSON: short \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      char h = text_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f') v |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= static_cast<unsigned>(h - 'A' + 10);
      else fail("invalid JSON: bad \\u escape");
    }
    return v;
  }

  std::string string() {
    std::string out;
    ++pos_;  // the opening quote
    while (pos_ < text_.size() && text_[pos_] != '"') {
      char c = text_[pos_++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) break;
      char e = text_[pos_++];
      switch (e) {
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && text_.substr(pos_, 2) == "\\u") {
            pos_ += 2;
            unsigned lo = hex4();
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: out += e;
      }
    }
    if (pos_ >= text_.size()) fail("invalid JSON: string is never closed");
    ++pos_;
    return out;
  }

  Tree& t_;
  std::string_view text_;
  std::size_t pos_ = 0;
};

void canonical_into(const Tree& t, std::size_t i, std::size_t hole, std::size_t skip, std::string& out, int depth) {
  if (i == hole) {
    out += "<hole>";
    return;
  }
  if (depth > 10'000) {
    out += "<deep>";
    return;
  }
  const Node& n = t.nodes[i];
  if (n.anchor != 0) out += "&" + std::to_string(n.anchor);
  auto str = [&](const char* type, const std::string& v) {
    out += type;
    out += ':' + std::to_string(v.size()) + ':' + v;
  };
  switch (n.kind) {
    case NodeKind::empty:
      out += "~";
      return;
    case NodeKind::alias:
      out += "*" + (n.alias_of == npos ? std::string("?") : std::to_string(t.nodes[n.alias_of].anchor));
      return;
    case NodeKind::scalar:
      if (n.tag == "?" && t.format == FileFormat::json) {
        str("j", n.value);
      } else if (n.tag == "?") {
        str(describe(classify_plain(n.value)), n.value);
      } else if (n.tag == "!") {
        str("a string", n.value);
      } else {
        str(n.tag.c_str(), n.value);
      }
      return;
    case NodeKind::mapping:
    case NodeKind::sequence: {
      bool map = n.kind == NodeKind::mapping;
      out += map ? '{' : '[';
      for (std::size_t k = 0; k < n.children.size(); ++k) {
        if (n.children[k] == skip) {
          if (map) ++k;
          continue;
        }
        canonical_into(t, n.children[k], hole, skip, out, depth + 1);
        if (map) {
          out += ':';
          canonical_into(t, n.children[++k], hole, skip, out, depth + 1);
        }
        out += ',';
      }
      out += map ? '}' : ']';
      return;
    }
  }
}

}  // namespace

Position position_of(std::string_view text, std::size_t byte) {
  Position p{1, 1};
  byte = std::min(byte, text.size());
  std::size_t ls = 0;
  for (std::size_t i = 0; i < byte; ++i) {
    if (text[i] == '\n') {
      ++p.line;
      ls = i + 1;
    }
  }
  for (std::size_t i = ls; i < byte; ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++p.column;
  }
  // A BOM at the very start is not a column anyone sees.
  if (p.line == 1 && text.substr(0, 3) == "\xEF\xBB\xBF" && byte >= 3) --p.column;
  return p;
}

tl::expected<Tree, EditError> read_tree(std::string_view text, FileFormat format) {
  Tree t;
  t.text = text;
  t.format = format;
  std::size_t nl = text.find('\n');
  if (nl != std::string_view::npos && nl > 0 && text[nl - 1] == '\r') t.eol = "\r\n";
  try {
    if (format == FileFormat::json) {
      try {
        // Only to reject what is not JSON, with nlohmann's message; the tree is read below.
        nlohmann::json parsed = nlohmann::json::parse(text.begin(), text.end());
        (void)parsed;
      } catch (const nlohmann::json::parse_error& e) {
        std::string what = e.what();
        // "[json.exception.parse_error.101] parse error at line 1, column 5: syntax error ..."
        std::size_t colon = what.find(": ", what.find("column"));
        std::string why = colon == std::string::npos ? what : what.substr(colon + 2);
        std::size_t byte = e.byte > 0 ? e.byte - 1 : 0;
        return tl::unexpected(file_error(text, byte, "invalid JSON (" + why + ")"));
      } catch (const nlohmann::json::out_of_range& e) {
        // "[json.exception.out_of_range.406] number overflow parsing '1e999'": valid syntax, but
        // no double holds it (found by fuzz_edit). Point at the number when it can be found.
        std::string what = e.what();
        std::size_t close = what.find("] ");
        std::string why = close == std::string::npos ? what : what.substr(close + 2);
        std::size_t byte = 0;
        if (auto q1 = what.find('\''); q1 != std::string::npos) {
          if (auto q2 = what.find('\'', q1 + 1); q2 != std::string::npos) {
            if (auto at = text.find(std::string_view(what).substr(q1 + 1, q2 - q1 - 1)); at != std::string_view::npos) byte = at;
          }
        }
        return tl::unexpected(file_error(text, byte, "invalid JSON (" + why + ")"));
      }
      JsonReader(t).read();
      return t;
    }
    std::size_t base = text.substr(0, 3) == "\xEF\xBB\xBF" ? 3 : 0;
    Builder builder(t, base);
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    while (parser.HandleNextDocument(builder)) {
    }
    if (t.documents.empty()) {
      Node n;
      n.is_null = true;
      n.begin = n.content = n.end = base;
      t.nodes.push_back(std::move(n));
      t.documents.push_back(0);
    }
    return t;
  } catch (const Failure& f) {
    return tl::unexpected(f.error);
  } catch (const YAML::Exception& e) {
    std::size_t base = text.substr(0, 3) == "\xEF\xBB\xBF" ? 3 : 0;
    return tl::unexpected(file_error(text, base + static_cast<std::size_t>(std::max(0, e.mark.pos)),
                                     "invalid YAML (" + e.msg + ")"));
  }
}

std::size_t key_of(const Tree& tree, std::size_t value) {
  const Node& n = tree.nodes[value];
  if (n.parent == npos || tree.nodes[n.parent].kind != NodeKind::mapping) return npos;
  const auto& ch = tree.nodes[n.parent].children;
  for (std::size_t k = 1; k < ch.size(); k += 2) {
    if (ch[k] == value) return ch[k - 1];
  }
  return npos;
}

std::string anchor_name(const Tree& tree, std::size_t node) {
  const Node& n = tree.nodes[node];
  std::string_view props = tree.text.substr(n.begin, n.content - n.begin);
  std::size_t amp = props.find('&');
  if (amp == std::string_view::npos) return "";
  std::size_t e = amp + 1;
  while (e < props.size() && !ends_token(props[e])) ++e;
  return std::string(props.substr(amp + 1, e - amp - 1));
}

std::string canonical(const Tree& tree, std::size_t node, std::size_t hole, std::size_t skip) {
  std::string out;
  canonical_into(tree, node, hole, skip, out, 0);
  return out;
}

}  // namespace tollgate::edit
