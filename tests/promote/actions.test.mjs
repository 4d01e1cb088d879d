// End-to-end promotion, the scenarios (2), (3) and (4): the real `tollgate serve` against
// the test Git host.
//   (2) a failed verification (an http probe of a server that answers 500): `on_failure: rollback`
//       opens and merges a revert PR; `on_failure: stop` only fails the run.
//   (4) a person merges the promotion PR (merge: manual) -> verifying -> promoted, audited as theirs;
//       a person closes it -> stage and run aborted, audited as theirs.
//   (3) supersede: a second run replaces a first one waiting for approval and closes its PR; the
//       second is approved with /approve and succeeds.
//
//   TOLLGATE_BIN=build/service/tollgate node --test tests/promote/actions.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";

import { SKIP, diagnose, eventually, fileAt, mergeSourceChange, pulls, sql, startWorld } from "./world.mjs";

const OLD_VALUES = "# the app in this environment\nimage:\n  repository: ghcr.io/acme/app\n  tag: old # set by tollgate\n";
const valuesWith = (tag) => OLD_VALUES.replace("tag: old", `tag: ${tag}`);

// One pipeline `app`, one stage `dev` in acme/env-dev; `extra` is appended to the stage (YAML lines
// indented by 8 spaces).
function pipeline({ merge = "auto", gates = "gates:\n          checks: none", extra = "" } = {}) {
  return `version: 1
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
        merge: ${merge}
        ${gates}
${extra}`;
}

// A small HTTP server answering `status` on every path; counts the requests per path.
async function healthServer(t, status) {
  const hits = [];
  const server = http.createServer((req, res) => {
    hits.push({ method: req.method, url: req.url, at: Date.now() });
    res.writeHead(status, { "content-type": "text/plain" });
    res.end(status === 200 ? "ok\n" : "unhealthy\n");
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return { port: server.address().port, hits };
}

function withDiagnosis(tollgate) {
  return (e) => {
    throw new Error(`${e.message}\n${diagnose(tollgate)}`);
  };
}

const runs = (tollgate) => sql(tollgate.db, "SELECT id, status, state, created_at FROM runs ORDER BY created_at, id");
const auditOf = (tollgate, runId) =>
  sql(tollgate.db, "SELECT seq, stage, from_state, to_state, actor, reason FROM audit WHERE run_id = ? ORDER BY seq", [runId]);
const moves = (audit) => audit.filter((a) => a.from_state !== a.to_state).map((a) => `${a.stage || "run"}:${a.from_state}->${a.to_state}`);
const show = (audit) => audit.map((a) => `${a.seq} ${a.stage || "run"} ${a.from_state}->${a.to_state} @${a.actor}: ${a.reason}`).join("\n");

function assertAuditGapless(audit) {
  assert.deepEqual(
    audit.map((a) => a.seq),
    audit.map((_, i) => i + 1),
    "audit seq has no gaps",
  );
}

function assertMoves(audit, expected) {
  const got = moves(audit);
  for (const m of expected) assert.ok(got.includes(m), `audit has ${m}:\n${show(audit)}`);
}

async function apiGet(info, token, target) {
  const res = await fetch(info.api_url + target, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200, `GET ${target}`);
  return res.json();
}

// ---------------------------------------------------------------------------------------------
// (2) failed verification

test("(2) verification fails (http 500) with on_failure: rollback: revert PR opened and merged, env back to old, run failed", { skip: SKIP, timeout: 120_000 }, async (t) => {
  const started = Date.now();
  const health = await healthServer(t, 500);
  const extra = `        verify:
          timeout: 4s
          steps:
            - http: { url: "http://127.0.0.1:${health.port}/healthz", expect: 200, for: 1s }
        on_failure: rollback
`;
  const { admin, info, tollgate, bot } = await startWorld(t, { pipeline: pipeline({ extra }) });
  const { merged } = await mergeSourceChange(admin);
  const shortSha = merged.sha.slice(0, 7);

  const run = await eventually("the run to fail", () => runs(tollgate).find((r) => r.status === "failed"), { ms: 60_000 }).catch(
    withDiagnosis(tollgate),
  );
  const audit = auditOf(tollgate, run.id);

  // The probe really asked the environment, and got the 500.
  assert.ok(health.hits.length >= 1, "the http verify step probed the health server");
  assert.ok(health.hits.every((h) => h.url === "/healthz" && h.method === "GET"), JSON.stringify(health.hits));

  // Two PRs in the env repo: the promotion PR (merged) and the revert PR (opened and merged by tollgate).
  const prs = (await pulls(info.api_url, "acme/env-dev", bot.token)).sort((a, b) => a.number - b.number);
  assert.equal(prs.length, 2, `promotion + revert PR, got ${JSON.stringify(prs.map((p) => [p.number, p.head.ref, p.state]))}`);
  const [promo, revert] = prs;
  assert.equal(promo.head.ref, `tollgate/app/dev/${run.id}`);
  assert.ok(promo.merged_at, "the promotion PR is merged");
  assert.equal(revert.user.login, "tollgate-bot", "tollgate opened the revert PR");
  assert.notEqual(revert.head.ref, promo.head.ref);
  assert.ok(revert.merged_at, `the revert PR #${revert.number} is merged\n${show(audit)}`);
  const revertFull = await admin("GET", `/repos/acme/env-dev/pulls/${revert.number}`);
  assert.equal(revertFull.merged_by?.login, "tollgate-bot", "tollgate merged the revert PR");
  assert.equal(await pulls(info.api_url, "acme/env-dev", bot.token, "open").then((p) => p.length), 0, "no PR left open");

  // The environment is back where it was; the promoted tag is in its history.
  assert.equal(await fileAt(info.api_url, "acme/env-dev", "apps/app/values.yaml", "main", bot.token), OLD_VALUES);
  assert.equal(await fileAt(info.api_url, "acme/env-dev", "apps/app/values.yaml", promo.merge_commit_sha, bot.token), valuesWith(shortSha));

  // The audit says what happened and why.
  assertAuditGapless(audit);
  assertMoves(audit, ["dev:merging->verifying", "dev:verifying->failed", "run:running->failed"]);
  assert.ok(!moves(audit).includes("dev:verifying->promoted"), `never promoted:\n${show(audit)}`);
  const failedRow = audit.find((a) => a.stage === "dev" && a.from_state === "verifying" && a.to_state === "failed");
  assert.match(failedRow.reason, /verification/i, `the failure names the verification:\n${show(audit)}`);
  assert.match(failedRow.reason, /500/, `the failure says the probe got a 500:\n${show(audit)}`);
  assert.ok(audit.some((a) => /rolling back/i.test(a.reason)), `rollback begun:\n${show(audit)}`);
  assert.ok(audit.some((a) => a.reason.includes(`revert PR #${revert.number} opened`)), `revert opened:\n${show(audit)}`);
  assert.ok(audit.some((a) => a.reason.includes(`revert PR #${revert.number} merged`)), `revert merged:\n${show(audit)}`);
  const runEnd = audit.find((a) => a.stage === "" && a.to_state === "failed");
  assert.match(runEnd.reason, /rolled back/, `run end says rolled back:\n${show(audit)}`);
  // The run failed only once the revert was merged.
  assert.ok(
    audit.findIndex((a) => a.reason.includes(`revert PR #${revert.number} merged`)) < audit.indexOf(runEnd),
    `run failed after the revert merged:\n${show(audit)}`,
  );

  const state = JSON.parse(run.state);
  const dev = state.stages.find((s) => s.name === "dev");
  assert.equal(dev.status, "failed");

  // tollgate/dev on the promotion PR's head says failure.
  const status = await apiGet(info, bot.token, `/repos/acme/env-dev/commits/${promo.head.sha}/status`);
  const own = status.statuses.find((s) => s.context === "tollgate/dev");
  assert.equal(own?.state, "failure", JSON.stringify(status.statuses));

  const stuck = sql(tollgate.db, "SELECT kind, state, last_error FROM jobs WHERE state <> 'done' AND kind <> 'timer'");
  assert.deepEqual(stuck, [], "every side effect is done");
  t.diagnostic(`runtime ${Date.now() - started} ms`);
  if (process.env.SHOW_AUDIT) for (const r of runs(tollgate)) t.diagnostic(`run ${r.id} ${r.status}\n${show(auditOf(tollgate, r.id))}`);
});

test("(2b) verification fails with on_failure: stop: run failed, no revert PR, env keeps the new tag", { skip: SKIP, timeout: 120_000 }, async (t) => {
  const started = Date.now();
  const health = await healthServer(t, 500);
  const extra = `        verify:
          timeout: 3s
          steps:
            - http: { url: "http://127.0.0.1:${health.port}/healthz", expect: 200 }
        on_failure: stop
`;
  const { admin, info, tollgate, bot } = await startWorld(t, { pipeline: pipeline({ extra }) });
  const { merged } = await mergeSourceChange(admin);
  const shortSha = merged.sha.slice(0, 7);

  const run = await eventually("the run to fail", () => runs(tollgate).find((r) => r.status === "failed"), { ms: 60_000 }).catch(
    withDiagnosis(tollgate),
  );
  assert.ok(health.hits.length >= 1, "the http verify step probed the health server");
  const audit = auditOf(tollgate, run.id);
  assertAuditGapless(audit);
  assertMoves(audit, ["dev:merging->verifying", "dev:verifying->failed", "run:running->failed"]);
  const failedRow = audit.find((a) => a.stage === "dev" && a.to_state === "failed");
  assert.match(failedRow.reason, /verification/i, show(audit));
  assert.ok(!audit.some((a) => /revert|rolling back/i.test(a.reason)), `no rollback:\n${show(audit)}`);

  // Give a wrongly scheduled revert a moment to show up, then: one PR, merged; env at the new tag.
  await new Promise((r) => setTimeout(r, 1500));
  const prs = await pulls(info.api_url, "acme/env-dev", bot.token);
  assert.equal(prs.length, 1, `only the promotion PR, got ${JSON.stringify(prs.map((p) => [p.number, p.head.ref]))}`);
  assert.ok(prs[0].merged_at);
  assert.equal(await fileAt(info.api_url, "acme/env-dev", "apps/app/values.yaml", "main", bot.token), valuesWith(shortSha));
  const revertJobs = sql(tollgate.db, "SELECT kind FROM jobs WHERE kind IN ('open_revert_pr', 'merge_revert_pr')");
  assert.deepEqual(revertJobs, []);
  t.diagnostic(`runtime ${Date.now() - started} ms`);
  if (process.env.SHOW_AUDIT) for (const r of runs(tollgate)) t.diagnostic(`run ${r.id} ${r.status}\n${show(auditOf(tollgate, r.id))}`);
});

// ---------------------------------------------------------------------------------------------
// (4) a person acts on the promotion PR

test("(4a) alice merges a merge: manual promotion PR: verifying -> promoted, run succeeded, audited as merged by @alice", { skip: SKIP, timeout: 120_000 }, async (t) => {
  const started = Date.now();
  const health = await healthServer(t, 200);
  const extra = `        verify:
          timeout: 10s
          steps:
            - http: { url: "http://127.0.0.1:${health.port}/healthz", expect: 200, for: 1s }
`;
  const { admin, info, tollgate, bot } = await startWorld(t, { pipeline: pipeline({ merge: "manual", extra }) });
  const { merged } = await mergeSourceChange(admin);
  const shortSha = merged.sha.slice(0, 7);

  // The PR is opened, its gates pass, and tollgate says "ready to merge" but does not merge.
  const pr = await eventually("the promotion PR to open", async () => (await pulls(info.api_url, "acme/env-dev", bot.token, "open"))[0]).catch(
    withDiagnosis(tollgate),
  );
  await eventually("tollgate/dev success on the head", async () => {
    const s = await apiGet(info, bot.token, `/repos/acme/env-dev/commits/${pr.head.sha}/status`);
    return s.statuses.find((x) => x.context === "tollgate/dev" && x.state === "success");
  }).catch(withDiagnosis(tollgate));
  await new Promise((r) => setTimeout(r, 1000));
  const still = await admin("GET", `/repos/acme/env-dev/pulls/${pr.number}`);
  assert.equal(still.merged, false, "merge: manual: tollgate does not merge");
  assert.equal(runs(tollgate)[0].status, "running");

  await admin("POST", `/repos/acme/env-dev/pulls/${pr.number}/merge`, { user: "alice" });

  const run = await eventually("the run to succeed", () => runs(tollgate).find((r) => r.status === "succeeded"), { ms: 60_000 }).catch(
    withDiagnosis(tollgate),
  );
  assert.ok(health.hits.length >= 2, `the verify step probed (and re-probed for 'for: 1s'): ${health.hits.length}`);
  const after = await admin("GET", `/repos/acme/env-dev/pulls/${pr.number}`);
  assert.equal(after.merged_by?.login, "alice");
  assert.equal(await fileAt(info.api_url, "acme/env-dev", "apps/app/values.yaml", "main", bot.token), valuesWith(shortSha));

  const audit = auditOf(tollgate, run.id);
  assertAuditGapless(audit);
  assertMoves(audit, ["dev:preparing->open", "dev:open->verifying", "dev:verifying->promoted", "run:running->succeeded"]);
  assert.ok(!moves(audit).includes("dev:open->merging"), `tollgate never merged:\n${show(audit)}`);
  const mergedRow = audit.find((a) => a.stage === "dev" && a.to_state === "verifying");
  assert.equal(mergedRow.actor, "alice", `merged by alice, not tollgate:\n${show(audit)}`);
  assert.match(mergedRow.reason, /merged by @alice/, show(audit));
  const dev = JSON.parse(run.state).stages.find((s) => s.name === "dev");
  assert.equal(dev.status, "promoted");
  // The state keeps who merged, and that it was a person (field names as in pipeline::to_json).
  const stateText = JSON.stringify(dev);
  assert.match(stateText, /"merged_by":"alice"/, stateText);
  assert.match(stateText, /"merged_by_person":true/, stateText);
  // No merge request was sent by tollgate.
  const requests = await admin("GET", "/requests");
  const tollgateMerges = requests.filter((r) => r.method === "PUT" && /\/merge$/.test(r.path) && r.login === "tollgate-bot");
  assert.deepEqual(tollgateMerges, [], "tollgate sent no merge");
  t.diagnostic(`runtime ${Date.now() - started} ms`);
  if (process.env.SHOW_AUDIT) for (const r of runs(tollgate)) t.diagnostic(`run ${r.id} ${r.status}\n${show(auditOf(tollgate, r.id))}`);
});

test("(4b) alice closes the promotion PR: stage aborted, run aborted, audited as closed by @alice", { skip: SKIP, timeout: 120_000 }, async (t) => {
  const started = Date.now();
  const gates = "gates:\n          checks: none\n          approvals: { count: 1 }";
  const { admin, info, tollgate, bot } = await startWorld(t, { pipeline: pipeline({ gates }) });
  await mergeSourceChange(admin);

  const pr = await eventually("the promotion PR to open", async () => (await pulls(info.api_url, "acme/env-dev", bot.token, "open"))[0]).catch(
    withDiagnosis(tollgate),
  );
  // Wait for tollgate to have seen it open (the stage is `open`, pending on approvals).
  await eventually("the stage to be open", () => {
    const r = runs(tollgate)[0];
    return r && JSON.parse(r.state).stages.find((s) => s.name === "dev" && s.status === "open");
  }).catch(withDiagnosis(tollgate));

  await admin("POST", `/repos/acme/env-dev/pulls/${pr.number}/close`, { user: "alice" });

  const run = await eventually("the run to be aborted", () => runs(tollgate).find((r) => r.status === "aborted"), { ms: 30_000 }).catch(
    withDiagnosis(tollgate),
  );
  const audit = auditOf(tollgate, run.id);
  assertAuditGapless(audit);
  assertMoves(audit, ["dev:open->aborted", "run:running->aborted"]);
  const row = audit.find((a) => a.stage === "dev" && a.to_state === "aborted");
  assert.equal(row.actor, "alice", show(audit));
  assert.match(row.reason, new RegExp(`PR #${pr.number} closed by @alice`), show(audit));
  const runRow = audit.find((a) => a.stage === "" && a.to_state === "aborted");
  assert.equal(runRow.actor, "alice", show(audit));
  assert.equal(JSON.parse(run.state).stages.find((s) => s.name === "dev").status, "aborted");

  const prs = await pulls(info.api_url, "acme/env-dev", bot.token);
  assert.equal(prs.length, 1);
  assert.equal(prs[0].state, "closed");
  assert.equal(prs[0].merged_at, null);
  assert.equal(await fileAt(info.api_url, "acme/env-dev", "apps/app/values.yaml", "main", bot.token), OLD_VALUES);
  const status = await apiGet(info, bot.token, `/repos/acme/env-dev/commits/${pr.head.sha}/status`);
  const own = status.statuses.find((s) => s.context === "tollgate/dev");
  assert.equal(own?.state, "error", `tollgate/dev says aborted: ${JSON.stringify(status.statuses)}`);
  // tollgate did not try to reopen, merge or close it again.
  const requests = await admin("GET", "/requests");
  const touches = requests.filter(
    (r) => r.login === "tollgate-bot" && new RegExp(`/pulls/${pr.number}(/merge)?$`).test(r.path) && r.method !== "GET",
  );
  assert.deepEqual(touches, [], "tollgate left the closed PR alone");
  t.diagnostic(`runtime ${Date.now() - started} ms`);
  if (process.env.SHOW_AUDIT) for (const r of runs(tollgate)) t.diagnostic(`run ${r.id} ${r.status}\n${show(auditOf(tollgate, r.id))}`);
});

// ---------------------------------------------------------------------------------------------
// (3) supersede

test("(3) a newer run supersedes one waiting for approval: its PR closed; /approve by bob merges the new one", { skip: SKIP, timeout: 120_000 }, async (t) => {
  const started = Date.now();
  const gates = "gates:\n          checks: none\n          approvals: { count: 1 }";
  const { admin, info, tollgate, bot } = await startWorld(t, { pipeline: pipeline({ gates }) });

  // Run 1: its PR open, waiting for an approval nobody gives.
  await mergeSourceChange(admin, { branch: "change-1", text: "v2\n" });
  const pr1 = await eventually("run 1's PR to open", async () => (await pulls(info.api_url, "acme/env-dev", bot.token, "open"))[0]).catch(
    withDiagnosis(tollgate),
  );
  const run1 = await eventually("run 1's stage to be open", () => {
    const r = runs(tollgate)[0];
    return r && JSON.parse(r.state).stages.find((s) => s.name === "dev" && s.status === "open") && r;
  }).catch(withDiagnosis(tollgate));
  assert.equal(pr1.head.ref, `tollgate/app/dev/${run1.id}`);

  // Run 2.
  const { merged: merged2 } = await mergeSourceChange(admin, { branch: "change-2", text: "v3\n" });
  const short2 = merged2.sha.slice(0, 7);
  const run2 = await eventually("run 2 to start", () => runs(tollgate).find((r) => r.id !== run1.id)).catch(withDiagnosis(tollgate));
  await eventually("run 1 to be superseded", () => runs(tollgate).find((r) => r.id === run1.id && r.status === "superseded")).catch(
    withDiagnosis(tollgate),
  );
  await eventually("run 1's PR to be closed", async () => (await admin("GET", `/repos/acme/env-dev/pulls/${pr1.number}`)).state === "closed").catch(
    withDiagnosis(tollgate),
  );
  const pr2 = await eventually("run 2's PR to open", async () =>
    (await pulls(info.api_url, "acme/env-dev", bot.token, "open")).find((p) => p.head.ref === `tollgate/app/dev/${run2.id}`),
  ).catch(withDiagnosis(tollgate));
  assert.notEqual(pr2.number, pr1.number);
  await eventually("run 2's stage to be open", () =>
    JSON.parse(runs(tollgate).find((r) => r.id === run2.id).state).stages.find((s) => s.name === "dev" && s.status === "open"),
  ).catch(withDiagnosis(tollgate));
  // Only run 2's PR is open now.
  const open = await pulls(info.api_url, "acme/env-dev", bot.token, "open");
  assert.deepEqual(
    open.map((p) => p.number),
    [pr2.number],
    "only run 2's PR is open",
  );

  // Run 1's audit: superseded by run 2, by tollgate.
  const audit1 = auditOf(tollgate, run1.id);
  assertAuditGapless(audit1);
  assertMoves(audit1, ["dev:open->superseded", "run:running->superseded"]);
  assert.ok(
    audit1.some((a) => a.stage === "" && a.to_state === "superseded" && a.reason.includes(run2.id)),
    `run 1 says which run superseded it:\n${show(audit1)}`,
  );
  const closed1 = await admin("GET", `/repos/acme/env-dev/pulls/${pr1.number}`);
  assert.equal(closed1.merged, false, "run 1's PR closed unmerged");

  // bob approves run 2's PR: accepted (+1), merged, run 2 succeeded.
  const comment = await admin("POST", `/repos/acme/env-dev/pulls/${pr2.number}/comments`, { user: "bob", body: "/approve" });
  const done = await eventually("run 2 to succeed", () => runs(tollgate).find((r) => r.id === run2.id && r.status === "succeeded"), {
    ms: 60_000,
  }).catch(withDiagnosis(tollgate));
  const reactions = await eventually("the +1 reaction on bob's /approve", async () => {
    const list = await apiGet(info, bot.token, `/repos/acme/env-dev/issues/comments/${comment.id}/reactions`);
    return list.length ? list : null;
  }).catch(withDiagnosis(tollgate));
  assert.deepEqual(
    reactions.map((r) => [r.content, r.user.login]),
    [["+1", "tollgate-bot"]],
  );

  const prs = (await pulls(info.api_url, "acme/env-dev", bot.token)).sort((a, b) => a.number - b.number);
  assert.equal(prs.length, 2, JSON.stringify(prs.map((p) => [p.number, p.head.ref, p.state])));
  assert.equal(prs[0].number, pr1.number);
  assert.equal(prs[0].state, "closed");
  assert.equal(prs[0].merged_at, null, "run 1's PR never merged");
  assert.equal(prs[1].number, pr2.number);
  assert.ok(prs[1].merged_at, "run 2's PR merged");
  const full2 = await admin("GET", `/repos/acme/env-dev/pulls/${pr2.number}`);
  assert.equal(full2.merged_by?.login, "tollgate-bot");
  assert.equal((await pulls(info.api_url, "acme/env-dev", bot.token, "open")).length, 0, "no PR left open");
  assert.equal(await fileAt(info.api_url, "acme/env-dev", "apps/app/values.yaml", "main", bot.token), valuesWith(short2));

  const audit2 = auditOf(tollgate, done.id);
  assertAuditGapless(audit2);
  assertMoves(audit2, ["dev:preparing->open", "dev:open->merging", "dev:merging->verifying", "dev:verifying->promoted", "run:running->succeeded"]);
  const approval = JSON.parse(done.state).stages.find((s) => s.name === "dev").approvals;
  assert.ok(
    JSON.stringify(approval).includes("bob"),
    `bob's approval is recorded on run 2: ${JSON.stringify(approval)}\n${show(audit2)}`,
  );
  assert.equal(runs(tollgate).find((r) => r.id === run1.id).status, "superseded", "run 1 stays superseded");
  t.diagnostic(`runtime ${Date.now() - started} ms`);
  if (process.env.SHOW_AUDIT) for (const r of runs(tollgate)) t.diagnostic(`run ${r.id} ${r.status}\n${show(auditOf(tollgate, r.id))}`);
});
