/* Several processes on one store in a prism_shm segment, each mapping it at its own
 * address from the fd: concurrent create / seal / abort / get / release / delete on
 * shared ids for a bounded time, one of them SIGKILLed half-way, then every invariant. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>

#include "../../objstore/src/objstore_int.h"
#include "base/shm.h"
#include "helpers.h"

#define ARENA (256u * 1024u)
#define MAXOBJ 128u
#define KEYS 200u /* more than MAXOBJ: creates also evict to free table entries */
#define MAX_SIZE 8192u
#define WORKERS 3
#define VICTIM_SLOT 9
#define RUN_MS 1500
#define HELD 8 /* pins a worker may hold at once */

struct worker {
	objstore *os;
	uint64_t seed;
	prism_id held[HELD];
	int nheld;
	long ops, bad;
};

static void bad(struct worker *w, const char *what, uint64_t k, int rc)
{
	if (w->bad++ < 5)
		fprintf(stderr, "worker %d: %s key %lu: %s\n", getpid(), what, (unsigned long)k,
			prism_errname(rc));
}

static void do_create(struct worker *w, uint64_t k, prism_id id)
{
	size_t size = size_for(id, MAX_SIZE);
	void *data;
	int rc = objstore_create(w->os, id, size, &data);
	if (rc == -EEXIST || rc == PRISM_E_STORE_FULL)
		return;
	if (rc)
		return bad(w, "create", k, rc);
	fill_pattern(data, size, id);
	if (rnd(&w->seed) % 10 == 0) {
		if ((rc = objstore_abort(w->os, id)))
			bad(w, "abort", k, rc);
		return;
	}
	if ((rc = objstore_seal(w->os, id)) || (rc = objstore_release(w->os, id)))
		bad(w, "seal/release", k, rc);
}

static void do_get(struct worker *w, uint64_t k, prism_id id)
{
	const void *g;
	size_t n;
	int rc = objstore_get(w->os, id, &g, &n);
	if (rc == -ENOENT || rc == PRISM_E_AGAIN)
		return;
	if (rc)
		return bad(w, "get", k, rc);
	if (n != size_for(id, MAX_SIZE) || !check_pattern(g, n, id))
		bad(w, "bytes", k, 0);
	if (w->nheld < HELD && rnd(&w->seed) % 2) {
		w->held[w->nheld++] = id; /* keep it pinned for a while */
		return;
	}
	if ((rc = objstore_release(w->os, id)))
		bad(w, "release", k, rc);
}

static void release_one(struct worker *w)
{
	int i = (int)(rnd(&w->seed) % (uint64_t)w->nheld);
	int rc = objstore_release(w->os, w->held[i]);
	if (rc)
		bad(w, "release held", 0, rc);
	w->held[i] = w->held[--w->nheld];
}

static void step(struct worker *w)
{
	uint64_t k = rnd(&w->seed) % KEYS, r = rnd(&w->seed) % 100;
	prism_id id = test_id(k);
	int rc;
	if (r < 35)
		do_create(w, k, id);
	else if (r < 80)
		do_get(w, k, id);
	else if (r < 90 && w->nheld)
		release_one(w);
	else if ((rc = objstore_delete(w->os, id)) && rc != -ENOENT && rc != PRISM_E_AGAIN)
		bad(w, "delete", k, rc);
	w->ops++;
}

/* A child: map the segment anew from its fd, so at another address than the parent's. */
static void worker_main(prism_shm *inherited, uint32_t slot, uint64_t run_ms)
{
	struct worker w = {.seed = 0x9e3779b97f4a7c15ull * (slot + 1)};
	prism_shm *seg = NULL;
	int fd = dup(prism_shm_fd(inherited));
	/* Map anew while the inherited mapping still stands, so the address must differ. */
	if (fd < 0 || prism_shm_attach(fd, 0, &seg))
		_exit(2);
	if (prism_shm_base(seg) == prism_shm_base(inherited))
		_exit(3);
	prism_shm_destroy(inherited);
	if (objstore_attach(prism_shm_base(seg), prism_shm_size(seg), slot, &w.os))
		_exit(4);
	uint64_t end = prism_now_ns() + run_ms * PRISM_NS_PER_MS;
	while (prism_now_ns() < end)
		for (int i = 0; i < 64; i++)
			step(&w);
	while (w.nheld)
		release_one(&w);
	objstore_detach(w.os);
	prism_shm_destroy(seg);
	_exit(w.bad ? 1 : 0);
}

static void check_invariants(objstore *os)
{
	cr_assert_eq(objstore_verify(os), 0);
	for (uint64_t k = 0; k < KEYS; k++) {
		const void *g;
		size_t n;
		int rc = objstore_get(os, test_id(k), &g, &n);
		cr_assert(rc == 0 || rc == -ENOENT, "key %lu: %s", (unsigned long)k,
			  prism_errname(rc));
		if (rc)
			continue;
		cr_assert_eq(n, size_for(test_id(k), MAX_SIZE));
		cr_assert(check_pattern(g, n, test_id(k)), "key %lu bytes", (unsigned long)k);
		cr_assert_eq(objstore_release(os, test_id(k)), 0);
	}
	for (uint64_t i = 0; i <= os->mask; i++) {
		for (unsigned w = 0; w < OS_PIN_WORDS; w++)
			cr_assert_eq(atomic_load(&os->table[i].pins[w]), 0, "pin left");
		cr_assert_neq(atomic_load(&os->table[i].state), OS_CREATED, "CREATED left");
		cr_assert_neq(atomic_load(&os->table[i].state), OS_DELETING, "DELETING left");
	}
	struct objstore_stats st;
	cr_assert_eq(objstore_get_stats(os, &st), 0);
	cr_assert_gt(st.evictions, 0);
	put(os, test_id(UINT32_MAX), st.capacity, true); /* all of it, in one piece */
	cr_assert_eq(objstore_verify(os), 0);
}

Test(multiproc, concurrent_clients_each_at_its_own_address, .timeout = 60)
{
	size_t size = objstore_region_size(ARENA, MAXOBJ);
	prism_shm *seg = NULL;
	cr_assert_eq(prism_shm_create("objstore-test", size, 0, &seg), 0);
	cr_assert_eq(objstore_format(prism_shm_base(seg), prism_shm_size(seg), ARENA, MAXOBJ),
		     0);
	objstore *os = NULL;
	cr_assert_eq(objstore_attach(prism_shm_base(seg), prism_shm_size(seg), 0, &os), 0);

	pid_t pids[WORKERS + 1];
	for (int i = 0; i <= WORKERS; i++) {
		pids[i] = fork();
		cr_assert_geq(pids[i], 0);
		if (pids[i] == 0) {
			bool victim = i == WORKERS;
			worker_main(seg, victim ? VICTIM_SLOT : 1 + (uint32_t)i,
				    victim ? 4 * RUN_MS : RUN_MS);
		}
	}
	/* The victim dies at a random moment, maybe holding the lock or pins. */
	usleep(RUN_MS * 1000 / 2);
	kill(pids[WORKERS], SIGKILL);
	reap_child(pids[WORKERS], 5000);
	cr_assert_eq(objstore_release_client(os, VICTIM_SLOT), 0);
	for (int i = 0; i < WORKERS; i++) {
		int st = reap_child(pids[i], RUN_MS + 20000);
		cr_assert(exited_ok(st), "worker %d: status %#x", i, st);
	}
	check_invariants(os);
	objstore_detach(os);
	prism_shm_destroy(seg);
}
