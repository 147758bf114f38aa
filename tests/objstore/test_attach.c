/* Attach: fault injection, and regions whose header or entries another process
 * corrupted.  Nothing may crash; attach refuses a bad header, the lock-free paths refuse
 * bad entries, and repair drops them. */
#include <criterion/criterion.h>
#include <errno.h>

#include "../../objstore/src/objstore_int.h"
#include "base/alloc.h"
#include "helpers.h"

#define ARENA (64u * 1024u)

Test(attach, fault_injection_loop_fails_cleanly_then_succeeds)
{
	struct region r = region_new(ARENA, 32);
	objstore *os = NULL;
	long n;
	for (n = 1; n < 100; n++) {
		prism_fault_arm(n);
		os = NULL;
		int rc = objstore_attach(r.mem, r.size, 1, &os);
		bool fired = prism_fault_fired();
		prism_fault_arm(0);
		if (!fired) {
			cr_assert_eq(rc, 0);
			break;
		}
		cr_assert_eq(rc, -ENOMEM, "n = %ld", n);
		cr_assert_null(os, "no handle on failure");
	}
	cr_assert_lt(n, 100);
	put(os, test_id(1), 10, true);
	objstore_detach(os);
	region_free(&r);
}

Test(attach, bad_arguments)
{
	struct region r = region_new(ARENA, 32);
	objstore *os = NULL;
	cr_assert_eq(objstore_attach(NULL, r.size, 0, &os), -EINVAL);
	cr_assert_eq(objstore_attach(r.mem, r.size, 0, NULL), -EINVAL);
	cr_assert_eq(objstore_attach(r.mem, r.size, OBJSTORE_MAX_CLIENTS, &os), -EINVAL);
	cr_assert_eq(objstore_attach((char *)r.mem + 1, r.size - 64, 0, &os), -EINVAL);
	cr_assert_eq(objstore_attach(r.mem, 100, 0, &os), -EINVAL);
	cr_assert_eq(objstore_attach(r.mem, r.size - 1, 0, &os), PRISM_E_CORRUPT,
		     "a region smaller than the one formatted");
	cr_assert_null(os);
	region_free(&r);
}

Test(attach, unformatted_region_is_not_a_store)
{
	struct region r = region_new(ARENA, 32);
	objstore *os = NULL;
	memset(r.mem, 0, 4096);
	cr_assert_eq(objstore_attach(r.mem, r.size, 0, &os), PRISM_E_BAD_MAGIC);
	region_free(&r);
}

/* Change one geometry field to `v`, optionally fixing the checksum so that only the
 * field-by-field layout check can catch it. */
static int attach_with_field(struct region *r, size_t field, uint64_t v, bool fix_sum)
{
	struct os_hdr *h = r->mem;
	struct os_geom saved = h->g;
	uint64_t *f = (uint64_t *)&h->g + field;
	*f = v;
	if (fix_sum) {
		const uint8_t *p = (const uint8_t *)&h->g;
		uint64_t s = 0xcbf29ce484222325ull;
		for (size_t i = 0; i < offsetof(struct os_geom, sum); i++)
			s = (s ^ p[i]) * 0x100000001b3ull;
		h->g.sum = s;
	}
	objstore *os = NULL;
	int rc = objstore_attach(r->mem, r->size, 0, &os);
	objstore_detach(os);
	h->g = saved;
	return rc;
}

Test(attach, every_geometry_field_is_checked)
{
	struct region r = region_new(ARENA, 32);
	const size_t nfields = offsetof(struct os_geom, sum) / sizeof(uint64_t);
	const uint64_t values[] = {0, 1, 63, 64, 4096, 1ull << 40, UINT64_MAX, UINT64_MAX - 63};
	for (size_t f = 0; f < nfields; f++) {
		uint64_t orig = ((uint64_t *)&((struct os_hdr *)r.mem)->g)[f];
		for (size_t i = 0; i < PRISM_ARRAY_LEN(values); i++) {
			if (values[i] == orig)
				continue;
			for (int fix = 0; fix < 2; fix++) {
				int rc = attach_with_field(&r, f, values[i], fix);
				cr_assert_neq(rc, 0, "field %zu = %lu accepted", f,
					      (unsigned long)values[i]);
			}
		}
		cr_assert_neq(attach_with_field(&r, f, orig + 64, true), 0, "field %zu + 64",
			      f);
	}
	/* The same bits with the wrong magic or version have their own codes. */
	cr_assert_eq(attach_with_field(&r, 0, OS_MAGIC + 1, true), PRISM_E_BAD_MAGIC);
	cr_assert_eq(attach_with_field(&r, 1, OS_VERSION + 1, true), PRISM_E_BAD_VERSION);
	objstore *os = attach(&r, 0);
	cr_assert_eq(objstore_verify(os), 0, "the header was restored");
	objstore_detach(os);
	region_free(&r);
}

Test(attach, every_single_bit_flip_in_the_geometry_is_refused)
{
	struct region r = region_new(ARENA, 32);
	uint8_t *g = (uint8_t *)&((struct os_hdr *)r.mem)->g;
	for (size_t byte = 0; byte < sizeof(struct os_geom); byte++) {
		for (int bit = 0; bit < 8; bit++) {
			objstore *os = NULL;
			g[byte] ^= (uint8_t)(1u << bit);
			int rc = objstore_attach(r.mem, r.size, 0, &os);
			g[byte] ^= (uint8_t)(1u << bit);
			cr_assert_neq(rc, 0, "byte %zu bit %d", byte, bit);
			cr_assert_null(os);
		}
	}
	region_free(&r);
}

/* A peer scribbles over an entry: gets must not follow a wild offset, and the next
 * repair drops the entry instead of handing its range to the allocator. */
Test(attach, corrupt_entries_are_refused_and_dropped_by_repair)
{
	struct region r = region_new(ARENA, 32);
	objstore *os = attach(&r, 0);
	const void *g;
	size_t n;
	for (uint64_t k = 0; k < 4; k++)
		put(os, test_id(k), 100, true);
	uint64_t idx;
	struct os_snap s;
	cr_assert_eq(objstore__probe(os, objstore__id_lo(test_id(1)),
				     objstore__id_hi(test_id(1)), &idx, &s),
		     0);
	atomic_store(&os->table[idx].off, (uint64_t)r.size + 4096);
	cr_assert_eq(objstore_get(os, test_id(1), &g, &n), PRISM_E_CORRUPT);
	atomic_store(&os->table[idx].off, s.off);
	atomic_store(&os->table[idx].size, UINT64_MAX / 2);
	cr_assert_eq(objstore_get(os, test_id(1), &g, &n), PRISM_E_CORRUPT);

	cr_assert_eq(objstore__probe(os, objstore__id_lo(test_id(2)),
				     objstore__id_hi(test_id(2)), &idx, &s),
		     0);
	atomic_store(&os->table[idx].state, 77u);
	cr_assert_eq(objstore_get(os, test_id(2), &g, &n), -ENOENT);
	cr_assert_eq(objstore_verify(os), PRISM_E_CORRUPT);

	atomic_store(&os->hdr->needs_repair, 1); /* what a detected corruption sets */
	put(os, test_id(10), 100, true);
	cr_assert_eq(objstore_verify(os), 0);
	for (uint64_t k = 0; k < 4; k += 3) {
		cr_assert_eq(objstore_get(os, test_id(k), &g, &n), 0);
		cr_assert(check_pattern(g, n, test_id(k)));
		cr_assert_eq(objstore_release(os, test_id(k)), 0);
	}
	cr_assert_not(objstore_contains(os, test_id(1)));
	cr_assert_not(objstore_contains(os, test_id(2)));
	objstore_detach(os);
	region_free(&r);
}

Test(attach, overlapping_entries_are_dropped_by_repair)
{
	struct region r = region_new(ARENA, 32);
	objstore *os = attach(&r, 0);
	uint64_t i0, i1;
	struct os_snap s0, s1;
	put(os, test_id(0), 1000, true);
	put(os, test_id(1), 1000, true);
	cr_assert_eq(objstore__probe(os, objstore__id_lo(test_id(0)),
				     objstore__id_hi(test_id(0)), &i0, &s0),
		     0);
	cr_assert_eq(objstore__probe(os, objstore__id_lo(test_id(1)),
				     objstore__id_hi(test_id(1)), &i1, &s1),
		     0);
	atomic_store(&os->table[i1].off, s0.off + 64); /* inside object 0 */
	atomic_store(&os->hdr->needs_repair, 1);
	put(os, test_id(2), 10, true);
	cr_assert_eq(objstore_verify(os), 0);
	cr_assert_eq(objstore_contains(os, test_id(0)) + objstore_contains(os, test_id(1)), 1);
	objstore_detach(os);
	region_free(&r);
}
