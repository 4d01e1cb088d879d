// libFuzzer target: the byte-preserving edits (service/edit) over arbitrary files, paths and
// values. Input: "<path>\n<value>\n<file>". For YAML and JSON, set_value must not crash; when it
// succeeds, applying the same edit to its own output must change nothing (idempotence: the
// promotion commit of a re-run is empty), and likewise for set_image on the file.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "service/edit/edit.hpp"

namespace {

void check_idempotent(const tl::expected<tollgate::edit::EditResult, tollgate::edit::EditError>& first,
                      const tl::expected<tollgate::edit::EditResult, tollgate::edit::EditError>& again) {
  if (!first) return;
  // The edited file must accept the same edit again, and change nothing.
  if (!again || again->changed || again->text != first->text) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto nl1 = in.find('\n');
  if (nl1 == std::string_view::npos) return 0;
  auto nl2 = in.find('\n', nl1 + 1);
  if (nl2 == std::string_view::npos) return 0;
  std::string_view path = in.substr(0, nl1);
  std::string_view value = in.substr(nl1 + 1, nl2 - nl1 - 1);
  std::string_view file = in.substr(nl2 + 1);
  using tollgate::edit::FileFormat;
  for (auto format : {FileFormat::yaml, FileFormat::json}) {
    auto first = tollgate::edit::set_value(file, format, path, value);
    if (first) check_idempotent(first, tollgate::edit::set_value(first->text, format, path, value));
  }
  tollgate::edit::ImageEdit image{std::string(path), std::string(value)};
  auto first = tollgate::edit::set_image(file, image);
  if (first) check_idempotent(first, tollgate::edit::set_image(first->text, image));
  return 0;
}
