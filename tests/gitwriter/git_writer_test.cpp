// The git writer against a real smart-HTTP server (lighttpd + git http-backend): promotion,
// idempotent re-runs, no-op edits, a moved base, concurrent writers, a refusing pre-receive hook,
// wrong credentials and edit errors.
#include "service/git/git_writer.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

#include "service/git/remote_ops.hpp"
#include "service/host/http_client.hpp"
#include "tests/gitwriter/git_server.hpp"

namespace fs = std::filesystem;
using namespace tollgate::git;
using tollgate::test::GitServer;

namespace {

const std::string kValues =
    "# payments in dev\n"
    "image:\n"
    "  repository: ghcr.io/acme/payments   # built by CI\n"
    "  tag: \"v1.0.0\"\n"
    "replicas: 2\n";
const std::string kKustomization =
    "resources:\n"
    "  - deployment.yaml\n"
    "images:\n"
    "  - name: ghcr.io/acme/payments\n"
    "    newTag: v1.0.0\n";
const std::string kVersion = "release v1.0.0\n";

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "tollgate-gitwriter-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

struct Fixture {
  TempDir tmp;
  GitServer server{tmp.path / "server", "tollgate", "s3cret-token"};
  GitWriter writer;

  // `smart_http`: push with tollgate's own receive-pack exchange (the default), or with libgit2's.
  explicit Fixture(bool smart_http = true)
      : writer{GitWriterOptions{.data_dir = tmp.path / "data", .max_attempts = 3,
                                .backoff = std::chrono::milliseconds(20), .smart_http = smart_http}} {
    server.create_repo("acme", "env-dev", {{"apps/payments/values.yaml", kValues},
                                           {"apps/payments/kustomization.yaml", kKustomization},
                                           {"VERSION", kVersion},
                                           {"README.md", "environment dev\n"}});
  }

  PromotionRequest request(std::string version, std::string target = "tollgate/payments/dev/1") const {
    PromotionRequest r;
    r.url = server.url("acme", "env-dev");
    r.credentials = {.username = "tollgate", .token = "s3cret-token"};
    r.base_branch = "main";
    r.target_branch = std::move(target);
    r.message = "Promote payments " + version + " to dev";
    r.author = {.name = "Alice", .email = "alice@example.com"};
    r.committer = {.name = "tollgate", .email = "tollgate@example.com"};
    r.edits = {SetEdit{"apps/payments/values.yaml", "image.tag", version},
               ImageEdit{"apps/payments/kustomization.yaml", "ghcr.io/acme/payments", version},
               ReplaceEdit{"VERSION", "v[0-9.]+", version}};
    return r;
  }
};

std::string values_at(const std::string& version) {
  return "# payments in dev\n"
         "image:\n"
         "  repository: ghcr.io/acme/payments   # built by CI\n"
         "  tag: \"" + version + "\"\n"
         "replicas: 2\n";
}

CopyEdit copy_edit(std::string url, std::string sha, std::string from, std::string to) {
  CopyEdit c;
  c.source_url = std::move(url);
  c.source_sha = std::move(sha);
  c.from = std::move(from);
  c.to = std::move(to);
  return c;
}

bool has_mirror(const fs::path& data_dir, const std::string& dir_name) {
  if (!fs::exists(data_dir)) return false;
  for (const auto& e : fs::recursive_directory_iterator(data_dir)) {
    if (e.path().filename() == dir_name) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("a first promotion creates the mirror and pushes one commit on the base tip", "[gitwriter]") {
  const bool smart_http = GENERATE(true, false);
  INFO("smart HTTP push: " << smart_http);
  Fixture f{smart_http};
  const std::string base = f.server.rev_parse("acme", "env-dev", "main");
  auto r = f.writer.promote(f.request("v1.1.0"));
  REQUIRE(r.has_value());
  CHECK(r->outcome == Outcome::pushed);
  CHECK(r->base_commit == base);
  CHECK(r->changed_files ==
        std::vector<std::string>{"VERSION", "apps/payments/kustomization.yaml", "apps/payments/values.yaml"});
  const std::string target = "refs/heads/tollgate/payments/dev/1";
  CHECK(f.server.rev_parse("acme", "env-dev", target) == r->commit);
  CHECK(f.server.rev_parse("acme", "env-dev", target + "^") == base);
  CHECK(f.server.rev_parse("acme", "env-dev", target + "^2").empty());  // one parent

  CHECK(f.server.show("acme", "env-dev", target, "apps/payments/values.yaml") == values_at("v1.1.0"));
  CHECK(f.server.show("acme", "env-dev", target, "apps/payments/kustomization.yaml") ==
        "resources:\n  - deployment.yaml\nimages:\n  - name: ghcr.io/acme/payments\n    newTag: v1.1.0\n");
  CHECK(f.server.show("acme", "env-dev", target, "VERSION") == "release v1.1.0\n");
  CHECK(f.server.show("acme", "env-dev", target, "README.md") == "environment dev\n");
  // Only the three edited files differ from the base.
  CHECK(tollgate::test::sh("git --git-dir=" + tollgate::test::quote(f.server.repo_dir("acme", "env-dev").string()) +
                           " diff --name-only main " + target) ==
        "VERSION\napps/payments/kustomization.yaml\napps/payments/values.yaml\n");
  CHECK(tollgate::test::sh("git --git-dir=" + tollgate::test::quote(f.server.repo_dir("acme", "env-dev").string()) +
                           " log -1 --format=%an/%ae/%cn/%s " + target) ==
        "Alice/alice@example.com/tollgate/Promote payments v1.1.0 to dev\n");

  const auto port = f.server.url("acme", "env-dev").substr(std::string("http://127.0.0.1:").size());
  const fs::path mirror =
      f.tmp.path / "data" / "mirrors" / ("127.0.0.1_" + port.substr(0, port.find('/'))) / "acme" / "env-dev.git";
  CHECK(fs::exists(mirror / "HEAD"));
  // The mirror keeps the base branch only: promotion branches, one per run, are not left behind.
  CHECK(tollgate::test::sh("git --git-dir=" + tollgate::test::quote(mirror.string()) +
                           " for-each-ref '--format=%(refname)'") == "refs/heads/main\n");
  CHECK(f.writer.stats().pushes == 1);
  CHECK(f.writer.stats().fetches == 1);
  CHECK(f.writer.stats().v2_fetches == 0);  // a new mirror is filled by libgit2
}

TEST_CASE("a re-run of the same promotion pushes nothing", "[gitwriter]") {
  Fixture f;
  auto first = f.writer.promote(f.request("v1.1.0"));
  REQUIRE(first.has_value());
  REQUIRE(first->outcome == Outcome::pushed);

  SECTION("with the same writer and mirror") {
    auto again = f.writer.promote(f.request("v1.1.0"));
    REQUIRE(again.has_value());
    CHECK(again->outcome == Outcome::up_to_date);
    CHECK(again->commit == first->commit);
    CHECK(f.writer.stats().pushes == 1);
    // Protocol v2: ls-refs showed the mirror already had both tips, so no pack was asked for.
    CHECK(f.writer.stats().fetches == 2);
    CHECK(f.writer.stats().v2_fetches == 1);
    CHECK(f.writer.stats().up_to_date_fetches == 1);
  }
  SECTION("with a fresh writer and an empty data_dir, as after losing the disk") {
    GitWriter other(GitWriterOptions{.data_dir = f.tmp.path / "data2"});
    auto again = other.promote(f.request("v1.1.0"));
    REQUIRE(again.has_value());
    CHECK(again->outcome == Outcome::up_to_date);
    CHECK(other.stats().pushes == 0);
  }
  CHECK(f.server.rev_parse("acme", "env-dev", "refs/heads/tollgate/payments/dev/1") == first->commit);
}

TEST_CASE("edits that change nothing make no commit", "[gitwriter]") {
  Fixture f;
  auto r = f.writer.promote(f.request("v1.0.0"));
  REQUIRE(r.has_value());
  CHECK(r->outcome == Outcome::unchanged);
  CHECK(r->commit.empty());
  CHECK(r->changed_files.empty());
  CHECK(f.server.rev_parse("acme", "env-dev", "refs/heads/tollgate/payments/dev/1").empty());
  CHECK(f.writer.stats().pushes == 0);
}

TEST_CASE("a promotion after the base branch moved is rebuilt on the new base", "[gitwriter]") {
  const bool smart_http = GENERATE(true, false);
  INFO("smart HTTP push: " << smart_http);
  Fixture f{smart_http};
  auto first = f.writer.promote(f.request("v1.1.0"));
  REQUIRE(first.has_value());
  const std::string moved =
      f.server.commit("acme", "env-dev", "main", {{"README.md", "environment dev, moved\n"}}, "someone else");
  auto second = f.writer.promote(f.request("v1.1.0"));
  REQUIRE(second.has_value());
  CHECK(first->created_branch);
  CHECK(second->outcome == Outcome::pushed);
  CHECK_FALSE(second->created_branch);  // rebuilt: the branch was there (and so may be its PR)
  CHECK(second->base_commit == moved);
  CHECK(second->commit != first->commit);
  const std::string target = "refs/heads/tollgate/payments/dev/1";
  CHECK(f.server.rev_parse("acme", "env-dev", target) == second->commit);
  CHECK(f.server.rev_parse("acme", "env-dev", target + "^") == moved);
  CHECK(f.server.show("acme", "env-dev", target, "README.md") == "environment dev, moved\n");
  CHECK(f.server.show("acme", "env-dev", target, "apps/payments/values.yaml") == values_at("v1.1.0"));
  CHECK(f.writer.stats().pushes == 2);
  // The second fetch (into the mirror the first made) asked for the moved base in protocol v2.
  CHECK(f.writer.stats().fetches == 2);
  CHECK(f.writer.stats().v2_fetches == (smart_http ? 1 : 0));
  CHECK(f.writer.stats().up_to_date_fetches == 0);
}

TEST_CASE("concurrent writers to one repository both succeed, one after the other", "[gitwriter]") {
  Fixture f;
  f.server.create_repo("acme", "env-qa", {{"apps/payments/values.yaml", kValues}});
  tl::expected<PromotionResult, Error> a = tl::unexpected(Error{});
  tl::expected<PromotionResult, Error> b = tl::unexpected(Error{});
  tl::expected<PromotionResult, Error> c = tl::unexpected(Error{});
  auto qa = f.request("v3.0.0", "tollgate/payments/qa/1");
  qa.url = f.server.url("acme", "env-qa");
  qa.edits = {SetEdit{"apps/payments/values.yaml", "image.tag", "v3.0.0"}};
  {
    std::jthread t1([&] { a = f.writer.promote(f.request("v1.1.0", "tollgate/payments/dev/1")); });
    std::jthread t2([&] { b = f.writer.promote(f.request("v1.2.0", "tollgate/payments/dev/2")); });
    std::jthread t3([&] { c = f.writer.promote(qa); });
  }
  REQUIRE(a.has_value());
  REQUIRE(b.has_value());
  REQUIRE(c.has_value());
  CHECK(a->outcome == Outcome::pushed);
  CHECK(b->outcome == Outcome::pushed);
  CHECK(c->outcome == Outcome::pushed);
  CHECK(f.server.show("acme", "env-dev", "tollgate/payments/dev/1", "apps/payments/values.yaml") == values_at("v1.1.0"));
  CHECK(f.server.show("acme", "env-dev", "tollgate/payments/dev/2", "apps/payments/values.yaml") == values_at("v1.2.0"));
  CHECK(f.server.show("acme", "env-qa", "tollgate/payments/qa/1", "apps/payments/values.yaml") == values_at("v3.0.0"));
  CHECK(f.writer.stats().pushes == 3);

  // The same promotion twice at once: one pushes, the other finds it done.
  tl::expected<PromotionResult, Error> d = tl::unexpected(Error{});
  tl::expected<PromotionResult, Error> e = tl::unexpected(Error{});
  {
    std::jthread t1([&] { d = f.writer.promote(f.request("v1.3.0", "tollgate/payments/dev/3")); });
    std::jthread t2([&] { e = f.writer.promote(f.request("v1.3.0", "tollgate/payments/dev/3")); });
  }
  REQUIRE(d.has_value());
  REQUIRE(e.has_value());
  CHECK(((d->outcome == Outcome::pushed && e->outcome == Outcome::up_to_date) ||
         (d->outcome == Outcome::up_to_date && e->outcome == Outcome::pushed)));
  CHECK(d->commit == e->commit);
}

TEST_CASE("a push refused by a pre-receive hook is an error naming the ref and the hook's message", "[gitwriter]") {
  const bool smart_http = GENERATE(true, false);
  INFO("smart HTTP push: " << smart_http);
  Fixture f{smart_http};
  f.server.reject_pushes("acme", "env-dev", "branch tollgate/* is protected by policy");
  auto r = f.writer.promote(f.request("v1.1.0"));
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().kind == ErrorKind::rejected);
  INFO(r.error().message);
  CHECK(r.error().message.find("repo 'acme/env-dev'") != std::string::npos);
  CHECK(r.error().message.find("'refs/heads/tollgate/payments/dev/1'") != std::string::npos);
  CHECK(r.error().message.find("branch tollgate/* is protected by policy") != std::string::npos);
  CHECK(r.error().message.find('\n') == std::string::npos);
  CHECK(f.writer.stats().retries == 0);
  CHECK(f.server.rev_parse("acme", "env-dev", "refs/heads/tollgate/payments/dev/1").empty());
}

TEST_CASE("wrong credentials fail fast, without a retry storm", "[gitwriter]") {
  Fixture f;
  auto req = f.request("v1.1.0");
  req.credentials.token = "wrong";
  auto t0 = std::chrono::steady_clock::now();
  auto r = f.writer.promote(req);
  auto elapsed = std::chrono::steady_clock::now() - t0;
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().kind == ErrorKind::unauthorized);
  CHECK(r.error().message.find("wrong") == std::string::npos);
  // One call supplies the credentials; the second learns they were refused and stops.
  CHECK(f.writer.stats().credential_requests == 2);
  CHECK(f.writer.stats().retries == 0);
  // lighttpd itself holds every wrong password for ~1 s (its brute-force delay); a client that
  // kept retrying would take that second again and again.
  CHECK(elapsed < std::chrono::seconds(2));
  CHECK(f.server.rev_parse("acme", "env-dev", "refs/heads/tollgate/payments/dev/1").empty());
}

TEST_CASE("an edit that cannot be applied names the file and the path, and nothing is pushed", "[gitwriter]") {
  Fixture f;
  auto req = f.request("v1.1.0");
  std::string expect_file;
  std::string expect_detail;
  SECTION("a path that leads nowhere") {
    req.edits.push_back(SetEdit{"apps/payments/values.yaml", "image.registry.host", "ghcr.io"});
    expect_file = "'apps/payments/values.yaml'";
    expect_detail = "image.registry.host";
  }
  SECTION("a file that does not exist") {
    req.edits.push_back(SetEdit{"apps/missing/values.yaml", "image.tag", "v1"});
    expect_file = "'apps/missing/values.yaml'";
    expect_detail = "not found";
  }
  SECTION("a pattern that matches nothing") {
    req.edits.push_back(ReplaceEdit{"README.md", "version: [0-9]+", "x"});
    expect_file = "'README.md'";
    expect_detail = "version: [0-9]+";
  }
  auto r = f.writer.promote(req);
  REQUIRE_FALSE(r.has_value());
  INFO(r.error().message);
  CHECK(r.error().kind == ErrorKind::edit_failed);
  CHECK(r.error().message.find(expect_file) != std::string::npos);
  CHECK(r.error().message.find(expect_detail) != std::string::npos);
  CHECK(f.writer.stats().pushes == 0);
  CHECK(f.server.rev_parse("acme", "env-dev", "refs/heads/tollgate/payments/dev/1").empty());
}

TEST_CASE("malformed requests are refused before any network call", "[gitwriter]") {
  Fixture f;
  auto req = f.request("v1.1.0");
  SECTION("credentials in the url") { req.url = "http://user:pw@127.0.0.1:1/git/acme/env-dev.git"; }
  SECTION("a path escaping data_dir") { req.url = "http://127.0.0.1:1/git/../env-dev.git"; }
  SECTION("an invalid target branch") { req.target_branch = "tollgate/a..b"; }
  SECTION("the base branch as target") { req.target_branch = "main"; }
  SECTION("a copy edit with a bad sha") { req.edits.push_back(copy_edit(req.url, "abc", "a", "b")); }
  auto r = f.writer.promote(req);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().kind == ErrorKind::invalid_request);
  CHECK(f.writer.stats().fetches == 0);
}

TEST_CASE("a missing base branch or repository is not_found", "[gitwriter]") {
  Fixture f;
  auto req = f.request("v1.1.0");
  SECTION("base branch") { req.base_branch = "release"; }
  SECTION("repository") { req.url = f.server.url("acme", "env-nope"); }
  auto r = f.writer.promote(req);
  REQUIRE_FALSE(r.has_value());
  INFO(r.error().message);
  CHECK(r.error().kind == ErrorKind::not_found);
  CHECK(f.writer.stats().retries == 0);
  // The mirror made for the missing repository is not left behind.
  CHECK_FALSE(has_mirror(f.tmp.path / "data", "env-nope.git"));
  CHECK_FALSE(has_mirror(f.tmp.path / "data", "env-dev.git"));
}

TEST_CASE("a host that cannot be reached is retried with backoff, then unavailable", "[gitwriter]") {
  Fixture f;
  auto req = f.request("v1.1.0");
  req.url = "http://127.0.0.1:1/git/acme/env-dev.git";  // nothing listens on port 1
  auto r = f.writer.promote(req);
  REQUIRE_FALSE(r.has_value());
  INFO(r.error().message);
  CHECK(r.error().kind == ErrorKind::unavailable);
  CHECK(f.writer.stats().retries == 2);  // max_attempts = 3
  CHECK(f.writer.stats().credential_requests == 0);
}

TEST_CASE("copy writes a directory of the source repository at the release sha, removing files gone from it",
          "[gitwriter]") {
  Fixture f;
  f.server.commit("acme", "env-dev", "main",
                  {{"apps/payments/manifests/deployment.yaml", "old deployment\n"},
                   {"apps/payments/manifests/gone.yaml", "removed upstream\n"},
                   {"apps/other/keep.yaml", "untouched\n"}},
                  "manifests");
  f.server.create_repo("acme", "payments", {{"deploy/payments/deployment.yaml", "kind: Deployment\n"},
                                            {"deploy/payments/config/app.yaml", "tag: v1.0.0\n"},
                                            {"deploy/other.yaml", "not copied\n"},
                                            {"src/main.go", "package main\n"}});
  const std::string release = f.server.rev_parse("acme", "payments", "main");
  // A later commit on the source: the copy must take the release sha, not the branch tip.
  f.server.commit("acme", "payments", "main", {{"deploy/payments/deployment.yaml", "kind: Deployment # newer\n"}},
                  "newer");

  auto req = f.request("v1.1.0");
  req.edits = {copy_edit(f.server.url("acme", "payments"), release, "deploy/payments/", "apps/payments/manifests/"),
               SetEdit{"apps/payments/manifests/config/app.yaml", "tag", "v1.1.0"},
               copy_edit(f.server.url("acme", "payments"), release, "deploy/other.yaml", "apps/extra/")};
  auto r = f.writer.promote(req);
  REQUIRE(r.has_value());
  INFO(r->commit);
  CHECK(r->outcome == Outcome::pushed);
  CHECK(r->changed_files == std::vector<std::string>{"apps/extra/other.yaml",
                                                     "apps/payments/manifests/config/app.yaml",
                                                     "apps/payments/manifests/deployment.yaml",
                                                     "apps/payments/manifests/gone.yaml"});
  const std::string target = "tollgate/payments/dev/1";
  CHECK(f.server.show("acme", "env-dev", target, "apps/payments/manifests/deployment.yaml") == "kind: Deployment\n");
  CHECK(f.server.show("acme", "env-dev", target, "apps/payments/manifests/config/app.yaml") == "tag: v1.1.0\n");
  CHECK(f.server.show("acme", "env-dev", target, "apps/extra/other.yaml") == "not copied\n");
  CHECK(f.server.show("acme", "env-dev", target, "apps/other/keep.yaml") == "untouched\n");
  CHECK_THROWS(f.server.show("acme", "env-dev", target, "apps/payments/manifests/gone.yaml"));
  CHECK(f.writer.stats().fetches == 2);  // the source once (both copies), the target once

  // Run again: the source mirror has the sha, so only the target is fetched; nothing is pushed.
  auto again = f.writer.promote(req);
  REQUIRE(again.has_value());
  CHECK(again->outcome == Outcome::up_to_date);
  CHECK(f.writer.stats().fetches == 3);
  CHECK(f.writer.stats().pushes == 1);

  SECTION("a sha on no branch of the source is not_found") {
    auto bad = req;
    std::get<CopyEdit>(bad.edits[0]).source_sha = std::string(40, 'a');
    auto e = f.writer.promote(bad);
    REQUIRE_FALSE(e.has_value());
    CHECK(e.error().kind == ErrorKind::not_found);
    CHECK(e.error().message.find(std::string(40, 'a')) != std::string::npos);
  }
  SECTION("a source path missing at the sha names the path") {
    auto bad = req;
    std::get<CopyEdit>(bad.edits[0]).from = "deploy/nope/";
    auto e = f.writer.promote(bad);
    REQUIRE_FALSE(e.has_value());
    CHECK(e.error().kind == ErrorKind::edit_failed);
    CHECK(e.error().message.find("'deploy/nope'") != std::string::npos);
  }
}

TEST_CASE("a host answering 503 is retried with backoff until it recovers", "[gitwriter]") {
  Fixture f;
  auto req = f.request("v1.1.0");
  req.url = f.server.flaky_url("acme", "env-dev");
  SECTION("recovers within the attempts") {
    f.server.fail_next(2);
    auto r = f.writer.promote(req);
    REQUIRE(r.has_value());
    CHECK(r->outcome == Outcome::pushed);
    CHECK(f.writer.stats().retries == 2);
    CHECK(f.server.failures_left() == 0);
    CHECK(f.server.show("acme", "env-dev", "tollgate/payments/dev/1", "apps/payments/values.yaml") ==
          values_at("v1.1.0"));
  }
  SECTION("stays down") {
    f.server.fail_next(100);
    auto r = f.writer.promote(req);
    REQUIRE_FALSE(r.has_value());
    INFO(r.error().message);
    CHECK(r.error().kind == ErrorKind::unavailable);
    CHECK(r.error().message.find("503") != std::string::npos);
    CHECK(f.writer.stats().retries == 2);
    CHECK(f.server.failures_left() == 97);  // three attempts, no more
  }
}

TEST_CASE("logs name the repository and never the token", "[gitwriter]") {
  Fixture f;
  const fs::path log_file = f.tmp.path / "stderr.log";
  std::fflush(stderr);
  int saved = ::dup(2);
  int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE(fd >= 0);
  ::dup2(fd, 2);
  auto ok = f.writer.promote(f.request("v1.1.0"));
  auto wrong = f.request("v1.2.0");
  wrong.credentials.token = "wr0ng-t0ken";
  auto refused = f.writer.promote(wrong);
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  ::close(fd);
  REQUIRE(ok.has_value());
  REQUIRE_FALSE(refused.has_value());
  std::ifstream in(log_file);
  const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(log.find("\"repo\":\"acme/env-dev\"") != std::string::npos);
  CHECK(log.find("\"msg\":\"git push\"") != std::string::npos);
  CHECK(log.find("s3cret-token") == std::string::npos);
  CHECK(log.find("wr0ng-t0ken") == std::string::npos);
  CHECK(log.find("tollgate:") == std::string::npos);  // user:password
}

TEST_CASE("lock files left in the mirror by a process killed mid-update do not block later promotions", "[gitwriter]") {
  Fixture f;
  auto first = f.writer.promote(f.request("v1.1.0"));
  REQUIRE(first.has_value());
  f.server.commit("acme", "env-dev", "main", {{"README.md", "environment dev, moved\n"}}, "someone else");
  std::vector<std::filesystem::path> mirrors;
  for (const auto& e : std::filesystem::recursive_directory_iterator(f.tmp.path / "data"))
    if (e.path().filename() == "HEAD" && e.path().parent_path().extension() == ".git") mirrors.push_back(e.path().parent_path());
  REQUIRE(mirrors.size() == 1);
  // What a SIGKILL during a fetch's ref update (or a packed-refs rewrite) leaves behind; libgit2
  // then refuses every later update of that ref ("failed to lock file ... for writing").
  const auto main_lock = mirrors[0] / "refs/heads/main.lock";
  const auto packed_lock = mirrors[0] / "packed-refs.lock";
  std::filesystem::create_directories(main_lock.parent_path());
  std::ofstream(main_lock) << "0000000000000000000000000000000000000000\n";
  std::ofstream(packed_lock) << "";
  auto second = f.writer.promote(f.request("v1.2.0"));
  INFO((second ? std::string("ok") : second.error().message));
  REQUIRE(second.has_value());
  CHECK(second->outcome == Outcome::pushed);
  CHECK_FALSE(std::filesystem::exists(main_lock));
  CHECK_FALSE(std::filesystem::exists(packed_lock));
}


TEST_CASE("a push skips the ref advertisement when the fetch just saw the branch, and is redone with it when the branch moved meanwhile",
          "[gitwriter]") {
  Fixture f;
  // The first push asks for the advertisement (and the process remembers the host's capabilities);
  // the next one, to a branch the fetch saw absent, skips it.
  REQUIRE(f.writer.promote(f.request("v1.1.0", "tollgate/payments/dev/1")).has_value());
  REQUIRE(f.writer.promote(f.request("v1.2.0", "tollgate/payments/dev/2")).has_value());
  CHECK(f.writer.stats().pushes == 2);
  CHECK(f.writer.stats().pushes_without_advertisement == 1);
  CHECK(f.server.show("acme", "env-dev", "tollgate/payments/dev/2", "apps/payments/values.yaml") == values_at("v1.2.0"));

  // Another mirror fetches while branch 9 does not exist; then the writer creates it on the host;
  // then the push from the other mirror (its view: absent) is refused by the host and redone.
  lg::init_once();
  const std::string url_string = f.server.url("acme", "env-dev");
  auto url = parse_repo_url(url_string);
  REQUIRE(url.has_value());
  const Credentials credentials{.username = "tollgate", .token = "s3cret-token"};
  const GitWriterOptions options{.data_dir = f.tmp.path / "other", .max_attempts = 1};
  GitWriter::Counters counters;
  tollgate::service::host::HttpClient http(tollgate::service::host::HttpClientOptions{.max_attempts = 1});
  const Remote remote{*url, url_string, credentials, options, counters, &http};
  auto mirror = open_and_fetch(f.tmp.path / "other" / "env-dev.git", "acme/env-dev", remote, "main", "tollgate/payments/dev/9");
  REQUIRE(mirror.has_value());
  REQUIRE_FALSE(mirror->heads.target.has_value());
  git_commit* raw_base = nullptr;
  REQUIRE(git_commit_lookup(&raw_base, mirror->repo.get(), &mirror->heads.base) == 0);
  lg::Commit base(raw_base);
  git_tree* raw_tree = nullptr;
  REQUIRE(git_commit_tree(&raw_tree, base.get()) == 0);
  lg::Tree tree(raw_tree);
  git_signature* raw_sig = nullptr;
  REQUIRE(git_signature_now(&raw_sig, "t", "t@example.com") == 0);
  lg::Signature sig(raw_sig);
  git_oid mine{};
  const git_commit* parents[] = {base.get()};
  REQUIRE(git_commit_create(&mine, mirror->repo.get(), "refs/heads/tollgate/payments/dev/9", sig.get(), sig.get(), nullptr,
                            "from the other mirror", tree.get(), 1, parents) == 0);

  REQUIRE(f.writer.promote(f.request("v1.9.0", "tollgate/payments/dev/9")).has_value());
  const std::string theirs = f.server.rev_parse("acme", "env-dev", "refs/heads/tollgate/payments/dev/9");
  REQUIRE(theirs != lg::to_hex(mine));

  auto pushed = push_branch(mirror->repo.get(), remote, "tollgate/payments/dev/9", mine, tree.get(), &mirror->heads);
  REQUIRE(pushed.has_value());
  CHECK(f.server.rev_parse("acme", "env-dev", "refs/heads/tollgate/payments/dev/9") == lg::to_hex(mine));
  CHECK(counters.pushes == 1);
  CHECK(counters.pushes_without_advertisement == 0);  // the blind attempt was refused, the redo asked
}

TEST_CASE("a push on the wire does not hold up another branch's promotion into the same repository", "[gitwriter]") {
  Fixture f;
  // The host's pre-receive hook holds the push of branch 1 until the test opens the gate (and says
  // when it got there); other branches pass at once.
  const fs::path entered = f.tmp.path / "entered";
  const fs::path gate = f.tmp.path / "gate";
  const fs::path hook = f.server.repo_dir("acme", "env-dev") / "hooks" / "pre-receive";
  {
    std::ofstream out(hook);
    out << "#!/bin/sh\n"
           "if grep -q ' refs/heads/tollgate/payments/dev/1$'; then\n"
           "  touch " << tollgate::test::quote(entered.string()) << "\n"
           "  i=0; while [ ! -e " << tollgate::test::quote(gate.string()) << " ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\n"
           "fi\n"
           "exit 0\n";
  }
  fs::permissions(hook, fs::perms::owner_all);

  tl::expected<PromotionResult, Error> first = tl::unexpected(Error{});
  std::jthread held([&] { first = f.writer.promote(f.request("v1.1.0", "tollgate/payments/dev/1")); });
  for (int i = 0; i < 400 && !fs::exists(entered); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  REQUIRE(fs::exists(entered));  // branch 1's push is on the wire, held by the host

  // Branch 2 fetches, commits and pushes meanwhile; a mirror lock held across the push would keep
  // it waiting until the gate opens.
  tl::expected<PromotionResult, Error> second = tl::unexpected(Error{});
  std::atomic<bool> second_done{false};
  std::jthread other([&] {
    second = f.writer.promote(f.request("v1.2.0", "tollgate/payments/dev/2"));
    second_done = true;
  });
  for (int i = 0; i < 400 && !second_done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  const bool finished_while_held = second_done;
  { std::ofstream open_gate(gate); }
  held.join();
  other.join();
  CHECK(finished_while_held);
  REQUIRE(first.has_value());
  REQUIRE(second.has_value());
  CHECK(first->outcome == Outcome::pushed);
  CHECK(second->outcome == Outcome::pushed);
  CHECK(f.server.show("acme", "env-dev", "tollgate/payments/dev/1", "apps/payments/values.yaml") == values_at("v1.1.0"));
  CHECK(f.server.show("acme", "env-dev", "tollgate/payments/dev/2", "apps/payments/values.yaml") == values_at("v1.2.0"));
}
