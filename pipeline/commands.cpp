#include "pipeline/commands.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <utility>

#include "pipeline/suggest.hpp"
#include "pipeline/utf8.hpp"

namespace tollgate::pipeline {

namespace {

// Arguments end up in the audit log and in PR replies; a note longer than this is cut, not refused.
constexpr std::size_t max_argument_bytes = 500;
// An unknown word is echoed back in a reply ("unknown command '/...'"); keep that reply short.
constexpr std::size_t max_word_bytes = 100;
// "did you mean" only for plausible typos: at most this many edits away from a known command.
constexpr std::size_t max_suggestion_distance = 2;

struct KnownCommand {
  std::string_view word;
  CommandKind kind;
};

// Also the tie-break order for suggestions.
constexpr std::array<KnownCommand, 9> known_commands{{
    {"approve", CommandKind::approve},
    {"unapprove", CommandKind::unapprove},
    {"hold", CommandKind::hold},
    {"unhold", CommandKind::unhold},
    {"retry", CommandKind::retry},
    {"abort", CommandKind::abort},
    {"rollback", CommandKind::rollback},
    {"status", CommandKind::status},
    {"help", CommandKind::help},
}};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }
bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// A valid UTF-8 copy of `s` of at most `max` bytes: ill-formed bytes become U+FFFD (the result is
// echoed into JSON and PR replies), and the cut never splits a character.
std::string clean_utf8(std::string_view s, std::size_t max) {
  static constexpr std::string_view replacement = "\xEF\xBF\xBD";
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = utf8_sequence_length(s, i);
    std::string_view ch = n == 0 ? replacement : s.substr(i, n);
    if (out.size() + ch.size() > max) break;
    out += ch;
    i += n == 0 ? 1 : n;
  }
  return out;
}

std::optional<std::string> suggest(std::string_view word) {
  // Longer words cannot be within the distance of any known command; skip the quadratic work.
  if (word.size() > 9 + max_suggestion_distance) return std::nullopt;
  const KnownCommand* best = nullptr;
  std::size_t best_distance = max_suggestion_distance + 1;
  for (const auto& known : known_commands) {
    std::size_t d = edit_distance(word, known.word);
    if (d < best_distance) {
      best_distance = d;
      best = &known;
    }
  }
  if (best == nullptr) return std::nullopt;
  return std::string(best->word);
}

// Markdown block structure, as far as it decides whether a line can hold a command. This is a
// line-by-line approximation of CommonMark, not a full parser:
// - fenced code: a line of 3+ '`' or '~' after at most 3 spaces opens a fence (a '`' fence's info
//   string may not contain '`', so "```x```" is inline code, not a fence); it is closed by a line
//   of at most 3 spaces, the same character repeated at least as many times, then only whitespace.
//   An unclosed fence runs to the end of the body. Everything between is code.
// - indented code: a non-blank line indented by 4+ columns (a tab counts to the next multiple of 4)
//   starts a code block only when the line before it is blank, the start of the body, or a closing
//   fence (it cannot interrupt a paragraph, as in CommonMark). The block continues through blank
//   lines and lines indented 4+ columns, and ends at the first less-indented non-blank line.
// - block quote: a line whose first character after at most 3 spaces is '>'. Lazy continuation lines
//   (a non-'>' line right after a quote) are NOT treated as quoted, and neither is a fence opened
//   inside a quote.
// Not recognised: list items (a fence inside "- " or "1. " is not seen as one), HTML blocks and
// comments ("<!--" ... "-->").
class BlockTracker {
 public:
  // True when the line is markdown prose where a command may stand.
  bool is_prose(std::string_view line) {
    const bool blank = trim(line).empty();
    if (fence_char_ != 0) {
      if (closes_fence(line)) {
        fence_char_ = 0;
        after_boundary_ = true;
      }
      return false;
    }
    const bool boundary = after_boundary_;
    after_boundary_ = blank;
    const std::size_t indent = indent_columns(line);
    if (in_indented_code_) {
      if (blank || indent >= 4) return false;
      in_indented_code_ = false;
    } else if (!blank && indent >= 4 && boundary) {
      in_indented_code_ = true;
      return false;
    }
    std::size_t spaces = 0;
    while (spaces < line.size() && spaces < 4 && line[spaces] == ' ') ++spaces;
    if (spaces <= 3) {
      std::string_view rest = line.substr(spaces);
      if (opens_fence(rest)) return false;
      if (!rest.empty() && rest.front() == '>') return false;
    }
    return true;
  }

 private:
  static std::size_t indent_columns(std::string_view line) {
    std::size_t col = 0;
    for (char c : line) {
      if (c == ' ') {
        ++col;
      } else if (c == '\t') {
        col += 4 - col % 4;
      } else {
        break;
      }
    }
    return col;
  }

  static std::size_t run_length(std::string_view s, char c) {
    std::size_t n = 0;
    while (n < s.size() && s[n] == c) ++n;
    return n;
  }

  bool opens_fence(std::string_view rest) {
    if (rest.empty() || (rest.front() != '`' && rest.front() != '~')) return false;
    const char c = rest.front();
    const std::size_t n = run_length(rest, c);
    if (n < 3) return false;
    if (c == '`' && rest.substr(n).find('`') != std::string_view::npos) return false;
    fence_char_ = c;
    fence_length_ = n;
    return true;
  }

  bool closes_fence(std::string_view line) const {
    std::size_t spaces = 0;
    while (spaces < line.size() && line[spaces] == ' ') ++spaces;
    if (spaces > 3) return false;
    std::string_view rest = line.substr(spaces);
    const std::size_t n = run_length(rest, fence_char_);
    return n >= fence_length_ && trim(rest.substr(n)).empty();
  }

  char fence_char_ = 0;  // 0: not in a fenced block
  std::size_t fence_length_ = 0;
  bool in_indented_code_ = false;
  bool after_boundary_ = true;  // the previous line was blank, a closing fence, or there was none
};

// A command attempt on one prose line: the first non-whitespace character is '/' and the next one
// an ASCII letter; the word runs to the next whitespace.
void parse_line(std::string_view line, int line_no, ParsedComment& out) {
  std::size_t i = 0;
  while (i < line.size() && is_space(line[i])) ++i;
  if (i + 1 >= line.size() || line[i] != '/' || !is_letter(line[i + 1])) return;
  std::size_t word_start = i + 1, word_end = word_start;
  while (word_end < line.size() && !is_space(line[word_end])) ++word_end;
  const std::string_view word = line.substr(word_start, word_end - word_start);
  for (const auto& known : known_commands) {
    if (iequals(word, known.word)) {
      out.commands.push_back(Command{known.kind, clean_utf8(trim(line.substr(word_end)), max_argument_bytes), line_no});
      return;
    }
  }
  out.unknown.push_back(UnknownCommand{clean_utf8(word, max_word_bytes), suggest(word), line_no});
}

// --- authorization ---

std::string mention(std::string_view login) {
  if (login.empty()) return "this user";
  return "@" + clean_utf8(login, 200);
}

bool has_write_access(ActorFacts::Permission p) {
  return p == ActorFacts::Permission::write || p == ActorFacts::Permission::maintain || p == ActorFacts::Permission::admin;
}

const char* access_phrase(ActorFacts::Permission p) {
  switch (p) {
    case ActorFacts::Permission::none: return "no access";
    case ActorFacts::Permission::read: return "read access";
    case ActorFacts::Permission::triage: return "triage access";
    case ActorFacts::Permission::write: return "write access";
    case ActorFacts::Permission::maintain: return "maintain access";
    case ActorFacts::Permission::admin: return "admin access";
  }
  return "no access";
}

std::string_view without_at(std::string_view s) {
  if (!s.empty() && s.front() == '@') s.remove_prefix(1);
  return s;
}

bool is_team(std::string_view principal) { return principal.find('/') != std::string_view::npos; }

// `from` entries: "login" (compared with the actor's login) or "@org/team" (looked up in the
// teams the service found the actor in). Case-insensitive; a stray '@' on either side is ignored.
bool listed(const std::vector<std::string>& from, const ActorFacts& actor) {
  return std::any_of(from.begin(), from.end(), [&](const std::string& entry) {
    if (!is_team(entry)) return !actor.login.empty() && iequals(without_at(entry), without_at(actor.login));
    return std::any_of(actor.teams.begin(), actor.teams.end(),
                       [&](const std::string& team) { return iequals(without_at(entry), without_at(team)); });
  });
}

// "@alice", "@alice or @acme/sre", "@alice, @bob or @acme/sre".
std::string principals_phrase(const std::vector<std::string>& from) {
  std::string out;
  for (std::size_t i = 0; i < from.size(); ++i) {
    if (i > 0) out += i + 1 == from.size() ? " or " : ", ";
    out += "@" + clean_utf8(without_at(from[i]), 200);
  }
  return out;
}

Decision accept() { return Decision{true, ""}; }
Decision refuse(std::string reason) { return Decision{false, std::move(reason)}; }

Decision needs_write(const Command& command, const ActorFacts& actor) {
  if (has_write_access(actor.permission)) return accept();
  const std::string who = mention(actor.login);
  return refuse(who + " cannot use /" + to_string(command.kind) + ": it needs write access to this repository, and " + who +
                " has " + access_phrase(actor.permission) + ".");
}

}  // namespace

const char* to_string(CommandKind kind) {
  for (const auto& known : known_commands) {
    if (known.kind == kind) return known.word.data();  // the literals are NUL-terminated
  }
  return "unknown";
}

ParsedComment parse_comment(std::string_view body) {
  ParsedComment out;
  BlockTracker blocks;
  int line_no = 0;
  std::size_t pos = 0;
  while (true) {
    ++line_no;
    const std::size_t nl = body.find('\n', pos);
    std::string_view line = body.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (blocks.is_prose(line)) parse_line(line, line_no, out);
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return out;
}

Decision authorize(const Command& command, const ActorFacts& actor, const std::optional<ApprovalGate>& gate,
                   std::string_view pr_author, const std::vector<std::string>& current_approvers) {
  const std::string who = mention(actor.login);
  if (actor.bot) return refuse(who + " is a bot, and tollgate ignores commands from bots.");
  switch (command.kind) {
    case CommandKind::status:
    case CommandKind::help:
      return accept();
    case CommandKind::hold:
    case CommandKind::unhold:
    case CommandKind::retry:
    case CommandKind::abort:
    case CommandKind::rollback:
      return needs_write(command, actor);
    case CommandKind::unapprove: {
      const bool approved = !actor.login.empty() && std::any_of(current_approvers.begin(), current_approvers.end(), [&](const std::string& a) {
                              return iequals(without_at(a), without_at(actor.login));
                            });
      if (approved) return accept();
      return refuse(who + " cannot unapprove: " + who + " has no approval on the current head of this pull request to withdraw.");
    }
    case CommandKind::approve: {
      const bool allow_author = gate && gate->allow_author;
      if (!allow_author && !pr_author.empty() && iequals(without_at(pr_author), without_at(actor.login))) {
        return refuse(who +
                      " is the author of this change, and this stage does not allow authors to approve their own changes "
                      "(approvals.allow_author: false).");
      }
      if (gate && !gate->from.empty()) {
        if (listed(gate->from, actor)) return accept();
        return refuse(who + " cannot approve: approvals for this stage come from " + principals_phrase(gate->from) + ".");
      }
      if (has_write_access(actor.permission)) return accept();
      return refuse(who + " cannot approve: approvals for this stage need write access to this repository, and " + who + " has " +
                    access_phrase(actor.permission) + ".");
    }
  }
  return refuse(who + " sent a command tollgate does not know.");
}

}  // namespace tollgate::pipeline
