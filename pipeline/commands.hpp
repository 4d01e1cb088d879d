#pragma once
// Comment commands on promotion PRs (DESIGN.md, "Comment commands"): the grammar that finds them
// in a comment body, and the authorization decision for one command. No I/O: the service looks up
// what it needs about the actor (host permission, team membership) and passes it in.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/model.hpp"

namespace tollgate::pipeline {

enum class CommandKind { approve, unapprove, hold, unhold, retry, abort, rollback, status, help };

[[nodiscard]] const char* to_string(CommandKind kind);  // "approve", "unapprove", ...

struct Command {
  CommandKind kind = CommandKind::help;
  std::string argument;  // the rest of the line after the command word, trimmed ("note", "reason")
  int line = 0;          // 1-based line in the comment body
};

// A line that starts with '/' and a word that is not a known command (e.g. "/aprove"): reported so
// the service can reply with the command list and a "did you mean".
struct UnknownCommand {
  std::string word;                      // as written, without the slash
  std::optional<std::string> suggestion;  // closest known command, when one is close
  int line = 0;
};

struct ParsedComment {
  std::vector<Command> commands;  // in order of appearance
  std::vector<UnknownCommand> unknown;
};

// One command per line, at the start of the line (leading spaces allowed), case-insensitive; the
// command word must be followed by whitespace or the end of the line ("/approved" is not
// "/approve"). Lines inside fenced code blocks (``` or ~~~), indented code blocks (4+ spaces or a
// tab after a blank line), or block quotes ('>') are not commands. CRLF and LF both accepted.
// Never throws; any byte sequence is accepted as input.
[[nodiscard]] ParsedComment parse_comment(std::string_view body);

// What the service knows about the person who commented.
struct ActorFacts {
  std::string login;
  bool bot = false;
  enum class Permission { none, read, triage, write, maintain, admin } permission = Permission::none;
  std::vector<std::string> teams;  // "@org/team" handles the actor belongs to (only those asked about)
};

struct Decision {
  bool accepted = false;
  std::string reason;  // refused: why, in a sentence fit for a PR reply ("@bob is not in ...")
};

// Who may do what (DESIGN.md table). `gate` is the stage's approvals gate (absent: approvals need
// write access); `pr_author` is the author of the change being promoted (the source PR's author),
// used for allow_author; `current_approvers` are logins whose approval stands on the current head
// (for /unapprove: only an approver may withdraw, and only their own).
[[nodiscard]] Decision authorize(const Command& command, const ActorFacts& actor, const std::optional<ApprovalGate>& gate,
                                 std::string_view pr_author, const std::vector<std::string>& current_approvers);

}  // namespace tollgate::pipeline
