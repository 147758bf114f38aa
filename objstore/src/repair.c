/* repair.c — putting the region right after a lock holder died, and objstore_verify.
 *
 * The object table is the truth; the allocator is derived from it.  Each writer changes
 * an entry's state with a single store inside an odd version, allocates before it records
 * a block and unrecords before it frees one, so after any crash the table says exactly
 * which blocks are live, and the allocator can be rebuilt from it whatever state its
 * lists were left in.  Neither function allocates: the live objects are sorted in the
 * region's scratch area (16 bytes per object) with an in-place heapsort. */
#include <errno.h>

#include "base/error.h"
#include "base/log.h"
#include "objstore_int.h"

#define RELAXED memory_order_relaxed

static void sift_down(struct os_pair *a, uint64_t n, uint64_t i)
{
	for (;;) {
		uint64_t big = i, l = 2 * i + 1, r = l + 1;
		if (l < n && a[l].off > a[big].off)
			big = l;
		if (r < n && a[r].off > a[big].off)
			big = r;
		if (big == i)
			return;
		struct os_pair t = a[i];
		a[i] = a[big];
		a[big] = t;
		i = big;
	}
}

static void sort_by_offset(struct os_pair *a, uint64_t n)
{
	for (uint64_t i = n / 2; i-- > 0;)
		sift_down(a, n, i);
	for (uint64_t end = n; end-- > 1;) {
		struct os_pair t = a[0];
		a[0] = a[end];
		a[end] = t;
		sift_down(a, end, 0);
	}
}

static struct os_pair *scratch(objstore *os)
{
	return (struct os_pair *)(os->base + os->scratch_off);
}

static void kill_entry(objstore *os, uint64_t idx, const char *why)
{
	struct os_entry *e = &os->table[idx];
	PRISM_LOG_E("objstore", "repair: dropping entry %lu: %s", (unsigned long)idx, why);
	uint64_t odd = objstore__write_begin(e);
	atomic_store_explicit(&e->state, OS_TOMB, RELAXED);
	objstore__write_end(e, odd);
}

/* Close every odd entry (its one state store either happened or not: both are whole
 * states), drop entries that are not plausible, and list the live ones. */
static uint64_t close_entries(objstore *os, struct os_pair *live)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i <= os->mask; i++) {
		struct os_entry *e = &os->table[i];
		uint64_t v = atomic_load_explicit(&e->ver, RELAXED);
		if (v & 1)
			atomic_store_explicit(&e->ver, v + 1, memory_order_release);
		uint32_t st = atomic_load_explicit(&e->state, RELAXED);
		if (st > OS_DELETING) {
			kill_entry(os, i, "unknown state");
			continue;
		}
		if (st < OS_CREATED)
			continue;
		uint64_t off = atomic_load_explicit(&e->off, RELAXED);
		uint64_t size = atomic_load_explicit(&e->size, RELAXED);
		if (!objstore__data_ok(os, off, size) ||
		    atomic_load_explicit(&e->owner, RELAXED) >= OBJSTORE_MAX_CLIENTS)
			kill_entry(os, i, "offset, size or owner out of range");
		else if (n == os->max_objects)
			kill_entry(os, i, "more live entries than max_objects");
		else
			live[n++] = (struct os_pair){.off = off, .idx = i};
	}
	return n;
}

/* Lay the allocator down again from the live objects, in address order. */
static void rebuild(objstore *os, struct os_pair *live, uint64_t n)
{
	struct tlsf_rebuild rb;
	uint64_t objects = 0, used = 0, data = 0, tombs = 0;
	sort_by_offset(live, n);
	objstore__tlsf_rebuild_begin(&os->tlsf, &rb);
	for (uint64_t j = 0; j < n; j++) {
		struct os_entry *e = &os->table[live[j].idx];
		uint64_t size = atomic_load_explicit(&e->size, RELAXED);
		if (objstore__tlsf_rebuild_used(&os->tlsf, &rb, live[j].off, size)) {
			kill_entry(os, live[j].idx, "overlaps another object");
			continue;
		}
		objects++;
		used += objstore__tlsf_block_size(size);
		data += size;
	}
	objstore__tlsf_rebuild_end(&os->tlsf, &rb);
	for (uint64_t i = 0; i <= os->mask; i++)
		tombs += atomic_load_explicit(&os->table[i].state, RELAXED) == OS_TOMB;
	struct os_hdr *h = os->hdr;
	atomic_store_explicit(&h->objects, objects, RELAXED);
	atomic_store_explicit(&h->used_bytes, used, RELAXED);
	atomic_store_explicit(&h->data_bytes, data, RELAXED);
	atomic_store_explicit(&h->tombstones, tombs, RELAXED);
}

void objstore__repair(objstore *os)
{
	struct os_pair *live = scratch(os);
	rebuild(os, live, close_entries(os, live));
	objstore__count(&os->hdr->repairs, 1);
	atomic_store(&os->hdr->needs_repair, 0);
	PRISM_LOG_W("objstore", "repaired: %lu objects live",
		    (unsigned long)atomic_load_explicit(&os->hdr->objects, RELAXED));
}

#define FAIL(...)                                     \
	do {                                          \
		PRISM_LOG_E("objstore", __VA_ARGS__); \
		return PRISM_E_CORRUPT;               \
	} while (0)

struct counts {
	uint64_t objects, tombs, used, data;
};

static int verify_entries(objstore *os, struct os_pair *live, uint64_t *n, struct counts *c)
{
	*n = 0;
	*c = (struct counts){0};
	for (uint64_t i = 0; i <= os->mask; i++) {
		struct os_entry *e = &os->table[i];
		uint32_t st = atomic_load_explicit(&e->state, RELAXED);
		if (atomic_load_explicit(&e->ver, RELAXED) & 1)
			FAIL("entry %lu left odd", (unsigned long)i);
		if (st > OS_DELETING)
			FAIL("entry %lu: state %u", (unsigned long)i, st);
		c->tombs += st == OS_TOMB;
		if (st < OS_CREATED)
			continue;
		uint64_t off = atomic_load_explicit(&e->off, RELAXED);
		uint64_t size = atomic_load_explicit(&e->size, RELAXED);
		if (!objstore__data_ok(os, off, size) || *n == os->max_objects)
			FAIL("entry %lu: bad offset or too many objects", (unsigned long)i);
		live[(*n)++] = (struct os_pair){.off = off, .idx = i};
		c->objects++;
		c->used += objstore__tlsf_block_size(size);
		c->data += size;
	}
	struct os_hdr *h = os->hdr;
	if (c->objects != atomic_load_explicit(&h->objects, RELAXED) ||
	    c->tombs != atomic_load_explicit(&h->tombstones, RELAXED) ||
	    c->used != atomic_load_explicit(&h->used_bytes, RELAXED) ||
	    c->data != atomic_load_explicit(&h->data_bytes, RELAXED) ||
	    c->used != os->tlsf.ctl->used_bytes)
		FAIL("counters disagree with the table");
	return 0;
}

/* Live objects sorted by address must be the used blocks, one for one, each the size
 * its object needs: no overlap, no leak. */
static int verify_blocks(objstore *os, struct os_pair *live, uint64_t n)
{
	uint64_t cursor = 0, off, bsize;
	sort_by_offset(live, n);
	for (uint64_t j = 0; j < n; j++) {
		if (objstore__tlsf_next_used(&os->tlsf, &cursor, &off, &bsize) != 1)
			FAIL("object at %lu has no block", (unsigned long)live[j].off);
		uint64_t size = atomic_load_explicit(&os->table[live[j].idx].size, RELAXED);
		if (off != live[j].off || bsize != objstore__tlsf_block_size(size))
			FAIL("object at %lu: block at %lu of %lu bytes",
			     (unsigned long)live[j].off, (unsigned long)off,
			     (unsigned long)bsize);
	}
	if (objstore__tlsf_next_used(&os->tlsf, &cursor, &off, &bsize) != 0)
		FAIL("used block at %lu belongs to no object", (unsigned long)off);
	return 0;
}

int objstore_verify(objstore *os)
{
	uint64_t n;
	struct counts c;
	if (!os)
		return -EINVAL;
	int rc = objstore__lock(os);
	if (rc)
		return rc;
	struct os_pair *live = scratch(os);
	rc = verify_entries(os, live, &n, &c);
	if (!rc)
		rc = objstore__tlsf_check(&os->tlsf);
	if (!rc)
		rc = verify_blocks(os, live, n);
	objstore__unlock(os);
	return rc;
}
