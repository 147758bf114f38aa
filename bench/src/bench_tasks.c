/* bench_tasks.c — the tasks suite, named after Ray's microbenchmarks.
 *
 *   single_client_tasks_sync   submit one empty task, get its result, repeat: the round
 *                              trip (p50/p99/p99.9/max)
 *   single_client_tasks_async  one driver keeps a window of tasks in flight (ops/s)
 *   multi_client_tasks_async   several drivers on one node at once (ops/s, summed)
 *   tasks_1m                   one million empty tasks submitted and collected (s)
 *   put_small, get_small       8-byte values put into / read from the object store
 *                              (ops/s; each get is of a value already there)
 *   put_gigabytes              1 GiB put into the store (GB/s), beside
 *   memcpy_gigabytes           the same 1 GiB copied with memcpy (GB/s): both in steady
 *                              state, the destination pages already touched; the first
 *                              put (which faults them in) is reported as put_gigabytes_cold
 *
 * The driver starts an embedded node with one worker per CPU.  Extra drivers for the
 * multi-client case are this binary run again with --tasks-client, attached to the same
 * node.  Rounds of the sync and async cases are interleaved.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int submit_noop(void *arg, long i, prism_ref *out)
{
	(void)arg;
	(void)i;
	return prism_submit("noop", NULL, 0, NULL, out);
}

static int sync_round(int n, prism_hist *h)
{
	return bench_sync_rounds("tasks", submit_noop, NULL, n, h);
}

/* n tasks with at most `window` in flight; returns the rate, or < 0. */
static double async_run(long n, int window)
{
	return bench_async_window("tasks", submit_noop, NULL, n, window);
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "prism-bench tasks: %s: %s (%s)\n", what, prism_strerror(rc),
		prism_last_error());
	return 1;
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

static double put_small(long n)
{
	prism_ref *refs = malloc((size_t)n * sizeof(*refs));
	if (!refs)
		return -1;
	uint64_t v = 42, t0 = prism_now_ns();
	for (long i = 0; i < n; i++)
		if (prism_put(&v, sizeof(v), &refs[i]) != 0) {
			fail("put", -1);
			free(refs);
			return -1;
		}
	double rate = (double)n / ((double)(prism_now_ns() - t0) / 1e9);
	for (long i = 0; i < n; i++)
		prism_ref_release(refs[i]);
	free(refs);
	return rate;
}

static double get_small(long n)
{
	enum { KEYS = 1000 };
	prism_ref refs[KEYS];
	uint64_t v = 42, sum = 0;
	for (int i = 0; i < KEYS; i++)
		if (prism_put(&v, sizeof(v), &refs[i]) != 0)
			return -1;
	uint64_t t0 = prism_now_ns();
	for (long i = 0; i < n; i++) {
		const void *d;
		size_t len;
		if (prism_get(refs[i % KEYS], 0, &d, &len) != 0)
			return -1;
		sum += *(const uint64_t *)d;
	}
	double rate = (double)n / ((double)(prism_now_ns() - t0) / 1e9);
	for (int i = 0; i < KEYS; i++)
		prism_ref_release(refs[i]);
	return sum == (uint64_t)n * 42 ? rate : -1;
}

/* GB/s of one put of `size` bytes, releasing it after. */
static double put_big(const void *src, size_t size)
{
	prism_ref r;
	uint64_t t0 = prism_now_ns();
	int rc = prism_put(src, size, &r);
	uint64_t dt = prism_now_ns() - t0;
	if (rc) {
		fail("put_gigabytes", rc);
		return -1;
	}
	prism_ref_release(r);
	return (double)size / (double)dt;
}

static double memcpy_big(void *dst, const void *src, size_t size)
{
	uint64_t t0 = prism_now_ns();
	memcpy(dst, src, size);
	uint64_t dt = prism_now_ns() - t0;
	/* Keep the copy from being optimised away. */
	__asm__ volatile("" : : "r"(dst) : "memory");
	return (double)size / (double)dt;
}

/* put_gigabytes beside memcpy_gigabytes, the same bytes in the same run. */
static int big_copy(const struct bench_opts *o, int rounds)
{
	size_t size = o->quick ? (64u << 20) : (1u << 30);
	uint8_t *src = malloc(size), *dst = malloc(size);
	double put[64], cpy[64];
	int n = rounds < 64 ? rounds : 64, rc = -1;
	if (!src || !dst)
		goto out;
	memset(src, 0x5a, size);
	/* Touched (non-zero: GCC turns malloc + memset 0 into calloc, which touches
	 * nothing), like the store's pages after the first put. */
	memset(dst, 1, size);
	double cold = put_big(src, size);
	if (cold < 0)
		goto out;
	for (int r = 0; r < n; r++) {
		put[r] = put_big(src, size);
		cpy[r] = memcpy_big(dst, src, size);
		if (put[r] < 0)
			goto out;
	}
	double p = bench_median(put, n), c = bench_median(cpy, n);
	struct bench_field f[2] = {{"rounds", n, NULL}, {"bytes", (double)size, NULL}};
	bench_report_value(o, "tasks", "put_gigabytes", "GB/s", p, f, 2);
	bench_report_value(o, "tasks", "memcpy_gigabytes", "GB/s", c, f, 2);
	struct bench_field fr[2] = {{"target_min", 0.9, NULL},
				    {"met", p >= 0.9 * c ? 1 : 0, NULL}};
	bench_report_value(o, "tasks", "put_vs_memcpy", "ratio", p / c, fr, 2);
	bench_report_value(o, "tasks", "put_gigabytes_cold", "GB/s", cold, f + 1, 1);
	rc = 0;
out:
	free(src);
	free(dst);
	return rc;
}

int bench_tasks(const struct bench_opts *o)
{
	const int rounds = o->rounds ? o->rounds : (o->quick ? 1 : 5);
	const int sync_n = o->quick ? 2000 : 20000;
	const long async_n = o->quick ? 20000 : 200000;
	prism_hist *h = NULL;
	double rate[64];
	/* 2 GiB of store: room for the 1 GiB put and what the other cases hold. */
	int rc = prism_init(&(prism_opts){.log_level = -1, .object_store_bytes = 2ull << 30});
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
	double med = bench_median(rate, rounds < 64 ? rounds : 64);
	struct bench_field fa[2] = {{"rounds", rounds, NULL}, {"window", 1000, NULL}};
	bench_report_value(o, "tasks", "single_client_tasks_async", "ops/s", med, fa, 2);
	double multi = bench_run_clients("--tasks-client", 2, o->quick ? 0.5 : 2.0);
	if (multi < 0)
		goto fail;
	struct bench_field fm[1] = {{"clients", 2, NULL}};
	bench_report_value(o, "tasks", "multi_client_tasks_async", "ops/s", multi, fm, 1);
	double puts[64], gets[64];
	for (int r = 0; r < rounds && r < 64; r++) {
		puts[r] = put_small(o->quick ? 20000 : 200000);
		gets[r] = get_small(o->quick ? 200000 : 2000000);
		if (puts[r] < 0 || gets[r] < 0)
			goto fail;
	}
	struct bench_field fp[2] = {{"rounds", rounds, NULL}, {"bytes", 8, NULL}};
	bench_report_value(o, "tasks", "put_small", "ops/s",
			   bench_median(puts, rounds < 64 ? rounds : 64), fp, 2);
	bench_report_value(o, "tasks", "get_small", "ops/s",
			   bench_median(gets, rounds < 64 ? rounds : 64), fp, 2);
	if (big_copy(o, rounds) != 0)
		goto fail;
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
