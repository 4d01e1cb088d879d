// bench_ceiling: the "ceiling" of bench/ingest. A bare server on tollgate's own HTTP stack
// (Boost.Beast on C++20 coroutines, one strand per connection, as service/http_server.cpp) that
// reads each request into a flat_buffer with 64 KiB reserved, checks X-Hub-Signature-256
// (HMAC-SHA256 of the raw body, compared in constant time) and answers 202 with no other work: no
// parsing, no storage, no logging. Whatever tollgate does beyond this costs it throughput.
//
// Usage: bench_ceiling --secret S | --secret-file F  [--port 0] [--threads N]
// Prints "listening 127.0.0.1:PORT" on stdout once it accepts connections.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

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
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

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
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), g_secret.data(), static_cast<int>(g_secret.size()),
            reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len) ||
      len != 32) {
    return false;
  }
  return CRYPTO_memcmp(mac, given, 32) == 0;
}

asio::awaitable<void> serve(tcp::socket socket) {
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

asio::awaitable<void> accept_loop(asio::io_context& io, tcp::acceptor& acceptor) {
  while (true) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(io), as_tuple_awaitable);
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      continue;
    }
    auto executor = socket.get_executor();
    asio::co_spawn(executor, serve(std::move(socket)), asio::detached);
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
    else if (a == "--secret-file") {
      std::ifstream in(value(), std::ios::binary);
      if (!in) die("cannot read the secret file");
      std::getline(in, g_secret);
      while (!g_secret.empty() && (g_secret.back() == '\r' || g_secret.back() == ' ')) g_secret.pop_back();
    } else if (a == "--help" || a == "-h") {
      std::cout << "usage: bench_ceiling --secret S | --secret-file F [--port 0] [--threads N]\n";
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
  std::printf("listening 127.0.0.1:%u threads %u\n", acceptor.local_endpoint().port(), threads);
  std::fflush(stdout);
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
  return 0;
}
