// In-process cost of loading + validating one pipeline file: median and p90 of N runs.
// Usage: bench_validate FILE [RUNS]
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <vector>

#include "pipeline/schema_check.hpp"
#include "pipeline/validate.hpp"

#include <yaml-cpp/yaml.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: bench_validate FILE [RUNS]\n";
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const int runs = argc > 2 ? std::atoi(argv[2]) : 50;
  std::vector<double> ms;
  std::size_t problems = 0;
  for (int i = 0; i < runs; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = tollgate::pipeline::load_pipeline(text, argv[1]);
    auto t1 = std::chrono::steady_clock::now();
    problems = r.problems.size();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  // Where the time goes: yaml-cpp alone, YAML -> JSON with positions, and the schema check.
  auto median_of = [&](auto&& fn) {
    std::vector<double> t;
    for (int i = 0; i < runs; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      fn();
      t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  };
  double yaml_cpp = median_of([&] { (void)YAML::LoadAll(text); });
  double to_json = median_of([&] { (void)tollgate::pipeline::parse_yaml(text, argv[1]); });
  auto doc = tollgate::pipeline::parse_yaml(text, argv[1]);
  double schema = median_of([&] { (void)tollgate::pipeline::check_schema(*doc, argv[1]); });
  std::size_t lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
  std::cout << "in-process load+validate: " << lines << " lines, " << runs << " runs, median "
            << ms[ms.size() / 2] << " ms, p90 " << ms[ms.size() * 9 / 10] << " ms, min " << ms.front()
            << " ms, problems " << problems << "\n"
            << "  phases (medians): yaml-cpp parse " << yaml_cpp << " ms; YAML->JSON with positions (incl. parse) "
            << to_json << " ms; schema check " << schema << " ms\n";
  return problems == 0 ? 0 : 1;
}
