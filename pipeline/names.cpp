#include "pipeline/names.hpp"

namespace tollgate::pipeline {

std::optional<std::string> branch_name_problem(std::string_view n) {
  if (n.empty()) return "branch name is empty";
  if (n == "@") return "'@' is not a valid branch name";
  if (n.front() == '/' || n.back() == '/') return "a branch name cannot start or end with '/'";
  if (n.back() == '.') return "a branch name cannot end with '.'";
  if (n.size() >= 5 && n.substr(n.size() - 5) == ".lock") return "a branch name cannot end with '.lock'";
  if (n.find("..") != std::string_view::npos) return "a branch name cannot contain '..'";
  if (n.find("//") != std::string_view::npos) return "a branch name cannot contain '//'";
  if (n.find("@{") != std::string_view::npos) return "a branch name cannot contain '@{'";
  if (n.rfind("refs/", 0) == 0) return "give the branch name without 'refs/heads/'";
  for (std::size_t i = 0; i < n.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(n[i]);
    if (c < 0x20 || c == 0x7f || c == ' ' || c == '~' || c == '^' || c == ':' || c == '?' || c == '*' ||
        c == '[' || c == '\\') {
      return std::string("a branch name cannot contain ") +
             (c < 0x20 || c == 0x7f ? std::string("control characters") : "'" + std::string(1, static_cast<char>(c)) + "'");
    }
    if (c == '.' && (i == 0 || n[i - 1] == '/')) return "a branch name component cannot start with '.'";
  }
  return std::nullopt;
}

std::optional<std::string> relative_path_problem(std::string_view p) {
  if (p.empty()) return "path is empty";
  if (p.front() == '/') return "path must be relative to the repository root, not start with '/'";
  if (p.find('\\') != std::string_view::npos) return "path must use '/' as separator, not '\\'";
  std::size_t start = 0;
  while (start <= p.size()) {
    std::size_t end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    std::string_view seg = p.substr(start, end - start);
    if (seg == "..") return "path must not leave the repository ('..')";
    if (seg == ".git") return "path must not point into '.git'";
    if (seg.empty() && end != p.size()) return "path has an empty segment ('//')";
    start = end + 1;
  }
  for (char c : p) {
    if (static_cast<unsigned char>(c) < 0x20) return "path contains a control character";
  }
  return std::nullopt;
}

}  // namespace tollgate::pipeline
