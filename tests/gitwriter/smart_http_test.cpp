// Git's smart HTTP push taken apart (service/git/smart_http): pkt-lines, the ref advertisement,
// the request, report-status with and without side-band-64k, the pack of a promotion's new
// objects, and base64 for Basic auth. The byte strings follow gitprotocol-http(5),
// gitprotocol-pack(5) and gitprotocol-common(5); the end-to-end exchange with a real
// `git http-backend` is in git_writer_test.cpp.
#include "service/git/smart_http.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <string>

#include <stdlib.h>

#include "service/git/libgit2.hpp"
#include "tests/gitwriter/git_server.hpp"

using namespace std::string_literals;
using namespace tollgate::git;
namespace fs = std::filesystem;

namespace {

const std::string kA = "95dcfa3633004da0049d3d0fa03f80589cbcaf31";
const std::string kB = "d049f6c27a2244e12041955e262a404c7faba355";

std::string flush() { return "0000"; }

}  // namespace

TEST_CASE("pkt-lines: length prefix, flush, and malformed input", "[smart-http]") {
  CHECK(smart::pkt_line("a\n") == "0006a\n");
  CHECK(smart::pkt_line("") == "0004");
  CHECK(smart::pkt_line(std::string(300, 'x')).substr(0, 4) == "0130");

  auto lines = smart::split_pkt_lines("0006a\n00000009done\n");
  REQUIRE(lines);
  REQUIRE(lines->size() == 3);
  CHECK(*(*lines)[0] == "a\n");
  CHECK_FALSE((*lines)[1].has_value());
  CHECK(*(*lines)[2] == "done\n");

  auto cut = smart::split_pkt_lines("0009ab");
  REQUIRE_FALSE(cut);
  CHECK(cut.error() == "pkt-line at byte 0 is cut short");
  CHECK(smart::split_pkt_lines("00").error() == "truncated pkt-line length at byte 0");
  CHECK(smart::split_pkt_lines("zz12").error() == "malformed pkt-line length at byte 0");
  CHECK(smart::split_pkt_lines("0001").error() == "unexpected pkt-line length 1 at byte 0");
}

TEST_CASE("the receive-pack ref advertisement", "[smart-http]") {
  const std::string header = smart::pkt_line("# service=git-receive-pack\n") + flush();
  SECTION("refs and capabilities (the first line carries them after a NUL)") {
    std::string body = header + smart::pkt_line(kA + " refs/heads/main\0report-status delete-refs side-band-64k quiet ofs-delta agent=git/2.39.5\n"s) +
                       smart::pkt_line(kB + " refs/heads/tollgate/x\n") + flush();
    auto ad = smart::parse_advertisement(body);
    REQUIRE(ad);
    CHECK(ad->refs.size() == 2);
    CHECK(ad->refs.at("refs/heads/main") == kA);
    CHECK(ad->refs.at("refs/heads/tollgate/x") == kB);
    CHECK(ad->has("report-status"));
    CHECK(ad->has("side-band-64k"));
    CHECK(ad->has("agent=git/2.39.5"));
    CHECK_FALSE(ad->has("atomic"));
  }
  SECTION("an empty repository advertises capabilities only") {
    std::string body = header + smart::pkt_line(std::string(smart::kZeroId) + " capabilities^{}\0report-status ofs-delta\n"s) + flush();
    auto ad = smart::parse_advertisement(body);
    REQUIRE(ad);
    CHECK(ad->refs.empty());
    CHECK(ad->has("ofs-delta"));
  }
  SECTION("answers that are not a receive-pack advertisement") {
    CHECK(smart::parse_advertisement("<html>sign in</html>").error().find("ref advertisement") == 0);
    CHECK(smart::parse_advertisement(smart::pkt_line("# service=git-upload-pack\n") + flush()).error() ==
          "ref advertisement: not a smart HTTP answer for git-receive-pack");
    CHECK(smart::parse_advertisement(header + smart::pkt_line(kA + " refs/heads/main\0ofs-delta\n"s)).error() ==
          "ref advertisement: cut short (no closing flush)");
    CHECK(smart::parse_advertisement(header + smart::pkt_line("xyz refs/heads/main\0ofs-delta\n"s) + flush()).error() ==
          "ref advertisement: malformed ref line 1");
    CHECK(smart::parse_advertisement(header + smart::pkt_line(kA + " refs/heads/main\n") + flush()).error() ==
          "ref advertisement: no capabilities");
  }
}

TEST_CASE("the receive-pack request: one command with its capabilities, a flush, the pack", "[smart-http]") {
  std::string body = smart::receive_pack_request(smart::kZeroId, kA, "refs/heads/t", {"report-status", "side-band-64k"}, "PACK...");
  const std::string command = std::string(smart::kZeroId) + " " + kA + " refs/heads/t\0report-status side-band-64k\n"s;
  CHECK(body == smart::pkt_line(command) + "0000PACK...");
}

TEST_CASE("report-status, plain and inside side-band-64k", "[smart-http]") {
  const std::string ok = smart::pkt_line("unpack ok\n") + smart::pkt_line("ok refs/heads/t\n") + flush();
  SECTION("plain") {
    auto r = smart::parse_report(ok, false);
    REQUIRE(r);
    CHECK(r->unpack == "ok");
    REQUIRE(r->refs.size() == 1);
    CHECK(r->refs[0].first == "refs/heads/t");
    CHECK_FALSE(r->refs[0].second.has_value());
  }
  SECTION("side-band: band 1 carries the report, band 2 the hook's words") {
    const std::string refused = smart::pkt_line("unpack ok\n") + smart::pkt_line("ng refs/heads/t pre-receive hook declined\n") + flush();
    std::string body = smart::pkt_line("\x02" "branch is protected\n") + smart::pkt_line("\x01" + refused.substr(0, 7)) +
                       smart::pkt_line("\x01" + refused.substr(7)) + flush();
    auto r = smart::parse_report(body, true);
    REQUIRE(r);
    CHECK(r->unpack == "ok");
    REQUIRE(r->refs.size() == 1);
    CHECK(r->refs[0].second == std::optional<std::string>("pre-receive hook declined"));
    CHECK(r->messages == "branch is protected\n");
  }
  SECTION("band 3: the server gave up") {
    auto r = smart::parse_report(smart::pkt_line("\x03" "disk full\n") + flush(), true);
    REQUIRE(r);
    CHECK(r->fatal == "disk full");
  }
  SECTION("an unpack failure") {
    auto r = smart::parse_report(smart::pkt_line("unpack index-pack abnormal exit\n") + smart::pkt_line("ng refs/heads/t unpacker error\n") + flush(), false);
    REQUIRE(r);
    CHECK(r->unpack == "index-pack abnormal exit");
  }
  SECTION("malformed answers") {
    CHECK(smart::parse_report(smart::pkt_line("ok refs/heads/t\n"), false).error() == "push answer: report-status does not start with 'unpack'");
    CHECK(smart::parse_report("", false).error() == "push answer: no report-status");
    CHECK(smart::parse_report(smart::pkt_line("\x07" "x") + flush(), true).error() == "push answer: unknown side-band 7");
    CHECK(smart::parse_report(ok.substr(0, 10), false).error().find("cut short") != std::string::npos);
  }
}

TEST_CASE("base64 (RFC 4648 section 10 test vectors)", "[smart-http]") {
  CHECK(smart::base64("") == "");
  CHECK(smart::base64("f") == "Zg==");
  CHECK(smart::base64("fo") == "Zm8=");
  CHECK(smart::base64("foo") == "Zm9v");
  CHECK(smart::base64("foob") == "Zm9vYg==");
  CHECK(smart::base64("fooba") == "Zm9vYmE=");
  CHECK(smart::base64("foobar") == "Zm9vYmFy");
}

TEST_CASE("the pack holds the commit and only the trees and blobs it adds", "[smart-http]") {
  using tollgate::test::sh;
  using tollgate::test::quote;
  lg::init_once();
  std::string tmpl = (fs::temp_directory_path() / "tollgate-pack-XXXXXX").string();
  REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
  const fs::path dir = tmpl;
  const std::string q = quote(dir.string());
  // Ten directories of ten files; the second commit changes one file in one directory.
  sh("git init -q " + q + "/w && cd " + q + "/w && for d in 0 1 2 3 4 5 6 7 8 9; do mkdir d$d; "
     "for f in 0 1 2 3 4 5 6 7 8 9; do echo $d$f > d$d/f$f; done; done && "
     "git add . && git -c user.name=t -c user.email=t@t commit -qm one && echo changed > d3/f7 && "
     "git -c user.name=t -c user.email=t@t commit -qam two");
  git_repository* raw = nullptr;
  REQUIRE(git_repository_open(&raw, (dir / "w").c_str()) == 0);
  lg::Repository repo(raw);
  git_oid head{};
  REQUIRE(git_reference_name_to_id(&head, repo.get(), "HEAD") == 0);
  git_commit* raw_commit = nullptr;
  REQUIRE(git_commit_lookup(&raw_commit, repo.get(), &head) == 0);
  lg::Commit commit(raw_commit);
  git_commit* raw_parent = nullptr;
  REQUIRE(git_commit_parent(&raw_parent, commit.get(), 0) == 0);
  lg::Commit parent(raw_parent);
  git_tree* raw_tree = nullptr;
  REQUIRE(git_commit_tree(&raw_tree, parent.get()) == 0);
  lg::Tree parent_tree(raw_tree);

  auto pack = smart::build_pack(repo.get(), head, parent_tree.get());
  REQUIRE(pack);
  CHECK(pack->objects == 4);  // the commit, the root tree, d3's tree, the new blob of d3/f7
  CHECK(pack->bytes.substr(0, 4) == "PACK");
  // git itself reads it: index-pack accepts it and lists exactly those objects.
  {
    std::FILE* f = std::fopen((dir / "p.pack").c_str(), "wb");
    REQUIRE(f != nullptr);
    std::fwrite(pack->bytes.data(), 1, pack->bytes.size(), f);
    std::fclose(f);
  }
  sh("cd " + q + " && git index-pack p.pack >/dev/null");
  std::string listed = sh("cd " + q + " && git verify-pack -v p.idx | grep -cE ' (commit|tree|blob) '");
  CHECK(listed == "4\n");

  // Without a parent tree everything is new: the commit, 11 trees and 100 blobs.
  auto full = smart::build_pack(repo.get(), head, nullptr);
  REQUIRE(full);
  CHECK(full->objects == 1 + 11 + 100);
  std::error_code ec;
  fs::remove_all(dir, ec);
}
