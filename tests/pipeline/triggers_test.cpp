#include <catch2/catch.hpp>

#include "pipeline/triggers.hpp"
#include "pipeline/validate.hpp"

using namespace tollgate::pipeline;

namespace {

constexpr const char* kFile = R"(version: 1
pipelines:
  - name: payments
    on:
      merged:
        branches: [main]
        paths: ["services/payments/**", "shared/*.proto"]
    stages:
      - name: dev
        repo: acme/env-dev
        edits:
          - file: values.yaml
            set: { image.tag: "{{release.version}}" }
  - name: web
    on:
      merged:
        branches: ["main", "release/*"]
      push:
        branches: ["release/**"]
    stages:
      - name: dev
        repo: acme/env-dev
        edits:
          - file: web.yaml
            set: { image.tag: "{{release.version}}" }
  - name: nightly
    on:
      push:
        branches: [nightly]
        paths: ["**/*.go"]
    stages:
      - name: dev
        repo: acme/env-dev
        edits:
          - file: nightly.yaml
            set: { image.tag: "{{release.version}}" }
)";

const PipelineFile& file() {
  static const PipelineFile f = [] {
    auto r = load_pipeline(kFile, ".tollgate.yaml");
    for (const auto& d : r.problems) INFO(format_text(d));
    REQUIRE(r.ok());
    return *r.file;
  }();
  return f;
}

using Names = std::vector<std::string>;

}  // namespace

TEST_CASE("a merged PR starts the pipelines whose branches and paths match, in file order", "[triggers]") {
  TriggerEvent ev{TriggerEvent::Kind::merged, "main", {"services/payments/api/main.go", "README.md"}};
  auto m = match_triggers(file(), ev);
  CHECK(m.pipelines == Names{"payments", "web"});
  CHECK(m.need_changed_files.empty());
  CHECK(m.skipped == Names{"nightly: no 'merged' trigger"});

  ev.changed_files = {"README.md", "shared/money.proto"};  // the second pattern
  CHECK(match_triggers(file(), ev).pipelines == Names{"payments", "web"});

  ev.changed_files = {"services/pay/x.go", "shared/deep/money.proto"};  // near misses
  m = match_triggers(file(), ev);
  CHECK(m.pipelines == Names{"web"});
  CHECK(m.skipped.at(0) == "payments: no changed file matches [services/payments/**, shared/*.proto]");

  ev.changed_files.clear();  // a PR that changed nothing (or only a mode)
  CHECK(match_triggers(file(), ev).pipelines == Names{"web"});
}

TEST_CASE("branches are globs; other branches start nothing", "[triggers]") {
  auto merged = [](std::string branch) {
    return match_triggers(file(), {TriggerEvent::Kind::merged, std::move(branch), {"services/payments/a"}});
  };
  CHECK(merged("release/1.2").pipelines == Names{"web"});
  CHECK(merged("release/1.2/hotfix").pipelines.empty());  // '*' stays within one segment
  CHECK(merged("develop").pipelines.empty());
  CHECK(merged("develop").skipped.at(0) == "payments: branch 'develop' matches none of [main]");
  CHECK(merged("Main").pipelines.empty());  // branch names are case-sensitive
}

TEST_CASE("pushes start the push-triggered pipelines; paths filter them too", "[triggers]") {
  TriggerEvent ev{TriggerEvent::Kind::push, "release/1.2/hotfix", {}};
  CHECK(match_triggers(file(), ev).pipelines == Names{"web"});  // '**' spans segments
  ev.branch = "main";
  CHECK(match_triggers(file(), ev).pipelines.empty());  // main has only a merged trigger
  ev.branch = "nightly";
  ev.changed_files = {"docs/a.md"};
  CHECK(match_triggers(file(), ev).pipelines.empty());
  ev.changed_files = {"docs/a.md", "cmd/x/main.go"};
  CHECK(match_triggers(file(), ev).pipelines == Names{"nightly"});
}

TEST_CASE("an incomplete list of changed files defers a paths decision to the service", "[triggers]") {
  TriggerEvent ev{TriggerEvent::Kind::push, "nightly", {"docs/a.md"}, /*changed_files_complete=*/false};
  auto m = match_triggers(file(), ev);
  CHECK(m.pipelines.empty());
  CHECK(m.need_changed_files == Names{"nightly"});
  ev.changed_files.push_back("x.go");  // a known match decides at once, complete or not
  m = match_triggers(file(), ev);
  CHECK(m.pipelines == Names{"nightly"});
  CHECK(m.need_changed_files.empty());
  // Without a paths filter the list does not matter.
  ev = {TriggerEvent::Kind::push, "release/9", {}, false};
  CHECK(match_triggers(file(), ev).pipelines == Names{"web"});
}

TEST_CASE("branch_of_ref: only branch refs name a branch", "[triggers]") {
  CHECK(branch_of_ref("refs/heads/main") == std::optional<std::string>("main"));
  CHECK(branch_of_ref("refs/heads/release/1.2") == std::optional<std::string>("release/1.2"));
  CHECK_FALSE(branch_of_ref("refs/tags/v1.0"));
  CHECK_FALSE(branch_of_ref("refs/heads/"));
  CHECK_FALSE(branch_of_ref("main"));
  CHECK_FALSE(branch_of_ref(""));
}
