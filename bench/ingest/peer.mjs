// The "peer" of bench/ingest: what people write by hand instead of a service like tollgate. A
// plain node:http server with @octokit/webhooks@14: verify the signature and parse the JSON
// (webhooks.verifyAndReceive), answer 202. No storage, no logging.
//
// Usage: node bench/ingest/peer.mjs [PORT]   (secret in env WEBHOOK_SECRET or --secret-file F)
// Prints "listening 127.0.0.1:PORT" once it accepts connections. Listens on 127.0.0.1 only.
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { Webhooks } from "@octokit/webhooks";

const args = process.argv.slice(2);
let port = 0;
let secret = process.env.WEBHOOK_SECRET ?? "";
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--secret-file") secret = readFileSync(args[++i], "utf8").split("\n")[0].trim();
  else if (args[i] === "--secret") secret = args[++i];
  else port = Number(args[i]);
}
if (!secret) {
  console.error("peer.mjs: give the secret with --secret-file F, --secret S or WEBHOOK_SECRET");
  process.exit(2);
}

const webhooks = new Webhooks({ secret });
let received = 0;
webhooks.on("pull_request.closed", ({ payload }) => {
  if (payload.pull_request.merged) received++; // touch the parsed payload; no other work
});

function answer(res, status, body) {
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

const server = createServer((req, res) => {
  if (req.method !== "POST") return answer(res, 405, '{"error":"use POST"}\n');
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    const id = req.headers["x-github-delivery"];
    const name = req.headers["x-github-event"];
    const signature = req.headers["x-hub-signature-256"];
    if (!id || !name || !signature) return answer(res, 400, '{"error":"missing webhook headers"}\n');
    try {
      await webhooks.verifyAndReceive({ id, name, payload: Buffer.concat(chunks).toString("utf8"), signature });
      answer(res, 202, '{"status":"accepted"}\n');
    } catch (err) {
      const status = err?.status ?? [...(err?.errors ?? [])][0]?.status ?? 500;
      answer(res, status, JSON.stringify({ error: String(err?.message ?? err) }) + "\n");
    }
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, "127.0.0.1", () => {
  console.log(`listening 127.0.0.1:${server.address().port}`);
});
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
