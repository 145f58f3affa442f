#!/usr/bin/env bash
# The GPU set in one call (bench/gpu.py says what it runs). On a lent GPU machine:
#
#     run(command="bash bench/gpu.sh", timeout_s=540)
#
# Without a GPU it is a dry run: it probes what would run, prints the plan and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/gpu.py "$@"
