/* bench_cluster_tasks.c — tasks between nodes, part of the cluster suite:
 *
 *   remote_task_sync    the driver on the head's node submits an empty task that only
 *                       another node can run (it needs resource "far", which only that
 *                       node has), gets its result, and repeats: the round trip through
 *                       both daemons and the transport (p50/p99/p99.9/max), compared with
 *                       raw_tcp_rtt_64b (remote_task_sync_vs_raw_tcp_rtt, target <= 3)
 *   tasks_async_3nodes  the same driver keeps a window of empty tasks in flight, spread
 *                       evenly over three nodes (resources n0, n1, n2, one per node):
 *                       tasks/s through local and remote leases at once
 *
 * A three-node cluster on loopback, started with the `prism` CLI beside this binary (each
 * node with its own socket directory and one CPU), and stopped at the end.  Workers are
 * this binary run again by each node (its empty task `noop` is registered here).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/hist.h"
#include "prism.h"
#include "suites.h"

#define SUITE "cluster"

extern char **environ;

static char cli[4096 + 16];
static char dir[64];

/* Run the prism CLI with argv (NULL-terminated, argv[0] ignored) and TMPDIR=tmp; its exit
 * status, or -1.  Output goes to dir/cli.log. */
static int run_cli(const char *tmp, char **argv)
{
	char tmpvar[128], log[128];
	snprintf(tmpvar, sizeof(tmpvar), "TMPDIR=%s", tmp);
	snprintf(log, sizeof(log), "%s/cli.log", dir);
	size_t ne = 0;
	while (environ[ne])
		ne++;
	char **env = calloc(ne + 2, sizeof(*env));
	if (!env)
		return -1;
	size_t k = 0;
	for (size_t i = 0; i < ne; i++)
		if (strncmp(environ[i], "TMPDIR=", 7) != 0 &&
		    strncmp(environ[i], "PRISM_ADDRESS=", 14) != 0)
			env[k++] = environ[i];
	env[k++] = tmpvar;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	argv[0] = cli;
	pid_t pid;
	int rc = posix_spawn(&pid, cli, &fa, NULL, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	free(env);
	if (rc)
		return -1;
	int st;
	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int node_start(const char *name, const char *res, int port, bool head)
{
	char tmp[128], sock[160], ports[16], token[192];
	snprintf(tmp, sizeof(tmp), "%s/%s", dir, name);
	snprintf(sock, sizeof(sock), "%s/node.sock", tmp);
	snprintf(ports, sizeof(ports), "%d", port);
	snprintf(token, sizeof(token), "%s/head/cluster.token", dir);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
		return -1;
	char *hv[] = {NULL,     "start",       "--socket",   sock, "--head",
		      "--port", ports,         "--num-cpus", "1",  "--num-workers",
		      "1",      "--resources", (char *)res,  NULL};
	char *jv[] = {NULL,           "start",     "--socket",   sock, "--address",     addr,
		      "--token-file", token,       "--num-cpus", "1",  "--num-workers", "1",
		      "--resources",  (char *)res, NULL};
	return run_cli(tmp, head ? hv : jv);
}

static void node_stop(const char *name)
{
	char tmp[128], sock[160];
	snprintf(tmp, sizeof(tmp), "%s/%s", dir, name);
	snprintf(sock, sizeof(sock), "%s/node.sock", tmp);
	char *v[] = {NULL, "stop", "--socket", sock, NULL};
	run_cli(tmp, v);
}

static const prism_resource far_res = {"far", 1};
static const prism_resource node_res[3] = {{"n0", 1}, {"n1", 1}, {"n2", 1}};

static int submit_far(void *arg, long i, prism_ref *out)
{
	(void)arg;
	(void)i;
	prism_call_opts o = {.resources = &far_res, .nresources = 1};
	return prism_submit("noop", NULL, 0, &o, out);
}

static int submit_spread(void *arg, long i, prism_ref *out)
{
	(void)arg;
	prism_call_opts o = {.resources = &node_res[i % 3],
			     .nresources = 1,
			     /* a thousandth of a CPU: many in flight on one worker */
			     .num_cpus = 0.001};
	return prism_submit("noop", NULL, 0, &o, out);
}

/* A BenchSink actor (bench_actors.c) held by node a's "far" resource. */
static int call_far_actor(void *arg, long i, prism_ref *out)
{
	(void)i;
	return prism_actor_call(*(prism_actor *)arg, "nop", NULL, 0, NULL, out);
}

static void cleanup(void)
{
	node_stop("b");
	node_stop("a");
	node_stop("head");
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (getenv("PRISM_BENCH_KEEP"))
		fprintf(stderr, "prism-bench cluster: kept %s\n", dir);
	else if (system(cmd) != 0)
		fprintf(stderr, "prism-bench cluster: cannot remove %s\n", dir);
}

int bench_cluster_tasks(const struct bench_opts *o)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return 1;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	*slash = '\0';
	snprintf(cli, sizeof(cli), "%s/prism", exe);
	if (access(cli, X_OK) != 0) {
		bench_report_skip(o, SUITE, "remote_task_sync",
				  "the prism CLI is not beside "
				  "prism-bench");
		return 0;
	}
	snprintf(dir, sizeof(dir), "/tmp/prism-bench-cluster-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	int port = 21000 + getpid() % 20000;
	int rc = 1;
	prism_hist *h = NULL, *ha = NULL;
	/* The floor to compare with, measured in the same run (reported by the transfer
	 * part of the suite as raw_tcp_rtt_64b). */
	double raw_rtt_p50_ns = 0;
	if (prism_hist_create(&h) == 0 && bench_raw_tcp(o, false, h, NULL) == 0)
		raw_rtt_p50_ns = (double)prism_hist_percentile(h, 50.0);
	prism_hist_destroy(h);
	h = NULL;
	if (node_start("head", "n0=1000", port, true) != 0 ||
	    node_start("a", "n1=1000,far=1", port, false) != 0 ||
	    node_start("b", "n2=1000", port, false) != 0) {
		fprintf(stderr,
			"prism-bench cluster: cannot start three nodes (see %s/cli.log)\n",
			dir);
		cleanup();
		return 1;
	}
	/* Every node's table learns the others' resources from its view (0.5 s). */
	usleep(1200 * 1000);
	char sock[160];
	snprintf(sock, sizeof(sock), "%s/head/node.sock", dir);
	if (prism_init(&(prism_opts){.address = sock, .log_level = -1}) != 0 ||
	    prism_hist_create(&h) != 0) {
		fprintf(stderr, "prism-bench cluster: cannot attach: %s\n", prism_last_error());
		goto out;
	}
	const int rounds = o->rounds ? o->rounds : (o->quick ? 1 : 3);
	const int sync_n = o->quick ? 2000 : 10000;
	const long async_n = o->quick ? 20000 : 100000;
	double rate[64];
	if (bench_sync_rounds(SUITE, submit_far, NULL, 1000, NULL) != 0) {
		fprintf(stderr, "prism-bench cluster: warming up remote tasks failed\n");
		goto out;
	}
	if (bench_async_window(SUITE, submit_spread, NULL, 10000, 1000) < 0) {
		fprintf(stderr, "prism-bench cluster: warming up tasks on 3 nodes failed\n");
		goto out;
	}
	prism_actor far;
	prism_actor_opts ao = {.resources = &far_res, .nresources = 1};
	if (prism_actor_create("BenchSink", NULL, 0, &ao, &far) != 0 ||
	    prism_hist_create(&ha) != 0 ||
	    bench_sync_rounds(SUITE, call_far_actor, &far, 1000, NULL) != 0) {
		fprintf(stderr, "prism-bench cluster: an actor on another node failed: %s\n",
			prism_last_error());
		goto out;
	}
	for (int r = 0; r < rounds && r < 64; r++) {
		if (bench_sync_rounds(SUITE, call_far_actor, &far, sync_n, ha) != 0)
			goto out;
	}
	prism_actor_kill(far);
	for (int r = 0; r < rounds && r < 64; r++) {
		if (bench_sync_rounds(SUITE, submit_far, NULL, sync_n, h) != 0)
			goto out;
		rate[r] = bench_async_window(SUITE, submit_spread, NULL, async_n, 1000);
		if (rate[r] < 0)
			goto out;
	}
	struct bench_field f[] = {{"rounds", rounds, NULL}, {"nodes", 3, NULL}};
	bench_report_latency(o, SUITE, "remote_task_sync", h, f, 2);
	bench_report_latency(o, SUITE, "remote_actor_sync", ha, f, 2);
	if (raw_rtt_p50_ns > 0) {
		struct bench_field fr[] = {{"target_max", 3, NULL},
					   {"raw_tcp_rtt_p50_us", raw_rtt_p50_ns / 1e3, NULL}};
		bench_report_value(o, SUITE, "remote_task_sync_vs_raw_tcp_rtt", "ratio",
				   (double)prism_hist_percentile(h, 50.0) / raw_rtt_p50_ns, fr,
				   2);
	}
	struct bench_field fa[] = {
		{"rounds", rounds, NULL}, {"window", 1000, NULL}, {"nodes", 3, NULL}};
	bench_report_value(o, SUITE, "tasks_async_3nodes", "ops/s",
			   bench_median(rate, rounds < 64 ? rounds : 64), fa, 3);
	rc = 0;
out:
	prism_hist_destroy(h);
	prism_hist_destroy(ha);
	prism_shutdown();
	cleanup();
	return rc;
}
