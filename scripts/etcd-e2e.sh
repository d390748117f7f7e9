#!/usr/bin/env bash
# etcd 3.4.23's own end-to-end tests (real etcdctl and curl against real server processes)
# against Cairn, through the runner in ../shared/tools/etcd-e2e (it builds the tests offline from
# Debian's golang-etcd-server-dev and installs what it needs). Results: docs/etcd-e2e.md.
#
#   scripts/etcd-e2e.sh                 # TestCtlV3* and TestV3Curl* (197 tests, ~6 min on 2 cores)
#   scripts/etcd-e2e.sh '^TestCtlV3Put$'   # any Go -run regex; '.' = all 243 (~10 min)
#
# Environment: ETCD_E2E_RUNNER (the runner's path), and the runner's own (EXCLUDE, RETRIES, …).
set -euo pipefail
cd "$(dirname "$0")/.."
runner=${ETCD_E2E_RUNNER:-../shared/tools/etcd-e2e/run-e2e.sh}
[[ -x $runner ]] || { echo "no runner at $runner (set ETCD_E2E_RUNNER)" >&2; exit 2; }
cargo build --release -q -p cairn
SERVER_BIN=$PWD/target/release/cairn exec "$runner" "${1:-^(TestCtlV3|TestV3Curl)}"
