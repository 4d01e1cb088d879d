// The REST API, end to end (docs/api.md, issue 6): a real `tollgate serve` with an `api:` section
// against the test Git host. Every answer goes through tests/api/client.mjs, which checks the
// status and validates the answer against schemas/openapi.yaml.
//
//   TOLLGATE_BIN=$PWD/build/service/tollgate node --test tests/api/
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";

import { SKIP, WEBHOOK_SECRET, diagnose, eventually, mergeSourceChange, startWorld, tempDir } from "../promote/world.mjs";
import { client, openEvents } from "./client.mjs";

const READ = "read-4f9c2e1a7b3d5e60";
const OPS = "ops-8a1e5c3f9d2b7a41";
const BOB = "bob-2d7f4a9c1e8b3f52";
const ALICE = "alice-5c1d9e3a7f2b4c68";
const UNKNOWN_RUN = "ffffffffffff";
const SOME_SHA = "0123456789abcdef0123456789abcdef01234567"; // a well-formed commit id no repository has

// The config's api section; the tokens go to files in a directory of their own.
function apiConfig(t, { anonymous_read = false, tokens }) {
  const dir = tempDir(t);
  return {
    anonymous_read,
    tokens: tokens.map(({ token, ...entry }) => {
      const file = path.join(dir, `api-${entry.name}`);
      fs.writeFileSync(file, token + "\n");
      return { ...entry, token_file: file };
    }),
  };
}

const EDIT = `        edits:
          - file: apps/app/values.yaml
            set: { image.tag: "{{release.version}}" }`;

// dev (verified by an http probe of `healthPort`) then prod (soak 1s and two approvals).
const pipeline = (healthPort) => `version: 1
pipelines:
  - name: app
    on:
      merged:
        branches: [main]
    release:
      version: "v-{{source.short_sha}}"
    stages:
      - name: dev
        repo: acme/env-dev
${EDIT}
        merge: auto
        gates:
          checks: none
        verify:
          timeout: 3s
          steps:
            - http: { url: "http://127.0.0.1:${healthPort}/healthz", expect: 200 }
      - name: prod
        repo: acme/env-prod
        after: [dev]
${EDIT}
        merge: auto
        gates:
          checks: none
          soak: 1s
          approvals: { count: 2 }
`;

// An HTTP server answering `health.status` (settable) on every path: dev's verification probe.
async function healthServer(t) {
  const health = { status: 200 };
  const server = http.createServer((req, res) => {
    res.writeHead(health.status, { "content-type": "text/plain" });
    res.end("health\n");
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  health.port = server.address().port;
  return health;
}

const stageOf = (run, name) => run.stages.find((s) => s.name === name);
const isDescending = (xs) => xs.every((x, i) => i === 0 || xs[i - 1] > x);

test("the REST API: auth, errors, runs, pipelines, actions, idempotency, audit, events, delivery, manual runs", { skip: SKIP, timeout: 300_000 }, async (t) => {
  const health = await healthServer(t);
  const api = apiConfig(t, {
    tokens: [
      { name: "reader", role: "read", token: READ },
      { name: "ops", role: "operator", token: OPS },
      { name: "bob-cli", role: "operator", token: BOB, login: "bob" },
      { name: "alice-cli", role: "operator", token: ALICE, login: "alice" },
    ],
  });
  const { admin, tollgate } = await startWorld(t, { pipeline: pipeline(health.port), envRepos: ["env-dev", "env-prod"], api });
  const base = `http://127.0.0.1:${tollgate.port}`;
  const { send, get, post } = client(base, { read: READ, operator: OPS });
  const withDiagnosis = (e) => {
    throw new Error(`${e.message}\n${diagnose(tollgate)}`);
  };
  const getRun = async (id) => (await get(`/api/v1/runs/${id}`, { expect: 200 })).body;
  const allAudit = async (query = "") => (await get(`/api/v1/audit?limit=500${query}`, { expect: 200 })).body.entries;
  // What the API's tokens did: every entry but tollgate's own (which may come at any time).
  const actionsAudited = async () => (await allAudit()).filter((e) => e.actor !== "tollgate-bot");

  await t.test("no token, an unknown one or another scheme: 401 with WWW-Authenticate; a read token on a POST: 403", async () => {
    for (const target of ["/api/v1/pipelines", "/api/v1/runs", `/api/v1/runs/${UNKNOWN_RUN}`, "/api/v1/audit", "/api/v1/delivery"]) {
      await get(target, { token: null, expect: 401 });
    }
    for (const token of [undefined, "nope"]) assert.equal((await openEvents(base, { token })).status, 401, `the event stream with token ${token}`);
    for (const token of ["nope", READ.slice(0, -1), READ + "0", OPS.toUpperCase()]) await get("/api/v1/runs", { token, expect: 401 });
    await get("/api/v1/runs", { authorization: `Basic ${Buffer.from(`reader:${READ}`).toString("base64")}`, expect: 401 });
    await get("/api/v1/runs", { authorization: READ, expect: 401 });
    const start = { repo: "acme/app", sha: SOME_SHA };
    await post("/api/v1/runs", { token: null, body: start, expect: 401 });
    await post("/api/v1/runs", { token: "nope", body: start, expect: 401 });
    const refused = await post("/api/v1/runs", { token: READ, body: start, expect: 403 });
    assert.ok(refused.body.error.length > 0);
    // Refused requests never take one of the 8 action slots: 40 at once are each a 401 or 403, none
    // a 503 "too many actions".
    const flood = await Promise.all(
      Array.from({ length: 40 }, (_, i) => post("/api/v1/runs", { token: i % 2 ? READ : null, body: start })),
    );
    assert.deepEqual([...new Set(flood.map((r) => r.status))].sort(), [401, 403]);
    // The event stream's refusal of a HEAD (405: it is GET only) carries no body after its head.
    const raw = await new Promise((resolve, reject) => {
      const socket = net.connect({ host: "127.0.0.1", port: tollgate.port }, () =>
        socket.write("HEAD /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
      );
      const chunks = [];
      socket.on("data", (c) => chunks.push(c));
      socket.on("end", () => resolve(Buffer.concat(chunks).toString("latin1")));
      socket.on("error", reject);
      socket.setTimeout(10_000, () => socket.destroy(new Error("no answer")));
    });
    const [headOfStream, rest] = [raw.slice(0, raw.indexOf("\r\n\r\n")), raw.slice(raw.indexOf("\r\n\r\n") + 4)];
    assert.match(headOfStream, /^HTTP\/1\.1 405 [^]*\r\nAllow: GET\r\n[^]*Content-Length: [1-9]/, raw);
    // The stream's answers close the connection: what follows may only be a next answer, not a body.
    assert.ok(rest === "" || rest.startsWith("HTTP/1.1 "), `a body after the head of a HEAD answer: ${JSON.stringify(raw)}`);
    // Requests other than webhooks carry at most 64 KiB, refused from the headers before the token
    // is looked at (not through the validating client: 413 is not an API answer as such).
    const big = await fetch(`${base}/api/v1/runs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...start, padding: "x".repeat(70 * 1024) }),
    });
    assert.equal(big.status, 413);
    assert.match((await big.json()).error, /larger than the limit of 65536 bytes for requests other than webhooks/);
    // Read tokens and operator tokens may both read; nothing has run yet.
    assert.deepEqual((await get("/api/v1/pipelines", { expect: 200 })).body, { pipelines: [] });
    assert.deepEqual((await get("/api/v1/runs", { token: OPS, expect: 200 })).body, { runs: [], next_cursor: null });
    assert.deepEqual((await get("/api/v1/audit", { expect: 200 })).body, { entries: [], next_cursor: null });
  });

  await t.test("unknown endpoints and runs: 404; a method the path does not take: 405 with Allow", async () => {
    for (const target of ["/api/v1", "/api/v1/", "/api/v1/nope", "/api/v2/runs", `/api/v1/runs/${UNKNOWN_RUN}/stages`]) await get(target, { expect: 404 });
    await get(`/api/v1/runs/${UNKNOWN_RUN}`, { expect: 404 });
    await get("/api/v1/runs/not-a-run-id", { expect: 404 });
    await post(`/api/v1/runs/${UNKNOWN_RUN}/abort`, { expect: 404 });
    await post(`/api/v1/runs/${UNKNOWN_RUN}/stages/dev/approve`, { expect: 404 });
    // The client checks Allow against the methods the spec gives the path.
    await send("DELETE", "/api/v1/runs", { token: OPS, expect: 405 });
    await send("PUT", "/api/v1/runs", { token: OPS, body: { repo: "acme/app", sha: SOME_SHA }, expect: 405 });
    for (const target of ["/api/v1/pipelines", "/api/v1/audit", "/api/v1/delivery", "/api/v1/events"]) await post(target, { expect: 405 });
  });

  await t.test("malformed parameters, cursors and bodies: 400 naming what is wrong", async () => {
    const bad = [
      ["/api/v1/runs?limit=0", /limit/],
      ["/api/v1/runs?limit=201", /limit/],
      ["/api/v1/runs?limit=ten", /limit/],
      ["/api/v1/runs?limit=2.5", /limit/],
      ["/api/v1/runs?state=done", /state/],
      ["/api/v1/runs?cursor=not-a-cursor", /cursor/],
      ["/api/v1/audit?limit=0", /limit/],
      ["/api/v1/audit?limit=501", /limit/],
      ["/api/v1/audit?cursor=zzz", /cursor/],
      ["/api/v1/delivery?window=soon", /window/],
      ["/api/v1/delivery?window=30", /window/],
      ["/api/v1/delivery?window=366d", /window/],
    ];
    for (const [target, names] of bad) {
      const { body } = await get(target, { expect: 400 });
      assert.match(body.error, names, `GET ${target}: the message names the parameter`);
    }
    // The stream's Last-Event-ID is an audit id: the server only ever sends digits.
    const stream = await openEvents(base, { token: READ, lastEventId: "yesterday" });
    assert.equal(stream.status, 400, "Last-Event-ID: yesterday");
    assert.match(stream.body.error, /Last-Event-ID/i);

    for (const [body, names] of [
      ["{not json", /JSON/i],
      ["[]", /object/i],
      [{ sha: SOME_SHA }, /repo/],
      [{ repo: 5, sha: SOME_SHA }, /repo/],
      [{ repo: "acme/app" }, /sha/],
      [{ repo: "acme/app", sha: "0123456" }, /sha/],
      [{ repo: "acme/app", sha: SOME_SHA, pipeline: 7 }, /pipeline/],
      [{ repo: "acme//app", sha: SOME_SHA }, /repo/],
      [{ repo: "acme/app name", sha: SOME_SHA }, /repo/],
      [{ repo: "acme/app", sha: SOME_SHA, branch: "main..next" }, /branch/],
      [{ repo: "acme/app", sha: SOME_SHA, branch: "line\nbreak" }, /branch/],
      [{ repo: "acme/app", sha: SOME_SHA, branch: "b".repeat(300) }, /branch/],
      [{ repo: "acme/app", sha: SOME_SHA, pipeline: "p".repeat(300) }, /pipeline/],
      // Stricter reading of "a malformed body": a field the contract does not define is refused, not ignored.
      [{ repo: "acme/app", sha: SOME_SHA, colour: "blue" }, /colour/],
      [{ repo: "acme/app", sha: SOME_SHA, ref: "main" }, /ref/],
    ]) {
      const res = await post("/api/v1/runs", { body, expect: 400 });
      assert.match(res.body.error, names, `POST /api/v1/runs ${JSON.stringify(body)}`);
    }
  });

  // A merged source change starts run 1: dev is promoted (verified), prod waits for two approvals.
  const { merged, pr: sourcePr } = await mergeSourceChange(admin);
  const version1 = `v-${merged.sha.slice(0, 7)}`;
  const run1 = await eventually(
    "run 1's prod stage to be open",
    async () => {
      const { runs } = (await get("/api/v1/runs", { expect: 200 })).body;
      if (runs.length !== 1 || stageOf(runs[0], "prod").status !== "open") return null;
      // Once the 1 s soak is over, prod waits only for the approvals.
      const run = await getRun(runs[0].id);
      const since = stageOf(run, "prod").gates.soak?.since;
      return since && Date.now() - Date.parse(since) > 1500 ? run : null;
    },
    { ms: 60_000 },
  ).catch(withDiagnosis);

  await t.test("a run, listed and in full: the source, the release, each stage's PR, gates and verification", async () => {
    assert.equal(run1.host, "github");
    assert.equal(run1.repo, "acme/app");
    assert.equal(run1.pipeline, "app");
    assert.equal(run1.status, "running");
    assert.equal(run1.version, version1, "version is the release's version value");
    assert.deepEqual(run1.release, { version: version1 });
    assert.equal(run1.definition_sha, merged.sha);
    assert.equal(run1.finished_at, null);
    const { source } = run1;
    assert.deepEqual(
      { repo: source.repo, branch: source.branch, sha: source.sha, pr: source.pr, author: source.author, title: source.title },
      { repo: "acme/app", branch: "main", sha: merged.sha, pr: sourcePr.number, author: "alice", title: "Change the app" },
    );
    assert.ok(source.pr_url, "the source PR's link");

    const dev = stageOf(run1, "dev");
    assert.equal(dev.status, "promoted");
    assert.deepEqual([dev.repo, dev.branch, dev.after, dev.merge], ["acme/env-dev", null, [], "auto"], "branch: null, the file names none");
    assert.ok(dev.pr && dev.pr.number >= 1, "dev's promotion PR");
    assert.equal(dev.revert_pr, null);
    assert.match(dev.merge_sha, /^[0-9a-f]{40}$/);
    assert.ok(dev.merged_by, "who merged dev's PR");
    for (const at of ["started_at", "opened_at", "gates_passed_at", "finished_at"]) assert.ok(dev[at], `dev.${at}`);
    assert.equal(dev.failure, "");
    assert.equal(dev.hold, null);
    assert.equal(dev.gates.checks.required, "none");
    assert.deepEqual([dev.gates.soak, dev.gates.window, dev.gates.approvals], [null, null, null]);
    assert.equal(dev.verify.steps, 1);
    assert.ok(dev.verify.started_at, "dev's verification started");

    const prod = stageOf(run1, "prod");
    assert.equal(prod.status, "open");
    assert.deepEqual([prod.repo, prod.branch, prod.after, prod.merge], ["acme/env-prod", null, ["dev"], "auto"]);
    assert.ok(prod.pr && prod.pr.number >= 1, "prod's promotion PR");
    assert.match(prod.head_sha, /^[0-9a-f]{40}$/);
    assert.equal(prod.merge_sha, "");
    assert.equal(prod.merged_by, "");
    assert.equal(prod.gates_passed_at, null, "prod waits for approvals");
    assert.equal(prod.finished_at, null);
    assert.deepEqual(prod.gates.approvals, { count: 2, from: [], allow_author: false, given: [] });
    assert.deepEqual({ ...prod.gates.soak, since: null }, { seconds: 1, since: null, remaining_seconds: 0 }, "the soak is over");
    assert.equal(prod.gates.window, null);
    assert.equal(prod.verify, null);

    // The listing shows the same run, summarised.
    const { runs, next_cursor } = (await get("/api/v1/runs", { expect: 200 })).body;
    assert.equal(next_cursor, null);
    const { definition_sha, release, stages, ...common } = run1;
    const { stages: summaryStages, ...summaryCommon } = runs[0];
    assert.deepEqual({ ...summaryCommon, updated_at: common.updated_at }, common);
    assert.deepEqual(summaryStages, stages.map((s) => ({ name: s.name, status: s.status })));
  });

  await t.test("pipelines: each stage with the version in its environment and its newest run there", async () => {
    const { pipelines } = (await get("/api/v1/pipelines", { expect: 200 })).body;
    assert.equal(pipelines.length, 1);
    const [p] = pipelines;
    assert.deepEqual([p.host, p.repo, p.name], ["github", "acme/app", "app"]);
    assert.equal(p.latest_run.id, run1.id);
    assert.deepEqual(p.counts, { running: 1, total: 1 });
    const [dev, prod] = p.stages;
    assert.deepEqual(dev.gates, { checks: "none", soak_seconds: null, approvals: null, window: null });
    assert.deepEqual(prod.gates, { checks: "none", soak_seconds: 1, approvals: { count: 2, from: [], allow_author: false }, window: null });
    assert.deepEqual([dev.name, dev.repo, dev.branch, dev.after, dev.merge], ["dev", "acme/env-dev", null, [], "auto"]);
    assert.deepEqual([prod.name, prod.after], ["prod", ["dev"]]);
    assert.deepEqual({ version: dev.current.version, run_id: dev.current.run_id }, { version: version1, run_id: run1.id });
    assert.deepEqual(dev.latest, { run_id: run1.id, status: "promoted", version: version1 });
    assert.equal(prod.current, null, "nothing promoted to prod yet");
    assert.deepEqual(prod.latest, { run_id: run1.id, status: "open", version: version1 });
    // Filters are exact matches.
    for (const query of ["name=app", "repo=acme/app", "host=github", "host=github&repo=acme/app&name=app"]) {
      assert.equal((await get(`/api/v1/pipelines?${query}`, { expect: 200 })).body.pipelines.length, 1, query);
    }
    for (const query of ["name=ap", "repo=acme/other", "host=gitlab"]) {
      assert.deepEqual((await get(`/api/v1/pipelines?${query}`, { expect: 200 })).body.pipelines, [], query);
    }
  });

  await t.test("actions the run's state does not allow: 409 and nothing changes; unknown stage or action: 404; wrong method: 405; bad bodies: 400", async () => {
    const before = await actionsAudited();
    const stage = (name, action) => `/api/v1/runs/${run1.id}/stages/${name}/${action}`;
    for (const [target, reason] of [
      [stage("prod", "retry"), /prod/],
      [stage("prod", "rollback"), /prod/],
      [stage("prod", "unhold"), /not held/],
      [stage("prod", "unapprove"), /no approval/],
      [stage("dev", "approve"), /promoted/],
      [stage("dev", "hold"), /promoted/],
    ]) {
      const { body } = await post(target, { expect: 409 });
      assert.match(body.error, reason, `POST ${target}: the engine's reason`);
    }
    // alice wrote the change and the gate has allow_author: false. The contract's 403 is for read
    // tokens only, so the engine's refusal is read as a 409 like the others.
    const author = await post(stage("prod", "approve"), { token: ALICE, expect: 409 });
    assert.match(author.body.error, /author/);
    assert.deepEqual(await actionsAudited(), before, "refused actions write no audit entry");
    assert.equal(stageOf(await getRun(run1.id), "prod").status, "open");

    await post(stage("qa", "approve"), { expect: 404 });
    await post(stage("prod", "merge"), { expect: 404 });
    await post(stage("prod", "approve"), { token: READ, expect: 403 });
    await post(stage("prod", "approve"), { token: null, expect: 401 });
    await post(`/api/v1/runs/${run1.id}/abort`, { token: READ, expect: 403 });
    await get(stage("prod", "approve"), { expect: 405 });
    await get(`/api/v1/runs/${run1.id}/abort`, { expect: 405 });
    await send("DELETE", `/api/v1/runs/${run1.id}`, { token: OPS, expect: 405 });
    await post(stage("prod", "hold"), { body: { reason: 5 }, expect: 400 });
    await post(stage("prod", "hold"), { body: "freeze", expect: 400 });
    await post(stage("prod", "hold"), { body: { reason: "x", until: "friday" }, expect: 400 });
    await post(stage("prod", "hold"), { headers: { "idempotency-key": "k".repeat(101) }, expect: 400 });
    await post(`/api/v1/runs/${run1.id}/abort`, { body: { reason: ["no"] }, expect: 400 });
    assert.deepEqual(await actionsAudited(), before, "refused requests write no audit entry");
    assert.equal(stageOf(await getRun(run1.id), "prod").hold, null);
  });

  await t.test("hold and unhold, watched on the event stream; a reconnect with Last-Event-ID gets exactly the entries missed", async () => {
    const newest = (await get("/api/v1/audit?limit=1", { expect: 200 })).body.entries[0].id;
    const stream = await openEvents(base, { token: READ });
    t.after(() => stream.close());
    assert.equal(stream.status, 200);
    assert.equal((await stream.next(5000, { comments: true })).retry, "2000", "the stream starts with retry: 2000");

    const held = await post(`/api/v1/runs/${run1.id}/stages/prod/hold`, { body: { reason: "freeze" }, expect: 200 });
    const heldAt = Date.now();
    assert.deepEqual(stageOf(held.body.run, "prod").hold, { by: "api:ops", reason: "freeze" });
    await post(`/api/v1/runs/${run1.id}/stages/prod/hold`, { body: { reason: "again" }, expect: 409 });

    // A new client is sent what is written from now on, in id order, until the hold shows.
    const seen = [];
    let hold;
    while (!hold) {
      const e = await stream.next();
      assert.equal(e.event, "audit");
      assert.equal(e.id, String(e.data.id), "the event id is the audit id");
      assert.ok(e.data.id > newest, `event ${e.id} was written after the stream opened (newest before: ${newest})`);
      assert.ok(seen.length === 0 || e.data.id > seen.at(-1), `ids increase: ${seen.at(-1)} then ${e.data.id}`);
      seen.push(e.data.id);
      if (e.data.stage === "prod" && e.data.actor === "api:ops" && e.data.reason.includes("freeze")) hold = e.data;
    }
    assert.equal(hold.run_id, run1.id);
    // "within about half a second of their commit"; 2 s leaves room for a busy machine.
    assert.ok(Date.now() - heldAt < 2000, `the hold's entry came ${Date.now() - heldAt} ms after the answer`);
    stream.close();

    // While disconnected: unhold, hold, unhold.
    const last = seen.at(-1);
    assert.equal(stageOf((await post(`/api/v1/runs/${run1.id}/stages/prod/unhold`, { expect: 200 })).body.run, "prod").hold, null);
    await post(`/api/v1/runs/${run1.id}/stages/prod/hold`, { expect: 200 });
    await post(`/api/v1/runs/${run1.id}/stages/prod/unhold`, { expect: 200 });
    const missed = (await allAudit()).map((e) => e.id).filter((id) => id > last).sort((a, b) => a - b);
    assert.ok(missed.length >= 3, `unhold, hold and unhold were audited: ${missed}`);

    const again = await openEvents(base, { token: READ, lastEventId: last });
    t.after(() => again.close());
    assert.equal(again.status, 200);
    const received = [];
    while (received.length === 0 || received.at(-1) < missed.at(-1)) received.push((await again.next()).data.id);
    again.close();
    assert.deepEqual(received.slice(0, missed.length), missed, `after ${last}: every entry missed, once, in order`);
    // A Last-Event-ID past the newest entry (a database restored from a backup) resumes from the
    // newest instead of waiting, silent, until the ids catch up.
    const future = await openEvents(base, { token: READ, lastEventId: "999999999999" });
    t.after(() => future.close());
    assert.equal(future.status, 200);
    await post(`/api/v1/runs/${run1.id}/stages/prod/hold`, { body: { reason: "after a restore" }, expect: 200 });
    for (let e = await future.next(); !String(e.data.reason).includes("after a restore"); e = await future.next());
    future.close();
    await post(`/api/v1/runs/${run1.id}/stages/prod/unhold`, { expect: 200 });
    const actions = (await allAudit(`&run=${run1.id}`)).filter((e) => missed.includes(e.id) && e.actor === "api:ops").map((e) => e.reason);
    assert.equal(actions.length, 3, `the three actions are api:ops's: ${actions}`);
  });

  await t.test("approve, unapprove, approve by two tokens: prod merged; an Idempotency-Key makes a replay a no-op", async () => {
    const approve = `/api/v1/runs/${run1.id}/stages/prod/approve`;
    const first = await post(approve, { headers: { "idempotency-key": "approve-1" }, body: { reason: "looks good" }, expect: 200 });
    assert.deepEqual(stageOf(first.body.run, "prod").gates.approvals.given.map((g) => [g.login, g.via_review]), [["api:ops", false]]);
    const audited = await actionsAudited();
    const replay = await post(approve, { headers: { "idempotency-key": "approve-1" }, body: { reason: "looks good" }, expect: 200 });
    assert.deepEqual(stageOf(replay.body.run, "prod").gates.approvals.given.map((g) => g.login), ["api:ops"]);
    assert.deepEqual(await actionsAudited(), audited, "the replay wrote nothing");
    const twice = await post(approve, { expect: 409 });
    assert.match(twice.body.error, /already approved/);

    const withdrawn = await post(`/api/v1/runs/${run1.id}/stages/prod/unapprove`, { expect: 200 });
    assert.deepEqual(stageOf(withdrawn.body.run, "prod").gates.approvals.given, []);
    await post(approve, { headers: { "idempotency-key": "approve-2" }, expect: 200 });
    // bob's token acts as bob: the second approval; the gates pass and tollgate merges.
    const second = await post(approve, { token: BOB, expect: 200 });
    const prod = stageOf(second.body.run, "prod");
    assert.deepEqual(prod.gates.approvals.given.map((g) => g.login).sort(), ["api:ops", "bob"]);

    const done = await eventually("run 1 to succeed", async () => ((await getRun(run1.id)).status === "succeeded" ? getRun(run1.id) : null), {
      ms: 60_000,
    }).catch(withDiagnosis);
    assert.equal(stageOf(done, "prod").status, "promoted");
    assert.ok(done.finished_at, "finished_at is set");
    assert.match(stageOf(done, "prod").merge_sha, /^[0-9a-f]{40}$/);

    const late = await post(approve, { expect: 409 });
    assert.match(late.body.error, /promoted/);
    // The first request, retried after all that: still a no-op, not a refused approval.
    const before = await actionsAudited();
    await post(approve, { headers: { "idempotency-key": "approve-1" }, body: { reason: "looks good" }, expect: 200 });
    assert.deepEqual(await actionsAudited(), before);

    const approvals = (await allAudit(`&run=${run1.id}`)).filter((e) => e.stage === "prod" && /approved/.test(e.reason)).reverse();
    assert.match(approvals[0].reason, /\(API\).*looks good/, "an approval's reason says (API) with its note");
    const bobs = approvals.find((e) => e.actor.startsWith("bob"));
    assert.equal(bobs?.actor, "bob (api:bob-cli)", "the audit log records the login and the token");
  });

  await t.test("audit: newest first, by run and pipeline, in pages by cursor", async () => {
    const entries = await allAudit(`&run=${run1.id}`);
    assert.ok(entries.length >= 10, `run 1 has its story: ${entries.length} entries`);
    assert.ok(entries.every((e) => e.run_id === run1.id && e.pipeline === "app"));
    assert.ok(isDescending(entries.map((e) => e.id)), "ids newest first");
    assert.deepEqual(entries.map((e) => e.seq), entries.map((_, i) => entries.length - i), "seq without gaps, newest first");
    const moves = entries.filter((e) => e.from !== e.to).map((e) => `${e.stage || "run"}:${e.from}->${e.to}`);
    for (const m of ["run:queued->running", "dev:verifying->promoted", "prod:open->merging", "prod:verifying->promoted", "run:running->succeeded"]) {
      assert.ok(moves.includes(m), `audit has ${m}: ${moves.join(", ")}`);
    }
    const ofApp = await allAudit("&pipeline=app");
    assert.ok(ofApp.every((e) => e.pipeline === "app") && entries.every((e) => ofApp.some((a) => a.id === e.id)), "pipeline=app has run 1's entries");
    assert.deepEqual(await allAudit("&pipeline=other"), []);

    const paged = [];
    let cursor = null;
    do {
      const page = (await get(`/api/v1/audit?run=${run1.id}&limit=4${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { expect: 200 })).body;
      assert.ok(page.entries.length <= 4);
      if (page.next_cursor) assert.equal(page.entries.length, 4, "only the last page is short");
      paged.push(...page.entries);
      cursor = page.next_cursor;
    } while (cursor);
    assert.deepEqual(paged, entries, "the pages are the whole list, each entry once");
  });

  await t.test("delivery: the run that reached production is a deployment with its lead time", async () => {
    const run = await getRun(run1.id);
    const { body } = await get("/api/v1/delivery", { expect: 200 });
    assert.equal(body.window_seconds, 30 * 86400, "default window 30d");
    assert.equal(body.pipelines.length, 1);
    const [d] = body.pipelines;
    assert.deepEqual([d.host, d.repo, d.pipeline, d.deployments, d.changes, d.failed_changes, d.change_failure_rate], ["github", "acme/app", "app", 1, 1, 0, 0]);
    assert.ok(Math.abs(d.deployments_per_day - 1 / 30) < 0.001, `deployments_per_day ${d.deployments_per_day}`);
    const lead = (Date.parse(stageOf(run, "prod").finished_at) - Date.parse(run.created_at)) / 1000;
    assert.ok(Math.abs(d.lead_time_seconds.median - lead) < 1, `lead time ${d.lead_time_seconds.median} s, run start to prod promotion ${lead} s`);
    assert.equal(d.lead_time_seconds.p90, d.lead_time_seconds.median, "one deployment: p90 = median");
    assert.equal(d.time_to_restore_seconds, null, "no failure was restored");
    assert.equal((await get("/api/v1/delivery?window=12h", { expect: 200 })).body.window_seconds, 43200);
    assert.equal((await get("/api/v1/delivery?window=365d&pipeline=app&repo=acme/app&host=github", { expect: 200 })).body.pipelines.length, 1);
    assert.deepEqual((await get("/api/v1/delivery?pipeline=other", { expect: 200 })).body.pipelines, []);
    // The same figures as tollgate_delivery_* gauges (computed at most every 30 s).
    await eventually("/metrics to have the delivery gauges of pipeline app", async () =>
      /^tollgate_delivery_\w+\{[^}]*"app"[^}]*\} [0-9]/m.test((await get("/metrics", { expect: 200 })).body), { ms: 45_000, every: 1000 });
  });

  // A commit pushed to main starts nothing (the pipeline runs on merged PRs); it is started by hand.
  const pushed = await admin("POST", "/repos/acme/app/commits", { branch: "main", files: { "src/app.txt": "v3\n" }, user: "alice", message: "straight to main" });
  let run2;

  await t.test("POST /runs: 201 with the new runs, then 200 with the same ones for the same commit; its author may not approve it; unknown pipeline or commit: 404", async () => {
    // Started with bob's token: bob is the run's author.
    const created = await post("/api/v1/runs", { token: BOB, body: { repo: "acme/app", sha: pushed.sha, branch: "main" }, expect: 201 });
    assert.equal(created.body.runs.length, 1);
    run2 = created.body.runs[0];
    assert.deepEqual([run2.host, run2.repo, run2.pipeline, run2.source.sha, run2.source.branch], ["github", "acme/app", "app", pushed.sha, "main"]);
    assert.equal(run2.source.author, "bob", "the author is the token's login");
    assert.equal(run2.version, `v-${pushed.sha.slice(0, 7)}`);
    for (const body of [{ repo: "acme/app", sha: pushed.sha }, { host: "github", repo: "acme/app", sha: pushed.sha, branch: "main", pipeline: "app" }]) {
      const again = await post("/api/v1/runs", { body, expect: 200 });
      assert.deepEqual(again.body.runs.map((r) => r.id), [run2.id], JSON.stringify(body));
    }
    const unknown = await post("/api/v1/runs", { body: { repo: "acme/app", sha: pushed.sha, pipeline: "payments" }, expect: 404 });
    assert.match(unknown.body.error, /payments/);
    await post("/api/v1/runs", { body: { repo: "acme/app", sha: SOME_SHA }, expect: 404 });
    await post("/api/v1/runs", { body: { host: "gitlab", repo: "acme/app", sha: pushed.sha }, expect: 404 });
    // The host's `repos` allowlist (acme/*) holds for manual runs as for its webhooks.
    const outside = await post("/api/v1/runs", { body: { repo: "evil/app", sha: pushed.sha }, expect: 403 });
    assert.match(outside.body.error, /evil\/app.*repos/);
    // Run 2 goes as far as prod's approvals (past dev's verification, so a newer run supersedes it).
    const waiting = await eventually("run 2's prod stage to be open", async () => {
      const run = await getRun(run2.id);
      return stageOf(run, "prod").status === "open" ? run : null;
    }).catch(withDiagnosis);
    assert.equal(waiting.definition_sha, pushed.sha);
    assert.deepEqual([waiting.source.pr, waiting.source.pr_url], [null, null], "no source PR");
    const own = await post(`/api/v1/runs/${run2.id}/stages/prod/approve`, { token: BOB, expect: 409 });
    assert.match(own.body.error, /author/);
  });

  await t.test("runs: newest first in pages by cursor, each run once; filters", async () => {
    // Three more commits, each started by hand: five runs, each newer one superseding the last.
    health.status = 500; // the newest run's dev verification fails (the retry below needs a failed stage)
    // The commits first, then the runs back to back: each older run is still preparing (not yet
    // verifying, which would not be superseded) when the next arrives.
    const shas = [];
    for (let i = 4; i <= 6; i++) {
      shas.push((await admin("POST", "/repos/acme/app/commits", { branch: "main", files: { "src/app.txt": `v${i}\n` }, user: "alice", message: `change ${i}` })).sha);
    }
    for (const sha of shas) await post("/api/v1/runs", { body: { repo: "acme/app", sha }, expect: 201 });
    const all = (await get("/api/v1/runs?limit=200", { expect: 200 })).body.runs;
    assert.equal(all.length, 5);
    assert.deepEqual(all.map((r) => r.source.sha).slice(0, 3), shas.reverse(), "newest first");
    assert.ok(all.every((r, i) => i === 0 || all[i - 1].created_at >= r.created_at), "created_at does not increase");
    for (const limit of [1, 2, 4]) {
      const paged = [];
      let cursor = null;
      do {
        const page = (await get(`/api/v1/runs?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { expect: 200 })).body;
        if (page.next_cursor) assert.equal(page.runs.length, limit);
        paged.push(...page.runs.map((r) => r.id));
        cursor = page.next_cursor;
      } while (cursor);
      assert.deepEqual(paged, all.map((r) => r.id), `limit ${limit}: the pages are the whole list, each run once`);
    }
    const ids = (query) => get(`/api/v1/runs?limit=200&${query}`, { expect: 200 }).then((r) => r.body.runs.map((x) => x.id));
    assert.deepEqual(await ids("state=succeeded"), [run1.id]);
    await eventually("the older manual runs to be superseded", async () => (await ids("state=superseded")).length === 3);
    for (const query of ["pipeline=app", "repo=acme/app", "host=github", "host=github&repo=acme/app&pipeline=app"]) {
      assert.deepEqual(await ids(query), all.map((r) => r.id), query);
    }
    for (const query of ["pipeline=ap", "repo=acme/other", "host=gitlab", "state=aborted"]) assert.deepEqual(await ids(query), [], query);
    // A filter holds across pages.
    const first = (await get("/api/v1/runs?state=superseded&limit=2", { expect: 200 })).body;
    const rest = (await get(`/api/v1/runs?state=superseded&limit=2&cursor=${encodeURIComponent(first.next_cursor)}`, { expect: 200 })).body;
    assert.deepEqual([...first.runs, ...rest.runs].map((r) => r.status), ["superseded", "superseded", "superseded"]);
    assert.equal(rest.next_cursor, null);
  });

  await t.test("retry a failed stage: 200 and it runs again; abort a run: 200, then 409", async () => {
    const newest = (await get("/api/v1/runs?limit=1", { expect: 200 })).body.runs[0];
    const failed = await eventually("the newest run to fail in dev's verification", async () => {
      const run = await getRun(newest.id);
      return run.status === "failed" ? run : null;
    }).catch(withDiagnosis);
    const dev = stageOf(failed, "dev");
    assert.equal(dev.status, "failed");
    assert.match(dev.failure, /verif/i);
    assert.deepEqual(stageOf(failed, "prod").gates.soak, { seconds: 1, since: null, remaining_seconds: null }, "no soak before dev is promoted");
    health.status = 200;
    const retried = await post(`/api/v1/runs/${newest.id}/stages/dev/retry`, { headers: { "idempotency-key": "retry-1" }, expect: 200 });
    assert.equal(retried.body.run.status, "running");
    assert.equal(stageOf(retried.body.run, "dev").status, "verifying");
    await eventually("dev to be promoted again", async () => stageOf(await getRun(newest.id), "dev").status === "promoted").catch(withDiagnosis);
    await post(`/api/v1/runs/${newest.id}/stages/dev/retry`, { expect: 409 });

    const aborted = await post(`/api/v1/runs/${newest.id}/abort`, { body: { reason: "not today" }, expect: 200 });
    assert.equal(aborted.body.run.status, "aborted");
    assert.ok(aborted.body.run.finished_at);
    assert.equal(stageOf(aborted.body.run, "prod").status, "aborted");
    const again = await post(`/api/v1/runs/${newest.id}/abort`, { expect: 409 });
    assert.match(again.body.error, /aborted/);
    await post(`/api/v1/runs/${run1.id}/abort`, { expect: 409 });
    const entry = (await allAudit(`&run=${newest.id}`)).find((e) => e.stage === "" && e.to === "aborted");
    assert.equal(entry.actor, "api:ops");
    assert.match(entry.reason, /not today/);
  });

  await t.test("roll back a promoted stage: 200; the revert is merged, the run failed, a failed change in delivery", async () => {
    const rolled = await post(`/api/v1/runs/${run1.id}/stages/prod/rollback`, { expect: 200 });
    assert.equal(stageOf(rolled.body.run, "prod").status, "failed");
    await post(`/api/v1/runs/${run1.id}/stages/prod/rollback`, { expect: 409 });
    const run = await eventually("run 1 to fail with prod's revert merged", async () => {
      const r = await getRun(run1.id);
      return r.status === "failed" && stageOf(r, "prod").revert_pr ? r : null;
    }).catch(withDiagnosis);
    assert.ok(stageOf(run, "prod").revert_pr.number > stageOf(run, "prod").pr.number);
    const retry = await post(`/api/v1/runs/${run1.id}/stages/prod/retry`, { expect: 409 });
    assert.match(retry.body.error, /rolled back/);
    const [d] = (await get("/api/v1/delivery", { expect: 200 })).body.pipelines;
    assert.deepEqual([d.changes, d.failed_changes, d.change_failure_rate], [1, 1, 1], "run 1 is the one change, and it failed");
    assert.equal(d.time_to_restore_seconds, null, "no deployment came after it");

    // The newest run (aborted after its dev stage was promoted) is dev's version now.
    const [p] = (await get("/api/v1/pipelines", { expect: 200 })).body.pipelines;
    const newest = (await get("/api/v1/runs?limit=1", { expect: 200 })).body.runs[0];
    assert.equal(p.latest_run.id, newest.id);
    assert.deepEqual(p.counts, { running: 0, total: 5 });
    assert.equal(p.stages[0].current.run_id, newest.id);
    assert.deepEqual(p.stages[0].latest, { run_id: newest.id, status: "promoted", version: newest.version });
  });

  await t.test("no token, known or refused, appears in tollgate's log", () => {
    // READ without its last character is also the start of the refused READ + "0".
    for (const token of [READ.slice(0, -1), OPS, OPS.toUpperCase(), BOB, ALICE]) {
      assert.ok(!tollgate.stderr.includes(token), `the token ${token.split("-")[0]}-... is not logged`);
    }
  });
});

test("anonymous reads; probes, metrics and the webhook receiver as described", { skip: SKIP, timeout: 120_000 }, async (t) => {
  const api = apiConfig(t, { anonymous_read: true, tokens: [{ name: "ops", role: "operator", token: OPS }] });
  const { tollgate } = await startWorld(t, { pipeline: pipeline(9), api });
  const base = `http://127.0.0.1:${tollgate.port}`;
  const { send, get, post } = client(base, { operator: OPS });

  await t.test("api.anonymous_read: GETs and the stream (kept alive by a comment) need no token; POSTs still do", async () => {
    assert.deepEqual((await get("/api/v1/pipelines", { expect: 200 })).body, { pipelines: [] });
    assert.deepEqual((await get("/api/v1/runs", { expect: 200 })).body, { runs: [], next_cursor: null });
    assert.deepEqual((await get("/api/v1/audit", { expect: 200 })).body, { entries: [], next_cursor: null });
    assert.deepEqual((await get("/api/v1/delivery?window=7d", { expect: 200 })).body, { window_seconds: 7 * 86400, pipelines: [] });
    await get(`/api/v1/runs/${UNKNOWN_RUN}`, { expect: 404 });
    const stream = await openEvents(base);
    t.after(() => stream.close?.());
    assert.equal(stream.status, 200);
    // Nothing happens here: within 15 s (and a margin) the stream says it is alive. (Other comments,
    // such as one that opens the stream, may come first.)
    const deadline = Date.now() + 20_000;
    let block;
    do block = await stream.next(deadline - Date.now(), { comments: true });
    while (block.comment !== "keep-alive");
    stream.close();
    await post("/api/v1/runs", { token: null, body: { repo: "acme/app" }, expect: 401 });
    await post(`/api/v1/runs/${UNKNOWN_RUN}/abort`, { token: null, expect: 401 });
  });

  await t.test("/healthz, /readyz and /metrics", async () => {
    assert.equal((await get("/healthz", { expect: 200 })).body, "ok\n");
    assert.equal((await get("/readyz", { expect: 200 })).body, "ready\n");
    assert.match((await get("/metrics", { expect: 200 })).body, /^tollgate_http_requests_total\{/m);
    await post("/healthz", { expect: 405 });
  });

  await t.test("POST /hooks/{host}: ping 200, an unused event 202, unsigned 401, no event header 400, unknown host 404, GET 405", async () => {
    const deliver = (host, event, payload, { secret = WEBHOOK_SECRET, expect } = {}) => {
      const body = JSON.stringify(payload);
      const headers = { "x-github-delivery": crypto.randomUUID() };
      if (event) headers["x-github-event"] = event;
      if (secret) headers["x-hub-signature-256"] = "sha256=" + crypto.createHmac("sha256", secret).update(body).digest("hex");
      return send("POST", `/hooks/${host}`, { body, headers, expect });
    };
    const pong = await deliver("github", "ping", { zen: "Keep it simple.", hook_id: 1 }, { expect: 200 });
    assert.equal(pong.body.status, "pong");
    assert.ok(pong.body.delivery);
    await deliver("github", "star", { action: "created" }, { expect: 202 });
    const unsigned = await deliver("github", "ping", { zen: "x" }, { secret: null, expect: 401 });
    assert.ok(unsigned.body.delivery, "a refused delivery names its id");
    await deliver("github", "ping", { zen: "x" }, { secret: "wrong", expect: 401 });
    await deliver("github", null, { zen: "x" }, { expect: 400 });
    const unknown = await deliver("nope", "ping", {}, { expect: 404 });
    assert.match(unknown.body.error, /nope/);
    await send("GET", "/hooks/github", { expect: 405 });
  });
});
