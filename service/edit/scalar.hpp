#pragma once
// YAML scalar text: what a plain scalar means, how far a scalar reaches in the text, and how to
// write a value in each style.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace tollgate::edit {

// What a plain (unquoted) scalar resolves to under the YAML 1.2 core schema or under YAML 1.1,
// which Helm, kustomize and much Go tooling still apply (`yes`, `on`, `0777`, `1_000`, `12:30`).
// A string is only a string if both agree.
enum class PlainKind { string, null, boolean, integer, floating, timestamp, special };

[[nodiscard]] PlainKind classify_plain(std::string_view s);
[[nodiscard]] const char* describe(PlainKind kind);  // "a number", "a boolean", ...

// Whether `s` can be written as a plain scalar that reads back as exactly `s` (ignoring what it
// resolves to). `in_flow`: inside [...] or {...}, where ",[]{}" end a plain scalar.
[[nodiscard]] bool plain_syntax_ok(std::string_view s, bool in_flow);

// Whether `s` can be written single-quoted on one line (no characters that need escapes).
[[nodiscard]] bool single_quote_ok(std::string_view s);

// `s` quoted; the double-quoted form is valid YAML and valid JSON (escapes both understand).
[[nodiscard]] std::string single_quoted(std::string_view s);
[[nodiscard]] std::string double_quoted(std::string_view s);

// Past an anchor and tag at `pos` (`&a !!str `) and the blanks after them; `pos` if none.
[[nodiscard]] std::size_t skip_properties(std::string_view text, std::size_t pos);

// Past spaces, tabs, line breaks and comments.
[[nodiscard]] std::size_t skip_blanks(std::string_view text, std::size_t pos);

// One past the last byte of a plain, quoted or block scalar starting at `content` whose parsed
// value is `value`; nothing if the text there does not read as that value.
[[nodiscard]] std::optional<std::size_t> plain_end(std::string_view text, std::size_t content, bool in_flow,
                                                   std::string_view value);
[[nodiscard]] std::optional<std::size_t> quoted_end(std::string_view text, std::size_t content);
[[nodiscard]] std::optional<std::size_t> block_end(std::string_view text, std::size_t content,
                                                   std::string_view value);

// The text that replaces a block scalar (`|` / `>` header through its last content line) so it
// holds `value`: same indentation, header comment and line breaks; the chomping indicator follows
// the value's trailing line break, and a folded scalar of several lines becomes literal. Nothing
// if the value cannot be written as a block scalar there (empty, control characters, a leading
// space without an indentation indicator, several trailing line breaks, no content lines to
// take the indentation from).
[[nodiscard]] std::optional<std::string> rewrite_block(std::string_view text, std::size_t content,
                                                       std::size_t end, std::string_view value);

}  // namespace tollgate::edit
