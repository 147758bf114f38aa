/* proto.c — segment layout and ring message framing; see sched/proto.h. */
#include <errno.h>
#include <string.h>

#include "base/error.h"
#include "base/ring.h"
#include "sched/proto.h"

static uint64_t align(uint64_t v, uint64_t to)
{
	return (v + to - 1) / to * to;
}

int sched_layout_compute(uint64_t objstore_size, struct sched_layout *l)
{
	uint64_t ctl = prism_ring_memsize(SCHED_SLOT, SCHED_CTL_SLOTS);
	uint64_t lease = prism_ring_memsize(SCHED_SLOT, SCHED_LEASE_SLOTS);
	if (!l || ctl == 0 || lease == 0 || objstore_size > (1ull << 46))
		return -EINVAL;
	memset(l, 0, sizeof(*l));
	l->ctl_ring_bytes = align(ctl, 64);
	l->lease_ring_bytes = align(lease, 64);
	l->clients_off = 4096;
	l->ctl_off =
		align(l->clients_off + SCHED_MAX_CLIENTS * sizeof(struct sched_client), 4096);
	l->leases_off = align(l->ctl_off + 2ull * SCHED_MAX_CLIENTS * l->ctl_ring_bytes, 4096);
	l->lease_rings_off =
		align(l->leases_off + SCHED_MAX_LEASES * sizeof(struct sched_lease), 4096);
	l->objstore_off =
		align(l->lease_rings_off + 2ull * SCHED_MAX_LEASES * l->lease_ring_bytes, 4096);
	l->objstore_size = align(objstore_size, 4096);
	l->seg_size = l->objstore_off + l->objstore_size;
	return 0;
}

int sched_hdr_check(const struct sched_node_hdr *h, uint64_t seg_size)
{
	struct sched_layout l;
	if (seg_size < sizeof(*h))
		return PRISM_E_CORRUPT;
	if (h->magic != SCHED_SEG_MAGIC)
		return PRISM_E_BAD_MAGIC;
	if (h->version != SCHED_SEG_VERSION)
		return PRISM_E_BAD_VERSION;
	/* Recompute from the one free parameter and demand an exact match: a header that
	 * differs anywhere is not one this build can trust. */
	if (sched_layout_compute(h->objstore_size, &l) != 0 || h->seg_size != seg_size ||
	    l.seg_size != seg_size || h->clients_off != l.clients_off ||
	    h->ctl_off != l.ctl_off || h->ctl_ring_bytes != l.ctl_ring_bytes ||
	    h->leases_off != l.leases_off || h->lease_rings_off != l.lease_rings_off ||
	    h->lease_ring_bytes != l.lease_ring_bytes || h->objstore_off != l.objstore_off ||
	    h->max_clients != SCHED_MAX_CLIENTS || h->max_leases != SCHED_MAX_LEASES ||
	    h->ctl_slots != SCHED_CTL_SLOTS || h->lease_slots != SCHED_LEASE_SLOTS ||
	    h->nres < 2 || h->nres > SCHED_MAX_RES)
		return PRISM_E_CORRUPT;
	for (uint32_t i = 0; i < h->nres; i++)
		if (memchr(h->res[i].name, '\0', SCHED_RES_NAME) == NULL)
			return PRISM_E_CORRUPT;
	return 0;
}

int sched_msg_send(prism_ring *r, const struct sched_msg *msg)
{
	uint32_t n = sched_msg_slots(msg->len);
	if (msg->len < sizeof(*msg) || msg->nslots != n || n > SCHED_LEASE_SLOTS)
		return -EINVAL;
	return prism_ring_enqueue_bulk(r, msg, n) == n ? 0 : PRISM_E_FULL;
}

int sched_msg_recv(prism_ring *r, void *buf, size_t cap)
{
	struct sched_msg *m = buf;
	if (cap < SCHED_SLOT)
		return -EINVAL;
	if (prism_ring_dequeue_bulk(r, buf, 1) != 1)
		return 0;
	uint32_t n = sched_msg_slots(m->len);
	if (m->len < sizeof(*m) || m->nslots != n || n > prism_ring_capacity(r))
		return PRISM_E_CORRUPT;
	if (n == 1)
		return (int)m->len;
	if ((size_t)n * SCHED_SLOT > cap) {
		/* Too big for the caller: drop the rest slot by slot so the ring stays in
		 * step. The sender published the whole message at once, so it is there. */
		uint8_t scratch[SCHED_SLOT];
		for (uint32_t i = 1; i < n; i++)
			if (prism_ring_dequeue_bulk(r, scratch, 1) != 1)
				return PRISM_E_CORRUPT;
		return PRISM_E_TOO_BIG;
	}
	if (prism_ring_dequeue_bulk(r, (uint8_t *)buf + SCHED_SLOT, n - 1) != n - 1)
		return PRISM_E_CORRUPT;
	return (int)m->len;
}
