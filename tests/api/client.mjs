// A client for the API tests: every answer's status is checked against the one expected, then the
// answer is validated against schemas/openapi.yaml (tests/api/openapi.mjs); and a reader of the
// server-sent event stream.
import assert from "node:assert/strict";

import { templateOf, validateResponse, validateSchema } from "./openapi.mjs";

// `base`: http://127.0.0.1:PORT. `tokens`: {read, operator}, the defaults of get() and post().
export function client(base, tokens = {}) {
  // Sends one request. `token`: a bearer token, or null for none; `authorization`: the whole
  // header instead; `body`: an object (sent as JSON) or a string (sent as is); `expect`: the status.
  // Returns {status, body (parsed), text, headers}.
  async function send(method, target, { token, authorization, body, headers = {}, expect } = {}) {
    const h = { ...headers };
    if (authorization !== undefined) h.authorization = authorization;
    else if (token) h.authorization = `Bearer ${token}`;
    if (body !== undefined) h["content-type"] = "application/json";
    const res = await fetch(base + target, {
      method,
      headers: h,
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000), // an answer that never ends (a stream where none belongs) fails the test
    });
    const text = await res.text();
    if (expect !== undefined) assert.equal(res.status, expect, `${method} ${target}: expected ${expect}, got ${res.status}: ${text.slice(0, 500)}`);
    const parsed = validateResponse({ method, path: templateOf(target), status: res.status, contentType: res.headers.get("content-type"), body: text, headers: res.headers });
    return { status: res.status, body: parsed, text, headers: res.headers };
  }
  return {
    send,
    get: (target, options = {}) => send("GET", target, { token: tokens.read, ...options }),
    post: (target, options = {}) => send("POST", target, { token: tokens.operator, ...options }),
  };
}

// Opens GET /api/v1/events. Resolves with {status, headers, next(ms, {comments}), close()} once the
// answer's head arrived: next() resolves with the next event as {id, event, data (parsed and
// validated as an AuditEntry)}, or with {comment, retry?} for a block without data (comment lines,
// a `retry:` field) when `comments` is set (they are skipped otherwise), and rejects when none
// comes within `ms`. For an answer that is not the stream, {status, body} after validating it
// against the spec.
export async function openEvents(base, { token, lastEventId } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (lastEventId !== undefined) headers["last-event-id"] = String(lastEventId);
  const controller = new AbortController();
  const res = await fetch(base + "/api/v1/events", { headers, signal: controller.signal });
  const contentType = res.headers.get("content-type");
  if (res.status !== 200) {
    const text = await res.text();
    return { status: res.status, body: validateResponse({ method: "GET", path: "/api/v1/events", status: res.status, contentType, body: text, headers: res.headers }) };
  }
  validateResponse({ method: "GET", path: "/api/v1/events", status: 200, contentType, body: "", headers: res.headers });
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let pending = null; // a read still under way after a timed-out next(): the next call takes it over

  // One block of lines -> {id, event, data}, or {comment, retry?} when it has no data.
  function parse(block) {
    const fields = { data: [] };
    const comments = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) comments.push(line.slice(1).trim());
      if (line === "" || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const name = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (name === "data") fields.data.push(value);
      else fields[name] = value;
    }
    if (fields.data.length === 0) return { comment: comments.join("\n"), ...(fields.retry !== undefined && { retry: fields.retry }) };
    const text = fields.data.join("\n");
    let data;
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new Error(`event ${fields.id}: data is not JSON (${e.message}): ${text.slice(0, 300)}`);
    }
    validateSchema("AuditEntry", data);
    return { id: fields.id, event: fields.event, data };
  }

  async function next(ms = 15_000, { comments = false } = {}) {
    const deadline = Date.now() + ms;
    for (;;) {
      const end = buffer.indexOf("\n\n");
      if (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = parse(block);
        if (!("comment" in event) || comments) return event;
        continue;
      }
      pending ??= reader.read();
      let timer;
      const timeout = new Promise((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now()), "timeout")));
      const result = await Promise.race([pending, timeout]);
      clearTimeout(timer);
      if (result === "timeout") throw new Error(`no event within ${ms} ms`);
      pending = null;
      if (result.done) throw new Error("the event stream ended");
      // Line ends may be \r\n, \r or \n; a \r at the end of a chunk waits for the next one.
      buffer = (buffer + decoder.decode(result.value, { stream: true })).replace(/\r\n/g, "\n").replace(/\r(?!$)/g, "\n");
    }
  }

  return {
    status: 200,
    headers: res.headers,
    next,
    close() {
      controller.abort();
      reader.cancel().catch(() => {});
    },
  };
}
