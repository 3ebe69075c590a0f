# The compose stack's gateway on a machine with no image registry
# (scripts/podman-base-images.sh): Debian's HAProxy 2.6 on the locally built Debian base.
# Where a registry is reachable the stack uses the official `haproxy:2.6` (GATEWAY_IMAGE);
# compose runs both with the same command and config (deploy/gateway/haproxy.cfg).
FROM debian:bookworm-slim
# Debian's stable packages: the release pins the version; security updates are wanted.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends haproxy \
    && rm -rf /var/lib/apt/lists/*
# The package's own system user (its uid is assigned when the package installs).
# hadolint ignore=DL3066
USER haproxy
EXPOSE 8000
CMD ["haproxy", "-W", "-db", "-f", "/etc/tickwire/haproxy.cfg"]
