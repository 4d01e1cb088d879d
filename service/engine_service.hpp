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
};

struct EngineServiceOptions {
  std::string database{};  // read connections; writes go through the inbox
  std::string public_url{};
  unsigned workers = 4;
  std::chrono::milliseconds lease{std::chrono::minutes(5)};  // a worker's hold on a job
  std::chrono::milliseconds idle_poll{std::chrono::seconds(1)};
  int max_job_attempts = 8;  // side effects the engine does not wait on (statuses, comments...)
  pipeline::EngineOptions engine{};
  const pipeline::TimeZones* zones = nullptr;             // null: UTC
  std::function<pipeline::TimePoint()> now{};             // null: the system clock
  std::string pipeline_file = ".tollgate.yaml";
};

struct EngineStats {
  std::uint64_t events = 0;       // deliveries consumed
  std::uint64_t runs_started = 0;
  std::uint64_t jobs_done = 0;
  std::uint64_t jobs_retried = 0;
  std::uint64_t jobs_failed = 0;
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

  [[nodiscard]] EngineStats stats() const;
  // Prometheus text: runs by status and jobs by state (counted at most once a second, off the
  // caller's thread), and the engine's counters.
  [[nodiscard]] std::string metrics_text() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tollgate::service
