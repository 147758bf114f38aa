/* gcs/chain.h — a GCS shard served by a chain of replicas, and the client that talks to
 * it (DESIGN.md section 7; the chain replication of van Renesse and Schneider).
 *
 * A replica (gcs_replica) owns a store (gcs/store.h), optionally a write-ahead log, and
 * one transport endpoint.  Its place in the chain is given by gcs_replica_set_next(): the
 * address of its successor, or NULL for the tail.  Writes enter at the head: it orders
 * them (log sequence numbers), applies them, and ships them down the chain in batches;
 * each replica applies and forwards; the tail acknowledges upstream and every replica
 * passes the acknowledgement on, and the head answers the client once the tail has the
 * write, so an acknowledged write is held by every replica.  Reads go to the tail, which
 * only holds acknowledged writes.
 *
 * Shards.  Keys hash to shards (gcs_shard_of()); each shard is its own chain of 1 to 8
 * replicas, and the configuration master watches them all.  The number of shards is
 * fixed when the master is made.
 *
 * Reconfiguration.  The master cuts a dead replica out (its predecessor is joined to its
 * successor; a new head drops its predecessor; a new tail serves reads) and adds new
 * replicas at the end by state transfer.  Reads move to an added replica only once it
 * holds everything its predecessor held when it joined: the predecessor serves them until
 * then and passes them on in-stream (GCS_M_TAKE_TAIL), so no read ever goes back in time.
 * A replica asked to do what its role is not refuses: PRISM_E_NOT_HEAD for a write,
 * PRISM_E_NOT_TAIL for a read or a subscription.
 *
 * Replication.  Batches of log entries go down the chain by one-sided RDMA WRITE into
 * the successor's registered log ring, followed by a small message that says where (the
 * doorbell; the transport puts a WRITE in place before a later message arrives), where
 * the transport writes one-sided (verbs; softverbs in tests); over tcp, and for a batch
 * that finds the ring full or is larger than half of it, as messages.  The successor
 * tells its predecessor how far it consumed the ring; every new predecessor gets a
 * fresh registration, so a cut-out one can no longer write.
 *
 * Messages are prism wire frames (base/wire.h) inside transport messages; every decoder
 * checks every length, and a peer that sends a malformed frame is dropped.
 *
 * The client (gcs_client) asks the master for the configuration (gcs_client_open()) and
 * is told again whenever it changes, or is given one fixed chain (gcs_client_create()).
 * It numbers its requests and keeps each until it is answered: with a master, a broken
 * link or a refusal (not the head, not the tail) makes it fetch the configuration and
 * send the unanswered requests again, in order, to the replicas now in those roles; a
 * retried write is applied once (gcs/store.h), so an acknowledged write is never lost or
 * doubled across reconfigurations.  Requests complete through callbacks from
 * gcs_client_poll(); one not answered within the client's timeout fails with
 * PRISM_E_TIMEOUT.
 *
 * Ownership: the caller owns replicas and clients.  Values given to callbacks are
 * borrowed for the call.  Thread safety: none; each object belongs to one thread.
 * Errors: 0 or a negative code.
 */
#ifndef PRISM_GCS_CHAIN_H
#define PRISM_GCS_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/api.h"
#include "transport/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gcs_replica gcs_replica;
typedef struct gcs_client gcs_client;
typedef struct gcs_master gcs_master;

typedef struct gcs_replica_opts {
	enum transport_backend backend;
	uint8_t token[TRANSPORT_TOKEN_BYTES];
	const char *listen;      /* "tcp://127.0.0.1:0" */
	const char *wal_path;    /* NULL: in memory only */
	uint64_t snapshot_every; /* entries between snapshots (0: 1,000,000) */
	/* Under a configuration master: take no writes and serve no reads until the
	 * master gives the role (or, for reads, the predecessor hands them over).  Without
	 * it a replica starts as head and tail, for chains wired by hand. */
	bool standby;
	/* The log ring a predecessor writes batches into, on backends with one-sided writes
	 * (verbs, softverbs); 0: GCS_RING_BYTES.  Unused over tcp. */
	size_t ring_bytes;
} gcs_replica_opts;

/* 8 MiB: batches of a few hundred writes each, many in flight before the successor must
 * free room. */
#define GCS_RING_BYTES (8u << 20)

/* What a replica has shipped, and how. */
typedef struct gcs_replica_stats {
	uint64_t ring_batches_out; /* batches written into the successor's ring */
	uint64_t ring_bytes_out;
	uint64_t msg_batches_out; /* batches sent as messages (tcp; no room in the ring) */
	uint64_t ring_full;       /* of those, batches that found the ring full */
	uint64_t ring_batches_in; /* batches the predecessor wrote into our ring */
} gcs_replica_stats;

/* Create a replica listening on opts->listen; its bound address is in addr
 * (TRANSPORT_ADDR_MAX bytes).  The caller owns *out.
 *
 * Persistence (opts->wal_path): every write is in the log (gcs/wal.h) before it is
 * acknowledged; every snapshot_every entries, and after a state transfer, a snapshot
 * (wal_path.snap) is written by a forked child from a copy-on-write image of the store,
 * the log having been moved to wal_path.old for the while, so the chain never waits for
 * the disk beyond the log's group commit.  Restarting recovers: the snapshot, then
 * wal_path.old if a snapshot was cut short, then the log.  A damaged log tail is cut and
 * logged (a crash mid-write); a damaged snapshot or a gap between it and the log fails
 * with PRISM_E_CORRUPT (or the snapshot's own error), never silently. */
PRISM_API int gcs_replica_create(const gcs_replica_opts *opts, char *addr, size_t addr_len,
				 gcs_replica **out);
PRISM_API void gcs_replica_destroy(gcs_replica *r);
/* The successor's address, or NULL: this replica is the tail. */
PRISM_API int gcs_replica_set_next(gcs_replica *r, const char *next);
/* Serve: receive, apply, forward, acknowledge, make the log durable.  timeout as in
 * transport_poll().  Returns the number of messages handled, or a negative code. */
PRISM_API int gcs_replica_poll(gcs_replica *r, int64_t timeout_ns);
/* The replica's store (borrowed), e.g. to compare replicas in tests. */
PRISM_API const struct gcs_store *gcs_replica_store(const gcs_replica *r);
PRISM_API void gcs_replica_stats_get(const gcs_replica *r, gcs_replica_stats *out);
/* An fd readable when gcs_replica_poll() has work (a node loop watches it); borrowed.
 * The same for the master and the client. */
PRISM_API int gcs_replica_fd(const gcs_replica *r);
PRISM_API int gcs_master_fd(const gcs_master *m);
PRISM_API int gcs_client_fd(const gcs_client *c);

/* ---- configuration master ----------------------------------------------------------- */

/* 64 shards: a cluster's control state spread over up to 64 chains. */
#define GCS_MAX_SHARDS 64

/* Which shard (table, key) lives on, of `shards`. */
PRISM_API int gcs_shard_of(uint8_t table, const void *key, size_t key_len, int shards);

typedef struct gcs_master_opts {
	enum transport_backend backend;
	uint8_t token[TRANSPORT_TOKEN_BYTES];
	const char *listen;       /* where clients fetch the configuration; NULL: nowhere */
	uint64_t timeout_ns;      /* a replica silent this long is dead */
	int shards;               /* 1 .. GCS_MAX_SHARDS */
	int replicas;             /* per shard at the start, 1 .. 8 */
	const char *const *addrs; /* shards x replicas: shard s is addrs[s * replicas ..],
				   * head first */
} gcs_master_opts;

/* The master of every shard's chain: it connects to the replicas, tells each its
 * successor and role, and then watches them: a replica whose link breaks or that misses
 * its heartbeats for timeout_ns is declared dead and cut out.  With opts->listen, the
 * bound address goes to addr (TRANSPORT_ADDR_MAX bytes) and clients fetch the
 * configuration there, and get it again on every change.  The replicas must have been
 * created with opts.standby (they take their roles from the master). */
PRISM_API int gcs_master_open(const gcs_master_opts *opts, char *addr, size_t addr_len,
			      gcs_master **out);

/* gcs_master_open() for one shard and no clients (they are given the chain). */
PRISM_API int gcs_master_create(enum transport_backend backend, const uint8_t *token,
				const char *const *replicas, int n, uint64_t timeout_ns,
				gcs_master **out);
PRISM_API void gcs_master_destroy(gcs_master *m);
/* Add a new, empty replica at the end of shard's chain: the current tail gets it as its
 * successor, sends it the whole store and then the stream; it acknowledges writes at
 * once and serves reads once it has caught up.  -ENOSPC past 8 replicas. */
PRISM_API int gcs_master_add_to(gcs_master *m, int shard, const char *replica);
/* gcs_master_add_to() shard 0. */
PRISM_API int gcs_master_add(gcs_master *m, const char *replica);
/* Heartbeats, failure detection, repair.  Returns repairs made, or a negative code. */
PRISM_API int gcs_master_poll(gcs_master *m, int64_t timeout_ns);
/* A shard's live chain, head first: its length; addrs[i] (TRANSPORT_ADDR_MAX bytes
 * each).  gcs_master_chain(): shard 0. */
PRISM_API int gcs_master_shard_chain(const gcs_master *m, int shard,
				     char (*addrs)[TRANSPORT_ADDR_MAX], int max);
PRISM_API int gcs_master_chain(const gcs_master *m, char (*addrs)[TRANSPORT_ADDR_MAX], int max);

/* ---- client ---------------------------------------------------------------------- */

/* status: 0, or why it failed (PRISM_E_PEER_GONE, the store's refusal, -ENOENT for a get
 * of a missing key).  get: value/len/version of the entry. */
typedef void (*gcs_put_cb)(void *arg, int status, uint64_t seq);
typedef void (*gcs_get_cb)(void *arg, int status, const uint8_t *value, size_t len,
			   uint64_t version);

typedef struct gcs_client_opts {
	enum transport_backend backend;
	uint8_t token[TRANSPORT_TOKEN_BYTES];
	const char *master;  /* the configuration master's address */
	uint64_t timeout_ns; /* a request not answered by then fails; 0: 10 s */
	bool nowait;         /* return at once; gcs_client_ready() says when it is */
} gcs_client_opts;

/* Connect to the master and wait (up to the timeout) for the configuration; then to
 * the replicas as requests need them.  Losing the master fails what waits for a
 * repair. */
PRISM_API int gcs_client_open(const gcs_client_opts *opts, gcs_client **out);
/* One fixed chain, no master: start connecting to the head and the tail; requests made
 * before a link is up wait for it.  A link that fails fails its requests
 * (PRISM_E_PEER_GONE, or why it failed). */
PRISM_API int gcs_client_create(enum transport_backend backend, const uint8_t *token,
				const char *head, const char *tail, gcs_client **out);
/* Whether the configuration has arrived (requests before it fail with -EAGAIN); when
 * not, *err (may be NULL) says why the master's link broke (PRISM_E_AUTH for a wrong
 * token, ...) or 0 while it is still coming. */
PRISM_API bool gcs_client_ready(const gcs_client *c, int *err);
/* The number of shards (1 for a fixed chain). */
PRISM_API int gcs_client_shards(const gcs_client *c);
PRISM_API void gcs_client_destroy(gcs_client *c);
/* Start a PUT (value non-NULL) or DEL (value NULL) of (table, key). */
PRISM_API int gcs_client_put(gcs_client *c, uint8_t table, const void *key, size_t key_len,
			     const void *value, size_t value_len, gcs_put_cb cb, void *arg);
PRISM_API int gcs_client_get(gcs_client *c, uint8_t table, const void *key, size_t key_len,
			     gcs_get_cb cb, void *arg);
/* The same, waiting (polling this client) for the answer: the request's status.  put:
 * *seq (may be NULL) is the write's log position.  get: *value is a copy the caller frees
 * with prism_free() (-ENOENT for a missing key); version may be NULL.  Callbacks of other
 * requests run meanwhile. */
PRISM_API int gcs_client_put_sync(gcs_client *c, uint8_t table, const void *key, size_t key_len,
				  const void *value, size_t value_len, uint64_t *seq);
PRISM_API int gcs_client_get_sync(gcs_client *c, uint8_t table, const void *key, size_t key_len,
				  uint8_t **value, size_t *len, uint64_t *version);
/* Every entry of a table, read at each shard's tail: each(arg, key, value, version) per
 * entry (borrowed for the call), then done(arg, status) once every shard answered (the
 * first error, e.g. PRISM_E_TOO_BIG for a shard holding more than 16 MiB of the table).
 * Entries come shard by shard, each shard's as of one moment. */
typedef void (*gcs_scan_each)(void *arg, const uint8_t *key, size_t key_len,
			      const uint8_t *value, size_t value_len, uint64_t version);
typedef void (*gcs_scan_done)(void *arg, int status);
PRISM_API int gcs_client_scan(gcs_client *c, uint8_t table, gcs_scan_each each,
			      gcs_scan_done done, void *arg);
/* Pub/sub.  A subscription (to one key, or to a whole table with key NULL) delivers
 * every change the tail applies, in log order, through cb from gcs_client_poll():
 * status 0 with seq, kind (GCS_OP_PUT or GCS_OP_DEL), key and value.  Each delivery is
 * acknowledged by the next poll; a subscriber more than GCS_SUB_WINDOW (4096) changes
 * behind gets status PRISM_E_FULL once and nothing more, so a slow subscriber never
 * holds up writers or the tail's memory: it re-reads what it needs and calls
 * gcs_client_resubscribe().  Reads moving to another replica (a tail that died or handed
 * over) also give PRISM_E_FULL: changes may have been missed meanwhile.  A table
 * subscription listens on every shard; seq numbers are per shard (per key they rise).
 * Without a master, a broken link to the tail gives PRISM_E_PEER_GONE. */
typedef void (*gcs_sub_cb)(void *arg, int status, uint64_t seq, int kind, const uint8_t *key,
			   size_t key_len, const uint8_t *value, size_t value_len);
PRISM_API int gcs_client_subscribe(gcs_client *c, uint8_t table, const void *key,
				   size_t key_len, gcs_sub_cb cb, void *arg, uint64_t *id);
PRISM_API int gcs_client_resubscribe(gcs_client *c, uint64_t id);
PRISM_API int gcs_client_unsubscribe(gcs_client *c, uint64_t id);

/* Complete what has arrived; returns callbacks run, or a negative code. */
PRISM_API int gcs_client_poll(gcs_client *c, int64_t timeout_ns);
/* Requests still waiting. */
PRISM_API size_t gcs_client_pending(const gcs_client *c);

#ifdef __cplusplus
}
#endif
#endif
