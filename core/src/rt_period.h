/* rt_period.h — the period of the calls to a real-time actor, learnt from their
 * arrival times (worker.c's rt_actor_wait wakes the actor ahead of the next call).
 * Pure logic, header-only, so that tests/core/test_rt_period.c can feed it times.
 *
 * The gap is a moving average of the intervals between calls, anchored at the last
 * call that began a period (the phase).  What does not look like the period:
 *   - a call closer than half the gap after the last (a burst: several calls per
 *     period) changes nothing;
 *   - one more than 1.5 gaps after it (a skipped call, a pause, or a longer period)
 *     moves the phase; the gap follows only when three such in a row agree within a
 *     quarter;
 *   - a run of shorter intervals that agree within a quarter and together last at
 *     least one gap (three at least) is a shorter period: the gap follows;
 *   - silence over RT_PERIOD_MAX_NS starts the learning again.
 */
#ifndef PRISM_CORE_RT_PERIOD_H
#define PRISM_CORE_RT_PERIOD_H

#include <stdbool.h>
#include <stdint.h>

#define RT_PERIOD_MAX_NS 1000000000ull

struct rt_period {
	uint64_t last;      /* the call that set the phase, 0 = none yet */
	uint64_t gap;       /* the learned period, 0 = none yet */
	uint64_t prev;      /* the last call of any kind */
	uint64_t long_;     /* the gaps longer than the period in a row: their mean ... */
	uint32_t nlong;     /* ... and how many */
	uint64_t short_sum; /* the run of shorter intervals: their sum ... */
	uint32_t nshort;    /* ... and how many */
};

static inline bool rt_period_agree(uint64_t mean, uint64_t d)
{
	return d > mean - mean / 4 && d < mean + mean / 4;
}

static inline void rt_period_arrival(struct rt_period *p, uint64_t now)
{
	uint64_t d = now - p->last, r = now - p->prev;
	bool first = !p->last;
	p->prev = now;
	if (first || d > RT_PERIOD_MAX_NS) {
		*p = (struct rt_period){.last = now, .prev = now}; /* learn again */
		return;
	}
	/* A shorter period shows as a run of agreeing intervals under half the gap. */
	if (p->gap && r < p->gap / 2) {
		bool agree = p->nshort && rt_period_agree(p->short_sum / p->nshort, r);
		p->nshort = agree ? p->nshort + 1 : 1;
		p->short_sum = agree ? p->short_sum + r : r;
		if (p->nshort >= 3 && p->short_sum >= p->gap) {
			p->gap = p->short_sum / p->nshort;
			p->last = now;
			p->nshort = p->nlong = 0;
			return;
		}
	} else {
		p->nshort = 0;
	}
	if (p->gap && d < p->gap / 2)
		return; /* a burst: the phase stays */
	if (p->gap && d > p->gap + p->gap / 2) {
		bool agree = p->nlong && rt_period_agree(p->long_, d);
		p->long_ = agree ? (p->long_ * p->nlong + d) / (p->nlong + 1) : d;
		p->nlong = agree ? p->nlong + 1 : 1;
		if (p->nlong == 3) {
			p->gap = p->long_;
			p->nlong = 0;
		}
	} else {
		p->gap = p->gap ? (3 * p->gap + d) / 4 : d;
		p->nlong = 0;
	}
	p->last = now;
}

/* When the next call is due, or 0 while the period is not known. */
static inline uint64_t rt_period_due(const struct rt_period *p)
{
	return p->gap ? p->last + p->gap : 0;
}

#endif
