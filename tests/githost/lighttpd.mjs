// Starts the real `git http-backend` behind lighttpd on 127.0.0.1 (see ../shared/HOSTS.md), with
// basic auth from a plain user file that lighttpd re-reads on every request, so users and tokens
// added later work at once. Smart HTTP under /git/OWNER/NAME.git.

import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import net from "node:net";
import path from "node:path";

// GITHOST_HTTP_BACKEND: another CGI in its place (a wrapper that measures it, for benchmarks).
const HTTP_BACKEND = process.env.GITHOST_HTTP_BACKEND || "/usr/lib/git-core/git-http-backend";

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function waitForPort(port, deadline) {
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const sock = net.connect(port, "127.0.0.1");
      sock.once("connect", () => {
        sock.destroy();
        resolve();
      });
      sock.once("error", () => {
        sock.destroy();
        if (Date.now() > deadline) reject(new Error(`lighttpd did not listen on ${port}`));
        else setTimeout(attempt, 10);
      });
    };
    attempt();
  });
}

export async function startLighttpd({ dir, reposDir, usersFile, lighttpd = "lighttpd" }) {
  const www = path.join(dir, "www");
  await fs.mkdir(www, { recursive: true });
  let lastError;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const conf = path.join(dir, "lighttpd.conf");
    await fs.writeFile(
      conf,
      [
        `server.modules = ("mod_auth", "mod_authn_file", "mod_alias", "mod_setenv", "mod_cgi")`,
        `server.bind = "127.0.0.1"`,
        `server.port = ${port}`,
        `server.document-root = "${www}"`,
        `server.errorlog = "${path.join(dir, "lighttpd.log")}"`,
        `server.max-request-size = 0`,
        `alias.url = ("/git/" => "${HTTP_BACKEND}/")`,
        `$HTTP["url"] =~ "^/git/" {`,
        `  cgi.assign = ("" => "")`,
        `  setenv.add-environment = ("GIT_PROJECT_ROOT" => "${reposDir}", "GIT_HTTP_EXPORT_ALL" => "", "PATH" => "${process.env.PATH ?? "/usr/bin:/bin"}")`,
        `}`,
        `auth.backend = "plain"`,
        `auth.backend.plain.userfile = "${usersFile}"`,
        `auth.require = ("/git/" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))`,
        "",
      ].join("\n"),
    );
    const child = spawn(lighttpd, ["-D", "-f", conf], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      await Promise.race([
        waitForPort(port, Date.now() + 3000),
        exited.then((code) => {
          throw new Error(`lighttpd exited ${code}: ${stderr.trim()}`);
        }),
      ]);
      child.unref();
      return {
        port,
        pid: child.pid,
        url: `http://127.0.0.1:${port}/git`,
        stop() {
          try {
            process.kill(child.pid, "SIGTERM");
          } catch {}
        },
      };
    } catch (e) {
      lastError = e;
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {}
    }
  }
  throw lastError;
}
