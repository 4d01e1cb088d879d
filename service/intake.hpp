#pragma once
// The HTTP routes, without a socket: health, readiness, metrics and webhook intake. The server
// reads a request, calls route(); a delivery to store comes back as a StoreJob, which the server
// hands to the inbox and answers with finish() once it is committed.
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "service/config.hpp"
#include "service/inbox.hpp"
#include "service/metrics.hpp"
#include "webhooks/receiver.hpp"

namespace tollgate::service {

struct HttpRequest {
  std::string method;
  std::string target;
  webhooks::HeaderLookup header;
  std::string body;  // moved on into the delivery (no copy of a 25 KB payload)
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string allow{};  // the Allow header of a 405
  std::vector<std::pair<std::string, std::string>> headers{};  // any others (WWW-Authenticate, Cache-Control...)
};

// A request for the REST API or the dashboard (service/api.hpp), which the server answers off its
// I/O threads.
struct ApiCall {};

struct StoreJob {
  std::string host;
  webhooks::Delivery delivery;
};

class Intake {
 public:
  Intake(const Config& config, Inbox& inbox, Metrics& metrics);

  // Takes the request's body (into the StoreJob, when there is one).
  [[nodiscard]] std::variant<HttpResponse, StoreJob, ApiCall> route(HttpRequest& request);

  // Whether a request target is a webhook's, POST /hooks/<host> (route() answers others' methods 405).
  [[nodiscard]] static bool is_hook(std::string_view target) { return target.substr(0, 7) == "/hooks/"; }

  // Counts an answer of the API or the dashboard.
  void api_answered(std::string_view target, int status);

  // The answer to a stored (or duplicate, or failed) delivery, counted (the inbox logs it).
  [[nodiscard]] HttpResponse finish(const StoreJob& job, StoreResult result,
                                    std::chrono::steady_clock::duration took);

  // An answer the server makes itself (413, 408, 503 on the connection cap), counted and logged.
  [[nodiscard]] HttpResponse edge_error(std::string_view target, int status, std::string message);

  [[nodiscard]] Inbox& inbox() { return inbox_; }

 private:
  std::variant<HttpResponse, StoreJob, ApiCall> hook(const std::string& host_name, HttpRequest& request);

  std::map<std::string, webhooks::ReceiverConfig> receivers_;
  Inbox& inbox_;
  Metrics& metrics_;
};

// {"error": "..."} / {"status": "...", ...}
[[nodiscard]] HttpResponse json_response(int status, const std::string& key, const std::string& message,
                                         const std::string& delivery_id = {});

}  // namespace tollgate::service
