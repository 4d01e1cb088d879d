#!/usr/bin/env python3
"""Helper of bench/dashboard/run.sh (Python 3 standard library only).

usage: dashboard.py definition                       the 20-stage .tollgate.yaml, on stdout
       dashboard.py fill DB [RUNS] [AUDIT_PER_RUN] [SEED]
                                                     fills a database that `tollgate serve` created
                                                     and migrated (tollgate stopped)
       dashboard.py stats DB                         file size and row counts
       dashboard.py measure BASE_URL DB ROUNDS       times the dashboard's first render
       dashboard.py plans DB                         the API's SQL on this database: plan and time
       dashboard.py sql DB FILE                      runs the SQL in FILE on DB (run.sh's EXTRA_SQL)

fill: one pipeline `storefront` (host github, source repository acme/storefront) of 20 stages
s01..s20 (a chain with two fan-outs and fan-ins; checks, soaks, approvals, windows, verification
with rollback, a manual merge), and RUNS runs (default 10,000) spread over the last 90 days: most
succeeded with every stage promoted, some failed (a stage's checks or its verification), a few
rolled back (a failed verification, or /rollback after success), some aborted or superseded, and
the newest one running with its second fan-out in flight (promoted, verifying, open, merging,
preparing). Each run has its `state` as pipeline::to_json(RunState) writes it (every key with its
type, nlohmann's sorted key order, compact), its `version`, its 20 run_stages rows and about
AUDIT_PER_RUN (default 25) audit rows numbered 1.. per run, with ids in time order across runs.
Deterministic for a SEED, relative to the current time. Not filled: jobs, run_refs, deliveries
(the dashboard does not read them).

measure: each round opens a fresh connection (one curl process per round, so a new TCP connection)
and sends over it, keep-alive, one after the other, every request of the dashboard's first render
of `#/` (service/dashboard/index.html and app.js): GET /, /assets/app.css, /assets/app.js,
/api/v1/pipelines, /api/v1/delivery and /api/v1/runs?host=&repo=&pipeline=&limit=10 (one per
pipeline). A browser sends the two assets together, then pipelines and delivery together, then
the runs: the sum of the six is an upper bound of the server's part of the critical path. Then,
for information, the run view of the newest run: /api/v1/runs/{id} and /api/v1/audit?run={id}&limit=500.
A request's server time is curl's time_starttransfer - time_pretransfer: from the request sent to
the first byte of the answer (tollgate writes an answer once it is complete, so on loopback this
is the server's time); `total` is time_total - time_pretransfer (with the body's transfer).
"""
import copy
import json
import math
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse

HOST = "github"
SOURCE_REPO = "acme/storefront"
PIPELINE = "storefront"
RUNS_PAGE = 10  # app.js: RUNS_PAGE
TARGET_MS = 200.0
MIN = 60_000  # ms

# ---------------------------------------------------------------------------------------------
# The pipeline
#   s01 -> s02 -> s03 -> {s04 s05 s06 s07} -> s08 -> s09 -> s10 -> {s11 .. s16} -> s17 -> s18 -> s19 -> s20


def _stages():
    staging = ["eu-west-1", "us-east-1", "ap-southeast-1", "sa-east-1"]
    prod = [("eu-west-1", "Europe/Dublin"), ("eu-central-1", "Europe/Berlin"), ("us-east-1", "America/New_York"),
            ("us-west-2", "America/Los_Angeles"), ("ap-southeast-1", "Asia/Singapore"), ("ap-northeast-1", "Asia/Tokyo")]
    out = []

    def add(n, after, repo, file, **kw):
        s = {"name": f"s{n:02d}", "after": after, "repo": repo, "file": file, "checks": "all", "soak_s": None,
             "approvals": None, "window": None, "verify": None, "on_failure": "stop", "merge": "auto"}
        s.update(kw)
        out.append(s)

    http = 'http: { url: "https://storefront.%s.acme.example/healthz", expect: 200, for: %s }'
    add(1, [], "acme/env-dev", "apps/storefront/values.yaml")
    add(2, ["s01"], "acme/env-dev", "apps/storefront-int/values.yaml",
        verify={"timeout": "10m", "steps": ["wait: 1m", http % ("int", "30s")]})
    add(3, ["s02"], "acme/env-qa", "apps/storefront/values.yaml", checks=["ci", "e2e"], soak_s=600)
    for i, region in enumerate(staging):
        add(4 + i, ["s03"], "acme/env-staging", f"clusters/{region}/storefront/values.yaml",
            verify={"timeout": "15m", "steps": ["wait: 2m", "checks: [argocd/sync, smoke-tests]"]}, on_failure="rollback")
    add(8, ["s04", "s05", "s06", "s07"], "acme/fleet-inventory", "staging/storefront.yaml", checks="none")
    add(9, ["s08"], "acme/env-preprod", "apps/storefront/values.yaml", soak_s=1800,
        approvals={"count": 1, "from": ["@acme/qa"], "allow_author": True})
    add(10, ["s09"], "acme/env-prod-canary", "apps/storefront/values.yaml",
        approvals={"count": 1, "from": ["@acme/sre"], "allow_author": False},
        window={"days": ["mon", "tue", "wed", "thu", "fri"], "hours": "07:00-19:00", "timezone": "Europe/Berlin"},
        verify={"timeout": "20m", "steps": ["wait: 2m", 'prometheus: { url: "http://prometheus.monitoring.svc:9090", '
                                            'query: "sum(rate(http_requests_total{app=\\"storefront\\",code=~\\"5..\\"}[5m]))", '
                                            'below: 1, for: 5m }']},
        on_failure="rollback")
    for i, (region, tz) in enumerate(prod):
        short = region.split("-")[0]
        add(11 + i, ["s10"], f"acme/env-prod-{short}", f"clusters/{region}/storefront/values.yaml", soak_s=900,
            approvals={"count": 1, "from": [f"@acme/sre-{short}"], "allow_author": False},
            window={"days": ["mon", "tue", "wed", "thu"], "hours": "08:00-17:00", "timezone": tz},
            verify={"timeout": "15m", "steps": ["wait: 1m", http % (region, "1m")]}, on_failure="rollback")
    add(17, [f"s{n}" for n in range(11, 17)], "acme/fleet-inventory", "prod/storefront.yaml", checks="none")
    add(18, ["s17"], "acme/env-dr", "apps/storefront/values.yaml", checks=["ci"], merge="manual")
    add(19, ["s18"], "acme/compliance", "releases/storefront.yaml",
        approvals={"count": 2, "from": ["@acme/change-board"], "allow_author": False})
    add(20, ["s19"], "acme/fleet-inventory", "released/storefront.yaml", checks="none")
    return out


STAGES = _stages()  # in a topological order
BY_NAME = {s["name"]: s for s in STAGES}
ORDER = [s["name"] for s in STAGES]


def definition_text():
    out = ["# bench/dashboard: one pipeline of 20 stages with two fan-outs and fan-ins.", "version: 1", "pipelines:",
           f"  - name: {PIPELINE}", "    on:", "      merged:", "        branches: [main]", "    release:",
           '      version: "{{source.short_sha}}"', "    stages:"]
    for s in STAGES:
        out.append(f"      - name: {s['name']}")
        if s["after"]:
            out.append(f"        after: [{', '.join(s['after'])}]")
        out += [f"        repo: {s['repo']}", "        edits:", f"          - file: {s['file']}",
                '            set: { image.tag: "{{release.version}}" }', "        pr:",
                '          title: "storefront {{release.version}} -> {{stage.name}}"', "          labels: [promotion]"]
        if s["merge"] != "auto":
            out.append(f"        merge: {s['merge']}")
        c = s["checks"]
        out += ["        gates:", f"          checks: {c if isinstance(c, str) else '[' + ', '.join(c) + ']'}"]
        if s["soak_s"]:
            out.append(f"          soak: {s['soak_s'] // 60}m")
        if s["approvals"]:
            a = s["approvals"]
            out.append(f"          approvals: {{ count: {a['count']}, from: [\"{a['from'][0]}\"], "
                       f"allow_author: {str(a['allow_author']).lower()} }}")
        if s["window"]:
            w = s["window"]
            out.append(f"          window: {{ days: [{', '.join(w['days'])}], hours: \"{w['hours']}\", timezone: {w['timezone']} }}")
        if s["verify"]:
            out += ["        verify:", f"          timeout: {s['verify']['timeout']}", "          steps:"]
            out += [f"            - {step}" for step in s["verify"]["steps"]]
            out.append(f"        on_failure: {s['on_failure']}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Runs

AUTHORS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar"]
APPROVERS = ["alice", "carol", "grace", "trent", "victor", "walter", "peggy"]
TITLES = ["Faster refunds", "Fix cart rounding", "Bump checkout SDK", "Add wishlist API", "Cache product pages",
          "Retry payment webhooks", "Remove legacy coupons", "Upgrade to Node 20", "Structured logs for orders",
          "Paginate order history", "Fix time zone in receipts", "Feature flag: new search", "Tune the DB pool size",
          "Harden CSRF checks", "Translate checkout to pt-BR", "Lazy-load images"]
TERMINAL = ("promoted", "skipped", "failed", "aborted", "superseded")


def empty_stage(name):
    """A stage as pipeline::to_json writes a waiting one: every key."""
    return {"name": name, "status": "waiting", "branch": "", "pr": 0, "head_sha": "", "head_set_at": 0,
            "head_stale": False, "expected_merge_sha": "", "merge_sha": "", "merged_by": "", "merged_by_person": False,
            "merge_refused_at": None, "checks": {}, "approvals": [], "hold": None, "started_at": None, "opened_at": None,
            "gates_passed_at": None, "verify_started_at": None, "finished_at": None, "verify_step": 0,
            "step_started_at": None, "passing_since": None, "probe_seq": 0, "attempt": 0, "retries": 0, "merge_seq": 0,
            "failed_in": "waiting", "failure": "", "rollback": "none", "revert_pr": 0, "revert_head_sha": "",
            "status_state": "", "status_description": "", "sticky_rev": 0, "timers": {}, "seen_comments": [],
            "seen_reviews": []}


def run_id_of(sha):
    """service/engine_service.cpp make_run_id: FNV-1a 64 of host, repo, pipeline, sha; 12 hex digits."""
    h = 1469598103934665603
    for part in (HOST, SOURCE_REPO, PIPELINE, sha):
        for c in part.encode():
            h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
        h = ((h ^ 0xFF) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return ("%016x" % h)[:12]


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.pr_next = {}  # environment repository -> its next PR number
        self.comment_id = 9_000_000
        self.review_id = 5_000_000

    def sha(self):
        return "%040x" % self.r.getrandbits(160)

    def pr(self, repo):
        n = self.pr_next.get(repo, 100 + self.r.randint(0, 400))
        self.pr_next[repo] = n + 1
        return n

    @staticmethod
    def required(s):
        c = s["checks"]
        return [] if c == "none" else (["ci", "e2e", "kubeconform"] if c == "all" else list(c))

    def stage(self, run_id, name, t0, end, author, now):
        """One stage from t0 to `end`: promoted | checks_failed | verify_failed | rolled_back (terminal),
        or open | merging | verifying | preparing (in flight at `now`).
        Returns (stage, audit entries (at, stage, from, to, actor, reason), end time or None)."""
        s, r = BY_NAME[name], self.r
        st = empty_stage(name)
        au = []

        def log(at, frm, to, actor, reason):
            au.append((at, name, frm, to, actor, reason))

        st["started_at"] = t0
        st["branch"] = f"tollgate/{PIPELINE}/{name}/{run_id}"
        st["status"] = "preparing"
        log(t0, "waiting", "preparing", "tollgate", "upstream promoted" if s["after"] else "run started")
        if end == "preparing":  # the push failed once and waits to be retried
            st["attempt"] = 1
            st["timers"] = {"retry": now + 20_000}
            log(t0 + 4_000, "preparing", "preparing", "tollgate", "retrying (attempt 2): git push answered 502")
            return st, au, None
        t = t0 + r.randint(2_000, 9_000)
        st.update(head_sha=self.sha(), head_set_at=t, pr=self.pr(s["repo"]), opened_at=t, status="open", sticky_rev=1)
        log(t - 1_500, "preparing", "preparing", "tollgate", f"branch '{st['branch']}' at {st['head_sha'][:7]}")
        log(t, "preparing", "open", "tollgate", f"opened PR #{st['pr']}")
        checked = t + r.randint(1, 5) * MIN
        for c in self.required(s):
            st["checks"][c] = {"at": checked - r.randint(0, 40_000), "sha": st["head_sha"], "state": "success"}
        if end == "checks_failed":
            bad = self.required(s)[0]
            st["checks"][bad] = {"at": checked, "sha": st["head_sha"], "state": "failure"}
            st.update(failed_in="open", failure=f"check '{bad}' failed on {st['head_sha'][:7]}", status="failed",
                      finished_at=checked, status_state="failure", sticky_rev=3)
            st["status_description"] = st["failure"]
            log(checked, "open", "failed", "tollgate", st["failure"])
            return st, au, checked
        gates = checked
        if s["approvals"]:
            pool = [a for a in APPROVERS if a != author]
            first = r.randint(0, len(pool) - 1)
            for k in range(s["approvals"]["count"]):
                at = checked + r.randint(2, 40) * MIN
                via_review = r.random() < 0.3
                login = pool[(first + k) % len(pool)]
                if end == "open" and at > now:
                    continue
                st["approvals"].append({"at": at, "login": login, "sha": st["head_sha"], "via_review": via_review})
                if via_review:
                    self.review_id += 1
                    st["seen_reviews"].append(self.review_id)
                else:
                    self.comment_id += 1
                    st["seen_comments"].append(self.comment_id)
                log(at, "open", "open", login, f"approved {st['head_sha'][:7]} ({'review' if via_review else '/approve'})")
                gates = max(gates, at)
            st["approvals"].sort(key=lambda a: a["at"])
        if s["soak_s"]:
            gates = max(gates, t0 + s["soak_s"] * 1000)
        if end == "open":  # waiting for its gates
            for c in st["checks"].values():
                if c["at"] > now:
                    c.update(state="pending", at=t + 1_000)
            st["timers"] = {"resync": now + 4 * MIN}
            if s["soak_s"] and t0 + s["soak_s"] * 1000 > now:
                st["timers"]["soak"] = t0 + s["soak_s"] * 1000
            n = len(st["approvals"])
            need = s["approvals"]["count"] if s["approvals"] else 0
            st.update(status_state="pending", sticky_rev=2,
                      status_description=f"waiting for approvals ({n} of {need})" if n < need
                      else "waiting for the window" if s["window"] else "waiting for the soak")
            return st, au, None
        st.update(gates_passed_at=gates, expected_merge_sha=st["head_sha"], merge_seq=1, status="merging")
        log(gates, "open", "merging", "tollgate", "gates passed")
        if end == "merging":
            st.update(status_state="pending", status_description="merging", sticky_rev=3, timers={"resync": now + 2 * MIN})
            return st, au, None
        if s["merge"] == "manual":
            merged = gates + r.randint(3, 90) * MIN
            st.update(merged_by=r.choice(APPROVERS), merged_by_person=True)
        else:
            merged = gates + r.randint(1_000, 6_000)
            st["merged_by"] = "tollgate"
        st["merge_sha"] = self.sha()
        how = f"merged by @{st['merged_by']}" if st["merged_by_person"] else "merged"
        t = merged
        if s["verify"]:
            st.update(status="verifying", verify_started_at=merged)
            log(merged, "merging", "verifying", st["merged_by"], how)
            steps = s["verify"]["steps"]
            if end == "verifying":
                st.update(verify_step=1, step_started_at=merged + 60_000, probe_seq=2, status_state="pending",
                          status_description=f"verifying (step 2 of {len(steps)})", sticky_rev=4,
                          timers={"verify_poll": now + 15_000, "verify_timeout": now + 10 * MIN})
                return st, au, None
            for k, step in enumerate(steps):
                st["step_started_at"] = t
                t += r.randint(60_000, 180_000)
                if step.startswith("checks:"):
                    for c in ("argocd/sync", "smoke-tests"):
                        st["checks"][c] = {"at": t - 20_000, "sha": st["merge_sha"], "state": "success"}
                elif not step.startswith("wait"):
                    st.update(probe_seq=r.randint(2, 8), passing_since=t - 60_000)
            if end in ("verify_failed", "rolled_back"):
                st.update(verify_step=len(steps) - 1, failed_in="verifying", status="failed", finished_at=t,
                          status_state="failure", sticky_rev=5,
                          failure=f"verification step {len(steps)} failed: "
                                  + ("check 'smoke-tests' failed" if "checks" in steps[-1] else "the probe did not pass within its timeout"))
                st["status_description"] = st["failure"]
                if "checks" in steps[-1]:
                    st["checks"]["smoke-tests"]["state"] = "failure"
                log(t, "verifying", "failed", "tollgate", st["failure"])
                if end == "rolled_back":
                    st.update(rollback="done", revert_pr=self.pr(s["repo"]), revert_head_sha=self.sha())
                    log(t, "failed", "failed", "tollgate", "rolling back: " + st["failure"])
                    log(t + r.randint(20_000, 120_000), "failed", "failed", "tollgate", f"revert PR #{st['revert_pr']} merged")
                return st, au, t
            st.update(verify_step=len(steps), step_started_at=None, passing_since=None)
            log(t, "verifying", "promoted", "tollgate", "verified")
        else:
            log(merged, "merging", "promoted", st["merged_by"], how)
        st.update(status="promoted", finished_at=t, status_state="success", status_description="promoted",
                  sticky_rev=r.randint(4, 6))
        return st, au, t

    def run(self, created, kind, now, pr_number):
        """kind: succeeded | failed | rolled_back | rollback_after_success | aborted | superseded | running.
        Returns (state, audit entries)."""
        r = self.r
        sha = self.sha()
        run_id = run_id_of(sha)
        author = r.choice(AUTHORS)
        au = [(created, "", "queued", "running", "tollgate", f"started by the merge of {SOURCE_REPO}#{pr_number} into main")]
        plan = {n: "promoted" for n in ORDER}
        cut = None  # where the run ended early
        if kind == "rolled_back":
            cut = r.choice([n for n in ORDER if BY_NAME[n]["on_failure"] == "rollback"])
            plan[cut] = "rolled_back"
        elif kind == "failed":
            cut = r.choice([n for n in ORDER if BY_NAME[n]["checks"] != "none"])
            verify_stop = BY_NAME[cut]["verify"] and BY_NAME[cut]["on_failure"] == "stop"
            plan[cut] = "verify_failed" if verify_stop and r.random() < 0.5 else "checks_failed"
        elif kind in ("aborted", "superseded"):
            cut = r.choice(ORDER[1:19])
            plan[cut] = "open"
        elif kind == "running":  # the second fan-out in flight
            plan.update(s11="promoted", s12="verifying", s13="open", s14="merging", s15="open", s16="preparing")
        stages, ended = {}, {}
        stop_at = None  # when a failure, abort or supersede ended the run
        for n in ORDER:
            ups = BY_NAME[n]["after"]
            if stop_at is not None or any(stages[u]["status"] not in ("promoted", "skipped") for u in ups):
                stages[n] = empty_stage(n)
                continue
            t0 = max([ended[u] for u in ups], default=created) + r.randint(300, 2_500)
            when = now
            if kind in ("aborted", "superseded") and n == cut:
                when = t0 + r.randint(1, 30) * MIN
            st, stage_au, t = self.stage(run_id, n, t0, plan[n], author, when)
            stages[n] = st
            au += stage_au
            if t is not None:
                ended[n] = t
            if kind in ("aborted", "superseded") and n == cut:
                stop_at = when
            elif st["status"] == "failed":
                stop_at = t + (r.randint(20_000, 150_000) if st["rollback"] == "done" else 0)
        status = {"rolled_back": "failed", "rollback_after_success": "succeeded"}.get(kind, kind)
        finished = None
        if kind != "running":
            if kind in ("failed", "rolled_back"):
                reason = f"stage '{cut}' failed" + (" and was rolled back" if kind == "rolled_back" else ": " + stages[cut]["failure"])
                actor = "tollgate"
                finished = stop_at
            elif kind == "aborted":
                actor = r.choice(APPROVERS)
                reason = f"aborted by @{actor}: " + r.choice(["bad release", "wrong commit", "incident in progress"])
                finished = stop_at
            elif kind == "superseded":
                actor = "tollgate"
                reason = f"superseded by run '{run_id_of(self.sha())}'"
                finished = stop_at
            else:
                actor, reason = "tollgate", "every stage promoted"
                finished = max(ended.values()) + r.randint(200, 2_000)
            for n in ORDER:  # end_run: every stage not ended is aborted (or superseded)
                st = stages[n]
                if st["status"] in TERMINAL:
                    continue
                to = "superseded" if kind == "superseded" else "aborted"
                au.append((finished, n, st["status"], to, actor, reason))
                if st["pr"]:
                    st.update(status_state="error", status_description=f"{to}: {reason}")
                st.update(status=to, finished_at=finished, timers={})
            au.append((finished, "", "running", status, actor, reason))
        if kind == "rollback_after_success":  # /rollback of a promoted stage later on
            n = r.choice([x for x in ORDER if BY_NAME[x]["on_failure"] == "rollback"])
            st = stages[n]
            st.update(rollback="done", revert_pr=self.pr(BY_NAME[n]["repo"]), revert_head_sha=self.sha())
            by = r.choice(APPROVERS)
            at = min(finished + r.randint(10, 600) * MIN, now - 2 * MIN)
            au.append((at, n, "promoted", "promoted", by, "rolling back (/rollback)"))
            au.append((at + 90_000, n, "promoted", "promoted", "tollgate", f"revert PR #{st['revert_pr']} merged"))
            au.append((at + 90_000, "", "succeeded", "failed", "tollgate", f"stage '{n}' rolled back"))
            status = "failed"
        state = {"version": 1, "id": run_id, "pipeline": PIPELINE, "status": status,
                 "source": {"repo": SOURCE_REPO, "branch": "main", "sha": sha, "pr": pr_number, "author": author,
                            "title": r.choice(TITLES)},
                 "release": [["version", sha[:7]]], "created_at": created, "finished_at": finished,
                 "stages": [stages[n] for n in ORDER]}
        return state, au


def shape_audit(r, au, want):
    """About `want` rows per run: a run's first and last entries and a sample of the others, or, for
    a short run, its entries and the status updates a run accumulates in between."""
    au.sort(key=lambda a: a[0])
    if len(au) > want:
        keep = sorted(r.sample(range(1, len(au) - 1), want - 2))
        return [au[0]] + [au[i] for i in keep] + [au[-1]]
    busy = [a for a in au if a[1] and a[3] in ("open", "merging", "verifying", "preparing")] or au[:1]
    while len(au) < want:
        a = r.choice(busy)
        au.append((a[0] + r.randint(1_000, 60_000), a[1], a[3], a[3], "tollgate",
                   r.choice(["checks settled", "status comment updated", "retrying (attempt 2): the host answered 502",
                             "waiting for the window to open", "head confirmed"])))
    au.sort(key=lambda a: a[0])
    return au


def fill(db_path, runs, audit_per_run, seed):
    gen = Gen(seed)
    r = gen.r
    now = int(time.time() * 1000)
    span = 90 * 86_400_000
    definition = definition_text()
    definition_sha = gen.sha()
    db = sqlite3.connect(db_path, isolation_level=None)
    if db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]:
        sys.exit("fill: the database already has runs")
    db.execute("PRAGMA synchronous=OFF")
    t_start = time.time()
    mix = (["succeeded"] * 860 + ["failed"] * 50 + ["rolled_back"] * 10 + ["rollback_after_success"] * 5 +
           ["aborted"] * 30 + ["superseded"] * 45)
    run_rows, stage_rows, audit_rows, counts = [], [], [], {}
    newest_id = None
    for i in range(runs):
        newest = i == runs - 1
        if newest:
            # Runs take ~2-3 h: the newest started 3.5 h ago, its second fan-out 75 min ago.
            created, kind = now - 210 * MIN, "running"
            saved = copy.deepcopy(gen)
            state, _ = gen.run(created, kind, now, 1000 + i)
            s10_end = state["stages"][9]["finished_at"]
            gen = saved  # again, the same run, started so that s10 ended just before the fan-out
            created -= (s10_end - (now - 75 * MIN)) + 60_000
            r = gen.r
        else:
            # Every other run has ended by now: they take 2-5 h.
            created = now - span + int(i * (span - 6 * 60 * MIN) / max(1, runs - 1)) + r.randint(-200_000, 200_000)
            kind = r.choice(mix)
        if i and i % 700 == 0:
            definition_sha = gen.sha()  # the pipeline file's commit changes now and then
        state, au = gen.run(created, kind, now, 1000 + i)
        run_id = state["id"]
        newest_id = run_id
        counts[kind] = counts.get(kind, 0) + 1
        au = shape_audit(r, au, audit_per_run + r.randint(-4, 4))
        updated = max(au[-1][0], created)
        state_text = json.dumps(state, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        run_rows.append((run_id, HOST, SOURCE_REPO, PIPELINE, state["status"], definition, definition_sha, state_text,
                         created, updated, state["finished_at"], state["release"][0][1]))
        for st in state["stages"]:
            stage_rows.append((run_id, st["name"], HOST, SOURCE_REPO, PIPELINE, st["status"], st["rollback"], created,
                               st["started_at"], st["finished_at"]))
        for seq, (at, stage, frm, to, actor, reason) in enumerate(au, 1):
            audit_rows.append((at, run_id, seq, stage, frm, to, actor, reason))
    t_gen = time.time() - t_start
    audit_rows.sort(key=lambda a: a[0])  # ids in time order, runs interleaved, as the engine writes them
    t_write = time.time()
    db.execute("BEGIN")
    db.executemany("INSERT INTO runs (id, host, repo, pipeline, status, definition, definition_sha, state, created_at, "
                   "updated_at, finished_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", run_rows)
    db.executemany("INSERT INTO run_stages (run_id, stage, host, repo, pipeline, status, rollback, run_created, "
                   "started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", stage_rows)
    db.execute("COMMIT")
    db.execute("BEGIN")
    db.executemany("INSERT INTO audit (run_id, seq, at, stage, from_state, to_state, actor, reason, input) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   ((run_id, seq, at, stage, frm, to, actor, reason, f"delivery:{k}" if k % 3 else f"job:{k}")
                    for k, (at, run_id, seq, stage, frm, to, actor, reason) in enumerate(audit_rows, 1)))
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    avg_state = sum(len(x[7]) for x in run_rows) / max(1, len(run_rows))
    print(f"fill: {runs:,} runs ({', '.join(f'{k} {v:,}' for k, v in sorted(counts.items()))}); "
          f"{len(stage_rows):,} run_stages rows; {len(audit_rows):,} audit rows; state JSON {avg_state / 1024:.1f} KiB a run "
          f"on average; generated in {t_gen:.1f} s, written in {time.time() - t_write:.1f} s; newest run {newest_id}")


# ---------------------------------------------------------------------------------------------
# Stats, measurement, plans


def stats(db_path):
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    size = os.path.getsize(db_path)
    page = db.execute("PRAGMA page_size").fetchone()[0]
    counts = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("runs", "run_stages", "audit", "jobs", "run_refs", "deliveries")}
    by_status = db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY 2 DESC").fetchall()
    state = db.execute("SELECT AVG(length(state)), MAX(length(state)) FROM runs").fetchone()
    span = db.execute("SELECT MIN(created_at), MAX(created_at) FROM runs").fetchone()
    days = (span[1] - span[0]) / 86_400_000 if span[0] is not None else 0
    print(f"database: {size / 1048576:.1f} MiB ({size:,} bytes, {page // 1024} KiB pages); "
          + ", ".join(f"{t} {n:,}" for t, n in counts.items()) + " rows")
    print(f"runs by status: {', '.join(f'{s} {n:,}' for s, n in by_status)}; over {days:.1f} days; "
          f"state JSON {state[0] / 1024:.1f} KiB on average (max {state[1] / 1024:.1f} KiB)")


def pct(values, q):
    """Nearest rank, as the API's quantile()."""
    v = sorted(values)
    return v[max(1, min(len(v), math.ceil(q * len(v)))) - 1]


def curl_round(urls):
    fmt = "%{http_code} %{size_download} %{time_pretransfer} %{time_starttransfer} %{time_total} %{num_connects}\\n"
    args = ["curl", "-sS", "--max-time", "60", "-H", "Accept: application/json", "-w", fmt]
    for u in urls:
        args += ["-o", "/dev/null", u]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout.split("\n")
    rows = []
    for line in out[:len(urls)]:
        code, size, pre, start, total, connects = line.split()
        rows.append({"code": int(code), "bytes": int(size), "server_ms": (float(start) - float(pre)) * 1000,
                     "total_ms": (float(total) - float(pre)) * 1000, "connects": int(connects)})
    return rows


def measure(base, db_path, rounds):
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    newest = db.execute("SELECT id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1").fetchone()[0]
    db.close()
    q = urllib.parse.urlencode({"host": HOST, "repo": SOURCE_REPO, "pipeline": PIPELINE, "limit": RUNS_PAGE})
    render = [("GET /", "/"), ("GET /assets/app.css", "/assets/app.css"), ("GET /assets/app.js", "/assets/app.js"),
              ("GET /api/v1/pipelines", "/api/v1/pipelines"), ("GET /api/v1/delivery", "/api/v1/delivery"),
              (f"GET /api/v1/runs?...&limit={RUNS_PAGE}", f"/api/v1/runs?{q}")]
    extra = [("GET /api/v1/runs/{newest}", f"/api/v1/runs/{newest}"),
             ("GET /api/v1/audit?run={newest}&limit=500", f"/api/v1/audit?run={newest}&limit=500")]
    names = [n for n, _ in render + extra]
    urls = [base + p for _, p in render + extra]
    # The answers, once: are they what the dashboard needs?
    check = {}
    for n, p in render[3:] + extra:
        out = subprocess.run(["curl", "-sS", "--max-time", "60", base + p], capture_output=True, text=True, check=True).stdout
        check[n] = json.loads(out)
    per = {n: [] for n in names}
    tot = {n: [] for n in names}
    sums, sums_total, first = [], [], None
    for k in range(rounds):
        rows = curl_round(urls)
        for n, row in zip(names, rows):
            if row["code"] != 200:
                sys.exit(f"measure: {n} answered {row['code']}")
            per[n].append(row["server_ms"])
            tot[n].append(row["total_ms"])
        s = sum(row["server_ms"] for row in rows[:len(render)])
        st = sum(row["total_ms"] for row in rows[:len(render)])
        sums.append(s)
        sums_total.append(st)
        if k == 0:
            first = (rows, s, st)
    sizes = {n: row["bytes"] for n, row in zip(names, first[0])}
    p = check["GET /api/v1/pipelines"]["pipelines"]
    stages = p[0]["stages"] if p else []
    print(f"answers: pipelines {len(p)} with {len(stages)} stages ({sum(1 for s in stages if s['current'])} with a current "
          f"version, {sum(1 for s in stages if s['latest'])} with a latest), counts {p[0]['counts'] if p else None}; "
          f"runs page {len(check[render[5][0]]['runs'])} runs; delivery "
          f"{json.dumps({k: v for k, v in check['GET /api/v1/delivery']['pipelines'][0].items() if k in ('deployments', 'changes', 'failed_changes')}) if check['GET /api/v1/delivery']['pipelines'] else '-'}; "
          f"newest run {newest} ({check[extra[0][0]]['status']}, stages "
          f"{', '.join(sorted(set(s['status'] for s in check[extra[0][0]]['stages'])))}); its audit {len(check[extra[1][0]]['entries'])} entries")
    print()
    print(f"{rounds} rounds, each over a fresh keep-alive connection; server time = time to first byte "
          f"(ms); round 1 is the first after the server started (cold caches)")
    print()
    print("| request | bytes | median | p90 | max | round 1 | median total (with transfer) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for i, n in enumerate(names):
        if i == len(render):
            print("| **first render: sum of the six** | | **%.1f** | %.1f | %.1f | %.1f | %.1f |" % (
                statistics.median(sums), pct(sums, 0.9), max(sums), first[1], statistics.median(sums_total)))
            print("| *run view, for information:* | | | | | | |")
        v = per[n]
        print(f"| {n} | {sizes[n]:,} | {statistics.median(v):.1f} | {pct(v, 0.9):.1f} | {max(v):.1f} | {first[0][i]['server_ms']:.1f} | {statistics.median(tot[n]):.1f} |")
    med = statistics.median(sums)
    print()
    print(f"first render, server time (median of the per-round sums): {med:.1f} ms; p90 {pct(sums, 0.9):.1f} ms; "
          f"target < {TARGET_MS:.0f} ms: {'PASS' if med < TARGET_MS else 'FAIL'}")
    json.dump({"rounds": rounds, "sum_median_ms": med, "sum_p90_ms": pct(sums, 0.9), "round1_ms": first[1],
               "per": {n: {"median": statistics.median(per[n]), "p90": pct(per[n], 0.9)} for n in names}},
              open(os.environ.get("MEASURE_JSON", os.devnull), "w"))
    return 0 if med < TARGET_MS else 1


# The API's queries (service/api.cpp) as the first render runs them, with this pipeline's values
# (the API puts only the filters a request gives into its WHERE clause). Keep in step with api.cpp.
SUMMARY = ("id, host, repo, pipeline, status, version, json_extract(state, '$.source'), "
           "(SELECT json_group_array(json_array(json_extract(value, '$.name'), json_extract(value, '$.status'))) "
           "FROM json_each(runs.state, '$.stages')), created_at, updated_at, finished_at, rowid")


def api_queries(now_ms):
    h, rp, pl = HOST, SOURCE_REPO, PIPELINE
    return [
        ("pipelines: groups",
         "SELECT host, repo, pipeline, COUNT(*), SUM(status IN ('queued', 'running')) FROM runs "
         "GROUP BY host, repo, pipeline ORDER BY repo, pipeline, host", (), 1),
        ("pipelines: newest run", f"SELECT {SUMMARY}, definition FROM runs WHERE host = ? AND repo = ? AND "
         "pipeline = ? ORDER BY created_at DESC, rowid DESC LIMIT 1", (h, rp, pl), 1),
        ("pipelines: current (x20 stages)",
         "SELECT s.run_id, r.version, s.finished_at FROM run_stages s JOIN runs r ON r.id = s.run_id "
         "WHERE s.host = ? AND s.repo = ? AND s.pipeline = ? AND s.stage = ? AND s.finished_at IS NOT NULL AND "
         "s.status IN ('promoted', 'skipped') ORDER BY s.finished_at DESC LIMIT 1", (h, rp, pl, "STAGE"), 20),
        ("pipelines: latest (x20 stages)",
         "SELECT s.run_id, s.status, r.version FROM run_stages s JOIN runs r ON r.id = s.run_id "
         "WHERE s.host = ? AND s.repo = ? AND s.pipeline = ? AND s.stage = ? AND s.started_at IS NOT NULL "
         "ORDER BY s.run_created DESC LIMIT 1", (h, rp, pl, "STAGE"), 20),
        ("delivery (30d)",
         "SELECT host, repo, pipeline, status, created_at, finished_at, "
         "(SELECT MIN(finished_at) FROM run_stages WHERE run_id = runs.id AND rollback <> 'none') AS rolled_back, "
         "(SELECT MIN(at) FROM audit WHERE run_id = runs.id AND stage = '' AND to_state = 'succeeded') AS deployed "
         "FROM runs WHERE finished_at >= ?1 AND (?2 IS NULL OR host = ?2) AND (?3 IS NULL OR repo = ?3) AND "
         "(?4 IS NULL OR pipeline = ?4) ORDER BY finished_at",
         (now_ms - 30 * 86_400_000, None, None, None), 1),
        ("runs page (limit 10)",
         f"SELECT {SUMMARY} FROM runs WHERE pipeline = ? AND repo = ? AND host = ? "
         "ORDER BY created_at DESC, rowid DESC LIMIT ?", (pl, rp, h, RUNS_PAGE + 1), 1),
        ("run view: audit of a run",
         "SELECT a.id, a.run_id, r.pipeline, a.seq, a.at, a.stage, a.from_state, a.to_state, a.actor, a.reason "
         "FROM audit a JOIN runs r ON r.id = a.run_id WHERE a.run_id = ? ORDER BY a.id DESC LIMIT ?",
         ("NEWEST", 501), 1),
    ]


def plans(db_path, reps=5):
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    newest = db.execute("SELECT id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1").fetchone()[0]
    print(f"SQLite {sqlite3.sqlite_version} (the library tollgate links), each query's median of {reps} runs:")
    print()
    for name, sql, params, times in api_queries(int(time.time() * 1000)):
        params = tuple(newest if p == "NEWEST" else p for p in params)
        stages = [s["name"] for s in STAGES] if "STAGE" in params else [None]
        runs = []
        for _ in range(reps):
            t = time.perf_counter()
            for st in stages:
                ps = tuple(st if p == "STAGE" else p for p in params)
                db.execute(sql, ps).fetchall()
            runs.append((time.perf_counter() - t) * 1000)
        ps = tuple(stages[0] if p == "STAGE" else p for p in params)
        plan = db.execute("EXPLAIN QUERY PLAN " + sql, ps).fetchall()
        print(f"- {name}: {statistics.median(runs):.1f} ms" + (f" for all {len(stages)}" if len(stages) > 1 else ""))
        for row in plan:
            print(f"    {'  ' * (0 if row[1] == 0 else 1)}{row[3]}")


def main(argv):
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C: die of it, so that run.sh's trap cleans up
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "definition":
        sys.stdout.write(definition_text())
    elif cmd == "fill" and len(argv) >= 3:
        fill(argv[2], int(argv[3]) if len(argv) > 3 else 10_000, int(argv[4]) if len(argv) > 4 else 25,
             int(argv[5]) if len(argv) > 5 else 1)
    elif cmd == "stats" and len(argv) == 3:
        stats(argv[2])
    elif cmd == "measure" and len(argv) == 5:
        return measure(argv[2], argv[3], int(argv[4]))
    elif cmd == "sql" and len(argv) == 4:
        db = sqlite3.connect(argv[2])
        db.executescript(open(argv[3]).read())
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
    elif cmd == "plans" and len(argv) == 3:
        plans(argv[2])
    else:
        sys.exit(__doc__.split("\n\n")[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
