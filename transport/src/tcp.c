/* tcp.c — the tcp backend: messages and one-sided operations as packets over sio.
 *
 * A one-sided operation is served by the peer's transport when it polls: a READ request
 * is answered with the bytes sent straight from the peer's region, a WRITE's bytes are
 * received straight into it, and both are checked against the peer's regions first.
 * Requests and replies on a link are in order, so replies name their operation by its
 * sequence number.
 */
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "sio.h"

enum {
	T_MSG = 1,   /* len: the message */
	T_RREQ = 2,  /* id: seq, addr/key: remote memory, aux: length */
	T_RRESP = 3, /* id: seq, status, len: the bytes (0 on error) */
	T_WRITE = 4, /* id: seq, addr/key, len: the bytes */
	T_WACK = 5,  /* id: seq, status */
};

typedef struct tcp_link {
	sio_conn *sc;
	uint64_t sent_upto; /* copied sends before this seq are reported written */
	int wstatus;        /* the WRITE being received: 0 or why it is refused */
} tcp_link;

static sio *sio_of(const transport *t)
{
	return t->be;
}

static void link_up(sio_conn *sc)
{
	transport__conn_up(sio_ctx(sc));
}

static void link_accepted(void *arg, sio_conn *sc, const struct sockaddr_in *peer)
{
	transport *t = arg;
	transport_conn *c;
	tcp_link *l = prism_calloc(1, sizeof(*l));
	if (!l || transport__conn_new(t, false, peer, &c) != 0) {
		prism_free(l);
		PRISM_LOG(PRISM_LOG_WARN, "transport", "inbound link dropped: no room for it");
		sio_close(sc);
		return;
	}
	l->sc = sc;
	c->be = l;
	sio_set_ctx(sc, c);
	transport__conn_up(c);
}

static void link_down(sio_conn *sc, int status)
{
	transport_conn *c = sio_ctx(sc);
	tcp_link *l = c->be;
	l->sc = NULL;
	transport__conn_down(c, status);
}

/* A reply names operation seq of kind k that is still running, or the link is bad. */
static transport__op *reply_op(transport_conn *c, uint64_t seq, uint8_t kind)
{
	if (seq < c->op_head || seq >= c->op_tail)
		return NULL;
	transport__op *op = transport__op_at(c, seq);
	return op->kind == kind && !op->done ? op : NULL;
}

static int code_of(uint16_t status)
{
	return status ? -(int)status : 0;
}

static int link_begin(sio_conn *sc, const sio_hdr *h, uint8_t **dest)
{
	transport_conn *c = sio_ctx(sc);
	tcp_link *l = c->be;
	switch (h->op) {
	case T_MSG:
		return 0;
	case T_RREQ:
	case T_WACK:
		return h->len == 0 ? 0 : PRISM_E_PROTO;
	case T_RRESP: {
		transport__op *op = reply_op(c, h->id, TOP_READ);
		if (!op || (h->status == 0 && h->len != op->len) || (h->status && h->len))
			return PRISM_E_PROTO;
		*dest = op->local;
		return 0;
	}
	case T_WRITE:
		l->wstatus = transport__mr_remote(c->t, h->key, h->addr, h->len,
						  TRANSPORT_REMOTE_WRITE, dest);
		return 0;
	default:
		return PRISM_E_PROTO;
	}
}

static void serve_read(transport_conn *c, const sio_hdr *h)
{
	tcp_link *l = c->be;
	uint8_t *p;
	int rc = transport__mr_remote(c->t, h->key, h->addr, h->aux, TRANSPORT_REMOTE_READ, &p);
	sio_hdr r = {
		.op = T_RRESP, .id = h->id, .status = (uint16_t)-rc, .len = rc ? 0 : h->aux};
	c->t->stats.reads_served += rc == 0;
	/* Sent in place from the region: the peer's READ is one copy, as with RDMA. */
	if (sio_send(l->sc, &r, p, false, SIO_NO_COOKIE) != 0)
		sio_close(l->sc);
}

static void fail_op(transport_conn *c, uint64_t seq, int status)
{
	transport__op_done(c, seq, status);
	/* As on an RC queue pair, a remote access error ends the link. */
	tcp_link *l = c->be;
	sio_close(l->sc);
	l->sc = NULL;
	transport__conn_down(c, status);
}

static int link_packet(sio_conn *sc, const sio_hdr *h, const uint8_t *payload)
{
	transport_conn *c = sio_ctx(sc);
	tcp_link *l = c->be;
	switch (h->op) {
	case T_MSG: {
		c->t->stats.msgs_recv++;
		transport_event ev = {.kind = TRANSPORT_EV_RECV,
				      .conn = c,
				      .ctx = c->ctx,
				      .data = payload,
				      .len = h->len};
		return transport__emit(c->t, &ev);
	}
	case T_RREQ:
		serve_read(c, h);
		return 0;
	case T_WRITE: {
		sio_hdr r = {.op = T_WACK, .id = h->id, .status = (uint16_t)-l->wstatus};
		c->t->stats.writes_served += l->wstatus == 0;
		return sio_send(sc, &r, NULL, true, SIO_NO_COOKIE);
	}
	case T_RRESP:
	case T_WACK:
		if (h->status)
			fail_op(c, h->id, code_of(h->status));
		else
			transport__op_done(c, h->id, 0);
		return 0;
	default:
		return PRISM_E_PROTO;
	}
}

/* Sends complete once written to the socket: a copied one's report also stands for the
 * copied sends before it; one sent in place completes when the kernel lets go of it. */
static void link_sent(sio_conn *sc, uint64_t seq)
{
	transport_conn *c = sio_ctx(sc);
	tcp_link *l = c->be;
	if (seq < c->op_head || seq >= c->op_tail)
		return;
	if (transport__op_at(c, seq)->inplace) {
		transport__op_done(c, seq, 0);
		return;
	}
	uint64_t s = l->sent_upto > c->op_head ? l->sent_upto : c->op_head;
	for (; s <= seq; s++) {
		transport__op *op = transport__op_at(c, s);
		if (op->kind == TOP_SEND && !op->inplace)
			transport__op_done(c, s, 0);
	}
	l->sent_upto = seq + 1;
}

static int tcp_init(transport *t)
{
	sio_cbs cbs = {.accepted = link_accepted,
		       .up = link_up,
		       .down = link_down,
		       .begin = link_begin,
		       .packet = link_packet,
		       .sent = link_sent,
		       .arg = t};
	sio *s;
	int rc = sio_create(t, &cbs, &s);
	if (rc)
		return rc;
	t->be = s;
	return 0;
}

static void tcp_fini(transport *t)
{
	for (transport_conn *c = t->conns; c; c = c->next) {
		tcp_link *l = c->be;
		if (l)
			l->sc = NULL;
	}
	sio_destroy(sio_of(t));
	t->be = NULL;
}

static int tcp_listen(transport *t, const struct sockaddr_in *sa, uint16_t *port)
{
	return sio_listen(sio_of(t), sa, port);
}

static int tcp_connect(transport *t, transport_conn *c, const struct sockaddr_in *sa)
{
	tcp_link *l = prism_calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	int rc = sio_connect(sio_of(t), sa, c, &l->sc);
	if (rc) {
		prism_free(l);
		return rc;
	}
	c->be = l;
	return 0;
}

static int tcp_post(transport_conn *c, transport__op *op)
{
	tcp_link *l = c->be;
	if (!l->sc)
		return PRISM_E_CLOSED;
	sio_hdr h = {.id = op->seq, .addr = op->raddr, .key = op->rkey};
	switch (op->kind) {
	case TOP_SEND: {
		h.op = T_MSG;
		h.len = (uint32_t)op->len;
		op->inplace = op->len > TRANSPORT_INLINE_MAX;
		return sio_send(l->sc, &h, op->local, !op->inplace, op->seq);
	}
	case TOP_READ:
		h.op = T_RREQ;
		h.aux = (uint32_t)op->len;
		return sio_send(l->sc, &h, NULL, true, SIO_NO_COOKIE);
	default:
		h.op = T_WRITE;
		h.len = (uint32_t)op->len;
		return sio_send(l->sc, &h, op->local, op->len <= TRANSPORT_INLINE_MAX,
				SIO_NO_COOKIE);
	}
}

static void tcp_close(transport_conn *c)
{
	tcp_link *l = c->be;
	if (l->sc) {
		sio_close(l->sc);
		l->sc = NULL;
	}
	transport__conn_down(c, 0);
}

static void tcp_conn_free(transport_conn *c)
{
	tcp_link *l = c->be;
	if (l && l->sc)
		sio_close(l->sc);
	prism_free(l);
}

static int tcp_progress(transport *t, int64_t timeout_ns)
{
	return sio_progress(sio_of(t), timeout_ns);
}

static int tcp_flush(transport *t)
{
	return sio_flush(sio_of(t));
}

static int tcp_fd(const transport *t)
{
	return sio_fd(sio_of(t));
}

static int tcp_reg(transport *t, transport_mr *mr)
{
	mr->rkey = transport__new_key(t);
	mr->lkey = mr->rkey;
	return 0;
}

static void tcp_dereg(transport *t, transport_mr *mr)
{
	(void)t;
	(void)mr;
}

const transport__ops transport__tcp_ops = {
	.name = "tcp",
	.init = tcp_init,
	.fini = tcp_fini,
	.listen = tcp_listen,
	.connect = tcp_connect,
	.post = tcp_post,
	.close = tcp_close,
	.conn_free = tcp_conn_free,
	.progress = tcp_progress,
	.flush = tcp_flush,
	.fd = tcp_fd,
	.reg = tcp_reg,
	.dereg = tcp_dereg,
};
