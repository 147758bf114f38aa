/* master.c — the configuration master of the GCS's chains (see gcs/chain.h): heartbeats,
 * failure detection, repair by telling replicas their new successors and roles, and the
 * configuration for clients, sent when they ask and again whenever it changes. */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/wire.h"
#include "gcs/chain.h"
#include "gcs_int.h"

#define LOGM "gcs"
#define MAX_REPLICAS 8
/* 5 ms between heartbeats: a few per failure timeout, cheap next to the write traffic. */
#define PING_NS 5000000ull

/* A link's context: a replica the master watches, or a client it tells the
 * configuration. */
enum { LINK_MEMBER = 1, LINK_CLIENT = 2 };

typedef struct member {
	int kind; /* LINK_MEMBER */
	int shard;
	char addr[TRANSPORT_ADDR_MAX];
	transport_conn *c;
	gcs_outbox ob;
	bool up, dead;
	uint64_t last_pong;
} member;

typedef struct mclient {
	int kind; /* LINK_CLIENT */
	transport_conn *c;
	gcs_outbox ob;
	bool wants; /* asked for the configuration: gets every change */
	struct mclient *prev, *next;
} mclient;

typedef struct chain {
	member m[MAX_REPLICAS];
	int n;
} chain;

struct gcs_master {
	transport *t;
	chain *ch;
	int shards;
	uint64_t timeout_ns, next_ping, ping_seq;
	uint64_t epoch; /* the configuration's version: + 1 on every change */
	bool changed;   /* clients are told at the end of this poll */
	mclient *clients;
	uint8_t *cfg; /* the encoded configuration, rebuilt on change */
	size_t cfg_len;
};

static int live_after(const chain *ch, int i)
{
	int j = i + 1;
	while (j < ch->n && ch->m[j].dead)
		j++;
	return j;
}

static int send_next(gcs_master *m, chain *ch, int i)
{
	int j = live_after(ch, i);
	const char *next = j < ch->n ? ch->m[j].addr : "";
	m->changed = true;
	return gcs__out(&ch->m[i].ob, GCS_M_SET_NEXT, 0, next, strlen(next));
}

static int send_role(chain *ch, int i, uint8_t flags)
{
	return gcs__out(&ch->m[i].ob, GCS_M_ROLE, 0, &flags, 1);
}

/* The live members of a chain, head first: their indices; the count. */
static int live(const chain *ch, int *idx)
{
	int n = 0;
	for (int i = 0; i < ch->n; i++)
		if (!ch->m[i].dead)
			idx[n++] = i;
	return n;
}

static int connect_member(gcs_master *m, int shard, const char *addr, member *x)
{
	*x = (member){.kind = LINK_MEMBER, .shard = shard, .last_pong = prism_now_ns()};
	snprintf(x->addr, sizeof(x->addr), "%s", addr);
	int rc = transport_connect(m->t, x->addr, x, &x->c);
	x->ob.c = x->c;
	return rc;
}

int gcs_master_open(const gcs_master_opts *o, char *addr, size_t addr_len, gcs_master **out)
{
	*out = NULL;
	if (!o || o->shards < 1 || o->shards > GCS_MAX_SHARDS || o->replicas < 1 ||
	    o->replicas > MAX_REPLICAS || !o->timeout_ns || !o->addrs || (o->listen && !addr))
		return -EINVAL;
	gcs_master *m = prism_calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->ch = prism_calloc((size_t)o->shards, sizeof(*m->ch));
	transport_opts to = {.backend = o->backend};
	memcpy(to.token, o->token, sizeof(to.token));
	int rc = m->ch ? transport_create(&to, &m->t) : -ENOMEM;
	m->shards = o->shards;
	m->timeout_ns = o->timeout_ns;
	if (rc == 0 && o->listen)
		rc = transport_listen(m->t, o->listen, addr, addr_len);
	/* Every address is known before any replica is told its successor. */
	for (int s = 0; rc == 0 && s < o->shards; s++) {
		chain *ch = &m->ch[s];
		ch->n = o->replicas;
		for (int i = 0; rc == 0 && i < ch->n; i++)
			rc = connect_member(m, s, o->addrs[s * o->replicas + i], &ch->m[i]);
		for (int i = 0; rc == 0 && i < ch->n; i++) {
			rc = send_next(m, ch, i);
			uint8_t f = (i == 0 ? GCS_ROLE_HEAD : 0) |
				    (i == ch->n - 1 ? GCS_ROLE_SERVE : 0);
			if (rc == 0)
				rc = send_role(ch, i, f);
		}
	}
	if (rc) {
		gcs_master_destroy(m);
		return rc;
	}
	*out = m;
	return 0;
}

int gcs_master_create(enum transport_backend backend, const uint8_t *token,
		      const char *const *replicas, int n, uint64_t timeout_ns, gcs_master **out)
{
	gcs_master_opts o = {.backend = backend,
			     .shards = 1,
			     .replicas = n,
			     .addrs = replicas,
			     .timeout_ns = timeout_ns};
	memcpy(o.token, token, sizeof(o.token));
	return gcs_master_open(&o, NULL, 0, out);
}

int gcs_master_add_to(gcs_master *m, int shard, const char *replica)
{
	if (shard < 0 || shard >= m->shards || !replica)
		return -EINVAL;
	chain *ch = &m->ch[shard];
	if (ch->n == MAX_REPLICAS)
		return -ENOSPC;
	member *x = &ch->m[ch->n];
	int rc = connect_member(m, shard, replica, x);
	if (rc)
		return rc;
	ch->n++;
	/* The new tail serves no reads until its predecessor has passed it everything and
	 * hands them over (GCS_M_TAKE_TAIL); the old tail gets it as successor. */
	rc = send_next(m, ch, ch->n - 1);
	for (int p = ch->n - 2; rc == 0 && p >= 0; p--)
		if (!ch->m[p].dead)
			return send_next(m, ch, p);
	return rc;
}

int gcs_master_add(gcs_master *m, const char *replica)
{
	return gcs_master_add_to(m, 0, replica);
}

static void client_free(gcs_master *m, mclient *k)
{
	if (k->prev)
		k->prev->next = k->next;
	else
		m->clients = k->next;
	if (k->next)
		k->next->prev = k->prev;
	gcs__out_free(&k->ob);
	prism_free(k);
}

void gcs_master_destroy(gcs_master *m)
{
	if (!m)
		return;
	transport_destroy(m->t);
	for (int s = 0; m->ch && s < m->shards; s++)
		for (int i = 0; i < m->ch[s].n; i++)
			gcs__out_free(&m->ch[s].m[i].ob);
	while (m->clients)
		client_free(m, m->clients);
	prism_free(m->ch);
	prism_free(m->cfg);
	prism_free(m);
}

/* Cut member i out: join its live predecessor to its live successor; a new head drops
 * its predecessor, a new tail serves the reads. */
static int cut(gcs_master *m, member *x, const char *why)
{
	chain *ch = &m->ch[x->shard];
	int i = (int)(x - ch->m);
	x->dead = true;
	x->up = false;
	m->changed = true;
	PRISM_LOG(PRISM_LOG_WARN, LOGM, "replica %s (shard %d) is dead (%s): cutting it out",
		  x->addr, x->shard, why);
	if (x->c) {
		transport_close(x->c);
		x->c = NULL;
		x->ob.c = NULL;
		x->ob.len = 0;
	}
	int idx[MAX_REPLICAS], n = live(ch, idx);
	if (n == 0) {
		PRISM_LOG(PRISM_LOG_ERROR, LOGM, "shard %d has no live replica left", x->shard);
		return 0;
	}
	int rc = 0;
	bool was_tail = live_after(ch, i) == ch->n;
	for (int p = i - 1; p >= 0 && rc == 0; p--)
		if (!ch->m[p].dead) {
			rc = send_next(m, ch, p);
			if (rc == 0 && was_tail)
				rc = send_role(ch, p,
					       (p == idx[0] ? GCS_ROLE_HEAD : 0) |
						       GCS_ROLE_SERVE);
			return rc;
		}
	/* The head died: its successor is the new head. */
	return send_role(ch, idx[0], GCS_ROLE_HEAD | (n == 1 ? GCS_ROLE_SERVE : 0));
}

/* The configuration clients get: u64 epoch, u32 shards, per shard u32 n + addresses. */
static int encode_config(gcs_master *m)
{
	size_t cap = 12;
	for (int s = 0; s < m->shards; s++)
		cap += 4 + (size_t)m->ch[s].n * (4 + TRANSPORT_ADDR_MAX);
	uint8_t *b = prism_realloc(m->cfg, cap);
	if (!b)
		return -ENOMEM;
	m->cfg = b;
	prism_wire_writer w;
	prism_wire_writer_init(&w, b, cap);
	prism_wire_put_u64(&w, m->epoch);
	prism_wire_put_u32(&w, (uint32_t)m->shards);
	for (int s = 0; s < m->shards; s++) {
		int idx[MAX_REPLICAS], n = live(&m->ch[s], idx);
		prism_wire_put_u32(&w, (uint32_t)n);
		for (int k = 0; k < n; k++) {
			const char *a = m->ch[s].m[idx[k]].addr;
			prism_wire_put_bytes(&w, a, strlen(a));
		}
	}
	return prism_wire_writer_finish(&w, &m->cfg_len);
}

static void flush(gcs_master *m)
{
	if (m->changed) {
		m->epoch++;
		m->changed = false;
		if (encode_config(m) == 0)
			for (mclient *k = m->clients; k; k = k->next)
				if (k->wants)
					gcs__out(&k->ob, GCS_M_CONFIG, 0, m->cfg, m->cfg_len);
	}
	for (int s = 0; s < m->shards; s++)
		for (int i = 0; i < m->ch[s].n; i++)
			if (m->ch[s].m[i].up && m->ch[s].m[i].ob.len)
				gcs__out_flush(&m->ch[s].m[i].ob);
	for (mclient *k = m->clients; k; k = k->next)
		if (k->ob.len)
			gcs__out_flush(&k->ob);
}

static int on_member_frame(void *arg, transport_conn *c, const prism_wire_hdr *h,
			   const uint8_t *p)
{
	(void)c;
	(void)p;
	member *x = arg;
	if (h->type != GCS_M_PONG || h->len != 8)
		return PRISM_E_PROTO;
	x->last_pong = prism_now_ns();
	return 0;
}

static int on_client_frame(void *arg, transport_conn *c, const prism_wire_hdr *h,
			   const uint8_t *p)
{
	(void)c;
	(void)p;
	gcs_master *m = ((void **)arg)[0];
	mclient *k = ((void **)arg)[1];
	if (h->type != GCS_M_CONFIG_GET || h->len)
		return PRISM_E_PROTO;
	k->wants = true;
	if (!m->cfg) {
		int rc = encode_config(m);
		if (rc)
			return rc;
	}
	return gcs__out(&k->ob, GCS_M_CONFIG, 0, m->cfg, m->cfg_len);
}

static void on_client_event(gcs_master *m, mclient *k, transport_event *e)
{
	switch (e->kind) {
	case TRANSPORT_EV_RECV: {
		void *a[2] = {m, k};
		int rc = gcs__frames(e->data, e->len, e->conn, on_client_frame, a);
		if (rc) {
			PRISM_LOG(PRISM_LOG_WARN, LOGM, "dropping a client: %s",
				  prism_strerror(rc));
			transport_close(e->conn);
		}
		break;
	}
	case TRANSPORT_EV_SEND:
		gcs__sent(e);
		break;
	case TRANSPORT_EV_CLOSED:
		client_free(m, k);
		break;
	default:
		break;
	}
}

int gcs_master_poll(gcs_master *m, int64_t timeout_ns)
{
	transport_event ev[32];
	flush(m);
	int n = transport_poll(m->t, ev, 32, timeout_ns), repairs = 0;
	if (n < 0)
		return n;
	for (int k = 0; k < n; k++) {
		transport_event *e = &ev[k];
		if (e->kind == TRANSPORT_EV_ACCEPTED) {
			mclient *c = prism_calloc(1, sizeof(*c));
			if (!c) {
				transport_close(e->conn);
				continue;
			}
			*c = (mclient){.kind = LINK_CLIENT, .c = e->conn, .next = m->clients};
			c->ob.c = e->conn;
			if (m->clients)
				m->clients->prev = c;
			m->clients = c;
			transport_conn_set_ctx(e->conn, c);
			continue;
		}
		if (e->kind == TRANSPORT_EV_SEND) {
			gcs__sent(e);
			continue;
		}
		/* The link's context now: an accepted link got its own after its event
		 * (a message may come in the same batch as the acceptance). */
		void *ctx = transport_conn_ctx(e->conn);
		int *kind = ctx;
		if (kind && *kind == LINK_CLIENT) {
			on_client_event(m, ctx, e);
			continue;
		}
		member *x = ctx;
		if (!x || x->dead)
			continue;
		switch (e->kind) {
		case TRANSPORT_EV_CONNECTED:
			x->up = true;
			x->last_pong = prism_now_ns();
			break;
		case TRANSPORT_EV_RECV:
			if (gcs__frames(e->data, e->len, e->conn, on_member_frame, x) != 0)
				repairs += cut(m, x, "bad answer") == 0;
			break;
		case TRANSPORT_EV_CLOSED:
			x->c = NULL;
			x->ob.c = NULL;
			repairs += cut(m, x, prism_strerror(e->status)) == 0;
			break;
		default:
			break;
		}
	}
	uint64_t now = prism_now_ns();
	for (int s = 0; s < m->shards; s++)
		for (int i = 0; i < m->ch[s].n; i++) {
			member *x = &m->ch[s].m[i];
			if (!x->dead && x->up && now - x->last_pong > m->timeout_ns)
				repairs += cut(m, x, "missed heartbeats") == 0;
		}
	if (now >= m->next_ping) {
		m->next_ping = now + PING_NS;
		m->ping_seq++;
		for (int s = 0; s < m->shards; s++)
			for (int i = 0; i < m->ch[s].n; i++) {
				member *x = &m->ch[s].m[i];
				if (x->up && !x->dead)
					gcs__out(&x->ob, GCS_M_PING, m->ping_seq, NULL, 0);
			}
	}
	flush(m);
	return repairs;
}

int gcs_master_shard_chain(const gcs_master *m, int shard, char (*addrs)[TRANSPORT_ADDR_MAX],
			   int max)
{
	if (shard < 0 || shard >= m->shards)
		return -EINVAL;
	int idx[MAX_REPLICAS], n = live(&m->ch[shard], idx);
	for (int k = 0; k < n && k < max; k++)
		snprintf(addrs[k], TRANSPORT_ADDR_MAX, "%s", m->ch[shard].m[idx[k]].addr);
	return n < max ? n : max;
}

int gcs_master_chain(const gcs_master *m, char (*addrs)[TRANSPORT_ADDR_MAX], int max)
{
	return gcs_master_shard_chain(m, 0, addrs, max);
}

int gcs_master_fd(const gcs_master *m)
{
	return transport_fd(m->t);
}
