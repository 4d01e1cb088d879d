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
//
// Output: human-readable lines on stderr, one JSON object (all figures) on stdout.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";

import { BIN, WEBHOOK_SECRET, startGithost, startTollgate, writeConfig, sql } from "../../tests/promote/world.mjs";

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

// The host, tollgate's account (quota raised: a benchmark must not hit the rate limit), alice, acme.
async function host(t) {
  const { child, info, admin } = await startGithost(t);
  const bot = await admin("POST", "/users", { login: "tollgate-bot", x_access_token: true });
  const alice = await admin("POST", "/users", { login: "alice" });
  await admin("POST", "/orgs", { login: "acme" });
  await admin("PUT", "/rate-limit", { limit: 100_000_000, remaining: 100_000_000 });
  return { child, info, admin, bot, alice };
}

async function tollgateOn(t, dir, info, bot, workers) {
  writeConfig(dir, { apiUrl: info.api_url, token: bot.token, engine: workers ? { workers } : undefined });
  return startTollgate(t, dir);
}

const deliveryStart = (d) => Date.parse(d.delivered_at) - (d.duration_ms ?? 0);

function pct(xs, p) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  // nearest-rank
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

async function waitRuns(tollgate, n, ms, onTick) {
  const deadline = Date.now() + ms;
  let rows = [];
  while (Date.now() < deadline) {
    rows = sql(tollgate.db, "SELECT status, COUNT(*) AS n FROM runs GROUP BY status");
    const by = Object.fromEntries(rows.map((r) => [r.status, r.n]));
    onTick?.(by);
    const done = (by.succeeded ?? 0) + (by.failed ?? 0) + (by.aborted ?? 0) + (by.superseded ?? 0);
    if (done >= n) return by;
    if (!tollgate.running()) throw new Error(`tollgate exited: ${tollgate.stderr.split("\n").slice(-20).join("\n")}`);
    await sleep(200);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${n} runs to finish; runs: ${JSON.stringify(rows)}; unfinished jobs: ${JSON.stringify(
    sql(tollgate.db, "SELECT kind, stage, state, attempts, last_error FROM jobs WHERE state <> 'done' AND kind <> 'timer' LIMIT 20"),
  )}`);
}

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
      const by = await waitRuns(tollgate, i, 60_000);
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

async function throughput({ apps, workers, timeoutMs, floor }) {
  const t = scope();
  const names = Array.from({ length: apps }, (_, i) => `app-${String(i + 1).padStart(3, "0")}`);
  try {
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
    // The source merges, with the webhook pointing nowhere (recorded, not sent).
    const sourceSha = {};
    await pool(names, 4, async (a) => {
      await admin("POST", `/repos/acme/${a}/commits`, { branch: "change", from: "main", files: { "src/app.txt": "v2\n" }, user: "alice", message: "change" });
      const pr = await admin("POST", `/repos/acme/${a}/pulls`, { head: "change", base: "main", title: "Change", user: "alice" });
      sourceSha[a] = (await admin("POST", `/repos/acme/${a}/pulls/${pr.number}/merge`, { user: "alice" })).sha;
    });
    log(`throughput: set up ${apps} applications and 3 environment repositories in ${((Date.now() - tSetup) / 1000).toFixed(1)} s`);
    const merges = (await admin("GET", "/deliveries?event=pull_request&action=closed")).filter((d) => d.payload.pull_request.merged);
    if (merges.length !== apps) throw new Error(`expected ${apps} source merge deliveries, got ${merges.length}`);

    // The floor runs just before and just after tollgate (this machine is shared: the two readings
    // bracket tollgate's run); the host keeps sending its webhooks (PR opened, closed), to a sink.
    let sink;
    const runFloor = async (tag) => {
      if (!sink) {
        const http = await import("node:http");
        sink = http.createServer((req, res) => {
          req.resume();
          req.on("end", () => res.writeHead(202).end());
        });
        await new Promise((r) => sink.listen(0, "127.0.0.1", r));
        t.after(() => {
          sink.closeAllConnections?.();
          sink.close();
        });
      }
      await admin("PUT", "/webhook", { url: `http://127.0.0.1:${sink.address().port}/`, secret: WEBHOOK_SECRET, ping: false });
      await admin("DELETE", "/requests");
      const h0 = hostCpu();
      const s0 = hostSplit();
      const load = loadSampler();
      const f = await floorRun({ info, bot, names, workers, tag });
      f.load_avg = load();
      f.host_cpu_s = +((hostCpu() - h0) / 1000).toFixed(1);
      f.host_cpu_split = splitSince(s0);
      f.api_requests = (await admin("GET", "/requests")).length;
      await admin("PUT", "/webhook", { url: null, ping: false });
      return f;
    };
    const floorBefore = floor ? await runFloor("before") : null;
    if (floorBefore) log(`throughput: floor before: ${floorBefore.seconds} s: ${floorBefore.stages_per_min} stages/min`);

    const dir = tempDir(t, "throughput");
    const tollgate = await tollgateOn(t, dir, info, bot, workers);
    await admin("PUT", "/webhook", { url: `http://127.0.0.1:${tollgate.port}/hooks/github`, secret: WEBHOOK_SECRET, ping: false });
    await admin("DELETE", "/requests");
    const rssIdle = rssKb(tollgate.proc.pid, "VmRSS");
    const cpu0 = cpuMs(tollgate.proc.pid);
    const hostCpu0 = hostCpu();
    const split0 = hostSplit();
    const load = loadSampler();
    const T0 = Date.now();
    await Promise.all(merges.map((d) => admin("POST", `/deliveries/${d.id}/redeliver`)));
    let lastLog = 0;
    const by = await waitRuns(tollgate, apps, timeoutMs, (b) => {
      if (Date.now() - lastLog > 10_000) {
        lastLog = Date.now();
        log(`  ${((Date.now() - T0) / 1000).toFixed(0)} s: runs ${JSON.stringify(b)}, RSS ${rssKb(tollgate.proc.pid, "VmRSS")} kB`);
      }
    });
    const T1 = sql(tollgate.db, "SELECT MAX(finished_at) AS t FROM runs")[0].t;
    // Status updates give way to promotions when the workers are busy, so some finish after the
    // runs: wait for every side effect (not the leftover resync timers) to be done, and say when.
    while (sql(tollgate.db, "SELECT COUNT(*) AS n FROM jobs WHERE state IN ('pending', 'leased') AND kind <> 'timer'")[0].n > 0) {
      if (Date.now() - T0 > timeoutMs) break;
      await sleep(200);
    }
    const Tdrained = sql(tollgate.db, "SELECT MAX(finished_at) AS t FROM jobs WHERE kind <> 'timer'")[0].t;
    const cpu1 = cpuMs(tollgate.proc.pid);
    const hostCpu1 = hostCpu();
    const split1 = splitSince(split0);
    const loadAvg = load();
    const peakRss = rssKb(tollgate.proc.pid, "VmHWM");
    const wallS = (T1 - T0) / 1000;
    const rate = (apps * STAGES.length) / (wallS / 60);
    log(`throughput: tollgate: ${apps} runs in ${wallS.toFixed(1)} s: ${rate.toFixed(0)} stages/min; runs ${JSON.stringify(by)}; peak RSS ${(peakRss / 1024).toFixed(1)} MB`);

    // ---- correctness: duplicates, merges, contents
    const problems = [];
    if ((by.succeeded ?? 0) !== apps) problems.push(`runs: ${JSON.stringify(by)}`);
    const runs = sql(tollgate.db, "SELECT id, pipeline, status FROM runs");
    const runOf = Object.fromEntries(runs.map((r) => [r.pipeline, r.id]));
    const prsByRepo = {};
    for (const s of STAGES) {
      const prs = await listAll(info.api_url, `acme/env-${s}`, bot.token);
      prsByRepo[s] = prs;
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
    if (totalCreates !== apps * 3) problems.push(`${totalCreates} successful PR creations, expected ${apps * 3}`);
    for (const [pr, n] of Object.entries(mergesOk)) if (n > 1) problems.push(`${pr}: merged ${n} times`);
    const totalMerges = Object.values(mergesOk).reduce((a, b) => a + b, 0);
    if (totalMerges !== apps * 3) problems.push(`${totalMerges} successful merges, expected ${apps * 3}`);
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
    for (const r of requests) if (r.status >= 400) apiErrors[`${r.method} ${r.status}`] = (apiErrors[`${r.method} ${r.status}`] ?? 0) + 1;
    const jobStats = sql(tollgate.db, "SELECT kind, COUNT(*) AS n, SUM(attempts > 1) AS retried, SUM(state = 'failed') AS failed FROM jobs GROUP BY kind");
    log(`throughput: checks: ${problems.length ? problems.slice(0, 20).join("; ") : "all runs succeeded, one PR per application and stage, each merged once, no duplicate comment, every values.yaml updated"}`);
    const result = {
      apps,
      stages: apps * 3,
      workers,
      tollgate: {
        seconds: +wallS.toFixed(2),
        stages_per_min: +rate.toFixed(1),
        // until the last status update was done too
        drained_seconds: +((Tdrained - T0) / 1000).toFixed(2),
        drained_stages_per_min: +((apps * STAGES.length) / ((Tdrained - T0) / 60000)).toFixed(1),
        peak_rss_kb: peakRss,
        idle_rss_kb: rssIdle,
        cpu_s: +((cpu1 - cpu0) / 1000).toFixed(1),
        host_cpu_s: +((hostCpu1 - hostCpu0) / 1000).toFixed(1),
        host_cpu_split: split1,
        load_avg: loadAvg,
        api_requests: requests.length,
        api_requests_per_stage: (() => {
          const m = {};
          for (const r of requests) m[requestKind(r)] = (m[requestKind(r)] ?? 0) + 1;
          return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, +(v / (apps * STAGES.length)).toFixed(2)]));
        })(),
        api_errors: apiErrors,
        comments,
        jobs: jobStats,
      },
      problems,
      floor_before: floorBefore ?? undefined,
    };
    tollgate.kill("SIGTERM");
    await tollgate.exit;

    if (floor) {
      result.floor_after = await runFloor("after");
      const f = [result.floor_before, result.floor_after];
      const stagesPerMin = (f[0].stages_per_min + f[1].stages_per_min) / 2;
      result.floor = { stages_per_min: +stagesPerMin.toFixed(1), seconds: +((f[0].seconds + f[1].seconds) / 2).toFixed(2) };
      result.ratio = +(result.tollgate.stages_per_min / stagesPerMin).toFixed(3);
      result.ratio_drained = +(result.tollgate.drained_stages_per_min / stagesPerMin).toFixed(3);
      log(`throughput: floor after: ${result.floor_after.seconds} s: ${result.floor_after.stages_per_min} stages/min; tollgate / mean floor = ${result.ratio}`);
    }
    return result;
  } finally {
    await t.close();
  }
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
    out.throughput = await throughput({
      apps: Number(env.APPS ?? 200),
      workers: Number(env.WORKERS ?? 4),
      timeoutMs: Number(env.TIMEOUT ?? 900) * 1000,
      floor: !env.NO_FLOOR,
    });
  }
} catch (e) {
  out.error = String(e.stack ?? e);
  log("promote.mjs:", out.error);
}
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(out.error ? 1 : 0);
