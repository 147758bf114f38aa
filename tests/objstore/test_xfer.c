/* Objects between nodes (objstore/xfer.h): two stores, each with its own transport
 * endpoint, one pulling from the other over tcp and over softverbs: sizes from 0 bytes to
 * 64 MiB arrive intact and sealed; concurrent pulls of one object share one transfer; a
 * missing object fails cleanly; a holder killed mid-transfer fails the pull and leaves no
 * partial object; the holder's pins are dropped when the pull ends or its link breaks. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/error.h"
#include "helpers.h"
#include "objstore/xfer.h"
#include "transport/transport.h"

#define DEADLINE_NS (30ull * 1000000000ull)

typedef struct node {
	struct region r;
	objstore *os;
	transport *t;
	objstore_xfer *x;
	char addr[TRANSPORT_ADDR_MAX];
} node;

static void node_up(node *n, enum transport_backend b, size_t arena)
{
	memset(n, 0, sizeof(*n));
	n->r = region_new(arena, 1024);
	n->os = attach(&n->r, 0);
	transport_opts o = {.backend = b};
	memset(o.token, 9, sizeof(o.token));
	cr_assert_eq(transport_create(&o, &n->t), 0);
	cr_assert_eq(transport_listen(n->t, "tcp://127.0.0.1:0", n->addr, sizeof(n->addr)), 0);
	cr_assert_eq(objstore_xfer_create(n->t, n->os, n->r.mem, n->r.size, &n->x), 0);
}

static void node_down(node *n)
{
	objstore_xfer_destroy(n->x);
	transport_destroy(n->t);
	objstore_detach(n->os);
	region_free(&n->r);
}

/* Poll a node's transport, giving every event to its transfer first. */
static int pump(node *n)
{
	transport_event ev[64];
	int k = transport_poll(n->t, ev, 64, 0);
	cr_assert_geq(k, 0);
	for (int i = 0; i < k; i++)
		objstore_xfer_event(n->x, &ev[i]);
	return k;
}

/* A link from a to b, up. */
static transport_conn *link_to(node *a, node *b)
{
	transport_conn *c;
	cr_assert_eq(transport_connect(a->t, b->addr, NULL, &c), 0);
	uint64_t end = prism_now_ns() + DEADLINE_NS;
	bool up = false;
	while (!up) {
		cr_assert_lt(prism_now_ns(), end, "link up");
		transport_event ev[16];
		int k = transport_poll(a->t, ev, 16, 0);
		for (int i = 0; i < k; i++)
			up |= ev[i].kind == TRANSPORT_EV_CONNECTED && ev[i].conn == c;
		pump(b);
	}
	return c;
}

static void put_object(node *n, prism_id id, size_t size, uint8_t seed)
{
	void *p;
	cr_assert_eq(objstore_create(n->os, id, size, &p), 0);
	for (size_t i = 0; i < size; i++)
		((uint8_t *)p)[i] = (uint8_t)(seed + i * 7 + (i >> 12));
	cr_assert_eq(objstore_seal(n->os, id), 0);
	cr_assert_eq(objstore_release(n->os, id), 0);
}

static void check_object(node *n, prism_id id, size_t size, uint8_t seed)
{
	const void *p;
	size_t got;
	cr_assert_eq(objstore_get(n->os, id, &p, &got), 0);
	cr_assert_eq(got, size);
	for (size_t i = 0; i < size; i++)
		if (((const uint8_t *)p)[i] != (uint8_t)(seed + i * 7 + (i >> 12)))
			cr_assert_fail("byte %zu of %zu differs", i, size);
	cr_assert_eq(objstore_release(n->os, id), 0);
}

typedef struct result {
	int calls, status;
} result;

static void on_pulled(void *arg, int status, prism_id id)
{
	(void)id;
	result *r = arg;
	r->calls++;
	r->status = status;
}

static void wait_for(node *a, node *b, const result *r, int calls)
{
	uint64_t end = prism_now_ns() + DEADLINE_NS;
	while (r->calls < calls) {
		cr_assert_lt(prism_now_ns(), end, "pull answered");
		pump(a);
		if (b)
			pump(b);
	}
}

static void sizes_arrive_intact(enum transport_backend b)
{
	node holder, puller;
	node_up(&holder, b, 160u << 20);
	node_up(&puller, b, 160u << 20);
	transport_conn *c = link_to(&puller, &holder);
	static const size_t sizes[] = {
		0, 1, 4096, (1u << 20) + 1, 4u << 20, (13u << 20) + 5, 64u << 20};
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		prism_id id = test_id(k);
		put_object(&holder, id, sizes[k], (uint8_t)k);
		result r = {0};
		cr_assert_eq(objstore_xfer_pull(puller.x, c, id, on_pulled, &r), 0);
		wait_for(&puller, &holder, &r, 1);
		cr_assert_eq(r.status, 0, "size %zu: %s", sizes[k], prism_strerror(r.status));
		check_object(&puller, id, sizes[k], (uint8_t)k);
	}
	/* Let the DONEs land: the holder holds no pin after its pulls ended. */
	for (int i = 0; i < 50; i++)
		pump(&holder), pump(&puller);
	objstore_xfer_stats hs, ps;
	objstore_xfer_stats_get(holder.x, &hs);
	objstore_xfer_stats_get(puller.x, &ps);
	cr_assert_eq(hs.served, 7);
	cr_assert_eq(ps.pulls, 7);
	cr_assert_eq(ps.pulls_failed, 0);
	for (size_t k = 0; k < 7; k++)
		cr_assert_eq(objstore_delete(holder.os, test_id(k)), 0,
			     "deleting object %zu at the holder frees it at once (no pin left)",
			     k);
	struct objstore_stats st;
	objstore_get_stats(holder.os, &st);
	cr_assert_eq(st.objects, 0, "no pin kept an object alive");
	node_down(&puller);
	node_down(&holder);
}

Test(xfer, sizes_from_0_bytes_to_64_mib_over_tcp)
{
	sizes_arrive_intact(TRANSPORT_TCP);
}

Test(xfer, sizes_from_0_bytes_to_64_mib_over_softverbs)
{
	sizes_arrive_intact(TRANSPORT_SOFTVERBS);
}

Test(xfer, concurrent_pulls_of_one_object_share_one_transfer)
{
	node holder, puller;
	node_up(&holder, TRANSPORT_TCP, 64u << 20);
	node_up(&puller, TRANSPORT_TCP, 64u << 20);
	transport_conn *c = link_to(&puller, &holder);
	prism_id id = test_id(42);
	put_object(&holder, id, 20u << 20, 3);
	result r[5] = {0};
	for (int i = 0; i < 5; i++)
		cr_assert_eq(objstore_xfer_pull(puller.x, c, id, on_pulled, &r[i]), 0);
	wait_for(&puller, &holder, &r[4], 1);
	for (int i = 0; i < 5; i++)
		cr_assert(r[i].calls == 1 && r[i].status == 0, "request %d", i);
	objstore_xfer_stats ps;
	objstore_xfer_stats_get(puller.x, &ps);
	cr_assert_eq(ps.pulls, 1, "one transfer");
	cr_assert_eq(ps.pulls_shared, 4);
	cr_assert_eq(ps.bytes_pulled, 20u << 20);
	check_object(&puller, id, 20u << 20, 3);
	/* Already here: done at once, nothing sent. */
	result again = {0};
	cr_assert_eq(objstore_xfer_pull(puller.x, c, id, on_pulled, &again), 0);
	cr_assert(again.calls == 1 && again.status == 0);
	node_down(&puller);
	node_down(&holder);
}

Test(xfer, a_missing_object_fails_cleanly)
{
	node holder, puller;
	node_up(&holder, TRANSPORT_TCP, 16u << 20);
	node_up(&puller, TRANSPORT_TCP, 16u << 20);
	transport_conn *c = link_to(&puller, &holder);
	result r = {0};
	cr_assert_eq(objstore_xfer_pull(puller.x, c, test_id(7), on_pulled, &r), 0);
	wait_for(&puller, &holder, &r, 1);
	cr_assert_eq(r.status, -ENOENT);
	cr_assert(!objstore_contains(puller.os, test_id(7)));
	cr_assert_eq(objstore_xfer_pull(puller.x, c, (prism_id){0}, on_pulled, &r), -EINVAL);
	node_down(&puller);
	node_down(&holder);
}

/* The holder is a child process, SIGKILLed while a 128 MiB object streams. */
Test(xfer, a_holder_killed_mid_transfer_fails_the_pull_and_leaves_nothing)
{
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	pid_t kid = fork();
	if (kid == 0) {
		node h;
		node_up(&h, TRANSPORT_TCP, 160u << 20);
		put_object(&h, test_id(1), 128u << 20, 5);
		if (write(pfd[1], h.addr, sizeof(h.addr)) != (ssize_t)sizeof(h.addr))
			_exit(2);
		uint64_t end = prism_now_ns() + DEADLINE_NS;
		while (prism_now_ns() < end)
			pump(&h);
		_exit(0);
	}
	node holder = {0}, puller;
	cr_assert_eq(read(pfd[0], holder.addr, sizeof(holder.addr)),
		     (ssize_t)sizeof(holder.addr));
	node_up(&puller, TRANSPORT_TCP, 160u << 20);
	transport_conn *c;
	cr_assert_eq(transport_connect(puller.t, holder.addr, NULL, &c), 0);
	result r = {0};
	bool asked = false, killed = false;
	uint64_t end = prism_now_ns() + DEADLINE_NS;
	while (r.calls == 0) {
		cr_assert_lt(prism_now_ns(), end);
		transport_event ev[64];
		int k = transport_poll(puller.t, ev, 64, 1000000);
		for (int i = 0; i < k; i++) {
			if (ev[i].kind == TRANSPORT_EV_CONNECTED && !asked) {
				cr_assert_eq(objstore_xfer_pull(puller.x, c, test_id(1),
								on_pulled, &r),
					     0);
				asked = true;
			}
			objstore_xfer_event(puller.x, &ev[i]);
		}
		transport_stats ts;
		transport_stats_get(puller.t, &ts);
		if (!killed && ts.bytes_recv > (16u << 20)) { /* mid-transfer */
			kill(kid, SIGKILL);
			killed = true;
		}
	}
	waitpid(kid, NULL, 0);
	cr_assert(killed, "the holder died mid-transfer");
	cr_assert(r.status == PRISM_E_PEER_GONE || r.status == PRISM_E_FLUSHED,
		  "the pull failed with the link's reason: %s", prism_strerror(r.status));
	cr_assert(!objstore_contains(puller.os, test_id(1)), "no partial object is visible");
	struct objstore_stats st;
	objstore_get_stats(puller.os, &st);
	cr_assert_eq(st.objects, 0, "the partial copy was aborted");
	node_down(&puller);
}
