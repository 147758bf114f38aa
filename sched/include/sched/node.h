/* sched/node.h — the node daemon: the loop at the heart of prismd.
 *
 * A node owns one shared-memory segment (sched/proto.h), listens on a Unix socket for
 * clients to attach, keeps a pool of worker processes per program, grants leases (a
 * worker and a pair of rings) to clients that ask, and cleans up after clients and
 * workers that die.  It is deliberately not on the per-task path: once a client holds
 * a lease it pushes tasks straight into the worker's ring.
 *
 * The loop runs the phases of base/loop.h; the node adds a work source that drains
 * every client's up ring (bounded per client per iteration), a before-sleep hook that
 * arms the daemon's doorbell, and timers for housekeeping.
 *
 * Ownership: sched_node_create() copies what it needs from the options; the node owns
 * its segment, socket, loop and worker processes, and sched_node_destroy() ends them all
 * (workers get SIGKILL).  Thread safety: a node belongs to the thread that created it;
 * only sched_node_stop() may be called from another thread or a signal handler.
 * Errors: negative codes (base/error.h).
 */
#ifndef PRISM_SCHED_NODE_H
#define PRISM_SCHED_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/api.h"
#include "sched/proto.h"
#include "transport/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sched_node sched_node;

struct sched_node_opts {
	/* Unix socket to listen on (required).  Its directory must exist. */
	const char *socket_path;
	/* Object store arena in bytes; 0 = 256 MiB. */
	uint64_t objstore_bytes;
	/* Workers started per program ahead of need (the first driver's attach starts
	 * them); 0 = one per CPU. */
	uint32_t num_workers;
	/* Most workers per program (more start when tasks block in nested gets); 0 = 4 per
	 * CPU, at most what the client table holds. */
	uint32_t max_workers;
	/* CPUs the node offers to tasks; 0 = the CPUs this process may run on. */
	uint32_t ncpus;
	/* GPUs the node offers (prism does not drive them: a task that asks for one is only
	 * placed where one is free). */
	uint32_t num_gpus;
	/* Custom resources, "name=amount,...", e.g. "camera=1,memory_gb=16"; NULL = none.
	 * "CPU" and "GPU" here override ncpus and num_gpus. */
	const char *resources;
	/* Spin budget handed to workers (PRISM_SPIN_NS); 0 = 50 us. */
	uint64_t spin_ns;
	/* Results up to this size travel inline; 0 = 64 KiB. */
	uint32_t inline_max;
	/* Stop once the last driver detaches (the embedded node of prism_init()). */
	bool exit_when_no_drivers;
	/* Idle workers of a program no driver uses are stopped after this long;
	 * 0 = 60 s. */
	uint64_t idle_worker_ns;

	/* ---- the cluster (neither head nor cluster_address: a lone node) ---- */
	/* The head: serve the GCS (a one-replica chain and its master) in this loop; other
	 * nodes join at port. */
	bool head;
	uint16_t port;
	/* Join the cluster whose head's GCS is at "HOST:PORT". */
	const char *cluster_address;
	/* The IP peers reach this node at; NULL: the local address of the route to the head
	 * (127.0.0.1 on the head unless given). */
	const char *node_ip;
	uint8_t token[TRANSPORT_TOKEN_BYTES]; /* the cluster token */
	enum transport_backend transport;     /* between nodes (0: $PRISM_TRANSPORT, tcp) */
	uint64_t node_timeout_ns;             /* a node silent this long is dead; 0: 3 s */
	const char *gcs_wal; /* the head: the GCS's log (snapshots beside it); NULL: memory */
};

int sched_node_create(const struct sched_node_opts *opts, sched_node **out);
/* Run until sched_node_stop() or, with exit_when_no_drivers, the last driver leaves.
 * Returns 0, or a negative code: a loop failure, or why the node stopped on its own (it
 * could not join its cluster: PRISM_E_AUTH for a wrong token, ...). */
int sched_node_run(sched_node *node);
/* Ask the node to stop; safe from any thread and from signal handlers. */
void sched_node_stop(sched_node *node);
/* Kill the workers, remove the socket, unmap.  NULL-safe. */
void sched_node_destroy(sched_node *node);

/* $TMPDIR/prism-UID (or /tmp/prism-UID), created 0700 if missing; -EACCES when it
 * exists but belongs to someone else. */
int sched_socket_dir(char *dir, size_t len);
/* The socket `prism start` uses unless told otherwise: <socket dir>/node.sock. */
int sched_default_socket(char *path, size_t len);

/* Whether a variable of an inherited environment passes to a process prism starts (the
 * embedded node, a worker): every PRISM_* variable is that process's own to set, except
 * PRISM_LOG*, which follows the user. */
bool sched_env_inherited(const char *var);

/* ---- resources (resources.c) ---- */

#define SCHED_RES_MAX_AMOUNT 1000000.0
/* Start a table with CPU and GPU. */
void sched_res_defaults(struct sched_res *res, uint32_t *nres, uint32_t ncpus, uint32_t ngpus);
/* Add or override entries from a "name=amount,..." spec.  On error a message naming the
 * bad entry goes to err; -EINVAL, -ERANGE, -ENAMETOOLONG, -ENOSPC. */
int sched_res_parse(const char *spec, struct sched_res *res, uint32_t *nres, char *err,
		    size_t errlen);
/* Index of the resource called name[0..len), or -1. */
int sched_res_find(const struct sched_res *res, uint32_t nres, const char *name, size_t len);
/* amount in thousandths; -ERANGE when negative, NaN or above SCHED_RES_MAX_AMOUNT. */
int sched_res_amount_milli(double amount, uint64_t *milli);

/* The status report `prism status` prints, into buf (always NUL-terminated). */
void sched_node_status(sched_node *node, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
