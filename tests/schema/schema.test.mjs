// Checks of the published pipeline-file schema (schemas/pipeline.schema.json).
//
//   node --test tests/schema/                       parts a and b
//   TOLLGATE_BIN=build/tollgate node --test tests/schema/   also part c (drift check)
//
// a. The schema compiles with Ajv in strict mode (draft-07, ajv-formats, `x-expected` annotation).
// b. Every examples/*.yaml parses as YAML 1.2 (core schema, unique keys) and validates.
// c. Drift check against the C++ validator (`tollgate validate --format json`): for every file in
//    tests/pipeline/invalid/, Ajv says "invalid" exactly when tollgate reports a problem of kind
//    "schema"; every example is valid for tollgate too.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import Ajv from "ajv";
import addFormats from "ajv-formats";
import { parse, parseDocument, LineCounter } from "yaml";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const SCHEMA_PATH = path.join(ROOT, "schemas", "pipeline.schema.json");
const EXAMPLES_DIR = path.join(ROOT, "examples");
const INVALID_DIR = path.join(ROOT, "tests", "pipeline", "invalid");

// Ajv's strict mode flags two constructs of the schema that are valid draft-07 and intended:
//
// - strictRequired: the edit's `oneOf: [{required: [set]}, {required: [image]}, ...]` lists
//   properties that are defined in the parent's `properties`, which Ajv cannot see from inside
//   oneOf (a documented Ajv limitation, ajv-validator/ajv#1571). We downgrade the check to "log",
//   capture the warnings and assert that they are exactly those, so any other undefined
//   `required` property still fails the test.
// - strictTypes / union types: `set` values are `type: ["string", "number", "boolean"]`, which
//   Ajv accepts only with allowUnionTypes (Ajv's documented switch for this).
//
// Everything else stays strict (unknown keywords, unknown formats, strictTypes, strictTuples ...).
const EXPECTED_STRICT_WARNING =
  /^strict mode: required property "(set|image|replace|copy)" is not defined at .*#\/oneOf\/[0-3]" \(strictRequired\)$/;

function loadSchema() {
  return JSON.parse(fs.readFileSync(SCHEMA_PATH, "utf8"));
}

function makeValidator() {
  const warnings = [];
  const logger = {
    log: () => {},
    warn: (...args) => warnings.push(args.map(String).join(" ")),
    error: (...args) => warnings.push(args.map(String).join(" ")),
  };
  const ajv = new Ajv({
    strict: true,
    allErrors: true,
    strictRequired: "log",
    allowUnionTypes: true,
    logger,
  });
  addFormats(ajv);
  ajv.addKeyword({ keyword: "x-expected", schemaType: "string" });
  const validate = ajv.compile(loadSchema());
  return { ajv, validate, warnings };
}

// Compiled once for parts b and c; part a compiles on its own so a failure is reported there.
let shared;
function validator() {
  shared ??= makeValidator();
  return shared;
}

function yamlFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map((f) => path.join(dir, f));
}

const rel = (p) => path.relative(ROOT, p);

// "/pipelines/0/stages" -> ["pipelines", 0, "stages"] (JSON Pointer, RFC 6901).
function pointerToPath(pointer) {
  if (!pointer) return [];
  return pointer
    .split("/")
    .slice(1)
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((s) => (/^(0|[1-9][0-9]*)$/.test(s) ? Number(s) : s));
}

// Formats Ajv errors as "FILE:LINE:COL: /pointer message {params}", one per line.
function formatAjvErrors(file, text, errors) {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { uniqueKeys: true, lineCounter });
  return (errors ?? [])
    .map((e) => {
      let where = rel(file);
      const node = doc.getIn(pointerToPath(e.instancePath), true);
      if (node && node.range) {
        const { line, col } = lineCounter.linePos(node.range[0]);
        where += `:${line}:${col}`;
      }
      return `  ${where}: ${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`;
    })
    .join("\n");
}

// ---------------------------------------------------------------------------------------------
// a. the schema compiles

test("a. pipeline.schema.json compiles with Ajv (draft-07, strict, ajv-formats, x-expected)", () => {
  const schema = loadSchema();
  assert.equal(schema.$schema, "http://json-schema.org/draft-07/schema#");
  const { warnings } = makeValidator(); // throws on any strict-mode error
  const unexpected = warnings.filter((w) => !EXPECTED_STRICT_WARNING.test(w));
  assert.deepEqual(unexpected, [], `unexpected Ajv strict-mode warnings:\n${unexpected.join("\n")}`);
});

// ---------------------------------------------------------------------------------------------
// b. every example is valid

test("b. every examples/*.yaml parses as YAML 1.2 and validates against the schema", async (t) => {
  const files = yamlFiles(EXAMPLES_DIR);
  assert.ok(files.length >= 6, `expected at least 6 examples in ${rel(EXAMPLES_DIR)}, found ${files.length}`);
  const { validate } = validator();
  for (const file of files) {
    await t.test(rel(file), () => {
      const text = fs.readFileSync(file, "utf8");
      let data;
      try {
        data = parse(text, { uniqueKeys: true });
      } catch (err) {
        assert.fail(`${rel(file)} is not valid YAML: ${err.message}`);
      }
      const ok = validate(data);
      assert.ok(ok, `${rel(file)} does not match the schema:\n${formatAjvErrors(file, text, validate.errors)}`);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// c. drift between Ajv and the C++ validator

const BIN = process.env.TOLLGATE_BIN;

// Runs `$TOLLGATE_BIN validate --format json FILE`; returns {status, report, problems, raw}.
function runValidate(file) {
  const res = spawnSync(BIN, ["validate", "--format", "json", rel(file)], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 60_000,
  });
  if (res.error) {
    assert.fail(`could not run ${BIN} validate: ${res.error.message}`);
  }
  let report;
  try {
    report = JSON.parse(res.stdout);
  } catch (err) {
    assert.fail(
      `${BIN} validate --format json ${rel(file)} did not print JSON (exit ${res.status}): ${err.message}\n` +
        `stdout:\n${res.stdout}\nstderr:\n${res.stderr}`,
    );
  }
  assert.ok(
    report && Array.isArray(report.files) && report.files.length === 1,
    `${rel(file)}: expected {"files":[ one entry ]}, got:\n${res.stdout}`,
  );
  const entry = report.files[0];
  const problems = Array.isArray(entry.problems) ? entry.problems : [];
  return { status: res.status, entry, problems, raw: res.stdout, stderr: res.stderr };
}

const formatProblems = (problems) =>
  problems.map((p) => `  ${p.line}:${p.column} [${p.kind}/${p.severity}] ${p.path ?? ""} ${p.message}`).join("\n") ||
  "  (none)";

test(
  "c. drift check: Ajv and `tollgate validate` agree on schema violations",
  { skip: BIN ? false : "TOLLGATE_BIN is not set; set it to the tollgate binary to run the drift check" },
  async (t) => {
    const { validate } = validator();

    const invalid = yamlFiles(INVALID_DIR);
    await t.test(`${rel(INVALID_DIR)}/ holds test files`, () => {
      assert.ok(invalid.length > 0, `no *.yaml files in ${rel(INVALID_DIR)}: the drift check has nothing to compare`);
    });

    for (const file of invalid) {
      await t.test(`invalid: ${rel(file)}`, (st) => {
        const text = fs.readFileSync(file, "utf8");
        const cpp = runValidate(file);

        assert.equal(cpp.entry.valid, false, `${rel(file)}: tollgate reports a file from invalid/ as valid`);

        if (cpp.problems.some((p) => p.kind === "yaml")) {
          st.skip("tollgate reports it as malformed YAML (kind \"yaml\")");
          return;
        }
        let data;
        try {
          data = parse(text, { uniqueKeys: true });
        } catch (err) {
          st.skip(`the yaml package cannot parse it: ${err.message.split("\n")[0]}`);
          return;
        }

        const ajvInvalid = !validate(data);
        const ajvErrors = ajvInvalid ? formatAjvErrors(file, text, validate.errors) : "  (none)";
        const cppSchema = cpp.problems.some((p) => p.kind === "schema");
        assert.equal(
          cppSchema,
          ajvInvalid,
          `DRIFT in ${rel(file)}: Ajv says ${ajvInvalid ? "invalid" : "valid"}, ` +
            `tollgate reports ${cppSchema ? "a" : "no"} "schema" problem.\n` +
            `Ajv errors:\n${ajvErrors}\ntollgate problems:\n${formatProblems(cpp.problems)}`,
        );
      });
    }

    for (const file of yamlFiles(EXAMPLES_DIR)) {
      await t.test(`example: ${rel(file)}`, () => {
        const cpp = runValidate(file);
        const detail = `${rel(file)}: exit ${cpp.status}, valid ${cpp.entry.valid}\n${formatProblems(cpp.problems)}\nstderr:\n${cpp.stderr}`;
        assert.equal(cpp.status, 0, `tollgate validate failed on an example: ${detail}`);
        assert.equal(cpp.entry.valid, true, `tollgate says an example is invalid: ${detail}`);
      });
    }
  },
);
