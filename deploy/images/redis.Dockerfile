# Redis for the compose stack on a machine with no image registry (scripts/podman-base-images.sh):
# Debian's redis-server on the locally built Debian base. Where a registry is reachable the
# stack uses the official `redis:7` instead (REDIS_IMAGE); compose gives both the same command.
FROM debian:bookworm-slim
# Debian's stable packages: the release pins the version; security updates are wanted.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server redis-tools \
    && rm -rf /var/lib/apt/lists/*
# The package's own system user (its uid is assigned when the package installs).
# hadolint ignore=DL3066
USER redis
WORKDIR /var/lib/redis
EXPOSE 6379
CMD ["redis-server", "--bind", "0.0.0.0", "--save", "", "--appendonly", "no"]
