/* rdev.h — the RDMA device layer under the verbs and softverbs backends (internal).
 *
 * The rc protocol (rc.c) turns reliable-connected queue pairs into the transport
 * interface: messages as SENDs into receive buffers it posts, with credits so a receive
 * is always posted; messages above its eager size by rendezvous (the receiver READs
 * them); one-sided READ and WRITE as they are; the authentication proof over the first
 * SENDs.  It runs on a device given as this table: verbs.c drives a real NIC through
 * rdma-core, softverbs.c emulates one over TCP sockets, so every line of rc.c runs in CI.
 *
 * The semantics are those of an RC queue pair, narrowed to what rc.c uses:
 * - Work requests on one QP execute and complete in the order posted; a request posted
 *   unsignalled produces no completion unless it fails.
 * - A SEND consumes the oldest receive posted on the peer's QP; a SEND without one is a
 *   fatal error of the QP (rc.c's credits prevent it).
 * - READ and WRITE are checked by the responder against its regions: an unknown rkey, a
 *   region without the right, or a range outside the region fail with
 *   PRISM_E_BAD_KEY / PRISM_E_OUT_OF_BOUNDS (a real NIC reports both as remote access
 *   errors; verbs.c maps that to PRISM_E_BAD_KEY).
 * - The first failure moves the QP to the error state: the failed request completes with
 *   its error, every later one (and every posted receive) with PRISM_E_FLUSHED, and an
 *   RDEV_EV_DOWN event follows.  A broken link does the same with PRISM_E_PEER_GONE.
 * - A QP grants remote READ/WRITE only after rdev_ops.grant(): rc.c calls it once the
 *   peer proved it holds the cluster token.
 *
 * Ownership: the device owns its QPs and regions; rc.c names them by handle.  A QP is
 * freed by destroy_qp(), which may be called once its RDEV_EV_DOWN was seen or at any time
 * to abort (no further events name it).  Single-threaded, like the transport.
 */
#ifndef PRISM_TRANSPORT_RDEV_H
#define PRISM_TRANSPORT_RDEV_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport_int.h"

typedef struct rdev rdev;
typedef struct rdev_qp rdev_qp;

enum rdev_op { RDEV_SEND = 1, RDEV_WRITE = 2, RDEV_READ = 3, RDEV_RECV = 4 };

/* One work request.  local/len/lkey: the local buffer (for SEND with inline set, any
 * memory: it is copied at post).  remote_addr/rkey: the peer's memory for READ/WRITE. */
typedef struct rdev_wr {
	enum rdev_op op;
	uint64_t wr_id;
	void *local;
	uint32_t len;
	uint32_t lkey;
	uint64_t remote_addr;
	uint32_t rkey;
	bool signaled;
	bool inline_data;
} rdev_wr;

enum rdev_event_kind {
	RDEV_EV_WC = 1,        /* a work completion: op, wr_id, status, byte_len (RECV) */
	RDEV_EV_ACCEPTED = 2,  /* a peer connected to our listener: qp is new, connected */
	RDEV_EV_CONNECTED = 3, /* our connect() finished: qp */
	RDEV_EV_DOWN = 4,      /* the qp is in error or disconnected (status why); after its
				* flushed completions */
};

typedef struct rdev_event {
	enum rdev_event_kind kind;
	rdev_qp *qp;
	void *qp_ctx;      /* the context given to connect() or set by set_ctx() */
	enum rdev_op op;   /* WC */
	uint64_t wr_id;    /* WC */
	int status;        /* WC, DOWN, CONNECTED (< 0: the connect failed; qp is dead) */
	uint32_t byte_len; /* WC of a RECV */
} rdev_event;

/* Access bits, the transport's TRANSPORT_REMOTE_* values. */
typedef struct rdev_mr {
	void *handle; /* the device's (struct ibv_mr * for verbs) */
	uint32_t lkey, rkey;
} rdev_mr;

/* The device table; every function returns 0 or a negative code unless it says. */
typedef struct rdev_ops {
	const char *name;
	/* Open the device for transport t (borrowed: its options and counters; softverbs
	 * also runs its sockets through it); -> PRISM_E_NO_DEVICE where none exists.
	 * recv_depth: receives rc.c keeps posted per QP; send_depth: its send queue bound. */
	int (*open)(transport *t, unsigned send_depth, unsigned recv_depth, rdev **out);
	void (*close)(rdev *d);
	/* An fd readable when poll() has work (see transport_fd()).  Before sleeping on it,
	 * rc.c calls arm(); 1 from arm() means events are already waiting: poll instead. */
	int (*fd)(const rdev *d);
	int (*arm)(rdev *d);
	int (*poll)(rdev *d, rdev_event *evs, int max);

	int (*reg_mr)(rdev *d, void *addr, size_t len, unsigned access, rdev_mr *out);
	void (*dereg_mr)(rdev *d, rdev_mr *mr);

	int (*listen)(rdev *d, const struct sockaddr_in *sa, uint16_t *port);
	/* Start a connection; RDEV_EV_CONNECTED follows. */
	int (*connect)(rdev *d, const struct sockaddr_in *sa, void *ctx, rdev_qp **out);
	void (*set_ctx)(rdev_qp *qp, void *ctx);
	int (*peer)(const rdev_qp *qp, struct sockaddr_in *out);
	/* Give the peer remote READ/WRITE access to our regions. */
	int (*grant)(rdev_qp *qp);
	int (*post_send)(rdev_qp *qp, const rdev_wr *wr);
	int (*post_recv)(rdev_qp *qp, void *buf, uint32_t len, uint32_t lkey, uint64_t wr_id);
	/* Submit what was posted (softverbs batches into one io_uring_enter; verbs: no-op). */
	int (*flush)(rdev *d);
	/* Disconnect and free; no event names qp afterwards. */
	void (*destroy_qp)(rdev_qp *qp);
} rdev_ops;

extern const rdev_ops rdev__verbs_ops;
extern const rdev_ops rdev__soft_ops;

#endif
