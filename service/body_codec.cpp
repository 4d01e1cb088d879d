#include "service/body_codec.hpp"

#include <lz4.h>

#include <limits>
#include <memory>

namespace tollgate::service {

std::string_view to_string(BodyEncoding e) { return e == BodyEncoding::lz4 ? "lz4" : "identity"; }

tl::expected<BodyEncoding, std::string> body_encoding_from(std::string_view name) {
  if (name == "identity") return BodyEncoding::identity;
  if (name == "lz4") return BodyEncoding::lz4;
  return tl::unexpected("unknown body encoding '" + std::string(name.substr(0, 32)) + "' (this tollgate knows identity and lz4)");
}

EncodedBody encode_body(std::string body) {
  EncodedBody out;
  out.size = body.size();
  constexpr std::size_t kWorthIt = 1024;
  if (body.size() >= kWorthIt && body.size() <= static_cast<std::size_t>(LZ4_MAX_INPUT_SIZE)) {
    const int src = static_cast<int>(body.size());
    // Compress into a per-thread scratch buffer, then copy out only the (small) result: sizing a
    // string for the worst case would zero-fill it first, which cost more than the compression.
    thread_local std::unique_ptr<char[]> scratch;
    thread_local int scratch_size = 0;
    const int bound = LZ4_compressBound(src);
    if (bound > scratch_size) {
      scratch = std::make_unique_for_overwrite<char[]>(static_cast<std::size_t>(bound));
      scratch_size = bound;
    }
    // A stream per thread, reset the fast way: LZ4_compress_fast would zero its 16 KiB hash
    // table for every call. With no dictionary, the output is a plain block (LZ4_decompress_safe).
    thread_local std::unique_ptr<LZ4_stream_t, int (*)(LZ4_stream_t*)> stream(LZ4_createStream(), LZ4_freeStream);
    if (!stream) {
      out.bytes = std::move(body);
      return out;
    }
    LZ4_resetStream_fast(stream.get());
    // Acceleration 4: on a 25 KB webhook, 3.6 KB instead of 3.2 KB in ~20% less time than the
    // default; this runs on the I/O threads for every delivery.
    const int n = LZ4_compress_fast_continue(stream.get(), body.data(), scratch.get(), src, bound, 4);
    if (n > 0 && static_cast<std::size_t>(n) <= body.size() - body.size() / 10) {
      out.bytes.assign(scratch.get(), static_cast<std::size_t>(n));
      out.encoding = BodyEncoding::lz4;
      return out;
    }
  }
  out.bytes = std::move(body);
  return out;
}

tl::expected<std::string, std::string> decode_body(BodyEncoding encoding, std::string_view bytes, std::size_t size) {
  if (encoding == BodyEncoding::identity) {
    if (bytes.size() != size) {
      return tl::unexpected("stored body has " + std::to_string(bytes.size()) + " bytes, its row says " + std::to_string(size));
    }
    return std::string(bytes);
  }
  if (size > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
      bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    return tl::unexpected("stored body is too large to decompress (" + std::to_string(size) + " bytes)");
  }
  std::string out(size, '\0');
  const int n = LZ4_decompress_safe(bytes.data(), out.data(), static_cast<int>(bytes.size()), static_cast<int>(size));
  if (n < 0 || static_cast<std::size_t>(n) != size) {
    return tl::unexpected("stored body is corrupt: LZ4 data does not decompress to the recorded " + std::to_string(size) + " bytes");
  }
  return out;
}

}  // namespace tollgate::service
