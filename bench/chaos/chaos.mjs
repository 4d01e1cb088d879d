// Crash safety of the promotion engine: the end-to-end flow (source merges → dev → qa, auto merge,
// qa soaking 3 s after dev: a timer) while `tollgate serve` is killed with SIGKILL at random moments and restarted, optionally with
// host faults (5xx, connection resets, secondary rate limits). Shared by
// tests/promote/chaos.test.mjs (CI: ~20 kills) and bench/chaos/run.sh (KILLS=200).
//
// One replica (the default): one `tollgate serve` on one store (SQLite, or PostgreSQL with
// TOLLGATE_TEST_STORE=postgres), killed and restarted on the same directory.
// Several replicas (`replicas`, REPLICAS=3; PostgreSQL only): that many `tollgate serve` processes,
// each with its own directory, config and data_dir (git mirrors are per replica) on one database,
// each started with a stable TOLLGATE_REPLICA name (r1, r2, ...). Webhooks reach them through a
// round-robin forwarder (replicaSet and startForwarder, in tests/promote/replicas.mjs). A kill
// picks a random replica that is up (or the one that just started a job), which comes back after
// 0–maxDelay ms while the others go on; one replica is always up (a kill waits for a restart when
// only one is), so deliveries are never refused.
//
// runChaos(t, opts) drives the world and returns {figures, invariants}: each invariant is
// {name, ok, detail}; the test asserts every one, the bench prints them. As a script:
//
//   TOLLGATE_BIN=build/service/tollgate KILLS=200 RUNS=40 FAULTS=0,1 SEED=7 node bench/chaos/chaos.mjs
//   TOLLGATE_TEST_POSTGRES=postgresql://... REPLICAS=3 TOLLGATE_BIN=... node bench/chaos/chaos.mjs
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import YAML from "yaml";

import {
  BIN,
  STORE,
  WEBHOOK_SECRET,
  diagnose,
  fileAt,
  mergeSourceChange,
  seed as seedWorld,
  sql,
  startGithost,
  testDatabase,
} from "../../tests/promote/world.mjs";
import { ownerPid, replicaSet, startForwarder } from "../../tests/promote/replicas.mjs";

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
          soak: 3s
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

// Whether this tollgate binary takes `engine.<key>` (a binary older than the key refuses it as
// unknown): `tollgate runs` reads the config, then stops at the database, which does not exist.
export function engineAccepts(key, value) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tollgate-chaos-probe-"));
  try {
    fs.writeFileSync(path.join(dir, "secret"), "probe\n");
    const config = { database: "./absent.db", engine: { [key]: value }, hosts: { github: { kind: "github", webhook_secret_file: "secret" } } };
    fs.writeFileSync(path.join(dir, "tollgate.yaml"), YAML.stringify(config));
    const r = spawnSync(BIN, ["runs", "--config", path.join(dir, "tollgate.yaml")], { encoding: "utf8" });
    if (r.error) throw r.error;
    return !r.stderr.includes(`unknown key '${key}'`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// Test-world bootstrap with a second env repository: the host, the seeded repositories, and
// `replicas` replica directories (tests/promote/replicas.mjs: replicaSet), all on `database`
// (testDatabase).
async function startChaosWorld(t, { engine, replicas, store }) {
  const { admin, info } = await startGithost(t);
  const bot = await admin("POST", "/users", { login: "tollgate-bot", x_access_token: true });
  const set = replicaSet(t, { count: replicas, apiUrl: info.api_url, token: bot.token, engine, database: testDatabase(t, { store }) });
  await seedWorld(admin, { pipeline: PIPELINE, envRepos: STAGES.map((s) => s.repo.split("/")[1]) });
  return { set, admin, info, bot, db: set.db };
}

// opts: kills (SIGKILLs, ≥ 1), runs (source merges), faults (inject HOST_FAULTS), seed, settleMs
// (how long the runs may take to finish after the last kill), minDelay/maxDelay (ms between a
// start and its kill; with several replicas also a killed one's time down), log (progress lines),
// engine (the config's engine section), replicas (default 1; the script: REPLICAS), store ("sqlite" or
// "postgres": default the suites' store, PostgreSQL with several replicas), lease (engine.lease on
// PostgreSQL, default "5s" when the binary takes the key, so that a dead replica's jobs come free
// in seconds; false: the binary's default).
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
    replicas: replicaCount = 1,
  } = opts;
  const store = opts.store ?? (replicaCount > 1 ? "postgres" : STORE);
  if (replicaCount > 1 && store !== "postgres") throw new Error(`${replicaCount} replicas need the PostgreSQL store (one SQLite file is one process's)`);
  const lease = store === "postgres" ? (opts.lease ?? (engineAccepts("lease", "5s") ? "5s" : false)) : false;
  const engine = lease ? { ...opts.engine, lease } : opts.engine;
  const random = rng(seed);
  const t0 = Date.now();
  const { set, admin, info, bot, db } = await startChaosWorld(t, { engine, replicas: replicaCount, store });
  if (faults) await admin("PUT", "/faults", { seed, faults: HOST_FAULTS });

  // Each replica: its name (TOLLGATE_REPLICA), directory, and current process (null before its
  // first start); `started`: every process, in start order (their logs diagnose a failed pass).
  const { replicas, started, up, livePids } = set;
  const forwarder = await startForwarder(t, () => up().map((r) => ({ name: r.name, port: r.server.port })));
  await admin("PUT", "/webhook", { url: forwarder.url, secret: WEBHOOK_SECRET, ping: false });
  let redelivered = 0;
  const start = async (replica) => {
    await set.start(replica);
    // Resend what failed while no replica was up (or the only one was killed mid-delivery).
    redelivered += await redeliverFailed(admin);
  };
  const killedPids = new Set();
  // Processes that ended without being killed here (crashed, or exited): their logs' last lines.
  const exitedOnTheirOwn = () =>
    started
      .filter(({ server }) => !server.running() && !killedPids.has(server.pid))
      .map(({ replica, server }) => `${replica} (pid ${server.pid}, exit ${server.proc.exitCode ?? server.proc.signalCode}):\n${server.stderr.split("\n").slice(-10).join("\n")}`);

  // Source merges spread over the kills: merge i happens before kill floor(i * kills / runs) at the
  // latest, and earlier when every run so far has finished, so that the kills land on work.
  const mergeAt = Array.from({ length: runCount }, (_, i) => Math.floor((i * kills) / runCount));
  const idle = () =>
    sql(db, "SELECT count(*) AS n FROM runs WHERE status IN ('queued', 'running')")[0].n === 0 &&
    sql(db, "SELECT count(*) AS n FROM runs")[0].n >= merges.length;
  const merges = [];
  let killed = 0;
  let killsWhileLeased = 0;
  let killsWithWorkPending = 0;
  let killsAimed = 0;
  const killDelays = [];
  const restarts = new Set(); // replicas coming back (several replicas: in the background)
  let restartFailed = null; // the first restart that failed (thrown by the loop)
  for (const r of replicas) await start(r);
  while (killed < kills) {
    if (restartFailed) throw restartFailed;
    while (merges.length < runCount && (mergeAt[merges.length] <= killed || idle())) {
      const i = merges.length;
      const { merged } = await mergeSourceChange(admin, { branch: `change-${i + 1}`, text: `v${i + 2}\n` });
      merges.push(merged.sha);
      log(`merge ${i + 1}/${runCount}: ${merged.sha.slice(0, 7)}`);
    }
    // One replica always stays up: with only one up, the next kill waits for a restart.
    while (replicas.length > 1 && up().length < 2 && restarts.size) await Promise.race(restarts);
    if (restartFailed) throw restartFailed;
    if (!up().length || (replicas.length > 1 && up().length < 2)) throw new Error(`tollgate exited on its own:\n${exitedOnTheirOwn().join("\n")}`);
    // Every other kill, on average, is aimed: it waits (up to maxDelay) for a job to start on a
    // replica and lands 0-20 ms into it, on that replica, so that kills hit side effects in flight
    // however fast the jobs are; the others come at a random moment, on a random replica.
    const aimed = random() < 0.5;
    const delay = Math.round(minDelay + random() * (maxDelay - minDelay));
    const into = Math.round(random() * 20);
    const pick = random();
    const began = Date.now();
    let victim = null;
    if (aimed) {
      const seen = up().map((r) => ({ r, server: r.server, from: r.server.logs.length }));
      while (Date.now() - began < maxDelay && !victim) {
        victim = seen.find(({ server, from }) => server.logs.slice(from).some((l) => l.msg === "job started"))?.r;
        if (!victim) await sleep(2);
      }
      await sleep(into);
    } else {
      await sleep(delay);
    }
    const candidates = up();
    if (!victim?.server.running()) victim = candidates[Math.floor(pick * candidates.length)];
    if (!victim) throw new Error(`tollgate exited on its own:\n${exitedOnTheirOwn().join("\n")}`);
    killDelays.push(Date.now() - began);
    if (aimed) killsAimed += 1;
    const { server } = victim;
    killedPids.add(server.pid);
    server.kill("SIGKILL");
    await server.exit;
    killed += 1;
    // Did the kill land on work in flight (a job leased by it, or a side effect still pending)?
    const inFlight = sql(db, "SELECT state, lease_owner FROM jobs WHERE state IN ('leased','pending') AND kind <> 'timer'");
    if (inFlight.some((r) => r.state === "leased" && ownerPid(r.lease_owner) === server.pid)) killsWhileLeased += 1;
    if (inFlight.length) killsWithWorkPending += 1;
    if (killed % 10 === 0 || killed === kills) log(`kill ${killed}/${kills}`);
    if (replicas.length === 1) {
      await start(victim);
    } else {
      const down = Math.round(random() * maxDelay);
      const back = sleep(down)
        .then(() => start(victim))
        .catch((e) => {
          restartFailed ??= e;
        })
        .finally(() => restarts.delete(back));
      restarts.add(back);
    }
  }
  await Promise.all(restarts);
  if (restartFailed) throw restartFailed;
  const chaosMs = Date.now() - t0;

  // Let the runs finish; keep resending what the last kills left undelivered.
  const settleStart = Date.now();
  let finished = false;
  let progress = { audit: -1, at: Date.now() };
  while (Date.now() - settleStart < settleMs) {
    const rows = sql(db, "SELECT status FROM runs");
    if (rows.length >= runCount && rows.every((r) => r.status === "succeeded" || r.status === "failed" || r.status === "aborted" || r.status === "superseded")) {
      finished = true;
      break;
    }
    // Stuck for 15 s behind a dead process's lease (5 min by default): waiting longer shows nothing.
    const [{ n }] = sql(db, "SELECT count(*) AS n FROM audit");
    if (n !== progress.audit) progress = { audit: n, at: Date.now() };
    const alive = livePids();
    const dead = sql(db, "SELECT lease_owner FROM jobs WHERE state = 'leased'").filter((j) => !alive.has(ownerPid(j.lease_owner)));
    if (dead.length && Date.now() - progress.at > 15_000) break;
    redelivered += await redeliverFailed(admin);
    await sleep(500);
  }
  let faultStats = null;
  if (faults) {
    faultStats = (await admin("GET", "/faults")).map((f) => ({ kind: f.kind, fired: f.fired }));
    await admin("DELETE", "/faults"); // the checks below use the REST API too
  }
  // A run ends before its last side effects do: the final commit status and status comment, or a
  // write that failed (a host fault) and waits out its backoff. The checks look at those too, so
  // they wait for the job table to drain (within the settle time).
  while (finished && Date.now() - settleStart < settleMs) {
    const [{ n }] = sql(db, "SELECT count(*) AS n FROM jobs WHERE state IN ('pending', 'leased') AND kind <> 'timer'");
    if (n === 0) break;
    await sleep(250);
  }
  const settledMs = Date.now() - settleStart;
  // The store's state, and the last lines of each replica's current process.
  const diagnosis = diagnose({ db, stderr: up().map((r) => `--- ${r.name} (pid ${r.server.pid})\n${r.server.stderr.split("\n").slice(-Math.ceil(30 / replicas.length)).join("\n")}`).join("\n") });

  // ---------------------------------------------------------------- invariants
  const invariants = [];
  const check = (name, ok, detail = "") => invariants.push({ name, ok: !!ok, detail: ok ? "" : detail });
  const runs = sql(db, "SELECT id, status, state, created_at FROM runs ORDER BY created_at, id");
  // A job leased by a process that no longer exists: until its lease runs out (engine.lease; 5 min
  // before that key) or its replica comes back, every later side effect of its run waits.
  const leased = sql(db, "SELECT id, run_id, kind, stage, lease_owner, lease_until, attempts FROM jobs WHERE state = 'leased'");
  const alive = livePids();
  const stale = leased.filter((j) => !alive.has(ownerPid(j.lease_owner)));
  check("no job held by the lease of a killed process", stale.length === 0,
    `${stale.length} job(s) leased by dead processes, blocking their runs until lease_until ` +
      `(${stale.map((j) => `job ${j.id} ${j.kind}/${j.stage} of run ${j.run_id}, owner ${j.lease_owner}, free in ${Math.round((j.lease_until - Date.now()) / 1000)} s`).join("; ")}). ` +
      "A restarted process should take back its earlier process's leases (SQLite: all; PostgreSQL: those of its TOLLGATE_REPLICA), and other replicas' should run out after engine.lease.");
  const exited = exitedOnTheirOwn();
  check("no tollgate process exited on its own", exited.length === 0, exited.join("\n"));
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
      // The last status written is the stage's end (a write skipped on a stale hint would leave an older one).
      const last = status[status.length - 1]?.body ?? "";
      check(`${stage.name} ${run.id}: the status comment on PR #${pr.number} says promoted`, /^\*\*promoted\b/m.test(last), `status comment: ${JSON.stringify(last.slice(0, 400))}`);
      const bodies = botComments.map((c) => c.body);
      check(`${stage.name} ${run.id}: no duplicate tollgate-bot comment on PR #${pr.number}`, new Set(bodies).size === bodies.length, `${bodies.length} comments, ${new Set(bodies).size} distinct`);
    }
  }
  for (const run of runs) {
    const audit = sql(db, "SELECT seq, stage, from_state, to_state FROM audit WHERE run_id = ? ORDER BY seq", [run.id]);
    const seqs = audit.map((a) => a.seq);
    check(`audit ${run.id}: seq 1..${audit.length} without gaps`, audit.length > 0 && seqs.every((s, i) => s === i + 1), `seq ${JSON.stringify(seqs)}`);
    const moves = audit.filter((a) => a.from_state !== a.to_state).map((a) => `${a.stage || "run"}:${a.from_state}->${a.to_state}`);
    for (const once of ["run:running->succeeded", "dev:merging->verifying", "qa:merging->verifying", "dev:verifying->promoted", "qa:verifying->promoted"]) {
      const n = moves.filter((m) => m === once).length;
      check(`audit ${run.id}: ${once} exactly once`, n === 1, `${n} times in: ${moves.join(", ")}`);
    }
  }
  // Each input (a delivery, a job's result, a timer) is applied to a run in one transaction: its
  // audit entries there share one time. Entries of one input at two times: applied twice. And a
  // job is finished once: "job finished" twice in the logs of all processes, its result applied twice.
  const twice = sql(db,
    "SELECT run_id, input, COUNT(DISTINCT at) AS times FROM audit WHERE input IS NOT NULL AND input <> '' " +
      "GROUP BY run_id, input HAVING COUNT(DISTINCT at) > 1");
  const finishedBy = new Map(); // job id -> the replicas that logged "job finished"
  for (const { replica, server } of started) {
    for (const l of server.logs) if (l.msg === "job finished") finishedBy.set(l.job, [...(finishedBy.get(l.job) ?? []), replica]);
  }
  const finishedTwice = [...finishedBy].filter(([, by]) => by.length > 1).map(([job, by]) => ({ job, by }));
  const timers = sql(db, "SELECT id, stage, state, job FROM jobs WHERE kind = 'timer'");
  const timerIds = new Set(timers.map((j) => j.id));
  const timersFired = timers.filter((j) => j.state === "done").length;
  const timersTwice = [...twice.filter((a) => timerIds.has(Number(a.input.replace(/^job:/, "")))), ...finishedTwice.filter((f) => timerIds.has(f.job))];
  check(`no timer fired twice (${timersFired} fired)`, timersFired > 0 && timersTwice.length === 0,
    timersFired ? `timers applied more than once: ${JSON.stringify(timersTwice)}` : `no timer fired (qa's soak: 3s arms one when qa's gates are first evaluated less than 3 s after dev was promoted; ` +
      `retries and restarts can delay that past the soak, but not for every run): ${JSON.stringify(timers)}`);
  check("no delivery or job result applied twice", twice.length === 0 && finishedTwice.length === 0,
    `inputs with audit entries at more than one time: ${JSON.stringify(twice)}; jobs logged "job finished" more than once: ${JSON.stringify(finishedTwice)}`);
  const failedJobs = sql(db, "SELECT id, run_id, kind, stage, attempts, last_error FROM jobs WHERE state = 'failed'");
  check("no job failed", failedJobs.length === 0, JSON.stringify(failedJobs));
  const openJobs = sql(db, "SELECT id, run_id, kind, stage, state, attempts, last_error FROM jobs WHERE state IN ('pending','leased') AND kind <> 'timer'");
  check("no side effect left unfinished", openJobs.length === 0, JSON.stringify(openJobs));
  // With concurrency: queue the last merge is the last promotion: every environment runs it.
  if (merges.length) {
    const last = merges[merges.length - 1].slice(0, 7);
    for (const stage of STAGES) {
      const values = await fileAt(info.api_url, stage.repo, "apps/app/values.yaml", "main", bot.token);
      check(`${stage.name}: ${stage.repo} runs the last release ${last}`, new RegExp(`tag: "?${last}"? #`).test(values ?? ""), `values.yaml: ${values}`);
    }
  }
  // Who did the work: deliveries answered (the forwarder), jobs started (each process's log) and
  // jobs finished (their last lease's owner) per replica.
  const jobsStartedBy = Object.fromEntries(replicas.map((r) => [r.name, 0]));
  for (const s of started) jobsStartedBy[s.replica] += s.server.logs.filter((l) => l.msg === "job started").length;
  const replicaOfPid = new Map(started.map((s) => [s.server.pid, s.replica]));
  const jobsDoneBy = {};
  for (const j of sql(db, "SELECT lease_owner FROM jobs WHERE state = 'done' AND kind <> 'timer' AND lease_owner IS NOT NULL")) {
    const name = replicaOfPid.get(ownerPid(j.lease_owner)) ?? "?";
    jobsDoneBy[name] = (jobsDoneBy[name] ?? 0) + 1;
  }
  if (replicas.length > 1) {
    const answering = Object.keys(forwarder.stats.answered_by);
    check("webhook deliveries were answered by more than one replica", answering.length > 1, `answered by: ${JSON.stringify(forwarder.stats.answered_by)}`);
    const working = Object.entries(jobsStartedBy).filter(([, n]) => n > 0).map(([name]) => name);
    check("jobs were executed by more than one replica", working.length > 1, `"job started" per replica: ${JSON.stringify(jobsStartedBy)}; finished jobs by lease owner: ${JSON.stringify(jobsDoneBy)}`);
  }

  const figures = {
    seed,
    store,
    replicas: replicas.length,
    lease: lease || null,
    kills: killed,
    starts: started.length,
    runs: runs.length,
    runs_succeeded: runs.filter((r) => r.status === "succeeded").length,
    redelivered,
    kills_while_job_leased: killsWhileLeased,
    kills_with_side_effects_pending: killsWithWorkPending,
    kills_aimed_at_a_job: killsAimed,
    kill_delay_ms: killDelays.length ? { min: Math.min(...killDelays), max: Math.max(...killDelays) } : null,
    deliveries_answered_by: forwarder.stats.answered_by,
    delivery_attempts_failed_over: forwarder.stats.failed_attempts, // refused, reset or timed out: the next replica tried
    deliveries_no_replica_up: forwarder.stats.unavailable,
    jobs_started_by: jobsStartedBy,
    jobs_finished_by: jobsDoneBy,
    timers_fired: timersFired,
    // A job whose lease ran out while it ran (another replica took it over): its side effect ran twice.
    job_results_dropped: started.reduce((n, s) => n + s.server.logs.filter((l) => l.msg === "job result dropped: its lease ran out").length, 0),
    chaos_ms: chaosMs,
    settle_ms: settledMs,
    total_ms: Date.now() - t0,
    api_requests: requests.length,
    faults_fired: faultStats,
    failed_invariants: invariants.filter((i) => !i.ok).length,
    invariants: invariants.length,
  };
  const serverLogs = started.map(({ replica, server }, i) =>
    `=== start ${i + 1}: ${replica} (pid ${server.pid}), ${server.running() ? "still running" : "killed"}\n${server.stderr}`);
  return { figures, invariants, dir: replicas[0].dir, dirs: replicas.map((r) => r.dir), db, serverLogs };
}

// As a script (bench/chaos/run.sh): prints figures and every invariant; exit 1 when one breaks.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const hooks = [];
  const t = { after: (fn) => hooks.push(fn) };
  const env = process.env;
  let code = 0;
  try {
    const replicas = Number(env.REPLICAS ?? 1);
    for (const faults of (env.FAULTS ?? "0,1").split(",").map((f) => f === "1")) {
      const where = replicas > 1 ? `${replicas} replicas on PostgreSQL` : `one replica on ${STORE === "postgres" ? "PostgreSQL" : "SQLite"}`;
      console.log(`\n== ${where}: ${env.KILLS ?? 200} kills, ${env.RUNS ?? "KILLS/5"} runs, host faults ${faults ? "20%" : "off"}`);
      const { figures, invariants, serverLogs } = await runChaos(t, {
        kills: Number(env.KILLS ?? 200),
        runs: Number(env.RUNS ?? Math.max(1, Math.round(Number(env.KILLS ?? 200) / 5))),
        faults,
        replicas,
        // LEASE: engine.lease on PostgreSQL (e.g. 10s); 0: the binary's default.
        lease: env.LEASE === undefined ? undefined : env.LEASE !== "0" && env.LEASE,
        settleMs: Number(env.SETTLE_MS ?? 180_000),
        log: (m) => console.log(`  ${new Date().toISOString().slice(11, 19)} ${m}`),
      });
      console.log(JSON.stringify(figures, null, 2));
      for (const i of invariants) {
        console.log(`  ${i.ok ? "ok  " : "FAIL"} ${i.name}${i.ok ? "" : "\n       " + i.detail.split("\n").join("\n       ")}`);
        if (!i.ok) code = 1;
      }
      if (invariants.some((i) => !i.ok)) {
        const file = path.join(os.tmpdir(), `tollgate-chaos-seed${figures.seed}-faults${faults ? 1 : 0}-replicas${replicas}.log`);
        fs.writeFileSync(file, serverLogs.join(""));
        console.log(`  tollgate's logs of this pass (every start of every replica, in order): ${file}`);
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
