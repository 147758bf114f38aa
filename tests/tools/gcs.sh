#!/bin/sh
# The GCS as separate processes (prism-gcs): three standby replicas and a spare under a
# master; the CLI client writes and reads; replicas are SIGKILLed (the middle, then the
# head) and the spare is added; every write reads back; bad input gets clear errors.
# Usage: gcs.sh PRISM_GCS_BIN
gcs=$1
work=$(mktemp -d)
pids=""
pass=0
fail=0
cleanup() {
	for p in $pids; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
ok() { pass=$((pass + 1)); }
bad() {
	fail=$((fail + 1))
	echo "FAIL: $*"
}

# start NAME ARGS...: a server in the background; its address once it listens
start() {
	name=$1
	shift
	"$gcs" "$@" >"$work/$name.out" 2>"$work/$name.err" &
	pids="$pids $!"
	eval "pid_$name=$!"
	i=0
	while ! grep -q "listening on" "$work/$name.out" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 100 ] && { echo "FAIL: $name did not start: $(cat "$work/$name.err")"; exit 1; }
		sleep 0.05
	done
	eval "addr_$name=$(sed -n 's/^listening on //p' "$work/$name.out")"
}

"$gcs" gen-token "$work/token" || { echo "FAIL: gen-token"; exit 1; }
"$gcs" gen-token "$work/token" 2>"$work/err" && bad "gen-token overwrote a token" || ok
grep -q "refusing to overwrite" "$work/err" && ok || bad "gen-token says why: $(cat "$work/err")"
"$gcs" gen-token "$work/other" >/dev/null
T="--token-file $work/token"

for r in a b c spare; do
	start $r replica --listen tcp://127.0.0.1:0 --standby --wal "$work/$r.wal" $T
done
start master master --listen tcp://127.0.0.1:0 --shards 1 --replicas 3 --spare "$addr_spare" \
	$T "$addr_a" "$addr_b" "$addr_c"
M="--master $addr_master $T"

"$gcs" put k1 v1 $M >/dev/null && ok || bad "put k1"
[ "$("$gcs" get k1 $M)" = "v1" ] && ok || bad "get k1"
"$gcs" get nothing $M 2>"$work/err"
[ $? -eq 3 ] && ok || bad "a missing key exits 3"
grep -q "no such key" "$work/err" && ok || bad "a missing key says so"
"$gcs" get k1 --master "$addr_master" --token-file "$work/other" 2>"$work/err"
[ $? -eq 1 ] && ok || bad "a wrong token fails"
"$gcs" put k9 $M 2>/dev/null
[ $? -eq 2 ] && ok || bad "put without a value is a usage error"
"$gcs" put k9 v --table node $M 2>"$work/err"
[ $? -eq 1 ] && ok || bad "a typed table refuses a value that is not its record"
"$gcs" master --listen tcp://127.0.0.1:0 --shards 1 --replicas 3 $T "$addr_a" 2>"$work/err"
[ $? -eq 2 ] && grep -q "need 3 addresses" "$work/err" && ok || bad "master counts addresses"

# The middle dies: the chain goes on, and the spare joins by state transfer.
kill -9 "$pid_b"
"$gcs" put k2 v2 $M >/dev/null && ok || bad "put k2 after the middle died"
i=0
while ! grep -q "adding spare" "$work/master.err" && [ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done
grep -q "adding spare $addr_spare: started" "$work/master.err" && ok || bad "the spare was added: $(cat "$work/master.err")"
# The head dies: the client follows the master to the new head.
kill -9 "$pid_a"
"$gcs" put k3 v3 $M >/dev/null && ok || bad "put k3 after the head died"
for k in 1 2 3; do
	[ "$("$gcs" get k$k $M)" = "v$k" ] && ok || bad "get k$k at the end"
done
"$gcs" del k1 $M >/dev/null && ok || bad "del k1"
"$gcs" get k1 $M 2>/dev/null
[ $? -eq 3 ] && ok || bad "k1 is gone after del"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
