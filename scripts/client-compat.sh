#!/usr/bin/env bash
# Points the official Massive Python client (PyPI `massive`) at tickwire-sim over ws:// and
# checks that it connects, authenticates, subscribes and parses the stream; then the official
# Finlight client (PyPI `finlight-client`) at the simulator's news stream; then the Massive
# client at embedded tickwire's Massive relay, with relay keys from its control plane.
# (The relay in distributed mode is checked by tests/relay.rs and the compose stack.)
# Installs the clients into target/compat-venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/compat-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import massive, finlight_client" 2>/dev/null; then
    echo "client-compat: installing the official massive and finlight clients into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "massive>=2,<3" "finlight-client==2.4.0"
fi

cargo build --quiet --bin tickwire-sim --bin tickwire
port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=target/client-compat-sim.log
SERVER_IP=127.0.0.1 SERVER_PORT=$port SIM_API_KEYS=demo SIM_START_TIME=10:00 SIM_RATE=5000 SIM_NEWS_PER_SEC=20 LOG_LEVEL=warn \
    ./target/debug/tickwire-sim >"$log" 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null || true' EXIT

# Wait (bounded) for the simulator to answer /health.
for _ in $(seq 1 300); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then break; fi
    if ! kill -0 $sim 2>/dev/null; then echo "client-compat: tickwire-sim exited:"; cat "$log"; exit 1; fi
    sleep 0.1
done

"$venv/bin/python" tests/compat/massive_client.py "$port"
"$venv/bin/python" tests/compat/finlight_compat.py "$port"

# The Massive relay of embedded tickwire: the same official client, pointed at tickwire.
http_port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sim_port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
data=$(mktemp -d)
password="relay-compat-$RANDOM$RANDOM"
elog=target/client-compat-embedded.log
TICKWIRE_PORT=$http_port SERVER_PORT=$sim_port SCP_DATA_DIR=$data SCP_ADMIN_PASSWORD=$password \
    SIM_START_TIME=10:00 SIM_RATE=2000 SIM_HISTORY_RATE=0 LOG_LEVEL=warn ./target/debug/tickwire >"$elog" 2>&1 &
embedded=$!
trap 'kill $sim $embedded 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 300); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$http_port") 2>/dev/null; then break; fi
    if ! kill -0 $embedded 2>/dev/null; then echo "client-compat: tickwire exited:"; cat "$elog"; exit 1; fi
    sleep 0.1
done
"$venv/bin/python" tests/compat/relay_client.py "http://127.0.0.1:$http_port" "$password"
