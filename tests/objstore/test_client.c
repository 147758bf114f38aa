/* objstore_release_client: what the daemon does when a client dies. */
#include <criterion/criterion.h>
#include <errno.h>

#include "helpers.h"

#define ARENA (16u * 1024u)
#define OBJ 1000u
#define FITS 16u

static struct region r;
static objstore *daemon_os;

static void setup(void)
{
	r = region_new(ARENA, 64);
	daemon_os = attach(&r, 0);
}

static void teardown(void)
{
	cr_assert_eq(objstore_verify(daemon_os), 0);
	objstore_detach(daemon_os);
	region_free(&r);
}

TestSuite(client, .init = setup, .fini = teardown);

static uint64_t objects(void)
{
	struct objstore_stats st;
	cr_assert_eq(objstore_get_stats(daemon_os, &st), 0);
	return st.objects;
}

/* Fill the store with new objects: everything unpinned gets evicted. */
static void flood(uint64_t base)
{
	for (uint64_t k = 0; k < FITS; k++) {
		void *w;
		if (objstore_create(daemon_os, test_id(base + k), OBJ, &w) != 0)
			continue;
		cr_assert_eq(objstore_seal(daemon_os, test_id(base + k)), 0);
		cr_assert_eq(objstore_release(daemon_os, test_id(base + k)), 0);
	}
}

Test(client, drops_the_pins_of_that_slot_only)
{
	objstore *a = attach(&r, 5), *b = attach(&r, 6);
	const void *g;
	size_t n;
	put(daemon_os, test_id(1), OBJ, true);
	put(daemon_os, test_id(2), OBJ, true);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(objstore_get(a, test_id(1), &g, &n), 0);
	cr_assert_eq(objstore_get(a, test_id(2), &g, &n), 0);
	cr_assert_eq(objstore_get(b, test_id(2), &g, &n), 0);
	cr_assert_eq(objstore_release_client(daemon_os, 5), 0);
	cr_assert_eq(objstore_release(a, test_id(1)), PRISM_E_RELEASED);
	cr_assert_eq(objstore_release(a, test_id(2)), PRISM_E_RELEASED);
	flood(100);
	cr_assert_not(objstore_contains(daemon_os, test_id(1)), "no pins left: evicted");
	cr_assert(objstore_contains(daemon_os, test_id(2)), "slot 6 still pins it");
	cr_assert(check_pattern(g, n, test_id(2)));
	cr_assert_eq(objstore_release(b, test_id(2)), 0);
	objstore_detach(a);
	objstore_detach(b);
}

Test(client, aborts_created_objects_and_deletes_the_sealed_ones_it_owns)
{
	objstore *a = attach(&r, 5), *b = attach(&r, 6);
	void *w;
	const void *g;
	size_t n;
	cr_assert_eq(objstore_create(a, test_id(1), OBJ, &w), 0);
	put(a, test_id(2), OBJ, false); /* sealed, creator pin held */
	put(a, test_id(3), OBJ, false);
	cr_assert_eq(objstore_get(b, test_id(3), &g, &n), 0); /* a reader in slot 6 */
	put(a, test_id(4), OBJ, false);
	cr_assert_eq(objstore_give(a, test_id(4), 6), 0); /* handed over: slot 6 owns it */
	cr_assert_eq(objects(), 4);
	cr_assert_eq(objstore_release_client(daemon_os, 5), 0);
	cr_assert_eq(objstore_seal(a, test_id(1)), -ENOENT, "CREATED: aborted");
	cr_assert_not(objstore_contains(daemon_os, test_id(2)), "owned and unpinned: freed");
	cr_assert_eq(objstore_get(b, test_id(3), &g, &n), -ENOENT,
		     "owned: deleted, no new reads");
	cr_assert(check_pattern(g, n, test_id(3)),
		  "but the reader's bytes stay until it lets go");
	cr_assert_eq(objstore_release(b, test_id(3)), 0);
	cr_assert_not(objstore_contains(daemon_os, test_id(3)), "freed by the last release");
	cr_assert(objstore_contains(daemon_os, test_id(4)),
		  "given away: the new owner keeps it");
	cr_assert_eq(objects(), 1);
	cr_assert_eq(objstore_release_client(daemon_os, 6), 0);
	cr_assert_eq(objects(), 0, "and it goes with its new owner");
	objstore_detach(a);
	objstore_detach(b);
}

Test(client, frees_deleted_objects_whose_last_pin_it_held)
{
	objstore *a = attach(&r, 9);
	const void *g;
	size_t n;
	put(daemon_os, test_id(1), OBJ, true);
	cr_assert_eq(objstore_get(a, test_id(1), &g, &n), 0);
	cr_assert_eq(objstore_delete(daemon_os, test_id(1)), 0);
	cr_assert_eq(objects(), 1);
	cr_assert_eq(objstore_release_client(daemon_os, 9), 0);
	cr_assert_eq(objects(), 0);
	objstore_detach(a);
}

/* A real crash: a child pins and creates, then dies by SIGKILL without releasing. */
Test(client, a_killed_process_leaves_nothing_behind, .timeout = 30)
{
	for (uint64_t k = 0; k < 4; k++)
		put(daemon_os, test_id(k), OBJ, true);
	int ready[2];
	cr_assert_eq(pipe(ready), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		objstore *c = NULL;
		const void *g;
		size_t n;
		void *w;
		if (objstore_attach(r.mem, r.size, 12, &c))
			_exit(2);
		for (uint64_t k = 0; k < 4; k++)
			if (objstore_get(c, test_id(k), &g, &n) ||
			    objstore_get(c, test_id(k), &g, &n))
				_exit(3);
		if (objstore_create(c, test_id(50), OBJ, &w))
			_exit(4);
		if (write(ready[1], "x", 1) != 1)
			_exit(5);
		pause();
		_exit(0);
	}
	char c;
	struct pollfd p = {.fd = ready[0], .events = POLLIN};
	bool ok = poll(&p, 1, 10000) == 1 && read(ready[0], &c, 1) == 1;
	kill(pid, SIGKILL); /* in every case: no child outlives the test */
	reap_child(pid, 5000);
	cr_assert(ok, "child did not get ready");
	close(ready[0]);
	close(ready[1]);

	cr_assert_eq(objects(), 5);
	void *w;
	/* Four pinned objects, one CREATED: the flood cannot evict them. */
	flood(100);
	for (uint64_t k = 0; k < 4; k++)
		cr_assert(objstore_contains(daemon_os, test_id(k)));
	cr_assert_eq(objstore_create(daemon_os, test_id(50), OBJ, &w), -EEXIST);
	cr_assert_eq(objstore_release_client(daemon_os, 12), 0);
	cr_assert_eq(objstore_create(daemon_os, test_id(50), OBJ, &w), 0, "aborted: id free");
	cr_assert_eq(objstore_abort(daemon_os, test_id(50)), 0);
	flood(200);
	for (uint64_t k = 0; k < 4; k++)
		cr_assert_not(objstore_contains(daemon_os, test_id(k)), "unpinned: evicted");
}
