// JSON (already read from YAML) -> typed model, checking each field on the way: durations, globs,
// patterns, paths, windows and templates. Tolerant of values the schema check already rejected:
// such fields are skipped, so one run reports every problem.
#include <algorithm>
#include <set>

#include <re2/re2.h>

#include "pipeline/check_context.hpp"
#include "pipeline/duration.hpp"
#include "pipeline/glob.hpp"
#include "pipeline/loader.hpp"
#include "pipeline/names.hpp"
#include "pipeline/suggest.hpp"
#include "pipeline/yaml_path.hpp"
#include "templates/mustache.hpp"

namespace tollgate::pipeline::detail {

using nlohmann::json;

namespace {

const json* member(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

std::optional<std::string> str(const json& obj, const char* key) {
  const json* v = member(obj, key);
  if (v && v->is_string()) return v->get<std::string>();
  return std::nullopt;
}

std::vector<std::string> strings(const json& obj, const char* key) {
  std::vector<std::string> out;
  const json* v = member(obj, key);
  if (v && v->is_array()) {
    for (const auto& x : *v) {
      if (x.is_string()) out.push_back(x.get<std::string>());
    }
  }
  return out;
}

std::string scalar_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

class Loader {
 public:
  // Object members in the order the file lists them (JSON objects here are sorted by key).
  std::vector<std::pair<std::string, const json*>> in_file_order(const json& obj, const std::string& ptr) const {
    std::vector<std::pair<std::string, const json*>> out;
    for (const auto& [k, v] : obj.items()) out.emplace_back(k, &v);
    std::stable_sort(out.begin(), out.end(), [&](const auto& a, const auto& b) {
      return cx_.doc.map.key(ptr + "/" + pointer_token(a.first)) < cx_.doc.map.key(ptr + "/" + pointer_token(b.first));
    });
    return out;
  }

  explicit Loader(const CheckContext& cx) : cx_(cx) {}

  PipelineFile run() {
    PipelineFile f;
    const json& root = cx_.doc.json;
    const json* pipelines = member(root, "pipelines");
    if (!pipelines || !pipelines->is_array()) return f;
    for (std::size_t i = 0; i < pipelines->size(); ++i) {
      const json& p = (*pipelines)[i];
      if (p.is_object()) f.pipelines.push_back(pipeline(p, "/pipelines/" + std::to_string(i)));
    }
    return f;
  }

 private:
  std::optional<Seconds> duration(const json& obj, const char* key, const std::string& ptr, bool positive) {
    auto s = str(obj, key);
    if (!s) return std::nullopt;
    std::string at = ptr + "/" + key;
    auto d = parse_duration(*s);
    if (!d) {
      cx_.refine_at_value(at, "bad duration for '" + std::string(key) + "': " + d.error());
      return std::nullopt;
    }
    if (positive && d->count() == 0) {
      cx_.error_at_value(at, "'" + std::string(key) + "' must be longer than 0s");
      return std::nullopt;
    }
    return *d;
  }

  void globs(const json& obj, const char* key, const std::string& ptr, std::vector<std::string>& out) {
    const json* v = member(obj, key);
    if (!v || !v->is_array()) return;
    for (std::size_t i = 0; i < v->size(); ++i) {
      if (!(*v)[i].is_string()) continue;
      std::string g = (*v)[i].get<std::string>();
      std::string at = ptr + "/" + key + "/" + std::to_string(i);
      auto c = Glob::compile(g);
      if (!c) {
        cx_.error_in_scalar(at, g, c.error().offset, "bad glob '" + g + "' in '" + key + "': " + c.error().message);
        continue;
      }
      out.push_back(std::move(g));
    }
  }

  void relative_path(const json& obj, const char* key, const std::string& ptr) {
    auto s = str(obj, key);
    if (!s) return;
    if (auto problem = relative_path_problem(*s)) {
      cx_.error_at_value(ptr + "/" + key, "'" + std::string(key) + "' path '" + *s + "': " + *problem);
    }
  }

  void templ(const std::string& ptr, const std::string& text, const templates::VariableSet& vars) {
    for (const auto& e : templates::check(text, vars)) {
      cx_.error_in_scalar(ptr, text, e.offset, "template: " + e.message + variable_hint(e.unknown_variable, vars));
    }
  }

  // What to do about an unknown template variable.
  std::string variable_hint(const std::string& name, const templates::VariableSet& vars) const {
    if (name.empty()) return "";
    if (!vars.contains("stage.name") && templates::standard_variables({"version"}).contains(name)) {
      return "; release values are computed once per run, from 'source.*', 'pipeline.name' and 'run.*' only";
    }
    const auto names = vars.names();
    if (auto c = closest(name, names)) return "; did you mean '" + *c + "'?";
    std::string group = name.substr(0, name.find('.'));
    if (group == "release" && !vars.contains("stage.name")) {
      return "; release values are computed once per run, from 'source.*', 'pipeline.name' and 'run.*' only";
    }
    std::string fields;
    for (const auto& n : names) {
      if (n.rfind(group + ".", 0) == 0) fields += (fields.empty() ? "'" : ", '") + n + "'";
    }
    if (!fields.empty()) return "; '" + group + "' has " + fields;
    return "; known variables start with 'source.', 'release.', 'pipeline.', 'stage.', 'run.' or 'upstream.'";
  }

  void templ(const json& obj, const char* key, const std::string& ptr, const templates::VariableSet& vars) {
    if (auto s = str(obj, key)) templ(ptr + "/" + key, *s, vars);
  }

  std::optional<CheckSelection> checks(const json* v) {
    if (!v) return std::nullopt;
    CheckSelection sel;
    if (v->is_string()) {
      sel.mode = *v == "none" ? CheckSelection::Mode::none : CheckSelection::Mode::all;
    } else if (v->is_array()) {
      sel.mode = CheckSelection::Mode::named;
      for (const auto& x : *v) {
        if (x.is_string()) sel.names.push_back(x.get<std::string>());
      }
    }
    return sel;
  }

  Pipeline pipeline(const json& p, const std::string& ptr) {
    Pipeline out;
    out.ptr = ptr;
    out.name = str(p, "name").value_or("");
    if (const json* on = member(p, "on")) {
      for (const char* kind : {"merged", "push"}) {
        const json* t = member(*on, kind);
        if (!t || !t->is_object()) continue;
        Trigger trig;
        trig.ptr = ptr + "/on/" + kind;
        globs(*t, "branches", trig.ptr, trig.branches);
        globs(*t, "paths", trig.ptr, trig.paths);
        (std::string(kind) == "merged" ? out.on.merged : out.on.push) = std::move(trig);
      }
    }
    const auto release_vars = templates::release_variables();
    if (const json* rel = member(p, "release"); rel && rel->is_object()) {
      for (const auto& [k, v] : in_file_order(*rel, ptr + "/release")) {
        if (!v->is_string()) continue;
        templ(ptr + "/release/" + pointer_token(k), v->get<std::string>(), release_vars);
        out.release.emplace_back(k, v->get<std::string>());
      }
    }
    // `release.version` is always there: the short source sha unless the pipeline defines it.
    if (std::none_of(out.release.begin(), out.release.end(), [](const auto& r) { return r.first == "version"; })) {
      out.release.emplace_back("version", "{{source.short_sha}}");
    }
    std::vector<std::string> release_names;
    for (const auto& r : out.release) release_names.push_back(r.first);
    vars_ = templates::standard_variables(release_names);

    if (auto c = str(p, "concurrency")) out.concurrency = *c == "queue" ? Concurrency::queue : Concurrency::supersede;
    if (const json* stages = member(p, "stages"); stages && stages->is_array()) {
      for (std::size_t i = 0; i < stages->size(); ++i) {
        const json& s = (*stages)[i];
        if (!s.is_object()) continue;
        out.stages.push_back(stage(s, ptr + "/stages/" + std::to_string(i)));
      }
    }
    return out;
  }

  Stage stage(const json& s, const std::string& ptr) {
    Stage st;
    st.ptr = ptr;
    st.name = str(s, "name").value_or("");
    if (const json* after = member(s, "after"); after && after->is_array()) {
      st.after_explicit = true;
      st.after = strings(s, "after");
    }
    st.repo = str(s, "repo").value_or("");
    if (auto b = str(s, "branch")) {
      st.branch = *b;
      if (auto problem = branch_name_problem(*b)) cx_.error_at_value(ptr + "/branch", "branch '" + *b + "': " + *problem);
    }
    if (const json* edits = member(s, "edits"); edits && edits->is_array()) {
      for (std::size_t i = 0; i < edits->size(); ++i) {
        if ((*edits)[i].is_object()) {
          if (auto e = edit((*edits)[i], ptr + "/edits/" + std::to_string(i))) st.edits.push_back(std::move(*e));
        }
      }
    }
    if (const json* pr = member(s, "pr"); pr && pr->is_object()) st.pr = pr_spec(*pr, ptr + "/pr");
    if (auto m = str(s, "merge")) st.merge = *m == "manual" ? MergeMode::manual : MergeMode::automatic;
    if (const json* g = member(s, "gates"); g && g->is_object()) st.gates = gates(*g, ptr + "/gates");
    if (const json* v = member(s, "verify"); v && v->is_object()) st.verify = verify(*v, ptr + "/verify");
    if (auto f = str(s, "on_failure")) st.on_failure = *f == "rollback" ? OnFailure::rollback : OnFailure::stop;
    return st;
  }

  std::optional<Edit> edit(const json& e, const std::string& ptr) {
    Edit out;
    out.ptr = ptr;
    out.file = str(e, "file").value_or("");
    relative_path(e, "file", ptr);
    if (const json* set = member(e, "set"); set && set->is_object()) {
      SetEdit se;
      for (const auto& [path, value_ptr] : in_file_order(*set, ptr + "/set")) {
        const json& value = *value_ptr;
        std::string at = ptr + "/set/" + pointer_token(path);
        if (auto parsed = parse_yaml_path(path); !parsed) {
          cx_.out.push_back({cx_.file, locate_in_scalar(cx_.text, cx_.doc.map.key(at), path, parsed.error().offset),
                             ProblemKind::semantic, at, "bad path '" + path + "' in 'set': " + parsed.error().message});
        }
        if (value.is_string()) templ(at, value.get<std::string>(), vars_);
        if (value.is_string() || value.is_number() || value.is_boolean()) se.values.emplace_back(path, scalar_text(value));
      }
      out.action = std::move(se);
      return out;
    }
    if (const json* img = member(e, "image"); img && img->is_object()) {
      ImageEdit ie;
      ie.name = str(*img, "name").value_or("");
      ie.new_name = str(*img, "newName");
      ie.tag = str(*img, "tag");
      ie.digest = str(*img, "digest");
      for (const char* k : {"newName", "tag", "digest"}) templ(*img, k, ptr + "/image", vars_);
      if (!ie.new_name && !ie.tag && !ie.digest && img->contains("name")) {
        cx_.error_at_key(ptr + "/image", "image edit for '" + ie.name + "' changes nothing; add 'tag', 'digest' or 'newName'");
      }
      if (ie.digest && ie.digest->find("{{") == std::string::npos) {
        static const RE2 digest_re("sha256:[0-9a-f]{64}");
        if (!RE2::FullMatch(*ie.digest, digest_re)) {
          cx_.error_at_value(ptr + "/image/digest", "digest '" + *ie.digest + "' must look like 'sha256:' and 64 hex digits");
        }
      }
      out.action = std::move(ie);
      return out;
    }
    if (const json* rep = member(e, "replace"); rep && rep->is_object()) {
      ReplaceEdit re;
      re.pattern = str(*rep, "pattern").value_or("");
      re.with = str(*rep, "with").value_or("");
      if (!re.pattern.empty()) {
        RE2::Options opts;
        opts.set_log_errors(false);
        RE2 compiled(re.pattern, opts);
        std::string at = ptr + "/replace/pattern";
        if (!compiled.ok()) {
          std::size_t offset = compiled.error_arg().empty() ? 0 : re.pattern.find(compiled.error_arg());
          cx_.error_in_scalar(at, re.pattern, offset == std::string::npos ? 0 : offset,
                              "bad 'pattern' '" + re.pattern + "': " + compiled.error() + " (patterns use RE2 syntax)");
        } else {
          rewrite(re.with, compiled.NumberOfCapturingGroups(), ptr + "/replace/with");
        }
      }
      templ(*rep, "with", ptr + "/replace", vars_);
      out.action = std::move(re);
      return out;
    }
    if (const json* cp = member(e, "copy"); cp && cp->is_object()) {
      CopyEdit ce{str(*cp, "from").value_or(""), str(*cp, "to").value_or("")};
      relative_path(*cp, "from", ptr + "/copy");
      relative_path(*cp, "to", ptr + "/copy");
      if (member(e, "file")) {
        cx_.error_at_key(ptr + "/file", "a 'copy' edit takes no 'file': it writes to 'copy.to'");
      }
      out.action = std::move(ce);
      return out;
    }
    return std::nullopt;
  }

  // `with` may refer to the pattern's groups as \\0 (the whole match) to \\9.
  void rewrite(const std::string& with, int groups, const std::string& ptr) {
    for (std::size_t i = 0; i < with.size(); ++i) {
      if (with[i] != '\\') continue;
      if (i + 1 == with.size()) {
        cx_.error_in_scalar(ptr, with, i, "'with' ends with a lone '\\'; write '\\\\' for a backslash");
        return;
      }
      char c = with[++i];
      if (c == '\\') continue;
      if (c < '0' || c > '9') {
        cx_.error_in_scalar(ptr, with, i - 1, std::string("'with' has '\\") + c +
                                                  "'; use '\\0' to '\\9' for the pattern's groups, '\\\\' for a backslash");
        return;
      }
      if (c - '0' > groups) {
        cx_.error_in_scalar(ptr, with, i - 1, std::string("'with' uses '\\") + c + "' but 'pattern' has " +
                                                  (groups == 0 ? "no groups" : groups == 1 ? "only 1 group" : "only " + std::to_string(groups) + " groups"));
        return;
      }
    }
  }

  PrSpec pr_spec(const json& pr, const std::string& ptr) {
    PrSpec out;
    out.title = str(pr, "title");
    out.body = str(pr, "body");
    out.commit_message = str(pr, "commit_message");
    templ(pr, "title", ptr, vars_);
    templ(pr, "commit_message", ptr, vars_);
    if (out.body && is_template_path(*out.body)) {
      out.body_is_file = true;
      body_file(*out.body, ptr + "/body");
    } else {
      templ(pr, "body", ptr, vars_);
    }
    out.labels = strings(pr, "labels");
    out.reviewers = strings(pr, "reviewers");
    if (const json* d = member(pr, "draft"); d && d->is_boolean()) out.draft = d->get<bool>();
    if (auto m = str(pr, "merge_method")) {
      out.merge_method = *m == "squash" ? MergeMethod::squash : *m == "rebase" ? MergeMethod::rebase : MergeMethod::merge;
    }
    return out;
  }

  void body_file(const std::string& path, const std::string& ptr) {
    if (auto problem = relative_path_problem(path)) {
      cx_.error_at_value(ptr, "'body' template file '" + path + "': " + *problem);
      return;
    }
    if (!cx_.options.read_file) return;
    auto text = cx_.options.read_file(path);
    if (!text) {
      cx_.error_at_value(ptr, "'body' template file '" + path + "' cannot be read: " + text.error() +
                                  " (the path is relative to the source repository's root)");
      return;
    }
    std::string shown = cx_.options.display_path ? cx_.options.display_path(path) : path;
    for (const auto& e : templates::check(*text, vars_)) {
      Position pos = locate_in_scalar(*text, {1, 1}, *text, e.offset);
      cx_.out.push_back({shown, pos, ProblemKind::semantic, ptr, "template: " + e.message + variable_hint(e.unknown_variable, vars_)});
    }
  }

  Gates gates(const json& g, const std::string& ptr) {
    Gates out;
    out.checks = checks(member(g, "checks"));
    out.soak = duration(g, "soak", ptr, false);
    if (const json* a = member(g, "approvals"); a && a->is_object()) {
      ApprovalGate ag;
      if (const json* c = member(*a, "count"); c && c->is_number_integer()) ag.count = c->get<int>();
      ag.from = strings(*a, "from");
      if (const json* aa = member(*a, "allow_author"); aa && aa->is_boolean()) ag.allow_author = aa->get<bool>();
      // With only named people (no teams), the count cannot exceed the people who may approve.
      bool only_users = !ag.from.empty() && std::none_of(ag.from.begin(), ag.from.end(),
                                                         [](const std::string& f) { return f.rfind('@', 0) == 0; });
      std::set<std::string> distinct(ag.from.begin(), ag.from.end());
      if (only_users && ag.count > static_cast<int>(distinct.size())) {
        cx_.error_at_value(ptr + "/approvals/count", "'count' is " + std::to_string(ag.count) + " but only " +
                                                         std::to_string(distinct.size()) +
                                                         (distinct.size() == 1 ? " person is" : " people are") +
                                                         " listed in 'from'; the gate could never pass");
      }
      for (std::size_t i = 0; i < ag.from.size(); ++i) {
        for (std::size_t j = 0; j < i; ++j) {
          if (ag.from[i] == ag.from[j]) {
            cx_.error_at_value(ptr + "/approvals/from/" + std::to_string(i), "'" + ag.from[i] + "' is listed twice in 'from'");
          }
        }
      }
      out.approvals = std::move(ag);
    }
    if (const json* w = member(g, "window"); w && w->is_object()) out.window = window(*w, ptr + "/window");
    return out;
  }

  Window window(const json& w, const std::string& ptr) {
    Window out;
    static const std::vector<std::string> day_names{"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    auto days = strings(w, "days");
    std::set<int> seen;
    for (std::size_t i = 0; i < days.size(); ++i) {
      auto it = std::find(day_names.begin(), day_names.end(), days[i]);
      if (it == day_names.end()) continue;  // the schema reports it
      int d = static_cast<int>(it - day_names.begin());
      if (!seen.insert(d).second) {
        cx_.error_at_value(ptr + "/days/" + std::to_string(i), "day '" + days[i] + "' is listed twice");
      }
      out.days.push_back(d);
    }
    if (auto h = str(w, "hours"); h && h->size() == 11 && (*h)[2] == ':' && (*h)[5] == '-' && (*h)[8] == ':') {
      auto num = [&](std::size_t at) {
        char a = (*h)[at], b = (*h)[at + 1];
        return (a >= '0' && a <= '9' && b >= '0' && b <= '9') ? (a - '0') * 10 + (b - '0') : -1;
      };
      int sh = num(0), sm = num(3), eh = num(6), em = num(9);
      std::string at = ptr + "/hours";
      if (sh < 0 || sm < 0 || eh < 0 || em < 0) {
        // the schema reports the shape
      } else if (sh > 23 || sm > 59) {
        cx_.error_in_scalar(at, *h, 0, "start time '" + h->substr(0, 5) + "' is not a time of day (00:00 to 23:59)");
      } else if (eh > 24 || em > 59 || (eh == 24 && em != 0)) {
        cx_.error_in_scalar(at, *h, 6, "end time '" + h->substr(6, 5) + "' is not a time of day (00:00 to 24:00)");
      } else if (sh * 60 + sm == eh * 60 + em) {
        cx_.error_in_scalar(at, *h, 0, "hours '" + *h + "' is an empty window; the end must differ from the start");
      } else {
        out.start_minute = sh * 60 + sm;
        out.end_minute = eh * 60 + em;  // an end before the start spans midnight
      }
    }
    if (auto tz = str(w, "timezone")) {
      out.timezone = *tz;
      auto exists = cx_.options.timezone_exists ? cx_.options.timezone_exists : system_timezone_exists;
      if (!exists(*tz)) {
        std::string hint;
        if (!cx_.options.timezone_exists) hint = did_you_mean(*tz, system_timezone_names());
        if (hint.empty()) hint = " (use a zone name such as 'Europe/Berlin' or 'UTC')";
        cx_.error_at_value(ptr + "/timezone", "unknown time zone '" + *tz + "'" + hint);
      }
    }
    return out;
  }

  Verify verify(const json& v, const std::string& ptr) {
    Verify out;
    if (auto t = duration(v, "timeout", ptr, true)) out.timeout = *t;
    Seconds waited{0};
    if (const json* steps = member(v, "steps"); steps && steps->is_array()) {
      for (std::size_t i = 0; i < steps->size(); ++i) {
        const json& s = (*steps)[i];
        if (!s.is_object() || s.size() != 1) continue;
        std::string at = ptr + "/steps/" + std::to_string(i);
        VerifyStep step;
        step.ptr = at;
        if (member(s, "wait")) {
          auto d = duration(s, "wait", at, true);
          if (!d) continue;
          waited += *d;
          step.action = WaitStep{*d};
        } else if (const json* c = member(s, "checks")) {
          auto sel = checks(c);
          if (!sel) continue;
          step.action = ChecksStep{*sel};
        } else if (const json* h = member(s, "http"); h && h->is_object()) {
          HttpStep hs;
          hs.url = str(*h, "url").value_or("");
          url(hs.url, at + "/http/url");
          if (const json* e = member(*h, "expect"); e && e->is_number_integer()) hs.expect = e->get<int>();
          if (auto d = duration(*h, "for", at + "/http", false)) hs.for_duration = *d;
          waited += hs.for_duration;
          step.action = std::move(hs);
        } else if (const json* pm = member(s, "prometheus"); pm && pm->is_object()) {
          PrometheusStep ps;
          ps.url = str(*pm, "url").value_or("");
          ps.query = str(*pm, "query").value_or("");
          url(ps.url, at + "/prometheus/url");
          templ(*pm, "query", at + "/prometheus", vars_);
          if (const json* b = member(*pm, "below"); b && b->is_number()) ps.below = b->get<double>();
          if (const json* a = member(*pm, "above"); a && a->is_number()) ps.above = a->get<double>();
          bool only_known_keys = std::all_of(pm->items().begin(), pm->items().end(), [](const auto& kv) {
            static const std::set<std::string> known{"url", "query", "below", "above", "for"};
            return known.count(kv.key()) > 0;
          });
          if (only_known_keys && !member(*pm, "below") && !member(*pm, "above")) {
            cx_.error_at_key(at + "/prometheus", "prometheus step needs 'below' or 'above': the bound the query result must keep");
          }
          if (auto d = duration(*pm, "for", at + "/prometheus", false)) ps.for_duration = *d;
          waited += ps.for_duration;
          step.action = std::move(ps);
        } else {
          continue;
        }
        out.steps.push_back(std::move(step));
      }
    }
    if (waited > out.timeout) {
      std::string msg = "verification needs at least " + format_duration(waited) + " (waits and 'for' periods) but times out after " +
                        format_duration(out.timeout);
      if (member(v, "timeout")) {
        cx_.error_at_value(ptr + "/timeout", msg + "; raise 'timeout'");
      } else {
        cx_.error_at_key(ptr, msg + " (the default); add a longer 'timeout'");
      }
    }
    return out;
  }

  void url(const std::string& u, const std::string& ptr) {
    templ(ptr, u, vars_);
    if (u.find("{{") != std::string::npos) return;  // checked once rendered
    if (u.rfind("http://", 0) != 0 && u.rfind("https://", 0) != 0) {
      cx_.error_at_value(ptr, "url '" + u + "' must start with 'http://' or 'https://'");
    } else if (u.find_first_of(" \t\n") != std::string::npos) {
      cx_.error_at_value(ptr, "url '" + u + "' contains whitespace");
    } else if (u.size() <= u.find("//") + 2 || u[u.find("//") + 2] == '/') {
      cx_.error_at_value(ptr, "url '" + u + "' has no host");
    }
  }

  const CheckContext& cx_;
  templates::VariableSet vars_;
};

}  // namespace

PipelineFile build_model(const CheckContext& cx) { return Loader(cx).run(); }

}  // namespace tollgate::pipeline::detail
