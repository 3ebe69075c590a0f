#!/usr/bin/env bash
# The compose stack for real, under podman (root), with no image registry:
#   1. the base and service images (scripts/podman-base-images.sh) and the tickwire image;
#   2. deploy/compose.yaml up (profile demo: the simulated Massive) as project
#      `tickwire-test` ($COMPOSE_TEST_PROJECT), with fresh random secrets, the gateway on
#      127.0.0.1:$COMPOSE_TEST_PORT (18000), the client network on $COMPOSE_TEST_SUBNET;
#   3. every container healthy (podman here has no systemd to run healthchecks on a timer,
#      so this script runs them: `podman healthcheck run`, every 2 s);
#   4. through the published port only: log in, WDS tokens, v2 and v1 clients get scanner
#      updates; only the gateway publishes a port; from a container on the `client` network
#      alone, RabbitMQ, Redis, the listener and the processor cannot be reached, by name or
#      by address; the data plane has no way out;
#      the official Massive client (PyPI `massive`) uses the Massive relay through the gateway
#      with a relay key from the control plane (tests/compat/relay_client.py);
#   5. processors and WDS scaled to 2: both seen by the control plane, sockets spread over
#      both WDS, updates flow; a processor killed with SIGKILL is restarted and healthy again.
#
#   scripts/compose-test.sh            run it all, then remove the stack
#   scripts/compose-test.sh --keep-up  leave the stack running (prints the dashboard URL and
#                                      the admin password); remove it with --down
#   scripts/compose-test.sh --down     remove the stack
set -euo pipefail
cd "$(dirname "$0")/.."

PROJECT=${COMPOSE_TEST_PROJECT:-tickwire-test}
PORT=${COMPOSE_TEST_PORT:-18000}
SUBNET=${COMPOSE_TEST_SUBNET:-10.89.242.0/24} # the client network's (two stacks need two)
URL="http://127.0.0.1:$PORT"
STATE=/tmp/$PROJECT.env # the stack's secrets while it runs (root only)
mode=${1:-}

log() { echo "compose-test: $*"; }
die() { echo "compose-test: FAILED: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (podman here runs as root)"

# podman-compose 1.x from PyPI (Debian's 1.0.3 lacks profiles and --scale); websockets for
# the client checks.
python3 -c 'import websockets' 2>/dev/null || python3 -m pip install -q --root-user-action=ignore websockets==15.0.1 >/dev/null
command -v podman-compose >/dev/null || python3 -m pip install -q --root-user-action=ignore podman-compose==1.6.0 >/dev/null

compose() {
    podman-compose --project-name "$PROJECT" --env-file "$STATE" -f deploy/compose.yaml \
        --profile demo "$@"
}

down() {
    if [ -f "$STATE" ]; then
        compose down --volumes --timeout 10 >/dev/null 2>&1 || true
        rm -f "$STATE"
    fi
    # Anything left by an interrupted run.
    podman ps -a --filter "label=io.podman.compose.project=$PROJECT" -q | xargs -r podman rm -f >/dev/null
    podman network ls -q | grep "^${PROJECT}_" | xargs -r podman network rm -f >/dev/null || true
}

if [ "$mode" = "--down" ]; then
    down
    log "stack removed"
    exit 0
fi

containers() { podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}'; }
container_of() { containers | grep -E "^${PROJECT}_$1_[0-9]+$" | head -1; }

# Runs every container's healthcheck once; prints those not healthy yet.
not_healthy() {
    local c status
    for c in $(containers); do
        podman healthcheck run "$c" >/dev/null 2>&1 || true
        status=$(podman inspect --format '{{.State.Status}}/{{.State.Health.Status}}' "$c" 2>/dev/null || echo gone)
        [ "$status" = "running/healthy" ] || echo "$c($status)"
    done
}

wait_healthy() { # seconds
    local end=$((SECONDS + $1)) left
    while :; do
        left=$(not_healthy)
        [ -z "$left" ] && return 0
        if [ $SECONDS -ge $end ]; then
            for c in $left; do
                c=${c%%(*}
                echo "---- last log lines of $c" >&2
                podman logs --tail 15 "$c" >&2 || true
            done
            die "not healthy after $1 s: $left"
        fi
        sleep 2
    done
}

down
log "images"
# Runs a step with its output in a log, shown only when it fails: quiet(what, command...).
steplog=$(mktemp)
quiet() {
    local what=$1
    shift
    "$@" >"$steplog" 2>&1 || { tail -40 "$steplog"; die "$what"; }
}
quiet "base images" scripts/podman-base-images.sh
# The services find each other by name, on an internal network too: netavark with
# aardvark-dns does that (podman-base-images.sh sets it up); CNI's dnsname skips internal networks.
backend=$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null)
[ "$backend" = netavark ] ||
    die "podman's network backend is '$backend': its internal networks get no DNS; run scripts/podman-base-images.sh, or install netavark and aardvark-dns and set network_backend = \"netavark\" in /etc/containers/containers.conf"
started=$SECONDS
quiet "tickwire image" podman build --format docker --pull=never \
    -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/host-ca.crt:ro \
    -f deploy/Dockerfile -t localhost/tickwire:dev .
log "tickwire image built in $((SECONDS - started)) s, $(podman image inspect --format '{{.Size}}' localhost/tickwire:dev | awk '{printf "%d MB", $1/1e6}')"

umask 077
cat > "$STATE" <<EOF
ADMIN_TOKEN=$(openssl rand -hex 32)
WDS_TOKEN_SECRET=$(openssl rand -hex 32)
SCP_ADMIN_PASSWORD=$(openssl rand -hex 16)
REDIS_PASSWORD=$(openssl rand -hex 24)
RABBITMQ_PASSWORD=$(openssl rand -hex 24)
TICKWIRE_PUBLISH=127.0.0.1:$PORT
CLIENT_SUBNET=$SUBNET
TICKWIRE_IMAGE=localhost/tickwire:dev
REDIS_IMAGE=localhost/tickwire-redis:local
RABBITMQ_IMAGE=localhost/tickwire-rabbitmq:local
GATEWAY_IMAGE=localhost/tickwire-gateway:local
LOG_LEVEL=warn
EOF
SCP_ADMIN_PASSWORD=$(sed -n 's/^SCP_ADMIN_PASSWORD=//p' "$STATE")
export SCP_ADMIN_PASSWORD
if [ "$mode" = "--keep-up" ]; then trap 'rm -f "$steplog"' EXIT; else trap 'down; rm -f "$steplog"' EXIT; fi

log "up"
started=$SECONDS
quiet "compose up" compose up -d
wait_healthy 300
log "all $(containers | wc -l) containers healthy $((SECONDS - started)) s after 'up'"

log "checks through $URL only"
python3 scripts/compose_check.py stream "$URL" --sockets 2
# The Massive relay through the gateway: the official client with a key from the control
# plane, frames from the listener through RabbitMQ to the WDS (distributed mode).
venv=target/compat-venv
if ! "$venv/bin/python" -c "import massive" 2>/dev/null; then
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "massive>=2,<3" "finlight-client==2.4.0"
fi
"$venv/bin/python" tests/compat/relay_client.py "$URL" "$SCP_ADMIN_PASSWORD" >"$steplog" 2>&1 ||
    { cat "$steplog"; die "the official Massive client against the relay"; }
log "the official Massive client through the gateway's relay: $(tail -1 "$steplog")"

# Only the gateway publishes, and only on loopback here.
published=$(for c in $(containers); do podman port "$c" | sed "s/^/$c /"; done)
[ "$(echo "$published" | wc -l)" = 1 ] && echo "$published" | grep -q "_gateway_1 8000/tcp -> 127.0.0.1:$PORT" ||
    die "published ports: $published"
log "published: only $published"

# A container on the client network alone: the data plane is out of reach by name and by
# address; the control plane and the WDS are there (the gateway's way in).
probe() { # network, then host:port pairs; prints those that answered
    podman run --rm --network "$1" localhost/tickwire-gateway:local bash -c '
        for hp in "$@"; do
            timeout 3 bash -c "exec 3<>/dev/tcp/${hp%:*}/${hp#*:}" 2>/dev/null && echo "$hp"
        done; true' probe "${@:2}"
}
ip_on() { podman inspect --format "{{(index .NetworkSettings.Networks \"${PROJECT}_$2\").IPAddress}}" "$(container_of "$1")"; }
targets=""
for sp in rabbitmq:5672 redis:6379 listener:4200 processor:4201; do # service:port
    targets="$targets $sp $(ip_on "${sp%:*}" dataplane):${sp#*:}"
done
reached=$(probe "${PROJECT}_client" $targets)
[ -z "$reached" ] || die "from the client network, the data plane answered at: $reached"
[ -n "$(probe "${PROJECT}_client" wds:4202 scp:8000)" ] || die "the client network does not reach wds and scp"
log "client network: none of $targets answers; wds and scp do"
# The data plane has no way out (internal network): not even the gateway's client address.
gateway_ip=$(ip_on gateway client)
reached=$(probe "${PROJECT}_dataplane" "$gateway_ip:8000" 1.1.1.1:53)
[ -z "$reached" ] || die "from the data plane, reached: $reached"
log "data plane: no route out"

log "scale processor and wds to 2"
# podman-compose takes one --scale per call and sets every other service back to 1: the
# replica counts live in the environment instead (the compose file's `scale:`).
printf 'PROCESSOR_REPLICAS=2\nWDS_REPLICAS=2\n' >> "$STATE"
quiet "scaling" compose up -d --no-recreate
wait_healthy 180
python3 scripts/compose_check.py nodes "$URL" processor=2 wds=2 listener=1 scp=1
python3 scripts/compose_check.py stream "$URL" --sockets 4 --spread 2

victim=$(container_of processor)
log "SIGKILL to $victim's process"
restarts=$(podman inspect --format '{{.RestartCount}}' "$victim")
# A crash, not a stop: SIGKILL to its process from the host (`podman kill` counts as a stop
# by the user, which `unless-stopped` respects).
kill -KILL "$(podman inspect --format '{{.State.Pid}}' "$victim")"
end=$((SECONDS + 120))
until [ "$(podman inspect --format '{{.RestartCount}}' "$victim")" -gt "$restarts" ]; do
    [ $SECONDS -lt $end ] || die "$victim was not restarted"
    sleep 1
done
wait_healthy 120
python3 scripts/compose_check.py nodes "$URL" processor=2
python3 scripts/compose_check.py stream "$URL" --sockets 1
log "$victim restarted by its policy and healthy; updates flow"

if [ "$mode" = "--keep-up" ]; then
    log "the stack runs: $URL/ (admin / $SCP_ADMIN_PASSWORD); remove it with $0 --down"
else
    log "all checks passed"
fi
