/* transport.c — the public interface: options, addresses, regions, links' operation
 * queues and the event queue; everything backend-specific goes through t->ops. */
#include <arpa/inet.h>
#include <netdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "base/wire.h"
#include "transport_int.h"

#define LOGM "transport"

/* ---- backends ---------------------------------------------------------------------- */

const char *transport_backend_name(enum transport_backend b)
{
	switch (b) {
	case TRANSPORT_TCP:
		return "tcp";
	case TRANSPORT_SOFTVERBS:
		return "softverbs";
	case TRANSPORT_VERBS:
		return "verbs";
	default:
		return "default";
	}
}

int transport_backend_parse(const char *name, enum transport_backend *out)
{
	static const enum transport_backend all[] = {TRANSPORT_TCP, TRANSPORT_SOFTVERBS,
						     TRANSPORT_VERBS};
	for (size_t i = 0; name && i < PRISM_ARRAY_LEN(all); i++) {
		if (strcmp(name, transport_backend_name(all[i])) == 0) {
			*out = all[i];
			return 0;
		}
	}
	return -EINVAL;
}

enum transport_backend transport_backend_of(const transport *t)
{
	return t->backend;
}

static const transport__ops *ops_for(enum transport_backend b)
{
	switch (b) {
	case TRANSPORT_TCP:
		return &transport__tcp_ops;
	case TRANSPORT_SOFTVERBS:
		return &transport__softverbs_ops;
	case TRANSPORT_VERBS:
		return &transport__verbs_ops;
	default:
		return NULL;
	}
}

static int pick_backend(enum transport_backend asked, enum transport_backend *out)
{
	if (asked != TRANSPORT_DEFAULT) {
		if (!ops_for(asked))
			return -EINVAL;
		*out = asked;
		return 0;
	}
	const char *env = getenv("PRISM_TRANSPORT");
	if (!env || !*env) {
		*out = TRANSPORT_TCP;
		return 0;
	}
	if (transport_backend_parse(env, out) != 0) {
		PRISM_LOG_E(LOGM, "PRISM_TRANSPORT=%s: expected tcp, verbs or softverbs", env);
		return PRISM_E_CONFIG;
	}
	return 0;
}

/* ---- endpoint ---------------------------------------------------------------------- */

int transport_create(const transport_opts *opts, transport **out)
{
	static const uint8_t zero[TRANSPORT_TOKEN_BYTES];
	*out = NULL;
	if (!opts || sodium_memcmp(opts->token, zero, sizeof(zero)) == 0)
		return -EINVAL;
	if (sodium_init() < 0)
		return -ENOMEM;
	enum transport_backend b;
	int rc = pick_backend(opts->backend, &b);
	if (rc)
		return rc;
	transport *t = prism_calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->opts = *opts;
	t->backend = b;
	t->ops = ops_for(b);
	prism_fifo_init(&t->evq, sizeof(transport_event));
	if (!t->opts.max_conns)
		t->opts.max_conns = 1024;
	if (!t->opts.zerocopy_min)
		t->opts.zerocopy_min = 64u << 10;
	if (!t->opts.handshake_ns)
		t->opts.handshake_ns = 5000000000ull;
	rc = t->ops->init(t);
	if (rc) {
		sodium_memzero(t->opts.token, sizeof(t->opts.token));
		prism_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

static void conn_free(transport_conn *c)
{
	c->t->ops->conn_free(c);
	for (uint64_t s = c->op_head; s < c->op_tail; s++)
		prism_free(transport__op_at(c, s)->copy);
	prism_free(c->ops);
	prism_free(c);
}

static void free_dead(transport *t)
{
	while (t->dead) {
		transport_conn *c = t->dead;
		t->dead = c->next;
		conn_free(c);
	}
}

static void unlink_conn(transport_conn *c)
{
	transport *t = c->t;
	if (c->prev)
		c->prev->next = c->next;
	else
		t->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	t->nconns--;
}

void transport_destroy(transport *t)
{
	if (!t)
		return;
	/* Regions go while the device still exists; then the backend stops all I/O, so no
	 * completion names a link freed below. */
	while (t->nmrs)
		transport_dereg(t->mrs[t->nmrs - 1]);
	t->ops->fini(t);
	while (t->conns) {
		transport_conn *c = t->conns;
		unlink_conn(c);
		conn_free(c);
	}
	free_dead(t);
	prism_free(t->mrs);
	prism_fifo_free(&t->evq);
	sodium_memzero(t->opts.token, sizeof(t->opts.token));
	prism_free(t);
}

/* ---- addresses --------------------------------------------------------------------- */

int transport__parse_addr(const char *addr, struct sockaddr_in *out)
{
	memset(out, 0, sizeof(*out));
	if (!addr)
		return -EINVAL;
	if (strncmp(addr, "tcp://", 6) == 0)
		addr += 6;
	const char *colon = strrchr(addr, ':');
	if (!colon || colon == addr || (size_t)(colon - addr) >= 256)
		return -EINVAL;
	char host[256];
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = 0;
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end || port > 65535)
		return -EINVAL;
	out->sin_family = AF_INET;
	out->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &out->sin_addr) == 1)
		return 0;
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
		return -EINVAL;
	out->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
	freeaddrinfo(res);
	return 0;
}

void transport__format_addr(const struct sockaddr_in *sa, char *buf, size_t len)
{
	char ip[INET_ADDRSTRLEN] = "?";
	inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip));
	snprintf(buf, len, "tcp://%s:%u", ip, (unsigned)ntohs(sa->sin_port));
}

int transport_listen(transport *t, const char *addr, char *bound, size_t bound_len)
{
	struct sockaddr_in sa;
	if (bound && bound_len)
		bound[0] = 0;
	if (t->listening)
		return -EBUSY;
	int rc = transport__parse_addr(addr, &sa);
	if (rc)
		return rc;
	uint16_t port = 0;
	rc = t->ops->listen(t, &sa, &port);
	if (rc)
		return rc;
	t->listening = true;
	sa.sin_port = htons(port);
	if (bound)
		transport__format_addr(&sa, bound, bound_len);
	return 0;
}

/* ---- links ------------------------------------------------------------------------- */

int transport__conn_new(transport *t, bool outbound, const struct sockaddr_in *peer,
			transport_conn **out)
{
	*out = NULL;
	if (t->nconns >= t->opts.max_conns)
		return -ENOSPC;
	transport_conn *c = prism_calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	/* 64 operations to start with; the ring doubles as more are outstanding. */
	c->ops = prism_calloc(64, sizeof(*c->ops));
	if (!c->ops) {
		prism_free(c);
		return -ENOMEM;
	}
	c->op_mask = 63;
	c->t = t;
	c->outbound = outbound;
	c->state = TCONN_CONNECTING;
	if (peer)
		c->peer = *peer;
	c->next = t->conns;
	if (t->conns)
		t->conns->prev = c;
	t->conns = c;
	t->nconns++;
	*out = c;
	return 0;
}

int transport_connect(transport *t, const char *addr, void *ctx, transport_conn **out)
{
	struct sockaddr_in sa;
	*out = NULL;
	int rc = transport__parse_addr(addr, &sa);
	if (rc)
		return rc;
	transport_conn *c;
	rc = transport__conn_new(t, true, &sa, &c);
	if (rc)
		return rc;
	c->ctx = ctx;
	rc = t->ops->connect(t, c, &sa);
	if (rc) {
		unlink_conn(c);
		conn_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void transport__conn_up(transport_conn *c)
{
	c->state = TCONN_UP;
	transport_event ev = {.kind = c->outbound ? TRANSPORT_EV_CONNECTED
						  : TRANSPORT_EV_ACCEPTED,
			      .conn = c,
			      .ctx = c->ctx};
	transport__emit(c->t, &ev);
}

void transport__conn_down(transport_conn *c, int status)
{
	if (c->state == TCONN_DEAD)
		return;
	bool announced = c->state != TCONN_CONNECTING || c->outbound;
	/* Only a lost peer leaves operations in doubt; otherwise they never ran. */
	int op_status = status == PRISM_E_PEER_GONE ? status : PRISM_E_FLUSHED;
	for (uint64_t s = c->op_head; s < c->op_tail; s++) {
		transport__op *op = transport__op_at(c, s);
		if (!op->done) {
			op->done = 1;
			op->status = op_status;
		}
	}
	transport__op_done(c, c->op_tail, 0);
	c->state = TCONN_DEAD;
	transport *t = c->t;
	unlink_conn(c);
	c->next = t->dead;
	t->dead = c;
	/* An accepted link that never proved itself was never announced: no event. */
	if (announced) {
		transport_event ev = {.kind = TRANSPORT_EV_CLOSED,
				      .status = status,
				      .conn = c,
				      .ctx = c->ctx};
		transport__emit(t, &ev);
	}
}

void transport_close(transport_conn *c)
{
	if (!c || c->state == TCONN_DEAD || c->state == TCONN_CLOSING)
		return;
	c->closed_by_user = true;
	c->state = TCONN_CLOSING;
	c->t->ops->close(c);
}

void transport_conn_set_ctx(transport_conn *c, void *ctx)
{
	c->ctx = ctx;
}

void *transport_conn_ctx(const transport_conn *c)
{
	return c->ctx;
}

int transport_conn_peer(const transport_conn *c, char *buf, size_t len)
{
	if (!buf || len < 32)
		return -EINVAL;
	transport__format_addr(&c->peer, buf, len);
	return 0;
}

/* ---- operations -------------------------------------------------------------------- */

transport__op *transport__op_at(transport_conn *c, uint64_t seq)
{
	return &c->ops[seq & c->op_mask];
}

static int op_grow(transport_conn *c)
{
	uint32_t n = c->op_mask + 1;
	transport__op *ops = prism_calloc((size_t)n * 2, sizeof(*ops));
	if (!ops)
		return -ENOMEM;
	for (uint64_t s = c->op_head; s < c->op_tail; s++)
		ops[s & (2 * n - 1)] = c->ops[s & c->op_mask];
	prism_free(c->ops);
	c->ops = ops;
	c->op_mask = 2 * n - 1;
	return 0;
}

static int op_post(transport_conn *c, enum top_kind kind, void *local, size_t len,
		   uint64_t raddr, uint32_t rkey, uint64_t wr_id, unsigned flags)
{
	if (c->state != TCONN_UP)
		return PRISM_E_CLOSED;
	if (c->op_tail - c->op_head > c->op_mask) {
		int rc = op_grow(c);
		if (rc)
			return rc;
	}
	transport__op *op = transport__op_at(c, c->op_tail);
	*op = (transport__op){.kind = (uint8_t)kind,
			      .signaled = (flags & TRANSPORT_SIGNALED) != 0,
			      .wr_id = wr_id,
			      .seq = c->op_tail,
			      .local = local,
			      .len = len,
			      .raddr = raddr,
			      .rkey = rkey};
	if (kind != TOP_SEND) {
		transport_mr *mr = transport__mr_local(c->t, local, len);
		if (!mr)
			return -EINVAL;
		op->lkey = mr->lkey;
	}
	c->op_tail++;
	int rc = c->t->ops->post(c, op);
	if (rc)
		c->op_tail--;
	return rc;
}

int transport_send(transport_conn *c, const void *buf, size_t len, uint64_t wr_id,
		   unsigned flags)
{
	if (len > TRANSPORT_MAX_MSG)
		return -EMSGSIZE;
	if (len && !buf)
		return -EINVAL;
	int rc = op_post(c, TOP_SEND, (void *)buf, len, 0, 0, wr_id, flags);
	if (rc == 0) {
		c->t->stats.msgs_sent++;
		c->t->stats.bytes_sent += len;
	}
	return rc;
}

int transport_read(transport_conn *c, void *local, size_t len, uint64_t remote_addr,
		   uint32_t rkey, uint64_t wr_id, unsigned flags)
{
	if (!len || len > TRANSPORT_MAX_MSG || !local)
		return -EINVAL;
	return op_post(c, TOP_READ, local, len, remote_addr, rkey, wr_id, flags);
}

int transport_write(transport_conn *c, const void *local, size_t len, uint64_t remote_addr,
		    uint32_t rkey, uint64_t wr_id, unsigned flags)
{
	if (!len || len > TRANSPORT_MAX_MSG || !local)
		return -EINVAL;
	return op_post(c, TOP_WRITE, (void *)local, len, remote_addr, rkey, wr_id, flags);
}

static enum transport_event_kind ev_kind(uint8_t k)
{
	return k == TOP_SEND   ? TRANSPORT_EV_SEND
	       : k == TOP_READ ? TRANSPORT_EV_READ
			       : TRANSPORT_EV_WRITE;
}

void transport__op_done(transport_conn *c, uint64_t seq, int status)
{
	if (seq < c->op_tail) {
		transport__op *op = transport__op_at(c, seq);
		if (op->done)
			return;
		op->done = 1;
		op->status = status;
	}
	/* Report in posting order: stop at the first operation still running. */
	while (c->op_head < c->op_tail) {
		transport__op *op = transport__op_at(c, c->op_head);
		if (!op->done)
			break;
		if (op->signaled || op->status) {
			transport_event ev = {.kind = ev_kind(op->kind),
					      .status = op->status,
					      .conn = c,
					      .ctx = c->ctx,
					      .wr_id = op->wr_id};
			transport__emit(c->t, &ev);
		}
		prism_free(op->copy);
		op->copy = NULL;
		c->op_head++;
	}
}

/* ---- events ------------------------------------------------------------------------ */

void transport__fifo_push(prism_fifo *q, const void *e)
{
	if (prism_fifo_push(q, e) != 0) {
		PRISM_LOG_E(LOGM, "out of memory queueing a completion; aborting");
		abort();
	}
}

int transport__emit(transport *t, const transport_event *ev)
{
	transport__fifo_push(&t->evq, ev);
	return 0;
}

static int drain_events(transport *t, transport_event *evs, int max)
{
	int n = 0;
	while (n < max && prism_fifo_pop(&t->evq, &evs[n]))
		n++;
	return n;
}

int transport_poll(transport *t, transport_event *evs, int max, int64_t timeout_ns)
{
	if (max <= 0 || !evs)
		return -EINVAL;
	/* Only once every queued event was returned: the data of RECV events handed out
	 * by earlier polls is recycled by progress, and links reported closed are freed. */
	if (!t->evq.len) {
		free_dead(t);
		int rc = t->ops->progress(t, timeout_ns);
		if (rc < 0)
			return rc;
	}
	return drain_events(t, evs, max);
}

int transport_flush(transport *t)
{
	return t->ops->flush(t);
}

int transport_fd(const transport *t)
{
	return t->ops->fd(t);
}

void transport_stats_get(const transport *t, transport_stats *out)
{
	*out = t->stats;
}

/* ---- regions ----------------------------------------------------------------------- */

uint32_t transport__new_key(transport *t)
{
	for (;;) {
		uint32_t k = randombytes_random();
		bool used = k == 0;
		for (uint32_t i = 0; i < t->nmrs && !used; i++)
			used = t->mrs[i]->rkey == k || t->mrs[i]->lkey == k;
		if (!used)
			return k;
	}
}

int transport_reg(transport *t, void *addr, size_t len, unsigned access, transport_mr **out)
{
	*out = NULL;
	uint8_t *p = addr;
	if (!addr || !len || (access & ~(TRANSPORT_REMOTE_READ | TRANSPORT_REMOTE_WRITE)) ||
	    (uintptr_t)p + len < (uintptr_t)p)
		return -EINVAL;
	uint32_t pos = 0;
	while (pos < t->nmrs && t->mrs[pos]->addr < p)
		pos++;
	if ((pos > 0 && t->mrs[pos - 1]->addr + t->mrs[pos - 1]->len > p) ||
	    (pos < t->nmrs && p + len > t->mrs[pos]->addr))
		return -EEXIST;
	if (t->nmrs == t->mrs_cap) {
		uint32_t cap = t->mrs_cap ? t->mrs_cap * 2 : 8;
		transport_mr **v = prism_realloc(t->mrs, (size_t)cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		t->mrs = v;
		t->mrs_cap = cap;
	}
	transport_mr *mr = prism_calloc(1, sizeof(*mr));
	if (!mr)
		return -ENOMEM;
	*mr = (transport_mr){.t = t, .addr = p, .len = len, .access = access};
	int rc = t->ops->reg(t, mr);
	if (rc) {
		prism_free(mr);
		return rc;
	}
	memmove(&t->mrs[pos + 1], &t->mrs[pos], (t->nmrs - pos) * sizeof(*t->mrs));
	t->mrs[pos] = mr;
	t->nmrs++;
	*out = mr;
	return 0;
}

void transport_dereg(transport_mr *mr)
{
	if (!mr)
		return;
	transport *t = mr->t;
	for (uint32_t i = 0; i < t->nmrs; i++) {
		if (t->mrs[i] != mr)
			continue;
		memmove(&t->mrs[i], &t->mrs[i + 1], (t->nmrs - i - 1) * sizeof(*t->mrs));
		t->nmrs--;
		break;
	}
	t->ops->dereg(t, mr);
	prism_free(mr);
}

void transport_mr_desc_get(const transport_mr *mr, transport_mr_desc *out)
{
	*out = (transport_mr_desc){.addr = (uintptr_t)mr->addr,
				   .len = mr->len,
				   .rkey = mr->rkey,
				   .access = mr->access};
}

int transport_mr_desc_encode(const transport_mr_desc *d, uint8_t *buf, size_t len)
{
	if (!buf || len < TRANSPORT_MR_DESC_BYTES)
		return -EINVAL;
	prism_le64_store(buf, d->addr);
	prism_le64_store(buf + 8, d->len);
	prism_le32_store(buf + 16, d->rkey);
	prism_le32_store(buf + 20, d->access);
	return 0;
}

int transport_mr_desc_decode(const uint8_t *buf, size_t len, transport_mr_desc *out)
{
	memset(out, 0, sizeof(*out));
	if (!buf || len < TRANSPORT_MR_DESC_BYTES)
		return -EINVAL;
	transport_mr_desc d = {.addr = prism_le64_load(buf),
			       .len = prism_le64_load(buf + 8),
			       .rkey = prism_le32_load(buf + 16),
			       .access = prism_le32_load(buf + 20)};
	if ((d.access & ~(TRANSPORT_REMOTE_READ | TRANSPORT_REMOTE_WRITE)) || !d.len ||
	    d.addr + d.len < d.addr)
		return -EINVAL;
	*out = d;
	return 0;
}

transport_mr *transport__mr_local(transport *t, const void *addr, size_t len)
{
	const uint8_t *p = addr;
	for (uint32_t i = 0; i < t->nmrs; i++) {
		transport_mr *mr = t->mrs[i];
		if (p >= mr->addr && len <= mr->len &&
		    p - mr->addr <= (ptrdiff_t)(mr->len - len))
			return mr;
	}
	return NULL;
}

int transport__mr_remote(transport *t, uint32_t rkey, uint64_t addr, uint64_t len,
			 unsigned access, uint8_t **p)
{
	*p = NULL;
	for (uint32_t i = 0; i < t->nmrs; i++) {
		transport_mr *mr = t->mrs[i];
		if (mr->rkey != rkey)
			continue;
		if ((mr->access & access) != access)
			return PRISM_E_BAD_KEY;
		uint64_t base = (uintptr_t)mr->addr;
		if (addr < base || len > mr->len || addr - base > mr->len - len)
			return PRISM_E_OUT_OF_BOUNDS;
		*p = mr->addr + (addr - base);
		return 0;
	}
	return PRISM_E_BAD_KEY;
}
