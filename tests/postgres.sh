# A throwaway PostgreSQL 15 cluster for tests and benchmarks, sourced by bash scripts
# (tests/run.sh, bench/chaos/run.sh):
#   . tests/postgres.sh
#   start_postgres    # exports TOLLGATE_TEST_POSTGRES=postgresql://tollgate@127.0.0.1:PORT/postgres
#   ...
#   stop_postgres     # in the script's EXIT trap: stops the server by its pid, removes the cluster
# Trust authentication, listening on 127.0.0.1 only, on a free port, in a temporary directory.
# initdb refuses to run as root: as root, the cluster belongs to the postgres user the Debian
# package creates.
pg_bin=/usr/lib/postgresql/15/bin
pg_dir=""
pg_pid=""

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

start_postgres() {
  pg_dir=$(mktemp -d /tmp/tollgate-pg.XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres: "$pg_dir"
  as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U tollgate --auth=trust -E UTF8 --locale=C.UTF-8 >"$pg_dir/initdb.log" 2>&1 ||
    { cat "$pg_dir/initdb.log"; return 1; }
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $pg_dir -c max_connections=300" start >/dev/null ||
    { cat "$pg_dir/server.log"; return 1; }
  pg_pid=$(head -n 1 "$pg_dir/data/postmaster.pid")
  export TOLLGATE_TEST_POSTGRES="postgresql://tollgate@127.0.0.1:$port/postgres"
  echo "PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') (pid $pg_pid) at $TOLLGATE_TEST_POSTGRES"
}

stop_postgres() {
  if [ -n "$pg_pid" ] && kill -0 "$pg_pid" 2>/dev/null; then
    kill -INT "$pg_pid" 2>/dev/null || true  # PostgreSQL's fast shutdown
    for _ in $(seq 50); do kill -0 "$pg_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pg_pid" 2>/dev/null || true
  fi
  pg_pid=""
  if [ -n "$pg_dir" ]; then rm -rf "$pg_dir"; fi
  pg_dir=""
}
