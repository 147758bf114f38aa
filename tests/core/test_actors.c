/* Actors end to end: ordered calls, handles passed to tasks, named lookup, kill, worker
 * death with and without restarts (and checkpoints), bad input, real-time actors. */
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "prism.h"
#include "../common/threads.h"

#define SEC PRISM_NS_PER_SEC

struct counter {
	int64_t value;
	int64_t calls;
};

static int counter_new(prism_task_ctx *ctx, const prism_arg *args, size_t nargs, void **state)
{
	struct counter *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (nargs == 1 && args[0].len == 8)
		memcpy(&c->value, args[0].data, 8);
	else if (nargs == 1 && args[0].len == 4 && memcmp(args[0].data, "fail", 4) == 0) {
		free(c);
		return prism_fail(ctx, "asked to fail");
	}
	*state = c;
	return 0;
}

static void counter_free(void *state)
{
	free(state);
}

/* add(delta): value += delta; returns the new value. */
static int add(prism_task_ctx *ctx, void *state, const prism_arg *args, size_t nargs)
{
	struct counter *c = state;
	int64_t d = 1;
	if (nargs == 1 && args[0].len == 8)
		memcpy(&d, args[0].data, 8);
	c->value += d;
	c->calls++;
	return prism_return(ctx, 0, &c->value, 8);
}

/* append(x): value = value * 10 + x: the result shows the order calls ran in. */
static int append(prism_task_ctx *ctx, void *state, const prism_arg *args, size_t nargs)
{
	struct counter *c = state;
	int64_t x;
	(void)nargs;
	memcpy(&x, args[0].data, 8);
	c->value = c->value * 10 + x;
	return prism_return(ctx, 0, &c->value, 8);
}

static int whoami(prism_task_ctx *ctx, void *state, const prism_arg *args, size_t nargs)
{
	(void)state;
	(void)args;
	(void)nargs;
	int32_t pid = (int32_t)getpid();
	return prism_return(ctx, 0, &pid, 4);
}

static int where(prism_task_ctx *ctx, void *state, const prism_arg *args, size_t nargs)
{
	(void)state;
	(void)args;
	(void)nargs;
	int32_t cpu = sched_getcpu();
	return prism_return(ctx, 0, &cpu, 4);
}

static int broken(prism_task_ctx *ctx, void *state, const prism_arg *args, size_t nargs)
{
	(void)state;
	(void)args;
	(void)nargs;
	return prism_fail(ctx, "this method always fails");
}

static int save(void *state, void **bytes, size_t *len)
{
	*bytes = malloc(sizeof(struct counter));
	if (!*bytes)
		return -ENOMEM;
	memcpy(*bytes, state, sizeof(struct counter));
	*len = sizeof(struct counter);
	return 0;
}

static int restore(const void *bytes, size_t len, void **state)
{
	if (len != sizeof(struct counter))
		return -EINVAL;
	struct counter *c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	memcpy(c, bytes, sizeof(*c));
	*state = c;
	return 0;
}

/* nap(ms): sleeps, then returns the value: calls queue up behind it. */
static int nap(prism_task_ctx *ctx, void *state, const prism_arg *args, size_t nargs)
{
	struct counter *c = state;
	uint32_t ms = 0;
	if (nargs == 1 && args[0].len == 4)
		memcpy(&ms, args[0].data, 4);
	usleep(ms * 1000);
	return prism_return(ctx, 0, &c->value, 8);
}

/* add_to(handle): calls add(1000) on another actor and returns what it returned. */
static int add_to(prism_task_ctx *ctx, void *state, const prism_arg *args, size_t nargs)
{
	prism_actor other;
	(void)state;
	if (nargs != 1 || args[0].len != sizeof(other))
		return prism_fail(ctx, "want a handle");
	memcpy(&other, args[0].data, sizeof(other));
	int64_t d = 1000;
	prism_value v = prism_bytes(&d, 8);
	prism_ref r;
	if (prism_actor_call(other, "add", &v, 1, NULL, &r) != 0)
		return prism_fail(ctx, "call: %s", prism_last_error());
	return prism_return_ref(ctx, 0, r);
}

PRISM_ACTOR(Counter, counter_new, counter_free);
PRISM_METHOD(Counter, nap);
PRISM_METHOD(Counter, add_to);
PRISM_METHOD(Counter, add);
PRISM_METHOD(Counter, append);
PRISM_METHOD(Counter, whoami);
PRISM_METHOD(Counter, where);
PRISM_METHOD(Counter, broken);
PRISM_ACTOR_CHECKPOINT(Counter, save, restore);

/* A task that calls the actor whose handle it gets: handles are values. */
static int add_via_task(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	prism_actor h;
	(void)nargs;
	if (args[0].len != sizeof(h))
		return prism_fail(ctx, "want a handle");
	memcpy(&h, args[0].data, sizeof(h));
	int64_t d = 100;
	prism_value v = prism_bytes(&d, 8);
	prism_ref r;
	int rc = prism_actor_call(h, "add", &v, 1, NULL, &r);
	if (rc)
		return prism_fail(ctx, "call: %s", prism_last_error());
	return prism_return_ref(ctx, 0, r);
}
PRISM_REMOTE_ARITY(add_via_task, 1);

static void start(void)
{
	prism_opts o = {.num_workers = 2};
	cr_assert_eq(prism_init(&o), 0, "prism_init: %s", prism_last_error());
}

TestSuite(actors, .init = start, .fini = prism_shutdown, .timeout = 120);

static int64_t get_i64(prism_ref r)
{
	const void *d;
	size_t len;
	int rc = prism_get(r, 20 * SEC, &d, &len);
	cr_assert_eq(rc, 0, "get: %s (%s)", prism_strerror(rc),
		     rc == PRISM_E_TASK_FAILED ? (const char *)d : prism_last_error());
	cr_assert_eq(len, 8);
	int64_t v;
	memcpy(&v, d, 8);
	prism_ref_release(r);
	return v;
}

static prism_actor counter(int64_t start_value, const prism_actor_opts *o)
{
	prism_actor h;
	prism_value v = prism_bytes(&start_value, 8);
	cr_assert_eq(prism_actor_create("Counter", &v, 1, o, &h), 0, "create: %s",
		     prism_last_error());
	return h;
}

Test(actors, calls_run_in_order_and_keep_state)
{
	prism_actor h = counter(0, NULL);
	prism_ref refs[9];
	for (int64_t i = 1; i <= 9; i++) {
		prism_value v = prism_bytes(&i, 8);
		cr_assert_eq(prism_actor_call(h, "append", &v, 1, NULL, &refs[i - 1]), 0);
	}
	cr_assert_eq(get_i64(refs[8]), 123456789, "calls ran out of order");
	for (int i = 0; i < 8; i++)
		prism_ref_release(refs[i]);
	/* Many pipelined calls: every one seen, in order. */
	prism_ref r;
	for (int i = 0; i < 5000; i++) {
		cr_assert_eq(prism_actor_call(h, "add", NULL, 0, NULL, &r), 0);
		if (i < 4999)
			prism_ref_release(r);
	}
	cr_assert_eq(get_i64(r), 123456789 + 5000);
	cr_assert_eq(prism_actor_kill(h), 0);
}

Test(actors, handles_pass_to_tasks_and_callers_interleave)
{
	prism_actor h = counter(0, NULL);
	prism_ref via[4], mine[4];
	prism_value hv = prism_bytes(&h, sizeof(h));
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(prism_submit("add_via_task", &hv, 1, NULL, &via[i]), 0, "%s",
			     prism_last_error());
		cr_assert_eq(prism_actor_call(h, "add", NULL, 0, NULL, &mine[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		get_i64(via[i]);
		get_i64(mine[i]);
	}
	prism_ref r;
	int64_t zero = 0;
	prism_value z = prism_bytes(&zero, 8);
	cr_assert_eq(prism_actor_call(h, "add", &z, 1, NULL, &r), 0);
	cr_assert_eq(get_i64(r), 4 * 100 + 4, "some call was lost or applied twice");
}

Test(actors, named_actors_are_found_by_name)
{
	prism_actor_opts o = {.name = "the-counter"};
	prism_actor h = counter(41, &o), found;
	cr_assert_eq(prism_actor_get("the-counter", SEC, &found), 0, "%s", prism_last_error());
	cr_assert(prism_id_eq(found.id, h.id));
	prism_ref r;
	cr_assert_eq(prism_actor_call(found, "add", NULL, 0, NULL, &r), 0);
	cr_assert_eq(get_i64(r), 42);
	prism_actor dup;
	int64_t v = 0;
	prism_value a = prism_bytes(&v, 8);
	cr_assert_eq(prism_actor_create("Counter", &a, 1, &o, &dup), -EEXIST);
	cr_assert_eq(prism_actor_get("no-such-actor", 10 * PRISM_NS_PER_MS, &found), -ENOENT);
	cr_assert_eq(prism_actor_kill(h), 0);
	/* A killed actor's name is free again. */
	cr_assert_eq(prism_actor_create("Counter", &a, 1, &o, &dup), 0, "%s",
		     prism_last_error());
}

Test(actors, kill_fails_pending_and_later_calls)
{
	prism_actor h = counter(0, NULL);
	prism_ref r;
	cr_assert_eq(prism_actor_call(h, "add", NULL, 0, NULL, &r), 0);
	cr_assert_eq(get_i64(r), 1);
	cr_assert_eq(prism_actor_kill(h), 0);
	cr_assert_eq(prism_actor_call(h, "add", NULL, 0, NULL, &r), 0);
	const void *d;
	size_t len;
	cr_assert_eq(prism_get(r, 10 * SEC, &d, &len), PRISM_E_ACTOR_DIED);
	prism_ref_release(r);
}

Test(actors, handles_pass_to_other_actors)
{
	prism_actor a = counter(0, NULL), b = counter(5, NULL);
	prism_value hv = prism_bytes(&b, sizeof(b));
	prism_ref r;
	cr_assert_eq(prism_actor_call(a, "add_to", &hv, 1, NULL, &r), 0);
	cr_assert_eq(get_i64(r), 1005);
	cr_assert_eq(prism_actor_call(b, "add", NULL, 0, NULL, &r), 0);
	cr_assert_eq(get_i64(r), 1006);
}

Test(actors, kill_fails_calls_in_flight)
{
	prism_actor h = counter(0, NULL);
	uint32_t ms = 300;
	prism_value v = prism_bytes(&ms, 4);
	prism_ref r[5];
	for (int i = 0; i < 5; i++)
		cr_assert_eq(prism_actor_call(h, "nap", &v, 1, NULL, &r[i]), 0);
	usleep(50000); /* the first is running, the others wait in the actor's ring */
	uint64_t t0 = prism_now_ns();
	cr_assert_eq(prism_actor_kill(h), 0);
	for (int i = 0; i < 5; i++) {
		const void *d;
		size_t len;
		cr_assert_eq(prism_get(r[i], 10 * SEC, &d, &len), PRISM_E_ACTOR_DIED, "call %d",
			     i);
		prism_ref_release(r[i]);
	}
	cr_assert_lt(prism_now_ns() - t0, 1000 * PRISM_NS_PER_MS,
		     "the calls were left to run instead of failing");
}

static int32_t pid_of(prism_actor h)
{
	prism_ref r;
	cr_assert_eq(prism_actor_call(h, "whoami", NULL, 0, NULL, &r), 0);
	const void *d;
	size_t len;
	cr_assert_eq(prism_get(r, 20 * SEC, &d, &len), 0, "whoami: %s", prism_last_error());
	int32_t pid;
	memcpy(&pid, d, 4);
	prism_ref_release(r);
	return pid;
}

Test(actors, a_killed_worker_ends_an_actor_without_restarts)
{
	prism_actor h = counter(0, NULL);
	int32_t pid = pid_of(h);
	cr_assert_eq(kill(pid, SIGKILL), 0);
	/* Calls made after the death fail, and never hang. */
	const void *d;
	size_t len;
	int rc = 0;
	for (int i = 0; i < 100 && rc != PRISM_E_ACTOR_DIED; i++) {
		prism_ref r;
		cr_assert_eq(prism_actor_call(h, "add", NULL, 0, NULL, &r), 0);
		rc = prism_get(r, 10 * SEC, &d, &len);
		prism_ref_release(r);
		if (rc == 0)
			usleep(10000); /* the call won the race with the death notice */
	}
	cr_assert_eq(rc, PRISM_E_ACTOR_DIED, "got %s", prism_strerror(rc));
}

Test(actors, a_restarted_actor_resumes_from_its_checkpoint)
{
	prism_actor_opts o = {.max_restarts = 1};
	prism_actor h = counter(10, &o);
	prism_ref r;
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(prism_actor_call(h, "add", NULL, 0, NULL, &r), 0);
		cr_assert_eq(get_i64(r), 11 + i);
	}
	int32_t pid = pid_of(h);
	cr_assert_eq(kill(pid, SIGKILL), 0);
	/* Calls after the restart succeed, on a new worker, with the state of the last
	 * checkpoint (taken after every call here: 15). */
	int64_t got = -1;
	for (int i = 0; i < 200; i++) {
		cr_assert_eq(prism_actor_call(h, "add", NULL, 0, NULL, &r), 0);
		const void *d;
		size_t len;
		int rc = prism_get(r, 20 * SEC, &d, &len);
		if (rc == 0)
			memcpy(&got, d, 8);
		prism_ref_release(r);
		if (rc == 0)
			break;
		cr_assert_eq(rc, PRISM_E_ACTOR_DIED, "got %s", prism_strerror(rc));
		usleep(10000);
	}
	cr_assert_eq(got, 16, "after the restart the counter is %lld", (long long)got);
	cr_assert_neq(pid_of(h), pid);
	/* No restarts left: a second death ends it. */
	cr_assert_eq(kill(pid_of(h), SIGKILL), 0);
	int rc = 0;
	for (int i = 0; i < 100 && rc != PRISM_E_ACTOR_DIED; i++) {
		cr_assert_eq(prism_actor_call(h, "add", NULL, 0, NULL, &r), 0);
		const void *d;
		size_t len;
		rc = prism_get(r, 10 * SEC, &d, &len);
		prism_ref_release(r);
		if (rc == 0)
			usleep(10000);
	}
	cr_assert_eq(rc, PRISM_E_ACTOR_DIED);
}

Test(actors, bad_input_gets_clear_errors_and_the_actor_lives_on)
{
	prism_actor h = counter(0, NULL), none;
	prism_ref r;
	cr_assert_eq(prism_actor_call(h, "no_such_method", NULL, 0, NULL, &r),
		     PRISM_E_UNKNOWN_METHOD);
	cr_assert(strstr(prism_last_error(), "no_such_method"), "%s", prism_last_error());
	cr_assert_eq(prism_actor_create("NoSuchClass", NULL, 0, NULL, &none),
		     PRISM_E_UNKNOWN_FUNCTION);
	cr_assert_eq(prism_submit("Counter", NULL, 0, NULL, &r), PRISM_E_UNKNOWN_FUNCTION);
	prism_actor_opts bad = {.max_restarts = -2};
	cr_assert_eq(prism_actor_create("Counter", NULL, 0, &bad, &none), -EINVAL);
	prism_actor_opts huge = {.num_cpus = 64};
	cr_assert_eq(prism_actor_create("Counter", NULL, 0, &huge, &none), PRISM_E_INFEASIBLE);
	/* A method that fails: its ref says so; the actor keeps its state. */
	cr_assert_eq(prism_actor_call(h, "broken", NULL, 0, NULL, &r), 0);
	const void *d;
	size_t len;
	cr_assert_eq(prism_get(r, 10 * SEC, &d, &len), PRISM_E_TASK_FAILED);
	cr_assert(strstr(d, "always fails"), "%s", (const char *)d);
	prism_ref_release(r);
	cr_assert_eq(prism_actor_call(h, "add", NULL, 0, NULL, &r), 0);
	cr_assert_eq(get_i64(r), 1);
}

Test(actors, a_failed_constructor_fails_the_calls)
{
	prism_actor h;
	prism_value v = prism_bytes("fail", 4);
	cr_assert_eq(prism_actor_create("Counter", &v, 1, NULL, &h), 0);
	prism_ref r;
	cr_assert_eq(prism_actor_call(h, "add", NULL, 0, NULL, &r), 0);
	const void *d;
	size_t len;
	cr_assert_eq(prism_get(r, 10 * SEC, &d, &len), PRISM_E_ACTOR_DIED);
	cr_assert(strstr(d, "asked to fail"), "%s", (const char *)d);
	prism_ref_release(r);
}

Test(actors, realtime_actors_spin_and_are_counted)
{
	prism_actor_opts o = {.realtime = true};
	prism_actor h = counter(0, &o), second;
	prism_ref r;
	for (int i = 1; i <= 100; i++) {
		cr_assert_eq(prism_actor_call(h, "add", NULL, 0, NULL, &r), 0);
		cr_assert_eq(get_i64(r), i);
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu <= 2) {
		/* One CPU stays for everything else: a second spinner is refused. */
		cr_assert_eq(prism_actor_create("Counter", NULL, 0, &o, &second),
			     PRISM_E_NO_SPINNER);
		cr_assert(strstr(prism_last_error(), "real-time"), "%s", prism_last_error());
	}
	cr_assert_eq(prism_actor_kill(h), 0);
}

/* The threads of process pid at SCHED_IDLE pinned to cpu alone; *fifo: whether its
 * main thread runs SCHED_FIFO. */
static int idle_keepers(int pid, int cpu, bool *fifo)
{
	struct proc_thread t[64];
	int n = proc_threads(pid, t, 64), keepers = 0;
	char want[16];
	cr_assert_gt(n, 0, "no threads for pid %d", pid);
	snprintf(want, sizeof(want), "%d", cpu);
	*fifo = false;
	for (int i = 0; i < n; i++) {
		if (t[i].tid == pid)
			*fifo = t[i].policy == SCHED_FIFO;
		keepers += t[i].policy == SCHED_IDLE && strcmp(t[i].cpus, want) == 0;
	}
	return keepers;
}

static int32_t call_i32(prism_actor h, const char *method)
{
	prism_ref r;
	const void *d;
	size_t len;
	cr_assert_eq(prism_actor_call(h, method, NULL, 0, NULL, &r), 0);
	cr_assert_eq(prism_get(r, 20 * SEC, &d, &len), 0, "%s", prism_last_error());
	cr_assert_eq(len, 4);
	int32_t v;
	memcpy(&v, d, 4);
	prism_ref_release(r);
	return v;
}

Test(actors, a_sleeping_realtime_actor_keeps_its_cpu_from_idling)
{
	prism_actor h;
	prism_actor_opts plain = {.rt_let_cpu_idle = true};
	cr_assert_eq(prism_actor_create("Counter", NULL, 0, &plain, &h), -EINVAL);
	cr_assert(strstr(prism_last_error(), "real-time"), "%s", prism_last_error());
	for (int let_idle = 0; let_idle <= 1; let_idle++) {
		prism_actor_opts o = {.realtime = true,
				      .rt_spin_ns = 100 * PRISM_NS_PER_US,
				      .rt_let_cpu_idle = let_idle};
		h = counter(0, &o);
		int pid = call_i32(h, "whoami"), cpu = call_i32(h, "where");
		bool fifo;
		int n = idle_keepers(pid, cpu, &fifo);
		cr_assert_eq(prism_actor_kill(h), 0);
		if (!fifo)
			cr_skip("no SCHED_FIFO here (not root, no rtprio limit): no keeper");
		cr_assert_eq(n, let_idle ? 0 : 1, "rt_let_cpu_idle %d: %d keepers on CPU %d",
			     let_idle, n, cpu);
	}
}
