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

// The block from the key's hash, the bits within it from a second hash: kProbes 9-bit positions
// (g, g + step, g + 2 step, ...; step odd, so they differ).
void KeyFilter::set(Layer& layer, std::uint64_t hash) {
  std::uint64_t* block = layer.words.data() + (hash & layer.block_mask) * kBlockWords;
  const std::uint64_t h2 = mix(hash);
  std::uint32_t bit = static_cast<std::uint32_t>(h2);
  const std::uint32_t step = static_cast<std::uint32_t>(h2 >> 32) | 1U;
  for (unsigned i = 0; i < kProbes; ++i, bit += step) {
    const std::uint32_t b = bit & 511U;
    block[b >> 6] |= std::uint64_t{1} << (b & 63U);
  }
}

bool KeyFilter::test(const Layer& layer, std::uint64_t hash) {
  const std::uint64_t* block = layer.words.data() + (hash & layer.block_mask) * kBlockWords;
  const std::uint64_t h2 = mix(hash);
  std::uint32_t bit = static_cast<std::uint32_t>(h2);
  const std::uint32_t step = static_cast<std::uint32_t>(h2 >> 32) | 1U;
  for (unsigned i = 0; i < kProbes; ++i, bit += step) {
    const std::uint32_t b = bit & 511U;
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
