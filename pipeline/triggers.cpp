#include "pipeline/triggers.hpp"

#include "pipeline/glob.hpp"

namespace tollgate::pipeline {

namespace {

// Patterns were checked when the file was loaded; one that does not compile here matches nothing.
bool any_matches(const std::vector<std::string>& patterns, std::string_view text) {
  for (const auto& p : patterns) {
    auto g = Glob::compile(p);
    if (g && g->matches(text)) return true;
  }
  return false;
}

std::string list(const std::vector<std::string>& patterns) {
  std::string out = "[";
  for (std::size_t i = 0; i < patterns.size(); ++i) out += (i ? ", " : "") + patterns[i];
  return out + "]";
}

}  // namespace

std::optional<std::string> branch_of_ref(std::string_view ref) {
  constexpr std::string_view heads = "refs/heads/";
  if (ref.substr(0, heads.size()) != heads || ref.size() == heads.size()) return std::nullopt;
  return std::string(ref.substr(heads.size()));
}

TriggerMatch match_triggers(const PipelineFile& file, const TriggerEvent& event) {
  TriggerMatch out;
  const char* what = event.kind == TriggerEvent::Kind::merged ? "merged" : "push";
  for (const auto& p : file.pipelines) {
    const auto& trigger = event.kind == TriggerEvent::Kind::merged ? p.on.merged : p.on.push;
    if (!trigger) {
      out.skipped.push_back(p.name + ": no '" + what + "' trigger");
      continue;
    }
    if (!any_matches(trigger->branches, event.branch)) {
      out.skipped.push_back(p.name + ": branch '" + event.branch + "' matches none of " + list(trigger->branches));
      continue;
    }
    if (trigger->paths.empty()) {
      out.pipelines.push_back(p.name);
      continue;
    }
    bool hit = false;
    for (const auto& f : event.changed_files) {
      if (any_matches(trigger->paths, f)) {
        hit = true;
        break;
      }
    }
    if (hit) {
      out.pipelines.push_back(p.name);
    } else if (!event.changed_files_complete) {
      out.need_changed_files.push_back(p.name);
    } else {
      out.skipped.push_back(p.name + ": no changed file matches " + list(trigger->paths));
    }
  }
  return out;
}

}  // namespace tollgate::pipeline
