/* objects.c — the table of objects this process owns or holds a ref to.
 *
 * Entries come from slabs of 1,024 and never move, so prism_get() can hand out a
 * pointer into an entry (small values live inside it).  The index is an open-addressing
 * table of pointers with linear probing and backward-shift deletion, kept at most half
 * full.  In steady state neither submitting nor completing a task allocates: entries are
 * recycled through a free list, and only values above OBJ_SMALL bytes take a heap copy.
 * Thread safety: none; the runtime is used from one thread at a time.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "base/alloc.h"
#include "rt.h"

/* Under ASan an entry on the free list is poisoned (all but its link), so a use of an
 * entry after its last ref went is reported like a use of freed memory. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
static void entry_poison(struct obj *o)
{
	ASAN_POISON_MEMORY_REGION(o, offsetof(struct obj, next_free));
	ASAN_POISON_MEMORY_REGION(o->small, sizeof(o->small));
}
static void entry_unpoison(struct obj *o)
{
	ASAN_UNPOISON_MEMORY_REGION(o, sizeof(*o));
}
#else
static void entry_poison(struct obj *o)
{
	(void)o;
}
static void entry_unpoison(struct obj *o)
{
	(void)o;
}
#endif

#define SLAB 1024

struct slab {
	struct slab *next;
	struct obj objs[SLAB];
};

static struct obj **index_;
static size_t cap, used;
static struct obj *free_list;
static struct slab *slabs;

int obj_table_init(void)
{
	cap = 4096;
	index_ = prism_calloc(cap, sizeof(*index_));
	return index_ ? 0 : -ENOMEM;
}

void obj_table_fini(void)
{
	/* A drop may drop the entries its value contained, and deletion shifts entries
	 * back: pass again until none is left. */
	while (index_ && used)
		for (size_t i = 0; i < cap; i++)
			while (index_[i])
				obj_drop(index_[i]);
	while (slabs) {
		struct slab *n = slabs->next;
		for (int i = 0; i < SLAB; i++)
			entry_unpoison(&slabs->objs[i]);
		prism_free(slabs);
		slabs = n;
	}
	prism_free(index_);
	index_ = NULL;
	free_list = NULL;
	cap = used = 0;
}

static size_t slot_of(prism_id id)
{
	return (size_t)prism_id_hash(id) & (cap - 1);
}

struct obj *obj_find(prism_id id)
{
	if (!index_)
		return NULL;
	for (size_t i = slot_of(id);; i = (i + 1) & (cap - 1)) {
		struct obj *o = index_[i];
		if (!o)
			return NULL;
		if (prism_id_eq(o->id, id))
			return o;
	}
}

static int grow(void)
{
	size_t ncap = cap * 2;
	struct obj **n = prism_calloc(ncap, sizeof(*n));
	if (!n)
		return -ENOMEM;
	for (size_t i = 0; i < cap; i++) {
		struct obj *o = index_[i];
		if (!o)
			continue;
		size_t j = (size_t)prism_id_hash(o->id) & (ncap - 1);
		while (n[j])
			j = (j + 1) & (ncap - 1);
		n[j] = o;
	}
	prism_free(index_);
	index_ = n;
	cap = ncap;
	return 0;
}

struct obj *obj_new(prism_id id)
{
	if (!index_ || (used + 1) * 2 > cap) {
		if (!index_ || grow() != 0)
			return NULL;
	}
	if (!free_list) {
		struct slab *s = prism_malloc(sizeof(*s));
		if (!s)
			return NULL;
		s->next = slabs;
		slabs = s;
		for (int i = SLAB - 1; i >= 0; i--) {
			s->objs[i].next_free = free_list;
			free_list = &s->objs[i];
		}
	}
	struct obj *o = free_list;
	free_list = o->next_free;
	entry_unpoison(o);
	memset(o, 0, offsetof(struct obj, small));
	o->id = id;
	o->refs = 1;
	size_t i = slot_of(id);
	while (index_[i])
		i = (i + 1) & (cap - 1);
	index_[i] = o;
	used++;
	return o;
}

static int copy_value(struct obj *o, const void *data, size_t len)
{
	if (len <= OBJ_SMALL) {
		memcpy(o->small, data, len);
		o->data = o->small;
	} else {
		void *p = prism_malloc(len);
		if (!p)
			return -ENOMEM;
		memcpy(p, data, len);
		o->data = p;
		o->on_heap = 1;
	}
	o->len = (uint32_t)len;
	return 0;
}

int obj_set_value(struct obj *o, const void *data, size_t len)
{
	int rc = copy_value(o, data, len);
	o->state = rc ? OBJ_FAILED : OBJ_READY;
	if (rc) {
		o->data = "out of memory copying a result";
		o->len = (uint32_t)strlen(o->data);
	}
	return rc;
}

int obj_set_failed(struct obj *o, const char *msg, size_t len)
{
	return obj_set_failed_code(o, PRISM_E_TASK_FAILED, msg, len);
}

int obj_set_failed_code(struct obj *o, int code, const char *msg, size_t len)
{
	/* Keep the message NUL-terminated: prism_get() hands it out as text. */
	char buf[1024];
	if (len >= sizeof(buf))
		len = sizeof(buf) - 1;
	memcpy(buf, msg, len);
	buf[len] = '\0';
	int rc = copy_value(o, buf, len + 1);
	if (rc) {
		o->data = "task failed (no memory for its message)";
		len = strlen(o->data);
	}
	o->len = (uint32_t)len;
	o->state = OBJ_FAILED;
	o->err = obj_err_of(code);
	return 0;
}

static void unindex(struct obj *o)
{
	size_t i = slot_of(o->id);
	while (index_[i] != o)
		i = (i + 1) & (cap - 1);
	/* Backward-shift deletion: pull later members of the probe run into the hole so
	 * lookups never stop early, without tombstones. */
	size_t hole = i;
	for (size_t j = (i + 1) & (cap - 1); index_[j]; j = (j + 1) & (cap - 1)) {
		size_t home = slot_of(index_[j]->id);
		bool movable =
			hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
		if (movable) {
			index_[hole] = index_[j];
			hole = j;
		}
	}
	index_[hole] = NULL;
	used--;
}

void obj_set_store(struct obj *o, prism_id sid, const void *data, uint64_t size)
{
	o->in_store = 1;
	o->store_id = sid;
	o->data = data;
	o->store_len = size;
	o->len = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size;
	o->state = OBJ_READY;
}

void obj_drop(struct obj *o)
{
	if (o->on_heap)
		prism_free((void *)o->data);
	if (o->in_store && rt.os) {
		/* This process owns the value: with its last ref gone nobody can ask for it
		 * again, and the bytes go once the tasks reading it let go of their pins.
		 * One it gave away inside a result belongs to the process that got it. */
		objstore_release(rt.os, o->store_id);
		if (!o->given)
			objstore_delete(rt.os, o->store_id);
	}
	prism_id *inner = o->inner;
	uint32_t ninner = o->ninner;
	unindex(o);
	o->next_free = free_list;
	free_list = o;
	entry_poison(o);
	/* The refs the value contained lose this holder (after the entry is gone: a value
	 * may contain a ref to an object that contains it no more than once per level). */
	for (uint32_t i = 0; i < ninner; i++) {
		struct obj *c = obj_find(inner[i]);
		if (c && c->holders && --c->holders == 0 && obj_unused(c))
			obj_drop(c);
	}
	prism_free(inner);
}

size_t obj_count(void)
{
	return used;
}
