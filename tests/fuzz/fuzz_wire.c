/* fuzz_wire.c — libFuzzer target for base/wire.h.
 *
 * The input is a byte stream as a socket would deliver it: frames are decoded one after
 * another until the decoder refuses (truncated, bad magic, too big...), each decoded frame
 * is re-encoded and must give back the same bytes, and the same input is decoded against
 * a small limit too.  Each payload is parsed with the field reader in two layouts, so the
 * reader's bounds checks see arbitrary lengths: a sequence of (u8 tag, field) pairs where
 * the tag picks the get (bytes fields may hold nested sequences), and a fixed strict
 * layout.  Every tagged field is put back through a writer, which must reproduce the
 * input bytes exactly.  The target aborts only when the codec breaks one of its
 * documented promises; out-of-bounds reads are for the sanitizers to find.
 *
 * Coverage of the library itself needs it built with -fsanitize=fuzzer-no-link (e.g.
 * CMAKE_C_FLAGS); otherwise only this file guides the fuzzer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/wire.h"

/* 1 MiB: above any frame the fuzzer builds in practice; decode_small_limit() reaches
 * TOO_BIG through a 16-byte limit instead. */
#define MAX_PAYLOAD (1u << 20)
#define MAX_DEPTH 4

/* libFuzzer's entry point; declared here because no header provides it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)              \
	do {                     \
		if (!(cond))     \
			abort(); \
	} while (0)

static void parse_tagged(const uint8_t *p, size_t n, int depth);

/* A get failed: the reader must report the error again and keep its offset in range. */
static void check_failed(const prism_wire_reader *r, int rc)
{
	CHECK(rc < 0);
	CHECK(r->err == rc);
	CHECK(r->off <= r->len);
	CHECK(prism_wire_reader_finish(r) == rc);
}

/* One tagged field: the get the tag picks, then the matching put of what it returned into
 * w.  Returns the get's result. */
static int get_and_put(prism_wire_reader *r, prism_wire_writer *w, uint8_t tag, int depth)
{
	uint8_t u8;
	uint16_t u16;
	uint32_t u32, n;
	uint64_t u64;
	int64_t i64;
	double f;
	prism_id id;
	uint8_t raw[8], *hole;
	const uint8_t *p;
	const char *s;
	char str[64];
	int rc;

	switch (tag % 12) {
	case 0:
		if ((rc = prism_wire_get_u8(r, &u8)) == 0)
			prism_wire_put_u8(w, u8);
		return rc;
	case 1:
		if ((rc = prism_wire_get_u16(r, &u16)) == 0)
			prism_wire_put_u16(w, u16);
		return rc;
	case 2:
		if ((rc = prism_wire_get_u32(r, &u32)) == 0)
			prism_wire_put_u32(w, u32);
		return rc;
	case 3:
		if ((rc = prism_wire_get_u64(r, &u64)) == 0)
			prism_wire_put_u64(w, u64);
		return rc;
	case 4:
		if ((rc = prism_wire_get_i64(r, &i64)) == 0)
			prism_wire_put_i64(w, i64);
		return rc;
	case 5:
		if ((rc = prism_wire_get_f64(r, &f)) == 0)
			prism_wire_put_f64(w, f);
		return rc;
	case 6:
		if ((rc = prism_wire_get_id(r, &id)) == 0)
			prism_wire_put_id(w, id);
		return rc;
	case 7:
		if ((rc = prism_wire_get_raw(r, raw, tag % sizeof(raw))) == 0)
			prism_wire_put_raw(w, raw, tag % sizeof(raw));
		return rc;
	case 8:
		/* Tags from 128 up also cap the length, to reach TOO_BIG. */
		if ((rc = prism_wire_get_bytes(r, tag >= 128 ? tag : UINT32_MAX, &p, &n)) == 0)
			prism_wire_put_bytes(w, p, n);
		return rc;
	case 9:
		if ((rc = prism_wire_get_str(r, UINT32_MAX, &s, &n)) != 0)
			return rc;
		CHECK(memchr(s, 0, n) == NULL);
		if (n < sizeof(str)) {
			memcpy(str, s, n);
			str[n] = 0;
			prism_wire_put_str(w, str);
		} else {
			prism_wire_put_bytes(w, s, n);
		}
		return rc;
	case 10:
		/* A nested message: bytes that hold another tagged sequence. */
		if ((rc = prism_wire_get_bytes(r, UINT32_MAX, &p, &n)) != 0)
			return rc;
		prism_wire_put_bytes(w, p, n);
		if (depth < MAX_DEPTH)
			parse_tagged(p, n, depth + 1);
		return rc;
	default:
		if ((rc = prism_wire_get_view(r, tag >> 4, &p)) != 0)
			return rc;
		CHECK(p != NULL);
		if (prism_wire_reserve(w, tag >> 4, &hole) == 0)
			memcpy(hole, p, tag >> 4);
		return rc;
	}
}

/* A field read from in[0..n) was put back into a writer of capacity cap: the writer must
 * hold exactly the same bytes, or have refused the field whole when it did not fit. */
static void check_reencoded(const prism_wire_writer *w, size_t cap, const uint8_t *in, size_t n)
{
	if (n > cap) {
		CHECK(w->err == -EMSGSIZE && w->len == 0);
		CHECK(prism_wire_writer_finish(w, NULL) == -EMSGSIZE);
		return;
	}
	size_t len;
	CHECK(prism_wire_writer_finish(w, &len) == 0);
	CHECK(len == n && memcmp(w->buf, in, n) == 0);
}

/* A sequence of (u8 tag, field) pairs until the input or a get runs out.  Each field is
 * written back into a writer whose capacity (0..63 bytes) also comes from the tag, so
 * writer overflow is fuzzed alongside the reader. */
static void parse_tagged(const uint8_t *p, size_t n, int depth)
{
	prism_wire_reader r;
	prism_wire_reader_init(&r, p, n);
	for (;;) {
		size_t before = r.off;
		uint8_t tag;
		int rc = prism_wire_get_u8(&r, &tag);
		if (rc == 0) {
			uint8_t out[64];
			size_t cap = (size_t)(tag / 12) * 3;
			prism_wire_writer w;
			prism_wire_writer_init(&w, out, cap);
			before = r.off;
			rc = get_and_put(&r, &w, tag, depth);
			if (rc == 0)
				check_reencoded(&w, cap, r.buf + before, r.off - before);
		}
		if (rc != 0) {
			check_failed(&r, rc);
			/* A failed get consumes nothing. */
			CHECK(r.off == before);
			return;
		}
		if (prism_wire_reader_remaining(&r) == 0) {
			CHECK(prism_wire_reader_finish(&r) == 0);
			return;
		}
	}
}

/* A fixed, strict layout as a real message codec would read it: an id, a count, then
 * that many (str name, bytes value, f64) entries, and nothing after. */
static void parse_strict(const uint8_t *p, size_t n)
{
	prism_wire_reader r;
	prism_wire_reader_init(&r, p, n);
	prism_id id;
	uint16_t count;
	prism_wire_get_id(&r, &id);
	prism_wire_get_u16(&r, &count);
	for (unsigned i = 0; i < count && r.err == 0; i++) {
		const char *name;
		const uint8_t *val;
		uint32_t nlen, vlen;
		double w;
		prism_wire_get_str(&r, 255, &name, &nlen);
		prism_wire_get_bytes(&r, 4096, &val, &vlen);
		prism_wire_get_f64(&r, &w);
		if (r.err == 0)
			CHECK(nlen <= 255 && vlen <= 4096);
	}
	int rc = prism_wire_reader_finish(&r);
	CHECK(rc == 0 || rc == r.err || (rc == PRISM_E_PROTO && r.off < r.len));
}

/* Re-encode a decoded frame; the result must equal the input byte for byte, and one byte
 * less room must be refused. */
static void reencode(const uint8_t *frame, const prism_wire_hdr *h, const uint8_t *payload)
{
	uint8_t buf[256];
	size_t flen = prism_wire_frame_len(h);
	CHECK(prism_wire_encode_hdr(buf, PRISM_WIRE_HDR_SIZE, h) == 0);
	CHECK(memcmp(buf, frame, PRISM_WIRE_HDR_SIZE) == 0);
	if (flen > sizeof(buf))
		return;
	CHECK(prism_wire_encode(buf, flen - 1, h, payload, NULL) == -EMSGSIZE);
	size_t got = 0;
	CHECK(prism_wire_encode(buf, sizeof(buf), h, payload, &got) == 0);
	CHECK(got == flen && memcmp(buf, frame, flen) == 0);
}

/* The same bytes against a 16-byte limit: refused as TOO_BIG exactly when the payload is
 * longer, and otherwise decoded the same way as with the large limit. */
static void decode_small_limit(const uint8_t *p, size_t n, int rc, const prism_wire_hdr *h)
{
	prism_wire_hdr h2;
	int rc2 = prism_wire_decode(p, n, 16, &h2, NULL);
	if ((rc == 0 || (rc == PRISM_E_TRUNCATED && h->len > 0)) && h->len > 16) {
		CHECK(rc2 == PRISM_E_TOO_BIG);
		return;
	}
	CHECK(rc2 == rc);
	CHECK(memcmp(&h2, h, sizeof(h2)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	while (off < size) {
		prism_wire_hdr h;
		const uint8_t *payload;
		int rc = prism_wire_decode(data + off, size - off, MAX_PAYLOAD, &h, &payload);
		decode_small_limit(data + off, size - off, rc, &h);
		if (rc == PRISM_E_TRUNCATED) {
			/* The stream reader's contract: it needs more than it has. */
			CHECK(prism_wire_frame_len(&h) > size - off);
			CHECK(payload == NULL);
			break;
		}
		if (rc != 0) {
			CHECK(rc == PRISM_E_BAD_MAGIC || rc == PRISM_E_BAD_VERSION ||
			      rc == PRISM_E_PROTO || rc == PRISM_E_TOO_BIG);
			CHECK(payload == NULL && h.type == 0 && h.len == 0);
			break;
		}
		CHECK(h.type != 0 && h.len <= MAX_PAYLOAD);
		CHECK(payload == data + off + PRISM_WIRE_HDR_SIZE);
		CHECK(prism_wire_frame_len(&h) <= size - off);
		reencode(data + off, &h, payload);
		parse_tagged(payload, h.len, 0);
		parse_strict(payload, h.len);
		off += prism_wire_frame_len(&h);
	}
	return 0;
}
