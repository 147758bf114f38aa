/* The TLSF allocator on its own: alignment, splitting and merging, a random workload
 * against a reference model, rebuild, and corrupt input. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../objstore/src/tlsf.h"
#include "base/alloc.h"
#include "base/error.h"
#include "helpers.h"

#define SPAN (1u << 20)
/* base: ctl at 0, blocks from 48 + 16 KiB so the headers sit at 48 mod 64. */
#define LO (16384u + 48u)

struct arena {
	uint8_t *base;
	struct tlsf t;
};

static struct arena arena_new(uint64_t span)
{
	struct arena a;
	a.base = prism_aligned_alloc(64, LO + span + 64);
	cr_assert_not_null(a.base);
	cr_assert_leq(sizeof(struct tlsf_ctl), 16384);
	objstore__tlsf_view(&a.t, a.base, 0, LO, LO + span);
	objstore__tlsf_format(&a.t);
	return a;
}

static void arena_free(struct arena *a)
{
	prism_free(a->base);
}

Test(tlsf, empty_span_is_one_block_of_full_capacity)
{
	struct arena a = arena_new(SPAN);
	uint64_t off, off2;
	cr_assert_eq(objstore__tlsf_check(&a.t), 0);
	cr_assert_eq(a.t.ctl->free_blocks, 1);
	cr_assert_eq(objstore__tlsf_capacity(&a.t), SPAN - TLSF_HDR);
	cr_assert_eq(objstore__tlsf_alloc(&a.t, SPAN - TLSF_HDR + 1, &off), -ENOSPC);
	cr_assert_eq(objstore__tlsf_alloc(&a.t, SPAN - TLSF_HDR, &off), 0);
	cr_assert_eq(objstore__tlsf_alloc(&a.t, 0, &off2), -ENOSPC);
	cr_assert_eq(objstore__tlsf_check(&a.t), 0);
	cr_assert_eq(objstore__tlsf_free(&a.t, off), 0);
	cr_assert_eq(objstore__tlsf_check(&a.t), 0);
	cr_assert_eq(a.t.ctl->free_bytes, SPAN);
	arena_free(&a);
}

Test(tlsf, data_is_64_byte_aligned_and_blocks_are_minimal)
{
	struct arena a = arena_new(SPAN);
	const uint64_t sizes[] = {0, 1, 47, 48, 49, 64, 100, 2047, 2048, 4096, 65536, 100000};
	uint64_t offs[PRISM_ARRAY_LEN(sizes)];
	for (size_t i = 0; i < PRISM_ARRAY_LEN(sizes); i++) {
		cr_assert_eq(objstore__tlsf_alloc(&a.t, sizes[i], &offs[i]), 0);
		cr_assert_eq(offs[i] % 64, 0, "size %lu", (unsigned long)sizes[i]);
		memset(a.base + offs[i], 0xa5, sizes[i]);
	}
	cr_assert_eq(objstore__tlsf_block_size(0), 64);
	cr_assert_eq(objstore__tlsf_block_size(48), 64);
	cr_assert_eq(objstore__tlsf_block_size(49), 128);
	/* Consecutive allocations from one free block are laid end to end. */
	cr_assert_eq(offs[1] - offs[0], 64);
	cr_assert_eq(objstore__tlsf_check(&a.t), 0);
	for (size_t i = 0; i < PRISM_ARRAY_LEN(sizes); i++)
		cr_assert_eq(objstore__tlsf_free(&a.t, offs[i]), 0);
	cr_assert_eq(objstore__tlsf_check(&a.t), 0);
	cr_assert_eq(a.t.ctl->free_blocks, 1);
	arena_free(&a);
}

Test(tlsf, freed_neighbours_merge_in_any_order)
{
	struct arena a = arena_new(SPAN);
	uint64_t o[5];
	for (int i = 0; i < 5; i++)
		cr_assert_eq(objstore__tlsf_alloc(&a.t, 1000, &o[i]), 0);
	const int order[] = {1, 3, 2, 0, 4};
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(objstore__tlsf_free(&a.t, o[order[i]]), 0);
		cr_assert_eq(objstore__tlsf_check(&a.t), 0);
	}
	cr_assert_eq(a.t.ctl->free_blocks, 1);
	cr_assert_eq(a.t.ctl->used_blocks, 0);
	arena_free(&a);
}

Test(tlsf, exact_fit_is_found_when_the_rounded_class_is_empty)
{
	/* Above 4 KiB a class spans 128 bytes or more, so good fit rounds a request up past
	 * a hole that would fit it exactly; the fallback must still find that hole, and the
	 * last free block when it is exactly the size asked for. */
	struct arena a = arena_new(SPAN);
	const uint64_t hole_size = 4096 + 64 - TLSF_HDR; /* a 4160-byte block */
	uint64_t x, hole, y, rest, got;
	cr_assert_eq(objstore__tlsf_alloc(&a.t, 100, &x), 0);
	cr_assert_eq(objstore__tlsf_alloc(&a.t, hole_size, &hole), 0);
	cr_assert_eq(objstore__tlsf_alloc(&a.t, 100, &y), 0);
	cr_assert_eq(objstore__tlsf_alloc(&a.t, a.t.ctl->free_bytes - TLSF_HDR, &rest), 0);
	cr_assert_eq(a.t.ctl->free_blocks, 0);
	cr_assert_eq(objstore__tlsf_free(&a.t, hole), 0);
	cr_assert_eq(objstore__tlsf_alloc(&a.t, hole_size + 1, &got), -ENOSPC);
	cr_assert_eq(objstore__tlsf_alloc(&a.t, hole_size, &got), 0);
	cr_assert_eq(got, hole);
	cr_assert_eq(objstore__tlsf_check(&a.t), 0);
	arena_free(&a);
}

struct live {
	uint64_t off, size, tag;
};

static int cmp_live(const void *a, const void *b)
{
	const struct live *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

static void check_no_overlap(struct live *l, size_t n)
{
	struct live *s = prism_malloc(n * sizeof(*s) + 1);
	memcpy(s, l, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_live);
	for (size_t i = 1; i < n; i++)
		cr_assert_geq(s[i].off, s[i - 1].off + objstore__tlsf_block_size(s[i - 1].size),
			      "blocks overlap");
	prism_free(s);
}

static void fill_tag(uint8_t *p, uint64_t n, uint64_t tag)
{
	for (uint64_t i = 0; i < n; i++)
		p[i] = (uint8_t)(tag + i * 31);
}

static bool tag_ok(const uint8_t *p, uint64_t n, uint64_t tag)
{
	for (uint64_t i = 0; i < n; i++)
		if (p[i] != (uint8_t)(tag + i * 31))
			return false;
	return true;
}

Test(tlsf, random_workload_matches_a_reference_model)
{
	struct arena a = arena_new(SPAN);
	struct live l[512];
	size_t n = 0;
	uint64_t seed = 0x1234567, fails = 0;
	for (int op = 0; op < 20000; op++) {
		bool do_alloc = n == 0 || (n < 512 && rnd(&seed) % 100 < 55);
		if (do_alloc) {
			uint64_t r = rnd(&seed), size = (r % 4 == 0) ? r % 40000 : r % 700;
			uint64_t off;
			int rc = objstore__tlsf_alloc(&a.t, size, &off);
			if (rc == -ENOSPC) {
				fails++;
				continue;
			}
			cr_assert_eq(rc, 0);
			cr_assert_eq(off % 64, 0);
			l[n] = (struct live){.off = off, .size = size, .tag = (uint64_t)op};
			fill_tag(a.base + off, size, l[n].tag);
			n++;
		} else {
			size_t i = rnd(&seed) % n;
			cr_assert(tag_ok(a.base + l[i].off, l[i].size, l[i].tag),
				  "bytes changed");
			cr_assert_eq(objstore__tlsf_free(&a.t, l[i].off), 0);
			l[i] = l[--n];
		}
		if (op % 64 == 0) {
			cr_assert_eq(objstore__tlsf_check(&a.t), 0, "op %d", op);
			check_no_overlap(l, n);
		}
	}
	while (n) {
		cr_assert(tag_ok(a.base + l[n - 1].off, l[n - 1].size, l[n - 1].tag));
		cr_assert_eq(objstore__tlsf_free(&a.t, l[--n].off), 0);
	}
	cr_assert_eq(objstore__tlsf_check(&a.t), 0);
	cr_assert_eq(a.t.ctl->free_blocks, 1, "everything merges back");
	cr_assert_gt(fails, 0, "the workload should fill the span at times");
	arena_free(&a);
}

Test(tlsf, bad_frees_are_refused)
{
	struct arena a = arena_new(SPAN);
	uint64_t off;
	cr_assert_eq(objstore__tlsf_alloc(&a.t, 100, &off), 0);
	cr_assert_eq(objstore__tlsf_free(&a.t, 0), -EINVAL);
	cr_assert_eq(objstore__tlsf_free(&a.t, off + 8), -EINVAL, "not a block start");
	cr_assert_eq(objstore__tlsf_free(&a.t, LO + SPAN + TLSF_HDR), -EINVAL, "past the end");
	cr_assert_eq(objstore__tlsf_free(&a.t, UINT64_MAX), -EINVAL);
	cr_assert_eq(objstore__tlsf_free(&a.t, off), 0);
	cr_assert_eq(objstore__tlsf_free(&a.t, off), -EINVAL, "double free");
	cr_assert_eq(objstore__tlsf_check(&a.t), 0);
	arena_free(&a);
}

Test(tlsf, broken_links_are_reported_not_followed)
{
	struct arena a = arena_new(SPAN);
	uint64_t o[3];
	for (int i = 0; i < 3; i++)
		cr_assert_eq(objstore__tlsf_alloc(&a.t, 1000, &o[i]), 0);
	cr_assert_eq(objstore__tlsf_free(&a.t, o[1]), 0);
	/* Scribble the free block's list link with an offset outside the span. */
	uint64_t *next_free = (uint64_t *)(a.base + o[1]);
	*next_free = 1ull << 50;
	cr_assert_eq(objstore__tlsf_alloc(&a.t, 1000, &o[1]), PRISM_E_CORRUPT);
	cr_assert_eq(objstore__tlsf_check(&a.t), PRISM_E_CORRUPT);
	arena_free(&a);
}

Test(tlsf, rebuild_from_used_blocks_restores_everything)
{
	struct arena a = arena_new(SPAN);
	struct live l[64];
	uint64_t seed = 99;
	for (int i = 0; i < 64; i++) {
		uint64_t size = rnd(&seed) % 5000;
		cr_assert_eq(objstore__tlsf_alloc(&a.t, size, &l[i].off), 0);
		l[i].size = size;
		l[i].tag = (uint64_t)i;
		fill_tag(a.base + l[i].off, size, l[i].tag);
	}
	for (int i = 0; i < 64; i += 3) /* free a third: holes to rebuild */
		cr_assert_eq(objstore__tlsf_free(&a.t, l[i].off), 0);
	memset(a.t.ctl, 0xff, sizeof(*a.t.ctl)); /* the lists are garbage now */
	struct tlsf_rebuild rb;
	objstore__tlsf_rebuild_begin(&a.t, &rb);
	for (int i = 0; i < 64; i++) /* allocation order is address order here */
		if (i % 3)
			cr_assert_eq(
				objstore__tlsf_rebuild_used(&a.t, &rb, l[i].off, l[i].size), 0);
	objstore__tlsf_rebuild_end(&a.t, &rb);
	cr_assert_eq(objstore__tlsf_check(&a.t), 0);
	for (int i = 0; i < 64; i++) {
		if (i % 3 == 0)
			continue;
		cr_assert(tag_ok(a.base + l[i].off, l[i].size, l[i].tag));
		cr_assert_eq(objstore__tlsf_free(&a.t, l[i].off), 0);
	}
	cr_assert_eq(a.t.ctl->free_blocks, 1);
	arena_free(&a);
}

Test(tlsf, rebuild_refuses_overlap_and_out_of_range)
{
	struct arena a = arena_new(SPAN);
	struct tlsf_rebuild rb;
	objstore__tlsf_rebuild_begin(&a.t, &rb);
	cr_assert_eq(objstore__tlsf_rebuild_used(&a.t, &rb, LO + TLSF_HDR + 128, 100), 0);
	cr_assert_eq(objstore__tlsf_rebuild_used(&a.t, &rb, LO + TLSF_HDR + 128, 10), -ERANGE);
	cr_assert_eq(objstore__tlsf_rebuild_used(&a.t, &rb, LO + TLSF_HDR + 192, 10), -ERANGE);
	cr_assert_eq(objstore__tlsf_rebuild_used(&a.t, &rb, LO + SPAN, 0), -ERANGE);
	cr_assert_eq(objstore__tlsf_rebuild_used(&a.t, &rb, LO + TLSF_HDR + 1024, SPAN),
		     -ERANGE);
	cr_assert_eq(objstore__tlsf_rebuild_used(&a.t, &rb, 3, 0), -ERANGE);
	objstore__tlsf_rebuild_end(&a.t, &rb);
	cr_assert_eq(objstore__tlsf_check(&a.t), 0);
	cr_assert_eq(a.t.ctl->used_blocks, 1);
	cr_assert_eq(a.t.ctl->free_blocks, 2);
	arena_free(&a);
}
