// Git's protocol v2 fetch taken apart (service/git/upload_pack_v2): the capability advertisement,
// ls-refs and fetch, on answers written by hand after gitprotocol-v2(5) and on the answers of the
// real `git upload-pack` (run with GIT_PROTOCOL=version=2 --stateless-rpc, as git http-backend
// runs it). The fetch through lighttpd + git http-backend is in git_writer_test.cpp.
#include "service/git/upload_pack_v2.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <stdlib.h>

#include "service/git/smart_http.hpp"
#include "tests/gitwriter/git_server.hpp"

using namespace std::string_literals;
using namespace tollgate::git;
namespace fs = std::filesystem;
using tollgate::test::quote;
using tollgate::test::sh;

namespace {

const std::string kA = "95dcfa3633004da0049d3d0fa03f80589cbcaf31";
const std::string kB = "d049f6c27a2244e12041955e262a404c7faba355";

std::string pkt(const std::string& s) { return smart::pkt_line(s); }

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out << bytes;
}

}  // namespace

TEST_CASE("the protocol v2 capability advertisement", "[upload-pack-v2]") {
  const std::string v2 = pkt("version 2\n") + pkt("agent=git/2.39.2\n") + pkt("ls-refs=unborn\n") +
                         pkt("fetch=shallow wait-for-done\n") + pkt("server-option\n") + pkt("object-format=sha1\n") + "0000";
  SECTION("as git http-backend sends it (no service line)") {
    auto caps = smart::parse_v2_capabilities(v2);
    REQUIRE(caps);
    REQUIRE(caps->has_value());
    CHECK((*caps)->has("ls-refs"));
    CHECK((*caps)->has("fetch"));
    CHECK((*caps)->has("server-option"));
    CHECK((*caps)->caps.at("fetch") == "shallow wait-for-done");
    CHECK((*caps)->caps.at("agent") == "git/2.39.2");
    CHECK_FALSE((*caps)->has("object-info"));
  }
  SECTION("after a '# service=' line and a flush") {
    auto caps = smart::parse_v2_capabilities(pkt("# service=git-upload-pack\n") + "0000" + v2);
    REQUIRE(caps);
    REQUIRE(caps->has_value());
    CHECK((*caps)->has("ls-refs"));
  }
  SECTION("a protocol v0 ref advertisement: the host does not speak v2") {
    const std::string v0 = pkt("# service=git-upload-pack\n") + "0000" +
                           pkt(kA + " HEAD\0multi_ack side-band-64k ofs-delta\n"s) + pkt(kA + " refs/heads/main\n") + "0000";
    auto caps = smart::parse_v2_capabilities(v0);
    REQUIRE(caps);
    CHECK_FALSE(caps->has_value());
  }
  SECTION("answers that are neither") {
    CHECK(smart::parse_v2_capabilities("").error() == "capability advertisement: empty");
    CHECK(smart::parse_v2_capabilities("<html>").error().find("malformed pkt-line length") != std::string::npos);
    CHECK(smart::parse_v2_capabilities(pkt("hello\n") + "0000").error() ==
          "capability advertisement: neither 'version 2' nor a ref advertisement: 'hello?'");
    CHECK(smart::parse_v2_capabilities(pkt("version 2\n") + pkt("ls-refs\n")).error() ==
          "capability advertisement: cut short (no closing flush)");
    CHECK(smart::parse_v2_capabilities(pkt("# service=git-upload-pack\n") + pkt("version 2\n")).error() ==
          "capability advertisement: no flush after the service line");
  }
}

TEST_CASE("ls-refs: the request names the prefixes, the answer is matched exactly by the caller", "[upload-pack-v2]") {
  CHECK(smart::ls_refs_request({"refs/heads/main", "refs/heads/tollgate/a/dev/1"}) ==
        "0014command=ls-refs\n0013agent=tollgate\n0001"
        "001fref-prefix refs/heads/main\n"
        "002bref-prefix refs/heads/tollgate/a/dev/1\n"
        "0000");
  SECTION("refs, with attributes after the name ignored") {
    auto refs = smart::parse_ls_refs(pkt(kA + " refs/heads/main\n") + pkt(kB + " refs/heads/main-old symref-target:x\n") + "0000");
    REQUIRE(refs);
    CHECK(refs->size() == 2);
    CHECK(refs->at("refs/heads/main") == kA);
    CHECK(refs->at("refs/heads/main-old") == kB);
  }
  SECTION("no ref matches: an empty list") {
    auto refs = smart::parse_ls_refs("0000");
    REQUIRE(refs);
    CHECK(refs->empty());
  }
  SECTION("malformed answers") {
    CHECK(smart::parse_ls_refs(pkt(kA + " refs/heads/main\n")).error() == "ls-refs answer: cut short (no closing flush)");
    CHECK(smart::parse_ls_refs(pkt("xyz refs/heads/main\n") + "0000").error() == "ls-refs answer: malformed line 'xyz refs/heads/main'");
    CHECK(smart::parse_ls_refs(pkt("ERR access denied\n") + "0000").error() == "the host answered ls-refs with an error: access denied");
    CHECK(smart::parse_ls_refs("0001").error() == "ls-refs answer: unexpected special packet");
  }
}

TEST_CASE("fetch: wants, haves and done; the answer's packfile section", "[upload-pack-v2]") {
  CHECK(smart::fetch_request({kA}, {kB}) ==
        "0012command=fetch\n0013agent=tollgate\n0001"
        "000eofs-delta\n0010no-progress\n"
        "0032want " + kA + "\n"
        "0032have " + kB + "\n"
        "0009done\n0000");
  SECTION("the pack from band 1, progress from band 2, after skipped sections") {
    auto r = smart::parse_fetch_response(pkt("shallow-info\n") + pkt("unshallow " + kA + "\n") + "0001" + pkt("packfile\n") +
                                         pkt("\x02" "Counting objects\n") + pkt("\x01" "PACK") + pkt("\x01" "rest") + "0000");
    REQUIRE(r);
    CHECK(r->pack == "PACKrest");
    CHECK(r->messages == "Counting objects\n");
  }
  SECTION("errors the host states") {
    CHECK(smart::parse_fetch_response(pkt("ERR upload-pack: not our ref " + kA + "\n") + "0000").error() ==
          "the host answered the fetch with an error: upload-pack: not our ref " + kA);
    CHECK(smart::parse_fetch_response(pkt("packfile\n") + pkt("\x03" "disk full\n") + "0000").error() ==
          "the host gave up sending the pack: disk full");
  }
  SECTION("answers cut short or malformed") {
    CHECK(smart::parse_fetch_response("").error() == "fetch answer: no packfile section");
    CHECK(smart::parse_fetch_response(pkt("packfile\n") + pkt("\x01" "PACK")).error() ==
          "fetch answer: cut short (no closing flush after the pack)");
    CHECK(smart::parse_fetch_response(pkt("packfile\n") + "0000").error() == "fetch answer: the packfile section is empty");
    CHECK(smart::parse_fetch_response(pkt("acknowledgments\n") + pkt("NAK\n") + "0000").error() ==
          "fetch answer: the host sent no pack (section 'acknowledgments' ends the answer)");
    CHECK(smart::parse_fetch_response(pkt("surprise\n") + "0000").error() == "fetch answer: unknown section 'surprise'");
    CHECK(smart::parse_fetch_response(pkt("packfile\n") + pkt("\x07" "x") + "0000").error() == "fetch answer: unknown side band 7");
  }
}

TEST_CASE("the three exchanges with the real git upload-pack in protocol v2", "[upload-pack-v2]") {
  std::string tmpl = (fs::temp_directory_path() / "tollgate-v2-XXXXXX").string();
  REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
  const fs::path dir = tmpl;
  const std::string q = quote(dir.string());
  // A repository with two commits on main and 50 other branches; the client has the first commit.
  sh("git init -q -b main " + q + "/w && cd " + q + "/w && echo one > f && git add f && "
     "git -c user.name=t -c user.email=t@t commit -qm one && echo two > f && "
     "git -c user.name=t -c user.email=t@t commit -qam two && "
     "for i in $(seq 1 50); do git branch tollgate/app/dev/$i HEAD~1; done && git branch main-old HEAD~1");
  const std::string repo = q + "/w/.git";
  const std::string tip = sh("git --git-dir=" + repo + " rev-parse main").substr(0, 40);
  const std::string old = sh("git --git-dir=" + repo + " rev-parse main~1").substr(0, 40);
  const auto upload_pack = [&](const std::string& request, bool advertise) {
    write_file(dir / "req", request);
    sh("GIT_PROTOCOL=version=2 git upload-pack --stateless-rpc " + std::string(advertise ? "--advertise-refs " : "") + repo +
       " < " + q + "/req > " + q + "/answer");
    return read_file(dir / "answer");
  };

  auto caps = smart::parse_v2_capabilities(upload_pack("", true));
  REQUIRE(caps);
  REQUIRE(caps->has_value());
  CHECK((*caps)->has("ls-refs"));
  CHECK((*caps)->has("fetch"));

  auto refs = smart::parse_ls_refs(upload_pack(smart::ls_refs_request({"refs/heads/main", "refs/heads/tollgate/app/dev/7"}), false));
  REQUIRE(refs);
  CHECK(refs->size() == 3);  // main, main-old (a prefix match) and the one branch asked for
  CHECK(refs->at("refs/heads/main") == tip);
  CHECK(refs->at("refs/heads/main-old") == old);
  CHECK(refs->at("refs/heads/tollgate/app/dev/7") == old);

  auto fetched = smart::parse_fetch_response(upload_pack(smart::fetch_request({tip}, {old}), false));
  REQUIRE(fetched);
  CHECK(fetched->pack.substr(0, 4) == "PACK");
  write_file(dir / "p.pack", fetched->pack);
  sh("cd " + q + " && git index-pack p.pack >/dev/null");
  // Only what the client lacks: the new commit, its tree and the new blob.
  CHECK(sh("cd " + q + " && git verify-pack -v p.idx | grep -cE ' (commit|tree|blob) '") == "3\n");
  std::error_code ec;
  fs::remove_all(dir, ec);
}
