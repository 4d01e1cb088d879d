#include "service/git/smart_http.hpp"

#include <charconv>

#include "service/git/libgit2.hpp"

namespace tollgate::git::smart {
namespace {

constexpr std::size_t kMaxPktLen = 65520;  // gitprotocol-common(5): LARGE_PACKET_MAX
constexpr std::size_t kMessageCap = 4096;

std::string_view chomp(std::string_view s) {
  if (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return s;
}

}  // namespace

bool is_hex_id(std::string_view s) {
  if (s.size() != 40) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string pkt_line(std::string_view payload) {
  static constexpr char kHex[] = "0123456789abcdef";
  const std::size_t n = payload.size() + 4;
  std::string out;
  out.reserve(n);
  out += kHex[(n >> 12) & 0xf];
  out += kHex[(n >> 8) & 0xf];
  out += kHex[(n >> 4) & 0xf];
  out += kHex[n & 0xf];
  out += payload;
  return out;
}

tl::expected<std::vector<Packet>, std::string> split_packets(std::string_view data) {
  std::vector<Packet> packets;
  std::size_t pos = 0;
  while (pos < data.size()) {
    if (data.size() - pos < 4) {
      return tl::unexpected("truncated pkt-line length at byte " + std::to_string(pos));
    }
    unsigned len = 0;
    auto [end, ec] = std::from_chars(data.data() + pos, data.data() + pos + 4, len, 16);
    if (ec != std::errc{} || end != data.data() + pos + 4) {
      return tl::unexpected("malformed pkt-line length at byte " + std::to_string(pos));
    }
    if (len <= 2) {
      packets.push_back({len == 0 ? Packet::flush : len == 1 ? Packet::delim : Packet::response_end, {}, pos});
      pos += 4;
      continue;
    }
    if (len < 4 || len > kMaxPktLen) {
      return tl::unexpected("unexpected pkt-line length " + std::to_string(len) + " at byte " + std::to_string(pos));
    }
    if (data.size() - pos < len) {
      return tl::unexpected("pkt-line at byte " + std::to_string(pos) + " is cut short");
    }
    packets.push_back({Packet::data, data.substr(pos + 4, len - 4), pos});
    pos += len;
  }
  return packets;
}

tl::expected<std::vector<std::optional<std::string_view>>, std::string> split_pkt_lines(std::string_view data) {
  auto packets = split_packets(data);
  if (!packets) return tl::unexpected(packets.error());
  std::vector<std::optional<std::string_view>> lines;
  lines.reserve(packets->size());
  for (const auto& p : *packets) {
    switch (p.kind) {
      case Packet::data: lines.emplace_back(p.payload); break;
      case Packet::flush: lines.emplace_back(std::nullopt); break;
      default:
        // 0001 and 0002 belong to protocol v2, which this exchange never asks for.
        return tl::unexpected("unexpected pkt-line length " + std::to_string(p.kind == Packet::delim ? 1 : 2) +
                              " at byte " + std::to_string(p.offset));
    }
  }
  return lines;
}

tl::expected<Advertisement, std::string> parse_advertisement(std::string_view body) {
  auto lines = split_pkt_lines(body);
  if (!lines) return tl::unexpected("ref advertisement: " + lines.error());
  auto& l = *lines;
  // "# service=git-receive-pack\n", a flush, then the refs and a flush.
  if (l.size() < 2 || !l[0] || chomp(*l[0]) != "# service=git-receive-pack" || l[1]) {
    return tl::unexpected(std::string("ref advertisement: not a smart HTTP answer for git-receive-pack"));
  }
  Advertisement ad;
  bool first = true;
  bool flushed = false;
  for (std::size_t i = 2; i < l.size(); ++i) {
    if (!l[i]) {
      flushed = true;
      break;
    }
    std::string_view line = chomp(*l[i]);
    if (first) {
      first = false;
      auto nul = line.find('\0');
      if (nul == std::string_view::npos) return tl::unexpected(std::string("ref advertisement: no capabilities"));
      std::string_view caps = line.substr(nul + 1);
      line = line.substr(0, nul);
      while (!caps.empty()) {
        auto sp = caps.find(' ');
        if (sp != 0) ad.capabilities.emplace(caps.substr(0, sp));
        if (sp == std::string_view::npos) break;
        caps.remove_prefix(sp + 1);
      }
    }
    auto sp = line.find(' ');
    if (sp != 40 || !is_hex_id(line.substr(0, 40)) || line.size() <= 41) {
      return tl::unexpected("ref advertisement: malformed ref line " + std::to_string(i - 1));
    }
    std::string_view name = line.substr(41);
    if (name == "capabilities^{}") continue;  // an empty repository: capabilities only
    ad.refs.emplace(std::string(name), std::string(line.substr(0, 40)));
  }
  if (!flushed) return tl::unexpected(std::string("ref advertisement: cut short (no closing flush)"));
  if (first) return tl::unexpected(std::string("ref advertisement: no refs and no capabilities"));
  return ad;
}

std::string receive_pack_request(std::string_view old_id, std::string_view new_id, std::string_view ref,
                                 const std::vector<std::string>& capabilities, std::string_view pack) {
  std::string command;
  command.append(old_id).append(" ").append(new_id).append(" ").append(ref);
  command += '\0';
  for (std::size_t i = 0; i < capabilities.size(); ++i) {
    if (i != 0) command += ' ';
    command += capabilities[i];
  }
  command += '\n';
  std::string out = pkt_line(command);
  out += "0000";
  out.append(pack);
  return out;
}

tl::expected<Report, std::string> parse_report(std::string_view body, bool sideband) {
  Report report;
  std::string inner_storage;
  std::string_view inner = body;
  if (sideband) {
    auto lines = split_pkt_lines(body);
    if (!lines) return tl::unexpected("push answer: " + lines.error());
    for (const auto& l : *lines) {
      if (!l) continue;
      if (l->empty()) return tl::unexpected(std::string("push answer: side-band line without a band"));
      std::string_view data = l->substr(1);
      switch ((*l)[0]) {
        case 1: inner_storage.append(data); break;
        case 2:
          if (report.messages.size() < kMessageCap) report.messages.append(data.substr(0, kMessageCap - report.messages.size()));
          break;
        case 3: report.fatal.append(chomp(data)); break;
        default: return tl::unexpected("push answer: unknown side-band " + std::to_string(static_cast<int>((*l)[0])));
      }
    }
    if (!report.fatal.empty()) return report;
    inner = inner_storage;
  }
  auto lines = split_pkt_lines(inner);
  if (!lines) return tl::unexpected("push answer: report-status: " + lines.error());
  bool have_unpack = false;
  for (const auto& l : *lines) {
    if (!l) break;
    std::string_view line = chomp(*l);
    if (!have_unpack) {
      if (line.rfind("unpack ", 0) != 0) return tl::unexpected(std::string("push answer: report-status does not start with 'unpack'"));
      report.unpack = std::string(line.substr(7));
      have_unpack = true;
    } else if (line.rfind("ok ", 0) == 0) {
      report.refs.emplace_back(std::string(line.substr(3)), std::nullopt);
    } else if (line.rfind("ng ", 0) == 0) {
      std::string_view rest = line.substr(3);
      auto sp = rest.find(' ');
      std::string reason = sp == std::string_view::npos ? std::string("refused") : std::string(rest.substr(sp + 1));
      report.refs.emplace_back(std::string(rest.substr(0, sp)), std::move(reason));
    } else {
      return tl::unexpected("push answer: unexpected report-status line '" + std::string(line.substr(0, 80)) + "'");
    }
  }
  if (!have_unpack) return tl::unexpected(std::string("push answer: no report-status"));
  return report;
}

namespace {

// Adds to `pb` the entries of `now` that `before` (nullable) lacks, descending only into subtrees
// that differ.
int add_new_entries(git_repository* repo, git_packbuilder* pb, const git_tree* now, const git_tree* before,
                    std::size_t& objects) {
  const std::size_t n = git_tree_entrycount(now);
  for (std::size_t i = 0; i < n; ++i) {
    const git_tree_entry* entry = git_tree_entry_byindex(now, i);
    const git_oid* id = git_tree_entry_id(entry);
    const git_tree_entry* old = before != nullptr ? git_tree_entry_byname(before, git_tree_entry_name(entry)) : nullptr;
    if (old != nullptr && git_oid_equal(git_tree_entry_id(old), id) != 0) continue;
    const git_object_t type = git_tree_entry_type(entry);
    if (type == GIT_OBJECT_BLOB) {
      if (int rc = git_packbuilder_insert(pb, id, git_tree_entry_name(entry)); rc < 0) return rc;
      ++objects;
    } else if (type == GIT_OBJECT_TREE) {
      if (int rc = git_packbuilder_insert(pb, id, git_tree_entry_name(entry)); rc < 0) return rc;
      ++objects;
      git_tree* raw = nullptr;
      if (int rc = git_tree_lookup(&raw, repo, id); rc < 0) return rc;
      lg::Tree sub(raw);
      lg::Tree old_sub;
      if (old != nullptr && git_tree_entry_type(old) == GIT_OBJECT_TREE) {
        if (int rc = git_tree_lookup(&raw, repo, git_tree_entry_id(old)); rc < 0) return rc;
        old_sub.reset(raw);
      }
      if (int rc = add_new_entries(repo, pb, sub.get(), old_sub.get(), objects); rc < 0) return rc;
    }
    // GIT_OBJECT_COMMIT: a submodule's commit lives in another repository.
  }
  return 0;
}

}  // namespace

tl::expected<Pack, std::string> build_pack(git_repository* repo, const git_oid& commit, const git_tree* parent_tree) {
  git_packbuilder* raw_pb = nullptr;
  if (int rc = git_packbuilder_new(&raw_pb, repo); rc < 0) return tl::unexpected("pack: " + lg::error_message(rc));
  lg::Owned<git_packbuilder, git_packbuilder_free> pb(raw_pb);
  git_packbuilder_set_threads(pb.get(), 1);
  git_commit* raw_commit = nullptr;
  if (int rc = git_commit_lookup(&raw_commit, repo, &commit); rc < 0) return tl::unexpected("pack: " + lg::error_message(rc));
  lg::Commit c(raw_commit);
  git_tree* raw_tree = nullptr;
  if (int rc = git_commit_tree(&raw_tree, c.get()); rc < 0) return tl::unexpected("pack: " + lg::error_message(rc));
  lg::Tree tree(raw_tree);

  Pack pack;
  if (int rc = git_packbuilder_insert(pb.get(), &commit, nullptr); rc < 0) return tl::unexpected("pack: " + lg::error_message(rc));
  ++pack.objects;
  if (parent_tree == nullptr || git_oid_equal(git_tree_id(tree.get()), git_tree_id(parent_tree)) == 0) {
    if (int rc = git_packbuilder_insert(pb.get(), git_tree_id(tree.get()), nullptr); rc < 0) {
      return tl::unexpected("pack: " + lg::error_message(rc));
    }
    ++pack.objects;
    if (int rc = add_new_entries(repo, pb.get(), tree.get(), parent_tree, pack.objects); rc < 0) {
      return tl::unexpected("pack: " + lg::error_message(rc));
    }
  }
  git_buf buf = GIT_BUF_INIT;
  if (int rc = git_packbuilder_write_buf(&buf, pb.get()); rc < 0) {
    git_buf_dispose(&buf);
    return tl::unexpected("pack: " + lg::error_message(rc));
  }
  pack.bytes.assign(buf.ptr, buf.size);
  git_buf_dispose(&buf);
  return pack;
}

std::string base64(std::string_view data) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(data[i]) << 16) | (static_cast<unsigned char>(data[i + 1]) << 8) |
                       static_cast<unsigned char>(data[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (const std::size_t rest = data.size() - i; rest > 0) {
    unsigned v = static_cast<unsigned char>(data[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(data[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace tollgate::git::smart
