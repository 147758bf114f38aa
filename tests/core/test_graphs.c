/* Regressions of issue 16: what a black-box test of random task graphs found wrong in
 * the runtime.  Each test reproduces one defect as a user would meet it:
 *   1. completions whose dependents launch while the completion is handled (the driver
 *      crashed walking a moved in-flight queue),
 *   2. arguments released by the driver right after submit,
 *   4. arguments (and results) that together exceed one task message,
 *   5. trees of tasks that wait for their children,
 *   6. work that must start while the driver computes without calling prism,
 *   7. error texts that must stay intact in an error chain,
 *   8. NULL data with a length,
 *   9. killing an actor that never existed,
 *  10. a retry whose killed attempt left its result in the store. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "prism.h"

#include "../common/pattern.h"

static uint64_t hash_bytes(uint64_t h, const void *data, size_t n)
{
	const uint8_t *p = data;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h ^ n;
}

/* Result 0: `len` bytes (first argument, 8 bytes) of the pattern seeded by the hash of
 * every other argument; with num_returns 2, result 1 is the same at half the length. */
static int mix(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	uint64_t len, h = 0xcbf29ce484222325ull;
	memcpy(&len, args[0].data, 8);
	for (size_t i = 1; i < nargs; i++)
		h = hash_bytes(h, args[i].data, args[i].len);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return -ENOMEM;
	fill(buf, len, h);
	int rc = prism_return(ctx, 0, buf, len);
	if (rc == 0 && prism_return(ctx, 1, buf, len / 2) == -EINVAL)
		rc = 0; /* a single-result call */
	free(buf);
	return rc;
}
PRISM_REMOTE(mix);

static uint64_t mix_model(const void **data, const size_t *lens, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = hash_bytes(h, data[i], lens[i]);
	return h;
}

static void expect_pattern(prism_ref r, size_t len, uint64_t seed)
{
	const void *v;
	size_t n;
	int rc = prism_get(r, WAIT_NS, &v, &n);
	cr_assert_eq(rc, 0, "get: %s: %.*s", prism_strerror(rc),
		     rc == PRISM_E_TASK_FAILED ? (int)n : 0,
		     rc == PRISM_E_TASK_FAILED ? (const char *)v : "");
	cr_assert_eq(n, len);
	uint8_t *want = malloc(len ? len : 1);
	fill(want, len, seed);
	cr_assert(memcmp(v, want, len) == 0, "the bytes differ from the model");
	free(want);
}

static void init(void)
{
	prism_opts o = {.num_workers = 2};
	cr_assert_eq(prism_init(&o), 0, "%s", prism_last_error());
}

/* Defect 1: a chain whose links are submitted while their inputs are pending, with
 * results above the 48-byte entry size and up to the inline limit: each completion makes
 * dependents ready, and launching them pushes into the very in-flight queue the
 * completion walks (the driver crashed in release_task_args). */
Test(graphs, dependents_launch_while_a_completion_is_handled, .fini = prism_shutdown,
     .timeout = 300)
{
	init();
	enum { N = 400 };
	static prism_ref refs[N];
	static uint64_t seeds[N];
	static size_t lens[N];
	uint8_t *val[N] = {0};
	for (int i = 0; i < N; i++) {
		uint64_t len = (uint64_t)(i * 7919 % 4096);
		prism_value a[3] = {prism_bytes(&len, 8)};
		size_t na = 1;
		const void *md[2];
		size_t ml[2];
		for (int k = 1; k <= 2 && i - k * 3 >= 0; k++) {
			int j = i - k * 3 - (i % 2);
			if (j < 0)
				continue;
			a[na] = prism_refval(refs[j]);
			md[na - 1] = val[j];
			ml[na - 1] = lens[j];
			na++;
		}
		cr_assert_eq(prism_submit("mix", a, na, NULL, &refs[i]), 0, "%s",
			     prism_last_error());
		lens[i] = len;
		seeds[i] = mix_model(md, ml, na - 1);
		val[i] = malloc(len ? len : 1);
		fill(val[i], len, seeds[i]);
	}
	for (int i = N; i-- > 0;) {
		expect_pattern(refs[i], lens[i], seeds[i]);
		prism_ref_release(refs[i]);
		free(val[i]);
	}
}

/* Defect 1 again, the way it crashed most: one slow task with forty dependents that each
 * take 20 KiB by value, so that launching them when it completes grows the in-flight
 * queue that holds the slow task's message; the driver releases every ref it can at
 * once (defect 2 was this same corruption, releasing another task's arguments). */
static int slow(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)args;
	(void)nargs;
	struct timespec ts = {0, 200 * 1000 * 1000};
	nanosleep(&ts, NULL);
	uint64_t v = 77;
	return prism_return(ctx, 0, &v, 8);
}
PRISM_REMOTE(slow);

Test(graphs, a_completion_whose_dependents_fill_its_queue, .fini = prism_shutdown,
     .timeout = 300)
{
	init();
	/* Warm up: mix is known as a short task, so its calls pipeline deep. */
	for (int i = 0; i < 32; i++) {
		prism_ref r;
		uint64_t len = 8;
		prism_value a[1] = {prism_bytes(&len, 8)};
		cr_assert_eq(prism_submit("mix", a, 1, NULL, &r), 0);
		const void *v;
		size_t n;
		cr_assert_eq(prism_get(r, WAIT_NS, &v, &n), 0);
		prism_ref_release(r);
	}
	static uint8_t pad[20 * 1024];
	uint64_t seven = 77;
	for (int round = 0; round < 5; round++) {
		enum { K = 40 };
		prism_ref s, d[K];
		cr_assert_eq(prism_submit("slow", NULL, 0, NULL, &s), 0);
		for (int k = 0; k < K; k++) {
			uint64_t len = 16 + (uint64_t)k;
			fill(pad, sizeof(pad), (uint64_t)k);
			prism_value a[3] = {prism_bytes(&len, 8), prism_refval(s),
					    prism_bytes(pad, sizeof(pad))};
			cr_assert_eq(prism_submit("mix", a, 3, NULL, &d[k]), 0);
		}
		prism_ref_release(s);
		for (int k = 0; k < K; k++) {
			fill(pad, sizeof(pad), (uint64_t)k);
			const void *md[2] = {&seven, pad};
			size_t ml[2] = {8, sizeof(pad)};
			expect_pattern(d[k], 16 + (size_t)k, mix_model(md, ml, 2));
			prism_ref_release(d[k]);
		}
	}
}

/* Defect 2 as the random graphs met it: a task with a failed argument undid the
 * arguments it had not resolved too, reading stale stack slots, and so deleted the store
 * argument of the task launched before it (from the same stack frame). */
Test(graphs, a_failed_argument_undoes_nothing_of_other_tasks, .fini = prism_shutdown,
     .timeout = 300)
{
	init();
	prism_ref f, busy[2], x, y;
	cr_assert_eq(prism_submit("fails", NULL, 0, NULL, &f), 0);
	const void *v;
	size_t n;
	cr_assert_eq(prism_get(f, WAIT_NS, &v, &n), PRISM_E_TASK_FAILED);
	for (int round = 0; round < 5; round++) {
		/* Both workers busy, so x waits with its 100 KB argument in the store. */
		for (int k = 0; k < 2; k++)
			cr_assert_eq(prism_submit("slow", NULL, 0, NULL, &busy[k]), 0);
		static uint8_t big[100 * 1000];
		fill(big, sizeof(big), (uint64_t)round);
		uint64_t len = 32;
		prism_value a[2] = {prism_bytes(&len, 8), prism_bytes(big, sizeof(big))};
		cr_assert_eq(prism_submit("mix", a, 2, NULL, &x), 0);
		a[1] = prism_refval(f);
		cr_assert_eq(prism_submit("mix", a, 2, NULL, &y), 0);
		const void *md[1] = {big};
		size_t ml[1] = {sizeof(big)};
		expect_pattern(x, 32, mix_model(md, ml, 1));
		cr_assert_eq(prism_get(y, WAIT_NS, &v, &n), PRISM_E_TASK_FAILED);
		prism_ref_release(x);
		prism_ref_release(y);
		for (int k = 0; k < 2; k++)
			prism_ref_release(busy[k]);
	}
	prism_ref_release(f);
}

/* Defect 2: the driver lets go of its refs to a task's arguments right after submitting
 * it; the task still gets them (store results of several sizes and a put). */
Test(graphs, arguments_released_right_after_submit, .fini = prism_shutdown, .timeout = 300)
{
	init();
	const size_t sizes[] = {2048, 97 * 1000, 256 * 1024};
	for (int round = 0; round < 20; round++) {
		prism_ref in[3];
		const void *md[3];
		size_t ml[3];
		uint8_t *bytes[3];
		for (int k = 0; k < 3; k++) {
			bytes[k] = malloc(sizes[k]);
			uint64_t len = sizes[k];
			if (k == 0) {
				fill(bytes[k], len, (uint64_t)round);
				cr_assert_eq(prism_put(bytes[k], len, &in[k]), 0);
			} else {
				prism_value a[1] = {prism_bytes(&len, 8)};
				cr_assert_eq(prism_submit("mix", a, 1, NULL, &in[k]), 0);
				fill(bytes[k], len, mix_model(NULL, NULL, 0));
			}
			md[k] = bytes[k];
			ml[k] = sizes[k];
		}
		uint64_t len = 1000;
		prism_value a[4] = {prism_bytes(&len, 8), prism_refval(in[0]),
				    prism_refval(in[1]), prism_refval(in[2])};
		prism_ref out;
		cr_assert_eq(prism_submit("mix", a, 4, NULL, &out), 0, "%s",
			     prism_last_error());
		for (int k = 0; k < 3; k++)
			prism_ref_release(in[k]);
		expect_pattern(out, len, mix_model(md, ml, 3));
		prism_ref_release(out);
		for (int k = 0; k < 3; k++)
			free(bytes[k]);
	}
}

/* Defect 4: small arguments that together exceed a task message (three of 45,000 bytes,
 * sixteen of 16 KiB, refs to inline results of 60,000 bytes, ready or not), and results
 * that together exceed a completion. */
Test(graphs, arguments_and_results_of_any_total_size, .fini = prism_shutdown, .timeout = 300)
{
	init();
	static uint8_t big[16][45000];
	for (int k = 0; k < 16; k++)
		fill(big[k], sizeof(big[k]), (uint64_t)k + 100);
	const int counts[] = {3, 16};
	const size_t each[] = {45000, 16384};
	for (int c = 0; c < 2; c++) {
		uint64_t len = 64;
		prism_value a[17] = {prism_bytes(&len, 8)};
		const void *md[16];
		size_t ml[16];
		for (int k = 0; k < counts[c]; k++) {
			a[k + 1] = prism_bytes(big[k], each[c]);
			md[k] = big[k];
			ml[k] = each[c];
		}
		prism_ref out;
		cr_assert_eq(prism_submit("mix", a, (size_t)counts[c] + 1, NULL, &out), 0, "%s",
			     prism_last_error());
		expect_pattern(out, len, mix_model(md, ml, (size_t)counts[c]));
		prism_ref_release(out);
	}
	/* Refs to 60,000-byte results (inline, held by the driver), ready and pending. */
	for (int ready = 0; ready < 2; ready++) {
		prism_ref in[3];
		uint64_t len = 60000;
		prism_value a1[1] = {prism_bytes(&len, 8)};
		for (int k = 0; k < 3; k++) {
			cr_assert_eq(prism_submit("mix", a1, 1, NULL, &in[k]), 0);
			if (ready) {
				const void *v;
				size_t n;
				cr_assert_eq(prism_get(in[k], WAIT_NS, &v, &n), 0);
			}
		}
		uint8_t *v60 = malloc(60000);
		fill(v60, 60000, mix_model(NULL, NULL, 0));
		const void *md[3] = {v60, v60, v60};
		size_t ml[3] = {60000, 60000, 60000};
		uint64_t olen = 10;
		prism_value a[4] = {prism_bytes(&olen, 8), prism_refval(in[0]),
				    prism_refval(in[1]), prism_refval(in[2])};
		prism_ref out;
		cr_assert_eq(prism_submit("mix", a, 4, NULL, &out), 0, "%s",
			     prism_last_error());
		expect_pattern(out, olen, mix_model(md, ml, 3));
		prism_ref_release(out);
		for (int k = 0; k < 3; k++)
			prism_ref_release(in[k]);
		free(v60);
	}
	/* Two results of 60,000 and 30,000 bytes: 90 KB inline, then 3 x 50 KB... */
	uint64_t len = 60000;
	prism_value a[1] = {prism_bytes(&len, 8)};
	prism_call_opts two = {.num_returns = 2};
	prism_ref r[2];
	cr_assert_eq(prism_submit("mix", a, 1, &two, r), 0);
	expect_pattern(r[0], 60000, mix_model(NULL, NULL, 0));
	expect_pattern(r[1], 30000, mix_model(NULL, NULL, 0));
	prism_ref_release(r[0]);
	prism_ref_release(r[1]);
}

static int three_60k(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)args;
	(void)nargs;
	static uint8_t v[60000];
	for (unsigned i = 0; i < 3; i++) {
		fill(v, sizeof(v), i);
		int rc = prism_return(ctx, i, v, sizeof(v));
		if (rc)
			return rc;
	}
	return 0;
}
PRISM_REMOTE(three_60k);

Test(graphs, results_that_together_exceed_a_completion, .fini = prism_shutdown, .timeout = 300)
{
	init();
	prism_call_opts three = {.num_returns = 3};
	prism_ref r[3];
	cr_assert_eq(prism_submit("three_60k", NULL, 0, &three, r), 0);
	for (unsigned i = 0; i < 3; i++) {
		expect_pattern(r[i], 60000, i);
		prism_ref_release(r[i]);
	}
}

/* Defect 5: trees (fan-out 3, depth up to 4: 121 tasks, 40 of them waiting) whose inner
 * tasks submit their children and wait for them: more tasks wait than max_workers (4
 * per CPU). */
static int tree(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	int64_t depth;
	(void)nargs;
	memcpy(&depth, args[0].data, 8);
	int64_t count = 1;
	if (depth > 0) {
		prism_ref kids[3];
		int64_t d = depth - 1;
		prism_value a[1] = {prism_bytes(&d, 8)};
		for (int k = 0; k < 3; k++) {
			int rc = prism_submit("tree", a, 1, NULL, &kids[k]);
			if (rc)
				return rc;
		}
		for (int k = 0; k < 3; k++) {
			const void *v;
			size_t n;
			int rc = prism_get(kids[k], -1, &v, &n);
			if (rc)
				return prism_fail(ctx, "child %d: %s", k, prism_strerror(rc));
			int64_t c;
			memcpy(&c, v, 8);
			count += c;
			prism_ref_release(kids[k]);
		}
	}
	return prism_return(ctx, 0, &count, 8);
}
PRISM_REMOTE_ARITY(tree, 1);

Test(graphs, trees_of_nested_waits_finish, .fini = prism_shutdown, .timeout = 300)
{
	init();
	for (int64_t depth = 1; depth <= 4; depth++) {
		prism_ref r;
		prism_value a[1] = {prism_bytes(&depth, 8)};
		cr_assert_eq(prism_submit("tree", a, 1, NULL, &r), 0);
		const void *v;
		size_t n;
		int rc = prism_get(r, WAIT_NS, &v, &n);
		cr_assert_eq(rc, 0, "depth %lld: %s", (long long)depth, prism_strerror(rc));
		int64_t c, want = 0, level = 1;
		for (int64_t d = 0; d <= depth; d++, level *= 3)
			want += level;
		memcpy(&c, v, 8);
		cr_assert_eq(c, want);
		prism_ref_release(r);
	}
}

/* Six such trees at once: 240 tasks wait for their children, more than the node may
 * start worker processes (56).  A blocked task runs its own queued children itself when
 * no worker takes them, so every tree finishes, with any number of workers. */
Test(graphs, trees_beyond_the_worker_cap_finish, .fini = prism_shutdown, .timeout = 300)
{
	prism_opts o = {.num_workers = 1};
	cr_assert_eq(prism_init(&o), 0, "%s", prism_last_error());
	prism_ref r[6];
	int64_t depth = 4;
	prism_value a[1] = {prism_bytes(&depth, 8)};
	for (int t = 0; t < 6; t++)
		cr_assert_eq(prism_submit("tree", a, 1, NULL, &r[t]), 0);
	for (int t = 0; t < 6; t++) {
		const void *v;
		size_t n;
		int rc = prism_get(r[t], WAIT_NS, &v, &n);
		cr_assert_eq(rc, 0, "tree %d: %s %.*s", t, prism_strerror(rc),
			     rc == PRISM_E_TASK_FAILED ? (int)n : 0, (const char *)v);
		int64_t c;
		memcpy(&c, v, 8);
		cr_assert_eq(c, 121, "tree %d counted %lld tasks", t, (long long)c);
		prism_ref_release(r[t]);
	}
}

/* Defect 6: tasks submitted to a fresh node start while the driver computes without
 * calling prism (the lease grant came while it was away). */
static int started_at(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)args;
	(void)nargs;
	uint64_t t = prism_now_ns();
	return prism_return(ctx, 0, &t, 8);
}
PRISM_REMOTE(started_at);

Test(graphs, work_starts_while_the_driver_is_away, .fini = prism_shutdown, .timeout = 300)
{
	init();
	prism_ref r[4];
	uint64_t t0 = prism_now_ns();
	for (int k = 0; k < 4; k++)
		cr_assert_eq(prism_submit("started_at", NULL, 0, NULL, &r[k]), 0);
	/* Away from prism for 3 s; on a loaded machine a worker may take a second to start,
	 * but not until the driver comes back. */
	uint64_t away = 3 * PRISM_NS_PER_SEC;
	while (prism_now_ns() - t0 < away) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	uint64_t back = prism_now_ns();
	for (int k = 0; k < 4; k++) {
		const void *v;
		size_t n;
		cr_assert_eq(prism_get(r[k], WAIT_NS, &v, &n), 0);
		uint64_t t;
		memcpy(&t, v, 8);
		cr_expect_lt(t, back,
			     "task %d started %.3f s after submit, after the driver came "
			     "back at %.3f s",
			     k, (double)(t - t0) / 1e9, (double)(back - t0) / 1e9);
		prism_ref_release(r[k]);
	}
}

/* Defect 7: error texts in a chain (failed task -> dependent -> dependent) and of calls
 * to an actor whose constructor failed, read after other calls freed and reused memory. */
static int fails(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)args;
	(void)nargs;
	return prism_fail(ctx,
			  "deliberate failure number %d, with a message long enough to "
			  "live on the heap",
			  42);
}
PRISM_REMOTE(fails);

static int bad_ctor(prism_task_ctx *ctx, const prism_arg *a, size_t n, void **st)
{
	(void)a;
	(void)n;
	(void)st;
	return prism_fail(ctx, "the constructor refuses, deliberately, with a long message");
}
static int noop_method(prism_task_ctx *ctx, void *st, const prism_arg *a, size_t n)
{
	(void)ctx;
	(void)st;
	(void)a;
	(void)n;
	return 0;
}
PRISM_ACTOR(BadCtor, bad_ctor, NULL);
PRISM_METHOD(BadCtor, noop_method);

static void expect_text(int rc, const void *v, size_t n, int code, const char *needle)
{
	cr_assert_eq(rc, code, "%s", prism_strerror(rc));
	cr_assert(n > 0 && memchr(v, '\0', n + 1) == (const char *)v + n, "NUL-terminated");
	for (size_t i = 0; i < n; i++)
		cr_assert(((const char *)v)[i] >= 0x20 && ((const char *)v)[i] < 0x7f,
			  "byte %zu of the error text is %#x", i, ((const uint8_t *)v)[i]);
	cr_assert(strstr(v, needle), "'%s' in '%s'", needle, (const char *)v);
}

Test(graphs, error_texts_stay_intact, .fini = prism_shutdown, .timeout = 300)
{
	init();
	prism_ref f, d1, d2;
	cr_assert_eq(prism_submit("fails", NULL, 0, NULL, &f), 0);
	uint64_t len = 8;
	prism_value a[2] = {prism_bytes(&len, 8), prism_refval(f)};
	cr_assert_eq(prism_submit("mix", a, 2, NULL, &d1), 0);
	a[1] = prism_refval(d1);
	cr_assert_eq(prism_submit("mix", a, 2, NULL, &d2), 0);
	prism_ref_release(f);
	prism_ref_release(d1);
	/* Churn the heap. */
	for (int i = 0; i < 200; i++) {
		prism_ref r;
		uint64_t l = 100 + (uint64_t)i;
		prism_value b[1] = {prism_bytes(&l, 8)};
		cr_assert_eq(prism_submit("mix", b, 1, NULL, &r), 0);
		prism_ref_release(r);
	}
	const void *v;
	size_t n;
	int rc = prism_get(d2, WAIT_NS, &v, &n);
	expect_text(rc, v, n, PRISM_E_TASK_FAILED, "deliberate failure number 42");
	prism_ref_release(d2);

	prism_actor act;
	cr_assert_eq(prism_actor_create("BadCtor", NULL, 0, NULL, &act), 0);
	prism_ref c[3];
	for (int i = 0; i < 3; i++)
		cr_assert_eq(prism_actor_call(act, "noop_method", NULL, 0, NULL, &c[i]), 0);
	for (int i = 0; i < 3; i++) {
		rc = prism_get(c[i], WAIT_NS, &v, &n);
		expect_text(rc, v, n, PRISM_E_ACTOR_DIED, "the constructor refuses");
	}
	for (int i = 0; i < 3; i++)
		prism_ref_release(c[i]);
}

/* Defect 8: NULL data with a length is an error, not a crash. */
Test(graphs, null_data_with_a_length_is_refused, .fini = prism_shutdown, .timeout = 120)
{
	init();
	prism_value a[2] = {prism_bytes(NULL, 16), prism_bytes(NULL, 0)};
	prism_ref r;
	cr_assert_eq(prism_submit("mix", a, 1, NULL, &r), -EINVAL);
	cr_assert(strstr(prism_last_error(), "argument 0"), "%s", prism_last_error());
	prism_actor act;
	cr_assert_eq(prism_actor_create("BadCtor", a, 1, NULL, &act), -EINVAL);
	/* NULL with length 0 is an empty value. */
	uint64_t len = 3;
	prism_value b[2] = {prism_bytes(&len, 8), prism_bytes(NULL, 0)};
	cr_assert_eq(prism_submit("mix", b, 2, NULL, &r), 0);
	prism_ref_release(r);
}

/* Defect 9: killing an actor nobody created is -ENOENT; killing one twice is fine. */
Test(graphs, killing_an_actor_that_never_existed, .fini = prism_shutdown, .timeout = 120)
{
	init();
	prism_actor act;
	cr_assert_eq(prism_actor_create("BadCtor", NULL, 0, NULL, &act), 0);
	/* A handle like a real one, with an id nobody made. */
	prism_actor ghost = act;
	fill(ghost.id.b, 8, 99);
	cr_assert_eq(prism_actor_kill(ghost), -ENOENT);
	cr_assert(strstr(prism_last_error(), "no actor"), "%s", prism_last_error());
	cr_assert_eq(prism_actor_kill(act), 0);
	cr_assert_eq(prism_actor_kill(act), 0);
}

/* Defect 10: a task whose worker is killed after it wrote a store result (not handed
 * over yet) is retried, and the retry's result does not collide with the old one. */
static int big_then_die(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)nargs;
	static uint8_t v[88238];
	fill(v, sizeof(v), 7);
	int rc = prism_return(ctx, 0, v, sizeof(v));
	/* The first attempt dies after its result is in the store. */
	char path[64];
	memcpy(path, args[0].data, args[0].len);
	if (rc == 0 && access(path, F_OK) != 0) {
		FILE *f = fopen(path, "w");
		if (f)
			fclose(f);
		kill(getpid(), SIGKILL);
	}
	return rc;
}
PRISM_REMOTE(big_then_die);

Test(graphs, a_retry_does_not_collide_with_its_killed_attempt, .fini = prism_shutdown,
     .timeout = 300)
{
	init();
	char path[64];
	snprintf(path, sizeof(path), "/tmp/prism-retry-%d", (int)getpid());
	unlink(path);
	prism_value a[1] = {prism_bytes(path, strlen(path) + 1)};
	prism_ref r;
	cr_assert_eq(prism_submit("big_then_die", a, 1, NULL, &r), 0);
	expect_pattern(r, 88238, 7);
	prism_ref_release(r);
	unlink(path);
}
