#!/usr/bin/env bash
# The second lock as the analysis's oracle, on a longer corpus than CI's:
# statements from the test's own generator and from SQLsmith, each judged
# by pgguard and by PostgreSQL under every department's compiled grants.
# Prints soundness, precision and the refusals by reason (bench/README.md);
# exits non-zero when a pair is unsound or precision is below 95%.
#
#   bench/differential.sh [STATEMENTS]     default 2000 of each kind
#
# Needs PostgreSQL's server binaries and sqlsmith (apt-get install -y
# postgresql sqlsmith). SQLsmith's seeds are 1, 2, ... (100 statements
# each): the first 200 statements are CI's.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-2000}"
PGGUARD_DIFFERENTIAL_STATEMENTS="$n" PGGUARD_SQLSMITH_STATEMENTS="$n" \
	go test -count=1 -timeout 4h -run 'TestDifferential' -v ./grants/ 2>&1 |
	grep -E '^(--- |ok|FAIL|PASS)|unsound|precision'
