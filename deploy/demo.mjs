#!/usr/bin/env node
// tollgate's demo: a promotion through three environments, live in the terminal.
//
//   node deploy/demo.mjs [--ci] [--port N] [--bin PATH]
//
// Starts the sandbox Git host (deploy/demo/sandbox.mjs: the test Git host with acme/payments,
// acme/env-dev, acme/env-qa, acme/env-prod, alice the approver and bob the developer) and
// `tollgate serve` on SQLite with a generated configuration in a temporary directory; merges a
// pull request in acme/payments as bob; then prints every transition of the run as tollgate's
// event stream (GET /api/v1/events) reports it. When the run reaches a stage gated by an approval
// it prints how to approve (the REST API, or an /approve comment through the sandbox) and waits.
// Ctrl-C stops what it started, by pid, and removes the temporary directory.
//
// --ci (or CI=true): no input. At the gated stage bob's /approve comment is posted (tollgate must
// refuse it: bob wrote the change), then the stage is approved through the API as alice; exits 0
// once the run succeeded, non-zero if the gate is not reached within 60 s of the merge or the run
// does not end within 60 s after that.
//
// --port: the dashboard's port (default: a free one); --bin: the tollgate binary (default
// $TOLLGATE_BIN, else build/service/tollgate). KEEP_TMP=1 keeps the temporary directory.
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import YAML from "yaml";

import { startSandbox } from "./demo/sandbox.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const HOST = "sandbox"; // the host's name in tollgate.yaml, in /hooks/sandbox and in the API
const APP = "acme/payments";
const APPROVER = "alice";
const DEVELOPER = "bob";
const BOT = "tollgate"; // tollgate's account on the sandbox
const GATE_WITHIN_MS = 60_000; // --ci: from the merge to the gated stage
const FINISH_WITHIN_MS = 60_000; // --ci: from the gated stage to the run's end

const { values: opts } = parseArgs({
  options: { ci: { type: "boolean", default: false }, port: { type: "string" }, bin: { type: "string" } },
});
const CI = opts.ci || process.env.CI === "true";
const BIN = path.resolve(opts.bin ?? process.env.TOLLGATE_BIN ?? path.join(ROOT, "build", "service", "tollgate"));

// ------------------------------------------------------------------ terminal output

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code) => (s) => (color ? `\x1b[${code}m${s}\x1b[0m` : String(s));
const bold = paint(1);
const dim = paint(2);
const red = paint(31);
const green = paint(32);
const yellow = paint(33);
const cyan = paint(36);
const say = (s = "") => process.stdout.write(s + "\n");
const secs = (ms) => `${(ms / 1000).toFixed(1)}s`;
const clock = (t) => new Date(t).toTimeString().slice(0, 8);
const sq = (s) => `'${s.replaceAll("'", "'\\''")}'`; // a shell word

function paintStatus(s) {
  if (["promoted", "succeeded", "skipped"].includes(s)) return green(s);
  if (["failed", "aborted"].includes(s)) return red(s);
  if (s === "open") return yellow(s);
  return s;
}

// ------------------------------------------------------------------ processes and cleanup

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
class DemoError extends Error {}

// What this process started, stopped in reverse order by stop().
const started = { sandbox: null, tollgate: null, dir: null, events: new AbortController() };
let stopping = null;

function stop() {
  stopping ??= (async () => {
    started.events.abort();
    const tg = started.tollgate;
    if (tg && tg.exitCode === null && tg.signalCode === null) {
      process.kill(tg.pid, "SIGTERM"); // tollgate drains in-flight requests and commits, then exits
      const exited = new Promise((r) => tg.once("exit", r));
      if ((await Promise.race([exited.then(() => true), sleep(15_000)])) !== true) process.kill(tg.pid, "SIGKILL");
    }
    await started.sandbox?.stop();
    if (started.dir && !process.env.KEEP_TMP) fs.rmSync(started.dir, { recursive: true, force: true });
  })();
  return stopping;
}

let signalled = false;
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    if (stopping) return;
    signalled = true;
    const dir = started.dir ? (process.env.KEEP_TMP ? `; keeping ${started.dir}` : `; removing ${started.dir}`) : "";
    say(dim(`\nstopping tollgate and the sandbox Git host${dir}`));
    // Interactively, Ctrl-C is how the demo ends; in CI a signal means it was cut short.
    stop().then(() => process.exit(CI ? 128 + os.constants.signals[sig] : 0));
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function logTail(file, lines = 30) {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

// ------------------------------------------------------------------ tollgate

// Writes the configuration (secrets in files next to it) and returns {file, apiToken, webhookSecret}.
function writeConfig(dir, { port, apiUrl, botToken }) {
  const secret = (name, value) => {
    fs.writeFileSync(path.join(dir, "secrets", name), value + "\n", { mode: 0o600 });
    return `secrets/${name}`;
  };
  fs.mkdirSync(path.join(dir, "secrets"), { mode: 0o700 });
  const webhookSecret = crypto.randomBytes(16).toString("hex");
  const apiToken = `tgdemo_${crypto.randomBytes(16).toString("hex")}`;
  const config = {
    listen: `127.0.0.1:${port}`,
    database: "./tollgate.db",
    data_dir: "./data",
    public_url: `http://127.0.0.1:${port}`,
    hosts: {
      [HOST]: {
        kind: "github", // the sandbox speaks GitHub's REST API and webhooks
        api_url: apiUrl,
        webhook_secret_file: secret("webhook", webhookSecret),
        token_file: secret("host-token", botToken),
        repos: ["acme/*"],
      },
    },
    // Shorter than the defaults, so the demo moves at once: `checks: all` waits 2 s for CI to
    // report instead of 10 s, and open PRs are re-read every 30 s instead of 5 min.
    engine: { checks_settle: "2s", resync_interval: "30s", probe_interval: "2s" },
    api: {
      anonymous_read: true, // the dashboard and the GETs need no token
      tokens: [{ name: "alice-cli", role: "operator", token_file: secret("api-alice", apiToken), login: APPROVER }],
    },
  };
  const file = path.join(dir, "tollgate.yaml");
  fs.writeFileSync(file, YAML.stringify(config));
  return { file, apiToken, webhookSecret };
}

async function startTollgate(dir, config, base) {
  const log = path.join(dir, "tollgate.log");
  const fd = fs.openSync(log, "a");
  // Its own process group, like the sandbox: a Ctrl-C reaches only us, and stop() ends it.
  const proc = spawn(BIN, ["serve", "--config", config], { cwd: dir, stdio: ["ignore", "ignore", fd], detached: true });
  fs.closeSync(fd);
  started.tollgate = proc;
  let spawnError = null;
  proc.once("error", (e) => (spawnError = e));
  for (let waited = 0; ; waited += 100) {
    if (spawnError) throw new DemoError(`cannot start ${BIN}: ${spawnError.message}`);
    if (proc.exitCode !== null) throw new DemoError(`tollgate serve exited with status ${proc.exitCode}:\n${logTail(log)}`);
    if ((await fetch(`${base}/readyz`).catch(() => null))?.ok) break;
    if (waited >= 20_000) throw new DemoError(`tollgate serve was not ready within 20 s:\n${logTail(log)}`);
    await sleep(100);
  }
  const probe = await fetch(`${base}/api/v1/runs?limit=1`);
  if (probe.status === 404) throw new DemoError(`${BIN} has no REST API (/api/v1 answered 404): rebuild it`);
  if (!probe.ok) throw new DemoError(`GET /api/v1/runs answered ${probe.status}: ${await probe.text()}`);
  return log;
}

// The API: GETs anonymously (as the dashboard does), POSTs with the operator token.
function apiClient(base, token) {
  const call = async (method, target, body) => {
    const headers = { accept: "application/json" };
    if (method !== "GET") Object.assign(headers, { authorization: `Bearer ${token}`, "content-type": "application/json" });
    const res = await fetch(base + target, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new DemoError(`${method} ${target}: ${res.status} ${text}`);
    return JSON.parse(text);
  };
  return { get: (t) => call("GET", t), post: (t, b) => call("POST", t, b ?? {}) };
}

// The audit entries of GET /api/v1/events as they come, reconnecting with Last-Event-ID when
// the stream breaks; yields null each time it has (re)connected. Ends when `signal` aborts.
async function* auditEvents(base, signal) {
  let lastId = null;
  while (!signal.aborted) {
    try {
      const headers = { accept: "text/event-stream" };
      if (lastId !== null) headers["last-event-id"] = lastId;
      const res = await fetch(`${base}/api/v1/events`, { headers, signal });
      if (!res.ok) throw new DemoError(`GET /api/v1/events: ${res.status} ${await res.text()}`);
      yield null;
      const decoder = new TextDecoder();
      let buf = "";
      let event = { data: [] };
      for await (const chunk of res.body) {
        buf += decoder.decode(chunk, { stream: true });
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, "");
          buf = buf.slice(nl + 1);
          if (line === "") {
            // The end of one event: `event: audit`, `id:` and one or more `data:` lines.
            if (event.id !== undefined) lastId = event.id;
            if ((event.event ?? "message") === "audit" && event.data.length) yield JSON.parse(event.data.join("\n"));
            event = { data: [] };
          } else if (!line.startsWith(":")) {
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "data") event.data.push(value);
            else event[field] = value;
          }
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof DemoError || e instanceof SyntaxError) throw e;
    }
    if (started.tollgate.exitCode !== null) throw new DemoError(`tollgate exited with status ${started.tollgate.exitCode}`);
    if (!signal.aborted) await sleep(1000); // the stream ended: reconnect
  }
}

// ------------------------------------------------------------------ the sandbox, as people

// bob opens a pull request in acme/payments and merges it, through the host's REST API as a
// person would (the branch is pushed through the admin API, as if bob had pushed it).
async function mergeChange(sandbox, n) {
  const api = sandbox.info.api_url;
  const headers = { authorization: `Bearer ${sandbox.users[DEVELOPER]}`, "content-type": "application/json" };
  const branch = `refunds-${n}`;
  const title = n === 1 ? "Faster refunds" : `Faster refunds, part ${n}`;
  const code = `def refund(payment, amount):\n    """Refunds \`amount\` of \`payment\` (change ${n})."""\n    return payment.gateway.refund(payment.id, amount)\n`;
  await sandbox.admin("POST", `/repos/${APP}/commits`, { branch, from: "main", files: { "src/refunds.py": code }, user: DEVELOPER, message: title });
  const rest = async (method, target, body) => {
    const res = await fetch(api + target, { method, headers, body: JSON.stringify(body) });
    if (!res.ok) throw new DemoError(`sandbox: ${method} ${target} as ${DEVELOPER}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const pr = await rest("POST", `/repos/${APP}/pulls`, { head: branch, base: "main", title, body: "Refunds no longer wait for the nightly batch." });
  const at = Date.now(); // times are shown from here: the merge's webhook is sent before its answer
  const merged = await rest("PUT", `/repos/${APP}/pulls/${pr.number}/merge`, { merge_method: "merge" });
  return { number: pr.number, title, sha: merged.sha, at };
}

// A comment on a promotion PR as `login`, through the sandbox's REST API (as on GitHub).
function commentCurl(sandbox, login, repo, pr, body) {
  const url = `${sandbox.info.api_url}/repos/${repo}/issues/${pr}/comments`;
  return `curl -sS -o /dev/null -w '%{http_code}\\n' -H ${sq(`Authorization: Bearer ${sandbox.users[login]}`)} -H 'Content-Type: application/json' -d ${sq(JSON.stringify({ body }))} ${url}`;
}

async function postComment(sandbox, login, repo, pr, body) {
  const res = await fetch(`${sandbox.info.api_url}/repos/${repo}/issues/${pr}/comments`, {
    method: "POST",
    headers: { authorization: `Bearer ${sandbox.users[login]}`, "content-type": "application/json" },
    body: JSON.stringify({ body }),
  });
  if (res.status !== 201) throw new DemoError(`sandbox: commenting as ${login} on ${repo}#${pr}: ${res.status} ${await res.text()}`);
  return res.json();
}

// tollgate's reply to `comment` by `login`: its first later comment that mentions them.
async function replyTo(sandbox, repo, pr, comment, login, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const res = await fetch(`${sandbox.info.api_url}/repos/${repo}/issues/${pr}/comments?per_page=100`, {
      headers: { authorization: `Bearer ${sandbox.users[DEVELOPER]}` },
    });
    const reply = (await res.json()).find((c) => c.user.login === BOT && c.id > comment.id && c.body.includes(`@${login}`));
    if (reply) return reply.body.replace(/<!--.*?-->\s*/gs, "").trim();
    await sleep(250);
  }
  return null;
}

// ------------------------------------------------------------------ following a run

// One line per audit entry: clock time, time since the merge, stage, transition, actor, reason.
function printEntry(e, change, stageWidth, extra = "") {
  const at = Date.parse(e.at);
  const where = e.stage ? e.stage.padEnd(stageWidth) : dim("run".padEnd(stageWidth));
  const plain = e.from === e.to ? e.to : `${e.from || "·"} → ${e.to}`;
  const pad = " ".repeat(Math.max(0, 22 - plain.length)); // padded outside the colour codes
  const move = e.from === e.to ? dim(plain) + pad : `${e.from || "·"} → ${paintStatus(e.to)}${pad}`;
  const who = e.actor && e.actor !== BOT ? `${cyan(e.actor)}: ` : "";
  say(`${dim(clock(at))} ${`+${secs(at - change.at)}`.padStart(7)}  ${bold(where)}  ${move}  ${who}${e.reason}${extra}`);
}

function approvalHelp(ctx, run, stage) {
  const a = stage.gates.approvals;
  const who = a.from?.length ? ` from ${a.from.join(", ")}` : "";
  say();
  say(yellow(`  ${stage.name} waits for ${a.count} approval${a.count > 1 ? "s" : ""}${who}. Approve it as ${APPROVER}, either`));
  say(`  - through tollgate's API, with the operator token of ${APPROVER}:`);
  say(`      curl -sS -o /dev/null -w '%{http_code}\\n' -X POST -H ${sq(`Authorization: Bearer ${ctx.apiToken}`)} ${ctx.base}/api/v1/runs/${run.id}/stages/${stage.name}/approve`);
  say(`  - or as on GitHub: ${APPROVER} comments /approve on the promotion PR, through the sandbox's API:`);
  say(`      ${commentCurl(ctx.sandbox, APPROVER, stage.repo, stage.pr.number, "/approve")}`);
  say(`  (${DEVELOPER} may not: he wrote the change, and tollgate answers his /approve with a refusal on the PR.)`);
  say(`  The run in the dashboard: ${ctx.base}/#/runs/${run.id}`);
  say();
}

// --ci at the gate: bob's /approve through the comment path (refused: he is the author), then
// the approval through the API as alice.
async function approveNonInteractively(ctx, run, stage) {
  const comment = await postComment(ctx.sandbox, DEVELOPER, stage.repo, stage.pr.number, "/approve");
  const reply = await replyTo(ctx.sandbox, stage.repo, stage.pr.number, comment, DEVELOPER, 20_000);
  if (!reply) throw new DemoError(`tollgate did not answer ${DEVELOPER}'s /approve comment on ${stage.repo}#${stage.pr.number} within 20 s`);
  if (!/refused/.test(reply)) throw new DemoError(`tollgate accepted ${DEVELOPER}'s own approval; its reply: ${reply}`);
  say(dim(`  comment path: ${DEVELOPER}'s /approve on ${stage.repo}#${stage.pr.number} → ${reply.split("\n")[0]}`));
  const answer = await ctx.api.post(`/api/v1/runs/${run.id}/stages/${stage.name}/approve`, { reason: "approved by deploy/demo.mjs --ci" });
  say(dim(`  API: POST /api/v1/runs/${run.id}/stages/${stage.name}/approve as ${APPROVER} → run ${answer.run.status}`));
}

// Follows the event stream (skipping the nulls of reconnections) and prints the run of `change`;
// resolves {gateMs, totalMs, status} when it ends. In --ci, `ctx.watchdog(ms, message)` bounds
// the time to the gated stage and from there to the end.
async function follow(ctx, stream, change) {
  let run = null; // the run's detail (GET /api/v1/runs/{id}), refreshed when a stage opens
  let width = 4;
  let gateMs = null;
  let approving = null;
  if (CI) ctx.watchdog(GATE_WITHIN_MS, `the run did not reach its gated stage within ${GATE_WITHIN_MS / 1000} s of the merge`);
  for (;;) {
    const { value: e, done } = await stream.next();
    if (done) throw new DemoError("the event stream ended");
    if (!e) continue;
    if (!run) {
      if (e.pipeline !== "payments" || ctx.followed.has(e.run_id)) continue; // not an earlier change's run
      ctx.followed.add(e.run_id);
      run = await ctx.api.get(`/api/v1/runs/${e.run_id}`);
      width = Math.max(...run.stages.map((s) => s.name.length), 4);
      say(`${bold(`run ${run.id}`)}: ${run.pipeline} ${run.version} from ${run.source.repo}#${run.source.pr}, stages ${run.stages.map((s) => s.name).join(" → ")}`);
    }
    if (e.run_id !== run.id) continue;
    if (!(e.stage && e.from === "preparing" && e.to === "open")) {
      printEntry(e, change, width);
      if (!e.stage && ["succeeded", "failed", "aborted", "superseded"].includes(e.to)) {
        await approving;
        return { gateMs, totalMs: Date.parse(e.at) - change.at, status: e.to };
      }
      continue;
    }
    // A promotion PR opened: name it, and stop at a stage that waits for approvals.
    run = await ctx.api.get(`/api/v1/runs/${run.id}`);
    const stage = run.stages.find((s) => s.name === e.stage);
    printEntry(e, change, width, stage.pr ? ` in ${stage.repo}` : "");
    const approvals = stage.gates.approvals;
    if (!approvals || approvals.given.length >= approvals.count) continue;
    gateMs ??= Date.parse(e.at) - change.at;
    if (!CI) {
      approvalHelp(ctx, run, stage);
      continue;
    }
    ctx.watchdog(FINISH_WITHIN_MS, `the run did not end within ${FINISH_WITHIN_MS / 1000} s of reaching ${stage.name}`);
    approving = approveNonInteractively(ctx, run, stage);
    approving.catch((err) => ctx.fail(err));
  }
}

// ------------------------------------------------------------------ main

async function main() {
  if (!fs.existsSync(BIN)) throw new DemoError(`no tollgate binary at ${BIN}: build it (deploy/quickstart.sh) or pass --bin`);
  const port = opts.port ? Number(opts.port) : await freePort();
  if (!(Number.isInteger(port) && port > 0 && port < 65536)) throw new DemoError(`--port ${opts.port}: not a port number`);
  const base = `http://127.0.0.1:${port}`;
  started.dir = fs.mkdtempSync(path.join(os.tmpdir(), "tollgate-demo-"));

  say(bold("tollgate demo") + dim(` (${CI ? "non-interactive" : "Ctrl-C stops everything"})`));
  started.sandbox = await startSandbox();
  const sandbox = started.sandbox;
  say(`  sandbox Git host  ${sandbox.info.api_url}  ${dim(`(GitHub's REST API; git at ${sandbox.info.git_url}, pid ${sandbox.pid})`)}`);
  say(`                    ${dim(`users: tollgate (its account), alice (@acme/sre, approver), bob (developer); repos: ${sandbox.repos.join(", ")}`)}`);

  const { file, apiToken, webhookSecret } = writeConfig(started.dir, { port, apiUrl: sandbox.info.api_url, botToken: sandbox.users[BOT] });
  const log = await startTollgate(started.dir, file, base);
  await sandbox.admin("PUT", "/webhook", { url: `${base}/hooks/${HOST}`, secret: webhookSecret });
  say(`  tollgate serve    ${base}  ${dim(`(pid ${started.tollgate.pid}, SQLite; config ${file})`)}`);
  say(`  its log           ${log}`);
  say(`  dashboard         ${bold(base + "/")}`);
  say();

  // A failure found off the main path (a watchdog, the --ci approval) ends the demo through
  // `failed`; one watchdog at a time, replaced by the next.
  let rejectFailed;
  const failed = new Promise((_, reject) => (rejectFailed = reject));
  failed.catch(() => {});
  let watchdog;
  const ctx = {
    base,
    sandbox,
    apiToken,
    api: apiClient(base, apiToken),
    followed: new Set(), // ids of the runs already shown
    fail: (err) => rejectFailed(err instanceof Error ? err : new DemoError(err)),
    watchdog: (ms, message) => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => ctx.fail(message), ms);
    },
  };

  const input = process.stdin.isTTY ? readline.createInterface({ input: process.stdin }) : null;
  const stream = auditEvents(base, started.events.signal);
  // Connected: from now on no transition is missed.
  await Promise.race([stream.next(), sleep(10_000).then(() => Promise.reject(new DemoError("GET /api/v1/events did not answer within 10 s")))]);
  for (let n = 1; ; n++) {
    const change = await mergeChange(sandbox, n);
    say(`${dim(clock(change.at))}    ${bold(DEVELOPER)} merged ${APP}#${change.number} "${change.title}" (${change.sha.slice(0, 7)})`);
    const result = await Promise.race([follow(ctx, stream, change), failed])
      .catch((e) => {
        if (e instanceof DemoError) e.message += `\n\ntollgate's log (${log}), last lines:\n${logTail(log)}`;
        throw e;
      })
      .finally(() => clearTimeout(watchdog));
    say();
    const summary = `run ${result.status}: gated stage reached after ${result.gateMs === null ? "—" : secs(result.gateMs)}, whole run ${secs(result.totalMs)}`;
    if (result.status !== "succeeded") throw new DemoError(summary);
    say(green(summary));
    if (CI) return;
    say(`The dashboard shows it: ${bold(base + "/")}. ${input ? "Press Enter to merge another change; " : ""}Ctrl-C stops everything.`);
    if (!input) return new Promise(() => {}); // until a signal
    await new Promise((resolve) => input.once("line", resolve));
  }
}

// However the demo ends unexpectedly (an error, a closed stdout), it stops what it started; after
// a signal, the signal's handler is doing that already.
function fail(e) {
  if (signalled || stopping) return;
  const why = e instanceof DemoError ? e.message : e.code === "EPIPE" ? "its output was closed" : e.stack;
  try {
    console.error(red(`demo failed: ${why}`));
  } catch {} // stderr may be gone too
  stop().finally(() => process.exit(1));
}
process.on("uncaughtException", fail);
process.on("unhandledRejection", fail);

main()
  .then(() => stop())
  .then(() => process.exit(0), fail);
