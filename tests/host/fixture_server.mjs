// A scripted GitLab- or Gitea-shaped API for the host client tests: answers from
// tests/fixtures/hosts/<flavor>/*.json (bodies written from each host's API documentation) and
// records every request so tests can check what the client sent.
//
//   node fixture_server.mjs --flavor gitlab|gitea --token SECRET
//
// Prints {"api_url": ..., "admin_url": ...} as its first stdout line; exits when stdin closes.
// API requests go to {api_url}/... (/api/v4 or /api/v1). Admin endpoints (no auth):
//   POST /_admin/routes    [{method, path, query?, status, fixture?, body?, text?, patch?, headers?, once?}]
//       `path` is the exact (still percent-encoded) path after the API prefix; `query` a subset of
//       query parameters that must match. The newest matching route wins; `once` routes are
//       used up by one request. Bodies: `fixture` (a file under tests/fixtures/hosts/), with
//       `patch` merged into the object (or into every element of an array); or `body` (JSON);
//       or `text` (sent as text/plain). "{api_url}" in header values is replaced.
//   GET  /_admin/requests  the API requests seen: {method, path, query, headers, body}; the
//       credential part of auth headers is replaced by "***" (the scheme is kept).
//   POST /_admin/forget    forget the requests seen so far.
//   POST /_admin/clear     forget routes and requests.
// Requests without the right token get the host's documented 401; unrouted ones its 404.
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.resolve(here, "../fixtures/hosts");

const args = process.argv.slice(2);
const arg = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
};
const flavor = arg("--flavor", "gitlab");
const token = arg("--token", "secret");
if (flavor !== "gitlab" && flavor !== "gitea") {
  console.error(`unknown flavor '${flavor}'`);
  process.exit(2);
}
const prefix = flavor === "gitlab" ? "/api/v4" : "/api/v1";

let routes = [];
let requests = [];
let apiUrl = "";

function readFixture(name) {
  return JSON.parse(fs.readFileSync(path.join(fixtures, name), "utf8"));
}

function authorized(headers) {
  const auth = headers["authorization"] || "";
  if (flavor === "gitlab") return headers["private-token"] === token || auth === `Bearer ${token}`;
  return auth === `token ${token}` || auth === `Bearer ${token}`;
}

function redact(headers) {
  const out = {};
  for (const [k, v] of Object.entries(headers)) {
    if (k === "authorization") out[k] = v.includes(" ") ? `${v.split(" ")[0]} ***` : "***";
    else if (k === "private-token") out[k] = "***";
    else out[k] = v;
  }
  return out;
}

function send(res, status, body, headers = {}) {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  const type = typeof body === "string" ? "text/plain; charset=utf-8" : "application/json";
  res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

// The bodies these hosts answer with when no route matches or the token is wrong (from the
// GitLab REST docs' "Status codes" section and Gitea's swagger APIError / APINotFound).
const notFound = () => (flavor === "gitlab" ? readFixture("gitlab/error_404.json") : readFixture("gitea/error_404.json"));
const unauthorized = () => (flavor === "gitlab" ? readFixture("gitlab/error_401.json") : readFixture("gitea/error_401.json"));

function answerFor(route) {
  let body;
  if (route.fixture) {
    body = readFixture(route.fixture);
    if (route.patch) body = Array.isArray(body) ? body.map((e) => ({ ...e, ...route.patch })) : { ...body, ...route.patch };
  } else if (route.text !== undefined) {
    body = String(route.text);
  } else if (route.body !== undefined) {
    body = route.body;
  } else {
    body = "";
  }
  const headers = {};
  for (const [k, v] of Object.entries(route.headers || {})) headers[k] = String(v).replaceAll("{api_url}", apiUrl);
  return { status: route.status || 200, body, headers };
}

function handleAdmin(req, res, url, raw) {
  if (req.method === "POST" && url.pathname === "/_admin/routes") {
    const list = JSON.parse(raw || "[]");
    for (const r of Array.isArray(list) ? list : [list]) {
      if (r.fixture) readFixture(r.fixture);  // fail early on a missing fixture
      routes.push({ ...r, method: (r.method || "GET").toUpperCase() });
    }
    return send(res, 200, { routes: routes.length });
  }
  if (req.method === "GET" && url.pathname === "/_admin/requests") return send(res, 200, requests);
  if (req.method === "POST" && url.pathname === "/_admin/forget") {
    requests = [];
    return send(res, 200, {});
  }
  if (req.method === "POST" && url.pathname === "/_admin/clear") {
    routes = [];
    requests = [];
    return send(res, 200, {});
  }
  return send(res, 404, { message: "unknown admin endpoint" });
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const raw = Buffer.concat(chunks).toString("utf8");
    const url = new URL(req.url, "http://127.0.0.1");
    try {
      if (url.pathname.startsWith("/_admin/")) return handleAdmin(req, res, url, raw);
      if (!url.pathname.startsWith(prefix + "/")) return send(res, 404, notFound());
      const apiPath = url.pathname.slice(prefix.length);
      const query = Object.fromEntries(url.searchParams.entries());
      let body = raw;
      if (raw && (req.headers["content-type"] || "").includes("json")) {
        try {
          body = JSON.parse(raw);
        } catch {
          body = raw;
        }
      }
      requests.push({ method: req.method, path: apiPath, query, headers: redact(req.headers), body });
      if (!authorized(req.headers)) return send(res, 401, unauthorized());
      for (let i = routes.length - 1; i >= 0; --i) {
        const r = routes[i];
        if (r.method !== req.method || r.path !== apiPath) continue;
        if (r.query && !Object.entries(r.query).every(([k, v]) => query[k] === String(v))) continue;
        if (r.once) routes.splice(i, 1);
        const a = answerFor(r);
        return send(res, a.status, a.body, a.headers);
      }
      return send(res, 404, notFound());
    } catch (e) {
      return send(res, 500, { message: String(e && e.message ? e.message : e) });
    }
  });
});

server.keepAliveTimeout = 5000;
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  apiUrl = `http://127.0.0.1:${port}${prefix}`;
  process.stdout.write(JSON.stringify({ api_url: apiUrl, admin_url: `http://127.0.0.1:${port}/_admin` }) + "\n");
});

process.stdin.on("end", () => process.exit(0));
process.stdin.on("close", () => process.exit(0));
process.stdin.resume();
process.on("SIGTERM", () => process.exit(0));
