// The deployment artifacts of deploy/ (issue 7, "Deployment artifacts"):
//
// - every Kubernetes manifest under deploy/kubernetes validates against the Kubernetes API schema
//   (kubernetes-models, exact version in package.json), has no field the API does not know (as
//   `kubectl apply --validate=strict` would refuse), reads the same as YAML 1.1 and 1.2, and its
//   references hold: probes on /healthz and /readyz at the container's port, Services, budgets and
//   selectors matching the pods, ConfigMaps present, Secrets documented in secret.example.yaml,
//   the secret files tollgate.yaml names mounted, non-root and read-only; the tollgate.yaml of each
//   ConfigMap loads with the real binary (TOLLGATE_BIN), which then answers the probes;
// - deploy/container/Dockerfile: its runtime packages are exactly those of the libraries the
//   binary links, its build packages come from deploy/install-deps.sh, its user, port and config
//   path are the manifests';
// - deploy/systemd/tollgate.service passes `systemd-analyze verify` without a single diagnostic;
// - deploy/github-app-manifest.json asks for the events webhooks/github.cpp normalises and the
//   permissions of the REST calls in service/host/github_host.cpp, and equals the README's copy.
//
//   TOLLGATE_BIN=$PWD/build/service/tollgate node --test tests/deploy/
//
// Each check is a function returning a list of problems, so the negative tests at the end can show
// that a broken artifact is rejected.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

import YAML from "yaml";
import { POSTGRES, testDatabase } from "../promote/world.mjs";
import { ConfigMap, Secret, Service, ServiceAccount } from "kubernetes-models/v1";
import { Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const DEPLOY = path.join(ROOT, "deploy");
const K8S = path.join(DEPLOY, "kubernetes");
const BIN = process.env.TOLLGATE_BIN;
const NO_BIN = BIN ? false : "TOLLGATE_BIN is not set: point it at a built tollgate binary";

const read = (...p) => fs.readFileSync(path.join(ROOT, ...p), "utf8");
const which = (cmd) => {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
};

// ---------------------------------------------------------------------------------------------
// Kubernetes: schema validation

const MODELS = {
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "v1/ServiceAccount": ServiceAccount,
  "apps/v1/Deployment": Deployment,
  "apps/v1/StatefulSet": StatefulSet,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
};
// The model's TypeScript declaration lists every field the API knows (the generated JSON schemas
// allow unknown ones, as the API server does unless asked to be strict).
const DTS = {
  "v1/ConfigMap": "kubernetes-models/v1/ConfigMap",
  "v1/Secret": "kubernetes-models/v1/Secret",
  "v1/Service": "kubernetes-models/v1/Service",
  "v1/ServiceAccount": "kubernetes-models/v1/ServiceAccount",
  "apps/v1/Deployment": "kubernetes-models/apps/v1/Deployment",
  "apps/v1/StatefulSet": "kubernetes-models/apps/v1/StatefulSet",
  "policy/v1/PodDisruptionBudget": "kubernetes-models/policy/v1/PodDisruptionBudget",
};
const typeKey = (obj) => `${obj?.apiVersion}/${obj?.kind}`;

function schemaProblems(obj, where) {
  const Model = MODELS[typeKey(obj)];
  if (!Model) return [`${where}: ${typeKey(obj)} is not a kind these manifests are checked for`];
  try {
    new Model(obj).validate();
  } catch (e) {
    const details = (e.errors ?? []).map((x) => `${x.instancePath} ${x.message ?? x.keyword}`);
    return [`${where}: ${obj.kind} fails the Kubernetes schema: ${details.join("; ") || e.message}`];
  }
  const out = [];
  unknownFields(obj, dtsFile(DTS[typeKey(obj)]), `${where}: ${obj.kind}`, out);
  return out;
}

const dtsFile = (specifier, from) =>
  specifier.startsWith(".")
    ? path.resolve(path.dirname(from), specifier.replace(/\.js$/, "") + ".d.ts")
    : fileURLToPath(import.meta.resolve(specifier)).replace(/\.js$/, ".d.ts");

// A declaration file's interface as {props: Map(name -> type)}; a type is {ref} (an imported
// interface), {fields} (an inline object), {map: true} ({ [key: string]: ... }) or {} (a scalar),
// with array: true for Array<...>. Properties sit one per line, 4 spaces deeper per nesting level.
const interfaces = new Map();
function readInterface(file) {
  if (interfaces.has(file)) return interfaces.get(file);
  const text = fs.readFileSync(file, "utf8");
  const imports = new Map();
  for (const m of text.matchAll(/import \{([^}]+)\} from "([^"]+)";/g)) {
    for (const name of m[1].split(",")) imports.set(name.trim(), m[2]);
  }
  const lines = text.split("\n");
  const first = lines.findIndex((l) => /^export interface \w+(?: extends [\w, ]+)? \{$/.test(l));
  let result = null; // a type alias (IntOrString, Quantity, ...): a scalar
  if (first >= 0) {
    const parse = (i, indent) => {
      const props = new Map();
      let map = false;
      const pad = " ".repeat(indent);
      for (; i < lines.length; i++) {
        const line = lines[i];
        if (line.startsWith(" ".repeat(indent - 4) + "}")) break;
        if (line.startsWith(pad + "[key: string]")) map = true;
        const m = line.match(new RegExp(`^${pad}"([^"]+)"\\??: (.*?);?$`));
        if (!m) continue;
        const inline = m[2].match(/^(Array<)?\{$/);
        if (inline) {
          const sub = parse(i + 1, indent + 4);
          props.set(m[1], sub.map ? { map: true } : { fields: sub.props, array: !!inline[1] });
          i = sub.end;
          continue;
        }
        const ref = m[2].match(/^(Array<)?(\w+)>?$/);
        const from = ref && imports.get(ref[2]);
        props.set(m[1], from ? { ref: dtsFile(from, file), array: !!ref[1] } : {});
      }
      return { props, map, end: i };
    };
    result = { props: parse(first + 1, 4).props };
  }
  interfaces.set(file, result);
  return result;
}

function unknownFields(value, fileOrProps, at, out) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return;
  const props = typeof fileOrProps === "string" ? readInterface(fileOrProps)?.props : fileOrProps;
  if (!props) return;
  for (const [key, v] of Object.entries(value)) {
    const type = props.get(key);
    if (type === undefined) {
      out.push(`${at}.${key}: unknown field`);
      continue;
    }
    const inner = type.ref ?? type.fields;
    if (!inner) continue;
    if (type.array && Array.isArray(v)) v.forEach((item, i) => unknownFields(item, inner, `${at}.${key}[${i}]`, out));
    else if (!type.array) unknownFields(v, inner, `${at}.${key}`, out);
  }
}

// Every document of a file, as YAML 1.2 (the yaml package) and as YAML 1.1 (kubectl's parser):
// both readings must agree (0440 is 288 to kubectl but 440 to YAML 1.2; `on` is true to 1.1).
function readManifests(file) {
  const text = fs.readFileSync(file, "utf8");
  const docs = YAML.parseAllDocuments(text);
  const old = YAML.parseAllDocuments(text, { version: "1.1" });
  const problems = [];
  for (const d of [...docs, ...old]) for (const e of d.errors) problems.push(`${file}: ${e.message}`);
  const objs = docs.map((d) => d.toJS()).filter((o) => o !== null);
  const objs11 = old.map((d) => d.toJS()).filter((o) => o !== null);
  if (problems.length === 0 && JSON.stringify(objs) !== JSON.stringify(objs11)) {
    problems.push(`${file}: reads differently as YAML 1.1 (kubectl) and YAML 1.2`);
  }
  return { objs, problems };
}

// ---------------------------------------------------------------------------------------------
// Kubernetes: references between the manifests of one directory

const DOCKERFILE = read("deploy", "container", "Dockerfile");
const dockerUser = () => DOCKERFILE.match(/^USER (\d+):(\d+)$/m)?.slice(1).map(Number);
const dockerPort = () => Number(DOCKERFILE.match(/^EXPOSE (\d+)$/m)?.[1]);
const dockerConfigPath = () => JSON.parse(DOCKERFILE.match(/^ENTRYPOINT (\[.*\])$/m)[1]).at(-1);

function durationSeconds(s) {
  const m = String(s).match(/^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/);
  return m ? (Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0)) : NaN;
}
const matches = (labels, selector) =>
  Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v) && Object.keys(selector ?? {}).length > 0;

// The problems of one directory's resources (what kustomization.yaml applies) given the Secrets
// documented in its secret.example.yaml. `setup` is "sqlite" or "postgres".
function crossProblems(setup, resources, documentedSecrets) {
  const p = [];
  const byKind = (kind) => resources.filter((r) => r.kind === kind);
  const workloads = resources.filter((r) => r.kind === "Deployment" || r.kind === "StatefulSet");
  if (workloads.length !== 1) return [`expected one Deployment or StatefulSet, found ${workloads.length}`];
  const w = workloads[0];
  const spec = w.spec ?? {};
  const pod = spec.template?.spec ?? {};
  const podLabels = spec.template?.metadata?.labels ?? {};
  const where = `${w.kind} ${w.metadata?.name}`;

  if (setup === "sqlite") {
    if (w.kind !== "StatefulSet" || spec.replicas !== 1) p.push(`${where}: SQLite needs a StatefulSet with replicas: 1`);
    if (!(spec.volumeClaimTemplates?.length > 0)) p.push(`${where}: no volumeClaimTemplates`);
    if (!byKind("Service").some((s) => s.metadata?.name === spec.serviceName)) {
      p.push(`${where}: serviceName '${spec.serviceName}' is not a Service here`);
    }
  } else if (w.kind !== "Deployment" || !(spec.replicas >= 3)) {
    p.push(`${where}: the replicated setup is a Deployment with at least 3 replicas`);
  }
  if (!matches(podLabels, spec.selector?.matchLabels)) p.push(`${where}: selector does not match the pod labels`);

  const c = (pod.containers ?? []).find((x) => x.name === "tollgate");
  if (!c) return [...p, `${where}: no container named 'tollgate'`];
  const httpPort = (c.ports ?? []).find((x) => x.name === "http");
  if (!httpPort) return [...p, `${where}: no container port named 'http'`];
  const port = httpPort.containerPort;
  if (port !== dockerPort()) p.push(`${where}: container port ${port} is not the image's EXPOSE ${dockerPort()}`);
  const resolvesToHttp = (ref) => ref === "http" || ref === port;

  // Probes: /healthz (alive) and /readyz (database answers), on the port tollgate listens on.
  const probes = { livenessProbe: "/healthz", readinessProbe: "/readyz", startupProbe: "/healthz" };
  for (const [probe, want] of Object.entries(probes)) {
    const get = c[probe]?.httpGet;
    if (!get) {
      if (probe !== "startupProbe") p.push(`${where}: no ${probe} with httpGet`);
      continue;
    }
    if (get.path !== want) p.push(`${where}: ${probe} path is '${get.path}', not '${want}'`);
    if (!resolvesToHttp(get.port)) p.push(`${where}: ${probe} port '${get.port}' is not the container port ${port}`);
  }

  // Security: non-root (the image's numeric user), read-only root, no capabilities.
  const psc = pod.securityContext ?? {};
  const csc = c.securityContext ?? {};
  const [uid, gid] = dockerUser() ?? [];
  if (psc.runAsNonRoot !== true && csc.runAsNonRoot !== true) p.push(`${where}: runAsNonRoot is not true`);
  if ((csc.runAsUser ?? psc.runAsUser) !== uid) p.push(`${where}: runAsUser is not the image's user ${uid}`);
  if ((csc.runAsGroup ?? psc.runAsGroup) !== gid) p.push(`${where}: runAsGroup is not the image's group ${gid}`);
  if (csc.readOnlyRootFilesystem !== true) p.push(`${where}: readOnlyRootFilesystem is not true`);
  if (csc.allowPrivilegeEscalation !== false) p.push(`${where}: allowPrivilegeEscalation is not false`);
  if (!(csc.capabilities?.drop ?? []).includes("ALL") || csc.capabilities?.add?.length) {
    p.push(`${where}: capabilities must drop ALL and add none`);
  }
  if ((csc.seccompProfile ?? psc.seccompProfile)?.type !== "RuntimeDefault") p.push(`${where}: no RuntimeDefault seccomp profile`);
  for (const kind of ["requests", "limits"]) {
    for (const r of ["cpu", "memory"]) if (!c.resources?.[kind]?.[r]) p.push(`${where}: no resources.${kind}.${r}`);
  }
  if (!byKind("ServiceAccount").some((s) => s.metadata?.name === pod.serviceAccountName)) {
    p.push(`${where}: serviceAccountName '${pod.serviceAccountName}' is not a ServiceAccount here`);
  }

  // Volumes: ConfigMaps defined here, Secrets documented in secret.example.yaml.
  const configMaps = new Map(byKind("ConfigMap").map((m) => [m.metadata?.name, m]));
  const secretKeys = (name) => documentedSecrets.find((s) => s.metadata?.name === name);
  const keysOf = (s) => new Set(Object.keys({ ...(s?.data ?? {}), ...(s?.stringData ?? {}) }));
  const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
  for (const t of spec.volumeClaimTemplates ?? []) volumes.set(t.metadata?.name, { name: t.metadata?.name, claim: t });
  for (const v of volumes.values()) {
    if (v.configMap) {
      const m = configMaps.get(v.configMap.name);
      if (!m) p.push(`${where}: volume '${v.name}' names ConfigMap '${v.configMap.name}', which is not here`);
      for (const it of v.configMap.items ?? []) {
        if (m && !(it.key in (m.data ?? {}))) p.push(`${where}: ConfigMap '${v.configMap.name}' has no key '${it.key}'`);
      }
    }
    if (v.secret) {
      const s = secretKeys(v.secret.secretName);
      if (!s) p.push(`${where}: Secret '${v.secret.secretName}' is not documented in secret.example.yaml`);
      for (const it of v.secret.items ?? []) {
        if (s && !keysOf(s).has(it.key)) p.push(`${where}: Secret '${v.secret.secretName}' has no key '${it.key}'`);
      }
    }
  }
  const env = new Map((c.env ?? []).map((e) => [e.name, e]));
  for (const e of env.values()) {
    const ref = e.valueFrom?.secretKeyRef;
    if (ref && !keysOf(secretKeys(ref.name)).has(ref.key)) {
      p.push(`${where}: env ${e.name} reads Secret '${ref.name}' key '${ref.key}', not documented in secret.example.yaml`);
    }
    const cref = e.valueFrom?.configMapKeyRef;
    if (cref && !(cref.key in (configMaps.get(cref.name)?.data ?? {}))) {
      p.push(`${where}: env ${e.name} reads ConfigMap '${cref.name}' key '${cref.key}', which is not here`);
    }
  }
  const mounts = c.volumeMounts ?? [];
  for (const m of mounts) if (!volumes.has(m.name)) p.push(`${where}: volumeMount '${m.name}' has no volume`);
  const mountOf = (file) =>
    mounts
      .filter((m) => file === m.mountPath || file.startsWith(m.mountPath.replace(/\/$/, "") + "/"))
      .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];

  // The configuration: where the image's entrypoint reads it, and what it names.
  const configPath = dockerConfigPath();
  const cm = mountOf(configPath);
  const cv = cm && volumes.get(cm.name);
  const cfgKey = cm && path.posix.relative(cm.mountPath, configPath);
  const cfgMap = cv?.configMap && configMaps.get(cv.configMap.name);
  const cfgItem = cv?.configMap?.items ? cv.configMap.items.find((it) => it.path === cfgKey)?.key : cfgKey;
  const cfgText = cfgMap?.data?.[cfgItem];
  if (typeof cfgText !== "string") return [...p, `${where}: nothing from a ConfigMap is mounted at ${configPath}`];
  const cfg = YAML.parse(cfgText);
  const listenPort = Number(String(cfg.listen ?? "").split(":").at(-1));
  if (listenPort !== port) p.push(`tollgate.yaml listens on ${cfg.listen}, not on the container port ${port}`);
  if (!/^(0\.0\.0\.0|\[::\]):/.test(String(cfg.listen))) p.push(`tollgate.yaml listen ${cfg.listen} is not reachable from outside the pod`);
  const secretRefs = [];
  const walk = (o) => {
    for (const [k, v] of Object.entries(o ?? {})) {
      if (v && typeof v === "object") walk(v);
      else if (/_file$/.test(k)) secretRefs.push({ file: v });
      else if (/_env$/.test(k)) secretRefs.push({ env: v });
    }
  };
  walk(cfg.hosts);
  walk(cfg.api);
  for (const r of secretRefs) {
    if (r.env !== undefined) {
      if (!env.has(r.env)) p.push(`tollgate.yaml reads ${r.env}, which the container does not set`);
      continue;
    }
    const m = path.posix.isAbsolute(r.file) ? mountOf(r.file) : undefined;
    const v = m && volumes.get(m.name);
    if (!v?.secret) {
      p.push(`tollgate.yaml reads '${r.file}', which is not in a mounted Secret`);
      continue;
    }
    const rel = path.posix.relative(m.mountPath, r.file);
    const key = v.secret.items ? v.secret.items.find((it) => it.path === rel)?.key : rel;
    if (!keysOf(secretKeys(v.secret.secretName)).has(key)) {
      p.push(`tollgate.yaml reads '${r.file}': Secret '${v.secret.secretName}' has no key '${rel}' in secret.example.yaml`);
    }
  }
  const writable = (dir, what) => {
    const m = mountOf(dir);
    if (!m || m.readOnly) p.push(`tollgate.yaml ${what} '${dir}' is not on a writable volume (the root filesystem is read-only)`);
    return m && volumes.get(m.name);
  };
  writable(cfg.data_dir ?? "", "data_dir");
  writable("/tmp/x", "temporary directory");
  if (setup === "sqlite") {
    const v = writable(path.posix.dirname(String(cfg.database ?? "")), "database");
    if (v && !v.claim && !v.persistentVolumeClaim) p.push(`tollgate.yaml database '${cfg.database}' is not on a persistent volume`);
  } else {
    if (!/^postgres(ql)?:\/\//.test(String(cfg.database))) p.push(`tollgate.yaml database '${cfg.database}' is not a postgres:// URL`);
    if (/:\/\/[^/@]*:[^/@]*@/.test(String(cfg.database))) p.push("tollgate.yaml: the database URL holds a password");
    if (!env.get("PGPASSWORD")?.valueFrom?.secretKeyRef) p.push(`${where}: PGPASSWORD does not come from a Secret`);
  }

  // Graceful stop: preStop, then tollgate's shutdown_timeout, within the grace period.
  const shutdown = durationSeconds(cfg.intake?.shutdown_timeout ?? "10s");
  const preStop = Number(c.lifecycle?.preStop?.exec?.command?.[0] === "sleep" ? c.lifecycle.preStop.exec.command[1] : 0);
  if (!((pod.terminationGracePeriodSeconds ?? 30) > shutdown + preStop)) {
    p.push(`${where}: terminationGracePeriodSeconds is not above preStop (${preStop}s) + shutdown_timeout (${shutdown}s)`);
  }

  // Service and metrics: the Service reaches the pods; a port named 'metrics' for a ServiceMonitor.
  const services = byKind("Service");
  if (services.length === 0) p.push("no Service");
  for (const s of services) {
    const sw = `Service ${s.metadata?.name}`;
    if (!matches(podLabels, s.spec?.selector)) p.push(`${sw}: selector does not match the pod labels`);
    for (const sp of s.spec?.ports ?? []) {
      if (!resolvesToHttp(sp.targetPort ?? sp.port)) p.push(`${sw}: port '${sp.name}' targets '${sp.targetPort}', not the container port`);
    }
    if (!(s.spec?.ports ?? []).some((sp) => sp.name === "metrics")) p.push(`${sw}: no port named 'metrics'`);
    if (!s.metadata?.labels?.["app.kubernetes.io/name"]) p.push(`${sw}: no app.kubernetes.io/name label for a ServiceMonitor`);
  }
  const ann = spec.template?.metadata?.annotations ?? {};
  if (ann["prometheus.io/scrape"] !== "true" || ann["prometheus.io/port"] !== String(port) || ann["prometheus.io/path"] !== "/metrics") {
    p.push(`${where}: prometheus.io/scrape, /port (${port}) and /path (/metrics) annotations missing or wrong`);
  }

  // Disruption budget: drains can proceed; the replicated setup keeps all but one replica.
  const pdbs = byKind("PodDisruptionBudget");
  if (pdbs.length !== 1) p.push(`expected one PodDisruptionBudget, found ${pdbs.length}`);
  for (const b of pdbs) {
    if (!matches(podLabels, b.spec?.selector?.matchLabels)) p.push("PodDisruptionBudget: selector does not match the pod labels");
    const n = spec.replicas ?? 1;
    const minAvailable = b.spec?.maxUnavailable !== undefined ? n - b.spec.maxUnavailable : b.spec?.minAvailable;
    if (typeof minAvailable !== "number") p.push("PodDisruptionBudget: give maxUnavailable or minAvailable as a number");
    else if (minAvailable >= n) p.push(`PodDisruptionBudget: keeps ${minAvailable} of ${n} replicas: a drain could never proceed`);
    else if (n > 1 && minAvailable < n - 1) p.push(`PodDisruptionBudget: lets ${n - minAvailable} of ${n} replicas go at once`);
  }
  return p;
}

function loadDirectory(setup) {
  const dir = path.join(K8S, setup);
  const problems = [];
  const kustomization = YAML.parse(fs.readFileSync(path.join(dir, "kustomization.yaml"), "utf8"));
  const resources = [];
  const files = {};
  for (const f of fs.readdirSync(dir).filter((x) => /\.ya?ml$/.test(x) && x !== "kustomization.yaml").sort()) {
    const { objs, problems: p } = readManifests(path.join(dir, f));
    problems.push(...p);
    files[f] = objs;
  }
  for (const r of kustomization.resources ?? []) resources.push(...(files[r] ?? []));
  return { dir, kustomization, files, resources, documented: files["secret.example.yaml"] ?? [], problems };
}

// ---------------------------------------------------------------------------------------------
// tollgate.yaml with the real binary

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Rewrites what points outside a test directory (listen address, database and data paths, secret
// files, the hosts' API addresses), keeping every other key as written. The secret files get
// placeholder values; *_env variables are set for the process.
async function localConfig(cfgText, dir, { database } = {}) {
  const cfg = YAML.parse(cfgText);
  const env = { ...process.env };
  const closed = await freePort(); // nothing listens there: GET /user fails at once, no network
  cfg.listen = "127.0.0.1:0";
  if (database !== undefined) cfg.database = database;
  else if (!/^postgres/.test(cfg.database)) cfg.database = path.join(dir, "tollgate.db");
  cfg.data_dir = path.join(dir, "data");
  fs.mkdirSync(path.join(dir, "secrets"), { recursive: true });
  const fix = (o) => {
    for (const [k, v] of Object.entries(o ?? {})) {
      if (v && typeof v === "object") fix(v);
      else if (/_file$/.test(k)) {
        o[k] = path.join(dir, "secrets", path.basename(v));
        fs.writeFileSync(o[k], "placeholder-secret-of-the-deploy-test-0123456789\n");
      } else if (/_env$/.test(k)) env[v] = "placeholder-secret-of-the-deploy-test-0123456789";
    }
  };
  fix(cfg.hosts);
  fix(cfg.api);
  for (const h of Object.values(cfg.hosts ?? {})) h.api_url = `http://127.0.0.1:${closed}/api/v3`;
  const file = path.join(dir, "tollgate.yaml");
  fs.writeFileSync(file, YAML.stringify(cfg));
  return { file, env };
}

function get(port, p) {
  return new Promise((resolve, reject) => {
    http.get({ host: "127.0.0.1", port, path: p }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    }).on("error", reject);
  });
}

// Starts `tollgate serve` on the file. Resolves {listening: port, stop()} or {exitCode, stderr}.
async function serve(t, file, env) {
  const proc = spawn(BIN, ["serve", "--config", file, "--threads", "1"], { env, stdio: ["ignore", "ignore", "pipe"] });
  const exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
  t.after(() => {
    if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid, "SIGKILL");
  });
  let stderr = "";
  const lines = readline.createInterface({ input: proc.stderr });
  const closed = new Promise((resolve) => lines.once("close", resolve));
  const listening = new Promise((resolve) => {
    lines.on("line", (line) => {
      stderr += line + "\n";
      try {
        const j = JSON.parse(line);
        if (j.msg === "listening") resolve(Number(String(j.address).split(":").at(-1)));
      } catch {}
    });
  });
  let timer;
  const timeout = new Promise((resolve) => (timer = setTimeout(() => resolve("timeout"), 30_000)));
  const first = await Promise.race([listening, exited.then((e) => ({ exit: e })), timeout]);
  clearTimeout(timer);
  if (first === "timeout") throw new Error(`tollgate serve neither listened nor exited within 30 s:\n${stderr}`);
  if (typeof first === "object") {
    await closed;
    return { exitCode: first.exit.code, stderr };
  }
  return {
    listening: first,
    stderr: () => stderr,
    async stop() {
      process.kill(proc.pid, "SIGTERM");
      return exited;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The GitHub App manifest

const GITHUB_APP = JSON.parse(read("deploy", "github-app-manifest.json"));

function usedGithubEvents() {
  const src = read("webhooks", "github.cpp");
  const block = src.match(/kUsed\s*=\s*\{([\s\S]*?)\};/);
  assert.ok(block, "webhooks/github.cpp: the kUsed list of events is not where it used to be");
  return [...block[1].matchAll(/string_view\("([a-z_]+)"\)/g)].map((m) => m[1]);
}

// The permission (and level) each path piece of service/host/github_host.cpp's REST calls needs
// (GitHub's REST reference, "Fine-grained access token" / GitHub App permissions of each endpoint).
// null: a piece that needs no permission of its own. A new piece fails the test until it is listed.
const REST_PERMISSIONS = {
  "/": null,
  "/repos/": ["metadata", "read"], // GET /repos/{o}/{r}: clone_url, default branch
  "/user": null, // the token's own login
  "/pulls": ["pull_requests", "write"],
  "/pulls/": ["pull_requests", "write"],
  "/pulls?state=all&per_page=": ["pull_requests", "read"],
  "/requested_reviewers": ["pull_requests", "write"],
  "/reviews?per_page=": ["pull_requests", "read"],
  "/files?per_page=": ["pull_requests", "read"],
  "/merge": ["contents", "write"], // PUT .../merge needs contents: write (and pull_requests)
  "/issues/": ["issues", "write"],
  "/labels": ["issues", "write"],
  "/comments": ["issues", "write"],
  "/issues/comments/": ["issues", "write"],
  "/reactions": ["issues", "write"],
  "/statuses/": ["statuses", "write"],
  "/commits/": null, // the statuses and check runs of a commit
  "/status?per_page=100": ["statuses", "read"],
  "/check-runs": ["checks", "write"],
  "/check-runs/": ["checks", "write"],
  "/check-runs?check_name=": ["checks", "read"],
  "/check-runs?per_page=": ["checks", "read"],
  "/collaborators/": ["metadata", "read"],
  "/permission": ["metadata", "read"],
  "/contents/": ["contents", "read"],
  "/orgs/": ["members", "read"],
  "/teams/": ["members", "read"],
  "/memberships/": ["members", "read"],
};
// Beyond REST: git pushes the promotion branches (contents: write), and each event needs read
// access to its resource.
const OTHER_PERMISSIONS = [["contents", "write"]];
const EVENT_PERMISSIONS = {
  pull_request: "pull_requests",
  pull_request_review: "pull_requests",
  issue_comment: "issues",
  push: "contents",
  status: "statuses",
  check_run: "checks",
};

function githubAppProblems(manifest) {
  const p = [];
  const events = new Set(manifest.default_events ?? []);
  const used = new Set(usedGithubEvents());
  for (const e of used) if (!events.has(e)) p.push(`the App does not subscribe to '${e}', which webhooks/github.cpp uses`);
  for (const e of events) if (!used.has(e)) p.push(`the App subscribes to '${e}', which webhooks/github.cpp ignores`);

  const need = new Map();
  const add = ([perm, level]) => {
    if (need.get(perm) !== "write") need.set(perm, level);
  };
  const src = read("service", "host", "github_host.cpp");
  for (const [, piece] of src.matchAll(/"(\/[^"]*)"/g)) {
    if (!(piece in REST_PERMISSIONS)) p.push(`github_host.cpp calls '${piece}': add it to REST_PERMISSIONS with its permission`);
    else if (REST_PERMISSIONS[piece]) add(REST_PERMISSIONS[piece]);
  }
  for (const x of OTHER_PERMISSIONS) add(x);
  for (const e of used) add([EVENT_PERMISSIONS[e] ?? `unknown permission of event ${e}`, "read"]);
  const have = manifest.default_permissions ?? {};
  for (const [perm, level] of need) {
    if (have[perm] === undefined) p.push(`the App lacks '${perm}: ${level}'`);
    else if (level === "write" && have[perm] !== "write") p.push(`the App has '${perm}: ${have[perm]}', tollgate needs write`);
  }
  for (const [perm, level] of Object.entries(have)) {
    if (!need.has(perm)) p.push(`the App asks for '${perm}', which tollgate does not use`);
    else if (level === "write" && need.get(perm) !== "write") p.push(`the App asks for '${perm}: write'; read is enough`);
  }
  if (!/\/hooks\/github$/.test(manifest.hook_attributes?.url ?? "")) p.push("hook_attributes.url does not end in /hooks/github");
  if (manifest.hook_attributes?.active !== true) p.push("the webhook is not active");
  return p;
}

// ---------------------------------------------------------------------------------------------
// The systemd unit

const UNIT = read("deploy", "systemd", "tollgate.service");
const SYSTEMD_ANALYZE = which("systemd-analyze");

// `systemd-analyze verify` exits 0 on unknown keys and unparsable values (it only warns), so any
// line it prints about the unit is a problem. ExecStart must name an existing executable: the unit
// is verified as a copy that runs TOLLGATE_BIN (or a stand-in script) instead of /usr/local/bin.
function verifyUnit(text, tmp) {
  let bin = BIN && path.resolve(BIN);
  if (!bin) {
    bin = path.join(tmp, "tollgate");
    fs.writeFileSync(bin, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  }
  const unit = path.join(tmp, "tollgate.service");
  fs.writeFileSync(unit, text.replace(/^ExecStart=\/usr\/local\/bin\/tollgate /m, `ExecStart=${bin} `));
  const r = spawnSync(SYSTEMD_ANALYZE, ["verify", "--man=no", unit], { encoding: "utf8" });
  const out = (r.stdout + r.stderr).split("\n").filter((l) => l.trim() !== "");
  const p = out.filter((l) => l.includes("tollgate.service") || !l.startsWith("/")).map((l) => `systemd-analyze verify: ${l}`);
  if (r.status !== 0 && p.length === 0) p.push(`systemd-analyze verify exited ${r.status}: ${out.join(" | ")}`);
  return { problems: p, unit };
}

const unitValues = (key) => [...UNIT.matchAll(new RegExp(`^${key}=(.*)$`, "gm"))].map((m) => m[1]);

// =============================================================================================

for (const setup of ["sqlite", "postgres"]) {
  describe(`deploy/kubernetes/${setup}`, () => {
    const d = loadDirectory(setup);

    test("every YAML document parses, alike as YAML 1.1 and 1.2", () => {
      assert.deepEqual(d.problems, []);
      assert.ok(d.resources.length >= 5, "kustomization.yaml applies the manifests");
    });

    test("every manifest validates against the Kubernetes API schema, with no unknown field", () => {
      const p = [];
      for (const [f, objs] of Object.entries(d.files)) objs.forEach((o, i) => p.push(...schemaProblems(o, `${f}#${i}`)));
      assert.deepEqual(p, []);
    });

    test("kustomization.yaml applies every manifest but the Secret example, and kubectl kustomize renders it", (t) => {
      const listed = [...(d.kustomization.resources ?? [])].sort();
      const present = Object.keys(d.files).filter((f) => f !== "secret.example.yaml").sort();
      assert.deepEqual(listed, present);
      assert.equal(d.kustomization.kind, "Kustomization");
      const images = new Set((d.kustomization.images ?? []).map((i) => i.name));
      for (const o of d.resources) {
        for (const c of o.spec?.template?.spec?.containers ?? []) assert.ok(images.has(c.image), `image '${c.image}' is set by kustomization.yaml`);
      }
      const kubectl = which("kubectl");
      if (!kubectl) return t.skip("kubectl is not installed: the rendering is not checked");
      const r = spawnSync(kubectl, ["kustomize", d.dir], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      const rendered = YAML.parseAllDocuments(r.stdout).map((x) => x.toJS());
      assert.equal(rendered.length, d.resources.length);
      const p = rendered.flatMap((o, i) => schemaProblems(o, `rendered#${i}`));
      assert.deepEqual(p, []);
      const w = rendered.find((o) => o.kind === "Deployment" || o.kind === "StatefulSet");
      const newImage = d.kustomization.images[0];
      assert.equal(w.spec.template.spec.containers[0].image, `${newImage.newName}:${newImage.newTag}`);
    });

    test("probes, ports, selectors, volumes, Secrets, security context and budget fit together", () => {
      assert.deepEqual(crossProblems(setup, d.resources, d.documented), []);
    });

    test("the Secrets are referenced, not shipped: only secret.example.yaml holds one, with placeholders", () => {
      for (const o of d.resources) assert.notEqual(o.kind, "Secret", "kustomization.yaml applies a Secret");
      assert.ok(d.documented.length > 0);
      for (const s of d.documented) {
        assert.equal(s.kind, "Secret");
        for (const v of Object.values(s.stringData ?? {})) assert.match(v, /^REPLACE: /);
        assert.equal(s.data, undefined);
      }
    });

    test("the ConfigMap's tollgate.yaml loads in tollgate serve, which answers the probes", { skip: NO_BIN, timeout: 120_000 }, async (t) => {
      const cm = d.resources.find((o) => o.kind === "ConfigMap");
      const text = cm.data["tollgate.yaml"];
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `tollgate-deploy-${setup}-`));
      t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
      if (setup === "postgres") {
        // As written: accepted, and stopped only by the database it names not being there (no
        // postgres.database.svc here); the password-less URL is named in the error.
        const asIs = await localConfig(text, path.join(tmp, "as-is"));
        const r = await serve(t, asIs.file, asIs.env);
        if (r.listening) {
          await r.stop();
        } else {
          assert.deepEqual(r.stderr.split("\n").filter((l) => /: error: /.test(l)), [], "no configuration error");
          // 1, not 2: an unreachable database is worth a restart (systemd's RestartPreventExitStatus=2).
          assert.equal(r.exitCode, 1, r.stderr);
          assert.match(r.stderr, /cannot connect to PostgreSQL at 'postgres:\/\/tollgate@postgres\.database\.svc:5432\/tollgate\?sslmode=verify-full'/);
        }
      }
      // Every other key as written, on the test's PostgreSQL server (postgres, when there is one) or
      // on SQLite in the test directory.
      const dir = path.join(tmp, "local");
      const database = setup === "postgres" && POSTGRES ? testDatabase(t, { store: "postgres" }) : path.join(dir, "tollgate.db");
      const local = await localConfig(text, dir, { database });
      const s = await serve(t, local.file, local.env);
      assert.ok(s.listening, `tollgate serve refused the configuration:\n${s.stderr}`);
      const w = d.resources.find((o) => o.kind === "Deployment" || o.kind === "StatefulSet");
      const c = w.spec.template.spec.containers[0];
      for (const probe of ["livenessProbe", "readinessProbe", "startupProbe"]) {
        if (c[probe]) assert.equal(await get(s.listening, c[probe].httpGet.path), 200, `${probe} ${c[probe].httpGet.path}`);
      }
      assert.equal(await get(s.listening, w.spec.template.metadata.annotations["prometheus.io/path"]), 200, "/metrics");
      const exit = await s.stop();
      assert.deepEqual(exit, { code: 0, signal: null }, s.stderr());
    });
  });
}

describe("deploy/container/Dockerfile", () => {
  const installDeps = read("deploy", "install-deps.sh");
  const aptLists = [...DOCKERFILE.matchAll(/apt-get install[^\n]*\\\n((?:[^\n]*\\\n)*?)\s*&&/g)].map((m) =>
    m[1].replace(/\\\n/g, " ").split(/\s+/).filter((x) => /^[a-z0-9][a-z0-9.+-]+$/.test(x)),
  );
  const [buildPackages, runtimePackages] = aptLists;

  test("two stages on Debian bookworm; the runtime runs as a fixed non-root user", () => {
    assert.match(DOCKERFILE, /^ARG DEBIAN_IMAGE=debian:bookworm(-slim)?$/m);
    assert.deepEqual([...DOCKERFILE.matchAll(/^FROM (.*)$/gm)].map((m) => m[1]), ["${DEBIAN_IMAGE} AS build", "${DEBIAN_IMAGE}"]);
    const [uid, gid] = dockerUser();
    assert.ok(uid > 0 && gid > 0, "USER is numeric and not root");
    assert.match(DOCKERFILE, new RegExp(`useradd [^\\n]*--uid ${uid} `));
    assert.match(DOCKERFILE, /^VOLUME \["\/var\/lib\/tollgate"\]$/m);
    assert.deepEqual(JSON.parse(DOCKERFILE.match(/^ENTRYPOINT (\[.*\])$/m)[1]).slice(1, 3), ["serve", "--config"]);
  });

  test("the build installs only packages of deploy/install-deps.sh and uses options CMakeLists.txt has", () => {
    assert.ok(buildPackages?.length > 5 && runtimePackages?.length > 5, "two apt-get install lists");
    const known = new Set(installDeps.match(/packages=\(([\s\S]*?)\n\)/)[1].replace(/#.*$/gm, "").split(/\s+/).filter(Boolean));
    for (const pkg of buildPackages) assert.ok(known.has(pkg), `${pkg} is not in deploy/install-deps.sh`);
    const cmake = read("CMakeLists.txt");
    for (const [, opt] of DOCKERFILE.matchAll(/-D(TOLLGATE_[A-Z_]+)=/g)) assert.match(cmake, new RegExp(`option\\(${opt} `));
    assert.match(DOCKERFILE, /-DCMAKE_BUILD_TYPE=Release /);
    assert.doesNotMatch(DOCKERFILE, /\b(curl|wget|ADD https?:|git clone)\b/, "no downloads beyond apt");
  });

  test("the build context holds what the CMake build reads", () => {
    const copied = new Set([...DOCKERFILE.matchAll(/^COPY (?!--from)(.*) \S+$/gm)].flatMap((m) => m[1].split(" ")).map((x) => x.replace(/\/$/, "")));
    const cmake = read("CMakeLists.txt");
    const needed = new Set(["cmake"]);
    for (const [, dir] of cmake.matchAll(/add_subdirectory\(([\w/]+)\)/g)) if (dir !== "tests") needed.add(dir.split("/")[0]);
    for (const f of ["pipeline", "service", "templates", "webhooks", "bench"]) {
      for (const [, dir] of read(f, "CMakeLists.txt").matchAll(/\$\{PROJECT_SOURCE_DIR\}\/(\w+)/g)) needed.add(dir);
    }
    for (const dir of needed) assert.ok(copied.has(dir), `the Dockerfile does not copy ${dir}/`);
    const ignored = read(".dockerignore").split("\n").filter((l) => l && !l.startsWith("#")).map((l) => l.replace(/\/$/, ""));
    for (const dir of copied) assert.ok(!ignored.includes(dir), `.dockerignore excludes ${dir}, which the Dockerfile copies`);
  });

  test("the runtime packages are exactly those of the libraries the binary links or loads", (t) => {
    if (!BIN) return t.skip(NO_BIN);
    if (!which("readelf") || !which("dpkg")) return t.skip("readelf or dpkg is missing: cannot map the binary's libraries to packages");
    const linked = [...spawnSync("readelf", ["-d", BIN], { encoding: "utf8" }).stdout.matchAll(/\(NEEDED\)\s+Shared library: \[(.+)\]/g)].map((m) => m[1]);
    assert.ok(linked.length > 5, "readelf lists the binary's libraries");
    if (linked.some((l) => /^lib(a|ub|t)san\./.test(l))) return t.skip("a sanitizer build: the image holds a release build");
    // And the ones the code loads itself (dlopen("libX.so.N"): libpq, for a postgres:// database).
    const loaded = [...read("service", "pg.cpp").matchAll(/dlopen\("([^"]+)"/g)].map((m) => m[1]);
    assert.ok(loaded.includes("libpq.so.5"), "service/pg.cpp loads libpq.so.5");
    const needed = [...linked, ...loaded];
    // Where the loader finds each one (ldd), and the package owning that file (dpkg -S; with
    // merged /usr, dpkg may know it under /lib or /usr/lib).
    const resolved = new Map([...spawnSync("ldd", [BIN], { encoding: "utf8" }).stdout.matchAll(/^\s*(\S+) => (\S+)/gm)].map((m) => [m[1], m[2]]));
    for (const lib of loaded) {
      const m = /\s(\/\S+)$/m.exec(spawnSync("sh", ["-c", `/sbin/ldconfig -p | grep -F "${lib} (" | grep x86-64 | head -n 1`], { encoding: "utf8" }).stdout);
      if (m) resolved.set(lib, m[1]);
    }
    const owners = new Set();
    for (const lib of needed) {
      const file = resolved.get(lib);
      assert.ok(file, `ldd does not resolve ${lib}`);
      const candidates = [file, file.startsWith("/usr/") ? file.slice(4) : `/usr${file}`];
      const owner = candidates
        .map((f) => spawnSync("dpkg", ["-S", f], { encoding: "utf8" }))
        .find((r) => r.status === 0)
        ?.stdout.split(":")[0].trim();
      assert.ok(owner, `no Debian package owns ${file}`);
      owners.add(owner);
    }
    const base = new Set(["libc6", "libgcc-s1"]); // essential: in every Debian image
    const data = new Set(["ca-certificates", "tzdata"]); // read at run time: HTTPS roots, time zones
    for (const o of owners) assert.ok(base.has(o) || runtimePackages.includes(o), `the runtime stage lacks ${o}`);
    for (const r of runtimePackages) assert.ok(data.has(r) || owners.has(r), `the runtime stage installs ${r}, which the binary neither links nor loads`);
  });
});

describe("deploy/systemd/tollgate.service", () => {
  test("systemd-analyze verify reports nothing", (t) => {
    if (!SYSTEMD_ANALYZE) return t.skip("systemd-analyze is not installed (deploy/install-deps.sh --tests installs systemd)");
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tollgate-unit-"));
    t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
    assert.deepEqual(verifyUnit(UNIT, tmp).problems, []);
  });

  test("systemd-analyze security rates it OK (exposure at most 2.0)", (t) => {
    if (!SYSTEMD_ANALYZE) return t.skip("systemd-analyze is not installed");
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tollgate-unit-"));
    t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
    const { unit } = verifyUnit(UNIT, tmp);
    const r = spawnSync(SYSTEMD_ANALYZE, ["security", "--offline=yes", "--no-pager", unit], { encoding: "utf8" });
    const m = (r.stdout + r.stderr).match(/Overall exposure level for tollgate\.service: ([\d.]+)/);
    if (!m) return t.skip(`this systemd-analyze cannot rate a unit file offline: ${r.stderr.trim().split("\n")[0]}`);
    assert.ok(Number(m[1]) <= 2.0, `exposure ${m[1]}:\n${r.stdout}`);
  });

  test("hardening, state directory, restart and a stop timeout above tollgate's shutdown_timeout", () => {
    const want = {
      ProtectSystem: "strict", ProtectHome: "yes", PrivateTmp: "yes", NoNewPrivileges: "yes", CapabilityBoundingSet: "",
      RestrictAddressFamilies: "AF_INET AF_INET6 AF_UNIX", MemoryDenyWriteExecute: "yes", LockPersonality: "yes",
      StateDirectory: "tollgate", Restart: "on-failure", User: "tollgate",
    };
    for (const [k, v] of Object.entries(want)) assert.deepEqual(unitValues(k), [v], `${k}=${v}`);
    assert.ok(unitValues("SystemCallFilter").includes("@system-service"));
    assert.ok(durationSeconds(unitValues("TimeoutStopSec")[0]) > 10, "TimeoutStopSec above the default shutdown_timeout (10s)");
    const readme = read("README.md");
    assert.match(readme, /shutdown_timeout: 10s/, "the README still documents 10s as the default shutdown_timeout");
    assert.match(UNIT, /^ExecStart=\/usr\/local\/bin\/tollgate serve --config \/etc\/tollgate\/tollgate\.yaml$/m);
  });
});

describe("deploy/github-app-manifest.json", () => {
  test("its events are those webhooks/github.cpp normalises; its permissions those tollgate's calls need", () => {
    assert.deepEqual(githubAppProblems(GITHUB_APP), []);
  });

  test("the README's inline manifest is the same", () => {
    const readme = read("README.md");
    const m = readme.match(/name="manifest" value='(\{[\s\S]*?\})'>/);
    assert.ok(m, "README: the GitHub App form with its manifest");
    assert.deepEqual(JSON.parse(m[1]), GITHUB_APP);
  });
});

describe("the checks reject broken artifacts", () => {
  const d = loadDirectory("postgres");
  const clone = (x) => structuredClone(x);
  const workload = (resources) => resources.find((o) => o.kind === "Deployment");

  test("a field of the wrong type fails the Kubernetes schema", () => {
    const w = clone(workload(d.resources));
    w.spec.replicas = "three";
    assert.match(schemaProblems(w, "deployment.yaml").join("\n"), /\/spec\/replicas must be integer/);
  });

  test("a misspelt field is an unknown field", () => {
    const w = clone(workload(d.resources));
    const c = w.spec.template.spec.containers[0];
    c.readinesProbe = c.readinessProbe;
    delete c.readinessProbe;
    assert.deepEqual(schemaProblems(w, "deployment.yaml"), ["deployment.yaml: Deployment.spec.template.spec.containers[0].readinesProbe: unknown field"]);
  });

  test("a manifest read differently by kubectl's YAML 1.1 is refused", () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tollgate-yaml-"));
    const f = path.join(tmp, "x.yaml");
    fs.writeFileSync(f, "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData: {mode: 0440}\n");
    assert.match(readManifests(f).problems.join("\n"), /reads differently as YAML 1.1/);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test("wrong probe paths and ports, a missing ConfigMap, an undocumented Secret, a writable root are refused", () => {
    const broken = clone(d.resources);
    const w = workload(broken);
    const c = w.spec.template.spec.containers[0];
    c.livenessProbe.httpGet.path = "/health";
    c.readinessProbe.httpGet.port = 9090;
    c.securityContext.readOnlyRootFilesystem = false;
    w.spec.template.spec.volumes.find((v) => v.secret).secret.secretName = "tollgate-github";
    broken.splice(broken.findIndex((o) => o.kind === "ConfigMap"), 1);
    const p = crossProblems("postgres", broken, d.documented).join("\n");
    assert.match(p, /livenessProbe path is '\/health', not '\/healthz'/);
    assert.match(p, /readinessProbe port '9090' is not the container port 8080/);
    assert.match(p, /readOnlyRootFilesystem is not true/);
    assert.match(p, /Secret 'tollgate-github' is not documented/);
    assert.match(p, /names ConfigMap 'tollgate-config', which is not here/);
  });

  test("a secret file the Secret does not hold, a budget that blocks drains, a password in the URL are refused", () => {
    const broken = clone(d.resources);
    const cm = broken.find((o) => o.kind === "ConfigMap");
    cm.data["tollgate.yaml"] = cm.data["tollgate.yaml"]
      .replace("/github-token", "/gh-token")
      .replace("postgres://tollgate@", "postgres://tollgate:hunter2@");
    const pdb = broken.find((o) => o.kind === "PodDisruptionBudget");
    delete pdb.spec.maxUnavailable;
    pdb.spec.minAvailable = 3;
    const p = crossProblems("postgres", broken, d.documented).join("\n");
    assert.match(p, /reads '\/run\/secrets\/tollgate\/gh-token': Secret 'tollgate-credentials' has no key 'gh-token'/);
    assert.match(p, /keeps 3 of 3 replicas: a drain could never proceed/);
    assert.match(p, /the database URL holds a password/);
  });

  test("a GitHub App with an event or permission too many or too few is refused", () => {
    const m = clone(GITHUB_APP);
    m.default_events = m.default_events.filter((e) => e !== "check_run").concat(["issues"]);
    m.default_permissions.administration = "write";
    m.default_permissions.statuses = "read";
    const p = githubAppProblems(m).join("\n");
    assert.match(p, /does not subscribe to 'check_run'/);
    assert.match(p, /subscribes to 'issues', which webhooks\/github.cpp ignores/);
    assert.match(p, /asks for 'administration'/);
    assert.match(p, /'statuses: read', tollgate needs write/);
  });

  test("a unit with a misspelt option or a bad value does not pass", (t) => {
    if (!SYSTEMD_ANALYZE) return t.skip("systemd-analyze is not installed");
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tollgate-unit-"));
    t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
    const bad = UNIT.replace("ProtectSystem=strict", "ProtectSytem=strict").replace("PrivateTmp=yes", "PrivateTmp=maybe");
    const p = verifyUnit(bad, tmp).problems.join("\n");
    assert.match(p, /Unknown key name 'ProtectSytem'|Unknown key 'ProtectSytem'/);
    assert.match(p, /Failed to parse .*: maybe/);
  });
});
