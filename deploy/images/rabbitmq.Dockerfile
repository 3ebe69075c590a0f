# RabbitMQ for the compose stack on a machine with no image registry (scripts/podman-base-images.sh):
# Debian's rabbitmq-server on the locally built Debian base, taking RABBITMQ_DEFAULT_USER and
# RABBITMQ_DEFAULT_PASS as the official `rabbitmq:3-management` image does (RABBITMQ_IMAGE
# picks which one the stack runs).
FROM debian:bookworm-slim
# No init system in a container: package scripts must not try to start the server. The
# Erlang cookie the package made goes: each container makes its own at first start (a cookie
# baked into an image would let anyone with the image drive the broker over port 25672).
# Debian's stable packages: the release pins the version; security updates are wanted.
# hadolint ignore=DL3008
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d \
    && chmod +x /usr/sbin/policy-rc.d \
    && apt-get update \
    && apt-get install -y --no-install-recommends rabbitmq-server \
    && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d /var/lib/rabbitmq/.erlang.cookie
COPY --chmod=755 deploy/images/rabbitmq-entrypoint.sh /usr/local/bin/rabbitmq-entrypoint
ENV HOME=/var/lib/rabbitmq PATH=/usr/lib/rabbitmq/bin:$PATH
# The package's own system user (its uid is assigned when the package installs).
# hadolint ignore=DL3066
USER rabbitmq
WORKDIR /var/lib/rabbitmq
EXPOSE 5672
ENTRYPOINT ["rabbitmq-entrypoint"]
CMD ["rabbitmq-server"]
