/* transport_int.h — what the transport's files share (internal).
 *
 * transport.c holds what every backend needs: options, addresses, the region table, the
 * per-link queue of posted operations that turns completions into in-order events, and
 * the event queue.  A backend is a table of functions (tcp.c; rc.c over an rdev for
 * verbs and softverbs).  auth.c is the token handshake; sio.c the io_uring socket
 * engine under tcp and softverbs.
 */
#ifndef PRISM_TRANSPORT_INT_H
#define PRISM_TRANSPORT_INT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/fifo.h"
#include "transport/transport.h"

enum top_kind { TOP_SEND = 1, TOP_READ = 2, TOP_WRITE = 3 };

/* Push onto an event queue; out of memory aborts: a lost completion would leave its
 * caller waiting forever, and the queue only grows past what is outstanding. */
void transport__fifo_push(prism_fifo *q, const void *e);

/* One posted operation.  seq numbers the link's operations from 0; the queue is a ring
 * indexed by seq. */
typedef struct transport__op {
	uint8_t kind;     /* enum top_kind */
	uint8_t signaled; /* report the completion */
	uint8_t done;
	uint8_t inplace; /* tcp: a send whose payload goes in place (own completion) */
	int status;
	uint64_t wr_id;
	uint64_t seq;
	void *local; /* SEND: the buffer (or the copy), READ/WRITE: local memory */
	size_t len;
	uint64_t raddr;
	uint32_t rkey;
	uint32_t lkey; /* the local region's key (verbs) */
	void *copy;    /* a copy of a small send the backend could not start at once,
			 * freed by transport.c when the operation is reported */
} transport__op;

enum tconn_state { TCONN_CONNECTING = 1, TCONN_UP, TCONN_CLOSING, TCONN_DEAD };

struct transport_conn {
	transport *t;
	void *ctx;
	enum tconn_state state;
	bool outbound;
	bool closed_by_user;
	struct sockaddr_in peer;
	/* Posted operations not yet reported: seqs [op_head, op_tail). */
	transport__op *ops;
	uint64_t op_head, op_tail;
	uint32_t op_mask;
	void *be; /* the backend's per-link state */
	transport_conn *prev, *next;
};

struct transport_mr {
	transport *t;
	uint8_t *addr;
	size_t len;
	unsigned access;
	uint32_t lkey, rkey;
	void *be; /* the backend's (an rdev_mr for verbs and softverbs) */
};

typedef struct transport__ops {
	const char *name;
	int (*init)(transport *t);
	void (*fini)(transport *t);
	int (*listen)(transport *t, const struct sockaddr_in *sa, uint16_t *port);
	/* c is CONNECTING; the backend makes TRANSPORT_EV_CONNECTED or CLOSED follow. */
	int (*connect)(transport *t, transport_conn *c, const struct sockaddr_in *sa);
	/* Start op (already queued on c).  A SEND of at most TRANSPORT_INLINE_MAX bytes must
	 * be copied before this returns: the caller may reuse its buffer at once. */
	int (*post)(transport_conn *c, transport__op *op);
	/* The user closed c: stop its I/O, then transport__conn_down(c, 0). */
	void (*close)(transport_conn *c);
	/* Free the backend's per-link state (c is gone). */
	void (*conn_free)(transport_conn *c);
	/* Make progress; block at most timeout_ns (-1: no limit) when nothing is queued. */
	int (*progress)(transport *t, int64_t timeout_ns);
	int (*flush)(transport *t);
	int (*fd)(const transport *t);
	int (*reg)(transport *t, transport_mr *mr);
	void (*dereg)(transport *t, transport_mr *mr);
} transport__ops;

extern const transport__ops transport__tcp_ops;
extern const transport__ops transport__softverbs_ops;
extern const transport__ops transport__verbs_ops;

struct transport {
	const transport__ops *ops;
	enum transport_backend backend;
	transport_opts opts;
	void *be;
	/* Events waiting to be returned. */
	prism_fifo evq;
	/* Regions, sorted by address. */
	transport_mr **mrs;
	uint32_t nmrs, mrs_cap;
	/* Links alive, and links whose CLOSED event went out (freed at the next poll). */
	transport_conn *conns, *dead;
	unsigned nconns;
	bool listening;
	transport_stats stats;
};

/* ---- transport.c ---- */
int transport__emit(transport *t, const transport_event *ev);
int transport__conn_new(transport *t, bool outbound, const struct sockaddr_in *peer,
			transport_conn **out);
/* The link is up: emit CONNECTED or ACCEPTED. */
void transport__conn_up(transport_conn *c);
/* Mark op seq complete with status and report what is now in order. */
void transport__op_done(transport_conn *c, uint64_t seq, int status);
transport__op *transport__op_at(transport_conn *c, uint64_t seq);
/* The link failed (status < 0) or closed (0): every operation not complete gets
 * status (PEER_GONE, or FLUSHED after a close), then CLOSED(status) is emitted and the
 * link is freed at the next poll.  Idempotent. */
void transport__conn_down(transport_conn *c, int status);
/* The region containing [addr, addr + len) or NULL. */
transport_mr *transport__mr_local(transport *t, const void *addr, size_t len);
/* Check a peer's access; on success *p is the local address. */
int transport__mr_remote(transport *t, uint32_t rkey, uint64_t addr, uint64_t len,
			 unsigned access, uint8_t **p);
/* 32-bit nonzero random key unused by any region. */
uint32_t transport__new_key(transport *t);
int transport__parse_addr(const char *addr, struct sockaddr_in *out);
void transport__format_addr(const struct sockaddr_in *sa, char *buf, size_t len);

/* ---- auth.c: the token handshake, carried by each backend ---- */
#define AUTH_HELLO_BYTES 44 /* magic 8, version 2, backend 2, nonce 32 */
#define AUTH_PROOF_BYTES 32 /* HMAC-SHA-256 */
typedef struct auth_state {
	uint8_t my_nonce[32];
	uint8_t peer_nonce[32];
	bool server;
	bool got_hello, got_proof, sent_proof;
} auth_state;
void auth__init(auth_state *a, bool server);
/* Our hello, to send first. */
void auth__hello(const auth_state *a, enum transport_backend b, uint8_t out[AUTH_HELLO_BYTES]);
/* Check the peer's hello: PRISM_E_BAD_MAGIC, PRISM_E_BAD_VERSION, PRISM_E_PROTO (another
 * backend). */
int auth__take_hello(auth_state *a, enum transport_backend b,
		     const uint8_t in[AUTH_HELLO_BYTES]);
/* Our proof (after take_hello). */
void auth__proof(const auth_state *a, const uint8_t *token, uint8_t out[AUTH_PROOF_BYTES]);
/* Verify the peer's proof: 0 or PRISM_E_AUTH. */
int auth__check_proof(auth_state *a, const uint8_t *token, const uint8_t in[AUTH_PROOF_BYTES]);

#endif
