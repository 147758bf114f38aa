/* Lock-free readers against a writer that creates, deletes and evicts as fast as it can
 * in a tiny arena: a reader must never get bytes of another object, nor see its pinned
 * bytes change, and every object ends up accounted for. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "../../objstore/src/objstore_int.h"
#include "helpers.h"

#define ARENA (32u * 1024u) /* about a dozen objects: eviction on almost every create */
#define MAX_SIZE 4096u
#define RECENT 32u
#define READERS 3
#define RUN_MS 1500

struct shared {
	struct region r;
	_Atomic uint64_t recent[RECENT]; /* seq + 1 of recently created objects */
	_Atomic bool stop;
	_Atomic uint64_t hits, misses, bad, created;
};

static void note_bad(struct shared *s, const char *what, uint64_t seq, int rc)
{
	if (atomic_fetch_add(&s->bad, 1) < 5)
		fprintf(stderr, "stress: %s (seq %lu, rc %s)\n", what, (unsigned long)seq,
			prism_errname(rc));
}

static void *writer(void *arg)
{
	struct shared *s = arg;
	objstore *os = NULL;
	uint64_t seed = 42;
	if (objstore_attach(s->r.mem, s->r.size, 0, &os))
		return (void *)1;
	for (uint64_t seq = 0; !atomic_load(&s->stop); seq++) {
		prism_id id = test_id(seq);
		size_t size = size_for(id, MAX_SIZE);
		void *w;
		int rc = objstore_create(os, id, size, &w);
		if (rc == PRISM_E_STORE_FULL) /* everything pinned by readers right now */
			continue;
		if (rc) {
			note_bad(s, "create", seq, rc);
			continue;
		}
		fill_pattern(w, size, id);
		if (objstore_seal(os, id) || objstore_release(os, id))
			note_bad(s, "seal/release", seq, 0);
		atomic_store(&s->recent[seq % RECENT], seq + 1);
		atomic_fetch_add(&s->created, 1);
		if (rnd(&seed) % 3 == 0 && seq >= 4) { /* delete one of the last few */
			rc = objstore_delete(os, test_id(seq - rnd(&seed) % 4));
			if (rc && rc != -ENOENT)
				note_bad(s, "delete", seq, rc);
		}
	}
	objstore_detach(os);
	return NULL;
}

static void *reader(void *arg)
{
	struct shared *s = arg;
	static _Atomic uint32_t next_slot = 1;
	objstore *os = NULL;
	uint64_t seed = 1000 + atomic_fetch_add(&next_slot, 1);
	if (objstore_attach(s->r.mem, s->r.size, (uint32_t)seed - 1000, &os))
		return (void *)1;
	while (!atomic_load(&s->stop)) {
		uint64_t seq = atomic_load(&s->recent[rnd(&seed) % RECENT]);
		if (!seq--)
			continue;
		prism_id id = test_id(seq);
		const void *g;
		size_t n;
		int rc = objstore_get(os, id, &g, &n);
		if (rc == -ENOENT) {
			atomic_fetch_add(&s->misses, 1);
			continue;
		}
		if (rc) {
			note_bad(s, "get", seq, rc);
			continue;
		}
		if (n != size_for(id, MAX_SIZE) || !check_pattern(g, n, id))
			note_bad(s, "got another object's bytes", seq, 0);
		for (int spin = 0; spin < 200;
		     spin++) /* hold the pin while the writer churns */
			__asm__ __volatile__("" ::: "memory");
		if (!check_pattern(g, n, id))
			note_bad(s, "pinned bytes changed", seq, 0);
		if ((rc = objstore_release(os, id)) != 0)
			note_bad(s, "release", seq, rc);
		atomic_fetch_add(&s->hits, 1);
	}
	objstore_detach(os);
	return NULL;
}

static void check_quiescent(objstore *os)
{
	cr_assert_eq(objstore_verify(os), 0);
	for (uint64_t i = 0; i <= os->mask; i++)
		for (unsigned w = 0; w < OS_PIN_WORDS; w++)
			cr_assert_eq(atomic_load(&os->table[i].pins[w]), 0,
				     "pin left on entry %lu", (unsigned long)i);
	/* Nothing pinned, nothing CREATED: the whole arena can be had in one piece. */
	struct objstore_stats st;
	cr_assert_eq(objstore_get_stats(os, &st), 0);
	put(os, test_id(UINT32_MAX), st.capacity, true);
	cr_assert_eq(objstore_verify(os), 0);
}

Test(stress, readers_never_see_foreign_bytes, .timeout = 60)
{
	struct shared *s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(s, MAP_FAILED);
	s->r = region_new(ARENA, 16);
	pthread_t w, rd[READERS];
	cr_assert_eq(pthread_create(&w, NULL, writer, s), 0);
	for (int i = 0; i < READERS; i++)
		cr_assert_eq(pthread_create(&rd[i], NULL, reader, s), 0);
	usleep(RUN_MS * 1000);
	atomic_store(&s->stop, true);
	void *ret;
	cr_assert_eq(pthread_join(w, &ret), 0);
	cr_assert_null(ret);
	for (int i = 0; i < READERS; i++) {
		cr_assert_eq(pthread_join(rd[i], &ret), 0);
		cr_assert_null(ret);
	}
	cr_log_info("created %lu, reader hits %lu, misses %lu",
		    (unsigned long)atomic_load(&s->created),
		    (unsigned long)atomic_load(&s->hits),
		    (unsigned long)atomic_load(&s->misses));
	cr_assert_eq(atomic_load(&s->bad), 0);
	cr_assert_gt(atomic_load(&s->hits), 100, "readers must have raced the writer");
	cr_assert_gt(atomic_load(&s->created), 100);
	objstore *os = attach(&s->r, 0);
	struct objstore_stats st;
	cr_assert_eq(objstore_get_stats(os, &st), 0);
	cr_assert_gt(st.evictions, 10);
	check_quiescent(os);
	objstore_detach(os);
	region_free(&s->r);
	munmap(s, sizeof(*s));
}
