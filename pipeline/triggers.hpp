#pragma once
// Which pipelines of a pipeline file a source-repository event starts (DESIGN.md, `on:`). No I/O:
// the service reads `.tollgate.yaml` at the event's commit, calls match_triggers, and starts one
// run per matching pipeline. A merged PR into `main` also arrives as a push to `main`: a pipeline
// with both triggers matches both events, and the service keeps one run per (pipeline, sha).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/model.hpp"

namespace tollgate::pipeline {

struct TriggerEvent {
  enum class Kind { merged, push } kind = Kind::merged;
  std::string branch;  // merged: the PR's base branch; push: the branch pushed (see branch_of_ref)
  std::vector<std::string> changed_files;  // paths changed by the PR / the push
  // False when the host gave only part of the list (GitLab's and Gitea's push payloads cut the
  // commit list short): a `paths:` filter cannot be decided and the service must ask the host for
  // the comparison first.
  bool changed_files_complete = true;
};

struct TriggerMatch {
  std::vector<std::string> pipelines;  // started, in file order
  // Branches match and `paths:` is set but the changed files are incomplete (and the part known
  // matches nothing): call again with the full list. A known matching file decides at once.
  std::vector<std::string> need_changed_files;
  // For the audit log and `tollgate` debugging: per pipeline of the file that did not start, why
  // ("payments: branch 'dev' matches none of [main]", "web: no changed file matches [web/**]").
  std::vector<std::string> skipped;
};

[[nodiscard]] TriggerMatch match_triggers(const PipelineFile& file, const TriggerEvent& event);

// "refs/heads/release/1.2" -> "release/1.2"; tags and other refs -> nothing (they never trigger).
[[nodiscard]] std::optional<std::string> branch_of_ref(std::string_view ref);

}  // namespace tollgate::pipeline
