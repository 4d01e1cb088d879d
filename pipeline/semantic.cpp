// Checks across the file: unique names, `after` references, and cycles in the stage graph.
#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "pipeline/loader.hpp"
#include "pipeline/suggest.hpp"

namespace tollgate::pipeline::detail {

namespace {

void resolve_after(const CheckContext& cx, Pipeline& p) {
  std::vector<std::string> names;
  for (const auto& s : p.stages) names.push_back(s.name);
  std::set<std::string> known(names.begin(), names.end());
  for (std::size_t i = 0; i < p.stages.size(); ++i) {
    Stage& s = p.stages[i];
    if (!s.after_explicit) {
      // Default: the stage above; the first stage starts with the run.
      if (i > 0) s.after = {p.stages[i - 1].name};
      continue;
    }
    std::vector<std::string> kept;
    for (std::size_t j = 0; j < s.after.size(); ++j) {
      const std::string& a = s.after[j];
      std::string at = s.ptr + "/after/" + std::to_string(j);
      if (a == s.name) {
        cx.error_at_value(at, "stage '" + s.name + "' cannot run after itself");
      } else if (!known.count(a)) {
        cx.error_at_value(at, "stage '" + s.name + "' runs after unknown stage '" + a + "'" + did_you_mean(a, names));
      } else if (std::find(kept.begin(), kept.end(), a) != kept.end()) {
        cx.error_at_value(at, "stage '" + a + "' is listed twice in 'after'");
      } else {
        kept.push_back(a);
      }
    }
    s.after = std::move(kept);
  }
}

void find_cycles(const CheckContext& cx, const Pipeline& p) {
  std::map<std::string, const Stage*> by_name;
  for (const auto& s : p.stages) by_name.emplace(s.name, &s);
  enum class Mark { none, active, done };
  std::map<std::string, Mark> mark;
  std::vector<std::string> path;
  std::set<std::set<std::string>> reported;
  // Iterative DFS would be safer for deep graphs, but stage lists are short and bounded by the
  // YAML depth guard; recursion keeps the cycle path easy to read.
  std::function<void(const Stage&)> visit = [&](const Stage& s) {
    mark[s.name] = Mark::active;
    path.push_back(s.name);
    for (const auto& up : s.after) {
      auto it = by_name.find(up);
      if (it == by_name.end()) continue;
      if (mark[up] == Mark::active) {
        auto from = std::find(path.begin(), path.end(), up);
        std::vector<std::string> cycle(from, path.end());  // each runs after the one after it
        std::set<std::string> members(cycle.begin(), cycle.end());
        if (reported.insert(members).second) {
          // Describe the loop as written, marking links that come from the default "after the
          // stage above", and report it at a written `after` entry when there is one.
          std::string desc;
          const Stage* report_stage = nullptr;
          std::string report_after;
          for (std::size_t k = 0; k < cycle.size(); ++k) {
            const Stage* st = by_name[cycle[k]];
            const std::string& upstream = k + 1 < cycle.size() ? cycle[k + 1] : cycle.front();
            desc += (k ? ", " : "") + std::string("'") + st->name + "' runs after '" + upstream + "'" +
                    (st->after_explicit ? "" : " (by default: the stage above it)");
            if (!report_stage && st->after_explicit) {
              report_stage = st;
              report_after = upstream;
            }
          }
          std::string at = s.ptr;
          if (report_stage) {
            std::size_t idx = static_cast<std::size_t>(
                std::find(report_stage->after.begin(), report_stage->after.end(), report_after) - report_stage->after.begin());
            at = report_stage->ptr + "/after/" + std::to_string(idx);
          }
          cx.error_at_value(at, "stages form a cycle: " + desc);
        }
      } else if (mark[up] == Mark::none) {
        visit(*it->second);
      }
    }
    path.pop_back();
    mark[s.name] = Mark::done;
  };
  for (const auto& s : p.stages) {
    if (mark[s.name] == Mark::none) visit(s);
  }
}

}  // namespace

void check_references(const CheckContext& cx, PipelineFile& file) {
  std::map<std::string, std::string> first_pipeline;
  for (auto& p : file.pipelines) {
    if (!p.name.empty()) {
      auto [it, inserted] = first_pipeline.emplace(p.name, p.ptr);
      if (!inserted) {
        cx.error_at_value(p.ptr + "/name", "duplicate pipeline name '" + p.name + "' (first defined at line " +
                                               std::to_string(cx.doc.map.value(it->second + "/name").line) + ")");
      }
    }
    std::map<std::string, std::string> first_stage;
    bool duplicates = false;
    for (const auto& s : p.stages) {
      if (s.name.empty()) continue;
      auto [it, inserted] = first_stage.emplace(s.name, s.ptr);
      if (!inserted) {
        duplicates = true;
        cx.error_at_value(s.ptr + "/name", "duplicate stage name '" + s.name + "' in pipeline '" + p.name +
                                               "' (first defined at line " +
                                               std::to_string(cx.doc.map.value(it->second + "/name").line) + ")");
      }
    }
    resolve_after(cx, p);
    if (!duplicates) find_cycles(cx, p);
  }
}

}  // namespace tollgate::pipeline::detail
