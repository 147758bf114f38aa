/* loop.c — the io_uring event loop; see base/loop.h for the contract and the phases.
 *
 * Watches and the kernel.  Every fd watch, pid watch and the wake eventfd is a struct
 * watch whose address is the user_data of its poll request (bit 0 set for the request
 * that removes that poll).  A watch records what its owner wants (want, a poll mask) and
 * what the kernel holds (armed, the mask of the poll in flight, and inflight, the number
 * of requests naming it whose last completion has not been reaped).  API calls only
 * change want and queue the watch; phase 5 turns the difference into poll-add or
 * poll-remove SQEs, all submitted by one io_uring_enter().  A closing watch is freed only
 * in phase 7, once inflight is 0, so no completion can name freed memory, and never from
 * inside a callback, so a callback may close its own watch.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <liburing.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/loop.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- intrusive lists ------------------------------------------------------------- */

/* Circular doubly linked list with a sentinel head, as libuv's queue.h. */
struct qnode {
	struct qnode *prev, *next;
};

static void q_init(struct qnode *h)
{
	h->prev = h->next = h;
}

static bool q_empty(const struct qnode *h)
{
	return h->next == h;
}

static void q_insert_tail(struct qnode *h, struct qnode *n)
{
	n->next = h;
	n->prev = h->prev;
	h->prev->next = n;
	h->prev = n;
}

static void q_remove(struct qnode *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

/* ---- types ----------------------------------------------------------------------- */

enum watch_kind { WATCH_IO, WATCH_PID, WATCH_WAKE };

/* user_data bit 0: the completion of a poll remove.  Watches hold pointers, so they are
 * at least 8-byte aligned and bit 0 of their address is free. */
#define UD_REMOVE 0x1ull

struct watch {
	prism_loop *loop;
	int fd;
	uint8_t kind;      /* enum watch_kind */
	bool multishot;    /* poll with IORING_POLL_ADD_MULTI (fd watches and the wake) */
	bool closing;      /* closed by its owner: callbacks stop, memory goes in phase 7 */
	bool queued;       /* on loop->queued, waiting for phase 5 */
	bool in_closed;    /* on loop->closed, waiting for phase 7 */
	bool cancel_sent;  /* a poll remove for the armed poll is in flight */
	bool counted;      /* counted in loop->n_active */
	unsigned want;     /* poll mask the owner wants; 0 = stopped */
	unsigned armed;    /* poll mask of the poll request in the kernel; 0 = none */
	uint32_t inflight; /* requests naming this watch whose last CQE is not reaped yet */
	struct watch *next_queued;
	struct watch *next_closed;
	struct qnode node; /* loop->watches (fd and pid watches; not the wake) */
	prism_loop_close_cb close_cb;
	void *close_arg;
};

/* Singly linked FIFO of watches through one of their next pointers. */
struct watch_fifo {
	struct watch *head;
	struct watch **tail;
};

struct prism_loop_io {
	struct watch w;
	prism_loop_io_cb cb;
	void *arg;
};

struct prism_loop_pid {
	struct watch w;
	pid_t pid;
	prism_loop_pid_cb cb;
	void *arg;
};

#define HEAP_NONE UINT32_MAX

struct prism_loop_timer {
	prism_loop *loop;
	prism_loop_timer_cb cb;
	void *arg;
	uint64_t deadline; /* loop clock, ns */
	uint64_t repeat;
	uint64_t seq;        /* insertion number: FIFO among equal deadlines */
	uint32_t heap_index; /* HEAP_NONE when stopped */
	bool ref;
	bool counted;
	bool started;
	struct qnode node; /* loop->timers */
};

struct prism_loop_work {
	struct qnode node;
	prism_loop *loop;
	prism_loop_work_cb cb;
	void *arg;
};

struct prism_loop_hook {
	struct qnode node;
	prism_loop *loop;
	prism_loop_hook_cb cb;
	void *arg;
};

struct prism_loop {
	struct io_uring ring;
	uint64_t now;            /* cached clock, ns */
	uint64_t timer_seq;      /* next timer insertion number */
	prism_loop_timer **heap; /* min-heap on (deadline, seq) */
	uint32_t heap_len;
	uint32_t heap_cap; /* >= ntimers, so that starting a timer never allocates */
	uint32_t ntimers;
	struct qnode timers;      /* every timer, for destroy */
	struct qnode watches;     /* every fd and pid watch not yet freed */
	struct qnode work;        /* work sources, in call order */
	struct qnode hooks[2];    /* by enum prism_loop_hook_kind */
	struct qnode *cursor;     /* next node of the work or hook list being walked */
	struct watch_fifo queued; /* watches whose kernel state must change in phase 5 */
	struct watch_fifo closed; /* watches ready for phase 7 */
	struct watch wake;
	int wake_fd;
	unsigned n_active;  /* active referenced timers, active watches, work sources */
	unsigned n_closing; /* watches closed but not yet freed */
	unsigned max_timers;
	unsigned max_cqes;
	bool running;
	bool stop_flag;
	prism_loop_stats stats;
	/* Written by other threads in prism_loop_wake(): on its own cache line so that
	 * wakes do not bounce the line holding the fields above. */
	_Atomic int wake_pending PRISM_CACHE_ALIGNED;
};

/* ---- small helpers --------------------------------------------------------------- */

static void set_counted(prism_loop *loop, bool *counted, bool active)
{
	if (*counted == active)
		return;
	*counted = active;
	if (active)
		loop->n_active++;
	else
		loop->n_active--;
}

static bool loop_alive(const prism_loop *loop)
{
	return loop->n_active > 0 || loop->n_closing > 0;
}

/* io_uring errors that mean "try again later" rather than "the loop is broken". */
static bool transient(int rc)
{
	return rc == -EINTR || rc == -EAGAIN || rc == -EBUSY || rc == -ETIME;
}

/* ---- timers: array min-heap ------------------------------------------------------ */

static bool timer_before(const prism_loop_timer *a, const prism_loop_timer *b)
{
	return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_set(prism_loop *loop, uint32_t i, prism_loop_timer *t)
{
	loop->heap[i] = t;
	t->heap_index = i;
}

static void heap_up(prism_loop *loop, uint32_t i)
{
	prism_loop_timer *t = loop->heap[i];
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (!timer_before(t, loop->heap[parent]))
			break;
		heap_set(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_set(loop, i, t);
}

static void heap_down(prism_loop *loop, uint32_t i)
{
	prism_loop_timer *t = loop->heap[i];
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= loop->heap_len)
			break;
		if (c + 1 < loop->heap_len && timer_before(loop->heap[c + 1], loop->heap[c]))
			c++;
		if (!timer_before(loop->heap[c], t))
			break;
		heap_set(loop, i, loop->heap[c]);
		i = c;
	}
	heap_set(loop, i, t);
}

static void heap_remove(prism_loop *loop, prism_loop_timer *t)
{
	uint32_t i = t->heap_index;
	prism_loop_timer *last = loop->heap[--loop->heap_len];
	t->heap_index = HEAP_NONE;
	if (last == t)
		return;
	heap_set(loop, i, last);
	heap_up(loop, i);
	heap_down(loop, last->heap_index);
}

static void timer_recount(prism_loop_timer *t)
{
	set_counted(t->loop, &t->counted, t->heap_index != HEAP_NONE && t->ref);
}

int prism_loop_timer_create(prism_loop *loop, prism_loop_timer_cb cb, void *arg,
			    prism_loop_timer **out)
{
	prism_loop_timer *t;
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!loop || !cb)
		return -EINVAL;
	t = prism_calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	/* Grow the heap now, so that start (often called in callbacks) cannot fail. */
	if (loop->ntimers == loop->heap_cap) {
		uint32_t cap = loop->heap_cap ? loop->heap_cap * 2 : 16;
		prism_loop_timer **heap = prism_realloc(loop->heap, cap * sizeof(*heap));
		if (!heap) {
			prism_free(t);
			return -ENOMEM;
		}
		loop->heap = heap;
		loop->heap_cap = cap;
	}
	t->loop = loop;
	t->cb = cb;
	t->arg = arg;
	t->heap_index = HEAP_NONE;
	t->ref = true;
	q_insert_tail(&loop->timers, &t->node);
	loop->ntimers++;
	*out = t;
	return 0;
}

void prism_loop_timer_stop(prism_loop_timer *t)
{
	if (t->heap_index == HEAP_NONE)
		return;
	heap_remove(t->loop, t);
	timer_recount(t);
}

void prism_loop_timer_destroy(prism_loop_timer *t)
{
	if (!t)
		return;
	prism_loop_timer_stop(t);
	q_remove(&t->node);
	t->loop->ntimers--;
	prism_free(t);
}

void prism_loop_timer_start(prism_loop_timer *t, uint64_t timeout_ns, uint64_t repeat_ns)
{
	prism_loop *loop = t->loop;
	if (t->heap_index != HEAP_NONE)
		heap_remove(loop, t);
	t->deadline = loop->now + timeout_ns;
	if (t->deadline < loop->now) /* overflow: "never" */
		t->deadline = UINT64_MAX;
	t->repeat = repeat_ns;
	t->seq = loop->timer_seq++;
	t->started = true;
	heap_set(loop, loop->heap_len++, t);
	heap_up(loop, t->heap_index);
	timer_recount(t);
}

int prism_loop_timer_again(prism_loop_timer *t)
{
	if (!t->started)
		return -EINVAL;
	if (t->repeat)
		prism_loop_timer_start(t, t->repeat, t->repeat);
	return 0;
}

void prism_loop_timer_set_repeat(prism_loop_timer *t, uint64_t repeat_ns)
{
	t->repeat = repeat_ns;
}

bool prism_loop_timer_active(const prism_loop_timer *t)
{
	return t->heap_index != HEAP_NONE;
}

void prism_loop_timer_set_ref(prism_loop_timer *t, bool ref)
{
	t->ref = ref;
	timer_recount(t);
}

/* Phase 2.  Timers started during the phase have seq >= first_new; their deadline is at
 * least the cached now and they lose ties to older timers, so every older due timer
 * sorts before them and stopping at the first new one skips nothing that is due. */
static unsigned run_timers(prism_loop *loop, bool *more)
{
	uint64_t first_new = loop->timer_seq;
	unsigned n = 0;
	while (loop->heap_len > 0) {
		prism_loop_timer *t = loop->heap[0];
		if (t->deadline > loop->now || t->seq >= first_new)
			break;
		if (n == loop->max_timers) {
			*more = true;
			break;
		}
		/* Re-arm or stop before the callback, which may destroy the timer: after
		 * it returns, t is not touched again. */
		if (t->repeat)
			prism_loop_timer_start(t, t->repeat, t->repeat);
		else
			prism_loop_timer_stop(t);
		n++;
		loop->stats.timers_run++;
		t->cb(t, t->arg);
	}
	return n;
}

/* ---- watches: fd, pid and wake polls --------------------------------------------- */

static void watch_recount(prism_loop *loop, struct watch *w)
{
	set_counted(loop, &w->counted, w->kind != WATCH_WAKE && w->want && !w->closing);
}

static void watch_queue(prism_loop *loop, struct watch *w)
{
	if (w->queued)
		return;
	w->queued = true;
	w->next_queued = NULL;
	*loop->queued.tail = w;
	loop->queued.tail = &w->next_queued;
}

static void watch_set_want(prism_loop *loop, struct watch *w, unsigned mask)
{
	if (w->want == mask)
		return;
	w->want = mask;
	watch_recount(loop, w);
	watch_queue(loop, w);
}

/* A closing watch goes to phase 7 once no request names it and phase 5 is done with it. */
static void watch_maybe_closed(prism_loop *loop, struct watch *w)
{
	if (!w->closing || w->inflight || w->queued || w->in_closed)
		return;
	w->in_closed = true;
	w->next_closed = NULL;
	*loop->closed.tail = w;
	loop->closed.tail = &w->next_closed;
}

static void watch_init(prism_loop *loop, struct watch *w, enum watch_kind kind, int fd)
{
	w->loop = loop;
	w->fd = fd;
	w->kind = (uint8_t)kind;
	/* A pid exits once: a one-shot poll needs no remove after it fired. */
	w->multishot = kind != WATCH_PID;
	q_init(&w->node);
}

static void watch_close(struct watch *w, prism_loop_close_cb cb, void *arg)
{
	prism_loop *loop = w->loop;
	if (PRISM_NEVER(w->closing))
		return;
	w->closing = true;
	w->close_cb = cb;
	w->close_arg = arg;
	loop->n_closing++;
	watch_recount(loop, w);
	watch_queue(loop, w); /* phase 5 removes its poll, then hands it to phase 7 */
}

static void watch_free(struct watch *w)
{
	if (w->kind == WATCH_PID) {
		close(w->fd);
		prism_free(container_of(w, prism_loop_pid, w));
	} else {
		prism_free(container_of(w, prism_loop_io, w));
	}
}

static struct io_uring_sqe *get_sqe(prism_loop *loop)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);
	if (sqe)
		return sqe;
	/* SQ full: hand what is there to the kernel and take a fresh slot. */
	if (io_uring_submit(&loop->ring) < 0)
		return NULL;
	return io_uring_get_sqe(&loop->ring);
}

/* Make the kernel's poll for w match what its owner wants: arm one, or remove the armed
 * one (it is re-armed with the new mask when its last completion arrives).  -EBUSY when
 * no SQE could be had; w stays queued. */
static int watch_sync(prism_loop *loop, struct watch *w)
{
	unsigned target = w->closing ? 0 : w->want;
	struct io_uring_sqe *sqe;
	if (w->armed ? (w->armed == target || w->cancel_sent) : !target)
		return 0;
	sqe = get_sqe(loop);
	if (!sqe)
		return -EBUSY;
	if (w->armed) {
		io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)w);
		io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)w | UD_REMOVE);
		w->cancel_sent = true;
	} else {
		if (w->multishot)
			io_uring_prep_poll_multishot(sqe, w->fd, target);
		else
			io_uring_prep_poll_add(sqe, w->fd, target);
		io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)w);
		w->armed = target;
	}
	w->inflight++;
	return 0;
}

static int sync_queued(prism_loop *loop)
{
	struct watch *w;
	while ((w = loop->queued.head) != NULL) {
		int rc = watch_sync(loop, w);
		if (rc)
			return rc;
		loop->queued.head = w->next_queued;
		if (!loop->queued.head)
			loop->queued.tail = &loop->queued.head;
		w->queued = false;
		watch_maybe_closed(loop, w);
	}
	return 0;
}

static unsigned poll_to_events(unsigned revents)
{
	unsigned ev = 0;
	if (revents & POLLIN)
		ev |= PRISM_LOOP_READABLE;
	if (revents & POLLOUT)
		ev |= PRISM_LOOP_WRITABLE;
	if (revents & (POLLHUP | POLLRDHUP))
		ev |= PRISM_LOOP_HUP;
	if (revents & POLLERR)
		ev |= PRISM_LOOP_ERROR;
	return ev;
}

static void io_event(prism_loop *loop, struct watch *w, int res)
{
	prism_loop_io *io = container_of(w, prism_loop_io, w);
	unsigned ev;
	if (res < 0) {
		watch_set_want(loop, w, 0);
		io->cb(io, res, 0, io->arg);
		return;
	}
	ev = poll_to_events((unsigned)res) &
	     (poll_to_events(w->want) | PRISM_LOOP_HUP | PRISM_LOOP_ERROR);
	if (ev)
		io->cb(io, 0, ev, io->arg);
}

static void pid_event(prism_loop *loop, struct watch *w, int res)
{
	prism_loop_pid *p = container_of(w, prism_loop_pid, w);
	prism_loop_exit ex = {.pid = p->pid};
	int status = res < 0 ? res : 0;
	if (status == 0) {
		siginfo_t si;
		int rc;
		memset(&si, 0, sizeof(si));
		do
			rc = waitid(P_PIDFD, (id_t)w->fd, &si, WEXITED | WNOHANG);
		while (rc < 0 && errno == EINTR);
		if (rc < 0) {
			status = -errno;
		} else if (si.si_pid == 0) {
			return; /* readable but not exited: the poll is armed again */
		} else if (si.si_code == CLD_EXITED) {
			ex.code = si.si_status;
		} else {
			ex.signal = si.si_status;
			ex.core_dumped = si.si_code == CLD_DUMPED;
		}
	}
	watch_set_want(loop, w, 0);
	p->cb(p, status, &ex, p->arg);
}

static void wake_event(prism_loop *loop, int res)
{
	uint64_t count;
	if (res < 0) {
		/* Cannot happen for an eventfd; re-arming would spin on the same error. */
		PRISM_LOG_E("loop", "wake poll failed: %s; wakes are lost",
			    prism_strerror(res));
		watch_set_want(loop, &loop->wake, 0);
		return;
	}
	while (read(loop->wake_fd, &count, sizeof(count)) < 0 && errno == EINTR)
		;
	/* After the read: a wake that finds the flag still set skips its write, and this
	 * iteration's remaining phases and the next iteration's work phase see what that
	 * waker published (the exchange pairs with the waker's). */
	atomic_exchange_explicit(&loop->wake_pending, 0, memory_order_acq_rel);
	loop->stats.wakeups++;
}

static void on_poll(prism_loop *loop, struct watch *w, int res, unsigned flags)
{
	bool more = flags & IORING_CQE_F_MORE;
	if (!more) {
		w->armed = 0;
		w->cancel_sent = false;
		w->inflight--;
	}
	/* -ECANCELED: our remove, for a stop, a close or a change of mask. */
	if (res != -ECANCELED && w->want && !w->closing) {
		if (w->kind == WATCH_IO)
			io_event(loop, w, res);
		else if (w->kind == WATCH_PID)
			pid_event(loop, w, res);
		else
			wake_event(loop, res);
	}
	if (!more && w->want && !w->closing) {
		/* The kernel ended a multishot poll on its own (a full CQ, for one). */
		if (w->multishot && res >= 0)
			loop->stats.rearms++;
		watch_queue(loop, w);
	}
	watch_maybe_closed(loop, w);
}

static void on_cqe(prism_loop *loop, uint64_t ud, int res, unsigned flags)
{
	struct watch *w;
	/* LIBURING_UDATA_TIMEOUT: liburing's own timeout SQE on kernels without EXT_ARG. */
	if (ud == 0 || ud == LIBURING_UDATA_TIMEOUT)
		return;
	w = (struct watch *)(uintptr_t)(ud & ~UD_REMOVE);
	if (ud & UD_REMOVE) {
		w->inflight--;
		if (res == -EALREADY && w->armed && w->cancel_sent) {
			/* The poll was busy posting an event and stays armed (its completion has
			 * IORING_CQE_F_MORE): send the remove again in the next phase 5. */
			w->cancel_sent = false;
			watch_queue(loop, w);
		}
		watch_maybe_closed(loop, w);
		return;
	}
	on_poll(loop, w, res, flags);
}

/* Reap at most max_cqes completions without waiting.  Each CQE is copied and released
 * before its callback runs, so callbacks see a ring with room. */
static unsigned reap(prism_loop *loop, bool *more)
{
	struct io_uring_cqe *cqe;
	unsigned n = 0;
	while (n < loop->max_cqes && io_uring_peek_cqe(&loop->ring, &cqe) == 0) {
		uint64_t ud = cqe->user_data;
		int res = cqe->res;
		unsigned flags = cqe->flags;
		io_uring_cqe_seen(&loop->ring, cqe);
		n++;
		on_cqe(loop, ud, res, flags);
	}
	if (n == loop->max_cqes)
		*more = true;
	loop->stats.completions += n;
	return n;
}

/* ---- fd and pid watches: public ----------------------------------------------------- */

int prism_loop_io_create(prism_loop *loop, int fd, prism_loop_io_cb cb, void *arg,
			 prism_loop_io **out)
{
	prism_loop_io *io;
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!loop || !cb)
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	io = prism_calloc(1, sizeof(*io));
	if (!io)
		return -ENOMEM;
	watch_init(loop, &io->w, WATCH_IO, fd);
	io->cb = cb;
	io->arg = arg;
	q_insert_tail(&loop->watches, &io->w.node);
	*out = io;
	return 0;
}

int prism_loop_io_start(prism_loop_io *io, unsigned events)
{
	unsigned mask = 0;
	if (!io || !events || (events & ~(PRISM_LOOP_READABLE | PRISM_LOOP_WRITABLE)))
		return -EINVAL;
	if (io->w.closing)
		return PRISM_E_CLOSED;
	if (events & PRISM_LOOP_READABLE)
		mask |= POLLIN;
	if (events & PRISM_LOOP_WRITABLE)
		mask |= POLLOUT;
	watch_set_want(io->w.loop, &io->w, mask);
	return 0;
}

void prism_loop_io_stop(prism_loop_io *io)
{
	if (!io->w.closing)
		watch_set_want(io->w.loop, &io->w, 0);
}

void prism_loop_io_close(prism_loop_io *io, prism_loop_close_cb cb, void *arg)
{
	watch_close(&io->w, cb, arg);
}

int prism_loop_watch_pid(prism_loop *loop, pid_t pid, prism_loop_pid_cb cb, void *arg,
			 prism_loop_pid **out)
{
	prism_loop_pid *p;
	int fd, rc;
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!loop || !cb || pid <= 0)
		return -EINVAL;
	p = prism_calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	rc = prism_fault_point();
	if (rc)
		goto fail_pidfd;
	fd = (int)syscall(SYS_pidfd_open, pid, 0); /* always close-on-exec */
	if (fd < 0) {
		rc = -errno;
		goto fail_pidfd;
	}
	watch_init(loop, &p->w, WATCH_PID, fd);
	p->pid = pid;
	p->cb = cb;
	p->arg = arg;
	q_insert_tail(&loop->watches, &p->w.node);
	watch_set_want(loop, &p->w, POLLIN);
	*out = p;
	return 0;

fail_pidfd:
	prism_free(p);
	return rc;
}

void prism_loop_pid_close(prism_loop_pid *p, prism_loop_close_cb cb, void *arg)
{
	watch_close(&p->w, cb, arg);
}

/* Phase 7.  The list is taken whole first: watches closed by these callbacks wait for
 * the next iteration, which will not sleep because the list is not empty. */
static unsigned run_closed(prism_loop *loop)
{
	struct watch *w = loop->closed.head;
	unsigned n = 0;
	loop->closed.head = NULL;
	loop->closed.tail = &loop->closed.head;
	while (w) {
		struct watch *next = w->next_closed;
		prism_loop_close_cb cb = w->close_cb;
		void *arg = w->close_arg;
		q_remove(&w->node);
		loop->n_closing--;
		watch_free(w);
		if (cb)
			cb(arg);
		w = next;
		n++;
	}
	return n;
}

/* ---- work sources and hooks ------------------------------------------------------- */

/* Unlink from a work or hook list; a walk in progress skips to the next node. */
static void list_unlink(prism_loop *loop, struct qnode *n)
{
	if (loop->cursor == n)
		loop->cursor = n->next;
	q_remove(n);
}

int prism_loop_work_add(prism_loop *loop, prism_loop_work_cb cb, void *arg,
			prism_loop_work **out)
{
	prism_loop_work *w;
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!loop || !cb)
		return -EINVAL;
	w = prism_calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->loop = loop;
	w->cb = cb;
	w->arg = arg;
	q_insert_tail(&loop->work, &w->node);
	loop->n_active++;
	*out = w;
	return 0;
}

void prism_loop_work_remove(prism_loop_work *w)
{
	if (!w)
		return;
	list_unlink(w->loop, &w->node);
	w->loop->n_active--;
	prism_free(w);
}

int prism_loop_hook_add(prism_loop *loop, enum prism_loop_hook_kind kind, prism_loop_hook_cb cb,
			void *arg, prism_loop_hook **out)
{
	prism_loop_hook *h;
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!loop || !cb ||
	    (kind != PRISM_LOOP_HOOK_FLUSH && kind != PRISM_LOOP_HOOK_BEFORE_SLEEP))
		return -EINVAL;
	h = prism_calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->loop = loop;
	h->cb = cb;
	h->arg = arg;
	q_insert_tail(&loop->hooks[kind], &h->node);
	*out = h;
	return 0;
}

void prism_loop_hook_remove(prism_loop_hook *h)
{
	if (!h)
		return;
	list_unlink(h->loop, &h->node);
	prism_free(h);
}

/* Phase 3: the total of what the sources report. */
static size_t run_work(prism_loop *loop)
{
	size_t total = 0;
	for (struct qnode *q = loop->work.next; q != &loop->work; q = loop->cursor) {
		prism_loop_work *w = container_of(q, prism_loop_work, node);
		loop->cursor = q->next;
		total += w->cb(loop, w->arg);
	}
	loop->cursor = NULL;
	return total;
}

static void run_hooks(prism_loop *loop, enum prism_loop_hook_kind kind)
{
	struct qnode *head = &loop->hooks[kind];
	for (struct qnode *q = head->next; q != head; q = loop->cursor) {
		prism_loop_hook *h = container_of(q, prism_loop_hook, node);
		loop->cursor = q->next;
		h->cb(loop, h->arg);
	}
	loop->cursor = NULL;
}

/* ---- the loop ---------------------------------------------------------------------- */

/* Ring setup flags, best first.  SINGLE_ISSUER + DEFER_TASKRUN (6.1) run completion work
 * only when the loop enters the kernel, never by interrupting it; COOP_TASKRUN (5.19)
 * at least avoids the IPI.  TASKRUN_FLAG makes the kernel raise IORING_SQ_TASKRUN when
 * work is waiting, which liburing's peek checks, so a reap costs no syscall when there
 * is nothing.  Older kernels reject unknown flags with -EINVAL: then the next set. */
static const unsigned ring_flag_sets[] = {
	IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
	IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
	0,
};

static int ring_init(prism_loop *loop, unsigned entries, unsigned flags)
{
	size_t first =
		(flags & PRISM_LOOP_F_PLAIN_RING) ? PRISM_ARRAY_LEN(ring_flag_sets) - 1 : 0;
	int rc = prism_fault_point();
	if (rc)
		return rc;
	for (size_t i = first; i < PRISM_ARRAY_LEN(ring_flag_sets); i++) {
		struct io_uring_params p;
		memset(&p, 0, sizeof(p));
		p.flags = ring_flag_sets[i];
		rc = io_uring_queue_init_params(entries, &loop->ring, &p);
		if (rc == 0) {
			loop->stats.setup_flags = p.flags;
			return 0;
		}
		if (rc != -EINVAL)
			break;
	}
	return rc;
}

int prism_loop_create(const prism_loop_opts *opts, prism_loop **out)
{
	prism_loop_opts o = {0};
	prism_loop *loop;
	int rc;
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (opts)
		o = *opts;
	if (o.entries > PRISM_LOOP_MAX_ENTRIES || (o.flags & ~PRISM_LOOP_F_PLAIN_RING))
		return -EINVAL;
	loop = prism_aligned_alloc(PRISM_CACHE_LINE, sizeof(*loop));
	if (!loop)
		return -ENOMEM;
	memset(loop, 0, sizeof(*loop));
	q_init(&loop->timers);
	q_init(&loop->watches);
	q_init(&loop->work);
	q_init(&loop->hooks[PRISM_LOOP_HOOK_FLUSH]);
	q_init(&loop->hooks[PRISM_LOOP_HOOK_BEFORE_SLEEP]);
	loop->queued.tail = &loop->queued.head;
	loop->closed.tail = &loop->closed.head;
	loop->max_timers = o.max_timers ? o.max_timers : PRISM_LOOP_DEFAULT_MAX_TIMERS;
	loop->max_cqes =
		o.max_completions ? o.max_completions : PRISM_LOOP_DEFAULT_MAX_COMPLETIONS;
	atomic_init(&loop->wake_pending, 0);

	rc = ring_init(loop, o.entries ? o.entries : PRISM_LOOP_DEFAULT_ENTRIES, o.flags);
	if (rc)
		goto fail_ring;
	rc = prism_fault_point();
	if (rc)
		goto fail_eventfd;
	loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (loop->wake_fd < 0) {
		rc = -errno;
		goto fail_eventfd;
	}
	watch_init(loop, &loop->wake, WATCH_WAKE, loop->wake_fd);
	watch_set_want(loop, &loop->wake, POLLIN); /* armed by the first phase 5 */
	loop->now = prism_now_ns();
	*out = loop;
	return 0;

fail_eventfd:
	io_uring_queue_exit(&loop->ring);
fail_ring:
	prism_free(loop);
	return rc;
}

void prism_loop_destroy(prism_loop *loop)
{
	if (!loop)
		return;
	/* Ring first: once it is gone no request names a watch, whatever was in flight. */
	io_uring_queue_exit(&loop->ring);
	while (!q_empty(&loop->watches)) {
		struct watch *w = container_of(loop->watches.next, struct watch, node);
		prism_loop_close_cb cb = w->closing ? w->close_cb : NULL;
		void *arg = w->close_arg;
		q_remove(&w->node);
		watch_free(w);
		if (cb)
			cb(arg);
	}
	while (!q_empty(&loop->timers)) {
		prism_loop_timer *t = container_of(loop->timers.next, prism_loop_timer, node);
		q_remove(&t->node);
		prism_free(t);
	}
	while (!q_empty(&loop->work)) {
		prism_loop_work *w = container_of(loop->work.next, prism_loop_work, node);
		q_remove(&w->node);
		prism_free(w);
	}
	for (size_t k = 0; k < PRISM_ARRAY_LEN(loop->hooks); k++) {
		while (!q_empty(&loop->hooks[k])) {
			prism_loop_hook *h =
				container_of(loop->hooks[k].next, prism_loop_hook, node);
			q_remove(&h->node);
			prism_free(h);
		}
	}
	prism_free(loop->heap);
	close(loop->wake_fd);
	prism_free(loop);
}

/* Phase 5: submit queued poll changes and reap without waiting. */
static int submit_and_reap(prism_loop *loop, bool *more, unsigned *reaped)
{
	int rc = sync_queued(loop);
	if (rc) /* -EBUSY: no SQE; reaping makes room, so go round again without sleeping */
		*more = true;
	if (io_uring_sq_ready(&loop->ring)) {
		rc = io_uring_submit(&loop->ring);
		if (rc < 0 && !transient(rc))
			return rc;
		if (rc < 0)
			*more = true;
	}
	*reaped = reap(loop, more);
	return 0;
}

/* Phase 6, once the iteration found nothing to do.  The before-sleep hooks run first;
 * the sleep is still skipped when a hook stopped the loop, made a timer due or closed
 * a watch that needs no kernel work. */
static int sleep_phase(prism_loop *loop, enum prism_loop_run_mode mode)
{
	struct __kernel_timespec ts, *tsp = NULL;
	struct io_uring_cqe *cqe;
	bool more = false;
	int rc;

	run_hooks(loop, PRISM_LOOP_HOOK_BEFORE_SLEEP);
	if (sync_queued(loop) || loop->closed.head || loop->stop_flag)
		return 0;
	if (loop->heap_len > 0) {
		uint64_t now = prism_now_ns(), deadline = loop->heap[0]->deadline;
		if (deadline <= now)
			return 0;
		ts.tv_sec = (long long)((deadline - now) / PRISM_NS_PER_SEC);
		ts.tv_nsec = (long long)((deadline - now) % PRISM_NS_PER_SEC);
		tsp = &ts;
	}
	loop->stats.sleeps++;
	rc = io_uring_submit_and_wait_timeout(&loop->ring, &cqe, 1, tsp, NULL);
	prism_loop_update_time(loop);
	if (rc < 0 && !transient(rc))
		return rc;
	reap(loop, &more);
	if (mode == PRISM_LOOP_RUN_ONCE)
		run_timers(loop, &more);
	return 0;
}

/* One iteration: the phases of base/loop.h, numbered the same. */
static int run_iteration(prism_loop *loop, enum prism_loop_run_mode mode)
{
	bool more = false; /* a bounded phase left work behind */
	unsigned ran, reaped = 0;
	size_t worked;
	int rc;

	loop->stats.iterations++;
	/* 1. Clock. */
	prism_loop_update_time(loop);
	/* 2. Timers. */
	ran = run_timers(loop, &more);
	/* 3. Work. */
	worked = run_work(loop);
	/* 4. Flush. */
	run_hooks(loop, PRISM_LOOP_HOOK_FLUSH);
	/* 5. I/O. */
	rc = submit_and_reap(loop, &more, &reaped);
	if (rc)
		return rc;
	/* 6. Sleep, only when there was nothing to do. */
	if (mode != PRISM_LOOP_RUN_NOWAIT && !more && !ran && !worked && !reaped &&
	    !loop->closed.head && !loop->stop_flag) {
		rc = sleep_phase(loop, mode);
		if (rc)
			return rc;
	}
	/* 7. Close. */
	run_closed(loop);
	return 0;
}

int prism_loop_run(prism_loop *loop, enum prism_loop_run_mode mode)
{
	int rc = 0;
	if (!loop || (mode != PRISM_LOOP_RUN_DEFAULT && mode != PRISM_LOOP_RUN_ONCE &&
		      mode != PRISM_LOOP_RUN_NOWAIT))
		return -EINVAL;
	if (loop->running)
		return -EBUSY;
	loop->running = true;
	if (mode == PRISM_LOOP_RUN_DEFAULT) {
		while (rc == 0 && !loop->stop_flag && loop_alive(loop))
			rc = run_iteration(loop, mode);
	} else if (!loop->stop_flag) {
		rc = run_iteration(loop, mode);
	}
	loop->stop_flag = false;
	loop->running = false;
	return rc ? rc : loop_alive(loop);
}

void prism_loop_stop(prism_loop *loop)
{
	loop->stop_flag = true;
}

int prism_loop_wake(prism_loop *loop)
{
	uint64_t one = 1;
	/* Coalesce: only the first wake since the loop last drained the eventfd writes. */
	if (atomic_exchange_explicit(&loop->wake_pending, 1, memory_order_acq_rel))
		return 0;
	for (;;) {
		if (write(loop->wake_fd, &one, sizeof(one)) == (ssize_t)sizeof(one))
			return 0;
		if (errno == EINTR)
			continue;
		/* EAGAIN: the counter is at its maximum, so the fd is readable already. */
		if (errno == EAGAIN)
			return 0;
		/* Nothing was written: let the next wake try again. */
		int rc = -errno;
		atomic_store_explicit(&loop->wake_pending, 0, memory_order_release);
		return rc;
	}
}

int prism_loop_wake_fd(const prism_loop *loop, int *fd)
{
	if (!loop || !fd)
		return -EINVAL;
	*fd = loop->wake_fd;
	return 0;
}

uint64_t prism_loop_now(const prism_loop *loop)
{
	return loop->now;
}

void prism_loop_update_time(prism_loop *loop)
{
	loop->now = prism_now_ns();
}

void prism_loop_stats_get(const prism_loop *loop, prism_loop_stats *out)
{
	*out = loop->stats;
}
