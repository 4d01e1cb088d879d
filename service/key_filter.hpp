#pragma once
// A Bloom filter over delivery keys: "certainly absent" or "perhaps present". The inbox asks it
// before it looks a new delivery's key up in delivery_keys (service/inbox.cpp, Inbox::Keys), so a
// delivery seen for the first time, nearly every one, costs no B-tree descent on the writer thread
// (with ids in no order, as the hosts send them, that descent was ~10% of intake's throughput;
// bench/RESULTS.md, 2026-11-28). "Perhaps" is settled by the table, so a false positive costs one
// lookup and nothing else; there are no false negatives.
//
// Blocked: a key's bits all lie in one 64-byte block (one cache line per layer asked). It grows by
// layers, each twice the keys of the one before, so it never needs the keys again to grow; a
// lookup asks every layer (a handful: the first holds 64Ki keys, the tenth 32Mi). About 16 bits a
// key (16 to 32 once rounded to whole blocks), i.e. 2 to 4 MB per million keys; a false positive
// rate of ~0.1% per full layer (measured: 0.09%), under 1% over six (key_filter_test).
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace tollgate::service {

class KeyFilter {
 public:
  // `first_capacity`: the keys the first layer holds before a second is added (at least 512).
  explicit KeyFilter(std::size_t first_capacity = std::size_t{1} << 16);

  void add(std::string_view key);
  [[nodiscard]] bool may_contain(std::string_view key) const;

  [[nodiscard]] std::size_t keys() const { return keys_; }  // added (a key added twice counts twice)
  [[nodiscard]] std::size_t layers() const { return layers_.size(); }
  [[nodiscard]] std::size_t bytes() const;

 private:
  struct Layer {
    std::vector<std::uint64_t> words;  // blocks of 8
    std::uint64_t block_mask = 0;      // blocks - 1 (a power of two)
    std::size_t capacity = 0;
    std::size_t count = 0;
  };
  static Layer make_layer(std::size_t capacity);
  static void set(Layer& layer, std::uint64_t hash);
  static bool test(const Layer& layer, std::uint64_t hash);

  std::vector<Layer> layers_;
  std::size_t keys_ = 0;
};

}  // namespace tollgate::service
