/* gcs/wal.h — a GCS shard's write-ahead log: appended entries made durable in batches
 * with io_uring (a write linked to an fdatasync), replayed in order when a replica
 * restarts.
 *
 * File: a 16-byte header (magic "PRSMWAL1", version, reserved), then entries, each
 *   u32 length of the payload | u32 CRC-32C over seq and payload | u64 seq | payload
 * little-endian.  Sequence numbers start anywhere (after a snapshot) and rise by one.
 *
 * Recovery never accepts damage silently.  gcs_wal_open() replays every intact entry to
 * the callback in order and stops at the first entry that is cut short (the file ends
 * inside it: PRISM_E_TRUNCATED, the usual result of a crash during a write) or that does
 * not check out (bad CRC, a length beyond GCS_WAL_ENTRY_MAX, a seq out of order:
 * PRISM_E_CORRUPT).  It reports where in *info and logs it.  Without
 * GCS_WAL_TRUNCATE_TAIL it then fails with that code and leaves the file alone; with it,
 * it cuts the file after the last good entry, logs how many bytes it dropped, and opens
 * for appending.
 *
 * Ownership: the caller owns the wal; payloads passed to the replay callback are borrowed
 * for the call.  Appends are copied into the wal's buffer.  Thread safety: none.
 * Errors: 0 or a negative code (-errno from the file system and io_uring).
 */
#ifndef PRISM_GCS_WAL_H
#define PRISM_GCS_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "base/api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gcs_wal gcs_wal;

/* 32 MiB: a GCS value (16 MiB, gcs/store.h) plus its operation's fields, with room. */
#define GCS_WAL_ENTRY_MAX (32u << 20)
#define GCS_WAL_TRUNCATE_TAIL 0x1u

/* What opening found. */
typedef struct gcs_wal_info {
	uint64_t entries;     /* intact entries replayed */
	uint64_t first_seq;   /* seq of the first (0 when none) */
	uint64_t last_seq;    /* seq of the last */
	int tail_status;      /* 0, PRISM_E_TRUNCATED or PRISM_E_CORRUPT */
	uint64_t tail_offset; /* where the damage starts (the file's good length) */
	uint64_t tail_bytes;  /* bytes after it */
} gcs_wal_info;

/* Called for each intact entry, in order; non-zero stops the replay and open fails with
 * that value. */
typedef int (*gcs_wal_replay_cb)(uint64_t seq, const uint8_t *payload, size_t len, void *arg);

/* Open (creating when missing) the log at path and replay it.  cb may be NULL.  info may
 * be NULL.  PRISM_E_BAD_MAGIC / PRISM_E_BAD_VERSION for a file that is not a log. */
PRISM_API int gcs_wal_open(const char *path, unsigned flags, gcs_wal_replay_cb cb, void *arg,
			   gcs_wal_info *info, gcs_wal **out);
/* Flush what is buffered (waiting for it), close, free.  NULL-safe. */
PRISM_API void gcs_wal_close(gcs_wal *w);

/* Buffer one entry; seq must be the last one + 1 (any seq for an empty log).  -EINVAL out
 * of order, PRISM_E_TOO_BIG beyond GCS_WAL_ENTRY_MAX. */
PRISM_API int gcs_wal_append(gcs_wal *w, uint64_t seq, const void *payload, size_t len);
/* Make every buffered entry durable: one write and one fdatasync, linked, for the whole
 * batch (group commit); returns when both completed. */
PRISM_API int gcs_wal_sync(gcs_wal *w);
/* The seq of the last entry appended (0: none); and of the last one made durable. */
PRISM_API uint64_t gcs_wal_last_seq(const gcs_wal *w);
PRISM_API uint64_t gcs_wal_durable_seq(const gcs_wal *w);

/* Start a new, empty log at path after a snapshot covered everything up to seq: the next
 * append must be seq + 1.  Written to path.tmp, synced and renamed. */
PRISM_API int gcs_wal_reset(gcs_wal *w, uint64_t seq);

#ifdef __cplusplus
}
#endif
#endif
