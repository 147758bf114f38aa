/* gcs_int.h — what the GCS's files share (internal). */
#ifndef PRISM_GCS_INT_H
#define PRISM_GCS_INT_H

/* fsync the directory holding path, so that a rename into it survives a crash. */
int gcs__sync_dir(const char *path);

#endif

#include <stddef.h>
#include <stdint.h>

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
};

/* 32 MiB: a batch of operations; one operation is at most ~16 MiB (store.h). */
#define GCS_FRAME_MAX (32u << 20)

/* Send one frame of type/req_id whose payload is the n bytes at p.  Frames above
 * TRANSPORT_INLINE_MAX are sent from a buffer freed on their completion
 * (gcs__sent()). */
int gcs__send(transport_conn *c, uint16_t type, uint64_t req_id, const void *p, size_t n);
/* Call for every TRANSPORT_EV_SEND: frees the buffer of a large frame. */
void gcs__sent(const transport_event *ev);
