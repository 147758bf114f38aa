/* frame.c — the chain protocol's frames: gathered per link, sent once per poll. */
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/wire.h"
#include "gcs_int.h"

int gcs__out(gcs_outbox *o, uint16_t type, uint64_t req_id, const void *p, size_t n)
{
	if (n > GCS_FRAME_MAX)
		return PRISM_E_TOO_BIG;
	size_t need = o->len + PRISM_WIRE_HDR_SIZE + n;
	if (need > o->cap) {
		size_t cap = o->cap ? o->cap : 16u << 10;
		while (cap < need)
			cap *= 2;
		uint8_t *b = prism_realloc(o->buf, cap);
		if (!b)
			return -ENOMEM;
		o->buf = b;
		o->cap = cap;
	}
	prism_wire_hdr h = {.type = type, .len = (uint32_t)n, .req_id = req_id};
	int rc = prism_wire_encode(o->buf + o->len, o->cap - o->len, &h, p, NULL);
	if (rc == 0)
		o->len = need;
	return rc;
}

int gcs__out_flush(gcs_outbox *o)
{
	if (!o->len || !o->c)
		return 0;
	if (o->len <= TRANSPORT_INLINE_MAX) {
		int rc = transport_send(o->c, o->buf, o->len, 0, 0);
		o->len = 0;
		return rc;
	}
	int rc = transport_send(o->c, o->buf, o->len, (uint64_t)(uintptr_t)o->buf,
				TRANSPORT_SIGNALED);
	if (rc)
		return rc;
	/* The transport sends it in place: the buffer is its until the completion. */
	o->buf = NULL;
	o->cap = o->len = 0;
	return 0;
}

void gcs__out_free(gcs_outbox *o)
{
	prism_free(o->buf);
	o->buf = NULL;
	o->cap = o->len = 0;
}

void gcs__sent(const transport_event *ev)
{
	if (ev->wr_id)
		prism_free((void *)(uintptr_t)ev->wr_id);
}

int gcs__frames(const uint8_t *buf, size_t len, transport_conn *c, gcs_frame_fn fn, void *arg)
{
	size_t off = 0;
	if (!len)
		return PRISM_E_PROTO;
	while (off < len) {
		prism_wire_hdr h;
		const uint8_t *p;
		int rc = prism_wire_decode(buf + off, len - off, GCS_FRAME_MAX, &h, &p);
		if (rc)
			return rc;
		rc = fn(arg, c, &h, p);
		if (rc)
			return rc;
		off += prism_wire_frame_len(&h);
	}
	return 0;
}
