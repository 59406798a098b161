#!/usr/bin/env bash
# Times the per-request crypto of ccs-endpoint and, in the same run on the same machine,
# OpenSSL's RSA public-key operation, and prints the ratios (CONTRIBUTING.md quotes them).
# A wrap is one public-key operation with the database key; a verification is one with the
# root's key (4096 bits here, as in production) plus parsing.
# Usage: scripts/bench-wrap.sh   (BENCH_ITERATIONS=N to change the loop count)
set -euo pipefail
cd "$(dirname "$0")/.."

ours=$(cargo bench --quiet --bench wrap 2>/dev/null)
echo "$ours"
# openssl speed: "rsa 2048 bits <sign s> <verify s> <sign/s> <verify/s>": verify is the public op.
ref=$(openssl speed -seconds 3 rsa2048 rsa4096 2>/dev/null | awk '/^rsa +[0-9]+ bits/ {print $2, 1e6 / $7}')
echo "openssl speed, RSA public operation:"
echo "$ref" | awk '{printf "  rsa%s %9.2f us/op\n", $1, $2}'
echo "ratios (ours / openssl):"
echo "$ours" | awk -v ref="$ref" '
  BEGIN { n = split(ref, r, /[ \n]/); for (i = 1; i < n; i += 2) op["rsa" r[i]] = r[i + 1] }
  $1 == "wrap"   { printf "  %-40s %5.2fx  (vs openssl %s)\n", $1 " " $2 " " $3, $(NF-1) / op[$2], $2 }
  $1 == "verify" { printf "  %-40s %5.2fx  (vs openssl rsa4096)\n", $1 " " $2 " " $3, $(NF-1) / op["rsa4096"] }'
