/* Refs inside results (issue 16, reference counting as Ray defines it): a result returned
 * with prism_return_with_refs() holds the refs it contains, so their values outlive the
 * task that made them and every ref of its own, and go when neither a ref nor a result
 * holding them is left (never before, and always after: a store that leaked them would
 * fill up below). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "prism.h"

#include "../common/pattern.h"

/* The i-th value of a box of seed s: sizes from a few bytes to past the inline limit. */
static size_t box_len(uint64_t s, unsigned i)
{
	static const size_t sizes[] = {3, 48, 49, 4000, 70000, 300000};
	return sizes[(s + i) % (sizeof(sizes) / sizeof(sizes[0]))];
}

static int pattern(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	uint64_t s, len;
	(void)nargs;
	memcpy(&s, args[0].data, 8);
	memcpy(&len, args[1].data, 8);
	uint8_t *b = malloc(len);
	if (!b)
		return -ENOMEM;
	fill(b, len, s);
	int rc = prism_return(ctx, 0, b, len);
	free(b);
	return rc;
}
PRISM_REMOTE_ARITY(pattern, 2);

/* box(seed, n): n values, half put here and half made by a child task, returned as the
 * array of their refs; every ref of this task is released before it returns. */
static int box(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	uint64_t s, n;
	(void)nargs;
	memcpy(&s, args[0].data, 8);
	memcpy(&n, args[1].data, 8);
	prism_ref refs[16] = {{{{0}}}};
	if (n == 0 || n > 16)
		return prism_fail(ctx, "1 to 16 values");
	for (unsigned i = 0; i < n; i++) {
		uint64_t seed = s * 100 + i, len = box_len(s, i);
		if (i % 2 == 0) {
			uint8_t *b = malloc(len);
			fill(b, len, seed);
			int rc = prism_put(b, len, &refs[i]);
			free(b);
			if (rc)
				return prism_fail(ctx, "put: %s", prism_strerror(rc));
		} else {
			prism_value a[2] = {prism_bytes(&seed, 8), prism_bytes(&len, 8)};
			int rc = prism_submit("pattern", a, 2, NULL, &refs[i]);
			if (rc)
				return prism_fail(ctx, "submit: %s", prism_strerror(rc));
		}
	}
	int rc = prism_return_with_refs(ctx, 0, refs, n * sizeof(prism_ref), refs, n);
	for (unsigned i = 0; i < n; i++)
		prism_ref_release(refs[i]);
	return rc ? prism_fail(ctx, "return_with_refs: %s (%s)", prism_strerror(rc),
			       prism_last_error())
		  : 0;
}
PRISM_REMOTE_ARITY(box, 2);

/* rebox(seed, n): gets a box from a child and returns the refs it holds in a box of its
 * own: refs received inside a result, passed on inside a result. */
static int rebox(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)nargs;
	prism_value a[2] = {prism_bytes(args[0].data, 8), prism_bytes(args[1].data, 8)};
	prism_ref inner;
	int rc = prism_submit("box", a, 2, NULL, &inner);
	const void *v;
	size_t len;
	if (rc == 0)
		rc = prism_get(inner, WAIT_NS, &v, &len);
	if (rc)
		return prism_fail(ctx, "child box: %s", prism_strerror(rc));
	prism_ref refs[16] = {{{{0}}}};
	if (len > sizeof(refs))
		return prism_fail(ctx, "a box of %zu bytes", len);
	memcpy(refs, v, len);
	rc = prism_return_with_refs(ctx, 0, refs, len, refs, len / sizeof(prism_ref));
	prism_ref_release(inner);
	return rc ? prism_fail(ctx, "return_with_refs: %s", prism_strerror(rc)) : 0;
}
PRISM_REMOTE_ARITY(rebox, 2);

static void init(unsigned workers)
{
	prism_opts o = {.num_workers = workers, .object_store_bytes = 64u << 20};
	cr_assert_eq(prism_init(&o), 0, "%s", prism_last_error());
}

static void expect_value(prism_ref r, uint64_t seed, size_t len)
{
	const void *v;
	size_t n;
	int rc = prism_get(r, WAIT_NS, &v, &n);
	cr_assert_eq(rc, 0, "get: %s %.*s", prism_strerror(rc),
		     rc == PRISM_E_TASK_FAILED ? (int)n : 0, (const char *)v);
	cr_assert_eq(n, len);
	uint8_t *want = malloc(len);
	fill(want, len, seed);
	cr_assert(memcmp(v, want, len) == 0, "value %llu differs", (unsigned long long)seed);
	free(want);
}

/* Submit fn(seed, n) and read its box: the refs inside, checked value by value. */
static prism_ref get_box(const char *fn, uint64_t s, uint64_t n, prism_ref *refs)
{
	prism_value a[2] = {prism_bytes(&s, 8), prism_bytes(&n, 8)};
	prism_ref b;
	cr_assert_eq(prism_submit(fn, a, 2, NULL, &b), 0);
	const void *v;
	size_t len;
	int rc = prism_get(b, WAIT_NS, &v, &len);
	cr_assert_eq(rc, 0, "%s: %s %.*s", fn, prism_strerror(rc),
		     rc == PRISM_E_TASK_FAILED ? (int)len : 0, (const char *)v);
	cr_assert_eq(len, n * sizeof(prism_ref));
	memcpy(refs, v, len);
	for (unsigned i = 0; i < n; i++)
		expect_value(refs[i], s * 100 + i, box_len(s, i));
	return b;
}

Test(contained, a_result_holds_the_refs_it_contains, .fini = prism_shutdown, .timeout = 300)
{
	init(2);
	prism_ref refs[6];
	prism_ref b = get_box("box", 7, 6, refs);
	/* Held by the box only: usable, not releasable on their own. */
	cr_assert_eq(prism_ref_release(refs[0]), PRISM_E_RELEASED);
	cr_assert(strstr(prism_last_error(), "prism_ref_retain"), "%s", prism_last_error());
	/* One kept beyond the box; an inner ref works as an argument like any other. */
	cr_assert_eq(prism_ref_retain(refs[4]), 0);
	prism_ref echo;
	prism_value e[2] = {prism_refval(refs[1]), prism_refval(refs[4])};
	cr_assert_eq(prism_submit("box_sizes", e, 2, NULL, &echo), 0);
	const void *v;
	size_t n;
	cr_assert_eq(prism_get(echo, WAIT_NS, &v, &n), 0);
	uint64_t sizes[2];
	memcpy(sizes, v, sizeof(sizes));
	cr_assert_eq(sizes[0], box_len(7, 1));
	cr_assert_eq(sizes[1], box_len(7, 4));
	prism_ref_release(echo);
	/* The box goes: what only it held goes with it, the retained one stays. */
	cr_assert_eq(prism_ref_release(b), 0);
	expect_value(refs[4], 704, box_len(7, 4));
	cr_assert_eq(prism_get(refs[0], 0, &v, &n), PRISM_E_RELEASED);
	cr_assert_eq(prism_get(refs[3], 0, &v, &n), PRISM_E_RELEASED);
	cr_assert_eq(prism_ref_release(refs[4]), 0);
	cr_assert_eq(prism_get(refs[4], 0, &v, &n), PRISM_E_RELEASED);
}

static int box_sizes(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	uint64_t sizes[2] = {args[0].len, nargs > 1 ? args[1].len : 0};
	return prism_return(ctx, 0, sizes, sizeof(sizes));
}
PRISM_REMOTE(box_sizes);

/* 100 boxes of 6 values (0.37 MB each, 37 MB in all, in a 64 MiB store), one after
 * another, then a 40 MiB value: had released boxes left their values behind, it would
 * not fit. */
Test(contained, values_go_with_the_last_holder, .fini = prism_shutdown, .timeout = 300)
{
	init(2);
	for (uint64_t s = 0; s < 100; s++) {
		prism_ref refs[6];
		prism_ref b = get_box(s % 2 ? "box" : "rebox", s, 6, refs);
		cr_assert_eq(prism_ref_release(b), 0);
	}
	size_t big = 40u << 20;
	void *p = calloc(1, big);
	prism_ref r;
	cr_assert_eq(prism_put(p, big, &r), 0, "%s", prism_last_error());
	free(p);
	prism_ref_release(r);
}

/* Boxes made by children of a task that waits for them, on one worker: the node is slow
 * to start more, so the waiting task runs its children itself (the completion comes back
 * to its own process) or another worker does; either way the refs arrive. */
static int outer(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)args;
	(void)nargs;
	uint64_t total = 0;
	prism_ref b[4];
	for (uint64_t k = 0; k < 4; k++) {
		uint64_t s = 50 + k, n = 4;
		prism_value a[2] = {prism_bytes(&s, 8), prism_bytes(&n, 8)};
		if (prism_submit("box", a, 2, NULL, &b[k]))
			return prism_fail(ctx, "submit");
	}
	for (uint64_t k = 0; k < 4; k++) {
		const void *v;
		size_t len;
		int rc = prism_get(b[k], WAIT_NS, &v, &len);
		if (rc)
			return prism_fail(ctx, "box %llu: %s", (unsigned long long)k,
					  prism_strerror(rc));
		prism_ref refs[4];
		memcpy(refs, v, len);
		for (unsigned i = 0; i < 4; i++) {
			const void *d;
			size_t dl;
			rc = prism_get(refs[i], WAIT_NS, &d, &dl);
			if (rc || dl != box_len(50 + k, i))
				return prism_fail(ctx, "box %llu ref %u: %s, %zu bytes",
						  (unsigned long long)k, i, prism_strerror(rc),
						  dl);
			total += dl;
		}
		prism_ref_release(b[k]);
	}
	return prism_return(ctx, 0, &total, 8);
}
PRISM_REMOTE(outer);

Test(contained, boxes_returned_to_a_waiting_task, .fini = prism_shutdown, .timeout = 300)
{
	init(1);
	prism_ref r;
	cr_assert_eq(prism_submit("outer", NULL, 0, NULL, &r), 0);
	const void *v;
	size_t n;
	int rc = prism_get(r, WAIT_NS, &v, &n);
	cr_assert_eq(rc, 0, "%s %.*s", prism_strerror(rc),
		     rc == PRISM_E_TASK_FAILED ? (int)n : 0, (const char *)v);
	uint64_t want = 0, total;
	for (uint64_t k = 0; k < 4; k++)
		for (unsigned i = 0; i < 4; i++)
			want += box_len(50 + k, i);
	memcpy(&total, v, 8);
	cr_assert_eq(total, want);
	prism_ref_release(r);
}

static int bad_boxes(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	uint64_t which;
	(void)nargs;
	memcpy(&which, args[0].data, 8);
	prism_ref r;
	int one = 1;
	if (which == 0) /* a ref whose task failed fails this one */
		return prism_submit("fails", NULL, 0, NULL, &r) ||
		       prism_return_with_refs(ctx, 0, &r, sizeof(r), &r, 1);
	if (which == 1) /* NULL refs */
		return prism_return_with_refs(ctx, 0, &one, sizeof(one), NULL, 1) == -EINVAL
			       ? prism_fail(ctx, "EINVAL")
			       : 0;
	if (which == 2) { /* too many */
		prism_put(&one, sizeof(one), &r);
		prism_ref many[PRISM_MAX_CONTAINED + 1];
		for (int i = 0; i <= PRISM_MAX_CONTAINED; i++)
			many[i] = r;
		return prism_return_with_refs(ctx, 0, &one, sizeof(one), many,
					      PRISM_MAX_CONTAINED + 1) == -EINVAL
			       ? prism_fail(ctx, "EINVAL")
			       : 0;
	}
	/* a ref this task does not hold */
	memset(&r, 0x5a, sizeof(r));
	return prism_return_with_refs(ctx, 0, &r, sizeof(r), &r, 1);
}
PRISM_REMOTE(bad_boxes);

static int fails(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)args;
	(void)nargs;
	return prism_fail(ctx, "on purpose");
}
PRISM_REMOTE(fails);

Test(contained, bad_refs_inside_a_result, .fini = prism_shutdown, .timeout = 300)
{
	init(2);
	static const char *const want[] = {"ref 0 inside result 0 failed: fails: on purpose",
					   "EINVAL", "EINVAL", NULL};
	for (uint64_t w = 0; w < 4; w++) {
		prism_value a[1] = {prism_bytes(&w, 8)};
		prism_ref r;
		cr_assert_eq(prism_submit("bad_boxes", a, 1, NULL, &r), 0);
		const void *v;
		size_t n;
		int rc = prism_get(r, WAIT_NS, &v, &n);
		cr_assert_eq(rc, PRISM_E_TASK_FAILED, "case %llu: %s", (unsigned long long)w,
			     prism_strerror(rc));
		if (want[w])
			cr_assert(strstr(v, want[w]), "case %llu: %s", (unsigned long long)w,
				  (const char *)v);
		else
			cr_assert(strstr(v, "bad_boxes: returned"), "case 3: %s",
				  (const char *)v);
		prism_ref_release(r);
	}
}

/* deep(d): a box holding the ref to deep(d - 1)'s box, down to deep(0), a box holding a
 * 200 KB value put by that task: a chain of boxes d deep, each task gone once it
 * returned. */
static int deep(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	uint64_t d;
	(void)nargs;
	memcpy(&d, args[0].data, 8);
	prism_ref r;
	int rc;
	if (d == 0) {
		size_t len = 200000;
		uint8_t *b = malloc(len);
		fill(b, len, 4242);
		rc = prism_put(b, len, &r);
		free(b);
	} else {
		uint64_t below = d - 1;
		prism_value a[1] = {prism_bytes(&below, 8)};
		rc = prism_submit("deep", a, 1, NULL, &r);
	}
	if (rc)
		return prism_fail(ctx, "depth %llu: %s", (unsigned long long)d,
				  prism_strerror(rc));
	rc = prism_return_with_refs(ctx, 0, &r, sizeof(r), &r, 1);
	prism_ref_release(r);
	return rc ? prism_fail(ctx, "return_with_refs: %s", prism_last_error()) : 0;
}
PRISM_REMOTE_ARITY(deep, 1);

Test(contained, boxes_of_boxes_arrive_whole, .fini = prism_shutdown, .timeout = 300)
{
	init(2);
	for (uint64_t round = 0; round < 30; round++) {
		uint64_t d = 1 + round % 5;
		prism_value a[1] = {prism_bytes(&d, 8)};
		prism_ref top, r;
		cr_assert_eq(prism_submit("deep", a, 1, NULL, &top), 0);
		r = top;
		/* Down the chain: every level's ref is held by the level above. */
		for (uint64_t level = 0; level < d; level++) {
			const void *v;
			size_t n;
			int rc = prism_get(r, WAIT_NS, &v, &n);
			cr_assert_eq(rc, 0, "depth %llu level %llu: %s %s",
				     (unsigned long long)d, (unsigned long long)level,
				     prism_strerror(rc), prism_last_error());
			cr_assert_eq(n, sizeof(prism_ref));
			memcpy(&r, v, sizeof(r));
		}
		/* The last box holds the value itself. */
		const void *v;
		size_t n;
		cr_assert_eq(prism_get(r, WAIT_NS, &v, &n), 0, "%s", prism_last_error());
		cr_assert_eq(n, sizeof(prism_ref));
		memcpy(&r, v, sizeof(r));
		expect_value(r, 4242, 200000);
		cr_assert_eq(prism_ref_release(top), 0);
		cr_assert_eq(prism_get(r, 0, &v, &n), PRISM_E_RELEASED);
	}
}
