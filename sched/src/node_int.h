/* node_int.h — the node daemon's internals, shared by node.c (socket, attach, life),
 * pool.c (worker processes) and ctl.c (control messages, leases). */
#ifndef PRISM_SCHED_NODE_INT_H
#define PRISM_SCHED_NODE_INT_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/clock.h"
#include "base/loop.h"
#include "base/ring.h"
#include "base/shm.h"
#include "base/wire.h"
#include "objstore/objstore.h"
#include "sched/node.h"
#include "sched/proto.h"

struct transport_conn;
struct transport_event;

#define NODE_CONN_BUF 4096u
#define NODE_MAX_CODES SCHED_MAX_CLIENTS
/* Control messages handled per client per loop iteration: bounded so one chatty client
 * cannot starve the others (DESIGN.md section 5). */
#define NODE_CTL_BATCH 32u
/* A lease idle this long may be taken back for a waiting request: long enough that a
 * driver between two calls keeps its worker, short against a human's patience. */
#define NODE_LEASE_IDLE_NS (20 * PRISM_NS_PER_MS)

/* A socket connection: an attached client, or a CLI asking for status or a stop. */
struct conn {
	struct sched_node *node;
	int fd;
	prism_loop_io *io;
	int slot;                 /* the client it belongs to, or -1 */
	struct conn *prev, *next; /* the node's list of every connection */
	size_t len;
	uint8_t buf[NODE_CONN_BUF];
};

/* A program that workers run: a driver's executable, directory and environment. */
struct code {
	bool used;
	char *exe, *cwd;
	char *code_path;         /* libraries with remote functions, ':'-separated, or "" */
	char **env;              /* NULL-terminated, PRISM_* entries removed */
	char **argv;             /* the driver's command line, NULL-terminated */
	uint32_t drivers;        /* attached drivers running it */
	uint32_t workers;        /* worker processes alive (starting or attached) */
	uint32_t starting;       /* spawned, not attached yet */
	uint32_t start_failures; /* workers that died before attaching, in a row */
	uint64_t no_driver_since;
};

struct client_local {
	int kind; /* sched_client_kind, 0 when free */
	int code;
	struct conn *conn;
	prism_ring *up, *down;
	prism_loop_pid *pidw;
	pid_t pid;
	int lease;                     /* worker: the lease it serves, or -1 */
	bool blocked;                  /* worker: lent its CPU back while blocked in a get */
	int actor;                     /* worker: 1 + the actor it hosts, or 0 */
	bool doomed;                   /* worker: killed, not reaped yet: never reused */
	uint64_t idle_since;           /* worker: when it last had no lease */
	struct sched_ctl_msg *backlog; /* down messages the ring had no room for */
	uint32_t nbacklog, capbacklog;
};

struct lease_req {
	uint32_t client, gen;
	uint64_t req_id;
	uint64_t since;      /* when it came: a request kept waiting may go elsewhere */
	uint64_t next_spill; /* when to look for another node for it next */
	uint32_t shape;      /* the requester's number for it, echoed in the grant */
	uint64_t milli[SCHED_MAX_RES];
	uint64_t input_bytes; /* what the task that asked takes from this node's store */
};

struct sched_node {
	struct sched_node_opts o;
	char *socket_path;
	prism_shm *seg;
	void *base;
	struct sched_node_hdr *hdr;
	objstore *os; /* the daemon's handle: it never pins, only cleans up after clients */
	prism_loop *loop;
	int wake_fd;
	int listen_fd;
	prism_loop_io *listen_io;
	prism_loop_work *work;
	prism_loop_hook *sleep_hook;
	prism_loop_timer *tick;
	struct client_local cl[SCHED_MAX_CLIENTS];
	struct code codes[NODE_MAX_CODES];
	struct lease_req *reqs;
	uint32_t nreqs, capreqs;
	struct sched_res res[SCHED_MAX_RES]; /* copied into the header */
	uint32_t nres;
	/* Resources: totals in hdr->res; what leases hold now, and per lease. */
	uint64_t res_used[SCHED_MAX_RES];
	uint64_t lease_res[SCHED_MAX_LEASES][SCHED_MAX_RES];
	bool lease_chan[SCHED_MAX_LEASES]; /* an actor channel: never recalled when idle */
	/* A lease the node ends without its submitter (recalled idle, or its worker died:
	 * ctl.c): the worker's side ends at once, but the lease's rings are reused only once
	 * the submitter has acknowledged (LEASE_RETURN), so a submitter that has not yet
	 * read the news can never read or write the rings of the next grant. */
	bool lease_await[SCHED_MAX_LEASES];
	bool lease_wgone[SCHED_MAX_LEASES]; /* its worker released it (or died) */
	bool lease_acked[SCHED_MAX_LEASES]; /* await: its submitter let go (or died) */
	struct actor *actors;               /* NODE_MAX_ACTORS */
	struct actor_wait *waits;
	uint32_t nwaits, capwaits;
	struct actor_far *far; /* actors.c: creations, connects, kills across nodes */
	uint32_t nfar, capfar;
	uint64_t far_seq;
	uint64_t actors_created, actors_restarted, actor_deaths;
	cpu_set_t cpus; /* actors.c: the CPUs the node started with */
	bool cpus_known;
	uint64_t started_ns;
	uint64_t leases_granted, workers_spawned, workers_died;
	volatile int stop_requested;
	bool had_driver;
	struct node_cluster *cluster; /* cluster.c; NULL for a lone node */
	struct node_remote *remote;   /* remote.c; NULL for a lone node */
	struct conn *conns;           /* every socket connection, until freed */
	int fatal;                    /* why the node stopped on its own (sched_node_run) */
};

/* node.c */
void node__client_gone(struct sched_node *n, uint32_t slot, const char *why);
int node__attach_rings(struct sched_node *n, uint32_t slot);

/* cluster.c: the node's part in a cluster (GCS on the head, registration, heartbeats,
 * the view of every node).  start: 0 at once for a lone node. */
int cluster__start(struct sched_node *n);
void cluster__stop(struct sched_node *n);
bool cluster__joined(const struct sched_node *n);
void cluster__status(struct sched_node *n, char *buf, size_t len, size_t *off);
/* The link to node id at addr (made when there is none), or NULL. */
struct transport_conn *cluster__peer(struct sched_node *n, prism_id id, const char *addr);
/* Send one whole frame to a peer (copied as needed; queued until a new link is up). */
int cluster__send(struct sched_node *n, struct transport_conn *c, const void *frame,
		  size_t len);
/* Pull object id from node holder at addr into this node's store (objstore/xfer.h). */
int cluster__pull(struct sched_node *n, prism_id holder, const char *addr, prism_id id,
		  void (*cb)(void *arg, int status, prism_id id), void *arg);

/* The actor table (GCS_T_ACTOR): this node records an actor of its own (state: enum
 * gcs_actor_state); find: where an actor lives: cb(arg, status, c, node, state) with the
 * link to its node, or -ENOENT (not recorded, or this node's), PRISM_E_ACTOR_DIED (dead,
 * or its node is), or another code. */
void cluster__actor_put(struct sched_node *n, prism_id id, uint8_t state, uint32_t restarts,
			const char *name);
typedef void (*cluster_actor_cb)(void *arg, int status, struct transport_conn *c, prism_id node,
				 uint8_t state);
int cluster__actor_find(struct sched_node *n, prism_id id, cluster_actor_cb cb, void *arg);

/* Where a lease of milli (this node's resource indexes) may go instead: the alive node,
 * other than this one, where it is expected to start first, counting the time to move
 * input_bytes (held here) to it.  spill: this node could hold
 * it too and is in the running (PRISM_E_AGAIN when it is still the best).  Otherwise
 * PRISM_E_INFEASIBLE when no alive node's totals fit.  id and addr name the node. */
int cluster__place(struct sched_node *n, const uint64_t *milli, uint64_t input_bytes,
		   bool spill, prism_id *id, char *addr, size_t alen);

/* remote.c: leases on other nodes' workers.  Peer frame types, after cluster.c's and the
 * transfer's (objstore/xfer.h). */
enum {
	PEER_M_LEASE_REQ = 121,    /* A -> B.  req_id: link; resources by name, the code */
	PEER_M_LEASE_GRANT = 122,  /* B -> A.  req_id: link; u32 lease, gen, worker pid */
	PEER_M_LEASE_DENIED = 123, /* B -> A.  req_id: link; i32 code */
	PEER_M_TASK = 124,         /* A -> B.  u32 lease, gen; a task message, whole slots */
	PEER_M_DONE = 125,         /* B -> A.  req_id: link; a completion, whole slots */
	PEER_M_RETURN = 126,       /* A -> B.  u32 lease, gen, discard */
	PEER_M_LOST = 127,         /* B -> A.  req_id: link; i32 code: the worker died */
	PEER_M_FREE = 128,         /* A -> B.  16-byte id: a result A has pulled */
	PEER_M_RECALL = 129,       /* B -> A.  req_id: link: give it back if it is idle */
	/* Actors on other nodes (actors.c).  A: the caller's (or creator's) node; B: the
	 * actor's.  Ids are 16 raw bytes. */
	PEER_M_ACTOR_CREATE = 130,  /* A -> B.  req_id: link; id, class, flags, restarts,
				    * spin, name, constructor id, resources by name, code */
	PEER_M_ACTOR_OK = 131,      /* B -> A.  req_id: link: created (pending) */
	PEER_M_ACTOR_DENIED = 132,  /* B -> A.  req_id: link; i32 code: refused, or dead */
	PEER_M_ACTOR_CONNECT = 133, /* A -> B.  req_id: link; id: a channel, please */
	PEER_M_ACTOR_CHAN = 134,    /* B -> A.  req_id: the channel's link; u64 the asking
				     * link, u32 lease, gen, pid, flags (SCHED_CHAN_*), id */
	PEER_M_ACTOR_KILL = 135,    /* A -> B.  id */
};
/* A request this node could meet but has kept waiting this long looks for a node where
 * it starts sooner: long enough that a burst of short tasks stays here, short against a
 * task worth moving; looked at again every SPILL_RETRY_NS. */
#define NODE_SPILL_NS (5 * PRISM_NS_PER_MS)
#define NODE_SPILL_RETRY_NS (20 * PRISM_NS_PER_MS)
int remote__init(struct sched_node *n);
void remote__free(struct sched_node *n);
/* Send request rq to another node (its requester hears from there); 0 when sent. */
int remote__request(struct sched_node *n, const struct lease_req *rq, bool spill);
void remote__dispatch(struct sched_node *n, uint32_t *wanted);
/* Requests wait for resources here: ask the nodes holding idle leases here to give
 * them back (their submitters' busy flags are over there). */
void remote__reclaim(struct sched_node *n);
/* Look at the waiting requests again in ns (they may spill by then). */
void remote__arm_spill(struct sched_node *n, uint64_t ns);
size_t remote__drain(struct sched_node *n);
bool remote__pending(struct sched_node *n);
/* The program of a code and a resource vector (this node's indexes) on the wire, by
 * name, for another node; and read there: get_res fills milli (that node's indexes) or
 * says why not (PRISM_E_INFEASIBLE: a resource it lacks); take_code registers the code
 * (pool__code_remote: one user) or returns a negative code. */
void remote__put_code(prism_wire_writer *w, const struct code *code);
void remote__put_res(struct sched_node *n, prism_wire_writer *w, const uint64_t *milli);
int remote__get_res(struct sched_node *n, prism_wire_reader *rd, uint64_t *milli);
int remote__take_code(struct sched_node *n, prism_wire_reader *rd);
/* Send a frame of type with payload (at most SCHED_MSG_MAX bytes) to a peer. */
int remote__send(struct sched_node *n, struct transport_conn *c, uint16_t type, uint64_t req_id,
		 const void *payload, size_t len);
/* B: a channel hosted for a caller on node `from` (over c) to worker: the lease (its
 * rings formatted, not assigned to the worker yet) or a negative code; *link names it on
 * the link. */
int remote__chan_host(struct sched_node *n, struct transport_conn *c, prism_id from,
		      uint32_t worker, uint64_t *link);
/* A: a lease for client proxying lease bl/bg of node `from` (over c, named link), an
 * actor channel: the lease or a negative code (B is then told to let its own go). */
int remote__chan_proxy(struct sched_node *n, struct transport_conn *c, prism_id from,
		       uint64_t link, uint32_t bl, uint32_t bg, uint32_t client);
/* Proxy lease l (worker on another node) given back by its submitter, or left. */
void remote__revoke(struct sched_node *n, uint32_t l, bool discard);
/* Hosted lease l (submitter on another node): its worker died; it is being freed. */
void remote__hosted_lost(struct sched_node *n, uint32_t l, int code);
void remote__hosted_freed(struct sched_node *n, uint32_t l);
void remote__on_msg(struct sched_node *n, struct transport_conn *c, prism_id from,
		    const prism_wire_hdr *h, const uint8_t *p);
void remote__peer_gone(struct sched_node *n, struct transport_conn *c);
void remote__status(struct sched_node *n, char *buf, size_t len, size_t *off);

/* pool.c */
int pool__spawn(struct sched_node *n, int code);
void pool__ensure(struct sched_node *n, int code);
void pool__reap_idle(struct sched_node *n);
int pool__code_for(struct sched_node *n, pid_t driver_pid, const char *exe, const char *cwd,
		   const char *code_path);
void pool__code_release(struct sched_node *n, int code);
/* The program another node's requester runs (the same paths on every node), counted as
 * one user until pool__code_release().  Takes argv and env (NULL-terminated). */
int pool__code_remote(struct sched_node *n, const char *exe, const char *cwd,
		      const char *code_path, char **argv, char **env);
void pool__free_codes(struct sched_node *n);
bool pool__can_start(struct sched_node *n, int code, bool for_actor);
/* Worker processes of all programs at most: the client table keeps room for drivers. */
#define POOL_MAX_WORKERS (SCHED_MAX_CLIENTS - 8)
/* Workers beyond max_workers (started for tasks blocked in nested gets) that had no
 * lease this long are stopped: long enough that a program's next tree of nested calls
 * finds them, short enough that a burst does not keep them for good. */
#define POOL_SURPLUS_IDLE_NS (10 * PRISM_NS_PER_SEC)
void pool__reap_surplus(struct sched_node *n);
bool pool__broken(struct sched_node *n, int code);

/* actors.c */
#define NODE_MAX_ACTORS 64u
int actors__init(struct sched_node *n);
void actors__free(struct sched_node *n);
/* Bind pending actors to idle workers; counts into wanted[code] the workers still
 * needed. */
void actors__dispatch(struct sched_node *n, uint32_t *wanted);
/* A client left: actors it owned end, the actor it hosted restarts or ends. */
void actors__client_gone(struct sched_node *n, uint32_t slot);
void actors__status(struct sched_node *n, char *buf, size_t len, size_t *off);
void actors__on_create(struct sched_node *n, uint32_t slot, const struct sched_ctl_msg *m);
void actors__on_connect(struct sched_node *n, uint32_t slot, const struct sched_ctl_msg *m);
void actors__on_kill(struct sched_node *n, uint32_t slot, const struct sched_ctl_msg *m);
void actors__on_lookup(struct sched_node *n, uint32_t slot, const struct sched_ctl_msg *m);
void actors__on_checkpoint(struct sched_node *n, uint32_t slot, const struct sched_ctl_msg *m);
/* Frames PEER_M_ACTOR_* from a peer; the link to a peer closed. */
void actors__on_peer(struct sched_node *n, struct transport_conn *c, prism_id from,
		     const prism_wire_hdr *h, const uint8_t *p);
void actors__peer_gone(struct sched_node *n, struct transport_conn *c);
/* Every node tick: look again for actors the GCS did not know yet. */
void actors__tick(struct sched_node *n);
/* Keep client slot (a worker that hosts no real-time actor, or a driver's main thread
 * unless it runs SCHED_FIFO/RR) off the CPUs real-time actors spin on. */
void actors__fence_client(struct sched_node *n, uint32_t slot);

/* ctl.c */
void ctl__msg_init(struct sched_ctl_msg *m, uint16_t type);
/* Format lease l's rings between client and worker and mark it granted (holding milli,
 * or nothing for NULL).  Returns the lease or a negative code. */
int ctl__lease_open(struct sched_node *n, uint32_t client, uint32_t worker,
		    const uint64_t *milli, bool chan);
int ctl__idle_worker(struct sched_node *n, int code);
void *ctl__bell(struct sched_node *n, uint32_t slot);
/* Free lease l now (its far end is gone or was told). */
void ctl__lease_close(struct sched_node *n, uint32_t l);
/* Lease l's worker is gone (code: why): its submitter is told (LEASE_LOST) and the lease
 * is free once it has acknowledged. */
void ctl__lease_lost(struct sched_node *n, uint32_t l, int code);
/* Lease l was taken back (its state RETURNING, its submitter told): the worker's side
 * ends now, the lease is free once the submitter has acknowledged. */
void ctl__lease_recalled(struct sched_node *n, uint32_t l);
/* Tell lease l's worker to drain and let it go (discard: drop what is queued). */
void ctl__lease_return(struct sched_node *n, uint32_t l, bool discard);
void ctl__deny(struct sched_node *n, const struct lease_req *rq, int code);
/* Put rq back in the queue of requests waiting here. */
int ctl__requeue(struct sched_node *n, const struct lease_req *rq);
bool ctl__res_fit(const struct sched_node *n, const uint64_t *milli);
size_t ctl__drain(prism_loop *loop, void *arg);
void ctl__before_sleep(prism_loop *loop, void *arg);
int ctl__send(struct sched_node *n, uint32_t slot, const struct sched_ctl_msg *m);
void ctl__flush_backlogs(struct sched_node *n);
void ctl__dispatch(struct sched_node *n);
void ctl__client_gone(struct sched_node *n, uint32_t slot);
void ctl__status_leases(struct sched_node *n, char *buf, size_t len, size_t *off);

static inline struct sched_client *node__client(struct sched_node *n, uint32_t slot)
{
	return sched_client_at(n->base, slot);
}

#endif
