/* The GCS write-ahead log and the store's snapshots: replay, damaged tails detected and
 * reported (never silently accepted), recovery after the whole process was SIGKILLed
 * while writing, and snapshots plus the log giving back the same tables. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/error.h"
#include "base/id.h"
#include "base/wire.h"
#include "gcs/record.h"
#include "gcs/store.h"
#include "gcs/wal.h"

static char dir[64];
static char wal_path[128], snap_path[128];

static void setup(void)
{
	strcpy(dir, "/tmp/prism-wal-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(wal_path, sizeof(wal_path), "%s/shard0.wal", dir);
	snprintf(snap_path, sizeof(snap_path), "%s/shard0.snap", dir);
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(wal, .init = setup, .fini = teardown);

typedef struct seen {
	uint64_t n, last;
	uint64_t bad; /* entries whose payload did not match what was written */
} seen;

/* Entry seq carries "entry <seq>" padded to a length that varies with seq. */
static size_t payload_of(uint64_t seq, uint8_t *buf)
{
	size_t len = 16 + (seq * 7919) % 3000;
	memset(buf, (int)(seq & 0xff), len);
	snprintf((char *)buf, 16, "entry %llu", (unsigned long long)seq);
	return len;
}

static int count_cb(uint64_t seq, const uint8_t *p, size_t len, void *arg)
{
	seen *s = arg;
	uint8_t want[4096];
	size_t wl = payload_of(seq, want);
	if (wl != len || memcmp(want, p, len) != 0)
		s->bad++;
	s->n++;
	s->last = seq;
	return 0;
}

static void write_entries(gcs_wal *w, uint64_t from, uint64_t to, uint64_t sync_every)
{
	uint8_t buf[4096];
	for (uint64_t seq = from; seq <= to; seq++) {
		size_t len = payload_of(seq, buf);
		cr_assert_eq(gcs_wal_append(w, seq, buf, len), 0);
		if (seq % sync_every == 0)
			cr_assert_eq(gcs_wal_sync(w), 0);
	}
	cr_assert_eq(gcs_wal_sync(w), 0);
}

Test(wal, appends_survive_reopen_in_order)
{
	gcs_wal *w;
	gcs_wal_info info;
	cr_assert_eq(gcs_wal_open(wal_path, 0, NULL, NULL, &info, &w), 0);
	cr_assert_eq(info.entries, 0);
	write_entries(w, 1, 1000, 37);
	cr_assert_eq(gcs_wal_durable_seq(w), 1000);
	cr_assert_eq(gcs_wal_append(w, 1002, "x", 1), -EINVAL, "a gap is refused");
	gcs_wal_close(w);
	seen s = {0};
	cr_assert_eq(gcs_wal_open(wal_path, 0, count_cb, &s, &info, &w), 0);
	cr_assert_eq(s.n, 1000);
	cr_assert_eq(s.bad, 0);
	cr_assert_eq(info.first_seq, 1);
	cr_assert_eq(info.last_seq, 1000);
	cr_assert_eq(info.tail_status, 0);
	/* Appending continues after the replayed entries. */
	write_entries(w, 1001, 1010, 1000);
	gcs_wal_close(w);
	s = (seen){0};
	cr_assert_eq(gcs_wal_open(wal_path, 0, count_cb, &s, &info, &w), 0);
	cr_assert_eq(s.n, 1010);
	gcs_wal_close(w);
}

static size_t file_size(const char *p)
{
	struct stat st;
	cr_assert_eq(stat(p, &st), 0);
	return (size_t)st.st_size;
}

/* Cut the log at every byte of its last entry: each is reported as truncated, the good
 * prefix is replayed, and only GCS_WAL_TRUNCATE_TAIL opens it (cutting the tail). */
Test(wal, truncated_tail_is_reported_not_accepted)
{
	gcs_wal *w;
	cr_assert_eq(gcs_wal_open(wal_path, 0, NULL, NULL, NULL, &w), 0);
	write_entries(w, 1, 20, 100);
	gcs_wal_close(w);
	size_t full = file_size(wal_path);
	uint8_t buf[4096];
	size_t last = 16 + payload_of(20, buf);
	for (size_t cut = 1; cut < last; cut += 97) {
		cr_assert_eq(truncate(wal_path, (off_t)(full - cut)), 0);
		seen s = {0};
		gcs_wal_info info;
		cr_assert_eq(gcs_wal_open(wal_path, 0, count_cb, &s, &info, &w),
			     PRISM_E_TRUNCATED, "cut %zu bytes", cut);
		cr_assert_null(w);
		cr_assert_eq(info.tail_status, PRISM_E_TRUNCATED);
		cr_assert_eq(info.entries, 19);
		cr_assert_eq(info.tail_offset, full - last);
		cr_assert_eq(file_size(wal_path), full - cut, "left alone without the flag");
	}
	seen s = {0};
	gcs_wal_info info;
	cr_assert_eq(gcs_wal_open(wal_path, GCS_WAL_TRUNCATE_TAIL, count_cb, &s, &info, &w), 0);
	cr_assert_eq(info.tail_status, PRISM_E_TRUNCATED, "still reported");
	cr_assert_eq(s.n, 19);
	cr_assert_eq(file_size(wal_path), full - last, "the damaged tail was cut");
	write_entries(w, 20, 25, 100);
	gcs_wal_close(w);
	s = (seen){0};
	cr_assert_eq(gcs_wal_open(wal_path, 0, count_cb, &s, &info, &w), 0);
	cr_assert_eq(s.n, 25);
	cr_assert_eq(s.bad, 0);
	gcs_wal_close(w);
}

static void flip_byte(const char *p, size_t at)
{
	int fd = open(p, O_RDWR);
	uint8_t b;
	cr_assert_eq(pread(fd, &b, 1, (off_t)at), 1);
	b ^= 0x40;
	cr_assert_eq(pwrite(fd, &b, 1, (off_t)at), 1);
	close(fd);
}

/* A flipped bit in a payload, a length or a seq: corrupt, reported with its offset. */
Test(wal, corrupt_entries_are_reported)
{
	gcs_wal *w;
	cr_assert_eq(gcs_wal_open(wal_path, 0, NULL, NULL, NULL, &w), 0);
	write_entries(w, 1, 10, 100);
	gcs_wal_close(w);
	/* Where entry 6 starts. */
	uint8_t buf[4096];
	size_t at = 16;
	for (uint64_t s = 1; s < 6; s++)
		at += 16 + payload_of(s, buf);
	size_t where[] = {at + 16 + 20 /* payload */, at + 8 /* seq */, at + 1 /* length */};
	for (size_t i = 0; i < PRISM_ARRAY_LEN(where); i++) {
		flip_byte(wal_path, where[i]);
		seen s = {0};
		gcs_wal_info info;
		int rc = gcs_wal_open(wal_path, 0, count_cb, &s, &info, &w);
		cr_assert(rc == PRISM_E_CORRUPT || rc == PRISM_E_TRUNCATED, "case %zu: %s", i,
			  prism_strerror(rc));
		cr_assert_eq(info.entries, 5, "case %zu: the good prefix replays", i);
		cr_assert_eq(info.tail_offset, at);
		cr_assert_eq(s.bad, 0);
		flip_byte(wal_path, where[i]);
	}
	/* Not a log at all. */
	flip_byte(wal_path, 0);
	cr_assert_eq(gcs_wal_open(wal_path, 0, NULL, NULL, NULL, &w), PRISM_E_BAD_MAGIC);
}

/* ---- the store over the log: kill the whole process, recover ----------------------- */

static void kv_op(gcs_op *op, uint64_t i, char *key, uint8_t *val, size_t *vlen)
{
	snprintf(key, 32, "key-%llu", (unsigned long long)(i % 500));
	*vlen = (size_t)snprintf((char *)val, 64, "value %llu", (unsigned long long)i);
	*op = (gcs_op){.kind = GCS_OP_PUT,
		       .table = GCS_T_KV,
		       .key = (const uint8_t *)key,
		       .key_len = (uint32_t)strlen(key),
		       .value = val,
		       .value_len = (uint32_t)*vlen};
}

static int apply_cb(uint64_t seq, const uint8_t *p, size_t len, void *arg)
{
	gcs_store *s = arg;
	gcs_op op;
	int rc = gcs_op_decode(p, len, &op);
	if (rc)
		return rc;
	if (seq <= gcs_store_seq(s))
		return 0; /* covered by the snapshot */
	rc = gcs_store_apply(s, seq, &op);
	return rc < 0 ? rc : 0;
}

/* A writer applies and logs operations, syncing in batches and telling the parent each
 * durable seq; the parent SIGKILLs it mid-stream.  Every acknowledged operation is there
 * after recovery, and the state equals a replay of the same operations. */
Test(wal, recovery_after_sigkill_keeps_every_acknowledged_write)
{
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		gcs_wal *w;
		if (gcs_wal_open(wal_path, 0, NULL, NULL, NULL, &w) != 0)
			_exit(2);
		uint8_t enc[256], val[64];
		char key[32];
		for (uint64_t i = 1; i < 100000000; i++) {
			gcs_op op;
			size_t vl, n;
			kv_op(&op, i, key, val, &vl);
			if (gcs_op_encode(&op, enc, sizeof(enc), &n) != 0 ||
			    gcs_wal_append(w, i, enc, n) != 0)
				_exit(3);
			if (i % 64 == 0) {
				if (gcs_wal_sync(w) != 0)
					_exit(4);
				if (write(pfd[1], &i, sizeof(i)) != sizeof(i))
					_exit(5);
			}
		}
		_exit(0);
	}
	close(pfd[1]);
	uint64_t acked = 0, v;
	while (acked < 3000 && read(pfd[0], &v, sizeof(v)) == sizeof(v))
		acked = v;
	kill(pid, SIGKILL);
	int st;
	waitpid(pid, &st, 0);
	while (read(pfd[0], &v, sizeof(v)) == sizeof(v))
		acked = v;
	close(pfd[0]);
	cr_assert_geq(acked, 3000, "the writer acknowledged writes");

	gcs_store *s;
	cr_assert_eq(gcs_store_create(&s), 0);
	gcs_wal *w;
	gcs_wal_info info;
	int rc = gcs_wal_open(wal_path, GCS_WAL_TRUNCATE_TAIL, apply_cb, s, &info, &w);
	cr_assert_eq(rc, 0, "recovery: %s", prism_strerror(rc));
	cr_assert_geq(gcs_store_seq(s), acked,
		      "every acknowledged write survived (%llu < %llu)",
		      (unsigned long long)gcs_store_seq(s), (unsigned long long)acked);
	uint64_t last = gcs_store_seq(s);
	/* The recovered state is exactly the operations 1..last. */
	cr_assert_eq(gcs_store_count(s), last < 500 ? last : 500);
	for (uint64_t k = 0; k < 500; k++) {
		char key[32];
		snprintf(key, sizeof(key), "key-%llu", (unsigned long long)k);
		uint64_t i = last - ((last - k) % 500); /* the last write of key k */
		const uint8_t *val;
		size_t vl;
		uint64_t ver;
		cr_assert_eq(gcs_store_get(s, GCS_T_KV, key, strlen(key), &val, &vl, &ver), 0);
		char want[64];
		int wl = snprintf(want, sizeof(want), "value %llu", (unsigned long long)i);
		cr_assert_eq(vl, (size_t)wl);
		cr_assert(memcmp(val, want, vl) == 0, "key %llu", (unsigned long long)k);
		cr_assert_eq(ver, i);
	}
	gcs_wal_close(w);
	gcs_store_destroy(s);
}

/* Snapshot, reset the log, write more, crash-free restart: snapshot + log = the state. */
Test(wal, snapshot_plus_log_restores_the_tables)
{
	gcs_store *s;
	cr_assert_eq(gcs_store_create(&s), 0);
	gcs_wal *w;
	cr_assert_eq(gcs_wal_open(wal_path, 0, NULL, NULL, NULL, &w), 0);
	uint8_t enc[256], val[64];
	char key[32];
	prism_id client = {{1, 2, 3}};
	for (uint64_t i = 1; i <= 2000; i++) {
		gcs_op op;
		size_t vl, n;
		kv_op(&op, i, key, val, &vl);
		op.client = client;
		op.req_id = i;
		if (i % 3 == 0) {
			op.kind = GCS_OP_DEL;
			op.value_len = 0;
		}
		cr_assert_eq(gcs_op_encode(&op, enc, sizeof(enc), &n), 0);
		cr_assert_eq(gcs_wal_append(w, i, enc, n), 0);
		cr_assert_geq(gcs_store_apply(s, i, &op), 0);
		if (i == 1200) {
			cr_assert_eq(gcs_wal_sync(w), 0);
			cr_assert_eq(gcs_store_snapshot(s, snap_path), 0);
			cr_assert_eq(gcs_wal_reset(w, 1200), 0);
		}
	}
	gcs_wal_close(w);
	gcs_store *r;
	cr_assert_eq(gcs_store_create(&r), 0);
	cr_assert_eq(gcs_store_load(r, snap_path), 0);
	cr_assert_eq(gcs_store_seq(r), 1200);
	gcs_wal_info info;
	cr_assert_eq(gcs_wal_open(wal_path, 0, apply_cb, r, &info, &w), 0);
	cr_assert_eq(info.first_seq, 1201);
	cr_assert_eq(gcs_store_seq(r), 2000);
	cr_assert_eq(gcs_store_count(r), gcs_store_count(s));
	for (uint64_t k = 0; k < 500; k++) {
		snprintf(key, sizeof(key), "key-%llu", (unsigned long long)k);
		const uint8_t *a, *b;
		size_t al, bl;
		uint64_t av, bv;
		int ra = gcs_store_get(s, GCS_T_KV, key, strlen(key), &a, &al, &av);
		int rb = gcs_store_get(r, GCS_T_KV, key, strlen(key), &b, &bl, &bv);
		cr_assert_eq(ra, rb);
		if (ra == 0) {
			cr_assert_eq(al, bl);
			cr_assert(memcmp(a, b, al) == 0);
			cr_assert_eq(av, bv);
		}
	}
	/* The client's high-water mark came back too: its old request is a duplicate. */
	gcs_op op;
	size_t vl;
	kv_op(&op, 1999, key, val, &vl);
	op.client = client;
	op.req_id = 1999;
	cr_assert_eq(gcs_store_apply(r, 2001, &op), GCS_DUPLICATE);
	/* A damaged snapshot is refused. */
	flip_byte(snap_path, 40);
	gcs_store *bad;
	cr_assert_eq(gcs_store_create(&bad), 0);
	cr_assert_eq(gcs_store_load(bad, snap_path), PRISM_E_CORRUPT);
	cr_assert_eq(gcs_store_count(bad), 0);
	gcs_store_destroy(bad);
	gcs_wal_close(w);
	gcs_store_destroy(r);
	gcs_store_destroy(s);
}
