/* progress.c — work that goes on while the program is away from prism.
 *
 * A process's runtime moves only inside its prism calls: lease grants, channels to
 * actors and completions wait in its rings until it polls them.  A program that submits
 * tasks and then computes for a second without calling prism would leave tasks queued
 * for a lease (or waiting for a ref argument) idle all that time.  So a progress thread
 * takes over when the program has made no call for PROGRESS_AWAY_NS (one to two periods)
 * while such work waits:
 * it polls the rings, pushes queued tasks, launches the ones whose arguments became
 * ready, and sleeps on the process's doorbell in between, until nothing waits any more or
 * the program calls prism again.
 *
 * Ownership.  Two words say who may touch the runtime: `inside`, set by a caller for the
 * length of each prism call (or by a worker's task loop, which leaves it around the
 * user's code), and `taken`, set by the progress thread while it drives.  Nested calls
 * (a prism call made inside another) count depth on their thread.  The caller's side is
 * the hot path, so it is the cheap side of an asymmetric Dekker handshake: a plain store
 * of `inside`, a compiler barrier and a load of `taken`.  The progress thread, about to
 * take over, stores `taken` and then calls membarrier(PRIVATE_EXPEDITED), which runs a
 * full memory barrier on every CPU running a thread of this process; then it reads
 * `inside`.  So either it sees the caller inside and backs off, or the caller sees
 * `taken` and waits (the liburcu "membarrier" flavour).  Where membarrier is missing the
 * caller's store is sequentially consistent instead.  A caller that finds the progress
 * thread in charge raises `want` and rings the doorbell; the thread checks `want` after
 * it announced its sleep (prism_ring_wait_any_flag), so it is never missed, and lets go.
 * ThreadSanitizer does not know membarrier: run it with PRISM_NO_MEMBARRIER=1.
 *
 * Cost on the hot path: two stores and a load per call, and on the way out a look at
 * whether anything waits (a few loads); no atomic read-modify-write, no system call.
 * The thread is started the first time something waits as a call returns, so programs
 * that never leave work waiting never have one.  While work waits it checks every
 * PROGRESS_AWAY_NS whether the program is away; otherwise it sleeps without a timeout.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <stdlib.h>
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

static struct {
	_Atomic uint32_t inside; /* a caller is in the runtime */
	_Atomic uint32_t taken;  /* the progress thread drives (or is about to) */
	bool asym;               /* membarrier works (set when the thread starts) */
	bool fence;              /* callers must fence: a thread runs, without membarrier */
	uint32_t want;           /* a caller waits for the thread to let go (atomic access) */
	_Atomic uint32_t word;   /* the thread's own futex: bumped to wake it */
	_Atomic uint32_t armed;  /* work waited when the last call returned */
	_Atomic uint32_t idle;   /* the thread sleeps without a timeout */
	_Atomic uint32_t calls;  /* calls returned with work waiting: a change means "busy" */
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

/* The program is away and work waits: poll until nothing does, or a call comes. */
static void drive(void)
{
	for (;;) {
		rt_poll_once();
		rt_leases_maintain();
		if (!rt_needs_progress()) {
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
	uint32_t seen = atomic_load(&pg.calls) - 1; /* the first look waits a period */
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
		/* Away: no call returned during a whole period, and none is running.  A
		 * count rather than a clock, so that a call pays no timer read. */
		uint32_t calls = atomic_load_explicit(&pg.calls, memory_order_relaxed);
		if (atomic_load(&pg.inside) || calls != seen) {
			seen = calls;
			sleep_word(seq, PROGRESS_AWAY_NS);
			continue;
		}
		atomic_store(&pg.taken, 1);
		if (pg.asym)
			syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
		if (atomic_load(&pg.inside)) {
			atomic_store(&pg.taken, 0); /* a call came in: it goes first */
			continue;
		}
		depth = 1; /* prism calls the runtime makes inside are nested ones */
		drive();
		depth = 0;
		atomic_store_explicit(&pg.taken, 0, memory_order_release);
	}
	return NULL;
}

static void enter_slow(void)
{
	do {
		/* The progress thread drives: step out, ask it to let go (waking it if it
		 * sleeps on the doorbell), wait, and step in again. */
		atomic_store(&pg.inside, 0);
		__atomic_store_n(&pg.want, 1, __ATOMIC_SEQ_CST);
		if (rt.down)
			prism_ring_wake(rt.down);
		while (atomic_load_explicit(&pg.taken, memory_order_acquire))
			sched_yield();
		atomic_store(&pg.inside, 1);
	} while (atomic_load_explicit(&pg.taken, memory_order_acquire));
	__atomic_store_n(&pg.want, 0, __ATOMIC_RELAXED);
}

void rt_enter(void)
{
	if (depth++)
		return;
	if (!pg.fence) {
		/* No thread yet, or membarrier orders the CPU for it. */
		atomic_store_explicit(&pg.inside, 1, memory_order_relaxed);
		atomic_signal_fence(memory_order_seq_cst);
	} else {
		atomic_store(&pg.inside, 1);
	}
	if (__builtin_expect(atomic_load_explicit(&pg.taken, memory_order_acquire), 0))
		enter_slow();
}

static void start_thread(void)
{
	pg.started = true;
	/* Before the thread exists, so every later call sees asym as it will stay. */
	const char *off = getenv("PRISM_NO_MEMBARRIER");
	pg.asym =
		!(off && *off && *off != '0') &&
		syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
	pg.fence = !pg.asym;
	int rc = pthread_create(&pg.thread, NULL, progress_main, NULL);
	if (rc) {
		pg.started = false;
		pg.fence = false;
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
	if (rt_needs_progress()) {
		atomic_store_explicit(&pg.calls,
				      atomic_load_explicit(&pg.calls, memory_order_relaxed) + 1,
				      memory_order_relaxed);
		if (!atomic_load_explicit(&pg.armed, memory_order_relaxed))
			atomic_store(&pg.armed, 1);
		if (!pg.started)
			start_thread();
		else if (atomic_load(&pg.idle))
			wake_thread();
	}
	atomic_store_explicit(&pg.inside, 0, memory_order_release);
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
	pg.fence = false;
	atomic_store(&pg.stop, false);
	atomic_store(&pg.armed, 0);
	__atomic_store_n(&pg.want, 0, __ATOMIC_RELAXED);
}
