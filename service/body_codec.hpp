#pragma once
// How a delivery's body is kept in the inbox. Webhook payloads are repetitive JSON (a GitHub
// pull_request delivery is ~25 KB, mostly URLs): LZ4 shrinks one ~8x in ~10 us, so a delivery
// fits one database page instead of a chain of overflow pages, and the WAL, the checkpoints and the
// disk see an eighth of the bytes. Bodies that do not shrink are kept as they are.
#include <cstddef>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace tollgate::service {

enum class BodyEncoding { identity, lz4 };

[[nodiscard]] std::string_view to_string(BodyEncoding e);
[[nodiscard]] tl::expected<BodyEncoding, std::string> body_encoding_from(std::string_view name);

struct EncodedBody {
  std::string bytes;
  BodyEncoding encoding = BodyEncoding::identity;
  std::size_t size = 0;  // of the body as received
};

// Compresses when it pays (at least 1 KiB and a tenth smaller); otherwise keeps the bytes as they are.
[[nodiscard]] EncodedBody encode_body(std::string body);

// The body as received. Errors name what is wrong (a corrupt row, a size that does not match).
[[nodiscard]] tl::expected<std::string, std::string> decode_body(BodyEncoding encoding, std::string_view bytes,
                                                                 std::size_t size);

}  // namespace tollgate::service
