/* cluster_tasks — a driver for the multi-node tests (tools/cluster_tasks.sh): tasks that
 * must run on another node, objects between nodes, infeasible tasks, spillover from a
 * saturated node, nested tasks spreading.  Each mode prints "MODE: ok ..." or
 * "MODE: FAIL ..." and exits 0 or 1.  It attaches to PRISM_ADDRESS.
 *
 * Usage: cluster_tasks remote|objects [MAX_BYTES]|big [BYTES]|infeasible|spill|nested|
 *        loop SECONDS
 * (remote tasks need a node with resource "camera", which the driver's node lacks). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "prism.h"

/* The address of the node the task runs on. */
static int where(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)args;
	(void)nargs;
	const char *a = prism_node_address();
	return prism_return(ctx, 0, a, strlen(a));
}
PRISM_REMOTE_ARITY(where, 0);

/* Sleep args[0] (u32 ms), then say where it ran. */
static int nap(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	uint32_t ms = 0;
	if (nargs != 1 || args[0].len != sizeof(ms))
		return prism_fail(ctx, "nap takes one u32");
	memcpy(&ms, args[0].data, sizeof(ms));
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
	return where(ctx, NULL, 0);
}
PRISM_REMOTE_ARITY(nap, 1);

/* Twice as long as its argument: out[i] = in[i / 2] ^ 0x5a. */
static int grow(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)nargs;
	size_t n = args[0].len;
	uint8_t *out = malloc(2 * n + 1);
	if (!out)
		return prism_fail(ctx, "out of memory");
	const uint8_t *in = args[0].data;
	for (size_t i = 0; i < 2 * n; i++)
		out[i] = in[i / 2] ^ 0x5a;
	int rc = prism_return(ctx, 0, out, 2 * n);
	free(out);
	return rc;
}
PRISM_REMOTE_ARITY(grow, 1);

/* A checksum of its argument (u64 FNV-1a over 8-byte words). */
static uint64_t sum64(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed | 1;
	for (size_t i = 0; i < n; i += 8) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(p + i, &x, n - i < 8 ? n - i : 8);
	}
}

static int bigsum(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)nargs;
	uint64_t h = sum64(args[0].data, args[0].len);
	return prism_return(ctx, 0, &h, sizeof(h));
}
PRISM_REMOTE_ARITY(bigsum, 1);

/* A result of args[0] (u64) bytes filled from seed args[1] (u64). */
static int bigmake(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)nargs;
	uint64_t n, seed;
	memcpy(&n, args[0].data, 8);
	memcpy(&seed, args[1].data, 8);
	uint8_t *p = malloc(n);
	if (!p)
		return prism_fail(ctx, "out of memory");
	fill(p, n, seed);
	int rc = prism_return(ctx, 0, p, n);
	free(p);
	return rc;
}
PRISM_REMOTE_ARITY(bigmake, 2);

static const prism_resource camera = {"camera", 1};
static const prism_call_opts on_camera = {.resources = &camera, .nresources = 1};

/* Submit n naps of ms each (one CPU each) and count the nodes they ran on. */
static int spread(uint32_t n, uint32_t ms, char addrs[][256], uint32_t *nodes, double *secs);

/* Inside a task: fan out naps from a worker (nested tasks) and return how many nodes
 * they ran on, as a u32. */
static int fanout(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)args;
	(void)nargs;
	char addrs[8][256];
	uint32_t nodes = 0;
	double secs;
	int rc = spread(6, 400, addrs, &nodes, &secs);
	if (rc)
		return prism_fail(ctx, "nested naps: %s", prism_strerror(rc));
	return prism_return(ctx, 0, &nodes, sizeof(nodes));
}
PRISM_REMOTE_ARITY(fanout, 0);

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fail(const char *mode, const char *fmt, const char *detail)
{
	printf("%s: FAIL ", mode);
	printf(fmt, detail);
	printf(" (%s)\n", prism_last_error());
	return 1;
}

static int get_str(prism_ref r, char *out, size_t cap)
{
	const void *d;
	size_t len;
	int rc = prism_get(r, 60LL * 1000000000, &d, &len);
	if (rc == 0)
		snprintf(out, cap, "%.*s", (int)len, (const char *)d);
	else
		snprintf(out, cap, "%.*s", (int)(d ? len : 0), d ? (const char *)d : "");
	prism_ref_release(r);
	return rc;
}

static int spread(uint32_t n, uint32_t ms, char addrs[][256], uint32_t *nodes, double *secs)
{
	prism_ref refs[16];
	double t0 = now_s();
	for (uint32_t i = 0; i < n; i++) {
		prism_value v = prism_bytes(&ms, sizeof(ms));
		int rc = prism_submit("nap", &v, 1, NULL, &refs[i]);
		if (rc)
			return rc;
	}
	*nodes = 0;
	for (uint32_t i = 0; i < n; i++) {
		int rc = get_str(refs[i], addrs[i], 256);
		if (rc)
			return rc;
		bool seen = false;
		for (uint32_t j = 0; j < i; j++)
			seen |= strcmp(addrs[j], addrs[i]) == 0;
		*nodes += !seen;
	}
	*secs = now_s() - t0;
	return 0;
}

static int mode_remote(void)
{
	const char *self = prism_node_address();
	char first[256] = "";
	for (int i = 0; i < 4; i++) {
		prism_ref r;
		if (prism_submit("where", NULL, 0, &on_camera, &r))
			return fail("remote", "%s", "cannot submit a camera task");
		char at[256];
		if (get_str(r, at, sizeof(at)))
			return fail("remote", "camera task failed: %s", at);
		if (strcmp(at, self) == 0)
			return fail("remote", "ran on the driver's node %s", at);
		if (i && strcmp(at, first))
			return fail("remote", "ran on two camera nodes? %s", at);
		snprintf(first, sizeof(first), "%s", at);
	}
	/* Synchronous round trips to the remote worker. */
	double t0 = now_s();
	int rounds = 200;
	for (int i = 0; i < rounds; i++) {
		prism_ref r;
		char at[256];
		if (prism_submit("where", NULL, 0, &on_camera, &r) ||
		    get_str(r, at, sizeof(at)))
			return fail("remote", "%s", "a round trip failed");
	}
	printf("remote: ok, camera tasks ran on %s (driver on %s), %.1f us per round trip\n",
	       first, self, (now_s() - t0) / rounds * 1e6);
	return 0;
}

static int check_grow(size_t n, bool as_ref)
{
	uint8_t *in = malloc(n ? n : 1);
	if (!in)
		return fail("objects", "%s", "out of memory");
	for (size_t i = 0; i < n; i++)
		in[i] = (uint8_t)(i * 7 + n);
	prism_value v = prism_bytes(in, n);
	prism_ref put = {{{0}}}, r;
	if (as_ref) {
		if (prism_put(in, n, &put))
			return fail("objects", "%s", "prism_put failed");
		v = prism_refval(put);
	}
	int rc = prism_submit("grow", &v, 1, &on_camera, &r);
	if (as_ref)
		prism_ref_release(put);
	if (rc) {
		free(in);
		return fail("objects", "%s", "cannot submit grow");
	}
	const void *d;
	size_t len;
	rc = prism_get(r, 120LL * 1000000000, &d, &len);
	char what[64];
	snprintf(what, sizeof(what), "%zu bytes%s", n, as_ref ? " (a ref)" : "");
	if (rc) {
		printf("objects: FAIL grow of %s: %s: %.*s\n", what, prism_strerror(rc),
		       d ? (int)len : 0, d ? (const char *)d : "");
		free(in);
		return 1;
	}
	const uint8_t *o = d;
	bool good = len == 2 * n;
	for (size_t i = 0; good && i < 2 * n; i++)
		good = o[i] == (in[i / 2] ^ 0x5a);
	prism_ref_release(r);
	free(in);
	if (!good)
		return fail("objects", "grow of %s came back wrong", what);
	return 0;
}

static int mode_objects(size_t max)
{
	size_t sizes[] = {1, 4096, 100 * 1024, 8u << 20, 64u << 20, (size_t)512 << 20};
	size_t done = 0;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		if (sizes[i] > max)
			continue;
		if (check_grow(sizes[i], false) || check_grow(sizes[i], sizes[i] >= 4096))
			return 1;
		done = sizes[i];
	}
	printf("objects: ok, arguments and results from 1 byte to %zu bytes both ways\n",
	       2 * done);
	return 0;
}

/* An object of n bytes to a task on another node, and one back. */
static int mode_big(size_t n)
{
	uint8_t *p = malloc(n);
	if (!p)
		return fail("big", "%s", "out of memory");
	fill(p, n, 42);
	uint64_t want = sum64(p, n);
	prism_ref put, r;
	double t0 = now_s();
	int rc = prism_put(p, n, &put);
	free(p);
	if (rc)
		return fail("big", "%s", "prism_put failed");
	prism_value v = prism_refval(put);
	if (prism_submit("bigsum", &v, 1, &on_camera, &r))
		return fail("big", "%s", "cannot submit bigsum");
	prism_ref_release(put);
	const void *d;
	size_t len;
	rc = prism_get(r, 300LL * 1000000000, &d, &len);
	if (rc || len != 8 || memcmp(d, &want, 8))
		return fail("big", "%s", "the remote checksum of the object differs");
	prism_ref_release(r);
	double t1 = now_s();
	uint64_t nn = n, seed = 7;
	prism_value a[2] = {prism_bytes(&nn, 8), prism_bytes(&seed, 8)};
	if (prism_submit("bigmake", a, 2, &on_camera, &r))
		return fail("big", "%s", "cannot submit bigmake");
	rc = prism_get(r, 300LL * 1000000000, &d, &len);
	if (rc || len != n)
		return fail("big", "%s", "no result from bigmake");
	double t2 = now_s();
	uint8_t *q = malloc(n);
	if (!q)
		return fail("big", "%s", "out of memory");
	fill(q, n, 7);
	bool same = memcmp(q, d, n) == 0;
	free(q);
	prism_ref_release(r);
	if (!same)
		return fail("big", "%s", "the result from the other node differs");
	printf("big: ok, %zu bytes to a task on another node (%.2f s with the put) and %zu "
	       "back (%.2f s with making it)\n",
	       n, t1 - t0, n, t2 - t1);
	return 0;
}

static int mode_infeasible(void)
{
	prism_resource lidar = {"lidar", 1}, cameras = {"camera", 1000};
	prism_call_opts o1 = {.resources = &lidar, .nresources = 1};
	prism_call_opts o2 = {.resources = &cameras, .nresources = 1};
	prism_call_opts o3 = {.num_cpus = 4096};
	prism_ref r;
	double t0 = now_s();
	if (prism_submit("where", NULL, 0, &o1, &r) != PRISM_E_INFEASIBLE)
		return fail("infeasible", "%s", "a resource no node has was accepted");
	if (prism_submit("where", NULL, 0, &o2, &r) != PRISM_E_INFEASIBLE)
		return fail("infeasible", "%s", "more cameras than any node has was accepted");
	if (prism_submit("where", NULL, 0, &o3, &r) != PRISM_E_INFEASIBLE)
		return fail("infeasible", "%s", "4096 CPUs were accepted");
	printf("infeasible: ok, refused at once (%.1f ms): %s\n", (now_s() - t0) * 1e3,
	       prism_last_error());
	return 0;
}

static int mode_spill(void)
{
	char addrs[16][256];
	uint32_t nodes;
	double secs;
	/* Six 400 ms tasks; the driver's node offers one CPU. */
	int rc = spread(6, 400, addrs, &nodes, &secs);
	if (rc)
		return fail("spill", "naps failed: %s", prism_strerror(rc));
	if (nodes < 2 || secs > 2.0) {
		printf("spill: FAIL, 6 x 400 ms tasks took %.2f s on %u node(s)\n", secs,
		       nodes);
		return 1;
	}
	printf("spill: ok, 6 x 400 ms tasks on %u nodes in %.2f s\n", nodes, secs);
	return 0;
}

static int mode_nested(void)
{
	prism_ref r;
	if (prism_submit("fanout", NULL, 0, NULL, &r))
		return fail("nested", "%s", "cannot submit");
	const void *d;
	size_t len;
	uint32_t nodes = 0;
	if (prism_get(r, 60LL * 1000000000, &d, &len) || len != sizeof(nodes))
		return fail("nested", "%s", "fanout failed");
	memcpy(&nodes, d, sizeof(nodes));
	prism_ref_release(r);
	if (nodes < 2) {
		printf("nested: FAIL, a task's 6 nested tasks ran on %u node(s)\n", nodes);
		return 1;
	}
	printf("nested: ok, a task's nested tasks ran on %u nodes\n", nodes);
	return 0;
}

/* Submit camera tasks for SECONDS while nodes come and go; every task must complete (a
 * lost node's tasks are retried elsewhere). */
static int mode_loop(double secs)
{
	double end = now_s() + secs;
	uint64_t ok = 0;
	while (now_s() < end) {
		prism_ref r[4];
		uint32_t ms = 20;
		prism_value v = prism_bytes(&ms, sizeof(ms));
		for (int i = 0; i < 4; i++)
			if (prism_submit("nap", &v, 1, NULL, &r[i]))
				return fail("loop", "%s", "cannot submit");
		for (int i = 0; i < 4; i++) {
			char at[256];
			if (get_str(r[i], at, sizeof(at)))
				return fail("loop", "a task failed: %s", at);
			ok++;
		}
	}
	printf("loop: ok, %llu tasks completed\n", (unsigned long long)ok);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: cluster_tasks remote|objects [MAX]|big "
				"[BYTES]|infeasible|spill|"
				"nested|loop SECONDS\n");
		return 2;
	}
	int rc = prism_init(NULL);
	if (rc) {
		fprintf(stderr, "cluster_tasks: prism_init: %s: %s\n", prism_strerror(rc),
			prism_last_error());
		return 1;
	}
	const char *m = argv[1];
	if (strcmp(m, "remote") == 0)
		rc = mode_remote();
	else if (strcmp(m, "objects") == 0)
		rc = mode_objects(argc > 2 ? strtoull(argv[2], NULL, 0) : (size_t)8 << 20);
	else if (strcmp(m, "big") == 0)
		rc = mode_big(argc > 2 ? strtoull(argv[2], NULL, 0) : (size_t)1 << 30);
	else if (strcmp(m, "infeasible") == 0)
		rc = mode_infeasible();
	else if (strcmp(m, "spill") == 0)
		rc = mode_spill();
	else if (strcmp(m, "nested") == 0)
		rc = mode_nested();
	else if (strcmp(m, "loop") == 0)
		rc = mode_loop(argc > 2 ? atof(argv[2]) : 3.0);
	else {
		fprintf(stderr, "cluster_tasks: unknown mode %s\n", m);
		rc = 2;
	}
	prism_shutdown();
	return rc;
}
