/* store.c — the public operations: create, seal, abort, get, release, delete,
 * release_client.  Writers run under the region lock; get and release do not. */
#include <errno.h>

#include "base/error.h"
#include "base/log.h"
#include "objstore_int.h"

#define RELAXED memory_order_relaxed
/* Version races a get retries before it waits once on the lock, and in all. */
#define GET_SPINS 16
#define GET_ATTEMPTS 64
/* Result of one lock-free attempt that lost a race and should simply go again. */
#define RETRY 2

static bool bad_id(prism_id id)
{
	return prism_id_is_nil(id);
}

/* Each create and seal advances the tick by 2 (under the lock) and stamps the entry. */
static uint64_t next_tick(objstore *os)
{
	objstore__count(&os->hdr->tick, 2);
	return atomic_load_explicit(&os->hdr->tick, RELAXED);
}

/* A get stamps tick + 1: newer than every object sealed so far, and the shared tick
 * itself is only read, so readers never write to one cache line together. */
static inline void touch(objstore *os, struct os_entry *e)
{
	uint64_t t = atomic_load_explicit(&os->hdr->tick, RELAXED) + 1;
	if (atomic_load_explicit(&e->lru, RELAXED) != t)
		atomic_store_explicit(&e->lru, t, RELAXED);
}

static int make_room_for_entry(objstore *os)
{
	if (atomic_load_explicit(&os->hdr->objects, RELAXED) < os->max_objects)
		return 0;
	return objstore__evict_one(os) ? 0 : PRISM_E_STORE_FULL;
}

/* State goes to CREATED (one store) before the creator's pin is added: if the creator
 * dies in between, release_client() aborts the object and clears whatever pin it had. */
static void fill_entry(objstore *os, uint64_t ins, prism_id id, uint64_t off, uint64_t size)
{
	struct os_entry *e = &os->table[ins];
	uint64_t odd = objstore__write_begin(e);
	if (atomic_load_explicit(&e->state, RELAXED) == OS_TOMB)
		objstore__count(&os->hdr->tombstones, UINT64_MAX);
	atomic_store_explicit(&e->id_lo, objstore__id_lo(id), RELAXED);
	atomic_store_explicit(&e->id_hi, objstore__id_hi(id), RELAXED);
	atomic_store_explicit(&e->off, off, RELAXED);
	atomic_store_explicit(&e->size, size, RELAXED);
	atomic_store_explicit(&e->owner, os->slot, RELAXED);
	atomic_store_explicit(&e->lru, next_tick(os), RELAXED);
	atomic_store_explicit(&e->state, OS_CREATED, RELAXED);
	objstore__hook(os, OS_HOOK_CREATE_ENTRY);
	/* Cannot fail: a free entry carries no lasting pins (transient ones from readers
	 * that are backing off are at most one per thread). */
	if (PRISM_NEVER(objstore__pin(e, os->slot) != 0))
		PRISM_LOG_E("objstore", "creator pin overflow on a free entry");
	objstore__write_end(e, odd);
	objstore__count(&os->hdr->objects, 1);
	objstore__count(&os->hdr->used_bytes, objstore__tlsf_block_size(size));
	objstore__count(&os->hdr->data_bytes, size);
}

static int create_locked(objstore *os, prism_id id, uint64_t size, void **data)
{
	uint64_t idx, ins, off;
	if (atomic_load_explicit(&os->hdr->tombstones, RELAXED) > (os->mask + 1) / 4)
		objstore__sweep(os);
	int rc =
		objstore__find_locked(os, objstore__id_lo(id), objstore__id_hi(id), &idx, &ins);
	if (rc == 0)
		return -EEXIST;
	if (rc != -ENOENT)
		return rc;
	rc = make_room_for_entry(os);
	if (!rc)
		rc = objstore__alloc(os, size, &off);
	if (rc)
		return rc;
	objstore__hook(os, OS_HOOK_CREATE_ALLOCATED);
	fill_entry(os, ins, id, off, size);
	*data = os->base + off;
	return 0;
}

int objstore_create(objstore *os, prism_id id, size_t size, void **data)
{
	if (!os || !data || bad_id(id))
		return -EINVAL;
	if (size > os->capacity)
		return PRISM_E_TOO_BIG;
	int rc = objstore__lock(os);
	if (rc)
		return rc;
	rc = create_locked(os, id, size, data);
	objstore__unlock(os);
	return rc;
}

/* Under the lock: the entry of a CREATED object of the caller's. */
static int find_own_created(objstore *os, prism_id id, uint64_t *idx)
{
	uint64_t ins;
	int rc = objstore__find_locked(os, objstore__id_lo(id), objstore__id_hi(id), idx, &ins);
	if (rc)
		return rc == PRISM_E_STORE_FULL ? -ENOENT : rc;
	struct os_entry *e = &os->table[*idx];
	if (atomic_load_explicit(&e->state, RELAXED) != OS_CREATED)
		return -EINVAL;
	if (atomic_load_explicit(&e->owner, RELAXED) != os->slot)
		return -EPERM;
	return 0;
}

int objstore_seal(objstore *os, prism_id id)
{
	uint64_t idx;
	if (!os || bad_id(id))
		return -EINVAL;
	int rc = objstore__lock(os);
	if (rc)
		return rc;
	rc = find_own_created(os, id, &idx);
	if (!rc) {
		struct os_entry *e = &os->table[idx];
		uint64_t odd = objstore__write_begin(e);
		atomic_store_explicit(&e->lru, next_tick(os), RELAXED);
		objstore__hook(os, OS_HOOK_SEAL);
		atomic_store_explicit(&e->state, OS_SEALED, RELAXED);
		objstore__write_end(e, odd);
	}
	objstore__unlock(os);
	return rc;
}

int objstore_abort(objstore *os, prism_id id)
{
	uint64_t idx;
	if (!os || bad_id(id))
		return -EINVAL;
	int rc = objstore__lock(os);
	if (rc)
		return rc;
	rc = find_own_created(os, id, &idx);
	if (!rc) {
		struct os_entry *e = &os->table[idx];
		uint64_t odd = objstore__write_begin(e);
		objstore__unpin(e, os->slot);
		objstore__drop(os, idx, odd);
	}
	objstore__unlock(os);
	return rc;
}

/* Free a DELETING entry whose pins are all gone.  Whoever gets here second finds the
 * entry freed, or reused, and leaves it alone unless it is again a DELETING entry without
 * pins, which is exactly what must be freed whichever object it now holds. */
static void free_if_unpinned(objstore *os, uint64_t idx)
{
	struct os_entry *e = &os->table[idx];
	if (atomic_load_explicit(&e->state, RELAXED) != OS_DELETING)
		return;
	uint64_t odd = objstore__write_begin(e);
	if (objstore__pinned(e))
		objstore__write_end(e, odd);
	else
		objstore__drop(os, idx, odd);
}

static void reap(objstore *os, uint64_t idx)
{
	if (objstore__lock(os))
		return;
	free_if_unpinned(os, idx);
	objstore__unlock(os);
}

/* Unpin, then look at the state: the releaser's half of the delete handshake. */
static int unpin_and_reap(objstore *os, uint64_t idx)
{
	struct os_entry *e = &os->table[idx];
	int rc = objstore__unpin(e, os->slot);
	if (rc)
		return rc;
	objstore__count_unpin(os->hdr, os->slot);
	if (atomic_load_explicit(&e->state, memory_order_seq_cst) == OS_DELETING)
		reap(os, idx);
	return 0;
}

static int try_get(objstore *os, uint64_t lo, uint64_t hi, const void **data, size_t *size)
{
	uint64_t idx;
	struct os_snap s;
	int rc = objstore__probe(os, lo, hi, &idx, &s);
	if (rc)
		return rc;
	if (s.state == OS_CREATED)
		return PRISM_E_AGAIN;
	if (s.state != OS_SEALED)
		return -ENOENT;
	if (!objstore__data_ok(os, s.off, s.size))
		return PRISM_E_CORRUPT;
	struct os_entry *e = &os->table[idx];
	rc = objstore__pin(e, os->slot);
	if (rc)
		return rc;
	/* The reader's half of the handshake: pin first, then check the version. */
	if (atomic_load_explicit(&e->ver, memory_order_seq_cst) != s.ver) {
		unpin_and_reap(os, idx);
		return RETRY;
	}
	touch(os, e);
	*data = os->base + s.off;
	*size = s.size;
	return 0;
}

int objstore_get(objstore *os, prism_id id, const void **data, size_t *size)
{
	if (!os || !data || !size || bad_id(id))
		return -EINVAL;
	uint64_t lo = objstore__id_lo(id), hi = objstore__id_hi(id);
	for (int n = 1; n <= GET_ATTEMPTS; n++) {
		int rc = try_get(os, lo, hi, data, size);
		if (rc == OS_STUCK || (rc == RETRY && n % GET_SPINS == 0))
			rc = objstore__wait_writer(os) ? PRISM_E_CORRUPT : RETRY;
		if (rc != RETRY)
			return rc;
	}
	return PRISM_E_AGAIN;
}

int objstore_release(objstore *os, prism_id id)
{
	uint64_t idx;
	struct os_snap s;
	if (!os || bad_id(id))
		return -EINVAL;
	uint64_t lo = objstore__id_lo(id), hi = objstore__id_hi(id);
	int rc;
	while ((rc = objstore__probe(os, lo, hi, &idx, &s)) == OS_STUCK) {
		rc = objstore__wait_writer(os);
		if (rc)
			return rc;
	}
	if (rc)
		return rc;
	if (s.state == OS_CREATED)
		return -EINVAL;
	return unpin_and_reap(os, idx);
}

int objstore_give(objstore *os, prism_id id, uint32_t to_slot)
{
	uint64_t idx;
	struct os_snap s;
	if (!os || bad_id(id) || to_slot >= OBJSTORE_MAX_CLIENTS)
		return -EINVAL;
	uint64_t lo = objstore__id_lo(id), hi = objstore__id_hi(id);
	int rc;
	while ((rc = objstore__probe(os, lo, hi, &idx, &s)) == OS_STUCK) {
		rc = objstore__wait_writer(os);
		if (rc)
			return rc;
	}
	if (rc)
		return rc;
	if (s.state != OS_SEALED)
		return -EINVAL;
	/* The caller's own pin keeps the entry from being evicted or freed, so the new
	 * pin needs no version check; the caller's comes off only after it is on. */
	struct os_entry *e = &os->table[idx];
	rc = objstore__pin(e, to_slot);
	if (rc)
		return rc;
	rc = unpin_and_reap(os, idx);
	if (rc) {
		objstore__unpin(e, to_slot); /* the caller held no pin: undo */
		return rc;
	}
	/* The receiver owns it now: if it dies, the object goes with it. */
	atomic_store_explicit(&e->owner, to_slot, memory_order_relaxed);
	return 0;
}

bool objstore_contains(objstore *os, prism_id id)
{
	uint64_t idx;
	struct os_snap s;
	if (!os || bad_id(id))
		return false;
	uint64_t lo = objstore__id_lo(id), hi = objstore__id_hi(id);
	for (int n = 0; n < GET_ATTEMPTS; n++) {
		int rc = objstore__probe(os, lo, hi, &idx, &s);
		if (rc != OS_STUCK)
			return rc == 0 && s.state == OS_SEALED;
		if (objstore__wait_writer(os))
			return false;
	}
	return false;
}

/* Delete sets DELETING before it reads the pins; release unpins before it reads the
 * state: one of the two sees the other, so the last pin never goes unnoticed. */
/* Mark a SEALED entry DELETING: no new readers, freed now or by the last release. */
static void delete_entry_locked(objstore *os, uint64_t idx)
{
	struct os_entry *e = &os->table[idx];
	uint64_t odd = objstore__write_begin(e);
	atomic_store_explicit(&e->state, OS_DELETING, memory_order_seq_cst);
	if (objstore__pinned(e))
		objstore__write_end(e, odd);
	else
		objstore__drop(os, idx, odd);
}

static int delete_locked(objstore *os, prism_id id)
{
	uint64_t idx, ins;
	int rc =
		objstore__find_locked(os, objstore__id_lo(id), objstore__id_hi(id), &idx, &ins);
	if (rc)
		return rc == PRISM_E_STORE_FULL ? -ENOENT : rc;
	uint32_t st = atomic_load_explicit(&os->table[idx].state, RELAXED);
	if (st == OS_CREATED)
		return PRISM_E_AGAIN;
	if (st != OS_SEALED)
		return -ENOENT;
	delete_entry_locked(os, idx);
	return 0;
}

int objstore_delete(objstore *os, prism_id id)
{
	if (!os || bad_id(id))
		return -EINVAL;
	int rc = objstore__lock(os);
	if (rc)
		return rc;
	rc = delete_locked(os, id);
	objstore__unlock(os);
	return rc;
}

/* One entry of release_client: clear the slot's pins (on every entry, free ones too: a
 * process that died between pin and version check leaves a pin anywhere), then free
 * what that leaves unreferenced. */
static void release_entry(objstore *os, uint64_t idx, uint32_t slot)
{
	struct os_entry *e = &os->table[idx];
	unsigned sh = (slot & 7u) * 8u;
	uint64_t had = atomic_fetch_and_explicit(&e->pins[slot >> 3], ~(0xffull << sh),
						 memory_order_seq_cst);
	if ((had >> sh) & 0xff)
		objstore__count_unpin(os->hdr, slot);
	uint32_t st = atomic_load_explicit(&e->state, RELAXED);
	bool owned = atomic_load_explicit(&e->owner, RELAXED) == slot;
	if (st == OS_CREATED && owned)
		objstore__drop(os, idx, objstore__write_begin(e));
	else if (st == OS_SEALED && owned)
		delete_entry_locked(os, idx); /* its owner is gone: nobody can ask for it */
	else
		free_if_unpinned(os, idx);
}

int objstore_release_client(objstore *os, uint32_t client_slot)
{
	if (!os || client_slot >= OBJSTORE_MAX_CLIENTS)
		return -EINVAL;
	int rc = objstore__lock(os);
	if (rc)
		return rc;
	for (uint64_t i = 0; i <= os->mask; i++)
		release_entry(os, i, client_slot);
	objstore__unlock(os);
	return 0;
}
