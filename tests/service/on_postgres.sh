#!/bin/sh
# Runs a test binary with TOLLGATE_TEST_STORE=postgres, so the store's tests run on the PostgreSQL
# server at TOLLGATE_TEST_POSTGRES (tests/run.sh starts one). Skipped (77) without a server, unless
# CI=true, where that is a failure.
if [ -z "${TOLLGATE_TEST_POSTGRES:-}" ]; then
  if [ "${CI:-}" = true ]; then
    echo "CI=true but TOLLGATE_TEST_POSTGRES is not set (tests/run.sh starts a server)" >&2
    exit 1
  fi
  echo "TOLLGATE_TEST_POSTGRES is not set: skipped"
  exit 77
fi
TOLLGATE_TEST_STORE=postgres exec "$@"
