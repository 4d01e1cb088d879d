#pragma once
#include <string>

namespace tollgate::cli {

// `tollgate serve --config FILE`: 0 after a clean shutdown, 2 on a configuration or start-up error.
[[nodiscard]] int run_serve(const std::string& config_path, unsigned threads);

}  // namespace tollgate::cli
