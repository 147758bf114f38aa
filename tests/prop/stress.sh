#!/bin/sh
# make stress: new random seeds of the DAG property test for SECONDS seconds, in rounds
# that turn between plain graphs, graphs whose workers are SIGKILLed under them, and
# graphs whose nested trees hold more waiting tasks than the node may start workers.
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
	case $((n % 3)) in
	1) mode="--kill-workers" ;;
	2) mode="--nested 300" ;;
	*) mode="" ;;
	esac
	# shellcheck disable=SC2086 # the mode is words on purpose
	"$dag" --seconds "$round" $mode >>"$log" 2>&1
	n=$((n + 1))
done
seeds=$(grep -c '^seed ' "$log")
# "  seed N[ (kill-workers)][ (nested K)]: FAIL" -> "N[ --kill-workers][ --nested K]"
failed=$(grep -E '^  seed [0-9]+( \([a-z0-9 -]+\))*: FAIL' "$log" |
	sed -E 's/^  seed ([0-9]+)(( \([a-z0-9 -]+\))*):.*/\1\2/; s/ \(kill-workers\)/ --kill-workers/; s/ \(nested ([0-9]+)\)/ --nested \1/' |
	sort -u)
nfail=$(printf '%s' "$failed" | grep -c .)
echo "stress: $seeds seeds in $total s ($n rounds: plain, workers killed, nested trees beyond the worker cap, in turn); log: $log"
if [ "$nfail" -gt 0 ]; then
	echo "stress: $nfail seeds failed; run one again with:"
	printf '%s\n' "$failed" | sed -E "s|^([0-9]+)(.*)$|  $dag --seeds \1\2|"
	grep -E '^  seed [0-9]+.*: FAIL' "$log" | head -20
	echo "$((seeds - nfail)) passed, $nfail failed"
	exit 1
fi
echo "$seeds passed, 0 failed"
