// The world of the promotion end-to-end tests: the test Git host (tests/githost/server.mjs: real
// git over http-backend, GitHub-shaped REST API and webhooks) and a real `tollgate serve` whose
// host is that test host. Both are started per test and stopped by pid when it ends.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

import YAML from "yaml";

import { adminClient, readyInfo } from "../githost/client.mjs";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const BIN = process.env.TOLLGATE_BIN;
export const SKIP = BIN ? false : "TOLLGATE_BIN is not set: point it at a built tollgate binary";
export const WEBHOOK_SECRET = "promotion e2e secret";

// The tollgate processes running, by the directory they run in (startTollgate).
const running = new Set();

// A directory for one test, removed when the test ends (kept with KEEP_TMP). Hooks run in the order
// they were added, so this one runs before those that kill the processes started later: the
// tollgate processes that run in it are killed first, and it is removed once they have exited
// (one still writing its mirrors would make the removal fail with ENOTEMPTY).
export function tempDir(t, prefix = "tollgate-promote-") {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(async () => {
    const inside = [...running].filter((s) => s.dir === dir || s.dir.startsWith(dir + path.sep));
    for (const s of inside) s.kill("SIGKILL");
    await Promise.all(inside.map((s) => s.exit));
    if (!process.env.KEEP_TMP) fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
  });
  return dir;
}

// ---------------------------------------------------------------------------------------------
// The store. The suites run on SQLite (a file in the test's directory), or with
// TOLLGATE_TEST_STORE=postgres on the PostgreSQL server at TOLLGATE_TEST_POSTGRES
// (tests/service/on_postgres.sh sets both; tests/run.sh starts a server): each test then gets a
// schema of its own, named in the database URL tollgate is given.

export const STORE = process.env.TOLLGATE_TEST_STORE === "postgres" ? "postgres" : "sqlite";
export const POSTGRES = process.env.TOLLGATE_TEST_POSTGRES || "";
if (STORE === "postgres" && !POSTGRES) throw new Error("TOLLGATE_TEST_STORE=postgres needs TOLLGATE_TEST_POSTGRES (a server URL)");
const SQLITE_DATABASE = "./tollgate.db"; // relative to the config file's directory

export const isPostgres = (db) => /^postgres(ql)?:\/\//.test(db);

// The `database:` of a test's config: a fresh store on `store` (default: the one the suites run
// on). On PostgreSQL a new schema, dropped when the test ends (kept with KEEP_TMP), in the URL as
// libpq's options parameter (as tests/service/pg_test.cpp does) and as application_name, which
// names the connections to end before the drop.
export function testDatabase(t, { store = STORE } = {}) {
  if (store !== "postgres") return SQLITE_DATABASE;
  assert.ok(POSTGRES, "the PostgreSQL store needs TOLLGATE_TEST_POSTGRES (a server URL)");
  const schema = `t_${crypto.randomBytes(6).toString("hex")}`;
  psql(POSTGRES, `CREATE SCHEMA ${schema};`);
  t.after(() => {
    if (process.env.KEEP_TMP) return;
    // Runs before the tollgate processes started after it are killed (hooks run in order): their
    // sessions are ended first, or one in a transaction would hold the drop up (and one that
    // reconnected in between would, so a few tries).
    let r;
    for (let i = 0; i < 3 && r?.status !== 0; i++) {
      r = psql(
        POSTGRES,
        `SET client_min_messages = warning;
         SET lock_timeout = '5s';
         SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '${schema}';
         DROP SCHEMA ${schema} CASCADE;`,
        {},
        { check: false },
      );
    }
    if (r.status !== 0) process.stderr.write(`could not drop schema ${schema}: ${r.stderr}`);
  });
  const sep = POSTGRES.includes("?") ? "&" : "?";
  return `${POSTGRES}${sep}application_name=${schema}&options=-csearch_path%3D${schema}`;
}

// The database a config names, as sql() takes it: a URL as it is, a SQLite file relative to the
// config's directory.
export function databaseOf(configFile) {
  const database = YAML.parse(fs.readFileSync(configFile, "utf8")).database ?? SQLITE_DATABASE;
  return isPostgres(database) ? database : path.resolve(path.dirname(configFile), database);
}

// psql on `url` with `script` on stdin (so that `vars`, set with -v, are interpolated: :'name').
function psql(url, script, vars = {}, { check = true } = {}) {
  const r = spawnSync("psql", psqlArgs(url, vars), { input: script, encoding: "utf8", maxBuffer: 512 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (check && r.status !== 0) throw new Error(`psql failed (exit ${r.status}):\n${script}\n${r.stderr}`);
  return r;
}

function psqlArgs(url, vars) {
  const args = ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url];
  for (const [k, v] of Object.entries(vars)) args.push("-v", `${k}=${v}`);
  return args;
}

// python3's sqlite3 (Node 20 has none); blobs come back as text.
const PY_QUERY = `
import json, sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=10)
con.row_factory = sqlite3.Row
rows = [dict(r) for r in con.execute(sys.argv[2], json.loads(sys.argv[3]))]
def enc(v):
    if isinstance(v, (bytes, bytearray)):
        return v.decode("utf-8", "replace")
    return str(v)
sys.stdout.write(json.dumps(rows, default=enc))
`;

// Rows of a query on tollgate's database, as objects: `db` is a SQLite file or a PostgreSQL URL
// (a server's `db`). `?` placeholders take `params` in order. The SQL must read the same on both
// stores (portable functions, lower-case column names); integers come back as numbers.
export function sql(db, query, params = []) {
  const c = sqlCommand(db, query, params);
  const r = spawnSync(c.cmd, c.args, { input: c.input, encoding: "utf8", maxBuffer: 512 * 1024 * 1024 });
  if (r.error) throw r.error;
  return sqlRows(c, r.status, r.stdout, r.stderr);
}

// The same without blocking the event loop (for pollers that share their process with servers:
// bench/promote/promote.mjs's webhook forwarder).
export function sqlAsync(db, query, params = []) {
  const c = sqlCommand(db, query, params);
  return new Promise((resolve, reject) => {
    const child = spawn(c.cmd, c.args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (status) => {
      try {
        resolve(sqlRows(c, status, stdout, stderr));
      } catch (e) {
        reject(e);
      }
    });
    child.stdin.end(c.input ?? "");
  });
}

// The command sql() runs: python3's sqlite3 on a file, psql on a URL.
function sqlCommand(db, query, params) {
  if (!isPostgres(db)) {
    assert.ok(fs.existsSync(db), `database ${db} does not exist`);
    return { cmd: "python3", args: ["-c", PY_QUERY, db, query, JSON.stringify(params)], query, what: "python3 sqlite3 query" };
  }
  // Each `?` outside a string literal becomes the psql variable :'pN' (a quoted literal, which
  // PostgreSQL reads as the type the comparison needs), or NULL; the rows come back as one JSON array.
  const vars = {};
  let n = 0;
  let quoted = false;
  let bound = "";
  for (const ch of query) {
    if (ch === "'") quoted = !quoted;
    if (ch !== "?" || quoted) {
      bound += ch;
      continue;
    }
    assert.ok(n < params.length, `more ? than params in: ${query}`);
    const v = params[n++];
    if (v === null || v === undefined) {
      bound += "NULL";
    } else {
      vars[`p${n}`] = String(v);
      bound += `:'p${n}'`;
    }
  }
  assert.equal(n, params.length, `${params.length} params for ${n} placeholders in: ${query}`);
  // (The rows' alias must not be a column's name, or json_agg would take that column.)
  const script = `SELECT COALESCE(json_agg(tollgate_row), '[]'::json) FROM (${bound}) tollgate_row;\n`;
  return { cmd: "psql", args: psqlArgs(db, vars), input: script, query: script, what: "psql" };
}

function sqlRows(c, status, stdout, stderr) {
  if (status !== 0) throw new Error(`${c.what} failed (exit ${status}): ${c.query}\n${stderr}`);
  return JSON.parse(stdout);
}

// ---------------------------------------------------------------------------------------------
// The world

// Starts the test Git host; resolves with its ready line ({api_url, git_url, ...}) and an admin client.
export async function startGithost(t) {
  const child = spawn(process.execPath, [path.join(ROOT, "tests", "githost", "server.mjs"), "--exit-on-stdin-close"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, "SIGTERM");
  });
  const info = await readyInfo(child);
  const admin = adminClient(info.api_url);
  return { child, info, admin };
}

// Writes tollgate.yaml for one GitHub-kind host at the test host; returns its path.
// `engine`: the config's engine section (e.g. {resync_interval: "2s"}); `api`: its api section
// (docs/api.md: anonymous_read, tokens); `database`: the config's database (testDatabase(t)).
export function writeConfig(dir, { apiUrl, token, kind = "github", name = "github", engine, api, database = SQLITE_DATABASE }) {
  fs.writeFileSync(path.join(dir, "webhook.secret"), WEBHOOK_SECRET + "\n");
  fs.writeFileSync(path.join(dir, "token"), token + "\n");
  const config = {
    listen: "127.0.0.1:0",
    database,
    data_dir: "./data",
    public_url: "http://127.0.0.1:8080",
    hosts: { [name]: { kind, api_url: apiUrl, webhook_secret_file: "webhook.secret", token_file: "token", repos: ["acme/*"] } },
  };
  if (engine) config.engine = engine;
  if (api) config.api = api;
  const file = path.join(dir, "tollgate.yaml");
  fs.writeFileSync(file, YAML.stringify(config));
  return file;
}

// Starts `tollgate serve` in `dir` (its tollgate.yaml, or `configFile`); resolves once it logs
// "listening" with {port, db, logs, stderr, exit, running(), kill()}. `db` is what sql() takes:
// the config's database (a URL, or the SQLite file's path). `env`: more environment variables.
// The process is killed (SIGKILL, by pid) when the test ends unless it has exited by then.
export async function startTollgate(t, dir, { configFile = path.join(dir, "tollgate.yaml"), threads = 2, env = {} } = {}) {
  // A test that timed out has run its after hooks, but its body goes on: a process it started now
  // would outlive the test and keep the test file from exiting.
  if (t.signal?.aborted) throw new Error("the test has ended (timed out or cancelled): tollgate not started");
  const proc = spawn(BIN, ["serve", "--config", configFile, "--threads", String(threads)], {
    cwd: dir,
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ...env },
  });
  const server = {
    proc,
    pid: proc.pid,
    dir,
    db: databaseOf(configFile),
    logs: [], // parsed JSON lines (or {raw} for others)
    stderr: "",
    exit: new Promise((resolve) => {
      proc.on("exit", (code, signal) => resolve({ code, signal, at: Date.now() }));
      proc.on("error", (error) => resolve({ code: null, signal: null, error, at: Date.now() })); // did not start
    }),
    // (no pid: the spawn failed, there is nothing to kill)
    running: () => proc.pid !== undefined && proc.exitCode === null && proc.signalCode === null,
    kill(signal = "SIGKILL") {
      if (server.running()) process.kill(proc.pid, signal);
    },
  };
  running.add(server);
  server.exit.then(() => running.delete(server));
  t.after(() => server.kill("SIGKILL"));
  const lines = readline.createInterface({ input: proc.stderr });
  let onLine;
  lines.on("line", (line) => {
    server.stderr += line + "\n";
    if (process.env.TOLLGATE_E2E_LOG) process.stderr.write(line + "\n");
    let parsed;
    try {
      parsed = JSON.parse(line);
    } catch {
      parsed = { raw: line };
    }
    server.logs.push(parsed);
    onLine?.(parsed);
  });
  const address = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tollgate did not log "listening" within 10 s:\n${server.stderr}`)), 10_000);
    onLine = (l) => {
      if (l.msg === "listening") {
        clearTimeout(timer);
        resolve(l.address);
      }
    };
    server.exit.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`tollgate exited (code ${code}, signal ${signal}) before listening:\n${server.stderr}`));
    });
    proc.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  const m = /^127\.0\.0\.1:(\d+)$/.exec(address);
  assert.ok(m, `"listening" address should be 127.0.0.1:PORT, got ${address}`);
  server.port = Number(m[1]);
  return server;
}

// The jobs (timers aside) that are not done, once those still pending or leased have had `ms` to
// finish: a run ends before its last status update is written, so a check made as it ends can find
// that write in flight (more so on a slow build, a sanitizer's).
export async function unfinishedJobs(db, { ms = 20_000 } = {}) {
  const query = "SELECT kind, stage, state, last_error FROM jobs WHERE state <> 'done' AND kind <> 'timer' ORDER BY id";
  const deadline = Date.now() + ms;
  let rows = sql(db, query);
  while (rows.some((j) => j.state === "pending" || j.state === "leased") && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    rows = sql(db, query);
  }
  return rows;
}

// Polls `fn` until it returns a truthy value; fails with `what` (and the last value) after `ms`.
export async function eventually(what, fn, { ms = 30_000, every = 100 } = {}) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, every));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}; last: ${JSON.stringify(last)}`);
}

// Users (tollgate-bot: tollgate's account; alice, bob, carol: people), the organisation `acme`,
// the application repository acme/app with its pipeline file, and the environment repositories.
export async function seed(admin, { pipeline, envRepos = ["env-dev"] }) {
  const alice = await admin("POST", "/users", { login: "alice" });
  const bob = await admin("POST", "/users", { login: "bob" });
  const carol = await admin("POST", "/users", { login: "carol" });
  await admin("POST", "/orgs", { login: "acme" });
  await admin("POST", "/repos", {
    owner: "acme",
    name: "app",
    files: { ".tollgate.yaml": pipeline, "src/app.txt": "v1\n" },
    collaborators: { alice: "write", bob: "write", carol: "read", "tollgate-bot": "read" },
  });
  for (const name of envRepos) {
    await admin("POST", "/repos", {
      owner: "acme",
      name,
      files: { "apps/app/values.yaml": "# the app in this environment\nimage:\n  repository: ghcr.io/acme/app\n  tag: old # set by tollgate\n" },
      collaborators: { "tollgate-bot": "write", alice: "write", bob: "write", carol: "read" },
    });
  }
  return { alice, bob, carol };
}

// The whole world for one test: the test host, tollgate's account, tollgate serve (webhooks
// pointed at it), and seed(); `engine`, `api`: the config's sections of those names (token files
// named in `api` must exist before the call). Returns {dir, admin, info, tollgate, bot, alice, bob, carol}.
export async function startWorld(t, { pipeline, envRepos, engine, api } = {}) {
  const dir = tempDir(t);
  const { admin, info } = await startGithost(t);
  const bot = await admin("POST", "/users", { login: "tollgate-bot", x_access_token: true });
  writeConfig(dir, { apiUrl: info.api_url, token: bot.token, engine, api, database: testDatabase(t) });
  const tollgate = await startTollgate(t, dir);
  await admin("PUT", "/webhook", { url: `http://127.0.0.1:${tollgate.port}/hooks/github`, secret: WEBHOOK_SECRET });
  const people = await seed(admin, { pipeline, envRepos });
  return { dir, admin, info, tollgate, bot, ...people };
}

// Why a wait failed, for the assertion message: runs, unfinished jobs and the log's tail.
export function diagnose(tollgate) {
  let runs = [];
  let jobs = [];
  try {
    runs = sql(tollgate.db, "SELECT id, status FROM runs");
    jobs = sql(tollgate.db, "SELECT id, kind, stage, state, attempts, last_error FROM jobs WHERE state <> 'done'");
  } catch {}
  return `runs: ${JSON.stringify(runs)}\nunfinished jobs: ${JSON.stringify(jobs)}\nlog tail:\n${tollgate.stderr.split("\n").slice(-30).join("\n")}`;
}

export async function mergeSourceChange(admin, { branch = "feature", text = "v2\n", user = "alice" } = {}) {
  await admin("POST", "/repos/acme/app/commits", { branch, from: "main", files: { "src/app.txt": text }, user, message: "change the app" });
  const pr = await admin("POST", "/repos/acme/app/pulls", { head: branch, base: "main", title: "Change the app", user });
  const merged = await admin("POST", `/repos/acme/app/pulls/${pr.number}/merge`, { user });
  return { pr, merged };
}

export async function pulls(api, repo, token, state = "all") {
  const res = await fetch(`${api}/repos/${repo}/pulls?state=${state}&per_page=100`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  return res.json();
}

// values.yaml with only the tag changed, comments kept. A short sha that YAML would read as a
// number (all digits, or like 12e4567) must be quoted to stay a string: either form is accepted,
// and the parsed value must be the string.
export function assertReleaseValues(text, shortSha, what) {
  const plain = `# the app in this environment\nimage:\n  repository: ghcr.io/acme/app\n  tag: ${shortSha} # set by tollgate\n`;
  const quoted = plain.replace(`tag: ${shortSha}`, `tag: "${shortSha}"`);
  assert.ok(text === plain || text === quoted, `${what}: got ${JSON.stringify(text)}`);
  assert.equal(YAML.parse(text).image.tag, shortSha, `${what}: the tag is the string ${shortSha}`);
}

export async function fileAt(api, repo, file, ref, token) {
  const res = await fetch(`${api}/repos/${repo}/contents/${file}?ref=${ref}`, {
    headers: { authorization: `Bearer ${token}`, accept: "application/vnd.github.raw" },
  });
  return res.status === 200 ? res.text() : null;
}
