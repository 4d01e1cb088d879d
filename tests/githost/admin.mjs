// The admin API under /_admin: how tests script the host (users, repos, teams, people's actions,
// webhooks, fault injection). No authentication: it listens on 127.0.0.1 only. Documented in
// docs/test-git-host.md.

import crypto from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";

import { Repo } from "./git.mjs";
import * as M from "./model.mjs";
import { HttpError, PERMS, notFound } from "./server.mjs";

const bad = (message) => new HttpError(400, { message });

export function installAdmin(host) {
  const R = (m, p, h) => host.route(m, `/_admin${p}`, h);
  const userOf = (login) => {
    const u = host.users.get(login);
    if (!u) throw bad(`unknown user ${login}`);
    return u;
  };
  const repoOf = (p) => host.repo(p.owner, p.repo);
  const pullOf = async (r, n) => {
    const pr = r.pulls.get(Number(n));
    if (!pr) throw notFound();
    return pr;
  };
  const author = (login) => {
    const u = host.user(login);
    return { name: u.name ?? u.login, email: u.email ?? `${u.id}+${u.login}@users.noreply.githost.test` };
  };

  R("GET", "/", () => ({
    body: {
      api_url: host.urls.api,
      git_url: host.urls.git,
      users: [...host.users.values()].map((u) => ({ login: u.login, id: u.id, type: u.type })),
      repos: [...host.repos.keys()],
      webhook: { url: host.deliverer.url, events: host.deliverer.events },
    },
  }));

  // ------------------------------------------------------------ users, orgs, teams
  R("POST", "/users", async ({ body }) => {
    if (!body.login || !/^[A-Za-z0-9][A-Za-z0-9-]*(\[bot\])?$/.test(body.login)) throw bad("login required ([A-Za-z0-9-])");
    if (host.users.has(body.login)) throw bad(`user ${body.login} exists`);
    const u = {
      login: body.login,
      id: host.id(),
      type: body.type ?? (body.login.endsWith("[bot]") ? "Bot" : "User"),
      site_admin: !!body.site_admin,
      name: body.name ?? body.login,
      email: body.email ?? null,
      token: body.token ?? `ghp_${crypto.randomBytes(18).toString("hex")}`,
      created: Date.now(),
    };
    host.users.set(u.login, u);
    host.tokens.set(u.token, u.login);
    if (body.x_access_token || (!host.xAccessTokenUser && body.x_access_token !== false && u.type !== "Organization")) {
      host.xAccessTokenUser = u.login;
    }
    if (body.rate_limit) host.bucket(u.login).limit = body.rate_limit;
    await host.writeUsersFile();
    return { status: 201, body: { login: u.login, id: u.id, token: u.token, type: u.type, x_access_token: host.xAccessTokenUser === u.login } };
  });

  // Extra tokens for a user (e.g. an installation token) and revocation.
  R("POST", "/users/{login}/tokens", ({ params, body }) => {
    const u = userOf(params.login);
    const token = body.token ?? `ghs_${crypto.randomBytes(18).toString("hex")}`;
    host.tokens.set(token, u.login);
    return { status: 201, body: { token } };
  });
  R("DELETE", "/tokens/{token}", ({ params }) => {
    host.tokens.delete(params.token);
    return { status: 204 };
  });

  R("POST", "/orgs", ({ body }) => {
    if (!body.login) throw bad("login required");
    if (host.users.has(body.login)) throw bad(`${body.login} exists`);
    const o = { login: body.login, id: host.id(), type: "Organization", site_admin: false, created: Date.now() };
    host.users.set(o.login, o);
    return { status: 201, body: { login: o.login, id: o.id } };
  });

  R("POST", "/orgs/{org}/teams", ({ params, body }) => {
    const org = host.users.get(params.org);
    if (!org || org.type !== "Organization") throw bad(`unknown organisation ${params.org}`);
    const slug = body.slug ?? String(body.name ?? "").toLowerCase().replace(/[^a-z0-9]+/g, "-");
    if (!slug) throw bad("slug or name required");
    const t = { id: host.id(), org: params.org, slug, name: body.name ?? slug, description: body.description ?? null, members: new Map(), repos: new Map() };
    for (const [login, role] of Object.entries(body.members ?? {})) t.members.set(userOf(login).login, role === "maintainer" ? "maintainer" : "member");
    for (const [repo, perm] of Object.entries(body.repos ?? {})) t.repos.set(repo, perm);
    host.teams.set(`${params.org}/${slug}`, t);
    return { status: 201, body: { id: t.id, slug } };
  });
  R("PUT", "/orgs/{org}/teams/{team}/members/{login}", ({ params, body }) => {
    const t = host.teams.get(`${params.org}/${params.team}`);
    if (!t) throw notFound();
    t.members.set(userOf(params.login).login, body.role === "maintainer" ? "maintainer" : "member");
    return { status: 204 };
  });
  R("DELETE", "/orgs/{org}/teams/{team}/members/{login}", ({ params }) => {
    const t = host.teams.get(`${params.org}/${params.team}`);
    if (!t) throw notFound();
    t.members.delete(params.login);
    return { status: 204 };
  });

  // ------------------------------------------------------------ repositories
  // { owner, name, default_branch?, private?, files?: {path: text}, message?, author?,
  //   branches?: { name: { from?: branch, files: {path: text|null}, message? } },
  //   collaborators?: { login: permission }, protection?: { branch: {...} } }
  R("POST", "/repos", async ({ body }) => {
    const { owner, name } = body;
    if (!owner || !name || !/^[A-Za-z0-9._-]+$/.test(name)) throw bad("owner and name required");
    if (!host.users.has(owner)) throw bad(`unknown owner ${owner} (create the user or org first)`);
    if (host.repos.has(`${owner}/${name}`)) throw bad(`${owner}/${name} exists`);
    const defaultBranch = body.default_branch ?? "main";
    const git = new Repo(path.join(host.reposDir, owner, `${name}.git`));
    await git.init(defaultBranch);
    await installPostReceive(host, git, owner, name);
    const now = Date.now();
    const r = {
      id: host.id(),
      owner,
      name,
      private: !!body.private,
      description: body.description ?? null,
      default_branch: defaultBranch,
      git,
      collaborators: new Map(),
      pulls: new Map(),
      nextNumber: 1,
      comments: new Map(),
      labels: new Map(),
      statuses: [],
      checkRuns: [],
      protection: new Map(),
      created: now,
      updated: now,
      pushed: now,
    };
    r.openIssues = () => [...r.pulls.values()].filter((p) => p.state === "open").length;
    for (const [login, perm] of Object.entries(body.collaborators ?? {})) {
      if (!PERMS.includes(perm)) throw bad(`bad permission ${perm}`);
      r.collaborators.set(userOf(login).login, perm);
    }
    for (const [branch, p] of Object.entries(body.protection ?? {})) r.protection.set(branch, p);
    const who = author(body.author ?? owner);
    const root = await git.commitFiles({ parent: null, files: body.files ?? { "README.md": `# ${name}\n` }, message: body.message ?? "Initial commit", author: who });
    await git.updateBranch(defaultBranch, root, null);
    const branches = { [defaultBranch]: root };
    for (const [branch, spec] of Object.entries(body.branches ?? {})) {
      const from = branches[spec.from ?? defaultBranch] ?? (await git.branchSha(spec.from));
      const sha = await git.commitFiles({ parent: from, files: spec.files ?? {}, message: spec.message ?? `Update ${branch}`, author: who });
      await git.updateBranch(branch, sha, null);
      branches[branch] = sha;
    }
    host.repos.set(`${owner}/${name}`, r);
    return {
      status: 201,
      body: { id: r.id, full_name: `${owner}/${name}`, clone_url: `${host.urls.git}/${owner}/${name}.git`, branches },
    };
  });

  R("PUT", "/repos/{owner}/{repo}/collaborators/{login}", ({ params, body }) => {
    const r = repoOf(params);
    const perm = body.permission ?? "write";
    if (!PERMS.includes(perm)) throw bad(`bad permission ${perm}`);
    if (perm === "none") r.collaborators.delete(params.login);
    else r.collaborators.set(userOf(params.login).login, perm);
    return { status: 204 };
  });

  // Branch protection: { required_status_checks: [contexts], required_approving_review_count,
  // dismiss_stale_reviews }. DELETE removes it.
  R("PUT", "/repos/{owner}/{repo}/protection/{+branch}", ({ params, body }) => {
    repoOf(params).protection.set(params.branch, body);
    return { status: 204 };
  });
  R("DELETE", "/repos/{owner}/{repo}/protection/{+branch}", ({ params }) => {
    repoOf(params).protection.delete(params.branch);
    return { status: 204 };
  });

  // A commit on a branch, as if `user` pushed it: { branch, files, message?, user?, from?, force? }.
  // Emits `synchronize` for open pull requests whose head is that branch.
  R("POST", "/repos/{owner}/{repo}/commits", async ({ params, body }) => {
    const r = repoOf(params);
    if (!body.branch) throw bad("branch required");
    const user = body.user ?? r.owner;
    const res = await r.git.exclusive(async () => {
      const current = await r.git.branchSha(body.branch);
      const parent = body.from ? await r.git.resolve(body.from) : current ?? (await r.git.branchSha(r.default_branch));
      const sha = await r.git.commitFiles({ parent, files: body.files ?? {}, message: body.message ?? `Update ${body.branch}`, author: author(user) });
      if (!(await r.git.updateBranch(body.branch, sha, current))) throw new HttpError(409, { message: "branch moved" });
      return { sha, parent };
    });
    r.pushed = Date.now();
    await host.refreshRepo(r, user);
    return { status: 201, body: res };
  });

  // pre-receive hook: { reject: { refs?: regex (default: any), message } } or { script: "#!/bin/sh..." }.
  R("PUT", "/repos/{owner}/{repo}/hooks/pre-receive", async ({ params, body }) => {
    const r = repoOf(params);
    let script = body.script;
    if (!script) {
      const pattern = body.reject?.refs ?? ".*";
      const message = body.reject?.message ?? "push declined by pre-receive hook";
      script = [
        "#!/bin/sh",
        "# githost: reject pushes to matching refs (installed through /_admin)",
        "status=0",
        "while read old new ref; do",
        `  if printf '%s\\n' "$ref" | grep -Eq ${shellQuote(pattern)}; then`,
        `    printf '%s\\n' ${shellQuote(message)} >&2`,
        "    status=1",
        "  fi",
        "done",
        "exit $status",
        "",
      ].join("\n");
    }
    const file = path.join(r.git.dir, "hooks", "pre-receive");
    await fs.writeFile(file, script, { mode: 0o755 });
    return { status: 204 };
  });
  R("DELETE", "/repos/{owner}/{repo}/hooks/pre-receive", async ({ params }) => {
    const r = repoOf(params);
    await fs.rm(path.join(r.git.dir, "hooks", "pre-receive"), { force: true });
    return { status: 204 };
  });

  // Called by each repository's post-receive hook after a push through http-backend.
  R("POST", "/post-receive/{owner}/{repo}", async ({ params, raw, req }) => {
    const r = repoOf(params);
    r.pushed = Date.now();
    const sender = host.pusher(req.headers["x-remote-user"]);
    const lines = raw.toString().split("\n").filter(Boolean).map((l) => l.split(" "));
    r.lastPush = { lines, sender };
    await host.refreshRepo(r, sender ?? undefined);
    return { status: 204 };
  });

  // ------------------------------------------------------------ people acting on pull requests
  R("POST", "/repos/{owner}/{repo}/pulls", async ({ params, body }) => {
    const r = repoOf(params);
    const user = userOf(body.user ?? r.owner).login;
    const head = await r.git.branchSha(body.head);
    const base = await r.git.branchSha(body.base ?? r.default_branch);
    if (!head || !base) throw bad("head and base must be existing branches");
    const pr = host.newPull(r, { title: body.title ?? body.head, body: body.body ?? null, head: body.head, base: body.base ?? r.default_branch, head_sha: head, base_sha: base, user, draft: !!body.draft, maintainer_can_modify: true });
    await host.emitPull(r, pr, "opened", user);
    return { status: 201, body: { number: pr.number, head_sha: head } };
  });
  R("POST", "/repos/{owner}/{repo}/pulls/{number}/comments", async ({ params, body }) => {
    const r = repoOf(params);
    const pr = await pullOf(r, params.number);
    const c = host.addComment(r, pr, userOf(body.user).login, String(body.body ?? ""));
    return { status: 201, body: M.issueComment(c, pr, r, host.ctx()) };
  });
  R("PATCH", "/repos/{owner}/{repo}/comments/{id}", async ({ params, body }) => {
    const r = repoOf(params);
    const c = r.comments.get(Number(params.id));
    if (!c) throw notFound();
    const from = c.body;
    c.body = String(body.body);
    c.updated = Date.now();
    host.emitComment(r, c.pr, c, "edited", body.user ?? c.user, { body: { from } });
    return { body: M.issueComment(c, c.pr, r, host.ctx()) };
  });
  // { user, state: APPROVED | CHANGES_REQUESTED | COMMENTED, body?, commit_id? }
  R("POST", "/repos/{owner}/{repo}/pulls/{number}/reviews", async ({ params, body }) => {
    const r = repoOf(params);
    const pr = await pullOf(r, params.number);
    const state = String(body.state ?? "APPROVED").toUpperCase();
    if (!["APPROVED", "CHANGES_REQUESTED", "COMMENTED"].includes(state)) throw bad(`bad review state ${body.state}`);
    const rv = await host.addReview(r, pr, { user: userOf(body.user).login, state, body: body.body, commit_id: body.commit_id });
    return { status: 201, body: M.review(rv, pr, r, host.ctx()) };
  });
  // { user, merge_method?, sha?, commit_title?, commit_message?, bypass? }: a person merging in
  // the web UI. bypass: an admin merging past branch protection.
  R("POST", "/repos/{owner}/{repo}/pulls/{number}/merge", async ({ params, body }) => {
    const r = repoOf(params);
    const pr = await pullOf(r, params.number);
    const res = await host.mergePull(r, pr, userOf(body.user ?? r.owner).login, body, { bypass: !!body.bypass });
    return { body: res };
  });
  R("POST", "/repos/{owner}/{repo}/pulls/{number}/close", async ({ params, body }) => {
    const r = repoOf(params);
    const pr = await pullOf(r, params.number);
    if (pr.state !== "open") throw bad("pull request is not open");
    await host.closePull(r, pr, userOf(body.user ?? r.owner).login);
    return { status: 204 };
  });
  // Current state of a pull request, head re-read (no quota, no faults).
  R("GET", "/repos/{owner}/{repo}/pulls/{number}", async ({ params }) => {
    const r = repoOf(params);
    const pr = await pullOf(r, params.number);
    await host.refreshPull(r, pr);
    return { body: M.pullRequest(pr, r, host.ctx(), await host.pullStats(r, pr)) };
  });

  // { state, context, description?, target_url?, user? } on a sha or branch.
  R("POST", "/repos/{owner}/{repo}/statuses/{+ref}", async ({ params, body }) => {
    const r = repoOf(params);
    const s = await host.addStatus(r, userOf(body.user ?? r.owner).login, params.ref, body);
    return { status: 201, body: M.commitStatus(s, r, host.ctx()) };
  });
  // { name, head_sha (sha or branch), status?, conclusion?, output?, user? }; PATCH to update.
  R("POST", "/repos/{owner}/{repo}/check-runs", async ({ params, body }) => {
    const r = repoOf(params);
    const c = await host.upsertCheckRun(r, userOf(body.user ?? r.owner).login, null, body);
    return { status: 201, body: M.checkRun(c, r, host.ctx()) };
  });
  R("PATCH", "/repos/{owner}/{repo}/check-runs/{id}", async ({ params, body }) => {
    const r = repoOf(params);
    const c = r.checkRuns.find((x) => x.id === Number(params.id));
    if (!c) throw notFound();
    await host.upsertCheckRun(r, userOf(body.user ?? r.owner).login, c, body);
    return { body: M.checkRun(c, r, host.ctx()) };
  });

  // ------------------------------------------------------------ webhooks
  // { url, secret?, events?: [names], installation_id?, ping?: true, timeout_ms? }
  R("PUT", "/webhook", async ({ body }) => {
    host.deliverer.configure(body);
    host.installationId = body.installation_id ?? null;
    let ping = null;
    if (body.url && body.ping !== false) ping = host.emitPing().id;
    return { body: { hook_id: host.deliverer.hookId, ping_delivery: ping } };
  });
  // ?event=&action=&after=ID&wait=N (wait until N matching deliveries exist and are sent, ≤10 s)
  R("GET", "/deliveries", async ({ query }) => {
    const wanted = Number(query.get("wait") ?? 0);
    const deadline = Date.now() + Number(query.get("timeout_ms") ?? 10_000);
    const select = () =>
      host.deliverer.deliveries.filter(
        (d) =>
          (!query.get("event") || d.event === query.get("event")) &&
          (!query.get("action") || d.action === query.get("action")) &&
          d.id > Number(query.get("after") ?? 0),
      );
    await host.pendingEmits;
    let list = select();
    while (Date.now() < deadline && (list.length < wanted || list.some((d) => d.pending))) {
      await new Promise((r) => setTimeout(r, 20));
      await host.pendingEmits;
      list = select();
    }
    return { body: list.map(({ pending, ...d }) => d) };
  });
  R("DELETE", "/deliveries", () => {
    host.deliverer.deliveries = [];
    return { status: 204 };
  });
  R("POST", "/deliveries/{id}/redeliver", ({ params }) => {
    const d = host.deliverer.redeliver(Number(params.id));
    if (!d) throw notFound();
    return { status: 202, body: { id: d.id, guid: d.guid } };
  });

  // ------------------------------------------------------------ faults, rate limits, request log
  // A fault: { kind: status|reset|timeout|secondary_rate_limit|primary_rate_limit|latency|
  //   not_mergeable, rate?: 0..1 (default 1), count?: N, method?, path?: regex, status?,
  //   retry_after?, reset_in?, latency_ms?, hold_ms?, message? }
  const KINDS = ["status", "reset", "timeout", "secondary_rate_limit", "primary_rate_limit", "latency", "not_mergeable"];
  const addFaults = (body) => {
    const list = Array.isArray(body) ? body : Array.isArray(body.faults) ? body.faults : [body];
    if (body.seed !== undefined && !Array.isArray(body)) host.reseed(body.seed);
    for (const f of list) {
      if (!KINDS.includes(f.kind)) throw bad(`unknown fault kind ${f.kind}; one of ${KINDS.join(", ")}`);
      host.faults.push({ ...f, id: host.id(), fired: 0, pathRe: f.path ? new RegExp(f.path) : null });
    }
  };
  const faultList = () => host.faults.map(({ pathRe, ...f }) => f);
  R("GET", "/faults", () => ({ body: faultList() }));
  R("POST", "/faults", ({ body }) => {
    addFaults(body);
    return { status: 201, body: faultList() };
  });
  R("PUT", "/faults", ({ body }) => {
    host.faults = [];
    addFaults(body);
    return { body: faultList() };
  });
  R("DELETE", "/faults", () => {
    host.faults = [];
    return { status: 204 };
  });

  // { login?, limit?, remaining?, reset_in? }: set a user's primary quota (all users when no login).
  R("PUT", "/rate-limit", ({ body }) => {
    const logins = body.login ? [body.login] : [...host.users.keys(), "anon"];
    if (body.limit && !body.login) host.defaultLimit = body.limit;
    for (const l of logins) {
      const b = host.bucket(l);
      if (body.limit) b.limit = body.limit;
      if (body.remaining !== undefined) b.used = b.limit - body.remaining;
      if (body.reset_in !== undefined) b.reset = host.resetAfter(body.reset_in);
      b.exhausted = b.used >= b.limit;
      b.status = body.status ?? 403;
    }
    return { status: 204 };
  });

  R("GET", "/requests", ({ query }) => {
    const after = Number(query.get("after") ?? 0);
    return { body: host.requests.map((r, i) => ({ seq: i + 1, ...r })).filter((r) => r.seq > after) };
  });
  R("DELETE", "/requests", () => {
    host.requests = [];
    return { status: 204 };
  });
}

function shellQuote(s) {
  return `'${String(s).replace(/'/g, `'\\''`)}'`;
}

async function installPostReceive(host, git, owner, name) {
  const url = `${host.urls.api}/_admin/post-receive/${owner}/${name}`;
  const script = [
    "#!/bin/sh",
    "# githost: tell the API server which refs moved, so open pull requests follow their heads",
    `exec curl -s -m 5 -o /dev/null -X POST -H "x-remote-user: $REMOTE_USER" -H 'content-type: text/plain' --data-binary @- ${shellQuote(url)}`,
    "",
  ].join("\n");
  await fs.writeFile(path.join(git.dir, "hooks", "post-receive"), script, { mode: 0o755 });
}
