# Builds the wfl binaries (wfl, wfl-gateway, wfl-ledger, wfl-projector) into one small image.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bins

FROM debian:bookworm-slim
COPY --from=build /src/target/release/wfl /src/target/release/wfl-gateway /src/target/release/wfl-ledger /src/target/release/wfl-projector /usr/local/bin/
COPY rulepacks /etc/wfl/rulepacks
USER 65534
ENTRYPOINT []
