#!/usr/bin/env python3
"""Checks the rendered Kubernetes manifests (`kubectl kustomize deploy/kubernetes/base`, or an
overlay, on standard input) against what the binary and its image depend on: the command and the
configuration variable of the Dockerfile, the ports of the configuration in the ConfigMap (the
admin API's too, with its Service and signers Secret), the
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
state = config.get("state", {})
fleet = state.get("backend") == "postgres"
if fleet:
    check("url_file" in state, "[state] reads its URL from url_file, which no Secret provides")
    named += [state[k] for k in ("url_file", "ca") if k in state]
# The signed admin API: its port, its signers file under a secret volume.
api = config.get("api")
api_port = int(api["listen"].rsplit(":", 1)[1]) if api else None
if api:
    named.append(api["signers"])
    check(ports.get("api") == api_port, f"port api is not [api] listen's {api_port}")
    check(fleet, "[api] without a fleet edits the key-store file, which a Secret mount makes read-only")
    check(any(port["targetPort"] == "api" for svc in by_kind["Service"] for port in svc["spec"]["ports"]), "no Service reaches the API")
for file in named:
    path = posixpath.normpath(posixpath.join(config_dir, file))
    under = [n for n, p in mounts.items() if path.startswith(p.rstrip("/") + "/")]
    check(under, f"{path} (from the configuration) is under no volume mount")
for name in ("tls", "keys", *(["state"] if fleet else []), *(["signers"] if api else [])):
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
check(allowed == {service_port, admin_port, *([api_port] if api else [])}, f"the NetworkPolicy admits ports {allowed}")
# Out: nothing for the file backend; the database (and DNS) for a fleet.
egress = {p["port"] for rule in policy["spec"].get("egress", []) for p in rule.get("ports", [])}
if fleet:
    check(5432 in egress and 53 in egress, f"a fleet needs PostgreSQL and DNS out; the NetworkPolicy lets out {egress}")
else:
    check(egress == set(), f"the file backend needs no network out; the NetworkPolicy lets out {egress}")

# A fleet's schema migration: the image's binary, `db migrate`, the same configuration, non-root.
for job in by_kind.get("Job", []):
    jpod = job["spec"]["template"]["spec"]
    (jc,) = jpod["containers"]
    name = job["metadata"]["name"]
    check(jc["image"] == container["image"], f"job {name} runs another image")
    check(jc["args"] == ["db", "migrate"], f"job {name} does not run `db migrate`")
    check({e["name"]: e["value"] for e in jc.get("env", [])}.get("CCS_ENDPOINT_CONFIG") == config_path, f"job {name} reads another configuration")
    check(jpod.get("securityContext", {}).get("runAsNonRoot") is True, f"job {name} may run as root")
    check(jc.get("securityContext", {}).get("readOnlyRootFilesystem") is True, f"job {name}: the root file system is writable")
    jmounts = [m["mountPath"] for m in jc["volumeMounts"]]
    for file in [state.get("url_file", ""), state.get("ca", "")]:
        check(not file or any(file.startswith(m + "/") for m in jmounts), f"job {name}: {file} is under no volume mount")
if fleet:
    check(by_kind.get("Job"), "a fleet has no `db migrate` job")

for problem in problems:
    print(f"deploy/kubernetes: {problem}")
print(f"deploy/kubernetes: {len(docs)} documents checked, {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
