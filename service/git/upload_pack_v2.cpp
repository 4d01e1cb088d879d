#include "service/git/upload_pack_v2.hpp"

#include <vector>


#include "service/git/smart_http.hpp"

namespace tollgate::git::smart {
namespace {

constexpr std::size_t kMessageCap = 4096;

std::string_view chomp(std::string_view s) {
  if (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return s;
}

std::string excerpt(std::string_view s) {
  std::string out(s.substr(0, 80));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) == 0x7f) c = '?';
  }
  return out;
}

}  // namespace

tl::expected<std::optional<V2Capabilities>, std::string> parse_v2_capabilities(std::string_view body) {
  auto pkts = split_packets(body);
  if (!pkts) return tl::unexpected("capability advertisement: " + pkts.error());
  std::size_t i = 0;
  const auto& p = *pkts;
  // git http-backend leaves out the "# service=" preamble for v2; other hosts keep it.
  if (i < p.size() && p[i].kind == Packet::data && chomp(p[i].payload) == "# service=git-upload-pack") {
    ++i;
    if (i >= p.size() || p[i].kind != Packet::flush) {
      return tl::unexpected(std::string("capability advertisement: no flush after the service line"));
    }
    ++i;
  }
  if (i >= p.size() || p[i].kind != Packet::data) {
    return tl::unexpected(std::string("capability advertisement: empty"));
  }
  if (chomp(p[i].payload) != "version 2") {
    // Protocol v0: the first line is a ref (or "capabilities^{}") and its capabilities.
    const std::string_view first = p[i].payload;
    if (first.size() > 41 && is_hex_id(first.substr(0, 40)) && first[40] == ' ') return std::nullopt;
    return tl::unexpected("capability advertisement: neither 'version 2' nor a ref advertisement: '" + excerpt(first) + "'");
  }
  V2Capabilities out;
  for (++i; i < p.size(); ++i) {
    if (p[i].kind == Packet::flush) return out;
    if (p[i].kind != Packet::data) return tl::unexpected(std::string("capability advertisement: unexpected special packet"));
    std::string_view line = chomp(p[i].payload);
    auto eq = line.find('=');
    if (line.empty() || eq == 0) return tl::unexpected("capability advertisement: malformed line '" + excerpt(line) + "'");
    if (eq == std::string_view::npos) {
      out.caps.emplace(std::string(line), std::string());
    } else {
      out.caps.emplace(std::string(line.substr(0, eq)), std::string(line.substr(eq + 1)));
    }
  }
  return tl::unexpected(std::string("capability advertisement: cut short (no closing flush)"));
}

std::string ls_refs_request(const std::vector<std::string>& prefixes) {
  std::string out = pkt_line("command=ls-refs\n");
  out += pkt_line("agent=tollgate\n");
  out += "0001";
  for (const auto& prefix : prefixes) out += pkt_line("ref-prefix " + prefix + "\n");
  out += "0000";
  return out;
}

tl::expected<std::map<std::string, std::string, std::less<>>, std::string> parse_ls_refs(std::string_view body) {
  auto pkts = split_packets(body);
  if (!pkts) return tl::unexpected("ls-refs answer: " + pkts.error());
  std::map<std::string, std::string, std::less<>> refs;
  for (const auto& pkt : *pkts) {
    if (pkt.kind == Packet::flush) return refs;
    if (pkt.kind != Packet::data) return tl::unexpected(std::string("ls-refs answer: unexpected special packet"));
    std::string_view line = chomp(pkt.payload);
    if (line.rfind("ERR ", 0) == 0) return tl::unexpected("the host answered ls-refs with an error: " + excerpt(line.substr(4)));
    // "<oid> <name>[ symref-target:<t>][ peeled:<oid>]"; "unborn" lines only come when asked for.
    if (line.size() < 42 || !is_hex_id(line.substr(0, 40)) || line[40] != ' ') {
      return tl::unexpected("ls-refs answer: malformed line '" + excerpt(line) + "'");
    }
    std::string_view name = line.substr(41);
    name = name.substr(0, name.find(' '));
    if (name.empty()) return tl::unexpected("ls-refs answer: malformed line '" + excerpt(line) + "'");
    refs.emplace(std::string(name), std::string(line.substr(0, 40)));
  }
  return tl::unexpected(std::string("ls-refs answer: cut short (no closing flush)"));
}

std::string fetch_request(const std::vector<std::string>& wants, const std::vector<std::string>& haves) {
  std::string out = pkt_line("command=fetch\n");
  out += pkt_line("agent=tollgate\n");
  out += "0001";
  out += pkt_line("ofs-delta\n");
  out += pkt_line("no-progress\n");
  for (const auto& id : wants) out += pkt_line("want " + id + "\n");
  for (const auto& id : haves) out += pkt_line("have " + id + "\n");
  out += pkt_line("done\n");
  out += "0000";
  return out;
}

tl::expected<FetchedPack, std::string> parse_fetch_response(std::string_view body) {
  auto pkts = split_packets(body);
  if (!pkts) return tl::unexpected("fetch answer: " + pkts.error());
  const auto& p = *pkts;
  FetchedPack out;
  std::size_t i = 0;
  // Sections before the pack: each a header line, its lines, and a delimiter.
  while (true) {
    if (i >= p.size()) return tl::unexpected(std::string("fetch answer: no packfile section"));
    if (p[i].kind != Packet::data) return tl::unexpected(std::string("fetch answer: a special packet where a section should start"));
    std::string_view header = chomp(p[i].payload);
    if (header.rfind("ERR ", 0) == 0) return tl::unexpected("the host answered the fetch with an error: " + excerpt(header.substr(4)));
    ++i;
    if (header == "packfile") break;
    if (header != "acknowledgments" && header != "shallow-info" && header != "wanted-refs" && header != "packfile-uris") {
      return tl::unexpected("fetch answer: unknown section '" + excerpt(header) + "'");
    }
    while (i < p.size() && p[i].kind == Packet::data) ++i;
    if (i >= p.size()) return tl::unexpected("fetch answer: section '" + std::string(header) + "' cut short");
    if (p[i].kind != Packet::delim) {
      // Only acknowledgments may end the answer (no "ready": the host wants more haves) — which
      // cannot happen after "done".
      return tl::unexpected("fetch answer: the host sent no pack (section '" + std::string(header) + "' ends the answer)");
    }
    ++i;
  }
  for (; i < p.size(); ++i) {
    if (p[i].kind == Packet::flush) {
      if (out.pack.empty()) return tl::unexpected(std::string("fetch answer: the packfile section is empty"));
      return out;
    }
    if (p[i].kind != Packet::data) return tl::unexpected(std::string("fetch answer: unexpected special packet in the packfile section"));
    const std::string_view l = p[i].payload;
    if (l.empty()) return tl::unexpected(std::string("fetch answer: side-band line without a band"));
    const std::string_view data = l.substr(1);
    switch (l[0]) {
      case 1: out.pack.append(data); break;
      case 2:
        if (out.messages.size() < kMessageCap) out.messages.append(data.substr(0, kMessageCap - out.messages.size()));
        break;
      case 3: return tl::unexpected("the host gave up sending the pack: " + excerpt(chomp(data)));
      default: return tl::unexpected("fetch answer: unknown side band " + std::to_string(static_cast<int>(static_cast<unsigned char>(l[0]))));
    }
  }
  return tl::unexpected(std::string("fetch answer: cut short (no closing flush after the pack)"));
}

}  // namespace tollgate::git::smart
