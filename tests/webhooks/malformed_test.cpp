// Malformed payloads: missing fields, wrong types, non-object bodies, huge numbers, arrays where
// objects belong. The normalisers answer each with a NormalizeError naming the JSON path, and never
// throw.
#include <functional>
#include <regex>
#include <string>
#include <vector>

#include "helpers.hpp"

using namespace tollgate::webhooks;
using namespace tollgate::webhooks::test;
using nlohmann::json;

namespace {

struct Used {
  HostKind host;
  const char* type;
};

const std::vector<Used>& used_types() {
  static const std::vector<Used> all = {
      {HostKind::github, "pull_request"},        {HostKind::github, "issue_comment"},
      {HostKind::github, "pull_request_review"}, {HostKind::github, "status"},
      {HostKind::github, "check_run"},           {HostKind::github, "push"},
      {HostKind::gitlab, "Merge Request Hook"},  {HostKind::gitlab, "Note Hook"},
      {HostKind::gitlab, "Pipeline Hook"},       {HostKind::gitlab, "Push Hook"},
      {HostKind::gitea, "pull_request"},         {HostKind::gitea, "issue_comment"},
      {HostKind::gitea, "pull_request_approved"}, {HostKind::gitea, "pull_request_rejected"},
      {HostKind::gitea, "pull_request_comment"}, {HostKind::gitea, "status"},
      {HostKind::gitea, "push"}};
  return all;
}

// "github:pull_request.closed.merged.json" -> the fixture; "example:pull_request:0" -> GitHub's.
json source(const std::string& spec) {
  if (spec.rfind("example:", 0) == 0) {
    static const json all = load_json("node_modules/@octokit/webhooks-examples/api.github.com/index.json");
    auto second = spec.find(':', 8);
    std::string event = spec.substr(8, second - 8);
    std::size_t index = std::stoul(spec.substr(second + 1));
    for (const auto& group : all) {
      if (group.at("name") == event) return group.at("examples").at(index);
    }
    FAIL("no example " << spec);
  }
  auto colon = spec.find(':');
  return fixture(spec.substr(0, colon), spec.substr(colon + 1));
}

// Every error message is "<path>: <what>", the path made of keys and [indices] (or "payload").
const std::regex kMessage(R"(^[A-Za-z_]+(\[[0-9]+\])*(\.[A-Za-z_]+(\[[0-9]+\])*)*: [^\n]+$)");

}  // namespace

TEST_CASE("a body that is not an object is an error for every used event type", "[webhooks][malformed]") {
  for (const auto& [host, type] : used_types()) {
    for (const char* body : {"null", "true", "17", "\"text\"", "[]", "[{\"action\": \"opened\"}]"}) {
      INFO(to_string(host) << " " << type << " " << body);
      CHECK(require_error(host, type, parse(body)) == "payload: expected an object");
    }
  }
}

TEST_CASE("an empty object is an error with a path for every used event type", "[webhooks][malformed]") {
  for (const auto& [host, type] : used_types()) {
    INFO(to_string(host) << " " << type);
    std::string message = require_error(host, type, json::object());
    CHECK(std::regex_match(message, kMessage));
    CHECK(message.find(": missing") != std::string::npos);
  }
}

TEST_CASE("malformed fields are reported with their path", "[webhooks][malformed]") {
  using Row = std::tuple<HostKind, const char*, const char*, const char*, const char*>;
  // host, event type, source payload, JSON patch (RFC 6902), expected message
  auto [host, type, from, patch, expected] = GENERATE(table<HostKind, const char*, const char*, const char*, const char*>({
      Row{HostKind::github, "pull_request", "example:pull_request:0",
          R"([{"op": "remove", "path": "/pull_request/number"}])", "pull_request.number: missing"},
      Row{HostKind::github, "pull_request", "example:pull_request:0",
          R"([{"op": "replace", "path": "/pull_request/number", "value": "2"}])",
          "pull_request.number: expected an integer"},
      Row{HostKind::github, "pull_request", "example:pull_request:0",
          R"([{"op": "replace", "path": "/pull_request/number", "value": 2.5}])",
          "pull_request.number: expected an integer"},
      Row{HostKind::github, "pull_request", "example:pull_request:0",
          R"([{"op": "replace", "path": "/pull_request/number", "value": 1e300}])",
          "pull_request.number: expected an integer"},
      Row{HostKind::github, "pull_request", "example:pull_request:0",
          R"([{"op": "replace", "path": "/pull_request/number", "value": 99999999999999999999999}])",
          "pull_request.number: expected an integer"},  // beyond uint64: nlohmann keeps it as a double
      Row{HostKind::github, "pull_request", "example:pull_request:0",
          R"([{"op": "replace", "path": "/pull_request/number", "value": 18446744073709551615}])",
          "pull_request.number: integer out of range"},
      Row{HostKind::github, "pull_request", "example:pull_request:0",
          R"([{"op": "replace", "path": "/pull_request/number", "value": -2}])",
          "pull_request.number: expected a positive integer"},
      Row{HostKind::github, "pull_request", "example:pull_request:0",
          R"([{"op": "replace", "path": "/pull_request/number", "value": 0}])",
          "pull_request.number: expected a positive integer"},
      Row{HostKind::github, "pull_request", "example:pull_request:0",
          R"([{"op": "replace", "path": "/pull_request", "value": [1, 2]}])", "pull_request: expected an object"},
      Row{HostKind::github, "pull_request", "example:pull_request:0",
          R"([{"op": "replace", "path": "/pull_request/head", "value": []}])", "pull_request.head: expected an object"},
      Row{HostKind::github, "pull_request", "example:pull_request:0",
          R"([{"op": "replace", "path": "/pull_request/head/sha", "value": "main"}])",
          "pull_request.head.sha: expected a commit id (40 or 64 hex digits), got 'main'"},
      Row{HostKind::github, "pull_request", "example:pull_request:0",
          R"([{"op": "replace", "path": "/pull_request/user", "value": null}])", "pull_request.user: missing"},
      Row{HostKind::github, "pull_request", "example:pull_request:0",
          R"([{"op": "replace", "path": "/action", "value": ["opened"]}])", "action: expected a string"},
      Row{HostKind::github, "pull_request", "example:pull_request:0", R"([{"op": "remove", "path": "/repository"}])",
          "repository: missing"},
      Row{HostKind::github, "pull_request", "example:pull_request:3",
          R"([{"op": "replace", "path": "/pull_request/merged", "value": "true"}])",
          "pull_request.merged: expected a boolean"},
      Row{HostKind::github, "issue_comment", "github:issue_comment.created.on_pull_request.json",
          R"([{"op": "replace", "path": "/comment/body", "value": {"text": "/approve"}}])",
          "comment.body: expected a string"},
      Row{HostKind::github, "issue_comment", "github:issue_comment.created.on_pull_request.json",
          R"([{"op": "replace", "path": "/issue/pull_request", "value": "yes"}])",
          "issue.pull_request: expected an object"},
      Row{HostKind::github, "pull_request_review", "github:pull_request_review.submitted.approved.json",
          R"([{"op": "replace", "path": "/review/id", "value": 1.0}])", "review.id: expected an integer"},
      Row{HostKind::github, "status", "example:status:0", R"([{"op": "replace", "path": "/state", "value": "ok"}])",
          "state: unknown value 'ok'"},
      Row{HostKind::github, "check_run", "example:check_run:1",
          R"([{"op": "replace", "path": "/check_run/head_sha", "value": 12}])", "check_run.head_sha: expected a string"},
      Row{HostKind::github, "push", "example:push:4",
          R"([{"op": "replace", "path": "/commits", "value": {"0": {}}}])", "commits: expected an array"},
      Row{HostKind::github, "push", "example:push:4", R"([{"op": "replace", "path": "/commits/0", "value": "abc"}])",
          "commits[0]: expected an object"},
      Row{HostKind::github, "push", "example:push:4",
          R"([{"op": "replace", "path": "/commits/0/added", "value": ["ok", 7]}])",
          "commits[0].added[1]: expected a string"},
      Row{HostKind::github, "push", "example:push:4",
          R"([{"op": "replace", "path": "/commits/0/modified", "value": "README.md"}])",
          "commits[0].modified: expected an array"},
      Row{HostKind::github, "push", "example:push:4",
          R"([{"op": "replace", "path": "/after", "value": "6113728f27ae82c7b1a177c8d03f9e96e0adf24"}])",
          "after: expected a commit id (40 or 64 hex digits), got '6113728f27ae82c7b1a177c8d03f9e96e0adf24'"},
      Row{HostKind::github, "push", "example:push:4",
          R"([{"op": "remove", "path": "/pusher/name"}, {"op": "remove", "path": "/sender"}])", "pusher.name: missing"},
      Row{HostKind::gitlab, "Merge Request Hook", "gitlab:merge-request-event.json",
          R"([{"op": "replace", "path": "/object_attributes", "value": "open"}])",
          "object_attributes: expected an object"},
      Row{HostKind::gitlab, "Merge Request Hook", "gitlab:merge-request-event.json",
          R"([{"op": "remove", "path": "/object_attributes/action"}])", "object_attributes.action: missing"},
      Row{HostKind::gitlab, "Merge Request Hook", "gitlab:merge-request-event.json",
          R"([{"op": "remove", "path": "/object_attributes/last_commit"}])",
          "object_attributes.last_commit: missing"},
      Row{HostKind::gitlab, "Merge Request Hook", "gitlab:merge-request-event.json",
          R"([{"op": "replace", "path": "/project/path_with_namespace", "value": null}])",
          "project.path_with_namespace: missing"},
      Row{HostKind::gitlab, "Note Hook", "gitlab:comment-merge-request-event.json",
          R"([{"op": "remove", "path": "/merge_request"}])", "merge_request: missing"},
      Row{HostKind::gitlab, "Note Hook", "gitlab:comment-merge-request-event.json",
          R"([{"op": "remove", "path": "/object_attributes/url"}])", "merge_request.url: missing"},
      Row{HostKind::gitlab, "Pipeline Hook", "gitlab:pipeline-event.json",
          R"([{"op": "replace", "path": "/object_attributes/sha", "value": ""}])",
          "object_attributes.sha: expected a commit id (40 or 64 hex digits), got ''"},
      Row{HostKind::gitlab, "Push Hook", "gitlab:push-event.json",
          R"([{"op": "replace", "path": "/total_commits_count", "value": "4"}])",
          "total_commits_count: expected an integer"},
      Row{HostKind::gitea, "pull_request", "gitea:pull-request-merged-event.json",
          R"([{"op": "replace", "path": "/pull_request/merge_commit_sha", "value": null}])",
          "pull_request.merge_commit_sha: missing"},
      Row{HostKind::gitea, "issue_comment", "gitea:pull-request-comment-event.json",
          R"([{"op": "replace", "path": "/comment/user", "value": [{"login": "example"}]}])",
          "comment.user: expected an object"},
      Row{HostKind::gitea, "pull_request_approved", "gitea:pull-request-review-approved-event.json",
          R"([{"op": "replace", "path": "/review", "value": "approved"}])", "review: expected an object"},
      Row{HostKind::gitea, "status", "gitea:status-event.json",
          R"([{"op": "replace", "path": "/state", "value": 1}])", "state: expected a string"},
      Row{HostKind::gitea, "push", "gitea:push-event.json",
          R"([{"op": "replace", "path": "/pusher", "value": {"id": 1}}])", "pusher.username: missing"},
      // Found by fuzz_webhooks: an empty full_name used to give an event for repository "".
      Row{HostKind::gitea, "status", "gitea:status-event.json",
          R"([{"op": "replace", "path": "/repository/full_name", "value": ""}])",
          "repository.full_name: expected a repository path such as 'owner/name', got ''"},
      Row{HostKind::github, "pull_request", "example:pull_request:0",
          R"([{"op": "replace", "path": "/repository/full_name", "value": "Codertocat/"}])",
          "repository.full_name: expected a repository path such as 'owner/name', got 'Codertocat/'"},
      Row{HostKind::gitlab, "Push Hook", "gitlab:push-event.json",
          R"([{"op": "replace", "path": "/project/path_with_namespace", "value": "diaspora"}])",
          "project.path_with_namespace: expected a repository path such as 'owner/name', got 'diaspora'"},
  }));
  INFO(to_string(host) << " " << type << " " << from << " " << patch);
  json payload = source(from).patch(json::parse(patch));
  std::string message = require_error(host, type, payload);
  CHECK(message == expected);
  CHECK(std::regex_match(message, kMessage));
}

TEST_CASE("a hostile value cannot make an error message long or multi-line", "[webhooks][malformed]") {
  json payload = source("example:status:0");
  payload["state"] = std::string(100000, 'x');
  std::string message = require_error(HostKind::github, "status", payload);
  CHECK(message.size() < 120);
  CHECK(message.rfind("state: unknown value 'xxx", 0) == 0);
  CHECK(message.find("...'") != std::string::npos);

  payload["state"] = "line one\nline two\t\x7f";
  CHECK(require_error(HostKind::github, "status", payload) == "state: unknown value 'line one?line two?" "?'");

  // Cut on a character boundary: 59 ASCII bytes, then a 3-byte character straddling byte 60.
  payload["state"] = std::string(59, 'a') + "\xe2\x82\xac" + "tail";
  message = require_error(HostKind::github, "status", payload);
  CHECK(message == "state: unknown value '" + std::string(59, 'a') + "...'");
}

TEST_CASE("the largest int64 is a valid number; one more is out of range", "[webhooks][malformed]") {
  json payload = source("example:pull_request:0");
  payload["pull_request"]["number"] = 9223372036854775807LL;
  CHECK(require_payload<PullRequestEvent>(HostKind::github, "pull_request", payload).pr.number == 9223372036854775807LL);
  payload["pull_request"]["number"] = 9223372036854775808ULL;
  CHECK(require_error(HostKind::github, "pull_request", payload) == "pull_request.number: integer out of range");
}

TEST_CASE("any one field replaced, removed or retyped: an event, nothing, or an error about that field",
          "[webhooks][malformed]") {
  struct Case {
    HostKind host;
    const char* type;
    const char* from;
  };
  const std::vector<Case> cases = {
      {HostKind::github, "pull_request", "example:pull_request:0"},
      {HostKind::github, "pull_request", "example:pull_request:22"},
      {HostKind::github, "pull_request", "github:pull_request.closed.merged.json"},
      {HostKind::github, "issue_comment", "github:issue_comment.created.on_pull_request.json"},
      {HostKind::github, "pull_request_review", "github:pull_request_review.submitted.approved.json"},
      {HostKind::github, "pull_request_review", "example:pull_request_review:1"},
      {HostKind::github, "status", "example:status:0"},
      {HostKind::github, "check_run", "example:check_run:1"},
      {HostKind::github, "push", "example:push:4"},
      {HostKind::gitlab, "Merge Request Hook", "gitlab:merge-request-event.json"},
      {HostKind::gitlab, "Merge Request Hook", "gitlab:merge-request-merge-event.json"},
      {HostKind::gitlab, "Merge Request Hook", "gitlab:merge-request-update-event.json"},
      {HostKind::gitlab, "Merge Request Hook", "gitlab:merge-request-approval-event.json"},
      {HostKind::gitlab, "Note Hook", "gitlab:comment-merge-request-event.json"},
      {HostKind::gitlab, "Pipeline Hook", "gitlab:pipeline-event.json"},
      {HostKind::gitlab, "Push Hook", "gitlab:push-event-user-username.json"},
      {HostKind::gitea, "pull_request", "gitea:pull-request-event.json"},
      {HostKind::gitea, "pull_request", "gitea:pull-request-merged-event.json"},
      {HostKind::gitea, "issue_comment", "gitea:pull-request-comment-event.json"},
      {HostKind::gitea, "pull_request_approved", "gitea:pull-request-review-approved-event.json"},
      {HostKind::gitea, "pull_request_comment", "gitea:pull-request-review-event.json"},
      {HostKind::gitea, "status", "gitea:status-event.json"},
      {HostKind::gitea, "push", "gitea:push-event.json"},
  };
  const std::vector<json> replacements = {nullptr, true,       0,   -1,          1.5,           "x",
                                          "",      json::array(), json::object(), json::array({1}),
                                          json{{"x", 1}},         18446744073709551615ULL};

  // The one error that may name another field: a GitLab note's merge request URL falls back to the
  // note's URL, so removing the latter reports the former.
  auto cross_field = [](const std::string& mutated, const std::string& reported) {
    return mutated == "object_attributes.url" && reported == "merge_request.url";
  };
  auto related = [](const std::string& a, const std::string& b) {
    auto under = [](const std::string& child, const std::string& parent) {
      return child.size() > parent.size() && child.compare(0, parent.size(), parent) == 0 &&
             (child[parent.size()] == '.' || child[parent.size()] == '[');
    };
    return a == b || under(a, b) || under(b, a);
  };

  std::size_t calls = 0, events = 0, nothing = 0, errors = 0;
  std::vector<std::string> problems;
  for (const auto& c : cases) {
    json payload = source(c.from);
    REQUIRE(require_event(c.host, c.type, payload).host == c.host);  // the unmutated payload is valid
    auto check = [&](const std::string& path) {
      ++calls;
      Result result = std::optional<Event>();
      try {
        result = normalize(c.host, c.type, payload);
      } catch (const std::exception& e) {
        problems.push_back(std::string(c.from) + " " + path + ": threw " + e.what());
        return;
      }
      if (result) {
        ++(result->has_value() ? events : nothing);
        return;
      }
      ++errors;
      const std::string& message = result.error().message;
      std::string reported = message.substr(0, message.find(": "));
      if (!std::regex_match(message, kMessage) || !(related(path, reported) || cross_field(path, reported))) {
        problems.push_back(std::string(c.from) + " " + path + ": " + message);
      }
    };
    std::function<void(json&, const std::string&)> visit = [&](json& node, const std::string& path) {
      if (node.is_object()) {
        std::vector<std::string> keys;
        for (auto it = node.begin(); it != node.end(); ++it) keys.push_back(it.key());
        for (const auto& key : keys) {
          std::string child = path.empty() ? key : path + "." + key;
          json saved = node[key];
          for (const auto& r : replacements) {
            node[key] = r;
            check(child);
          }
          node.erase(key);
          check(child);
          node[key] = saved;
          visit(node[key], child);
        }
      } else if (node.is_array()) {
        for (std::size_t i = 0; i < node.size(); ++i) {
          std::string child = path + "[" + std::to_string(i) + "]";
          json saved = node[i];
          for (const auto& r : replacements) {
            node[i] = r;
            check(child);
          }
          node[i] = saved;
          visit(node[i], child);
        }
      }
    };
    visit(payload, "");
  }
  INFO([&] {
    std::string all;
    for (std::size_t i = 0; i < problems.size() && i < 20; ++i) all += problems[i] + "\n";
    return all;
  }());
  CHECK(problems.empty());
  CHECK(calls > 50000);
  CHECK(events > 0);
  CHECK(nothing > 0);
  CHECK(errors > 0);
}
