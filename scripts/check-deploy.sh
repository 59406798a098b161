#!/usr/bin/env bash
# Checks the deployment files with the tools that read them, as .ci/run does:
#   deploy/prometheus   promtool check rules, and promtool test rules against synthetic series
#   deploy/grafana      every query of the dashboard parsed by promtool
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
# The dashboard's queries, as recording rules, so that promtool parses every one of them.
python3 - deploy/grafana/ccs-endpoint.json >"$work/dashboard-rules.yml" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
print("groups:\n  - name: dashboard\n    rules:")
for panel in dashboard["panels"]:
    for target in panel["targets"]:
        expr = target["expr"].replace("$job", ".*")
        print(f"      - record: dashboard:panel_{panel['id']}_{target['refId']}")
        print(f"        expr: {json.dumps(expr)}")
PY
promtool check rules "$work/dashboard-rules.yml"
echo "deploy/grafana: every query of the dashboard parses"
sed "s#^ExecStart=/usr/local/bin/ccs-endpoint #ExecStart=$binary #" \
  deploy/systemd/ccs-endpoint.service >"$work/ccs-endpoint.service"
grep -q "^ExecStart=$binary " "$work/ccs-endpoint.service" || {
  echo "deploy/systemd: ExecStart does not start /usr/local/bin/ccs-endpoint" >&2; exit 1; }
systemd-analyze verify "$work/ccs-endpoint.service"
echo "deploy/systemd: systemd-analyze verify passed"

for kustomization in deploy/kubernetes/base deploy/kubernetes/overlays/postgres deploy/kubernetes/overlays/api; do
  kubectl kustomize "$kustomization" >"$work/kubernetes.yaml"
  echo "$kustomization:"
  python3 scripts/check-deploy.py <"$work/kubernetes.yaml"
done
