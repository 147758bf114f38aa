/* verbs.c — the rdev device table over a real RDMA NIC (rdma-core: libibverbs + librdmacm).
 *
 * One device context, one PD and one CQ with its completion channel are shared by every
 * queue pair; connections are made by rdma_cm on one event channel.  rc.c sleeps on one
 * fd: an io_uring holding multishot POLL_ADDs on the completion channel and the rdma_cm
 * channel.  poll() drains both and the CQ.
 *
 * The device context is the one librdmacm opened (rdma_get_devices()), not one of ours:
 * rdma_create_qp() refuses a PD of another context (EINVAL), and rdma_cm binds each
 * cm_id to its own context of the device that owns the IP address in use.  That context
 * is shared by every rdma_cm user in the process, so its async-event fd is not ours to
 * read: another transport's events would be taken (maybe on its thread).  Nothing is lost
 * by it: a QP error surfaces as error and flush completions, a removed device as
 * RDMA_CM_EVENT_DEVICE_REMOVAL on every cm_id, and a lost RTU is recovered by the CM.
 *
 * Work request ids.  The NIC hands back our 64-bit wr_id, never rc.c's: bits 48-63 are
 * the QP's slot in d->tab, bits 32-47 that slot's generation, bit 31 marks a receive and
 * bits 0-30 index the QP's send or receive ring, which holds rc.c's wr_id and op.  The
 * ring is needed anyway: after an error only wr_id, status, qp_num and vendor_err of an
 * ibv_wc are valid, so the op has to come from our side.  The generation lets
 * completions of a destroyed QP still in the shared CQ be recognised and dropped, even
 * when the NIC has already given its qp_num to a new QP.
 *
 * Going down.  On the first failed completion or a DISCONNECTED event, the QP is moved
 * to ERR and one signalled "drain" WR is posted on each queue, as the kernel's
 * ib_drain_qp() does: a QP in ERR flushes every WR in order, signalled or not, so once
 * both drain WRs are back every completion of the QP has been reported and RDEV_EV_DOWN
 * follows.  Each ring has one entry more than rc.c's depth for them.
 *
 * Single-threaded, like rc.c; nothing here takes a lock.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <liburing.h>
#include <poll.h>
#include <rdma/rdma_cma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "rdev.h"

#define MOD "verbs"
#define DEVNAME(ctx) ibv_get_device_name((ctx)->device)

/* 4096 CQEs of 64 bytes: 256 KiB of pinned memory.  Every QP reserves the most it can
 * have in the CQ at once (its two rings, flushes included); past the CQ's size it grows
 * with ibv_resize_cq(), since an overrun CQ takes every QP down. */
#define CQ_SIZE 4096
/* Completions per ibv_poll_cq() call: 32 ibv_wc are 1.5 KiB of stack. */
#define WC_BATCH 32
/* ibv_ack_cq_events() takes a mutex; acking in batches keeps it off the hot path. */
#define CQ_ACK_BATCH 64
/* rdma_resolve_addr()/rdma_resolve_route() give up after this (ARP or SA lookup). */
#define RESOLVE_TIMEOUT_MS 2000
#define LISTEN_BACKLOG 64
/* Inline sends asked of the device; it may grant less, or none. */
#define INLINE_MAX 256
/* Outstanding RDMA READs per QP in each direction, cut to the device's limit. */
#define RD_ATOMIC 16
/* Ring indexes must fit in 31 bits of the wr_id, slots in 16. */
#define MAX_DEPTH 65536
#define MAX_QPS 65536
#define RING_ENTRIES 8
#define WRID_RECV (1u << 31)

/* rdma_cm private data, little-endian: magic "PRSV", version, the length the sender
 * wrote (16 in version 1), then its recv_depth and send_depth. */
#define PRSV_MAGIC 0x56535250u
#define PRSV_VERSION 1
#define PRSV_LEN 16

enum qstate { QS_ADDR, QS_ROUTE, QS_CONNECTING, QS_UP, QS_DOWN, QS_DEAD };
enum slot_flags { SLOT_USER_SIG = 1, SLOT_FORCED = 2, SLOT_DRAIN = 4 };
enum watch { W_COMP, W_CM, W_COUNT };

struct wq_slot {
	uint64_t wr_id; /* rc.c's */
	uint8_t op;     /* enum rdev_op */
	uint8_t flags;  /* enum slot_flags */
};

/* One send or receive ring: entries [tail, tail + count) are posted, head is next. */
struct wq {
	uint32_t cap, head, tail, count;
	struct wq_slot *slots;
};

struct rdev_qp {
	rdev *d;
	struct rdma_cm_id *id; /* owned; id->context points back here */
	struct ibv_qp *qp;     /* id->qp once created */
	void *ctx;
	uint16_t slot, gen;
	uint8_t st; /* enum qstate */
	bool passive, cm_connected, granted, sq_drained, rq_drained;
	int down_status;
	uint32_t max_inline; /* what the device granted */
	uint32_t cq_reserved;
	struct wq sq, rq; /* their slots follow the struct in the same allocation */
};

struct qslot {
	rdev_qp *q;
	uint16_t gen;
};

struct rdev {
	struct ibv_context **cm_devs; /* rdma_get_devices(), released at close */
	struct ibv_context *ctx;      /* borrowed from cm_devs */
	struct ibv_device_attr dattr;
	struct ibv_port_attr pattr;
	uint8_t port;
	bool roce;
	int gid_index;
	struct ibv_gid_entry gid;
	bool have_src; /* RoCE with an IPv4-mapped GID: connect from that address */
	struct sockaddr_in src;
	unsigned send_depth, recv_depth;
	uint8_t resp_res, init_depth;

	struct ibv_pd *pd;
	struct ibv_comp_channel *cc;
	struct ibv_cq *cq;
	unsigned cq_size, cq_used, cq_unacked;
	struct rdma_event_channel *ec;
	struct io_uring ring;
	bool ring_ok, multishot;
	struct rdma_cm_id *listener;

	struct qslot *tab;
	unsigned tab_cap, nqps;
	/* Events that did not fit the caller's array, oldest first. */
	rdev_event *pend;
	unsigned pend_cap, pend_head, pend_len;
	/* The caller's array while poll() runs. */
	rdev_event *out;
	int out_n, out_max;
	/* A completion arm() polled to see whether work was waiting. */
	struct ibv_wc stash;
	bool stashed;
};

/* What poll() keeps of an rdma_cm event.  It is acked before it is acted on, so that
 * rdma_destroy_id(), which waits until every event of its id is acked, never blocks. */
struct cm_ev {
	enum rdma_cm_event_type type;
	int status;
	struct rdma_cm_id *id;
	uint8_t pdata_len, resp_res, init_depth;
	uint8_t pdata[256];
};

/* The data path goes through these on purpose: ibv_post_send() and friends are static
 * inlines that jump through the provider's table, so a profiler charges their time to
 * whoever inlined them.  Behind named, never-inlined functions they show up on their
 * own, and they are the one place where a future mock NIC would be switched in. */
static __attribute__((noinline)) int verbs_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr)
{
	struct ibv_send_wr *bad = NULL;
	return ibv_post_send(qp, wr, &bad);
}

static __attribute__((noinline)) int verbs_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr)
{
	struct ibv_recv_wr *bad = NULL;
	return ibv_post_recv(qp, wr, &bad);
}

static __attribute__((noinline)) int verbs_poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{
	return ibv_poll_cq(cq, n, wc);
}

/* ---- helpers ----------------------------------------------------------------------- */

static int neg_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return neg_errno();
	return 0;
}

static const char *addr_str(const void *sa, char *buf, size_t len)
{
	const struct sockaddr_in *in = sa;
	char ip[INET_ADDRSTRLEN];
	if (!in || in->sin_family != AF_INET ||
	    !inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip)))
		snprintf(buf, len, "?");
	else
		snprintf(buf, len, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
	return buf;
}

/* Strict decimal: digits only, no sign or blanks, value <= max. */
static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || (v = v * 10 + (unsigned long)(*s - '0')) > max)
			return -EINVAL;
	}
	*out = v;
	return 0;
}

static void put_le(uint8_t *p, uint32_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le(const uint8_t *p, int n)
{
	uint32_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

/* ---- pending events ---------------------------------------------------------------- */

static int pend_reserve(rdev *d, unsigned need)
{
	if (need <= d->pend_cap)
		return 0;
	rdev_event *p = prism_calloc(need * 2, sizeof(*p));
	if (!p)
		return -ENOMEM;
	for (unsigned i = 0; i < d->pend_len; i++)
		p[i] = d->pend[(d->pend_head + i) % d->pend_cap];
	prism_free(d->pend);
	d->pend = p;
	d->pend_cap = need * 2;
	d->pend_head = 0;
	return 0;
}

/* Into the caller's array while it has room and nothing older waits, else queued.  The
 * queue never has to grow here: a QP emits at most two events that are not WCs
 * (CONNECTED or ACCEPTED, then DOWN), and poll() takes no more completions than the
 * caller has room for, so 2 * nqps + WC_BATCH + 8 is reserved whenever a QP is made. */
static void emit(rdev *d, const rdev_event *ev)
{
	if (d->out && d->out_n < d->out_max && d->pend_len == 0) {
		d->out[d->out_n++] = *ev;
		return;
	}
	if (PRISM_NEVER(d->pend_len == d->pend_cap) && pend_reserve(d, d->pend_cap + 1)) {
		PRISM_LOG_E(MOD, "out of memory: an event of kind %d is lost", (int)ev->kind);
		return;
	}
	d->pend[(d->pend_head + d->pend_len++) % d->pend_cap] = *ev;
}

static void emit_qp(rdev_qp *q, enum rdev_event_kind kind, int status)
{
	rdev_event ev = {.kind = kind, .qp = q, .qp_ctx = q->ctx, .status = status};
	emit(q->d, &ev);
}

/* Drops the queued events that name q, keeping the others in order. */
static void pend_drop(rdev *d, const rdev_qp *q)
{
	unsigned kept = 0;
	for (unsigned i = 0; i < d->pend_len; i++) {
		rdev_event ev = d->pend[(d->pend_head + i) % d->pend_cap];
		if (ev.qp != q)
			d->pend[(d->pend_head + kept++) % d->pend_cap] = ev;
	}
	d->pend_len = kept;
}

/* ---- io_uring watching the two fds ------------------------------------------------- */

static int watch_fd(const rdev *d, unsigned w)
{
	return w == W_COMP ? d->cc->fd : d->ec->fd;
}

static int ring_watch(rdev *d, unsigned w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&d->ring);
	if (!sqe)
		return -EBUSY; /* RING_ENTRIES is well above the W_COUNT polls ever queued */
	if (d->multishot)
		io_uring_prep_poll_multishot(sqe, watch_fd(d, w), POLLIN);
	else
		io_uring_prep_poll_add(sqe, watch_fd(d, w), POLLIN);
	io_uring_sqe_set_data64(sqe, w + 1);
	return 0;
}

static int ring_setup(rdev *d)
{
	int rc = prism_fault_point();
	if (rc)
		return rc;
	/* Flags 0: with DEFER_TASKRUN completions would appear only inside io_uring_enter(),
	 * and rc.c's poll(2) on the ring fd would sleep through them. */
	rc = io_uring_queue_init(RING_ENTRIES, &d->ring, 0);
	if (rc)
		return rc;
	d->multishot = true;
	for (unsigned w = 0; w < W_COUNT && !rc; w++)
		rc = ring_watch(d, w);
	if (!rc && (rc = io_uring_submit(&d->ring)) > 0)
		rc = 0;
	if (rc)
		io_uring_queue_exit(&d->ring);
	d->ring_ok = rc == 0;
	return rc;
}

/* Consumes the ring's CQEs, which only say "look".  A poll whose CQE lacks
 * IORING_CQE_F_MORE has ended (one-shot, an overflowed CQ ring, or -EINVAL from a kernel
 * before 5.13 without multishot poll: then one-shot from now on) and is armed again. */
static int ring_reap(rdev *d)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0, rearm = 0;
	io_uring_for_each_cqe(&d->ring, head, cqe)
	{
		uint64_t w = cqe->user_data - 1;
		seen++;
		if ((cqe->flags & IORING_CQE_F_MORE) || w >= W_COUNT)
			continue;
		if (cqe->res == -EINVAL && d->multishot) {
			PRISM_LOG_I(MOD,
				    "no multishot poll in this kernel: using one-shot polls");
			d->multishot = false;
		} else if (cqe->res < 0) {
			PRISM_LOG_W(MOD, "io_uring poll ended: %s", strerror(-cqe->res));
		}
		rearm |= 1u << w;
	}
	io_uring_cq_advance(&d->ring, seen);
	for (unsigned w = 0; w < W_COUNT; w++) {
		int rc = (rearm & (1u << w)) ? ring_watch(d, w) : 0;
		if (rc)
			return rc;
	}
	int rc = rearm ? io_uring_submit(&d->ring) : 0;
	return rc < 0 ? rc : 0;
}

/* ---- device, port and GID ---------------------------------------------------------- */

static struct ibv_context *cm_ctx(const rdev *d, const char *name)
{
	for (int i = 0; d->cm_devs[i]; i++)
		if (!strcmp(DEVNAME(d->cm_devs[i]), name))
			return d->cm_devs[i];
	return NULL;
}

static const char *dev_names(struct ibv_device **list, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = '\0';
	for (int i = 0; list[i] && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "",
					ibv_get_device_name(list[i]));
	return buf;
}

/* Makes ctx and port (0: its first active one) the device's, with their attributes;
 * -ENOENT when there is no such port. */
static int use_port(rdev *d, struct ibv_context *ctx, unsigned long port)
{
	if (ibv_query_device(ctx, &d->dattr))
		return neg_errno();
	for (unsigned p = 1; !port && p <= d->dattr.phys_port_cnt; p++)
		if (!ibv_query_port(ctx, (uint8_t)p, &d->pattr) &&
		    d->pattr.state == IBV_PORT_ACTIVE)
			port = p;
	if (!port || port > d->dattr.phys_port_cnt)
		return -ENOENT;
	d->ctx = ctx;
	d->port = (uint8_t)port;
	return ibv_query_port(ctx, d->port, &d->pattr) ? neg_errno() : 0;
}

/* PRISM_RDMA_DEVICE="name[:port]", as UCX and NCCL take it. */
static int pick_named(rdev *d, const char *env, const char *names)
{
	char name[IBV_SYSFS_NAME_MAX];
	const char *colon = strchr(env, ':');
	size_t nlen = colon ? (size_t)(colon - env) : strlen(env);
	unsigned long port = 0;
	if (!nlen || nlen >= sizeof(name) ||
	    (colon && (parse_uint(colon + 1, 255, &port) || !port))) {
		PRISM_LOG_E(
			MOD,
			"PRISM_RDMA_DEVICE=%s: expected DEVICE or DEVICE:PORT (devices: %s)",
			env, names);
		return PRISM_E_CONFIG;
	}
	memcpy(name, env, nlen);
	name[nlen] = '\0';
	struct ibv_context *ctx = cm_ctx(d, name);
	if (!ctx) {
		PRISM_LOG_E(MOD, "PRISM_RDMA_DEVICE=%s: no device '%s' (devices: %s)", env,
			    name, names);
		return PRISM_E_CONFIG;
	}
	int rc = use_port(d, ctx, port);
	if (rc == -ENOENT && !port)
		rc = use_port(d, ctx, 1); /* no port active: port 1, warned about below */
	if (rc == -ENOENT)
		PRISM_LOG_E(MOD, "PRISM_RDMA_DEVICE=%s: %s has ports 1..%u", env, name,
			    (unsigned)d->dattr.phys_port_cnt);
	if (rc)
		return rc == -ENOENT ? PRISM_E_CONFIG : rc;
	if (d->pattr.state != IBV_PORT_ACTIVE)
		PRISM_LOG_W(MOD, "%s port %u is %s: connections fail until it is active", name,
			    (unsigned)d->port, ibv_port_state_str(d->pattr.state));
	return 0;
}

static int pick_device(rdev *d)
{
	int n = 0, rc = PRISM_E_NO_DEVICE;
	char names[512];
	struct ibv_device **list = ibv_get_device_list(&n);
	if (!list || n == 0) {
		PRISM_LOG_I(MOD, "no RDMA device: %s", list ? "none found" : strerror(errno));
		goto out;
	}
	dev_names(list, names, sizeof(names));
	d->cm_devs = rdma_get_devices(NULL);
	if (!d->cm_devs) {
		PRISM_LOG_E(MOD, "RDMA devices (%s) but no rdma_cm: is rdma_ucm loaded?",
			    names);
		goto out;
	}
	const char *env = getenv("PRISM_RDMA_DEVICE");
	if (env && *env) {
		rc = pick_named(d, env, names);
	} else {
		for (int i = 0; list[i] && rc; i++) {
			struct ibv_context *ctx = cm_ctx(d, ibv_get_device_name(list[i]));
			rc = ctx && !use_port(d, ctx, 0) ? 0 : PRISM_E_NO_DEVICE;
		}
		if (rc)
			PRISM_LOG_E(MOD, "no RDMA device has an active port (devices: %s)",
				    names);
	}
	if (rc) {
		rdma_free_devices(d->cm_devs);
		d->cm_devs = NULL;
	}
	d->roce = d->pattr.link_layer == IBV_LINK_LAYER_ETHERNET;
out:
	if (list)
		ibv_free_device_list(list);
	return rc;
}

static bool gid_is_v4(const union ibv_gid *g)
{
	static const uint8_t pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	return !memcmp(g->raw, pfx, sizeof(pfx));
}

/* On RoCE, the first RoCE v2 GID holding an IPv4 address: routable, and an address
 * rdma_cm can connect from.  ibv_query_gid_type() is only a private symbol of libibverbs
 * (IBVERBS_PRIVATE_34, not in verbs.h); ibv_query_gid_ex() is the public way. */
static unsigned long default_gid(const rdev *d)
{
	struct ibv_gid_entry e;
	for (int i = 0; d->roce && i < d->pattr.gid_tbl_len; i++)
		if (!ibv_query_gid_ex(d->ctx, d->port, (uint32_t)i, &e, 0) &&
		    e.gid_type == IBV_GID_TYPE_ROCE_V2 && gid_is_v4(&e.gid))
			return (unsigned long)i;
	if (d->roce)
		PRISM_LOG_W(MOD, "%s port %u has no RoCE v2 IPv4 GID: using GID index 0",
			    DEVNAME(d->ctx), (unsigned)d->port);
	return 0;
}

/* rdma_cm picks the source GID itself, from the IP address a connection uses (and on
 * RoCE the GID type from the port's default_roce_mode in configfs): no API takes an
 * index.  So the index is honoured the one way rdma_cm allows: on RoCE, the address of
 * an IPv4-mapped GID becomes the source address of every connect().  On InfiniBand the
 * IPoIB address decides, and the index is only validated and logged. */
static int pick_gid(rdev *d)
{
	const char *env = getenv("PRISM_RDMA_GID_INDEX");
	unsigned long idx;
	char gid[INET6_ADDRSTRLEN];
	if (!env || !*env) {
		idx = default_gid(d);
	} else if (d->pattr.gid_tbl_len <= 0 ||
		   parse_uint(env, (unsigned long)d->pattr.gid_tbl_len - 1, &idx)) {
		PRISM_LOG_E(MOD, "PRISM_RDMA_GID_INDEX=%s: expected an index 0..%d", env,
			    d->pattr.gid_tbl_len - 1);
		return PRISM_E_CONFIG;
	}
	d->gid_index = (int)idx;
	int rc = ibv_query_gid_ex(d->ctx, d->port, (uint32_t)idx, &d->gid, 0);
	if (rc) {
		PRISM_LOG_E(MOD, "GID index %lu of %s port %u is not usable: %s", idx,
			    DEVNAME(d->ctx), (unsigned)d->port, strerror(rc));
		return env && *env ? PRISM_E_CONFIG : -rc;
	}
	if (d->roce && gid_is_v4(&d->gid.gid)) {
		d->have_src = true;
		d->src.sin_family = AF_INET;
		memcpy(&d->src.sin_addr, d->gid.gid.raw + 12, 4);
	}
	if (!inet_ntop(AF_INET6, d->gid.gid.raw, gid, sizeof(gid)))
		snprintf(gid, sizeof(gid), "?");
	PRISM_LOG_I(MOD, "using %s port %u (%s), GID[%d] %s%s", DEVNAME(d->ctx),
		    (unsigned)d->port, d->roce ? "RoCE" : "InfiniBand", d->gid_index, gid,
		    d->gid.gid_type == IBV_GID_TYPE_ROCE_V2 ? " (RoCE v2)" : "");
	return 0;
}

static int check_limits(rdev *d)
{
	const struct ibv_device_attr *a = &d->dattr;
	if (d->send_depth + 1 > (unsigned)a->max_qp_wr ||
	    d->recv_depth + 1 > (unsigned)a->max_qp_wr || a->max_cqe < 1) {
		PRISM_LOG_E(MOD,
			    "send depth %u / receive depth %u exceed %s's %d WRs per queue",
			    d->send_depth, d->recv_depth, DEVNAME(d->ctx), a->max_qp_wr);
		return -EINVAL;
	}
	d->resp_res = (uint8_t)(a->max_qp_rd_atom < RD_ATOMIC ? a->max_qp_rd_atom : RD_ATOMIC);
	d->init_depth = (uint8_t)(a->max_qp_init_rd_atom < RD_ATOMIC ? a->max_qp_init_rd_atom
								     : RD_ATOMIC);
	d->cq_size = (unsigned)(a->max_cqe < CQ_SIZE ? a->max_cqe : CQ_SIZE);
	return 0;
}

/* ---- open / close ------------------------------------------------------------------ */

static int open_queues(rdev *d)
{
	d->pd = ibv_alloc_pd(d->ctx);
	if (!d->pd)
		return neg_errno();
	d->cc = ibv_create_comp_channel(d->ctx);
	if (!d->cc)
		return neg_errno();
	d->cq = ibv_create_cq(d->ctx, (int)d->cq_size, d, d->cc, 0);
	if (!d->cq)
		return neg_errno();
	d->cq_size = (unsigned)d->cq->cqe; /* the provider may round up */
	d->ec = rdma_create_event_channel();
	if (!d->ec)
		return neg_errno();
	int rc = set_nonblock(d->cc->fd);
	return rc ? rc : set_nonblock(d->ec->fd);
}

static void vd_close(rdev *d);

/* t: verbs needs nothing of the transport (softverbs runs its sockets through it). */
static int vd_open(transport *t, unsigned send_depth, unsigned recv_depth, rdev **out)
{
	(void)t;
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!send_depth || !recv_depth || send_depth >= MAX_DEPTH || recv_depth >= MAX_DEPTH)
		return -EINVAL;
	rdev *d = prism_calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->send_depth = send_depth;
	d->recv_depth = recv_depth;
	int rc = pick_device(d);
	if (rc)
		goto fail_device;
	rc = check_limits(d);
	if (!rc)
		rc = pick_gid(d);
	if (!rc)
		rc = open_queues(d);
	if (!rc)
		rc = pend_reserve(d, WC_BATCH + 8);
	if (!rc)
		rc = ring_setup(d);
	if (!rc && (rc = -ibv_req_notify_cq(d->cq, 0)) != 0)
		goto fail_notify;
	if (rc) {
		PRISM_LOG_E(MOD, "cannot set up %s: %s", DEVNAME(d->ctx), prism_strerror(rc));
		goto fail_queues;
	}
	*out = d;
	return 0;

fail_notify:
	io_uring_queue_exit(&d->ring);
	d->ring_ok = false;
fail_queues:
	vd_close(d); /* NULL-safe in every member: releases what was made */
	return rc;
fail_device:
	prism_free(d);
	return rc;
}

static void qp_free(rdev_qp *q);

/* The reverse of vd_open(), NULL-safe in every member, so a half-open device too. */
static void vd_close(rdev *d)
{
	if (!d)
		return;
	for (unsigned i = 0; i < d->tab_cap; i++)
		if (d->tab[i].q)
			qp_free(d->tab[i].q);
	if (d->listener)
		rdma_destroy_id(d->listener);
	if (d->ring_ok)
		io_uring_queue_exit(&d->ring); /* before the fds its polls watch */
	if (d->ec)
		rdma_destroy_event_channel(d->ec);
	if (d->cq) {
		/* ibv_destroy_cq() waits until every completion event has been acked. */
		if (d->cq_unacked)
			ibv_ack_cq_events(d->cq, d->cq_unacked);
		ibv_destroy_cq(d->cq);
	}
	if (d->cc)
		ibv_destroy_comp_channel(d->cc);
	if (d->pd && ibv_dealloc_pd(d->pd))
		PRISM_LOG_W(MOD, "protection domain busy at close: regions left registered?");
	if (d->cm_devs)
		rdma_free_devices(d->cm_devs);
	prism_free(d->tab);
	prism_free(d->pend);
	prism_free(d);
}

/* ---- QP bookkeeping ---------------------------------------------------------------- */

static uint64_t wrid(const rdev_qp *q, bool recv, uint32_t idx)
{
	return (uint64_t)q->slot << 48 | (uint64_t)q->gen << 32 | (recv ? WRID_RECV : 0) | idx;
}

static rdev_qp *wrid_qp(const rdev *d, uint64_t id)
{
	unsigned slot = (unsigned)(id >> 48);
	if (slot >= d->tab_cap || !d->tab[slot].q || d->tab[slot].gen != (uint16_t)(id >> 32))
		return NULL;
	return d->tab[slot].q;
}

static int tab_insert(rdev *d, rdev_qp *q)
{
	unsigned i = 0;
	while (i < d->tab_cap && d->tab[i].q)
		i++;
	if (i == d->tab_cap) {
		unsigned cap = d->tab_cap ? d->tab_cap * 2 : 64;
		struct qslot *t =
			cap <= MAX_QPS ? prism_realloc(d->tab, cap * sizeof(*t)) : NULL;
		if (!t)
			return cap <= MAX_QPS ? -ENOMEM : -ENOSPC;
		memset(t + d->tab_cap, 0, (cap - d->tab_cap) * sizeof(*t));
		d->tab = t;
		d->tab_cap = cap;
	}
	d->tab[i].q = q;
	q->slot = (uint16_t)i;
	q->gen = d->tab[i].gen;
	return 0;
}

static int cq_reserve(rdev *d, unsigned n)
{
	unsigned need = d->cq_used + n;
	if (need > d->cq_size) {
		unsigned want = need > 2 * d->cq_size ? need : 2 * d->cq_size;
		if (want > (unsigned)d->dattr.max_cqe)
			want = (unsigned)d->dattr.max_cqe;
		int rc = want >= need ? ibv_resize_cq(d->cq, (int)want) : ENOSPC;
		if (rc) {
			PRISM_LOG_E(MOD, "CQ cannot grow to %u entries for another QP: %s",
				    need, strerror(rc));
			return -rc;
		}
		d->cq_size = (unsigned)d->cq->cqe;
	}
	d->cq_used = need;
	return 0;
}

static int qp_alloc(rdev *d, void *ctx, rdev_qp **out)
{
	uint32_t sq_cap = d->send_depth + 1, rq_cap = d->recv_depth + 1;
	rdev_qp *q = prism_calloc(1, sizeof(*q) + (sq_cap + rq_cap) * sizeof(struct wq_slot));
	if (!q)
		return -ENOMEM;
	q->d = d;
	q->ctx = ctx;
	q->sq = (struct wq){.cap = sq_cap, .slots = (struct wq_slot *)(q + 1)};
	q->rq = (struct wq){.cap = rq_cap, .slots = q->sq.slots + sq_cap};
	int rc = tab_insert(d, q);
	if (rc)
		goto fail_tab;
	rc = pend_reserve(d, 2 * (d->nqps + 1) + WC_BATCH + 8);
	if (!rc)
		rc = cq_reserve(d, sq_cap + rq_cap);
	if (rc)
		goto fail_reserve;
	q->cq_reserved = sq_cap + rq_cap;
	d->nqps++;
	*out = q;
	return 0;

fail_reserve:
	d->tab[q->slot].q = NULL;
fail_tab:
	prism_free(q);
	return rc;
}

/* Frees q with its QP and cm_id.  Completions of its WRs still in the CQ are dropped by
 * the generation check (mlx4 and mlx5 also purge them in ibv_destroy_qp()). */
static void qp_free(rdev_qp *q)
{
	rdev *d = q->d;
	if (q->id) {
		if (q->cm_connected)
			(void)rdma_disconnect(q->id);
		if (q->id->qp)
			rdma_destroy_qp(q->id);
		if (rdma_destroy_id(q->id))
			PRISM_LOG_W(MOD, "rdma_destroy_id: %s", strerror(errno));
	}
	pend_drop(d, q);
	d->cq_used -= q->cq_reserved;
	d->tab[q->slot].q = NULL;
	d->tab[q->slot].gen++;
	d->nqps--;
	prism_free(q);
}

/* An RC QP on the shared PD and CQ.  rdma_cm does not leave its access flags at 0: the
 * move to RTR inside rdma_accept() (passive) or rdma_get_cm_event() (active, on the REP)
 * re-runs INIT with the kernel CM's attributes, which grant REMOTE_WRITE always and
 * REMOTE_READ | REMOTE_ATOMIC when responder resources are non-zero
 * (cm_init_qp_init_attr(); a passive QP has them from rdma_create_qp() on).  So they are
 * revoked, with qp_set_access(q, 0), as soon as rdma_cm is done with the QP (see
 * on_conn_request() and on_established()), and given again only by grant(). */
static int qp_create(rdev_qp *q)
{
	for (uint32_t inl = INLINE_MAX;; inl = 0) {
		struct ibv_qp_init_attr ia = {
			.qp_context = q,
			.send_cq = q->d->cq,
			.recv_cq = q->d->cq,
			.cap = {.max_send_wr = q->sq.cap,
				.max_recv_wr = q->rq.cap,
				.max_send_sge = 1,
				.max_recv_sge = 1,
				.max_inline_data = inl},
			.qp_type = IBV_QPT_RC,
		};
		if (!rdma_create_qp(q->id, q->d->pd, &ia)) {
			q->qp = q->id->qp;
			q->max_inline = ia.cap.max_inline_data;
			return 0;
		}
		/* Some devices have no inline sends at all: try once without. */
		if (!inl) {
			int rc = neg_errno();
			PRISM_LOG_E(MOD, "rdma_create_qp (%u/%u WRs): %s", q->sq.cap, q->rq.cap,
				    strerror(-rc));
			return rc;
		}
	}
}

static int qp_set_access(rdev_qp *q, int flags)
{
	struct ibv_qp_attr a = {.qp_access_flags = (unsigned)flags};
	int rc = ibv_modify_qp(q->qp, &a, IBV_QP_ACCESS_FLAGS);
	if (rc)
		PRISM_LOG_E(MOD, "QP %u: cannot set access flags 0x%x: %s", q->qp->qp_num,
			    flags, strerror(rc));
	return -rc;
}

/* ---- going down -------------------------------------------------------------------- */

static void maybe_report_down(rdev_qp *q)
{
	if (q->st != QS_DOWN || !q->sq_drained || !q->rq_drained)
		return;
	q->st = QS_DEAD;
	emit_qp(q, RDEV_EV_DOWN, q->down_status);
}

static void wq_push(struct wq *w, struct wq_slot s)
{
	w->slots[w->head] = s;
	w->head = (w->head + 1) % w->cap;
	w->count++;
}

/* The drain WRs take the ring entry kept free for them.  Without one the flush cannot
 * be observed: that side counts as drained, and completions after DOWN are dropped. */
static void post_drains(rdev_qp *q)
{
	struct ibv_send_wr s = {.wr_id = wrid(q, false, q->sq.head),
				.opcode = IBV_WR_RDMA_WRITE,
				.send_flags = IBV_SEND_SIGNALED};
	struct ibv_recv_wr r = {.wr_id = wrid(q, true, q->rq.head)};
	int rc = verbs_post_send(q->qp, &s);
	if (!rc)
		wq_push(&q->sq, (struct wq_slot){.flags = SLOT_DRAIN});
	int rc2 = verbs_post_recv(q->qp, &r);
	if (!rc2)
		wq_push(&q->rq, (struct wq_slot){.flags = SLOT_DRAIN});
	q->sq_drained = rc != 0;
	q->rq_drained = rc2 != 0;
	if (rc || rc2)
		PRISM_LOG_W(MOD, "QP %u: cannot post drain WRs (%s): DOWN before its flush",
			    q->qp->qp_num, strerror(rc ? rc : rc2));
}

/* The first failure of an established QP.  flush: whether the NIC can still deliver the
 * flushed completions (not once its device is being removed). */
static void go_down(rdev_qp *q, int status, bool flush)
{
	if (q->st != QS_UP)
		return;
	q->st = QS_DOWN;
	q->down_status = status;
	struct ibv_qp_attr a = {.qp_state = IBV_QPS_ERR};
	int rc = ibv_modify_qp(q->qp, &a, IBV_QP_STATE);
	if (rc)
		PRISM_LOG_W(MOD, "QP %u: cannot move to ERR: %s", q->qp->qp_num, strerror(rc));
	if (flush && !rc)
		post_drains(q);
	else
		q->sq_drained = q->rq_drained = true;
	if (q->cm_connected) {
		/* Tells the peer (DREQ), or answers its DREQ (DREP). */
		q->cm_connected = false;
		(void)rdma_disconnect(q->id);
	}
	maybe_report_down(q);
}

/* ---- completions ------------------------------------------------------------------- */

static int wc_err(enum ibv_wc_status s)
{
	switch (s) {
	case IBV_WC_SUCCESS:
		return 0;
	case IBV_WC_REM_ACCESS_ERR:
		return PRISM_E_BAD_KEY;
	case IBV_WC_WR_FLUSH_ERR:
		return PRISM_E_FLUSHED;
	case IBV_WC_RETRY_EXC_ERR:
	case IBV_WC_RNR_RETRY_EXC_ERR:
		return PRISM_E_PEER_GONE;
	case IBV_WC_REM_INV_REQ_ERR:
		return PRISM_E_OUT_OF_BOUNDS;
	default:
		return PRISM_E_PROTO;
	}
}

/* A CQE for ring entry idx retires every older entry too: a queue completes in order, so
 * the unsignalled WRs before it succeeded (a flushed WR gets a CQE of its own, signalled
 * or not).  Returns the entry, or NULL for a CQE that matches nothing posted. */
static const struct wq_slot *wq_retire(struct wq *w, uint32_t idx)
{
	uint32_t n = (idx + w->cap - w->tail) % w->cap + 1;
	if (PRISM_NEVER(idx >= w->cap || n > w->count))
		return NULL;
	w->tail = (idx + 1) % w->cap;
	w->count -= n;
	return &w->slots[idx];
}

static void wc_handle(rdev *d, const struct ibv_wc *wc)
{
	rdev_qp *q = wrid_qp(d, wc->wr_id);
	uint32_t low = (uint32_t)wc->wr_id;
	if (!q || PRISM_NEVER(!q->qp || wc->qp_num != q->qp->qp_num))
		return; /* a completion of a destroyed QP */
	int err = wc_err(wc->status);
	if (err && err != PRISM_E_FLUSHED && q->st == QS_UP)
		PRISM_LOG_W(MOD, "QP %u: work completion failed: %s (vendor error 0x%x)",
			    wc->qp_num, ibv_wc_status_str(wc->status), wc->vendor_err);
	bool recv = low & WRID_RECV;
	const struct wq_slot *s = wq_retire(recv ? &q->rq : &q->sq, low & ~WRID_RECV);
	if (s && (s->flags & SLOT_DRAIN)) {
		*(recv ? &q->rq_drained : &q->sq_drained) = true;
	} else if (s && q->st != QS_DEAD && (recv || err || (s->flags & SLOT_USER_SIG))) {
		/* A signal we forced is swallowed when it succeeds; nothing after DOWN. */
		rdev_event ev = {.kind = RDEV_EV_WC,
				 .qp = q,
				 .qp_ctx = q->ctx,
				 .op = recv ? RDEV_RECV : (enum rdev_op)s->op,
				 .wr_id = s->wr_id,
				 .status = err,
				 .byte_len = recv && !err ? wc->byte_len : 0};
		emit(d, &ev);
	}
	if (err)
		go_down(q, err, true);
	maybe_report_down(q);
}

static int cq_drain(rdev *d)
{
	struct ibv_wc wcs[WC_BATCH];
	if (d->stashed && d->out_n < d->out_max) {
		d->stashed = false;
		wc_handle(d, &d->stash);
	}
	while (d->out_n < d->out_max) {
		int want = d->out_max - d->out_n < WC_BATCH ? d->out_max - d->out_n : WC_BATCH;
		int n = verbs_poll_cq(d->cq, want, wcs);
		if (n < 0) {
			PRISM_LOG_E(MOD, "ibv_poll_cq failed (%d)", n);
			return PRISM_E_PROTO;
		}
		for (int i = 0; i < n; i++)
			wc_handle(d, &wcs[i]);
		if (n < want)
			break;
	}
	return 0;
}

/* Completion events only say "the CQ has work"; the CQ is polled regardless. */
static void cc_drain(rdev *d)
{
	struct ibv_cq *cq;
	void *cq_ctx;
	while (!ibv_get_cq_event(d->cc, &cq, &cq_ctx))
		d->cq_unacked++;
	if (d->cq_unacked >= CQ_ACK_BATCH) {
		ibv_ack_cq_events(d->cq, d->cq_unacked);
		d->cq_unacked = 0;
	}
}

/* ---- rdma_cm private data ---------------------------------------------------------- */

static void prsv_encode(const rdev *d, uint8_t *p)
{
	put_le(p, PRSV_MAGIC, 4);
	put_le(p + 4, PRSV_VERSION, 2);
	put_le(p + 6, PRSV_LEN, 2);
	put_le(p + 8, d->recv_depth, 4);
	put_le(p + 12, d->send_depth, 4);
}

/* len is what arrived; InfiniBand pads it to the CM message's fixed private data size,
 * so the sender's own length says how much is ours.  rc.c cannot learn the peer's
 * receive depth, and sends as if it were its own: a peer with another would be overrun
 * (endless RNR retries), so it is refused here. */
static int prsv_check(const rdev *d, const uint8_t *p, size_t len, const char **why)
{
	int rc = 0;
	if (len < 8 && (rc = PRISM_E_TRUNCATED))
		*why = "no prism private data";
	else if (get_le(p, 4) != PRSV_MAGIC && (rc = PRISM_E_BAD_MAGIC))
		*why = "bad magic: not a prism peer";
	else if (get_le(p + 4, 2) != PRSV_VERSION && (rc = PRISM_E_BAD_VERSION))
		*why = "unsupported private data version";
	else if ((get_le(p + 6, 2) < PRSV_LEN || get_le(p + 6, 2) > len) &&
		 (rc = PRISM_E_CORRUPT))
		*why = "bad private data length";
	else if (get_le(p + 8, 4) != d->recv_depth && (rc = PRISM_E_CONFIG))
		*why = "its receive depth differs from ours";
	return rc;
}

static void conn_param(const rdev *d, struct rdma_conn_param *cp, uint8_t *pdata)
{
	prsv_encode(d, pdata);
	*cp = (struct rdma_conn_param){
		.private_data = pdata,
		.private_data_len = PRSV_LEN,
		.responder_resources = d->resp_res,
		.initiator_depth = d->init_depth,
		.flow_control = 1,
		.retry_count = 7,
		/* 7: retry forever; a receive posted late stalls the sender, never kills it */
		.rnr_retry_count = 7,
	};
}

/* ---- rdma_cm events ---------------------------------------------------------------- */

static void connect_fail(rdev_qp *q, int status)
{
	char peer[32];
	PRISM_LOG_I(MOD, "connection %s %s failed: %s", q->passive ? "from" : "to",
		    addr_str(rdma_get_peer_addr(q->id), peer, sizeof(peer)),
		    prism_strerror(status));
	if (q->passive) {
		qp_free(q); /* rc.c never heard of it */
		return;
	}
	q->st = QS_DEAD;
	if (q->cm_connected) {
		q->cm_connected = false;
		(void)rdma_disconnect(q->id);
	}
	emit_qp(q, RDEV_EV_CONNECTED, status);
}

static void on_conn_request(rdev *d, const struct cm_ev *e)
{
	struct rdma_cm_id *id = e->id;
	struct rdma_conn_param cp;
	uint8_t pdata[PRSV_LEN];
	const char *why = NULL;
	char peer[32];
	rdev_qp *q = NULL;
	int rc = 0;
	addr_str(rdma_get_peer_addr(id), peer, sizeof(peer));
	if (id->verbs != d->ctx) {
		PRISM_LOG_W(MOD, "refused %s: it came in on %s, prism uses %s", peer,
			    id->verbs ? DEVNAME(id->verbs) : "?", DEVNAME(d->ctx));
		goto reject;
	}
	if (prsv_check(d, e->pdata, e->pdata_len, &why) || (rc = qp_alloc(d, NULL, &q))) {
		PRISM_LOG_W(MOD, "refused %s: %s", peer, why ? why : prism_strerror(rc));
		goto reject;
	}
	q->passive = true;
	q->id = id;
	id->context = q;
	conn_param(d, &cp, pdata);
	/* What the peer will issue bounds what we must serve, and the other way round. */
	cp.responder_resources = e->init_depth < d->resp_res ? e->init_depth : d->resp_res;
	cp.initiator_depth = e->resp_res < d->init_depth ? e->resp_res : d->init_depth;
	if (qp_create(q) || rdma_accept(id, &cp)) {
		PRISM_LOG_W(MOD, "cannot accept %s: %s", peer, strerror(errno));
		(void)rdma_reject(id, NULL, 0);
		qp_free(q); /* destroys id too */
		return;
	}
	/* rdma_accept() left the QP in RTS with the CM's remote rights.  The peer gets our
	 * QPN in the REP sent at the end of that call and learns rkeys only after proving
	 * the token, so revoking them here leaves a window of microseconds, and only for a
	 * peer that guesses a key. */
	if (qp_set_access(q, 0)) {
		qp_free(q);
		return;
	}
	q->st = QS_CONNECTING;
	return;
reject:
	(void)rdma_reject(id, NULL, 0);
	rdma_destroy_id(id);
}

static void on_addr_resolved(rdev_qp *q)
{
	char peer[32];
	if (q->st != QS_ADDR)
		return;
	if (q->id->verbs != q->d->ctx) {
		PRISM_LOG_E(MOD, "%s is reached through %s, not %s: set PRISM_RDMA_DEVICE",
			    addr_str(rdma_get_peer_addr(q->id), peer, sizeof(peer)),
			    DEVNAME(q->id->verbs), DEVNAME(q->d->ctx));
		connect_fail(q, PRISM_E_CONFIG);
	} else if (rdma_resolve_route(q->id, RESOLVE_TIMEOUT_MS)) {
		connect_fail(q, neg_errno());
	} else {
		q->st = QS_ROUTE;
	}
}

static void on_route_resolved(rdev_qp *q)
{
	struct rdma_conn_param cp;
	uint8_t pdata[PRSV_LEN];
	if (q->st != QS_ROUTE)
		return;
	int rc = qp_create(q);
	conn_param(q->d, &cp, pdata);
	if (!rc && rdma_connect(q->id, &cp))
		rc = neg_errno();
	if (rc)
		connect_fail(q, rc);
	else
		q->st = QS_CONNECTING;
}

static void on_established(rdev_qp *q, const struct cm_ev *e)
{
	const char *why = NULL;
	if (q->st != QS_CONNECTING)
		return;
	q->cm_connected = true;
	if (q->passive) {
		q->st = QS_UP;
		emit_qp(q, RDEV_EV_ACCEPTED, 0);
		return;
	}
	/* librdmacm took the QP to RTS (with the CM's rights) inside rdma_get_cm_event(),
	 * just before handing us this event: revoke them before anything else. */
	int rc = qp_set_access(q, 0);
	if (!rc && (rc = prsv_check(q->d, e->pdata, e->pdata_len, &why)) != 0)
		PRISM_LOG_W(MOD, "QP %u: the peer's reply is refused: %s", q->qp->qp_num, why);
	if (rc) {
		connect_fail(q, rc);
		return;
	}
	q->st = QS_UP;
	emit_qp(q, RDEV_EV_CONNECTED, 0);
}

static int cm_fail_status(const struct cm_ev *e)
{
	if (e->type == RDMA_CM_EVENT_REJECTED)
		return -ECONNREFUSED; /* status is the IB reject reason, not an errno */
	if (e->type == RDMA_CM_EVENT_DEVICE_REMOVAL)
		return -ENODEV;
	if (e->type == RDMA_CM_EVENT_DISCONNECTED)
		return PRISM_E_PEER_GONE;
	if (e->status < 0) /* ADDR/ROUTE/CONNECT_ERROR and UNREACHABLE carry an errno */
		return e->status;
	return e->type == RDMA_CM_EVENT_CONNECT_ERROR ? -ECONNABORTED : -EHOSTUNREACH;
}

static void on_failure(rdev_qp *q, const struct cm_ev *e)
{
	if (q->st >= QS_DOWN)
		return; /* already going down, or gone */
	if (e->type == RDMA_CM_EVENT_REJECTED)
		PRISM_LOG_I(MOD, "connection rejected (reason %d)", e->status);
	if (q->st < QS_UP) {
		connect_fail(q, cm_fail_status(e));
		return;
	}
	PRISM_LOG_I(MOD, "QP %u: %s", q->qp->qp_num, rdma_event_str(e->type));
	/* go_down() answers a peer's DREQ with rdma_disconnect(). */
	go_down(q, cm_fail_status(e), e->type != RDMA_CM_EVENT_DEVICE_REMOVAL);
}

static void cm_dispatch(rdev *d, const struct cm_ev *e)
{
	rdev_qp *q = e->id->context;
	if (e->type == RDMA_CM_EVENT_CONNECT_REQUEST)
		on_conn_request(d, e);
	else if (!q) /* the listener */
		PRISM_LOG_W(MOD, "listener: %s", rdma_event_str(e->type));
	else if (e->type == RDMA_CM_EVENT_ADDR_RESOLVED)
		on_addr_resolved(q);
	else if (e->type == RDMA_CM_EVENT_ROUTE_RESOLVED)
		on_route_resolved(q);
	else if (e->type == RDMA_CM_EVENT_ESTABLISHED)
		on_established(q, e);
	else if (e->type == RDMA_CM_EVENT_ADDR_ERROR || e->type == RDMA_CM_EVENT_ROUTE_ERROR ||
		 e->type == RDMA_CM_EVENT_CONNECT_ERROR ||
		 e->type == RDMA_CM_EVENT_UNREACHABLE || e->type == RDMA_CM_EVENT_REJECTED ||
		 e->type == RDMA_CM_EVENT_DISCONNECTED ||
		 e->type == RDMA_CM_EVENT_DEVICE_REMOVAL)
		on_failure(q, e);
	else /* TIMEWAIT_EXIT, ADDR_CHANGE: nothing to do */
		PRISM_LOG_D(MOD, "rdma_cm: %s", rdma_event_str(e->type));
}

static void cm_drain(rdev *d)
{
	struct rdma_cm_event *ev;
	while (d->out_n < d->out_max) {
		if (rdma_get_cm_event(d->ec, &ev)) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				PRISM_LOG_W(MOD, "rdma_get_cm_event: %s", strerror(errno));
			return;
		}
		const struct rdma_conn_param *c = &ev->param.conn;
		struct cm_ev e = {.type = ev->event,
				  .status = ev->status,
				  .id = ev->id,
				  .resp_res = c->responder_resources,
				  .init_depth = c->initiator_depth};
		if (c->private_data && c->private_data_len) {
			e.pdata_len = c->private_data_len;
			memcpy(e.pdata, c->private_data, c->private_data_len);
		}
		rdma_ack_cm_event(ev);
		cm_dispatch(d, &e);
	}
}

/* ---- the event loop side ----------------------------------------------------------- */

static int vd_fd(const rdev *d)
{
	return d->ring.ring_fd;
}

/* Arm, then look: a completion or event racing the arming is seen here or wakes the
 * ring, never lost.  1: poll() has work already. */
static int vd_arm(rdev *d)
{
	int rc = ring_reap(d);
	if (rc)
		return rc;
	if (d->pend_len || d->stashed)
		return 1;
	rc = ibv_req_notify_cq(d->cq, 0);
	if (rc)
		return -rc;
	int n = verbs_poll_cq(d->cq, 1, &d->stash);
	if (n)
		return n < 0 ? PRISM_E_PROTO : (d->stashed = true);
	struct pollfd p[W_COUNT];
	for (unsigned w = 0; w < W_COUNT; w++)
		p[w] = (struct pollfd){.fd = watch_fd(d, w), .events = POLLIN};
	return poll(p, W_COUNT, 0) > 0;
}

static int vd_poll(rdev *d, rdev_event *evs, int max)
{
	if (!d || !evs || max < 0)
		return -EINVAL;
	for (d->out_n = 0; d->out_n < max && d->pend_len; d->out_n++) {
		evs[d->out_n] = d->pend[d->pend_head];
		d->pend_head = (d->pend_head + 1) % d->pend_cap;
		d->pend_len--;
	}
	if (d->out_n == max)
		return max;
	d->out = evs;
	d->out_max = max;
	int rc = ring_reap(d);
	if (rc)
		PRISM_LOG_W(MOD, "io_uring: %s", strerror(-rc));
	cc_drain(d);
	cm_drain(d);
	rc = cq_drain(d);
	d->out = NULL;
	return d->out_n ? d->out_n : rc;
}

/* ---- regions ----------------------------------------------------------------------- */

/* The caller picks the memory.  Hugepage-backed shared memory is the better choice: a
 * 2 MiB page is one MTT entry where 4 KiB pages need 512, so registration is faster and
 * the NIC's translation cache misses less. */
static int vd_reg_mr(rdev *d, void *addr, size_t len, unsigned access, rdev_mr *out)
{
	if (!d || !addr || !len || !out || (access & ~3u))
		return -EINVAL;
	int fl = IBV_ACCESS_LOCAL_WRITE | ((access & 1) ? IBV_ACCESS_REMOTE_READ : 0) |
		 ((access & 2) ? IBV_ACCESS_REMOTE_WRITE : 0);
	struct ibv_mr *mr = ibv_reg_mr(d->pd, addr, len, fl);
	/* LOCAL_WRITE pins the pages for writing, which fails (EFAULT) on read-only memory,
	 * such as constant data sent by rendezvous; a region nobody writes does without. */
	if (!mr && (errno == EFAULT || errno == EACCES) && !(access & 2))
		mr = ibv_reg_mr(d->pd, addr, len, fl & ~IBV_ACCESS_LOCAL_WRITE);
	if (!mr) {
		int rc = neg_errno();
		PRISM_LOG_E(MOD, "ibv_reg_mr of %zu bytes: %s%s", len, strerror(-rc),
			    rc == -ENOMEM || rc == -EPERM ? " (check ulimit -l)" : "");
		return rc;
	}
	*out = (rdev_mr){.handle = mr, .lkey = mr->lkey, .rkey = mr->rkey};
	return 0;
}

static void vd_dereg_mr(rdev *d, rdev_mr *mr)
{
	(void)d;
	if (!mr || !mr->handle)
		return;
	int rc = ibv_dereg_mr(mr->handle);
	if (rc)
		PRISM_LOG_W(MOD, "ibv_dereg_mr: %s", strerror(rc));
	memset(mr, 0, sizeof(*mr));
}

/* ---- connections ------------------------------------------------------------------- */

static int vd_listen(rdev *d, const struct sockaddr_in *sa, uint16_t *port)
{
	struct rdma_cm_id *id;
	int one = 1, rc;
	char a[32];
	if (!d || !sa || !port || sa->sin_family != AF_INET)
		return -EINVAL;
	if (d->listener)
		return -EALREADY;
	if (rdma_create_id(d->ec, &id, NULL, RDMA_PS_TCP))
		return neg_errno();
	/* Like SO_REUSEADDR: a restarted node gets its port back at once. */
	(void)rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_REUSEADDR, &one, sizeof(one));
	if (rdma_bind_addr(id, (struct sockaddr *)sa) || rdma_listen(id, LISTEN_BACKLOG)) {
		rc = neg_errno();
		PRISM_LOG_E(MOD, "cannot listen on %s: %s", addr_str(sa, a, sizeof(a)),
			    strerror(-rc));
		goto fail;
	}
	/* Bound to an address of another device, every request would be refused. */
	if (id->verbs && id->verbs != d->ctx) {
		PRISM_LOG_E(MOD, "%s belongs to %s, prism uses %s", addr_str(sa, a, sizeof(a)),
			    DEVNAME(id->verbs), DEVNAME(d->ctx));
		rc = PRISM_E_CONFIG;
		goto fail;
	}
	*port = ntohs(rdma_get_src_port(id));
	d->listener = id;
	return 0;
fail:
	rdma_destroy_id(id);
	return rc;
}

/* Address and route resolution, QP creation and rdma_connect() go on in poll(). */
static int vd_connect(rdev *d, const struct sockaddr_in *sa, void *ctx, rdev_qp **out)
{
	rdev_qp *q;
	char a[32];
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!d || !sa || sa->sin_family != AF_INET || !sa->sin_port)
		return -EINVAL;
	int rc = qp_alloc(d, ctx, &q);
	if (rc)
		return rc;
	if (rdma_create_id(d->ec, &q->id, q, RDMA_PS_TCP) ||
	    rdma_resolve_addr(q->id, d->have_src ? (struct sockaddr *)&d->src : NULL,
			      (struct sockaddr *)sa, RESOLVE_TIMEOUT_MS)) {
		rc = neg_errno();
		PRISM_LOG_W(MOD, "cannot connect to %s: %s", addr_str(sa, a, sizeof(a)),
			    strerror(-rc));
		qp_free(q);
		return rc;
	}
	q->st = QS_ADDR;
	*out = q;
	return 0;
}

static void vd_set_ctx(rdev_qp *q, void *ctx)
{
	if (q)
		q->ctx = ctx;
}

static int vd_peer(const rdev_qp *q, struct sockaddr_in *out)
{
	if (!q || !out)
		return -EINVAL;
	const struct sockaddr *sa = rdma_get_peer_addr(q->id);
	if (sa->sa_family != AF_INET)
		return -EAFNOSUPPORT;
	memcpy(out, sa, sizeof(*out));
	return 0;
}

static int qp_usable(const rdev_qp *q)
{
	return q->st == QS_UP ? 0 : q->st < QS_UP ? -ENOTCONN : PRISM_E_CLOSED;
}

static int vd_grant(rdev_qp *q)
{
	int rc = q ? qp_usable(q) : -EINVAL;
	if (rc || q->granted)
		return rc;
	rc = qp_set_access(q, IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE);
	q->granted = rc == 0;
	return rc;
}

/* ---- posting ----------------------------------------------------------------------- */

/* Inline data is copied into the WQE, so the buffer is free at once.  Where the device
 * granted less than the length (or nothing), the WR goes out from wr->local with
 * wr->lkey, which must then be valid: rc.c only sends from registered slots. */
static int vd_post_send(rdev_qp *q, const rdev_wr *wr)
{
	static const enum ibv_wr_opcode opc[] = {
		[RDEV_SEND] = IBV_WR_SEND,
		[RDEV_WRITE] = IBV_WR_RDMA_WRITE,
		[RDEV_READ] = IBV_WR_RDMA_READ,
	};
	if (!q || !wr || wr->op < RDEV_SEND || wr->op > RDEV_READ)
		return -EINVAL;
	int rc = qp_usable(q);
	if (rc)
		return rc;
	if (q->sq.count >= q->d->send_depth)
		return PRISM_E_FULL;
	struct ibv_sge sge = {
		.addr = (uintptr_t)wr->local, .length = wr->len, .lkey = wr->lkey};
	struct ibv_send_wr swr = {.wr_id = wrid(q, false, q->sq.head),
				  .sg_list = &sge,
				  .num_sge = wr->len ? 1 : 0,
				  .opcode = opc[wr->op],
				  .send_flags = wr->signaled ? IBV_SEND_SIGNALED : 0};
	struct wq_slot s = {.wr_id = wr->wr_id,
			    .op = (uint8_t)wr->op,
			    .flags = wr->signaled ? SLOT_USER_SIG : 0};
	if (wr->inline_data && wr->op != RDEV_READ && wr->len <= q->max_inline)
		swr.send_flags |= IBV_SEND_INLINE;
	/* An SQ entry is freed only by a CQE at or after it, so a queue full of unsignalled
	 * WRs would never drain: the WR that fills it is signalled by us. */
	if (!wr->signaled && q->sq.count + 1 >= q->d->send_depth) {
		swr.send_flags |= IBV_SEND_SIGNALED;
		s.flags |= SLOT_FORCED;
	}
	if (wr->op != RDEV_SEND) {
		swr.wr.rdma.remote_addr = wr->remote_addr;
		swr.wr.rdma.rkey = wr->rkey;
	}
	rc = verbs_post_send(q->qp, &swr);
	if (rc)
		return -rc;
	wq_push(&q->sq, s);
	return 0;
}

static int vd_post_recv(rdev_qp *q, void *buf, uint32_t len, uint32_t lkey, uint64_t wr_id)
{
	if (!q || (!buf && len))
		return -EINVAL;
	int rc = qp_usable(q);
	if (rc)
		return rc;
	if (q->rq.count >= q->d->recv_depth)
		return PRISM_E_FULL;
	struct ibv_sge sge = {.addr = (uintptr_t)buf, .length = len, .lkey = lkey};
	struct ibv_recv_wr rwr = {
		.wr_id = wrid(q, true, q->rq.head), .sg_list = &sge, .num_sge = len ? 1 : 0};
	rc = verbs_post_recv(q->qp, &rwr);
	if (rc)
		return -rc;
	wq_push(&q->rq, (struct wq_slot){.wr_id = wr_id, .op = RDEV_RECV});
	return 0;
}

/* ibv_post_send() rings the doorbell itself: nothing is batched here. */
static int vd_flush(rdev *d)
{
	(void)d;
	return 0;
}

static void vd_destroy_qp(rdev_qp *q)
{
	if (q)
		qp_free(q);
}

const rdev_ops rdev__verbs_ops = {
	.name = "verbs",
	.open = vd_open,
	.close = vd_close,
	.fd = vd_fd,
	.arm = vd_arm,
	.poll = vd_poll,
	.reg_mr = vd_reg_mr,
	.dereg_mr = vd_dereg_mr,
	.listen = vd_listen,
	.connect = vd_connect,
	.set_ctx = vd_set_ctx,
	.peer = vd_peer,
	.grant = vd_grant,
	.post_send = vd_post_send,
	.post_recv = vd_post_recv,
	.flush = vd_flush,
	.destroy_qp = vd_destroy_qp,
};
