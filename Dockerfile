# Dockerfile — epsinas service image (multi-stage, debian:12-slim).
#   docker build -t epsinas .
#   docker run -p 8080:8080 -e EPSINAS_WORKERS=2 epsinas
# Build: the same Makefile and dependency script CI uses, for a portable
# x86-64-v2 target instead of -march=native (the image runs on other CPUs).
# For a fleet on AVX-512 CPUs, --build-arg ARCH_FLAGS=-march=x86-64-v4
# enables the fast engine's AVX-512 kernels (several times faster).
# Runtime: only the shared libraries, a non-root user, configuration by
# EPSINAS_* environment variables (see `docker run epsinas serve --help`).

FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first: this layer is reused until the Makefile or the script change.
COPY Makefile VERSION ./
COPY scripts/install-deps.sh scripts/
RUN make deps && rm -rf /var/lib/apt/lists/*
COPY include include
COPY src src
# The dashboard: web/dist from the build context is used when it matches
# web/'s sources and openapi.yaml (scripts/web-build.sh checks a content
# hash); otherwise it is built here (node and npm from Debian, npm ci).
COPY openapi.yaml ./
COPY web web
COPY scripts/web-build.sh scripts/web-embed.sh scripts/
ARG ARCH_FLAGS=-march=x86-64-v2
RUN make ARCH_FLAGS="$ARCH_FLAGS" build/epsinas \
 && strip build/epsinas \
 && build/epsinas serve --help >/dev/null

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libopenblas0 libjansson4 libmicrohttpd12 libuv1 libhiredis0.14 libcurl4 libsqlite3-0 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 epsinas \
 && useradd --system --uid 10001 --gid epsinas --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin epsinas
COPY --from=build /src/build/epsinas /usr/local/bin/epsinas
USER 10001:10001
ENV EPSINAS_LISTEN=0.0.0.0 \
    EPSINAS_PORT=8080 \
    EPSINAS_LOG_FORMAT=json
EXPOSE 8080
# Ready = accepting compute (not draining, queue not wedged); Redis is not
# consulted. The port follows EPSINAS_PORT when it is overridden.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${EPSINAS_PORT:-8080}/v2/health/ready" || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/epsinas"]
CMD ["serve"]
