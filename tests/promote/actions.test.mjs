// End-to-end promotion, the scenarios (2), (3) and (4): the real `tollgate serve` against
// the test Git host.
//   (2) a failed verification (an http probe of a server that answers 500): `on_failure: rollback`
//       opens and merges a revert PR; `on_failure: stop` only fails the run.
//   (4) a person merges the promotion PR (merge: manual) -> verifying -> promoted, audited as theirs;
//       a person closes it -> stage and run aborted, audited as theirs.
//   (3) supersede: a second run replaces a first one waiting for approval and closes its PR; the
//       second is approved with /approve and succeeds.
// Around them: (2c) rollback with merge: manual (a person merges the revert), (2d) /rollback of a
// promoted stage, (3b) supersede by arrival for runs created at the same engine instant, (3c) a
// verifying run is not superseded, (4c) a person merges a PR held for approval, (3d) a person's
// merge of a superseded run's PR is audited on that run, (4d) a merge refused for a conflict fails
// the stage naming the conflict (not "waiting on checks" forever).
//
//   TOLLGATE_BIN=build/service/tollgate node --test tests/promote/actions.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";

import YAML from "yaml";

import { SKIP, diagnose, eventually, fileAt, mergeSourceChange, pulls, sql, unfinishedJobs, startWorld } from "./world.mjs";

const OLD_VALUES = "# the app in this environment\nimage:\n  repository: ghcr.io/acme/app\n  tag: old # set by tollgate\n";
const valuesWith = (tag) => OLD_VALUES.replace("tag: old", `tag: ${tag}`);

// The env file carries `tag` as a string: only the scalar changed. A short sha that YAML would read
// as a number (all digits, or "48062e0") must be quoted, so both the plain and the double-quoted
// spelling are accepted, and the parsed value must be the string itself.
function assertValuesAt(text, tag, what = "values.yaml") {
  assert.ok(text === valuesWith(tag) || text === valuesWith(`"${tag}"`), `${what} has tag ${tag} and nothing else changed:\n${text}`);
  assert.equal(YAML.parse(text).image.tag, tag, `${what}: image.tag reads back as the string "${tag}"`);
}

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
  assertValuesAt(await fileAt(info.api_url, "acme/env-dev", "apps/app/values.yaml", promo.merge_commit_sha, bot.token), shortSha, "the promotion's merge commit");

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

  assert.deepEqual(await unfinishedJobs(tollgate.db), [], "every side effect is done");
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
  assertValuesAt(await fileAt(info.api_url, "acme/env-dev", "apps/app/values.yaml", "main", bot.token), shortSha);
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
  assertValuesAt(await fileAt(info.api_url, "acme/env-dev", "apps/app/values.yaml", "main", bot.token), shortSha);

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

  // Run 2, at once (within the same second as run 1 more often than not: see (3b)).
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
  const status1 = await apiGet(info, bot.token, `/repos/acme/env-dev/commits/${pr1.head.sha}/status`);
  const own1 = status1.statuses.find((x) => x.context === "tollgate/dev");
  assert.equal(own1?.state, "error", `tollgate/dev on run 1's head: ${JSON.stringify(status1.statuses)}`);
  assert.match(own1.description, /supersede/, own1.description);

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
  assertValuesAt(await fileAt(info.api_url, "acme/env-dev", "apps/app/values.yaml", "main", bot.token), short2);

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

test("(3b) supersede follows arrival even for runs created in the same second (whatever their ids)", { skip: SKIP, timeout: 120_000 }, async (t) => {
  const started = Date.now();
  const gates = "gates:\n          checks: none\n          approvals: { count: 1 }";
  const { admin, tollgate } = await startWorld(t, { pipeline: pipeline({ gates }) });
  // Source changes in quick succession, each waiting only for its run to be stored. After each
  // arrival, every older run must be superseded: only the newest is live. The case that matters is
  // an arrival in the same engine second as a live older run whose id sorts after the new one.
  let exercised = 0;
  for (let i = 1; i <= 10; i++) {
    const { merged } = await mergeSourceChange(admin, { branch: `change-${i}`, text: `v${i + 1}\n` });
    const all = await eventually(`run ${i} to be stored`, () => {
      const r = runs(tollgate);
      return r.length === i ? r : null;
    }).catch(withDiagnosis(tollgate));
    const newest = all.reduce((a, b) => (b.created_at > a.created_at ? b : a));
    const newState = JSON.parse(newest.state);
    const ties = all.filter((r) => {
      if (r.id === newest.id) return false;
      const st = JSON.parse(r.state);
      return st.created_at === newState.created_at && r.id > newest.id;
    });
    const live = all.filter((r) => r.id !== newest.id && !["succeeded", "failed", "aborted", "superseded"].includes(r.status));
    // A tie that was live when the new run arrived: still live (the bug), or superseded by it.
    if (ties.some((r) => live.includes(r) || auditOf(tollgate, r.id).some((a) => a.reason.includes(`superseded by run '${newest.id}'`)))) exercised++;
    assert.deepEqual(
      live.map((r) => `${r.id} ${r.status} created ${JSON.parse(r.state).created_at}`),
      [],
      `after run ${newest.id} (source ${merged.sha.slice(0, 7)}, engine created_at ${newState.created_at}, stored created_at ${newest.created_at}) ` +
        `arrived, every older run is superseded. Runs: ${JSON.stringify(all.map((r) => [r.id, r.status, JSON.parse(r.state).created_at, r.created_at]))}` +
        (ties.length ? `\nBUG: an older run created at the same engine instant with a larger id is not "older" to admit_run ` +
          `(pipeline/engine.cpp:530 orders by (created_at, run id); created_at is the engine clock, service/engine_service.cpp:140, ` +
          `which used to be floored to whole seconds)` : ""),
    );
    assert.equal(newest.status, "running");
    if (exercised >= 2) break;
  }
  t.diagnostic(`same-second arrivals with an older run of larger id exercised: ${exercised}; runtime ${Date.now() - started} ms`);
});

test("(3c) a run that is verifying is not superseded: it finishes, and the newer run promotes after it", { skip: SKIP, timeout: 120_000 }, async (t) => {
  const started = Date.now();
  const extra = `        verify:
          timeout: 30s
          steps:
            - wait: 10s
`;
  const { admin, info, tollgate, bot } = await startWorld(t, { pipeline: pipeline({ extra }) });
  await mergeSourceChange(admin, { branch: "change-1", text: "v2\n" });
  const run1 = await eventually("run 1 to be verifying", () => {
    const r = runs(tollgate)[0];
    return r && JSON.parse(r.state).stages.find((s) => s.name === "dev" && s.status === "verifying") && r;
  }).catch(withDiagnosis(tollgate));
  const { merged: merged2 } = await mergeSourceChange(admin, { branch: "change-2", text: "v3\n" });
  const run2 = await eventually("run 2 to start", () => runs(tollgate).find((r) => r.id !== run1.id)).catch(withDiagnosis(tollgate));
  // 10 s of verification covers the second merge and run 2's start even on a sanitizer build
  // under load (3 s did not); what matters is that run 1 was not superseded.
  const status1 = runs(tollgate).find((r) => r.id === run1.id).status;
  assert.ok(["running", "succeeded"].includes(status1), `run 1 (verifying) is left to finish, not superseded: ${status1}`);

  await eventually("both runs to succeed", () => runs(tollgate).every((r) => r.status === "succeeded") && runs(tollgate).length === 2, {
    ms: 60_000,
  }).catch(withDiagnosis(tollgate));
  const audit1 = auditOf(tollgate, run1.id);
  assert.ok(!audit1.some((a) => /supersed/.test(a.reason) || a.to_state === "superseded"), show(audit1));
  assertMoves(audit1, ["dev:verifying->promoted", "run:running->succeeded"]);
  const prs = (await pulls(info.api_url, "acme/env-dev", bot.token)).sort((a, b) => a.number - b.number);
  assert.deepEqual(
    prs.map((p) => [p.head.ref, !!p.merged_at]),
    [
      [`tollgate/app/dev/${run1.id}`, true],
      [`tollgate/app/dev/${run2.id}`, true],
    ],
  );
  assertValuesAt(await fileAt(info.api_url, "acme/env-dev", "apps/app/values.yaml", "main", bot.token), merged2.sha.slice(0, 7));
  t.diagnostic(`runtime ${Date.now() - started} ms`);
});

test("(2c) rollback with merge: manual: tollgate opens the revert PR but does not merge it; alice's merge of it ends the run", { skip: SKIP, timeout: 120_000 }, async (t) => {
  const started = Date.now();
  const health = await healthServer(t, 500);
  const extra = `        verify:
          timeout: 3s
          steps:
            - http: { url: "http://127.0.0.1:${health.port}/healthz" }
        on_failure: rollback
`;
  const { admin, info, tollgate, bot } = await startWorld(t, { pipeline: pipeline({ merge: "manual", extra }) });
  await mergeSourceChange(admin);
  const pr = await eventually("the promotion PR to open", async () => (await pulls(info.api_url, "acme/env-dev", bot.token, "open"))[0]).catch(
    withDiagnosis(tollgate),
  );
  await eventually("the stage to be open", () => JSON.parse(runs(tollgate)[0].state).stages.find((s) => s.status === "open")).catch(
    withDiagnosis(tollgate),
  );
  await admin("POST", `/repos/acme/env-dev/pulls/${pr.number}/merge`, { user: "alice" });

  const revert = await eventually("the revert PR to open", async () =>
    (await pulls(info.api_url, "acme/env-dev", bot.token, "open")).find((p) => p.number !== pr.number),
  ).catch(withDiagnosis(tollgate));
  assert.equal(revert.user.login, "tollgate-bot");
  // merge: manual: tollgate leaves the revert to a person; the run is not over yet.
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal((await admin("GET", `/repos/acme/env-dev/pulls/${revert.number}`)).merged, false, "tollgate does not merge the revert PR");
  const mid = runs(tollgate)[0];
  assert.equal(mid.status, "running", `the run waits for the revert to be merged\n${show(auditOf(tollgate, mid.id))}`);
  assert.equal(JSON.parse(mid.state).stages[0].status, "failed");

  await admin("POST", `/repos/acme/env-dev/pulls/${revert.number}/merge`, { user: "alice" });
  const run = await eventually("the run to fail", () => runs(tollgate).find((r) => r.status === "failed")).catch(withDiagnosis(tollgate));
  const audit = auditOf(tollgate, run.id);
  assertAuditGapless(audit);
  const merged = audit.find((a) => a.reason.includes(`revert PR #${revert.number} merged`));
  assert.equal(merged?.actor, "alice", `the revert merge is audited as alice's:\n${show(audit)}`);
  const end = audit.find((a) => a.stage === "" && a.to_state === "failed");
  assert.equal(end.actor, "alice", show(audit));
  assert.match(end.reason, /rolled back/, show(audit));
  assert.equal(await fileAt(info.api_url, "acme/env-dev", "apps/app/values.yaml", "main", bot.token), OLD_VALUES);
  const requests = await admin("GET", "/requests");
  assert.deepEqual(
    requests.filter((r) => r.login === "tollgate-bot" && r.method === "PUT" && /\/merge$/.test(r.path)),
    [],
    "tollgate merged nothing",
  );
  t.diagnostic(`runtime ${Date.now() - started} ms`);
});

test("(2d) /rollback by alice on a promoted stage: revert PR opened and merged, run failed, audited as alice's", { skip: SKIP, timeout: 120_000 }, async (t) => {
  const started = Date.now();
  const { admin, info, tollgate, bot } = await startWorld(t, { pipeline: pipeline() });
  await mergeSourceChange(admin);
  const run0 = await eventually("the run to succeed", () => runs(tollgate).find((r) => r.status === "succeeded")).catch(withDiagnosis(tollgate));
  const [pr] = await pulls(info.api_url, "acme/env-dev", bot.token);
  assert.ok(pr.merged_at);

  const comment = await admin("POST", `/repos/acme/env-dev/pulls/${pr.number}/comments`, { user: "alice", body: "/rollback" });
  const run = await eventually("the run to be failed", () => runs(tollgate).find((r) => r.id === run0.id && r.status === "failed"), {
    ms: 30_000,
  }).catch(withDiagnosis(tollgate));
  const prs = (await pulls(info.api_url, "acme/env-dev", bot.token)).sort((a, b) => a.number - b.number);
  assert.equal(prs.length, 2, JSON.stringify(prs.map((p) => [p.number, p.head.ref])));
  assert.equal(prs[1].user.login, "tollgate-bot");
  assert.ok(prs[1].merged_at, "the revert PR is merged");
  assert.equal(await fileAt(info.api_url, "acme/env-dev", "apps/app/values.yaml", "main", bot.token), OLD_VALUES);
  const audit = auditOf(tollgate, run.id);
  assertAuditGapless(audit);
  assertMoves(audit, ["dev:promoted->failed", "run:succeeded->failed"]);
  const row = audit.find((a) => a.from_state === "promoted" && a.to_state === "failed");
  assert.equal(row.actor, "alice", show(audit));
  assert.match(row.reason, /rolled back by @alice/, show(audit));
  const reactions = await eventually("a +1 on the /rollback comment", async () => {
    const list = await apiGet(info, bot.token, `/repos/acme/env-dev/issues/comments/${comment.id}/reactions`);
    return list.length ? list : null;
  }).catch(withDiagnosis(tollgate));
  assert.deepEqual(
    reactions.map((r) => r.content),
    ["+1"],
  );
  t.diagnostic(`runtime ${Date.now() - started} ms`);
});

test("(4c) alice merges a promotion PR tollgate holds for an approval (merge: auto): the run moves on, audited as hers", { skip: SKIP, timeout: 120_000 }, async (t) => {
  const started = Date.now();
  const gates = "gates:\n          checks: none\n          approvals: { count: 1 }";
  const { admin, info, tollgate, bot } = await startWorld(t, { pipeline: pipeline({ gates }) });
  const { merged } = await mergeSourceChange(admin);
  const pr = await eventually("the promotion PR to open", async () => (await pulls(info.api_url, "acme/env-dev", bot.token, "open"))[0]).catch(
    withDiagnosis(tollgate),
  );
  await eventually("tollgate/dev pending on the head", async () => {
    const s = await apiGet(info, bot.token, `/repos/acme/env-dev/commits/${pr.head.sha}/status`);
    return s.statuses.find((x) => x.context === "tollgate/dev" && x.state === "pending");
  }).catch(withDiagnosis(tollgate));
  await admin("POST", `/repos/acme/env-dev/pulls/${pr.number}/merge`, { user: "alice" });
  const run = await eventually("the run to succeed", () => runs(tollgate).find((r) => r.status === "succeeded")).catch(withDiagnosis(tollgate));
  const audit = auditOf(tollgate, run.id);
  assertAuditGapless(audit);
  assertMoves(audit, ["dev:open->verifying", "dev:verifying->promoted", "run:running->succeeded"]);
  const row = audit.find((a) => a.to_state === "verifying");
  assert.equal(row.actor, "alice", show(audit));
  assert.match(row.reason, /merged by @alice/, show(audit));
  assertValuesAt(await fileAt(info.api_url, "acme/env-dev", "apps/app/values.yaml", "main", bot.token), merged.sha.slice(0, 7));
  t.diagnostic(`runtime ${Date.now() - started} ms`);
});

// A PrMerged for a PR of a run that already ended is ignored by the engine; the service audits it
// on that run. Here tollgate cannot close the superseded run's PR (the
// host answers 502 to the close), and alice merges it: the environment now runs run 1's release,
// which nothing in tollgate's records says.
test(
  "(3d) alice merges a superseded run's PR before tollgate could close it: audited on that run",
  { skip: SKIP, timeout: 120_000 },
  async (t) => {
    const gates = "gates:\n          checks: none\n          approvals: { count: 1 }";
    const { admin, info, tollgate, bot } = await startWorld(t, { pipeline: pipeline({ gates }) });
    const { merged: merged1 } = await mergeSourceChange(admin, { branch: "change-1", text: "v2\n" });
    const pr1 = await eventually("run 1's PR to open", async () => (await pulls(info.api_url, "acme/env-dev", bot.token, "open"))[0]).catch(
      withDiagnosis(tollgate),
    );
    const run1 = await eventually("run 1's stage to be open", () => {
      const r = runs(tollgate)[0];
      return r && JSON.parse(r.state).stages.find((s) => s.status === "open") && r;
    }).catch(withDiagnosis(tollgate));
    await admin("PUT", "/faults", { kind: "status", status: 502, method: "PATCH", path: `/repos/acme/env-dev/pulls/${pr1.number}$` });
    await mergeSourceChange(admin, { branch: "change-2", text: "v3\n" });
    await eventually("run 1 to be superseded", () => runs(tollgate).find((r) => r.id === run1.id && r.status === "superseded")).catch(
      withDiagnosis(tollgate),
    );
    assert.equal((await admin("GET", `/repos/acme/env-dev/pulls/${pr1.number}`)).state, "open", "the close was refused by the host");
    await admin("POST", `/repos/acme/env-dev/pulls/${pr1.number}/merge`, { user: "alice" });
    assertValuesAt(await fileAt(info.api_url, "acme/env-dev", "apps/app/values.yaml", "main", bot.token), merged1.sha.slice(0, 7));
    await eventually(
      "an audit row on run 1 for alice's merge of its PR",
      () => auditOf(tollgate, run1.id).find((a) => a.actor === "alice" && /merged/.test(a.reason)),
      { ms: 8_000 },
    ).catch((e) => {
      throw new Error(`${e.message}\nrun 1 audit:\n${show(auditOf(tollgate, run1.id))}`);
    });
  },
);

// Not in the issue; found while writing (3d). A change to the same line lands on the environment's
// main while the promotion PR waits for an approval: the PR is now in conflict (`dirty`) and the
// host answers every merge with 405. That is not "waiting on checks": the stage fails naming the
// conflict (a person resolves it, then /retry).
test(
  "(4d) a conflicting change on the env's main under an approved promotion PR: tollgate says so (or rebuilds its branch)",
  { skip: SKIP, timeout: 120_000 },
  async (t) => {
    const gates = "gates:\n          checks: none\n          approvals: { count: 1 }";
    const { admin, info, tollgate, bot } = await startWorld(t, { pipeline: pipeline({ gates }) });
    const { merged } = await mergeSourceChange(admin);
    const pr = await eventually("the PR to open", async () => (await pulls(info.api_url, "acme/env-dev", bot.token, "open"))[0]).catch(
      withDiagnosis(tollgate),
    );
    await eventually("the stage to be open", () => JSON.parse(runs(tollgate)[0].state).stages.find((s) => s.status === "open")).catch(
      withDiagnosis(tollgate),
    );
    await admin("POST", "/repos/acme/env-dev/commits", {
      branch: "main",
      files: { "apps/app/values.yaml": OLD_VALUES.replace("tag: old", "tag: hotfix") },
      user: "alice",
      message: "hotfix",
    });
    assert.equal((await admin("GET", `/repos/acme/env-dev/pulls/${pr.number}`)).mergeable_state, "dirty");
    await admin("POST", `/repos/acme/env-dev/pulls/${pr.number}/comments`, { user: "bob", body: "/approve" });
    const run = runs(tollgate)[0];
    await eventually(
      "the PR merged with the release on main, or the stage failed naming the conflict",
      async () => {
        const r = runs(tollgate)[0];
        if (r.status === "succeeded") {
          const text = await fileAt(info.api_url, "acme/env-dev", "apps/app/values.yaml", "main", bot.token);
          return text.includes(merged.sha.slice(0, 7));
        }
        return auditOf(tollgate, run.id).some((a) => /conflict/i.test(a.reason));
      },
      { ms: 10_000 },
    ).catch((e) => {
      throw new Error(`${e.message}\n${show(auditOf(tollgate, run.id))}`);
    });
  },
);

// Not in the issue; found by the chaos test. The host answers every POST of a comment with a 502
// until the status comment's job has failed once (the job posts, looks for its comment, posts
// again, then gives up) and is retried 5 s later. "job finished" is logged by the attempt that
// finishes the job, never by one that failed and will be retried: logs (and the chaos tests' "no
// job result applied twice") count finished jobs by it.
test('a job that fails and will be retried does not log "job finished" for that attempt', { skip: SKIP, timeout: 120_000 }, async (t) => {
  const { admin, tollgate } = await startWorld(t, { pipeline: pipeline() });
  await admin("PUT", "/faults", { kind: "status", status: 502, method: "POST", path: "/issues/\\d+/comments$" });
  await mergeSourceChange(admin);
  await eventually("a job to fail and be retried", () => tollgate.stderr.includes('"msg":"job will be retried"'), { ms: 30_000 }).catch(
    withDiagnosis(tollgate),
  );
  await admin("DELETE", "/faults");
  await eventually("the run to succeed", () => runs(tollgate).find((r) => r.status === "succeeded"), { ms: 30_000 }).catch(
    withDiagnosis(tollgate),
  );
  assert.deepEqual(await unfinishedJobs(tollgate.db), [], "every side effect is done");
  const lines = tollgate.stderr
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l));
  const retried = lines.filter((l) => l.msg === "job will be retried");
  assert.equal(retried.length, 1, `one job was retried:\n${JSON.stringify(retried)}`);
  // The retry may run (and log "job finished" then) or be made moot by a newer revision of the
  // comment (and log nothing); the failed attempt itself never logs it.
  const job = retried[0].job;
  const retryAt = lines.indexOf(retried[0]);
  const finishedAt = lines.flatMap((l, i) => (l.msg === "job finished" && l.job === job ? [i] : []));
  assert.ok(finishedAt.length <= 1, `job ${job} logged "job finished" ${finishedAt.length} times`);
  for (const i of finishedAt) {
    assert.ok(
      i > retryAt && lines.slice(retryAt, i).some((l) => l.msg === "job started" && l.job === job),
      `job ${job}'s "job finished" comes from an attempt after the failed one:\n${lines
        .filter((l) => l.job === job)
        .map((l) => JSON.stringify(l))
        .join("\n")}`,
    );
  }
});
