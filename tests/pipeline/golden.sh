#!/usr/bin/env bash
# Prints what tollgate reports for an invalid corpus file, in the .expected format (no source
# excerpts, no summary line). Review the output before saving it as NAME.expected:
#   tests/pipeline/golden.sh build/service/tollgate tests/pipeline/invalid/NAME.yaml
set -euo pipefail
bin=$(realpath "$1")
cd "$(dirname "$2")"
"$bin" validate --no-source "$(basename "$2")" | grep -Ev '^[0-9]+ errors? in [0-9]+ files?$' || true
