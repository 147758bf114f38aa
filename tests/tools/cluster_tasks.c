/* cluster_tasks — a driver for the multi-node tests (tools/cluster_tasks.sh): tasks that
 * must run on another node, objects between nodes, infeasible tasks, spillover from a
 * saturated node, nested tasks spreading.  Each mode prints "MODE: ok ..." or
 * "MODE: FAIL ..." and exits 0 or 1.  It attaches to PRISM_ADDRESS.
 *
 * Usage: cluster_tasks remote|objects [MAX_BYTES]|big [BYTES]|infeasible|spill|nested|
 *        locality|actors|actor_loss STOP_CMD|loop SECONDS|hold MS
 * (remote tasks need a node with resource "camera", which the driver's node lacks; hold
 * needs "anchor" on the driver's node alone). */
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

/* nap, with a second argument it only holds (an input that would have to move). */
static int nap_on(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)nargs;
	return nap(ctx, args, 1);
}
PRISM_REMOTE_ARITY(nap_on, 2);

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

/* A counter actor: add(d) adds d (default 1) and returns the value; node_of says where
 * it lives. */
static int ctr_new(prism_task_ctx *ctx, const prism_arg *args, size_t nargs, void **state)
{
	(void)ctx;
	int64_t *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (nargs == 1 && args[0].len == 8)
		memcpy(v, args[0].data, 8);
	*state = v;
	return 0;
}

static void ctr_free(void *state)
{
	free(state);
}

static int add(prism_task_ctx *ctx, void *state, const prism_arg *args, size_t nargs)
{
	int64_t *v = state, d = 1;
	if (nargs == 1 && args[0].len == 8)
		memcpy(&d, args[0].data, 8);
	*v += d;
	return prism_return(ctx, 0, v, 8);
}

static int node_of(prism_task_ctx *ctx, void *state, const prism_arg *args, size_t nargs)
{
	(void)state;
	return where(ctx, args, nargs);
}
PRISM_ACTOR(Ctr, ctr_new, ctr_free);
PRISM_METHOD(Ctr, add);
PRISM_METHOD(Ctr, node_of);

/* A task that calls add(100) on the actor whose handle it gets, and returns the value. */
static int add_via(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	prism_actor h;
	if (nargs != 1 || args[0].len != sizeof(h))
		return prism_fail(ctx, "want a handle");
	memcpy(&h, args[0].data, sizeof(h));
	int64_t d = 100;
	prism_value v = prism_bytes(&d, 8);
	prism_ref r;
	const void *data;
	size_t len;
	int rc = prism_actor_call(h, "add", &v, 1, NULL, &r);
	if (rc == 0)
		rc = prism_get(r, 60LL * 1000000000, &data, &len);
	if (rc)
		return prism_fail(ctx, "call from %s: %s: %s", prism_node_address(),
				  prism_strerror(rc),
				  rc == PRISM_E_TASK_FAILED ? "" : prism_last_error());
	rc = prism_return(ctx, 0, data, len);
	prism_ref_release(r);
	return rc;
}
PRISM_REMOTE_ARITY(add_via, 1);

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

/* Tasks whose input is a 64 MiB object on the driver's node wait for its one CPU rather
 * than spill: moving the input (~67 ms at the placement's 1 GB/s) costs more than the
 * queue wait the placement expects here.  Small-input tasks spread (mode spill). */
static int mode_locality(void)
{
	size_t n = (size_t)64 << 20;
	uint8_t *blob = calloc(1, n);
	prism_ref big, refs[3];
	if (!blob || prism_put(blob, n, &big))
		return fail("locality", "%s", "cannot put 64 MiB");
	free(blob);
	uint32_t ms = 300;
	for (int i = 0; i < 3; i++) {
		prism_value v[2] = {prism_bytes(&ms, sizeof(ms)), prism_refval(big)};
		if (prism_submit("nap_on", v, 2, NULL, &refs[i]))
			return fail("locality", "%s", "cannot submit");
	}
	const char *self = prism_node_address();
	for (int i = 0; i < 3; i++) {
		char at[256];
		if (get_str(refs[i], at, sizeof(at)))
			return fail("locality", "a task failed: %s", at);
		if (strcmp(at, self) != 0)
			return fail("locality", "a task with a 64 MiB input here ran on %s",
				    at);
	}
	prism_ref_release(big);
	printf("locality: ok, 3 x 300 ms tasks with a 64 MiB input stayed with it\n");
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
static int actor_get64(prism_ref r, int64_t *out, char *err, size_t cap)
{
	const void *d;
	size_t len;
	int rc = prism_get(r, 60LL * 1000000000, &d, &len);
	if (rc == 0 && len == 8)
		memcpy(out, d, 8);
	else
		snprintf(err, cap, "%s: %.*s", prism_strerror(rc), (int)(d ? len : 0),
			 d ? (const char *)d : "");
	prism_ref_release(r);
	return rc ? rc : len == 8 ? 0 : -EPROTO;
}

/* Call add(d) through a task submitted with opts; the value it returned. */
static int via_task(prism_actor h, const prism_call_opts *opts, int64_t *out, char *err,
		    size_t cap)
{
	prism_value hv = prism_bytes(&h, sizeof(h));
	prism_ref r;
	int rc = prism_submit("add_via", &hv, 1, opts, &r);
	return rc ? rc : actor_get64(r, out, err, cap);
}

/* Actors across nodes: one that needs the camera is created on the camera node and
 * called in order from here; handles reach tasks on other nodes both ways (an actor
 * there called from a task here, one here from a task there); a named one is found by
 * name; kill ends it for every caller; one no node can hold is refused. */
static int mode_actors(void)
{
	const char *self = prism_node_address();
	char err[512], at[256];
	prism_actor far, near;
	prism_actor_opts fo = {.resources = &camera, .nresources = 1, .name = "far-counter"};
	if (prism_actor_create("Ctr", NULL, 0, &fo, &far))
		return fail("actors", "%s", "cannot create an actor that needs the camera");
	prism_ref r;
	if (prism_actor_call(far, "node_of", NULL, 0, NULL, &r) || get_str(r, at, sizeof(at)))
		return fail("actors", "node_of failed: %s", at);
	if (strcmp(at, self) == 0)
		return fail("actors", "the camera actor lives on the driver's node %s", at);
	/* Calls from one caller run in the order they were made. */
	enum { N = 2000 };
	static prism_ref refs[N];
	for (int i = 0; i < N; i++)
		if (prism_actor_call(far, "add", NULL, 0, NULL, &refs[i]))
			return fail("actors", "%s", "a pipelined call failed");
	for (int i = 0; i < N; i++) {
		int64_t v = 0;
		if (actor_get64(refs[i], &v, err, sizeof(err)))
			return fail("actors", "a call's result: %s", err);
		if (v != i + 1) {
			snprintf(err, sizeof(err), "call %d returned %lld", i, (long long)v);
			return fail("actors", "out of order: %s", err);
		}
	}
	double t0 = now_s();
	int rounds = 200;
	for (int i = 0; i < rounds; i++) {
		int64_t v;
		if (prism_actor_call(far, "add", NULL, 0, NULL, &r) ||
		    actor_get64(r, &v, err, sizeof(err)))
			return fail("actors", "a sync call failed: %s", err);
	}
	double us = (now_s() - t0) / rounds * 1e6;
	/* Named: the driver finds it by name. */
	prism_actor byname;
	if (prism_actor_get("far-counter", 5LL * 1000000000, &byname) ||
	    memcmp(&byname, &far, sizeof(far)) != 0)
		return fail("actors", "%s", "the named actor on the camera node is not found");
	/* An actor here, called by a task on the camera node; the camera actor called by a
	 * task here and one there. */
	if (prism_actor_create("Ctr", NULL, 0, NULL, &near))
		return fail("actors", "%s", "cannot create an actor on the driver's node");
	int64_t v = 0;
	if (via_task(near, &on_camera, &v, err, sizeof(err)) || v != 100)
		return fail("actors", "a task on the camera node calling an actor here: %s",
			    err);
	int64_t before = N + rounds;
	if (via_task(far, NULL, &v, err, sizeof(err)) || v != before + 100)
		return fail("actors", "a task calling the camera actor: %s", err);
	if (via_task(far, &on_camera, &v, err, sizeof(err)) || v != before + 200)
		return fail("actors", "a task on the camera node calling its actor: %s", err);
	/* Kill: later calls fail with PRISM_E_ACTOR_DIED, here and from a task. */
	if (prism_actor_kill(far))
		return fail("actors", "%s", "kill failed");
	int rc = PRISM_E_TIMEOUT;
	for (int i = 0; i < 100 && rc != PRISM_E_ACTOR_DIED; i++) {
		if (prism_actor_call(far, "add", NULL, 0, NULL, &r))
			return fail("actors", "%s",
				    "a call after the kill was refused at once");
		rc = actor_get64(r, &v, err, sizeof(err));
	}
	if (rc != PRISM_E_ACTOR_DIED)
		return fail("actors", "a call after the kill: %s", err);
	rc = via_task(far, &on_camera, &v, err, sizeof(err));
	if (rc == 0)
		return fail("actors", "%s", "a task's call after the kill succeeded");
	/* No node has a GPU. */
	prism_actor_opts go = {.num_gpus = 1};
	prism_actor g;
	rc = prism_actor_create("Ctr", NULL, 0, &go, &g);
	if (rc != PRISM_E_INFEASIBLE)
		return fail("actors", "an actor that needs a GPU: %s", prism_strerror(rc));
	printf("actors: ok, the camera actor lived on %s (driver on %s), %d calls in order, "
	       "%.1f us per sync call; handles worked from tasks on both nodes\n",
	       at, self, N, us);
	return 0;
}

/* An actor on the node that has "spare"; then that node stops (stop_cmd): calls fail with
 * PRISM_E_ACTOR_DIED, at once or after the link's end is seen, never hang. */
static int mode_actor_loss(const char *stop_cmd)
{
	static const prism_resource spare = {"spare", 1};
	prism_actor_opts ao = {.resources = &spare, .nresources = 1};
	prism_actor a;
	prism_ref r;
	int64_t v = 0;
	char err[512] = "";
	if (prism_actor_create("Ctr", NULL, 0, &ao, &a))
		return fail("actor_loss", "%s", "cannot create an actor that needs 'spare'");
	if (prism_actor_call(a, "add", NULL, 0, NULL, &r) ||
	    actor_get64(r, &v, err, sizeof(err)))
		return fail("actor_loss", "the first call: %s", err);
	if (!stop_cmd || system(stop_cmd) != 0)
		return fail("actor_loss", "%s", "cannot stop the actor's node");
	double t0 = now_s();
	int rc = 0;
	while (now_s() - t0 < 20) {
		if (prism_actor_call(a, "add", NULL, 0, NULL, &r))
			return fail("actor_loss", "%s",
				    "a call was refused instead of failing");
		rc = actor_get64(r, &v, err, sizeof(err));
		if (rc == PRISM_E_ACTOR_DIED)
			break;
		if (rc != 0)
			return fail("actor_loss", "a call failed otherwise: %s", err);
	}
	if (rc != PRISM_E_ACTOR_DIED)
		return fail("actor_loss", "%s",
			    "calls still succeed 20 s after the node stopped");
	printf("actor_loss: ok, calls fail with PRISM_E_ACTOR_DIED %.0f ms after the stop\n",
	       (now_s() - t0) * 1e3);
	return 0;
}

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

/* One task that needs "anchor", which only the driver's node has, holds one of its CPUs
 * for ms: other programs' tasks there wait meanwhile and spill to other nodes
 * (tools/cluster_examples.sh). */
static int mode_hold(uint32_t ms)
{
	static const prism_resource anchor = {"anchor", 1};
	prism_call_opts o = {.resources = &anchor, .nresources = 1};
	prism_value v = prism_bytes(&ms, sizeof(ms));
	prism_ref r;
	char at[256];
	if (prism_submit("nap", &v, 1, &o, &r))
		return fail("hold", "%s", "cannot submit a nap that needs 'anchor'");
	if (get_str(r, at, sizeof(at)))
		return fail("hold", "the nap failed: %s", at);
	if (strcmp(at, prism_node_address()) != 0)
		return fail("hold", "the nap ran on %s, not on the driver's node", at);
	printf("hold: ok, a CPU of %s held for %u ms\n", at, ms);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: cluster_tasks remote|objects [MAX]|big "
				"[BYTES]|infeasible|spill|"
				"nested|locality|actors|actor_loss STOP_CMD|loop SECONDS|hold "
				"MS\n");
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
	else if (strcmp(m, "locality") == 0)
		rc = mode_locality();
	else if (strcmp(m, "actors") == 0)
		rc = mode_actors();
	else if (strcmp(m, "actor_loss") == 0)
		rc = mode_actor_loss(argc > 2 ? argv[2] : NULL);
	else if (strcmp(m, "loop") == 0)
		rc = mode_loop(argc > 2 ? atof(argv[2]) : 3.0);
	else if (strcmp(m, "hold") == 0)
		rc = mode_hold(argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 0) : 2000);
	else {
		fprintf(stderr, "cluster_tasks: unknown mode %s\n", m);
		rc = 2;
	}
	prism_shutdown();
	return rc;
}
