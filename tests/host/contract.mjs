// Contract checks of tollgate's GitHub client against GitHub's own description of its API,
// @octokit/openapi@23.0.2 (generated/api.github.com.json).
//
//   node tests/host/contract.mjs serve      a stand-in API that answers every operation in the spec
//                                           with the spec's own example for it, validates each
//                                           request body against the operation's requestBody
//                                           schema, and logs both; prints {"url":...,"pid":...}
//   node tests/host/contract.mjs self-test  the request-body validation itself: the spec's
//                                           request examples pass, known-bad bodies fail
//
// In serve mode, POST /_contract/next {status, headers?, body?} queues the answer to the next API
// request (the spec's example for that status when no body is given, synthesised — and checked
// against the response schema — when the spec has none); GET /_contract/log lists
// {method, template, status, request_errors, response_errors}.
//
// Request bodies are validated with the schemas the test Git host's checks already compile
// (tests/githost/openapi.mjs registers the spec's components under SPEC_ID).
import http from "node:http";
import { RestSchemas, translate } from "../githost/openapi.mjs";

const rest = new RestSchemas();
const spec = rest.spec;
const resolve = (x) => {
  while (x?.$ref) x = x.$ref.split("/").slice(1).reduce((o, k) => o[k], spec);
  return x;
};

const requestValidators = new Map();
function validateRequest(method, template, body) {
  const key = `${method} ${template}`;
  let fn = requestValidators.get(key);
  if (fn === undefined) {
    const schema = resolve(rest.operation(method, template)?.requestBody)?.content?.["application/json"]?.schema;
    fn = schema ? rest.ajv.compile(translate(schema)) : null;
    requestValidators.set(key, fn);
  }
  if (!fn) return body === undefined ? null : [{ message: "the operation takes no JSON body" }];
  if (body === undefined) return resolve(rest.operation(method, template)?.requestBody)?.required ? [{ message: "body required" }] : null;
  return fn(body) ? null : fn.errors;
}

function example(method, template, status) {
  const r = resolve(rest.response(method, template, status));
  const content = r?.content?.["application/json"];
  if (!content) return undefined;
  if (content.examples) return resolve(Object.values(content.examples)[0])?.value;
  if (content.example !== undefined) return content.example;
  return undefined;
}

// Bodies for answers the spec describes without an example.
function synthesise(status) {
  if (status === 422)
    return {
      message: "Validation Failed",
      errors: [{ resource: "PullRequest", code: "custom", message: "A pull request already exists for octocat:new-feature." }],
      documentation_url: "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
    };
  if (status === 403 || status === 429)
    return { message: "API rate limit exceeded for user ID 1.", documentation_url: "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api" };
  if (status === 401) return { message: "Bad credentials", documentation_url: "https://docs.github.com/rest" };
  return { message: `status ${status}`, documentation_url: "https://docs.github.com/rest" };
}

function selfTest() {
  const cases = [
    ["POST", "/repos/{owner}/{repo}/pulls", { title: "t", head: "b", base: "main", body: "x", draft: false }, true],
    ["POST", "/repos/{owner}/{repo}/pulls", { title: "t", head: "b", base: "main", draft: "yes" }, false],
    ["PATCH", "/repos/{owner}/{repo}/pulls/{pull_number}", { state: "closed" }, true],
    ["PATCH", "/repos/{owner}/{repo}/pulls/{pull_number}", { state: "merged" }, false],
    ["PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/merge", { sha: "abc", merge_method: "squash" }, true],
    ["PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/merge", { merge_method: "fast-forward" }, false],
    ["POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments", { body: "hi" }, true],
    ["POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments", {}, false],
    ["POST", "/repos/{owner}/{repo}/statuses/{sha}", { state: "success", context: "tollgate/gates" }, true],
    ["POST", "/repos/{owner}/{repo}/statuses/{sha}", { state: "green" }, false],
    ["POST", "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions", { content: "+1" }, true],
    ["POST", "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions", { content: "party" }, false],
  ];
  let failed = 0;
  for (const [m, t, body, valid] of cases) {
    const errors = validateRequest(m, t, body);
    if ((errors === null) !== valid) {
      failed++;
      console.error(`FAIL ${m} ${t} ${JSON.stringify(body)}: expected ${valid ? "valid" : "invalid"}`, errors);
    }
  }
  // The spec's own request examples for the operations tollgate uses must validate.
  for (const [m, t] of cases.map(([a, b]) => [a, b])) {
    const rb = resolve(rest.operation(m, t)?.requestBody)?.content?.["application/json"];
    for (const ex of Object.values(rb?.examples ?? {})) {
      const errors = validateRequest(m, t, resolve(ex).value);
      if (errors) {
        failed++;
        console.error(`FAIL the spec's example for ${m} ${t}`, errors);
      }
    }
  }
  console.log(failed ? `${failed} contract self-test(s) failed` : `contract self-test: ${cases.length} cases ok`);
  process.exit(failed ? 1 : 0);
}

function serve() {
  const queue = [];
  const log = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (d) => chunks.push(d));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString();
      const url = new URL(req.url, "http://x");
      const json = (status, body, headers = {}) => {
        res.writeHead(status, { "content-type": "application/json", ...headers });
        res.end(body === undefined ? "" : JSON.stringify(body));
      };
      if (url.pathname === "/_contract/next" && req.method === "POST") {
        queue.push(JSON.parse(text));
        return json(200, { queued: queue.length });
      }
      if (url.pathname === "/_contract/log") {
        if (req.method === "DELETE") log.length = 0;
        return json(200, log);
      }
      const template = rest.template(req.method, url.pathname);
      if (!template) {
        log.push({ method: req.method, path: url.pathname, template: null, request_errors: [{ message: "not in the spec" }] });
        return json(404, { message: "Not Found" });
      }
      let body;
      let requestErrors = null;
      if (text) {
        try {
          body = JSON.parse(text);
        } catch {
          requestErrors = [{ message: "body is not JSON" }];
        }
      }
      requestErrors ??= validateRequest(req.method, template, body);
      const next = queue.shift() ?? {};
      const op = rest.operation(req.method, template);
      const status = next.status ?? Number(Object.keys(op.responses).find((s) => s.startsWith("2")));
      let answer = next.body ?? example(req.method, template, status);
      let ours = next.body !== undefined;
      if (answer === undefined && status >= 400) {
        answer = synthesise(status);
        ours = true;
      }
      // Bodies made here must match the response schema. The spec's own examples are served as
      // they are: several predate their schemas (e.g. team-simple without "type").
      let responseErrors = null;
      if (answer !== undefined && ours) responseErrors = rest.validator(req.method, template, status).validate(answer);
      log.push({ method: req.method, path: url.pathname, template, status, auth: !!req.headers.authorization, request_errors: requestErrors, response_errors: responseErrors });
      const now = Math.floor(Date.now() / 1000);
      const headers = {
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "4999",
        "x-ratelimit-used": "1",
        "x-ratelimit-reset": String(now + 3600),
        "x-ratelimit-resource": "core",
        ...(next.headers ?? {}),
      };
      for (const [k, v] of Object.entries(headers)) if (typeof v === "string") headers[k] = v.replace("{now+1}", String(now + 1));
      json(status, answer, headers);
    });
  });
  server.listen(0, "127.0.0.1", () => {
    process.stdout.write(JSON.stringify({ url: `http://127.0.0.1:${server.address().port}`, pid: process.pid }) + "\n");
  });
  const stop = () => process.exit(0);
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

if (process.argv[2] === "serve") serve();
else selfTest();
