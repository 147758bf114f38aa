/* A GCS shard on chains of 1, 2 and 3 replicas in one process: writes enter at the head
 * and are acknowledged only once the tail holds them, reads at the tail see them, every
 * replica ends with the same tables, and a replica with a log comes back with its state. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "gcs/chain.h"
#include "gcs/record.h"
#include "gcs/store.h"

#define DEADLINE_NS (30ull * 1000000000ull)

typedef struct chain {
	gcs_replica *r[3];
	char addr[3][TRANSPORT_ADDR_MAX];
	int n;
	int tail; /* index of the current tail */
	gcs_client *c;
} chain;

/* The backend of every replica and client (each test runs in its own process), and the
 * replicas' log ring size (0: the default). */
static enum transport_backend backend = TRANSPORT_TCP;
static size_t ring_bytes;

static void poll_all(chain *ch)
{
	for (int i = 0; i < ch->n; i++)
		if (ch->r[i])
			cr_assert_geq(gcs_replica_poll(ch->r[i], 0), 0);
	cr_assert_geq(gcs_client_poll(ch->c, 0), 0);
}

static void make_chain(chain *ch, int n, const char *wal)
{
	memset(ch, 0, sizeof(*ch));
	ch->n = n;
	ch->tail = n - 1;
	gcs_replica_opts o = {
		.backend = backend, .listen = "tcp://127.0.0.1:0", .ring_bytes = ring_bytes};
	memset(o.token, 4, sizeof(o.token));
	for (int i = 0; i < n; i++) {
		o.wal_path = i == 0 ? wal : NULL;
		cr_assert_eq(
			gcs_replica_create(&o, ch->addr[i], sizeof(ch->addr[i]), &ch->r[i]), 0);
	}
	for (int i = 0; i + 1 < n; i++)
		cr_assert_eq(gcs_replica_set_next(ch->r[i], ch->addr[i + 1]), 0);
	cr_assert_eq(gcs_client_create(backend, o.token, ch->addr[0], ch->addr[n - 1], &ch->c),
		     0);
}

static void free_chain(chain *ch)
{
	gcs_client_destroy(ch->c);
	for (int i = 0; i < ch->n; i++)
		gcs_replica_destroy(ch->r[i]);
}

/* A replica dies: it is gone, its links close. */
static void kill_replica(chain *ch, int i)
{
	gcs_replica_destroy(ch->r[i]);
	ch->r[i] = NULL;
}

typedef struct put_state {
	chain *ch;
	int done, failed;
	uint64_t last_seq;
	bool tail_had_it; /* at every acknowledgement, the tail already held the write */
} put_state;

static void on_put(void *arg, int status, uint64_t seq)
{
	put_state *p = arg;
	p->done++;
	if (status) {
		p->failed++;
		return;
	}
	const struct gcs_store *tail = gcs_replica_store(p->ch->r[p->ch->tail]);
	if (gcs_store_seq(tail) < seq)
		p->tail_had_it = false;
	if (seq > p->last_seq)
		p->last_seq = seq;
}

typedef struct get_state {
	int done, bad;
	char want[32];
} get_state;

static void on_get(void *arg, int status, const uint8_t *v, size_t len, uint64_t ver)
{
	(void)ver;
	get_state *g = arg;
	g->done++;
	if (status || len != strlen(g->want) || memcmp(v, g->want, len) != 0)
		g->bad++;
}

static int compare_cb(uint8_t table, const uint8_t *key, size_t klen, const uint8_t *val,
		      size_t vlen, uint64_t version, void *arg)
{
	const struct gcs_store *other = arg;
	const uint8_t *v;
	size_t vl;
	uint64_t ver;
	if (gcs_store_get(other, table, key, klen, &v, &vl, &ver) != 0)
		return 1;
	return vl != vlen || memcmp(v, val, vlen) != 0 || ver != version;
}

/* Over a backend with one-sided writes, every replica but the tail shipped its batches
 * into its successor's ring (none as messages unless the ring was full), and each
 * successor took them from its ring. */
static void check_rings(const chain *ch)
{
	if (backend == TRANSPORT_TCP)
		return;
	for (int i = 0; i + 1 < ch->n; i++) {
		if (!ch->r[i])
			continue;
		gcs_replica_stats st;
		gcs_replica_stats_get(ch->r[i], &st);
		cr_assert_gt(st.ring_batches_out, 0,
			     "replica %d wrote into its successor's ring", i);
		cr_assert_eq(st.msg_batches_out, st.ring_full,
			     "replica %d sent batches as messages with room in the ring", i);
		cr_log_info("replica %d: %llu batches (%llu bytes) by WRITE, %llu as messages "
			    "(ring full)",
			    i, (unsigned long long)st.ring_batches_out,
			    (unsigned long long)st.ring_bytes_out,
			    (unsigned long long)st.msg_batches_out);
	}
}

static void run_chain(int n)
{
	enum { KEYS = 300, WRITES = 3000, WINDOW = 64 };
	chain ch;
	make_chain(&ch, n, NULL);
	put_state ps = {.ch = &ch, .tail_had_it = true};
	uint64_t end = prism_now_ns() + DEADLINE_NS;
	int sent = 0;
	while (ps.done < WRITES) {
		cr_assert_lt(prism_now_ns(), end, "writes done: %d of %d", ps.done, WRITES);
		while (sent < WRITES && sent - ps.done < WINDOW) {
			char key[16], val[32];
			snprintf(key, sizeof(key), "k%d", sent % KEYS);
			snprintf(val, sizeof(val), "v%d", sent);
			int rc = gcs_client_put(ch.c, GCS_T_KV, key, strlen(key), val,
						strlen(val), on_put, &ps);
			cr_assert_eq(rc, 0, "put: %s", prism_strerror(rc));
			sent++;
		}
		poll_all(&ch);
	}
	cr_assert_eq(ps.failed, 0);
	cr_assert(ps.tail_had_it, "a write was acknowledged before the tail held it");
	cr_assert_eq(ps.last_seq, WRITES);
	/* Reads at the tail see the last write of every key. */
	static get_state gs[KEYS];
	for (int k = 0; k < KEYS; k++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", k);
		gs[k] = (get_state){0};
		snprintf(gs[k].want, sizeof(gs[k].want), "v%d", WRITES - KEYS + k);
		cr_assert_eq(gcs_client_get(ch.c, GCS_T_KV, key, strlen(key), on_get, &gs[k]),
			     0);
	}
	while (gcs_client_pending(ch.c)) {
		cr_assert_lt(prism_now_ns(), end, "reads");
		poll_all(&ch);
	}
	for (int k = 0; k < KEYS; k++)
		cr_assert_eq(gs[k].bad, 0, "key k%d read back wrong", k);
	/* Let the last batch and acknowledgements settle, then every replica is the same. */
	for (int i = 0; i < 200; i++)
		poll_all(&ch);
	for (int i = 0; i < n; i++) {
		const struct gcs_store *s = gcs_replica_store(ch.r[i]);
		cr_assert_eq(gcs_store_seq(s), WRITES, "replica %d", i);
		cr_assert_eq(gcs_store_count(s), KEYS);
		cr_assert_eq(
			gcs_store_foreach(s, compare_cb, (void *)gcs_replica_store(ch.r[0])), 0,
			"replica %d equals the head", i);
	}
	check_rings(&ch);
	if (ring_bytes) {
		gcs_replica_stats st;
		gcs_replica_stats_get(ch.r[0], &st);
		cr_assert_gt(st.ring_bytes_out, 4 * ring_bytes, "the ring wrapped many times");
	}
	free_chain(&ch);
}

Test(chain, one_replica)
{
	run_chain(1);
}

Test(chain, two_replicas)
{
	run_chain(2);
}

Test(chain, three_replicas)
{
	run_chain(3);
}

/* A single replica with a log: its writes survive destroy and re-create. */
Test(chain, a_replica_with_a_log_comes_back)
{
	char dir[] = "/tmp/prism-chain-XXXXXX", wal[128];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(wal, sizeof(wal), "%s/shard.wal", dir);
	chain ch;
	make_chain(&ch, 1, wal);
	put_state ps = {.ch = &ch, .tail_had_it = true};
	for (int i = 0; i < 100; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", i);
		cr_assert_eq(
			gcs_client_put(ch.c, GCS_T_KV, key, strlen(key), "x", 1, on_put, &ps),
			0);
	}
	uint64_t end = prism_now_ns() + DEADLINE_NS;
	while (ps.done < 100) {
		cr_assert_lt(prism_now_ns(), end);
		poll_all(&ch);
	}
	free_chain(&ch);
	make_chain(&ch, 1, wal);
	const struct gcs_store *s = gcs_replica_store(ch.r[0]);
	cr_assert_eq(gcs_store_seq(s), 100);
	cr_assert_eq(gcs_store_count(s), 100);
	free_chain(&ch);
	unlink(wal);
	rmdir(dir);
}

/* Write WRITES keys with WINDOW in flight; after `at` acknowledgements call repair(). */
static void write_through(chain *ch, put_state *ps, int writes, int at, void (*repair)(chain *))
{
	uint64_t end = prism_now_ns() + DEADLINE_NS;
	int sent = 0;
	bool repaired = false;
	while (ps->done < writes) {
		cr_assert_lt(prism_now_ns(), end, "writes done: %d of %d", ps->done, writes);
		while (sent < writes && sent - ps->done < 64) {
			char key[16];
			snprintf(key, sizeof(key), "k%d", sent);
			cr_assert_eq(gcs_client_put(ch->c, GCS_T_KV, key, strlen(key), "v", 1,
						    on_put, ps),
				     0);
			sent++;
		}
		poll_all(ch);
		if (!repaired && ps->done >= at) {
			repair(ch);
			repaired = true;
		}
	}
}

static uint64_t cut_at_ring_in; /* the tail's ring batches when the middle died */

static void cut_middle(chain *ch)
{
	gcs_replica_stats st;
	gcs_replica_stats_get(ch->r[2], &st);
	cut_at_ring_in = st.ring_batches_in;
	kill_replica(ch, 1);
	cr_assert_eq(gcs_replica_set_next(ch->r[0], ch->addr[2]), 0);
}

static void cut_tail(chain *ch)
{
	kill_replica(ch, 2);
	ch->tail = 1;
	cr_assert_eq(gcs_replica_set_next(ch->r[1], NULL), 0);
}

static void check_survivors(chain *ch, int writes)
{
	for (int i = 0; i < 300; i++)
		poll_all(ch);
	for (int i = 0; i < ch->n; i++) {
		if (!ch->r[i])
			continue;
		const struct gcs_store *s = gcs_replica_store(ch->r[i]);
		cr_assert_eq(gcs_store_count(s), (size_t)writes, "replica %d holds every write",
			     i);
		cr_assert_eq(
			gcs_store_foreach(s, compare_cb, (void *)gcs_replica_store(ch->r[0])),
			0, "replica %d equals the head", i);
	}
}

/* Three replicas, 3,000 writes, repair() after 1,000: none fails, each is acknowledged
 * after the tail held it, and the survivors hold the same tables.  The chain is left for
 * the caller's checks; the caller frees it. */
static void cut_during_writes(chain *ch, void (*repair)(chain *))
{
	make_chain(ch, 3, NULL);
	put_state ps = {.ch = ch, .tail_had_it = true};
	write_through(ch, &ps, 3000, 1000, repair);
	cr_assert_eq(ps.failed, 0);
	cr_assert(ps.tail_had_it);
	check_survivors(ch, 3000);
}

/* The middle of three dies with writes in flight; the head is joined to the tail and
 * resends what the tail had not acknowledged: every write is acknowledged once, after
 * the tail held it, and the two survivors hold the same tables. */
Test(chain, a_dead_middle_replica_is_cut_out)
{
	chain ch;
	cut_during_writes(&ch, cut_middle);
	free_chain(&ch);
}

/* The tail dies; its predecessor becomes the tail and acknowledges what it holds. */
Test(chain, a_dead_tail_is_cut_out)
{
	chain ch;
	cut_during_writes(&ch, cut_tail);
	free_chain(&ch);
}

/* The same over softverbs: batches go by RDMA WRITE into the successor's log ring. */
Test(chain, three_replicas_over_softverbs_ship_batches_by_write)
{
	backend = TRANSPORT_SOFTVERBS;
	run_chain(3);
}

/* A 16 KiB ring: it wraps many times (at the wrap a batch that does not fit before the
 * end goes to the start); the replicas still agree. */
Test(chain, a_small_ring_wraps)
{
	backend = TRANSPORT_SOFTVERBS;
	ring_bytes = 16384;
	run_chain(3);
}

/* The middle dies over softverbs: the head writes into the tail's ring under a fresh
 * registration. */
Test(chain, a_dead_middle_replica_is_cut_out_over_softverbs)
{
	backend = TRANSPORT_SOFTVERBS;
	chain ch;
	cut_during_writes(&ch, cut_middle);
	check_rings(&ch);
	gcs_replica_stats st;
	gcs_replica_stats_get(ch.r[2], &st);
	cr_assert_gt(st.ring_batches_in, cut_at_ring_in,
		     "after the cut the head wrote into the tail's ring");
	free_chain(&ch);
}

/* The tail does not poll for a while: its ring fills, and the batches that find no room
 * go as messages, in order; once it polls again everything converges. */
Test(chain, a_full_ring_falls_back_to_messages)
{
	backend = TRANSPORT_SOFTVERBS;
	ring_bytes = 16384;
	chain ch;
	make_chain(&ch, 2, NULL);
	put_state ps = {.ch = &ch, .tail_had_it = false};
	for (int i = 0; i < 50; i++) /* links up, the ring given */
		poll_all(&ch);
	int sent = 0;
	for (int round = 0; round < 100; round++) {
		for (int k = 0; k < 20; k++, sent++) {
			char key[16];
			snprintf(key, sizeof(key), "k%d", sent);
			cr_assert_eq(gcs_client_put(ch.c, GCS_T_KV, key, strlen(key), "v", 1,
						    on_put, &ps),
				     0);
		}
		cr_assert_geq(gcs_client_poll(ch.c, 0), 0);
		cr_assert_geq(gcs_replica_poll(ch.r[0], 100000), 0); /* the tail sleeps */
	}
	uint64_t end = prism_now_ns() + DEADLINE_NS;
	while (ps.done < sent) {
		cr_assert_lt(prism_now_ns(), end, "writes done: %d of %d", ps.done, sent);
		poll_all(&ch);
	}
	cr_assert_eq(ps.failed, 0);
	gcs_replica_stats st;
	gcs_replica_stats_get(ch.r[0], &st);
	cr_assert_gt(st.ring_full, 0, "the ring filled up");
	cr_assert_gt(st.ring_batches_out, 0);
	check_survivors(&ch, sent);
	free_chain(&ch);
}
