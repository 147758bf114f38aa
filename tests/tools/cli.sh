#!/bin/sh
# The prism CLI end to end: start, status, a program attached by address, stop, and the
# errors a user meets (a second start, a bad option, no node).  Runs in a private
# TMPDIR so it never touches a real node.  Usage: cli.sh PRISM_BIN ECHO_BIN
prism=$1
echo_bin=$2
TMPDIR=$(mktemp -d)
export TMPDIR
unset PRISM_ADDRESS
pass=0
fail=0
check() { # check NAME COMMAND...: the command must succeed
	name=$1
	shift
	if "$@" >/dev/null 2>&1; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $name"; fi
}
check_not() {
	name=$1
	shift
	if "$@" >/dev/null 2>&1; then fail=$((fail + 1)); echo "FAIL: $name"; else pass=$((pass + 1)); fi
}
cleanup() {
	"$prism" stop >/dev/null 2>&1
	rm -rf "$TMPDIR"
}
trap cleanup EXIT

check "help" "$prism" --help
check_not "status with no node" "$prism" status
check_not "stop with no node" "$prism" stop
check_not "start --wait 0" "$prism" start --wait 0
check_not "start --wait with no number" "$prism" start --wait soon
check_not "a bad option" "$prism" start --num-workers abc
"$prism" start --num-workers abc 2>&1 | grep -q "num_workers" || { fail=$((fail + 1)); echo "FAIL: bad option names the key"; }
check_not "a bad resource spec" "$prism" start --resources "camera=-1"
"$prism" start --resources "camera=-1" 2>&1 | grep -q "camera=-1" || { fail=$((fail + 1)); echo "FAIL: a bad resource spec is named"; }
check "start" "$prism" start --num-workers 2 --num-gpus 1 --resources camera=2,arm=0.5
check_not "second start" "$prism" start
# Workers run the driver's program, so none start before a driver attaches.
out=$("$prism" status)
echo "$out" | grep -q "drivers: 0   workers: 0" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: a fresh node: $out"; }
echo "$out" | grep -q "GPU 0/1 camera 0/2 arm 0/0.5" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: status lists the resources: $out"; }
echo "$out" | grep -q "deadline calls: 0, started late 0, dropped stale 0" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: status counts deadline calls: $out"; }
out=$(PRISM_ADDRESS=auto timeout 30 "$echo_bin" "cli test")
echo "$out" | grep -q 'ohce(echo("cli test")) = "tset ilc"' && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: echo via prism start: $out"; }
out=$("$prism" status)
echo "$out" | grep -q "tasks run: 3" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: status counts the 3 tasks: $out"; }
# The node learns that the driver left when it reads the hang-up of the driver's socket,
# which may come after this status request: the leases return within moments, not at once.
i=0
while ! echo "$out" | grep -q "workers: 2 (0 busy, 2 idle," && [ $i -lt 50 ]; do
	sleep 0.1
	out=$("$prism" status)
	i=$((i + 1))
done
echo "$out" | grep -q "workers: 2 (0 busy, 2 idle," && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: the driver's workers stay for the next one: $out"; }
check "stop" "$prism" stop
check_not "status after stop" "$prism" status
check_not "attach to a stopped node" env PRISM_ADDRESS=auto timeout 30 "$echo_bin" x
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
