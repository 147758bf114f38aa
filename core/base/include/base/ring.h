/* base/ring.h — single-producer single-consumer rings in shared memory.
 *
 * A ring moves fixed-size elements (a multiple of 4 bytes, at most 1 KiB) from one
 * producer to one consumer, which may live in different processes that map the ring's
 * memory at different addresses.  It is DPDK's rte_ring (SP/SC mode, initialised with
 * rte_ring_init() in memory the caller provides, no EAL), behind a small header that
 * adds a version, the element size, and a doorbell for sleeping.  Single-producer rings
 * are the only kind used: they are safe for SCHED_FIFO threads, which multi-producer rings
 * (where a preempted producer blocks the others) are not.
 *
 * Sleeping.  A consumer that finds the ring empty spins for a budget of nanoseconds
 * (prism_ring_dequeue_wait), then announces that it sleeps and waits on the doorbell's
 * futex word.  A producer checks the announcement after every enqueue, one load after a
 * fence, and makes the futex_wake system call only when the consumer really sleeps.  On a
 * VM a wake costs tens of microseconds and a spinning round trip under one, so the spin
 * budget is the knob: 0 sleeps at once, UINT64_MAX never sleeps.
 *
 * Memory layout, at a 64-byte aligned address (all fields little-endian host order):
 *   [0, 64)    header: magic, version, element size, capacity
 *   [64, 128)  doorbell: futex word, sleeping flag, counters (its own cache line)
 *   [128, ...) the rte_ring: producer and consumer heads on separate cache lines, then
 *              the slots
 * prism_ring_memsize() gives the total.
 *
 * Ownership: the caller owns the memory; a prism_ring handle is a small process-local
 * object (prism_ring_destroy frees it, not the memory).  Thread safety: exactly one
 * producer thread and one consumer thread at a time, in any processes.  Errors: negative
 * codes (base/error.h).
 */
#ifndef PRISM_BASE_RING_H
#define PRISM_BASE_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct prism_ring prism_ring;

#define PRISM_RING_MAX_ESIZE 1024u
#define PRISM_RING_MAX_COUNT (1u << 24)
/* spin_ns value meaning "never sleep": a real-time consumer on a pinned core. */
#define PRISM_RING_SPIN_FOREVER UINT64_MAX

/* Bytes of memory a ring of `count` elements of `esize` bytes needs; 0 when esize is not
 * a multiple of 4 in [4, PRISM_RING_MAX_ESIZE] or count is not in [1,
 * PRISM_RING_MAX_COUNT]. */
size_t prism_ring_memsize(uint32_t esize, uint32_t count);

/* Format a new, empty ring in `mem` (64-byte aligned, `memsize` bytes at least
 * prism_ring_memsize()) and return a handle to it.  `name` (up to 31 characters) is for
 * debugging.  Errors: -EINVAL, -ENOMEM (the handle). */
int prism_ring_create(void *mem, size_t memsize, const char *name, uint32_t esize,
		      uint32_t count, prism_ring **out);

/* Open a ring another process formatted.  Every field of the header and of the rte_ring
 * is checked against `memsize` before use.  Errors: PRISM_E_BAD_MAGIC,
 * PRISM_E_BAD_VERSION, PRISM_E_CORRUPT (inconsistent sizes), -EINVAL, -ENOMEM. */
int prism_ring_attach(void *mem, size_t memsize, prism_ring **out);

/* Shared doorbells.  A consumer that drains several rings (a worker fed by several lease
 * holders) must sleep on one futex for all of them: such rings are created and attached
 * with the same doorbell, PRISM_DOORBELL_SIZE bytes at a 64-byte aligned address in
 * memory both sides map (usually the consumer's control block in the same segment),
 * and the consumer waits with prism_ring_wait_any().  The doorbell is not recorded
 * inside the ring, only the fact that it has an outside one: attach must be handed it. */
#define PRISM_DOORBELL_SIZE 64u
void prism_doorbell_init(void *bell);
int prism_ring_create_shared(void *mem, size_t memsize, const char *name, uint32_t esize,
			     uint32_t count, void *bell, prism_ring **out);
/* -EINVAL when `bell` is given for a ring made without one, or missing for one made
 * with one. */
int prism_ring_attach_shared(void *mem, size_t memsize, void *bell, prism_ring **out);

/* Consumer: wait until one of `rings`, which must share a doorbell (or be a single ring),
 * holds an element; spin up to spin_ns, then sleep, until timeout_ns (< 0: no limit).
 * Returns the index of the first non-empty ring, PRISM_E_TIMEOUT, or -EINVAL. */
int prism_ring_wait_any(prism_ring *const *rings, unsigned n, uint64_t spin_ns,
			int64_t timeout_ns);

/* prism_ring_wait_any(), which also ends when *flag is non-zero: returns n then.  A
 * thread that sets *flag and then calls prism_ring_wake() on one of the rings is never
 * missed by a waiter about to sleep (the flag is checked after the waiter announces its
 * sleep, like the rings).  -EINVAL without a flag. */
int prism_ring_wait_any_flag(prism_ring *const *rings, unsigned n, uint64_t spin_ns,
			     int64_t timeout_ns, const uint32_t *flag);

/* Free the handle (not the ring memory).  NULL-safe. */
void prism_ring_destroy(prism_ring *r);

/* Producer: copy up to n elements from objs into the ring; returns how many fit (0 when
 * full).  Wakes a sleeping consumer.  Never blocks, never makes a system call unless the
 * consumer sleeps. */
unsigned prism_ring_enqueue_burst(prism_ring *r, const void *objs, unsigned n);

/* Producer: all or nothing — n elements, or 0 when fewer than n slots are free.  A
 * message that spans several slots goes in with one call, so the consumer never sees
 * half of it. */
unsigned prism_ring_enqueue_bulk(prism_ring *r, const void *objs, unsigned n);
/* Consumer: all or nothing — n elements, or 0 when fewer are there. */
unsigned prism_ring_dequeue_bulk(prism_ring *r, void *objs, unsigned n);
unsigned prism_ring_free_count(const prism_ring *r);

/* Consumers that sleep in an event loop rather than on the futex.  The consumer calls
 * prism_doorbell_prepare_sleep(bell), then checks its rings; if one holds an element it
 * calls prism_doorbell_cancel_sleep(bell) and does not sleep, otherwise it sleeps until
 * its eventfd is written (and cancels on waking).  Each producer handle is given that
 * eventfd with prism_ring_set_wake_fd(), and writes it instead of calling futex_wake. */
void prism_doorbell_prepare_sleep(void *bell);
void prism_doorbell_cancel_sleep(void *bell);
void prism_ring_set_wake_fd(prism_ring *r, int fd);
/* Whether a consumer sleeps behind bell now, and how many times it has slept and been
 * woken (for status reports; racy by nature). */
bool prism_doorbell_asleep(const void *bell, uint64_t *sleeps, uint64_t *wakes);

/* Consumer: copy the first element into obj without taking it; returns 1, or 0 when the
 * ring is empty.  Lets a consumer of several rings choose which to serve first. */
unsigned prism_ring_peek(const prism_ring *r, void *obj);

/* Consumer: move up to n elements into objs; returns how many (0 when empty). */
unsigned prism_ring_dequeue_burst(prism_ring *r, void *objs, unsigned n);

/* Consumer: like prism_ring_dequeue_burst, but when the ring is empty spin up to spin_ns
 * nanoseconds, then sleep on the doorbell until an element arrives or timeout_ns passes
 * (timeout_ns < 0: no limit).  Returns the count (>= 1), or PRISM_E_TIMEOUT. */
int prism_ring_dequeue_wait(prism_ring *r, void *objs, unsigned n, uint64_t spin_ns,
			    int64_t timeout_ns);

/* Wake the consumer if it sleeps, for example to make it notice shutdown. */
void prism_ring_wake(prism_ring *r);

unsigned prism_ring_count(const prism_ring *r);
unsigned prism_ring_capacity(const prism_ring *r);
uint32_t prism_ring_esize(const prism_ring *r);

/* Doorbell counters, shared by both sides: times the consumer went to sleep and futex
 * wakes the producers made.  For benchmarks and tests. */
struct prism_ring_stats {
	uint64_t sleeps;
	uint64_t wakes;
};
void prism_ring_get_stats(const prism_ring *r, struct prism_ring_stats *st);

#ifdef __cplusplus
}
#endif
#endif
