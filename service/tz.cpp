#include "service/tz.hpp"

#include <algorithm>
#include <cerrno>
#include <limits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tollgate::service {

namespace detail {

struct Zone {
  std::vector<std::int64_t> times;    // transition times, strictly ascending (file time scale)
  std::vector<std::int32_t> offsets;  // UTC offset from times[i] on
  std::int32_t initial = 0;           // before the first transition: first non-DST type (else type 0)
  // Leap-second records (occurrence, correction), only in "right/" files: their transition times
  // count leap seconds, a sys_seconds does not.
  std::vector<std::pair<std::int64_t, std::int64_t>> leaps;
  std::optional<PosixTz> footer;  // after the last transition (v2+, non-empty footer)
};

namespace {

using std::chrono::days;
using std::chrono::seconds;
using std::chrono::sys_days;

constexpr std::int64_t kDay = 86400;
// The Gregorian calendar repeats every 400 years, weekdays included (146097 days = 20871 weeks).
constexpr std::int64_t kCycle = 146097 * kDay;

// ---------------------------------------------------------------------------------------------
// POSIX TZ strings

class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  [[nodiscard]] bool done() const { return i_ == s_.size(); }
  [[nodiscard]] char peek() const { return done() ? '\0' : s_[i_]; }
  bool eat(char c) {
    if (peek() != c || done()) return false;
    ++i_;
    return true;
  }

  // A designation: <[A-Za-z0-9+-]{3,}> or [A-Za-z]{3,}.
  bool name(std::string& out) {
    const std::size_t begin = i_;
    if (eat('<')) {
      while (!done() && s_[i_] != '>') {
        const char c = s_[i_];
        if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-') return false;
        ++i_;
      }
      if (done()) return false;
      out.assign(s_.substr(begin + 1, i_ - begin - 1));
      ++i_;  // '>'
    } else {
      while (!done() && is_alpha(s_[i_])) ++i_;
      out.assign(s_.substr(begin, i_ - begin));
    }
    return out.size() >= 3;
  }

  // At most `max_digits` digits (at least one), value <= max.
  bool number(int max_digits, int max, int& out) {
    int value = 0;
    int n = 0;
    while (!done() && is_digit(s_[i_]) && n < max_digits) {
      value = value * 10 + (s_[i_] - '0');
      ++i_;
      ++n;
    }
    if (n == 0 || value > max || (!done() && is_digit(s_[i_]))) return false;
    out = value;
    return true;
  }

  // [+-]hh[:mm[:ss]], hours at most max_hours.
  bool signed_hms(int max_hours, std::int32_t& out) {
    int sign = 1;
    if (eat('-')) {
      sign = -1;
    } else {
      eat('+');
    }
    int h = 0, m = 0, sec = 0;
    if (!number(3, max_hours, h)) return false;
    if (eat(':')) {
      if (!number(2, 59, m)) return false;
      if (eat(':') && !number(2, 59, sec)) return false;
    }
    out = sign * (h * 3600 + m * 60 + sec);
    return true;
  }

  // Jn | n | Mm.w.d, then [/time].
  bool rule(PosixRule& out) {
    if (eat('J')) {
      out.kind = PosixRule::Kind::julian1;
      if (!number(3, 365, out.day) || out.day < 1) return false;
    } else if (eat('M')) {
      out.kind = PosixRule::Kind::month;
      if (!number(2, 12, out.month) || out.month < 1) return false;
      if (!eat('.') || !number(1, 5, out.week) || out.week < 1) return false;
      if (!eat('.') || !number(1, 6, out.day)) return false;
    } else {
      out.kind = PosixRule::Kind::julian0;
      if (!number(3, 365, out.day)) return false;
    }
    out.time = 2 * 3600;
    if (eat('/')) return signed_hms(167, out.time);  // RFC 8536 3.3.1: -167..167 hours
    return true;
  }

 private:
  static bool is_alpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
  static bool is_digit(char c) { return c >= '0' && c <= '9'; }

  std::string_view s_;
  std::size_t i_ = 0;
};

// Local midnight (as days since the epoch) of the day `rule` names in year `y`.
std::int64_t rule_day(const PosixRule& rule, int y) {
  const std::chrono::year year{y};
  const sys_days jan1{year / std::chrono::January / 1};
  switch (rule.kind) {
    case PosixRule::Kind::julian1: {
      int d = rule.day - 1;
      if (year.is_leap() && rule.day >= 60) ++d;  // March 1 or later: skip February 29
      return jan1.time_since_epoch().count() + d;
    }
    case PosixRule::Kind::julian0:
      return jan1.time_since_epoch().count() + rule.day;
    case PosixRule::Kind::month:
      break;
  }
  const std::chrono::month month{static_cast<unsigned>(rule.month)};
  const sys_days first{year / month / 1};
  const int length = static_cast<int>(static_cast<unsigned>((year / month / std::chrono::last).day()));
  const int wd = static_cast<int>(std::chrono::weekday{first}.c_encoding());
  int offset = (rule.day - wd + 7) % 7 + 7 * (rule.week - 1);
  while (offset >= length) offset -= 7;  // week 5: the last such weekday
  return first.time_since_epoch().count() + offset;
}

std::int32_t first_type_offset(const std::vector<std::pair<std::int32_t, bool>>& types) {
  for (const auto& [offset, dst] : types) {
    if (!dst) return offset;
  }
  return types.front().first;
}

// ---------------------------------------------------------------------------------------------
// TZif

class Bytes {
 public:
  explicit Bytes(std::string_view b) : b_(b) {}
  [[nodiscard]] std::size_t pos() const { return pos_; }
  [[nodiscard]] std::size_t left() const { return b_.size() - pos_; }
  [[nodiscard]] bool has(std::uint64_t n) const { return n <= left(); }
  [[nodiscard]] std::string_view rest() const { return b_.substr(pos_); }
  void skip(std::size_t n) { pos_ += n; }  // callers check has(n) first
  std::uint8_t u8() { return static_cast<std::uint8_t>(b_[pos_++]); }
  std::uint32_t u32() {
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) v = (v << 8) | u8();
    return v;
  }
  std::int64_t i32() { return static_cast<std::int32_t>(u32()); }
  std::int64_t i64() {
    std::uint64_t v = 0;
    for (int k = 0; k < 8; ++k) v = (v << 8) | u8();
    return static_cast<std::int64_t>(v);
  }

 private:
  std::string_view b_;
  std::size_t pos_ = 0;
};

struct Header {
  char version = 0;
  std::uint32_t isutcnt = 0, isstdcnt = 0, leapcnt = 0, timecnt = 0, typecnt = 0, charcnt = 0;

  // Size of the data block that follows, with `time_size`-byte times.
  [[nodiscard]] std::uint64_t block_size(std::uint64_t time_size) const {
    return std::uint64_t{timecnt} * time_size + timecnt + std::uint64_t{typecnt} * 6 + charcnt +
           std::uint64_t{leapcnt} * (time_size + 4) + isstdcnt + isutcnt;
  }
};

bool read_header(Bytes& in, Header& h) {
  if (!in.has(44)) return false;
  const std::string_view magic = in.rest().substr(0, 4);
  if (magic != "TZif") return false;
  in.skip(4);
  h.version = static_cast<char>(in.u8());
  if (h.version != '\0' && (h.version < '2' || h.version > '9')) return false;
  in.skip(15);
  h.isutcnt = in.u32();
  h.isstdcnt = in.u32();
  h.leapcnt = in.u32();
  h.timecnt = in.u32();
  h.typecnt = in.u32();
  h.charcnt = in.u32();
  // RFC 8536 3.1: at least one type, and the indicator counts are zero or typecnt.
  if (h.typecnt == 0 || h.typecnt > 256) return false;
  if (h.isutcnt != 0 && h.isutcnt != h.typecnt) return false;
  if (h.isstdcnt != 0 && h.isstdcnt != h.typecnt) return false;
  return true;
}

bool read_block(Bytes& in, const Header& h, int time_size, Zone& zone) {
  if (!in.has(h.block_size(static_cast<std::uint64_t>(time_size)))) return false;
  zone.times.reserve(h.timecnt);
  for (std::uint32_t k = 0; k < h.timecnt; ++k) {
    const std::int64_t t = time_size == 4 ? in.i32() : in.i64();
    if (!zone.times.empty() && t <= zone.times.back()) return false;  // strictly ascending
    zone.times.push_back(t);
  }
  std::vector<std::uint8_t> type_of(h.timecnt);
  for (auto& i : type_of) {
    i = in.u8();
    if (i >= h.typecnt) return false;
  }
  std::vector<std::pair<std::int32_t, bool>> types;  // (utoff, isdst)
  types.reserve(h.typecnt);
  for (std::uint32_t k = 0; k < h.typecnt; ++k) {
    const std::int64_t utoff = in.i32();
    const std::uint8_t isdst = in.u8();
    in.skip(1);  // desigidx
    if (utoff == std::numeric_limits<std::int32_t>::min() || isdst > 1) return false;
    // Real offsets are within a day or so; anything beyond is not a time zone.
    if (utoff < -26 * 3600 || utoff > 26 * 3600) return false;
    types.emplace_back(static_cast<std::int32_t>(utoff), isdst == 1);
  }
  in.skip(h.charcnt);
  zone.leaps.reserve(h.leapcnt);
  for (std::uint32_t k = 0; k < h.leapcnt; ++k) {
    const std::int64_t occurrence = time_size == 4 ? in.i32() : in.i64();
    const std::int64_t correction = in.i32();
    if (!zone.leaps.empty() && occurrence <= zone.leaps.back().first) return false;
    zone.leaps.emplace_back(occurrence, correction);
  }
  in.skip(h.isstdcnt);
  in.skip(h.isutcnt);

  zone.offsets.reserve(h.timecnt);
  for (const std::uint8_t i : type_of) zone.offsets.push_back(types[i].first);
  zone.initial = first_type_offset(types);
  return true;
}

std::int64_t to_file_time(const Zone& zone, std::int64_t t) {
  std::int64_t correction = 0;
  for (const auto& [occurrence, corr] : zone.leaps) {
    if (t > std::numeric_limits<std::int64_t>::max() - corr || t + corr < occurrence) break;
    correction = corr;
  }
  if (correction > 0 && t > std::numeric_limits<std::int64_t>::max() - correction) return t;
  if (correction < 0 && t < std::numeric_limits<std::int64_t>::min() - correction) return t;
  return t + correction;
}

// The whole of a regular file of at most `max` bytes, or nothing.
std::optional<std::string> read_file(const std::string& path, std::size_t max) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::optional<std::string> out;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0 &&
      static_cast<std::uint64_t>(st.st_size) <= max) {
    std::string data(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t got = 0;
    bool ok = true;
    while (got < data.size()) {
      const ssize_t n = ::read(fd, data.data() + got, data.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ok = false;  // error, or the file shrank
        break;
      }
      got += static_cast<std::size_t>(n);
    }
    if (ok) out = std::move(data);
  }
  ::close(fd);
  return out;
}

}  // namespace

std::optional<PosixTz> parse_posix_tz(std::string_view s) {
  PosixTz tz;
  Cursor in{s};
  std::int32_t value = 0;
  if (!in.name(tz.std_name) || !in.signed_hms(24, value)) return std::nullopt;
  tz.std_offset = -value;  // POSIX offsets are west of UTC
  if (in.done()) return tz;
  tz.has_dst = true;
  if (!in.name(tz.dst_name)) return std::nullopt;
  tz.dst_offset = tz.std_offset + 3600;
  if (!in.done() && in.peek() != ',') {
    if (!in.signed_hms(24, value)) return std::nullopt;
    tz.dst_offset = -value;
  }
  if (in.done()) {
    tz.start = PosixRule{PosixRule::Kind::month, 0, 2, 3, 2 * 3600};
    tz.end = PosixRule{PosixRule::Kind::month, 0, 1, 11, 2 * 3600};
    return tz;
  }
  if (!in.eat(',') || !in.rule(tz.start) || !in.eat(',') || !in.rule(tz.end) || !in.done()) return std::nullopt;
  return tz;
}

std::chrono::seconds offset_at(const PosixTz& tz, pipeline::TimePoint at) {
  if (!tz.has_dst) return seconds{tz.std_offset};
  // Into [1970, 2370): same calendar, same answer, and no overflow in the civil-date arithmetic.
  std::int64_t t = std::chrono::floor<seconds>(at).time_since_epoch().count() % kCycle;
  if (t < 0) t += kCycle;
  const int year = static_cast<int>(std::chrono::year_month_day{std::chrono::floor<days>(pipeline::TimePoint{seconds{t}})}.year());
  // The latest transition at or before t. Rule times may reach 167h either way, so look back two
  // years; at a tie (DST all year, RFC 8536 3.3.1) the start of DST wins.
  bool found = false;
  std::int64_t best = 0;
  bool dst = false;
  const auto consider = [&](std::int64_t when, bool is_start) {
    if (when > t) return;
    if (!found || when > best || (when == best && is_start)) {
      found = true;
      best = when;
      dst = is_start;
    }
  };
  for (int y = year - 2; y <= year + 1; ++y) {
    consider(rule_day(tz.end, y) * kDay + tz.end.time - tz.dst_offset, false);
    consider(rule_day(tz.start, y) * kDay + tz.start.time - tz.std_offset, true);
  }
  return seconds{dst ? tz.dst_offset : tz.std_offset};
}

bool valid_zone_name(std::string_view zone) {
  if (zone.empty() || zone.size() > 255) return false;
  char prev = '/';  // no leading '/', no "//"
  for (const char c : zone) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '+' || c == '-' || c == '/';
    if (!ok || (c == '/' && prev == '/')) return false;
    prev = c;
  }
  return prev != '/';  // no trailing '/'
}

std::shared_ptr<const Zone> parse_tzif(std::string_view bytes) {
  Bytes in{bytes};
  Header h;
  if (!read_header(in, h)) return nullptr;
  auto zone = std::make_shared<Zone>();
  if (h.version == '\0') {
    if (!read_block(in, h, 4, *zone)) return nullptr;
    return zone;
  }
  // Version 2+: skip the 32-bit block, use the 64-bit one and the footer.
  if (!in.has(h.block_size(4))) return nullptr;
  in.skip(static_cast<std::size_t>(h.block_size(4)));
  if (!read_header(in, h) || h.version == '\0' || !read_block(in, h, 8, *zone)) return nullptr;
  const std::string_view rest = in.rest();
  if (rest.empty() || rest.front() != '\n') return nullptr;
  const std::size_t end = rest.find('\n', 1);
  if (end == std::string_view::npos) return nullptr;
  const std::string_view footer = rest.substr(1, end - 1);
  if (!footer.empty()) {
    zone->footer = parse_posix_tz(footer);
    if (!zone->footer) return nullptr;
  }
  return zone;
}

std::chrono::seconds offset_at(const Zone& zone, pipeline::TimePoint at) {
  if (zone.times.empty()) return zone.footer ? offset_at(*zone.footer, at) : seconds{zone.initial};
  const std::int64_t at_s = std::chrono::floor<seconds>(at).time_since_epoch().count();
  const std::int64_t t = zone.leaps.empty() ? at_s : to_file_time(zone, at_s);
  if (t < zone.times.front()) return seconds{zone.initial};
  if (t > zone.times.back() && zone.footer) return offset_at(*zone.footer, at);
  const auto next = std::upper_bound(zone.times.begin(), zone.times.end(), t);
  return seconds{zone.offsets[static_cast<std::size_t>(next - zone.times.begin()) - 1]};
}

}  // namespace detail

namespace {
constexpr std::size_t kMaxFile = std::size_t{1} << 20;  // real TZif files are a few KB
constexpr std::size_t kMaxCached = 4096;                // bounds the cached unknown names
}  // namespace

TzDatabase::TzDatabase(std::string root) : root_(std::move(root)) {}

TzDatabase::~TzDatabase() = default;

std::shared_ptr<const detail::Zone> TzDatabase::load(std::string_view zone) const {
  std::string path = root_;
  if (!path.empty() && path.back() != '/') path += '/';
  path += zone;
  const auto bytes = detail::read_file(path, kMaxFile);
  if (!bytes) return nullptr;
  return detail::parse_tzif(*bytes);
}

std::optional<std::chrono::seconds> TzDatabase::utc_offset(std::string_view zone, pipeline::TimePoint at) const {
  try {
    if (!detail::valid_zone_name(zone)) return std::nullopt;
    std::shared_ptr<const detail::Zone> parsed;
    bool cached = false;
    {
      const std::lock_guard lock{mutex_};
      if (const auto it = cache_.find(zone); it != cache_.end()) {
        parsed = it->second;
        cached = true;
      }
    }
    if (!cached) {
      parsed = load(zone);  // outside the lock: two threads may both read a new zone, harmlessly
      const std::lock_guard lock{mutex_};
      if (parsed || cache_.size() < kMaxCached) cache_.emplace(std::string{zone}, parsed);
    }
    if (!parsed) {
      if (zone == "UTC" || zone == "Etc/UTC") return std::chrono::seconds{0};
      return std::nullopt;
    }
    return detail::offset_at(*parsed, at);
  } catch (...) {  // std::bad_alloc: report the zone as unknown rather than throw into the engine
    return std::nullopt;
  }
}

}  // namespace tollgate::service
