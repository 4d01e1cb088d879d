// Real git operations on the test host's bare repositories: building commits with plumbing (a
// temporary index, no working tree), reading files and diffs, and merging pull requests by the
// three methods GitHub offers. Everything here shells out to the git CLI; nothing is simulated.

import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";

export const GITHUB_COMMITTER = { name: "GitHub", email: "noreply@github.com" };

function identityEnv(author, committer = author) {
  const env = {};
  if (author) {
    env.GIT_AUTHOR_NAME = author.name;
    env.GIT_AUTHOR_EMAIL = author.email;
  }
  if (committer) {
    env.GIT_COMMITTER_NAME = committer.name;
    env.GIT_COMMITTER_EMAIL = committer.email;
  }
  return env;
}

// Runs git; resolves { code, stdout (Buffer), stderr (string) }. Rejects on a non-zero exit unless
// allowed in `ok`.
export function git(args, { cwd, env = {}, input, ok = [0] } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn("git", args, {
      cwd,
      env: { ...process.env, GIT_TERMINAL_PROMPT: "0", LC_ALL: "C", ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out = [];
    const err = [];
    child.stdout.on("data", (d) => out.push(d));
    child.stderr.on("data", (d) => err.push(d));
    child.on("error", reject);
    child.on("close", (code) => {
      const res = { code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() };
      if (ok.includes(code)) resolve(res);
      else {
        const e = new Error(`git ${args.join(" ")} exited ${code}: ${res.stderr.trim()}`);
        e.result = res;
        reject(e);
      }
    });
    child.stdin.end(input);
  });
}

export class Repo {
  constructor(dir) {
    this.dir = dir;
    this.queue = Promise.resolve();
  }

  // Serialises write operations on one repository (merges, admin commits). Pushes through
  // http-backend run concurrently; ref updates are compare-and-swap either way.
  exclusive(fn) {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  g(args, opts = {}) {
    return git(["--git-dir", this.dir, ...args], opts);
  }

  async init(defaultBranch) {
    await fs.mkdir(this.dir, { recursive: true });
    await git(["init", "--quiet", "--bare", `--initial-branch=${defaultBranch}`, this.dir]);
    await this.g(["config", "http.receivepack", "true"]);
    // Keep every object, so a force-pushed PR head stays readable like on GitHub.
    await this.g(["config", "gc.auto", "0"]);
  }

  async resolve(ref) {
    if (!ref) return null;
    const candidates = /^[0-9a-f]{40}$/.test(ref) ? [ref] : [`refs/heads/${ref}`, `refs/tags/${ref}`, ref];
    for (const c of candidates) {
      const r = await this.g(["rev-parse", "--verify", "--quiet", `${c}^{commit}`], { ok: [0, 1, 128] });
      if (r.code === 0) return r.stdout.toString().trim();
    }
    return null;
  }

  async branchSha(branch) {
    const r = await this.g(["rev-parse", "--verify", "--quiet", `refs/heads/${branch}`], { ok: [0, 1, 128] });
    return r.code === 0 ? r.stdout.toString().trim() : null;
  }

  async branches() {
    const r = await this.g(["for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads/"]);
    return r.stdout
      .toString()
      .split("\n")
      .filter(Boolean)
      .map((l) => {
        const [name, sha] = l.split(" ");
        return { name, sha };
      });
  }

  // Compare-and-swap update of a branch; oldSha null means "must not exist yet".
  async updateBranch(branch, newSha, oldSha) {
    const args = ["update-ref", `refs/heads/${branch}`, newSha];
    args.push(oldSha ?? "0000000000000000000000000000000000000000");
    const r = await this.g(args, { ok: [0, 1, 128] });
    return r.code === 0;
  }

  // A commit with `files` (path -> string|Buffer content, or null to delete) applied on top of
  // `parent` (or a root commit when parent is null). Built with a temporary index.
  async commitFiles({ parent, files, message, author, committer }) {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "githost-index-"));
    const env = { GIT_INDEX_FILE: path.join(tmp, "index") };
    try {
      if (parent) await this.g(["read-tree", parent], { env });
      else await this.g(["read-tree", "--empty"], { env });
      for (const [p, content] of Object.entries(files)) {
        if (content === null) {
          await this.g(["update-index", "--force-remove", "--", p], { env });
          continue;
        }
        const blob = (await this.g(["hash-object", "-w", "--stdin"], { input: Buffer.from(content) })).stdout
          .toString()
          .trim();
        await this.g(["update-index", "--add", "--cacheinfo", `100644,${blob},${p}`], { env });
      }
      const tree = (await this.g(["write-tree"], { env })).stdout.toString().trim();
      const args = ["commit-tree", tree, "-m", message];
      if (parent) args.push("-p", parent);
      const c = await this.g(args, { env: identityEnv(author, committer ?? author) });
      return c.stdout.toString().trim();
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
  }

  // { type: "file", sha, size, content } | { type: "dir", entries: [...] } | null
  async readPath(ref, p) {
    const sha = await this.resolve(ref);
    if (!sha) return null;
    const clean = p.replace(/^\/+|\/+$/g, "");
    if (clean === "") return this.readDir(sha, "");
    const ls = await this.g(["ls-tree", "-z", "-l", sha, "--", clean], { ok: [0, 128] });
    const entry = ls.stdout.toString().split("\0").filter(Boolean)[0];
    if (!entry) return null;
    const [meta, name] = entry.split("\t");
    const [mode, type, oid, size] = meta.split(/\s+/);
    if (name !== clean) return null;
    if (type === "tree") return this.readDir(sha, clean);
    if (type !== "blob") return null;
    const content = (await this.g(["cat-file", "blob", oid])).stdout;
    return { type: mode === "120000" ? "symlink" : "file", sha: oid, size: Number(size), content };
  }

  async readDir(commit, dir) {
    const spec = dir ? `${commit}:${dir}` : `${commit}^{tree}`;
    const ls = await this.g(["ls-tree", "-z", "-l", spec], { ok: [0, 128] });
    if (ls.code !== 0) return null;
    const entries = ls.stdout
      .toString()
      .split("\0")
      .filter(Boolean)
      .map((e) => {
        const [meta, name] = e.split("\t");
        const [mode, type, oid, size] = meta.split(/\s+/);
        const t = type === "tree" ? "dir" : type === "commit" ? "submodule" : mode === "120000" ? "symlink" : "file";
        return { type: t, name, path: dir ? `${dir}/${name}` : name, sha: oid, size: size === "-" ? 0 : Number(size) };
      });
    return { type: "dir", entries };
  }

  async mergeBase(a, b) {
    const r = await this.g(["merge-base", a, b], { ok: [0, 1] });
    return r.code === 0 ? r.stdout.toString().trim() : null;
  }

  async countCommits(from, to) {
    const r = await this.g(["rev-list", "--count", from ? `${from}..${to}` : to]);
    return Number(r.stdout.toString().trim());
  }

  async commitsBetween(from, to) {
    const r = await this.g(["rev-list", "--reverse", "--topo-order", `${from}..${to}`]);
    return r.stdout.toString().split("\n").filter(Boolean);
  }

  async commitMessage(sha) {
    return (await this.g(["log", "-1", "--format=%B", sha])).stdout.toString().trimEnd();
  }

  async commitInfo(sha) {
    const r = await this.g(["log", "-1", "--format=%H%x00%T%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B", sha]);
    const [h, tree, parents, an, ae, ad, cn, ce, cd, msg] = r.stdout.toString().split("\0");
    return {
      sha: h,
      tree,
      parents: parents.split(" ").filter(Boolean),
      author: { name: an, email: ae, date: ad },
      committer: { name: cn, email: ce, date: cd },
      message: msg.trimEnd(),
    };
  }

  // Files changed by a pull request: the three-dot diff merge-base(base, head)..head.
  async diffFiles(baseSha, headSha) {
    const mb = (await this.mergeBase(baseSha, headSha)) ?? baseSha;
    const raw = (await this.g(["diff-tree", "-r", "-z", "-M", "--raw", "--no-commit-id", mb, headSha])).stdout.toString();
    const num = (await this.g(["diff-tree", "-r", "-z", "-M", "--numstat", "--no-commit-id", mb, headSha])).stdout.toString();
    const files = [];
    const rawParts = raw.split("\0");
    for (let i = 0; i < rawParts.length - 1; ) {
      const meta = rawParts[i++];
      if (!meta.startsWith(":")) continue;
      const [, , oldOid, newOid, status] = meta.slice(1).split(" ");
      const letter = status[0];
      let previous;
      let filename = rawParts[i++];
      if (letter === "R" || letter === "C") {
        previous = filename;
        filename = rawParts[i++];
      }
      const st = { A: "added", D: "removed", M: "modified", R: "renamed", C: "copied", T: "changed" }[letter] ?? "changed";
      files.push({ filename, previous_filename: previous, status: st, sha: letter === "D" ? oldOid : newOid });
    }
    // numstat -z: "add\tdel\tpath\0" or, for renames, "add\tdel\t\0old\0new\0".
    const numParts = num.split("\0");
    const stats = [];
    for (let i = 0; i < numParts.length - 1; ) {
      const head = numParts[i++];
      const [a, d, p] = head.split("\t");
      let name = p;
      if (p === "") {
        i++;
        name = numParts[i++];
      }
      stats.push({ name, additions: a === "-" ? 0 : Number(a), deletions: d === "-" ? 0 : Number(d) });
    }
    const patches = await this.patches(mb, headSha);
    for (const f of files) {
      const s = stats.find((x) => x.name === f.filename) ?? { additions: 0, deletions: 0 };
      f.additions = s.additions;
      f.deletions = s.deletions;
      f.changes = s.additions + s.deletions;
      if (patches.has(f.filename)) f.patch = patches.get(f.filename);
    }
    return { mergeBase: mb, files };
  }

  async patches(a, b) {
    const out = (await this.g(["diff", "-M", "--no-color", "--no-ext-diff", a, b])).stdout.toString();
    const map = new Map();
    for (const chunk of out.split(/^(?=diff --git )/m)) {
      const m = /^\+\+\+ b\/(.*)$/m.exec(chunk) ?? /^--- a\/(.*)$/m.exec(chunk);
      const at = chunk.indexOf("\n@@");
      if (m && at >= 0) map.set(m[1], chunk.slice(at + 1).replace(/\n$/, ""));
    }
    return map;
  }

  // Three-way merge of two commits without a working tree: { clean, tree }.
  async mergeTree(base, head) {
    const r = await this.g(["merge-tree", "--write-tree", "--no-messages", base, head], { ok: [0, 1] });
    return { clean: r.code === 0, tree: r.stdout.toString().split("\n")[0].trim() };
  }

  // Merges `head` into branch `base` by GitHub's method; returns the new tip of base or null when
  // the changes conflict. The base ref moves by compare-and-swap from `baseSha`.
  async mergePull({ base, baseSha, headSha, method, title, message, author }) {
    const committer = GITHUB_COMMITTER;
    let tip;
    if (method === "merge" || method === "squash") {
      const m = await this.mergeTree(baseSha, headSha);
      if (!m.clean) return null;
      const args = ["commit-tree", m.tree, "-p", baseSha];
      if (method === "merge") args.push("-p", headSha);
      args.push("-m", message ? `${title}\n\n${message}` : title);
      tip = (await this.g(args, { env: identityEnv(author, committer) })).stdout.toString().trim();
    } else {
      tip = await this.rebaseCommits(baseSha, headSha, committer);
      if (!tip) return null;
    }
    if (!(await this.updateBranch(base, tip, baseSha))) throw new Error(`branch ${base} moved during the merge`);
    return tip;
  }

  // Replays base..head onto base one commit at a time (authors kept, GitHub as committer), in a
  // temporary worktree, as GitHub's "rebase and merge" does.
  async rebaseCommits(baseSha, headSha, committer) {
    const mb = (await this.mergeBase(baseSha, headSha)) ?? baseSha;
    const commits = (await this.g(["rev-list", "--reverse", "--no-merges", `${mb}..${headSha}`])).stdout
      .toString()
      .split("\n")
      .filter(Boolean);
    const wt = await fs.mkdtemp(path.join(os.tmpdir(), "githost-rebase-"));
    await fs.rm(wt, { recursive: true, force: true });
    await this.g(["worktree", "add", "--detach", "--quiet", wt, baseSha]);
    try {
      if (commits.length === 0) return baseSha;
      const r = await git(["cherry-pick", "--allow-empty", "--keep-redundant-commits", ...commits], {
        cwd: wt,
        env: identityEnv(null, committer),
        ok: [0, 1],
      });
      if (r.code !== 0) {
        await git(["cherry-pick", "--abort"], { cwd: wt, ok: [0, 1, 128] });
        return null;
      }
      return (await git(["rev-parse", "HEAD"], { cwd: wt })).stdout.toString().trim();
    } finally {
      await this.g(["worktree", "remove", "--force", wt], { ok: [0, 128] });
      await fs.rm(wt, { recursive: true, force: true });
    }
  }
}
