# Multi-stage build: compile in the Rust image, run from a small non-root Debian image.
# The protos are compiled by build.rs with protox, so no protoc is needed.
FROM rust:1.89-bookworm AS build
WORKDIR /src
# Cache dependencies: build a stub first so source edits do not refetch and rebuild them.
COPY Cargo.toml Cargo.lock build.rs ./
# The SQLite compile options (LIBSQLITE3_FLAGS) live in .cargo/config.toml.
COPY .cargo ./.cargo
COPY proto ./proto
RUN mkdir src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && cargo build --release --locked || true
COPY src ./src
COPY kb ./kb
RUN touch src/main.rs src/lib.rs && cargo build --release --locked \
    && strip target/release/servicedesk

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin servicedesk \
    && mkdir -p /data && chown servicedesk:servicedesk /data
COPY --from=build /src/target/release/servicedesk /usr/local/bin/servicedesk
USER servicedesk
VOLUME ["/data"]
EXPOSE 50051
# Metrics, when started with --metrics-listen 0.0.0.0:9090.
EXPOSE 9090
# Healthy while the server answers SERVING; draining or cut off from its store, it is not.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["servicedesk", "health", "--address", "http://127.0.0.1:50051", "--timeout-secs", "3"]
ENTRYPOINT ["servicedesk","serve","--listen","0.0.0.0:50051","--data-dir","/data"]
