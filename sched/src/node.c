/* node.c — the node daemon's life, its socket and the attach protocol; see sched/node.h.
 * Worker processes live in pool.c, control messages and leases in ctl.c. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/sock.h"
#include "base/wire.h"
#include "node_int.h"

#define DEFAULT_OBJSTORE (256ull << 20)
#define DEFAULT_SPIN_NS (50 * PRISM_NS_PER_US)
#define DEFAULT_INLINE_MAX (64u * 1024)
#define DEFAULT_IDLE_WORKER_NS (60 * PRISM_NS_PER_SEC)
#define TICK_NS (100 * PRISM_NS_PER_MS)

static uint32_t cpus_allowed(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (uint32_t)CPU_COUNT(&set);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (uint32_t)n : 1;
}

static int apply_defaults(struct sched_node *n)
{
	struct sched_node_opts *o = &n->o;
	if (!o->objstore_bytes)
		o->objstore_bytes = DEFAULT_OBJSTORE;
	if (!o->ncpus)
		o->ncpus = cpus_allowed();
	sched_res_defaults(n->res, &n->nres, o->ncpus, o->num_gpus);
	if (o->resources) {
		char err[256];
		int rc = sched_res_parse(o->resources, n->res, &n->nres, err, sizeof(err));
		if (rc) {
			PRISM_LOG_E("node", "%s", err);
			return rc;
		}
	}
	if (n->res[SCHED_RES_CPU].total_milli < 1000) {
		PRISM_LOG_E("node", "the node needs at least one CPU");
		return -EINVAL;
	}
	o->ncpus = (uint32_t)(n->res[SCHED_RES_CPU].total_milli / 1000);
	o->resources = NULL; /* copied; the caller's string need not outlive us */
	if (!o->num_workers)
		o->num_workers = o->ncpus;
	if (!o->max_workers)
		o->max_workers = 4 * o->ncpus;
	/* Leave room in the client table for drivers. */
	if (o->max_workers > SCHED_MAX_CLIENTS - 8)
		o->max_workers = SCHED_MAX_CLIENTS - 8;
	if (o->num_workers > o->max_workers)
		o->num_workers = o->max_workers;
	if (!o->spin_ns)
		o->spin_ns = DEFAULT_SPIN_NS;
	if (!o->inline_max)
		o->inline_max = DEFAULT_INLINE_MAX;
	if (!o->idle_worker_ns)
		o->idle_worker_ns = DEFAULT_IDLE_WORKER_NS;
	return 0;
}

/* ---- segment ------------------------------------------------------------------------ */

/* One table entry per 4 KiB of arena, within [4096, 1M]: small objects are what fills a
 * table first, and 256 bytes of table per entry stays under 7% of the arena. */
static uint32_t max_objects(uint64_t arena)
{
	uint64_t n = arena / 4096;
	return (uint32_t)(n < 4096 ? 4096 : n > (1u << 20) ? (1u << 20) : n);
}

static int format_segment(struct sched_node *n)
{
	struct sched_layout l;
	uint32_t maxobj = max_objects(n->o.objstore_bytes);
	size_t region = objstore_region_size(n->o.objstore_bytes, maxobj);
	if (region == 0)
		return -EINVAL;
	int rc = sched_layout_compute(region, &l);
	if (rc)
		return rc;
	rc = prism_shm_create("prism-node", l.seg_size, 0, &n->seg);
	if (rc) {
		PRISM_LOG_E("node", "cannot create a %llu-byte node segment: %s",
			    (unsigned long long)l.seg_size, prism_strerror(rc));
		return rc;
	}
	n->base = prism_shm_base(n->seg);
	struct sched_node_hdr *h = n->hdr = n->base;
	h->seg_size = l.seg_size;
	h->max_clients = SCHED_MAX_CLIENTS;
	h->max_leases = SCHED_MAX_LEASES;
	h->ctl_slots = SCHED_CTL_SLOTS;
	h->lease_slots = SCHED_LEASE_SLOTS;
	h->clients_off = l.clients_off;
	h->ctl_off = l.ctl_off;
	h->ctl_ring_bytes = l.ctl_ring_bytes;
	h->leases_off = l.leases_off;
	h->lease_rings_off = l.lease_rings_off;
	h->lease_ring_bytes = l.lease_ring_bytes;
	h->objstore_off = l.objstore_off;
	h->objstore_size = l.objstore_size;
	h->inline_max = n->o.inline_max;
	memcpy(h->res, n->res, sizeof(h->res));
	for (uint32_t r = 0; r < SCHED_MAX_RES; r++)
		h->res[r].max_milli = h->res[r].total_milli;
	h->nres = n->nres;
	h->ncpus = n->o.ncpus;
	h->daemon_pid = (int32_t)getpid();
	prism_doorbell_init(h->daemon_bell);
	void *store = sched_seg_at(n->base, l.objstore_off);
	rc = objstore_format(store, l.objstore_size, n->o.objstore_bytes, maxobj);
	if (rc == 0)
		rc = objstore_attach(store, l.objstore_size, SCHED_DAEMON_SLOT, &n->os);
	if (rc) {
		PRISM_LOG_E("node", "cannot format the object store: %s", prism_strerror(rc));
		return rc;
	}
	h->version = SCHED_SEG_VERSION;
	__atomic_store_n(&h->magic, SCHED_SEG_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

/* Format a client's two control rings and open the daemon's ends. */
int node__attach_rings(struct sched_node *n, uint32_t slot)
{
	struct sched_client *c = node__client(n, slot);
	struct client_local *cl = &n->cl[slot];
	prism_ring *tmp = NULL;
	int rc;

	prism_doorbell_init(c->bell);
	rc = prism_ring_create_shared(sched_ctl_ring_at(n->base, slot, 0),
				      n->hdr->ctl_ring_bytes, "up", SCHED_SLOT, SCHED_CTL_SLOTS,
				      n->hdr->daemon_bell, &cl->up);
	if (rc)
		return rc;
	rc = prism_ring_create_shared(sched_ctl_ring_at(n->base, slot, 1),
				      n->hdr->ctl_ring_bytes, "down", SCHED_SLOT,
				      SCHED_CTL_SLOTS, c->bell, &tmp);
	if (rc) {
		prism_ring_destroy(cl->up);
		cl->up = NULL;
		return rc;
	}
	cl->down = tmp;
	return 0;
}

/* ---- connections ---------------------------------------------------------------------- */

static void conn_free(void *arg)
{
	struct conn *c = arg;
	if (c->prev)
		c->prev->next = c->next;
	else
		c->node->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	prism_free(c);
}

static void conn_close(struct conn *c)
{
	if (c->fd < 0)
		return;
	close(c->fd);
	c->fd = -1;
	prism_loop_io_close(c->io, conn_free, c);
}

static int send_frame(int fd, uint16_t type, const void *payload, size_t len)
{
	uint8_t buf[PRISM_WIRE_HDR_SIZE + SCHED_WIRE_MAX_PAYLOAD];
	prism_wire_hdr h = {.type = type, .len = (uint32_t)len};
	size_t flen;
	int rc = prism_wire_encode(buf, sizeof(buf), &h, payload, &flen);
	if (rc)
		return rc;
	/* Replies are small and the socket buffer is empty when we answer, so a short
	 * or refused write means the peer is gone or broken: close it. */
	ssize_t w = send(fd, buf, flen, MSG_NOSIGNAL | MSG_DONTWAIT);
	return w == (ssize_t)flen ? 0 : PRISM_E_PIPE;
}

static void send_error(int fd, int code, const char *msg)
{
	uint8_t p[512];
	prism_wire_writer w;
	prism_wire_writer_init(&w, p, sizeof(p));
	prism_wire_put_u32(&w, (uint32_t)code);
	prism_wire_put_str(&w, msg);
	size_t len = 0;
	if (prism_wire_writer_finish(&w, &len) == 0)
		send_frame(fd, SCHED_W_ERROR, p, len);
}

static int reserve_slot(struct sched_node *n, uint32_t *slot)
{
	for (uint32_t i = 0; i < SCHED_DAEMON_SLOT; i++) {
		struct sched_client *c = node__client(n, i);
		if (atomic_load(&c->state) == SCHED_CLIENT_FREE && n->cl[i].kind == 0) {
			*slot = i;
			return 0;
		}
	}
	return -ENOSPC;
}

static int reply_attached(struct sched_node *n, struct conn *c, uint32_t slot)
{
	struct sched_client *sc = node__client(n, slot);
	uint8_t p[64];
	prism_wire_writer w;
	size_t len = 0;
	prism_wire_writer_init(&w, p, sizeof(p));
	prism_wire_put_u32(&w, slot);
	prism_wire_put_u32(&w, sc->generation);
	prism_wire_put_u64(&w, prism_shm_size(n->seg));
	int rc = prism_wire_writer_finish(&w, &len);
	if (rc)
		return rc;
	/* The segment travels with ATTACH_OK, the daemon's eventfd with ATTACH_FD: one fd
	 * per message keeps the receiving side simple. */
	uint8_t frame[PRISM_WIRE_HDR_SIZE + 64];
	size_t flen;
	prism_wire_hdr h = {.type = SCHED_W_ATTACH_OK, .len = (uint32_t)len};
	rc = prism_wire_encode(frame, sizeof(frame), &h, p, &flen);
	if (rc == 0)
		rc = prism_shm_send_fd(c->fd, prism_shm_fd(n->seg), frame, flen);
	if (rc == 0) {
		prism_wire_hdr h2 = {.type = SCHED_W_ATTACH_FD};
		rc = prism_wire_encode(frame, sizeof(frame), &h2, NULL, &flen);
		if (rc == 0)
			rc = prism_shm_send_fd(c->fd, n->wake_fd, frame, flen);
	}
	return rc;
}

/* ATTACH {u32 kind, i32 pid, u32 slot, u32 gen, str exe, str cwd} */
static void handle_attach(struct sched_node *n, struct conn *c, const uint8_t *p, uint32_t len)
{
	prism_wire_reader r;
	uint32_t kind, pid, wslot, wgen, exe_len, cwd_len, cp_len;
	const char *exe, *cwd, *cp;
	prism_wire_reader_init(&r, p, len);
	prism_wire_get_u32(&r, &kind);
	prism_wire_get_u32(&r, &pid);
	prism_wire_get_u32(&r, &wslot);
	prism_wire_get_u32(&r, &wgen);
	prism_wire_get_str(&r, 4096, &exe, &exe_len);
	prism_wire_get_str(&r, 4096, &cwd, &cwd_len);
	prism_wire_get_str(&r, 4095, &cp, &cp_len);
	if (prism_wire_reader_finish(&r) != 0 || c->slot >= 0 ||
	    (kind != SCHED_KIND_DRIVER && kind != SCHED_KIND_WORKER)) {
		send_error(c->fd, PRISM_E_PROTO, "malformed ATTACH");
		conn_close(c);
		return;
	}
	uint32_t slot;
	int rc = 0;
	if (kind == SCHED_KIND_WORKER) {
		/* A worker must claim the slot reserved for it when it was spawned. */
		slot = wslot;
		if (slot >= SCHED_MAX_CLIENTS || n->cl[slot].kind != SCHED_KIND_WORKER ||
		    atomic_load(&node__client(n, slot)->state) != SCHED_CLIENT_RESERVED ||
		    node__client(n, slot)->generation != wgen ||
		    n->cl[slot].pid != (pid_t)pid) {
			send_error(c->fd, -EACCES,
				   "no worker slot was reserved for this process");
			conn_close(c);
			return;
		}
	} else {
		char exe_s[4097], cwd_s[4097], cp_s[4096];
		memcpy(exe_s, exe, exe_len);
		exe_s[exe_len] = '\0';
		memcpy(cwd_s, cwd, cwd_len);
		cwd_s[cwd_len] = '\0';
		memcpy(cp_s, cp, cp_len);
		cp_s[cp_len] = '\0';
		rc = reserve_slot(n, &slot);
		if (rc) {
			send_error(c->fd, rc, "the node's client table is full");
			conn_close(c);
			return;
		}
		int code = pool__code_for(n, (pid_t)pid, exe_s, cwd_s, cp_s);
		if (code < 0) {
			send_error(c->fd, code, "cannot record the driver's program");
			conn_close(c);
			return;
		}
		struct sched_client *sc = node__client(n, slot);
		sc->generation++;
		sc->kind = SCHED_KIND_DRIVER;
		sc->pid = (int32_t)pid;
		sc->job = slot;
		sc->tasks_run = sc->tasks_failed = 0;
		n->cl[slot] = (struct client_local){.kind = SCHED_KIND_DRIVER,
						    .code = code,
						    .pid = (pid_t)pid,
						    .lease = -1};
		n->codes[code].drivers++;
		n->had_driver = true;
	}
	rc = node__attach_rings(n, slot);
	if (rc == 0) {
		n->cl[slot].conn = c;
		c->slot = (int)slot;
		if (kind == SCHED_KIND_WORKER) {
			n->codes[n->cl[slot].code].starting--;
			n->codes[n->cl[slot].code].start_failures = 0;
		}
		atomic_store(&node__client(n, slot)->state, SCHED_CLIENT_ATTACHED);
		rc = reply_attached(n, c, slot);
	}
	if (rc) {
		PRISM_LOG_W("node", "attach of pid %u failed: %s", pid, prism_strerror(rc));
		if (c->slot >= 0)
			node__client_gone(n, slot, "attach failed");
		else
			conn_close(c);
		return;
	}
	PRISM_LOG_I("node", "%s pid %u attached as client %u",
		    kind == SCHED_KIND_DRIVER ? "driver" : "worker", pid, slot);
	if (kind == SCHED_KIND_DRIVER) {
		actors__fence_client(n, slot); /* off the real-time actors' CPUs */
		pool__ensure(n, n->cl[slot].code);
	}
	ctl__dispatch(n);
}

static void handle_frame(struct sched_node *n, struct conn *c, const prism_wire_hdr *h,
			 const uint8_t *p)
{
	char text[8192];
	switch (h->type) {
	case SCHED_W_ATTACH:
		handle_attach(n, c, p, h->len);
		break;
	case SCHED_W_STATUS:
		sched_node_status(n, text, sizeof(text));
		send_frame(c->fd, SCHED_W_STATUS_REPLY, text, strlen(text));
		break;
	case SCHED_W_STOP:
		send_frame(c->fd, SCHED_W_STOP_OK, NULL, 0);
		PRISM_LOG_I("node", "stop requested over the socket");
		sched_node_stop(n);
		break;
	default:
		send_error(c->fd, PRISM_E_PROTO, "unknown request type");
		conn_close(c);
	}
}

static void conn_gone(struct sched_node *n, struct conn *c)
{
	if (c->slot >= 0)
		node__client_gone(n, (uint32_t)c->slot, "its connection closed");
	else
		conn_close(c);
}

static void on_conn(prism_loop_io *io, int status, unsigned events, void *arg)
{
	struct conn *c = arg;
	struct sched_node *n = c->node;
	(void)io;
	if (status < 0 || (events & PRISM_LOOP_ERROR)) {
		conn_gone(n, c);
		return;
	}
	for (;;) {
		if (c->len == sizeof(c->buf)) {
			conn_gone(n, c); /* a frame larger than any request: not a client */
			return;
		}
		ssize_t got =
			recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_DONTWAIT);
		if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
			conn_gone(n, c);
			return;
		}
		if (got < 0)
			break;
		c->len += (size_t)got;
		size_t off = 0;
		while (c->fd >= 0) {
			prism_wire_hdr h;
			const uint8_t *payload;
			int rc = prism_wire_decode(c->buf + off, c->len - off,
						   SCHED_WIRE_MAX_PAYLOAD, &h, &payload);
			if (rc == PRISM_E_TRUNCATED)
				break;
			if (rc) {
				send_error(c->fd, rc, prism_strerror(rc));
				conn_gone(n, c);
				return;
			}
			handle_frame(n, c, &h, payload);
			off += prism_wire_frame_len(&h);
		}
		if (c->fd < 0)
			return;
		memmove(c->buf, c->buf + off, c->len - off);
		c->len -= off;
	}
	if (events & PRISM_LOOP_HUP)
		conn_gone(n, c);
}

static void on_listen(prism_loop_io *io, int status, unsigned events, void *arg)
{
	struct sched_node *n = arg;
	(void)io;
	(void)events;
	if (status < 0)
		return;
	for (;;) {
		int fd = accept4(n->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		/* DESIGN.md section 9: only processes of the daemon's own user may talk to
		 * it; everyone else is refused before a byte of theirs is read. */
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 ||
		    cred.uid != geteuid()) {
			send_error(fd, -EACCES, "refused: the client runs as another user");
			PRISM_LOG_W("node", "refused a connection from uid %u",
				    (unsigned)cred.uid);
			close(fd);
			continue;
		}
		struct conn *c = prism_calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->node = n;
		c->fd = fd;
		c->slot = -1;
		if (prism_loop_io_create(n->loop, fd, on_conn, c, &c->io) != 0 ||
		    prism_loop_io_start(c->io, PRISM_LOOP_READABLE) != 0) {
			if (c->io)
				prism_loop_io_close(c->io, NULL, NULL);
			close(fd);
			prism_free(c);
			continue;
		}
		c->next = n->conns;
		if (n->conns)
			n->conns->prev = c;
		n->conns = c;
	}
}

static int listen_on(struct sched_node *n)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (strlen(n->socket_path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, n->socket_path);
	int rc = prism_fault_point();
	if (rc)
		return rc;
	n->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (n->listen_fd < 0)
		return -errno;
	/* A socket file left by a daemon that died is in the way; one that answers is a
	 * live daemon, and taking its path would orphan it. */
	int probe = prism_unix_connect(n->socket_path);
	if (probe >= 0) {
		close(probe);
		return -EADDRINUSE;
	}
	unlink(n->socket_path);
	if (bind(n->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
	    listen(n->listen_fd, 128) != 0)
		return -errno;
	chmod(n->socket_path, 0700);
	rc = prism_loop_io_create(n->loop, n->listen_fd, on_listen, n, &n->listen_io);
	if (rc == 0)
		rc = prism_loop_io_start(n->listen_io, PRISM_LOOP_READABLE);
	return rc;
}

/* ---- clients leaving ---------------------------------------------------------------- */

void node__client_gone(struct sched_node *n, uint32_t slot, const char *why)
{
	struct client_local *cl = &n->cl[slot];
	struct sched_client *sc = node__client(n, slot);
	if (cl->kind == 0)
		return;
	PRISM_LOG_I("node", "client %u (%s pid %d) gone: %s", slot,
		    cl->kind == SCHED_KIND_DRIVER ? "driver" : "worker", (int)cl->pid, why);
	atomic_store(&sc->state, SCHED_CLIENT_DEAD);
	ctl__client_gone(n, slot);
	/* What it pinned is unpinned and what it was still writing is dropped, before the
	 * slot can go to another process. */
	int orc = objstore_release_client(n->os, slot);
	if (orc)
		PRISM_LOG_E("node", "cannot release client %u's objects: %s", slot,
			    prism_strerror(orc));
	if (cl->conn) {
		cl->conn->slot = -1;
		conn_close(cl->conn);
		cl->conn = NULL;
	}
	if (cl->kind == SCHED_KIND_WORKER) {
		/* Its connection or its process ended: either way it is finished.  The pid
		 * watch reaps it and updates the pool. */
		if (cl->pid > 0)
			kill(cl->pid, SIGKILL);
		if (!cl->pidw) {
			n->codes[cl->code].workers--;
			pool__ensure(n, cl->code);
		}
	} else {
		pool__code_release(n, cl->code);
	}
	prism_ring_destroy(cl->up);
	prism_ring_destroy(cl->down);
	prism_free(cl->backlog);
	bool keep_watch = cl->pidw != NULL;
	prism_loop_pid *pidw = cl->pidw;
	pid_t pid = cl->pid;
	int code = cl->code;
	memset(cl, 0, sizeof(*cl));
	cl->lease = -1;
	if (keep_watch) {
		/* The worker process may still be exiting: keep the slot out of use until
		 * its pid watch fires (pool.c frees it there). */
		cl->kind = SCHED_KIND_WORKER;
		cl->pidw = pidw;
		cl->pid = pid;
		cl->code = code;
		return;
	}
	atomic_store(&sc->state, SCHED_CLIENT_FREE);
	if (n->o.exit_when_no_drivers && n->had_driver) {
		bool any = false;
		for (uint32_t i = 0; i < SCHED_MAX_CLIENTS; i++)
			any |= n->cl[i].kind == SCHED_KIND_DRIVER;
		if (!any)
			sched_node_stop(n);
	}
}

/* ---- housekeeping -------------------------------------------------------------------- */

static void on_tick(prism_loop_timer *t, void *arg)
{
	struct sched_node *n = arg;
	(void)t;
	if (n->stop_requested)
		prism_loop_stop(n->loop);
	pool__reap_idle(n);
	pool__reap_surplus(n);
	ctl__flush_backlogs(n);
	actors__tick(n);
	ctl__dispatch(n);
}

/* ---- public ----------------------------------------------------------------------------- */

int sched_node_create(const struct sched_node_opts *opts, sched_node **out)
{
	int rc;
	if (!opts || !opts->socket_path || !out)
		return -EINVAL;
	struct sched_node *n = prism_calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->o = *opts;
	n->listen_fd = -1;
	rc = apply_defaults(n);
	if (rc) {
		prism_free(n);
		return rc;
	}
	n->started_ns = prism_now_ns();
	if (actors__init(n) != 0) {
		prism_free(n);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < SCHED_MAX_CLIENTS; i++)
		n->cl[i].lease = -1;
	n->socket_path = prism_strdup(opts->socket_path);
	if (!n->socket_path) {
		rc = -ENOMEM;
		goto fail;
	}
	n->o.socket_path = n->socket_path;
	rc = format_segment(n);
	if (rc)
		goto fail;
	rc = prism_loop_create(NULL, &n->loop);
	if (rc)
		goto fail;
	rc = prism_loop_wake_fd(n->loop, &n->wake_fd);
	if (rc)
		goto fail;
	rc = prism_loop_work_add(n->loop, ctl__drain, n, &n->work);
	if (rc)
		goto fail;
	rc = prism_loop_hook_add(n->loop, PRISM_LOOP_HOOK_BEFORE_SLEEP, ctl__before_sleep, n,
				 &n->sleep_hook);
	if (rc)
		goto fail;
	rc = prism_loop_timer_create(n->loop, on_tick, n, &n->tick);
	if (rc)
		goto fail;
	prism_loop_timer_start(n->tick, TICK_NS, TICK_NS);
	rc = listen_on(n);
	if (rc) {
		PRISM_LOG_E("node", "cannot listen on %s: %s", n->socket_path,
			    prism_strerror(rc));
		goto fail;
	}
	rc = cluster__start(n);
	if (rc)
		goto fail;
	*out = n;
	return 0;
fail:
	sched_node_destroy(n);
	return rc;
}

int sched_node_run(sched_node *n)
{
	while (!n->stop_requested) {
		int rc = prism_loop_run(n->loop, PRISM_LOOP_RUN_ONCE);
		if (rc < 0)
			return rc;
	}
	return n->fatal;
}

void sched_node_stop(sched_node *n)
{
	n->stop_requested = 1;
	prism_loop_wake(n->loop);
}

void sched_node_destroy(sched_node *n)
{
	if (!n)
		return;
	for (uint32_t i = 0; i < SCHED_MAX_CLIENTS; i++) {
		struct client_local *cl = &n->cl[i];
		if (cl->kind == SCHED_KIND_WORKER && cl->pid > 0)
			kill(cl->pid, SIGKILL);
		if (cl->kind) {
			struct sched_ctl_msg m = {
				.h = {.len = sizeof(m), .type = SCHED_M_SHUTDOWN, .nslots = 1}};
			if (cl->down)
				sched_msg_send(cl->down, &m.h);
		}
		prism_ring_destroy(cl->up);
		prism_ring_destroy(cl->down);
		prism_free(cl->backlog);
	}
	/* Every connection still open (clients', and a CLI's, such as the `prism stop`
	 * that got us here) closes; the loop's destroy then frees them. */
	for (struct conn *c = n->conns; c; c = c->next)
		conn_close(c);
	/* Reap what we killed so no zombie outlives the node. */
	for (uint32_t i = 0; i < SCHED_MAX_CLIENTS; i++)
		if (n->cl[i].kind == SCHED_KIND_WORKER && n->cl[i].pid > 0)
			waitpid(n->cl[i].pid, NULL, 0);
	prism_loop_destroy(n->loop);
	cluster__stop(n);
	if (n->listen_fd >= 0) {
		close(n->listen_fd);
		unlink(n->socket_path);
	}
	pool__free_codes(n);
	prism_free(n->reqs);
	actors__free(n);
	objstore_detach(n->os);
	prism_shm_destroy(n->seg);
	prism_free(n->socket_path);
	prism_free(n);
}

void sched_node_status(sched_node *n, char *buf, size_t len)
{
	size_t off = 0;
	uint32_t workers = 0, busy = 0, drivers = 0;
	uint64_t tasks = 0, failed = 0;
#define OUT(...)                                                                    \
	do {                                                                        \
		if (off < len)                                                      \
			off += (size_t)snprintf(buf + off, len - off, __VA_ARGS__); \
	} while (0)
	for (uint32_t i = 0; i < SCHED_MAX_CLIENTS; i++) {
		struct client_local *cl = &n->cl[i];
		if (cl->kind == SCHED_KIND_WORKER)
			workers++, busy += cl->lease >= 0;
		if (cl->kind == SCHED_KIND_DRIVER)
			drivers++;
		if (cl->kind) {
			tasks += node__client(n, i)->tasks_run;
			failed += node__client(n, i)->tasks_failed;
		}
	}
	OUT("prism node: pid %d, socket %s, up %.1f s\n", (int)getpid(), n->socket_path,
	    (double)(prism_now_ns() - n->started_ns) / 1e9);
	OUT("resources (leased / total):");
	for (uint32_t r = 0; r < n->nres; r++)
		OUT(" %s %.3g/%.3g", n->hdr->res[r].name, n->res_used[r] / 1000.0,
		    n->hdr->res[r].total_milli / 1000.0);
	OUT("\n");
	uint32_t starting = 0;
	for (uint32_t c = 0; c < NODE_MAX_CODES; c++)
		starting += n->codes[c].starting;
	OUT("drivers: %u   workers: %u (%u busy, %u idle, %u starting; at most %u)   spawned "
	    "%llu, died %llu\n",
	    drivers, workers, busy, workers - busy, starting, n->o.max_workers,
	    (unsigned long long)n->workers_spawned, (unsigned long long)n->workers_died);
	OUT("tasks run: %llu (failed %llu)\n", (unsigned long long)tasks,
	    (unsigned long long)failed);
	ctl__status_leases(n, buf, len, &off);
	actors__status(n, buf, len, &off);
	cluster__status(n, buf, len, &off);
	remote__status(n, buf, len, &off);
	struct objstore_stats os_st;
	if (n->os && objstore_get_stats(n->os, &os_st) == 0)
		OUT("object store: %.1f MiB used of %.1f MiB, %llu objects (table holds %llu), "
		    "%llu evicted\n",
		    (double)os_st.used_bytes / 1048576.0, (double)os_st.arena_bytes / 1048576.0,
		    (unsigned long long)os_st.objects, (unsigned long long)os_st.max_objects,
		    (unsigned long long)os_st.evictions);
	/* Per client: the lease it serves (a worker), whether it is blocked in a get, the
	 * leases it holds as a submitter (busy of them) and its lease requests waiting. */
	uint32_t held[SCHED_MAX_CLIENTS] = {0}, held_busy[SCHED_MAX_CLIENTS] = {0};
	uint32_t asks[SCHED_MAX_CLIENTS] = {0};
	for (uint32_t l = 0; l < SCHED_MAX_LEASES; l++) {
		const struct sched_lease *ls = sched_lease_at(n->base, l);
		if (atomic_load(&ls->state) == SCHED_LEASE_FREE ||
		    ls->submitter >= SCHED_MAX_CLIENTS)
			continue;
		held[ls->submitter]++;
		held_busy[ls->submitter] += atomic_load(&ls->busy) != 0;
	}
	for (uint32_t q = 0; q < n->nreqs; q++)
		if (n->reqs[q].client < SCHED_MAX_CLIENTS)
			asks[n->reqs[q].client]++;
	OUT("clients:\n  slot  kind    pid      state     lease  blocked  holds(busy)  asks  "
	    "asleep  tasks_run\n");
	for (uint32_t i = 0; i < SCHED_MAX_CLIENTS; i++) {
		struct client_local *cl = &n->cl[i];
		if (!cl->kind)
			continue;
		uint32_t st = atomic_load(&node__client(n, i)->state);
		static const char *const states[] = {"free", "starting", "attached", "dead"};
		bool asleep = prism_doorbell_asleep(node__client(n, i)->bell, NULL, NULL);
		OUT("  %-5u %-7s %-8d %-9s %-6d %-8s %4u(%u)%*s %-5u %-7s %llu\n", i,
		    cl->kind == SCHED_KIND_DRIVER ? "driver" : "worker", (int)cl->pid,
		    st < 4 ? states[st] : "?", cl->lease, cl->blocked ? "yes" : "-", held[i],
		    held_busy[i], held_busy[i] >= 10 ? 4 : 5, "", asks[i], asleep ? "yes" : "-",
		    (unsigned long long)node__client(n, i)->tasks_run);
	}
#undef OUT
	if (len)
		buf[off < len ? off : len - 1] = '\0';
}
