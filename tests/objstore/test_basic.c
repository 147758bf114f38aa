/* The object lifecycle through the public API: create, seal, get, release, delete, abort,
 * and every error a caller can provoke. */
#include <criterion/criterion.h>
#include <errno.h>

#include "helpers.h"

#define ARENA (1u << 20)

static struct region r;
static objstore *os;

static void setup(void)
{
	r = region_new(ARENA, 256);
	os = attach(&r, 0);
}

static void teardown(void)
{
	cr_assert_eq(objstore_verify(os), 0);
	objstore_detach(os);
	region_free(&r);
}

TestSuite(basic, .init = setup, .fini = teardown);

Test(basic, create_write_seal_get_round_trip)
{
	prism_id id = test_id(1);
	void *w = NULL;
	const void *g = NULL;
	size_t n = 0;
	cr_assert_eq(objstore_create(os, id, 1000, &w), 0);
	cr_assert_eq((uintptr_t)w % OBJSTORE_ALIGN, 0);
	fill_pattern(w, 1000, id);
	cr_assert_eq(objstore_seal(os, id), 0);
	cr_assert_eq(objstore_get(os, id, &g, &n), 0);
	cr_assert_eq(g, w, "zero-copy: the reader sees the creator's bytes");
	cr_assert_eq(n, 1000);
	cr_assert(check_pattern(g, n, id));
	cr_assert(objstore_contains(os, id));
	cr_assert_eq(objstore_release(os, id), 0); /* the get's pin */
	cr_assert_eq(objstore_release(os, id), 0); /* the creator's */
	cr_assert_eq(objstore_release(os, id), PRISM_E_RELEASED);
	cr_assert(objstore_contains(os, id), "released objects stay until evicted or deleted");
}

Test(basic, a_second_handle_in_another_slot_sees_the_same_objects)
{
	objstore *other = attach(&r, 7);
	prism_id id = test_id(2);
	const void *g;
	size_t n;
	put(os, id, 64, true);
	cr_assert_eq(objstore_get(other, id, &g, &n), 0);
	cr_assert(check_pattern(g, n, id));
	cr_assert_eq(objstore_release(os, id), PRISM_E_RELEASED, "slot 0 holds no pin now");
	cr_assert_eq(objstore_release(other, id), 0);
	objstore_detach(other);
}

Test(basic, duplicate_create_is_refused)
{
	prism_id id = test_id(3);
	void *w;
	cr_assert_eq(objstore_create(os, id, 10, &w), 0);
	cr_assert_eq(objstore_create(os, id, 10, &w), -EEXIST);
	cr_assert_eq(objstore_seal(os, id), 0);
	cr_assert_eq(objstore_create(os, id, 10, &w), -EEXIST);
	cr_assert_eq(objstore_release(os, id), 0);
}

Test(basic, get_before_seal_says_again)
{
	prism_id id = test_id(4);
	void *w;
	const void *g;
	size_t n;
	cr_assert_eq(objstore_get(os, id, &g, &n), -ENOENT);
	cr_assert_eq(objstore_create(os, id, 10, &w), 0);
	cr_assert_eq(objstore_get(os, id, &g, &n), PRISM_E_AGAIN);
	cr_assert_not(objstore_contains(os, id));
	cr_assert_eq(objstore_release(os, id), -EINVAL,
		     "a CREATED object is sealed or aborted");
	cr_assert_eq(objstore_delete(os, id), PRISM_E_AGAIN);
	cr_assert_eq(objstore_seal(os, id), 0);
	cr_assert_eq(objstore_seal(os, id), -EINVAL, "sealed twice");
	cr_assert_eq(objstore_get(os, id, &g, &n), 0);
	cr_assert_eq(objstore_release(os, id), 0);
	cr_assert_eq(objstore_release(os, id), 0);
}

static void round_trip(size_t size, uint64_t k)
{
	prism_id id = test_id(k);
	const void *g;
	size_t n;
	put(os, id, size, true);
	cr_assert_eq(objstore_get(os, id, &g, &n), 0);
	cr_assert_eq(n, size);
	cr_assert(check_pattern(g, n, id), "size %zu", size);
	cr_assert_eq(objstore_release(os, id), 0);
	cr_assert_eq(objstore_delete(os, id), 0);
}

Test(basic, sizes_zero_one_64k_and_the_whole_arena)
{
	struct objstore_stats st;
	round_trip(0, 10);
	round_trip(1, 11);
	round_trip(64 * 1024, 12);
	cr_assert_eq(objstore_get_stats(os, &st), 0);
	cr_assert_eq(st.capacity, ARENA - 16);
	cr_assert_eq(st.objects, 0);
	round_trip(st.capacity, 13);
	void *w;
	cr_assert_eq(objstore_create(os, test_id(14), st.capacity + 1, &w), PRISM_E_TOO_BIG);
	cr_assert_eq(objstore_create(os, test_id(14), SIZE_MAX, &w), PRISM_E_TOO_BIG);
}

Test(basic, abort_frees_and_only_the_creator_may_seal_or_abort)
{
	objstore *other = attach(&r, 1);
	prism_id id = test_id(20);
	void *w;
	struct objstore_stats st;
	cr_assert_eq(objstore_create(os, id, 5000, &w), 0);
	cr_assert_eq(objstore_seal(other, id), -EPERM);
	cr_assert_eq(objstore_abort(other, id), -EPERM);
	cr_assert_eq(objstore_abort(os, id), 0);
	cr_assert_eq(objstore_abort(os, id), -ENOENT);
	cr_assert_eq(objstore_get_stats(os, &st), 0);
	cr_assert_eq(st.objects, 0);
	cr_assert_eq(st.used_bytes, 0);
	put(os, id, 10, false);
	cr_assert_eq(objstore_abort(os, id), -EINVAL,
		     "sealed objects are deleted, not aborted");
	cr_assert_eq(objstore_release(os, id), 0);
	objstore_detach(other);
}

Test(basic, delete_of_a_pinned_object_waits_for_the_last_release)
{
	objstore *reader = attach(&r, 3);
	prism_id id = test_id(30);
	const void *g;
	size_t n;
	struct objstore_stats st;
	put(os, id, 300, true);
	cr_assert_eq(objstore_get(reader, id, &g, &n), 0);
	cr_assert_eq(objstore_get(reader, id, &g, &n), 0);
	cr_assert_eq(objstore_delete(os, id), 0);
	cr_assert_eq(objstore_get(os, id, &g, &n), -ENOENT, "deleted: invisible at once");
	cr_assert_not(objstore_contains(os, id));
	cr_assert_eq(objstore_delete(os, id), -ENOENT);
	void *w;
	cr_assert_eq(objstore_create(os, id, 10, &w), -EEXIST, "its bytes are still pinned");
	cr_assert(check_pattern(g, n, id), "pinned bytes stay intact after delete");
	cr_assert_eq(objstore_get_stats(os, &st), 0);
	cr_assert_eq(st.objects, 1);
	cr_assert_eq(objstore_release(reader, id), 0);
	cr_assert_eq(objstore_release(reader, id), 0);
	cr_assert_eq(objstore_get_stats(os, &st), 0);
	cr_assert_eq(st.objects, 0, "the last release freed it");
	cr_assert_eq(objstore_release(reader, id), -ENOENT);
	put(os, id, 10, true); /* the id is free again */
	objstore_detach(reader);
}

Test(basic, stats_count_bytes_and_objects)
{
	struct objstore_stats st;
	put(os, test_id(40), 100, true);
	put(os, test_id(41), 1, true);
	cr_assert_eq(objstore_get_stats(os, &st), 0);
	cr_assert_eq(st.objects, 2);
	cr_assert_eq(st.data_bytes, 101);
	cr_assert_eq(st.used_bytes, 128 + 64);
	cr_assert_eq(st.max_objects, 256);
	cr_assert_eq(st.arena_bytes, ARENA);
	cr_assert_eq(st.evictions, 0);
	cr_assert_eq(objstore_get_stats(os, NULL), -EINVAL);
	cr_assert_eq(objstore_get_stats(NULL, &st), -EINVAL);
}

Test(basic, a_client_pins_one_object_at_most_255_times)
{
	prism_id id = test_id(50);
	const void *g;
	size_t n;
	put(os, id, 8, true);
	for (int i = 0; i < OBJSTORE_MAX_PINS; i++)
		cr_assert_eq(objstore_get(os, id, &g, &n), 0);
	cr_assert_eq(objstore_get(os, id, &g, &n), PRISM_E_RANGE);
	objstore *other = attach(&r, 8); /* the neighbouring byte of the same pin word */
	cr_assert_eq(objstore_get(other, id, &g, &n), 0);
	cr_assert_eq(objstore_release(other, id), 0);
	for (int i = 0; i < OBJSTORE_MAX_PINS; i++)
		cr_assert_eq(objstore_release(os, id), 0);
	cr_assert_eq(objstore_release(os, id), PRISM_E_RELEASED);
	objstore_detach(other);
}

Test(basic, bad_arguments_are_refused_without_crashing)
{
	prism_id nil = {{0}}, id = test_id(60);
	void *w;
	const void *g;
	size_t n;
	cr_assert_eq(objstore_create(NULL, id, 1, &w), -EINVAL);
	cr_assert_eq(objstore_create(os, nil, 1, &w), -EINVAL);
	cr_assert_eq(objstore_create(os, id, 1, NULL), -EINVAL);
	cr_assert_eq(objstore_seal(NULL, id), -EINVAL);
	cr_assert_eq(objstore_seal(os, nil), -EINVAL);
	cr_assert_eq(objstore_seal(os, id), -ENOENT);
	cr_assert_eq(objstore_abort(NULL, id), -EINVAL);
	cr_assert_eq(objstore_get(NULL, id, &g, &n), -EINVAL);
	cr_assert_eq(objstore_get(os, id, NULL, &n), -EINVAL);
	cr_assert_eq(objstore_get(os, id, &g, NULL), -EINVAL);
	cr_assert_eq(objstore_get(os, nil, &g, &n), -EINVAL);
	cr_assert_eq(objstore_release(NULL, id), -EINVAL);
	cr_assert_eq(objstore_release(os, id), -ENOENT);
	cr_assert_eq(objstore_delete(NULL, id), -EINVAL);
	cr_assert_eq(objstore_delete(os, id), -ENOENT);
	cr_assert_not(objstore_contains(NULL, id));
	cr_assert_not(objstore_contains(os, nil));
	cr_assert_eq(objstore_release_client(os, OBJSTORE_MAX_CLIENTS), -EINVAL);
	cr_assert_eq(objstore_release_client(NULL, 0), -EINVAL);
	cr_assert_eq(objstore_verify(NULL), -EINVAL);
	objstore_detach(NULL);
}

Test(basic, region_size_and_format_check_their_inputs)
{
	cr_assert_eq(objstore_region_size(ARENA, 0), 0);
	cr_assert_eq(objstore_region_size(64, 10), 0, "an arena of less than two blocks");
	cr_assert_eq(objstore_region_size(ARENA, (1u << 30) + 1), 0);
	cr_assert_eq(objstore_region_size(SIZE_MAX, 10), 0);
	size_t need = objstore_region_size(ARENA, 10);
	cr_assert_gt(need, ARENA);
	cr_assert_eq(objstore_format(r.mem, need - 1, ARENA, 10), -EINVAL);
	cr_assert_eq(objstore_format(NULL, need, ARENA, 10), -EINVAL);
	cr_assert_eq(objstore_format((char *)r.mem + 8, need, ARENA, 10), -EINVAL,
		     "misaligned");
}

Test(basic, many_objects_fill_the_table_to_max_objects)
{
	/* max_objects live at once: the 257th create evicts the least recently used. */
	for (uint64_t k = 0; k < 256; k++)
		put(os, test_id(1000 + k), 8, true);
	struct objstore_stats st;
	cr_assert_eq(objstore_get_stats(os, &st), 0);
	cr_assert_eq(st.objects, 256);
	put(os, test_id(2000), 8, true);
	cr_assert_eq(objstore_get_stats(os, &st), 0);
	cr_assert_eq(st.objects, 256);
	cr_assert_eq(st.evictions, 1);
	cr_assert_not(objstore_contains(os, test_id(1000)), "the oldest went");
	for (uint64_t k = 1; k < 256; k++)
		cr_assert(objstore_contains(os, test_id(1000 + k)));
}

Test(basic, deleting_and_recreating_many_times_keeps_the_table_healthy)
{
	/* Tombstones pile up and get swept; every lookup still finds what it should. */
	for (uint64_t round = 0; round < 40; round++) {
		for (uint64_t k = 0; k < 100; k++)
			put(os, test_id(round * 1000 + k), 16, true);
		for (uint64_t k = 0; k < 100; k += 2)
			cr_assert_eq(objstore_delete(os, test_id(round * 1000 + k)), 0);
		for (uint64_t k = 0; k < 100; k++)
			cr_assert_eq(objstore_contains(os, test_id(round * 1000 + k)),
				     k % 2 == 1);
		for (uint64_t k = 1; k < 100; k += 2)
			cr_assert_eq(objstore_delete(os, test_id(round * 1000 + k)), 0);
		cr_assert_eq(objstore_verify(os), 0);
	}
}

Test(basic, give_hands_a_pin_to_another_slot_without_a_gap)
{
	objstore *owner = attach(&r, 9);
	prism_id id = test_id(40);
	void *w;
	cr_assert_eq(objstore_create(os, id, 256, &w), 0);
	fill_pattern(w, 256, id);
	cr_assert_eq(objstore_give(os, id, 9), -EINVAL, "not sealed yet");
	cr_assert_eq(objstore_seal(os, id), 0);
	cr_assert_eq(objstore_give(os, id, 9), 0);
	cr_assert_eq(objstore_release(os, id), PRISM_E_RELEASED, "the creator's pin moved");
	cr_assert_eq(objstore_give(os, id, 9), PRISM_E_RELEASED, "nothing left to give");
	/* The owner's pin keeps it through a crash of the creator's slot and through
	 * deletion, until the owner lets go. */
	cr_assert_eq(objstore_release_client(os, 0), 0);
	cr_assert_eq(objstore_delete(os, id), 0);
	const void *g;
	size_t n;
	cr_assert_eq(objstore_get(owner, id, &g, &n), -ENOENT, "deleted: no new readers");
	cr_assert(check_pattern(w, 256, id), "but the pinned bytes stay intact");
	cr_assert_eq(objstore_release(owner, id), 0);
	cr_assert_not(objstore_contains(os, id), "freed with the last pin");
	cr_assert_eq(objstore_give(os, test_id(41), 64), -EINVAL, "slot out of range");
	objstore_detach(owner);
}
