#!/usr/bin/env bash
# The long checks CI leaves out (CONTRIBUTING.md, "Long checks"): each fuzz target for
# FUZZ_SECONDS (default 300) with new coverage merged into the committed corpora (commit
# fuzz/corpus afterwards), and the soak for SOAK_SECONDS (default 600) in release mode, where
# memory growth is judged too. Run it before resolving an issue that touches parsing, the
# listeners or reloads; about 45 minutes on 2 cores with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
began=$SECONDS
FUZZ_MERGE=1 FUZZ_SECONDS="${FUZZ_SECONDS:-300}" scripts/fuzz.sh
echo "fuzz: $((SECONDS - began))s"
began=$SECONDS
SOAK_SECONDS="${SOAK_SECONDS:-600}" cargo test --locked --release --test soak -- --nocapture
echo "soak: $((SECONDS - began))s"
git status --short fuzz/corpus | head -3
