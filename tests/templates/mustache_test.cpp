#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

#include "templates/mustache.hpp"

using namespace tollgate::templates;

namespace {

nlohmann::json sample_vars() {
  return {
      {"source", {{"host", "github"}, {"repo", "acme/payments"}, {"branch", "main"}, {"sha", "0123456789abcdef0123456789abcdef01234567"},
                  {"short_sha", "0123456"}, {"pr", "42"}, {"pr_title", "Faster refunds & fewer <bugs>"},
                  {"pr_url", "https://github.com/acme/payments/pull/42"}, {"author", "alice"},
                  {"changed_files", {"services/payments/a.go", "services/payments/b.go"}}}},
      {"release", {{"version", "0123456"}}},
      {"pipeline", {{"name", "payments"}}},
      {"stage", {{"name", "qa"}, {"repo", "acme/env-qa"}, {"branch", "main"}}},
      {"run", {{"id", "17"}, {"url", "http://127.0.0.1:8080/runs/17"}}},
      {"upstream", {{"name", "dev"}, {"pr_url", "https://github.com/acme/env-dev/pull/7"}}},
      {"status", {{"summary", "Waiting for 1 approval"},
                  {"gates", {{{"name", "checks"}, {"state", "passed"}, {"detail", "3 of 3"}},
                             {{"name", "approvals"}, {"state", "waiting"}, {"detail", "0 of 1"}}}}}},
  };
}

std::string golden(const std::string& name) {
  std::ifstream in(std::filesystem::path(TOLLGATE_SOURCE_DIR) / "tests/templates/golden" / name);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("default templates render to their golden files", "[templates]") {
  for (const char* name : {"pr-title", "pr-body", "commit-message", "status-comment"}) {
    INFO(name);
    auto text = default_template(name);
    REQUIRE_FALSE(text.empty());
    auto out = render(text, sample_vars());
    REQUIRE(out.has_value());
    if (std::getenv("TOLLGATE_UPDATE_GOLDEN")) {  // regenerate, then review the diff
      std::ofstream(std::filesystem::path(TOLLGATE_SOURCE_DIR) / "tests/templates/golden" / (std::string(name) + ".txt")) << *out;
    }
    CHECK(*out == golden(std::string(name) + ".txt"));
  }
}

TEST_CASE("default templates use only documented variables", "[templates]") {
  auto vars = standard_variables({"version"});
  for (const char* name : {"pr-title", "pr-body", "commit-message"}) {
    INFO(name);
    CHECK(check(default_template(name), vars).empty());
  }
  // The status comment also gets the service's status block.
  vars.add("status.summary");
  vars.add("status.gates");
  auto errors = check(default_template("status-comment"), vars);
  // Inside {{#status.gates}} the item fields resolve against each gate; list them as unknown here
  // to prove the checker sees them, then accept exactly those.
  for (const auto& e : errors) {
    INFO(e.message);
    CHECK((e.message.find("'name'") != std::string::npos || e.message.find("'state'") != std::string::npos ||
           e.message.find("'detail'") != std::string::npos));
  }
}

TEST_CASE("rendering does not HTML-escape: output is Markdown", "[templates]") {
  auto out = render("{{source.pr_title}} / {{{source.pr_title}}}", sample_vars());
  REQUIRE(out.has_value());
  CHECK(*out == "Faster refunds & fewer <bugs> / Faster refunds & fewer <bugs>");
}

TEST_CASE("lists render with sections", "[templates]") {
  auto out = render("{{#source.changed_files}}- {{.}}\n{{/source.changed_files}}", sample_vars());
  REQUIRE(out.has_value());
  CHECK(*out == "- services/payments/a.go\n- services/payments/b.go\n");
}

TEST_CASE("template syntax errors carry the offset of the tag", "[templates]") {
  auto [text, offset, message] = GENERATE(table<const char*, std::size_t, const char*>({
      {"ab {{x", 3, "tag '{{' is never closed with '}}'"},
      {"{{#a}}x", 0, "section 'a' is never closed"},
      {"{{#a}}{{/b}}", 6, "'{{/b}}' closes section 'a', which must be closed first"},
      {"x{{/a}}", 1, "'{{/a}}' closes a section that was never opened"},
      {"{{> part}}", 0, "partials ('{{>') are not supported; inline the text"},
      {"{{}}", 0, "empty tag '{{}}'"},
      {"{{=<% %>=}}<%x", 11, "tag '<%' is never closed with '%>'"},
      {"{{=x=}}", 0, "delimiter change must look like '{{=<% %>=}}'"}}));
  INFO(text);
  auto errors = check(text, standard_variables({}));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].offset == offset);
  CHECK(errors[0].message == message);
}

TEST_CASE("unknown variables are found and named", "[templates]") {
  auto vars = standard_variables({"version", "image"});
  auto errors = check("{{release.versoin}} {{source}} {{stage.name}} {{foo.bar}} {{#source.changed_files}}{{.}}{{/source.changed_files}}", vars);
  REQUIRE(errors.size() == 3);
  CHECK(errors[0].offset == 2);
  CHECK(errors[0].message == "unknown template variable 'release.versoin'");
  CHECK(errors[0].unknown_variable == "release.versoin");
  CHECK(errors[1].message == "'source' is a group of values, not a value; use one of its fields, e.g. 'source.author'");
  CHECK(errors[1].unknown_variable.empty());
  CHECK(errors[2].message == "unknown template variable 'foo.bar'");
  CHECK(check("{{stage.name}}", release_variables()).size() == 1);
}
