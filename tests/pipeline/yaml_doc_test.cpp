#include <catch2/catch.hpp>

#include "pipeline/utf8.hpp"
#include "pipeline/yaml_doc.hpp"

using namespace tollgate::pipeline;

namespace Catch {
template <>
struct StringMaker<Position> {
  static std::string convert(const Position& p) { return std::to_string(p.line) + ":" + std::to_string(p.column); }
};
}  // namespace Catch

TEST_CASE("plain scalars follow the YAML 1.2 core schema", "[yaml]") {
  auto doc = parse_yaml(
      "a: 1\nb: -7\nc: 1.5\nd: true\ne: ~\nf: on\ng: \"1\"\nh: 0x1F\ni: yes\nj: 09:00\nk: 1e3\nl: 'true'\nm: !!str 5\n",
      "t.yaml");
  REQUIRE(doc.has_value());
  const auto& j = doc->json;
  CHECK(j["a"] == 1);
  CHECK(j["b"] == -7);
  CHECK(j["c"] == 1.5);
  CHECK(j["d"] == true);
  CHECK(j["e"].is_null());
  CHECK(j["f"] == "on");  // YAML 1.1 read it as true; `on:` keys must stay strings
  CHECK(j["g"] == "1");
  CHECK(j["h"] == 31);
  CHECK(j["i"] == "yes");
  CHECK(j["j"] == "09:00");
  CHECK(j["k"] == 1000.0);
  CHECK(j["l"] == "true");
  CHECK(j["m"] == "5");
}

TEST_CASE("every node keeps its line and column", "[yaml]") {
  auto doc = parse_yaml("version: 1\npipelines:\n  - name: x\n    stages:\n      - {name: dev, repo: a/b}\n", "t.yaml");
  REQUIRE(doc.has_value());
  CHECK(doc->map.value("/version") == Position{1, 10});
  CHECK(doc->map.key("/version") == Position{1, 1});
  CHECK(doc->map.value("/pipelines/0/name") == Position{3, 11});
  CHECK(doc->map.key("/pipelines/0/stages") == Position{4, 5});
  CHECK(doc->map.value("/pipelines/0/stages/0/repo") == Position{5, 27});
  // Unknown pointers fall back to the nearest ancestor.
  CHECK(doc->map.value("/pipelines/0/stages/0/gates/soak") == Position{5, 9});
}

TEST_CASE("unreadable YAML is one located problem", "[yaml]") {
  auto [text, line, column, message] = GENERATE(table<const char*, int, int, const char*>({
      {"a: [1, 2\n", 2, 1, "invalid YAML: a '[' list is never closed; add the ']' (or check the quotes inside it)"},
      {"a: \"x\nb: 2\n", 1, 4, "quoted string is never closed; add the closing \""},
      {"a: 'it''s\n", 1, 4, "quoted string is never closed; add the closing '"},
      {"a:\n\tb: 1\n", 2, 1, "invalid YAML: this line is indented with a tab; YAML indentation must use spaces"},
      {"a: 1\na: 2\n", 2, 1, "duplicate key 'a' (first defined at line 1)"},
      {"", 1, 1, "file is empty; a pipeline file starts with 'version: 1'"},
      {"a: 1\n---\nb: 2\n", 2, 1, "file holds more than one YAML document; a pipeline file is one document (remove this '---' and what follows, or merge the documents)"},
      {"? [a]\n: 1\n", 1, 3, "a mapping key must be a plain string, not a list"},
      {"a: !!int x\n", 1, 4, "value 'x' does not match its tag 'tag:yaml.org,2002:int'"},
      {"a: !custom x\n", 1, 4, "unsupported tag '!custom'; remove it"}}));
  INFO(text);
  auto doc = parse_yaml(text, "t.yaml");
  REQUIRE_FALSE(doc.has_value());
  CHECK(doc.error().kind == ProblemKind::yaml);
  CHECK(doc.error().message == message);
  CHECK(doc.error().pos == Position{line, column});
}

TEST_CASE("a trailing document separator is harmless", "[yaml]") {
  auto doc = parse_yaml("a: 1\n---\n", "t.yaml");
  REQUIRE(doc.has_value());
  CHECK(doc->json["a"] == 1);
  auto closed = parse_yaml("a: \"it's \\\"fine\\\"\"\nb: 'it''s'\n", "t.yaml");
  REQUIRE(closed.has_value());
  CHECK(closed->json["a"] == "it's \"fine\"");
  CHECK(closed->json["b"] == "it's");
}

TEST_CASE("input that sends yaml-cpp into endless empty documents is refused", "[yaml]") {
  // Found by the fuzzer: yaml-cpp 0.7 restarts empty documents at a stray ',' forever.
  auto doc = parse_yaml("# x\n        edits:\n      , bels: [promotion]\n        gates: { checks: all }\n", "t.yaml");
  REQUIRE_FALSE(doc.has_value());
  CHECK(doc.error().pos == Position{3, 7});
  CHECK(doc.error().message ==
        "invalid YAML: unexpected content here; check this line's indentation and punctuation against the lines above");
}

TEST_CASE("hostile YAML is refused, not expanded or recursed into", "[yaml]") {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 8; ++i) {
    bomb += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) bomb += std::string(k ? ", " : "") + "*a" + (i > 1 ? std::to_string(i - 1) : "");
    bomb += "]\n";
  }
  auto doc = parse_yaml(bomb, "t.yaml");
  REQUIRE_FALSE(doc.has_value());
  CHECK(doc.error().message.find("expands to more than") != std::string::npos);

  std::string deep = "a: " + std::string(100, '[') + std::string(100, ']') + "\n";
  auto d2 = parse_yaml(deep, "t.yaml");
  REQUIRE_FALSE(d2.has_value());
  CHECK(d2.error().message == "nested more than 64 levels deep; a pipeline file needs far fewer");

  std::string deeper = std::string(10000, '[') + std::string(10000, ']');
  CHECK_FALSE(parse_yaml(deeper, "t.yaml").has_value());

  YamlLimits small{.max_bytes = 10};
  auto big = parse_yaml("version: 1\n", "t.yaml", small);
  REQUIRE_FALSE(big.has_value());
  CHECK(big.error().message == "file is 11 bytes; a pipeline file may be at most 10 bytes");
}

TEST_CASE("pipeline files must be UTF-8, and so is everything read from them", "[yaml]") {
  // Found by the fuzzer: valijson's string length reads past invalid UTF-8.
  auto bad = parse_yaml("version: 1\nname: ma\xFA\xFAin\n", "t.yaml");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().pos == Position{2, 9});
  CHECK(bad.error().message == "file is not valid UTF-8 (byte 0xFA); save it as UTF-8");
  auto escape = parse_yaml("a: \"x\\uD800\"\n", "t.yaml");
  REQUIRE_FALSE(escape.has_value());
  CHECK(escape.error().message == "invalid YAML: a '\\u' or '\\U' escape names code point 55296, which is not a character");
  auto ok = parse_yaml("a: \"caf\xC3\xA9 \\u00e9 \xF0\x9F\x9A\x80\"\n", "t.yaml");
  REQUIRE(ok.has_value());
  CHECK(ok->json["a"] == "caf\xC3\xA9 \xC3\xA9 \xF0\x9F\x9A\x80");
  CHECK(utf8_error("\xC0\xAF").has_value());       // overlong '/'
  CHECK(utf8_error("\xED\xA0\x80").has_value());   // surrogate
  CHECK(utf8_error("\xF4\x90\x80\x80").has_value());  // above U+10FFFF
  CHECK(utf8_prefix("ab\xC3\xA9", 3) == "ab");
}
