#include <cstdint>
#include <cstdio>
#include <string>

#include <catch2/catch.hpp>

#include "service/key_filter.hpp"

using tollgate::service::KeyFilter;

namespace {
// Keys shaped like the inbox's: host, NUL, a GUID-like delivery id (GitHub's X-GitHub-Delivery).
std::string key(const char* host, std::uint64_t n) {
  char id[48];
  std::snprintf(id, sizeof id, "%08llx-cc78-11e3-81ab-%012llx", static_cast<unsigned long long>(n * 2654435761ULL & 0xffffffffULL),
                static_cast<unsigned long long>(n));
  return std::string(host) + '\0' + id;
}
}  // namespace

TEST_CASE("the key filter never misses a key it holds and rarely claims one it does not", "[key_filter]") {
  KeyFilter filter(4096);
  CHECK_FALSE(filter.may_contain(key("github", 1)));
  constexpr std::uint64_t n = 200000;
  for (std::uint64_t i = 0; i < n; ++i) filter.add(key("github", i));
  CHECK(filter.keys() == n);
  // Layers of 4Ki, 8Ki, ... 128Ki keys: six hold 258,048, five only 126,976.
  CHECK(filter.layers() == 6);
  // ~16-32 bits a key once rounded to whole blocks.
  CHECK(filter.bytes() >= n * 2);
  CHECK(filter.bytes() <= n * 8);
  std::uint64_t missed = 0;
  for (std::uint64_t i = 0; i < n; ++i) missed += filter.may_contain(key("github", i)) ? 0 : 1;
  CHECK(missed == 0);
  // Absent keys: other ids, and the same ids from another host.
  std::uint64_t claimed = 0;
  for (std::uint64_t i = n; i < 3 * n; ++i) claimed += filter.may_contain(key("github", i)) ? 1 : 0;
  for (std::uint64_t i = 0; i < n; ++i) claimed += filter.may_contain(key("gitea", i)) ? 1 : 0;
  INFO("false positives: " << claimed << " of " << 3 * n);
  // Six layers asked, each ~0.1% when full (0.43% over the six here): under 1% together.
  CHECK(claimed < 3 * n / 100);
}

TEST_CASE("an empty key filter holds nothing and costs little", "[key_filter]") {
  KeyFilter filter;
  CHECK(filter.layers() == 1);
  CHECK(filter.bytes() == 128 * 1024);  // 64Ki keys x 16 bits
  CHECK_FALSE(filter.may_contain(""));
  CHECK_FALSE(filter.may_contain(key("github", 0)));
  filter.add("");
  CHECK(filter.may_contain(""));
}
