#!/bin/sh
# Entry point of deploy/images/rabbitmq.Dockerfile: writes the broker's config (the first
# user from RABBITMQ_DEFAULT_USER/RABBITMQ_DEFAULT_PASS, logs to the console) into the data
# directory, readable by the broker's user alone, then runs the broker as PID 1.
set -eu
: "${RABBITMQ_DEFAULT_USER:?set RABBITMQ_DEFAULT_USER}"
: "${RABBITMQ_DEFAULT_PASS:?set RABBITMQ_DEFAULT_PASS}"
umask 077
cat > "$HOME/rabbitmq.conf" <<CONF
default_user = $RABBITMQ_DEFAULT_USER
default_pass = $RABBITMQ_DEFAULT_PASS
log.console = true
log.file = false
CONF
export RABBITMQ_CONFIG_FILE="$HOME/rabbitmq.conf"
exec "$@"
