// The tollgate dashboard: a single page over the REST API (docs/api.md), built into the binary.
// Routes live in the fragment: `#/` shows the pipelines, `#/runs/{id}` one run. The page listens
// to /api/v1/events and redraws the current view when an audit entry arrives, without a reload.
// Every piece of data reaches the page through textContent or an attribute (h() below), never
// as markup.

const RUNS_PAGE = 10; // runs per pipeline card, and per "more"
const REFRESH_DELAY_MS = 150; // audit events arriving within this time cause one refresh
const TOKEN_KEY = "tollgate.token";
const SVG_NS = "http://www.w3.org/2000/svg";

const main = document.getElementById("main");
const flash = document.getElementById("flash");
const live = document.getElementById("live");
const forget = document.getElementById("forget-token");

// ---- DOM --------------------------------------------------------------------------------------

// h("a", {href, class, onclick}, ...children): an element; strings become text nodes, null,
// undefined and false attributes and children are left out, `on*` attributes are listeners.
function h(tag, attrs, ...children) {
  const el = tag.startsWith("svg:") ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

// A link to a host page, only for http(s) URLs (a `javascript:` URL from data would run); else text.
function extLink(url, text) {
  return typeof url === "string" && /^https?:\/\//i.test(url)
    ? h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, text)
    : h("span", {}, text);
}

// A status as a class suffix: the API's statuses are lower-case words.
const statusClass = (status) => "s-" + String(status).replace(/[^a-z_-]/g, "");

function badge(status, text = status) {
  return h("span", { class: `badge ${statusClass(status)}`, "data-status": status }, text);
}

const runHref = (id) => "#/runs/" + encodeURIComponent(id);
const shortSha = (sha) => (typeof sha === "string" ? sha.slice(0, 7) : "");

// ---- Time -------------------------------------------------------------------------------------

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const clockTime = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const shortDate = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

// 3725 -> "1 h 2 min"; the two largest units only.
function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  let s = Math.max(0, Math.round(seconds));
  const units = [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]];
  const parts = [];
  for (const [name, size] of units) {
    if (s >= size || (name === "s" && parts.length === 0)) {
      parts.push(`${Math.floor(s / size)} ${name}`);
      s %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(" ");
}

function ago(iso) {
  const seconds = (Date.now() - Date.parse(iso)) / 1000;
  if (seconds < 45) return "just now";
  return `${duration(seconds < 3600 ? Math.round(seconds / 60) * 60 : seconds)} ago`;
}

// A <time> showing "5 min ago" (kept current by the ticker) with the full time as its title.
function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: iso, title: dateTime.format(new Date(iso)), "data-ago": iso }, ago(iso));
}

// A <time> showing the clock time (and the day when it is not today), for the timeline.
function stamp(iso) {
  const d = new Date(iso);
  const today = d.toDateString() === new Date().toDateString();
  return h("time", { datetime: iso, title: dateTime.format(d) }, today ? clockTime.format(d) : `${shortDate.format(d)} ${clockTime.format(d)}`);
}

// Soak countdowns count down from the remaining_seconds of the last fetch; relative times age.
setInterval(() => {
  for (const el of document.querySelectorAll("[data-ago]")) el.textContent = ago(el.dataset.ago);
  for (const el of document.querySelectorAll("[data-deadline]")) {
    const left = (Number(el.dataset.deadline) - Date.now()) / 1000;
    el.textContent = left > 0 ? `${duration(left)} remaining` : "soak complete";
  }
}, 1000);

// ---- API --------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let token = readToken();
let stream = null; // the AbortController of the event stream's current connection

function readToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return ""; // storage disabled: the token lives for this page only
  }
}

function setToken(value) {
  token = value;
  try {
    if (value) localStorage.setItem(TOKEN_KEY, value);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {}
  forget.hidden = !token;
  stream?.abort(); // the stream connects again with the new token
  render();
}

function headers(accept) {
  const result = { accept };
  if (token) result.authorization = `Bearer ${token}`;
  return result;
}

// Relative URLs throughout, so the dashboard also works behind a proxy under a path prefix.
const apiUrl = (path) => new URL("api/v1/" + path, document.baseURI);

// GET api/v1/<path>?<query> as JSON; an ApiError with the server's message otherwise.
async function api(path, query = {}) {
  const url = apiUrl(path);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  let res;
  try {
    res = await fetch(url, { headers: headers("application/json"), cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, `tollgate cannot be reached (${e.message})`);
  }
  if (res.ok) return res.json();
  let message = `${res.status} ${res.statusText}`.trim();
  try {
    const body = await res.json();
    if (typeof body?.error === "string") message = body.error;
  } catch {} // not JSON: the status line says enough
  throw new ApiError(res.status, message);
}

// ---- Stage graph ------------------------------------------------------------------------------

// Explicit `after` lists as the API gives them; a stage without one runs after the stage above.
function afterOf(stages, index) {
  const after = stages[index].after;
  if (Array.isArray(after)) return after;
  return index > 0 ? [stages[index - 1].name] : [];
}

// Depth of each stage: 0 for stages that start with the run, else one more than the deepest
// stage it runs after. Unknown names and cycles (which validation rejects) count as depth 0.
function depths(stages) {
  const index = new Map(stages.map((s, i) => [s.name, i]));
  const depth = new Map();
  const visit = (name, seen) => {
    if (depth.has(name)) return depth.get(name);
    if (!index.has(name) || seen.has(name)) return -1;
    seen.add(name);
    const d = 1 + Math.max(-1, ...afterOf(stages, index.get(name)).map((a) => visit(a, seen)));
    depth.set(name, d);
    return d;
  };
  for (const s of stages) visit(s.name, new Set());
  return depth;
}

const graphEdges = new WeakMap(); // graph element -> [[from, to], ...]

// Stages in columns by depth (rows on narrow screens), each drawn by node(stage); the
// connectors are drawn by drawEdges once the nodes are laid out.
function stageGraph(stages, node, label) {
  const depth = depths(stages);
  const columns = [];
  for (const s of stages) (columns[depth.get(s.name)] ??= []).push(s);
  const graph = h(
    "div",
    { class: "graph", role: "group", "aria-label": label },
    h("svg:svg", { class: "edges", "aria-hidden": "true" }),
    columns.filter(Boolean).map((column) =>
      h("ol", { class: "graph-col" }, column.map((s) => h("li", { class: "graph-cell", "data-node": s.name }, node(s)))),
    ),
  );
  graphEdges.set(graph, stages.flatMap((s, i) => afterOf(stages, i).map((from) => [from, s.name])));
  return graph;
}

// One connector per `after` edge: left to right between columns, top to bottom between rows.
function drawEdges(graph) {
  const svg = graph.querySelector(":scope > .edges");
  // Shrink first so the old drawing does not keep the graph as wide as it was.
  svg.setAttribute("width", 0);
  svg.setAttribute("height", 0);
  const width = graph.scrollWidth;
  const height = graph.scrollHeight;
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const cells = new Map([...graph.querySelectorAll("[data-node]")].map((el) => [el.dataset.node, el]));
  const box = (el) => ({ x: el.offsetLeft, y: el.offsetTop, w: el.offsetWidth, h: el.offsetHeight });
  const paths = [];
  for (const [from, to] of graphEdges.get(graph) ?? []) {
    if (!cells.has(from) || !cells.has(to)) continue;
    const a = box(cells.get(from));
    const b = box(cells.get(to));
    let line;
    let arrow;
    if (b.x >= a.x + a.w - 1) {
      const [x1, y1, x2, y2] = [a.x + a.w, a.y + a.h / 2, b.x, b.y + b.h / 2];
      const mx = (x1 + x2) / 2;
      line = `M${x1} ${y1}C${mx} ${y1} ${mx} ${y2} ${x2 - 5} ${y2}`;
      arrow = `M${x2} ${y2}l-7 -4v8z`;
    } else {
      const [x1, y1, x2, y2] = [a.x + a.w / 2, a.y + a.h, b.x + b.w / 2, b.y];
      const my = (y1 + y2) / 2;
      line = `M${x1} ${y1}C${x1} ${my} ${x2} ${my} ${x2} ${y2 - 5}`;
      arrow = `M${x2} ${y2}l-4 -7h8z`;
    }
    paths.push(h("svg:path", { class: "edge", d: line }), h("svg:path", { class: "arrow", d: arrow }));
  }
  svg.replaceChildren(...paths);
}

const drawAllEdges = () => document.querySelectorAll(".graph").forEach(drawEdges);
window.addEventListener("resize", drawAllEdges);

// ---- Pipelines view ---------------------------------------------------------------------------

const pipelineKey = (p) => `${p.host}\n${p.repo}\n${p.name}`;
const runsShown = new Map(); // pipelineKey -> runs listed (grows with "more"; kept across refreshes)

function gateChips(gates, merge) {
  const chips = [];
  if (Array.isArray(gates?.checks)) chips.push(`checks: ${gates.checks.join(", ")}`);
  else if (gates?.checks === "all") chips.push("all checks");
  if (gates?.soak_seconds) chips.push(`soak ${duration(gates.soak_seconds)}`);
  if (gates?.approvals) chips.push(`${gates.approvals.count} approval${gates.approvals.count === 1 ? "" : "s"}`);
  if (gates?.window) chips.push(`window ${gates.window.hours}`);
  if (merge === "manual") chips.push("manual merge");
  return chips.length ? h("ul", { class: "chips", "aria-label": "gates" }, chips.map((c) => h("li", {}, c))) : null;
}

function pipelineNode(stage) {
  const status = stage.latest?.status ?? "none";
  const attrs = { class: `node ${statusClass(status)}`, "data-testid": "stage-node", "data-stage": stage.name, "data-status": status };
  const content = [
    h("span", { class: "node-head" }, h("span", { class: "node-name" }, stage.name), stage.latest ? badge(status) : badge("none", "no run")),
    h("span", { class: "node-repo" }, stage.repo, stage.branch ? ` @ ${stage.branch}` : ""),
    h(
      "span",
      { class: "node-version" },
      stage.current
        ? [h("code", { "data-testid": "stage-version" }, stage.current.version), " ", when(stage.current.promoted_at)]
        : h("span", { class: "muted" }, "no version yet"),
    ),
    stage.latest && stage.latest.version !== stage.current?.version
      ? h("span", { class: "node-next" }, "latest run: ", h("code", {}, stage.latest.version))
      : null,
    gateChips(stage.gates, stage.merge),
  ];
  return stage.latest ? h("a", { ...attrs, href: runHref(stage.latest.run_id) }, content) : h("div", attrs, content);
}

function runRow(run) {
  return h(
    "li",
    { class: "run-row", "data-testid": "run-row", "data-run": run.id, "data-status": run.status },
    h("a", { class: "run-link", href: runHref(run.id) }, h("code", {}, run.version)),
    badge(run.status),
    h("span", { class: "run-title" }, run.source?.title || shortSha(run.source?.sha), run.source?.author ? h("span", { class: "muted" }, ` by ${run.source.author}`) : null),
    h(
      "span",
      { class: "run-stages" },
      (run.stages ?? []).map((s) => h("span", { class: `pip ${statusClass(s.status)}`, title: `${s.name}: ${s.status}` }, s.name, h("span", { class: "visually-hidden" }, `: ${s.status}`))),
    ),
    h("span", { class: "run-time" }, when(run.created_at)),
  );
}

function percent(rate) {
  return rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(rate < 0.1 ? 1 : 0)} %`;
}

// The delivery figures of one pipeline; `delivery` is the API answer or the error fetching it.
function metrics(delivery, p) {
  if (delivery instanceof Error) return h("p", { class: "notice error" }, `Delivery metrics: ${delivery.message}`);
  const d = delivery.pipelines?.find((x) => x.host === p.host && x.repo === p.repo && x.pipeline === p.name);
  const item = (label, value, title) => h("div", { title }, h("dt", {}, label), h("dd", {}, value));
  return h(
    "dl",
    { class: "metrics", "data-testid": "delivery", "aria-label": `delivery, last ${duration(delivery.window_seconds)}` },
    item("deployments / day", d ? d.deployments_per_day.toFixed(d.deployments_per_day < 1 ? 2 : 1) : "—", d ? `${d.deployments} deployments` : undefined),
    item("lead time", duration(d?.lead_time_seconds?.median), d?.lead_time_seconds ? `median; p90 ${duration(d.lead_time_seconds.p90)}` : undefined),
    item("change failure rate", percent(d?.change_failure_rate), d ? `${d.failed_changes} of ${d.changes} changes` : undefined),
    item("time to restore", duration(d?.time_to_restore_seconds?.median), "median"),
  );
}

// `index`: the card's place on the page, for element ids.
function pipelineCard(p, index, runs, delivery) {
  const key = pipelineKey(p);
  const list = h("ol", { class: "runs", "aria-label": "runs, newest first" }, runs.runs.map(runRow));
  const error = h("p", { class: "error-text", role: "alert" });
  let cursor = runs.next_cursor;
  const more = h("button", {
    type: "button",
    class: "more",
    "data-key": `more:${key}`,
    hidden: !cursor,
    async onclick() {
      more.disabled = true;
      try {
        const page = await api("runs", { host: p.host, repo: p.repo, pipeline: p.name, limit: RUNS_PAGE, cursor });
        list.append(...page.runs.map(runRow));
        runsShown.set(key, list.children.length);
        cursor = page.next_cursor;
        more.hidden = !cursor;
        error.textContent = "";
      } catch (e) {
        error.textContent = `Could not load more runs: ${e.message}`;
      } finally {
        more.disabled = false;
      }
    },
  }, "more runs");
  const titleId = `pipeline-${index}`;
  return h(
    "article",
    { class: "card pipeline", "data-testid": "pipeline", "data-pipeline": p.name, "aria-labelledby": titleId },
    h(
      "header",
      { class: "card-head" },
      h("h2", { id: titleId }, h("span", { class: "muted" }, `${p.host} · ${p.repo} · `), p.name),
      h("span", { class: "muted" }, p.counts ? `${p.counts.running} running · ${p.counts.total} run${p.counts.total === 1 ? "" : "s"}` : null),
    ),
    metrics(delivery, p),
    stageGraph(p.stages, pipelineNode, `stages of ${p.name}`),
    h("h3", {}, "Runs"),
    runs.runs.length ? list : h("p", { class: "muted" }, "No runs."),
    more,
    error,
  );
}

async function pipelinesView() {
  const [{ pipelines }, delivery] = await Promise.all([
    api("pipelines"),
    api("delivery").catch((e) => {
      if (e.status === 401) throw e;
      return e;
    }),
  ]);
  const runs = await Promise.all(
    pipelines.map((p) =>
      api("runs", { host: p.host, repo: p.repo, pipeline: p.name, limit: Math.min(200, runsShown.get(pipelineKey(p)) ?? RUNS_PAGE) }),
    ),
  );
  document.title = "Pipelines · tollgate";
  return h(
    "div",
    {},
    h("h1", {}, "Pipelines"),
    pipelines.length
      ? pipelines.map((p, i) => pipelineCard(p, i, runs[i], delivery))
      : h("p", { class: "card muted", "data-testid": "no-pipelines" }, "No pipeline has had a run yet. Runs appear here as soon as a change is merged into a repository with a .tollgate.yaml."),
  );
}

// ---- Run view ---------------------------------------------------------------------------------

// Every audit entry of the run, oldest first (the API pages newest first).
async function auditOf(runId) {
  const entries = [];
  let cursor;
  do {
    const page = await api("audit", { run: runId, limit: 500, cursor });
    entries.push(...page.entries);
    cursor = page.next_cursor;
  } while (cursor);
  return entries.reverse();
}

function facts(pairs) {
  const rows = pairs.filter(([, value]) => value !== null && value !== undefined && value !== "");
  return rows.length ? h("dl", { class: "facts" }, rows.map(([name, value]) => h("div", {}, h("dt", {}, name), h("dd", {}, value)))) : null;
}

function gate(name, state, ...body) {
  return h("section", { class: "gate", "data-gate": name }, h("h3", {}, name, state ? [" ", state] : null), ...body);
}

function checksGate(checks) {
  const required = checks.required;
  const results = checks.results ?? [];
  const names = new Set(results.map((r) => r.name));
  const missing = Array.isArray(required) ? required.filter((n) => !names.has(n)) : [];
  const label = required === "all" ? "every check" : required === "none" ? "not required" : `required: ${required.join(", ")}`;
  return gate(
    "checks",
    h("span", { class: "muted" }, label),
    results.length || missing.length
      ? h(
          "ul",
          { class: "list" },
          results.map((r) => h("li", {}, badge(r.state), " ", r.name, " ", when(r.at))),
          missing.map((n) => h("li", {}, badge("pending", "not reported"), " ", n)),
        )
      : h("p", { class: "muted" }, "No results yet."),
  );
}

function soakGate(soak, fetchedAt) {
  let state;
  if (soak.since === null || soak.remaining_seconds === null) state = h("span", { class: "muted" }, "starts when every upstream stage is promoted");
  else if (soak.remaining_seconds > 0) {
    const deadline = fetchedAt + soak.remaining_seconds * 1000;
    state = h("span", { "data-deadline": deadline, "data-testid": "soak-remaining" }, `${duration(soak.remaining_seconds)} remaining`);
  } else state = h("span", {}, "soak complete");
  return gate("soak", h("span", { class: "muted" }, duration(soak.seconds)), h("p", {}, state, soak.since ? [" · since ", when(soak.since)] : null));
}

function windowGate(w) {
  return gate(
    "window",
    badge(w.open ? "window-open" : "window-closed", w.open ? "open now" : "closed now"),
    h("p", {}, (w.days ?? []).join(", "), " ", w.hours, " ", h("span", { class: "muted" }, w.timezone)),
  );
}

function approvalsGate(a) {
  const given = a.given ?? [];
  return gate(
    "approvals",
    h("span", { "data-testid": "approvals-count" }, `${given.length} of ${a.count}`),
    h("p", { class: "muted" }, a.from?.length ? `from ${a.from.join(", ")}` : "anyone with write access", a.allow_author ? "" : "; not the change's author"),
    given.length
      ? h(
          "ul",
          { class: "list", "data-testid": "approvals" },
          given.map((g) => h("li", { "data-login": g.login }, h("strong", {}, g.login), " ", when(g.at), g.via_review ? h("span", { class: "muted" }, " (review)") : null)),
        )
      : null,
  );
}

function runStage(s, fetchedAt) {
  const g = s.gates ?? {};
  return h(
    "section",
    { class: `card stage ${statusClass(s.status)}`, "data-testid": "run-stage", "data-stage": s.name, "data-status": s.status, "aria-labelledby": `stage-${s.name}` },
    h("h2", { id: `stage-${s.name}` }, s.name, " ", badge(s.status)),
    h("p", { class: "muted" }, s.repo, s.branch ? ` @ ${s.branch}` : "", ` · merge ${s.merge}`, s.after?.length ? ` · after ${s.after.join(", ")}` : ""),
    s.hold ? h("p", { class: "notice hold", "data-testid": "hold" }, "Held by ", h("strong", {}, s.hold.by), s.hold.reason ? `: ${s.hold.reason}` : "") : null,
    s.failure ? h("pre", { class: "notice error failure" }, s.failure) : null,
    facts([
      ["pull request", s.pr ? extLink(s.pr.url, `#${s.pr.number}`) : null],
      ["revert", s.revert_pr ? extLink(s.revert_pr.url, `#${s.revert_pr.number}`) : null],
      ["head", s.head_sha ? h("code", {}, shortSha(s.head_sha)) : null],
      ["merged", s.merge_sha ? [h("code", {}, shortSha(s.merge_sha)), s.merged_by ? ` by ${s.merged_by}` : ""] : null],
      ["started", s.started_at ? when(s.started_at) : null],
      ["opened", s.opened_at ? when(s.opened_at) : null],
      ["gates passed", s.gates_passed_at ? when(s.gates_passed_at) : null],
      ["finished", s.finished_at ? when(s.finished_at) : null],
    ]),
    h(
      "div",
      { class: "gates", "data-testid": "gates" },
      g.checks && (g.checks.required !== "none" || g.checks.results?.length) ? checksGate(g.checks) : null,
      g.soak ? soakGate(g.soak, fetchedAt) : null,
      g.window ? windowGate(g.window) : null,
      g.approvals ? approvalsGate(g.approvals) : null,
    ),
    s.verify
      ? h(
          "p",
          { class: "verify" },
          h("label", {}, `verify: step ${s.verify.step} of ${s.verify.steps} `, h("progress", { max: s.verify.steps, value: s.verify.step })),
          s.verify.started_at ? [" · since ", when(s.verify.started_at)] : null,
        )
      : null,
  );
}

function timeline(entries) {
  const move = (e) => {
    if (!e.from || e.from === e.to) return badge(e.to);
    return h("span", { class: "move" }, badge(e.from), h("span", { "aria-label": "to" }, " → "), badge(e.to));
  };
  return h(
    "ol",
    { class: "timeline", "data-testid": "timeline" },
    entries.map((e) =>
      h(
        "li",
        { "data-testid": "timeline-entry" },
        stamp(e.at),
        h("span", { class: "tl-stage" }, e.stage || "run"),
        move(e),
        h("span", { class: "tl-actor" }, e.actor),
        h("span", { class: "tl-reason" }, e.reason),
      ),
    ),
  );
}

async function runView(id) {
  const fetchedAt = Date.now();
  const [run, entries] = await Promise.all([api(`runs/${encodeURIComponent(id)}`), auditOf(id)]);
  const src = run.source ?? {};
  document.title = `${run.pipeline} ${run.version} · tollgate`;
  return h(
    "div",
    { class: "run", "data-testid": "run", "data-run": run.id, "data-status": run.status },
    h("p", {}, h("a", { href: "#/" }, "← pipelines")),
    h("h1", {}, `${run.pipeline} `, h("code", {}, run.version), " ", badge(run.status)),
    h("p", { class: "muted" }, `${run.host} · ${run.repo} · run ${run.id}`),
    facts([
      ["change", [src.pr ? extLink(src.pr_url, `#${src.pr}`) : null, " ", src.title || "", src.author ? ` by ${src.author}` : ""]],
      ["commit", src.sha ? [h("code", {}, shortSha(src.sha)), src.branch ? ` on ${src.branch}` : ""] : null],
      ["started", when(run.created_at)],
      ["finished", run.finished_at ? when(run.finished_at) : null],
      ["definition", run.definition_sha ? h("code", {}, shortSha(run.definition_sha)) : null],
      ...Object.entries(run.release ?? {}).map(([name, value]) => [`release.${name}`, h("code", {}, typeof value === "string" ? value : JSON.stringify(value))]),
    ]),
    stageGraph(run.stages, (s) => h("span", { class: `node ${statusClass(s.status)}` }, h("span", { class: "node-head" }, h("span", { class: "node-name" }, s.name), badge(s.status))), "stages of this run"),
    run.stages.map((s) => runStage(s, fetchedAt)),
    h("h2", {}, "Timeline"),
    entries.length ? timeline(entries) : h("p", { class: "muted" }, "No audit entries yet."),
  );
}

// ---- Routing and rendering --------------------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  if (hash === "/") return { name: "pipelines", view: pipelinesView };
  const run = /^\/runs\/([^/]+)$/.exec(hash);
  let id = null;
  try {
    id = run && decodeURIComponent(run[1]);
  } catch {} // malformed escapes: no such page
  if (id) return { name: "run", runId: id, view: () => runView(id) };
  return { name: "unknown", view: async () => errorView(`There is no page "${hash}".`) };
}

function errorView(message) {
  return h("div", {}, h("p", { class: "notice error", role: "alert" }, message), h("p", {}, h("a", { href: "#/" }, "← pipelines")));
}

function tokenForm(message) {
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true });
  return h(
    "form",
    {
      class: "card auth",
      "data-testid": "auth-form",
      onsubmit(event) {
        event.preventDefault();
        setToken(input.value.trim());
      },
    },
    h("h1", {}, "Sign in"),
    h("p", { class: "notice error", role: "alert" }, message),
    h("p", {}, "Enter an API token (see the ", h("code", {}, "api.tokens"), " section of tollgate's configuration). It is kept in this browser's local storage."),
    h("label", { for: "token" }, "API token"),
    h("span", { class: "row" }, input, h("button", { type: "submit" }, "Use token")),
  );
}

// Replaces the view, keeping the focus on the same link or button if it is still there.
function show(view) {
  const active = document.activeElement;
  const key = active && main.contains(active) ? active.getAttribute("data-key") ?? active.getAttribute("href") : null;
  main.replaceChildren(view);
  if (key) main.querySelector(`[data-key="${CSS.escape(key)}"], [href="${CSS.escape(key)}"]`)?.focus({ preventScroll: true });
  drawAllEdges();
}

let generation = 0; // a render whose generation is no longer current is dropped
let current = route();

// Renders the current route; `refresh`: the view is already shown and is being brought up to date,
// so a failure keeps it and says so above it.
async function render({ refresh = false } = {}) {
  const mine = ++generation;
  const target = route();
  current = target;
  try {
    const view = await target.view();
    if (mine !== generation) return;
    show(view);
    flash.replaceChildren();
  } catch (e) {
    if (mine !== generation) return;
    if (e.status === 401) {
      // A refresh must not replace the form the user may be typing into.
      if (!(refresh && main.querySelector("[data-testid=auth-form]"))) show(tokenForm(e.message));
    } else if (refresh) flash.replaceChildren(h("p", { class: "notice error", role: "alert" }, `Could not refresh: ${e.message}`));
    else show(errorView(e.message));
  }
}

// Audit events arrive in bursts (a transition writes several entries): refresh at most once per
// REFRESH_DELAY_MS, and never two refreshes at once.
let refreshTimer = 0;
let refreshing = false;
let refreshAgain = false;
function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(async () => {
    refreshTimer = 0;
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = true;
    await render({ refresh: true });
    refreshing = false;
    if (refreshAgain) {
      refreshAgain = false;
      scheduleRefresh();
    }
  }, REFRESH_DELAY_MS);
}

window.addEventListener("hashchange", async () => {
  await render();
  window.scrollTo(0, 0);
  main.focus({ preventScroll: true });
});

forget.addEventListener("click", () => setToken(""));

// ---- Live updates -----------------------------------------------------------------------------

function setLive(state, text, detail = "") {
  live.dataset.state = state;
  live.textContent = text;
  live.title = detail;
}

// The events of a text/event-stream body: {id, event, data}. Parsed here rather than with
// EventSource, which cannot send an Authorization header.
async function* serverEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = "";
  let data = [];
  let id = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    let text = buffer + value;
    // A chunk ending in "\r" may be the first half of "\r\n": keep it for the next chunk.
    const held = text.endsWith("\r") ? "\r" : "";
    text = held ? text.slice(0, -1) : text;
    const lines = text.split(/\r\n|\r|\n/);
    buffer = lines.pop() + held;
    for (const line of lines) {
      if (line === "") {
        if (data.length) yield { id, event: event || "message", data: data.join("\n") };
        event = "";
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue; // a comment: keep-alive
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const fieldValue = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = fieldValue;
      else if (field === "data") data.push(fieldValue);
      else if (field === "id") id = fieldValue;
    }
  }
}

// Resolves after `ms` or when `signal` aborts, whichever is first.
function pause(signal, ms = Infinity) {
  return new Promise((resolve) => {
    const timer = ms === Infinity ? 0 : setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });
}

function onAudit(data) {
  let entry = null;
  try {
    entry = JSON.parse(data);
  } catch {} // unreadable: refresh anyway
  // A run's page changes only with that run's entries; the pipelines page with anyone's.
  if (current.name === "run" && entry && entry.run_id !== current.runId) return;
  scheduleRefresh();
}

// Reads /api/v1/events for as long as the page is open. After an error it reconnects with
// exponential backoff (1 s to 30 s, jittered), sending Last-Event-ID so the server replays what
// was missed; after a 401 it waits for a token. A new token aborts the connection or the wait.
async function listen() {
  let lastId = null;
  let delay = 1000;
  for (;;) {
    stream = new AbortController();
    const { signal } = stream;
    const request = headers("text/event-stream");
    if (lastId !== null) request["last-event-id"] = lastId;
    try {
      const res = await fetch(apiUrl("events"), { headers: request, cache: "no-store", signal });
      if (res.status === 401) {
        res.body?.cancel();
        setLive("auth", "sign-in needed", "the event stream needs a token");
        await pause(signal);
        continue;
      }
      if (!res.ok || !res.body) throw new Error(`the event stream answered ${res.status}`);
      setLive("live", "live", "updates arrive as they happen");
      // The stream starts at the newest entry (or replays from lastId as far as the server can):
      // refresh once for anything written between the view's fetch and now.
      scheduleRefresh();
      delay = 1000;
      for await (const event of serverEvents(res.body)) {
        if (event.id !== null) lastId = event.id;
        if (event.event === "audit") onAudit(event.data);
      }
      throw new Error("the event stream ended");
    } catch (e) {
      if (signal.aborted) continue;
      setLive("reconnecting", "reconnecting…", `the event stream broke: ${e.message}`);
      await pause(signal, delay * (0.75 + Math.random() / 2));
      delay = Math.min(delay * 2, 30_000);
    }
  }
}

forget.hidden = !token;
setLive("connecting", "connecting…");
main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
render();
listen();
