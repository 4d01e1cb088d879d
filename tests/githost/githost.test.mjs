// The test Git host (tests/githost/server.mjs) exercised end to end: started as a child process,
// scripted through /_admin, driven over its REST API and over real git smart HTTP (lighttpd +
// git http-backend). Every REST response body is validated against GitHub's published schemas
// (@octokit/openapi@23.0.2, generated/api.github.com.json) and every webhook payload against
// @octokit/webhooks-schemas; signatures are checked with @octokit/webhooks-methods.
//
//   nice -n 19 node --test tests/githost/

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import http from "node:http";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { verify } from "@octokit/webhooks-methods";

import { RestSchemas, WebhookSchemas } from "./openapi.mjs";
import { readyInfo } from "./client.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const run = promisify(execFile);
const SECRET = "It's a Secret to Everybody";

let server; // child process
let info; // the ready line
let rest;
let hooks;
let receiver;
const received = []; // webhook requests the receiver got
const covered = new Set(); // "METHOD template status" validated
let tmp;
const tokens = {};

async function startServer() {
  const t0 = performance.now();
  const child = spawn(process.execPath, [path.join(HERE, "server.mjs")], { stdio: ["pipe", "pipe", "inherit"] });
  const info = await readyInfo(child);
  return { child, info, ms: performance.now() - t0 };
}

let startMs;
before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "githost-test-"));
  const s = await startServer();
  server = s.child;
  info = s.info;
  startMs = s.ms;
  receiver = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (d) => chunks.push(d));
    req.on("end", () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString() });
      res.writeHead(202);
      res.end();
    });
  });
  await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
  rest = new RestSchemas();
  hooks = new WebhookSchemas();
});

after(async () => {
  if (server) {
    process.kill(server.pid, "SIGTERM");
    await new Promise((r) => server.once("exit", r));
  }
  receiver?.close();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

async function admin(method, p, body) {
  const res = await fetch(`${info.api_url}/_admin${p}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : undefined;
  if (res.status >= 400) throw new Error(`admin ${method} ${p}: ${res.status} ${text}`);
  return json;
}

// One REST call; validates the response against the spec (status documented for the operation,
// body against its schema, rate-limit headers present).
async function api(who, method, p, body, { headers = {}, expect, signal, validateOnly = true } = {}) {
  const h = { accept: "application/vnd.github+json", ...headers };
  if (who) h.authorization = `${who.startsWith("token ") ? "" : "Bearer "}${tokens[who] ?? who}`;
  if (body !== undefined) h["content-type"] = "application/json";
  const res = await fetch(`${info.api_url}${p}`, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), signal });
  const text = await res.text();
  let json;
  const ctype = res.headers.get("content-type") ?? "";
  if (text && ctype.includes("json")) json = JSON.parse(text);
  const pathname = new URL(p, "http://x").pathname;
  const template = rest.template(method, pathname);
  assert.ok(template, `${method} ${pathname} is not in the spec`);
  for (const k of ["limit", "remaining", "used", "reset", "resource"]) {
    assert.ok(res.headers.get(`x-ratelimit-${k}`) !== null, `x-ratelimit-${k} on ${method} ${p} (${res.status})`);
  }
  if (validateOnly) {
    const v = rest.validator(method, template, res.status);
    if (res.status < 400) assert.ok(v.documented, `${res.status} is not a documented response of ${method} ${template}`);
    if (json !== undefined) {
      const errors = v.validate(json);
      assert.equal(errors, null, `${method} ${template} ${res.status}: ${JSON.stringify(errors?.slice(0, 3))}\n${text.slice(0, 500)}`);
    } else if (v.hasBody && res.status !== 304 && !ctype.includes("raw")) {
      assert.fail(`${method} ${template} ${res.status} should have a JSON body`);
    }
    covered.add(`${method} ${template} ${res.status}`);
  }
  if (expect !== undefined) assert.equal(res.status, expect, `${method} ${p}: ${text.slice(0, 300)}`);
  return { status: res.status, headers: res.headers, body: json, text };
}

async function git(args, opts = {}) {
  return run("git", args, { cwd: opts.cwd ?? tmp, env: { ...process.env, GIT_TERMINAL_PROMPT: "0", ...opts.env } });
}

function cloneUrl(user, password, repo) {
  const u = new URL(`${info.git_url}/${repo}.git`);
  u.username = user;
  u.password = password;
  return u.toString();
}

async function deliveries(q) {
  return admin("GET", `/deliveries?${new URLSearchParams(q)}`);
}

// ------------------------------------------------------------------ setup of the world

test("starts in under a second and prints its URLs as one JSON line", () => {
  // startup_ms is the server's own clock (process start to ready); startMs, seen from here,
  // also counts this process being busy, so it only gets a loose bound.
  assert.ok(info.startup_ms < 1000, `server ready after ${info.startup_ms} ms`);
  assert.ok(startMs < 3000, `ready line after ${startMs.toFixed(0)} ms`);
  for (const k of ["api_url", "git_url", "port", "git_port", "lighttpd_pid", "pid"]) assert.ok(info[k], k);
  assert.match(info.api_url, /^http:\/\/127\.0\.0\.1:\d+$/);
  process.kill(info.lighttpd_pid, 0); // lighttpd is alive
});

test("admin API creates organisations, users, teams and repositories with branches", async () => {
  await admin("PUT", "/webhook", { url: `http://127.0.0.1:${receiver.address().port}/hooks/github`, secret: SECRET });
  await admin("POST", "/orgs", { login: "acme" });
  for (const login of ["tollgate-bot", "alice", "bob", "mallory", "reader"]) {
    const u = await admin("POST", "/users", { login, x_access_token: login === "tollgate-bot" });
    tokens[login] = u.token;
  }
  await admin("POST", "/orgs/acme/teams", { name: "SRE", slug: "sre", members: { alice: "maintainer", bob: "member" } });
  const r = await admin("POST", "/repos", {
    owner: "acme",
    name: "env-dev",
    files: { "apps/payments/values.yaml": "image:\n  tag: v1\n", "README.md": "# env-dev\n" },
    branches: {
      "tollgate/payments/dev/1": { files: { "apps/payments/values.yaml": "image:\n  tag: v2\n" }, message: "Promote payments v2" },
      conflicting: { files: { "apps/payments/values.yaml": "image:\n  tag: v9\n" } },
    },
    collaborators: { "tollgate-bot": "write", alice: "admin", bob: "write", reader: "read" },
  });
  assert.equal(r.full_name, "acme/env-dev");
  assert.match(r.branches.main, /^[0-9a-f]{40}$/);
  await admin("POST", "/repos", { owner: "acme", name: "secret", private: true, collaborators: { alice: "write" } });
});

// ------------------------------------------------------------------ auth and rate limits

test("token auth: Bearer and token schemes, 401 Bad credentials like GitHub", async () => {
  const a = await api("tollgate-bot", "GET", "/user", undefined, { expect: 200 });
  assert.equal(a.body.login, "tollgate-bot");
  const b = await api(`token ${tokens.alice}`, "GET", "/user", undefined, { expect: 200 });
  assert.equal(b.body.login, "alice");
  const bad = await api("nope", "GET", "/repos/acme/env-dev", undefined, { expect: 401 });
  assert.equal(bad.body.message, "Bad credentials");
  const anon = await api(null, "GET", "/user", undefined, { expect: 401 });
  assert.equal(anon.body.message, "Requires authentication");
  // A private repository is invisible without access.
  await api("bob", "GET", "/repos/acme/secret", undefined, { expect: 404 });
  await api("alice", "GET", "/repos/acme/secret", undefined, { expect: 200 });
});

test("rate-limit headers on every response, decremented per request; /rate_limit does not count", async () => {
  const one = await api("reader", "GET", "/repos/acme/env-dev", undefined, { expect: 200 });
  const two = await api("reader", "GET", "/repos/acme/env-dev", undefined, { expect: 200 });
  const n1 = Number(one.headers.get("x-ratelimit-remaining"));
  const n2 = Number(two.headers.get("x-ratelimit-remaining"));
  assert.equal(n2, n1 - 1);
  assert.equal(Number(two.headers.get("x-ratelimit-used")), Number(one.headers.get("x-ratelimit-used")) + 1);
  assert.equal(two.headers.get("x-ratelimit-limit"), "5000");
  assert.equal(two.headers.get("x-ratelimit-resource"), "core");
  assert.ok(Number(two.headers.get("x-ratelimit-reset")) > Date.now() / 1000);
  const rl = await api("reader", "GET", "/rate_limit", undefined, { expect: 200 });
  assert.equal(rl.body.resources.core.remaining, n2);
  const again = await api("reader", "GET", "/rate_limit", undefined, { expect: 200 });
  assert.equal(again.body.rate.remaining, n2);
  // A conditional GET that hits costs no quota.
  const list = await api("reader", "GET", "/repos/acme/env-dev/pulls", undefined, { expect: 200 });
  const left = Number(list.headers.get("x-ratelimit-remaining"));
  const cond = await api("reader", "GET", "/repos/acme/env-dev/pulls", undefined, { headers: { "if-none-match": list.headers.get("etag") }, expect: 304 });
  assert.equal(Number(cond.headers.get("x-ratelimit-remaining")), left);
});

test("repository and contents: file at a ref, directory, raw, 404", async () => {
  const repo = await api("tollgate-bot", "GET", "/repos/acme/env-dev", undefined, { expect: 200 });
  assert.equal(repo.body.clone_url, `${info.git_url}/acme/env-dev.git`);
  assert.equal(repo.body.permissions.push, true);
  const main = await api("tollgate-bot", "GET", "/repos/acme/env-dev/contents/apps/payments/values.yaml?ref=main", undefined, { expect: 200 });
  assert.equal(Buffer.from(main.body.content, "base64").toString(), "image:\n  tag: v1\n");
  const br = await api("tollgate-bot", "GET", `/repos/acme/env-dev/contents/apps/payments/values.yaml?ref=${encodeURIComponent("tollgate/payments/dev/1")}`, undefined, { expect: 200 });
  assert.equal(Buffer.from(br.body.content, "base64").toString(), "image:\n  tag: v2\n");
  const dir = await api("tollgate-bot", "GET", "/repos/acme/env-dev/contents/apps", undefined, { expect: 200 });
  assert.deepEqual(dir.body.map((e) => [e.name, e.type]), [["payments", "dir"]]);
  const raw = await api("tollgate-bot", "GET", "/repos/acme/env-dev/contents/README.md", undefined, { headers: { accept: "application/vnd.github.raw" }, expect: 200 });
  assert.equal(raw.text, "# env-dev\n");
  await api("tollgate-bot", "GET", "/repos/acme/env-dev/contents/nope.txt", undefined, { expect: 404 });
  await api("tollgate-bot", "GET", "/repos/acme/env-dev/contents/README.md?ref=no-such-ref", undefined, { expect: 404 });
});

// ------------------------------------------------------------------ git over smart HTTP

test("real git push over HTTP with basic auth (user:token and x-access-token), wrong password refused", async () => {
  const dir = path.join(tmp, "clone1");
  await git(["clone", "-q", cloneUrl("x-access-token", tokens["tollgate-bot"], "acme/env-dev"), dir]);
  await git(["checkout", "-q", "-b", "feature/x"], { cwd: dir });
  await fs.writeFile(path.join(dir, "x.txt"), "x\n");
  await git(["add", "x.txt"], { cwd: dir });
  await git(["-c", "user.name=Bob", "-c", "user.email=bob@example.com", "commit", "-q", "-m", "Add x"], { cwd: dir });
  await git(["push", "-q", "origin", "feature/x"], { cwd: dir });
  const sha = (await git(["rev-parse", "HEAD"], { cwd: dir })).stdout.trim();
  const ref = await api("bob", "GET", "/repos/acme/env-dev/contents/x.txt?ref=feature/x", undefined, { expect: 200 });
  assert.equal(Buffer.from(ref.body.content, "base64").toString(), "x\n");
  // bob pushes with his own login and token.
  await git(["remote", "set-url", "origin", cloneUrl("bob", tokens.bob, "acme/env-dev")], { cwd: dir });
  await fs.writeFile(path.join(dir, "x.txt"), "xx\n");
  await git(["-c", "user.name=Bob", "-c", "user.email=bob@example.com", "commit", "-q", "-am", "More x"], { cwd: dir });
  await git(["push", "-q", "origin", "feature/x"], { cwd: dir });
  assert.notEqual((await git(["rev-parse", "HEAD"], { cwd: dir })).stdout.trim(), sha);
  await assert.rejects(git(["push", "-q", cloneUrl("bob", "wrong", "acme/env-dev"), "HEAD:refs/heads/other"], { cwd: dir }), /Authentication failed|401/);
});

test("pre-receive hook installed through the admin API rejects a push", async () => {
  await admin("PUT", "/repos/acme/env-dev/hooks/pre-receive", { reject: { refs: "^refs/heads/main$", message: "main is protected: open a pull request" } });
  const dir = path.join(tmp, "clone1");
  const before = (await git(["ls-remote", cloneUrl("bob", tokens.bob, "acme/env-dev"), "refs/heads/main"], { cwd: dir })).stdout;
  const err = await git(["push", "origin", "HEAD:refs/heads/main"], { cwd: dir }).catch((e) => e);
  assert.ok(err instanceof Error, "push to main must fail");
  assert.match(err.stderr, /main is protected: open a pull request/);
  assert.match(err.stderr, /pre-receive hook declined/);
  const afterLs = (await git(["ls-remote", cloneUrl("bob", tokens.bob, "acme/env-dev"), "refs/heads/main"], { cwd: dir })).stdout;
  assert.equal(afterLs, before);
  // Other refs still go through; removing the hook lifts the rule.
  await git(["push", "-q", "origin", "HEAD:refs/heads/allowed"], { cwd: dir });
  await admin("DELETE", "/repos/acme/env-dev/hooks/pre-receive");
});

// ------------------------------------------------------------------ pull requests

let prNumber;
test("create pull request: 201, 'opened' webhook; 422 validation errors like GitHub's", async () => {
  const base = "/repos/acme/env-dev/pulls";
  const missing = await api("tollgate-bot", "POST", base, { title: "t", base: "main" }, { expect: 422 });
  assert.match(missing.body.message, /"head" wasn't supplied/);
  const badHead = await api("tollgate-bot", "POST", base, { title: "t", head: "no-such-branch", base: "main" }, { expect: 422 });
  assert.equal(badHead.body.message, "Validation Failed");
  assert.deepEqual(badHead.body.errors, [{ resource: "PullRequest", field: "head", code: "invalid" }]);
  const noCommits = await api("tollgate-bot", "POST", base, { title: "t", head: "main", base: "main" }, { expect: 422 });
  assert.match(noCommits.body.errors[0].message, /No commits between main and main/);
  const created = await api("tollgate-bot", "POST", base, { title: "Promote payments v2 to dev", head: "acme:tollgate/payments/dev/1", base: "main", body: "<!-- tollgate -->" }, { expect: 201 });
  prNumber = created.body.number;
  assert.equal(created.body.state, "open");
  assert.equal(created.body.head.ref, "tollgate/payments/dev/1");
  assert.equal(created.body.mergeable, true);
  assert.equal(created.body.changed_files, 1);
  const dup = await api("tollgate-bot", "POST", base, { title: "again", head: "tollgate/payments/dev/1", base: "main" }, { expect: 422 });
  assert.match(dup.body.errors[0].message, /A pull request already exists for acme:tollgate\/payments\/dev\/1/);
  const d = await deliveries({ event: "pull_request", action: "opened", wait: 1 });
  assert.equal(d.at(-1).payload.pull_request.number, prNumber);
  assert.equal(d.at(-1).payload.sender.login, "tollgate-bot");
});

test("list pull requests filtered by head, base and state; get, update, files", async () => {
  const byHead = await api("tollgate-bot", "GET", `/repos/acme/env-dev/pulls?head=${encodeURIComponent("acme:tollgate/payments/dev/1")}&state=all`, undefined, { expect: 200 });
  assert.deepEqual(byHead.body.map((p) => p.number), [prNumber]);
  const otherHead = await api("tollgate-bot", "GET", "/repos/acme/env-dev/pulls?head=acme:nothing&state=all", undefined, { expect: 200 });
  assert.deepEqual(otherHead.body, []);
  const byBase = await api("tollgate-bot", "GET", "/repos/acme/env-dev/pulls?base=main", undefined, { expect: 200 });
  assert.ok(byBase.body.some((p) => p.number === prNumber));
  const closed = await api("tollgate-bot", "GET", "/repos/acme/env-dev/pulls?state=closed", undefined, { expect: 200 });
  assert.ok(!closed.body.some((p) => p.number === prNumber));
  await api("tollgate-bot", "GET", "/repos/acme/env-dev/pulls?state=bogus", undefined, { expect: 422 });
  const got = await api("tollgate-bot", "GET", `/repos/acme/env-dev/pulls/${prNumber}`, undefined, { expect: 200 });
  assert.equal(got.body.merged, false);
  await api("tollgate-bot", "GET", "/repos/acme/env-dev/pulls/9999", undefined, { expect: 404 });
  const upd = await api("tollgate-bot", "PATCH", `/repos/acme/env-dev/pulls/${prNumber}`, { title: "Promote payments v2 to dev (edited)", body: "new body" }, { expect: 200 });
  assert.equal(upd.body.title, "Promote payments v2 to dev (edited)");
  await api("tollgate-bot", "PATCH", `/repos/acme/env-dev/pulls/${prNumber}`, { state: "merged" }, { expect: 422 });
  const files = await api("tollgate-bot", "GET", `/repos/acme/env-dev/pulls/${prNumber}/files`, undefined, { expect: 200 });
  assert.deepEqual(files.body.map((f) => [f.filename, f.status, f.additions, f.deletions]), [["apps/payments/values.yaml", "modified", 1, 1]]);
  assert.match(files.body[0].patch, /-  tag: v1\n\+  tag: v2/);
});

test("labels and requested reviewers on a pull request", async () => {
  const p = `/repos/acme/env-dev/issues/${prNumber}/labels`;
  const added = await api("tollgate-bot", "POST", p, { labels: ["promotion", "dev"] }, { expect: 200 });
  assert.deepEqual(added.body.map((l) => l.name), ["promotion", "dev"]);
  const set = await api("tollgate-bot", "PUT", p, { labels: ["promotion"] }, { expect: 200 });
  assert.deepEqual(set.body.map((l) => l.name), ["promotion"]);
  const list = await api("tollgate-bot", "GET", p, undefined, { expect: 200 });
  assert.deepEqual(list.body.map((l) => l.name), ["promotion"]);
  await api("tollgate-bot", "POST", p, { labels: ["temp"] }, { expect: 200 });
  const removed = await api("tollgate-bot", "DELETE", `${p}/temp`, undefined, { expect: 200 });
  assert.deepEqual(removed.body.map((l) => l.name), ["promotion"]);
  await api("tollgate-bot", "DELETE", `${p}/nope`, undefined, { expect: 404 });
  await api("reader", "POST", p, { labels: ["x"] }, { expect: 403 });

  const rr = `/repos/acme/env-dev/pulls/${prNumber}/requested_reviewers`;
  const req = await api("tollgate-bot", "POST", rr, { reviewers: ["alice"], team_reviewers: ["sre"] }, { expect: 201 });
  assert.deepEqual(req.body.requested_reviewers.map((u) => u.login), ["alice"]);
  assert.deepEqual(req.body.requested_teams.map((t) => t.slug), ["sre"]);
  const own = await api("tollgate-bot", "POST", rr, { reviewers: ["tollgate-bot"] }, { expect: 422 });
  assert.equal(own.body.message, "Review cannot be requested from pull request author.");
  const stranger = await api("tollgate-bot", "POST", rr, { reviewers: ["mallory"] }, { expect: 422 });
  assert.match(stranger.body.message, /Reviews may only be requested from collaborators/);
  const got = await api("tollgate-bot", "GET", rr, undefined, { expect: 200 });
  assert.deepEqual(got.body.users.map((u) => u.login), ["alice"]);
  const del = await api("tollgate-bot", "DELETE", rr, { reviewers: ["alice"] }, { expect: 200 });
  assert.deepEqual(del.body.requested_reviewers, []);
});

let commentId;
test("issue comments (list, create, update) and reactions; issue_comment webhooks", async () => {
  const p = `/repos/acme/env-dev/issues/${prNumber}/comments`;
  await api("tollgate-bot", "POST", p, {}, { expect: 422 });
  const c = await api("tollgate-bot", "POST", p, { body: "<!-- tollgate:status -->\n| stage | state |" }, { expect: 201 });
  commentId = c.body.id;
  await admin("POST", `/repos/acme/env-dev/pulls/${prNumber}/comments`, { user: "alice", body: "/approve looks good" });
  const list = await api("tollgate-bot", "GET", p, undefined, { expect: 200 });
  assert.deepEqual(list.body.map((x) => x.user.login), ["tollgate-bot", "alice"]);
  assert.equal(list.body[1].author_association, "COLLABORATOR");
  const paged = await api("tollgate-bot", "GET", `${p}?per_page=1&page=1`, undefined, { expect: 200 });
  assert.equal(paged.body.length, 1);
  assert.match(paged.headers.get("link"), /rel="next"/);
  const upd = await api("tollgate-bot", "PATCH", `/repos/acme/env-dev/issues/comments/${commentId}`, { body: "<!-- tollgate:status -->\n| dev | open |" }, { expect: 200 });
  assert.match(upd.body.body, /dev \| open/);
  await api("tollgate-bot", "GET", `/repos/acme/env-dev/issues/comments/${commentId}`, undefined, { expect: 200 });
  await api("tollgate-bot", "PATCH", `/repos/acme/env-dev/issues/comments/${commentId}`, {}, { expect: 422 });
  await api("tollgate-bot", "GET", "/repos/acme/env-dev/issues/comments/1", undefined, { expect: 404 });

  const alices = list.body[1].id;
  const rp = `/repos/acme/env-dev/issues/comments/${alices}/reactions`;
  const r1 = await api("tollgate-bot", "POST", rp, { content: "+1" }, { expect: 201 });
  const r2 = await api("tollgate-bot", "POST", rp, { content: "+1" }, { expect: 200 });
  assert.equal(r1.body.id, r2.body.id);
  await api("tollgate-bot", "POST", rp, { content: "thumbsup" }, { expect: 422 });
  const rl = await api("tollgate-bot", "GET", rp, undefined, { expect: 200 });
  assert.deepEqual(rl.body.map((r) => r.content), ["+1"]);
  const withRollup = await api("tollgate-bot", "GET", `/repos/acme/env-dev/issues/comments/${alices}`, undefined, { expect: 200 });
  assert.equal(withRollup.body.reactions["+1"], 1);

  const d = await deliveries({ event: "issue_comment", wait: 3 });
  assert.deepEqual(d.map((x) => x.payload.action), ["created", "created", "edited"]);
  assert.equal(d[1].payload.comment.body, "/approve looks good");
  assert.equal(d[1].payload.sender.login, "alice");
  assert.ok(d[1].payload.issue.pull_request, "comment on a PR carries issue.pull_request");
});

test("reviews: created through the admin API and the REST API, listed; pull_request_review webhook", async () => {
  const rv = await admin("POST", `/repos/acme/env-dev/pulls/${prNumber}/reviews`, { user: "alice", state: "APPROVED", body: "ship it" });
  assert.equal(rv.state, "APPROVED");
  await admin("POST", `/repos/acme/env-dev/pulls/${prNumber}/reviews`, { user: "bob", state: "CHANGES_REQUESTED", body: "wait" });
  const own = await api("tollgate-bot", "POST", `/repos/acme/env-dev/pulls/${prNumber}/reviews`, { event: "APPROVE" }, { expect: 422 });
  assert.equal(own.body.message, "Can not approve your own pull request");
  await api("bob", "POST", `/repos/acme/env-dev/pulls/${prNumber}/reviews`, { event: "APPROVE", body: "ok now" }, { expect: 200 });
  const list = await api("tollgate-bot", "GET", `/repos/acme/env-dev/pulls/${prNumber}/reviews`, undefined, { expect: 200 });
  assert.deepEqual(list.body.map((r) => [r.user.login, r.state]), [["alice", "APPROVED"], ["bob", "CHANGES_REQUESTED"], ["bob", "APPROVED"]]);
  const d = await deliveries({ event: "pull_request_review", wait: 3 });
  assert.deepEqual(d.map((x) => x.payload.review.state), ["approved", "changes_requested", "approved"]);
});

let headSha;
test("commit statuses, combined status and check runs; status and check_run webhooks", async () => {
  const pr = await api("tollgate-bot", "GET", `/repos/acme/env-dev/pulls/${prNumber}`, undefined, { expect: 200 });
  headSha = pr.body.head.sha;
  const empty = await api("tollgate-bot", "GET", `/repos/acme/env-dev/commits/${headSha}/status`, undefined, { expect: 200 });
  assert.equal(empty.body.state, "pending");
  assert.equal(empty.body.total_count, 0);
  const s = await api("tollgate-bot", "POST", `/repos/acme/env-dev/statuses/${headSha}`, { state: "pending", context: "tollgate/dev", description: "waiting", target_url: "http://127.0.0.1/run/1" }, { expect: 201 });
  assert.equal(s.body.state, "pending");
  await api("tollgate-bot", "POST", `/repos/acme/env-dev/statuses/${headSha}`, { state: "bogus", context: "x" }, { expect: 422 });
  await api("tollgate-bot", "POST", `/repos/acme/env-dev/statuses/${"0".repeat(40)}`, { state: "success" }, { expect: 422 });
  await api("reader", "POST", `/repos/acme/env-dev/statuses/${headSha}`, { state: "success" }, { expect: 403 });
  await admin("POST", `/repos/acme/env-dev/statuses/${headSha}`, { state: "success", context: "ci/test", user: "bob" });
  const combined = await api("tollgate-bot", "GET", `/repos/acme/env-dev/commits/${headSha}/status`, undefined, { expect: 200 });
  assert.equal(combined.body.state, "pending");
  assert.deepEqual(combined.body.statuses.map((x) => [x.context, x.state]).sort(), [["ci/test", "success"], ["tollgate/dev", "pending"]]);
  await api("tollgate-bot", "POST", `/repos/acme/env-dev/statuses/${headSha}`, { state: "success", context: "tollgate/dev" }, { expect: 201 });
  const ok = await api("tollgate-bot", "GET", `/repos/acme/env-dev/commits/${encodeURIComponent("tollgate/payments/dev/1")}/status`, undefined, { expect: 200 });
  assert.equal(ok.body.state, "success");
  const statuses = await api("tollgate-bot", "GET", `/repos/acme/env-dev/commits/${headSha}/statuses`, undefined, { expect: 200 });
  assert.equal(statuses.body.length, 3);

  const run = await admin("POST", "/repos/acme/env-dev/check-runs", { name: "build", head_sha: headSha, status: "in_progress" });
  await admin("PATCH", `/repos/acme/env-dev/check-runs/${run.id}`, { conclusion: "success" });
  const viaApi = await api("tollgate-bot", "POST", "/repos/acme/env-dev/check-runs", { name: "tollgate/pipeline", head_sha: headSha, status: "completed", conclusion: "success", output: { title: "valid", summary: "ok" } }, { expect: 201 });
  await api("tollgate-bot", "PATCH", `/repos/acme/env-dev/check-runs/${viaApi.body.id}`, { output: { title: "valid", summary: "still ok" } }, { expect: 200 });
  await api("tollgate-bot", "GET", `/repos/acme/env-dev/check-runs/${viaApi.body.id}`, undefined, { expect: 200 });
  const checks = await api("tollgate-bot", "GET", `/repos/acme/env-dev/commits/${headSha}/check-runs`, undefined, { expect: 200 });
  assert.deepEqual(checks.body.check_runs.map((c) => [c.name, c.status, c.conclusion]).sort(), [["build", "completed", "success"], ["tollgate/pipeline", "completed", "success"]]);
  assert.equal(checks.body.check_runs[0].pull_requests[0].number, prNumber);
  const named = await api("tollgate-bot", "GET", `/repos/acme/env-dev/commits/${headSha}/check-runs?check_name=build`, undefined, { expect: 200 });
  assert.equal(named.body.total_count, 1);

  const st = await deliveries({ event: "status", wait: 3 });
  assert.equal(st.at(-1).payload.sha, headSha);
  const cr = await deliveries({ event: "check_run", action: "completed", wait: 2 });
  assert.equal(cr[0].payload.check_run.name, "build");
});

test("permissions and team membership", async () => {
  const perm = async (u) => (await api("tollgate-bot", "GET", `/repos/acme/env-dev/collaborators/${u}/permission`, undefined, { expect: 200 })).body;
  assert.equal((await perm("alice")).permission, "admin");
  assert.equal((await perm("bob")).permission, "write");
  assert.equal((await perm("reader")).permission, "read");
  assert.equal((await perm("mallory")).permission, "read"); // public repository
  await admin("PUT", "/repos/acme/env-dev/collaborators/mallory", { permission: "triage" });
  const m = await perm("mallory");
  assert.equal(m.permission, "read");
  assert.equal(m.role_name, "triage");
  await api("tollgate-bot", "GET", "/repos/acme/env-dev/collaborators/nobody/permission", undefined, { expect: 404 });
  const mem = await api("tollgate-bot", "GET", "/orgs/acme/teams/sre/memberships/alice", undefined, { expect: 200 });
  assert.equal(mem.body.role, "maintainer");
  assert.equal(mem.body.state, "active");
  await api("tollgate-bot", "GET", "/orgs/acme/teams/sre/memberships/mallory", undefined, { expect: 404 });
  await api("tollgate-bot", "GET", "/orgs/acme/teams/nope/memberships/alice", undefined, { expect: 404 });
});

// ------------------------------------------------------------------ merging

test("merge: 405 while required checks are missing/pending/failing, 409 when the head moved, then merged", async () => {
  await admin("PUT", "/repos/acme/env-dev/protection/main", { required_status_checks: ["ci/deploy"] });
  const mergeUrl = `/repos/acme/env-dev/pulls/${prNumber}/merge`;
  const missing = await api("tollgate-bot", "PUT", mergeUrl, { sha: headSha, merge_method: "squash" }, { expect: 405 });
  assert.equal(missing.body.message, 'Required status check "ci/deploy" is expected.');
  await admin("POST", `/repos/acme/env-dev/statuses/${headSha}`, { state: "pending", context: "ci/deploy" });
  const pending = await api("tollgate-bot", "PUT", mergeUrl, { sha: headSha, merge_method: "squash" }, { expect: 405 });
  assert.equal(pending.body.message, "Pull Request is not mergeable");
  const state = await api("tollgate-bot", "GET", `/repos/acme/env-dev/pulls/${prNumber}`, undefined, { expect: 200 });
  assert.equal(state.body.mergeable_state, "blocked");
  await admin("POST", `/repos/acme/env-dev/statuses/${headSha}`, { state: "failure", context: "ci/deploy" });
  await api("tollgate-bot", "PUT", mergeUrl, { sha: headSha, merge_method: "squash" }, { expect: 405 });
  await api("tollgate-bot", "PUT", mergeUrl, { sha: headSha, merge_method: "fast-forward" }, { expect: 422 });

  // The head moves (a push through the admin API); the PR follows it and says so.
  const before = (await deliveries({})).length;
  const moved = await admin("POST", "/repos/acme/env-dev/commits", { branch: "tollgate/payments/dev/1", files: { "apps/payments/values.yaml": "image:\n  tag: v3\n" }, user: "tollgate-bot", message: "Promote payments v3" });
  const stale = await api("tollgate-bot", "PUT", mergeUrl, { sha: headSha, merge_method: "squash" }, { expect: 409 });
  assert.equal(stale.body.message, "Head branch was modified. Review and try the merge again.");
  const sync = (await deliveries({ event: "pull_request", action: "synchronize", wait: 1 })).filter((d) => d.id > before);
  assert.equal(sync.length, 1);
  assert.equal(sync[0].payload.before, headSha);
  assert.equal(sync[0].payload.after, moved.sha);

  await admin("POST", `/repos/acme/env-dev/statuses/${moved.sha}`, { state: "success", context: "ci/deploy" });
  const merged = await api("tollgate-bot", "PUT", mergeUrl, { sha: moved.sha, merge_method: "squash", commit_title: "Promote payments v3 to dev (#1)" }, { expect: 200 });
  assert.equal(merged.body.merged, true);
  await api("tollgate-bot", "GET", mergeUrl, undefined, { expect: 204 });
  const again = await api("tollgate-bot", "PUT", mergeUrl, { sha: moved.sha }, { expect: 405 });
  assert.equal(again.body.message, "Pull Request is not mergeable");
  const pr = await api("tollgate-bot", "GET", `/repos/acme/env-dev/pulls/${prNumber}`, undefined, { expect: 200 });
  assert.equal(pr.body.merged, true);
  assert.equal(pr.body.merge_commit_sha, merged.body.sha);
  assert.equal(pr.body.merged_by.login, "tollgate-bot");
  const main = await api("tollgate-bot", "GET", "/repos/acme/env-dev/contents/apps/payments/values.yaml?ref=main", undefined, { expect: 200 });
  assert.equal(Buffer.from(main.body.content, "base64").toString(), "image:\n  tag: v3\n");
  const closed = await deliveries({ event: "pull_request", action: "closed", wait: 1 });
  assert.equal(closed.at(-1).payload.pull_request.merged, true);
  assert.equal(closed.at(-1).payload.pull_request.merge_commit_sha, merged.body.sha);
  await admin("DELETE", "/repos/acme/env-dev/protection/main");
  await api("tollgate-bot", "GET", "/repos/acme/env-dev/pulls/999/merge", undefined, { expect: 404 });
});

async function branchWithCommits(repo, branch, n) {
  let sha;
  for (let i = 0; i < n; i++) {
    sha = (await admin("POST", `/repos/${repo}/commits`, { branch, from: i === 0 ? "main" : undefined, files: { [`${branch}/${i}.txt`]: `${i}\n` }, user: "bob", message: `${branch} commit ${i}` })).sha;
  }
  return sha;
}

test("merge with each method produces real commits (merge, squash, rebase)", async () => {
  const repo = await admin("POST", "/repos", { owner: "acme", name: "env-methods", collaborators: { "tollgate-bot": "write", bob: "write" } });
  const dir = path.join(tmp, "methods");
  for (const method of ["merge", "squash", "rebase"]) {
    const head = await branchWithCommits("acme/env-methods", `m-${method}`, 2);
    // Move main on, so the merge is a real three-way one.
    await admin("POST", "/repos/acme/env-methods/commits", { branch: "main", files: { [`main-${method}.txt`]: "m\n" }, user: "alice" });
    const pr = await api("tollgate-bot", "POST", "/repos/acme/env-methods/pulls", { title: `Via ${method}`, head: `m-${method}`, base: "main" }, { expect: 201 });
    const res = await api("tollgate-bot", "PUT", `/repos/acme/env-methods/pulls/${pr.body.number}/merge`, { sha: head, merge_method: method }, { expect: 200 });
    await fs.rm(dir, { recursive: true, force: true });
    await git(["clone", "-q", cloneUrl("bob", tokens.bob, "acme/env-methods"), dir]);
    const tip = (await git(["rev-parse", "HEAD"], { cwd: dir })).stdout.trim();
    assert.equal(tip, res.body.sha);
    const parents = (await git(["log", "-1", "--format=%P", tip], { cwd: dir })).stdout.trim().split(" ");
    const committer = (await git(["log", "-1", "--format=%cn <%ce>", tip], { cwd: dir })).stdout.trim();
    assert.equal(committer, "GitHub <noreply@github.com>");
    const files = (await git(["ls-tree", "-r", "--name-only", tip], { cwd: dir })).stdout;
    assert.match(files, new RegExp(`m-${method}/0.txt`));
    assert.match(files, new RegExp(`m-${method}/1.txt`));
    assert.match(files, new RegExp(`main-${method}.txt`));
    if (method === "merge") {
      assert.equal(parents.length, 2);
      assert.equal(parents[1], head);
      assert.match((await git(["log", "-1", "--format=%s", tip], { cwd: dir })).stdout, new RegExp(`Merge pull request #${pr.body.number} from acme/m-merge`));
    } else if (method === "squash") {
      assert.equal(parents.length, 1);
      assert.match((await git(["log", "-1", "--format=%s", tip], { cwd: dir })).stdout, /Via squash \(#\d+\)/);
      assert.match((await git(["log", "-1", "--format=%B", tip], { cwd: dir })).stdout, /\* m-squash commit 0/);
    } else {
      assert.equal(parents.length, 1);
      const subjects = (await git(["log", "-3", "--format=%s|%an", tip], { cwd: dir })).stdout.trim().split("\n");
      assert.deepEqual(subjects.slice(0, 2), ["m-rebase commit 1|bob", "m-rebase commit 0|bob"]);
      assert.notEqual(tip, head, "rebased commits are new commits");
    }
  }
  assert.ok(repo.clone_url);
});

test("conflicting changes: mergeable false, mergeable_state dirty, merge 405", async () => {
  await admin("POST", "/repos/acme/env-dev/commits", { branch: "conflicting", files: { "apps/payments/values.yaml": "image:\n  tag: v99\n" }, user: "bob" });
  const pr = await api("bob", "POST", "/repos/acme/env-dev/pulls", { title: "Conflict", head: "conflicting", base: "main" }, { expect: 201 });
  assert.equal(pr.body.mergeable, false);
  assert.equal(pr.body.mergeable_state, "dirty");
  await api("tollgate-bot", "PUT", `/repos/acme/env-dev/pulls/${pr.body.number}/merge`, { merge_method: "merge" }, { expect: 405 });
  // close and reopen through the API, then close as a person through the admin API
  const closed = await api("bob", "PATCH", `/repos/acme/env-dev/pulls/${pr.body.number}`, { state: "closed" }, { expect: 200 });
  assert.equal(closed.body.state, "closed");
  await api("bob", "PATCH", `/repos/acme/env-dev/pulls/${pr.body.number}`, { state: "open" }, { expect: 200 });
  await admin("POST", `/repos/acme/env-dev/pulls/${pr.body.number}/close`, { user: "alice" });
  const d = await deliveries({ event: "pull_request", wait: 1 });
  const mine = d.filter((x) => x.payload.number === pr.body.number && x.payload.repository.name === "env-dev").map((x) => [x.payload.action, x.payload.pull_request.merged, x.payload.sender.login]);
  assert.deepEqual(mine, [["opened", false, "bob"], ["closed", false, "bob"], ["reopened", false, "bob"], ["closed", false, "alice"]]);
});

test("a person merges through the admin API; required approvals gate the merge", async () => {
  const head = await branchWithCommits("acme/env-dev", "manual", 1);
  const pr = await admin("POST", "/repos/acme/env-dev/pulls", { head: "manual", title: "Manual merge", user: "tollgate-bot" });
  await admin("PUT", "/repos/acme/env-dev/protection/main", { required_approving_review_count: 1 });
  const blocked = await api("tollgate-bot", "PUT", `/repos/acme/env-dev/pulls/${pr.number}/merge`, { sha: head }, { expect: 405 });
  assert.equal(blocked.body.message, "At least 1 approving review is required by reviewers with write access.");
  await admin("POST", `/repos/acme/env-dev/pulls/${pr.number}/reviews`, { user: "reader", state: "APPROVED" });
  await api("tollgate-bot", "PUT", `/repos/acme/env-dev/pulls/${pr.number}/merge`, { sha: head }, { expect: 405 });
  await admin("POST", `/repos/acme/env-dev/pulls/${pr.number}/reviews`, { user: "alice", state: "APPROVED" });
  const res = await admin("POST", `/repos/acme/env-dev/pulls/${pr.number}/merge`, { user: "alice", merge_method: "rebase", sha: head });
  assert.equal(res.merged, true);
  const got = await api("tollgate-bot", "GET", `/repos/acme/env-dev/pulls/${pr.number}`, undefined, { expect: 200 });
  assert.equal(got.body.merged_by.login, "alice");
  await admin("DELETE", "/repos/acme/env-dev/protection/main");
});

test("a push over HTTP moves an open PR's head: synchronize is sent by the post-receive hook", async () => {
  const dir = path.join(tmp, "clone2");
  await git(["clone", "-q", "-b", "feature/x", cloneUrl("bob", tokens.bob, "acme/env-dev"), dir]);
  const pr = await api("bob", "POST", "/repos/acme/env-dev/pulls", { title: "Feature x", head: "feature/x", base: "main" }, { expect: 201 });
  const mark = (await deliveries({})).at(-1).id;
  await fs.writeFile(path.join(dir, "y.txt"), "y\n");
  await git(["add", "y.txt"], { cwd: dir });
  await git(["-c", "user.name=Bob", "-c", "user.email=bob@example.com", "commit", "-q", "-m", "Add y"], { cwd: dir });
  await git(["push", "-q", "origin", "feature/x"], { cwd: dir });
  const sha = (await git(["rev-parse", "HEAD"], { cwd: dir })).stdout.trim();
  // No API read in between: the hook told the host.
  const sync = await deliveries({ event: "pull_request", action: "synchronize", after: mark, wait: 1 });
  assert.equal(sync.length, 1);
  assert.equal(sync[0].payload.after, sha);
  assert.equal(sync[0].payload.number, pr.body.number);
  assert.equal(sync[0].payload.sender.login, "bob");
  const got = await api("bob", "GET", `/repos/acme/env-dev/pulls/${pr.body.number}`, undefined, { expect: 200 });
  assert.equal(got.body.head.sha, sha);
});

// ------------------------------------------------------------------ faults

test("fault: 5xx for the next N requests, then normal answers", async () => {
  await admin("PUT", "/faults", { kind: "status", status: 502, count: 2, path: "^/repos/acme/env-dev$" });
  const r1 = await api("tollgate-bot", "GET", "/repos/acme/env-dev", undefined, { expect: 502 });
  assert.equal(r1.body.message, "Server Error");
  await api("tollgate-bot", "GET", "/repos/acme/env-dev", undefined, { expect: 502 });
  await api("tollgate-bot", "GET", "/repos/acme/env-dev", undefined, { expect: 200 });
  const log = await admin("GET", "/requests");
  assert.deepEqual(log.filter((r) => r.path === "/repos/acme/env-dev").slice(-3).map((r) => r.status), [502, 502, 200]);
  await admin("DELETE", "/faults");
});

test("fault: connection reset and timeout", async () => {
  await admin("PUT", "/faults", [{ kind: "reset", count: 1, path: "/pulls$" }, { kind: "timeout", count: 1, hold_ms: 2000, path: "/contents/" }]);
  await assert.rejects(fetch(`${info.api_url}/repos/acme/env-dev/pulls`, { headers: { authorization: `Bearer ${tokens.bob}` } }), (e) => /ECONNRESET|socket|other side closed/i.test(String(e.cause?.code ?? e.cause?.message ?? e)));
  await assert.rejects(
    fetch(`${info.api_url}/repos/acme/env-dev/contents/README.md`, { headers: { authorization: `Bearer ${tokens.bob}` }, signal: AbortSignal.timeout(300) }),
    /TimeoutError|aborted/,
  );
  await api("bob", "GET", "/repos/acme/env-dev/pulls", undefined, { expect: 200 });
  await admin("DELETE", "/faults");
});

test("fault: secondary rate limit is a 403 with retry-after", async () => {
  await admin("PUT", "/faults", { kind: "secondary_rate_limit", retry_after: 7, count: 1, method: "POST" });
  const r = await api("bob", "POST", `/repos/acme/env-dev/issues/${prNumber}/comments`, { body: "hi" }, { expect: 403 });
  assert.equal(r.headers.get("retry-after"), "7");
  assert.match(r.body.message, /secondary rate limit/);
  assert.notEqual(r.headers.get("x-ratelimit-remaining"), "0");
  await api("bob", "POST", `/repos/acme/env-dev/issues/${prNumber}/comments`, { body: "hi" }, { expect: 201 });
  await admin("DELETE", "/faults");
});

test("fault: primary limit exhaustion is a 403 with remaining 0 until reset", async () => {
  await admin("PUT", "/faults", { kind: "primary_rate_limit", count: 1, reset_in: 1 });
  const r = await api("reader", "GET", "/repos/acme/env-dev", undefined, { expect: 403 });
  assert.equal(r.headers.get("x-ratelimit-remaining"), "0");
  assert.match(r.body.message, /API rate limit exceeded for user ID/);
  const reset = Number(r.headers.get("x-ratelimit-reset"));
  await api("reader", "GET", "/repos/acme/env-dev", undefined, { expect: 403 });
  await new Promise((res) => setTimeout(res, Math.max(0, reset * 1000 - Date.now()) + 50));
  const ok = await api("reader", "GET", "/repos/acme/env-dev", undefined, { expect: 200 });
  assert.equal(ok.headers.get("x-ratelimit-remaining"), "4999");
  // Set a quota through the admin API: 429 when it runs out, as GitHub may answer.
  await admin("PUT", "/rate-limit", { login: "reader", remaining: 1, status: 429 });
  await api("reader", "GET", "/repos/acme/env-dev", undefined, { expect: 200 });
  const over = await api("reader", "GET", "/repos/acme/env-dev", undefined, { expect: 429 });
  assert.equal(over.headers.get("x-ratelimit-remaining"), "0");
  await admin("PUT", "/rate-limit", { login: "reader", remaining: 5000, status: 403 });
  await admin("DELETE", "/faults");
});

test("fault: added latency, a seeded rate, and 405 from the merge", async () => {
  await admin("PUT", "/faults", { kind: "latency", latency_ms: 200, count: 1 });
  const t0 = performance.now();
  await api("bob", "GET", "/repos/acme/env-dev", undefined, { expect: 200 });
  assert.ok(performance.now() - t0 >= 190);
  await admin("PUT", "/faults", { seed: 42, faults: [{ kind: "status", status: 503, rate: 0.5, path: "^/rate_limit$" }] });
  const codes = [];
  for (let i = 0; i < 20; i++) codes.push((await fetch(`${info.api_url}/rate_limit`, { headers: { authorization: `Bearer ${tokens.bob}` } })).status);
  const fails = codes.filter((c) => c === 503).length;
  assert.ok(fails > 2 && fails < 18, `about half failed: ${codes}`);
  const head = await branchWithCommits("acme/env-dev", "fault-merge", 1);
  const pr = await api("bob", "POST", "/repos/acme/env-dev/pulls", { title: "405", head: "fault-merge", base: "main" }, { expect: 201 });
  await admin("PUT", "/faults", { kind: "not_mergeable", count: 1 });
  const r = await api("bob", "PUT", `/repos/acme/env-dev/pulls/${pr.body.number}/merge`, { sha: head }, { expect: 405 });
  assert.equal(r.body.message, "Pull Request is not mergeable");
  await api("bob", "PUT", `/repos/acme/env-dev/pulls/${pr.body.number}/merge`, { sha: head }, { expect: 200 });
  await admin("DELETE", "/faults");
});

// ------------------------------------------------------------------ webhooks

test("webhooks: every delivery validates against @octokit/webhooks-schemas and is signed", async () => {
  const all = await deliveries({ wait: 1 });
  const events = new Set();
  for (const d of all) {
    const errors = hooks.validate(d.event, d.payload);
    assert.equal(errors, null, `${d.event}.${d.action} #${d.id}: ${JSON.stringify(errors?.slice(0, 3))}`);
    events.add(`${d.event}.${d.action ?? ""}`);
    assert.equal(d.status_code, 202, `delivery ${d.id} reached the receiver`);
  }
  for (const e of ["ping.", "pull_request.opened", "pull_request.synchronize", "pull_request.closed", "pull_request.reopened", "issue_comment.created", "issue_comment.edited", "pull_request_review.submitted", "status.", "check_run.created", "check_run.completed"]) {
    assert.ok(events.has(e), `a ${e} delivery was sent`);
  }
  assert.equal(received.length, all.length);
  for (const r of received) {
    assert.match(r.headers["x-github-delivery"], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.ok(r.headers["x-github-event"]);
    assert.ok(await verify(SECRET, r.body, r.headers["x-hub-signature-256"]), "signature verifies");
    assert.equal(r.headers["content-type"], "application/json");
  }
  const merged = all.find((d) => d.event === "pull_request" && d.action === "closed" && d.payload.pull_request.merged);
  assert.ok(merged, "a merged closed event");
  const again = await admin("POST", `/deliveries/${merged.id}/redeliver`);
  assert.equal(again.guid, merged.guid);
  await deliveries({ wait: all.length + 1 });
  assert.equal(received.at(-1).headers["x-github-delivery"], merged.guid);
});

test("every endpoint was exercised and validated against the OpenAPI description", () => {
  const wanted = [
    "GET /repos/{owner}/{repo}/contents/{path} 200",
    "GET /repos/{owner}/{repo}/contents/{path} 404",
    "GET /repos/{owner}/{repo}/pulls 200",
    "POST /repos/{owner}/{repo}/pulls 201",
    "POST /repos/{owner}/{repo}/pulls 422",
    "GET /repos/{owner}/{repo}/pulls/{pull_number} 200",
    "GET /repos/{owner}/{repo}/pulls/{pull_number} 404",
    "PATCH /repos/{owner}/{repo}/pulls/{pull_number} 200",
    "PATCH /repos/{owner}/{repo}/pulls/{pull_number} 422",
    "PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge 200",
    "PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge 405",
    "PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge 409",
    "PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge 422",
    "GET /repos/{owner}/{repo}/pulls/{pull_number}/merge 204",
    "GET /repos/{owner}/{repo}/pulls/{pull_number}/merge 404",
    "GET /repos/{owner}/{repo}/pulls/{pull_number}/files 200",
    "GET /repos/{owner}/{repo}/issues/{issue_number}/comments 200",
    "POST /repos/{owner}/{repo}/issues/{issue_number}/comments 201",
    "POST /repos/{owner}/{repo}/issues/{issue_number}/comments 422",
    "GET /repos/{owner}/{repo}/issues/comments/{comment_id} 200",
    "GET /repos/{owner}/{repo}/issues/comments/{comment_id} 404",
    "PATCH /repos/{owner}/{repo}/issues/comments/{comment_id} 200",
    "PATCH /repos/{owner}/{repo}/issues/comments/{comment_id} 422",
    "GET /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions 200",
    "POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions 200",
    "POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions 201",
    "POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions 422",
    "GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews 200",
    "POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews 200",
    "POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews 422",
    "POST /repos/{owner}/{repo}/statuses/{sha} 201",
    "GET /repos/{owner}/{repo}/commits/{ref}/status 200",
    "GET /repos/{owner}/{repo}/commits/{ref}/statuses 200",
    "GET /repos/{owner}/{repo}/commits/{ref}/check-runs 200",
    "POST /repos/{owner}/{repo}/check-runs 201",
    "PATCH /repos/{owner}/{repo}/check-runs/{check_run_id} 200",
    "GET /repos/{owner}/{repo}/check-runs/{check_run_id} 200",
    "GET /repos/{owner}/{repo}/collaborators/{username}/permission 200",
    "GET /repos/{owner}/{repo}/collaborators/{username}/permission 404",
    "GET /orgs/{org}/teams/{team_slug}/memberships/{username} 200",
    "GET /orgs/{org}/teams/{team_slug}/memberships/{username} 404",
    "GET /repos/{owner}/{repo}/issues/{issue_number}/labels 200",
    "POST /repos/{owner}/{repo}/issues/{issue_number}/labels 200",
    "PUT /repos/{owner}/{repo}/issues/{issue_number}/labels 200",
    "DELETE /repos/{owner}/{repo}/issues/{issue_number}/labels/{name} 200",
    "GET /repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers 200",
    "POST /repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers 201",
    "POST /repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers 422",
    "DELETE /repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers 200",
    "GET /repos/{owner}/{repo} 200",
    "GET /repos/{owner}/{repo}/pulls 304",
    "GET /repos/{owner}/{repo} 403",
    "GET /repos/{owner}/{repo} 404",
    "GET /user 200",
    "GET /user 401",
    "GET /rate_limit 200",
  ];
  const missing = wanted.filter((w) => !covered.has(w));
  assert.deepEqual(missing, []);
});
