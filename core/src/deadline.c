/* deadline.c — deadline work: the earliest-deadline-first queue a submitter keeps per
 * resource shape, the check made when a deadline call would start, and the node's
 * counters (prism.h, "Deadlines").
 *
 * The EDF queue is a binary min-heap keyed by (deadline, submission sequence), so equal
 * deadlines keep submission order.  Each entry owns a copy of its task message; buffers
 * of popped entries are kept (up to DLQ_SPARE of them) and reused, so a queue that fills
 * and drains at a steady rate allocates nothing after it warmed up.
 */
#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "rt.h"

static bool item_before(const struct dlq_item *a, const struct dlq_item *b)
{
	return a->deadline != b->deadline ? a->deadline < b->deadline : a->seq < b->seq;
}

static void sift_up(struct dlq *q, uint32_t i)
{
	struct dlq_item it = q->heap[i];
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (!item_before(&it, &q->heap[parent]))
			break;
		q->heap[i] = q->heap[parent];
		i = parent;
	}
	q->heap[i] = it;
}

static void sift_down(struct dlq *q, uint32_t i)
{
	struct dlq_item it = q->heap[i];
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= q->count)
			break;
		if (c + 1 < q->count && item_before(&q->heap[c + 1], &q->heap[c]))
			c++;
		if (!item_before(&q->heap[c], &it))
			break;
		q->heap[i] = q->heap[c];
		i = c;
	}
	q->heap[i] = it;
}

/* A buffer of at least len bytes: a spare one if one is big enough, else a new one. */
static uint8_t *buf_get(struct dlq *q, size_t len, size_t *cap)
{
	for (uint32_t i = 0; i < q->nspare; i++) {
		if (q->spare[i].cap >= len) {
			uint8_t *b = q->spare[i].buf;
			*cap = q->spare[i].cap;
			q->spare[i] = q->spare[--q->nspare];
			return b;
		}
	}
	/* 256 bytes at least: most task messages fit, so spares fit most later ones. */
	*cap = len < 256 ? 256 : len;
	return prism_aligned_alloc(64, *cap);
}

static void buf_put(struct dlq *q, uint8_t *b, size_t cap)
{
	if (q->nspare < DLQ_SPARE) {
		q->spare[q->nspare].buf = b;
		q->spare[q->nspare].cap = cap;
		q->nspare++;
	} else {
		prism_free(b);
	}
}

int dlq_push(struct dlq *q, const struct sched_task_msg *m)
{
	if (q->count == q->cap) {
		uint32_t ncap = q->cap ? 2 * q->cap : 64;
		struct dlq_item *nh = prism_realloc(q->heap, ncap * sizeof(*nh));
		if (!nh)
			return -ENOMEM;
		q->heap = nh;
		q->cap = ncap;
	}
	size_t cap;
	uint8_t *b = buf_get(q, m->h.len, &cap);
	if (!b)
		return -ENOMEM;
	memcpy(b, m, m->h.len);
	q->heap[q->count] = (struct dlq_item){
		.deadline = m->deadline, .seq = q->seq++, .msg = b, .cap = cap};
	sift_up(q, q->count++);
	return 0;
}

const struct sched_task_msg *dlq_peek(const struct dlq *q)
{
	return q->count ? (const struct sched_task_msg *)q->heap[0].msg : NULL;
}

void dlq_pop(struct dlq *q)
{
	if (!q->count)
		return;
	buf_put(q, q->heap[0].msg, q->heap[0].cap);
	q->heap[0] = q->heap[--q->count];
	if (q->count)
		sift_down(q, 0);
}

void dlq_free(struct dlq *q)
{
	for (uint32_t i = 0; i < q->count; i++)
		prism_free(q->heap[i].msg);
	for (uint32_t i = 0; i < q->nspare; i++)
		prism_free(q->spare[i].buf);
	prism_free(q->heap);
	memset(q, 0, sizeof(*q));
}

/* ---- lateness -------------------------------------------------------------------------- */

bool rt_deadline_stale(const struct sched_task_msg *m, uint64_t now)
{
	return m->deadline && (m->flags & SCHED_TASK_DROP_LATE) && now > m->deadline;
}

void rt_deadline_count(bool late, bool dropped)
{
	/* One writer per slot (this process), readers anywhere: relaxed loads and stores,
	 * no locked instruction. */
	struct sched_client *me = sched_client_at(rt.base, rt.slot);
	uint64_t *c = dropped ? &me->deadline_dropped : late ? &me->deadline_late : NULL;
	__atomic_store_n(&me->deadline_calls, me->deadline_calls + 1, __ATOMIC_RELAXED);
	if (c)
		__atomic_store_n(c, *c + 1, __ATOMIC_RELAXED);
}

int prism_node_stats_get(prism_node_stats *out)
{
	if (!out)
		return -EINVAL;
	if (!rt.up) {
		rt_set_error("prism_init() has not been called");
		return PRISM_E_CLOSED;
	}
	memset(out, 0, sizeof(*out));
	/* Each slot's counters are written by its own process only and never reset (see
	 * struct sched_client), so the sum over every slot is the node's count. */
	for (uint32_t s = 0; s < SCHED_MAX_CLIENTS; s++) {
		const struct sched_client *c = sched_client_at(rt.base, s);
		out->deadline_calls += __atomic_load_n(&c->deadline_calls, __ATOMIC_RELAXED);
		out->deadline_late += __atomic_load_n(&c->deadline_late, __ATOMIC_RELAXED);
		out->deadline_dropped +=
			__atomic_load_n(&c->deadline_dropped, __ATOMIC_RELAXED);
	}
	return 0;
}
