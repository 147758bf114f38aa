/* procs.h — GCS replicas as child processes, for the tests that kill them (SIGKILL) and
 * a configuration master in the test process.  Header-only (static functions). */
#ifndef PRISM_TESTS_GCS_PROCS_H
#define PRISM_TESTS_GCS_PROCS_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "gcs/chain.h"

#define PROCS_MAX 16
#define PROCS_DEADLINE_NS (60ull * 1000000000ull)

static uint8_t token[TRANSPORT_TOKEN_BYTES];
static pid_t kids[PROCS_MAX];
static char addr[PROCS_MAX][TRANSPORT_ADDR_MAX];

/* Replica process i on the given backend (with a log at wal, snapshots every 500
 * entries, or in memory for NULL); it serves (sleeping in its poll) until
 * killed, or for PROCS_DEADLINE_NS.  Its address lands in addr[i]. */
static inline void spawn_replica_full(int i, enum transport_backend backend, const char *wal)
{
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	kids[i] = fork();
	if (kids[i] == 0) {
		close(pfd[0]);
		gcs_replica_opts o = {.backend = backend,
				      .listen = "tcp://127.0.0.1:0",
				      .standby = true,
				      .wal_path = wal,
				      .snapshot_every = 500};
		memcpy(o.token, token, sizeof(token));
		gcs_replica *r;
		char a[TRANSPORT_ADDR_MAX];
		if (gcs_replica_create(&o, a, sizeof(a), &r) != 0 ||
		    write(pfd[1], a, sizeof(a)) != (ssize_t)sizeof(a))
			_exit(2);
		uint64_t end = prism_now_ns() + PROCS_DEADLINE_NS;
		while (prism_now_ns() < end)
			if (gcs_replica_poll(r, 2000000) < 0)
				_exit(3);
		_exit(0);
	}
	close(pfd[1]);
	cr_assert_eq(read(pfd[0], addr[i], sizeof(addr[i])), (ssize_t)sizeof(addr[i]));
	close(pfd[0]);
}

static inline void spawn_replica(int i)
{
	spawn_replica_full(i, TRANSPORT_TCP, NULL);
}

static inline void kill_kid(int i)
{
	kill(kids[i], SIGKILL);
	waitpid(kids[i], NULL, 0);
	kids[i] = 0;
}

static inline void stop_replicas(void)
{
	for (int i = 0; i < PROCS_MAX; i++)
		if (kids[i] > 0)
			kill_kid(i);
}

/* The configuration master, in a thread of the test process (as it would run in the
 * head node's loop): clients block in gcs_client_open() until it answers.  Calls into
 * it from the test go through master_lock(). */
static struct {
	gcs_master *m;
	pthread_t th;
	pthread_mutex_t mu;
	atomic_bool stop;
	char addr[TRANSPORT_ADDR_MAX];
} mt = {.mu = PTHREAD_MUTEX_INITIALIZER};

static inline void *master_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&mt.stop)) {
		pthread_mutex_lock(&mt.mu);
		gcs_master_poll(mt.m, 1000000);
		pthread_mutex_unlock(&mt.mu);
	}
	return NULL;
}

/* A master over `shards` chains of `replicas` each, from addr[0..], listening for
 * clients at mt.addr, running in its thread. */
static inline void start_master(int shards, int replicas)
{
	const char *a[PROCS_MAX];
	for (int i = 0; i < shards * replicas; i++)
		a[i] = addr[i];
	gcs_master_opts o = {.backend = TRANSPORT_TCP,
			     .listen = "tcp://127.0.0.1:0",
			     /* 200 ms without a heartbeat: far above a loaded 2-vCPU VM's
			      * scheduling hiccups. */
			     .timeout_ns = 200000000ull,
			     .shards = shards,
			     .replicas = replicas,
			     .addrs = a};
	memcpy(o.token, token, sizeof(token));
	cr_assert_eq(gcs_master_open(&o, mt.addr, sizeof(mt.addr), &mt.m), 0);
	atomic_store(&mt.stop, false);
	cr_assert_eq(pthread_create(&mt.th, NULL, master_main, NULL), 0);
}

static inline void stop_master(void)
{
	if (!mt.m)
		return;
	atomic_store(&mt.stop, true);
	pthread_join(mt.th, NULL);
	gcs_master_destroy(mt.m);
	mt.m = NULL;
}

static inline void master_add(int shard, int i)
{
	pthread_mutex_lock(&mt.mu);
	int rc = gcs_master_add_to(mt.m, shard, addr[i]);
	pthread_mutex_unlock(&mt.mu);
	cr_assert_eq(rc, 0);
}

/* Shard's live chain: its length, the addresses in chain[]. */
static inline int master_chain(int shard, char (*chain)[TRANSPORT_ADDR_MAX], int max)
{
	pthread_mutex_lock(&mt.mu);
	int n = gcs_master_shard_chain(mt.m, shard, chain, max);
	pthread_mutex_unlock(&mt.mu);
	return n;
}

/* A client of the master. */
static inline gcs_client *open_client(void)
{
	gcs_client_opts o = {.backend = TRANSPORT_TCP, .master = mt.addr};
	memcpy(o.token, token, sizeof(token));
	gcs_client *c;
	cr_assert_eq(gcs_client_open(&o, &c), 0);
	return c;
}

#endif
