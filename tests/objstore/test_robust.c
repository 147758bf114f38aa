/* Robust-mutex recovery: a child is SIGKILLed while it holds the store lock, at each
 * point inside the critical section (and once after scribbling over the allocator); the
 * next process to lock repairs, and the store verifies with every object intact. */
#include <criterion/criterion.h>
#include <errno.h>

#include "../../objstore/src/objstore_int.h"
#include "helpers.h"

#define ARENA (64u * 1024u)
#define OBJ 1000u
#define KEEP 8u /* objects created before the crash, which must survive it */
#define VICTIM test_id(100)
#define FRESH test_id(200)

static int hook_point, hook_fd = -1;
static bool hook_scribble;

/* In the child: at the chosen point, optionally wreck the allocator's lists, tell the
 * parent, and wait to be killed with the lock held. */
static void stop_here(objstore *os, int point)
{
	if (point != hook_point)
		return;
	if (hook_scribble)
		memset(os->tlsf.ctl, 0xff, sizeof(*os->tlsf.ctl));
	if (write(hook_fd, "x", 1) != 1)
		_exit(9);
	for (;;)
		pause();
}

/* The child's operation that passes through `point`. */
static void child(struct region *r, int point, int fd)
{
	objstore *os = NULL;
	void *w;
	if (objstore_attach(r->mem, r->size, 3, &os))
		_exit(2);
	if (point == OS_HOOK_SEAL && objstore_create(os, VICTIM, OBJ, &w))
		_exit(3);
	hook_point = point;
	hook_fd = fd;
	objstore__test_hook = stop_here;
	switch (point) {
	case OS_HOOK_SEAL:
		objstore_seal(os, VICTIM);
		break;
	case OS_HOOK_FREE:
		objstore_delete(os, VICTIM);
		break;
	default:
		objstore_create(os, VICTIM, OBJ, &w);
		break;
	}
	_exit(4); /* the hook never returns */
}

static void kill_inside(struct region *r, int point)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		child(r, point, p[1]);
	struct pollfd pf = {.fd = p[0], .events = POLLIN};
	char c;
	bool ok = poll(&pf, 1, 10000) == 1 && read(p[0], &c, 1) == 1;
	kill(pid, SIGKILL); /* in every case: no child outlives the test */
	reap_child(pid, 5000);
	cr_assert(ok, "child never reached point %d", point);
	close(p[0]);
	close(p[1]);
}

static void check_survivors(objstore *os)
{
	for (uint64_t k = 0; k < KEEP; k++) {
		const void *g;
		size_t n;
		cr_assert_eq(objstore_get(os, test_id(k), &g, &n), 0);
		cr_assert_eq(n, OBJ);
		cr_assert(check_pattern(g, n, test_id(k)));
		cr_assert_eq(objstore_release(os, test_id(k)), 0);
	}
}

/* The first thing after the crash is a lock-free get of the object the dead process was
 * changing: it must neither hang on the odd entry nor return torn state. */
static void crash_and_recover(int point, bool scribble)
{
	struct region r = region_new(ARENA, 64);
	objstore *os = attach(&r, 0);
	const void *g;
	size_t n;
	for (uint64_t k = 0; k < KEEP; k++)
		put(os, test_id(k), OBJ, true);
	if (point == OS_HOOK_FREE)
		put(os, VICTIM, OBJ, true);
	hook_scribble = scribble;
	kill_inside(&r, point);

	int rc = objstore_get(os, VICTIM, &g, &n);
	cr_assert(rc == -ENOENT || rc == PRISM_E_AGAIN || rc == 0, "get: %s",
		  prism_errname(rc));
	if (rc == 0) {
		cr_assert(check_pattern(g, n, VICTIM));
		cr_assert_eq(objstore_release(os, VICTIM), 0);
	}
	put(os, FRESH, OBJ, true);
	struct objstore_stats st;
	cr_assert_eq(objstore_get_stats(os, &st), 0);
	cr_assert_eq(st.repairs, 1);
	cr_assert_eq(objstore_verify(os), 0);
	check_survivors(os);

	/* The daemon then cleans up after the dead client; its CREATED object goes. */
	cr_assert_eq(objstore_release_client(os, 3), 0);
	cr_assert_eq(objstore_verify(os), 0);
	void *w;
	rc = objstore_create(os, VICTIM, OBJ, &w);
	if (point == OS_HOOK_FREE)
		cr_assert(rc == 0 || rc == -EEXIST);
	else
		cr_assert_eq(rc, 0, "point %d: %s", point, prism_errname(rc));
	/* Fill the arena: the repaired allocator hands out every byte exactly once. */
	for (uint64_t k = 300; k < 400; k++)
		put(os, test_id(k), OBJ, true);
	cr_assert_eq(objstore_verify(os), 0);
	objstore_detach(os);
	region_free(&r);
}

Test(robust, killed_right_after_locking, .timeout = 30)
{
	crash_and_recover(OS_HOOK_LOCKED, false);
}

Test(robust, killed_between_allocation_and_entry, .timeout = 30)
{
	crash_and_recover(OS_HOOK_CREATE_ALLOCATED, false);
}

Test(robust, killed_with_the_entry_half_written, .timeout = 30)
{
	crash_and_recover(OS_HOOK_CREATE_ENTRY, false);
}

Test(robust, killed_while_sealing, .timeout = 30)
{
	crash_and_recover(OS_HOOK_SEAL, false);
}

Test(robust, killed_between_unrecording_and_freeing_a_block, .timeout = 30)
{
	crash_and_recover(OS_HOOK_FREE, false);
}

Test(robust, killed_after_wrecking_the_allocator_lists, .timeout = 30)
{
	crash_and_recover(OS_HOOK_CREATE_ALLOCATED, true);
}

Test(robust, two_crashes_in_a_row, .timeout = 30)
{
	struct region r = region_new(ARENA, 64);
	objstore *os = attach(&r, 0);
	for (uint64_t k = 0; k < KEEP; k++)
		put(os, test_id(k), OBJ, true);
	hook_scribble = false;
	kill_inside(&r, OS_HOOK_CREATE_ENTRY);
	/* The second child repairs on locking, then dies inside its own create. */
	cr_assert_eq(objstore_release_client(os, 3), 0);
	kill_inside(&r, OS_HOOK_CREATE_ALLOCATED);
	cr_assert_eq(objstore_verify(os), 0);
	struct objstore_stats st;
	cr_assert_eq(objstore_get_stats(os, &st), 0);
	cr_assert_eq(st.repairs, 2);
	check_survivors(os);
	objstore_detach(os);
	region_free(&r);
}
