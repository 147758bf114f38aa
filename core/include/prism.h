/* prism.h — the public API of libprism.
 *
 * prism is a distributed execution engine in the family of Ray: a program registers C
 * functions, submits them as tasks, gets futures (refs) back at once, passes refs into
 * further tasks, and gets results.  This header is the whole user-facing surface.
 *
 *   static int add(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
 *   {
 *           int64_t a, b;
 *           memcpy(&a, args[0].data, 8);
 *           memcpy(&b, args[1].data, 8);
 *           a += b;
 *           return prism_return(ctx, 0, &a, sizeof(a));
 *   }
 *   PRISM_REMOTE_ARITY(add, 2);
 *
 *   int main(void)
 *   {
 *           prism_init(NULL);                  // an embedded node, like ray.init()
 *           int64_t x = 1, y = 2;
 *           prism_value args[] = {prism_bytes(&x, 8), prism_bytes(&y, 8)};
 *           prism_ref r;
 *           prism_submit("add", args, 2, NULL, &r);
 *           const void *v; size_t n;
 *           prism_get(r, -1, &v, &n);          // 3
 *           prism_ref_release(r);
 *           prism_shutdown();
 *   }
 *
 * Processes.  prism_init() with no address starts a private node (the daemon, prismd)
 * as a child process and stops it at prism_shutdown(); with an address (or
 * PRISM_ADDRESS) it attaches to a running node (`prism start`).  The node runs tasks in
 * worker processes that re-run the driver's own executable, with the driver's command
 * line, directory and environment.  A worker enters its task loop before main() runs,
 * from a constructor that PRISM_REMOTE emits after the registrations; a program whose
 * remote functions all live in code-path libraries has no such constructor, and its
 * workers enter from prism_init() instead, so main() should call prism_init() before it
 * does anything a worker must not do.
 *
 * Conventions.  Functions return 0 (or a count) on success and a negative code on
 * failure: errno values (-EINVAL...) and PRISM_E_* (base/error.h); prism_strerror()
 * explains a code and prism_last_error() gives the details of the last failure on this
 * thread.  A failed task is not an error of the call that submitted it: its results
 * become error objects, and prism_get() on one returns PRISM_E_TASK_FAILED with the
 * function's name and message as the data.
 *
 * Threads.  The calls of one process must come from one thread at a time (the rings
 * under them have one producer and one consumer); tasks run one at a time in a worker.
 * Work goes on while the program is away from prism: when tasks wait for a worker or for
 * ref arguments and the program has made no prism call for 2 ms, a progress thread of
 * libprism (started the first time such work waits) takes lease grants, pushes the
 * tasks and launches those whose arguments became ready, until the next call.
 *
 * Nested waits.  A task that waits in prism_get()/prism_wait() gives its CPU back for the
 * wait, and the node may start one worker beyond its max_workers (4 per CPU) for each
 * task so blocked, up to 56 worker processes per node in all.  Past that, or while a new
 * worker starts, the waiting task runs the tasks it submitted itself that no worker has
 * taken (after 2 ms; CPU-only ones, not in an actor), in its own process: trees of tasks
 * that wait for their children finish however deep and wide, on any number of workers.
 * A wait with a timeout may then return up to one such task's run time late.
 */
#ifndef PRISM_H
#define PRISM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/id.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PRISM_VERSION_MAJOR 0
#define PRISM_VERSION_MINOR 1
#define PRISM_VERSION_PATCH 0

/* A future: the id of an object that is or will be.  A plain value; each ref a call
 * hands out is one reference, given back with prism_ref_release(). */
typedef struct prism_ref_s {
	prism_id id;
} prism_ref;

/* The library's version as "MAJOR.MINOR.PATCH"; a static string. */
PRISM_API const char *prism_version(void);

/* Details of the last failed call on this thread ("no function named 'foo' is
 * registered"), or "" if there is none.  Valid until the next prism call. */
PRISM_API const char *prism_last_error(void);

/* ---- start and stop ------------------------------------------------------------------ */

typedef struct prism_opts {
	/* Node to attach to: a prismd socket path, or "auto" for the node `prism start`
	 * runs by default.  NULL: PRISM_ADDRESS, and if that is unset too, an embedded
	 * node started for this program. */
	const char *address;
	/* Embedded node: workers started ahead of need (0 = one per CPU). */
	uint32_t num_workers;
	/* Embedded node: object store size in bytes (0 = 256 MiB). */
	uint64_t object_store_bytes;
	/* Embedded node: GPUs it offers to tasks that ask for them (prism only counts
	 * them; the task picks its device). */
	uint32_t num_gpus;
	/* Embedded node: custom resources, "name=amount,...", e.g. "camera=1,arm=2". */
	const char *resources;
	/* Shared libraries whose PRISM_REMOTE functions this program calls, separated by
	 * ':' (also PRISM_CODE_PATH); loaded here and in every worker. */
	const char *code_path;
	/* Log level 0 (errors) to 4 (trace); -1 = PRISM_LOG_LEVEL or warnings. */
	int log_level;
	/* How long a waiting get/wait spins before it sleeps, in ns; 0 = 50 us.  Spinning
	 * keeps a round trip under a few microseconds; sleeping costs tens on a VM. */
	uint64_t spin_ns;
} prism_opts;

/* Start (or attach to) a node.  opts may be NULL for the defaults.  Errors: -EALREADY
 * when called twice, PRISM_E_PIPE/-ENOENT when the address does not answer, -EACCES
 * when the node belongs to another user. */
PRISM_API int prism_init(const prism_opts *opts);
/* The address of the node this process is attached to (a socket path other drivers can
 * pass to prism_init()), or NULL before prism_init(). */
PRISM_API const char *prism_node_address(void);

/* Release every ref, detach, and stop the embedded node if this process started one.
 * Safe to call when prism_init() failed or was never called. */
PRISM_API void prism_shutdown(void);

/* ---- remote functions ---------------------------------------------------------------- */

typedef struct prism_task_ctx prism_task_ctx;

/* An argument as the function sees it: bytes valid while the function runs (a store
 * object's bytes are not copied). */
typedef struct prism_arg {
	const void *data;
	size_t len;
} prism_arg;

/* A remote function.  It reads its arguments, sets its results with prism_return*()
 * (results it does not set are empty), and returns 0, or a negative code (or
 * prism_fail()) to fail the task. */
typedef int (*prism_fn)(prism_task_ctx *ctx, const prism_arg *args, size_t nargs);

/* Register fn under its own name; calls with any number of arguments are allowed. */
#define PRISM_REMOTE(fn) PRISM_REMOTE_ARITY(fn, -1)
/* Register fn under its own name, taking exactly nargs arguments: a call with another
 * count is refused at submit time with -EINVAL. */
#define PRISM_REMOTE_ARITY(fn, nargs)                                            \
	__attribute__((constructor(101))) static void prism__register_##fn(void) \
	{                                                                        \
		prism_register(#fn, fn, nargs);                                  \
	}                                                                        \
	__attribute__((constructor)) static void prism__enter_##fn(void)         \
	{                                                                        \
		prism__worker_entry();                                           \
	}                                                                        \
	_Static_assert(1, "PRISM_REMOTE")

/* Register by hand (a name other than the C identifier, or from a code-path library).
 * -EEXIST when the name, or another name with the same 64-bit hash, is taken. */
PRISM_API int prism_register(const char *name, prism_fn fn, int nargs);
/* Internal: called by PRISM_REMOTE after the registrations; in a worker process it runs
 * the task loop and exits, elsewhere it returns at once. */
PRISM_API void prism__worker_entry(void);

/* Inside a task: set result `index` (0-based, below the call's num_returns) to a copy
 * of len bytes.  Results up to the node's inline limit (64 KiB) travel in the
 * completion; larger ones go through the object store, and so do the largest of results
 * that together would not fit one completion (128 KiB). */
PRISM_API int prism_return(prism_task_ctx *ctx, unsigned index, const void *data, size_t len);
/* Inside a task: set result `index` to the value of a ref this task holds (for example
 * the result of a nested task): the caller receives the value. */
PRISM_API int prism_return_ref(prism_task_ctx *ctx, unsigned index, prism_ref ref);
/* Inside a task: set result `index` to a copy of len bytes that contain refs (their
 * prism_ref values written into the bytes, say), and make the result hold a reference to
 * each of refs[0..nrefs), as a value returned with refs inside it holds them in Ray.  Each
 * must be a ref this task holds (a prism_put, or the result of a call it made); their
 * values are waited for here, and one that failed fails this task.  The process that gets
 * the result may use the refs it contains (prism_get, prism_wait, prism_refval) for as
 * long as it holds the result, and keeps one longer with prism_ref_retain() (then
 * releases it as usual); each value is freed once neither a ref nor a result holding it
 * is left.  Refs inside the contained values come along too, however deep (a box of boxes
 * arrives whole; 4,096 refs per result in all).  A task that gets such a value as an
 * argument gets the bytes only: pass the refs it should use as arguments of their own.
 * At most PRISM_MAX_CONTAINED refs.  Errors: -EINVAL; PRISM_E_RELEASED for a ref this
 * task does not hold; -E2BIG past 4,096 refs in all; -ENOTSUP when the caller is on
 * another node of a cluster (refs inside results do not cross nodes yet). */
#define PRISM_MAX_CONTAINED 256
PRISM_API int prism_return_with_refs(prism_task_ctx *ctx, unsigned index, const void *data,
				     size_t len, const prism_ref *refs, size_t nrefs);
/* Inside a task: fail it with a message; the function should then return its result.
 * Returns PRISM_E_TASK_FAILED so `return prism_fail(ctx, "...")` reads naturally. */
PRISM_API int prism_fail(prism_task_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---- futures ---------------------------------------------------------------------------- */

/* An argument of a call: bytes (copied at submit time) or a ref, whose value the task
 * receives once it is ready.  data may be NULL only with len 0.  A call's arguments may
 * take any total size: each value up to the node's inline limit (64 KiB) travels in the
 * task message while the whole message fits one lease ring (128 KiB); larger values, and
 * the largest ones beyond that, go through the object store (as Ray does). */
typedef struct prism_value {
	const void *data;
	size_t len;
	prism_ref ref; /* nil: use data/len */
} prism_value;

static inline prism_value prism_bytes(const void *data, size_t len)
{
	prism_value v = {data, len, {{{0}}}};
	return v;
}
static inline prism_value prism_refval(prism_ref ref)
{
	prism_value v = {NULL, 0, ref};
	return v;
}

/* An amount of a custom resource the node declares (prismd --resources, or
 * prism_opts.resources for an embedded node).  CPUs and GPUs have their own fields. */
typedef struct prism_resource {
	const char
		*name; /* e.g. "camera"; "CPU" and "GPU" are refused: use num_cpus/num_gpus */
	double amount; /* > 0; fractions allowed (thousandths) */
} prism_resource;

/* Deadlines.  A task or actor call may carry an absolute deadline (deadline_ns, on
 * CLOCK_MONOTONIC as prism_now_ns() and clock_gettime() read it; 0: none).  It is the
 * time by which the call should have *started*:
 *
 *   - Order.  Where calls wait and may be reordered, calls with a deadline go ahead of
 *     calls without one, earliest deadline first (ties in submission order): the
 *     submitter's queue of tasks waiting for a worker (per resource shape), and a
 *     real-time or ordinary actor choosing between its callers.  What does not reorder:
 *     the calls one process makes to one actor run in the order they were made, a
 *     deadline or not (a deadline call waits behind that caller's earlier calls), and a
 *     task already pushed to a leased worker waits behind the tasks pushed there before
 *     it (a deadline task goes to the leased worker with the fewest in flight, and long
 *     tasks are pushed one at a time per worker, so that is at most one long task or a
 *     few short ones).
 *   - Lateness.  A call that starts after its deadline runs anyway and is counted late,
 *     per node: `prism status` shows the node's deadline calls, late and dropped, and
 *     prism_node_stats() reads them.
 *   - Dropping.  With PRISM_CALL_DROP_LATE in flags a call that would start after its
 *     deadline is not run at all: its results fail with PRISM_E_DEADLINE (prism_get()
 *     returns that code, with a message naming the function and how late it was).  The
 *     check is made where the call waited (in the submitter's queue) and again where it
 *     would start (in the worker), so a stale call costs the worker nothing.  For an
 *     actor call, a dropped call changes no state; later calls run as usual. */
#define PRISM_CALL_DROP_LATE 1u

typedef struct prism_call_opts {
	uint32_t num_returns; /* 0 = 1; at most 16 */
	double num_cpus;      /* CPUs the task holds while it runs; 0 = 1 */
	double num_gpus;      /* GPUs; 0 = none */
	int max_retries;      /* retries when its worker dies; 0 = default (3), -1 = none */
	uint64_t deadline_ns; /* absolute CLOCK_MONOTONIC start deadline; 0 = none */
	/* Custom resources the task holds while it runs; read during the call only. */
	const prism_resource *resources;
	size_t nresources;
	uint32_t flags; /* PRISM_CALL_*: DROP_LATE (needs deadline_ns) */
} prism_call_opts;

/* The node's counts of calls with a deadline since it started (every process's). */
typedef struct prism_node_stats {
	uint64_t deadline_calls;   /* started or dropped */
	uint64_t deadline_late;    /* started after their deadline */
	uint64_t deadline_dropped; /* not run: stale, with PRISM_CALL_DROP_LATE */
} prism_node_stats;

/* Read the node's counters (attached node; PRISM_E_CLOSED before prism_init()). */
PRISM_API int prism_node_stats_get(prism_node_stats *out);

#define PRISM_MAX_RETURNS 16

/* Submit a call of the function registered as `fn`.  Writes num_returns refs to out at
 * once; the task runs when its ref arguments are ready and a worker is free.  The task
 * holds what it needs of its ref arguments until it has run: releasing your own refs
 * right after the submit is safe.  opts may be NULL.  Errors: PRISM_E_UNKNOWN_FUNCTION,
 * -EINVAL (argument count, options, NULL data with a length),
 * PRISM_E_INFEASIBLE (resources the node does not have, or not that many: the message
 * lists what it has), PRISM_E_CLOSED (not initialised).  Tasks of one resource shape
 * queue apart from other shapes; at most 8 different shapes per process at once. */
PRISM_API int prism_submit(const char *fn, const prism_value *args, size_t nargs,
			   const prism_call_opts *opts, prism_ref *out);

/* A resolved remote function: a handle to submit by without a lookup by name.  Valid for
 * the life of the process. */
typedef struct prism_function prism_function;

/* The handle of the function registered as `name`, or NULL (prism_last_error() says
 * why). */
PRISM_API const prism_function *prism_function_get(const char *name);

/* prism_submit() by handle. */
PRISM_API int prism_submit_fn(const prism_function *fn, const prism_value *args, size_t nargs,
			      const prism_call_opts *opts, prism_ref *out);

/* Wait for a ref's value, up to timeout_ns (< 0: forever).  On success *data and *len give
 * the bytes, valid until the ref is released (store objects are not copied).  Errors:
 * PRISM_E_TIMEOUT; PRISM_E_TASK_FAILED, with *data and *len holding "function: message";
 * PRISM_E_RELEASED or -ENOENT for a ref this process does not hold. */
PRISM_API int prism_get(prism_ref ref, int64_t timeout_ns, const void **data, size_t *len);

/* Wait until num_ready of the n refs are ready (a failed task counts as ready), or
 * timeout_ns passes (< 0: forever).  ready (may be NULL) gets one flag per ref.  Returns
 * how many are ready (which may be fewer than num_ready on a timeout), or an error. */
PRISM_API int prism_wait(const prism_ref *refs, size_t n, size_t num_ready, int64_t timeout_ns,
			 bool *ready);

/* Put a copy of len bytes into the object store; *out is a ref to it.  Errors:
 * PRISM_E_STORE_FULL, PRISM_E_TOO_BIG. */
PRISM_API int prism_put(const void *data, size_t len, prism_ref *out);

/* One more reference to ref / one less.  When the last is released, the value is freed
 * (data returned by prism_get() for it becomes invalid).  Inside a task as anywhere: a
 * ref a task made (prism_put, a nested call) and did not release stays with its worker
 * process, which runs other tasks afterwards, until the node stops it. */
PRISM_API int prism_ref_retain(prism_ref ref);
PRISM_API int prism_ref_release(prism_ref ref);

/* ---- actors ---------------------------------------------------------------------------
 *
 * An actor is an instance of a registered class living in a worker of its own: a
 * constructor builds its state there, and methods take the state and arguments.  Calls
 * return futures like tasks.  Calls made through one process run in the order they were
 * made; calls from several processes interleave, one call at a time (a method never
 * runs concurrently with another of the same actor).  The actor belongs to the process
 * that created it (its owner) and ends when the owner does, or at prism_actor_kill().
 *
 *   static int counter_new(prism_task_ctx *c, const prism_arg *a, size_t n, void **st);
 *   static void counter_free(void *st);
 *   static int incr(prism_task_ctx *c, void *st, const prism_arg *a, size_t n);
 *   PRISM_ACTOR(Counter, counter_new, counter_free);
 *   PRISM_METHOD(Counter, incr);
 *   ...
 *   prism_actor c;
 *   prism_actor_create("Counter", NULL, 0, NULL, &c);
 *   prism_actor_call(c, "incr", NULL, 0, NULL, &ref);
 */

/* A handle: a plain value, valid in any process of the node; pass it to tasks and other
 * actors as the bytes of the struct (prism_bytes(&h, sizeof(h))). */
typedef struct prism_actor {
	prism_id id;
	uint64_t cls; /* the class (hash of its name) */
} prism_actor;

/* The constructor: builds *state from the arguments; non-zero (or prism_fail()) fails
 * the actor, and its calls then fail with PRISM_E_ACTOR_DIED and the message. */
typedef int (*prism_actor_ctor)(prism_task_ctx *ctx, const prism_arg *args, size_t nargs,
				void **state);
/* Frees the state when the actor's worker ends cleanly; may be NULL. */
typedef void (*prism_actor_dtor)(void *state);
/* A method: like a remote function, with the state. */
typedef int (*prism_method)(prism_task_ctx *ctx, void *state, const prism_arg *args,
			    size_t nargs);
/* Checkpoints: serialise the state into *bytes (malloc()ed; prism frees it) and *len;
 * restore builds a state from such bytes after a restart. */
typedef int (*prism_actor_save)(void *state, void **bytes, size_t *len);
typedef int (*prism_actor_restore)(const void *bytes, size_t len, void **state);

/* Register class `cls` (a C identifier; its name is the string) with its constructor and
 * destructor, and a method of it named after the C function. */
#define PRISM_ACTOR(cls, ctor, dtor)                                                    \
	__attribute__((constructor(101))) static void prism__register_actor_##cls(void) \
	{                                                                               \
		prism_register_actor(#cls, ctor, dtor);                                 \
	}                                                                               \
	__attribute__((constructor)) static void prism__enter_actor_##cls(void)         \
	{                                                                               \
		prism__worker_entry();                                                  \
	}                                                                               \
	_Static_assert(1, "PRISM_ACTOR")
#define PRISM_METHOD(cls, method)                                                            \
	__attribute__((constructor(102))) static void prism__register_##cls##_##method(void) \
	{                                                                                    \
		prism_register_method(#cls, #method, method);                                \
	}                                                                                    \
	_Static_assert(1, "PRISM_METHOD")
/* Optional: checkpoint and restore callbacks, used when max_restarts is set. */
#define PRISM_ACTOR_CHECKPOINT(cls, save, restore)                                     \
	__attribute__((constructor(102))) static void prism__register_ckpt_##cls(void) \
	{                                                                              \
		prism_register_checkpoint(#cls, save, restore);                        \
	}                                                                              \
	_Static_assert(1, "PRISM_ACTOR_CHECKPOINT")

/* By hand.  -EEXIST for a name taken, -ENOENT for a method of a class not registered. */
PRISM_API int prism_register_actor(const char *cls, prism_actor_ctor ctor,
				   prism_actor_dtor dtor);
PRISM_API int prism_register_method(const char *cls, const char *method, prism_method fn);
PRISM_API int prism_register_checkpoint(const char *cls, prism_actor_save save,
					prism_actor_restore restore);

typedef struct prism_actor_opts {
	double num_cpus; /* CPUs held for the actor's life; 0 = none (as in Ray) */
	double num_gpus;
	const prism_resource *resources; /* custom resources held for its life */
	size_t nresources;
	/* Restarts after its worker dies: 0 = none, -1 = without limit.  A restart builds
	 * the state from the last checkpoint, or runs the constructor again. */
	int max_restarts;
	/* Calls between checkpoints (classes with PRISM_ACTOR_CHECKPOINT and restarts);
	 * 0 = after every call. */
	uint32_t checkpoint_every;
	/* A name unique on the node (at most 63 bytes): prism_actor_get() finds it. */
	const char *name;
	/* A real-time actor: its worker never sleeps (it spins on its rings), is pinned to
	 * a CPU of its own, locks its memory (mlockall) and runs SCHED_FIFO when allowed
	 * (a warning otherwise).  At most ncpus - 1 per node: PRISM_E_NO_SPINNER beyond. */
	bool realtime;
	/* A real-time actor: how long it spins after each call before it sleeps (still
	 * SCHED_FIFO, so a call wakes it at once, in tens of microseconds); 0 = it spins
	 * forever.  Spinning forever suits a CPU isolated from other work (isolcpus).  On a
	 * CPU that other threads share, a SCHED_FIFO thread that never sleeps starves them
	 * and the kernel steps in (RT throttling, or since Linux 6.12 the fair server), taking
	 * the CPU from the actor for tens of milliseconds a second; a spin shorter than the
	 * gap between calls avoids that.  An actor that sleeps and is called periodically
	 * (a control loop) learns the period and wakes on its own shortly before the next
	 * call is due (300 us or more), so that the call finds it spinning.  Only with realtime (-EINVAL
	 * otherwise). */
	uint64_t rt_spin_ns;
	/* A real-time actor that sleeps (rt_spin_ns > 0) keeps its CPU from halting while it
	 * sleeps: a thread of its worker spins there at SCHED_IDLE (base/cpu.h), which
	 * anything else on the CPU preempts at once.  A CPU that halted wakes late for the
	 * actor's timer or for a call: by tens of microseconds on bare metal, by up to
	 * milliseconds on a virtual machine whose host descheduled the idle vCPU.  true: let
	 * the CPU idle (saves power; wake-ups come later).  Only with realtime. */
	bool rt_let_cpu_idle;
} prism_actor_opts;

/* Create an actor of class cls (registered in this program) with constructor arguments.
 * Returns once the node accepted it; the constructor runs in the actor's worker, before
 * any call.  Errors: PRISM_E_UNKNOWN_FUNCTION (no such class), -EINVAL (options),
 * PRISM_E_INFEASIBLE (resources), -EEXIST (the name is taken), PRISM_E_NO_SPINNER. */
PRISM_API int prism_actor_create(const char *cls, const prism_value *args, size_t nargs,
				 const prism_actor_opts *opts, prism_actor *out);
/* Call a method; refs to its num_returns results go to out at once (of opts, only
 * num_returns, deadline_ns and flags are read: see Deadlines above).  The refs fail with PRISM_E_ACTOR_DIED when the actor ended before or
 * during the call, PRISM_E_UNKNOWN_METHOD when its class has no such method (the actor
 * keeps running), PRISM_E_TASK_FAILED when the method failed.  A ref argument that is
 * not ready yet is waited for here, so that no later call overtakes this one.  A
 * process can hold handles to at most 256 actors in its life (-ENOSPC beyond). */
PRISM_API int prism_actor_call(prism_actor actor, const char *method, const prism_value *args,
			       size_t nargs, const prism_call_opts *opts, prism_ref *out);
/* The actor created under name, waiting up to timeout_ns for it to appear (< 0:
 * forever).  -ENOENT when none appears in time. */
PRISM_API int prism_actor_get(const char *name, int64_t timeout_ns, prism_actor *out);
/* End an actor now (its worker is killed; no destructor runs).  Calls pending or made
 * later fail with PRISM_E_ACTOR_DIED; restarts do not apply.  Returns once the node has
 * acted: 0 (also for an actor that had ended already), -ENOENT for a handle no actor
 * ever had. */
PRISM_API int prism_actor_kill(prism_actor actor);

#ifdef __cplusplus
}
#endif
#endif
