#include "service/intake.hpp"

#include <nlohmann/json.hpp>

#include "service/api.hpp"
#include "service/log.hpp"

namespace tollgate::service {

HttpResponse json_response(int status, const std::string& key, const std::string& message, const std::string& delivery_id) {
  // Built directly (once per request): {"delivery":"...","<key>":"..."}, keys in sorted order.
  std::string body;
  body.reserve(32 + key.size() + message.size() + delivery_id.size());
  body += '{';
  if (!delivery_id.empty()) {
    body += "\"delivery\":";
    log::append_json_string(body, delivery_id);
    body += ',';
  }
  log::append_json_string(body, key);
  body += ':';
  log::append_json_string(body, message);
  body += "}\n";
  return {status, "application/json", std::move(body)};
}

namespace {
// The event label of a metric: used event types and ping by name, anything else "other".
std::string event_label(webhooks::HostKind kind, const std::string& event) {
  if (webhooks::is_used_event(kind, event) || (kind == webhooks::HostKind::github && event == "ping")) return event;
  return event.empty() ? "" : "other";
}
}  // namespace

Intake::Intake(const Config& config, Inbox& inbox, Metrics& metrics) : inbox_(inbox), metrics_(metrics) {
  for (const auto& [name, host] : config.hosts) {
    webhooks::ReceiverConfig rc;
    rc.kind = host.kind;
    for (const auto& s : host.webhook_secrets) rc.secrets.push_back(s.value());
    for (const auto& r : host.repos) {
      if (auto g = pipeline::Glob::compile(r)) rc.repos.push_back(std::move(*g));
    }
    receivers_.emplace(name, std::move(rc));
  }
}

std::variant<HttpResponse, StoreJob, ApiCall> Intake::route(HttpRequest& request) {
  std::string_view path = request.target;
  path = path.substr(0, path.find('?'));
  // HEAD is answered wherever GET is (RFC 9110 9.3.2; some health checkers use it): the server
  // sends the headers of the GET answer without its body.
  auto only = [&](const char* method, const char* route) -> std::optional<HttpResponse> {
    const bool get = std::string_view(method) == "GET";
    if (request.method == method || (get && request.method == "HEAD")) return std::nullopt;
    metrics_.http_request(route, 405);
    auto r = json_response(405, "error", std::string("use ") + method + " for " + std::string(path.substr(0, 100)));
    r.allow = get ? "GET, HEAD" : method;
    return r;
  };
  if (path == "/healthz") {
    if (auto r = only("GET", "/healthz")) return *r;
    metrics_.http_request("/healthz", 200);
    return HttpResponse{200, "text/plain; charset=utf-8", "ok\n"};
  }
  if (path == "/readyz") {
    if (auto r = only("GET", "/readyz")) return *r;
    bool ok = inbox_.reachable();
    metrics_.http_request("/readyz", ok ? 200 : 503);
    return ok ? HttpResponse{200, "text/plain; charset=utf-8", "ready\n"}
              : HttpResponse{503, "text/plain; charset=utf-8", "database unreachable\n"};
  }
  if (path == "/metrics") {
    if (auto r = only("GET", "/metrics")) return *r;
    metrics_.http_request("/metrics", 200);
    return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", metrics_.render(inbox_.depth(), inbox_.arriving_now())};
  }
  if (is_hook(path)) {
    if (auto r = only("POST", "/hooks/{host}")) return *r;
    return hook(std::string(path.substr(7)), request);
  }
  if (Api::owns(path)) return ApiCall{};
  metrics_.http_request("other", 404);
  return json_response(404, "error", "no such endpoint; webhooks go to POST /hooks/<host>, the API is under /api/v1");
}

void Intake::api_answered(std::string_view target, int status) {
  target = target.substr(0, target.find('?'));
  metrics_.http_request(target.substr(0, 5) == "/api/" ? "/api/v1" : "/", status);
}

std::variant<HttpResponse, StoreJob, ApiCall> Intake::hook(const std::string& host_name, HttpRequest& request) {
  auto it = receivers_.find(host_name);
  if (it == receivers_.end()) {
    // Labels only from configuration and known event types: unauthenticated input must not be
    // able to create metric series.
    metrics_.http_request("/hooks/{host}", 404);
    metrics_.delivery("unknown", "", "rejected_404");
    log::warn("delivery refused", {{"host", host_name.substr(0, 64)}, {"status", 404}, {"reason", "unknown host"}});
    return json_response(404, "error", "no host named '" + host_name.substr(0, 64) + "' is configured; see 'hosts' in the configuration");
  }
  auto verdict = webhooks::receive(it->second, request.header, std::move(request.body));
  using Outcome = webhooks::Verdict::Outcome;
  std::string event = event_label(it->second.kind, verdict.event_type);
  switch (verdict.outcome) {
    case Outcome::store:
      return StoreJob{host_name, std::move(verdict.delivery)};
    case Outcome::ignore:
      metrics_.http_request("/hooks/{host}", 202);
      metrics_.delivery(host_name, event, "ignored");
      log::info("delivery ignored", {{"host", host_name}, {"event", verdict.event_type}, {"delivery", verdict.delivery_id}});
      return json_response(202, "status", verdict.message, verdict.delivery_id);
    case Outcome::ping:
      metrics_.http_request("/hooks/{host}", 200);
      metrics_.delivery(host_name, event, "ping");
      log::info("ping answered", {{"host", host_name}, {"delivery", verdict.delivery_id}});
      return json_response(200, "status", "pong", verdict.delivery_id);
    case Outcome::reject:
      break;
  }
  metrics_.http_request("/hooks/{host}", verdict.status);
  metrics_.delivery(host_name, event, "rejected_" + std::to_string(verdict.status));
  log::warn("delivery refused", {{"host", host_name},
                                 {"event", verdict.event_type.substr(0, 100)},
                                 {"delivery", verdict.delivery_id},
                                 {"status", verdict.status},
                                 {"reason", verdict.message}});
  return json_response(verdict.status, "error", verdict.message, verdict.delivery_id);
}

HttpResponse Intake::finish(const StoreJob& job, StoreResult result,
                            std::chrono::steady_clock::duration took) {
  const double seconds = std::chrono::duration<double>(took).count();
  const auto& d = job.delivery;
  const std::string& event = d.event_type;  // a used event type: a bounded set
  if (result != StoreResult::failed) {
    const bool stored = result == StoreResult::stored;
    // The inbox wrote the log line, with the others of its commit.
    metrics_.answered_202(job.host, event, stored ? "stored" : "duplicate", seconds);
    return json_response(202, "status", stored ? "accepted" : "already received; not stored again", d.delivery_id);
  }
  metrics_.http_request("/hooks/{host}", 503);
  metrics_.delivery(job.host, event, "failed");
  return json_response(503, "error", "the delivery could not be stored; retry later", d.delivery_id);
}

HttpResponse Intake::edge_error(std::string_view target, int status, std::string message) {
  std::string route = is_hook(target) ? "/hooks/{host}" : "other";
  metrics_.http_request(route, status);
  log::warn("request refused", {{"target", std::string(target.substr(0, 100))}, {"status", status}, {"reason", message}});
  return json_response(status, "error", message);
}

}  // namespace tollgate::service
