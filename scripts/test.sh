#!/usr/bin/env bash
# The one test command (README; .ci/run calls it): makes sure RabbitMQ and Redis are up,
# then runs formatting, lints, every Rust test, and the official-client compatibility check.
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

ensure_redis() {
    if port_open 127.0.0.1 6379; then return 0; fi
    if command -v redis-server >/dev/null; then
        echo "test.sh: starting Redis"
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
        wait_port Redis 127.0.0.1 6379 30
    else
        echo "ERROR: Redis is not running on 127.0.0.1:6379 and redis-server is not installed." >&2
        echo "       Install it (apt-get install redis-server) or start one, then re-run." >&2
        return 1
    fi
}

ensure_rabbitmq() {
    if port_open 127.0.0.1 5672; then return 0; fi
    if command -v rabbitmq-server >/dev/null; then
        echo "test.sh: starting RabbitMQ"
        rabbitmq-server -detached >/dev/null 2>&1 || true
        wait_port RabbitMQ 127.0.0.1 5672 120
    else
        echo "ERROR: RabbitMQ is not running on 127.0.0.1:5672 and rabbitmq-server is not installed." >&2
        echo "       Install it (apt-get install rabbitmq-server) or start one, then re-run." >&2
        return 1
    fi
}

ensure_redis
ensure_rabbitmq

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== cargo test"
cargo test --all-targets
echo "== official Massive client against the simulator"
scripts/client-compat.sh
echo "test.sh: all checks passed"
