// End-to-end promotion (issue 5): the real `tollgate serve` binary against the test Git host (real
// git behind http-backend, GitHub-shaped API and signed webhooks). A PR merged in the application
// repository starts a run; tollgate pushes the promotion branch, opens the PR, merges it when its
// gates pass and the run succeeds.
//
//   TOLLGATE_BIN=build/service/tollgate node --test tests/promote/
import { test } from "node:test";
import { spawnSync } from "node:child_process";
import assert from "node:assert/strict";

import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";

import {
  BIN, SKIP, WEBHOOK_SECRET, assertReleaseValues, diagnose, eventually, fileAt, mergeSourceChange, pulls, seed, sql, startGithost,
  startTollgate, startWorld, tempDir, testDatabase, unfinishedJobs, writeConfig,
} from "./world.mjs";

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

test("a merged PR promotes the change to dev: branch pushed, PR opened and merged, run succeeded", { skip: SKIP, timeout: 120_000 }, async (t) => {
  const { admin, info, tollgate, bot } = await startWorld(t, { pipeline: PIPELINE_ONE_STAGE });
  const { merged } = await mergeSourceChange(admin);
  const shortSha = merged.sha.slice(0, 7);

  const run = await eventually(
    "the run to succeed",
    () => sql(tollgate.db, "SELECT id, status, state FROM runs").find((r) => r.status === "succeeded"),
    { ms: 60_000 },
  ).catch((e) => {
    throw new Error(`${e.message}\n${diagnose(tollgate)}`);
  });

  // Exactly one promotion PR, opened and merged by tollgate's account, from the deterministic branch.
  const prs = await pulls(info.api_url, "acme/env-dev", bot.token);
  assert.equal(prs.length, 1, `one promotion PR, got ${prs.map((p) => p.number)}`);
  assert.equal(prs[0].user.login, "tollgate-bot");
  assert.equal(prs[0].head.ref, `tollgate/app/dev/${run.id}`);
  assert.ok(prs[0].merged_at, "the promotion PR is merged");
  // The environment now runs the release: only the tag changed, comments kept.
  const values = await fileAt(info.api_url, "acme/env-dev", "apps/app/values.yaml", "main", bot.token);
  assertReleaseValues(values, shortSha, "acme/env-dev");

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
  assert.deepEqual(await unfinishedJobs(tollgate.db), [], "every side effect is done");

  // /metrics counts runs by status and jobs by state (refreshed about once a second).
  await eventually("/metrics to show the succeeded run", async () => {
    const text = await (await fetch(`http://127.0.0.1:${tollgate.port}/metrics`)).text();
    return /^tollgate_runs\{status="succeeded"\} 1$/m.test(text) && /^tollgate_jobs_done_total [1-9]/m.test(text) && /^tollgate_jobs\{state="done"\} [1-9]/m.test(text);
  });

  // The same story from the command line: `tollgate runs` and `tollgate audit --jobs`.
  const cli = (...args) => {
    const r = spawnSync(BIN, [...args, "--database", tollgate.db], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  };
  const [listed] = cli("runs", "--status", "succeeded");
  assert.equal(listed.id, run.id);
  assert.deepEqual(listed.stages, [{ name: "dev", status: "promoted", pr: prs[0].number }]);
  const lines = cli("audit", "--run", run.id, "--jobs");
  const entries = lines.filter((l) => "seq" in l);
  assert.equal(entries.length, audit.length);
  assert.ok(entries.every((e) => e.run === run.id && typeof e.at === "number" && e.actor));
  const effects = lines.filter((l) => "job" in l);
  for (const kind of ["prepare_branch", "open_pr", "merge_pr", "set_commit_status", "upsert_sticky_comment"]) {
    assert.ok(effects.some((e) => e.kind === kind && e.state === "done"), `audit --jobs lists a done ${kind}: ${JSON.stringify(effects)}`);
  }
});

const PIPELINE_MANUAL = PIPELINE_ONE_STAGE.replace("merge: auto", "merge: manual");

test("a dropped webhook delays a run but never strands it: resync reads the PR a person merged", { skip: SKIP, timeout: 120_000 }, async (t) => {
  const { admin, info, tollgate, bot } = await startWorld(t, { pipeline: PIPELINE_MANUAL, engine: { resync_interval: "2s" } });
  await mergeSourceChange(admin);
  const pr = await eventually("the promotion PR to open", async () => (await pulls(info.api_url, "acme/env-dev", bot.token, "open"))[0], {
    ms: 60_000,
  }).catch((e) => {
    throw new Error(`${e.message}\n${diagnose(tollgate)}`);
  });
  // merge: manual — the gates pass, tollgate waits for a person. Webhooks stop arriving (the
  // host's hook now points at a closed port), then alice merges.
  await eventually("the gates-passed status", () =>
    sql(tollgate.db, "SELECT COUNT(*) AS n FROM audit WHERE to_state = 'open' AND reason LIKE '%ready to merge%'")[0].n > 0 ||
    sql(tollgate.db, "SELECT COUNT(*) AS n FROM jobs WHERE kind = 'set_commit_status' AND job LIKE '%ready to merge%'")[0].n > 0,
  );
  await admin("PUT", "/webhook", { url: "http://127.0.0.1:9/hooks/github", secret: "x", ping: false });
  await admin("POST", `/repos/acme/env-dev/pulls/${pr.number}/merge`, { user: "alice" });
  const lost = await admin("GET", "/deliveries?event=pull_request&action=closed");
  assert.ok(lost.some((d) => d.payload?.pull_request?.number === pr.number && d.status_code !== 202), "the merge's webhook was not delivered");

  const run = await eventually(
    "the run to succeed through resync",
    () => sql(tollgate.db, "SELECT id, status FROM runs").find((r) => r.status === "succeeded"),
    { ms: 30_000 },
  ).catch((e) => {
    throw new Error(`${e.message}\n${diagnose(tollgate)}`);
  });
  const audit = sql(tollgate.db, "SELECT stage, from_state, to_state, actor, reason FROM audit WHERE run_id = ? ORDER BY seq", [run.id]);
  const merged = audit.find((a) => a.stage === "dev" && a.from_state === "open" && a.to_state === "verifying");
  assert.ok(merged, `audit has dev open -> verifying: ${JSON.stringify(audit)}`);
  assert.equal(merged.actor, "alice", "the merge is audited as alice's, a person's");
  const resynced = sql(tollgate.db, "SELECT COUNT(*) AS n FROM jobs WHERE kind = 'resync_pr' AND state = 'done'")[0].n;
  assert.ok(resynced >= 1, "a resync_pr job ran");
});

test("a PR that changes .tollgate.yaml gets a check run: problems annotated on their lines, then success once fixed", { skip: SKIP, timeout: 120_000 }, async (t) => {
  const { admin, info, tollgate, bot } = await startWorld(t, { pipeline: PIPELINE_ONE_STAGE });
  // Check runs need write access to the application repository (GitHub: checks: write).
  await admin("PUT", "/repos/acme/app/collaborators/tollgate-bot", { permission: "write" });
  // A typo'd key (`edit:`, so the stage also lacks `edits`) and a bad duration: three problems.
  const broken = PIPELINE_ONE_STAGE.replace("        edits:", "        edit:").replace("checks: none", "checks: none\n          soak: 5 minutes");
  const brokenLines = broken.split("\n");
  const typoLine = brokenLines.findIndex((l) => l.includes("edit:")) + 1;
  const stageLine = brokenLines.findIndex((l) => l.includes("- name: dev")) + 1;
  const soakLine = brokenLines.findIndex((l) => l.includes("soak:")) + 1;
  const commit = await admin("POST", "/repos/acme/app/commits", { branch: "pipeline", from: "main", files: { ".tollgate.yaml": broken }, user: "alice" });
  await admin("POST", "/repos/acme/app/pulls", { head: "pipeline", base: "main", title: "Change the pipeline", user: "alice" });
  const checkRuns = async (sha) => {
    const res = await fetch(`${info.api_url}/repos/acme/app/commits/${sha}/check-runs`, { headers: { authorization: `Bearer ${bot.token}` } });
    return (await res.json()).check_runs.filter((c) => c.name === "tollgate/pipeline-file");
  };
  const [failed] = await eventually("the pipeline file check on the broken commit", async () => {
    const runs = await checkRuns(commit.sha);
    return runs.length ? runs : null;
  }).catch((e) => {
    throw new Error(`${e.message}\n${diagnose(tollgate)}`);
  });
  assert.equal(failed.status, "completed");
  assert.equal(failed.conclusion, "failure");
  assert.match(failed.output.title, /^3 problems in \.tollgate\.yaml$/);
  const annotations = await (await fetch(`${info.api_url}/repos/acme/app/check-runs/${failed.id}/annotations`, {
    headers: { authorization: `Bearer ${bot.token}` },
  })).json();
  if (Array.isArray(annotations)) {
    assert.deepEqual(annotations.map((a) => a.start_line).sort((a, b) => a - b), [stageLine, typoLine, soakLine].sort((a, b) => a - b));
    assert.ok(annotations.every((a) => a.path === ".tollgate.yaml" && a.annotation_level === "failure"));
  } else {
    assert.equal(failed.output.annotations_count, 3);
  }
  assert.match(failed.output.summary, new RegExp(`\\.tollgate\\.yaml:${typoLine}:\\d+: .*edit`));

  // The fix is pushed to the PR: the new head gets a passing check; the old one keeps its result.
  const fixed = await admin("POST", "/repos/acme/app/commits", {
    branch: "pipeline",
    files: { ".tollgate.yaml": PIPELINE_ONE_STAGE.replace("checks: none", "checks: none\n          soak: 5m") },
    user: "alice",
  });
  const [passed] = await eventually("the pipeline file check on the fixed commit", async () => {
    const runs = await checkRuns(fixed.sha);
    return runs.length ? runs : null;
  });
  assert.equal(passed.conclusion, "success");
  assert.match(passed.output.title, /is valid: 1 pipeline/);
  assert.equal((await checkRuns(commit.sha)).length, 1, "one check run per commit");
  // A PR that does not touch the file gets none.
  const other = await admin("POST", "/repos/acme/app/commits", { branch: "other", from: "main", files: { "src/app.txt": "v3\n" }, user: "alice" });
  await admin("POST", "/repos/acme/app/pulls", { head: "other", base: "main", title: "Code only", user: "alice" });
  await eventually("the code-only PR to be consumed", () =>
    sql(tollgate.db, "SELECT COUNT(*) AS n FROM consumed")[0].n >= 4,
  );
  assert.deepEqual(await checkRuns(other.sha), []);
});

// Deliveries are applied in order, but only within a host: a host whose API is down (here every
// request to it answers 503) holds back its own deliveries and no other host's.
test("a host whose API is down holds back only its own deliveries: another host's merge promotes meanwhile, the held one once it is back", { skip: SKIP, timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const up = await startGithost(t);
  const down = await startGithost(t);
  const upBot = await up.admin("POST", "/users", { login: "tollgate-bot", x_access_token: true });
  const downBot = await down.admin("POST", "/users", { login: "tollgate-bot", x_access_token: true });
  const file = writeConfig(dir, { apiUrl: up.info.api_url, token: upBot.token, database: testDatabase(t) });
  const config = YAML.parse(fs.readFileSync(file, "utf8"));
  fs.writeFileSync(path.join(dir, "token-other"), downBot.token + "\n");
  config.hosts.other = { ...config.hosts.github, api_url: down.info.api_url, token_file: "token-other" };
  fs.writeFileSync(file, YAML.stringify(config));
  const tollgate = await startTollgate(t, dir);
  await up.admin("PUT", "/webhook", { url: `http://127.0.0.1:${tollgate.port}/hooks/github`, secret: WEBHOOK_SECRET });
  await down.admin("PUT", "/webhook", { url: `http://127.0.0.1:${tollgate.port}/hooks/other`, secret: WEBHOOK_SECRET });
  await seed(up.admin, { pipeline: PIPELINE_ONE_STAGE });
  await seed(down.admin, { pipeline: PIPELINE_ONE_STAGE });
  const runs = (host) => sql(tollgate.db, "SELECT id, status FROM runs WHERE host = ?", [host]);
  const fail = (e) => {
    throw new Error(`${e.message}\n${diagnose(tollgate)}`);
  };

  await down.admin("PUT", "/faults", { kind: "status", status: 503, message: "Service Unavailable" });
  await mergeSourceChange(down.admin);
  const normalised = (host) =>
    sql(
      tollgate.db,
      "SELECT COUNT(*) AS n FROM deliveries d JOIN delivery_outcomes o ON o.delivery = d.id WHERE d.host = ? AND d.event = 'pull_request' AND o.state = 'normalized'",
      [host],
    )[0].n;
  await eventually("host 'other''s pull_request deliveries to be stored and normalised", () => normalised("other") >= 2).catch(fail);
  // The merge on the host that is up comes later (later deliveries), and is not held behind the one
  // that is down.
  await mergeSourceChange(up.admin);
  await eventually("host 'github''s run to succeed while 'other' is down", () => runs("github").find((r) => r.status === "succeeded"), {
    ms: 60_000,
  }).catch(fail);
  assert.deepEqual(runs("other"), [], "host 'other''s merge waits for its API");
  assert.ok(
    tollgate.logs.some((l) => /^host API unavailable/.test(l.msg ?? "") && l.host === "other"),
    "the log says which host's deliveries wait",
  );

  await down.admin("DELETE", "/faults");
  await eventually("host 'other''s run to succeed once its API is back", () => runs("other").find((r) => r.status === "succeeded"), {
    ms: 60_000,
  }).catch(fail);
  assert.ok(tollgate.logs.some((l) => l.msg === "host API available again: its deliveries go on" && l.host === "other"));
  assert.equal(runs("github").length, 1, "one run per merge");
  assert.equal(runs("other").length, 1, "one run per merge");
});

// concurrency: supersede. A run whose dev merge is being verified when a newer run comes is left to
// finish that verification, then gives way: its older version never reaches qa after the newer one.
test("a run verifying dev when a newer run comes finishes dev, then is superseded: only the newer run promotes qa", { skip: SKIP, timeout: 180_000 }, async (t) => {
  // PIPELINE_ONE_STAGE with a wait in dev's verification, and a qa stage like dev after it.
  const devStage = PIPELINE_ONE_STAGE.slice(PIPELINE_ONE_STAGE.indexOf("      - name: dev"));
  const pipeline =
    PIPELINE_ONE_STAGE +
    "        verify:\n          steps:\n            - wait: 15s\n" +
    devStage.replace("name: dev", "name: qa").replace("acme/env-dev", "acme/env-qa");
  const { admin, info, tollgate, bot } = await startWorld(t, { pipeline, envRepos: ["env-dev", "env-qa"] });
  const fail = (e) => {
    throw new Error(`${e.message}\n${diagnose(tollgate)}`);
  };
  await mergeSourceChange(admin, { branch: "first", text: "v2\n" });
  const first = await eventually("the first run's dev stage to be verifying", () =>
    sql(tollgate.db, "SELECT run_id FROM audit WHERE stage = 'dev' AND to_state = 'verifying'")[0],
  ).catch(fail);
  const { merged } = await mergeSourceChange(admin, { branch: "second", text: "v3\n" });
  const second = await eventually("the second run to start", () =>
    sql(tollgate.db, "SELECT id, status FROM runs WHERE id <> ?", [first.run_id])[0],
  ).catch(fail);
  // Not cut while its verification is under way.
  assert.equal(sql(tollgate.db, "SELECT status FROM runs WHERE id = ?", [first.run_id])[0].status, "running");

  await eventually("the second run to succeed", () => sql(tollgate.db, "SELECT status FROM runs WHERE id = ?", [second.id])[0].status === "succeeded", {
    ms: 120_000,
  }).catch(fail);
  const old = sql(tollgate.db, "SELECT status, state FROM runs WHERE id = ?", [first.run_id])[0];
  assert.equal(old.status, "superseded", "the first run gave way");
  const stages = Object.fromEntries(JSON.parse(old.state).stages.map((s) => [s.name, s.status]));
  assert.equal(stages.dev, "promoted", "the first run finished the dev promotion it had under way");
  assert.equal(stages.qa, "superseded", "and never started qa");
  assert.ok(
    sql(tollgate.db, "SELECT reason FROM audit WHERE run_id = ? AND to_state = 'superseded'", [first.run_id]).some((a) =>
      a.reason.includes(`superseded by run '${second.id}'`),
    ),
  );
  // qa saw one promotion: the newer run's, with its version.
  const qaPrs = await pulls(info.api_url, "acme/env-qa", bot.token);
  assert.equal(qaPrs.length, 1, `one qa promotion PR, got ${qaPrs.map((p) => p.head.ref)}`);
  assert.equal(qaPrs[0].head.ref, `tollgate/app/qa/${second.id}`);
  assertReleaseValues(await fileAt(info.api_url, "acme/env-qa", "apps/app/values.yaml", "main", bot.token), merged.sha.slice(0, 7), "acme/env-qa");
  assert.deepEqual(await unfinishedJobs(tollgate.db), [], "every side effect is done");
});
