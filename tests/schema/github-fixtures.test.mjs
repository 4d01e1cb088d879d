// The GitHub webhook fixtures that @octokit/webhooks-examples@7.6.1 lacks (a merged pull request,
// a comment on a pull request, an approved review) are derived from real examples of that package
// by small edits. This test proves both halves of that claim:
//
// a. each fixture is exactly its source example with the edits listed below (and in
//    tests/fixtures/webhooks/github/README.md) applied, nothing else;
// b. each fixture validates against @octokit/webhooks-schemas@7.6.1 (schema.json), both as its
//    specific event/action and as a member of the package's top-level oneOf of all events.
//
//   node --test tests/schema/

import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

import Ajv from "ajv";
import addFormats from "ajv-formats";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const FIXTURES = path.join(ROOT, "tests", "fixtures", "webhooks", "github");
const require = createRequire(import.meta.url);
const EXAMPLES = require.resolve("@octokit/webhooks-examples/api.github.com/index.json", { paths: [ROOT] });
const SCHEMA = require.resolve("@octokit/webhooks-schemas/schema.json", { paths: [ROOT] });

const REPO_HTML = "https://github.com/Codertocat/Hello-World";
const REPO_API = "https://api.github.com/repos/Codertocat/Hello-World";

// file -> source example (event name, index in that event's examples) and the edits, as
// [JSON path, new value]. A value of FROM(path) copies another field of the source example.
const FROM = (p) => ({ from: p });
const DERIVED = [
  {
    file: "pull_request.closed.merged.json",
    source: { event: "pull_request", index: 3, action: "closed" },
    definition: "pull_request$closed",
    edits: [
      ["pull_request.merged", true],
      ["pull_request.merged_at", FROM("pull_request.closed_at")],
      ["pull_request.merged_by", FROM("sender")],
    ],
  },
  {
    file: "issue_comment.created.on_pull_request.json",
    source: { event: "issue_comment", index: 1, action: "created" },
    definition: "issue_comment$created",
    edits: [
      [
        "issue.pull_request",
        {
          url: `${REPO_API}/pulls/1`,
          html_url: `${REPO_HTML}/pull/1`,
          diff_url: `${REPO_HTML}/pull/1.diff`,
          patch_url: `${REPO_HTML}/pull/1.patch`,
          merged_at: null,
        },
      ],
      ["issue.html_url", `${REPO_HTML}/pull/1`],
      ["comment.html_url", `${REPO_HTML}/pull/1#issuecomment-492700400`],
      ["comment.body", "/approve"],
    ],
  },
  {
    file: "pull_request_review.submitted.approved.json",
    source: { event: "pull_request_review", index: 2, action: "submitted" },
    definition: "pull_request_review$submitted",
    edits: [["review.state", "approved"]],
  },
];

function get(obj, dotted) {
  return dotted.split(".").reduce((o, k) => o[k], obj);
}

function set(obj, dotted, value) {
  const keys = dotted.split(".");
  const last = keys.pop();
  const parent = keys.reduce((o, k) => o[k], obj);
  parent[last] = value;
}

function loadExamples() {
  const groups = JSON.parse(fs.readFileSync(EXAMPLES, "utf8"));
  return new Map(groups.map((g) => [g.name, g.examples]));
}

// The webhooks schema is not written for Ajv's strict mode: it carries a non-standard keyword
// ("tsAdditionalProperties", read by the package's TypeScript generator) and union types, which
// strict mode rejects at compile time. strict: false ignores unknown keywords; it changes nothing
// about what the standard keywords accept, so validation itself is as strict as the schema says.
function makeAjv() {
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  const schema = JSON.parse(fs.readFileSync(SCHEMA, "utf8"));
  ajv.addSchema(schema, "webhooks");
  return ajv;
}

const examples = loadExamples();
const ajv = makeAjv();
const anyEvent = ajv.getSchema("webhooks");

for (const d of DERIVED) {
  const fixture = JSON.parse(fs.readFileSync(path.join(FIXTURES, d.file), "utf8"));
  const source = examples.get(d.source.event)[d.source.index];

  test(`${d.file}: is ${d.source.event} example #${d.source.index} with only the documented edits`, () => {
    assert.equal(source.action, d.source.action);
    const expected = structuredClone(source);
    for (const [p, value] of d.edits) {
      set(expected, p, value && value.from ? structuredClone(get(source, value.from)) : value);
    }
    assert.deepEqual(fixture, expected);
    // Every edit changes something: the source example really lacked what the fixture adds.
    for (const [p] of d.edits) {
      let before;
      try {
        before = get(source, p);
      } catch {
        before = undefined;
      }
      assert.notDeepEqual(get(fixture, p), before, `${p} is unchanged`);
    }
  });

  test(`${d.file}: valid against @octokit/webhooks-schemas 7.6.1 (${d.definition})`, () => {
    const specific = ajv.getSchema(`webhooks#/definitions/${d.definition}`);
    assert.ok(specific, `definition ${d.definition} exists`);
    assert.ok(specific(fixture), JSON.stringify(specific.errors, null, 2));
    assert.ok(anyEvent(fixture), JSON.stringify(anyEvent.errors?.slice(0, 5), null, 2));
  });
}

test("the schema is a real check: a broken fixture is rejected", () => {
  const validate = ajv.getSchema("webhooks#/definitions/pull_request$closed");
  const fixture = JSON.parse(fs.readFileSync(path.join(FIXTURES, "pull_request.closed.merged.json"), "utf8"));
  fixture.pull_request.merged = "yes";
  assert.equal(validate(fixture), false);
  const review = JSON.parse(
    fs.readFileSync(path.join(FIXTURES, "pull_request_review.submitted.approved.json"), "utf8"),
  );
  review.review.state = "APPROVED"; // the REST spelling is not a webhook state
  assert.equal(ajv.getSchema("webhooks#/definitions/pull_request_review$submitted")(review), false);
});

test("the package really lacks these three payloads (else use the real one)", () => {
  assert.ok(!examples.get("pull_request").some((e) => e.action === "closed" && e.pull_request.merged));
  assert.ok(!examples.get("issue_comment").some((e) => e.issue.pull_request));
  assert.ok(!examples.get("pull_request_review").some((e) => e.review.state === "approved"));
});
