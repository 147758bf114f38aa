/* transport/transport.h — links between nodes: framed messages and one-sided access to
 * registered memory, over tcp (io_uring), RDMA verbs, or softverbs.
 *
 * A transport is one endpoint of one backend, owned by one thread (a node's loop, a GCS
 * server, a benchmark).  It listens and connects by address, and every link it makes is
 * authenticated before anything else crosses it.  Over a link it sends messages (byte
 * strings of 0 to TRANSPORT_MAX_MSG bytes, delivered whole and in order), and it reads
 * and writes memory regions that the peer registered and exported, without the peer's
 * program taking part.  The model is an RDMA reliable-connected queue pair, so that every
 * protocol above runs unchanged on all three backends:
 *
 *   backend    links                   one-sided READ/WRITE
 *   tcp        TCP, io_uring           served by the peer's transport from its regions
 *   verbs      RC queue pair (rdmacm)  the NIC (ibv_post_send RDMA_READ/RDMA_WRITE)
 *   softverbs  TCP, io_uring           the verbs backend's protocol over an emulated NIC
 *
 * The backend is transport_opts.backend, else $PRISM_TRANSPORT (tcp|verbs|softverbs),
 * else tcp.  verbs takes its device as $PRISM_RDMA_DEVICE=mlx5_0:1 (device and port, as
 * UCX and NCCL do; the first active port of the first device by default) and its GID as
 * $PRISM_RDMA_GID_INDEX; transport_create() fails with PRISM_E_NO_DEVICE where there is no
 * RDMA device.
 *
 * Addresses.  "tcp://HOST:PORT", or "HOST:PORT"; HOST is an IPv4 address or a name
 * (resolved once, when connecting); port 0 in transport_listen() picks a free port.
 *
 * Authentication.  Every transport has the cluster token (TRANSPORT_TOKEN_BYTES secret
 * bytes).  A new link runs a challenge-response before any other byte is read: each side
 * sends a random nonce and proves it holds the token with an HMAC-SHA-256 (libsodium) over
 * both nonces, so the token never crosses the wire and a replayed answer fails.  A peer
 * that fails or stalls is dropped and logged; on verbs the queue pair gets remote access
 * rights only after the proof.
 *
 * Work and completions.  Sends, READs and WRITEs are posted on a link with a caller's
 * wr_id and complete in the order they were posted on that link.  As on an RC queue
 * pair, a WRITE posted before a send is in the peer's memory when the peer receives that
 * message, so a message can announce data written just before it (a doorbell).  A completion is
 * reported as an event when the operation was posted with TRANSPORT_SIGNALED or when it
 * failed; as with verbs, a signalled completion means every earlier operation of that
 * link has completed too (selective signalling).  A send completes when its bytes have
 * left the caller's hands for good: written to the socket (tcp), in the peer's receive
 * buffer (verbs, softverbs); unsent bytes are not limited, so a sender that never waits
 * for a completion can queue without bound.  Failures are precise: PRISM_E_BAD_KEY
 * (no region under that key, or the region does not allow that access),
 * PRISM_E_OUT_OF_BOUNDS (the range leaves the region), PRISM_E_PEER_GONE (the link broke
 * before the operation completed), PRISM_E_FLUSHED (the link failed or was closed before
 * the operation ran).  Like an RC queue pair, a link that met a remote access error or
 * lost its peer is closed: its later operations complete with PRISM_E_FLUSHED and then
 * it reports TRANSPORT_EV_CLOSED.
 *
 * Progress.  Nothing happens behind the caller's back: transport_poll() submits posted
 * work, serves the peers' one-sided requests, and returns events.  transport_fd() is
 * readable whenever polling would make progress, so a node loop watches it (for tcp and
 * softverbs it is the transport's io_uring; for verbs an io_uring that watches the
 * completion channel and the rdmacm channel, with the CQ polled directly).  Spinning on
 * transport_poll() with a zero timeout gives the lowest latency; a timeout sleeps.
 *
 * Ownership.  The caller owns the transport; the transport owns its links and regions,
 * which the caller names by handle.  A link is freed after its TRANSPORT_EV_CLOSED event
 * has been returned, at the next transport_poll(); its handle must not be used after
 * that event.  Message data of a TRANSPORT_EV_RECV event is borrowed and valid until the
 * next transport_poll() or transport_destroy().  Send buffers of at most
 * TRANSPORT_INLINE_MAX bytes are copied before transport_send() returns; a larger buffer
 * is sent in place (zero-copy) and must stay valid and unchanged until the send completes
 * (post it TRANSPORT_SIGNALED, or signal a later operation on the same link).  Local
 * buffers of READ and WRITE must lie in a region registered with this transport and stay
 * valid until completion.  A region must not be deregistered while operations use it.
 *
 * Thread safety.  None: a transport and everything it owns belong to the thread that
 * created it.  Different transports are independent.
 *
 * Errors.  Functions return 0 (transport_poll(): the number of events) or a negative
 * code from base/error.h; out-parameters are left NULL or zeroed on failure.
 */
#ifndef PRISM_TRANSPORT_TRANSPORT_H
#define PRISM_TRANSPORT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct transport transport;
typedef struct transport_conn transport_conn;
typedef struct transport_mr transport_mr;

enum transport_backend {
	TRANSPORT_DEFAULT = 0, /* $PRISM_TRANSPORT, else tcp */
	TRANSPORT_TCP = 1,
	TRANSPORT_SOFTVERBS = 2,
	TRANSPORT_VERBS = 3,
};

/* 32 bytes: the key size of HMAC-SHA-256 (crypto_auth_hmacsha256_KEYBYTES). */
#define TRANSPORT_TOKEN_BYTES 32
/* 1 GiB: the largest message; larger data moves by READ/WRITE into registered regions. */
#define TRANSPORT_MAX_MSG (1u << 30)
/* 4 KiB: sends up to this size are copied at post time (like verbs inline sends). */
#define TRANSPORT_INLINE_MAX 4096u
/* Longest address string, "tcp://" plus a host name and port. */
#define TRANSPORT_ADDR_MAX 288u

/* Options for transport_create(); zero-initialise and set what you need. */
typedef struct transport_opts {
	enum transport_backend backend;
	uint8_t token[TRANSPORT_TOKEN_BYTES]; /* the cluster token; all zero is refused */
	unsigned max_conns;  /* links at once, accepted ones included; 0: 1024 */
	size_t zerocopy_min; /* tcp: sends of at least this size use SEND_ZC (never to a
			      * 127.x peer, where it only adds a copy); 0: 64 KiB,
				 * SIZE_MAX: never */
	uint64_t
		handshake_ns; /* a peer that has not proved itself by then is dropped; 0: 5 s */
} transport_opts;

/* Operation flags. */
#define TRANSPORT_SIGNALED 0x1u /* report the completion as an event */

/* Region access rights granted to authenticated peers (local access is always allowed). */
#define TRANSPORT_REMOTE_READ 0x1u
#define TRANSPORT_REMOTE_WRITE 0x2u

/* What a peer needs to READ or WRITE a region: a plain value, sent to the peer in any
 * message (transport_mr_desc_encode() gives its wire form). */
typedef struct transport_mr_desc {
	uint64_t addr;   /* the region's first byte, in the owner's address space */
	uint64_t len;    /* its length in bytes */
	uint32_t rkey;   /* its remote key */
	uint32_t access; /* TRANSPORT_REMOTE_* it grants */
} transport_mr_desc;
#define TRANSPORT_MR_DESC_BYTES 24

enum transport_event_kind {
	TRANSPORT_EV_CONNECTED = 1, /* a transport_connect() link is up and authenticated */
	TRANSPORT_EV_ACCEPTED = 2,  /* a peer connected to a listener and proved itself */
	TRANSPORT_EV_RECV = 3,      /* a message arrived: data, len */
	TRANSPORT_EV_SEND = 4,      /* a send completed: wr_id, status */
	TRANSPORT_EV_READ = 5,      /* a READ completed: wr_id, status */
	TRANSPORT_EV_WRITE = 6,     /* a WRITE completed: wr_id, status */
	TRANSPORT_EV_CLOSED = 7,    /* the link is gone: status 0 after transport_close(), else
				     * why (a failed connect included); the last event of a link */
};

/* One event, a plain value returned by transport_poll(). */
typedef struct transport_event {
	enum transport_event_kind kind;
	int status;           /* 0 or a negative code */
	transport_conn *conn; /* the link */
	void *ctx;            /* the link's context (transport_conn_set_ctx) */
	uint64_t wr_id;       /* SEND, READ, WRITE: the caller's id */
	const void *data;     /* RECV: the message, borrowed until the next poll */
	size_t len;           /* RECV: its length */
} transport_event;

/* Counters for tests and tools; a plain copy the caller owns. */
typedef struct transport_stats {
	uint64_t msgs_sent, msgs_recv;
	uint64_t bytes_sent, bytes_recv;
	uint64_t reads_served,
		writes_served;    /* one-sided operations peers made on our regions */
	uint64_t auth_refused;    /* peers dropped in the handshake */
	uint64_t protocol_errors; /* links dropped for malformed input */
	uint64_t zerocopy_sends;
} transport_stats;

/* ---- endpoint ---------------------------------------------------------------------- */

/* Create an endpoint.  -EINVAL for bad options (an all-zero token included),
 * PRISM_E_CONFIG for a bad $PRISM_TRANSPORT or $PRISM_RDMA_*, PRISM_E_NO_DEVICE for verbs
 * without a device, -ENOMEM, io_uring setup errors.  The caller owns *out. */
PRISM_API int transport_create(const transport_opts *opts, transport **out);
/* Close every link (no events), deregister every region, free.  NULL-safe. */
PRISM_API void transport_destroy(transport *t);

/* The backend this endpoint runs, and its name ("tcp", "verbs", "softverbs"). */
PRISM_API enum transport_backend transport_backend_of(const transport *t);
PRISM_API const char *transport_backend_name(enum transport_backend b);
/* Parse a backend name; -EINVAL for an unknown one. */
PRISM_API int transport_backend_parse(const char *name, enum transport_backend *out);

/* Listen on addr (see "Addresses"; "tcp://0.0.0.0:0" for any port).  The bound address,
 * with the real port, is written to bound (TRANSPORT_ADDR_MAX bytes; may be NULL).  One
 * listener per transport: -EBUSY for a second.  Socket errors as -errno. */
PRISM_API int transport_listen(transport *t, const char *addr, char *bound, size_t bound_len);

/* Start connecting to addr; *out names the link at once, and TRANSPORT_EV_CONNECTED (or
 * TRANSPORT_EV_CLOSED with the reason: -ECONNREFUSED, PRISM_E_AUTH, ...) follows.  ctx is
 * the link's context, borrowed.  -EINVAL for a bad address, -ENOSPC past max_conns. */
PRISM_API int transport_connect(transport *t, const char *addr, void *ctx,
				transport_conn **out);

/* Close a link: operations not yet complete complete with PRISM_E_FLUSHED, then
 * TRANSPORT_EV_CLOSED with status 0 follows.  Idempotent. */
PRISM_API void transport_close(transport_conn *c);

PRISM_API void transport_conn_set_ctx(transport_conn *c, void *ctx);
PRISM_API void *transport_conn_ctx(const transport_conn *c);
/* The peer's address as "tcp://A.B.C.D:PORT", into buf (TRANSPORT_ADDR_MAX bytes). */
PRISM_API int transport_conn_peer(const transport_conn *c, char *buf, size_t len);

/* ---- messages and one-sided operations ---------------------------------------------- */

/* Send len bytes (0 allowed) as one message.  See "Ownership" for the buffer.
 * -EMSGSIZE above TRANSPORT_MAX_MSG, PRISM_E_CLOSED on a closed or closing link. */
PRISM_API int transport_send(transport_conn *c, const void *buf, size_t len, uint64_t wr_id,
			     unsigned flags);

/* READ len bytes at remote_addr of the peer's region rkey into local (which lies in a
 * region registered here).  -EINVAL when local is not in a registered region or len is
 * 0 or above TRANSPORT_MAX_MSG; PRISM_E_CLOSED on a closed link.  Remote failures come
 * back as the completion's status. */
PRISM_API int transport_read(transport_conn *c, void *local, size_t len, uint64_t remote_addr,
			     uint32_t rkey, uint64_t wr_id, unsigned flags);
/* WRITE len bytes from local (in a registered region) to remote_addr of region rkey. */
PRISM_API int transport_write(transport_conn *c, const void *local, size_t len,
			      uint64_t remote_addr, uint32_t rkey, uint64_t wr_id,
			      unsigned flags);

/* ---- regions ----------------------------------------------------------------------- */

/* Register [addr, addr + len) (borrowed: the caller keeps it mapped until deregistering)
 * with the given TRANSPORT_REMOTE_* rights.  -EINVAL for len 0 or unknown rights,
 * -EEXIST when it overlaps a region already registered, -ENOMEM, ibv_reg_mr's -errno. */
PRISM_API int transport_reg(transport *t, void *addr, size_t len, unsigned access,
			    transport_mr **out);
/* Deregister and free.  NULL-safe.  Peers' later accesses fail with PRISM_E_BAD_KEY. */
PRISM_API void transport_dereg(transport_mr *mr);
/* The descriptor to give a peer. */
PRISM_API void transport_mr_desc_get(const transport_mr *mr, transport_mr_desc *out);
/* Wire form: TRANSPORT_MR_DESC_BYTES little-endian bytes, and back (-EINVAL for a short
 * buffer, unknown access bits or a range that wraps). */
PRISM_API int transport_mr_desc_encode(const transport_mr_desc *d, uint8_t *buf, size_t len);
PRISM_API int transport_mr_desc_decode(const uint8_t *buf, size_t len, transport_mr_desc *out);

/* ---- the cluster token in a file --------------------------------------------------- */

/* Load the token: the file holds exactly 32 raw bytes, or 64 hex digits and an optional
 * newline; an all-zero token is refused (PRISM_E_CONFIG), a file others may read is
 * accepted with a logged warning.  why (may be NULL) gets a sentence for the user on
 * failure.  -errno for the file system. */
PRISM_API int transport_token_load(const char *path, uint8_t token[TRANSPORT_TOKEN_BYTES],
				   char *why, size_t why_len);
/* Write a new random token (getrandom) to path, mode 0600; -EEXIST rather than overwrite
 * one. */
PRISM_API int transport_token_create(const char *path, char *why, size_t why_len);

/* ---- progress ---------------------------------------------------------------------- */

/* Submit posted work, serve peers, and return up to max events into evs.  timeout_ns 0:
 * never block; otherwise block until an event or the timeout (-1: no limit).  Returns
 * the number of events (0 on timeout) or a negative code for a failure of the endpoint
 * itself (links' failures are events). */
PRISM_API int transport_poll(transport *t, transport_event *evs, int max, int64_t timeout_ns);
/* Submit posted work without reaping, e.g. from a loop's flush phase.  0 or -errno. */
PRISM_API int transport_flush(transport *t);
/* An fd that is readable when transport_poll() has something to do.  Borrowed. */
PRISM_API int transport_fd(const transport *t);

PRISM_API void transport_stats_get(const transport *t, transport_stats *out);

#ifdef __cplusplus
}
#endif
#endif
