#!/usr/bin/env python3
"""Writes a `git fast-import` stream for a k8s-like environment repository to stdout.

usage: gen.py FILES COMMITS [SEED]

Commit 1 adds FILES files: `apps/app/values.yaml` (with `image:\n  tag: "..."`, the file the
benchmark promotes) and FILES - 1 manifests spread over directories,
clusters/c<k>/ns<n>/svc<s>/{deployment,service,configmap,kustomization,hpa}.yaml (about 5 files a
service directory, 20 services a namespace). Commits 2..COMMITS each change a few (1-4) manifests
(replicas, image tag, a config value), like a history of promotions. All on refs/heads/main, with
deterministic content and timestamps (same arguments, same repository).
"""
import random
import sys

KINDS = ("deployment", "service", "configmap", "kustomization", "hpa")


def path_of(i):
    svc, kind = divmod(i, len(KINDS))
    return f"clusters/c{svc % 10}/ns{(svc // 10) % 100}/svc{svc}/{KINDS[kind]}.yaml"


def content(i, v):
    svc, kind = divmod(i, len(KINDS))
    name = f"svc{svc}"
    k = KINDS[kind]
    if k == "deployment":
        return (f"# {name}: generated for the tollgate git-writer benchmark\n"
                f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: ns{(svc // 10) % 100}\n"
                f"  labels:\n    app: {name}\n    team: team{svc % 37}\nspec:\n  replicas: {1 + v % 5}\n"
                f"  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n"
                f"        app: {name}\n    spec:\n      containers:\n        - name: {name}\n"
                f"          image: registry.example.com/{name}:1.{v}.{svc % 13}\n"
                f"          ports:\n            - containerPort: 8080\n          resources:\n"
                f"            requests: {{cpu: 100m, memory: 128Mi}}\n            limits: {{cpu: 500m, memory: 256Mi}}\n")
    if k == "service":
        return (f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  annotations:\n    revision: \"{v}\"\n"
                f"spec:\n  selector:\n    app: {name}\n  ports:\n    - port: 80\n      targetPort: 8080\n")
    if k == "configmap":
        return (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-config\ndata:\n"
                f"  LOG_LEVEL: \"{('info', 'debug', 'warn')[v % 3]}\"\n  FEATURE_FLAGS: \"f{v},g{svc % 7}\"\n"
                f"  TIMEOUT_MS: \"{1000 + 10 * v}\"\n")
    if k == "kustomization":
        return (f"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
                f"  - deployment.yaml\n  - service.yaml\n  - configmap.yaml\nimages:\n"
                f"  - name: registry.example.com/{name}\n    newTag: \"1.{v}.0\"\n")
    return (f"apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: {name}\nspec:\n"
            f"  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: {name}\n"
            f"  minReplicas: {1 + v % 3}\n  maxReplicas: {10 + v % 10}\n")


VALUES = ("# the application promoted by tollgate's benchmark\nreplicaCount: 2\nimage:\n"
          "  repository: registry.example.com/app\n  tag: \"1.0.0\"\n  pullPolicy: IfNotPresent\n"
          "service:\n  type: ClusterIP\n  port: 80\n")


def main():
    files, commits = int(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 42)
    n = max(files - 1, 1)  # manifests besides apps/app/values.yaml
    out = sys.stdout.buffer
    w = out.write
    t = 1_600_000_000
    versions = {}

    def data(s):
        b = s.encode()
        w(b"data %d\n" % len(b))
        w(b)
        w(b"\n")

    def commit(no, msg, parent):
        w(b"commit refs/heads/main\n")
        w(b"mark :%d\n" % no)
        who = b"Env Bot <bot@example.com> %d +0000\n" % (t + 60 * no)
        w(b"author " + who + b"committer " + who)
        data(msg)
        if parent:
            w(b"from :%d\n" % parent)

    commit(1, "initial environment\n", 0)
    w(b"M 100644 inline apps/app/values.yaml\n")
    data(VALUES)
    for i in range(n):
        w(b"M 100644 inline " + path_of(i).encode() + b"\n")
        data(content(i, 0))
    for c in range(2, commits + 1):
        touched = sorted({rng.randrange(n) for _ in range(rng.randint(1, 4))})
        commit(c, f"update {', '.join(path_of(i) for i in touched)}\n", c - 1)
        for i in touched:
            versions[i] = versions.get(i, 0) + 1
            w(b"M 100644 inline " + path_of(i).encode() + b"\n")
            data(content(i, versions[i]))
    w(b"done\n")
    out.flush()


if __name__ == "__main__":
    main()
