/* bench_tasks.c — the tasks suite, named after Ray's microbenchmarks.
 *
 *   single_client_tasks_sync   submit one empty task, get its result, repeat: the round
 *                              trip (p50/p99/p99.9/max)
 *   single_client_tasks_async  one driver keeps a window of tasks in flight (ops/s)
 *   multi_client_tasks_async   several drivers on one node at once (ops/s, summed)
 *   tasks_1m                   one million empty tasks submitted and collected (s)
 *
 * The driver starts an embedded node with one worker per CPU.  Extra drivers for the
 * multi-client case are this binary run again with --tasks-client, attached to the same
 * node.  Rounds of the sync and async cases are interleaved.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/hist.h"
#include "prism.h"
#include "suites.h"

static int noop(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)ctx;
	(void)args;
	(void)nargs;
	return 0;
}
PRISM_REMOTE(noop);

static int fail(const char *what, int rc)
{
	fprintf(stderr, "prism-bench tasks: %s: %s (%s)\n", what, prism_strerror(rc),
		prism_last_error());
	return 1;
}

static int sync_round(int n, prism_hist *h)
{
	for (int i = 0; i < n; i++) {
		prism_ref r;
		const void *v;
		size_t len;
		uint64_t t0 = prism_cycles();
		int rc = prism_submit("noop", NULL, 0, NULL, &r);
		if (rc)
			return fail("submit", rc);
		rc = prism_get(r, 10 * (int64_t)PRISM_NS_PER_SEC, &v, &len);
		uint64_t dt = prism_cycles() - t0;
		prism_ref_release(r);
		if (rc)
			return fail("get", rc);
		if (h)
			prism_hist_record(h, prism_cycles_to_ns(dt));
	}
	return 0;
}

/* n tasks with at most `window` in flight; returns the rate, or < 0. */
static double async_run(long n, int window)
{
	prism_ref *ring = malloc((size_t)window * sizeof(*ring));
	if (!ring)
		return -1;
	long sent = 0, got = 0;
	uint64_t t0 = prism_now_ns();
	while (got < n) {
		while (sent < n && sent - got < window) {
			int rc = prism_submit("noop", NULL, 0, NULL, &ring[sent % window]);
			if (rc) {
				fail("submit", rc);
				free(ring);
				return -1;
			}
			sent++;
		}
		const void *v;
		size_t len;
		int rc =
			prism_get(ring[got % window], 30 * (int64_t)PRISM_NS_PER_SEC, &v, &len);
		if (rc) {
			fail("get", rc);
			free(ring);
			return -1;
		}
		prism_ref_release(ring[got % window]);
		got++;
	}
	double secs = (double)(prism_now_ns() - t0) / 1e9;
	free(ring);
	return (double)n / secs;
}

/* --tasks-client ADDR SECONDS: one more driver for multi_client_tasks_async; prints its
 * task count and elapsed ns. */
int bench_tasks_client(const char *addr, double seconds)
{
	prism_opts po = {.address = addr, .log_level = -1};
	int rc = prism_init(&po);
	if (rc)
		return fail("client prism_init", rc);
	uint64_t t0 = prism_now_ns(), until = t0 + (uint64_t)(seconds * 1e9);
	long done = 0;
	while (prism_now_ns() < until) {
		if (async_run(2000, 200) < 0)
			return 1;
		done += 2000;
	}
	printf("%ld %llu\n", done, (unsigned long long)(prism_now_ns() - t0));
	prism_shutdown();
	return 0;
}

static double multi_client(int clients, double seconds)
{
	char exe[4096], secs[32];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -1;
	exe[n] = '\0';
	snprintf(secs, sizeof(secs), "%.3f", seconds);
	pid_t pids[8];
	int fds[8];
	extern char **environ;
	for (int c = 0; c < clients; c++) {
		int p[2];
		if (pipe(p) != 0)
			return -1;
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, p[1], 1);
		posix_spawn_file_actions_addclose(&fa, p[0]);
		char *argv[] = {exe, "--tasks-client", (char *)prism_node_address(), secs,
				NULL};
		if (posix_spawn(&pids[c], exe, &fa, NULL, argv, environ) != 0)
			return -1;
		posix_spawn_file_actions_destroy(&fa);
		close(p[1]);
		fds[c] = p[0];
	}
	double total = 0;
	for (int c = 0; c < clients; c++) {
		char buf[128] = {0};
		ssize_t got = read(fds[c], buf, sizeof(buf) - 1);
		long tasks = 0;
		unsigned long long ns = 0;
		close(fds[c]);
		int st = 0;
		waitpid(pids[c], &st, 0);
		if (got <= 0 || sscanf(buf, "%ld %llu", &tasks, &ns) != 2 || ns == 0 ||
		    !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "prism-bench tasks: client %d failed\n", c);
			return -1;
		}
		total += (double)tasks / ((double)ns / 1e9);
	}
	return total;
}

static double median(double *v, int n)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
			double t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int bench_tasks(const struct bench_opts *o)
{
	const int rounds = o->rounds ? o->rounds : (o->quick ? 1 : 5);
	const int sync_n = o->quick ? 2000 : 20000;
	const long async_n = o->quick ? 20000 : 200000;
	prism_hist *h = NULL;
	double rate[64];
	int rc = prism_init(&(prism_opts){.log_level = -1});
	if (rc)
		return fail("prism_init", rc);
	if (prism_hist_create(&h) != 0) {
		prism_shutdown();
		return 1;
	}
	/* Warm up: workers started, leases held, pages touched. */
	if (sync_round(2000, NULL) != 0 || async_run(20000, 1000) < 0)
		goto fail;
	for (int r = 0; r < rounds && r < 64; r++) {
		if (sync_round(sync_n, h) != 0)
			goto fail;
		rate[r] = async_run(async_n, 1000);
		if (rate[r] < 0)
			goto fail;
	}
	bench_report_header(o, "tasks",
			    "empty tasks on one node (an embedded node, one worker per CPU)");
	struct bench_field f[1] = {{"rounds", rounds, NULL}};
	bench_report_latency(o, "tasks", "single_client_tasks_sync", h, f, 1);
	double med = median(rate, rounds < 64 ? rounds : 64);
	struct bench_field fa[2] = {{"rounds", rounds, NULL}, {"window", 1000, NULL}};
	bench_report_value(o, "tasks", "single_client_tasks_async", "ops/s", med, fa, 2);
	double multi = multi_client(2, o->quick ? 0.5 : 2.0);
	if (multi < 0)
		goto fail;
	struct bench_field fm[1] = {{"clients", 2, NULL}};
	bench_report_value(o, "tasks", "multi_client_tasks_async", "ops/s", multi, fm, 1);
	if (!o->quick) {
		uint64_t t0 = prism_now_ns();
		if (async_run(1000000, 10000) < 0)
			goto fail;
		double secs = (double)(prism_now_ns() - t0) / 1e9;
		struct bench_field f1[1] = {{"tasks", 1e6, NULL}};
		bench_report_value(o, "tasks", "tasks_1m", "s", secs, f1, 1);
	}
	prism_hist_destroy(h);
	prism_shutdown();
	return 0;
fail:
	prism_hist_destroy(h);
	prism_shutdown();
	return 1;
}
