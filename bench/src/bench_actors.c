/* bench_actors.c — the actors suite, named after Ray's microbenchmarks.
 *
 *   1_1_actor_calls_sync   one caller, one actor: call an empty method, get the result,
 *                          repeat: the round trip (p50/p99/p99.9/max)
 *   1_1_actor_calls_async  one caller keeps a window of calls to one actor in flight
 *                          (ops/s)
 *   n_n_actor_calls_async  several callers (separate driver processes) each keep
 *                          windows of calls to several actors in flight (ops/s, summed)
 *   rt_actor_calls_sync    the round trip to a real-time actor (a pinned worker that
 *                          spins on its rings and never sleeps)
 *
 * The driver starts an embedded node.  The n:n callers are this binary run again with
 * --actors-client, attached to the same node, finding the actors by name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/hist.h"
#include "prism.h"
#include "suites.h"

#define NN_ACTORS 2
#define NN_CALLERS 2
#define WINDOW 1000

static int sink_new(prism_task_ctx *ctx, const prism_arg *args, size_t nargs, void **state)
{
	(void)ctx;
	(void)args;
	(void)nargs;
	static int dummy;
	*state = &dummy;
	return 0;
}

static int nop(prism_task_ctx *ctx, void *state, const prism_arg *args, size_t nargs)
{
	(void)ctx;
	(void)state;
	(void)args;
	(void)nargs;
	return 0;
}

PRISM_ACTOR(BenchSink, sink_new, NULL);
PRISM_METHOD(BenchSink, nop);

struct targets {
	const prism_actor *actors;
	int n;
};

static int call_nop(void *arg, long i, prism_ref *out)
{
	const struct targets *t = arg;
	return prism_actor_call(t->actors[i % t->n], "nop", NULL, 0, NULL, out);
}

static int sync_round(prism_actor a, int n, prism_hist *h)
{
	struct targets t = {&a, 1};
	return bench_sync_rounds("actors", call_nop, &t, n, h);
}

/* n calls spread over the actors, at most `window` in flight; the rate, or < 0. */
static double async_run(const prism_actor *actors, int nactors, long n, int window)
{
	struct targets t = {actors, nactors};
	return bench_async_window("actors", call_nop, &t, n, window);
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "prism-bench actors: %s: %s (%s)\n", what, prism_strerror(rc),
		prism_last_error());
	return 1;
}

static int find_actors(prism_actor *out)
{
	for (int i = 0; i < NN_ACTORS; i++) {
		char name[32];
		snprintf(name, sizeof(name), "bench-sink-%d", i);
		int rc = prism_actor_get(name, 10 * (int64_t)PRISM_NS_PER_SEC, &out[i]);
		if (rc)
			return fail("actor_get", rc);
	}
	return 0;
}

/* --actors-client ADDR SECONDS: one caller of n_n_actor_calls_async; prints its call
 * count and elapsed ns. */
int bench_actors_client(const char *addr, double seconds)
{
	prism_opts po = {.address = addr, .log_level = -1};
	prism_actor actors[NN_ACTORS];
	int rc = prism_init(&po);
	if (rc)
		return fail("client prism_init", rc);
	if (find_actors(actors) != 0 || async_run(actors, NN_ACTORS, 10000, WINDOW) < 0)
		return 1; /* the last line warmed the channels up */
	uint64_t t0 = prism_now_ns(), until = t0 + (uint64_t)(seconds * 1e9);
	long done = 0;
	while (prism_now_ns() < until) {
		if (async_run(actors, NN_ACTORS, 20000, WINDOW) < 0)
			return 1;
		done += 20000;
	}
	printf("%ld %llu\n", done, (unsigned long long)(prism_now_ns() - t0));
	prism_shutdown();
	return 0;
}

static int run_rt(const struct bench_opts *o, int n)
{
	prism_actor rta;
	prism_hist *h = NULL;
	prism_actor_opts ro = {.realtime = true};
	int rc = prism_actor_create("BenchSink", NULL, 0, &ro, &rta);
	if (rc)
		return fail("create a real-time actor", rc);
	if (prism_hist_create(&h) != 0 || sync_round(rta, 2000, NULL) != 0 ||
	    sync_round(rta, n, h) != 0) {
		prism_hist_destroy(h);
		prism_actor_kill(rta);
		return 1;
	}
	struct bench_field f[1] = {{"pinned_cpu", 1, NULL}};
	bench_report_latency(o, "actors", "rt_actor_calls_sync", h, f, 1);
	prism_hist_destroy(h);
	prism_actor_kill(rta);
	return 0;
}

int bench_actors(const struct bench_opts *o)
{
	const int rounds = o->rounds ? o->rounds : (o->quick ? 1 : 5);
	const int sync_n = o->quick ? 2000 : 20000;
	const long async_n = o->quick ? 20000 : 200000;
	prism_hist *h = NULL;
	double rate[64];
	prism_actor one, nn[NN_ACTORS];
	int rc = prism_init(&(prism_opts){.log_level = -1});
	if (rc)
		return fail("prism_init", rc);
	if (prism_hist_create(&h) != 0)
		goto fail;
	rc = prism_actor_create("BenchSink", NULL, 0, NULL, &one);
	if (rc) {
		fail("create", rc);
		goto fail;
	}
	/* Warm up: the actor's worker started and its channel open. */
	if (sync_round(one, 2000, NULL) != 0 || async_run(&one, 1, 20000, WINDOW) < 0)
		goto fail;
	for (int r = 0; r < rounds && r < 64; r++) {
		if (sync_round(one, sync_n, h) != 0)
			goto fail;
		rate[r] = async_run(&one, 1, async_n, WINDOW);
		if (rate[r] < 0)
			goto fail;
	}
	prism_actor_kill(one);
	bench_report_header(o, "actors", "empty method calls on one node (an embedded node)");
	struct bench_field f[1] = {{"rounds", rounds, NULL}};
	bench_report_latency(o, "actors", "1_1_actor_calls_sync", h, f, 1);
	struct bench_field fa[2] = {{"rounds", rounds, NULL}, {"window", WINDOW, NULL}};
	bench_report_value(o, "actors", "1_1_actor_calls_async", "ops/s",
			   bench_median(rate, rounds < 64 ? rounds : 64), fa, 2);
	for (int i = 0; i < NN_ACTORS; i++) {
		char name[32];
		snprintf(name, sizeof(name), "bench-sink-%d", i);
		rc = prism_actor_create("BenchSink", NULL, 0, &(prism_actor_opts){.name = name},
					&nn[i]);
		if (rc) {
			fail("create", rc);
			goto fail;
		}
	}
	double nnr = bench_run_clients("--actors-client", NN_CALLERS, o->quick ? 0.5 : 2.0);
	for (int i = 0; i < NN_ACTORS; i++)
		prism_actor_kill(nn[i]);
	if (nnr < 0)
		goto fail;
	struct bench_field fn[3] = {{"callers", NN_CALLERS, NULL},
				    {"actors", NN_ACTORS, NULL},
				    {"window", WINDOW, NULL}};
	bench_report_value(o, "actors", "n_n_actor_calls_async", "ops/s", nnr, fn, 3);
	if (run_rt(o, sync_n) != 0)
		goto fail;
	prism_hist_destroy(h);
	prism_shutdown();
	return 0;
fail:
	prism_hist_destroy(h);
	prism_shutdown();
	return 1;
}
