#!/usr/bin/env bash
# Crash-safety benchmark: the end-to-end promotion flow (source merges in acme/app → acme/env-dev →
# acme/env-qa, auto merge, qa soaking 3 s, concurrency: queue) against the test Git host while
# `tollgate serve` is killed with SIGKILL KILLS times, 50–600 ms after each start (about half of the
# kills aimed 0–20 ms into a job that just started), and restarted; then the same with 20% of host
# API calls failing (502, connection resets, secondary rate limits). Two rounds:
#   1. one replica on SQLite, restarted on the same directory at once;
#   2. REPLICAS (default 3) replicas on one PostgreSQL database (TOLLGATE_TEST_POSTGRES, or a
#      throwaway cluster started here and stopped by its pid at the end: tests/postgres.sh), each
#      with its own directory and TOLLGATE_REPLICA name, webhooks spread over them by a round-robin
#      forwarder; a random replica is killed and comes back 0–600 ms later while the others go on
#      (one always up). engine.lease is 5s when the binary takes the key (LEASE overrides).
# Webhook deliveries that failed while no replica was up are redelivered after each restart (same
# GUID, as GitHub's "Redeliver" does). Prints figures (kills, runs, time, redeliveries, faults fired,
# deliveries and jobs per replica) and every invariant: each run succeeded; one PR per stage and
# run, created once and merged once (host request log); at most one status comment and no duplicate
# tollgate-bot comment per PR; audit seq 1..n without gaps; no timer fired twice and no delivery or
# job result applied twice; no failed job, none left unfinished, none held by a dead process's
# lease; with several replicas, deliveries answered and jobs run by more than one of them.
#
# Needs TOLLGATE_BIN (a built `tollgate` binary; this script builds nothing), Node ≥ 20 with
# `npm ci` done at the repository root, python3, git, lighttpd (see docs/test-git-host.md); for
# round 2 psql and, without TOLLGATE_TEST_POSTGRES, PostgreSQL 15's server (/usr/lib/postgresql/15).
#
#   TOLLGATE_BIN=build/service/tollgate bench/chaos/run.sh
#   KILLS=30 RUNS=4 FAULTS=0 SEED=7 ROUNDS=postgres TOLLGATE_BIN=... bench/chaos/run.sh
#
# Environment: KILLS (default 200), RUNS (source merges, default KILLS/5), FAULTS (which passes: "0,1"
# default, "0" no host faults, "1" only with faults), ROUNDS ("sqlite postgres" default), REPLICAS
# (round 2's replicas, default 3), LEASE (round 2's engine.lease, e.g. 10s; 0: the binary's
# default), SEED (kill delays and fault sequence; default: from the clock, printed), SETTLE_MS (time
# the runs get after the last kill, default 180000), TOLLGATE_TEST_POSTGRES (a server to use).
# Exit status: 0 all invariants held, 1 one broke, 2 the harness failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -z "${TOLLGATE_BIN:-}" ]]; then
  echo "bench/chaos/run.sh: set TOLLGATE_BIN to a built tollgate binary (e.g. build/service/tollgate)" >&2
  exit 2
fi
. tests/postgres.sh
# A private copy: a rebuild of TOLLGATE_BIN during a long run (EACCES/ETXTBSY while it is linked)
# must not break a restart.
bin_dir="$(mktemp -d)"
trap 'stop_postgres; rm -rf "$bin_dir"' EXIT
cp -p "$TOLLGATE_BIN" "$bin_dir/tollgate"
if ! version="$("$bin_dir/tollgate" version 2>/dev/null | head -1)" || [[ -z "$version" ]]; then
  echo "bench/chaos/run.sh: $TOLLGATE_BIN does not run (being rebuilt?): try again" >&2
  exit 2
fi
echo "tollgate: $(realpath "$TOLLGATE_BIN") ($version), copied to $bin_dir"
export TOLLGATE_BIN="$bin_dir/tollgate"
export KILLS="${KILLS:-200}" FAULTS="${FAULTS:-0,1}"
rounds="${ROUNDS:-sqlite postgres}"
echo "started:  $(date -u +%FT%TZ)"
start=$(date +%s)
code=0
for round in $rounds; do
  case $round in
    sqlite) replicas=1 store=sqlite ;;
    postgres)
      replicas="${REPLICAS:-3}" store=postgres
      if [[ -z "${TOLLGATE_TEST_POSTGRES:-}" ]]; then start_postgres || exit 2; fi
      ;;
    *) echo "bench/chaos/run.sh: unknown round '$round' (ROUNDS: sqlite, postgres)" >&2; exit 2 ;;
  esac
  echo
  echo "=== round: $round, $replicas replica(s)"
  set +e
  TOLLGATE_TEST_STORE=$store REPLICAS=$replicas node bench/chaos/chaos.mjs
  rc=$?
  set -e
  echo "round $round: exit $rc"
  if (( rc > code )); then code=$rc; fi
done
echo "finished: $(date -u +%FT%TZ) ($(( $(date +%s) - start )) s), exit $code"
exit $code
