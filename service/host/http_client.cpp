#include "service/host/http_client.hpp"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <deque>
#include <list>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace tollgate::service::host {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr auto as_tuple_awaitable = asio::as_tuple(asio::use_awaitable);

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

struct Url {
  bool tls = false;
  std::string host;
  std::string port;
  std::string target;
};

tl::expected<Url, std::string> parse_url(std::string_view url) {
  Url u;
  std::string_view rest;
  if (url.starts_with("https://")) {
    u.tls = true;
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else {
    return tl::unexpected<std::string>("unsupported url scheme");
  }
  const auto slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  u.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (u.target.front() == '?') u.target.insert(0, "/");
  if (authority.find('@') != std::string_view::npos) return tl::unexpected<std::string>("credentials in url");
  if (authority.starts_with("[")) {  // [v6]:port
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return tl::unexpected<std::string>("bad ipv6 host");
    u.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    if (authority.starts_with(":")) u.port = std::string(authority.substr(1));
  } else {
    const auto colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) u.port = std::string(authority.substr(colon + 1));
  }
  if (u.host.empty()) return tl::unexpected<std::string>("empty host");
  if (u.port.empty()) u.port = u.tls ? "443" : "80";
  return u;
}

bool is_ip(const std::string& host) {
  boost::system::error_code ec;
  (void)asio::ip::make_address(host, ec);
  return !ec;
}

bool idempotent_method(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "PUT" || m == "DELETE" || m == "OPTIONS";
}

std::optional<long> to_long(std::string_view s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const std::string copy(s);
  const long v = std::strtol(copy.c_str(), &end, 10);
  if (end == copy.c_str() || *end != '\0') return std::nullopt;
  return v;
}

std::int64_t epoch_ms() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The first 8 hex digits of the SHA-256 of a credential: tells identities apart in metrics
// without revealing them.
std::string fingerprint(const std::string& secret) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(secret.data(), secret.size(), md, &n, EVP_sha256(), nullptr);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < 4 && i < n; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 15]);
  }
  return out;
}

std::string env(const char* a, const char* b) {
  if (const char* v = std::getenv(a); v && *v) return v;
  if (const char* v = std::getenv(b); v && *v) return v;
  return {};
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return {};
}

std::string_view to_string(HttpErrorKind kind) {
  switch (kind) {
    case HttpErrorKind::bad_request: return "bad request";
    case HttpErrorKind::connect: return "connect";
    case HttpErrorKind::tls: return "tls";
    case HttpErrorKind::proxy: return "proxy";
    case HttpErrorKind::timeout: return "timeout";
    case HttpErrorKind::reset: return "reset";
    case HttpErrorKind::protocol: return "protocol";
    case HttpErrorKind::rate_limited: return "rate limited";
    case HttpErrorKind::shutdown: return "shutdown";
  }
  return "unknown";
}

bool no_proxy_matches(std::string_view no_proxy, std::string_view host) {
  const std::string h = lower(host);
  std::size_t pos = 0;
  while (pos <= no_proxy.size()) {
    auto comma = no_proxy.find(',', pos);
    if (comma == std::string_view::npos) comma = no_proxy.size();
    std::string entry = lower(no_proxy.substr(pos, comma - pos));
    pos = comma + 1;
    entry.erase(0, entry.find_first_not_of(" \t"));
    entry.erase(entry.find_last_not_of(" \t") + 1);
    if (const auto colon = entry.find(':'); colon != std::string::npos && entry.find(':', colon + 1) == std::string::npos)
      entry.erase(colon);  // host:port entries match the host
    if (entry.empty()) continue;
    if (entry == "*") return true;
    if (entry.front() == '.') entry.erase(0, 1);
    if (h == entry) return true;
    if (h.size() > entry.size() && h.ends_with(entry) && h[h.size() - entry.size() - 1] == '.') return true;
  }
  return false;
}

struct HttpClient::Impl {
  struct Conn {
    std::unique_ptr<beast::tcp_stream> plain;
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
    beast::flat_buffer buffer;
    Clock::time_point idle_since{};
    beast::tcp_stream& lowest() { return tls ? tls->next_layer() : *plain; }
  };

  struct HostState {
    std::size_t active = 0;
    std::deque<asio::steady_timer*> waiters;  // requests waiting for a slot
    std::vector<std::unique_ptr<Conn>> idle;
  };

  // GitHub counts quotas per identity (user, App installation), so limits are tracked per
  // host:port and credentials, while connections and the concurrency cap are per host:port.
  struct Quota {
    RateLimitState rate;
    Clock::time_point blocked_until{};  // a secondary limit holds every request of this identity
  };

  struct Cached {
    std::string etag;
    HttpResponse response;
  };

  struct Exchange {
    std::optional<HttpError> error;
    bool stale = false;  // a reused connection closed before any answer: resend at once
    HttpResponse response;
  };

  explicit Impl(HttpClientOptions o) : options(std::move(o)), rng(std::random_device{}()) {
    proxy = options.https_proxy ? *options.https_proxy : env("HTTPS_PROXY", "https_proxy");
    no_proxy = options.no_proxy ? *options.no_proxy : env("NO_PROXY", "no_proxy");
    if (!proxy.empty() && proxy.find("://") == std::string::npos) proxy = "http://" + proxy;
    thread = std::thread([this] { io.run(); });
  }

  ~Impl() {
    work.reset();
    io.stop();
    if (thread.joinable()) thread.join();
    hosts.clear();  // sockets go before the io_context that owns their services
  }

  HttpClientOptions options;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  // Made at the first https connection (I/O thread only): the system's CA store takes ~1.5 MB,
  // which a service that talks to no https host (intake only, a plain-http test host) never needs.
  std::optional<ssl::context> tls_ctx;
  std::string tls_setup_error;

  ssl::context& tls_context() {
    if (tls_ctx) return *tls_ctx;
    tls_ctx.emplace(ssl::context::tls_client);
    tls_ctx->set_verify_mode(ssl::verify_peer);
    boost::system::error_code ec;
    if (options.ca_file.empty()) {
      tls_ctx->set_default_verify_paths(ec);
    } else {
      tls_ctx->load_verify_file(options.ca_file, ec);
    }
    // Reported on every https request rather than thrown.
    if (ec) tls_setup_error = "ca file '" + options.ca_file + "': " + ec.message();
    return *tls_ctx;
  }
  std::string proxy;
  std::string no_proxy;
  std::map<std::string, HostState> hosts;  // I/O thread only; std::map keeps references stable
  std::map<std::string, Quota> quotas;     // I/O thread only
  std::list<std::pair<std::string, Cached>> lru;  // most recent first
  std::unordered_map<std::string, std::list<std::pair<std::string, Cached>>::iterator> cache;
  std::mt19937_64 rng;
  mutable std::mutex rates_mutex;
  std::map<std::string, RateLimitState> rates;  // snapshot for rate_limits()
  std::thread thread;

  asio::awaitable<void> sleep(milliseconds d) {
    asio::steady_timer t(io, d);
    (void)co_await t.async_wait(as_tuple_awaitable);
  }

  asio::awaitable<void> acquire(HostState& hs) {
    if (hs.active < std::max<std::size_t>(options.max_per_host, 1)) {
      ++hs.active;
      co_return;
    }
    asio::steady_timer t(io, Clock::time_point::max());
    hs.waiters.push_back(&t);
    (void)co_await t.async_wait(as_tuple_awaitable);  // release() hands its slot over
  }

  void release(HostState& hs) {
    if (!hs.waiters.empty()) {
      auto* t = hs.waiters.front();
      hs.waiters.pop_front();
      t->cancel();
    } else {
      --hs.active;
    }
  }

  struct SlotGuard {
    Impl* self;
    HostState* hs;
    SlotGuard(Impl* s, HostState* h) : self(s), hs(h) {}
    SlotGuard(const SlotGuard&) = delete;
    SlotGuard& operator=(const SlotGuard&) = delete;
    ~SlotGuard() { self->release(*hs); }
  };

  milliseconds backoff(int failures) {
    const auto cap = std::min<std::int64_t>(options.backoff_max.count(),
                                            options.backoff_base.count() << std::min(failures, 20));
    std::uniform_int_distribution<std::int64_t> d(0, std::max<std::int64_t>(cap, 0));
    return milliseconds(d(rng));  // full jitter
  }

  void note_rate(const std::string& key, Quota& q, const HttpResponse& r) {
    const auto limit = to_long(r.header("x-ratelimit-limit"));
    const auto remaining = to_long(r.header("x-ratelimit-remaining"));
    const auto reset = to_long(r.header("x-ratelimit-reset"));
    if (limit) q.rate.limit = *limit;
    if (remaining) q.rate.remaining = *remaining;
    if (reset) q.rate.reset_epoch = *reset;
    std::lock_guard lock(rates_mutex);
    rates[key] = q.rate;
  }

  void publish(const std::string& key, Quota& q) {
    std::lock_guard lock(rates_mutex);
    rates[key] = q.rate;
  }

  static HttpError error_from(const beast::error_code& ec, std::string_view what, const std::string& where) {
    HttpErrorKind kind = HttpErrorKind::protocol;
    if (ec == beast::error::timeout) {
      kind = HttpErrorKind::timeout;
    } else if (ec == asio::error::connection_reset || ec == asio::error::eof || ec == asio::error::broken_pipe ||
               ec == http::error::end_of_stream || ec == http::error::partial_message ||
               ec == ssl::error::stream_truncated || ec == asio::error::connection_aborted) {
      kind = HttpErrorKind::reset;
    }
    return HttpError{kind, where + ": " + std::string(what) + ": " + ec.message()};
  }

  asio::awaitable<tl::expected<std::unique_ptr<Conn>, HttpError>> connect(const Url& u, Clock::time_point deadline) {
    const std::string where = u.host + ":" + u.port;
    const bool via_proxy = u.tls && !proxy.empty() && !no_proxy_matches(no_proxy, u.host);
    std::string host = u.host;
    std::string port = u.port;
    if (via_proxy) {
      auto p = parse_url(proxy);
      if (!p) co_return tl::unexpected(HttpError{HttpErrorKind::bad_request, "proxy url: " + p.error()});
      host = p->host;
      port = p->port;
    }
    tcp::resolver resolver(io);
    auto [rec, endpoints] = co_await resolver.async_resolve(host, port, as_tuple_awaitable);
    if (rec) co_return tl::unexpected(HttpError{HttpErrorKind::connect, host + ":" + port + ": resolve: " + rec.message()});
    auto stream = std::make_unique<beast::tcp_stream>(io);
    stream->expires_at(deadline);
    auto [cec, ep] = co_await stream->async_connect(endpoints, as_tuple_awaitable);
    (void)ep;
    if (cec) {
      auto e = error_from(cec, "connect", host + ":" + port);
      if (e.kind != HttpErrorKind::timeout) e.kind = HttpErrorKind::connect;
      co_return tl::unexpected(e);
    }
    auto conn = std::make_unique<Conn>();
    if (via_proxy) {
      http::request<http::empty_body> creq{http::verb::connect, where, 11};
      creq.set(http::field::host, where);
      creq.set(http::field::user_agent, options.user_agent);
      auto [wec, wn] = co_await http::async_write(*stream, creq, as_tuple_awaitable);
      (void)wn;
      if (wec) co_return tl::unexpected(HttpError{HttpErrorKind::proxy, "proxy " + host + ": " + wec.message()});
      http::response_parser<http::empty_body> parser;
      parser.skip(true);  // a CONNECT answer has no body
      auto [rdec, rn] = co_await http::async_read_header(*stream, conn->buffer, parser, as_tuple_awaitable);
      (void)rn;
      if (rdec) co_return tl::unexpected(HttpError{HttpErrorKind::proxy, "proxy " + host + ": " + rdec.message()});
      if (parser.get().result_int() != 200)
        co_return tl::unexpected(HttpError{HttpErrorKind::proxy, "proxy " + host + ": connect to '" + where +
                                                                     "' answered " + std::to_string(parser.get().result_int())});
    }
    if (!u.tls) {
      conn->plain = std::move(stream);
      co_return conn;
    }
    auto& tls = tls_context();
    if (!tls_setup_error.empty()) co_return tl::unexpected(HttpError{HttpErrorKind::tls, where + ": " + tls_setup_error});
    conn->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(*stream), tls);
    SSL* ssl_handle = conn->tls->native_handle();
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_handle);
    if (is_ip(u.host)) {
      X509_VERIFY_PARAM_set1_ip_asc(param, u.host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl_handle, u.host.c_str());  // SNI
      X509_VERIFY_PARAM_set1_host(param, u.host.c_str(), 0);
    }
    auto [hec] = co_await conn->tls->async_handshake(ssl::stream_base::client, as_tuple_awaitable);
    if (hec) {
      const long verify = SSL_get_verify_result(ssl_handle);
      if (verify != X509_V_OK)
        co_return tl::unexpected(HttpError{HttpErrorKind::tls, where + ": certificate verify failed: " +
                                                                   X509_verify_cert_error_string(verify)});
      if (hec == beast::error::timeout) co_return tl::unexpected(error_from(hec, "tls handshake", where));
      co_return tl::unexpected(HttpError{HttpErrorKind::tls, where + ": tls handshake: " + hec.message()});
    }
    co_return conn;
  }

  template <typename Stream>
  asio::awaitable<std::pair<beast::error_code, bool>> write_read(Stream& s, beast::flat_buffer& buffer,
                                                                 http::request<http::string_body>& req,
                                                                 http::response_parser<http::string_body>& parser) {
    auto [wec, wn] = co_await http::async_write(s, req, as_tuple_awaitable);
    (void)wn;
    if (wec) co_return std::pair{wec, false};
    auto [rec, rn] = co_await http::async_read(s, buffer, parser, as_tuple_awaitable);
    (void)rn;
    co_return std::pair{rec, true};
  }

  asio::awaitable<Exchange> exchange(const Url& u, HostState& hs, http::request<http::string_body>& req,
                                     milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    const std::string where = u.host + ":" + u.port;
    std::unique_ptr<Conn> conn;
    while (!hs.idle.empty() && !conn) {
      conn = std::move(hs.idle.back());
      hs.idle.pop_back();
      if (Clock::now() - conn->idle_since > options.idle_timeout) conn.reset();
    }
    const bool reused = conn != nullptr;
    Exchange out;
    if (!conn) {
      auto c = co_await connect(u, deadline);
      if (!c) {
        out.error = c.error();
        co_return out;
      }
      conn = std::move(*c);
    }
    conn->lowest().expires_at(deadline);
    http::response_parser<http::string_body> parser;
    parser.body_limit(options.body_limit);
    if (req.method() == http::verb::head) parser.skip(true);  // a HEAD answer has no body
    auto [ec, wrote] = conn->tls ? co_await write_read(*conn->tls, conn->buffer, req, parser)
                                 : co_await write_read(*conn->plain, conn->buffer, req, parser);
    if (ec) {
      out.error = error_from(ec, wrote ? "read" : "write", where);
      out.stale = reused && out.error->kind == HttpErrorKind::reset && !parser.got_some();
      co_return out;
    }
    auto& res = parser.get();
    out.response.status = static_cast<int>(res.result_int());
    for (const auto& field : res.base()) out.response.headers.emplace_back(lower(field.name_string()), std::string(field.value()));
    out.response.body = std::move(res.body());
    if (res.keep_alive() && !parser.need_eof() && hs.idle.size() < options.max_idle_per_host) {
      conn->lowest().expires_never();
      conn->idle_since = Clock::now();
      hs.idle.push_back(std::move(conn));
    }
    co_return out;
  }

  void report(const HttpRequest& r, int status, int attempt, const std::string& error, milliseconds wait) {
    if (!options.on_attempt) return;
    options.on_attempt(AttemptInfo{r.method, r.url, status, attempt, error, wait});
  }

  asio::awaitable<HttpResult> run(HttpRequest r) {
    auto url = parse_url(r.url);
    if (!url) co_return tl::unexpected(HttpError{HttpErrorKind::bad_request, "url: " + url.error()});
    const std::string key = url->host + ":" + url->port;
    HostState& hs = hosts[key];

    http::request<http::string_body> req;
    req.method_string(r.method);
    req.target(url->target);
    req.version(11);
    const bool default_port = url->port == (url->tls ? "443" : "80");
    req.set(http::field::host, default_port ? url->host : key);
    req.set(http::field::user_agent, options.user_agent);
    std::string auth;
    bool has_idempotency_key = false;
    for (const auto& [k, v] : r.headers) {
      req.set(k, v);
      const std::string lk = lower(k);
      if (lk == "authorization") auth = v;
      if (lk == "idempotency-key") has_idempotency_key = true;
    }
    if (!r.body.empty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH") req.body() = r.body;
    req.keep_alive(true);
    req.prepare_payload();
    const bool retryable = idempotent_method(r.method) || r.retry_safe || has_idempotency_key;
    const std::string quota_key = auth.empty() ? key : key + " identity=" + fingerprint(auth);
    Quota& quota = quotas[quota_key];

    // The cache is keyed by the credentials too (never stored: only their hash), since two
    // identities may see different answers.
    std::string cache_key;
    std::optional<Cached> cached;  // a copy: another request may evict the entry meanwhile
    if (r.method == "GET" && r.conditional && options.etag_cache_entries > 0) {
      cache_key = r.url + '\n' + std::to_string(std::hash<std::string>{}(auth));
      if (auto it = cache.find(cache_key); it != cache.end()) {
        lru.splice(lru.begin(), lru, it->second);
        cached = it->second->second;
        req.set(http::field::if_none_match, cached->etag);
      }
    }

    const milliseconds timeout = r.timeout.value_or(options.timeout);
    int attempts = 0;
    int failures = 0;
    int limit_waits = 0;
    bool stale_retried = false;
    while (true) {
      // Quota known to be gone, or a secondary limit in force: wait before sending.
      milliseconds wait{0};
      if (quota.rate.remaining == 0 && quota.rate.reset_epoch * 1000 > epoch_ms())
        wait = milliseconds(quota.rate.reset_epoch * 1000 - epoch_ms() + 250);
      if (quota.blocked_until > Clock::now())
        wait = std::max(wait, std::chrono::duration_cast<milliseconds>(quota.blocked_until - Clock::now()));
      if (wait.count() > 0) {
        if (wait > options.max_rate_limit_wait)
          co_return tl::unexpected(HttpError{HttpErrorKind::rate_limited, key + ": rate limited for another " +
                                                                              std::to_string(wait.count() / 1000) + " s"});
        co_await sleep(wait);
      }

      ++attempts;
      co_await acquire(hs);
      Exchange x;
      {
        // Released however the exchange ends: a slot lost to an exception would leave every later
        // request to this host waiting in acquire() for ever once max_per_host were lost.
        const SlotGuard slot{this, &hs};
        x = co_await exchange(*url, hs, req, timeout);
      }

      if (x.error) {
        if (x.stale && !stale_retried) {  // the server closed an idle connection: not a failure
          stale_retried = true;
          --attempts;
          continue;
        }
        // Nothing was sent when the connection could not be made, so any method may retry then.
        const bool transient = x.error->kind == HttpErrorKind::timeout || x.error->kind == HttpErrorKind::reset ||
                               x.error->kind == HttpErrorKind::connect;
        const bool may_retry = retryable || x.error->kind == HttpErrorKind::connect;
        if (transient && may_retry && ++failures < options.max_attempts) {
          const auto d = backoff(failures);
          report(r, 0, attempts, x.error->message, d);
          co_await sleep(d);
          continue;
        }
        report(r, 0, attempts, x.error->message, milliseconds{0});
        co_return tl::unexpected(*x.error);
      }

      HttpResponse& res = x.response;
      res.attempts = attempts;
      note_rate(quota_key, quota, res);

      if (res.status == 403 || res.status == 429) {
        std::optional<milliseconds> limit_wait;
        const std::string retry_after = res.header("retry-after");
        if (auto secs = to_long(retry_after)) {
          limit_wait = milliseconds(std::max<long>(*secs, 0) * 1000);
          quota.blocked_until = Clock::now() + *limit_wait;
          ++quota.rate.secondary_waits;
        } else if (res.header("x-ratelimit-remaining") == "0") {
          limit_wait = milliseconds(std::max<std::int64_t>(quota.rate.reset_epoch * 1000 - epoch_ms(), 0) + 250);
          ++quota.rate.primary_waits;
        } else if (res.status == 429 || lower(res.body).find("secondary rate limit") != std::string::npos) {
          limit_wait = options.secondary_limit_min * (1LL << std::min(limit_waits, 10));
          quota.blocked_until = Clock::now() + *limit_wait;
          ++quota.rate.secondary_waits;
        }
        if (limit_wait) {
          publish(quota_key, quota);
          if (++limit_waits > options.max_rate_limit_waits || *limit_wait > options.max_rate_limit_wait) {
            report(r, res.status, attempts, "rate limited", milliseconds{0});
            co_return tl::unexpected(HttpError{HttpErrorKind::rate_limited,
                                               key + ": rate limited (" + std::to_string(res.status) + ")"});
          }
          report(r, res.status, attempts, {}, *limit_wait);
          continue;  // the wait happens at the top of the loop (shared with other requests)
        }
      }

      if (res.status >= 500 && res.status != 501 && retryable && ++failures < options.max_attempts) {
        const auto d = backoff(failures);
        report(r, res.status, attempts, {}, d);
        co_await sleep(d);
        continue;
      }
      report(r, res.status, attempts, {}, milliseconds{0});

      if (res.status == 304 && cached) {
        HttpResponse from = cached->response;
        from.from_cache = true;
        from.attempts = attempts;
        co_return from;
      }
      if (!cache_key.empty() && res.status == 200) {
        if (const std::string etag = res.header("etag"); !etag.empty()) {
          if (auto it = cache.find(cache_key); it != cache.end()) {
            lru.erase(it->second);
            cache.erase(it);
          }
          lru.emplace_front(cache_key, Cached{etag, res});
          cache[cache_key] = lru.begin();
          while (lru.size() > options.etag_cache_entries) {
            cache.erase(lru.back().first);
            lru.pop_back();
          }
        }
      }
      co_return std::move(res);
    }
  }
};

HttpClient::HttpClient(HttpClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
HttpClient::~HttpClient() = default;

void HttpClient::async_request(HttpRequest request, std::function<void(HttpResult)> done) {
  auto* impl = impl_.get();
  asio::co_spawn(impl->io, impl->run(std::move(request)),
                 [done = std::move(done)](std::exception_ptr e, HttpResult result) {
                   if (e) {
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& ex) {
                       done(tl::unexpected(HttpError{HttpErrorKind::protocol, ex.what()}));
                     }
                     return;
                   }
                   done(std::move(result));
                 });
}

std::future<HttpResult> HttpClient::request_async(HttpRequest request) {
  auto promise = std::make_shared<std::promise<HttpResult>>();
  auto future = promise->get_future();
  async_request(std::move(request), [promise](HttpResult r) { promise->set_value(std::move(r)); });
  return future;
}

HttpResult HttpClient::request(HttpRequest request) {
  if (impl_->io.get_executor().running_in_this_thread())
    return tl::unexpected(HttpError{HttpErrorKind::bad_request, "blocking request on the client's i/o thread"});
  auto future = request_async(std::move(request));
  try {
    return future.get();
  } catch (const std::future_error&) {
    return tl::unexpected(HttpError{HttpErrorKind::shutdown, "client shut down"});
  }
}

std::map<std::string, RateLimitState> HttpClient::rate_limits() const {
  std::lock_guard lock(impl_->rates_mutex);
  return impl_->rates;
}

}  // namespace tollgate::service::host
