// The gates of an open stage (DESIGN.md, "checks", soak, approvals, window, hold), re-evaluated on
// every input that can change them; see docs/engine.md, "Gates".
#include <algorithm>
#include <string>
#include <vector>

#include "pipeline/duration.hpp"
#include "pipeline/engine_machine.hpp"

namespace tollgate::pipeline::detail {

namespace {

// Monday = 0, from days since 1970-01-01 (a Thursday).
int weekday(long long days) { return static_cast<int>(((days % 7) + 7 + 3) % 7); }

bool day_listed(const Window& w, int day) {
  return w.days.empty() || std::find(w.days.begin(), w.days.end(), day) != w.days.end();
}

}  // namespace

// Whether `w` is open at `t` given the zone's offset at `t`. A window whose end is before its
// start spans midnight and belongs to the day it starts on.
bool window_open_at(const Window& w, TimePoint t, seconds offset) {
  long long local = std::chrono::floor<seconds>(t + offset).time_since_epoch().count();
  long long days = local >= 0 ? local / 86400 : (local - 86399) / 86400;
  int minute = static_cast<int>((local - days * 86400) / 60);
  int day = weekday(days);
  if (w.start_minute < w.end_minute) return day_listed(w, day) && minute >= w.start_minute && minute < w.end_minute;
  if (w.start_minute == w.end_minute) return day_listed(w, day);
  if (minute >= w.start_minute) return day_listed(w, day);
  return minute < w.end_minute && day_listed(w, (day + 6) % 7);
}

Machine::Verdict Machine::evaluate_checks(StageState& st, const CheckSelection& sel, const std::string& sha,
                                          TimePoint since) {
  Verdict v;
  if (sel.mode == CheckSelection::Mode::none) return v;
  auto not_yet = [&](std::string why) {
    v.pass = false;
    v.waiting.push_back(std::move(why));
  };
  if (sel.mode == CheckSelection::Mode::all) {
    TimePoint settled = since + cx_.options.checks_settle;
    if (now_ < settled) {
      not_yet("waiting for checks to report");
      arm(st, "settle", settled);
      return v;
    }
    for (const auto& [name, seen] : st.checks) {
      if (seen.sha != sha || is_own_check(name)) continue;
      if (seen.state == CheckState::failure) {
        v.failed_check = true;
        not_yet("check '" + name + "' failed");
      } else if (seen.state == CheckState::pending) {
        not_yet("waiting on check '" + name + "'");
      }
    }
    return v;
  }
  for (const auto& name : sel.names) {
    auto it = st.checks.find(name);
    if (it == st.checks.end() || it->second.sha != sha || it->second.state == CheckState::pending) {
      not_yet("waiting on check '" + name + "'");
    } else if (it->second.state == CheckState::failure) {
      v.failed_check = true;
      not_yet("check '" + name + "' failed");
    }
  }
  return v;
}

std::optional<seconds> Machine::offset(const std::string& zone, TimePoint t) const {
  if (!cx_.zones) return seconds{0};
  return cx_.zones->utc_offset(zone.empty() ? "UTC" : zone, t);
}

std::optional<TimePoint> Machine::next_window_opening(const Window& w) const {
  // Minute steps over eight days: exact across DST changes, and cheap enough for a pure function.
  TimePoint t = std::chrono::floor<std::chrono::minutes>(now_) + std::chrono::minutes{1};
  for (int i = 0; i < 8 * 24 * 60; ++i, t += seconds{60}) {
    auto off = offset(w.timezone, t);
    if (off && window_open_at(w, t, *off)) return t;
  }
  return std::nullopt;
}

std::vector<std::string> Machine::approvers_on_head(const StageState& st) const {
  std::vector<std::string> out;
  for (const auto& a : st.approvals) {
    if (a.sha == st.head_sha && std::find(out.begin(), out.end(), a.login) == out.end()) out.push_back(a.login);
  }
  return out;
}

TimePoint Machine::soak_base(const StageState& st, const Stage& sd) const {
  // DESIGN.md: time since every upstream stage was promoted; a stage with no upstream soaks from
  // the moment its PR opened.
  TimePoint base = st.opened_at.value_or(now_);
  if (sd.after.empty()) return base;
  base = TimePoint{};
  for (const auto& up : sd.after) {
    const StageState* u = run().stage(up);
    if (u && u->finished_at) base = std::max(base, *u->finished_at);
  }
  return base;
}

void Machine::evaluate(StageState& st) {
  if (st.status != StageStatus::open || run().status != RunStatus::running) return;
  if (yielding()) {  // no new merge: the run ends once its other stages' work is done
    publish(st, "pending", yield_reason());
    return;
  }
  const Stage* sd = def_of(st);
  if (!sd) return;
  std::vector<std::string> waiting;
  bool failed_check = false;
  if (st.hold)
    waiting.push_back("held by " + mention(st.hold->by) + (st.hold->reason.empty() ? "" : ": " + st.hold->reason));
  if (st.head_stale) waiting.push_back("waiting for the new head of the PR");
  if (sd->gates.checks) {
    Verdict v = evaluate_checks(st, *sd->gates.checks, st.head_sha, st.head_set_at);
    failed_check = v.failed_check;
    waiting.insert(waiting.end(), v.waiting.begin(), v.waiting.end());
  }
  if (st.merge_refused_at) {
    TimePoint again = *st.merge_refused_at + cx_.options.merge_retry;
    if (now_ < again) {
      waiting.push_back("the host refused the merge; trying again in " +
                        format_duration(std::chrono::duration_cast<seconds>(again - now_)));
      arm(st, "merge_retry", again);
    } else {
      st.merge_refused_at.reset();
    }
  }
  if (sd->gates.soak) {
    TimePoint end = soak_base(st, *sd) + *sd->gates.soak;
    if (now_ < end) {
      waiting.push_back("soaking for " + format_duration(std::chrono::duration_cast<seconds>(end - now_)));
      arm(st, "soak", end);
    }
  }
  if (sd->gates.approvals) {
    int have = static_cast<int>(approvers_on_head(st).size());
    if (have < sd->gates.approvals->count) {
      waiting.push_back(std::to_string(have) + " of " + std::to_string(sd->gates.approvals->count) + " approvals");
    }
  }
  if (sd->gates.window) {
    const Window& w = *sd->gates.window;
    auto off = offset(w.timezone, now_);
    if (!off) {
      waiting.push_back("unknown time zone '" + w.timezone + "'");
    } else if (!window_open_at(w, now_, *off)) {
      waiting.push_back("outside the deployment window");
      if (auto next = next_window_opening(w)) arm(st, "window", *next);
    }
  }
  if (!waiting.empty()) {
    std::string text;
    for (const auto& w : waiting) text += (text.empty() ? "" : "; ") + w;
    publish(st, failed_check ? "failure" : "pending", text);
    return;
  }
  if (!st.gates_passed_at) st.gates_passed_at = now_;
  if (sd->merge == MergeMode::manual) {
    publish(st, "success", "gates passed: ready to merge");
    return;
  }
  st.expected_merge_sha = st.head_sha;
  st.attempt = 0;
  move(st, StageStatus::merging, bot(), "gates passed on " + short_sha(st.head_sha));
  publish(st, "pending", "merging");
  send_merge(st);
}

}  // namespace tollgate::pipeline::detail
