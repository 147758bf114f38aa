#!/bin/sh
# The quick-start demo (make demo): prism's examples on an embedded local node, then how
# long a task takes.  Each step says what it shows.
set -e
build=${1:-build}
bin=$build/bin
say() { printf '\n== %s\n' "$*"; }

say "1. Remote functions and futures (examples/echo)"
cat <<'TXT'
echo and ohce are C functions registered with PRISM_REMOTE.  prism_init() starts a
private node; each prism_submit() returns a future at once and the call runs in a worker
process.  The third call takes the first call's future as its argument: it runs once
that value exists, without the driver fetching it.
TXT
"$bin/echo" "hello prism"

say "2. Futures do not wait for each other (examples/slow_fast)"
cat <<'TXT'
Two slow calls (0.5 s each, asking for half a CPU as I/O-bound work would) and 100 fast
ones are submitted together.  The fast results are all there while the slow calls run.
TXT
"$bin/slow_fast"

say "3. Independent tasks run in parallel (examples/parallel_map)"
cat <<'TXT'
Counting primes in 8 ranges, first in the driver one range after the other, then as 8
tasks on the node's workers (one per CPU).  Same answer; faster by up to the CPU count.
TXT
"$bin/parallel_map" 8

say "4. What a task costs (prism-bench tasks --quick)"
cat <<'TXT'
An empty task submitted and its result fetched, one at a time (sync) and with many in
flight (async).  Ray 2.48 takes ~1,000 us a sync task and does ~8,000 async tasks/s
(on 64 vCPUs); prism's target here is 5 us and 1,000,000/s.
TXT
"$bin/prism-bench" --quick tasks
cat <<'TXT'

The round trip is a few hundred nanoseconds because the driver pushes each task straight
into its worker's shared-memory ring and both sides spin briefly before they sleep; no
daemon, socket or system call sits on the path.  Full runs: make bench.  Figures and
method: bench/README.md.
TXT
