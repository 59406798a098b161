#!/usr/bin/env bash
# Checks the deployment files with the tools that read them, as .ci/run does:
#   deploy/prometheus   promtool check rules, and promtool test rules against synthetic series
#   deploy/systemd      systemd-analyze verify (its ExecStart pointed at this build's binary)
#   deploy/kubernetes   kubectl kustomize renders the base; scripts/check-deploy.py checks it
#                       against the Dockerfile and the configuration it carries
# Needs promtool (prometheus), systemd-analyze (systemd), kubectl (kubernetes-client) and PyYAML
# (python3-yaml): .ci/run installs them. Usage: scripts/check-deploy.sh [BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$(realpath "${1:-target/debug/ccs-endpoint}")
[ -x "$binary" ] || { echo "no binary at $binary: cargo build first" >&2; exit 1; }

(cd deploy/prometheus && promtool check rules alerts.yml && promtool test rules alerts.test.yml)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s#^ExecStart=/usr/local/bin/ccs-endpoint #ExecStart=$binary #" \
  deploy/systemd/ccs-endpoint.service >"$work/ccs-endpoint.service"
grep -q "^ExecStart=$binary " "$work/ccs-endpoint.service" || {
  echo "deploy/systemd: ExecStart does not start /usr/local/bin/ccs-endpoint" >&2; exit 1; }
systemd-analyze verify "$work/ccs-endpoint.service"
echo "deploy/systemd: systemd-analyze verify passed"

kubectl kustomize deploy/kubernetes/base >"$work/kubernetes.yaml"
python3 scripts/check-deploy.py <"$work/kubernetes.yaml"
