/* bench_control.c — the control suite (issue 8): a soft-real-time control loop over
 * MuJoCo's humanoid, its policy in a real-time actor (examples/robot_control).
 *
 *   control/<ms>ms_idle     the loop at each interval on an otherwise idle node
 *   control/<ms>ms_loaded   the same with evolution-strategies training (rollouts of the
 *                           humanoid as prism tasks) on the same node at the same time
 *   control/<ms>ms_floor    a plain timer loop with no work (absolute-time sleeps, the
 *                           wake-up lateness), under the same load, same thresholds
 *
 * Fields: late_frac (late actions per tick: arrived more than min(0.2 period, 5 ms)
 * after the tick), too_late_frac (not in time for the next tick), lost (never arrived),
 * p50_us..max_us (the round trip of a policy call), and the tick jitter.  Target: at
 * every interval loaded late_frac <= floor late_frac + 0.001, and lost = 0.  The driver
 * runs SCHED_FIFO, pinned to a CPU the actor does not spin on, memory locked, as
 * cyclictest -p -m does; the floor runs the same way.
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
		{"ticks", (double)s->ticks, NULL},
		{"jitter_p50_us", j.p50 / 1e3, NULL},
		{"jitter_p99_us", j.p99 / 1e3, NULL},
		{"jitter_max_us", j.max / 1e3, NULL},
	};
	bench_report_value(o, "control", name, "frac", (double)s->late / n, f,
			   sizeof(f) / sizeof(f[0]));
}

/* One case: the loop (robot non-NULL) or the floor at interval ms. */
static int one(const struct bench_opts *o, ctl_robot *robot, unsigned ms, const char *mode)
{
	char name[64];
	struct ctl_stats s;
	uint64_t period = (uint64_t)ms * PRISM_NS_PER_MS;
	snprintf(name, sizeof(name), "%ums_%s", ms, mode);
	int rc = ctl_stats_init(&s, period);
	if (rc == 0)
		rc = robot ? ctl_run(robot, period, ticks_for(o, period), &s)
			   : ctl_floor_run(period, ticks_for(o, period), &s);
	if (rc == 0 && robot)
		report_loop(o, name, &s);
	else if (rc == 0)
		report_floor(o, name, &s);
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
	int rc = prism_init(&(prism_opts){.log_level = -1});
	if (rc) {
		fprintf(stderr, "prism-bench control: prism_init: %s\n", prism_last_error());
		return 1;
	}
	ctl_robot *robot = NULL;
	rc = ctl_robot_create(NULL, 1, true, spin_ns(), &robot, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "prism-bench control: %s\n", err);
		prism_shutdown();
		return 1;
	}
	int pcpu = ctl_robot_policy_cpu(robot);
	if (ctl_become_realtime(20, pcpu > 0 ? 0 : pcpu == 0 ? 1 : -1, err, sizeof(err)))
		bench_note(o, "warning: the driver is not real-time: %s\n", err);
	bench_note(o, "policy actor on CPU %d; driver SCHED_FIFO 20 on CPU %d\n", pcpu,
		   pcpu > 0 ? 0 : 1);
	for (size_t i = 0; i < NINT && rc == 0; i++)
		rc = one(o, robot, intervals_ms[i], "idle");
	pid_t load = 0;
	if (rc == 0 && (rc = ctl_load_start(&load, err, sizeof(err))) != 0)
		fprintf(stderr, "prism-bench control: cannot start the ES load: %s\n", err);
	if (rc == 0) {
		/* Let the load's workers start and its first generation get going. */
		usleep(o->quick ? 300000 : 1000000);
		for (size_t i = 0; i < NINT && rc == 0; i++) {
			rc = one(o, robot, intervals_ms[i], "loaded");
			if (rc == 0)
				rc = one(o, NULL, intervals_ms[i], "floor");
		}
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
