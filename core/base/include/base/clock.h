/* base/clock.h — time sources.
 *
 * prism_now_ns(): CLOCK_MONOTONIC in nanoseconds (vDSO, ~20 ns).  The reference clock:
 * every timeout, deadline and timestamp that crosses a process boundary uses it.
 *
 * prism_cycles(): the CPU's cycle counter (RDTSC on x86-64), a few ns and no syscall, for
 * spin budgets and benchmark timing on hot paths.  prism_cycles_to_ns() converts a
 * difference of two readings using a rate calibrated once against the monotonic clock
 * (about 10 ms, the first time a conversion is asked for).  Where the counter is not
 * invariant (no constant_tsc/nonstop_tsc) or the CPU is not x86-64, prism_cycles() is
 * the monotonic clock itself and the rate is 1 cycle/ns, so callers never need two paths.
 *
 * Thread safety: all functions are thread-safe; calibration runs once (pthread_once).
 */
#ifndef PRISM_BASE_CLOCK_H
#define PRISM_BASE_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "base/api.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PRISM_NS_PER_US 1000ull
#define PRISM_NS_PER_MS 1000000ull
#define PRISM_NS_PER_SEC 1000000000ull

static inline uint64_t prism_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * PRISM_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Internal: set by calibration; true when prism_cycles() reads the TSC. */
extern bool prism__tsc_usable;

static inline uint64_t prism_cycles(void)
{
#if defined(__x86_64__)
	if (PRISM_LIKELY(prism__tsc_usable))
		return __builtin_ia32_rdtsc();
#endif
	return prism_now_ns();
}

/* Calibrate now rather than at the first conversion (for example before a benchmark). */
void prism_clock_calibrate(void);
/* Nanoseconds for a difference of two prism_cycles() readings. */
uint64_t prism_cycles_to_ns(uint64_t cycles);
/* Cycles for a span of nanoseconds: turn a spin budget into a cycle count once. */
uint64_t prism_ns_to_cycles(uint64_t ns);
/* Calibrated rate, cycles per nanosecond (1.0 when the fallback clock is in use). */
double prism_cycles_per_ns(void);
/* True when prism_cycles() reads a hardware counter rather than the monotonic clock. */
bool prism_cycles_is_tsc(void);

#ifdef __cplusplus
}
#endif
#endif
