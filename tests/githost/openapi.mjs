// Validates REST responses against GitHub's published description of its API,
// @octokit/openapi@23.0.2 generated/api.github.com.json (OpenAPI 3.0.3), and webhook payloads
// against @octokit/webhooks-schemas (JSON Schema draft-07), with ajv.
//
// OpenAPI 3.0 is not JSON Schema, so the spec's schemas are translated first, as OpenAPI 3.0.3
// defines them:
// - `nullable: true` means the value may also be null: {anyOf: [schema, {type: "null"}]}
//   (OpenAPI 3.1 writes the same thing as type: [..., "null"]);
// - `discriminator` (with oneOf) picks the branch named by a property: kept as anyOf plus, for
//   each mapping entry, "if the property has this value then that schema";
// - `$ref`s to #/components/... point into the one translated document;
// - formats the spec uses that ajv-formats does not know (int64, repo.nwo, ...) are accepted.

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import Ajv from "ajv";
import addFormats from "ajv-formats";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const require = createRequire(import.meta.url);

const SPEC_FILE = require.resolve("@octokit/openapi/generated/api.github.com.json", { paths: [ROOT] });
const WEBHOOK_SCHEMA_FILE = require.resolve("@octokit/webhooks-schemas/schema.json", { paths: [ROOT] });
export const SPEC_ID = "https://githost.test/api.github.com.json";

// OpenAPI 3.0 -> JSON Schema (also used by tests/host/contract.mjs for request bodies).
export function translate(node) {
  if (Array.isArray(node)) return node.map(translate);
  if (!node || typeof node !== "object") return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === "nullable" || k === "discriminator" || k === "example" || k === "examples" || k.startsWith("x-")) continue;
    if (k === "$ref" && typeof v === "string" && v.startsWith("#/")) out.$ref = SPEC_ID + v;
    else if (k === "properties" || k === "patternProperties") {
      out[k] = Object.fromEntries(Object.entries(v).map(([p, s]) => [p, translate(s)]));
    } else out[k] = translate(v);
  }
  if (node.discriminator && node.oneOf) {
    out.anyOf = out.oneOf;
    delete out.oneOf;
    const prop = node.discriminator.propertyName;
    const mapping = node.discriminator.mapping ?? {};
    const conds = Object.entries(mapping).map(([value, ref]) => ({
      if: { type: "object", properties: { [prop]: { const: value } }, required: [prop] },
      then: { $ref: SPEC_ID + ref },
    }));
    if (conds.length) out.allOf = [...(out.allOf ?? []), ...conds];
  }
  if (node.nullable === true) {
    // A $ref sibling would be ignored by draft-07 rules; wrap the whole translated schema.
    return { anyOf: [out, { type: "null" }] };
  }
  return out;
}

function collectFormats(node, set) {
  if (Array.isArray(node)) node.forEach((n) => collectFormats(n, set));
  else if (node && typeof node === "object") {
    if (typeof node.format === "string") set.add(node.format);
    for (const v of Object.values(node)) collectFormats(v, set);
  }
  return set;
}

export class RestSchemas {
  constructor() {
    this.spec = JSON.parse(fs.readFileSync(SPEC_FILE, "utf8"));
    this.ajv = new Ajv({ strict: false, allErrors: false, validateFormats: true });
    addFormats(this.ajv);
    for (const f of collectFormats(this.spec.components.schemas, new Set())) {
      if (!this.ajv.formats[f]) this.ajv.addFormat(f, true);
    }
    this.ajv.addSchema({ $id: SPEC_ID, components: { schemas: translate(this.spec.components.schemas) } });
    this.cache = new Map();
    this.templates = Object.keys(this.spec.paths).map((p) => ({
      template: p,
      re: new RegExp("^" + p.replace(/[.]/g, "\\.").replace(/\{path\}/g, "(.+)").replace(/\{[^}]+\}/g, "([^/]+)") + "$"),
      literal: p.replace(/\{[^}]+\}/g, "").length,
    }));
    // Prefer the most literal template (e.g. /pulls/{n}/merge over /pulls/{n}/{x}).
    this.templates.sort((a, b) => b.literal - a.literal);
  }

  // The spec's path template for a concrete path and method.
  template(method, pathname) {
    const m = method.toLowerCase();
    for (const t of this.templates) if (t.re.test(pathname) && this.spec.paths[t.template][m]) return t.template;
    return null;
  }

  operation(method, template) {
    return this.spec.paths[template]?.[method.toLowerCase()] ?? null;
  }

  response(method, template, status) {
    const op = this.operation(method, template);
    if (!op) return null;
    let r = op.responses[String(status)];
    while (r?.$ref) r = r.$ref.split("/").slice(1).reduce((o, k) => o[k], this.spec);
    return r ?? null;
  }

  // { documented, validate(body) -> errors|null }
  validator(method, template, status, contentType = "application/json") {
    const key = `${method} ${template} ${status} ${contentType}`;
    if (this.cache.has(key)) return this.cache.get(key);
    const r = this.response(method, template, status);
    let schema = r?.content?.[contentType]?.schema ?? (r?.content ? Object.values(r.content)[0]?.schema : undefined);
    const documented = !!r;
    if (!r && status >= 400) schema = { $ref: "#/components/schemas/basic-error" };
    let fn = null;
    if (schema) fn = this.ajv.compile(translate(schema));
    const v = {
      documented,
      hasBody: !!schema,
      validate(body) {
        if (!fn) return null;
        return fn(body) ? null : fn.errors;
      },
    };
    this.cache.set(key, v);
    return v;
  }
}

export class WebhookSchemas {
  constructor() {
    const schema = JSON.parse(fs.readFileSync(WEBHOOK_SCHEMA_FILE, "utf8"));
    this.ajv = new Ajv({ strict: false, allErrors: false });
    addFormats(this.ajv);
    this.ajv.addSchema({ ...schema, $id: "https://githost.test/webhooks.json" });
    this.definitions = schema.definitions;
    this.cache = new Map();
  }

  // Validates a payload as `${event}$${action}` (`${event}$event` for action-less events) and as
  // a member of the package's top-level oneOf.
  validate(event, payload) {
    const name = payload.action !== undefined ? `${event}$${payload.action}` : `${event}$event`;
    if (!this.definitions[name]) return [{ message: `no schema definition ${name}` }];
    for (const ref of [`#/definitions/${name}`, "#"]) {
      const key = ref === "#" ? "#" : name;
      let fn = this.cache.get(key);
      if (!fn) {
        fn = this.ajv.compile({ $ref: `https://githost.test/webhooks.json${ref}` });
        this.cache.set(key, fn);
      }
      if (!fn(payload)) return fn.errors;
    }
    return null;
  }
}
