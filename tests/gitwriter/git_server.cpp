#include "tests/gitwriter/git_server.hpp"

#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <arpa/inet.h>
#include <csignal>
#include <netinet/in.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace tollgate::test {
namespace fs = std::filesystem;
namespace {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("bind failed");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool can_connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

void write_file(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

}  // namespace

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

std::string sh(const std::string& command) {
  std::string full = command + " 2>&1";
  FILE* p = ::popen(full.c_str(), "r");
  if (p == nullptr) throw std::runtime_error("popen failed");
  std::string out;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = ::pclose(p);
  if (status != 0) throw std::runtime_error("command failed: " + command + ": " + out);
  return out;
}

GitServer::GitServer(fs::path root, std::string user, std::string password) : root_(std::move(root)) {
  fs::create_directories(root_ / "www");
  fs::create_directories(root_ / "repos");
  write_file(root_ / "users", user + ":" + password + "\n");
  // /flaky/ is /git/ behind a CGI wrapper that answers 503 while flaky-remaining is above zero.
  const std::string remaining = (root_ / "flaky-remaining").string();
  write_file(root_ / "flaky-remaining", "0\n");
  write_file(root_ / "flaky.sh",
             "#!/bin/sh\n"
             "n=$(cat " + quote(remaining) + ")\n"
             "if [ \"$n\" -gt 0 ]; then\n"
             "  echo $((n - 1)) > " + quote(remaining) + "\n"
             "  printf 'Status: 503 Service Unavailable\\r\\nContent-Type: text/plain\\r\\n\\r\\nbusy\\n'\n"
             "  exit 0\n"
             "fi\n"
             "exec /usr/lib/git-core/git-http-backend\n");
  fs::permissions(root_ / "flaky.sh", fs::perms::owner_all);
  const char* path_env = std::getenv("PATH");
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = free_port();
    const fs::path conf = root_ / "lighttpd.conf";
    write_file(conf,
               "server.modules = (\"mod_auth\", \"mod_authn_file\", \"mod_alias\", \"mod_setenv\", \"mod_cgi\")\n"
               "server.bind = \"127.0.0.1\"\n"
               "server.port = " + std::to_string(port_) + "\n"
               "server.document-root = \"" + (root_ / "www").string() + "\"\n"
               "server.errorlog = \"" + (root_ / "lighttpd.log").string() + "\"\n"
               "server.max-request-size = 0\n"
               "alias.url = (\"/git/\" => \"/usr/lib/git-core/git-http-backend/\", \"/flaky/\" => \"" +
                   (root_ / "flaky.sh").string() + "/\")\n"
               "$HTTP[\"url\"] =~ \"^/(git|flaky)/\" {\n"
               "  cgi.assign = (\"\" => \"\")\n"
               "  setenv.add-environment = (\"GIT_PROJECT_ROOT\" => \"" + (root_ / "repos").string() +
                   "\", \"GIT_HTTP_EXPORT_ALL\" => \"\", \"PATH\" => \"" + (path_env ? path_env : "/usr/bin:/bin") + "\")\n"
               "}\n"
               "auth.backend = \"plain\"\n"
               "auth.backend.plain.userfile = \"" + (root_ / "users").string() + "\"\n"
               "auth.require = (\"/git/\" => (\"method\" => \"basic\", \"realm\" => \"git\", \"require\" => \"valid-user\"),\n"
               "                \"/flaky/\" => (\"method\" => \"basic\", \"realm\" => \"git\", \"require\" => \"valid-user\"))\n");
    std::string conf_s = conf.string();
    std::string lighttpd = "/usr/sbin/lighttpd";
    std::string out_s = (root_ / "lighttpd.out").string();
    char* argv[] = {lighttpd.data(), const_cast<char*>("-D"), const_cast<char*>("-f"), conf_s.data(), nullptr};
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("cannot start lighttpd");
    if (pid_ == 0) {
      // Dies with the test process, even one that crashed, and holds none of its pipes: an
      // orphan holding ctest's stdout would keep the test "running" for ever.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      int in = ::open("/dev/null", O_RDONLY);
      int out = ::open(out_s.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (in < 0 || out < 0) ::_exit(127);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(out, 2);
      ::execv(argv[0], argv);
      ::_exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (std::chrono::steady_clock::now() < deadline) {
      if (can_connect(port_)) return;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) break;  // exited: port taken, try another
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  throw std::runtime_error("lighttpd did not start");
}

GitServer::~GitServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::string GitServer::url(const std::string& owner, const std::string& name) const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/git/" + owner + "/" + name + ".git";
}

std::string GitServer::flaky_url(const std::string& owner, const std::string& name) const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/flaky/" + owner + "/" + name + ".git";
}

void GitServer::fail_next(int requests) {
  write_file(root_ / "flaky-remaining", std::to_string(requests) + "\n");
}

int GitServer::failures_left() const {
  std::ifstream in(root_ / "flaky-remaining");
  int n = -1;
  in >> n;
  return n;
}

fs::path GitServer::repo_dir(const std::string& owner, const std::string& name) const {
  return root_ / "repos" / owner / (name + ".git");
}

void GitServer::create_repo(const std::string& owner, const std::string& name,
                            const std::vector<std::pair<std::string, std::string>>& files) {
  auto dir = repo_dir(owner, name);
  sh("git init -q --bare -b main " + quote(dir.string()));
  commit(owner, name, "main", files, "initial");
}

std::string GitServer::commit(const std::string& owner, const std::string& name, const std::string& branch,
                              const std::vector<std::pair<std::string, std::string>>& files,
                              const std::string& message) {
  auto dir = repo_dir(owner, name);
  auto work = root_ / "work" / (owner + "-" + name);
  fs::remove_all(work);
  fs::create_directories(work);
  std::string git = "git -C " + quote(work.string()) + " -c user.name=test -c user.email=test@example.com ";
  sh(git + "init -q -b " + quote(branch));
  if (!rev_parse(owner, name, "refs/heads/" + branch).empty()) {
    sh(git + "fetch -q " + quote(dir.string()) + " " + quote(branch) + " && " + git + "reset -q --hard FETCH_HEAD");
  }
  for (const auto& [path, text] : files) write_file(work / path, text);
  sh(git + "add -A && " + git + "commit -q -m " + quote(message) + " && " + git + "push -q " + quote(dir.string()) +
     " HEAD:refs/heads/" + branch);
  return rev_parse(owner, name, "refs/heads/" + branch);
}

std::string GitServer::rev_parse(const std::string& owner, const std::string& name, const std::string& rev) const {
  try {
    std::string out = sh("git --git-dir=" + quote(repo_dir(owner, name).string()) + " rev-parse --verify -q " +
                         quote(rev + "^{commit}"));
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
  } catch (const std::runtime_error&) {
    return "";
  }
}

std::string GitServer::show(const std::string& owner, const std::string& name, const std::string& rev,
                            const std::string& path) const {
  return sh("git --git-dir=" + quote(repo_dir(owner, name).string()) + " show " + quote(rev + ":" + path) +
            " 2>/dev/null");
}

void GitServer::reject_pushes(const std::string& owner, const std::string& name, const std::string& message) {
  auto hook = repo_dir(owner, name) / "hooks" / "pre-receive";
  write_file(hook, "#!/bin/sh\necho " + quote(message) + " >&2\nexit 1\n");
  fs::permissions(hook, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
}

}  // namespace tollgate::test
