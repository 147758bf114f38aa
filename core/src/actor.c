/* actor.c — actors from the caller's side: creating, calling, looking up, killing.
 *
 * Every actor this process has a handle to has an entry here (by id), with the channel
 * to it once the node opened one (a lease whose worker is the actor's host: calls go
 * straight into its ring, as tasks do) and the calls waiting for that channel, in call
 * order.  A caller asks for a channel on its first call (ACTOR_CONNECT); the creator,
 * the owner, gets one when the actor is bound to a worker.  The constructor goes to the
 * node as a store object at creation; the node puts it first into the owner's channel
 * at every binding (creation, restarts), so nothing waits for the owner to poll.
 *
 * Calls from this process run in the order they were made: one channel, one FIFO ring,
 * and calls wait in the entry's queue, in order, while there is no channel.  A call
 * whose ref arguments are not ready waits for them in prism_actor_call() so that no
 * later call can overtake it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "rt.h"
#include "sched/node.h"

#define RT_MAX_ACTORS 256u /* a power of two: open addressing by id */
#define CREATE_TIMEOUT_NS (30 * PRISM_NS_PER_SEC)
/* A kill of an actor on another node waits for a GCS lookup (2 s while no record is
 * found, sched/src/actors.c): a generous bound on that. */
#define KILL_TIMEOUT_NS (30 * PRISM_NS_PER_SEC)

enum ac_state {
	AC_FREE = 0,
	AC_IDLE,       /* no channel and none asked for */
	AC_CONNECTING, /* asked (or, for the owner, waiting for the node to bind it) */
	AC_OPEN,       /* calls go into chan */
	AC_DEAD,
};

struct rt_actor {
	prism_id id;
	uint64_t cls;
	uint8_t state;
	bool owner;
	struct rt_lease *chan;
	struct inflight queued;
	int dead_code;
	char why[160];
};

static struct rt_actor actors[RT_MAX_ACTORS];

/* The answer to the one create or lookup this process waits for. */
static struct {
	uint64_t req_id;
	bool done;
	int code;
	prism_id id;
	uint64_t cls;
} reply;

static struct rt_actor *entry(prism_id id, bool add)
{
	uint64_t h;
	memcpy(&h, id.b, sizeof(h));
	for (uint32_t k = 0; k < RT_MAX_ACTORS; k++) {
		struct rt_actor *a = &actors[(h + k) & (RT_MAX_ACTORS - 1)];
		if (a->state == AC_FREE) {
			if (!add)
				return NULL;
			*a = (struct rt_actor){.id = id, .state = AC_IDLE};
			return a;
		}
		if (prism_id_eq(a->id, id))
			return a;
	}
	return NULL;
}

static int send_with_id(uint16_t type, prism_id id, uint64_t req_id)
{
	struct sched_ctl_msg m = {
		.h = {.len = sizeof(m), .type = type, .nslots = 1, .req_id = req_id}};
	memcpy(m.tail_, id.b, PRISM_ID_SIZE);
	return rt_send_msg(&m.h);
}

static void mark_dead(struct rt_actor *a, int code, const char *why)
{
	if (a->state == AC_DEAD)
		return;
	a->state = AC_DEAD;
	a->dead_code = code;
	snprintf(a->why, sizeof(a->why), "%s", why);
	rt.actor_queued -= a->queued.count;
	if (a->queued.count) {
		rt_fail_msgs(&a->queued, code == PRISM_E_ACTOR_DIED ? code : PRISM_E_ACTOR_DIED,
			     a->why);
	}
}

/* Push one call into the open channel; PRISM_E_AGAIN when its ring is full. */
static int push(struct rt_actor *a, const struct sched_task_msg *m)
{
	struct rt_lease *l = a->chan;
	int rc = fl_push(&l->fl, m, m->h.len);
	if (rc)
		return rc;
	rc = sched_msg_send(l->spec, &m->h);
	if (rc) {
		fl_unpush(&l->fl, m->h.len);
		return rc == PRISM_E_FULL ? PRISM_E_AGAIN : rc;
	}
	return 0;
}

static int enqueue(struct rt_actor *a, const struct sched_task_msg *m)
{
	int rc = fl_push(&a->queued, m, m->h.len);
	if (rc == 0 && a->state == AC_OPEN && a->queued.count == 1)
		rt.actor_backlog++;
	rt.actor_queued += rc == 0;
	return rc;
}

int rt_actor_dispatch(const struct sched_task_msg *m)
{
	if (m->shape >= RT_MAX_ACTORS)
		return PRISM_E_PROTO;
	struct rt_actor *a = &actors[m->shape];
	switch (a->state) {
	case AC_OPEN:
		if (a->queued.count == 0) {
			int rc = push(a, m);
			if (rc != PRISM_E_AGAIN)
				return rc;
		}
		return enqueue(a, m);
	case AC_IDLE: {
		int rc = send_with_id(SCHED_M_ACTOR_CONNECT, a->id, 0);
		if (rc)
			return rc;
		a->state = AC_CONNECTING;
		return enqueue(a, m);
	}
	case AC_CONNECTING:
		return enqueue(a, m);
	default: {
		int rc = enqueue(a, m);
		if (rc == 0)
			rt_fail_msgs(&a->queued, PRISM_E_ACTOR_DIED, a->why);
		return rc;
	}
	}
}

/* Push the calls waiting for room, in order; a stale one that asked to be dropped is
 * dropped here (dropping reorders nothing). */
static void flush_one(struct rt_actor *a)
{
	uint64_t now = 0;
	while (a->queued.count) {
		const struct sched_task_msg *m =
			(const struct sched_task_msg *)fl_peek(&a->queued);
		if (m->deadline && (m->flags & SCHED_TASK_DROP_LATE)) {
			now = now ? now : prism_now_ns();
			if (rt_deadline_stale(m, now)) {
				rt_drop_stale(m, now);
				fl_pop(&a->queued);
				rt.actor_queued--;
				continue;
			}
		}
		if (push(a, m) != 0)
			return;
		fl_pop(&a->queued);
		rt.actor_queued--;
	}
	rt.actor_backlog--;
}

void rt_actor_flush(void)
{
	for (uint32_t i = 0; rt.actor_backlog && i < RT_MAX_ACTORS; i++)
		if (actors[i].state == AC_OPEN && actors[i].queued.count)
			flush_one(&actors[i]);
}

void rt_actor_channel_open(struct rt_lease *l, const struct sched_ctl_msg *m)
{
	prism_id id;
	memcpy(id.b, m->tail_, PRISM_ID_SIZE);
	struct rt_actor *a = entry(id, false);
	if (!a || a->state == AC_DEAD || a->chan) {
		/* Nobody here wants it (the actor was killed meanwhile): give it back.  The
		 * node reuses a lease only once its submitter has let go, so it is still
		 * ours to return (a channel ended meanwhile takes this as our answer). */
		uint32_t idx = l->idx, gen = l->gen;
		rt_lease_forget(l);
		rt_send_ctl(SCHED_M_LEASE_RETURN, idx, gen, 0);
		return;
	}
	l->actor = a;
	a->chan = l;
	if (m->e & SCHED_CHAN_RESTART)
		PRISM_LOG_I("actor", "actor restarted on worker pid %d", (int)l->worker_pid);
	a->state = AC_OPEN;
	if (a->queued.count) {
		rt.actor_backlog++;
		flush_one(a);
	}
}

void rt_actor_chan_lost(struct rt_actor *a)
{
	a->chan = NULL;
	if (a->state != AC_OPEN)
		return;
	if (a->queued.count)
		rt.actor_backlog--;
	if (a->owner) {
		/* The node restarts it (a channel marked RESTART comes) or says it died. */
		a->state = AC_CONNECTING;
	} else if (a->queued.count) {
		a->state = send_with_id(SCHED_M_ACTOR_CONNECT, a->id, 0) == 0 ? AC_CONNECTING
									      : AC_IDLE;
	} else {
		a->state = AC_IDLE;
	}
}

void rt_actor_on_ctl(const struct sched_ctl_msg *m)
{
	prism_id id;
	memcpy(id.b, m->tail_, PRISM_ID_SIZE);
	if (m->h.req_id && m->h.req_id == reply.req_id) {
		reply.done = true;
		reply.code = m->h.type == SCHED_M_ACTOR_OK ? 0 : m->code;
		reply.id = id;
		reply.cls = m->e;
		return;
	}
	if (m->h.type != SCHED_M_ACTOR_DENIED)
		return;
	struct rt_actor *a = entry(id, false);
	if (!a)
		return;
	if (a->state == AC_OPEN && a->queued.count)
		rt.actor_backlog--;
	mark_dead(a, m->code,
		  m->code == -ENOENT
			  ? "no such actor on this node (ended long ago, or never "
			    "created)"
			  : "the actor died (its worker ended, or it was killed, or its "
			    "owner is gone) and is not restarted");
}

void rt_actor_fini(void)
{
	for (uint32_t i = 0; i < RT_MAX_ACTORS; i++)
		fl_free(&actors[i].queued);
	memset(actors, 0, sizeof(actors));
	rt.actor_backlog = 0;
	rt.actor_queued = 0;
	reply.req_id = 0;
}

/* ---- the API ------------------------------------------------------------------------------ */

static bool reply_done(void *arg)
{
	(void)arg;
	return reply.done;
}

/* Send a create or lookup and wait for its answer. */
static int ask(struct sched_msg *h, int64_t timeout_ns)
{
	reply.req_id = h->req_id = ++rt.next_req;
	reply.done = false;
	int rc = rt_send_msg(h);
	if (rc == 0)
		rc = rt_wait_until(reply_done, NULL, timeout_ns);
	reply.req_id = 0;
	return rc ? rc : reply.code;
}

/* The constructor message, every argument inline (refs are waited for and copied), in
 * a store object given to the node (it sends it again after a restart). */
static int store_ctor(const struct rt_fn *cls, const prism_value *args, size_t nargs,
		      uint32_t checkpoint_every, prism_id id)
{
	size_t len = sizeof(struct sched_task_msg);
	const void *data[64];
	size_t lens[64];
	if (nargs > 64) {
		rt_set_error("a constructor takes at most 64 arguments");
		return -EINVAL;
	}
	for (size_t i = 0; i < nargs; i++) {
		if (!prism_id_is_nil(args[i].ref.id)) {
			int rc = prism_get(args[i].ref, -1, &data[i], &lens[i]);
			if (rc) {
				rt_set_error("constructor argument %zu: %s", i,
					     rc == PRISM_E_TASK_FAILED ? (const char *)data[i]
								       : prism_strerror(rc));
				return rc;
			}
		} else {
			data[i] = args[i].data;
			lens[i] = args[i].len;
		}
		len += sizeof(struct sched_arg) + sched_align8((uint32_t)lens[i]);
	}
	if (len > SCHED_MSG_MAX) {
		rt_set_error("constructor arguments take %zu bytes, more than a message holds "
			     "(%u): pass a ref to a prism_put() object and read it in the "
			     "constructor",
			     len, SCHED_MSG_MAX);
		return PRISM_E_TOO_BIG;
	}
	size_t size = sched_msg_slots((uint32_t)len) * SCHED_SLOT;
	void *obj;
	int rc = objstore_create(rt.os, id, size, &obj);
	if (rc) {
		rt_set_error("no room in the object store for a constructor: %s",
			     prism_strerror(rc));
		return rc;
	}
	uint8_t *buf = obj;
	memset(buf, 0, size);
	struct sched_task_msg *m = (struct sched_task_msg *)buf;
	memset(m, 0, sizeof(*m));
	m->h = (struct sched_msg){.len = (uint32_t)len,
				  .type = SCHED_M_TASK,
				  .nslots = (uint16_t)sched_msg_slots((uint32_t)len)};
	m->task = prism_id_new(PRISM_ID_TASK);
	m->fn = cls->hash;
	m->nargs = (uint16_t)nargs;
	m->nreturns = 1;
	m->flags = SCHED_TASK_CTOR;
	m->attempt = checkpoint_every; /* a constructor's own meaning of the field */
	uint8_t *p = buf + sizeof(*m);
	for (size_t i = 0; i < nargs; i++) {
		struct sched_arg *a = (struct sched_arg *)p;
		*a = (struct sched_arg){.len = (uint32_t)lens[i], .kind = SCHED_ARG_INLINE};
		p += sizeof(*a);
		if (lens[i])
			memcpy(p, data[i], lens[i]);
		memset(p + lens[i], 0, sched_align8((uint32_t)lens[i]) - lens[i]);
		p += sched_align8((uint32_t)lens[i]);
	}
	rc = objstore_seal(rt.os, id);
	if (rc == 0)
		rc = objstore_give(rt.os, id, SCHED_DAEMON_SLOT);
	if (rc) {
		objstore_abort(rt.os, id);
		objstore_release(rt.os, id);
		objstore_delete(rt.os, id);
	}
	return rc;
}

static int actor_create_entered(const char *cls_name, const prism_value *args, size_t nargs,
				const prism_actor_opts *opts, prism_actor *out)
{
	prism_actor_opts o = {0};
	if (opts)
		o = *opts;
	if (!rt.up) {
		rt_set_error("prism_init() has not been called");
		return PRISM_E_CLOSED;
	}
	if (!cls_name || !out || (nargs && !args)) {
		rt_set_error("prism_actor_create: cls, out and args must not be NULL");
		return -EINVAL;
	}
	int arc = rt_check_args(args, nargs, cls_name);
	if (arc)
		return arc;
	const struct rt_fn *cls = rt_fn_by_name(cls_name);
	if (!cls || cls->kind != RT_CLASS) {
		rt_set_error("no actor class named '%s' is registered (PRISM_ACTOR)", cls_name);
		return PRISM_E_UNKNOWN_FUNCTION;
	}
	if (o.max_restarts < -1 || (o.name && strlen(o.name) >= 64)) {
		rt_set_error("prism_actor_create: max_restarts must be >= -1 and a name at "
			     "most 63 bytes");
		return -EINVAL;
	}
	if ((o.rt_spin_ns || o.rt_let_cpu_idle) && !o.realtime) {
		rt_set_error("prism_actor_create: rt_spin_ns and rt_let_cpu_idle are for "
			     "real-time actors only");
		return -EINVAL;
	}
	struct sched_actor_msg m = {.h = {.len = sizeof(m),
					  .type = SCHED_M_ACTOR_CREATE,
					  .nslots = (uint16_t)sched_msg_slots(sizeof(m))},
				    .cls = cls->hash,
				    .max_restarts = o.max_restarts,
				    .flags = (o.realtime ? SCHED_ACTOR_REALTIME : 0) |
					     (o.rt_let_cpu_idle ? SCHED_ACTOR_RT_LET_IDLE : 0)};
	/* In microseconds, rounded up (a spin of 1 ns is not "forever"), at most ~71 min. */
	uint64_t spin_us = (o.rt_spin_ns + 999) / 1000;
	m.rt_spin_us = spin_us > UINT32_MAX ? UINT32_MAX : (uint32_t)spin_us;
	/* Resources as for a task, except that an actor holds no CPU unless it asks. */
	prism_call_opts ro = {.num_cpus = o.num_cpus > 0 ? o.num_cpus : 1,
			      .num_gpus = o.num_gpus,
			      .resources = o.resources,
			      .nresources = o.nresources};
	uint32_t shape;
	int rc = rt_shape_for(&ro, cls_name, &shape);
	if (rc)
		return rc;
	memcpy(m.milli, rt.shapes[shape].milli, sizeof(m.milli));
	if (!(o.num_cpus > 0))
		m.milli[SCHED_RES_CPU] = 0;
	if (o.name)
		snprintf(m.name, sizeof(m.name), "%s", o.name);
	m.actor = prism_id_new(PRISM_ID_ACTOR);
	struct rt_actor *a = entry(m.actor, true);
	if (!a) {
		rt_set_error("this process holds handles to %u actors already", RT_MAX_ACTORS);
		return -ENOSPC;
	}
	uint32_t every = o.checkpoint_every ? o.checkpoint_every : 1;
	if (!cls->save || o.max_restarts == 0)
		every = 0;
	m.ctor = prism_id_derive(m.actor, PRISM_ID_OBJECT, 1);
	rc = store_ctor(cls, args, nargs, every, m.ctor);
	if (rc) {
		a->state = AC_DEAD;
		return rc;
	}
	a->cls = cls->hash;
	a->owner = true;
	a->state = AC_CONNECTING;
	rc = ask(&m.h, CREATE_TIMEOUT_NS);
	if (rc) {
		mark_dead(a, rc, "not created");
		switch (rc) {
		case -EEXIST:
			rt_set_error("an actor named '%s' exists already on this node", m.name);
			break;
		case PRISM_E_NO_SPINNER:
			rt_set_error(
				"no CPU is left for another real-time actor (each spins on "
				"a CPU of its own; a node runs at most ncpus - 1)");
			break;
		case PRISM_E_INFEASIBLE:
			rt_set_error("the node cannot hold the resources '%s' asks for",
				     cls_name);
			break;
		default:
			if (!prism_last_error()[0])
				rt_set_error("the node refused the actor: %s",
					     prism_strerror(rc));
		}
		return rc;
	}
	*out = (prism_actor){.id = m.actor, .cls = cls->hash};
	return 0;
}

static int actor_call_entered(prism_actor actor, const char *method, const prism_value *args,
			      size_t nargs, const prism_call_opts *opts, prism_ref *out)
{
	prism_call_opts o = {0};
	if (opts) {
		o.num_returns = opts->num_returns;
		o.deadline_ns = opts->deadline_ns;
		o.flags = opts->flags;
	}
	if (!rt.up) {
		rt_set_error("prism_init() has not been called");
		return PRISM_E_CLOSED;
	}
	if (!method || !out || (nargs && !args) || nargs > 65535 ||
	    o.num_returns > PRISM_MAX_RETURNS || prism_id_is_nil(actor.id)) {
		rt_set_error("prism_actor_call: bad handle, method, out, args or options");
		return -EINVAL;
	}
	int frc = rt_check_call_flags(&o, "prism_actor_call");
	if (frc == 0)
		frc = rt_check_args(args, nargs, method);
	if (frc)
		return frc;
	uint64_t h = sched_fn_hash_more(sched_fn_hash_more(actor.cls, "."), method);
	const struct rt_fn *fn = rt_fn_by_hash(h);
	if (!fn || fn->kind != RT_METHOD || fn->cls->hash != actor.cls) {
		const struct rt_fn *cls = rt_fn_by_hash(actor.cls);
		if (cls && cls->kind == RT_CLASS) {
			rt_set_error("actor class %s has no method '%s' (PRISM_METHOD)",
				     cls->name, method);
			return PRISM_E_UNKNOWN_METHOD;
		}
		rt_set_error("the actor's class is not registered in this program");
		return PRISM_E_UNKNOWN_FUNCTION;
	}
	struct rt_actor *a = entry(actor.id, true);
	if (!a) {
		rt_set_error("this process holds handles to %u actors already", RT_MAX_ACTORS);
		return -ENOSPC;
	}
	a->cls = actor.cls;
	/* A ref argument not ready yet is waited for here: a later call must not
	 * overtake this one. */
	for (size_t i = 0; i < nargs; i++) {
		if (prism_id_is_nil(args[i].ref.id))
			continue;
		const void *d;
		size_t len;
		int rc = prism_get(args[i].ref, -1, &d, &len);
		if (rc == PRISM_E_RELEASED || rc == -ENOENT || rc == -EINVAL)
			return rc;
	}
	return rt_call(fn, (uint32_t)(a - actors), args, nargs, &o, out);
}

static int actor_get_entered(const char *name, int64_t timeout_ns, prism_actor *out)
{
	if (!rt.up) {
		rt_set_error("prism_init() has not been called");
		return PRISM_E_CLOSED;
	}
	if (!name || !*name || strlen(name) >= 64 || !out) {
		rt_set_error("prism_actor_get: a name of 1 to 63 bytes and out, please");
		return -EINVAL;
	}
	uint64_t deadline =
		timeout_ns >= 0 ? prism_now_ns() + (uint64_t)timeout_ns : UINT64_MAX;
	for (;;) {
		struct sched_actor_msg m = {
			.h = {.len = sizeof(m),
			      .type = SCHED_M_ACTOR_LOOKUP,
			      .nslots = (uint16_t)sched_msg_slots(sizeof(m))}};
		snprintf(m.name, sizeof(m.name), "%s", name);
		int rc = ask(&m.h, 10 * PRISM_NS_PER_SEC);
		if (rc == 0) {
			*out = (prism_actor){.id = reply.id, .cls = reply.cls};
			return 0;
		}
		if (rc != -ENOENT)
			return rc;
		uint64_t now = prism_now_ns();
		if (now >= deadline) {
			rt_set_error("no actor named '%s' on this node", name);
			return -ENOENT;
		}
		/* Not there yet: look again shortly (an actor is named at creation). */
		uint64_t step = 2 * PRISM_NS_PER_MS;
		struct timespec ts = {0, (long)(deadline - now < step ? deadline - now : step)};
		nanosleep(&ts, NULL);
	}
}

static int actor_kill_entered(prism_actor actor)
{
	if (!rt.up) {
		rt_set_error("prism_init() has not been called");
		return PRISM_E_CLOSED;
	}
	if (prism_id_is_nil(actor.id)) {
		rt_set_error("prism_actor_kill: the handle is nil");
		return -EINVAL;
	}
	/* The node answers once it knows the actor (-ENOENT: none with that id). */
	struct sched_ctl_msg m = {
		.h = {.len = sizeof(m), .type = SCHED_M_ACTOR_KILL, .nslots = 1}};
	memcpy(m.tail_, actor.id.b, PRISM_ID_SIZE);
	int rc = ask(&m.h, KILL_TIMEOUT_NS);
	if (rc == -ENOENT)
		rt_set_error("prism_actor_kill: no actor with that id exists (never created)");
	else if (rc)
		rt_set_error("prism_actor_kill: %s", prism_strerror(rc));
	struct rt_actor *a = entry(actor.id, false);
	if (a) {
		if (a->state == AC_OPEN && a->queued.count)
			rt.actor_backlog--;
		mark_dead(a, PRISM_E_ACTOR_DIED, "the actor was killed (prism_actor_kill)");
	}
	rt_launch_ready();
	return rc;
}

int prism_actor_create(const char *cls_name, const prism_value *args, size_t nargs,
		       const prism_actor_opts *opts, prism_actor *out)
{
	RT_ENTERED(actor_create_entered(cls_name, args, nargs, opts, out));
}

int prism_actor_call(prism_actor actor, const char *method, const prism_value *args,
		     size_t nargs, const prism_call_opts *opts, prism_ref *out)
{
	RT_ENTERED(actor_call_entered(actor, method, args, nargs, opts, out));
}

int prism_actor_get(const char *name, int64_t timeout_ns, prism_actor *out)
{
	RT_ENTERED(actor_get_entered(name, timeout_ns, out));
}

int prism_actor_kill(prism_actor actor)
{
	RT_ENTERED(actor_kill_entered(actor));
}
