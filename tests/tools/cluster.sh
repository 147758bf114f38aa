#!/bin/sh
# A three-node cluster on loopback, through the CLI: `prism start --head`, two nodes
# joining with the head's token, `prism status` listing every node with its resources,
# a wrong token refused, a node SIGKILLed declared dead, a node stopped cleanly marked
# dead at once.  Each node has its own TMPDIR (its own socket directory), as on its own
# host.  A peer pulls an object a node holds (peer_pull).
# Usage: cluster.sh PRISM_BIN PEER_PULL_BIN
prism=$1
peer_pull=$2
work=$(mktemp -d)
port=$((20000 + $$ % 20000))
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
# wait_for NODE PATTERN: until `prism status` on NODE shows PATTERN (10 s at most)
wait_for() {
	i=0
	while ! on "$1" status 2>/dev/null | grep -q "$2"; do
		i=$((i + 1))
		[ $i -gt 100 ] && return 1
		sleep 0.1
	done
}
mkdir -p "$work/head" "$work/a" "$work/b" "$work/c"

out=$(on head start --head --port $port --num-workers 1 --node-timeout 1s)
echo "$out" | grep -q "prism start --address 127.0.0.1:$port --token-file" && ok || bad "head prints how to join: $out"
token=$(ls "$work"/head/prism-*/cluster.token)
[ "$(stat -c %a "$token")" = 600 ] && ok || bad "the token file is private"
on a start --address 127.0.0.1:$port --token-file "$token" --num-workers 1 --resources camera=2 >/dev/null && ok || bad "node a joins"
on b start --address 127.0.0.1:$port --token-file "$token" --num-workers 1 >/dev/null && ok || bad "node b joins"
wait_for head "nodes: 3 (3 alive, 0 dead)" && ok || bad "the head sees three nodes: $(on head status | grep -A4 '^cluster')"
wait_for a "nodes: 3 (3 alive" && ok || bad "a member sees three nodes"
on head status | grep -q "camera 2/2" && ok || bad "status lists a node's custom resources"
on head status | grep -E "^  [0-9a-f]{8} tcp://127.0.0.1:[0-9]+ +alive load [0-9]+ +store [0-9.]+/256.0 MiB" >/dev/null && ok || bad "status shows load and object store per node"
# A peer pulls an object node a holds, from a's peer address (as another node would).
if [ -n "$peer_pull" ]; then
	sock_a=$(ls "$work"/a/prism-*/node.sock)
	peer_a=$(on a status | sed -n 's/^cluster: member, joined, node [0-9a-f]* at \(tcp:[^,]*\),.*/\1/p')
	out=$("$peer_pull" "$sock_a" "$peer_a" "$token" 2>&1)
	echo "$out" | grep -q "peer pull: ok" && ok || bad "a peer pulls an object from a node: $out"
fi

"$prism" start --head --address 127.0.0.1:1 >/dev/null 2>&1 && bad "--head with --address accepted" || ok
TMPDIR=$work/c "$prism" start --address 127.0.0.1:$port --token-file /nonexistent --num-workers 1 2>"$work/err" >/dev/null && bad "a missing token file accepted" || ok
"$prism" >/dev/null 2>&1 # (keeps the usage path exercised)
mkdir -p "$work/c2" && printf '%064d' 7 >"$work/c2/wrong.token" && chmod 600 "$work/c2/wrong.token"
on c start --address 127.0.0.1:$port --token-file "$work/c2/wrong.token" --num-workers 1 >/dev/null 2>"$work/err" && bad "a wrong token joined" || ok
grep -q "authentication failed" "$work/err" && ok || bad "a wrong token says why: $(cat "$work/err")"

# A node killed outright is declared dead after the timeout (1 s here).
pid_b=$(sed -n 's/^prismd: pid \([0-9]*\).*/\1/p' "$work"/b/prism-*/prismd.log | tail -1)
kill -9 "$pid_b"
wait_for head "nodes: 3 (2 alive, 1 dead)" && ok || bad "a killed node is declared dead: $(on head status | grep -A4 '^cluster')"
grep -q "declared dead" "$work"/head/prism-*/prismd.log && ok || bad "the head logs the death"
# A node stopped cleanly says so at once.
on a stop >/dev/null && ok || bad "prism stop on a member"
wait_for head "nodes: 3 (1 alive, 2 dead)" && ok || bad "a stopped node is marked dead at once"
on head stop >/dev/null && ok || bad "prism stop on the head"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
