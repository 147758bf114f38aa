#!/bin/sh
# make stress: new random seeds of the DAG property test for SECONDS seconds, in rounds
# that alternate between plain graphs and graphs whose workers are SIGKILLed under them.
# Prints every failing seed with the command that runs it again; a seed that failed
# belongs in tests/prop/seeds.txt once its bug is fixed.
# Usage: stress.sh PROP_DAG SECONDS [LOG]
dag=$1
total=${2:-600}
log=${3:-stress.log}
round=120
start=$(date +%s)
: >"$log"
n=0
while :; do
	now=$(date +%s)
	left=$((total - (now - start)))
	[ "$left" -le 0 ] && break
	[ "$left" -lt "$round" ] && round=$left
	if [ $((n % 2)) -eq 1 ]; then kill="--kill-workers"; else kill=""; fi
	# shellcheck disable=SC2086
	"$dag" --seconds "$round" $kill >>"$log" 2>&1
	n=$((n + 1))
done
seeds=$(grep -c '^seed ' "$log")
failed=$(grep -E '^  seed [0-9]+( \(kill-workers\))?: FAIL' "$log" |
	sed -E 's/^  seed ([0-9]+)( \(kill-workers\))?:.*/\1\2/' | sort -u)
nfail=$(printf '%s' "$failed" | grep -c .)
echo "stress: $seeds seeds in $total s ($n rounds, every second one killing workers); log: $log"
if [ "$nfail" -gt 0 ]; then
	echo "stress: $nfail seeds failed; run one again with:"
	printf '%s\n' "$failed" | sed -E "s|^([0-9]+) \(kill-workers\)$|  $dag --seeds \1 --kill-workers|; t; s|^([0-9]+)$|  $dag --seeds \1|"
	grep -E '^  seed [0-9]+.*: FAIL' "$log" | head -20
	echo "$((seeds - nfail)) passed, $nfail failed"
	exit 1
fi
echo "$seeds passed, 0 failed"
