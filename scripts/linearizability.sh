#!/usr/bin/env bash
# Longer linearizability runs than CI's: concurrent clients against a 3-member cluster under
# partitions and SIGKILLs, histories checked key by key (crates/e2e/tests/partitions.rs).
#
# Usage: scripts/linearizability.sh [SECONDS_PER_RUN] [RUNS]
# A failing run prints its CAIRN_LIN_SEED; replay it with CAIRN_LIN_SEED=<seed>.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-120}
runs=${2:-5}
for i in $(seq 1 "$runs"); do
  echo "run $i/$runs (${seconds} s)"
  CAIRN_LIN_SECONDS=$seconds cargo test -q -p cairn-e2e --test partitions \
    histories_under_partitions_and_crashes_are_linearizable -- --nocapture 2>&1 \
    | grep -E "linearizability run|operations|not linearizable|test result|panicked"
done
