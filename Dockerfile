# The bank's image for people with a registry: build `bank` from source, statically linked, then
# an empty root holding only it. The runtime stage is docker/scratch.Dockerfile (the image CI
# builds and tests without a registry), line for line: keep the two in step.
#
#   docker build -t bank .        then see compose.yaml and docs/deploy.md
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS='-C target-feature=+crt-static' \
        cargo build --release --locked -p bank-cli --target x86_64-unknown-linux-gnu \
    && mkdir -p /out \
    && strip -o /out/bank target/x86_64-unknown-linux-gnu/release/bank

FROM scratch
COPY docker/rootfs/etc/ /etc/
COPY --chown=10001:10001 docker/rootfs/data/ /data/
COPY --chown=10001:10001 docker/rootfs/consortium/ /consortium/
COPY --from=build /out/bank /bank
USER 10001:10001
ENV BANK_DATA=/data/ledger BANK_LISTEN=0.0.0.0:8081 TMPDIR=/data
VOLUME ["/data"]
EXPOSE 8081
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 CMD ["/bank", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bank"]
CMD ["node"]
