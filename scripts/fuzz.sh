#!/usr/bin/env bash
# Builds the cargo-fuzz targets (fuzz/, its own workspace), writes their generated seeds
# (fuzz/seeds, not committed: certificates are made at run time), then runs each target over
# its committed corpus (fuzz/corpus/<target>, every input replayed first) and the seeds for
# FUZZ_SECONDS (default 60). New inputs go to fuzz/new/<target>; with FUZZ_MERGE=1 those that
# add coverage are merged into the committed corpus (scripts/long-checks.sh does).
# Runs on the stable toolchain: `-s none` (no sanitizer; the code under test has no unsafe),
# libFuzzer's coverage instrumentation still on.
# A crash stops the script with libFuzzer's report and the input under fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
rm -rf fuzz/seeds fuzz/new
cargo run -q --locked --example fuzz_seeds -- fuzz/seeds
targets=(path_parser certificate keystore config head signature signers)
cargo fuzz build -s none
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target" "fuzz/new/$target"
  committed=$(find "fuzz/corpus/$target" -type f | wc -l)
  seeds=$(find "fuzz/seeds/$target" -type f | wc -l)
  cargo fuzz run -s none "$target" "fuzz/new/$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
    >"fuzz/$target.log" 2>&1 || { tail -40 "fuzz/$target.log"; exit 1; }
  runs=$(grep -o 'Done [0-9]* runs' "fuzz/$target.log" | awk '{print $2}')
  new=$(find "fuzz/new/$target" -type f | wc -l)
  merged=""
  if [ "${FUZZ_MERGE:-0}" = 1 ] && ((new)); then
    cargo fuzz run -s none "$target" "fuzz/corpus/$target" "fuzz/new/$target" -- -merge=1 \
      >"fuzz/$target.merge.log" 2>&1 || { tail -20 "fuzz/$target.merge.log"; exit 1; }
    merged=", corpus now $(find "fuzz/corpus/$target" -type f | wc -l)"
  fi
  echo "fuzz $target: $committed committed + $seeds seeds replayed, ${SECONDS_EACH}s, ${runs:-?} runs, $new new inputs$merged, no crash"
done
