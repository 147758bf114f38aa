/* A chain of three replica processes under a configuration master: a replica SIGKILLed
 * while writes flow is detected and cut out, and no acknowledged write is lost. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "gcs/chain.h"
#include "gcs/record.h"
#include "lincheck.h"

#define DEADLINE_NS (60ull * 1000000000ull)

static uint8_t token[TRANSPORT_TOKEN_BYTES];
static pid_t kids[8];
static char addr[8][TRANSPORT_ADDR_MAX];

/* Replica process i; it serves (sleeping in its poll) until killed. */
static void spawn_replica(int i)
{
	{
		int pfd[2];
		cr_assert_eq(pipe(pfd), 0);
		kids[i] = fork();
		if (kids[i] == 0) {
			close(pfd[0]);
			gcs_replica_opts o = {.backend = TRANSPORT_TCP,
					      .listen = "tcp://127.0.0.1:0"};
			memcpy(o.token, token, sizeof(token));
			gcs_replica *r;
			char a[TRANSPORT_ADDR_MAX];
			if (gcs_replica_create(&o, a, sizeof(a), &r) != 0 ||
			    write(pfd[1], a, sizeof(a)) != (ssize_t)sizeof(a))
				_exit(2);
			uint64_t end = prism_now_ns() + DEADLINE_NS;
			while (prism_now_ns() < end)
				if (gcs_replica_poll(r, 2000000) < 0)
					_exit(3);
			_exit(0);
		}
		close(pfd[1]);
		cr_assert_eq(read(pfd[0], addr[i], sizeof(addr[i])), (ssize_t)sizeof(addr[i]));
		close(pfd[0]);
	}
}

static void start_replicas(void)
{
	memset(token, 8, sizeof(token));
	for (int i = 0; i < 3; i++)
		spawn_replica(i);
}

static void stop_replicas(void)
{
	for (int i = 0; i < 8; i++) {
		if (kids[i] > 0) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
		}
		kids[i] = 0;
	}
}

TestSuite(failover, .init = start_replicas, .fini = stop_replicas);

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
static void write_and_kill(gcs_master *m, gcs_client *c, int victim, progress *p)
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
		cr_assert_geq(gcs_master_poll(m, 0), 0);
		cr_assert_geq(gcs_client_poll(c, 0), 0);
		if (!killed && p->done >= 1000) {
			kill(kids[victim], SIGKILL);
			waitpid(kids[victim], NULL, 0);
			kids[victim] = 0;
			killed = true;
		}
	}
}

/* Every key is at the tail. */
static void read_all(gcs_master *m, const char *head, const char *tail)
{
	gcs_client *c;
	cr_assert_eq(gcs_client_create(TRANSPORT_TCP, token, head, tail, &c), 0);
	reads r = {0};
	for (int i = 0; i < 3000; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", i);
		cr_assert_eq(gcs_client_get(c, GCS_T_KV, key, strlen(key), on_get, &r), 0);
	}
	uint64_t end = prism_now_ns() + DEADLINE_NS;
	while (r.done < 3000) {
		cr_assert_lt(prism_now_ns(), end, "reads done: %d", r.done);
		gcs_master_poll(m, 0);
		cr_assert_geq(gcs_client_poll(c, 0), 0);
	}
	cr_assert_eq(r.bad, 0, "%d keys missing or wrong at the tail", r.bad);
	gcs_client_destroy(c);
}

static gcs_master *master(void)
{
	const char *a[3] = {addr[0], addr[1], addr[2]};
	gcs_master *m;
	/* 200 ms without a heartbeat: far above a loaded 2-vCPU VM's scheduling hiccups. */
	cr_assert_eq(gcs_master_create(TRANSPORT_TCP, token, a, 3, 200000000ull, &m), 0);
	for (int i = 0; i < 200; i++)
		gcs_master_poll(m, 1000000);
	return m;
}

/* 3,000 writes, replica `victim` SIGKILLed after 1,000: none lost or failed, the chain
 * is the head and `survivor`, and every key reads back at the survivor (the tail). */
static void kill_during_writes(int victim, int survivor)
{
	gcs_master *m = master();
	gcs_client *c;
	cr_assert_eq(gcs_client_create(TRANSPORT_TCP, token, addr[0], addr[2], &c), 0);
	progress p = {0};
	write_and_kill(m, c, victim, &p);
	cr_assert_eq(p.failed, 0);
	char chain[3][TRANSPORT_ADDR_MAX];
	cr_assert_eq(gcs_master_chain(m, chain, 3), 2, "the dead replica was cut out");
	cr_assert_str_eq(chain[1], addr[survivor]);
	cr_log_info("longest stall of the writers: %.1f ms", (double)p.longest_gap_ns / 1e6);
	gcs_client_destroy(c);
	read_all(m, addr[0], addr[survivor]);
	gcs_master_destroy(m);
}

Test(failover, a_killed_middle_replica_loses_no_acknowledged_write)
{
	kill_during_writes(1, 2);
}

Test(failover, a_killed_tail_is_replaced_by_its_predecessor)
{
	kill_during_writes(2, 1);
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

static void lin_put_cb(void *arg, int status, uint64_t seq)
{
	(void)seq;
	lclient *l = arg;
	/* A write whose answer is an error may still have happened: it stays pending. */
	l->cur->response = status ? LIN_PENDING : (int64_t)prism_now_ns();
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

static void kill_kid(int i)
{
	kill(kids[i], SIGKILL);
	waitpid(kids[i], NULL, 0);
	kids[i] = 0;
}

static bool any_busy(const lclient *cl)
{
	for (int i = 0; i < LCLIENTS; i++)
		if (cl[i].busy)
			return true;
	return false;
}

/* Let the master and the chain settle (repairs, state transfer, acknowledgements). */
static void settle(gcs_master *m)
{
	for (int i = 0; i < 300; i++)
		gcs_master_poll(m, 1000000);
}

static void move_reads(lclient *cl, int tail)
{
	for (int i = 0; i < LCLIENTS; i++) {
		gcs_client_destroy(cl[i].c);
		cr_assert_eq(
			gcs_client_create(TRANSPORT_TCP, token, addr[0], addr[tail], &cl[i].c),
			0);
	}
}

/* Kill and replace, three times: the middle dies with requests in flight and a new
 * replica is added by state transfer; then the next middle; then the tail (while the
 * clients are idle), and another is added.  Clients move their reads to each new tail
 * once it caught up.  Every key's history must stay linearizable. */
Test(failover, kill_and_replace_repeatedly_stays_linearizable)
{
	memset(hist, 0, sizeof(hist));
	memset(nhist, 0, sizeof(nhist));
	gcs_master *m = master();
	lclient cl[LCLIENTS];
	for (int i = 0; i < LCLIENTS; i++) {
		cl[i] = (lclient){0};
		cr_assert_eq(
			gcs_client_create(TRANSPORT_TCP, token, addr[0], addr[2], &cl[i].c), 0);
	}
	uint64_t rnd = 0x2545f4914f6cdd1dull, end = prism_now_ns() + DEADLINE_NS;
	int issued = 0, phase = 0;
	const int step = LOPS / 8;
	for (;;) {
		cr_assert_lt(prism_now_ns(), end, "ops issued: %d (phase %d)", issued, phase);
		bool room = true;
		for (int k = 0; k < LKEYS; k++)
			room &= nhist[k] < LOPS - 2;
		/* Before a step that needs the clients idle, let their requests drain. */
		bool drain = (phase == 1 && issued >= 2 * step) ||
			     (phase == 3 && issued >= 4 * step) ||
			     (phase == 4 && issued >= 5 * step);
		bool more = room && issued < LOPS - 2 * LCLIENTS;
		for (int i = 0; i < LCLIENTS; i++)
			if (!cl[i].busy && more && !drain) {
				lin_issue(&cl[i], &rnd);
				issued++;
			}
		if (!any_busy(cl) && !more)
			break;
		gcs_master_poll(m, 0);
		for (int i = 0; i < LCLIENTS; i++)
			cr_assert_geq(gcs_client_poll(cl[i].c, 0), 0);
		if (phase == 0 && issued >= step) {
			kill_kid(1); /* the middle, requests in flight: [0 2] */
			phase = 1;
		} else if (phase == 1 && issued >= 2 * step && !any_busy(cl)) {
			settle(m);
			spawn_replica(3);
			cr_assert_eq(gcs_master_add(m, addr[3]), 0); /* [0 2 3] */
			settle(m);
			move_reads(cl, 3);
			phase = 2;
		} else if (phase == 2 && issued >= 3 * step) {
			kill_kid(2); /* the middle again: [0 3] */
			phase = 3;
		} else if (phase == 3 && issued >= 4 * step && !any_busy(cl)) {
			settle(m);
			spawn_replica(4);
			cr_assert_eq(gcs_master_add(m, addr[4]), 0); /* [0 3 4] */
			settle(m);
			move_reads(cl, 4);
			phase = 4;
		} else if (phase == 4 && issued >= 5 * step && !any_busy(cl)) {
			kill_kid(4); /* the tail: [0 3] */
			settle(m);
			move_reads(cl, 3);
			spawn_replica(5);
			cr_assert_eq(gcs_master_add(m, addr[5]), 0); /* [0 3 5] */
			settle(m);
			move_reads(cl, 5);
			phase = 5;
		}
	}
	cr_assert_eq(phase, 5, "every kill and replacement happened");
	char chain[8][TRANSPORT_ADDR_MAX];
	cr_assert_eq(gcs_master_chain(m, chain, 8), 3);
	cr_assert_str_eq(chain[2], addr[5]);
	for (int k = 0; k < LKEYS; k++) {
		int r = lin_check(hist[k], (size_t)nhist[k], 0, 50000000ull);
		cr_assert_eq(r, 1, "key L%d: %s (%d operations)", k,
			     r == 0 ? "not linearizable" : "undecided", nhist[k]);
	}
	for (int i = 0; i < LCLIENTS; i++)
		gcs_client_destroy(cl[i].c);
	gcs_master_destroy(m);
}
