#pragma once
// Git's smart HTTP push (the receive-pack exchange of gitprotocol-http(5), protocol v0/v1), taken
// apart so every piece can be checked without a network: pkt-lines, the ref advertisement, the
// request, the report-status answer (inside side-band-64k or not), and the pack of exactly the
// objects a promotion commit adds.
//
// Why tollgate speaks it itself instead of calling git_remote_push: libgit2 1.5 computes what to
// send by marking the whole tree of every commit the host already has as uninteresting — on a
// 100,000-file repository that is ~20,000 tree reads (~350 ms) to send 5 objects. The objects a
// promotion adds are known from its two trees; walking only the paths where they differ costs
// microseconds, whatever the size of the repository.
#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <git2.h>
#include <tl/expected.hpp>

namespace tollgate::git::smart {

inline constexpr std::string_view kAdvertisementType = "application/x-git-receive-pack-advertisement";
inline constexpr std::string_view kRequestType = "application/x-git-receive-pack-request";
inline constexpr std::string_view kResultType = "application/x-git-receive-pack-result";
inline constexpr std::string_view kZeroId = "0000000000000000000000000000000000000000";

// 40 lower-case hex digits: an object id as git's protocols write it.
[[nodiscard]] bool is_hex_id(std::string_view s);

// One pkt-line: four hex digits of length (themselves included), then the payload.
[[nodiscard]] std::string pkt_line(std::string_view payload);

// One packet of a pkt-line stream: data, or a special packet — flush "0000", and protocol v2's
// delimiter "0001" and response-end "0002". `offset`: where it starts in the stream.
struct Packet {
  enum Kind { data, flush, delim, response_end } kind = data;
  std::string_view payload{};
  std::size_t offset = 0;
};

// Splits `data` into packets. Stops at the end of the data; a malformed or truncated line is an
// error naming its offset.
[[nodiscard]] tl::expected<std::vector<Packet>, std::string> split_packets(std::string_view data);

// Protocol v0/v1 (split_packets without v2's special packets): pkt-line payloads, a flush-pkt
// ("0000") as an empty optional.
[[nodiscard]] tl::expected<std::vector<std::optional<std::string_view>>, std::string> split_pkt_lines(std::string_view data);

struct Advertisement {
  std::map<std::string, std::string, std::less<>> refs;  // name → 40 hex digits
  std::set<std::string, std::less<>> capabilities;       // "report-status", "agent=git/2.39", ...
  [[nodiscard]] bool has(std::string_view capability) const { return capabilities.count(capability) != 0; }
};

// The body of GET <repo>/info/refs?service=git-receive-pack.
[[nodiscard]] tl::expected<Advertisement, std::string> parse_advertisement(std::string_view body);

// The body of POST <repo>/git-receive-pack updating one ref from `old_id` (kZeroId: create) to
// `new_id`, asking for the given capabilities, followed by the pack.
[[nodiscard]] std::string receive_pack_request(std::string_view old_id, std::string_view new_id, std::string_view ref,
                                               const std::vector<std::string>& capabilities, std::string_view pack);

struct Report {
  std::string unpack;  // "ok", or the server's reason the pack was not accepted
  std::vector<std::pair<std::string, std::optional<std::string>>> refs;  // ref → the reason it was refused ("ng")
  std::string messages;  // side-band 2 text: hook output, progress (capped at 4 KiB)
  std::string fatal;     // side-band 3 text: the server gave up
};

// The answer to the POST: report-status lines, inside side-band-64k when `sideband` was asked for.
[[nodiscard]] tl::expected<Report, std::string> parse_report(std::string_view body, bool sideband);

struct Pack {
  std::string bytes;
  std::size_t objects = 0;
};

// A pack holding `commit`, and the trees and blobs of its tree that are not in `parent_tree` (the
// tree of the commit's parent, which the host has). Only paths where the two trees differ are
// walked. Gitlinks (submodules) are not objects of this repository and are left out.
[[nodiscard]] tl::expected<Pack, std::string> build_pack(git_repository* repo, const git_oid& commit,
                                                        const git_tree* parent_tree);

// RFC 4648 base64, for the Basic authorization header.
[[nodiscard]] std::string base64(std::string_view data);

}  // namespace tollgate::git::smart
