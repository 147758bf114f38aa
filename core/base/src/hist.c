/* hist.c — log-linear histograms; see base/hist.h. */
#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/hist.h"

struct prism_hist {
	uint64_t count;
	uint64_t min; /* UINT64_MAX while empty, so that the first sample always lowers it */
	uint64_t max;
	/* 128 bits: even 2^64 samples of UINT64_MAX cannot overflow it, so the mean is exact
	 * however long a benchmark runs. */
	unsigned __int128 sum;
	uint64_t counts[PRISM_HIST_BUCKETS];
};

static void clear(prism_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void prism_hist_bucket_range(size_t idx, uint64_t *lo, uint64_t *hi)
{
	/* The inverse of prism_hist_bucket_index(): idx = shift * 128 + m, with the
	 * mantissa m in [128, 255] once the buckets become wider than one value. */
	unsigned shift = idx < 2 * (size_t)PRISM_HIST_SUB_COUNT
				 ? 0
				 : (unsigned)(idx / PRISM_HIST_SUB_COUNT) - 1;
	uint64_t m = (uint64_t)idx - (uint64_t)shift * PRISM_HIST_SUB_COUNT;
	*lo = m << shift;
	*hi = *lo + ((1ull << shift) - 1);
}

/* The value a percentile reports for bucket idx: its midpoint, which is within half a
 * bucket width of every sample in it, clamped so that no report lies outside what was
 * actually recorded. */
static uint64_t bucket_value(const prism_hist *h, size_t idx)
{
	uint64_t lo, hi;
	prism_hist_bucket_range(idx, &lo, &hi);
	uint64_t mid = lo + (hi - lo) / 2;
	if (mid < h->min)
		return h->min;
	if (mid > h->max)
		return h->max;
	return mid;
}

int prism_hist_create(prism_hist **out)
{
	if (!out)
		return -EINVAL;
	prism_hist *h = prism_malloc(sizeof(*h));
	if (!h)
		return -ENOMEM;
	clear(h);
	*out = h;
	return 0;
}

void prism_hist_destroy(prism_hist *h)
{
	prism_free(h);
}

void prism_hist_record(prism_hist *h, uint64_t v)
{
	h->counts[prism_hist_bucket_index(v)]++;
	h->count++;
	h->sum += v;
	h->min = v < h->min ? v : h->min;
	h->max = v > h->max ? v : h->max;
}

void prism_hist_record_n(prism_hist *h, uint64_t v, uint64_t n)
{
	if (n == 0)
		return; /* otherwise min and max would move without a sample */
	h->counts[prism_hist_bucket_index(v)] += n;
	h->count += n;
	h->sum += (unsigned __int128)v * n;
	h->min = v < h->min ? v : h->min;
	h->max = v > h->max ? v : h->max;
}

uint64_t prism_hist_count(const prism_hist *h)
{
	return h->count;
}

uint64_t prism_hist_min(const prism_hist *h)
{
	return h->count ? h->min : 0;
}

uint64_t prism_hist_max(const prism_hist *h)
{
	return h->max;
}

double prism_hist_mean(const prism_hist *h)
{
	if (!h->count)
		return 0.0;
	return (double)h->sum / (double)h->count;
}

/* ceil(pct * count / 100) in [1, count], for 0 < pct < 100.  Multiplying before dividing
 * keeps pct values like 99.9 from landing one rank high through rounding. */
static uint64_t rank_of(uint64_t count, double pct)
{
	double r = pct * (double)count / 100.0;
	if (!(r < (double)count))
		return count; /* also keeps the conversion below in range */
	uint64_t rank = (uint64_t)r;
	if ((double)rank < r)
		rank++;
	return rank ? rank : 1;
}

uint64_t prism_hist_percentile(const prism_hist *h, double pct)
{
	if (!h->count)
		return 0;
	if (!(pct > 0.0))
		return h->min;
	if (pct >= 100.0)
		return h->max;
	uint64_t rank = rank_of(h->count, pct), seen = 0;
	for (size_t i = 0; i < PRISM_HIST_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank)
			return bucket_value(h, i);
	}
	return h->max; /* not reached: the counts sum to count */
}

void prism_hist_summarize(const prism_hist *h, prism_hist_summary *out)
{
	static const double pcts[] = {50.0, 90.0, 99.0, 99.9};
	uint64_t *vals[] = {&out->p50, &out->p90, &out->p99, &out->p999};
	uint64_t ranks[PRISM_ARRAY_LEN(pcts)];
	size_t next = 0;

	memset(out, 0, sizeof(*out));
	if (!h->count)
		return;
	out->count = h->count;
	out->min = h->min;
	out->max = h->max;
	out->mean = prism_hist_mean(h);
	for (size_t j = 0; j < PRISM_ARRAY_LEN(pcts); j++)
		ranks[j] = rank_of(h->count, pcts[j]);
	/* The ranks ascend, so one walk finds them all. */
	uint64_t seen = 0;
	for (size_t i = 0; i < PRISM_HIST_BUCKETS && next < PRISM_ARRAY_LEN(pcts); i++) {
		seen += h->counts[i];
		while (next < PRISM_ARRAY_LEN(pcts) && seen >= ranks[next])
			*vals[next++] = bucket_value(h, i);
	}
}

int prism_hist_merge(prism_hist *dst, const prism_hist *src)
{
	if (!dst || !src)
		return -EINVAL;
	for (size_t i = 0; i < PRISM_HIST_BUCKETS; i++)
		dst->counts[i] += src->counts[i];
	dst->count += src->count;
	dst->sum += src->sum;
	/* An empty src has min UINT64_MAX and max 0, which change nothing here. */
	dst->min = src->min < dst->min ? src->min : dst->min;
	dst->max = src->max > dst->max ? src->max : dst->max;
	return 0;
}

void prism_hist_reset(prism_hist *h)
{
	clear(h);
}
