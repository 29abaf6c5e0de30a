# syntax=docker/dockerfile:1

# hydrant's image: `docker build -t hydrant .`
#
# It runs the daemon by default (`hydrant run --listen 0.0.0.0:8080`); arguments
# replace that command: `docker run --rm hydrant reconcile --once --output json`.
# It runs as the unprivileged user 65532 and writes only to /var/lib/hydrant.

FROM rust:1-bookworm AS build
WORKDIR /src
# libgit2, libssh2 and OpenSSL are vendored and linked statically (this image has
# the perl and make that OpenSSL's build needs). zlib is linked statically too,
# so that the binary needs nothing beyond glibc and libgcc.
ENV LIBZ_SYS_STATIC=1
# .dockerignore lets in only Cargo.toml, Cargo.lock and src/.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -D -m 0755 target/release/hydrant /out/hydrant \
    && mkdir -p /out/state

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/hydrant /usr/local/bin/hydrant
# The work directory: hydrant's bare clone of the config repository, its lock and
# the local forge's pull requests; through HOME, also the channel cache
# (~/.cache/hydrant/channels). It is the only place hydrant writes.
COPY --from=build --chown=65532:65532 /out/state /var/lib/hydrant
ENV HOME=/var/lib/hydrant \
    HYDRANT_WORK_DIR=/var/lib/hydrant
VOLUME ["/var/lib/hydrant"]
WORKDIR /var/lib/hydrant
USER 65532:65532
# /healthz, /readyz, /metrics, /trigger and the webhooks.
EXPOSE 8080
ENTRYPOINT ["hydrant"]
CMD ["run", "--listen", "0.0.0.0:8080"]
