# wadm as a container image: one fully static binary (musl) on an empty base — no shell, no
# libc, no package manager — running as an unprivileged user.
#
#   docker build -t wadm .
#   docker run --rm wadm --version
#   docker run --rm -e WADM_NATS_URL=nats://nats:4222 -p 9090:9090 wadm serve --http-addr 0.0.0.0:9090
#
# `wadm serve` needs an external NATS (WADM_NATS_URL): the image has no nats-server to start.
# Connection settings: every `--nats-…` flag has a WADM_… variable (docs/deploy.md).

FROM rust:1.89-bookworm AS build
# musl-tools: a C compiler for the musl target (the TLS stack's `ring` has C and assembly).
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --locked --release --target x86_64-unknown-linux-musl -p wadm --bin wadm \
    && cp target/x86_64-unknown-linux-musl/release/wadm /wadm \
    # Refuse to ship anything that would need a dynamic loader.
    && ! readelf -l /wadm | grep -q 'Requesting program interpreter'

FROM scratch
# Root certificates, for a NATS server whose certificate a public CA signed (a private CA is
# given with --nats-tls-ca instead).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /wadm /wadm
# Any unprivileged uid works: wadm writes nothing to disk (its state lives in JetStream).
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["/wadm"]
CMD ["serve", "--http-addr", "0.0.0.0:9090"]
