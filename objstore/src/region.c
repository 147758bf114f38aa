/* region.c — region layout, format, attach with header validation, the robust lock. */
#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "objstore_int.h"

void (*objstore__test_hook)(objstore *os, int point);

static uint64_t round_up64(uint64_t v)
{
	return (v + 63) & ~63ull;
}

static uint64_t geom_sum(const struct os_geom *g)
{
	const uint8_t *p = (const uint8_t *)g;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < offsetof(struct os_geom, sum); i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* Where everything goes for a given arena and object count.  The table has a power of
 * two of at least twice max_objects entries, so probes stay short (load <= 1/2). */
static int layout(uint64_t arena_bytes, uint64_t max_objects, struct os_geom *g)
{
	if (max_objects == 0 || max_objects > OS_MAX_OBJECTS ||
	    arena_bytes < 2 * TLSF_MIN_BLOCK || arena_bytes >= TLSF_MAX_SPAN)
		return -EINVAL;
	uint64_t cap = 16;
	while (cap < 2 * max_objects)
		cap <<= 1;
	memset(g, 0, sizeof(*g));
	g->magic = OS_MAGIC;
	g->version = OS_VERSION;
	g->arena_bytes = arena_bytes & ~63ull;
	g->max_objects = max_objects;
	g->table_cap = cap;
	g->table_off = round_up64(sizeof(struct os_hdr));
	g->tlsf_off = g->table_off + cap * sizeof(struct os_entry);
	g->scratch_off = g->tlsf_off + round_up64(sizeof(struct tlsf_ctl));
	g->arena_off = g->scratch_off + round_up64(max_objects * sizeof(struct os_pair));
	/* Headers at 48 mod 64 so that data lands on 64; the sentinel's 16 bytes end it. */
	g->blocks_lo = g->arena_off + OBJSTORE_ALIGN - TLSF_HDR;
	g->blocks_hi = g->blocks_lo + g->arena_bytes;
	g->region_size = round_up64(g->blocks_hi + TLSF_HDR);
	g->sum = geom_sum(g);
	return 0;
}

size_t objstore_region_size(size_t arena_bytes, uint32_t max_objects)
{
	struct os_geom g;
	return layout(arena_bytes, max_objects, &g) ? 0 : (size_t)g.region_size;
}

static int init_mutex(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	int rc = pthread_mutexattr_init(&a);
	if (rc)
		return -rc;
	rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	if (!rc)
		rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (!rc)
		rc = pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
	return -rc;
}

int objstore_format(void *region, size_t region_size, size_t arena_bytes, uint32_t max_objects)
{
	struct os_geom g;
	if (!region || ((uintptr_t)region & 63))
		return -EINVAL;
	int rc = layout(arena_bytes, max_objects, &g);
	if (rc)
		return rc;
	if (region_size < g.region_size)
		return -EINVAL;
	uint8_t *base = region;
	struct os_hdr *hdr = region;
	memset(hdr, 0, sizeof(*hdr));
	memset(base + g.table_off, 0, g.table_cap * sizeof(struct os_entry));
	rc = init_mutex(&hdr->lock);
	if (rc)
		return rc;
	struct tlsf t;
	objstore__tlsf_view(&t, base, g.tlsf_off, g.blocks_lo, g.blocks_hi);
	objstore__tlsf_format(&t);
	/* The geometry, magic included, goes in last, so that a process attaching too early
	 * sees an unformatted region rather than a half-formatted one. */
	atomic_thread_fence(memory_order_release);
	hdr->g = g;
	return 0;
}

/* Every field must be what layout() derives from arena_bytes and max_objects: that
 * bounds every offset, and the checksum catches what layout cannot (a flipped bit in a
 * field that still passes).  Works on a copy, so the region cannot change under us. */
static int validate(const struct os_geom *g, size_t region_size)
{
	struct os_geom want;
	if (g->magic != OS_MAGIC)
		return PRISM_E_BAD_MAGIC;
	if (g->version != OS_VERSION)
		return PRISM_E_BAD_VERSION;
	if (g->sum != geom_sum(g) || layout(g->arena_bytes, g->max_objects, &want) ||
	    memcmp(&want, g, sizeof(want)) != 0)
		return PRISM_E_CORRUPT;
	if (g->region_size > region_size)
		return PRISM_E_CORRUPT;
	return 0;
}

int objstore_attach(void *region, size_t region_size, uint32_t client_slot, objstore **out)
{
	struct os_geom g;
	if (!region || !out || ((uintptr_t)region & 63) ||
	    client_slot >= OBJSTORE_MAX_CLIENTS || region_size < sizeof(struct os_hdr))
		return -EINVAL;
	memcpy(&g, &((struct os_hdr *)region)->g, sizeof(g));
	atomic_thread_fence(memory_order_acquire);
	int rc = validate(&g, region_size);
	if (rc)
		return rc;
	objstore *os = prism_calloc(1, sizeof(*os));
	if (!os)
		return -ENOMEM;
	os->base = region;
	os->hdr = region;
	os->table = (struct os_entry *)(os->base + g.table_off);
	os->mask = g.table_cap - 1;
	os->max_objects = g.max_objects;
	os->scratch_off = g.scratch_off;
	os->data_lo = g.blocks_lo + TLSF_HDR;
	os->data_hi = g.blocks_hi;
	os->slot = client_slot;
	objstore__tlsf_view(&os->tlsf, os->base, g.tlsf_off, g.blocks_lo, g.blocks_hi);
	os->capacity = objstore__tlsf_capacity(&os->tlsf);
	*out = os;
	return 0;
}

void objstore_detach(objstore *os)
{
	prism_free(os);
}

int objstore__lock(objstore *os)
{
	int rc = pthread_mutex_lock(&os->hdr->lock);
	if (rc == EOWNERDEAD) {
		/* Flag first: should we die too before the repair ends, the next locker redoes
		 * it. */
		atomic_store(&os->hdr->needs_repair, 1);
		pthread_mutex_consistent(&os->hdr->lock);
		PRISM_LOG_W("objstore", "a process died holding the store lock; repairing");
	} else if (rc) {
		PRISM_LOG_E("objstore", "store lock unusable: %s", strerror(rc));
		return PRISM_E_CORRUPT;
	}
	if (atomic_load(&os->hdr->needs_repair))
		objstore__repair(os);
	objstore__hook(os, OS_HOOK_LOCKED);
	return 0;
}

void objstore__unlock(objstore *os)
{
	pthread_mutex_unlock(&os->hdr->lock);
}

int objstore__wait_writer(objstore *os)
{
	int rc = objstore__lock(os);
	if (!rc)
		objstore__unlock(os);
	return rc;
}

int objstore_get_stats(objstore *os, struct objstore_stats *out)
{
	if (!os || !out)
		return -EINVAL;
	struct os_hdr *h = os->hdr;
	out->capacity = os->capacity;
	out->arena_bytes = os->tlsf.hi - os->tlsf.lo;
	out->used_bytes = atomic_load_explicit(&h->used_bytes, memory_order_relaxed);
	out->data_bytes = atomic_load_explicit(&h->data_bytes, memory_order_relaxed);
	out->objects = atomic_load_explicit(&h->objects, memory_order_relaxed);
	out->max_objects = os->max_objects;
	out->evictions = atomic_load_explicit(&h->evictions, memory_order_relaxed);
	out->repairs = atomic_load_explicit(&h->repairs, memory_order_relaxed);
	return 0;
}
