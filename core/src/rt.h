/* rt.h — libprism's runtime internals: one `struct rt` per process (a driver or a
 * worker), shared by client.c (attach, embedded node, control messages, leases, polling),
 * objects.c (the owner's table of refs), submit.c (tasks out, completions in, get, wait,
 * put), worker.c (the task loop) and registry.c (remote functions by name). */
#ifndef PRISM_CORE_RT_H
#define PRISM_CORE_RT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/ring.h"
#include "base/shm.h"
#include "objstore/objstore.h"
#include "prism.h"
#include "sched/proto.h"

/* ---- registry.c ------------------------------------------------------------------------ */

enum rt_fn_kind { RT_FN = 0, RT_CLASS = 1, RT_METHOD = 2 };

struct rt_fn {
	const char *name;
	uint64_t hash;
	uint8_t kind; /* rt_fn_kind */
	prism_fn fn;
	int nargs;
	/* RT_CLASS */
	prism_actor_ctor ctor;
	prism_actor_dtor dtor;
	prism_actor_save save;
	prism_actor_restore restore;
	/* RT_METHOD */
	prism_method method;
	const struct rt_fn *cls;
	/* Moving average of how long its tasks run (submit.c), 0 until the first
	 * completion: it decides how deep its tasks are pipelined into a lease. */
	uint64_t run_ewma_ns;
};

const struct rt_fn *rt_fn_by_name(const char *name);
const struct rt_fn *rt_fn_by_hash(uint64_t hash);
/* The same entry, for the run-time statistics only. */
struct rt_fn *rt_fn_stats(uint64_t hash);
int rt_load_code_path(const char *path);

/* ---- objects.c: what this process owns or holds -------------------------------------- */

enum obj_state { OBJ_PENDING = 0, OBJ_READY = 1, OBJ_FAILED = 2 };
enum obj_err {
	OBJ_ERR_TASK = 0,
	OBJ_ERR_ACTOR_DIED = 1,
	OBJ_ERR_UNKNOWN_METHOD = 2,
	OBJ_ERR_INFEASIBLE = 3, /* no node of the cluster can ever run it */
	OBJ_ERR_DEADLINE = 4,   /* dropped: it could not start before its deadline */
};
/* The code prism_get() returns for a failed object, from the code a failure carried. */
static inline uint8_t obj_err_of(int code)
{
	return code == PRISM_E_ACTOR_DIED       ? OBJ_ERR_ACTOR_DIED
	       : code == PRISM_E_UNKNOWN_METHOD ? OBJ_ERR_UNKNOWN_METHOD
	       : code == PRISM_E_INFEASIBLE     ? OBJ_ERR_INFEASIBLE
	       : code == PRISM_E_DEADLINE       ? OBJ_ERR_DEADLINE
						: OBJ_ERR_TASK;
}
static inline int obj_err_code(uint8_t err)
{
	return err == OBJ_ERR_ACTOR_DIED       ? PRISM_E_ACTOR_DIED
	       : err == OBJ_ERR_UNKNOWN_METHOD ? PRISM_E_UNKNOWN_METHOD
	       : err == OBJ_ERR_INFEASIBLE     ? PRISM_E_INFEASIBLE
	       : err == OBJ_ERR_DEADLINE       ? PRISM_E_DEADLINE
					       : PRISM_E_TASK_FAILED;
}

#define OBJ_SMALL 48 /* values up to this size live inside the entry */

struct task_wait; /* a submitted task whose ref arguments are not ready yet */

struct obj {
	prism_id id;
	uint32_t refs;    /* references held by the user; 0: released, kept for uses */
	uint32_t uses;    /* tasks in flight reading it from the store, or a result
			   * being sent that contains it (rt_share) */
	uint32_t holders; /* results this process holds that contain it */
	uint8_t state;    /* enum obj_state */
	uint8_t in_store; /* value is a pinned store object */
	uint8_t on_heap;  /* value is a prism_malloc'd copy */
	uint8_t err;      /* OBJ_FAILED: enum obj_err, what prism_get() returns */
	uint8_t given;    /* in_store: another process owns the store object now (it got
			   * it inside a result): dropping the entry only unpins */
	uint32_t len;
	uint32_t ninner; /* refs the value contains (prism_return_with_refs) */
	uint64_t store_len;
	prism_id store_id; /* in_store: the store object holding the value, pinned by us */
	prism_id *inner;   /* ninner ids, each holding one of its entry's `holders` */
	const void *data;
	struct task_wait *waiters; /* tasks waiting for this value */
	struct obj *next_free;
	uint8_t small[OBJ_SMALL];
};

int obj_table_init(void);
void obj_table_fini(void);
struct obj *obj_find(prism_id id);
/* A new PENDING entry with one reference; NULL on -ENOMEM. */
struct obj *obj_new(prism_id id);
/* Set the value (copied; small values inside the entry). */
int obj_set_value(struct obj *o, const void *data, size_t len);
int obj_set_failed(struct obj *o, const char *msg, size_t len);
int obj_set_failed_code(struct obj *o, int code, const char *msg, size_t len);
/* The value is store object sid, of which this process holds one pin (given up with
 * the entry). */
void obj_set_store(struct obj *o, prism_id sid, const void *data, uint64_t size);
static inline uint64_t obj_len(const struct obj *o)
{
	return o->in_store ? o->store_len : o->len;
}
void obj_drop(struct obj *o);
/* Nothing holds it any more: no ref, no result containing it, no task reading it, no
 * task waiting for it. */
static inline bool obj_unused(const struct obj *o)
{
	return !o->refs && !o->holders && !o->uses && !o->waiters;
}
size_t obj_count(void);

/* ---- client.c: the process's link to its node ------------------------------------------- */

enum lease_state { LEASE_NONE = 0, LEASE_ACTIVE = 1, LEASE_RETURNING = 2 };

/* A copy of each task in flight on a lease, oldest first: completions come back in
 * order, and if the worker dies the copies are what we submit again. */
struct inflight {
	uint8_t *buf; /* ring of whole messages */
	size_t cap, head, tail;
	uint32_t count;
};

/* ---- deadline.c ----------------------------------------------------------------------- */

/* Tasks with a deadline waiting for a lease, earliest deadline first (ties in submission
 * order).  Each entry owns a copy of its message. */
struct dlq_item {
	uint64_t deadline, seq;
	uint8_t *msg;
	size_t cap;
};
#define DLQ_SPARE 16 /* buffers kept for reuse: a queue that cycles allocates nothing */
struct dlq {
	struct dlq_item *heap;
	uint32_t count, cap;
	uint64_t seq;
	struct {
		uint8_t *buf;
		size_t cap;
	} spare[DLQ_SPARE];
	uint32_t nspare;
};

int dlq_push(struct dlq *q, const struct sched_task_msg *m);
const struct sched_task_msg *dlq_peek(const struct dlq *q);
void dlq_pop(struct dlq *q);
void dlq_free(struct dlq *q);
/* Whether m asked to be dropped when stale and is past its deadline at now. */
bool rt_deadline_stale(const struct sched_task_msg *m, uint64_t now);
/* Count one deadline call this process started (late or not) or dropped. */
void rt_deadline_count(bool late, bool dropped);

/* A resource shape and the tasks of that shape waiting for a lease: each shape has its
 * own leases, queue and (at most one) outstanding lease request, so tasks of one shape
 * never wait behind another's. */
#define RT_MAX_SHAPES 8
struct rt_shape {
	bool used;
	uint32_t milli[SCHED_MAX_RES]; /* amount of each node resource (hdr->res order) */
	bool requested;
	uint64_t req_id;
	struct inflight queued; /* without a deadline, in submission order */
	struct dlq dl;          /* with one: they go first, earliest deadline first */
};

struct rt_actor;

struct rt_lease {
	uint8_t state;
	struct rt_actor *actor; /* an actor channel: calls to it, never returned idle */
	uint32_t shape;         /* index in rt.shapes */
	uint32_t idx, gen, worker;
	pid_t worker_pid;
	prism_ring *spec, *done;
	struct inflight fl;
	uint64_t idle_since;
	bool held_off; /* being recalled, or was: not used until the node says (client.c) */
	bool recalled; /* recalled with tasks in flight: answered when they are back */
};

struct rt {
	bool up;
	char address[4096];
	char code_path[4096]; /* the driver's; its workers load the same libraries */
	bool is_worker;
	int sock;
	pid_t node_pid; /* embedded node we started, or 0 */
	prism_shm *seg;
	void *base;
	struct sched_node_hdr *hdr;
	uint32_t slot, gen;
	void *bell;
	objstore *os;
	int daemon_efd;
	prism_ring *up_ring, *down;
	uint64_t spin_ns;
	uint32_t inline_max;
	struct rt_lease leases[SCHED_MAX_LEASES];
	uint32_t
		nactive; /* The active leases, and the rings this process waits on (down + their done
	 * rings), both rebuilt when leases come and go, so the per-task path never scans
	 * the whole lease table. */
	struct rt_lease *active[SCHED_MAX_LEASES];
	uint64_t next_maintain; /* prism_cycles() at which idle leases are next looked at */
	prism_ring *waitset[1 + 2 * SCHED_MAX_LEASES];
	uint32_t nwait;
	uint64_t next_req;
	/* Tasks waiting for a lease, per resource shape, in submission order. */
	struct rt_shape shapes[RT_MAX_SHAPES];
	uint32_t nshapes; /* shapes[nshapes..] were never used: loops stop there */
	/* What only this process can move on (progress.c looks as every call returns):
	 * tasks in the ready list (submit.c), tasks waiting for ref arguments (submit.c),
	 * calls queued for actors (actor.c) and entries of those with an open channel. */
	uint32_t nready, nwaiting, actor_queued, actor_backlog;
	double last_cpus; /* the last CPU-only shape looked up, to skip the search */
	uint32_t last_shape;
	bool last_shape_set;
	/* worker mode */
	int serving; /* the lease this worker serves, or -1 */
	bool in_task;
	bool revoke_pending, revoke_discard;
	uint64_t tasks_run;
};

extern struct rt rt;

int rt_send_msg(const struct sched_msg *h);
int rt_send_ctl(uint16_t type, uint32_t a, uint32_t b, uint64_t req_id);
/* Handle what arrived: control messages and completions.  Returns how many. */
size_t rt_poll_once(void);
/* Wait (spin, then sleep) until something arrives or timeout; returns rt_poll_once(). */
int rt_wait_and_poll(int64_t timeout_ns);
void rt_rebuild_waitset(void);
void rt_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int rt_attach(const char *path, int kind, uint32_t wslot, uint32_t wgen);
void rt_detach(void);
void rt_leases_maintain(void);
bool rt_lease_claim(struct rt_lease *l);
void rt_lease_idle(struct rt_lease *l);
void rt_lease_forget(struct rt_lease *l);
void rt_worker_on_ctl(const struct sched_ctl_msg *m);

/* inflight queues */
int fl_push(struct inflight *f, const void *msg, size_t len);
void fl_unpush(struct inflight *f, size_t len); /* undo the last push */
const struct sched_msg *fl_peek(const struct inflight *f);
void fl_pop(struct inflight *f);
void fl_free(struct inflight *f);

/* ---- submit.c ------------------------------------------------------------------------------ */

/* A completion from lease l's done ring. */
void rt_on_done(struct rt_lease *l, const struct sched_done_msg *d, size_t len);
/* The worker of lease l died: resubmit or fail what it had in flight. */
void rt_on_lease_lost(struct rt_lease *l);
/* Helping.  A worker blocked in a get or wait inside a task may run tasks it queued
 * itself that no lease has taken yet (worker.c, rt_worker_help()), so a tree of nested
 * waits finishes however few workers the node can start.  rt_can_help(): whether such a
 * task waits (CPU-only shapes: the CPU the worker lent back covers it);
 * rt_take_for_help(): the next one, out of its queue, as a prism_malloc'd copy the
 * caller frees (NULL: none, or no memory); rt_on_done_here(): its completion, built in
 * this process (d NULL: none could be built, the task fails). */
bool rt_can_help(void);
/* Refs inside results (prism_return_with_refs).  rt_share(): ref id's value as a store
 * object another process may hold (made from an inline value if need be), *sid its id,
 * with one new pin for the caller to send and a use of the entry.  rt_unshare() ends
 * it: how 0, not sent (the pin is dropped); 1, the pin and the object's ownership went
 * to another process (the entry no longer deletes the object); 2, sent to this very
 * process. */
int rt_share(prism_id id, prism_id *sid);
/* rt_share() ref id and, after it, every ref its value contains, however deep, as
 * entries appended to *e (prism_realloc'd, *n of them), each naming its holder's index
 * (parent; SCHED_CONTAINED_TOP for the result).  At most SCHED_CONTAINED_MAX: -E2BIG. */
int rt_share_tree(prism_id id, uint32_t parent, struct sched_contained **e, uint32_t *n);
void rt_unshare(prism_id id, prism_id sid, int how);
struct sched_task_msg *rt_take_for_help(void);
void rt_on_done_here(const struct sched_task_msg *m, const struct sched_done_msg *d,
		     size_t len);
/* Push queued tasks to leases that have room. */
void rt_flush_queued(void);
/* Fail every queued task of a shape (NULL: of every shape). */
void rt_fail_queued(struct rt_shape *shape, int code);
struct rt_shape *rt_shape_by_req(uint64_t req_id);
/* The shape for o's resources (added if new); -EINVAL/PRISM_E_INFEASIBLE with the
 * error set when the node cannot have them, -ENOSPC when too many shapes are in use. */
int rt_shape_for(const prism_call_opts *o, const char *what, uint32_t *shape);
bool rt_any_queued(void);
/* Build and send (or queue, or defer until its ref arguments are ready) one call of fn;
 * shape is the resource shape, or for a method the actor's index.  Refs go to out. */
int rt_call(const struct rt_fn *fn, uint32_t shape, const prism_value *args, size_t nargs,
	    const prism_call_opts *o, prism_ref *out);
/* Launch the tasks whose last ref argument became ready since the last call (they wait
 * in a list meanwhile: see notify() in submit.c).  Called where no queue is being
 * walked: after each poll, submit and kill. */
void rt_launch_ready(void);
/* prism_shutdown(): tasks still waiting for arguments are given up. */
void rt_waits_forget(void);
/* Fail a stale call that asked to be dropped (PRISM_E_DEADLINE) and count it; the
 * caller pops it from its queue. */
void rt_drop_stale(const struct sched_task_msg *m, uint64_t now);
/* -EINVAL, with the error set, for an argument with NULL data and a length. */
int rt_check_args(const prism_value *args, size_t nargs, const char *what);
/* -EINVAL, with the error set, for flags a call may not have. */
int rt_check_call_flags(const prism_call_opts *o, const char *what);
/* Fail every message of q with code and why (function name first), and drop them. */
void rt_fail_msgs(struct inflight *q, int code, const char *why);

/* ---- actor.c ------------------------------------------------------------------------------- */

/* Poll until pred(arg) holds or timeout_ns passes (< 0: never); PRISM_E_TIMEOUT. */
int rt_wait_until(bool (*pred)(void *), void *arg, int64_t timeout_ns);
int rt_actor_dispatch(const struct sched_task_msg *m);
void rt_actor_flush(void);
void rt_actor_on_ctl(const struct sched_ctl_msg *m);
/* The lease (opened by client.c) is the channel to the actor the message names. */
void rt_actor_channel_open(struct rt_lease *l, const struct sched_ctl_msg *m);
void rt_actor_fini(void);
/* The channel to a died with its worker (its calls in flight are failed already). */
void rt_actor_chan_lost(struct rt_actor *a);

/* Whether tasks wait in a shape's queues (for a lease, or room in one). */
static inline bool rt_shapes_queued(void)
{
	for (uint32_t i = 0; i < rt.nshapes; i++)
		if (rt.shapes[i].queued.count | rt.shapes[i].dl.count)
			return true;
	return false;
}

/* Whether anything waits that only this process can move on (queued tasks and calls,
 * tasks waiting for ref arguments or ready to launch).  Inline: it runs as every call
 * returns. */
static inline bool rt_needs_progress(void)
{
	if (!rt.up)
		return false;
	return (rt.nready | rt.nwaiting | rt.actor_queued) || rt_shapes_queued();
}

/* ---- progress.c: who may touch the runtime, and the progress thread ----------------------- */

/* Every public call runs between rt_enter() and rt_leave() (nested calls count depth);
 * so does a worker's task loop, which leaves around the user's code. */
void rt_enter(void);
void rt_leave(void);
/* The body of a public call: `call` (an int expression) between the two. */
#define RT_ENTERED(call)                  \
	do {                              \
		rt_enter();               \
		int rc_entered_ = (call); \
		rt_leave();               \
		return rc_entered_;       \
	} while (0)
/* Stop and join the progress thread (the caller has entered). */
void rt_progress_stop(void);

/* ---- worker.c ------------------------------------------------------------------------------- */

int rt_worker_main(void);
/* A worker blocked in a get tells its node so another task can use the CPU (nested:
 * only the outermost block and unblock are sent). */
void rt_worker_block(bool blocked);
/* Run one task this worker queued itself (see rt_can_help()) in this process, while a
 * task of its waits.  Returns whether one ran. */
bool rt_worker_help(void);

#endif
