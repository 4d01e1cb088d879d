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

}  // namespace tollgate::pipeline
