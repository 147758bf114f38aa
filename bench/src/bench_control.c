/* bench_control.c — the control suite (issue 8): a soft-real-time control loop over
 * MuJoCo's humanoid, its policy in a real-time actor (examples/robot_control).
 *
 *   control/<ms>ms_idle     the loop at each interval on an otherwise idle node
 *   control/<ms>ms_loaded   the same with evolution-strategies training (rollouts of the
 *                           humanoid as prism tasks) on the same node at the same time
 *   control/<ms>ms_floor    a plain timer loop with no work (absolute-time sleeps, the
 *                           wake-up lateness) on the driver's CPU, under the same load,
 *                           same thresholds, in slices that alternate with the loaded
 *                           loop's; late_frac_either_cpu: a second such loop on the
 *                           policy's CPU, ticks late on either (the loop needs both)
 *
 * Fields: late_frac (late actions per tick: arrived more than min(0.2 period, 5 ms)
 * after the tick), too_late_frac (not in time for the next tick), lost (never arrived),
 * p50_us..max_us (the round trip of a policy call), and the tick jitter.  Target: at
 * every interval loaded late_frac <= floor late_frac + 0.001, and lost = 0.  The driver
 * runs SCHED_FIFO, pinned to a CPU the actor does not spin on, memory locked, its CPU
 * kept from halting (a SCHED_IDLE keeper), as cyclictest -p -m does with its
 * /dev/cpu_dma_latency; the floor runs the same way.  PRISM_BENCH_LET_CPU_IDLE=1: no
 * keepers, for the actor or the driver (to compare); PRISM_BENCH_TRACEMARK=1: each late
 * action and late floor tick as a line in the kernel's trace_marker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "suites.h"

#ifdef PRISM_BENCH_CONTROL
#include "control.h"

static const unsigned intervals_ms[] = {1, 2, 5, 10, 20, 30};
#define NINT (sizeof(intervals_ms) / sizeof(intervals_ms[0]))

/* Long enough for late_frac to resolve 0.001 (1,000 ticks) and to last 2 s at least;
 * --quick: a third of a second, 20 ticks at least. */
static uint64_t ticks_for(const struct bench_opts *o, uint64_t period)
{
	uint64_t want = o->quick ? 300 * PRISM_NS_PER_MS : 2 * PRISM_NS_PER_SEC;
	uint64_t t = want / period, least = o->quick ? 20 : 1000;
	return t > least ? t : least;
}

static void report_loop(const struct bench_opts *o, const char *name, const struct ctl_stats *s)
{
	prism_hist_summary r, j;
	prism_hist_summarize(s->rtt, &r);
	prism_hist_summarize(s->jitter, &j);
	double n = s->ticks ? (double)s->ticks : 1;
	struct bench_field f[] = {
		{"late_frac", (double)s->late / n, NULL},
		{"too_late_frac", (double)s->too_late / n, NULL},
		{"lost", (double)s->lost, NULL},
		{"p50_us", r.p50 / 1e3, NULL},
		{"p99_us", r.p99 / 1e3, NULL},
		{"p999_us", r.p999 / 1e3, NULL},
		{"max_us", r.max / 1e3, NULL},
		{"ticks", (double)s->ticks, NULL},
		{"taken", (double)s->taken, NULL},
		{"jitter_p99_us", j.p99 / 1e3, NULL},
		{"jitter_max_us", j.max / 1e3, NULL},
	};
	bench_report_latency(o, "control", name, s->rtt, f, sizeof(f) / sizeof(f[0]));
}

static void report_floor(const struct bench_opts *o, const char *name,
			 const struct ctl_stats *s)
{
	prism_hist_summary j;
	prism_hist_summarize(s->jitter, &j);
	double n = s->ticks ? (double)s->ticks : 1;
	struct bench_field f[] = {
		{"late_frac", (double)s->late / n, NULL},
		{"too_late_frac", (double)s->too_late / n, NULL},
		{"late_frac_either_cpu", (double)s->late_either / n, NULL},
		{"ticks", (double)s->ticks, NULL},
		{"jitter_p50_us", j.p50 / 1e3, NULL},
		{"jitter_p99_us", j.p99 / 1e3, NULL},
		{"jitter_max_us", j.max / 1e3, NULL},
	};
	bench_report_value(o, "control", name, "frac", (double)s->late / n, f,
			   sizeof(f) / sizeof(f[0]));
}

/* PRISM_BENCH_TRACEMARK=1: late and lost actions, and late floor ticks, as lines in the
 * kernel's trace_marker (to find them in a perf or ftrace record). */
static int tracemark_fd = -1;

/* The loaded loop and its floor at interval ms, in CTL_SLICES alternating slices of
 * each: host and load noise comes and goes over seconds, and both see the same
 * stretch of it.  Each slice starts with CTL_WARMUP ticks that are not counted: the
 * loop resumes after the floor's slice, and the actor relearns the phase of its calls
 * (a continuous loop has no such pauses). */
#define CTL_SLICES 8
#define CTL_WARMUP 3
static int loaded_pair(const struct bench_opts *o, ctl_robot *robot, unsigned ms)
{
	int pcpu = ctl_robot_policy_cpu(robot);
	char name[64];
	struct ctl_stats loop, floor_;
	uint64_t period = (uint64_t)ms * PRISM_NS_PER_MS, ticks = ticks_for(o, period);
	uint64_t slice = (ticks + CTL_SLICES - 1) / CTL_SLICES;
	int rc = ctl_stats_init(&loop, period);
	if (rc)
		return rc;
	if ((rc = ctl_stats_init(&floor_, period)) != 0) {
		ctl_stats_fini(&loop);
		return rc;
	}
	loop.tracemark_fd = floor_.tracemark_fd = tracemark_fd;
	loop.warmup = floor_.warmup = CTL_WARMUP;
	floor_.floor_cpu2 = pcpu; /* the policy's CPU too: late_frac_either_cpu */
	for (uint64_t done = 0; done < ticks && rc == 0; done += slice) {
		uint64_t n = (ticks - done < slice ? ticks - done : slice) + CTL_WARMUP;
		rc = ctl_run(robot, period, n, &loop);
		if (rc == 0)
			rc = ctl_floor_run(period, n, &floor_);
	}
	if (rc == 0) {
		snprintf(name, sizeof(name), "%ums_loaded", ms);
		report_loop(o, name, &loop);
		snprintf(name, sizeof(name), "%ums_floor", ms);
		report_floor(o, name, &floor_);
	} else {
		fprintf(stderr, "prism-bench control: %ums loaded: %s\n", ms,
			prism_strerror(rc));
	}
	ctl_stats_fini(&loop);
	ctl_stats_fini(&floor_);
	return rc;
}

/* The idle loop at interval ms. */
static int idle_case(const struct bench_opts *o, ctl_robot *robot, unsigned ms)
{
	char name[64];
	struct ctl_stats s;
	uint64_t period = (uint64_t)ms * PRISM_NS_PER_MS;
	snprintf(name, sizeof(name), "%ums_idle", ms);
	int rc = ctl_stats_init(&s, period);
	s.tracemark_fd = tracemark_fd;
	if (rc == 0)
		rc = ctl_run(robot, period, ticks_for(o, period), &s);
	if (rc == 0)
		report_loop(o, name, &s);
	else
		fprintf(stderr, "prism-bench control: %s: %s\n", name, prism_strerror(rc));
	ctl_stats_fini(&s);
	return rc;
}

/* The real-time actor's spin after each call: CTL_RT_SPIN_NS_DEFAULT, or
 * PRISM_BENCH_RT_SPIN_US (0: forever) to compare. */
static uint64_t spin_ns(void)
{
	const char *e = getenv("PRISM_BENCH_RT_SPIN_US");
	return e ? strtoull(e, NULL, 10) * PRISM_NS_PER_US : CTL_RT_SPIN_NS_DEFAULT;
}

int bench_control(const struct bench_opts *o)
{
	char err[512];
	bench_report_header(
		o, "control",
		"humanoid control loop, policy in a real-time actor: idle, under ES "
		"training, and the timer floor");
	const char *tm = getenv("PRISM_BENCH_TRACEMARK");
	if (tm && strcmp(tm, "1") == 0 && (tracemark_fd = ctl_tracemark_open()) < 0) {
		fprintf(stderr, "prism-bench control: PRISM_BENCH_TRACEMARK: %s\n",
			prism_strerror(tracemark_fd));
		return 1;
	}
	int rc = prism_init(&(prism_opts){.log_level = -1});
	if (rc) {
		fprintf(stderr, "prism-bench control: prism_init: %s\n", prism_last_error());
		return 1;
	}
	ctl_robot *robot = NULL;
	const char *li = getenv("PRISM_BENCH_LET_CPU_IDLE");
	struct ctl_rt_opts ro = {.realtime = true,
				 .rt_spin_ns = spin_ns(),
				 .let_cpu_idle = li && strcmp(li, "1") == 0};
	rc = ctl_robot_create(NULL, 1, &ro, &robot, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "prism-bench control: %s\n", err);
		prism_shutdown();
		return 1;
	}
	int pcpu = ctl_robot_policy_cpu(robot);
	if (ctl_become_realtime(20, pcpu > 0 ? 0 : pcpu == 0 ? 1 : -1, &ro, err, sizeof(err)))
		bench_note(o, "warning: the driver is not real-time: %s\n", err);
	bench_note(o, "policy actor on CPU %d; driver SCHED_FIFO 20 on CPU %d; CPUs %s\n", pcpu,
		   pcpu > 0 ? 0 : 1, ro.let_cpu_idle ? "may idle" : "kept from idling");
	for (size_t i = 0; i < NINT && rc == 0; i++)
		rc = idle_case(o, robot, intervals_ms[i]);
	pid_t load = 0;
	if (rc == 0 && (rc = ctl_load_start(&load, err, sizeof(err))) != 0)
		fprintf(stderr, "prism-bench control: cannot start the ES load: %s\n", err);
	if (rc == 0) {
		/* Let the load's workers start and its first generation get going. */
		usleep(o->quick ? 300000 : 1000000);
		for (size_t i = 0; i < NINT && rc == 0; i++)
			rc = loaded_pair(o, robot, intervals_ms[i]);
		int gens = ctl_load_stop(load);
		if (gens < 0) {
			fprintf(stderr, "prism-bench control: the ES load failed: %s\n",
				prism_strerror(gens));
			rc = gens;
		} else {
			bench_note(o, "ES load: %d generations during the loaded cases\n",
				   gens);
		}
	}
	prism_node_stats ns;
	if (prism_node_stats_get(&ns) == 0)
		bench_note(o, "node: %llu deadline calls, %llu started late, %llu dropped\n",
			   (unsigned long long)ns.deadline_calls,
			   (unsigned long long)ns.deadline_late,
			   (unsigned long long)ns.deadline_dropped);
	ctl_leave_realtime();
	ctl_robot_destroy(robot);
	prism_shutdown();
	return rc ? 1 : 0;
}

void bench_control_child(int argc, char **argv)
{
	ctl_child_main(argc, argv);
}

#else

int bench_control(const struct bench_opts *o)
{
	bench_report_header(o, "control", "humanoid control loop (needs MuJoCo)");
	bench_report_skip(o, "control", "all", "built without MuJoCo (libmujoco-dev)");
	return 0;
}

void bench_control_child(int argc, char **argv)
{
	(void)argc;
	(void)argv;
}

#endif
