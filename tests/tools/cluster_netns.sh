#!/bin/bash
# Three hosts on one machine: three network namespaces, each with one end of a veth
# pair whose other end sits on a bridge in a fourth namespace (made and removed by this
# test; traffic stays between them).  A head and two nodes join over it; every node sees
# the others with their namespace addresses; a peer in one namespace pulls an object a
# node in another holds; a node SIGKILLed is declared dead.  A new node then joins from
# the dead one's namespace, and the multi-node driver (tests/tools/cluster_tasks.c) runs
# in the head's namespace, as on loopback (cluster_tasks.sh): tasks that need node a's
# camera, objects both ways, infeasible work refused, spillover from the head's one CPU,
# nested tasks spreading, and actors across nodes.
#
# Usage: cluster_netns.sh PRISM_BIN PEER_PULL_BIN CLUSTER_TASKS_BIN.  Needs root and
# iproute2; exits 77 (skipped) where namespaces cannot be made.  Everything is undone in a
# trap.
set -u
prism=$1
peer_pull=$2
driver=$3
tag=$$
net=10.252.$((tag % 250 + 1))
port=$((20000 + tag % 20000))
T=10
ns_br=prism-br-$tag
work=
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() {
	fail=$((fail + 1))
	echo "FAIL: $*"
}
skip() {
	echo "SKIP: $*"
	exit 77
}
nodes="h a b"
ip_of() { case $1 in h) echo "$net.1" ;; a) echo "$net.2" ;; b) echo "$net.3" ;; esac; }
on() { # on NODE COMMAND...: the CLI as node NODE, inside its namespace
	n=$1
	shift
	TMPDIR=$work/$n timeout 30 ip netns exec "prism-$n-$tag" "$prism" "$@"
}
pid_of() { sed -n 's/^prismd: pid \([0-9]*\).*/\1/p' "$work/$1"/prism-*/prismd.log 2>/dev/null | tail -1; }
cleanup() {
	if [ -n "$work" ]; then
		for n in $nodes b2; do
			p=$(pid_of "$n")
			[ -n "$p" ] && kill -9 "$p" 2>/dev/null
		done
	fi
	for n in $nodes; do timeout $T ip netns del "prism-$n-$tag" 2>/dev/null; done
	timeout $T ip netns del "$ns_br" 2>/dev/null
	[ -n "$work" ] && rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

[ "$(id -u)" = 0 ] || skip "needs root to create network namespaces"
command -v ip >/dev/null || skip "needs iproute2's ip"
timeout $T ip netns add "$ns_br" 2>/dev/null ||
	skip "ip netns add is not permitted here (no CAP_SYS_ADMIN, or no netns support)"
setup() {
	timeout $T ip -n "$ns_br" link add br0 type bridge &&
	timeout $T ip -n "$ns_br" link set br0 up || return 1
	for n in $nodes; do
		ns=prism-$n-$tag
		timeout $T ip netns add "$ns" &&
		timeout $T ip link add "pn$n$tag" type veth peer name "pb$n$tag" &&
		timeout $T ip link set "pn$n$tag" netns "$ns" &&
		timeout $T ip link set "pb$n$tag" netns "$ns_br" &&
		timeout $T ip -n "$ns_br" link set "pb$n$tag" master br0 &&
		timeout $T ip -n "$ns_br" link set "pb$n$tag" up &&
		timeout $T ip -n "$ns" addr add "$(ip_of $n)/24" dev "pn$n$tag" &&
		timeout $T ip -n "$ns" link set lo up &&
		timeout $T ip -n "$ns" link set "pn$n$tag" up || return 1
	done
}
setup || { echo "FAIL: setting up the namespaces and the bridge"; exit 1; }
work=$(mktemp -d) || exit 1
for n in $nodes; do mkdir -p "$work/$n"; done

wait_for() { # wait_for NODE PATTERN (10 s)
	i=0
	while ! TMPDIR=$work/$1 "$prism" status 2>/dev/null | grep -q "$2"; do
		i=$((i + 1))
		[ $i -gt 100 ] && return 1
		sleep 0.1
	done
}

# The head offers one CPU and node a two cameras, as cluster_tasks.sh's modes need.
out=$(on h start --head --port "$port" --node-ip "$net.1" --num-workers 1 --num-cpus 1 --node-timeout 1s)
echo "$out" | grep -q "prism start --address $net.1:$port" && ok || bad "the head names its namespace address: $out"
token=$(ls "$work"/h/prism-*/cluster.token)
for n in a b; do
	res=
	[ $n = a ] && res="--resources camera=2"
	on $n start --address "$net.1:$port" --token-file "$token" --node-ip "$(ip_of $n)" \
		--num-workers 1 --num-cpus 2 $res >/dev/null && ok || bad "node $n joins from its namespace"
done
wait_for h "nodes: 3 (3 alive, 0 dead)" && ok || bad "the head sees three nodes: $(TMPDIR=$work/h "$prism" status | grep -A4 '^cluster')"
for n in h a b; do
	TMPDIR=$work/h "$prism" status | grep -q "tcp://$(ip_of $n):[0-9]* *alive" && ok || bad "node $n listed at its namespace address"
done
wait_for b "nodes: 3 (3 alive" && ok || bad "node b sees three nodes"

# From b's namespace, a peer pulls an object node a holds: the bytes cross the bridge.
sock_a=$(ls "$work"/a/prism-*/node.sock)
peer_a=$(TMPDIR=$work/a "$prism" status | sed -n 's/^cluster: member, joined, node [0-9a-f]* at \(tcp:[^,]*\),.*/\1/p')
case $peer_a in tcp://$net.2:*) ok ;; *) bad "node a's peer address is in its namespace: $peer_a" ;; esac
out=$(timeout 60 ip netns exec "prism-b-$tag" "$peer_pull" "$sock_a" "$peer_a" "$token" 2>&1)
echo "$out" | grep -q "peer pull: ok" && ok || bad "a pull across namespaces: $out"

kill -9 "$(pid_of b)"
wait_for h "nodes: 3 (2 alive, 1 dead)" && ok || bad "a killed node is declared dead"

# A new node joins from b's namespace (its own directory, b2).
mkdir -p "$work/b2"
TMPDIR=$work/b2 timeout 30 ip netns exec "prism-b-$tag" "$prism" start --address "$net.1:$port" \
	--token-file "$token" --node-ip "$net.3" --num-workers 1 --num-cpus 2 >/dev/null && ok || bad "a new node joins from b's namespace"
wait_for h "nodes: 4 (3 alive, 1 dead)" && ok || bad "the head sees the new node: $(TMPDIR=$work/h "$prism" status | grep '^nodes')"
# The head's table must have learned the camera and the new node's CPUs (its view
# refreshes every 0.5 s).
sleep 1

# The driver in the head's namespace, attached to the head: its tasks reach the other
# nodes only across the bridge.
sock_h=$(ls "$work"/h/prism-*/node.sock)
check() { # check MODE ARGS...: the driver's line must say ok
	out=$(PRISM_ADDRESS=$sock_h timeout 180 ip netns exec "prism-h-$tag" "$driver" "$@" 2>&1)
	echo "$out"
	echo "$out" | grep -q "^$1: ok" && ok || bad "$1: $out"
}
check remote
check objects 16777216
check infeasible
check spill
check nested
check actors
st=$(TMPDIR=$work/a "$prism" status)
echo "$st" | grep -q "remote leases: .* tasks [0-9]* sent, [1-9][0-9]* run here for others" && ok || bad "node a ran tasks for others: $(echo "$st" | grep '^remote')"
echo "$st" | grep -q "^objects: [1-9][0-9]* locations published" && ok || bad "node a publishes its copies: $(echo "$st" | grep '^objects')"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
