// End-to-end promotion through three environments (issue scenario 1): dev -> qa -> prod, each stage
// an environment repository, with the three kinds of gate a person deals with:
//   dev:  `checks: [ci]`  — the promotion PR waits for a `ci` status on its head;
//   qa:   `soak: 3s`      — the PR waits three seconds after dev was promoted;
//   prod: approvals from bob or alice, not the change's author (alice) — refusals are answered on
//         the PR, /hold blocks the merge even with a valid approval, /unhold releases it.
// Accepted commands get a +1 reaction; the audit log tells the whole story in order.
//
//   TOLLGATE_BIN=build/service/tollgate node --test tests/promote/flow.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";

import { SKIP, assertReleaseValues, diagnose, eventually, fileAt, mergeSourceChange, pulls, sql, unfinishedJobs, startWorld } from "./world.mjs";

const SOAK_MS = 3_000;

const VALUES_EDIT = `        edits:
          - file: apps/app/values.yaml
            set: { image.tag: "{{release.version}}" }
`;

const PIPELINE = `version: 1
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
${VALUES_EDIT}        merge: auto
        gates:
          checks: [ci]
      - name: qa
        repo: acme/env-qa
${VALUES_EDIT}        merge: auto
        gates:
          checks: none
          soak: 3s
      - name: prod
        repo: acme/env-prod
${VALUES_EDIT}        merge: auto
        gates:
          checks: none
          approvals:
            count: 1
            from: [bob, alice]
            allow_author: false
`;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// GET on the REST API as `token`; parsed JSON (asserts 200).
async function rest(api, target, token) {
  const res = await fetch(api + target, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200, `GET ${target}: ${res.status} ${await res.clone().text()}`);
  return res.json();
}

function auditOf(db, runId) {
  return sql(db, "SELECT seq, at, stage, from_state, to_state, actor, reason FROM audit WHERE run_id = ? ORDER BY seq", [runId]);
}

function moveLine(a) {
  return `${a.stage || "run"}:${a.from_state}->${a.to_state}`;
}

// The audit row of a state change (stage "" is the run); undefined if there is none yet.
function moveOf(audit, stage, from, to) {
  return audit.find((a) => a.stage === stage && a.from_state === from && a.to_state === to);
}

function stageState(db, runId, stage) {
  const [row] = sql(db, "SELECT state FROM runs WHERE id = ?", [runId]);
  const state = JSON.parse(row.state);
  return state.stages.find((s) => s.name === stage);
}

function mergeJobs(db, runId, stage) {
  return sql(db, "SELECT key, state FROM jobs WHERE run_id = ? AND stage = ? AND kind = 'merge_pr'", [runId, stage]);
}

test("dev -> qa -> prod: a named check, a soak, approvals with refusals, a hold; one PR per stage, run succeeded", { skip: SKIP, timeout: 120_000 }, async (t) => {
  const started = Date.now();
  const bugs = []; // tollgate misbehaviour found along the way, failed at the end (see the report)
  const { admin, info, tollgate, bot } = await startWorld(t, { pipeline: PIPELINE, envRepos: ["env-dev", "env-qa", "env-prod"] });
  const api = info.api_url;
  const db = tollgate.db;
  const why = (e) => {
    throw new Error(`${e.message}\n${diagnose(tollgate)}`);
  };
  const waitFor = (what, fn, ms = 30_000) => eventually(what, fn, { ms }).catch(why);

  const { merged } = await mergeSourceChange(admin, { user: "alice" });
  const shortSha = merged.sha.slice(0, 7);
  const run = await waitFor("a run to start", () => sql(db, "SELECT id FROM runs")[0]);

  // The open promotion PR of a stage (tollgate's, in its environment repository).
  const openPr = (repo, stage) =>
    waitFor(`the ${stage} promotion PR to be open`, async () => {
      const prs = await pulls(api, repo, bot.token, "open");
      const audit = auditOf(db, run.id);
      return prs.length === 1 && moveOf(audit, stage, "preparing", "open") ? prs[0] : null;
    });
  const prNow = (repo, n) => admin("GET", `/repos/${repo}/pulls/${n}`);

  // ---- dev: checks [ci] ----------------------------------------------------------------------------
  const devPr = await openPr("acme/env-dev", "dev");
  assert.equal(devPr.user.login, "tollgate-bot");
  assert.equal(devPr.head.ref, `tollgate/app/dev/${run.id}`);
  const devHead = devPr.head.sha;

  // No ci result yet: the gate waits (no merge job, PR open).
  await sleep(1_000);
  assert.deepEqual(mergeJobs(db, run.id, "dev"), [], "no merge of dev before any ci result");
  await admin("POST", "/repos/acme/env-dev/statuses/" + devHead, { state: "pending", context: "ci", description: "running", user: "bob" });
  // The pending result reached tollgate (recorded in the stage's checks) and blocks the merge.
  await waitFor("tollgate to record the pending ci status", () => {
    const st = stageState(db, run.id, "dev");
    return st?.checks && JSON.stringify(st.checks).includes("pending") ? st : null;
  });
  await sleep(1_500);
  assert.equal((await prNow("acme/env-dev", devPr.number)).state, "open", "dev PR still open while ci is pending");
  assert.equal((await prNow("acme/env-dev", devPr.number)).merged, false);
  assert.deepEqual(mergeJobs(db, run.id, "dev"), [], "no merge of dev while ci is pending");
  assert.equal(stageState(db, run.id, "dev").status, "open");

  await admin("POST", "/repos/acme/env-dev/statuses/" + devHead, { state: "success", context: "ci", description: "green", user: "bob" });
  await waitFor("the dev PR to be merged after ci succeeded", async () => (await prNow("acme/env-dev", devPr.number)).merged);

  // ---- qa: soak 3s ------------------------------------------------------------------------------
  const qaPr = await openPr("acme/env-qa", "qa");
  assert.equal(qaPr.head.ref, `tollgate/app/qa/${run.id}`);
  await waitFor("the qa PR to be merged after the soak", async () => (await prNow("acme/env-qa", qaPr.number)).merged, 20_000);
  {
    const audit = auditOf(db, run.id);
    const devPromoted = moveOf(audit, "dev", "verifying", "promoted");
    const qaMerging = moveOf(audit, "qa", "open", "merging");
    assert.ok(devPromoted && qaMerging, `audit has dev promoted and qa merging: ${audit.map(moveLine).join(", ")}`);
    const soaked = qaMerging.at - devPromoted.at;
    // The engine's clock has whole seconds, so a soak can never be more than 1 s short; anything
    // shorter than that is a different bug and fails at once.
    assert.ok(soaked >= SOAK_MS - 1_000, `qa merged ${soaked} ms after dev was promoted; the soak is ${SOAK_MS} ms`);
    // KNOWN BUG (reported): the engine's TimePoint is std::chrono::sys_seconds
    // (pipeline/engine.hpp:21) and the service floors the wall clock to the second
    // (service/engine_service.cpp:140), so dev's finished_at (the soak's base) is up to 1 s earlier
    // than the promotion the audit records in ms, and `soak: 3s` can pass after ~2.0 s. Recorded
    // here and failed at the end so the rest of the scenario still runs.
    if (soaked < SOAK_MS) {
      bugs.push(
        `soak too short: qa went open->merging ${soaked} ms after dev verifying->promoted (audit at ${devPromoted.at} -> ${qaMerging.at}), ` +
          `soak is ${SOAK_MS} ms; the engine floors time to whole seconds (pipeline/engine.hpp:21 TimePoint = sys_seconds, ` +
          `service/engine_service.cpp:140 floor<seconds>), so the soak base (dev finished_at) is truncated`,
      );
    }
  }

  // ---- prod: approvals, refusals, hold ------------------------------------------------------------
  const prodPr = await openPr("acme/env-prod", "prod");
  assert.equal(prodPr.head.ref, `tollgate/app/prod/${run.id}`);
  const P = prodPr.number;
  const comment = (user, body) => admin("POST", `/repos/acme/env-prod/pulls/${P}/comments`, { user, body });
  const comments = () => rest(api, `/repos/acme/env-prod/issues/${P}/comments?per_page=100`, bot.token);
  const reactions = (id) => rest(api, `/repos/acme/env-prod/issues/comments/${id}/reactions`, bot.token);
  const botReplyWith = (text) =>
    waitFor(`a reply by tollgate-bot containing ${JSON.stringify(text)}`, async () =>
      (await comments()).find((c) => c.user.login === "tollgate-bot" && c.body.includes(text)),
    );
  const plusOne = (c) =>
    waitFor(`a +1 reaction by tollgate-bot on comment ${c.id} (${c.body})`, async () =>
      (await reactions(c.id)).find((r) => r.content === "+1" && r.user.login === "tollgate-bot"),
    );

  // carol: read-only and not in `from`.
  const carols = await comment("carol", "/approve");
  const carolReply = await botReplyWith("@carol cannot approve");
  assert.match(carolReply.body, /refused/);
  assert.match(carolReply.body, /@bob/, "the reply names who may approve");
  // alice: in `from`, but the author of the change (allow_author: false).
  const alices = await comment("alice", "/approve lgtm");
  const aliceReply = await botReplyWith("@alice is the author of this change");
  assert.match(aliceReply.body, /allow_author/);
  assert.notEqual(aliceReply.id, carolReply.id, "one reply per refused comment");
  assert.deepEqual(
    (await reactions(carols.id)).filter((r) => r.user.login === "tollgate-bot"),
    [],
    "a refused command gets no reaction",
  );
  assert.deepEqual((await reactions(alices.id)).filter((r) => r.user.login === "tollgate-bot"), []);
  {
    const pr = await prNow("acme/env-prod", P);
    assert.equal(pr.state, "open");
    assert.equal(pr.merged, false, "refused approvals do not merge prod");
    assert.deepEqual(stageState(db, run.id, "prod").approvals, [], "no approval recorded from carol or alice");
    assert.deepEqual(mergeJobs(db, run.id, "prod"), []);
  }

  // bob holds, then approves: the approval counts but the hold keeps the PR open.
  const bobHold = await comment("bob", "/hold waiting for the change freeze to end");
  await plusOne(bobHold);
  const bobApprove = await comment("bob", "/approve");
  await plusOne(bobApprove);
  await waitFor("bob's approval in the audit", () => auditOf(db, run.id).find((a) => a.stage === "prod" && a.actor === "bob" && /^approved/.test(a.reason)));
  await sleep(1_500);
  {
    const pr = await prNow("acme/env-prod", P);
    assert.equal(pr.merged, false, "a held stage is not merged, even with a valid approval");
    assert.equal(pr.state, "open");
    const st = stageState(db, run.id, "prod");
    assert.equal(st.status, "open");
    assert.deepEqual(st.approvals.map((a) => a.login), ["bob"]);
    assert.ok(st.hold, "prod is held");
    assert.deepEqual(mergeJobs(db, run.id, "prod"), [], "no merge job while held");
  }

  const bobUnhold = await comment("bob", "/unhold");
  await plusOne(bobUnhold);
  await waitFor("the prod PR to be merged after /unhold", async () => (await prNow("acme/env-prod", P)).merged);
  const finished = await waitFor("the run to succeed", () => sql(db, "SELECT id, status FROM runs WHERE id = ? AND status = 'succeeded'", [run.id])[0]);
  assert.equal(finished.status, "succeeded");

  // ---- outcomes on the host ---------------------------------------------------------------------
  for (const stage of ["dev", "qa", "prod"]) {
    const repo = `acme/env-${stage}`;
    const prs = await pulls(api, repo, bot.token);
    assert.equal(prs.length, 1, `exactly one PR in ${repo}, got ${prs.map((p) => p.number)}`);
    assert.equal(prs[0].user.login, "tollgate-bot");
    assert.equal(prs[0].head.ref, `tollgate/app/${stage}/${run.id}`);
    assert.ok(prs[0].merged_at, `the ${stage} PR is merged`);
    const values = await fileAt(api, repo, "apps/app/values.yaml", "main", bot.token);
    assertReleaseValues(values, shortSha, `${repo} runs the release`);
  }
  // Each PR merged exactly once (one successful merge call per PR).
  const requests = await admin("GET", "/requests");
  const list = Array.isArray(requests) ? requests : requests.requests;
  for (const [stage, n] of [["dev", devPr.number], ["qa", qaPr.number], ["prod", P]]) {
    const merges = list.filter((r) => r.method === "PUT" && r.path === `/repos/acme/env-${stage}/pulls/${n}/merge` && r.status === 200);
    assert.equal(merges.length, 1, `one successful merge of ${stage} #${n}: ${JSON.stringify(merges)}`);
  }
  // No extra comment replies: only the two refusals are answered (plus the sticky status comments).
  const botComments = (await comments()).filter((c) => c.user.login === "tollgate-bot");
  assert.equal(botComments.filter((c) => /refused/.test(c.body)).length, 2, `two refusal replies: ${JSON.stringify(botComments.map((c) => c.body))}`);

  // ---- the audit log ----------------------------------------------------------------------------
  const audit = auditOf(db, run.id);
  assert.deepEqual(
    audit.map((a) => a.seq),
    audit.map((_, i) => i + 1),
    "audit seq has no gaps",
  );
  for (let i = 1; i < audit.length; i++) assert.ok(audit[i].at >= audit[i - 1].at, `audit times never go back (seq ${audit[i].seq})`);
  const moves = audit.filter((a) => a.from_state !== a.to_state).map(moveLine);
  const expected = ["run:queued->running"];
  for (const s of ["dev", "qa", "prod"]) {
    expected.push(`${s}:waiting->preparing`, `${s}:preparing->open`, `${s}:open->merging`, `${s}:merging->verifying`, `${s}:verifying->promoted`);
  }
  expected.push("run:running->succeeded");
  assert.deepEqual(moves, expected, "stage transitions in order");
  // Accepted commands are audited (held, approved, unheld by bob, in that order); refusals are not
  // state changes (the engine answers them with a reply only), and neither carol nor alice counts.
  const prodNotes = audit.filter((a) => a.stage === "prod" && a.from_state === a.to_state && a.actor !== "tollgate-bot");
  const notes = prodNotes.map((a) => `${a.actor}:${a.reason.split(" ")[0]}`);
  assert.deepEqual(notes, ["bob:held:", "bob:approved", "bob:unheld"], `prod command audit: ${JSON.stringify(prodNotes)}`);
  assert.ok(!audit.some((a) => a.actor === "carol" || a.actor === "alice"), "refused commands leave no approval in the audit");
  const idx = (pred) => audit.findIndex(pred);
  assert.ok(
    idx((a) => a.actor === "bob" && a.reason === "unheld") < idx((a) => a.stage === "prod" && a.from_state === "open" && a.to_state === "merging"),
    "prod merged only after the unhold",
  );
  // Every side effect finished.
  assert.deepEqual(await unfinishedJobs(db), [], "every side effect is done");
  t.diagnostic(`flow took ${Date.now() - started} ms`);
  assert.deepEqual(bugs, [], `tollgate bugs found in this flow:\n- ${bugs.join("\n- ")}`);
});
