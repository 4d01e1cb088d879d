// libFuzzer target: arbitrary bytes through the whole loader + validator. Any crash, sanitizer
// report or exception escaping load_pipeline is a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "pipeline/utf8.hpp"
#include "pipeline/validate.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  tollgate::pipeline::ValidateOptions options;
  options.timezone_exists = [](std::string_view tz) { return tz == "UTC" || tz == "Europe/Berlin"; };
  options.read_file = [](const std::string& path) -> tl::expected<std::string, std::string> {
    if (path == "templates/body.mustache") return std::string("Body {{stage.name}} {{#source.pr}}x{{/source.pr}}");
    return tl::unexpected(std::string("not found"));
  };
  auto result = tollgate::pipeline::load_pipeline(text, "fuzz.yaml", options);
  // Invariants: a model only without problems; every problem located inside the input.
  if (result.file.has_value() != result.problems.empty()) __builtin_trap();
  for (const auto& p : result.problems) {
    if (p.pos.line < 1 || p.pos.column < 1 || p.message.empty()) __builtin_trap();
    // Messages go into JSON, annotations and comments: they must be valid UTF-8.
    if (tollgate::pipeline::utf8_error(p.message) || tollgate::pipeline::utf8_error(p.path)) __builtin_trap();
  }
  return 0;
}
