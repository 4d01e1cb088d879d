#include "pipeline/schema_check.hpp"

#include <algorithm>
#include <memory>
#include <optional>
#include <string_view>

#include <re2/re2.h>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "pipeline/suggest.hpp"
#include "pipeline/utf8.hpp"

namespace tollgate_schemas {
std::string_view embedded(std::string_view name);
}

namespace tollgate::pipeline {
namespace {

using nlohmann::json;

struct CompiledSchema {
  json doc;
  valijson::Schema schema;
};

const CompiledSchema& compiled() {
  static const std::unique_ptr<CompiledSchema> s = [] {
    auto c = std::make_unique<CompiledSchema>();
    c->doc = json::parse(tollgate_schemas::embedded("pipeline.schema.json"));
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    valijson::adapters::NlohmannJsonAdapter adapter(c->doc);
    parser.populateSchema(adapter, c->schema);
    return c;
  }();
  return *s;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// valijson context ["<root>", "[pipelines]", "[0]"] -> tokens {"pipelines", "0"}
std::vector<std::string> tokens_of(const std::vector<std::string>& context) {
  std::vector<std::string> out;
  for (const auto& c : context) {
    if (c.size() >= 2 && c.front() == '[' && c.back() == ']') out.push_back(c.substr(1, c.size() - 2));
  }
  return out;
}

std::string pointer_of(const std::vector<std::string>& tokens) {
  std::string p;
  for (const auto& t : tokens) p += "/" + pointer_token(t);
  return p;
}

bool is_prefix(const std::vector<std::string>& prefix, const std::vector<std::string>& of) {
  return prefix.size() <= of.size() && std::equal(prefix.begin(), prefix.end(), of.begin());
}

const json* resolve(const json* s) {
  const json& root = compiled().doc;
  for (int guard = 0; s && s->is_object() && s->contains("$ref") && guard < 16; ++guard) {
    std::string ref = (*s)["$ref"].get<std::string>();
    if (!starts_with(ref, "#/definitions/")) return s;
    auto& defs = root["definitions"];
    auto it = defs.find(ref.substr(14));
    s = it == defs.end() ? nullptr : &*it;
  }
  return s;
}

struct Located {
  const json* schema = nullptr;    // resolved subschema for the node
  const json* instance = nullptr;  // the node itself
};

// Walks the schema and the instance together along the tokens.
Located locate(const json& doc, const std::vector<std::string>& tokens) {
  Located at{resolve(&compiled().doc), &doc};
  for (const auto& t : tokens) {
    if (!at.instance) return {};
    const json* s = at.schema;
    const json* next_schema = nullptr;
    if (at.instance->is_object()) {
      auto it = at.instance->find(t);
      at.instance = it == at.instance->end() ? nullptr : &*it;
      if (s && s->contains("properties") && (*s)["properties"].contains(t)) {
        next_schema = &(*s)["properties"][t];
      } else if (s && s->contains("additionalProperties") && (*s)["additionalProperties"].is_object()) {
        next_schema = &(*s)["additionalProperties"];
      }
    } else if (at.instance->is_array()) {
      std::size_t i = std::strtoul(t.c_str(), nullptr, 10);
      at.instance = i < at.instance->size() ? &(*at.instance)[i] : nullptr;
      if (s && s->contains("items")) next_schema = &(*s)["items"];
      if (s && s->contains("anyOf")) {
        for (const auto& b : (*s)["anyOf"]) {
          if (b.contains("items")) next_schema = &b["items"];
        }
      }
    } else {
      return {};
    }
    at.schema = resolve(next_schema);
  }
  return at;
}

std::string type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "empty";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "a number";
    case json::value_t::number_float: return "a number";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "a list";
    case json::value_t::object: return "a mapping";
    default: return "a value";
  }
}

std::string schema_type_words(const json& t) {
  auto one = [](const std::string& s) -> std::string {
    if (s == "object") return "a mapping";
    if (s == "array") return "a list";
    if (s == "integer") return "a whole number";
    if (s == "number") return "a number";
    if (s == "boolean") return "true or false";
    if (s == "string") return "a string";
    return s;
  };
  if (t.is_string()) return one(t.get<std::string>());
  std::string out;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (i) out += i + 1 == t.size() ? " or " : ", ";
    out += one(t[i].get<std::string>());
  }
  return out;
}

std::string short_value(const json& v) {
  std::string s = v.is_string() ? v.get<std::string>() : v.dump();
  if (s.size() > 40) s = std::string(utf8_prefix(s, 37)) + "...";
  return s;
}

std::vector<std::string> string_list(const json& arr) {
  std::vector<std::string> out;
  for (const auto& v : arr) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

std::string quoted_list(const std::vector<std::string>& items, const char* last_sep = " or ") {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += i + 1 == items.size() ? last_sep : ", ";
    out += "'" + items[i] + "'";
  }
  return out;
}

class Translator {
 public:
  Translator(const YamlDocument& doc, const std::string& file) : doc_(doc), file_(file) {}

  std::vector<Diagnostic> run(const std::vector<valijson::ValidationResults::Error>& errors) {
    struct Raw {
      std::vector<std::string> tokens;
      std::string description;
    };
    std::vector<Raw> kept;
    for (const auto& e : errors) {
      const std::string& d = e.description;
      if (starts_with(d, "Failed to validate item #") ||
          starts_with(d, "Failed to validate against schema associated with property name") ||
          starts_with(d, "Failed to validate against additional properties schema") ||
          starts_with(d, "Failed to validate against schema associated with pattern") ||
          starts_with(d, "Cannot validate item #") ||
          starts_with(d, "Failed to validate against child schema #") ||
          starts_with(d, "Failed to validate against dependent schema") ||
          starts_with(d, "Failed to validate against a conditional schema")) {
        continue;  // restates a failure already reported further down the tree
      }
      auto tokens = tokens_of(e.context);
      bool combinator = starts_with(d, "Failed to validate against any child schemas allowed by oneOf") ||
                        starts_with(d, "Failed to validate against any schemas allowed by anyOf");
      if (combinator) {
        // valijson reports each branch's failures just before the summary. In our schema a
        // combinator's branches either only require keys (then their failures are exactly
        // "Missing required property" on this node), or the combinator is all the node's schema.
        Located at = locate(doc_.json, tokens);
        const json* s = at.schema;
        bool required_only = false;
        if (s && s->contains("oneOf")) {
          required_only = std::all_of((*s)["oneOf"].begin(), (*s)["oneOf"].end(),
                                      [](const json& b) { return b.size() == 1 && b.contains("required"); });
        }
        while (!kept.empty() && is_prefix(tokens, kept.back().tokens)) {
          if (required_only && (kept.back().tokens != tokens ||
                                !starts_with(kept.back().description, "Missing required property"))) {
            break;
          }
          kept.pop_back();
        }
      }
      kept.push_back({std::move(tokens), d});
    }
    for (const auto& r : kept) translate(r.tokens, r.description);
    // "missing required key 'from'" next to "unknown key 'form'...; did you mean 'from'?" says the
    // same thing twice: keep the one that names the typo.
    std::vector<Diagnostic> out;
    for (auto& d : out_) {
      bool explained = false;
      for (const std::string marker : {" is missing required key '", " needs '"}) {
        auto at = d.message.find(marker);
        if (at == std::string::npos) continue;
        std::string key = d.message.substr(at + marker.size());
        key = key.substr(0, key.find('\''));
        for (const auto& other : out_) {
          if (other.path.rfind(d.path + "/", 0) == 0 && other.message.find("did you mean '" + key + "'?") != std::string::npos) {
            explained = true;
          }
        }
      }
      if (!explained) out.push_back(std::move(d));
    }
    return out;
  }

 private:
  std::vector<std::string> keys_in_file_order(const std::string& ptr, const json& obj) const {
    std::vector<std::string> keys;
    for (const auto& [k, _] : obj.items()) keys.push_back(k);
    std::stable_sort(keys.begin(), keys.end(), [&](const std::string& a, const std::string& b) {
      return doc_.map.key(ptr + "/" + pointer_token(a)) < doc_.map.key(ptr + "/" + pointer_token(b));
    });
    return keys;
  }

  // How a node is named in messages: 'soak', or item 2 of 'branches'.
  static std::string name_of(const std::vector<std::string>& tokens) {
    if (tokens.empty()) return "the file";
    const std::string& last = tokens.back();
    bool index = !last.empty() && std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (index && tokens.size() >= 2) {
      return "item " + std::to_string(std::stoul(last) + 1) + " of '" + tokens[tokens.size() - 2] + "'";
    }
    return "'" + last + "'";
  }

  // "stage 'qa'" / "pipeline 'payments'" / "edit" for objects with a title.
  static std::string object_words(const Located& at) {
    std::string title = "mapping";
    if (at.schema && at.schema->contains("title")) title = (*at.schema)["title"].get<std::string>();
    if (at.instance && at.instance->is_object()) {
      auto it = at.instance->find("name");
      if (it != at.instance->end() && it->is_string() && (title == "stage" || title == "pipeline")) {
        return title + " '" + short_value(*it) + "'";
      }
    }
    return title;
  }

  static std::string expected_of(const Located& at) {
    if (at.schema && at.schema->contains("x-expected")) return (*at.schema)["x-expected"].get<std::string>();
    return "";
  }

  void emit(const std::string& ptr, Position pos, std::string message) {
    out_.push_back(Diagnostic{file_, pos, ProblemKind::schema, ptr, std::move(message)});
  }

  void translate(const std::vector<std::string>& tokens, const std::string& d) {
    const std::string ptr = pointer_of(tokens);
    const Located at = locate(doc_.json, tokens);
    const Position vpos = doc_.map.value(ptr);
    const Position kpos = doc_.map.key(ptr);
    const std::string what = name_of(tokens);
    const std::string expected = expected_of(at);

    if (starts_with(d, "Object contains a property that could not be validated")) {
      // valijson names only the first unknown key; report every one, each at its own key.
      if (!at.instance || !at.instance->is_object() || !at.schema) return;
      std::vector<std::string> known;
      if (at.schema->contains("properties")) {
        for (const auto& [k, _] : (*at.schema)["properties"].items()) known.push_back(k);
      }
      for (const auto& [k, _] : at.instance->items()) {
        if (std::find(known.begin(), known.end(), k) != known.end()) continue;
        std::string child = ptr + "/" + pointer_token(k);
        emit(child, doc_.map.key(child),
             "unknown key '" + k + "' in " + object_words(at) + did_you_mean(k, known));
      }
      return;
    }
    if (starts_with(d, "Missing required property '")) {
      std::string key = d.substr(27, d.find('\'', 27) - 27);
      emit(ptr, kpos, object_words(at) + " is missing required key '" + key + "'");
      return;
    }
    if (starts_with(d, "Missing dependency '")) {
      std::string key = d.substr(20, d.find('\'', 20) - 20);
      std::string needs;
      if (at.instance && at.instance->is_object()) {
        for (const char* k : {"set", "image", "replace"}) {
          if (at.instance->contains(k)) needs = k;
        }
      }
      emit(ptr, kpos, "a '" + needs + "' edit needs '" + key + "': the file to change, relative to the repository root");
      return;
    }
    if (starts_with(d, "Value type not permitted")) {
      std::string got = at.instance ? type_name(*at.instance) : "a value";
      if (at.instance && at.instance->is_number_float()) got = "the fraction " + at.instance->dump();
      std::string want = !expected.empty() ? expected
                         : (at.schema && at.schema->contains("type")) ? schema_type_words((*at.schema)["type"])
                                                                      : "another type";
      emit(ptr, vpos, what + " must be " + want + ", not " + got);
      return;
    }
    if (starts_with(d, "Failed to match against any enum values")) {
      auto options = at.schema && at.schema->contains("enum") ? string_list((*at.schema)["enum"]) : std::vector<std::string>{};
      std::string got = at.instance ? short_value(*at.instance) : "";
      emit(ptr, vpos, what + " must be " + quoted_list(options) + "; got '" + got + "'" + did_you_mean(got, options));
      return;
    }
    if (starts_with(d, "Failed to match expected value set by 'const'")) {
      std::string got = at.instance ? short_value(*at.instance) : "";
      std::string hint;
      if (at.instance && at.instance->is_string() && at.schema && at.schema->contains("const") &&
          (*at.schema)["const"].dump() == got) {
        hint = "; write it without quotes";
      }
      emit(ptr, vpos, what + " must be " + (expected.empty() ? "a fixed value" : expected) + "; got '" + got + "'" + hint);
      return;
    }
    if (starts_with(d, "Failed to match regex specified by 'pattern'")) {
      std::string got = at.instance ? short_value(*at.instance) : "";
      if (tokens.size() >= 2 && tokens.back() == "name") {
        // "stage name 'QA' is invalid: ..." and the name it was probably meant to be.
        Located parent = locate(doc_.json, std::vector<std::string>(tokens.begin(), tokens.end() - 1));
        std::string title = parent.schema ? parent.schema->value("title", "") : "";
        std::string fixed;
        for (char c : got) {
          if (c >= 'A' && c <= 'Z') fixed += static_cast<char>(c - 'A' + 'a');
          else if (c == '_' || c == ' ' || c == '.') fixed += '-';
          else fixed += c;
        }
        RE2 name_re("[a-z0-9][a-z0-9-]*");
        std::string hint = fixed != got && RE2::FullMatch(fixed, name_re) ? "; did you mean '" + fixed + "'?" : "";
        emit(ptr, vpos, (title.empty() ? std::string("name") : title + " name") + " '" + got + "' is invalid: expected " + expected + hint);
        return;
      }
      emit(ptr, vpos, what + " is '" + got + "'; expected " + (expected.empty() ? "a different format" : expected));
      return;
    }
    if (starts_with(d, "String should be no more than")) {
      std::size_t len = at.instance && at.instance->is_string() ? at.instance->get_ref<const std::string&>().size() : 0;
      std::string max = at.schema && at.schema->contains("maxLength") ? (*at.schema)["maxLength"].dump() : "?";
      if (at.instance && at.instance->is_object()) return;  // propertyNames length: reported by the pattern
      emit(ptr, vpos, what + " is too long (" + std::to_string(len) + " characters; at most " + max + ")");
      return;
    }
    if (starts_with(d, "String should be no fewer than")) {
      std::string min = at.schema && at.schema->contains("minLength") ? (*at.schema)["minLength"].dump() : "1";
      if (min == "1") {
        emit(ptr, vpos, what + " must not be empty");
      } else {
        emit(ptr, vpos, what + " is too short" + (expected.empty() ? " (at least " + min + " characters)" : "; expected " + expected));
      }
      return;
    }
    if (starts_with(d, "Array should contain no fewer than")) {
      std::string min = at.schema && at.schema->contains("minItems") ? (*at.schema)["minItems"].dump() : "1";
      emit(ptr, vpos, what + " must list at least " + min + (min == "1" ? " item" : " items"));
      return;
    }
    if (starts_with(d, "Array should contain no more than")) {
      std::string max = at.schema && at.schema->contains("maxItems") ? (*at.schema)["maxItems"].dump() : "?";
      emit(ptr, vpos, what + " may list at most " + max + " items");
      return;
    }
    if (starts_with(d, "Object should have no fewer than") || starts_with(d, "Object should have no more than")) {
      std::vector<std::string> keys;
      if (at.schema && at.schema->contains("properties")) {
        for (const auto& [k, _] : (*at.schema)["properties"].items()) keys.push_back(k);
      }
      bool too_few = starts_with(d, "Object should have no fewer than");
      std::string words = object_words(at);
      if (!expected.empty()) {
        if (too_few) {
          emit(ptr, kpos, words + " is empty; it needs " + expected);
        } else {
          std::vector<std::string> present = keys_in_file_order(ptr, *at.instance);
          emit(ptr, kpos, words + " has " + quoted_list(present, " and ") + "; it needs " + expected);
        }
      } else if (too_few) {
        emit(ptr, kpos, what + " must not be empty" + (keys.empty() ? "" : "; add " + quoted_list(keys)));
      } else {
        emit(ptr, kpos, what + " has too many keys");
      }
      return;
    }
    if (starts_with(d, "Expected number greater than") || starts_with(d, "Expected number less than")) {
      bool low = starts_with(d, "Expected number greater than");
      const char* bound_key = low ? "minimum" : "maximum";
      std::string bound = at.schema && at.schema->contains(bound_key) ? (*at.schema)[bound_key].dump() : "?";
      std::string got = at.instance ? short_value(*at.instance) : "";
      emit(ptr, vpos, what + " must be " + (low ? "at least " : "at most ") + bound + "; got " + got);
      return;
    }
    if (starts_with(d, "Failed to validate against exactly one child schema")) {
      if (!at.instance || !at.instance->is_object()) return;  // its type is reported instead
      std::vector<std::string> present;
      for (const auto& k : keys_in_file_order(ptr, *at.instance)) {
        if (k == "set" || k == "image" || k == "replace" || k == "copy") present.push_back(k);
      }
      emit(ptr, kpos, object_words(at) + " has " + quoted_list(present, " and ") + "; it needs " +
                          (expected.empty() ? "exactly one of them" : expected));
      return;
    }
    if (starts_with(d, "Failed to validate against any child schemas allowed by oneOf") ||
        starts_with(d, "Failed to validate against any schemas allowed by anyOf")) {
      if (at.instance && at.instance->is_object()) {
        emit(ptr, kpos, object_words(at) + " needs " + (expected.empty() ? "another shape" : expected));
        return;
      }
      std::vector<std::string> options;
      if (at.schema && at.schema->contains("anyOf")) {
        for (const auto& b : (*at.schema)["anyOf"]) {
          if (b.contains("enum")) {
            auto more = string_list(b["enum"]);
            options.insert(options.end(), more.begin(), more.end());
          }
        }
      }
      std::string got = at.instance ? (at.instance->is_string() ? "'" + short_value(*at.instance) + "'" : type_name(*at.instance)) : "nothing";
      if (at.instance && at.instance->is_array() && at.instance->empty()) got = "an empty list";
      std::string hint = at.instance && at.instance->is_string() ? did_you_mean(at.instance->get<std::string>(), options) : "";
      emit(ptr, vpos, what + " must be " + (expected.empty() ? "another value" : expected) + "; got " + got + hint);
      return;
    }
    // A constraint this translator does not know: still report it, in valijson's words.
    std::string msg = d;
    if (!msg.empty()) msg[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(msg[0])));
    if (!msg.empty() && msg.back() == '.') msg.pop_back();
    emit(ptr, vpos, what + ": " + msg);
  }

  const YamlDocument& doc_;
  const std::string& file_;
  std::vector<Diagnostic> out_;
};

// valijson fails `propertyNames` without saying why, so those are checked here, for every object
// whose subschema has one.
void check_property_names(const YamlDocument& doc, const std::string& file, const json& instance,
                          const json* schema, const std::string& ptr, std::vector<Diagnostic>& out) {
  schema = resolve(schema);
  if (!schema || !schema->is_object()) return;
  if (instance.is_object()) {
    if (schema->contains("propertyNames")) {
      const json& pn = (*schema)["propertyNames"];
      RE2::Options opts;
      opts.set_log_errors(false);
      RE2 re(pn.value("pattern", ".*"), opts);
      std::size_t max = pn.value("maxLength", std::size_t{1} << 20);
      std::string exp = pn.value("x-expected", "a valid name");
      std::string title = schema->value("title", "mapping");
      for (const auto& [k, _] : instance.items()) {
        if (k.size() <= max && RE2::PartialMatch(k, re)) continue;
        std::string child = ptr + "/" + pointer_token(k);
        out.push_back({file, doc.map.key(child), ProblemKind::schema, child,
                       "'" + k + "' is not a valid name in " + title + ": expected " + exp});
      }
    }
    for (const auto& [k, v] : instance.items()) {
      const json* sub = nullptr;
      if (schema->contains("properties") && (*schema)["properties"].contains(k)) sub = &(*schema)["properties"][k];
      else if (schema->contains("additionalProperties") && (*schema)["additionalProperties"].is_object()) sub = &(*schema)["additionalProperties"];
      if (sub) check_property_names(doc, file, v, sub, ptr + "/" + pointer_token(k), out);
    }
  } else if (instance.is_array() && schema->contains("items")) {
    for (std::size_t i = 0; i < instance.size(); ++i) {
      check_property_names(doc, file, instance[i], &(*schema)["items"], ptr + "/" + std::to_string(i), out);
    }
  }
}

// valijson matches `pattern` with std::regex, whose matcher recurses once per character: a
// megabyte-long name would overflow the stack. Every pattern in our schema sits beside a
// maxLength, so strings (and propertyNames keys) longer than that are cut to maxLength + 1 in the
// copy valijson sees: still too long, still reported, never dangerous. Messages are built from the
// original document.
void shorten_for_patterns(json& instance, const json* schema) {
  schema = resolve(schema);
  if (!schema || !schema->is_object()) return;
  if (instance.is_string()) {
    if (schema->contains("pattern") && schema->contains("maxLength")) {
      std::size_t max = (*schema)["maxLength"].get<std::size_t>();
      auto& str = instance.get_ref<std::string&>();
      if (str.size() > max) str.resize(max + 1);
    }
    return;
  }
  if (instance.is_object()) {
    if (schema->contains("propertyNames")) {
      const json& pn = (*schema)["propertyNames"];
      std::size_t max = pn.value("maxLength", std::size_t{64});
      json renamed = json::object();
      for (auto& [k, v] : instance.items()) renamed[k.size() > max ? k.substr(0, max + 1) : k] = std::move(v);
      instance = std::move(renamed);
    }
    for (auto& [k, v] : instance.items()) {
      const json* sub = nullptr;
      if (schema->contains("properties") && (*schema)["properties"].contains(k)) sub = &(*schema)["properties"][k];
      else if (schema->contains("additionalProperties") && (*schema)["additionalProperties"].is_object()) sub = &(*schema)["additionalProperties"];
      if (sub) shorten_for_patterns(v, sub);
    }
    return;
  }
  if (instance.is_array()) {
    const json* items = schema->contains("items") ? &(*schema)["items"] : nullptr;
    if (!items && schema->contains("anyOf")) {
      for (const auto& b : (*schema)["anyOf"]) {
        if (b.contains("items")) items = &b["items"];
      }
    }
    if (items) {
      for (auto& v : instance) shorten_for_patterns(v, items);
    }
  }
}

}  // namespace

const nlohmann::json& pipeline_schema() { return compiled().doc; }

std::vector<Diagnostic> check_schema(const YamlDocument& doc, const std::string& file) {
  valijson::Validator validator(valijson::Validator::kStrongTypes);
  json shortened = doc.json;
  shorten_for_patterns(shortened, &compiled().doc);
  valijson::adapters::NlohmannJsonAdapter target(shortened);
  valijson::ValidationResults results;
  if (validator.validate(compiled().schema, target, &results)) return {};
  std::vector<valijson::ValidationResults::Error> errors;
  valijson::ValidationResults::Error e;
  while (results.popError(e)) errors.push_back(e);
  auto out = Translator(doc, file).run(errors);
  check_property_names(doc, file, doc.json, &compiled().doc, "", out);
  if (out.empty()) {
    // Never let a document the schema rejects pass because no message could be made for it.
    out.push_back({file, {1, 1}, ProblemKind::schema, "", "the file does not match schemas/pipeline.schema.json"});
  }
  return out;
}

}  // namespace tollgate::pipeline
