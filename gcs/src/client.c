/* client.c — the GCS chain's client (see gcs/chain.h): PUTs to the head, GETs to the
 * tail, each numbered and matched with its answer. */
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/fifo.h"
#include "base/id.h"
#include "base/wire.h"
#include "gcs/chain.h"
#include "gcs/store.h"
#include "gcs_int.h"

typedef struct req {
	uint64_t id;
	bool get;
	gcs_put_cb put_cb;
	gcs_get_cb get_cb;
	void *arg;
} req;

struct gcs_client {
	transport *t;
	transport_conn *head, *tail;
	prism_id id;
	uint64_t next_req;
	/* Requests in flight, in request order (answers come in order per link). */
	prism_fifo reqs;
	uint8_t *buf;
	size_t buf_cap;
	/* Frames of each link ([0] head, [1] tail; one link when they are the same),
	 * sent as one message per poll once the link is up. */
	gcs_outbox ob[2];
	bool up[2];
	struct csub {
		uint64_t id;
		uint8_t table;
		uint8_t *key;
		uint32_t klen;
		gcs_sub_cb cb;
		void *arg;
		uint32_t handled; /* delivered since the last acknowledgement */
	} * subs;
	size_t nsubs, subs_cap;
};

static gcs_outbox *box_of(gcs_client *c, const transport_conn *l)
{
	return l == c->head ? &c->ob[0] : &c->ob[1];
}

/* Send every link's gathered frames, after acknowledging what subscribers handled. */
static int flush(gcs_client *c)
{
	for (size_t i = 0; i < c->nsubs && c->tail; i++) {
		struct csub *s = &c->subs[i];
		if (!s->handled)
			continue;
		uint8_t n[4];
		prism_le32_store(n, s->handled);
		int rc = gcs__out(box_of(c, c->tail), GCS_M_SUB_ACK, s->id, n, sizeof(n));
		if (rc)
			return rc;
		s->handled = 0;
	}
	for (int i = 0; i < 2; i++) {
		if (!c->up[i] || !c->ob[i].len)
			continue;
		int rc = gcs__out_flush(&c->ob[i]);
		if (rc)
			return rc;
	}
	return 0;
}

int gcs_client_create(enum transport_backend backend, const uint8_t *token, const char *head,
		      const char *tail, gcs_client **out)
{
	*out = NULL;
	gcs_client *c = prism_calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	transport_opts o = {.backend = backend};
	memcpy(o.token, token, sizeof(o.token));
	int rc = transport_create(&o, &c->t);
	if (rc == 0)
		rc = transport_connect(c->t, head, NULL, &c->head);
	if (rc == 0 && strcmp(head, tail) != 0)
		rc = transport_connect(c->t, tail, NULL, &c->tail);
	else if (rc == 0)
		c->tail = c->head;
	c->ob[0].c = c->head;
	c->ob[1].c = c->tail;
	if (rc) {
		gcs_client_destroy(c);
		return rc;
	}
	/* A cluster-unique client id (random per process): its request ids make retried
	 * writes apply once. */
	c->id = prism_id_new(PRISM_ID_WORKER);
	prism_fifo_init(&c->reqs, sizeof(req));
	c->next_req = 1;
	*out = c;
	return 0;
}

void gcs_client_destroy(gcs_client *c)
{
	if (!c)
		return;
	transport_destroy(c->t);
	prism_fifo_free(&c->reqs);
	prism_free(c->buf);
	gcs__out_free(&c->ob[0]);
	gcs__out_free(&c->ob[1]);
	for (size_t i = 0; i < c->nsubs; i++)
		prism_free(c->subs[i].key);
	prism_free(c->subs);
	prism_free(c);
}

size_t gcs_client_pending(const gcs_client *c)
{
	return c->reqs.len;
}

static int track(gcs_client *c, const req *r)
{
	return prism_fifo_push(&c->reqs, r);
}

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

int gcs_client_put(gcs_client *c, uint8_t table, const void *key, size_t key_len,
		   const void *value, size_t value_len, gcs_put_cb cb, void *arg)
{
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
	if (rc == 0)
		rc = c->head ? gcs__out(box_of(c, c->head), GCS_M_PUT, c->next_req, c->buf, n)
			     : PRISM_E_PEER_GONE;
	if (rc)
		return rc;
	req r = {.id = c->next_req++, .put_cb = cb, .arg = arg};
	return track(c, &r);
}

int gcs_client_get(gcs_client *c, uint8_t table, const void *key, size_t key_len, gcs_get_cb cb,
		   void *arg)
{
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
	if (rc == 0)
		rc = c->tail ? gcs__out(box_of(c, c->tail), GCS_M_GET, c->next_req, c->buf, n)
			     : PRISM_E_PEER_GONE;
	if (rc)
		return rc;
	req r = {.id = c->next_req++, .get = true, .get_cb = cb, .arg = arg};
	return track(c, &r);
}

/* The request an answer names; requests answered out of order across the two links are
 * found by a scan from the oldest. */
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
	/* Close the gap: shift the older requests up by one, then drop the head. */
	for (uint32_t i = at; i > 0; i--)
		*(req *)prism_fifo_at(&c->reqs, i) = *(req *)prism_fifo_at(&c->reqs, i - 1);
	prism_fifo_pop(&c->reqs, NULL);
}

static struct csub *csub_find(gcs_client *c, uint64_t id)
{
	for (size_t i = 0; i < c->nsubs; i++)
		if (c->subs[i].id == id)
			return &c->subs[i];
	return NULL;
}

/* A change (or an overflow) for a subscription; one dropped meanwhile is ignored. */
static int on_notify(gcs_client *c, const prism_wire_hdr *h, const uint8_t *p)
{
	struct csub *s = csub_find(c, h->req_id);
	if (h->type == GCS_M_OVERFLOW) {
		if (h->len)
			return PRISM_E_PROTO;
		if (s)
			s->cb(s->arg, PRISM_E_FULL, 0, 0, NULL, 0, NULL, 0);
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
	if (!s)
		return 0;
	s->handled++;
	s->cb(s->arg, 0, prism_le64_load(p), p[8], p + 13, klen, p + 17 + klen, vlen);
	return 0;
}

static int send_sub(gcs_client *c, const struct csub *s)
{
	if (!c->tail)
		return PRISM_E_PEER_GONE;
	size_t n = 1 + 4 + s->klen;
	int rc = scratch(c, n);
	if (rc)
		return rc;
	c->buf[0] = s->table;
	prism_le32_store(c->buf + 1, s->klen);
	if (s->klen)
		memcpy(c->buf + 5, s->key, s->klen);
	return gcs__out(box_of(c, c->tail), GCS_M_SUB, s->id, c->buf, n);
}

int gcs_client_subscribe(gcs_client *c, uint8_t table, const void *key, size_t key_len,
			 gcs_sub_cb cb, void *arg, uint64_t *id)
{
	if (!cb || !id || (key && (!key_len || key_len > GCS_STORE_KEY_MAX)))
		return -EINVAL;
	if (c->nsubs == c->subs_cap) {
		size_t cap = c->subs_cap ? c->subs_cap * 2 : 8;
		struct csub *v = prism_realloc(c->subs, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->subs = v;
		c->subs_cap = cap;
	}
	struct csub s = {.id = c->next_req++, .table = table, .cb = cb, .arg = arg};
	if (key) {
		s.key = prism_malloc(key_len);
		if (!s.key)
			return -ENOMEM;
		memcpy(s.key, key, key_len);
		s.klen = (uint32_t)key_len;
	}
	int rc = send_sub(c, &s);
	if (rc) {
		prism_free(s.key);
		return rc;
	}
	c->subs[c->nsubs++] = s;
	*id = s.id;
	return 0;
}

int gcs_client_resubscribe(gcs_client *c, uint64_t id)
{
	struct csub *s = csub_find(c, id);
	if (!s)
		return -ENOENT;
	s->handled = 0;
	return send_sub(c, s);
}

int gcs_client_unsubscribe(gcs_client *c, uint64_t id)
{
	struct csub *s = csub_find(c, id);
	if (!s)
		return -ENOENT;
	prism_free(s->key);
	*s = c->subs[--c->nsubs];
	return c->tail ? gcs__out(box_of(c, c->tail), GCS_M_UNSUB, id, NULL, 0) : 0;
}

static int on_answer(void *arg, transport_conn *l, const prism_wire_hdr *h, const uint8_t *p)
{
	(void)l;
	gcs_client *c = arg;
	if (h->type == GCS_M_NOTIFY || h->type == GCS_M_OVERFLOW)
		return on_notify(c, h, p);
	uint32_t at;
	req *r = find(c, h->req_id, &at);
	if (!r)
		return PRISM_E_PROTO;
	req q = *r;
	untrack(c, at);
	if (h->type == GCS_M_PUT_OK && !q.get && h->len == 12) {
		if (q.put_cb)
			q.put_cb(q.arg, (int)prism_le32_load(p), prism_le64_load(p + 4));
		return 0;
	}
	if (h->type == GCS_M_GET_OK && q.get && h->len >= 16 &&
	    h->len == 16 + (size_t)prism_le32_load(p + 12)) {
		if (q.get_cb)
			q.get_cb(q.arg, (int)prism_le32_load(p), p + 16,
				 prism_le32_load(p + 12), prism_le64_load(p + 4));
		return 0;
	}
	return PRISM_E_PROTO;
}

/* A link is gone: every request on it fails. */
/* A link is gone: the requests sent on it (PUTs on the head's, GETs on the tail's)
 * fail; the others stay in flight on theirs. */
static void fail_link(gcs_client *c, bool head, bool tail, int status)
{
	uint32_t n = c->reqs.len;
	for (uint32_t i = 0; i < n; i++) {
		req q;
		prism_fifo_pop(&c->reqs, &q);
		if ((q.get && !tail) || (!q.get && !head)) {
			prism_fifo_push(&c->reqs, &q); /* cannot fail: the queue did not grow */
			continue;
		}
		if (q.get && q.get_cb)
			q.get_cb(q.arg, status, NULL, 0, 0);
		else if (!q.get && q.put_cb)
			q.put_cb(q.arg, status, 0);
	}
}

int gcs_client_poll(gcs_client *c, int64_t timeout_ns)
{
	transport_event ev[64];
	int rc = flush(c);
	if (rc)
		return rc;
	int n = transport_poll(c->t, ev, 64, timeout_ns), done = 0;
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		switch (ev[i].kind) {
		case TRANSPORT_EV_RECV: {
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
			c->up[ev[i].conn == c->head ? 0 : 1] = true;
			if (c->head == c->tail)
				c->up[1] = true;
			break;
		case TRANSPORT_EV_CLOSED: {
			bool was_head = ev[i].conn == c->head, was_tail = ev[i].conn == c->tail;
			if (ev[i].conn == c->head) {
				c->head = NULL;
				c->up[0] = false;
				c->ob[0].c = NULL;
			}
			if (ev[i].conn == c->tail) {
				c->tail = NULL;
				c->up[1] = false;
				c->ob[1].c = NULL;
			}
			fail_link(c, was_head, was_tail,
				  ev[i].status ? ev[i].status : PRISM_E_PEER_GONE);
			if (was_tail)
				for (size_t k = 0; k < c->nsubs; k++)
					c->subs[k].cb(c->subs[k].arg, PRISM_E_PEER_GONE, 0, 0,
						      NULL, 0, NULL, 0);
			break;
		}
		default:
			break;
		}
	}
	return done;
}
