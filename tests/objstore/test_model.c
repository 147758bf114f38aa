/* Fragmentation: thousands of random creates, seals, gets, deletes and aborts checked
 * against a reference model: live objects never overlap, every byte stays intact, the
 * counters agree, and the store verifies after each batch. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>

#include "base/alloc.h"
#include "helpers.h"

#define ARENA (1u << 20)
#define KEYS 600u
#define MAXOBJ 512u

enum mstate { M_ABSENT, M_CREATED, M_SEALED };

struct model {
	enum mstate st[KEYS];
	size_t size[KEYS];
	void *wptr[KEYS];
	uint64_t gen[KEYS]; /* ids change per incarnation so stale bytes cannot match */
	uint64_t full;      /* creates refused with PRISM_E_STORE_FULL */
};

static prism_id key_id(const struct model *m, uint64_t k)
{
	return test_id(k * 100000 + m->gen[k]);
}

/* Sizes: mostly small, some up to 48 KiB, an occasional 0. */
static size_t random_size(uint64_t *seed)
{
	uint64_t r = rnd(seed);
	switch (r % 8) {
	case 0:
		return 0;
	case 1:
	case 2:
		return (r >> 8) % (48 * 1024);
	default:
		return (r >> 8) % 2000;
	}
}

struct span {
	uintptr_t lo, hi;
};

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Every sealed object readable with its own bytes; no two live objects overlap. */
static void check_all(objstore *os, struct model *m, bool evicting)
{
	struct span *s = prism_malloc(KEYS * sizeof(*s));
	size_t n = 0;
	for (uint64_t k = 0; k < KEYS; k++) {
		const void *g;
		size_t len;
		if (m->st[k] == M_CREATED) {
			s[n++] = (struct span){(uintptr_t)m->wptr[k],
					       (uintptr_t)m->wptr[k] + m->size[k]};
			continue;
		}
		if (m->st[k] != M_SEALED)
			continue;
		int rc = objstore_get(os, key_id(m, k), &g, &len);
		if (evicting && rc == -ENOENT) {
			m->st[k] = M_ABSENT;
			continue;
		}
		cr_assert_eq(rc, 0, "key %lu: %s", (unsigned long)k, prism_errname(rc));
		cr_assert_eq(len, m->size[k]);
		cr_assert(check_pattern(g, len, key_id(m, k)), "key %lu bytes",
			  (unsigned long)k);
		s[n++] = (struct span){(uintptr_t)g, (uintptr_t)g + len};
		cr_assert_eq(objstore_release(os, key_id(m, k)), 0);
	}
	qsort(s, n, sizeof(*s), cmp_span);
	for (size_t i = 1; i < n; i++)
		cr_assert_geq(s[i].lo, s[i - 1].hi, "live objects overlap");
	prism_free(s);
	cr_assert_eq(objstore_verify(os), 0);
}

/* One random step.  Without eviction, objects keep their creator's pin until deleted. */
static void step(objstore *os, struct model *m, uint64_t *seed, bool evicting)
{
	uint64_t k = rnd(seed) % KEYS, r = rnd(seed) % 100;
	prism_id id = key_id(m, k);
	if (m->st[k] == M_ABSENT) {
		size_t size = random_size(seed);
		void *w;
		int rc = objstore_create(os, id, size, &w);
		if (rc == PRISM_E_STORE_FULL) { /* pinned and CREATED objects fill it */
			m->full++;
			return;
		}
		cr_assert_eq(rc, 0, "%s", prism_errname(rc));
		fill_pattern(w, size, id);
		m->st[k] = M_CREATED;
		m->size[k] = size;
		m->wptr[k] = w;
	} else if (m->st[k] == M_CREATED) {
		if (r < 15) {
			cr_assert_eq(objstore_abort(os, id), 0);
			m->st[k] = M_ABSENT;
			m->gen[k]++;
			return;
		}
		cr_assert_eq(objstore_seal(os, id), 0);
		if (evicting)
			cr_assert_eq(objstore_release(os, id), 0);
		m->st[k] = M_SEALED;
	} else if (r < 60) {
		const void *g;
		size_t len;
		int rc = objstore_get(os, id, &g, &len);
		if (evicting && rc == -ENOENT) {
			m->st[k] = M_ABSENT;
			m->gen[k]++;
			return;
		}
		cr_assert_eq(rc, 0);
		cr_assert(check_pattern(g, len, id) && len == m->size[k]);
		cr_assert_eq(objstore_release(os, id), 0);
	} else {
		int rc = objstore_delete(os, id);
		cr_assert(rc == 0 || (evicting && rc == -ENOENT));
		if (!evicting) /* pinned by the creator: freed at this release */
			cr_assert_eq(objstore_release(os, id), 0);
		m->st[k] = M_ABSENT;
		m->gen[k]++;
	}
}

static void run_model(bool evicting, uint64_t seed, int ops)
{
	struct region r = region_new(ARENA, MAXOBJ);
	objstore *os = attach(&r, 0);
	struct model *m = prism_calloc(1, sizeof(*m));
	for (int i = 1; i <= ops; i++) {
		step(os, m, &seed, evicting);
		if (i % 500 == 0)
			check_all(os, m, evicting);
	}
	check_all(os, m, evicting);
	struct objstore_stats st;
	uint64_t live = 0;
	for (uint64_t k = 0; k < KEYS; k++)
		live += m->st[k] != M_ABSENT;
	cr_assert_eq(objstore_get_stats(os, &st), 0);
	cr_assert_eq(st.objects, live, "store %lu, model %lu", (unsigned long)st.objects,
		     (unsigned long)live);
	if (evicting)
		cr_assert_gt(st.evictions, 0);
	else
		cr_assert_gt(m->full, 0, "the workload should fill the arena");
	prism_free(m);
	objstore_detach(os);
	region_free(&r);
}

Test(model, random_ops_without_eviction, .timeout = 120)
{
	run_model(false, 0xfeedface, 20000);
}

Test(model, random_ops_with_eviction, .timeout = 120)
{
	run_model(true, 0xabad1dea, 20000);
}

Test(model, other_seeds, .timeout = 120)
{
	for (uint64_t s = 1; s <= 4; s++) {
		run_model(false, s * 7919, 5000);
		run_model(true, s * 104729, 5000);
	}
}
