/* control.h — a soft-real-time control loop on prism, over MuJoCo's humanoid (issue 8).
 *
 * The driver simulates the robot: MuJoCo's humanoid (examples/es_humanoid, physics steps
 * of 5 ms run as wall time passes).  Every control period it reads the observation and
 * calls a policy that lives in a real-time actor (class CtlPolicy: an MLP whose weights
 * the driver put once into the object store), with a start deadline of the next tick
 * (at least half a period after the call, when the driver itself woke late) and
 * PRISM_CALL_DROP_LATE.  It waits for the action until shortly before the next tick (the
 * physics step of the period must fit after it) and applies it; an action that misses
 * that is not applied, and the robot keeps the previous one.  Ticks are absolute-time
 * sleeps (clock_nanosleep, TIMER_ABSTIME).
 *
 * Per period, for every tick:
 *   late      the action arrived more than min(0.2 * period, 5 ms) after its tick
 *             (whether or not it was applied; includes the too-late ones);
 *   too late  the action came, but too late to be applied before the next tick;
 *   lost      it never came (dropped as stale, or not back within the grace time);
 *   taken     applied before the next tick;
 * round trip (call to arrival) and tick jitter (wake-up minus tick) in histograms.
 *
 * The floor (ctl_floor_run) is the same loop with no work: absolute-time sleeps, and
 * the wake-up lateness classified with the same thresholds (cyclictest's measurement).
 * Both add to the ctl_stats they are given, so that runs in slices, alternating the loop
 * and the floor, compare them over the same stretch of time.
 *
 * The load (ctl_load_start) is evolution-strategies training on the same node: a
 * process of this program attached to the same node runs ES generations whose rollouts
 * (real MuJoCo episodes) are prism tasks, until stopped.
 *
 * Programs that use this library must call ctl_child_main() first thing in main(): the
 * load process is this program run again.  Errors: 0 or a negative prism code, with a
 * reason in the caller's err buffer where there is one.  Not thread-safe (prism calls
 * come from one thread).
 */
#ifndef PRISM_ROBOT_CONTROL_H
#define PRISM_ROBOT_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/clock.h"
#include "base/hist.h"
#include "prism.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the policy's actor and the driver run. */
struct ctl_rt_opts {
	bool realtime;       /* false: an ordinary actor and thread (machines with one CPU) */
	uint64_t rt_spin_ns; /* the actor's spin after each call (0: forever) */
	bool let_cpu_idle;   /* no keepers: the actor's and the driver's CPUs may halt */
};
#define CTL_RT_SPIN_NS_DEFAULT (300 * PRISM_NS_PER_US)

/* The policy and the simulation: load the model, make a policy (from a file written by
 * es_policy_save, or a fresh MLP of 2 x 64 units from seed), put its weights in the
 * store, and create the actor holding it: real-time (prism_actor_opts.realtime,
 * rt_spin_ns, rt_let_cpu_idle from o) unless o->realtime is false. */
typedef struct ctl_robot ctl_robot;
int ctl_robot_create(const char *policy_path, uint64_t seed, const struct ctl_rt_opts *o,
		     ctl_robot **out, char *err, size_t errsz);
void ctl_robot_destroy(ctl_robot *r);
/* The CPU the policy's actor runs on, or -1 (not pinned). */
int ctl_robot_policy_cpu(const ctl_robot *r);

struct ctl_stats {
	uint64_t period_ns;
	uint64_t ticks;
	uint64_t taken, late, too_late, lost;
	uint64_t falls;     /* episodes that ended (the humanoid fell) and were reset */
	double reward;      /* sum of the environment's reward over the run */
	prism_hist *rtt;    /* ns, arrived actions */
	prism_hist *jitter; /* ns, wake-up minus tick */
	/* The floor only: >= 0 runs a second timer loop on that CPU (the policy's), on the
	 * same ticks, and late_either counts the ticks late on either CPU (the loop needs
	 * both); -1 after init. */
	int floor_cpu2;
	uint64_t late_either;
	uint32_t warmup;  /* the first ticks of each ctl_run or ctl_floor_run: run, not
			     * counted (a loop resumed after a pause; 0 after init) */
	int tracemark_fd; /* >= 0: each late or lost action, and each late floor tick, is
			     * written there as a line (the kernel's trace_marker, as
			     * cyclictest --tracemark); -1 after ctl_stats_init() */
};
/* Histograms allocated; free with ctl_stats_fini(). */
int ctl_stats_init(struct ctl_stats *s, uint64_t period_ns);
void ctl_stats_fini(struct ctl_stats *s);
/* min(0.2 * period, 5 ms). */
uint64_t ctl_late_threshold_ns(uint64_t period_ns);

/* The kernel's trace_marker for ctl_stats.tracemark_fd (tracefs mounted at
 * /sys/kernel/tracing or under debugfs), or -errno.  The lines land in the ftrace buffer
 * (/sys/kernel/tracing/trace, beside whatever events are enabled there); each carries
 * its tick in CLOCK_MONOTONIC ns, the clock of `perf record -k mono`. */
int ctl_tracemark_open(void);

/* Run the loop for ticks ticks of period_ns. */
int ctl_run(ctl_robot *r, uint64_t period_ns, uint64_t ticks, struct ctl_stats *out);
/* The floor: ticks absolute-time sleeps of period_ns, nothing else (s->rtt stays
 * empty; late and too_late from the wake-up lateness). */
int ctl_floor_run(uint64_t period_ns, uint64_t ticks, struct ctl_stats *out);

/* Real time for the calling thread: SCHED_FIFO at priority prio, memory locked, pinned
 * to cpu (>= 0), and unless o->let_cpu_idle the CPU kept from halting while the thread
 * sleeps (a SCHED_IDLE keeper, base/cpu.h: what cyclictest gets by writing 0 to /dev/cpu_dma_latency, on
 * machines where that leaves the CPU nothing but polling).  Returns 0, or what failed
 * (the loop still runs, as a normal thread). */
int ctl_become_realtime(int prio, int cpu, const struct ctl_rt_opts *o, char *err,
			size_t errsz);

/* Undo ctl_become_realtime(): SCHED_OTHER, memory unlocked, every CPU allowed, the
 * keeper stopped. */
void ctl_leave_realtime(void);

/* The ES load: this program run again (ctl_child_main), attached to this process's
 * node, training until ctl_load_stop().  *pid is the child. */
int ctl_load_start(pid_t *pid, char *err, size_t errsz);
/* Stop it; returns the generations it ran (>= 0), or a negative code. */
int ctl_load_stop(pid_t pid);
/* In main(), before anything else: when this process is the load, runs it and exits. */
void ctl_child_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
