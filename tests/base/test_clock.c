/* Clocks: monotonic, and the cycle counter converts to within a few % of it. */
#include <criterion/criterion.h>
#include <time.h>

#include "base/clock.h"

Test(clock, monotonic_never_goes_back)
{
	uint64_t prev = prism_now_ns();
	for (int i = 0; i < 100000; i++) {
		uint64_t t = prism_now_ns();
		cr_assert_geq(t, prev);
		prev = t;
	}
}

Test(clock, cycles_convert_consistently_with_monotonic)
{
	prism_clock_calibrate();
	cr_assert_gt(prism_cycles_per_ns(), 0.0);
	/* Sleep 50 ms and compare the two clocks over the same span.  Both run through the
	 * sleep, so scheduling noise affects both readings alike. */
	uint64_t t0 = prism_now_ns(), c0 = prism_cycles();
	struct timespec ts = {0, 50 * 1000 * 1000};
	nanosleep(&ts, NULL);
	uint64_t c1 = prism_cycles(), t1 = prism_now_ns();
	double mono = (double)(t1 - t0), cyc = (double)prism_cycles_to_ns(c1 - c0);
	cr_assert(cyc > mono * 0.95 && cyc < mono * 1.05,
		  "cycle clock %.0f ns vs monotonic %.0f ns (tsc=%d)", cyc, mono,
		  prism_cycles_is_tsc());
	uint64_t back = prism_cycles_to_ns(prism_ns_to_cycles(1000000));
	cr_assert(back > 990000 && back < 1010000, "round trip 1 ms -> %lu",
		  (unsigned long)back);
}
