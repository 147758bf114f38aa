/* client.c — the GCS client (see gcs/chain.h): each request goes to the shard its key
 * hashes to, PUTs to the chain's head, GETs and subscriptions to its tail, each numbered
 * and matched with its answer.  With a master, a broken link or a replica that says it is
 * not (or no longer) the head or the tail makes the client ask for the configuration and
 * send what was not answered again, in request order, to the replicas it names. */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/crc.h"
#include "base/error.h"
#include "base/fifo.h"
#include "base/id.h"
#include "base/log.h"
#include "base/wire.h"
#include "gcs/chain.h"
#include "gcs/record.h"
#include "gcs/store.h"
#include "gcs_int.h"

#define LOGM "gcs"
/* 10 s: far beyond a repair (a heartbeat timeout plus a round trip), short enough that a
 * GCS that is gone shows as an error. */
#define DEFAULT_TIMEOUT_NS 10000000000ull
/* Between two requests for the configuration while something waits for a repair. */
#define ASK_NS 2000000ull

/* One connection: to a replica (serving one shard), or to the master (shard -1). */
typedef struct clink {
	char addr[TRANSPORT_ADDR_MAX];
	transport_conn *c;
	int shard;
	bool up;
	gcs_outbox ob;
	struct clink *prev, *next;
} clink;

typedef struct shard {
	clink *head, *tail;
	char head_addr[TRANSPORT_ADDR_MAX], tail_addr[TRANSPORT_ADDR_MAX];
	/* The payloads of the requests in flight, kept to send again: bytes from virtual
	 * offset base (requests record their offset). */
	uint8_t *keep;
	uint64_t base;
	size_t len, cap;
	uint32_t live; /* requests in flight */
} cshard;

typedef struct req {
	uint64_t id;
	uint64_t deadline;
	uint64_t off; /* the payload's virtual offset in its shard's keep */
	uint32_t len;
	uint16_t shard;
	uint8_t type; /* GCS_M_PUT, GCS_M_GET or GCS_M_SCAN */
	bool sent;    /* queued on the shard's current head (PUT) or tail (GET) clink */
	gcs_put_cb put_cb;
	gcs_get_cb get_cb;
	struct scan *scan; /* GCS_M_SCAN: the scan this shard's part belongs to */
	void *arg;
} req;

/* A scan of one table: one request per shard, one completion for all. */
struct scan {
	gcs_scan_each each;
	gcs_scan_done done;
	void *arg;
	int remaining, status;
};

typedef struct csub {
	uint64_t id;
	uint8_t table;
	uint8_t *key; /* NULL: the whole table, on every shard */
	uint32_t klen;
	gcs_sub_cb cb;
	void *arg;
	uint64_t sent;     /* shards whose tail has it */
	uint64_t stopped;  /* shards that said FULL: nothing more until a resubscribe */
	uint32_t *handled; /* per shard: delivered since the last acknowledgement */
} csub;

struct gcs_client {
	transport *t;
	prism_id id;
	uint64_t next_req, timeout_ns;
	/* The clock as of the last poll (or the first request after an idle spell): one
	 * read per poll, not per request (a read costs ~100 ns on a KVM guest). */
	uint64_t now;
	prism_fifo reqs; /* of req, in request order */
	uint8_t *buf;
	size_t buf_cap;
	clink *links;
	cshard *sh;
	int nshards;
	clink *master; /* NULL: a fixed chain, and a broken link fails its requests */
	uint64_t epoch;
	bool have_config, ask;
	int master_err; /* why the master's link broke, once it has */
	uint64_t ask_at;
	csub *subs;
	size_t nsubs, subs_cap;
};

/* ---- links ------------------------------------------------------------------------- */

/* An address into a TRANSPORT_ADDR_MAX buffer, cut short if it is longer (gcc's
 * -Wformat-truncation cannot see that addresses come bounded from the configuration). */
static void copy_addr(char *dst, const char *src)
{
	size_t n = strnlen(src, TRANSPORT_ADDR_MAX - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static clink *link_open(gcs_client *c, const char *addr, int shard)
{
	clink *l = prism_calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	_Static_assert(sizeof(l->addr) == TRANSPORT_ADDR_MAX, "an address buffer");
	copy_addr(l->addr, addr);
	l->shard = shard;
	if (transport_connect(c->t, addr, l, &l->c) != 0) {
		prism_free(l);
		return NULL;
	}
	l->ob.c = l->c;
	l->next = c->links;
	if (c->links)
		c->links->prev = l;
	c->links = l;
	return l;
}

/* Stop using a link (its CLOSED event frees it). */
static void link_close(gcs_client *c, clink *l)
{
	if (!l || !l->c)
		return;
	transport_close(l->c);
	l->c = NULL;
	l->ob.len = 0;
	for (int s = 0; s < c->nshards; s++) {
		if (c->sh[s].head == l)
			c->sh[s].head = NULL;
		if (c->sh[s].tail == l)
			c->sh[s].tail = NULL;
	}
}

static void link_free(gcs_client *c, clink *l)
{
	if (l->prev)
		l->prev->next = l->next;
	else
		c->links = l->next;
	if (l->next)
		l->next->prev = l->prev;
	gcs__out_free(&l->ob);
	prism_free(l);
}

/* ---- requests ---------------------------------------------------------------------- */

static int scratch(gcs_client *c, size_t n)
{
	if (n <= c->buf_cap)
		return 0;
	uint8_t *b = prism_realloc(c->buf, n);
	if (!b)
		return -ENOMEM;
	c->buf = b;
	c->buf_cap = n;
	return 0;
}

/* Copy a request's payload into its shard's keep; its virtual offset in *off. */
static int keep_add(gcs_client *c, int s, const uint8_t *p, size_t n, uint64_t *off)
{
	cshard *sh = &c->sh[s];
	if (sh->len + n > sh->cap) {
		/* Drop what answered requests left before the oldest one in flight. */
		uint64_t low = sh->base + sh->len;
		for (uint32_t i = 0; i < c->reqs.len; i++) {
			req *r = prism_fifo_at(&c->reqs, i);
			if (r->shard == s && r->off < low)
				low = r->off;
		}
		size_t cut = (size_t)(low - sh->base);
		if (cut)
			memmove(sh->keep, sh->keep + cut, sh->len - cut);
		sh->len -= cut;
		sh->base = low;
	}
	if (sh->len + n > sh->cap) {
		size_t cap = sh->cap ? sh->cap : 4096;
		while (cap < sh->len + n)
			cap *= 2;
		uint8_t *k = prism_realloc(sh->keep, cap);
		if (!k)
			return -ENOMEM;
		sh->keep = k;
		sh->cap = cap;
	}
	memcpy(sh->keep + sh->len, p, n);
	*off = sh->base + sh->len;
	sh->len += n;
	return 0;
}

static clink *link_for(const gcs_client *c, const req *r)
{
	return r->type == GCS_M_PUT ? c->sh[r->shard].head : c->sh[r->shard].tail;
}

static int send_req(gcs_client *c, req *r)
{
	clink *l = link_for(c, r);
	if (!l)
		return 0; /* sent once the shard has a link again */
	cshard *sh = &c->sh[r->shard];
	int rc = gcs__out(&l->ob, r->type, r->id, sh->keep + (r->off - sh->base), r->len);
	if (rc == 0)
		r->sent = true;
	return rc;
}

static int send_sub(gcs_client *c, csub *s, int k)
{
	clink *l = c->sh[k].tail;
	if (!l || (s->stopped >> k & 1))
		return 0;
	size_t n = 1 + 4 + s->klen;
	int rc = scratch(c, n);
	if (rc)
		return rc;
	c->buf[0] = s->table;
	prism_le32_store(c->buf + 1, s->klen);
	if (s->klen)
		memcpy(c->buf + 5, s->key, s->klen);
	rc = gcs__out(&l->ob, GCS_M_SUB, s->id, c->buf, n);
	if (rc == 0)
		s->sent |= 1ull << k;
	return rc;
}

/* The shards a subscription listens on: its key's, or all of them. */
static uint64_t sub_shards(const gcs_client *c, const csub *s);

/* Send, in request order, what waits for a link that is there now. */
static int resend(gcs_client *c)
{
	for (uint32_t i = 0; i < c->reqs.len; i++) {
		req *r = prism_fifo_at(&c->reqs, i);
		if (!r->sent) {
			int rc = send_req(c, r);
			if (rc)
				return rc;
		}
	}
	for (size_t i = 0; i < c->nsubs; i++) {
		csub *s = &c->subs[i];
		uint64_t todo = sub_shards(c, s) & ~s->sent & ~s->stopped;
		for (int k = 0; k < c->nshards; k++)
			if (todo >> k & 1) {
				int rc = send_sub(c, s, k);
				if (rc)
					return rc;
			}
	}
	return 0;
}

/* Something must wait for the configuration: ask the master now (and again every
 * ASK_NS while it waits), then send again. */
static void want_config(gcs_client *c)
{
	c->ask = true;
}

/* ---- create, destroy --------------------------------------------------------------- */

static int client_new(enum transport_backend backend, const uint8_t *token, uint64_t timeout_ns,
		      gcs_client **out)
{
	gcs_client *c = prism_calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	transport_opts o = {.backend = backend};
	memcpy(o.token, token, sizeof(o.token));
	int rc = transport_create(&o, &c->t);
	if (rc) {
		prism_free(c);
		return rc;
	}
	/* A cluster-unique client id (random per process): its request ids make retried
	 * writes apply once. */
	c->id = prism_id_new(PRISM_ID_WORKER);
	prism_fifo_init(&c->reqs, sizeof(req));
	c->next_req = 1;
	c->timeout_ns = timeout_ns ? timeout_ns : DEFAULT_TIMEOUT_NS;
	*out = c;
	return 0;
}

static int set_shards(gcs_client *c, int n)
{
	c->sh = prism_calloc((size_t)n, sizeof(*c->sh));
	if (!c->sh)
		return -ENOMEM;
	c->nshards = n;
	return 0;
}

int gcs_client_create(enum transport_backend backend, const uint8_t *token, const char *head,
		      const char *tail, gcs_client **out)
{
	*out = NULL;
	if (!token || !head || !tail)
		return -EINVAL;
	gcs_client *c;
	int rc = client_new(backend, token, 0, &c);
	if (rc)
		return rc;
	rc = set_shards(c, 1);
	if (rc == 0) {
		cshard *sh = &c->sh[0];
		snprintf(sh->head_addr, sizeof(sh->head_addr), "%s", head);
		snprintf(sh->tail_addr, sizeof(sh->tail_addr), "%s", tail);
		sh->head = link_open(c, head, 0);
		sh->tail = strcmp(head, tail) ? link_open(c, tail, 0) : sh->head;
		if (!sh->head || !sh->tail)
			rc = -EINVAL;
	}
	if (rc) {
		gcs_client_destroy(c);
		return rc;
	}
	c->have_config = true;
	*out = c;
	return 0;
}

int gcs_client_open(const gcs_client_opts *o, gcs_client **out)
{
	*out = NULL;
	if (!o || !o->master)
		return -EINVAL;
	gcs_client *c;
	int rc = client_new(o->backend, o->token, o->timeout_ns, &c);
	if (rc)
		return rc;
	c->master = link_open(c, o->master, -1);
	if (!c->master) {
		gcs_client_destroy(c);
		return -EINVAL;
	}
	rc = gcs__out(&c->master->ob, GCS_M_CONFIG_GET, 0, NULL, 0);
	if (rc == 0 && o->nowait) {
		*out = c;
		return 0;
	}
	uint64_t end = prism_now_ns() + c->timeout_ns;
	while (rc == 0 && !c->have_config) {
		rc = gcs_client_poll(c, 1000000);
		if (rc > 0)
			rc = 0;
		if (rc == 0 && !c->master)
			rc = PRISM_E_PEER_GONE;
		if (rc == 0 && prism_now_ns() > end)
			rc = PRISM_E_TIMEOUT;
	}
	if (rc) {
		PRISM_LOG(PRISM_LOG_WARN, LOGM, "no configuration from the GCS master %s: %s",
			  o->master, prism_strerror(rc));
		gcs_client_destroy(c);
		return rc;
	}
	*out = c;
	return 0;
}

void gcs_client_destroy(gcs_client *c)
{
	if (!c)
		return;
	transport_destroy(c->t);
	while (c->links)
		link_free(c, c->links);
	prism_fifo_free(&c->reqs);
	prism_free(c->buf);
	for (int s = 0; s < c->nshards; s++)
		prism_free(c->sh[s].keep);
	prism_free(c->sh);
	for (size_t i = 0; i < c->nsubs; i++) {
		prism_free(c->subs[i].key);
		prism_free(c->subs[i].handled);
	}
	prism_free(c->subs);
	prism_free(c);
}

size_t gcs_client_pending(const gcs_client *c)
{
	return c->reqs.len;
}

bool gcs_client_ready(const gcs_client *c, int *err)
{
	if (err)
		*err = c->have_config ? 0 : c->master_err;
	return c->have_config;
}

int gcs_client_shards(const gcs_client *c)
{
	return c->nshards;
}

int gcs_shard_of(uint8_t table, const void *key, size_t key_len, int shards)
{
	if (shards <= 1)
		return 0;
	uint32_t h = prism_crc32c(0, &table, 1);
	h = prism_crc32c(h, key, key_len);
	return (int)(h % (uint32_t)shards);
}

static uint64_t sub_shards(const gcs_client *c, const csub *s)
{
	if (s->key)
		return 1ull << gcs_shard_of(s->table, s->key, s->klen, c->nshards);
	return c->nshards >= 64 ? ~0ull : (1ull << c->nshards) - 1;
}

/* Track a request whose payload is in c->buf (n bytes) and send it if it can go. */
static int start(gcs_client *c, int type, int s, size_t n, gcs_put_cb put_cb, gcs_get_cb get_cb,
		 void *arg)
{
	if (!c->reqs.len)
		c->now = prism_now_ns();
	req r = {.id = c->next_req,
		 .deadline = c->now + c->timeout_ns,
		 .len = (uint32_t)n,
		 .shard = (uint16_t)s,
		 .type = (uint8_t)type,
		 .put_cb = put_cb,
		 .get_cb = get_cb,
		 .arg = arg};
	int rc = keep_add(c, s, c->buf, n, &r.off);
	if (rc)
		return rc;
	/* Writes keep request order: while older ones wait for a new head, the shard has
	 * no head link and this one waits too; they all go in order once it has one. */
	rc = send_req(c, &r);
	if (rc == 0)
		rc = prism_fifo_push(&c->reqs, &r);
	if (rc)
		return rc;
	c->next_req++;
	c->sh[s].live++;
	return 0;
}

int gcs_client_put(gcs_client *c, uint8_t table, const void *key, size_t key_len,
		   const void *value, size_t value_len, gcs_put_cb cb, void *arg)
{
	if (!c->nshards)
		return -EAGAIN; /* no configuration yet (gcs_client_ready()) */
	if (!key || !key_len || key_len > GCS_STORE_KEY_MAX || value_len > GCS_STORE_VALUE_MAX)
		return -EINVAL;
	gcs_op op = {.kind = value ? GCS_OP_PUT : GCS_OP_DEL,
		     .table = table,
		     .key = key,
		     .key_len = (uint32_t)key_len,
		     .value = value,
		     .value_len = value ? (uint32_t)value_len : 0,
		     .client = c->id,
		     .req_id = c->next_req};
	size_t n = gcs_op_size(&op);
	int rc = scratch(c, n);
	if (rc == 0)
		rc = gcs_op_encode(&op, c->buf, c->buf_cap, &n);
	if (rc)
		return rc;
	int s = gcs_shard_of(table, key, key_len, c->nshards);
	return start(c, GCS_M_PUT, s, n, cb, NULL, arg);
}

int gcs_client_get(gcs_client *c, uint8_t table, const void *key, size_t key_len, gcs_get_cb cb,
		   void *arg)
{
	if (!c->nshards)
		return -EAGAIN; /* no configuration yet (gcs_client_ready()) */
	if (!key || !key_len || key_len > GCS_STORE_KEY_MAX)
		return -EINVAL;
	int rc = scratch(c, 1 + 4 + key_len);
	if (rc)
		return rc;
	prism_wire_writer w;
	prism_wire_writer_init(&w, c->buf, c->buf_cap);
	prism_wire_put_u8(&w, table);
	prism_wire_put_bytes(&w, key, key_len);
	size_t n;
	rc = prism_wire_writer_finish(&w, &n);
	if (rc)
		return rc;
	int s = gcs_shard_of(table, key, key_len, c->nshards);
	return start(c, GCS_M_GET, s, n, NULL, cb, arg);
}

/* The request an answer names; requests answered out of order across links are found
 * by a scan from the oldest. */
static req *find(gcs_client *c, uint64_t id, uint32_t *at)
{
	for (uint32_t i = 0; i < c->reqs.len; i++) {
		req *r = prism_fifo_at(&c->reqs, i);
		if (r->id == id) {
			*at = i;
			return r;
		}
	}
	return NULL;
}

static void untrack(gcs_client *c, uint32_t at)
{
	cshard *sh = &c->sh[((req *)prism_fifo_at(&c->reqs, at))->shard];
	if (--sh->live == 0) {
		sh->base += sh->len;
		sh->len = 0;
	}
	/* Close the gap: shift the older requests up by one, then drop the head. */
	for (uint32_t i = at; i > 0; i--)
		*(req *)prism_fifo_at(&c->reqs, i) = *(req *)prism_fifo_at(&c->reqs, i - 1);
	prism_fifo_pop(&c->reqs, NULL);
}

/* One shard's part of a scan ended: the scan completes with the first error once every
 * part has. */
static void scan_part(struct scan *sc, int status)
{
	if (status && !sc->status)
		sc->status = status;
	if (--sc->remaining)
		return;
	if (sc->done)
		sc->done(sc->arg, sc->status);
	prism_free(sc);
}

static void complete(const req *q, int status, const uint8_t *v, size_t vlen, uint64_t x)
{
	if (q->type == GCS_M_SCAN)
		scan_part(q->scan, status);
	else if (q->type == GCS_M_GET && q->get_cb)
		q->get_cb(q->arg, status, v, vlen, x);
	else if (q->type == GCS_M_PUT && q->put_cb)
		q->put_cb(q->arg, status, x);
}

int gcs_client_scan(gcs_client *c, uint8_t table, gcs_scan_each each, gcs_scan_done done,
		    void *arg)
{
	if (table < GCS_T_NODE || table > GCS_T_KV || !done)
		return -EINVAL;
	if (!c->nshards)
		return -EAGAIN;
	struct scan *sc = prism_calloc(1, sizeof(*sc));
	int rc = sc ? scratch(c, 1) : -ENOMEM;
	if (rc) {
		prism_free(sc);
		return rc;
	}
	*sc = (struct scan){.each = each, .done = done, .arg = arg, .remaining = c->nshards};
	for (int s = 0; s < c->nshards; s++) {
		c->buf[0] = table;
		rc = start(c, GCS_M_SCAN, s, 1, NULL, NULL, NULL);
		if (rc) {
			/* The parts already started complete it; the rest count as failed. */
			sc->remaining -= c->nshards - s - 1;
			if (s == 0) {
				prism_free(sc);
				return rc;
			}
			scan_part(sc, rc);
			return 0;
		}
		((req *)prism_fifo_at(&c->reqs, c->reqs.len - 1))->scan = sc;
	}
	return 0;
}

/* ---- subscriptions ------------------------------------------------------------------ */

static csub *csub_find(gcs_client *c, uint64_t id)
{
	for (size_t i = 0; i < c->nsubs; i++)
		if (c->subs[i].id == id)
			return &c->subs[i];
	return NULL;
}

/* Shard k's changes may have been missed: FULL, and nothing more from k until the
 * subscriber has re-read and resubscribed. */
static void sub_stop(csub *s, int k)
{
	s->sent &= ~(1ull << k);
	s->stopped |= 1ull << k;
	s->cb(s->arg, PRISM_E_FULL, 0, 0, NULL, 0, NULL, 0);
}

static int on_notify(gcs_client *c, const clink *l, const prism_wire_hdr *h, const uint8_t *p)
{
	csub *s = csub_find(c, h->req_id);
	int k = l->shard;
	if (h->type == GCS_M_OVERFLOW) {
		if (h->len)
			return PRISM_E_PROTO;
		if (s)
			sub_stop(s, k);
		return 0;
	}
	if (h->type == GCS_M_SUB_NACK) {
		if (h->len != 4)
			return PRISM_E_PROTO;
		if (s && c->master) { /* not serving reads (yet): ask again later */
			s->sent &= ~(1ull << k);
			want_config(c);
		} else if (s) {
			s->cb(s->arg, (int)prism_le32_load(p), 0, 0, NULL, 0, NULL, 0);
		}
		return 0;
	}
	if (h->len < 17)
		return PRISM_E_PROTO;
	uint32_t klen = prism_le32_load(p + 9);
	if (h->len - 17 < klen)
		return PRISM_E_PROTO;
	uint32_t vlen = prism_le32_load(p + 13 + klen);
	if (h->len != 17 + (size_t)klen + vlen)
		return PRISM_E_PROTO;
	if (!s || (s->stopped >> k & 1))
		return 0;
	s->handled[k]++;
	s->cb(s->arg, 0, prism_le64_load(p), p[8], p + 13, klen, p + 17 + klen, vlen);
	return 0;
}

int gcs_client_subscribe(gcs_client *c, uint8_t table, const void *key, size_t key_len,
			 gcs_sub_cb cb, void *arg, uint64_t *id)
{
	if (!cb || !id || (key && (!key_len || key_len > GCS_STORE_KEY_MAX)))
		return -EINVAL;
	if (!c->nshards)
		return -EAGAIN;
	if (c->nsubs == c->subs_cap) {
		size_t cap = c->subs_cap ? c->subs_cap * 2 : 8;
		csub *v = prism_realloc(c->subs, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->subs = v;
		c->subs_cap = cap;
	}
	csub s = {.id = c->next_req, .table = table, .cb = cb, .arg = arg};
	s.handled = prism_calloc((size_t)c->nshards, sizeof(*s.handled));
	if (key) {
		s.key = prism_malloc(key_len);
		if (s.key)
			memcpy(s.key, key, key_len);
		s.klen = (uint32_t)key_len;
	}
	if (!s.handled || (key && !s.key)) {
		prism_free(s.handled);
		prism_free(s.key);
		return -ENOMEM;
	}
	if (!c->master) {
		/* A fixed chain: the tail must be there. */
		if (!c->sh[0].tail) {
			prism_free(s.handled);
			prism_free(s.key);
			return PRISM_E_PEER_GONE;
		}
	}
	c->next_req++;
	c->subs[c->nsubs++] = s;
	*id = s.id;
	return resend(c);
}

int gcs_client_resubscribe(gcs_client *c, uint64_t id)
{
	csub *s = csub_find(c, id);
	if (!s)
		return -ENOENT;
	memset(s->handled, 0, (size_t)c->nshards * sizeof(*s->handled));
	s->stopped = 0;
	s->sent = 0;
	return resend(c);
}

int gcs_client_unsubscribe(gcs_client *c, uint64_t id)
{
	csub *s = csub_find(c, id);
	if (!s)
		return -ENOENT;
	int rc = 0;
	for (int k = 0; k < c->nshards; k++)
		if ((s->sent >> k & 1) && c->sh[k].tail && rc == 0)
			rc = gcs__out(&c->sh[k].tail->ob, GCS_M_UNSUB, id, NULL, 0);
	prism_free(s->key);
	prism_free(s->handled);
	*s = c->subs[--c->nsubs];
	return rc;
}

/* ---- the configuration --------------------------------------------------------------- */

/* Point shard s's role at addr: a new link when the address changed or the old one
 * broke; requests of that role not yet answered go again (in order) on the new one. */
static clink *retarget(gcs_client *c, int s, clink *cur, char *cur_addr, const char *addr,
		       clink *share)
{
	if (cur && cur->c && strcmp(cur_addr, addr) == 0)
		return cur;
	copy_addr(cur_addr, addr);
	/* Head and tail of one shard on one replica share the link. */
	if (share && share->c && strcmp(share->addr, addr) == 0)
		return share;
	return link_open(c, addr, s);
}

/* Requests of shard s for its head (PUTs) or its tail (GETs, scans) wait for a new link. */
static void unsend(gcs_client *c, int s, bool head)
{
	for (uint32_t i = 0; i < c->reqs.len; i++) {
		req *r = prism_fifo_at(&c->reqs, i);
		if (r->shard == s && (r->type == GCS_M_PUT) == head)
			r->sent = false;
	}
}

static int on_config(gcs_client *c, const prism_wire_hdr *h, const uint8_t *p)
{
	prism_wire_reader rd;
	prism_wire_reader_init(&rd, p, h->len);
	uint64_t epoch;
	uint32_t n;
	prism_wire_get_u64(&rd, &epoch);
	prism_wire_get_u32(&rd, &n);
	int rc = rd.err;
	if (rc)
		return rc;
	if (n < 1 || n > GCS_MAX_SHARDS || (c->nshards && (int)n != c->nshards))
		return PRISM_E_PROTO; /* the number of shards never changes */
	if (!c->nshards && (rc = set_shards(c, (int)n)) != 0)
		return rc;
	char head[GCS_MAX_SHARDS][TRANSPORT_ADDR_MAX], tail[GCS_MAX_SHARDS][TRANSPORT_ADDR_MAX];
	for (uint32_t s = 0; s < n; s++) {
		uint32_t r;
		prism_wire_get_u32(&rd, &r);
		head[s][0] = tail[s][0] = 0;
		for (uint32_t k = 0; k < r && k < 16; k++) {
			const uint8_t *a;
			uint32_t alen;
			prism_wire_get_bytes(&rd, TRANSPORT_ADDR_MAX - 1, &a, &alen);
			if (rd.err)
				break;
			char *dst = k == 0 ? head[s] : tail[s];
			memcpy(dst, a, alen);
			dst[alen] = 0;
			if (k == 0)
				memcpy(tail[s], head[s], alen + 1);
		}
	}
	rc = prism_wire_reader_finish(&rd);
	if (rc)
		return rc;
	c->epoch = epoch;
	c->have_config = true;
	c->ask = false;
	for (int s = 0; s < c->nshards; s++) {
		cshard *sh = &c->sh[s];
		if (!head[s][0]) {
			PRISM_LOG(PRISM_LOG_ERROR, LOGM, "GCS shard %d has no live replica", s);
			continue;
		}
		clink *oh = sh->head, *ot = sh->tail;
		clink *nh = retarget(c, s, sh->head, sh->head_addr, head[s], sh->tail);
		clink *nt = retarget(c, s, sh->tail, sh->tail_addr, tail[s], nh);
		sh->head = nh;
		sh->tail = nt;
		if (nh != oh)
			unsend(c, s, true);
		if (nt != ot) {
			unsend(c, s, false);
			for (size_t i = 0; i < c->nsubs; i++)
				c->subs[i].sent &= ~(1ull << s);
		}
		/* A link no role uses any more is closed. */
		if (oh && oh != nh && oh != nt)
			link_close(c, oh);
		if (ot && ot != oh && ot != nh && ot != nt)
			link_close(c, ot);
	}
	return resend(c);
}

/* ---- answers ------------------------------------------------------------------------ */

/* A scan answer's entries, checked whole before any reaches the callback. */
static int scan_entries(const req *q, const uint8_t *p, size_t len)
{
	uint32_t n = prism_le32_load(p + 4);
	size_t off = 8;
	for (int pass = 0; pass < 2; pass++) {
		off = 8;
		for (uint32_t i = 0; i < n; i++) {
			if (len - off < 4)
				return PRISM_E_PROTO;
			uint32_t kl = prism_le32_load(p + off);
			if (len - off - 4 < (size_t)kl + 4)
				return PRISM_E_PROTO;
			uint32_t vl = prism_le32_load(p + off + 4 + kl);
			if (len - off - 8 - kl < (size_t)vl + 8)
				return PRISM_E_PROTO;
			if (pass && q->scan->each)
				q->scan->each(q->scan->arg, p + off + 4, kl, p + off + 8 + kl,
					      vl, prism_le64_load(p + off + 8 + kl + vl));
			off += 16 + (size_t)kl + vl;
		}
		if (off != len)
			return PRISM_E_PROTO;
	}
	return 0;
}

static int on_answer(void *arg, transport_conn *tc, const prism_wire_hdr *h, const uint8_t *p)
{
	gcs_client *c = arg;
	clink *l = transport_conn_ctx(tc);
	if (l == c->master)
		return h->type == GCS_M_CONFIG ? on_config(c, h, p) : PRISM_E_PROTO;
	if (h->type == GCS_M_NOTIFY || h->type == GCS_M_OVERFLOW || h->type == GCS_M_SUB_NACK)
		return on_notify(c, l, h, p);
	uint32_t at;
	req *r = find(c, h->req_id, &at);
	if (!r)
		return PRISM_E_PROTO;
	if (!r->sent || link_for(c, r) != l)
		return 0; /* an answer from a link no longer used: the request went again */
	int status;
	if (h->type == GCS_M_PUT_OK && r->type == GCS_M_PUT && h->len == 12)
		status = (int)prism_le32_load(p);
	else if (h->type == GCS_M_GET_OK && r->type == GCS_M_GET && h->len >= 16 &&
		 h->len == 16 + (size_t)prism_le32_load(p + 12))
		status = (int)prism_le32_load(p);
	else if (h->type == GCS_M_SCAN_OK && r->type == GCS_M_SCAN && h->len >= 8)
		status = (int)prism_le32_load(p);
	else
		return PRISM_E_PROTO;
	if (c->master && (status == PRISM_E_NOT_HEAD || status == PRISM_E_NOT_TAIL)) {
		/* A replica that is not (or not yet) in that role.  A head that refuses one
		 * write refuses every later one on the link, so no later write of ours was
		 * applied; the link is dropped and they all go again, in order. */
		if (status == PRISM_E_NOT_HEAD) {
			int s = r->shard;
			link_close(c, l);
			unsend(c, s, true);
		} else {
			r->sent = false;
		}
		want_config(c);
		return 0;
	}
	req q = *r;
	if (q.type == GCS_M_SCAN && status == 0) {
		int rc = scan_entries(&q, p, h->len);
		if (rc)
			return rc;
	}
	untrack(c, at);
	if (q.type == GCS_M_PUT)
		complete(&q, status, NULL, 0, prism_le64_load(p + 4));
	else if (q.type == GCS_M_GET)
		complete(&q, status, p + 16, prism_le32_load(p + 12), prism_le64_load(p + 4));
	else
		complete(&q, status, NULL, 0, 0);
	return 0;
}

/* A link is gone.  With a master, what it carried waits for the new configuration;
 * without one, its requests fail. */
static void on_closed(gcs_client *c, clink *l, int status)
{
	if (l == c->master) {
		PRISM_LOG(PRISM_LOG_WARN, LOGM, "lost the GCS master %s: %s", l->addr,
			  prism_strerror(status));
		c->master = NULL;
		c->master_err = status ? status : PRISM_E_PEER_GONE;
		/* Without a master nothing can be repaired: fail what waits. */
		for (int s = 0; s < c->nshards; s++)
			link_close(c, c->sh[s].head), link_close(c, c->sh[s].tail);
	}
	for (int s = 0; s < c->nshards; s++) {
		cshard *sh = &c->sh[s];
		bool head = sh->head == l, tail = sh->tail == l;
		if (head)
			sh->head = NULL;
		if (tail)
			sh->tail = NULL;
	}
	for (int s = 0; s < c->nshards; s++) {
		cshard *sh = &c->sh[s];
		if (sh->head && sh->tail)
			continue;
		for (uint32_t i = 0; i < c->reqs.len;) {
			req *r = prism_fifo_at(&c->reqs, i);
			if (r->shard != s || link_for(c, r)) {
				i++;
				continue;
			}
			r->sent = false;
			if (c->master || c->have_config == false) {
				i++;
				continue;
			}
			req q = *r;
			untrack(c, i);
			complete(&q, status ? status : PRISM_E_PEER_GONE, NULL, 0, 0);
		}
		if (!sh->tail)
			for (size_t i = 0; i < c->nsubs; i++) {
				csub *x = &c->subs[i];
				if (!(sub_shards(c, x) >> s & 1) || !(x->sent >> s & 1))
					continue;
				if (c->master) {
					sub_stop(x, s);
				} else {
					x->sent &= ~(1ull << s);
					x->cb(x->arg, PRISM_E_PEER_GONE, 0, 0, NULL, 0, NULL,
					      0);
				}
			}
	}
	if (c->master)
		want_config(c);
}

/* Requests past their deadline fail; the oldest first. */
static int expire(gcs_client *c, uint64_t now)
{
	int n = 0;
	while (c->reqs.len) {
		req *r = prism_fifo_at(&c->reqs, 0);
		if (r->deadline > now)
			break;
		req q = *r;
		untrack(c, 0);
		complete(&q, PRISM_E_TIMEOUT, NULL, 0, 0);
		n++;
	}
	return n;
}

/* Send every link's gathered frames, after acknowledging what subscribers handled. */
static int flush(gcs_client *c)
{
	for (size_t i = 0; i < c->nsubs; i++) {
		csub *s = &c->subs[i];
		for (int k = 0; k < c->nshards; k++) {
			if (!s->handled[k] || !c->sh[k].tail)
				continue;
			uint8_t n[4];
			prism_le32_store(n, s->handled[k]);
			int rc = gcs__out(&c->sh[k].tail->ob, GCS_M_SUB_ACK, s->id, n,
					  sizeof(n));
			if (rc)
				return rc;
			s->handled[k] = 0;
		}
	}
	for (clink *l = c->links; l; l = l->next) {
		if (!l->up || !l->c || !l->ob.len)
			continue;
		int rc = gcs__out_flush(&l->ob);
		if (rc)
			return rc;
	}
	return 0;
}

int gcs_client_poll(gcs_client *c, int64_t timeout_ns)
{
	uint64_t now = c->now = prism_now_ns();
	if (c->ask && c->master && now >= c->ask_at) {
		c->ask_at = now + ASK_NS;
		int rc = gcs__out(&c->master->ob, GCS_M_CONFIG_GET, 0, NULL, 0);
		if (rc)
			return rc;
		/* Asked again while waiting: the answer re-sends even to the same replicas. */
	}
	int rc = flush(c);
	if (rc)
		return rc;
	if (c->ask && timeout_ns > (int64_t)ASK_NS)
		timeout_ns = (int64_t)ASK_NS;
	transport_event ev[64];
	int n = transport_poll(c->t, ev, 64, timeout_ns), done = 0;
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		clink *l = ev[i].ctx;
		switch (ev[i].kind) {
		case TRANSPORT_EV_RECV: {
			if (!l->c)
				break; /* dropped meanwhile */
			size_t before = c->reqs.len;
			if (gcs__frames(ev[i].data, ev[i].len, ev[i].conn, on_answer, c) != 0)
				return PRISM_E_PROTO;
			done += (int)(before - c->reqs.len);
			break;
		}
		case TRANSPORT_EV_SEND:
			gcs__sent(&ev[i]);
			break;
		case TRANSPORT_EV_CONNECTED:
			l->up = true;
			break;
		case TRANSPORT_EV_CLOSED: {
			size_t before = c->reqs.len;
			if (l->c)
				on_closed(c, l, ev[i].status);
			done += (int)(before - c->reqs.len);
			link_free(c, l);
			break;
		}
		default:
			break;
		}
	}
	if (c->reqs.len)
		done += expire(c, now);
	return done;
}

/* ---- synchronous wrappers ------------------------------------------------------------ */

typedef struct sync_put {
	bool done;
	int status;
	uint64_t seq;
} sync_put;

static void sync_put_cb(void *arg, int status, uint64_t seq)
{
	sync_put *w = arg;
	w->done = true;
	w->status = status;
	w->seq = seq;
}

/* Poll until *done; the client's own timeout bounds every request. */
static int wait_done(gcs_client *c, const bool *done)
{
	while (!*done) {
		int rc = gcs_client_poll(c, 1000000);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int gcs_client_put_sync(gcs_client *c, uint8_t table, const void *key, size_t key_len,
			const void *value, size_t value_len, uint64_t *seq)
{
	sync_put w = {0};
	int rc = gcs_client_put(c, table, key, key_len, value, value_len, sync_put_cb, &w);
	if (rc == 0)
		rc = wait_done(c, &w.done);
	if (rc == 0)
		rc = w.status;
	if (seq)
		*seq = rc ? 0 : w.seq;
	return rc;
}

typedef struct sync_get {
	bool done;
	int status;
	uint8_t *value;
	size_t len;
	uint64_t version;
} sync_get;

static void sync_get_cb(void *arg, int status, const uint8_t *value, size_t len,
			uint64_t version)
{
	sync_get *w = arg;
	w->done = true;
	w->status = status;
	if (status)
		return;
	w->value = prism_malloc(len ? len : 1);
	if (!w->value) {
		w->status = -ENOMEM;
		return;
	}
	if (len)
		memcpy(w->value, value, len);
	w->len = len;
	w->version = version;
}

int gcs_client_get_sync(gcs_client *c, uint8_t table, const void *key, size_t key_len,
			uint8_t **value, size_t *len, uint64_t *version)
{
	*value = NULL;
	*len = 0;
	sync_get w = {0};
	int rc = gcs_client_get(c, table, key, key_len, sync_get_cb, &w);
	if (rc == 0)
		rc = wait_done(c, &w.done);
	if (rc == 0)
		rc = w.status;
	if (rc) {
		prism_free(w.value);
		return rc;
	}
	*value = w.value;
	*len = w.len;
	if (version)
		*version = w.version;
	return 0;
}

int gcs_client_fd(const gcs_client *c)
{
	return transport_fd(c->t);
}
