#include <catch2/catch.hpp>

#include "pipeline/yaml_path.hpp"

using namespace tollgate::pipeline;

TEST_CASE("set paths parse keys, indexes and quoted keys", "[yaml_path]") {
  auto p = parse_yaml_path("spec.containers[0].image");
  REQUIRE(p.has_value());
  REQUIRE(p->size() == 4);
  CHECK(std::get<std::string>((*p)[0]) == "spec");
  CHECK(std::get<std::string>((*p)[1]) == "containers");
  CHECK(std::get<std::size_t>((*p)[2]) == 0);
  CHECK(std::get<std::string>((*p)[3]) == "image");

  auto q = parse_yaml_path(R"(metadata.annotations["example.com/rev"])");
  REQUIRE(q.has_value());
  REQUIRE(q->size() == 3);
  CHECK(std::get<std::string>((*q)[2]) == "example.com/rev");

  auto r = parse_yaml_path("items[2][3]");
  REQUIRE(r.has_value());
  CHECK(r->size() == 3);
}

TEST_CASE("bad set paths point at the problem", "[yaml_path]") {
  auto [path, offset, message] = GENERATE(table<const char*, std::size_t, const char*>({
      {"a..b", 2, "empty key before '.'"},
      {".a", 0, "empty key before '.'"},
      {"a.", 1, "path ends with '.'"},
      {"a[x]", 2, "list index 'x' must be a number; quote keys as [\"key\"]"},
      {"a[1", 1, "'[' is never closed"},
      {"a[0]b", 4, "expected '.' or '[' after ']'"},
      {"a[\"k]", 1, "quoted key must look like [\"key\"]"},
      {"", 0, "path is empty"}}));
  INFO(path);
  auto p = parse_yaml_path(path);
  REQUIRE_FALSE(p.has_value());
  CHECK(p.error().offset == offset);
  CHECK(p.error().message == message);
}
