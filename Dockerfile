# Builds the wfl binaries (wfl, wfl-gateway, wfl-ledger, wfl-projector) into one small image.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bins

FROM debian:bookworm-slim
# curl: the compose health checks ask each service's /healthz.
RUN apt-get update && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/wfl /src/target/release/wfl-gateway /src/target/release/wfl-ledger /src/target/release/wfl-projector /usr/local/bin/
COPY rulepacks /etc/wfl/rulepacks
# The data dir belongs to the user the services run as; a named volume mounted on /data starts
# as a copy of it (same owner), so the ledger and the projector can write there.
RUN mkdir -p /data && chown 65534:65534 /data
USER 65534
WORKDIR /data
ENTRYPOINT []
