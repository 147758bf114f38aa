/* gcs/record.h — the encoding of the GCS's records, one typed record per table.
 *
 * Every value the GCS stores, logs and replicates is one record: the bytes below, built
 * and parsed with the base/wire.h field codec (little-endian integers, ids as their 16
 * bytes, strings and bytes as a u32 length then the bytes, counts as a u32).
 *
 *   offset  size  field
 *        0     1  version  GCS_RECORD_VERSION
 *        1     1  table    enum gcs_table
 *        2        the table's fields, in the order its struct below lists them
 *
 * An array is its u32 count followed by that many elements (only the first `count` of the
 * struct's array are encoded).  The encoding has no padding, no optional fields and no
 * tags, so every record has exactly one encoding: decoding then encoding gives back the
 * same bytes, and a replica can compare records byte by byte.
 *
 * Ownership.  Records are plain structs the caller owns; every field may be read and
 * written.  Decoding is zero-copy like prism_wire_reader: the gcs_str and gcs_bytes of a
 * decoded record point into the input buffer (borrowed; valid as long as it is), and a
 * gcs_str is NOT NUL-terminated.  Encoding borrows the record and writes into a buffer
 * the caller owns.  Nothing here allocates.
 *
 * Thread safety.  No global state; any function may run on any thread.  A record or
 * buffer that one thread writes must not be read by another at the same time.
 *
 * Errors.  Functions return 0 or a negative code from base/error.h.  Decoders check, in
 * the order the bytes come, so the first fault in the input decides:
 *   no bytes at all, or input that ends inside a field       -> PRISM_E_TRUNCATED
 *   a version other than GCS_RECORD_VERSION                   -> PRISM_E_BAD_VERSION
 *   another table than the one asked for (or none known)      -> PRISM_E_PROTO
 *   a length or count above its limit                         -> PRISM_E_TOO_BIG
 *   a state byte out of range, a NUL inside a string, an id
 *   whose kind byte is above PRISM_ID_KIND_MAX                -> PRISM_E_PROTO
 *   bytes left after the last field                           -> PRISM_E_PROTO
 * A length or count is judged against its limit before the input is checked to hold that
 * many bytes, so an oversized field is TOO_BIG even when the input is cut short.  A
 * decoder never reads outside buf[0..len).  On failure *out is zeroed.
 *
 * The typed functions, for each table (node, object, task, actor, function, job, kv):
 *   int gcs_node_encoded_size(const gcs_node_rec *rec, size_t *size);
 *   int gcs_node_encode(const gcs_node_rec *rec, uint8_t *buf, size_t cap, size_t *len);
 *   int gcs_node_decode(const uint8_t *buf, size_t len, gcs_node_rec *out);
 * are the generic gcs_record_*() functions below with the table filled in.
 */
#ifndef PRISM_GCS_RECORD_H
#define PRISM_GCS_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "base/api.h"
#include "base/id.h"
#include "transport/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GCS_RECORD_VERSION 1

/* The tables; the value is the record's table byte, so it never changes once used. */
enum gcs_table {
	GCS_T_NODE = 1,
	GCS_T_OBJECT,
	GCS_T_TASK,
	GCS_T_ACTOR,
	GCS_T_FUNCTION,
	GCS_T_JOB,
	GCS_T_KV,
	GCS_T_MAX = GCS_T_KV,
};

/* X(NAME, name) for every table: GCS_T_<NAME>, gcs_<name>_rec, gcs_<name>_encode()... */
#define GCS_TABLE_LIST(X)     \
	X(NODE, node)         \
	X(OBJECT, object)     \
	X(TASK, task)         \
	X(ACTOR, actor)       \
	X(FUNCTION, function) \
	X(JOB, job)           \
	X(KV, kv)

/* ---- Limits.  Each is enforced by both the encoder and the decoders. ---- */

/* A node's address, "tcp://host:port": the transport's own limit. */
#define GCS_ADDRESS_MAX TRANSPORT_ADDR_MAX
/* 16 resources per node: CPU, GPU and custom labels; a node loop keeps fewer (8). */
#define GCS_NODE_MAX_RESOURCES 16
/* 64 bytes: resource names are short labels ("CPU", "camera"). */
#define GCS_RESOURCE_NAME_MAX 64
/* 64 locations per object: enough copies to spread pulls of a broadcast object, while an
 * object record stays near 1 KiB. */
#define GCS_OBJECT_MAX_LOCATIONS 64
/* A task's returns: PRISM_MAX_RETURNS in prism.h, which this layer cannot include. */
#define GCS_TASK_MAX_RETURNS 16
/* 255 bytes: function, class and actor names (actor names are at most 63 on a node; a
 * function may be named "library:symbol"). */
#define GCS_NAME_MAX 255
/* 4096 bytes: PATH_MAX, for a function's code path. */
#define GCS_CODE_PATH_MAX 4096
/* 1 MiB: a task spec (with its inline arguments, each at most 64 KiB) or a kv value.  The
 * GCS keeps lineage and metadata, not data: larger values belong in the object store. */
#define GCS_VALUE_MAX (1u << 20)
/* The largest encoded record: a task with a GCS_VALUE_MAX spec and every return is
 * GCS_VALUE_MAX + 282 bytes; the rest is headroom.  Every other table is smaller. */
#define GCS_RECORD_MAX (GCS_VALUE_MAX + 1024)

/* ---- Field types ---- */

/* Text: len bytes at p, no NUL among them, not NUL-terminated.  p may be NULL when len
 * is 0. */
typedef struct gcs_str {
	const char *p;
	uint32_t len;
} gcs_str;

/* Opaque bytes: len bytes at p.  p may be NULL when len is 0. */
typedef struct gcs_bytes {
	const uint8_t *p;
	uint32_t len;
} gcs_bytes;

/* States are stored in a uint8_t field of the record; other values are refused. */
enum gcs_node_state { GCS_NODE_ALIVE, GCS_NODE_DEAD };
enum gcs_actor_state {
	GCS_ACTOR_PENDING,
	GCS_ACTOR_ALIVE,
	GCS_ACTOR_RESTARTING,
	GCS_ACTOR_DEAD
};
enum gcs_job_state { GCS_JOB_RUNNING, GCS_JOB_FINISHED, GCS_JOB_FAILED };

/* ---- Records ---- */

typedef struct gcs_resource {
	gcs_str name;          /* at most GCS_RESOURCE_NAME_MAX bytes */
	uint64_t amount_milli; /* thousandths of a unit, so fractions add up exactly */
} gcs_resource;

typedef struct gcs_node_rec {
	prism_id id;
	gcs_str address; /* at most GCS_ADDRESS_MAX bytes */
	uint32_t n_resources;
	gcs_resource resources[GCS_NODE_MAX_RESOURCES];
	uint64_t heartbeat_ns; /* its last heartbeat, CLOCK_REALTIME ns */
	uint32_t load;         /* tasks queued on the node */
	uint8_t state;         /* enum gcs_node_state */
	uint32_t n_available;
	gcs_resource available[GCS_NODE_MAX_RESOURCES]; /* not held by leases, as of the
							 * heartbeat */
	uint64_t store_used;                            /* object store bytes in use */
	uint64_t store_capacity;                        /* object store arena bytes */
} gcs_node_rec;

typedef struct gcs_object_rec {
	prism_id id;
	uint64_t size;  /* bytes */
	prism_id owner; /* the process that owns the object's lifetime */
	uint32_t n_locations;
	prism_id locations[GCS_OBJECT_MAX_LOCATIONS]; /* nodes holding a copy */
} gcs_object_rec;

typedef struct gcs_task_rec {
	prism_id id;
	gcs_bytes spec; /* the lineage: the spec that produces the returns; <= GCS_VALUE_MAX */
	uint32_t n_returns;
	prism_id returns[GCS_TASK_MAX_RETURNS]; /* the objects it produces */
} gcs_task_rec;

typedef struct gcs_actor_rec {
	prism_id id;
	prism_id node;       /* where it runs (or last ran) */
	uint8_t state;       /* enum gcs_actor_state */
	uint32_t restarts;   /* times it was restarted */
	prism_id checkpoint; /* object holding its last checkpoint; nil if none */
	gcs_str name;        /* "" or a unique name; at most GCS_NAME_MAX bytes */
	gcs_str class_name;  /* at most GCS_NAME_MAX bytes */
} gcs_actor_rec;

typedef struct gcs_function_rec {
	gcs_str name;        /* at most GCS_NAME_MAX bytes */
	gcs_bytes code_path; /* library that holds it; at most GCS_CODE_PATH_MAX bytes */
	uint64_t hash;       /* the 64-bit hash workers find it by */
} gcs_function_rec;

typedef struct gcs_job_rec {
	prism_id id;
	gcs_str driver_address; /* at most GCS_ADDRESS_MAX bytes */
	uint64_t start_ns;      /* CLOCK_REALTIME ns */
	uint8_t state;          /* enum gcs_job_state */
} gcs_job_rec;

/* The value of a kv entry; the key is the store's. */
typedef struct gcs_kv_rec {
	gcs_bytes value; /* at most GCS_VALUE_MAX bytes */
} gcs_kv_rec;

/* Any record, for code that picks the table at run time. */
typedef union gcs_record {
#define GCS__UNION_MEMBER(NAME, name) gcs_##name##_rec name;
	GCS_TABLE_LIST(GCS__UNION_MEMBER)
#undef GCS__UNION_MEMBER
} gcs_record;

/* ---- Tables ---- */

/* "node", "object", "task", "actor", "function", "job", "kv"; NULL for anything else. */
const char *gcs_table_name(enum gcs_table table);
/* The table named `name` (as gcs_table_name() spells it) into *out.  -EINVAL for NULL or
 * an unknown name; *out is written only on success. */
int gcs_table_parse(const char *name, enum gcs_table *out);

/* ---- Generic codec.  rec and out point to the gcs_<table>_rec of `table`. ---- */

/* The exact encoded size of *rec into *size, after checking that it can be encoded:
 * PRISM_E_TOO_BIG for a length or count above its limit; -EINVAL for a bad table, a NULL
 * argument, a state out of range, an id of a kind above PRISM_ID_KIND_MAX, a NUL inside
 * a gcs_str, or a NULL p with a nonzero len.  *size is 0 on failure. */
int gcs_record_size(enum gcs_table table, const void *rec, size_t *size);

/* Encode *rec into buf, which has cap bytes (buf may be NULL when cap is 0).  Errors as
 * for gcs_record_size(), and -ENOSPC when the record is longer than cap.  On success and
 * on -ENOSPC *len (if len is not NULL) gets the encoded size, so a caller may ask with
 * cap 0 and retry; on other errors it gets 0.  Nothing is written on failure. */
int gcs_record_encode(enum gcs_table table, const void *rec, uint8_t *buf, size_t cap,
		      size_t *len);

/* Decode the record of `table` that fills buf[0..len) exactly into *out (zero-copy; see
 * the contract above for the errors).  -EINVAL for a bad table, a NULL out, or a NULL buf
 * with len > 0. */
int gcs_record_decode(enum gcs_table table, const uint8_t *buf, size_t len, void *out);

/* Validate buf[0..len) as a whole record of whichever table its table byte names (a fully
 * checked decode, with the same errors); the store calls it before accepting a write.  On
 * success *table (if table is not NULL) is that table; on failure 0.  -EINVAL for a NULL
 * buf with len > 0. */
int gcs_record_check(const uint8_t *buf, size_t len, enum gcs_table *table);

/* ---- Typed codec: gcs_<name>_encoded_size(), _encode() and _decode() per table ---- */

#define GCS__DECLARE(NAME, name)                                                       \
	int gcs_##name##_encoded_size(const gcs_##name##_rec *rec, size_t *size);      \
	int gcs_##name##_encode(const gcs_##name##_rec *rec, uint8_t *buf, size_t cap, \
				size_t *len);                                          \
	int gcs_##name##_decode(const uint8_t *buf, size_t len, gcs_##name##_rec *out);
GCS_TABLE_LIST(GCS__DECLARE)
#undef GCS__DECLARE

#ifdef __cplusplus
}
#endif
#endif
