/* remote.c — leases on another node's workers (DESIGN.md section 4 "Remote tasks", 6).
 *
 * A lease request this node will not meet goes to another node: one whose resources can
 * ever hold it when this node's cannot (else the request fails with PRISM_E_INFEASIBLE),
 * or, when this node could but has kept the request waiting for SPILL_NS, the node where
 * it is expected to start first (sched_place_pick over the cluster view, cluster.c).
 *
 * Two daemons carry such a lease, and neither the submitter nor the worker can tell:
 *
 *   node A (the submitter's)                        node B (the worker's)
 *   submitter --spec ring--> prismd A  ==TASK==>  prismd B --spec ring--> worker
 *   submitter <--done ring-- prismd A  <==DONE==  prismd B <--done ring-- worker
 *
 * On A the lease is a proxy: its worker slot is SCHED_DAEMON_SLOT, so the spec ring rings
 * the daemon's doorbell (the submitter writes the daemon's eventfd, as for its control
 * ring) and A forwards every message whole over the peer link.  On B the lease is hosted:
 * its submitter slot is SCHED_DAEMON_SLOT, the worker rings B's doorbell, and B sends
 * every completion back.  Messages keep their order end to end, which the submitter relies
 * on to match completions with the copies it keeps.
 *
 * Objects.  An argument in A's store (SCHED_ARG_STORE) is pulled into B's store before its
 * task is pushed to the worker (tasks behind it wait, so order holds), pinned by B's
 * daemon until the task completes.  A result the worker put in B's store was given to
 * B's daemon; A pulls it into its own store before passing the completion on, gives the
 * copy (and its pin) to the submitter, and tells B to drop its own (PEER_M_FREE).  A pull
 * that fails turns the completion into a failure that names the object.
 *
 * Failure.  B's worker dying: B says LOST and A tells the submitter LEASE_LOST (it
 * retries what was in flight, as for a local worker).  The link closing: every proxy over
 * it is lost, every lease hosted for it is revoked with discard, every result pin held
 * for it dropped.  The submitter returning the lease: A says RETURN, B revokes its lease.
 *
 * Costs: a forwarded task or completion with neither store arguments nor store results
 * takes no allocation when it fits a transport's inline send (4 KiB) and nothing waits
 * ahead of it; the others are copied once into a queue.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/fifo.h"
#include "base/log.h"
#include "base/wire.h"
#include "node_int.h"
#include "objstore/xfer.h"
#include "transport/transport.h"

#define LOGM "remote"
#define CODE_STR_MAX 4096u
#define CODE_LIST_MAX 4096u
#define REMOTE_LINK_OURS (1ull << 63)

/* A whole ring message queued while something ahead of it waits. */
struct qmsg {
	uint32_t len;
	uint32_t pad_; /* data 8-byte aligned: it is read as the message's struct */
	uint8_t data[];
};

/* A: a request sent to node `node`, not answered yet. */
struct out_req {
	struct lease_req rq;
	bool spill;
	transport_conn *c;
	uint64_t link; /* its id on the link, and the lease's once granted */
};

/* A: local lease l, whose worker is on another node. */
struct proxy {
	bool used;
	transport_conn *c;
	prism_id node;
	uint64_t link;
	uint32_t blease, bgen, gen;
	prism_ring *spec, *done; /* spec: A consumes; done: A produces */
	prism_fifo dones;        /* struct qmsg *: waiting for results or room */
	uint32_t pulls;          /* result pulls outstanding for the head of dones */
	int pull_err;
	bool pulling;  /* the head's pulls were started */
	bool starting; /* ... and are being started: callbacks must not advance */
	bool handed;   /* the head's results went to the submitter; only the ring waits */
};

/* B: a request from another node, waiting for a worker and resources. */
struct in_req {
	transport_conn *c;
	prism_id from;
	uint64_t link;
	int code;
	uint64_t milli[SCHED_MAX_RES];
};

/* B: the store arguments pinned for a task in flight (one entry per task pushed). */
struct held {
	uint32_t nids;
	prism_id *ids;
};

/* B: local lease l, whose submitter is on another node. */
struct hosted {
	bool used;
	transport_conn *c;
	prism_id from;
	uint64_t link;
	uint32_t gen;
	int code;
	prism_ring *spec, *done; /* spec: B produces; done: B consumes */
	prism_fifo waiting;      /* struct qmsg *: tasks not pushed yet */
	prism_fifo held;         /* struct held, one per task pushed, in order */
	uint64_t idle_since;     /* when the last task in flight finished */
	uint64_t recalled_ns;    /* when A was last asked to give it back */
	uint32_t pulls;          /* argument pulls outstanding for the head of waiting */
	bool pulling, starting;  /* as in struct proxy */
};

struct kept {
	transport_conn *c;
	prism_id id;
};

struct node_remote {
	struct out_req *outs;
	uint32_t nouts, capouts;
	struct in_req *ins;
	uint32_t nins, capins;
	struct kept *kept; /* results B keeps pinned until A has pulled them */
	uint32_t nkept, capkept;
	struct proxy proxies[SCHED_MAX_LEASES];
	struct hosted hosted[SCHED_MAX_LEASES];
	uint64_t next_link;
	uint64_t sent_tasks, recv_tasks, recv_dones, spilled, hosted_reqs;
	uint8_t *scratch; /* one frame being built */
	uint8_t *rbuf;    /* a ring message received, aligned as in a ring */
	prism_loop_timer *spill;
	bool spill_armed;
};

/* A pull's context: which lease, which generation, which object. */
struct pull_ctx {
	struct sched_node *n;
	uint32_t l, gen;
	bool hosted;
};

static int grow(void **v, uint32_t *cap, uint32_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	uint32_t c = *cap ? 2 * *cap : 8;
	void *nv = prism_realloc(*v, c * elem);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = c;
	return 0;
}

static void on_spill(prism_loop_timer *t, void *arg)
{
	(void)t;
	struct sched_node *n = arg;
	n->remote->spill_armed = false;
	ctl__dispatch(n);
}

void remote__arm_spill(struct sched_node *n, uint64_t ns)
{
	struct node_remote *r = n->remote;
	if (r && !r->spill_armed) {
		r->spill_armed = true;
		prism_loop_timer_start(r->spill, ns, 0);
	}
}

int remote__init(struct sched_node *n)
{
	struct node_remote *r = prism_calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->scratch = prism_malloc(PRISM_WIRE_HDR_SIZE + 2 * SCHED_SLOT + SCHED_MSG_MAX);
	r->rbuf = prism_aligned_alloc(SCHED_SLOT, SCHED_MSG_MAX + SCHED_SLOT);
	if (!r->scratch || !r->rbuf ||
	    prism_loop_timer_create(n->loop, on_spill, n, &r->spill) != 0) {
		prism_free(r->scratch);
		prism_free(r->rbuf);
		prism_free(r);
		return -ENOMEM;
	}
	for (uint32_t l = 0; l < SCHED_MAX_LEASES; l++) {
		prism_fifo_init(&r->proxies[l].dones, sizeof(struct qmsg *));
		prism_fifo_init(&r->hosted[l].waiting, sizeof(struct qmsg *));
		prism_fifo_init(&r->hosted[l].held, sizeof(struct held));
	}
	n->remote = r;
	return 0;
}

static void qfree_all(prism_fifo *q)
{
	struct qmsg *m;
	while (prism_fifo_pop(q, &m))
		prism_free(m);
}

static void held_release(struct sched_node *n, struct held *h)
{
	for (uint32_t i = 0; i < h->nids; i++)
		objstore_release(n->os, h->ids[i]);
	prism_free(h->ids);
	h->ids = NULL;
	h->nids = 0;
}

static void proxy_clear(struct proxy *p)
{
	prism_ring_destroy(p->spec);
	prism_ring_destroy(p->done);
	qfree_all(&p->dones);
	prism_fifo q = p->dones;
	memset(p, 0, sizeof(*p));
	p->dones = q;
}

static void hosted_clear(struct sched_node *n, struct hosted *h)
{
	prism_ring_destroy(h->spec);
	prism_ring_destroy(h->done);
	qfree_all(&h->waiting);
	struct held e;
	while (prism_fifo_pop(&h->held, &e))
		held_release(n, &e);
	if (h->used && h->code >= 0)
		pool__code_release(n, h->code);
	prism_fifo w = h->waiting, hd = h->held;
	memset(h, 0, sizeof(*h));
	h->waiting = w;
	h->held = hd;
}

void remote__free(struct sched_node *n)
{
	struct node_remote *r = n->remote;
	if (!r)
		return;
	for (uint32_t l = 0; l < SCHED_MAX_LEASES; l++) {
		proxy_clear(&r->proxies[l]);
		hosted_clear(n, &r->hosted[l]);
		prism_fifo_free(&r->proxies[l].dones);
		prism_fifo_free(&r->hosted[l].waiting);
		prism_fifo_free(&r->hosted[l].held);
	}
	for (uint32_t i = 0; i < r->nkept; i++)
		objstore_release(n->os, r->kept[i].id);
	prism_free(r->kept);
	prism_free(r->outs);
	prism_free(r->ins);
	prism_free(r->scratch);
	prism_free(r->rbuf);
	/* The spill timer is the loop's to free (it is destroyed before the cluster). */
	prism_free(r);
	n->remote = NULL;
}

/* ---- frames ---------------------------------------------------------------------------- */

/* Send the frame of type/req_id whose payload (len bytes) was built at
 * scratch + PRISM_WIRE_HDR_SIZE. */
static int send_scratch(struct sched_node *n, transport_conn *c, uint16_t type, uint64_t req_id,
			size_t len)
{
	struct node_remote *r = n->remote;
	prism_wire_hdr h = {.type = type, .len = (uint32_t)len, .req_id = req_id};
	int rc = prism_wire_encode_hdr(r->scratch, PRISM_WIRE_HDR_SIZE, &h);
	return rc ? rc : cluster__send(n, c, r->scratch, PRISM_WIRE_HDR_SIZE + len);
}

/* A frame whose payload is two u32 and then a ring message (TASK), or a ring message
 * alone (DONE). */
static int send_msg(struct sched_node *n, transport_conn *c, uint16_t type, uint64_t req_id,
		    const uint32_t *pre, uint32_t npre, const void *msg, uint32_t len)
{
	uint8_t *p = n->remote->scratch + PRISM_WIRE_HDR_SIZE;
	for (uint32_t i = 0; i < npre; i++)
		prism_le32_store(p + 4 * i, pre[i]);
	if (len)
		memcpy(p + 4 * npre, msg, len);
	return send_scratch(n, c, type, req_id, 4 * (size_t)npre + len);
}

static int send_small(struct sched_node *n, transport_conn *c, uint16_t type, uint64_t req_id,
		      const uint32_t *v, uint32_t nv)
{
	return send_msg(n, c, type, req_id, v, nv, NULL, 0);
}

int remote__send(struct sched_node *n, transport_conn *c, uint16_t type, uint64_t req_id,
		 const void *payload, size_t len)
{
	if (!n->remote || len > SCHED_MSG_MAX)
		return PRISM_E_TOO_BIG;
	return send_msg(n, c, type, req_id, NULL, 0, payload, (uint32_t)len);
}

/* ---- ring messages: the store objects they name ---------------------------------------- */

/* Call fn on every store id among the `count` arguments or results at p (end: the end of
 * the message).  PRISM_E_CORRUPT when they do not fit. */
static int each_store_id(const uint8_t *p, const uint8_t *end, uint32_t count,
			 void (*fn)(void *arg, prism_id id), void *arg)
{
	for (uint32_t i = 0; i < count; i++) {
		struct sched_arg a;
		if ((size_t)(end - p) < sizeof(a))
			return PRISM_E_CORRUPT;
		memcpy(&a, p, sizeof(a));
		p += sizeof(a);
		size_t body = a.kind == SCHED_ARG_STORE ? PRISM_ID_SIZE : a.len;
		if ((size_t)(end - p) < body)
			return PRISM_E_CORRUPT;
		if (a.kind == SCHED_ARG_STORE && fn) {
			prism_id id;
			memcpy(id.b, p, PRISM_ID_SIZE);
			fn(arg, id);
		}
		p += sched_align8((uint32_t)body);
		if (p > end)
			p = end;
	}
	return 0;
}

static void count_id(void *arg, prism_id id)
{
	(void)id;
	(*(uint32_t *)arg)++;
}

static uint32_t task_store_args(const uint8_t *m, uint32_t len)
{
	const struct sched_task_msg *t = (const struct sched_task_msg *)m;
	uint32_t k = 0;
	if (len >= sizeof(*t))
		each_store_id(m + sizeof(*t), m + len, t->nargs, count_id, &k);
	return k;
}

static uint32_t done_store_results(const uint8_t *m, uint32_t len)
{
	const struct sched_done_msg *d = (const struct sched_done_msg *)m;
	uint32_t k = 0;
	if (len >= sizeof(*d) && d->status >= 0)
		each_store_id(m + sizeof(*d), m + len, d->nreturns, count_id, &k);
	return k;
}

static struct qmsg *qmsg_new(const void *data, uint32_t len)
{
	struct qmsg *q = prism_malloc(sizeof(*q) + len);
	if (q) {
		q->len = len;
		memcpy(q->data, data, len);
	}
	return q;
}

/* ---- A: asking another node ---------------------------------------------------------- */

static void put_list(prism_wire_writer *w, char **list)
{
	uint32_t k = 0;
	while (list && list[k])
		k++;
	prism_wire_put_u32(w, k);
	for (uint32_t i = 0; i < k; i++)
		prism_wire_put_str(w, list[i]);
}

void remote__put_code(prism_wire_writer *w, const struct code *code)
{
	prism_wire_put_str(w, code->exe);
	prism_wire_put_str(w, code->cwd);
	prism_wire_put_str(w, code->code_path);
	put_list(w, code->argv);
	put_list(w, code->env);
}

void remote__put_res(struct sched_node *n, prism_wire_writer *w, const uint64_t *milli)
{
	uint32_t nres = 0;
	for (uint32_t i = 0; i < n->hdr->nres; i++)
		nres += milli[i] != 0;
	prism_wire_put_u32(w, nres);
	for (uint32_t i = 0; i < n->hdr->nres; i++)
		if (milli[i]) {
			prism_wire_put_str(w, n->hdr->res[i].name);
			prism_wire_put_u64(w, milli[i]);
		}
}

int remote__request(struct sched_node *n, const struct lease_req *rq, bool spill)
{
	struct node_remote *r = n->remote;
	if (!r || !n->cluster)
		return spill ? PRISM_E_AGAIN : PRISM_E_INFEASIBLE;
	prism_id node;
	char addr[TRANSPORT_ADDR_MAX];
	int rc =
		cluster__place(n, rq->milli, rq->input_bytes, spill, &node, addr, sizeof(addr));
	if (rc)
		return rc;
	transport_conn *c = cluster__peer(n, node, addr);
	if (!c)
		return spill ? PRISM_E_AGAIN : PRISM_E_PEER_GONE;
	const struct code *code = &n->codes[n->cl[rq->client].code];
	prism_wire_writer w;
	prism_wire_writer_init(&w, r->scratch + PRISM_WIRE_HDR_SIZE, 64 + SCHED_MSG_MAX);
	remote__put_res(n, &w, rq->milli);
	remote__put_code(&w, code);
	size_t len;
	rc = prism_wire_writer_finish(&w, &len);
	if (rc == 0)
		rc = grow((void **)&r->outs, &r->capouts, r->nouts, sizeof(*r->outs));
	uint64_t link = ++r->next_link;
	if (rc == 0)
		rc = send_scratch(n, c, PEER_M_LEASE_REQ, link, len);
	if (rc) {
		PRISM_LOG_W(LOGM, "cannot ask %s for a lease: %s", addr, prism_strerror(rc));
		return spill ? PRISM_E_AGAIN : rc;
	}
	r->outs[r->nouts++] = (struct out_req){.rq = *rq, .spill = spill, .c = c, .link = link};
	if (spill)
		r->spilled++;
	PRISM_LOG_D(LOGM, "client %u's lease request goes to %s%s", rq->client, addr,
		    spill ? " (spilled)" : "");
	return 0;
}

static struct out_req *out_take(struct node_remote *r, transport_conn *c, uint64_t link,
				struct out_req *copy)
{
	for (uint32_t i = 0; i < r->nouts; i++)
		if (r->outs[i].link == link && r->outs[i].c == c) {
			*copy = r->outs[i];
			r->outs[i] = r->outs[--r->nouts];
			return copy;
		}
	return NULL;
}

/* The request could not be placed there: back to the local queue if it can run here,
 * else the requester hears why. */
static void out_failed(struct sched_node *n, const struct out_req *o, int code)
{
	if (o->spill && ctl__requeue(n, &o->rq) == 0)
		return;
	ctl__deny(n, &o->rq, code);
}

static struct proxy *proxy_by_link(struct node_remote *r, transport_conn *c, uint64_t link)
{
	for (uint32_t l = 0; l < SCHED_MAX_LEASES; l++)
		if (r->proxies[l].used && r->proxies[l].link == link && r->proxies[l].c == c)
			return &r->proxies[l];
	return NULL;
}

/* A: open a local lease for client as the proxy of lease bl/bg on node `from` (over c,
 * named link there).  Returns the lease or a negative code. */
static int proxy_open(struct sched_node *n, transport_conn *c, prism_id from, uint64_t link,
		      uint32_t bl, uint32_t bg, uint32_t client)
{
	struct node_remote *r = n->remote;
	struct sched_client *sc = node__client(n, client);
	int rc = ctl__lease_open(n, client, SCHED_DAEMON_SLOT, NULL, true);
	if (rc < 0)
		return rc;
	uint32_t l = (uint32_t)rc;
	struct sched_lease *ls = sched_lease_at(n->base, l);
	struct proxy *p = &r->proxies[l];
	p->used = true;
	p->c = c;
	p->node = from;
	p->link = link;
	p->blease = bl;
	p->bgen = bg;
	p->gen = ls->generation;
	rc = prism_ring_attach_shared(sched_lease_ring_at(n->base, l, 0),
				      n->hdr->lease_ring_bytes, n->hdr->daemon_bell, &p->spec);
	if (rc == 0)
		rc = prism_ring_attach_shared(sched_lease_ring_at(n->base, l, 1),
					      n->hdr->lease_ring_bytes, sc->bell, &p->done);
	if (rc) {
		PRISM_LOG_E(LOGM, "cannot open proxy lease %u: %s", l, prism_strerror(rc));
		proxy_clear(p);
		ctl__lease_close(n, l);
		return rc;
	}
	return (int)l;
}

static void on_grant(struct sched_node *n, transport_conn *c, prism_id from, uint64_t link,
		     prism_wire_reader *rd)
{
	struct node_remote *r = n->remote;
	uint32_t bl = 0, bg = 0, pid = 0;
	prism_wire_get_u32(rd, &bl);
	prism_wire_get_u32(rd, &bg);
	prism_wire_get_u32(rd, &pid);
	struct out_req o;
	if (prism_wire_reader_finish(rd) || !out_take(r, c, link, &o)) {
		uint32_t v[3] = {bl, bg, 1};
		send_small(n, c, PEER_M_RETURN, 0, v, 3); /* nobody wants it */
		return;
	}
	struct sched_client *sc = node__client(n, o.rq.client);
	int rc = sc->generation == o.rq.gen && n->cl[o.rq.client].kind
			 ? proxy_open(n, c, from, link, bl, bg, o.rq.client)
			 : -ENOENT;
	if (rc < 0) {
		uint32_t v[3] = {bl, bg, 1};
		send_small(n, c, PEER_M_RETURN, 0, v, 3);
		if (rc != -ENOENT)
			out_failed(n, &o, rc);
		return;
	}
	uint32_t l = (uint32_t)rc;
	struct sched_lease *ls = sched_lease_at(n->base, l);
	ls->shape = o.rq.shape;
	struct sched_ctl_msg m;
	ctl__msg_init(&m, SCHED_M_LEASE_GRANT);
	m.h.req_id = o.rq.req_id;
	m.a = l;
	m.b = SCHED_DAEMON_SLOT;
	m.c = ls->generation;
	m.d = o.rq.shape;
	m.code = (int32_t)pid;
	ctl__send(n, o.rq.client, &m);
	PRISM_LOG_D(LOGM, "lease %u: client %u -> worker pid %u on another node", l,
		    o.rq.client, pid);
}

int remote__chan_proxy(struct sched_node *n, transport_conn *c, prism_id from, uint64_t link,
		       uint32_t bl, uint32_t bg, uint32_t client)
{
	if (!n->remote)
		return PRISM_E_PROTO;
	int rc = proxy_open(n, c, from, link, bl, bg, client);
	if (rc < 0) {
		uint32_t v[3] = {bl, bg, 1};
		send_small(n, c, PEER_M_RETURN, 0, v, 3);
	}
	return rc;
}

static void on_denied(struct sched_node *n, transport_conn *c, uint64_t link,
		      prism_wire_reader *rd)
{
	uint32_t code = 0;
	prism_wire_get_u32(rd, &code);
	struct out_req o;
	if (out_take(n->remote, c, link, &o))
		out_failed(n, &o, (int32_t)code < 0 ? (int32_t)code : PRISM_E_INFEASIBLE);
}

/* The submitter gave proxy lease l back, or it is taken back: B lets its worker go. */
void remote__revoke(struct sched_node *n, uint32_t l, bool discard)
{
	struct node_remote *r = n->remote;
	struct proxy *p = r ? &r->proxies[l] : NULL;
	if (!p || !p->used)
		return;
	uint32_t v[3] = {p->blease, p->bgen, discard};
	send_small(n, p->c, PEER_M_RETURN, 0, v, 3);
	proxy_clear(p);
	ctl__lease_close(n, l);
}

/* B's worker died, or the link to B is gone: the submitter retries what was in flight. */
static void proxy_lost(struct sched_node *n, uint32_t l, int code)
{
	struct proxy *p = &n->remote->proxies[l];
	proxy_clear(p);
	ctl__lease_lost(n, l, code);
}

/* ---- A: completions coming back -------------------------------------------------------- */

/* The completion at the head could not bring its results: a failure that says so, in a
 * buffer of whole slots. */
static struct qmsg *failure_done(const struct sched_done_msg *d, int code)
{
	char text[256];
	int tl = snprintf(text, sizeof(text),
			  "a result could not be brought from the node that ran the task: %s",
			  prism_strerror(code));
	uint32_t mlen = tl < 0                         ? 0
			: (uint32_t)tl >= sizeof(text) ? sizeof(text) - 1
						       : (uint32_t)tl;
	uint32_t len = (uint32_t)(sizeof(*d) + sizeof(struct sched_arg)) + sched_align8(mlen);
	struct qmsg *q = prism_calloc(1, sizeof(*q) + sched_msg_slots(len) * SCHED_SLOT);
	if (!q)
		return NULL;
	struct sched_done_msg *f = (struct sched_done_msg *)q->data;
	f->h = d->h;
	f->h.len = len;
	f->h.nslots = (uint16_t)sched_msg_slots(len);
	f->task = d->task;
	f->run_ns = d->run_ns;
	f->status = code < 0 ? code : PRISM_E_OBJECT_LOST;
	f->nreturns = 1;
	struct sched_arg *a = (struct sched_arg *)(f + 1);
	*a = (struct sched_arg){.len = mlen, .kind = SCHED_ARG_INLINE};
	memcpy(a + 1, text, mlen);
	q->len = len;
	return q;
}

struct give_ctx {
	struct sched_node *n;
	struct proxy *p;
	uint32_t to; /* the submitter's slot */
};

/* One result of the head completion is here (or the head failed): its pin goes to the
 * submitter, and B may drop its own. */
static void give_result(void *arg, prism_id id)
{
	struct give_ctx *x = arg;
	struct sched_node *n = x->n;
	const void *data;
	size_t size;
	if (x->p->pull_err == 0 && objstore_get(n->os, id, &data, &size) == 0 &&
	    objstore_give(n->os, id, x->to) != 0)
		objstore_release(n->os, id);
	send_msg(n, x->p->c, PEER_M_FREE, 0, NULL, 0, id.b, PRISM_ID_SIZE);
}

static void pull_done(void *arg, int status, prism_id id);

/* Start pulling every store result of completion q; p->pulls counts those outstanding. */
static void proxy_pull(struct sched_node *n, uint32_t l, struct proxy *p, const struct qmsg *q)
{
	const struct sched_done_msg *d = (const struct sched_done_msg *)q->data;
	const uint8_t *s = q->data + sizeof(*d), *end = q->data + q->len;
	p->pulling = p->starting = true;
	p->pulls = 0;
	p->pull_err = 0;
	for (uint32_t i = 0; i < d->nreturns && (size_t)(end - s) >= sizeof(struct sched_arg);
	     i++) {
		struct sched_arg a;
		memcpy(&a, s, sizeof(a));
		s += sizeof(a);
		if (a.kind != SCHED_ARG_STORE) {
			s += sched_align8(a.len);
			continue;
		}
		prism_id id;
		memcpy(id.b, s, PRISM_ID_SIZE);
		s += PRISM_ID_SIZE;
		struct pull_ctx *x = prism_malloc(sizeof(*x));
		int rc = -ENOMEM;
		p->pulls++;
		if (x) {
			*x = (struct pull_ctx){n, l, p->gen, false};
			rc = cluster__pull(n, p->node, "", id, pull_done, x);
			if (rc)
				prism_free(x);
		}
		if (rc) {
			p->pulls--;
			if (!p->pull_err)
				p->pull_err = rc;
		}
	}
	p->starting = false;
}

/* Move the completions of proxy l along, in order: pull the results of the head, hand
 * them over, pass the completion on. */
static void proxy_advance(struct sched_node *n, uint32_t l)
{
	struct node_remote *r = n->remote;
	struct proxy *p = &r->proxies[l];
	while (p->used && p->dones.len) {
		struct qmsg **qp = prism_fifo_at(&p->dones, 0), *q = *qp;
		if (!p->handed) {
			uint32_t want = done_store_results(q->data, q->len);
			if (want && !p->pulling)
				proxy_pull(n, l, p, q);
			if (p->pulls)
				return; /* pull_done() comes back here */
			if (want) {
				const struct sched_done_msg *d =
					(const struct sched_done_msg *)q->data;
				struct give_ctx x = {n, p,
						     sched_lease_at(n->base, l)->submitter};
				each_store_id(q->data + sizeof(*d), q->data + q->len,
					      d->nreturns, give_result, &x);
				struct qmsg *f =
					p->pull_err ? failure_done(d, p->pull_err) : NULL;
				if (f) {
					prism_free(q);
					*qp = q = f;
				}
			}
			p->pulling = false;
			p->handed = true;
		}
		if (sched_msg_send(p->done, (const struct sched_msg *)q->data) != 0)
			return; /* full: the submitter is busy; remote__drain() retries */
		prism_fifo_pop(&p->dones, NULL);
		prism_free(q);
		p->handed = false;
	}
}

static void hosted_advance(struct sched_node *n, uint32_t l);

static void pull_done(void *arg, int status, prism_id id)
{
	(void)id;
	struct pull_ctx *x = arg;
	struct node_remote *r = x->n->remote;
	if (r && x->hosted) {
		struct hosted *h = &r->hosted[x->l];
		if (h->used && h->gen == x->gen && h->pulls) {
			if (status)
				PRISM_LOG_W(LOGM,
					    "lease %u: an argument could not be pulled: %s",
					    x->l, prism_strerror(status));
			if (--h->pulls == 0 && !h->starting)
				hosted_advance(x->n, x->l);
		}
	} else if (r) {
		struct proxy *p = &r->proxies[x->l];
		if (p->used && p->gen == x->gen && p->pulls) {
			if (status && !p->pull_err)
				p->pull_err = status;
			if (--p->pulls == 0 && !p->starting)
				proxy_advance(x->n, x->l);
		}
	}
	prism_free(x);
}

static void on_done(struct sched_node *n, transport_conn *c, uint64_t link,
		    const uint8_t *frame, uint32_t len)
{
	struct node_remote *r = n->remote;
	struct proxy *p = proxy_by_link(r, c, link);
	if (!p)
		return; /* returned meanwhile */
	/* The frame's bytes may lie anywhere: the message is read where it is aligned. */
	const uint8_t *m = r->rbuf;
	memcpy(r->rbuf, frame,
	       len < SCHED_MSG_MAX + SCHED_SLOT ? len : SCHED_MSG_MAX + SCHED_SLOT);
	const struct sched_done_msg *d = (const struct sched_done_msg *)m;
	uint32_t l = (uint32_t)(p - r->proxies);
	/* The frame holds the message in whole slots. */
	if (len < sizeof(*d) || len % SCHED_SLOT || len > SCHED_MSG_MAX ||
	    d->h.type != SCHED_M_DONE || d->h.len < sizeof(*d) ||
	    sched_msg_slots(d->h.len) * SCHED_SLOT != len || d->h.nslots != len / SCHED_SLOT) {
		PRISM_LOG_W(LOGM, "a malformed completion from a peer; dropping its lease");
		proxy_lost(n, l, PRISM_E_PROTO);
		return;
	}
	r->recv_dones++;
	/* The common case: nothing waits, nothing to pull, the ring has room. */
	if (p->dones.len == 0 && done_store_results(m, d->h.len) == 0 &&
	    sched_msg_send(p->done, &d->h) == 0)
		return;
	struct qmsg *q = qmsg_new(m, len);
	if (!q || prism_fifo_push(&p->dones, &q) != 0) {
		prism_free(q);
		proxy_lost(n, l, -ENOMEM);
		return;
	}
	q->len = d->h.len;
	proxy_advance(n, l);
}

static void on_lost(struct sched_node *n, transport_conn *c, uint64_t link,
		    prism_wire_reader *rd)
{
	uint32_t code = 0;
	prism_wire_get_u32(rd, &code);
	struct proxy *p = proxy_by_link(n->remote, c, link);
	if (p)
		proxy_lost(n, (uint32_t)(p - n->remote->proxies),
			   (int32_t)code < 0 ? (int32_t)code : PRISM_E_PIPE);
}

/* Forward what the submitters of proxy leases pushed; move waiting completions along. */
static size_t proxies_drain(struct sched_node *n)
{
	struct node_remote *r = n->remote;
	size_t done = 0;
	for (uint32_t l = 0; l < SCHED_MAX_LEASES; l++) {
		struct proxy *p = &r->proxies[l];
		if (!p->used)
			continue;
		if (p->dones.len && !p->pulls)
			proxy_advance(n, l);
		for (uint32_t k = 0; k < NODE_CTL_BATCH && p->used; k++) {
			uint8_t *pre = r->scratch + PRISM_WIRE_HDR_SIZE;
			int len = sched_msg_recv(p->spec, pre + 8, SCHED_MSG_MAX + SCHED_SLOT);
			if (len == 0)
				break;
			if (len < 0) {
				PRISM_LOG_W(LOGM, "proxy lease %u: a bad task message (%s)", l,
					    prism_strerror(len));
				proxy_lost(n, l, len);
				break;
			}
			/* Whole slots, so that B can push it as it comes. */
			uint32_t whole = sched_msg_slots((uint32_t)len) * SCHED_SLOT;
			memset(pre + 8 + len, 0, whole - (uint32_t)len);
			prism_le32_store(pre, p->blease);
			prism_le32_store(pre + 4, p->bgen);
			int rc = send_scratch(n, p->c, PEER_M_TASK, p->link, 8 + (size_t)whole);
			if (rc) {
				proxy_lost(n, l, rc);
				break;
			}
			r->sent_tasks++;
			done++;
		}
	}
	return done;
}

/* ---- B: serving another node's requests ---------------------------------------------- */

static void deny_in(struct sched_node *n, transport_conn *c, uint64_t link, int code)
{
	uint32_t v = (uint32_t)code;
	send_small(n, c, PEER_M_LEASE_DENIED, link, &v, 1);
}

static char *get_str(prism_wire_reader *rd)
{
	const char *s;
	uint32_t sl;
	if (prism_wire_get_str(rd, CODE_STR_MAX, &s, &sl))
		return NULL;
	char *out = prism_malloc((size_t)sl + 1);
	if (out) {
		memcpy(out, s, sl);
		out[sl] = '\0';
	}
	return out;
}

static void free_list(char **v)
{
	for (char **e = v; e && *e; e++)
		prism_free(*e);
	prism_free(v);
}

static char **get_list(prism_wire_reader *rd)
{
	uint32_t k = 0;
	if (prism_wire_get_u32(rd, &k) || k > CODE_LIST_MAX)
		return NULL;
	char **v = prism_calloc((size_t)k + 1, sizeof(*v));
	for (uint32_t i = 0; v && i < k; i++)
		if (!(v[i] = get_str(rd))) {
			free_list(v);
			return NULL;
		}
	return v;
}

int remote__get_res(struct sched_node *n, prism_wire_reader *rd, uint64_t *milli)
{
	uint32_t nres = 0;
	int code = 0;
	memset(milli, 0, SCHED_MAX_RES * sizeof(*milli));
	if (prism_wire_get_u32(rd, &nres) || nres > SCHED_MAX_RES)
		return PRISM_E_PROTO;
	for (uint32_t i = 0; i < nres; i++) {
		const char *name = NULL;
		uint32_t nl = 0;
		uint64_t m = 0;
		prism_wire_get_str(rd, SCHED_RES_NAME, &name, &nl);
		prism_wire_get_u64(rd, &m);
		int k = name ? sched_res_find(n->res, n->nres, name, nl) : -1;
		if (!name)
			return PRISM_E_PROTO;
		if (k < 0 || m > n->res[k].total_milli - milli[k])
			code = PRISM_E_INFEASIBLE; /* the view was stale */
		else
			milli[k] += m;
	}
	return code;
}

int remote__take_code(struct sched_node *n, prism_wire_reader *rd)
{
	char *exe = get_str(rd), *cwd = get_str(rd), *cp = get_str(rd);
	char **argv = get_list(rd), **env = get_list(rd);
	int rc = PRISM_E_PROTO;
	if (exe && cwd && cp && argv && env) {
		/* The code takes argv and env, or frees them. */
		rc = pool__code_remote(n, exe, cwd, cp, argv, env);
		argv = env = NULL;
	}
	prism_free(exe);
	prism_free(cwd);
	prism_free(cp);
	free_list(argv);
	free_list(env);
	return rc;
}

static void on_lease_req(struct sched_node *n, transport_conn *c, prism_id from, uint64_t link,
			 prism_wire_reader *rd)
{
	struct node_remote *r = n->remote;
	struct in_req q = {.c = c, .from = from, .link = link, .code = -1};
	int code = remote__get_res(n, rd, q.milli);
	if (!code) {
		q.code = remote__take_code(n, rd);
		if (q.code >= 0 && prism_wire_reader_finish(rd) != 0) {
			pool__code_release(n, q.code);
			q.code = PRISM_E_PROTO;
		}
		if (q.code < 0)
			code = q.code;
		if (code == PRISM_E_PROTO)
			PRISM_LOG_W(LOGM, "a malformed lease request from a peer");
	}
	if (!code && grow((void **)&r->ins, &r->capins, r->nins, sizeof(*r->ins))) {
		pool__code_release(n, q.code);
		code = -ENOMEM;
	}
	if (code) {
		PRISM_LOG_D(LOGM, "a peer's lease request refused: %s", prism_strerror(code));
		deny_in(n, c, link, code);
		return;
	}
	r->ins[r->nins++] = q;
	r->hosted_reqs++;
	ctl__dispatch(n);
}

static void hosted_lost(struct sched_node *n, uint32_t l, int code);

/* B: lease l (just opened) is hosted for a submitter on node `from` over c, link there;
 * its worker is w, running code (whose count of users passes to the lease; -1: none).
 * A task lease is assigned to the worker here; an actor channel (chan) by actors.c,
 * after the constructor.  On failure the lease is closed and the count left to the
 * caller. */
static int hosted_open(struct sched_node *n, uint32_t l, uint32_t w, transport_conn *c,
		       prism_id from, uint64_t link, int code, bool chan)
{
	struct hosted *h = &n->remote->hosted[l];
	struct sched_lease *ls = sched_lease_at(n->base, l);
	h->used = true;
	h->c = c;
	h->from = from;
	h->link = link;
	h->gen = ls->generation;
	h->code = code;
	h->idle_since = prism_now_ns();
	int rc = prism_ring_attach_shared(sched_lease_ring_at(n->base, l, 0),
					  n->hdr->lease_ring_bytes, node__client(n, w)->bell,
					  &h->spec);
	if (rc == 0)
		rc = prism_ring_attach_shared(sched_lease_ring_at(n->base, l, 1),
					      n->hdr->lease_ring_bytes, n->hdr->daemon_bell,
					      &h->done);
	if (rc == 0 && !chan) {
		struct sched_ctl_msg m;
		ctl__msg_init(&m, SCHED_M_LEASE_ASSIGN);
		m.a = l;
		m.b = SCHED_DAEMON_SLOT;
		m.c = ls->generation;
		rc = ctl__send(n, w, &m);
	}
	if (rc) {
		PRISM_LOG_E(LOGM, "cannot open hosted lease %u: %s", l, prism_strerror(rc));
		h->code = -1;
		hosted_clear(n, h);
		ctl__lease_close(n, l);
	}
	return rc;
}

int remote__chan_host(struct sched_node *n, transport_conn *c, prism_id from, uint32_t worker,
		      uint64_t *link)
{
	struct node_remote *r = n->remote;
	if (!r)
		return PRISM_E_PROTO;
	int l = ctl__lease_open(n, SCHED_DAEMON_SLOT, worker, NULL, true);
	if (l < 0)
		return l;
	/* Links this node names carry the top bit: the peer's own never do. */
	*link = REMOTE_LINK_OURS | ++r->next_link;
	int rc = hosted_open(n, (uint32_t)l, worker, c, from, *link, -1, true);
	return rc ? rc : l;
}

/* Grant what waits, while workers and resources are there (after local requests);
 * counts into wanted[code] the workers still needed. */
void remote__dispatch(struct sched_node *n, uint32_t *wanted)
{
	struct node_remote *r = n->remote;
	if (!r)
		return;
	uint32_t kept = 0, unfit = 0;
	for (uint32_t i = 0; i < r->nins; i++) {
		struct in_req q = r->ins[i];
		if (pool__broken(n, q.code)) {
			deny_in(n, q.c, q.link, PRISM_E_INFEASIBLE);
			pool__code_release(n, q.code);
			continue;
		}
		bool fits = ctl__res_fit(n, q.milli);
		int w = fits ? ctl__idle_worker(n, q.code) : -1;
		int l = w >= 0 ? ctl__lease_open(n, SCHED_DAEMON_SLOT, (uint32_t)w, q.milli,
						 false)
			       : -1;
		if (l < 0) {
			if (fits)
				wanted[q.code]++;
			else
				unfit++;
			r->ins[kept++] = q;
			continue;
		}
		int rc = hosted_open(n, (uint32_t)l, (uint32_t)w, q.c, q.from, q.link, q.code,
				     false);
		if (rc) {
			deny_in(n, q.c, q.link, rc);
			pool__code_release(n, q.code);
			continue;
		}
		struct sched_lease *ls = sched_lease_at(n->base, (uint32_t)l);
		uint32_t v[3] = {(uint32_t)l, ls->generation, (uint32_t)n->cl[w].pid};
		send_small(n, q.c, PEER_M_LEASE_GRANT, q.link, v, 3);
		PRISM_LOG_D(LOGM, "lease %d: a peer's client -> worker %d", l, w);
	}
	r->nins = kept;
	if (unfit)
		remote__reclaim(n);
	if (kept)
		remote__arm_spill(n, NODE_SPILL_NS);
}

void remote__reclaim(struct sched_node *n)
{
	struct node_remote *r = n->remote;
	if (!r)
		return;
	uint64_t now = prism_now_ns();
	for (uint32_t l = 0; l < SCHED_MAX_LEASES; l++) {
		struct hosted *h = &r->hosted[l];
		if (!h->used || !h->c || n->lease_chan[l] || h->held.len || h->waiting.len ||
		    now - h->idle_since < NODE_LEASE_IDLE_NS ||
		    now - h->recalled_ns < NODE_LEASE_IDLE_NS)
			continue;
		h->recalled_ns = now;
		send_small(n, h->c, PEER_M_RECALL, h->link, NULL, 0);
	}
}

/* B wants its worker back: give the lease back if the submitter has nothing in it (the
 * protocol of struct sched_lease's busy flag, as the node's own recall). */
static void on_recall(struct sched_node *n, transport_conn *c, uint64_t link)
{
	struct proxy *p = proxy_by_link(n->remote, c, link);
	if (!p)
		return;
	uint32_t l = (uint32_t)(p - n->remote->proxies);
	struct sched_lease *ls = sched_lease_at(n->base, l);
	uint32_t expect = SCHED_LEASE_GRANTED;
	if (atomic_load(&ls->busy) ||
	    !atomic_compare_exchange_strong(&ls->state, &expect, SCHED_LEASE_RETURNING))
		return;
	if (atomic_load(&ls->busy)) {
		atomic_store(&ls->state, SCHED_LEASE_GRANTED); /* the submitter won */
		return;
	}
	struct sched_ctl_msg m;
	ctl__msg_init(&m, SCHED_M_LEASE_RECALLED);
	m.a = l;
	m.c = ls->generation;
	ctl__send(n, ls->submitter, &m);
	/* B gets its worker back now; the lease's rings wait for the submitter's answer. */
	uint32_t v[3] = {p->blease, p->bgen, 0};
	send_small(n, p->c, PEER_M_RETURN, 0, v, 3);
	proxy_clear(p);
	ctl__lease_recalled(n, l);
}

/* Start pulling the store arguments of task q that this node lacks; h->pulls counts
 * those outstanding. */
static void hosted_pull(struct sched_node *n, uint32_t l, struct hosted *h,
			const struct qmsg *q)
{
	const struct sched_task_msg *t = (const struct sched_task_msg *)q->data;
	const uint8_t *s = q->data + sizeof(*t), *end = q->data + q->len;
	h->pulling = h->starting = true;
	h->pulls = 0;
	for (uint32_t i = 0; i < t->nargs && (size_t)(end - s) >= sizeof(struct sched_arg);
	     i++) {
		struct sched_arg a;
		memcpy(&a, s, sizeof(a));
		s += sizeof(a);
		if (a.kind != SCHED_ARG_STORE) {
			s += sched_align8(a.len);
			continue;
		}
		prism_id id;
		memcpy(id.b, s, PRISM_ID_SIZE);
		s += PRISM_ID_SIZE;
		if (objstore_contains(n->os, id))
			continue;
		struct pull_ctx *x = prism_malloc(sizeof(*x));
		int rc = -ENOMEM;
		h->pulls++;
		if (x) {
			*x = (struct pull_ctx){n, l, h->gen, true};
			rc = cluster__pull(n, h->from, "", id, pull_done, x);
			if (rc)
				prism_free(x);
		}
		if (rc) {
			/* The worker will find it missing and fail the task, in order. */
			PRISM_LOG_W(LOGM, "lease %u: cannot pull an argument: %s", l,
				    prism_strerror(rc));
			h->pulls--;
		}
	}
	h->starting = false;
}

struct pin_ctx {
	struct sched_node *n;
	struct held *e;
};

/* Pin a store argument for as long as its task runs (one missing is the worker's to
 * report). */
static void pin_one(void *arg, prism_id id)
{
	struct pin_ctx *x = arg;
	const void *data;
	size_t size;
	if (objstore_get(x->n->os, id, &data, &size) == 0)
		x->e->ids[x->e->nids++] = id;
}

/* Push the tasks that wait, in order, as far as their arguments are here and the ring
 * has room. */
static void hosted_advance(struct sched_node *n, uint32_t l)
{
	struct hosted *h = &n->remote->hosted[l];
	while (h->used && h->waiting.len) {
		struct qmsg *q = *(struct qmsg **)prism_fifo_at(&h->waiting, 0);
		const struct sched_task_msg *t = (const struct sched_task_msg *)q->data;
		if (!h->pulling)
			hosted_pull(n, l, h, q);
		if (h->pulls)
			return; /* pull_done() comes back here */
		uint32_t nstore = task_store_args(q->data, q->len);
		struct held e = {0};
		if (nstore && (e.ids = prism_malloc(nstore * sizeof(prism_id)))) {
			struct pin_ctx x = {n, &e};
			each_store_id(q->data + sizeof(*t), q->data + q->len, t->nargs, pin_one,
				      &x);
		}
		int rc = sched_msg_send(h->spec, &t->h);
		if (rc == 0)
			rc = prism_fifo_push(&h->held, &e);
		if (rc) {
			held_release(n, &e);
			if (rc == PRISM_E_FULL)
				return; /* the worker is behind: remote__drain() retries */
			hosted_lost(n, l, rc);
			return;
		}
		h->pulling = false;
		prism_fifo_pop(&h->waiting, NULL);
		prism_free(q);
	}
}

static struct hosted *hosted_of(struct node_remote *r, transport_conn *c, uint32_t l,
				uint32_t gen)
{
	if (l >= SCHED_MAX_LEASES)
		return NULL;
	struct hosted *h = &r->hosted[l];
	return h->used && h->c == c && h->gen == gen ? h : NULL;
}

static void on_task(struct sched_node *n, transport_conn *c, const uint8_t *p, uint32_t len)
{
	struct node_remote *r = n->remote;
	if (len < 8)
		return;
	uint32_t l = prism_le32_load(p), gen = prism_le32_load(p + 4);
	uint32_t mlen = len - 8;
	if (mlen > SCHED_MSG_MAX + SCHED_SLOT)
		mlen = SCHED_MSG_MAX + SCHED_SLOT; /* refused below */
	/* The frame's bytes may lie anywhere: the message is read where it is aligned. */
	memcpy(r->rbuf, p + 8, mlen);
	const struct sched_task_msg *t = (const struct sched_task_msg *)r->rbuf;
	struct hosted *h = hosted_of(r, c, l, gen);
	if (!h)
		return; /* the lease ended meanwhile; A hears LOST or has returned it */
	if (mlen < sizeof(*t) || mlen % SCHED_SLOT || t->h.len > mlen ||
	    sched_msg_slots(t->h.len) * SCHED_SLOT != mlen || t->h.type != SCHED_M_TASK) {
		PRISM_LOG_W(LOGM, "a malformed task from a peer; ending its lease");
		hosted_lost(n, l, PRISM_E_PROTO);
		return;
	}
	r->recv_tasks++;
	if (h->waiting.len == 0 && task_store_args(r->rbuf, t->h.len) == 0 &&
	    sched_msg_send(h->spec, &t->h) == 0) {
		struct held e = {0};
		if (prism_fifo_push(&h->held, &e) != 0)
			hosted_lost(n, l, -ENOMEM);
		return;
	}
	struct qmsg *q = qmsg_new(t, mlen);
	if (!q || prism_fifo_push(&h->waiting, &q) != 0) {
		prism_free(q);
		hosted_lost(n, l, -ENOMEM);
		return;
	}
	q->len = t->h.len;
	hosted_advance(n, l);
}

struct keep_ctx {
	struct node_remote *r;
	transport_conn *c;
};

/* Keep a result pinned (the worker gave it to this daemon) until A has pulled it. */
static void keep_result(void *arg, prism_id id)
{
	struct keep_ctx *x = arg;
	struct node_remote *r = x->r;
	if (grow((void **)&r->kept, &r->capkept, r->nkept, sizeof(*r->kept)) == 0)
		r->kept[r->nkept++] = (struct kept){x->c, id};
}

/* Send back what the workers of hosted leases finished. */
static size_t hosted_drain(struct sched_node *n)
{
	struct node_remote *r = n->remote;
	size_t done = 0;
	for (uint32_t l = 0; l < SCHED_MAX_LEASES; l++) {
		struct hosted *h = &r->hosted[l];
		if (!h->used)
			continue;
		if (h->waiting.len && !h->pulls)
			hosted_advance(n, l);
		for (uint32_t k = 0; k < NODE_CTL_BATCH && h->used; k++) {
			uint8_t *buf = r->scratch + PRISM_WIRE_HDR_SIZE;
			int len = sched_msg_recv(h->done, buf, SCHED_MSG_MAX + SCHED_SLOT);
			if (len == 0)
				break;
			if (len < 0 || (size_t)len < sizeof(struct sched_done_msg)) {
				hosted_lost(n, l, len < 0 ? len : PRISM_E_PROTO);
				break;
			}
			struct held e;
			if (prism_fifo_pop(&h->held, &e))
				held_release(n, &e);
			if (h->held.len == 0)
				h->idle_since = prism_now_ns();
			done++;
			const struct sched_done_msg *d = (const struct sched_done_msg *)buf;
			if (!h->c)
				continue; /* returned with discard: nobody reads it */
			if (d->status >= 0) {
				struct keep_ctx x = {r, h->c};
				each_store_id(buf + sizeof(*d), buf + len, d->nreturns,
					      keep_result, &x);
			}
			/* Whole slots, so that A can pass it on as it comes. */
			uint32_t whole = sched_msg_slots((uint32_t)len) * SCHED_SLOT;
			memset(buf + len, 0, whole - (uint32_t)len);
			int rc = send_scratch(n, h->c, PEER_M_DONE, h->link, whole);
			if (rc) {
				hosted_lost(n, l, rc);
				break;
			}
		}
	}
	return done;
}

static void on_free(struct sched_node *n, transport_conn *c, const uint8_t *p, uint32_t len)
{
	struct node_remote *r = n->remote;
	if (len != PRISM_ID_SIZE)
		return;
	prism_id id;
	memcpy(id.b, p, PRISM_ID_SIZE);
	for (uint32_t i = 0; i < r->nkept; i++)
		if (r->kept[i].c == c && prism_id_eq(r->kept[i].id, id)) {
			objstore_release(n->os, id);
			objstore_delete(n->os, id);
			r->kept[i] = r->kept[--r->nkept];
			return;
		}
}

/* A's submitter returned the lease (or left): the worker drains and lets it go. */
static void on_return(struct sched_node *n, transport_conn *c, prism_wire_reader *rd)
{
	uint32_t l = 0, gen = 0, discard = 0;
	prism_wire_get_u32(rd, &l);
	prism_wire_get_u32(rd, &gen);
	prism_wire_get_u32(rd, &discard);
	struct hosted *h = hosted_of(n->remote, c, l, gen);
	if (!h)
		return;
	/* Nobody reads what is still to come. */
	qfree_all(&h->waiting);
	h->c = NULL;
	ctl__lease_return(n, l, discard != 0);
}

/* The worker of hosted lease l died (or the lease cannot go on): A hears LOST. */
static void hosted_lost(struct sched_node *n, uint32_t l, int code)
{
	struct node_remote *r = n->remote;
	struct hosted *h = &r->hosted[l];
	if (!h->used)
		return;
	if (h->c) {
		uint32_t v = (uint32_t)code;
		send_small(n, h->c, PEER_M_LOST, h->link, &v, 1);
	}
	h->c = NULL;
	qfree_all(&h->waiting);
	struct sched_lease *ls = sched_lease_at(n->base, l);
	if (atomic_load(&ls->state) == SCHED_LEASE_GRANTED)
		ctl__lease_return(n, l, true);
}

void remote__hosted_lost(struct sched_node *n, uint32_t l, int code)
{
	if (n->remote)
		hosted_lost(n, l, code);
}

void remote__hosted_freed(struct sched_node *n, uint32_t l)
{
	if (n->remote && n->remote->hosted[l].used)
		hosted_clear(n, &n->remote->hosted[l]);
}

/* ---- the node loop's side -------------------------------------------------------------- */

size_t remote__drain(struct sched_node *n)
{
	if (!n->remote)
		return 0;
	return proxies_drain(n) + hosted_drain(n);
}

bool remote__pending(struct sched_node *n)
{
	struct node_remote *r = n->remote;
	if (!r)
		return false;
	for (uint32_t l = 0; l < SCHED_MAX_LEASES; l++) {
		if (r->proxies[l].used && prism_ring_count(r->proxies[l].spec))
			return true;
		if (r->hosted[l].used && prism_ring_count(r->hosted[l].done))
			return true;
	}
	return false;
}

void remote__on_msg(struct sched_node *n, transport_conn *c, prism_id from,
		    const prism_wire_hdr *h, const uint8_t *p)
{
	if (!n->remote)
		return;
	prism_wire_reader rd;
	prism_wire_reader_init(&rd, p, h->len);
	switch (h->type) {
	case PEER_M_LEASE_REQ:
		on_lease_req(n, c, from, h->req_id, &rd);
		break;
	case PEER_M_LEASE_GRANT:
		on_grant(n, c, from, h->req_id, &rd);
		break;
	case PEER_M_LEASE_DENIED:
		on_denied(n, c, h->req_id, &rd);
		break;
	case PEER_M_TASK:
		on_task(n, c, p, h->len);
		break;
	case PEER_M_DONE:
		on_done(n, c, h->req_id, p, h->len);
		break;
	case PEER_M_RETURN:
		on_return(n, c, &rd);
		break;
	case PEER_M_LOST:
		on_lost(n, c, h->req_id, &rd);
		break;
	case PEER_M_FREE:
		on_free(n, c, p, h->len);
		break;
	case PEER_M_RECALL:
		on_recall(n, c, h->req_id);
		break;
	default:
		actors__on_peer(n, c, from, h, p);
		break;
	}
}

void remote__peer_gone(struct sched_node *n, transport_conn *c)
{
	struct node_remote *r = n->remote;
	if (!r)
		return;
	for (uint32_t i = 0; i < r->nouts;) {
		if (r->outs[i].c != c) {
			i++;
			continue;
		}
		struct out_req o = r->outs[i];
		r->outs[i] = r->outs[--r->nouts];
		out_failed(n, &o, PRISM_E_PEER_GONE);
	}
	for (uint32_t i = 0; i < r->nins;) {
		if (r->ins[i].c != c) {
			i++;
			continue;
		}
		pool__code_release(n, r->ins[i].code);
		r->ins[i] = r->ins[--r->nins];
	}
	for (uint32_t l = 0; l < SCHED_MAX_LEASES; l++) {
		if (r->proxies[l].used && r->proxies[l].c == c)
			proxy_lost(n, l, PRISM_E_PEER_GONE);
		if (r->hosted[l].used && r->hosted[l].c == c) {
			r->hosted[l].c = NULL;
			hosted_lost(n, l, PRISM_E_PEER_GONE);
		}
	}
	for (uint32_t i = 0; i < r->nkept;) {
		if (r->kept[i].c != c) {
			i++;
			continue;
		}
		objstore_release(n->os, r->kept[i].id);
		objstore_delete(n->os, r->kept[i].id);
		r->kept[i] = r->kept[--r->nkept];
	}
	actors__peer_gone(n, c);
}

void remote__status(struct sched_node *n, char *buf, size_t len, size_t *off)
{
	struct node_remote *r = n->remote;
	if (!r || *off >= len)
		return;
	uint32_t np = 0, nh = 0;
	for (uint32_t l = 0; l < SCHED_MAX_LEASES; l++) {
		np += r->proxies[l].used;
		nh += r->hosted[l].used;
	}
	*off += (size_t)snprintf(buf + *off, len - *off,
				 "remote leases: %u to other nodes (%u asked, %llu spilled), "
				 "%u for other nodes (%u waiting); tasks %llu sent, %llu run "
				 "here for others\n",
				 np, r->nouts, (unsigned long long)r->spilled, nh, r->nins,
				 (unsigned long long)r->sent_tasks,
				 (unsigned long long)r->recv_tasks);
}
