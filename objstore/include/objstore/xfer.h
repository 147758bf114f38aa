/* objstore/xfer.h — objects between nodes (DESIGN.md section 4, "Objects between nodes").
 *
 * A node that needs an object another node holds pulls it: it asks the holder's daemon
 * to pin the object (OBJSTORE_XFER_M_PULL), gets back where the bytes lie in the holder's
 * registered arena, creates the object in its own arena and READs the bytes straight
 * into it, in chunks of OBJSTORE_XFER_CHUNK with OBJSTORE_XFER_DEPTH in flight (RDMA READ
 * from the registered arena on verbs; a streamed copy served by the holder's transport on
 * tcp and softverbs), then seals it and tells the holder to drop its pin.  Concurrent
 * pulls of one object share one transfer.  A holder that dies mid-transfer fails the pull
 * with its reason (the partial copy is aborted, never visible); the caller tries another
 * holder.
 *
 * One objstore_xfer serves both sides on one transport endpoint, which the caller owns and
 * polls: it hands every event to objstore_xfer_event(), which takes those that are the
 * transfer's (its messages, its READ completions) and watches links close.  Messages are
 * single base/wire.h frames of types OBJSTORE_XFER_M_*; every length is checked, and a
 * malformed one drops the link.
 *
 * Ownership: the caller owns the transport, the store handle and the region (which must
 * stay mapped); objstore_xfer_create() registers the region with the transport (remote
 * READ) and objstore_xfer_destroy() deregisters it, failing pulls in flight with
 * PRISM_E_CLOSED and dropping pins held for peers.  Thread safety: none; the transport's
 * thread.  Errors: 0 or a negative code.
 */
#ifndef PRISM_OBJSTORE_XFER_H
#define PRISM_OBJSTORE_XFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/api.h"
#include "base/id.h"
#include "objstore/objstore.h"
#include "transport/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The transfer's frame types (base/wire.h), a range of their own on a node's links. */
enum {
	OBJSTORE_XFER_M_PULL = 100,    /* puller -> holder.  req_id; 16-byte object id */
	OBJSTORE_XFER_M_PULL_OK = 101, /* holder -> puller.  req_id; i32 status, u64 size,
					* u64 address, u32 rkey */
	OBJSTORE_XFER_M_DONE = 102,    /* puller -> holder.  req_id: drop the pin */
};

/* 1 MiB chunks, 16 in flight (16 MiB on the wire, as 4 x 4 MiB was).  Over loopback
 * TCP on a 2-vCPU guest, 1 MiB gave 4.1-4.2 GB/s where 4 MiB gave 2.6-3.6 and 512 KiB
 * 3.4-3.9 (prism-bench cluster, object_transfer_1gib): each chunk is copied twice by the
 * kernel, and a 1 MiB chunk stays in the cache between the copies.  With verbs, reads
 * beyond the QP's initiator depth wait in its send queue, as the verbs spec allows. */
#define OBJSTORE_XFER_CHUNK (1u << 20)
#define OBJSTORE_XFER_DEPTH 16

typedef struct objstore_xfer objstore_xfer;

/* status 0: the object is sealed in the local store (unpinned: objstore_get() it). */
typedef void (*objstore_pull_cb)(void *arg, int status, prism_id id);

typedef struct objstore_xfer_stats {
	uint64_t pulls;        /* transfers started (shared ones count once) */
	uint64_t pulls_shared; /* pull requests that joined a transfer in flight */
	uint64_t pulls_failed;
	uint64_t bytes_pulled;
	uint64_t served;        /* objects pinned for peers */
	uint64_t serve_missing; /* pull requests for objects not here */
} objstore_xfer_stats;

/* Serve and pull objects of store os (in region[0..region_len)) over transport t. */
PRISM_API int objstore_xfer_create(transport *t, objstore *os, void *region, size_t region_len,
				   objstore_xfer **out);
PRISM_API void objstore_xfer_destroy(objstore_xfer *x);

/* Pull object id from the holder at the other end of link (which must be up).  cb runs
 * from objstore_xfer_event() when it is sealed here or failed: -ENOENT (the holder does
 * not have it), PRISM_E_PEER_GONE / PRISM_E_FLUSHED (the link broke), PRISM_E_STORE_FULL,
 * ...  An object already here completes at once (cb called before this returns). */
PRISM_API int objstore_xfer_pull(objstore_xfer *x, transport_conn *holder, prism_id id,
				 objstore_pull_cb cb, void *arg);

/* Offer an event of the transport: true when it was the transfer's (the caller then
 * ignores it).  Every TRANSPORT_EV_CLOSED must be offered (pins and pulls of that link
 * end); it returns false for those, so other users of the link see them too. */
PRISM_API bool objstore_xfer_event(objstore_xfer *x, const transport_event *ev);

PRISM_API void objstore_xfer_stats_get(const objstore_xfer *x, objstore_xfer_stats *out);

#ifdef __cplusplus
}
#endif
#endif
