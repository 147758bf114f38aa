/* A replica's persistence: the log plus snapshots written by a forked child, recovery
 * from snapshot + log (+ the old log of a snapshot cut short), a damaged snapshot
 * refused, and a replica filled by state transfer that recovers from its own disk. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "gcs/chain.h"
#include "gcs/record.h"
#include "gcs/store.h"

#define DEADLINE_NS (30ull * 1000000000ull)

static char dir[64], wal[128];
static uint8_t token[TRANSPORT_TOKEN_BYTES];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/prism-persist-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(wal, sizeof(wal), "%s/shard.wal", dir);
	memset(token, 6, sizeof(token));
}

static void teardown(void)
{
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(persist, .init = setup, .fini = teardown);

static gcs_replica *replica(const char *path, uint64_t every, char *addr)
{
	gcs_replica_opts o = {.backend = TRANSPORT_TCP,
			      .listen = "tcp://127.0.0.1:0",
			      .wal_path = path,
			      .snapshot_every = every};
	memcpy(o.token, token, sizeof(token));
	gcs_replica *r;
	cr_assert_eq(gcs_replica_create(&o, addr, TRANSPORT_ADDR_MAX, &r), 0);
	return r;
}

static void on_put(void *arg, int status, uint64_t seq)
{
	(void)seq;
	int *n = arg;
	cr_assert_eq(status, 0);
	(*n)++;
}

/* Write keys [from, to) (value "v<i>") through head..tail, polling the replicas given. */
static void write_keys(gcs_replica **rs, int nr, const char *head, const char *tail, int from,
		       int to)
{
	gcs_client *c;
	cr_assert_eq(gcs_client_create(TRANSPORT_TCP, token, head, tail, &c), 0);
	int done = 0, sent = from;
	uint64_t end = prism_now_ns() + DEADLINE_NS;
	while (done < to - from) {
		cr_assert_lt(prism_now_ns(), end, "writes done: %d", done);
		for (; sent < to && sent - from - done < 64; sent++) {
			char k[16], v[16];
			int kn = snprintf(k, sizeof(k), "k%d", sent);
			int vn = snprintf(v, sizeof(v), "v%d", sent);
			cr_assert_eq(gcs_client_put(c, GCS_T_KV, k, (size_t)kn, v, (size_t)vn,
						    on_put, &done),
				     0);
		}
		for (int i = 0; i < nr; i++)
			cr_assert_geq(gcs_replica_poll(rs[i], 0), 0);
		cr_assert_geq(gcs_client_poll(c, 0), 0);
	}
	gcs_client_destroy(c);
}

/* The store holds exactly keys [0, n), each with its value. */
static void assert_holds(const gcs_replica *r, int n)
{
	const struct gcs_store *s = gcs_replica_store(r);
	cr_assert_eq(gcs_store_count(s), (size_t)n);
	for (int i = 0; i < n; i++) {
		char k[16], v[16];
		int kn = snprintf(k, sizeof(k), "k%d", i);
		int vn = snprintf(v, sizeof(v), "v%d", i);
		const uint8_t *val;
		size_t vl;
		uint64_t ver;
		cr_assert_eq(gcs_store_get(s, GCS_T_KV, k, (size_t)kn, &val, &vl, &ver), 0,
			     "%s", k);
		cr_assert(vl == (size_t)vn && memcmp(val, v, vl) == 0, "%s", k);
	}
}

static bool exists(const char *suffix)
{
	char p[160];
	snprintf(p, sizeof(p), "%s%s", wal, suffix);
	return access(p, F_OK) == 0;
}

Test(persist, snapshots_and_the_log_recover_every_write)
{
	char a[TRANSPORT_ADDR_MAX];
	gcs_replica *r = replica(wal, 300, a);
	write_keys(&r, 1, a, a, 0, 2000);
	gcs_replica_destroy(r); /* waits for a snapshot child still writing */
	cr_assert(exists(".snap"), "a snapshot was written");
	cr_assert(!exists(".old"), "the log it made redundant is gone");
	struct stat st;
	cr_assert_eq(stat(wal, &st), 0);
	cr_assert_lt(st.st_size, 2000 * 40, "the log holds only what followed the snapshot");
	r = replica(wal, 300, a);
	cr_assert_eq(gcs_store_seq(gcs_replica_store(r)), 2000);
	assert_holds(r, 2000);
	gcs_replica_destroy(r);
}

Test(persist, a_snapshot_cut_short_is_finished_at_restart)
{
	char a[TRANSPORT_ADDR_MAX], old[160];
	gcs_replica *r = replica(wal, 1000000, a);
	write_keys(&r, 1, a, a, 0, 500);
	gcs_replica_destroy(r);
	/* As if the process died after moving the log aside, before the snapshot. */
	snprintf(old, sizeof(old), "%s.old", wal);
	cr_assert_eq(rename(wal, old), 0);
	r = replica(wal, 1000000, a);
	assert_holds(r, 500);
	cr_assert(exists(".snap") && !exists(".old"));
	write_keys(&r, 1, a, a, 500, 800);
	gcs_replica_destroy(r);
	r = replica(wal, 1000000, a);
	assert_holds(r, 800);
	gcs_replica_destroy(r);
}

Test(persist, a_damaged_snapshot_is_refused)
{
	char a[TRANSPORT_ADDR_MAX], snap[160];
	gcs_replica *r = replica(wal, 100, a);
	write_keys(&r, 1, a, a, 0, 400);
	gcs_replica_destroy(r);
	snprintf(snap, sizeof(snap), "%s.snap", wal);
	int fd = open(snap, O_RDWR);
	cr_assert_geq(fd, 0);
	uint8_t b;
	cr_assert_eq(pread(fd, &b, 1, 100), 1);
	b ^= 0x10;
	cr_assert_eq(pwrite(fd, &b, 1, 100), 1);
	close(fd);
	gcs_replica_opts o = {
		.backend = TRANSPORT_TCP, .listen = "tcp://127.0.0.1:0", .wal_path = wal};
	memcpy(o.token, token, sizeof(token));
	cr_assert_eq(gcs_replica_create(&o, a, sizeof(a), &r), PRISM_E_CORRUPT);
}

/* A replica added behind a live one gets its state by transfer, logs what follows, and
 * comes back from its own disk with all of it. */
Test(persist, a_replica_filled_by_state_transfer_recovers_from_its_disk)
{
	char a[TRANSPORT_ADDR_MAX], b[TRANSPORT_ADDR_MAX], bwal[160];
	snprintf(bwal, sizeof(bwal), "%s/b.wal", dir);
	gcs_replica_opts o = {.backend = TRANSPORT_TCP, .listen = "tcp://127.0.0.1:0"};
	memcpy(o.token, token, sizeof(token));
	gcs_replica *rs[2];
	cr_assert_eq(gcs_replica_create(&o, a, sizeof(a), &rs[0]), 0);
	write_keys(rs, 1, a, a, 0, 1000);
	rs[1] = replica(bwal, 1000000, b);
	cr_assert_eq(gcs_replica_set_next(rs[0], b), 0);
	/* The new tail: writes go on through both. */
	write_keys(rs, 2, a, b, 1000, 1200);
	for (int i = 0; i < 50; i++)
		for (int k = 0; k < 2; k++)
			gcs_replica_poll(rs[k], 100000);
	assert_holds(rs[1], 1200);
	gcs_replica_destroy(rs[1]);
	gcs_replica_destroy(rs[0]);
	rs[1] = replica(bwal, 1000000, b);
	assert_holds(rs[1], 1200);
	gcs_replica_destroy(rs[1]);
}

/* 40 MiB of store: more than a frame (32 MiB), so the image moves in chunks while the
 * chain keeps taking writes. */
Test(persist, a_store_larger_than_a_frame_moves_in_chunks)
{
	enum { BIG = 40, MIB = 1 << 20 };
	char a[TRANSPORT_ADDR_MAX], b[TRANSPORT_ADDR_MAX];
	gcs_replica_opts o = {.backend = TRANSPORT_TCP, .listen = "tcp://127.0.0.1:0"};
	memcpy(o.token, token, sizeof(token));
	gcs_replica *rs[2];
	cr_assert_eq(gcs_replica_create(&o, a, sizeof(a), &rs[0]), 0);
	cr_assert_eq(gcs_replica_create(&o, b, sizeof(b), &rs[1]), 0);
	gcs_client *c;
	cr_assert_eq(gcs_client_create(TRANSPORT_TCP, token, a, a, &c), 0);
	uint8_t *val = malloc(MIB);
	cr_assert_not_null(val);
	int done = 0;
	uint64_t end = prism_now_ns() + DEADLINE_NS;
	for (int i = 0; i < BIG; i++) {
		char k[16];
		int kn = snprintf(k, sizeof(k), "big%d", i);
		memset(val, 'a' + i % 26, MIB);
		cr_assert_eq(
			gcs_client_put(c, GCS_T_KV, k, (size_t)kn, val, MIB, on_put, &done), 0);
		while (done <= i) {
			cr_assert_lt(prism_now_ns(), end);
			gcs_replica_poll(rs[0], 0);
			gcs_client_poll(c, 0);
		}
	}
	gcs_client_destroy(c);
	cr_assert_eq(gcs_replica_set_next(rs[0], b), 0);
	write_keys(rs, 2, a, b, 0, 100); /* writes meanwhile */
	while (gcs_store_seq(gcs_replica_store(rs[1])) < BIG + 100) {
		cr_assert_lt(prism_now_ns(), end, "the new replica is at seq %llu",
			     (unsigned long long)gcs_store_seq(gcs_replica_store(rs[1])));
		gcs_replica_poll(rs[0], 0);
		gcs_replica_poll(rs[1], 1000000);
	}
	const struct gcs_store *sb = gcs_replica_store(rs[1]);
	cr_assert_eq(gcs_store_count(sb), BIG + 100);
	for (int i = 0; i < BIG; i++) {
		char k[16];
		int kn = snprintf(k, sizeof(k), "big%d", i);
		const uint8_t *v;
		size_t vl;
		uint64_t ver;
		cr_assert_eq(gcs_store_get(sb, GCS_T_KV, k, (size_t)kn, &v, &vl, &ver), 0);
		cr_assert(vl == MIB && v[0] == 'a' + i % 26 && v[MIB - 1] == 'a' + i % 26);
	}
	free(val);
	gcs_replica_destroy(rs[0]);
	gcs_replica_destroy(rs[1]);
}
