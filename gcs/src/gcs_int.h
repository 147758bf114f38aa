/* gcs_int.h — what the GCS's files share (internal). */
#ifndef PRISM_GCS_INT_H
#define PRISM_GCS_INT_H

/* fsync the directory holding path, so that a rename into it survives a crash. */
int gcs__sync_dir(const char *path);

#include <stddef.h>
#include <stdint.h>

#include "base/wire.h"
#include "transport/transport.h"

/* The chain protocol's frame types (base/wire.h frames inside transport messages). */
enum {
	GCS_M_PUT = 1,    /* client -> head.  req_id; payload: an operation (store.h) */
	GCS_M_PUT_OK = 2, /* head -> client.  req_id; i32 status, u64 seq */
	GCS_M_GET = 3,    /* client -> tail.  req_id; u8 table, bytes key */
	GCS_M_GET_OK = 4, /* tail -> client.  req_id; i32 status, u64 version, bytes value */
	GCS_M_REPL = 5,   /* predecessor -> successor: u32 n, n x (u64 seq, bytes op) */
	GCS_M_ACK = 6,    /* successor -> predecessor: u64 seq, everything up to it */
	GCS_M_CHAIN_HELLO = 7, /* predecessor -> successor, first: this link is upstream */
	GCS_M_SUB = 8,         /* client -> tail.  req_id: subscription id; u8 table, bytes key
			   * (empty: the whole table) */
	GCS_M_UNSUB = 9,       /* client -> tail.  req_id: subscription id */
	GCS_M_NOTIFY = 10,     /* tail -> client.  req_id: subscription id; u64 seq, u8 kind,
			    * bytes key, bytes value */
	GCS_M_SUB_ACK = 11,    /* client -> tail.  req_id: subscription id; u32 handled */
	GCS_M_OVERFLOW = 12,   /* tail -> client.  req_id: subscription id; nothing follows */
	GCS_M_PING = 13,       /* master -> replica.  req_id: a sequence number */
	GCS_M_PONG = 14,       /* replica -> master.  req_id echoed; u64 applied seq */
	GCS_M_SET_NEXT = 15,   /* master -> replica: the successor's address (empty: be the
			      * tail) */
	GCS_M_HAVE = 16,      /* successor -> predecessor, after CHAIN_HELLO: u64 applied seq */
	GCS_M_STATE = 17,     /* predecessor -> successor that lacks acknowledged entries: the
			   * whole store image (gcs_store_dump) */
	GCS_M_ROLE = 18,      /* master -> replica: u8 flags (GCS_ROLE_*) */
	GCS_M_TAKE_TAIL = 19, /* predecessor -> successor once it holds everything the
			       * predecessor held when it joined: serve reads if you are the
			       * tail (the predecessor stopped serving them) */
	GCS_M_SUB_NACK = 20,  /* tail -> client.  req_id: subscription id; i32 status (not
			       * serving reads here) */
	GCS_M_CONFIG_GET = 21, /* client -> master: send the configuration, now and on change */
	GCS_M_CONFIG = 22,     /* master -> client: u64 epoch, u32 shards, per shard: u32 n,
			    * n x bytes address, head first */
	GCS_M_REPL_RING = 23,  /* predecessor -> successor, after a WRITE of a batch into
				* the successor's log ring: u64 offset, u32 length, u64 the
				* ring position after it (skipped bytes at the wrap included) */
	GCS_M_RING_FREED = 24, /* successor -> predecessor: u64 ring position consumed */
	GCS_M_SCAN = 25,       /* client -> tail.  req_id; u8 table */
	GCS_M_SCAN_OK = 26,    /* tail -> client.  req_id; i32 status, u32 n, n x (bytes key,
			     * bytes value, u64 version) */
};

/* 16 MiB: the most one shard answers to a scan (more: PRISM_E_TOO_BIG, nothing sent). */
#define GCS_SCAN_MAX (16u << 20)

/* GCS_M_ROLE flags, only ever given, never taken.  HEAD: take client writes, and drop the
 * predecessor (it was cut out).  SERVE: serve reads and subscriptions (the tail; an added
 * replica, in standby, gets them by GCS_M_TAKE_TAIL from its predecessor once it has
 * caught up). */
#define GCS_ROLE_HEAD 0x1u
#define GCS_ROLE_SERVE 0x2u

/* 4096 notifications not yet acknowledged by a subscriber: past this the tail stops
 * queueing for it and says so (GCS_M_OVERFLOW), so a subscriber that does not read never
 * holds more than ~4096 changes of memory on the tail or stalls a writer. */
#define GCS_SUB_WINDOW 4096u

/* 32 MiB: a batch of operations; one operation is at most ~16 MiB (store.h). */
#define GCS_FRAME_MAX (32u << 20)

/* A link's outgoing frames, gathered during a poll and sent as one transport message
 * at its end: a batch of requests or answers costs one message, not one each. */
typedef struct gcs_outbox {
	transport_conn *c;
	uint8_t *buf;
	size_t len, cap;
	bool dirty;                     /* on its owner's list of outboxes to flush */
	bool refused;                   /* a replica refused a write on this link (not the
					 * head): it refuses every later one too */
	struct gcs_outbox *prev, *next; /* its owner's list of every outbox */
} gcs_outbox;

/* Append one frame (type, req_id, the n bytes at p). */
int gcs__out(gcs_outbox *o, uint16_t type, uint64_t req_id, const void *p, size_t n);
/* Send what was gathered as one message.  A buffer above TRANSPORT_INLINE_MAX is handed
 * to the transport and freed by gcs__sent() on its completion. */
int gcs__out_flush(gcs_outbox *o);
void gcs__out_free(gcs_outbox *o);
/* Call for every TRANSPORT_EV_SEND. */
void gcs__sent(const transport_event *ev);
/* Call fn for each frame of a message; stops at and returns the first error (a frame
 * that does not decode: PRISM_E_TRUNCATED, PRISM_E_PROTO, ...). */
typedef int (*gcs_frame_fn)(void *arg, transport_conn *c, const prism_wire_hdr *h,
			    const uint8_t *payload);
int gcs__frames(const uint8_t *buf, size_t len, transport_conn *c, gcs_frame_fn fn, void *arg);

#endif
