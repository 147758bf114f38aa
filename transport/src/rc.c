/* rc.c — the verbs and softverbs backends: the transport interface over RC queue pairs
 * (rdev.h), the same code for a real NIC and for the emulated one.
 *
 * Messages.  Each side keeps RC_RECV_DEPTH + RC_CTRL receives of RC_BUF bytes posted.
 * A message of at most RC_EAGER_MAX bytes is copied into a registered slot and SENT
 * (eager); a larger one is announced by an RTS carrying its address and a key, the
 * receiver READs it into its own registered buffer and answers FIN, and the sender's
 * send completes (rendezvous: one copy, by the NIC).  Credits keep a receive posted for
 * every SEND: a sender spends one per message and gets them back in the header of every
 * message the peer sends, or in an explicit CREDIT once half are owed.  CREDIT messages
 * have their own small reserve (RC_CTRL), returned the same way, so neither side can
 * stall the other.
 *
 * Authentication.  The first SENDs are the token handshake of auth.c; the queue pair
 * is granted remote READ/WRITE only after the peer's proof checked out.
 *
 * One-sided READ and WRITE are posted as they are; their local buffers lie in regions
 * registered with the device.  Completions map back to the transport's operations.
 */
#include <poll.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/wire.h"
#include "rdev.h"

#define LOGM "transport"

/* 8 KiB buffers: one page pair, so a small message and its header fit one receive. */
#define RC_BUF 8192u
#define RC_HDR 32u
#define RC_EAGER_MAX (RC_BUF - RC_HDR)
#define RC_RECV_DEPTH 32u
#define RC_CTRL 4u
#define RC_POSTED (RC_RECV_DEPTH + RC_CTRL)
/* 256 send slots per endpoint (2 MiB), shared by its links. */
#define RC_SLOTS 256u
#define RC_SEND_DEPTH 256u
/* Rendezvous sends in flight per link; later ones wait their turn. */
#define RC_RNDV_MAX 32u
#define RC_INQ 128u
/* 4 rendezvous READs in flight per link: enough to keep a 1 MiB stream busy. */
#define RC_RNDV_PIPE 4u
enum { R_WAIT = 0, R_READING, R_DONE };
#define RC_FINQ 64u

enum { RC_HELLO = 1, RC_PROOF, RC_EAGER, RC_RTS, RC_FIN, RC_CREDIT };
enum { K_SLOT = 1, K_OP = 2, K_RNDV = 3, K_RECV = 4 };
#define NO_SEQ UINT64_MAX

static uint64_t wid(unsigned kind, uint64_t v)
{
	return (uint64_t)kind << 56 | v;
}

typedef struct rc_hdr {
	uint8_t type;
	uint16_t credits; /* normal receives returned */
	uint8_t ctrl;     /* control receives returned */
	uint32_t key;
	uint32_t len;
	uint64_t id;
	uint64_t addr;
} rc_hdr;

typedef struct rc_ep rc_ep;

typedef struct rc_link {
	rc_ep *ep;
	transport_conn *c; /* NULL until an inbound link proved itself */
	rdev_qp *qp;
	bool inbound, authed, dead;
	auth_state auth;
	uint64_t deadline;
	uint8_t *rbufs;
	rdev_mr rmr;
	uint8_t rtype[RC_POSTED]; /* the type each consumed receive held */
	int credits, ctrl_avail;
	unsigned to_return, ctrl_to_return;
	uint16_t repost[RC_POSTED];
	unsigned nrepost;
	uint64_t post_seq; /* the next transport operation to start */
	unsigned sq_used;
	/* Arrived and not yet delivered, in order. */
	struct rc_in {
		uint8_t type;
		uint8_t rstate; /* RTS: R_WAIT, then R_READING in rndv[slot], then R_DONE */
		uint8_t slot;
		uint16_t idx;
		uint32_t len, rkey;
		uint64_t id, addr;
	} inq[RC_INQ];
	uint32_t in_head, in_tail;
	/* Rendezvous READs, RC_RNDV_PIPE at once so the next message's READ overlaps the
	 * current one's; a buffer handed over stays busy until the next poll. */
	struct rc_rndv {
		uint8_t *buf;
		size_t cap;
		rdev_mr mr;
		bool busy;
	} rndv[RC_RNDV_PIPE];
	bool rndv_handed;
	/* Our rendezvous sends waiting for FIN. */
	struct {
		uint64_t seq;
		rdev_mr mr;
	} fin_wait[RC_RNDV_MAX];
	uint32_t fw_head, fw_tail;
	/* FINs we owe, waiting for a credit. */
	uint64_t fins[RC_FINQ];
	uint32_t fin_head, fin_tail;
	int fail;
	struct rc_link *prev, *next;
} rc_link;

struct rc_ep {
	transport *t;
	const rdev_ops *dev;
	rdev *d;
	uint8_t *slots;
	rdev_mr slots_mr;
	rc_link *slot_owner[RC_SLOTS];
	uint64_t slot_seq[RC_SLOTS];
	uint16_t free_slots[RC_SLOTS];
	unsigned nfree;
	rc_link *links;
	unsigned nunauthed;
};

static void pump(rc_link *l);
static void link_fail(rc_link *l, int status);

/* ---- headers and slots ------------------------------------------------------------- */

static void hdr_put(const rc_hdr *h, uint8_t *b)
{
	b[0] = h->type;
	b[1] = h->ctrl;
	prism_le16_store(b + 2, h->credits);
	prism_le32_store(b + 4, h->key);
	prism_le32_store(b + 8, h->len);
	prism_le32_store(b + 12, 0);
	prism_le64_store(b + 16, h->id);
	prism_le64_store(b + 24, h->addr);
}

static void hdr_get(const uint8_t *b, rc_hdr *h)
{
	h->type = b[0];
	h->ctrl = b[1];
	h->credits = prism_le16_load(b + 2);
	h->key = prism_le32_load(b + 4);
	h->len = prism_le32_load(b + 8);
	h->id = prism_le64_load(b + 16);
	h->addr = prism_le64_load(b + 24);
}

static int slot_get(rc_ep *ep, rc_link *l, uint64_t seq)
{
	if (!ep->nfree)
		return -1;
	int s = ep->free_slots[--ep->nfree];
	ep->slot_owner[s] = l;
	ep->slot_seq[s] = seq;
	return s;
}

static void slot_put(rc_ep *ep, unsigned s)
{
	ep->slot_owner[s] = NULL;
	ep->free_slots[ep->nfree++] = (uint16_t)s;
}

/* SEND a message of type h->type with len payload bytes from a slot.  ctrl: a CREDIT,
 * drawn on the control reserve.  Returns 0, or 1 when out of credits/slots/queue (try
 * again later), or < 0. */
static int send_msg(rc_link *l, rc_hdr *h, const void *payload, uint64_t seq, bool ctrl)
{
	rc_ep *ep = l->ep;
	if ((ctrl ? l->ctrl_avail : l->credits) < 1 || l->sq_used >= RC_SEND_DEPTH ||
	    !ep->nfree)
		return 1;
	int s = slot_get(ep, l, seq);
	uint8_t *b = ep->slots + (size_t)s * RC_BUF;
	h->credits = (uint16_t)l->to_return;
	h->ctrl = (uint8_t)l->ctrl_to_return;
	hdr_put(h, b);
	if (h->len && payload)
		memcpy(b + RC_HDR, payload, h->len);
	uint32_t n = RC_HDR + (payload ? h->len : 0);
	rdev_wr wr = {.op = RDEV_SEND,
		      .wr_id = wid(K_SLOT, (uint64_t)s),
		      .local = b,
		      .len = n,
		      .lkey = ep->slots_mr.lkey,
		      .signaled = true,
		      .inline_data = n <= 256};
	int rc = ep->dev->post_send(l->qp, &wr);
	if (rc) {
		slot_put(ep, (unsigned)s);
		return rc;
	}
	l->to_return = 0;
	l->ctrl_to_return = 0;
	l->sq_used++;
	if (ctrl)
		l->ctrl_avail--;
	else
		l->credits--;
	return 0;
}

/* ---- receives ---------------------------------------------------------------------- */

static int post_recv(rc_link *l, unsigned idx)
{
	return l->ep->dev->post_recv(l->qp, l->rbufs + (size_t)idx * RC_BUF, RC_BUF,
				     l->rmr.lkey, wid(K_RECV, idx));
}

/* Give back the receives whose messages were delivered by the last poll. */
static void repost(rc_link *l)
{
	for (unsigned i = 0; i < l->nrepost; i++) {
		unsigned idx = l->repost[i];
		if (post_recv(l, idx) != 0) {
			link_fail(l, PRISM_E_PEER_GONE);
			return;
		}
		if (l->rtype[idx] == RC_CREDIT)
			l->ctrl_to_return++;
		else
			l->to_return++;
	}
	l->nrepost = 0;
	if (l->rndv_handed) {
		l->rndv_handed = false;
		for (unsigned i = 0; i < RC_RNDV_PIPE; i++)
			l->rndv[i].busy = false;
		for (uint32_t i = l->in_head; i != l->in_tail; i++) {
			const struct rc_in *in = &l->inq[i % RC_INQ];
			if (in->type == RC_RTS && in->rstate != R_WAIT)
				l->rndv[in->slot].busy = true;
		}
	}
	if (l->to_return >= RC_RECV_DEPTH / 2 || l->ctrl_to_return >= RC_CTRL / 2) {
		rc_hdr h = {.type = RC_CREDIT};
		send_msg(l, &h, NULL, NO_SEQ, true);
	}
}

static void release_recv(rc_link *l, unsigned idx)
{
	l->repost[l->nrepost++] = (uint16_t)idx;
}

/* ---- delivery in order ------------------------------------------------------------- */

static void rndv_drop(rc_ep *ep, struct rc_rndv *r)
{
	if (!r->buf)
		return;
	ep->dev->dereg_mr(ep->d, &r->mr);
	prism_free(r->buf);
	r->buf = NULL;
	r->cap = 0;
}

/* A free rendezvous buffer of at least len bytes, registered; -1 when none is free. */
static int rndv_slot(rc_link *l, size_t len, int *err)
{
	rc_ep *ep = l->ep;
	*err = 0;
	for (unsigned i = 0; i < RC_RNDV_PIPE; i++) {
		struct rc_rndv *r = &l->rndv[i];
		if (r->busy)
			continue;
		if (r->cap < len) {
			rndv_drop(ep, r);
			size_t cap = (len + 4095) & ~(size_t)4095;
			r->buf = prism_aligned_alloc(4096, cap);
			if (!r->buf) {
				*err = -ENOMEM;
				return -1;
			}
			*err = ep->dev->reg_mr(ep->d, r->buf, cap, 0, &r->mr);
			if (*err) {
				prism_free(r->buf);
				r->buf = NULL;
				return -1;
			}
			r->cap = cap;
		}
		r->busy = true;
		return (int)i;
	}
	return -1;
}

/* Post the READs of waiting RTSs while buffers are free. */
static void rndv_start(rc_link *l)
{
	for (uint32_t i = l->in_head; i != l->in_tail && !l->dead; i++) {
		struct rc_in *in = &l->inq[i % RC_INQ];
		if (in->type != RC_RTS || in->rstate != R_WAIT)
			continue;
		if (l->sq_used >= RC_SEND_DEPTH)
			return;
		int err, slot = rndv_slot(l, in->len, &err);
		if (slot < 0) {
			if (err)
				link_fail(l, err);
			return;
		}
		struct rc_rndv *r = &l->rndv[slot];
		rdev_wr wr = {.op = RDEV_READ,
			      .wr_id = wid(K_RNDV, i),
			      .local = r->buf,
			      .len = in->len,
			      .lkey = r->mr.lkey,
			      .remote_addr = in->addr,
			      .rkey = in->rkey,
			      .signaled = true};
		int rc = l->ep->dev->post_send(l->qp, &wr);
		if (rc) {
			link_fail(l, rc);
			return;
		}
		l->sq_used++;
		in->slot = (uint8_t)slot;
		in->rstate = R_READING;
	}
}

static void emit_recv(rc_link *l, const void *data, size_t len)
{
	transport *t = l->ep->t;
	t->stats.msgs_recv++;
	t->stats.bytes_recv += len;
	transport_event ev = {.kind = TRANSPORT_EV_RECV,
			      .conn = l->c,
			      .ctx = l->c->ctx,
			      .data = data,
			      .len = len};
	transport__emit(t, &ev);
}

static void deliver(rc_link *l)
{
	while (l->in_head != l->in_tail && !l->dead) {
		struct rc_in *in = &l->inq[l->in_head % RC_INQ];
		if (in->type == RC_EAGER) {
			emit_recv(l, l->rbufs + (size_t)in->idx * RC_BUF + RC_HDR, in->len);
			release_recv(l, in->idx);
			l->in_head++;
			continue;
		}
		/* An RTS: handed over once its READ is done. */
		if (in->rstate != R_DONE)
			break;
		emit_recv(l, l->rndv[in->slot].buf, in->len);
		l->rndv_handed = true;
		if (l->fin_tail - l->fin_head >= RC_FINQ) {
			link_fail(l, PRISM_E_PROTO);
			return;
		}
		l->fins[l->fin_tail++ % RC_FINQ] = in->id;
		l->in_head++;
	}
	rndv_start(l);
}

static void rndv_done(rc_link *l, uint32_t i, int status)
{
	if (status) {
		link_fail(l, status);
		return;
	}
	l->inq[i % RC_INQ].rstate = R_DONE;
	deliver(l);
	pump(l);
}

/* ---- the handshake ----------------------------------------------------------------- */

static void send_hello(rc_link *l)
{
	uint8_t hello[AUTH_HELLO_BYTES];
	auth__hello(&l->auth, l->ep->t->backend, hello);
	rc_hdr h = {.type = RC_HELLO, .len = sizeof(hello)};
	if (send_msg(l, &h, hello, NO_SEQ, false) != 0)
		link_fail(l, PRISM_E_PEER_GONE);
}

static void authed(rc_link *l)
{
	rc_ep *ep = l->ep;
	l->authed = true;
	ep->nunauthed--;
	int rc = ep->dev->grant(l->qp);
	if (rc) {
		link_fail(l, rc);
		return;
	}
	if (l->inbound) {
		struct sockaddr_in peer;
		ep->dev->peer(l->qp, &peer);
		if (transport__conn_new(ep->t, false, &peer, &l->c) != 0) {
			link_fail(l, -ENOSPC);
			return;
		}
		l->c->be = l;
	}
	transport__conn_up(l->c);
}

static int take_auth(rc_link *l, const rc_hdr *h, const uint8_t *p)
{
	rc_ep *ep = l->ep;
	if (h->type == RC_HELLO && h->len == AUTH_HELLO_BYTES && !l->auth.got_hello) {
		int rc = auth__take_hello(&l->auth, ep->t->backend, p);
		if (rc)
			return rc;
		uint8_t proof[AUTH_PROOF_BYTES];
		auth__proof(&l->auth, ep->t->opts.token, proof);
		rc_hdr r = {.type = RC_PROOF, .len = sizeof(proof)};
		return send_msg(l, &r, proof, NO_SEQ, false) ? PRISM_E_PEER_GONE : 0;
	}
	if (h->type == RC_PROOF && h->len == AUTH_PROOF_BYTES && l->auth.got_hello) {
		if (auth__check_proof(&l->auth, ep->t->opts.token, p) != 0) {
			PRISM_LOG(PRISM_LOG_WARN, LOGM,
				  "link failed authentication: wrong cluster token");
			return PRISM_E_AUTH;
		}
		authed(l);
		return 0;
	}
	return PRISM_E_PROTO;
}

/* ---- receive completions ----------------------------------------------------------- */

static int take_fin(rc_link *l, uint64_t id)
{
	if (l->fw_head == l->fw_tail || l->fin_wait[l->fw_head % RC_RNDV_MAX].seq != id)
		return PRISM_E_PROTO;
	rc_ep *ep = l->ep;
	ep->dev->dereg_mr(ep->d, &l->fin_wait[l->fw_head % RC_RNDV_MAX].mr);
	l->fw_head++;
	transport__op_done(l->c, id, 0);
	return 0;
}

static int on_recv(rc_link *l, unsigned idx, uint32_t n)
{
	if (n < RC_HDR)
		return PRISM_E_PROTO;
	rc_hdr h;
	const uint8_t *b = l->rbufs + (size_t)idx * RC_BUF;
	hdr_get(b, &h);
	if (h.credits > RC_RECV_DEPTH || h.ctrl > RC_CTRL)
		return PRISM_E_PROTO;
	l->credits += h.credits;
	l->ctrl_avail += h.ctrl;
	l->rtype[idx] = h.type;
	bool payload = h.type == RC_HELLO || h.type == RC_PROOF || h.type == RC_EAGER;
	if ((payload && h.len != n - RC_HDR) || (!payload && n != RC_HDR))
		return PRISM_E_PROTO;
	if (!l->authed) {
		int rc = take_auth(l, &h, b + RC_HDR);
		release_recv(l, idx);
		return rc;
	}
	switch (h.type) {
	case RC_EAGER:
	case RC_RTS:
		if (l->in_tail - l->in_head >= RC_INQ)
			return PRISM_E_PROTO;
		if (h.type == RC_RTS && (h.len <= RC_EAGER_MAX || h.len > TRANSPORT_MAX_MSG))
			return PRISM_E_PROTO;
		l->inq[l->in_tail++ % RC_INQ] = (struct rc_in){.type = h.type,
							       .idx = (uint16_t)idx,
							       .len = h.len,
							       .rkey = h.key,
							       .id = h.id,
							       .addr = h.addr};
		if (h.type == RC_RTS)
			release_recv(l, idx);
		deliver(l);
		return 0;
	case RC_FIN:
		release_recv(l, idx);
		return take_fin(l, h.id);
	case RC_CREDIT:
		release_recv(l, idx);
		return 0;
	default:
		return PRISM_E_PROTO;
	}
}

/* ---- starting operations ----------------------------------------------------------- */

/* Start one operation; 1 when it must wait for credits or queue room. */
static int start_op(rc_link *l, transport__op *op)
{
	rc_ep *ep = l->ep;
	if (l->sq_used >= RC_SEND_DEPTH)
		return 1;
	if (op->kind == TOP_SEND && op->len <= RC_EAGER_MAX) {
		rc_hdr h = {.type = RC_EAGER, .len = (uint32_t)op->len};
		return send_msg(l, &h, op->local, op->seq, false);
	}
	if (op->kind == TOP_SEND) {
		if (l->fw_tail - l->fw_head >= RC_RNDV_MAX || l->credits < 1 || !ep->nfree)
			return 1;
		rdev_mr mr;
		int rc = ep->dev->reg_mr(ep->d, op->local, op->len, TRANSPORT_REMOTE_READ, &mr);
		if (rc)
			return rc;
		rc_hdr h = {.type = RC_RTS,
			    .len = (uint32_t)op->len,
			    .key = mr.rkey,
			    .id = op->seq,
			    .addr = (uintptr_t)op->local};
		rc = send_msg(l, &h, NULL, NO_SEQ, false);
		if (rc) {
			ep->dev->dereg_mr(ep->d, &mr);
			return rc;
		}
		l->fin_wait[l->fw_tail % RC_RNDV_MAX].seq = op->seq;
		l->fin_wait[l->fw_tail++ % RC_RNDV_MAX].mr = mr;
		return 0;
	}
	rdev_wr wr = {.op = op->kind == TOP_READ ? RDEV_READ : RDEV_WRITE,
		      .wr_id = wid(K_OP, op->seq),
		      .local = op->local,
		      .len = (uint32_t)op->len,
		      .lkey = op->lkey,
		      .remote_addr = op->raddr,
		      .rkey = op->rkey,
		      .signaled = true};
	int rc = ep->dev->post_send(l->qp, &wr);
	if (rc == 0)
		l->sq_used++;
	return rc;
}

/* Start what can start: FINs owed first, then operations in order. */
static void pump(rc_link *l)
{
	if (l->dead || !l->authed)
		return;
	while (l->fin_head != l->fin_tail) {
		rc_hdr h = {.type = RC_FIN, .id = l->fins[l->fin_head % RC_FINQ]};
		int rc = send_msg(l, &h, NULL, NO_SEQ, false);
		if (rc < 0)
			return link_fail(l, rc);
		if (rc)
			return;
		l->fin_head++;
	}
	transport_conn *c = l->c;
	while (l->post_seq < c->op_tail) {
		transport__op *op = transport__op_at(c, l->post_seq);
		int rc = start_op(l, op);
		if (rc < 0)
			return link_fail(l, rc);
		if (rc)
			return;
		l->post_seq++;
	}
}

/* ---- links ------------------------------------------------------------------------- */

static rc_link *link_new(rc_ep *ep, bool inbound)
{
	rc_link *l = prism_calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->rbufs = prism_aligned_alloc(4096, (size_t)RC_POSTED * RC_BUF);
	if (!l->rbufs ||
	    ep->dev->reg_mr(ep->d, l->rbufs, (size_t)RC_POSTED * RC_BUF, 0, &l->rmr) != 0) {
		prism_free(l->rbufs);
		prism_free(l);
		return NULL;
	}
	l->ep = ep;
	l->inbound = inbound;
	l->credits = RC_RECV_DEPTH;
	l->ctrl_avail = RC_CTRL;
	l->deadline = prism_now_ns() + ep->t->opts.handshake_ns;
	auth__init(&l->auth, inbound);
	l->next = ep->links;
	if (ep->links)
		ep->links->prev = l;
	ep->links = l;
	ep->nunauthed++;
	return l;
}

static void link_free(rc_link *l)
{
	rc_ep *ep = l->ep;
	if (l->qp)
		ep->dev->destroy_qp(l->qp);
	for (unsigned s = 0; s < RC_SLOTS; s++)
		if (ep->slot_owner[s] == l)
			slot_put(ep, s);
	for (; l->fw_head != l->fw_tail; l->fw_head++)
		ep->dev->dereg_mr(ep->d, &l->fin_wait[l->fw_head % RC_RNDV_MAX].mr);
	for (unsigned i = 0; i < RC_RNDV_PIPE; i++)
		rndv_drop(ep, &l->rndv[i]);
	ep->dev->dereg_mr(ep->d, &l->rmr);
	prism_free(l->rbufs);
	if (!l->authed)
		ep->nunauthed--;
	if (l->prev)
		l->prev->next = l->next;
	else
		ep->links = l->next;
	if (l->next)
		l->next->prev = l->prev;
	if (l->c)
		l->c->be = NULL;
	prism_free(l);
}

/* The link is over: tell the transport (if it knows the link); the queue pair goes at
 * once (no event names it again), the rest at the next progress, since callers up the
 * stack may still hold l. */
static void link_fail(rc_link *l, int status)
{
	if (l->dead)
		return;
	l->dead = true;
	transport_conn *c = l->c;
	if (l->qp) {
		l->ep->dev->destroy_qp(l->qp);
		l->qp = NULL;
	}
	if (!c && l->inbound) {
		PRISM_LOG(PRISM_LOG_WARN, LOGM,
			  "inbound link dropped before it proved the token: %s",
			  prism_strerror(status));
		l->ep->t->stats.auth_refused++;
	} else if (status == PRISM_E_PROTO) {
		l->ep->t->stats.protocol_errors++;
		PRISM_LOG(PRISM_LOG_WARN, LOGM, "link dropped: malformed message");
	}
	if (status == PRISM_E_AUTH)
		l->ep->t->stats.auth_refused++;
	if (c) {
		l->c = NULL;
		c->be = NULL;
		transport__conn_down(c, status);
	}
}

static void on_event(rc_ep *ep, const rdev_event *ev)
{
	rc_link *l = ev->qp_ctx;
	if (l && l->dead)
		return;
	if (ev->kind == RDEV_EV_ACCEPTED) {
		l = link_new(ep, true);
		if (!l) {
			ep->dev->destroy_qp(ev->qp);
			return;
		}
		l->qp = ev->qp;
		ep->dev->set_ctx(ev->qp, l);
	}
	if (!l)
		return;
	switch (ev->kind) {
	case RDEV_EV_ACCEPTED:
	case RDEV_EV_CONNECTED:
		if (ev->status)
			return link_fail(l, ev->status);
		for (unsigned i = 0; i < RC_POSTED; i++)
			if (post_recv(l, i) != 0)
				return link_fail(l, PRISM_E_PEER_GONE);
		return send_hello(l);
	case RDEV_EV_DOWN:
		return link_fail(l, l->fail ? l->fail : ev->status);
	case RDEV_EV_WC:
		break;
	}
	unsigned kind = (unsigned)(ev->wr_id >> 56);
	uint64_t v = ev->wr_id & ((1ull << 56) - 1);
	if (ev->status && !l->fail && ev->status != PRISM_E_FLUSHED)
		l->fail = ev->status;
	int rc = 0;
	switch (kind) {
	case K_RECV:
		if (ev->status == 0)
			rc = on_recv(l, (unsigned)v, ev->byte_len);
		break;
	case K_SLOT:
		l->sq_used--;
		if (ep->slot_seq[v] != NO_SEQ && l->c)
			transport__op_done(l->c, ep->slot_seq[v], ev->status);
		slot_put(ep, (unsigned)v);
		break;
	case K_OP:
		l->sq_used--;
		transport__op_done(l->c, v, ev->status);
		break;
	case K_RNDV:
		l->sq_used--;
		rndv_done(l, (uint32_t)v, ev->status);
		return;
	}
	if (rc < 0)
		return link_fail(l, rc);
	if (!l->dead)
		pump(l);
}

/* ---- the backend table ------------------------------------------------------------- */

static int rc_init_dev(transport *t, const rdev_ops *dev)
{
	rc_ep *ep = prism_calloc(1, sizeof(*ep));
	if (!ep)
		return -ENOMEM;
	ep->t = t;
	ep->dev = dev;
	int rc = dev->open(t, RC_SEND_DEPTH, RC_POSTED, &ep->d);
	if (rc)
		goto fail_open;
	ep->slots = prism_aligned_alloc(4096, (size_t)RC_SLOTS * RC_BUF);
	if (!ep->slots) {
		rc = -ENOMEM;
		goto fail_slots;
	}
	rc = dev->reg_mr(ep->d, ep->slots, (size_t)RC_SLOTS * RC_BUF, 0, &ep->slots_mr);
	if (rc)
		goto fail_reg;
	for (unsigned s = 0; s < RC_SLOTS; s++)
		ep->free_slots[ep->nfree++] = (uint16_t)(RC_SLOTS - 1 - s);
	t->be = ep;
	return 0;
fail_reg:
	prism_free(ep->slots);
fail_slots:
	dev->close(ep->d);
fail_open:
	prism_free(ep);
	return rc;
}

static int soft_init(transport *t)
{
	return rc_init_dev(t, &rdev__soft_ops);
}

static int verbs_init(transport *t)
{
	return rc_init_dev(t, &rdev__verbs_ops);
}

static void rc_fini(transport *t)
{
	rc_ep *ep = t->be;
	while (ep->links)
		link_free(ep->links);
	ep->dev->dereg_mr(ep->d, &ep->slots_mr);
	ep->dev->close(ep->d);
	prism_free(ep->slots);
	prism_free(ep);
	t->be = NULL;
}

static int rc_listen(transport *t, const struct sockaddr_in *sa, uint16_t *port)
{
	rc_ep *ep = t->be;
	return ep->dev->listen(ep->d, sa, port);
}

static int rc_connect(transport *t, transport_conn *c, const struct sockaddr_in *sa)
{
	rc_ep *ep = t->be;
	rc_link *l = link_new(ep, false);
	if (!l)
		return -ENOMEM;
	int rc = ep->dev->connect(ep->d, sa, l, &l->qp);
	if (rc) {
		link_free(l);
		return rc;
	}
	l->c = c;
	c->be = l;
	return 0;
}

static int rc_post(transport_conn *c, transport__op *op)
{
	rc_link *l = c->be;
	if (!l || l->dead)
		return PRISM_E_CLOSED;
	pump(l);
	/* A small send that could not start yet is copied: the caller may reuse its buffer. */
	if (l->post_seq <= op->seq && op->kind == TOP_SEND && op->len &&
	    op->len <= TRANSPORT_INLINE_MAX && !l->dead) {
		op->copy = prism_malloc(op->len);
		if (!op->copy)
			return -ENOMEM;
		memcpy(op->copy, op->local, op->len);
		op->local = op->copy;
	}
	return 0;
}

static void rc_close(transport_conn *c)
{
	rc_link *l = c->be;
	c->be = NULL;
	if (l) {
		l->c = NULL;
		link_free(l);
	}
	transport__conn_down(c, 0);
}

static void rc_conn_free(transport_conn *c)
{
	rc_link *l = c->be;
	if (l) {
		l->c = NULL;
		link_free(l);
	}
}

static void housekeeping(rc_ep *ep)
{
	uint64_t now = ep->nunauthed ? prism_now_ns() : 0;
	for (rc_link *l = ep->links, *nx; l; l = nx) {
		nx = l->next;
		if (l->dead) {
			link_free(l);
			continue;
		}
		if (l->nrepost || l->rndv_handed) {
			repost(l);
			if (!l->dead) {
				deliver(l);
				pump(l);
			}
		} else if (!l->authed && now > l->deadline) {
			link_fail(l, PRISM_E_TIMEOUT);
		}
	}
}

static int rc_progress(transport *t, int64_t timeout_ns)
{
	rc_ep *ep = t->be;
	housekeeping(ep);
	rdev_event evs[64];
	int n = ep->dev->poll(ep->d, evs, 64);
	if (n == 0 && timeout_ns != 0 && !t->evq.len) {
		int armed = ep->dev->arm(ep->d);
		if (armed < 0)
			return armed;
		if (armed == 0) {
			int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
			if (ep->nunauthed && (ms < 0 || ms > 1000))
				ms = 1000;
			struct pollfd p = {.fd = ep->dev->fd(ep->d), .events = POLLIN};
			poll(&p, 1, ms);
		}
		n = ep->dev->poll(ep->d, evs, 64);
	}
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++)
		on_event(ep, &evs[i]);
	return 0;
}

static int rc_flush(transport *t)
{
	rc_ep *ep = t->be;
	return ep->dev->flush(ep->d);
}

static int rc_fd(const transport *t)
{
	const rc_ep *ep = t->be;
	return ep->dev->fd(ep->d);
}

static int rc_reg(transport *t, transport_mr *mr)
{
	rc_ep *ep = t->be;
	rdev_mr *m = prism_calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	int rc = ep->dev->reg_mr(ep->d, mr->addr, mr->len, mr->access, m);
	if (rc) {
		prism_free(m);
		return rc;
	}
	mr->be = m;
	mr->lkey = m->lkey;
	mr->rkey = m->rkey;
	return 0;
}

static void rc_dereg(transport *t, transport_mr *mr)
{
	rc_ep *ep = t->be;
	if (ep && mr->be)
		ep->dev->dereg_mr(ep->d, mr->be);
	prism_free(mr->be);
}

#define RC_OPS(sym, nm, initfn)            \
	const transport__ops sym = {       \
		.name = nm,                \
		.init = initfn,            \
		.fini = rc_fini,           \
		.listen = rc_listen,       \
		.connect = rc_connect,     \
		.post = rc_post,           \
		.close = rc_close,         \
		.conn_free = rc_conn_free, \
		.progress = rc_progress,   \
		.flush = rc_flush,         \
		.fd = rc_fd,               \
		.reg = rc_reg,             \
		.dereg = rc_dereg,         \
	}

RC_OPS(transport__softverbs_ops, "softverbs", soft_init);
RC_OPS(transport__verbs_ops, "verbs", verbs_init);
