#include "service/validate_command.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "pipeline/validate.hpp"

namespace tollgate::cli {
namespace {

namespace fs = std::filesystem;

tl::expected<std::string, std::string> read_text(const fs::path& p) {
  std::error_code ec;
  if (fs::is_directory(p, ec)) return tl::unexpected(std::string("is a directory"));
  std::ifstream in(p, std::ios::binary);
  if (!in) return tl::unexpected(std::string(std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return tl::unexpected(std::string("read error"));
  return ss.str();
}

std::string line_of(const std::string& text, int line) {
  std::size_t start = 0;
  for (int l = 1; l < line; ++l) {
    start = text.find('\n', start);
    if (start == std::string::npos) return "";
    ++start;
  }
  std::size_t end = text.find('\n', start);
  std::string s = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
  if (!s.empty() && s.back() == '\r') s.pop_back();
  return s;
}

void print_source(std::ostream& out, const std::string& text, pipeline::Position pos) {
  std::string src = line_of(text, pos.line);
  if (src.empty() && pos.line > 1) return;
  std::string num = std::to_string(pos.line);
  std::string caret(static_cast<std::size_t>(std::max(0, pos.column - 1)), ' ');
  for (std::size_t i = 0; i < caret.size() && i < src.size(); ++i) {
    if (src[i] == '\t') caret[i] = '\t';
  }
  out << " " << num << " | " << src << "\n" << " " << std::string(num.size(), ' ') << " | " << caret << "^\n";
}

}  // namespace

int run_validate(const ValidateArgs& args, std::ostream& out, std::ostream& err) {
  bool io_error = false;
  bool invalid = false;
  std::size_t problem_count = 0, bad_files = 0;
  nlohmann::json report = {{"files", nlohmann::json::array()}};
  for (const auto& name : args.files) {
    auto text = read_text(name);
    if (!text) {
      io_error = true;
      err << "tollgate: cannot read '" << name << "': " << text.error() << "\n";
      if (args.format == "json") {
        report["files"].push_back({{"file", name}, {"valid", false}, {"error", "cannot read: " + text.error()}, {"problems", nlohmann::json::array()}});
      }
      continue;
    }
    fs::path root = args.root.empty() ? fs::path(name).parent_path() : fs::path(args.root);
    std::map<std::string, std::string> template_files;  // shown name -> text, for excerpts
    pipeline::ValidateOptions options;
    options.read_file = [&](const std::string& rel) -> tl::expected<std::string, std::string> {
      auto t = read_text(root / rel);
      if (t) template_files[(root / rel).lexically_normal().string()] = *t;
      return t;
    };
    options.display_path = [&](const std::string& rel) { return (root / rel).lexically_normal().string(); };
    auto result = pipeline::load_pipeline(*text, name, options);
    if (args.format == "json") {
      nlohmann::json problems = nlohmann::json::array();
      for (const auto& d : result.problems) {
        problems.push_back({{"file", d.file},
                            {"line", d.pos.line},
                            {"column", d.pos.column},
                            {"severity", "error"},
                            {"kind", pipeline::to_string(d.kind)},
                            {"path", d.path},
                            {"message", d.message}});
      }
      nlohmann::json entry = {{"file", name}, {"valid", result.ok()}, {"problems", problems}};
      if (result.file) {
        std::size_t stages = 0;
        for (const auto& p : result.file->pipelines) stages += p.stages.size();
        entry["pipelines"] = result.file->pipelines.size();
        entry["stages"] = stages;
      }
      report["files"].push_back(std::move(entry));
    } else {
      for (const auto& d : result.problems) {
        out << pipeline::format_text(d) << "\n";
        if (args.show_source) {
          auto it = template_files.find(d.file);
          print_source(out, it != template_files.end() ? it->second : *text, d.pos);
        }
      }
      if (result.file) {
        std::size_t stages = 0;
        for (const auto& p : result.file->pipelines) stages += p.stages.size();
        out << name << ": ok (" << result.file->pipelines.size()
            << (result.file->pipelines.size() == 1 ? " pipeline, " : " pipelines, ") << stages
            << (stages == 1 ? " stage)" : " stages)") << "\n";
      }
    }
    if (!result.ok()) {
      invalid = true;
      ++bad_files;
      problem_count += result.problems.size();
    }
  }
  if (args.format == "json") {
    // Messages are valid UTF-8 by construction; replace rather than throw if one ever is not.
    out << report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else if (invalid) {
    out << problem_count << (problem_count == 1 ? " error" : " errors") << " in " << bad_files
        << (bad_files == 1 ? " file" : " files") << "\n";
  }
  if (io_error) return 2;
  return invalid ? 1 : 0;
}

}  // namespace tollgate::cli
