#!/usr/bin/env bash
# make demo: placeholder until the VM host lands (replaced in the same series).
set -euo pipefail
build=${1:-build}
"$build/src/cli/mapram" version
