/* The io_uring event loop: timers, fd watches, wakes, pidfds, run modes, work sources,
 * hooks, destroy and fault injection.
 *
 * Every test bounds its own time twice: new_loop() arms an unreferenced 5 s safety timer
 * that stops the loop and marks the test failed, and the suite has a Criterion timeout.
 * Criterion runs each test in its own process, so the globals below are per test. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/loop.h"

#define MS PRISM_NS_PER_MS

TestSuite(loop, .timeout = 60);

static prism_loop *L;
static prism_loop_timer *safety;
static bool safety_fired;

static void safety_cb(prism_loop_timer *t, void *arg)
{
	(void)t;
	(void)arg;
	safety_fired = true;
	prism_loop_stop(L);
}

static void new_loop(const prism_loop_opts *opts)
{
	cr_assert_eq(prism_loop_create(opts, &L), 0);
	cr_assert_eq(prism_loop_timer_create(L, safety_cb, NULL, &safety), 0);
	prism_loop_timer_set_ref(safety, false);
	prism_loop_timer_start(safety, 5000 * MS, 0);
}

static void end_loop(void)
{
	cr_assert_not(safety_fired, "the safety timer fired: the loop hung");
	prism_loop_destroy(L);
	L = NULL;
}

static prism_loop_stats stats(void)
{
	prism_loop_stats s;
	prism_loop_stats_get(L, &s);
	return s;
}

static void msleep(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void make_pipe(int fds[2])
{
	cr_assert_eq(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
}

/* Threads that must act while the loop sleeps wait for this before-sleep hook, so that
 * the test does not depend on how fast either side is scheduled. */
static atomic_bool loop_sleeping;

static void mark_sleeping(prism_loop *loop, void *arg)
{
	(void)loop;
	(void)arg;
	atomic_store(&loop_sleeping, true);
}

static void add_sleep_marker(void)
{
	prism_loop_hook *h;
	atomic_store(&loop_sleeping, false);
	cr_assert_eq(
		prism_loop_hook_add(L, PRISM_LOOP_HOOK_BEFORE_SLEEP, mark_sleeping, NULL, &h),
		0);
}

/* From another thread: wait (at most 2 s) until the loop is about to block, then give it
 * a few ms to get into io_uring.  Either way it counts as asleep: stats.sleeps is
 * incremented before the wait, and an event that beats it ends the wait at once. */
static void wait_until_sleeping(void)
{
	uint64_t give_up = prism_now_ns() + 2 * PRISM_NS_PER_SEC;
	while (!atomic_load(&loop_sleeping) && prism_now_ns() < give_up)
		msleep(1);
	msleep(5);
}

/* ---- timers --------------------------------------------------------------------- */

#define MAX_LOG 64
static int fired[MAX_LOG];
static int nfired;

static void log_cb(prism_loop_timer *t, void *arg)
{
	(void)t;
	if (nfired < MAX_LOG)
		fired[nfired] = (int)(intptr_t)arg;
	nfired++;
}

Test(loop, timers_fire_in_deadline_order)
{
	static const uint64_t timeouts[] = {30, 10, 20, 0, 5};
	static const int expect[] = {3, 4, 1, 2, 0};
	prism_loop_timer *t[5];
	new_loop(NULL);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(prism_loop_timer_create(L, log_cb, (void *)(intptr_t)i, &t[i]), 0);
		prism_loop_timer_start(t[i], timeouts[i] * MS, 0);
		cr_assert(prism_loop_timer_active(t[i]));
	}
	uint64_t t0 = prism_loop_now(L);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0,
		     "nothing left after the last");
	cr_assert_geq(prism_loop_now(L), t0 + 30 * MS,
		      "the cached clock moved with the timers");
	cr_assert_eq(nfired, 5);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(fired[i], expect[i], "position %d", i);
		cr_assert_not(prism_loop_timer_active(t[i]));
	}
	uint64_t cached = prism_loop_now(L);
	msleep(2);
	cr_assert_eq(prism_loop_now(L), cached, "cached until updated");
	prism_loop_update_time(L);
	cr_assert_geq(prism_loop_now(L), cached + 2 * MS);
	end_loop();
}

Test(loop, equal_deadlines_fire_in_start_order)
{
	prism_loop_timer *t[8];
	new_loop(NULL);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(prism_loop_timer_create(L, log_cb, (void *)(intptr_t)i, &t[i]), 0);
		prism_loop_timer_start(t[i], 2 * MS, 0);
	}
	prism_loop_timer_start(t[2], 2 * MS, 0); /* restarting moves it behind its peers */
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	static const int expect[] = {0, 1, 3, 4, 5, 6, 7, 2};
	cr_assert_eq(nfired, 8);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(fired[i], expect[i], "position %d", i);
	end_loop();
}

static prism_loop_timer *victim_stop, *victim_destroy;

static void stopper_cb(prism_loop_timer *t, void *arg)
{
	log_cb(t, arg);
	prism_loop_timer_stop(victim_stop);
	prism_loop_timer_destroy(victim_destroy);
	victim_destroy = NULL;
}

Test(loop, stopped_and_destroyed_timers_do_not_fire)
{
	prism_loop_timer *a, *b, *c, *d;
	new_loop(NULL);
	cr_assert_eq(prism_loop_timer_create(L, stopper_cb, (void *)1, &a), 0);
	cr_assert_eq(prism_loop_timer_create(L, log_cb, (void *)2, &b), 0);
	cr_assert_eq(prism_loop_timer_create(L, log_cb, (void *)3, &c), 0);
	cr_assert_eq(prism_loop_timer_create(L, log_cb, (void *)4, &d), 0);
	prism_loop_timer_start(a, 1 * MS, 0);
	prism_loop_timer_start(b, 1 * MS, 0); /* same deadline, after a: stopped by a */
	prism_loop_timer_start(c, 1 * MS, 0); /* destroyed by a in the same phase */
	prism_loop_timer_start(d, 1 * MS, 0);
	victim_stop = b;
	victim_destroy = c;
	prism_loop_timer_stop(d); /* stopped before running at all */
	prism_loop_timer_stop(d); /* idempotent */
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	cr_assert_eq(nfired, 1);
	cr_assert_eq(fired[0], 1);
	prism_loop_timer_destroy(a);
	prism_loop_timer_destroy(b);
	prism_loop_timer_destroy(d);
	prism_loop_timer_destroy(NULL);
	end_loop();
}

static int repeats;

static void repeat_cb(prism_loop_timer *t, void *arg)
{
	(void)arg;
	if (++repeats == 5)
		prism_loop_timer_stop(t);
}

Test(loop, repeating_timer_and_again)
{
	prism_loop_timer *t;
	new_loop(NULL);
	cr_assert_eq(prism_loop_timer_create(L, repeat_cb, NULL, &t), 0);
	cr_assert_eq(prism_loop_timer_again(t), -EINVAL, "never started");
	prism_loop_timer_start(t, 0, 1 * MS);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	cr_assert_eq(repeats, 5);
	cr_assert_not(prism_loop_timer_active(t));

	/* again() restarts a repeating timer with its repeat as the timeout. */
	repeats = 0;
	prism_loop_timer_set_repeat(t, 2 * MS);
	cr_assert_eq(prism_loop_timer_again(t), 0);
	cr_assert(prism_loop_timer_active(t));
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	cr_assert_eq(repeats, 5);

	/* again() leaves a one-shot timer alone. */
	prism_loop_timer_start(t, 50 * MS, 0);
	cr_assert_eq(prism_loop_timer_again(t), 0);
	cr_assert(prism_loop_timer_active(t));
	prism_loop_timer_destroy(t);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_NOWAIT), 0, "destroy stops it");
	end_loop();
}

/* A fires first; it restarts itself with timeout 0 three times, starts C with timeout 0,
 * stops B (due in the same phase, behind A).  Nothing started in a timer phase may run
 * in that phase, so every call lands in a new iteration. */
static prism_loop_timer *ta, *tb, *tc;
static uint64_t a_iters[4], c_iter;
static int a_calls;

static uint64_t iteration(void)
{
	return stats().iterations;
}

static void a_cb(prism_loop_timer *t, void *arg)
{
	(void)arg;
	a_iters[a_calls++] = iteration();
	if (a_calls == 1) {
		prism_loop_timer_stop(tb);
		prism_loop_timer_start(tc, 0, 0);
	}
	if (a_calls < 4)
		prism_loop_timer_start(t, 0, 0);
}

static void c_cb(prism_loop_timer *t, void *arg)
{
	(void)t;
	(void)arg;
	c_iter = iteration();
}

static void b_cb(prism_loop_timer *t, void *arg)
{
	(void)t;
	(void)arg;
	cr_assert_fail("b was stopped by a");
}

Test(loop, timers_started_in_a_timer_phase_wait_for_the_next)
{
	new_loop(NULL);
	cr_assert_eq(prism_loop_timer_create(L, a_cb, NULL, &ta), 0);
	cr_assert_eq(prism_loop_timer_create(L, b_cb, NULL, &tb), 0);
	cr_assert_eq(prism_loop_timer_create(L, c_cb, NULL, &tc), 0);
	prism_loop_timer_start(ta, 0, 0);
	prism_loop_timer_start(tb, 0, 0);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	cr_assert_eq(a_calls, 4);
	for (int i = 1; i < 4; i++)
		cr_assert_eq(a_iters[i], a_iters[i - 1] + 1, "one call of a per iteration");
	cr_assert_eq(c_iter, a_iters[0] + 1);
	cr_assert_eq(stats().sleeps, 0, "due timers never let the loop sleep");
	end_loop();
}

Test(loop, timer_phase_is_bounded)
{
	prism_loop_opts o = {.max_timers = 4};
	prism_loop_timer *t[10];
	new_loop(&o);
	for (int i = 0; i < 10; i++) {
		cr_assert_eq(prism_loop_timer_create(L, log_cb, (void *)(intptr_t)i, &t[i]), 0);
		prism_loop_timer_start(t[i], 0, 0);
	}
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_NOWAIT), 1);
	cr_assert_eq(nfired, 4);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_NOWAIT), 1);
	cr_assert_eq(nfired, 8);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_NOWAIT), 0);
	cr_assert_eq(nfired, 10);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(fired[i], i);
	end_loop();
}

#define NRANDOM 10000

struct rtimer {
	prism_loop_timer *t;
	uint64_t timeout;
	int index;
	bool stopped;
};

static struct rtimer *rt;
static int *rorder, nr;

static void random_cb(prism_loop_timer *t, void *arg)
{
	(void)t;
	struct rtimer *r = arg;
	rorder[nr++] = r->index;
}

Test(loop, ten_thousand_random_timers_fire_in_order)
{
	unsigned seed = 12345;
	int expect_fired = 0;
	new_loop(NULL);
	rt = calloc(NRANDOM, sizeof(*rt));
	rorder = calloc(NRANDOM, sizeof(*rorder));
	cr_assert(rt && rorder);
	for (int i = 0; i < NRANDOM; i++) {
		rt[i].index = i;
		/* 100 distinct deadlines over 20 ms: many ties, to check FIFO among them. */
		rt[i].timeout = (uint64_t)(rand_r(&seed) % 100) * 200 * PRISM_NS_PER_US;
		cr_assert_eq(prism_loop_timer_create(L, random_cb, &rt[i], &rt[i].t), 0);
		prism_loop_timer_start(rt[i].t, rt[i].timeout, 0);
	}
	/* Stop a random tenth, from anywhere in the heap. */
	for (int i = 0; i < NRANDOM / 10; i++) {
		struct rtimer *r = &rt[rand_r(&seed) % NRANDOM];
		prism_loop_timer_stop(r->t);
		r->stopped = true;
	}
	for (int i = 0; i < NRANDOM; i++)
		expect_fired += !rt[i].stopped;
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	cr_assert_eq(nr, expect_fired);
	for (int i = 0; i < nr; i++) {
		cr_assert_not(rt[rorder[i]].stopped);
		if (i == 0)
			continue;
		struct rtimer *p = &rt[rorder[i - 1]], *c = &rt[rorder[i]];
		cr_assert(p->timeout < c->timeout ||
				  (p->timeout == c->timeout && p->index < c->index),
			  "out of order at %d: (%llu,%d) then (%llu,%d)", i,
			  (unsigned long long)p->timeout, p->index,
			  (unsigned long long)c->timeout, c->index);
	}
	for (int i = 0; i < NRANDOM; i++)
		prism_loop_timer_destroy(rt[i].t);
	free(rt);
	free(rorder);
	end_loop();
}

/* ---- fd watches ----------------------------------------------------------------- */

struct reader {
	int fd;
	size_t total;    /* bytes read */
	size_t close_at; /* close the watch once this many bytes arrived (0: never) */
	unsigned calls;  /* callback calls */
	unsigned last_events;
	int last_status;
	bool hup;
	bool bad_pattern;
	bool done;
	int closes; /* close callbacks seen */
};

static void reader_closed(void *arg)
{
	struct reader *r = arg;
	r->closes++;
	r->done = true;
}

static void reader_cb(prism_loop_io *io, int status, unsigned events, void *arg)
{
	struct reader *r = arg;
	unsigned char buf[4096];
	ssize_t n;
	r->calls++;
	r->last_status = status;
	r->last_events = events;
	if (status < 0)
		return;
	/* Drain: readiness is edge-like. */
	size_t total = r->total;
	while ((n = read(r->fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != (unsigned char)((total + (size_t)i) % 251))
				r->bad_pattern = true;
		total += (size_t)n;
	}
	/* Atomic: a lockstep writer thread watches it.  Only once the drain is over, so
	 * that the writer's next batch needs an event of its own (published inside the
	 * loop, the batch could land in this drain's next read). */
	__atomic_store_n(&r->total, total, __ATOMIC_RELEASE);
	if (n == 0 || (events & PRISM_LOOP_HUP))
		r->hup = true;
	if (r->close_at && r->total >= r->close_at && !r->done) {
		prism_loop_io_close(io, reader_closed, r);
		r->close_at = 0;
	}
}

struct writer {
	int fd;
	unsigned delay_ms; /* wait before writing; with after_sleep: the loop's sleep */
	bool after_sleep;
	size_t count; /* bytes, written one at a time in the pattern reader_cb checks */
	/* Lockstep: after every `every` bytes, wait (at most 2 s) until the reader has read
	 * them all, so that each batch is a separate readiness event. */
	const size_t *progress;
	size_t every;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	if (w->after_sleep)
		wait_until_sleeping();
	else
		msleep(w->delay_ms);
	for (size_t i = 0; i < w->count; i++) {
		unsigned char b = (unsigned char)(i % 251);
		while (write(w->fd, &b, 1) != 1)
			msleep(1); /* pipe full (EAGAIN): let the reader catch up */
		if (!w->progress || (i + 1) % w->every != 0)
			continue;
		uint64_t give_up = prism_now_ns() + 2 * PRISM_NS_PER_SEC;
		while (__atomic_load_n(w->progress, __ATOMIC_ACQUIRE) < i + 1 &&
		       prism_now_ns() < give_up)
			sched_yield();
	}
	return NULL;
}

Test(loop, fd_watch_sees_data_from_another_thread)
{
	int fds[2];
	struct reader r = {0};
	struct writer w;
	pthread_t th;
	prism_loop_io *io;
	new_loop(NULL);
	make_pipe(fds);
	r.fd = fds[0];
	r.close_at = 5;
	cr_assert_eq(prism_loop_io_create(L, fds[0], reader_cb, &r, &io), 0);
	cr_assert_eq(prism_loop_io_start(io, PRISM_LOOP_READABLE), 0);
	add_sleep_marker();
	w = (struct writer){.fd = fds[1], .after_sleep = true, .count = 5};
	cr_assert_eq(pthread_create(&th, NULL, writer_main, &w), 0);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0, "closing the watch ends it");
	pthread_join(th, NULL);
	cr_assert_eq(r.total, 5);
	cr_assert_not(r.bad_pattern);
	cr_assert_eq(r.closes, 1);
	cr_assert(r.last_events & PRISM_LOOP_READABLE);
	cr_assert_geq(stats().sleeps, 1, "the loop slept until the data came");
	close(fds[0]);
	close(fds[1]);
	end_loop();
}

Test(loop, fd_watch_sees_data_from_another_process)
{
	int fds[2];
	struct reader r = {0};
	prism_loop_io *io;
	pid_t child;
	new_loop(NULL);
	make_pipe(fds);
	r.fd = fds[0];
	r.close_at = 100;
	cr_assert_eq(prism_loop_io_create(L, fds[0], reader_cb, &r, &io), 0);
	cr_assert_eq(prism_loop_io_start(io, PRISM_LOOP_READABLE), 0);
	child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		struct writer w = {.fd = fds[1], .delay_ms = 20, .count = 100};
		writer_main(&w);
		_exit(0);
	}
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	cr_assert_eq(r.total, 100);
	cr_assert_not(r.bad_pattern);
	cr_assert_eq(waitpid(child, NULL, 0), child);
	close(fds[0]);
	close(fds[1]);
	end_loop();
}

static bool timer_done;

static void done_cb(prism_loop_timer *t, void *arg)
{
	(void)t;
	(void)arg;
	timer_done = true;
}

Test(loop, stopped_fd_watch_is_silent_until_restarted)
{
	int fds[2];
	struct reader r = {0};
	prism_loop_io *io;
	prism_loop_timer *t;
	new_loop(NULL);
	make_pipe(fds);
	r.fd = fds[0];
	cr_assert_eq(prism_loop_io_create(L, fds[0], reader_cb, &r, &io), 0);
	cr_assert_eq(prism_loop_io_start(io, PRISM_LOOP_READABLE), 0);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_NOWAIT), 1, "armed and idle");
	prism_loop_io_stop(io);
	prism_loop_io_stop(io);
	cr_assert_eq(write(fds[1], "\0\1\2", 3), 3);
	cr_assert_eq(prism_loop_timer_create(L, done_cb, NULL, &t), 0);
	prism_loop_timer_start(t, 30 * MS, 0);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0,
		     "a stopped watch is not alive");
	cr_assert(timer_done);
	cr_assert_eq(r.calls, 0);

	/* Restarting polls afresh, so data that is already there is reported. */
	cr_assert_eq(prism_loop_io_start(io, PRISM_LOOP_READABLE), 0);
	while (r.total < 3 && !safety_fired)
		cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_ONCE), 1);
	cr_assert_eq(r.total, 3);
	cr_assert_not(r.bad_pattern);

	prism_loop_io_close(io, NULL, NULL);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	close(fds[0]);
	close(fds[1]);
	end_loop();
}

static void writable_cb(prism_loop_io *io, int status, unsigned events, void *arg)
{
	unsigned *seen = arg;
	cr_assert_eq(status, 0);
	*seen |= events;
	prism_loop_io_stop(io);
}

Test(loop, fd_watch_mask_change_and_bad_arguments)
{
	int fds[2];
	unsigned seen = 0;
	prism_loop_io *io;
	new_loop(NULL);
	make_pipe(fds);
	cr_assert_eq(prism_loop_io_create(L, -1, writable_cb, &seen, &io), -EBADF);
	cr_assert_null(io);
	cr_assert_eq(prism_loop_io_create(L, fds[1], writable_cb, &seen, &io), 0);
	cr_assert_eq(prism_loop_io_start(io, 0), -EINVAL);
	cr_assert_eq(prism_loop_io_start(io, PRISM_LOOP_HUP), -EINVAL);
	cr_assert_eq(prism_loop_io_start(io, PRISM_LOOP_READABLE), 0);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_NOWAIT), 1, "the write end never reads");
	cr_assert_eq(seen, 0);
	cr_assert_eq(prism_loop_io_start(io, PRISM_LOOP_WRITABLE), 0);
	while (!seen && !safety_fired)
		prism_loop_run(L, PRISM_LOOP_RUN_ONCE);
	cr_assert_eq(seen, PRISM_LOOP_WRITABLE);
	prism_loop_io_close(io, NULL, NULL);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	close(fds[0]);
	close(fds[1]);
	end_loop();
}

static int closes;

static void count_close(void *arg)
{
	(void)arg;
	closes++;
}

Test(loop, close_calls_the_close_callback_once)
{
	int fds[2];
	struct reader r = {0};
	prism_loop_io *armed, *never_started, *own;
	new_loop(NULL);
	make_pipe(fds);
	r.fd = fds[0];
	cr_assert_eq(prism_loop_io_create(L, fds[0], reader_cb, &r, &armed), 0);
	cr_assert_eq(prism_loop_io_create(L, fds[0], reader_cb, &r, &never_started), 0);
	cr_assert_eq(prism_loop_io_start(armed, PRISM_LOOP_READABLE), 0);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_NOWAIT), 1);
	prism_loop_io_close(armed, count_close, NULL);
	prism_loop_io_close(never_started, count_close, NULL);
	cr_assert_eq(closes, 0, "close callbacks never run inside close");
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	cr_assert_eq(closes, 2);
	cr_assert_eq(r.calls, 0);

	/* A watch that closes itself from its own callback. */
	r.close_at = 1;
	cr_assert_eq(prism_loop_io_create(L, fds[0], reader_cb, &r, &own), 0);
	cr_assert_eq(prism_loop_io_start(own, PRISM_LOOP_READABLE), 0);
	cr_assert_eq(write(fds[1], "\0", 1), 1);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	cr_assert_eq(r.closes, 1);
	cr_assert_eq(r.total, 1);
	close(fds[0]);
	close(fds[1]);
	end_loop();
}

static void many_events(const prism_loop_opts *opts)
{
	int fds[2];
	struct reader r = {0};
	struct writer w;
	pthread_t th;
	prism_loop_io *io;
	new_loop(opts);
	make_pipe(fds);
	r.fd = fds[0];
	r.close_at = 10000;
	cr_assert_eq(prism_loop_io_create(L, fds[0], reader_cb, &r, &io), 0);
	cr_assert_eq(prism_loop_io_start(io, PRISM_LOOP_READABLE), 0);
	w = (struct writer){
		.fd = fds[1], .delay_ms = 5, .count = 10000, .progress = &r.total, .every = 10};
	cr_assert_eq(pthread_create(&th, NULL, writer_main, &w), 0);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	pthread_join(th, NULL);
	cr_assert_eq(r.total, 10000);
	cr_assert_not(r.bad_pattern);
	cr_assert_eq(r.closes, 1);
	cr_assert_geq(r.calls, 10000 / 10, "one event per lockstep batch at least");
	prism_loop_stats s = stats();
	cr_log_info("10000 writes: %u callbacks, %llu completions, %llu re-arms, %llu sleeps",
		    r.calls, (unsigned long long)s.completions, (unsigned long long)s.rearms,
		    (unsigned long long)s.sleeps);
	close(fds[0]);
	close(fds[1]);
	end_loop();
}

Test(loop, multishot_watch_survives_ten_thousand_writes)
{
	many_events(NULL);
}

Test(loop, multishot_watch_survives_ten_thousand_writes_on_a_tiny_plain_ring)
{
	prism_loop_opts o = {.entries = 2, .flags = PRISM_LOOP_F_PLAIN_RING};
	many_events(&o);
	/* Plain ring: the fallback path, with none of the task-run flags. */
}

Test(loop, multishot_poll_is_rearmed_after_a_full_cq)
{
	/* A plain ring posts a poll completion per write; with a 4-entry CQ the fifth
	 * cannot be posted and the kernel ends the multishot poll (no IORING_CQE_F_MORE). */
	prism_loop_opts o = {.entries = 2, .flags = PRISM_LOOP_F_PLAIN_RING};
	int fds[2];
	struct reader r = {0};
	prism_loop_io *io;
	new_loop(&o);
	cr_assert_eq(stats().setup_flags, 0);
	make_pipe(fds);
	r.fd = fds[0];
	cr_assert_eq(prism_loop_io_create(L, fds[0], reader_cb, &r, &io), 0);
	cr_assert_eq(prism_loop_io_start(io, PRISM_LOOP_READABLE), 0);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_NOWAIT), 1);
	for (int i = 0; i < 10; i++) {
		unsigned char b = (unsigned char)i;
		cr_assert_eq(write(fds[1], &b, 1), 1);
	}
	while (r.total < 10 && !safety_fired)
		prism_loop_run(L, PRISM_LOOP_RUN_ONCE);
	cr_assert_eq(r.total, 10);
	cr_assert_geq(stats().rearms, 1, "the kernel ended the multishot poll");
	/* The re-armed poll still reports new data. */
	unsigned char b = 10;
	cr_assert_eq(write(fds[1], &b, 1), 1);
	while (r.total < 11 && !safety_fired)
		prism_loop_run(L, PRISM_LOOP_RUN_ONCE);
	cr_assert_eq(r.total, 11);
	cr_assert_not(r.bad_pattern);
	prism_loop_io_close(io, NULL, NULL);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	close(fds[0]);
	close(fds[1]);
	end_loop();
}

Test(loop, fd_watch_on_a_bad_fd_reports_the_error)
{
	struct reader r = {0};
	prism_loop_io *io;
	new_loop(NULL);
	r.fd = 1000; /* not open */
	cr_assert_eq(prism_loop_io_create(L, r.fd, reader_cb, &r, &io), 0);
	cr_assert_eq(prism_loop_io_start(io, PRISM_LOOP_READABLE), 0);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0, "the failed watch stops");
	cr_assert_eq(r.calls, 1);
	cr_assert_eq(r.last_status, -EBADF);
	prism_loop_io_close(io, NULL, NULL);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	end_loop();
}

/* ---- wakes ---------------------------------------------------------------------- */

static void *waker_main(void *arg)
{
	wait_until_sleeping();
	prism_loop_wake(arg);
	return NULL;
}

Test(loop, wake_from_another_thread_ends_a_sleep_without_timers)
{
	pthread_t th;
	new_loop(NULL);
	add_sleep_marker();
	cr_assert_eq(pthread_create(&th, NULL, waker_main, L), 0);
	/* Nothing is alive, but RUN_ONCE still waits for the wake. */
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_ONCE), 0);
	pthread_join(th, NULL);
	prism_loop_stats s = stats();
	cr_assert_eq(s.wakeups, 1);
	cr_assert_eq(s.sleeps, 1);
	cr_assert_eq(s.iterations, 1);
	end_loop();
}

Test(loop, wakes_coalesce)
{
	new_loop(NULL);
	for (int round = 1; round <= 3; round++) {
		for (int i = 0; i < 1000; i++)
			cr_assert_eq(prism_loop_wake(L), 0);
		while (stats().wakeups < (uint64_t)round && !safety_fired)
			prism_loop_run(L, PRISM_LOOP_RUN_ONCE);
		cr_assert_eq(stats().wakeups, (uint64_t)round, "1000 wakes, one wake-up");
		/* Nothing left over: a NOWAIT round sees no further wake-up. */
		cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_NOWAIT), 0);
		cr_assert_eq(stats().wakeups, (uint64_t)round);
	}
	end_loop();
}

#define WAKER_THREADS 4

static atomic_int wakers_done;

static void *many_wakes_main(void *arg)
{
	for (int i = 0; i < 10000; i++)
		prism_loop_wake(arg);
	atomic_fetch_add(&wakers_done, 1);
	prism_loop_wake(arg); /* after the count: the loop must see this one */
	return NULL;
}

Test(loop, concurrent_wakes_coalesce_and_none_is_lost)
{
	pthread_t th[WAKER_THREADS];
	new_loop(NULL);
	for (int i = 0; i < WAKER_THREADS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, many_wakes_main, L), 0);
	/* Each RUN_ONCE may sleep; a lost wake would leave it asleep until the safety
	 * timer. */
	while (atomic_load(&wakers_done) < WAKER_THREADS && !safety_fired)
		cr_assert_geq(prism_loop_run(L, PRISM_LOOP_RUN_ONCE), 0);
	for (int i = 0; i < WAKER_THREADS; i++)
		pthread_join(th[i], NULL);
	/* Under load the wakers can all finish before the loop first runs: the wakes are
	 * then pending in the eventfd, and the loop must still see them. */
	while (stats().wakeups == 0 && !safety_fired)
		cr_assert_geq(prism_loop_run(L, PRISM_LOOP_RUN_ONCE), 0);
	uint64_t seen = stats().wakeups;
	cr_log_info("%d wakes, %llu wake-ups", WAKER_THREADS * 10001, (unsigned long long)seen);
	cr_assert_geq(seen, 1);
	cr_assert_lt(seen, WAKER_THREADS * 10001, "wakes coalesce");
	end_loop();
}

Test(loop, wake_fd_from_another_process)
{
	int fd;
	pid_t child;
	new_loop(NULL);
	cr_assert_eq(prism_loop_wake_fd(L, &fd), 0);
	child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		uint64_t one = 1;
		msleep(30);
		_exit(write(fd, &one, sizeof(one)) == sizeof(one) ? 0 : 1);
	}
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_ONCE), 0);
	cr_assert_eq(stats().wakeups, 1);
	int st;
	cr_assert_eq(waitpid(child, &st, 0), child);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	end_loop();
}

/* ---- child exits ---------------------------------------------------------------- */

struct exit_seen {
	int calls;
	int status;
	prism_loop_exit ex;
};

static void exit_cb(prism_loop_pid *w, int status, const prism_loop_exit *ex, void *arg)
{
	struct exit_seen *s = arg;
	s->calls++;
	s->status = status;
	s->ex = *ex;
	prism_loop_pid_close(w, count_close, NULL);
}

Test(loop, child_exit_code_is_reported)
{
	struct exit_seen s = {0};
	prism_loop_pid *w;
	pid_t child;
	new_loop(NULL);
	child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		msleep(20);
		_exit(7);
	}
	cr_assert_eq(prism_loop_watch_pid(L, child, exit_cb, &s, &w), 0);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	cr_assert_eq(s.calls, 1);
	cr_assert_eq(s.status, 0);
	cr_assert_eq(s.ex.pid, child);
	cr_assert_eq(s.ex.code, 7);
	cr_assert_eq(s.ex.signal, 0);
	cr_assert_eq(closes, 1);
	cr_assert_eq(waitpid(child, NULL, WNOHANG), -1, "the loop reaped it");
	cr_assert_eq(errno, ECHILD);
	end_loop();
}

static pid_t to_kill;

static void kill_cb(prism_loop_timer *t, void *arg)
{
	(void)t;
	(void)arg;
	kill(to_kill, SIGKILL);
}

Test(loop, killed_child_reports_the_signal)
{
	struct exit_seen s = {0};
	prism_loop_pid *w;
	prism_loop_timer *t;
	new_loop(NULL);
	to_kill = fork();
	cr_assert_geq(to_kill, 0);
	if (to_kill == 0) {
		for (;;)
			pause();
	}
	cr_assert_eq(prism_loop_watch_pid(L, to_kill, exit_cb, &s, &w), 0);
	cr_assert_eq(prism_loop_timer_create(L, kill_cb, NULL, &t), 0);
	prism_loop_timer_start(t, 20 * MS, 0);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	if (s.calls == 0)
		kill(to_kill, SIGKILL); /* do not leave it behind on failure */
	cr_assert_eq(s.calls, 1);
	cr_assert_eq(s.status, 0);
	cr_assert_eq(s.ex.signal, SIGKILL);
	cr_assert_eq(s.ex.code, 0);
	cr_assert_not(s.ex.core_dumped);
	end_loop();
}

Test(loop, pid_watch_edge_cases)
{
	struct exit_seen s = {0};
	prism_loop_pid *w;
	pid_t zombie, reaped, alive;
	new_loop(NULL);

	/* Already exited (a zombie): reported at once. */
	zombie = fork();
	cr_assert_geq(zombie, 0);
	if (zombie == 0)
		_exit(3);
	siginfo_t si;
	cr_assert_eq(waitid(P_PID, (id_t)zombie, &si, WEXITED | WNOWAIT), 0);
	cr_assert_eq(prism_loop_watch_pid(L, zombie, exit_cb, &s, &w), 0);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	cr_assert_eq(s.calls, 1);
	cr_assert_eq(s.ex.code, 3);

	/* Already reaped: no such process. */
	reaped = fork();
	cr_assert_geq(reaped, 0);
	if (reaped == 0)
		_exit(0);
	cr_assert_eq(waitpid(reaped, NULL, 0), reaped);
	cr_assert_eq(prism_loop_watch_pid(L, reaped, exit_cb, &s, &w), -ESRCH);
	cr_assert_null(w);
	cr_assert_eq(prism_loop_watch_pid(L, 0, exit_cb, &s, &w), -EINVAL);

	/* Closed before the child exits: no exit callback, the close callback runs. */
	alive = fork();
	cr_assert_geq(alive, 0);
	if (alive == 0) {
		for (;;)
			pause();
	}
	closes = 0;
	cr_assert_eq(prism_loop_watch_pid(L, alive, exit_cb, &s, &w), 0);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_NOWAIT), 1);
	prism_loop_pid_close(w, count_close, NULL);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	cr_assert_eq(closes, 1);
	cr_assert_eq(s.calls, 1);
	kill(alive, SIGKILL);
	cr_assert_eq(waitpid(alive, NULL, 0), alive);
	end_loop();
}

/* ---- run modes ------------------------------------------------------------------ */

Test(loop, nowait_never_blocks)
{
	int fds[2];
	struct reader r = {0};
	prism_loop_io *io;
	prism_loop_timer *t;
	new_loop(NULL);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_NOWAIT), 0, "empty loop");
	make_pipe(fds);
	r.fd = fds[0];
	cr_assert_eq(prism_loop_io_create(L, fds[0], reader_cb, &r, &io), 0);
	cr_assert_eq(prism_loop_io_start(io, PRISM_LOOP_READABLE), 0);
	cr_assert_eq(prism_loop_timer_create(L, log_cb, NULL, &t), 0);
	prism_loop_timer_start(t, 10000 * MS, 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_NOWAIT), 1);
	cr_assert_eq(stats().sleeps, 0);
	cr_assert_eq(stats().iterations, 4);
	cr_assert_eq(r.calls, 0);
	cr_assert_eq(nfired, 0);
	close(fds[0]);
	close(fds[1]);
	end_loop();
}

Test(loop, once_blocks_until_one_event)
{
	int fds[2];
	struct reader r = {0};
	struct writer w;
	pthread_t th;
	prism_loop_io *io;
	prism_loop_timer *t;
	new_loop(NULL);

	/* A timer: the call blocks until it is due and runs it before returning. */
	cr_assert_eq(prism_loop_timer_create(L, log_cb, (void *)5, &t), 0);
	prism_loop_timer_start(t, 50 * MS, 0);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_ONCE), 0);
	cr_assert_eq(nfired, 1);
	cr_assert_eq(stats().sleeps, 1);
	cr_assert_geq(stats().iterations, 1);

	/* An fd event from another thread: the call returns with the watch still alive. */
	make_pipe(fds);
	r.fd = fds[0];
	cr_assert_eq(prism_loop_io_create(L, fds[0], reader_cb, &r, &io), 0);
	cr_assert_eq(prism_loop_io_start(io, PRISM_LOOP_READABLE), 0);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_NOWAIT), 1); /* arm it */
	add_sleep_marker();
	w = (struct writer){.fd = fds[1], .after_sleep = true, .count = 1};
	cr_assert_eq(pthread_create(&th, NULL, writer_main, &w), 0);
	uint64_t sleeps = stats().sleeps;
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_ONCE), 1);
	pthread_join(th, NULL);
	cr_assert_eq(r.calls, 1);
	cr_assert_eq(r.total, 1);
	cr_assert_eq(stats().sleeps, sleeps + 1);
	prism_loop_io_close(io, NULL, NULL);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	close(fds[0]);
	close(fds[1]);
	end_loop();
}

Test(loop, default_returns_when_nothing_is_active)
{
	prism_loop_timer *t;
	new_loop(NULL);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	cr_assert_eq(stats().iterations, 0,
		     "the unreferenced safety timer keeps nothing alive");
	cr_assert_eq(prism_loop_timer_create(L, log_cb, NULL, &t), 0);
	prism_loop_timer_start(t, 1 * MS, 0);
	prism_loop_timer_set_ref(t, false);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	cr_assert_eq(nfired, 0, "an unreferenced timer does not keep the loop running");
	prism_loop_timer_set_ref(t, true);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	cr_assert_eq(nfired, 1);
	end_loop();
}

static int stop_after;

static void stop_cb(prism_loop_timer *t, void *arg)
{
	(void)t;
	(void)arg;
	if (++repeats == stop_after)
		prism_loop_stop(L);
}

Test(loop, stop_ends_a_default_run)
{
	prism_loop_timer *t;
	new_loop(NULL);
	cr_assert_eq(prism_loop_timer_create(L, stop_cb, NULL, &t), 0);
	prism_loop_timer_start(t, 0, 1 * MS);
	stop_after = 3;
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 1, "stopped while alive");
	cr_assert_eq(repeats, 3);
	stop_after = 6;
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 1, "runs again after a stop");
	cr_assert_eq(repeats, 6);

	/* A stop outside a run makes the next run return at once. */
	uint64_t iters = stats().iterations;
	prism_loop_stop(L);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 1);
	cr_assert_eq(stats().iterations, iters);
	prism_loop_timer_destroy(t);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	cr_assert_eq(prism_loop_run(L, 42), -EINVAL);
	end_loop();
}

static int nested_rc = 1;

static void nested_cb(prism_loop_timer *t, void *arg)
{
	(void)t;
	(void)arg;
	nested_rc = prism_loop_run(L, PRISM_LOOP_RUN_NOWAIT);
}

Test(loop, run_from_a_callback_is_refused)
{
	prism_loop_timer *t;
	new_loop(NULL);
	cr_assert_eq(prism_loop_timer_create(L, nested_cb, NULL, &t), 0);
	prism_loop_timer_start(t, 0, 0);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	cr_assert_eq(nested_rc, -EBUSY);
	end_loop();
}

/* ---- work sources and hooks ------------------------------------------------------ */

#define WORK_ITERS 5

static unsigned work_calls, hook_calls, flush_calls;
static size_t last_work;
static unsigned work_calls_at_first_sleep;
static bool slept_after_work;

static size_t busy_work(prism_loop *loop, void *arg)
{
	(void)loop;
	(void)arg;
	work_calls++;
	last_work = work_calls <= WORK_ITERS ? 3 : 0;
	return last_work;
}

static void before_sleep(prism_loop *loop, void *arg)
{
	(void)arg;
	prism_loop_stats s;
	prism_loop_stats_get(loop, &s);
	cr_assert_eq(s.sleeps, hook_calls, "the hook runs before each sleep is counted");
	if (hook_calls++ == 0)
		work_calls_at_first_sleep = work_calls;
	if (last_work)
		slept_after_work = true;
}

static void flush_hook(prism_loop *loop, void *arg)
{
	(void)loop;
	(void)arg;
	flush_calls++;
}

Test(loop, work_sources_keep_the_loop_awake_while_busy)
{
	prism_loop_work *w;
	prism_loop_hook *hs, *hf;
	prism_loop_timer *t;
	new_loop(NULL);
	cr_assert_eq(prism_loop_work_add(L, busy_work, NULL, &w), 0);
	cr_assert_eq(
		prism_loop_hook_add(L, PRISM_LOOP_HOOK_BEFORE_SLEEP, before_sleep, NULL, &hs),
		0);
	cr_assert_eq(prism_loop_hook_add(L, PRISM_LOOP_HOOK_FLUSH, flush_hook, NULL, &hf), 0);
	cr_assert_eq(prism_loop_hook_add(L, 7, flush_hook, NULL, &hf), -EINVAL);
	cr_assert_eq(prism_loop_hook_add(L, PRISM_LOOP_HOOK_FLUSH, flush_hook, NULL, &hf), 0);
	cr_assert_eq(prism_loop_timer_create(L, stop_cb, NULL, &t), 0);
	prism_loop_timer_start(t, 0, 20 * MS);
	stop_after = 4;
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 1, "the work source is alive");
	prism_loop_stats s = stats();
	cr_assert_not(slept_after_work, "slept in an iteration where work was done");
	cr_assert_gt(work_calls_at_first_sleep, WORK_ITERS, "no sleep while work was reported");
	cr_assert_geq(s.sleeps, 1, "idle iterations sleep until the timer");
	cr_assert_eq(hook_calls, s.sleeps);
	cr_assert_eq(work_calls, s.iterations);
	cr_assert_eq(flush_calls, 2 * s.iterations);
	prism_loop_work_remove(w);
	prism_loop_work_remove(NULL);
	prism_loop_hook_remove(hs);
	prism_loop_hook_remove(NULL);
	prism_loop_timer_destroy(t);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0, "hooks keep nothing alive");
	end_loop();
}

static prism_loop_work *wa, *wb, *wc;
static unsigned a_runs, b_runs, c_runs;

static size_t work_a(prism_loop *loop, void *arg)
{
	(void)loop;
	(void)arg;
	if (++a_runs == 2) {
		prism_loop_work_remove(wb); /* the next one in this very walk */
		prism_loop_work_remove(wa); /* itself */
	}
	return 1;
}

static size_t work_b(prism_loop *loop, void *arg)
{
	(void)loop;
	(void)arg;
	b_runs++;
	return 1;
}

static size_t work_c(prism_loop *loop, void *arg)
{
	(void)loop;
	(void)arg;
	if (++c_runs == 4)
		prism_loop_work_remove(wc);
	return 1;
}

Test(loop, work_sources_can_remove_themselves_and_others)
{
	new_loop(NULL);
	cr_assert_eq(prism_loop_work_add(L, work_a, NULL, &wa), 0);
	cr_assert_eq(prism_loop_work_add(L, work_b, NULL, &wb), 0);
	cr_assert_eq(prism_loop_work_add(L, work_c, NULL, &wc), 0);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_DEFAULT), 0);
	cr_assert_eq(a_runs, 2);
	cr_assert_eq(b_runs, 1, "removed before its turn in the second iteration");
	cr_assert_eq(c_runs, 4);
	cr_assert_eq(stats().sleeps, 0);
	end_loop();
}

/* ---- destroy and options ----------------------------------------------------------- */

static size_t idle_work(prism_loop *loop, void *arg)
{
	(void)loop;
	(void)arg;
	return 0;
}

static void never_exit(prism_loop_pid *w, int status, const prism_loop_exit *ex, void *arg)
{
	(void)w;
	(void)status;
	(void)ex;
	(void)arg;
	cr_assert_fail("no exit callback at destroy");
}

Test(loop, destroy_frees_open_handles_and_runs_pending_close_callbacks)
{
	int fds[2];
	struct reader r = {0};
	prism_loop_io *open_io, *closing_io;
	prism_loop_pid *pw;
	prism_loop_timer *t1, *t2;
	prism_loop_work *w;
	prism_loop_hook *h;
	pid_t child;
	new_loop(NULL);
	make_pipe(fds);
	r.fd = fds[0];
	cr_assert_eq(prism_loop_io_create(L, fds[0], reader_cb, &r, &open_io), 0);
	cr_assert_eq(prism_loop_io_start(open_io, PRISM_LOOP_READABLE), 0);
	cr_assert_eq(prism_loop_io_create(L, fds[0], reader_cb, &r, &closing_io), 0);
	cr_assert_eq(prism_loop_io_start(closing_io, PRISM_LOOP_READABLE), 0);
	child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		for (;;)
			pause();
	}
	cr_assert_eq(prism_loop_watch_pid(L, child, never_exit, NULL, &pw), 0);
	cr_assert_eq(prism_loop_timer_create(L, log_cb, NULL, &t1), 0);
	cr_assert_eq(prism_loop_timer_create(L, log_cb, NULL, &t2), 0);
	prism_loop_timer_start(t1, 1000 * MS, 0);
	cr_assert_eq(prism_loop_work_add(L, idle_work, NULL, &w), 0);
	cr_assert_eq(prism_loop_hook_add(L, PRISM_LOOP_HOOK_FLUSH, flush_hook, NULL, &h), 0);
	cr_assert_eq(prism_loop_run(L, PRISM_LOOP_RUN_NOWAIT),
		     1); /* polls armed in the kernel */
	prism_loop_io_close(closing_io, count_close, NULL);
	cr_assert_eq(prism_loop_wake(L), 0);
	end_loop(); /* ASan checks that all of it is freed */
	cr_assert_eq(closes, 1);
	cr_assert_eq(nfired, 0);
	kill(child, SIGKILL);
	cr_assert_eq(waitpid(child, NULL, 0), child);
	close(fds[0]);
	close(fds[1]);
	prism_loop_destroy(NULL);
}

Test(loop, bad_options_are_refused)
{
	prism_loop *loop = (prism_loop *)1;
	prism_loop_opts o = {.entries = PRISM_LOOP_MAX_ENTRIES + 1};
	cr_assert_eq(prism_loop_create(&o, &loop), -EINVAL);
	cr_assert_null(loop);
	o = (prism_loop_opts){.flags = 0x80};
	cr_assert_eq(prism_loop_create(&o, &loop), -EINVAL);
	cr_assert_eq(prism_loop_create(NULL, NULL), -EINVAL);
	o = (prism_loop_opts){.entries = 8, .max_timers = 1, .max_completions = 1};
	cr_assert_eq(prism_loop_create(&o, &loop), 0);
	prism_loop_stats s;
	prism_loop_stats_get(loop, &s);
	cr_assert(s.setup_flags & (IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN) ||
			  s.setup_flags == 0,
		  "one of the flag sets, or the plain fallback");
	cr_log_info("ring setup flags: %#x", s.setup_flags);
	prism_loop_destroy(loop);
}

/* ---- fault injection ------------------------------------------------------------- */

struct fi_state {
	bool timer_ran;
	bool io_ran;
};

static void fi_timer(prism_loop_timer *t, void *arg)
{
	(void)t;
	((struct fi_state *)arg)->timer_ran = true;
}

static void fi_io(prism_loop_io *io, int status, unsigned events, void *arg)
{
	(void)status;
	(void)events;
	((struct fi_state *)arg)->io_ran = true;
	prism_loop_io_stop(io);
}

static void fi_exit(prism_loop_pid *w, int status, const prism_loop_exit *ex, void *arg)
{
	(void)w;
	(void)status; /* -ECHILD: fi_attempt reaps the child itself */
	(void)ex;
	(void)arg;
}

/* One attempt at the whole sequence: create a loop, a timer, an fd watch, a pid watch,
 * a work source, a wake, and run it.  Returns the first error. */
static int fi_attempt(int rfd, struct fi_state *st)
{
	prism_loop *loop;
	prism_loop_timer *t;
	prism_loop_io *io;
	prism_loop_pid *pw;
	prism_loop_work *w;
	pid_t child;
	int rc;

	rc = prism_loop_create(NULL, &loop);
	if (rc)
		goto fail_loop;
	rc = prism_loop_timer_create(loop, fi_timer, st, &t);
	if (rc)
		goto fail_timer;
	prism_loop_timer_start(t, 0, 0);
	rc = prism_loop_io_create(loop, rfd, fi_io, st, &io);
	if (rc)
		goto fail_io;
	rc = prism_loop_io_start(io, PRISM_LOOP_READABLE);
	if (rc)
		goto fail_start;
	child = fork();
	if (child == 0)
		_exit(0);
	rc = prism_loop_watch_pid(loop, child, fi_exit, NULL, &pw);
	waitpid(child, NULL, 0); /* reaped here: the watch only has to be created */
	if (rc)
		goto fail_pid;
	rc = prism_loop_work_add(loop, idle_work, NULL, &w);
	if (rc)
		goto fail_work;
	rc = prism_loop_wake(loop);
	if (rc)
		goto fail_wake;
	for (int i = 0; i < 100 && !(st->timer_ran && st->io_ran); i++) {
		rc = prism_loop_run(loop, PRISM_LOOP_RUN_NOWAIT);
		if (rc < 0)
			break;
		rc = 0;
	}

fail_wake:
	prism_loop_work_remove(w);
fail_work:
	prism_loop_pid_close(pw, NULL, NULL);
fail_pid:
fail_start:
	prism_loop_io_close(io, NULL, NULL);
fail_io:
	prism_loop_timer_destroy(t);
fail_timer:
	prism_loop_destroy(loop);
fail_loop:
	return rc;
}

Test(loop, fault_injection_fails_cleanly_at_every_point)
{
	int fds[2];
	int n, rc;
	make_pipe(fds);
	cr_assert_eq(write(fds[1], "x", 1), 1);
	for (n = 1; n < 1000; n++) {
		struct fi_state st = {0};
		prism_fault_arm(n);
		rc = fi_attempt(fds[0], &st);
		bool hit = prism_fault_fired();
		prism_fault_arm(0);
		if (hit) {
			cr_assert_lt(rc, 0, "point %d failed but the sequence returned %d", n,
				     rc);
			cr_assert(rc == -ENOMEM, "point %d: %s", n, prism_strerror(rc));
			continue;
		}
		cr_assert_eq(rc, 0, "no fault fired at n=%d, yet: %s", n, prism_strerror(rc));
		cr_assert(st.timer_ran && st.io_ran, "the clean run works");
		break;
	}
	cr_assert_gt(n, 5, "the sequence has several fault points");
	cr_log_info("fault points in the sequence: %d", n - 1);
	close(fds[0]);
	close(fds[1]);
}
