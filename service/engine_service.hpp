#pragma once
// The promotion engine at work in the service: it feeds the pure state machine (pipeline/engine)
// with normalised webhooks and job results, commits each result in one transaction through the
// inbox's single writer (the input marked consumed, the run's new state, its audit rows and jobs),
// and runs the jobs.
//
//   events   one thread reads normalised deliveries in id order. A merged PR or a push in a source
//            repository reads `.tollgate.yaml` at that commit and starts one run per matching
//            pipeline; everything else is offered to the runs whose PRs or commits it concerns.
//            Comments and reviews first get their author's permission (and teams) from the host.
//   jobs     worker threads lease due jobs from the job table. Timers are applied as inputs; side
//            effects go to service/job_executor (host API, git writer) and verify probes to
//            service/probes; the result is applied in the transaction that completes the job, so a
//            crash between the side effect and that commit makes the job run again (every side
//            effect is idempotent on the host).
//
// Waiting is a row in the job table, never a sleeping thread: workers sleep only until the next
// due job or a nudge.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "pipeline/engine.hpp"
#include "service/git/git_writer.hpp"
#include "service/host/host.hpp"
#include "webhooks/event.hpp"

namespace tollgate::service {

class Inbox;

// What the engine needs of one configured host (the name in /hooks/<name>).
struct EngineHost {
  webhooks::HostKind kind = webhooks::HostKind::github;
  host::Host* api = nullptr;  // not owned
  std::function<git::Credentials()> credentials{};  // for the git writer; asked for each job (tokens renew)
  std::string bot_login = "tollgate";  // tollgate's own account there: its merges and comments are its own
  // https clone URL and default branch of owner/name (from the host's API).
  std::function<std::string(const std::string& repo)> clone_url{};
  std::function<std::string(const std::string& repo)> default_branch{};
  std::function<std::string(const std::string& repo, std::int64_t pr)> pr_url{};
  // The same from what is known already, without asking the host (empty when not known yet).
  std::function<std::string(const std::string& repo, std::int64_t pr)> cached_pr_url{};
};

struct EngineServiceOptions {
  std::string database{};  // read connections; writes go through the inbox
  std::string public_url{};
  unsigned workers = 4;
  // A worker's hold on a job, renewed while it is at it: another replica takes the job over once
  // the lease runs out (its replica died).
  std::chrono::milliseconds lease{std::chrono::seconds(30)};
  // This replica's name, unique among the replicas of one database (empty: the host name). A
  // restarted process takes back its own replica's jobs at once instead of after their lease.
  std::string replica{};
  std::chrono::milliseconds idle_poll{std::chrono::seconds(1)};
  int max_job_attempts = 8;  // side effects the engine does not wait on (statuses, comments...)
  pipeline::EngineOptions engine{};
  const pipeline::TimeZones* zones = nullptr;             // null: UTC
  std::function<pipeline::TimePoint()> now{};             // null: the system clock
  std::string pipeline_file = ".tollgate.yaml";
  // Whether a host acts on a repository (its `repos` allowlist); null: every repository.
  std::function<bool(const std::string& host, const std::string& repo)> repo_allowed{};
};

struct EngineStats {
  std::uint64_t events = 0;       // deliveries consumed
  std::uint64_t runs_started = 0;
  std::uint64_t jobs_done = 0;
  std::uint64_t jobs_retried = 0;
  std::uint64_t jobs_failed = 0;
};

// Who asks for an API action: the token's name, and the host login it acts as (may be empty).
struct ApiActor {
  std::string token;
  std::string login;
};

// What became of an API action or trigger.
struct ApiOutcome {
  enum class Kind { done, not_found, forbidden, refused, unavailable, failed } kind = Kind::done;
  std::string message{};             // not done: why (refused: the engine's reason)
  std::vector<std::string> runs{};   // trigger: the runs of that commit
  bool created = false;              // trigger: at least one run was started now
};

class EngineService {
 public:
  EngineService(EngineServiceOptions options, Inbox& inbox, std::map<std::string, EngineHost> hosts,
                git::GitWriter* writer);
  ~EngineService();
  EngineService(const EngineService&) = delete;
  EngineService& operator=(const EngineService&) = delete;

  void start();
  void nudge();  // new normalised deliveries, or new jobs
  void stop();   // finishes the job or event in hand

  // A stage or run action of the REST API, applied once per `idempotency_key` (a repeat is done
  // and changes nothing). With a login, the actor's permission and teams are read from the host
  // and the comment commands' rules apply; without, the token acts as "api:<name>" with write
  // access.
  [[nodiscard]] ApiOutcome act(const std::string& run_id, pipeline::ApiAction action, const ApiActor& actor,
                               const std::string& idempotency_key);
  // Starts the runs of `repo`'s pipeline file at `sha` (all its pipelines, or the one named) as if
  // it had just been merged into `branch`. Runs that exist for that commit are not started again.
  [[nodiscard]] ApiOutcome trigger(const std::string& host, const std::string& repo, const std::string& sha,
                                   const std::string& branch, const std::string& pipeline, const ApiActor& actor);

  [[nodiscard]] EngineStats stats() const;
  // Prometheus text: runs by status and jobs by state (counted at most once a second, off the
  // caller's thread), and the engine's counters.
  [[nodiscard]] std::string metrics_text() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tollgate::service
