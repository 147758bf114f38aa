/* tlsf.c — two-level segregated fit allocator over offsets; see tlsf.h. */
#include <errno.h>
#include <string.h>

#include "base/error.h"
#include "base/log.h"
#include "tlsf.h"

#define F_FREE 1ull      /* this block is free */
#define F_PREV_FREE 2ull /* the block before it is free */
#define F_MASK 3ull

struct blk {
	uint64_t prev_phys; /* header offset of the previous block; 0 for the first */
	uint64_t size;      /* block size | flags */
	uint64_t next_free; /* free blocks only: list links, 0 = none */
	uint64_t prev_free;
};

static inline struct blk *B(const struct tlsf *t, uint64_t off)
{
	return (struct blk *)(t->base + off);
}

static inline uint64_t bsize(const struct blk *b)
{
	return b->size & ~F_MASK;
}

/* A plausible block header offset: inside the span, on the 48-mod-64 grid. */
static inline bool ok_off(const struct tlsf *t, uint64_t off)
{
	return off >= t->lo && off < t->hi && ((off - t->lo) & (TLSF_ALIGN - 1)) == 0;
}

static inline unsigned fls64(uint64_t v)
{
	return 63u - (unsigned)__builtin_clzll(v);
}

/* The class that holds blocks of exactly `size` bytes. */
static void mapping_insert(uint64_t size, unsigned *fl, unsigned *sl)
{
	if (size < TLSF_SMALL) {
		*fl = 0;
		*sl = (unsigned)(size >> TLSF_ALIGN_LOG2);
		return;
	}
	unsigned f = fls64(size);
	*sl = (unsigned)(size >> (f - TLSF_SL_LOG2)) ^ TLSF_SL_COUNT;
	*fl = f - TLSF_FL_SHIFT + 1;
}

/* The first class whose every block holds `size` bytes: round up to the next class. */
static void mapping_search(uint64_t size, unsigned *fl, unsigned *sl)
{
	if (size >= TLSF_SMALL)
		size += (1ull << (fls64(size) - TLSF_SL_LOG2)) - 1;
	mapping_insert(size, fl, sl);
}

/* The first non-empty class at or above (fl, sl); false when there is none. */
static bool find_class(const struct tlsf_ctl *c, unsigned *fl, unsigned *sl)
{
	if (*fl >= TLSF_FL_COUNT)
		return false;
	uint32_t sm = c->sl_bitmap[*fl] & (~0u << *sl);
	if (!sm) {
		uint64_t fm = c->fl_bitmap & (~0ull << (*fl + 1));
		if (!fm)
			return false;
		*fl = (unsigned)__builtin_ctzll(fm);
		sm = c->sl_bitmap[*fl];
		if (!sm)
			return false;
	}
	*sl = (unsigned)__builtin_ctz(sm);
	return true;
}

static void insert_free(const struct tlsf *t, uint64_t off, uint64_t size)
{
	struct tlsf_ctl *c = t->ctl;
	unsigned fl, sl;
	mapping_insert(size, &fl, &sl);
	struct blk *b = B(t, off);
	uint64_t head = c->heads[fl][sl];
	b->next_free = head;
	b->prev_free = 0;
	if (head)
		B(t, head)->prev_free = off;
	c->heads[fl][sl] = off;
	c->sl_bitmap[fl] |= 1u << sl;
	c->fl_bitmap |= 1ull << fl;
	c->free_bytes += size;
	c->free_blocks++;
}

static int remove_free(const struct tlsf *t, uint64_t off, uint64_t size)
{
	struct tlsf_ctl *c = t->ctl;
	unsigned fl, sl;
	mapping_insert(size, &fl, &sl);
	struct blk *b = B(t, off);
	uint64_t next = b->next_free, prev = b->prev_free;
	if ((next && !ok_off(t, next)) || (prev && !ok_off(t, prev)) ||
	    (!prev && c->heads[fl][sl] != off))
		return PRISM_E_CORRUPT;
	if (next)
		B(t, next)->prev_free = prev;
	if (prev) {
		B(t, prev)->next_free = next;
	} else {
		c->heads[fl][sl] = next;
		if (!next) {
			c->sl_bitmap[fl] &= ~(1u << sl);
			if (!c->sl_bitmap[fl])
				c->fl_bitmap &= ~(1ull << fl);
		}
	}
	c->free_bytes -= size;
	c->free_blocks--;
	return 0;
}

void objstore__tlsf_view(struct tlsf *t, void *base, uint64_t ctl_off, uint64_t lo, uint64_t hi)
{
	t->base = base;
	t->ctl = (struct tlsf_ctl *)((uint8_t *)base + ctl_off);
	t->lo = lo;
	t->hi = hi;
}

void objstore__tlsf_format(const struct tlsf *t)
{
	struct tlsf_rebuild rb;
	objstore__tlsf_rebuild_begin(t, &rb);
	objstore__tlsf_rebuild_end(t, &rb);
}

uint64_t objstore__tlsf_block_size(uint64_t nbytes)
{
	if (nbytes > TLSF_MAX_SPAN)
		return 0;
	uint64_t need = (nbytes + TLSF_HDR + TLSF_ALIGN - 1) & ~(uint64_t)(TLSF_ALIGN - 1);
	return need < TLSF_MIN_BLOCK ? TLSF_MIN_BLOCK : need;
}

/* Good fit first; when the rounded-up class is empty, look through the exact class for a
 * block that happens to be large enough.  That second look only runs when the store is
 * nearly full, and it makes "no block fits" exact: a request as large as the whole empty
 * span must succeed. */
static int take_block(const struct tlsf *t, uint64_t need, uint64_t *off)
{
	struct tlsf_ctl *c = t->ctl;
	unsigned fl, sl;
	mapping_search(need, &fl, &sl);
	if (find_class(c, &fl, &sl)) {
		*off = c->heads[fl][sl];
	} else {
		mapping_insert(need, &fl, &sl);
		uint64_t cur = fl < TLSF_FL_COUNT ? c->heads[fl][sl] : 0;
		for (uint64_t n = 0; cur; n++) {
			if (n > c->free_blocks || !ok_off(t, cur))
				return PRISM_E_CORRUPT;
			if (bsize(B(t, cur)) >= need)
				break;
			cur = B(t, cur)->next_free;
		}
		if (!cur)
			return -ENOSPC;
		*off = cur;
	}
	if (!ok_off(t, *off))
		return PRISM_E_CORRUPT;
	struct blk *b = B(t, *off);
	uint64_t size = bsize(b);
	if (!(b->size & F_FREE) || size < need || size > t->hi - *off)
		return PRISM_E_CORRUPT;
	return remove_free(t, *off, size);
}

int objstore__tlsf_alloc(const struct tlsf *t, uint64_t nbytes, uint64_t *data_off)
{
	uint64_t need = objstore__tlsf_block_size(nbytes), off;
	if (!need || need > t->hi - t->lo)
		return -ENOSPC;
	int rc = take_block(t, need, &off);
	if (rc)
		return rc;
	struct blk *b = B(t, off);
	uint64_t size = bsize(b);
	uint64_t next = off + size;
	if (size - need >= TLSF_MIN_BLOCK) {
		uint64_t rem = off + need;
		struct blk *r = B(t, rem);
		r->prev_phys = off;
		r->size = (size - need) | F_FREE;
		B(t, next)->prev_phys = rem;
		insert_free(t, rem, size - need);
		size = need;
	} else {
		B(t, next)->size &= ~F_PREV_FREE;
	}
	b->size = size | (b->size & F_PREV_FREE);
	t->ctl->used_bytes += size;
	t->ctl->used_blocks++;
	*data_off = off + TLSF_HDR;
	return 0;
}

/* Merge the free block before `*off` into it; *off and *size describe the result. */
static int merge_prev(const struct tlsf *t, uint64_t *off, uint64_t *size)
{
	uint64_t p = B(t, *off)->prev_phys;
	if (!ok_off(t, p) || p >= *off)
		return PRISM_E_CORRUPT;
	struct blk *pb = B(t, p);
	uint64_t psize = bsize(pb);
	if (!(pb->size & F_FREE) || p + psize != *off)
		return PRISM_E_CORRUPT;
	int rc = remove_free(t, p, psize);
	if (rc)
		return rc;
	*off = p;
	*size += psize;
	return 0;
}

int objstore__tlsf_free(const struct tlsf *t, uint64_t data_off)
{
	if (data_off < TLSF_HDR || !ok_off(t, data_off - TLSF_HDR))
		return -EINVAL;
	uint64_t off = data_off - TLSF_HDR;
	struct blk *b = B(t, off);
	uint64_t size = bsize(b);
	if (b->size & F_FREE)
		return -EINVAL;
	if (size < TLSF_MIN_BLOCK || (size & (TLSF_ALIGN - 1)) || size > t->hi - off)
		return PRISM_E_CORRUPT;
	uint64_t next = off + size;
	t->ctl->used_bytes -= size;
	t->ctl->used_blocks--;
	int rc = 0;
	if (b->size & F_PREV_FREE)
		rc = merge_prev(t, &off, &size);
	struct blk *nb = B(t, next);
	if (!rc && next < t->hi && (nb->size & F_FREE)) {
		uint64_t nsize = bsize(nb);
		if (nsize < TLSF_MIN_BLOCK || nsize > t->hi - next)
			return PRISM_E_CORRUPT;
		rc = remove_free(t, next, nsize);
		size += nsize;
		next += nsize;
		nb = B(t, next);
	}
	if (rc)
		return rc;
	B(t, off)->size = size | F_FREE;
	nb->prev_phys = off;
	nb->size |= F_PREV_FREE;
	insert_free(t, off, size);
	return 0;
}

static void put_block(const struct tlsf *t, struct tlsf_rebuild *rb, uint64_t size,
		      bool is_free)
{
	struct blk *b = B(t, rb->cursor);
	b->prev_phys = rb->prev;
	b->size = size | (is_free ? F_FREE : 0) | (rb->prev_free ? F_PREV_FREE : 0);
	if (is_free) {
		insert_free(t, rb->cursor, size);
	} else {
		t->ctl->used_bytes += size;
		t->ctl->used_blocks++;
	}
	rb->prev = rb->cursor;
	rb->prev_free = is_free;
	rb->cursor += size;
}

void objstore__tlsf_rebuild_begin(const struct tlsf *t, struct tlsf_rebuild *rb)
{
	memset(t->ctl, 0, sizeof(*t->ctl));
	rb->cursor = t->lo;
	rb->prev = 0;
	rb->prev_free = false;
}

int objstore__tlsf_rebuild_used(const struct tlsf *t, struct tlsf_rebuild *rb,
				uint64_t data_off, uint64_t nbytes)
{
	uint64_t need = objstore__tlsf_block_size(nbytes);
	if (data_off < TLSF_HDR)
		return -ERANGE;
	uint64_t off = data_off - TLSF_HDR;
	if (!need || !ok_off(t, off) || off < rb->cursor || need > t->hi - off)
		return -ERANGE;
	if (off > rb->cursor)
		put_block(t, rb, off - rb->cursor, true);
	put_block(t, rb, need, false);
	return 0;
}

void objstore__tlsf_rebuild_end(const struct tlsf *t, struct tlsf_rebuild *rb)
{
	if (rb->cursor < t->hi)
		put_block(t, rb, t->hi - rb->cursor, true);
	struct blk *s = B(t, t->hi);
	s->prev_phys = rb->prev;
	s->size = rb->prev_free ? F_PREV_FREE : 0;
}

int objstore__tlsf_next_used(const struct tlsf *t, uint64_t *cursor, uint64_t *data_off,
			     uint64_t *block_size)
{
	uint64_t off = *cursor ? *cursor : t->lo;
	while (off < t->hi) {
		struct blk *b = B(t, off);
		uint64_t size = bsize(b);
		if (size < TLSF_MIN_BLOCK || (size & (TLSF_ALIGN - 1)) || size > t->hi - off)
			return PRISM_E_CORRUPT;
		off += size;
		if (!(b->size & F_FREE)) {
			*cursor = off;
			*data_off = off - size + TLSF_HDR;
			*block_size = size;
			return 1;
		}
	}
	*cursor = off;
	return 0;
}

#define FAIL(...)                                 \
	do {                                      \
		PRISM_LOG_E("tlsf", __VA_ARGS__); \
		return PRISM_E_CORRUPT;           \
	} while (0)

/* The physical chain: sizes, back links, flags; counts what it sees. */
static int check_chain(const struct tlsf *t, uint64_t *nfree, uint64_t *free_bytes)
{
	uint64_t off = t->lo, prev = 0, used = 0, nused = 0;
	bool prev_free = false;
	*nfree = *free_bytes = 0;
	while (off < t->hi) {
		struct blk *b = B(t, off);
		uint64_t size = bsize(b);
		bool is_free = b->size & F_FREE;
		if (size < TLSF_MIN_BLOCK || (size & (TLSF_ALIGN - 1)) || size > t->hi - off)
			FAIL("block at %lu: bad size %lu", (unsigned long)off,
			     (unsigned long)size);
		if (b->prev_phys != prev || !!(b->size & F_PREV_FREE) != prev_free)
			FAIL("block at %lu: bad back link or flag", (unsigned long)off);
		if (is_free && prev_free)
			FAIL("block at %lu: two free neighbours", (unsigned long)off);
		*nfree += is_free;
		*free_bytes += is_free ? size : 0;
		nused += !is_free;
		used += is_free ? 0 : size;
		prev = off;
		prev_free = is_free;
		off += size;
	}
	struct blk *s = B(t, t->hi);
	if (off != t->hi || bsize(s) != 0 || (s->size & F_FREE) || s->prev_phys != prev ||
	    !!(s->size & F_PREV_FREE) != prev_free)
		FAIL("bad sentinel");
	if (used != t->ctl->used_bytes || nused != t->ctl->used_blocks)
		FAIL("used counters %lu/%lu, chain says %lu/%lu",
		     (unsigned long)t->ctl->used_bytes, (unsigned long)t->ctl->used_blocks,
		     (unsigned long)used, (unsigned long)nused);
	return 0;
}

/* One free list: every member free, in the right class, doubly linked. */
static int check_list(const struct tlsf *t, unsigned fl, unsigned sl, uint64_t *left)
{
	uint64_t cur = t->ctl->heads[fl][sl], prev = 0;
	while (cur) {
		if (!ok_off(t, cur) || (*left)-- == 0)
			FAIL("list %u/%u: bad link or cycle", fl, sl);
		struct blk *b = B(t, cur);
		unsigned f, s;
		mapping_insert(bsize(b), &f, &s);
		if (!(b->size & F_FREE) || f != fl || s != sl || b->prev_free != prev)
			FAIL("list %u/%u: block at %lu misfiled", fl, sl, (unsigned long)cur);
		prev = cur;
		cur = b->next_free;
	}
	bool bit = t->ctl->sl_bitmap[fl] & (1u << sl);
	if (bit != (t->ctl->heads[fl][sl] != 0))
		FAIL("list %u/%u: bitmap disagrees", fl, sl);
	return 0;
}

int objstore__tlsf_check(const struct tlsf *t)
{
	uint64_t nfree, free_bytes;
	int rc = check_chain(t, &nfree, &free_bytes);
	if (rc)
		return rc;
	if (nfree != t->ctl->free_blocks || free_bytes != t->ctl->free_bytes)
		FAIL("free counters disagree with the chain");
	uint64_t left = nfree;
	for (unsigned fl = 0; fl < TLSF_FL_COUNT; fl++) {
		for (unsigned sl = 0; sl < TLSF_SL_COUNT; sl++) {
			rc = check_list(t, fl, sl, &left);
			if (rc)
				return rc;
		}
		if (!!(t->ctl->fl_bitmap & (1ull << fl)) != (t->ctl->sl_bitmap[fl] != 0))
			FAIL("first-level bitmap disagrees at %u", fl);
	}
	if (left != 0)
		FAIL("%lu free blocks are on no list", (unsigned long)left);
	return 0;
}
