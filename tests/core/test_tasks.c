/* The single-node runtime end to end: an embedded node, workers that re-run this test
 * binary, tasks, futures, chaining, nesting, failures and bad input. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "prism.h"

static int add(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	int64_t a, b;
	(void)nargs;
	if (args[0].len != 8 || args[1].len != 8)
		return prism_fail(ctx, "add wants two 8-byte integers, got %zu and %zu bytes",
				  args[0].len, args[1].len);
	memcpy(&a, args[0].data, 8);
	memcpy(&b, args[1].data, 8);
	a += b;
	return prism_return(ctx, 0, &a, sizeof(a));
}
PRISM_REMOTE_ARITY(add, 2);

static int divmod(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	int64_t a, b;
	(void)nargs;
	memcpy(&a, args[0].data, 8);
	memcpy(&b, args[1].data, 8);
	if (b == 0)
		return prism_fail(ctx, "division by zero");
	int64_t q = a / b, r = a % b;
	prism_return(ctx, 0, &q, 8);
	return prism_return(ctx, 1, &r, 8);
}
PRISM_REMOTE_ARITY(divmod, 2);

static int my_pid(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)args;
	(void)nargs;
	int32_t pid = (int32_t)getpid();
	return prism_return(ctx, 0, &pid, sizeof(pid));
}
PRISM_REMOTE(my_pid);

/* Sum 1..n by submitting n nested `add`s from inside a task. */
static int nested_sum(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	int64_t n, acc = 0;
	(void)nargs;
	memcpy(&n, args[0].data, 8);
	prism_ref r;
	int64_t zero = 0;
	prism_value a[2] = {prism_bytes(&zero, 8), prism_bytes(&zero, 8)};
	int rc = prism_submit("add", a, 2, NULL, &r);
	if (rc)
		return rc;
	for (int64_t i = 1; i <= n; i++) {
		prism_ref next;
		a[0] = prism_refval(r);
		a[1] = prism_bytes(&i, 8);
		rc = prism_submit("add", a, 2, NULL, &next);
		prism_ref_release(r);
		if (rc)
			return rc;
		r = next;
	}
	const void *v;
	size_t len;
	rc = prism_get(r, -1, &v, &len);
	if (rc == 0)
		memcpy(&acc, v, 8);
	prism_ref_release(r);
	return rc ? rc : prism_return(ctx, 0, &acc, 8);
}
PRISM_REMOTE_ARITY(nested_sum, 1);

static int sleeper(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	int64_t ms;
	(void)nargs;
	memcpy(&ms, args[0].data, 8);
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
	return prism_return(ctx, 0, &ms, 8);
}
PRISM_REMOTE_ARITY(sleeper, 1);

static void start(void)
{
	prism_opts o = {.num_workers = 2, .log_level = -1};
	cr_assert_eq(prism_init(&o), 0, "prism_init: %s", prism_last_error());
}

static void stop(void)
{
	prism_shutdown();
}

static int64_t get_i64(prism_ref r)
{
	const void *v;
	size_t n;
	int rc = prism_get(r, 30 * (int64_t)PRISM_NS_PER_SEC, &v, &n);
	cr_assert_eq(rc, 0, "get: %s / %s", prism_strerror(rc),
		     rc == PRISM_E_TASK_FAILED ? (const char *)v : prism_last_error());
	cr_assert_eq(n, 8);
	int64_t x;
	memcpy(&x, v, 8);
	return x;
}

TestSuite(tasks, .init = start, .fini = stop, .timeout = 120);

Test(tasks, submit_returns_futures_and_get_returns_values)
{
	int64_t a = 40, b = 2;
	prism_value args[] = {prism_bytes(&a, 8), prism_bytes(&b, 8)};
	prism_ref r;
	cr_assert_eq(prism_submit("add", args, 2, NULL, &r), 0);
	cr_assert_eq(get_i64(r), 42);
	cr_assert_eq(prism_ref_release(r), 0);
}

Test(tasks, several_results_from_one_task)
{
	int64_t a = 47, b = 5;
	prism_value args[] = {prism_bytes(&a, 8), prism_bytes(&b, 8)};
	prism_call_opts o = {.num_returns = 2};
	prism_ref r[2];
	cr_assert_eq(prism_submit("divmod", args, 2, &o, r), 0);
	cr_assert_eq(get_i64(r[0]), 9);
	cr_assert_eq(get_i64(r[1]), 2);
	prism_ref_release(r[0]);
	prism_ref_release(r[1]);
}

Test(tasks, futures_chain_into_later_tasks)
{
	/* A chain of 200 adds, each consuming the previous result: 0 + 1 + ... + 200. */
	int64_t zero = 0;
	prism_value args[2] = {prism_bytes(&zero, 8), prism_bytes(&zero, 8)};
	prism_ref r;
	cr_assert_eq(prism_submit("add", args, 2, NULL, &r), 0);
	for (int64_t i = 1; i <= 200; i++) {
		prism_ref next;
		args[0] = prism_refval(r);
		args[1] = prism_bytes(&i, 8);
		cr_assert_eq(prism_submit("add", args, 2, NULL, &next), 0);
		prism_ref_release(r); /* the pending task holds its own reference */
		r = next;
	}
	cr_assert_eq(get_i64(r), 200 * 201 / 2);
	prism_ref_release(r);
}

Test(tasks, many_tasks_all_correct)
{
	enum { N = 20000 };
	static prism_ref refs[N];
	for (int64_t i = 0; i < N; i++) {
		prism_value args[2] = {prism_bytes(&i, 8), prism_bytes(&i, 8)};
		cr_assert_eq(prism_submit("add", args, 2, NULL, &refs[i]), 0, "submit %ld: %s",
			     (long)i, prism_last_error());
	}
	for (int64_t i = 0; i < N; i++) {
		cr_assert_eq(get_i64(refs[i]), 2 * i);
		prism_ref_release(refs[i]);
	}
}

Test(tasks, tasks_run_in_other_processes_in_parallel)
{
	/* Two 300 ms sleeps on two workers finish in well under 600 ms, and in two
	 * processes other than this one. */
	int64_t ms = 300;
	prism_value arg = prism_bytes(&ms, 8);
	prism_ref s[2], p[8];
	uint64_t t0 = prism_now_ns();
	cr_assert_eq(prism_submit("sleeper", &arg, 1, NULL, &s[0]), 0);
	cr_assert_eq(prism_submit("sleeper", &arg, 1, NULL, &s[1]), 0);
	prism_wait(s, 2, 2, 30 * (int64_t)PRISM_NS_PER_SEC, NULL);
	double took = (double)(prism_now_ns() - t0) / 1e6;
	cr_log_info("two 300 ms tasks took %.0f ms", took);
	cr_assert_lt(took, 590.0, "the two sleeps did not overlap (%.0f ms)", took);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(prism_submit("my_pid", NULL, 0, NULL, &p[i]), 0);
	for (int i = 0; i < 8; i++) {
		const void *v;
		size_t n;
		cr_assert_eq(prism_get(p[i], -1, &v, &n), 0);
		cr_assert_neq(*(const int32_t *)v, (int32_t)getpid());
		prism_ref_release(p[i]);
	}
	prism_ref_release(s[0]);
	prism_ref_release(s[1]);
}

Test(tasks, nested_tasks_submit_and_wait_inside_a_task)
{
	int64_t n = 50;
	prism_value arg = prism_bytes(&n, 8);
	prism_ref r;
	cr_assert_eq(prism_submit("nested_sum", &arg, 1, NULL, &r), 0);
	cr_assert_eq(get_i64(r), 50 * 51 / 2);
	prism_ref_release(r);
}

Test(tasks, failed_task_becomes_an_error_object_and_spreads)
{
	int64_t a = 1, zero = 0;
	prism_value args[] = {prism_bytes(&a, 8), prism_bytes(&zero, 8)};
	prism_call_opts o = {.num_returns = 2};
	prism_ref r[2], dep;
	cr_assert_eq(prism_submit("divmod", args, 2, &o, r), 0);
	const void *v;
	size_t n;
	cr_assert_eq(prism_get(r[0], -1, &v, &n), PRISM_E_TASK_FAILED);
	cr_assert_str_eq((const char *)v, "divmod: division by zero");
	cr_assert_eq(prism_get(r[1], -1, &v, &n), PRISM_E_TASK_FAILED, "every result fails");
	/* A task given an error object as its argument fails too, naming the cause. */
	prism_value chained[] = {prism_refval(r[0]), prism_bytes(&a, 8)};
	cr_assert_eq(prism_submit("add", chained, 2, NULL, &dep), 0);
	cr_assert_eq(prism_get(dep, -1, &v, &n), PRISM_E_TASK_FAILED);
	cr_assert(strstr((const char *)v, "division by zero"), "message: %s", (const char *)v);
	/* And the worker is fine afterwards. */
	prism_value ok[] = {prism_bytes(&a, 8), prism_bytes(&a, 8)};
	prism_ref r2;
	cr_assert_eq(prism_submit("add", ok, 2, NULL, &r2), 0);
	cr_assert_eq(get_i64(r2), 2);
	prism_ref_release(r[0]);
	prism_ref_release(r[1]);
	prism_ref_release(dep);
	prism_ref_release(r2);
}

Test(tasks, bad_calls_get_clear_errors)
{
	int64_t a = 1;
	prism_value one = prism_bytes(&a, 8);
	prism_ref r;
	cr_assert_eq(prism_submit("no_such_function", &one, 1, NULL, &r),
		     PRISM_E_UNKNOWN_FUNCTION);
	cr_assert(strstr(prism_last_error(), "no_such_function"));
	cr_assert_eq(prism_submit("add", &one, 1, NULL, &r), -EINVAL, "add takes two");
	cr_assert(strstr(prism_last_error(), "takes 2 arguments"));
	prism_call_opts huge = {.num_cpus = 1000};
	prism_value two[] = {one, one};
	cr_assert_eq(prism_submit("add", two, 2, &huge, &r), PRISM_E_INFEASIBLE);
	prism_call_opts gpu = {.num_gpus = 1};
	cr_assert_eq(prism_submit("add", two, 2, &gpu, &r), PRISM_E_INFEASIBLE);
	prism_call_opts many = {.num_returns = 17};
	cr_assert_eq(prism_submit("add", two, 2, &many, &r), -EINVAL);
	/* A ref that was released cannot be read or passed on. */
	cr_assert_eq(prism_submit("add", two, 2, NULL, &r), 0);
	cr_assert_eq(get_i64(r), 2);
	cr_assert_eq(prism_ref_release(r), 0);
	const void *v;
	size_t n;
	cr_assert_eq(prism_get(r, 0, &v, &n), PRISM_E_RELEASED);
	cr_assert_eq(prism_ref_release(r), PRISM_E_RELEASED);
	prism_value gone[] = {prism_refval(r), one};
	prism_ref r2;
	cr_assert_eq(prism_submit("add", gone, 2, NULL, &r2), PRISM_E_RELEASED);
	/* The node is unaffected. */
	cr_assert_eq(prism_submit("add", two, 2, NULL, &r), 0);
	cr_assert_eq(get_i64(r), 2);
	prism_ref_release(r);
}

Test(tasks, get_times_out_in_time_and_wait_counts_ready)
{
	int64_t ms = 500, fast = 0;
	prism_value slow = prism_bytes(&ms, 8), quick = prism_bytes(&fast, 8);
	prism_ref r[2];
	cr_assert_eq(prism_submit("sleeper", &slow, 1, NULL, &r[0]), 0);
	cr_assert_eq(prism_submit("sleeper", &quick, 1, NULL, &r[1]), 0);
	const void *v;
	size_t n;
	uint64_t t0 = prism_now_ns();
	cr_assert_eq(prism_get(r[0], 50 * (int64_t)PRISM_NS_PER_MS, &v, &n), PRISM_E_TIMEOUT);
	uint64_t took = prism_now_ns() - t0;
	cr_assert_geq(took, 50 * PRISM_NS_PER_MS);
	cr_assert_lt(took, 450 * PRISM_NS_PER_MS,
		     "the timeout must end the wait, not the task");
	bool ready[2];
	cr_assert_eq(prism_wait(r, 2, 1, 10 * (int64_t)PRISM_NS_PER_SEC, ready), 1);
	cr_assert(ready[1] && !ready[0]);
	cr_assert_eq(prism_wait(r, 2, 2, 10 * (int64_t)PRISM_NS_PER_SEC, ready), 2);
	cr_assert_eq(get_i64(r[0]), 500);
	prism_ref_release(r[0]);
	prism_ref_release(r[1]);
}

Test(tasks, put_values_are_gettable_and_usable_as_arguments)
{
	int64_t a = 20, b = 22;
	prism_ref pa, r;
	cr_assert_eq(prism_put(&a, 8, &pa), 0);
	const void *v;
	size_t n;
	cr_assert_eq(prism_get(pa, 0, &v, &n), 0);
	cr_assert_eq(*(const int64_t *)v, 20);
	prism_value args[] = {prism_refval(pa), prism_bytes(&b, 8)};
	cr_assert_eq(prism_submit("add", args, 2, NULL, &r), 0);
	cr_assert_eq(get_i64(r), 42);
	prism_ref_release(pa);
	prism_ref_release(r);
}

Test(tasks, double_init_is_refused)
{
	cr_assert_eq(prism_init(NULL), -EALREADY);
}

Test(tasks, submit_by_handle)
{
	const prism_function *add_fn = prism_function_get("add");
	cr_assert_not_null(add_fn);
	cr_assert_null(prism_function_get("nope"));
	cr_assert(strstr(prism_last_error(), "nope"));
	int64_t a = 2, b = 3;
	prism_value args[] = {prism_bytes(&a, 8), prism_bytes(&b, 8)};
	prism_ref r;
	cr_assert_eq(prism_submit_fn(add_fn, args, 2, NULL, &r), 0);
	cr_assert_eq(get_i64(r), 5);
	prism_ref_release(r);
	cr_assert_eq(prism_submit_fn(add_fn, args, 1, NULL, &r), -EINVAL,
		     "arity still checked");
	cr_assert_eq(prism_submit_fn(NULL, args, 2, NULL, &r), -EINVAL);
}
