/* store.c — a replica's tables: one open-addressing hash map over (table, key), with
 * linear probing and backward-shift deletion, and the client high-water marks kept in
 * the same map under table 0. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/crc.h"
#include "base/error.h"
#include "base/wire.h"
#include "gcs/record.h"
#include "gcs/store.h"
#include "gcs_int.h"

#define MARKS 0 /* the table of client high-water marks */

typedef struct entry {
	uint64_t hash;
	uint8_t *mem; /* key then value; NULL: empty slot */
	uint32_t klen, vlen;
	uint32_t cap; /* bytes allocated at mem */
	uint64_t version;
	uint8_t table;
} entry;

struct gcs_store {
	entry *slots;
	size_t cap, used; /* cap: a power of two */
	size_t marks;     /* entries of table 0 */
	uint64_t seq;
};

/* ---- operations' wire form --------------------------------------------------------- */

enum { OP_VERSION = 1, OP_FIXED = 1 + 1 + 1 + 16 + 8 + 4 + 4 };

size_t gcs_op_size(const gcs_op *op)
{
	return OP_FIXED + op->key_len + (op->kind == GCS_OP_PUT ? op->value_len : 0);
}

int gcs_op_encode(const gcs_op *op, uint8_t *buf, size_t cap, size_t *len)
{
	*len = gcs_op_size(op);
	if (*len > cap)
		return -ENOSPC;
	prism_wire_writer w;
	prism_wire_writer_init(&w, buf, cap);
	prism_wire_put_u8(&w, OP_VERSION);
	prism_wire_put_u8(&w, (uint8_t)op->kind);
	prism_wire_put_u8(&w, op->table);
	prism_wire_put_id(&w, op->client);
	prism_wire_put_u64(&w, op->req_id);
	prism_wire_put_bytes(&w, op->key, op->key_len);
	prism_wire_put_bytes(&w, op->value, op->kind == GCS_OP_PUT ? op->value_len : 0);
	size_t n;
	int rc = prism_wire_writer_finish(&w, &n);
	return rc ? rc : 0;
}

int gcs_op_decode(const uint8_t *buf, size_t len, gcs_op *out)
{
	memset(out, 0, sizeof(*out));
	prism_wire_reader r;
	prism_wire_reader_init(&r, buf, len);
	uint8_t version, kind, table;
	const uint8_t *key, *value;
	uint32_t klen, vlen;
	gcs_op op = {0};
	prism_wire_get_u8(&r, &version);
	prism_wire_get_u8(&r, &kind);
	prism_wire_get_u8(&r, &table);
	prism_wire_get_id(&r, &op.client);
	prism_wire_get_u64(&r, &op.req_id);
	prism_wire_get_bytes(&r, GCS_STORE_KEY_MAX, &key, &klen);
	prism_wire_get_bytes(&r, GCS_STORE_VALUE_MAX, &value, &vlen);
	int rc = prism_wire_reader_finish(&r);
	if (rc)
		return rc;
	if (prism_wire_reader_remaining(&r))
		return PRISM_E_PROTO;
	if (version != OP_VERSION)
		return PRISM_E_BAD_VERSION;
	if ((kind != GCS_OP_PUT && kind != GCS_OP_DEL) || table < GCS_T_NODE ||
	    table > GCS_T_KV || (kind == GCS_OP_DEL && vlen))
		return PRISM_E_PROTO;
	if (klen == 0)
		return PRISM_E_PROTO;
	op.kind = kind;
	op.table = table;
	op.key = key;
	op.key_len = klen;
	op.value = value;
	op.value_len = vlen;
	*out = op;
	return 0;
}

/* ---- the map ----------------------------------------------------------------------- */

static uint64_t hash_of(uint8_t table, const uint8_t *key, size_t len)
{
	/* FNV-1a, then a final mix so linear probing sees well-spread low bits. */
	uint64_t h = 0xcbf29ce484222325ull ^ table;
	for (size_t i = 0; i < len; i++)
		h = (h ^ key[i]) * 0x100000001b3ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

static entry *find(const gcs_store *s, uint8_t table, const uint8_t *key, size_t len,
		   uint64_t h)
{
	for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
		entry *e = &s->slots[i];
		if (!e->mem)
			return e;
		if (e->hash == h && e->table == table && e->klen == len &&
		    !memcmp(e->mem, key, len))
			return e;
	}
}

static int grow(gcs_store *s)
{
	size_t cap = s->cap ? s->cap * 2 : 64;
	entry *old = s->slots, *slots = prism_calloc(cap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	size_t ocap = s->cap;
	s->slots = slots;
	s->cap = cap;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].mem)
			*find(s, old[i].table, old[i].mem, old[i].klen, old[i].hash) = old[i];
	prism_free(old);
	return 0;
}

/* Insert or replace; the map keeps at most 3/4 full. */
static int put(gcs_store *s, uint8_t table, const uint8_t *key, size_t klen, const uint8_t *val,
	       size_t vlen, uint64_t version)
{
	if ((s->used + 1) * 4 > s->cap * 3) {
		int rc = grow(s);
		if (rc)
			return rc;
	}
	uint64_t h = hash_of(table, key, klen);
	entry *e = find(s, table, key, klen, h);
	size_t need = klen + vlen ? klen + vlen : 1;
	if (e->mem && e->cap >= need) {
		/* Overwriting a key in place: no allocation on the common path. */
		if (vlen)
			memcpy(e->mem + klen, val, vlen);
		e->vlen = (uint32_t)vlen;
		e->version = version;
		return 0;
	}
	uint8_t *mem = prism_malloc(need);
	if (!mem)
		return -ENOMEM;
	memcpy(mem, key, klen);
	if (vlen)
		memcpy(mem + klen, val, vlen);
	if (e->mem) {
		prism_free(e->mem);
	} else {
		s->used++;
		s->marks += table == MARKS;
	}
	*e = (entry){.hash = h,
		     .mem = mem,
		     .klen = (uint32_t)klen,
		     .vlen = (uint32_t)vlen,
		     .cap = (uint32_t)need,
		     .version = version,
		     .table = table};
	return 0;
}

static void del(gcs_store *s, uint8_t table, const uint8_t *key, size_t klen)
{
	if (!s->cap)
		return;
	entry *e = find(s, table, key, klen, hash_of(table, key, klen));
	if (!e->mem)
		return;
	prism_free(e->mem);
	s->used--;
	/* Backward shift: pull later entries of the probe run into the hole. */
	size_t hole = (size_t)(e - s->slots), mask = s->cap - 1;
	for (size_t i = (hole + 1) & mask; s->slots[i].mem; i = (i + 1) & mask) {
		size_t home = s->slots[i].hash & mask;
		if (((i - home) & mask) >= ((i - hole) & mask)) {
			s->slots[hole] = s->slots[i];
			hole = i;
		}
	}
	s->slots[hole] = (entry){0};
}

int gcs_store_create(gcs_store **out)
{
	*out = prism_calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void gcs_store_destroy(gcs_store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->cap; i++)
		prism_free(s->slots[i].mem);
	prism_free(s->slots);
	prism_free(s);
}

/* ---- applying ---------------------------------------------------------------------- */

static bool nil_id(const prism_id *id)
{
	static const prism_id zero;
	return memcmp(id, &zero, sizeof(zero)) == 0;
}

static int check(const gcs_op *op)
{
	if (!op->key_len || op->key_len > GCS_STORE_KEY_MAX ||
	    op->value_len > GCS_STORE_VALUE_MAX)
		return PRISM_E_TOO_BIG;
	if (op->table < GCS_T_NODE || op->table > GCS_T_KV)
		return -EINVAL;
	if (op->kind == GCS_OP_PUT && op->table != GCS_T_KV) {
		enum gcs_table t;
		int rc = gcs_record_check(op->value, op->value_len, &t);
		if (rc)
			return rc;
		if (t != op->table)
			return PRISM_E_PROTO;
	}
	return op->kind == GCS_OP_PUT || op->kind == GCS_OP_DEL ? 0 : -EINVAL;
}

int gcs_store_apply(gcs_store *s, uint64_t seq, const gcs_op *op)
{
	if (seq != s->seq + 1)
		return -EINVAL;
	s->seq = seq;
	int rc = check(op);
	if (rc)
		return rc;
	bool dedupe = !nil_id(&op->client);
	if (dedupe) {
		const uint8_t *v;
		size_t vl;
		uint64_t ver;
		if (gcs_store_get(s, MARKS, &op->client, sizeof(op->client), &v, &vl, &ver) ==
			    0 &&
		    vl == 8 && prism_le64_load(v) >= op->req_id)
			return GCS_DUPLICATE;
	}
	if (op->kind == GCS_OP_PUT)
		rc = put(s, op->table, op->key, op->key_len, op->value, op->value_len, seq);
	else
		del(s, op->table, op->key, op->key_len);
	if (rc == 0 && dedupe) {
		uint8_t mark[8];
		prism_le64_store(mark, op->req_id);
		rc = put(s, MARKS, (const uint8_t *)&op->client, sizeof(op->client), mark, 8,
			 seq);
	}
	return rc ? rc : GCS_APPLIED;
}

int gcs_store_get(const gcs_store *s, uint8_t table, const void *key, size_t key_len,
		  const uint8_t **value, size_t *value_len, uint64_t *version)
{
	*value = NULL;
	*value_len = 0;
	*version = 0;
	if (!s->cap || !key)
		return -ENOENT;
	entry *e = find(s, table, key, key_len, hash_of(table, key, key_len));
	if (!e->mem)
		return -ENOENT;
	*value = e->mem + e->klen;
	*value_len = e->vlen;
	*version = e->version;
	return 0;
}

uint64_t gcs_store_seq(const gcs_store *s)
{
	return s->seq;
}

size_t gcs_store_count(const gcs_store *s)
{
	return s->used - s->marks;
}

int gcs_store_foreach(const gcs_store *s, gcs_store_visit cb, void *arg)
{
	for (size_t i = 0; i < s->cap; i++) {
		const entry *e = &s->slots[i];
		if (!e->mem)
			continue;
		int rc = cb(e->table, e->mem, e->klen, e->mem + e->klen, e->vlen, e->version,
			    arg);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- snapshots --------------------------------------------------------------------- */

static const uint8_t snap_magic[8] = {'P', 'R', 'S', 'M', 'S', 'N', 'A', 'P'};
enum { SNAP_VERSION = 1, SNAP_HDR = 8 + 4 + 4 + 8 + 8, ENT_HDR = 1 + 4 + 4 + 8 };

typedef struct snap_buf {
	uint8_t *p;
	size_t len, cap;
} snap_buf;

static int sb_need(snap_buf *b, size_t n)
{
	if (b->len + n <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + n)
		cap *= 2;
	uint8_t *p = prism_realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

static int snap_entry(uint8_t table, const uint8_t *key, size_t klen, const uint8_t *val,
		      size_t vlen, uint64_t version, void *arg)
{
	snap_buf *b = arg;
	if (sb_need(b, ENT_HDR + klen + vlen))
		return -ENOMEM;
	uint8_t *p = b->p + b->len;
	p[0] = table;
	prism_le32_store(p + 1, (uint32_t)klen);
	prism_le32_store(p + 5, (uint32_t)vlen);
	prism_le64_store(p + 9, version);
	memcpy(p + ENT_HDR, key, klen);
	if (vlen)
		memcpy(p + ENT_HDR + klen, val, vlen);
	b->len += ENT_HDR + klen + vlen;
	return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int gcs__sync_dir(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;
	if (n >= sizeof(dir))
		return -ENAMETOOLONG;
	memcpy(dir, slash ? path : ".", slash ? n : 1);
	dir[slash ? (n ? n : 1) : 1] = 0;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) ? -errno : 0;
	close(fd);
	return rc;
}

int gcs_store_dump(const gcs_store *s, uint8_t **out, size_t *len)
{
	snap_buf b = {0};
	*out = NULL;
	*len = 0;
	int rc = sb_need(&b, SNAP_HDR);
	if (rc)
		return rc;
	memcpy(b.p, snap_magic, 8);
	prism_le32_store(b.p + 8, SNAP_VERSION);
	prism_le32_store(b.p + 12, 0);
	prism_le64_store(b.p + 16, s->seq);
	prism_le64_store(b.p + 24, s->used);
	b.len = SNAP_HDR;
	rc = gcs_store_foreach(s, snap_entry, &b);
	if (rc == 0)
		rc = sb_need(&b, 4);
	if (rc) {
		prism_free(b.p);
		return rc;
	}
	prism_le32_store(b.p + b.len, prism_crc32c(0, b.p, b.len));
	*out = b.p;
	*len = b.len + 4;
	return 0;
}

int gcs_store_snapshot(const gcs_store *s, const char *path)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	uint8_t *p;
	size_t len;
	int rc = gcs_store_dump(s, &p, &len);
	if (rc)
		return rc;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
	} else {
		rc = write_all(fd, p, len);
		if (rc == 0 && fsync(fd) != 0)
			rc = -errno;
		close(fd);
		if (rc == 0 && rename(tmp, path) != 0)
			rc = -errno;
		if (rc == 0)
			rc = gcs__sync_dir(path);
		else
			unlink(tmp);
	}
	prism_free(p);
	return rc;
}

static int read_file(const char *path, uint8_t **out, size_t *len)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int rc = fstat(fd, &st) ? -errno : 0;
	uint8_t *p = rc ? NULL : prism_malloc((size_t)st.st_size + 1);
	if (!rc && !p)
		rc = -ENOMEM;
	size_t got = 0;
	while (!rc && got < (size_t)st.st_size) {
		ssize_t r = read(fd, p + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			rc = r < 0 ? -errno : PRISM_E_TRUNCATED;
		else
			got += (size_t)r;
	}
	close(fd);
	if (rc) {
		prism_free(p);
		return rc;
	}
	*out = p;
	*len = got;
	return 0;
}

static int load_entries(gcs_store *s, const uint8_t *p, size_t len, uint64_t n)
{
	size_t off = SNAP_HDR;
	for (uint64_t i = 0; i < n; i++) {
		if (len - off < ENT_HDR)
			return PRISM_E_TRUNCATED;
		uint8_t table = p[off];
		uint32_t klen = prism_le32_load(p + off + 1),
			 vlen = prism_le32_load(p + off + 5);
		uint64_t version = prism_le64_load(p + off + 9);
		off += ENT_HDR;
		if (table > GCS_T_KV || !klen || klen > GCS_STORE_KEY_MAX ||
		    vlen > GCS_STORE_VALUE_MAX)
			return PRISM_E_CORRUPT;
		if (len - off < (size_t)klen + vlen)
			return PRISM_E_TRUNCATED;
		int rc = put(s, table, p + off, klen, p + off + klen, vlen, version);
		if (rc)
			return rc;
		off += (size_t)klen + vlen;
	}
	return off == len ? 0 : PRISM_E_CORRUPT;
}

int gcs_store_load_buf(gcs_store *s, const uint8_t *p, size_t len)
{
	if (s->used || s->seq)
		return -EINVAL;
	int rc = 0;
	if (len < SNAP_HDR + 4)
		rc = PRISM_E_TRUNCATED;
	else if (memcmp(p, snap_magic, 8) != 0)
		rc = PRISM_E_BAD_MAGIC;
	else if (prism_le32_load(p + 8) != SNAP_VERSION)
		rc = PRISM_E_BAD_VERSION;
	else if (prism_crc32c(0, p, len - 4) != prism_le32_load(p + len - 4))
		rc = PRISM_E_CORRUPT;
	if (rc == 0) {
		uint64_t n = prism_le64_load(p + 24);
		rc = load_entries(s, p, len - 4, n);
		if (rc == 0)
			s->seq = prism_le64_load(p + 16);
	}
	if (rc) {
		/* Never a half-loaded store. */
		for (size_t i = 0; i < s->cap; i++) {
			prism_free(s->slots[i].mem);
			s->slots[i] = (entry){0};
		}
		s->used = s->marks = 0;
	}
	return rc;
}

int gcs_store_load(gcs_store *s, const char *path)
{
	if (s->used || s->seq)
		return -EINVAL;
	uint8_t *p;
	size_t len = 0;
	int rc = read_file(path, &p, &len);
	if (rc)
		return rc;
	rc = gcs_store_load_buf(s, p, len);
	prism_free(p);
	return rc;
}
