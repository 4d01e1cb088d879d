#include <functional>

#include <catch2/catch.hpp>

#include "pipeline/schema_check.hpp"
#include "pipeline/validate.hpp"

using namespace tollgate::pipeline;

namespace {
const char* kPipeline = R"y(version: 1
pipelines:
  - name: payments
    on:
      merged: { branches: [main], paths: ["services/payments/**"] }
    release:
      version: "{{source.short_sha}}"
      image: "ghcr.io/acme/payments:{{source.short_sha}}"
    stages:
      - name: dev
        repo: acme/env-dev
        edits:
          - file: apps/payments/values.yaml
            set: { image.tag: "{{release.version}}", replicas: 2 }
      - name: qa
        repo: acme/env-qa
        branch: release
        edits:
          - file: apps/payments/kustomization.yaml
            image: { name: ghcr.io/acme/payments, tag: "{{release.version}}" }
        gates:
          soak: 30m
          approvals: { count: 1, from: ["@acme/qa", alice] }
      - name: prod-eu
        after: [qa]
        repo: acme/env-prod-eu
        merge: manual
        edits:
          - copy: { from: deploy/payments/, to: apps/payments/ }
        gates:
          checks: [ci/build, "security scan"]
          window: { days: [mon, tue], hours: "22:00-06:00", timezone: Europe/Berlin }
        verify:
          timeout: 20m
          steps:
            - wait: 2m
            - http: { url: "https://payments.example.com/healthz", for: 1m }
            - prometheus: { url: "http://prom:9090", query: "sum(rate(errors[5m]))", below: 0.01, for: 5m }
        on_failure: rollback
      - name: prod-us
        after: [qa]
        repo: acme/env-prod-us
        edits:
          - file: VERSION
            replace: { pattern: "v([0-9.]+)", with: "v{{release.version}}" }
)y";
}

TEST_CASE("a valid pipeline file loads into the typed model", "[validate]") {
  auto result = load_pipeline(kPipeline, "p.yaml");
  for (const auto& d : result.problems) INFO(format_text(d));
  REQUIRE(result.ok());
  REQUIRE(result.file.has_value());
  const Pipeline& p = result.file->pipelines.at(0);
  CHECK(p.name == "payments");
  CHECK(p.concurrency == Concurrency::supersede);
  REQUIRE(p.on.merged.has_value());
  CHECK(p.on.merged->paths == std::vector<std::string>{"services/payments/**"});
  CHECK_FALSE(p.on.push.has_value());
  REQUIRE(p.stages.size() == 4);

  SECTION("after defaults to the stage above; explicit lists fan out") {
    CHECK(p.stages[0].after.empty());
    CHECK(p.stages[1].after == std::vector<std::string>{"dev"});
    CHECK(p.stages[2].after == std::vector<std::string>{"qa"});
    CHECK(p.stages[3].after == std::vector<std::string>{"qa"});
  }
  SECTION("edits keep their kind and values") {
    const auto& set = std::get<SetEdit>(p.stages[0].edits[0].action);
    REQUIRE(set.values.size() == 2);
    CHECK(set.values[0] == std::pair<std::string, std::string>{"image.tag", "{{release.version}}"});
    CHECK(set.values[1] == std::pair<std::string, std::string>{"replicas", "2"});
    CHECK(std::get<ImageEdit>(p.stages[1].edits[0].action).tag == "{{release.version}}");
    CHECK(std::get<CopyEdit>(p.stages[2].edits[0].action).to == "apps/payments/");
    CHECK(p.stages[2].edits[0].file.empty());
    CHECK(std::get<ReplaceEdit>(p.stages[3].edits[0].action).pattern == "v([0-9.]+)");
  }
  SECTION("gates, windows and verification are typed") {
    CHECK(p.stages[1].gates.soak == Seconds(1800));
    CHECK(p.stages[1].gates.approvals->from == std::vector<std::string>{"@acme/qa", "alice"});
    CHECK_FALSE(p.stages[1].gates.approvals->allow_author);
    CHECK(p.stages[1].branch == "release");
    const auto& w = *p.stages[2].gates.window;
    CHECK(w.days == std::vector<int>{0, 1});
    CHECK(w.start_minute == 22 * 60);
    CHECK(w.end_minute == 6 * 60);  // spans midnight
    CHECK(p.stages[2].gates.checks->mode == CheckSelection::Mode::named);
    CHECK(p.stages[2].merge == MergeMode::manual);
    REQUIRE(p.stages[2].verify.has_value());
    CHECK(p.stages[2].verify->timeout == Seconds(1200));
    CHECK(p.stages[2].verify->steps.size() == 3);
    CHECK(std::get<PrometheusStep>(p.stages[2].verify->steps[2].action).below == 0.01);
    CHECK(p.stages[2].on_failure == OnFailure::rollback);
    CHECK(p.stages[0].on_failure == OnFailure::stop);
  }
  SECTION("release values keep file order") {
    REQUIRE(p.release.size() == 2);
    CHECK(p.release[0].first == "version");
    CHECK(p.release[1].first == "image");
  }
}

TEST_CASE("release.version exists even when the pipeline does not define it", "[validate]") {
  auto result = load_pipeline(R"(version: 1
pipelines:
  - name: x
    on: { push: { branches: [main] } }
    stages:
      - name: dev
        repo: a/b
        edits: [{ file: v.yaml, set: { tag: "{{release.version}}" } }]
)",
                              "p.yaml");
  REQUIRE(result.ok());
  REQUIRE(result.file->pipelines[0].release.size() == 1);
  CHECK(result.file->pipelines[0].release[0] == std::pair<std::string, std::string>{"version", "{{source.short_sha}}"});
}

TEST_CASE("a file with several mistakes reports every one, in order", "[validate]") {
  auto result = load_pipeline(R"(version: 1
pipelines:
  - name: x
    on: { push: { branches: [main] } }
    stages:
      - name: dev
        repo: a/b
        edits: [{ file: v.yaml, set: { tag: "{{release.verison}}" } }]
        gates: { soak: 10 }
      - name: qa
        after: [deb]
        repo: a
        edits: [{ file: v.yaml, set: { tag: x } }]
)",
                              "p.yaml");
  REQUIRE(result.problems.size() == 4);
  CHECK(format_text(result.problems[0]) ==
        "p.yaml:8:48: error: template: unknown template variable 'release.verison'; did you mean 'release.version'?");
  CHECK(format_text(result.problems[1]) ==
        "p.yaml:9:24: error: 'soak' must be a duration such as '90s', '30m', '1h30m' or '2d', not a number");
  CHECK(format_text(result.problems[2]) == "p.yaml:11:17: error: stage 'qa' runs after unknown stage 'deb'; did you mean 'dev'?");
  CHECK(format_text(result.problems[3]) ==
        "p.yaml:12:15: error: 'repo' is 'a'; expected a repository as 'owner/name' (GitLab subgroups as 'group/sub/name')");
  CHECK(result.problems[1].kind == ProblemKind::schema);
  CHECK(result.problems[2].kind == ProblemKind::semantic);
  CHECK(result.problems[1].path == "/pipelines/0/stages/0/gates/soak");
}

TEST_CASE("template files named by pr.body are checked in their own file", "[validate]") {
  ValidateOptions o;
  o.read_file = [](const std::string& path) -> tl::expected<std::string, std::string> {
    if (path == "templates/body.md.mustache") return std::string("Hello\n{{#source.pr}}PR {{source.pr}} by {{source.autor}}{{/source.pr}}\n");
    return tl::unexpected(std::string("No such file or directory"));
  };
  const std::string base = R"(version: 1
pipelines:
  - name: x
    on: { push: { branches: [main] } }
    stages:
      - name: dev
        repo: a/b
        edits: [{ file: v.yaml, set: { tag: x } }]
        pr: { body: BODY }
)";
  auto with_body = [&](const std::string& body) {
    std::string text = base;
    text.replace(text.find("BODY"), 4, body);
    return load_pipeline(text, "p.yaml", o);
  };
  auto r = with_body("templates/body.md.mustache");
  REQUIRE(r.problems.size() == 1);
  CHECK(format_text(r.problems[0]) ==
        "templates/body.md.mustache:2:37: error: template: unknown template variable 'source.autor'; did you mean 'source.author'?");
  auto missing = with_body("templates/nope.mustache");
  REQUIRE(missing.problems.size() == 1);
  CHECK(format_text(missing.problems[0]) ==
        "p.yaml:9:21: error: 'body' template file 'templates/nope.mustache' cannot be read: No such file or directory (the path is relative to the source repository's root)");
  CHECK(with_body("\"Inline {{stage.name}} body\"").ok());
}

// Calls `visit(subschema, where)` for every subschema of the published schema (keys of
// `properties` and `definitions` are names, not keywords).
static void for_each_subschema(const nlohmann::json& s, const std::string& where,
                        const std::function<void(const nlohmann::json&, const std::string&)>& visit) {
  if (s.is_object()) {
    visit(s, where);
    for (const auto& [k, v] : s.items()) {
      if (k == "properties" || k == "definitions") {
        for (const auto& [name, sub] : v.items()) for_each_subschema(sub, where + "/" + k + "/" + name, visit);
      } else {
        for_each_subschema(v, where + "/" + k, visit);
      }
    }
  } else if (s.is_array()) {
    for (std::size_t i = 0; i < s.size(); ++i) for_each_subschema(s[i], where + "/" + std::to_string(i), visit);
  }
}

TEST_CASE("every pattern in the schema is bounded by maxLength", "[schema]") {
  // shorten_for_patterns relies on it to keep std::regex (inside valijson) off long strings.
  std::size_t patterns = 0;
  for_each_subschema(pipeline_schema(), "", [&](const nlohmann::json& s, const std::string& where) {
    if (!s.contains("pattern")) return;
    ++patterns;
    INFO(where);
    CHECK(s.contains("maxLength"));
  });
  CHECK(patterns >= 5);
}

TEST_CASE("oneOf in the schema only combines required-only branches", "[schema]") {
  // The message translator relies on it to tell a oneOf's branch failures from other errors.
  for_each_subschema(pipeline_schema(), "", [&](const nlohmann::json& s, const std::string& where) {
    INFO(where);
    if (s.contains("oneOf")) {
      for (const auto& b : s["oneOf"]) CHECK((b.size() == 1 && b.contains("required")));
    }
    if (s.contains("anyOf")) {
      // anyOf must be the node's only constraint (annotations aside).
      for (const auto& [k, _] : s.items()) {
        INFO(k);
        CHECK((k == "anyOf" || k == "title" || k == "x-expected" || k == "description"));
      }
    }
  });
}
