# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run from a small non-root Debian image.
# The protos are compiled by build.rs with protox, so no protoc is needed.
# scripts/check-image builds from exactly what this file copies and runs its command.

# rust:1.95-bookworm
FROM rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
# The SQLite compile options (LIBSQLITE3_FLAGS) live in .cargo/config.toml.
COPY .cargo ./.cargo
COPY proto ./proto
COPY src ./src
# Compiled into the binary: the default knowledge base and the web console's bundle.
COPY kb ./kb
COPY console/dist ./console/dist
# The registry and the target directory are cache mounts, so a source change recompiles only
# the crate. A cache mount is not part of the image, so the binary leaves it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin servicedesk \
    && cp target/release/servicedesk /usr/local/bin/servicedesk \
    && strip /usr/local/bin/servicedesk

# debian:bookworm-slim
FROM debian:bookworm-slim@sha256:3783cc01769c7b2b1b83a5c5ad96c815348e28ed7da68e2e3687004faa906251
LABEL org.opencontainers.image.title="servicedesk" \
      org.opencontainers.image.description="A multi-tier customer service desk served over gRPC" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"
# ca-certificates: the system's CA roots in /etc/ssl/certs, for TLS clients in the container that
# trust them. User and group are 10001, the manifests' runAsUser, runAsGroup and fsGroup.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 servicedesk \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin servicedesk \
    && mkdir -p /data \
    && chown 10001:10001 /data
COPY --from=build /usr/local/bin/servicedesk /usr/local/bin/servicedesk
# Settings come from the environment rather than from ENTRYPOINT flags, so that every command
# finds them: `docker run IMAGE` serves, `docker run IMAGE check` checks the store in /data, and
# a manifest's args (`serve --metrics-listen ...`) add to them instead of repeating them.
ENV SERVICEDESK_LISTEN=0.0.0.0:50051 \
    SERVICEDESK_DATA_DIR=/data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 50051
# Metrics, when started with --metrics-listen 0.0.0.0:9090 (SERVICEDESK_METRICS_LISTEN).
EXPOSE 9090
# Healthy while the process serves: the whole server's health turns NOT_SERVING when it drains,
# never for its store (servicedesk.store says that).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["servicedesk", "health", "--address", "http://127.0.0.1:50051", "--timeout-secs", "3"]
ENTRYPOINT ["servicedesk"]
CMD ["serve"]
