#pragma once
// `tollgate validate [FILE...]`: checks pipeline files as a compiler checks sources.
#include <iosfwd>
#include <string>
#include <vector>

namespace tollgate::cli {

struct ValidateArgs {
  std::vector<std::string> files{".tollgate.yaml"};
  std::string format = "text";  // text | json
  std::string root;             // where `pr.body` template paths resolve; default: each file's directory
  bool show_source = true;      // print the offending line under each problem (text format)
};

// 0: every file valid; 1: some file invalid; 2: a file could not be read.
[[nodiscard]] int run_validate(const ValidateArgs& args, std::ostream& out, std::ostream& err);

}  // namespace tollgate::cli
