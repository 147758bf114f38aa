/* ctl.c — control messages and leases.
 *
 * Each loop iteration drains every client's up ring (NODE_CTL_BATCH messages at most
 * per client) through a table of handlers.  Leases: a client asks for one with a
 * resource shape; the daemon grants it when an idle worker of the client's program and
 * the resources are both there, formatting a fresh pair of rings (spec: client ->
 * worker, rung on the worker's doorbell; done: worker -> client, rung on the client's)
 * and telling both sides.  Requests wait in arrival order; one that cannot be met
 * because no worker is idle starts one, up to max_workers.  A shape no node resource
 * can ever meet is refused at once (PRISM_E_INFEASIBLE).
 *
 * Returning: the client sends LEASE_RETURN when it has nothing in flight; the worker
 * is told to drain and detach (REVOKE), answers RELEASED, and is idle again.  A worker
 * that dies takes its lease with it (LEASE_LOST to the client, which retries what was in
 * flight); a client that dies has its leases revoked with "discard" set.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "node_int.h"

void ctl__msg_init(struct sched_ctl_msg *m, uint16_t type)
{
	memset(m, 0, sizeof(*m));
	m->h.len = sizeof(*m);
	m->h.type = type;
	m->h.nslots = 1;
}

int ctl__send(struct sched_node *n, uint32_t slot, const struct sched_ctl_msg *m)
{
	struct client_local *cl = &n->cl[slot];
	if (!cl->down)
		return -ENOENT;
	if (cl->nbacklog == 0 && sched_msg_send(cl->down, &m->h) == 0)
		return 0;
	/* The client is not draining its down ring right now (busy in a long task):
	 * keep the message in order behind the others and retry on every tick. */
	if (cl->nbacklog == cl->capbacklog) {
		uint32_t cap = cl->capbacklog ? 2 * cl->capbacklog : 16;
		void *nb = prism_realloc(cl->backlog, cap * sizeof(*cl->backlog));
		if (!nb)
			return -ENOMEM;
		cl->backlog = nb;
		cl->capbacklog = cap;
	}
	cl->backlog[cl->nbacklog++] = *m;
	return 0;
}

void ctl__flush_backlogs(struct sched_node *n)
{
	for (uint32_t s = 0; s < SCHED_MAX_CLIENTS; s++) {
		struct client_local *cl = &n->cl[s];
		uint32_t sent = 0;
		while (sent < cl->nbacklog &&
		       sched_msg_send(cl->down, &cl->backlog[sent].h) == 0)
			sent++;
		if (sent) {
			memmove(cl->backlog, cl->backlog + sent,
				(cl->nbacklog - sent) * sizeof(*cl->backlog));
			cl->nbacklog -= sent;
		}
	}
}

/* ---- leases ---------------------------------------------------------------------------- */

/* Add (sign 1) or take back (-1) what lease l holds; a worker blocked in a get has
 * lent its CPU back already (skip_cpu). */
static void res_account(struct sched_node *n, uint32_t l, int sign, bool skip_cpu)
{
	for (uint32_t r = skip_cpu ? 1 : 0; r < SCHED_MAX_RES; r++)
		n->res_used[r] += sign > 0 ? n->lease_res[l][r] : -n->lease_res[l][r];
}

/* The worker's side of lease l ends: its resources go back and the worker is idle (once
 * only). */
static void lease_drop_worker(struct sched_node *n, uint32_t l)
{
	if (n->lease_wgone[l])
		return;
	n->lease_wgone[l] = true;
	struct sched_lease *ls = sched_lease_at(n->base, l);
	struct client_local *w = &n->cl[ls->worker];
	if (w->lease == (int)l) {
		res_account(n, l, -1, w->blocked);
		w->lease = -1;
		w->blocked = false;
		w->idle_since = prism_now_ns();
	} else {
		res_account(n, l, -1, false);
	}
	memset(n->lease_res[l], 0, sizeof(n->lease_res[l]));
}

static void lease_free(struct sched_node *n, uint32_t l)
{
	struct sched_lease *ls = sched_lease_at(n->base, l);
	if (ls->submitter == SCHED_DAEMON_SLOT)
		remote__hosted_freed(n, l);
	lease_drop_worker(n, l);
	n->lease_await[l] = n->lease_acked[l] = false;
	atomic_store(&ls->state, SCHED_LEASE_FREE);
}

/* One side of a lease the node ended is done (worker: released or dead; submitter:
 * acknowledged or dead); the lease is free when both are. */
static void recall_step(struct sched_node *n, uint32_t l, bool worker)
{
	if (worker)
		lease_drop_worker(n, l);
	else
		n->lease_acked[l] = true;
	if (n->lease_wgone[l] && n->lease_acked[l])
		lease_free(n, l);
}

bool ctl__res_fit(const struct sched_node *n, const uint64_t *milli)
{
	for (uint32_t r = 0; r < SCHED_MAX_RES; r++)
		if (milli[r] && n->res_used[r] + milli[r] > n->hdr->res[r].total_milli)
			return false;
	return true;
}

/* The doorbell of a lease's end: a client's own, or the daemon's for a lease whose other
 * end is on another node (remote.c). */
void *ctl__bell(struct sched_node *n, uint32_t slot)
{
	return slot == SCHED_DAEMON_SLOT ? n->hdr->daemon_bell : node__client(n, slot)->bell;
}

int ctl__lease_open(struct sched_node *n, uint32_t client, uint32_t worker,
		    const uint64_t *milli, bool chan)
{
	uint32_t l;
	for (l = 0; l < SCHED_MAX_LEASES; l++)
		if (atomic_load(&sched_lease_at(n->base, l)->state) == SCHED_LEASE_FREE)
			break;
	if (l == SCHED_MAX_LEASES)
		return -ENOSPC;
	struct sched_lease *ls = sched_lease_at(n->base, l);
	prism_ring *spec = NULL, *done = NULL;
	int rc = prism_ring_create_shared(sched_lease_ring_at(n->base, l, 0),
					  n->hdr->lease_ring_bytes, "spec", SCHED_SLOT,
					  SCHED_LEASE_SLOTS, ctl__bell(n, worker), &spec);
	if (rc == 0)
		rc = prism_ring_create_shared(sched_lease_ring_at(n->base, l, 1),
					      n->hdr->lease_ring_bytes, "done", SCHED_SLOT,
					      SCHED_LEASE_SLOTS, ctl__bell(n, client), &done);
	prism_ring_destroy(spec);
	prism_ring_destroy(done);
	if (rc)
		return rc;
	ls->generation++;
	ls->submitter = client;
	ls->worker = worker;
	ls->shape = 0;
	atomic_store(&ls->busy, 0);
	atomic_store(&ls->idle_since_ns, prism_now_ns());
	atomic_store(&ls->state, SCHED_LEASE_GRANTED);
	if (milli)
		memcpy(n->lease_res[l], milli, sizeof(n->lease_res[l]));
	else
		memset(n->lease_res[l], 0, sizeof(n->lease_res[l]));
	n->lease_chan[l] = chan;
	n->lease_await[l] = n->lease_wgone[l] = n->lease_acked[l] = false;
	if (!chan)
		n->cl[worker].lease = (int)l;
	res_account(n, l, 1, false);
	n->leases_granted++;
	return (int)l;
}

static int lease_grant(struct sched_node *n, const struct lease_req *rq, uint32_t worker)
{
	int rc = ctl__lease_open(n, rq->client, worker, rq->milli, false);
	if (rc < 0)
		return rc;
	uint32_t l = (uint32_t)rc;
	struct sched_lease *ls = sched_lease_at(n->base, l);
	ls->shape = rq->shape;
	struct sched_ctl_msg m;
	ctl__msg_init(&m, SCHED_M_LEASE_ASSIGN);
	m.a = l;
	m.b = rq->client;
	m.c = ls->generation;
	ctl__send(n, worker, &m);
	ctl__msg_init(&m, SCHED_M_LEASE_GRANT);
	m.h.req_id = rq->req_id;
	m.a = l;
	m.b = worker;
	m.c = ls->generation;
	m.d = rq->shape;
	m.code = n->cl[worker].pid;
	ctl__send(n, rq->client, &m);
	PRISM_LOG_D("ctl", "lease %u: client %u -> worker %u", l, rq->client, worker);
	return 0;
}

void ctl__lease_close(struct sched_node *n, uint32_t l)
{
	lease_free(n, l);
}

void ctl__lease_recalled(struct sched_node *n, uint32_t l)
{
	n->lease_await[l] = true;
	recall_step(n, l, true);
}

void ctl__lease_lost(struct sched_node *n, uint32_t l, int code)
{
	struct sched_lease *ls = sched_lease_at(n->base, l);
	bool granted = atomic_load(&ls->state) == SCHED_LEASE_GRANTED;
	if ((!granted && !n->lease_await[l]) || ls->submitter >= SCHED_DAEMON_SLOT) {
		lease_free(n, l); /* the submitter let go already, or is another node */
		return;
	}
	/* Granted, or recalled without an answer yet: a submitter answers a recall only
	 * once nothing is in flight, so it may still wait for completions. */
	if (granted || !n->lease_acked[l]) {
		struct sched_ctl_msg m;
		ctl__msg_init(&m, SCHED_M_LEASE_LOST);
		m.a = l;
		m.c = ls->generation;
		m.code = code;
		ctl__send(n, ls->submitter, &m);
	}
	atomic_store(&ls->state, SCHED_LEASE_RETURNING);
	ctl__lease_recalled(n, l);
}

void ctl__lease_return(struct sched_node *n, uint32_t l, bool discard)
{
	struct sched_lease *ls = sched_lease_at(n->base, l);
	if (atomic_load(&ls->state) != SCHED_LEASE_GRANTED)
		return;
	atomic_store(&ls->state, SCHED_LEASE_RETURNING);
	struct sched_ctl_msg m;
	ctl__msg_init(&m, SCHED_M_LEASE_REVOKE);
	m.a = l;
	m.b = discard;
	m.c = ls->generation;
	ctl__send(n, ls->worker, &m);
}

static int reqs_push(struct sched_node *n, const struct lease_req *rq)
{
	if (n->nreqs == n->capreqs) {
		uint32_t cap = n->capreqs ? 2 * n->capreqs : 16;
		void *nr = prism_realloc(n->reqs, cap * sizeof(*n->reqs));
		if (!nr)
			return -ENOMEM;
		n->reqs = nr;
		n->capreqs = cap;
	}
	n->reqs[n->nreqs++] = *rq;
	return 0;
}

int ctl__requeue(struct sched_node *n, const struct lease_req *rq)
{
	struct lease_req q = *rq;
	q.next_spill = prism_now_ns() + NODE_SPILL_RETRY_NS;
	return reqs_push(n, &q);
}

static void deny(struct sched_node *n, const struct lease_req *rq, int code)
{
	struct sched_ctl_msg m;
	ctl__msg_init(&m, SCHED_M_LEASE_DENIED);
	m.h.req_id = rq->req_id;
	m.code = code;
	ctl__send(n, rq->client, &m);
}

void ctl__deny(struct sched_node *n, const struct lease_req *rq, int code)
{
	deny(n, rq, code);
}

int ctl__idle_worker(struct sched_node *n, int code)
{
	for (uint32_t s = 0; s < SCHED_MAX_CLIENTS; s++) {
		struct client_local *cl = &n->cl[s];
		if (cl->kind == SCHED_KIND_WORKER && cl->code == code && cl->lease < 0 &&
		    !cl->actor && !cl->doomed &&
		    atomic_load(&node__client(n, s)->state) == SCHED_CLIENT_ATTACHED)
			return (int)s;
	}
	return -1;
}

/* Take back idle leases for waiting requests (see struct sched_lease).  Returns how
 * many were recalled. */
static uint32_t reclaim_idle(struct sched_node *n, uint32_t wanted)
{
	uint64_t now = prism_now_ns();
	uint32_t got = 0;
	for (uint32_t l = 0; l < SCHED_MAX_LEASES && got < wanted; l++) {
		struct sched_lease *ls = sched_lease_at(n->base, l);
		/* A lease for another node's submitter (remote.c) is that node's to return. */
		if (n->lease_chan[l] || ls->submitter == SCHED_DAEMON_SLOT ||
		    atomic_load(&ls->state) != SCHED_LEASE_GRANTED || atomic_load(&ls->busy) ||
		    now - atomic_load(&ls->idle_since_ns) < NODE_LEASE_IDLE_NS)
			continue;
		uint32_t expect = SCHED_LEASE_GRANTED;
		if (!atomic_compare_exchange_strong(&ls->state, &expect, SCHED_LEASE_RETURNING))
			continue;
		if (atomic_load(&ls->busy)) {
			atomic_store(&ls->state, SCHED_LEASE_GRANTED); /* the client won */
			continue;
		}
		n->lease_await[l] = true;
		struct sched_ctl_msg m;
		ctl__msg_init(&m, SCHED_M_LEASE_REVOKE);
		m.a = l;
		m.c = ls->generation;
		ctl__send(n, ls->worker, &m);
		ctl__msg_init(&m, SCHED_M_LEASE_RECALLED);
		m.a = l;
		m.c = ls->generation;
		ctl__send(n, ls->submitter, &m);
		PRISM_LOG_D("ctl", "recalled idle lease %u from client %u", l, ls->submitter);
		got++;
	}
	return got;
}

void ctl__dispatch(struct sched_node *n)
{
	uint32_t kept = 0;
	uint32_t wanted[NODE_MAX_CODES] = {0}; /* requests per program still waiting */
	uint64_t now = n->remote ? prism_now_ns() : 0;
	for (uint32_t i = 0; i < n->nreqs; i++) {
		struct lease_req *rq = &n->reqs[i];
		struct client_local *req_cl = &n->cl[rq->client];
		if (node__client(n, rq->client)->generation != rq->gen || req_cl->kind == 0)
			continue; /* the requester is gone */
		int code = req_cl->code;
		if (pool__broken(n, code)) {
			deny(n, rq, PRISM_E_INFEASIBLE);
			continue;
		}
		bool fits = ctl__res_fit(n, rq->milli);
		int w = fits ? ctl__idle_worker(n, code) : -1;
		if (w >= 0 && lease_grant(n, rq, (uint32_t)w) == 0)
			continue;
		/* Kept waiting here: another node may start it sooner (bottom-up). */
		if (n->remote && now - rq->since >= NODE_SPILL_NS && now >= rq->next_spill) {
			rq->next_spill = now + NODE_SPILL_RETRY_NS;
			if (remote__request(n, rq, true) == 0)
				continue;
		}
		if (fits)
			wanted[code]++;
		n->reqs[kept++] = *rq;
	}
	n->nreqs = kept;
	remote__dispatch(n, wanted);
	if (kept && n->remote)
		remote__arm_spill(n, NODE_SPILL_NS);
	uint32_t for_actors[NODE_MAX_CODES] = {0};
	actors__dispatch(n, for_actors);
	uint32_t starved = 0;
	for (int c = 0; c < (int)NODE_MAX_CODES; c++)
		starved += wanted[c];
	/* Requests that do not fit the resources: leases nobody uses might free them. */
	if (n->nreqs > starved) {
		reclaim_idle(n, n->nreqs - starved);
		remote__reclaim(n);
	}
	/* Start workers for requests that only lack one (a worker blocked in a nested get
	 * has lent its CPU back, so CPUs can be free while every worker is leased). */
	uint32_t stuck = 0;
	for (int c = 0; c < (int)NODE_MAX_CODES; c++) {
		while (wanted[c] + for_actors[c] > n->codes[c].starting &&
		       pool__can_start(n, c, for_actors[c] > 0) && !n->stop_requested)
			if (pool__spawn(n, c) != 0)
				break;
		if (wanted[c] > n->codes[c].starting)
			stuck += wanted[c] - n->codes[c].starting;
	}
	/* Requests that fit but find no worker, and no more may start: the workers are
	 * held by leases, some of them idle in a client that is not polling (a driver
	 * waiting for the very task that asks).  Take those back. */
	if (stuck)
		reclaim_idle(n, stuck);
}

/* ---- handlers ---------------------------------------------------------------------------- */

typedef void (*ctl_handler)(struct sched_node *n, uint32_t slot, const struct sched_ctl_msg *m);

static void on_lease_req(struct sched_node *n, uint32_t slot, const struct sched_ctl_msg *m)
{
	const struct sched_lease_req_msg *q = (const struct sched_lease_req_msg *)m;
	struct lease_req rq = {.client = slot,
			       .gen = node__client(n, slot)->generation,
			       .req_id = m->h.req_id,
			       .since = prism_now_ns(),
			       .shape = q->shape,
			       .input_bytes = q->input_bytes};
	bool feasible = true;
	for (uint32_t r = 0; r < SCHED_MAX_RES; r++) {
		rq.milli[r] = q->milli[r];
		/* No resource of this node can ever meet it: say so now rather than wait
		 * forever. */
		if (q->milli[r] &&
		    (r >= n->hdr->nres || q->milli[r] > n->hdr->res[r].total_milli))
			feasible = false;
	}
	PRISM_LOG_D("ctl", "client %u asks for a lease of %u mCPU %u mGPU (request %llu)", slot,
		    q->milli[0], q->milli[1], (unsigned long long)m->h.req_id);
	if (!feasible) {
		/* Not here, ever: another node's, or nobody's. */
		int rc = n->remote ? remote__request(n, &rq, false) : PRISM_E_INFEASIBLE;
		if (rc)
			deny(n, &rq, rc);
		return;
	}
	if (reqs_push(n, &rq) != 0) {
		deny(n, &rq, -ENOMEM);
		return;
	}
	ctl__dispatch(n);
}

static struct sched_lease *lease_of(struct sched_node *n, uint32_t l)
{
	return l < SCHED_MAX_LEASES ? sched_lease_at(n->base, l) : NULL;
}

static void on_lease_return(struct sched_node *n, uint32_t slot, const struct sched_ctl_msg *m)
{
	struct sched_lease *ls = lease_of(n, m->a);
	if (ls && ls->submitter == slot && ls->generation == m->b &&
	    atomic_load(&ls->state) == SCHED_LEASE_RETURNING) {
		/* Recalled: this is the submitter's acknowledgement (or its own return,
		 * crossing the recall, which acknowledges it as well). */
		if (n->lease_await[m->a])
			recall_step(n, m->a, false);
		ctl__dispatch(n);
		return;
	}
	if (!ls || atomic_load(&ls->state) != SCHED_LEASE_GRANTED || ls->submitter != slot ||
	    ls->generation != m->b) {
		PRISM_LOG_W("ctl", "client %u returned lease %u it does not hold", slot, m->a);
		return;
	}
	if (ls->worker == SCHED_DAEMON_SLOT) {
		remote__revoke(n, m->a, false); /* the worker is on another node */
		ctl__dispatch(n);
		return;
	}
	ctl__lease_return(n, m->a, false);
}

static void on_lease_released(struct sched_node *n, uint32_t slot,
			      const struct sched_ctl_msg *m)
{
	struct sched_lease *ls = lease_of(n, m->a);
	if (!ls || atomic_load(&ls->state) != SCHED_LEASE_RETURNING || ls->worker != slot ||
	    n->lease_wgone[m->a]) {
		PRISM_LOG_W("ctl", "worker %u released lease %u out of turn", slot, m->a);
		return;
	}
	if (n->lease_await[m->a])
		recall_step(n, m->a, true);
	else
		lease_free(n, m->a);
	ctl__dispatch(n);
}

static void on_blocked(struct sched_node *n, uint32_t slot, const struct sched_ctl_msg *m)
{
	struct client_local *w = &n->cl[slot];
	(void)m;
	if (w->kind != SCHED_KIND_WORKER || w->lease < 0 || w->blocked)
		return;
	w->blocked = true;
	n->res_used[SCHED_RES_CPU] -= n->lease_res[w->lease][SCHED_RES_CPU];
	ctl__dispatch(n);
}

static void on_unblocked(struct sched_node *n, uint32_t slot, const struct sched_ctl_msg *m)
{
	struct client_local *w = &n->cl[slot];
	(void)m;
	if (w->kind != SCHED_KIND_WORKER || w->lease < 0 || !w->blocked)
		return;
	w->blocked = false;
	/* May exceed the total for a while: the task resumes at once, as in Ray. */
	n->res_used[SCHED_RES_CPU] += n->lease_res[w->lease][SCHED_RES_CPU];
}

static const ctl_handler handlers[] = {
	[SCHED_M_LEASE_REQ] = on_lease_req,
	[SCHED_M_LEASE_RETURN] = on_lease_return,
	[SCHED_M_LEASE_RELEASED] = on_lease_released,
	[SCHED_M_BLOCKED] = on_blocked,
	[SCHED_M_UNBLOCKED] = on_unblocked,
	[SCHED_M_ACTOR_CREATE] = actors__on_create,
	[SCHED_M_ACTOR_CONNECT] = actors__on_connect,
	[SCHED_M_ACTOR_KILL] = actors__on_kill,
	[SCHED_M_ACTOR_LOOKUP] = actors__on_lookup,
	[SCHED_M_ACTOR_CHECKPOINT] = actors__on_checkpoint,
};

size_t ctl__drain(prism_loop *loop, void *arg)
{
	struct sched_node *n = arg;
	size_t done = 0;
	(void)loop;
	prism_doorbell_cancel_sleep(n->hdr->daemon_bell);
	for (uint32_t s = 0; s < SCHED_MAX_CLIENTS; s++) {
		struct client_local *cl = &n->cl[s];
		if (!cl->up || atomic_load(&node__client(n, s)->state) != SCHED_CLIENT_ATTACHED)
			continue;
		for (uint32_t k = 0; k < NODE_CTL_BATCH; k++) {
			union {
				struct sched_ctl_msg m;
				uint8_t raw[4 * SCHED_SLOT];
			} u;
			int len = sched_msg_recv(cl->up, &u, sizeof(u));
			if (len == 0)
				break;
			done++;
			if (len < 0 || (size_t)len < sizeof(u.m) ||
			    u.m.h.type >= PRISM_ARRAY_LEN(handlers) || !handlers[u.m.h.type]) {
				PRISM_LOG_W("ctl",
					    "client %u sent a bad control message (%s); "
					    "dropping the client",
					    s, len < 0 ? prism_strerror(len) : "unknown type");
				node__client_gone(n, s, "protocol error");
				break;
			}
			handlers[u.m.h.type](n, s, &u.m);
			if (!cl->up)
				break; /* the handler dropped this client */
		}
	}
	return done + remote__drain(n);
}

void ctl__before_sleep(prism_loop *loop, void *arg)
{
	struct sched_node *n = arg;
	/* Announce the sleep, then look once more: a client that enqueued before seeing the
	 * announcement did not write our eventfd, so its message must be found here. */
	prism_doorbell_prepare_sleep(n->hdr->daemon_bell);
	for (uint32_t s = 0; s < SCHED_MAX_CLIENTS; s++) {
		if (n->cl[s].up && prism_ring_count(n->cl[s].up) != 0) {
			prism_doorbell_cancel_sleep(n->hdr->daemon_bell);
			prism_loop_wake(loop);
			return;
		}
	}
	if (remote__pending(n)) {
		prism_doorbell_cancel_sleep(n->hdr->daemon_bell);
		prism_loop_wake(loop);
	}
}

void ctl__client_gone(struct sched_node *n, uint32_t slot)
{
	/* What a dead actor host said last may matter: its newest checkpoint. */
	struct client_local *cl = &n->cl[slot];
	if (cl->up && cl->actor) {
		union {
			struct sched_ctl_msg m;
			uint8_t raw[4 * SCHED_SLOT];
		} u;
		int len;
		while ((len = sched_msg_recv(cl->up, &u, sizeof(u))) > 0)
			if ((size_t)len >= sizeof(u.m) &&
			    u.m.h.type == SCHED_M_ACTOR_CHECKPOINT)
				actors__on_checkpoint(n, slot, &u.m);
	}
	struct sched_ctl_msg m;
	for (uint32_t l = 0; l < SCHED_MAX_LEASES; l++) {
		struct sched_lease *ls = sched_lease_at(n->base, l);
		uint32_t st = atomic_load(&ls->state);
		if (st == SCHED_LEASE_FREE)
			continue;
		if (ls->worker == slot && n->lease_wgone[l]) {
			/* A recalled lease this worker had released already. */
		} else if (ls->worker == slot && st == SCHED_LEASE_GRANTED &&
			   ls->submitter == SCHED_DAEMON_SLOT) {
			remote__hosted_lost(n, l, PRISM_E_PIPE);
			lease_free(n, l);
		} else if (ls->worker == slot) {
			/* The worker is gone: the submitter must retry what it had in flight. */
			ctl__lease_lost(n, l, PRISM_E_PIPE);
		} else if (ls->submitter == slot && st == SCHED_LEASE_RETURNING &&
			   n->lease_await[l]) {
			recall_step(n, l, false); /* nobody is left to acknowledge */
		} else if (ls->submitter == slot && st == SCHED_LEASE_GRANTED &&
			   ls->worker == SCHED_DAEMON_SLOT) {
			remote__revoke(n, l, true);
		} else if (ls->submitter == slot && st == SCHED_LEASE_GRANTED) {
			/* Nobody will read the results: the worker drops what is queued. */
			atomic_store(&ls->state, SCHED_LEASE_RETURNING);
			ctl__msg_init(&m, SCHED_M_LEASE_REVOKE);
			m.a = l;
			m.b = 1; /* discard */
			m.c = ls->generation;
			ctl__send(n, ls->worker, &m);
		}
	}
	actors__client_gone(n, slot);
	ctl__dispatch(n);
}

static void outf(char *buf, size_t len, size_t *off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void outf(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	if (*off >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (k > 0)
		*off += (size_t)k;
}

void ctl__status_leases(struct sched_node *n, char *buf, size_t len, size_t *off)
{
	uint32_t granted = 0;
	for (uint32_t l = 0; l < SCHED_MAX_LEASES; l++)
		granted += atomic_load(&sched_lease_at(n->base, l)->state) != SCHED_LEASE_FREE;
	if (*off < len)
		*off += (size_t)snprintf(buf + *off, len - *off,
					 "leases: %u held of %u, %llu granted so far; "
					 "lease requests waiting: %u\n",
					 granted, SCHED_MAX_LEASES,
					 (unsigned long long)n->leases_granted, n->nreqs);
	/* Each slot's deadline counters are its process's and never reset, so their sum
	 * over every slot is the node's (struct sched_client). */
	uint64_t calls = 0, late = 0, dropped = 0;
	for (uint32_t s = 0; s < SCHED_MAX_CLIENTS; s++) {
		const struct sched_client *c = node__client(n, s);
		calls += __atomic_load_n(&c->deadline_calls, __ATOMIC_RELAXED);
		late += __atomic_load_n(&c->deadline_late, __ATOMIC_RELAXED);
		dropped += __atomic_load_n(&c->deadline_dropped, __ATOMIC_RELAXED);
	}
	if (*off < len)
		*off += (size_t)snprintf(
			buf + *off, len - *off,
			"deadline calls: %llu, started late %llu, dropped stale "
			"%llu\n",
			(unsigned long long)calls, (unsigned long long)late,
			(unsigned long long)dropped);
	/* Each lease: who submits to whom, and what waits in its two rings (a message
	 * that stays in a ring whose reader sleeps is a lost wake-up). */
	for (uint32_t l = 0; l < SCHED_MAX_LEASES; l++) {
		const struct sched_lease *ls = sched_lease_at(n->base, l);
		uint32_t st = atomic_load(&ls->state);
		if (st == SCHED_LEASE_FREE)
			continue;
		int fill[2] = {-1, -1};
		for (int dir = 0; dir < 2; dir++) {
			prism_ring *r = NULL;
			uint32_t end = dir ? ls->submitter : ls->worker;
			if (end < SCHED_MAX_CLIENTS &&
			    prism_ring_attach_shared(sched_lease_ring_at(n->base, l, dir),
						     n->hdr->lease_ring_bytes,
						     ctl__bell(n, end), &r) == 0)
				fill[dir] = (int)prism_ring_count(r);
			prism_ring_destroy(r);
		}
		outf(buf, len, off,
		     "  lease %u: client %u -> worker %u, %s%s%s, slots waiting: spec %d, done "
		     "%d\n",
		     l, ls->submitter, ls->worker,
		     st == SCHED_LEASE_GRANTED ? "granted"
		     : !n->lease_await[l]      ? "returning"
		     : n->lease_wgone[l] ? "recalled (the worker let go; the submitter not yet)"
					 : "recalled",
		     atomic_load(&ls->busy) ? ", busy" : "", n->lease_chan[l] ? ", actor" : "",
		     fill[0], fill[1]);
	}
}
