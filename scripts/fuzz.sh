#!/usr/bin/env bash
# Builds the cargo-fuzz targets (fuzz/, its own workspace), writes their seed corpora and runs
# each for FUZZ_SECONDS (default 60). Runs on the stable toolchain: `-s none` (no sanitizer; the
# code under test has no unsafe), libFuzzer's coverage instrumentation still on.
# A crash stops the script with libFuzzer's report and the input under fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
cargo run -q --locked --example fuzz_seeds -- fuzz/corpus
targets=(path_parser certificate keystore config head signature signers)
cargo fuzz build -s none
for target in "${targets[@]}"; do
  before=$(find "fuzz/corpus/$target" -type f | wc -l)
  cargo fuzz run -s none "$target" -- -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
    >"fuzz/$target.log" 2>&1 || { tail -40 "fuzz/$target.log"; exit 1; }
  after=$(find "fuzz/corpus/$target" -type f | wc -l)
  runs=$(grep -o 'Done [0-9]* runs' "fuzz/$target.log" | awk '{print $2}')
  echo "fuzz $target: ${SECONDS_EACH}s, ${runs:-?} runs, corpus $before -> $after, no crash"
done
