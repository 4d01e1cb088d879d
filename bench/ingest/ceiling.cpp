// bench_ceiling: the "ceiling" of bench/ingest. A bare server on tollgate's own HTTP stack
// (Boost.Beast's parser on C++20 coroutines, one strand per connection, read and answered the way
// service/http_server.cpp does: see serve() below) that reads each request into a flat_buffer
// with 64 KiB reserved, checks X-Hub-Signature-256 (HMAC-SHA256 of the raw body with tollgate's
// own webhooks::hmac_sha256, compared in constant time) and answers 202 with no other work: no
// parsing, no storage, no logging. Whatever tollgate does beyond this costs it throughput.
//
// --work adds tollgate's own per-delivery work, to show what is left for the rest (tollgate stack only):
//   receive   the delivery goes through tollgate's receiver (webhooks::receive: event, signature,
//             content type, JSON validation with simdjson, repository) and its body through the
//             inbox's encoder (service::encode_body, LZ4): everything tollgate does to a delivery
//             before it stores it, and no storage.
//   store     receive, then a minimal durable store: one writer thread commits whatever has queued
//             up (INSERT OR IGNORE into one table, unique on (host, delivery id); SQLite in WAL mode,
//             synchronous=NORMAL, 32 KiB pages, SQLite's own automatic checkpoints) and only then is
//             the 202 sent. No logging, metrics, replay keys, deadlines or outcome bookkeeping.
//             DB is --db FILE (default: bench-ceiling.db in the current directory, created afresh).
//
// Usage: bench_ceiling --secret S | --secret-file F  [--port 0] [--threads N] [--stack tollgate|beast]
//                      [--work none|receive|store] [--db FILE]
// Prints "listening 127.0.0.1:PORT" on stdout once it accepts connections.
#include <openssl/crypto.h>
#include <sqlite3.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "service/body_codec.hpp"
#include "service/http_body.hpp"
#include "webhooks/receiver.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto as_tuple_awaitable = asio::as_tuple(asio::use_awaitable);

std::string g_secret;
enum class Work { none, receive, store };
Work g_work = Work::none;

// --work store: the minimal durable store. Sessions queue a row with a timer of their own and wait
// on it; the writer commits everything queued in one transaction, then wakes each session on its
// own strand.
struct Pending {
  tollgate::webhooks::Delivery delivery;
  tollgate::service::EncodedBody body;
  asio::steady_timer* done = nullptr;
  bool stored = false;
};

class Store {
 public:
  void open(const std::string& path) {
    std::remove(path.c_str());
    for (const char* suffix : {"-wal", "-shm"}) std::remove((path + suffix).c_str());
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) fail("open");
    for (const char* sql : {"PRAGMA page_size=32768", "PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
                            "CREATE TABLE deliveries (id INTEGER PRIMARY KEY, host TEXT NOT NULL, delivery_id TEXT NOT NULL, "
                            "event TEXT NOT NULL, repo TEXT NOT NULL, size INTEGER NOT NULL, encoding INTEGER NOT NULL, "
                            "body BLOB NOT NULL, UNIQUE (host, delivery_id))"}) {
      if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) fail(sql);
    }
    if (sqlite3_prepare_v2(db_, "INSERT OR IGNORE INTO deliveries (host, delivery_id, event, repo, size, encoding, body) "
                                "VALUES ('github', ?, ?, ?, ?, ?, ?)", -1, &insert_, nullptr) != SQLITE_OK) fail("prepare");
    writer_ = std::thread([this] { run(); });
    writer_.detach();  // ends with the process
  }
  void add(Pending* p) {
    {
      std::lock_guard lock(mu_);
      queue_.push_back(p);
    }
    cv_.notify_one();
  }

 private:
  [[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "bench_ceiling: sqlite: %s: %s\n", what, db_ ? sqlite3_errmsg(db_) : "no connection");
    std::exit(2);
  }
  void run() {
    std::vector<Pending*> batch;
    while (true) {
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty(); });
        batch.swap(queue_);
      }
      bool ok = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK;
      for (Pending* p : batch) {
        if (!ok) break;
        const auto& d = p->delivery;
        sqlite3_bind_text(insert_, 1, d.delivery_id.data(), static_cast<int>(d.delivery_id.size()), SQLITE_STATIC);
        sqlite3_bind_text(insert_, 2, d.event_type.data(), static_cast<int>(d.event_type.size()), SQLITE_STATIC);
        sqlite3_bind_text(insert_, 3, d.repo.data(), static_cast<int>(d.repo.size()), SQLITE_STATIC);
        sqlite3_bind_int64(insert_, 4, static_cast<sqlite3_int64>(p->body.size));
        sqlite3_bind_int(insert_, 5, p->body.encoding == tollgate::service::BodyEncoding::lz4 ? 1 : 0);
        sqlite3_bind_blob(insert_, 6, p->body.bytes.data(), static_cast<int>(p->body.bytes.size()), SQLITE_STATIC);
        ok = sqlite3_step(insert_) == SQLITE_DONE;
        sqlite3_reset(insert_);
      }
      ok = ok && sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK;
      if (!ok) fail("insert");
      for (Pending* p : batch) {
        p->stored = true;
        asio::steady_timer* t = p->done;
        asio::post(t->get_executor(), [t] { t->cancel(); });
      }
      batch.clear();
    }
  }
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Pending*> queue_;
  std::thread writer_;
};
Store g_store;

int unhex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "sha256=<64 hex>" over `body` with the secret, compared in constant time.
bool signature_ok(std::string_view header, std::string_view body) {
  constexpr std::string_view prefix = "sha256=";
  if (header.size() != prefix.size() + 64 || header.substr(0, prefix.size()) != prefix) return false;
  unsigned char given[32];
  for (int i = 0; i < 32; ++i) {
    int hi = unhex(header[prefix.size() + 2 * i]), lo = unhex(header[prefix.size() + 2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    given[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  unsigned char mac[32];
  if (!tollgate::webhooks::hmac_sha256(g_secret, body, mac)) return false;  // tollgate's own HMAC
  return CRYPTO_memcmp(mac, given, 32) == 0;
}

// The same way as tollgate's server reads and answers (service/http_server.cpp, serve() and
// write()): one asynchronous read for the request's first bytes, the request parsed from the
// buffer as it stands and read further only while the parser needs more, and the answer sent at
// once on the non-blocking socket (asynchronously only for what does not fit). Without
// tollgate's deadlines (a coroutine around each read that sets and clears one, and a clock read
// per request stage) and its other per-request work.
asio::awaitable<void> serve(tcp::socket socket) {
  beast::flat_buffer buffer;
  buffer.reserve(64 * 1024);  // one recv for a typical delivery, not 512-byte steps
  beast::error_code nb;
  socket.non_blocking(true, nb);
  if (nb) co_return;  // a blocking send could hold a thread
  while (true) {
    // tollgate's body type, with its padding for the JSON parser (service/http_body.hpp).
    http::request_parser<tollgate::service::PaddedStringBody<64>> parser;
    parser.header_limit(64 * 1024);
    parser.body_limit(25 * 1024 * 1024);
    beast::error_code ec;
    while (true) {
      const std::size_t used = tollgate::service::feed(parser, buffer, ec);
      if (ec || parser.is_done()) break;
      if (used > 0 && buffer.size() > 0) continue;
      auto [rec, got] = co_await socket.async_read_some(
          buffer.prepare(std::max<std::size_t>(buffer.capacity() - buffer.size(), 4096)), as_tuple_awaitable);
      buffer.commit(got);
      if (rec) {
        ec = rec;
        break;
      }
    }
    if (ec) break;
    auto& req = parser.get();
    bool ok = false;
    if (g_work == Work::none) {
      auto sig = req["X-Hub-Signature-256"];
      ok = signature_ok(std::string_view(sig.data(), sig.size()), req.body());
    } else {
      static const tollgate::webhooks::ReceiverConfig config{tollgate::webhooks::HostKind::github, {g_secret}, {}};
      auto verdict = tollgate::webhooks::receive(
          config, [&req](std::string_view name) { auto v = req[name]; return std::string_view(v.data(), v.size()); },
          std::move(req.body()));
      ok = verdict.outcome == tollgate::webhooks::Verdict::Outcome::store;
      if (ok) {
        Pending p;
        p.body = tollgate::service::encode_body(std::move(verdict.delivery.body));
        if (g_work == Work::store) {
          p.delivery = std::move(verdict.delivery);
          asio::steady_timer done(socket.get_executor(), asio::steady_timer::time_point::max());
          p.done = &done;
          g_store.add(&p);
          co_await done.async_wait(as_tuple_awaitable);
          ok = p.stored;
        }
      }
    }
    const bool keep_alive = req.keep_alive();
    const std::string_view body = ok ? "{\"status\":\"accepted\"}\n" : "{\"error\":\"rejected\"}\n";
    std::string out = req.version() == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    out += ok ? "202 Accepted" : "401 Unauthorized";
    out += "\r\nServer: bench_ceiling\r\nContent-Type: application/json\r\n";
    if (req.version() == 10 && keep_alive) out += "Connection: keep-alive\r\n";
    if (req.version() != 10 && !keep_alive) out += "Connection: close\r\n";
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    out += body;
    beast::error_code wec;
    std::size_t sent = socket.send(asio::buffer(out), 0, wec);
    if (wec == asio::error::would_block || wec == asio::error::try_again) {
      sent = 0;
      wec = {};
    }
    if (!wec && sent < out.size()) {
      auto [ec2, n2] = co_await asio::async_write(socket, asio::buffer(out.data() + sent, out.size() - sent), as_tuple_awaitable);
      wec = ec2;
    }
    if (wec || !keep_alive) break;
  }
  beast::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_send, ignored);
}

// --stack beast: the request read with Beast's http::async_read and answered with
// http::async_write, into a zero-filled string_body: the bare Beast server the issue measured
// (~26,000 requests/s), which tollgate's server used until it read and answered as serve() does.
asio::awaitable<void> serve_beast(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  buffer.reserve(64 * 1024);  // one recv for a typical delivery, not 512-byte steps
  while (true) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(64 * 1024);
    parser.body_limit(25 * 1024 * 1024);
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, as_tuple_awaitable);
    if (ec) break;
    auto& req = parser.get();
    http::response<http::string_body> res;
    res.version(req.version());
    auto sig = req["X-Hub-Signature-256"];
    if (signature_ok(std::string_view(sig.data(), sig.size()), req.body())) {
      res.result(http::status::accepted);
      res.body() = "{\"status\":\"accepted\"}\n";
    } else {
      res.result(http::status::unauthorized);
      res.body() = "{\"error\":\"bad signature\"}\n";
    }
    res.set(http::field::server, "bench_ceiling");
    res.set(http::field::content_type, "application/json");
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    auto [ec2, n2] = co_await http::async_write(stream, res, as_tuple_awaitable);
    if (ec2 || !res.keep_alive()) break;
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

bool g_beast_stack = false;

asio::awaitable<void> accept_loop(asio::io_context& io, tcp::acceptor& acceptor) {
  while (true) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(io), as_tuple_awaitable);
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      continue;
    }
    auto executor = socket.get_executor();
    asio::co_spawn(executor, g_beast_stack ? serve_beast(std::move(socket)) : serve(std::move(socket)), asio::detached);
  }
}

[[noreturn]] void die(const std::string& msg) {
  std::cerr << "bench_ceiling: " << msg << "\n";
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  unsigned short port = 0;
  std::string db = "bench-ceiling.db";
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--port") port = static_cast<unsigned short>(std::atoi(value().c_str()));
    else if (a == "--threads") threads = static_cast<unsigned>(std::max(1, std::atoi(value().c_str())));
    else if (a == "--secret") g_secret = value();
    else if (a == "--db") db = value();
    else if (a == "--work") {
      const std::string v = value();
      if (v == "none") g_work = Work::none;
      else if (v == "receive") g_work = Work::receive;
      else if (v == "store") g_work = Work::store;
      else die("--work is 'none' (the default), 'receive' or 'store', not '" + v + "'");
    }
    else if (a == "--stack") {
      const std::string v = value();
      if (v != "beast" && v != "tollgate") die("--stack is 'tollgate' (the default) or 'beast', not '" + v + "'");
      g_beast_stack = v == "beast";
    }
    else if (a == "--secret-file") {
      std::ifstream in(value(), std::ios::binary);
      if (!in) die("cannot read the secret file");
      std::getline(in, g_secret);
      while (!g_secret.empty() && (g_secret.back() == '\r' || g_secret.back() == ' ')) g_secret.pop_back();
    } else if (a == "--help" || a == "-h") {
      std::cout << "usage: bench_ceiling --secret S | --secret-file F [--port 0] [--threads N] [--stack tollgate|beast] [--work none|receive|store] [--db FILE]\n";
      return 0;
    } else die("unknown option '" + a + "'");
  }
  if (g_secret.empty()) die("--secret or --secret-file is required");
  if (g_work != Work::none && g_beast_stack) die("--work goes with --stack tollgate only");
  if (g_work == Work::store) g_store.open(db);

  asio::io_context io;  // as tollgate: default concurrency hint, one strand per connection
  tcp::acceptor acceptor(io);
  tcp::endpoint endpoint{asio::ip::make_address("127.0.0.1"), port};
  acceptor.open(endpoint.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(asio::socket_base::max_listen_connections);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code, int) { io.stop(); });
  asio::co_spawn(io, accept_loop(io, acceptor), asio::detached);
  std::printf("listening 127.0.0.1:%u threads %u stack %s work %s\n", acceptor.local_endpoint().port(), threads,
              g_beast_stack ? "beast" : "tollgate",
              g_work == Work::none ? "none" : g_work == Work::receive ? "receive" : "store");
  std::fflush(stdout);
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
  // Not exit(): the store's writer thread still waits on its condition variable, and destroying
  // that (a static's destructor) would wait for it for ever.
  std::fflush(stdout);
  std::_Exit(0);
}
