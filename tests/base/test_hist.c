/* Histograms: bucket layout, exact small values, percentile error against a sorted copy,
 * merge, extremes, reset, and allocation failure. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/alloc.h"
#include "base/hist.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define HAVE_LSAN 1
#endif

/* splitmix64: a fixed seed gives the same samples on every run and machine. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) / (double)(1ull << 53);
}

/* 2^f for f in [0, 1) by its Taylor series, so that the test needs no libm. */
static double exp2_frac(double f)
{
	double x = f * 0.69314718055994530942, term = 1.0, sum = 1.0;
	for (int i = 1; i < 25; i++) {
		term *= x / i;
		sum += term;
	}
	return sum;
}

/* Log-uniform in [1, 1e12]: 2^y with y uniform in [0, log2(1e12)]. */
static uint64_t log_uniform(uint64_t *s)
{
	double y = rng_unit(s) * 39.86313713864835;
	int k = (int)y;
	return (uint64_t)((double)(1ull << k) * exp2_frac(y - k));
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* The reference percentile on sorted data, with the rank definition of base/hist.h. */
static uint64_t exact_percentile(const uint64_t *sorted, size_t n, double pct)
{
	double r = pct * (double)n / 100.0;
	uint64_t rank = (uint64_t)r;
	if ((double)rank < r)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

static double rel_err(uint64_t got, uint64_t want)
{
	double d = (double)got - (double)want;
	return (d < 0 ? -d : d) / (double)want;
}

static prism_hist *new_hist(void)
{
	prism_hist *h = NULL;
	cr_assert_eq(prism_hist_create(&h), 0);
	cr_assert_not_null(h);
	return h;
}

static void assert_same(const prism_hist *a, const prism_hist *b)
{
	cr_assert_eq(prism_hist_count(a), prism_hist_count(b));
	cr_assert_eq(prism_hist_min(a), prism_hist_min(b));
	cr_assert_eq(prism_hist_max(a), prism_hist_max(b));
	cr_assert_eq(prism_hist_mean(a), prism_hist_mean(b));
	for (int i = 0; i <= 400; i++) {
		double p = i / 4.0;
		cr_assert_eq(prism_hist_percentile(a, p), prism_hist_percentile(b, p), "p%.2f",
			     p);
	}
}

Test(hist, bucket_layout_covers_uint64_with_bounded_width)
{
	uint64_t prev_hi = 0;
	for (size_t i = 0; i < PRISM_HIST_BUCKETS; i++) {
		uint64_t lo, hi;
		prism_hist_bucket_range(i, &lo, &hi);
		/* Buckets tile the range with no gap and no overlap. */
		cr_assert_eq(lo, i == 0 ? 0 : prev_hi + 1, "bucket %zu starts at %lu", i,
			     (unsigned long)lo);
		cr_assert_geq(hi, lo);
		if (lo >= 256)
			cr_assert_leq(hi - lo + 1, lo / 128, "bucket %zu too wide", i);
		else
			cr_assert_eq(hi, lo, "values below 256 are exact");
		cr_assert_eq(prism_hist_bucket_index(lo), i);
		cr_assert_eq(prism_hist_bucket_index(hi), i);
		prev_hi = hi;
	}
	cr_assert_eq(prev_hi, UINT64_MAX);
	cr_assert_eq(prism_hist_bucket_index(UINT64_MAX), PRISM_HIST_BUCKETS - 1);

	uint64_t s = 1;
	for (int i = 0; i < 100000; i++) {
		uint64_t v = rng_next(&s) >> (rng_next(&s) % 64), lo, hi;
		size_t idx = prism_hist_bucket_index(v);
		cr_assert_lt(idx, PRISM_HIST_BUCKETS);
		prism_hist_bucket_range(idx, &lo, &hi);
		cr_assert(lo <= v && v <= hi, "%lu not in bucket %zu", (unsigned long)v, idx);
	}
}

Test(hist, small_values_are_exact)
{
	prism_hist *h = new_hist();
	for (uint64_t v = 1; v <= 100; v++)
		prism_hist_record(h, v);
	cr_assert_eq(prism_hist_count(h), 100);
	cr_assert_eq(prism_hist_min(h), 1);
	cr_assert_eq(prism_hist_max(h), 100);
	cr_assert_eq(prism_hist_mean(h), 50.5);
	/* With 100 samples 1..100 the rank of pct k is k, and the k-th value is k. */
	for (int k = 1; k <= 100; k++)
		cr_assert_eq(prism_hist_percentile(h, k), (uint64_t)k, "p%d", k);
	cr_assert_eq(prism_hist_percentile(h, 0.0), 1);
	cr_assert_eq(prism_hist_percentile(h, 0.5), 1);
	cr_assert_eq(prism_hist_percentile(h, 49.01), 50);
	cr_assert_eq(prism_hist_percentile(h, 150.0), 100);
	cr_assert_eq(prism_hist_percentile(h, -3.0), 1);

	prism_hist_record(h, 0);
	cr_assert_eq(prism_hist_min(h), 0);
	cr_assert_eq(prism_hist_percentile(h, 0.0), 0);
	prism_hist_destroy(h);
}

Test(hist, wide_bucket_reports_clamped_midpoint)
{
	prism_hist *h = new_hist();
	/* 1000 and 1003 share the bucket [1000, 1003]; its midpoint is 1001. */
	prism_hist_record(h, 1000);
	prism_hist_record(h, 1003);
	cr_assert_eq(prism_hist_bucket_index(1000), prism_hist_bucket_index(1003));
	cr_assert_eq(prism_hist_percentile(h, 50.0), 1001);
	prism_hist_reset(h);
	/* A single sample: the midpoint is clamped to the exact min and max. */
	prism_hist_record(h, 1000003);
	cr_assert_eq(prism_hist_percentile(h, 50.0), 1000003);
	cr_assert_eq(prism_hist_percentile(h, 99.9), 1000003);
	prism_hist_destroy(h);
}

Test(hist, log_uniform_percentiles_within_one_percent)
{
	enum { N = 1000000 };
	static const double pcts[] = {1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99};
	uint64_t *vals = malloc(N * sizeof(*vals)), s = 42;
	unsigned __int128 sum = 0;
	prism_hist *h = new_hist();
	cr_assert_not_null(vals);
	for (size_t i = 0; i < N; i++) {
		vals[i] = log_uniform(&s);
		sum += vals[i];
		prism_hist_record(h, vals[i]);
	}
	qsort(vals, N, sizeof(*vals), cmp_u64);
	cr_assert_lt(vals[0], 10, "the generator spans the range");
	cr_assert_gt(vals[N - 1], 900000000000ull);

	cr_assert_eq(prism_hist_count(h), N);
	cr_assert_eq(prism_hist_min(h), vals[0]);
	cr_assert_eq(prism_hist_max(h), vals[N - 1]);
	cr_assert_float_eq(prism_hist_mean(h), (double)sum / N, 1e-6 * ((double)sum / N));
	for (size_t j = 0; j < PRISM_ARRAY_LEN(pcts); j++) {
		uint64_t want = exact_percentile(vals, N, pcts[j]);
		uint64_t got = prism_hist_percentile(h, pcts[j]);
		double e = rel_err(got, want);
		cr_assert_leq(e, 0.01, "p%g: %lu vs exact %lu", pcts[j], (unsigned long)got,
			      (unsigned long)want);
		/* The design's bound: half a bucket, at most 1/256 of the value. */
		cr_assert_leq(e, 1.0 / 256, "p%g: error %g above 1/256", pcts[j], e);
	}

	prism_hist_summary sm;
	prism_hist_summarize(h, &sm);
	cr_assert_eq(sm.count, N);
	cr_assert_eq(sm.min, vals[0]);
	cr_assert_eq(sm.max, vals[N - 1]);
	cr_assert_eq(sm.p50, prism_hist_percentile(h, 50.0));
	cr_assert_eq(sm.p90, prism_hist_percentile(h, 90.0));
	cr_assert_eq(sm.p99, prism_hist_percentile(h, 99.0));
	cr_assert_eq(sm.p999, prism_hist_percentile(h, 99.9));
	cr_assert_eq(sm.mean, prism_hist_mean(h));
	cr_assert_leq(rel_err(sm.p999, exact_percentile(vals, N, 99.9)), 0.01);
	prism_hist_destroy(h);
	free(vals);
}

Test(hist, merge_equals_recording_into_one)
{
	prism_hist *a = new_hist(), *b = new_hist(), *all = new_hist(), *empty = new_hist();
	uint64_t s = 7;
	for (int i = 0; i < 200000; i++) {
		uint64_t v = log_uniform(&s);
		prism_hist_record(i % 3 ? a : b, v);
		prism_hist_record(all, v);
	}
	prism_hist_record(b, UINT64_MAX);
	prism_hist_record(all, UINT64_MAX);
	prism_hist_record(a, 0);
	prism_hist_record(all, 0);

	cr_assert_eq(prism_hist_merge(a, b), 0);
	assert_same(a, all);
	/* Merging an empty histogram changes nothing; merging into one copies. */
	cr_assert_eq(prism_hist_merge(a, empty), 0);
	assert_same(a, all);
	cr_assert_eq(prism_hist_merge(empty, all), 0);
	assert_same(empty, all);
	cr_assert_eq(prism_hist_merge(NULL, all), -EINVAL);
	cr_assert_eq(prism_hist_merge(all, NULL), -EINVAL);
	prism_hist_destroy(a);
	prism_hist_destroy(b);
	prism_hist_destroy(all);
	prism_hist_destroy(empty);
}

Test(hist, record_n_equals_repeated_records)
{
	prism_hist *a = new_hist(), *b = new_hist();
	prism_hist_record_n(a, 12345, 1000);
	prism_hist_record_n(a, 77, 3);
	prism_hist_record_n(a, 999999999, 0); /* n = 0 must not touch min or max */
	for (int i = 0; i < 1000; i++)
		prism_hist_record(b, 12345);
	for (int i = 0; i < 3; i++)
		prism_hist_record(b, 77);
	assert_same(a, b);
	cr_assert_eq(prism_hist_max(a), 12345);
	prism_hist_destroy(a);
	prism_hist_destroy(b);
}

Test(hist, extreme_values)
{
	prism_hist *h = new_hist();
	prism_hist_record(h, UINT64_MAX);
	cr_assert_eq(prism_hist_min(h), UINT64_MAX);
	cr_assert_eq(prism_hist_max(h), UINT64_MAX);
	cr_assert_eq(prism_hist_percentile(h, 50.0), UINT64_MAX);
	cr_assert_eq(prism_hist_mean(h), (double)UINT64_MAX);
	/* A sum far beyond 64 bits keeps the mean exact. */
	prism_hist_record_n(h, UINT64_MAX, 1ull << 40);
	cr_assert_eq(prism_hist_mean(h), (double)UINT64_MAX);
	prism_hist_record(h, 0);
	cr_assert_eq(prism_hist_min(h), 0);
	cr_assert_eq(prism_hist_percentile(h, 0.0), 0);
	/* Now that min is 0 the top bucket reports its midpoint, within 1/256 of the value. */
	uint64_t p50 = prism_hist_percentile(h, 50.0);
	cr_assert_eq(p50, (255ull << 56) + ((1ull << 56) - 1) / 2);
	cr_assert_leq(rel_err(p50, UINT64_MAX), 1.0 / 256);
	cr_assert_eq(prism_hist_percentile(h, 100.0), UINT64_MAX);
	prism_hist_destroy(h);
}

Test(hist, empty_histogram_reports_zero)
{
	prism_hist *h = new_hist();
	prism_hist_summary sm = {.count = 99, .p50 = 99, .mean = 9.0};
	cr_assert_eq(prism_hist_count(h), 0);
	cr_assert_eq(prism_hist_min(h), 0);
	cr_assert_eq(prism_hist_max(h), 0);
	cr_assert_eq(prism_hist_mean(h), 0.0);
	cr_assert_eq(prism_hist_percentile(h, 0.0), 0);
	cr_assert_eq(prism_hist_percentile(h, 50.0), 0);
	cr_assert_eq(prism_hist_percentile(h, 100.0), 0);
	prism_hist_summarize(h, &sm);
	cr_assert_eq(sm.count, 0);
	cr_assert_eq(sm.p50, 0);
	cr_assert_eq(sm.max, 0);
	cr_assert_eq(sm.mean, 0.0);
	prism_hist_destroy(h);
	prism_hist_destroy(NULL);
}

Test(hist, reset_forgets_everything)
{
	prism_hist *h = new_hist(), *fresh = new_hist();
	for (uint64_t v = 1; v < 1000000; v += 997)
		prism_hist_record(h, v);
	prism_hist_reset(h);
	assert_same(h, fresh);
	cr_assert_eq(prism_hist_count(h), 0);
	cr_assert_eq(prism_hist_min(h), 0);
	prism_hist_record(h, 500);
	cr_assert_eq(prism_hist_min(h), 500, "min restarts from the first new sample");
	cr_assert_eq(prism_hist_max(h), 500);
	cr_assert_eq(prism_hist_percentile(h, 50.0), 500);
	prism_hist_destroy(h);
	prism_hist_destroy(fresh);
}

Test(hist, create_fails_cleanly_without_memory)
{
	prism_hist *h = NULL;
	cr_assert_eq(prism_hist_create(NULL), -EINVAL);
	prism_fault_arm(1);
	cr_assert_eq(prism_hist_create(&h), -ENOMEM);
	cr_assert(prism_fault_fired());
	cr_assert_null(h, "*out is untouched on failure");
	prism_fault_arm(0);
#ifdef HAVE_LSAN
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "the failed create leaked");
#endif
	cr_assert_eq(prism_hist_create(&h), 0);
	prism_hist_destroy(h);
}
