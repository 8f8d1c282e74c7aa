# The image built without any registry: an empty root holding the `bank` binary, statically
# linked on the host (docker/local-image.sh stages it with docker/rootfs as the build context).
# Its layout is the runtime stage of ../Dockerfile, line for line: keep the two in step.
FROM scratch
COPY rootfs/etc/ /etc/
COPY --chown=10001:10001 rootfs/data/ /data/
COPY --chown=10001:10001 rootfs/consortium/ /consortium/
COPY bank /bank
USER 10001:10001
# The ledger in a directory the bank creates itself (mode 0700); SQLite's temporary files beside it.
ENV BANK_DATA=/data/ledger BANK_LISTEN=0.0.0.0:8081 TMPDIR=/data
VOLUME ["/data"]
EXPOSE 8081
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 CMD ["/bank", "health"]
# SIGTERM: the node stops accepting, finishes the batch in flight, and exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bank"]
CMD ["node"]
