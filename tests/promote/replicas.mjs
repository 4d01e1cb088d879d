// Several `tollgate serve` replicas on one database, as docs/engine.md ("Several replicas on
// PostgreSQL") runs them, for the tests and benchmarks that need them (bench/chaos/chaos.mjs,
// bench/promote/promote.mjs): each replica has its own directory, tollgate.yaml and data_dir (git
// mirrors are per replica), all naming the same `database`, and is started with a stable
// TOLLGATE_REPLICA name (r1, r2, ...); webhooks reach them through a round-robin forwarder
// (startForwarder), as a load balancer would spread them.
import http from "node:http";
import path from "node:path";

import { databaseOf, startTollgate, tempDir, writeConfig } from "./world.mjs";

// `count` replica directories with their configs (writeConfig: apiUrl, token, engine, database),
// none started yet. Returns {replicas: [{name, dir, server}], started, db, up(), livePids(),
// start(replica, opts)}: `server` is the replica's current process (null before its first start),
// `started` every process ever started, in order ({replica, server}: their logs diagnose a failure),
// `db` what sql() takes, `up()` the replicas whose process runs. start() passes `opts` to
// startTollgate (threads, env) with TOLLGATE_REPLICA set.
export function replicaSet(t, { count, apiUrl, token, engine, database, prefix }) {
  const replicas = Array.from({ length: count }, (_, i) => {
    const dir = tempDir(t, prefix);
    writeConfig(dir, { apiUrl, token, engine, database });
    return { name: `r${i + 1}`, dir, server: null };
  });
  const started = [];
  const up = () => replicas.filter((r) => r.server?.running());
  return {
    replicas,
    started,
    db: databaseOf(path.join(replicas[0].dir, "tollgate.yaml")),
    up,
    livePids: () => new Set(up().map((r) => r.server.pid)),
    async start(replica, opts = {}) {
      replica.server = await startTollgate(t, replica.dir, { ...opts, env: { ...opts.env, TOLLGATE_REPLICA: replica.name } });
      started.push({ replica: replica.name, server: replica.server });
      return replica.server;
    },
  };
}

// A job lease's owner is "<replica or host name>:<pid>:<worker>".
export const ownerPid = (owner) => Number(String(owner).split(":")[1]);
export const ownerReplica = (owner) => String(owner).split(":")[0];

// The host's webhook URL: a round-robin HTTP forwarder (127.0.0.1, an ephemeral port) in front of
// the replicas that are up, as a load balancer would be. The test host, like GitHub, does not
// retry a delivery, so the forwarder does what a load balancer does: when a replica refuses the
// connection, or drops it before answering (it was killed), it tries the next one; 502 when none
// answers (that delivery is then redelivered: bench/chaos/chaos.mjs, redeliverFailed). Trying the
// next replica after one died mid-request can send a delivery twice; tollgate stores it once (its
// delivery id). `targets()`: the replicas up, [{name, port}]. Returns {url, stats}: deliveries
// answered per replica, attempts that failed over to the next one, deliveries no replica answered.
export async function startForwarder(t, targets) {
  const stats = { answered_by: {}, failed_attempts: 0, unavailable: 0 };
  let turn = 0;
  const server = http.createServer(async (req, res) => {
    res.on("error", () => {}); // the host gave up on the delivery (its timeout)
    const chunks = [];
    try {
      for await (const c of req) chunks.push(c);
    } catch {
      return; // the host gave up before sending the whole
    }
    const body = Buffer.concat(chunks);
    const up = targets();
    const first = turn++;
    for (let i = 0; i < up.length; i++) {
      const target = up[(first + i) % up.length];
      const answer = await forward(target.port, req, body).catch(() => null);
      if (!answer) {
        stats.failed_attempts += 1;
        continue;
      }
      stats.answered_by[target.name] = (stats.answered_by[target.name] ?? 0) + 1;
      res.writeHead(answer.status, { "content-type": answer.type ?? "application/json" });
      res.end(answer.body);
      return;
    }
    stats.unavailable += 1;
    res.writeHead(502, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: "no tollgate replica answered" }));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    server.closeAllConnections(); // one waiting for a replica that hangs would keep close() waiting
    return new Promise((resolve) => server.close(resolve));
  });
  return { url: `http://127.0.0.1:${server.address().port}/hooks/github`, stats };
}

// One request to a replica: resolves with its answer, rejects when it fails before answering
// (refused, reset, no answer within 5 s: the host waits 10 s for the whole).
function forward(port, req, body) {
  return new Promise((resolve, reject) => {
    const headers = { ...req.headers, host: `127.0.0.1:${port}`, "content-length": body.length };
    delete headers["transfer-encoding"];
    delete headers.connection;
    const out = http.request({ host: "127.0.0.1", port, method: req.method, path: req.url, headers, agent: false, timeout: 5_000 }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, type: res.headers["content-type"], body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    out.on("timeout", () => out.destroy(new Error("no answer within 5 s")));
    out.on("error", reject);
    out.end(body);
  });
}
