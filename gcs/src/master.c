/* master.c — the configuration master of a chain (see gcs/chain.h): heartbeats, failure
 * detection, repair by telling replicas their new successors. */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "gcs/chain.h"
#include "gcs_int.h"

#define LOGM "gcs"
#define MAX_REPLICAS 8
/* 5 ms between heartbeats: a few per failure timeout, cheap next to the write traffic. */
#define PING_NS 5000000ull

typedef struct member {
	char addr[TRANSPORT_ADDR_MAX];
	transport_conn *c;
	gcs_outbox ob;
	bool up, dead;
	uint64_t last_pong;
} member;

struct gcs_master {
	transport *t;
	member m[MAX_REPLICAS];
	int n;
	uint64_t timeout_ns, next_ping, ping_seq;
};

static int send_next(gcs_master *m, int i)
{
	int j = i + 1;
	while (j < m->n && m->m[j].dead)
		j++;
	const char *next = j < m->n ? m->m[j].addr : "";
	return gcs__out(&m->m[i].ob, GCS_M_SET_NEXT, 0, next, strlen(next));
}

int gcs_master_create(enum transport_backend backend, const uint8_t *token,
		      const char *const *replicas, int n, uint64_t timeout_ns, gcs_master **out)
{
	*out = NULL;
	if (n < 1 || n > MAX_REPLICAS || !timeout_ns)
		return -EINVAL;
	gcs_master *m = prism_calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	transport_opts o = {.backend = backend};
	memcpy(o.token, token, sizeof(o.token));
	int rc = transport_create(&o, &m->t);
	m->n = n;
	m->timeout_ns = timeout_ns;
	uint64_t now = prism_now_ns();
	for (int i = 0; i < n; i++)
		snprintf(m->m[i].addr, sizeof(m->m[i].addr), "%s", replicas[i]);
	/* Every address is known before any replica is told its successor. */
	for (int i = 0; rc == 0 && i < n; i++) {
		member *x = &m->m[i];
		x->last_pong = now;
		rc = transport_connect(m->t, x->addr, x, &x->c);
		x->ob.c = x->c;
		if (rc == 0)
			rc = send_next(m, i);
	}
	if (rc) {
		gcs_master_destroy(m);
		return rc;
	}
	*out = m;
	return 0;
}

int gcs_master_add(gcs_master *m, const char *replica)
{
	if (m->n == MAX_REPLICAS)
		return -ENOSPC;
	member *x = &m->m[m->n];
	*x = (member){.last_pong = prism_now_ns()};
	snprintf(x->addr, sizeof(x->addr), "%s", replica);
	int rc = transport_connect(m->t, x->addr, x, &x->c);
	if (rc)
		return rc;
	x->ob.c = x->c;
	m->n++;
	/* It is the tail (it says so itself too); the old tail gets it as successor. */
	rc = send_next(m, m->n - 1);
	for (int p = m->n - 2; rc == 0 && p >= 0; p--)
		if (!m->m[p].dead)
			return send_next(m, p);
	return rc;
}

void gcs_master_destroy(gcs_master *m)
{
	if (!m)
		return;
	transport_destroy(m->t);
	for (int i = 0; i < m->n; i++)
		gcs__out_free(&m->m[i].ob);
	prism_free(m);
}

/* Cut member i out: join its live predecessor to its live successor. */
static int cut(gcs_master *m, int i, const char *why)
{
	member *x = &m->m[i];
	x->dead = true;
	x->up = false;
	PRISM_LOG(PRISM_LOG_WARN, LOGM, "replica %s is dead (%s): cutting it out of the chain",
		  x->addr, why);
	if (x->c) {
		transport_close(x->c);
		x->c = NULL;
		x->ob.c = NULL;
		x->ob.len = 0;
	}
	for (int p = i - 1; p >= 0; p--)
		if (!m->m[p].dead)
			return send_next(m, p);
	return 0; /* the head died: its successor is the new head */
}

static void flush(gcs_master *m)
{
	for (int i = 0; i < m->n; i++)
		if (m->m[i].up && m->m[i].ob.len)
			gcs__out_flush(&m->m[i].ob);
}

static int on_frame(void *arg, transport_conn *c, const prism_wire_hdr *h, const uint8_t *p)
{
	(void)c;
	(void)p;
	member *x = arg;
	if (h->type != GCS_M_PONG || h->len != 8)
		return PRISM_E_PROTO;
	x->last_pong = prism_now_ns();
	return 0;
}

int gcs_master_poll(gcs_master *m, int64_t timeout_ns)
{
	transport_event ev[32];
	flush(m);
	int n = transport_poll(m->t, ev, 32, timeout_ns), repairs = 0;
	if (n < 0)
		return n;
	for (int k = 0; k < n; k++) {
		member *x = ev[k].ctx;
		if (!x || x->dead)
			continue;
		switch (ev[k].kind) {
		case TRANSPORT_EV_CONNECTED:
			x->up = true;
			x->last_pong = prism_now_ns();
			break;
		case TRANSPORT_EV_RECV:
			if (gcs__frames(ev[k].data, ev[k].len, ev[k].conn, on_frame, x) != 0)
				repairs += cut(m, (int)(x - m->m), "bad answer") == 0;
			break;
		case TRANSPORT_EV_SEND:
			gcs__sent(&ev[k]);
			break;
		case TRANSPORT_EV_CLOSED:
			x->c = NULL;
			x->ob.c = NULL;
			repairs += cut(m, (int)(x - m->m), prism_strerror(ev[k].status)) == 0;
			break;
		default:
			break;
		}
	}
	uint64_t now = prism_now_ns();
	for (int i = 0; i < m->n; i++) {
		member *x = &m->m[i];
		if (!x->dead && x->up && now - x->last_pong > m->timeout_ns)
			repairs += cut(m, i, "missed heartbeats") == 0;
	}
	if (now >= m->next_ping) {
		m->next_ping = now + PING_NS;
		m->ping_seq++;
		for (int i = 0; i < m->n; i++)
			if (m->m[i].up && !m->m[i].dead)
				gcs__out(&m->m[i].ob, GCS_M_PING, m->ping_seq, NULL, 0);
	}
	flush(m);
	return repairs;
}

int gcs_master_chain(const gcs_master *m, char (*addrs)[TRANSPORT_ADDR_MAX], int max)
{
	int n = 0;
	for (int i = 0; i < m->n && n < max; i++)
		if (!m->m[i].dead)
			snprintf(addrs[n++], TRANSPORT_ADDR_MAX, "%s", m->m[i].addr);
	return n;
}
