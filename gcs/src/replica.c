/* replica.c — one replica of a GCS chain (see gcs/chain.h).
 *
 * One poll: receive and handle messages (client PUTs at the head, batches from the
 * predecessor, acknowledgements from the successor, GETs), then flush: make the log
 * durable (group commit), ship the batch of newly applied operations to the successor,
 * pass the acknowledgement upstream (the tail acknowledges what it applied), and answer
 * the clients whose writes are now acknowledged.
 */
#include <stdio.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/fifo.h"
#include "base/log.h"
#include "base/wire.h"
#include "gcs/chain.h"
#include "gcs/record.h"
#include "gcs/store.h"
#include "gcs/wal.h"
#include "gcs_int.h"

#define LOGM "gcs"

/* A batch sent downstream and not yet acknowledged by the tail. */
struct kept {
	uint8_t *buf;
	size_t len;
	uint64_t last_seq;
};

/* A client write waiting for the tail's acknowledgement. */
typedef struct pend {
	uint64_t seq;
	transport_conn *client;
	uint64_t req_id;
	int status;
} pend;

/* 1M entries between snapshots: a log of ~100 MB at 100-byte values replays in about a
 * second. */
#define SNAPSHOT_EVERY 1000000u

struct gcs_replica {
	transport *t;
	gcs_store *store;
	gcs_wal *wal;
	/* Persistence: the log at path, snapshots at path.snap.  A snapshot starts by
	 * moving the log to path.old (a new log takes what follows) and is written by a
	 * forked child from a copy-on-write image of the store, so the chain never waits
	 * for it; when it is safely on disk, path.old goes. */
	char *path;
	uint64_t snap_every, snap_seq; /* the last snapshot covers up to snap_seq */
	pid_t snap_pid;                /* the child writing one, or 0 */
	uint64_t snap_pending;         /* what it covers */
	/* State transfer in chunks (a store may outgrow a frame): the image being sent to
	 * the successor, and the one being received from the predecessor. */
	uint8_t *tx, *rx;
	size_t tx_len, tx_off, rx_len, rx_got;
	/* Log rings, where the transport writes one-sided (verbs; softverbs): batches go by
	 * RDMA WRITE into the successor's registered ring, and a small message (the
	 * doorbell) says where.  ring_in takes the predecessor's; ring_out stages ours
	 * (a WRITE's source must be registered).  Positions only grow; offset = pos % size. */
	size_t ring_bytes;
	uint8_t *ring_in, *ring_out;
	transport_mr *ring_in_mr, *ring_out_mr;
	uint64_t in_consumed, in_freed_sent;
	bool peer_ring; /* the successor gave its ring */
	transport_mr_desc peer;
	uint64_t out_pos, out_freed;
	gcs_replica_stats st;
	transport_conn *next, *prev;
	bool next_up;
	bool next_ready; /* the successor said what it holds; batches may flow */
	bool is_tail;    /* no successor is configured (a successor link that is down is not
		       * this: writes then wait for the chain to be repaired) */
	bool is_head;    /* takes client writes: no predecessor joined, or the master said so */
	bool serving;    /* serves reads and subscriptions (see GCS_ROLE_SERVE) */
	/* Passing the reads on to a new successor: once it acknowledges handover_at (all we
	 * held when it joined), give_tail sends it GCS_M_TAKE_TAIL after the batches. */
	bool handover, give_tail;
	uint64_t handover_at;
	/* Batches sent to the successor that the tail has not acknowledged yet: resent to
	 * a new successor when the chain is repaired around a dead replica. */
	prism_fifo retained; /* of struct kept */
	char next_addr[TRANSPORT_ADDR_MAX];
	prism_fifo pend; /* of pend, in seq order */
	/* The batch for the successor: u32 count then entries. */
	uint8_t *batch;
	size_t blen, bcap;
	uint32_t bcount;
	uint64_t batch_last; /* the last seq in the batch */
	uint64_t acked;      /* the tail holds everything up to here */
	uint64_t ack_sent;   /* acknowledged upstream up to here */
	/* Outboxes (each link's context) with frames to send at the end of this poll. */
	gcs_outbox **dirty;
	size_t ndirty, dirty_cap;
	gcs_outbox *boxes; /* every link's outbox */
	/* Subscriptions (served at the tail, which holds only acknowledged writes). */
	struct sub {
		transport_conn *c;
		uint64_t id;
		uint8_t table;
		uint8_t *key; /* NULL: the whole table */
		uint32_t klen;
		uint32_t unacked;
		bool overflowed;
	} * subs;
	size_t nsubs, subs_cap;
};

/* Queue a frame on c's outbox (created on first use; the link's context). */
static int out(gcs_replica *r, transport_conn *c, uint16_t type, uint64_t req_id, const void *p,
	       size_t n)
{
	gcs_outbox *o = transport_conn_ctx(c);
	if (!o) {
		o = prism_calloc(1, sizeof(*o));
		if (!o)
			return -ENOMEM;
		o->c = c;
		o->next = r->boxes;
		if (r->boxes)
			r->boxes->prev = o;
		r->boxes = o;
		transport_conn_set_ctx(c, o);
	}
	if (!o->dirty) {
		if (r->ndirty == r->dirty_cap) {
			size_t cap = r->dirty_cap ? r->dirty_cap * 2 : 16;
			gcs_outbox **v = prism_realloc(r->dirty, cap * sizeof(*v));
			if (!v)
				return -ENOMEM;
			r->dirty = v;
			r->dirty_cap = cap;
		}
		r->dirty[r->ndirty++] = o;
		o->dirty = true;
	}
	return gcs__out(o, type, req_id, p, n);
}

static void outbox_drop(gcs_replica *r, transport_conn *c)
{
	gcs_outbox *o = transport_conn_ctx(c);
	if (!o)
		return;
	for (size_t i = 0; i < r->ndirty; i++)
		if (r->dirty[i] == o)
			r->dirty[i] = r->dirty[--r->ndirty];
	if (o->prev)
		o->prev->next = o->next;
	else
		r->boxes = o->next;
	if (o->next)
		o->next->prev = o->prev;
	gcs__out_free(o);
	prism_free(o);
	transport_conn_set_ctx(c, NULL);
}

static int wal_replay(uint64_t seq, const uint8_t *p, size_t len, void *arg)
{
	gcs_store *st = arg;
	if (seq <= gcs_store_seq(st))
		return 0; /* the snapshot holds it already */
	if (seq != gcs_store_seq(st) + 1) {
		PRISM_LOG(PRISM_LOG_ERROR, LOGM,
			  "the log jumps from seq %llu (snapshot and earlier log) to %llu: "
			  "entries are missing",
			  (unsigned long long)gcs_store_seq(st), (unsigned long long)seq);
		return PRISM_E_CORRUPT;
	}
	gcs_op op;
	int rc = gcs_op_decode(p, len, &op);
	if (rc)
		return rc;
	rc = gcs_store_apply(st, seq, &op);
	return rc == -EINVAL ? rc : 0; /* an operation the store refused still took its seq */
}

static int path_with(const gcs_replica *r, const char *suffix, char *buf, size_t cap)
{
	return snprintf(buf, cap, "%s%s", r->path, suffix) < (int)cap ? 0 : -ENAMETOOLONG;
}

/* Snapshot, then the old log (left by a snapshot that did not finish), then the log. */
static int recover(gcs_replica *r)
{
	char snap[4096], old[4096];
	int rc = path_with(r, ".snap", snap, sizeof(snap));
	if (rc == 0)
		rc = path_with(r, ".old", old, sizeof(old));
	if (rc)
		return rc;
	rc = gcs_store_load(r->store, snap);
	if (rc && rc != -ENOENT) {
		PRISM_LOG(PRISM_LOG_ERROR, LOGM, "snapshot %s: %s: not starting from it", snap,
			  prism_strerror(rc));
		return rc;
	}
	r->snap_seq = gcs_store_seq(r->store);
	bool had_old = access(old, F_OK) == 0;
	if (had_old) {
		gcs_wal *w;
		rc = gcs_wal_open(old, 0, wal_replay, r->store, NULL, &w);
		gcs_wal_close(w);
		if (rc)
			return rc;
	}
	rc = gcs_wal_open(r->path, GCS_WAL_TRUNCATE_TAIL, wal_replay, r->store, NULL, &r->wal);
	if (rc || !had_old)
		return rc;
	/* A snapshot was cut short: take it now, whole, and start the log afresh. */
	rc = gcs_store_snapshot(r->store, snap);
	if (rc == 0)
		rc = gcs_wal_reset(r->wal, gcs_store_seq(r->store));
	if (rc == 0 && unlink(old) != 0)
		rc = -errno;
	if (rc == 0)
		rc = gcs__sync_dir(old);
	r->snap_seq = gcs_store_seq(r->store);
	return rc;
}

/* Start a snapshot of everything applied (the log is durable up to it). */
static void snapshot_start(gcs_replica *r)
{
	char snap[4096], old[4096];
	if (!r->wal || r->snap_pid || path_with(r, ".snap", snap, sizeof(snap)) ||
	    path_with(r, ".old", old, sizeof(old)))
		return;
	uint64_t seq = gcs_store_seq(r->store);
	if (access(old, F_OK) != 0) {
		/* Move the log aside; a new one takes what follows seq. */
		gcs_wal_close(r->wal);
		r->wal = NULL;
		int rc = rename(r->path, old) == 0 ? gcs__sync_dir(old) : -errno;
		if (rc)
			PRISM_LOG(PRISM_LOG_ERROR, LOGM, "cannot move the log %s aside: %s",
				  r->path, prism_strerror(rc));
		rc = gcs_wal_open(r->path, 0, NULL, NULL, NULL, &r->wal);
		if (rc) {
			PRISM_LOG(PRISM_LOG_ERROR, LOGM,
				  "cannot reopen the log %s: %s; writes are no longer logged",
				  r->path, prism_strerror(rc));
			return;
		}
	} /* else a snapshot failed before: path.old stays until one succeeds */
	pid_t pid = fork();
	if (pid == 0) {
		/* The child holds no link: a replica that dies must look dead at once. */
		close_range(3, ~0u, 0);
		_exit(gcs_store_snapshot(r->store, snap) == 0 ? 0 : 1);
	}
	if (pid < 0) {
		PRISM_LOG(PRISM_LOG_WARN, LOGM, "fork for a snapshot: %s; writing it here",
			  prism_strerror(-errno));
		if (gcs_store_snapshot(r->store, snap) == 0 && unlink(old) == 0)
			r->snap_seq = seq;
		return;
	}
	r->snap_pid = pid;
	r->snap_pending = seq;
}

/* A snapshot child finished: drop the old log it made redundant. */
static void snapshot_reap(gcs_replica *r, bool wait)
{
	int st;
	if (!r->snap_pid || waitpid(r->snap_pid, &st, wait ? 0 : WNOHANG) != r->snap_pid)
		return;
	r->snap_pid = 0;
	char old[4096];
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || path_with(r, ".old", old, sizeof(old))) {
		PRISM_LOG(PRISM_LOG_ERROR, LOGM,
			  "writing the snapshot of %s failed; the log keeps everything",
			  r->path);
		return;
	}
	if (unlink(old) == 0)
		gcs__sync_dir(old);
	r->snap_seq = r->snap_pending;
	PRISM_LOG(PRISM_LOG_INFO, LOGM, "snapshot of %s up to seq %llu written", r->path,
		  (unsigned long long)r->snap_seq);
}

/* The store was replaced by an image: the image becomes the snapshot and a fresh log
 * follows it, here and now (a state transfer is rare, and this replica is catching up
 * anyway).  A crash between the two steps recovers the same: the old log's entries are
 * all at or below the image's seq. */
static int persist_image(gcs_replica *r)
{
	char snap[4096], old[4096];
	snapshot_reap(r, true); /* a snapshot of the store we replaced is worthless */
	int rc = path_with(r, ".snap", snap, sizeof(snap));
	if (rc == 0)
		rc = path_with(r, ".old", old, sizeof(old));
	if (rc == 0)
		rc = gcs_store_snapshot(r->store, snap);
	if (rc == 0)
		rc = gcs_wal_reset(r->wal, gcs_store_seq(r->store));
	if (rc == 0 && unlink(old) == 0)
		rc = gcs__sync_dir(old);
	if (rc)
		PRISM_LOG(PRISM_LOG_ERROR, LOGM,
			  "cannot put the received image on disk at %s: %s", snap,
			  prism_strerror(rc));
	r->snap_seq = gcs_store_seq(r->store);
	return rc;
}

/* A fresh registration (new key) for the ring a new predecessor writes into: a cut-out
 * predecessor still writing with the old key is refused by the transport. */
static int ring_in_register(gcs_replica *r)
{
	transport_dereg(r->ring_in_mr);
	r->ring_in_mr = NULL;
	r->in_consumed = r->in_freed_sent = 0;
	return transport_reg(r->t, r->ring_in, r->ring_bytes, TRANSPORT_REMOTE_WRITE,
			     &r->ring_in_mr);
}

static int rings_create(gcs_replica *r, size_t bytes)
{
	enum transport_backend b = transport_backend_of(r->t);
	if (b != TRANSPORT_VERBS && b != TRANSPORT_SOFTVERBS)
		return 0; /* over tcp a WRITE is a message anyway: batches go as messages */
	r->ring_bytes = bytes ? bytes : GCS_RING_BYTES;
	if (r->ring_bytes < 4096 || r->ring_bytes > TRANSPORT_MAX_MSG)
		return -EINVAL;
	for (int i = 0; i < 2; i++) {
		void *m = mmap(NULL, r->ring_bytes, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			return -errno;
		*(i ? &r->ring_out : &r->ring_in) = m;
	}
	int rc = transport_reg(r->t, r->ring_out, r->ring_bytes, 0, &r->ring_out_mr);
	return rc ? rc : ring_in_register(r);
}

static void rings_destroy(gcs_replica *r)
{
	transport_dereg(r->ring_in_mr);
	transport_dereg(r->ring_out_mr);
	if (r->ring_in)
		munmap(r->ring_in, r->ring_bytes);
	if (r->ring_out)
		munmap(r->ring_out, r->ring_bytes);
}

int gcs_replica_create(const gcs_replica_opts *o, char *addr, size_t addr_len,
		       gcs_replica **out)
{
	*out = NULL;
	gcs_replica *r = prism_calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	prism_fifo_init(&r->pend, sizeof(pend));
	prism_fifo_init(&r->retained, sizeof(struct kept));
	r->is_tail = true;
	r->is_head = r->serving = !o->standby;
	transport_opts to = {.backend = o->backend};
	memcpy(to.token, o->token, sizeof(to.token));
	int rc = gcs_store_create(&r->store);
	if (rc == 0)
		rc = transport_create(&to, &r->t);
	r->snap_every = o->snapshot_every ? o->snapshot_every : SNAPSHOT_EVERY;
	if (rc == 0 && o->wal_path) {
		r->path = prism_malloc(strlen(o->wal_path) + 1);
		rc = r->path ? 0 : -ENOMEM;
		if (rc == 0) {
			strcpy(r->path, o->wal_path);
			rc = recover(r);
		}
	}
	if (rc == 0)
		rc = rings_create(r, o->ring_bytes);
	if (rc == 0)
		rc = transport_listen(r->t, o->listen, addr, addr_len);
	if (rc) {
		gcs_replica_destroy(r);
		return rc;
	}
	r->acked = r->ack_sent = gcs_store_seq(r->store);
	*out = r;
	return 0;
}

/* Forget the retained batches the tail holds (last_seq <= upto). */
static void drop_retained(gcs_replica *r, uint64_t upto)
{
	while (r->retained.len) {
		struct kept *k = prism_fifo_at(&r->retained, 0);
		if (k->last_seq > upto)
			break;
		prism_free(k->buf);
		prism_fifo_pop(&r->retained, NULL);
	}
}

static void tx_drop(gcs_replica *r)
{
	prism_free(r->tx);
	r->tx = NULL;
	r->tx_len = r->tx_off = 0;
}

void gcs_replica_destroy(gcs_replica *r)
{
	if (!r)
		return;
	snapshot_reap(r, true);
	prism_free(r->path);
	prism_free(r->tx);
	prism_free(r->rx);
	gcs_wal_close(r->wal);
	rings_destroy(r);
	transport_destroy(r->t);
	while (r->boxes) {
		gcs_outbox *o = r->boxes;
		r->boxes = o->next;
		gcs__out_free(o);
		prism_free(o);
	}
	prism_free(r->dirty);
	drop_retained(r, UINT64_MAX);
	prism_fifo_free(&r->retained);
	for (size_t i = 0; i < r->nsubs; i++)
		prism_free(r->subs[i].key);
	prism_free(r->subs);
	gcs_store_destroy(r->store);
	prism_fifo_free(&r->pend);
	prism_free(r->batch);
	prism_free(r);
}

const struct gcs_store *gcs_replica_store(const gcs_replica *r)
{
	return r->store;
}

void gcs_replica_stats_get(const gcs_replica *r, gcs_replica_stats *out)
{
	*out = r->st;
}

int gcs_replica_set_next(gcs_replica *r, const char *next)
{
	if (next && r->next && strcmp(next, r->next_addr) == 0)
		return 0; /* the same successor, still linked */
	r->handover = r->give_tail = false;
	r->peer_ring = false;
	tx_drop(r);
	if (r->next) {
		outbox_drop(r, r->next);
		transport_close(r->next);
	}
	r->next = NULL;
	r->next_up = false;
	r->next_ready = false;
	PRISM_LOG(PRISM_LOG_INFO, LOGM, "chain: successor %s", next ? next : "none (tail)");
	if (!next) {
		/* This replica becomes the tail: what it applied is now acknowledged. */
		r->is_tail = true;
		drop_retained(r, UINT64_MAX);
		r->blen = 0;
		r->bcount = 0;
		r->acked = gcs_store_seq(r->store);
		return 0;
	}
	/* A new successor: what the old one had not passed to the tail is resent to it
	 * once the link is up (it skips what it already holds). */
	r->is_tail = false;
	snprintf(r->next_addr, sizeof(r->next_addr), "%s", next);
	return transport_connect(r->t, next, NULL, &r->next);
}

/* ---- applying ---------------------------------------------------------------------- */

static int batch_add(gcs_replica *r, uint64_t seq, const uint8_t *op, size_t n)
{
	size_t need = (r->blen ? r->blen : 4) + 12 + n;
	if (need > r->bcap) {
		size_t cap = r->bcap ? r->bcap : 64u << 10;
		while (cap < need)
			cap *= 2;
		uint8_t *b = prism_realloc(r->batch, cap);
		if (!b)
			return -ENOMEM;
		r->batch = b;
		r->bcap = cap;
	}
	if (!r->blen)
		r->blen = 4;
	prism_le64_store(r->batch + r->blen, seq);
	prism_le32_store(r->batch + r->blen + 8, (uint32_t)n);
	memcpy(r->batch + r->blen + 12, op, n);
	r->blen += 12 + n;
	r->bcount++;
	r->batch_last = seq;
	return 0;
}

/* Apply the encoded operation as seq: store, log, batch for the successor.  Returns the
 * store's verdict (< 0: refused, but the seq is taken everywhere alike). */
/* ---- pub/sub ----------------------------------------------------------------------- */

static void notify_one(gcs_replica *r, struct sub *s, uint64_t seq, const gcs_op *op)
{
	if (s->overflowed)
		return;
	if (s->unacked >= GCS_SUB_WINDOW) {
		/* The subscriber is not keeping up: stop, and tell it to re-read. */
		s->overflowed = true;
		out(r, s->c, GCS_M_OVERFLOW, s->id, NULL, 0);
		return;
	}
	size_t n = 8 + 1 + 4 + op->key_len + 4 + op->value_len;
	uint8_t small[512];
	uint8_t *b = n <= sizeof(small) ? small : prism_malloc(n);
	if (!b)
		return;
	prism_le64_store(b, seq);
	b[8] = (uint8_t)op->kind;
	prism_le32_store(b + 9, op->key_len);
	memcpy(b + 13, op->key, op->key_len);
	prism_le32_store(b + 13 + op->key_len, op->value_len);
	if (op->value_len)
		memcpy(b + 17 + op->key_len, op->value, op->value_len);
	if (out(r, s->c, GCS_M_NOTIFY, s->id, b, n) == 0)
		s->unacked++;
	if (b != small)
		prism_free(b);
}

static void notify(gcs_replica *r, uint64_t seq, const gcs_op *op)
{
	for (size_t i = 0; i < r->nsubs; i++) {
		struct sub *s = &r->subs[i];
		if (s->table == op->table &&
		    (!s->key || (s->klen == op->key_len && !memcmp(s->key, op->key, s->klen))))
			notify_one(r, s, seq, op);
	}
}

static struct sub *sub_find(gcs_replica *r, transport_conn *c, uint64_t id)
{
	for (size_t i = 0; i < r->nsubs; i++)
		if (r->subs[i].c == c && r->subs[i].id == id)
			return &r->subs[i];
	return NULL;
}

static void sub_drop(gcs_replica *r, struct sub *s)
{
	prism_free(s->key);
	*s = r->subs[--r->nsubs];
}

/* The (u8 table, bytes key) payload of GET and SUB, checked whole. */
static int table_key(const prism_wire_hdr *h, const uint8_t *p, uint8_t *table,
		     const uint8_t **key, uint32_t *klen)
{
	prism_wire_reader rd;
	prism_wire_reader_init(&rd, p, h->len);
	prism_wire_get_u8(&rd, table);
	prism_wire_get_bytes(&rd, GCS_STORE_KEY_MAX, key, klen);
	int rc = prism_wire_reader_finish(&rd);
	if (rc)
		return rc;
	if (prism_wire_reader_remaining(&rd) || *table < GCS_T_NODE || *table > GCS_T_KV)
		return PRISM_E_PROTO;
	return 0;
}

static int on_sub(gcs_replica *r, transport_conn *c, const prism_wire_hdr *h, const uint8_t *p)
{
	uint8_t table;
	const uint8_t *key;
	uint32_t klen;
	int rc = table_key(h, p, &table, &key, &klen);
	if (rc)
		return rc;
	if (!r->serving) {
		uint8_t a[4];
		prism_le32_store(a, (uint32_t)PRISM_E_NOT_TAIL);
		return out(r, c, GCS_M_SUB_NACK, h->req_id, a, sizeof(a));
	}
	struct sub *old = sub_find(r, c, h->req_id);
	if (old)
		sub_drop(r, old); /* a resubscription (after an overflow) starts afresh */
	if (r->nsubs == r->subs_cap) {
		size_t cap = r->subs_cap ? r->subs_cap * 2 : 8;
		struct sub *v = prism_realloc(r->subs, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		r->subs = v;
		r->subs_cap = cap;
	}
	struct sub s = {.c = c, .id = h->req_id, .table = table, .klen = klen};
	if (klen) {
		s.key = prism_malloc(klen);
		if (!s.key)
			return -ENOMEM;
		memcpy(s.key, key, klen);
	}
	r->subs[r->nsubs++] = s;
	return 0;
}

static int on_sub_ack(gcs_replica *r, transport_conn *c, const prism_wire_hdr *h,
		      const uint8_t *p)
{
	if (h->len != 4)
		return PRISM_E_PROTO;
	struct sub *s = sub_find(r, c, h->req_id);
	uint32_t n = prism_le32_load(p);
	if (s)
		s->unacked = n >= s->unacked ? 0 : s->unacked - n;
	return 0;
}

/* Reads move elsewhere: every subscriber is told to re-read and subscribe again (its
 * client finds the replica that serves them now). */
static void stop_serving(gcs_replica *r)
{
	r->serving = false;
	while (r->nsubs) {
		out(r, r->subs[0].c, GCS_M_OVERFLOW, r->subs[0].id, NULL, 0);
		sub_drop(r, &r->subs[0]);
	}
}

/* ---- applying, continued ----------------------------------------------------------- */

static int apply(gcs_replica *r, uint64_t seq, const uint8_t *p, size_t n, const gcs_op *op)
{
	int verdict = gcs_store_apply(r->store, seq, op);
	if (verdict == -EINVAL)
		return verdict;
	int rc = r->wal ? gcs_wal_append(r->wal, seq, p, n) : 0;
	if (rc == 0 && !r->is_tail)
		rc = batch_add(r, seq, p, n);
	if (rc == 0 && r->is_tail) {
		r->acked =
			seq; /* the tail: applied is acknowledged (once the log is durable) */
	}
	/* The serving replica publishes: the tail, or the old tail until it hands over. */
	if (rc == 0 && r->serving && verdict >= 0 && r->nsubs)
		notify(r, seq, op);
	return rc ? rc : verdict;
}

/* ---- messages ---------------------------------------------------------------------- */

static int on_put(gcs_replica *r, transport_conn *c, const prism_wire_hdr *h, const uint8_t *p)
{
	gcs_outbox *o = transport_conn_ctx(c);
	if (!r->is_head || (o && o->refused)) {
		/* Once refused, every later write on the link is refused too, even if this
		 * replica becomes the head meanwhile: the client resends them all in order on
		 * a new link, so a later write is never applied before an earlier one (which
		 * would make the earlier one look like a duplicate). */
		uint8_t a[12];
		prism_le32_store(a, (uint32_t)PRISM_E_NOT_HEAD);
		prism_le64_store(a + 4, 0);
		int rc = out(r, c, GCS_M_PUT_OK, h->req_id, a, sizeof(a));
		if ((o = transport_conn_ctx(c)) != NULL)
			o->refused = true;
		return rc;
	}
	gcs_op op;
	int rc = gcs_op_decode(p, h->len, &op);
	uint64_t seq = gcs_store_seq(r->store) + 1;
	if (rc == 0)
		rc = apply(r, seq, p, h->len, &op);
	if (rc == -EINVAL || rc == -ENOMEM)
		return rc;
	pend w = {.seq = seq, .client = c, .req_id = h->req_id, .status = rc < 0 ? rc : 0};
	if (rc == PRISM_E_TRUNCATED || rc == PRISM_E_PROTO || rc == PRISM_E_BAD_VERSION ||
	    rc == PRISM_E_TOO_BIG) {
		/* Not an operation at all: nothing was ordered; answer at once. */
		uint8_t a[12];
		prism_le32_store(a, (uint32_t)rc);
		prism_le64_store(a + 4, 0);
		return out(r, c, GCS_M_PUT_OK, h->req_id, a, sizeof(a));
	}
	return prism_fifo_push(&r->pend, &w);
}

static int on_get(gcs_replica *r, transport_conn *c, const prism_wire_hdr *h, const uint8_t *p)
{
	uint8_t table;
	const uint8_t *key;
	uint32_t klen;
	int rc = table_key(h, p, &table, &key, &klen);
	if (rc)
		return rc;
	const uint8_t *val = NULL;
	size_t vlen = 0;
	uint64_t ver = 0;
	int status = r->serving ? gcs_store_get(r->store, table, key, klen, &val, &vlen, &ver)
				: PRISM_E_NOT_TAIL;
	size_t n = 4 + 8 + 4 + vlen;
	uint8_t small[256];
	uint8_t *a = n <= sizeof(small) ? small : prism_malloc(n);
	if (!a)
		return -ENOMEM;
	prism_le32_store(a, (uint32_t)status);
	prism_le64_store(a + 4, ver);
	prism_le32_store(a + 12, (uint32_t)vlen);
	if (vlen)
		memcpy(a + 16, val, vlen);
	rc = out(r, c, GCS_M_GET_OK, h->req_id, a, n);
	if (a != small)
		prism_free(a);
	return rc;
}

/* A batch (u32 n, n x (u64 seq, u32 len, op)) of blen bytes, from a message or the ring. */
static int on_batch(gcs_replica *r, const uint8_t *p, size_t blen)
{
	if (blen < 4)
		return PRISM_E_PROTO;
	uint32_t n = prism_le32_load(p);
	size_t off = 4;
	for (uint32_t i = 0; i < n; i++) {
		if (blen - off < 12)
			return PRISM_E_TRUNCATED;
		uint64_t seq = prism_le64_load(p + off);
		uint32_t len = prism_le32_load(p + off + 8);
		off += 12;
		if (blen - off < len)
			return PRISM_E_TRUNCATED;
		gcs_op op;
		int rc = gcs_op_decode(p + off, len, &op);
		if (rc)
			return rc;
		/* Entries we hold already (a resend after a reconfiguration) are skipped. */
		if (seq > gcs_store_seq(r->store)) {
			if (seq != gcs_store_seq(r->store) + 1)
				return PRISM_E_PROTO;
			rc = apply(r, seq, p + off, len, &op);
			if (rc == -EINVAL || rc == -ENOMEM)
				return rc;
		}
		off += len;
	}
	return off == blen ? 0 : PRISM_E_PROTO;
}

/* The doorbell of a batch the predecessor wrote into our ring. */
/* A scan: every entry of one table, in one answer (up to GCS_SCAN_MAX). */
typedef struct scan_buf {
	uint8_t table;
	uint8_t *p;
	size_t len, cap;
	uint32_t n;
} scan_buf;

static int scan_visit(uint8_t table, const uint8_t *key, size_t klen, const uint8_t *val,
		      size_t vlen, uint64_t version, void *arg)
{
	scan_buf *b = arg;
	if (table != b->table)
		return 0;
	size_t need = b->len + 4 + klen + 4 + vlen + 8;
	if (need > GCS_SCAN_MAX)
		return PRISM_E_TOO_BIG;
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < need)
			cap *= 2;
		uint8_t *q = prism_realloc(b->p, cap);
		if (!q)
			return -ENOMEM;
		b->p = q;
		b->cap = cap;
	}
	uint8_t *o = b->p + b->len;
	prism_le32_store(o, (uint32_t)klen);
	memcpy(o + 4, key, klen);
	prism_le32_store(o + 4 + klen, (uint32_t)vlen);
	if (vlen)
		memcpy(o + 8 + klen, val, vlen);
	prism_le64_store(o + 8 + klen + vlen, version);
	b->len = need;
	b->n++;
	return 0;
}

static int on_scan(gcs_replica *r, transport_conn *c, const prism_wire_hdr *h, const uint8_t *p)
{
	if (h->len != 1 || p[0] < GCS_T_NODE || p[0] > GCS_T_KV)
		return PRISM_E_PROTO;
	scan_buf b = {.table = p[0], .len = 8};
	int status = r->serving ? 0 : PRISM_E_NOT_TAIL;
	b.p = prism_malloc(4096);
	b.cap = b.p ? 4096 : 0;
	if (!b.p)
		return -ENOMEM;
	if (status == 0)
		status = gcs_store_foreach(r->store, scan_visit, &b);
	if (status) { /* an error answers with no entries */
		b.len = 8;
		b.n = 0;
	}
	prism_le32_store(b.p, (uint32_t)status);
	prism_le32_store(b.p + 4, b.n);
	int rc = status == -ENOMEM ? status : out(r, c, GCS_M_SCAN_OK, h->req_id, b.p, b.len);
	prism_free(b.p);
	return rc;
}

static int on_repl_ring(gcs_replica *r, const prism_wire_hdr *h, const uint8_t *p)
{
	if (h->len != 20 || !r->ring_in)
		return PRISM_E_PROTO;
	uint64_t off = prism_le64_load(p), after = prism_le64_load(p + 12);
	uint32_t len = prism_le32_load(p + 8);
	if (off > r->ring_bytes || len > r->ring_bytes - off || after < r->in_consumed ||
	    after - r->in_consumed > r->ring_bytes)
		return PRISM_E_PROTO;
	int rc = on_batch(r, r->ring_in + off, len);
	if (rc == 0) {
		r->in_consumed = after;
		r->st.ring_batches_in++;
	}
	return rc;
}

/* ---- a successor joins: it says what it holds; it gets the rest -------------------- */

/* The successor holds everything up to `have`.  If it lacks entries the tail has
 * acknowledged (we keep only what came after), it gets our whole store first; then the
 * batches we keep, of which it skips what it holds. */
/* 4 MiB per chunk of a store image, one chunk per poll: writes keep flowing to the
 * replicas upstream meanwhile. */
#define STATE_CHUNK (4u << 20)

/* The successor is ready for the stream: the batches kept, then what follows. */
static int stream_ready(gcs_replica *r, uint64_t have)
{
	int rc = 0;
	for (uint32_t k = 0; k < r->retained.len && rc == 0; k++) {
		struct kept *b = prism_fifo_at(&r->retained, k);
		rc = out(r, r->next, GCS_M_REPL, 0, b->buf, b->len);
	}
	r->next_ready = true;
	/* Reads pass to the successor once it holds all we hold now. */
	r->handover_at = gcs_store_seq(r->store);
	r->handover = have < r->handover_at;
	r->give_tail = !r->handover;
	return rc;
}

static int on_have(gcs_replica *r, uint64_t have)
{
	tx_drop(r);
	if (have >= r->acked)
		return stream_ready(r, have);
	/* It lacks acknowledged entries we no longer keep as batches: the whole store
	 * first, in chunks (tx_step), then the stream. */
	int rc = gcs_store_dump(r->store, &r->tx, &r->tx_len);
	if (rc)
		return rc;
	PRISM_LOG(PRISM_LOG_INFO, LOGM, "sending the store (%zu bytes, seq %llu) to %s",
		  r->tx_len, (unsigned long long)gcs_store_seq(r->store), r->next_addr);
	return 0;
}

/* The next chunk of the image: u64 total, u64 offset, the bytes. */
static int tx_step(gcs_replica *r)
{
	size_t n = r->tx_len - r->tx_off < STATE_CHUNK ? r->tx_len - r->tx_off : STATE_CHUNK;
	uint8_t *b = prism_malloc(16 + n);
	if (!b)
		return -ENOMEM;
	prism_le64_store(b, r->tx_len);
	prism_le64_store(b + 8, r->tx_off);
	memcpy(b + 16, r->tx + r->tx_off, n);
	int rc = out(r, r->next, GCS_M_STATE, 0, b, 16 + n);
	prism_free(b);
	if (rc)
		return rc;
	r->tx_off += n;
	if (r->tx_off < r->tx_len)
		return 0;
	tx_drop(r);
	return stream_ready(r, 0);
}

/* A predecessor's store image: taken when ours is empty (a new replica), ignored when
 * we already hold as much. */
static int on_state(gcs_replica *r, const prism_wire_hdr *h, const uint8_t *p)
{
	if (h->len < 16)
		return PRISM_E_PROTO;
	uint64_t total = prism_le64_load(p), off = prism_le64_load(p + 8);
	size_t n = h->len - 16;
	if (off == 0) {
		prism_free(r->rx);
		/* A bound on a claim before it is believed: 1 TiB. */
		r->rx = total <= (1ull << 40) ? prism_malloc(total ? total : 1) : NULL;
		if (!r->rx)
			return total <= (1ull << 40) ? -ENOMEM : PRISM_E_TOO_BIG;
		r->rx_len = total;
		r->rx_got = 0;
	}
	if (!r->rx || total != r->rx_len || off != r->rx_got || n > total - off)
		return PRISM_E_PROTO;
	memcpy(r->rx + off, p + 16, n);
	r->rx_got += n;
	if (r->rx_got < r->rx_len)
		return 0;
	uint8_t *img = r->rx;
	r->rx = NULL;
	int rc = r->rx_len >= 24 ? 0 : PRISM_E_PROTO;
	uint64_t seq = rc ? 0 : prism_le64_load(img + 16);
	if (rc == 0 && gcs_store_seq(r->store) >= seq) {
		prism_free(img);
		return 0;
	}
	if (rc == 0 && gcs_store_seq(r->store) != 0) {
		/* Behind but not empty (the whole chain restarted, and we had less than
		 * our predecessor): our history is a prefix of its, so its image replaces
		 * our store whole. */
		PRISM_LOG(PRISM_LOG_INFO, LOGM,
			  "replacing the store (seq %llu) by the image (seq %llu)",
			  (unsigned long long)gcs_store_seq(r->store), (unsigned long long)seq);
		gcs_store *fresh;
		rc = gcs_store_create(&fresh);
		if (rc == 0) {
			gcs_store_destroy(r->store);
			r->store = fresh;
		}
	}
	if (rc == 0)
		rc = gcs_store_load_buf(r->store, img, r->rx_len);
	prism_free(img);
	if (rc)
		return rc;
	if (r->is_tail)
		r->acked = seq;
	return r->wal ? persist_image(r) : 0;
}

static int on_frame(void *arg, transport_conn *c, const prism_wire_hdr *h, const uint8_t *p)
{
	gcs_replica *r = arg;
	switch (h->type) {
	case GCS_M_PUT:
		return on_put(r, c, h, p);
	case GCS_M_GET:
		return on_get(r, c, h, p);
	case GCS_M_SCAN:
		return on_scan(r, c, h, p);
	case GCS_M_CHAIN_HELLO: {
		r->prev = c;
		r->is_head = false;
		r->ack_sent = 0; /* a new predecessor hears our acknowledgement afresh */
		uint8_t a[8 + TRANSPORT_MR_DESC_BYTES];
		size_t n = 8;
		prism_le64_store(a, gcs_store_seq(r->store));
		if (r->ring_in && ring_in_register(r) == 0) {
			transport_mr_desc d;
			transport_mr_desc_get(r->ring_in_mr, &d);
			transport_mr_desc_encode(&d, a + 8, TRANSPORT_MR_DESC_BYTES);
			n += TRANSPORT_MR_DESC_BYTES;
		}
		return out(r, c, GCS_M_HAVE, 0, a, n);
	}
	case GCS_M_HAVE:
		if (c != r->next || (h->len != 8 && h->len != 8 + TRANSPORT_MR_DESC_BYTES))
			return PRISM_E_PROTO;
		r->peer_ring = false;
		if (h->len > 8 && r->ring_out) {
			if (transport_mr_desc_decode(p + 8, TRANSPORT_MR_DESC_BYTES,
						     &r->peer) ||
			    r->peer.len < 4096 || !(r->peer.access & TRANSPORT_REMOTE_WRITE))
				return PRISM_E_PROTO;
			r->peer_ring = true;
			r->out_pos = r->out_freed = 0;
		}
		return on_have(r, prism_le64_load(p));
	case GCS_M_STATE:
		return c == r->prev ? on_state(r, h, p) : PRISM_E_PROTO;
	case GCS_M_REPL:
		return c == r->prev ? on_batch(r, p, h->len) : PRISM_E_PROTO;
	case GCS_M_REPL_RING:
		return c == r->prev ? on_repl_ring(r, h, p) : PRISM_E_PROTO;
	case GCS_M_RING_FREED:
		if (c != r->next || h->len != 8)
			return PRISM_E_PROTO;
		if (prism_le64_load(p) > r->out_freed && prism_le64_load(p) <= r->out_pos)
			r->out_freed = prism_le64_load(p);
		return 0;
	case GCS_M_SUB:
		return on_sub(r, c, h, p);
	case GCS_M_UNSUB: {
		struct sub *s = sub_find(r, c, h->req_id);
		if (s)
			sub_drop(r, s);
		return h->len ? PRISM_E_PROTO : 0;
	}
	case GCS_M_SUB_ACK:
		return on_sub_ack(r, c, h, p);
	case GCS_M_PING: {
		uint8_t a[8];
		prism_le64_store(a, gcs_store_seq(r->store));
		return h->len ? PRISM_E_PROTO : out(r, c, GCS_M_PONG, h->req_id, a, sizeof(a));
	}
	case GCS_M_SET_NEXT: {
		char next[TRANSPORT_ADDR_MAX];
		if (h->len >= sizeof(next) || memchr(p, 0, h->len))
			return PRISM_E_PROTO;
		memcpy(next, p, h->len);
		next[h->len] = 0;
		return gcs_replica_set_next(r, h->len ? next : NULL);
	}
	case GCS_M_ACK:
		if (c != r->next || h->len != 8)
			return PRISM_E_PROTO;
		if (prism_le64_load(p) > r->acked)
			r->acked = prism_le64_load(p);
		drop_retained(r, r->acked);
		if (r->handover && r->acked >= r->handover_at) {
			r->handover = false;
			r->give_tail = true;
		}
		return 0;
	case GCS_M_ROLE:
		if (h->len != 1)
			return PRISM_E_PROTO;
		if (p[0] & GCS_ROLE_HEAD) {
			r->is_head = true;
			if (r->prev) { /* cut out: nothing more from it */
				transport_close(r->prev);
				r->prev = NULL;
			}
		}
		/* Roles are only ever given: reads leave a replica only by its own hand-over
		 * (GCS_M_TAKE_TAIL), so a late message can never take them from the one
		 * that has them. */
		if (p[0] & GCS_ROLE_SERVE)
			r->serving = true;
		PRISM_LOG(PRISM_LOG_INFO, LOGM, "role:%s%s", r->is_head ? " head" : "",
			  r->serving ? " serving reads" : "");
		return 0;
	case GCS_M_TAKE_TAIL:
		if (c != r->prev || h->len)
			return PRISM_E_PROTO;
		if (r->is_tail) {
			r->serving = true;
		} else if (r->next_ready) { /* pass it on once the successor has it all */
			r->handover_at = gcs_store_seq(r->store);
			r->handover = r->acked < r->handover_at;
			r->give_tail = !r->handover;
		}
		return 0;
	default:
		return PRISM_E_PROTO;
	}
}

/* ---- flush ------------------------------------------------------------------------- */

static int answer_clients(gcs_replica *r)
{
	while (r->pend.len) {
		pend *w = prism_fifo_at(&r->pend, 0);
		if (w->seq > r->acked)
			break;
		uint8_t a[12];
		prism_le32_store(a, (uint32_t)w->status);
		prism_le64_store(a + 4, w->seq);
		if (w->client)
			out(r, w->client, GCS_M_PUT_OK, w->req_id, a, sizeof(a));
		prism_fifo_pop(&r->pend, NULL);
	}
	return 0;
}

/* The batch to the successor: into its ring by WRITE plus a doorbell where it has one
 * and there is room, else as a message. */
static int ship(gcs_replica *r)
{
	uint64_t size = r->peer.len < r->ring_bytes ? r->peer.len : r->ring_bytes;
	if (r->peer_ring && r->blen <= size / 2) {
		uint64_t pos = r->out_pos, at = pos % size;
		if (at + r->blen > size) { /* no room before the end: wrap */
			pos += size - at;
			at = 0;
		}
		uint64_t after = pos + r->blen;
		if (after - r->out_freed <= size) {
			memcpy(r->ring_out + at, r->batch, r->blen);
			int rc = transport_write(r->next, r->ring_out + at, r->blen,
						 r->peer.addr + at, r->peer.rkey, 0, 0);
			if (rc)
				return rc;
			uint8_t d[20];
			prism_le64_store(d, at);
			prism_le32_store(d + 8, (uint32_t)r->blen);
			prism_le64_store(d + 12, after);
			r->out_pos = after;
			r->st.ring_batches_out++;
			r->st.ring_bytes_out += r->blen;
			return out(r, r->next, GCS_M_REPL_RING, 0, d, sizeof(d));
		}
		r->st.ring_full++; /* the successor is behind: this batch goes as a message */
	}
	r->st.msg_batches_out++;
	return out(r, r->next, GCS_M_REPL, 0, r->batch, r->blen);
}

static int flush(gcs_replica *r)
{
	int rc = r->wal ? gcs_wal_sync(r->wal) : 0;
	if (rc)
		return rc;
	if (r->snap_pid)
		snapshot_reap(r, false);
	else if (r->wal && gcs_store_seq(r->store) - r->snap_seq >= r->snap_every)
		snapshot_start(r);
	if (r->tx && r->next_up) {
		rc = tx_step(r);
		if (rc)
			return rc;
	}
	if (r->bcount && r->next_up && r->next_ready) {
		prism_le32_store(r->batch, r->bcount);
		rc = ship(r);
		if (rc)
			return rc;
		/* Kept until the tail acknowledges it; the next batch gets a new buffer. */
		struct kept k = {.buf = r->batch, .len = r->blen, .last_seq = r->batch_last};
		rc = prism_fifo_push(&r->retained, &k);
		if (rc)
			return rc;
		r->batch = NULL;
		r->bcap = 0;
		r->blen = 0;
		r->bcount = 0;
	}
	if (r->give_tail && r->next_up && r->next_ready) {
		/* After every batch it could have read from: the successor serves from here. */
		rc = out(r, r->next, GCS_M_TAKE_TAIL, 0, NULL, 0);
		if (rc)
			return rc;
		r->give_tail = false;
		if (r->serving)
			stop_serving(r);
	}
	if (r->prev && r->in_consumed > r->in_freed_sent) {
		uint8_t a[8];
		prism_le64_store(a, r->in_consumed);
		rc = out(r, r->prev, GCS_M_RING_FREED, 0, a, sizeof(a));
		if (rc)
			return rc;
		r->in_freed_sent = r->in_consumed;
	}
	if (r->prev && r->acked > r->ack_sent) {
		uint8_t a[8];
		prism_le64_store(a, r->acked);
		rc = out(r, r->prev, GCS_M_ACK, 0, a, sizeof(a));
		if (rc)
			return rc;
		r->ack_sent = r->acked;
	}
	rc = answer_clients(r);
	/* Every link's frames of this poll leave as one message. */
	for (size_t i = 0; i < r->ndirty; i++) {
		r->dirty[i]->dirty = false;
		int frc = gcs__out_flush(r->dirty[i]);
		if (frc && !rc)
			rc = frc;
	}
	r->ndirty = 0;
	return rc;
}

static void on_closed(gcs_replica *r, transport_conn *c, int status)
{
	outbox_drop(r, c);
	for (size_t i = 0; i < r->nsubs;) {
		if (r->subs[i].c == c)
			sub_drop(r, &r->subs[i]);
		else
			i++;
	}
	if (c == r->next) {
		PRISM_LOG(PRISM_LOG_WARN, LOGM, "successor %s gone: %s", r->next_addr,
			  prism_strerror(status));
		r->next = NULL;
		r->next_up = false;
		r->peer_ring = false;
		tx_drop(r);
	}
	if (c == r->prev) {
		r->prev = NULL;
		prism_free(r->rx); /* an image cut short */
		r->rx = NULL;
	}
	/* Clients gone: their writes still go through; nobody is told. */
	for (uint32_t i = 0; i < r->pend.len; i++) {
		pend *w = prism_fifo_at(&r->pend, i);
		if (w->client == c)
			w->client = NULL;
	}
}

int gcs_replica_poll(gcs_replica *r, int64_t timeout_ns)
{
	transport_event ev[64];
	int n = transport_poll(r->t, ev, 64, timeout_ns);
	if (n < 0)
		return n;
	int handled = 0;
	for (int i = 0; i < n; i++) {
		transport_event *e = &ev[i];
		switch (e->kind) {
		case TRANSPORT_EV_CONNECTED:
			if (e->conn == r->next) {
				r->next_up = true;
				out(r, r->next, GCS_M_CHAIN_HELLO, 0, NULL, 0);
			}
			break;
		case TRANSPORT_EV_RECV: {
			int rc = gcs__frames(e->data, e->len, e->conn, on_frame, r);
			if (rc) {
				PRISM_LOG(PRISM_LOG_WARN, LOGM, "dropping a link: %s",
					  prism_strerror(rc));
				transport_close(e->conn);
			}
			handled++;
			break;
		}
		case TRANSPORT_EV_SEND:
			gcs__sent(e);
			break;
		case TRANSPORT_EV_CLOSED:
			on_closed(r, e->conn, e->status);
			break;
		default:
			break;
		}
	}
	int rc = flush(r);
	return rc ? rc : handled;
}

int gcs_replica_fd(const gcs_replica *r)
{
	return transport_fd(r->t);
}
