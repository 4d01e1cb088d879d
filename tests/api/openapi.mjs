// Checks answers of `tollgate serve` against schemas/openapi.yaml (OpenAPI 3.1, whose schemas are
// JSON Schema 2020-12) with ajv. The whole document is added to ajv once under SPEC_ID; each
// answer is validated against the schema at its JSON pointer, so `$ref`s resolve as written.
// Strict mode: a keyword ajv does not know in a schema (a typo such as `requried`) is an error
// when that schema is compiled, not an ignored annotation.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import YAML from "yaml";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const SPEC_FILE = path.join(ROOT, "schemas", "openapi.yaml");
const SPEC_ID = "https://tollgate.test/openapi.yaml";
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

export const spec = YAML.parse(fs.readFileSync(SPEC_FILE, "utf8"));

// verbose: each error carries the schema object it failed in (parentSchema), which locate() maps
// back to its place in the document.
const ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true, verbose: true });
addFormats(ajv);
// The OpenAPI document's own members are not schema keywords; only the schemas inside are compiled.
ajv.addVocabulary(Object.keys(spec).filter((k) => !k.startsWith("$")));
ajv.addSchema({ $id: SPEC_ID, ...spec });

// Every object of the document -> its JSON pointer ("components/schemas/Run/properties/id").
const locations = new Map();
(function walk(node, at) {
  if (!node || typeof node !== "object" || locations.has(node)) return;
  locations.set(node, at);
  for (const [k, v] of Object.entries(node)) walk(v, at ? `${at}/${k}` : k);
})(spec, "");
const locate = (e) => (locations.has(e.parentSchema) ? `${locations.get(e.parentSchema)}/${e.keyword}` : e.schemaPath);

const pointer = (parts) => "#/" + parts.map((p) => encodeURIComponent(String(p).replace(/~/g, "~0").replace(/\//g, "~1"))).join("/");

const validators = new Map();
// The compiled validator of the schema at `parts` (a JSON pointer as an array) in the document.
export function schemaAt(parts) {
  const ref = pointer(parts);
  let v = validators.get(ref);
  if (!v) {
    v = ajv.compile({ $ref: SPEC_ID + ref });
    validators.set(ref, v);
  }
  return v;
}

// Follows a `$ref` to #/components/... (responses, headers, parameters, request bodies).
export function deref(node) {
  while (node && typeof node.$ref === "string") {
    const parts = node.$ref.replace(/^#\//, "").split("/").map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
    node = parts.reduce((n, p) => n?.[p], spec);
  }
  return node;
}

const excerpt = (value, max = 600) => {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text === undefined ? String(value) : text.length > max ? text.slice(0, max) + "…" : text;
};

function valueAt(body, instancePath) {
  return instancePath
    .split("/")
    .slice(1)
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((v, p) => v?.[p], body);
}

function fail(what, lines) {
  throw new Error([what, ...lines].join("\n  "));
}

// Throws unless `value` is valid against the schema at `parts`; `what` names it in the message.
function check(parts, value, what) {
  const validate = schemaAt(parts);
  if (validate(value)) return;
  fail(
    `${what}: does not match ${parts.join(" ")}`,
    [
      ...validate.errors.slice(0, 8).map((e) => `at ${e.instancePath || "(root)"} (schema ${locate(e)}): ${e.message}` +
        (e.params?.additionalProperty ? ` '${e.params.additionalProperty}'` : e.params?.allowedValues ? ` ${JSON.stringify(e.params.allowedValues)}` : "") +
        (e.instancePath ? `; value: ${excerpt(valueAt(value, e.instancePath), 200)}` : "")),
      ...(validate.errors.length > 8 ? [`(${validate.errors.length - 8} more errors)`] : []),
      `got: ${excerpt(value)}`,
    ],
  );
}

// The header `name` of `headers` (a fetch Headers, or a plain object), or undefined.
function header(headers, name) {
  if (!headers) return undefined;
  if (typeof headers.get === "function") return headers.get(name) ?? undefined;
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name.toLowerCase());
  return key === undefined ? undefined : headers[key];
}

// Validates one answer against the description of the operation `method` `path` (`path` is the
// template as the spec writes it, e.g. "/api/v1/runs/{id}"): the status must be described for the
// operation, the media type (parameters such as charset ignored) must be one it lists, the body
// must match its schema, and the headers it marks required must be present and match theirs.
// A method the path does not take must be answered with components.responses.MethodNotAllowed,
// whose Allow header names exactly the methods the path does take; a path the spec does not have
// (`path` null) only with components.responses.NotFound.
// `body` is the text of the answer or its parsed JSON; `headers` is optional (then headers are
// not checked). Returns the parsed body. Throws an Error saying what does not match.
export function validateResponse({ method, path: template, status, contentType, body, headers }) {
  const what = `${method.toUpperCase()} ${template ?? "(no endpoint)"} -> ${status}`;
  const item = template === null ? null : spec.paths[template];
  if (item === undefined) fail(`${what}: the spec has no path ${template}`, [`paths: ${Object.keys(spec.paths).join(", ")}`]);
  const op = item?.[method.toLowerCase()];
  let response;
  let parts;
  if (!item) {
    if (status !== 404) fail(`${what}: a path that is no endpoint must be answered with 404`, [`body: ${excerpt(body)}`]);
    response = spec.components.responses.NotFound;
    parts = ["components", "responses", "NotFound"];
  } else if (op) {
    response = op.responses[String(status)];
    if (!response) fail(`${what}: status ${status} is not described for this operation`, [`described: ${Object.keys(op.responses).join(", ")}`, `body: ${excerpt(body)}`]);
    parts = ["paths", template, method.toLowerCase(), "responses", String(status)];
  } else {
    if (status !== 405) fail(`${what}: the path takes no ${method.toUpperCase()}, so the answer must be 405`, [`body: ${excerpt(body)}`]);
    response = spec.components.responses.MethodNotAllowed;
    parts = ["components", "responses", "MethodNotAllowed"];
    if (headers) {
      const allow = (header(headers, "allow") ?? "").split(",").map((m) => m.trim()).filter(Boolean).sort();
      const takes = METHODS.filter((m) => item[m]).map((m) => m.toUpperCase()).sort();
      if (allow.join() !== takes.join()) fail(`${what}: Allow must name the methods the path takes`, [`expected: ${takes.join(", ")}`, `got: ${header(headers, "allow")}`]);
    }
  }
  if (response.$ref) parts = response.$ref.replace(/^#\//, "").split("/");
  response = deref(response);

  for (const [name, h] of Object.entries(response.headers ?? {})) {
    if (!headers) break;
    const def = deref(h);
    const value = header(headers, name);
    if (value === undefined) {
      if (def.required) fail(`${what}: the header ${name} is required`, [`body: ${excerpt(body)}`]);
      continue;
    }
    const headerParts = h.$ref ? h.$ref.replace(/^#\//, "").split("/") : [...parts, "headers", name];
    check([...headerParts, "schema"], value, `${what}: header ${name}`);
  }

  const content = response.content ?? {};
  const mediaType = (contentType ?? "").split(";")[0].trim().toLowerCase();
  if (!content[mediaType]) {
    fail(`${what}: content type '${contentType}' is not described`, [`described: ${Object.keys(content).join(", ")}`, `body: ${excerpt(body)}`]);
  }
  let value = body;
  if (mediaType === "application/json" && typeof body === "string") {
    try {
      value = JSON.parse(body);
    } catch (e) {
      fail(`${what}: the body is not JSON (${e.message})`, [`body: ${excerpt(body)}`]);
    }
  }
  check([...parts, "content", mediaType, "schema"], value, what);
  return value;
}

// The path template of the spec that `target` (a request target, query ignored) is an instance
// of, the one with the most literal characters when several match; null when none does.
export function templateOf(target) {
  const pathname = target.split("?")[0];
  let best = null;
  for (const template of Object.keys(spec.paths)) {
    const re = new RegExp("^" + template.replace(/[.]/g, "\\.").replace(/\{[^}]+\}/g, "[^/]+") + "$");
    if (re.test(pathname) && (!best || template.replace(/\{[^}]+\}/g, "").length > best.replace(/\{[^}]+\}/g, "").length)) best = template;
  }
  return best;
}

// Throws unless `value` matches components.schemas[name] (e.g. an event's AuditEntry).
export function validateSchema(name, value) {
  if (!spec.components.schemas[name]) throw new Error(`the spec has no schema ${name}`);
  check(["components", "schemas", name], value, `schema ${name}`);
  return value;
}

// Every operation of the spec as {method, path, op}.
export function operations() {
  return Object.entries(spec.paths).flatMap(([p, item]) => METHODS.filter((m) => item[m]).map((m) => ({ method: m, path: p, op: item[m] })));
}
