/* base/hist.h — log-linear latency histograms, in the manner of HdrHistogram.
 *
 * Values are uint64 (usually nanoseconds) over the whole uint64 range.  Values below 256
 * have a bucket each; above, a value's top 8 significant bits (the leading 1 and 7 more,
 * PRISM_HIST_SUB_BITS) choose its bucket, so every power of two is cut into 128 buckets
 * and a bucket is at most 1/128 of the values in it wide.  A percentile reports the
 * midpoint of the bucket that holds the rank, clamped to the exactly tracked minimum and
 * maximum, which is within 1/256 (0.4%) of the true sample.  Count, min, max and mean
 * are exact.
 *
 * Percentile definition, used by every function here: for pct in (0, 100) the rank is
 * ceil(pct * count / 100) computed in double, and the result is the smallest recorded
 * value v (to the bucket) such that at least rank samples are <= v.  pct <= 0 (or NaN)
 * gives the minimum, pct >= 100 the maximum, and an empty histogram gives 0.
 *
 * Cost: 7424 uint64 counters, 58 KiB, allocated once by prism_hist_create().  Recording
 * is O(1): a clz, a shift, an increment and two conditional moves; it never allocates or
 * fails.  Reading a percentile walks the buckets (a few microseconds).
 *
 * Ownership: the caller owns what prism_hist_create() returns and frees it with
 * prism_hist_destroy().  Thread safety: none.  A histogram has one writer and no
 * concurrent readers; threads record into their own histograms and a reader merges them
 * (prism_hist_merge) once the writers are done.  Errors: functions that can fail return 0
 * or a negative code (base/error.h).
 */
#ifndef PRISM_BASE_HIST_H
#define PRISM_BASE_HIST_H

#include <stddef.h>
#include <stdint.h>

#include "base/api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 7 sub-bucket bits: 128 buckets per power of two, a worst-case reported error of 1/256,
 * well inside the 1% that latency reports need, for 58 KiB per histogram. */
#define PRISM_HIST_SUB_BITS 7
#define PRISM_HIST_SUB_COUNT (1u << PRISM_HIST_SUB_BITS)
/* Exact buckets 0..255, then 128 per power of two from 2^8 to 2^63: 58 * 128 = 7424. */
#define PRISM_HIST_BUCKETS ((size_t)(64 - PRISM_HIST_SUB_BITS + 1) * PRISM_HIST_SUB_COUNT)

typedef struct prism_hist prism_hist;

/* What benchmarks print, filled by one walk over the buckets. */
typedef struct prism_hist_summary {
	uint64_t count;
	uint64_t min;
	uint64_t p50;
	uint64_t p90;
	uint64_t p99;
	uint64_t p999; /* p99.9 */
	uint64_t max;
	double mean;
} prism_hist_summary;

/* The bucket that holds v.  OR-ing in 2^7 gives clz a non-zero operand and makes the
 * shift 0 for every v below 256, so small values index themselves without a branch. */
static inline size_t prism_hist_bucket_index(uint64_t v)
{
	unsigned shift = (unsigned)(63 - __builtin_clzll(v | PRISM_HIST_SUB_COUNT)) -
			 PRISM_HIST_SUB_BITS;
	return (size_t)shift * PRISM_HIST_SUB_COUNT + (size_t)(v >> shift);
}

/* Smallest and largest value of bucket idx (idx < PRISM_HIST_BUCKETS), both inclusive. */
void prism_hist_bucket_range(size_t idx, uint64_t *lo, uint64_t *hi);

/* A new, empty histogram in *out.  -EINVAL for a NULL out, -ENOMEM; *out is written only
 * on success. */
int prism_hist_create(prism_hist **out);
/* Frees h; NULL is a no-op. */
void prism_hist_destroy(prism_hist *h);

void prism_hist_record(prism_hist *h, uint64_t v);
/* Records v n times (a run of equal samples, or coordinated-omission correction); n = 0
 * records nothing. */
void prism_hist_record_n(prism_hist *h, uint64_t v, uint64_t n);

uint64_t prism_hist_count(const prism_hist *h);
/* Exact minimum and maximum; 0 when empty. */
uint64_t prism_hist_min(const prism_hist *h);
uint64_t prism_hist_max(const prism_hist *h);
/* Exact arithmetic mean (the sum is kept in 128 bits); 0.0 when empty. */
double prism_hist_mean(const prism_hist *h);
/* pct in [0, 100]; see the definition at the top of this file. */
uint64_t prism_hist_percentile(const prism_hist *h, double pct);
/* count, min, p50, p90, p99, p99.9, max and mean in one pass; all 0 when empty. */
void prism_hist_summarize(const prism_hist *h, prism_hist_summary *out);

/* Adds src's samples to dst; src is unchanged.  -EINVAL for a NULL argument. */
int prism_hist_merge(prism_hist *dst, const prism_hist *src);
/* Forgets every sample; the memory is kept for reuse. */
void prism_hist_reset(prism_hist *h);

#ifdef __cplusplus
}
#endif
#endif
