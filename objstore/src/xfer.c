/* xfer.c — objects between nodes (see objstore/xfer.h). */
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "base/wire.h"
#include "objstore/xfer.h"

#define LOGM "xfer"
/* wr_ids of the transfer's own operations: "XF" in the top 16 bits, then the kind, then
 * the pull's slot. */
#define WR_TAG (0x5846ull << 48)
#define WR_TAG_MASK (0xffffull << 48)
#define WR_READ (1ull << 40)
#define WR_SEND (2ull << 40)
#define WR_SLOT_MASK 0xffffffffull

typedef struct waiter {
	objstore_pull_cb cb;
	void *arg;
} waiter;

/* A transfer into this store. */
typedef struct pull {
	bool used, answered, created;
	prism_id id;
	transport_conn *c;
	uint64_t req_id;
	uint8_t *dst;
	uint64_t size, remote, posted, done;
	uint32_t rkey, inflight;
	int status; /* the first failure; the pull ends once nothing is in flight */
	waiter *w;
	uint32_t nw, capw;
} pull;

/* A pin held for a peer's pull, until its DONE or its link's end. */
typedef struct pin {
	transport_conn *c;
	uint64_t req_id;
	prism_id id;
} pin;

struct objstore_xfer {
	transport *t;
	objstore *os;
	transport_mr *mr;
	uint32_t rkey;
	pull *pulls;
	uint32_t npulls;
	pin *pins;
	uint32_t npins, cappins;
	uint64_t next_req;
	objstore_xfer_stats st;
};

int objstore_xfer_create(transport *t, objstore *os, void *region, size_t region_len,
			 objstore_xfer **out)
{
	*out = NULL;
	if (!t || !os || !region || !region_len)
		return -EINVAL;
	objstore_xfer *x = prism_calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->t = t;
	x->os = os;
	x->next_req = 1;
	int rc = transport_reg(t, region, region_len, TRANSPORT_REMOTE_READ, &x->mr);
	if (rc) {
		prism_free(x);
		return rc;
	}
	transport_mr_desc d;
	transport_mr_desc_get(x->mr, &d);
	x->rkey = d.rkey;
	*out = x;
	return 0;
}

static int send_frame(objstore_xfer *x, transport_conn *c, uint16_t type, uint64_t req_id,
		      const void *p, size_t n)
{
	uint8_t buf[PRISM_WIRE_HDR_SIZE + 64];
	prism_wire_hdr h = {.type = type, .len = (uint32_t)n, .req_id = req_id};
	size_t len;
	int rc = prism_wire_encode(buf, sizeof(buf), &h, p, &len);
	return rc ? rc : transport_send(c, buf, len, WR_TAG | WR_SEND, 0);
	(void)x;
}

/* ---- pulling ------------------------------------------------------------------------- */

static int add_waiter(pull *p, objstore_pull_cb cb, void *arg)
{
	if (p->nw == p->capw) {
		uint32_t cap = p->capw ? 2 * p->capw : 2;
		waiter *w = prism_realloc(p->w, cap * sizeof(*w));
		if (!w)
			return -ENOMEM;
		p->w = w;
		p->capw = cap;
	}
	p->w[p->nw++] = (waiter){cb, arg};
	return 0;
}

/* The pull is over once nothing is in flight: seal or abort, tell the holder, call
 * everyone back, free the slot. */
static void finish(objstore_xfer *x, pull *p)
{
	if (p->inflight)
		return; /* READs still land in the object: wait for them */
	if (p->created) {
		int rc = p->status ? objstore_abort(x->os, p->id) : objstore_seal(x->os, p->id);
		if (rc == 0 && !p->status)
			objstore_release(x->os,
					 p->id); /* the creator's pin: readers take their own */
		if (rc && !p->status)
			p->status = rc;
	}
	if (p->answered && p->c)
		send_frame(x, p->c, OBJSTORE_XFER_M_DONE, p->req_id, NULL, 0);
	if (p->status)
		x->st.pulls_failed++;
	else
		x->st.bytes_pulled += p->size;
	/* Callbacks may start new pulls: free the slot first, from copies. */
	waiter *w = p->w;
	uint32_t nw = p->nw;
	prism_id id = p->id;
	int status = p->status;
	*p = (pull){0};
	for (uint32_t i = 0; i < nw; i++)
		w[i].cb(w[i].arg, status, id);
	prism_free(w);
}

static void fail(objstore_xfer *x, pull *p, int status)
{
	if (!p->status)
		p->status = status;
	finish(x, p);
}

static void post_reads(objstore_xfer *x, pull *p)
{
	uint32_t slot = (uint32_t)(p - x->pulls);
	while (p->inflight < OBJSTORE_XFER_DEPTH && p->posted < p->size) {
		uint64_t n = p->size - p->posted;
		if (n > OBJSTORE_XFER_CHUNK)
			n = OBJSTORE_XFER_CHUNK;
		int rc = transport_read(p->c, p->dst + p->posted, (size_t)n,
					p->remote + p->posted, p->rkey, WR_TAG | WR_READ | slot,
					TRANSPORT_SIGNALED);
		if (rc) {
			/* A link that went down under the pull (the holder died: its other
			 * READs fail with PEER_GONE or FLUSHED) refuses posts with CLOSED;
			 * the pull's reason is the holder's, so that the caller tries
			 * another holder.  CLOSED itself means this node is closing. */
			fail(x, p, rc == PRISM_E_CLOSED ? PRISM_E_PEER_GONE : rc);
			return;
		}
		p->posted += n;
		p->inflight++;
	}
}

int objstore_xfer_pull(objstore_xfer *x, transport_conn *holder, prism_id id,
		       objstore_pull_cb cb, void *arg)
{
	if (!holder || !cb || prism_id_is_nil(id))
		return -EINVAL;
	if (objstore_contains(x->os, id)) {
		cb(arg, 0, id);
		return 0;
	}
	uint32_t free_slot = x->npulls;
	for (uint32_t i = 0; i < x->npulls; i++) {
		pull *p = &x->pulls[i];
		if (p->used && prism_id_eq(p->id, id) && !p->status) {
			x->st.pulls_shared++; /* one transfer serves every request */
			return add_waiter(p, cb, arg);
		}
		if (!p->used && free_slot == x->npulls)
			free_slot = i;
	}
	if (free_slot == x->npulls) {
		uint32_t n = x->npulls ? 2 * x->npulls : 8;
		pull *v = prism_realloc(x->pulls, n * sizeof(*v));
		if (!v)
			return -ENOMEM;
		memset(v + x->npulls, 0, (n - x->npulls) * sizeof(*v));
		x->pulls = v;
		x->npulls = n;
	}
	pull *p = &x->pulls[free_slot];
	*p = (pull){.used = true, .id = id, .c = holder, .req_id = x->next_req++};
	int rc = add_waiter(p, cb, arg);
	if (rc == 0)
		rc = send_frame(x, holder, OBJSTORE_XFER_M_PULL, p->req_id, id.b,
				PRISM_ID_SIZE);
	if (rc) {
		prism_free(p->w);
		*p = (pull){0};
		return rc;
	}
	x->st.pulls++;
	return 0;
}

static pull *find_pull(objstore_xfer *x, transport_conn *c, uint64_t req_id)
{
	for (uint32_t i = 0; i < x->npulls; i++)
		if (x->pulls[i].used && x->pulls[i].c == c && x->pulls[i].req_id == req_id)
			return &x->pulls[i];
	return NULL;
}

static int on_pull_ok(objstore_xfer *x, transport_conn *c, const prism_wire_hdr *h,
		      const uint8_t *b)
{
	if (h->len != 24)
		return PRISM_E_PROTO;
	pull *p = find_pull(x, c, h->req_id);
	if (!p || p->answered)
		return PRISM_E_PROTO;
	int status = (int)prism_le32_load(b);
	if (status) {
		fail(x, p, status);
		return 0;
	}
	p->answered = true; /* the holder pinned it: it gets a DONE whatever happens */
	p->size = prism_le64_load(b + 4);
	p->remote = prism_le64_load(b + 12);
	p->rkey = prism_le32_load(b + 20);
	void *dst;
	int rc = objstore_create(x->os, p->id, (size_t)p->size, &dst);
	if (rc == -EEXIST && objstore_contains(x->os, p->id)) {
		finish(x, p); /* it arrived by another way meanwhile */
		return 0;
	}
	if (rc) {
		fail(x, p, rc);
		return 0;
	}
	p->created = true;
	p->dst = dst;
	if (p->size == 0)
		finish(x, p);
	else
		post_reads(x, p);
	return 0;
}

static void on_read(objstore_xfer *x, const transport_event *ev)
{
	uint64_t slot = ev->wr_id & WR_SLOT_MASK;
	if (slot >= x->npulls || !x->pulls[slot].used || !x->pulls[slot].inflight)
		return;
	pull *p = &x->pulls[slot];
	p->inflight--;
	if (ev->status) {
		fail(x, p, ev->status);
		return;
	}
	/* READs on one link complete in posting order: this is the oldest chunk. */
	uint64_t n = p->size - p->done;
	p->done += n > OBJSTORE_XFER_CHUNK ? OBJSTORE_XFER_CHUNK : n;
	if (p->status) {
		finish(x, p);
		return;
	}
	if (p->done == p->size)
		finish(x, p);
	else
		post_reads(x, p);
}

/* ---- serving ----------------------------------------------------------------------- */

static int on_pull(objstore_xfer *x, transport_conn *c, const prism_wire_hdr *h,
		   const uint8_t *b)
{
	if (h->len != PRISM_ID_SIZE)
		return PRISM_E_PROTO;
	prism_id id;
	memcpy(id.b, b, PRISM_ID_SIZE);
	const void *data = NULL;
	size_t size = 0;
	int status = objstore_get(x->os, id, &data, &size);
	if (status == 0 && x->npins == x->cappins) {
		uint32_t cap = x->cappins ? 2 * x->cappins : 16;
		pin *v = prism_realloc(x->pins, cap * sizeof(*v));
		if (v) {
			x->pins = v;
			x->cappins = cap;
		} else {
			objstore_release(x->os, id);
			status = -ENOMEM;
		}
	}
	if (status == 0) {
		x->pins[x->npins++] = (pin){c, h->req_id, id};
		x->st.served++;
	} else {
		x->st.serve_missing += status == -ENOENT;
	}
	uint8_t a[24];
	prism_le32_store(a, (uint32_t)status);
	prism_le64_store(a + 4, status ? 0 : size);
	prism_le64_store(a + 12, status ? 0 : (uint64_t)(uintptr_t)data);
	prism_le32_store(a + 20, status ? 0 : x->rkey);
	return send_frame(x, c, OBJSTORE_XFER_M_PULL_OK, h->req_id, a, sizeof(a));
}

static void unpin(objstore_xfer *x, uint32_t i)
{
	objstore_release(x->os, x->pins[i].id);
	x->pins[i] = x->pins[--x->npins];
}

static int on_done(objstore_xfer *x, transport_conn *c, const prism_wire_hdr *h)
{
	if (h->len)
		return PRISM_E_PROTO;
	for (uint32_t i = 0; i < x->npins; i++)
		if (x->pins[i].c == c && x->pins[i].req_id == h->req_id) {
			unpin(x, i);
			return 0;
		}
	return PRISM_E_PROTO;
}

/* ---- events ------------------------------------------------------------------------ */

static void on_closed(objstore_xfer *x, transport_conn *c, int status)
{
	for (uint32_t i = 0; i < x->npins;)
		if (x->pins[i].c == c)
			unpin(x, i);
		else
			i++;
	for (uint32_t i = 0; i < x->npulls; i++) {
		pull *p = &x->pulls[i];
		if (!p->used || p->c != c)
			continue;
		p->c = NULL; /* no DONE on a dead link */
		p->answered = false;
		fail(x, p, status ? status : PRISM_E_PEER_GONE);
	}
}

bool objstore_xfer_event(objstore_xfer *x, const transport_event *ev)
{
	switch (ev->kind) {
	case TRANSPORT_EV_RECV: {
		prism_wire_hdr h;
		const uint8_t *payload;
		if (prism_wire_decode(ev->data, ev->len, 64, &h, &payload) != 0 ||
		    h.type < OBJSTORE_XFER_M_PULL || h.type > OBJSTORE_XFER_M_DONE)
			return false;
		int rc = prism_wire_frame_len(&h) != ev->len ? PRISM_E_PROTO
			 : h.type == OBJSTORE_XFER_M_PULL    ? on_pull(x, ev->conn, &h, payload)
			 : h.type == OBJSTORE_XFER_M_PULL_OK
				 ? on_pull_ok(x, ev->conn, &h, payload)
				 : on_done(x, ev->conn, &h);
		if (rc) {
			PRISM_LOG_W(LOGM, "dropping a link: a malformed transfer message (%s)",
				    prism_strerror(rc));
			transport_close(ev->conn);
		}
		return true;
	}
	case TRANSPORT_EV_READ:
		if ((ev->wr_id & WR_TAG_MASK) != WR_TAG)
			return false;
		on_read(x, ev);
		return true;
	case TRANSPORT_EV_SEND:
		return (ev->wr_id & WR_TAG_MASK) == WR_TAG;
	case TRANSPORT_EV_CLOSED:
		on_closed(x, ev->conn, ev->status);
		return false;
	default:
		return false;
	}
}

void objstore_xfer_stats_get(const objstore_xfer *x, objstore_xfer_stats *out)
{
	*out = x->st;
}

void objstore_xfer_destroy(objstore_xfer *x)
{
	if (!x)
		return;
	while (x->npins)
		unpin(x, 0);
	for (uint32_t i = 0; i < x->npulls; i++) {
		pull *p = &x->pulls[i];
		if (!p->used)
			continue;
		/* A copy with READs still in flight is left CREATED (the transport may
		 * still write into it; the store frees it with this client's slot); the
		 * others are aborted.  Their waiters are told either way. */
		if (p->inflight)
			p->created = false;
		p->inflight = 0;
		p->answered = false;
		fail(x, p, PRISM_E_CLOSED);
	}
	transport_dereg(x->mr);
	prism_free(x->pulls);
	prism_free(x->pins);
	prism_free(x);
}
