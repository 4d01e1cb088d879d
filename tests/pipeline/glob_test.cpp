#include <catch2/catch.hpp>

#include "pipeline/glob.hpp"

using tollgate::pipeline::Glob;

TEST_CASE("globs match branches and paths like CI systems do", "[glob]") {
  auto [pattern, text, expected] = GENERATE(table<const char*, const char*, bool>({
      {"main", "main", true},
      {"main", "main2", false},
      {"release/*", "release/1.0", true},
      {"release/*", "release/1.0/hotfix", false},
      {"release/**", "release/1.0/hotfix", true},
      {"services/payments/**", "services/payments/src/a.go", true},
      {"services/payments/**", "services/pay/a.go", false},
      {"**/*.yaml", "a.yaml", true},
      {"**/*.yaml", "deep/er/a.yaml", true},
      {"**/*.yaml", "a.yml", false},
      {"v?.?", "v1.2", true},
      {"v?.?", "v1/2", false},
      {"[a-c]x", "bx", true},
      {"[!a-c]x", "bx", false},
      {"[!a-c]x", "dx", true},
      {"{main,develop}", "develop", true},
      {"{main,develop}", "feature", false},
      {"file\\*", "file*", true},
      {"file\\*", "filex", false},
      {"a.b", "axb", false},
      {"(x)", "(x)", true},
  }));
  INFO(pattern << " vs " << text);
  auto g = Glob::compile(pattern);
  REQUIRE(g.has_value());
  CHECK(g->matches(text) == expected);
}

TEST_CASE("bad globs are reported with the offending offset", "[glob]") {
  auto [pattern, offset, message] = GENERATE(table<const char*, std::size_t, const char*>({
      {"release/[0-9", 8, "'[' is never closed; escape it as '\\[' to match it literally"},
      {"{a,b", 0, "'{' is never closed; escape it as '\\{' to match it literally"},
      {"a}", 1, "'}' has no matching '{'"},
      {"abc\\", 3, "pattern ends with an escape '\\'"},
      {"[z-a]", 1, "range 'z-a' is out of order"},
      {"", 0, "empty pattern"}}));
  INFO(pattern);
  auto g = Glob::compile(pattern);
  REQUIRE_FALSE(g.has_value());
  CHECK(g.error().offset == offset);
  CHECK(g.error().message == message);
}
