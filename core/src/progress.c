/* progress.c — work that goes on while the program is away from prism.
 *
 * A process's runtime moves only inside its prism calls: lease grants, channels to
 * actors and completions wait in its rings until it polls them.  A program that submits
 * tasks and then computes for a second without calling prism would leave tasks queued
 * for a lease (or waiting for a ref argument) idle all that time.  So a progress thread
 * takes over when the program has been away for PROGRESS_AWAY_NS while such work waits:
 * it polls the rings, pushes queued tasks, launches the ones whose arguments became
 * ready, and sleeps on the process's doorbell in between, until nothing waits any more or
 * the program calls prism again.
 *
 * Ownership.  One word, `own`, says who may touch the runtime: nobody, a caller (any
 * prism call, or a worker's task loop), or the progress thread.  A call takes it with one
 * compare-and-swap (rt_enter) and gives it back with a store (rt_leave); nested calls (a
 * prism call made inside another, or a task's calls inside a worker's loop) count depth
 * on their thread.  A caller that finds the progress thread in charge raises `want`
 * and rings the doorbell; the progress thread checks `want` after it announced its sleep
 * (prism_ring_wait_any_flag), so it is never missed, and lets go at once.
 *
 * Cost on the hot path: a compare-and-swap in, a store out, and on the way out a look at
 * whether anything waits (a few loads); no system call.  The thread is started the first
 * time something waits as a call returns, so programs that never leave work waiting
 * never have one.  While work waits it checks every PROGRESS_AWAY_NS whether the program
 * is away; otherwise it sleeps without a timeout.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "rt.h"

/* How long the program must have been away from prism, with work waiting, before the
 * progress thread acts: long enough that a program calling prism in a loop (a window of
 * async submits) never meets it, short next to the tasks it unblocks.  The thread checks
 * this often while work waits: 500 wake-ups a second at most, a few microseconds each. */
#define PROGRESS_AWAY_NS (2 * PRISM_NS_PER_MS)
/* The longest it sleeps on the doorbell before it looks again (a grant always rings it;
 * this only bounds a lost wake-up). */
#define PROGRESS_SLEEP_NS (100 * PRISM_NS_PER_MS)

enum { OWN_FREE = 0, OWN_CALLER = 1, OWN_PROGRESS = 2 };

static struct {
	_Atomic uint32_t own;
	uint32_t want;            /* a caller waits for the thread to let go (atomic access) */
	_Atomic uint32_t word;    /* the thread's own futex: bumped to wake it */
	_Atomic uint32_t armed;   /* work waited when the last call returned */
	_Atomic uint32_t idle;    /* the thread sleeps without a timeout */
	_Atomic uint64_t left_at; /* when the last call returned (prism_cycles) */
	_Atomic bool stop;
	bool started;
	pthread_t thread;
} pg;

static __thread unsigned depth __attribute__((tls_model("initial-exec")));

static long futex(_Atomic uint32_t *w, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, (uint32_t *)w, op, val, ts, NULL, 0);
}

static void sleep_word(uint32_t seq, uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / PRISM_NS_PER_SEC),
			      .tv_nsec = (long)(ns % PRISM_NS_PER_SEC)};
	futex(&pg.word, FUTEX_WAIT_PRIVATE, seq, ns ? &ts : NULL);
}

static void wake_thread(void)
{
	atomic_fetch_add(&pg.word, 1);
	futex(&pg.word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
}

/* Whether anything waits that only this process can move on. */
static bool needs_progress(void)
{
	return rt.up && (rt_ready_pending() || rt_tasks_waiting() || rt_any_queued() ||
			 rt_actor_calls_queued());
}

/* The program is away and work waits: poll until nothing does, or a call comes. */
static void drive(void)
{
	for (;;) {
		rt_poll_once();
		rt_leases_maintain();
		if (!needs_progress()) {
			atomic_store(&pg.armed, 0);
			return;
		}
		if (__atomic_load_n(&pg.want, __ATOMIC_ACQUIRE) || atomic_load(&pg.stop))
			return;
		/* The down ring and our own leases' done rings: in a worker, rt.waitset also
		 * holds the rings it serves, which are its task loop's, not ours. */
		prism_ring_wait_any_flag(rt.waitset, 1 + rt.nactive, 0,
					 (int64_t)PROGRESS_SLEEP_NS, &pg.want);
	}
}

static void *progress_main(void *arg)
{
	(void)arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	while (!atomic_load(&pg.stop)) {
		uint32_t seq = atomic_load(&pg.word);
		if (!atomic_load(&pg.armed)) {
			/* Announce the sleep, then look again: rt_leave() arms, then reads
			 * idle (both sequentially consistent), so one of us sees the other. */
			atomic_store(&pg.idle, 1);
			if (!atomic_load(&pg.armed) && !atomic_load(&pg.stop))
				sleep_word(seq, 0);
			atomic_store(&pg.idle, 0);
			continue;
		}
		uint64_t now = prism_cycles(), left = atomic_load(&pg.left_at);
		if (atomic_load(&pg.own) != OWN_FREE ||
		    now - left < prism_ns_to_cycles(PROGRESS_AWAY_NS)) {
			sleep_word(seq, PROGRESS_AWAY_NS);
			continue;
		}
		uint32_t free_ = OWN_FREE;
		if (!atomic_compare_exchange_strong(&pg.own, &free_, OWN_PROGRESS))
			continue;
		depth = 1; /* prism calls the runtime makes inside are nested ones */
		drive();
		depth = 0;
		atomic_store_explicit(&pg.own, OWN_FREE, memory_order_release);
	}
	return NULL;
}

static void enter_slow(void)
{
	for (;;) {
		uint32_t free_ = OWN_FREE;
		if (atomic_compare_exchange_weak(&pg.own, &free_, OWN_CALLER))
			break;
		/* The progress thread has it (or, until calls from several threads are
		 * supported, another thread): ask it to let go, and wake it if it sleeps. */
		__atomic_store_n(&pg.want, 1, __ATOMIC_SEQ_CST);
		if (rt.down)
			prism_ring_wake(rt.down);
		sched_yield();
	}
	__atomic_store_n(&pg.want, 0, __ATOMIC_RELAXED);
}

void rt_enter(void)
{
	if (depth++)
		return;
	uint32_t free_ = OWN_FREE;
	if (__builtin_expect(atomic_compare_exchange_strong(&pg.own, &free_, OWN_CALLER), 1))
		return;
	enter_slow();
}

static void start_thread(void)
{
	pg.started = true;
	int rc = pthread_create(&pg.thread, NULL, progress_main, NULL);
	if (rc) {
		pg.started = false;
		PRISM_LOG_W("progress",
			    "cannot start the progress thread (%d): queued work moves only "
			    "inside prism calls",
			    rc);
	}
}

void rt_leave(void)
{
	if (--depth)
		return;
	if (needs_progress()) {
		atomic_store_explicit(&pg.left_at, prism_cycles(), memory_order_relaxed);
		if (!atomic_load_explicit(&pg.armed, memory_order_relaxed))
			atomic_store(&pg.armed, 1);
		if (!pg.started)
			start_thread();
		else if (atomic_load(&pg.idle))
			wake_thread();
	}
	atomic_store_explicit(&pg.own, OWN_FREE, memory_order_release);
}

void rt_progress_stop(void)
{
	if (!pg.started)
		return;
	atomic_store(&pg.stop, true);
	__atomic_store_n(&pg.want, 1, __ATOMIC_SEQ_CST);
	if (rt.down)
		prism_ring_wake(rt.down);
	wake_thread();
	pthread_join(pg.thread, NULL);
	pg.started = false;
	atomic_store(&pg.stop, false);
	atomic_store(&pg.armed, 0);
	__atomic_store_n(&pg.want, 0, __ATOMIC_RELAXED);
}
