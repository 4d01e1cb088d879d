#pragma once
// Time zones from the system tz database: TZif files (RFC 8536, versions 1 to 4) under a root
// directory, /usr/share/zoneinfo by default. libstdc++ 12 has no std::chrono::tzdb, so this is
// the engine's pipeline::TimeZones for the service.
//
// Each zone is read once and cached (thread-safe). A lookup of a cached zone is a map lookup under
// a mutex and a binary search over the zone's transitions; instants after the last transition
// follow the file's POSIX TZ footer (e.g. "CET-1CEST,M3.5.0,M10.5.0/3"), which matters for the
// "slim" files that list few transitions.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "pipeline/engine.hpp"

namespace tollgate::service {

namespace detail {

// One rule of a POSIX TZ string: when DST starts or ends, in local time then in effect.
struct PosixRule {
  enum class Kind {
    julian1,  // Jn: day n (1..365) of the year, February 29 never counted
    julian0,  // n: day n (0..365) of the year, February 29 counted in leap years
    month,    // Mm.w.d: day d (0 Sunday..6) of week w (1..4, 5 = last) of month m (1..12)
  };
  Kind kind = Kind::month;
  int day = 0;    // n (julian1, julian0) or the weekday d (month)
  int week = 0;   // w (month)
  int month = 0;  // m (month)
  std::int32_t time = 2 * 3600;  // seconds after local midnight; -167h..167h (RFC 8536)
  friend bool operator==(const PosixRule&, const PosixRule&) = default;
};

// A POSIX TZ string (RFC 8536 section 3.3 form). Offsets are east of UTC (local = utc + offset),
// i.e. the opposite sign of the string's ("CET-1" is +3600).
struct PosixTz {
  std::string std_name{};
  std::int32_t std_offset = 0;
  bool has_dst = false;
  std::string dst_name{};
  std::int32_t dst_offset = 0;
  PosixRule start{};  // std -> dst, in local standard time
  PosixRule end{};    // dst -> std, in local daylight time
  friend bool operator==(const PosixTz&, const PosixTz&) = default;
};

// Nothing unless the whole of `s` is a valid TZ string. A DST name without a rule gets the
// customary default rule ",M3.2.0,M11.1.0" (as glibc and tzcode).
[[nodiscard]] std::optional<PosixTz> parse_posix_tz(std::string_view s);

// UTC offset under `tz` at `at`. Any instant representable in a sys_seconds (the rules repeat
// every 400 years).
[[nodiscard]] std::chrono::seconds offset_at(const PosixTz& tz, pipeline::TimePoint at);

// True when `zone` is a plain relative name: [A-Za-z0-9_+-] components separated by single '/',
// no leading or trailing '/', no "." or "..".
[[nodiscard]] bool valid_zone_name(std::string_view zone);

// One parsed TZif file.
struct Zone;

// Parses a TZif file's bytes; nothing when malformed (every count and offset is checked against
// the size).
[[nodiscard]] std::shared_ptr<const Zone> parse_tzif(std::string_view bytes);

[[nodiscard]] std::chrono::seconds offset_at(const Zone& zone, pipeline::TimePoint at);

}  // namespace detail

class TzDatabase final : public pipeline::TimeZones {
 public:
  explicit TzDatabase(std::string root = "/usr/share/zoneinfo");
  ~TzDatabase() override;
  TzDatabase(const TzDatabase&) = delete;
  TzDatabase& operator=(const TzDatabase&) = delete;

  // Nothing when `zone` is not a valid name, or its file is missing, unreadable or malformed.
  // "UTC" and "Etc/UTC" are UTC even when the root has no file for them. Never throws.
  [[nodiscard]] std::optional<std::chrono::seconds> utc_offset(std::string_view zone,
                                                               pipeline::TimePoint at) const override;

  [[nodiscard]] const std::string& root() const { return root_; }

 private:
  [[nodiscard]] std::shared_ptr<const detail::Zone> load(std::string_view zone) const;

  std::string root_;
  mutable std::mutex mutex_;
  // Unknown zones are cached too (as null), up to a bound, so a bad name costs one file open.
  mutable std::map<std::string, std::shared_ptr<const detail::Zone>, std::less<>> cache_;
};

}  // namespace tollgate::service
