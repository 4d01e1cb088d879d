// Crash safety (issue acceptance): the end-to-end flow — source merges in acme/app, each promoted
// to acme/env-dev then acme/env-qa (auto merge, `checks: none`, `concurrency: queue`) — while
// `tollgate serve` is killed with SIGKILL at random moments (50–600 ms after each start, or, for
// about half of the kills, 0–20 ms after a job started) and
// restarted on the same directory. Every run must complete with exactly one PR per stage and run,
// merged exactly once (the host's request log), no duplicate tollgate-bot comments, an audit log
// numbered 1..n without gaps, and no failed job; the second test adds 20% failing host calls
// (502s, connection resets, secondary rate limits with retry-after 1 s).
//
// While tollgate is down the host's webhook deliveries fail, and GitHub does not resend them;
// after each restart the test redelivers the failed ones (same GUID), as an operator — or a script
// on GitHub's "redeliver" API — would. tollgate's own resync (5 min) is the slow path.
// The logic lives in bench/chaos/chaos.mjs (bench/chaos/run.sh runs it with 200 kills).
//
//   TOLLGATE_BIN=build/service/tollgate node --test tests/promote/chaos.test.mjs
//   (SEED=N replays a run's kill delays and faults; KILLS=N overrides the 24 kills.)
import { test } from "node:test";
import assert from "node:assert/strict";

import { runChaos } from "../../bench/chaos/chaos.mjs";
import { SKIP } from "./world.mjs";

const KILLS = Number(process.env.KILLS ?? 24);
const RUNS = 12;

function assertInvariants({ figures, invariants }) {
  const summary = JSON.stringify(figures);
  // Not vacuous: the kills happened and the checks covered every run, stage and PR.
  assert.ok(figures.kills >= Math.min(KILLS, 20), `at least 20 kills: ${summary}`);
  assert.ok(invariants.length >= 20, `invariants checked: ${invariants.length}`);
  // Source merges follow each other as soon as the previous run finished, so kills land on work
  // in flight (a leased job or side effects pending), not only on an idle service.
  assert.ok(figures.kills_with_side_effects_pending >= 4, `at least 4 kills with side effects in flight: ${summary}`);
  const failed = invariants.filter((i) => !i.ok);
  // Known tollgate bug (found by this test): a job leased by the killed process keeps its lease for
  // 5 min (EngineServiceOptions.lease) and nothing ends it at startup, so its run — and with
  // concurrency: queue every later run — stalls. The other failures then follow from that.
  const stalled = failed.some((i) => i.name === "no job held by the lease of a killed process");
  assert.deepEqual(
    failed.map((i) => i.name),
    [],
    (stalled
      ? "a job leased by a SIGKILLed process still blocks its run (EngineService::start should release " +
        "earlier processes' leases: runs::release_leases); the failures after the first follow from the stalled runs.\n"
      : "") +
      `crash-safety invariants broken (seed ${figures.seed}; replay with SEED=${figures.seed}):\n` +
      failed.map((i) => `- ${i.name}\n    ${i.detail.split("\n").join("\n    ")}`).join("\n") +
      `\nfigures: ${summary}`,
  );
  assert.equal(figures.runs_succeeded, RUNS, summary);
}

test(`${KILLS} SIGKILLs during ${RUNS} runs dev → qa: every run completes, one PR per stage and run, merged once, no duplicate comments, audit without gaps`,
  { skip: SKIP, timeout: 150_000 }, async (t) => {
    const result = await runChaos(t, { kills: KILLS, runs: RUNS, settleMs: 60_000 });
    t.diagnostic(JSON.stringify(result.figures));
    assertInvariants(result);
  });

test(`${KILLS} SIGKILLs with 20% of host calls failing (502, resets, secondary rate limits): the same holds`,
  { skip: SKIP, timeout: 150_000 }, async (t) => {
    const result = await runChaos(t, { kills: KILLS, runs: RUNS, faults: true, settleMs: 60_000 });
    t.diagnostic(JSON.stringify(result.figures));
    assert.ok(result.figures.faults_fired.reduce((n, f) => n + f.fired, 0) > 0, "host faults fired");
    assertInvariants(result);
  });
