#pragma once
// What the GitHub, GitLab and Gitea clients share: one REST call with the error mapping, paging,
// percent-encoding and lenient JSON field readers. Internal to service/host.
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "service/host/host.hpp"
#include "service/host/http_client.hpp"
#include "service/host/token_source.hpp"

namespace tollgate::service::host::rest {

using nlohmann::json;

// Percent-encodes all but RFC 3986 unreserved characters; `keep_slash` for file paths.
[[nodiscard]] std::string pct(std::string_view s, bool keep_slash = false);

// Field readers that never throw: a missing field, or one of another type, reads as empty.
[[nodiscard]] std::string str(const json& j, const char* key);
[[nodiscard]] std::optional<std::int64_t> int_field(const json& j, const char* key);
[[nodiscard]] bool flag(const json& j, const char* key);  // false when absent or not a boolean
// A string in an object field, e.g. the author's "login" (GitHub, Gitea) or "username" (GitLab).
[[nodiscard]] std::string str_in(const json& j, const char* object, const char* key);

[[nodiscard]] bool iequals(std::string_view a, std::string_view b);  // ASCII, case-insensitive

// A body the API does not document: "HOST: WHAT: WHY".
[[nodiscard]] HostError bad_answer(std::string_view host, const std::string& what, const std::string& why);

// The statuses the hosts agree on: 401, 403, 404, 409, 422, 429 and 5xx. (A 429 never gets this
// far on GitHub: the HttpClient waits it out or answers rate_limited.)
[[nodiscard]] HostError::Kind kind_of(int status);

// A host's error message as one line, or "http STATUS" when it said nothing.
[[nodiscard]] std::string one_line(std::string message, int status);

// The URL of rel="next" in a Link header, or empty.
[[nodiscard]] std::string next_link(const std::string& link);

[[nodiscard]] std::string_view method_name(MergeMethod m);  // merge | squash | rebase

// Reviewers as the pipeline file names them: logins, and teams as "@org/team".
struct ReviewerSplit {
  std::vector<std::string> users;
  std::vector<std::string> teams;  // the team's slug / name, without "@org/"
};
[[nodiscard]] ReviewerSplit split_reviewers(const std::vector<std::string>& reviewers);

// Whether `pr` is a better match for a head branch than `best`: an open one wins, then the newest.
[[nodiscard]] bool better_match(const PullRequest& pr, const std::optional<PullRequest>& best);

// The pull requests among `items` whose head branch is `head_branch`; an item `parse` refuses is
// the error, matching or not.
[[nodiscard]] HostResult<std::vector<PullRequest>> pulls_with_head(const std::vector<json>& items, const std::string& head_branch,
                                                                   HostResult<PullRequest> (*parse)(const json&));

// The JSON body that posts commit status `s` in `state`; the status name goes in `name_key`.
[[nodiscard]] std::string status_body(const CommitStatus& s, const std::string& state, const char* name_key);

// The labels and reviewers of `spec` as an update for a pull request that already exists;
// nullopt when there is nothing to add.
[[nodiscard]] std::optional<PullRequestUpdate> follow_up(const NewPullRequest& spec);

// How upsert_sticky reaches one host's comments on a pull request.
struct StickyComments {
  std::function<HostResult<std::vector<json>>()> list;  // oldest first
  std::function<bool(const json&)> ignore{};             // optional: listed items that are not comments
  std::function<HostResult<Comment>(const json&)> read;  // a listed comment
  std::function<HostResult<void>(std::int64_t id, const std::string& body)> edit;
  std::function<HostResult<Comment>(const std::string& body)> post;  // not retried by the client
};

// The comment holding sticky_marker(key), edited to `text` in place, or posted once: each of up to
// `attempts` rounds finds before it posts, so a post whose answer was lost is found; only a
// transient failure of the post starts another round.
// `hint` (host.hpp) can save the listing.
[[nodiscard]] HostResult<Comment> upsert_sticky(const std::string& key, const std::string& text, int attempts, const StickyHint& hint,
                                                const StickyComments& comments);

// How one host's REST API differs on the wire.
struct Dialect {
  Headers headers{};  // first on every request: Accept, API version
  std::string auth_header = "Authorization";
  std::string auth_scheme = "Bearer ";  // before the token in auth_header
  std::string (*describe)(const HttpResponse&) = nullptr;  // required: the host's error body, one line
  HostError::Kind (*kind_of)(int status) = rest::kind_of;
  // The page after `path` that answered `res`, or empty; null: the Link header's rel="next".
  std::string (*next_page)(const std::string& path, const HttpResponse& res) = nullptr;
};

// One host's REST API: requests with its headers and credentials, answers outside `ok` as HostErrors.
class Client {
 public:
  Client(HttpClient& http, std::shared_ptr<TokenSource> auth, std::string api_url, Dialect dialect);

  // `path` is below the API URL, or an absolute URL (a next-page link). `accept` replaces the
  // dialect's Accept header for this request.
  [[nodiscard]] HostResult<HttpResponse> call(const std::string& method, const std::string& path, const std::string* body,
                                              bool retry_safe, std::initializer_list<int> ok, const std::string& accept = {});
  // call() with a JSON body, for requests whose answer the caller does not need.
  [[nodiscard]] HostResult<void> send(const std::string& method, const std::string& path, const std::string& body, bool retry_safe,
                                      std::initializer_list<int> ok);
  // Each page's body, following next pages from `path`.
  [[nodiscard]] HostResult<std::vector<std::string>> get_pages(const std::string& path, int max_pages = 100);
  // The items of every page, each a JSON array; `not_a_list` when a page is not one.
  [[nodiscard]] HostResult<std::vector<json>> get_list(const std::string& path, const HostError& not_a_list, int max_pages = 100);

 private:
  HttpClient& http_;
  std::shared_ptr<TokenSource> auth_{};
  std::string api_url_{};
  Dialect dialect_;
};

}  // namespace tollgate::service::host::rest
