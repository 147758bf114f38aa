/* The object table on its own: linear probing with tombstones, wrap-around, and the
 * sweep that turns tombstones back into empty slots without cutting a probe path. */
#include <criterion/criterion.h>
#include <errno.h>

#include "../../objstore/src/objstore_int.h"
#include "helpers.h"

#define KEYS 40u

static uint64_t home_of(const objstore *os, prism_id id)
{
	return prism_id_hash(id) & os->mask;
}

static bool found(const objstore *os, prism_id id)
{
	uint64_t idx;
	struct os_snap s;
	return objstore__probe(os, objstore__id_lo(id), objstore__id_hi(id), &idx, &s) == 0;
}

/* After a sweep every tombstone left must lie on some live entry's probe path. */
static void check_sweep_was_complete(const objstore *os)
{
	uint64_t cap = os->mask + 1, tombs = 0;
	bool covered[64] = {false};
	cr_assert_leq(cap, 64);
	for (uint64_t i = 0; i < cap; i++) {
		const struct os_entry *e = &os->table[i];
		uint32_t st = atomic_load(&e->state);
		if (st < OS_CREATED)
			continue;
		prism_id id;
		uint64_t lo = atomic_load(&e->id_lo), hi = atomic_load(&e->id_hi);
		memcpy(id.b, &lo, 8);
		memcpy(id.b + 8, &hi, 8);
		for (uint64_t j = home_of(os, id); j != i; j = (j + 1) & os->mask)
			covered[j] = true;
	}
	for (uint64_t i = 0; i < cap; i++) {
		if (atomic_load(&os->table[i].state) != OS_TOMB)
			continue;
		tombs++;
		cr_assert(covered[i], "tombstone %lu survived a sweep uncovered",
			  (unsigned long)i);
	}
	cr_assert_eq(tombs, atomic_load(&os->hdr->tombstones));
}

static void sweep(objstore *os)
{
	cr_assert_eq(objstore__lock(os), 0);
	objstore__sweep(os);
	objstore__unlock(os);
}

Test(table, random_inserts_and_deletes_in_a_tiny_table_keep_every_id_reachable)
{
	/* max_objects 8: a 16-entry table, so clusters collide and wrap constantly. */
	struct region r = region_new(1u << 20, 8);
	objstore *os = attach(&r, 0);
	bool live[KEYS] = {false};
	unsigned nlive = 0;
	uint64_t seed = 7;
	for (int op = 0; op < 20000; op++) {
		uint64_t k = rnd(&seed) % KEYS;
		if (!live[k] && nlive < 8) {
			put(os, test_id(k), 8, true);
			live[k] = true;
			nlive++;
		} else if (live[k]) {
			cr_assert_eq(objstore_delete(os, test_id(k)), 0);
			live[k] = false;
			nlive--;
		}
		if (op % 7 == 0) {
			sweep(os);
			check_sweep_was_complete(os);
		}
		for (uint64_t j = 0; j < KEYS; j++)
			cr_assert_eq(found(os, test_id(j)), live[j], "op %d key %lu", op,
				     (unsigned long)j);
	}
	cr_assert_eq(objstore_verify(os), 0);
	objstore_detach(os);
	region_free(&r);
}

Test(table, probes_wrap_around_the_end)
{
	struct region r = region_new(1u << 20, 8);
	objstore *os = attach(&r, 0);
	prism_id ids[4];
	int n = 0;
	for (uint64_t k = 0; n < 4; k++) /* four ids whose home is the last slot */
		if (home_of(os, test_id(k)) == os->mask)
			ids[n++] = test_id(k);
	for (int i = 0; i < 4; i++)
		put(os, ids[i], 8, true);
	for (int i = 0; i < 4; i++)
		cr_assert(found(os, ids[i]));
	cr_assert_eq(objstore_delete(os, ids[0]), 0);
	cr_assert_eq(objstore_delete(os, ids[2]), 0);
	sweep(os);
	check_sweep_was_complete(os);
	cr_assert(found(os, ids[1]) && found(os, ids[3]));
	cr_assert(!found(os, ids[0]) && !found(os, ids[2]));
	cr_assert_eq(objstore_delete(os, ids[3]), 0);
	cr_assert_eq(objstore_delete(os, ids[1]), 0);
	sweep(os);
	cr_assert_eq(atomic_load(&os->hdr->tombstones), 0, "nothing covers them any more");
	cr_assert_eq(objstore_verify(os), 0);
	objstore_detach(os);
	region_free(&r);
}

static uint64_t count_state(const objstore *os, uint32_t state)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i <= os->mask; i++)
		n += atomic_load(&os->table[i].state) == state;
	return n;
}

Test(table, a_table_without_empty_slots_still_works_and_sweeps)
{
	/* Hide the tombstones from the create-time sweep until no slot is empty: probes
	 * then run the whole ring, and the sweep has no empty slot to start from. */
	struct region r = region_new(1u << 20, 8);
	objstore *os = attach(&r, 0);
	for (uint64_t k = 2000; count_state(os, OS_EMPTY) > 0; k++) {
		uint64_t h = home_of(os, test_id(k));
		if (atomic_load(&os->table[h].state) != OS_EMPTY)
			continue; /* an id landing on an empty slot makes it a tombstone */
		put(os, test_id(k), 8, true);
		cr_assert_eq(objstore_delete(os, test_id(k)), 0);
		atomic_store(&os->hdr->tombstones, 0);
	}
	for (int i = 0; i < 8; i++)
		put(os, test_id(1000 + (uint64_t)i), 8, true);
	atomic_store(&os->hdr->tombstones, 0);
	for (int i = 0; i < 8; i++)
		cr_assert(found(os, test_id(1000 + (uint64_t)i)));
	cr_assert_not(found(os, test_id(999)));
	atomic_store(&os->hdr->tombstones, count_state(os, OS_TOMB));
	sweep(os);
	check_sweep_was_complete(os);
	cr_assert_gt(count_state(os, OS_EMPTY), 0);
	for (int i = 0; i < 8; i++)
		cr_assert(found(os, test_id(1000 + (uint64_t)i)));
	cr_assert_eq(objstore_verify(os), 0);
	objstore_detach(os);
	region_free(&r);
}
