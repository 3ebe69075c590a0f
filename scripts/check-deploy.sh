#!/usr/bin/env bash
# Checks the deployment files without running them: the Prometheus config, the alert rules and
# their unit tests, and every query of the Grafana dashboard, with promtool; the Dockerfiles
# with hadolint; every YAML file under deploy/ with yamllint (.yamllint.yaml); the compose file
# as podman-compose reads it, with the example environment; the Kubernetes manifests
# (deploy/k8s) against the Kubernetes 1.30 schemas (kubernetes-validate --strict, offline) and
# scripts/k8s-policy.py. scripts/test.sh calls it (and
# scripts/compose-test.sh runs the stack); tests/docs.rs checks that the metric names they use
# are ones the nodes register.
set -euo pipefail
cd "$(dirname "$0")/.."

# The config names its admin-token file, which only a deployment has: check a copy beside a
# placeholder token.
mkdir -p target/prometheus-check
cp deploy/prometheus/prometheus.yml deploy/prometheus/alerts.yml target/prometheus-check/
echo "placeholder-admin-token-for-promtool-check" > target/prometheus-check/admin_token
promtool check config target/prometheus-check/prometheus.yml
promtool test rules deploy/prometheus/alerts_test.yml

# The dashboard's queries, each made a recording rule, so promtool parses every one.
mkdir -p target
python3 - > target/dashboard-queries.yml <<'PY'
import json
d = json.load(open("deploy/grafana/dashboards/tickwire.json"))
print("groups:\n  - name: dashboard-queries\n    rules:")
n = 0
for p in d["panels"]:
    for t in p.get("targets", []):
        n += 1
        print(f"      - record: dashboard_query_{n}\n        expr: {json.dumps(t['expr'])}")
if n == 0:
    raise SystemExit("the dashboard has no queries")
PY
promtool check rules target/dashboard-queries.yml

hadolint deploy/Dockerfile deploy/images/*.Dockerfile
yamllint --strict deploy/ .yamllint.yaml
podman-compose --env-file deploy/.env.example -f deploy/compose.yaml --profile demo --profile ops \
    config >/dev/null
manifests=()
for f in deploy/k8s/*.yaml; do [ "${f##*/}" = kustomization.yaml ] || manifests+=("$f"); done
kubernetes-validate --strict --quiet -k 1.30.0 "${manifests[@]}"
python3 scripts/k8s-policy.py
