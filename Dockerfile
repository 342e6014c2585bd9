# The MTP Admin image: a release build of `mtp` on a small Debian base, run as a
# non-root user that belongs to the group owning the mounted Docker socket.
#
#   docker build -t mtp-admin .
#   docker run --rm --network host \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -v /srv/mtp:/srv/mtp -e MTP_DATA_DIR=/srv/mtp \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -e MTP_TELEGRAM_TOKEN=… -e MTP_OPERATORS=… mtp-admin            # mtp serve
#   docker run … mtp-admin tenant list                                    # any CLI command
#
# Two musts: the data dir is mounted at the SAME path inside and outside (the
# engine resolves the cells' bind mounts on the host), and the host network,
# because cells publish their gateways on the host's 127.0.0.1 only.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Everything the manifest names (benches, examples, the chart's font in assets/);
# .dockerignore keeps target/ and data out.
COPY . .
RUN cargo build --locked --release --bin mtp

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 # uid 1000 is also the cells' user, so tenant dirs need no chown.
 && useradd --uid 1000 --create-home --shell /usr/sbin/nologin mtp \
 && mkdir /data && chown mtp:mtp /data && chmod 0700 /data
COPY --from=build /src/target/release/mtp /usr/local/bin/mtp
USER 1000:1000
ENV MTP_DATA_DIR=/data
# `mtp serve` answers its own /healthz on the admin listener (MTP_HTTP_ADDR).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD curl -fsS "http://${MTP_HTTP_ADDR:-127.0.0.1:9464}/healthz" >/dev/null || exit 1
ENTRYPOINT ["mtp"]
CMD ["serve"]
