/* sched/place.h — where a task runs: the global scheduler's choice of node, and the local
 * scheduler's rule for keeping a task (DESIGN.md section 6, issue 7).
 *
 * Scheduling is bottom-up.  A node's local scheduler keeps a task when the node has the
 * resources free now and its queue is short (sched_place_local_ok); otherwise it forwards
 * the task to the global scheduler, which picks, among the alive nodes whose total
 * resources can ever hold the task, the one where it is expected to start first
 * (sched_place_pick).  The expected start on node j is
 *
 *	wait(j) + move(j)
 *	wait(j) = (queue_len + (fits now ? 0 : 1)) * mean_task_ns / slots
 *	move(j) = (bytes of the task's inputs that j does not hold) * 1e9 / bandwidth
 *
 * wait: the tasks queued ahead finish at a rate of slots per mean duration; when the
 * resources are not free now the task also waits for one running task to finish.
 * move: the inputs j lacks are pulled over j's link before the task starts.  The two are
 * added, not overlapped: a pull usually starts only once the task is dispatched, and
 * adding them leans towards the node that holds the data, whose pull costs nothing.
 * Both are computed in 128-bit integers and saturate at UINT64_MAX; division rounds down.
 *
 * The view is the caller's: a snapshot of every node built from heartbeats and load
 * reports (stale by up to a heartbeat), resources as small fixed vectors whose index i
 * is entry i of a resource-name table that the caller shares with every node (index 0
 * "CPU", 1 "GPU", then custom names, as a node's table in sched/proto.h), amounts in
 * thousandths of a unit like the GCS records' amount_milli.
 *
 * Cost: sched_place_pick() is O(nodes x (resources + inputs)): one pass over the nodes,
 * and for the inputs one cursor per input walking its (ascending) holder list alongside
 * that pass.  sched_place_local_ok() is O(resources).  prism-bench's cluster suite
 * measures pick on a 100-node view (cluster/sim_100_nodes, field place_ns).
 *
 * Ownership: every pointer is borrowed for the duration of the call.  Both functions are
 * pure: no allocation, no I/O, no global state, so they are safe from any thread.
 * Errors: 0 or a negative code (base/error.h); results through out-parameters, written
 * only on success.
 */
#ifndef PRISM_SCHED_PLACE_H
#define PRISM_SCHED_PLACE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/api.h"
#include "base/id.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 8: the entries of a node's resource table (SCHED_MAX_RES in sched/proto.h): CPU, GPU
 * and six custom names. */
#define SCHED_PLACE_MAX_RES 8u
/* 64: a task's inputs that placement looks at (the cursors live on the stack, 256
 * bytes).  A task with more arguments passes its largest 64: the rest are small inline
 * values or cost little to move next to those. */
#define SCHED_PLACE_MAX_INPUTS 64u
/* The local scheduler keeps a task while fewer than 2 tasks per slot wait (queue_max 0).
 * Two per slot lets each slot have its next task ready the moment the running one ends,
 * so a node never idles waiting for work to arrive; anything queued beyond that is work
 * only this node can start, hidden from the global scheduler, which could start it at
 * once on an idle node for the price of two hops (~5 us each over the tcp transport on
 * the development VM, bench/README.md transport/tcp_rtt_64b).  A task behind 2 per slot
 * waits two mean durations: for tasks of more than ~5 us, longer than that price. */
#define SCHED_PLACE_LOCAL_QUEUE_PER_SLOT 2u

/* One node of the view.  The caller fills every field; only alive nodes are read beyond
 * `alive`, so a dead node's other fields may be stale or zero. */
struct sched_place_node {
	prism_id id;                               /* the node (not read: ties go by index) */
	bool alive;                                /* false: never chosen */
	uint32_t queue_len;                        /* tasks waiting there (load report) */
	uint32_t slots;                            /* tasks it runs at once; >= 1 */
	uint64_t mean_task_ns;                     /* its measured mean task duration */
	uint64_t bandwidth;                        /* bytes/s its link takes in; >= 1 */
	uint64_t total_milli[SCHED_PLACE_MAX_RES]; /* what it has, in thousandths */
	uint64_t avail_milli[SCHED_PLACE_MAX_RES]; /* not held by running tasks, now */
};

/* The global scheduler's view of the cluster. */
struct sched_place_view {
	const struct sched_place_node *nodes; /* nnodes entries; may be NULL when nnodes 0 */
	uint32_t nnodes;
	uint32_t nres; /* resource entries in use, <= SCHED_PLACE_MAX_RES */
};

/* An input of a task: an object of `size` bytes and the nodes that hold a copy, as
 * indices into the view's nodes, strictly ascending (the order a location list sorted
 * once costs nothing to keep). */
struct sched_place_input {
	uint64_t size;
	const uint32_t *holders; /* nholders entries; may be NULL when nholders is 0 */
	uint32_t nholders;
};

/* What a task needs: resources (entries at and above the view's nres must be 0) and its
 * inputs. */
struct sched_place_task {
	uint64_t demand_milli[SCHED_PLACE_MAX_RES];
	const struct sched_place_input *inputs; /* ninputs entries; may be NULL when 0 */
	uint32_t ninputs;                       /* <= SCHED_PLACE_MAX_INPUTS */
};

/* The alive node where task t is expected to start first, among those whose total
 * resources can hold its demand; its index into v->nodes in *node and the expected start
 * in nanoseconds in *est_ns (est_ns may be NULL).
 *
 * Ties (equal estimates) go to the first node met counting from index start % nnodes
 * upwards and wrapping: start 0 gives the lowest index; a caller that passes a counter
 * it bumps on every call spreads equally good nodes round-robin instead of piling every
 * task of a stale view onto one.
 *
 * Returns 0; PRISM_E_INFEASIBLE when no alive node's totals fit the demand (including an
 * empty view), however busy the nodes are, so that the task can fail at once; -EINVAL
 * for a NULL v, t or node, nres or ninputs above the maximum, a NULL array with a
 * non-zero count, a demand for a resource at or above nres, a holder list that is not
 * strictly ascending or names an index outside the view, or an alive node with 0 slots
 * or 0 bandwidth. */
int sched_place_pick(const struct sched_place_view *v, const struct sched_place_task *t,
		     uint32_t start, uint32_t *node, uint64_t *est_ns);

/* Whether the local scheduler of `self` (its own, current state) keeps task t: true when
 * self is alive, fewer than queue_max tasks wait there (0: SCHED_PLACE_LOCAL_QUEUE_PER_SLOT
 * per slot), and every resource the task demands is available now.  False sends it to
 * the global scheduler; so does bad input (a NULL pointer, nres above the maximum, a
 * demand at or above nres), for sched_place_pick() to refuse with -EINVAL. */
bool sched_place_local_ok(const struct sched_place_node *self, uint32_t nres,
			  const struct sched_place_task *t, uint32_t queue_max);

#ifdef __cplusplus
}
#endif
#endif
