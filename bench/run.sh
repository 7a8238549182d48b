#!/bin/sh
# Measures pgguard against PgBouncer (session mode) and direct PostgreSQL with
# pgbench, plus memory per idle connection and a 1 GiB COPY; see
# bench/README.md. Flags go to bench/cmd/pgbench-compare (-h lists them).
# Results: bench/results/latest.{md,png,json}.
set -eu
cd "$(dirname "$0")/.."
# 2,000 idle sessions hold two sockets each in the proxy; the program raises
# the soft limit to the hard one itself, this lifts the hard one when allowed.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec go run ./bench/cmd/pgbench-compare "$@"
