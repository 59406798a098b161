#!/usr/bin/env python3
"""Checks the rendered Kubernetes manifests (`kubectl kustomize deploy/kubernetes/base` on
standard input) against what the binary and its image depend on: the command and the
configuration variable of the Dockerfile, the ports of the configuration in the ConfigMap, the
image's user, the files the configuration names lying under the volumes mounted for them, the
probes on the admin port, and the hardening (non-root, read-only root, no token, 2+ replicas, a
PodDisruptionBudget). Exit 1 with every problem found. Needs PyYAML (python3-yaml)."""
import json
import pathlib
import posixpath
import sys
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
problems = []


def check(ok, message):
    if not ok:
        problems.append(message)


docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)

dockerfile = (ROOT / "Dockerfile").read_text().splitlines()
cmd = json.loads(next(l for l in dockerfile if l.startswith("CMD "))[4:])
env = dict(l[4:].split("=", 1) for l in dockerfile if l.startswith("ENV "))
uid, gid = (int(x) for x in next(l for l in dockerfile if l.startswith("USER "))[5:].split(":"))

(deployment,) = by_kind["Deployment"]
pod = deployment["spec"]["template"]["spec"]
(container,) = pod["containers"]
labels = deployment["spec"]["template"]["metadata"]["labels"]

check(deployment["spec"]["replicas"] >= 2, "fewer than 2 replicas")
check(container["args"] == cmd, f"args {container['args']} are not the image's CMD {cmd}")
container_env = {e["name"]: e.get("value") for e in container.get("env", [])}
config_path = container_env.get("CCS_ENDPOINT_CONFIG")
check(config_path == env["CCS_ENDPOINT_CONFIG"], f"CCS_ENDPOINT_CONFIG {config_path} is not the image's")
security = pod["securityContext"]
check(security.get("runAsUser") == uid and security.get("runAsGroup") == gid, "not the image's user")
check(security.get("runAsNonRoot") is True, "runAsNonRoot is not set")
check(security.get("fsGroup") == gid, "fsGroup is not the image's group: the mounted secrets are unreadable")
check(pod.get("automountServiceAccountToken") is False, "a service-account token is mounted")
csec = container["securityContext"]
check(csec.get("readOnlyRootFilesystem") is True, "the root file system is writable")
check(csec.get("allowPrivilegeEscalation") is False, "privilege escalation is allowed")
check(csec.get("capabilities", {}).get("drop") == ["ALL"], "capabilities are not all dropped")

# The configuration the ConfigMap carries, mounted where CCS_ENDPOINT_CONFIG points.
mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
volumes = {v["name"]: v for v in pod["volumes"]}
config_mount = next((n for n, p in mounts.items() if p == posixpath.dirname(config_path)), None)
check(config_mount is not None, f"nothing is mounted at {posixpath.dirname(config_path)}")
maps = {m["metadata"]["name"]: m for m in by_kind["ConfigMap"]}
config_map = maps.get(volumes[config_mount]["configMap"]["name"]) if config_mount else None
check(config_map is not None, "the configuration's ConfigMap is not generated")
config = tomllib.loads(config_map["data"][posixpath.basename(config_path)]) if config_map else {}

ports = {p["name"]: p["containerPort"] for p in container["ports"]}
service_port = int(config["server"]["listen"].rsplit(":", 1)[1])
admin_port = int(config.get("admin", {}).get("listen", "127.0.0.1:0").rsplit(":", 1)[1])
check(ports.get("https") == service_port, f"port https is not [server] listen's {service_port}")
check(ports.get("admin") == admin_port, f"port admin is not [admin] listen's {admin_port}")
check(config.get("admin", {}).get("listen", "").startswith("0.0.0.0:"), "[admin] listens on loopback: probes cannot reach it")
for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
    get = container[probe]["httpGet"]
    check(get["path"] == path and get["port"] == "admin", f"{probe} is not {path} on the admin port")

# Every file the configuration names lies under a volume mounted for it.
config_dir = posixpath.dirname(config_path)
named = [config["tls"]["cert"], config["tls"]["key"], config["keys"]["file"], *config["trust"]["roots"]]
for file in named:
    path = posixpath.normpath(posixpath.join(config_dir, file))
    under = [n for n, p in mounts.items() if path.startswith(p.rstrip("/") + "/")]
    check(under, f"{path} (from the configuration) is under no volume mount")
for name in ("tls", "keys"):
    mode = volumes[name].get("secret", {}).get("defaultMode")
    check(mode is not None and mode & 0o007 == 0, f"secret volume {name} is readable by others")

# Disruption budget and services select the pods.
(pdb,) = by_kind["PodDisruptionBudget"]
selects = lambda sel: all(labels.get(k) == v for k, v in sel.items())
check(selects(pdb["spec"]["selector"]["matchLabels"]), "the PodDisruptionBudget selects no pod")
for service in by_kind["Service"]:
    check(selects(service["spec"]["selector"]), f"service {service['metadata']['name']} selects no pod")
    for port in service["spec"]["ports"]:
        check(port["targetPort"] in ports, f"service {service['metadata']['name']} targets unknown port {port['targetPort']}")
(policy,) = by_kind["NetworkPolicy"]
allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule.get("ports", [])}
check(allowed == {service_port, admin_port}, f"the NetworkPolicy admits ports {allowed}")

for problem in problems:
    print(f"deploy/kubernetes: {problem}")
print(f"deploy/kubernetes: {len(docs)} documents checked, {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
