#!/bin/sh
# es/mpi_peer: the OpenMPI peer end to end on 2 ranks with a tiny budget: it exits 0,
# reports a positive timesteps/s and a reward curve in its JSON, saves a policy; and it
# refuses bad options (exit 2) and a missing model (exit 1, naming the package).
# Usage: mpi_peer.sh MPIEXEC ES_MPI.  Every mpirun is bounded by `timeout`.
mpiexec=$1
es_mpi=$2
# OpenMPI refuses root and more ranks than cores unless told.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() {
	echo "FAIL: $*"
	exit 1
}
run() { # run NP ARGS...: es_mpi on NP ranks, output in $dir/out, status in $rc
	np=$1
	shift
	timeout 300 "$mpiexec" -np "$np" "$es_mpi" "$@" >"$dir/out" 2>&1
	rc=$?
	cat "$dir/out"
}

run 2 --json --timesteps 3000 --pairs-per-gen 8 --max-episode-steps 100 \
	--noise-floats 1000000 --save "$dir/policy.bin"
[ "$rc" = 0 ] || fail "exit status $rc"
grep -Eq '"case":"mpi_timesteps_per_s".*"timesteps_per_s":[1-9]' "$dir/out" ||
	fail "no positive timesteps_per_s"
grep -Eq '"ranks":2,"timesteps":[1-9][0-9]*,' "$dir/out" || fail "not 2 ranks or no timesteps"
grep -Eq '"reward_curve":\[-?[0-9]' "$dir/out" || fail "empty reward curve"
grep -Eq '"case":"mpi_episodes_per_s".*"value":[1-9]' "$dir/out" || fail "no episodes/s"
[ -s "$dir/policy.bin" ] || fail "no policy saved"

run 1 --pairs-per-gen 0
[ "$rc" = 2 ] || fail "bad --pairs-per-gen: exit status $rc, want 2"
grep -q "bad value for --pairs-per-gen" "$dir/out" || fail "no reason for a bad value"
run 1 --frobnicate
[ "$rc" = 2 ] || fail "unknown option: exit status $rc, want 2"
run 1 --model "$dir/missing.xml"
[ "$rc" = 1 ] || fail "missing model: exit status $rc, want 1"
grep -q "libmujoco-samples" "$dir/out" || fail "missing model: no hint of the package"
echo "es_mpi: all checks passed"
