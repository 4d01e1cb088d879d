// The one place pipeline/ reads the system: the tz database, to check window time zones.
#include <cstdlib>
#include <fstream>
#include <string>

#include "pipeline/names.hpp"

namespace tollgate::pipeline {

bool system_timezone_exists(std::string_view name) {
  if (name.empty() || name.size() > 64 || name.front() == '/' || name.find("..") != std::string_view::npos) {
    return false;
  }
  for (char c : name) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '/' || c == '_' ||
              c == '-' || c == '+';
    if (!ok) return false;
  }
  const char* dir = std::getenv("TZDIR");
  std::string path = std::string(dir && *dir ? dir : "/usr/share/zoneinfo") + "/" + std::string(name);
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  // Directories (e.g. "Europe") fail to read; compiled zones start with "TZif".
  return in.read(magic, 4) && std::string(magic, 4) == "TZif";
}

const std::vector<std::string>& system_timezone_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out{"UTC"};
    const char* dir = std::getenv("TZDIR");
    std::ifstream in(std::string(dir && *dir ? dir : "/usr/share/zoneinfo") + "/zone1970.tab");
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      // country codes <TAB> coordinates <TAB> zone [<TAB> comment]
      std::size_t a = line.find('\t');
      std::size_t b = a == std::string::npos ? a : line.find('\t', a + 1);
      if (b == std::string::npos) continue;
      std::size_t c = line.find('\t', b + 1);
      out.push_back(line.substr(b + 1, c == std::string::npos ? std::string::npos : c - b - 1));
    }
    return out;
  }();
  return names;
}

}  // namespace tollgate::pipeline
