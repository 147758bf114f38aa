/* bench_cluster_sim.c — cluster/sim_100_nodes: bottom-up scheduling (DESIGN.md section 6)
 * of 100M tasks over 100 simulated nodes, a discrete-event simulation that makes every
 * decision with the real sched_place_local_ok() and sched_place_pick() (sched/place.h), for
 * comparison with the Ray paper's 1.8M tasks/s on 100 nodes (100M tasks in 54 s).
 *
 * The model.  100 nodes of 4 CPU slots; every 20th node (5 of them) also has one
 * "camera".  On each node a driver submits its share of the tasks as fast as the node's
 * local scheduler takes them, as the paper's drivers did.  The local scheduler is one
 * server that spends LOCAL cost on each task it handles: its own driver's submissions,
 * and tasks the global scheduler placed there, which it serves first.  For a submission it
 * asks sched_place_local_ok() about the node's true state (resources held by running
 * tasks, tasks waiting there): kept, the task runs at once or waits for resources in a
 * FIFO; otherwise it is forwarded, one network hop, to the one global scheduler, a
 * single FIFO server that spends PLACE + MSG per task and calls sched_place_pick() on its
 * view, then sends the task one hop on to the chosen node.  The view is what the nodes'
 * heartbeats said, every 100 ms of simulated time (phases staggered over the period), so
 * it is stale, as in reality; between heartbeats the global scheduler counts its own
 * placements into it (one more queued task, the demand taken off what is free), which
 * it knows without being told.  A task whose input is on another node first pulls it
 * over the destination's link, a FIFO server at the link's bandwidth.
 *
 * The workload (per million tasks): 988,900 empty tasks, 100 tasks of 1 ms, 10,000 empty
 * tasks with a 64 KiB input held by another node chosen at random, and 1,000 empty tasks
 * that need a camera.  Every task needs one CPU.  The paper's throughput run used empty
 * tasks; the rare long, input and camera tasks make every path of the scheduler run
 * (busy slots, data movement, a resource only a few nodes have) without being numerous
 * enough to become the bound themselves.  A fixed seed makes the mix the same every run.
 *
 * Costs.  Measured here at the start of every run: PLACE, sched_place_pick() on a
 * 100-node view like the simulation's (median of batches), and the event queue's cost
 * per event.  The node-level costs cannot be measured inside one process, so they are
 * the latest figures of the other suites on this machine (bench/README.md), named with
 * their source in the output: LOCAL, one task's cost on a node (1 / the tasks suite's
 * single-driver async throughput), the HOP, half of the transport suite's tcp 64 B round
 * trip, MSG, a server's CPU cost to take in and answer one small message (the GCS
 * head's busy ns per write), and the link bandwidth (the cluster suite's 1 GiB object
 * transfer).
 *
 * What bounds the result.  Each node's local scheduler handles every task its driver
 * submits (and once more each task placed there from elsewhere), so the cluster cannot
 * exceed NODES / LOCAL = 100 x 3.06 M/s (local_bound); the global scheduler, one server,
 * takes 1 / (PLACE + MSG) tasks per second, so it bounds throughput at that over the
 * fraction of tasks forwarded (global_bound), and becomes the bound once more than
 * LOCAL / (NODES x (PLACE + MSG)), about 0.5 %, are forwarded (global_bound_frac).  With
 * this mix ~0.1 % are (the camera tasks of the 95 nodes without one, and tasks that meet
 * all four slots busy), so the local bound binds; the five camera nodes, which also handle
 * every camera task of the cluster, finish a little after the others.  The mix decides
 * which bound binds, and steeply: sched_place_local_ok() forwards a task whenever the
 * slots are all busy, so at 3 M submissions/s per node a few more 1 ms tasks flood the
 * global scheduler (bench/README.md gives runs with 5x and 10x as many).  The output
 * gives both bounds and the forwarded fraction beside the figure.  It does not model what
 * the paper's run also paid for: results returned to their owners, GCS writes, or
 * contention between processes on a node; the Ray figure is measured, this one is not.
 *
 * Scheduling delay: from the moment a node's local scheduler takes a task from its
 * driver to the moment the task starts on a slot (pulls and hops included).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/hist.h"
#include "sched/place.h"
#include "suites.h"

#define SUITE "cluster"
#define CASE "sim_100_nodes"

#define NODES 100u
#define SLOTS 4u
#define CAMERA_EVERY 20u
#define TASKS_FULL 100000000ull
#define TASKS_QUICK 1000000ull

/* Simulated time is in picoseconds, so that a 0.33 us cost adds up without rounding. */
#define PS_PER_NS 1000ull
#define PS_PER_MS 1000000000ull
#define PS_PER_S 1000000000000ull
/* 100 ms between heartbeats, as cluster.c sends them. */
#define BEAT_PS (100 * PS_PER_MS)

/* The seed's figure: Ray, 100 nodes, 1.8M tasks/s (OSDI'18). */
#define SEED_TASKS_PER_S 1.8e6

/* ---- documented node-level costs: the latest figures in bench/README.md (2026-11-22,
 * 2 vCPU AMD EPYC KVM guest) ---- */
#define LOCAL_TASKS_PER_S 3.06e6
#define LOCAL_SRC "bench/README.md tasks/single_client_tasks_async 3.06 M/s (re-run 2026-11-22)"
#define TCP_RTT_NS 9950.0
#define HOP_SRC "bench/README.md transport/tcp_rtt_64b p50 9.95 us, one way = half"
#define MSG_NS 194.0
#define MSG_SRC "bench/README.md gcs/put_r1 busy_ns_per_op of the head: 194 ns"
#define LINK_BYTES_PER_S 4.71e9
#define LINK_SRC "bench/README.md cluster/object_transfer_1gib tcp 4.71 GB/s"

enum { R_CPU, R_GPU, R_CAMERA, NRES };

enum kind { K_EMPTY, K_LONG, K_INPUT, K_CAMERA, NKINDS };
static const struct {
	uint32_t ppm;    /* tasks of this kind per million */
	uint64_t dur_ps; /* how long it runs */
	uint64_t input;  /* bytes of its input, held by another node; 0: none */
	bool camera;     /* needs the camera */
} kinds[NKINDS] = {
	[K_EMPTY] = {988900, 0, 0, false},
	[K_LONG] = {100, 1 * PS_PER_MS, 0, false},
	[K_INPUT] = {10000, 0, 64 << 10, false},
	[K_CAMERA] = {1000, 0, 0, true},
};
#define WORKLOAD                                                                               \
	"per 1M: 988900 empty, 100 of 1 ms, 10000 with a 64 KiB remote input, 1000 needing a " \
	"camera (5 of 100 nodes)"

/* ---- the event queue: a 4-ary min-heap on time ---- */

enum ev_type { EV_LOCAL, EV_END, EV_READY, EV_ARRIVE, EV_GARRIVE, EV_GDONE, EV_BEAT };

struct ev {
	uint64_t t; /* ps */
	uint64_t v; /* task << 32 | node << 8 | type */
};

/* While an event is handled it stays at the top, marked vacant: the first event the
 * handler schedules takes its place with one sift down instead of a pop and a push. */
struct heap {
	struct ev *e;
	uint32_t n, cap;
	bool vacant;
};

static void sift_down(struct heap *h, uint32_t i, struct ev x)
{
	for (;;) {
		uint32_t c = 4 * i + 1, m = c;
		if (c >= h->n)
			break;
		uint32_t end = c + 4 < h->n ? c + 4 : h->n;
		for (uint32_t k = c + 1; k < end; k++)
			if (h->e[k].t < h->e[m].t)
				m = k;
		if (h->e[m].t >= x.t)
			break;
		h->e[i] = h->e[m];
		i = m;
	}
	h->e[i] = x;
}

static int heap_push(struct heap *h, struct ev x)
{
	if (h->vacant) {
		h->vacant = false;
		sift_down(h, 0, x);
		return 0;
	}
	if (h->n == h->cap) {
		uint32_t cap = h->cap ? 2 * h->cap : 1024;
		struct ev *e = prism_realloc(h->e, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		h->e = e;
		h->cap = cap;
	}
	uint32_t i = h->n++;
	while (i > 0 && h->e[(i - 1) / 4].t > x.t) {
		h->e[i] = h->e[(i - 1) / 4];
		i = (i - 1) / 4;
	}
	h->e[i] = x;
	return 0;
}

/* Removes the top if the handler left it vacant. */
static void heap_settle(struct heap *h)
{
	if (!h->vacant)
		return;
	h->vacant = false;
	struct ev last = h->e[--h->n];
	if (h->n)
		sift_down(h, 0, last);
}

/* ---- the simulated cluster ---- */

#define NIL UINT32_MAX
#define DRIVER (UINT32_MAX - 1) /* the local scheduler is taking its driver's next task */

struct task {
	uint64_t submit; /* ps: when the local scheduler took it from the driver */
	uint32_t next;   /* link in a FIFO or the free list */
	uint16_t holder; /* the node holding its input */
	uint8_t kind;
	bool fwd; /* went through the global scheduler */
};

struct fifo {
	uint32_t head, tail, len;
};

struct node {
	struct fifo arrivals; /* placed here, waiting for the local scheduler */
	struct fifo ready;    /* waiting for resources */
	uint32_t cur;         /* what the local scheduler is handling: a task, DRIVER, NIL */
	uint64_t driver_left;
	uint64_t link_free; /* ps: when the inbound link finishes the pulls queued on it */
	uint64_t dur_sum_ps, ran;
};

struct sim {
	struct node node[NODES];
	struct sched_place_node self[NODES]; /* each node's true state */
	struct sched_place_node view[NODES]; /* the global scheduler's */
	struct sched_place_task shape[NKINDS];
	struct heap heap;
	struct task *task;
	uint32_t ntask, captask, free_task;
	struct fifo gq; /* waiting for the global scheduler */
	uint32_t gcur;  /* the task it is placing, or NIL */
	uint32_t rot;   /* its rotating tie-break start */
	uint64_t gbusy_ps;
	uint64_t local_ps, hop_ps, global_ps;
	double link_bps;
	uint64_t rng;
	uint64_t total, done, last_ps, failed;
	uint64_t fwd, fwd_absent, fwd_busy, fwd_queue;
	prism_hist *delay, *delay_fwd;
	int err;
};

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void schedule(struct sim *s, uint64_t t, enum ev_type type, uint32_t node, uint32_t task)
{
	struct ev e = {t, (uint64_t)task << 32 | (uint64_t)node << 8 | type};
	int rc = heap_push(&s->heap, e);
	if (rc && !s->err)
		s->err = rc;
}

static uint32_t task_new(struct sim *s, enum kind k, uint32_t origin, uint64_t submit)
{
	uint32_t i = s->free_task;
	if (i != NIL) {
		s->free_task = s->task[i].next;
	} else {
		if (s->ntask == s->captask) {
			uint32_t cap = s->captask ? 2 * s->captask : 4096;
			struct task *v = prism_realloc(s->task, cap * sizeof(*v));
			if (!v) {
				s->err = -ENOMEM;
				return NIL;
			}
			s->task = v;
			s->captask = cap;
		}
		i = s->ntask++;
	}
	uint32_t holder = origin;
	if (kinds[k].input) /* any node but the origin */
		holder = (origin + 1 + (uint32_t)(rng_next(&s->rng) % (NODES - 1))) % NODES;
	s->task[i] = (struct task){
		.submit = submit, .next = NIL, .holder = (uint16_t)holder, .kind = (uint8_t)k};
	return i;
}

static void task_free(struct sim *s, uint32_t i)
{
	s->task[i].next = s->free_task;
	s->free_task = i;
}

static void fifo_push(struct sim *s, struct fifo *q, uint32_t i)
{
	s->task[i].next = NIL;
	if (q->len++)
		s->task[q->tail].next = i;
	else
		q->head = i;
	q->tail = i;
}

static uint32_t fifo_pop(struct sim *s, struct fifo *q)
{
	uint32_t i = q->head;
	q->head = s->task[i].next;
	q->len--;
	return i;
}

static bool fits(const uint64_t *have, const uint64_t *demand)
{
	for (int r = 0; r < NRES; r++)
		if (have[r] < demand[r])
			return false;
	return true;
}

static void finished(struct sim *s, uint32_t j, uint64_t dur_ps, uint64_t t)
{
	s->node[j].dur_sum_ps += dur_ps;
	s->node[j].ran++;
	s->done++;
	s->last_ps = t;
}

/* Task i starts on node j at t. */
static void start(struct sim *s, uint32_t j, uint32_t i, uint64_t t)
{
	struct task *tk = &s->task[i];
	uint64_t dur = kinds[tk->kind].dur_ps;
	s->self[j].queue_len--;
	prism_hist_record(s->delay, (t - tk->submit) / PS_PER_NS);
	if (tk->fwd)
		prism_hist_record(s->delay_fwd, (t - tk->submit) / PS_PER_NS);
	if (dur == 0) {
		finished(s, j, 0, t);
		task_free(s, i);
		return;
	}
	const uint64_t *d = s->shape[tk->kind].demand_milli;
	for (int r = 0; r < NRES; r++)
		s->self[j].avail_milli[r] -= d[r];
	schedule(s, t + dur, EV_END, j, i);
}

/* Task i, its inputs on node j, waits for resources there (FIFO). */
static void make_ready(struct sim *s, uint32_t j, uint32_t i, uint64_t t)
{
	struct node *n = &s->node[j];
	if (n->ready.len == 0 &&
	    fits(s->self[j].avail_milli, s->shape[s->task[i].kind].demand_milli))
		start(s, j, i, t);
	else
		fifo_push(s, &n->ready, i);
}

/* Node j pulls task i's input over its link, after the pulls already queued there. */
static void pull(struct sim *s, uint32_t j, uint32_t i, uint64_t t)
{
	struct node *n = &s->node[j];
	uint64_t bytes = kinds[s->task[i].kind].input;
	uint64_t dur = (uint64_t)((double)bytes * (double)PS_PER_S / s->link_bps);
	n->link_free = (n->link_free > t ? n->link_free : t) + dur;
	schedule(s, n->link_free, EV_READY, j, i);
}

/* Node j's local scheduler is free at t: placed tasks first, then its driver's. */
static void serve_next(struct sim *s, uint32_t j, uint64_t t)
{
	struct node *n = &s->node[j];
	if (n->arrivals.len) {
		n->cur = fifo_pop(s, &n->arrivals);
	} else if (n->driver_left) {
		n->driver_left--;
		n->cur = DRIVER;
	} else {
		n->cur = NIL;
		return;
	}
	schedule(s, t + s->local_ps, EV_LOCAL, j, 0);
}

static enum kind draw_kind(struct sim *s)
{
	uint64_t x = ((rng_next(&s->rng) >> 32) * 1000000) >> 32; /* [0, 1e6) */
	for (int k = 0; k < NKINDS - 1; k++) {
		if (x < kinds[k].ppm)
			return (enum kind)k;
		x -= kinds[k].ppm;
	}
	return (enum kind)(NKINDS - 1);
}

/* Node j's local scheduler has taken a task from its driver (at `at`, done at t). */
static void submit(struct sim *s, uint32_t j, uint64_t at, uint64_t t)
{
	enum kind k = draw_kind(s);
	struct sched_place_node *me = &s->self[j];
	if (sched_place_local_ok(me, NRES, &s->shape[k], 0)) {
		if (kinds[k].dur_ps == 0 && !kinds[k].input && s->node[j].ready.len == 0) {
			/* The common case: an empty task runs at once, no record needed. */
			prism_hist_record(s->delay, (t - at) / PS_PER_NS);
			finished(s, j, 0, t);
			return;
		}
		uint32_t i = task_new(s, k, j, at);
		if (i == NIL)
			return;
		me->queue_len++;
		if (kinds[k].input)
			pull(s, j, i, t);
		else
			make_ready(s, j, i, t);
		return;
	}
	uint32_t i = task_new(s, k, j, at);
	if (i == NIL)
		return;
	s->task[i].fwd = true;
	s->fwd++;
	const uint64_t *d = s->shape[k].demand_milli;
	if (!fits(me->total_milli, d))
		s->fwd_absent++;
	else if (!fits(me->avail_milli, d))
		s->fwd_busy++;
	else
		s->fwd_queue++;
	schedule(s, t + s->hop_ps, EV_GARRIVE, 0, i);
}

static void on_local(struct sim *s, uint32_t j, uint64_t t)
{
	uint32_t cur = s->node[j].cur;
	if (cur == DRIVER) {
		submit(s, j, t - s->local_ps, t);
	} else {
		/* A placed task: pull its input if this node lacks it, then run it. */
		struct task *tk = &s->task[cur];
		if (kinds[tk->kind].input && tk->holder != j)
			pull(s, j, cur, t);
		else
			make_ready(s, j, cur, t);
	}
	serve_next(s, j, t);
}

static void on_end(struct sim *s, uint32_t j, uint32_t i, uint64_t t)
{
	struct task *tk = &s->task[i];
	const uint64_t *d = s->shape[tk->kind].demand_milli;
	for (int r = 0; r < NRES; r++)
		s->self[j].avail_milli[r] += d[r];
	finished(s, j, kinds[tk->kind].dur_ps, t);
	task_free(s, i);
	struct node *n = &s->node[j];
	while (n->ready.len) {
		uint32_t h = n->ready.head;
		if (!fits(s->self[j].avail_milli, s->shape[s->task[h].kind].demand_milli))
			break;
		fifo_pop(s, &n->ready);
		start(s, j, h, t);
	}
}

static void on_arrive(struct sim *s, uint32_t j, uint32_t i, uint64_t t)
{
	s->self[j].queue_len++;
	fifo_push(s, &s->node[j].arrivals, i);
	if (s->node[j].cur == NIL)
		serve_next(s, j, t);
}

static void global_next(struct sim *s, uint64_t t)
{
	if (s->gq.len == 0) {
		s->gcur = NIL;
		return;
	}
	s->gcur = fifo_pop(s, &s->gq);
	s->gbusy_ps += s->global_ps;
	schedule(s, t + s->global_ps, EV_GDONE, 0, 0);
}

static void on_garrive(struct sim *s, uint32_t i, uint64_t t)
{
	fifo_push(s, &s->gq, i);
	if (s->gcur == NIL)
		global_next(s, t);
}

/* The global scheduler has spent PLACE + MSG on its current task: place it. */
static void on_gdone(struct sim *s, uint64_t t)
{
	uint32_t i = s->gcur, holder = s->task[i].holder, j;
	enum kind k = (enum kind)s->task[i].kind;
	struct sched_place_input in = {
		.size = kinds[k].input, .holders = &holder, .nholders = 1};
	struct sched_place_task tt = s->shape[k];
	if (kinds[k].input) {
		tt.inputs = &in;
		tt.ninputs = 1;
	}
	struct sched_place_view v = {.nodes = s->view, .nnodes = NODES, .nres = NRES};
	int rc = sched_place_pick(&v, &tt, s->rot++, &j, NULL);
	if (rc == PRISM_E_INFEASIBLE) {
		s->failed++;
		s->done++;
		s->last_ps = t;
		task_free(s, i);
	} else if (rc) {
		s->err = rc;
	} else {
		struct sched_place_node *vn = &s->view[j];
		vn->queue_len++;
		for (int r = 0; r < NRES; r++) {
			uint64_t *a = &vn->avail_milli[r], want = tt.demand_milli[r];
			*a -= *a < want ? *a : want;
		}
		schedule(s, t + s->hop_ps, EV_ARRIVE, j, i);
	}
	global_next(s, t);
}

/* Node j's heartbeat: its load, free resources and mean task duration, into the view. */
static void on_beat(struct sim *s, uint32_t j, uint64_t t)
{
	const struct node *n = &s->node[j];
	s->view[j] = s->self[j];
	s->view[j].mean_task_ns = n->ran ? n->dur_sum_ps / n->ran / PS_PER_NS : 0;
	schedule(s, t + BEAT_PS, EV_BEAT, j, 0);
}

static void dispatch(struct sim *s, struct ev e)
{
	uint32_t j = (uint32_t)(e.v >> 8) & 0xffffff, i = (uint32_t)(e.v >> 32);
	switch ((enum ev_type)(e.v & 0xff)) {
	case EV_LOCAL:
		on_local(s, j, e.t);
		break;
	case EV_END:
		on_end(s, j, i, e.t);
		break;
	case EV_READY:
		make_ready(s, j, i, e.t);
		break;
	case EV_ARRIVE:
		on_arrive(s, j, i, e.t);
		break;
	case EV_GARRIVE:
		on_garrive(s, i, e.t);
		break;
	case EV_GDONE:
		on_gdone(s, e.t);
		break;
	case EV_BEAT:
		on_beat(s, j, e.t);
		break;
	}
}

static void init_node(struct sched_place_node *n, uint32_t j, double link_bps)
{
	memset(n, 0, sizeof(*n));
	n->id.b[0] = (uint8_t)j;
	n->id.b[15] = PRISM_ID_NODE;
	n->alive = true;
	n->slots = SLOTS;
	n->bandwidth = (uint64_t)link_bps;
	n->total_milli[R_CPU] = SLOTS * 1000;
	if (j % CAMERA_EVERY == 0)
		n->total_milli[R_CAMERA] = 1000;
	memcpy(n->avail_milli, n->total_milli, sizeof(n->avail_milli));
}

static void init_shapes(struct sched_place_task *shape)
{
	for (int k = 0; k < NKINDS; k++) {
		memset(&shape[k], 0, sizeof(shape[k]));
		shape[k].demand_milli[R_CPU] = 1000;
		shape[k].demand_milli[R_CAMERA] = kinds[k].camera ? 1000 : 0;
	}
}

static int sim_init(struct sim *s, uint64_t total)
{
	memset(s, 0, sizeof(*s));
	s->gcur = s->free_task = NIL;
	s->rng = 0x5eed;
	s->total = total;
	s->link_bps = LINK_BYTES_PER_S;
	init_shapes(s->shape);
	uint32_t ppm = 0;
	for (int k = 0; k < NKINDS; k++)
		ppm += kinds[k].ppm;
	if (ppm != 1000000)
		return -EINVAL; /* the mix must add up to a million */
	if (prism_hist_create(&s->delay) || prism_hist_create(&s->delay_fwd))
		return -ENOMEM;
	for (uint32_t j = 0; j < NODES; j++) {
		init_node(&s->self[j], j, s->link_bps);
		s->view[j] = s->self[j];
		s->node[j].cur = NIL;
		s->node[j].driver_left = total / NODES + (j < total % NODES ? 1 : 0);
	}
	return 0;
}

static void sim_fini(struct sim *s)
{
	prism_free(s->heap.e);
	prism_free(s->task);
	prism_hist_destroy(s->delay);
	prism_hist_destroy(s->delay_fwd);
}

static int sim_run(struct sim *s)
{
	for (uint32_t j = 0; j < NODES; j++) {
		serve_next(s, j, 0);
		schedule(s, (uint64_t)j * (BEAT_PS / NODES), EV_BEAT, j, 0);
	}
	while (s->done < s->total && s->heap.n && !s->err) {
		struct ev e = s->heap.e[0];
		s->heap.vacant = true;
		dispatch(s, e);
		heap_settle(&s->heap);
	}
	if (!s->err && s->done < s->total)
		s->err =
			-EPROTO; /* nothing left to happen, yet tasks unfinished: a model bug */
	return s->err;
}

/* ---- per-operation costs measured here ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Where the measuring loops leave their results, so that they are not optimised away. */
static volatile uint64_t sink;

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
	return v[n / 2];
}

/* sched_place_pick() on a 100-node view in the state the simulation sees: nodes queued
 * 0-9 tasks deep, some with nothing free, the cameras, and the three task shapes that
 * are forwarded (plain, camera, one input on one node).  ns per call, median of batches. */
static int measure_place(bool quick, double *ns)
{
	struct sched_place_node nodes[NODES];
	struct sched_place_task shape[NKINDS];
	uint64_t seed = 42;
	for (uint32_t j = 0; j < NODES; j++) {
		init_node(&nodes[j], j, LINK_BYTES_PER_S);
		nodes[j].queue_len = (uint32_t)(rng_next(&seed) % 10);
		nodes[j].mean_task_ns = 100 + rng_next(&seed) % 1000;
		nodes[j].avail_milli[R_CPU] = (rng_next(&seed) % (SLOTS + 1)) * 1000;
	}
	init_shapes(shape);
	uint32_t holder = 37;
	struct sched_place_input in = {
		.size = kinds[K_INPUT].input, .holders = &holder, .nholders = 1};
	shape[K_INPUT].inputs = &in;
	shape[K_INPUT].ninputs = 1;
	const enum kind mix[3] = {K_LONG, K_CAMERA, K_INPUT};
	struct sched_place_view v = {.nodes = nodes, .nnodes = NODES, .nres = NRES};
	enum { BATCH = 10000 };
	int batches = quick ? 11 : 41;
	double per[41];
	for (int b = 0; b < batches; b++) {
		uint64_t t0 = prism_now_ns();
		for (uint32_t i = 0; i < BATCH; i++) {
			uint32_t j;
			int rc = sched_place_pick(&v, &shape[mix[i % 3]], i, &j, NULL);
			if (rc)
				return rc;
			sink = j;
		}
		per[b] = (double)(prism_now_ns() - t0) / BATCH;
	}
	*ns = median(per, batches);
	return 0;
}

/* sched_place_local_ok() on a node with free slots, for the simulation's task shapes:
 * the local scheduler's decision, ns per call, median of batches. */
static double measure_local_ok(bool quick)
{
	struct sched_place_node me;
	struct sched_place_task shape[NKINDS];
	init_node(&me, 0, LINK_BYTES_PER_S);
	init_shapes(shape);
	enum { BATCH = 200000 };
	int batches = quick ? 5 : 21;
	double per[21];
	for (int b = 0; b < batches; b++) {
		uint64_t t0 = prism_now_ns();
		for (uint32_t i = 0; i < BATCH; i++) {
			me.queue_len = i & 7;
			sink = sched_place_local_ok(&me, NRES, &shape[i & 3], 0);
		}
		per[b] = (double)(prism_now_ns() - t0) / BATCH;
	}
	return median(per, batches);
}

/* The simulation's event queue: one event handled and one scheduled (a sift down) on a
 * heap of 1,024 events.  ns per event, median of batches. */
static int measure_events(bool quick, double *ns)
{
	struct heap h = {0};
	uint64_t seed = 9;
	for (uint32_t i = 0; i < 1024; i++)
		if (heap_push(&h, (struct ev){rng_next(&seed) % PS_PER_MS, i}) != 0)
			return -ENOMEM;
	enum { BATCH = 200000 };
	int batches = quick ? 5 : 21;
	double per[21];
	for (int b = 0; b < batches; b++) {
		uint64_t t0 = prism_now_ns();
		for (uint32_t i = 0; i < BATCH; i++) {
			struct ev e = h.e[0];
			sink = e.v;
			h.vacant = true;
			heap_push(&h, (struct ev){e.t + 1 + rng_next(&seed) % PS_PER_MS, e.v});
		}
		per[b] = (double)(prism_now_ns() - t0) / BATCH;
	}
	prism_free(h.e);
	*ns = median(per, batches);
	return 0;
}

/* ---- the case ---- */

static void report(const struct bench_opts *o, const struct sim *s, double place_ns,
		   double local_ok_ns, double event_ns, double wall_s)
{
	double makespan_s = (double)s->last_ps / PS_PER_S;
	double rate = (double)s->done / makespan_s;
	double fwd_frac = (double)s->fwd / (double)s->done;
	double local_ns = (double)s->local_ps / PS_PER_NS, global_ns = place_ns + MSG_NS;
	/* Each node's scheduler handles every task of its driver and, again, every task
	 * placed on it: (1 + forwarded fraction) x LOCAL per task, over NODES servers. */
	double local_bound = NODES * 1e9 / (local_ns * (1 + fwd_frac));
	double global_bound = fwd_frac > 0 ? 1e9 / global_ns / fwd_frac : HUGE_VAL;
	/* The forwarded fraction above which the global scheduler would be the bound. */
	double global_frac = local_ns / (NODES * global_ns);
	prism_hist_summary d, df;
	prism_hist_summarize(s->delay, &d);
	prism_hist_summarize(s->delay_fwd, &df);
	struct bench_field f[] = {
		{"tasks", (double)s->done, NULL},
		{"nodes", NODES, NULL},
		{"slots_per_node", SLOTS, NULL},
		{"makespan_s", makespan_s, NULL},
		{"vs_seed_1_8m", rate / SEED_TASKS_PER_S, NULL},
		{"forwarded_frac", fwd_frac, NULL},
		{"fwd_no_such_resource", (double)s->fwd_absent, NULL},
		{"fwd_resources_busy", (double)s->fwd_busy, NULL},
		{"fwd_queue_long", (double)s->fwd_queue, NULL},
		{"infeasible", (double)s->failed, NULL},
		{"global_util", (double)s->gbusy_ps / (double)s->last_ps, NULL},
		{"delay_mean_us", d.mean / 1e3, NULL},
		{"delay_p50_us", (double)d.p50 / 1e3, NULL},
		{"delay_p99_us", (double)d.p99 / 1e3, NULL},
		{"delay_max_us", (double)d.max / 1e3, NULL},
		{"fwd_delay_mean_us", df.mean / 1e3, NULL},
		{"fwd_delay_p99_us", (double)df.p99 / 1e3, NULL},
		{"place_ns", place_ns, NULL},
		{"local_ok_ns", local_ok_ns, NULL},
		{"event_ns", event_ns, NULL},
		{"wall_s", wall_s, NULL},
		{"local_bound", local_bound, NULL},
		{"global_bound", global_bound, NULL},
		{"global_bound_frac", global_frac, NULL},
		{"bound", 0, local_bound <= global_bound ? "local" : "global"},
		{"local_task_ns", local_ns, NULL},
		{"local_task_src", 0, LOCAL_SRC},
		{"hop_ns", (double)s->hop_ps / PS_PER_NS, NULL},
		{"hop_src", 0, HOP_SRC},
		{"global_msg_ns", MSG_NS, NULL},
		{"global_msg_src", 0, MSG_SRC},
		{"link_gbs", s->link_bps / 1e9, NULL},
		{"link_src", 0, LINK_SRC},
		{"workload", 0, WORKLOAD},
	};
	bench_report_value(o, SUITE, CASE, "tasks/s", rate, f, (int)PRISM_ARRAY_LEN(f));
	bench_note(o,
		   "  %.3g tasks/s simulated = %.1f x the seed's 1.8M/s; bounds: local %.3g/s "
		   "(%u nodes x 1/%.0f ns), global %.3g/s (1/%.0f ns over %.3g%% forwarded): "
		   "%s-bound",
		   rate, rate / SEED_TASKS_PER_S, local_bound, NODES, local_ns, global_bound,
		   global_ns, 100 * fwd_frac, local_bound <= global_bound ? "local" : "global");
}

int bench_cluster_sim(const struct bench_opts *o)
{
	bench_report_header(
		o, SUITE,
		"the global scheduler simulated: 100 nodes, sched_place_pick measured");
	double place_ns, event_ns, local_ok_ns = measure_local_ok(o->quick);
	int rc = measure_place(o->quick, &place_ns);
	if (rc == 0)
		rc = measure_events(o->quick, &event_ns);
	if (rc) {
		fprintf(stderr, "prism-bench " SUITE ": " CASE ": measuring costs: %s\n",
			prism_strerror(rc));
		return 1;
	}
	static struct sim s; /* 100 nodes' views: ~40 KiB, off the stack */
	rc = sim_init(&s, o->quick ? TASKS_QUICK : TASKS_FULL);
	s.local_ps = (uint64_t)(PS_PER_S / LOCAL_TASKS_PER_S + 0.5);
	s.hop_ps = (uint64_t)(TCP_RTT_NS / 2 * PS_PER_NS);
	s.global_ps = (uint64_t)((place_ns + MSG_NS) * PS_PER_NS);
	uint64_t t0 = prism_now_ns();
	if (rc == 0)
		rc = sim_run(&s);
	double wall_s = (double)(prism_now_ns() - t0) / 1e9;
	if (rc == 0)
		report(o, &s, place_ns, local_ok_ns, event_ns, wall_s);
	else
		fprintf(stderr, "prism-bench " SUITE ": " CASE ": %s\n", prism_strerror(rc));
	sim_fini(&s);
	return rc ? 1 : 0;
}
