// The world of the promotion end-to-end tests: the test Git host (tests/githost/server.mjs: real
// git over http-backend, GitHub-shaped REST API and webhooks) and a real `tollgate serve` whose
// host is that test host. Both are started per test and stopped by pid when it ends.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
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

export function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tollgate-promote-"));
  t.after(() => {
    if (!process.env.KEEP_TMP) fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

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
// (docs/api.md: anonymous_read, tokens).
export function writeConfig(dir, { apiUrl, token, kind = "github", name = "github", engine, api }) {
  fs.writeFileSync(path.join(dir, "webhook.secret"), WEBHOOK_SECRET + "\n");
  fs.writeFileSync(path.join(dir, "token"), token + "\n");
  const config = {
    listen: "127.0.0.1:0",
    database: "./tollgate.db",
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

// Starts `tollgate serve`; resolves once it logs "listening" with {port, logs, kill(), exit}.
export async function startTollgate(t, dir) {
  const proc = spawn(BIN, ["serve", "--config", path.join(dir, "tollgate.yaml"), "--threads", "2"], {
    cwd: dir,
    stdio: ["ignore", "ignore", "pipe"],
  });
  const server = {
    proc,
    db: path.join(dir, "tollgate.db"),
    logs: [],
    stderr: "",
    exit: new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal }))),
    running: () => proc.exitCode === null && proc.signalCode === null,
    kill(signal = "SIGKILL") {
      if (server.running()) process.kill(proc.pid, signal);
    },
  };
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
  });
  server.port = Number(/:(\d+)$/.exec(address)[1]);
  return server;
}

// Rows of a query on tollgate's database (python3's sqlite3: Node 20 has none).
export function sql(db, query, params = []) {
  const script =
    "import json,sqlite3,sys\n" +
    "c=sqlite3.connect(sys.argv[1])\n" +
    "c.row_factory=sqlite3.Row\n" +
    "print(json.dumps([dict(r) for r in c.execute(sys.argv[2], json.loads(sys.argv[3]))]))\n";
  const r = spawnSync("python3", ["-c", script, db, query, JSON.stringify(params)], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
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
  writeConfig(dir, { apiUrl: info.api_url, token: bot.token, engine, api });
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
