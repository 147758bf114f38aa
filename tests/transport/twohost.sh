#!/bin/bash
# Two hosts on one machine: two network namespaces joined by a veth pair, prism-perf's
# server in one and its client in the other, over the tcp and softverbs backends: lat,
# bw and read must each complete and print their result, and a client holding another
# token must be refused with an authentication error (while the server keeps waiting for
# a good one).  Traffic flows only between the two namespaces.
#
# Usage: twohost.sh PRISM_PERF_BIN.  Needs root and iproute2; exits 77 (skipped) where
# namespaces cannot be made.  Everything runs under `timeout`, and the namespaces, the
# veth pair, the servers and the temporary files go in a trap on every exit path.
set -u
perf=$1
tag=$$
ns_a=prism-a-$tag
ns_b=prism-b-$tag
veth_a=pva$tag # interface names are at most 15 characters
veth_b=pvb$tag
net=10.251.$((tag % 250 + 1))
addr_a=$net.1
addr_b=$net.2
port=18515
T=10    # seconds allowed to setup commands and to a server to start
RUN=60  # seconds allowed to one prism-perf run
work=
server_pid=
pass=0
fail=0

skip() {
	echo "SKIP: $*"
	exit 77
}

cleanup() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null
		wait "$server_pid" 2>/dev/null
	fi
	# Deleting a namespace deletes the veth end inside it, and with it its peer.
	timeout $T ip netns del "$ns_a" 2>/dev/null
	timeout $T ip netns del "$ns_b" 2>/dev/null
	timeout $T ip link del "$veth_a" 2>/dev/null
	[ -n "$work" ] && rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

[ "$(id -u)" = 0 ] || skip "needs root to create network namespaces"
command -v ip >/dev/null || skip "needs iproute2's ip"
[ -x "$perf" ] || { echo "FAIL: no prism-perf at '$perf'"; exit 1; }
timeout $T ip netns add "$ns_a" 2>/dev/null ||
	skip "ip netns add is not permitted here (no CAP_SYS_ADMIN, or no netns support)"
timeout $T ip netns add "$ns_b" || { echo "FAIL: ip netns add $ns_b"; exit 1; }

setup() {
	timeout $T ip link add "$veth_a" type veth peer name "$veth_b" &&
	timeout $T ip link set "$veth_a" netns "$ns_a" &&
	timeout $T ip link set "$veth_b" netns "$ns_b" &&
	timeout $T ip -n "$ns_a" addr add "$addr_a/30" dev "$veth_a" &&
	timeout $T ip -n "$ns_b" addr add "$addr_b/30" dev "$veth_b" &&
	timeout $T ip -n "$ns_a" link set lo up &&
	timeout $T ip -n "$ns_b" link set lo up &&
	timeout $T ip -n "$ns_a" link set "$veth_a" up &&
	timeout $T ip -n "$ns_b" link set "$veth_b" up
}
setup || { echo "FAIL: setting up the veth pair between $ns_a and $ns_b"; exit 1; }

work=$(mktemp -d) || exit 1
token=$work/token
other=$work/other-token
"$perf" gen-token "$token" 2>/dev/null && "$perf" gen-token "$other" 2>/dev/null ||
	{ echo "FAIL: prism-perf gen-token"; exit 1; }
# gen-token refuses to overwrite a token.
if "$perf" gen-token "$token" 2>/dev/null; then
	echo "FAIL: gen-token overwrote an existing token"
	fail=$((fail + 1))
fi

# start_server BACKEND TEST: in namespace A; returns once it listens.
start_server() {
	log=$work/server.log
	: >"$log"
	timeout $RUN ip netns exec "$ns_a" "$perf" server "$2" --transport "$1" \
		--listen "tcp://$addr_a:$port" --token-file "$token" >"$log" 2>&1 &
	server_pid=$!
	for _ in $(seq 1 $((T * 10))); do
		grep -q "listening on" "$log" && return 0
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "FAIL: $1 $2 server did not start:"
	cat "$log"
	return 1
}

# finish_server NAME: the server must exit 0 after its one run.
finish_server() {
	wait "$server_pid"
	rc=$?
	server_pid=
	if [ $rc != 0 ]; then
		echo "FAIL: $1: the server exited $rc:"
		cat "$work/server.log"
		return 1
	fi
	return 0
}

# client TOKEN TEST ARGS...: in namespace B; output in $work/client.log.
client() {
	tok=$1
	shift
	timeout $RUN ip netns exec "$ns_b" "$perf" client "$@" --address "tcp://$addr_a:$port" \
		--token-file "$tok" >"$work/client.log" 2>&1
}

# run BACKEND TEST ARGS...: one server run and one client run; the client must exit 0
# and print its result line.
run() {
	backend=$1
	test=$2
	shift 2
	name="$backend $test $*"
	start_server "$backend" "$test" || { fail=$((fail + 1)); return; }
	client "$token" "$test" --transport "$backend" --json "$@"
	rc=$?
	if [ $rc != 0 ] || ! grep -q "\"case\":\"${backend}_${test}_" "$work/client.log"; then
		echo "FAIL: $name: client exited $rc:"
		cat "$work/client.log"
		fail=$((fail + 1))
		sleep 0.2 # a server that crashed has ended by now; one still waiting is killed
		kill "$server_pid" 2>/dev/null
		finish_server "$name"
		return
	fi
	finish_server "$name" || { fail=$((fail + 1)); return; }
	if [ "$test" = lat ] && ! grep -q "\"case\":\"${backend}_rtt_" "$work/client.log"; then
		echo "FAIL: $name: no round-trip line:"
		cat "$work/client.log"
		fail=$((fail + 1))
		return
	fi
	pass=$((pass + 1))
	echo "ok: $name: $(grep -o '"case":"[^"]*","unit":"[^"]*","[a-z0-9]*":[0-9.e+-]*' \
		"$work/client.log" | head -1)"
}

for backend in tcp softverbs; do
	run $backend lat --size 64 --iters 2000
	run $backend bw --size 1M --seconds 1
	run $backend read --size 1M --seconds 1
done

# A client with another token is refused, and the server goes on to serve a good one.
name="wrong token"
if start_server tcp lat; then
	client "$other" lat --iters 100
	rc=$?
	if [ $rc = 0 ] || ! grep -q "authentication failed" "$work/client.log"; then
		echo "FAIL: $name: client exited $rc, expected an authentication error:"
		cat "$work/client.log"
		fail=$((fail + 1))
	else
		pass=$((pass + 1))
		echo "ok: $name: $(grep -m1 'authentication failed' "$work/client.log")"
	fi
	client "$token" lat --iters 100 || {
		echo "FAIL: $name: the server did not serve a good client after a bad one:"
		cat "$work/client.log"
		fail=$((fail + 1))
	}
	finish_server "$name" || fail=$((fail + 1))
else
	fail=$((fail + 1))
fi

echo "twohost: $pass passed, $fail failed ($ns_a $addr_a <-> $ns_b $addr_b)"
[ $fail = 0 ]
