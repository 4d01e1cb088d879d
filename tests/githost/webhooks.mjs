// Webhook payloads in GitHub's shapes and their signed delivery.
//
// Every payload starts as a real example from @octokit/webhooks-examples (api.github.com) and has
// its fields substituted from the host's state ("overlay"): a key of the example takes the host's
// value when the host has one, keeps the example's value otherwise, and keys the example lacks are
// dropped — so the shape stays the example's. Where the example has null or an empty array and
// the host has an object, the first non-null instance of that key in any example is the template.
// The only additions are documented at their call sites (issue.pull_request on a comment on a PR,
// the before/after of a synchronize).

import crypto from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import { sign } from "@octokit/webhooks-methods";

const require = createRequire(import.meta.url);

let examples;
let templates;

function loadExamples() {
  if (examples) return;
  const file = require.resolve("@octokit/webhooks-examples/api.github.com/index.json");
  examples = new Map();
  for (const e of JSON.parse(fs.readFileSync(file, "utf8"))) examples.set(e.name, e.examples);
  // Templates by key name: from examples of the same event first, then from any event.
  templates = new Map([["*", new Map()]]);
  const walk = (v, into) => {
    if (Array.isArray(v)) return v.forEach((x) => walk(x, into));
    if (!v || typeof v !== "object") return;
    for (const [k, x] of Object.entries(v)) {
      for (const m of into) {
        if (m.has(k)) continue;
        if (Array.isArray(x) && x.length && x[0] && typeof x[0] === "object") m.set(k, x[0]);
        else if (x && typeof x === "object" && !Array.isArray(x)) m.set(k, x);
      }
      walk(x, into);
    }
  };
  for (const [event, list] of examples) {
    templates.set(event, new Map());
    walk(list, [templates.get(event), templates.get("*")]);
  }
}

// The example of an event (and action) to build on: by default the richest one (most keys in
// all), since older examples lack fields that newer payloads and the schema have.
export function example(event, action, index) {
  loadExamples();
  const list = examples.get(event);
  if (!list) throw new Error(`no example for ${event}`);
  const candidates = list.filter((e) => e.action === action);
  const found = index !== undefined ? candidates[index] : candidates.reduce((a, b) => (countKeys(b) > countKeys(a) ? b : a), candidates[0]);
  if (!found) throw new Error(`no example for ${event}.${action}`);
  return structuredClone(found);
}

function countKeys(v) {
  if (Array.isArray(v)) return v.reduce((n, x) => n + countKeys(x), 0);
  if (!v || typeof v !== "object") return 0;
  return Object.entries(v).reduce((n, [, x]) => n + 1 + countKeys(x), 0);
}

const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

// Keys whose items no example shows, and the key whose examples have the same shape.
const ALIASES = { requested_teams: "team" };

function templateFor(key, actual, event) {
  const k = isObj(actual) && "login" in actual ? "sender" : ALIASES[key] ?? key;
  return templates.get(event)?.get(k) ?? templates.get("*").get(k);
}

export function overlay(tpl, actual, key, event = "*") {
  if (actual === undefined) return structuredClone(tpl);
  if (actual === null) return null;
  if (Array.isArray(actual)) {
    const itemTpl = Array.isArray(tpl) && tpl.length ? tpl[0] : templateFor(key, actual[0], event);
    return actual.map((a) => (isObj(a) && isObj(itemTpl) ? overlay(itemTpl, a, key, event) : a));
  }
  if (isObj(actual)) {
    const base = isObj(tpl) ? tpl : templateFor(key, actual, event);
    if (!isObj(base)) return actual;
    const out = {};
    for (const k of Object.keys(base)) out[k] = overlay(base[k], actual[k], k, event);
    return out;
  }
  return actual;
}

// Builds the payload for one event from its example and the host's REST-shaped objects.
// `index` picks among the examples of that event and action (some older ones lack fields the
// schema now requires).
export function buildPayload(event, action, fields, index) {
  const ex = example(event, action, index);
  const out = {};
  for (const k of Object.keys(ex)) {
    if (k === "installation" || k === "organization" || k === "enterprise") continue;
    out[k] = overlay(ex[k], fields[k], k, event);
  }
  if (fields.organization && ex.organization) out.organization = overlay(ex.organization, fields.organization, "organization", event);
  if (fields.installation) out.installation = { id: fields.installation.id, node_id: fields.installation.node_id };
  return out;
}

export class Deliverer {
  constructor() {
    this.url = null;
    this.secret = null;
    this.hookId = 1;
    this.events = null; // null: all
    this.deliveries = [];
    this.queue = Promise.resolve();
    this.seq = 0;
    this.timeoutMs = 10_000;
  }

  configure({ url = null, secret = null, events = null, timeout_ms }) {
    this.url = url;
    this.secret = secret;
    this.events = events;
    this.hookId += 1;
    if (timeout_ms) this.timeoutMs = timeout_ms;
  }

  // Queues one delivery; deliveries go out one at a time, in order. Without a URL the payload is
  // still recorded (status_code null), so tests can inspect what would have been sent.
  send(event, payload, guid = crypto.randomUUID()) {
    if (this.events && !this.events.includes(event) && !this.events.includes("*")) return null;
    const d = {
      id: ++this.seq,
      guid,
      event,
      action: payload.action ?? null,
      url: this.url,
      hook_id: this.hookId,
      status_code: null,
      error: null,
      duration_ms: null,
      delivered_at: null,
      request_headers: null,
      payload,
      pending: true,
    };
    this.deliveries.push(d);
    const secret = this.secret;
    const url = this.url;
    this.queue = this.queue.then(async () => {
      const body = JSON.stringify(payload);
      const headers = {
        "content-type": "application/json",
        "user-agent": "GitHub-Hookshot/githost",
        "x-github-event": event,
        "x-github-delivery": guid,
        "x-github-hook-id": String(d.hook_id),
        "x-github-hook-installation-target-type": "repository",
        "x-github-hook-installation-target-id": String(payload.repository?.id ?? 0),
      };
      if (secret) {
        headers["x-hub-signature-256"] = await sign(secret, body);
        headers["x-hub-signature"] = "sha1=" + crypto.createHmac("sha1", secret).update(body).digest("hex");
      }
      d.request_headers = headers;
      if (!url) {
        d.pending = false;
        return;
      }
      const t0 = performance.now();
      try {
        const res = await fetch(url, { method: "POST", headers, body, signal: AbortSignal.timeout(this.timeoutMs) });
        d.status_code = res.status;
        d.response_body = (await res.text()).slice(0, 2000);
      } catch (e) {
        d.error = String(e.cause?.code ?? e.name ?? e.message);
      }
      d.duration_ms = Math.round(performance.now() - t0);
      d.delivered_at = new Date().toISOString();
      d.pending = false;
    });
    return d;
  }

  redeliver(id) {
    const d = this.deliveries.find((x) => x.id === id);
    if (!d) return null;
    return this.send(d.event, d.payload, d.guid);
  }

  idle() {
    return this.queue;
  }
}
