/* GCS pub/sub on a chain of two: subscribers to a key and to a table get every change
 * in log order and nothing else; a subscriber that never reads cannot hold up a writer
 * and, when it does read, is told it fell behind, re-reads and resubscribes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "gcs/chain.h"
#include "gcs/record.h"
#include "gcs/store.h"

#define DEADLINE_NS (30ull * 1000000000ull)

static gcs_replica *head, *tail;
static char haddr[TRANSPORT_ADDR_MAX], taddr[TRANSPORT_ADDR_MAX];
static uint8_t token[TRANSPORT_TOKEN_BYTES];

static void setup(void)
{
	gcs_replica_opts o = {.backend = TRANSPORT_TCP, .listen = "tcp://127.0.0.1:0"};
	memset(token, 6, sizeof(token));
	memcpy(o.token, token, sizeof(token));
	cr_assert_eq(gcs_replica_create(&o, haddr, sizeof(haddr), &head), 0);
	cr_assert_eq(gcs_replica_create(&o, taddr, sizeof(taddr), &tail), 0);
	cr_assert_eq(gcs_replica_set_next(head, taddr), 0);
}

static void teardown(void)
{
	gcs_replica_destroy(head);
	gcs_replica_destroy(tail);
}

TestSuite(pubsub, .init = setup, .fini = teardown);

typedef struct seen {
	int n, overflow, other;
	uint64_t last_seq;
	bool in_order;
	char keys[64][16];
	char vals[64][16];
	int kinds[64];
} seen;

static void on_change(void *arg, int status, uint64_t seq, int kind, const uint8_t *key,
		      size_t klen, const uint8_t *val, size_t vlen)
{
	seen *s = arg;
	if (status == PRISM_E_FULL) {
		s->overflow++;
		return;
	}
	if (status) {
		s->other++;
		return;
	}
	if (seq <= s->last_seq)
		s->in_order = false;
	s->last_seq = seq;
	if (s->n < 64) {
		snprintf(s->keys[s->n], 16, "%.*s", (int)klen, (const char *)key);
		snprintf(s->vals[s->n], 16, "%.*s", (int)vlen, (const char *)val);
		s->kinds[s->n] = kind;
	}
	s->n++;
}

static int puts_done;
static void on_put(void *arg, int status, uint64_t seq)
{
	(void)arg;
	(void)seq;
	cr_assert_eq(status, 0);
	puts_done++;
}

static void poll_all(gcs_client **cs, int n)
{
	cr_assert_geq(gcs_replica_poll(head, 0), 0);
	cr_assert_geq(gcs_replica_poll(tail, 0), 0);
	for (int i = 0; i < n; i++)
		cr_assert_geq(gcs_client_poll(cs[i], 0), 0);
}

static void put(gcs_client *w, const char *k, const char *v)
{
	cr_assert_eq(
		gcs_client_put(w, GCS_T_KV, k, strlen(k), v, v ? strlen(v) : 0, on_put, NULL),
		0);
}

Test(pubsub, changes_arrive_in_order_to_matching_subscribers_only)
{
	gcs_client *w, *sub;
	cr_assert_eq(gcs_client_create(TRANSPORT_TCP, token, haddr, taddr, &w), 0);
	cr_assert_eq(gcs_client_create(TRANSPORT_TCP, token, haddr, taddr, &sub), 0);
	seen by_key = {.in_order = true}, by_table = {.in_order = true},
	     other_table = {.in_order = true};
	uint64_t id1, id2, id3;
	cr_assert_eq(gcs_client_subscribe(sub, GCS_T_KV, "a", 1, on_change, &by_key, &id1), 0);
	cr_assert_eq(gcs_client_subscribe(sub, GCS_T_KV, NULL, 0, on_change, &by_table, &id2),
		     0);
	cr_assert_eq(
		gcs_client_subscribe(sub, GCS_T_JOB, NULL, 0, on_change, &other_table, &id3),
		0);
	gcs_client *cs[2] = {w, sub};
	/* Let the subscriptions reach the tail before writing. */
	for (int i = 0; i < 300; i++)
		poll_all(cs, 2);
	puts_done = 0;
	put(w, "a", "1");
	put(w, "b", "2");
	put(w, "a", "3");
	put(w, "a", NULL);
	put(w, "c", "5");
	uint64_t end = prism_now_ns() + DEADLINE_NS;
	while (by_table.n < 5 || puts_done < 5) {
		cr_assert_lt(prism_now_ns(), end, "changes seen: %d", by_table.n);
		poll_all(cs, 2);
	}
	for (int i = 0; i < 100; i++)
		poll_all(cs, 2);
	cr_assert_eq(by_key.n, 3, "the key's three changes");
	cr_assert_str_eq(by_key.vals[0], "1");
	cr_assert_str_eq(by_key.vals[1], "3");
	cr_assert_eq(by_key.kinds[2], GCS_OP_DEL);
	cr_assert(by_key.in_order);
	cr_assert_eq(by_table.n, 5);
	const char *order[] = {"a", "b", "a", "a", "c"};
	for (int i = 0; i < 5; i++)
		cr_assert_str_eq(by_table.keys[i], order[i]);
	cr_assert(by_table.in_order);
	cr_assert_eq(other_table.n, 0, "another table's subscriber hears nothing");
	/* Unsubscribed: nothing more. */
	cr_assert_eq(gcs_client_unsubscribe(sub, id1), 0);
	for (int i = 0; i < 100; i++)
		poll_all(cs, 2);
	put(w, "a", "6");
	end = prism_now_ns() + DEADLINE_NS;
	while (by_table.n < 6) {
		cr_assert_lt(prism_now_ns(), end);
		poll_all(cs, 2);
	}
	cr_assert_eq(by_key.n, 3);
	gcs_client_destroy(sub);
	gcs_client_destroy(w);
}

/* A subscriber that does not poll while 10,000 writes go through: every write is
 * acknowledged; when the subscriber reads it finds at most GCS_SUB_WINDOW changes, then
 * the overflow; after resubscribing it hears new changes again. */
Test(pubsub, a_slow_subscriber_does_not_stall_writers)
{
	gcs_client *w, *slow;
	cr_assert_eq(gcs_client_create(TRANSPORT_TCP, token, haddr, taddr, &w), 0);
	cr_assert_eq(gcs_client_create(TRANSPORT_TCP, token, haddr, taddr, &slow), 0);
	seen s = {.in_order = true};
	uint64_t id;
	cr_assert_eq(gcs_client_subscribe(slow, GCS_T_KV, NULL, 0, on_change, &s, &id), 0);
	gcs_client *both[2] = {w, slow};
	for (int i = 0; i < 300; i++)
		poll_all(both, 2);
	enum { WRITES = 10000 };
	puts_done = 0;
	int sent = 0;
	uint64_t end = prism_now_ns() + DEADLINE_NS;
	while (puts_done < WRITES) {
		cr_assert_lt(prism_now_ns(), end,
			     "writes done %d: a slow subscriber stalled them", puts_done);
		while (sent < WRITES && sent - puts_done < 64) {
			char k[16];
			snprintf(k, sizeof(k), "k%d", sent % 100);
			put(w, k, "v");
			sent++;
		}
		poll_all(both, 1); /* the subscriber is not polled */
	}
	/* Now it reads: a window's worth at most, then the overflow. */
	end = prism_now_ns() + DEADLINE_NS;
	while (!s.overflow) {
		cr_assert_lt(prism_now_ns(), end, "the overflow was reported");
		poll_all(both, 2);
	}
	cr_assert_leq(s.n, 4096);
	cr_assert_eq(s.overflow, 1);
	cr_assert(s.in_order);
	/* Resubscribe: new changes flow again. */
	int before = s.n;
	cr_assert_eq(gcs_client_resubscribe(slow, id), 0);
	for (int i = 0; i < 300; i++)
		poll_all(both, 2);
	put(w, "fresh", "x");
	end = prism_now_ns() + DEADLINE_NS;
	while (s.n == before) {
		cr_assert_lt(prism_now_ns(), end, "changes after resubscribing");
		poll_all(both, 2);
	}
	cr_assert_eq(s.overflow, 1);
	gcs_client_destroy(slow);
	gcs_client_destroy(w);
}
