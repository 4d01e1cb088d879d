// What starting and scripting the test Git host takes, shared by the tests (tests/promote/world.mjs)
// and the demo's sandbox (deploy/demo/sandbox.mjs).

// Resolves with the ready line the host prints on stdout ({api_url, git_url, ...}, parsed);
// rejects if it exits first.
export function readyInfo(child) {
  return new Promise((resolve, reject) => {
    let buf = "";
    child.stdout.on("data", (d) => {
      buf += d;
      const i = buf.indexOf("\n");
      if (i >= 0) resolve(JSON.parse(buf.slice(0, i)));
    });
    child.once("exit", (code) => reject(new Error(`the test Git host exited (${code}) before it was ready`)));
  });
}

// admin(method, target, body): a request to the host's admin API (/_admin + target), its JSON
// answer or null; throws with the status and body on an error (`label` starts the message).
export function adminClient(apiUrl, label = "") {
  return async (method, target, body) => {
    const res = await fetch(apiUrl + "/_admin" + target, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${label}${method} /_admin${target}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
}
