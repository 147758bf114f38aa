/* sched/proto.h — what the node daemon and its clients share: the node segment's layout,
 * the attach protocol on the daemon's Unix socket, and the messages on the rings.
 *
 * The node segment (one memfd per node, created by prismd, mapped by every client):
 *
 *   [0, 4096)            struct sched_node_hdr: sizes, offsets, node-wide counters
 *   clients_off          struct sched_client[max_clients]: one control block per
 *                        attached process (driver or worker), with its doorbell
 *   ctl_off              per client, two control rings: up (client -> daemon) and down
 *                        (daemon -> client), SCHED_CTL_SLOTS slots of 64 bytes
 *   leases_off           struct sched_lease[max_leases]: who holds each lease
 *   lease_rings_off      per lease, two rings: spec (submitter -> worker) and done
 *                        (worker -> submitter), SCHED_LEASE_SLOTS slots of 64 bytes
 *   objstore_off         the object store region (objstore/)
 *
 * Every ring carries messages of one or more 64-byte slots, sent and taken whole (bulk);
 * each message starts with struct sched_msg.  Rings a process consumes share that
 * process's doorbell (struct sched_client.bell): the down ring and the rings of every
 * lease it holds, so one futex wait covers them all.  The daemon's own doorbell
 * (hdr.daemon_bell) covers every up ring and is rung through its eventfd, since the
 * daemon sleeps in io_uring.
 *
 * Everything in the segment is offsets, checked against the segment size on attach; a
 * peer can corrupt the segment (all processes are the same user, so this is about bugs,
 * not attacks) and the daemon must not crash on it.  Thread safety: each ring has one
 * producer and one consumer process; fields of sched_client and sched_lease are written
 * by the daemon only, except those marked "client".
 */
#ifndef PRISM_SCHED_PROTO_H
#define PRISM_SCHED_PROTO_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/api.h"
#include "base/id.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SCHED_SEG_MAGIC 0x444d5350u /* "PSMD" */
#define SCHED_SEG_VERSION 3u

#define SCHED_SLOT 64u
/* 255 slots of control messages each way: a control message is one or two slots, and the
 * daemon drains every up ring each loop iteration. */
#define SCHED_CTL_SLOTS 255u
/* 2047 slots (128 KiB) per lease ring: room for a 64 KiB inline argument or result (1,025
 * slots) plus a deep pipeline of small tasks. */
#define SCHED_LEASE_SLOTS 2047u
/* Most processes attached at once (drivers, workers, nested submitters). */
#define SCHED_MAX_CLIENTS 64u
#define SCHED_MAX_LEASES 64u
/* The daemon's own slot in the object store (it holds actors' checkpoints there); no
 * client gets it. */
#define SCHED_DAEMON_SLOT (SCHED_MAX_CLIENTS - 1)
/* Resources a node offers: CPU and GPU always (index 0 and 1), then custom names.
 * Amounts are kept in thousandths, so fractional requests (0.5 CPU) add up exactly. */
#define SCHED_MAX_RES 8u
#define SCHED_RES_CPU 0u
#define SCHED_RES_GPU 1u
#define SCHED_RES_NAME 32u
/* Largest single message: what a lease ring can hold, less one slot of slack. */
#define SCHED_MSG_MAX ((SCHED_LEASE_SLOTS - 1) * SCHED_SLOT)

/* ---- The node segment ------------------------------------------------------------ */

enum sched_client_state {
	SCHED_CLIENT_FREE = 0,
	SCHED_CLIENT_RESERVED = 1, /* a worker slot set aside before its process attaches */
	SCHED_CLIENT_ATTACHED = 2,
	SCHED_CLIENT_DEAD = 3, /* its process died; the daemon is cleaning up */
};

enum sched_client_kind {
	SCHED_KIND_DRIVER = 1,
	SCHED_KIND_WORKER = 2,
};

struct sched_client {
	/* The doorbell every ring this client consumes shares (PRISM_DOORBELL_SIZE). */
	uint8_t bell[64];
	_Atomic uint32_t state;
	uint32_t kind;
	uint32_t generation; /* bumped each time the slot is reused */
	int32_t pid;
	uint32_t job; /* the driver slot whose code this process runs */
	uint32_t pad0_;
	uint64_t tasks_run;    /* client: tasks this worker finished */
	uint64_t tasks_failed; /* client */
	/* client: calls with a deadline this process started or dropped, those that started
	 * after their deadline, and those dropped as stale (SCHED_TASK_DROP_LATE).  Never
	 * reset when the slot is reused, so their sum over all slots is the node's count. */
	uint64_t deadline_calls;
	uint64_t deadline_late;
	uint64_t deadline_dropped;
};
_Static_assert(sizeof(struct sched_client) == 128, "two cache lines: doorbells stay aligned");

enum sched_lease_state {
	SCHED_LEASE_FREE = 0,
	SCHED_LEASE_GRANTED = 1,  /* rings formatted; submitter and worker told */
	SCHED_LEASE_RETURNING = 2 /* submitter gave it back; the worker drains and releases */
};

/* Reclaiming idle leases.  A driver busy in its own code does not poll, so it cannot
 * hand back a lease it no longer uses; the daemon takes it back instead, when other
 * requests wait and the lease has had nothing in flight for a while.  The submitter
 * publishes `busy` on every idle <-> busy transition (not per task), and before it
 * pushes into an idle lease it sets busy, then reads state.  The daemon sets state to
 * RETURNING, then reads busy, and backs off if it is set.  With both orders sequentially
 * consistent, at least one side sees the other: a task is never pushed into a lease
 * being revoked. */
struct sched_lease {
	_Atomic uint32_t state;
	uint32_t generation;
	uint32_t submitter; /* client slot */
	uint32_t worker;    /* client slot */
	uint32_t shape;     /* the submitter's own number for the resource shape it asked for */
	uint32_t pad1_;
	_Atomic uint32_t busy; /* client: tasks in flight (0 or 1) */
	uint32_t pad0_;
	_Atomic uint64_t idle_since_ns; /* client: when busy last went to 0 */
	uint8_t pad_[24];
};
_Static_assert(sizeof(struct sched_lease) == 64, "one cache line per lease");

struct sched_node_hdr {
	uint32_t magic;
	uint32_t version;
	uint64_t seg_size;
	uint32_t max_clients;
	uint32_t max_leases;
	uint32_t ctl_slots;
	uint32_t lease_slots;
	uint64_t clients_off;
	uint64_t ctl_off;
	uint64_t ctl_ring_bytes; /* one control ring, 64-byte aligned */
	uint64_t leases_off;
	uint64_t lease_rings_off;
	uint64_t lease_ring_bytes; /* one lease ring */
	uint64_t objstore_off;
	uint64_t objstore_size;
	uint32_t inline_max; /* results up to this size travel inline (bytes) */
	uint32_t ncpus;
	int32_t daemon_pid;
	/* Resources in res[], CPU and GPU included.  Entries are fixed when the node starts;
	 * a node in a cluster appends, with a total of 0, the names other nodes have (so its
	 * clients may ask for them): read it with acquire, then the entries below it. */
	uint32_t nres;
	uint32_t flags; /* SCHED_HDR_* */
	uint32_t pad_;
	struct sched_res {
		char name[SCHED_RES_NAME];
		uint64_t total_milli;
		/* The most of it any alive node has: total_milli on a lone node; in a
		 * cluster, as of the daemon's last view of every node. */
		uint64_t max_milli;
	} res[SCHED_MAX_RES];
	/* doorbell of every up ring, on its own cache line */
	uint8_t daemon_bell[64] __attribute__((aligned(64)));
};
_Static_assert(offsetof(struct sched_node_hdr, daemon_bell) % 64 == 0,
	       "the daemon's doorbell is cache-line aligned");

enum sched_hdr_flags {
	/* The node is part of a cluster: a resource it lacks may be another node's, so
	 * clients leave such requests to the daemon, which sends them on or refuses them
	 * (PRISM_E_INFEASIBLE) when no node has enough. */
	SCHED_HDR_CLUSTER = 1,
};

/* Where each part of the segment is; computed by the daemon, checked by clients. */
struct sched_layout {
	uint64_t clients_off, ctl_off, ctl_ring_bytes, leases_off, lease_rings_off,
		lease_ring_bytes, objstore_off, objstore_size, seg_size;
};

/* Compute the layout for an object store region of objstore_size bytes.  -EINVAL when
 * the sizes overflow. */
int sched_layout_compute(uint64_t objstore_size, struct sched_layout *l);

/* Validate a header read from a segment of seg_size bytes (a client's first act after
 * mapping it).  PRISM_E_BAD_MAGIC, PRISM_E_BAD_VERSION, PRISM_E_CORRUPT. */
int sched_hdr_check(const struct sched_node_hdr *h, uint64_t seg_size);

static inline void *sched_seg_at(void *seg, uint64_t off)
{
	return (char *)seg + off;
}
static inline struct sched_client *sched_client_at(void *seg, uint32_t slot)
{
	struct sched_node_hdr *h = (struct sched_node_hdr *)seg;
	return (struct sched_client *)sched_seg_at(seg, h->clients_off) + slot;
}
static inline struct sched_lease *sched_lease_at(void *seg, uint32_t lease)
{
	struct sched_node_hdr *h = (struct sched_node_hdr *)seg;
	return (struct sched_lease *)sched_seg_at(seg, h->leases_off) + lease;
}
/* dir 0: up (client -> daemon), 1: down (daemon -> client). */
static inline void *sched_ctl_ring_at(void *seg, uint32_t slot, int dir)
{
	struct sched_node_hdr *h = (struct sched_node_hdr *)seg;
	return sched_seg_at(seg, h->ctl_off + (2 * (uint64_t)slot + (uint64_t)dir) *
						      h->ctl_ring_bytes);
}
/* dir 0: spec (submitter -> worker), 1: done (worker -> submitter). */
static inline void *sched_lease_ring_at(void *seg, uint32_t lease, int dir)
{
	struct sched_node_hdr *h = (struct sched_node_hdr *)seg;
	return sched_seg_at(seg, h->lease_rings_off + (2 * (uint64_t)lease + (uint64_t)dir) *
							      h->lease_ring_bytes);
}

/* ---- The attach protocol on the daemon's Unix socket (base/wire.h frames) ----------
 *
 * client -> daemon  ATTACH {u32 kind, i32 pid, u32 worker slot or UINT32_MAX,
 *                           u32 worker generation, str exe path (drivers), str cwd}
 * daemon -> client  ATTACH_OK {u32 slot, u32 generation, u64 seg size} with the segment
 *                   fd (SCM_RIGHTS), then ATTACH_FD with the daemon's eventfd
 *                or ERROR {i32 code, str message}, then close
 * any   -> daemon   STATUS {} -> STATUS_REPLY {str text}
 * any   -> daemon   STOP {} -> STOP_OK {}, then the daemon shuts down
 * The peer's uid (SO_PEERCRED) must equal the daemon's, or the daemon answers ERROR
 * (-EACCES) and closes before reading anything else.  The attached client keeps the
 * socket open: its closing is how the daemon learns that a driver went away. */
enum sched_wire_type {
	SCHED_W_ATTACH = 1,
	SCHED_W_ATTACH_OK = 2,
	SCHED_W_ATTACH_FD = 3,
	SCHED_W_ERROR = 4,
	SCHED_W_STATUS = 5,
	SCHED_W_STATUS_REPLY = 6,
	SCHED_W_STOP = 7,
	SCHED_W_STOP_OK = 8,
};
#define SCHED_WIRE_MAX_PAYLOAD (64u * 1024)

/* ---- Ring messages ----------------------------------------------------------------- */

enum sched_msg_type {
	/* control, client -> daemon */
	SCHED_M_LEASE_REQ = 1,      /* struct sched_lease_req_msg */
	SCHED_M_LEASE_RETURN = 2,   /* {lease, generation} */
	SCHED_M_LEASE_RELEASED = 3, /* worker: {lease}: drained, detached */
	SCHED_M_BLOCKED = 4,        /* worker: blocked in get, lend my CPU back */
	SCHED_M_UNBLOCKED = 5,
	/* control, daemon -> client */
	SCHED_M_LEASE_GRANT = 20,    /* {lease, worker slot, generation, shape} */
	SCHED_M_LEASE_DENIED = 21,   /* {code}: infeasible shape */
	SCHED_M_LEASE_ASSIGN = 22,   /* to worker: {lease, submitter slot, generation} */
	SCHED_M_LEASE_REVOKE = 23,   /* to worker: drain, detach, answer RELEASED */
	SCHED_M_LEASE_LOST = 24,     /* to submitter: {lease, code}: the worker died */
	SCHED_M_SHUTDOWN = 25,       /* the daemon is stopping */
	SCHED_M_LEASE_RECALLED = 26, /* to submitter: {lease}: idle, taken back */
	/* actors (sched/src/actors.c explains the life of one) */
	SCHED_M_ACTOR_CREATE = 6,      /* struct sched_actor_msg */
	SCHED_M_ACTOR_CONNECT = 7,     /* {tail: actor id}: a channel to it, please */
	SCHED_M_ACTOR_KILL = 8,        /* {tail: actor id} */
	SCHED_M_ACTOR_LOOKUP = 9,      /* struct sched_actor_msg, name only */
	SCHED_M_ACTOR_CHECKPOINT = 10, /* host: {actor, e: seq, tail: object id} */
	SCHED_M_ACTOR_CHANNEL = 27,    /* to caller: {lease, worker, generation, code: pid,
				       * e: SCHED_CHAN_*, tail: actor id} */
	SCHED_M_ACTOR_DENIED = 28,     /* to caller: {code, tail: actor id} */
	SCHED_M_ACTOR_OK = 29,   /* create accepted, or lookup answer: {e: class, tail: id} */
	SCHED_M_ACTOR_HOST = 30, /* to worker: {actor, code: CPU to pin to or -1,
				       * b: flags (SCHED_ACTOR_*), c: real-time spin in us
				       * (0: forever), tail: checkpoint id} */
	/* lease rings */
	SCHED_M_TASK = 40,
	SCHED_M_DONE = 41,
};

/* Every message starts with this.  len: bytes in the whole message (header included);
 * nslots = ceil(len / 64); the message occupies nslots consecutive slots. */
struct sched_msg {
	uint32_t len;
	uint16_t type;
	uint16_t nslots;
	uint64_t req_id;
};

struct sched_ctl_msg {
	struct sched_msg h;
	uint32_t a, b, c, d; /* meaning per type, named in the enum above */
	int32_t code;
	uint32_t pad_;
	uint64_t e;
	uint8_t tail_[16];
};
_Static_assert(sizeof(struct sched_ctl_msg) == SCHED_SLOT, "control messages fill one slot");

enum sched_actor_flags {
	SCHED_ACTOR_REALTIME = 1,    /* a dedicated worker that spins, pinned, locked */
	SCHED_ACTOR_RT_LET_IDLE = 2, /* real time: no keeper on its CPU while it sleeps */
};

enum sched_chan_flags {
	SCHED_CHAN_OWNER = 1,   /* the creator's channel: the constructor is in it first */
	SCHED_CHAN_RESTART = 2, /* the actor was restarted on a new worker */
};

/* Creating an actor (the creator, who owns it: the actor ends when its owner does), or
 * looking one up by name (only name is read). */
struct sched_actor_msg {
	struct sched_msg h;
	prism_id actor;
	uint64_t cls; /* sched_fn_hash() of the class name */
	uint32_t milli[SCHED_MAX_RES];
	int32_t max_restarts; /* -1: without limit */
	uint32_t flags;       /* SCHED_ACTOR_* */
	char name[64];        /* "" or a node-wide unique name */
	/* A store object, given to the daemon's slot, holding the constructor's task
	 * message: the daemon puts it first into the owner's channel each time it binds
	 * the actor to a worker, so neither creation nor a restart waits for the owner. */
	prism_id ctor;
	uint32_t
		rt_spin_us; /* a real-time actor: spin after each call, then sleep; 0: forever */
	uint8_t pad_[28];   /* whole slots: a message is sent as whole 64-byte slots */
};
_Static_assert(sizeof(struct sched_actor_msg) % SCHED_SLOT == 0, "whole slots");

/* A lease request: the amount of each node resource (index as in hdr.res) and the
 * requester's number for the shape, which the grant echoes. */
struct sched_lease_req_msg {
	struct sched_msg h;
	uint32_t milli[SCHED_MAX_RES];
	uint32_t shape;
	uint8_t pad_[4];
	/* Bytes of the store objects the task that asked takes as arguments (all in this
	 * node's store): what another node would have to pull before it starts. */
	uint64_t input_bytes;
};
_Static_assert(sizeof(struct sched_lease_req_msg) == SCHED_SLOT, "one slot");

/* A task.  Followed by nargs arguments, each a sched_arg and its bytes, 8-byte aligned. */
struct sched_task_msg {
	struct sched_msg h;
	prism_id task;
	uint64_t fn;       /* sched_fn_hash() of the function's name */
	uint64_t deadline; /* absolute CLOCK_MONOTONIC ns, 0 = none */
	uint16_t nargs;
	uint8_t nreturns;
	uint8_t flags;    /* SCHED_TASK_* */
	uint32_t attempt; /* low 16 bits: attempts so far; high 16: retries allowed; for a
			   * constructor, the calls between checkpoints (0: none) */
	uint32_t shape;   /* the submitter's resource shape (a method: the submitter's actor
			   * number): which leases may carry it */
	uint32_t pad_;
};

enum sched_task_flags {
	SCHED_TASK_METHOD = 1,    /* fn: sched_fn_hash("Class.method") */
	SCHED_TASK_CTOR = 2,      /* fn: the class; builds the actor's state (or restores it) */
	SCHED_TASK_DROP_LATE = 4, /* not run when it would start after its deadline */
};

enum sched_arg_kind {
	SCHED_ARG_INLINE = 1, /* the bytes follow */
	SCHED_ARG_STORE = 2,  /* a store object: 16-byte id follows; len is its size */
};

struct sched_arg {
	uint32_t len;
	uint8_t kind;
	uint8_t temp;   /* task message: made for this call alone (the submitter's note) */
	uint16_t nrefs; /* completion: refs the result contains (sched_contained entries) */
};

/* A ref inside a result (prism_return_with_refs): the ref's id, and the store object
 * holding its value, on which the completion carries one pin for the submitter (handed
 * over with objstore_give).  The refs a contained value contains in turn follow it, each
 * naming the entry that holds it (parent: its index among the result's entries, or
 * SCHED_CONTAINED_TOP for the result itself), so a box of boxes arrives whole. */
#define SCHED_CONTAINED_TOP UINT32_MAX
/* Entries per result, the refs inside refs included. */
#define SCHED_CONTAINED_MAX 4096u
struct sched_contained {
	prism_id ref;
	prism_id sid;
	uint32_t parent;
	uint32_t pad_;
};

/* A task's completion.  status 0: nreturns results follow, each a sched_arg (kind
 * INLINE or STORE), its bytes (8-byte aligned) and its nrefs sched_contained entries.
 * status < 0: the task failed; one INLINE result holds the message "function: text". */
struct sched_done_msg {
	struct sched_msg h;
	prism_id task;
	int32_t status;
	uint8_t nreturns;
	uint8_t pad_[3];
	uint64_t run_ns; /* time the function ran */
};

static inline uint32_t sched_msg_slots(uint32_t len)
{
	return (len + SCHED_SLOT - 1) / SCHED_SLOT;
}
static inline uint32_t sched_align8(uint32_t n)
{
	return (n + 7u) & ~7u;
}

/* FNV-1a of the name: the key a worker finds a function by. */
/* FNV-1a of more bytes, continuing from h: sched_fn_hash("A.m") is
 * sched_fn_hash_more(sched_fn_hash("A"), ".m"), so a method's key follows from its
 * class's without the class name. */
static inline uint64_t sched_fn_hash_more(uint64_t h, const char *more)
{
	for (; *more; more++)
		h = (h ^ (uint8_t)*more) * 0x100000001b3ull;
	return h;
}
static inline uint64_t sched_fn_hash(const char *name)
{
	return sched_fn_hash_more(0xcbf29ce484222325ull, name);
}

typedef struct prism_ring prism_ring;

/* Send one message (msg->len bytes, in a buffer of at least nslots * 64 bytes) whole.
 * -EINVAL for a malformed header, PRISM_E_FULL when the ring lacks room right now. */
int sched_msg_send(prism_ring *r, const struct sched_msg *msg);
/* Take one whole message into buf (cap bytes, a multiple of 64).  Returns its length,
 * 0 when the ring is empty, PRISM_E_CORRUPT when the header is impossible (the ring is
 * then unusable), PRISM_E_TOO_BIG when the message exceeds cap (the message is dropped
 * so the ring stays usable). */
int sched_msg_recv(prism_ring *r, void *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
