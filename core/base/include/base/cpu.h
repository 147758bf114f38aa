/* base/cpu.h — the spin-wait hint, and keeping a CPU from idling while a real-time
 * thread there sleeps.
 *
 * prism_cpu_relax(): the CPU's hint inside a spin-wait loop (PAUSE on x86, YIELD on
 * arm64): it yields the core's resources to a sibling hyper-thread and saves power.
 *
 * Keepers.  A CPU with nothing to run halts; waking it again (a timer or an interrupt for the
 * thread that sleeps there) costs the idle state's exit latency, and on a virtual
 * machine much more: a virtual CPU that halted is descheduled by the host, and its
 * timer interrupt then arrives when the host runs it again.  On the 2 vCPU guest the
 * benchmarks run on, a sleep's timer fired more than 200 us late 0.3 % of the time on a
 * halted vCPU and up to 2.6 ms late, against 0.06 % on a vCPU kept busy (see
 * bench/README.md, `## control`).  A keeper is a thread pinned to the CPU at SCHED_IDLE
 * that spins while nothing else wants the CPU, as the kernel's idle=poll does for every
 * CPU of a machine: the CPU never halts, and any other thread (SCHED_OTHER included)
 * takes it at once.  It costs the CPU's idle time (power, or the host's CPU time).
 *
 * Thread safety: a keeper is started and stopped by one thread.
 */
#ifndef PRISM_BASE_CPU_H
#define PRISM_BASE_CPU_H

#include "base/api.h"

#ifdef __cplusplus
extern "C" {
#endif

static inline void prism_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

typedef struct prism_cpu_keeper prism_cpu_keeper;

/* Start a keeper on cpu (>= 0).  Errors: -EINVAL (no such CPU, or not one this process
 * may run on), -errno from pthread_create or pthread_setschedparam. */
PRISM_API int prism_cpu_keeper_start(int cpu, prism_cpu_keeper **out);
/* Stop it and wait for its thread to end.  NULL is a no-op. */
PRISM_API void prism_cpu_keeper_stop(prism_cpu_keeper *k);

#ifdef __cplusplus
}
#endif

#endif
