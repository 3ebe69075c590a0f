#!/usr/bin/env bash
# Builds, with no image registry, the two base images deploy/Dockerfile starts FROM, under the
# names it uses: `debian:bookworm-slim` (debootstrap --variant=minbase, then `podman import`)
# and `rust:1.95-slim-bookworm` (that base, Debian's C toolchain, rustup's Rust 1.95 from
# static.rust-lang.org); and the compose stack's other services from Debian's packages on that
# base (deploy/images/): localhost/tickwire-redis, -rabbitmq, -gateway, which compose runs when
# REDIS_IMAGE, RABBITMQ_IMAGE and GATEWAY_IMAGE name them (scripts/compose-test.sh does).
# Also sets podman up as this kind of machine needs (/etc/containers/containers.conf: no
# default ulimits, runc, cgroupfs; netavark with aardvark-dns, whose networks, internal ones
# too, resolve the compose services by name, which CNI's dnsname does not do for internal
# networks). Root only; idempotent: an image already there is kept
# (--rebuild builds them all again).
#
#   scripts/podman-base-images.sh && podman build --format docker --pull=never \
#       -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/host-ca.crt:ro -f deploy/Dockerfile -t tickwire .
set -euo pipefail

RUST_VERSION=1.95.0
DEBIAN=docker.io/library/debian:bookworm-slim
RUST=docker.io/library/rust:1.95-slim-bookworm
rebuild=false
[ "${1:-}" = "--rebuild" ] && rebuild=true

[ "$(id -u)" = 0 ] || { echo "ERROR: run as root (podman here runs as root)" >&2; exit 1; }
need=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || need+=("$tool"); done
for tool in netavark aardvark-dns; do [ -x "/usr/lib/podman/$tool" ] || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
fi

# The container has no CAP_SYS_RESOURCE (so no raising RLIMIT_NOFILE), and crun refuses this
# host's hybrid cgroups.
mkdir -p /etc/containers
cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"

[network]
network_backend = "netavark"
CONF

have() { podman image exists "$1"; }

if $rebuild || ! have "$DEBIAN"; then
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    echo "== debootstrap bookworm (minbase) -> $DEBIAN"
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | podman import --change 'CMD ["bash"]' - "$DEBIAN" >/dev/null
fi

if $rebuild || ! have "$RUST"; then
    echo "== $RUST (Rust $RUST_VERSION from rustup)"
    # The host's CA bundle for the build's downloads: on machines behind a TLS-inspecting
    # proxy the image's own bundle does not know the proxy's CA (mounted, not copied in).
    podman build --pull=never -t "$RUST" \
        -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/host-ca.crt:ro \
        -f - . <<DOCKERFILE
FROM $DEBIAN
RUN apt-get update \\
    && apt-get install -y --no-install-recommends ca-certificates curl gcc libc6-dev make cmake perl pkg-config \\
    && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:\$PATH
RUN export SSL_CERT_FILE=/etc/ssl/host-ca.crt CURL_CA_BUNDLE=/etc/ssl/host-ca.crt \\
    && curl -sSf -o /tmp/rustup-init https://static.rust-lang.org/rustup/dist/x86_64-unknown-linux-gnu/rustup-init \\
    && chmod +x /tmp/rustup-init \\
    && /tmp/rustup-init -y --no-modify-path --profile minimal --default-toolchain $RUST_VERSION \\
    && rm /tmp/rustup-init
DOCKERFILE
fi
# The stack's services, from the Debian base and Debian's packages.
for svc in redis rabbitmq gateway; do
    if $rebuild || ! have "localhost/tickwire-$svc:local"; then
        echo "== localhost/tickwire-$svc:local (deploy/images/$svc.Dockerfile)"
        podman build --format docker --pull=never -t "localhost/tickwire-$svc:local" \
            -f "deploy/images/$svc.Dockerfile" "$(dirname "$0")/.." >/dev/null
    fi
done
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'debian|rust|tickwire-'
