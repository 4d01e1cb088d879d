// schemas/openapi.yaml itself: a valid OpenAPI 3.1 document (by @seriousme/openapi-schema-validator),
// every schema in it compiles under ajv's strict mode, it describes every endpoint of docs/api.md
// and the errors of the contract's table where they apply, its status enums are the engine's; and
// the helper tests/api/openapi.mjs really rejects answers that do not match it.
//
//   node --test tests/api/openapi.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";

import { Validator } from "@seriousme/openapi-schema-validator";

import { ROOT, deref, operations, schemaAt, spec, templateOf, validateResponse, validateSchema } from "./openapi.mjs";

test("schemas/openapi.yaml is a valid OpenAPI 3.1 document", async () => {
  const validator = new Validator();
  const result = await validator.validate(spec);
  assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
  assert.equal(validator.version, "3.1");
  assert.equal(spec.openapi, "3.1.0");
});

test("the OpenAPI validator rejects a broken copy (the check above can fail)", async () => {
  const broken = structuredClone(spec);
  delete broken.paths["/api/v1/runs/{id}"].get.responses; // every operation must describe its answers
  broken.paths["/api/v1/runs/{id}"].get.parameters = [{ name: "id", in: "path", schema: { type: "string" } }]; // path parameters must be required
  const result = await new Validator().validate(broken);
  assert.equal(result.valid, false);
});

test("every schema of the document compiles in strict mode, and every $ref resolves", () => {
  for (const name of Object.keys(spec.components.schemas)) schemaAt(["components", "schemas", name]);
  for (const { method, path: p, op } of operations()) {
    for (const [status, response] of Object.entries(op.responses)) {
      if (response.$ref) continue; // a components.responses entry, compiled below
      for (const media of Object.keys(response.content ?? {})) schemaAt(["paths", p, method, "responses", status, "content", media, "schema"]);
    }
    for (const media of Object.keys(op.requestBody?.content ?? {})) schemaAt(["paths", p, method, "requestBody", "content", media, "schema"]);
    (op.parameters ?? []).forEach((param, i) => {
      if (!param.$ref) schemaAt(["paths", p, method, "parameters", i, "schema"]);
    });
  }
  for (const [kind, entries] of Object.entries(spec.components)) {
    if (!["responses", "requestBodies", "parameters", "headers"].includes(kind)) continue;
    for (const [name, entry] of Object.entries(entries)) {
      if (entry.schema) schemaAt(["components", kind, name, "schema"]);
      for (const media of Object.keys(entry.content ?? {})) schemaAt(["components", kind, name, "content", media, "schema"]);
      for (const [h, def] of Object.entries(entry.headers ?? {})) if (!def.$ref) schemaAt(["components", kind, name, "headers", h, "schema"]);
    }
  }
  // Every $ref in the document points at something.
  const refs = JSON.stringify(spec).match(/"\$ref":"[^"]*"/g).map((r) => r.slice(8, -1));
  for (const ref of new Set(refs)) {
    const target = ref.replace(/^#\//, "").split("/").reduce((n, p) => n?.[p.replace(/~1/g, "/").replace(/~0/g, "~")], spec);
    assert.ok(target, `${ref} resolves`);
  }
});

test("every endpoint of docs/api.md is in the spec, and every /api/v1 operation of the spec is in docs/api.md", () => {
  const doc = fs.readFileSync(path.join(ROOT, "docs", "api.md"), "utf8");
  const documented = new Set([...doc.matchAll(/`(GET|POST) (\/api\/v1\/[^`\s?]*)`/g)].map((m) => `${m[1].toLowerCase()} ${m[2]}`));
  assert.ok(documented.size >= 9, `found the endpoints in docs/api.md: ${[...documented].join(", ")}`);
  const described = new Set(operations().map((o) => `${o.method} ${o.path}`));
  for (const endpoint of documented) assert.ok(described.has(endpoint), `${endpoint} (docs/api.md) is described in schemas/openapi.yaml`);
  for (const endpoint of described) {
    if (endpoint.includes(" /api/v1/")) assert.ok(documented.has(endpoint), `${endpoint} (schemas/openapi.yaml) is in docs/api.md`);
  }
  for (const endpoint of ["get /healthz", "get /readyz", "get /metrics", "post /hooks/{host}"]) assert.ok(described.has(endpoint), endpoint);
});

test("each /api/v1 operation describes the errors of the contract's table that apply to it", () => {
  for (const { method, path: p, op } of operations()) {
    if (!p.startsWith("/api/v1/")) continue;
    const statuses = Object.keys(op.responses);
    const expect = ["401", "503"];
    if (method === "post") expect.push("403");
    if (p.includes("{id}")) expect.push("404");
    if (p.endsWith("/abort") || p.endsWith("/{action}")) expect.push("409");
    // A body, a query parameter or a header parameter can be malformed; a path id is only unknown.
    if (op.requestBody || (op.parameters ?? []).some((q) => deref(q).in !== "path")) expect.push("400");
    for (const s of expect) assert.ok(statuses.includes(s), `${method.toUpperCase()} ${p} describes ${s} (has ${statuses.join(", ")})`);
    // Reads may be anonymous (api.anonymous_read); actions always need an operator token.
    const security = JSON.stringify(op.security);
    assert.equal(security, method === "get" ? '[{"bearer":[]},{}]' : '[{"bearer":[]}]', `${method.toUpperCase()} ${p} security`);
  }
});

test("the run and stage status enums are the engine's (pipeline/engine.hpp)", () => {
  const header = fs.readFileSync(path.join(ROOT, "pipeline", "engine.hpp"), "utf8");
  const engineEnum = (name) => /enum class \w+ \{([^}]*)\}/.exec(header.slice(header.indexOf(`enum class ${name} `)))[1].split(",").map((s) => s.trim());
  assert.deepEqual(spec.components.schemas.RunStatus.enum, engineEnum("RunStatus"));
  assert.deepEqual(spec.components.schemas.StageStatus.enum, engineEnum("StageStatus"));
});

// ---------------------------------------------------------------------------------------------
// validateResponse itself: it accepts a valid answer and rejects each kind of invalid one.

const T = "2026-11-27T03:20:00.000Z";
const SHA = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b";
const summary = () => ({
  id: "0f3c9a1b2c3d",
  host: "github",
  repo: "acme/payments",
  pipeline: "payments",
  status: "running",
  version: "1a2b3c4",
  source: { repo: "acme/payments", branch: "main", sha: SHA, pr: 12, author: "dev", title: "Faster refunds", pr_url: "https://github.test/acme/payments/pull/12" },
  created_at: T,
  updated_at: T,
  finished_at: null,
  stages: [{ name: "dev", status: "promoted" }, { name: "qa", status: "open" }],
});
const json = (status, body, headers) => ({ method: "GET", path: "/api/v1/runs", status, contentType: "application/json; charset=utf-8", body, headers });
const rejects = (answer, pattern) => assert.throws(() => validateResponse(answer), pattern);

test("validateResponse accepts a valid page and returns the parsed body", () => {
  const page = { runs: [summary()], next_cursor: "abc" };
  assert.deepEqual(validateResponse(json(200, JSON.stringify(page))), page);
  assert.deepEqual(validateResponse(json(200, { runs: [], next_cursor: null })), { runs: [], next_cursor: null });
});

test("validateResponse rejects a body that does not match, naming where and why", () => {
  const missing = summary();
  delete missing.updated_at;
  rejects(json(200, { runs: [missing], next_cursor: null }), /at \/runs\/0 .*must have required property 'updated_at'/);
  rejects(json(200, { runs: [{ ...summary(), extra: 1 }], next_cursor: null }), /must NOT have additional properties 'extra'/);
  rejects(json(200, { runs: [{ ...summary(), status: "done" }], next_cursor: null }), /at \/runs\/0\/status .*must be equal to one of the allowed values/);
  rejects(json(200, { runs: [{ ...summary(), created_at: "2026-11-27T03:20:00Z" }], next_cursor: null }), /at \/runs\/0\/created_at .*pattern/);
  rejects(json(200, { runs: [{ ...summary(), source: { ...summary().source, pr: 0 } }], next_cursor: null }), /at \/runs\/0\/source\/pr /);
  rejects(json(200, { runs: [summary()] }), /next_cursor/);
  rejects(json(200, "{not json"), /not JSON/);
  rejects(json(400, { message: "bad limit" }), /must have required property 'error'/);
});

test("validateResponse rejects a status the operation does not describe, and an undescribed content type", () => {
  rejects(json(409, { error: "no" }), /status 409 is not described/);
  rejects(json(204, ""), /status 204 is not described/);
  rejects({ ...json(200, "ok"), contentType: "text/plain" }, /content type 'text\/plain' is not described/);
  rejects({ ...json(200, { runs: [], next_cursor: null }), path: "/api/v1/nothing" }, /no path \/api\/v1\/nothing/);
});

test("validateResponse checks required headers: WWW-Authenticate on 401, Allow on 405", () => {
  const error = { error: "a token is needed" };
  validateResponse(json(401, error, { "www-authenticate": "Bearer" }));
  rejects(json(401, error, {}), /header WWW-Authenticate is required/);
  rejects(json(401, error, new Headers({ "www-authenticate": "Basic" })), /header WWW-Authenticate/);
  const wrongMethod = { method: "DELETE", path: "/api/v1/runs", status: 405, contentType: "application/json", body: { error: "use GET or POST" } };
  validateResponse({ ...wrongMethod, headers: { allow: "GET, POST" } });
  rejects({ ...wrongMethod, headers: { allow: "GET" } }, /Allow must name the methods the path takes/);
  rejects({ ...wrongMethod, headers: {} }, /Allow must name/);
  rejects({ ...wrongMethod, status: 404 }, /must be 405/);
});

test("a path that is no endpoint may only be answered 404 (components.responses.NotFound)", () => {
  const answer = { method: "GET", path: null, status: 404, contentType: "application/json", body: { error: "no such endpoint" } };
  validateResponse(answer);
  rejects({ ...answer, status: 200 }, /must be answered with 404/);
  rejects({ ...answer, body: { error: "" } }, /\/error .*must NOT have fewer than 1 characters/);
});

test("templateOf finds the spec's template of a request target", () => {
  assert.equal(templateOf("/api/v1/runs?limit=2"), "/api/v1/runs");
  assert.equal(templateOf("/api/v1/runs/0f3c9a1b2c3d"), "/api/v1/runs/{id}");
  assert.equal(templateOf("/api/v1/runs/0f3c9a1b2c3d/abort"), "/api/v1/runs/{id}/abort");
  assert.equal(templateOf("/api/v1/runs/0f3c9a1b2c3d/stages/qa/approve"), "/api/v1/runs/{id}/stages/{stage}/{action}");
  assert.equal(templateOf("/hooks/github"), "/hooks/{host}");
  assert.equal(templateOf("/api/v1/runs/0f3c9a1b2c3d/stages"), null);
  assert.equal(templateOf("/api/v1/"), null);
});

test("validateSchema checks an event's data against AuditEntry, with run statuses for the run's own entries", () => {
  const entry = { id: 912, run_id: "0f3c9a1b2c3d", pipeline: "payments", seq: 14, at: T, stage: "qa", from: "open", to: "open", actor: "alice", reason: "approved 1a2b3c4 (/approve)" };
  validateSchema("AuditEntry", entry);
  validateSchema("AuditEntry", { ...entry, stage: "", from: "running", to: "succeeded" });
  assert.throws(() => validateSchema("AuditEntry", { ...entry, stage: "", from: "open" }), /\/from/);
  assert.throws(() => validateSchema("AuditEntry", { ...entry, to: "succeeded" }), /\/to/);
  assert.throws(() => validateSchema("Nope", {}), /no schema Nope/);
});
