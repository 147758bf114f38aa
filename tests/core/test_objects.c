/* Objects through the public API: put and get through the node's shared-memory store,
 * values larger than the inline limit as arguments and results (zero-copy), the store
 * filling up, and refs released freeing their memory. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "prism.h"

#define MiB (1024u * 1024u)
#define STORE (64u * MiB)

/* Sum of the bytes of its argument, so a test can check what the worker saw. */
static int checksum(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	uint64_t sum = 0;
	(void)nargs;
	for (size_t i = 0; i < args[0].len; i++)
		sum += ((const uint8_t *)args[0].data)[i];
	return prism_return(ctx, 0, &sum, sizeof(sum));
}
PRISM_REMOTE_ARITY(checksum, 1);

/* A result of the requested size, byte i = (i * 7) & 255. */
static int make_blob(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	uint64_t n;
	(void)nargs;
	memcpy(&n, args[0].data, 8);
	uint8_t *b = malloc(n ? n : 1);
	if (!b)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 7);
	int rc = prism_return(ctx, 0, b, n);
	free(b);
	return rc;
}
PRISM_REMOTE_ARITY(make_blob, 1);

static void start(void)
{
	prism_opts o = {.num_workers = 2, .object_store_bytes = STORE, .log_level = -1};
	cr_assert_eq(prism_init(&o), 0, "prism_init: %s", prism_last_error());
}

TestSuite(objects, .init = start, .fini = prism_shutdown, .timeout = 120);

static uint64_t sum_of(const uint8_t *b, size_t n)
{
	uint64_t s = 0;
	for (size_t i = 0; i < n; i++)
		s += b[i];
	return s;
}

static uint64_t get_u64(prism_ref r)
{
	const void *v;
	size_t n;
	int rc = prism_get(r, 30 * (int64_t)PRISM_NS_PER_SEC, &v, &n);
	cr_assert_eq(rc, 0, "%s: %s", prism_strerror(rc),
		     rc == PRISM_E_TASK_FAILED ? (const char *)v : prism_last_error());
	cr_assert_eq(n, 8);
	return *(const uint64_t *)v;
}

Test(objects, put_and_get_small_and_large_values)
{
	size_t sizes[] = {0, 1, 8, 4096, 64 * 1024, 64 * 1024 + 1, 3 * MiB};
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uint8_t *b = malloc(sizes[k] + 1);
		for (size_t i = 0; i < sizes[k]; i++)
			b[i] = (uint8_t)(i * 13 + k);
		prism_ref r;
		cr_assert_eq(prism_put(b, sizes[k], &r), 0, "put %zu: %s", sizes[k],
			     prism_last_error());
		const void *v;
		size_t n;
		cr_assert_eq(prism_get(r, 0, &v, &n), 0);
		cr_assert_eq(n, sizes[k]);
		cr_assert_eq(memcmp(v, b, n), 0);
		cr_assert_neq(v, (const void *)b, "the value lives in the store");
		cr_assert_eq(prism_ref_release(r), 0);
		free(b);
	}
}

Test(objects, large_arguments_and_results_travel_through_the_store)
{
	/* A 2 MiB bytes argument (above the 64 KiB inline limit) goes through the store. */
	size_t n = 2 * MiB;
	uint8_t *b = malloc(n);
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i ^ (i >> 8));
	prism_value a = prism_bytes(b, n);
	prism_ref r;
	cr_assert_eq(prism_submit("checksum", &a, 1, NULL, &r), 0, "%s", prism_last_error());
	cr_assert_eq(get_u64(r), sum_of(b, n));
	prism_ref_release(r);
	/* A put ref as an argument: the worker reads the store object without a copy. */
	prism_ref p;
	cr_assert_eq(prism_put(b, n, &p), 0);
	prism_value pa = prism_refval(p);
	cr_assert_eq(prism_submit("checksum", &pa, 1, NULL, &r), 0);
	prism_ref_release(p); /* the task in flight keeps the object alive */
	cr_assert_eq(get_u64(r), sum_of(b, n));
	prism_ref_release(r);
	/* A 5 MiB result comes back through the store and feeds the next task. */
	uint64_t big = 5 * MiB;
	prism_value ba = prism_bytes(&big, 8);
	prism_ref blob, sum;
	cr_assert_eq(prism_submit("make_blob", &ba, 1, NULL, &blob), 0);
	prism_value chained = prism_refval(blob);
	cr_assert_eq(prism_submit("checksum", &chained, 1, NULL, &sum), 0);
	const void *v;
	size_t len;
	cr_assert_eq(prism_get(blob, 30 * (int64_t)PRISM_NS_PER_SEC, &v, &len), 0);
	cr_assert_eq(len, big);
	for (size_t i = 0; i < len; i += 4093)
		cr_assert_eq(((const uint8_t *)v)[i], (uint8_t)(i * 7), "byte %zu", i);
	cr_assert_eq(get_u64(sum), sum_of(v, len));
	prism_ref_release(blob);
	prism_ref_release(sum);
	free(b);
}

Test(objects, a_full_store_says_so_and_released_refs_free_it)
{
	/* Hold refs to 4 MiB objects until the store refuses: every refusal is
	 * PRISM_E_STORE_FULL, nothing crashes, and releasing makes room again. */
	enum { MAX = 64 };
	prism_ref held[MAX];
	size_t n = 4 * MiB, count = 0;
	uint8_t *b = calloc(1, n);
	int rc = 0;
	while (count < MAX && (rc = prism_put(b, n, &held[count])) == 0)
		count++;
	cr_assert_eq(rc, PRISM_E_STORE_FULL, "got %s after %zu objects", prism_strerror(rc),
		     count);
	cr_assert_gt(count, 8, "a 64 MiB store holds several 4 MiB objects");
	cr_assert(strstr(prism_last_error(), "object store"), "%s", prism_last_error());
	/* A task result that does not fit becomes an error object, the worker lives on. */
	uint64_t big = 8 * MiB;
	prism_value ba = prism_bytes(&big, 8);
	prism_ref r;
	cr_assert_eq(prism_submit("make_blob", &ba, 1, NULL, &r), 0);
	const void *v;
	size_t len;
	cr_assert_eq(prism_get(r, 30 * (int64_t)PRISM_NS_PER_SEC, &v, &len),
		     PRISM_E_TASK_FAILED);
	cr_log_info("the failed result says: %s", (const char *)v);
	prism_ref_release(r);
	for (size_t i = 0; i < count; i++)
		cr_assert_eq(prism_ref_release(held[i]), 0);
	/* Released objects are deleted: the same amount fits again. */
	for (size_t i = 0; i < count; i++)
		cr_assert_eq(prism_put(b, n, &held[i]), 0, "after release, put %zu: %s", i,
			     prism_last_error());
	for (size_t i = 0; i < count; i++)
		prism_ref_release(held[i]);
	/* Bigger than the whole store: too big, not merely full. */
	uint8_t *huge = calloc(1, STORE + MiB);
	cr_assert_eq(prism_put(huge, STORE + MiB, &r), PRISM_E_TOO_BIG);
	free(huge);
	free(b);
}
