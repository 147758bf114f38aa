/* prism-bench — prism's benchmarks.  Usage and output: ../shared/BENCHMARKS.md and
 * bench/README.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "suites.h"

static const struct {
	const char *name;
	int (*run)(const struct bench_opts *o);
	const char *about;
} suites[] = {
	{"ring", bench_ring, "SPSC shared-memory rings between two processes"},
	{"tasks", bench_tasks, "empty tasks: sync round trip, async throughput, 1M tasks"},
	{"actors", bench_actors, "empty actor calls: 1:1 sync and async, n:n, real-time"},
	{"transport", bench_transport,
	 "links between processes: tcp, softverbs, verbs vs raw TCP"},
	{"gcs", bench_gcs, "GCS chains of 1-3 replicas vs redis-server"},
	{"cluster", bench_cluster, "between nodes: object transfer vs raw TCP"},
	{"es", bench_es, "evolution strategies on the MuJoCo humanoid: prism vs OpenMPI"},
	{"control", bench_control,
	 "control loop at 1-30 ms: idle, under ES training, and the timer floor"},
	/* Part of the cluster suite (its JSON says "suite":"cluster"); "cluster" runs it after
	 * the transfers, "cluster/sim_100_nodes" alone. */
	{"cluster/tasks", bench_cluster_tasks,
	 "remote task round trips and tasks on three nodes, vs raw TCP"},
	{"cluster/sim_100_nodes", bench_cluster_sim,
	 "100M tasks over 100 simulated nodes, placed by sched_place_pick"},
};

/* "SUITE/CASE" entries run with their suite: in_suite("cluster/sim_100_nodes", "cluster"). */
static int in_suite(const char *name, const char *suite)
{
	size_t n = strlen(suite);
	return strncmp(name, suite, n) == 0 && name[n] == '/';
}

static void usage(FILE *f)
{
	fprintf(f, "usage: prism-bench [--json] [--json-file PATH] [--quick] [--rounds N] "
		   "SUITE...\n"
		   "       prism-bench all\n\n"
		   "  --json      one JSON object per line (suite, case, unit, value or\n"
		   "              n/p50/p99/p999/max) instead of a table\n"
		   "  --json-file PATH  also write the JSON lines to PATH, beside the table\n"
		   "  --quick     fewer iterations (smoke runs; not for published figures)\n"
		   "  --rounds N  interleaved rounds per suite (default: the suite's own)\n\n"
		   "suites:\n");
	for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
		fprintf(f, "  %-9s %s\n", suites[i].name, suites[i].about);
}

int main(int argc, char **argv)
{
	struct bench_opts o = {0};
	bench_control_child(argc, argv); /* returns unless this is its ES load process */
	/* An extra driver of the tasks suite (multi_client_tasks_async). */
	if (argc == 4 && strcmp(argv[1], "--tasks-client") == 0)
		return bench_tasks_client(argv[2], atof(argv[3]));
	if (argc == 4 && strcmp(argv[1], "--actors-client") == 0)
		return bench_actors_client(argv[2], atof(argv[3]));
	const char *want[16];
	int nwant = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			o.json = true;
		} else if (strcmp(argv[i], "--json-file") == 0 && i + 1 < argc) {
			o.json_file = fopen(argv[++i], "w");
			if (!o.json_file) {
				fprintf(stderr, "prism-bench: cannot write %s\n", argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--quick") == 0) {
			o.quick = true;
		} else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
			char *end;
			long r = strtol(argv[++i], &end, 10);
			if (*end || r < 1 || r > 1000) {
				fprintf(stderr,
					"prism-bench: --rounds wants 1..1000, got '%s'\n",
					argv[i]);
				return 2;
			}
			o.rounds = (int)r;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "prism-bench: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		} else if (nwant < 16) {
			want[nwant++] = argv[i];
		}
	}
	if (nwant == 0) {
		usage(stderr);
		return 2;
	}
	prism_clock_calibrate();
	int failed = 0;
	for (int w = 0; w < nwant; w++) {
		int found = 0;
		for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
			if (strcmp(want[w], "all") != 0 &&
			    strcmp(want[w], suites[i].name) != 0 &&
			    !in_suite(suites[i].name, want[w]))
				continue;
			found = 1;
			if (suites[i].run(&o) != 0)
				failed = 1;
		}
		if (!found) {
			fprintf(stderr, "prism-bench: no suite '%s'\n", want[w]);
			usage(stderr);
			return 2;
		}
	}
	return failed;
}
