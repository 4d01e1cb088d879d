// End-to-end promotion (issue 5): the real `tollgate serve` binary against the test Git host (real
// git behind http-backend, GitHub-shaped API and signed webhooks). A PR merged in the application
// repository starts a run; tollgate pushes the promotion branch, opens the PR, merges it when its
// gates pass and the run succeeds.
//
//   TOLLGATE_BIN=build/service/tollgate node --test tests/promote/
import { test } from "node:test";
import assert from "node:assert/strict";

import { SKIP, WEBHOOK_SECRET, eventually, sql, startGithost, startTollgate, tempDir, writeConfig } from "./world.mjs";

const PIPELINE_ONE_STAGE = `version: 1
pipelines:
  - name: app
    on:
      merged:
        branches: [main]
    release:
      version: "{{source.short_sha}}"
    stages:
      - name: dev
        repo: acme/env-dev
        edits:
          - file: apps/app/values.yaml
            set: { image.tag: "{{release.version}}" }
        merge: auto
        gates:
          checks: none
`;

// Users, the organisation, the application repository (with its pipeline file) and the
// environment repository; tollgate's webhook pointed at `port`.
async function seed(admin, { pipeline, envRepos = ["env-dev"], port }) {
  const bot = await admin("POST", "/users", { login: "tollgate-bot", x_access_token: true });
  const alice = await admin("POST", "/users", { login: "alice" });
  const bob = await admin("POST", "/users", { login: "bob" });
  await admin("POST", "/orgs", { login: "acme" });
  await admin("POST", "/repos", {
    owner: "acme",
    name: "app",
    files: { ".tollgate.yaml": pipeline, "src/app.txt": "v1\n" },
    collaborators: { alice: "write", bob: "write", "tollgate-bot": "read" },
  });
  for (const name of envRepos) {
    await admin("POST", "/repos", {
      owner: "acme",
      name,
      files: { "apps/app/values.yaml": "# the app in this environment\nimage:\n  repository: ghcr.io/acme/app\n  tag: old # set by tollgate\n" },
      collaborators: { "tollgate-bot": "write", alice: "write", bob: "write" },
    });
  }
  return { bot, alice, bob };
}

async function mergeSourceChange(admin, { branch = "feature", text = "v2\n", user = "alice" } = {}) {
  await admin("POST", "/repos/acme/app/commits", { branch, from: "main", files: { "src/app.txt": text }, user, message: "change the app" });
  const pr = await admin("POST", "/repos/acme/app/pulls", { head: branch, base: "main", title: "Change the app", user });
  const merged = await admin("POST", `/repos/acme/app/pulls/${pr.number}/merge`, { user });
  return { pr, merged };
}

async function pulls(api, repo, token, state = "all") {
  const res = await fetch(`${api}/repos/${repo}/pulls?state=${state}&per_page=100`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  return res.json();
}

async function fileAt(api, repo, file, ref, token) {
  const res = await fetch(`${api}/repos/${repo}/contents/${file}?ref=${ref}`, {
    headers: { authorization: `Bearer ${token}`, accept: "application/vnd.github.raw" },
  });
  return res.status === 200 ? res.text() : null;
}

test("a merged PR promotes the change to dev: branch pushed, PR opened and merged, run succeeded", { skip: SKIP, timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const host = await startGithost(t);
  const { admin, info } = host;
  const bot = await admin("POST", "/users", { login: "tollgate-bot", x_access_token: true });
  writeConfig(dir, { apiUrl: info.api_url, token: bot.token });
  const tollgate = await startTollgate(t, dir);
  await admin("PUT", "/webhook", { url: `http://127.0.0.1:${tollgate.port}/hooks/github`, secret: WEBHOOK_SECRET });
  // seed() creates the bot too: create the rest by hand here.
  await admin("POST", "/users", { login: "alice" });
  await admin("POST", "/orgs", { login: "acme" });
  await admin("POST", "/repos", {
    owner: "acme",
    name: "app",
    files: { ".tollgate.yaml": PIPELINE_ONE_STAGE, "src/app.txt": "v1\n" },
    collaborators: { alice: "write", "tollgate-bot": "read" },
  });
  await admin("POST", "/repos", {
    owner: "acme",
    name: "env-dev",
    files: { "apps/app/values.yaml": "# the app in dev\nimage:\n  repository: ghcr.io/acme/app\n  tag: old # set by tollgate\n" },
    collaborators: { "tollgate-bot": "write" },
  });

  const { merged } = await mergeSourceChange(admin);
  const shortSha = merged.sha.slice(0, 7);

  const run = await eventually(
    "the run to succeed",
    () => sql(tollgate.db, "SELECT id, status, state FROM runs").find((r) => r.status === "succeeded"),
    { ms: 60_000 },
  ).catch((e) => {
    throw new Error(`${e.message}\nruns: ${JSON.stringify(sql(tollgate.db, "SELECT id, status FROM runs"))}\njobs: ${JSON.stringify(
      sql(tollgate.db, "SELECT id, kind, stage, state, attempts, last_error FROM jobs"),
    )}\nlog tail:\n${tollgate.stderr.split("\n").slice(-30).join("\n")}`);
  });

  // Exactly one promotion PR, opened and merged by tollgate's account, from the deterministic branch.
  const prs = await pulls(info.api_url, "acme/env-dev", bot.token);
  assert.equal(prs.length, 1, `one promotion PR, got ${prs.map((p) => p.number)}`);
  assert.equal(prs[0].user.login, "tollgate-bot");
  assert.equal(prs[0].head.ref, `tollgate/app/dev/${run.id}`);
  assert.ok(prs[0].merged_at, "the promotion PR is merged");
  // The environment now runs the release: only the tag changed, comments kept.
  const values = await fileAt(info.api_url, "acme/env-dev", "apps/app/values.yaml", "main", bot.token);
  assert.equal(values, `# the app in dev\nimage:\n  repository: ghcr.io/acme/app\n  tag: ${shortSha} # set by tollgate\n`);

  // The audit log tells the story without gaps.
  const audit = sql(tollgate.db, "SELECT seq, stage, from_state, to_state, actor FROM audit WHERE run_id = ? ORDER BY seq", [run.id]);
  assert.deepEqual(
    audit.map((a) => a.seq),
    audit.map((_, i) => i + 1),
    "audit seq has no gaps",
  );
  const moves = audit.filter((a) => a.from_state !== a.to_state).map((a) => `${a.stage || "run"}:${a.from_state}->${a.to_state}`);
  for (const expected of ["run:queued->running", "dev:waiting->preparing", "dev:preparing->open", "dev:open->merging", "dev:merging->verifying", "dev:verifying->promoted", "run:running->succeeded"]) {
    assert.ok(moves.includes(expected), `audit has ${expected}: ${moves.join(", ")}`);
  }
  // Every job finished; none failed.
  const jobs = sql(tollgate.db, "SELECT kind, state, last_error FROM jobs WHERE state <> 'done'");
  assert.deepEqual(jobs.filter((j) => j.kind !== "timer"), [], "every side effect is done");
});
