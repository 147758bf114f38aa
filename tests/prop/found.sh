#!/bin/sh
# Every seed the random-DAG property test (or `make stress`) ever failed on, with the
# options it failed with: each line of seeds.txt is "SEED [OPTIONS...]" ('#' comments).
# Usage: found.sh PROP_DAG SEEDS_FILE
dag=$1
file=$2
pass=0
fail=0
while read -r seed opts; do
	case "$seed" in '' | '#'*) continue ;; esac
	opts=${opts%%#*}
	# shellcheck disable=SC2086 # the options are words on purpose
	if "$dag" --seeds "$seed" $opts; then
		pass=$((pass + 1))
	else
		echo "found.sh: seed $seed ($opts) failed again"
		fail=$((fail + 1))
	fi
done <"$file"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
