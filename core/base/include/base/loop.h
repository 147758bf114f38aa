/* base/loop.h — the io_uring event loop that every prism daemon runs.
 *
 * One loop multiplexes timers (a min-heap), fd readiness (multishot IORING_OP_POLL_ADD),
 * child exits (pidfds), cross-thread wakes (an eventfd), and "work" sources that drain
 * in-memory queues such as client rings.  It is modelled on libuv's uv_run(): one thread
 * calls prism_loop_run(), which runs iterations made of the phases below.
 *
 * Phases.  One iteration runs these steps in this order; run_iteration() in loop.c is
 * written as the same numbered steps.
 *
 *   1. Clock: update the cached time that prism_loop_now() returns.
 *   2. Timers: run due timers in deadline order, FIFO among equal deadlines, at most
 *      opts.max_timers of them; the rest run next iteration.  A timer started or re-armed
 *      during this phase (a repeat, or a callback starting any timer, itself included)
 *      never runs in the same phase, even with a zero timeout.
 *   3. Work: call every work source once.  Each returns how many items it handled; if
 *      any handled one, this iteration will not sleep.  Bounding the batch is the
 *      source's job: a source that drains an unbounded queue starves every other phase.
 *   4. Flush: call every PRISM_LOOP_HOOK_FLUSH hook (send out what phases 2-3 batched).
 *   5. I/O: hand queued poll arms and removes to io_uring in one io_uring_enter() and
 *      reap at most opts.max_completions completions without waiting, calling their
 *      callbacks (fd readiness, child exit; wakes have none).
 *   6. Sleep, only when the iteration had nothing to do: no timer ran or is due, no work
 *      source reported work, no completion was reaped, no close callback is pending, the
 *      mode is not RUN_NOWAIT and prism_loop_stop() was not called.  Then: run the
 *      PRISM_LOOP_HOOK_BEFORE_SLEEP hooks, block in io_uring until a completion arrives
 *      or the earliest timer is due (no timer: until an event or a wake), update the
 *      clock, reap as in 5, and in RUN_ONCE also run due timers as in 2, so that a call
 *      that blocked has made progress when it returns.
 *   7. Close: call the close callbacks of watches whose kernel requests have all
 *      completed, then free those watches.
 *
 * Run modes.  RUN_DEFAULT iterates while the loop is alive and stop was not asked for;
 * alive means an active referenced timer, an active fd or pid watch, a work source, or a
 * watch still closing (hooks and the wake never keep the loop alive).  With nothing
 * alive it returns at once.  RUN_ONCE runs one iteration and may block in phase 6; it
 * blocks even when nothing is alive, until the next timer or a prism_loop_wake().
 * RUN_NOWAIT runs one iteration and never blocks.  prism_loop_run() returns 1 when the
 * loop is still alive, 0 when it is not, or a negative code; prism_loop_stop() makes the
 * current (or, if none runs, the next) prism_loop_run() return after its iteration.
 *
 * Ownership.  The loop owns every handle it creates: timers, fd watches, pid watches,
 * work sources and hooks are allocated by their create/add function and freed by the
 * loop.  Timers, work sources and hooks have no kernel state and are freed at once by
 * their destroy/remove function, which is safe from any callback, their own included.
 * fd and pid watches have poll requests inside the kernel that name them, so closing is
 * asynchronous, like uv_close(): prism_loop_io_close() and prism_loop_pid_close() stop
 * all callbacks at once, then the loop frees the watch in phase 7 of an iteration after
 * the kernel's last completion for it, and calls the close callback there, given only
 * its argument.  The pointer must not be used after the close call.  The fd given to
 * prism_loop_io_create() is borrowed: the loop never closes it, and the caller may close
 * it as soon as prism_loop_io_close() returns (an in-flight request holds its own
 * reference to the file, and its removal goes by request, not by fd).  A pid watch's
 * pidfd is the loop's own.  Callback arguments are borrowed and never freed by the loop.
 *
 * Destroy.  prism_loop_destroy() tears down the ring first, so the kernel no longer names
 * any watch, then frees every handle still open.  A close callback that was asked for
 * and not yet called runs during destroy; no other callback does, and such a close
 * callback must not call into the loop.  Destroy must not be called from a callback.
 *
 * Thread safety.  A loop belongs to the thread that created it: every function must be
 * called on that thread, from outside prism_loop_run() or from its callbacks, except
 * prism_loop_wake(), which any thread may call at any time between create and destroy.
 * (The ring is created with IORING_SETUP_SINGLE_ISSUER where the kernel has it, and then
 * the kernel itself refuses submissions from other threads.)  Another process wakes the
 * loop by writing an 8-byte non-zero integer to the eventfd from prism_loop_wake_fd(),
 * inherited across fork() or passed with SCM_RIGHTS; prism_loop_wake() on a loop copied
 * into a child by fork() does not work.  A forked child must never use the loop.
 *
 * Errors.  Functions return 0 or a negative code (-errno or PRISM_E_*); results come back
 * through out-parameters, which are left NULL on failure.  Resource acquisitions (memory,
 * io_uring setup, eventfd, pidfd_open) are prism_fault_point()s.
 */
#ifndef PRISM_BASE_LOOP_H
#define PRISM_BASE_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct prism_loop prism_loop;
typedef struct prism_loop_timer prism_loop_timer;
typedef struct prism_loop_io prism_loop_io;
typedef struct prism_loop_pid prism_loop_pid;
typedef struct prism_loop_work prism_loop_work;
typedef struct prism_loop_hook prism_loop_hook;

/* 256 SQEs: a poll arm or remove per watch change per iteration, far more than a daemon
 * with a few hundred clients changes at once; a full SQ is flushed and refilled. */
#define PRISM_LOOP_DEFAULT_ENTRIES 256u
/* 32768: the kernel's IORING_MAX_ENTRIES. */
#define PRISM_LOOP_MAX_ENTRIES 32768u
/* 64 timer callbacks per iteration: enough for every housekeeping timer of a node at
 * once, few enough (each is ~100 ns of bookkeeping plus its callback) that a burst of
 * expiries delays ring draining by microseconds, not milliseconds. */
#define PRISM_LOOP_DEFAULT_MAX_TIMERS 64u
/* 128 completions per reap: half the default CQ (512 entries), so one reap never holds
 * the loop long and the CQ keeps room while callbacks run. */
#define PRISM_LOOP_DEFAULT_MAX_COMPLETIONS 128u

/* opts.flags: create a plain ring, without SINGLE_ISSUER/DEFER_TASKRUN/COOP_TASKRUN: the
 * path taken on kernels that refuse those flags, forced so that tests cover it. */
#define PRISM_LOOP_F_PLAIN_RING 0x1u

/* Options for prism_loop_create(); zero-initialise and set what you need.  Zero fields
 * take the defaults above. */
typedef struct prism_loop_opts {
	unsigned entries;         /* SQ size, rounded up to a power of two; <= MAX_ENTRIES */
	unsigned max_timers;      /* timer callbacks per phase 2 */
	unsigned max_completions; /* completions per reap in phases 5 and 6 */
	unsigned flags;           /* PRISM_LOOP_F_* */
} prism_loop_opts;

enum prism_loop_run_mode {
	PRISM_LOOP_RUN_DEFAULT = 0,
	PRISM_LOOP_RUN_ONCE = 1,
	PRISM_LOOP_RUN_NOWAIT = 2,
};

/* Counters for tests and diagnostics; a plain copy the caller owns. */
typedef struct prism_loop_stats {
	uint64_t iterations;  /* iterations started */
	uint64_t sleeps;      /* times phase 6 blocked in io_uring */
	uint64_t timers_run;  /* timer callbacks called */
	uint64_t completions; /* io_uring completions reaped */
	uint64_t wakeups;     /* wake completions seen: coalesced wakes count once */
	uint64_t rearms;      /* multishot polls re-armed after the kernel ended them */
	uint32_t setup_flags; /* IORING_SETUP_* flags the ring was created with */
} prism_loop_stats;

/* ---- loop ------------------------------------------------------------------------ */

/* Create a loop; opts may be NULL for the defaults.  -EINVAL for bad options; setup
 * errors of io_uring and eventfd as -errno.  The caller owns *out. */
int prism_loop_create(const prism_loop_opts *opts, prism_loop **out);
/* Close and free everything (see "Destroy" above).  NULL-safe. */
void prism_loop_destroy(prism_loop *loop);

/* Run in the given mode (see "Run modes").  1: still alive, 0: not alive, negative: an
 * io_uring error, or -EBUSY when called from inside a callback of the same loop. */
int prism_loop_run(prism_loop *loop, enum prism_loop_run_mode mode);
/* Make prism_loop_run() return after the current iteration, without sleeping. */
void prism_loop_stop(prism_loop *loop);

/* Wake the loop out of phase 6, or make its next phase 6 return at once.  Safe from any
 * thread; wakes issued before the loop has seen the first coalesce into one.  0, or
 * -errno when the eventfd write fails. */
int prism_loop_wake(prism_loop *loop);
/* The loop's wake eventfd, for other processes (see "Thread safety").  Borrowed: owned
 * and closed by the loop. */
int prism_loop_wake_fd(const prism_loop *loop, int *fd);

/* Cached monotonic time (prism_now_ns() clock) in ns, as of phase 1 or the last wake. */
uint64_t prism_loop_now(const prism_loop *loop);
/* Refresh the cached time now, e.g. in a long callback before starting a timer. */
void prism_loop_update_time(prism_loop *loop);

/* Copy the counters into *out. */
void prism_loop_stats_get(const prism_loop *loop, prism_loop_stats *out);

/* ---- timers ------------------------------------------------------------------------ */

typedef void (*prism_loop_timer_cb)(prism_loop_timer *timer, void *arg);

/* A stopped timer that will call cb(timer, arg).  -ENOMEM. */
int prism_loop_timer_create(prism_loop *loop, prism_loop_timer_cb cb, void *arg,
			    prism_loop_timer **out);
/* Stop and free.  NULL-safe; allowed in any callback, the timer's own included. */
void prism_loop_timer_destroy(prism_loop_timer *timer);
/* (Re)start: due timeout_ns after prism_loop_now(), then every repeat_ns (0: one-shot).
 * Restarting an active timer moves it; it goes behind timers of equal deadline. */
void prism_loop_timer_start(prism_loop_timer *timer, uint64_t timeout_ns, uint64_t repeat_ns);
/* Stop; a stopped timer stays allocated and can be started again. */
void prism_loop_timer_stop(prism_loop_timer *timer);
/* Like uv_timer_again(): a repeating timer restarts with its repeat as the timeout; a
 * one-shot timer is left as it is.  -EINVAL if the timer was never started. */
int prism_loop_timer_again(prism_loop_timer *timer);
/* Change the repeat interval; takes effect at the next expiry or again(). */
void prism_loop_timer_set_repeat(prism_loop_timer *timer, uint64_t repeat_ns);
bool prism_loop_timer_active(const prism_loop_timer *timer);
/* An unreferenced timer still runs but does not keep RUN_DEFAULT alive (uv_unref()).
 * Timers are referenced when created. */
void prism_loop_timer_set_ref(prism_loop_timer *timer, bool ref);

/* ---- fd readiness ------------------------------------------------------------------ */

/* Events: what prism_loop_io_start() asks for, and what the callback receives.  HUP and
 * ERROR are always reported.  Readiness is edge-like (a multishot poll reports wake-ups,
 * not levels): the callback must drain the fd (read until EAGAIN), or it may not be
 * called again for data already there.  After HUP or ERROR, stop or close the watch, or
 * the callback keeps being called. */
#define PRISM_LOOP_READABLE 0x1u
#define PRISM_LOOP_WRITABLE 0x2u
#define PRISM_LOOP_HUP 0x4u
#define PRISM_LOOP_ERROR 0x8u

/* status 0: events holds what is ready.  status < 0: the kernel refused the poll (-EBADF
 * for a closed fd, ...); the watch has been stopped and events is 0. */
typedef void (*prism_loop_io_cb)(prism_loop_io *io, int status, unsigned events, void *arg);
/* Called from phase 7 (or from prism_loop_destroy()) once the watch is freed. */
typedef void (*prism_loop_close_cb)(void *arg);

/* A stopped watch of fd (borrowed; see "Ownership").  -EBADF for fd < 0, -ENOMEM. */
int prism_loop_io_create(prism_loop *loop, int fd, prism_loop_io_cb cb, void *arg,
			 prism_loop_io **out);
/* Watch for events (READABLE and/or WRITABLE), replacing the previous set; takes effect
 * in the next phase 5.  -EINVAL for an empty or unknown set; PRISM_E_CLOSED when called
 * on a closed watch that the loop has not freed yet (a bug, caught where it can be). */
int prism_loop_io_start(prism_loop_io *io, unsigned events);
/* Stop: the callback is not called again until the next start.  Idempotent. */
void prism_loop_io_stop(prism_loop_io *io);
/* Stop for good and free asynchronously; cb (may be NULL) runs once it is freed.  The
 * pointer is dead when this returns.  Allowed in any callback, the watch's own included. */
void prism_loop_io_close(prism_loop_io *io, prism_loop_close_cb cb, void *arg);

/* ---- child exits ------------------------------------------------------------------- */

/* How a child ended.  Exactly one of code and signal is meaningful. */
typedef struct prism_loop_exit {
	pid_t pid;
	int code;         /* exit status when it exited, else 0 */
	int signal;       /* terminating signal when it was killed, else 0 */
	bool core_dumped; /* it was killed and dumped core */
} prism_loop_exit;

/* status 0: *exit says how the child ended; it has been reaped.  status < 0: it could not
 * be reaped (-ECHILD: not our child, or SIGCHLD is SIG_IGN), and *exit holds only pid.
 * Called at most once; the watch is inactive afterwards but must still be closed. */
typedef void (*prism_loop_pid_cb)(prism_loop_pid *watch, int status,
				  const prism_loop_exit *exit, void *arg);

/* Watch child pid (of this process: waitid() reaps it) through a pidfd.  -ESRCH when it
 * does not exist (already reaped), -ENOMEM, pidfd_open's -errno. */
int prism_loop_watch_pid(prism_loop *loop, pid_t pid, prism_loop_pid_cb cb, void *arg,
			 prism_loop_pid **out);
/* Like prism_loop_io_close(); the child is not reaped if it had not exited yet. */
void prism_loop_pid_close(prism_loop_pid *watch, prism_loop_close_cb cb, void *arg);

/* ---- work sources and hooks -------------------------------------------------------- */

/* Phase 3: handle a bounded batch and return how many items were handled (0 = idle). */
typedef size_t (*prism_loop_work_cb)(prism_loop *loop, void *arg);
typedef void (*prism_loop_hook_cb)(prism_loop *loop, void *arg);

enum prism_loop_hook_kind {
	PRISM_LOOP_HOOK_FLUSH = 0,        /* phase 4, every iteration */
	PRISM_LOOP_HOOK_BEFORE_SLEEP = 1, /* phase 6, right before the loop blocks */
};

/* Add a work source, called in phase 3 after those added before it.  It keeps
 * RUN_DEFAULT alive until removed.  -ENOMEM. */
int prism_loop_work_add(prism_loop *loop, prism_loop_work_cb cb, void *arg,
			prism_loop_work **out);
/* Remove and free.  NULL-safe; allowed in any callback, its own included. */
void prism_loop_work_remove(prism_loop_work *work);

/* Add a hook of the given kind, called after hooks of that kind added before it.
 * -EINVAL for an unknown kind, -ENOMEM. */
int prism_loop_hook_add(prism_loop *loop, enum prism_loop_hook_kind kind, prism_loop_hook_cb cb,
			void *arg, prism_loop_hook **out);
/* Remove and free.  NULL-safe; allowed in any callback, its own included. */
void prism_loop_hook_remove(prism_loop_hook *hook);

#ifdef __cplusplus
}
#endif
#endif
