#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "pipeline/commands.hpp"
#include "pipeline/utf8.hpp"

using tollgate::pipeline::ActorFacts;
using tollgate::pipeline::ApprovalGate;
using tollgate::pipeline::authorize;
using tollgate::pipeline::Command;
using tollgate::pipeline::CommandKind;
using tollgate::pipeline::Decision;
using tollgate::pipeline::parse_comment;
using tollgate::pipeline::ParsedComment;
using Permission = ActorFacts::Permission;

namespace {

// One line per finding, in a compact form the tables below can spell out:
// "2:approve[note]" is a command on line 2 with argument "note"; "3:?aprove~approve" an unknown
// word on line 3 with its suggestion.
std::string describe(const ParsedComment& p) {
  std::string out;
  auto sep = [&] {
    if (!out.empty()) out += ' ';
  };
  for (const auto& c : p.commands) {
    sep();
    out += std::to_string(c.line) + ":" + to_string(c.kind);
    if (!c.argument.empty()) out += "[" + c.argument + "]";
  }
  for (const auto& u : p.unknown) {
    sep();
    out += std::to_string(u.line) + ":?" + u.word;
    if (u.suggestion) out += "~" + *u.suggestion;
  }
  return out;
}

std::string parse(const std::string& body) { return describe(parse_comment(body)); }

int line_count(std::string_view body) { return static_cast<int>(std::count(body.begin(), body.end(), '\n')) + 1; }

const std::vector<CommandKind> all_kinds{CommandKind::approve, CommandKind::unapprove, CommandKind::hold,
                                         CommandKind::unhold,  CommandKind::retry,     CommandKind::abort,
                                         CommandKind::rollback, CommandKind::status,   CommandKind::help};

Command cmd(CommandKind kind) { return Command{kind, "", 1}; }

ActorFacts actor(std::string login, Permission permission, std::vector<std::string> teams = {}) {
  ActorFacts a;
  a.login = std::move(login);
  a.permission = permission;
  a.teams = std::move(teams);
  return a;
}

ApprovalGate gate_from(std::vector<std::string> from, bool allow_author = false) {
  return ApprovalGate{.count = 1, .from = std::move(from), .allow_author = allow_author};
}

}  // namespace

TEST_CASE("every command word parses, with or without an argument", "[commands]") {
  auto [body, expected] = GENERATE(table<std::string, std::string>({
      {"/approve", "1:approve"},
      {"/approve looks good", "1:approve[looks good]"},
      {"/unapprove", "1:unapprove"},
      {"/hold waiting for the QA sign-off", "1:hold[waiting for the QA sign-off]"},
      {"/unhold", "1:unhold"},
      {"/retry", "1:retry"},
      {"/abort bad build", "1:abort[bad build]"},
      {"/rollback", "1:rollback"},
      {"/status", "1:status"},
      {"/help", "1:help"},
      // Commands without a documented argument keep the rest of the line too; the service ignores it.
      {"/retry please", "1:retry[please]"},
  }));
  INFO(body);
  CHECK(parse(body) == expected);
}

TEST_CASE("command words are case-insensitive and must stand alone", "[commands]") {
  auto [body, expected] = GENERATE(table<std::string, std::string>({
      {"/APPROVE", "1:approve"},
      {"/Approve Ship It  ", "1:approve[Ship It]"},
      {"/aPpRoVe", "1:approve"},
      {"/approve\tnote", "1:approve[note]"},
      {"/approve \t  spaced   out \t ", "1:approve[spaced   out]"},
      {"/approve   ", "1:approve"},
      {"   /hold leading spaces", "1:hold[leading spaces]"},
      {"/approved", "1:?approved~approve"},
      {"/approve,", "1:?approve,~approve"},
      {"/approve/hold", "1:?approve/hold"},
      {"/approve /hold", "1:approve[/hold]"},
  }));
  INFO(body);
  CHECK(parse(body) == expected);
}

TEST_CASE("only a slash and a letter at the start of a line is a command attempt", "[commands]") {
  auto [body, expected] = GENERATE(table<std::string, std::string>({
      {"", ""},
      {"   ", ""},
      {" \t \n\n   \r\n", ""},
      {"/", ""},
      {"/\n/", ""},
      {"/ approve", ""},
      {"//approve", ""},
      {"/1approve", ""},
      {"/-approve", ""},
      {"/\xC3\xA9", ""},
      {"please /approve", ""},
      {"lgtm, /approve", ""},
      {"see https://example.com/approve for details", ""},
      {"https://example.com/approve", ""},
      {"- /approve", ""},
      {"`/approve`", ""},
      {"/etc/passwd is world-readable", "1:?etc/passwd"},
      {"/a", "1:?a"},
  }));
  INFO(body);
  CHECK(parse(body) == expected);
}

TEST_CASE("unknown commands get a suggestion within two edits", "[commands]") {
  auto [body, expected] = GENERATE(table<std::string, std::string>({
      {"/aprove", "1:?aprove~approve"},
      {"/APROVE", "1:?APROVE~approve"},
      {"/approv", "1:?approv~approve"},
      {"/aproove", "1:?aproove~approve"},
      {"/unaprove", "1:?unaprove~unapprove"},
      {"/stauts", "1:?stauts~status"},
      {"/stat", "1:?stat~status"},
      {"/hel", "1:?hel~help"},
      {"/retyr", "1:?retyr~retry"},
      {"/rolback", "1:?rolback~rollback"},
      {"/roll-back", "1:?roll-back~rollback"},
      {"/abrt now", "1:?abrt~abort"},
      {"/holds", "1:?holds~hold"},
      {"/unhodl", "1:?unhodl~unhold"},
      {"/deploy", "1:?deploy"},
      {"/lgtm", "1:?lgtm"},
      {"/merge", "1:?merge"},
      {"/approveeee", "1:?approveeee"},
      {"/approvedbyme", "1:?approvedbyme"},
  }));
  INFO(body);
  CHECK(parse(body) == expected);
}

TEST_CASE("every line of a comment is looked at, and line numbers are 1-based", "[commands]") {
  auto [body, expected] = GENERATE(table<std::string, std::string>({
      {"lgtm\n/approve\n/hold wait for the demo", "2:approve 3:hold[wait for the demo]"},
      {"/approve\n/approve", "1:approve 2:approve"},
      {"/approve\n/aprove\n/status", "1:approve 3:status 2:?aprove~approve"},
      {"\n\n\n/help", "4:help"},
      {"/approve\r\n/hold\r\n", "1:approve 2:hold"},
      {"/approve note\r\n", "1:approve[note]"},
      {"/approve note\r", "1:approve[note]"},
      {"first\r\n\r\n/retry\r\n", "3:retry"},
      {"/approve\rnote", "1:approve[note]"},  // a lone CR is whitespace, not a line break
  }));
  INFO(body);
  CHECK(parse(body) == expected);
}

TEST_CASE("lines in fenced code blocks are not commands", "[commands]") {
  auto [body, expected] = GENERATE(table<std::string, std::string>({
      {"```\n/approve\n```\n/hold", "4:hold"},
      {"~~~\n/approve\n~~~\n/hold", "4:hold"},
      {"```bash\n/approve\n```\n/hold", "4:hold"},
      {"~~~ yaml ~~~\n/approve\n~~~\n/hold", "4:hold"},
      {"   ```\n/approve\n   ```\n/hold", "4:hold"},
      {"```\n/approve\n      ```\n/hold", ""},  // a closing fence indented 4+ is content
      // ~~~ does not close ```, nor the other way round
      {"```\n~~~\n/approve\n~~~\n/hold\n```\n/retry", "7:retry"},
      {"~~~\n```\n/approve\n```\n/hold\n~~~\n/retry", "7:retry"},
      // a shorter fence does not close a longer one (nested fences)
      {"````\n```\n/approve\n```\n/hold\n````\n/retry", "7:retry"},
      {"~~~~\n~~~\n/approve\n~~~~~\n/hold", "5:hold"},
      // a longer closing fence closes
      {"```\n/approve\n`````\n/hold", "4:hold"},
      // an unclosed fence runs to the end
      {"```\n/approve", ""},
      {"text\n```\n/approve\n\n/hold\n", ""},
      // a closing fence has nothing after it but whitespace
      {"```\n/approve\n``` not a close\n/hold", ""},
      {"```\n/approve\n```   \n/hold", "4:hold"},
      // inline code at the start of a line is not a fence
      {"```inline``` x\n/approve", "2:approve"},
      {"``\n/approve", "2:approve"},
      {"``\n/approve\n``", "2:approve"},
      {"```\r\n/approve\r\n```\r\n/hold\r\n", "4:hold"},
      // a fence opened after four spaces is indented code (start of body), not a fence
      {"    ```\n/approve", "2:approve"},
      // and after a paragraph line it is just text
      {"text\n    ```\n/approve", "3:approve"},
  }));
  INFO(body);
  CHECK(parse(body) == expected);
}

TEST_CASE("block-quoted lines are not commands", "[commands]") {
  auto [body, expected] = GENERATE(table<std::string, std::string>({
      {"> /approve", ""},
      {">/approve", ""},
      {"   > /approve", ""},
      {">> /hold", ""},
      {"> quoted\n/approve", "2:approve"},
      {"> @alice wrote:\n> /approve\n\n/hold why?", "4:hold[why?]"},
      // a fence inside a quote ends with the quote
      {"> ```\n/approve", "2:approve"},
      // 4 spaces then '>' at the start of the body is indented code
      {"    > /approve\n/hold", "2:hold"},
  }));
  INFO(body);
  CHECK(parse(body) == expected);
}

TEST_CASE("indented code blocks start after a blank line and are not commands", "[commands]") {
  auto [body, expected] = GENERATE(table<std::string, std::string>({
      {"    /approve", ""},
      {"\t/approve", ""},
      {"  \t/approve", ""},
      {"   /approve", "1:approve"},
      {"text\n    /approve", "2:approve"},
      {"text\n\t/approve", "2:approve"},
      {"text\n\n    /approve", ""},
      {"text\n \t \n    /approve", ""},
      // the block goes on through blank lines and indented lines, and ends at a less-indented line
      {"\n    code\n    /approve\n\n    /hold\n/retry", "6:retry"},
      {"\n    code\n  /approve", "3:approve"},
      // a closing fence is a block boundary too
      {"```\n```\n    /approve", ""},
      {"```\n```\n/approve", "3:approve"},
  }));
  INFO(body);
  CHECK(parse(body) == expected);
}

TEST_CASE("arguments are cut at 500 bytes on a character boundary", "[commands]") {
  SECTION("exactly 500 bytes stay") {
    std::string note(500, 'x');
    auto p = parse_comment("/approve " + note);
    REQUIRE(p.commands.size() == 1);
    CHECK(p.commands[0].argument == note);
  }
  SECTION("ASCII beyond 500 bytes is cut") {
    auto p = parse_comment("/hold " + std::string(100000, 'y') + "\n/retry");
    REQUIRE(p.commands.size() == 2);
    CHECK(p.commands[0].argument == std::string(500, 'y'));
    CHECK(p.commands[1].kind == CommandKind::retry);
    CHECK(p.commands[1].line == 2);
  }
  SECTION("two-byte characters") {
    std::string e_acute;
    for (int i = 0; i < 300; ++i) e_acute += "\xC3\xA9";
    auto p = parse_comment("/approve " + e_acute);
    REQUIRE(p.commands.size() == 1);
    CHECK(p.commands[0].argument.size() == 500);
    CHECK_FALSE(tollgate::pipeline::utf8_error(p.commands[0].argument));
  }
  SECTION("three-byte characters never split") {
    std::string euro;
    for (int i = 0; i < 200; ++i) euro += "\xE2\x82\xAC";
    auto p = parse_comment("/approve " + euro);
    REQUIRE(p.commands.size() == 1);
    CHECK(p.commands[0].argument.size() == 498);
    CHECK_FALSE(tollgate::pipeline::utf8_error(p.commands[0].argument));
  }
  SECTION("an unknown word of a megabyte is cut too and gets no suggestion") {
    auto p = parse_comment("/" + std::string(1 << 20, 'a'));
    REQUIRE(p.unknown.size() == 1);
    CHECK(p.unknown[0].word == std::string(100, 'a'));
    CHECK_FALSE(p.unknown[0].suggestion);
  }
  SECTION("a megabyte of prose has no commands") {
    CHECK(parse(std::string(1 << 20, 'z')).empty());
  }
}

TEST_CASE("ill-formed UTF-8 is replaced, never passed on", "[commands]") {
  auto [body, expected] = GENERATE(table<std::string, std::string>({
      {"/approve \xFF\xFE ok", "1:approve[\xEF\xBF\xBD\xEF\xBF\xBD ok]"},
      {"/approve caf\xC3", "1:approve[caf\xEF\xBF\xBD]"},
      {"/approve \xED\xA0\x80", "1:approve[\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD]"},  // a surrogate
      {"/approve caf\xC3\xA9", "1:approve[caf\xC3\xA9]"},
      {"/appr\xC3", "1:?appr\xEF\xBF\xBD"},
      {"\xFF/approve", ""},
      {"\xFF\n/approve", "2:approve"},
  }));
  INFO(body);
  CHECK(parse(body) == expected);
}

TEST_CASE("NUL bytes and other control characters do not end a line", "[commands]") {
  std::string body = std::string("/approve a\0b", 12) + "\n/hold";
  auto p = parse_comment(body);
  REQUIRE(p.commands.size() == 2);
  CHECK(p.commands[0].argument == std::string("a\0b", 3));
  CHECK(p.commands[1].line == 2);
  CHECK(parse(std::string("/approve\0", 9)) == std::string("1:?approve\0~approve", 19));
}

TEST_CASE("to_string names each command as it is typed", "[commands]") {
  auto kind = GENERATE_REF(from_range(all_kinds));
  std::string word = to_string(kind);
  INFO(word);
  auto p = parse_comment("/" + word);
  REQUIRE(p.commands.size() == 1);
  CHECK(p.commands[0].kind == kind);
  CHECK(p.unknown.empty());
}

TEST_CASE("random bytes never throw and lines stay within the body", "[commands]") {
  std::mt19937 rng(20261126);
  // Half the bodies are raw bytes; half are built from the characters the grammar cares about, so
  // fences, quotes, indentation and command words actually occur.
  static const std::vector<std::string> pieces{"/",  "\n", "\r\n", "\r", " ", "    ", "\t", "```", "~~~", "````",
                                               ">",  "approve", "hold", "HeLp", "aprove", "x", "\xFF", "\xC3",
                                               "\xE2\x82\xAC", std::string(1, '\0'), "//", "/ "};
  for (int iteration = 0; iteration < 2000; ++iteration) {
    std::string body;
    const int length = std::uniform_int_distribution<int>(0, 300)(rng);
    if (iteration % 2 == 0) {
      std::uniform_int_distribution<int> byte(0, 255);
      for (int i = 0; i < length; ++i) body += static_cast<char>(byte(rng));
    } else {
      std::uniform_int_distribution<std::size_t> pick(0, pieces.size() - 1);
      for (int i = 0; i < length / 3; ++i) body += pieces[pick(rng)];
    }
    ParsedComment p;
    REQUIRE_NOTHROW(p = parse_comment(body));
    const int lines = line_count(body);
    int previous = 0;
    for (const auto& c : p.commands) {
      INFO("iteration " << iteration);
      REQUIRE(c.line >= 1);
      REQUIRE(c.line <= lines);
      REQUIRE(c.line > previous);  // one command per line, in order
      previous = c.line;
      REQUIRE(c.argument.size() <= 500);
      REQUIRE_FALSE(tollgate::pipeline::utf8_error(c.argument));
    }
    for (const auto& u : p.unknown) {
      INFO("iteration " << iteration);
      REQUIRE(u.line >= 1);
      REQUIRE(u.line <= lines);
      REQUIRE(u.word.size() <= 100);
      REQUIRE_FALSE(tollgate::pipeline::utf8_error(u.word));
    }
  }
}

// --- authorize ---

TEST_CASE("bots are refused whatever they ask, even with admin access", "[commands]") {
  auto kind = GENERATE_REF(from_range(all_kinds));
  auto bot = actor("renovate[bot]", Permission::admin);
  bot.bot = true;
  INFO(to_string(kind));
  auto d = authorize(cmd(kind), bot, std::nullopt, "carol", {"renovate[bot]"});
  CHECK_FALSE(d.accepted);
  CHECK(d.reason == "@renovate[bot] is a bot, and tollgate ignores commands from bots.");
}

TEST_CASE("anyone may ask for /status and /help", "[commands]") {
  auto kind = GENERATE(CommandKind::status, CommandKind::help);
  auto permission = GENERATE(Permission::none, Permission::read, Permission::admin);
  auto d = authorize(cmd(kind), actor("stranger", permission), gate_from({"alice"}), "stranger", {});
  CHECK(d.accepted);
  CHECK(d.reason.empty());
}

TEST_CASE("hold, unhold, retry, abort and rollback need write access", "[commands]") {
  auto kind = GENERATE(CommandKind::hold, CommandKind::unhold, CommandKind::retry, CommandKind::abort, CommandKind::rollback);
  INFO(to_string(kind));
  // An approvals gate does not matter here, nor does being the author.
  auto gate = GENERATE(as<std::optional<ApprovalGate>>{}, std::nullopt, gate_from({"alice"}));

  SECTION("write, maintain and admin are accepted") {
    auto permission = GENERATE(Permission::write, Permission::maintain, Permission::admin);
    auto d = authorize(cmd(kind), actor("dave", permission), gate, "dave", {});
    CHECK(d.accepted);
    CHECK(d.reason.empty());
  }
  SECTION("none, read and triage are refused, saying what they have") {
    auto [permission, phrase] = GENERATE(table<Permission, std::string>({
        {Permission::none, "no access"},
        {Permission::read, "read access"},
        {Permission::triage, "triage access"},
    }));
    // Being listed in the approvals gate does not grant anything else.
    auto d = authorize(cmd(kind), actor("alice", permission), gate, "carol", {});
    CHECK_FALSE(d.accepted);
    CHECK(d.reason == "@alice cannot use /" + std::string(to_string(kind)) +
                          ": it needs write access to this repository, and @alice has " + phrase + ".");
  }
}

TEST_CASE("without a 'from' list, approving needs write access", "[commands]") {
  auto gate = GENERATE(as<std::optional<ApprovalGate>>{}, std::nullopt, gate_from({}));
  SECTION("write access or more is accepted") {
    auto permission = GENERATE(Permission::write, Permission::maintain, Permission::admin);
    CHECK(authorize(cmd(CommandKind::approve), actor("bob", permission), gate, "carol", {}).accepted);
  }
  SECTION("less is refused") {
    auto [permission, phrase] = GENERATE(table<Permission, std::string>({
        {Permission::none, "no access"},
        {Permission::read, "read access"},
        {Permission::triage, "triage access"},
    }));
    auto d = authorize(cmd(CommandKind::approve), actor("bob", permission), gate, "carol", {});
    CHECK_FALSE(d.accepted);
    CHECK(d.reason == "@bob cannot approve: approvals for this stage need write access to this repository, and @bob has " +
                          phrase + ".");
  }
}

TEST_CASE("with a 'from' list, only those listed may approve", "[commands]") {
  const auto gate = gate_from({"alice", "@acme/release-managers"});
  const Command approve = cmd(CommandKind::approve);

  SECTION("a listed login, compared case-insensitively, even with read access only") {
    auto login = GENERATE("alice", "Alice", "ALICE");
    auto d = authorize(approve, actor(login, Permission::read), gate, "carol", {});
    CHECK(d.accepted);
    CHECK(d.reason.empty());
  }
  SECTION("a member of a listed team, compared case-insensitively") {
    auto team = GENERATE("@acme/release-managers", "@ACME/Release-Managers");
    auto d = authorize(approve, actor("erin", Permission::none, {"@acme/sre", team}), gate, "carol", {});
    CHECK(d.accepted);
  }
  SECTION("write access alone is not enough") {
    auto permission = GENERATE(Permission::write, Permission::admin);
    auto d = authorize(approve, actor("bob", permission, {"@acme/sre"}), gate, "carol", {});
    CHECK_FALSE(d.accepted);
    CHECK(d.reason == "@bob cannot approve: approvals for this stage come from @alice or @acme/release-managers.");
  }
  SECTION("a login that only resembles a listed one, or a team of another org, does not count") {
    CHECK_FALSE(authorize(approve, actor("alice2", Permission::write), gate, "carol", {}).accepted);
    CHECK_FALSE(authorize(approve, actor("bob", Permission::write, {"@other/release-managers"}), gate, "carol", {}).accepted);
    // A team handle is not a login, and a login is not a team.
    CHECK_FALSE(authorize(approve, actor("release-managers", Permission::write), gate, "carol", {}).accepted);
    CHECK_FALSE(authorize(approve, actor("bob", Permission::write, {"alice"}), gate, "carol", {}).accepted);
  }
  SECTION("the refusal lists everyone who could approve") {
    auto [from, phrase] = GENERATE(table<std::vector<std::string>, std::string>({
        {{"alice"}, "@alice"},
        {{"@acme/sre"}, "@acme/sre"},
        {{"alice", "@acme/qa", "@acme/sre"}, "@alice, @acme/qa or @acme/sre"},
    }));
    auto d = authorize(approve, actor("bob", Permission::admin), gate_from(from), "carol", {});
    CHECK_FALSE(d.accepted);
    CHECK(d.reason == "@bob cannot approve: approvals for this stage come from " + phrase + ".");
  }
}

TEST_CASE("the author of the change cannot approve it unless the stage allows it", "[commands]") {
  const Command approve = cmd(CommandKind::approve);
  const std::string author_refusal =
      "@carol is the author of this change, and this stage does not allow authors to approve their own changes "
      "(approvals.allow_author: false).";

  SECTION("refused by default, even when listed or with admin access, comparing logins case-insensitively") {
    auto gate = GENERATE(as<std::optional<ApprovalGate>>{}, std::nullopt, gate_from({}), gate_from({"carol"}),
                         gate_from({"@acme/sre"}));
    auto author = GENERATE("carol", "Carol", "CAROL");
    auto d = authorize(approve, actor("carol", Permission::admin, {"@acme/sre"}), gate, author, {});
    CHECK_FALSE(d.accepted);
    CHECK(d.reason == author_refusal);
  }
  SECTION("allowed with allow_author: true, if otherwise entitled") {
    CHECK(authorize(approve, actor("carol", Permission::read), gate_from({"carol"}, true), "carol", {}).accepted);
    CHECK(authorize(approve, actor("carol", Permission::write), gate_from({}, true), "carol", {}).accepted);
  }
  SECTION("allow_author: true does not let an unlisted author approve") {
    auto d = authorize(approve, actor("carol", Permission::admin), gate_from({"alice"}, true), "carol", {});
    CHECK_FALSE(d.accepted);
    CHECK(d.reason == "@carol cannot approve: approvals for this stage come from @alice.");
  }
  SECTION("allow_author: true does not lower the write-access rule") {
    auto d = authorize(approve, actor("carol", Permission::read), gate_from({}, true), "carol", {});
    CHECK_FALSE(d.accepted);
    CHECK(d.reason == "@carol cannot approve: approvals for this stage need write access to this repository, and @carol has read access.");
  }
  SECTION("an unknown author matches nobody") {
    CHECK(authorize(approve, actor("carol", Permission::write), std::nullopt, "", {}).accepted);
  }
  SECTION("the author may still use the other commands") {
    CHECK(authorize(cmd(CommandKind::hold), actor("carol", Permission::write), std::nullopt, "carol", {}).accepted);
    CHECK(authorize(cmd(CommandKind::status), actor("carol", Permission::none), std::nullopt, "carol", {}).accepted);
  }
}

TEST_CASE("only an approver may withdraw, and only their own approval", "[commands]") {
  const Command unapprove = cmd(CommandKind::unapprove);
  const std::vector<std::string> approvers{"alice", "Erin"};

  SECTION("a current approver, compared case-insensitively, whatever their permission") {
    auto login = GENERATE("alice", "ALICE", "erin");
    auto d = authorize(unapprove, actor(login, Permission::none), gate_from({"bob"}), "carol", approvers);
    CHECK(d.accepted);
    CHECK(d.reason.empty());
  }
  SECTION("anyone else is refused, admins included") {
    auto approvers_now = GENERATE(as<std::vector<std::string>>{}, std::vector<std::string>{},
                                  std::vector<std::string>{"alice"});
    auto d = authorize(unapprove, actor("bob", Permission::admin), std::nullopt, "carol", approvers_now);
    CHECK_FALSE(d.accepted);
    CHECK(d.reason == "@bob cannot unapprove: @bob has no approval on the current head of this pull request to withdraw.");
  }
}

TEST_CASE("an actor without a login is named 'this user' and matches nothing", "[commands]") {
  auto d = authorize(cmd(CommandKind::unapprove), actor("", Permission::write), std::nullopt, "", {""});
  CHECK_FALSE(d.accepted);
  CHECK(d.reason == "this user cannot unapprove: this user has no approval on the current head of this pull request to withdraw.");
  CHECK_FALSE(authorize(cmd(CommandKind::approve), actor("", Permission::read), gate_from({"alice"}), "", {}).accepted);
}
