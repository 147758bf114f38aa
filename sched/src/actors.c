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
#include "base/error.h"
#include "base/log.h"
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
};

/* A client waiting for a channel to an actor that has no host yet. */
struct actor_wait {
	uint32_t client, gen;
	uint32_t actor;
};

int actors__init(struct sched_node *n)
{
	n->actors = prism_calloc(NODE_MAX_ACTORS, sizeof(*n->actors));
	return n->actors ? 0 : -ENOMEM;
}

void actors__free(struct sched_node *n)
{
	prism_free(n->actors);
	prism_free(n->waits);
	n->actors = NULL;
	n->waits = NULL;
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

/* An object given to the daemon's slot (a constructor, a checkpoint): gone for good. */
static void drop_object(struct sched_node *n, prism_id id)
{
	objstore_release(n->os, id);
	objstore_delete(n->os, id);
}

static bool alive_client(struct sched_node *n, uint32_t slot, uint32_t gen)
{
	return n->cl[slot].kind != 0 && node__client(n, slot)->generation == gen &&
	       atomic_load(&node__client(n, slot)->state) == SCHED_CLIENT_ATTACHED;
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

/* Open a channel from client to a's host; flags SCHED_CHAN_*. */
static int open_channel(struct sched_node *n, struct actor *a, uint32_t client, uint32_t flags)
{
	int l = ctl__lease_open(n, client, (uint32_t)a->worker, NULL, true);
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
	m.b = client;
	m.c = ls->generation;
	m.d = 1; /* an actor channel */
	m.e = flags;
	ctl__send(n, (uint32_t)a->worker, &m);
	ctl__msg_init(&m, SCHED_M_ACTOR_CHANNEL);
	m.a = (uint32_t)l;
	m.b = (uint32_t)a->worker;
	m.c = ls->generation;
	m.code = n->cl[a->worker].pid;
	m.e = flags;
	memcpy(m.tail_, a->id.b, PRISM_ID_SIZE);
	ctl__send(n, client, &m);
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
		if (!alive_client(n, w->client, w->gen))
			continue;
		if (a->state == ACTOR_ALIVE) {
			if (open_channel(n, a, w->client, 0) != 0)
				deny_actor(n, w->client, 0, a->id, -ENOSPC);
		} else if (a->state == ACTOR_DEAD) {
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
	a->name[0] = '\0'; /* the name is free for a new actor */
	ckpt_drop(n, a);
	if (!prism_id_is_nil(a->ctor)) {
		drop_object(n, a->ctor);
		a->ctor = (prism_id){0};
	}
	if (alive_client(n, a->owner, a->owner_gen))
		deny_actor(n, a->owner, 0, a->id, PRISM_E_ACTOR_DIED);
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

/* The highest CPU this process may use that no real-time actor holds. */
static int free_rt_cpu(struct sched_node *n)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
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
	if (sched_getaffinity(0, sizeof(*set), set) != 0)
		return false;
	for (uint32_t i = 0; i < NODE_MAX_ACTORS; i++) {
		const struct actor *a = &n->actors[i];
		if (a->state == ACTOR_ALIVE && a->rt_cpu >= 0 && a->rt_cpu < CPU_SETSIZE)
			CPU_CLR(a->rt_cpu, set);
	}
	return CPU_COUNT(set) > 0;
}

void actors__fence_worker(struct sched_node *n, uint32_t slot)
{
	struct client_local *cl = &n->cl[slot];
	cpu_set_t set;
	if (cl->kind != SCHED_KIND_WORKER || cl->pid <= 0 || cl->doomed)
		return;
	if (cl->actor && (n->actors[cl->actor - 1].flags & SCHED_ACTOR_REALTIME))
		return; /* it pins itself to its own CPU */
	if (fence_mask(n, &set) && sched_setaffinity(cl->pid, sizeof(set), &set) != 0)
		PRISM_LOG_D("actors", "cannot set the CPUs of worker %d: %s", (int)cl->pid,
			    strerror(errno));
}

/* The set of real-time CPUs changed: every ordinary worker gets the new mask. */
static void fence_all(struct sched_node *n)
{
	for (uint32_t s = 0; s < SCHED_MAX_CLIENTS; s++)
		actors__fence_worker(n, s);
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
	if (open_channel(n, a, a->owner, flags) != 0) {
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
		if (!alive_client(n, a->owner, a->owner_gen)) {
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

void actors__on_create(struct sched_node *n, uint32_t slot, const struct sched_ctl_msg *cm)
{
	const struct sched_actor_msg *m = (const struct sched_actor_msg *)cm;
	int code = PRISM_E_INFEASIBLE;
	if (m->h.len < sizeof(*m) || memchr(m->name, '\0', sizeof(m->name)) == NULL) {
		deny_actor(n, slot, m->h.req_id, m->actor, PRISM_E_PROTO);
		return;
	}
	uint64_t milli[SCHED_MAX_RES];
	for (uint32_t r = 0; r < SCHED_MAX_RES; r++) {
		milli[r] = m->milli[r];
		if (milli[r] && (r >= n->hdr->nres || milli[r] > n->hdr->res[r].total_milli))
			goto deny;
	}
	if (m->flags & SCHED_ACTOR_REALTIME) {
		code = PRISM_E_NO_SPINNER;
		if (rt_count(n) >= rt_limit(n))
			goto deny;
		if (milli[SCHED_RES_CPU] < 1000)
			milli[SCHED_RES_CPU] = 1000; /* it spins: a whole CPU is its own */
	}
	code = -EEXIST;
	if (find(n, m->actor))
		goto deny;
	for (uint32_t i = 0; m->name[0] && i < NODE_MAX_ACTORS; i++)
		if ((n->actors[i].state == ACTOR_PENDING ||
		     n->actors[i].state == ACTOR_ALIVE) &&
		    strcmp(n->actors[i].name, m->name) == 0)
			goto deny;
	struct actor *a = NULL, *oldest = NULL;
	for (uint32_t i = 0; i < NODE_MAX_ACTORS && !a; i++) {
		struct actor *e = &n->actors[i];
		if (e->state == ACTOR_FREE)
			a = e;
		else if (e->state == ACTOR_DEAD && (!oldest || e->dead_seq < oldest->dead_seq))
			oldest = e;
	}
	code = -ENOSPC;
	if (!a && !(a = oldest))
		goto deny;
	*a = (struct actor){.state = ACTOR_PENDING,
			    .id = m->actor,
			    .cls = m->cls,
			    .owner = slot,
			    .owner_gen = node__client(n, slot)->generation,
			    .code = n->cl[slot].code,
			    .worker = -1,
			    .restarts_left = m->max_restarts,
			    .flags = m->flags,
			    .rt_cpu = -1,
			    .rt_spin_us = m->rt_spin_us};
	memcpy(a->milli, milli, sizeof(milli));
	snprintf(a->name, sizeof(a->name), "%s", m->name);
	a->ctor = m->ctor; /* given to us by the owner */
	n->actors_created++;
	answer_ok(n, slot, m->h.req_id, m->actor, m->cls);
	ctl__dispatch(n);
	return;
deny:
	if (!prism_id_is_nil(m->ctor))
		drop_object(n, m->ctor); /* it was given to us */
	deny_actor(n, slot, m->h.req_id, m->actor, code);
}

void actors__on_connect(struct sched_node *n, uint32_t slot, const struct sched_ctl_msg *m)
{
	prism_id id;
	memcpy(id.b, m->tail_, PRISM_ID_SIZE);
	struct actor *a = find(n, id);
	if (!a) {
		deny_actor(n, slot, m->h.req_id, id, -ENOENT);
	} else if (a->state == ACTOR_DEAD) {
		deny_actor(n, slot, m->h.req_id, id, PRISM_E_ACTOR_DIED);
	} else if (a->state == ACTOR_ALIVE) {
		if (open_channel(n, a, slot, 0) != 0)
			deny_actor(n, slot, m->h.req_id, id, -ENOSPC);
	} else {
		if (n->nwaits == n->capwaits) {
			uint32_t cap = n->capwaits ? 2 * n->capwaits : 16;
			void *nw = prism_realloc(n->waits, cap * sizeof(*n->waits));
			if (!nw) {
				deny_actor(n, slot, m->h.req_id, id, -ENOMEM);
				return;
			}
			n->waits = nw;
			n->capwaits = cap;
		}
		n->waits[n->nwaits++] =
			(struct actor_wait){.client = slot,
					    .gen = node__client(n, slot)->generation,
					    .actor = (uint32_t)(a - n->actors)};
	}
}

void actors__on_kill(struct sched_node *n, uint32_t slot, const struct sched_ctl_msg *m)
{
	prism_id id;
	memcpy(id.b, m->tail_, PRISM_ID_SIZE);
	struct actor *a = find(n, id);
	if (!a || a->state == ACTOR_DEAD)
		return;
	a->killed = true;
	char why[64];
	snprintf(why, sizeof(why), "killed by client %u", slot);
	actor_dead(n, a, why);
	ctl__dispatch(n);
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

void actors__client_gone(struct sched_node *n, uint32_t slot)
{
	for (uint32_t i = 0; i < NODE_MAX_ACTORS; i++) {
		struct actor *a = &n->actors[i];
		if ((a->state == ACTOR_PENDING || a->state == ACTOR_ALIVE) && a->owner == slot)
			actor_dead(n, a, "its owner is gone");
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
