/* objstore_int.h — internal: the region layout and what the files of objstore share.
 *
 * Region layout (every offset from the region start, each 64-byte aligned):
 *
 *   0            struct os_hdr: geometry (written once by format, checksummed), the
 *                process-shared robust mutex, the LRU tick, counters
 *   table_off    table_cap entries of 128 bytes (struct os_entry)
 *   tlsf_off     the allocator's control block (struct tlsf_ctl)
 *   scratch_off  max_objects pairs of 16 bytes, used under the lock by repair and verify
 *                to sort the live objects by address without allocating
 *   arena_off    the arena: block headers from blocks_lo, sentinel header at blocks_hi
 *
 * Entry protocol (the reasoning is in objstore.h; this is the mechanics).  `ver` is a
 * seqlock, changed only under the region lock: odd while the writer changes the entry.
 * The other fields are atomics read relaxed between two reads of `ver`.  `pins` holds one
 * byte per client slot; a pin is a CAS on the 64-bit word that holds the slot's byte.
 */
#ifndef OBJSTORE_INT_H
#define OBJSTORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "base/api.h"
#include "base/id.h"
#include "objstore/objstore.h"
#include "tlsf.h"

#define OS_MAGIC 0x3153534f4d534950ull /* "PISMOSS1" little-endian */
#define OS_VERSION 1u
/* 2^30 objects: a table of 2^31 entries is 256 GiB, beyond any node. */
#define OS_MAX_OBJECTS (1u << 30)
#define OS_PIN_WORDS (OBJSTORE_MAX_CLIENTS / 8)

enum os_state {
	OS_EMPTY = 0,    /* never used since the last sweep: ends a probe */
	OS_TOMB = 1,     /* freed: a probe goes past it */
	OS_CREATED = 2,  /* allocated, being written by its creator */
	OS_SEALED = 3,   /* immutable, readable */
	OS_DELETING = 4, /* deleted while pinned: freed by the last release */
};

struct os_entry {
	_Atomic uint64_t ver;
	_Atomic uint64_t id_lo;
	_Atomic uint64_t id_hi;
	_Atomic uint64_t off; /* data offset from the region start */
	_Atomic uint64_t size;
	_Atomic uint32_t state;
	_Atomic uint32_t owner; /* creator's client slot */
	_Atomic uint64_t lru;   /* tick of the last seal or get */
	uint64_t pad;
	/* Second cache line: readers' pin CASes do not evict the first from other cores. */
	_Atomic uint64_t pins[OS_PIN_WORDS];
} PRISM_CACHE_ALIGNED;
_Static_assert(sizeof(struct os_entry) == 128, "two cache lines per entry");

/* Written once by format; checked field by field at attach. */
struct os_geom {
	uint64_t magic;
	uint64_t version;
	uint64_t region_size;
	uint64_t arena_bytes;
	uint64_t max_objects;
	uint64_t table_cap;
	uint64_t table_off;
	uint64_t tlsf_off;
	uint64_t scratch_off;
	uint64_t arena_off;
	uint64_t blocks_lo;
	uint64_t blocks_hi;
	uint64_t sum; /* FNV-1a of the fields above */
};

struct os_hdr {
	struct os_geom g;
	pthread_mutex_t lock PRISM_CACHE_ALIGNED;
	/* Advanced by 2 on every create and seal; a get stamps tick + 1 (see touch()). */
	_Atomic uint64_t tick PRISM_CACHE_ALIGNED;
	/* Changed under the lock; read without it by objstore_get_stats(). */
	_Atomic uint64_t objects PRISM_CACHE_ALIGNED;
	_Atomic uint64_t tombstones;
	_Atomic uint64_t used_bytes;
	_Atomic uint64_t data_bytes;
	_Atomic uint64_t evictions;
	_Atomic uint64_t repairs;
	_Atomic uint64_t hand; /* eviction scan position */
	_Atomic uint32_t needs_repair;
	/* 1 + the sum of unpins[] when a scan of the whole table last found no victim;
	 * 0 when unknown.  Only an unpin can make an object evictable (objects are sealed
	 * pinned), so until the sum moves a full store is answered without a new scan:
	 * a put into a full table of pinned objects costs O(1), not O(table). */
	_Atomic uint64_t full_at;
	/* Pins dropped, per client slot, each on its own line so processes releasing at
	 * once do not share one. */
	struct {
		_Atomic uint64_t n;
		uint8_t pad_[56];
	} unpins[OBJSTORE_MAX_CLIENTS] PRISM_CACHE_ALIGNED;
};

static inline void objstore__count_unpin(struct os_hdr *h, uint32_t slot)
{
	atomic_fetch_add_explicit(&h->unpins[slot].n, 1, memory_order_relaxed);
}

/* Process-local handle: geometry copied out of the region once validated, so a peer that
 * scribbles over the header later cannot move our bounds. */
struct objstore {
	uint8_t *base;
	struct os_hdr *hdr;
	struct os_entry *table;
	uint64_t mask; /* table_cap - 1 */
	uint64_t max_objects;
	uint64_t scratch_off;
	uint64_t data_lo; /* lowest valid data offset */
	uint64_t data_hi; /* end of the block span */
	uint64_t capacity;
	uint32_t slot;
	struct tlsf tlsf;
};

/* Pairs sorted by repair and verify. */
struct os_pair {
	uint64_t off;
	uint64_t idx;
};

/* Test-only: when set, called at the numbered points inside the critical section, so a
 * test can stop (and SIGKILL) a process there or scribble on the region first. */
enum os_hook_point {
	OS_HOOK_LOCKED = 1,       /* just after the lock is taken */
	OS_HOOK_CREATE_ALLOCATED, /* block allocated, entry not yet written */
	OS_HOOK_CREATE_ENTRY,     /* entry half written (ver odd) */
	OS_HOOK_SEAL,             /* seal half written */
	OS_HOOK_FREE,             /* entry freed (ver odd), block not yet returned */
};
extern void (*objstore__test_hook)(objstore *os, int point);

static inline void objstore__hook(objstore *os, int point)
{
	if (PRISM_UNLIKELY(objstore__test_hook != NULL))
		objstore__test_hook(os, point);
}

static inline uint64_t objstore__id_lo(prism_id id)
{
	uint64_t v;
	memcpy(&v, id.b, 8);
	return v;
}
static inline uint64_t objstore__id_hi(prism_id id)
{
	uint64_t v;
	memcpy(&v, id.b + 8, 8);
	return v;
}

static inline bool objstore__data_ok(const objstore *os, uint64_t off, uint64_t size)
{
	return off >= os->data_lo && off <= os->data_hi && size <= os->data_hi - off &&
	       (off & (TLSF_ALIGN - 1)) == 0;
}

/* Counters in the header change only under the lock: a load and a store, no locked
 * instruction; a reader without the lock sees the old or the new value. */
static inline void objstore__count(_Atomic uint64_t *c, uint64_t delta)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + delta,
			      memory_order_relaxed);
}

/* region.c */
int objstore__lock(objstore *os);
void objstore__unlock(objstore *os);
/* Wait for a writer that keeps an entry odd (preempted, or dead: the lock repairs). */
int objstore__wait_writer(objstore *os);

/* table.c — lock-free side */
struct os_snap {
	uint64_t ver, lo, hi, off, size;
	uint32_t state, owner;
};
/* Find the live entry (CREATED, SEALED or DELETING) for an id without the lock.
 * 0 and *idx, *s; -ENOENT; or OS_STUCK when an entry stayed odd past the spin budget. */
#define OS_STUCK 1
int objstore__probe(const objstore *os, uint64_t lo, uint64_t hi, uint64_t *idx,
		    struct os_snap *s);
int objstore__pin(struct os_entry *e, uint32_t slot);
int objstore__unpin(struct os_entry *e, uint32_t slot);
bool objstore__pinned(const struct os_entry *e);

/* table.c — under the lock */
/* 0 and *idx when a live entry has the id; -ENOENT and *ins, the slot to insert at. */
int objstore__find_locked(const objstore *os, uint64_t lo, uint64_t hi, uint64_t *idx,
			  uint64_t *ins);
uint64_t objstore__write_begin(struct os_entry *e);
void objstore__write_end(struct os_entry *e, uint64_t odd);
/* Mark the entry free and return its block; the entry must be odd (write_begin). */
void objstore__drop(objstore *os, uint64_t idx, uint64_t odd);
/* Turn tombstones that no probe path crosses back into empty slots. */
void objstore__sweep(objstore *os);

/* evict.c — under the lock */
/* Allocate, evicting unpinned sealed objects in LRU order until it fits.
 * PRISM_E_STORE_FULL when nothing evictable is left. */
int objstore__alloc(objstore *os, uint64_t size, uint64_t *off);
/* Evict one object to free a table entry; false when none is evictable. */
bool objstore__evict_one(objstore *os);

/* repair.c — under the lock */
void objstore__repair(objstore *os);

#endif
