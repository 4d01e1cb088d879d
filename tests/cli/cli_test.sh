#!/usr/bin/env bash
# The command line contract of `tollgate validate` / `version` / `--help`: exit codes 0 (valid),
# 1 (invalid), 2 (usage or I/O error), the default file, and JSON output.
# Usage: tests/cli/cli_test.sh path/to/tollgate
set -uo pipefail
bin=$(realpath "$1")
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0
fail=0

expect() {  # expect NAME WANT_EXIT CMD...
  local name=$1 want=$2
  shift 2
  "$@" >"$work/out" 2>"$work/err"
  local got=$?
  if [ "$got" -eq "$want" ]; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL: $name: exit $got, want $want"
    sed 's/^/  out: /' "$work/out" | head -20
    sed 's/^/  err: /' "$work/err" | head -20
  fi
}
contains() {  # contains NAME FILE TEXT
  if grep -qF -- "$3" "$work/$2"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL: $1: '$3' not in $2:"
    sed 's/^/  /' "$work/$2" | head -20
  fi
}

expect "examples are valid" 0 "$bin" validate "$root"/examples/*.yaml
contains "valid files are listed" out ": ok ("

expect "an invalid file exits 1" 1 "$bin" validate "$root/tests/pipeline/invalid/after-unknown-stage-typo.yaml"
contains "problems are FILE:LINE:COL: error:" out "after-unknown-stage-typo.yaml:"
contains "the offending line is shown" out " | "
contains "a summary closes the report" out "1 error in 1 file"

expect "a missing file exits 2" 2 "$bin" validate "$work/nope.yaml"
contains "the I/O error names the file" err "cannot read '$work/nope.yaml'"

expect "a directory exits 2" 2 "$bin" validate "$work"

expect "an unknown option exits 2" 2 "$bin" validate --bogus
expect "an unknown format exits 2" 2 "$bin" validate --format xml "$root/examples/monorepo.yaml"
expect "no subcommand exits 2" 2 "$bin"

expect "--help exits 0" 0 "$bin" --help
contains "--help lists validate" out "validate"
expect "validate --help exits 0" 0 "$bin" validate --help
contains "validate --help lists --format" out "--format"
expect "version --help exits 0" 0 "$bin" version --help
expect "version exits 0" 0 "$bin" version
contains "version prints the version" out "tollgate 0."

cp "$root/examples/monorepo.yaml" "$work/.tollgate.yaml"
expect "the default file is ./.tollgate.yaml" 0 sh -c "cd '$work' && '$bin' validate"
contains "the default file is named" out ".tollgate.yaml: ok"
rm "$work/.tollgate.yaml"
expect "a missing default file exits 2" 2 sh -c "cd '$work' && '$bin' validate"

expect "json output for invalid files" 1 "$bin" validate --format json "$root/tests/pipeline/invalid/after-unknown-stage-typo.yaml" "$root/examples/monorepo.yaml"
cp "$work/out" "$work/report.json"
expect "json output parses and carries positions" 0 python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
bad, good = r["files"]
assert bad["valid"] is False and good["valid"] is True, r
p = bad["problems"][0]
assert set(p) == {"file", "line", "column", "severity", "kind", "path", "message"}, p
assert p["severity"] == "error" and p["kind"] == "semantic" and p["line"] > 0 and p["column"] > 0, p
assert good["pipelines"] == 2 and good["problems"] == [], good
' "$work/report.json"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
