// Crash safety of the promotion engine: the end-to-end flow (source merges → dev → qa, auto merge)
// while `tollgate serve` is killed with SIGKILL at random moments and restarted on the same
// directory, optionally with host faults (5xx, connection resets, secondary rate limits). Shared by
// tests/promote/chaos.test.mjs (CI: ~20 kills) and bench/chaos/run.sh (KILLS=200).
//
// runChaos(t, opts) drives the world and returns {figures, invariants}: each invariant is
// {name, ok, detail}; the test asserts every one, the bench prints them. As a script:
//
//   TOLLGATE_BIN=build/service/tollgate KILLS=200 RUNS=40 FAULTS=0,1 SEED=7 node bench/chaos/chaos.mjs
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import YAML from "yaml";

import {
  WEBHOOK_SECRET,
  diagnose,
  fileAt,
  mergeSourceChange,
  seed as seedWorld,
  sql,
  startGithost,
  startTollgate,
  tempDir,
  writeConfig,
} from "../../tests/promote/world.mjs";

export const PIPELINE = `version: 1
pipelines:
  - name: app
    on:
      merged:
        branches: [main]
    release:
      version: "{{source.short_sha}}"
    concurrency: queue
    stages:
      - name: dev
        repo: acme/env-dev
        edits:
          - file: apps/app/values.yaml
            set: { image.tag: "{{release.version}}" }
        merge: auto
        gates:
          checks: none
      - name: qa
        repo: acme/env-qa
        edits:
          - file: apps/app/values.yaml
            set: { image.tag: "{{release.version}}" }
        merge: auto
        gates:
          checks: none
`;
export const STAGES = [
  { name: "dev", repo: "acme/env-dev" },
  { name: "qa", repo: "acme/env-qa" },
];

// 20% of REST calls fail: 10% 502, 5% connection reset, 5% secondary rate limit (retry-after 1 s).
export const HOST_FAULTS = [
  { kind: "status", status: 502, rate: 0.1 },
  { kind: "reset", rate: 0.05 },
  { kind: "secondary_rate_limit", rate: 0.05, retry_after: 1 },
];

// mulberry32: a seeded generator, so a seed replays the same kill delays.
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A REST GET as tollgate's account (faults must be cleared first: they apply to every REST call).
async function rest(api, token, target) {
  const out = [];
  let url = `${api}${target}${target.includes("?") ? "&" : "?"}per_page=100`;
  while (url) {
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
    const body = await res.json();
    if (!Array.isArray(body)) return body;
    out.push(...body);
    url = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get("link") ?? "")?.[1] ?? null;
  }
  return out;
}

// Webhook deliveries that never reached tollgate (it was down, or killed before it answered 2xx),
// redelivered by the host. The redelivery keeps the GUID, as GitHub's "Redeliver" button (or an
// operator scripting GitHub's redeliver API) does; GitHub itself never resends on its own, and
// tollgate's periodic resync (5 min by default) is too slow for a test. Returns how many it resent.
export async function redeliverFailed(admin) {
  const list = await admin("GET", "/deliveries");
  const byGuid = new Map();
  for (const d of list) {
    if (d.event === "ping") continue;
    if (!byGuid.has(d.guid)) byGuid.set(d.guid, []);
    byGuid.get(d.guid).push(d);
  }
  let sent = 0;
  for (const ds of byGuid.values()) {
    if (ds.some((d) => d.status_code >= 200 && d.status_code < 300)) continue;
    if (ds.some((d) => d.delivered_at === null)) continue; // one is still queued or in flight
    await admin("POST", `/deliveries/${ds[ds.length - 1].id}/redeliver`);
    sent += 1;
  }
  return sent;
}

// Test-world bootstrap with a second env repository (startWorld does the same with one config).
async function startChaosWorld(t, { engine } = {}) {
  const dir = tempDir(t);
  const { admin, info } = await startGithost(t);
  const bot = await admin("POST", "/users", { login: "tollgate-bot", x_access_token: true });
  const file = writeConfig(dir, { apiUrl: info.api_url, token: bot.token });
  if (engine) {
    const config = YAML.parse(fs.readFileSync(file, "utf8"));
    config.engine = engine;
    fs.writeFileSync(file, YAML.stringify(config));
  }
  await seedWorld(admin, { pipeline: PIPELINE, envRepos: STAGES.map((s) => s.repo.split("/")[1]) });
  return { dir, admin, info, bot };
}

// opts: kills (SIGKILLs, ≥ 1), runs (source merges), faults (inject HOST_FAULTS), seed, settleMs
// (how long the runs may take to finish after the last kill), minDelay/maxDelay (ms between a
// start and its kill), log (progress lines).
export async function runChaos(t, opts = {}) {
  const {
    kills = 20,
    runs: runCount = 3,
    faults = false,
    seed = Number(process.env.SEED ?? Date.now() % 1_000_000),
    settleMs = 90_000,
    minDelay = 50,
    maxDelay = 600,
    log = () => {},
  } = opts;
  const random = rng(seed);
  const t0 = Date.now();
  const world = await startChaosWorld(t, { engine: opts.engine });
  const { dir, admin, info, bot } = world;
  if (faults) await admin("PUT", "/faults", { seed, faults: HOST_FAULTS });

  let tollgate = null;
  let starts = 0;
  // Every start's log, in order: a failed pass is diagnosed from them (the script writes them out).
  const serverLogs = [];
  let redelivered = 0;
  const start = async () => {
    tollgate = await startTollgate(t, dir);
    starts += 1;
    // A new port on every start: point the host's webhook at it (no ping), then resend what failed.
    await admin("PUT", "/webhook", { url: `http://127.0.0.1:${tollgate.port}/hooks/github`, secret: WEBHOOK_SECRET, ping: false });
    redelivered += await redeliverFailed(admin);
  };

  // Source merges spread over the kills: merge i happens before kill floor(i * kills / runs) at the
  // latest, and earlier when every run so far has finished, so that the kills land on work.
  const mergeAt = Array.from({ length: runCount }, (_, i) => Math.floor((i * kills) / runCount));
  const idle = () =>
    sql(tollgate.db, "SELECT count(*) AS n FROM runs WHERE status IN ('queued', 'running')")[0].n === 0 &&
    sql(tollgate.db, "SELECT count(*) AS n FROM runs")[0].n >= merges.length;
  const merges = [];
  let killed = 0;
  let killsWhileLeased = 0;
  let killsWithWorkPending = 0;
  let killsAimed = 0;
  const killDelays = [];
  await start();
  while (killed < kills) {
    while (merges.length < runCount && (mergeAt[merges.length] <= killed || idle())) {
      const i = merges.length;
      const { merged } = await mergeSourceChange(admin, { branch: `change-${i + 1}`, text: `v${i + 2}\n` });
      merges.push(merged.sha);
      log(`merge ${i + 1}/${runCount}: ${merged.sha.slice(0, 7)}`);
    }
    // Every other kill, on average, is aimed: it waits (up to maxDelay) for a job to start and
    // lands 0-20 ms into it, so that kills hit side effects in flight however fast the jobs are;
    // the others come at a random moment.
    const aimed = random() < 0.5;
    const delay = Math.round(minDelay + random() * (maxDelay - minDelay));
    const into = Math.round(random() * 20);
    const began = Date.now();
    if (aimed) {
      const seen = tollgate.logs.length;
      while (Date.now() - began < maxDelay && !tollgate.logs.slice(seen).some((l) => l.msg === "job started")) await sleep(2);
      await sleep(into);
    } else {
      await sleep(delay);
    }
    killDelays.push(Date.now() - began);
    if (aimed) killsAimed += 1;
    tollgate.kill("SIGKILL");
    await tollgate.exit;
    serverLogs.push(`=== start ${starts} (pid ${tollgate.proc.pid}), killed\n${tollgate.stderr}`);
    killed += 1;
    // Did the kill land on work in flight (a job leased, or a side effect still pending)?
    const inFlight = sql(tollgate.db, "SELECT state, lease_owner FROM jobs WHERE state IN ('leased','pending') AND kind <> 'timer'");
    if (inFlight.some((r) => r.state === "leased" && Number(String(r.lease_owner).split(":")[1]) === tollgate.proc.pid)) killsWhileLeased += 1;
    if (inFlight.length) killsWithWorkPending += 1;
    if (killed % 10 === 0 || killed === kills) log(`kill ${killed}/${kills}`);
    await start();
  }
  const chaosMs = Date.now() - t0;

  // Let the runs finish; keep resending what the last kills left undelivered.
  const settleStart = Date.now();
  let finished = false;
  let progress = { audit: -1, at: Date.now() };
  while (Date.now() - settleStart < settleMs) {
    const rows = sql(tollgate.db, "SELECT status FROM runs");
    if (rows.length >= runCount && rows.every((r) => r.status === "succeeded" || r.status === "failed" || r.status === "aborted" || r.status === "superseded")) {
      finished = true;
      break;
    }
    // Stuck for 15 s behind a dead process's lease (which lasts 5 min): waiting longer shows nothing.
    const [{ n }] = sql(tollgate.db, "SELECT count(*) AS n FROM audit");
    if (n !== progress.audit) progress = { audit: n, at: Date.now() };
    const dead = sql(tollgate.db, "SELECT lease_owner FROM jobs WHERE state = 'leased'").filter((j) => Number(String(j.lease_owner).split(":")[1]) !== tollgate.proc.pid);
    if (dead.length && Date.now() - progress.at > 15_000) break;
    redelivered += await redeliverFailed(admin);
    await sleep(500);
  }
  const settledMs = Date.now() - settleStart;
  const diagnosis = diagnose(tollgate);
  let faultStats = null;
  if (faults) {
    faultStats = (await admin("GET", "/faults")).map((f) => ({ kind: f.kind, fired: f.fired }));
    await admin("DELETE", "/faults"); // the checks below use the REST API too
  }

  // ---------------------------------------------------------------- invariants
  const invariants = [];
  const check = (name, ok, detail = "") => invariants.push({ name, ok: !!ok, detail: ok ? "" : detail });
  const runs = sql(tollgate.db, "SELECT id, status, state, created_at FROM runs ORDER BY created_at, id");
  // A job leased by a process that no longer exists: only the lease running out (5 min) frees it,
  // and until then every later side effect of its run waits (per-run order).
  const leased = sql(tollgate.db, "SELECT id, run_id, kind, stage, lease_owner, lease_until, attempts FROM jobs WHERE state = 'leased'");
  const stale = leased.filter((j) => Number(String(j.lease_owner).split(":")[1]) !== tollgate.proc.pid);
  check("no job held by the lease of a killed process", stale.length === 0,
    `${stale.length} job(s) leased by dead processes, blocking their runs until lease_until ` +
      `(${stale.map((j) => `job ${j.id} ${j.kind}/${j.stage} of run ${j.run_id}, owner ${j.lease_owner}, free in ${Math.round((j.lease_until - Date.now()) / 1000)} s`).join("; ")}). ` +
      "Nothing ends a dead process's leases at startup (service/run_store.cpp claim_jobs only takes a leased job once lease_until has passed; EngineServiceOptions.lease is 5 min).");
  check("every run finished within the settle time", finished, `after ${settledMs} ms:\n${diagnosis}`);
  check(`exactly one run per source merge (${runCount})`, runs.length === runCount, `runs: ${JSON.stringify(runs.map((r) => [r.id, r.status]))}`);
  check("every run succeeded", runs.length > 0 && runs.every((r) => r.status === "succeeded"), `runs: ${JSON.stringify(runs.map((r) => [r.id, r.status]))}\n${diagnosis}`);

  const requests = await admin("GET", "/requests");
  for (const stage of STAGES) {
    const prs = await rest(info.api_url, bot.token, `/repos/${stage.repo}/pulls?state=all`);
    check(`${stage.name}: one promotion PR per run, no others (${stage.repo})`, prs.length === runs.length,
      `${prs.length} PRs for ${runs.length} runs: ${JSON.stringify(prs.map((p) => [p.number, p.head.ref]))}`);
    const created = requests.filter((r) => r.method === "POST" && r.path.split("?")[0] === `/repos/${stage.repo}/pulls` && r.status === 201);
    check(`${stage.name}: PRs created by the API exactly once per run`, created.length === runs.length, `${created.length} POST .../pulls → 201 for ${runs.length} runs`);
    for (const run of runs) {
      const branch = `tollgate/app/${stage.name}/${run.id}`;
      const mine = prs.filter((p) => p.head.ref === branch);
      check(`${stage.name} ${run.id}: exactly one PR from ${branch}`, mine.length === 1, `found ${mine.map((p) => p.number)}`);
      if (mine.length !== 1) continue;
      const pr = mine[0];
      check(`${stage.name} ${run.id}: PR #${pr.number} opened by tollgate-bot and merged`, pr.user.login === "tollgate-bot" && pr.merged_at, `user ${pr.user.login}, state ${pr.state}, merged_at ${pr.merged_at}`);
      const merges200 = requests.filter((r) => r.method === "PUT" && r.path.split("?")[0] === `/repos/${stage.repo}/pulls/${pr.number}/merge` && r.status === 200);
      check(`${stage.name} ${run.id}: PR #${pr.number} merged exactly once`, merges200.length === 1, `${merges200.length} PUT .../merge → 200`);
      const comments = await rest(info.api_url, bot.token, `/repos/${stage.repo}/issues/${pr.number}/comments`);
      const botComments = comments.filter((c) => c.user.login === "tollgate-bot");
      const status = botComments.filter((c) => c.body.includes("<!-- tollgate:status"));
      check(`${stage.name} ${run.id}: at most one status comment on PR #${pr.number}`, status.length <= 1, `${status.length} status comments: ${status.map((c) => c.id)}`);
      const bodies = botComments.map((c) => c.body);
      check(`${stage.name} ${run.id}: no duplicate tollgate-bot comment on PR #${pr.number}`, new Set(bodies).size === bodies.length, `${bodies.length} comments, ${new Set(bodies).size} distinct`);
    }
  }
  for (const run of runs) {
    const audit = sql(tollgate.db, "SELECT seq, stage, from_state, to_state FROM audit WHERE run_id = ? ORDER BY seq", [run.id]);
    const seqs = audit.map((a) => a.seq);
    check(`audit ${run.id}: seq 1..${audit.length} without gaps`, audit.length > 0 && seqs.every((s, i) => s === i + 1), `seq ${JSON.stringify(seqs)}`);
    const moves = audit.filter((a) => a.from_state !== a.to_state).map((a) => `${a.stage || "run"}:${a.from_state}->${a.to_state}`);
    for (const once of ["run:running->succeeded", "dev:merging->verifying", "qa:merging->verifying", "dev:verifying->promoted", "qa:verifying->promoted"]) {
      const n = moves.filter((m) => m === once).length;
      check(`audit ${run.id}: ${once} exactly once`, n === 1, `${n} times in: ${moves.join(", ")}`);
    }
  }
  const failedJobs = sql(tollgate.db, "SELECT id, run_id, kind, stage, attempts, last_error FROM jobs WHERE state = 'failed'");
  check("no job failed", failedJobs.length === 0, JSON.stringify(failedJobs));
  const openJobs = sql(tollgate.db, "SELECT id, run_id, kind, stage, state, attempts, last_error FROM jobs WHERE state IN ('pending','leased') AND kind <> 'timer'");
  check("no side effect left unfinished", openJobs.length === 0, JSON.stringify(openJobs));
  // With concurrency: queue the last merge is the last promotion: every environment runs it.
  if (merges.length) {
    const last = merges[merges.length - 1].slice(0, 7);
    for (const stage of STAGES) {
      const values = await fileAt(info.api_url, stage.repo, "apps/app/values.yaml", "main", bot.token);
      check(`${stage.name}: ${stage.repo} runs the last release ${last}`, new RegExp(`tag: "?${last}"? #`).test(values ?? ""), `values.yaml: ${values}`);
    }
  }

  const figures = {
    seed,
    kills: killed,
    starts,
    runs: runs.length,
    runs_succeeded: runs.filter((r) => r.status === "succeeded").length,
    redelivered,
    kills_while_job_leased: killsWhileLeased,
    kills_with_side_effects_pending: killsWithWorkPending,
    kills_aimed_at_a_job: killsAimed,
    kill_delay_ms: killDelays.length ? { min: Math.min(...killDelays), max: Math.max(...killDelays) } : null,
    chaos_ms: chaosMs,
    settle_ms: settledMs,
    total_ms: Date.now() - t0,
    api_requests: requests.length,
    faults_fired: faultStats,
    failed_invariants: invariants.filter((i) => !i.ok).length,
    invariants: invariants.length,
  };
  serverLogs.push(`=== start ${starts} (pid ${tollgate.proc.pid}), still running\n${tollgate.stderr}`);
  return { figures, invariants, tollgate, dir, serverLogs };
}

// As a script (bench/chaos/run.sh): prints figures and every invariant; exit 1 when one breaks.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const hooks = [];
  const t = { after: (fn) => hooks.push(fn) };
  const env = process.env;
  let code = 0;
  try {
    for (const faults of (env.FAULTS ?? "0,1").split(",").map((f) => f === "1")) {
      console.log(`\n== ${env.KILLS ?? 200} kills, ${env.RUNS ?? "KILLS/5"} runs, host faults ${faults ? "20%" : "off"}`);
      const { figures, invariants, serverLogs } = await runChaos(t, {
        kills: Number(env.KILLS ?? 200),
        runs: Number(env.RUNS ?? Math.max(1, Math.round(Number(env.KILLS ?? 200) / 5))),
        faults,
        settleMs: Number(env.SETTLE_MS ?? 180_000),
        log: (m) => console.log(`  ${new Date().toISOString().slice(11, 19)} ${m}`),
      });
      console.log(JSON.stringify(figures, null, 2));
      for (const i of invariants) {
        console.log(`  ${i.ok ? "ok  " : "FAIL"} ${i.name}${i.ok ? "" : "\n       " + i.detail.split("\n").join("\n       ")}`);
        if (!i.ok) code = 1;
      }
      if (invariants.some((i) => !i.ok)) {
        const file = path.join(os.tmpdir(), `tollgate-chaos-seed${figures.seed}-faults${faults ? 1 : 0}.log`);
        fs.writeFileSync(file, serverLogs.join(""));
        console.log(`  tollgate's logs of this pass (every start, in order): ${file}`);
      }
      for (const fn of hooks.splice(0).reverse()) await fn();
    }
  } catch (e) {
    console.error(e);
    code = 2;
  } finally {
    for (const fn of hooks.reverse()) await fn();
  }
  process.exit(code);
}
