/* gcs/store.h — one GCS replica's state: the tables, and the operations that change them.
 *
 * Every replica of a chain holds the same store and applies the same log of operations in
 * the same order (sequence numbers from 1, no gaps), so the state is a function of the log.
 * An operation is a PUT or a DEL of (table, key), carrying the client's id and request id:
 * a request the store already applied for that client (request ids per client only grow,
 * since a client's requests reach the head in order over one link and a chain keeps a
 * prefix of the head's log) is recognised and not applied again, so a client that retries
 * after a reconfiguration has its write applied once.  The per-client high-water marks are
 * part of the state (and of snapshots).  PUTs into the typed tables must hold a valid
 * record of that table (gcs/record.h); KV values are any bytes.
 *
 * Operations travel as bytes (the log, replication): gcs_op_encode()/gcs_op_decode() give
 * the wire form, a version byte first; the decoder checks every length.
 *
 * Ownership: the store owns copies of keys and values.  Pointers returned by
 * gcs_store_get() and passed to gcs_store_foreach() callbacks are borrowed until the next
 * change of the store.  Decoded operations point into their input.
 *
 * Thread safety: none; a store belongs to its shard server's thread.
 *
 * Errors: 0 or a negative code; -EINVAL for bad arguments, PRISM_E_TOO_BIG for a key or
 * value beyond the limits, the record decoder's code for a malformed typed record,
 * PRISM_E_NOENT-style lookups return -ENOENT, -ENOMEM.
 */
#ifndef PRISM_GCS_STORE_H
#define PRISM_GCS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/api.h"
#include "base/id.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gcs_store gcs_store;

/* 1 KiB keys: ids are 16 bytes, names and KV keys are short; a bound keeps hashing cheap. */
#define GCS_STORE_KEY_MAX 1024u
/* 16 MiB values: a task spec with its inline arguments; larger data belongs in objects. */
#define GCS_STORE_VALUE_MAX (16u << 20)

enum gcs_op_kind { GCS_OP_PUT = 1, GCS_OP_DEL = 2 };

/* One operation; a plain value.  key/value are borrowed (into the decoded input). */
typedef struct gcs_op {
	enum gcs_op_kind kind;
	uint8_t table; /* enum gcs_table */
	const uint8_t *key;
	uint32_t key_len;
	const uint8_t *value; /* PUT */
	uint32_t value_len;
	prism_id client; /* who asked; nil: no deduplication */
	uint64_t req_id; /* the client's request id, > 0 when client is set */
} gcs_op;

/* Wire form: version 1, kind, table, client (16), req_id (8), key (u32 + bytes), value
 * (u32 + bytes), all little-endian.  encode: -ENOSPC when cap is short (*len says how
 * much is needed).  decode: PRISM_E_TRUNCATED, PRISM_E_BAD_VERSION, PRISM_E_PROTO (bad
 * kind or table, trailing bytes), PRISM_E_TOO_BIG. */
PRISM_API size_t gcs_op_size(const gcs_op *op);
PRISM_API int gcs_op_encode(const gcs_op *op, uint8_t *buf, size_t cap, size_t *len);
PRISM_API int gcs_op_decode(const uint8_t *buf, size_t len, gcs_op *out);

PRISM_API int gcs_store_create(gcs_store **out);
PRISM_API void gcs_store_destroy(gcs_store *s);

/* What applying an operation did. */
enum gcs_apply_result {
	GCS_APPLIED = 0,   /* the state changed (a DEL of a missing key included) */
	GCS_DUPLICATE = 1, /* this client's request was applied before: nothing changed */
};

/* Apply op as log entry seq (which must be the store's last seq + 1: -EINVAL
 * otherwise).  Returns GCS_APPLIED or GCS_DUPLICATE, or a negative code for an invalid
 * operation, which changes nothing (the seq is still consumed, so every replica agrees). */
PRISM_API int gcs_store_apply(gcs_store *s, uint64_t seq, const gcs_op *op);

/* Look up (table, key): the value and the seq of the PUT that wrote it.  -ENOENT. */
PRISM_API int gcs_store_get(const gcs_store *s, uint8_t table, const void *key, size_t key_len,
			    const uint8_t **value, size_t *value_len, uint64_t *version);

/* The seq of the last operation applied (0: none). */
PRISM_API uint64_t gcs_store_seq(const gcs_store *s);
/* Entries in all tables (client high-water marks not counted). */
PRISM_API size_t gcs_store_count(const gcs_store *s);

/* Visit every entry, client marks included (table 0, key: the client id, value: its
 * request id as 8 little-endian bytes), in no particular order.  A callback returning
 * non-zero stops the walk and its value is returned. */
typedef int (*gcs_store_visit)(uint8_t table, const uint8_t *key, size_t key_len,
			       const uint8_t *value, size_t value_len, uint64_t version,
			       void *arg);
PRISM_API int gcs_store_foreach(const gcs_store *s, gcs_store_visit cb, void *arg);

/* Snapshots: the whole store in one file, written to path.tmp, synced and renamed over
 * path, so a crash leaves the old snapshot or the new one.  Loading checks the magic,
 * version, every length and a CRC-32C over the whole file: PRISM_E_CORRUPT,
 * PRISM_E_TRUNCATED, PRISM_E_BAD_MAGIC, PRISM_E_BAD_VERSION; -ENOENT when there is
 * none.  load fills an empty store (-EINVAL otherwise) and sets its seq. */
PRISM_API int gcs_store_snapshot(const gcs_store *s, const char *path);
PRISM_API int gcs_store_load(gcs_store *s, const char *path);
/* The same image in memory (state transfer to a new replica): dump allocates *out (the
 * caller frees it with prism_free()); load_buf checks it as load does. */
PRISM_API int gcs_store_dump(const gcs_store *s, uint8_t **out, size_t *len);
PRISM_API int gcs_store_load_buf(gcs_store *s, const uint8_t *p, size_t len);

#ifdef __cplusplus
}
#endif
#endif
