#!/usr/bin/env bash
# Benchmark: the git writer (issue 4, "bench/git-writer"). A promotion commit + push into an
# environment repository, through a real smart-HTTP server (git http-backend behind lighttpd, basic
# auth, 127.0.0.1), measured in one run against two references on the same served repository:
#   tollgate  bench_git_writer: GitWriter::promote() (fetch of what is new into its persistent bare
#             mirror, in-memory commit, push) to a new branch tollgate-<i> each run; the first
#             promotion into an empty mirror (the initial fetch) is timed and reported separately
#   peer      what Kargo-style tools do with the git CLI: git clone --depth 1 --branch main, sed the
#             file, git commit -qam, git push origin HEAD:refs/heads/peer-<i>; a fresh clone every
#             run, timed whole
#   floor     a plain git push of one already-built commit (the same edit, committed before the
#             timer starts) from a full local clone to a new branch floor-<i>: the server's own cost
#             of accepting a push, which grows with the repository
# Repositories (generated once with bench/git-writer/gen.py | git fast-import, then git repack -adq,
# and cached): (a) 1,000 files / 1,000 commits, (b) 100,000 files / 50,000 commits.
# Targets: on (b) tollgate >= 20x faster than the peer; on both, tollgate <= 1.25x the floor.
#
# Usage: bench/git-writer/run.sh        (from anywhere; needs g++, cmake, ninja, libgit2-dev, lighttpd)
# Environment: SIZES="a b" (or "small": 200 files / 100 commits, for trying the script out)
#   RUNS_A=5 RUNS_B=3 RUNS_SMALL=3   FILES_A=1000 COMMITS_A=1000 FILES_B=100000 COMMITS_B=50000
#   CACHE=/tmp/tollgate-bench-git (generated repositories, reused across runs; delete to regenerate)
#   BUILD_DIR=build-bench  JOBS=2  NO_BUILD=1 (skip the build)  KEEP=1 (keep the temp dir)
#   GEN_ONLY=1 (generate the repositories and stop)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

sizes=${SIZES:-"a b"}
cache=${CACHE:-/tmp/tollgate-bench-git}
build=${BUILD_DIR:-build-bench}
case $build in /*) ;; *) build=$root/$build ;; esac

# The git CLI: no prompts, no user or system configuration (credential helpers, insteadOf ...).
export GIT_TERMINAL_PROMPT=0 GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME="bench" GIT_AUTHOR_EMAIL="bench@tollgate.invalid"
export GIT_COMMITTER_NAME="bench" GIT_COMMITTER_EMAIL="bench@tollgate.invalid"

repo_spec() {  # size -> "files commits runs"
  case $1 in
    a) echo "${FILES_A:-1000} ${COMMITS_A:-1000} ${RUNS_A:-5}" ;;
    b) echo "${FILES_B:-100000} ${COMMITS_B:-50000} ${RUNS_B:-3}" ;;
    small) echo "${FILES_SMALL:-200} ${COMMITS_SMALL:-100} ${RUNS_SMALL:-3}" ;;
    *) echo "run.sh: unknown size '$1' (a, b or small)" >&2; exit 2 ;;
  esac
}
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }

# --- the repositories, generated once ------------------------------------------------------------
mkdir -p "$cache"
generate() {  # files commits -> path of the cached bare repository
  local files=$1 commits=$2
  local repo=$cache/env-${files}f-${commits}c.git
  if [ ! -f "$repo/bench-complete" ]; then
    rm -rf "$repo" "$repo.tmp"
    echo "generating $files files / $commits commits into $repo ..." >&2
    local t0 t1 t2
    t0=$(now)
    git init -q --bare "$repo.tmp"
    git -C "$repo.tmp" symbolic-ref HEAD refs/heads/main
    python3 bench/git-writer/gen.py "$files" "$commits" | git -C "$repo.tmp" fast-import --quiet --done
    t1=$(now)
    git -C "$repo.tmp" repack -adq
    git -C "$repo.tmp" prune-packed
    t2=$(now)
    echo "  generated in $(secs "$t0" "$t2") s (fast-import $(secs "$t0" "$t1") s, repack $(secs "$t1" "$t2") s); $(du -sh "$repo.tmp" | cut -f1)" >&2
    touch "$repo.tmp/bench-complete"
    mv "$repo.tmp" "$repo"
  else
    echo "using cached $repo ($(du -sh "$repo" | cut -f1))" >&2
  fi
  echo "$repo"
}
declare -A cached
for s in $sizes; do
  read -r files commits _ <<<"$(repo_spec "$s")"
  cached[$s]=$(generate "$files" "$commits")
done
[ -n "${GEN_ONLY:-}" ] && exit 0

# --- the build -----------------------------------------------------------------------------------
if [ -z "${NO_BUILD:-}" ]; then
  echo "building ($build, Release) ..."
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTOLLGATE_WERROR=OFF -DTOLLGATE_TESTS=OFF >/dev/null
  if ! cmake --build "$build" -j "${JOBS:-2}" --target bench_git_writer >"$build/bench-git-writer-build.log" 2>&1; then
    tail -40 "$build/bench-git-writer-build.log"
    echo "run.sh: the build failed (full log: $build/bench-git-writer-build.log)"
    exit 1
  fi
fi
writer=$build/bench/bench_git_writer
[ -x "$writer" ] || { echo "run.sh: $writer is missing (build it, or unset NO_BUILD)"; exit 1; }

# --- the server: lighttpd + git http-backend, basic auth, 127.0.0.1 ----------------------------------
work=$(mktemp -d /tmp/tollgate-bench-gitwriter.XXXXXX)
lighttpd_pid=""
cleanup() {
  if [ -n "$lighttpd_pid" ] && kill -0 "$lighttpd_pid" 2>/dev/null; then
    kill -TERM "$lighttpd_pid" 2>/dev/null || true
    wait "$lighttpd_pid" 2>/dev/null || true
  fi
  if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$work/www" "$work/repos" "$work/home"
export HOME=$work/home
password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "bench:$password" > "$work/users"
printf '%s\n' "$password" > "$work/token"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
lighttpd_bin=$(command -v lighttpd || echo /usr/sbin/lighttpd)
port=""
for _ in 1 2 3 4 5; do
  p=$(free_port)
  cat > "$work/lighttpd.conf" <<CONF
server.modules = ("mod_auth", "mod_authn_file", "mod_alias", "mod_setenv", "mod_cgi")
server.bind = "127.0.0.1"
server.port = $p
server.document-root = "$work/www"
server.errorlog = "$work/lighttpd.log"
server.max-request-size = 0
alias.url = ("/git/" => "/usr/lib/git-core/git-http-backend/")
\$HTTP["url"] =~ "^/git/" {
  cgi.assign = ("" => "")
  setenv.add-environment = ("GIT_PROJECT_ROOT" => "$work/repos", "GIT_HTTP_EXPORT_ALL" => "", "PATH" => "$PATH", "GIT_CONFIG_NOSYSTEM" => "1")
}
auth.backend = "plain"
auth.backend.plain.userfile = "$work/users"
auth.require = ("/git/" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))
CONF
  "$lighttpd_bin" -D -f "$work/lighttpd.conf" >"$work/lighttpd.out" 2>&1 &
  lighttpd_pid=$!
  for _ in $(seq 50); do
    if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$p" 2>/dev/null; then
      port=$p; break
    fi
    kill -0 "$lighttpd_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] && break
  kill -TERM "$lighttpd_pid" 2>/dev/null || true
  wait "$lighttpd_pid" 2>/dev/null || true
  lighttpd_pid=""
done
[ -n "$port" ] || { echo "run.sh: lighttpd did not start:"; cat "$work/lighttpd.out" "$work/lighttpd.log" 2>/dev/null | tail -20; exit 1; }

load1() { cut -d' ' -f1-3 /proc/loadavg; }
echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -r); $(git --version), $("$lighttpd_bin" -v 2>&1 | cut -d' ' -f1); $(date -u +%Y-%m-%dT%H:%MZ); load average at start: $(load1)"
echo "server: lighttpd + git http-backend on 127.0.0.1:$port, basic auth; client and server share the machine"
echo

# --- the measurements ----------------------------------------------------------------------------
median() { python3 -c 'import statistics, sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.3f}")' "$@"; }
for s in $sizes; do
  read -r files commits runs <<<"$(repo_spec "$s")"
  name=env-$s
  # A private copy of the cached repository, served read-write: every measured push lands in the
  # same repository (all three grow it by one commit each run, which is negligible next to it).
  cp -a "${cached[$s]}" "$work/repos/$name.git"
  rm -f "$work/repos/$name.git/bench-complete"
  url_path=127.0.0.1:$port/git/$name.git
  cli_url=http://bench:$password@$url_path
  echo "($s) $files files / $commits commits ($(du -sh "$work/repos/$name.git" | cut -f1) packed), $runs runs each; load average $(load1)"

  # floor: a full local clone (from the cache, not timed), a commit built before each timed push.
  git clone -q "${cached[$s]}" "$work/floor-$s"
  git -C "$work/floor-$s" remote set-url origin "$cli_url"
  floor=()
  for i in $(seq "$runs"); do
    git -C "$work/floor-$s" checkout -q --detach origin/main
    sed -i "s/^  tag: .*/  tag: \"floor-$i-$RANDOM\"/" "$work/floor-$s/apps/app/values.yaml"
    git -C "$work/floor-$s" commit -qam "floor $i"
    t0=$(now)
    git -C "$work/floor-$s" push -q origin "HEAD:refs/heads/floor-$i" 2>"$work/err" || { cat "$work/err"; exit 1; }
    t1=$(now)
    floor+=("$(secs "$t0" "$t1")")
  done
  echo "  floor    (push of a prebuilt commit)  runs ${floor[*]} s"

  # tollgate: one process; the first promotion fills the empty mirror, then the timed runs.
  "$writer" --url "http://$url_path" --user bench --token-file "$work/token" --data-dir "$work/data-$s" \
    --base main --file apps/app/values.yaml --path image.tag --runs "$runs" --branch-prefix tollgate \
    >"$work/tollgate-$s.json" 2>"$work/tollgate-$s.log" || { echo "  tollgate failed:"; tail -20 "$work/tollgate-$s.log"; exit 1; }
  read -r tg_first tg_runs < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("%.3f" % (r["first_ms"] / 1000), " ".join("%.3f" % (x / 1000) for x in r["runs_ms"]))' "$work/tollgate-$s.json")
  read -ra tollgate <<<"$tg_runs"
  echo "  tollgate (GitWriter::promote)         runs ${tollgate[*]} s; first promotion into an empty mirror $tg_first s"

  # peer: a fresh shallow clone, edit, commit, push, timed whole.
  peer=()
  for i in $(seq "$runs"); do
    dir=$work/peer-$s-$i
    t0=$(now)
    git clone -q --depth 1 --branch main "$cli_url" "$dir" 2>"$work/err" || { cat "$work/err"; exit 1; }
    sed -i "s/^  tag: .*/  tag: \"peer-$i-$RANDOM\"/" "$dir/apps/app/values.yaml"
    git -C "$dir" commit -qam "peer $i"
    git -C "$dir" push -q origin "HEAD:refs/heads/peer-$i" 2>"$work/err" || { cat "$work/err"; exit 1; }
    t1=$(now)
    peer+=("$(secs "$t0" "$t1")")
    rm -rf "$dir"
  done
  echo "  peer     (clone --depth 1, commit, push) runs ${peer[*]} s"

  # Every branch is on the server and holds the edit (a check that each run really pushed).
  for b in floor-1 tollgate-1 peer-1; do
    git -C "$work/repos/$name.git" rev-parse -q --verify "refs/heads/$b" >/dev/null || { echo "run.sh: $b is missing on the server"; exit 1; }
  done
  printf '%s %s %s %s %s %s %s\n' "$s" "$files" "$commits" "$tg_first" "$(median "${tollgate[@]}")" \
    "$(median "${peer[@]}")" "$(median "${floor[@]}")" >> "$work/results"
  rm -rf "$work/floor-$s" "$work/data-$s" "$work/repos/$name.git"
  echo
done

python3 - "$work/results" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
print("| repository | tollgate s (median) | peer s | floor s | peer / tollgate | tollgate / floor | first fetch s (one-time) |")
print("|---|---:|---:|---:|---:|---:|---:|")
ok = True
notes = []
for s, files, commits, first, tg, peer, floor in rows:
    tg, peer, floor, first = float(tg), float(peer), float(floor), float(first)
    speedup, over = peer / tg, tg / floor
    print(f"| ({s}) {int(files):,} files / {int(commits):,} commits | {tg:.3f} | {peer:.3f} | {floor:.3f} | "
          f"{speedup:.1f}x | {over:.2f}x | {first:.3f} |")
    met = over <= 1.25
    t = f"({s}): tollgate / floor {over:.2f}x (target <= 1.25x)"
    if s == "b":
        met = met and speedup >= 20
        t += f", peer / tollgate {speedup:.1f}x (target >= 20x)"
    notes.append(t + (": met" if met else ": NOT met"))
    ok &= met
print()
print("\n".join(notes))
if not any(r[0] == "b" for r in rows):
    print("(the 20x target is for (b), which this run did not measure)")
PY
echo
echo "load average at end: $(load1)"
