// End-to-end tests of `tollgate serve` (issue 3, webhook intake): a real process, real HTTP over
// loopback, a real store: a SQLite file, or with TOLLGATE_TEST_STORE=postgres a schema of its own
// on the PostgreSQL server at TOLLGATE_TEST_POSTGRES (tests/promote/world.mjs). Every test starts
// its own server in a fresh temporary directory and kills it (by pid) when it ends, pass or fail.
//
//   TOLLGATE_BIN=/work/main/build-e2e/service/tollgate node --test tests/serve/
//   TOLLGATE_TEST_STORE=postgres TOLLGATE_TEST_POSTGRES=postgresql://... TOLLGATE_BIN=... node --test tests/serve/
//
// Inputs are externally written: the 329 real GitHub examples of @octokit/webhooks-examples@7.6.1,
// signed with GitHub's own signer (@octokit/webhooks-methods), and the GitLab / Gitea deliveries of
// tests/fixtures/webhooks/ (go-playground/webhooks test data, see the README there). The database
// is read with world.mjs's sql() (python3's sqlite3 module, or psql) and `tollgate inbox`.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

import { sign } from "@octokit/webhooks-methods";
import YAML from "yaml";

import { isPostgres, sql, startTollgate, tempDir as worldTempDir, testDatabase } from "../promote/world.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const require = createRequire(import.meta.url);
const EXAMPLES_FILE = require.resolve("@octokit/webhooks-examples/api.github.com/index.json", { paths: [ROOT] });
const BIN = process.env.TOLLGATE_BIN;
const SKIP = BIN ? false : "TOLLGATE_BIN is not set: point it at a built tollgate binary to run the serve tests";

// The event types tollgate acts on (issue 3, "Normalisation"); every other type is acknowledged
// without being stored.
const USED = {
  github: new Set(["pull_request", "issue_comment", "pull_request_review", "status", "check_run", "push"]),
  gitlab: new Set(["Merge Request Hook", "Note Hook", "Pipeline Hook", "Push Hook"]),
  // X-Gitea-Event values: reviews arrive as pull_request_approved / _rejected / _comment (Gitea's
  // HookEventType.Event()); the detailed pull_request_review_* names as well, in case.
  gitea: new Set([
    "pull_request",
    "issue_comment",
    "pull_request_approved",
    "pull_request_rejected",
    "pull_request_comment",
    "pull_request_review_approved",
    "pull_request_review_rejected",
    "pull_request_review_comment",
    "status",
    "push",
  ]),
};

const GITHUB_SECRET = "It's a Secret to Everybody";
const GITHUB_SECRET_2 = "rotated-in secret #2";
const GITLAB_SECRET = "gitlab-token-8c1f0e";
const GITEA_SECRET = "gitea secret with spaces";

// ---------------------------------------------------------------------------------------------
// Inputs

let examplesCache;
function examples() {
  examplesCache ??= JSON.parse(fs.readFileSync(EXAMPLES_FILE, "utf8"));
  return examplesCache;
}
function example(event, action) {
  const group = examples().find((g) => g.name === event);
  const ex = action ? group.examples.find((e) => e.action === action) : group.examples[0];
  assert.ok(ex, `no ${event} ${action ?? ""} example in @octokit/webhooks-examples`);
  return ex;
}
const prOpened = () => JSON.stringify(example("pull_request", "opened"));

function fixtureDir(kind) {
  const own = path.join(ROOT, "tests", "fixtures", "webhooks", kind);
  if (fs.existsSync(own) && fs.readdirSync(own).some((f) => f.endsWith(".json"))) return own;
  return path.join(ROOT, "..", "shared", "fixtures", "webhooks", kind);
}
function fixtureFiles(kind) {
  const dir = fixtureDir(kind);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => ({ file: f, path: path.join(dir, f), body: fs.readFileSync(path.join(dir, f), "utf8") }));
}

// X-Gitlab-Event for a GitLab payload, after its object_kind (GitLab's "Webhook events" docs).
function gitlabEvent(file, payload) {
  if (file.startsWith("system-")) return "System Hook";
  const confidential = payload.event_type === "confidential_issue" || payload.event_type === "confidential_note";
  const byKind = {
    push: "Push Hook",
    tag_push: "Tag Push Hook",
    merge_request: "Merge Request Hook",
    note: confidential ? "Confidential Note Hook" : "Note Hook",
    pipeline: "Pipeline Hook",
    issue: confidential ? "Confidential Issue Hook" : "Issue Hook",
    build: "Job Hook",
    deployment: "Deployment Hook",
    release: "Release Hook",
    wiki_page: "Wiki Page Hook",
    feature_flag: "Feature Flag Hook",
    emoji: "Emoji Hook",
    member: "Member Hook",
    access_token: "Resource Access Token Hook",
  };
  const event = byKind[payload.object_kind];
  assert.ok(event, `${file}: no X-Gitlab-Event known for object_kind ${payload.object_kind}`);
  return event;
}

// X-Gitea-Event and X-Gitea-Event-Type for a fixture, from its file name: the hook event type
// (pull-request-event.json -> pull_request, issue-comment -> issue_comment, push -> push), sent in
// X-Gitea-Event as Gitea's HookEventType.Event() names it (modules/webhook/type.go): PR variants
// as pull_request, a comment on a PR as issue_comment, reviews as pull_request_approved /
// pull_request_rejected / pull_request_comment, issue variants as issues.
function giteaEvent(file) {
  const base = file.replace(/\.json$/, "").replace(/-event$/, "").replaceAll("-", "_");
  const table = {
    pull_request_merged: ["pull_request", "pull_request"],
    pull_request_synchronized: ["pull_request", "pull_request_sync"],
    pull_request_label: ["pull_request", "pull_request_label"],
    pull_request_assign: ["pull_request", "pull_request_assign"],
    pull_request_milestone: ["pull_request", "pull_request_milestone"],
    pull_request_comment: ["issue_comment", "pull_request_comment"],
    pull_request_review: ["pull_request_comment", "pull_request_review_comment"],
    pull_request_review_approved: ["pull_request_approved", "pull_request_review_approved"],
    pull_request_review_rejected: ["pull_request_rejected", "pull_request_review_rejected"],
    issue_assign: ["issues", "issue_assign"],
    issue_label: ["issues", "issue_label"],
    issue_milestone: ["issues", "issue_milestone"],
  };
  const [event, type] = table[base] ?? [base, base];
  return { event, type };
}

const hmacHex = (secret, body) => crypto.createHmac("sha256", secret).update(body).digest("hex");

async function githubHeaders(event, id, body, { secret = GITHUB_SECRET, contentType = "application/json" } = {}) {
  return {
    "User-Agent": "GitHub-Hookshot/e2e",
    "Content-Type": contentType,
    "X-GitHub-Event": event,
    "X-GitHub-Delivery": id,
    "X-GitHub-Hook-ID": "42",
    "X-Hub-Signature-256": await sign(secret, body),
  };
}

function gitlabHeaders(event, id) {
  return {
    "User-Agent": "GitLab/17.5.0",
    "Content-Type": "application/json",
    "X-Gitlab-Event": event,
    "X-Gitlab-Token": GITLAB_SECRET,
    "X-Gitlab-Instance": "https://gitlab.example.com",
    "X-Gitlab-Event-UUID": id,
    "Idempotency-Key": id,
  };
}

// As Gitea sends them: its own headers plus the GitHub and Gogs look-alikes.
function giteaHeaders(event, type, id, body, secret = GITEA_SECRET) {
  const sig = hmacHex(secret, body);
  return {
    "User-Agent": "Go-http-client/1.1",
    "Content-Type": "application/json",
    "X-Gitea-Event": event,
    "X-Gitea-Event-Type": type,
    "X-Gitea-Delivery": id,
    "X-Gitea-Signature": sig,
    "X-Gogs-Event": event,
    "X-Gogs-Event-Type": type,
    "X-Gogs-Delivery": id,
    "X-Gogs-Signature": sig,
    "X-GitHub-Event": event,
    "X-GitHub-Event-Type": type,
    "X-GitHub-Delivery": id,
    "X-Hub-Signature": "sha1=" + crypto.createHmac("sha1", secret).update(body).digest("hex"),
    "X-Hub-Signature-256": "sha256=" + sig,
  };
}

// ---------------------------------------------------------------------------------------------
// The server

const tempDir = (t) => worldTempDir(t, "tollgate-serve-");

// Writes the secrets and tollgate.yaml (its database: a fresh store, testDatabase) into `dir`;
// returns the configuration's path.
function writeConfig(t, dir, { intake, hosts } = {}) {
  fs.writeFileSync(path.join(dir, "github.secret"), `${GITHUB_SECRET}\n${GITHUB_SECRET_2}\n`);
  fs.writeFileSync(path.join(dir, "gitlab.secret"), `${GITLAB_SECRET}\n`);
  fs.writeFileSync(path.join(dir, "gitea.secret"), `${GITEA_SECRET}\n`);
  const config = {
    listen: "127.0.0.1:0",
    database: testDatabase(t),
    data_dir: "./data",
    public_url: "http://127.0.0.1:8080",
    hosts: hosts ?? {
      github: { kind: "github", webhook_secret_file: "github.secret" },
      gitlab: { kind: "gitlab", api_url: "http://127.0.0.1:9/api/v4", webhook_secret_file: "gitlab.secret" },
      gitea: { kind: "gitea", api_url: "http://127.0.0.1:9", webhook_secret_file: "gitea.secret" },
    },
  };
  if (intake) config.intake = intake;
  const file = path.join(dir, "tollgate.yaml");
  fs.writeFileSync(file, YAML.stringify(config));
  return file;
}

// Starts `tollgate serve` and resolves once it logs "listening" (world.mjs's startTollgate: its
// `db` is the store sql() and inboxRows() read).
const startServer = (t, dir, { threads = 2 } = {}) => startTollgate(t, dir, { threads });

// ---------------------------------------------------------------------------------------------
// HTTP

function request(port, { method = "POST", path: target = "/hooks/github", headers = {}, body, agent = false, timeoutMs = 15_000 } = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body, "utf8");
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method,
        path: target,
        agent,
        headers: data ? { ...headers, "Content-Length": data.length } : headers,
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode, headers: res.headers, text, json });
        });
        res.on("error", reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${target}: no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(data);
  });
}

// A raw TCP exchange: `script(socket)` writes what it wants (and may wait); resolves when the
// server closes the connection or after `timeoutMs`, with everything received.
function rawExchange(port, script, { timeoutMs = 10_000 } = {}) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    const chunks = [];
    let error = null;
    let lastWriteAt = Date.now();
    let finished = false;
    const done = (timedOut) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      const data = Buffer.concat(chunks);
      resolve({ data, response: parseResponse(data), timedOut, error, closedAfterMs: Date.now() - lastWriteAt });
    };
    const timer = setTimeout(() => done(true), timeoutMs);
    socket.on("data", (c) => chunks.push(c));
    socket.on("end", () => done(false));
    socket.on("close", () => done(false));
    socket.on("error", (e) => {
      error = e;
    });
    socket.on("connect", async () => {
      const write = (buf) =>
        new Promise((res) => {
          if (finished || socket.destroyed) return res();
          socket.write(buf, () => {
            lastWriteAt = Date.now();
            res();
          });
        });
      try {
        await script({
          write,
          socket,
          answered: () => chunks.length > 0 || finished,
          received: () => Buffer.concat(chunks).toString("latin1"),
        });
      } catch (e) {
        error ??= e;
      }
      lastWriteAt = Date.now();
    });
  });
}

function parseResponse(data) {
  let text = data.toString("latin1");
  // Skip interim 1xx answers (100 Continue).
  while (/^HTTP\/1\.[01] 1\d\d /.test(text) && text.includes("\r\n\r\n")) {
    const skip = text.indexOf("\r\n\r\n") + 4;
    data = data.subarray(skip);
    text = text.slice(skip);
  }
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const [statusLine, ...headerLines] = text.slice(0, end).split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!m) return null;
  const headers = {};
  for (const l of headerLines) {
    const i = l.indexOf(":");
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const body = data.subarray(Buffer.byteLength(text.slice(0, end + 4), "latin1")).toString("utf8");
  let json;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status: Number(m[1]), headers, text: body, json };
}

// Sends `body` in 64 KiB pieces (each passed through `frame`) the way curl does: it stops as soon
// as the server has started to answer, lets incoming data be read between pieces, and once past
// the 1 MiB limit waits up to 1 s for the answer before sending more. (A client that keeps
// writing into a connection the server has closed gets EPIPE, and Node then drops the answer.)
// Returns whether the whole body was sent.
async function writeLikeCurl(write, answered, body, frame, limit = 1024 * 1024) {
  for (let off = 0; off < body.length; off += 64 * 1024) {
    if (answered()) return false;
    await write(frame(body.subarray(off, off + 64 * 1024)));
    await new Promise((r) => setImmediate(r));
    if (off >= limit) {
      for (let waited = 0; waited < 1000 && !answered(); waited += 20) await sleep(20);
    }
  }
  return !answered();
}

async function mapLimit(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  });
  await Promise.all(workers);
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function metrics(port) {
  const r = await request(port, { method: "GET", path: "/metrics" });
  assert.equal(r.status, 200, `GET /metrics: ${r.text}`);
  return r.text;
}

function inboxDepth(text) {
  const m = /^tollgate_inbox_depth (\d+)$/m.exec(text);
  return m ? Number(m[1]) : null;
}

// Polls /metrics until the normaliser has taken every delivery out of 'new'. The normaliser runs at a low priority (intake first), so under a sanitizer with other tests
// taking both cores it can go slowly: what must hold is that it keeps draining. Fails when the
// depth has not gone down for stallMs, or is not 0 within limitMs.
async function waitForEmptyInbox(port, { stallMs = 30_000, limitMs = 300_000 } = {}) {
  const started = Date.now();
  let depth = null;
  let lowest = { depth: Infinity, at: started };
  while (true) {
    depth = inboxDepth(await metrics(port));
    if (depth === 0) return;
    const now = Date.now();
    if (depth < lowest.depth) lowest = { depth, at: now };
    if (now - lowest.at > stallMs) assert.fail(`tollgate_inbox_depth stuck at ${depth} for ${stallMs / 1000} s`);
    if (now - started > limitMs) assert.fail(`tollgate_inbox_depth still ${depth} after ${limitMs / 1000} s`);
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------------
// The database

// Stored deliveries through `tollgate inbox` (bodies are stored compressed; it decodes them).
// Polls /metrics until the counter `name` reaches `expected`; fails if it goes past it, or stops
// growing for stallMs (the engine, like the normaliser, runs at a low priority), or takes limitMs.
async function waitForMetric(port, name, expected, { stallMs = 30_000, limitMs = 300_000 } = {}) {
  const started = Date.now();
  let best = { value: -1, at: started };
  while (true) {
    const m = new RegExp(`^${name} (\\d+)$`, "m").exec(await metrics(port));
    const value = m ? Number(m[1]) : null;
    assert.notEqual(value, null, `/metrics has no ${name}`);
    if (value === expected) return;
    assert.ok(value < expected, `${name} is ${value}, more than ${expected}`);
    const now = Date.now();
    if (value > best.value) best = { value, at: now };
    if (now - best.at > stallMs) assert.fail(`${name} stuck at ${value} (of ${expected}) for ${stallMs / 1000} s`);
    if (now - started > limitMs) assert.fail(`${name} still ${value} (of ${expected}) after ${limitMs / 1000} s`);
    await sleep(100);
  }
}

function inboxRows(db, ...args) {
  if (!isPostgres(db)) assert.ok(fs.existsSync(db), `database ${db} does not exist`);
  const r = spawnSync(BIN, ["inbox", "--database", db, ...args], { encoding: "utf8", maxBuffer: 512 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`tollgate inbox failed (exit ${r.status}):\n${r.stderr}`);
  return r.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line));
}

// A statement that changes the database (sql() only reads), with tollgate stopped.
function execute(db, statement) {
  const r = isPostgres(db)
    ? spawnSync("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", statement], { encoding: "utf8" })
    : spawnSync("python3", ["-c", "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute(sys.argv[2])\nc.commit()", db, statement], {
        encoding: "utf8",
      });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${statement} failed (exit ${r.status}):\n${r.stderr}`);
}

const rowCount = (db) => sql(db, "SELECT COUNT(*) AS n FROM deliveries")[0].n;

// ---------------------------------------------------------------------------------------------

describe("tollgate serve", { skip: SKIP }, () => {
  test("the signer and the binary are what the tests assume", () => {
    assert.ok(fs.existsSync(BIN), `TOLLGATE_BIN=${BIN} does not exist`);
    // GitHub's documented test vector (HOSTS.md).
    return sign(GITHUB_SECRET, "Hello, World!").then((s) =>
      assert.equal(s, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"),
    );
  });

  // 1 -------------------------------------------------------------------------------------------
  test("1. every real GitHub example and every GitLab / Gitea fixture is accepted and none fails normalisation", { timeout: 420_000 }, async (t) => {
    const dir = tempDir(t);
    writeConfig(t, dir);
    const server = await startServer(t, dir);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    t.after(() => agent.destroy());

    // What is sent: {host, event, id, body, payload, label}.
    const sent = [];
    for (const group of examples()) {
      group.examples.forEach((ex, i) => {
        sent.push({
          host: "github",
          event: group.name,
          id: crypto.randomUUID(),
          body: JSON.stringify(ex),
          payload: ex,
          label: `${group.name}[${i}]${ex.action ? " " + ex.action : ""}`,
        });
      });
    }
    assert.equal(sent.length, 329, "@octokit/webhooks-examples@7.6.1 holds 329 examples");
    // The derived GitHub fixtures (merged PR, comment on a PR, approved review), when present.
    const derivedDir = path.join(ROOT, "tests", "fixtures", "webhooks", "github");
    const derived = fs.existsSync(derivedDir) ? fs.readdirSync(derivedDir).filter((f) => f.endsWith(".json")).sort() : [];
    for (const f of derived) {
      const body = fs.readFileSync(path.join(derivedDir, f), "utf8");
      sent.push({ host: "github", event: f.split(".")[0], id: crypto.randomUUID(), body, payload: JSON.parse(body), label: `github fixture ${f}`, file: f });
    }
    const gitlab = fixtureFiles("gitlab");
    const gitea = fixtureFiles("gitea");
    t.diagnostic(`fixtures: ${derived.length} derived GitHub, ${gitlab.length} GitLab from ${fixtureDir("gitlab")}, ${gitea.length} Gitea from ${fixtureDir("gitea")}`);
    assert.ok(gitlab.length > 0, "no GitLab fixtures found");
    assert.ok(gitea.length > 0, "no Gitea fixtures found");
    for (const f of gitlab) {
      const payload = JSON.parse(f.body);
      sent.push({ host: "gitlab", event: gitlabEvent(f.file, payload), id: crypto.randomUUID(), body: f.body, payload, label: `gitlab ${f.file}`, file: f.file });
    }
    for (const f of gitea) {
      const { event, type } = giteaEvent(f.file);
      sent.push({ host: "gitea", event, type, id: crypto.randomUUID(), body: f.body, payload: JSON.parse(f.body), label: `gitea ${f.file}`, file: f.file });
    }

    const answers = await mapLimit(sent, 8, async (d) => {
      let headers;
      if (d.host === "github") headers = await githubHeaders(d.event, d.id, d.body);
      else if (d.host === "gitlab") headers = gitlabHeaders(d.event, d.id);
      else headers = giteaHeaders(d.event, d.type, d.id, d.body);
      return request(server.port, { path: `/hooks/${d.host}`, headers, body: d.body, agent });
    });

    const wrong = [];
    sent.forEach((d, i) => {
      const a = answers[i];
      const want = d.host === "github" && d.event === "ping" ? 200 : 202;
      if (a.status !== want || !a.json || a.json.error !== undefined) {
        wrong.push(`${d.label} (${d.event}): ${a.status} ${a.text.trim()} (expected ${want})`);
      }
    });
    assert.deepEqual(wrong, [], `deliveries not accepted:\n${wrong.join("\n")}`);
    assert.ok(server.running(), `tollgate died:\n${server.stderr.slice(-4000)}`);

    await waitForEmptyInbox(server.port);

    const failed = sql(server.db, "SELECT host, delivery_id, event, error FROM inbox WHERE state = 'failed' ORDER BY id");
    const byId = new Map(sent.map((d) => [d.id, d]));
    if (failed.length) {
      for (const f of failed) t.diagnostic(`failed: ${byId.get(f.delivery_id)?.label ?? `delivery id '${f.delivery_id}'`} host='${f.host}' event='${f.event}': ${f.error}`);
    }
    assert.deepEqual(
      failed.map((f) => `${byId.get(f.delivery_id)?.label ?? `delivery id '${f.delivery_id}'`} [host '${f.host}', event '${f.event}']: ${f.error}`),
      [],
      "deliveries that failed normalisation",
    );

    // Stored: exactly the deliveries of used event types, each once, as sent.
    const rows = inboxRows(server.db);
    const expected = sent.filter((d) => USED[d.host].has(d.event));
    const stored = new Map(rows.map((r) => [`${r.host}/${r.delivery_id}`, r]));
    const missing = expected.filter((d) => !stored.has(`${d.host}/${d.id}`)).map((d) => `${d.label} (${d.event})`);
    const expectedKeys = new Set(expected.map((d) => `${d.host}/${d.id}`));
    const unexpected = rows
      .filter((r) => !expectedKeys.has(`${r.host}/${r.delivery_id}`))
      .map((r) => `${byId.get(r.delivery_id)?.label ?? r.delivery_id} (${r.host} ${r.event})`);
    assert.deepEqual(missing, [], "deliveries of used event types that were not stored");
    assert.deepEqual(unexpected, [], "stored deliveries of event types tollgate does not use");
    assert.equal(rows.length, expected.length, "each delivery stored once");
    const mismatched = [];
    for (const d of expected) {
      const r = stored.get(`${d.host}/${d.id}`);
      if (r.event !== d.event) mismatched.push(`${d.label}: event ${r.event}`);
      if (r.body !== d.body) mismatched.push(`${d.label}: stored body differs from the body sent`);
      const repo = d.host === "gitlab" ? d.payload.project?.path_with_namespace : d.payload.repository?.full_name;
      if ((repo ?? "") !== r.repo) mismatched.push(`${d.label}: repo '${r.repo}', expected '${repo ?? ""}'`);
      if (r.state === "new") mismatched.push(`${d.label}: still 'new'`);
    }
    assert.deepEqual(mismatched, [], "stored rows differ from what was sent");

    // The deliveries that exist to be acted on become the Events they describe.
    const eventOf = (label) => {
      const d = sent.find((s) => s.label === label);
      if (!d) return undefined;
      const r = sql(server.db, "SELECT state, event_json FROM inbox WHERE host = ? AND delivery_id = ?", [d.host, d.id])[0];
      assert.equal(r?.state, "normalized", `${label} should be normalised, is ${r?.state}`);
      return JSON.parse(r.event_json);
    };
    const checks = [
      ["github fixture pull_request.closed.merged.json", (e) => e.type === "pull_request" && e.action === "merged"],
      ["github fixture issue_comment.created.on_pull_request.json", (e) => e.type === "comment"],
      ["github fixture pull_request_review.submitted.approved.json", (e) => e.type === "review" && e.state === "approved"],
      ["gitlab merge-request-merge-event.json", (e) => e.type === "pull_request" && e.action === "merged"],
      ["gitlab comment-merge-request-event.json", (e) => e.type === "comment"],
      ["gitea pull-request-merged-event.json", (e) => e.type === "pull_request" && e.action === "merged"],
      ["gitea pull-request-comment-event.json", (e) => e.type === "comment"],
      ["gitea pull-request-review-approved-event.json", (e) => e.type === "review" && e.state === "approved"],
    ];
    for (const [label, ok] of checks) {
      const e = eventOf(label);
      if (e !== undefined) assert.ok(ok(e), `${label} normalised to ${JSON.stringify(e)}`);
    }

    // Secrets never reach the log.
    for (const s of [GITHUB_SECRET, GITHUB_SECRET_2, GITLAB_SECRET, GITEA_SECRET]) {
      assert.ok(!server.stderr.includes(s), "a webhook secret appears in the log");
    }
    const states = sql(server.db, "SELECT host, state, COUNT(*) AS n FROM inbox GROUP BY host, state ORDER BY host, state");
    t.diagnostic(`sent ${sent.length}; stored by host/state: ${states.map((s) => `${s.host}/${s.state}=${s.n}`).join(" ")}`);
    assert.ok(server.running(), "tollgate is still running");
  });

  // 2 -------------------------------------------------------------------------------------------
  describe("2. rejections: specific status, clear message, nothing stored", () => {
    // Starts a server, runs `send`, checks status and message, that nothing was stored and that
    // the server still answers.
    async function rejection(t, { intake, send, status, message }) {
      const dir = tempDir(t);
      writeConfig(t, dir, { intake });
      const server = await startServer(t, dir);
      const r = await send(server);
      t.diagnostic(`answer: ${r.status} ${(r.text ?? "").trim()}`);
      const statuses = Array.isArray(status) ? status : [status];
      assert.ok(statuses.includes(r.status), `status ${r.status} (expected ${statuses.join(" or ")}): ${r.text}`);
      assert.ok(r.json && typeof r.json.error === "string", `answer should be JSON {"error": ...}, got: ${r.text}`);
      assert.match(r.json.error, message);
      assert.match(r.headers["content-type"] ?? "", /^application\/json/);
      assert.equal(rowCount(server.db), 0, "nothing may be stored");
      const health = await request(server.port, { method: "GET", path: "/healthz" });
      assert.equal(health.status, 200, "server still healthy afterwards");
      return { server, r };
    }

    test("bad signature: 401", async (t) => {
      const body = prOpened();
      await rejection(t, {
        send: async (s) =>
          request(s.port, { headers: await githubHeaders("pull_request", crypto.randomUUID(), body, { secret: "not the secret" }), body }),
        status: 401,
        message: /signature does not match/i,
      });
    });

    test("signature of other bytes (body changed after signing): 401", async (t) => {
      const body = prOpened();
      await rejection(t, {
        send: async (s) => {
          const headers = await githubHeaders("pull_request", crypto.randomUUID(), body);
          return request(s.port, { headers, body: body.replace("opened", "closed") });
        },
        status: 401,
        message: /signature does not match/i,
      });
    });

    test("missing signature: 401", async (t) => {
      const body = prOpened();
      await rejection(t, {
        send: async (s) => {
          const headers = await githubHeaders("pull_request", crypto.randomUUID(), body);
          delete headers["X-Hub-Signature-256"];
          return request(s.port, { headers, body });
        },
        status: 401,
        message: /missing X-Hub-Signature-256/i,
      });
    });

    test("missing X-Gitlab-Token on a GitLab host: 401", async (t) => {
      const body = fixtureFiles("gitlab").find((f) => f.file === "merge-request-event.json")?.body ?? '{"object_kind":"merge_request"}';
      await rejection(t, {
        send: (s) => {
          const headers = gitlabHeaders("Merge Request Hook", crypto.randomUUID());
          delete headers["X-Gitlab-Token"];
          return request(s.port, { path: "/hooks/gitlab", headers, body });
        },
        status: 401,
        message: /X-Gitlab-Token/,
      });
    });

    test("a second valid secret (rotation): 202, and the first still works", async (t) => {
      const dir = tempDir(t);
      writeConfig(t, dir);
      const server = await startServer(t, dir);
      const body = prOpened();
      const id2 = crypto.randomUUID();
      const r2 = await request(server.port, { headers: await githubHeaders("pull_request", id2, body, { secret: GITHUB_SECRET_2 }), body });
      assert.equal(r2.status, 202, r2.text);
      assert.equal(r2.json?.status, "accepted");
      const id1 = crypto.randomUUID();
      const r1 = await request(server.port, { headers: await githubHeaders("pull_request", id1, body), body });
      assert.equal(r1.status, 202, r1.text);
      const ids = sql(server.db, "SELECT delivery_id FROM deliveries ORDER BY id").map((r) => r.delivery_id);
      assert.deepEqual(ids, [id2, id1]);
    });

    test("unknown host name: 404", async (t) => {
      const body = prOpened();
      await rejection(t, {
        send: async (s) => request(s.port, { path: "/hooks/nosuchhost", headers: await githubHeaders("pull_request", crypto.randomUUID(), body), body }),
        status: 404,
        message: /no host named 'nosuchhost'/,
      });
    });

    test("truncated JSON: 400", async (t) => {
      const full = prOpened();
      const body = full.slice(0, Math.floor(full.length / 2));
      await rejection(t, {
        send: async (s) => request(s.port, { headers: await githubHeaders("pull_request", crypto.randomUUID(), body), body }),
        status: 400,
        message: /not valid JSON/i,
      });
    });

    test("non-JSON body: 400", async (t) => {
      const body = "action=opened&number=1 -- this is not JSON";
      await rejection(t, {
        send: async (s) => request(s.port, { headers: await githubHeaders("pull_request", crypto.randomUUID(), body), body }),
        status: 400,
        message: /not valid JSON/i,
      });
    });

    test("Content-Type text/plain: 415", async (t) => {
      const body = prOpened();
      await rejection(t, {
        send: async (s) =>
          request(s.port, { headers: await githubHeaders("pull_request", crypto.randomUUID(), body, { contentType: "text/plain" }), body }),
        status: 415,
        message: /Content-Type.*text\/plain/i,
      });
    });

    test("body over max_body (1MiB limit, 2 MiB sent with Content-Length): 413", { timeout: 30_000 }, async (t) => {
      const pad = "x".repeat(2 * 1024 * 1024);
      const body = JSON.stringify({ ...example("pull_request", "opened"), padding: pad });
      const headers = await githubHeaders("pull_request", crypto.randomUUID(), body);
      const { server } = await rejection(t, {
        intake: { max_body: "1MiB" },
        send: async (s) => {
          // As curl sends a large body: Expect: 100-continue, then wait (up to 1 s) for the server
          // to say go on or to answer at once, which it can since Content-Length says it all.
          const head =
            `POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\n` +
            Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("") +
            `Content-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`;
          const x = await rawExchange(s.port, async ({ write, answered, received }) => {
            await write(head);
            for (let waited = 0; waited < 1000 && !answered(); waited += 20) await sleep(20);
            if (answered() && !/^HTTP\/1\.[01] 100 /.test(received())) return;
            await writeLikeCurl(write, () => answered() && !/^HTTP\/1\.[01] 100 [^]*\r\n\r\n$/.test(received()), Buffer.from(body), (b) => b);
          });
          assert.ok(x.response, `no HTTP answer before the connection closed (${x.error?.code ?? "no error"}); got ${x.data.length} bytes`);
          return x.response;
        },
        status: 413,
        message: /larger than the limit/i,
      });
      // Refused from the headers alone, yet counted on the webhook route (the target is known).
      assert.match(await metrics(server.port), /\ntollgate_http_requests_total\{route="\/hooks\/\{host\}",status="413"\} 1\n/);
    });

    test("body over max_body sent chunked (no Content-Length): 413", { timeout: 30_000 }, async (t) => {
      const body = JSON.stringify({ ...example("pull_request", "opened"), padding: "y".repeat(2 * 1024 * 1024) });
      const headers = await githubHeaders("pull_request", crypto.randomUUID(), body);
      await rejection(t, {
        intake: { max_body: "1MiB" },
        send: async (s) => {
          const head =
            `POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\n` +
            Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("") +
            `Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n`;
          const x = await rawExchange(s.port, async ({ write, answered }) => {
            await write(head);
            const chunk = (part) => Buffer.concat([Buffer.from(part.length.toString(16) + "\r\n"), part, Buffer.from("\r\n")]);
            if (await writeLikeCurl(write, answered, Buffer.from(body), chunk)) await write("0\r\n\r\n");
          });
          assert.ok(x.response, `no HTTP answer before the connection closed (${x.error?.code ?? "no error"})`);
          return x.response;
        },
        status: 413,
        message: /larger than the limit/i,
      });
    });

    test("chunked body whose chunk-size line never ends: 400 once 64 KiB are buffered, not read on until the deadline", { timeout: 30_000 }, async (t) => {
      const headers = await githubHeaders("pull_request", crypto.randomUUID(), prOpened());
      await rejection(t, {
        send: async (s) => {
          const head =
            `POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\n` +
            Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("") +
            `Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n`;
          const started = Date.now();
          const x = await rawExchange(s.port, async ({ write, answered }) => {
            await write(head);
            // A chunk extension that never ends: 16 KiB at a time, up to 1 MiB, until answered.
            await write("5;x=");
            for (let i = 0; i < 64 && !answered(); i++) await write("y".repeat(16 * 1024));
          });
          assert.ok(x.response, `no HTTP answer before the connection closed (${x.error?.code ?? "no error"})`);
          assert.ok(Date.now() - started < 5_000, "answered at once, not at body_timeout");
          return x.response;
        },
        status: 400,
        message: /chunk-size line or the trailers run past 64 KiB/,
      });
    });

    test("HEAD: answered where GET is, with the answer's Content-Length and no body, so the next answer on the connection is read right", { timeout: 30_000 }, async (t) => {
      const dir = tempDir(t);
      writeConfig(t, dir, {});
      const server = await startServer(t, dir);
      const x = await rawExchange(server.port, async ({ write }) => {
        await write(
          `HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n` +
            `HEAD /hooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n` +
            `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`,
        );
      });
      const text = x.data.toString("latin1");
      const heads = text.split("\r\n\r\n");
      assert.ok(heads.length >= 3, `expected three answers: ${JSON.stringify(text)}`);
      // HEAD where GET is allowed: the GET answer's head (Content-Length of "ok\n").
      assert.match(heads[0], /^HTTP\/1\.1 200 /, heads[0]);
      assert.match(heads[0], /\r\nContent-Length: 3(\r\n|$)/i, "HEAD keeps the Content-Length of the body it did not get");
      // HEAD where only POST is: 405 naming POST, again without its body.
      assert.match(heads[1], /^HTTP\/1\.1 405 /, heads[1]);
      assert.match(heads[1], /\r\nAllow: POST(\r\n|$)/i, heads[1]);
      assert.match(heads[1], /\r\nContent-Length: [1-9]\d*(\r\n|$)/i, heads[1]);
      const rest = heads.slice(2).join("\r\n\r\n");
      assert.match(rest, /^HTTP\/1\.1 200 [^]*$/, `the third answer must follow the second head at once: ${JSON.stringify(rest)}`);
      assert.ok(text.endsWith("\r\n\r\nok\n"), `only the GET carries a body: ${JSON.stringify(text)}`);
    });

    test("Expect: 100-continue: the server asks for the body at once; other expectations get 417", { timeout: 30_000 }, async (t) => {
      const dir = tempDir(t);
      writeConfig(t, dir, { intake: { body_timeout: "20s" } });
      const server = await startServer(t, dir);
      const body = prOpened();
      const head = async (id, expect) => {
        const headers = await githubHeaders("pull_request", id, body);
        const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
        return `POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\n${lines}Content-Length: ${Buffer.byteLength(body)}\r\nExpect: ${expect}\r\nConnection: close\r\n\r\n`;
      };
      const id = crypto.randomUUID();
      const started = Date.now();
      const x = await rawExchange(server.port, async ({ write, received }) => {
        await write(await head(id, "100-continue"));
        // Like curl: the body only after the interim answer (curl gives up waiting after 1 s; this waits 8).
        while (!/^HTTP\/1\.1 100 Continue\r\n\r\n/.test(received()) && Date.now() - started < 8_000) await sleep(20);
        await write(body);
      });
      const text = x.data.toString("latin1");
      assert.match(text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 202 /, JSON.stringify(text.slice(0, 200)));
      assert.ok(Date.now() - started < 5_000, "the body was asked for at once");
      assert.deepEqual(
        sql(server.db, "SELECT delivery_id FROM deliveries").map((r) => r.delivery_id),
        [id],
        "the delivery sent after 100 Continue is stored",
      );

      const other = crypto.randomUUID();
      const y = await rawExchange(server.port, async ({ write }) => {
        await write((await head(other, "something-else")) + body);
      });
      const answer = y.data.toString("latin1");
      assert.match(answer, /^HTTP\/1\.1 417 [^]*only '100-continue' is supported/, answer.slice(0, 300));
      assert.equal(rowCount(server.db), 1, "nothing stored for the 417");
    });

    test("slow client: headers with Content-Length, then the body stalls: 408 or closed within ~3 s", { timeout: 30_000 }, async (t) => {
      const dir = tempDir(t);
      writeConfig(t, dir, { intake: { header_timeout: "1s", body_timeout: "1s", idle_timeout: "1s" } });
      const server = await startServer(t, dir);
      const body = prOpened();
      const headers = await githubHeaders("pull_request", crypto.randomUUID(), body);
      const head =
        `POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\n` +
        Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("") +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
      const started = Date.now();
      const stalled = rawExchange(
        server.port,
        async ({ write }) => {
          await write(head);
          await write(body.slice(0, 100)); // ... and nothing more
        },
        { timeoutMs: 8_000 },
      );
      // Meanwhile another client is served at once.
      await sleep(200);
      const otherBody = prOpened();
      const otherId = crypto.randomUUID();
      const t0 = Date.now();
      const other = await request(server.port, { headers: await githubHeaders("pull_request", otherId, otherBody), body: otherBody });
      assert.equal(other.status, 202, other.text);
      assert.ok(Date.now() - t0 < 1000, "a stalled client must not hold up others");

      const x = await stalled;
      const elapsed = Date.now() - started;
      t.diagnostic(`stalled body: ${x.response ? x.response.status + " " + x.response.text.trim() : "closed without an answer"} after ${elapsed} ms`);
      assert.ok(!x.timedOut, `the stalled connection was still open after ${elapsed} ms`);
      assert.ok(elapsed <= 3_000, `answered/closed after ${elapsed} ms (body_timeout 1s)`);
      if (x.response) {
        assert.equal(x.response.status, 408, x.response.text);
        assert.match(x.response.json?.error ?? "", /not received in time/i);
      }
      const ids = sql(server.db, "SELECT delivery_id FROM deliveries").map((r) => r.delivery_id);
      assert.deepEqual(ids, [otherId], "only the complete delivery is stored");
    });

    test("slow client: headers never finished: 408 or closed within ~3 s", { timeout: 30_000 }, async (t) => {
      const dir = tempDir(t);
      writeConfig(t, dir, { intake: { header_timeout: "1s", body_timeout: "1s", idle_timeout: "1s" } });
      const server = await startServer(t, dir);
      const started = Date.now();
      const x = await rawExchange(
        server.port,
        async ({ write }) => {
          await write(`POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nX-GitHub-Event: pull_`);
        },
        { timeoutMs: 8_000 },
      );
      const elapsed = Date.now() - started;
      t.diagnostic(`stalled headers: ${x.response ? x.response.status + " " + x.response.text.trim() : "closed without an answer"} after ${elapsed} ms`);
      assert.ok(!x.timedOut, `the connection was still open after ${elapsed} ms`);
      assert.ok(elapsed <= 3_000, `answered/closed after ${elapsed} ms (header_timeout 1s)`);
      if (x.response) {
        assert.equal(x.response.status, 408, x.response.text);
        assert.match(x.response.json?.error ?? "", /not received in time/i);
      }
      assert.equal(rowCount(server.db), 0);
    });

    test("slow client on a keep-alive connection: a second request's headers stall: closed within header_timeout, not idle_timeout", { timeout: 30_000 }, async (t) => {
      // header_timeout: "to read the request line and headers"; idle_timeout: "between requests
      // on a keep-alive connection" (service/config.hpp). Once a request has begun, only
      // header_timeout may hold the connection.
      const dir = tempDir(t);
      writeConfig(t, dir, { intake: { header_timeout: "1s", body_timeout: "1s", idle_timeout: "5s" } });
      const server = await startServer(t, dir);
      const body = prOpened();
      const headers = await githubHeaders("pull_request", crypto.randomUUID(), body);
      const first =
        `POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\n` +
        Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("") +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      let partialAt;
      const x = await rawExchange(
        server.port,
        async ({ write, answered }) => {
          await write(first);
          for (let waited = 0; waited < 2000 && !answered(); waited += 20) await sleep(20);
          await sleep(300);
          partialAt = Date.now();
          await write(`POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nX-GitHub-Event: pull_`);
        },
        { timeoutMs: 10_000 },
      );
      assert.equal(x.response?.status, 202, "the first request is answered");
      const elapsed = Date.now() - partialAt;
      t.diagnostic(`second request's stalled headers: connection closed ${elapsed} ms after they began`);
      assert.ok(!x.timedOut, "the connection was still open after 10 s");
      assert.ok(elapsed <= 2_500, `closed ${elapsed} ms after the second request began (header_timeout 1s, idle_timeout 5s)`);
      assert.equal(rowCount(server.db), 1);
    });

    test("a Gitea delivery sent to a GitHub host: 400 mentioning Gitea", async (t) => {
      const body = fixtureFiles("gitea").find((f) => f.file === "pull-request-event.json")?.body ?? prOpened();
      await rejection(t, {
        // Signed with the GitHub host's own secret: it would pass as a GitHub delivery.
        send: (s) => request(s.port, { headers: giteaHeaders("pull_request", "pull_request", crypto.randomUUID(), body, GITHUB_SECRET), body }),
        status: 400,
        message: /Gitea/,
      });
    });

    test("GET on /hooks/github: 405 with Allow: POST", async (t) => {
      const { r } = await rejection(t, {
        send: (s) => request(s.port, { method: "GET", path: "/hooks/github" }),
        status: 405,
        message: /POST/,
      });
      // RFC 9110 §15.5.6: a 405 response MUST carry Allow.
      assert.match(r.headers["allow"] ?? "", /\bPOST\b/, "405 without an Allow header");
    });

    test("unknown path: 404", async (t) => {
      const body = prOpened();
      await rejection(t, {
        send: async (s) => request(s.port, { path: "/webhooks/github", headers: await githubHeaders("pull_request", crypto.randomUUID(), body), body }),
        status: 404,
        message: /no such endpoint/i,
      });
    });
  });

  // 3 -------------------------------------------------------------------------------------------
  test("3. a replayed delivery is stored once; the replay is still answered 202 'already received'", async (t) => {
    const dir = tempDir(t);
    writeConfig(t, dir);
    const server = await startServer(t, dir);
    const body = prOpened();
    const id = crypto.randomUUID();
    const headers = await githubHeaders("pull_request", id, body);
    const first = await request(server.port, { headers, body });
    assert.equal(first.status, 202, first.text);
    assert.equal(first.json?.status, "accepted");
    const again = await request(server.port, { headers, body });
    assert.equal(again.status, 202, again.text);
    assert.match(again.json?.status ?? "", /already received/i);
    assert.equal(sql(server.db, "SELECT COUNT(*) AS n FROM deliveries WHERE delivery_id = ?", [id])[0].n, 1);

    // The same delivery many times at once: one is stored, the others say so.
    const burstId = crypto.randomUUID();
    const burstHeaders = await githubHeaders("pull_request", burstId, body);
    const answers = await Promise.all(Array.from({ length: 8 }, () => request(server.port, { headers: burstHeaders, body })));
    assert.deepEqual(answers.map((a) => a.status), Array(8).fill(202));
    assert.equal(answers.filter((a) => a.json?.status === "accepted").length, 1, answers.map((a) => a.text).join(""));
    assert.equal(answers.filter((a) => /already received/i.test(a.json?.status ?? "")).length, 7);
    assert.equal(sql(server.db, "SELECT COUNT(*) AS n FROM deliveries WHERE delivery_id = ?", [burstId])[0].n, 1);
    assert.equal(rowCount(server.db), 2);
  });

  test("3b. concurrent deliveries on many connections and threads: every 202 is stored once, as sent", { timeout: 420_000 }, async (t) => {
    const dir = tempDir(t);
    writeConfig(t, dir);
    const server = await startServer(t, dir, { threads: 4 });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
    t.after(() => agent.destroy());
    const pool = [
      ["pull_request", examples().find((g) => g.name === "pull_request").examples],
      ["push", examples().find((g) => g.name === "push").examples],
      ["issue_comment", examples().find((g) => g.name === "issue_comment").examples],
    ];
    const deliveries = [];
    for (let i = 0; i < 3000; i++) {
      const [event, list] = pool[i % pool.length];
      // Each body unique, so a row holding another delivery's body shows.
      const body = JSON.stringify({ ...list[i % list.length], tollgate_e2e_seq: i });
      deliveries.push({ event, id: `conc-${i}-${crypto.randomUUID()}`, body });
    }
    const prepared = await Promise.all(deliveries.map(async (d) => ({ ...d, headers: await githubHeaders(d.event, d.id, d.body) })));
    const answers = await mapLimit(prepared, 32, (d) =>
      request(server.port, { headers: d.headers, body: d.body, agent }).catch((error) => ({ error })),
    );
    await sleep(100);
    assert.ok(server.running(), `tollgate died (exit code ${server.proc.exitCode}, signal ${server.proc.signalCode}):\n${server.stderr.slice(-2000)}`);
    const notAccepted = answers
      .map((a, i) =>
        a.error
          ? `${prepared[i].id}: ${a.error.code ?? ""} ${a.error.message}`
          : a.status === 202 && a.json?.delivery === prepared[i].id
            ? null
            : `${prepared[i].id}: ${a.status} ${a.text.trim()}`,
      )
      .filter(Boolean);
    assert.deepEqual(notAccepted, [], "every delivery answered 202 with its own id");
    const rows = inboxRows(server.db);
    const byId = new Map(rows.map((r) => [r.delivery_id, r]));
    const problems = [];
    for (const d of prepared) {
      const r = byId.get(d.id);
      if (!r) problems.push(`${d.id}: answered 202 but not stored`);
      else if (r.body !== d.body || r.event !== d.event || r.host !== "github") problems.push(`${d.id}: stored with another delivery's data (event ${r.event}, host '${r.host}')`);
    }
    const strangers = rows.filter((r) => !prepared.some((d) => d.id === r.delivery_id));
    for (const r of strangers) problems.push(`row that was never sent: host '${r.host}', delivery_id '${r.delivery_id}', event '${r.event}', ${r.body.length} body bytes`);
    assert.deepEqual(problems, [], `${problems.length} problems among ${prepared.length} concurrent deliveries`);
    assert.equal(rows.length, prepared.length);
    await waitForEmptyInbox(server.port);
    const failed = sql(server.db, "SELECT delivery_id, event, error FROM inbox WHERE state = 'failed'");
    assert.deepEqual(failed, [], "none fails normalisation");
    // The engine then consumes every normalised delivery exactly once, and nothing else. These
    // hosts have no token, so each changes nothing and they are consumed many to a transaction.
    const normalised = sql(server.db, "SELECT COUNT(*) AS n FROM delivery_outcomes WHERE state = 'normalized'")[0].n;
    assert.ok(normalised >= 1000, `only ${normalised} deliveries normalised`);
    await waitForMetric(server.port, "tollgate_engine_events_total", normalised);
    const unconsumed = sql(
      server.db,
      "SELECT o.delivery FROM delivery_outcomes o WHERE o.state = 'normalized' " +
        "AND NOT EXISTS (SELECT 1 FROM consumed c WHERE c.key = 'delivery:' || o.delivery)",
    );
    assert.deepEqual(unconsumed, [], "every normalised delivery is consumed");
    const strayKeys = sql(
      server.db,
      "SELECT c.key FROM consumed c WHERE c.key LIKE 'delivery:%' AND NOT EXISTS " +
        "(SELECT 1 FROM delivery_outcomes o WHERE o.state = 'normalized' AND c.key = 'delivery:' || o.delivery)",
    );
    assert.deepEqual(strayKeys, [], "only normalised deliveries are consumed");
  });

  // 4 -------------------------------------------------------------------------------------------
  test("4. GitHub's form encoding (payload=...): 202 and the JSON is stored", async (t) => {
    const dir = tempDir(t);
    writeConfig(t, dir);
    const server = await startServer(t, dir);
    const cases = [
      ["pull_request", JSON.stringify(example("pull_request", "opened"))],
      ["push", JSON.stringify(example("push"), null, 2)], // spaces, newlines, unicode: '+' and %XX
      ["issue_comment", JSON.stringify({ ...example("issue_comment", "created"), note: "a+b = c & d%20 ü ✓" })],
    ];
    for (const [event, json] of cases) {
      const id = crypto.randomUUID();
      const form = new URLSearchParams({ payload: json }).toString();
      const headers = await githubHeaders(event, id, form, { contentType: "application/x-www-form-urlencoded" });
      const r = await request(server.port, { headers, body: form });
      assert.equal(r.status, 202, `${event}: ${r.text}`);
      const rows = inboxRows(server.db, "--delivery", id);
      assert.equal(rows.length, 1, `${event} stored once`);
      assert.equal(rows[0].body, json, `${event}: the stored body is the decoded JSON`);
    }
    // Signed over the decoded JSON instead of the raw form body: refused.
    const json = prOpened();
    const form = new URLSearchParams({ payload: json }).toString();
    const headers = await githubHeaders("pull_request", crypto.randomUUID(), json, { contentType: "application/x-www-form-urlencoded" });
    const bad = await request(server.port, { headers, body: form });
    assert.equal(bad.status, 401, bad.text);
    await waitForEmptyInbox(server.port);
    assert.deepEqual(sql(server.db, "SELECT state FROM inbox WHERE state NOT IN ('normalized', 'ignored')"), []);
  });

  // 5 -------------------------------------------------------------------------------------------
  test("5. durability: kill -9 right after a 202 loses nothing", { timeout: 60_000 }, async (t) => {
    const dir = tempDir(t);
    writeConfig(t, dir);
    const first = await startServer(t, dir);
    const body = prOpened();
    const id = crypto.randomUUID();
    const r = await request(first.port, { headers: await githubHeaders("pull_request", id, body), body });
    first.kill("SIGKILL");
    assert.equal(r.status, 202, r.text);
    const exit = await first.exit;
    assert.equal(exit.signal, "SIGKILL");

    // A burst: kill -9 on the first 202; every delivery answered 202 before that must survive.
    const second = await startServer(t, dir);
    const burst = await Promise.all(
      Array.from({ length: 40 }, async () => {
        const bid = crypto.randomUUID();
        const headers = await githubHeaders("pull_request", bid, body);
        return { bid, headers };
      }),
    );
    const accepted = [];
    await Promise.all(
      burst.map(({ bid, headers }) =>
        request(second.port, { headers, body })
          .then((a) => {
            if (a.status === 202 && second.running()) {
              accepted.push(bid);
              second.kill("SIGKILL");
            }
          })
          .catch(() => {}),
      ),
    );
    second.kill("SIGKILL");
    await second.exit;
    assert.ok(accepted.length >= 1);

    const third = await startServer(t, dir);
    const rows = inboxRows(third.db);
    const ids = new Set(rows.map((x) => x.delivery_id));
    assert.ok(ids.has(id), "the delivery answered 202 before kill -9 is in the inbox");
    assert.equal(rows.find((x) => x.delivery_id === id).body, body);
    const lost = accepted.filter((a) => !ids.has(a));
    assert.deepEqual(lost, [], "deliveries answered 202 before kill -9 but missing afterwards");
    // The restarted server processes what the killed one left in 'new'.
    await waitForEmptyInbox(third.port);
    assert.equal(sql(third.db, "SELECT state FROM inbox WHERE delivery_id = ?", [id])[0].state, "normalized");
  });

  test("5b. intake.keep_bodies: a body older than that, once applied, is dropped; its row and replay detection stay", { timeout: 90_000 }, async (t) => {
    const dir = tempDir(t);
    writeConfig(t, dir, { intake: { keep_bodies: "1h" } });
    const first = await startServer(t, dir);
    const body = prOpened();
    const id = crypto.randomUUID();
    const headers = await githubHeaders("pull_request", id, body);
    assert.equal((await request(first.port, { headers, body })).status, 202);
    // Normalised, then applied by the engine (a host without a token: nothing to do, consumed).
    await waitForEmptyInbox(first.port);
    const deliveryRow = sql(first.db, "SELECT id FROM deliveries WHERE delivery_id = ?", [id])[0].id;
    for (let i = 0; sql(first.db, "SELECT COUNT(*) AS n FROM consumed WHERE key = ?", [`delivery:${deliveryRow}`])[0].n === 0; i++) {
      assert.ok(i < 300, "the engine did not apply the delivery within 30 s");
      await sleep(100);
    }
    assert.equal(inboxRows(first.db)[0].body, body, "a young body is kept");
    first.kill("SIGTERM");
    await first.exit;

    // Two hours older; at the next start the normaliser drops its body when it is idle.
    execute(first.db, "UPDATE deliveries SET received_at = received_at - 7200000");
    const second = await startServer(t, dir);
    let rows;
    for (let i = 0; ; i++) {
      rows = inboxRows(second.db);
      if (rows[0].body_dropped) break;
      assert.ok(i < 300, `the body was not dropped within 30 s: ${JSON.stringify(rows[0]).slice(0, 300)}`);
      await sleep(100);
    }
    assert.equal(rows.length, 1);
    assert.equal(rows[0].delivery_id, id);
    assert.equal(rows[0].state, "normalized");
    assert.equal(rows[0].body_size, Buffer.byteLength(body));
    assert.equal(rows[0].body, undefined);
    const again = await request(second.port, { headers, body });
    assert.equal(again.status, 202, again.text);
    assert.match(again.json?.status ?? "", /already received/i);
    assert.equal(rowCount(second.db), 1);
  });

  // 6 -------------------------------------------------------------------------------------------
  describe("6. operations: health, readiness, metrics and SIGTERM", () => {
    test("cannot start for a reason a restart may cure (SQLite database held by another tollgate): exit 1, not 2", { timeout: 30_000 }, async (t) => {
      const dir = tempDir(t);
      writeConfig(t, dir, {});
      const server = await startServer(t, dir);
      if (isPostgres(server.db)) return t.skip("replicas share a PostgreSQL database");
      const r = spawnSync(BIN, ["serve", "--config", path.join(dir, "tollgate.yaml")], { cwd: dir, encoding: "utf8", timeout: 20_000 });
      assert.equal(r.error, undefined, String(r.error));
      assert.equal(r.status, 1, `exit status ${r.status} (systemd does not restart on 2); stderr:\n${r.stderr}`);
      assert.match(r.stderr, /"msg":"cannot open the inbox"[^\n]*is in use by another tollgate \(pid \d+/);
      assert.ok(server.running(), "the first one goes on");
    });

    // Not under the sanitizers: UBSan's vptr check tests that the memory it reads is mapped through
    // a pipe, so with no descriptors left it takes every virtual call for one on an invalid object
    // and aborts (its suppressions do not apply with -fno-sanitize-recover). The release build runs it.
    const sanitized = Boolean(process.env.UBSAN_OPTIONS || process.env.ASAN_OPTIONS);
    test("out of file descriptors: accept backs off instead of spinning, and service resumes once connections close", {
      timeout: 60_000,
      skip: sanitized && "the sanitizers' runtime needs file descriptors of its own",
    }, async (t) => {
      const dir = tempDir(t);
      writeConfig(t, dir, {});
      const server = await startServer(t, dir);
      const fds = () => fs.readdirSync(`/proc/${server.pid}/fd`).length;
      const cpuSeconds = () => {
        const stat = fs.readFileSync(`/proc/${server.pid}/stat`, "utf8");
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in USER_HZ (100 on Linux)
      };
      // Lower the running server's limit to a few descriptors above what it holds, once its
      // threads have opened what they keep (the engine and the normaliser open theirs after start).
      let held = fds();
      for (let stable = 0; stable < 10; ) {
        await sleep(100);
        const now = fds();
        stable = now === held ? stable + 1 : 0;
        held = now;
      }
      const limit = held + 12;
      const p = spawnSync("prlimit", ["--pid", String(server.pid), `--nofile=${limit}:${limit}`], { encoding: "utf8" });
      assert.equal(p.status, 0, `prlimit failed: ${p.stderr}`);
      const sockets = [];
      t.after(() => sockets.forEach((s) => s.destroy()));
      for (let i = 0; i < 40; i++) {
        const s = net.connect({ host: "127.0.0.1", port: server.port });
        s.on("error", () => {});
        sockets.push(s);
      }
      await sleep(500);
      const before = cpuSeconds();
      const warningsBefore = server.logs.filter((l) => l.msg === "accept failed").length;
      await sleep(2_000);
      const used = cpuSeconds() - before;
      const warnings = server.logs.filter((l) => l.msg === "accept failed").length - warningsBefore;
      // Spinning on accept took a whole core (~2 s of CPU here) and logged thousands of lines.
      assert.ok(used < 0.5, `the server used ${used.toFixed(2)} s of CPU in 2 s while out of descriptors`);
      assert.ok(warnings <= 4, `${warnings} "accept failed" lines in 2 s (at most one a second)`);
      const warning = server.logs.find((l) => l.msg === "accept failed");
      assert.ok(warning, "the condition is logged");
      assert.match(warning.hint ?? "", /open-files limit/, JSON.stringify(warning));
      // Once connections go away, the waiting ones are served, and new ones too.
      sockets.forEach((s) => s.destroy());
      let healthz;
      const until = Date.now() + 20_000;
      while (healthz?.status !== 200 && Date.now() < until) {
        healthz = await request(server.port, { method: "GET", path: "/healthz", timeoutMs: 2_000 }).catch((e) => ({ error: e }));
        if (healthz?.status !== 200) await sleep(200);
      }
      assert.equal(healthz?.status, 200, `serves again after the descriptors are freed (last: ${healthz?.error ?? healthz?.status}); ` +
        `${fds()} descriptors open; log:\n${server.stderr.slice(-3000)}`);
    });

    test("/healthz, /readyz and /metrics with outcome labels; SIGTERM exits 0 at once when idle", { timeout: 30_000 }, async (t) => {
      const dir = tempDir(t);
      writeConfig(t, dir, { intake: { shutdown_timeout: "3s" } });
      const server = await startServer(t, dir);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      t.after(() => agent.destroy());

      const body = prOpened();
      const id = crypto.randomUUID();
      const post = async (event, b, opts, did = crypto.randomUUID()) =>
        request(server.port, { headers: await githubHeaders(event, did, b, opts), body: b, agent });
      assert.equal((await post("pull_request", body, {}, id)).status, 202);
      assert.equal((await post("pull_request", body, {}, id)).status, 202); // duplicate
      const star = JSON.stringify(example("star"));
      assert.equal((await post("star", star)).status, 202); // not used: ignored
      const ping = JSON.stringify(example("ping"));
      const pong = await post("ping", ping);
      assert.equal(pong.status, 200, pong.text);
      assert.equal((await post("pull_request", body, { secret: "wrong" })).status, 401);
      // Refused after the signature (400), for an unknown host (404), with the wrong method (405):
      // none may stay counted as a delivery on its way (the writer would then wait out its delay).
      const broken = "{not json";
      assert.equal((await post("pull_request", broken)).status, 400);
      const nohost = await request(server.port, { path: "/hooks/nope", headers: await githubHeaders("pull_request", crypto.randomUUID(), body, {}), body, agent });
      assert.equal(nohost.status, 404, nohost.text);
      assert.equal((await request(server.port, { method: "GET", path: "/hooks/github", agent })).status, 405);

      const healthz = await request(server.port, { method: "GET", path: "/healthz" });
      assert.equal(healthz.status, 200, healthz.text);
      const readyz = await request(server.port, { method: "GET", path: "/readyz" });
      assert.equal(readyz.status, 200, readyz.text);

      await waitForEmptyInbox(server.port);
      const text = await metrics(server.port);
      assert.match(text, /^# TYPE tollgate_deliveries_total counter$/m);
      const series = (outcome, event) =>
        new RegExp(`^tollgate_deliveries_total\\{(?=[^}]*host="github")${event ? `(?=[^}]*event="${event}")` : ""}(?=[^}]*outcome="${outcome}")[^}]*\\} (\\d+)$`, "m");
      for (const [outcome, event, n] of [
        ["stored", "pull_request", 1],
        ["duplicate", "pull_request", 1],
        ["ignored", "other", 1], // unused event types share one label, so senders cannot add series
        ["ping", "ping", 1],
        ["rejected_401", null, 1], // the event of an unverified delivery need not be a label
      ]) {
        const m = series(outcome, event).exec(text);
        assert.ok(m, `no tollgate_deliveries_total series with outcome="${outcome}"${event ? ` event="${event}"` : ""} in:\n${text}`);
        assert.equal(Number(m[1]), n, `outcome ${outcome}`);
      }
      assert.match(text, /^# TYPE tollgate_inbox_depth gauge$/m);
      assert.equal(inboxDepth(text), 0);
      assert.match(text, /^tollgate_intake_duration_seconds_count \d+/m);
      assert.match(text, /^# TYPE tollgate_intake_requests_in_progress gauge$/m);
      assert.match(text, /^tollgate_intake_requests_in_progress 0$/m, "every webhook request handed over or withdrawn");

      // An idle keep-alive connection stays open (the agent's); SIGTERM must not wait for it.
      const sent = Date.now();
      server.kill("SIGTERM");
      const exit = await Promise.race([server.exit, sleep(5_000).then(() => null)]);
      assert.ok(exit, "tollgate did not exit within 5 s of SIGTERM");
      assert.equal(exit.signal, null, "exited by itself, not by a signal");
      assert.equal(exit.code, 0, server.stderr.slice(-2000));
      assert.ok(exit.at - sent < 3_000, `exit took ${exit.at - sent} ms with nothing in flight (shutdown_timeout 3s)`);
      assert.ok(server.logs.some((l) => l.msg === "stopped"), "logs 'stopped'");
      assert.equal(sql(server.db, "SELECT COUNT(*) AS n FROM deliveries WHERE delivery_id = ?", [id])[0].n, 1);
    });

    test("unauthenticated junk cannot grow /metrics: labels are not taken from unverified input", { timeout: 30_000 }, async (t) => {
      // Anyone on the internet can post to /hooks/...: a host name from the URL or an event name
      // from an unsigned request must not become a label value, or every such request adds a
      // series (memory in tollgate, cardinality in Prometheus).
      const dir = tempDir(t);
      writeConfig(t, dir);
      const server = await startServer(t, dir);
      const body = prOpened();
      const count = (text) => text.split("\n").filter((l) => l.startsWith("tollgate_deliveries_total{")).length;
      const before = count(await metrics(server.port));
      for (let i = 0; i < 40; i++) {
        const junk = `junk${i}-${crypto.randomBytes(6).toString("hex")}`;
        await request(server.port, { path: `/hooks/${junk}`, headers: { "Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": junk }, body });
        await request(server.port, {
          headers: { "Content-Type": "application/json", "X-GitHub-Event": junk, "X-GitHub-Delivery": junk, "X-Hub-Signature-256": "sha256=" + "0".repeat(64) },
          body,
        });
      }
      const text = await metrics(server.port);
      const added = count(text) - before;
      t.diagnostic(`tollgate_deliveries_total series added by 80 junk requests: ${added}`);
      assert.ok(added <= 10, `80 unauthenticated requests with made-up host and event names added ${added} series, e.g.:\n${text.split("\n").filter((l) => l.includes("junk")).slice(0, 4).join("\n")}`);
    });

    test("SIGTERM finishes a request in flight: its 202 is sent and it is stored, then exit 0", { timeout: 30_000 }, async (t) => {
      const dir = tempDir(t);
      writeConfig(t, dir, { intake: { shutdown_timeout: "5s" } });
      const server = await startServer(t, dir);
      const body = prOpened();
      const id = crypto.randomUUID();
      const headers = await githubHeaders("pull_request", id, body);
      const head =
        `POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\n` +
        Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("") +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
      let sigtermAt;
      const x = await rawExchange(server.port, async ({ write }) => {
        await write(head);
        await write(body.slice(0, 200));
        await sleep(300);
        sigtermAt = Date.now();
        server.kill("SIGTERM");
        await sleep(500);
        await write(body.slice(200));
      });
      assert.ok(x.response, `no answer to the request in flight at SIGTERM (${x.error?.code ?? "closed"})`);
      assert.equal(x.response.status, 202, x.response.text);
      const exit = await Promise.race([server.exit, sleep(8_000).then(() => null)]);
      assert.ok(exit, "tollgate did not exit after finishing the request in flight");
      assert.equal(exit.code, 0, server.stderr.slice(-2000));
      assert.ok(exit.at - sigtermAt < 5_000, `exit took ${exit.at - sigtermAt} ms`);
      assert.equal(sql(server.db, "SELECT COUNT(*) AS n FROM deliveries WHERE delivery_id = ?", [id])[0].n, 1);
    });

    test("SIGTERM with a client stalled mid-body: exit 0 within shutdown_timeout", { timeout: 30_000 }, async (t) => {
      const dir = tempDir(t);
      writeConfig(t, dir, { intake: { shutdown_timeout: "1s", body_timeout: "30s" } });
      const server = await startServer(t, dir);
      const body = prOpened();
      const headers = await githubHeaders("pull_request", crypto.randomUUID(), body);
      const head =
        `POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\n` +
        Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("") +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
      const stalled = rawExchange(server.port, async ({ write }) => {
        await write(head);
        await write(body.slice(0, 100));
      }, { timeoutMs: 10_000 });
      await sleep(300);
      const sent = Date.now();
      server.kill("SIGTERM");
      const exit = await Promise.race([server.exit, sleep(6_000).then(() => null)]);
      assert.ok(exit, "tollgate did not exit within 6 s of SIGTERM (shutdown_timeout 1s)");
      assert.equal(exit.code, 0, server.stderr.slice(-2000));
      assert.ok(exit.at - sent < 2_500, `exit took ${exit.at - sent} ms (shutdown_timeout 1s)`);
      await stalled;
      assert.equal(rowCount(server.db), 0);
    });
  });

  // 7 -------------------------------------------------------------------------------------------
  describe("7. bad configuration: exit 2 with FILE:LINE:COL messages naming the key", () => {
    function serveWith(t, text, files = {}) {
      const dir = tempDir(t);
      for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
      const file = path.join(dir, "tollgate.yaml");
      fs.writeFileSync(file, text);
      const r = spawnSync(BIN, ["serve", "--config", file], { cwd: dir, encoding: "utf8", timeout: 10_000 });
      return { file, dir, ...r };
    }
    // The line:col where `needle` starts in `text` (1-based).
    function where(text, needle) {
      const i = text.indexOf(needle);
      assert.ok(i >= 0);
      const before = text.slice(0, i).split("\n");
      return { line: before.length, col: before[before.length - 1].length + 1 };
    }
    function assertProblem(r, text, needle, message) {
      assert.equal(r.error, undefined, String(r.error));
      assert.equal(r.status, 2, `exit status ${r.status}; stderr:\n${r.stderr}`);
      const { line, col } = where(text, needle);
      const lines = r.stderr.split("\n").filter((l) => l.startsWith(`${r.file}:`));
      const hit = lines.find((l) => l.startsWith(`${r.file}:${line}:${col}:`) && message.test(l));
      assert.ok(hit, `expected a line "${r.file}:${line}:${col}: ... ${message}" in:\n${r.stderr}`);
      assert.ok(!/"msg":"listening"/.test(r.stderr), "must not start listening");
    }

    test("misspelt top-level key (hsts:)", (t) => {
      const text = "listen: 127.0.0.1:0\ndatabase: ./tollgate.db\nhsts:\n  github:\n    kind: github\n    webhook_secret_file: s\n";
      const r = serveWith(t, text, { s: "x\n" });
      assertProblem(r, text, "hsts", /unknown key 'hsts'.*did you mean 'hosts'/);
    });

    test("misspelt host key (webhook_secret_fle:)", (t) => {
      const text = "listen: 127.0.0.1:0\nhosts:\n  github:\n    kind: github\n    webhook_secret_fle: s\n";
      const r = serveWith(t, text, { s: "x\n" });
      assertProblem(r, text, "webhook_secret_fle", /unknown key 'webhook_secret_fle'.*did you mean 'webhook_secret_file'/);
    });

    test("misspelt intake key (max_bdy:)", (t) => {
      const text = "listen: 127.0.0.1:0\nintake:\n  max_bdy: 1MiB\nhosts:\n  github:\n    kind: github\n    webhook_secret_file: s\n";
      const r = serveWith(t, text, { s: "x\n" });
      assertProblem(r, text, "max_bdy", /unknown key 'max_bdy'.*did you mean 'max_body'/);
    });

    test("missing secret file", (t) => {
      const text = "listen: 127.0.0.1:0\nhosts:\n  github:\n    kind: github\n    webhook_secret_file: secrets/missing\n";
      const r = serveWith(t, text);
      assertProblem(r, text, "secrets/missing", /webhook_secret_file.*cannot read/);
    });
  });
});
