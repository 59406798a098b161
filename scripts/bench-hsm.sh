#!/usr/bin/env bash
# Times the PKCS#11 backend (SoftHSM2, a throw-away token) against the file backend in the same
# run: KeyStore::wrap_for uncached, on one thread and on four, and prints the ratios (CONTRIBUTING.md
# and BENCHMARKS.md quote them). Needs softhsm2 (apt-get install softhsm2).
# Usage: scripts/bench-hsm.sh   (BENCH_ITERATIONS=N to change the loop count)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v softhsm2-util >/dev/null || { echo "softhsm2 is needed: apt-get install softhsm2" >&2; exit 1; }
cargo bench --quiet --bench hsm 2>/dev/null
