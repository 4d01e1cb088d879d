#!/usr/bin/env bash
# Crash-safety benchmark: the end-to-end promotion flow (source merges in acme/app → acme/env-dev →
# acme/env-qa, auto merge, concurrency: queue) against the test Git host while `tollgate serve` is
# killed with SIGKILL KILLS times, 50–600 ms after each start (about half of the kills aimed 0–20 ms into a job that just started), and restarted on the same directory;
# then the same with 20% of host API calls failing (502, connection resets, secondary rate limits).
# Webhook deliveries that failed while tollgate was down are redelivered after each restart (same
# GUID, as GitHub's "Redeliver" does). Prints figures (kills, runs, time, redeliveries, faults fired)
# and every invariant: each run succeeded; one PR per stage and run, created once and merged once
# (host request log); at most one status comment and no duplicate tollgate-bot comment per PR; audit
# seq 1..n without gaps; no failed job, none left unfinished, none held by a dead process's lease.
#
# Needs TOLLGATE_BIN (a built `tollgate` binary; this script builds nothing), Node ≥ 20 with
# `npm ci` done at the repository root, python3, git, lighttpd (see docs/test-git-host.md).
#
#   TOLLGATE_BIN=build/service/tollgate bench/chaos/run.sh
#   KILLS=30 RUNS=4 FAULTS=0 SEED=7 TOLLGATE_BIN=... bench/chaos/run.sh
#
# Environment: KILLS (default 200), RUNS (source merges, default KILLS/5), FAULTS (which passes: "0,1"
# default, "0" no host faults, "1" only with faults), SEED (kill delays and fault sequence;
# default: from the clock, printed), SETTLE_MS (time the runs get after the last kill, default
# 180000).
# Exit status: 0 all invariants held, 1 one broke, 2 the harness failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -z "${TOLLGATE_BIN:-}" ]]; then
  echo "bench/chaos/run.sh: set TOLLGATE_BIN to a built tollgate binary (e.g. build/service/tollgate)" >&2
  exit 2
fi
# A private copy: a rebuild of TOLLGATE_BIN during a long run (EACCES/ETXTBSY while it is linked)
# must not break a restart.
bin_dir="$(mktemp -d)"
trap 'rm -rf "$bin_dir"' EXIT
cp -p "$TOLLGATE_BIN" "$bin_dir/tollgate"
if ! version="$("$bin_dir/tollgate" version 2>/dev/null | head -1)" || [[ -z "$version" ]]; then
  echo "bench/chaos/run.sh: $TOLLGATE_BIN does not run (being rebuilt?): try again" >&2
  exit 2
fi
echo "tollgate: $(realpath "$TOLLGATE_BIN") ($version), copied to $bin_dir"
export TOLLGATE_BIN="$bin_dir/tollgate"
export KILLS="${KILLS:-200}" FAULTS="${FAULTS:-0,1}"
echo "started:  $(date -u +%FT%TZ)"
start=$(date +%s)
set +e
node bench/chaos/chaos.mjs
code=$?
set -e
echo "finished: $(date -u +%FT%TZ) ($(( $(date +%s) - start )) s), exit $code"
exit $code
