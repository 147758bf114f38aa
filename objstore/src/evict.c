/* evict.c — making room: LRU eviction of unpinned sealed objects, under the lock. */
#include <errno.h>

#include "base/error.h"
#include "base/log.h"
#include "objstore_int.h"

/* Entries looked at per scan: exact LRU for tables up to this size, a sample above. */
#define EVICT_WINDOW 1024
/* Victims kept per scan, oldest first: one scan serves up to 16 evictions. */
#define EVICT_BATCH 16
/* Scans in a row whose every victim got pinned in the meantime before giving up. */
#define EVICT_FRUITLESS 8

struct cand {
	uint64_t lru;
	uint64_t idx;
};

static void keep_oldest(struct cand *c, unsigned *k, uint64_t lru, uint64_t idx)
{
	unsigned j = *k < EVICT_BATCH ? (*k)++ : EVICT_BATCH;
	if (j == EVICT_BATCH) {
		if (lru >= c[EVICT_BATCH - 1].lru)
			return;
		j = EVICT_BATCH - 1;
	}
	for (; j > 0 && c[j - 1].lru > lru; j--)
		c[j] = c[j - 1];
	c[j] = (struct cand){.lru = lru, .idx = idx};
}

static uint64_t unpin_sum(const objstore *os)
{
	uint64_t sum = 0;
	for (unsigned i = 0; i < OBJSTORE_MAX_CLIENTS; i++)
		sum += atomic_load_explicit(&os->hdr->unpins[i].n, memory_order_relaxed);
	return sum;
}

/* The oldest unpinned SEALED entries in the window after the hand; past the window only
 * while none has been found, up to one full turn.  A full turn that finds nothing is
 * remembered (os_hdr.full_at) and not repeated until a pin is dropped somewhere. */
static unsigned collect(objstore *os, struct cand *c)
{
	uint64_t sum = unpin_sum(os);
	if (atomic_load_explicit(&os->hdr->full_at, memory_order_relaxed) == sum + 1)
		return 0;
	uint64_t cap = os->mask + 1, n;
	uint64_t window = cap < EVICT_WINDOW ? cap : EVICT_WINDOW;
	uint64_t hand = atomic_load_explicit(&os->hdr->hand, memory_order_relaxed);
	unsigned k = 0;
	for (n = 0; n < cap && (n < window || k == 0); n++) {
		uint64_t i = (hand + n) & os->mask;
		struct os_entry *e = &os->table[i];
		if (atomic_load_explicit(&e->state, memory_order_relaxed) != OS_SEALED ||
		    objstore__pinned(e))
			continue;
		keep_oldest(c, &k, atomic_load_explicit(&e->lru, memory_order_relaxed), i);
	}
	atomic_store_explicit(&os->hdr->hand, (hand + n) & os->mask, memory_order_relaxed);
	if (k == 0)
		atomic_store_explicit(&os->hdr->full_at, sum + 1, memory_order_relaxed);
	return k;
}

/* The writer's half of the handshake: odd version first, then the pins.  A reader that
 * pinned before our odd store is seen here; one that pins after it sees the new version
 * and backs off. */
static bool evict(objstore *os, uint64_t idx)
{
	struct os_entry *e = &os->table[idx];
	uint64_t odd = objstore__write_begin(e);
	if (atomic_load_explicit(&e->state, memory_order_relaxed) != OS_SEALED ||
	    objstore__pinned(e)) {
		objstore__write_end(e, odd);
		return false;
	}
	objstore__drop(os, idx, odd);
	objstore__count(&os->hdr->evictions, 1);
	return true;
}

bool objstore__evict_one(objstore *os)
{
	struct cand c[EVICT_BATCH];
	for (int round = 0; round < EVICT_FRUITLESS; round++) {
		unsigned k = collect(os, c);
		if (!k)
			return false;
		for (unsigned j = 0; j < k; j++)
			if (evict(os, c[j].idx))
				return true;
	}
	return false;
}

/* A free that failed earlier in this critical section flags the allocator for repair;
 * do it before trusting its lists again. */
static int try_alloc(objstore *os, uint64_t size, uint64_t *off)
{
	if (PRISM_UNLIKELY(atomic_load_explicit(&os->hdr->needs_repair, memory_order_relaxed)))
		objstore__repair(os);
	int rc = objstore__tlsf_alloc(&os->tlsf, size, off);
	if (rc == PRISM_E_CORRUPT) {
		PRISM_LOG_E("objstore", "allocator lists corrupt; rebuilding from the table");
		objstore__repair(os);
		rc = objstore__tlsf_alloc(&os->tlsf, size, off);
	}
	return rc;
}

int objstore__alloc(objstore *os, uint64_t size, uint64_t *off)
{
	struct cand c[EVICT_BATCH];
	int rc = try_alloc(os, size, off), fruitless = 0;
	while (rc == -ENOSPC) {
		unsigned k = collect(os, c);
		if (!k || fruitless == EVICT_FRUITLESS)
			return PRISM_E_STORE_FULL;
		fruitless++;
		for (unsigned j = 0; j < k && rc == -ENOSPC; j++) {
			if (!evict(os, c[j].idx))
				continue;
			fruitless = 0;
			rc = try_alloc(os, size, off);
		}
	}
	return rc;
}
