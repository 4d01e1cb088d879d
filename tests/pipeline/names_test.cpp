#include <catch2/catch.hpp>

#include "pipeline/names.hpp"
#include "pipeline/suggest.hpp"

using namespace tollgate::pipeline;

TEST_CASE("branch names follow git's rules", "[names]") {
  for (const char* ok : {"main", "release/1.0", "feature/x-y_z", "v1.2.3"}) {
    INFO(ok);
    CHECK_FALSE(branch_name_problem(ok).has_value());
  }
  auto [bad, why] = GENERATE(table<const char*, const char*>({
      {"main..x", "a branch name cannot contain '..'"},
      {"main/", "a branch name cannot start or end with '/'"},
      {"a b", "a branch name cannot contain ' '"},
      {"x.lock", "a branch name cannot end with '.lock'"},
      {"refs/heads/main", "give the branch name without 'refs/heads/'"},
      {"a/.b", "a branch name component cannot start with '.'"},
      {"a@{b", "a branch name cannot contain '@{'"}}));
  INFO(bad);
  auto p = branch_name_problem(bad);
  REQUIRE(p.has_value());
  CHECK(*p == why);
}

TEST_CASE("repository paths stay inside the repository", "[names]") {
  CHECK_FALSE(relative_path_problem("apps/payments/values.yaml").has_value());
  CHECK_FALSE(relative_path_problem("deploy/payments/").has_value());
  CHECK(relative_path_problem("../x").value() == "path must not leave the repository ('..')");
  CHECK(relative_path_problem("a/../../x").value() == "path must not leave the repository ('..')");
  CHECK(relative_path_problem("/etc/passwd").value() == "path must be relative to the repository root, not start with '/'");
  CHECK(relative_path_problem(".git/config").value() == "path must not point into '.git'");
  CHECK(relative_path_problem("a//b").value() == "path has an empty segment ('//')");
  CHECK(relative_path_problem("a\\b").value() == "path must use '/' as separator, not '\\'");
}

TEST_CASE("time zones are looked up in the system tz database", "[names]") {
  CHECK(system_timezone_exists("Europe/Berlin"));
  CHECK(system_timezone_exists("UTC"));
  CHECK(system_timezone_exists("America/Argentina/Buenos_Aires"));
  CHECK_FALSE(system_timezone_exists("Europe/Berln"));
  CHECK_FALSE(system_timezone_exists("Europe"));  // a directory, not a zone
  CHECK_FALSE(system_timezone_exists("../../etc/passwd"));
  CHECK_FALSE(system_timezone_exists("/etc/localtime"));
  CHECK_FALSE(system_timezone_exists(""));
}

TEST_CASE("suggestions catch typos but not unrelated words", "[names]") {
  std::vector<std::string> keys{"name", "repo", "branch", "edits", "stages", "after"};
  CHECK(did_you_mean("stges", keys) == "; did you mean 'stages'?");
  CHECK(did_you_mean("Repo", keys) == "; did you mean 'repo'?");
  CHECK(did_you_mean("brnach", keys) == "; did you mean 'branch'?");
  CHECK(did_you_mean("timeout", keys) == "");
  CHECK(edit_distance("abc", "acb") == 1);
  CHECK(edit_distance("", "abc") == 3);
}
