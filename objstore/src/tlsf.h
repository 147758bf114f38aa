/* tlsf.h — internal: a two-level segregated fit allocator over a span of shared memory.
 *
 * TLSF (Masmano, Ripoll, Crespo, Real: "TLSF: a new dynamic memory allocator for
 * real-time systems", ECRTS 2004) keeps one free list per size class.  The first level
 * splits sizes by powers of two, the second splits each power of two into 32 linear
 * classes; two bitmaps say which lists are non-empty, so malloc and free are O(1): a
 * couple of find-first-set instructions, one list unlink, at most one split or two merges.
 * Fragmentation stays low because a request is served from the smallest class whose
 * every block fits ("good fit"), and freed blocks merge with free physical neighbours at
 * once.
 *
 * Layout.  Everything is an offset from `base` (the region start), never a pointer, so
 * every process that maps the region at its own address can use it.  A block starts with
 * a 16-byte header {prev_phys, size|flags}; its data follows at a 64-byte boundary, so
 * headers sit at 48 mod 64 and every block size is a multiple of 64 (the smallest is 64:
 * 16 bytes of header and 48 of data).  A free block keeps its list links in the first 16
 * bytes of its data.  A zero-sized "sentinel" header at `hi` ends the span, so merging
 * never runs off its end.  The control block (bitmaps and list heads) lives in the region
 * too, at its own offset.
 *
 * Not thread-safe: the object store calls it under its region lock.  Every offset read
 * back from the region is range-checked before use; a broken link makes a call return
 * PRISM_E_CORRUPT instead of wandering through memory, and the store then rebuilds the
 * allocator from its object table (objstore__tlsf_rebuild_*), which it treats as the truth.
 */
#ifndef OBJSTORE_TLSF_H
#define OBJSTORE_TLSF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TLSF_ALIGN_LOG2 6
#define TLSF_ALIGN (1u << TLSF_ALIGN_LOG2) /* data alignment: one cache line */
#define TLSF_HDR 16u                       /* prev_phys + size|flags */
#define TLSF_MIN_BLOCK TLSF_ALIGN          /* header plus room for the two free links */
#define TLSF_SL_LOG2 5
#define TLSF_SL_COUNT (1u << TLSF_SL_LOG2)
/* Below 2 KiB (32 classes of 64 bytes) every class holds one exact size. */
#define TLSF_FL_SHIFT (TLSF_SL_LOG2 + TLSF_ALIGN_LOG2)
#define TLSF_SMALL (1ull << TLSF_FL_SHIFT)
/* Blocks up to 2^46 bytes (64 TiB), far above any node's memory. */
#define TLSF_FL_MAX 46
#define TLSF_FL_COUNT (TLSF_FL_MAX - TLSF_FL_SHIFT + 2)
#define TLSF_MAX_SPAN (1ull << TLSF_FL_MAX)

/* The control block, stored in the region. */
struct tlsf_ctl {
	uint64_t fl_bitmap;
	uint32_t sl_bitmap[TLSF_FL_COUNT];
	uint64_t heads[TLSF_FL_COUNT][TLSF_SL_COUNT];
	uint64_t used_bytes; /* sum of used block sizes, headers included */
	uint64_t used_blocks;
	uint64_t free_bytes;
	uint64_t free_blocks;
};

/* A process-local view.  lo and hi come from validated geometry, never re-read from the
 * region: lo is the first block header, hi the sentinel header. */
struct tlsf {
	uint8_t *base;
	struct tlsf_ctl *ctl;
	uint64_t lo;
	uint64_t hi;
};

/* State of a rebuild in progress: blocks are laid down in address order. */
struct tlsf_rebuild {
	uint64_t cursor;
	uint64_t prev;
	bool prev_free;
};

/* The view of a span; (hi - lo) must be a multiple of 64 and at least 64. */
void objstore__tlsf_view(struct tlsf *t, void *base, uint64_t ctl_off, uint64_t lo,
			 uint64_t hi);
/* One free block over the whole span. */
void objstore__tlsf_format(const struct tlsf *t);

/* Block size for an object of nbytes (header and padding included); 0 when too large. */
uint64_t objstore__tlsf_block_size(uint64_t nbytes);
/* The largest object an empty span can hold. */
static inline uint64_t objstore__tlsf_capacity(const struct tlsf *t)
{
	return t->hi - t->lo - TLSF_HDR;
}

/* Allocate nbytes; *data_off is 64-byte aligned (relative to base).  -ENOSPC when no free
 * block fits, PRISM_E_CORRUPT when a list link is out of range. */
int objstore__tlsf_alloc(const struct tlsf *t, uint64_t nbytes, uint64_t *data_off);
/* Free what tlsf_alloc returned.  -EINVAL for an offset that is not a used block (double
 * free included), PRISM_E_CORRUPT for a broken neighbour or link. */
int objstore__tlsf_free(const struct tlsf *t, uint64_t data_off);

/* Rebuild from the used blocks alone, given in increasing address order: the span between
 * them becomes free blocks.  rebuild_used returns -ERANGE when a block overlaps the
 * previous one or runs past the span (the caller drops that object). */
void objstore__tlsf_rebuild_begin(const struct tlsf *t, struct tlsf_rebuild *rb);
int objstore__tlsf_rebuild_used(const struct tlsf *t, struct tlsf_rebuild *rb,
				uint64_t data_off, uint64_t nbytes);
void objstore__tlsf_rebuild_end(const struct tlsf *t, struct tlsf_rebuild *rb);

/* Walk the used blocks in address order: start with *cursor = 0; returns 1 and the next
 * used block, 0 at the end, PRISM_E_CORRUPT on a bad header. */
int objstore__tlsf_next_used(const struct tlsf *t, uint64_t *cursor, uint64_t *data_off,
			     uint64_t *block_size);
/* Check every invariant: physical chain, flags, no two free neighbours, lists, bitmaps,
 * counters.  0 or PRISM_E_CORRUPT (the reason is logged). */
int objstore__tlsf_check(const struct tlsf *t);

#endif
