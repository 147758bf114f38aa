/* softverbs.c — an emulated RDMA NIC over TCP (the rdev table of rdev.h).
 *
 * It does in software what an RC queue pair does in the NIC, with the same rules: a
 * connection handshake carrying versioned private data; SENDs land in the receives the
 * peer posted (held, as a NIC's RNR retry would, when none is posted yet); READ and
 * WRITE are executed by the responder against its registered regions, only once the
 * queue pair was granted remote access; every request is answered (ACK, NAK with a
 * reason, or READ response) in order, so requests complete in posting order; the first
 * failure moves the queue pair to the error state and flushes everything after it.  The
 * packets ride sio links, without sio's own handshake: rc.c authenticates above, as it
 * must over a real NIC.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "base/wire.h"
#include "rdev.h"
#include "sio.h"

#define LOGM "softverbs"

enum {
	SV_CM_REQ = 1, /* key: magic, aux: version << 16 | private data length */
	SV_CM_REP = 2,
	SV_SEND = 3,      /* len: the bytes */
	SV_WRITE = 4,     /* addr, key, len */
	SV_READ_REQ = 5,  /* addr, key, aux: length */
	SV_READ_RESP = 6, /* status; len: the bytes */
	SV_ACK = 7,       /* status: 0 or a NAK's reason */
	/* Every packet but CM's carries in flags the number of SENDs and WRITEs it
	 * acknowledges before itself: ACKs ride on the next packet going back (the reply
	 * of a ping-pong, a READ response), and go alone only at the start of the next
	 * poll or before the device sleeps, as NICs coalesce them. */
};
#define SV_MAGIC 0x56535250u /* "PRSV" */
#define SV_VERSION 1u
#define SV_PRIV_LEN 16u

typedef struct sv_wqe {
	rdev_wr wr;
} sv_wqe;

typedef struct sv_rqe {
	void *buf;
	uint32_t len;
	uint64_t wr_id;
} sv_rqe;

/* A SEND that found no receive posted: kept until one is (the NIC's RNR retry). */
typedef struct sv_held {
	struct sv_held *next;
	uint32_t len;
	uint8_t data[];
} sv_held;

struct rdev_qp {
	rdev *d;
	sio_conn *sc;
	void *ctx;
	struct sockaddr_in peer;
	bool passive, established, granted, error;
	uint32_t acks_owed; /* SENDs and WRITEs received and not yet acknowledged */
	int wstatus;        /* the WRITE being received */
	bool send_overflow;
	/* Send queue: posted, not yet answered; rings indexed by counters. */
	sv_wqe *sq;
	uint64_t sq_head, sq_tail;
	/* Receive queue. */
	sv_rqe *rq;
	uint64_t rq_head, rq_tail;
	sv_held *held, *held_tail;
	rdev_qp *next, *prev;
};

struct rdev {
	transport *t;
	sio *s;
	unsigned send_depth, recv_depth;
	prism_fifo evq;
	/* Regions: the NIC's translation table. */
	struct sv_mr {
		uint8_t *addr;
		size_t len;
		unsigned access;
		uint32_t key;
	} * mrs;
	uint32_t nmrs, mrs_cap;
	rdev_qp *qps;
	unsigned nowed; /* queue pairs owing acknowledgements */
};

static uint8_t take_acks(rdev_qp *qp);

/* ---- events ------------------------------------------------------------------------ */

static void emit(rdev *d, const rdev_event *ev)
{
	transport__fifo_push(&d->evq, ev);
}

static void wc(rdev_qp *qp, enum rdev_op op, uint64_t wr_id, int status, uint32_t len)
{
	rdev_event ev = {.kind = RDEV_EV_WC,
			 .qp = qp,
			 .qp_ctx = qp->ctx,
			 .op = op,
			 .wr_id = wr_id,
			 .status = status,
			 .byte_len = len};
	emit(qp->d, &ev);
}

/* ---- queue pairs ------------------------------------------------------------------- */

static rdev_qp *qp_new(rdev *d, bool passive)
{
	rdev_qp *qp = prism_calloc(1, sizeof(*qp));
	if (!qp)
		return NULL;
	qp->sq = prism_calloc(d->send_depth, sizeof(*qp->sq));
	qp->rq = prism_calloc(d->recv_depth, sizeof(*qp->rq));
	if (!qp->sq || !qp->rq) {
		prism_free(qp->sq);
		prism_free(qp->rq);
		prism_free(qp);
		return NULL;
	}
	qp->d = d;
	qp->passive = passive;
	qp->next = d->qps;
	if (d->qps)
		d->qps->prev = qp;
	d->qps = qp;
	return qp;
}

/* The error state: the head request fails with status, everything after is flushed,
 * then DOWN.  The link is closed; the peer sees it go. */
static void qp_fail(rdev_qp *qp, int status)
{
	if (qp->error)
		return;
	qp->error = true;
	rdev *d = qp->d;
	take_acks(qp);
	if (!qp->established) {
		rdev_event ev = {.kind = RDEV_EV_CONNECTED,
				 .qp = qp,
				 .qp_ctx = qp->ctx,
				 .status = status};
		if (!qp->passive)
			emit(d, &ev);
	} else {
		for (uint64_t i = qp->sq_head; i < qp->sq_tail; i++) {
			const rdev_wr *w = &qp->sq[i % d->send_depth].wr;
			wc(qp, w->op, w->wr_id, i == qp->sq_head ? status : PRISM_E_FLUSHED, 0);
		}
		for (uint64_t i = qp->rq_head; i < qp->rq_tail; i++)
			wc(qp, RDEV_RECV, qp->rq[i % d->recv_depth].wr_id, PRISM_E_FLUSHED, 0);
		rdev_event ev = {
			.kind = RDEV_EV_DOWN, .qp = qp, .qp_ctx = qp->ctx, .status = status};
		emit(d, &ev);
	}
	qp->sq_head = qp->sq_tail;
	qp->rq_head = qp->rq_tail;
	if (qp->sc) {
		sio_close(qp->sc);
		qp->sc = NULL;
	}
}

static void sv_destroy_qp(rdev_qp *qp)
{
	if (!qp)
		return;
	rdev *d = qp->d;
	take_acks(qp);
	if (qp->sc)
		sio_close(qp->sc);
	/* No event may name it any more. */
	uint32_t keep = 0;
	for (uint32_t i = 0; i < d->evq.len; i++) {
		rdev_event *e = prism_fifo_at(&d->evq, i);
		if (e->qp != qp)
			*(rdev_event *)prism_fifo_at(&d->evq, keep++) = *e;
	}
	d->evq.len = keep;
	while (qp->held) {
		sv_held *h = qp->held;
		qp->held = h->next;
		prism_free(h);
	}
	if (qp->prev)
		qp->prev->next = qp->next;
	else
		d->qps = qp->next;
	if (qp->next)
		qp->next->prev = qp->prev;
	prism_free(qp->sq);
	prism_free(qp->rq);
	prism_free(qp);
}

/* ---- the responder ----------------------------------------------------------------- */

static int mr_check(rdev_qp *qp, uint32_t key, uint64_t addr, uint64_t len, unsigned access,
		    uint8_t **p)
{
	*p = NULL;
	if (!qp->granted)
		return PRISM_E_BAD_KEY;
	rdev *d = qp->d;
	for (uint32_t i = 0; i < d->nmrs; i++) {
		struct sv_mr *m = &d->mrs[i];
		if (m->key != key)
			continue;
		if ((m->access & access) != access)
			return PRISM_E_BAD_KEY;
		uint64_t base = (uintptr_t)m->addr;
		if (addr < base || len > m->len || addr - base > m->len - len)
			return PRISM_E_OUT_OF_BOUNDS;
		*p = m->addr + (addr - base);
		return 0;
	}
	return PRISM_E_BAD_KEY;
}

/* The acknowledgements a packet about to go out carries. */
static uint8_t take_acks(rdev_qp *qp)
{
	uint8_t n = (uint8_t)qp->acks_owed;
	if (n)
		qp->d->nowed--;
	qp->acks_owed = 0;
	return n;
}

static void answer(rdev_qp *qp, uint8_t op, int status, const void *payload, uint32_t len)
{
	sio_hdr r = {.op = op, .status = (uint16_t)-status, .len = len, .flags = take_acks(qp)};
	if (sio_send(qp->sc, &r, payload, false, SIO_NO_COOKIE) != 0)
		qp_fail(qp, PRISM_E_PEER_GONE);
}

static void flush_acks(rdev_qp *qp)
{
	if (qp->acks_owed && qp->sc && !qp->error)
		answer(qp, SV_ACK, 0, NULL, 0);
}

static void ack(rdev_qp *qp)
{
	if (!qp->acks_owed++)
		qp->d->nowed++;
	if (qp->acks_owed == 255)
		flush_acks(qp);
}

static void flush_all_acks(rdev *d)
{
	for (rdev_qp *qp = d->qps; qp && d->nowed; qp = qp->next)
		flush_acks(qp);
}

/* A SEND's bytes are in a posted receive (dest) or were held. */
static void take_send(rdev_qp *qp, const sio_hdr *h, const uint8_t *payload)
{
	rdev *d = qp->d;
	if (qp->send_overflow) {
		qp->send_overflow = false;
		answer(qp, SV_ACK, PRISM_E_MSGSIZE, NULL, 0);
		return;
	}
	if (qp->rq_head < qp->rq_tail) {
		sv_rqe *r = &qp->rq[qp->rq_head++ % d->recv_depth];
		wc(qp, RDEV_RECV, r->wr_id, 0, h->len);
	} else {
		sv_held *hd = prism_malloc(sizeof(*hd) + h->len);
		if (!hd) {
			qp_fail(qp, -ENOMEM);
			return;
		}
		hd->next = NULL;
		hd->len = h->len;
		if (h->len)
			memcpy(hd->data, payload, h->len);
		if (qp->held_tail)
			qp->held_tail->next = hd;
		else
			qp->held = hd;
		qp->held_tail = hd;
	}
	ack(qp);
}

/* ---- the requester ----------------------------------------------------------------- */

/* An answer completes the oldest request. */
static void complete_head(rdev_qp *qp, uint8_t op, int status)
{
	rdev *d = qp->d;
	if (qp->sq_head == qp->sq_tail) {
		PRISM_LOG(PRISM_LOG_WARN, LOGM,
			  "answer with no request outstanding; dropping link");
		qp_fail(qp, PRISM_E_PROTO);
		return;
	}
	const rdev_wr *w = &qp->sq[qp->sq_head % d->send_depth].wr;
	bool is_read = w->op == RDEV_READ;
	if (is_read != (op == SV_READ_RESP)) {
		qp_fail(qp, PRISM_E_PROTO);
		return;
	}
	if (status) {
		qp_fail(qp, status);
		return;
	}
	if (w->signaled)
		wc(qp, w->op, w->wr_id, 0, w->len);
	qp->sq_head++;
}

static int sv_post_send(rdev_qp *qp, const rdev_wr *wr)
{
	rdev *d = qp->d;
	if (qp->error || !qp->sc)
		return PRISM_E_CLOSED;
	if (qp->sq_tail - qp->sq_head >= d->send_depth)
		return -ENOSPC;
	sio_hdr h = {.addr = wr->remote_addr, .key = wr->rkey, .flags = take_acks(qp)};
	const void *payload = NULL;
	switch (wr->op) {
	case RDEV_SEND:
		h.op = SV_SEND;
		h.len = wr->len;
		payload = wr->local;
		break;
	case RDEV_WRITE:
		h.op = SV_WRITE;
		h.len = wr->len;
		payload = wr->local;
		break;
	case RDEV_READ:
		h.op = SV_READ_REQ;
		h.aux = wr->len;
		break;
	default:
		return -EINVAL;
	}
	/* Payloads go in place; the WR's buffer stays the caller's until it completes, and
	 * the answer comes only after every byte was received. */
	int rc = sio_send(qp->sc, &h, payload, wr->inline_data, SIO_NO_COOKIE);
	if (rc)
		return rc;
	qp->sq[qp->sq_tail++ % d->send_depth].wr = *wr;
	return 0;
}

static int sv_post_recv(rdev_qp *qp, void *buf, uint32_t len, uint32_t lkey, uint64_t wr_id)
{
	(void)lkey;
	rdev *d = qp->d;
	if (qp->error)
		return PRISM_E_CLOSED;
	if (qp->rq_tail - qp->rq_head >= d->recv_depth)
		return -ENOSPC;
	if (qp->held) {
		/* A SEND was waiting for this receive. */
		sv_held *h = qp->held;
		qp->held = h->next;
		if (!qp->held)
			qp->held_tail = NULL;
		int status = h->len <= len ? 0 : PRISM_E_MSGSIZE;
		if (!status)
			memcpy(buf, h->data, h->len);
		wc(qp, RDEV_RECV, wr_id, status, h->len);
		prism_free(h);
		if (status)
			qp_fail(qp, status);
		return 0;
	}
	qp->rq[qp->rq_tail++ % d->recv_depth] =
		(sv_rqe){.buf = buf, .len = len, .wr_id = wr_id};
	return 0;
}

/* ---- sio callbacks ----------------------------------------------------------------- */

static void cm_send(rdev_qp *qp, uint8_t op)
{
	sio_hdr h = {.op = op, .key = SV_MAGIC, .aux = SV_VERSION << 16 | SV_PRIV_LEN};
	if (sio_send(qp->sc, &h, NULL, true, SIO_NO_COOKIE) != 0)
		qp_fail(qp, PRISM_E_PEER_GONE);
}

static void on_accepted(void *arg, sio_conn *sc, const struct sockaddr_in *peer)
{
	rdev_qp *qp = qp_new(arg, true);
	if (!qp) {
		sio_close(sc);
		return;
	}
	qp->sc = sc;
	qp->peer = *peer;
	sio_set_ctx(sc, qp);
}

static void on_up(sio_conn *sc)
{
	cm_send(sio_ctx(sc), SV_CM_REQ);
}

static void on_down(sio_conn *sc, int status)
{
	rdev_qp *qp = sio_ctx(sc);
	qp->sc = NULL;
	/* A link that breaks after it was up is a peer gone, whatever the socket said. */
	qp_fail(qp, qp->established ? PRISM_E_PEER_GONE : status);
	if (qp->passive && !qp->established)
		sv_destroy_qp(qp);
}

static int cm_check(rdev_qp *qp, const sio_hdr *h)
{
	if (h->key != SV_MAGIC || (h->aux >> 16) != SV_VERSION ||
	    (h->aux & 0xffff) != SV_PRIV_LEN) {
		char who[TRANSPORT_ADDR_MAX];
		transport__format_addr(&qp->peer, who, sizeof(who));
		PRISM_LOG(PRISM_LOG_WARN, LOGM,
			  "connection from %s rejected: private data magic %#x version %u "
			  "length %u",
			  who, h->key, h->aux >> 16, h->aux & 0xffff);
		return PRISM_E_BAD_VERSION;
	}
	return 0;
}

static int on_begin(sio_conn *sc, const sio_hdr *h, uint8_t **dest)
{
	rdev_qp *qp = sio_ctx(sc);
	rdev *d = qp->d;
	/* The acknowledgements come first: a READ response may follow them. */
	for (unsigned i = 0; i < h->flags && !qp->error; i++)
		complete_head(qp, SV_ACK, 0);
	if (qp->error)
		return 0;
	bool cm = h->op == SV_CM_REQ || h->op == SV_CM_REP;
	if (cm != !qp->established)
		return PRISM_E_PROTO;
	switch (h->op) {
	case SV_CM_REQ:
	case SV_CM_REP:
	case SV_ACK:
	case SV_READ_REQ:
		return h->len ? PRISM_E_PROTO : 0;
	case SV_SEND:
		if (qp->rq_head < qp->rq_tail) {
			sv_rqe *r = &qp->rq[qp->rq_head % d->recv_depth];
			if (h->len <= r->len)
				*dest = r->buf;
			else
				qp->send_overflow = true;
		}
		return 0;
	case SV_WRITE:
		qp->wstatus =
			mr_check(qp, h->key, h->addr, h->len, TRANSPORT_REMOTE_WRITE, dest);
		return 0;
	case SV_READ_RESP: {
		if (qp->sq_head == qp->sq_tail)
			return PRISM_E_PROTO;
		const rdev_wr *w = &qp->sq[qp->sq_head % d->send_depth].wr;
		if (w->op != RDEV_READ || (h->status == 0 && h->len != w->len) ||
		    (h->status && h->len))
			return PRISM_E_PROTO;
		*dest = w->local;
		return 0;
	}
	default:
		return PRISM_E_PROTO;
	}
}

static int on_packet(sio_conn *sc, const sio_hdr *h, const uint8_t *payload)
{
	rdev_qp *qp = sio_ctx(sc);
	int status = h->status ? -(int)h->status : 0;
	uint8_t *p;
	if (qp->error)
		return 0;
	switch (h->op) {
	case SV_CM_REQ: {
		int rc = cm_check(qp, h);
		if (rc)
			return rc;
		qp->established = true;
		cm_send(qp, SV_CM_REP);
		rdev_event ev = {.kind = RDEV_EV_ACCEPTED, .qp = qp};
		emit(qp->d, &ev);
		return 0;
	}
	case SV_CM_REP: {
		int rc = cm_check(qp, h);
		if (rc)
			return rc;
		qp->established = true;
		rdev_event ev = {.kind = RDEV_EV_CONNECTED, .qp = qp, .qp_ctx = qp->ctx};
		emit(qp->d, &ev);
		return 0;
	}
	case SV_SEND:
		take_send(qp, h, payload);
		return 0;
	case SV_WRITE:
		qp->d->t->stats.writes_served += qp->wstatus == 0;
		if (qp->wstatus)
			answer(qp, SV_ACK, qp->wstatus, NULL, 0);
		else
			ack(qp);
		return 0;
	case SV_READ_REQ: {
		int rc = mr_check(qp, h->key, h->addr, h->aux, TRANSPORT_REMOTE_READ, &p);
		qp->d->t->stats.reads_served += rc == 0;
		answer(qp, SV_READ_RESP, rc, p, rc ? 0 : h->aux);
		return 0;
	}
	case SV_ACK:
		if (status)
			complete_head(qp, SV_ACK, status);
		return 0;
	case SV_READ_RESP:
		complete_head(qp, h->op, status);
		return 0;
	default:
		return PRISM_E_PROTO;
	}
}

static void on_sent(sio_conn *sc, uint64_t cookie)
{
	(void)sc;
	(void)cookie;
}

/* ---- the device -------------------------------------------------------------------- */

static int sv_open(transport *t, unsigned send_depth, unsigned recv_depth, rdev **out)
{
	*out = NULL;
	rdev *d = prism_calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->t = t;
	prism_fifo_init(&d->evq, sizeof(rdev_event));
	d->send_depth = send_depth;
	d->recv_depth = recv_depth;
	sio_cbs cbs = {.accepted = on_accepted,
		       .up = on_up,
		       .down = on_down,
		       .begin = on_begin,
		       .packet = on_packet,
		       .sent = on_sent,
		       .arg = d,
		       .no_auth = true};
	int rc = sio_create(t, &cbs, &d->s);
	if (rc) {
		prism_free(d);
		return rc;
	}
	*out = d;
	return 0;
}

static void sv_close(rdev *d)
{
	if (!d)
		return;
	sio_destroy(d->s);
	while (d->qps) {
		d->qps->sc = NULL;
		sv_destroy_qp(d->qps);
	}
	prism_free(d->mrs);
	prism_fifo_free(&d->evq);
	prism_free(d);
}

static int sv_fd(const rdev *d)
{
	return sio_fd(d->s);
}

static int sv_arm(rdev *d)
{
	flush_all_acks(d);
	int rc = sio_flush(d->s);
	if (rc)
		return rc;
	return d->evq.len ? 1 : 0;
}

static int sv_poll(rdev *d, rdev_event *evs, int max)
{
	if (d->nowed)
		flush_all_acks(d);
	if (!d->evq.len) {
		int rc = sio_progress(d->s, 0);
		if (rc < 0)
			return rc;
	}
	int n = 0;
	while (n < max && prism_fifo_pop(&d->evq, &evs[n]))
		n++;
	return n;
}

static int sv_reg_mr(rdev *d, void *addr, size_t len, unsigned access, rdev_mr *out)
{
	if (d->nmrs == d->mrs_cap) {
		uint32_t cap = d->mrs_cap ? d->mrs_cap * 2 : 8;
		struct sv_mr *v = prism_realloc(d->mrs, (size_t)cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		d->mrs = v;
		d->mrs_cap = cap;
	}
	uint32_t key;
	bool used;
	do {
		key = randombytes_random();
		used = key == 0;
		for (uint32_t i = 0; i < d->nmrs && !used; i++)
			used = d->mrs[i].key == key;
	} while (used);
	d->mrs[d->nmrs++] =
		(struct sv_mr){.addr = addr, .len = len, .access = access, .key = key};
	*out = (rdev_mr){.handle = (void *)(uintptr_t)key, .lkey = key, .rkey = key};
	return 0;
}

static void sv_dereg_mr(rdev *d, rdev_mr *mr)
{
	for (uint32_t i = 0; i < d->nmrs; i++) {
		if (d->mrs[i].key != mr->rkey)
			continue;
		d->mrs[i] = d->mrs[--d->nmrs];
		return;
	}
}

static int sv_listen(rdev *d, const struct sockaddr_in *sa, uint16_t *port)
{
	return sio_listen(d->s, sa, port);
}

static int sv_connect(rdev *d, const struct sockaddr_in *sa, void *ctx, rdev_qp **out)
{
	*out = NULL;
	rdev_qp *qp = qp_new(d, false);
	if (!qp)
		return -ENOMEM;
	qp->ctx = ctx;
	qp->peer = *sa;
	int rc = sio_connect(d->s, sa, qp, &qp->sc);
	if (rc) {
		qp->sc = NULL;
		sv_destroy_qp(qp);
		return rc;
	}
	*out = qp;
	return 0;
}

static void sv_set_ctx(rdev_qp *qp, void *ctx)
{
	qp->ctx = ctx;
}

static int sv_peer(const rdev_qp *qp, struct sockaddr_in *out)
{
	*out = qp->peer;
	return 0;
}

static int sv_grant(rdev_qp *qp)
{
	qp->granted = true;
	return 0;
}

static int sv_flush(rdev *d)
{
	return sio_flush(d->s);
}

const rdev_ops rdev__soft_ops = {
	.name = "softverbs",
	.open = sv_open,
	.close = sv_close,
	.fd = sv_fd,
	.arm = sv_arm,
	.poll = sv_poll,
	.reg_mr = sv_reg_mr,
	.dereg_mr = sv_dereg_mr,
	.listen = sv_listen,
	.connect = sv_connect,
	.set_ctx = sv_set_ctx,
	.peer = sv_peer,
	.grant = sv_grant,
	.post_send = sv_post_send,
	.post_recv = sv_post_recv,
	.flush = sv_flush,
	.destroy_qp = sv_destroy_qp,
};
