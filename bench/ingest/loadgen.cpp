// bench_loadgen: a small HTTP/1.1 load generator for webhook intake (bench/ingest).
//
// N keep-alive connections (default 64), one request in flight on each. The request is built once
// (headers + body + X-Hub-Signature-256, which is over the body and so never changes); before each
// send only the fixed-width delivery id is patched with a new counter, so every request carries a
// distinct X-GitHub-Delivery and the generator itself costs next to nothing: per request one
// send(), usually one recv(), and a share of one epoll_wait(). Latency is measured from the first
// byte sent to the last byte of the response received.
//
// Usage: bench_loadgen --port PORT [--path /hooks/github] [--connections 64] [--duration 10 |
//        --requests N] [--body FILE] [--secret S | --secret-file F] [--event pull_request]
//        [--threads 1] [--json]
// Without --body it sends GET requests (e.g. --path /healthz).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string path = "/hooks/github";
  int connections = 64;
  double duration = 10.0;      // seconds; ignored when requests > 0
  std::uint64_t requests = 0;  // total; 0 = run for `duration`
  std::string body_file;
  std::string secret;
  std::string event = "pull_request";
  std::string content_type = "application/json";
  std::vector<std::string> extra_headers;
  int threads = 1;
  double timeout = 10.0;  // per request, seconds
  double grace = 5.0;     // after the duration, wait this long for requests in flight
  bool json = false;
  std::string run_id;  // 8 hex digits: the first group of every delivery id
  bool scattered_ids = false;  // --ids scattered
};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "bench_loadgen: %s\n", msg.c_str());
  std::exit(2);
}

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) die("cannot read '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
            data.size(), mac, &len)) {
    die("HMAC failed");
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[mac[i] >> 4];
    out += hex[mac[i] & 15];
  }
  return out;
}

void usage() {
  std::puts(
      "usage: bench_loadgen --port PORT [options]\n"
      "  --host IP            127.0.0.1 (IPv4 only)\n"
      "  --port PORT          required\n"
      "  --path PATH          /hooks/github\n"
      "  --connections N      64 keep-alive connections, one request in flight on each\n"
      "  --duration SECONDS   10 (then waits up to --grace for requests in flight)\n"
      "  --requests N         send exactly N requests instead of running for a duration\n"
      "  --body FILE          POST this body (without it: GET)\n"
      "  --secret S           sign the body: X-Hub-Signature-256 (HMAC-SHA256)\n"
      "  --secret-file F      the same, secret read from F (first line)\n"
      "  --event NAME         X-GitHub-Event, default pull_request\n"
      "  --content-type T     application/json\n"
      "  --header 'K: V'      an extra header (repeatable)\n"
      "  --threads N          1 (each thread owns connections/N connections)\n"
      "  --timeout SECONDS    10 per request (then counted as an error, connection reopened)\n"
      "  --grace SECONDS      5\n"
      "  --run-id HEX8        first group of the delivery ids (default: random)\n"
      "  --ids ORDER          sequential (default): COUNTER counts up; scattered: COUNTER is the count\n"
      "                       through a bijection of 48 bits, so ids are still distinct but arrive in\n"
      "                       no order, like the random GUIDs real hosts send\n"
      "  --json               print one JSON object instead of text\n"
      "Every request carries X-GitHub-Delivery RUNID-0000-4000-8000-COUNTER (COUNTER: 12 hex digits).");
}

Options parse(int argc, char** argv) {
  Options o;
  auto value = [&](int& i) -> std::string {
    if (i + 1 >= argc) die(std::string("missing value after ") + argv[i]);
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--host") o.host = value(i);
    else if (a == "--port") o.port = std::atoi(value(i).c_str());
    else if (a == "--path") o.path = value(i);
    else if (a == "--connections" || a == "-c") o.connections = std::atoi(value(i).c_str());
    else if (a == "--duration" || a == "-d") o.duration = std::atof(value(i).c_str());
    else if (a == "--requests" || a == "-n") o.requests = std::strtoull(value(i).c_str(), nullptr, 10);
    else if (a == "--body") o.body_file = value(i);
    else if (a == "--secret") o.secret = value(i);
    else if (a == "--secret-file") {
      std::string s = read_file(value(i));
      s = s.substr(0, s.find('\n'));
      while (!s.empty() && (s.back() == '\r' || s.back() == ' ')) s.pop_back();
      o.secret = s;
    } else if (a == "--event") o.event = value(i);
    else if (a == "--content-type") o.content_type = value(i);
    else if (a == "--header") o.extra_headers.push_back(value(i));
    else if (a == "--threads") o.threads = std::atoi(value(i).c_str());
    else if (a == "--timeout") o.timeout = std::atof(value(i).c_str());
    else if (a == "--grace") o.grace = std::atof(value(i).c_str());
    else if (a == "--run-id") o.run_id = value(i);
    else if (a == "--ids") {
      const std::string v = value(i);
      if (v != "sequential" && v != "scattered") die("--ids must be sequential or scattered");
      o.scattered_ids = v == "scattered";
    }
    else if (a == "--json") o.json = true;
    else if (a == "--help" || a == "-h") {
      usage();
      std::exit(0);
    } else die("unknown option '" + a + "' (see --help)");
  }
  if (o.port <= 0 || o.port > 65535) die("--port is required (1-65535)");
  if (o.connections < 1) die("--connections must be at least 1");
  if (o.threads < 1) o.threads = 1;
  if (o.threads > o.connections) o.threads = o.connections;
  if (o.requests == 0 && o.duration <= 0) die("--duration must be > 0");
  if (o.run_id.empty()) {
    std::random_device rd;
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(rd()));
    o.run_id = buf;
  }
  if (o.run_id.size() != 8 || o.run_id.find_first_not_of("0123456789abcdef") != std::string::npos) {
    die("--run-id must be 8 lower-case hex digits");
  }
  return o;
}

// The prebuilt request and where its delivery counter lives.
struct Template {
  std::string bytes;
  std::size_t counter_offset = 0;  // 12 hex digits
};

Template build_request(const Options& o, const std::string& body) {
  const bool post = !o.body_file.empty();
  std::string r;
  r += post ? "POST " : "GET ";
  r += o.path + " HTTP/1.1\r\n";
  r += "Host: " + o.host + ":" + std::to_string(o.port) + "\r\n";
  r += "User-Agent: GitHub-Hookshot/bench_loadgen\r\n";
  r += "Accept: */*\r\n";
  if (post) {
    r += "Content-Type: " + o.content_type + "\r\n";
    r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  r += "X-GitHub-Event: " + o.event + "\r\n";
  r += "X-GitHub-Delivery: " + o.run_id + "-0000-4000-8000-";
  Template t;
  t.counter_offset = r.size();
  r += "000000000000\r\n";
  r += "X-GitHub-Hook-ID: 123456789\r\n";
  r += "X-GitHub-Hook-Installation-Target-ID: 186853002\r\n";
  r += "X-GitHub-Hook-Installation-Target-Type: repository\r\n";
  if (!o.secret.empty() && post) r += "X-Hub-Signature-256: sha256=" + hmac_sha256_hex(o.secret, body) + "\r\n";
  for (const auto& h : o.extra_headers) r += h + "\r\n";
  r += "\r\n";
  r += body;
  t.bytes = std::move(r);
  return t;
}

struct Shared {
  const Options* opt = nullptr;
  const Template* tmpl = nullptr;
  sockaddr_in addr{};
  std::atomic<std::uint64_t> counter{0};  // delivery ids handed out
  std::atomic<std::uint64_t> issued{0};   // requests started (for --requests)
  std::atomic<bool> stop_issuing{false};
  std::uint64_t start_ns = 0;
  std::uint64_t deadline_ns = 0;  // stop issuing (duration mode)
  std::uint64_t hard_stop_ns = 0;
};

struct Stats {
  std::vector<std::uint32_t> latency_us;
  std::map<int, std::uint64_t> by_status;
  std::map<std::string, std::uint64_t> socket_errors;
  std::uint64_t connects = 0;
  std::uint64_t last_done_ns = 0;
};

struct Conn {
  int fd = -1;
  std::string req;  // this connection's copy of the template (patched per request)
  std::size_t sent = 0;
  std::vector<char> in;
  std::size_t in_len = 0;
  std::uint64_t started_ns = 0;
  bool busy = false;    // a request is in flight
  bool sending = false;  // part of it is still unsent
};

// A bijection of the 48-bit counter space (odd multipliers and an xor-shift, each invertible
// modulo 2^48): distinct counters stay distinct, consecutive ones land far apart.
std::uint64_t scatter48(std::uint64_t x) {
  constexpr std::uint64_t mask = (std::uint64_t{1} << 48) - 1;
  x = (x * 0x9E3779B97F4Bull) & mask;
  x ^= x >> 23;
  x = (x * 0xC2B2AE3D27D5ull) & mask;
  x ^= x >> 21;
  return x;
}

void hex12(char* out, std::uint64_t v) {
  static const char* hex = "0123456789abcdef";
  for (int i = 11; i >= 0; --i) {
    out[i] = hex[v & 15];
    v >>= 4;
  }
}

// Parses a complete response in c.in; returns 0 if more bytes are needed, -1 on garbage, or the
// total response length. Sets status and close.
long parse_response(const char* p, std::size_t n, int& status, bool& close) {
  std::string_view s(p, n);
  auto end = s.find("\r\n\r\n");
  if (end == std::string_view::npos) return n > 64 * 1024 ? -1 : 0;
  if (s.substr(0, 5) != "HTTP/" || s.size() < 12) return -1;
  status = std::atoi(std::string(s.substr(9, 3)).c_str());
  std::string_view head = s.substr(0, end);
  long content_length = -1;
  bool chunked = false;
  close = s.substr(0, 8) == "HTTP/1.0";
  std::size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos < head.size()) {
    std::size_t next = head.find("\r\n", pos + 2);
    std::string_view line = head.substr(pos + 2, (next == std::string_view::npos ? head.size() : next) - pos - 2);
    auto colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string name(line.substr(0, colon));
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      std::string lv(v);
      for (auto& ch : lv) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (name == "content-length") content_length = std::atol(lv.c_str());
      else if (name == "transfer-encoding" && lv.find("chunked") != std::string::npos) chunked = true;
      else if (name == "connection") {
        if (lv.find("close") != std::string::npos) close = true;
        else if (lv.find("keep-alive") != std::string::npos) close = false;
      }
    }
    pos = next;
  }
  std::size_t body_start = end + 4;
  if (status == 204 || status == 304 || (status >= 100 && status < 200)) return static_cast<long>(body_start);
  if (chunked) {
    std::size_t at = body_start;
    while (true) {
      auto eol = s.find("\r\n", at);
      if (eol == std::string_view::npos) return 0;
      unsigned long size = std::strtoul(std::string(s.substr(at, eol - at)).c_str(), nullptr, 16);
      at = eol + 2;
      if (size == 0) {
        // trailers end with an empty line
        auto fin = s.find("\r\n", at);
        while (fin != std::string_view::npos && fin != at) {
          at = fin + 2;
          fin = s.find("\r\n", at);
        }
        if (fin == std::string_view::npos) return 0;
        return static_cast<long>(fin + 2);
      }
      if (s.size() < at + size + 2) return 0;
      at += size + 2;
    }
  }
  if (content_length < 0) return -1;  // read-until-close responses are not supported
  if (n < body_start + static_cast<std::size_t>(content_length)) return 0;
  return static_cast<long>(body_start + static_cast<std::size_t>(content_length));
}

class Worker {
 public:
  Worker(Shared& sh, int nconns) : sh_(sh), conns_(static_cast<std::size_t>(nconns)) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) die(std::string("epoll_create1: ") + std::strerror(errno));
    stats_.latency_us.reserve(1 << 20);
  }
  ~Worker() {
    for (auto& c : conns_)
      if (c.fd >= 0) ::close(c.fd);
    ::close(ep_);
  }

  Stats& stats() { return stats_; }

  void run() {
    for (auto& c : conns_) {
      c.req = sh_.tmpl->bytes;
      c.in.resize(64 * 1024);
      if (!open(c)) continue;
      start_request(c);
    }
    std::vector<epoll_event> events(conns_.size() + 1);
    std::uint64_t last_scan = now_ns();
    while (true) {
      std::uint64_t now = now_ns();
      if (in_flight_ == 0 && (sh_.stop_issuing.load(std::memory_order_relaxed) || now >= sh_.deadline_ns)) break;
      if (now >= sh_.hard_stop_ns) break;
      int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()), 50);
      if (n < 0) {
        if (errno == EINTR) continue;
        die(std::string("epoll_wait: ") + std::strerror(errno));
      }
      for (int i = 0; i < n; ++i) {
        Conn& c = conns_[events[i].data.u64];
        if (c.fd < 0) continue;
        if (events[i].events & (EPOLLERR)) {
          fail(c, "socket error");
          continue;
        }
        if (c.busy && c.sending && (events[i].events & EPOLLOUT)) flush(c);
        if (c.fd >= 0 && c.busy && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))) readable(c);
        else if (c.fd >= 0 && !c.busy && (events[i].events & (EPOLLHUP | EPOLLRDHUP))) {
          close_conn(c);  // the server closed an idle connection: reopen it if still running
          if (may_issue(now_ns()) && open(c)) start_request(c);
        }
      }
      now = now_ns();
      if (now - last_scan > 100'000'000ULL) {
        last_scan = now;
        const auto limit = static_cast<std::uint64_t>(sh_.opt->timeout * 1e9);
        for (auto& c : conns_) {
          if (c.busy && now - c.started_ns > limit) fail(c, "timeout");
          if (c.fd < 0 && may_issue(now)) {
            if (open(c)) start_request(c);
          }
        }
      }
    }
  }

 private:
  bool may_issue(std::uint64_t now) {
    if (sh_.stop_issuing.load(std::memory_order_relaxed)) return false;
    if (sh_.opt->requests == 0) return now < sh_.deadline_ns;
    return true;
  }

  bool open(Conn& c) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die(std::string("socket: ") + std::strerror(errno));
    timeval tv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // bounds the blocking connect
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&sh_.addr), sizeof sh_.addr) != 0) {
      ++stats_.socket_errors[std::string("connect: ") + std::strerror(errno)];
      ::close(fd);
      return false;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = static_cast<std::uint64_t>(&c - conns_.data());
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) die(std::string("epoll_ctl: ") + std::strerror(errno));
    c.fd = fd;
    c.busy = false;
    ++stats_.connects;
    return true;
  }

  void close_conn(Conn& c) {
    if (c.fd >= 0) ::close(c.fd);  // also removes it from the epoll set
    c.fd = -1;
    if (c.busy) --in_flight_;
    c.busy = false;
    c.sending = false;
  }

  void fail(Conn& c, const std::string& what) {
    ++stats_.socket_errors[what];
    close_conn(c);
    std::uint64_t now = now_ns();
    if (may_issue(now) && open(c)) start_request(c);
  }

  void start_request(Conn& c) {
    std::uint64_t now = now_ns();
    if (!may_issue(now)) return;
    if (sh_.opt->requests) {
      std::uint64_t k = sh_.issued.fetch_add(1, std::memory_order_relaxed);
      if (k >= sh_.opt->requests) {
        sh_.stop_issuing = true;
        return;
      }
    }
    std::uint64_t id = sh_.counter.fetch_add(1, std::memory_order_relaxed);
    if (sh_.opt->scattered_ids) id = scatter48(id);
    hex12(c.req.data() + sh_.tmpl->counter_offset, id);
    c.sent = 0;
    c.in_len = 0;
    c.busy = true;
    c.sending = true;
    c.started_ns = now;
    ++in_flight_;
    flush(c);
  }

  void flush(Conn& c) {
    while (c.sent < c.req.size()) {
      ssize_t n = ::send(c.fd, c.req.data() + c.sent, c.req.size() - c.sent, MSG_NOSIGNAL);
      if (n > 0) {
        c.sent += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // EPOLLOUT edge resumes
      fail(c, std::string("send: ") + (n == 0 ? "closed" : std::strerror(errno)));
      return;
    }
    c.sending = false;
  }

  void readable(Conn& c) {
    while (true) {
      if (c.in_len == c.in.size()) c.in.resize(c.in.size() * 2);
      ssize_t n = ::recv(c.fd, c.in.data() + c.in_len, c.in.size() - c.in_len, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        fail(c, std::string("recv: ") + std::strerror(errno));
        return;
      }
      if (n == 0) {
        fail(c, c.in_len ? "closed mid-response" : "closed by server");
        return;
      }
      const std::size_t asked = c.in.size() - c.in_len;
      c.in_len += static_cast<std::size_t>(n);
      int status = 0;
      bool close = false;
      long total = parse_response(c.in.data(), c.in_len, status, close);
      if (total < 0) {
        fail(c, "malformed response");
        return;
      }
      if (total > 0) {
        complete(c, status, close);
        return;
      }
      if (static_cast<std::size_t>(n) < asked) return;  // drained: the next bytes raise a new edge
    }
  }

  void complete(Conn& c, int status, bool close) {
    std::uint64_t now = now_ns();
    std::uint64_t us = (now - c.started_ns) / 1000;
    stats_.latency_us.push_back(static_cast<std::uint32_t>(std::min<std::uint64_t>(us, UINT32_MAX)));
    ++stats_.by_status[status];
    stats_.last_done_ns = now;
    c.busy = false;
    --in_flight_;
    if (close || c.sending) {
      close_conn(c);
      if (may_issue(now) && open(c)) start_request(c);
      return;
    }
    start_request(c);
  }

  Shared& sh_;
  std::vector<Conn> conns_;
  int ep_ = -1;
  long in_flight_ = 0;
  Stats stats_;
};

double pct(const std::vector<std::uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  std::size_t i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(i, sorted.size() - 1)] / 1000.0;
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') o += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) continue;
    o += ch;
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt = parse(argc, argv);
  std::string body = opt.body_file.empty() ? std::string() : read_file(opt.body_file);
  Template tmpl = build_request(opt, body);

  Shared sh;
  sh.opt = &opt;
  sh.tmpl = &tmpl;
  sh.addr.sin_family = AF_INET;
  sh.addr.sin_port = htons(static_cast<std::uint16_t>(opt.port));
  if (inet_pton(AF_INET, opt.host.c_str(), &sh.addr.sin_addr) != 1) die("--host must be an IPv4 address");

  sh.start_ns = now_ns();
  const double run_s = opt.requests ? 3600.0 : opt.duration;
  sh.deadline_ns = sh.start_ns + static_cast<std::uint64_t>(run_s * 1e9);
  sh.hard_stop_ns = sh.deadline_ns + static_cast<std::uint64_t>(opt.grace * 1e9);

  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < opt.threads; ++t) {
    int n = opt.connections / opt.threads + (t < opt.connections % opt.threads ? 1 : 0);
    workers.push_back(std::make_unique<Worker>(sh, n));
  }
  std::vector<std::thread> threads;
  for (std::size_t t = 1; t < workers.size(); ++t) threads.emplace_back([&w = *workers[t]] { w.run(); });
  workers[0]->run();
  for (auto& th : threads) th.join();
  const std::uint64_t end_ns = now_ns();

  Stats all;
  for (auto& w : workers) {
    auto& s = w->stats();
    all.latency_us.insert(all.latency_us.end(), s.latency_us.begin(), s.latency_us.end());
    for (auto& [k, v] : s.by_status) all.by_status[k] += v;
    for (auto& [k, v] : s.socket_errors) all.socket_errors[k] += v;
    all.connects += s.connects;
    all.last_done_ns = std::max(all.last_done_ns, s.last_done_ns);
  }
  std::sort(all.latency_us.begin(), all.latency_us.end());
  const std::uint64_t responses = all.latency_us.size();
  std::uint64_t ok = 0, bad_status = 0, socket_errors = 0;
  for (auto& [k, v] : all.by_status) (k >= 200 && k < 300 ? ok : bad_status) += v;
  for (auto& [k, v] : all.socket_errors) socket_errors += v;
  // Throughput over the time responses were arriving (the run, plus the tail of requests in flight).
  const std::uint64_t last = all.last_done_ns ? all.last_done_ns : end_ns;
  const double elapsed = static_cast<double>(last - sh.start_ns) / 1e9;
  const double rps = elapsed > 0 ? static_cast<double>(responses) / elapsed : 0;
  const double p50 = pct(all.latency_us, 50), p90 = pct(all.latency_us, 90), p99 = pct(all.latency_us, 99),
               p999 = pct(all.latency_us, 99.9);
  const double maxv = all.latency_us.empty() ? 0 : all.latency_us.back() / 1000.0;
  double mean = 0;
  for (auto v : all.latency_us) mean += v;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double cpu_user_s = static_cast<double>(ru.ru_utime.tv_sec) + static_cast<double>(ru.ru_utime.tv_usec) / 1e6;
  const double cpu_sys_s = static_cast<double>(ru.ru_stime.tv_sec) + static_cast<double>(ru.ru_stime.tv_usec) / 1e6;
  const double cpu_s = cpu_user_s + cpu_sys_s;  // sys includes loopback TCP work done in send()
  mean = responses ? mean / static_cast<double>(responses) / 1000.0 : 0;

  if (opt.json) {
    std::printf("{\"target\":\"%s:%d%s\",\"connections\":%d,\"threads\":%d,\"body_bytes\":%zu,\"request_bytes\":%zu,",
                json_escape(opt.host).c_str(), opt.port, json_escape(opt.path).c_str(), opt.connections, opt.threads,
                body.size(), tmpl.bytes.size());
    std::printf("\"run_id\":\"%s\",\"elapsed_s\":%.3f,\"requests\":%" PRIu64 ",\"ok\":%" PRIu64 ",", opt.run_id.c_str(),
                elapsed, responses, ok);
    std::printf("\"status\":{");
    bool first = true;
    for (auto& [k, v] : all.by_status) {
      std::printf("%s\"%d\":%" PRIu64, first ? "" : ",", k, v);
      first = false;
    }
    std::printf("},\"errors\":{\"total\":%" PRIu64 ",\"status\":%" PRIu64 ",\"socket\":{", bad_status + socket_errors,
                bad_status);
    first = true;
    for (auto& [k, v] : all.socket_errors) {
      std::printf("%s\"%s\":%" PRIu64, first ? "" : ",", json_escape(k).c_str(), v);
      first = false;
    }
    std::printf("}},\"connects\":%" PRIu64 ",\"rps\":%.1f,\"cpu_s\":%.3f,\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,",
                all.connects, rps, cpu_s, cpu_user_s, cpu_sys_s);
    std::printf("\"latency_ms\":{\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}}\n", mean,
                p50, p90, p99, p999, maxv);
  } else {
    std::printf("target      %s:%d%s  %s, %d connections, %d thread(s), body %zu bytes (request %zu)\n", opt.host.c_str(),
                opt.port, opt.path.c_str(), body.empty() ? "GET" : "POST", opt.connections, opt.threads, body.size(),
                tmpl.bytes.size());
    std::printf("requests    %" PRIu64 " in %.2f s  (delivery ids %s-0000-4000-8000-000000000000..)\n", responses, elapsed,
                opt.run_id.c_str());
    std::printf("status     ");
    for (auto& [k, v] : all.by_status) std::printf(" %d: %" PRIu64, k, v);
    std::printf("\nerrors      %" PRIu64 " (non-2xx %" PRIu64 ", socket %" PRIu64 ")", bad_status + socket_errors, bad_status,
                socket_errors);
    for (auto& [k, v] : all.socket_errors) std::printf("  [%s: %" PRIu64 "]", k.c_str(), v);
    std::printf("\nrequests/s  %.1f  (generator CPU %.2f s = %.0f%% of one core; user %.2f s, sys %.2f s)\n", rps,
                cpu_s, elapsed > 0 ? 100 * cpu_s / elapsed : 0, cpu_user_s, cpu_sys_s);
    std::printf("latency ms  mean %.2f  p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n", mean, p50, p90, p99, p999,
                maxv);
  }
  return responses > 0 ? 0 : 1;
}
