# syntax=docker/dockerfile:1
#
# pgguard container image.
#
#   docker build -t pgguard .
#   docker run --rm -p 6432:6432 -p 9187:9187 \
#       -e PGGUARD_UPSTREAM='postgres://db.internal:5432/?sslmode=verify-full&sslrootcert=/etc/pgguard/db-ca.pem' \
#       -v /srv/pgguard/policy:/etc/pgguard:ro pgguard
#
# Every flag of `pgguard serve` can be set as PGGUARD_<FLAG> (see
# `pgguard serve -h`); docker-compose.yml shows a complete setup.

# --- build -------------------------------------------------------------------
# cgo is required: the SQL parser is PostgreSQL's own (pg_query), written in C.
# The binary is linked statically (glibc's libc.a, netgo and osusergo keep it
# free of NSS and dlopen), so it runs on any Linux base image.
# The image names a patch release: the official images set GOTOOLCHAIN=local,
# so a cached golang:1.26 older than the go line of go.mod would not build.
FROM golang:1.26.8-bookworm AS build

WORKDIR /src
ENV CGO_ENABLED=1 \
    GOFLAGS=-trimpath

COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
# The version `pgguard version` reports; without it, the module's build
# information says "(devel)" (.git is not in the build context).
ARG VERSION=
# The first build compiles pg_query and takes a few minutes; the build cache
# mount makes later builds take seconds.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -tags netgo,osusergo \
        -ldflags "-s -w -X main.version=${VERSION} -linkmode external -extldflags '-static'" \
        -o /out/pgguard ./cmd/pgguard \
    && /out/pgguard version

# --- run ---------------------------------------------------------------------
# debian-slim rather than distroless: the container's health check asks
# /healthz over HTTP, and pgguard has no health-check subcommand, so the image
# carries curl. ca-certificates lets the alert webhook reach https receivers
# (Slack, Microsoft Teams, a relay of your own).
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 pgguard \
    && useradd --system --uid 10001 --gid pgguard --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin pgguard

COPY --from=build /out/pgguard /usr/local/bin/pgguard
# The shipped example policy. Mount a folder of your own over /etc/pgguard
# (the folder, not the single files, so that saves which replace a file are
# seen and reloaded).
COPY model.conf policy.csv /etc/pgguard/

ENV PGGUARD_LISTEN=0.0.0.0:6432 \
    PGGUARD_MODEL=/etc/pgguard/model.conf \
    PGGUARD_POLICY=/etc/pgguard/policy.csv

# 6432: PostgreSQL clients; 9187: /metrics and /healthz (set PGGUARD_METRICS).
EXPOSE 6432 9187

# A numeric user, so that runAsNonRoot and similar checks can verify it.
USER 10001:10001

# SIGTERM stops accepting clients and waits --shutdown-grace (30s) for
# sessions to end: give the container more than that to stop.
STOPSIGNAL SIGTERM
ENTRYPOINT ["pgguard"]
CMD ["serve"]
