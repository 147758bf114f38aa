/* table.c — the object table: lock-free probe and pins, writer-side entry updates, and
 * the tombstone sweep.  The protocol is explained in objstore.h. */
#include <errno.h>

#include "base/cpu.h"
#include "base/error.h"
#include "base/log.h"
#include "objstore_int.h"

/* Reads of an odd entry before a reader gives up and waits on the lock: a writer holds an
 * entry odd for tens of nanoseconds, so 4,096 pauses (a few microseconds) only run out
 * when it was preempted or died. */
#define SPIN_LIMIT 4096

#define RELAXED memory_order_relaxed

/* One consistent read of an entry, or false when a writer is (or was just) in it. */
static inline bool snap(const struct os_entry *e, struct os_snap *s)
{
	uint64_t v = atomic_load_explicit(&e->ver, memory_order_acquire);
	if (v & 1)
		return false;
	s->state = atomic_load_explicit(&e->state, RELAXED);
	s->lo = atomic_load_explicit(&e->id_lo, RELAXED);
	s->hi = atomic_load_explicit(&e->id_hi, RELAXED);
	s->off = atomic_load_explicit(&e->off, RELAXED);
	s->size = atomic_load_explicit(&e->size, RELAXED);
	s->owner = atomic_load_explicit(&e->owner, RELAXED);
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&e->ver, RELAXED) != v)
		return false;
	s->ver = v;
	return true;
}

static inline bool is_live(uint32_t state)
{
	return state >= OS_CREATED && state <= OS_DELETING;
}

static inline uint64_t home(const objstore *os, uint64_t lo, uint64_t hi)
{
	prism_id id;
	memcpy(id.b, &lo, 8);
	memcpy(id.b + 8, &hi, 8);
	return prism_id_hash(id) & os->mask;
}

int objstore__probe(const objstore *os, uint64_t lo, uint64_t hi, uint64_t *idx,
		    struct os_snap *s)
{
	uint64_t i = home(os, lo, hi);
	for (uint64_t n = 0; n <= os->mask; n++, i = (i + 1) & os->mask) {
		const struct os_entry *e = &os->table[i];
		for (unsigned spins = 0; !snap(e, s); spins++) {
			if (spins >= SPIN_LIMIT)
				return OS_STUCK;
			prism_cpu_relax();
		}
		if (s->state == OS_EMPTY)
			return -ENOENT;
		if (is_live(s->state) && s->lo == lo && s->hi == hi) {
			*idx = i;
			return 0;
		}
	}
	return -ENOENT;
}

/* The word of the pins array that holds `slot`'s byte, and the byte's shift in it. */
#define PIN_WORD(e, slot) (&(e)->pins[(slot) >> 3])
#define PIN_SHIFT(slot) (((slot)&7u) * 8u)

int objstore__pin(struct os_entry *e, uint32_t slot)
{
	_Atomic uint64_t *w = PIN_WORD(e, slot);
	unsigned sh = PIN_SHIFT(slot);
	uint64_t old = atomic_load_explicit(w, RELAXED);
	do {
		if (((old >> sh) & 0xff) == OBJSTORE_MAX_PINS)
			return PRISM_E_RANGE;
	} while (!atomic_compare_exchange_weak_explicit(w, &old, old + (1ull << sh),
							memory_order_seq_cst, RELAXED));
	return 0;
}

int objstore__unpin(struct os_entry *e, uint32_t slot)
{
	_Atomic uint64_t *w = PIN_WORD(e, slot);
	unsigned sh = PIN_SHIFT(slot);
	uint64_t old = atomic_load_explicit(w, RELAXED);
	do {
		if (((old >> sh) & 0xff) == 0)
			return PRISM_E_RELEASED;
	} while (!atomic_compare_exchange_weak_explicit(w, &old, old - (1ull << sh),
							memory_order_seq_cst, RELAXED));
	return 0;
}

/* Sequentially consistent loads: the writer's half of the pin/version handshake. */
bool objstore__pinned(const struct os_entry *e)
{
	for (unsigned i = 0; i < OS_PIN_WORDS; i++)
		if (atomic_load_explicit(&e->pins[i], memory_order_seq_cst))
			return true;
	return false;
}

int objstore__find_locked(const objstore *os, uint64_t lo, uint64_t hi, uint64_t *idx,
			  uint64_t *ins)
{
	uint64_t i = home(os, lo, hi), first_tomb = UINT64_MAX;
	for (uint64_t n = 0; n <= os->mask; n++, i = (i + 1) & os->mask) {
		const struct os_entry *e = &os->table[i];
		uint32_t st = atomic_load_explicit(&e->state, RELAXED);
		if (st == OS_EMPTY) {
			*ins = first_tomb != UINT64_MAX ? first_tomb : i;
			return -ENOENT;
		}
		if (!is_live(st)) {
			if (first_tomb == UINT64_MAX)
				first_tomb = i;
			continue;
		}
		if (atomic_load_explicit(&e->id_lo, RELAXED) == lo &&
		    atomic_load_explicit(&e->id_hi, RELAXED) == hi) {
			*idx = i;
			return 0;
		}
	}
	/* No empty slot at all: live objects are at most half the table, so a tombstone is. */
	*ins = first_tomb;
	return first_tomb != UINT64_MAX ? -ENOENT : PRISM_E_STORE_FULL;
}

/* The odd version is stored sequentially consistent, so that the pin loads that follow
 * (objstore__pinned) are ordered after it; the release fence keeps the field stores from
 * becoming visible before it. */
uint64_t objstore__write_begin(struct os_entry *e)
{
	uint64_t v = atomic_load_explicit(&e->ver, RELAXED);
	uint64_t odd = (v | 1) + ((v & 1) ? 2 : 0);
	atomic_store_explicit(&e->ver, odd, memory_order_seq_cst);
	atomic_thread_fence(memory_order_release);
	return odd;
}

void objstore__write_end(struct os_entry *e, uint64_t odd)
{
	atomic_store_explicit(&e->ver, odd + 1, memory_order_release);
}

/* The state goes to TOMB before the block goes back: a crash in between leaves a block
 * that no entry names, which repair's rebuild reclaims. */
void objstore__drop(objstore *os, uint64_t idx, uint64_t odd)
{
	struct os_entry *e = &os->table[idx];
	struct os_hdr *h = os->hdr;
	uint64_t off = atomic_load_explicit(&e->off, RELAXED);
	uint64_t size = atomic_load_explicit(&e->size, RELAXED);
	atomic_store_explicit(&e->state, OS_TOMB, RELAXED);
	objstore__hook(os, OS_HOOK_FREE);
	int rc = objstore__tlsf_free(&os->tlsf, off);
	if (rc) {
		PRISM_LOG_E("objstore", "freeing offset %lu: %s; allocator will be rebuilt",
			    (unsigned long)off, prism_strerror(rc));
		atomic_store(&h->needs_repair, 1);
	}
	objstore__count(&h->objects, UINT64_MAX);
	objstore__count(&h->tombstones, 1);
	objstore__count(&h->used_bytes, 0 - objstore__tlsf_block_size(size));
	objstore__count(&h->data_bytes, 0 - size);
	objstore__write_end(e, odd);
}

/* A tombstone can become EMPTY when no live entry's probe path (home .. position) runs
 * through it: then every probe that reaches it would fail beyond it anyway, so a reader
 * probing concurrently finds exactly what it would have found before.  The walk goes
 * backwards over the table twice (unrolled positions), tracking the lowest position that
 * any entry seen so far covers; decisions are taken in the second lap only, when every
 * entry that can cover a position has been seen.  O(table) under the lock, run when
 * tombstones pass a quarter of the table. */
void objstore__sweep(objstore *os)
{
	uint64_t cap = os->mask + 1, cover = UINT64_MAX, removed = 0;
	for (uint64_t u = 2 * cap - 1; u != UINT64_MAX; u--) {
		struct os_entry *e = &os->table[u & os->mask];
		uint32_t st = atomic_load_explicit(&e->state, RELAXED);
		if (st == OS_EMPTY) {
			cover = UINT64_MAX;
		} else if (is_live(st)) {
			uint64_t lo = atomic_load_explicit(&e->id_lo, RELAXED);
			uint64_t hi = atomic_load_explicit(&e->id_hi, RELAXED);
			uint64_t dist = ((u & os->mask) - home(os, lo, hi)) & os->mask;
			uint64_t from = u >= dist ? u - dist : 0;
			if (from < cover)
				cover = from;
		} else if (u < cap && u < cover) {
			uint64_t odd = objstore__write_begin(e);
			atomic_store_explicit(&e->state, OS_EMPTY, RELAXED);
			objstore__write_end(e, odd);
			removed++;
			cover = UINT64_MAX;
		}
	}
	objstore__count(&os->hdr->tombstones, 0 - removed);
}
