/* robot_control — a soft-real-time controller on prism: MuJoCo's humanoid stepped by the
 * driver, its policy (an MLP whose weights sit in the object store) in a real-time actor,
 * an action due every control period (control.h explains the loop and what it counts).
 *
 *   robot_control [--intervals 1,2,5,10,20,30] [--seconds S] [--load] [--policy FILE]
 *                 [--no-rt] [--rt-spin-us US] [--let-cpu-idle] [--seed N] [--tracemark]
 *
 * For each interval it runs the loop for S seconds (default 2) and prints actions taken,
 * late, too late, lost, the round trip's p50/p99/p99.9/max and the tick jitter.  --load
 * runs evolution-strategies training on the same node meanwhile; --no-rt uses an
 * ordinary actor and thread (no pinning, no SCHED_FIFO); --rt-spin-us sets how long the
 * real-time actor spins after each call before it sleeps (default 300; 0: forever);
 * --let-cpu-idle lets the actor's and the driver's CPUs halt while they sleep (by
 * default a SCHED_IDLE keeper spins there: base/cpu.h);
 * --tracemark writes a line to the kernel's trace_marker for each late or lost action,
 * to find it in a kernel trace (/sys/kernel/tracing/trace).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "control.h"

#define MAX_INTERVALS 16

static int parse_intervals(const char *s, unsigned *ms, int *n)
{
	*n = 0;
	while (*s) {
		char *end;
		long v = strtol(s, &end, 10);
		if (end == s || v < 1 || v > 1000 || *n == MAX_INTERVALS)
			return -1;
		ms[(*n)++] = (unsigned)v;
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return -1;
	}
	return *n ? 0 : -1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: robot_control [--intervals MS,...] [--seconds S] [--load] "
		   "[--policy FILE] [--no-rt] [--rt-spin-us US] [--let-cpu-idle] [--seed N] "
		   "[--tracemark]\n");
}

static double us(uint64_t ns)
{
	return (double)ns / 1e3;
}

static void print_stats(unsigned ms, const struct ctl_stats *s)
{
	prism_hist_summary r, j;
	prism_hist_summarize(s->rtt, &r);
	prism_hist_summarize(s->jitter, &j);
	printf("interval %u ms: ticks %llu, actions taken %llu, late %llu, too late %llu, "
	       "lost %llu (late threshold %.0f us)\n",
	       ms, (unsigned long long)s->ticks, (unsigned long long)s->taken,
	       (unsigned long long)s->late, (unsigned long long)s->too_late,
	       (unsigned long long)s->lost, us(ctl_late_threshold_ns(s->period_ns)));
	printf("  round trip us: p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f   tick jitter us: "
	       "p50 %.1f  p99 %.1f  max %.1f\n",
	       us(r.p50), us(r.p99), us(r.p999), us(r.max), us(j.p50), us(j.p99), us(j.max));
	printf("  humanoid: %llu falls, reward %.1f\n", (unsigned long long)s->falls,
	       s->reward);
}

int main(int argc, char **argv)
{
	ctl_child_main(argc, argv);
	unsigned ms[MAX_INTERVALS] = {1, 2, 5, 10, 20, 30};
	int nint = 6;
	double seconds = 2;
	bool load = false, rt = true, tracemark = false, idle = false;
	const char *policy = NULL;
	uint64_t seed = 1, spin_us = CTL_RT_SPIN_NS_DEFAULT / PRISM_NS_PER_US;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--intervals") == 0 && v) {
			if (parse_intervals(v, ms, &nint) != 0) {
				fprintf(stderr,
					"robot_control: --intervals wants 1..1000 ms, "
					"comma-separated, got '%s'\n",
					v);
				return 2;
			}
			i++;
		} else if (strcmp(a, "--seconds") == 0 && v) {
			seconds = atof(v);
			if (!(seconds > 0 && seconds <= 3600)) {
				fprintf(stderr, "robot_control: --seconds wants (0, 3600]\n");
				return 2;
			}
			i++;
		} else if (strcmp(a, "--policy") == 0 && v) {
			policy = v;
			i++;
		} else if (strcmp(a, "--rt-spin-us") == 0 && v) {
			spin_us = strtoull(v, NULL, 10);
			i++;
		} else if (strcmp(a, "--seed") == 0 && v) {
			seed = strtoull(v, NULL, 10);
			i++;
		} else if (strcmp(a, "--load") == 0) {
			load = true;
		} else if (strcmp(a, "--let-cpu-idle") == 0) {
			idle = true;
		} else if (strcmp(a, "--tracemark") == 0) {
			tracemark = true;
		} else if (strcmp(a, "--no-rt") == 0) {
			rt = false;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "robot_control: unknown option '%s'\n", a);
			usage(stderr);
			return 2;
		}
	}
	int mark = -1;
	if (tracemark && (mark = ctl_tracemark_open()) < 0) {
		fprintf(stderr, "robot_control: --tracemark: cannot open trace_marker: %s\n",
			strerror(-mark));
		return 1;
	}
	int rc = prism_init(NULL);
	if (rc) {
		fprintf(stderr, "robot_control: prism_init: %s\n", prism_last_error());
		return 1;
	}
	char err[512];
	ctl_robot *robot;
	struct ctl_rt_opts ro = {
		.realtime = rt, .rt_spin_ns = spin_us * PRISM_NS_PER_US, .let_cpu_idle = idle};
	rc = ctl_robot_create(policy, seed, &ro, &robot, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "robot_control: %s\n", err);
		prism_shutdown();
		return 1;
	}
	if (rt) {
		/* The driver's own CPU: one the policy's actor does not spin on. */
		int pcpu = ctl_robot_policy_cpu(robot);
		if (ctl_become_realtime(20,
					pcpu > 0    ? 0
					: pcpu == 0 ? 1
						    : -1,
					&ro, err, sizeof(err)))
			fprintf(stderr, "robot_control: warning: %s\n", err);
	}
	pid_t lpid = 0;
	if (load && ctl_load_start(&lpid, err, sizeof(err)) != 0) {
		fprintf(stderr, "robot_control: cannot start the ES load: %s\n", err);
		load = false;
	}
	printf("robot_control: humanoid, policy in a %s actor on CPU %d%s\n",
	       rt ? "real-time" : "plain", ctl_robot_policy_cpu(robot),
	       load ? ", ES training on the same node" : "");
	uint64_t total = 0, lost = 0;
	for (int i = 0; i < nint && rc == 0; i++) {
		struct ctl_stats s;
		uint64_t period = (uint64_t)ms[i] * PRISM_NS_PER_MS;
		uint64_t ticks = (uint64_t)(seconds * 1e9 / (double)period);
		rc = ctl_stats_init(&s, period);
		s.tracemark_fd = mark;
		if (rc == 0)
			rc = ctl_run(robot, period, ticks ? ticks : 1, &s);
		if (rc == 0) {
			print_stats(ms[i], &s);
			total += s.taken;
			lost += s.lost;
		}
		ctl_stats_fini(&s);
	}
	if (load) {
		int gens = ctl_load_stop(lpid);
		if (gens < 0)
			printf("ES load: failed (%s)\n", prism_strerror(gens));
		else
			printf("ES load: %d generations meanwhile\n", gens);
	}
	prism_node_stats ns;
	if (prism_node_stats_get(&ns) == 0)
		printf("node: %llu deadline calls, %llu started late, %llu dropped stale\n",
		       (unsigned long long)ns.deadline_calls,
		       (unsigned long long)ns.deadline_late,
		       (unsigned long long)ns.deadline_dropped);
	ctl_robot_destroy(robot);
	prism_shutdown();
	if (rc) {
		fprintf(stderr, "robot_control: %s\n", prism_strerror(rc));
		return 1;
	}
	printf("robot_control: %llu actions taken in all, %llu lost\n",
	       (unsigned long long)total, (unsigned long long)lost);
	return 0;
}
