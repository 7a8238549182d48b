#!/usr/bin/env bash
# bench/cold.sh: the cost of a cold analysis (sqlscan's benchmarks) at two
# commits, interleaved, as CPU time per operation and allocations.
#
#   bench/cold.sh [-rounds 6] [-n 30000] [-bench 'PointSelect|UpdateWhere'] OLD [NEW]
#
# NEW defaults to the work tree's HEAD. Each commit's sqlscan test binary
# is built from `git archive` in a temporary folder. Per round and
# benchmark, every binary runs once with -benchtime 1x and once with
# -benchtime Nx; the difference of their user+system CPU time (from
# /usr/bin/time), divided by N, is the CPU time of one operation without
# the fixture loading. On a shared machine CPU time is steadier than the
# wall-clock ns/op of `go test -bench`, which counts the time other
# processes hold the CPUs; it still moves with their load (caches,
# frequency), hence the rounds and the interleaving.
set -euo pipefail
rounds=6 n=30000 bench='PointSelect|UpdateWhere'
while [[ $# -gt 0 && $1 == -* ]]; do
	case $1 in
	-rounds) rounds=$2; shift 2 ;;
	-n) n=$2; shift 2 ;;
	-bench) bench=$2; shift 2 ;;
	*) echo "unknown flag $1" >&2; exit 2 ;;
	esac
done
[[ $# -ge 1 ]] || { sed -n '2,15p' "$0"; exit 2; }
root=$(git rev-parse --show-toplevel)
revs=("$(git rev-parse --short "$1")" "$(git rev-parse --short "${2:-HEAD}")")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for r in "${revs[@]}"; do
	mkdir -p "$work/src-$r"
	git -C "$root" archive "$r" | tar -x -C "$work/src-$r"
	(cd "$work/src-$r" && go test -c -o "$work/$r.test" ./sqlscan)
done
cpu() { # binary benchmark count -> seconds of CPU
	/usr/bin/time -f '%U %S' "$1" -test.run '^$' -test.bench "^$2\$" -test.benchtime "$3x" 2>&1 >/dev/null |
		tail -1 | awk '{print $1 + $2}'
}
names=$("$work/${revs[1]}.test" -test.list "^Benchmark($bench)\$")
cd "$root/sqlscan" # the fixtures are read from testdata
for b in $names; do
	for r in "${revs[@]}"; do
		allocs=$("$work/$r.test" -test.run '^$' -test.bench "^$b\$" -test.benchmem -test.benchtime 1000x | awk '/allocs\/op/ {print $(NF-1)}')
		echo "$b $r allocs/op $allocs"
	done
done
for ((i = 1; i <= rounds; i++)); do
	for b in $names; do
		for r in "${revs[@]}"; do
			one=$(cpu "$work/$r.test" "$b" 1)
			many=$(cpu "$work/$r.test" "$b" "$n")
			awk -v b="$b" -v r="$r" -v one="$one" -v many="$many" -v n="$n" \
				'BEGIN { printf "%s %s cpu_us/op %.1f\n", b, r, (many - one) * 1e6 / n }'
		done
	done
done
