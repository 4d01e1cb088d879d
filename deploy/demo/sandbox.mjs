#!/usr/bin/env node
// The demo's sandbox: the test Git host (tests/githost/server.mjs, docs/test-git-host.md) seeded
// with an organisation, its people and its repositories, so that a tollgate pointed at it has
// something to promote. deploy/demo.mjs starts it; on its own it runs until Ctrl-C:
//
//   node deploy/demo/sandbox.mjs [--webhook-url URL --webhook-secret S]
//
// and prints one JSON line when ready: the host's ready line plus `users` (login -> API token)
// and `repos`. What is in it:
//   - acme: an organisation with the team @acme/sre (alice);
//   - tollgate: tollgate's own account (its token is what tollgate acts with; it may push over git
//     as x-access-token, like a GitHub App installation);
//   - alice: an approver (@acme/sre); bob: a developer;
//   - acme/payments: the application repository, with .tollgate.yaml (dev -> qa -> prod, prod
//     gated by an approval from @acme/sre), and acme/env-dev, acme/env-qa, acme/env-prod: the
//     environment repositories. Their files are the directories under deploy/demo/repos/.
// The host sends every repository's webhooks to one URL (PUT /_admin/webhook, or the flags above).
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { adminClient, readyInfo } from "../../tests/githost/client.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..", "..");
const REPOS = path.join(HERE, "repos");

// Who may do what: tollgate writes to every repository (environment repositories: push, PRs,
// merges; the application repository: check runs on pipeline-file changes); the developer writes
// only to the application repository; the approver also to the environments.
const ACCESS = {
  "acme/payments": { tollgate: "write", alice: "write", bob: "write" },
  "acme/env-dev": { tollgate: "write", alice: "write", bob: "read" },
  "acme/env-qa": { tollgate: "write", alice: "write", bob: "read" },
  "acme/env-prod": { tollgate: "write", alice: "write", bob: "read" },
};

// Every file under `dir`, dotfiles included, as {relative path: text}.
function filesUnder(dir, prefix = "") {
  const files = {};
  for (const e of fs.readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) Object.assign(files, filesUnder(dir, rel));
    else files[rel] = fs.readFileSync(path.join(dir, rel), "utf8");
  }
  return files;
}

// Seeds a running test host through its admin API; returns {users: {login: token}, repos}.
async function seed(admin) {
  const users = {};
  for (const [login, extra] of [
    ["tollgate", { name: "tollgate", x_access_token: true }],
    ["alice", { name: "Alice (SRE)" }],
    ["bob", { name: "Bob (developer)" }],
  ]) {
    users[login] = (await admin("POST", "/users", { login, ...extra })).token;
  }
  await admin("POST", "/orgs", { login: "acme" });
  await admin("POST", "/orgs/acme/teams", { slug: "sre", name: "SRE", members: { alice: "maintainer" } });
  for (const [full, collaborators] of Object.entries(ACCESS)) {
    const [owner, name] = full.split("/");
    await admin("POST", "/repos", { owner, name, files: filesUnder(path.join(REPOS, owner, name)), collaborators });
  }
  return { users, repos: Object.keys(ACCESS) };
}

// Starts the test host as a child process (its own process group, so a Ctrl-C in the terminal
// reaches only our process, which stops it in order) and seeds it. Resolves with
// {info (the host's ready line), admin(method, path, body), users, repos, stop()}.
export async function startSandbox({ webhookUrl, webhookSecret } = {}) {
  const args = [path.join(ROOT, "tests", "githost", "server.mjs"), "--exit-on-stdin-close"];
  // Stdin stays a pipe that only we hold: if this process dies, the host sees it close and stops.
  const child = spawn(process.execPath, args, { stdio: ["pipe", "pipe", "inherit"], detached: true });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    process.kill(child.pid, "SIGTERM"); // it stops lighttpd by pid and removes its data directory
    await exited;
  };
  try {
    const info = await readyInfo(child);
    const admin = adminClient(info.api_url, "sandbox: ");
    const { users, repos } = await seed(admin);
    if (webhookUrl) await admin("PUT", "/webhook", { url: webhookUrl, secret: webhookSecret ?? null });
    return { info, admin, users, repos, pid: child.pid, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

async function main() {
  const { values } = parseArgs({ options: { "webhook-url": { type: "string" }, "webhook-secret": { type: "string" } } });
  const sandbox = await startSandbox({ webhookUrl: values["webhook-url"], webhookSecret: values["webhook-secret"] });
  const { info, users, repos } = sandbox;
  process.stdout.write(JSON.stringify({ ...info, users, repos }) + "\n");
  const stop = () => sandbox.stop().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(e.message);
    process.exit(1);
  });
}
