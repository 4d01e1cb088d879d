#include "service/edit/tree_edit.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "pipeline/suggest.hpp"
#include "pipeline/utf8.hpp"
#include "service/edit/scalar.hpp"

namespace tollgate::edit {
namespace {

std::string loc(const Tree& tree, std::size_t byte) {
  Position p = position_of(tree.text, byte);
  return "line " + std::to_string(p.line) + ", column " + std::to_string(p.column);
}

// `'a.b'` or `the document root`, for the node reached by a path prefix.
std::string name_of(std::span<const PathSegment> prefix) {
  return prefix.empty() ? std::string("the document root") : "'" + format_path(prefix) + "'";
}

std::string short_value(std::string_view v) {
  std::string_view s = pipeline::utf8_prefix(v, 40);
  std::string out(s);
  for (char& c : out) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return s.size() < v.size() ? out + "..." : out;
}

// `the mapping 'a'`, or `the top-level mapping`.
std::string mapping_name(std::span<const PathSegment> prefix) {
  return prefix.empty() ? std::string("the top-level mapping") : "the mapping '" + format_path(prefix) + "'";
}

// What a node is, for "X is ..., not a mapping".
std::string what_is(const Tree& tree, std::size_t i) {
  const Node& n = tree.at(i);
  switch (n.kind) {
    case NodeKind::mapping: return "a mapping";
    case NodeKind::sequence: return "a list";
    case NodeKind::alias: return "an alias";
    case NodeKind::empty: return "empty";
    case NodeKind::scalar: return "the value '" + short_value(n.value) + "'";
  }
  return "a value";
}

// Where to point for a node: a value's own text, but the key of a mapping, list or empty value
// (where those start is less visible than the name that introduces them).
std::size_t shown_at(const Tree& tree, std::size_t i) {
  const Node& n = tree.at(i);
  std::size_t key = key_of(tree, i);
  if (key == npos || n.kind == NodeKind::scalar || n.kind == NodeKind::alias) return n.begin;
  return tree.at(key).begin;
}

std::string display_tag(const std::string& tag) {
  const std::string core = "tag:yaml.org,2002:";
  return tag.rfind(core, 0) == 0 ? "!!" + tag.substr(core.size()) : tag;
}

bool is_json_number(std::string_view v) {
  if (v.empty()) return false;
  nlohmann::json j = nlohmann::json::parse(v.begin(), v.end(), nullptr, /*allow_exceptions=*/false);
  return j.is_number();
}

EditError alias_error(const Tree& tree, std::size_t alias, std::span<const PathSegment> segments, std::size_t at,
                      std::string_view path) {
  const Node& a = tree.at(alias);
  std::string msg = "path '" + std::string(path) + "': " + name_of(segments.first(at)) + " (" + loc(tree, a.begin) +
                    ") is an alias";
  std::string fix = "replace the alias with a copy of the value";
  if (a.alias_of != npos) {
    msg += " of '&" + anchor_name(tree, a.alias_of) + "' (" + loc(tree, tree.at(a.alias_of).begin) + ")";
    if (auto anchored = path_to(tree, a.alias_of)) {
      std::string rest = format_path(segments.subspan(at));
      if (!rest.empty() && rest[0] != '[') rest = "." + rest;
      std::string target = *anchored + rest;
      if (!target.empty() && target[0] == '.') target.erase(0, 1);
      fix = "set '" + target + "' to change the anchored value everywhere it is used, or " + fix;
    }
  }
  return error_at(EditErrorKind::not_editable, tree, a.begin,
                  msg + "; tollgate does not edit through aliases: " + fix);
}

}  // namespace

std::string apply(std::string_view text, std::vector<Splice> splices) {
  std::sort(splices.begin(), splices.end(), [](const Splice& a, const Splice& b) { return a.offset > b.offset; });
  std::string out(text);
  for (const auto& s : splices) out.replace(s.offset, s.length, s.text);
  return out;
}

std::string format_path(std::span<const PathSegment> segments) {
  std::string out;
  for (const auto& seg : segments) {
    if (const auto* idx = std::get_if<std::size_t>(&seg)) {
      out += "[" + std::to_string(*idx) + "]";
      continue;
    }
    const auto& key = std::get<std::string>(seg);
    if (key.find_first_of(".[]\"") != std::string::npos) {
      out += "[\"";
      for (char c : key) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
      }
      out += "\"]";
    } else {
      if (!out.empty()) out += '.';
      out += key;
    }
  }
  return out;
}

EditError error_at(EditErrorKind kind, const Tree& tree, std::size_t byte, std::string message) {
  Position p = position_of(tree.text, byte);
  return EditError{kind, std::move(message), p.line, p.column};
}

bool key_text(const Tree& tree, std::size_t key, std::string& out) {
  const Node& k = tree.at(key);
  if (k.kind == NodeKind::scalar) {
    out = k.value;
    return true;
  }
  if (k.kind == NodeKind::empty) {
    out.clear();
    return true;
  }
  return false;
}

std::optional<std::string> path_to(const Tree& tree, std::size_t node) {
  std::vector<PathSegment> rev;
  for (std::size_t i = node; tree.at(i).parent != npos; i = tree.at(i).parent) {
    const Node& p = tree.at(tree.at(i).parent);
    auto it = std::find(p.children.begin(), p.children.end(), i);
    auto pos = static_cast<std::size_t>(it - p.children.begin());
    if (p.kind == NodeKind::sequence) {
      rev.emplace_back(pos);
    } else {
      std::string k;
      if (pos % 2 == 0 || !key_text(tree, p.children[pos - 1], k) || k.empty()) return std::nullopt;
      rev.emplace_back(k);
    }
  }
  std::reverse(rev.begin(), rev.end());
  return format_path(rev);
}

tl::expected<Resolved, EditError> resolve(const Tree& tree, std::size_t root, std::span<const PathSegment> segments,
                                          std::string_view path, bool allow_missing_last) {
  const std::string head = "path '" + std::string(path) + "': ";
  std::size_t cur = root;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const Node& n = tree.at(cur);
    auto prefix = segments.first(i);
    if (n.kind == NodeKind::alias) return tl::unexpected(alias_error(tree, cur, segments, i, path));
    if (const auto* key = std::get_if<std::string>(&segments[i])) {
      if (n.kind != NodeKind::mapping) {
        std::string fix;
        if (n.kind == NodeKind::sequence) {
          std::vector<PathSegment> eg(prefix.begin(), prefix.end());
          eg.emplace_back(std::size_t{0});
          eg.insert(eg.end(), segments.begin() + static_cast<std::ptrdiff_t>(i), segments.end());
          fix = "use an index, such as '" + format_path(eg) + "'";
        } else if (i > 0) {
          fix = "end the path at '" + format_path(prefix) + "' or add the mapping to the file first";
        } else {
          fix = "the file must hold a mapping";
        }
        return tl::unexpected(error_at(EditErrorKind::not_found, tree, shown_at(tree, cur),
                                       head + name_of(prefix) + " (" + loc(tree, shown_at(tree, cur)) + ") is " + what_is(tree, cur) +
                                           ", not a mapping, so it has no key '" + *key + "'; " + fix));
      }
      std::vector<std::size_t> found;
      std::vector<std::string> keys;
      bool merges = false;
      for (std::size_t k = 0; k + 1 < n.children.size(); k += 2) {
        std::string text;
        if (!key_text(tree, n.children[k], text)) continue;
        if (text == *key) found.push_back(k);
        if (text == "<<" && tree.at(n.children[k]).tag == "?") merges = true;
        keys.push_back(std::move(text));
      }
      if (found.size() > 1) {
        std::string lines;
        int previous = 0;
        bool one_line = false;
        for (std::size_t f : found) {
          int line = position_of(tree.text, tree.at(n.children[f]).begin).line;
          one_line = one_line || line == previous;
          previous = line;
          lines += (lines.empty() ? "lines " : " and ") + std::to_string(line);
        }
        if (one_line) {  // `{"a": 1, "a": 2}`: say where on the line
          lines.clear();
          for (std::size_t f : found) lines += (lines.empty() ? "" : " and ") + loc(tree, tree.at(n.children[f]).begin);
        }
        return tl::unexpected(error_at(EditErrorKind::not_editable, tree, tree.at(n.children[found[1]]).begin,
                                       head + "key '" + *key + "' appears more than once in " +
                                           mapping_name(prefix) + " (" + lines + "); remove the duplicates"));
      }
      if (found.empty()) {
        bool last = i + 1 == segments.size();
        if (last && allow_missing_last) return Resolved{npos, cur};
        std::string msg = head + "key '" + *key + "' not found in " + mapping_name(prefix) + " (" +
                          loc(tree, n.content) + ")";
        if (auto guess = pipeline::closest(*key, keys)) msg += " (did you mean '" + *guess + "'?)";
        if (merges) msg += "; keys merged in with '<<' are not followed";
        msg += last ? "; add '" + *key + ":' to the file or fix the path"
                    : "; tollgate adds only the last key of a path, so add '" + *key + ":' to the file or fix the path";
        return tl::unexpected(error_at(EditErrorKind::not_found, tree, n.content, std::move(msg)));
      }
      cur = n.children[found[0] + 1];
      continue;
    }
    std::size_t index = std::get<std::size_t>(segments[i]);
    if (n.kind != NodeKind::sequence) {
      std::string fix;
      if (n.kind == NodeKind::mapping && !n.children.empty()) {
        std::string first;
        std::vector<PathSegment> eg(prefix.begin(), prefix.end());
        if (key_text(tree, n.children[0], first) && !first.empty()) {
          eg.emplace_back(first);
          fix = "; use a key, such as '" + format_path(eg) + "'";
        }
      } else if (n.kind == NodeKind::scalar && i > 0) {
        fix = "; end the path at '" + format_path(prefix) + "'";
      }
      return tl::unexpected(error_at(EditErrorKind::not_found, tree, shown_at(tree, cur),
                                     head + name_of(prefix) + " (" + loc(tree, shown_at(tree, cur)) + ") is " + what_is(tree, cur) +
                                         ", not a list, so it has no index " + std::to_string(index) + fix));
    }
    if (index >= n.children.size()) {
      std::string has = n.children.empty() ? "which is empty"
                                           : "which has " + std::to_string(n.children.size()) +
                                                 (n.children.size() == 1 ? " item" : " items");
      std::string fix = n.children.empty() ? "add an item to the file first"
                                           : "use an index from 0 to " + std::to_string(n.children.size() - 1);
      return tl::unexpected(error_at(EditErrorKind::not_found, tree, n.content,
                                     head + "index " + std::to_string(index) + " is past the end of the list " +
                                         name_of(prefix) + " (" + loc(tree, n.content) + "), " + has +
                                         "; tollgate does not add list items, so " + fix));
    }
    cur = n.children[index];
  }
  const Node& n = tree.at(cur);
  if (n.kind == NodeKind::alias) return tl::unexpected(alias_error(tree, cur, segments, segments.size(), path));
  if (n.kind == NodeKind::mapping || n.kind == NodeKind::sequence) {
    std::string fix;
    std::vector<PathSegment> eg(segments.begin(), segments.end());
    std::string first;
    if (n.kind == NodeKind::sequence) {
      eg.emplace_back(std::size_t{0});
      fix = "an item, such as '" + format_path(eg) + "'";
    } else if (!n.children.empty() && key_text(tree, n.children[0], first) && !first.empty()) {
      eg.emplace_back(first);
      fix = "one of its keys, such as '" + format_path(eg) + "'";
    } else {
      fix = "one of its keys";
    }
    return tl::unexpected(error_at(EditErrorKind::not_editable, tree, shown_at(tree, cur),
                                   head + name_of(segments) + " (" + loc(tree, shown_at(tree, cur)) + ") is " + what_is(tree, cur) +
                                       ", not a single value; point the path at " + fix));
  }
  return Resolved{cur, npos};
}

std::string new_scalar_text(const Tree& tree, std::string_view value, bool in_flow) {
  if (tree.format == FileFormat::json) return double_quoted(value);
  if (plain_syntax_ok(value, in_flow) && classify_plain(value) == PlainKind::string) return std::string(value);
  return double_quoted(value);
}

std::string new_key_text(const Tree& tree, std::string_view key, bool in_flow) {
  return new_scalar_text(tree, key, in_flow);
}

tl::expected<std::vector<Splice>, EditError> replace_scalar(const Tree& tree, std::size_t node, std::string_view value,
                                                            std::string_view path, Typing typing) {
  const Node& n = tree.at(node);
  const std::string head = "path '" + std::string(path) + "': ";
  if (n.kind == NodeKind::empty ? value.empty() : n.value == value) return std::vector<Splice>{};
  if (n.end == npos || n.end < n.content) {
    return tl::unexpected(error_at(EditErrorKind::not_editable, tree, n.begin,
                                   head + "cannot tell where the value at " + loc(tree, n.begin) +
                                       " ends in the text; rewrite it on one line, quoted"));
  }
  std::string text;
  if (tree.format == FileFormat::json) {
    bool raw = false;
    if (n.style == ScalarStyle::plain && typing == Typing::preserve) {
      bool old_bool = n.value == "true" || n.value == "false";
      bool new_bool = value == "true" || value == "false";
      raw = (old_bool && new_bool) || (!old_bool && !n.is_null && is_json_number(n.value) && is_json_number(value));
    }
    text = raw ? std::string(value) : double_quoted(value);
  } else {
    bool core_tag = n.tag.rfind("tag:yaml.org,2002:", 0) == 0 && n.tag != "tag:yaml.org,2002:str";
    PlainKind new_kind = classify_plain(value);
    if (core_tag) {
      static const std::pair<const char*, PlainKind> tags[] = {{"tag:yaml.org,2002:int", PlainKind::integer},
                                                              {"tag:yaml.org,2002:float", PlainKind::floating},
                                                              {"tag:yaml.org,2002:bool", PlainKind::boolean},
                                                              {"tag:yaml.org,2002:null", PlainKind::null}};
      bool fits = false;
      for (const auto& [t, k] : tags) fits = fits || (n.tag == t && new_kind == k);
      if (!fits) {
        return tl::unexpected(error_at(EditErrorKind::not_editable, tree, n.begin,
                                       head + "the value at " + loc(tree, n.begin) + " is tagged '" + display_tag(n.tag) +
                                           "', and '" + short_value(value) + "' is not of that type; remove the tag"));
      }
    }
    bool tagged = n.tag != "?" && n.tag != "!" && n.kind != NodeKind::empty;
    switch (n.style) {
      case ScalarStyle::literal:
      case ScalarStyle::folded:
        if (auto block = rewrite_block(tree.text, n.content, n.end, value)) {
          text = *block;
        } else {
          text = double_quoted(value);
        }
        break;
      case ScalarStyle::single_quoted:
        text = single_quote_ok(value) ? single_quoted(value) : double_quoted(value);
        break;
      case ScalarStyle::double_quoted:
        text = double_quoted(value);
        break;
      case ScalarStyle::plain: {
        PlainKind old_kind = n.kind == NodeKind::empty ? PlainKind::null : classify_plain(n.value);
        bool keeps_meaning = tagged || new_kind == PlainKind::string ||
                             (typing == Typing::preserve && new_kind == old_kind);
        text = (plain_syntax_ok(value, n.in_flow) && keeps_meaning) ? std::string(value) : double_quoted(value);
        break;
      }
    }
  }
  if (n.kind == NodeKind::empty) {
    // `key:` or `- ` with nothing after: the value goes after the indicator, one space apart.
    char before = n.content > 0 ? tree.text[n.content - 1] : '\n';
    if (before != ' ' && before != '\t' && before != '\n' && before != '[' && before != '{') text = " " + text;
  }
  return std::vector<Splice>{Splice{n.content, n.end - n.content, std::move(text)}};
}

std::size_t column_bytes(std::string_view text, std::size_t byte) {
  std::size_t ls = text.rfind('\n', byte == 0 ? 0 : byte - 1);
  ls = (byte == 0 || ls == std::string_view::npos) ? 0 : ls + 1;
  return byte - ls;
}

std::size_t after_line(std::string_view text, std::size_t byte) {
  std::size_t nl = text.find('\n', byte);
  return nl == std::string_view::npos ? text.size() : nl + 1;
}

std::string line_break_at(const Tree& tree, std::size_t byte) {
  std::size_t nl = tree.text.find('\n', byte);
  if (nl == std::string_view::npos) return tree.eol;
  return (nl > 0 && tree.text[nl - 1] == '\r') ? "\r\n" : "\n";
}

tl::expected<Splice, EditError> add_entry(const Tree& tree, std::size_t mapping, std::string_view key,
                                          std::string_view value, std::string_view path) {
  const Node& m = tree.at(mapping);
  const std::string head = "path '" + std::string(path) + "': ";
  std::size_t last_end = m.children.empty() ? m.content : tree.at(m.children.back()).end;
  if (last_end == npos) {
    return tl::unexpected(error_at(EditErrorKind::not_editable, tree, m.content,
                                   head + "cannot tell where the mapping at " + loc(tree, m.content) +
                                       " ends in the text, so key '" + std::string(key) + "' cannot be added"));
  }
  bool in_flow = m.flow || m.in_flow;
  std::string member = new_key_text(tree, key, in_flow) + ": " + new_scalar_text(tree, value, in_flow);
  if (m.flow) {
    if (m.children.empty()) return Splice{m.content + 1, 0, member};
    // A member on its own line (pretty-printed JSON) gets a line of its own, indented alike.
    std::size_t last_key = tree.at(m.children[m.children.size() - 2]).begin;
    std::size_t ls = last_key - column_bytes(tree.text, last_key);
    std::string_view indent = tree.text.substr(ls, last_key - ls);
    if (indent.find_first_not_of(" \t") == std::string_view::npos && ls > 0) {
      std::string brk = (ls >= 2 && tree.text[ls - 2] == '\r') ? "\r\n" : "\n";
      return Splice{last_end, 0, "," + brk + std::string(indent) + member};
    }
    return Splice{last_end, 0, ", " + member};
  }
  std::size_t first_key = tree.at(m.children.front()).begin;
  std::string indent(column_bytes(tree.text, first_key), ' ');
  std::size_t at = after_line(tree.text, last_end);
  if (at == tree.text.size() && (tree.text.empty() || tree.text.back() != '\n')) {
    return Splice{at, 0, tree.eol + indent + member};  // the file keeps having no final line break
  }
  return Splice{at, 0, indent + member + line_break_at(tree, last_end)};
}

tl::expected<Splice, EditError> remove_entry(const Tree& tree, std::size_t key, std::string_view path) {
  const Node& k = tree.at(key);
  const Node& m = tree.at(k.parent);
  auto it = std::find(m.children.begin(), m.children.end(), key);
  auto pos = static_cast<std::size_t>(it - m.children.begin());
  const Node& v = tree.at(m.children[pos + 1]);
  bool has_next = pos + 2 < m.children.size();
  if (v.end == npos) {
    return tl::unexpected(error_at(EditErrorKind::not_editable, tree, k.begin,
                                   "path '" + std::string(path) + "': cannot tell where the value at " +
                                       loc(tree, v.begin) + " ends in the text, so it cannot be removed"));
  }
  if (m.flow) {
    if (has_next) {
      std::size_t next = tree.at(m.children[pos + 2]).begin;
      return Splice{k.begin, next - k.begin, ""};
    }
    if (pos > 0) {
      std::size_t prev_end = tree.at(m.children[pos - 1]).end;
      return Splice{prev_end, v.end - prev_end, ""};
    }
    return Splice{k.begin, v.end - k.begin, ""};
  }
  std::size_t ls = k.begin - column_bytes(tree.text, k.begin);
  bool own_line = tree.text.substr(ls, k.begin - ls).find_first_not_of(' ') == std::string_view::npos;
  if (own_line) {
    std::size_t end = after_line(tree.text, v.end);
    return Splice{ls, end - ls, ""};
  }
  // `- digest: x` opening a list item: the next key moves up into its place.
  if (has_next) {
    std::size_t next = tree.at(m.children[pos + 2]).begin;
    return Splice{k.begin, next - k.begin, ""};
  }
  return tl::unexpected(error_at(EditErrorKind::not_editable, tree, k.begin,
                                 "path '" + std::string(path) + "': the only key of the item at " + loc(tree, k.begin) +
                                     " cannot be removed"));
}

}  // namespace tollgate::edit
