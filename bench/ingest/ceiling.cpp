// bench_ceiling: the "ceiling" of bench/ingest. A bare server on tollgate's own HTTP stack
// (Boost.Beast's parser on C++20 coroutines, one strand per connection, read and answered the way
// service/http_server.cpp does: see serve() below) that reads each request into a flat_buffer
// with 64 KiB reserved, checks X-Hub-Signature-256 (HMAC-SHA256 of the raw body with tollgate's
// own webhooks::hmac_sha256, compared in constant time) and answers 202 with no other work: no
// parsing, no storage, no logging. Whatever tollgate does beyond this costs it throughput.
//
// Usage: bench_ceiling --secret S | --secret-file F  [--port 0] [--threads N] [--stack tollgate|beast]
// Prints "listening 127.0.0.1:PORT" on stdout once it accepts connections.
#include <openssl/crypto.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
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
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "service/http_body.hpp"
#include "webhooks/receiver.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto as_tuple_awaitable = asio::as_tuple(asio::use_awaitable);

std::string g_secret;

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
    auto sig = req["X-Hub-Signature-256"];
    const bool ok = signature_ok(std::string_view(sig.data(), sig.size()), req.body());
    const bool keep_alive = req.keep_alive();
    const std::string_view body = ok ? "{\"status\":\"accepted\"}\n" : "{\"error\":\"bad signature\"}\n";
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
      std::cout << "usage: bench_ceiling --secret S | --secret-file F [--port 0] [--threads N] [--stack tollgate|beast]\n";
      return 0;
    } else die("unknown option '" + a + "'");
  }
  if (g_secret.empty()) die("--secret or --secret-file is required");

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
  std::printf("listening 127.0.0.1:%u threads %u stack %s\n", acceptor.local_endpoint().port(), threads,
              g_beast_stack ? "beast" : "tollgate");
  std::fflush(stdout);
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
  return 0;
}
