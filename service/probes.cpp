#include "service/probes.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <exception>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

#include "service/host/http_client.hpp"
#include "templates/mustache.hpp"

namespace tollgate::service {

namespace {

using Kind = ProbeResult::Kind;
using nlohmann::json;

constexpr std::size_t max_message = 700;

bool is_utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Cuts `s` to at most `n` bytes (not inside a UTF-8 sequence), marking the cut.
std::string shorten(std::string s, std::size_t n) {
  if (s.size() <= n) return s;
  std::size_t cut = n;
  while (cut > 0 && is_utf8_continuation(s[cut])) --cut;
  s.resize(cut);
  s += "…";
  return s;
}

// One line: control characters (newlines, tabs, ESC...) become spaces.
std::string one_line(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7f ? ' ' : c);
  }
  return out;
}

ProbeResult make(Kind kind, std::string_view message) {
  return ProbeResult{kind, shorten(one_line(message), max_message)};
}

std::string_view trim(std::string_view s) {
  const auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

bool is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}
bool is_unreserved(char c) { return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~'; }

void append_pct(std::string& out, unsigned char b) {
  static constexpr char digits[] = "0123456789ABCDEF";
  out.push_back('%');
  out.push_back(digits[b >> 4]);
  out.push_back(digits[b & 15]);
}

// Percent-encodes the bytes that may not appear in a URL, keeping its structure (reserved
// characters) and well-formed %XX escapes as written.
std::string encode_unsafe(std::string_view url) {
  static constexpr std::string_view reserved = ":/?#[]@!$&'()*+,;=";
  std::string out;
  out.reserve(url.size());
  for (std::size_t i = 0; i < url.size(); ++i) {
    const char c = url[i];
    if (is_unreserved(c) || reserved.find(c) != std::string_view::npos) {
      out.push_back(c);
    } else if (c == '%' && i + 2 < url.size() && is_hex(url[i + 1]) && is_hex(url[i + 2])) {
      out.push_back(c);
    } else {
      append_pct(out, static_cast<unsigned char>(c));
    }
  }
  return out;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
      out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string base64(std::string_view in) {
  static constexpr char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const std::uint32_t v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                            static_cast<unsigned char>(in[i + 2]);
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += table[(v >> 6) & 63];
    out += table[v & 63];
  }
  if (i + 1 == in.size()) {
    const std::uint32_t v = static_cast<unsigned char>(in[i]) << 16;
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const std::uint32_t v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += table[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

// `url` without `user:password@` (and, when it is not scheme://authority, cut at its first ':' or '@').
std::string without_credentials(std::string url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) {  // not a URL: its first part only ("mailto:…")
    const auto cut = url.find_first_of(":@");
    return cut == std::string::npos ? url : url.substr(0, cut + 1) + "…";
  }
  const auto start = scheme_end + 3;
  const auto end = url.find('/', start);
  const auto at = url.rfind('@', end == std::string::npos ? std::string::npos : end);
  if (at != std::string::npos && at >= start) url.erase(start, at + 1 - start);
  return url;
}

// The HTTP client's error message without its leading "host:port: " (the url says it already).
std::string error_detail(const std::string& message) {
  const auto colon = message.find(": ");
  if (colon == std::string::npos) return message;
  const std::string_view head(message.data(), colon);
  if (head.find(' ') != std::string_view::npos || head.find(':') == std::string_view::npos) return message;
  return message.substr(colon + 2);
}

// A rendered URL, ready to send.
struct Target {
  std::string url;            // http(s)://host[:port]/path?query, no credentials, no fragment
  std::string display;        // for messages: no credentials, no query
  std::string authorization;  // "Basic ..." when the url had user:password@
};

tl::expected<Target, std::string> prepare_url(std::string_view rendered) {
  const std::string_view trimmed = trim(rendered);
  if (trimmed.empty()) return tl::unexpected<std::string>("the url is empty");
  std::string url = encode_unsafe(trimmed);
  const auto has_prefix = [&url](std::string_view prefix) {
    if (url.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(url[i])) != prefix[i]) return false;
    return true;
  };
  const std::string scheme = has_prefix("https://") ? "https" : has_prefix("http://") ? "http" : "";
  const std::string shown = shorten(without_credentials(url.substr(0, url.find_first_of("?#"))), 120);
  if (scheme.empty()) return tl::unexpected("url '" + shown + "' does not start with http:// or https://");
  std::string_view rest = std::string_view(url).substr(scheme.size() + 3);
  if (const auto hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  const auto slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  std::string path_query = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (path_query.front() == '?') path_query.insert(0, "/");

  Target t;
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    authority.remove_prefix(at + 1);
    const auto colon = userinfo.find(':');
    const std::string user = percent_decode(userinfo.substr(0, colon));
    const std::string password = colon == std::string_view::npos ? "" : percent_decode(userinfo.substr(colon + 1));
    t.authorization = "Basic " + base64(user + ":" + password);
  }
  std::string_view host = authority;
  std::string_view port;
  if (authority.starts_with("[")) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return tl::unexpected("url '" + shown + "' has a bad IPv6 address");
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty() && !after.starts_with(":")) return tl::unexpected("url '" + shown + "' has a bad host");
    if (!after.empty()) port = after.substr(1);
    for (char c : host)
      if (!is_hex(c) && c != ':' && c != '.') return tl::unexpected("url '" + shown + "' has a bad IPv6 address");
  } else {
    const auto colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
    for (char c : host)
      if (!is_alnum(c) && c != '-' && c != '.' && c != '_')
        return tl::unexpected("url '" + shown + "' has a bad host name");
  }
  if (host.empty()) return tl::unexpected("url '" + shown + "' has no host");
  if (!port.empty() || authority.ends_with(":")) {
    int p = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc{} || end != port.data() + port.size() || p < 1 || p > 65535)
      return tl::unexpected("url '" + shown + "' has a bad port");
  }
  t.url = scheme + "://" + std::string(authority) + path_query;
  const auto q = path_query.find('?');
  t.display = scheme + "://" + std::string(authority) + path_query.substr(0, q) + (q == std::string::npos ? "" : "?…");
  t.display = shorten(std::move(t.display), 200);
  return t;
}

host::HttpResult send(const Target& t, const ProbeOptions& options, bool want_json) {
  host::HttpRequest req;
  req.method = "GET";
  req.url = t.url;
  req.conditional = false;
  req.timeout = options.timeout;
  if (!t.authorization.empty()) req.headers.emplace_back("Authorization", t.authorization);
  if (want_json) req.headers.emplace_back("Accept", "application/json");
  try {
    if (options.client) return options.client->request(std::move(req));
    host::HttpClientOptions co;
    co.timeout = options.timeout;
    co.max_attempts = 1;
    co.max_rate_limit_waits = 0;
    co.etag_cache_entries = 0;
    co.max_idle_per_host = 0;
    co.ca_file = options.ca_file;
    co.body_limit = options.body_limit;
    co.user_agent = "tollgate-probe";
    host::HttpClient client(std::move(co));
    return client.request(std::move(req));
  } catch (const std::exception& e) {
    return tl::unexpected(host::HttpError{host::HttpErrorKind::shutdown, std::string("http client: ") + e.what()});
  }
}

std::string render_or(std::string_view what, const std::string& text, const TemplateValues& vars,
                      std::optional<ProbeResult>& error) {
  try {
    auto r = templates::render(text, vars);
    if (r) return *r;
    error = make(Kind::terminal, std::string(what) + " template: " + r.error());
  } catch (const std::exception& e) {
    error = make(Kind::terminal, std::string(what) + " template: " + e.what());
  }
  return {};
}

std::string format_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc{}) return "?";
  return std::string(buf, end);
}

// A sample value as Prometheus writes it: "1.5", "NaN", "+Inf", "-Inf", "1e-05".
std::optional<double> parse_sample(const json& v) {
  if (v.is_number()) return v.get<double>();
  if (!v.is_string()) return std::nullopt;
  std::string_view s = trim(v.get_ref<const std::string&>());
  if (s == "NaN" || s == "nan") return std::nan("");
  if (s == "+Inf" || s == "Inf" || s == "inf" || s == "+inf") return HUGE_VAL;
  if (s == "-Inf" || s == "-inf") return -HUGE_VAL;
  if (s.starts_with("+")) s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  double d = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return d;
}

// `name{a="b", c="d"}`, bounded.
std::string series_name(const json& metric) {
  std::string out;
  if (!metric.is_object()) return "{}";
  if (auto it = metric.find("__name__"); it != metric.end() && it->is_string()) out = it->get<std::string>();
  out += '{';
  bool first = true;
  for (auto it = metric.begin(); it != metric.end(); ++it) {
    if (it.key() == "__name__") continue;
    if (!first) out += ", ";
    first = false;
    out += it.key();
    out += "=\"";
    out += it->is_string() ? it->get<std::string>() : it->dump();
    out += '"';
  }
  out += '}';
  return shorten(one_line(out), 160);
}

struct Bounds {
  std::optional<double> below, above;
  [[nodiscard]] bool hold(double v) const {
    if (std::isnan(v)) return false;
    if (below && !(v < *below)) return false;
    if (above && !(v > *above)) return false;
    return true;
  }
  [[nodiscard]] std::string text() const {
    std::string out;
    if (above) out = "above " + format_number(*above);
    if (below) out += (out.empty() ? "below " : " and below ") + format_number(*below);
    return out;
  }
};

struct Sample {
  std::string series;  // empty: the scalar
  double value = 0;
};

// Judges the samples of one answer.
ProbeResult judge(const std::vector<Sample>& samples, const Bounds& bounds, const std::string& what) {
  std::vector<const Sample*> bad;
  for (const auto& s : samples)
    if (!bounds.hold(s.value)) bad.push_back(&s);
  const auto describe = [](const Sample& s) {
    return (s.series.empty() ? std::string("value") : s.series) + " = " + format_number(s.value);
  };
  if (bad.empty()) {
    if (samples.size() == 1) return make(Kind::pass, what + ": " + describe(samples.front()) + ", " + bounds.text());
    return make(Kind::pass, what + ": all " + std::to_string(samples.size()) + " series " + bounds.text());
  }
  if (samples.size() == 1)
    return make(Kind::fail, what + ": " + describe(*bad.front()) + ", expected " + bounds.text());
  std::string msg = what + ": " + std::to_string(bad.size()) + " of " + std::to_string(samples.size()) +
                    " series not " + bounds.text() + ": ";
  constexpr std::size_t shown = 4;
  for (std::size_t i = 0; i < bad.size() && i < shown; ++i) msg += (i ? "; " : "") + describe(*bad[i]);
  if (bad.size() > shown) msg += "; and " + std::to_string(bad.size() - shown) + " more";
  return make(Kind::fail, msg);
}

ProbeResult judge_prometheus_answer(const host::HttpResponse& res, const Bounds& bounds, const std::string& what,
                                    const std::string& where) {
  const std::string http = "HTTP " + std::to_string(res.status);
  const json doc = json::parse(res.body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("status")) {
    const std::string type = res.header("content-type");
    std::string msg = where + " answered " + http + " without a Prometheus API answer";
    if (!type.empty()) msg += " (content-type " + shorten(type, 60) + ")";
    // A 4xx that is not Prometheus speaking: a wrong url or missing credentials; no point asking again.
    if (res.status >= 400 && res.status < 500 && res.status != 408 && res.status != 429)
      return make(Kind::terminal, msg + "; is the url a Prometheus server?");
    return make(Kind::retryable, msg);
  }
  const json& status = doc["status"];
  if (status == "error") {
    const std::string type = doc.contains("errorType") && doc["errorType"].is_string() ? doc["errorType"].get<std::string>() : "";
    const std::string error = doc.contains("error") && doc["error"].is_string() ? doc["error"].get<std::string>() : "no message";
    std::string msg = where + " refused " + what + " (" + http + (type.empty() ? "" : ", " + type) + "): " + error;
    // Prometheus: 400 bad_data (the query does not parse), 422 execution (it cannot run): asking
    // again gives the same answer. 503 timeout / canceled, 500 internal: it may work next time.
    const bool transient = type == "timeout" || type == "canceled" || type == "unavailable" || type == "internal" ||
                           type == "too_many_requests" || res.status >= 500 || res.status == 429;
    return make(transient ? Kind::retryable : Kind::terminal, msg);
  }
  const auto malformed = [&](std::string_view why) {
    return make(Kind::retryable, where + " sent a malformed answer (" + http + "): " + std::string(why));
  };
  if (status != "success") return malformed("'status' is neither success nor error");
  if (!doc.contains("data") || !doc["data"].is_object()) return malformed("no 'data' object");
  const json& data = doc["data"];
  if (!data.contains("resultType") || !data["resultType"].is_string()) return malformed("no 'data.resultType'");
  const std::string type = data["resultType"].get<std::string>();
  if (!data.contains("result")) return malformed("no 'data.result'");
  const json& result = data["result"];

  std::vector<Sample> samples;
  if (type == "scalar") {
    if (!result.is_array() || result.size() != 2) return malformed("a scalar result is not [time, \"value\"]");
    auto v = parse_sample(result[1]);
    if (!v) return malformed("the scalar's value is not a number");
    samples.push_back(Sample{{}, *v});
  } else if (type == "vector") {
    if (!result.is_array()) return malformed("a vector result is not an array");
    if (result.empty()) return make(Kind::fail, what + ": query returned no series");
    for (const json& s : result) {
      if (!s.is_object()) return malformed("a series is not an object");
      const std::string name = series_name(s.contains("metric") ? s["metric"] : json::object());
      if (!s.contains("value") && (s.contains("histogram") || s.contains("histograms")))
        return make(Kind::terminal, what + ": series " + name +
                                        " is a native histogram; query a number (e.g. histogram_quantile)");
      if (!s.contains("value") || !s["value"].is_array() || s["value"].size() != 2)
        return malformed("series " + name + " has no [time, \"value\"]");
      auto v = parse_sample(s["value"][1]);
      if (!v) return malformed("the value of series " + name + " is not a number");
      samples.push_back(Sample{name, *v});
    }
  } else if (type == "matrix") {
    return make(Kind::terminal, what + " returns a range vector (matrix); use an instant vector or a scalar, "
                                       "e.g. wrap it in rate() or max_over_time()");
  } else if (type == "string") {
    return make(Kind::terminal, what + " returns a string, not a number");
  } else {
    return malformed("unknown resultType '" + shorten(one_line(type), 40) + "'");
  }
  return judge(samples, bounds, what);
}

}  // namespace

const char* to_string(ProbeResult::Kind kind) {
  switch (kind) {
    case Kind::pass: return "pass";
    case Kind::fail: return "fail";
    case Kind::retryable: return "retryable";
    case Kind::terminal: return "terminal";
  }
  return "?";
}

std::string percent_encode_component(std::string_view text) {
  std::string out;
  out.reserve(text.size() * 3 / 2);
  for (char c : text) {
    if (is_unreserved(c)) {
      out.push_back(c);
    } else {
      append_pct(out, static_cast<unsigned char>(c));
    }
  }
  return out;
}

ProbeResult run_http_probe(const pipeline::HttpStep& step, const TemplateValues& vars, const ProbeOptions& options) {
  std::optional<ProbeResult> error;
  const std::string rendered = render_or("http probe: url", step.url, vars, error);
  if (error) return *error;
  auto target = prepare_url(rendered);
  if (!target) return make(Kind::terminal, "http probe: " + target.error());
  const std::string expected = "expected " + std::to_string(step.expect);
  const std::string where = "GET " + target->display;

  auto res = send(*target, options, false);
  if (!res) {
    const host::HttpError& e = res.error();
    using EK = host::HttpErrorKind;
    switch (e.kind) {
      case EK::bad_request: return make(Kind::terminal, where + ": " + error_detail(e.message));
      case EK::proxy:
      case EK::shutdown: return make(Kind::retryable, where + ": " + error_detail(e.message));
      case EK::rate_limited: return make(Kind::fail, where + ": " + error_detail(e.message) + ", " + expected);
      case EK::connect:
      case EK::tls:
      case EK::timeout:
      case EK::reset:
      case EK::protocol:
        break;
    }
    std::string detail = error_detail(e.message);
    if (e.kind == EK::timeout)
      detail = "no answer within " + std::to_string(options.timeout.count()) + " ms (" + detail + ")";
    return make(Kind::fail, where + ": " + detail + ", " + expected);
  }
  if (res->status == step.expect) return make(Kind::pass, where + " answered " + std::to_string(res->status));
  std::string msg = where + " answered " + std::to_string(res->status) + ", " + expected;
  if (res->status >= 300 && res->status < 400) {
    if (const std::string loc = res->header("location"); !loc.empty()) {
      auto to = prepare_url(loc);
      msg += " (redirect to " + (to ? to->display : std::string("elsewhere")) + ")";
    }
  }
  return make(Kind::fail, msg);
}

ProbeResult run_prometheus_probe(const pipeline::PrometheusStep& step, const TemplateValues& vars,
                                 const ProbeOptions& options) {
  if (!step.below && !step.above) return make(Kind::terminal, "prometheus step has neither 'below' nor 'above'");
  std::optional<ProbeResult> error;
  const std::string base_rendered = render_or("prometheus probe: url", step.url, vars, error);
  if (error) return *error;
  const std::string query_rendered = render_or("prometheus probe: query", step.query, vars, error);
  if (error) return *error;
  const std::string_view query = trim(query_rendered);
  if (query.empty()) return make(Kind::terminal, "prometheus probe: the query is empty");

  std::string_view base = trim(base_rendered);
  if (base.find_first_of("?#") != std::string_view::npos)
    return make(Kind::terminal, "prometheus probe: the url must be the server's base url, without '?' or '#'");
  while (base.ends_with("/")) base.remove_suffix(1);
  auto target = prepare_url(std::string(base) + "/api/v1/query?query=" + percent_encode_component(query));
  if (!target) return make(Kind::terminal, "prometheus probe: " + target.error());

  const std::string what = "query '" + shorten(one_line(query), 160) + "'";
  const std::string where = "prometheus " + target->display.substr(0, target->display.find('?'));
  auto res = send(*target, options, true);
  if (!res) {
    const host::HttpError& e = res.error();
    std::string detail = error_detail(e.message);
    if (e.kind == host::HttpErrorKind::bad_request) return make(Kind::terminal, where + ": " + detail);
    if (e.kind == host::HttpErrorKind::timeout)
      detail = "no answer within " + std::to_string(options.timeout.count()) + " ms (" + detail + ")";
    return make(Kind::retryable, where + ": " + detail);
  }
  try {
    return judge_prometheus_answer(*res, Bounds{step.below, step.above}, what, where);
  } catch (const std::exception& e) {  // not expected: every access is type-checked
    return make(Kind::retryable, where + ": unreadable answer: " + e.what());
  }
}

}  // namespace tollgate::service
