# syntax=docker/dockerfile:1
# The chainr server's image: `docker build -t chainr:0.1.0 .` (docs/deploy.md). It runs
# `chainrc serve` by default; any other chainrc command can be given instead.

# The release binary. The cache mounts (BuildKit) keep the downloaded crates and the compiled
# dependencies from one build to the next, so a change to chainr's own code rebuilds little.
# The binary is copied out of the cached target directory, which is not part of the image.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin chainrc \
    && cp target/release/chainrc /usr/local/bin/chainrc

# The runtime: the binary, CA certificates (for the servers chainrc reaches over TLS) and a
# shell (/bin/sh, which the local executor runs jobs with). The same Debian release as the builder,
# so the binary finds the glibc it was linked against.
FROM debian:bookworm-slim
# No version pinned for ca-certificates: it follows bookworm's security updates on each build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 chainr \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/chainr \
        --shell /usr/sbin/nologin chainr \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/chainr
COPY --from=build /usr/local/bin/chainrc /usr/local/bin/chainrc
LABEL org.opencontainers.image.title="chainr" \
      org.opencontainers.image.description="chainr: chain container jobs (chainrc serve)" \
      org.opencontainers.image.licenses="Apache-2.0"
# A numeric user, so that Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/chainr
EXPOSE 8080
ENTRYPOINT ["chainrc"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
