/* A sharded GCS: three chains of two replica processes under one master.  Keys spread
 * over the shards by hash, clients route each request to its shard, a table subscription
 * hears every shard, and a replica killed in one shard disturbs no other. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/alloc.h"
#include "base/error.h"
#include "gcs/chain.h"
#include "gcs/record.h"
#include "gcs/store.h"
#include "procs.h"

enum { SHARDS = 3, R = 2, KEYS = 3000 };

static void start(void)
{
	memset(token, 5, sizeof(token));
	for (int i = 0; i < SHARDS * R; i++)
		spawn_replica(i);
	start_master(SHARDS, R);
}

static void stop(void)
{
	stop_master();
	stop_replicas();
}

TestSuite(shards, .init = start, .fini = stop);

typedef struct count {
	int done, failed;
} count;

static void on_put(void *arg, int status, uint64_t seq)
{
	(void)seq;
	count *n = arg;
	n->done++;
	n->failed += status != 0;
}

static void on_get(void *arg, int status, const uint8_t *v, size_t len, uint64_t ver)
{
	(void)ver;
	count *n = arg;
	n->done++;
	/* Each key's value is its own name. */
	char want[16];
	snprintf(want, sizeof(want), "k%d", n->done - 1);
	n->failed += status != 0 || len != strlen(want) || memcmp(v, want, len) != 0;
}

/* Write KEYS keys (value = key), 64 in flight, killing replica `victim` (if >= 0)
 * after a third; then read every one back, in order. */
static void write_read(int victim)
{
	gcs_client *c = open_client();
	cr_assert_eq(gcs_client_shards(c), SHARDS);
	count w = {0}, r = {0};
	uint64_t end = prism_now_ns() + PROCS_DEADLINE_NS;
	int sent = 0;
	while (w.done < KEYS) {
		cr_assert_lt(prism_now_ns(), end, "writes done: %d", w.done);
		for (; sent < KEYS && sent - w.done < 64; sent++) {
			char key[16];
			int n = snprintf(key, sizeof(key), "k%d", sent);
			cr_assert_eq(gcs_client_put(c, GCS_T_KV, key, (size_t)n, key, (size_t)n,
						    on_put, &w),
				     0);
		}
		cr_assert_geq(gcs_client_poll(c, 1000000), 0);
		if (victim >= 0 && w.done >= KEYS / 3) {
			kill_kid(victim);
			victim = -1;
		}
	}
	cr_assert_eq(w.failed, 0, "writes failed");
	/* Reads in order from one client: answers come per shard in order, so the
	 * callback's running count names the key only if every read is its own; read
	 * one at a time to keep that true. */
	for (int i = 0; i < KEYS; i++) {
		char key[16];
		int n = snprintf(key, sizeof(key), "k%d", i);
		cr_assert_eq(gcs_client_get(c, GCS_T_KV, key, (size_t)n, on_get, &r), 0);
		while (r.done <= i) {
			cr_assert_lt(prism_now_ns(), end, "reads done: %d", r.done);
			cr_assert_geq(gcs_client_poll(c, 1000000), 0);
		}
	}
	cr_assert_eq(r.failed, 0, "keys missing or wrong");
	gcs_client_destroy(c);
}

Test(shards, keys_spread_over_every_shard_and_read_back)
{
	int per[SHARDS] = {0};
	for (int i = 0; i < KEYS; i++) {
		char key[16];
		int n = snprintf(key, sizeof(key), "k%d", i);
		int s = gcs_shard_of(GCS_T_KV, key, (size_t)n, SHARDS);
		cr_assert(s >= 0 && s < SHARDS);
		per[s]++;
	}
	for (int s = 0; s < SHARDS; s++)
		cr_assert_gt(per[s], KEYS / SHARDS * 8 / 10, "shard %d holds %d of %d keys", s,
			     per[s], KEYS);
	write_read(-1);
}

Test(shards, a_replica_killed_in_one_shard_leaves_the_others_alone)
{
	/* Replica 2 is the head of shard 1 (addresses go shard by shard, head first). */
	write_read(2);
	char chain[R][TRANSPORT_ADDR_MAX];
	for (int s = 0; s < SHARDS; s++)
		cr_assert_eq(master_chain(s, chain, R), s == 1 ? 1 : 2, "shard %d", s);
	cr_assert_str_eq(chain[0], addr[4]); /* shard 2 untouched: [4 5] */
	cr_assert_str_eq(chain[1], addr[5]);
}

typedef struct seen {
	int n, bad;
	int last[300]; /* the last version seen per key */
} seen;

static void on_change(void *arg, int status, uint64_t seq, int kind, const uint8_t *key,
		      size_t key_len, const uint8_t *value, size_t value_len)
{
	(void)seq;
	(void)kind;
	seen *s = arg;
	int k, v;
	char kb[16] = {0}, vb[16] = {0};
	memcpy(kb, key, key_len < 15 ? key_len : 15);
	memcpy(vb, value, value_len < 15 ? value_len : 15);
	if (status || sscanf(kb, "s%d", &k) != 1 || sscanf(vb, "v%d", &v) != 1 || k < 0 ||
	    k >= 300 || v != s->last[k] + 1) {
		s->bad++;
		return;
	}
	s->last[k] = v;
	s->n++;
}

Test(shards, a_table_subscription_hears_every_shard_in_order_per_key)
{
	gcs_client *w = open_client(), *sub = open_client();
	seen s = {0}, one = {0};
	uint64_t id, id1;
	cr_assert_eq(gcs_client_subscribe(sub, GCS_T_KV, NULL, 0, on_change, &s, &id), 0);
	cr_assert_eq(gcs_client_subscribe(sub, GCS_T_KV, "s7", 2, on_change, &one, &id1), 0);
	/* Let the subscriptions reach every tail before writing. */
	for (int i = 0; i < 50; i++)
		gcs_client_poll(sub, 1000000);
	count p = {0};
	for (int v = 1; v <= 3; v++)
		for (int k = 0; k < 300; k++) {
			char key[16], val[16];
			int kn = snprintf(key, sizeof(key), "s%d", k);
			int vn = snprintf(val, sizeof(val), "v%d", v);
			cr_assert_eq(gcs_client_put(w, GCS_T_KV, key, (size_t)kn, val,
						    (size_t)vn, on_put, &p),
				     0);
		}
	uint64_t end = prism_now_ns() + PROCS_DEADLINE_NS;
	while (p.done < 900 || s.n + s.bad < 900 || one.n < 3) {
		cr_assert_lt(prism_now_ns(), end, "writes %d, changes %d", p.done, s.n);
		gcs_client_poll(w, 0);
		gcs_client_poll(sub, 1000000);
	}
	cr_assert_eq(p.failed, 0);
	cr_assert_eq(s.bad, 0, "changes out of order or malformed");
	cr_assert_eq(s.n, 900);
	cr_assert_eq(one.n, 3, "the key subscription hears its key only");
	cr_assert_eq(one.bad, 0);
	cr_assert_eq(gcs_client_unsubscribe(sub, id), 0);
	cr_assert_eq(gcs_client_unsubscribe(sub, id1), 0);
	gcs_client_destroy(w);
	gcs_client_destroy(sub);
}

/* The synchronous wrappers: a write and its read back, a missing key, and a record a
 * typed table refuses (it takes only valid records of its kind). */
Test(shards, sync_wrappers_write_read_and_refuse)
{
	gcs_client *c = open_client();
	uint64_t seq = 0;
	cr_assert_eq(gcs_client_put_sync(c, GCS_T_KV, "alpha", 5, "one", 3, &seq), 0);
	cr_assert_gt(seq, 0);
	uint8_t *v;
	size_t len;
	uint64_t ver;
	cr_assert_eq(gcs_client_get_sync(c, GCS_T_KV, "alpha", 5, &v, &len, &ver), 0);
	cr_assert(len == 3 && memcmp(v, "one", 3) == 0);
	cr_assert_eq(ver, seq, "the version is the seq of the write");
	prism_free(v);
	cr_assert_eq(gcs_client_get_sync(c, GCS_T_KV, "nothing", 7, &v, &len, NULL), -ENOENT);
	cr_assert_null(v);
	int rc = gcs_client_put_sync(c, GCS_T_NODE, "n1", 2, "not a node record", 17, NULL);
	cr_assert_lt(rc, 0, "a typed table refuses what is not its record");
	cr_assert_neq(rc, PRISM_E_TIMEOUT);
	gcs_client_destroy(c);
}

typedef struct scanned {
	int n, bad, done, status;
} scanned;

static void on_each(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
		    uint64_t version)
{
	scanned *s = arg;
	s->n++;
	/* Each key's value is its own name (write_read's convention). */
	s->bad += klen != vlen || memcmp(key, val, klen) != 0 || version == 0;
}

static void on_done(void *arg, int status)
{
	scanned *s = arg;
	s->done++;
	s->status = status;
}

/* A scan reads a whole table from every shard's tail: every key once, nothing of other
 * tables. */
Test(shards, a_scan_reads_a_whole_table_across_shards)
{
	write_read(-1);
	gcs_client *c = open_client();
	cr_assert_eq(gcs_client_put_sync(c, GCS_T_JOB, "not-a-job", 9, "x", 1, NULL) < 0, true,
		     "a typed table refuses junk, so the job table stays empty");
	scanned kv = {0}, job = {0};
	cr_assert_eq(gcs_client_scan(c, GCS_T_KV, on_each, on_done, &kv), 0);
	cr_assert_eq(gcs_client_scan(c, GCS_T_JOB, on_each, on_done, &job), 0);
	uint64_t end = prism_now_ns() + PROCS_DEADLINE_NS;
	while (kv.done == 0 || job.done == 0) {
		cr_assert_lt(prism_now_ns(), end);
		cr_assert_geq(gcs_client_poll(c, 1000000), 0);
	}
	cr_assert_eq(kv.done, 1, "one completion for all shards");
	cr_assert_eq(kv.status, 0);
	cr_assert_eq(kv.n, KEYS);
	cr_assert_eq(kv.bad, 0);
	cr_assert_eq(job.status, 0);
	cr_assert_eq(job.n, 0);
	cr_assert_eq(gcs_client_scan(c, 0, on_each, on_done, &kv), -EINVAL);
	gcs_client_destroy(c);
}
