/* clock.c — cycle-counter calibration; see base/clock.h. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"

/* Decided once at load, before main() and before any thread could read a clock, so that
 * prism_cycles() never switches source between two readings.  Only the rate waits for
 * calibration, which happens at the first conversion. */
bool prism__tsc_usable;
static bool tsc_checked;

static pthread_once_t calib_once = PTHREAD_ONCE_INIT;
/* cycles -> ns as (cycles * ns_mult) >> 32, and the inverse; 1:1 until calibrated. */
static uint64_t ns_mult = 1ull << 32;
static uint64_t cyc_mult = 1ull << 32;
static double cycles_per_ns = 1.0;

/* The kernel reports "constant_tsc" and "nonstop_tsc" when the counter ticks at one rate
 * through frequency changes and idle states; only then is it a clock. */
static bool tsc_invariant(void)
{
#if defined(__x86_64__)
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[4096];
	bool constant = false, nonstop = false;
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5) != 0)
			continue;
		constant = strstr(line, " constant_tsc") != NULL;
		nonstop = strstr(line, " nonstop_tsc") != NULL;
		break;
	}
	fclose(f);
	return constant && nonstop;
#else
	return false;
#endif
}

static void calibrate(void)
{
#if defined(__x86_64__)
	if (!prism__tsc_usable)
		return;
	/* 10 ms against CLOCK_MONOTONIC: long enough that the ~20 ns read jitter at each
	 * end is 2 ppm, short enough to be invisible at start-up. */
	struct timespec pause = {0, 10L * 1000 * 1000};
	uint64_t t0 = prism_now_ns(), c0 = __builtin_ia32_rdtsc();
	nanosleep(&pause, NULL);
	uint64_t t1 = prism_now_ns(), c1 = __builtin_ia32_rdtsc();
	if (t1 <= t0 || c1 <= c0)
		return;
	cycles_per_ns = (double)(c1 - c0) / (double)(t1 - t0);
	if (cycles_per_ns < 0.05 || cycles_per_ns > 100.0) {
		/* Absurd rate: the readings cannot be trusted, so report 1:1 and let the
		 * caller see it through prism_cycles_per_ns(). */
		cycles_per_ns = 1.0;
		return;
	}
	ns_mult = (uint64_t)((double)(1ull << 32) / cycles_per_ns);
	cyc_mult = (uint64_t)((double)(1ull << 32) * cycles_per_ns);
#endif
}

__attribute__((constructor)) static void choose_source_at_load(void)
{
	if (!tsc_checked) {
		prism__tsc_usable = tsc_invariant();
		tsc_checked = true;
	}
}

void prism_clock_calibrate(void)
{
	pthread_once(&calib_once, calibrate);
}

uint64_t prism_cycles_to_ns(uint64_t cycles)
{
	pthread_once(&calib_once, calibrate);
	return (uint64_t)(((unsigned __int128)cycles * ns_mult) >> 32);
}

uint64_t prism_ns_to_cycles(uint64_t ns)
{
	pthread_once(&calib_once, calibrate);
	return (uint64_t)(((unsigned __int128)ns * cyc_mult) >> 32);
}

double prism_cycles_per_ns(void)
{
	pthread_once(&calib_once, calibrate);
	return cycles_per_ns;
}

bool prism_cycles_is_tsc(void)
{
	return prism__tsc_usable;
}
