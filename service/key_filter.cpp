#include "service/key_filter.hpp"

#include <algorithm>
#include <bit>
#include <functional>

namespace tollgate::service {

namespace {

constexpr unsigned kBitsPerKey = 16;
constexpr unsigned kProbes = 8;        // bits set per key (near ln 2 x 16 = 11; fewer keep it cheap)
constexpr unsigned kBlockWords = 8;    // 512 bits, one cache line

// A second, independent 64-bit hash from the first (splitmix64's finaliser).
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::uint64_t hash_of(std::string_view key) { return std::hash<std::string_view>{}(key); }

// The block from the key's hash; the kProbes bit positions within it (9 bits each) from two more
// hashes mixed from it, 72 bits for the 8 positions.
struct Probes {
  std::uint64_t a, b;
  explicit Probes(std::uint64_t hash) : a(mix(hash)), b(mix(a)) {}
  [[nodiscard]] std::uint32_t at(unsigned i) const {
    // Positions 0-6 from a (63 bits), 7 from b.
    return static_cast<std::uint32_t>((i < 7 ? a >> (9 * i) : b) & 511U);
  }
};

}  // namespace

KeyFilter::KeyFilter(std::size_t first_capacity) {
  layers_.push_back(make_layer(std::max<std::size_t>(first_capacity, 512)));
}

KeyFilter::Layer KeyFilter::make_layer(std::size_t capacity) {
  Layer layer;
  const std::size_t blocks = std::bit_ceil((capacity * kBitsPerKey + kBlockWords * 64 - 1) / (kBlockWords * 64));
  layer.words.assign(blocks * kBlockWords, 0);
  layer.block_mask = blocks - 1;
  layer.capacity = capacity;
  return layer;
}

void KeyFilter::set(Layer& layer, std::uint64_t hash) {
  std::uint64_t* block = layer.words.data() + (hash & layer.block_mask) * kBlockWords;
  const Probes p(hash);
  for (unsigned i = 0; i < kProbes; ++i) {
    const std::uint32_t b = p.at(i);
    block[b >> 6] |= std::uint64_t{1} << (b & 63U);
  }
}

bool KeyFilter::test(const Layer& layer, std::uint64_t hash) {
  const std::uint64_t* block = layer.words.data() + (hash & layer.block_mask) * kBlockWords;
  const Probes p(hash);
  for (unsigned i = 0; i < kProbes; ++i) {
    const std::uint32_t b = p.at(i);
    if ((block[b >> 6] & (std::uint64_t{1} << (b & 63U))) == 0) return false;
  }
  return true;
}

void KeyFilter::add(std::string_view key) {
  if (layers_.back().count >= layers_.back().capacity) layers_.push_back(make_layer(layers_.back().capacity * 2));
  Layer& layer = layers_.back();
  set(layer, hash_of(key));
  ++layer.count;
  ++keys_;
}

bool KeyFilter::may_contain(std::string_view key) const {
  const std::uint64_t hash = hash_of(key);
  // Newest first: the largest layer, and the one a recent redelivery is in.
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
    if (it->count != 0 && test(*it, hash)) return true;
  }
  return false;
}

std::size_t KeyFilter::bytes() const {
  std::size_t n = 0;
  for (const auto& layer : layers_) n += layer.words.size() * sizeof(std::uint64_t);
  return n;
}

}  // namespace tollgate::service
