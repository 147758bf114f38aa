#!/bin/sh
# Work across a three-node cluster on loopback (tests/tools/cluster_tasks.c): a driver on
# the head (one CPU, no camera) runs tasks that need node a's camera (remote leases),
# passes objects both ways, has infeasible tasks refused at once, spills tasks from its
# saturated node, and nested tasks spread; a 1 GiB object goes each way; then a node joins and another leaves while
# tasks run.  Usage: cluster_tasks.sh PRISM_BIN CLUSTER_TASKS_BIN
prism=$1
driver=$2
work=$(mktemp -d)
port=$((20000 + ($$ + 7919) % 20000))
pass=0
fail=0
unset PRISM_ADDRESS
ok() { pass=$((pass + 1)); }
bad() {
	fail=$((fail + 1))
	echo "FAIL: $*"
}
on() { # on NODE COMMAND...: run the CLI as node NODE
	node=$1
	shift
	TMPDIR=$work/$node "$prism" "$@"
}
cleanup() {
	for n in head a b c; do on $n stop >/dev/null 2>&1; done
	for n in head a b c; do
		pid=$(sed -n 's/^prismd: pid \([0-9]*\).*/\1/p' "$work/$n"/prism-*/prismd.log 2>/dev/null | tail -1)
		[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	done
	[ -n "$KEEP" ] || rm -rf "$work"
}
trap cleanup EXIT
wait_for() { # wait_for NODE PATTERN: until `prism status` on NODE shows it (10 s at most)
	i=0
	while ! on "$1" status 2>/dev/null | grep -q "$2"; do
		i=$((i + 1))
		[ $i -gt 100 ] && return 1
		sleep 0.1
	done
}
run() { # run MODE ARGS...: the driver on the head's node, bounded
	PRISM_ADDRESS=$(ls "$work"/head/prism-*/node.sock) timeout 180 "$driver" "$@" 2>&1
}
check() { # check MODE ARGS...: the driver's line must say ok
	out=$(run "$@")
	echo "$out"
	echo "$out" | grep -q "^$1: ok" && ok || bad "$1: $out"
}
mkdir -p "$work/head" "$work/a" "$work/b" "$work/c"
# The driver's node and the camera node hold a 1 GiB object and a copy (1.5 GiB stores).
on head start --head --port $port --num-workers 1 --num-cpus 1 --node-timeout 1s --object-store-memory 1536Mi >/dev/null || bad "head starts"
token=$(ls "$work"/head/prism-*/cluster.token)
on a start --address 127.0.0.1:$port --token-file "$token" --num-workers 1 --num-cpus 2 --resources camera=2 --object-store-memory 1536Mi >/dev/null || bad "node a joins"
on b start --address 127.0.0.1:$port --token-file "$token" --num-workers 1 --num-cpus 2 >/dev/null || bad "node b joins"
wait_for head "nodes: 3 (3 alive, 0 dead)" && ok || bad "three nodes"
# The head's table must have learned the camera (its view refreshes every 0.5 s).
sleep 1

check remote
check objects "${OBJECT_MAX:-67108864}"
check big "${BIG:-1073741824}"
# Node a pulled the arguments: each copy is published in the GCS's object table.
on a status | grep -q "^objects: [1-9][0-9]* locations published" && ok || bad "node a publishes its copies: $(on a status | grep '^objects')"
check infeasible
check spill
check locality
check nested
check actors
# The driver left: the actor it made on node a ended with it (fate sharing).
sleep 0.5
on a status | grep -q "^actors: 0 alive" && ok || bad "node a's actors end with their owner: $(on a status | grep '^actors')"
on a status | grep -q "remote leases: .* tasks [0-9]* sent, [1-9][0-9]* run here for others" && ok || bad "node a ran tasks for others: $(on a status | grep '^remote')"

# A node joins and another leaves while work runs: every task completes.
run loop 6 >"$work/loop.out" &
loop=$!
sleep 1
on c start --address 127.0.0.1:$port --token-file "$token" --num-workers 1 --num-cpus 2 --resources spare=1 >/dev/null && ok || bad "node c joins under load"
sleep 2
on b stop >/dev/null && ok || bad "node b leaves under load"
wait $loop
cat "$work/loop.out"
grep -q "^loop: ok" "$work/loop.out" && ok || bad "tasks while nodes come and go: $(cat "$work/loop.out")"
# An actor's node stops: its callers are told the actor died.
sleep 1
check actor_loss "env -u PRISM_ADDRESS TMPDIR=$work/c $prism stop"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
