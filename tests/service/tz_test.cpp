// service/tz: TZif files of the system tz database, the POSIX TZ footer, zone names, malformed
// files, and a sample of instants against glibc (`date`).
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <catch2/catch.hpp>

#include "service/tz.hpp"

using namespace tollgate::service;
using tollgate::pipeline::TimePoint;
namespace fs = std::filesystem;
using namespace std::chrono;

namespace {

constexpr const char* kZoneinfo = "/usr/share/zoneinfo";

// y-m-d h:mi:s UTC.
TimePoint utc(int y, unsigned mo, unsigned d, int hh = 0, int mi = 0, int ss = 0) {
  return TimePoint{sys_days{year{y} / month{mo} / day{d}}} + hours{hh} + minutes{mi} + seconds{ss};
}

std::optional<seconds> h(int hours_, int minutes_ = 0) { return seconds{hours_ * 3600 + minutes_ * 60}; }

std::chrono::seconds posix_offset(std::string_view tz, TimePoint at) {
  const auto parsed = detail::parse_posix_tz(tz);
  REQUIRE(parsed);
  return detail::offset_at(*parsed, at);
}

// A temporary directory, removed at the end of the scope.
struct TempDir {
  fs::path path;
  TempDir() {
    static int n = 0;
    path = fs::temp_directory_path() / ("tollgate-tz-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  void write(const std::string& name, std::string_view bytes) const {
    fs::create_directories((path / name).parent_path());
    std::ofstream out(path / name, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void put32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}
void put64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

struct TypeSpec {
  std::int32_t utoff;
  bool dst;
};

// A TZif file: version '\0' (v1: 32-bit data only) or '2'..'4' (v1 block, v2 block, footer).
std::string make_tzif(char version, const std::vector<std::int64_t>& times, const std::vector<std::uint8_t>& idx,
                      const std::vector<TypeSpec>& types, const std::string& footer) {
  const auto header = [&](std::string& out) {
    out += "TZif";
    out.push_back(version);
    out.append(15, '\0');
    put32(out, 0);                                          // isutcnt
    put32(out, 0);                                          // isstdcnt
    put32(out, 0);                                          // leapcnt
    put32(out, static_cast<std::uint32_t>(times.size()));  // timecnt
    put32(out, static_cast<std::uint32_t>(types.size()));  // typecnt
    put32(out, 4);                                          // charcnt
  };
  const auto block = [&](std::string& out, bool wide) {
    for (const auto t : times) {
      if (wide) {
        put64(out, static_cast<std::uint64_t>(t));
      } else {
        put32(out, static_cast<std::uint32_t>(static_cast<std::int32_t>(t)));
      }
    }
    for (const auto i : idx) out.push_back(static_cast<char>(i));
    for (const auto& t : types) {
      put32(out, static_cast<std::uint32_t>(t.utoff));
      out.push_back(t.dst ? '\1' : '\0');
      out.push_back('\0');
    }
    out.append("ZZZ", 4);  // "ZZZ\0"
  };
  std::string out;
  header(out);
  block(out, false);
  if (version != '\0') {
    header(out);
    block(out, true);
    out += "\n" + footer + "\n";
  }
  return out;
}

// Offsets per instant from glibc: `TZ=<zone> date -f <file> +%z`. Empty when `date` cannot run.
std::vector<std::optional<seconds>> glibc_offsets(const std::string& zone, const std::vector<std::int64_t>& epochs) {
  TempDir dir;
  {
    std::ofstream in(dir.path / "epochs");
    for (const auto e : epochs) in << '@' << e << '\n';
  }
  const std::string cmd = "TZ='" + zone + "' date -f '" + (dir.path / "epochs").string() + "' +%z 2>/dev/null";
  std::FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) return {};
  std::string text;
  std::array<char, 4096> buf{};
  while (const std::size_t n = std::fread(buf.data(), 1, buf.size(), pipe)) text.append(buf.data(), n);
  if (::pclose(pipe) != 0) return {};
  std::vector<std::optional<seconds>> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.size() != 5 || (line[0] != '+' && line[0] != '-')) {
      out.emplace_back();
      continue;
    }
    const int v = std::stoi(line.substr(1, 2)) * 3600 + std::stoi(line.substr(3, 2)) * 60;
    out.emplace_back(seconds{line[0] == '-' ? -v : v});
  }
  return out;
}

}  // namespace

TEST_CASE("tz: Europe/Berlin from the system database", "[tz]") {
  const TzDatabase db;
  CHECK(db.utc_offset("Europe/Berlin", utc(2026, 1, 15, 12)) == h(1));
  CHECK(db.utc_offset("Europe/Berlin", utc(2026, 7, 15, 12)) == h(2));
  // 2026-03-29 02:00 CET -> 03:00 CEST, i.e. 01:00:00Z.
  CHECK(db.utc_offset("Europe/Berlin", utc(2026, 3, 29, 1) - seconds{1}) == h(1));
  CHECK(db.utc_offset("Europe/Berlin", utc(2026, 3, 29, 1)) == h(2));
  // 2026-10-25 03:00 CEST -> 02:00 CET, i.e. 01:00:00Z.
  CHECK(db.utc_offset("Europe/Berlin", utc(2026, 10, 25, 1) - seconds{1}) == h(2));
  CHECK(db.utc_offset("Europe/Berlin", utc(2026, 10, 25, 1)) == h(1));
  // Far future: past any listed transition, the footer rule.
  CHECK(db.utc_offset("Europe/Berlin", utc(2100, 7, 1)) == h(2));
  CHECK(db.utc_offset("Europe/Berlin", utc(2100, 1, 1)) == h(1));
  CHECK(db.utc_offset("Europe/Berlin", utc(2400, 3, 26, 1) - seconds{1}) == h(1));  // last Sunday of March 2400
  CHECK(db.utc_offset("Europe/Berlin", utc(2400, 3, 26, 1)) == h(2));
  // 1900: before the CET transitions, some offset (LMT +0:53:28 or CET).
  const auto old = db.utc_offset("Europe/Berlin", utc(1900, 1, 1));
  REQUIRE(old);
  CHECK(*old > minutes{0});
  CHECK(*old <= hours{1});
  // The extremes of sys_seconds: a value, no overflow.
  CHECK(db.utc_offset("Europe/Berlin", TimePoint::max()));
  CHECK(db.utc_offset("Europe/Berlin", TimePoint::min()));
}

TEST_CASE("tz: other zones", "[tz]") {
  const TzDatabase db;
  SECTION("America/New_York") {
    CHECK(db.utc_offset("America/New_York", utc(2026, 1, 15)) == h(-5));
    CHECK(db.utc_offset("America/New_York", utc(2026, 7, 15)) == h(-4));
    // 2026-03-08 02:00 EST and 2026-11-01 02:00 EDT.
    CHECK(db.utc_offset("America/New_York", utc(2026, 3, 8, 7) - seconds{1}) == h(-5));
    CHECK(db.utc_offset("America/New_York", utc(2026, 3, 8, 7)) == h(-4));
    CHECK(db.utc_offset("America/New_York", utc(2026, 11, 1, 6) - seconds{1}) == h(-4));
    CHECK(db.utc_offset("America/New_York", utc(2026, 11, 1, 6)) == h(-5));
    CHECK(db.utc_offset("America/New_York", utc(2150, 7, 4)) == h(-4));
  }
  SECTION("Australia/Lord_Howe: 30-minute DST") {
    CHECK(db.utc_offset("Australia/Lord_Howe", utc(2026, 1, 15)) == h(11));
    CHECK(db.utc_offset("Australia/Lord_Howe", utc(2026, 7, 15)) == h(10, 30));
    // DST ends 2026-04-05 02:00 +11 (15:00Z the day before), starts 2026-10-04 02:00 +10:30.
    CHECK(db.utc_offset("Australia/Lord_Howe", utc(2026, 4, 4, 15) - seconds{1}) == h(11));
    CHECK(db.utc_offset("Australia/Lord_Howe", utc(2026, 4, 4, 15)) == h(10, 30));
    CHECK(db.utc_offset("Australia/Lord_Howe", utc(2026, 10, 3, 15, 30) - seconds{1}) == h(10, 30));
    CHECK(db.utc_offset("Australia/Lord_Howe", utc(2026, 10, 3, 15, 30)) == h(11));
    CHECK(db.utc_offset("Australia/Lord_Howe", utc(2100, 1, 1)) == h(11));
  }
  SECTION("Asia/Kolkata") {
    CHECK(db.utc_offset("Asia/Kolkata", utc(2026, 1, 15)) == h(5, 30));
    CHECK(db.utc_offset("Asia/Kolkata", utc(2026, 7, 15)) == h(5, 30));
    CHECK(db.utc_offset("Asia/Kolkata", utc(2200, 7, 15)) == h(5, 30));
  }
  SECTION("UTC") {
    CHECK(db.utc_offset("UTC", utc(2026, 7, 15)) == h(0));
    CHECK(db.utc_offset("Etc/UTC", utc(2026, 7, 15)) == h(0));
    CHECK(db.utc_offset("Etc/UTC", utc(1900, 1, 1)) == h(0));
  }
}

TEST_CASE("tz: names that are not zones", "[tz]") {
  const TzDatabase db;
  for (const char* name : {"Mars/Olympus_Mons", "../etc/passwd", "/etc/passwd", "", "Europe/../Europe/Berlin",
                           "Europe//Berlin", "Europe/Berlin/", "/Europe/Berlin", "Europe/Berlin ", "Europe\\Berlin",
                           "Europe/Berlin\n", "./Europe/Berlin", "Europe", "zone.tab", "Europe/Berlin%00"}) {
    INFO(name);
    CHECK_FALSE(db.utc_offset(name, utc(2026, 1, 1)));
  }
  CHECK_FALSE(db.utc_offset(std::string_view{"Europe/Berlin\0x", 15}, utc(2026, 1, 1)));
  CHECK(detail::valid_zone_name("America/Argentina/Buenos_Aires"));
  CHECK(detail::valid_zone_name("Etc/GMT+5"));
  CHECK(detail::valid_zone_name("Etc/GMT-14"));
  CHECK_FALSE(detail::valid_zone_name(".."));
  CHECK_FALSE(detail::valid_zone_name(std::string(256, 'A')));
  // Asked twice (the second time from the cache), still nothing; a known zone still works after.
  CHECK_FALSE(db.utc_offset("Mars/Olympus_Mons", utc(2026, 1, 1)));
  CHECK(db.utc_offset("Europe/Berlin", utc(2026, 1, 1)) == h(1));
}

TEST_CASE("tz: minute by minute over 8 days", "[tz]") {
  const TzDatabase db;
  const TimePoint from = utc(2026, 3, 25);
  int cet = 0, cest = 0;
  for (int m = 0; m < 8 * 24 * 60; ++m) {
    const auto off = db.utc_offset("Europe/Berlin", from + minutes{m});
    REQUIRE(off);
    (*off == hours{1} ? cet : cest) += 1;
  }
  CHECK(cet == 4 * 24 * 60 + 60);  // until 2026-03-29T01:00Z
  CHECK(cest == 8 * 24 * 60 - cet);
}

TEST_CASE("tz: concurrent first lookups", "[tz]") {
  const TzDatabase db;
  const std::vector<std::string> zones{"Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe",
                                       "UTC", "Nowhere/Else"};
  std::vector<std::thread> threads;
  std::vector<int> wrong(8, 0);
  for (int k = 0; k < 8; ++k) {
    threads.emplace_back([&, k] {
      for (int i = 0; i < 2000; ++i) {
        const auto& zone = zones[static_cast<std::size_t>(i + k) % zones.size()];
        const auto off = db.utc_offset(zone, utc(2026, 7, 1));
        if (zone == "Nowhere/Else" ? off.has_value() : !off.has_value()) ++wrong[static_cast<std::size_t>(k)];
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const int w : wrong) CHECK(w == 0);
}

TEST_CASE("tz: POSIX TZ strings", "[tz]") {
  SECTION("CET-1CEST,M3.5.0,M10.5.0/3") {
    const auto tz = detail::parse_posix_tz("CET-1CEST,M3.5.0,M10.5.0/3");
    REQUIRE(tz);
    CHECK(tz->std_name == "CET");
    CHECK(tz->std_offset == 3600);
    CHECK(tz->has_dst);
    CHECK(tz->dst_name == "CEST");
    CHECK(tz->dst_offset == 7200);
    CHECK(tz->start == detail::PosixRule{detail::PosixRule::Kind::month, 0, 5, 3, 2 * 3600});
    CHECK(tz->end == detail::PosixRule{detail::PosixRule::Kind::month, 0, 5, 10, 3 * 3600});
    CHECK(detail::offset_at(*tz, utc(2026, 3, 29, 1) - seconds{1}) == hours{1});
    CHECK(detail::offset_at(*tz, utc(2026, 3, 29, 1)) == hours{2});
    CHECK(detail::offset_at(*tz, utc(2026, 10, 25, 1) - seconds{1}) == hours{2});
    CHECK(detail::offset_at(*tz, utc(2026, 10, 25, 1)) == hours{1});
    CHECK(detail::offset_at(*tz, utc(2026, 12, 31, 23, 59, 59)) == hours{1});
    CHECK(detail::offset_at(*tz, utc(2027, 1, 1)) == hours{1});
    CHECK(abs(detail::offset_at(*tz, TimePoint::max())) <= hours{2});
    CHECK(abs(detail::offset_at(*tz, TimePoint::min())) <= hours{2});
  }
  SECTION("EST5EDT,M3.2.0,M11.1.0 and its default rule") {
    for (const char* s : {"EST5EDT,M3.2.0,M11.1.0", "EST5EDT"}) {
      INFO(s);
      const auto tz = detail::parse_posix_tz(s);
      REQUIRE(tz);
      CHECK(tz->std_offset == -5 * 3600);
      CHECK(tz->dst_offset == -4 * 3600);
      CHECK(detail::offset_at(*tz, utc(2026, 3, 8, 7) - seconds{1}) == hours{-5});
      CHECK(detail::offset_at(*tz, utc(2026, 3, 8, 7)) == hours{-4});
      CHECK(detail::offset_at(*tz, utc(2026, 11, 1, 6) - seconds{1}) == hours{-4});
      CHECK(detail::offset_at(*tz, utc(2026, 11, 1, 6)) == hours{-5});
    }
  }
  SECTION("Lord Howe: <+1030>-10:30<+11>-11,M10.1.0,M4.1.0") {
    const auto tz = detail::parse_posix_tz("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0");
    REQUIRE(tz);
    CHECK(tz->std_name == "+1030");
    CHECK(tz->dst_name == "+11");
    CHECK(tz->std_offset == 10 * 3600 + 1800);
    CHECK(tz->dst_offset == 11 * 3600);
    CHECK(detail::offset_at(*tz, utc(2026, 1, 1)) == *h(11));
    CHECK(detail::offset_at(*tz, utc(2026, 4, 4, 15) - seconds{1}) == *h(11));
    CHECK(detail::offset_at(*tz, utc(2026, 4, 4, 15)) == *h(10, 30));
    CHECK(detail::offset_at(*tz, utc(2026, 10, 3, 15, 30) - seconds{1}) == *h(10, 30));
    CHECK(detail::offset_at(*tz, utc(2026, 10, 3, 15, 30)) == *h(11));
    CHECK(detail::offset_at(*tz, utc(2026, 12, 31, 23)) == *h(11));
  }
  SECTION("no DST") {
    CHECK(posix_offset("UTC0", utc(2026, 7, 1)) == seconds{0});
    CHECK(posix_offset("<-03>3", utc(2026, 7, 1)) == hours{-3});
    CHECK(posix_offset("<+0545>-5:45", utc(2026, 7, 1)) == *h(5, 45));
    CHECK(posix_offset("<+0530>-05:30", utc(2026, 7, 1)) == *h(5, 30));
    CHECK(posix_offset("ABC+1:02:03", utc(2026, 7, 1)) == seconds{-3723});
    const auto tz = detail::parse_posix_tz("UTC0");
    REQUIRE(tz);
    CHECK_FALSE(tz->has_dst);
  }
  SECTION("Jn: February 29 never counted") {
    // J60 is March 1 in every year; 02:00 at -3 is 05:00Z.
    CHECK(posix_offset("XXX3YYY,J60/2,J300/2", utc(2024, 3, 1, 5) - seconds{1}) == hours{-3});
    CHECK(posix_offset("XXX3YYY,J60/2,J300/2", utc(2024, 3, 1, 5)) == hours{-2});
    CHECK(posix_offset("XXX3YYY,J60/2,J300/2", utc(2023, 3, 1, 5)) == hours{-2});
    CHECK(posix_offset("XXX3YYY,J60/2,J300/2", utc(2023, 3, 1, 5) - seconds{1}) == hours{-3});
  }
  SECTION("n: February 29 counted") {
    // Day 59 is February 29 in 2024, March 1 in 2023.
    CHECK(posix_offset("XXX3YYY,59/2,299/2", utc(2024, 2, 29, 5) - seconds{1}) == hours{-3});
    CHECK(posix_offset("XXX3YYY,59/2,299/2", utc(2024, 2, 29, 5)) == hours{-2});
    CHECK(posix_offset("XXX3YYY,59/2,299/2", utc(2023, 3, 1, 5) - seconds{1}) == hours{-3});
    CHECK(posix_offset("XXX3YYY,59/2,299/2", utc(2023, 3, 1, 5)) == hours{-2});
  }
  SECTION("transition times beyond 24h and negative (RFC 8536)") {
    // Israel: the Friday before the last Sunday of March, 02:00 (M3.4.4/26); 2026-03-27 00:00Z.
    CHECK(posix_offset("IST-2IDT,M3.4.4/26,M10.5.0", utc(2026, 3, 27) - seconds{1}) == hours{2});
    CHECK(posix_offset("IST-2IDT,M3.4.4/26,M10.5.0", utc(2026, 3, 27)) == hours{3});
    CHECK(posix_offset("IST-2IDT,M3.4.4/26,M10.5.0", utc(2026, 10, 24, 23) - seconds{1}) == hours{3});
    CHECK(posix_offset("IST-2IDT,M3.4.4/26,M10.5.0", utc(2026, 10, 24, 23)) == hours{2});
    // Greenland: -01:00 on the last Sunday of March local standard time, i.e. 01:00Z.
    CHECK(posix_offset("<-02>2<-01>,M3.5.0/-1,M10.5.0/0", utc(2026, 3, 29, 1) - seconds{1}) == hours{-2});
    CHECK(posix_offset("<-02>2<-01>,M3.5.0/-1,M10.5.0/0", utc(2026, 3, 29, 1)) == hours{-1});
    CHECK(posix_offset("<-02>2<-01>,M3.5.0/-1,M10.5.0/0", utc(2026, 10, 25, 1) - seconds{1}) == hours{-1});
    CHECK(posix_offset("<-02>2<-01>,M3.5.0/-1,M10.5.0/0", utc(2026, 10, 25, 1)) == hours{-2});
    // 167 hours after the first Sunday of March 2026 (March 1): March 7, 23:00.
    CHECK(posix_offset("XXX0YYY,M3.1.0/167,M10.1.0", utc(2026, 3, 1, 12)) == seconds{0});
    CHECK(posix_offset("XXX0YYY,M3.1.0/167,M10.1.0", utc(2026, 3, 7, 22, 59, 59)) == seconds{0});
    CHECK(posix_offset("XXX0YYY,M3.1.0/167,M10.1.0", utc(2026, 3, 7, 23)) == hours{1});
    // -167 hours before the last Sunday of October 2026 (October 25): October 18, 01:00 local DST.
    CHECK(posix_offset("XXX0YYY,M3.1.0,M10.5.0/-167", utc(2026, 10, 18, 0) - seconds{1}) == hours{1});
    CHECK(posix_offset("XXX0YYY,M3.1.0,M10.5.0/-167", utc(2026, 10, 18, 0)) == seconds{0});
  }
  SECTION("DST all year (RFC 8536 3.3.1)") {
    for (const TimePoint at : {utc(2026, 1, 1), utc(2026, 1, 1, 5), utc(2026, 1, 1, 4, 59, 59), utc(2026, 7, 1),
                               utc(2026, 12, 31, 23, 59, 59), utc(2028, 12, 31, 12)}) {
      CHECK(posix_offset("EST5EDT4,0/0,J365/25", at) == hours{-4});
    }
  }
  SECTION("invalid strings") {
    for (const char* s :
         {"", "CET", "CE-1", "CET-", "CET-1CEST,M13.1.0,M10.5.0", "CET-1CEST,M0.1.0,M10.5.0", "CET-1CEST,M3.5.0",
          "CET-1CEST,M3.5.0,", "<+10", "<+1>1", "<+1 0>1", "CET-1CEST,M3.5.0,M10.5.0/168", "CET-1x",
          "CET-1CEST,M3.6.0,M10.5.0", "CET-1CEST,M3.0.0,M10.5.0", "CET-1CEST,M3.5.7,M10.5.0", "CET-1CEST,J0,J365",
          "CET-1CEST,366,J365", "CET-1CEST,J366,J365", "CET25", "CET-1:60", "CET-1:00:60", "CET-1 ",
          "CET-1CEST,M3.5.0,M10.5.0x", "CET-1CEST;M3.5.0,M10.5.0", "CET-0001", "CET-1CEST-2-3",
          "CET-1CEST,M3.5.0/,M10.5.0", "CET-1CEST,M3.5.0/+,M10.5.0", "1CET", "CET-1CEST,M03.05.00,M10.5.0"}) {
      INFO(s);
      CHECK_FALSE(detail::parse_posix_tz(s));
    }
  }
}

TEST_CASE("tz: TZif files from a given root", "[tz]") {
  TempDir dir;
  const fs::path berlin = fs::path{kZoneinfo} / "Europe/Berlin";
  REQUIRE(fs::exists(berlin));
  const std::string bytes = slurp(berlin);
  REQUIRE(bytes.size() > 100);

  SECTION("a copy of a real file") {
    dir.write("Europe/Berlin", bytes);
    const TzDatabase db{dir.path.string()};
    CHECK(db.root() == dir.path.string());
    CHECK(db.utc_offset("Europe/Berlin", utc(2026, 7, 1)) == h(2));
    CHECK_FALSE(db.utc_offset("America/New_York", utc(2026, 7, 1)));
    CHECK(db.utc_offset("UTC", utc(2026, 7, 1)) == h(0));  // built in when the root has no file for it
    CHECK_FALSE(db.utc_offset("Europe", utc(2026, 7, 1)));  // a directory
  }
  SECTION("every truncation of a real file") {
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      INFO(n);
      CHECK_FALSE(detail::parse_tzif(std::string_view{bytes}.substr(0, n)));
    }
    CHECK(detail::parse_tzif(bytes));
    dir.write("Cut/Half", bytes.substr(0, bytes.size() / 2));
    dir.write("Cut/Header", bytes.substr(0, 30));
    dir.write("Cut/Empty", "");
    dir.write("Cut/Garbage", "this is not a TZif file, not even close.\n");
    const TzDatabase db{dir.path.string()};
    for (const char* name : {"Cut/Half", "Cut/Header", "Cut/Empty", "Cut/Garbage"}) {
      INFO(name);
      CHECK_FALSE(db.utc_offset(name, utc(2026, 7, 1)));
    }
  }
  SECTION("corrupt counts, indices and footers") {
    std::string huge = bytes;
    huge[32] = '\x7f';  // timecnt of the v1 header: about 2^31 transitions
    CHECK_FALSE(detail::parse_tzif(huge));
    std::string zero_types = bytes;
    for (int k = 36; k < 40; ++k) zero_types[static_cast<std::size_t>(k)] = '\0';
    CHECK_FALSE(detail::parse_tzif(zero_types));
    std::string bad_magic = bytes;
    bad_magic[0] = 'X';
    CHECK_FALSE(detail::parse_tzif(bad_magic));
    // A bad type index, descending times, a bad footer.
    CHECK(detail::parse_tzif(make_tzif('2', {0, 100}, {0, 1}, {{0, false}, {3600, false}}, "")));
    CHECK_FALSE(detail::parse_tzif(make_tzif('2', {0, 100}, {0, 2}, {{0, false}, {3600, false}}, "")));
    CHECK_FALSE(detail::parse_tzif(make_tzif('2', {100, 0}, {0, 1}, {{0, false}, {3600, false}}, "")));
    CHECK_FALSE(detail::parse_tzif(make_tzif('2', {100, 100}, {0, 1}, {{0, false}, {3600, false}}, "")));
    CHECK_FALSE(detail::parse_tzif(make_tzif('2', {0}, {0}, {{0, false}}, "CET-1CEST,M3.5.0")));
    CHECK_FALSE(detail::parse_tzif(make_tzif('2', {0}, {0}, {{std::numeric_limits<std::int32_t>::min(), false}}, "")));
    std::string no_newline = make_tzif('2', {0}, {0}, {{0, false}}, "UTC0");
    no_newline.pop_back();
    CHECK_FALSE(detail::parse_tzif(no_newline));
  }
  SECTION("random corruption never crashes") {
    std::mt19937_64 rng{20261126};
    int parsed = 0;
    for (int round = 0; round < 3000; ++round) {
      std::string b = bytes;
      const int flips = 1 + static_cast<int>(rng() % 8);
      for (int f = 0; f < flips; ++f) b[rng() % b.size()] = static_cast<char>(rng() & 0xff);
      if (const auto zone = detail::parse_tzif(b)) {
        ++parsed;
        for (const TimePoint at : {TimePoint::min(), utc(1900, 1, 1), utc(2026, 7, 1), utc(2100, 1, 1), TimePoint::max()}) {
          const auto off = detail::offset_at(*zone, at);
          CHECK(abs(off) <= hours{26});
        }
      }
    }
    CHECK(parsed > 0);  // most flips land in transition times or abbreviations
  }
}

TEST_CASE("tz: hand-built TZif files", "[tz]") {
  TempDir dir;
  SECTION("version 1: 32-bit data, no footer") {
    // +3600 until 1000000000, then +7200 (DST), then +3600 again.
    dir.write("V1", make_tzif('\0', {1000000000, 1500000000}, {1, 0}, {{3600, false}, {7200, true}}, ""));
    const TzDatabase db{dir.path.string()};
    CHECK(db.utc_offset("V1", TimePoint{seconds{999999999}}) == h(1));
    CHECK(db.utc_offset("V1", TimePoint{seconds{1000000000}}) == h(2));
    CHECK(db.utc_offset("V1", TimePoint{seconds{1499999999}}) == h(2));
    CHECK(db.utc_offset("V1", TimePoint{seconds{1500000000}}) == h(1));
    CHECK(db.utc_offset("V1", utc(2200, 7, 1)) == h(1));  // the last type, forever
  }
  SECTION("before the first transition: the first non-DST type") {
    dir.write("DstFirst", make_tzif('2', {0}, {0}, {{7200, true}, {3600, false}}, ""));
    const TzDatabase db{dir.path.string()};
    CHECK(db.utc_offset("DstFirst", TimePoint{seconds{-1}}) == h(1));
    CHECK(db.utc_offset("DstFirst", TimePoint{seconds{0}}) == h(2));
  }
  SECTION("version 2 without transitions: the footer throughout") {
    dir.write("Footer", make_tzif('2', {}, {}, {{3600, false}}, "CET-1CEST,M3.5.0,M10.5.0/3"));
    dir.write("Plain", make_tzif('3', {}, {}, {{-10800, false}}, ""));
    const TzDatabase db{dir.path.string()};
    CHECK(db.utc_offset("Footer", utc(1950, 7, 1)) == h(2));
    CHECK(db.utc_offset("Footer", utc(2026, 1, 1)) == h(1));
    CHECK(db.utc_offset("Plain", utc(2026, 7, 1)) == h(-3));
  }
  SECTION("slim: few transitions, then the footer") {
    // One transition in 2020 to CET; from then on the rule.
    const std::int64_t t2020 = std::chrono::floor<seconds>(utc(2020, 1, 1)).time_since_epoch().count();
    dir.write("Slim", make_tzif('4', {t2020}, {1}, {{3208, false}, {3600, false}}, "CET-1CEST,M3.5.0,M10.5.0/3"));
    const TzDatabase db{dir.path.string()};
    CHECK(db.utc_offset("Slim", utc(2019, 7, 1)) == seconds{3208});
    CHECK(db.utc_offset("Slim", utc(2020, 1, 1)) == h(1));
    CHECK(db.utc_offset("Slim", utc(2026, 3, 29, 1) - seconds{1}) == h(1));
    CHECK(db.utc_offset("Slim", utc(2026, 3, 29, 1)) == h(2));
  }
}

TEST_CASE("tz: agrees with glibc (date) on random instants", "[tz]") {
  const TzDatabase db;
  std::mt19937_64 rng{42};
  const std::int64_t from = std::chrono::floor<seconds>(utc(1970, 1, 1)).time_since_epoch().count();
  const std::int64_t to = std::chrono::floor<seconds>(utc(2037, 12, 31)).time_since_epoch().count();
  const std::int64_t far = std::chrono::floor<seconds>(utc(2200, 12, 31)).time_since_epoch().count();
  std::vector<std::int64_t> epochs;
  for (int k = 0; k < 50; ++k) epochs.push_back(from + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(to - from)));
  for (int k = 0; k < 20; ++k) epochs.push_back(to + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(far - to)));
  for (const char* zone : {"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
                           "America/Sao_Paulo", "Asia/Jerusalem", "America/Nuuk", "Pacific/Chatham"}) {
    INFO(zone);
    const auto expected = glibc_offsets(zone, epochs);
    if (expected.size() != epochs.size()) {
      WARN("date -f did not run; skipped the comparison for " << zone);
      continue;
    }
    for (std::size_t k = 0; k < epochs.size(); ++k) {
      INFO(epochs[k]);
      CHECK(db.utc_offset(zone, TimePoint{seconds{epochs[k]}}) == expected[k]);
    }
  }
}
