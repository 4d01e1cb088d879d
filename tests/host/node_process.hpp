#pragma once
// A node script run as a child process for a test: started with pipes, its first stdout line
// (a JSON object with its URLs) parsed, stopped with SIGTERM by pid.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace tollgate::tests {

class NodeProcess {
 public:
  explicit NodeProcess(const std::vector<std::string>& args) {
    int out[2];
    int in[2];
    if (pipe(out) != 0 || pipe(in) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      dup2(out[1], 1);
      dup2(in[0], 0);
      close(out[0]);
      close(out[1]);
      close(in[0]);
      close(in[1]);
      std::vector<char*> argv;
      static std::string node = "node";
      argv.push_back(node.data());
      std::vector<std::string> copy = args;
      for (auto& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      execvp("node", argv.data());
      _exit(127);
    }
    close(out[1]);
    close(in[0]);
    stdin_ = in[1];
    stdout_ = out[0];
    std::string line;
    char c = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      const auto n = read(stdout_, &c, 1);
      if (n <= 0) break;
      if (c == '\n') break;
      line.push_back(c);
    }
    ready_ = nlohmann::json::parse(line, nullptr, false);
    if (!ready_.is_object()) {
      stop();
      throw std::runtime_error("node " + (args.empty() ? std::string() : args[0]) + ": no ready line (got '" + line + "')");
    }
  }
  NodeProcess(const NodeProcess&) = delete;
  NodeProcess& operator=(const NodeProcess&) = delete;
  ~NodeProcess() { stop(); }

  const nlohmann::json& ready() const { return ready_; }

  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100; ++i) {  // up to 5 s, then SIGKILL
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    if (stdin_ >= 0) close(stdin_);
    if (stdout_ >= 0) close(stdout_);
    stdin_ = stdout_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  int stdout_ = -1;
  nlohmann::json ready_;
};

inline std::filesystem::path make_temp_dir(const std::string& prefix) {
  std::string templ = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
  if (mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return templ;
}

}  // namespace tollgate::tests
