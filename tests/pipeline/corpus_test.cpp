// Every tests/pipeline/invalid/NAME.yaml must produce exactly the problems in NAME.expected
// (`FILE:LINE:COL: error: message`, one per line), and every examples/*.yaml none.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

#include "pipeline/validate.hpp"

namespace fs = std::filesystem;
using namespace tollgate::pipeline;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<fs::path> files_in(const fs::path& dir, const std::string& ext) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ext) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

ValidateOptions options_for(const fs::path& dir) {
  ValidateOptions o;
  o.read_file = [dir](const std::string& rel) -> tl::expected<std::string, std::string> {
    if (!fs::exists(dir / rel)) return tl::unexpected(std::string("No such file or directory"));
    return slurp(dir / rel);
  };
  return o;
}

}  // namespace

TEST_CASE("each invalid pipeline file reports exactly its expected problems", "[corpus]") {
  const fs::path dir = fs::path(TOLLGATE_SOURCE_DIR) / "tests/pipeline/invalid";
  auto cases = files_in(dir, ".yaml");
  REQUIRE(cases.size() >= 40);
  for (const auto& yaml : cases) {
    fs::path expected_file = fs::path(yaml).replace_extension(".expected");
    INFO("case " << yaml.filename().string());
    REQUIRE(fs::exists(expected_file));
    auto result = load_pipeline(slurp(yaml), yaml.filename().string(), options_for(dir));
    std::string actual;
    for (const auto& d : result.problems) actual += format_text(d) + "\n";
    CHECK_FALSE(result.ok());
    CHECK_FALSE(result.file.has_value());
    CHECK(actual == slurp(expected_file));
  }
}

TEST_CASE("every shipped example is valid", "[corpus]") {
  const fs::path dir = fs::path(TOLLGATE_SOURCE_DIR) / "examples";
  auto examples = files_in(dir, ".yaml");
  REQUIRE(examples.size() >= 5);
  for (const auto& yaml : examples) {
    INFO("example " << yaml.filename().string());
    auto result = load_pipeline(slurp(yaml), yaml.filename().string(), options_for(dir));
    std::string problems;
    for (const auto& d : result.problems) problems += format_text(d) + "\n";
    CHECK(problems == "");
    REQUIRE(result.file.has_value());
    CHECK_FALSE(result.file->pipelines.empty());
  }
}
