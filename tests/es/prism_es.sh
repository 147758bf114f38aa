#!/bin/sh
# es/prism: the prism version of ES (examples/es_humanoid) end to end on an embedded node
# with 2 worker actors.
#   - Over a small fixed budget the mean return rises: the last 3 generations average at
#     least 1.10 times the first 3, for two seeds; with the learning rate at 1e-9 (no
#     learning) the same budget stays below that, so the rise is the training's doing.
#     (The budget is test_train's: 16 pairs, episodes of at most 200 steps, a 1 Mi-float
#     table, 20,000 timesteps, about 20 generations.  Across seeds 1-10 the ratio was
#     1.27-1.67; test_train measured 0.94-1.04 without learning.)
#   - The JSON reports a positive rate, 2 workers and the timesteps; --save writes a
#     policy file.
#   - With PRISM_ADDRESS set it runs on that node (started here with the prism CLI)
#     instead of an embedded one: the node's status counts the 2 actors it hosted.
#   - Bad options are refused with exit status 2 and a reason; a missing model with 1 and
#     the Debian package named.
# Usage: prism_es.sh ES_HUMANOID PRISM_CLI.  Every run is bounded by `timeout`.
es=$1
cli=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/prism-es-test.XXXXXX")
trap 'timeout 20 "$cli" stop --socket "$dir/node.sock" >/dev/null 2>&1; rm -rf "$dir"' EXIT
fail() {
	echo "FAIL: $*"
	exit 1
}
run() { # run ARGS...: output in $dir/out, status in $rc
	timeout 300 "$es" "$@" >"$dir/out" 2>&1
	rc=$?
	cat "$dir/out"
}
# The last WINDOW generations' mean return over the first WINDOW's, from the JSON.
gain() {
	sed -n 's/.*"reward_curve":\[\([^]]*\)\].*/\1/p' "$dir/out" | awk -F, '
		NF < 6 { print "short"; exit }
		{ f = ($1 + $2 + $3) / 3; l = ($NF + $(NF-1) + $(NF-2)) / 3;
		  if (f <= 0) { print "nonpositive"; exit }
		  printf "%.3f\n", l / f }'
}
budget="--json --workers 2 --timesteps 20000 --pairs-per-gen 16 --max-episode-steps 200
	--noise-floats 1048576"

for seed in 1 3; do
	# shellcheck disable=SC2086
	run $budget --seed "$seed" --save "$dir/policy$seed.bin"
	[ "$rc" = 0 ] || fail "seed $seed: exit status $rc"
	grep -Eq '"case":"prism_timesteps_per_s".*"timesteps_per_s":[1-9]' "$dir/out" ||
		fail "seed $seed: no positive timesteps_per_s"
	grep -Eq '"workers":2,"timesteps":[1-9][0-9]*,' "$dir/out" ||
		fail "seed $seed: not 2 workers or no timesteps"
	grep -Eq '"case":"prism_episodes_per_s".*"value":[1-9]' "$dir/out" ||
		fail "seed $seed: no episodes/s"
	[ -s "$dir/policy$seed.bin" ] || fail "seed $seed: no policy saved"
	g=$(gain)
	echo "seed $seed: last/first mean return $g"
	awk -v g="$g" 'BEGIN { exit !(g + 0 >= 1.10) }' ||
		fail "seed $seed: the reward did not rise (gain $g < 1.10)"
done

# shellcheck disable=SC2086
run $budget --seed 1 --lr 1e-9
[ "$rc" = 0 ] || fail "no learning: exit status $rc"
g=$(gain)
echo "no learning: last/first mean return $g"
awk -v g="$g" 'BEGIN { exit !(g + 0 < 1.10) }' ||
	fail "without learning the gain is $g: the threshold does not tell learning apart"

timeout 60 "$cli" start --socket "$dir/node.sock" >"$dir/out" 2>&1 ||
	fail "cannot start a node: $(cat "$dir/out")"
PRISM_ADDRESS="$dir/node.sock" run --workers 2 --timesteps 2000 --pairs-per-gen 8 \
	--max-episode-steps 100 --noise-floats 1048576
[ "$rc" = 0 ] || fail "attached to a node: exit status $rc"
grep -q "2 workers, [1-9][0-9]* timesteps" "$dir/out" || fail "attached to a node: no summary"
timeout 20 "$cli" status --socket "$dir/node.sock" >"$dir/status" 2>&1
grep -Eq "actors: .* 2 created" "$dir/status" ||
	fail "the node did not host the 2 actors: $(cat "$dir/status")"
timeout 20 "$cli" stop --socket "$dir/node.sock" >/dev/null 2>&1

run --pairs-per-gen 0
[ "$rc" = 2 ] || fail "bad --pairs-per-gen: exit status $rc, want 2"
grep -q "bad value for --pairs-per-gen: '0'" "$dir/out" || fail "no reason for a bad value"
run --workers
[ "$rc" = 2 ] || fail "--workers without a value: exit status $rc, want 2"
grep -q "bad value for --workers: '(missing)'" "$dir/out" || fail "no reason for a missing value"
run --workers 2x
[ "$rc" = 2 ] || fail "--workers 2x: exit status $rc, want 2"
run --frobnicate
[ "$rc" = 2 ] || fail "unknown option: exit status $rc, want 2"
grep -q "unknown option '--frobnicate'" "$dir/out" || fail "no reason for an unknown option"
run --noise-floats 100
[ "$rc" = 2 ] || fail "a table smaller than the policy: exit status $rc, want 2"
grep -q "less than the policy's" "$dir/out" || fail "no reason for a small table"
run --model "$dir/missing.xml"
[ "$rc" = 1 ] || fail "missing model: exit status $rc, want 1"
grep -q "libmujoco-samples" "$dir/out" || fail "missing model: no hint of the package"
echo "es_humanoid: all checks passed"
