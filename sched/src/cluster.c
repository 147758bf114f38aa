/* cluster.c — a node's part in a cluster (DESIGN.md sections 2, 6, 7).
 *
 * On the head: the GCS, as a one-replica chain and its configuration master, served in
 * this loop (the embedded default; prism-gcs runs it as separate processes).  On every
 * node: a GCS client, a transport endpoint for its peers (remote tasks and objects
 * arrive there), registration in the node table with a heartbeat every BEAT_NS that
 * carries the node's load, free resources and object-store use, and a view of every
 * node, refreshed by a scan of the node table every VIEW_NS.  On the head, the monitor:
 * a node whose heartbeat has not changed for the node timeout (measured on the head's own
 * clock, so hosts' clocks need not agree) is written back as dead, and everyone's view
 * drops it from scheduling.
 *
 * Every component is a transport endpoint polled from the loop: an fd watch wakes the
 * loop when one has events, and a flush hook polls them all each iteration so what timers
 * and messages queued leaves at once.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/wire.h"
#include "gcs/chain.h"
#include "gcs/record.h"
#include "node_int.h"
#include "objstore/xfer.h"
#include "sched/place.h"

#define LOGM "cluster"
/* 100 ms between heartbeats: a node's load is at most this stale in the global view. */
#define BEAT_NS (100 * PRISM_NS_PER_MS)
/* 500 ms between refreshes of the view of every node (a scan of the node table). */
#define VIEW_NS (500 * PRISM_NS_PER_MS)
/* 3 s without a heartbeat: dead.  Thirty missed beats, far beyond a loaded VM's
 * hiccups, short enough that work moves off a dead node promptly. */
#define DEFAULT_NODE_TIMEOUT_NS (3 * PRISM_NS_PER_SEC)

enum { C_REPLICA, C_MASTER, C_CLIENT, C_PEERS, C_COUNT };

struct node_cluster {
	struct sched_node *n;
	bool head;
	gcs_replica *replica;
	gcs_master *master;
	gcs_client *gcs;
	transport *t;        /* peers */
	objstore_xfer *xfer; /* objects pulled from and served to peers over t */
	/* Links to other nodes, by node id: made on demand, or accepted (the peer says who
	 * it is first, in a PEER_HELLO). */
	struct peer {
		prism_id id;
		transport_conn *c;
		bool up;
		/* Frames sent before the link was up (a link we made): sent, in order,
		 * after our HELLO once it is. */
		struct pending {
			uint8_t *buf;
			size_t len;
		} * pend;
		uint32_t npend, cappend;
	} * peers;
	uint32_t npeers, cappeers;
	prism_loop_io *io[C_COUNT];
	prism_loop_hook *flush;
	prism_loop_timer *beat;
	char gcs_addr[TRANSPORT_ADDR_MAX]; /* the master: where nodes join */
	char addr[TRANSPORT_ADDR_MAX];     /* this node's transport */
	prism_id id;
	uint64_t timeout_ns, next_view;
	int join_err;    /* why joining failed, or 0 */
	bool registered; /* a heartbeat was acknowledged */
	uint64_t beats_ok, beats_failed;
	/* The view: every node the node table holds, as of the last scan. */
	struct cluster_node *view, *next;
	uint32_t nview, nnext, capview, capnext;
	bool scanning;
	uint64_t view_ns;
	uint32_t place_rr;        /* spreads equally good nodes (sched_place_pick's start) */
	uint64_t published;       /* object locations written to the GCS */
	uint64_t pulls_elsewhere; /* pulls sent to another holder than the one named */
};

/* One node of the view. */
struct cluster_node {
	prism_id id;
	char addr[TRANSPORT_ADDR_MAX];
	uint8_t state;
	uint32_t load, nres;
	struct {
		char name[SCHED_RES_NAME];
		uint64_t total, avail;
	} res[SCHED_MAX_RES];
	uint64_t store_used, store_cap;
	uint64_t beat;    /* its heartbeat value */
	uint64_t seen_ns; /* our clock when that value first showed */
	uint32_t placed;  /* leases sent there since this view was read */
};

/* ---- links to other nodes ------------------------------------------------------------- */

/* The daemons' own frame types on peer links (the transfer's are objstore/xfer.h's). */
enum { PEER_M_HELLO = 120 /* req_id 0; the 16-byte node id of the sender */ };
/* The largest frame a peer may send: a task or completion (SCHED_MSG_MAX) and its
 * prefix, or a lease request with its program's environment. */
#define PEER_FRAME_MAX (4u << 20)

static struct peer *peer_find(struct node_cluster *k, prism_id id)
{
	for (uint32_t i = 0; i < k->npeers; i++)
		if (prism_id_eq(k->peers[i].id, id))
			return &k->peers[i];
	return NULL;
}

static struct peer *peer_by_conn(struct node_cluster *k, const transport_conn *c)
{
	for (uint32_t i = 0; i < k->npeers; i++)
		if (k->peers[i].c == c)
			return &k->peers[i];
	return NULL;
}

static struct peer *peer_add(struct node_cluster *k, prism_id id, transport_conn *c)
{
	if (k->npeers == k->cappeers) {
		uint32_t cap = k->cappeers ? 2 * k->cappeers : 8;
		struct peer *v = prism_realloc(k->peers, cap * sizeof(*v));
		if (!v)
			return NULL;
		k->peers = v;
		k->cappeers = cap;
	}
	k->peers[k->npeers] = (struct peer){.id = id, .c = c};
	return &k->peers[k->npeers++];
}

/* wr_ids of frames sent from a copy, freed when the send completes: "CL" on top. */
#define PEER_WR_TAG (0x434cull << 48)
#define PEER_WR_TAG_MASK (0xffffull << 48)

static void peer_drop(struct node_cluster *k, uint32_t i)
{
	struct peer *p = &k->peers[i];
	for (uint32_t j = 0; j < p->npend; j++)
		prism_free(p->pend[j].buf);
	prism_free(p->pend);
	k->peers[i] = k->peers[--k->npeers];
}

/* Send one frame from a copy (a link takes a frame above TRANSPORT_INLINE_MAX in place,
 * so the copy must live until the send completes). */
static int send_copy(transport_conn *c, uint8_t *copy, size_t len)
{
	int rc =
		transport_send(c, copy, len, PEER_WR_TAG | (uintptr_t)copy, TRANSPORT_SIGNALED);
	if (rc)
		prism_free(copy);
	return rc;
}

int cluster__send(struct sched_node *n, transport_conn *c, const void *frame, size_t len)
{
	struct node_cluster *k = n->cluster;
	struct peer *p = k ? peer_by_conn(k, c) : NULL;
	if (p && p->up && len <= TRANSPORT_INLINE_MAX)
		return transport_send(c, frame, len, 0, 0);
	uint8_t *copy = prism_malloc(len);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, frame, len);
	if (!p || p->up)
		return send_copy(c, copy, len);
	if (p->npend == p->cappend) {
		uint32_t cap = p->cappend ? 2 * p->cappend : 4;
		struct pending *v = prism_realloc(p->pend, cap * sizeof(*v));
		if (!v) {
			prism_free(copy);
			return -ENOMEM;
		}
		p->pend = v;
		p->cappend = cap;
	}
	p->pend[p->npend++] = (struct pending){copy, len};
	return 0;
}

static void send_hello(struct node_cluster *k, transport_conn *c)
{
	uint8_t buf[PRISM_WIRE_HDR_SIZE + PRISM_ID_SIZE];
	prism_wire_hdr h = {.type = PEER_M_HELLO, .len = PRISM_ID_SIZE};
	size_t len;
	if (prism_wire_encode(buf, sizeof(buf), &h, k->id.b, &len) == 0)
		transport_send(c, buf, len, 0, 0);
}

/* The link to node id (at addr), made if there is none. */
transport_conn *cluster__peer(struct sched_node *n, prism_id id, const char *addr)
{
	struct node_cluster *k = n->cluster;
	if (!k)
		return NULL;
	struct peer *p = peer_find(k, id);
	if (p)
		return p->c;
	transport_conn *c;
	if (transport_connect(k->t, addr, NULL, &c) != 0)
		return NULL;
	p = peer_add(k, id, c);
	if (!p) {
		transport_close(c);
		return NULL;
	}
	return c; /* HELLO goes first once the link is up (TRANSPORT_EV_CONNECTED) */
}

static void peer_event(struct node_cluster *k, const transport_event *ev)
{
	if (objstore_xfer_event(k->xfer, ev))
		return;
	switch (ev->kind) {
	case TRANSPORT_EV_CONNECTED:
		for (uint32_t i = 0; i < k->npeers; i++) {
			struct peer *p = &k->peers[i];
			if (p->c != ev->conn)
				continue;
			send_hello(k, p->c);
			p->up = true;
			for (uint32_t j = 0; j < p->npend; j++)
				send_copy(p->c, p->pend[j].buf, p->pend[j].len);
			p->npend = 0;
		}
		break;
	case TRANSPORT_EV_SEND:
		if ((ev->wr_id & PEER_WR_TAG_MASK) == PEER_WR_TAG)
			prism_free((void *)(uintptr_t)(ev->wr_id & ~PEER_WR_TAG_MASK));
		break;
	case TRANSPORT_EV_RECV: {
		prism_wire_hdr h;
		const uint8_t *p;
		int rc = prism_wire_decode(ev->data, ev->len, PEER_FRAME_MAX, &h, &p);
		if (rc == 0 && prism_wire_frame_len(&h) == ev->len &&
		    h.type >= PEER_M_LEASE_REQ && h.type <= PEER_M_ACTOR_KILL) {
			struct peer *x = peer_by_conn(k, ev->conn);
			if (x) {
				remote__on_msg(k->n, ev->conn, x->id, &h, p);
				break;
			}
		}
		if (rc == 0 && h.type == PEER_M_HELLO && h.len == PRISM_ID_SIZE &&
		    prism_wire_frame_len(&h) == ev->len) {
			prism_id id;
			memcpy(id.b, p, PRISM_ID_SIZE);
			struct peer *x = peer_find(k, id);
			if (!x)
				x = peer_add(k, id, ev->conn);
			if (x && x->c != ev->conn && !x->up) {
				/* Both connected at once: keep the link the lower id made. */
				if (memcmp(id.b, k->id.b, PRISM_ID_SIZE) < 0)
					x->c = ev->conn;
			}
			if (x && x->c == ev->conn)
				x->up = true;
			break;
		}
		PRISM_LOG_W(LOGM, "dropping a peer link: an unknown message (%s, type %u)",
			    rc ? prism_strerror(rc) : "no error", rc ? 0u : (unsigned)h.type);
		transport_close(ev->conn);
		break;
	}
	case TRANSPORT_EV_CLOSED:
		remote__peer_gone(k->n, ev->conn);
		for (uint32_t i = 0; i < k->npeers; i++)
			if (k->peers[i].c == ev->conn) {
				peer_drop(k, i);
				break;
			}
		break;
	default:
		break;
	}
}

/* ---- objects between nodes: pulls, holders, locations ----------------------------------
 *
 * A pull goes to the holder the caller names (the node that asked for the work, which
 * holds its arguments; or the node that ran it, for results).  When that fails for a
 * reason another copy could cure (the holder has no such object, or its link broke), the
 * object's record in the GCS (GCS_T_OBJECT) names the other holders, tried in turn; the
 * caller hears the first failure only when none had it.  Every copy made here is
 * published there: the record gains this node (and the holder it came from).  The
 * record is read, extended and written back by whichever node made a copy, without a
 * compare-and-swap, so two nodes publishing one object at the same moment may leave one
 * of them out: a reader then has one holder fewer to try; nothing else depends on the
 * list, and every entry is checked by the pull itself (a stale one answers -ENOENT). */

struct pull_try {
	struct sched_node *n;
	prism_id id;
	objstore_pull_cb cb;
	void *arg;
	prism_id from; /* the holder being tried */
	prism_id tried[8];
	uint32_t ntried;
	int first_err;
};

static void pull_step(void *arg, int status, prism_id id);

static bool pull_tried(const struct pull_try *t, prism_id node)
{
	for (uint32_t i = 0; i < t->ntried; i++)
		if (prism_id_eq(t->tried[i], node))
			return true;
	return false;
}

/* Pull from node `holder`; 0 when started (pull_step() follows). */
static int pull_from(struct pull_try *t, prism_id holder, const char *addr)
{
	struct node_cluster *k = t->n->cluster;
	transport_conn *c = cluster__peer(t->n, holder, addr);
	if (!c)
		return PRISM_E_PEER_GONE;
	t->from = holder;
	if (t->ntried < sizeof(t->tried) / sizeof(t->tried[0]))
		t->tried[t->ntried++] = holder;
	return objstore_xfer_pull(k->xfer, c, t->id, pull_step, t);
}

static void pull_end(struct pull_try *t, int status)
{
	t->cb(t->arg, status, t->id);
	prism_free(t);
}

/* The object's record: try a holder not tried yet. */
static void on_holders(void *arg, int status, const uint8_t *val, size_t len, uint64_t version)
{
	(void)version;
	struct pull_try *t = arg;
	struct node_cluster *k = t->n->cluster;
	gcs_object_rec rec;
	if (status == 0 && k && gcs_object_decode(val, len, &rec) == 0) {
		for (uint32_t i = 0; i < rec.n_locations; i++) {
			prism_id h = rec.locations[i];
			if (prism_id_eq(h, k->id) || pull_tried(t, h))
				continue;
			for (uint32_t j = 0; j < k->nview; j++) {
				const struct cluster_node *x = &k->view[j];
				if (!prism_id_eq(x->id, h) || x->state != GCS_NODE_ALIVE)
					continue;
				PRISM_LOG_D(LOGM, "pull: trying another holder, %s", x->addr);
				if (pull_from(t, h, x->addr) == 0) {
					k->pulls_elsewhere++;
					return;
				}
			}
		}
	}
	pull_end(t, t->first_err);
}

struct publish {
	struct sched_node *n;
	prism_id id, from;
	uint64_t size;
};

static void on_published(void *arg, int status, uint64_t seq)
{
	(void)seq;
	struct sched_node *n = arg;
	if (status)
		PRISM_LOG_D(LOGM, "cannot publish an object's location: %s",
			    prism_strerror(status));
	else if (n->cluster)
		n->cluster->published++;
}

/* Add this node (and the holder it pulled from) to the object's record. */
static void on_record(void *arg, int status, const uint8_t *val, size_t len, uint64_t version)
{
	(void)version;
	struct publish *p = arg;
	struct node_cluster *k = p->n->cluster;
	gcs_object_rec rec = {.id = p->id, .size = p->size};
	uint8_t *buf = NULL;
	if (!k || (status && status != -ENOENT) ||
	    (status == 0 && gcs_object_decode(val, len, &rec) != 0))
		goto out;
	prism_id add[2] = {p->from, k->id};
	for (int a = 0; a < 2; a++) {
		bool have = false;
		for (uint32_t i = 0; i < rec.n_locations && !have; i++)
			have = prism_id_eq(rec.locations[i], add[a]);
		if (!have && rec.n_locations < GCS_OBJECT_MAX_LOCATIONS)
			rec.locations[rec.n_locations++] = add[a];
	}
	size_t cap = 256 + GCS_OBJECT_MAX_LOCATIONS * PRISM_ID_SIZE, out = 0;
	buf = prism_malloc(cap);
	if (buf && gcs_object_encode(&rec, buf, cap, &out) == 0)
		gcs_client_put(k->gcs, GCS_T_OBJECT, p->id.b, PRISM_ID_SIZE, buf, out,
			       on_published, p->n);
out:
	prism_free(buf);
	prism_free(p);
}

static void publish(struct sched_node *n, prism_id id, prism_id from)
{
	struct node_cluster *k = n->cluster;
	const void *data;
	size_t size;
	if (!k || !k->gcs || objstore_get(n->os, id, &data, &size) != 0)
		return;
	objstore_release(n->os, id);
	struct publish *p = prism_malloc(sizeof(*p));
	if (!p)
		return;
	*p = (struct publish){n, id, from, size};
	if (gcs_client_get(k->gcs, GCS_T_OBJECT, id.b, PRISM_ID_SIZE, on_record, p) != 0)
		prism_free(p);
}

static void pull_step(void *arg, int status, prism_id id)
{
	(void)id;
	struct pull_try *t = arg;
	struct node_cluster *k = t->n->cluster;
	if (status == 0) {
		publish(t->n, t->id, t->from);
		pull_end(t, 0);
		return;
	}
	if (!t->first_err)
		t->first_err = status;
	/* Another copy can help when this one is missing or out of reach; not when this
	 * node has no room, or is closing. */
	bool elsewhere = status == -ENOENT || status == PRISM_E_PEER_GONE ||
			 status == PRISM_E_FLUSHED || status == PRISM_E_PIPE;
	if (!elsewhere || !k || !k->gcs ||
	    gcs_client_get(k->gcs, GCS_T_OBJECT, t->id.b, PRISM_ID_SIZE, on_holders, t) != 0)
		pull_end(t, t->first_err);
}

/* Pull object id from node holder (at addr) into this node's store, or from another
 * holder the GCS names. */
int cluster__pull(struct sched_node *n, prism_id holder, const char *addr, prism_id id,
		  objstore_pull_cb cb, void *arg)
{
	struct pull_try *t = prism_calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	*t = (struct pull_try){.n = n, .id = id, .cb = cb, .arg = arg};
	int rc = pull_from(t, holder, addr);
	if (rc == PRISM_E_PEER_GONE) {
		t->first_err = rc;
		struct node_cluster *k = n->cluster;
		rc = k && k->gcs ? gcs_client_get(k->gcs, GCS_T_OBJECT, id.b, PRISM_ID_SIZE,
						  on_holders, t)
				 : rc;
	}
	if (rc)
		prism_free(t);
	return rc;
}

/* ---- the actor table ------------------------------------------------------------------ */

static void on_actor_put(void *arg, int status, uint64_t seq)
{
	(void)arg;
	(void)seq;
	if (status)
		PRISM_LOG_W(LOGM, "cannot record an actor in the GCS: %s",
			    prism_strerror(status));
}

void cluster__actor_put(struct sched_node *n, prism_id id, uint8_t state, uint32_t restarts,
			const char *name)
{
	struct node_cluster *k = n->cluster;
	if (!k || !k->gcs)
		return;
	gcs_actor_rec rec = {.id = id,
			     .node = k->id,
			     .state = state,
			     .restarts = restarts,
			     .name = {name, (uint32_t)strlen(name)}};
	uint8_t buf[1024];
	size_t len;
	int rc = gcs_actor_encode(&rec, buf, sizeof(buf), &len);
	if (rc == 0)
		rc = gcs_client_put(k->gcs, GCS_T_ACTOR, id.b, PRISM_ID_SIZE, buf, len,
				    on_actor_put, NULL);
	if (rc)
		on_actor_put(NULL, rc, 0);
}

struct actor_find {
	struct sched_node *n;
	cluster_actor_cb cb;
	void *arg;
};

static void on_actor_get(void *arg, int status, const uint8_t *val, size_t len,
			 uint64_t version)
{
	(void)version;
	struct actor_find *f = arg;
	gcs_actor_rec rec = {0};
	transport_conn *c = NULL;
	if (status == 0 && gcs_actor_decode(val, len, &rec) != 0)
		status = PRISM_E_CORRUPT;
	if (status == 0 && rec.state != GCS_ACTOR_DEAD) {
		struct node_cluster *k = f->n->cluster;
		const struct cluster_node *x = NULL;
		for (uint32_t i = 0; k && i < k->nview && !x; i++)
			if (prism_id_eq(k->view[i].id, rec.node))
				x = &k->view[i];
		if (k && prism_id_eq(rec.node, k->id))
			status = -ENOENT; /* ours, and no longer here */
		else if (!x || x->state != GCS_NODE_ALIVE)
			status = PRISM_E_ACTOR_DIED; /* its node is gone */
		else if (!(c = cluster__peer(f->n, rec.node, x->addr)))
			status = PRISM_E_PEER_GONE;
	}
	f->cb(f->arg, status, c, rec.node, rec.state);
	prism_free(f);
}

int cluster__actor_find(struct sched_node *n, prism_id id, cluster_actor_cb cb, void *arg)
{
	struct node_cluster *k = n->cluster;
	if (!k || !k->gcs)
		return -ENOENT;
	struct actor_find *f = prism_malloc(sizeof(*f));
	if (!f)
		return -ENOMEM;
	*f = (struct actor_find){n, cb, arg};
	int rc = gcs_client_get(k->gcs, GCS_T_ACTOR, id.b, PRISM_ID_SIZE, on_actor_get, f);
	if (rc)
		prism_free(f);
	return rc;
}

/* ---- polling the endpoints ------------------------------------------------------------ */

static void poll_all(struct node_cluster *k)
{
	/* Bounded: a component with endless input still lets the loop go round. */
	for (int round = 0; round < 4; round++) {
		int busy = 0;
		if (k->replica)
			busy += gcs_replica_poll(k->replica, 0) > 0;
		if (k->master)
			busy += gcs_master_poll(k->master, 0) > 0;
		if (k->gcs)
			busy += gcs_client_poll(k->gcs, 0) > 0;
		if (k->t) {
			transport_event ev[32];
			int n = transport_poll(k->t, ev, 32, 0);
			for (int i = 0; i < n; i++)
				peer_event(k, &ev[i]);
			busy += n > 0;
		}
		if (!busy)
			break;
	}
}

static void on_fd(prism_loop_io *io, int status, unsigned events, void *arg)
{
	(void)io;
	(void)status;
	(void)events;
	poll_all(arg);
}

static void on_flush(prism_loop *loop, void *arg)
{
	(void)loop;
	poll_all(arg);
}

static int watch(struct node_cluster *k, int which, int fd)
{
	int rc = prism_loop_io_create(k->n->loop, fd, on_fd, k, &k->io[which]);
	return rc ? rc : prism_loop_io_start(k->io[which], PRISM_LOOP_READABLE);
}

/* ---- heartbeats ------------------------------------------------------------------------- */

/* Wall-clock ns, for the record's heartbeat time (readers compare values, not clocks). */
static uint64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_beat_done(void *arg, int status, uint64_t seq)
{
	(void)seq;
	struct node_cluster *k = arg;
	if (status) {
		if (k->beats_failed++ % 50 == 0)
			PRISM_LOG_W(LOGM, "heartbeat to the GCS failed: %s",
				    prism_strerror(status));
		return;
	}
	if (!k->registered)
		PRISM_LOG_I(LOGM, "joined the cluster at %s as %s", k->gcs_addr, k->addr);
	k->registered = true;
	k->beats_ok++;
}

static int put_node(struct node_cluster *k, const gcs_node_rec *rec)
{
	uint8_t buf[8192];
	size_t len;
	int rc = gcs_node_encode(rec, buf, sizeof(buf), &len);
	if (rc == 0)
		rc = gcs_client_put(k->gcs, GCS_T_NODE, rec->id.b, PRISM_ID_SIZE, buf, len,
				    on_beat_done, k);
	return rc;
}

static void heartbeat(struct node_cluster *k)
{
	struct sched_node *n = k->n;
	gcs_node_rec rec = {.id = k->id,
			    .address = {k->addr, (uint32_t)strlen(k->addr)},
			    .heartbeat_ns = realtime_ns(),
			    .load = n->nreqs,
			    .state = GCS_NODE_ALIVE};
	for (uint32_t r = 0; r < n->nres && r < GCS_NODE_MAX_RESOURCES; r++) {
		gcs_str name = {n->hdr->res[r].name, (uint32_t)strlen(n->hdr->res[r].name)};
		rec.resources[r] = (gcs_resource){name, n->hdr->res[r].total_milli};
		uint64_t used = n->res_used[r];
		rec.available[r] =
			(gcs_resource){name, used < n->hdr->res[r].total_milli
						     ? n->hdr->res[r].total_milli - used
						     : 0};
		rec.n_resources = rec.n_available = r + 1;
	}
	struct objstore_stats st;
	if (n->os && objstore_get_stats(n->os, &st) == 0) {
		rec.store_used = st.used_bytes;
		rec.store_capacity = st.arena_bytes;
	}
	int rc = put_node(k, &rec);
	if (rc && rc != -EAGAIN && k->beats_failed++ % 50 == 0)
		PRISM_LOG_W(LOGM, "cannot send a heartbeat: %s", prism_strerror(rc));
}

/* ---- the view of every node, and the head's monitor ---------------------------------- */

static void on_node_entry(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
			  size_t vlen, uint64_t version)
{
	(void)key;
	(void)klen;
	(void)version;
	struct node_cluster *k = arg;
	gcs_node_rec rec;
	if (gcs_node_decode(val, vlen, &rec) != 0)
		return; /* the store takes only valid records; nothing else can be here */
	if (k->nnext == k->capnext) {
		uint32_t cap = k->capnext ? 2 * k->capnext : 16;
		struct cluster_node *v = prism_realloc(k->next, cap * sizeof(*v));
		if (!v)
			return;
		k->next = v;
		k->capnext = cap;
	}
	struct cluster_node *x = &k->next[k->nnext++];
	memset(x, 0, sizeof(*x));
	x->id = rec.id;
	snprintf(x->addr, sizeof(x->addr), "%.*s", (int)rec.address.len, rec.address.p);
	x->state = rec.state;
	x->load = rec.load;
	x->beat = rec.heartbeat_ns;
	x->store_used = rec.store_used;
	x->store_cap = rec.store_capacity;
	for (uint32_t r = 0; r < rec.n_resources && r < SCHED_MAX_RES; r++) {
		snprintf(x->res[r].name, sizeof(x->res[r].name), "%.*s",
			 (int)rec.resources[r].name.len, rec.resources[r].name.p);
		x->res[r].total = rec.resources[r].amount_milli;
		x->res[r].avail = r < rec.n_available ? rec.available[r].amount_milli : 0;
		x->nres = r + 1;
	}
	/* When did its heartbeat last change, on our clock? */
	x->seen_ns = prism_now_ns();
	for (uint32_t i = 0; i < k->nview; i++)
		if (prism_id_eq(k->view[i].id, x->id) && k->view[i].beat == x->beat)
			x->seen_ns = k->view[i].seen_ns;
}

/* The head declares a node dead: its record, written back with state DEAD. */
static void declare_dead(struct node_cluster *k, const struct cluster_node *x, uint64_t silent)
{
	char hex[PRISM_ID_HEX_LEN + 1];
	prism_id_to_hex(x->id, hex);
	PRISM_LOG_W(LOGM, "node %.8s at %s sent no heartbeat for %.1f s: declared dead", hex,
		    x->addr, (double)silent / 1e9);
	gcs_node_rec rec = {.id = x->id,
			    .address = {x->addr, (uint32_t)strlen(x->addr)},
			    .heartbeat_ns = x->beat,
			    .load = 0,
			    .state = GCS_NODE_DEAD};
	for (uint32_t r = 0; r < x->nres; r++) {
		gcs_str name = {x->res[r].name, (uint32_t)strlen(x->res[r].name)};
		rec.resources[r] = (gcs_resource){name, x->res[r].total};
		rec.n_resources = r + 1;
	}
	put_node(k, &rec);
}

/* Resource names other nodes have join this node's table with a total of 0, so that
 * clients can ask for them (the daemon sends such requests elsewhere).  Entries are only
 * ever added, name first, count last: a client reading the table sees whole entries. */
static void learn_names(struct node_cluster *k)
{
	struct sched_node_hdr *h = k->n->hdr;
	for (uint32_t i = 0; i < k->nview; i++) {
		const struct cluster_node *x = &k->view[i];
		for (uint32_t r = 0; r < x->nres; r++) {
			uint32_t nres = h->nres;
			const char *name = x->res[r].name;
			if (sched_res_find(h->res, nres, name, strlen(name)) >= 0)
				continue;
			if (nres == SCHED_MAX_RES) {
				PRISM_LOG_W(LOGM,
					    "resource '%s' of node %s: this node's table is "
					    "full (%u names); tasks here cannot ask for it",
					    name, x->addr, SCHED_MAX_RES);
				continue;
			}
			snprintf(h->res[nres].name, sizeof(h->res[nres].name), "%s", name);
			h->res[nres].total_milli = 0;
			h->res[nres].max_milli = 0;
			__atomic_store_n(&h->nres, nres + 1, __ATOMIC_RELEASE);
		}
	}
	/* The most of each any alive node has (this node's own always counts). */
	uint64_t now = prism_now_ns();
	for (uint32_t r = 0; r < h->nres; r++) {
		uint64_t most = h->res[r].total_milli;
		for (uint32_t i = 0; i < k->nview; i++) {
			const struct cluster_node *x = &k->view[i];
			if (x->state != GCS_NODE_ALIVE || now - x->seen_ns >= k->timeout_ns)
				continue;
			for (uint32_t j = 0; j < x->nres; j++)
				if (strcmp(x->res[j].name, h->res[r].name) == 0 &&
				    x->res[j].total > most)
					most = x->res[j].total;
		}
		__atomic_store_n(&h->res[r].max_milli, most, __ATOMIC_RELAXED);
	}
}

/* A fixed mean task duration and link speed until nodes report measured ones: the first
 * only weighs queue lengths against each other; the second is the order of a transfer
 * between nodes over tcp here (bench/README.md, cluster/object_transfer_1gib).  The
 * inputs weighed are those of the task that asked for the lease: later tasks on the
 * same lease may take others. */
#define PLACE_MEAN_TASK_NS PRISM_NS_PER_MS
#define PLACE_BANDWIDTH 1000000000ull

int cluster__place(struct sched_node *n, const uint64_t *milli, uint64_t input_bytes,
		   bool spill, prism_id *id, char *addr, size_t alen)
{
	struct node_cluster *k = n->cluster;
	int none = spill ? PRISM_E_AGAIN : PRISM_E_INFEASIBLE;
	if (!k || !k->nview)
		return none;
	struct sched_place_node *pn = prism_calloc(k->nview, sizeof(*pn));
	if (!pn)
		return -ENOMEM;
	const struct sched_node_hdr *h = n->hdr;
	uint32_t nres = h->nres;
	uint64_t now = prism_now_ns();
	uint32_t self_idx = 0;
	bool self_seen = false;
	for (uint32_t i = 0; i < k->nview; i++) {
		const struct cluster_node *x = &k->view[i];
		struct sched_place_node *p = &pn[i];
		bool self = prism_id_eq(x->id, k->id);
		if (self) {
			self_idx = i;
			self_seen = true;
		}
		p->id = x->id;
		p->alive = x->state == GCS_NODE_ALIVE && now - x->seen_ns < k->timeout_ns;
		p->mean_task_ns = PLACE_MEAN_TASK_NS;
		p->bandwidth = PLACE_BANDWIDTH;
		if (self) {
			/* This node's own state is known now, not as of its last heartbeat. */
			p->alive = true;
			p->queue_len = n->nreqs;
			for (uint32_t r = 0; r < nres; r++) {
				p->total_milli[r] = h->res[r].total_milli;
				p->avail_milli[r] = n->res_used[r] < p->total_milli[r]
							    ? p->total_milli[r] - n->res_used[r]
							    : 0;
			}
		} else {
			p->queue_len = x->load + x->placed;
			for (uint32_t r = 0; r < nres; r++)
				for (uint32_t j = 0; j < x->nres; j++)
					if (strcmp(x->res[j].name, h->res[r].name) == 0) {
						p->total_milli[r] = x->res[j].total;
						p->avail_milli[r] = x->res[j].avail;
					}
		}
		uint64_t cpus = p->total_milli[SCHED_RES_CPU] / 1000;
		p->slots = cpus ? (uint32_t)(cpus < UINT32_MAX ? cpus : UINT32_MAX) : 1;
	}
	struct sched_place_view v = {.nodes = pn, .nnodes = k->nview, .nres = nres};
	struct sched_place_task t = {0};
	for (uint32_t r = 0; r < nres; r++)
		t.demand_milli[r] = milli[r];
	/* The task's store arguments are all here: every other node would pull them. */
	struct sched_place_input in = {
		.size = input_bytes, .holders = &self_idx, .nholders = 1};
	if (input_bytes && self_seen) {
		t.inputs = &in;
		t.ninputs = 1;
	}
	uint32_t best = 0;
	int rc = sched_place_pick(&v, &t, k->place_rr++, &best, NULL);
	prism_free(pn);
	if (rc)
		return rc == PRISM_E_INFEASIBLE ? PRISM_E_INFEASIBLE : none;
	struct cluster_node *x = &k->view[best];
	if (prism_id_eq(x->id, k->id))
		return none; /* this node is still the best place */
	x->placed++;
	*id = x->id;
	snprintf(addr, alen, "%s", x->addr);
	return 0;
}

static void on_view_done(void *arg, int status)
{
	struct node_cluster *k = arg;
	k->scanning = false;
	if (status) {
		PRISM_LOG_W(LOGM, "cannot read the node table: %s", prism_strerror(status));
		k->nnext = 0;
		return;
	}
	struct cluster_node *v = k->view;
	uint32_t cap = k->capview;
	k->view = k->next;
	k->nview = k->nnext;
	k->capview = k->capnext;
	k->next = v;
	k->capnext = cap;
	k->nnext = 0;
	k->view_ns = prism_now_ns();
	learn_names(k);
	if (!k->head)
		return;
	for (uint32_t i = 0; i < k->nview; i++) {
		struct cluster_node *x = &k->view[i];
		uint64_t silent = k->view_ns - x->seen_ns;
		if (x->state == GCS_NODE_ALIVE && silent > k->timeout_ns) {
			declare_dead(k, x, silent);
			x->state = GCS_NODE_DEAD;
		}
	}
}

static void on_beat(prism_loop_timer *t, void *arg)
{
	(void)t;
	struct node_cluster *k = arg;
	int err = 0;
	if (!gcs_client_ready(k->gcs, &err)) {
		if (err && !k->join_err) {
			k->join_err = err;
			PRISM_LOG_E(LOGM, "cannot join the cluster at %s: %s%s", k->gcs_addr,
				    prism_strerror(err),
				    err == PRISM_E_AUTH ? " (is the token file the head's?)"
							: "");
			/* A node that cannot join has nothing to do: it stops. */
			k->n->fatal = err;
			sched_node_stop(k->n);
		}
		return;
	}
	heartbeat(k);
	uint64_t now = prism_now_ns();
	if (!k->scanning && now >= k->next_view) {
		k->next_view = now + VIEW_NS;
		k->scanning = gcs_client_scan(k->gcs, GCS_T_NODE, on_node_entry, on_view_done,
					      k) == 0;
	}
}

/* ---- start, stop ---------------------------------------------------------------------- */

/* The address peers reach this node at: the configured IP, else the local address of a
 * route to the head (a UDP "connect" sends nothing), else 127.0.0.1. */
static void local_ip(const char *node_ip, const char *head, char *ip, size_t len)
{
	if (node_ip && *node_ip) {
		snprintf(ip, len, "%s", node_ip);
		return;
	}
	snprintf(ip, len, "127.0.0.1");
	char host[256];
	const char *h = strncmp(head, "tcp://", 6) == 0 ? head + 6 : head;
	snprintf(host, sizeof(host), "%s", h);
	char *colon = strrchr(host, ':');
	if (!colon)
		return;
	*colon = '\0';
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(9)};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return;
	socklen_t sl = sizeof(sa);
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(s, (struct sockaddr *)&sa, &sl) == 0)
		inet_ntop(AF_INET, &sa.sin_addr, ip, (socklen_t)len);
	close(s);
}

int cluster__start(struct sched_node *n)
{
	const struct sched_node_opts *o = &n->o;
	if (!o->head && !o->cluster_address)
		return 0; /* a lone node */
	struct node_cluster *k = prism_calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	n->cluster = k;
	k->n = n;
	n->hdr->flags |= SCHED_HDR_CLUSTER; /* before any client attaches */
	k->head = o->head;
	k->id = prism_id_new(PRISM_ID_NODE);
	k->timeout_ns = o->node_timeout_ns ? o->node_timeout_ns : DEFAULT_NODE_TIMEOUT_NS;
	char ip[64];
	int rc = 0;
	if (k->head) {
		/* The GCS: a one-replica chain (an ephemeral port) and its master on the
		 * join port, both on this node's IP. */
		local_ip(o->node_ip, "127.0.0.1:1", ip, sizeof(ip));
		char listen[TRANSPORT_ADDR_MAX], raddr[TRANSPORT_ADDR_MAX];
		gcs_replica_opts ro = {.backend = o->transport,
				       .listen = listen,
				       .wal_path = o->gcs_wal,
				       .standby = true};
		memcpy(ro.token, o->token, sizeof(ro.token));
		snprintf(listen, sizeof(listen), "tcp://%s:0",
			 o->node_ip && *o->node_ip ? ip : "0.0.0.0");
		rc = gcs_replica_create(&ro, raddr, sizeof(raddr), &k->replica);
		if (rc == 0) {
			/* The replica's bound address names 0.0.0.0: give the master ours. */
			const char *port = strrchr(raddr, ':');
			char reach[TRANSPORT_ADDR_MAX];
			snprintf(reach, sizeof(reach), "tcp://%s%s", ip, port ? port : ":0");
			const char *addrs[1] = {reach};
			gcs_master_opts mo = {.backend = o->transport,
					      .listen = listen,
					      .timeout_ns = 200 * PRISM_NS_PER_MS,
					      .shards = 1,
					      .replicas = 1,
					      .addrs = addrs};
			memcpy(mo.token, o->token, sizeof(mo.token));
			snprintf(listen, sizeof(listen), "tcp://%s:%u",
				 o->node_ip && *o->node_ip ? ip : "0.0.0.0", o->port);
			rc = gcs_master_open(&mo, k->gcs_addr, sizeof(k->gcs_addr), &k->master);
			if (rc)
				PRISM_LOG_E(LOGM, "cannot serve the GCS on %s: %s", listen,
					    prism_strerror(rc));
			/* Joiners are told the reachable address, not 0.0.0.0. */
			snprintf(k->gcs_addr, sizeof(k->gcs_addr), "tcp://%s:%u", ip, o->port);
		}
	} else {
		snprintf(k->gcs_addr, sizeof(k->gcs_addr), "%s%s",
			 strncmp(o->cluster_address, "tcp://", 6) ? "tcp://" : "",
			 o->cluster_address);
		local_ip(o->node_ip, k->gcs_addr, ip, sizeof(ip));
	}
	if (rc == 0) {
		gcs_client_opts co = {
			.backend = o->transport, .master = k->gcs_addr, .nowait = true};
		memcpy(co.token, o->token, sizeof(co.token));
		rc = gcs_client_open(&co, &k->gcs);
	}
	if (rc == 0) {
		transport_opts to = {.backend = o->transport};
		memcpy(to.token, o->token, sizeof(to.token));
		rc = transport_create(&to, &k->t);
	}
	if (rc == 0) {
		char listen[TRANSPORT_ADDR_MAX], bound[TRANSPORT_ADDR_MAX];
		snprintf(listen, sizeof(listen), "tcp://%s:0", ip);
		rc = transport_listen(k->t, listen, bound, sizeof(bound));
		snprintf(k->addr, sizeof(k->addr), "%s", bound);
	}
	if (rc == 0)
		rc = remote__init(n);
	if (rc == 0)
		rc = objstore_xfer_create(k->t, n->os,
					  sched_seg_at(n->base, n->hdr->objstore_off),
					  n->hdr->objstore_size, &k->xfer);
	if (rc == 0 && k->replica)
		rc = watch(k, C_REPLICA, gcs_replica_fd(k->replica));
	if (rc == 0 && k->master)
		rc = watch(k, C_MASTER, gcs_master_fd(k->master));
	if (rc == 0)
		rc = watch(k, C_CLIENT, gcs_client_fd(k->gcs));
	if (rc == 0)
		rc = watch(k, C_PEERS, transport_fd(k->t));
	if (rc == 0)
		rc = prism_loop_hook_add(n->loop, PRISM_LOOP_HOOK_FLUSH, on_flush, k,
					 &k->flush);
	if (rc == 0)
		rc = prism_loop_timer_create(n->loop, on_beat, k, &k->beat);
	if (rc) {
		PRISM_LOG_E(LOGM, "cannot start the cluster part of the node: %s",
			    prism_strerror(rc));
		return rc;
	}
	prism_loop_timer_start(k->beat, 0, BEAT_NS);
	PRISM_LOG_I(LOGM, "%s: GCS at %s, peers reach this node at %s",
		    k->head ? "head" : "member", k->gcs_addr, k->addr);
	return 0;
}

/* A node that stops says so: its record goes dead at once (the head would find out
 * only after the node timeout).  Best effort, bounded to 200 ms. */
static void say_goodbye(struct node_cluster *k)
{
	if (!k->registered || !gcs_client_ready(k->gcs, NULL))
		return;
	gcs_node_rec rec = {.id = k->id,
			    .address = {k->addr, (uint32_t)strlen(k->addr)},
			    .heartbeat_ns = realtime_ns(),
			    .state = GCS_NODE_DEAD};
	uint64_t before = k->beats_ok + k->beats_failed;
	if (put_node(k, &rec) != 0)
		return;
	uint64_t end = prism_now_ns() + 200 * PRISM_NS_PER_MS;
	while (k->beats_ok + k->beats_failed == before && prism_now_ns() < end) {
		if (k->replica)
			gcs_replica_poll(k->replica, 0);
		if (k->master)
			gcs_master_poll(k->master, 0);
		gcs_client_poll(k->gcs, 1000000);
	}
}

void cluster__stop(struct sched_node *n)
{
	struct node_cluster *k = n->cluster;
	if (!k)
		return;
	say_goodbye(k);
	remote__free(n);
	/* The loop frees the watches, hook and timer itself when it is destroyed. */
	gcs_client_destroy(k->gcs);
	gcs_master_destroy(k->master);
	gcs_replica_destroy(k->replica);
	objstore_xfer_destroy(k->xfer);
	transport_destroy(k->t);
	while (k->npeers)
		peer_drop(k, 0);
	prism_free(k->peers);
	prism_free(k->view);
	prism_free(k->next);
	prism_free(k);
	n->cluster = NULL;
}

bool cluster__joined(const struct sched_node *n)
{
	return n->cluster && n->cluster->registered;
}

/* ---- status ------------------------------------------------------------------------- */

void cluster__status(struct sched_node *n, char *buf, size_t len, size_t *off)
{
	struct node_cluster *k = n->cluster;
#define OUT(...)                                                                       \
	do {                                                                           \
		if (*off < len)                                                        \
			*off += (size_t)snprintf(buf + *off, len - *off, __VA_ARGS__); \
	} while (0)
	if (!k) {
		OUT("cluster: none (a lone node; `prism start --head` makes one)\n");
		return;
	}
	char hex[PRISM_ID_HEX_LEN + 1];
	prism_id_to_hex(k->id, hex);
	const char *state = k->join_err ? "failed" : k->registered ? "joined" : "joining";
	OUT("cluster: %s, %s, node %.8s at %s, GCS %s%s%s\n", k->head ? "head" : "member",
	    state, hex, k->addr, k->gcs_addr, k->join_err ? ": " : "",
	    k->join_err ? prism_strerror(k->join_err) : "");
	uint32_t alive = 0;
	for (uint32_t i = 0; i < k->nview; i++)
		alive += k->view[i].state == GCS_NODE_ALIVE;
	OUT("objects: %llu locations published, %llu pulls from another holder\n",
	    (unsigned long long)k->published, (unsigned long long)k->pulls_elsewhere);
	OUT("nodes: %u (%u alive, %u dead), as of %.1f s ago\n", k->nview, alive,
	    k->nview - alive, k->view_ns ? (double)(prism_now_ns() - k->view_ns) / 1e9 : 0.0);
	for (uint32_t i = 0; i < k->nview; i++) {
		struct cluster_node *x = &k->view[i];
		prism_id_to_hex(x->id, hex);
		OUT("  %.8s %-22s %-5s load %-4u store %.1f/%.1f MiB ", hex, x->addr,
		    x->state == GCS_NODE_ALIVE ? "alive" : "dead", x->load,
		    (double)x->store_used / 1048576.0, (double)x->store_cap / 1048576.0);
		for (uint32_t r = 0; r < x->nres; r++)
			OUT(" %s %.3g/%.3g", x->res[r].name, x->res[r].avail / 1000.0,
			    x->res[r].total / 1000.0);
		OUT("%s\n", prism_id_eq(x->id, k->id) ? "  (this node)" : "");
	}
#undef OUT
}
