/* Eviction: LRU order, gets refresh, pinned / CREATED / deleted-pinned objects stay,
 * PRISM_E_STORE_FULL when nothing is evictable. */
#include <criterion/criterion.h>
#include <errno.h>

#include "base/clock.h"
#include "helpers.h"

/* 16 KiB of arena: sixteen 1000-byte objects (1,024-byte blocks) fill it exactly. */
#define ARENA (16u * 1024u)
#define OBJ 1000u
#define FITS (ARENA / 1024u)

static struct region r;
static objstore *os;

static void setup(void)
{
	r = region_new(ARENA, 64);
	os = attach(&r, 0);
}

static void teardown(void)
{
	cr_assert_eq(objstore_verify(os), 0);
	objstore_detach(os);
	region_free(&r);
}

TestSuite(evict, .init = setup, .fini = teardown);

static uint64_t evictions(void)
{
	struct objstore_stats st;
	cr_assert_eq(objstore_get_stats(os, &st), 0);
	return st.evictions;
}

Test(evict, the_arena_holds_exactly_what_the_test_expects)
{
	for (uint64_t k = 0; k < FITS; k++)
		put(os, test_id(k), OBJ, true);
	cr_assert_eq(evictions(), 0);
	put(os, test_id(FITS), OBJ, true);
	cr_assert_eq(evictions(), 1);
}

Test(evict, least_recently_sealed_goes_first)
{
	for (uint64_t k = 0; k < FITS; k++)
		put(os, test_id(k), OBJ, true);
	for (uint64_t k = 0; k < 5; k++) {
		put(os, test_id(100 + k), OBJ, true);
		cr_assert_not(objstore_contains(os, test_id(k)), "object %lu",
			      (unsigned long)k);
		for (uint64_t j = k + 1; j < FITS; j++)
			cr_assert(objstore_contains(os, test_id(j)));
	}
	cr_assert_eq(evictions(), 5);
}

Test(evict, a_get_makes_an_object_recent)
{
	const void *g;
	size_t n;
	for (uint64_t k = 0; k < FITS; k++)
		put(os, test_id(k), OBJ, true);
	/* Touch 0 and 2: the order becomes 1, 3, 4, ..., 15, then {0, 2}. */
	cr_assert_eq(objstore_get(os, test_id(0), &g, &n), 0);
	cr_assert_eq(objstore_release(os, test_id(0)), 0);
	cr_assert_eq(objstore_get(os, test_id(2), &g, &n), 0);
	cr_assert_eq(objstore_release(os, test_id(2)), 0);
	put(os, test_id(100), OBJ, true);
	cr_assert(objstore_contains(os, test_id(0)));
	cr_assert_not(objstore_contains(os, test_id(1)));
	put(os, test_id(101), OBJ, true);
	cr_assert(objstore_contains(os, test_id(2)));
	cr_assert_not(objstore_contains(os, test_id(3)));
	for (uint64_t k = 4; k < FITS; k++)
		put(os, test_id(200 + k), OBJ, true);
	/* All of 4..15 went before 0 and 2, which were touched after they were sealed. */
	cr_assert(objstore_contains(os, test_id(0)));
	cr_assert(objstore_contains(os, test_id(2)));
	put(os, test_id(300), OBJ, true);
	put(os, test_id(301), OBJ, true);
	cr_assert_not(objstore_contains(os, test_id(0)));
	cr_assert_not(objstore_contains(os, test_id(2)));
}

Test(evict, a_large_create_evicts_several_and_data_of_survivors_is_intact)
{
	const void *g;
	size_t n;
	for (uint64_t k = 0; k < FITS; k++)
		put(os, test_id(k), OBJ, true);
	put(os, test_id(50), 4 * 1024 - 16, true); /* four blocks' worth */
	cr_assert_eq(evictions(), 4);
	for (uint64_t k = 4; k < FITS; k++) {
		cr_assert_eq(objstore_get(os, test_id(k), &g, &n), 0);
		cr_assert(check_pattern(g, n, test_id(k)));
		cr_assert_eq(objstore_release(os, test_id(k)), 0);
	}
}

Test(evict, store_full_when_everything_is_pinned)
{
	void *w;
	const void *g;
	size_t n;
	for (uint64_t k = 0; k < FITS; k++)
		put(os, test_id(k), OBJ, k % 2 == 0); /* odd ones keep the creator's pin */
	for (uint64_t k = 0; k < FITS; k += 2)
		cr_assert_eq(objstore_get(os, test_id(k), &g, &n),
			     0); /* even ones: a reader's */
	cr_assert_eq(objstore_create(os, test_id(99), OBJ, &w), PRISM_E_STORE_FULL);
	cr_assert_eq(objstore_create(os, test_id(99), 0, &w), PRISM_E_STORE_FULL);
	cr_assert_eq(evictions(), 0);
	for (uint64_t k = 0; k < FITS; k++)
		cr_assert(objstore_contains(os, test_id(k)));
	/* One release makes exactly one object evictable. */
	cr_assert_eq(objstore_release(os, test_id(6)), 0);
	put(os, test_id(99), OBJ, true);
	cr_assert_not(objstore_contains(os, test_id(6)));
	for (uint64_t k = 0; k < FITS; k++)
		if (k != 6)
			cr_assert_eq(objstore_release(os, test_id(k)), 0);
}

Test(evict, created_objects_are_never_evicted)
{
	void *w[FITS];
	for (uint64_t k = 0; k < FITS; k++)
		cr_assert_eq(objstore_create(os, test_id(k), OBJ, &w[k]), 0);
	void *x;
	cr_assert_eq(objstore_create(os, test_id(99), OBJ, &x), PRISM_E_STORE_FULL);
	for (uint64_t k = 0; k < FITS; k++)
		cr_assert_eq(objstore_abort(os, test_id(k)), 0);
	cr_assert_eq(objstore_create(os, test_id(99), ARENA - 16, &x), 0, "all space is back");
	cr_assert_eq(objstore_abort(os, test_id(99)), 0);
}

Test(evict, fragmentation_by_pinned_objects_can_make_a_large_create_fail)
{
	/* Every other block pinned: half the arena is evictable, but no two free blocks
	 * touch, so a two-block object cannot fit: STORE_FULL, after evicting all it could. */
	void *w;
	for (uint64_t k = 0; k < FITS; k++)
		put(os, test_id(k), OBJ, k % 2 == 1);
	cr_assert_eq(objstore_create(os, test_id(99), 2 * 1024 - 16, &w), PRISM_E_STORE_FULL);
	cr_assert_eq(evictions(), FITS / 2);
	put(os, test_id(100), OBJ, true); /* one block still fits */
	for (uint64_t k = 0; k < FITS; k++)
		if (k % 2 == 0)
			cr_assert_eq(objstore_release(os, test_id(k)), 0);
}

Test(evict, deleted_but_pinned_objects_are_not_evicted_nor_double_freed)
{
	const void *g;
	size_t n;
	for (uint64_t k = 0; k < FITS; k++)
		put(os, test_id(k), OBJ, true);
	cr_assert_eq(objstore_get(os, test_id(0), &g, &n), 0);
	cr_assert_eq(objstore_delete(os, test_id(0)), 0);
	for (uint64_t k = 0; k < FITS; k++)
		put(os, test_id(100 + k), OBJ, true);
	cr_assert(check_pattern(g, n, test_id(0)), "pinned bytes survive the eviction storm");
	cr_assert_eq(objstore_release(os, test_id(0)), 0);
	cr_assert_eq(objstore_verify(os), 0);
	put(os, test_id(500), OBJ, true);
}

Test(evict, max_objects_reached_with_all_pinned_is_store_full)
{
	struct region r2 = region_new(1u << 20, 4);
	objstore *o2 = attach(&r2, 0);
	void *w;
	for (uint64_t k = 0; k < 4; k++)
		put(o2, test_id(k), 8, false);
	cr_assert_eq(objstore_create(o2, test_id(9), 8, &w), PRISM_E_STORE_FULL);
	cr_assert_eq(objstore_release(o2, test_id(1)), 0);
	cr_assert_eq(objstore_create(o2, test_id(9), 8, &w), 0);
	cr_assert_not(objstore_contains(o2, test_id(1)));
	cr_assert_eq(objstore_abort(o2, test_id(9)), 0);
	cr_assert_eq(objstore_verify(o2), 0);
	objstore_detach(o2);
	region_free(&r2);
}

Test(evict, a_table_larger_than_the_scan_window_samples_and_still_reports_full)
{
	/* 4,096 objects: an 8,192-entry table, eight times the eviction window. */
	struct region r2 = region_new(4096u * 64u, 4096);
	objstore *o2 = attach(&r2, 0);
	struct objstore_stats st;
	void *w;
	for (uint64_t k = 0; k < 4096; k++)
		put(o2, test_id(k), 8, true);
	for (uint64_t k = 4096; k < 6000; k++)
		put(o2, test_id(k), 8, true);
	cr_assert_eq(objstore_get_stats(o2, &st), 0);
	cr_assert_eq(st.evictions, 6000 - 4096);
	/* Pin everything that is left: the next create scans the whole ring, finds nothing. */
	uint64_t pinned = 0;
	for (uint64_t k = 0; k < 6000; k++) {
		const void *g;
		size_t n;
		if (objstore_get(o2, test_id(k), &g, &n) == 0)
			pinned++;
	}
	cr_assert_eq(pinned, 4096);
	cr_assert_eq(objstore_create(o2, test_id(9999), 8, &w), PRISM_E_STORE_FULL);
	cr_assert_eq(objstore_release(o2, test_id(5999)), 0);
	cr_assert_eq(objstore_create(o2, test_id(9999), 8, &w), 0, "the one unpinned object");
	cr_assert_not(objstore_contains(o2, test_id(5999)));
	cr_assert_eq(objstore_abort(o2, test_id(9999)), 0);
	cr_assert_eq(objstore_verify(o2), 0);
	objstore_detach(o2);
	region_free(&r2);
}

Test(evict, a_full_store_of_pinned_objects_answers_at_once)
{
	/* Fill the table with pinned objects: every further create must fail fast with
	 * PRISM_E_STORE_FULL, without scanning the table each time (it did, and 100,000
	 * failing puts took minutes); once one object is unpinned, it is evicted at once. */
	struct region big = region_new(64u << 20, 4096);
	objstore *s = attach(&big, 0);
	uint32_t n = 0;
	void *w;
	while (objstore_create(s, test_id(100000 + n), 8, &w) == 0) {
		cr_assert_eq(objstore_seal(s, test_id(100000 + n)), 0);
		n++;
	}
	cr_assert_eq(n, 4096, "the table holds max_objects");
	uint64_t t0 = prism_now_ns();
	for (int i = 0; i < 100000; i++)
		cr_assert_eq(objstore_create(s, test_id(900000 + i), 8, &w),
			     PRISM_E_STORE_FULL);
	double per = (double)(prism_now_ns() - t0) / 100000.0;
	cr_log_info("a refused create costs %.0f ns with a full table", per);
	cr_assert_eq(objstore_release(s, test_id(100000 + 7)), 0);
	cr_assert_eq(objstore_create(s, test_id(5), 8, &w), 0, "the unpinned one makes room");
	cr_assert_not(objstore_contains(s, test_id(100000 + 7)));
	objstore_detach(s);
	region_free(&big);
}
