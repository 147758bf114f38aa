/* The period a real-time actor learns from its calls' arrival times (rt_period.h):
 * periodic calls, bursts, skipped calls, pauses, longer and shorter periods. */
#include <criterion/criterion.h>

#include "../../core/src/rt_period.h"

#define MS 1000000ull
#define US 1000ull

/* Calls every period from t for n periods, `per` calls per period spaced by burst;
 * returns the time after the last. */
static uint64_t feed(struct rt_period *p, uint64_t t, uint64_t period, int n, int per,
		     uint64_t burst)
{
	for (int i = 0; i < n; i++, t += period)
		for (int k = 0; k < per; k++)
			rt_period_arrival(p, t + (uint64_t)k * burst);
	return t;
}

/* The learnt gap within 2 % of want. */
static void gap_is(const struct rt_period *p, uint64_t want, const char *what)
{
	cr_assert(p->gap > want - want / 50 && p->gap < want + want / 50,
		  "%s: gap %llu ns, want %llu", what, (unsigned long long)p->gap,
		  (unsigned long long)want);
}

Test(rt_period, learns_a_steady_period_and_its_phase)
{
	struct rt_period p = {0};
	cr_assert_eq(rt_period_due(&p), 0, "nothing known yet");
	uint64_t t = feed(&p, 5 * MS, 2 * MS, 20, 1, 0);
	gap_is(&p, 2 * MS, "steady 2 ms");
	cr_assert_eq(rt_period_due(&p), t, "the next call is due a period after the last");
}

Test(rt_period, bursts_change_nothing)
{
	struct rt_period p = {0};
	uint64_t t = feed(&p, 1 * MS, 10 * MS, 10, 1, 0);
	t = feed(&p, t, 10 * MS, 30, 4, 50 * US); /* four calls per period */
	gap_is(&p, 10 * MS, "four calls 50 us apart per 10 ms");
	cr_assert_eq(rt_period_due(&p), t, "the phase is the first call of each burst");
}

Test(rt_period, a_skipped_call_or_a_pause_moves_the_phase_only)
{
	struct rt_period p = {0};
	uint64_t t = feed(&p, 1 * MS, 1 * MS, 50, 1, 0);
	t += 1 * MS; /* one call skipped */
	t = feed(&p, t, 1 * MS, 1, 1, 0);
	gap_is(&p, 1 * MS, "after a skipped call");
	cr_assert_eq(rt_period_due(&p), t);
	t += 250 * MS; /* a pause: the floor's slice in prism-bench control */
	t = feed(&p, t, 1 * MS, 2, 1, 0);
	gap_is(&p, 1 * MS, "after a 250 ms pause");
	cr_assert_eq(rt_period_due(&p), t);
}

Test(rt_period, follows_a_longer_period_after_three_agreeing_gaps)
{
	struct rt_period p = {0};
	uint64_t t = feed(&p, 1 * MS, 1 * MS, 50, 1, 0);
	/* feed() returned when the next 1 ms call was due: 4 ms later is 5 ms after it. */
	t = feed(&p, t + 4 * MS, 5 * MS, 2, 1, 0);
	gap_is(&p, 1 * MS, "two long gaps are not yet a period");
	t = feed(&p, t, 5 * MS, 1, 1, 0);
	gap_is(&p, 5 * MS, "three are");
	cr_assert_eq(rt_period_due(&p), t);
}

Test(rt_period, follows_a_shorter_period)
{
	struct rt_period p = {0};
	uint64_t t = feed(&p, 1 * MS, 10 * MS, 20, 1, 0);
	t = feed(&p, t, 4 * MS, 10, 1, 0); /* not a burst of the old period */
	gap_is(&p, 4 * MS, "10 ms, then 4 ms");
	cr_assert_eq(rt_period_due(&p), t);
	t = feed(&p, t, 1 * MS, 30, 1, 0);
	gap_is(&p, 1 * MS, "then 1 ms");
}

Test(rt_period, a_long_silence_starts_again)
{
	struct rt_period p = {0};
	uint64_t t = feed(&p, 1 * MS, 3 * MS, 20, 1, 0);
	t += 2000 * MS;
	rt_period_arrival(&p, t);
	cr_assert_eq(p.gap, 0, "after 2 s without calls the period is unknown");
	cr_assert_eq(rt_period_due(&p), 0);
	feed(&p, t + 7 * MS, 7 * MS, 5, 1, 0);
	gap_is(&p, 7 * MS, "learnt again");
}
