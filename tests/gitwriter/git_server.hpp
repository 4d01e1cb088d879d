#pragma once
// A real smart-HTTP git server for tests: lighttpd + git http-backend on an ephemeral port of
// 127.0.0.1 with basic auth (the config of tests/githost/lighttpd.mjs and ../shared/HOSTS.md),
// bare repositories made with the git CLI, stopped by pid when the object goes away.
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <sys/types.h>

namespace tollgate::test {

// Runs a shell command; returns its stdout, throws std::runtime_error when it fails.
std::string sh(const std::string& command);
std::string quote(const std::string& s);

class GitServer {
 public:
  // `root` is an empty temporary folder owned by the test.
  GitServer(std::filesystem::path root, std::string user, std::string password);
  GitServer(const GitServer&) = delete;
  GitServer& operator=(const GitServer&) = delete;
  ~GitServer();

  [[nodiscard]] std::string url(const std::string& owner, const std::string& name) const;
  // The same repository behind a wrapper that answers 503 to the next `fail_next(n)` requests
  // that pass authentication.
  [[nodiscard]] std::string flaky_url(const std::string& owner, const std::string& name) const;
  void fail_next(int requests);
  [[nodiscard]] int failures_left() const;
  [[nodiscard]] std::filesystem::path repo_dir(const std::string& owner, const std::string& name) const;

  // A bare repository whose branch `main` has one commit holding `files` (path -> contents).
  void create_repo(const std::string& owner, const std::string& name,
                   const std::vector<std::pair<std::string, std::string>>& files);
  // Adds a commit to `branch` with `files` written (path -> contents); returns its sha.
  std::string commit(const std::string& owner, const std::string& name, const std::string& branch,
                     const std::vector<std::pair<std::string, std::string>>& files, const std::string& message);
  // `git rev-parse` in the server's repository; empty when the ref does not exist.
  std::string rev_parse(const std::string& owner, const std::string& name, const std::string& rev) const;
  // `git show REV:PATH`, byte-exact.
  std::string show(const std::string& owner, const std::string& name, const std::string& rev,
                   const std::string& path) const;
  // Installs a pre-receive hook that prints `message` to stderr and refuses every push.
  void reject_pushes(const std::string& owner, const std::string& name, const std::string& message);

 private:
  std::filesystem::path root_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace tollgate::test
