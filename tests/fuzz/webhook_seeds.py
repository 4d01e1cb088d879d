#!/usr/bin/env python3
"""Writes a seed corpus for fuzz_webhooks into DIR: every webhook fixture (GitHub's examples from
@octokit/webhooks-examples, our derived GitHub fixtures, GitLab and Gitea fixtures), each
prefixed with the byte that selects its host and event in fuzz_webhooks.cpp's kTargets table
(read from that file, so the two cannot drift apart)."""
import json
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parents[2]
out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)

source = (root / "tests/fuzz/fuzz_webhooks.cpp").read_text()
targets = re.findall(r'\{HostKind::(\w+), "([^"]+)"\}', source)
index = {t: i for i, t in enumerate(targets)}

def write(host, event, body, name):
    key = (host, event)
    if key not in index:
        return 0
    (out / name).write_bytes(bytes([index[key]]) + body)
    return 1

count = 0
examples = root / "node_modules/@octokit/webhooks-examples/api.github.com/index.json"
for group in json.loads(examples.read_text()):
    for i, example in enumerate(group["examples"]):
        count += write("github", group["name"], json.dumps(example).encode(), f"github-{group['name']}-{i}.json")
for f in sorted((root / "tests/fixtures/webhooks/github").glob("*.json")):
    count += write("github", f.name.split(".")[0], f.read_bytes(), f"github-fixture-{f.name}")
gitlab_events = {"merge_request": "Merge Request Hook", "note": "Note Hook", "pipeline": "Pipeline Hook",
                 "push": "Push Hook", "tag_push": "Tag Push Hook"}
for f in sorted((root / "tests/fixtures/webhooks/gitlab").glob("*.json")):
    kind = json.loads(f.read_text()).get("object_kind", "")
    count += write("gitlab", gitlab_events.get(kind, ""), f.read_bytes(), f"gitlab-{f.name}")
for f in sorted((root / "tests/fixtures/webhooks/gitea").glob("*.json")):
    stem = f.name.replace("-event.json", "")
    event = {"pull-request": "pull_request", "pull-request-merged": "pull_request",
             "pull-request-synchronized": "pull_request", "issue-comment": "issue_comment",
             "pull-request-comment": "issue_comment", "pull-request-review-approved": "pull_request_review_approved",
             "pull-request-review-rejected": "pull_request_rejected", "status": "status", "push": "push"}.get(stem, "")
    count += write("gitea", event, f.read_bytes(), f"gitea-{f.name}")
print(f"webhook seeds: {count} files in {out}")
