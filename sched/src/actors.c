/* actors.c — actors on the node: where each lives, channels to it, restarts.
 *
 * An actor is created by a client, its owner, with ACTOR_CREATE.  The node binds it to
 * an idle worker of the owner's program (starting one if needed, beyond max_workers:
 * a worker per actor), holds the resources it asked for, tells the worker it hosts the
 * actor (ACTOR_HOST), and opens the owner's channel: a lease whose worker is the host,
 * which never returns while both live.  The node itself puts the constructor first
 * into that channel (the owner stored it as an object for the node to keep), so a
 * creation or a restart never waits for the owner to poll; the host serves other
 * channels only once the constructor ran, so a call never meets an actor that is not
 * built yet.  Any other client that calls the actor
 * asks for its own channel (ACTOR_CONNECT); calls on one channel run in order, calls
 * on several interleave call by call.
 *
 * The host dies: every channel's holder hears LEASE_LOST (its calls in flight fail
 * with PRISM_E_ACTOR_DIED).  With restarts left, the actor is bound to a new worker,
 * told its last checkpoint, and given the constructor again; otherwise the actor is dead and clients asking for it
 * are told so.  The owner leaving ends its actors (fate sharing, as in Ray), and so does
 * ACTOR_KILL.
 *
 * Checkpoints: the host writes one into the object store and gives it to the daemon's
 * store slot (SCHED_DAEMON_SLOT), then reports it; the daemon keeps the newest and
 * drops the one before.  Real-time actors pin their host to a CPU of their own; at
 * most ncpus - 1 run at once, so one CPU always stays for everything else.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/wire.h"
#include "gcs/record.h"
#include "node_int.h"

enum actor_state { ACTOR_FREE = 0, ACTOR_PENDING, ACTOR_ALIVE, ACTOR_DEAD };

struct actor {
	uint8_t state;
	bool killed;
	bool has_ckpt;
	prism_id id;
	uint64_t cls;
	char name[64];
	uint32_t owner, owner_gen;
	int code;
	int worker; /* host slot, or -1 */
	uint64_t milli[SCHED_MAX_RES];
	int32_t restarts_left; /* -1: without limit */
	uint32_t restarts;
	uint32_t flags;
	int rt_cpu;
	uint32_t rt_spin_us; /* SCHED_M_ACTOR_HOST's c */
	prism_id ckpt;
	uint64_t ckpt_seq;
	prism_id ctor;     /* store object (ours) with the constructor message */
	uint64_t dead_seq; /* order of death, to reuse the oldest dead entry first */
	/* An owner on another node (owner is SCHED_DAEMON_SLOT): the link to its node
	 * (NULL once gone) and the link there that names this actor. */
	struct transport_conn *oc;
	prism_id onode;
	uint64_t olink;
	bool code_held; /* code was counted for this actor (pool__code_remote) */
};

/* A client waiting for a channel to an actor that has no host yet; or (c set) a caller
 * on another node, whose request `link` names it there. */
struct actor_wait {
	uint32_t client, gen;
	uint32_t actor;
	struct transport_conn *c;
	prism_id from;
	uint64_t link;
};

/* Who a channel is for: a client of this node, or (c set) a caller on node `from`
 * whose request `ask` names it on the link. */
struct chan_for {
	uint32_t client;
	struct transport_conn *c;
	prism_id from;
	uint64_t ask;
};

/* Actor business with other nodes, on either side. */
enum far_kind {
	FAR_OWNED = 1, /* A: created for a client here, on node `node` */
	FAR_CONNECT,   /* A: a channel asked for a client here */
	FAR_KILL,      /* A: a kill to deliver, waiting to learn where */
	FAR_INCOMING,  /* B: a creation from node `node`, its constructor being pulled */
};

struct actor_far {
	uint8_t kind;
	bool accepted; /* OWNED: B took it */
	bool located;  /* CONNECT, KILL: c is the actor's node */
	bool asking;   /* CONNECT, KILL: a GCS lookup is out */
	uint64_t key;  /* ours, unique: what callbacks find it by */
	prism_id id;
	uint64_t cls;
	struct transport_conn *c;
	prism_id node;
	uint64_t link;            /* names it on the link: ours (A), the peer's (INCOMING) */
	uint32_t client, gen;     /* the owner, or the caller */
	uint64_t req_id;          /* the client's create (OWNED) */
	prism_id ctor;            /* OWNED until B took it; INCOMING: being pulled */
	uint64_t since;           /* when a lookup first found nothing */
	int code;                 /* INCOMING: the program (counted), or -1 */
	struct sched_actor_msg m; /* INCOMING: the creation, milli unused */
	uint64_t milli[SCHED_MAX_RES]; /* INCOMING: this node's indexes */
};

/* A lookup that finds no record keeps trying this long: the record is written as the
 * actor is created, and a handle can reach another node before the GCS has it. */
#define FAR_LOOKUP_NS (2 * PRISM_NS_PER_SEC)

int actors__init(struct sched_node *n)
{
	n->actors = prism_calloc(NODE_MAX_ACTORS, sizeof(*n->actors));
	return n->actors ? 0 : -ENOMEM;
}

void actors__free(struct sched_node *n)
{
	prism_free(n->actors);
	prism_free(n->waits);
	prism_free(n->far);
	n->actors = NULL;
	n->waits = NULL;
	n->far = NULL;
}

static struct actor *find(struct sched_node *n, prism_id id)
{
	for (uint32_t i = 0; i < NODE_MAX_ACTORS; i++)
		if (n->actors[i].state != ACTOR_FREE && prism_id_eq(n->actors[i].id, id))
			return &n->actors[i];
	return NULL;
}

static void deny_actor(struct sched_node *n, uint32_t slot, uint64_t req_id, prism_id id,
		       int code)
{
	struct sched_ctl_msg m;
	ctl__msg_init(&m, SCHED_M_ACTOR_DENIED);
	m.h.req_id = req_id;
	m.code = code;
	memcpy(m.tail_, id.b, PRISM_ID_SIZE);
	ctl__send(n, slot, &m);
}

static void answer_ok(struct sched_node *n, uint32_t slot, uint64_t req_id, prism_id id,
		      uint64_t cls)
{
	struct sched_ctl_msg m;
	ctl__msg_init(&m, SCHED_M_ACTOR_OK);
	m.h.req_id = req_id;
	m.e = cls;
	memcpy(m.tail_, id.b, PRISM_ID_SIZE);
	ctl__send(n, slot, &m);
}

/* Answer a client's kill (req_id 0: nobody waits): sent (rc 0) or not (rc). */
static void answer_kill(struct sched_node *n, uint32_t slot, uint64_t req_id, prism_id id,
			uint64_t cls, int rc)
{
	if (req_id && rc)
		deny_actor(n, slot, req_id, id, rc);
	else if (req_id)
		answer_ok(n, slot, req_id, id, cls);
}

/* An object given to the daemon's slot (a constructor, a checkpoint): gone for good. */
static void drop_object(struct sched_node *n, prism_id id)
{
	objstore_release(n->os, id);
	objstore_delete(n->os, id);
}

static bool alive_client(struct sched_node *n, uint32_t slot, uint32_t gen)
{
	return slot < SCHED_DAEMON_SLOT && n->cl[slot].kind != 0 &&
	       node__client(n, slot)->generation == gen &&
	       atomic_load(&node__client(n, slot)->state) == SCHED_CLIENT_ATTACHED;
}

static bool owner_alive(struct sched_node *n, const struct actor *a)
{
	return a->owner == SCHED_DAEMON_SLOT ? a->oc != NULL
					     : alive_client(n, a->owner, a->owner_gen);
}

static struct chan_for owner_of(const struct actor *a)
{
	return (struct chan_for){
		.client = a->owner, .c = a->oc, .from = a->onode, .ask = a->olink};
}

/* Tell a caller on another node that its request `link` failed (or, for an owner, that
 * the actor died). */
static void far_deny(struct sched_node *n, struct transport_conn *c, uint64_t link, int code)
{
	uint8_t v[4];
	prism_le32_store(v, (uint32_t)code);
	remote__send(n, c, PEER_M_ACTOR_DENIED, link, v, sizeof(v));
}

static void record_actor(struct sched_node *n, const struct actor *a, uint8_t state)
{
	cluster__actor_put(n, a->id, state, a->restarts, a->name);
}

/* The first message of the owner's channel: the constructor, from the store. */
static int push_ctor(struct sched_node *n, struct actor *a, uint32_t l)
{
	const void *data;
	size_t size;
	prism_ring *spec = NULL;
	int rc = objstore_get(n->os, a->ctor, &data, &size);
	if (rc)
		return rc;
	rc = prism_ring_attach_shared(sched_lease_ring_at(n->base, l, 0),
				      n->hdr->lease_ring_bytes,
				      node__client(n, a->worker)->bell, &spec);
	const struct sched_msg *h = data;
	if (rc == 0 &&
	    (size < sizeof(struct sched_task_msg) || h->len > size || h->type != SCHED_M_TASK))
		rc = PRISM_E_PROTO;
	if (rc == 0)
		rc = sched_msg_send(spec, h);
	prism_ring_destroy(spec);
	objstore_release(n->os, a->ctor);
	return rc;
}

/* Open a channel to a's host for `to`; flags SCHED_CHAN_*. */
static int open_channel(struct sched_node *n, struct actor *a, const struct chan_for *to,
			uint32_t flags)
{
	uint64_t link = 0;
	int l = to->c ? remote__chan_host(n, to->c, to->from, (uint32_t)a->worker, &link)
		      : ctl__lease_open(n, to->client, (uint32_t)a->worker, NULL, true);
	if (l < 0) {
		PRISM_LOG_W("actors", "no lease free for a channel to an actor: %s",
			    prism_strerror(l));
		return l;
	}
	if (flags & SCHED_CHAN_OWNER) {
		/* Before anyone hears of the channel: the owner produces into it only
		 * after the grant below, so the ring keeps one producer at a time. */
		int rc = push_ctor(n, a, (uint32_t)l);
		if (rc) {
			PRISM_LOG_E("actors", "cannot hand an actor its constructor: %s",
				    prism_strerror(rc));
			return rc;
		}
	}
	struct sched_lease *ls = sched_lease_at(n->base, (uint32_t)l);
	struct sched_ctl_msg m;
	ctl__msg_init(&m, SCHED_M_LEASE_ASSIGN);
	m.a = (uint32_t)l;
	m.b = to->c ? SCHED_DAEMON_SLOT : to->client;
	m.c = ls->generation;
	m.d = 1; /* an actor channel */
	m.e = flags;
	ctl__send(n, (uint32_t)a->worker, &m);
	if (to->c) {
		/* The caller's node opens a proxy of it and tells the caller. */
		uint8_t v[8 + 4 * 4 + PRISM_ID_SIZE];
		prism_le64_store(v, to->ask);
		prism_le32_store(v + 8, (uint32_t)l);
		prism_le32_store(v + 12, ls->generation);
		prism_le32_store(v + 16, (uint32_t)n->cl[a->worker].pid);
		prism_le32_store(v + 20, flags);
		memcpy(v + 24, a->id.b, PRISM_ID_SIZE);
		return remote__send(n, to->c, PEER_M_ACTOR_CHAN, link, v, sizeof(v));
	}
	ctl__msg_init(&m, SCHED_M_ACTOR_CHANNEL);
	m.a = (uint32_t)l;
	m.b = (uint32_t)a->worker;
	m.c = ls->generation;
	m.code = n->cl[a->worker].pid;
	m.e = flags;
	memcpy(m.tail_, a->id.b, PRISM_ID_SIZE);
	ctl__send(n, to->client, &m);
	return 0;
}

static void ckpt_drop(struct sched_node *n, struct actor *a)
{
	if (!a->has_ckpt)
		return;
	drop_object(n, a->ckpt);
	a->has_ckpt = false;
}

static void answer_waits(struct sched_node *n, struct actor *a)
{
	uint32_t idx = (uint32_t)(a - n->actors), kept = 0;
	for (uint32_t i = 0; i < n->nwaits; i++) {
		struct actor_wait *w = &n->waits[i];
		if (w->actor != idx) {
			n->waits[kept++] = *w;
			continue;
		}
		if (w->c ? false : !alive_client(n, w->client, w->gen))
			continue;
		struct chan_for to = {w->client, w->c, w->from, w->link};
		if (a->state == ACTOR_ALIVE) {
			if (open_channel(n, a, &to, 0) != 0) {
				if (w->c)
					far_deny(n, w->c, w->link, -ENOSPC);
				else
					deny_actor(n, w->client, 0, a->id, -ENOSPC);
			}
		} else if (a->state == ACTOR_DEAD) {
			if (w->c)
				far_deny(n, w->c, w->link, PRISM_E_ACTOR_DIED);
			else
				deny_actor(n, w->client, 0, a->id, PRISM_E_ACTOR_DIED);
		} else {
			n->waits[kept++] = *w;
		}
	}
	n->nwaits = kept;
}

static void fence_all(struct sched_node *n);

static void actor_dead(struct sched_node *n, struct actor *a, const char *why)
{
	PRISM_LOG_I("actors", "actor %s%s%s ends: %s", a->name[0] ? "'" : "", a->name,
		    a->name[0] ? "'" : "", why);
	if (a->worker >= 0) {
		struct client_local *w = &n->cl[a->worker];
		w->actor = 0;
		w->doomed = true; /* never given new work; its channels go when it is reaped */
		if (w->pid > 0)
			kill(w->pid, SIGKILL);
		a->worker = -1;
		for (uint32_t r = 0; r < SCHED_MAX_RES; r++)
			n->res_used[r] -= a->milli[r];
	}
	a->state = ACTOR_DEAD;
	a->dead_seq = ++n->actor_deaths;
	if (a->rt_cpu >= 0) {
		a->rt_cpu = -1;
		fence_all(n); /* its CPU is everyone's again */
	}
	record_actor(n, a, GCS_ACTOR_DEAD);
	a->name[0] = '\0'; /* the name is free for a new actor */
	ckpt_drop(n, a);
	if (!prism_id_is_nil(a->ctor)) {
		drop_object(n, a->ctor);
		a->ctor = (prism_id){0};
	}
	if (a->owner == SCHED_DAEMON_SLOT && a->oc)
		far_deny(n, a->oc, a->olink, PRISM_E_ACTOR_DIED);
	else if (alive_client(n, a->owner, a->owner_gen))
		deny_actor(n, a->owner, 0, a->id, PRISM_E_ACTOR_DIED);
	a->oc = NULL;
	if (a->code_held) {
		a->code_held = false;
		pool__code_release(n, a->code);
	}
	answer_waits(n, a);
}

static uint32_t rt_limit(struct sched_node *n)
{
	return n->o.ncpus > 1 ? n->o.ncpus - 1 : 1;
}

static uint32_t rt_count(struct sched_node *n)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < NODE_MAX_ACTORS; i++)
		k += (n->actors[i].state == ACTOR_PENDING ||
		      n->actors[i].state == ACTOR_ALIVE) &&
		     (n->actors[i].flags & SCHED_ACTOR_REALTIME);
	return k;
}

/* The CPUs the node was started with (its thread's affinity then: it fences itself off
 * the real-time CPUs later). */
static bool node_cpus(struct sched_node *n, cpu_set_t *set)
{
	if (!n->cpus_known)
		n->cpus_known = sched_getaffinity(0, sizeof(n->cpus), &n->cpus) == 0;
	if (n->cpus_known)
		*set = n->cpus;
	return n->cpus_known;
}

/* The highest CPU this process may use that no real-time actor holds. */
static int free_rt_cpu(struct sched_node *n)
{
	cpu_set_t set;
	if (!node_cpus(n, &set))
		return -1;
	for (int c = CPU_SETSIZE - 1; c >= 0; c--) {
		if (!CPU_ISSET(c, &set))
			continue;
		bool taken = false;
		for (uint32_t i = 0; i < NODE_MAX_ACTORS && !taken; i++)
			taken = n->actors[i].state == ACTOR_ALIVE && n->actors[i].rt_cpu == c;
		if (!taken)
			return c;
	}
	return -1;
}

/* The CPUs ordinary workers may use: the node's own, less those real-time actors spin
 * on.  False when that leaves none (then nothing is fenced). */
static bool fence_mask(struct sched_node *n, cpu_set_t *set)
{
	if (!node_cpus(n, set))
		return false;
	for (uint32_t i = 0; i < NODE_MAX_ACTORS; i++) {
		const struct actor *a = &n->actors[i];
		if (a->state == ACTOR_ALIVE && a->rt_cpu >= 0 && a->rt_cpu < CPU_SETSIZE)
			CPU_CLR(a->rt_cpu, set);
	}
	return CPU_COUNT(set) > 0;
}

void actors__fence_client(struct sched_node *n, uint32_t slot)
{
	struct client_local *cl = &n->cl[slot];
	cpu_set_t set;
	if ((cl->kind != SCHED_KIND_WORKER && cl->kind != SCHED_KIND_DRIVER) || cl->pid <= 0 ||
	    cl->doomed)
		return;
	if (cl->actor && (n->actors[cl->actor - 1].flags & SCHED_ACTOR_REALTIME))
		return; /* it pins itself to its own CPU */
	/* A driver that made itself real-time (a control loop) chose its CPU itself. */
	int pol = cl->kind == SCHED_KIND_DRIVER ? sched_getscheduler(cl->pid) : SCHED_OTHER;
	if (pol == SCHED_FIFO || pol == SCHED_RR)
		return;
	if (fence_mask(n, &set) && sched_setaffinity(cl->pid, sizeof(set), &set) != 0)
		PRISM_LOG_D("actors", "cannot set the CPUs of pid %d: %s", (int)cl->pid,
			    strerror(errno));
}

/* The set of real-time CPUs changed: every ordinary worker and driver gets the new
 * mask. */
static void fence_all(struct sched_node *n)
{
	for (uint32_t s = 0; s < SCHED_MAX_CLIENTS; s++)
		actors__fence_client(n, s);
}

static void bind(struct sched_node *n, struct actor *a, uint32_t w)
{
	a->worker = (int)w;
	a->state = ACTOR_ALIVE;
	n->cl[w].actor = (int)(a - n->actors) + 1;
	for (uint32_t r = 0; r < SCHED_MAX_RES; r++)
		n->res_used[r] += a->milli[r];
	a->rt_cpu = a->flags & SCHED_ACTOR_REALTIME ? free_rt_cpu(n) : -1;
	struct sched_ctl_msg m;
	ctl__msg_init(&m, SCHED_M_ACTOR_HOST);
	m.a = (uint32_t)(a - n->actors);
	m.b = a->flags;
	m.c = a->rt_spin_us;
	m.code = a->rt_cpu;
	m.e = a->has_ckpt ? a->ckpt_seq : 0;
	if (a->has_ckpt)
		memcpy(m.tail_, a->ckpt.b, PRISM_ID_SIZE);
	ctl__send(n, w, &m);
	if (a->rt_cpu >= 0)
		fence_all(n);
	uint32_t flags = SCHED_CHAN_OWNER | (a->restarts ? SCHED_CHAN_RESTART : 0);
	struct chan_for to = owner_of(a);
	record_actor(n, a, GCS_ACTOR_ALIVE);
	if (open_channel(n, a, &to, flags) != 0) {
		actor_dead(n, a,
			   "no lease free for its owner's channel, or its constructor is "
			   "lost");
		return;
	}
	PRISM_LOG_D("actors", "actor %u on worker %u (pid %d)%s", (unsigned)(a - n->actors), w,
		    (int)n->cl[w].pid, a->restarts ? ", restarted" : "");
	answer_waits(n, a);
}

void actors__dispatch(struct sched_node *n, uint32_t *wanted)
{
	for (uint32_t i = 0; i < NODE_MAX_ACTORS; i++) {
		struct actor *a = &n->actors[i];
		if (a->state != ACTOR_PENDING)
			continue;
		if (!owner_alive(n, a)) {
			actor_dead(n, a, "its owner is gone");
			continue;
		}
		if (pool__broken(n, a->code)) {
			actor_dead(n, a, "its program's workers cannot start");
			continue;
		}
		if (!ctl__res_fit(n, a->milli))
			continue;
		int w = ctl__idle_worker(n, a->code);
		if (w >= 0)
			bind(n, a, (uint32_t)w);
		else
			wanted[a->code]++;
	}
}

/* A new actor entry for m (milli: this node's indexes, updated for a real-time actor),
 * owned by `owner` (SCHED_DAEMON_SLOT: on another node, for the caller to fill in) and
 * running code: 0 with *out, or the code to refuse it with. */
static int actor_add(struct sched_node *n, const struct sched_actor_msg *m, uint64_t *milli,
		     uint32_t owner, int code, struct actor **out)
{
	if (m->flags & SCHED_ACTOR_REALTIME) {
		if (rt_count(n) >= rt_limit(n))
			return PRISM_E_NO_SPINNER;
		if (milli[SCHED_RES_CPU] < 1000)
			milli[SCHED_RES_CPU] = 1000; /* it spins: a whole CPU is its own */
	}
	if (find(n, m->actor))
		return -EEXIST;
	for (uint32_t i = 0; m->name[0] && i < NODE_MAX_ACTORS; i++)
		if ((n->actors[i].state == ACTOR_PENDING ||
		     n->actors[i].state == ACTOR_ALIVE) &&
		    strcmp(n->actors[i].name, m->name) == 0)
			return -EEXIST;
	struct actor *a = NULL, *oldest = NULL;
	for (uint32_t i = 0; i < NODE_MAX_ACTORS && !a; i++) {
		struct actor *e = &n->actors[i];
		if (e->state == ACTOR_FREE)
			a = e;
		else if (e->state == ACTOR_DEAD && (!oldest || e->dead_seq < oldest->dead_seq))
			oldest = e;
	}
	if (!a && !(a = oldest))
		return -ENOSPC;
	*a = (struct actor){
		.state = ACTOR_PENDING,
		.id = m->actor,
		.cls = m->cls,
		.owner = owner,
		.owner_gen = owner < SCHED_DAEMON_SLOT ? node__client(n, owner)->generation : 0,
		.code = code,
		.worker = -1,
		.restarts_left = m->max_restarts,
		.flags = m->flags,
		.rt_cpu = -1,
		.rt_spin_us = m->rt_spin_us};
	memcpy(a->milli, milli, sizeof(a->milli));
	snprintf(a->name, sizeof(a->name), "%s", m->name);
	a->ctor = m->ctor; /* given to us */
	n->actors_created++;
	record_actor(n, a, GCS_ACTOR_PENDING);
	*out = a;
	return 0;
}

static int far_create(struct sched_node *n, uint32_t slot, const struct sched_actor_msg *m,
		      const uint64_t *milli, prism_id node, const char *addr);

void actors__on_create(struct sched_node *n, uint32_t slot, const struct sched_ctl_msg *cm)
{
	const struct sched_actor_msg *m = (const struct sched_actor_msg *)cm;
	int code = PRISM_E_INFEASIBLE;
	if (m->h.len < sizeof(*m) || memchr(m->name, '\0', sizeof(m->name)) == NULL) {
		deny_actor(n, slot, m->h.req_id, m->actor, PRISM_E_PROTO);
		return;
	}
	uint64_t milli[SCHED_MAX_RES];
	bool fits = true;
	for (uint32_t r = 0; r < SCHED_MAX_RES; r++) {
		milli[r] = m->milli[r];
		if (milli[r] && (r >= n->hdr->nres || milli[r] > n->hdr->res[r].total_milli))
			fits = false;
	}
	if ((m->flags & SCHED_ACTOR_REALTIME) && milli[SCHED_RES_CPU] < 1000)
		milli[SCHED_RES_CPU] = 1000;
	/* In a cluster, an actor this node cannot hold now goes where it starts first (as a
	 * lease request would); one no node can hold is refused. */
	if (n->cluster && n->remote &&
	    (!fits || !ctl__res_fit(n, milli) ||
	     ((m->flags & SCHED_ACTOR_REALTIME) && rt_count(n) >= rt_limit(n)))) {
		prism_id node;
		char addr[256];
		int rc = cluster__place(n, milli, 0, fits, &node, addr, sizeof(addr));
		if (rc == 0) {
			rc = far_create(n, slot, m, milli, node, addr);
			if (rc == 0)
				return;
		}
		if (!fits) {
			code = rc == PRISM_E_AGAIN ? PRISM_E_INFEASIBLE : rc;
			goto deny;
		}
	}
	if (!fits)
		goto deny;
	struct actor *a;
	code = actor_add(n, m, milli, slot, n->cl[slot].code, &a);
	if (code)
		goto deny;
	answer_ok(n, slot, m->h.req_id, m->actor, m->cls);
	ctl__dispatch(n);
	return;
deny:
	if (!prism_id_is_nil(m->ctor))
		drop_object(n, m->ctor); /* it was given to us */
	deny_actor(n, slot, m->h.req_id, m->actor, code);
}

static int add_wait(struct sched_node *n, const struct actor_wait *w)
{
	if (n->nwaits == n->capwaits) {
		uint32_t cap = n->capwaits ? 2 * n->capwaits : 16;
		void *nw = prism_realloc(n->waits, cap * sizeof(*n->waits));
		if (!nw)
			return -ENOMEM;
		n->waits = nw;
		n->capwaits = cap;
	}
	n->waits[n->nwaits++] = *w;
	return 0;
}

/* A channel to actor a for `to`, now or once it is bound: 0 or why not. */
static int connect_to(struct sched_node *n, struct actor *a, const struct chan_for *to)
{
	if (a->state == ACTOR_DEAD)
		return PRISM_E_ACTOR_DIED;
	if (a->state == ACTOR_ALIVE)
		return open_channel(n, a, to, 0) != 0 ? -ENOSPC : 0;
	struct actor_wait w = {.client = to->client,
			       .gen = to->c ? 0 : node__client(n, to->client)->generation,
			       .actor = (uint32_t)(a - n->actors),
			       .c = to->c,
			       .from = to->from,
			       .link = to->ask};
	return add_wait(n, &w);
}

static void far_connect(struct sched_node *n, uint32_t slot, prism_id id);
static bool far_kill(struct sched_node *n, uint32_t slot, uint64_t req_id, prism_id id);

void actors__on_connect(struct sched_node *n, uint32_t slot, const struct sched_ctl_msg *m)
{
	prism_id id;
	memcpy(id.b, m->tail_, PRISM_ID_SIZE);
	struct actor *a = find(n, id);
	if (!a) {
		if (n->cluster && n->remote)
			far_connect(n, slot, id); /* it may live on another node */
		else
			deny_actor(n, slot, m->h.req_id, id, -ENOENT);
		return;
	}
	struct chan_for to = {.client = slot};
	int rc = connect_to(n, a, &to);
	if (rc)
		deny_actor(n, slot, m->h.req_id, id, rc);
}

static void kill_actor(struct sched_node *n, struct actor *a, const char *who)
{
	a->killed = true;
	char why[96];
	snprintf(why, sizeof(why), "killed by %s", who);
	actor_dead(n, a, why);
	ctl__dispatch(n);
}

void actors__on_kill(struct sched_node *n, uint32_t slot, const struct sched_ctl_msg *m)
{
	prism_id id;
	memcpy(id.b, m->tail_, PRISM_ID_SIZE);
	struct actor *a = find(n, id);
	/* A kill is answered (req_id set) once the node knows whether the actor exists:
	 * killing one that ended already is no error, as in Ray; one never created is. */
	if (!a) {
		if (!(n->cluster && n->remote))
			answer_kill(n, slot, m->h.req_id, id, 0, -ENOENT);
		else if (!far_kill(n, slot, m->h.req_id, id))
			answer_kill(n, slot, m->h.req_id, id, 0, -ENOMEM);
		return;
	}
	if (a->state != ACTOR_DEAD) {
		char who[32];
		snprintf(who, sizeof(who), "client %u", slot);
		kill_actor(n, a, who);
	}
	answer_kill(n, slot, m->h.req_id, id, a->cls, 0);
}

void actors__on_lookup(struct sched_node *n, uint32_t slot, const struct sched_ctl_msg *cm)
{
	const struct sched_actor_msg *m = (const struct sched_actor_msg *)cm;
	if (m->h.len >= sizeof(*m) && memchr(m->name, '\0', sizeof(m->name)) && m->name[0]) {
		for (uint32_t i = 0; i < NODE_MAX_ACTORS; i++) {
			struct actor *a = &n->actors[i];
			if ((a->state == ACTOR_PENDING || a->state == ACTOR_ALIVE) &&
			    strcmp(a->name, m->name) == 0) {
				answer_ok(n, slot, m->h.req_id, a->id, a->cls);
				return;
			}
		}
		/* Named actors this node's clients created on other nodes. */
		for (uint32_t i = 0; i < n->nfar; i++) {
			struct actor_far *f = &n->far[i];
			if (f->kind == FAR_OWNED && f->accepted &&
			    strcmp(f->m.name, m->name) == 0) {
				answer_ok(n, slot, m->h.req_id, f->id, f->cls);
				return;
			}
		}
	}
	deny_actor(n, slot, m->h.req_id, (prism_id){0}, -ENOENT);
}

void actors__on_checkpoint(struct sched_node *n, uint32_t slot, const struct sched_ctl_msg *m)
{
	prism_id id;
	memcpy(id.b, m->tail_, PRISM_ID_SIZE);
	int idx = n->cl[slot].actor - 1;
	struct actor *a = idx >= 0 ? &n->actors[idx] : NULL;
	if (!a || a->state != ACTOR_ALIVE || (a->has_ckpt && m->e <= a->ckpt_seq)) {
		drop_object(n, id); /* given to us, but not one to keep */
		return;
	}
	ckpt_drop(n, a);
	a->ckpt = id;
	a->ckpt_seq = m->e;
	a->has_ckpt = true;
}

static void far_drop(struct sched_node *n, uint32_t i);

void actors__client_gone(struct sched_node *n, uint32_t slot)
{
	for (uint32_t i = 0; i < NODE_MAX_ACTORS; i++) {
		struct actor *a = &n->actors[i];
		if ((a->state == ACTOR_PENDING || a->state == ACTOR_ALIVE) && a->owner == slot)
			actor_dead(n, a, "its owner is gone");
	}
	/* Its actors on other nodes end with it (fate sharing); its requests are void. */
	for (uint32_t i = 0; i < n->nfar;) {
		struct actor_far *f = &n->far[i];
		if ((f->kind != FAR_OWNED && f->kind != FAR_CONNECT) || f->client != slot) {
			i++;
			continue;
		}
		if (f->kind == FAR_OWNED && f->c)
			remote__send(n, f->c, PEER_M_ACTOR_KILL, 0, f->id.b, PRISM_ID_SIZE);
		far_drop(n, i);
	}
	int idx = n->cl[slot].actor - 1;
	if (idx < 0)
		return;
	struct actor *a = &n->actors[idx];
	n->cl[slot].actor = 0;
	if (a->state != ACTOR_ALIVE || a->worker != (int)slot)
		return;
	for (uint32_t r = 0; r < SCHED_MAX_RES; r++)
		n->res_used[r] -= a->milli[r];
	a->worker = -1;
	if (a->rt_cpu >= 0) {
		a->rt_cpu = -1; /* a restart picks one again */
		fence_all(n);
	}
	if (a->restarts_left == 0 || a->killed) {
		actor_dead(n, a, "its worker died and it has no restarts left");
		return;
	}
	record_actor(n, a, GCS_ACTOR_RESTARTING);
	if (a->restarts_left > 0)
		a->restarts_left--;
	a->restarts++;
	a->state = ACTOR_PENDING;
	n->actors_restarted++;
	PRISM_LOG_I("actors", "actor %u: its worker died; restarting (%u so far)", idx,
		    a->restarts);
}

void actors__status(struct sched_node *n, char *buf, size_t len, size_t *off)
{
	uint32_t alive = 0, pending = 0, dead = 0, rt = 0;
	for (uint32_t i = 0; i < NODE_MAX_ACTORS; i++) {
		struct actor *a = &n->actors[i];
		alive += a->state == ACTOR_ALIVE;
		pending += a->state == ACTOR_PENDING;
		dead += a->state == ACTOR_DEAD;
		rt += a->state == ACTOR_ALIVE && (a->flags & SCHED_ACTOR_REALTIME);
	}
	if (*off < len)
		*off += (size_t)snprintf(
			buf + *off, len - *off,
			"actors: %u alive (%u real-time, at most %u), %u starting, "
			"%u ended; %llu created, %llu restarts\n",
			alive, rt, rt_limit(n), pending, dead,
			(unsigned long long)n->actors_created,
			(unsigned long long)n->actors_restarted);
}

/* ---- actors across nodes ---------------------------------------------------------------
 *
 * A (the caller's node) and B (the actor's) speak PEER_M_ACTOR_* (node_int.h).  A
 * creation this node cannot hold goes to the node cluster__place() picks: B pulls the
 * constructor from A, makes the actor with a remote owner (the link and A's name for it),
 * and answers; A answers its client then, and drops its copy of the constructor.  Every
 * channel to the actor on B from another node is a hosted lease there and a proxy lease
 * on A (remote.c carries the calls and their completions), opened as local channels are:
 * the owner's at each binding (with the constructor first), a caller's on request.  B
 * records its actors in the GCS's actor table; a node asked for an actor it does not
 * have looks there (A knows its own clients' actors without asking).  The owner's node
 * going away ends the actor (fate sharing); the actor's node going away ends it for its
 * callers (PRISM_E_ACTOR_DIED).
 */

static struct actor_far *far_new(struct sched_node *n, uint8_t kind)
{
	if (n->nfar == n->capfar) {
		uint32_t cap = n->capfar ? 2 * n->capfar : 8;
		void *nf = prism_realloc(n->far, cap * sizeof(*n->far));
		if (!nf)
			return NULL;
		n->far = nf;
		n->capfar = cap;
	}
	struct actor_far *f = &n->far[n->nfar++];
	memset(f, 0, sizeof(*f));
	f->kind = kind;
	f->key = ++n->far_seq;
	f->link = f->key;
	f->code = -1;
	return f;
}

static void far_drop(struct sched_node *n, uint32_t i)
{
	struct actor_far *f = &n->far[i];
	if (!prism_id_is_nil(f->ctor))
		drop_object(n, f->ctor);
	if (f->code >= 0)
		pool__code_release(n, f->code);
	n->far[i] = n->far[--n->nfar];
}

static int far_by_key(struct sched_node *n, uint64_t key)
{
	for (uint32_t i = 0; i < n->nfar; i++)
		if (n->far[i].key == key)
			return (int)i;
	return -1;
}

/* A's entry that link (ours) names on c, of kind (0: any but INCOMING). */
static int far_by_link(struct sched_node *n, struct transport_conn *c, uint64_t link)
{
	for (uint32_t i = 0; i < n->nfar; i++)
		if (n->far[i].kind != FAR_INCOMING && n->far[i].located && n->far[i].c == c &&
		    n->far[i].link == link)
			return (int)i;
	return -1;
}

static int far_owned(struct sched_node *n, prism_id id)
{
	for (uint32_t i = 0; i < n->nfar; i++)
		if (n->far[i].kind == FAR_OWNED && prism_id_eq(n->far[i].id, id))
			return (int)i;
	return -1;
}

static int far_create(struct sched_node *n, uint32_t slot, const struct sched_actor_msg *m,
		      const uint64_t *milli, prism_id node, const char *addr)
{
	struct transport_conn *c = cluster__peer(n, node, addr);
	if (!c)
		return PRISM_E_PEER_GONE;
	uint8_t *buf = prism_malloc(SCHED_MSG_MAX);
	if (!buf)
		return -ENOMEM;
	prism_wire_writer w;
	prism_wire_writer_init(&w, buf, SCHED_MSG_MAX);
	prism_wire_put_raw(&w, m->actor.b, PRISM_ID_SIZE);
	prism_wire_put_u64(&w, m->cls);
	prism_wire_put_u32(&w, m->flags);
	prism_wire_put_u32(&w, (uint32_t)m->max_restarts);
	prism_wire_put_u32(&w, m->rt_spin_us);
	prism_wire_put_str(&w, m->name);
	prism_wire_put_raw(&w, m->ctor.b, PRISM_ID_SIZE);
	remote__put_res(n, &w, milli);
	remote__put_code(&w, &n->codes[n->cl[slot].code]);
	size_t len = 0;
	int rc = prism_wire_writer_finish(&w, &len);
	struct actor_far *f = rc ? NULL : far_new(n, FAR_OWNED);
	if (!rc && !f)
		rc = -ENOMEM;
	if (!rc) {
		f->located = true;
		f->id = m->actor;
		f->cls = m->cls;
		f->c = c;
		f->node = node;
		f->client = slot;
		f->gen = node__client(n, slot)->generation;
		f->req_id = m->h.req_id;
		f->m = *m;
		rc = remote__send(n, c, PEER_M_ACTOR_CREATE, f->link, buf, len);
		if (rc)
			n->nfar--; /* the last one: f; the constructor stays the caller's */
		else
			f->ctor = m->ctor; /* ours until B has its copy */
	}
	prism_free(buf);
	if (rc == 0)
		PRISM_LOG_D("actors", "actor for client %u goes to %s", slot, addr);
	return rc;
}

/* Ask c's node for a channel for entry f (a connect). */
static void far_ask(struct sched_node *n, struct actor_far *f)
{
	int rc = remote__send(n, f->c, PEER_M_ACTOR_CONNECT, f->link, f->id.b, PRISM_ID_SIZE);
	if (rc) {
		deny_actor(n, f->client, 0, f->id, rc);
		far_drop(n, (uint32_t)(f - n->far));
	}
}

static void far_lookup(struct sched_node *n, struct actor_far *f);

static void on_found(void *arg, int status, struct transport_conn *c, prism_id node,
		     uint8_t state)
{
	struct sched_node *n = ((void **)arg)[0];
	uint64_t key = (uint64_t)(uintptr_t)((void **)arg)[1];
	prism_free(arg);
	int i = far_by_key(n, key);
	if (i < 0)
		return; /* its client left */
	struct actor_far *f = &n->far[i];
	f->asking = false;
	if (status == 0 && state == GCS_ACTOR_DEAD)
		status = PRISM_E_ACTOR_DIED;
	if (status == -ENOENT) {
		uint64_t now = prism_now_ns();
		if (!f->since)
			f->since = now;
		if (now - f->since < FAR_LOOKUP_NS)
			return; /* actors__tick() asks again */
	}
	if (status) {
		if (f->kind == FAR_CONNECT)
			deny_actor(n, f->client, 0, f->id, status);
		else if (f->kind == FAR_KILL) /* one that ended already is no error */
			answer_kill(n, f->client, f->req_id, f->id, 0,
				    status == PRISM_E_ACTOR_DIED ? 0 : status);
		far_drop(n, (uint32_t)i);
		return;
	}
	f->located = true;
	f->c = c;
	f->node = node;
	if (f->kind == FAR_KILL) {
		int rc = remote__send(n, c, PEER_M_ACTOR_KILL, 0, f->id.b, PRISM_ID_SIZE);
		answer_kill(n, f->client, f->req_id, f->id, 0, rc);
		far_drop(n, (uint32_t)i);
	} else {
		far_ask(n, f);
	}
}

static void far_lookup(struct sched_node *n, struct actor_far *f)
{
	void **arg = prism_malloc(2 * sizeof(void *));
	int rc = -ENOMEM;
	if (arg) {
		arg[0] = n;
		arg[1] = (void *)(uintptr_t)f->key;
		f->asking = true;
		rc = cluster__actor_find(n, f->id, on_found, arg);
		if (rc) {
			f->asking = false;
			prism_free(arg);
		}
	}
	if (rc) {
		if (f->kind == FAR_CONNECT || (f->kind == FAR_KILL && f->req_id))
			deny_actor(n, f->client, f->kind == FAR_KILL ? f->req_id : 0, f->id,
				   rc);
		far_drop(n, (uint32_t)(f - n->far));
	}
}

static void far_connect(struct sched_node *n, uint32_t slot, prism_id id)
{
	struct actor_far *f = far_new(n, FAR_CONNECT);
	if (!f) {
		deny_actor(n, slot, 0, id, -ENOMEM);
		return;
	}
	f->id = id;
	f->client = slot;
	f->gen = node__client(n, slot)->generation;
	int o = far_owned(n, id);
	if (o >= 0 && n->far[o].accepted) {
		/* Created from here: its node is known. */
		f->located = true;
		f->c = n->far[o].c;
		f->node = n->far[o].node;
		far_ask(n, f);
	} else {
		far_lookup(n, f);
	}
}

/* A kill of an actor on another node: sent to it now, or once a lookup found it.  The
 * client is answered (req_id, if set) when it was sent or found to be impossible. */
static bool far_kill(struct sched_node *n, uint32_t slot, uint64_t req_id, prism_id id)
{
	int o = far_owned(n, id);
	if (o >= 0 && n->far[o].c) {
		int rc =
			remote__send(n, n->far[o].c, PEER_M_ACTOR_KILL, 0, id.b, PRISM_ID_SIZE);
		answer_kill(n, slot, req_id, id, n->far[o].cls, rc);
		return true;
	}
	struct actor_far *f = far_new(n, FAR_KILL);
	if (!f)
		return false;
	f->id = id;
	f->client = slot;
	f->gen = node__client(n, slot)->generation;
	f->req_id = req_id;
	far_lookup(n, f);
	return true;
}

void actors__tick(struct sched_node *n)
{
	for (uint32_t i = 0; i < n->nfar; i++) {
		struct actor_far *f = &n->far[i];
		if ((f->kind == FAR_CONNECT || f->kind == FAR_KILL) && !f->located &&
		    !f->asking && f->since) {
			far_lookup(n, f);
			return; /* it may have dropped f: one per tick is plenty */
		}
	}
}

/* ---- B's side -------------------------------------------------------------------------- */

static void ctor_pulled(void *arg, int status, prism_id id)
{
	struct sched_node *n = ((void **)arg)[0];
	uint64_t key = (uint64_t)(uintptr_t)((void **)arg)[1];
	prism_free(arg);
	int i = far_by_key(n, key);
	if (i < 0)
		return;
	struct actor_far *f = &n->far[i];
	const void *data;
	size_t size;
	f->ctor = (prism_id){0}; /* pinned below, or never here */
	if (status == 0 && !f->c)
		status = PRISM_E_PEER_GONE;
	if (status == 0)
		status = objstore_get(n->os, id, &data, &size);
	struct actor *a = NULL;
	if (status == 0) {
		status = actor_add(n, &f->m, f->milli, SCHED_DAEMON_SLOT, f->code, &a);
		if (status)
			drop_object(n, id);
	}
	if (status) {
		PRISM_LOG_D("actors", "an actor from another node refused: %s",
			    prism_strerror(status));
		if (f->c)
			far_deny(n, f->c, f->link, status);
		far_drop(n, (uint32_t)i); /* releases the code */
		return;
	}
	a->oc = f->c;
	a->onode = f->node;
	a->olink = f->link;
	a->code_held = true;
	f->code = -1; /* the actor's now */
	remote__send(n, f->c, PEER_M_ACTOR_OK, f->link, NULL, 0);
	far_drop(n, (uint32_t)i);
	ctl__dispatch(n);
}

static void on_create(struct sched_node *n, struct transport_conn *c, prism_id from,
		      uint64_t link, prism_wire_reader *rd)
{
	struct sched_actor_msg m = {.h = {.len = sizeof(m), .type = SCHED_M_ACTOR_CREATE}};
	uint32_t restarts = 0;
	const char *name = NULL;
	uint32_t nl = 0;
	prism_wire_get_raw(rd, m.actor.b, PRISM_ID_SIZE);
	prism_wire_get_u64(rd, &m.cls);
	prism_wire_get_u32(rd, &m.flags);
	prism_wire_get_u32(rd, &restarts);
	prism_wire_get_u32(rd, &m.rt_spin_us);
	prism_wire_get_str(rd, sizeof(m.name) - 1, &name, &nl);
	prism_wire_get_raw(rd, m.ctor.b, PRISM_ID_SIZE);
	m.max_restarts = (int32_t)restarts;
	if (name)
		memcpy(m.name, name, nl);
	uint64_t milli[SCHED_MAX_RES];
	int code = name && !memchr(m.name, '\0', nl) ? remote__get_res(n, rd, milli)
						     : PRISM_E_PROTO;
	int pc = code ? -1 : remote__take_code(n, rd);
	if (!code && pc < 0)
		code = pc;
	if (!code && prism_wire_reader_finish(rd) != 0)
		code = PRISM_E_PROTO;
	struct actor_far *f = code ? NULL : far_new(n, FAR_INCOMING);
	if (!code && !f)
		code = -ENOMEM;
	if (code) {
		if (pc >= 0)
			pool__code_release(n, pc);
		if (code == PRISM_E_PROTO)
			PRISM_LOG_W("actors", "a malformed actor creation from a peer");
		far_deny(n, c, link, code);
		return;
	}
	f->id = m.actor;
	f->c = c;
	f->node = from;
	f->link = link;
	f->code = pc;
	f->m = m;
	memcpy(f->milli, milli, sizeof(milli));
	void **arg = prism_malloc(2 * sizeof(void *));
	int rc = -ENOMEM;
	if (arg) {
		arg[0] = n;
		arg[1] = (void *)(uintptr_t)f->key;
		f->ctor = m.ctor;
		rc = cluster__pull(n, from, "", m.ctor, ctor_pulled, arg);
		if (rc) {
			prism_free(arg);
			f->ctor = (prism_id){0};
		}
	}
	if (rc) {
		int i = far_by_key(n, f->key);
		if (i >= 0) {
			far_deny(n, c, link, rc);
			far_drop(n, (uint32_t)i);
		}
	}
}

static void on_connect(struct sched_node *n, struct transport_conn *c, prism_id from,
		       uint64_t link, const uint8_t *p, uint32_t len)
{
	prism_id id;
	if (len != PRISM_ID_SIZE) {
		far_deny(n, c, link, PRISM_E_PROTO);
		return;
	}
	memcpy(id.b, p, PRISM_ID_SIZE);
	struct actor *a = find(n, id);
	struct chan_for to = {.client = SCHED_DAEMON_SLOT, .c = c, .from = from, .ask = link};
	int rc = a ? connect_to(n, a, &to) : -ENOENT;
	if (rc)
		far_deny(n, c, link, rc);
}

/* ---- A's side: answers ----------------------------------------------------------------- */

static void on_chan(struct sched_node *n, struct transport_conn *c, prism_id from,
		    uint64_t chan_link, const uint8_t *p, uint32_t len)
{
	if (len != 24 + PRISM_ID_SIZE)
		return;
	uint64_t ask = prism_le64_load(p);
	uint32_t bl = prism_le32_load(p + 8), bg = prism_le32_load(p + 12);
	uint32_t pid = prism_le32_load(p + 16), flags = prism_le32_load(p + 20);
	int i = far_by_link(n, c, ask);
	struct actor_far *f = i >= 0 ? &n->far[i] : NULL;
	int l = -ENOENT;
	if (f && (f->kind == FAR_OWNED || f->kind == FAR_CONNECT) &&
	    alive_client(n, f->client, f->gen))
		l = remote__chan_proxy(n, c, from, chan_link, bl, bg, f->client);
	if (l < 0) {
		if (l == -ENOENT) {
			/* Nobody here wants it: B lets its end go. */
			uint8_t v[12];
			prism_le32_store(v, bl);
			prism_le32_store(v + 4, bg);
			prism_le32_store(v + 8, 1);
			remote__send(n, c, PEER_M_RETURN, 0, v, sizeof(v));
		} else if (f) {
			deny_actor(n, f->client, 0, f->id, l);
		}
		if (f && f->kind == FAR_CONNECT)
			far_drop(n, (uint32_t)i);
		return;
	}
	struct sched_lease *ls = sched_lease_at(n->base, (uint32_t)l);
	struct sched_ctl_msg m;
	ctl__msg_init(&m, SCHED_M_ACTOR_CHANNEL);
	m.a = (uint32_t)l;
	m.b = SCHED_DAEMON_SLOT;
	m.c = ls->generation;
	m.code = (int32_t)pid;
	m.e = flags;
	memcpy(m.tail_, f->id.b, PRISM_ID_SIZE);
	ctl__send(n, f->client, &m);
	if (f->kind == FAR_CONNECT)
		far_drop(n, (uint32_t)i);
}

static void on_ok(struct sched_node *n, struct transport_conn *c, uint64_t link)
{
	int i = far_by_link(n, c, link);
	if (i < 0 || n->far[i].kind != FAR_OWNED || n->far[i].accepted)
		return;
	struct actor_far *f = &n->far[i];
	f->accepted = true;
	drop_object(n, f->ctor); /* B has its own */
	f->ctor = (prism_id){0};
	if (alive_client(n, f->client, f->gen))
		answer_ok(n, f->client, f->req_id, f->id, f->cls);
}

static void on_denied(struct sched_node *n, struct transport_conn *c, uint64_t link,
		      const uint8_t *p, uint32_t len)
{
	int i = far_by_link(n, c, link);
	if (i < 0 || len != 4)
		return;
	struct actor_far *f = &n->far[i];
	int code = (int32_t)prism_le32_load(p);
	if (code >= 0)
		code = PRISM_E_PROTO;
	if (alive_client(n, f->client, f->gen))
		deny_actor(n, f->client, f->kind == FAR_OWNED && !f->accepted ? f->req_id : 0,
			   f->id, f->accepted ? PRISM_E_ACTOR_DIED : code);
	far_drop(n, (uint32_t)i);
}

void actors__on_peer(struct sched_node *n, struct transport_conn *c, prism_id from,
		     const prism_wire_hdr *h, const uint8_t *p)
{
	prism_wire_reader rd;
	prism_wire_reader_init(&rd, p, h->len);
	switch (h->type) {
	case PEER_M_ACTOR_CREATE:
		on_create(n, c, from, h->req_id, &rd);
		break;
	case PEER_M_ACTOR_OK:
		on_ok(n, c, h->req_id);
		break;
	case PEER_M_ACTOR_DENIED:
		on_denied(n, c, h->req_id, p, h->len);
		break;
	case PEER_M_ACTOR_CONNECT:
		on_connect(n, c, from, h->req_id, p, h->len);
		break;
	case PEER_M_ACTOR_CHAN:
		on_chan(n, c, from, h->req_id, p, h->len);
		break;
	case PEER_M_ACTOR_KILL: {
		prism_id id;
		struct actor *a = NULL;
		if (h->len == PRISM_ID_SIZE) {
			memcpy(id.b, p, PRISM_ID_SIZE);
			a = find(n, id);
		}
		if (a && a->state != ACTOR_DEAD)
			kill_actor(n, a, "a client on another node");
		break;
	}
	default:
		PRISM_LOG_W("actors", "unknown peer message %u", h->type);
	}
}

void actors__peer_gone(struct sched_node *n, struct transport_conn *c)
{
	for (uint32_t i = 0; i < NODE_MAX_ACTORS; i++) {
		struct actor *a = &n->actors[i];
		if (a->owner == SCHED_DAEMON_SLOT && a->oc == c &&
		    (a->state == ACTOR_PENDING || a->state == ACTOR_ALIVE)) {
			a->oc = NULL;
			actor_dead(n, a, "its owner's node is gone");
		} else if (a->oc == c) {
			a->oc = NULL;
		}
	}
	uint32_t kept = 0;
	for (uint32_t i = 0; i < n->nwaits; i++)
		if (n->waits[i].c != c)
			n->waits[kept++] = n->waits[i];
	n->nwaits = kept;
	for (uint32_t i = 0; i < n->nfar;) {
		struct actor_far *f = &n->far[i];
		if (f->c != c) {
			i++;
			continue;
		}
		if (f->kind == FAR_INCOMING) {
			f->c = NULL; /* its pull fails, or finds nobody to answer */
			i++;
			continue;
		}
		if ((f->kind == FAR_OWNED || f->kind == FAR_CONNECT) &&
		    alive_client(n, f->client, f->gen))
			deny_actor(n, f->client,
				   f->kind == FAR_OWNED && !f->accepted ? f->req_id : 0, f->id,
				   f->kind == FAR_OWNED && !f->accepted ? PRISM_E_PEER_GONE
									: PRISM_E_ACTOR_DIED);
		far_drop(n, i);
	}
}
