/* submit.c — tasks out, completions in, and the calls that wait for them.
 *
 * The hot path: prism_submit() names the task's results (ids derived from the task id,
 * so no round trip is needed), builds the task message on the stack and pushes it
 * straight into the spec ring of a leased worker, keeping a copy in that lease's
 * in-flight queue.  No lock, no system call, no allocation for small tasks.  Completions
 * come back in order per lease; each fills the result entries and pops the copy.
 *
 * A task whose ref arguments are not ready waits in a task_wait until they are (the
 * submitter resolves what it owns before dispatch, DESIGN.md section 4).  Tasks that
 * find no lease wait in their resource shape's queue, in submission order, while a lease
 * of that shape is requested.
 * When a worker dies, its in-flight copies run again (up to max_retries) or their
 * results become error objects.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "rt.h"
#include "sched/node.h"

#define DEFAULT_RETRIES 3
/* Tasks in flight on one lease.  Short tasks are pipelined deep, so a worker never
 * waits for the next one; long ones go one at a time per lease, so that the others wait
 * here for a second worker instead of queueing behind the first (Ray faces the same
 * trade-off with max_tasks_in_flight_per_worker). */
#define PIPELINE_DEPTH 64
#define SHORT_TASK_NS (100 * PRISM_NS_PER_US)
#define STACK_MSG 4096

/* How deep a task may be pipelined: by its function's moving average of run time,
 * which starts "long" so a function's first calls spread before they pipeline.  Per
 * function, so a program mixing slow and fast calls keeps the slow ones apart. */
static uint32_t depth_limit(uint64_t fn)
{
	const struct rt_fn *f = rt_fn_by_hash(fn);
	return f && f->run_ewma_ns && f->run_ewma_ns < SHORT_TASK_NS ? PIPELINE_DEPTH : 1;
}

static void note_run_time(uint64_t fn, uint64_t ns)
{
	struct rt_fn *f = rt_fn_stats(fn);
	if (!f)
		return;
	/* 1/8 weight: a handful of completions moves the estimate across the threshold,
	 * one outlier does not.  The first sample seeds it from ten times the
	 * threshold, so a function is judged short only after a few short runs. */
	uint64_t prev = f->run_ewma_ns ? f->run_ewma_ns : 10 * SHORT_TASK_NS;
	f->run_ewma_ns = prev - prev / 8 + ns / 8;
}

/* A resolved argument, ready to go into a task message. */
struct rarg {
	uint8_t kind; /* SCHED_ARG_* */
	uint8_t temp; /* a store object made for this call: deleted when it completes */
	const void *data;
	size_t len;
	prism_id id; /* SCHED_ARG_STORE */
};

struct task_wait;
struct dep {
	struct task_wait *t;
	struct dep *next;
};

/* A task waiting for ref arguments.  Bytes arguments were copied; ref arguments are
 * retained until it is dispatched. */
struct task_wait {
	struct task_wait *next_ready; /* in the ready list, once pending reached 0 */
	prism_id task;
	const struct rt_fn *fn;
	prism_call_opts o; /* resources already turned into shape */
	uint32_t shape;
	uint16_t nargs, pending;
	prism_value *args;
};

/* The entry of a ref the user still holds, or NULL (an entry with no refs left lives on
 * only while tasks read its object). */
/* A ref this process may use: the user holds it, or a result the user holds contains
 * it. */
static struct obj *held(prism_id id)
{
	struct obj *o = obj_find(id);
	return o && (o->refs || o->holders) ? o : NULL;
}

static void fail_result_code(prism_id task, unsigned nret, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
#define fail_result(task, nret, ...) \
	fail_result_code(task, nret, PRISM_E_TASK_FAILED, __VA_ARGS__)

static void notify(struct obj *o);

static void fail_result_code(prism_id task, unsigned nret, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	for (unsigned i = 0; i < nret; i++) {
		struct obj *o =
			obj_find(prism_id_derive(task, PRISM_ID_OBJECT, (uint8_t)(i + 1)));
		if (o && o->state == OBJ_PENDING) {
			obj_set_failed_code(o, code, msg, (size_t)n);
			notify(o);
		}
	}
}

/* ---- task messages ------------------------------------------------------------------ */

static size_t msg_size(const struct rarg *a, size_t nargs)
{
	size_t len = sizeof(struct sched_task_msg);
	for (size_t i = 0; i < nargs; i++)
		len += sizeof(struct sched_arg) + sched_align8(a[i].kind == SCHED_ARG_STORE
								       ? PRISM_ID_SIZE
								       : (uint32_t)a[i].len);
	return len;
}

static void msg_build(uint8_t *buf, size_t len, prism_id task, const struct rt_fn *fn,
		      const prism_call_opts *o, uint32_t shape, const struct rarg *a,
		      size_t nargs)
{
	struct sched_task_msg *m = (struct sched_task_msg *)buf;
	uint32_t retries = o->max_retries < 0    ? 0
			   : o->max_retries == 0 ? DEFAULT_RETRIES
						 : (uint32_t)o->max_retries;
	memset(m, 0, sizeof(*m));
	m->h.len = (uint32_t)len;
	m->h.type = SCHED_M_TASK;
	m->h.nslots = (uint16_t)sched_msg_slots((uint32_t)len);
	m->task = task;
	m->fn = fn->hash;
	m->deadline = o->deadline_ns;
	m->nargs = (uint16_t)nargs;
	m->nreturns = (uint8_t)(o->num_returns ? o->num_returns : 1);
	m->attempt = (retries & 0xffff) << 16; /* attempt 0 in the low half */
	m->flags = 0;
	if (fn->kind == RT_METHOD) {
		m->flags = SCHED_TASK_METHOD;
		m->attempt = 0; /* a call is not repeated: the actor's state moved on */
	}
	if (o->flags & PRISM_CALL_DROP_LATE)
		m->flags |= SCHED_TASK_DROP_LATE;
	m->shape = shape;
	uint8_t *p = buf + sizeof(*m);
	for (size_t i = 0; i < nargs; i++) {
		struct sched_arg *h = (struct sched_arg *)p;
		h->kind = a[i].kind;
		h->len = (uint32_t)a[i].len;
		h->nrefs = 0;
		h->temp = a[i].temp; /* the submitter's own note; workers ignore it */
		p += sizeof(*h);
		if (a[i].kind == SCHED_ARG_STORE) {
			memcpy(p, a[i].id.b, PRISM_ID_SIZE);
			p += PRISM_ID_SIZE;
		} else {
			if (a[i].len)
				memcpy(p, a[i].data, a[i].len);
			size_t pad = sched_align8((uint32_t)a[i].len) - a[i].len;
			memset(p + a[i].len, 0, pad);
			p += a[i].len + pad;
		}
	}
}

static struct rt_lease *pick_lease(uint32_t shape)
{
	struct rt_lease *best = NULL;
	for (uint32_t i = 0; i < rt.nactive; i++) {
		struct rt_lease *l = rt.active[i];
		if (l->shape == shape && !l->actor && !l->held_off &&
		    (!best || l->fl.count < best->fl.count))
			best = l;
	}
	return best;
}

static int res_error(int code, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int res_error(int code, const char *what, const char *fmt, ...)
{
	char msg[512], have[SCHED_MAX_RES * (SCHED_RES_NAME + 16)];
	size_t off = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (uint32_t r = 0; r < rt.hdr->nres && off < sizeof(have); r++)
		off += (size_t)snprintf(have + off, sizeof(have) - off, "%s%s %g",
					r ? ", " : "", rt.hdr->res[r].name,
					(double)rt.hdr->res[r].total_milli / 1000.0);
	rt_set_error("'%s' %s (the node has %s)", what, msg, have);
	return code;
}

/* Names in the node's resource table: a node in a cluster appends other nodes' names
 * (sched/proto.h), whole entries before the count. */
static uint32_t res_count(void)
{
	return __atomic_load_n(&rt.hdr->nres, __ATOMIC_ACQUIRE);
}

int rt_shape_for(const prism_call_opts *o, const char *what, uint32_t *out)
{
	uint64_t milli[SCHED_MAX_RES] = {0}, v;
	/* The common case, CPUs only and the same as last time, in a few instructions. */
	if (!o->nresources && o->num_gpus == 0 && o->num_cpus == rt.last_cpus &&
	    rt.last_shape_set) {
		*out = rt.last_shape;
		return 0;
	}
	bool clustered = rt.hdr->flags & SCHED_HDR_CLUSTER;
	if (sched_res_amount_milli(o->num_cpus, &v) ||
	    sched_res_amount_milli(o->num_gpus, &v) || (o->nresources && !o->resources))
		return res_error(-EINVAL, what, "has bad resource options");
	milli[SCHED_RES_CPU] = o->num_cpus > 0 ? (uint64_t)(o->num_cpus * 1000.0 + 0.5) : 1000;
	milli[SCHED_RES_GPU] = (uint64_t)(o->num_gpus * 1000.0 + 0.5);
	for (size_t i = 0; i < o->nresources; i++) {
		const prism_resource *r = &o->resources[i];
		if (!r->name || !r->name[0] || sched_res_amount_milli(r->amount, &v) ||
		    r->amount <= 0)
			return res_error(
				-EINVAL, what,
				"asks for resource %zu (%s) with a bad name or an amount "
				"that is not > 0",
				i, r->name ? r->name : "NULL");
		int k = sched_res_find(rt.hdr->res, res_count(), r->name, strlen(r->name));
		if (k == (int)SCHED_RES_CPU || k == (int)SCHED_RES_GPU)
			return res_error(-EINVAL, what,
					 "names %s in resources; use num_cpus and num_gpus",
					 r->name);
		if (k < 0)
			return res_error(PRISM_E_INFEASIBLE, what,
					 "asks for resource '%s', which %s", r->name,
					 clustered
						 ? "no node of the cluster has (as far as this "
						   "node has heard)"
						 : "the node does not have");
		milli[k] += v;
	}
	/* In a cluster: more than any node has (as far as the node has heard; the daemon
	 * checks again). */
	for (uint32_t r = 0; r < SCHED_MAX_RES && clustered; r++)
		if (milli[r] > (r < res_count() ? __atomic_load_n(&rt.hdr->res[r].max_milli,
								  __ATOMIC_RELAXED)
						: 0))
			return res_error(
				PRISM_E_INFEASIBLE, what,
				"asks for %g %s, more than any node of the cluster has",
				(double)milli[r] / 1000.0, rt.hdr->res[r].name);
	for (uint32_t r = 0; r < SCHED_MAX_RES && !clustered; r++)
		if (milli[r] > (r < rt.hdr->nres ? rt.hdr->res[r].total_milli : 0))
			return res_error(PRISM_E_INFEASIBLE, what, "asks for %g %s",
					 (double)milli[r] / 1000.0, rt.hdr->res[r].name);
	uint32_t key[SCHED_MAX_RES];
	for (uint32_t r = 0; r < SCHED_MAX_RES; r++)
		key[r] = (uint32_t)milli[r];
	int free_slot = -1, found = -1;
	for (int i = 0; i < RT_MAX_SHAPES && found < 0; i++) {
		if (rt.shapes[i].used && memcmp(rt.shapes[i].milli, key, sizeof(key)) == 0)
			found = i;
		else if (!rt.shapes[i].used && free_slot < 0)
			free_slot = i;
	}
	if (found < 0) {
		if (free_slot < 0)
			return res_error(
				-ENOSPC, what,
				"needs a new resource shape, and %d are in use already",
				RT_MAX_SHAPES);
		found = free_slot;
		rt.shapes[found].used = true;
		if ((uint32_t)found >= rt.nshapes)
			rt.nshapes = (uint32_t)found + 1;
		memcpy(rt.shapes[found].milli, key, sizeof(key));
	}
	if (!o->nresources && o->num_gpus == 0) {
		rt.last_cpus = o->num_cpus;
		rt.last_shape = (uint32_t)found;
		rt.last_shape_set = true;
	}
	*out = (uint32_t)found;
	return 0;
}

struct rt_shape *rt_shape_by_req(uint64_t req_id)
{
	for (int i = 0; i < RT_MAX_SHAPES; i++)
		if (rt.shapes[i].requested && rt.shapes[i].req_id == req_id)
			return &rt.shapes[i];
	return NULL;
}

bool rt_any_queued(void)
{
	return rt.actor_backlog || rt_shapes_queued();
}

/* The bytes of the store objects task m takes as arguments (placement weighs moving
 * them to another node). */
static uint64_t input_bytes(const struct sched_task_msg *m)
{
	const uint8_t *p = (const uint8_t *)(m + 1), *end = (const uint8_t *)m + m->h.len;
	uint64_t total = 0;
	for (uint32_t i = 0; i < m->nargs && (size_t)(end - p) >= sizeof(struct sched_arg);
	     i++) {
		struct sched_arg a;
		memcpy(&a, p, sizeof(a));
		p += sizeof(a);
		if (a.kind == SCHED_ARG_STORE && (size_t)(end - p) >= PRISM_ID_SIZE) {
			prism_id id;
			const void *d;
			size_t size;
			memcpy(id.b, p, PRISM_ID_SIZE);
			if (objstore_get(rt.os, id, &d, &size) == 0) {
				total += size;
				objstore_release(rt.os, id);
			}
			p += PRISM_ID_SIZE;
		} else {
			p += sched_align8(a.len);
		}
	}
	return total;
}

/* Ask the node for a lease of shape's resources, on behalf of task m (NULL: the first
 * one queued). */
static void request_lease(struct rt_shape *shape, const struct sched_task_msg *m)
{
	if (shape->requested)
		return;
	if (!m)
		m = dlq_peek(&shape->dl);
	if (!m && shape->queued.count)
		m = (const struct sched_task_msg *)fl_peek(&shape->queued);
	shape->req_id = ++rt.next_req;
	struct sched_lease_req_msg q = {.h = {.len = sizeof(q),
					      .type = SCHED_M_LEASE_REQ,
					      .nslots = 1,
					      .req_id = shape->req_id},
					.shape = (uint32_t)(shape - rt.shapes),
					.input_bytes = m ? input_bytes(m) : 0};
	memcpy(q.milli, shape->milli, sizeof(q.milli));
	if (rt_send_msg(&q.h) == 0)
		shape->requested = true;
}

/* Push one message to a lease of its shape, or report that none can take it now. */
static int try_send(const struct sched_task_msg *m, struct rt_shape *shape)
{
	for (;;) {
		struct rt_lease *l = pick_lease(m->shape);
		if (!l || l->fl.count >= depth_limit(m->fn)) {
			request_lease(shape, m);
			return PRISM_E_AGAIN;
		}
		bool was_idle = l->fl.count == 0;
		if (was_idle && !rt_lease_claim(l))
			continue; /* the node took it back; try another */
		/* The copy first: completions are matched against it, in order. */
		int rc = fl_push(&l->fl, m, m->h.len);
		if (rc == 0) {
			rc = sched_msg_send(l->spec, &m->h);
			if (rc == 0)
				return 0;
			fl_unpush(&l->fl, m->h.len);
		}
		if (was_idle)
			rt_lease_idle(l);
		return rc == PRISM_E_FULL ? PRISM_E_AGAIN : rc;
	}
}

/* A task goes straight to a lease when nothing it must not overtake waits: for a task
 * without a deadline, nothing queued at all; for one with a deadline, no queued task
 * with an earlier one.  Otherwise it waits in its queue (EDF or FIFO). */
static int dispatch(const struct sched_task_msg *m)
{
	if (m->flags & SCHED_TASK_METHOD)
		return rt_actor_dispatch(m);
	struct rt_shape *shape = &rt.shapes[m->shape];
	const struct sched_task_msg *first = dlq_peek(&shape->dl);
	bool may_go = m->deadline ? !first || m->deadline < first->deadline
				  : !first && shape->queued.count == 0;
	if (may_go && try_send(m, shape) == 0)
		return 0;
	int rc = m->deadline ? dlq_push(&shape->dl, m) : fl_push(&shape->queued, m, m->h.len);
	if (rc == 0)
		request_lease(shape, m);
	return rc;
}

/* Push what waits in one shape's queues to its leases: deadline tasks first, earliest
 * first (stale ones that asked for it are dropped here, before they cost a worker
 * anything), then the rest in submission order. */
static void flush_shape(struct rt_shape *shape)
{
	uint64_t now = shape->dl.count ? prism_now_ns() : 0;
	while (shape->dl.count) {
		const struct sched_task_msg *m = dlq_peek(&shape->dl);
		if (rt_deadline_stale(m, now)) {
			rt_drop_stale(m, now);
			dlq_pop(&shape->dl);
			continue;
		}
		if (try_send(m, shape) != 0)
			return;
		dlq_pop(&shape->dl);
	}
	while (shape->queued.count) {
		const struct sched_task_msg *m =
			(const struct sched_task_msg *)fl_peek(&shape->queued);
		if (try_send(m, shape) != 0)
			break;
		fl_pop(&shape->queued);
	}
}

void rt_flush_queued(void)
{
	rt_actor_flush();
	for (int i = 0; i < RT_MAX_SHAPES; i++)
		if (rt.shapes[i].queued.count || rt.shapes[i].dl.count)
			flush_shape(&rt.shapes[i]);
}

static void done_with(prism_id id, bool temp);

/* A task is finished (done, failed, or given up): its store arguments lose a use, and
 * objects made for the call alone are deleted. */
static void release_task_args(const struct sched_task_msg *m)
{
	const uint8_t *p = (const uint8_t *)(m + 1), *end = (const uint8_t *)m + m->h.len;
	for (unsigned i = 0; i < m->nargs && p + sizeof(struct sched_arg) <= end; i++) {
		const struct sched_arg *a = (const struct sched_arg *)p;
		p += sizeof(*a);
		if (a->kind == SCHED_ARG_STORE && p + PRISM_ID_SIZE <= end) {
			prism_id id;
			memcpy(id.b, p, PRISM_ID_SIZE);
			done_with(id, a->temp != 0);
			p += PRISM_ID_SIZE;
		} else {
			p += sched_align8(a->len);
		}
	}
}

static const char *fn_name(uint64_t hash)
{
	const struct rt_fn *f = rt_fn_by_hash(hash);
	return f ? f->name : "?";
}

/* A task that waited in this process past its deadline, and asked to be dropped then:
 * its results fail with PRISM_E_DEADLINE. */
void rt_drop_stale(const struct sched_task_msg *m, uint64_t now)
{
	fail_result_code(m->task, m->nreturns, PRISM_E_DEADLINE,
			 "%s: dropped, %.3f ms past its deadline and not started yet",
			 fn_name(m->fn), (double)(now - m->deadline) / 1e6);
	release_task_args(m);
	rt_deadline_count(false, true);
}

static void fail_unschedulable(const struct sched_task_msg *m, int code)
{
	fail_result(m->task, m->nreturns, "%s: cannot be scheduled: %s", fn_name(m->fn),
		    code == PRISM_E_INFEASIBLE
			    ? "the node cannot provide its resources, or its "
			      "workers cannot start (see the node's log)"
			    : prism_strerror(code));
	release_task_args(m);
}

void rt_fail_queued(struct rt_shape *only, int code)
{
	for (int i = 0; i < RT_MAX_SHAPES; i++) {
		struct rt_shape *shape = &rt.shapes[i];
		if (only && shape != only)
			continue;
		for (; shape->dl.count; dlq_pop(&shape->dl))
			fail_unschedulable(dlq_peek(&shape->dl), code);
		for (; shape->queued.count; fl_pop(&shape->queued))
			fail_unschedulable(
				(const struct sched_task_msg *)fl_peek(&shape->queued), code);
	}
}

/* ---- arguments ------------------------------------------------------------------------ */

/* Put len bytes in the store for one call: the creator's pin stays, for the task. */
static int temp_put(const void *data, size_t len, prism_id *id)
{
	void *w;
	*id = prism_id_new(PRISM_ID_OBJECT);
	int rc = objstore_create(rt.os, *id, len, &w);
	if (rc)
		return rc;
	memcpy(w, data, len);
	return objstore_seal(rt.os, *id);
}

/* Resolve argument i for a message.  1: it waits on a pending ref; 0: resolved;
 * < 0: an error the caller reports.  A store argument counts a use of its entry (given
 * back by release_task_args()), so the owner may drop its ref meanwhile. */
static int resolve(const prism_value *v, size_t i, struct rarg *out, const char **failed)
{
	if (prism_id_is_nil(v->ref.id)) {
		if (v->len <= rt.inline_max) {
			*out = (struct rarg){
				.kind = SCHED_ARG_INLINE, .data = v->data, .len = v->len};
			return 0;
		}
		/* Too big to travel in the message: through the store, once. */
		*out = (struct rarg){.kind = SCHED_ARG_STORE, .temp = 1, .len = v->len};
		int rc = temp_put(v->data, v->len, &out->id);
		if (rc)
			rt_set_error(
				"argument %zu (%zu bytes) does not fit in the object store: %s",
				i, v->len, prism_strerror(rc));
		return rc;
	}
	struct obj *o = held(v->ref.id);
	if (!o) {
		rt_set_error("argument %zu is a ref this process does not hold (released?)", i);
		return PRISM_E_RELEASED;
	}
	if (o->state == OBJ_PENDING)
		return 1;
	if (o->state == OBJ_FAILED) {
		/* Nothing to undo for it: the caller stops here and unresolves what it
		 * resolved, this entry included. */
		*out = (struct rarg){.kind = SCHED_ARG_INLINE};
		*failed = o->data;
		return 0;
	}
	if (o->in_store && o->given && !objstore_contains(rt.os, o->store_id)) {
		/* We gave it away inside a result, and its new owner deleted it: our pin
		 * keeps the bytes, which travel as a value now. */
		prism_value copy = prism_bytes(o->data, obj_len(o));
		return resolve(&copy, i, out, failed);
	}
	if (!o->in_store) {
		*out = (struct rarg){.kind = SCHED_ARG_INLINE, .data = o->data, .len = o->len};
		return 0;
	} /* The owner keeps the object (and its pin on it) until the tasks reading it are
	 * done, even if the user lets go of the ref meanwhile. */
	o->uses++;
	*out = (struct rarg){.kind = SCHED_ARG_STORE, .len = o->store_len, .id = o->store_id};
	return 0;
}

/* A task no longer needs store object id: one use less, and the object goes if it was
 * made for the call alone or its last ref was released before. */
static void done_with(prism_id id, bool temp)
{
	if (temp) {
		objstore_release(rt.os, id);
		objstore_delete(rt.os, id);
		return;
	}
	struct obj *o = obj_find(id);
	if (o && o->uses && --o->uses == 0 && obj_unused(o))
		obj_drop(o);
}

/* Undo resolve() for arguments that will not be sent after all. */
static void unresolve(const struct rarg *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i].kind == SCHED_ARG_STORE)
			done_with(a[i].id, a[i].temp);
}

/* The largest bytes argument goes through the store instead: arguments of any total
 * size are accepted, as in Ray, and each one up to the inline limit travels in the
 * message only while the whole message fits a lease ring.  *len is the message's new
 * length; PRISM_E_TOO_BIG when nothing is left to move. */
static int spill_largest(struct rarg *a, size_t nargs, size_t *len)
{
	size_t best = nargs;
	for (size_t i = 0; i < nargs; i++)
		if (a[i].kind == SCHED_ARG_INLINE && a[i].len > PRISM_ID_SIZE &&
		    (best == nargs || a[i].len > a[best].len))
			best = i;
	if (best == nargs) {
		rt_set_error("the call's %zu arguments take %zu bytes even with every value in "
			     "the object store, more than a task message holds (%u)",
			     nargs, *len, SCHED_MSG_MAX);
		return PRISM_E_TOO_BIG;
	}
	prism_id id;
	int rc = temp_put(a[best].data, a[best].len, &id);
	if (rc) {
		rt_set_error("argument %zu (%zu bytes) does not fit in the object store: %s",
			     best, a[best].len, prism_strerror(rc));
		return rc;
	}
	a[best] =
		(struct rarg){.kind = SCHED_ARG_STORE, .temp = 1, .len = a[best].len, .id = id};
	*len = msg_size(a, nargs);
	return 0;
}

/* Build and dispatch a task whose arguments are all resolved (or one failed). */
static int launch(prism_id task, const struct rt_fn *fn, const prism_call_opts *o,
		  uint32_t shape, const prism_value *args, size_t nargs)
{
	struct rarg stack_args[16], *ra = stack_args;
	const char *failed = NULL;
	size_t done = 0;
	int rc = 0;
	if (nargs > 16 && !(ra = prism_malloc(nargs * sizeof(*ra))))
		return -ENOMEM;
	for (; done < nargs && rc == 0 && !failed; done++) {
		rc = resolve(&args[done], done, &ra[done], &failed);
		if (rc > 0)
			rc = PRISM_E_PROTO; /* launched with a pending argument: a bug */
		if (rc)
			break;
	}
	unsigned nret = o->num_returns ? o->num_returns : 1;
	if (rc == 0 && failed) {
		/* An argument is an error object: so are this task's results (as in Ray). */
		fail_result(task, nret, "%s: an argument failed: %s", fn->name, failed);
		unresolve(ra, done);
	} else if (rc == 0) {
		size_t len = msg_size(ra, nargs);
		uint8_t stack_msg[STACK_MSG] __attribute__((aligned(64)));
		uint8_t *buf = stack_msg;
		while (rc == 0 && len > SCHED_MSG_MAX)
			rc = spill_largest(ra, nargs, &len);
		if (rc == 0 && len > sizeof(stack_msg) &&
		    !(buf = prism_aligned_alloc(64,
						sched_msg_slots((uint32_t)len) * SCHED_SLOT))) {
			rc = -ENOMEM;
		}
		if (rc == 0) {
			msg_build(buf, len, task, fn, o, shape, ra, nargs);
			rc = dispatch((const struct sched_task_msg *)buf);
			if (buf != stack_msg)
				prism_free(buf);
		}
		if (rc)
			unresolve(ra, nargs);
	} else {
		unresolve(ra, done);
	}
	if (ra != stack_args)
		prism_free(ra);
	return rc;
}

static void wait_finish(struct task_wait *t)
{
	rt.nwaiting--;
	int rc = launch(t->task, t->fn, &t->o, t->shape, t->args, t->nargs);
	unsigned nret = t->o.num_returns ? t->o.num_returns : 1;
	if (rc)
		fail_result(t->task, nret, "%s: cannot be submitted: %s", t->fn->name,
			    prism_last_error()[0] ? prism_last_error() : prism_strerror(rc));
	for (uint16_t i = 0; i < t->nargs; i++) {
		if (!prism_id_is_nil(t->args[i].ref.id))
			prism_ref_release(t->args[i].ref);
		else
			prism_free((void *)t->args[i].data);
	}
	prism_free(t->args);
	prism_free(t);
}

/* Tasks whose last dependency became ready, launched in that order by
 * rt_launch_ready().  notify() runs in the middle of walking a lease's in-flight queue
 * or a shape's queue (a completion, a lost worker, a denied lease), and launching a task
 * pushes into those very queues (which may move their buffers): so it only links the
 * task here, and the walk's caller launches once it is done. */
static struct task_wait *ready_head, *ready_tail;

/* Called when o stops being pending: tasks waiting for it may go. */
static void notify(struct obj *o)
{
	struct dep *d = (struct dep *)o->waiters;
	o->waiters = NULL;
	while (d) {
		struct dep *next = d->next;
		struct task_wait *t = d->t;
		if (--t->pending == 0) {
			t->next_ready = NULL;
			if (ready_tail)
				ready_tail->next_ready = t;
			else
				ready_head = t;
			ready_tail = t;
			rt.nready++;
		}
		prism_free(d);
		d = next;
	}
}

void rt_waits_forget(void)
{
	ready_head = ready_tail = NULL;
	rt.nready = rt.nwaiting = 0;
}

void rt_launch_ready(void)
{
	static bool running; /* a launch that fails notifies: its dependents join the list */
	if (running)
		return;
	running = true;
	while (ready_head) {
		struct task_wait *t = ready_head;
		ready_head = t->next_ready;
		if (!ready_head)
			ready_tail = NULL;
		rt.nready--;
		wait_finish(t);
	}
	running = false;
}

static int defer(prism_id task, const struct rt_fn *fn, const prism_call_opts *o,
		 uint32_t shape, const prism_value *args, size_t nargs)
{
	struct task_wait *t = prism_calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->args = prism_calloc(nargs ? nargs : 1, sizeof(*t->args));
	if (!t->args) {
		prism_free(t);
		return -ENOMEM;
	}
	rt.nwaiting++;
	t->task = task;
	t->fn = fn;
	t->o = *o;
	t->o.resources = NULL; /* the caller's array; the shape holds what it said */
	t->o.nresources = 0;
	t->shape = shape;
	t->nargs = (uint16_t)nargs;
	t->pending = 1; /* held until every dependency is linked */
	for (size_t i = 0; i < nargs; i++) {
		if (prism_id_is_nil(args[i].ref.id)) {
			void *copy = prism_malloc(args[i].len ? args[i].len : 1);
			if (!copy)
				goto oom;
			memcpy(copy, args[i].data, args[i].len);
			t->args[i] = prism_bytes(copy, args[i].len);
			continue;
		}
		struct obj *ob = held(args[i].ref.id);
		t->args[i] = prism_refval(args[i].ref);
		ob->refs++;
		if (ob->state != OBJ_PENDING)
			continue;
		struct dep *d = prism_malloc(sizeof(*d));
		if (!d)
			goto oom;
		d->t = t;
		d->next = (struct dep *)ob->waiters;
		ob->waiters = (struct task_wait *)d;
		t->pending++;
	}
	if (--t->pending == 0)
		wait_finish(t);
	return 0;
oom:
	/* What was linked stays linked and launches with an error result; keep going
	 * as if every argument were there. */
	if (--t->pending == 0)
		wait_finish(t);
	return -ENOMEM;
}

/* ---- public: submit ---------------------------------------------------------------------- */

const prism_function *prism_function_get(const char *name)
{
	const struct rt_fn *fn = name ? rt_fn_by_name(name) : NULL;
	if (fn && fn->kind != RT_FN) {
		rt_set_error("'%s' is an actor %s, not a remote function", name,
			     fn->kind == RT_CLASS ? "class (prism_actor_create)"
						  : "method (prism_actor_call)");
		return NULL;
	}
	if (!fn)
		rt_set_error("no function named '%s' is registered (PRISM_REMOTE)",
			     name ? name : "(null)");
	return (const prism_function *)fn;
}

int rt_check_args(const prism_value *args, size_t nargs, const char *what)
{
	for (size_t i = 0; i < nargs; i++)
		if (prism_id_is_nil(args[i].ref.id) && !args[i].data && args[i].len) {
			rt_set_error("%s: argument %zu has no data but a length of %zu bytes",
				     what, i, args[i].len);
			return -EINVAL;
		}
	return 0;
}

int rt_check_call_flags(const prism_call_opts *o, const char *what)
{
	if (o->flags & ~PRISM_CALL_DROP_LATE) {
		rt_set_error("%s: unknown flags 0x%x in the call options", what,
			     o->flags & ~PRISM_CALL_DROP_LATE);
		return -EINVAL;
	}
	if ((o->flags & PRISM_CALL_DROP_LATE) && !o->deadline_ns) {
		rt_set_error("%s: PRISM_CALL_DROP_LATE needs a deadline (deadline_ns)", what);
		return -EINVAL;
	}
	return 0;
}

int rt_call(const struct rt_fn *fn, uint32_t shape, const prism_value *args, size_t nargs,
	    const prism_call_opts *o, prism_ref *out)
{
	unsigned nret = o->num_returns ? o->num_returns : 1;
	prism_id task = prism_id_new(PRISM_ID_TASK);
	unsigned made;
	for (made = 0; made < nret; made++) {
		struct obj *ob =
			obj_new(prism_id_derive(task, PRISM_ID_OBJECT, (uint8_t)(made + 1)));
		if (!ob)
			break;
		out[made].id = ob->id;
	}
	int rc = made == nret ? 0 : -ENOMEM;
	bool pending = false;
	for (size_t i = 0; rc == 0 && i < nargs; i++) {
		if (prism_id_is_nil(args[i].ref.id))
			continue;
		struct obj *ob = held(args[i].ref.id);
		if (!ob) {
			rt_set_error("argument %zu is a ref this process does not hold", i);
			rc = PRISM_E_RELEASED;
		} else if (ob->state == OBJ_PENDING) {
			pending = true;
		}
	}
	if (rc == 0)
		rc = pending ? defer(task, fn, o, shape, args, nargs)
			     : launch(task, fn, o, shape, args, nargs);
	rt_launch_ready();
	if (rc) {
		for (unsigned i = 0; i < made; i++)
			prism_ref_release(out[i]);
		return rc;
	}
	rt_leases_maintain();
	return 0;
}

int prism_submit(const char *name, const prism_value *args, size_t nargs,
		 const prism_call_opts *opts, prism_ref *out)
{
	if (!name) {
		rt_set_error("prism_submit: fn must not be NULL");
		return -EINVAL;
	}
	const prism_function *fn = prism_function_get(name);
	if (!fn)
		return PRISM_E_UNKNOWN_FUNCTION;
	return prism_submit_fn(fn, args, nargs, opts, out);
}

static int submit_fn_entered(const prism_function *handle, const prism_value *args,
			     size_t nargs, const prism_call_opts *opts, prism_ref *out)
{
	prism_call_opts o = {0};
	const struct rt_fn *fn = (const struct rt_fn *)handle;
	if (opts)
		o = *opts;
	if (!rt.up) {
		rt_set_error("prism_init() has not been called");
		return PRISM_E_CLOSED;
	}
	if (!fn || !out || (nargs && !args)) {
		rt_set_error("prism_submit: fn, out and args must not be NULL");
		return -EINVAL;
	}
	const char *name = fn->name;
	if (fn->nargs >= 0 && (size_t)fn->nargs != nargs) {
		rt_set_error("'%s' takes %d arguments, the call passes %zu", name, fn->nargs,
			     nargs);
		return -EINVAL;
	}
	if (nargs > 65535 || o.num_returns > PRISM_MAX_RETURNS || o.num_cpus < 0 ||
	    o.num_gpus < 0 || o.max_retries < -1) {
		rt_set_error("prism_submit: options out of range");
		return -EINVAL;
	}
	int frc = rt_check_call_flags(&o, "prism_submit");
	if (frc == 0)
		frc = rt_check_args(args, nargs, name);
	if (frc)
		return frc;
	uint32_t shape;
	int src = rt_shape_for(&o, name, &shape);
	if (src)
		return src;
	return rt_call(fn, shape, args, nargs, &o, out);
}

/* ---- completions ------------------------------------------------------------------------------ */

/* A result the worker put in the store, and one pin on it that it gave us. */
static void take_store_result(const struct sched_task_msg *m, struct obj *o, const uint8_t *idp)
{
	prism_id sid;
	memcpy(sid.b, idp, PRISM_ID_SIZE);
	if (!o || o->state != OBJ_PENDING) {
		/* Nobody wants it any more. */
		objstore_release(rt.os, sid);
		objstore_delete(rt.os, sid);
		return;
	}
	const void *data;
	size_t size;
	/* A second pin only to learn where it is; the given one keeps it. */
	int rc = objstore_get(rt.os, sid, &data, &size);
	if (rc) {
		obj_set_failed(o, "result lost from the object store", 33);
		(void)m;
	} else {
		objstore_release(rt.os, sid);
		obj_set_store(o, sid, data, size);
	}
	notify(o);
}

/* ---- refs inside results -------------------------------------------------------------------- */

int rt_share(prism_id id, prism_id *sid)
{
	struct obj *o = held(id);
	if (!o) {
		rt_set_error("a ref inside a result must be one this process holds");
		return PRISM_E_RELEASED;
	}
	if (o->state != OBJ_READY)
		return o->state == OBJ_PENDING ? PRISM_E_AGAIN : obj_err_code(o->err);
	if (!o->in_store) {
		/* Into the store, for the other process; our entry keeps its own copy (the
		 * user may hold a pointer prism_get gave) and the creator's pin. */
		prism_id nid = o->id; /* tasks that read it find the entry by this id */
		void *w;
		int rc = objstore_create(rt.os, nid, o->len, &w);
		if (rc == -EEXIST) {
			nid = prism_id_new(PRISM_ID_OBJECT);
			rc = objstore_create(rt.os, nid, o->len, &w);
		}
		if (rc) {
			rt_set_error(
				"a ref inside a result (%u bytes) does not fit in the object "
				"store: %s",
				o->len, prism_strerror(rc));
			return rc;
		}
		memcpy(w, o->data, o->len);
		rc = objstore_seal(rt.os, nid);
		if (rc) {
			objstore_abort(rt.os, nid);
			return rc;
		}
		o->in_store = 1;
		o->store_id = nid;
		o->store_len = o->len;
	}
	const void *d;
	size_t n;
	int rc = objstore_get(rt.os, o->store_id, &d, &n); /* the pin that travels */
	if (rc) {
		rt_set_error("a ref inside a result: its value left the object store: %s",
			     prism_strerror(rc));
		return rc;
	}
	o->uses++;
	*sid = o->store_id;
	return 0;
}

/* Room for element n of an array that grows by doubling (capacity: the next power of two
 * at or above n); *arr is prism_realloc'd when n is 0 or a power of two. */
static int room_for_one(void **arr, uint32_t n, size_t esize)
{
	if (n & (n - 1))
		return 0;
	void *na = prism_realloc(*arr, (n ? 2 * (size_t)n : 1) * esize);
	if (!na)
		return -ENOMEM;
	*arr = na;
	return 0;
}

int rt_share_tree(prism_id id, uint32_t parent, struct sched_contained **e, uint32_t *n)
{
	if (*n >= SCHED_CONTAINED_MAX) {
		rt_set_error("more than %u refs inside one result, counting refs inside refs",
			     SCHED_CONTAINED_MAX);
		return -E2BIG;
	}
	if (room_for_one((void **)e, *n, sizeof(**e)) != 0)
		return -ENOMEM;
	struct sched_contained *c = &(*e)[*n];
	*c = (struct sched_contained){.ref = id, .parent = parent};
	int rc = rt_share(id, &c->sid);
	if (rc)
		return rc;
	uint32_t me = (*n)++;
	struct obj *o = obj_find(id); /* held: rt_share took a use */
	for (uint32_t i = 0; o && i < o->ninner && rc == 0; i++)
		rc = rt_share_tree(o->inner[i], me, e, n);
	return rc;
}

void rt_unshare(prism_id id, prism_id sid, int how)
{
	if (how == 0 && !prism_id_is_nil(sid))
		objstore_release(rt.os, sid);
	struct obj *o = obj_find(id);
	if (o && how == 1 && o->in_store && prism_id_eq(o->store_id, sid))
		o->given = 1;
	if (o && o->uses && --o->uses == 0 && obj_unused(o))
		obj_drop(o);
}

/* Add ref id to holder h's list of the refs its value contains. */
static bool inner_add(struct obj *h, prism_id id)
{
	if (room_for_one((void **)&h->inner, h->ninner, sizeof(*h->inner)) != 0)
		return false;
	h->inner[h->ninner++] = id;
	return true;
}

/* The n refs result o contains (the refs inside those following them, each naming its
 * holder), each a store object on which the completion brought us one pin (local: sent
 * by this process to itself, whose entries are still here).  An entry already here
 * that holds refs of its own keeps them: its contents are not taken twice.  o NULL or
 * no longer pending: nobody wants the result, and the pins go back. */
static void take_contained(struct obj *o, const uint8_t *p, uint32_t n, bool local)
{
	static const char lost[] = "a ref inside a result: its value could not be handed over";
	bool keep = o && o->state == OBJ_PENDING && !o->inner;
	/* Per entry: the entry here, and whether the refs inside it are to be taken. */
	struct obj **at = keep ? prism_calloc(n, sizeof(*at)) : NULL;
	bool *fill = keep ? prism_calloc(n, sizeof(*fill)) : NULL;
	if (keep && (!at || !fill))
		keep = false;
	for (uint32_t i = 0; i < n; i++) {
		struct sched_contained e;
		memcpy(&e, p + i * sizeof(e), sizeof(e));
		bool pin = !prism_id_is_nil(e.sid); /* ours to give back unless kept */
		bool fresh = false;
		struct obj *holder = NULL;
		if (keep && e.parent == SCHED_CONTAINED_TOP)
			holder = o;
		else if (keep && e.parent < i && fill[e.parent])
			holder = at[e.parent];
		struct obj *c = obj_find(e.ref);
		if (holder && !c && (c = obj_new(e.ref)) != NULL) {
			/* New here: the entry keeps the pin that came, and takes the refs
			 * inside it from the entries that follow. */
			fresh = true;
			c->refs = 0;
			const void *data;
			size_t size;
			if (pin && objstore_get(rt.os, e.sid, &data, &size) == 0) {
				objstore_release(rt.os, e.sid);
				obj_set_store(c, e.sid, data, size);
				pin = false;
			} else {
				obj_set_failed(c, lost, sizeof(lost) - 1);
			}
		}
		if (holder && c && inner_add(holder, e.ref)) {
			c->holders++;
			at[i] = c;
			fill[i] = fresh;
		}
		if (pin) {
			objstore_release(rt.os, e.sid);
			/* Given to us, so ours to delete, unless an entry here holds it. */
			if (!local &&
			    (!c || fresh || !c->in_store || !prism_id_eq(c->store_id, e.sid)))
				objstore_delete(rt.os, e.sid);
		}
	}
	prism_free(at);
	prism_free(fill);
}

/* Task m is done: its results from completion d (checked against len), then its
 * arguments lose their uses. */
static void complete(const struct sched_task_msg *m, const struct sched_done_msg *d, size_t len,
		     bool local)
{
	const uint8_t *p = (const uint8_t *)(d + 1), *end = (const uint8_t *)d + len;
	unsigned nret = m->nreturns;
	if (d->status < 0) {
		const struct sched_arg *a = (const struct sched_arg *)p;
		const char *msg = "the task failed";
		size_t mlen = strlen(msg);
		if (p + sizeof(*a) <= end && a->len <= (size_t)(end - p) - sizeof(*a)) {
			msg = (const char *)(a + 1);
			mlen = a->len;
		}
		fail_result_code(m->task, nret, d->status, "%.*s", (int)mlen, msg);
	} else {
		for (unsigned i = 0; i < nret && i < d->nreturns; i++) {
			const struct sched_arg *a = (const struct sched_arg *)p;
			size_t left = (size_t)(end - p), body = 0, need = sizeof(*a);
			if (left >= sizeof(*a)) {
				body = a->kind == SCHED_ARG_STORE ? PRISM_ID_SIZE : a->len;
				need += ((body + 7) & ~(size_t)7) +
					(size_t)a->nrefs * sizeof(struct sched_contained);
			}
			if (need > left ||
			    (a->kind != SCHED_ARG_INLINE && a->kind != SCHED_ARG_STORE)) {
				fail_result(m->task, nret, "%s: malformed completion",
					    fn_name(m->fn));
				break;
			}
			struct obj *o = obj_find(
				prism_id_derive(m->task, PRISM_ID_OBJECT, (uint8_t)(i + 1)));
			/* The refs it contains first: whoever sees the value may use them. */
			if (a->nrefs)
				take_contained(
					o, p + need - a->nrefs * sizeof(struct sched_contained),
					a->nrefs, local);
			if (a->kind == SCHED_ARG_INLINE) {
				if (o && o->state == OBJ_PENDING) {
					obj_set_value(o, a + 1, a->len);
					notify(o);
				}
			} else {
				take_store_result(m, o, (const uint8_t *)(a + 1));
			}
			p += need;
		}
	}
	release_task_args(m);
	note_run_time(m->fn, d->run_ns);
}

void rt_on_done(struct rt_lease *l, const struct sched_done_msg *d, size_t len)
{
	const struct sched_task_msg *m = (const struct sched_task_msg *)fl_peek(&l->fl);
	if (len < sizeof(*d) || !m || !prism_id_eq(m->task, d->task)) {
		const struct sched_lease *ls = sched_lease_at(rt.base, l->idx);
		PRISM_LOG_E("submit",
			    "lease %u: a completion that matches no task in flight (%u in "
			    "flight; ours: generation %u, worker %u, held off %d; the node's: "
			    "generation %u, submitter %u, worker %u, state %u; we are %u)",
			    l->idx, l->fl.count, l->gen, l->worker, l->held_off, ls->generation,
			    ls->submitter, ls->worker, atomic_load(&ls->state), rt.slot);
		return;
	}
	complete(m, d, len, false);
	fl_pop(&l->fl);
	if (l->fl.count == 0)
		rt_lease_idle(l);
}

/* ---- tasks a blocked worker runs itself ------------------------------------------------------ */

/* A shape whose tasks a worker may run in its own process: CPUs only (the CPU it lent
 * back while blocked covers it; a GPU or a custom resource must come from the node). */
static bool helpable(const struct rt_shape *shape)
{
	if (!shape->used)
		return false;
	for (uint32_t r = 1; r < SCHED_MAX_RES; r++)
		if (shape->milli[r])
			return false;
	return shape->dl.count || shape->queued.count;
}

bool rt_can_help(void)
{
	for (uint32_t i = 0; i < rt.nshapes; i++)
		if (helpable(&rt.shapes[i]))
			return true;
	return false;
}

struct sched_task_msg *rt_take_for_help(void)
{
	for (uint32_t i = 0; i < rt.nshapes; i++) {
		struct rt_shape *shape = &rt.shapes[i];
		if (!helpable(shape))
			continue;
		/* In the order flush_shape() would push them: deadlines first. */
		const struct sched_task_msg *m =
			shape->dl.count
				? dlq_peek(&shape->dl)
				: (const struct sched_task_msg *)fl_peek(&shape->queued);
		struct sched_task_msg *copy = prism_malloc(m->h.len);
		if (!copy)
			return NULL;
		memcpy(copy, m, m->h.len);
		if (shape->dl.count)
			dlq_pop(&shape->dl);
		else
			fl_pop(&shape->queued);
		return copy;
	}
	return NULL;
}

void rt_on_done_here(const struct sched_task_msg *m, const struct sched_done_msg *d, size_t len)
{
	if (!d || len < sizeof(*d) || !prism_id_eq(m->task, d->task)) {
		fail_result(m->task, m->nreturns,
			    "%s: ran in the waiting task's process and left no completion "
			    "(out of memory)",
			    fn_name(m->fn));
		release_task_args(m);
		return;
	}
	complete(m, d, len, true);
}

void rt_fail_msgs(struct inflight *q, int code, const char *why)
{
	while (q->count) {
		const struct sched_task_msg *m = (const struct sched_task_msg *)fl_peek(q);
		fail_result_code(m->task, m->nreturns, code, "%s: %s", fn_name(m->fn), why);
		release_task_args(m);
		fl_pop(q);
	}
}

void rt_on_lease_lost(struct rt_lease *l)
{
	if (l->actor) {
		char why[160];
		snprintf(why, sizeof(why), "the actor's worker (pid %d) died during the call",
			 (int)l->worker_pid);
		rt_fail_msgs(&l->fl, PRISM_E_ACTOR_DIED, why);
		rt_actor_chan_lost(l->actor);
		return;
	}
	/* The lost tasks were submitted before anything still queued: they go first. */
	struct inflight again = {0};
	while (l->fl.count) {
		struct sched_task_msg *m = (struct sched_task_msg *)fl_peek(&l->fl);
		uint32_t attempt = (m->attempt & 0xffff) + 1, retries = m->attempt >> 16;
		if (attempt > retries) {
			fail_result(m->task, m->nreturns,
				    "%s: its worker (pid %d) died while running it; no retries "
				    "left after %u attempt%s",
				    fn_name(m->fn), (int)l->worker_pid, attempt,
				    attempt == 1 ? "" : "s");
			release_task_args(m);
		} else if (m->deadline) {
			/* Back into the EDF queue, which goes first anyway. */
			m->attempt = (retries << 16) | attempt;
			if (dlq_push(&rt.shapes[l->shape].dl, m) != 0)
				fail_result(m->task, m->nreturns,
					    "%s: out of memory for a retry", fn_name(m->fn));
		} else {
			m->attempt = (retries << 16) | attempt;
			if (fl_push(&again, m, m->h.len) != 0)
				fail_result(m->task, m->nreturns,
					    "%s: out of memory for a retry", fn_name(m->fn));
		}
		fl_pop(&l->fl);
	}
	struct rt_shape *shape = &rt.shapes[l->shape];
	if (!shape) {
		/* Cannot happen: the lease's shape has a slot as long as the lease lives. */
		while (again.count) {
			const struct sched_task_msg *m =
				(const struct sched_task_msg *)fl_peek(&again);
			fail_result(m->task, m->nreturns, "%s: lost with its worker",
				    fn_name(m->fn));
			fl_pop(&again);
		}
		fl_free(&again);
		return;
	}
	while (shape->queued.count) {
		const struct sched_msg *m = fl_peek(&shape->queued);
		fl_push(&again, m, m->len);
		fl_pop(&shape->queued);
	}
	fl_free(&shape->queued);
	shape->queued = again;
	if (shape->queued.count || shape->dl.count)
		request_lease(shape, NULL);
}

/* ---- public: get, wait, put, refs ---------------------------------------------------------------- */

static int remaining(uint64_t deadline, int64_t *left)
{
	if (!deadline) {
		*left = -1;
		return 0;
	}
	uint64_t now = prism_now_ns();
	if (now >= deadline)
		return PRISM_E_TIMEOUT;
	*left = (int64_t)(deadline - now);
	return 0;
}

/* A task blocked this long with tasks of its own that no lease took runs one of them
 * itself (rt_worker_help): long enough that a free worker takes them first, short
 * against starting a worker process. */
#define HELP_AFTER_NS (2 * PRISM_NS_PER_MS)

/* Poll until pred(arg) holds or the deadline passes.  In a task, the worker tells its node
 * it is blocked, and runs its own queued tasks when no worker takes them. */
int rt_wait_until(bool (*pred)(void *), void *arg, int64_t timeout_ns)
{
	uint64_t deadline = timeout_ns >= 0 ? prism_now_ns() + (uint64_t)timeout_ns : 0;
	uint64_t help_at = 0;
	bool blocked = false;
	int rc = 0;
	rt_poll_once();
	while (!pred(arg)) {
		int64_t left;
		rc = remaining(deadline, &left);
		if (rc)
			break;
		if (rt.is_worker && rt.in_task) {
			if (!blocked) {
				rt_worker_block(true);
				blocked = true;
			}
			if (rt_can_help() && help_at != UINT64_MAX) {
				uint64_t now = prism_now_ns();
				if (!help_at)
					help_at = now + HELP_AFTER_NS;
				if (now >= help_at) {
					if (!rt_worker_help())
						help_at =
							UINT64_MAX; /* it may not (an actor) */
					rt_poll_once();
					continue;
				}
				if (left < 0 || (uint64_t)left > help_at - now)
					left = (int64_t)(help_at - now);
			} else if (help_at != UINT64_MAX) {
				help_at = 0;
			}
		}
		rc = rt_wait_and_poll(left);
		if (rc < 0 && rc != PRISM_E_TIMEOUT)
			break;
		rc = 0;
		/* Give back leases idle meanwhile: a long wait must not keep workers that
		 * the task it waits for may need (one cycle-counter read until a look is
		 * due). */
		rt_leases_maintain();
	}
	if (blocked)
		rt_worker_block(false);
	rt_leases_maintain();
	return rc;
}

static bool obj_settled(void *arg)
{
	return ((struct obj *)arg)->state != OBJ_PENDING;
}

static int get_entered(prism_ref ref, int64_t timeout_ns, const void **data, size_t *len)
{
	if (!rt.up)
		return PRISM_E_CLOSED;
	if (!data || !len)
		return -EINVAL;
	struct obj *o = held(ref.id);
	if (!o) {
		rt_set_error("this process holds no ref with that id (released, or never had)");
		return PRISM_E_RELEASED;
	}
	if (o->state == OBJ_PENDING) {
		int rc = rt_wait_until(obj_settled, o, timeout_ns);
		if (rc)
			return rc;
	}
	*data = o->data;
	*len = obj_len(o);
	return o->state == OBJ_READY ? 0 : obj_err_code(o->err);
}

struct wait_arg {
	const prism_ref *refs;
	size_t n, want;
	bool *ready;
	size_t count;
};

static bool enough_ready(void *arg)
{
	struct wait_arg *w = arg;
	w->count = 0;
	for (size_t i = 0; i < w->n; i++) {
		struct obj *o = held(w->refs[i].id);
		bool r = o && o->state != OBJ_PENDING;
		if (w->ready)
			w->ready[i] = r;
		w->count += r;
	}
	return w->count >= w->want;
}

static int wait_entered(const prism_ref *refs, size_t n, size_t num_ready, int64_t timeout_ns,
			bool *ready)
{
	if (!rt.up)
		return PRISM_E_CLOSED;
	if ((n && !refs) || num_ready > n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!held(refs[i].id)) {
			rt_set_error("ref %zu is not held by this process", i);
			return PRISM_E_RELEASED;
		}
	struct wait_arg w = {refs, n, num_ready, ready, 0};
	int rc = rt_wait_until(enough_ready, &w, timeout_ns);
	enough_ready(&w);
	return rc && rc != PRISM_E_TIMEOUT ? rc : (int)w.count;
}

static int put_entered(const void *data, size_t len, prism_ref *out)
{
	if (!rt.up)
		return PRISM_E_CLOSED;
	if ((!data && len) || !out)
		return -EINVAL;
	prism_id id = prism_id_new(PRISM_ID_OBJECT);
	void *w;
	int rc = objstore_create(rt.os, id, len, &w);
	if (rc) {
		rt_set_error("cannot put %zu bytes in the object store: %s", len,
			     prism_strerror(rc));
		return rc;
	}
	memcpy(w, data, len);
	rc = objstore_seal(rt.os, id); /* our creator's pin stays: the ref holds it */
	struct obj *o = rc ? NULL : obj_new(id);
	if (!o) {
		if (rc == 0)
			objstore_release(rt.os, id);
		else
			objstore_abort(rt.os, id);
		return rc ? rc : -ENOMEM;
	}
	obj_set_store(o, id, w, len);
	out->id = id;
	return 0;
}

static int ref_retain_entered(prism_ref ref)
{
	struct obj *o = held(ref.id);
	if (!o)
		return PRISM_E_RELEASED;
	o->refs++;
	return 0;
}

static int ref_release_entered(prism_ref ref)
{
	struct obj *o = held(ref.id);
	if (!o)
		return PRISM_E_RELEASED;
	if (!o->refs) {
		rt_set_error("this ref is held only by a result that contains it: "
			     "prism_ref_retain() it first to keep it on its own");
		return PRISM_E_RELEASED;
	}
	if (--o->refs == 0 && obj_unused(o))
		obj_drop(o);
	return 0;
}

int prism_submit_fn(const prism_function *handle, const prism_value *args, size_t nargs,
		    const prism_call_opts *opts, prism_ref *out)
{
	RT_ENTERED(submit_fn_entered(handle, args, nargs, opts, out));
}

int prism_get(prism_ref ref, int64_t timeout_ns, const void **data, size_t *len)
{
	RT_ENTERED(get_entered(ref, timeout_ns, data, len));
}

int prism_wait(const prism_ref *refs, size_t n, size_t num_ready, int64_t timeout_ns,
	       bool *ready)
{
	RT_ENTERED(wait_entered(refs, n, num_ready, timeout_ns, ready));
}

int prism_put(const void *data, size_t len, prism_ref *out)
{
	RT_ENTERED(put_entered(data, len, out));
}

int prism_ref_retain(prism_ref ref)
{
	RT_ENTERED(ref_retain_entered(ref));
}

int prism_ref_release(prism_ref ref)
{
	RT_ENTERED(ref_release_entered(ref));
}
