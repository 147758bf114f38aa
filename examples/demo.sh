#!/bin/sh
# The quick-start demo.  Until the task runtime lands (issue 3), it shows the layer every
# prism call will ride on: a message handed to another process through a shared-memory
# ring, measured against the bare DPDK ring and against the kernel's own sleep/wake.
set -e
build=${1:-build}
cat <<'TXT'
prism demo: shared-memory rings between two processes
------------------------------------------------------
Every prism call on one node travels as a message through single-producer rings in
shared memory (DPDK rte_ring in a memfd segment that the second process maps at an
address of its own).  This runs a 16-byte ping-pong four ways:

  raw_roundtrip      the bare rte_ring, both sides spinning: the floor
  spin_roundtrip     prism's ring API, both sides spinning
  wake_roundtrip     prism's ring API, each side asleep on a futex, woken per message
  eventfd_roundtrip  two eventfds: what the kernel itself charges for sleep and wake

TXT
"$build/bin/prism-bench" --quick ring
cat <<'TXT'

What it shows: prism's ring adds (next to) nothing over the bare DPDK ring (target:
p50 within 1.5x), so a spinning round trip costs a fraction of a microsecond; when the
consumer sleeps instead, the futex doorbell costs about what an eventfd does (target:
within 1.2x).  A sleep/wake is 100x a spin on a VM, which is why prism spins for a
configurable budget before it sleeps.  Full runs: make bench.  Figures: bench/README.md.
TXT
