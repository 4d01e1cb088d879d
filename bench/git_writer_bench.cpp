// bench_git_writer: times tollgate's git writer end to end (fetch of what is new into the mirror,
// in-memory commit, push) against a real smart-HTTP server. Used by bench/git-writer/run.sh.
//
// One first promotion into an empty mirror (the one-time initial fetch, reported as first_ms), then
// --runs promotions, each setting --path in --file to a new distinct value and pushing to a new
// branch <prefix>-<i>, so every one is a real new commit and a real push. Prints one JSON line:
//   {"first_ms":..., "runs_ms":[...], "median_ms":...}
// Exits non-zero, printing the error, on any failure or on an outcome other than `pushed`.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "service/git/git_writer.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::string url, user = "x-access-token", token_file, data_dir, base = "main";
  std::string file = "apps/app/values.yaml", path = "image.tag", prefix = "tollgate-bench";
  int runs = 5;
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "bench_git_writer: " << why << "\n"
            << "usage: bench_git_writer --url URL --token-file FILE --data-dir DIR [--user NAME] [--base main]\n"
            << "       [--file apps/app/values.yaml] [--path image.tag] [--runs 5] [--branch-prefix tollgate-bench]\n";
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (i + 1 >= argc) usage("missing value for " + k);
    std::string v = argv[++i];
    if (k == "--url") a.url = v;
    else if (k == "--user") a.user = v;
    else if (k == "--token-file") a.token_file = v;
    else if (k == "--data-dir") a.data_dir = v;
    else if (k == "--base") a.base = v;
    else if (k == "--file") a.file = v;
    else if (k == "--path") a.path = v;
    else if (k == "--runs") a.runs = std::atoi(v.c_str());
    else if (k == "--branch-prefix") a.prefix = v;
    else usage("unknown argument " + k);
  }
  if (a.url.empty() || a.token_file.empty() || a.data_dir.empty()) usage("--url, --token-file and --data-dir are required");
  if (a.runs < 1) usage("--runs must be at least 1");
  return a;
}

std::string read_token(const std::string& file) {
  std::ifstream in(file);
  if (!in) usage("cannot read " + file);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string t = ss.str();
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
  return t;
}

const char* outcome_name(tollgate::git::Outcome o) {
  switch (o) {
    case tollgate::git::Outcome::pushed: return "pushed";
    case tollgate::git::Outcome::up_to_date: return "up_to_date";
    case tollgate::git::Outcome::unchanged: return "unchanged";
  }
  return "?";
}

// One promotion; returns its wall time in ms, or exits with the error.
double promote(tollgate::git::GitWriter& writer, const Args& a, const std::string& token, const std::string& branch,
               const std::string& value) {
  tollgate::git::PromotionRequest req;
  req.url = a.url;
  req.credentials = {a.user, token};
  req.base_branch = a.base;
  req.target_branch = branch;
  req.message = "promote app to " + value;
  req.author = {"tollgate bench", "bench@tollgate.invalid"};
  req.committer = req.author;
  req.edits.emplace_back(tollgate::git::SetEdit{a.file, a.path, value});
  const auto t0 = Clock::now();
  auto r = writer.promote(req);
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  if (!r) {
    std::cerr << "bench_git_writer: " << branch << ": error (kind " << static_cast<int>(r.error().kind)
              << "): " << r.error().message << "\n";
    std::exit(1);
  }
  if (r->outcome != tollgate::git::Outcome::pushed) {
    std::cerr << "bench_git_writer: " << branch << ": outcome " << outcome_name(r->outcome)
              << ", expected pushed (is the value really new?)\n";
    std::exit(1);
  }
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  const std::string token = read_token(a.token_file);
  // Distinct values across invocations too (the branches are new, but so should the content be).
  const auto stamp = std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
  tollgate::git::GitWriter writer(tollgate::git::GitWriterOptions{a.data_dir});

  const double first = promote(writer, a, token, a.prefix + "-first", "bench-" + stamp + "-first");
  std::vector<double> runs;
  for (int i = 1; i <= a.runs; ++i) {
    runs.push_back(promote(writer, a, token, a.prefix + "-" + std::to_string(i), "bench-" + stamp + "-" + std::to_string(i)));
  }
  std::vector<double> sorted = runs;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  const double median = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;

  std::printf("{\"first_ms\":%.1f,\"runs_ms\":[", first);
  for (size_t i = 0; i < runs.size(); ++i) std::printf("%s%.1f", i ? "," : "", runs[i]);
  std::printf("],\"median_ms\":%.1f}\n", median);
  return 0;
}
