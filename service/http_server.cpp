#include "service/http_server.hpp"

#include <pthread.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "pipeline/duration.hpp"
#include "service/api.hpp"
#include "service/http_body.hpp"
#include "service/log.hpp"

namespace tollgate::service {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto as_tuple_awaitable = asio::as_tuple(asio::use_awaitable);

// A webhook request on its way to the inbox (Inbox::arriving): announced once its headers are read,
// until it is queued (store(..., announced=true)) or turns out not to be stored.
class Arrival {
 public:
  Arrival() = default;
  Arrival(const Arrival&) = delete;
  Arrival& operator=(const Arrival&) = delete;
  ~Arrival() { reset(); }
  void announce(Inbox& inbox) {
    inbox.arriving();
    inbox_ = &inbox;
  }
  // The delivery goes to store(..., announced), which takes over the announcement (if any).
  [[nodiscard]] bool hand_over() { return std::exchange(inbox_, nullptr) != nullptr; }
  void reset() {
    if (inbox_ != nullptr) std::exchange(inbox_, nullptr)->not_arriving();
  }

 private:
  Inbox* inbox_ = nullptr;
};

// Completes with the StoreResult on the awaiting coroutine's executor once the inbox has committed
// the delivery (the inbox logs a failure's error itself).
// The request's announcement goes with the delivery, at the last moment (nothing between it and
// store() can throw and leave the count behind).
template <typename Token>
auto async_store(Inbox& inbox, StoredDelivery delivery, Arrival& arrival, Token&& token) {
  return asio::async_initiate<Token, void(StoreResult)>(
      [&inbox, &arrival](auto handler, StoredDelivery d) {
        auto executor = asio::get_associated_executor(handler);
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        std::function<void(StoreResult, const std::string&)> done = [shared, executor](StoreResult result, const std::string& /*error*/) {
          asio::post(executor, [shared, result]() mutable { (*shared)(result); });
        };
        const bool announced = arrival.hand_over();
        inbox.store(std::move(d), std::move(done), announced);
      },
      token, std::move(delivery));
}

// Room for the JSON parser's padding after the body: the receiver parses it in place.
using RequestParser = http::request_parser<PaddedStringBody<webhooks::kBodyPadding>>;

// The client sent something that is not HTTP (as opposed to going away or timing out).
bool is_parse_error(const beast::error_code& ec) {
  return ec.category() == beast::error_code(http::error::end_of_stream).category() && ec != http::error::end_of_stream &&
         ec != http::error::partial_message;
}

// Bodies up to this size are sent in the same buffer as the head (write()).
constexpr std::size_t kInlineBody = 8 * 1024;

// The status line and header fields of a response, as they go on the wire: the same fields as
// Beast would write (Server, Content-Type, the response's own, Connection where the default does
// not hold, Content-Length), without building a header container for each answer. The framing
// fields are this function's alone: a Server, Content-Type, Content-Length, Transfer-Encoding or
// Connection among the response's own is left out, and so is a field whose name or value holds
// a line break, rather than let it split the response. 1xx, 204 and 304 answers have no body
// and no Content-Length; `body_follows` is false for them (and for HEAD requests, which get the
// Content-Length of the body they did not ask for).
std::string serialize_head(const HttpResponse& r, unsigned version, bool keep_alive, bool& body_follows, bool head_request) {
  const auto status = static_cast<http::status>(r.status);
  const auto reason = http::obsolete_reason(status);
  const bool bodiless = (r.status >= 100 && r.status < 200) || r.status == 204 || r.status == 304;
  std::string out;
  out.reserve(192 + r.content_type.size() + (r.body.size() <= kInlineBody ? r.body.size() : 0));
  out += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  out += std::to_string(r.status);
  out += ' ';
  out.append(reason.data(), reason.size());
  out += "\r\nServer: tollgate\r\n";
  const auto field = [&out](std::string_view name, std::string_view value) {
    if (name.find_first_of("\r\n") != std::string_view::npos || value.find_first_of("\r\n") != std::string_view::npos) return;
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  };
  field("Content-Type", r.content_type);
  if (!r.allow.empty()) field("Allow", r.allow);
  for (const auto& [name, value] : r.headers) {
    static constexpr std::array<std::string_view, 5> kFraming{"server", "content-type", "content-length", "transfer-encoding", "connection"};
    if (std::any_of(kFraming.begin(), kFraming.end(), [&](std::string_view f) { return beast::iequals(f, name); })) continue;
    field(name, value);
  }
  if (version == 10 && keep_alive) out += "Connection: keep-alive\r\n";
  if (version != 10 && !keep_alive) out += "Connection: close\r\n";
  if (!bodiless) {
    out += "Content-Length: ";
    out += std::to_string(r.body.size());
    out += "\r\n";
  }
  out += "\r\n";
  body_follows = !bodiless && !head_request && !r.body.empty();
  return out;
}

}  // namespace

struct HttpServer::Impl {
  struct Session {
    explicit Session(tcp::socket s) : stream(std::move(s)) {}
    beast::tcp_stream stream;
    std::atomic<bool> idle{true};  // waiting for the next request's first byte
    // The deadline of the operation in progress (steady clock, ms; 0: none), enforced by
    // sweep_loop(): one timer for the whole server instead of a timer armed and cancelled on every
    // read and write (which cost a syscall and a cancelled handler each, several per request).
    std::atomic<std::int64_t> deadline_ms{0};
    std::atomic<bool> deadline_fired{false};
  };

  static std::int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
  static constexpr std::chrono::milliseconds kSweepEvery{50};
  static constexpr std::size_t kMaxChunkLine = 64 * 1024;  // a chunked body's size line or trailers, at most
  static constexpr std::uint64_t kMaxOtherBody = 64 * 1024;  // the body of any request but a webhook

  Impl(const Config& c, Intake& i, Api* a)
      : config(c), intake(i), api(a), acceptor(io), signals(io, SIGINT, SIGTERM), shutdown_strand(asio::make_strand(io)),
        drain_timer(shutdown_strand) {}

  const Config& config;
  Intake& intake;
  Api* api;
  asio::io_context io;
  // The API reads the store and waits for the engine: never on the I/O threads, which answer
  // webhooks. Actions (which may wait for the host) have threads of their own, so a slow host
  // cannot hold up reads and event streams; both pools are joined before run() returns (their
  // completions go to `io`, declared before them, so destroyed after).
  asio::thread_pool api_pool{2};
  asio::thread_pool action_pool{2};
  static constexpr int kMaxActions = 8;  // in flight; more are answered 503
  std::atomic<int> actions{0};
  std::atomic<std::size_t> streams{0};
  tcp::acceptor acceptor;
  asio::signal_set signals;
  // Shutdown state (the drain timer) is touched only on this strand.
  asio::strand<asio::io_context::executor_type> shutdown_strand;
  asio::steady_timer drain_timer;
  std::atomic<std::size_t> active{0};
  std::atomic<bool> draining{false};
  std::mutex sessions_mutex;
  std::set<std::shared_ptr<Session>> sessions;
  std::chrono::steady_clock::time_point last_accept_warning{};

  // By errno value: comparing with a boost::system::errc condition goes through the category's
  // virtual equivalent(), which UBSan's vptr check reports on Debian 12's Boost (and aborts).
  static bool is_resource_error(const beast::error_code& ec) {
    const int v = ec.value();
    return ec.category() == boost::system::system_category() && (v == EMFILE || v == ENFILE || v == ENOBUFS || v == ENOMEM);
  }

  asio::awaitable<void> accept_loop() {
    while (true) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(io), as_tuple_awaitable);
      if (ec) {
        if (draining || ec == asio::error::operation_aborted) co_return;
        // Out of descriptors or memory: the pending connection stays in the backlog, so the next
        // accept would fail at once. Back off instead of spinning, and say so at most once a second.
        const auto now = std::chrono::steady_clock::now();
        if (now - last_accept_warning >= std::chrono::seconds(1)) {
          last_accept_warning = now;
          if (is_resource_error(ec)) {
            log::warn("accept failed", {{"error", ec.message()},
                                        {"connections", active.load()},
                                        {"hint", "raise the open-files limit (ulimit -n, LimitNOFILE) or lower intake.max_connections"}});
          } else {
            log::warn("accept failed", {{"error", ec.message()}});
          }
        }
        if (is_resource_error(ec)) {
          asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(100));
          co_await pause.async_wait(as_tuple_awaitable);
        }
        continue;
      }
      if (active.load() >= config.intake.max_connections) {
        // Best effort: a short answer into the socket buffer, then close.
        static const std::string busy =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\nConnection: close\r\n\r\n";
        beast::error_code ignored;
        socket.non_blocking(true, ignored);
        socket.send(asio::buffer(busy), 0, ignored);
        socket.close(ignored);
        (void)intake.edge_error("", 503, "connection cap reached");
        continue;
      }
      auto session = std::make_shared<Session>(std::move(socket));
      {
        std::lock_guard lock(sessions_mutex);
        sessions.insert(session);
      }
      ++active;
      auto executor = session->stream.get_executor();
      asio::co_spawn(executor, serve(session), [this, session](std::exception_ptr e) {
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            log::error("session failed", {{"error", ex.what()}});
          }
        }
        {
          std::lock_guard lock(sessions_mutex);
          sessions.erase(session);
        }
        if (--active == 0 && draining) asio::post(shutdown_strand, [this] { drain_timer.cancel(); });
      });
    }
  }

  // GET /api/v1/events: server-sent events of the audit log, polled from the store every 500 ms
  // (so it shows what any writer committed), a keep-alive comment every 15 s. Ends when the
  // client goes away, a write times out, or the server stops.
  asio::awaitable<void> stream_events(const std::shared_ptr<Session>& session, HttpRequest& request, unsigned version) {
    const bool head = request.method == "HEAD";
    if (!api->admits(request, false)) {
      // Refused (401, or 405/400 first): answered without taking one of the stream slots.
      auto refused = co_await asio::co_spawn(
          api_pool, [this, &request]() -> asio::awaitable<HttpResponse> {
            std::int64_t ignored = 0;
            auto r = api->open_stream(request, ignored);
            co_return r ? std::move(*r) : json_response(401, "error", "this endpoint needs a token");
          },
          asio::use_awaitable);
      intake.api_answered(request.target, refused.status);
      co_await write(session, std::move(refused), version, false, head);
      co_return;
    }
    // Streams hold their connection: at most a quarter of the connection cap, so they can never
    // keep webhooks out.
    const std::size_t cap = std::max<std::size_t>(1, config.intake.max_connections / 4);
    if (streams.fetch_add(1) >= cap) {
      --streams;
      auto busy = json_response(503, "error", "too many event streams are open (" + std::to_string(cap) +
                                                  ", a quarter of intake.max_connections); retry later");
      busy.headers.emplace_back("Retry-After", "5");
      intake.api_answered(request.target, 503);
      co_await write(session, std::move(busy), version, false, head);
      co_return;
    }
    struct Release {
      std::atomic<std::size_t>& n;
      ~Release() { --n; }
    } release{streams};
    std::int64_t after = 0;
    auto refused = co_await asio::co_spawn(
        api_pool,
        [this, &request, &after]() -> asio::awaitable<std::optional<HttpResponse>> { co_return api->open_stream(request, after); },
        asio::use_awaitable);
    if (refused) {
      intake.api_answered(request.target, refused->status);
      co_await write(session, std::move(*refused), version, false, head);
      co_return;
    }
    intake.api_answered(request.target, 200);
    std::string out = std::string(version == 10 ? "HTTP/1.0" : "HTTP/1.1") +
                      " 200 OK\r\nServer: tollgate\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                      "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n";
    asio::steady_timer timer(co_await asio::this_coro::executor);
    auto last_write = std::chrono::steady_clock::now();
    bool behind = false;  // the last poll was a full batch: poll again at once (a reconnect catching up)
    while (true) {
      if (!out.empty()) {
        auto [ec, timed_out] =
            co_await within(session, config.intake.body_timeout, asio::async_write(session->stream.socket(), asio::buffer(out), as_tuple_awaitable));
        if (ec) co_return;
        last_write = std::chrono::steady_clock::now();
        out.clear();
      }
      // A stream catching up polls again soon, but not at once: a few replaying from the start
      // must leave the readers' pool to the other requests.
      timer.expires_after(std::chrono::milliseconds(behind ? 20 : 500));
      (void)co_await timer.async_wait(as_tuple_awaitable);
      if (draining) co_return;
      auto frames = co_await asio::co_spawn(
          api_pool, [this, &after, &behind]() -> asio::awaitable<std::optional<std::string>> { co_return api->events_after(after, &behind); },
          asio::use_awaitable);
      if (!frames) co_return;  // the store cannot be read: the client reconnects with Last-Event-ID
      out = std::move(*frames);
      if (out.empty() && std::chrono::steady_clock::now() - last_write >= std::chrono::seconds(15)) out = ": keep-alive\n\n";
    }
  }

  // An API request on the pool its kind runs on: actions (POST) on their own, capped.
  asio::awaitable<HttpResponse> answer_api(HttpRequest& request) {
    // A POST without an operator token is refused (or 404/405) by handle() without waiting for
    // anything: it goes to the readers' pool and never holds an action slot.
    if (request.method != "POST" || !api->admits(request, true)) {
      co_return co_await asio::co_spawn(
          api_pool, [this, &request]() -> asio::awaitable<HttpResponse> { co_return api->handle(request); }, asio::use_awaitable);
    }
    if (actions.fetch_add(1) >= kMaxActions) {
      --actions;
      auto busy = json_response(503, "error", "too many actions are in progress (they wait for the Git host); retry later");
      busy.headers.emplace_back("Retry-After", "2");
      co_return busy;
    }
    auto r = co_await asio::co_spawn(
        action_pool, [this, &request]() -> asio::awaitable<HttpResponse> { co_return api->handle(request); }, asio::use_awaitable);
    --actions;
    co_return r;
  }

  // Writes the response; false if it could not be written (in time). The socket is non-blocking
  // (serve()), so an answer that fits the socket's send buffer, as nearly every one does, is sent
  // at once (head and body in one call, the body not copied), without an asynchronous operation
  // and its completion; what does not fit goes asynchronously.
  asio::awaitable<bool> write(const std::shared_ptr<Session>& session, const HttpResponse& r, unsigned version,
                              bool keep_alive, bool head_request = false) {
    bool body_follows = false;
    std::string head = serialize_head(r, version, keep_alive, body_follows, head_request);
    // A small body (every webhook answer) goes in the head's string: one buffer is measurably
    // cheaper to send than two (3-5% of intake in interleaved pairs). A large one is not copied.
    const bool inline_body = body_follows && r.body.size() <= kInlineBody;
    if (inline_body) head += r.body;
    std::array<asio::const_buffer, 2> buffers{asio::buffer(head),
                                              asio::buffer(r.body.data(), body_follows && !inline_body ? r.body.size() : 0)};
    const std::size_t total = buffers[0].size() + buffers[1].size();
    auto& socket = session->stream.socket();
    beast::error_code ec;
    std::size_t sent = socket.send(buffers, 0, ec);
    if (!ec && sent == total) co_return true;
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) co_return false;
    if (ec) sent = 0;
    // What is left: the rest of the head, if any, then the rest of the body.
    if (sent < buffers[0].size()) {
      buffers[0] += sent;
    } else {
      buffers[1] += sent - buffers[0].size();
      buffers[0] = asio::const_buffer();
    }
    auto [ec2, timed_out] = co_await within(session, config.intake.body_timeout, asio::async_write(socket, buffers, as_tuple_awaitable));
    co_return !ec2;
  }

  // Awaits `op` (an operation completing with an error code first) for at most `limit` (give or
  // take kSweepEvery). On the deadline the socket's operations are cancelled but the socket stays
  // open, so the session can still answer 408. Returns the operation's error and whether the
  // deadline caused it.
  // `bytes`, when given, receives the operation's byte count.
  template <typename Awaitable>
  asio::awaitable<std::pair<beast::error_code, bool>> within(const std::shared_ptr<Session>& session,
                                                             std::chrono::milliseconds limit, Awaitable op,
                                                             std::size_t* bytes = nullptr) {
    return until(session, steady_ms() + std::max<std::int64_t>(limit.count(), 1), std::move(op), bytes);
  }
  // The same, with the deadline given as a point in time (steady_ms()): several operations, such
  // as the reads of one request's headers, can share one deadline.
  template <typename Awaitable>
  asio::awaitable<std::pair<beast::error_code, bool>> until(const std::shared_ptr<Session>& session,
                                                            std::int64_t due_ms, Awaitable op,
                                                            std::size_t* bytes = nullptr) {
    session->deadline_fired.store(false, std::memory_order_relaxed);
    session->deadline_ms.store(due_ms, std::memory_order_relaxed);
    auto result = co_await std::move(op);
    session->deadline_ms.store(0, std::memory_order_relaxed);
    if constexpr (std::tuple_size_v<decltype(result)> > 1) {
      if (bytes != nullptr) *bytes = std::get<1>(result);
    }
    beast::error_code ec = std::get<0>(result);
    co_return std::pair{ec, ec && session->deadline_fired.load(std::memory_order_relaxed)};
  }

  // Every kSweepEvery: cancels the operations of sessions past their deadline (on the session's
  // own strand, re-checking that the same deadline is still the one in force). Ends once the
  // server is draining and the last session is gone.
  asio::awaitable<void> sweep_loop() {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    while (!(draining && active == 0)) {
      timer.expires_after(kSweepEvery);
      (void)co_await timer.async_wait(as_tuple_awaitable);
      const std::int64_t now = steady_ms();
      std::lock_guard lock(sessions_mutex);
      for (const auto& s : sessions) {
        const std::int64_t due = s->deadline_ms.load(std::memory_order_relaxed);
        if (due == 0 || due > now) continue;
        asio::post(s->stream.get_executor(), [s, due] {
          if (s->deadline_ms.load(std::memory_order_relaxed) != due) return;
          s->deadline_fired.store(true, std::memory_order_relaxed);
          beast::error_code ignored;
          s->stream.socket().cancel(ignored);
        });
      }
    }
  }

  asio::awaitable<void> serve(std::shared_ptr<Session> session) {
    Session& s = *session;
    beast::flat_buffer buffer;
    buffer.reserve(64 * 1024);  // one recv for a typical delivery, not 512-byte steps
    bool first = true;
    bool linger = false;  // answered before reading the whole request: drain before closing
    s.stream.expires_never();  // every read and write has its deadline from within() or until()
    // Non-blocking, for write()'s immediate send (reads stay asynchronous). A socket that cannot be
    // made so would let that send block an I/O thread with no deadline: it is closed instead.
    beast::error_code nb;
    s.stream.socket().non_blocking(true, nb);
    if (nb) {
      log::warn("connection closed: its socket cannot be made non-blocking", {{"error", nb.message()}});
      co_return;
    }
    while (!draining || buffer.size() > 0) {
      RequestParser parser;
      parser.header_limit(64 * 1024);
      parser.body_limit(config.intake.max_body_bytes);
      // Idle until the next request's first byte: a quiet keep-alive connection is closed without
      // an answer; from the first byte on, the headers must arrive within header_timeout.
      if (buffer.size() == 0) {
        s.idle = true;
        // A read rather than async_wait(wait_read): Asio queues a read on an edge-triggered socket
        // without a syscall, while every wait re-arms it with epoll_ctl (one more syscall per request).
        std::size_t got = 0;
        auto [ec, timed_out] = co_await within(
            session, first ? config.intake.header_timeout : config.intake.idle_timeout,
            s.stream.socket().async_read_some(buffer.prepare(std::max<std::size_t>(buffer.capacity(), 4096)), as_tuple_awaitable),
            &got);
        buffer.commit(got);
        s.idle = false;
        // A request that came in as the drain began is still answered (with Connection: close).
        if (ec || got == 0) break;
      }
      // The request is parsed from the buffer as it stands, and read further only while the
      // parser needs more: a delivery that arrived in one read (nearly all) is parsed without
      // another asynchronous operation. The headers have header_timeout from their first byte,
      // the body body_timeout from the end of the headers.
      Arrival arrival;
      std::string target;
      bool header_seen = false;
      bool chunk_line_too_long = false;
      bool expectation_failed = false;
      beast::error_code ec;
      bool timed_out = false;
      std::int64_t due = steady_ms() + std::max<std::int64_t>(config.intake.header_timeout.count(), 1);
      while (true) {
        const std::size_t used = feed(parser, buffer, ec);
        if (!header_seen && parser.is_header_done() && !ec) {
          // Announced as soon as its headers are in: the writer may wait for it (Inbox::arriving).
          header_seen = true;
          target = std::string(parser.get().target());
          if (parser.get().method() == http::verb::post && Intake::is_hook(target)) arrival.announce(intake.inbox());
          due = steady_ms() + std::max<std::int64_t>(config.intake.body_timeout.count(), 1);
          if (!Intake::is_hook(target)) {
            // Only webhooks carry large bodies: the API's are a few hundred bytes, and are read
            // before the token is checked.
            if (auto n = parser.content_length(); n && *n > kMaxOtherBody) {
              ec = http::error::body_limit;
              break;
            }
            parser.body_limit(kMaxOtherBody);  // a chunked body, as it arrives
          }
          if (auto expect = parser.get()[http::field::expect]; !expect.empty() && parser.get().version() >= 11) {
            if (!beast::iequals(expect, "100-continue")) {
              expectation_failed = true;
              break;
            }
            // The client waits for this before it sends the body (curl does above 1 MiB).
            if (!parser.is_done() && buffer.size() == 0) {
              static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
              beast::error_code ignored;
              s.stream.socket().send(asio::buffer(kContinue.data(), kContinue.size()), 0, ignored);
            }
          }
        }
        if (ec || parser.is_done()) break;
        if (used > 0 && buffer.size() > 0) continue;  // the parser stopped at a boundary: go on
        if (header_seen && used == 0 && buffer.size() >= kMaxChunkLine) {
          // A chunk-size line or the trailers, still without their end: header_limit covers only
          // the request's headers, so without this the buffer would grow for all of body_timeout.
          ec = http::error::bad_chunk;
          chunk_line_too_long = true;
          break;
        }
        std::size_t got = 0;
        auto [rec, rto] = co_await until(
            session, due, s.stream.socket().async_read_some(buffer.prepare(std::max<std::size_t>(buffer.capacity() - buffer.size(), 4096)), as_tuple_awaitable),
            &got);
        buffer.commit(got);
        if (rec == asio::error::eof) {
          // The client closed mid-request (as Beast's own read reports it).
          if (parser.got_some()) {
            parser.put_eof(ec);
            if (!ec && parser.is_done()) break;
            if (!ec) ec = http::error::partial_message;
          } else {
            ec = http::error::end_of_stream;
          }
          break;
        }
        if (rec) {
          ec = rec;
          timed_out = rto;
          break;
        }
      }
      if (expectation_failed) {
        arrival.reset();
        co_await write(session, intake.edge_error(target, 417, "unsupported Expect header (only '100-continue' is supported)"),
                       parser.get().version(), false);
        linger = true;
        break;
      }
      if (ec) {
        arrival.reset();  // not a delivery: the writer need not wait while the error is written
        // The start line is parsed before the headers are checked (an oversized Content-Length),
        // so the target and version are known then too; until then they are "" and 1.1.
        if (!header_seen) target = std::string(parser.get().target());
        const unsigned version = parser.get().version();
        if (timed_out) {
          const bool headers = !header_seen;
          const auto limit = std::chrono::duration_cast<std::chrono::seconds>(headers ? config.intake.header_timeout : config.intake.body_timeout);
          co_await write(session,
                         intake.edge_error(target, 408, std::string(headers ? "request headers" : "request body") +
                                                            " not received in time (intake." + (headers ? "header" : "body") +
                                                            "_timeout is " + pipeline::format_duration(limit) + ")"),
                         version, false);
          linger = true;  // the client may still be sending: let it read the answer
        } else if (ec == http::error::header_limit) {
          co_await write(session, intake.edge_error(target, 431, "request headers are larger than 64 KiB"), version, false);
          linger = true;
        } else if (ec == http::error::body_limit) {
          co_await write(session, intake.edge_error(target, 413, body_limit_message(parser, target)), version, false);
          linger = true;
        } else if (chunk_line_too_long) {
          co_await write(session, intake.edge_error(target, 400, "malformed chunked body: a chunk-size line or the trailers run past " +
                                                               std::to_string(kMaxChunkLine / 1024) + " KiB without ending"),
                         version, false);
          linger = true;
        } else if (is_parse_error(ec)) {
          co_await write(session, intake.edge_error(target, 400, "malformed HTTP request: " + ec.message()), version, false);
          linger = true;
        }
        break;
      }
      first = false;
      auto& req = parser.get();
      const auto started = std::chrono::steady_clock::now();
      HttpRequest request{std::string(req.method_string()), target,
                          [&req](std::string_view name) -> std::string_view {
                            auto it = req.find(beast::string_view(name.data(), name.size()));
                            if (it == req.end()) return {};
                            return {it->value().data(), it->value().size()};
                          },
                          std::move(req.body())};
      auto routed = intake.route(request);
      if (!std::holds_alternative<StoreJob>(routed)) arrival.reset();
      HttpResponse response;
      if (auto* ready = std::get_if<HttpResponse>(&routed)) {
        response = std::move(*ready);
      } else if (std::holds_alternative<ApiCall>(routed)) {
        if (api == nullptr) {
          response = json_response(404, "error", "this server has no API");
        } else if (Api::is_event_stream(target)) {
          co_await stream_events(session, request, req.version());
          break;  // the stream ends with the connection
        } else {
          response = co_await answer_api(request);
        }
        intake.api_answered(target, response.status);
      } else {
        auto& job = std::get<StoreJob>(routed);
        // Compressed here, on the I/O threads, so the single inbox writer only copies bytes.
        auto encoded = encode_body(std::move(job.delivery.body));
        StoredDelivery stored{job.host, job.delivery.delivery_id, job.delivery.event_type, job.delivery.repo,
                              std::move(encoded.bytes), encoded.encoding, encoded.size, started};
        const StoreResult result = co_await async_store(intake.inbox(), std::move(stored), arrival, asio::use_awaitable);
        response = intake.finish(job, result, std::chrono::steady_clock::now() - started);
      }
      bool keep_alive = req.keep_alive() && !draining;
      if (!co_await write(session, response, req.version(), keep_alive, req.method() == http::verb::head) || !keep_alive) break;
    }
    beast::error_code ignored;
    s.stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    if (linger) {
      // The client may still be sending the body we refused. Closing now would reset the
      // connection and could destroy our answer before the client reads it, so read and discard
      // for a little while (bounded in time and bytes), as web servers' "lingering close" does.
      std::array<char, 16 * 1024> sink;
      const auto linger_until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      for (int reads = 0; reads < 2048; ++reads) {  // at most 32 MiB and 2 s
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(linger_until - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        auto [ec, timed_out] =
            co_await within(session, left, s.stream.socket().async_read_some(asio::buffer(sink), as_tuple_awaitable));
        if (ec) break;
      }
    }
  }

  std::string body_limit_message(const RequestParser& parser, std::string_view target) const {
    // Beast refuses an oversized Content-Length while still parsing the header, so read the
    // field itself rather than parser.content_length().
    auto declared = parser.get()[http::field::content_length];
    std::string what = declared.empty() ? "request body" : "request body of " + std::string(declared) + " bytes";
    if (!target.empty() && !Intake::is_hook(target)) {
      return what + " is larger than the limit of " + std::to_string(kMaxOtherBody) + " bytes for requests other than webhooks";
    }
    return what + " is larger than the limit of " + std::to_string(config.intake.max_body_bytes) +
           " bytes (intake.max_body)";
  }


  void begin_shutdown() {
    if (draining.exchange(true)) return;
    log::info("shutting down: no new connections; finishing requests in flight",
              {{"in_flight_connections", active.load()},
               {"deadline_ms", static_cast<std::int64_t>(config.intake.shutdown_timeout.count())}});
    beast::error_code ignored;
    acceptor.close(ignored);
    signals.cancel(ignored);
    // Connections waiting for their next request have nothing in flight: close them now.
    std::lock_guard lock(sessions_mutex);
    for (const auto& s : sessions) {
      asio::post(s->stream.get_executor(), [s] {
        if (s->idle) s->stream.cancel();
      });
    }
    if (active == 0) return;
    drain_timer.expires_after(config.intake.shutdown_timeout);
    drain_timer.async_wait([this](beast::error_code ec) {
      if (!ec) {
        log::warn("shutdown deadline reached; closing connections still in flight", {{"connections", active.load()}});
        io.stop();
      }
    });
  }
};

HttpServer::HttpServer(const Config& config, Intake& intake, Api* api)
    : impl_(std::make_unique<Impl>(config, intake, api)) {}
HttpServer::~HttpServer() = default;

tl::expected<std::uint16_t, std::string> HttpServer::listen() {
  beast::error_code ec;
  auto address = asio::ip::make_address(impl_->config.listen_host, ec);
  if (ec) return tl::unexpected("listen: '" + impl_->config.listen_host + "' is not an IP address");
  tcp::endpoint endpoint{address, impl_->config.listen_port};
  auto& a = impl_->acceptor;
  a.open(endpoint.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(endpoint, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return tl::unexpected("listen: cannot listen on " + impl_->config.listen_host + ":" +
                          std::to_string(impl_->config.listen_port) + ": " + ec.message());
  }
  return a.local_endpoint().port();
}

void HttpServer::run(unsigned threads) {
  auto& impl = *impl_;
  impl.signals.async_wait([&impl](beast::error_code ec, int) {
    if (!ec) asio::post(impl.shutdown_strand, [&impl] { impl.begin_shutdown(); });
  });
  // The acceptor is used only on the shutdown strand, which also closes it.
  asio::co_spawn(impl.shutdown_strand, impl.accept_loop(), asio::detached);
  asio::co_spawn(impl.shutdown_strand, impl.sweep_loop(), asio::detached);
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) {
    pool.emplace_back([&impl, i] {
      // Named, so `top -H` and perf show which thread is which.
      (void)::pthread_setname_np(::pthread_self(), ("tg-io-" + std::to_string(i)).c_str());
      impl.io.run();
    });
  }
  impl.io.run();
  for (auto& t : pool) t.join();
  // An API call still running (an action waiting for the host) finishes before the caller stops
  // the engine and the inbox it uses.
  impl.action_pool.join();
  impl.api_pool.join();
}

void HttpServer::stop() {
  asio::post(impl_->shutdown_strand, [this] { impl_->begin_shutdown(); });
}

}  // namespace tollgate::service
