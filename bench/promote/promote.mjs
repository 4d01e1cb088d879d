// Benchmark: promotion through the engine (issue "bench/promote"). Driven by bench/promote/run.sh;
// see its header for the knobs. Two parts, each on a fresh test Git host (tests/githost) and a
// fresh `tollgate serve` (tests/promote/world.mjs starts both on 127.0.0.1 ephemeral ports and
// stops them by pid):
//
//   latency     one application (acme/app), pipeline dev -> qa -> prod (acme/env-dev, env-qa,
//               env-prod), checks: none, merge: auto, no soak. RUNS source PRs merged one after
//               the other, each waiting for its run to succeed. For every stage transition
//               (dev merged -> qa PR open, qa merged -> prod PR open) the latency is measured on
//               the host's own clock:
//                 start = the host starting to send the merge webhook (pull_request.closed,
//                         merged) of stage N's PR: its delivery record's delivered_at - duration_ms;
//                 end   = stage N+1's PR open. Two readings: "open" = the host starting to send
//                         that PR's pull_request.opened webhook (an upper bound: the PR exists by
//                         then), and "POST" = the arrival of tollgate's POST .../pulls (a lower
//                         bound: the PR exists when the answer leaves). The target is judged on
//                         the upper bound.
//               The source merge -> dev PR open is reported too (not part of the target: it also
//               reads .tollgate.yaml from the source repository).
//
//   throughput  APPS applications acme/app-001.. (one pipeline each, dev -> qa -> prod) promoting
//               into three shared environment repositories (acme/env-dev, env-qa, env-prod), each
//               application to its own file apps/app-NNN/values.yaml — one GitOps repository per
//               environment, the common layout. The source PRs are merged while the host's
//               webhook points nowhere (deliveries recorded, not sent); then the webhook is
//               pointed at tollgate and the APPS merge deliveries are redelivered at once: all
//               runs start together. T0 = just before the redeliveries, T1 = the last run's
//               finished_at. Then: every run succeeded, exactly one PR per application and
//               stage, each merged once, no duplicate comment bodies on any PR, each values.yaml
//               on main holds its run's tag; tollgate's peak RSS (VmHWM).
//               The floor: the same host (tollgate not running; the webhook pointing at a sink
//               that answers 202), a script doing the same side effects directly with WORKERS
//               (= tollgate's engine.workers) at once, run just before and just after tollgate
//               (the machine is shared; the target uses the mean of the two rates): per application and stage, in order (stage N+1 queued when N merged):
//               git fetch + commit of values.yaml on a new branch + git push over HTTP (the git
//               CLI, from a clone per worker and repository), POST .../pulls, PUT .../merge.
//               Stages per minute of both, and the ratio.
//               Setups (SETUPS, run one after the other, each on a fresh host, store and floor):
//               "sqlite" (one `tollgate serve`), "pgN" (N replicas on one PostgreSQL database,
//               tests/promote/replicas.mjs; with N > 1 the host's webhook points at a round-robin
//               forwarder in this process), each replica with engine.workers = WORKERS or, as
//               "pgN:W", W. Per setup, besides the rate: API requests per stage (the host's request
//               log), what the engine wrote per stage (deliveries, consumed inputs, jobs), per
//               replica the jobs done (lease owner) and started (log), deliveries answered, which
//               replica led the events and the normaliser; on PostgreSQL the transactions
//               (pg_stat_database: net of this script's own psql sessions, calibrated before
//               tollgate starts, and of the idle replicas' rate, measured after), the server's CPU
//               and the advisory locks held and waited for (pg_locks, every second). The pollers
//               here use sqlAsync, so that the forwarder is never blocked behind a psql.
//
// Output: human-readable lines on stderr, one JSON object (all figures) on stdout.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";

import { BIN, WEBHOOK_SECRET, isPostgres, startGithost, startTollgate, testDatabase, writeConfig, sql, sqlAsync } from "../../tests/promote/world.mjs";
import { ownerReplica, replicaSet, startForwarder } from "../../tests/promote/replicas.mjs";

const execFileP = promisify(execFile);
const log = (...a) => process.stderr.write(a.join(" ") + "\n");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A stand-in for node:test's `t`: cleanups run in reverse order at the end (or on a signal).
const scopes = new Set();
function scope() {
  const fns = [];
  const sc = {
    after: (f) => fns.push(f),
    async close() {
      while (fns.length) {
        try {
          await fns.pop()();
        } catch (e) {
          log("cleanup:", e.message);
        }
      }
      scopes.delete(sc);
    },
  };
  scopes.add(sc);
  return sc;
}

function tempDir(t, tag) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tollgate-bench-promote-${tag}-`));
  t.after(() => {
    if (!process.env.KEEP) fs.rmSync(dir, { recursive: true, force: true });
    else log("kept", dir);
  });
  return dir;
}

function pipelineFor(name, file) {
  const stage = (s) => `      - name: ${s}
        repo: acme/env-${s}
        edits:
          - file: ${file}
            set: { image.tag: "{{release.version}}" }
        merge: auto
        gates:
          checks: none
`;
  return `version: 1
pipelines:
  - name: ${name}
    on:
      merged:
        branches: [main]
    release:
      version: "{{source.short_sha}}"
    stages:
${stage("dev")}${stage("qa")}${stage("prod")}`;
}
const STAGES = ["dev", "qa", "prod"];
const values = (app) => `# ${app} in this environment\nimage:\n  repository: ghcr.io/acme/${app}\n  tag: old # set by tollgate\n`;

// A request that failed before an answer (fetch's "fetch failed": the connection refused, reset
// or closed under it, e.g. a kept-alive one the host closed as it was reused) is tried again, up
// to 3 times, when it is idempotent (GET, PUT, DELETE), and said so; its cause joins the error.
const networkError = (e) => e instanceof TypeError && e.message === "fetch failed";
const describeError = (e) => (e?.cause ? `${e.message} (${e.cause.code ?? ""} ${e.cause.message ?? e.cause})` : String(e?.message ?? e));
function retrying(call, label) {
  return async (method, target, ...rest) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call(method, target, ...rest);
      } catch (e) {
        if (!networkError(e)) throw e;
        if (attempt >= 3 || !["GET", "PUT", "DELETE"].includes(method)) throw new Error(`${label} ${method} ${target}: ${describeError(e)}`, { cause: e });
        log(`${label} ${method} ${target}: ${describeError(e)}; trying again`);
        await sleep(200);
      }
    }
  };
}

// The host, tollgate's account (quota raised: a benchmark must not hit the rate limit), alice, acme.
async function host(t) {
  const started = await startGithost(t);
  const { child, info } = started;
  const admin = retrying(started.admin, "host admin");
  const bot = await admin("POST", "/users", { login: "tollgate-bot", x_access_token: true });
  const alice = await admin("POST", "/users", { login: "alice" });
  await admin("POST", "/orgs", { login: "acme" });
  await admin("PUT", "/rate-limit", { limit: 100_000_000, remaining: 100_000_000 });
  return { child, info, admin, bot, alice };
}

async function tollgateOn(t, dir, info, bot, workers) {
  writeConfig(dir, { apiUrl: info.api_url, token: bot.token, engine: workers ? { workers } : undefined, database: testDatabase(t) });
  return startTollgate(t, dir);
}

const deliveryStart = (d) => Date.parse(d.delivered_at) - (d.duration_ms ?? 0);

function pct(xs, p) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  // nearest-rank
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

// Waits for n runs to finish. `tollgate`: {q(query) -> rows (async), running(), stderr()}: one
// process or several replicas on one database.
async function waitRuns(tollgate, n, ms, onTick, every = 200) {
  const deadline = Date.now() + ms;
  let rows = [];
  while (Date.now() < deadline) {
    rows = await tollgate.q("SELECT status, COUNT(*) AS n FROM runs GROUP BY status");
    const by = Object.fromEntries(rows.map((r) => [r.status, r.n]));
    onTick?.(by);
    const done = (by.succeeded ?? 0) + (by.failed ?? 0) + (by.aborted ?? 0) + (by.superseded ?? 0);
    if (done >= n) return by;
    if (!tollgate.running()) throw new Error(`tollgate exited: ${tollgate.stderr().split("\n").slice(-20).join("\n")}`);
    await sleep(every);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${n} runs to finish; runs: ${JSON.stringify(rows)}; unfinished jobs: ${JSON.stringify(
    await tollgate.q("SELECT kind, stage, state, attempts, last_error FROM jobs WHERE state <> 'done' AND kind <> 'timer' LIMIT 20"),
  )}`);
}
// waitRuns' view of one `tollgate serve` (startTollgate).
const oneProcess = (tollgate) => ({ q: (query) => sqlAsync(tollgate.db, query), running: tollgate.running, stderr: () => tollgate.stderr });

function rssKb(pid, key) {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
// "POST /repos/{repo}/pulls/{n}/merge": a host request with its repository, numbers and commit ids
// taken out.
function requestKind(r) {
  return `${r.method} ${r.path.replace(/\?.*$/, "").replace(/\/repos\/acme\/[^/]+/, "/repos/{repo}").replace(/\/\d+(?=\/|$)/g, "/{n}").replace(/\/[0-9a-f]{40}/g, "/{sha}")}`;
}
function cpuMs(pid, children = false) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    // utime+stime (+ cutime+cstime: the reaped git processes of the host), USER_HZ = 100
    return ((Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0)) * 1000) / 100;
  } catch {
    return null;
  }
}

// The machine's CPU time (all cores, ms) from /proc/stat: busy (not idle or iowait) and total.
function machineCpu() {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: (total - f[3] - f[4]) * 10, total: total * 10 };
}
const machineSince = (a) => {
  const b = machineCpu();
  return { busy_s: +((b.busy - a.busy) / 1000).toFixed(1), busy_share: +((b.busy - a.busy) / (b.total - a.total)).toFixed(2) };
};

// The machine's 1-minute load average, sampled every 2 s while a phase runs (it is shared: the
// figures only compare when the load was alike).
function loadSampler() {
  const xs = [];
  const read = () => xs.push(Number(fs.readFileSync("/proc/loadavg", "utf8").split(" ")[0]));
  read();
  const timer = setInterval(read, 2000);
  return () => {
    clearInterval(timer);
    read();
    return +(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(2);
  };
}

async function pool(items, n, fn) {
  let i = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (i < items.length) {
        const k = i++;
        await fn(items[k], k);
      }
    }),
  );
}

// --------------------------------------------------------------------------------------- latency
async function latency({ runs, workers }) {
  const t = scope();
  try {
    const { info, admin, bot, alice } = await host(t);
    const dir = tempDir(t, "latency");
    const tollgate = await tollgateOn(t, dir, info, bot, workers);
    await admin("PUT", "/webhook", { url: `http://127.0.0.1:${tollgate.port}/hooks/github`, secret: WEBHOOK_SECRET });
    await admin("POST", "/repos", {
      owner: "acme",
      name: "app",
      files: { ".tollgate.yaml": pipelineFor("app", "apps/app/values.yaml"), "src/app.txt": "v1\n" },
      collaborators: { alice: "write", "tollgate-bot": "read" },
    });
    for (const s of STAGES) {
      await admin("POST", "/repos", { owner: "acme", name: `env-${s}`, files: { "apps/app/values.yaml": values("app") }, collaborators: { "tollgate-bot": "write", alice: "write" } });
    }
    await admin("DELETE", "/requests");
    const runDurations = [];
    const load = loadSampler();
    for (let i = 1; i <= runs; i++) {
      const t0 = Date.now();
      await admin("POST", "/repos/acme/app/commits", { branch: `change-${i}`, from: "main", files: { "src/app.txt": `v${i + 1}\n` }, user: "alice", message: `change ${i}` });
      const pr = await admin("POST", "/repos/acme/app/pulls", { head: `change-${i}`, base: "main", title: `Change ${i}`, user: "alice" });
      await admin("POST", `/repos/acme/app/pulls/${pr.number}/merge`, { user: "alice" });
      const by = await waitRuns(oneProcess(tollgate), i, 60_000);
      if ((by.succeeded ?? 0) !== i) throw new Error(`run ${i}: not every run succeeded: ${JSON.stringify(by)}`);
      runDurations.push(Date.now() - t0);
    }
    // Let the last deliveries go out, then read the host's records.
    await admin("GET", `/deliveries?event=pull_request&wait=0&timeout_ms=5000`);
    const deliveries = (await admin("GET", "/deliveries?event=pull_request")).filter((d) => d.status_code === 202);
    const requests = await admin("GET", "/requests");
    const runIds = sql(tollgate.db, "SELECT id FROM runs ORDER BY created_at").map((r) => r.id);
    const find = (repo, action, ref, merged) =>
      deliveries.find(
        (d) =>
          d.payload.repository.full_name === repo && d.action === action && d.payload.pull_request.head.ref === ref && (merged === undefined || d.payload.pull_request.merged === merged),
      );
    const transitions = []; // {from, to, upper, lower}
    const sourceToDev = [];
    for (const [i, id] of runIds.entries()) {
      const src = deliveries.find((d) => d.payload.repository.full_name === "acme/app" && d.action === "closed" && d.payload.pull_request.head.ref === `change-${i + 1}`);
      const devOpen = find("acme/env-dev", "opened", `tollgate/app/dev/${id}`);
      if (src && devOpen) sourceToDev.push(deliveryStart(devOpen) - deliveryStart(src));
      for (let s = 0; s + 1 < STAGES.length; s++) {
        const merged = find(`acme/env-${STAGES[s]}`, "closed", `tollgate/app/${STAGES[s]}/${id}`, true);
        const opened = find(`acme/env-${STAGES[s + 1]}`, "opened", `tollgate/app/${STAGES[s + 1]}/${id}`);
        if (!merged || !opened) throw new Error(`run ${id}: missing the ${STAGES[s]} merge or the ${STAGES[s + 1]} opened delivery`);
        const start = deliveryStart(merged);
        const post = requests.find((r) => r.method === "POST" && r.path.startsWith(`/repos/acme/env-${STAGES[s + 1]}/pulls`) && r.status === 201 && Date.parse(r.at) >= start - 1);
        // Where the time goes, from tollgate's own log (same clock): ms since `start` of each step.
        const at = (msg, kind, stage) => {
          const l = tollgate.logs.find((x) => x.msg === msg && x.kind === kind && x.run === id && x.stage === stage);
          return l ? Date.parse(l.ts) - start : null;
        };
        const steps = {
          merge_pr_done: at("job finished", "merge_pr", STAGES[s]),
          prepare_started: at("job started", "prepare_branch", STAGES[s + 1]),
          prepare_done: at("job finished", "prepare_branch", STAGES[s + 1]),
          open_pr_started: at("job started", "open_pr", STAGES[s + 1]),
          post_arrived: post ? Date.parse(post.at) - start : null,
          pr_open: deliveryStart(opened) - start,
        };
        transitions.push({ run: id, from: STAGES[s], to: STAGES[s + 1], upper: deliveryStart(opened) - start, lower: post ? Date.parse(post.at) - start : null, steps });
      }
    }
    const upper = transitions.map((x) => x.upper);
    // Median of each step's share (the difference to the previous step).
    const order = ["merge_pr_done", "prepare_started", "prepare_done", "open_pr_started", "post_arrived", "pr_open"];
    const breakdown = {};
    for (const [i, k] of order.entries()) {
      const xs = transitions.map((x) => (x.steps[k] === null || (i > 0 && x.steps[order[i - 1]] === null) ? null : x.steps[k] - (i > 0 ? x.steps[order[i - 1]] : 0))).filter((v) => v !== null);
      breakdown[k] = pct(xs, 50);
    }
    const lower = transitions.map((x) => x.lower).filter((x) => x !== null);
    // What tollgate does per stage (for the report): API requests by kind over the whole phase.
    const byKind = {};
    for (const r of requests) {
      const k = requestKind(r);
      byKind[k] = (byKind[k] ?? 0) + 1;
    }
    const res = {
      runs,
      samples: transitions.length,
      p50_ms: pct(upper, 50),
      p99_ms: pct(upper, 99),
      max_ms: Math.max(...upper),
      p50_post_ms: pct(lower, 50),
      p99_post_ms: pct(lower, 99),
      source_to_dev_p50_ms: pct(sourceToDev, 50),
      source_to_dev_p99_ms: pct(sourceToDev, 99),
      run_p50_ms: pct(runDurations, 50),
      breakdown_p50_ms: breakdown,
      load_avg: load(),
      api_requests_per_run: Object.fromEntries(Object.entries(byKind).map(([k, v]) => [k, +(v / runs).toFixed(2)])),
      peak_rss_kb: rssKb(tollgate.proc.pid, "VmHWM"),
      transitions,
    };
    log(`latency: ${runs} runs, ${transitions.length} transitions: p50 ${res.p50_ms} ms, p99 ${res.p99_ms} ms (POST arrival: p50 ${res.p50_post_ms}, p99 ${res.p99_post_ms}); source->dev p50 ${res.source_to_dev_p50_ms} ms`);
    return res;
  } finally {
    await t.close();
  }
}

// ------------------------------------------------------------------------------------ throughput
async function listAll(api, repo, token) {
  const out = [];
  for (let page = 1; ; page++) {
    const res = await fetch(`${api}/repos/${repo}/pulls?state=all&per_page=100&page=${page}`, { headers: { authorization: `Bearer ${token}` } });
    if (res.status !== 200) throw new Error(`list ${repo}: ${res.status}`);
    const prs = await res.json();
    out.push(...prs);
    if (prs.length < 100) return out;
  }
}

async function api(info, token, method, target, body) {
  const res = await fetch(info.api_url + target, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "application/vnd.github+json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${target}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// The setups the throughput part runs in (SETUPS): "sqlite" (one `tollgate serve` on SQLite),
// "pgN" (N replicas on one PostgreSQL database; with N > 1 behind a round-robin forwarder), each
// replica with engine.workers = WORKERS, or W with the suffix ":W" (e.g. "pg3:2").
export function parseSetup(spec, workers) {
  const m = /^(sqlite|pg([1-9]\d*))(?::([1-9]\d*))?$/.exec(spec);
  if (!m) throw new Error(`unknown setup '${spec}' (sqlite, pgN, with :W for W workers per replica)`);
  const store = m[1] === "sqlite" ? "sqlite" : "postgres";
  const replicas = store === "sqlite" ? 1 : Number(m[2]);
  const per = m[3] ? Number(m[3]) : workers;
  return { name: spec, store, replicas, workers_per_replica: per, workers_total: per * replicas };
}

// One world per setup: a fresh host with the APPS applications, their source merges (webhook
// pointing nowhere: recorded, not sent) and the three environment repositories.
async function throughputWorld(t, apps) {
  const names = Array.from({ length: apps }, (_, i) => `app-${String(i + 1).padStart(3, "0")}`);
  const { child, info, admin, bot } = await host(t);
  const hostCpu = () => (cpuMs(child.pid, true) ?? 0) + (cpuMs(info.lighttpd_pid, true) ?? 0);
  // The host's CPU split: its Node process (REST API, webhooks) and the git processes lighttpd runs.
  const hostSplit = () => ({ node: cpuMs(child.pid) ?? 0, git: (cpuMs(info.lighttpd_pid, true) ?? 0) + (cpuMs(child.pid, true) ?? 0) - (cpuMs(child.pid) ?? 0) });
  const splitSince = (a) => { const b = hostSplit(); return { node_s: +((b.node - a.node) / 1000).toFixed(1), git_s: +((b.git - a.git) / 1000).toFixed(1) }; };
  const tSetup = Date.now();
  for (const s of STAGES) {
    await admin("POST", "/repos", {
      owner: "acme",
      name: `env-${s}`,
      files: Object.fromEntries(names.map((a) => [`apps/${a}/values.yaml`, values(a)])),
      collaborators: { "tollgate-bot": "write", alice: "write" },
    });
  }
  await pool(names, 4, async (a) => {
    await admin("POST", "/repos", {
      owner: "acme",
      name: a,
      files: { ".tollgate.yaml": pipelineFor(a, `apps/${a}/values.yaml`), "src/app.txt": "v1\n" },
      collaborators: { alice: "write", "tollgate-bot": "read" },
    });
  });
  const sourceSha = {};
  await pool(names, 4, async (a) => {
    await admin("POST", `/repos/acme/${a}/commits`, { branch: "change", from: "main", files: { "src/app.txt": "v2\n" }, user: "alice", message: "change" });
    const pr = await admin("POST", `/repos/acme/${a}/pulls`, { head: "change", base: "main", title: "Change", user: "alice" });
    sourceSha[a] = (await admin("POST", `/repos/acme/${a}/pulls/${pr.number}/merge`, { user: "alice" })).sha;
  });
  const setupSeconds = +((Date.now() - tSetup) / 1000).toFixed(1);
  log(`throughput: set up ${apps} applications and 3 environment repositories in ${setupSeconds} s`);
  const merges = (await admin("GET", "/deliveries?event=pull_request&action=closed")).filter((d) => d.payload.pull_request.merged);
  if (merges.length !== apps) throw new Error(`expected ${apps} source merge deliveries, got ${merges.length}`);
  return { t, child, info, admin, bot, names, sourceSha, merges, hostCpu, hostSplit, splitSince, setupSeconds, sink: null };
}

// The floor on a world's host (tollgate not running); the host keeps sending its webhooks (PR
// opened, closed) to a sink that answers 202.
async function runFloor(world, workers, tag) {
  const { t, info, admin, bot, names } = world;
  if (!world.sink) {
    const http = await import("node:http");
    const sink = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => res.writeHead(202).end());
    });
    await new Promise((r) => sink.listen(0, "127.0.0.1", r));
    t.after(() => {
      sink.closeAllConnections?.();
      sink.close();
    });
    world.sink = sink;
  }
  await admin("PUT", "/webhook", { url: `http://127.0.0.1:${world.sink.address().port}/`, secret: WEBHOOK_SECRET, ping: false });
  await admin("DELETE", "/requests");
  const h0 = world.hostCpu();
  const s0 = world.hostSplit();
  const d0 = cpuMs(process.pid, true);
  const m0 = machineCpu();
  const load = loadSampler();
  const f = await floorRun({ info, bot, names, workers, tag });
  f.load_avg = load();
  f.machine_cpu = machineSince(m0);
  // the git CLI the floor runs is this process's children
  f.driver_cpu_s = +((cpuMs(process.pid, true) - d0) / 1000).toFixed(1);
  f.host_cpu_s = +((world.hostCpu() - h0) / 1000).toFixed(1);
  f.machine_cpu.other_s = +(f.machine_cpu.busy_s - f.host_cpu_s - f.driver_cpu_s).toFixed(1);
  f.host_cpu_split = world.splitSince(s0);
  f.api_requests = (await admin("GET", "/requests")).length;
  await admin("PUT", "/webhook", { url: null, ping: false });
  log(`throughput: floor ${tag}: ${f.seconds} s: ${f.stages_per_min} stages/min (load ${f.load_avg})`);
  return f;
}

// How often the throughput part polls the store (runs finished, side effects done; on PostgreSQL
// the lock samples). The times it reports come from the store (finished_at), not from the polls;
// each poll is a python3 or psql process, CPU the machine's two cores would otherwise give tollgate.
const POLL_MS = 1000;

// ---- PostgreSQL's side of a setup: its counters, its CPU, and who holds or waits for tollgate's
// advisory locks (docs/engine.md, "Several replicas on PostgreSQL").
const LOCKS = ["tollgate:runs", "tollgate:intake", "tollgate:events", "tollgate:normalizer", ...STAGES.map((s) => `tollgate:repo\ngithub\nacme/env-${s}`)];
const lockLabel = (name) => name.replace(/^tollgate:repo\ngithub\nacme\//, "repo ");

function procStat(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return { ppid: Number(f[1]), self: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
  } catch {
    return null;
  }
}

async function pgWatch(db) {
  const app = new URL(db).searchParams.get("application_name");
  let calls = 0; // the harness's own psql sessions during the measurement (each a few transactions)
  const q = (query, params) => {
    calls += 1;
    return sqlAsync(db, query, params);
  };
  // The postmaster (its data directory's postmaster.pid): the server's CPU is its own, its live
  // backends' and its reaped children's (the sessions that ended). The whole server: other users of
  // a shared one count too.
  let postmaster = null;
  try {
    const [{ dir }] = sql(db, "SELECT current_setting('data_directory') AS dir");
    postmaster = Number(fs.readFileSync(path.join(dir, "postmaster.pid"), "utf8").split("\n")[0]);
  } catch {}
  const cpu = () => {
    if (!postmaster) return null;
    const pm = procStat(postmaster);
    if (!pm) return null;
    let ticks = pm.self + pm.children;
    for (const d of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(d)) continue;
      const s = procStat(d);
      if (s && s.ppid === postmaster) ticks += s.self;
    }
    return ticks * 10; // ms (USER_HZ = 100)
  };
  const stats = async () => ({
    at: Date.now(),
    calls,
    cpu_ms: cpu(),
    ...(await q(
      "SELECT xact_commit, xact_rollback, active_time, idle_in_transaction_time, tup_inserted, tup_updated, tup_deleted, tup_returned FROM pg_stat_database WHERE datname = current_database()",
    ))[0],
  });
  // Transactions per harness session, measured before tollgate starts (nothing else of ours runs).
  const c0 = await stats();
  for (let i = 0; i < 10; i++) await q("SELECT 1 AS one");
  const c1 = await stats();
  const perCall = (c1.xact_commit + c1.xact_rollback - c0.xact_commit - c0.xact_rollback) / (c1.calls - c0.calls);
  // Lock sampling: every POLL_MS, per lock, how many of this schema's sessions hold it and wait for it.
  const keys = LOCKS.map((n) => `(${n.split("\n").map((p) => `'${p}'`).join(" || chr(10) || ")})`).join(", ");
  const sampleSql =
    // (a lock's key: its name's hash; since b26bfa2 the name is prefixed with the schema's, "t_.../")
    `WITH names(name) AS (VALUES ${keys}), k AS (SELECT name, hashtextextended(name, 0) AS key FROM names ` +
    "UNION ALL SELECT name, hashtextextended(COALESCE(current_schema(), '') || '/' || name, 0) FROM names) " +
    "SELECT COALESCE(k.name, 'other') AS lock, l.granted AS granted, COUNT(*) AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid " +
    "LEFT JOIN k ON l.classid::bigint = ((k.key >> 32) & 4294967295) AND l.objid::bigint = (k.key & 4294967295) " +
    `WHERE l.locktype = 'advisory' AND a.application_name = '${app}' GROUP BY 1, 2 ` +
    "UNION ALL SELECT 'sessions ' || COALESCE(a.state, '?'), true, COUNT(*) FROM pg_stat_activity a WHERE a.application_name = '" + app + "' GROUP BY a.state";
  const samples = [];
  let timer = null;
  let busy = false;
  const sampler = {
    start() {
      timer = setInterval(async () => {
        if (busy) return;
        busy = true;
        try {
          samples.push(await q(sampleSql));
        } catch (e) {
          log("lock sample:", e.message);
        } finally {
          busy = false;
        }
      }, POLL_MS);
    },
    stop() {
      clearInterval(timer);
      // Per lock: the share of samples it was held in, mean holders and mean waiters.
      const out = {};
      for (const s of samples) {
        for (const r of s) {
          const key = r.lock.startsWith("sessions ") ? r.lock : lockLabel(r.lock);
          out[key] ??= { held: 0, holders: 0, waiters: 0 };
          if (r.granted) {
            out[key].held += 1;
            out[key].holders += r.n;
          } else out[key].waiters += r.n;
        }
      }
      const n = samples.length || 1;
      return {
        samples: samples.length,
        locks: Object.fromEntries(
          Object.entries(out).map(([k, v]) => [
            k,
            k.startsWith("sessions ")
              ? { mean: +(v.holders / n).toFixed(2) }
              : { held_share: +(v.held / n).toFixed(2), mean_waiters: +(v.waiters / n).toFixed(2), waiters_while_held: v.held ? +(v.waiters / v.held).toFixed(2) : 0 },
          ]),
        ),
      };
    },
  };
  return { q, stats, perCall, sampler, calls: () => calls, postmaster };
}

// A setup's tollgate phase on a world: its replicas started, the merge deliveries redelivered at
// once, the runs waited for, the checks made; returns the figures.
async function tollgatePhase(t, world, setup, timeoutMs) {
  const { info, admin, bot, names, merges, sourceSha } = world;
  const apps = names.length;
  const stages = apps * STAGES.length;
  const database = testDatabase(t, { store: setup.store });
  const set = replicaSet(t, { count: setup.replicas, apiUrl: info.api_url, token: bot.token, engine: { workers: setup.workers_per_replica }, database, prefix: "tollgate-bench-promote-replica-" });
  const db = set.db;
  const pg = isPostgres(db) ? await pgWatch(db) : null;
  const q = pg ? pg.q : (query, params) => sqlAsync(db, query, params);
  for (const r of set.replicas) await set.start(r);
  const servers = set.replicas.map((r) => r.server);
  let forwarder = null;
  if (servers.length === 1) {
    await admin("PUT", "/webhook", { url: `http://127.0.0.1:${servers[0].port}/hooks/github`, secret: WEBHOOK_SECRET, ping: false });
  } else {
    forwarder = await startForwarder(t, () => set.up().map((r) => ({ name: r.name, port: r.server.port })));
    await admin("PUT", "/webhook", { url: forwarder.url, secret: WEBHOOK_SECRET, ping: false });
  }
  await admin("DELETE", "/requests");
  // PostgreSQL's counters lag by up to ~10 s for sessions gone idle: let the start-up's settle.
  if (pg) await sleep(11_000);
  const running = () => servers.every((s) => s.running());
  const rssIdle = servers.map((s) => rssKb(s.pid, "VmRSS"));
  const cpu0 = servers.map((s) => cpuMs(s.pid));
  const hostCpu0 = world.hostCpu();
  const split0 = world.hostSplit();
  const driver0 = cpuMs(process.pid, true); // with its reaped children (psql, python3)
  const machine0 = machineCpu();
  const pg0 = pg ? await pg.stats() : null;
  pg?.sampler.start();
  const load = loadSampler();
  const T0 = Date.now();
  await Promise.all(merges.map((d) => admin("POST", `/deliveries/${d.id}/redeliver`)));
  let lastLog = 0;
  const by = await waitRuns({ q, running, stderr: () => servers.map((s) => s.stderr.split("\n").slice(-10).join("\n")).join("\n") }, apps, timeoutMs, (b) => {
    if (Date.now() - lastLog > 10_000) {
      lastLog = Date.now();
      log(`  ${((Date.now() - T0) / 1000).toFixed(0)} s: runs ${JSON.stringify(b)}, RSS ${servers.map((s) => rssKb(s.pid, "VmRSS")).join(" + ")} kB`);
    }
  }, POLL_MS);
  const T1 = Number((await q("SELECT MAX(finished_at) AS t FROM runs"))[0].t);
  // Status updates give way to promotions when the workers are busy, so some finish after the
  // runs: wait for every side effect (not the leftover resync timers) to be done, and say when.
  while ((await q("SELECT COUNT(*) AS n FROM jobs WHERE state IN ('pending', 'leased') AND kind <> 'timer'"))[0].n > 0) {
    if (Date.now() - T0 > timeoutMs) break;
    await sleep(POLL_MS);
  }
  const Tdrained = Number((await q("SELECT MAX(finished_at) AS t FROM jobs WHERE kind <> 'timer'"))[0].t);
  const locks = pg?.sampler.stop();
  const cpu1 = servers.map((s) => cpuMs(s.pid));
  const hostCpu1 = world.hostCpu();
  const split1 = world.splitSince(split0);
  const driver1 = cpuMs(process.pid, true) - driver0;
  const machine1 = machineSince(machine0);
  const loadAvg = load();
  const peakRss = servers.map((s) => rssKb(s.pid, "VmHWM"));
  const wallS = (T1 - T0) / 1000;
  const drainedS = (Tdrained - T0) / 1000;
  const rate = stages / (wallS / 60);
  log(`throughput: ${setup.name}: ${apps} runs in ${wallS.toFixed(1)} s: ${rate.toFixed(0)} stages/min (all side effects: ${drainedS.toFixed(1)} s); runs ${JSON.stringify(by)}; peak RSS ${peakRss.map((k) => (k / 1024).toFixed(1)).join(" + ")} MB`);

  // PostgreSQL: transactions over the phase, net of the harness's own sessions and of what the
  // idle replicas do (measured over the 11 s after, when the counters have caught up).
  let database_figures = null;
  if (pg) {
    const tEnd = Date.now();
    await sleep(11_000);
    const pg1 = await pg.stats();
    await sleep(11_000);
    const pg2 = await pg.stats();
    const xacts = (a, b) => b.xact_commit + b.xact_rollback - a.xact_commit - a.xact_rollback;
    const idlePerS = (xacts(pg1, pg2) - (pg2.calls - pg1.calls) * pg.perCall) / ((pg2.at - pg1.at) / 1000);
    const idleCpuPerS = pg1.cpu_ms !== null ? (pg2.cpu_ms - pg1.cpu_ms) / ((pg2.at - pg1.at) / 1000) : null;
    const raw = xacts(pg0, pg1);
    const harness = (pg1.calls - pg0.calls) * pg.perCall;
    const idle = idlePerS * ((pg1.at - tEnd) / 1000);
    const net = raw - harness - idle;
    const cpuMsRun = pg0.cpu_ms !== null ? pg1.cpu_ms - pg0.cpu_ms - (idleCpuPerS ?? 0) * ((pg1.at - tEnd) / 1000) : null;
    const inTx = pg1.active_time - pg0.active_time + pg1.idle_in_transaction_time - pg0.idle_in_transaction_time;
    database_figures = {
      transactions: Math.round(net),
      transactions_raw: raw,
      harness_transactions: Math.round(harness),
      harness_transactions_per_session: +pg.perCall.toFixed(2),
      idle_transactions_per_s: +idlePerS.toFixed(1),
      transactions_per_stage: +(net / stages).toFixed(1),
      transactions_per_s: +(net / drainedS).toFixed(1),
      rollbacks: pg1.xact_rollback - pg0.xact_rollback,
      // Statement time (active) and time inside transactions between statements (idle in
      // transaction), summed over sessions, per transaction: the mean transaction's time in the server.
      active_ms_per_transaction: +((pg1.active_time - pg0.active_time) / raw).toFixed(3),
      in_transaction_ms_per_transaction: +(inTx / raw).toFixed(3),
      rows_written: pg1.tup_inserted + pg1.tup_updated + pg1.tup_deleted - pg0.tup_inserted - pg0.tup_updated - pg0.tup_deleted,
      server_cpu_s: cpuMsRun !== null ? +(cpuMsRun / 1000).toFixed(1) : null,
      server_cpu_ms_per_transaction: cpuMsRun !== null ? +(cpuMsRun / net).toFixed(3) : null,
      locks,
    };
    log(`throughput: ${setup.name}: PostgreSQL: ${database_figures.transactions} transactions (${database_figures.transactions_per_stage} per stage, ${database_figures.transactions_per_s}/s), server CPU ${database_figures.server_cpu_s} s; locks ${JSON.stringify(locks.locks)}`);
  }

  // ---- correctness: duplicates, merges, contents
  const problems = [];
  if ((by.succeeded ?? 0) !== apps) problems.push(`runs: ${JSON.stringify(by)}`);
  for (const s of STAGES) {
    const prs = await listAll(info.api_url, `acme/env-${s}`, bot.token);
    const count = {};
    for (const p of prs) {
      if (!p.head.ref.startsWith("tollgate/")) continue; // the floor's
      const app = p.head.ref.split("/")[1];
      count[app] = (count[app] ?? 0) + 1;
      if (!p.merged_at) problems.push(`env-${s}#${p.number} (${p.head.ref}) not merged`);
      if (p.user.login !== "tollgate-bot") problems.push(`env-${s}#${p.number} opened by ${p.user.login}`);
    }
    for (const a of names) if (count[a] !== 1) problems.push(`env-${s}: ${count[a] ?? 0} PRs for ${a}`);
  }
  const requests = await admin("GET", "/requests");
  const successes = (re, ok) => {
    const m = {};
    for (const r of requests) {
      const x = re.exec(r.path.replace(/\?.*$/, ""));
      if (x && r.method === ok.method && r.status === ok.status) m[x[1]] = (m[x[1]] ?? 0) + 1;
    }
    return m;
  };
  const prCreates = successes(/^\/repos\/acme\/(env-[a-z]+)\/pulls$/, { method: "POST", status: 201 });
  const mergesOk = successes(/^\/repos\/acme\/(env-[a-z]+\/pulls\/\d+)\/merge$/, { method: "PUT", status: 200 });
  const commentPosts = successes(/^\/repos\/acme\/(env-[a-z]+\/issues\/\d+)\/comments$/, { method: "POST", status: 201 });
  const totalCreates = Object.values(prCreates).reduce((a, b) => a + b, 0);
  if (totalCreates !== stages) problems.push(`${totalCreates} successful PR creations, expected ${stages}`);
  for (const [pr, n] of Object.entries(mergesOk)) if (n > 1) problems.push(`${pr}: merged ${n} times`);
  const totalMerges = Object.values(mergesOk).reduce((a, b) => a + b, 0);
  if (totalMerges !== stages) problems.push(`${totalMerges} successful merges, expected ${stages}`);
  // Comments: every merged PR carries one status comment, showing the stage promoted; no PR
  // carries the same body twice.
  let comments = 0;
  const commented = new Set(Object.keys(commentPosts));
  for (const merged of Object.keys(mergesOk)) {
    const key = merged.replace("/pulls/", "/issues/");
    const list = await api(info, bot.token, "GET", `/repos/acme/${key}/comments?per_page=100`);
    comments += list.length;
    const bodies = list.map((c) => c.body);
    if (new Set(bodies).size !== bodies.length) problems.push(`${key}: duplicate comments`);
    const status = bodies.filter((b) => b.includes("<!-- tollgate:status "));
    if (status.length !== 1 || !/promoted/.test(status[0])) problems.push(`${key}: ${status.length} status comments${status.length ? `, the first saying ${JSON.stringify(status[0].slice(0, 200))}` : ""}${commented.has(key) ? "" : " (none posted)"}`);
  }
  // The environments hold each run's release.
  await pool(names, 8, async (a) => {
    for (const s of STAGES) {
      const res = await fetch(`${info.api_url}/repos/acme/env-${s}/contents/apps/${a}/values.yaml?ref=main`, {
        headers: { authorization: `Bearer ${bot.token}`, accept: "application/vnd.github.raw" },
      });
      const text = await res.text();
      if (!new RegExp(`tag: "?${sourceSha[a].slice(0, 7)}"? # set by tollgate\n`).test(text)) problems.push(`env-${s} ${a}: values.yaml is ${JSON.stringify(text)}`);
    }
  });
  const apiErrors = {};
  for (const r of requests) if (r.status >= 400) apiErrors[`${r.method} ${requestKind(r)} ${r.status}`] = (apiErrors[`${r.method} ${requestKind(r)} ${r.status}`] ?? 0) + 1;
  const jobStats = sql(db, "SELECT kind, COUNT(*) AS n, SUM(CASE WHEN state = 'done' THEN 1 ELSE 0 END) AS done, SUM(CASE WHEN attempts > 1 THEN 1 ELSE 0 END) AS retried, SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END) AS failed FROM jobs GROUP BY kind ORDER BY kind");
  // What the engine wrote (portable, both stores): deliveries taken in, inputs consumed (by kind of
  // key), audit rows, jobs. Each consumed input and each job finished is (at least) one
  // transaction that changes runs; each claim is one more.
  const count = (query) => Number(sql(db, query)[0].n);
  const consumedBy = {};
  for (const { key } of sql(db, "SELECT key FROM consumed")) {
    const kind = String(key).split(":")[0];
    consumedBy[kind] = (consumedBy[kind] ?? 0) + 1;
  }
  const engine = {
    deliveries: count("SELECT COUNT(*) AS n FROM deliveries"),
    consumed: consumedBy,
    audit_rows: count("SELECT COUNT(*) AS n FROM audit"),
    jobs_finished: count("SELECT COUNT(*) AS n FROM jobs WHERE state IN ('done', 'failed') AND kind <> 'timer'"),
    timers_pending: count("SELECT COUNT(*) AS n FROM jobs WHERE state = 'pending' AND kind = 'timer'"),
  };
  const consumedTotal = Object.values(consumedBy).reduce((a, b) => a + b, 0);
  engine.per_stage = {
    deliveries: +(engine.deliveries / stages).toFixed(2),
    consumed: +(consumedTotal / stages).toFixed(2),
    jobs_finished: +(engine.jobs_finished / stages).toFixed(2),
    audit_rows: +(engine.audit_rows / stages).toFixed(2),
    // run-changing transactions counted from rows: inputs consumed + jobs finished (their results)
    run_transactions: +((consumedTotal + engine.jobs_finished) / stages).toFixed(2),
  };
  // Who did the work: per replica, jobs finished (their lease's owner), jobs started (its log),
  // deliveries answered (the forwarder), and which replica led the events and the normaliser.
  const per = Object.fromEntries(set.replicas.map((r, i) => [r.name, {
    peak_rss_kb: peakRss[i],
    idle_rss_kb: rssIdle[i],
    cpu_s: +((cpu1[i] - cpu0[i]) / 1000).toFixed(1),
    jobs_started: r.server.logs.filter((l) => l.msg === "job started").length,
    jobs_done: 0,
    deliveries_answered: forwarder ? (forwarder.stats.answered_by[r.name] ?? 0) : undefined,
    events_leader: r.server.logs.some((l) => l.msg === "this replica applies deliveries now"),
    normaliser_leader: r.server.logs.some((l) => l.msg === "this replica normalises deliveries now"),
    errors: r.server.logs.filter((l) => l.level === "error").length,
    warnings: r.server.logs.filter((l) => l.level === "warn").length,
  }]));
  for (const j of sql(db, "SELECT lease_owner, COUNT(*) AS n FROM jobs WHERE state = 'done' AND kind <> 'timer' GROUP BY lease_owner")) {
    const name = ownerReplica(j.lease_owner);
    if (per[name]) per[name].jobs_done += j.n;
  }
  const sum = (k) => Object.values(per).reduce((a, p) => a + (p[k] ?? 0), 0);
  // Job durations from the logs ("job started" to "job finished" of one job on one replica: the
  // host calls and git work, and the transaction that applies the result), by kind; and how busy
  // the workers were: their summed job time over workers x the time to the last side effect.
  const durations = {};
  let busyMs = 0;
  for (const r of set.replicas) {
    const began = new Map();
    for (const l of r.server.logs) {
      if (l.msg === "job started") began.set(l.job, Date.parse(l.ts));
      else if (l.msg === "job finished" && began.has(l.job)) {
        const d = Date.parse(l.ts) - began.get(l.job);
        (durations[l.kind] ??= []).push(d);
        busyMs += d;
        began.delete(l.job);
      }
    }
  }
  const jobMs = Object.fromEntries(Object.entries(durations).sort().map(([k, xs]) => [k, { n: xs.length, p50: pct(xs, 50), p90: pct(xs, 90), mean: Math.round(xs.reduce((a, b) => a + b, 0) / xs.length) }]));
  const workerBusy = +(busyMs / (setup.workers_total * drainedS * 1000)).toFixed(2);
  // Log lines at warn or error level, by message (the first few of each kept).
  const logIssues = {};
  for (const r of set.replicas) {
    for (const l of r.server.logs) {
      if (l.level !== "warn" && l.level !== "error" && !l.raw) continue;
      const k = `${r.name} ${l.level ?? "raw"}: ${l.msg ?? l.raw}`;
      logIssues[k] ??= { n: 0, first: [] };
      logIssues[k].n += 1;
      if (logIssues[k].first.length < 2) logIssues[k].first.push(l);
    }
  }
  log(`throughput: ${setup.name}: checks: ${problems.length ? problems.slice(0, 20).join("; ") : "all runs succeeded, one PR per application and stage, each merged once, no duplicate comment, every values.yaml updated"}`);
  const byKind = {};
  for (const r of requests) byKind[requestKind(r)] = (byKind[requestKind(r)] ?? 0) + 1;
  // What the machine's CPU did besides tollgate, the host, this script and PostgreSQL: other work.
  machine1.other_s = +(machine1.busy_s - sum("cpu_s") - (hostCpu1 - hostCpu0) / 1000 - driver1 / 1000 - (database_figures?.server_cpu_s ?? 0)).toFixed(1);
  const result = {
    tollgate: {
      seconds: +wallS.toFixed(2),
      stages_per_min: +rate.toFixed(1),
      // until the last status update was done too
      drained_seconds: +drainedS.toFixed(2),
      drained_stages_per_min: +(stages / (drainedS / 60)).toFixed(1),
      peak_rss_kb: sum("peak_rss_kb"), // the replicas' sum
      peak_rss_kb_max: Math.max(...peakRss),
      idle_rss_kb: sum("idle_rss_kb"),
      cpu_s: +sum("cpu_s").toFixed(1),
      host_cpu_s: +((hostCpu1 - hostCpu0) / 1000).toFixed(1),
      host_cpu_split: split1,
      // the benchmark's own process (its polls, and with several replicas the forwarder)
      driver_cpu_s: +(driver1 / 1000).toFixed(1),
      load_avg: loadAvg,
      // the whole machine's CPU over the phase: busy core-seconds and share of all cores (the
      // figures above: tollgate, the host, the benchmark; PostgreSQL's in `database`; the rest is
      // other work on the machine)
      machine_cpu: machine1,
      api_requests: requests.length,
      api_requests_per_stage_total: +(requests.length / stages).toFixed(2),
      api_requests_per_stage: Object.fromEntries(Object.entries(byKind).map(([k, v]) => [k, +(v / stages).toFixed(2)])),
      api_errors: apiErrors,
      comments,
      jobs: jobStats,
      job_ms: jobMs,
      worker_time_per_stage_ms: Math.round(busyMs / stages),
      worker_busy_share: workerBusy,
      engine,
      replicas: per,
      forwarder: forwarder ? forwarder.stats : undefined,
      log_issues: logIssues,
    },
    database: database_figures ?? undefined,
    problems,
  };
  for (const s of servers) s.kill("SIGTERM");
  for (const s of servers) await s.exit;
  return result;
}

async function throughput({ apps, workers, timeoutMs, floor, floorMode, setups }) {
  const stages = apps * STAGES.length;
  const out = { apps, stages, workers, floor_mode: floor ? floorMode : "none", setups: [] };
  for (const [i, spec] of setups.entries()) {
    const setup = parseSetup(spec, workers);
    const res = { setup: setup.name, store: setup.store, replicas: setup.replicas, workers_per_replica: setup.workers_per_replica, workers_total: setup.workers_total };
    out.setups.push(res);
    log(`\n=== throughput, setup ${setup.name}: ${setup.store}, ${setup.replicas} replica(s) x ${setup.workers_per_replica} workers`);
    const t = scope();
    try {
      const world = await throughputWorld(t, apps);
      res.world_setup_s = world.setupSeconds;
      if (floor && (floorMode === "each" || i === 0)) res.floor_before = await runFloor(world, workers, "before");
      Object.assign(res, await tollgatePhase(t, world, setup, timeoutMs));
      if (floor && (floorMode === "each" || i === setups.length - 1)) res.floor_after = await runFloor(world, workers, "after");
    } catch (e) {
      res.error = `${describeError(e)}\n${e.stack ?? ""}`;
      log(`throughput: ${setup.name}: ${res.error}`);
    } finally {
      await t.close();
    }
  }
  // The floor each setup is judged against: the mean of its own two readings (FLOOR=each), or of
  // the first setup's before and the last one's after (FLOOR=once).
  const once = out.setups.length ? [out.setups[0].floor_before, out.setups[out.setups.length - 1].floor_after] : [];
  for (const res of out.setups) {
    const f = floorMode === "each" ? [res.floor_before, res.floor_after] : once;
    if (!res.tollgate || f.some((x) => !x)) continue;
    const perMin = (f[0].stages_per_min + f[1].stages_per_min) / 2;
    res.floor = { stages_per_min: +perMin.toFixed(1), seconds: +((f[0].seconds + f[1].seconds) / 2).toFixed(2) };
    res.ratio = +(res.tollgate.stages_per_min / perMin).toFixed(3);
    res.ratio_drained = +(res.tollgate.drained_stages_per_min / perMin).toFixed(3);
  }
  if (out.setups.some((s) => s.error)) out.error = out.setups.filter((s) => s.error).map((s) => `${s.setup}: ${s.error}`).join("\n");
  return out;
}

// The floor: the same pushes, PR creations and merges, straight at the host, WORKERS at once.
async function floorRun({ info, bot, names, workers, tag }) {
  const t = scope();
  try {
    const dir = tempDir(t, `floor-${tag}`);
    const git = (cwd, ...args) => execFileP("git", args, { cwd, env: { ...process.env, GIT_TERMINAL_PROMPT: "0" }, maxBuffer: 1 << 24 });
    const cred = info.git_url.replace("http://", `http://tollgate-bot:${bot.token}@`);
    // One clone per worker and repository (set-up, not timed; tollgate's mirror is set up on its first fetch).
    for (let w = 0; w < workers; w++) {
      for (const s of STAGES) {
        const d = path.join(dir, `w${w}`, s);
        fs.mkdirSync(path.dirname(d), { recursive: true });
        await git(path.dirname(d), "clone", "-q", `${cred}/acme/env-${s}.git`, s);
        await git(d, "config", "user.name", "floor");
        await git(d, "config", "user.email", "floor@example.test");
      }
    }
    const queue = names.map((a) => ({ app: a, stage: 0 }));
    let done = 0;
    const total = names.length * STAGES.length;
    const T0 = Date.now();
    let T1 = T0;
    await new Promise((resolve, reject) => {
      let idle = 0;
      const worker = async (w) => {
        for (;;) {
          const job = queue.shift();
          if (!job) {
            if (done === total) return;
            idle++;
            await sleep(2);
            idle--;
            continue;
          }
          const s = STAGES[job.stage];
          const d = path.join(dir, `w${w}`, s);
          const branch = `floor-${tag}/${job.app}/${s}`;
          const file = path.join(d, "apps", job.app, "values.yaml");
          await git(d, "fetch", "-q", "origin", "main");
          await git(d, "checkout", "-q", "-B", "work", "origin/main");
          fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace(/tag: \S+/, `tag: floor-${tag}-${job.stage}`));
          await git(d, "commit", "-q", "-am", `Promote ${job.app} to ${s}`);
          await git(d, "push", "-q", "origin", `HEAD:refs/heads/${branch}`);
          const pr = await api(info, bot.token, "POST", `/repos/acme/env-${s}/pulls`, { head: branch, base: "main", title: `Promote ${job.app} to ${s}` });
          await api(info, bot.token, "PUT", `/repos/acme/env-${s}/pulls/${pr.number}/merge`, {});
          done++;
          T1 = Date.now();
          if (job.stage + 1 < STAGES.length) queue.push({ app: job.app, stage: job.stage + 1 });
        }
      };
      Promise.all(Array.from({ length: workers }, (_, w) => worker(w))).then(resolve, reject);
    });
    const seconds = (T1 - T0) / 1000;
    return { seconds: +seconds.toFixed(2), stages_per_min: +(total / (seconds / 60)).toFixed(1) };
  } finally {
    await t.close();
  }
}

// ------------------------------------------------------------------------------------------ main
const env = process.env;
if (!BIN) {
  log("promote.mjs: TOLLGATE_BIN is not set");
  process.exit(2);
}
const parts = (env.PARTS ?? "latency throughput").split(/\s+/).filter(Boolean);
const out = { tollgate_bin: BIN };
const onSignal = async () => {
  for (const sc of [...scopes].reverse()) await sc.close();
  process.exit(130);
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);
try {
  if (parts.includes("latency")) out.latency = await latency({ runs: Number(env.RUNS ?? 30), workers: env.WORKERS ? Number(env.WORKERS) : undefined });
  if (parts.includes("throughput")) {
    const floorMode = env.FLOOR ?? "each";
    if (floorMode !== "each" && floorMode !== "once") throw new Error(`FLOOR=${floorMode}: each or once`);
    const workers = Number(env.WORKERS ?? 4);
    const setups = (env.SETUPS ?? "sqlite").split(/\s+/).filter(Boolean);
    for (const s of setups) {
      if (parseSetup(s, workers).store === "postgres" && !env.TOLLGATE_TEST_POSTGRES) throw new Error(`setup ${s} needs TOLLGATE_TEST_POSTGRES (bench/promote/run.sh starts a server)`);
    }
    out.throughput = await throughput({ apps: Number(env.APPS ?? 200), workers, timeoutMs: Number(env.TIMEOUT ?? 900) * 1000, floor: !env.NO_FLOOR, floorMode, setups });
    if (out.throughput.error) out.error = out.throughput.error;
  }
} catch (e) {
  out.error = String(e.stack ?? e);
  log("promote.mjs:", out.error);
}
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(out.error ? 1 : 0);
