#include "service/git/remote_ops.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "service/git/smart_http.hpp"
#include "service/git/upload_pack_v2.hpp"
#include "service/host/http_client.hpp"
#include "service/log.hpp"

namespace tollgate::git {
namespace log = tollgate::service::log;
namespace {

using Clock = std::chrono::steady_clock;

// What a failed network attempt means for the retry loop.
struct Failure {
  Error error;
  bool transient = false;
};

// State shared with libgit2's callbacks for one network operation (one attempt).
struct CallbackState {
  const Credentials* credentials = nullptr;
  GitWriter::Counters* counters = nullptr;
  int credential_calls = 0;
  bool credentials_refused = false;
  std::vector<std::pair<std::string, std::string>> rejected;  // ref, the server's status
  std::string remote_messages;                                // sideband text (hook output)
  unsigned push_objects = 0;
  std::size_t push_bytes = 0;
  git_indexer_progress fetched{};
};

int on_credentials(git_credential** out, const char* /*url*/, const char* /*user_from_url*/, unsigned int allowed,
                   void* payload) {
  auto* s = static_cast<CallbackState*>(payload);
  s->counters->credential_requests.fetch_add(1, std::memory_order_relaxed);
  // libgit2 1.5 asks again after every 401, forever: a second call means the first credentials
  // were refused, and trying them again would only hammer the host (and its lockout counters).
  if (s->credential_calls++ > 0) {
    s->credentials_refused = true;
    git_error_set_str(GIT_ERROR_NET, "the host refused the credentials");
    return GIT_EUSER;
  }
  if ((allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) == 0) return GIT_PASSTHROUGH;
  return git_credential_userpass_plaintext_new(out, s->credentials->username.c_str(), s->credentials->token.c_str());
}

int on_sideband(const char* str, int len, void* payload) {
  auto* s = static_cast<CallbackState*>(payload);
  if (len > 0 && s->remote_messages.size() < 4096) s->remote_messages.append(str, static_cast<std::size_t>(len));
  return 0;
}

int on_push_update_reference(const char* refname, const char* status, void* payload) {
  auto* s = static_cast<CallbackState*>(payload);
  if (status != nullptr) s->rejected.emplace_back(refname, status);
  return 0;
}

int on_transfer_progress(const git_indexer_progress* stats, void* payload) {
  static_cast<CallbackState*>(payload)->fetched = *stats;
  return 0;
}

int on_push_progress(unsigned int current, unsigned int /*total*/, std::size_t bytes, void* payload) {
  auto* s = static_cast<CallbackState*>(payload);
  s->push_objects = current;
  s->push_bytes = bytes;
  return 0;
}

git_remote_callbacks callbacks_for(CallbackState& state) {
  git_remote_callbacks cb = GIT_REMOTE_CALLBACKS_INIT;
  cb.credentials = on_credentials;
  cb.sideband_progress = on_sideband;
  cb.push_update_reference = on_push_update_reference;
  cb.push_transfer_progress = on_push_progress;
  cb.transfer_progress = on_transfer_progress;
  cb.payload = &state;
  return cb;
}

// The server's sideband text as one line: "remote: " prefixes and blank lines dropped.
std::string one_line(const std::string& text) {
  std::string out;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find_first_of("\r\n", start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (line.rfind("remote: ", 0) == 0) line.erase(0, 8);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    if (!line.empty()) out += (out.empty() ? "" : "; ") + line;
    start = end + 1;
  }
  return out;
}

// Classifies the failure of a libgit2 network call, right after it returned `rc`.
Failure network_failure(int rc, const CallbackState& s, const std::string& repo, const char* what) {
  int klass = lg::error_class();
  std::string msg = lg::error_message(rc);
  auto has = [&](std::string_view needle) { return msg.find(needle) != std::string::npos; };
  if (s.credentials_refused || has("status code: 401") || has("authentication replays")) {
    return {{ErrorKind::unauthorized, "repo '" + repo + "': " + what + ": the host refused the credentials"}, false};
  }
  if (has("status code: 403")) {
    return {{ErrorKind::unauthorized, "repo '" + repo + "': " + what + ": access denied (403)"}, false};
  }
  if (has("status code: 404")) {
    return {{ErrorKind::not_found, "repo '" + repo + "': " + what + ": repository not found (404)"}, false};
  }
  if (rc == GIT_ECERTIFICATE) {
    return {{ErrorKind::other, "repo '" + repo + "': " + what + ": certificate not trusted: " + msg}, false};
  }
  bool transient = has("status code: 5") || has("status code: 429") || klass == GIT_ERROR_NET ||
                   klass == GIT_ERROR_OS || klass == GIT_ERROR_SSL || has("timed out") || has("reset");
  if (has("status code: 4")) transient = has("status code: 429");
  return {{transient ? ErrorKind::unavailable : ErrorKind::other, "repo '" + repo + "': " + what + ": " + msg},
          transient};
}

template <class T, class Attempt>
tl::expected<T, Error> with_retries(const GitWriterOptions& options, GitWriter::Counters& counters,
                                    const std::string& repo, const char* what, Attempt attempt) {
  auto delay = options.backoff;
  for (int n = 1;; ++n) {
    tl::expected<T, Failure> r = attempt();
    if (r) return std::move(*r);
    if (!r.error().transient || n >= std::max(1, options.max_attempts)) return tl::unexpected(r.error().error);
    counters.retries.fetch_add(1, std::memory_order_relaxed);
    log::warn("git operation failed, retrying",
              {{"repo", repo}, {"op", what}, {"attempt", n}, {"delay_ms", delay.count()}, {"error", r.error().error.message}});
    std::this_thread::sleep_for(delay);
    delay *= 2;
  }
}

// A nameless remote for `r`'s URL. `url.*.insteadOf` is skipped: the service must push where the
// host's API says, whatever a ~/.gitconfig on the machine rewrites — and libgit2 1.5 leaks a pcre2
// match block for every config entry its insteadOf glob does not match (fixed upstream in #6382).
tl::expected<lg::Remote, Error> anonymous_remote(git_repository* repo, const Remote& r) {
  git_remote_create_options opts = GIT_REMOTE_CREATE_OPTIONS_INIT;
  opts.repository = repo;
  opts.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
  git_remote* raw = nullptr;
  if (int rc = git_remote_create_with_opts(&raw, r.url_string.c_str(), &opts); rc < 0) {
    return tl::unexpected(Error{ErrorKind::other, "repo '" + r.url.full_name() + "': " + lg::error_message(rc)});
  }
  return lg::Remote(raw);
}

long long ms_since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

// One fetch attempt: list the remote's refs, then download only the base branch (and the target
// branch if it exists) into the mirror's refs/heads/.
tl::expected<RemoteHeads, Failure> fetch_once(git_repository* repo, const Remote& r, const std::string& base_branch,
                                              const std::string& target_branch) {
  const std::string name = r.url.full_name();
  auto t0 = Clock::now();
  CallbackState state;
  state.credentials = &r.credentials;
  state.counters = &r.counters;
  auto created = anonymous_remote(repo, r);
  if (!created) return tl::unexpected(Failure{created.error(), false});
  lg::Remote remote = std::move(*created);
  git_remote_callbacks cb = callbacks_for(state);
  int rc = git_remote_connect(remote.get(), GIT_DIRECTION_FETCH, &cb, nullptr, nullptr);
  if (rc < 0) return tl::unexpected(network_failure(rc, state, name, "fetch"));

  const git_remote_head** heads = nullptr;
  std::size_t count = 0;
  rc = git_remote_ls(&heads, &count, remote.get());
  if (rc < 0) return tl::unexpected(network_failure(rc, state, name, "fetch"));
  const std::string base_ref = "refs/heads/" + base_branch;
  const std::string target_ref = "refs/heads/" + target_branch;
  RemoteHeads out;
  bool have_base = false;
  for (std::size_t i = 0; i < count; ++i) {
    if (base_ref == heads[i]->name) {
      out.base = heads[i]->oid;
      have_base = true;
    } else if (target_ref == heads[i]->name) {
      out.target = heads[i]->oid;
    }
  }
  if (!have_base) {
    return tl::unexpected(
        Failure{{ErrorKind::not_found, "repo '" + name + "': base branch '" + base_branch + "' not found"}, false});
  }

  std::vector<std::string> specs{"+" + base_ref + ":" + base_ref};
  if (out.target) specs.push_back("+" + target_ref + ":" + target_ref);
  std::vector<char*> spec_ptrs;
  for (auto& s : specs) spec_ptrs.push_back(s.data());
  git_strarray refspecs{spec_ptrs.data(), spec_ptrs.size()};
  git_fetch_options opts = GIT_FETCH_OPTIONS_INIT;
  opts.callbacks = cb;
  opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
  opts.update_fetchhead = 0;
  rc = git_remote_download(remote.get(), &refspecs, &opts);
  if (rc < 0) return tl::unexpected(network_failure(rc, state, name, "fetch"));
  rc = git_remote_update_tips(remote.get(), &cb, 0, GIT_REMOTE_DOWNLOAD_TAGS_NONE, "tollgate: fetch");
  if (rc < 0) return tl::unexpected(Failure{{ErrorKind::other, "repo '" + name + "': fetch: " + lg::error_message(rc)}, false});
  git_remote_disconnect(remote.get());
  r.counters.fetches.fetch_add(1, std::memory_order_relaxed);
  log::info("git fetch", {{"repo", name},
                          {"host", r.url.host},
                          {"branch", base_branch},
                          {"target_exists", out.target.has_value()},
                          {"objects", state.fetched.received_objects},
                          {"bytes", state.fetched.received_bytes},
                          {"ms", ms_since(t0)}});
  return out;
}

tl::expected<std::monostate, Failure> push_once(git_repository* repo, const Remote& r,
                                                const std::string& target_branch) {
  const std::string name = r.url.full_name();
  auto t0 = Clock::now();
  CallbackState state;
  state.credentials = &r.credentials;
  state.counters = &r.counters;
  auto created = anonymous_remote(repo, r);
  if (!created) return tl::unexpected(Failure{created.error(), false});
  lg::Remote remote = std::move(*created);
  // Forced: the target branch is tollgate's own, rebuilt on the newest base on every run.
  std::string target_ref = "refs/heads/" + target_branch;
  std::string spec = "+" + target_ref + ":" + target_ref;
  char* spec_ptr = spec.data();
  git_strarray refspecs{&spec_ptr, 1};
  git_push_options opts = GIT_PUSH_OPTIONS_INIT;
  opts.callbacks = callbacks_for(state);
  int rc = git_remote_push(remote.get(), &refspecs, &opts);
  if (rc < 0) return tl::unexpected(network_failure(rc, state, name, "push"));
  // libgit2 returns 0 when the server refuses a ref: the refusal shows only in the callback.
  if (!state.rejected.empty()) {
    std::string msg = "repo '" + name + "': push of '" + state.rejected.front().first +
                      "' rejected: " + state.rejected.front().second;
    if (auto remote_text = one_line(state.remote_messages); !remote_text.empty()) msg += " (" + remote_text + ")";
    return tl::unexpected(Failure{{ErrorKind::rejected, msg}, false});
  }
  r.counters.pushes.fetch_add(1, std::memory_order_relaxed);
  log::info("git push", {{"repo", name},
                         {"host", r.url.host},
                         {"branch", target_branch},
                         {"objects", state.push_objects},
                         {"bytes", state.push_bytes},
                         {"ms", ms_since(t0)}});
  return std::monostate{};
}

namespace http = tollgate::service::host;

// A failed smart-HTTP exchange (push or fetch) as a Failure, with libgit2's wording for statuses
// ("status code: 503") so both push paths read the same in logs and errors.
Failure http_failure(const http::HttpError& e, const std::string& repo, const char* op = "push") {
  const bool transient = e.kind == http::HttpErrorKind::connect || e.kind == http::HttpErrorKind::timeout ||
                         e.kind == http::HttpErrorKind::reset || e.kind == http::HttpErrorKind::proxy;
  return {{transient ? ErrorKind::unavailable : ErrorKind::other, "repo '" + repo + "': " + op + ": " + e.message}, transient};
}

Failure status_failure(int status, const std::string& repo, const char* op = "push") {
  const std::string where = "repo '" + repo + "': " + op + ": ";
  if (status == 401) return {{ErrorKind::unauthorized, where + "the host refused the credentials"}, false};
  if (status == 403) return {{ErrorKind::unauthorized, where + "access denied (403)"}, false};
  if (status == 404) return {{ErrorKind::not_found, where + "repository not found (404)"}, false};
  const bool transient = status == 429 || status >= 500;
  return {{transient ? ErrorKind::unavailable : ErrorKind::other, where + "unexpected http status code: " + std::to_string(status)},
          transient};
}

// The repository URL the smart-HTTP paths (info/refs, git-upload-pack, git-receive-pack) hang from.
std::string smart_http_base(const Remote& r) {
  std::string base = r.url_string;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base;
}

std::string basic_auth(const Remote& r) {
  return "Basic " + smart::base64(r.credentials.username + ":" + r.credentials.token);
}

// A fact per repository URL that the host told this process: whether it speaks protocol v2 for
// fetches, and the capabilities its receive-pack advertised. The holders are never destroyed: a
// worker thread may still fetch or push while the process exits.
template <class T>
class PerUrl {
 public:
  std::optional<T> get(const std::string& url) {
    std::lock_guard lock(mutex_);
    auto it = known_.find(url);
    return it == known_.end() ? std::nullopt : std::optional<T>(it->second);
  }
  void set(const std::string& url, T value) {
    std::lock_guard lock(mutex_);
    known_[url] = std::move(value);
  }
  void forget(const std::string& url) {
    std::lock_guard lock(mutex_);
    known_.erase(url);
  }

 private:
  std::mutex mutex_;
  std::map<std::string, T> known_;
};

// With the target branch's value known from the fetch just made, a push can skip the GET.
PerUrl<std::set<std::string, std::less<>>>& receive_pack_capabilities() {
  static auto* known = new PerUrl<std::set<std::string, std::less<>>>;
  return *known;
}

// An odd answer to a v2 request forgets the entry, so a host that changed its mind is asked again.
PerUrl<bool>& speaks_protocol_v2() {
  static auto* known = new PerUrl<bool>;
  return *known;
}

enum class SmartPush { pushed, use_libgit2, advertise_first };

// One attempt at the receive-pack exchange: GET info/refs (the host's current value of the ref),
// then POST the command and the pack of the new objects. Answers that are not git's smart HTTP
// (a redirect, another content type, a pack the host could not connect to its objects) hand the
// push to libgit2.
//
// `expected_old` (40 hex digits, or the zero id for a branch the host lacks) is the ref's value on
// the host as the fetch under the same mirror lock just saw it: with the host's capabilities
// remembered from an earlier push, the GET is skipped — it makes the host's receive-pack read and
// send every ref of the repository, ~16 ms of its CPU with 600 loose refs. The host still checks
// the old value (gitprotocol-pack(5): the update is refused when the ref moved), and anything but
// a clean success in that mode answers `advertise_first`: the caller redoes the push with the GET.
tl::expected<SmartPush, Failure> smart_push_once(git_repository* repo, const Remote& r, const std::string& target_branch,
                                                 const git_oid& commit, const git_tree* parent_tree,
                                                 const std::optional<std::string>& expected_old) {
  const std::string name = r.url.full_name();
  auto t0 = Clock::now();
  const std::string base = smart_http_base(r);
  const std::string auth = basic_auth(r);
  const std::string target_ref = "refs/heads/" + target_branch;
  const std::string new_id = lg::to_hex(commit);

  std::optional<std::set<std::string, std::less<>>> caps_known;
  if (expected_old) caps_known = receive_pack_capabilities().get(base);
  const bool blind = caps_known.has_value();
  std::string old_id(smart::kZeroId);
  smart::Advertisement ad;
  if (blind) {
    old_id = *expected_old;
    ad.capabilities = std::move(*caps_known);
  } else {
    http::HttpRequest get{.method = "GET",
                          .url = base + "/info/refs?service=git-receive-pack",
                          .headers = {{"Authorization", auth}, {"Accept", "*/*"}, {"Pragma", "no-cache"}},
                          .conditional = false};
    auto listed = r.http->request(std::move(get));
    if (!listed) return tl::unexpected(http_failure(listed.error(), name));
    if (listed->status != 200) {
      if (listed->status >= 300 && listed->status < 400) return SmartPush::use_libgit2;
      return tl::unexpected(status_failure(listed->status, name));
    }
    if (listed->header("content-type") != smart::kAdvertisementType) {
      log::warn("git push: not a smart HTTP answer, pushing with libgit2", {{"repo", name}});
      return SmartPush::use_libgit2;
    }
    auto parsed = smart::parse_advertisement(listed->body);
    if (!parsed) {
      return tl::unexpected(Failure{{ErrorKind::other, "repo '" + name + "': push: " + parsed.error()}, false});
    }
    ad = std::move(*parsed);
    if (!ad.has("report-status") || !ad.has("ofs-delta")) return SmartPush::use_libgit2;
    receive_pack_capabilities().set(base, ad.capabilities);
    if (auto it = ad.refs.find(target_ref); it != ad.refs.end()) old_id = it->second;
  }
  if (old_id == new_id) {
    // An earlier attempt got through but its answer was lost: the host already has it.
    r.counters.pushes.fetch_add(1, std::memory_order_relaxed);
    log::info("git push", {{"repo", name}, {"host", r.url.host}, {"branch", target_branch}, {"objects", 0},
                           {"bytes", 0}, {"via", "smart-http"}, {"already_there", true}, {"ms", ms_since(t0)}});
    return SmartPush::pushed;
  }

  auto pack = smart::build_pack(repo, commit, parent_tree);
  if (!pack) return tl::unexpected(Failure{{ErrorKind::other, "repo '" + name + "': push: " + pack.error()}, false});
  const bool sideband = ad.has("side-band-64k");
  std::vector<std::string> caps{"report-status"};
  if (sideband) caps.emplace_back("side-band-64k");
  if (ad.has("quiet")) caps.emplace_back("quiet");
  caps.emplace_back("agent=tollgate");
  http::HttpRequest post{.method = "POST",
                         .url = base + "/git-receive-pack",
                         .headers = {{"Authorization", auth},
                                     {"Content-Type", std::string(smart::kRequestType)},
                                     {"Accept", std::string(smart::kResultType)}},
                         .body = smart::receive_pack_request(old_id, new_id, target_ref, caps, pack->bytes),
                         .conditional = false,
                         .timeout = std::chrono::minutes(5)};
  const std::size_t sent = post.body.size();
  auto answered = r.http->request(std::move(post));
  // Without the GET, any surprise is first met by doing the push the long way.
  const auto redo = [&](const std::string& why) {
    log::info("git push: redone with the ref advertisement", {{"repo", name}, {"branch", target_branch}, {"reason", why}});
    return SmartPush::advertise_first;
  };
  if (!answered) {
    if (blind) return redo(answered.error().message);
    return tl::unexpected(http_failure(answered.error(), name));
  }
  if (answered->status != 200) {
    if (blind) return redo("http status " + std::to_string(answered->status));
    return tl::unexpected(status_failure(answered->status, name));
  }
  auto report = smart::parse_report(answered->body, sideband);
  if (!report) {
    if (blind) return redo(report.error());
    return tl::unexpected(Failure{{ErrorKind::other, "repo '" + name + "': push: " + report.error()}, false});
  }
  if (!report->fatal.empty()) {
    if (blind) return redo("the host gave up: " + report->fatal);
    return tl::unexpected(Failure{{ErrorKind::other, "repo '" + name + "': push: the host gave up: " + report->fatal}, false});
  }
  std::optional<std::string> refused;
  bool reported = false;
  for (const auto& [ref, reason] : report->refs) {
    if (ref != target_ref) continue;
    reported = true;
    refused = reason;
  }
  if (blind && (report->unpack != "ok" || refused || !reported)) {
    return redo("unpack " + report->unpack + ", " + refused.value_or(reported ? "ok" : "no status reported"));
  }
  if (report->unpack != "ok" || (refused && refused->find("missing necessary objects") != std::string::npos)) {
    // The host lacks objects the pack leaves out (its base branch was rewritten under us, say):
    // libgit2 works out a complete pack from what the host advertises.
    log::warn("git push: the host could not take the pack, pushing with libgit2",
              {{"repo", name}, {"unpack", report->unpack}, {"ref_status", refused.value_or("ok")}});
    return SmartPush::use_libgit2;
  }
  if (refused || !reported) {
    std::string msg = "repo '" + name + "': push of '" + target_ref + "' rejected: " + refused.value_or("no status reported");
    if (auto remote_text = one_line(report->messages); !remote_text.empty()) msg += " (" + remote_text + ")";
    return tl::unexpected(Failure{{ErrorKind::rejected, msg}, false});
  }
  r.counters.pushes.fetch_add(1, std::memory_order_relaxed);
  if (blind) r.counters.pushes_without_advertisement.fetch_add(1, std::memory_order_relaxed);
  log::info("git push", {{"repo", name},
                         {"host", r.url.host},
                         {"branch", target_branch},
                         {"objects", pack->objects},
                         {"bytes", sent},
                         {"via", "smart-http"},
                         {"advertisement", !blind},
                         {"ms", ms_since(t0)}});
  return SmartPush::pushed;
}

bool is_redirect(int status) { return status >= 300 && status < 400; }

// A status that says the host is not taking this request as git's protocol v2 (rather than
// refusing us or being down): libgit2's v0 fetch is tried instead.
bool protocol_refused(int status) { return is_redirect(status) || status == 400 || status == 406 || status == 415; }

// One attempt at a protocol v2 fetch (service/git/upload_pack_v2.hpp) into a mirror that already
// holds the base branch: ls-refs for exactly the two branches, then — only when the mirror lacks
// one of their tips — one fetch with the mirror's base tip as "have" and "done". nullopt: hand this
// fetch to libgit2 (a new mirror, a host without v2, an answer that is not v2's).
tl::expected<std::optional<RemoteHeads>, Failure> smart_fetch_once(git_repository* repo, const Remote& r,
                                                                   const std::string& base_branch,
                                                                   const std::string& target_branch) {
  const std::string name = r.url.full_name();
  const auto t0 = Clock::now();
  const std::string base_ref = "refs/heads/" + base_branch;
  const std::string target_ref = "refs/heads/" + target_branch;
  // A new mirror is filled by libgit2, which streams a whole repository's pack to disk; this path
  // holds the pack in memory and is for the small increments after that.
  git_oid local_base{};
  if (git_reference_name_to_id(&local_base, repo, base_ref.c_str()) < 0) return std::nullopt;

  const std::string url = smart_http_base(r);
  auto& cache = speaks_protocol_v2();
  const auto known = cache.get(url);
  if (known && !*known) return std::nullopt;
  const std::string auth = basic_auth(r);
  if (!known) {
    http::HttpRequest get{.method = "GET",
                          .url = url + "/info/refs?service=git-upload-pack",
                          .headers = {{"Authorization", auth}, {"Accept", "*/*"}, {"Pragma", "no-cache"},
                                      {"Git-Protocol", "version=2"}},
                          .conditional = false};
    auto listed = r.http->request(std::move(get));
    if (!listed) return tl::unexpected(http_failure(listed.error(), name, "fetch"));
    if (listed->status != 200) {
      if (is_redirect(listed->status)) return std::nullopt;
      return tl::unexpected(status_failure(listed->status, name, "fetch"));
    }
    if (listed->header("content-type") != smart::kUploadAdvertisementType) {
      log::warn("git fetch: not a smart HTTP answer, fetching with libgit2", {{"repo", name}});
      return std::nullopt;
    }
    auto caps = smart::parse_v2_capabilities(listed->body);
    if (!caps) return tl::unexpected(Failure{{ErrorKind::other, "repo '" + name + "': fetch: " + caps.error()}, false});
    const bool v2 = *caps && (*caps)->has("ls-refs") && (*caps)->has("fetch");
    cache.set(url, v2);
    if (!v2) {
      log::info("git fetch: the host does not speak protocol v2, fetching with libgit2", {{"repo", name}});
      return std::nullopt;
    }
  }
  const auto post = [&](std::string body) {
    return r.http->request(http::HttpRequest{.method = "POST",
                                             .url = url + "/git-upload-pack",
                                             .headers = {{"Authorization", auth},
                                                         {"Content-Type", std::string(smart::kUploadRequestType)},
                                                         {"Accept", std::string(smart::kUploadResultType)},
                                                         {"Git-Protocol", "version=2"}},
                                             .body = std::move(body),
                                             .retry_safe = true,  // reads only
                                             .conditional = false,
                                             .timeout = std::chrono::minutes(5)});
  };
  const auto fall_back = [&](const std::string& why) -> tl::expected<std::optional<RemoteHeads>, Failure> {
    cache.forget(url);
    log::warn("git fetch: the host's protocol v2 answer is unusable, fetching with libgit2", {{"repo", name}, {"reason", why}});
    return std::nullopt;
  };
  // Returns the body of a usable answer, or what to do instead.
  using Outcome = tl::expected<std::optional<RemoteHeads>, Failure>;
  using Answer = tl::expected<std::string, Outcome>;
  const auto answer_of = [&](const char* what, http::HttpResult result) -> Answer {
    if (!result) {
      // An answer over the HTTP client's body limit (a large increment held in memory) or not
      // HTTP: libgit2 streams the pack to disk instead.
      if (result.error().kind == http::HttpErrorKind::protocol) return tl::make_unexpected(fall_back(std::string(what) + ": " + result.error().message));
      return tl::make_unexpected(Outcome(tl::unexpected(http_failure(result.error(), name, "fetch"))));
    }
    if (result->status != 200) {
      if (protocol_refused(result->status)) return tl::make_unexpected(fall_back(std::string(what) + ": http status " + std::to_string(result->status)));
      return tl::make_unexpected(Outcome(tl::unexpected(status_failure(result->status, name, "fetch"))));
    }
    if (result->header("content-type") != smart::kUploadResultType) {
      return tl::make_unexpected(fall_back(std::string(what) + ": content type '" + result->header("content-type") + "'"));
    }
    return std::move(result->body);
  };

  auto listed_refs = answer_of("ls-refs", post(smart::ls_refs_request({base_ref, target_ref})));
  if (!listed_refs) return listed_refs.error();
  auto refs = smart::parse_ls_refs(*listed_refs);
  if (!refs) return fall_back(refs.error());
  RemoteHeads out;
  const auto base_it = refs->find(base_ref);  // exact: a ref-prefix also lists main-2, main/x
  if (base_it == refs->end()) {
    return tl::unexpected(
        Failure{{ErrorKind::not_found, "repo '" + name + "': base branch '" + base_branch + "' not found"}, false});
  }
  std::vector<git_oid> tips;
  if (git_oid_fromstr(&out.base, base_it->second.c_str()) < 0) return fall_back("ls-refs: bad object id");
  tips.push_back(out.base);
  if (const auto it = refs->find(target_ref); it != refs->end()) {
    git_oid id{};
    if (git_oid_fromstr(&id, it->second.c_str()) < 0) return fall_back("ls-refs: bad object id");
    out.target = id;
    tips.push_back(id);
  }

  git_odb* raw_odb = nullptr;
  if (int rc = git_repository_odb(&raw_odb, repo); rc < 0) {
    return tl::unexpected(Failure{{ErrorKind::other, "repo '" + name + "': fetch: " + lg::error_message(rc)}, false});
  }
  lg::Owned<git_odb, git_odb_free> odb(raw_odb);
  std::vector<std::string> wants;
  for (const auto& id : tips) {
    std::string hex = lg::to_hex(id);
    if (git_odb_exists(odb.get(), &id) == 0 && std::find(wants.begin(), wants.end(), hex) == wants.end()) wants.push_back(std::move(hex));
  }
  std::size_t pack_bytes = 0;
  unsigned objects = 0;
  if (!wants.empty()) {
    std::vector<std::string> haves{lg::to_hex(local_base)};
    auto fetched = answer_of("fetch", post(smart::fetch_request(wants, haves)));
    if (!fetched) return fetched.error();
    auto pack = smart::parse_fetch_response(*fetched);
    if (!pack) return fall_back(pack.error());
    git_odb_writepack* wp = nullptr;
    git_indexer_progress stats{};
    int rc = git_odb_write_pack(&wp, odb.get(), nullptr, nullptr);
    if (rc == 0) {
      rc = wp->append(wp, pack->pack.data(), pack->pack.size(), &stats);
      if (rc == 0) rc = wp->commit(wp, &stats);
      wp->free(wp);
    }
    if (rc < 0) return fall_back("the host's pack: " + lg::error_message(rc));
    for (const auto& id : tips) {
      if (git_odb_exists(odb.get(), &id) == 0) return fall_back("the host's pack lacks " + lg::to_hex(id));
    }
    pack_bytes = pack->pack.size();
    objects = stats.received_objects;
  }
  // As libgit2's fetch leaves them: the mirror's branches at the host's tips.
  const auto set_ref = [&](const std::string& ref, const git_oid& id) -> tl::expected<void, Failure> {
    git_reference* raw = nullptr;
    if (int rc = git_reference_create(&raw, repo, ref.c_str(), &id, 1, "tollgate: fetch"); rc < 0) {
      return tl::unexpected(Failure{{ErrorKind::other, "repo '" + name + "': fetch: update " + ref + ": " + lg::error_message(rc)}, false});
    }
    git_reference_free(raw);
    return {};
  };
  if (auto done = set_ref(base_ref, out.base); !done) return tl::unexpected(done.error());
  if (out.target) {
    if (auto done = set_ref(target_ref, *out.target); !done) return tl::unexpected(done.error());
  }
  r.counters.fetches.fetch_add(1, std::memory_order_relaxed);
  r.counters.v2_fetches.fetch_add(1, std::memory_order_relaxed);
  if (wants.empty()) r.counters.up_to_date_fetches.fetch_add(1, std::memory_order_relaxed);
  log::info("git fetch", {{"repo", name},
                          {"host", r.url.host},
                          {"branch", base_branch},
                          {"target_exists", out.target.has_value()},
                          {"objects", objects},
                          {"bytes", pack_bytes},
                          {"via", "protocol-v2"},
                          {"up_to_date", wants.empty()},
                          {"ms", ms_since(t0)}});
  return std::optional<RemoteHeads>(out);
}

// One attempt at fetching every branch (copy sources).
tl::expected<std::monostate, Failure> fetch_all_once(git_repository* repo, const Remote& r) {
  const std::string name = r.url.full_name();
  auto t0 = Clock::now();
  CallbackState state;
  state.credentials = &r.credentials;
  state.counters = &r.counters;
  auto created = anonymous_remote(repo, r);
  if (!created) return tl::unexpected(Failure{created.error(), false});
  lg::Remote remote = std::move(*created);
  std::string spec = "+refs/heads/*:refs/heads/*";
  char* spec_ptr = spec.data();
  git_strarray refspecs{&spec_ptr, 1};
  git_fetch_options opts = GIT_FETCH_OPTIONS_INIT;
  opts.callbacks = callbacks_for(state);
  opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
  opts.update_fetchhead = 0;
  int rc = git_remote_fetch(remote.get(), &refspecs, &opts, "tollgate: fetch");
  if (rc < 0) return tl::unexpected(network_failure(rc, state, name, "fetch"));
  r.counters.fetches.fetch_add(1, std::memory_order_relaxed);
  log::info("git fetch", {{"repo", name},
                          {"host", r.url.host},
                          {"branch", "*"},
                          {"objects", state.fetched.received_objects},
                          {"bytes", state.fetched.received_bytes},
                          {"ms", ms_since(t0)}});
  return std::monostate{};
}

}  // namespace

tl::expected<RemoteHeads, Error> fetch_branches(git_repository* repo, const Remote& remote,
                                                const std::string& base_branch, const std::string& target_branch) {
  bool use_libgit2 = remote.http == nullptr;
  return with_retries<RemoteHeads>(remote.options, remote.counters, remote.url.full_name(), "fetch",
                                   [&]() -> tl::expected<RemoteHeads, Failure> {
                                     if (!use_libgit2) {
                                       auto smart = smart_fetch_once(repo, remote, base_branch, target_branch);
                                       if (!smart) return tl::unexpected(smart.error());
                                       if (*smart) return **smart;
                                       use_libgit2 = true;
                                     }
                                     return fetch_once(repo, remote, base_branch, target_branch);
                                   });
}

tl::expected<std::monostate, Error> fetch_all_branches(git_repository* repo, const Remote& remote) {
  return with_retries<std::monostate>(remote.options, remote.counters, remote.url.full_name(), "fetch",
                                      [&] { return fetch_all_once(repo, remote); });
}

tl::expected<std::monostate, Error> push_branch(git_repository* repo, const Remote& remote,
                                                const std::string& target_branch, const git_oid& commit,
                                                const git_tree* parent_tree, const RemoteHeads* seen,
                                                std::unique_lock<std::mutex>* mirror_guard) {
  bool use_libgit2 = remote.http == nullptr;
  const auto hold = [mirror_guard](bool held) {
    if (mirror_guard != nullptr && mirror_guard->owns_lock() != held) held ? mirror_guard->lock() : mirror_guard->unlock();
  };
  // The first attempt may skip the GET (the fetch just saw the branch); a retry asks the host.
  std::optional<std::string> expected_old;
  if (seen != nullptr) expected_old = seen->target ? lg::to_hex(*seen->target) : std::string(smart::kZeroId);
  auto pushed = with_retries<std::monostate>(remote.options, remote.counters, remote.url.full_name(), "push",
                                             [&]() -> tl::expected<std::monostate, Failure> {
                                               if (!use_libgit2) {
                                                 hold(false);
                                                 auto smart = smart_push_once(repo, remote, target_branch, commit, parent_tree, expected_old);
                                                 expected_old.reset();
                                                 if (smart && *smart == SmartPush::advertise_first) {
                                                   smart = smart_push_once(repo, remote, target_branch, commit, parent_tree, std::nullopt);
                                                 }
                                                 if (!smart) return tl::unexpected(smart.error());
                                                 if (*smart == SmartPush::pushed) return std::monostate{};
                                                 use_libgit2 = true;
                                               }
                                               hold(true);
                                               return push_once(repo, remote, target_branch);
                                             });
  hold(true);
  return pushed;
}

tl::expected<lg::Repository, Error> open_mirror(const std::filesystem::path& path, const std::string& name,
                                               bool& created) {
  git_repository* raw = nullptr;
  std::error_code ec;
  created = false;
  if (std::filesystem::exists(path / "HEAD", ec)) {
    int rc = git_repository_open_bare(&raw, path.c_str());
    if (rc < 0) return tl::unexpected(Error{ErrorKind::other, "repo '" + name + "': open mirror: " + lg::error_message(rc)});
    return lg::Repository(raw);
  }
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) return tl::unexpected(Error{ErrorKind::other, "repo '" + name + "': create mirror folder: " + ec.message()});
  int rc = git_repository_init(&raw, path.c_str(), 1);
  if (rc < 0) return tl::unexpected(Error{ErrorKind::other, "repo '" + name + "': create mirror: " + lg::error_message(rc)});
  created = true;
  log::info("git mirror created", {{"repo", name}, {"path", path.string()}});
  return lg::Repository(raw);
}

std::size_t remove_stale_locks(const std::filesystem::path& mirror) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(mirror, ec)) return 0;
  std::vector<fs::path> stale;
  auto collect = [&](const fs::path& p) {
    if (p.extension() == ".lock" && fs::is_regular_file(p, ec)) stale.push_back(p);
  };
  for (fs::directory_iterator it(mirror, ec), end; !ec && it != end; it.increment(ec)) collect(it->path());
  if (fs::is_directory(mirror / "refs", ec)) {
    for (fs::recursive_directory_iterator it(mirror / "refs", ec), end; !ec && it != end; it.increment(ec)) collect(it->path());
  }
  std::size_t removed = 0;
  for (const auto& p : stale) removed += fs::remove(p, ec) ? 1 : 0;
  return removed;
}

tl::expected<FetchedMirror, Error> open_and_fetch(const std::filesystem::path& path, const std::string& name,
                                                  const Remote& remote, const std::string& base_branch,
                                                  const std::string& target_branch) {
  // The caller holds the mirror's lock and the data directory has one process: a lock file found
  // now was left by a process killed mid-update, and would refuse every later fetch (libgit2:
  // "failed to lock file ... for writing").
  if (const auto removed = remove_stale_locks(path); removed > 0) {
    log::warn("git mirror: stale lock files removed (left by a process killed mid-update)",
              {{"repo", name}, {"files", removed}});
  }
  bool created = false;
  auto repo = open_mirror(path, name, created);
  if (!repo) return tl::unexpected(repo.error());
  auto heads = fetch_branches(repo->get(), remote, base_branch, target_branch);
  if (!heads) {
    if (created) {
      repo->reset();
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
    return tl::unexpected(heads.error());
  }
  return FetchedMirror{std::move(*repo), *heads};
}

ForgetBranch::~ForgetBranch() { git_reference_remove(repo, ref.c_str()); }

}  // namespace tollgate::git
