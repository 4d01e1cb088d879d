#!/bin/sh
# Runs a test command with TOLLGATE_TEST_STORE=postgres, so that it runs on the PostgreSQL server at
# TOLLGATE_TEST_POSTGRES (tests/run.sh starts one): the run store's Catch2 cases
# (run_store_on_postgres) and the end-to-end suites (*_e2e_on_postgres: tests/promote/world.mjs
# gives each test a schema of its own). Skipped (77) without a server, unless CI=true, where that
# is a failure.
#   tests/service/on_postgres.sh COMMAND [ARGS...]
if [ -z "${TOLLGATE_TEST_POSTGRES:-}" ]; then
  if [ "${CI:-}" = true ]; then
    echo "CI=true but TOLLGATE_TEST_POSTGRES is not set (tests/run.sh starts a server)" >&2
    exit 1
  fi
  echo "TOLLGATE_TEST_POSTGRES is not set: skipped"
  exit 77
fi
TOLLGATE_TEST_STORE=postgres exec "$@"
