#pragma once
// Git's fetch over smart HTTP in protocol v2 (gitprotocol-v2(5), gitprotocol-http(5)), taken apart
// so every piece can be checked without a network: the capability advertisement, the ls-refs
// request and answer, the fetch request and the packfile section of its answer.
//
// Why tollgate speaks it itself for fetches into an existing mirror: libgit2 1.5 speaks protocol
// v0, where the host's upload-pack lists every ref of the repository twice per fetch (for the GET
// and again for the POST) — an environment repository collects a branch per promotion, so that is
// hundreds to thousands of refs read from disk and sent for the one branch wanted. In v2 the
// client names the refs it wants listed (ref-prefix), and a mirror that already holds the host's
// tip skips the pack request entirely.
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

namespace tollgate::git::smart {

inline constexpr std::string_view kUploadAdvertisementType = "application/x-git-upload-pack-advertisement";
inline constexpr std::string_view kUploadRequestType = "application/x-git-upload-pack-request";
inline constexpr std::string_view kUploadResultType = "application/x-git-upload-pack-result";

// The capabilities of a protocol v2 advertisement: "ls-refs" → "unborn", "fetch" → "shallow
// wait-for-done", "agent" → "git/2.39.2", "object-format" → "sha1" (the value is empty when none).
struct V2Capabilities {
  std::map<std::string, std::string, std::less<>> caps;
  [[nodiscard]] bool has(std::string_view name) const { return caps.count(name) != 0; }
};

// The body of GET <repo>/info/refs?service=git-upload-pack sent with "Git-Protocol: version=2".
// nullopt: the host answered with a protocol v0 ref advertisement (it does not speak v2, or its
// git is older than 2.18). A body that is neither is an error.
[[nodiscard]] tl::expected<std::optional<V2Capabilities>, std::string> parse_v2_capabilities(std::string_view body);

// `command=ls-refs` listing the refs that start with one of `prefixes` (no peeling, no symrefs).
[[nodiscard]] std::string ls_refs_request(const std::vector<std::string>& prefixes);

// The answer to ls-refs: ref name → 40 hex digits. Attributes after the name are ignored.
[[nodiscard]] tl::expected<std::map<std::string, std::string, std::less<>>, std::string> parse_ls_refs(
    std::string_view body);

// `command=fetch` for `wants` with `haves` (40 hex digits each) and "done": the host answers with
// the pack at once, without negotiation rounds. ofs-delta, no thin pack (a thin pack's bases would
// have to be found in the mirror), no progress text.
[[nodiscard]] std::string fetch_request(const std::vector<std::string>& wants, const std::vector<std::string>& haves);

struct FetchedPack {
  std::string pack;      // side band 1: the packfile's bytes
  std::string messages;  // side band 2: progress text (capped at 4 KiB)
};

// The answer to a fetch sent with "done": optional sections (acknowledgments, shallow-info,
// wanted-refs, packfile-uris) skipped, then the packfile section in side-band-64k. An "ERR" line
// or side band 3 is the host's error message; a missing packfile section or closing flush is an
// error too (an answer cut short).
[[nodiscard]] tl::expected<FetchedPack, std::string> parse_fetch_response(std::string_view body);

}  // namespace tollgate::git::smart
