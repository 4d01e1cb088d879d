#!/usr/bin/env node
// The test Git host: a GitHub-compatible REST API on 127.0.0.1, backed by real bare repositories
// served by the real `git http-backend` behind lighttpd, with real merges by git and real signed
// webhook deliveries. Scripted through /_admin (see docs/test-git-host.md).
//
//   node tests/githost/server.mjs [--port N] [--webhook-url URL --webhook-secret S] [--dir DIR]
//
// Prints one JSON line when ready: {"api_url", "git_url", "port", "git_port", "lighttpd_pid",
// "dir", "pid", "startup_ms"}. SIGTERM / SIGINT stop lighttpd (by its pid) and remove the data directory
// (unless --dir was given).

import http from "node:http";
import crypto from "node:crypto";
import fs from "node:fs/promises";
import fsSync from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";

import { Repo } from "./git.mjs";
import { startLighttpd } from "./lighttpd.mjs";
import * as M from "./model.mjs";
import { Deliverer, buildPayload } from "./webhooks.mjs";

const DOCS = "https://docs.github.com/rest";
const PERMS = ["none", "read", "triage", "write", "maintain", "admin"];

class HttpError extends Error {
  constructor(status, body, headers = {}) {
    super(body?.message ?? String(status));
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}
const notFound = (doc = DOCS) => new HttpError(404, { message: "Not Found", documentation_url: doc, status: "404" });
const validation = (errors, doc = DOCS, message = "Validation Failed") =>
  new HttpError(422, { message, errors, documentation_url: doc, status: "422" });
const invalid = (message, doc = DOCS) => new HttpError(422, { message, documentation_url: doc, status: "422" });
const forbidden = (message, doc = DOCS) => new HttpError(403, { message, documentation_url: doc, status: "403" });

// Deterministic PRNG for fault rates (mulberry32).
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class GitHost {
  constructor({ dir, keepDir }) {
    this.dir = dir;
    this.keepDir = keepDir;
    this.reposDir = path.join(dir, "repos");
    this.usersFile = path.join(dir, "users");
    this.users = new Map(); // login -> user (users and organisations)
    this.tokens = new Map(); // token -> login
    this.teams = new Map(); // "org/slug" -> team
    this.repos = new Map(); // "owner/name" -> repo state
    this.rate = new Map(); // bucket -> { limit, used, reset }
    this.defaultLimit = 5000;
    this.faults = [];
    this.random = prng(1);
    this.requests = [];
    this.nextId = 1000;
    this.deliverer = new Deliverer();
    this.xAccessTokenUser = null;
    this.statsCache = new Map();
    this.routes = [];
    this.defineRoutes();
  }

  id() {
    return ++this.nextId;
  }

  reseed(seed) {
    this.random = prng(Number(seed));
  }

  async start({ port = 0 } = {}) {
    await fs.mkdir(this.reposDir, { recursive: true });
    await fs.writeFile(this.usersFile, "");
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 30_000;
    await new Promise((resolve) => this.server.listen(port, "127.0.0.1", resolve));
    this.port = this.server.address().port;
    this.lighttpd = await startLighttpd({ dir: this.dir, reposDir: this.reposDir, usersFile: this.usersFile });
    this.urls = new M.Urls(`http://127.0.0.1:${this.port}`, this.lighttpd.url);
    return {
      api_url: this.urls.api,
      git_url: this.lighttpd.url,
      port: this.port,
      git_port: this.lighttpd.port,
      lighttpd_pid: this.lighttpd.pid,
      dir: this.dir,
      pid: process.pid,
    };
  }

  async stop() {
    this.lighttpd?.stop();
    this.server?.closeAllConnections?.();
    this.server?.close();
    if (!this.keepDir) await fs.rm(this.dir, { recursive: true, force: true }).catch(() => {});
  }

  // ---------------------------------------------------------------- state helpers

  user(login) {
    const u = this.users.get(login);
    if (u) return u;
    return { login, id: 0, type: "User", site_admin: false, created: Date.now() };
  }

  repo(owner, name) {
    const r = this.repos.get(`${owner}/${name}`);
    if (!r) throw notFound();
    return r;
  }

  permission(repo, login) {
    if (!login) return repo.private ? "none" : "read";
    const u = this.users.get(login);
    if (!u) return "none";
    if (u.site_admin || login === repo.owner) return "admin";
    const direct = repo.collaborators.get(login);
    let best = direct ?? (repo.private ? "none" : "read");
    for (const t of this.teams.values()) {
      if (t.org === repo.owner && t.members.has(login) && t.repos.has(repo.name)) {
        const p = t.repos.get(repo.name);
        if (PERMS.indexOf(p) > PERMS.indexOf(best)) best = p;
      }
    }
    return best;
  }

  requirePermission(repo, login, needed) {
    const p = this.permission(repo, login);
    if (PERMS.indexOf(p) >= PERMS.indexOf("read") || needed === "none") {
      if (PERMS.indexOf(p) >= PERMS.indexOf(needed)) return p;
      if (!login) throw new HttpError(401, { message: "Requires authentication", documentation_url: DOCS, status: "401" });
      throw forbidden("Must have push access to repository");
    }
    throw notFound();
  }

  association(repo, login) {
    if (login === repo.owner) return "OWNER";
    if (repo.collaborators.has(login)) return "COLLABORATOR";
    for (const t of this.teams.values()) if (t.org === repo.owner && t.members.has(login)) return "MEMBER";
    return "NONE";
  }

  ctx() {
    return {
      urls: this.urls,
      user: (l) => this.user(l),
      repoJson: (r) => this.repoJson(r),
      labelsOf: (pr) => pr.labels.map((n) => M.label(pr.repo.labels.get(n), pr.repo, this.urls)),
      teamJson: (org, slug) => M.team(this.teams.get(`${org}/${slug}`), this.user(org), this.urls),
      teamSimpleJson: (org, slug) => M.teamSimple(this.teams.get(`${org}/${slug}`), this.user(org), this.urls),
      association: (r, l) => this.association(r, l),
      pullsForSha: (r, sha) => [...r.pulls.values()].filter((p) => p.state === "open" && p.head_sha === sha),
      appOwner: () => [...this.users.values()].find((u) => u.type === "Organization")?.login ?? "githost",
    };
  }

  repoJson(r, login) {
    const perm = login !== undefined ? this.permission(r, login) : undefined;
    const permissions = perm
      ? {
          admin: perm === "admin",
          maintain: PERMS.indexOf(perm) >= PERMS.indexOf("maintain"),
          push: PERMS.indexOf(perm) >= PERMS.indexOf("write"),
          triage: PERMS.indexOf(perm) >= PERMS.indexOf("triage"),
          pull: PERMS.indexOf(perm) >= PERMS.indexOf("read"),
        }
      : undefined;
    return M.repository(r, this.user(r.owner), this.urls, { full: login !== undefined, permissions });
  }

  async writeUsersFile() {
    const lines = [];
    for (const u of this.users.values()) if (u.token && u.type !== "Organization") lines.push(`${u.login}:${u.token}`);
    const x = this.xAccessTokenUser && this.users.get(this.xAccessTokenUser);
    if (x) lines.push(`x-access-token:${x.token}`);
    const tmp = `${this.usersFile}.tmp`;
    await fs.writeFile(tmp, lines.join("\n") + "\n");
    await fs.rename(tmp, this.usersFile);
  }

  // The user a git push came from (REMOTE_USER of lighttpd's basic auth).
  pusher(remoteUser) {
    if (remoteUser === "x-access-token") return this.xAccessTokenUser;
    return this.users.has(remoteUser) ? remoteUser : null;
  }

  // Re-reads the head and base branches of a pull request; emits `synchronize` when the head moved.
  async refreshPull(repo, pr, branches, sender) {
    if (pr.state !== "open") return;
    const find = async (b) => (branches ? branches.find((x) => x.name === b)?.sha ?? null : await repo.git.branchSha(b));
    const head = await find(pr.head);
    const base = await find(pr.base);
    if (base) pr.base_sha = base;
    if (head && head !== pr.head_sha) {
      const before = pr.head_sha;
      pr.head_sha = head;
      pr.updated = Date.now();
      this.emitPull(repo, pr, "synchronize", sender ?? pr.user, { before, after: head });
    }
  }

  async refreshRepo(repo, sender) {
    const open = [...repo.pulls.values()].filter((p) => p.state === "open");
    if (!open.length) return;
    const branches = await repo.git.branches();
    for (const pr of open) await this.refreshPull(repo, pr, branches, sender);
  }

  // mergeable / mergeable_state and the diff figures of a pull request.
  async pullStats(repo, pr) {
    const key = `${repo.id}:${pr.base_sha}:${pr.head_sha}`;
    let s = this.statsCache.get(key);
    if (!s) {
      const { files } = await repo.git.diffFiles(pr.base_sha, pr.head_sha);
      const mb = (await repo.git.mergeBase(pr.base_sha, pr.head_sha)) ?? pr.base_sha;
      const commits = await repo.git.countCommits(mb, pr.head_sha);
      const merge = await repo.git.mergeTree(pr.base_sha, pr.head_sha);
      s = {
        files,
        commits,
        additions: files.reduce((a, f) => a + f.additions, 0),
        deletions: files.reduce((a, f) => a + f.deletions, 0),
        changed_files: files.length,
        clean: merge.clean,
      };
      this.statsCache.set(key, s);
    }
    let mergeable = null;
    let state = "unknown";
    if (pr.state === "open") {
      mergeable = s.clean;
      if (!s.clean) state = "dirty";
      else if (pr.draft) state = "draft";
      else if (this.gate(repo, pr)) state = "blocked";
      else if (this.anyFailing(repo, pr.head_sha)) state = "unstable";
      else state = "clean";
    }
    return { ...s, mergeable, mergeable_state: state };
  }

  latestStatuses(repo, sha) {
    const latest = new Map();
    for (const s of repo.statuses) if (s.sha === sha) latest.set(s.context, s);
    return [...latest.values()];
  }

  latestChecks(repo, sha) {
    const latest = new Map();
    for (const c of repo.checkRuns) if (c.head_sha === sha) latest.set(c.name, c);
    return [...latest.values()];
  }

  anyFailing(repo, sha) {
    return (
      this.latestStatuses(repo, sha).some((s) => s.state === "failure" || s.state === "error") ||
      this.latestChecks(repo, sha).some((c) => c.status === "completed" && !["success", "neutral", "skipped"].includes(c.conclusion))
    );
  }

  // Branch protection of the base branch: null when the merge may go ahead, else the 405 message.
  gate(repo, pr) {
    const prot = repo.protection.get(pr.base);
    if (!prot) return null;
    for (const ctx of prot.required_status_checks ?? []) {
      const st = this.latestStatuses(repo, pr.head_sha).find((s) => s.context === ctx);
      const ck = this.latestChecks(repo, pr.head_sha).find((c) => c.name === ctx);
      if (!st && !ck) return `Required status check "${ctx}" is expected.`;
      const ok = (st && st.state === "success") || (ck && ck.status === "completed" && ["success", "neutral", "skipped"].includes(ck.conclusion));
      if (!ok) return "Pull Request is not mergeable";
    }
    const need = prot.required_approving_review_count ?? 0;
    if (need > 0) {
      const latest = new Map();
      for (const rv of pr.reviews) if (rv.state !== "COMMENTED") latest.set(rv.user, rv);
      const approvals = [...latest.values()].filter(
        (rv) =>
          rv.state === "APPROVED" &&
          PERMS.indexOf(this.permission(repo, rv.user)) >= PERMS.indexOf("write") &&
          (!prot.dismiss_stale_reviews || rv.commit_id === pr.head_sha),
      ).length;
      if (approvals < need) {
        return `At least ${need} approving review${need > 1 ? "s are" : " is"} required by reviewers with write access.`;
      }
    }
    return null;
  }

  // ---------------------------------------------------------------- webhooks

  issueJson(repo, pr) {
    const api = `${this.urls.api}/repos/${repo.owner}/${repo.name}`;
    const simple = M.pullRequestSimple(pr, repo, this.ctx());
    return {
      url: `${api}/issues/${pr.number}`,
      repository_url: api,
      labels_url: `${api}/issues/${pr.number}/labels{/name}`,
      comments_url: `${api}/issues/${pr.number}/comments`,
      events_url: `${api}/issues/${pr.number}/events`,
      html_url: simple.html_url,
      id: pr.id,
      node_id: M.nodeId("Issue", pr.id),
      number: pr.number,
      title: pr.title,
      user: simple.user,
      labels: simple.labels,
      state: pr.state,
      locked: false,
      assignee: null,
      assignees: [],
      milestone: null,
      comments: pr.comments.length,
      created_at: simple.created_at,
      updated_at: simple.updated_at,
      closed_at: simple.closed_at,
      author_association: simple.author_association,
      active_lock_reason: null,
      body: pr.body ?? null,
      reactions: M.reactionRollup(`${api}/issues/${pr.number}/reactions`, []),
      performed_via_github_app: null,
      draft: !!pr.draft,
    };
  }

  common(repo, sender) {
    const f = { repository: this.repoJson(repo), sender: M.simpleUser(this.user(sender), this.urls) };
    const owner = this.user(repo.owner);
    if (owner.type === "Organization") {
      f.organization = {
        login: owner.login,
        id: owner.id,
        node_id: M.nodeId("Organization", owner.id),
        url: `${this.urls.api}/orgs/${owner.login}`,
        repos_url: `${this.urls.api}/orgs/${owner.login}/repos`,
        events_url: `${this.urls.api}/orgs/${owner.login}/events`,
        hooks_url: `${this.urls.api}/orgs/${owner.login}/hooks`,
        issues_url: `${this.urls.api}/orgs/${owner.login}/issues`,
        members_url: `${this.urls.api}/orgs/${owner.login}/members{/member}`,
        public_members_url: `${this.urls.api}/orgs/${owner.login}/public_members{/member}`,
        avatar_url: `${this.urls.html}/avatars/${owner.login}`,
        description: null,
      };
    }
    if (this.installationId) f.installation = { id: this.installationId, node_id: M.nodeId("Installation", this.installationId) };
    return f;
  }

  async emitPullAsync(repo, pr, action, sender, extra = {}) {
    const stats = await this.pullStats(repo, pr);
    const prJson = M.pullRequest(pr, repo, this.ctx(), stats);
    const example = action === "closed" ? "closed" : action;
    const payload = buildPayload("pull_request", example, {
      action,
      number: pr.number,
      pull_request: prJson,
      ...this.common(repo, sender),
    });
    if (action === "synchronize") {
      payload.before = extra.before;
      payload.after = extra.after;
    }
    return this.deliverer.send("pull_request", payload);
  }

  emitPull(repo, pr, action, sender, extra) {
    // Stats need git; keep delivery order by chaining on the delivery queue's predecessor.
    const p = this.emitPullAsync(repo, pr, action, sender, extra).catch((e) => console.error("webhook:", e));
    this.pendingEmits = (this.pendingEmits ?? Promise.resolve()).then(() => p);
    return p;
  }

  emitComment(repo, pr, c, action, sender, changes) {
    const issue = this.issueJson(repo, pr);
    const payload = buildPayload("issue_comment", action, {
      action,
      issue,
      comment: M.issueComment(c, pr, repo, this.ctx()),
      ...this.common(repo, sender),
    });
    // The example is a comment on an issue; on a pull request GitHub adds issue.pull_request.
    const simple = M.pullRequestSimple(pr, repo, this.ctx());
    payload.issue.pull_request = {
      url: simple.url,
      html_url: simple.html_url,
      diff_url: simple.diff_url,
      patch_url: simple.patch_url,
      merged_at: simple.merged_at,
    };
    if (changes) payload.changes = changes;
    return this.deliverer.send("issue_comment", payload);
  }

  async emitReview(repo, pr, rv) {
    const stats = await this.pullStats(repo, pr);
    const reviewJson = M.review(rv, pr, repo, this.ctx());
    reviewJson.state = rv.state.toLowerCase();
    const prJson = M.pullRequest(pr, repo, this.ctx(), stats);
    const payload = buildPayload("pull_request_review", "submitted", {
      action: "submitted",
      review: reviewJson,
      pull_request: prJson,
      ...this.common(repo, rv.user),
    });
    return this.deliverer.send("pull_request_review", payload);
  }

  async emitStatus(repo, s) {
    const info = await repo.git.commitInfo(s.sha);
    const branches = (await repo.git.branches()).filter((b) => b.sha === s.sha);
    const api = `${this.urls.api}/repos/${repo.owner}/${repo.name}`;
    const status = M.commitStatus(s, repo, this.ctx());
    const payload = buildPayload("status", undefined, {
      id: s.id,
      sha: s.sha,
      name: `${repo.owner}/${repo.name}`,
      target_url: status.target_url,
      context: s.context,
      description: status.description,
      state: s.state,
      commit: {
        sha: s.sha,
        node_id: M.nodeId("Commit", s.sha),
        commit: {
          author: info.author,
          committer: info.committer,
          message: info.message,
          tree: { sha: info.tree, url: `${api}/git/trees/${info.tree}` },
          url: `${api}/git/commits/${s.sha}`,
          comment_count: 0,
        },
        url: `${api}/commits/${s.sha}`,
        html_url: `${this.urls.html}/${repo.owner}/${repo.name}/commit/${s.sha}`,
        comments_url: `${api}/commits/${s.sha}/comments`,
        author: null,
        committer: null,
        parents: info.parents.map((p) => ({ sha: p, url: `${api}/commits/${p}`, html_url: `${this.urls.html}/${repo.owner}/${repo.name}/commit/${p}` })),
      },
      branches: branches.map((b) => ({ name: b.name, commit: { sha: b.sha, url: `${api}/commits/${b.sha}` }, protected: repo.protection.has(b.name) })),
      created_at: status.created_at,
      updated_at: status.updated_at,
      ...this.common(repo, s.creator),
    });
    return this.deliverer.send("status", payload);
  }

  emitCheckRun(repo, c, action, sender) {
    const json = M.checkRun(c, repo, this.ctx());
    const branch = [...repo.pulls.values()].find((p) => p.head_sha === c.head_sha)?.head ?? null;
    json.check_suite = {
      id: c.suite_id,
      head_branch: branch,
      head_sha: c.head_sha,
      status: c.status,
      conclusion: c.conclusion ?? null,
      app: json.app,
      pull_requests: json.pull_requests,
    };
    const payload = buildPayload("check_run", action, { action, check_run: json, ...this.common(repo, sender) });
    return this.deliverer.send("check_run", payload);
  }

  emitPing() {
    const payload = buildPayload("ping", undefined, {
      zen: "Keep it logically awesome.",
      hook_id: this.deliverer.hookId,
      hook: {
        type: "Repository",
        id: this.deliverer.hookId,
        name: "web",
        active: true,
        events: this.deliverer.events ?? ["*"],
        config: { content_type: "json", url: this.deliverer.url, insecure_ssl: "0" },
        url: `${this.urls.api}/repos/hooks/${this.deliverer.hookId}`,
        test_url: `${this.urls.api}/repos/hooks/${this.deliverer.hookId}/test`,
        ping_url: `${this.urls.api}/repos/hooks/${this.deliverer.hookId}/pings`,
        deliveries_url: `${this.urls.api}/repos/hooks/${this.deliverer.hookId}/deliveries`,
        last_response: { code: null, status: "unused", message: null },
        updated_at: M.iso(Date.now()),
        created_at: M.iso(Date.now()),
      },
    });
    delete payload.repository;
    delete payload.sender;
    return this.deliverer.send("ping", payload);
  }

  // ---------------------------------------------------------------- HTTP plumbing

  route(method, pattern, handler, opts = {}) {
    const keys = [];
    const re = new RegExp(
      "^" +
        pattern.replace(/\{(\+?)(\w+)\}/g, (_, plus, k) => {
          keys.push(k);
          return plus ? "(.+)" : "([^/]+)";
        }) +
        "$",
    );
    this.routes.push({ method, re, keys, handler, opts, pattern });
  }

  async handle(req, res) {
    const t0 = Date.now();
    const url = new URL(req.url, "http://127.0.0.1");
    const admin = url.pathname.startsWith("/_admin");
    const entry = { method: req.method, path: url.pathname + url.search, status: null, login: null, fault: null, at: new Date().toISOString() };
    if (!admin) this.requests.push(entry);
    let body;
    try {
      body = await readBody(req);
    } catch {
      return;
    }
    if (!admin) {
      const fault = this.pickFault(req.method, url.pathname);
      if (fault) {
        entry.fault = fault.kind;
        const done = await this.applyFault(fault, req, res, entry);
        if (done) return;
      }
    }
    const headers = { "x-github-request-id": crypto.randomBytes(8).toString("hex").toUpperCase() };
    let status = 200;
    let out;
    let bucket;
    try {
      if (!admin) {
        const login = this.authenticate(req);
        entry.login = login;
        bucket = this.charge(login, url.pathname, headers);
        req.login = login;
      }
      const r = this.match(req.method, url.pathname);
      if (!r) throw notFound();
      let json;
      if (body.length && !/^text\//.test(req.headers["content-type"] ?? "")) {
        try {
          json = JSON.parse(body.toString("utf8"));
        } catch {
          throw new HttpError(400, { message: "Problems parsing JSON", documentation_url: DOCS, status: "400" });
        }
      }
      const result = await r.route.handler({ req, url, params: r.params, body: json ?? {}, raw: body, login: req.login, query: url.searchParams, headers });
      if (result?.status) status = result.status;
      out = result?.body;
      Object.assign(headers, result?.headers ?? {});
    } catch (e) {
      if (!(e instanceof HttpError)) {
        console.error(e);
        e = new HttpError(500, { message: "Server Error: " + e.message, documentation_url: DOCS, status: "500" });
      }
      status = e.status;
      out = e.body;
      Object.assign(headers, e.headers);
    }
    entry.status = status;
    entry.ms = Date.now() - t0;
    this.send(req, res, status, out, headers, bucket);
  }

  send(req, res, status, out, headers, bucket) {
    if (out === undefined || status === 204) {
      res.writeHead(status, headers);
      res.end();
      return;
    }
    let text;
    if (Buffer.isBuffer(out)) text = out;
    else {
      text = JSON.stringify(out);
      headers["content-type"] ??= "application/json; charset=utf-8";
    }
    if (req.method === "GET" && status === 200) {
      const etag = `W/"${crypto.createHash("sha256").update(text).digest("hex").slice(0, 40)}"`;
      headers.etag = etag;
      headers["cache-control"] = "private, max-age=60, s-maxage=60";
      if (req.headers["if-none-match"] === etag) {
        // A conditional hit costs no quota, as on GitHub.
        if (bucket) {
          bucket.used = Math.max(0, bucket.used - 1);
          this.rateHeaders(bucket, headers);
        }
        delete headers["content-type"];
        res.writeHead(304, headers);
        res.end();
        return;
      }
    }
    headers["content-length"] = Buffer.byteLength(text);
    res.writeHead(status, headers);
    res.end(text);
  }

  match(method, pathname) {
    let pathMatched = false;
    for (const route of this.routes) {
      const m = route.re.exec(pathname);
      if (!m) continue;
      pathMatched = true;
      if (route.method !== method) continue;
      const params = {};
      route.keys.forEach((k, i) => (params[k] = decodeURIComponent(m[i + 1])));
      return { route, params };
    }
    if (pathMatched) return null;
    return null;
  }

  authenticate(req) {
    const h = req.headers.authorization;
    if (!h) return null;
    const m = /^(?:bearer|token)\s+(\S+)\s*$/i.exec(h);
    let token = m?.[1];
    if (!m && /^basic\s+/i.test(h)) {
      const [, pw] = Buffer.from(h.replace(/^basic\s+/i, ""), "base64").toString().split(":");
      token = pw;
    }
    const login = token && this.tokens.get(token);
    if (!login) {
      const b = this.bucket("anon");
      const headers = {};
      this.rateHeaders(b, headers);
      throw new HttpError(401, { message: "Bad credentials", documentation_url: DOCS, status: "401" }, headers);
    }
    return login;
  }

  // The x-ratelimit-reset (epoch seconds) for a quota that stays exhausted at least `seconds`:
  // rounded up, since buckets compare whole seconds (flooring let a 1-second exhaustion end
  // within a millisecond when it began late in a second).
  resetAfter(seconds) {
    return Math.ceil(Date.now() / 1000 + seconds);
  }

  bucket(key) {
    let b = this.rate.get(key);
    const now = Math.floor(Date.now() / 1000);
    if (!b) {
      b = { limit: key === "anon" ? 60 : this.defaultLimit, used: 0, reset: now + 3600, resource: "core" };
      this.rate.set(key, b);
    }
    if (now >= b.reset) {
      b.used = 0;
      b.reset = now + 3600;
      b.exhausted = false;
    }
    return b;
  }

  rateHeaders(b, headers) {
    headers["x-ratelimit-limit"] = String(b.limit);
    headers["x-ratelimit-remaining"] = String(b.exhausted ? 0 : Math.max(0, b.limit - b.used));
    headers["x-ratelimit-used"] = String(b.exhausted ? b.limit : b.used);
    headers["x-ratelimit-reset"] = String(b.reset);
    headers["x-ratelimit-resource"] = b.resource;
  }

  charge(login, pathname, headers) {
    const b = this.bucket(login ?? "anon");
    if (b.exhausted || b.used >= b.limit) {
      b.exhausted = true;
      this.rateHeaders(b, headers);
      const u = login ? this.user(login) : null;
      throw new HttpError(
        b.status ?? 403,
        {
          message: u ? `API rate limit exceeded for user ID ${u.id}.` : "API rate limit exceeded for 127.0.0.1.",
          documentation_url: "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
          status: String(b.status ?? 403),
        },
        { ...headers },
      );
    }
    if (pathname !== "/rate_limit") b.used += 1;
    this.rateHeaders(b, headers);
    return b;
  }

  // ---------------------------------------------------------------- faults

  pickFault(method, pathname) {
    for (const f of this.faults) {
      if (f.count !== undefined && f.fired >= f.count) continue;
      if (f.method && f.method !== method) continue;
      if (f.pathRe && !f.pathRe.test(pathname)) continue;
      if (f.kind === "not_mergeable" && !/\/merge$/.test(pathname)) continue;
      if (this.random() >= (f.rate ?? 1)) continue;
      f.fired += 1;
      return f;
    }
    return null;
  }

  // Headers of a response made up by a fault: the caller's rate-limit state, charged like any
  // request when `charge` is set.
  faultHeaders(req, charge = false) {
    const headers = { "content-type": "application/json; charset=utf-8", "x-github-request-id": crypto.randomBytes(8).toString("hex").toUpperCase() };
    const login = this.tokens.get(/\s(\S+)$/.exec(req.headers.authorization ?? "")?.[1]);
    const b = this.bucket(login ?? "anon");
    if (charge && !b.exhausted && b.used < b.limit) b.used += 1;
    this.rateHeaders(b, headers);
    return headers;
  }

  // Returns true when the fault answered (or dropped) the request.
  async applyFault(f, req, res, entry) {
    const doc = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api";
    switch (f.kind) {
      case "latency":
        await sleep(f.latency_ms ?? 100);
        return false;
      case "status": {
        const status = f.status ?? 502;
        entry.status = status;
        const body = JSON.stringify({ message: f.message ?? "Server Error", documentation_url: DOCS, status: String(status) });
        res.writeHead(status, { ...this.faultHeaders(req), "content-length": Buffer.byteLength(body) });
        res.end(body);
        return true;
      }
      case "reset":
        entry.status = "reset";
        req.socket.resetAndDestroy();
        return true;
      case "timeout":
        entry.status = "timeout";
        // Never answer; drop the connection after hold_ms (the client should have given up).
        setTimeout(() => req.socket.destroy(), f.hold_ms ?? 60_000).unref();
        return true;
      case "secondary_rate_limit": {
        entry.status = 403;
        const headers = this.faultHeaders(req);
        if (f.retry_after !== null) headers["retry-after"] = String(f.retry_after ?? 60);
        const body = JSON.stringify({
          message:
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID " +
            crypto.randomBytes(8).toString("hex").toUpperCase() +
            ".",
          documentation_url: doc + "#about-secondary-rate-limits",
          status: String(f.status ?? 403),
        });
        headers["content-length"] = Buffer.byteLength(body);
        res.writeHead(f.status ?? 403, headers);
        res.end(body);
        return true;
      }
      case "primary_rate_limit": {
        // Exhausts the caller's quota until reset_in seconds from now; this and later requests
        // get 403 (or `status`, e.g. 429) with x-ratelimit-remaining: 0.
        const login = this.tokens.get(/\s(\S+)$/.exec(req.headers.authorization ?? "")?.[1]);
        const b = this.bucket(login ?? "anon");
        b.exhausted = true;
        b.used = b.limit;
        b.reset = this.resetAfter(f.reset_in ?? 60);
        b.status = f.status ?? 403;
        return false;
      }
      case "not_mergeable":
        entry.status = 405;
        res.writeHead(405, this.faultHeaders(req, true));
        res.end(JSON.stringify({ message: f.message ?? "Pull Request is not mergeable", documentation_url: DOCS + "/pulls/pulls#merge-a-pull-request", status: "405" }));
        return true;
      default:
        return false;
    }
  }

  // ---------------------------------------------------------------- routes

  defineRoutes() {
    const R = (m, p, h, o) => this.route(m, p, h, o);
    const repoOf = (params, login, need = "read") => {
      const r = this.repo(params.owner, params.repo);
      this.requirePermission(r, login, need);
      return r;
    };
    const pullOf = (r, n) => {
      const pr = r.pulls.get(Number(n));
      if (!pr) throw notFound("https://docs.github.com/rest/pulls/pulls#get-a-pull-request");
      return pr;
    };
    const commentOf = (r, id) => {
      const c = r.comments.get(Number(id));
      if (!c) throw notFound("https://docs.github.com/rest/issues/comments#get-an-issue-comment");
      return c;
    };
    const needAuth = (login) => {
      if (!login) throw new HttpError(401, { message: "Requires authentication", documentation_url: DOCS, status: "401" });
    };

    R("GET", "/rate_limit", ({ login }) => {
      const b = this.bucket(login ?? "anon");
      const core = { limit: b.limit, remaining: b.exhausted ? 0 : b.limit - b.used, reset: b.reset, used: b.exhausted ? b.limit : b.used };
      const search = { limit: 30, remaining: 30, reset: b.reset, used: 0 };
      return { body: { resources: { core, search }, rate: core } };
    });

    R("GET", "/user", ({ login }) => {
      needAuth(login);
      return { body: M.privateUser(this.user(login), this.urls) };
    });

    R("GET", "/repos/{owner}/{repo}", ({ params, login }) => {
      const r = repoOf(params, login);
      return { body: this.repoJson(r, login) };
    });

    // ------------------------------------------------------------ contents
    R("GET", "/repos/{owner}/{repo}/contents/{+path}", async ({ params, login, query, req }) => {
      const r = repoOf(params, login);
      const ref = query.get("ref") || r.default_branch;
      const f = await r.git.readPath(ref, params.path);
      if (!f) throw notFound("https://docs.github.com/rest/repos/contents#get-repository-content");
      if (f.type === "dir") {
        return { body: f.entries.map((e) => { const j = M.contentFile(r, ref, e.path, e, this.urls); delete j.content; delete j.encoding; return j; }) };
      }
      if (/application\/vnd\.github(\.v3)?\.raw/.test(req.headers.accept ?? "")) {
        return { body: f.content, headers: { "content-type": "application/vnd.github.raw; charset=utf-8" } };
      }
      return { body: M.contentFile(r, ref, params.path, f, this.urls) };
    });
    R("GET", "/repos/{owner}/{repo}/contents", async ({ params, login, query }) => {
      const r = repoOf(params, login);
      const ref = query.get("ref") || r.default_branch;
      const f = await r.git.readPath(ref, "");
      if (!f) throw notFound();
      return { body: f.entries.map((e) => { const j = M.contentFile(r, ref, e.path, e, this.urls); delete j.content; delete j.encoding; return j; }) };
    });

    // ------------------------------------------------------------ pulls
    const PULLS_DOC = "https://docs.github.com/rest/pulls/pulls";
    R("GET", "/repos/{owner}/{repo}/pulls", async ({ params, login, query, headers, url }) => {
      const r = repoOf(params, login);
      const state = query.get("state") ?? "open";
      if (!["open", "closed", "all"].includes(state)) {
        throw validation([{ resource: "Search", field: "state", code: "invalid" }], PULLS_DOC + "#list-pull-requests");
      }
      await this.refreshRepo(r);
      let list = [...r.pulls.values()];
      if (state !== "all") list = list.filter((p) => p.state === state);
      const head = query.get("head");
      if (head) {
        const [o, b] = head.includes(":") ? head.split(/:(.*)/s) : [null, head];
        list = list.filter((p) => (o === null || o === r.owner) && p.head === b);
      }
      const base = query.get("base");
      if (base) list = list.filter((p) => p.base === base);
      const dir = query.get("direction") ?? (query.get("sort") === "popularity" ? "asc" : "desc");
      const sort = query.get("sort") ?? "created";
      const key = sort === "updated" ? "updated" : "created";
      list.sort((a, b) => (a[key] - b[key] || a.number - b.number) * (dir === "asc" ? 1 : -1));
      const page = this.paginate(list, url, headers);
      return { body: page.map((p) => M.pullRequestSimple(p, r, this.ctx())) };
    });

    R("POST", "/repos/{owner}/{repo}/pulls", async ({ params, login, body }) => {
      needAuth(login);
      const r = repoOf(params, login, "read");
      const doc = PULLS_DOC + "#create-a-pull-request";
      for (const f of ["head", "base"]) if (body[f] === undefined) throw invalid(`Invalid request.\n\n"${f}" wasn't supplied.`, doc);
      if (body.title === undefined && body.issue === undefined) throw invalid(`Invalid request.\n\n"title" wasn't supplied.`, doc);
      for (const f of ["title", "head", "base", "body"]) {
        if (body[f] !== undefined && body[f] !== null && typeof body[f] !== "string") {
          throw invalid(`Invalid request.\n\nFor '${f}', ${JSON.stringify(body[f])} is not a string.`, doc);
        }
      }
      const [ho, hb] = body.head.includes(":") ? body.head.split(/:(.*)/s) : [r.owner, body.head];
      const errors = [];
      const headSha = ho === r.owner ? await r.git.branchSha(hb) : null;
      const baseSha = await r.git.branchSha(body.base);
      if (!headSha) errors.push({ resource: "PullRequest", field: "head", code: "invalid" });
      if (!baseSha) errors.push({ resource: "PullRequest", field: "base", code: "invalid" });
      if (errors.length) throw validation(errors, doc);
      if (!body.title || !body.title.trim()) throw validation([{ resource: "PullRequest", field: "title", code: "missing_field" }], doc);
      const existing = [...r.pulls.values()].find((p) => p.state === "open" && p.head === hb && p.base === body.base);
      if (existing) {
        throw validation([{ resource: "PullRequest", code: "custom", message: `A pull request already exists for ${r.owner}:${hb}.` }], doc);
      }
      const mb = await r.git.mergeBase(baseSha, headSha);
      if (mb === headSha || (await r.git.countCommits(mb, headSha)) === 0) {
        throw validation([{ resource: "PullRequest", code: "custom", message: `No commits between ${body.base} and ${hb}` }], doc);
      }
      const pr = this.newPull(r, { title: body.title, body: body.body ?? null, head: hb, base: body.base, head_sha: headSha, base_sha: baseSha, user: login, draft: !!body.draft, maintainer_can_modify: body.maintainer_can_modify ?? true });
      await this.emitPull(r, pr, "opened", login);
      return { status: 201, body: M.pullRequest(pr, r, this.ctx(), await this.pullStats(r, pr)), headers: { location: `${this.urls.api}/repos/${r.owner}/${r.name}/pulls/${pr.number}` } };
    });

    R("GET", "/repos/{owner}/{repo}/pulls/{number}", async ({ params, login }) => {
      const r = repoOf(params, login);
      const pr = pullOf(r, params.number);
      await this.refreshPull(r, pr);
      return { body: M.pullRequest(pr, r, this.ctx(), await this.pullStats(r, pr)) };
    });

    R("PATCH", "/repos/{owner}/{repo}/pulls/{number}", async ({ params, login, body }) => {
      needAuth(login);
      const r = repoOf(params, login);
      const pr = pullOf(r, params.number);
      const doc = PULLS_DOC + "#update-a-pull-request";
      if (login !== pr.user) this.requirePermission(r, login, "write");
      if (body.state !== undefined && !["open", "closed"].includes(body.state)) {
        throw invalid(`Invalid request.\n\n${JSON.stringify(body.state)} is not a member of ["open", "closed"].`, doc);
      }
      for (const f of ["title", "body", "base"]) {
        if (body[f] !== undefined && body[f] !== null && typeof body[f] !== "string") {
          throw invalid(`Invalid request.\n\nFor '${f}', ${JSON.stringify(body[f])} is not a string.`, doc);
        }
      }
      await this.refreshPull(r, pr);
      if (body.base !== undefined && body.base !== pr.base) {
        const sha = await r.git.branchSha(body.base);
        if (!sha) throw validation([{ resource: "PullRequest", field: "base", code: "invalid" }], doc);
        if (pr.state !== "open") throw validation([{ resource: "PullRequest", code: "custom", message: "Cannot change the base branch of a closed pull request." }], doc);
        pr.base = body.base;
        pr.base_sha = sha;
      }
      if (body.title !== undefined) pr.title = body.title;
      if (body.body !== undefined) pr.body = body.body;
      if (body.maintainer_can_modify !== undefined) pr.maintainer_can_modify = !!body.maintainer_can_modify;
      pr.updated = Date.now();
      if (body.state === "closed" && pr.state === "open") {
        this.closePull(r, pr, login);
      } else if (body.state === "open" && pr.state === "closed") {
        if (pr.merged) throw validation([{ resource: "PullRequest", code: "custom", message: "Cannot reopen a merged pull request." }], doc);
        if ([...r.pulls.values()].some((p) => p !== pr && p.state === "open" && p.head === pr.head && p.base === pr.base)) {
          throw validation([{ resource: "PullRequest", code: "custom", message: `A pull request already exists for ${r.owner}:${pr.head}.` }], doc);
        }
        pr.state = "open";
        pr.closed = null;
        await this.refreshPull(r, pr);
        await this.emitPull(r, pr, "reopened", login);
      }
      return { body: M.pullRequest(pr, r, this.ctx(), await this.pullStats(r, pr)) };
    });

    R("GET", "/repos/{owner}/{repo}/pulls/{number}/merge", async ({ params, login }) => {
      const r = repoOf(params, login);
      const pr = pullOf(r, params.number);
      if (!pr.merged) throw notFound(PULLS_DOC + "#check-if-a-pull-request-has-been-merged");
      return { status: 204 };
    });

    R("PUT", "/repos/{owner}/{repo}/pulls/{number}/merge", async ({ params, login, body }) => {
      needAuth(login);
      const r = repoOf(params, login);
      this.requirePermission(r, login, "write");
      const pr = pullOf(r, params.number);
      const res = await this.mergePull(r, pr, login, body, {});
      return { body: res };
    });

    R("GET", "/repos/{owner}/{repo}/pulls/{number}/files", async ({ params, login, query, headers, url }) => {
      const r = repoOf(params, login);
      const pr = pullOf(r, params.number);
      await this.refreshPull(r, pr);
      const stats = await this.pullStats(r, pr);
      const page = this.paginate(stats.files, url, headers);
      return { body: page.map((f) => M.diffEntry(f, r, pr.head_sha, this.urls)) };
    });

    R("GET", "/repos/{owner}/{repo}/pulls/{number}/requested_reviewers", ({ params, login }) => {
      const r = repoOf(params, login);
      const pr = pullOf(r, params.number);
      return {
        body: {
          users: pr.requested_reviewers.map((u) => M.simpleUser(this.user(u), this.urls)),
          teams: pr.requested_teams.map((t) => this.ctx().teamJson(r.owner, t)),
        },
      };
    });
    R("POST", "/repos/{owner}/{repo}/pulls/{number}/requested_reviewers", ({ params, login, body }) => {
      needAuth(login);
      const r = repoOf(params, login, "write");
      const pr = pullOf(r, params.number);
      const doc = "https://docs.github.com/rest/pulls/review-requests#request-reviewers-for-a-pull-request";
      const users = body.reviewers ?? [];
      const teams = body.team_reviewers ?? [];
      if (!Array.isArray(users) || !Array.isArray(teams)) throw invalid(`Invalid request.\n\nFor 'reviewers', ${JSON.stringify(body.reviewers)} is not an array.`, doc);
      if (users.includes(pr.user)) throw validation([], doc, "Review cannot be requested from pull request author.");
      const bad = users.filter((u) => !this.users.has(u) || PERMS.indexOf(this.permission(r, u)) < PERMS.indexOf("read") || (!r.collaborators.has(u) && u !== r.owner && this.association(r, u) === "NONE"));
      const badTeams = teams.filter((t) => !this.teams.has(`${r.owner}/${t}`));
      if (bad.length || badTeams.length) {
        throw validation([], doc, `Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the ${r.owner}/${r.name} repository.`);
      }
      for (const u of users) if (!pr.requested_reviewers.includes(u)) pr.requested_reviewers.push(u);
      for (const t of teams) if (!pr.requested_teams.includes(t)) pr.requested_teams.push(t);
      pr.updated = Date.now();
      return { status: 201, body: M.pullRequestSimple(pr, r, this.ctx()) };
    });
    R("DELETE", "/repos/{owner}/{repo}/pulls/{number}/requested_reviewers", ({ params, login, body }) => {
      needAuth(login);
      const r = repoOf(params, login, "write");
      const pr = pullOf(r, params.number);
      pr.requested_reviewers = pr.requested_reviewers.filter((u) => !(body.reviewers ?? []).includes(u));
      pr.requested_teams = pr.requested_teams.filter((t) => !(body.team_reviewers ?? []).includes(t));
      return { body: M.pullRequestSimple(pr, r, this.ctx()) };
    });

    // ------------------------------------------------------------ reviews
    R("GET", "/repos/{owner}/{repo}/pulls/{number}/reviews", ({ params, login, query, headers, url }) => {
      const r = repoOf(params, login);
      const pr = pullOf(r, params.number);
      const page = this.paginate(pr.reviews, url, headers);
      return { body: page.map((rv) => M.review(rv, pr, r, this.ctx())) };
    });
    R("POST", "/repos/{owner}/{repo}/pulls/{number}/reviews", async ({ params, login, body }) => {
      needAuth(login);
      const r = repoOf(params, login);
      const pr = pullOf(r, params.number);
      const doc = "https://docs.github.com/rest/pulls/reviews#create-a-review-for-a-pull-request";
      const map = { APPROVE: "APPROVED", REQUEST_CHANGES: "CHANGES_REQUESTED", COMMENT: "COMMENTED" };
      if (body.event !== undefined && !map[body.event]) {
        throw invalid(`Invalid request.\n\n${JSON.stringify(body.event)} is not a member of ["APPROVE", "REQUEST_CHANGES", "COMMENT"].`, doc);
      }
      if (body.event && body.event !== "APPROVE" && !body.body) {
        throw validation([], doc, "Unprocessable Entity");
      }
      if (login === pr.user && body.event && body.event !== "COMMENT") {
        throw validation([], doc, body.event === "APPROVE" ? "Can not approve your own pull request" : "Can not request changes on your own pull request");
      }
      const rv = await this.addReview(r, pr, { user: login, state: map[body.event] ?? "PENDING", body: body.body ?? "", commit_id: body.commit_id });
      return { body: M.review(rv, pr, r, this.ctx()) };
    });

    // ------------------------------------------------------------ issue comments
    const COMMENTS_DOC = "https://docs.github.com/rest/issues/comments";
    R("GET", "/repos/{owner}/{repo}/issues/{number}/comments", ({ params, login, query, headers, url }) => {
      const r = repoOf(params, login);
      const pr = pullOf(r, params.number);
      let list = pr.comments.map((id) => r.comments.get(id)).filter(Boolean);
      const since = query.get("since");
      if (since) list = list.filter((c) => c.updated >= Date.parse(since));
      const page = this.paginate(list, url, headers);
      return { body: page.map((c) => M.issueComment(c, pr, r, this.ctx())) };
    });
    R("POST", "/repos/{owner}/{repo}/issues/{number}/comments", ({ params, login, body }) => {
      needAuth(login);
      const r = repoOf(params, login);
      const pr = pullOf(r, params.number);
      const doc = COMMENTS_DOC + "#create-an-issue-comment";
      if (body.body === undefined) throw invalid(`Invalid request.\n\n"body" wasn't supplied.`, doc);
      if (typeof body.body !== "string") throw invalid(`Invalid request.\n\nFor 'body', ${JSON.stringify(body.body)} is not a string.`, doc);
      if (!body.body.trim()) throw validation([{ resource: "IssueComment", field: "body", code: "missing_field" }], doc);
      const c = this.addComment(r, pr, login, body.body);
      return { status: 201, body: M.issueComment(c, pr, r, this.ctx()), headers: { location: `${this.urls.api}/repos/${r.owner}/${r.name}/issues/comments/${c.id}` } };
    });
    R("GET", "/repos/{owner}/{repo}/issues/comments/{id}", ({ params, login }) => {
      const r = repoOf(params, login);
      const c = commentOf(r, params.id);
      return { body: M.issueComment(c, c.pr, r, this.ctx()) };
    });
    R("PATCH", "/repos/{owner}/{repo}/issues/comments/{id}", ({ params, login, body }) => {
      needAuth(login);
      const r = repoOf(params, login);
      const c = commentOf(r, params.id);
      const doc = COMMENTS_DOC + "#update-an-issue-comment";
      if (c.user !== login) this.requirePermission(r, login, "write");
      if (body.body === undefined) throw invalid(`Invalid request.\n\n"body" wasn't supplied.`, doc);
      if (typeof body.body !== "string") throw invalid(`Invalid request.\n\nFor 'body', ${JSON.stringify(body.body)} is not a string.`, doc);
      const from = c.body;
      c.body = body.body;
      c.updated = Date.now();
      this.emitComment(r, c.pr, c, "edited", login, { body: { from } });
      return { body: M.issueComment(c, c.pr, r, this.ctx()) };
    });
    R("DELETE", "/repos/{owner}/{repo}/issues/comments/{id}", ({ params, login }) => {
      needAuth(login);
      const r = repoOf(params, login);
      const c = commentOf(r, params.id);
      if (c.user !== login) this.requirePermission(r, login, "write");
      r.comments.delete(c.id);
      c.pr.comments = c.pr.comments.filter((id) => id !== c.id);
      return { status: 204 };
    });

    // ------------------------------------------------------------ reactions
    const REACTIONS = ["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"];
    R("GET", "/repos/{owner}/{repo}/issues/comments/{id}/reactions", ({ params, login, query, headers, url }) => {
      const r = repoOf(params, login);
      const c = commentOf(r, params.id);
      let list = c.reactions;
      if (query.get("content")) list = list.filter((x) => x.content === query.get("content"));
      return { body: this.paginate(list, url, headers).map((x) => M.reaction(x, this.ctx())) };
    });
    R("POST", "/repos/{owner}/{repo}/issues/comments/{id}/reactions", ({ params, login, body }) => {
      needAuth(login);
      const r = repoOf(params, login);
      const c = commentOf(r, params.id);
      const doc = "https://docs.github.com/rest/reactions/reactions#create-reaction-for-an-issue-comment";
      if (body.content === undefined) throw invalid(`Invalid request.\n\n"content" wasn't supplied.`, doc);
      if (!REACTIONS.includes(body.content)) {
        throw invalid(`Invalid request.\n\n${JSON.stringify(body.content)} is not a member of ${JSON.stringify(REACTIONS).replace(/,/g, ", ")}.`, doc);
      }
      const existing = c.reactions.find((x) => x.user === login && x.content === body.content);
      if (existing) return { status: 200, body: M.reaction(existing, this.ctx()) };
      const x = { id: this.id(), user: login, content: body.content, created: Date.now() };
      c.reactions.push(x);
      return { status: 201, body: M.reaction(x, this.ctx()) };
    });

    // ------------------------------------------------------------ labels
    const LABELS_DOC = "https://docs.github.com/rest/issues/labels";
    const labelNames = (body, doc) => {
      const list = Array.isArray(body) ? body : body.labels;
      if (!Array.isArray(list)) throw invalid(`Invalid request.\n\n"labels" wasn't supplied.`, doc);
      return list.map((l) => (typeof l === "object" && l ? l.name : l)).map((n) => {
        if (typeof n !== "string" || !n.trim()) throw validation([{ resource: "Label", field: "name", code: "invalid" }], doc);
        return n;
      });
    };
    const ensureLabel = (r, name) => {
      if (!r.labels.has(name)) r.labels.set(name, { id: this.id(), name, color: "ededed", description: "" });
    };
    R("GET", "/repos/{owner}/{repo}/issues/{number}/labels", ({ params, login, query, headers, url }) => {
      const r = repoOf(params, login);
      const pr = pullOf(r, params.number);
      return { body: this.paginate(this.ctx().labelsOf(pr), url, headers) };
    });
    R("POST", "/repos/{owner}/{repo}/issues/{number}/labels", ({ params, login, body }) => {
      needAuth(login);
      const r = repoOf(params, login, "triage");
      const pr = pullOf(r, params.number);
      for (const n of labelNames(body, LABELS_DOC + "#add-labels-to-an-issue")) {
        ensureLabel(r, n);
        if (!pr.labels.includes(n)) pr.labels.push(n);
      }
      pr.updated = Date.now();
      return { body: this.ctx().labelsOf(pr) };
    });
    R("PUT", "/repos/{owner}/{repo}/issues/{number}/labels", ({ params, login, body }) => {
      needAuth(login);
      const r = repoOf(params, login, "triage");
      const pr = pullOf(r, params.number);
      const names = labelNames(body, LABELS_DOC + "#set-labels-for-an-issue");
      names.forEach((n) => ensureLabel(r, n));
      pr.labels = [...new Set(names)];
      pr.updated = Date.now();
      return { body: this.ctx().labelsOf(pr) };
    });
    R("DELETE", "/repos/{owner}/{repo}/issues/{number}/labels/{name}", ({ params, login }) => {
      needAuth(login);
      const r = repoOf(params, login, "triage");
      const pr = pullOf(r, params.number);
      if (!pr.labels.includes(params.name)) {
        throw new HttpError(404, { message: "Label does not exist", documentation_url: LABELS_DOC + "#remove-a-label-from-an-issue", status: "404" });
      }
      pr.labels = pr.labels.filter((n) => n !== params.name);
      return { body: this.ctx().labelsOf(pr) };
    });

    // ------------------------------------------------------------ statuses and checks
    const STATUS_DOC = "https://docs.github.com/rest/commits/statuses";
    R("POST", "/repos/{owner}/{repo}/statuses/{sha}", async ({ params, login, body }) => {
      needAuth(login);
      const r = repoOf(params, login, "write");
      const s = await this.addStatus(r, login, params.sha, body);
      return { status: 201, body: M.commitStatus(s, r, this.ctx()), headers: { location: `${this.urls.api}/repos/${r.owner}/${r.name}/statuses/${s.sha}` } };
    });
    const resolveRef = async (r, ref) => {
      const sha = await r.git.resolve(ref);
      if (!sha) throw validation([], STATUS_DOC, `No commit found for SHA: ${ref}`);
      return sha;
    };
    R("GET", "/repos/{owner}/{repo}/commits/{+ref}/status", async ({ params, login, query, headers, url }) => {
      const r = repoOf(params, login);
      const sha = await r.git.resolve(params.ref);
      if (!sha) throw notFound(STATUS_DOC + "#get-the-combined-status-for-a-specific-reference");
      const latest = this.latestStatuses(r, sha).sort((a, b) => b.id - a.id);
      let state = "success";
      if (latest.some((s) => s.state === "failure" || s.state === "error")) state = "failure";
      else if (latest.length === 0 || latest.some((s) => s.state === "pending")) state = "pending";
      const page = this.paginate(latest, url, headers);
      return {
        body: {
          state,
          statuses: page.map((s) => M.simpleCommitStatus(s, r, this.ctx())),
          sha,
          total_count: latest.length,
          repository: M.minimalRepository(r, this.ctx()),
          commit_url: `${this.urls.api}/repos/${r.owner}/${r.name}/commits/${sha}`,
          url: `${this.urls.api}/repos/${r.owner}/${r.name}/commits/${sha}/status`,
        },
      };
    });
    R("GET", "/repos/{owner}/{repo}/commits/{+ref}/statuses", async ({ params, login, query, headers, url }) => {
      const r = repoOf(params, login);
      const sha = await r.git.resolve(params.ref);
      if (!sha) throw notFound();
      const list = r.statuses.filter((s) => s.sha === sha).sort((a, b) => b.id - a.id);
      return { body: this.paginate(list, url, headers).map((s) => M.commitStatus(s, r, this.ctx())) };
    });
    R("GET", "/repos/{owner}/{repo}/commits/{+ref}/check-runs", async ({ params, login, query, headers, url }) => {
      const r = repoOf(params, login);
      const sha = await r.git.resolve(params.ref);
      if (!sha) throw validation([], "https://docs.github.com/rest/checks/runs#list-check-runs-for-a-git-reference", `No commit found for SHA: ${params.ref}`);
      let list = r.checkRuns.filter((c) => c.head_sha === sha);
      if ((query.get("filter") ?? "latest") === "latest") list = this.latestChecks(r, sha);
      if (query.get("check_name")) list = list.filter((c) => c.name === query.get("check_name"));
      if (query.get("status")) list = list.filter((c) => c.status === query.get("status"));
      list.sort((a, b) => b.id - a.id);
      const page = this.paginate(list, url, headers);
      return { body: { total_count: list.length, check_runs: page.map((c) => M.checkRun(c, r, this.ctx())) } };
    });
    R("POST", "/repos/{owner}/{repo}/check-runs", async ({ params, login, body }) => {
      needAuth(login);
      const r = repoOf(params, login, "write");
      const c = await this.upsertCheckRun(r, login, null, body);
      return { status: 201, body: M.checkRun(c, r, this.ctx()) };
    });
    R("PATCH", "/repos/{owner}/{repo}/check-runs/{id}", async ({ params, login, body }) => {
      needAuth(login);
      const r = repoOf(params, login, "write");
      const c = r.checkRuns.find((x) => x.id === Number(params.id));
      if (!c) throw notFound();
      await this.upsertCheckRun(r, login, c, body);
      return { body: M.checkRun(c, r, this.ctx()) };
    });
    R("GET", "/repos/{owner}/{repo}/check-runs/{id}", ({ params, login }) => {
      const r = repoOf(params, login);
      const c = r.checkRuns.find((x) => x.id === Number(params.id));
      if (!c) throw notFound();
      return { body: M.checkRun(c, r, this.ctx()) };
    });

    // ------------------------------------------------------------ permissions and teams
    R("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission", ({ params, login }) => {
      const r = repoOf(params, login);
      const u = this.users.get(params.username);
      if (!u || u.type === "Organization") {
        throw notFound("https://docs.github.com/rest/collaborators/collaborators#get-repository-permissions-for-a-user");
      }
      const role = this.permission(r, u.login);
      const legacy = { admin: "admin", maintain: "write", write: "write", triage: "read", read: "read", none: "none" }[role];
      const at = (p) => PERMS.indexOf(role) >= PERMS.indexOf(p);
      return {
        body: {
          permission: legacy,
          role_name: role,
          user: {
            ...M.simpleUser(u, this.urls),
            email: u.email ?? null,
            name: u.name ?? u.login,
            permissions: { pull: at("read"), triage: at("triage"), push: at("write"), maintain: at("maintain"), admin: at("admin") },
            role_name: role,
          },
        },
      };
    });
    R("GET", "/orgs/{org}/teams/{team}/memberships/{username}", ({ params, login }) => {
      needAuth(login);
      const t = this.teams.get(`${params.org}/${params.team}`);
      const doc = "https://docs.github.com/rest/teams/members#get-team-membership-for-a-user";
      if (!t || !t.members.has(params.username)) throw notFound(doc);
      return {
        body: {
          url: `${this.urls.api}/organizations/${this.user(params.org).id}/team/${t.id}/memberships/${params.username}`,
          role: t.members.get(params.username),
          state: "active",
        },
      };
    });
  }

  paginate(list, url, headers) {
    const query = url.searchParams;
    const per = Math.min(100, Math.max(1, Number(query.get("per_page") ?? 30) || 30));
    const page = Math.max(1, Number(query.get("page") ?? 1) || 1);
    const last = Math.max(1, Math.ceil(list.length / per));
    if (list.length > per) {
      const link = (p, rel) => {
        const q = new URLSearchParams(query);
        q.set("per_page", String(per));
        q.set("page", String(p));
        return `<${this.urls.api}${url.pathname}?${q}>; rel="${rel}"`;
      };
      const parts = [];
      if (page > 1) parts.push(link(page - 1, "prev"));
      if (page < last) parts.push(link(page + 1, "next"));
      parts.push(link(last, "last"));
      if (page > 1) parts.push(link(1, "first"));
      headers.link = parts.join(", ");
    }
    return list.slice((page - 1) * per, page * per);
  }

  // ---------------------------------------------------------------- operations shared by API and admin

  newPull(r, f) {
    const number = r.nextNumber++;
    const now = Date.now();
    const pr = {
      repo: r,
      number,
      id: this.id(),
      title: f.title,
      body: f.body,
      head: f.head,
      base: f.base,
      head_sha: f.head_sha,
      base_sha: f.base_sha,
      user: f.user,
      draft: f.draft,
      maintainer_can_modify: f.maintainer_can_modify,
      state: "open",
      created: now,
      updated: now,
      closed: null,
      merged: null,
      merged_by: null,
      merge_commit_sha: null,
      labels: [],
      requested_reviewers: [],
      requested_teams: [],
      comments: [],
      reviews: [],
    };
    r.pulls.set(number, pr);
    return pr;
  }

  closePull(r, pr, login) {
    pr.state = "closed";
    pr.closed = Date.now();
    pr.updated = pr.closed;
    return this.emitPull(r, pr, "closed", login);
  }

  async mergePull(r, pr, login, body, { bypass = false }) {
    const doc = "https://docs.github.com/rest/pulls/pulls#merge-a-pull-request";
    const method = body.merge_method ?? "merge";
    if (!["merge", "squash", "rebase"].includes(method)) {
      throw invalid(`Invalid request.\n\n${JSON.stringify(method)} is not a member of ["merge", "squash", "rebase"].`, doc);
    }
    for (const f of ["sha", "commit_title", "commit_message"]) {
      if (body[f] !== undefined && typeof body[f] !== "string") throw invalid(`Invalid request.\n\nFor '${f}', ${JSON.stringify(body[f])} is not a string.`, doc);
    }
    return r.git.exclusive(async () => {
      await this.refreshPull(r, pr);
      const notMergeable = (message = "Pull Request is not mergeable") =>
        new HttpError(405, { message, documentation_url: doc, status: "405" });
      if (pr.state !== "open") throw notMergeable();
      if (body.sha && body.sha !== pr.head_sha) {
        throw new HttpError(409, { message: "Head branch was modified. Review and try the merge again.", documentation_url: doc, status: "409" });
      }
      if (pr.draft) throw notMergeable();
      if (!bypass) {
        const blocked = this.gate(r, pr);
        if (blocked) throw notMergeable(blocked);
      }
      const merger = this.user(login);
      const author = { name: merger.name ?? merger.login, email: merger.email ?? `${merger.id}+${merger.login}@users.noreply.githost.test` };
      let title = body.commit_title;
      let message = body.commit_message;
      if (method === "merge") {
        title ??= `Merge pull request #${pr.number} from ${r.owner}/${pr.head}`;
        message ??= pr.title;
      } else if (method === "squash") {
        title ??= `${pr.title} (#${pr.number})`;
        if (message === undefined) {
          const mb = (await r.git.mergeBase(pr.base_sha, pr.head_sha)) ?? pr.base_sha;
          const msgs = [];
          for (const c of await r.git.commitsBetween(mb, pr.head_sha)) msgs.push(`* ${await r.git.commitMessage(c)}`);
          message = msgs.join("\n\n");
        }
      }
      const tip = await r.git.mergePull({ base: pr.base, baseSha: pr.base_sha, headSha: pr.head_sha, method, title, message, author });
      if (!tip) throw notMergeable();
      const now = Date.now();
      pr.state = "closed";
      pr.merged = now;
      pr.closed = now;
      pr.updated = now;
      pr.merged_by = login;
      pr.merge_commit_sha = tip;
      pr.merge_method = method;
      r.pushed = now;
      await this.emitPull(r, pr, "closed", login);
      return { sha: tip, merged: true, message: "Pull Request successfully merged" };
    });
  }

  addComment(r, pr, login, text) {
    const now = Date.now();
    const c = { id: this.id(), pr, user: login, body: text, created: now, updated: now, reactions: [] };
    r.comments.set(c.id, c);
    pr.comments.push(c.id);
    this.emitComment(r, pr, c, "created", login);
    return c;
  }

  async addReview(r, pr, { user, state, body, commit_id }) {
    await this.refreshPull(r, pr);
    const rv = { id: this.id(), user, state, body: body ?? "", commit_id: commit_id ?? pr.head_sha, submitted: state === "PENDING" ? null : Date.now() };
    pr.reviews.push(rv);
    if (state !== "PENDING") await this.emitReview(r, pr, rv);
    return rv;
  }

  async addStatus(r, login, ref, body) {
    const doc = "https://docs.github.com/rest/commits/statuses#create-a-commit-status";
    const states = ["error", "failure", "pending", "success"];
    if (body.state === undefined) throw invalid(`Invalid request.\n\n"state" wasn't supplied.`, doc);
    if (!states.includes(body.state)) {
      throw validation([{ resource: "Status", field: "state", code: "custom", message: `state is not included in the list` }], doc);
    }
    const sha = await r.git.resolve(ref);
    if (!sha) throw validation([], doc, `No commit found for SHA: ${ref}`);
    const s = {
      id: this.id(),
      sha,
      state: body.state,
      context: body.context ?? "default",
      description: body.description ?? null,
      target_url: body.target_url ?? null,
      creator: login,
      created: Date.now(),
    };
    r.statuses.push(s);
    await this.emitStatus(r, s);
    return s;
  }

  async upsertCheckRun(r, login, c, body) {
    const doc = "https://docs.github.com/rest/checks/runs#create-a-check-run";
    const statuses = ["queued", "in_progress", "completed", "waiting", "requested", "pending"];
    const conclusions = ["action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out"];
    if (!c) {
      if (!body.name) throw invalid(`Invalid request.\n\n"name" wasn't supplied.`, doc);
      if (!body.head_sha) throw invalid(`Invalid request.\n\n"head_sha" wasn't supplied.`, doc);
      const sha = await r.git.resolve(body.head_sha);
      if (!sha) throw validation([], doc, `No commit found for SHA: ${body.head_sha}`);
      c = { id: this.id(), suite_id: this.id(), name: body.name, head_sha: sha, status: "queued", conclusion: null, started: Date.now(), completed: null };
      r.checkRuns.push(c);
      c.isNew = true;
    }
    if (body.status !== undefined && !statuses.includes(body.status)) {
      throw invalid(`Invalid request.\n\n${JSON.stringify(body.status)} is not a member of ${JSON.stringify(statuses)}.`, doc);
    }
    if (body.conclusion !== undefined && body.conclusion !== null && !conclusions.includes(body.conclusion)) {
      throw invalid(`Invalid request.\n\n${JSON.stringify(body.conclusion)} is not a member of ${JSON.stringify(conclusions)}.`, doc);
    }
    const wasCompleted = c.status === "completed";
    if (body.name) c.name = body.name;
    if (body.details_url !== undefined) c.details_url = body.details_url;
    if (body.external_id !== undefined) c.external_id = body.external_id;
    if (body.output) c.output = body.output;
    if (body.status) c.status = body.status;
    if (body.conclusion) {
      c.conclusion = body.conclusion;
      c.status = "completed";
    }
    if (c.status === "completed" && !c.conclusion) throw validation([], doc, "Conclusion is required when status is completed");
    if (c.status === "completed" && !c.completed) c.completed = body.completed_at ? Date.parse(body.completed_at) : Date.now();
    const isNew = c.isNew;
    delete c.isNew;
    if (isNew) this.emitCheckRun(r, c, "created", login);
    if (c.status === "completed" && !wasCompleted) this.emitCheckRun(r, c, "completed", login);
    return c;
  }
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (d) => chunks.push(d));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

export { HttpError, notFound, validation, invalid, PERMS };

async function main() {
  const { values } = parseArgs({
    options: {
      port: { type: "string", default: "0" },
      dir: { type: "string" },
      "webhook-url": { type: "string" },
      "webhook-secret": { type: "string" },
      "exit-on-stdin-close": { type: "boolean", default: false },
    },
  });
  const keepDir = !!values.dir;
  const dir = values.dir ?? (await fs.mkdtemp(path.join(os.tmpdir(), "githost-")));
  const { installAdmin } = await import("./admin.mjs");
  const host = new GitHost({ dir, keepDir });
  installAdmin(host);
  let stopping = false;
  const stop = async (code) => {
    if (stopping) return;
    stopping = true;
    await host.stop();
    process.exit(code);
  };
  process.on("SIGTERM", () => stop(0));
  process.on("SIGINT", () => stop(0));
  process.on("SIGHUP", () => stop(0));
  // --exit-on-stdin-close: stop when the parent goes away, so lighttpd never outlives it.
  if (values["exit-on-stdin-close"]) {
    process.stdin.on("end", () => stop(0));
    process.stdin.on("error", () => {});
    process.stdin.resume();
  }
  process.on("exit", () => {
    if (host.lighttpd) {
      try {
        process.kill(host.lighttpd.pid, "SIGTERM");
      } catch {}
    }
    if (!keepDir) {
      try {
        fsSync.rmSync(dir, { recursive: true, force: true });
      } catch {}
    }
  });
  try {
    const info = await host.start({ port: Number(values.port) });
    if (values["webhook-url"]) host.deliverer.configure({ url: values["webhook-url"], secret: values["webhook-secret"] ?? null });
    info.startup_ms = Math.round(performance.now()); // since this process started
    process.stdout.write(JSON.stringify(info) + "\n");
  } catch (e) {
    console.error("githost:", e.message);
    await stop(1);
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith("/githost/server.mjs")) {
  main();
}
