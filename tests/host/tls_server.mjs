// A tiny HTTPS server and an HTTP CONNECT proxy for the HTTP client's tests (tests/host).
//
//   node tests/host/tls_server.mjs CERT.pem KEY.pem APP_PUBLIC_KEY.pem
//
// Prints {"https_port":N,"proxy_port":M,"pid":P} when ready. HTTPS routes:
//   GET  /hello                                  -> 200 "hello over tls"
//   POST /app/installations/{id}/access_tokens   -> 201 {token, expires_at} when the bearer JWT
//        is RS256-signed by the app key, has iss, iat <= now, exp - iat <= 11 min; else 401
//   GET  /stats                                  -> {token_requests, proxy_connects, last_jwt}
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";

const [certFile, keyFile, appKeyFile] = process.argv.slice(2);
const appKey = crypto.createPublicKey(fs.readFileSync(appKeyFile));
const stats = { token_requests: 0, proxy_connects: 0, last_jwt: null };

function b64url(s) {
  return Buffer.from(s.replace(/-/g, "+").replace(/_/g, "/"), "base64");
}

function checkJwt(auth) {
  const m = /^Bearer (.+)$/.exec(auth ?? "");
  if (!m) return "no bearer token";
  const parts = m[1].split(".");
  if (parts.length !== 3) return "not a jwt";
  const header = JSON.parse(b64url(parts[0]).toString());
  const payload = JSON.parse(b64url(parts[1]).toString());
  if (header.alg !== "RS256") return "alg " + header.alg;
  const ok = crypto.verify("RSA-SHA256", Buffer.from(parts[0] + "." + parts[1]), appKey, b64url(parts[2]));
  if (!ok) return "bad signature";
  const now = Math.floor(Date.now() / 1000);
  if (!payload.iss) return "no iss";
  if (payload.iat > now) return "iat in the future";
  if (payload.exp - payload.iat > 660) return "exp too far";
  stats.last_jwt = { header, payload };
  return null;
}

const server = https.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) }, (req, res) => {
  const chunks = [];
  req.on("data", (d) => chunks.push(d));
  req.on("end", () => {
    const send = (status, body) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.method === "GET" && req.url === "/hello") {
      res.writeHead(200, { "content-type": "text/plain" });
      return res.end("hello over tls");
    }
    if (req.method === "GET" && req.url === "/stats") return send(200, stats);
    const t = /^\/app\/installations\/(\d+)\/access_tokens$/.exec(req.url);
    if (req.method === "POST" && t) {
      stats.token_requests++;
      const why = checkJwt(req.headers.authorization);
      if (why) return send(401, { message: "A JSON web token could not be decoded", why });
      const expires = new Date(Date.now() + 3600 * 1000).toISOString().replace(/\.\d+Z$/, "Z");
      return send(201, { token: `ghs_installation_${t[1]}_${stats.token_requests}`, expires_at: expires, permissions: { pull_requests: "write" } });
    }
    send(404, { message: "Not Found" });
  });
});

// CONNECT proxy: tunnels to 127.0.0.1 / localhost only.
const proxy = http.createServer((req, res) => {
  res.writeHead(405);
  res.end();
});
proxy.on("connect", (req, socket, head) => {
  stats.proxy_connects++;
  const [host, port] = req.url.split(":");
  if (host !== "localhost" && host !== "127.0.0.1") {
    socket.end("HTTP/1.1 403 Forbidden\r\n\r\n");
    return;
  }
  const upstream = net.connect(Number(port), "127.0.0.1", () => {
    socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    if (head.length) upstream.write(head);
    upstream.pipe(socket);
    socket.pipe(upstream);
  });
  upstream.on("error", () => socket.destroy());
  socket.on("error", () => upstream.destroy());
});

// Short, so a test can see the client resend a request on a connection the server closed.
server.keepAliveTimeout = 500;
await new Promise((r) => server.listen(0, "127.0.0.1", r));
await new Promise((r) => proxy.listen(0, "127.0.0.1", r));
process.stdout.write(JSON.stringify({ https_port: server.address().port, proxy_port: proxy.address().port, pid: process.pid }) + "\n");
const stop = () => process.exit(0);
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.resume();
