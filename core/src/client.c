/* client.c — a process's link to its node: start or attach, the control rings, leases,
 * and waiting.
 *
 * The embedded node.  prism_init() with no address starts a node for this program:
 * it runs its own executable again with PRISM_EMBEDDED_NODE set, and libprism's
 * constructor in that process runs the node (sched/node.h) before main() and exits;
 * nothing of the user's program runs there.  The node dies with the driver
 * (PR_SET_PDEATHSIG, and it stops when its last driver detaches).
 *
 * Waiting.  Everything this process consumes (its down ring and the done ring of every
 * lease it holds) shares its doorbell, so one prism_ring_wait_any() covers all of it:
 * spin for rt.spin_ns, then sleep on the futex until a producer rings.
 */
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/sock.h"
#include "base/wire.h"
#include "rt.h"
#include "sched/node.h"

#define DEFAULT_SPIN_NS (50 * PRISM_NS_PER_US)
#define NODE_START_TIMEOUT_MS 10000
/* A lease nobody used for this long goes back to the node, so idle drivers do not keep
 * workers from others; long enough that a program's bursts reuse it. */
#define LEASE_IDLE_NS (200 * PRISM_NS_PER_MS)

struct rt rt = {.sock = -1, .daemon_efd = -1, .serving = -1};

static __thread char last_error[512];

const char *prism_last_error(void)
{
	return last_error;
}

void rt_set_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

/* ---- inflight queues ---------------------------------------------------------------------- */

/* Each entry takes whole 64-byte slots, as the message does on a ring: it is sent
 * again from here (sched_msg_send() reads every slot of it). */
static size_t fl_span(size_t len)
{
	return (size_t)sched_msg_slots((uint32_t)len) * SCHED_SLOT;
}

int fl_push(struct inflight *f, const void *msg, size_t len)
{
	size_t need = fl_span(len);
	if (f->tail + need > f->cap) {
		/* Compact, then grow: the queue only ever holds what is in flight. */
		size_t live = f->tail - f->head;
		if (live + need > f->cap) {
			size_t ncap = f->cap ? f->cap : 64 * 1024;
			while (ncap < live + need)
				ncap *= 2;
			uint8_t *nb = prism_malloc(ncap);
			if (!nb)
				return -ENOMEM;
			if (live)
				memcpy(nb, f->buf + f->head, live);
			prism_free(f->buf);
			f->buf = nb;
			f->cap = ncap;
		} else {
			memmove(f->buf, f->buf + f->head, live);
		}
		f->tail = live;
		f->head = 0;
	}
	memcpy(f->buf + f->tail, msg, len);
	memset(f->buf + f->tail + len, 0, need - len);
	f->tail += need;
	f->count++;
	return 0;
}

void fl_unpush(struct inflight *f, size_t len)
{
	f->tail -= fl_span(len);
	if (--f->count == 0)
		f->head = f->tail = 0;
}

const struct sched_msg *fl_peek(const struct inflight *f)
{
	return f->count ? (const struct sched_msg *)(f->buf + f->head) : NULL;
}

void fl_pop(struct inflight *f)
{
	const struct sched_msg *m = fl_peek(f);
	if (!m)
		return;
	f->head += fl_span(m->len);
	if (--f->count == 0)
		f->head = f->tail = 0;
}

void fl_free(struct inflight *f)
{
	prism_free(f->buf);
	memset(f, 0, sizeof(*f));
}

/* ---- control messages ---------------------------------------------------------------------- */

int rt_send_msg(const struct sched_msg *h)
{
	/* The daemon drains every up ring each loop iteration; a full one means it is
	 * stalled, so wait for room rather than drop a control message. */
	for (int i = 0;; i++) {
		int rc = sched_msg_send(rt.up_ring, h);
		if (rc != PRISM_E_FULL)
			return rc;
		if (i > 100000) {
			rt_set_error("the node does not drain its control ring");
			return PRISM_E_TIMEOUT;
		}
		sched_yield();
	}
}

int rt_send_ctl(uint16_t type, uint32_t a, uint32_t b, uint64_t req_id)
{
	struct sched_ctl_msg m = {
		.h = {.len = sizeof(m), .type = type, .nslots = 1, .req_id = req_id},
		.a = a,
		.b = b};
	return rt_send_msg(&m.h);
}

void rt_rebuild_waitset(void)
{
	uint32_t n = 0, a = 0;
	rt.waitset[n++] = rt.down;
	for (uint32_t i = 0; i < SCHED_MAX_LEASES; i++) {
		if (rt.leases[i].state != LEASE_ACTIVE)
			continue;
		rt.active[a++] = &rt.leases[i];
		rt.waitset[n++] = rt.leases[i].done;
	}
	rt.nwait = n;
}

/* About to push into a lease with nothing in flight: tell the node it is busy, then
 * make sure it did not take the lease back meanwhile (struct sched_lease explains the
 * order).  False: the lease is gone and has been closed here. */
bool rt_lease_claim(struct rt_lease *l)
{
	struct sched_lease *ls = sched_lease_at(rt.base, l->idx);
	if (ls->generation == l->gen) {
		atomic_store(&ls->busy, 1);
		uint32_t st = atomic_load(&ls->state);
		if (st == SCHED_LEASE_GRANTED && ls->generation == l->gen)
			return true;
		if (st == SCHED_LEASE_RETURNING && ls->generation == l->gen) {
			/* The node is recalling it, or about to see our flag and back off: we
			 * cannot tell which.  Unclaim and keep it, unused, until its answer:
			 * RECALLED (then it goes), or the state back to GRANTED (then it is
			 * ours again; rt_leases_maintain looks).  Forgetting it here would
			 * leave a lease the node thinks busy and nobody uses, with its worker. */
			atomic_store(&ls->busy, 0);
			l->held_off = true;
			return false;
		}
	}
	/* Recalled and freed (or already granted anew to someone else, whose flag we
	 * leave be: a spurious "busy" only delays a reclaim). */
	rt_lease_forget(l);
	return false;
}

/* Leases held off by rt_lease_claim() that the node left to us after all. */
static void leases_held_off(void)
{
	for (uint32_t i = rt.nactive; i-- > 0;) {
		struct rt_lease *l = rt.active[i];
		if (!l->held_off)
			continue;
		struct sched_lease *ls = sched_lease_at(rt.base, l->idx);
		if (ls->generation != l->gen) {
			/* Freed without our answer (cannot happen while the node waits for
			 * it): what was in flight runs again. */
			if (l->fl.count)
				rt_on_lease_lost(l);
			rt_lease_forget(l);
		} else if (atomic_load(&ls->state) == SCHED_LEASE_GRANTED)
			l->held_off = false;
	}
}

/* The last task in flight on a lease came back. */
void rt_lease_idle(struct rt_lease *l)
{
	struct sched_lease *ls = sched_lease_at(rt.base, l->idx);
	if (l->recalled) {
		uint32_t idx = l->idx, gen = l->gen;
		rt_lease_forget(l);
		rt_send_ctl(SCHED_M_LEASE_RETURN, idx, gen, 0);
		return;
	}
	l->idle_since = prism_now_ns();
	if (ls->generation == l->gen) {
		atomic_store(&ls->idle_since_ns, l->idle_since);
		atomic_store(&ls->busy, 0);
	}
}

static void lease_close(struct rt_lease *l)
{
	prism_ring_destroy(l->spec);
	prism_ring_destroy(l->done);
	l->spec = l->done = NULL;
	if (l->state == LEASE_ACTIVE)
		rt.nactive--;
	l->state = LEASE_NONE;
	l->actor = NULL;
}

/* Open the rings of the lease a grant (or an actor channel) names: {a: lease, b: worker
 * slot, c: generation, code: worker pid}.  NULL when they cannot be opened (the lease
 * then goes back). */
static struct rt_lease *lease_open(const struct sched_ctl_msg *m)
{
	if (m->a >= SCHED_MAX_LEASES || m->b >= SCHED_MAX_CLIENTS)
		return NULL;
	struct rt_lease *l = &rt.leases[m->a];
	if (l->state != LEASE_NONE) {
		/* Granted anew while we still had it: whatever was in flight on the old
		 * grant is lost with it (runs again, or fails, as for a dead worker). */
		PRISM_LOG_E("client",
			    "lease %u granted again (generation %u) while still open here "
			    "(generation %u, %u in flight, held off %d)",
			    m->a, m->c, l->gen, l->fl.count, l->held_off);
		rt_on_lease_lost(l);
		lease_close(l);
	}
	/* A worker on another node: the node's daemon takes the tasks (and is woken
	 * through its eventfd, as for the control ring). */
	bool remote = m->b == SCHED_DAEMON_SLOT;
	void *wbell = remote ? rt.hdr->daemon_bell : sched_client_at(rt.base, m->b)->bell;
	int rc = prism_ring_attach_shared(sched_lease_ring_at(rt.base, m->a, 0),
					  rt.hdr->lease_ring_bytes, wbell, &l->spec);
	if (rc == 0 && remote)
		prism_ring_set_wake_fd(l->spec, rt.daemon_efd);
	if (rc == 0)
		rc = prism_ring_attach_shared(sched_lease_ring_at(rt.base, m->a, 1),
					      rt.hdr->lease_ring_bytes, rt.bell, &l->done);
	if (rc) {
		PRISM_LOG_E("client", "cannot open the rings of lease %u: %s", m->a,
			    prism_strerror(rc));
		lease_close(l);
		rt_send_ctl(SCHED_M_LEASE_RETURN, m->a, m->c, 0);
		return NULL;
	}
	l->state = LEASE_ACTIVE;
	l->held_off = l->recalled = false;
	l->actor = NULL;
	l->idx = m->a;
	l->gen = m->c;
	l->worker = m->b;
	l->worker_pid = m->code;
	l->shape = 0;
	l->idle_since = prism_now_ns();
	rt.nactive++;
	rt_rebuild_waitset();
	return l;
}

static void on_grant(const struct sched_ctl_msg *m)
{
	struct rt_shape *shape = rt_shape_by_req(m->h.req_id);
	if (shape)
		shape->requested = false;
	struct rt_lease *l = lease_open(m);
	if (!l)
		return;
	l->shape = m->d < RT_MAX_SHAPES ? m->d : 0;
	rt_flush_queued();
}

static void on_actor_channel(const struct sched_ctl_msg *m)
{
	struct rt_lease *l = lease_open(m);
	if (l)
		rt_actor_channel_open(l, m);
}

void rt_lease_forget(struct rt_lease *l)
{
	lease_close(l);
	rt_rebuild_waitset();
}

static void on_recalled(const struct sched_ctl_msg *m)
{
	if (m->a >= SCHED_MAX_LEASES)
		return;
	struct rt_lease *l = &rt.leases[m->a];
	/* The node recalls only leases with nothing in flight.  Our answer frees the
	 * lease's rings for another grant: only once we no longer touch them. */
	if (l->state == LEASE_ACTIVE && l->gen == m->c && l->fl.count) {
		PRISM_LOG_E("client",
			    "lease %u recalled with %u in flight (busy %u, held off %d)", m->a,
			    l->fl.count, atomic_load(&sched_lease_at(rt.base, m->a)->busy),
			    l->held_off);
		l->held_off = l->recalled = true; /* answered when they are back */
		return;
	}
	/* Not open here any more: we returned it ourselves, and that return, crossing the
	 * recall, was our answer. */
	if (l->state != LEASE_ACTIVE || l->gen != m->c)
		return;
	rt_lease_forget(l);
	rt_send_ctl(SCHED_M_LEASE_RETURN, m->a, m->c, 0);
}

static void on_denied(const struct sched_ctl_msg *m)
{
	struct rt_shape *shape = rt_shape_by_req(m->h.req_id);
	if (!shape)
		return;
	shape->requested = false;
	rt_fail_queued(shape, m->code);
}

static size_t drain_done(struct rt_lease *l, int max);

static void on_lost(const struct sched_ctl_msg *m)
{
	if (m->a >= SCHED_MAX_LEASES)
		return;
	/* Not open here: we returned it before its worker died (the node freed it then). */
	if (rt.leases[m->a].state == LEASE_NONE || rt.leases[m->a].gen != m->c)
		return;
	struct rt_lease *l = &rt.leases[m->a];
	PRISM_LOG_I("client", "lease %u lost: worker pid %d died with %u tasks in flight", m->a,
		    (int)l->worker_pid, l->fl.count);
	/* Results the worker sent before it died are still in the done ring: take them
	 * first, so only what really was lost runs again. */
	while (drain_done(l, 256) > 0)
		;
	if (l->state == LEASE_ACTIVE) {
		rt_on_lease_lost(l);
		lease_close(l);
		rt_rebuild_waitset();
		/* The node reuses the lease once we say we let go of it. */
		rt_send_ctl(SCHED_M_LEASE_RETURN, m->a, m->c, 0);
	}
	rt_flush_queued();
}

static void on_ctl(const struct sched_ctl_msg *m)
{
	switch (m->h.type) {
	case SCHED_M_LEASE_GRANT:
		on_grant(m);
		break;
	case SCHED_M_LEASE_DENIED:
		on_denied(m);
		break;
	case SCHED_M_LEASE_LOST:
		on_lost(m);
		break;
	case SCHED_M_LEASE_RECALLED:
		on_recalled(m);
		break;
	case SCHED_M_ACTOR_CHANNEL:
		on_actor_channel(m);
		break;
	case SCHED_M_ACTOR_DENIED:
	case SCHED_M_ACTOR_OK:
		rt_actor_on_ctl(m);
		break;
	case SCHED_M_SHUTDOWN:
		PRISM_LOG_W("client", "the node is shutting down");
		if (rt.is_worker)
			_exit(0);
		rt_fail_queued(NULL, PRISM_E_PIPE);
		break;
	case SCHED_M_LEASE_ASSIGN:
	case SCHED_M_LEASE_REVOKE:
	case SCHED_M_ACTOR_HOST:
		if (rt.is_worker)
			rt_worker_on_ctl(m);
		break;
	default:
		PRISM_LOG_W("client", "unknown control message %u from the node", m->h.type);
	}
}

/* Up to max completions from one lease's done ring. */
static size_t drain_done(struct rt_lease *l, int max)
{
	static uint8_t *dbuf;
	size_t n = 0;
	if (!dbuf && !(dbuf = prism_aligned_alloc(64, SCHED_MSG_MAX + SCHED_SLOT)))
		return 0;
	for (int k = 0; k < max && l->state == LEASE_ACTIVE; k++) {
		/* (a completion may close the lease: a recalled one, when it was the last) */
		int len = sched_msg_recv(l->done, dbuf, SCHED_MSG_MAX + SCHED_SLOT);
		if (len <= 0)
			break;
		rt_on_done(l, (const struct sched_done_msg *)dbuf, (size_t)len);
		n++;
	}
	return n;
}

/* Take everything that has arrived: control messages, then completions. */
size_t rt_poll_once(void)
{
	union {
		struct sched_ctl_msg m;
		uint8_t raw[2 * SCHED_SLOT];
	} u;
	size_t n = 0;
	int len;
	while ((len = sched_msg_recv(rt.down, &u, sizeof(u))) > 0) {
		on_ctl(&u.m);
		n++;
	} /* Bounded per lease so a fast worker cannot keep us here forever. */
	size_t done = 0;
	for (uint32_t i = 0; i < rt.nactive; i++)
		done += drain_done(rt.active[i], 256);
	/* Tasks whose arguments became ready go now, and completions made room: tasks
	 * waiting here can go. */
	rt_launch_ready();
	if (done && rt_any_queued())
		rt_flush_queued();
	return n + done;
}

int rt_wait_and_poll(int64_t timeout_ns)
{
	size_t n = rt_poll_once();
	if (n)
		return (int)n;
	int rc = prism_ring_wait_any(rt.waitset, rt.nwait, rt.spin_ns, timeout_ns);
	if (rc < 0)
		return rc;
	return (int)rt_poll_once();
}

void rt_leases_maintain(void)
{
	/* Called after every submit and get, so it costs one cycle-counter read until a
	 * look is due: leases idle for LEASE_IDLE_NS need not go back sooner than a few
	 * milliseconds late. */
	uint64_t c = prism_cycles();
	if (c < rt.next_maintain)
		return;
	rt.next_maintain = c + prism_ns_to_cycles(LEASE_IDLE_NS / 16);
	leases_held_off();
	uint64_t now = prism_now_ns();
	/* From the end: returning a lease compacts rt.active behind the cursor only. */
	for (uint32_t i = rt.nactive; i-- > 0;) {
		struct rt_lease *l = rt.active[i];
		if (l->fl.count || l->actor)
			continue;
		if (rt.shapes[l->shape].queued.count || rt.shapes[l->shape].dl.count)
			continue;
		if (now - l->idle_since < LEASE_IDLE_NS)
			continue;
		/* Nothing in flight: the worker finds an empty ring when it drains. */
		if (rt_send_ctl(SCHED_M_LEASE_RETURN, l->idx, l->gen, 0) == 0) {
			lease_close(l);
			rt_rebuild_waitset();
		}
	}
}

/* ---- attach ---------------------------------------------------------------------------------- */

/* Read one frame, and the fd that came with it if any.  Blocking; the node answers an
 * attach at once, and a dead node closes the socket. */
static int recv_frame(int sock, uint8_t *buf, size_t cap, prism_wire_hdr *h,
		      const uint8_t **payload, int *fd)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = {.iov_base = buf, .iov_len = PRISM_WIRE_HDR_SIZE};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl.b,
			     .msg_controllen = sizeof(ctl.b)};
	*fd = -1;
	ssize_t got = recvmsg(sock, &msg, MSG_WAITALL | MSG_CMSG_CLOEXEC);
	if (got == 0)
		return PRISM_E_PIPE;
	if (got != PRISM_WIRE_HDR_SIZE)
		return got < 0 ? -errno : PRISM_E_PROTO;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(fd, CMSG_DATA(c), sizeof(int));
	int rc = prism_wire_decode(buf, PRISM_WIRE_HDR_SIZE,
				   (uint32_t)(cap - PRISM_WIRE_HDR_SIZE), h, payload);
	if (rc != PRISM_E_TRUNCATED && rc != 0)
		goto fail;
	if (h->len) {
		got = recv(sock, buf + PRISM_WIRE_HDR_SIZE, h->len, MSG_WAITALL);
		if (got != (ssize_t)h->len) {
			rc = PRISM_E_PIPE;
			goto fail;
		}
	}
	rc = prism_wire_decode(buf, PRISM_WIRE_HDR_SIZE + h->len,
			       (uint32_t)(cap - PRISM_WIRE_HDR_SIZE), h, payload);
	if (rc == 0)
		return 0;
fail:
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	return rc;
}

static int refused(const uint8_t *p, uint32_t len)
{
	prism_wire_reader r;
	uint32_t code = 0, mlen = 0;
	const char *msg = "";
	prism_wire_reader_init(&r, p, len);
	prism_wire_get_u32(&r, &code);
	prism_wire_get_str(&r, 512, &msg, &mlen);
	rt_set_error("the node refused: %.*s", (int)mlen, msg);
	return (int32_t)code < 0 ? (int32_t)code : PRISM_E_PROTO;
}

int rt_attach(const char *path, int kind, uint32_t wslot, uint32_t wgen)
{
	uint8_t buf[PRISM_WIRE_HDR_SIZE + 9000];
	char exe[PATH_MAX] = "", cwd[PATH_MAX] = "";
	int rc, segfd = -1;
	if (kind == SCHED_KIND_DRIVER) {
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n <= 0 || !getcwd(cwd, sizeof(cwd)))
			return -errno;
		exe[n] = '\0';
	}
	rt.sock = prism_unix_connect(path);
	if (rt.sock < 0) {
		rc = rt.sock;
		rt_set_error("cannot reach a node at %s: %s", path, prism_strerror(rc));
		return rc;
	}
	prism_wire_writer w;
	uint8_t p[9000];
	size_t len;
	prism_wire_writer_init(&w, p, sizeof(p));
	prism_wire_put_u32(&w, (uint32_t)kind);
	prism_wire_put_u32(&w, (uint32_t)getpid());
	prism_wire_put_u32(&w, wslot);
	prism_wire_put_u32(&w, wgen);
	prism_wire_put_str(&w, exe);
	prism_wire_put_str(&w, cwd);
	prism_wire_put_str(&w, rt.code_path);
	prism_wire_hdr h = {.type = SCHED_W_ATTACH};
	rc = prism_wire_writer_finish(&w, &len);
	h.len = (uint32_t)len;
	size_t flen;
	if (rc == 0)
		rc = prism_wire_encode(
			buf, sizeof(buf), &h, p,
			&flen); /* A node that refuses us (another uid) answers and closes before reading our
	 * request, so the send can fail while its reason waits in our socket: read the
	 * reply either way. */
	if (rc == 0 && send(rt.sock, buf, flen, MSG_NOSIGNAL) != (ssize_t)flen)
		rc = PRISM_E_PIPE;
	const uint8_t *payload;
	if (rc == 0 || rc == PRISM_E_PIPE) {
		int sent = rc;
		rc = recv_frame(rt.sock, buf, sizeof(buf), &h, &payload, &segfd);
		if (rc == 0 && sent && h.type != SCHED_W_ERROR)
			rc = sent;
	}
	if (rc == 0 && h.type == SCHED_W_ERROR)
		rc = refused(payload, h.len);
	else if (rc == 0 && (h.type != SCHED_W_ATTACH_OK || segfd < 0))
		rc = PRISM_E_PROTO;
	uint32_t slot = 0, gen = 0;
	uint64_t segsize = 0;
	if (rc == 0) {
		prism_wire_reader r;
		prism_wire_reader_init(&r, payload, h.len);
		prism_wire_get_u32(&r, &slot);
		prism_wire_get_u32(&r, &gen);
		prism_wire_get_u64(&r, &segsize);
		rc = prism_wire_reader_finish(&r);
	}
	if (rc == 0)
		rc = recv_frame(rt.sock, buf, sizeof(buf), &h, &payload, &rt.daemon_efd);
	if (rc == 0 && (h.type != SCHED_W_ATTACH_FD || rt.daemon_efd < 0))
		rc = PRISM_E_PROTO;
	if (rc == 0) {
		rc = prism_shm_attach(segfd, 0, &rt.seg);
		if (rc == 0)
			segfd = -1;
	}
	if (rc == 0) {
		rt.base = prism_shm_base(rt.seg);
		rt.hdr = rt.base;
		rc = sched_hdr_check(rt.hdr, prism_shm_size(rt.seg));
		if (rc == 0 && (slot >= SCHED_MAX_CLIENTS || prism_shm_size(rt.seg) != segsize))
			rc = PRISM_E_CORRUPT;
	}
	if (rc == 0) {
		rt.slot = slot;
		rt.gen = gen;
		rt.bell = sched_client_at(rt.base, slot)->bell;
		rt.inline_max = rt.hdr->inline_max;
		rc = prism_ring_attach_shared(sched_ctl_ring_at(rt.base, slot, 0),
					      rt.hdr->ctl_ring_bytes, rt.hdr->daemon_bell,
					      &rt.up_ring);
	}
	if (rc == 0)
		rc = objstore_attach(sched_seg_at(rt.base, rt.hdr->objstore_off),
				     rt.hdr->objstore_size, slot, &rt.os);
	if (rc == 0) {
		prism_ring_set_wake_fd(rt.up_ring, rt.daemon_efd);
		rc = prism_ring_attach_shared(sched_ctl_ring_at(rt.base, slot, 1),
					      rt.hdr->ctl_ring_bytes, rt.bell, &rt.down);
	}
	if (segfd >= 0)
		close(segfd);
	if (rc) {
		if (!last_error[0])
			rt_set_error("attaching to the node at %s failed: %s", path,
				     prism_strerror(rc));
		rt_detach();
		return rc;
	}
	rt_rebuild_waitset();
	return 0;
}

void rt_detach(void)
{
	rt_actor_fini();
	for (uint32_t i = 0; i < SCHED_MAX_LEASES; i++) {
		lease_close(&rt.leases[i]);
		fl_free(&rt.leases[i].fl);
	}
	for (int i = 0; i < RT_MAX_SHAPES; i++) {
		fl_free(&rt.shapes[i].queued);
		dlq_free(&rt.shapes[i].dl);
		rt.shapes[i] = (struct rt_shape){0};
	}
	rt.last_shape_set = false;
	rt.nshapes = 0;
	prism_ring_destroy(rt.up_ring);
	prism_ring_destroy(rt.down);
	rt.up_ring = rt.down = NULL;
	objstore_detach(rt.os);
	rt.os = NULL;
	prism_shm_destroy(rt.seg);
	rt.seg = NULL;
	rt.base = NULL;
	rt.hdr = NULL;
	if (rt.daemon_efd >= 0)
		close(rt.daemon_efd);
	if (rt.sock >= 0)
		close(rt.sock);
	rt.daemon_efd = rt.sock = -1;
	rt.nwait = 0;
	rt.nactive = 0;
}

/* ---- the embedded node ------------------------------------------------------------------------ */

static void node_signal(int sig)
{
	(void)sig;
	extern sched_node *prism__embedded_node;
	if (prism__embedded_node)
		sched_node_stop(prism__embedded_node);
}

sched_node *prism__embedded_node;

/* In the process started by start_embedded_node(): run the node and exit. */
static void run_embedded_node(const char *path)
{
	const char *fd_s = getenv("PRISM_NODE_READY_FD");
	int ready = fd_s ? atoi(fd_s) : -1;
	struct sched_node_opts o = {.socket_path = path, .exit_when_no_drivers = true};
	const char *v;
	if ((v = getenv("PRISM_NUM_WORKERS")))
		o.num_workers = (uint32_t)strtoul(v, NULL, 10);
	if ((v = getenv("PRISM_OBJECT_STORE_BYTES")))
		o.objstore_bytes = strtoull(v, NULL, 10);
	if ((v = getenv("PRISM_SPIN_NS")))
		o.spin_ns = strtoull(v, NULL, 10);
	o.resources = getenv("PRISM_NODE_RESOURCES");
	unsetenv("PRISM_EMBEDDED_NODE");
	/* Die with the driver, and stop cleanly (workers killed) on SIGTERM. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGTERM, node_signal);
	signal(SIGINT, SIG_IGN); /* ^C in the terminal is for the driver */
	signal(SIGPIPE, SIG_IGN);
	int rc = sched_node_create(&o, &prism__embedded_node);
	char byte = rc == 0 ? 'R' : 'E';
	if (ready >= 0) {
		if (write(ready, &byte, 1) != 1)
			rc = rc ? rc : -EPIPE;
		close(ready);
	}
	if (rc == 0)
		rc = sched_node_run(prism__embedded_node);
	/* No stop request may reach the node while it is freed. */
	signal(SIGTERM, SIG_IGN);
	sched_node_destroy(prism__embedded_node);
	prism__embedded_node = NULL;
	_exit(rc == 0 ? 0 : 1);
}

__attribute__((constructor)) static void maybe_node(void)
{
	const char *path = getenv("PRISM_EMBEDDED_NODE");
	if (path && *path)
		run_embedded_node(path);
}

static int start_embedded_node(const prism_opts *o, char *path, size_t len)
{
	char dir[PATH_MAX - 64], exe[PATH_MAX];
	int rc = sched_socket_dir(dir, sizeof(dir));
	if (rc) {
		rt_set_error("cannot make a private socket directory under /tmp: %s",
			     prism_strerror(rc));
		return rc;
	}
	snprintf(path, len, "%s/embedded-%d.sock", dir, (int)getpid());
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -errno;
	exe[n] = '\0';
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) != 0)
		return -errno;
	/* The node inherits the write end (and only that): it writes one byte when it
	 * listens.  prism is used from one thread, so no other fork can catch it open. */
	if (fcntl(pipefd[1], F_SETFD, 0) != 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return -errno;
	}
	/* The node's resources, checked here so prism_init() can say what is wrong. */
	char v_res[1024], err[256];
	struct sched_res scratch[SCHED_MAX_RES];
	uint32_t nscratch;
	sched_res_defaults(scratch, &nscratch, 1, o->num_gpus);
	int n_res = snprintf(v_res, sizeof(v_res), "PRISM_NODE_RESOURCES=GPU=%u%s%s",
			     o->num_gpus, o->resources && *o->resources ? "," : "",
			     o->resources ? o->resources : "");
	if (n_res < 0 || (size_t)n_res >= sizeof(v_res)) {
		rt_set_error("prism_opts.resources is too long");
		return -ENAMETOOLONG;
	}
	if (o->resources &&
	    (rc = sched_res_parse(o->resources, scratch, &nscratch, err, sizeof(err))) != 0) {
		rt_set_error("prism_opts.resources: %s", err);
		return rc;
	}
	char v_node[PATH_MAX + 32], v_fd[64], v_workers[64], v_store[64], v_spin[64];
	snprintf(v_node, sizeof(v_node), "PRISM_EMBEDDED_NODE=%s", path);
	snprintf(v_fd, sizeof(v_fd), "PRISM_NODE_READY_FD=%d", pipefd[1]);
	snprintf(v_workers, sizeof(v_workers), "PRISM_NUM_WORKERS=%u", o->num_workers);
	snprintf(v_store, sizeof(v_store), "PRISM_OBJECT_STORE_BYTES=%llu",
		 (unsigned long long)o->object_store_bytes);
	snprintf(v_spin, sizeof(v_spin), "PRISM_SPIN_NS=%llu", (unsigned long long)rt.spin_ns);
	extern char **environ;
	size_t ne = 0;
	while (environ[ne])
		ne++;
	char **env = prism_calloc(ne + 7, sizeof(*env));
	if (!env) {
		close(pipefd[0]);
		close(pipefd[1]);
		return -ENOMEM;
	}
	size_t k = 0;
	for (size_t i = 0; i < ne; i++)
		if (sched_env_inherited(environ[i]))
			env[k++] = environ[i];
	env[k++] = v_node;
	env[k++] = v_fd;
	env[k++] = v_workers;
	env[k++] = v_store;
	env[k++] = v_spin;
	env[k++] = v_res;
	char *argv[] = {exe, NULL};
	pid_t pid;
	rc = posix_spawn(&pid, exe, NULL, NULL, argv, env);
	prism_free(env);
	close(pipefd[1]);
	if (rc != 0) {
		close(pipefd[0]);
		rt_set_error("cannot start the embedded node from %s: %s", exe, strerror(rc));
		return -rc;
	}
	rt.node_pid = pid;
	struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};
	char byte = 0;
	int pr = poll(&pfd, 1, NODE_START_TIMEOUT_MS);
	if (pr == 1 && read(pipefd[0], &byte, 1) == 1 && byte == 'R') {
		close(pipefd[0]);
		return 0;
	}
	close(pipefd[0]);
	rt_set_error("the embedded node did not start (see its log above)");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	rt.node_pid = 0;
	return pr == 0 ? PRISM_E_TIMEOUT : PRISM_E_PIPE;
}

static void stop_embedded_node(void)
{
	if (!rt.node_pid)
		return;
	/* It stops by itself once its last driver has detached; wait a little for that,
	 * then insist. */
	for (int i = 0; i < 300; i++) {
		if (waitpid(rt.node_pid, NULL, WNOHANG) == rt.node_pid) {
			rt.node_pid = 0;
			return;
		}
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	kill(rt.node_pid, SIGTERM);
	for (int i = 0; i < 200; i++) {
		if (waitpid(rt.node_pid, NULL, WNOHANG) == rt.node_pid) {
			rt.node_pid = 0;
			return;
		}
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	kill(rt.node_pid, SIGKILL);
	waitpid(rt.node_pid, NULL, 0);
	rt.node_pid = 0;
}

/* ---- public ----------------------------------------------------------------------------------- */

int prism_init(const prism_opts *opts)
{
	prism_opts o = {.log_level = -1};
	char path[PATH_MAX];
	int rc;
	/* A worker of a program whose functions all live on the code path gets here
	 * without PRISM_REMOTE's constructor: serve tasks, never return to main(). */
	prism__worker_entry();
	if (opts)
		o = *opts;
	last_error[0] = '\0';
	if (rt.up) {
		rt_set_error("prism_init() was already called");
		return -EALREADY;
	}
	if (o.log_level >= 0)
		prism_log_set_level(o.log_level);
	const char *code_path = o.code_path ? o.code_path : getenv("PRISM_CODE_PATH");
	if (code_path && strlen(code_path) >= sizeof(rt.code_path)) {
		rt_set_error("the code path is longer than %zu characters",
			     sizeof(rt.code_path) - 1);
		return -ENAMETOOLONG;
	}
	snprintf(rt.code_path, sizeof(rt.code_path), "%s", code_path ? code_path : "");
	rc = rt_load_code_path(code_path);
	if (rc)
		return rc;
	rt.spin_ns = o.spin_ns ? o.spin_ns : DEFAULT_SPIN_NS;
	rc = obj_table_init();
	if (rc)
		return rc;
	const char *addr = o.address ? o.address : getenv("PRISM_ADDRESS");
	if (addr && strcmp(addr, "auto") == 0) {
		/* The node `prism start` runs by default, like ray.init(address="auto"). */
		rc = sched_default_socket(path, sizeof(path));
		if (rc)
			goto fail;
	} else if (addr && *addr) {
		snprintf(path, sizeof(path), "%s", addr);
	} else {
		rc = start_embedded_node(&o, path, sizeof(path));
		if (rc)
			goto fail;
	}
	rc = rt_attach(path, SCHED_KIND_DRIVER, UINT32_MAX, 0);
	if (rc)
		goto fail;
	snprintf(rt.address, sizeof(rt.address), "%s", path);
	rt.up = true;
	return 0;
fail:
	stop_embedded_node();
	obj_table_fini();
	return rc;
}

const char *prism_node_address(void)
{
	return rt.up ? rt.address : NULL;
}

void prism_shutdown(void)
{
	if (!rt.up && !rt.node_pid)
		return;
	rt_enter();
	rt_progress_stop();
	rt.up = false;
	rt_waits_forget();
	obj_table_fini();
	rt_detach();
	stop_embedded_node();
	rt_leave();
}
