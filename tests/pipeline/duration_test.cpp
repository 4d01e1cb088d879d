#include <catch2/catch.hpp>

#include "pipeline/duration.hpp"

using tollgate::pipeline::format_duration;
using tollgate::pipeline::parse_duration;
using std::chrono::seconds;

TEST_CASE("durations parse from largest unit to smallest", "[duration]") {
  auto [text, secs] = GENERATE(table<const char*, long>({
      {"90s", 90}, {"30m", 1800}, {"1h30m", 5400}, {"2d", 172800}, {"1d2h3m4s", 93784}, {"0s", 0}, {"100m", 6000}}));
  INFO(text);
  auto d = parse_duration(text);
  REQUIRE(d.has_value());
  CHECK(d->count() == secs);
}

TEST_CASE("bad durations say what is wrong", "[duration]") {
  auto [text, message] = GENERATE(table<const char*, const char*>({
      {"30", "'30' has no unit (use s, m, h or d)"},
      {"1h30", "'30' has no unit (use s, m, h or d)"},
      {"30x", "unknown unit 'x' in '30x' (use s, m, h or d)"},
      {"30m1h", "units in '30m1h' must go from largest to smallest, each once (e.g. '1h30m')"},
      {"5m5m", "units in '5m5m' must go from largest to smallest, each once (e.g. '1h30m')"},
      {"m", "'m' in 'm' is not a number; write e.g. '90s', '30m', '1h30m' or '2d'"},
      {"400d", "duration '400d' is longer than a year"},
      {"99999999999999999999s", "duration '99999999999999999999s' is longer than a year"},
      {"", "empty duration"}}));
  INFO(text);
  auto d = parse_duration(text);
  REQUIRE_FALSE(d.has_value());
  CHECK(d.error() == message);
}

TEST_CASE("durations format in their shortest form and round-trip", "[duration]") {
  CHECK(format_duration(seconds(5400)) == "1h30m");
  CHECK(format_duration(seconds(0)) == "0s");
  CHECK(format_duration(seconds(86400 + 1)) == "1d1s");
  for (long s : {1L, 59L, 60L, 3599L, 3600L, 86399L, 90061L}) {
    CHECK(parse_duration(format_duration(seconds(s))).value() == seconds(s));
  }
}

TEST_CASE("durations written out in words get their short form suggested", "[duration]") {
  auto [text, message] = GENERATE(table<const char*, const char*>({
      {"30 minutes", "write '30 minutes' as '30m' (e.g. '90s', '30m', '1h30m', '2d')"},
      {"1 hour 30 min", "write '1 hour 30 min' as '1h30m' (e.g. '90s', '30m', '1h30m', '2d')"},
      {"2 days", "write '2 days' as '2d' (e.g. '90s', '30m', '1h30m', '2d')"},
      {"1h 30m", "write '1h 30m' as '1h30m' (e.g. '90s', '30m', '1h30m', '2d')"},
      {"30 fortnights", "unknown unit ' ' in '30 fortnights' (use s, m, h or d)"}}));
  INFO(text);
  auto d = parse_duration(text);
  REQUIRE_FALSE(d.has_value());
  CHECK(d.error() == message);
}
