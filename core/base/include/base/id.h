/* base/id.h — 16-byte ids for objects, tasks, actors, nodes, workers and jobs.
 *
 * Layout (bytes): [0..7] a 64-bit prefix drawn from getrandom() once per process and again
 * in every forked child; [8..13] a 48-bit per-process counter; [14] an index; [15] the
 * kind.  New ids therefore cost one atomic increment and never collide within a process;
 * across processes a collision needs two equal random 64-bit prefixes.  An object that a
 * task returns derives its id from the task's: same prefix and counter, kind OBJECT, index
 * = the return's position (1-based), so the owner can name a task's returns before it
 * runs, as Ray does.  The all-zero id is "nil".
 *
 * Ids are plain values: copy them, compare them with prism_id_eq().  Thread safety: all
 * functions are thread-safe.
 */
#ifndef PRISM_BASE_ID_H
#define PRISM_BASE_ID_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "base/api.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PRISM_ID_SIZE 16
#define PRISM_ID_HEX_LEN 32 /* characters, without the terminating NUL */

typedef struct prism_id {
	uint8_t b[PRISM_ID_SIZE];
} prism_id;

enum prism_id_kind {
	PRISM_ID_NIL = 0,
	PRISM_ID_OBJECT = 1,
	PRISM_ID_TASK = 2,
	PRISM_ID_ACTOR = 3,
	PRISM_ID_NODE = 4,
	PRISM_ID_WORKER = 5,
	PRISM_ID_JOB = 6,
	PRISM_ID_KIND_MAX = PRISM_ID_JOB,
};

/* A fresh, process-unique id of the given kind (index 0). */
prism_id prism_id_new(enum prism_id_kind kind);
/* The id of kind `kind` and index `index` derived from `base` (same prefix and counter). */
prism_id prism_id_derive(prism_id base, enum prism_id_kind kind, uint8_t index);

static inline enum prism_id_kind prism_id_kind(prism_id id)
{
	return (enum prism_id_kind)id.b[15];
}
static inline uint8_t prism_id_index(prism_id id)
{
	return id.b[14];
}
static inline bool prism_id_eq(prism_id a, prism_id b)
{
	return memcmp(a.b, b.b, PRISM_ID_SIZE) == 0;
}
static inline bool prism_id_is_nil(prism_id id)
{
	static const prism_id nil;
	return prism_id_eq(id, nil);
}
/* A well-mixed 64-bit hash for hash tables (the prefix is random but the counter is
 * sequential, so both halves go through a multiply-xorshift finaliser). */
static inline uint64_t prism_id_hash(prism_id id)
{
	uint64_t lo, hi;
	memcpy(&lo, id.b, 8);
	memcpy(&hi, id.b + 8, 8);
	uint64_t h = lo ^ (hi * 0x9e3779b97f4a7c15ull);
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

/* Lower-case hex into out, which must hold PRISM_ID_HEX_LEN + 1 bytes; returns out. */
char *prism_id_to_hex(prism_id id, char *out);
/* Parse exactly 32 hex digits (either case) followed by NUL.  -EINVAL for NULL, a wrong
 * length, a non-hex character, or a kind byte above PRISM_ID_KIND_MAX; *out is written
 * only on success. */
int prism_id_from_hex(const char *hex, prism_id *out);

#ifdef __cplusplus
}
#endif
#endif
