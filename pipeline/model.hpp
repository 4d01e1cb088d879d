#pragma once
// Typed form of a pipeline file (.tollgate.yaml, version 1); see docs in README and DESIGN.md.
// Every element keeps `ptr`, its JSON pointer in the document, to locate problems and audit entries.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace tollgate::pipeline {

using Seconds = std::chrono::seconds;

struct Trigger {
  std::string ptr;
  std::vector<std::string> branches;  // globs
  std::vector<std::string> paths;     // globs; empty = any change
};

struct Triggers {
  std::optional<Trigger> merged;
  std::optional<Trigger> push;
};

struct SetEdit {
  // path (e.g. "image.tag", "spec.containers[0].image") -> value template (numbers and booleans
  // keep their type when the rendered text still reads as one)
  std::vector<std::pair<std::string, std::string>> values;
};
struct ImageEdit {
  std::string name;
  std::optional<std::string> new_name, tag, digest;  // templates
};
struct ReplaceEdit {
  std::string pattern;  // RE2
  std::string with;     // template
};
struct CopyEdit {
  std::string from;  // path in the source repository at the release sha
  std::string to;    // path in the environment repository
};

struct Edit {
  std::string ptr;
  std::string file;  // empty for copy
  std::variant<SetEdit, ImageEdit, ReplaceEdit, CopyEdit> action;
};

enum class MergeMethod { merge, squash, rebase };
enum class MergeMode { automatic, manual };
enum class OnFailure { stop, rollback };
enum class Concurrency { supersede, queue };

struct PrSpec {
  std::optional<std::string> title, body, commit_message;  // templates; default ones when absent
  bool body_is_file = false;  // body names a template file in the source repository
  std::vector<std::string> labels;
  std::vector<std::string> reviewers;
  bool draft = false;
  MergeMethod merge_method = MergeMethod::merge;
};

struct CheckSelection {
  enum class Mode { all, none, named } mode = Mode::all;
  std::vector<std::string> names;
};

struct ApprovalGate {
  int count = 1;
  std::vector<std::string> from;  // users and @org/team; empty = anyone with write access
  bool allow_author = false;
};

struct Window {
  std::vector<int> days;  // 0 = monday ... 6 = sunday; empty = every day
  int start_minute = 0;   // minutes after midnight, local time
  int end_minute = 24 * 60;
  std::string timezone;
};

struct Gates {
  std::optional<CheckSelection> checks;
  std::optional<Seconds> soak;
  std::optional<ApprovalGate> approvals;
  std::optional<Window> window;
};

struct WaitStep { Seconds duration{0}; };
struct ChecksStep { CheckSelection selection; };
struct HttpStep {
  std::string url;  // template
  int expect = 200;
  Seconds for_duration{0};
};
struct PrometheusStep {
  std::string url;
  std::string query;  // template
  std::optional<double> below, above;
  Seconds for_duration{0};
};
struct VerifyStep {
  std::string ptr;
  std::variant<WaitStep, ChecksStep, HttpStep, PrometheusStep> action;
};
struct Verify {
  Seconds timeout{15 * 60};
  std::vector<VerifyStep> steps;
};

struct Stage {
  std::string ptr;
  std::string name;
  std::vector<std::string> after;  // resolved: names of upstream stages (empty = starts with run)
  bool after_explicit = false;
  std::string repo;
  std::optional<std::string> branch;  // absent: the repository's default branch
  std::vector<Edit> edits;
  PrSpec pr;
  MergeMode merge = MergeMode::automatic;
  Gates gates;
  std::optional<Verify> verify;
  OnFailure on_failure = OnFailure::stop;
};

struct Pipeline {
  std::string ptr;
  std::string name;
  Triggers on;
  std::vector<std::pair<std::string, std::string>> release;  // name -> template, file order
  Concurrency concurrency = Concurrency::supersede;
  std::vector<Stage> stages;  // file order

  [[nodiscard]] const Stage* stage(std::string_view name) const;
};

struct PipelineFile {
  int version = 1;
  std::vector<Pipeline> pipelines;
};

}  // namespace tollgate::pipeline
