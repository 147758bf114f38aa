/* The noise table: the same table from the same seed (also when filled in pieces), a
 * different one from another seed, N(0, 1) to within sampling error, and offsets that
 * always leave room for a whole perturbation. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "es.h"

#define N_LARGE ((size_t)1 << 20) /* 1 Mi samples: the mean's standard error is 0.001 */

Test(noise, same_seed_same_table_other_seed_other_table)
{
	struct es_noise a, b, c;
	cr_assert_eq(es_noise_create(N_LARGE, 42, &a), 0);
	cr_assert_eq(es_noise_create(N_LARGE, 42, &b), 0);
	cr_assert_eq(es_noise_create(N_LARGE, 43, &c), 0);
	cr_assert_eq(memcmp(a.data, b.data, N_LARGE * sizeof(float)), 0);
	size_t same = 0;
	for (size_t i = 0; i < N_LARGE; i++)
		same += a.data[i] == c.data[i];
	cr_assert_lt(same, 16, "%zu equal floats between two seeds' tables", same);
	es_noise_destroy(&a);
	es_noise_destroy(&b);
	es_noise_destroy(&c);
	es_noise_destroy(&c); /* a destroyed table is zeroed: destroying again is harmless */
	cr_assert_null(c.data);
}

/* A shorter table is a prefix of a longer one, whatever the lengths (odd ones, ones that
 * cut a chunk): tables of different sizes agree where they overlap. */
Test(noise, shorter_table_is_a_prefix)
{
	size_t n = 3 * 65536 + 77;
	float *big = prism_malloc(n * sizeof(float));
	float *small = prism_malloc(n * sizeof(float));
	cr_assert(big && small);
	es_noise_fill(big, n, 7);
	size_t cuts[] = {1, 2, 3, 65535, 65536, 65537, 2 * 65536 + 1, n};
	for (size_t k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
		es_noise_fill(small, cuts[k], 7);
		cr_assert_eq(memcmp(small, big, cuts[k] * sizeof(float)), 0, "length %zu",
			     cuts[k]);
	}
	prism_free(small);
	prism_free(big);
}

Test(noise, standard_normal_moments)
{
	struct es_noise t;
	cr_assert_eq(es_noise_create(N_LARGE, 1, &t), 0);
	double s = 0, sq = 0, s3 = 0, s4 = 0;
	size_t tail = 0; /* beyond 1.96: 5 % of a normal */
	for (size_t i = 0; i < t.n; i++) {
		double x = t.data[i];
		cr_assert(isfinite(x));
		s += x;
		sq += x * x;
		s3 += x * x * x;
		s4 += x * x * x * x;
		tail += fabs(x) > 1.96;
	}
	double n = (double)t.n, mean = s / n, var = sq / n - mean * mean;
	/* Tolerances of 5 standard errors; one standard error is 0.001 for the mean,
	 * 0.0014 for the variance, 0.0039 for E[x^3], 0.0098 for E[x^4] and 0.00022 for
	 * the share in the tails. */
	cr_assert_lt(fabs(mean), 0.005, "mean %g", mean);
	cr_assert_lt(fabs(var - 1.0), 0.007, "variance %g", var);
	cr_assert_lt(fabs(s3 / n), 0.02, "third moment %g", s3 / n);
	cr_assert_lt(fabs(s4 / n - 3.0), 0.05, "fourth moment %g", s4 / n);
	cr_assert_lt(fabs((double)tail / n - 0.05), 0.0011, "tail share %g", (double)tail / n);
	es_noise_destroy(&t);
}

Test(noise, offsets_leave_room_and_cover_the_table)
{
	float data[1000] = {0};
	struct es_noise t;
	struct es_rng r;
	es_noise_view(data, 1000, &t);
	es_rng_seed(&r, 5);
	uint64_t lo = UINT64_MAX, hi = 0;
	for (int i = 0; i < 100000; i++) {
		uint64_t off = es_noise_sample(&t, 900, &r);
		cr_assert_leq(off + 900, 1000);
		lo = off < lo ? off : lo;
		hi = off > hi ? off : hi;
	}
	cr_assert_eq(lo, 0);
	cr_assert_eq(hi, 100);
	cr_assert_eq(es_noise_sample(&t, 1000, &r), 0, "a perturbation as long as the table");
	es_noise_destroy(&t); /* a view owns nothing */
	cr_assert_eq(es_noise_create(0, 1, &t), -EINVAL);
}
