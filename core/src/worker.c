/* worker.c — a worker process: the task loop and what a task can call.
 *
 * A process the node started as a worker (PRISM_WORKER=slot:generation) enters
 * rt_worker_main() from the constructor PRISM_REMOTE emits (or from prism_init(), for
 * programs whose functions all live on the code path) and never returns to main().  It
 * attaches as a worker, then waits on its down ring and the spec ring of the lease it
 * serves (one doorbell for both): runs tasks in order, answers each with a completion on
 * the lease's done ring, and obeys ASSIGN and REVOKE from the node.  It spins for
 * PRISM_SPIN_NS before sleeping, so back-to-back tasks cost no wake-up.
 *
 * A task may submit tasks and wait for them; while it waits the worker tells the node it
 * is blocked, so the CPU it holds can run other work (the nested tasks among them).
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/cpu.h"
#include "base/log.h"
#include "rt.h"
#include "rt_period.h"

struct prism_task_ctx {
	const struct rt_fn *fn;
	prism_id task;
	unsigned nreturns;
	struct {
		void *data; /* prism_malloc'd copy, or NULL for a store result */
		size_t len;
		bool set;
		bool in_store;
		prism_id id; /* in_store: sealed, pinned by this worker */
		/* Refs the result contains (prism_return_with_refs): each a store object
		 * with one pin of ours for the submitter, and a use of our entry. */
		struct sched_contained *inner;
		uint32_t ninner;
		uint8_t inner_sent; /* 0 not yet, 1 given to the submitter, 2 to ourselves */
	} ret[PRISM_MAX_RETURNS];
	char *error; /* prism_fail message */
};

struct serve {
	int lease;
	uint32_t gen, submitter;
	prism_ring *spec, *done;
	uint8_t revoke; /* revoked during a call: 1 drain, 2 discard */
};

static struct serve srv = {.lease = -1};
/* Where the completion of the call running now goes: srv, or an actor channel. */
static struct serve *cur = &srv;
/* cur for a task run by rt_worker_help(): its completion goes into local_done, not a
 * ring (send_done). */
static struct serve local_sv = {.lease = -1};
static const struct sched_done_msg *local_done;

/* The actor this worker hosts (ACTOR_HOST), and the channels its callers hold. */
static struct {
	bool hosting;
	uint32_t flags; /* SCHED_ACTOR_* */
	int rt_cpu;
	const struct rt_fn *cls;
	void *state;
	bool built;
	char *failed; /* the constructor failed: why */
	bool has_ckpt;
	prism_id ckpt; /* the checkpoint to restore from, from the node */
	uint64_t ckpt_seq;
	uint32_t every, since; /* calls between checkpoints, calls since the last */
	int owner_chan;        /* index in chans of the owner's, or -1 */
	struct serve chans[SCHED_MAX_LEASES];
	uint32_t nchans;
	uint32_t next; /* the channel to look at first, in turn */
} host = {.owner_chan = -1};
static uint8_t *task_buf; /* one whole task message */
static uint8_t *done_buf; /* one whole completion */
static size_t done_cap;

/* Contained refs of a task run here by rt_worker_help(), sent to this very process:
 * their entries must stay until the completion has been taken (rt_worker_help). */
struct local_defer {
	struct sched_contained *e;
	uint32_t n, cap;
};
static struct local_defer *local_defer;

/* ---- what a task calls -------------------------------------------------------------------- */

static void drop_inner(prism_task_ctx *ctx, unsigned i)
{
	struct sched_contained *e = ctx->ret[i].inner;
	uint32_t n = ctx->ret[i].ninner;
	if (ctx->ret[i].inner_sent == 2 && local_defer) {
		struct local_defer *ld = local_defer;
		if (ld->n + n > ld->cap) {
			uint32_t cap = ld->n + n > 2 * ld->cap ? ld->n + n : 2 * ld->cap;
			void *ne = prism_realloc(ld->e, cap * sizeof(*ld->e));
			if (ne)
				ld->e = ne, ld->cap = cap;
		}
		if (ld->n + n <= ld->cap) {
			memcpy(ld->e + ld->n, e, n * sizeof(*e));
			ld->n += n;
			n = 0; /* rt_worker_help lets them go */
		}
	}
	for (uint32_t k = 0; k < n; k++)
		rt_unshare(e[k].ref, e[k].sid, ctx->ret[i].inner_sent);
	prism_free(e);
}

static void drop_result(prism_task_ctx *ctx, unsigned i)
{
	if (ctx->ret[i].in_store) {
		objstore_release(rt.os, ctx->ret[i].id);
		objstore_delete(rt.os, ctx->ret[i].id);
	}
	if (ctx->ret[i].inner)
		drop_inner(ctx, i);
	prism_free(ctx->ret[i].data);
	memset(&ctx->ret[i], 0, sizeof(ctx->ret[i]));
}

/* Result `index` as a store object: written once, and the owner reads it there without
 * a copy.  Its id is the result's own (the owner's entry has that id); a retry may meet
 * the object an attempt killed before it could hand it over, still pinned by that dead
 * worker until the node repairs its pins, so a fresh id serves then (the completion
 * names the store object, the owner needs no fixed one). */
static int store_result(prism_task_ctx *ctx, unsigned index, const void *data, size_t len)
{
	void *w;
	prism_id id = prism_id_derive(ctx->task, PRISM_ID_OBJECT, (uint8_t)(index + 1));
	int rc = objstore_create(rt.os, id, len, &w);
	if (rc == -EEXIST) {
		objstore_delete(rt.os, id);
		rc = objstore_create(rt.os, id, len, &w);
	}
	if (rc == -EEXIST) {
		id = prism_id_new(PRISM_ID_OBJECT);
		rc = objstore_create(rt.os, id, len, &w);
	}
	if (rc) {
		rt_set_error("result %u (%zu bytes) does not fit in the object store: %s",
			     index, len, prism_strerror(rc));
		return rc;
	}
	memcpy(w, data, len);
	rc = objstore_seal(rt.os, id);
	if (rc) {
		objstore_abort(rt.os, id);
		return rc;
	}
	ctx->ret[index].len = len;
	ctx->ret[index].set = true;
	ctx->ret[index].in_store = true;
	ctx->ret[index].id = id;
	return 0;
}

/* Results that together outgrow a completion: the largest inline ones move to the store
 * until it fits.  *len is the completion's new length. */
static int spill_results(prism_task_ctx *ctx, size_t *len)
{
	while (*len > SCHED_MSG_MAX) {
		unsigned best = ctx->nreturns;
		for (unsigned i = 0; i < ctx->nreturns; i++)
			if (!ctx->ret[i].in_store && ctx->ret[i].len > PRISM_ID_SIZE &&
			    (best == ctx->nreturns || ctx->ret[i].len > ctx->ret[best].len))
				best = i;
		if (best == ctx->nreturns)
			return PRISM_E_TOO_BIG;
		void *data = ctx->ret[best].data;
		size_t n = ctx->ret[best].len;
		ctx->ret[best].data = NULL;
		int rc = store_result(ctx, best, data, n);
		prism_free(data);
		if (rc)
			return rc;
		*len -= sched_align8((uint32_t)n) - PRISM_ID_SIZE;
	}
	return 0;
}

static int return_entered(prism_task_ctx *ctx, unsigned index, const void *data, size_t len)
{
	if (!ctx || index >= ctx->nreturns || (!data && len))
		return -EINVAL;
	drop_result(ctx, index);
	if (len > rt.inline_max)
		return store_result(ctx, index, data, len); /* too big for the completion */
	void *copy = prism_malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, data, len);
	ctx->ret[index].data = copy;
	ctx->ret[index].len = len;
	ctx->ret[index].set = true;
	return 0;
}

/* Entered: a result set before may hold refs, whose entries the progress thread shares. */
int prism_return(prism_task_ctx *ctx, unsigned index, const void *data, size_t len)
{
	RT_ENTERED(return_entered(ctx, index, data, len));
}

static int with_refs_entered(prism_task_ctx *ctx, unsigned index, const void *data, size_t len,
			     const prism_ref *refs, size_t nrefs)
{
	if (!ctx || index >= ctx->nreturns || (!data && len) || (nrefs && !refs)) {
		rt_set_error("prism_return_with_refs: bad index or NULL data or refs");
		return -EINVAL;
	}
	if (nrefs > PRISM_MAX_CONTAINED) {
		rt_set_error("prism_return_with_refs: %zu refs, at most %u", nrefs,
			     PRISM_MAX_CONTAINED);
		return -EINVAL;
	}
	if (cur->submitter == SCHED_DAEMON_SLOT) {
		rt_set_error("prism_return_with_refs: the caller is on another node, and refs "
			     "inside a result do not cross nodes yet");
		return -ENOTSUP;
	}
	/* Their values first, as the caller will read them. */
	for (size_t i = 0; i < nrefs; i++) {
		const void *d;
		size_t n;
		int rc = prism_get(refs[i], -1, &d, &n);
		if (rc == PRISM_E_TASK_FAILED || rc == PRISM_E_ACTOR_DIED ||
		    rc == PRISM_E_DEADLINE || rc == PRISM_E_UNKNOWN_METHOD ||
		    rc == PRISM_E_INFEASIBLE)
			return prism_fail(ctx, "ref %zu inside result %u failed: %.*s", i,
					  index, (int)n, (const char *)d);
		if (rc)
			return rc;
	}
	int rc = return_entered(ctx, index, data, len);
	if (rc || !nrefs)
		return rc;
	struct sched_contained *e = NULL;
	uint32_t n = 0;
	for (size_t i = 0; i < nrefs && rc == 0; i++)
		rc = rt_share_tree(refs[i].id, SCHED_CONTAINED_TOP, &e, &n);
	if (rc) {
		while (n-- > 0)
			rt_unshare(e[n].ref, e[n].sid, 0);
		prism_free(e);
		drop_result(ctx, index);
		return rc;
	}
	ctx->ret[index].inner = e;
	ctx->ret[index].ninner = n;
	return 0;
}

int prism_return_with_refs(prism_task_ctx *ctx, unsigned index, const void *data, size_t len,
			   const prism_ref *refs, size_t nrefs)
{
	RT_ENTERED(with_refs_entered(ctx, index, data, len, refs, nrefs));
}

int prism_return_ref(prism_task_ctx *ctx, unsigned index, prism_ref ref)
{
	const void *data;
	size_t len;
	/* The caller receives the value: wait for it here, where the ref is held. */
	int rc = prism_get(ref, -1, &data, &len);
	if (rc == PRISM_E_TASK_FAILED)
		return prism_fail(ctx, "%.*s", (int)len, (const char *)data);
	if (rc)
		return rc;
	return prism_return(ctx, index, data, len);
}

int prism_fail(prism_task_ctx *ctx, const char *fmt, ...)
{
	char msg[900];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ctx) {
		prism_free(ctx->error);
		ctx->error = prism_strdup(msg);
	}
	return PRISM_E_TASK_FAILED;
}

/* ---- completions ---------------------------------------------------------------------------- */

static int done_reserve(size_t len)
{
	if (len <= done_cap)
		return 0;
	size_t cap = done_cap ? done_cap : 4096;
	while (cap < len)
		cap *= 2;
	uint8_t *nb = prism_aligned_alloc(64, cap);
	if (!nb)
		return -ENOMEM;
	prism_free(done_buf);
	done_buf = nb;
	done_cap = cap;
	return 0;
}

/* A completion of len bytes for task m in done_buf, header filled; NULL without memory. */
static struct sched_done_msg *done_begin(const struct sched_task_msg *m, size_t len)
{
	if (done_reserve(len) != 0)
		return NULL;
	struct sched_done_msg *d = (struct sched_done_msg *)done_buf;
	memset(d, 0, sizeof(*d));
	d->h = (struct sched_msg){.len = (uint32_t)len,
				  .type = SCHED_M_DONE,
				  .nslots = (uint16_t)sched_msg_slots((uint32_t)len)};
	d->task = m->task;
	return d;
}

static bool submitter_alive(void)
{
	if (cur->submitter == SCHED_DAEMON_SLOT)
		return true; /* on another node: the daemon reads for it while the lease lasts */
	return atomic_load(&sched_client_at(rt.base, cur->submitter)->state) ==
	       SCHED_CLIENT_ATTACHED;
}

/* A constructor answers nobody: the node put it in the channel, not the caller. */
static bool quiet;

/* Send a completion; wait for room while the submitter lives. */
static void send_done(const struct sched_done_msg *d)
{
	if (quiet)
		return;
	if (cur == &local_sv) {
		local_done = d; /* in done_buf until the next completion is built */
		return;
	}
	for (uint64_t i = 0;; i++) {
		int rc = sched_msg_send(cur->done, &d->h);
		if (rc != PRISM_E_FULL)
			return;
		if ((i & 1023) == 1023 && !submitter_alive())
			return; /* nobody will read it */
		sched_yield();
	}
}

static void send_failure(const struct sched_task_msg *m, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void send_failure(const struct sched_task_msg *m, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	size_t mlen = n < 0 ? 0 : (size_t)n >= sizeof(msg) ? sizeof(msg) - 1 : (size_t)n;
	size_t len = sizeof(struct sched_done_msg) + sizeof(struct sched_arg) +
		     sched_align8((uint32_t)mlen);
	struct sched_done_msg *d = done_begin(m, len);
	if (!d)
		return;
	d->status = status < 0 ? status : PRISM_E_TASK_FAILED;
	d->nreturns = 1;
	struct sched_arg *a = (struct sched_arg *)(d + 1);
	*a = (struct sched_arg){.len = (uint32_t)mlen, .kind = SCHED_ARG_INLINE};
	memcpy(a + 1, msg, mlen);
	sched_client_at(rt.base, rt.slot)->tasks_failed++;
	send_done(d);
}

/* ---- running a task ---------------------------------------------------------------------------- */

/* Check the arguments' lengths against the message before a single one is trusted.
 * Store arguments are pinned here, *npinned of them, until unpin_args(). */
static int parse_args(const struct sched_task_msg *m, prism_arg *args, prism_id *pinned,
		      unsigned *npinned, unsigned *bad)
{
	const uint8_t *p = (const uint8_t *)(m + 1), *end = (const uint8_t *)m + m->h.len;
	*npinned = 0;
	for (unsigned i = 0; i < m->nargs; i++) {
		const struct sched_arg *a = (const struct sched_arg *)p;
		*bad = i;
		if ((size_t)(end - p) < sizeof(*a))
			return PRISM_E_PROTO;
		p += sizeof(*a);
		if (a->kind == SCHED_ARG_STORE) {
			prism_id id;
			const void *data;
			size_t size;
			if ((size_t)(end - p) < PRISM_ID_SIZE)
				return PRISM_E_PROTO;
			memcpy(id.b, p, PRISM_ID_SIZE);
			p += PRISM_ID_SIZE;
			if (objstore_get(rt.os, id, &data, &size) != 0)
				return PRISM_E_OBJECT_LOST;
			pinned[(*npinned)++] = id;
			args[i] = (prism_arg){.data = data, .len = size};
			continue;
		}
		if (a->kind != SCHED_ARG_INLINE || a->len > (size_t)(end - p))
			return PRISM_E_PROTO;
		args[i] = (prism_arg){.data = p, .len = a->len};
		p += sched_align8(a->len) <= (size_t)(end - p) ? sched_align8(a->len) : a->len;
	}
	return 0;
}

static void unpin_args(const prism_id *pinned, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		objstore_release(rt.os, pinned[i]);
}

/* ---- hosting an actor ------------------------------------------------------------------ */

/* The constructor (or, after a restart with a checkpoint, restore). */
static int build_actor(prism_task_ctx *ctx, const struct rt_fn *cls,
		       const struct sched_task_msg *m, const prism_arg *args)
{
	int rc;
	host.cls = cls;
	host.every = m->attempt;
	if (host.has_ckpt && cls->restore) {
		const void *data;
		size_t size;
		rc = objstore_get(rt.os, host.ckpt, &data, &size);
		if (rc == 0) {
			rc = cls->restore(data, size, &host.state);
			objstore_release(rt.os, host.ckpt);
			if (rc)
				prism_fail(ctx, "restore from checkpoint %llu failed (%d)",
					   (unsigned long long)host.ckpt_seq, rc);
		} else {
			prism_fail(ctx, "its checkpoint is gone from the object store");
		}
	} else {
		rc = cls->ctor(ctx, args, m->nargs, &host.state);
	}
	if (rc == 0 && !ctx->error) {
		host.built = true;
		return 0;
	}
	host.failed = prism_strdup(ctx->error ? ctx->error : prism_strerror(rc));
	PRISM_LOG_W("worker", "actor of class %s failed to start: %s", cls->name,
		    host.failed ? host.failed : "?");
	return rc ? rc : PRISM_E_TASK_FAILED;
}

/* Save the state into the store, hand the object to the node, and tell it. */
static void checkpoint(void)
{
	void *bytes = NULL;
	size_t len = 0;
	if (!host.cls->save || host.cls->save(host.state, &bytes, &len) != 0) {
		PRISM_LOG_W("worker", "actor %s: checkpoint callback failed", host.cls->name);
		free(bytes);
		return;
	}
	prism_id id = prism_id_new(PRISM_ID_OBJECT);
	void *w;
	int rc = objstore_create(rt.os, id, len, &w);
	if (rc == 0) {
		memcpy(w, bytes, len);
		rc = objstore_seal(rt.os, id);
		if (rc)
			objstore_abort(rt.os, id);
	}
	free(bytes);
	if (rc == 0)
		rc = objstore_give(rt.os, id, SCHED_DAEMON_SLOT);
	if (rc) {
		PRISM_LOG_W("worker", "actor %s: cannot store a checkpoint: %s", host.cls->name,
			    prism_strerror(rc));
		return;
	}
	struct sched_ctl_msg c = {
		.h = {.len = sizeof(c), .type = SCHED_M_ACTOR_CHECKPOINT, .nslots = 1},
		.e = ++host.ckpt_seq};
	memcpy(c.tail_, id.b, PRISM_ID_SIZE);
	rt_send_msg(&c.h);
}

/* rt.spin_ns of a real-time actor that never sleeps. */
#define RT_SPIN_FOREVER (UINT64_MAX / 4)

/* The keeper of a real-time actor's CPU (see prism_actor_opts.rt_let_cpu_idle). */
static prism_cpu_keeper *rt_keeper;

/* Real time: pin, lock, SCHED_FIFO if allowed, and spin spin_us after each call before
 * sleeping (0: never sleep); an actor that sleeps keeps its CPU from halting unless
 * flags has SCHED_ACTOR_RT_LET_IDLE. */
static void become_realtime(int cpu, uint32_t spin_us, uint32_t flags)
{
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) != 0)
			PRISM_LOG_W("worker", "real-time actor: cannot pin to CPU %d: %s", cpu,
				    strerror(errno));
	}
	if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
		PRISM_LOG_W("worker",
			    "real-time actor: mlockall failed (%s); page faults may add "
			    "latency (raise RLIMIT_MEMLOCK)",
			    strerror(errno));
	struct sched_param sp = {.sched_priority = 10};
	bool fifo = sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
	if (!fifo)
		PRISM_LOG_W("worker",
			    "real-time actor: SCHED_FIFO not allowed (%s); running as a normal "
			    "thread that never sleeps (grant CAP_SYS_NICE or an rtprio limit)",
			    strerror(errno));
	int rc;
	if (fifo && cpu >= 0 && spin_us && !(flags & SCHED_ACTOR_RT_LET_IDLE) &&
	    (rc = prism_cpu_keeper_start(cpu, &rt_keeper)) != 0)
		PRISM_LOG_W(
			"worker",
			"real-time actor: cannot keep CPU %d from idling (%s); its wake-ups "
			"may come late",
			cpu, prism_strerror(rc));
	/* Spin on the rings forever, or for spin_us after each call. */
	rt.spin_ns = spin_us ? (uint64_t)spin_us * PRISM_NS_PER_US : RT_SPIN_FOREVER;
}

/* A real-time actor that sleeps between calls (rt_spin_ns > 0) is woken by the caller's
 * doorbell: tens of microseconds on a busy CPU, but hundreds on a virtual CPU that halted
 * while the actor slept (the host must schedule it again).  Calls to such an actor tend
 * to come periodically (a control loop), so it learns the gap between arrivals and, once
 * its spin after a call ran out, sleeps only until a margin before the next call is due,
 * then spins through the expected arrival (as long again after it) before it sleeps on
 * the doorbell again.  The early wake-up is a timer, itself late on a halted CPU: the
 * margin is RT_WAKE_EARLY_NS, or twice the timer's usual lateness plus RT_WAKE_EARLY_MIN
 * when that is more, and at most a third of the gap.  At gaps up to RT_SHORT_GAP_NS the
 * margin is as long as the throttle allows: the sleep shrinks to an eighth of the gap.
 * The actor then runs at most ~7/8 of the time, below the kernel's throttling of a
 * SCHED_FIFO thread that never sleeps (95 %).  Arrivals closer than half the learned gap
 * (bursts) change nothing; one more than half as long again (a skipped call, a pause)
 * moves the phase but not the gap (rt_period.h says when the gap follows).  While the
 * actor sleeps, a keeper (base/cpu.h) keeps its CPU from halting, so that its timer
 * and the caller's doorbell find a running CPU. */
#define RT_WAKE_EARLY_NS (300 * PRISM_NS_PER_US)
#define RT_WAKE_EARLY_MIN (100 * PRISM_NS_PER_US)
#define RT_SHORT_GAP_NS (2 * PRISM_NS_PER_MS + 200 * PRISM_NS_PER_US)
static struct {
	struct rt_period period; /* of the calls (rt_period.h) */
	uint64_t late;           /* how late the early wake-up's timer fires (moving average) */
} ahead;

static int rt_actor_wait(void)
{
	if (rt.spin_ns == RT_SPIN_FOREVER)
		return prism_ring_wait_any(rt.waitset, rt.nwait, rt.spin_ns, -1);
	uint64_t now = prism_now_ns(), due = rt_period_due(&ahead.period);
	uint64_t early = 2 * ahead.late + RT_WAKE_EARLY_MIN, gap = ahead.period.gap;
	uint64_t room = gap > rt.spin_ns + gap / 8 ? gap - rt.spin_ns - gap / 8 : 0;
	if (early < RT_WAKE_EARLY_NS)
		early = RT_WAKE_EARLY_NS;
	if (early > gap / 3)
		early = gap / 3;
	if (gap <= RT_SHORT_GAP_NS && room > early)
		early = room;
	int r;
	if (due > now + rt.spin_ns + early) {
		uint64_t wake = due - early;
		r = prism_ring_wait_any(rt.waitset, rt.nwait, rt.spin_ns,
					(int64_t)(wake - now));
		if (r == PRISM_E_TIMEOUT) {
			uint64_t t = prism_now_ns(), l = t > wake ? t - wake : 0;
			ahead.late = ahead.late - ahead.late / 8 + l / 8;
			r = prism_ring_wait_any(rt.waitset, rt.nwait, 2 * early, -1);
		}
	} else {
		r = prism_ring_wait_any(rt.waitset, rt.nwait, rt.spin_ns, -1);
	}
	if (r >= 0)
		rt_period_arrival(&ahead.period, prism_now_ns());
	return r;
}

static void on_host(const struct sched_ctl_msg *m)
{
	if (host.hosting) {
		PRISM_LOG_E("worker", "asked to host a second actor");
		return;
	}
	host.hosting = true;
	host.flags = m->b;
	host.rt_cpu = m->code;
	memcpy(host.ckpt.b, m->tail_, PRISM_ID_SIZE);
	host.has_ckpt = !prism_id_is_nil(host.ckpt);
	host.ckpt_seq = m->e;
	if (host.flags & SCHED_ACTOR_REALTIME)
		become_realtime(host.rt_cpu, m->c, m->b);
}

/* A call with a deadline about to start: counted, and counted late when it starts after
 * the deadline; a stale one that asked to be dropped is answered PRISM_E_DEADLINE
 * instead.  Returns whether it runs. */
static bool deadline_admit(const struct sched_task_msg *m, const struct rt_fn *fn)
{
	uint64_t now = prism_now_ns();
	bool late = now > m->deadline;
	bool drop = late && (m->flags & SCHED_TASK_DROP_LATE);
	rt_deadline_count(late, drop);
	if (drop)
		send_failure(m, PRISM_E_DEADLINE,
			     "%s: dropped, %.3f ms past its deadline when "
			     "it would have started",
			     fn->name, (double)(now - m->deadline) / 1e6);
	return !drop;
}

/* The user's function, method or constructor.  It runs outside the runtime: its prism
 * calls enter it, and the progress thread may move what it left waiting (nested calls)
 * while it computes. */
static int call_user(prism_task_ctx *ctx, const struct rt_fn *fn,
		     const struct sched_task_msg *m, const prism_arg *args)
{
	int rc;
	rt_leave();
	if (m->flags & SCHED_TASK_METHOD)
		rc = fn->method(ctx, host.state, args, m->nargs);
	else if (m->flags & SCHED_TASK_CTOR)
		rc = build_actor(ctx, fn, m, args);
	else if (fn->kind == RT_FN)
		rc = fn->fn(ctx, args, m->nargs);
	else
		rc = prism_fail(ctx, "an actor %s, called as a task",
				fn->kind == RT_CLASS ? "class" : "method");
	rt_enter();
	return rc;
}

/* The refs result i contains, after its bytes: each store object's pin goes to the
 * submitter with it (one whose pin cannot be handed over goes as a nil id: the
 * submitter's entry for it fails, nothing leaks).  Returns the end of the entries. */
static uint8_t *put_inner(prism_task_ctx *ctx, unsigned i, struct sched_arg *a, uint8_t *p)
{
	uint32_t n = ctx->ret[i].ninner;
	bool self = cur->submitter == rt.slot;
	a->nrefs = (uint16_t)n;
	for (uint32_t k = 0; k < n; k++) {
		struct sched_contained c = ctx->ret[i].inner[k];
		if (!self && objstore_give(rt.os, c.sid, cur->submitter) != 0) {
			objstore_release(rt.os, c.sid);
			c.sid = (prism_id){{0}};
			ctx->ret[i].inner[k].sid = c.sid;
		}
		memcpy(p, &c, sizeof(c));
		p += sizeof(c);
	}
	if (n)
		ctx->ret[i].inner_sent = self ? 2 : 1;
	return p;
}

/* The completion of a task that succeeded, in done_buf; NULL when it cannot be built
 * (the failure has been sent then).  Store results are handed to the submitter. */
static struct sched_done_msg *build_done(prism_task_ctx *ctx, const struct sched_task_msg *m,
					 const struct rt_fn *fn, uint64_t ran)
{
	size_t len = sizeof(struct sched_done_msg);
	for (unsigned i = 0; i < ctx->nreturns; i++)
		len += sizeof(struct sched_arg) +
		       (ctx->ret[i].in_store ? PRISM_ID_SIZE
					     : sched_align8((uint32_t)ctx->ret[i].len)) +
		       ctx->ret[i].ninner * sizeof(struct sched_contained);
	int src = spill_results(ctx, &len);
	if (src) {
		send_failure(m, src, "%s: its results (%zu bytes) cannot be sent: %s", fn->name,
			     len, prism_strerror(src));
		return NULL;
	}
	struct sched_done_msg *d = done_begin(m, len);
	if (!d) {
		send_failure(m, -ENOMEM, "%s: no memory for its results", fn->name);
		return NULL;
	}
	d->nreturns = (uint8_t)ctx->nreturns;
	d->run_ns = ran;
	uint8_t *p = (uint8_t *)(d + 1);
	for (unsigned i = 0; i < ctx->nreturns; i++) {
		struct sched_arg *a = (struct sched_arg *)p;
		p += sizeof(*a);
		if (ctx->ret[i].in_store) {
			/* The owner gets our pin before it hears of the object, so the
			 * object is never unpinned on the way. */
			size_t big = ctx->ret[i].len;
			*a = (struct sched_arg){
				.len = (uint32_t)(big > UINT32_MAX ? UINT32_MAX : big),
				.kind = SCHED_ARG_STORE};
			memcpy(p, ctx->ret[i].id.b, PRISM_ID_SIZE);
			p += PRISM_ID_SIZE;
			if (objstore_give(rt.os, ctx->ret[i].id, cur->submitter) == 0)
				ctx->ret[i].in_store = false; /* no longer ours to drop */
		} else {
			*a = (struct sched_arg){.len = (uint32_t)ctx->ret[i].len,
						.kind = SCHED_ARG_INLINE};
			if (ctx->ret[i].len)
				memcpy(p, ctx->ret[i].data, ctx->ret[i].len);
			p += sched_align8((uint32_t)ctx->ret[i].len);
		}
		p = put_inner(ctx, i, a, p);
	}
	return d;
}

static void run_task(const struct sched_task_msg *m)
{
	quiet = (m->flags & SCHED_TASK_CTOR) != 0;
	prism_task_ctx ctx = {.nreturns = m->nreturns ? m->nreturns : 1, .task = m->task};
	prism_arg stack_args[16], *args = stack_args;
	prism_id stack_pins[16], *pins = stack_pins;
	unsigned npins = 0, bad = 0;
	const struct rt_fn *fn = rt_fn_by_hash(m->fn);
	if (fn && (m->flags & (SCHED_TASK_METHOD | SCHED_TASK_CTOR))) {
		if (!host.hosting) {
			send_failure(m, PRISM_E_PROTO, "%s: this worker hosts no actor",
				     fn->name);
			return;
		}
		if (host.failed) {
			send_failure(m, PRISM_E_ACTOR_DIED,
				     "%s: the actor's constructor failed: %s", fn->name,
				     host.failed);
			return;
		}
		if ((m->flags & SCHED_TASK_METHOD) &&
		    (fn->kind != RT_METHOD || fn->cls != host.cls)) {
			send_failure(m, PRISM_E_UNKNOWN_METHOD, "%s: not a method of class %s",
				     fn->name, host.cls ? host.cls->name : "?");
			return;
		}
		if ((m->flags & SCHED_TASK_CTOR) && (fn->kind != RT_CLASS || host.built)) {
			send_failure(m, PRISM_E_PROTO,
				     "%s: not a constructor this actor can run", fn->name);
			return;
		}
	}
	if (!fn) {
		send_failure(
			m, PRISM_E_UNKNOWN_FUNCTION,
			"no function with hash %016llx is registered in worker %d (is it the "
			"same program as the driver?)",
			(unsigned long long)m->fn, (int)getpid());
		return;
	}
	if (ctx.nreturns > PRISM_MAX_RETURNS) {
		send_failure(m, PRISM_E_PROTO, "%s: too many results requested", fn->name);
		return;
	}
	if (m->deadline && !deadline_admit(m, fn))
		return;
	if (m->nargs > 16 && (!(args = prism_malloc(m->nargs * sizeof(*args))) ||
			      !(pins = prism_malloc(m->nargs * sizeof(*pins))))) {
		send_failure(m, -ENOMEM, "%s: no memory for its arguments", fn->name);
		goto out;
	}
	int prc = parse_args(m, args, pins, &npins, &bad);
	if (prc == PRISM_E_OBJECT_LOST) {
		send_failure(m, prc, "%s: argument %u is no longer in the object store",
			     fn->name, bad);
		goto out;
	} else if (prc) {
		send_failure(m, PRISM_E_PROTO, "%s: malformed task message", fn->name);
		goto out;
	}
	ctx.fn = fn;
	rt.in_task = true;
	uint64_t t0 = prism_now_ns();
	int rc = call_user(&ctx, fn, m, args);
	uint64_t ran = prism_now_ns() - t0;
	rt.in_task = false;
	if (rc != 0 || ctx.error) {
		if (ctx.error)
			send_failure(m, PRISM_E_TASK_FAILED, "%s: %s", fn->name, ctx.error);
		else
			send_failure(m, rc, "%s: returned %d (%s)", fn->name, rc,
				     prism_strerror(rc));
		goto out;
	}
	struct sched_done_msg *d = build_done(&ctx, m, fn, ran);
	if (!d)
		goto out;
	sched_client_at(rt.base, rt.slot)->tasks_run++;
	/* The checkpoint before the reply: a caller that saw a result knows the state it
	 * left survives a restart. */
	if ((m->flags & SCHED_TASK_METHOD) && host.every && ++host.since >= host.every) {
		host.since = 0;
		checkpoint();
	}
	send_done(d);
out:
	unpin_args(pins, npins);
	for (unsigned i = 0; i < ctx.nreturns && i < PRISM_MAX_RETURNS; i++)
		drop_result(&ctx, i);
	prism_free(ctx.error);
	if (args != stack_args)
		prism_free(args);
	if (pins != stack_pins)
		prism_free(pins);
}

/* ---- leases ------------------------------------------------------------------------------------ */

static void serve_rebuild_waitset(void)
{
	rt_rebuild_waitset();
	if (srv.lease >= 0)
		rt.waitset[rt.nwait++] = srv.spec;
	for (uint32_t i = 0; i < host.nchans; i++)
		rt.waitset[rt.nwait++] = host.chans[i].spec;
}

static void serve_close(struct serve *sv)
{
	prism_ring_destroy(sv->spec);
	prism_ring_destroy(sv->done);
	if (sv == &srv) {
		srv = (struct serve){.lease = -1};
		rt.serving = -1;
	} else {
		uint32_t i = (uint32_t)(sv - host.chans);
		if (host.owner_chan == (int)i)
			host.owner_chan = -1;
		else if (host.owner_chan == (int)host.nchans - 1)
			host.owner_chan = (int)i;
		host.chans[i] = host.chans[--host.nchans];
	}
	serve_rebuild_waitset();
}

static void run_from(struct serve *sv, const struct sched_task_msg *m)
{
	cur = sv;
	run_task(m);
	cur = &srv;
}

/* Take the tasks still queued on a served lease (running them, or dropping them when
 * the submitter is gone), then let the lease go. */
static void serve_release(struct serve *sv, bool discard)
{
	int lease = sv->lease;
	int len;
	while ((len = sched_msg_recv(sv->spec, task_buf, SCHED_MSG_MAX + SCHED_SLOT)) > 0)
		if (!discard && ((struct sched_msg *)task_buf)->type == SCHED_M_TASK)
			run_from(sv, (const struct sched_task_msg *)task_buf);
	serve_close(sv);
	rt_send_ctl(SCHED_M_LEASE_RELEASED, (uint32_t)lease, 0, 0);
}

static struct serve *served(uint32_t lease)
{
	if (srv.lease == (int)lease)
		return &srv;
	for (uint32_t i = 0; i < host.nchans; i++)
		if (host.chans[i].lease == (int)lease)
			return &host.chans[i];
	return NULL;
}

void rt_worker_on_ctl(const struct sched_ctl_msg *m)
{
	if (m->h.type == SCHED_M_ACTOR_HOST) {
		on_host(m);
	} else if (m->h.type == SCHED_M_LEASE_ASSIGN) {
		bool chan = m->d == 1;
		if ((chan ? !host.hosting : srv.lease >= 0) || m->a >= SCHED_MAX_LEASES ||
		    m->b >= SCHED_MAX_CLIENTS) {
			PRISM_LOG_E("worker", "unexpected lease assignment %u", m->a);
			return;
		}
		struct serve sv = {.lease = (int)m->a, .gen = m->c, .submitter = m->b};
		int rc = prism_ring_attach_shared(sched_lease_ring_at(rt.base, m->a, 0),
						  rt.hdr->lease_ring_bytes, rt.bell, &sv.spec);
		/* A submitter on another node: the daemon takes the completions. */
		bool remote = m->b == SCHED_DAEMON_SLOT;
		if (rc == 0)
			rc = prism_ring_attach_shared(
				sched_lease_ring_at(rt.base, m->a, 1), rt.hdr->lease_ring_bytes,
				remote ? rt.hdr->daemon_bell
				       : sched_client_at(rt.base, m->b)->bell,
				&sv.done);
		if (rc == 0 && remote)
			prism_ring_set_wake_fd(sv.done, rt.daemon_efd);
		if (rc) {
			PRISM_LOG_E("worker", "cannot open lease %u: %s", m->a,
				    prism_strerror(rc));
			_exit(3); /* the node sees the exit and tells the submitter */
		}
		if (chan) {
			if (m->e & SCHED_CHAN_OWNER)
				host.owner_chan = (int)host.nchans;
			host.chans[host.nchans++] = sv;
		} else {
			srv = sv;
			rt.serving = (int)m->a;
		}
		serve_rebuild_waitset();
	} else if (m->h.type == SCHED_M_LEASE_REVOKE) {
		struct serve *sv = served(m->a);
		if (!sv)
			return;
		if (rt.in_task) {
			/* A nested get is polling: finish the current call first. */
			sv->revoke = m->b != 0 ? 2 : 1;
			rt.revoke_pending = true;
			return;
		}
		serve_release(sv, m->b != 0);
	}
}

void rt_worker_block(bool blocked)
{
	/* A task run while another waited (rt_worker_help) may wait in turn. */
	static unsigned depth;
	if (blocked ? depth++ == 0 : --depth == 0)
		rt_send_ctl(blocked ? SCHED_M_BLOCKED : SCHED_M_UNBLOCKED, 0, 0, 0);
}

/* ---- helping ------------------------------------------------------------------------------ */

bool rt_worker_help(void)
{
	/* Not in an actor's process: its callers would wait behind the task. */
	if (host.hosting || !rt.in_task)
		return false;
	struct sched_task_msg *m = rt_take_for_help();
	if (!m)
		return false;
	struct serve *was = cur;
	bool was_quiet = quiet;
	struct local_defer ld = {0}, *was_defer = local_defer;
	local_sv.submitter = rt.slot;
	local_done = NULL;
	local_defer = &ld;
	cur = &local_sv;
	run_task(m);
	cur = was;
	quiet = was_quiet;
	local_defer = was_defer;
	rt.in_task = true; /* the task that waits */
	const struct sched_done_msg *d = local_done;
	local_done = NULL;
	rt_on_done_here(m, d, d ? d->h.len : 0);
	/* The refs its results contained are held by their results now (or by nobody, and
	 * go). */
	for (uint32_t k = 0; k < ld.n; k++)
		rt_unshare(ld.e[k].ref, ld.e[k].sid, 2);
	prism_free(ld.e);
	prism_free(m);
	return true;
}

/* Revocations that came while a call was running. */
static void revoke_later(void)
{
	rt.revoke_pending = false;
	if (srv.lease >= 0 && srv.revoke)
		serve_release(&srv, srv.revoke == 2);
	for (uint32_t i = host.nchans; i-- > 0;)
		if (host.chans[i].revoke)
			serve_release(&host.chans[i], host.chans[i].revoke == 2);
}

/* Up to max calls from one lease. */
static void serve_lease(struct serve *sv, int max)
{
	for (int k = 0; k < max && sv->lease >= 0; k++) {
		int len = sched_msg_recv(sv->spec, task_buf, SCHED_MSG_MAX + SCHED_SLOT);
		if (len <= 0) {
			if (len < 0)
				PRISM_LOG_E("worker", "bad task message: %s",
					    prism_strerror(len));
			break;
		}
		const struct sched_task_msg *m = (const struct sched_task_msg *)task_buf;
		if (m->h.type == SCHED_M_TASK && (size_t)len >= sizeof(*m))
			run_from(sv, m);
		if (rt.revoke_pending) {
			revoke_later();
			break; /* sv may be gone */
		}
	}
}

/* Run the call with the earliest deadline at the head of a channel, if any head has a
 * deadline.  Returns whether one ran. */
static bool serve_earliest(void)
{
	struct sched_task_msg head;
	_Static_assert(sizeof(head) == SCHED_SLOT, "a task header is one slot");
	int best = -1;
	uint64_t best_dl = UINT64_MAX;
	for (uint32_t i = 0; i < host.nchans; i++) {
		if (!prism_ring_peek(host.chans[i].spec, &head) ||
		    head.h.type != SCHED_M_TASK || !head.deadline || head.deadline >= best_dl)
			continue;
		best = (int)i;
		best_dl = head.deadline;
	}
	if (best < 0)
		return false;
	serve_lease(&host.chans[best], 1);
	return true;
}

static void serve_some(void)
{
	/* Bounded, so control messages are seen between batches. */
	if (srv.lease >= 0)
		serve_lease(&srv, 64);
	if (!host.hosting)
		return;
	if (!host.built && !host.failed) {
		/* The constructor comes first, on the owner's channel. */
		if (host.owner_chan >= 0)
			serve_lease(&host.chans[host.owner_chan], 1);
		return;
	}
	/* Calls with a deadline first, earliest first, across callers (one caller's calls
	 * stay in order: only the head of each channel is looked at). */
	for (int k = 0; k < 64 && serve_earliest(); k++)
		if (rt.revoke_pending)
			return;
	/* Then in turn, a few calls from each caller: no caller can starve another. */
	uint32_t n = host.nchans;
	for (uint32_t k = 0; k < n && host.nchans; k++) {
		uint32_t i = (host.next + k) % host.nchans;
		serve_lease(&host.chans[i], 16);
	}
	if (host.nchans)
		host.next = (host.next + 1) % host.nchans;
}

int rt_worker_main(void)
{
	const char *w = getenv("PRISM_WORKER");
	const char *path = getenv("PRISM_NODE_SOCKET");
	unsigned slot, gen;
	if (!w || !path || sscanf(w, "%u:%u", &slot, &gen) != 2) {
		fprintf(stderr, "prism worker: PRISM_WORKER or PRISM_NODE_SOCKET missing\n");
		_exit(2);
	}
	unsetenv("PRISM_WORKER");
	/* Die with the node that started us. */
	pid_t parent = getppid();
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	signal(SIGPIPE, SIG_IGN);
	const char *spin = getenv("PRISM_SPIN_NS");
	rt.spin_ns = spin ? strtoull(spin, NULL, 10) : 50 * PRISM_NS_PER_US;
	rt.is_worker = true;
	int rc = rt_load_code_path(getenv("PRISM_CODE_PATH"));
	if (rc == 0)
		rc = obj_table_init();
	if (rc == 0)
		rc = rt_attach(path, SCHED_KIND_WORKER, slot, gen);
	task_buf = prism_aligned_alloc(64, SCHED_MSG_MAX + SCHED_SLOT);
	if (rc || !task_buf) {
		fprintf(stderr, "prism worker %d: cannot attach to %s: %s\n", (int)getpid(),
			path, prism_last_error()[0] ? prism_last_error() : prism_strerror(rc));
		_exit(2);
	}
	snprintf(rt.address, sizeof(rt.address), "%s", path);
	rt.up = true;
	rt_enter(); /* the task loop is the runtime's; tasks leave it for the user's code */
	serve_rebuild_waitset();
	for (;;) {
		/* Leases of this process's own (nested calls) change the wait set without
		 * the rings it serves: put them back right before waiting, or a call pushed
		 * into them would ring a bell nobody looks behind. */
		if (rt.nwait != 1 + rt.nactive + (srv.lease >= 0) + host.nchans)
			serve_rebuild_waitset();
		int r = host.flags & SCHED_ACTOR_REALTIME
				? rt_actor_wait()
				: prism_ring_wait_any(rt.waitset, rt.nwait, rt.spin_ns, -1);
		if (r < 0 && r != PRISM_E_TIMEOUT)
			break;
		rt_poll_once();
		serve_some();
		rt_leases_maintain();
	}
	_exit(1);
}

void prism__worker_entry(void)
{
	static bool entered;
	const char *w = getenv("PRISM_WORKER");
	if (entered || !w || !*w)
		return;
	entered = true;
	rt_worker_main();
}
