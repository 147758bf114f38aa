/* wire.c — frame header codec and the payload field writer and reader; see base/wire.h. */
#include <string.h>

#include "base/error.h"
#include "base/wire.h"

/* ---- Frames ---- */

static void store_hdr(uint8_t *buf, const prism_wire_hdr *h)
{
	prism_le32_store(buf + 0, PRISM_WIRE_MAGIC);
	prism_le16_store(buf + 4, PRISM_WIRE_VERSION);
	prism_le16_store(buf + 6, h->type);
	prism_le32_store(buf + 8, h->flags);
	prism_le32_store(buf + 12, h->len);
	prism_le64_store(buf + 16, h->req_id);
}

int prism_wire_encode_hdr(uint8_t *buf, size_t cap, const prism_wire_hdr *h)
{
	if (!buf || !h || h->type == 0)
		return -EINVAL;
	if (cap < PRISM_WIRE_HDR_SIZE)
		return -EMSGSIZE;
	store_hdr(buf, h);
	return 0;
}

int prism_wire_encode(uint8_t *buf, size_t cap, const prism_wire_hdr *h, const void *payload,
		      size_t *frame_len)
{
	if (!buf || !h || h->type == 0 || (!payload && h->len > 0))
		return -EINVAL;
	size_t total = prism_wire_frame_len(h);
	if (cap < total)
		return -EMSGSIZE;
	/* Payload first: it may sit where the header goes (or already be in place). */
	if (h->len > 0 && payload != buf + PRISM_WIRE_HDR_SIZE)
		memmove(buf + PRISM_WIRE_HDR_SIZE, payload, h->len);
	store_hdr(buf, h);
	if (frame_len)
		*frame_len = total;
	return 0;
}

int prism_wire_decode(const uint8_t *buf, size_t len, uint32_t max_payload, prism_wire_hdr *h,
		      const uint8_t **payload)
{
	if (payload)
		*payload = NULL;
	if (!h || (!buf && len > 0))
		return -EINVAL;
	memset(h, 0, sizeof(*h));
	if (len < PRISM_WIRE_HDR_SIZE)
		return PRISM_E_TRUNCATED;
	if (prism_le32_load(buf + 0) != PRISM_WIRE_MAGIC)
		return PRISM_E_BAD_MAGIC;
	if (prism_le16_load(buf + 4) != PRISM_WIRE_VERSION)
		return PRISM_E_BAD_VERSION;
	uint16_t type = prism_le16_load(buf + 6);
	if (type == 0)
		return PRISM_E_PROTO;
	uint32_t plen = prism_le32_load(buf + 12);
	if (plen > max_payload)
		return PRISM_E_TOO_BIG;
	h->type = type;
	h->flags = prism_le32_load(buf + 8);
	h->len = plen;
	h->req_id = prism_le64_load(buf + 16);
	if (len - PRISM_WIRE_HDR_SIZE < plen)
		return PRISM_E_TRUNCATED;
	if (payload)
		*payload = buf + PRISM_WIRE_HDR_SIZE;
	return 0;
}

/* ---- Writer ---- */

/* Stands in for a NULL buffer so that claiming or taking 0 bytes returns a valid pointer
 * (NULL + 0 is undefined, and NULL is how claim() and take() report failure).  Never
 * written: its capacity is 0. */
static uint8_t no_bytes[1];

void prism_wire_writer_init(prism_wire_writer *w, void *buf, size_t cap)
{
	w->buf = buf ? buf : no_bytes;
	w->cap = buf ? cap : 0;
	w->len = 0;
	w->err = 0;
}

/* Claim n bytes and return where they start, or NULL after setting the sticky error. */
static uint8_t *claim(prism_wire_writer *w, size_t n)
{
	if (PRISM_UNLIKELY(w->err))
		return NULL;
	/* cap - len cannot underflow (len <= cap always), and unlike len + n it cannot wrap. */
	if (PRISM_UNLIKELY(n > w->cap - w->len)) {
		w->err = -EMSGSIZE;
		return NULL;
	}
	uint8_t *p = w->buf + w->len;
	w->len += n;
	return p;
}

static int fail_w(prism_wire_writer *w, int err)
{
	if (!w->err)
		w->err = err;
	return w->err;
}

int prism_wire_put_u8(prism_wire_writer *w, uint8_t v)
{
	uint8_t *p = claim(w, 1);
	if (!p)
		return w->err;
	p[0] = v;
	return 0;
}

int prism_wire_put_u16(prism_wire_writer *w, uint16_t v)
{
	uint8_t *p = claim(w, 2);
	if (!p)
		return w->err;
	prism_le16_store(p, v);
	return 0;
}

int prism_wire_put_u32(prism_wire_writer *w, uint32_t v)
{
	uint8_t *p = claim(w, 4);
	if (!p)
		return w->err;
	prism_le32_store(p, v);
	return 0;
}

int prism_wire_put_u64(prism_wire_writer *w, uint64_t v)
{
	uint8_t *p = claim(w, 8);
	if (!p)
		return w->err;
	prism_le64_store(p, v);
	return 0;
}

int prism_wire_put_i64(prism_wire_writer *w, int64_t v)
{
	/* Two's complement bits; the conversion to unsigned is defined for every value. */
	return prism_wire_put_u64(w, (uint64_t)v);
}

int prism_wire_put_f64(prism_wire_writer *w, double v)
{
	uint64_t bits;
	_Static_assert(sizeof(bits) == sizeof(v), "double must be 64-bit IEEE-754");
	memcpy(&bits, &v, sizeof(bits));
	return prism_wire_put_u64(w, bits);
}

int prism_wire_put_raw(prism_wire_writer *w, const void *src, size_t n)
{
	if (!src && n > 0)
		return fail_w(w, -EINVAL);
	uint8_t *p = claim(w, n);
	if (!p)
		return w->err;
	if (n > 0)
		memcpy(p, src, n);
	return 0;
}

int prism_wire_put_bytes(prism_wire_writer *w, const void *src, size_t n)
{
	if (!src && n > 0)
		return fail_w(w, -EINVAL);
	if (n > UINT32_MAX)
		return fail_w(w, PRISM_E_TOO_BIG);
	/* One claim for prefix and bytes, so a field is either all there or not at all;
	 * 4 + n cannot wrap with a 64-bit size_t. */
	uint8_t *p = claim(w, 4 + n);
	if (!p)
		return w->err;
	prism_le32_store(p, (uint32_t)n);
	if (n > 0)
		memcpy(p + 4, src, n);
	return 0;
}

int prism_wire_put_str(prism_wire_writer *w, const char *s)
{
	if (!s)
		return fail_w(w, -EINVAL);
	return prism_wire_put_bytes(w, s, strlen(s));
}

int prism_wire_put_id(prism_wire_writer *w, prism_id id)
{
	if (prism_id_kind(id) > PRISM_ID_KIND_MAX)
		return fail_w(w, -EINVAL);
	return prism_wire_put_raw(w, id.b, PRISM_ID_SIZE);
}

int prism_wire_reserve(prism_wire_writer *w, size_t n, uint8_t **out)
{
	uint8_t *p = claim(w, n);
	*out = p;
	if (!p)
		return w->err;
	if (n > 0)
		memset(p, 0, n);
	return 0;
}

int prism_wire_writer_finish(const prism_wire_writer *w, size_t *len)
{
	if (w->err)
		return w->err;
	if (len)
		*len = w->len;
	return 0;
}

/* ---- Reader ---- */

void prism_wire_reader_init(prism_wire_reader *r, const void *buf, size_t len)
{
	r->buf = buf ? buf : no_bytes;
	r->len = buf ? len : 0;
	r->off = 0;
	r->err = 0;
}

/* Take n bytes and return where they start, or NULL after setting the sticky error. */
static const uint8_t *take(prism_wire_reader *r, size_t n)
{
	if (PRISM_UNLIKELY(r->err))
		return NULL;
	if (PRISM_UNLIKELY(n > r->len - r->off)) {
		r->err = PRISM_E_TRUNCATED;
		return NULL;
	}
	const uint8_t *p = r->buf + r->off;
	r->off += n;
	return p;
}

static int fail_r(prism_wire_reader *r, int err)
{
	if (!r->err)
		r->err = err;
	return r->err;
}

int prism_wire_get_u8(prism_wire_reader *r, uint8_t *v)
{
	const uint8_t *p = take(r, 1);
	*v = p ? p[0] : 0;
	return p ? 0 : r->err;
}

int prism_wire_get_u16(prism_wire_reader *r, uint16_t *v)
{
	const uint8_t *p = take(r, 2);
	*v = p ? prism_le16_load(p) : 0;
	return p ? 0 : r->err;
}

int prism_wire_get_u32(prism_wire_reader *r, uint32_t *v)
{
	const uint8_t *p = take(r, 4);
	*v = p ? prism_le32_load(p) : 0;
	return p ? 0 : r->err;
}

int prism_wire_get_u64(prism_wire_reader *r, uint64_t *v)
{
	const uint8_t *p = take(r, 8);
	*v = p ? prism_le64_load(p) : 0;
	return p ? 0 : r->err;
}

int prism_wire_get_i64(prism_wire_reader *r, int64_t *v)
{
	uint64_t u;
	int rc = prism_wire_get_u64(r, &u);
	/* memcpy rather than a cast: converting an out-of-range unsigned value to a signed
	 * type is implementation-defined in C11. */
	memcpy(v, &u, sizeof(*v));
	return rc;
}

int prism_wire_get_f64(prism_wire_reader *r, double *v)
{
	uint64_t u;
	int rc = prism_wire_get_u64(r, &u);
	memcpy(v, &u, sizeof(*v)); /* 0 bits on failure: +0.0 */
	return rc;
}

int prism_wire_get_raw(prism_wire_reader *r, void *out, size_t n)
{
	const uint8_t *p = take(r, n);
	if (!p) {
		if (n > 0)
			memset(out, 0, n);
		return r->err;
	}
	if (n > 0)
		memcpy(out, p, n);
	return 0;
}

int prism_wire_get_view(prism_wire_reader *r, size_t n, const uint8_t **out)
{
	*out = take(r, n);
	return *out ? 0 : r->err;
}

int prism_wire_get_bytes(prism_wire_reader *r, uint32_t max, const uint8_t **out, uint32_t *n)
{
	*out = NULL;
	*n = 0;
	if (r->err)
		return r->err;
	/* Peek at the prefix so that a failure consumes nothing. */
	if (r->len - r->off < 4)
		return fail_r(r, PRISM_E_TRUNCATED);
	uint32_t len = prism_le32_load(r->buf + r->off);
	if (len > max)
		return fail_r(r, PRISM_E_TOO_BIG);
	if (len > r->len - r->off - 4)
		return fail_r(r, PRISM_E_TRUNCATED);
	*out = r->buf + r->off + 4;
	*n = len;
	r->off += 4 + (size_t)len;
	return 0;
}

int prism_wire_get_str(prism_wire_reader *r, uint32_t max, const char **s, uint32_t *n)
{
	*s = NULL;
	*n = 0;
	size_t start = r->off;
	const uint8_t *p;
	uint32_t len;
	int rc = prism_wire_get_bytes(r, max, &p, &len);
	if (rc)
		return rc;
	if (memchr(p, 0, len)) {
		r->off = start;
		return fail_r(r, PRISM_E_PROTO);
	}
	*s = (const char *)p;
	*n = len;
	return 0;
}

int prism_wire_get_id(prism_wire_reader *r, prism_id *id)
{
	memset(id, 0, sizeof(*id));
	if (r->err)
		return r->err;
	if (r->len - r->off < PRISM_ID_SIZE)
		return fail_r(r, PRISM_E_TRUNCATED);
	/* Check the kind before consuming, so a failure consumes nothing. */
	if (r->buf[r->off + PRISM_ID_SIZE - 1] > PRISM_ID_KIND_MAX)
		return fail_r(r, PRISM_E_PROTO);
	memcpy(id->b, take(r, PRISM_ID_SIZE), PRISM_ID_SIZE);
	return 0;
}

int prism_wire_reader_finish(const prism_wire_reader *r)
{
	if (r->err)
		return r->err;
	return r->off == r->len ? 0 : PRISM_E_PROTO;
}
