/* Chains of replica processes under a configuration master (in a thread): a replica
 * SIGKILLed while writes flow is detected and cut out, clients follow the new
 * configuration by themselves, and no acknowledged write is lost or applied twice. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/alloc.h"
#include "base/error.h"
#include "gcs/chain.h"
#include "gcs/record.h"
#include "lincheck.h"
#include "procs.h"

#define DEADLINE_NS PROCS_DEADLINE_NS

static void start_replicas(void)
{
	memset(token, 8, sizeof(token));
	for (int i = 0; i < 3; i++)
		spawn_replica(i);
	start_master(1, 3);
}

static void stop_all(void)
{
	stop_master();
	stop_replicas();
}

TestSuite(failover, .init = start_replicas, .fini = stop_all);

typedef struct progress {
	int done, failed;
	uint64_t last_done_ns, longest_gap_ns;
} progress;

static void on_put(void *arg, int status, uint64_t seq)
{
	(void)seq;
	progress *p = arg;
	uint64_t now = prism_now_ns();
	if (p->last_done_ns && now - p->last_done_ns > p->longest_gap_ns)
		p->longest_gap_ns = now - p->last_done_ns;
	p->last_done_ns = now;
	p->done++;
	if (status)
		p->failed++;
}

typedef struct reads {
	int done, bad;
} reads;

static void on_get(void *arg, int status, const uint8_t *v, size_t len, uint64_t ver)
{
	(void)ver;
	reads *r = arg;
	r->done++;
	if (status || len != 1 || v[0] != 'v')
		r->bad++;
}

/* Write 3,000 keys (32 in flight); after 1,000 SIGKILL replica `victim`. */
static void write_and_kill(gcs_client *c, int victim, progress *p)
{
	uint64_t end = prism_now_ns() + DEADLINE_NS;
	int sent = 0;
	bool killed = false;
	while (p->done < 3000) {
		cr_assert_lt(prism_now_ns(), end, "writes done: %d", p->done);
		while (sent < 3000 && sent - p->done < 32) {
			char key[16];
			snprintf(key, sizeof(key), "k%d", sent);
			cr_assert_eq(gcs_client_put(c, GCS_T_KV, key, strlen(key), "v", 1,
						    on_put, p),
				     0);
			sent++;
		}
		cr_assert_geq(gcs_client_poll(c, 1000000), 0);
		if (!killed && p->done >= 1000) {
			kill_kid(victim);
			killed = true;
		}
	}
}

/* Every key reads back (at whichever replica serves reads now). */
static void read_all(void)
{
	gcs_client *c = open_client();
	reads r = {0};
	for (int i = 0; i < 3000; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", i);
		cr_assert_eq(gcs_client_get(c, GCS_T_KV, key, strlen(key), on_get, &r), 0);
	}
	uint64_t end = prism_now_ns() + DEADLINE_NS;
	while (r.done < 3000) {
		cr_assert_lt(prism_now_ns(), end, "reads done: %d", r.done);
		cr_assert_geq(gcs_client_poll(c, 1000000), 0);
	}
	cr_assert_eq(r.bad, 0, "%d keys missing or wrong", r.bad);
	gcs_client_destroy(c);
}

/* 3,000 writes through a client of the master, replica `victim` SIGKILLed after 1,000:
 * none fails (the client sends again what the dead replica left unanswered), the chain
 * is the two survivors, and every key reads back. */
static void kill_during_writes(int victim)
{
	gcs_client *c = open_client();
	progress p = {0};
	write_and_kill(c, victim, &p);
	cr_assert_eq(p.failed, 0);
	char chain[3][TRANSPORT_ADDR_MAX];
	cr_assert_eq(master_chain(0, chain, 3), 2, "the dead replica was cut out");
	for (int i = 0; i < 2; i++)
		cr_assert_str_neq(chain[i], addr[victim]);
	cr_log_info("longest stall of the writers: %.1f ms", (double)p.longest_gap_ns / 1e6);
	gcs_client_destroy(c);
	read_all();
}

Test(failover, a_killed_middle_replica_loses_no_acknowledged_write)
{
	kill_during_writes(1);
}

Test(failover, a_killed_tail_is_replaced_by_its_predecessor)
{
	kill_during_writes(2);
}

Test(failover, a_killed_head_is_replaced_by_its_successor)
{
	kill_during_writes(0);
}

/* ---- linearizability while a replica dies ------------------------------------------ */

enum { LKEYS = 4, LCLIENTS = 3, LOPS = 2400 };

typedef struct lclient {
	gcs_client *c;
	bool busy;
	lin_op *cur;
	int key;
} lclient;

static lin_op hist[LKEYS][LOPS];
static int nhist[LKEYS];
static int64_t next_value = 1;
static int lin_failed;

static void lin_put_cb(void *arg, int status, uint64_t seq)
{
	(void)seq;
	lclient *l = arg;
	/* A write whose answer is an error may still have happened: it stays pending. */
	l->cur->response = status ? LIN_PENDING : (int64_t)prism_now_ns();
	lin_failed += status != 0;
	l->busy = false;
}

static void lin_get_cb(void *arg, int status, const uint8_t *v, size_t len, uint64_t ver)
{
	(void)ver;
	lclient *l = arg;
	if (status == 0 && len == 8) {
		memcpy(&l->cur->value, v, 8);
		l->cur->response = (int64_t)prism_now_ns();
	} else if (status == -ENOENT) {
		l->cur->value = 0;
		l->cur->response = (int64_t)prism_now_ns();
	} else {
		nhist[l->key]--; /* a failed read tells nothing: forget it */
		lin_failed++;
	}
	l->busy = false;
}

static void lin_issue(lclient *l, uint64_t *rnd)
{
	*rnd ^= *rnd << 13, *rnd ^= *rnd >> 7, *rnd ^= *rnd << 17;
	int k = (int)(*rnd % LKEYS);
	bool write = (*rnd >> 8) % 2;
	char key[8];
	snprintf(key, sizeof(key), "L%d", k);
	lin_op *o = &hist[k][nhist[k]++];
	*o = (lin_op){
		.invoke = (int64_t)prism_now_ns(), .response = LIN_PENDING, .write = write};
	l->cur = o;
	l->key = k;
	l->busy = true;
	int rc;
	if (write) {
		o->value = next_value++;
		rc = gcs_client_put(l->c, GCS_T_KV, key, strlen(key), &o->value, 8, lin_put_cb,
				    l);
	} else {
		rc = gcs_client_get(l->c, GCS_T_KV, key, strlen(key), lin_get_cb, l);
	}
	cr_assert_eq(rc, 0);
}

static bool any_busy(const lclient *cl)
{
	for (int i = 0; i < LCLIENTS; i++)
		if (cl[i].busy)
			return true;
	return false;
}

/* Kill and replace, three times, with requests in flight each time: the middle dies and
 * a new replica is added by state transfer; then the head; then the (new) tail, and
 * another is added.  The clients find the new head and tail by themselves (the master
 * tells them).  Every key's history must stay linearizable, and no request may fail. */
Test(failover, kill_and_replace_repeatedly_stays_linearizable)
{
	memset(hist, 0, sizeof(hist));
	memset(nhist, 0, sizeof(nhist));
	lin_failed = 0;
	lclient cl[LCLIENTS];
	for (int i = 0; i < LCLIENTS; i++)
		cl[i] = (lclient){.c = open_client()};
	uint64_t rnd = 0x2545f4914f6cdd1dull, end = prism_now_ns() + DEADLINE_NS;
	int issued = 0, phase = 0;
	const int step = LOPS / 8;
	/* Step k happens once `issued` passes (k + 1) * step: chain after it. */
	static const struct {
		int kill, add;
	} steps[] = {
		{1, -1}, /* [0 2] */
		{-1, 3}, /* [0 2 3] */
		{0, -1}, /* [2 3] */
		{-1, 4}, /* [2 3 4] */
		{4, -1}, /* [2 3] */
		{-1, 5}, /* [2 3 5] */
	};
	for (;;) {
		cr_assert_lt(prism_now_ns(), end, "ops issued: %d (phase %d)", issued, phase);
		bool room = true;
		for (int k = 0; k < LKEYS; k++)
			room &= nhist[k] < LOPS - 2;
		bool more = room && issued < LOPS - 2 * LCLIENTS;
		for (int i = 0; i < LCLIENTS; i++)
			if (!cl[i].busy && more) {
				lin_issue(&cl[i], &rnd);
				issued++;
			}
		if (!any_busy(cl) && !more)
			break;
		for (int i = 0; i < LCLIENTS; i++)
			cr_assert_geq(gcs_client_poll(cl[i].c, 100000), 0);
		if (phase < 6 && issued >= (phase + 1) * step) {
			if (steps[phase].kill >= 0)
				kill_kid(steps[phase].kill);
			if (steps[phase].add >= 0) {
				spawn_replica(steps[phase].add);
				master_add(0, steps[phase].add);
			}
			phase++;
		}
	}
	cr_assert_eq(phase, 6, "every kill and replacement happened");
	cr_assert_eq(lin_failed, 0, "requests failed: the client should have sent them again");
	char chain[8][TRANSPORT_ADDR_MAX];
	cr_assert_eq(master_chain(0, chain, 8), 3);
	cr_assert_str_eq(chain[0], addr[2]);
	cr_assert_str_eq(chain[2], addr[5]);
	for (int k = 0; k < LKEYS; k++) {
		int r = lin_check(hist[k], (size_t)nhist[k], 0, 50000000ull);
		cr_assert_eq(r, 1, "key L%d: %s (%d operations)", k,
			     r == 0 ? "not linearizable" : "undecided", nhist[k]);
	}
	for (int i = 0; i < LCLIENTS; i++)
		gcs_client_destroy(cl[i].c);
}

/* ---- the whole GCS killed and restarted from its disks ------------------------------ */

TestSuite(restart, .fini = stop_all);

static bool acked_key[3000];

static void on_put_key(void *arg, int status, uint64_t seq)
{
	(void)seq;
	progress *p = arg;
	p->done++;
	p->failed += status != 0;
}

/* Two replicas with logs under a master; writes flow (32 in flight); after 1,000 are
 * acknowledged every replica and the master are SIGKILLed.  Restarted from their logs
 * and snapshots under a new master, in the same order, the chain serves every write that
 * was acknowledged (the tail, which had less than the head, takes the head's image). */
Test(restart, the_whole_gcs_killed_comes_back_with_every_acknowledged_write)
{
	memset(token, 8, sizeof(token));
	char dir[] = "/tmp/prism-restart-XXXXXX", wal[2][96];
	cr_assert_not_null(mkdtemp(dir));
	for (int i = 0; i < 2; i++) {
		snprintf(wal[i], sizeof(wal[i]), "%s/r%d.wal", dir, i);
		spawn_replica_full(i, TRANSPORT_TCP, wal[i]);
	}
	start_master(1, 2);
	gcs_client *c = open_client();
	progress p[3000];
	memset(acked_key, 0, sizeof(acked_key));
	int sent = 0, acked = 0;
	uint64_t end = prism_now_ns() + DEADLINE_NS;
	while (acked < 1000) {
		cr_assert_lt(prism_now_ns(), end);
		for (; sent < 3000 && sent - acked < 32; sent++) {
			char key[16];
			p[sent] = (progress){0};
			int n = snprintf(key, sizeof(key), "k%d", sent);
			cr_assert_eq(gcs_client_put(c, GCS_T_KV, key, (size_t)n, "v", 1,
						    on_put_key, &p[sent]),
				     0);
		}
		cr_assert_geq(gcs_client_poll(c, 1000000), 0);
		acked = 0;
		for (int i = 0; i < sent; i++)
			if (p[i].done && !p[i].failed) {
				acked++;
				acked_key[i] = true;
			}
	}
	/* Everything dies at once: replicas first, so no more acknowledgements come. */
	kill_kid(0);
	kill_kid(1);
	gcs_client_destroy(c);
	stop_master();
	for (int i = 0; i < 2; i++)
		spawn_replica_full(i, TRANSPORT_TCP, wal[i]);
	start_master(1, 2);
	c = open_client();
	int missing = 0;
	for (int i = 0; i < sent; i++) {
		if (!acked_key[i])
			continue;
		char key[16];
		int n = snprintf(key, sizeof(key), "k%d", i);
		uint8_t *v;
		size_t len;
		int rc = gcs_client_get_sync(c, GCS_T_KV, key, (size_t)n, &v, &len, NULL);
		missing += rc != 0;
		if (rc == 0)
			prism_free(v);
	}
	cr_assert_eq(missing, 0, "%d acknowledged writes missing after the restart", missing);
	cr_log_info("%d writes acknowledged before the kill, all back", acked);
	gcs_client_destroy(c);
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}
