#pragma once
// The HTTP/1.1 server: Boost.Beast on C++20 coroutines. Sessions only read, call Intake::route(),
// and write; limits live here (body size, header and body deadlines, idle keep-alive, connection
// cap), and so does the graceful stop.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "service/config.hpp"
#include "service/intake.hpp"

namespace tollgate::service {

class Api;

class HttpServer {
 public:
  // `api` (may be null: no API, no dashboard) answers /api/v1 and / on a pool of its own threads.
  HttpServer(const Config& config, Intake& intake, Api* api = nullptr);
  ~HttpServer();

  // Binds and listens; returns the bound port (config port 0 picks a free one) or an error.
  [[nodiscard]] tl::expected<std::uint16_t, std::string> listen();

  // Serves on `threads` threads until SIGTERM/SIGINT or stop(): then stops accepting, lets
  // in-flight requests finish (up to intake.shutdown_timeout), and returns.
  void run(unsigned threads);
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tollgate::service
