#!/usr/bin/env python3
"""The rules deploy/k8s/ must keep, beyond what the Kubernetes schemas check
(scripts/check-deploy.sh runs both; docs/operations.md, "Kubernetes", says why each holds).

- the kustomization lists every manifest, and only those;
- every workload: non-root with the RuntimeDefault seccomp profile, no service-account token;
  every container: no privilege escalation, a read-only root filesystem, every capability
  dropped, CPU and memory requests and limits, readiness and liveness probes (tickwire's on
  /ready and /health), a termination grace longer than a clean stop (5 s);
- secrets only from the Secret, whose values are all placeholders (`change-me`);
- every ConfigMap key is a documented setting (docs/configuration.md);
- a default-deny NetworkPolicy for both directions; every scaled Deployment has a PDB.

Exits 1 listing every breach.
"""
import os
import re
import sys

import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
K8S = os.path.join(ROOT, "deploy", "k8s")
SECRET_NAMES = {"ADMIN_TOKEN", "WDS_TOKEN_SECRET", "SCP_ADMIN_PASSWORD", "REDIS_PASSWORD",
                "RABBITMQ_PASSWORD", "MASSIVE_API_KEY", "RABBITMQ_DEFAULT_PASS"}
CLEAN_STOP_SECS = 5

breaches = []


def breach(where, what):
    breaches.append(f"{where}: {what}")


def load():
    kust = yaml.safe_load(open(os.path.join(K8S, "kustomization.yaml")))
    listed = set(kust["resources"])
    present = {f for f in os.listdir(K8S) if f.endswith(".yaml") and f != "kustomization.yaml"}
    for f in sorted(present - listed):
        breach("kustomization.yaml", f"{f} is not listed")
    for f in sorted(listed - present):
        breach("kustomization.yaml", f"{f} does not exist")
    docs = []
    for f in sorted(present):
        for d in yaml.safe_load_all(open(os.path.join(K8S, f))):
            if d:
                docs.append((f, d))
    return docs


def check_container(where, c, tickwire):
    sc = c.get("securityContext", {})
    if sc.get("allowPrivilegeEscalation") is not False:
        breach(where, "allowPrivilegeEscalation must be false")
    if sc.get("readOnlyRootFilesystem") is not True:
        breach(where, "readOnlyRootFilesystem must be true")
    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
        breach(where, "capabilities must drop ALL")
    res = c.get("resources", {})
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in res.get(kind, {}):
                breach(where, f"no {kind}.{r}")
    for probe in ("readinessProbe", "livenessProbe"):
        if probe not in c:
            breach(where, f"no {probe}")
    if tickwire:
        paths = {p: c.get(p, {}).get("httpGet", {}).get("path") for p in ("readinessProbe", "livenessProbe")}
        if paths != {"readinessProbe": "/ready", "livenessProbe": "/health"}:
            breach(where, f"tickwire probes must be /ready and /health, not {paths}")
    for e in c.get("env", []):
        if e["name"] in SECRET_NAMES and "value" in e:
            breach(where, f"{e['name']} given literally, not from the Secret")
        if "value" in e and re.search(r"://[^:/]*:[^$@/][^@]*@", e["value"]):
            breach(where, f"{e['name']} holds a literal password")


def check_workload(f, d):
    where = f"{f} {d['kind']}/{d['metadata']['name']}"
    pod = d["spec"]["template"]["spec"]
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True:
        breach(where, "runAsNonRoot must be true")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        breach(where, "seccompProfile must be RuntimeDefault")
    if pod.get("automountServiceAccountToken") is not False:
        breach(where, "automountServiceAccountToken must be false")
    if pod.get("terminationGracePeriodSeconds", 30) <= CLEAN_STOP_SECS:
        breach(where, f"terminationGracePeriodSeconds must exceed a clean stop ({CLEAN_STOP_SECS} s)")
    for c in pod["containers"] + pod.get("initContainers", []):
        check_container(f"{where} container {c['name']}", c, c.get("image") == "tickwire")


def documented_settings():
    text = open(os.path.join(ROOT, "docs", "configuration.md")).read()
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", text))


def main():
    docs = load()
    documented = documented_settings()
    pdbs = set()
    scaled = set()
    deny = False
    for f, d in docs:
        kind, name = d["kind"], d["metadata"]["name"]
        if kind in ("Deployment", "StatefulSet"):
            check_workload(f, d)
            if kind == "Deployment" and d["spec"].get("replicas", 1) > 1:
                scaled.add(name)
        elif kind == "Secret":
            for k, v in {**d.get("stringData", {}), **d.get("data", {})}.items():
                if v != "change-me":
                    breach(f"{f} Secret/{name}", f"{k} is not the placeholder `change-me`")
        elif kind == "ConfigMap":
            for k in d.get("data", {}):
                if k not in documented:
                    breach(f"{f} ConfigMap/{name}", f"{k} is not in docs/configuration.md")
        elif kind == "PodDisruptionBudget":
            pdbs.add(d["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/component"))
        elif kind == "NetworkPolicy":
            spec = d["spec"]
            if spec.get("podSelector") == {} and set(spec.get("policyTypes", [])) == {"Ingress", "Egress"} \
                    and not spec.get("ingress") and not spec.get("egress"):
                deny = True
    if not deny:
        breach("networkpolicies.yaml", "no default-deny policy for ingress and egress")
    for name in sorted(scaled - pdbs):
        breach(f"Deployment/{name}", "scaled but no PodDisruptionBudget")
    if breaches:
        print("k8s-policy: FAILED", file=sys.stderr)
        for b in breaches:
            print(f"  {b}", file=sys.stderr)
        sys.exit(1)
    print(f"k8s-policy: {len(docs)} manifests keep every rule")


if __name__ == "__main__":
    main()
