#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "pipeline/yaml_path.hpp"
#include "service/edit/edit.hpp"

using namespace tollgate::edit;

namespace {

struct SetCase {
  const char* name;
  FileFormat format;
  std::string input;
  std::string path;
  std::string value;
  std::string expected;
};

// The value at `path` in the first document of `text` that has it, read by yaml-cpp / nlohmann
// (independent of the edit code's own reader).
std::optional<std::string> read_back(const std::string& text, FileFormat format, const std::string& path) {
  auto segments = tollgate::pipeline::parse_yaml_path(path);
  REQUIRE(segments.has_value());
  if (format == FileFormat::json) {
    nlohmann::json j = nlohmann::json::parse(text);
    const nlohmann::json* cur = &j;
    for (const auto& seg : *segments) {
      if (const auto* key = std::get_if<std::string>(&seg)) {
        if (!cur->is_object() || !cur->contains(*key)) return std::nullopt;
        cur = &(*cur)[*key];
      } else {
        std::size_t i = std::get<std::size_t>(seg);
        if (!cur->is_array() || i >= cur->size()) return std::nullopt;
        cur = &(*cur)[i];
      }
    }
    return cur->is_string() ? cur->get<std::string>() : cur->dump();
  }
  for (const YAML::Node& doc : YAML::LoadAll(text)) {
    YAML::Node cur = doc;
    bool ok = true;
    for (const auto& seg : *segments) {
      if (const auto* key = std::get_if<std::string>(&seg)) {
        ok = cur.IsMap() && cur[*key];
        if (ok) cur = cur[*key];
      } else {
        std::size_t i = std::get<std::size_t>(seg);
        ok = cur.IsSequence() && i < cur.size();
        if (ok) cur = cur[i];
      }
      if (!ok) break;
    }
    if (ok && cur.IsScalar()) return cur.Scalar();
  }
  return std::nullopt;
}

constexpr auto Y = FileFormat::yaml;
constexpr auto J = FileFormat::json;

std::vector<SetCase> set_cases() {
  return {
      {"plain scalar with comments around it", Y,
       "# values for payments\nimage:\n  repository: ghcr.io/acme/payments  # where\n  tag: v1.2.3 # bumped by tollgate\n  pullPolicy: IfNotPresent\n",
       "image.tag", "v1.2.4",
       "# values for payments\nimage:\n  repository: ghcr.io/acme/payments  # where\n  tag: v1.2.4 # bumped by tollgate\n  pullPolicy: IfNotPresent\n"},
      {"double-quoted stays double-quoted", Y, "image:\n  tag: \"1.2.3\"\n", "image.tag", "1.3.0",
       "image:\n  tag: \"1.3.0\"\n"},
      {"double-quoted value gets escapes", Y, "msg: \"hi\"\n", "msg", "say \"hi\"\\\n", "msg: \"say \\\"hi\\\"\\\\\\n\"\n"},
      {"single-quoted stays single-quoted", Y, "tag: 'v1' # quoted\n", "tag", "it's v2", "tag: 'it''s v2' # quoted\n"},
      {"single-quoted becomes double-quoted for a line break", Y, "tag: 'v1'\n", "tag", "a\nb", "tag: \"a\\nb\"\n"},
      {"plain that would read as a float is quoted", Y, "tag: v1\n", "tag", "1.0", "tag: \"1.0\"\n"},
      {"plain that would read as a YAML 1.1 boolean is quoted", Y, "tag: v1\n", "tag", "yes", "tag: \"yes\"\n"},
      {"plain that would read as null is quoted", Y, "tag: v1\n", "tag", "null", "tag: \"null\"\n"},
      {"plain that would start a mapping is quoted", Y, "tag: v1\n", "tag", ": x", "tag: \": x\"\n"},
      {"plain that would be an alias is quoted", Y, "tag: v1\n", "tag", "*x", "tag: \"*x\"\n"},
      {"plain that would be an anchor is quoted", Y, "tag: v1\n", "tag", "&x", "tag: \"&x\"\n"},
      {"plain that would be a tag is quoted", Y, "tag: v1\n", "tag", "!x", "tag: \"!x\"\n"},
      {"plain that would be a comment is quoted", Y, "tag: v1\n", "tag", "#x", "tag: \"#x\"\n"},
      {"plain with ' #' inside is quoted", Y, "tag: v1\n", "tag", "a #b", "tag: \"a #b\"\n"},
      {"plain that would read as base 60 is quoted", Y, "tag: v1\n", "tag", "12:30", "tag: \"12:30\"\n"},
      {"plain that would read as a date is quoted", Y, "tag: v1\n", "tag", "2024-01-31", "tag: \"2024-01-31\"\n"},
      {"plain that would read as an octal is quoted", Y, "tag: v1\n", "tag", "0755", "tag: \"0755\"\n"},
      {"an empty value is quoted", Y, "tag: v1\n", "tag", "", "tag: \"\"\n"},
      {"leading space is quoted", Y, "tag: v1\n", "tag", " v2", "tag: \" v2\"\n"},
      {"a dotted version stays plain", Y, "tag: v1\n", "tag", "1.2.3", "tag: 1.2.3\n"},
      {"a digest stays plain", Y, "tag: v1\n", "tag", "sha256:abc123", "tag: sha256:abc123\n"},
      {"an integer stays an integer", Y, "replicas: 3 # per zone\n", "replicas", "5", "replicas: 5 # per zone\n"},
      {"an integer may become a string", Y, "replicas: 3\n", "replicas", "five", "replicas: five\n"},
      {"an integer does not become a boolean", Y, "replicas: 3\n", "replicas", "true", "replicas: \"true\"\n"},
      {"a float stays a float", Y, "ratio: 0.5\n", "ratio", "0.75", "ratio: 0.75\n"},
      {"flow mapping", Y, "image: {repository: ghcr.io/acme/payments, tag: v1}  # flow\n", "image.tag", "v2",
       "image: {repository: ghcr.io/acme/payments, tag: v2}  # flow\n"},
      {"flow mapping quotes a comma", Y, "image: {tag: v1, x: 1}\n", "image.tag", "a,b", "image: {tag: \"a,b\", x: 1}\n"},
      {"flow list item", Y, "args: [--port, \"8080\", --verbose]\n", "args[1]", "9090",
       "args: [--port, \"9090\", --verbose]\n"},
      {"nested flow", Y, "x: {a: 1, b: [x, y]}\n", "x.b[1]", "z", "x: {a: 1, b: [x, z]}\n"},
      {"flow mapping over several lines", Y, "x: {\n  a: 1,\n  b: old\n}\n", "x.b", "new", "x: {\n  a: 1,\n  b: new\n}\n"},
      {"anchors and merge keys elsewhere stay", Y,
       "base: &base\n  tag: v1\n  pull: Always\nprod:\n  <<: *base\n  replicas: 2\n", "base.tag", "v2",
       "base: &base\n  tag: v2\n  pull: Always\nprod:\n  <<: *base\n  replicas: 2\n"},
      {"anchored scalar keeps its anchor", Y, "tag: &t v1\nother: *t\n", "tag", "v2", "tag: &t v2\nother: *t\n"},
      {"tagged scalar keeps its tag", Y, "tag: !!str 1.0\n", "tag", "2.0", "tag: !!str 2.0\n"},
      {"CRLF line endings", Y, "a: 1\r\nimage:\r\n  tag: v1\r\n  pull: Always\r\n", "image.tag", "v2",
       "a: 1\r\nimage:\r\n  tag: v2\r\n  pull: Always\r\n"},
      {"CRLF with a comment after the value", Y, "tag: \"v1\" # c\r\nx: 1\r\n", "tag", "v2", "tag: \"v2\" # c\r\nx: 1\r\n"},
      {"unicode before the target on its line", Y, "labels: {équipe: \"café ☕\", tag: v1}\n", "labels.tag", "v2",
       "labels: {équipe: \"café ☕\", tag: v2}\n"},
      {"unicode key and value", Y, "名前: 値 # コメント\n", "名前", "新しい値", "名前: 新しい値 # コメント\n"},
      {"byte order mark", Y, "\xEF\xBB\xBFtag: v1\n", "tag", "v2", "\xEF\xBB\xBFtag: v2\n"},
      {"second document of several", Y,
       "kind: Service\nspec:\n  port: 80\n---\nkind: Deployment # app\nspec:\n  image: app:1\n...\n", "spec.image", "app:2",
       "kind: Service\nspec:\n  port: 80\n---\nkind: Deployment # app\nspec:\n  image: app:2\n...\n"},
      {"every document that has the path", Y, "---\na: 1\n--- # two\na: 1\n", "a", "2", "---\na: 2\n--- # two\na: 2\n"},
      {"key with dots, quoted in the path", Y,
       "metadata:\n  annotations:\n    example.com/rev: \"1\"\n", "metadata.annotations[\"example.com/rev\"]", "2",
       "metadata:\n  annotations:\n    example.com/rev: \"2\"\n"},
      {"quoted key", Y, "\"a.b\": x\n'c': y\n", "c", "z", "\"a.b\": x\n'c': z\n"},
      {"list of mappings", Y,
       "spec:\n  containers:\n  - name: app\n    image: ghcr.io/acme/app:1.0 # pinned\n  - name: sidecar\n    image: envoy:1\n",
       "spec.containers[0].image", "ghcr.io/acme/app:1.1",
       "spec:\n  containers:\n  - name: app\n    image: ghcr.io/acme/app:1.1 # pinned\n  - name: sidecar\n    image: envoy:1\n"},
      {"literal block scalar", Y, "script: |\n  echo one\n  echo two\nnext: 1\n", "script", "echo three\n",
       "script: |\n  echo three\nnext: 1\n"},
      {"literal block scalar without a final line break", Y, "script: |\n  echo one\nnext: 1\n", "script", "a\nb",
       "script: |-\n  a\n  b\nnext: 1\n"},
      {"literal block scalar keeps its header comment and CRLF", Y, "s: |  # keep\r\n    old\r\nn: 1\r\n", "s", "new\n",
       "s: |  # keep\r\n    new\r\nn: 1\r\n"},
      {"folded block scalar with one line", Y, "d: >\n  some long\n  text\n\nn: 1\n", "d", "short", "d: >-\n  short\n\nn: 1\n"},
      {"folded block scalar with several lines becomes literal", Y, "d: >-\n  x\n", "d", "a\nb", "d: |-\n  a\n  b\n"},
      {"block scalar with an indentation indicator is quoted", Y, "d: |2\n   x\nn: 1\n", "d", "y", "d: \"y\"\nn: 1\n"},
      {"block scalar gets a value with a leading space quoted", Y, "d: |\n  x\n", "d", " y", "d: \" y\"\n"},
      {"plain scalar over several lines", Y, "desc: this is\n  a long\n  text\nx: 1\n", "desc", "short",
       "desc: short\nx: 1\n"},
      {"double-quoted scalar over several lines", Y, "desc: \"this is\n  long\"\nx: 1\n", "desc", "short",
       "desc: \"short\"\nx: 1\n"},
      {"empty value", Y, "tag:\nx: 1\n", "tag", "v1", "tag: v1\nx: 1\n"},
      {"empty value before a comment", Y, "tag: # set me\nx: 1\n", "tag", "v1", "tag: v1 # set me\nx: 1\n"},
      {"tilde null", Y, "tag: ~\n", "tag", "v1", "tag: v1\n"},
      {"null literal", Y, "tag: null # none yet\n", "tag", "v1", "tag: v1 # none yet\n"},
      {"null key next to an empty value", Y, "a:\nnull: 3\n", "a", "v", "a: v\nnull: 3\n"},
      {"empty list item", Y, "l:\n-\n- b\n", "l[0]", "a", "l:\n- a\n- b\n"},
      {"no final line break", Y, "a: 1\nb: v1", "b", "v2", "a: 1\nb: v2"},
      {"indented list under its key", Y, "l:\n  - a\n  - b # two\n", "l[1]", "c", "l:\n  - a\n  - c # two\n"},
      {"adds a missing last key at the mapping's indentation", Y, "a:\n  b:\n    c: 1 # deep\n  d: 2\ne: 3\n", "a.x", "v",
       "a:\n  b:\n    c: 1 # deep\n  d: 2\n  x: v\ne: 3\n"},
      {"adds a missing key after a nested mapping", Y, "a:\n  b:\n    c: 1\ne: 3\n", "a.b.x", "1.0",
       "a:\n  b:\n    c: 1\n    x: \"1.0\"\ne: 3\n"},
      {"adds a missing key with CRLF", Y, "a:\r\n  b: 1\r\n", "a.c", "2", "a:\r\n  b: 1\r\n  c: \"2\"\r\n"},
      {"adds a missing key at the end of a file without a final line break", Y, "a: 1", "b", "x", "a: 1\nb: x"},
      {"adds a missing key after a block scalar (quoting a YAML 1.1 boolean)", Y, "a:\n  s: |\n    x\n\n  # note\nb: 1\n", "a.t", "y",
       "a:\n  s: |\n    x\n  t: \"y\"\n\n  # note\nb: 1\n"},
      {"adds a missing key to a flow mapping", Y, "a: {b: 1}\n", "a.c", "x", "a: {b: 1, c: x}\n"},
      {"adds a missing key to an empty flow mapping", Y, "a: {}\n", "a.c", "x", "a: {c: x}\n"},
      {"adds a key in a list item", Y, "l:\n- name: a\n  x: 1\n", "l[0].tag", "v", "l:\n- name: a\n  x: 1\n  tag: v\n"},
      {"adds a key that needs quoting", Y, "a:\n  b: 1\n", "a[\"x: y\"]", "v", "a:\n  b: 1\n  \"x: y\": v\n"},

      {"JSON string", J, "{\n  \"image\": {\n    \"tag\": \"v1\"\n  },\n  \"replicas\": 3\n}\n", "image.tag", "v2",
       "{\n  \"image\": {\n    \"tag\": \"v2\"\n  },\n  \"replicas\": 3\n}\n"},
      {"JSON number stays a number", J, "{\"replicas\": 3}", "replicas", "4", "{\"replicas\": 4}"},
      {"JSON number becomes a string for text", J, "{\"replicas\": 3}", "replicas", "four", "{\"replicas\": \"four\"}"},
      {"JSON boolean", J, "{\"on\": true}", "on", "false", "{\"on\": false}"},
      {"JSON null becomes a string", J, "{\"tag\": null}", "tag", "v1", "{\"tag\": \"v1\"}"},
      {"compact JSON list", J, "{\"a\":{\"b\":[1,\"x\"]}}", "a.b[1]", "y", "{\"a\":{\"b\":[1,\"y\"]}}"},
      {"JSON escapes", J, "{\"a\": \"\\u00e9\\\"x\", \"b\": 1}", "a", "say \"hi\"\n\t\x01", "{\"a\": \"say \\\"hi\\\"\\n\\t\\u0001\", \"b\": 1}"},
      {"JSON unicode before the target", J, "{\"名前\": \"値\", \"tag\": \"v1\"}", "tag", "v2", "{\"名前\": \"値\", \"tag\": \"v2\"}"},
      {"JSON with CRLF", J, "{\r\n  \"a\": \"x\"\r\n}\r\n", "a", "y", "{\r\n  \"a\": \"y\"\r\n}\r\n"},
      {"JSON adds a key on its own line", J, "{\n  \"a\": 1,\n  \"b\": {\n    \"c\": 2\n  }\n}\n", "b.d", "x",
       "{\n  \"a\": 1,\n  \"b\": {\n    \"c\": 2,\n    \"d\": \"x\"\n  }\n}\n"},
      {"JSON adds a key inline", J, "{\"a\": 1}", "b", "x", "{\"a\": 1, \"b\": \"x\"}"},
      {"JSON adds a key to an empty object", J, "{\"a\": {}}", "a.b", "1", "{\"a\": {\"b\": \"1\"}}"},
      {"JSON key with a dot", J, "{\"a.b\": \"1\"}", "[\"a.b\"]", "2", "{\"a.b\": \"2\"}"},
  };
}

}  // namespace

TEST_CASE("set changes exactly the bytes of the target scalar", "[edit]") {
  auto c = GENERATE(from_range(set_cases()));
  INFO(c.name);
  auto r = set_value(c.input, c.format, c.path, c.value);
  if (!r) FAIL(r.error().message);
  CHECK(r->text == c.expected);
  CHECK(r->changed);
  // The result reads back, with other parsers, as the new value.
  auto back = read_back(r->text, c.format, c.path);
  REQUIRE(back.has_value());
  CHECK(*back == c.value);
}

TEST_CASE("set that changes nothing returns the same bytes", "[edit]") {
  auto [input, path, value] = GENERATE(table<std::string, std::string, std::string>({
      {"tag: v1 # same\n", "tag", "v1"},
      {"tag: \"1.0\"\n", "tag", "1.0"},
      {"tag: '1.0'\n", "tag", "1.0"},
      {"replicas: 3\n", "replicas", "3"},
      {"s: |\n  x\n", "s", "x\n"},
      {"a: {b: [x, y]}\r\n", "a.b[1]", "y"},
  }));
  auto r = set_value(input, FileFormat::yaml, path, value);
  REQUIRE(r.has_value());
  CHECK_FALSE(r->changed);
  CHECK(r->text == input);

  auto j = set_value("{\"a\": \"x\", \"n\": 1.50}", FileFormat::json, "n", "1.50");
  REQUIRE(j.has_value());
  CHECK_FALSE(j->changed);
}

TEST_CASE("set explains paths that lead nowhere", "[edit]") {
  const std::string values =
      "image:\n"                      // 1
      "  repository: ghcr.io/acme\n"  // 2
      "  tag: v1\n"                   // 3
      "containers:\n"                 // 4
      "- name: app\n"                 // 5
      "  ports: [80, 443]\n"          // 6
      "base: &base\n"                 // 7
      "  x: 1\n"                      // 8
      "copy: *base\n"                 // 9
      "empty:\n"                      // 10
      "dup: 1\n"                      // 11
      "dup: 2\n"                      // 12
      "count: !!int 3\n";             // 13
  auto [path, kind, line, column, message] = GENERATE(table<std::string, EditErrorKind, int, int, std::string>({
      {"image..tag", EditErrorKind::invalid_path, 0, 0,
       "invalid path 'image..tag': empty key before '.' (at character 7)"},
      {"containers[x]", EditErrorKind::invalid_path, 0, 0,
       "invalid path 'containers[x]': list index 'x' must be a number; quote keys as [\"key\"] (at character 12)"},
      {"imgae.tag", EditErrorKind::not_found, 1, 1,
       "path 'imgae.tag': key 'imgae' not found in the top-level mapping (line 1, column 1) (did you mean 'image'?)"
       "; tollgate adds only the last key of a path, so add 'imgae:' to the file or fix the path"},
      {"image.tag.major", EditErrorKind::not_found, 3, 8,
       "path 'image.tag.major': 'image.tag' (line 3, column 8) is the value 'v1', not a mapping, so it has no key "
       "'major'; end the path at 'image.tag' or add the mapping to the file first"},
      {"containers.name", EditErrorKind::not_found, 4, 1,
       "path 'containers.name': 'containers' (line 4, column 1) is a list, not a mapping, so it has no key 'name'; "
       "use an index, such as 'containers[0].name'"},
      {"image[0]", EditErrorKind::not_found, 1, 1,
       "path 'image[0]': 'image' (line 1, column 1) is a mapping, not a list, so it has no index 0; use a key, such "
       "as 'image.repository'"},
      {"containers[1].name", EditErrorKind::not_found, 5, 1,
       "path 'containers[1].name': index 1 is past the end of the list 'containers' (line 5, column 1), which has 1 "
       "item; tollgate does not add list items, so use an index from 0 to 0"},
      {"containers[0].ports[2]", EditErrorKind::not_found, 6, 10,
       "path 'containers[0].ports[2]': index 2 is past the end of the list 'containers[0].ports' (line 6, column 10), "
       "which has 2 items; tollgate does not add list items, so use an index from 0 to 1"},
      {"copy.x", EditErrorKind::not_editable, 9, 7,
       "path 'copy.x': 'copy' (line 9, column 7) is an alias of '&base' (line 7, column 7); tollgate does not edit "
       "through aliases: set 'base.x' to change the anchored value everywhere it is used, or replace the alias with "
       "a copy of the value"},
      {"copy", EditErrorKind::not_editable, 9, 7,
       "path 'copy': 'copy' (line 9, column 7) is an alias of '&base' (line 7, column 7); tollgate does not edit "
       "through aliases: set 'base' to change the anchored value everywhere it is used, or replace the alias with a "
       "copy of the value"},
      {"image", EditErrorKind::not_editable, 1, 1,
       "path 'image': 'image' (line 1, column 1) is a mapping, not a single value; point the path at one of its "
       "keys, such as 'image.repository'"},
      {"containers", EditErrorKind::not_editable, 4, 1,
       "path 'containers': 'containers' (line 4, column 1) is a list, not a single value; point the path at an "
       "item, such as 'containers[0]'"},
      {"empty.x", EditErrorKind::not_found, 10, 1,
       "path 'empty.x': 'empty' (line 10, column 1) is empty, not a mapping, so it has no key 'x'; end the path at "
       "'empty' or add the mapping to the file first"},
      {"dup", EditErrorKind::not_editable, 12, 1,
       "path 'dup': key 'dup' appears more than once in the top-level mapping (lines 11 and 12); remove the "
       "duplicates"},
      {"count", EditErrorKind::not_editable, 13, 8,
       "path 'count': the value at line 13, column 8 is tagged '!!int', and 'many' is not of that type; remove the "
       "tag"},
  }));
  INFO(path);
  auto r = set_value(values, FileFormat::yaml, path, "many");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().message == message);
  CHECK(r.error().kind == kind);
  CHECK(r.error().line == line);
  CHECK(r.error().column == column);
}

TEST_CASE("set explains JSON paths that lead nowhere", "[edit]") {
  const std::string json = "{\"a\": [1, 2], \"b\": {\"c\": \"x\"}, \"d\": 1, \"d\": 2}";
  auto [path, message] = GENERATE(table<std::string, std::string>({
      {"a[5]", "path 'a[5]': index 5 is past the end of the list 'a' (line 1, column 7), which has 2 items; tollgate "
               "does not add list items, so use an index from 0 to 1"},
      {"b.c.x", "path 'b.c.x': 'b.c' (line 1, column 26) is the value 'x', not a mapping, so it has no key 'x'; end "
                "the path at 'b.c' or add the mapping to the file first"},
      {"b.missing.f", "path 'b.missing.f': key 'missing' not found in the mapping 'b' (line 1, column 20); tollgate "
                      "adds only the last key of a path, so add 'missing:' to the file or fix the path"},
      {"d", "path 'd': key 'd' appears more than once in the top-level mapping (line 1, column 32 and line 1, column "
            "40); remove the duplicates"},
  }));
  INFO(path);
  auto r = set_value(json, FileFormat::json, path, "v");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().message == message);
}

TEST_CASE("set refuses to add a key unless asked, and only the last one", "[edit]") {
  auto r = set_value("image:\n  tag: v1\n", FileFormat::yaml, "image.digest", "sha256:1",
                     SetOptions{.create_missing_key = false});
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().message ==
        "path 'image.digest': key 'digest' not found in the mapping 'image' (line 2, column 3); add 'digest:' to the "
        "file or fix the path");

  auto two = set_value("---\na: {}\n---\na: {}\n", FileFormat::yaml, "a.b", "x");
  REQUIRE_FALSE(two.has_value());
  CHECK(two.error().message ==
        "path 'a.b': 2 documents could take the missing key 'b' (mappings at lines 2, 4); add it by hand to the one "
        "meant");
}

TEST_CASE("set reports files that do not parse and values that are not text", "[edit]") {
  auto y = set_value("a: [1, 2\nb: 3\n", FileFormat::yaml, "b", "4");
  REQUIRE_FALSE(y.has_value());
  CHECK(y.error().kind == EditErrorKind::invalid_file);
  CHECK(y.error().message.rfind("invalid YAML (", 0) == 0);

  auto j = set_value("{\"a\": 1,}", FileFormat::json, "a", "2");
  REQUIRE_FALSE(j.has_value());
  CHECK(j.error().kind == EditErrorKind::invalid_file);
  CHECK(j.error().line == 1);
  CHECK(j.error().message.rfind("invalid JSON (", 0) == 0);

  // A number no double holds is refused with its position, not thrown (found by fuzz_edit).
  auto huge = set_value("{\"a\": 1,\n \"b\": 1e999}", FileFormat::json, "a", "2");
  REQUIRE_FALSE(huge.has_value());
  CHECK(huge.error().kind == EditErrorKind::invalid_file);
  CHECK(huge.error().message == "invalid JSON (number overflow parsing '1e999') at line 2, column 7");
  auto fuzzed = set_value("999999999909E0000000000001849535712, ]}}\n", FileFormat::json, "a.b", "x");
  REQUIRE_FALSE(fuzzed.has_value());
  CHECK(fuzzed.error().kind == EditErrorKind::invalid_file);

  auto u = set_value("a: 1\n", FileFormat::yaml, "a", "\xC3\x28");
  REQUIRE_FALSE(u.has_value());
  CHECK(u.error().message == "path 'a': the new value is not valid UTF-8 (byte 0)");

  auto scalar_doc = set_value("just text\n", FileFormat::yaml, "a", "x");
  REQUIRE_FALSE(scalar_doc.has_value());
  CHECK(scalar_doc.error().message ==
        "path 'a': the document root (line 1, column 1) is the value 'just text', not a mapping, so it has no key 'a'; "
        "the file must hold a mapping");
}

TEST_CASE("format follows the file name", "[edit]") {
  CHECK(format_for("apps/payments/values.yaml") == FileFormat::yaml);
  CHECK(format_for("apps/payments/config.JSON") == FileFormat::json);
  CHECK(format_for("VERSION") == FileFormat::yaml);
}
