/* Wire codec: byte-exact little-endian frames and fields, round trips at the extremes,
 * and every way a decoder or reader must refuse its input without reading out of bounds.
 * Inputs that should be rejected live in exact-size heap blocks so that AddressSanitizer
 * sees any read one byte past them. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/wire.h"

/* An exact-size heap copy of n bytes (at least 1 byte allocated, for malloc(0)). */
static uint8_t *dup_exact(const void *src, size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	cr_assert_not_null(p);
	if (n)
		memcpy(p, src, n);
	return p;
}

static prism_id test_id(void)
{
	prism_id id;
	for (int i = 0; i < PRISM_ID_SIZE; i++)
		id.b[i] = (uint8_t)(0xa0 + i);
	id.b[15] = PRISM_ID_ACTOR;
	return id;
}

/* ---- Frame header ---- */

static const uint8_t golden_hdr[PRISM_WIRE_HDR_SIZE] = {
	0x50, 0x52, 0x53, 0x4d,                         /* magic "PRSM" */
	0x01, 0x00,                                     /* version 1 */
	0x34, 0x12,                                     /* type 0x1234 */
	0x78, 0x56, 0x34, 0x12,                         /* flags 0x12345678 */
	0x03, 0x00, 0x00, 0x00,                         /* len 3 */
	0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* req_id */
};
static const prism_wire_hdr golden = {
	.type = 0x1234, .flags = 0x12345678, .len = 3, .req_id = 0x0102030405060708ull};

Test(wire, header_encoding_is_byte_exact_little_endian)
{
	uint8_t buf[PRISM_WIRE_HDR_SIZE];
	cr_assert_eq(prism_wire_encode_hdr(buf, sizeof(buf), &golden), 0);
	cr_assert_arr_eq(buf, golden_hdr, sizeof(buf));
	cr_assert_eq(memcmp(buf, "PRSM", 4), 0);
}

Test(wire, header_round_trips_extreme_values)
{
	static const prism_wire_hdr cases[] = {
		{.type = 1, .flags = 0, .len = 0, .req_id = 0},
		{.type = 0xffff, .flags = 0xffffffff, .len = 0, .req_id = UINT64_MAX},
		{.type = 0x8000, .flags = 0x80000001, .len = 0, .req_id = 1ull << 63},
	};
	for (size_t i = 0; i < PRISM_ARRAY_LEN(cases); i++) {
		uint8_t buf[PRISM_WIRE_HDR_SIZE];
		prism_wire_hdr h;
		const uint8_t *payload;
		cr_assert_eq(prism_wire_encode_hdr(buf, sizeof(buf), &cases[i]), 0);
		cr_assert_eq(prism_wire_decode(buf, sizeof(buf), 0, &h, &payload), 0);
		cr_assert_eq(h.type, cases[i].type);
		cr_assert_eq(h.flags, cases[i].flags);
		cr_assert_eq(h.len, 0);
		cr_assert_eq(h.req_id, cases[i].req_id);
		cr_assert_eq(payload, buf + PRISM_WIRE_HDR_SIZE);
		cr_assert_eq(prism_wire_frame_len(&h), PRISM_WIRE_HDR_SIZE);
	}
	/* The largest length encodes too (decode of it is checked against max_payload). */
	prism_wire_hdr big = {.type = 7, .len = UINT32_MAX}, h;
	uint8_t buf[PRISM_WIRE_HDR_SIZE];
	cr_assert_eq(prism_wire_encode_hdr(buf, sizeof(buf), &big), 0);
	cr_assert_eq(prism_wire_decode(buf, sizeof(buf), UINT32_MAX, &h, NULL),
		     PRISM_E_TRUNCATED);
	cr_assert_eq(h.len, UINT32_MAX);
	cr_assert_eq(prism_wire_frame_len(&h), (size_t)UINT32_MAX + PRISM_WIRE_HDR_SIZE);
}

Test(wire, encode_hdr_rejects_bad_arguments_and_small_buffers)
{
	uint8_t buf[PRISM_WIRE_HDR_SIZE];
	prism_wire_hdr zero = golden;
	zero.type = 0;
	cr_assert_eq(prism_wire_encode_hdr(buf, sizeof(buf), &zero), -EINVAL);
	cr_assert_eq(prism_wire_encode_hdr(NULL, sizeof(buf), &golden), -EINVAL);
	cr_assert_eq(prism_wire_encode_hdr(buf, sizeof(buf), NULL), -EINVAL);
	for (size_t cap = 0; cap < PRISM_WIRE_HDR_SIZE; cap++) {
		memset(buf, 0xee, sizeof(buf));
		cr_assert_eq(prism_wire_encode_hdr(buf, cap, &golden), -EMSGSIZE, "cap %zu",
			     cap);
		for (size_t i = 0; i < sizeof(buf); i++)
			cr_assert_eq(buf[i], 0xee, "cap %zu wrote byte %zu", cap, i);
	}
}

/* ---- Whole frames ---- */

Test(wire, encode_frame_round_trips)
{
	uint8_t buf[64];
	size_t flen = 0;
	cr_assert_eq(prism_wire_encode(buf, sizeof(buf), &golden, "abc", &flen), 0);
	cr_assert_eq(flen, PRISM_WIRE_HDR_SIZE + 3);
	cr_assert_arr_eq(buf, golden_hdr, PRISM_WIRE_HDR_SIZE);
	cr_assert_eq(memcmp(buf + PRISM_WIRE_HDR_SIZE, "abc", 3), 0);

	uint8_t *exact = dup_exact(buf, flen);
	prism_wire_hdr h;
	const uint8_t *payload;
	cr_assert_eq(prism_wire_decode(exact, flen, 3, &h, &payload), 0);
	cr_assert_eq(h.type, golden.type);
	cr_assert_eq(h.flags, golden.flags);
	cr_assert_eq(h.len, 3);
	cr_assert_eq(h.req_id, golden.req_id);
	cr_assert_eq(payload, exact + PRISM_WIRE_HDR_SIZE);
	cr_assert_eq(prism_wire_frame_len(&h), flen);
	free(exact);
}

Test(wire, encode_frame_with_payload_in_place_or_overlapping)
{
	/* Built in place by a writer: no copy needed. */
	uint8_t buf[64];
	prism_wire_writer w;
	prism_wire_writer_init(&w, buf + PRISM_WIRE_HDR_SIZE,
			       sizeof(buf) - PRISM_WIRE_HDR_SIZE);
	prism_wire_put_str(&w, "hi");
	size_t plen;
	cr_assert_eq(prism_wire_writer_finish(&w, &plen), 0);
	prism_wire_hdr h = {.type = 9, .len = (uint32_t)plen, .req_id = 5};
	size_t flen;
	cr_assert_eq(prism_wire_encode(buf, sizeof(buf), &h, buf + PRISM_WIRE_HDR_SIZE, &flen),
		     0);
	cr_assert_eq(flen, PRISM_WIRE_HDR_SIZE + 6);
	cr_assert_eq(memcmp(buf + PRISM_WIRE_HDR_SIZE, "\x02\0\0\0hi", 6), 0);

	/* A payload that starts where the header goes is moved before the header lands. */
	memcpy(buf, "0123456789", 10);
	h.len = 10;
	cr_assert_eq(prism_wire_encode(buf, sizeof(buf), &h, buf, NULL), 0);
	cr_assert_eq(memcmp(buf + PRISM_WIRE_HDR_SIZE, "0123456789", 10), 0);
	cr_assert_eq(prism_le32_load(buf), PRISM_WIRE_MAGIC);
}

Test(wire, encode_frame_rejects_bad_arguments)
{
	uint8_t buf[64];
	prism_wire_hdr h = golden;
	cr_assert_eq(prism_wire_encode(buf, sizeof(buf), &h, NULL, NULL), -EINVAL);
	h.len = 0;
	cr_assert_eq(prism_wire_encode(buf, sizeof(buf), &h, NULL, NULL), 0);
	h.type = 0;
	cr_assert_eq(prism_wire_encode(buf, sizeof(buf), &h, NULL, NULL), -EINVAL);
	cr_assert_eq(prism_wire_encode(NULL, sizeof(buf), &golden, "abc", NULL), -EINVAL);
	cr_assert_eq(prism_wire_encode(buf, sizeof(buf), NULL, "abc", NULL), -EINVAL);
}

Test(wire, encode_frame_fails_cleanly_at_every_short_capacity)
{
	const size_t need = PRISM_WIRE_HDR_SIZE + 3;
	uint8_t buf[64];
	for (size_t cap = 0; cap < need; cap++) {
		memset(buf, 0xee, sizeof(buf));
		size_t flen = 12345;
		cr_assert_eq(prism_wire_encode(buf, cap, &golden, "abc", &flen), -EMSGSIZE,
			     "cap %zu", cap);
		cr_assert_eq(flen, 12345);
		for (size_t i = 0; i < sizeof(buf); i++)
			cr_assert_eq(buf[i], 0xee, "cap %zu wrote byte %zu", cap, i);
	}
	cr_assert_eq(prism_wire_encode(buf, need, &golden, "abc", NULL), 0);
}

/* ---- Frame decoder ---- */

/* A valid frame: golden header, 3 bytes of payload. */
static size_t golden_frame(uint8_t *buf)
{
	memcpy(buf, golden_hdr, PRISM_WIRE_HDR_SIZE);
	memcpy(buf + PRISM_WIRE_HDR_SIZE, "xyz", 3);
	return PRISM_WIRE_HDR_SIZE + 3;
}

Test(wire, decode_rejects_every_truncation_and_says_what_it_needs)
{
	uint8_t frame[64];
	size_t n = golden_frame(frame);
	for (size_t len = 0; len < n; len++) {
		uint8_t *p = dup_exact(frame, len);
		prism_wire_hdr h;
		const uint8_t *payload = (const uint8_t *)"sentinel";
		int rc = prism_wire_decode(p, len, 1024, &h, &payload);
		cr_assert_eq(rc, PRISM_E_TRUNCATED, "prefix %zu gave %s", len,
			     prism_errname(rc));
		cr_assert_null(payload);
		/* What a stream reader waits for: the header first, then the whole frame. */
		size_t want = len < PRISM_WIRE_HDR_SIZE ? PRISM_WIRE_HDR_SIZE : n;
		cr_assert_eq(prism_wire_frame_len(&h), want, "prefix %zu", len);
		cr_assert_gt(prism_wire_frame_len(&h), len);
		if (len >= PRISM_WIRE_HDR_SIZE)
			cr_assert_eq(h.req_id, golden.req_id);
		free(p);
	}
	/* NULL with no bytes is just an empty stream. */
	prism_wire_hdr h;
	cr_assert_eq(prism_wire_decode(NULL, 0, 1024, &h, NULL), PRISM_E_TRUNCATED);
}

Test(wire, decode_rejects_bad_magic_version_and_type)
{
	uint8_t frame[64];
	size_t n = golden_frame(frame);
	prism_wire_hdr h;
	for (int i = 0; i < 4; i++) {
		uint8_t bad[64];
		memcpy(bad, frame, n);
		bad[i] ^= 0x20; /* "PRSM" -> "pRSM", ... */
		cr_assert_eq(prism_wire_decode(bad, n, 1024, &h, NULL), PRISM_E_BAD_MAGIC);
		cr_assert_eq(h.type, 0, "*h is zeroed on a rejected frame");
	}
	static const uint16_t versions[] = {0, 2, 0x0100, 0xffff};
	for (size_t i = 0; i < PRISM_ARRAY_LEN(versions); i++) {
		uint8_t bad[64];
		memcpy(bad, frame, n);
		prism_le16_store(bad + 4, versions[i]);
		cr_assert_eq(prism_wire_decode(bad, n, 1024, &h, NULL), PRISM_E_BAD_VERSION);
	}
	uint8_t bad[64];
	memcpy(bad, frame, n);
	prism_le16_store(bad + 6, 0);
	cr_assert_eq(prism_wire_decode(bad, n, 1024, &h, NULL), PRISM_E_PROTO);
	/* The checks come in the documented order. */
	bad[4] = 9;
	cr_assert_eq(prism_wire_decode(bad, n, 1024, &h, NULL), PRISM_E_BAD_VERSION);
	bad[0] = 0;
	cr_assert_eq(prism_wire_decode(bad, n, 1024, &h, NULL), PRISM_E_BAD_MAGIC);
	cr_assert_eq(prism_wire_decode(bad, 5, 1024, &h, NULL), PRISM_E_TRUNCATED);
}

Test(wire, decode_refuses_oversized_length_before_the_payload_arrives)
{
	uint8_t frame[64];
	size_t n = golden_frame(frame);
	prism_wire_hdr h;
	const uint8_t *payload;
	cr_assert_eq(prism_wire_decode(frame, n, 3, &h, &payload), 0);
	cr_assert_eq(prism_wire_decode(frame, n, 2, &h, &payload), PRISM_E_TOO_BIG);
	cr_assert_null(payload);
	cr_assert_eq(prism_wire_decode(frame, n, 0, &h, NULL), PRISM_E_TOO_BIG);

	/* A bare header claiming 4 GiB: refused at once, not "send me 4 GiB more". */
	uint8_t hdr[PRISM_WIRE_HDR_SIZE];
	prism_wire_hdr huge = {.type = 1, .len = UINT32_MAX};
	cr_assert_eq(prism_wire_encode_hdr(hdr, sizeof(hdr), &huge), 0);
	uint8_t *p = dup_exact(hdr, sizeof(hdr));
	cr_assert_eq(prism_wire_decode(p, sizeof(hdr), 1 << 20, &h, NULL), PRISM_E_TOO_BIG);
	cr_assert_eq(prism_wire_frame_len(&h), PRISM_WIRE_HDR_SIZE);
	cr_assert_eq(prism_wire_decode(p, sizeof(hdr), UINT32_MAX - 1, &h, NULL),
		     PRISM_E_TOO_BIG);
	free(p);
}

Test(wire, decode_walks_a_stream_of_frames)
{
	uint8_t stream[256];
	size_t off = 0, flen;
	for (uint16_t t = 1; t <= 5; t++) {
		char payload[8];
		memset(payload, 'a' + t, sizeof(payload));
		prism_wire_hdr h = {.type = t, .len = t, .req_id = 100u + t};
		cr_assert_eq(prism_wire_encode(stream + off, sizeof(stream) - off, &h, payload,
					       &flen),
			     0);
		off += flen;
	}
	memcpy(stream + off, "PR", 2); /* the start of a sixth frame */
	size_t total = off + 2;
	uint8_t *p = dup_exact(stream, total);

	size_t pos = 0;
	for (uint16_t t = 1; t <= 5; t++) {
		prism_wire_hdr h;
		const uint8_t *payload;
		cr_assert_eq(prism_wire_decode(p + pos, total - pos, 64, &h, &payload), 0);
		cr_assert_eq(h.type, t);
		cr_assert_eq(h.req_id, 100u + t);
		cr_assert_eq(h.len, t);
		cr_assert_eq(payload[0], 'a' + t);
		pos += prism_wire_frame_len(&h);
	}
	prism_wire_hdr h;
	cr_assert_eq(prism_wire_decode(p + pos, total - pos, 64, &h, NULL), PRISM_E_TRUNCATED);
	cr_assert_eq(prism_wire_frame_len(&h), PRISM_WIRE_HDR_SIZE);
	free(p);
}

Test(wire, decode_rejects_bad_arguments)
{
	uint8_t frame[64];
	size_t n = golden_frame(frame);
	prism_wire_hdr h;
	const uint8_t *payload;
	cr_assert_eq(prism_wire_decode(frame, n, 1024, NULL, &payload), -EINVAL);
	cr_assert_eq(prism_wire_decode(NULL, n, 1024, &h, &payload), -EINVAL);
	cr_assert_eq(prism_wire_decode(frame, n, 1024, &h, NULL), 0, "payload is optional");
}

/* ---- Field writer and reader ---- */

#define NAN_BITS 0x7ff8000000abcdefull

/* One of every field, at the extremes of its range.  Returns the writer's verdict. */
static int put_everything(prism_wire_writer *w)
{
	double nan_payload;
	uint64_t bits = NAN_BITS;
	memcpy(&nan_payload, &bits, sizeof(bits));

	prism_wire_put_u8(w, 0);
	prism_wire_put_u8(w, UINT8_MAX);
	prism_wire_put_u16(w, 0);
	prism_wire_put_u16(w, UINT16_MAX);
	prism_wire_put_u32(w, 0);
	prism_wire_put_u32(w, UINT32_MAX);
	prism_wire_put_u64(w, 0);
	prism_wire_put_u64(w, UINT64_MAX);
	prism_wire_put_i64(w, INT64_MIN);
	prism_wire_put_i64(w, INT64_MAX);
	prism_wire_put_i64(w, -1);
	prism_wire_put_f64(w, -0.0);
	prism_wire_put_f64(w, INFINITY);
	prism_wire_put_f64(w, -DBL_MAX);
	prism_wire_put_f64(w, DBL_TRUE_MIN);
	prism_wire_put_f64(w, nan_payload);
	prism_wire_put_bytes(w, NULL, 0);
	prism_wire_put_bytes(w, "\0\xff\0", 3);
	prism_wire_put_str(w, "");
	prism_wire_put_str(w, "héllo");
	prism_wire_put_id(w, test_id());
	prism_wire_put_id(w, (prism_id){0});
	prism_wire_put_raw(w, "RAW", 3);
	return prism_wire_put_raw(w, NULL, 0);
}

/* Bytes put_everything() writes: 2*1 + 2*2 + 2*4 + 2*8 + 3*8 + 5*8 + 4 + (4+3) + 4 + (4+6)
 * + 2*16 + 3 ("héllo" is 6 bytes of UTF-8). */
#define EVERYTHING_LEN 154

static void f64_bits_eq(double got, uint64_t want)
{
	uint64_t bits;
	memcpy(&bits, &got, sizeof(bits));
	cr_assert_eq(bits, want, "f64 bits %#llx, want %#llx", (unsigned long long)bits,
		     (unsigned long long)want);
}

/* Reads back what put_everything() wrote; returns the reader's verdict. */
static int get_everything(prism_wire_reader *r, bool check)
{
	uint8_t u8a, u8b;
	uint16_t u16a, u16b;
	uint32_t u32a, u32b, n1, n2, sn1, sn2;
	uint64_t u64a, u64b;
	int64_t i1, i2, i3;
	double d[5];
	const uint8_t *b1, *b2;
	const char *s1, *s2;
	prism_id id1, id2;
	char raw[3];
	const uint8_t *empty_view;

	prism_wire_get_u8(r, &u8a);
	prism_wire_get_u8(r, &u8b);
	prism_wire_get_u16(r, &u16a);
	prism_wire_get_u16(r, &u16b);
	prism_wire_get_u32(r, &u32a);
	prism_wire_get_u32(r, &u32b);
	prism_wire_get_u64(r, &u64a);
	prism_wire_get_u64(r, &u64b);
	prism_wire_get_i64(r, &i1);
	prism_wire_get_i64(r, &i2);
	prism_wire_get_i64(r, &i3);
	for (int i = 0; i < 5; i++)
		prism_wire_get_f64(r, &d[i]);
	prism_wire_get_bytes(r, UINT32_MAX, &b1, &n1);
	prism_wire_get_bytes(r, 3, &b2, &n2);
	prism_wire_get_str(r, UINT32_MAX, &s1, &sn1);
	prism_wire_get_str(r, 6, &s2, &sn2);
	prism_wire_get_id(r, &id1);
	prism_wire_get_id(r, &id2);
	prism_wire_get_raw(r, raw, 3);
	prism_wire_get_view(r, 0, &empty_view);
	int rc = prism_wire_reader_finish(r);
	if (!check)
		return rc;

	cr_assert_eq(rc, 0, "%s", prism_errname(rc));
	cr_assert_eq(u8a, 0);
	cr_assert_eq(u8b, UINT8_MAX);
	cr_assert_eq(u16a, 0);
	cr_assert_eq(u16b, UINT16_MAX);
	cr_assert_eq(u32a, 0);
	cr_assert_eq(u32b, UINT32_MAX);
	cr_assert_eq(u64a, 0);
	cr_assert_eq(u64b, UINT64_MAX);
	cr_assert_eq(i1, INT64_MIN);
	cr_assert_eq(i2, INT64_MAX);
	cr_assert_eq(i3, -1);
	f64_bits_eq(d[0], 0x8000000000000000ull);
	cr_assert(isinf(d[1]) && d[1] > 0);
	cr_assert_eq(d[2], -DBL_MAX);
	cr_assert_eq(d[3], DBL_TRUE_MIN);
	f64_bits_eq(d[4], NAN_BITS);
	cr_assert_eq(n1, 0);
	cr_assert_not_null(b1, "an empty field still gets a valid pointer");
	cr_assert_eq(n2, 3);
	cr_assert_eq(memcmp(b2, "\0\xff\0", 3), 0);
	cr_assert_eq(sn1, 0);
	cr_assert_not_null(s1);
	cr_assert_eq(sn2, 6);
	cr_assert_eq(memcmp(s2, "héllo", 6), 0);
	cr_assert(prism_id_eq(id1, test_id()));
	cr_assert(prism_id_is_nil(id2));
	cr_assert_eq(memcmp(raw, "RAW", 3), 0);
	cr_assert_not_null(empty_view);
	cr_assert_eq(prism_wire_reader_remaining(r), 0);
	return rc;
}

Test(wire, fields_round_trip_at_the_extremes)
{
	uint8_t buf[512];
	prism_wire_writer w;
	prism_wire_writer_init(&w, buf, sizeof(buf));
	cr_assert_eq(put_everything(&w), 0);
	size_t len;
	cr_assert_eq(prism_wire_writer_finish(&w, &len), 0);
	cr_assert_eq(len, EVERYTHING_LEN);

	uint8_t *p = dup_exact(buf, len);
	prism_wire_reader r;
	prism_wire_reader_init(&r, p, len);
	get_everything(&r, true);
	free(p);
}

Test(wire, field_encoding_is_byte_exact_little_endian)
{
	uint8_t buf[64];
	prism_wire_writer w;
	prism_wire_writer_init(&w, buf, sizeof(buf));
	prism_wire_put_u8(&w, 0xab);
	prism_wire_put_u16(&w, 0x0102);
	prism_wire_put_u32(&w, 0x03040506);
	prism_wire_put_u64(&w, 0x0708090a0b0c0d0eull);
	prism_wire_put_i64(&w, -2);
	prism_wire_put_f64(&w, 1.0);
	prism_wire_put_bytes(&w, "xy", 2);
	prism_wire_put_str(&w, "z");
	static const uint8_t want[] = {
		0xab,                                           /* u8 */
		0x02, 0x01,                                     /* u16 */
		0x06, 0x05, 0x04, 0x03,                         /* u32 */
		0x0e, 0x0d, 0x0c, 0x0b, 0x0a, 0x09, 0x08, 0x07, /* u64 */
		0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* i64 -2 */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f, /* f64 1.0 */
		0x02, 0x00, 0x00, 0x00, 'x',  'y',              /* bytes */
		0x01, 0x00, 0x00, 0x00, 'z',                    /* str */
	};
	size_t len;
	cr_assert_eq(prism_wire_writer_finish(&w, &len), 0);
	cr_assert_eq(len, sizeof(want));
	cr_assert_arr_eq(buf, want, sizeof(want));
}

Test(wire, le_helpers_match_the_byte_order)
{
	uint8_t b[8];
	prism_le64_store(b, 0x8877665544332211ull);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(b[i], 0x11 * (i + 1));
	cr_assert_eq(prism_le64_load(b), 0x8877665544332211ull);
	cr_assert_eq(prism_le32_load(b + 1), 0x55443322u);
	cr_assert_eq(prism_le16_load(b + 3), 0x5544);
	prism_le32_store(b, 0xdeadbeef);
	prism_le16_store(b + 4, 0xcafe);
	cr_assert_eq(prism_le32_load(b), 0xdeadbeef);
	cr_assert_eq(prism_le16_load(b + 4), 0xcafe);
}

Test(wire, writer_overflows_cleanly_at_every_short_capacity)
{
	uint8_t full[EVERYTHING_LEN];
	prism_wire_writer w;
	prism_wire_writer_init(&w, full, sizeof(full));
	cr_assert_eq(put_everything(&w), 0);

	for (size_t cap = 0; cap < EVERYTHING_LEN; cap++) {
		uint8_t buf[EVERYTHING_LEN + 16];
		memset(buf, 0xee, sizeof(buf));
		prism_wire_writer_init(&w, buf, cap);
		cr_assert_eq(put_everything(&w), -EMSGSIZE, "cap %zu", cap);
		size_t len = 99;
		cr_assert_eq(prism_wire_writer_finish(&w, &len), -EMSGSIZE);
		cr_assert_eq(len, 99, "finish leaves *len alone on error");
		/* What was written is a prefix of the full encoding; nothing lies beyond it. */
		cr_assert_leq(w.len, cap);
		cr_assert_eq(memcmp(buf, full, w.len), 0, "cap %zu", cap);
		for (size_t i = w.len; i < sizeof(buf); i++)
			cr_assert_eq(buf[i], 0xee, "cap %zu wrote byte %zu past %zu", cap, i,
				     w.len);
		/* Sticky: even a put that would fit now fails. */
		if (w.len < cap)
			cr_assert_eq(prism_wire_put_u8(&w, 1), -EMSGSIZE);
	}
}

Test(wire, writer_keeps_the_first_error)
{
	uint8_t buf[64];
	prism_wire_writer w;
	prism_wire_writer_init(&w, buf, sizeof(buf));
	cr_assert_eq(prism_wire_put_u32(&w, 1), 0);
	cr_assert_eq(prism_wire_put_str(&w, NULL), -EINVAL);
	cr_assert_eq(prism_wire_put_u8(&w, 1), -EINVAL);
	cr_assert_eq(prism_wire_put_raw(&w, buf, 1000), -EINVAL, "first error wins");
	size_t len;
	cr_assert_eq(prism_wire_writer_finish(&w, &len), -EINVAL);
	cr_assert_eq(w.len, 4);

	prism_wire_writer_init(&w, buf, sizeof(buf));
	cr_assert_eq(prism_wire_put_raw(&w, NULL, 1), -EINVAL);
	prism_wire_writer_init(&w, buf, sizeof(buf));
	cr_assert_eq(prism_wire_put_bytes(&w, NULL, 1), -EINVAL);
	uint8_t *hole;
	prism_wire_writer_init(&w, buf, 2);
	cr_assert_eq(prism_wire_reserve(&w, 3, &hole), -EMSGSIZE);
	cr_assert_null(hole);
}

Test(wire, put_bytes_refuses_more_than_a_u32_length)
{
	uint8_t buf[16];
	prism_wire_writer w;
	prism_wire_writer_init(&w, buf, sizeof(buf));
	/* The length is checked before any byte is read, so the small source is safe. */
	cr_assert_eq(prism_wire_put_bytes(&w, buf, (size_t)UINT32_MAX + 1), PRISM_E_TOO_BIG);
	cr_assert_eq(w.len, 0);
}

Test(wire, id_kind_is_checked_both_ways)
{
	prism_id bad = test_id();
	bad.b[15] = PRISM_ID_KIND_MAX + 1;
	uint8_t buf[64];
	prism_wire_writer w;
	prism_wire_writer_init(&w, buf, sizeof(buf));
	cr_assert_eq(prism_wire_put_id(&w, bad), -EINVAL);
	cr_assert_eq(w.len, 0);

	prism_wire_reader r;
	prism_wire_reader_init(&r, bad.b, sizeof(bad.b));
	prism_id got = test_id();
	cr_assert_eq(prism_wire_get_id(&r, &got), PRISM_E_PROTO);
	cr_assert(prism_id_is_nil(got));
	cr_assert_eq(prism_wire_reader_remaining(&r), PRISM_ID_SIZE, "nothing consumed");
}

Test(wire, reserve_patches_a_nested_length)
{
	uint8_t buf[64];
	prism_wire_writer w;
	prism_wire_writer_init(&w, buf, sizeof(buf));
	uint8_t *len_at;
	cr_assert_eq(prism_wire_reserve(&w, 4, &len_at), 0);
	cr_assert_eq(prism_le32_load(len_at), 0, "reserved bytes are zeroed");
	size_t start = w.len;
	prism_wire_put_u16(&w, 7);
	prism_wire_put_str(&w, "inner");
	prism_le32_store(len_at, (uint32_t)(w.len - start));
	prism_wire_put_u8(&w, 0x55);
	size_t len;
	cr_assert_eq(prism_wire_writer_finish(&w, &len), 0);

	/* The nested message reads back as bytes, then through a reader of its own. */
	prism_wire_reader r, inner;
	prism_wire_reader_init(&r, buf, len);
	const uint8_t *nested;
	uint32_t nlen;
	cr_assert_eq(prism_wire_get_bytes(&r, 64, &nested, &nlen), 0);
	prism_wire_reader_init(&inner, nested, nlen);
	uint16_t v;
	const char *s;
	uint32_t slen;
	cr_assert_eq(prism_wire_get_u16(&inner, &v), 0);
	cr_assert_eq(prism_wire_get_str(&inner, 16, &s, &slen), 0);
	cr_assert_eq(prism_wire_reader_finish(&inner), 0);
	cr_assert_eq(v, 7);
	cr_assert_eq(slen, 5);
	cr_assert_eq(memcmp(s, "inner", 5), 0);
	uint8_t tail;
	cr_assert_eq(prism_wire_get_u8(&r, &tail), 0);
	cr_assert_eq(tail, 0x55);
	cr_assert_eq(prism_wire_reader_finish(&r), 0);
}

Test(wire, reader_rejects_every_truncation_of_a_valid_payload)
{
	uint8_t full[EVERYTHING_LEN];
	prism_wire_writer w;
	prism_wire_writer_init(&w, full, sizeof(full));
	cr_assert_eq(put_everything(&w), 0);
	for (size_t len = 0; len < EVERYTHING_LEN; len++) {
		uint8_t *p = dup_exact(full, len);
		prism_wire_reader r;
		prism_wire_reader_init(&r, p, len);
		int rc = get_everything(&r, false);
		cr_assert_eq(rc, PRISM_E_TRUNCATED, "prefix %zu gave %s", len,
			     prism_errname(rc));
		cr_assert_leq(r.off, len);
		free(p);
	}
}

Test(wire, reader_rejects_lengths_past_the_end)
{
	/* Length 5 with 4 bytes behind it. */
	static const uint8_t short_field[] = {5, 0, 0, 0, 'a', 'b', 'c', 'd'};
	uint8_t *p = dup_exact(short_field, sizeof(short_field));
	prism_wire_reader r;
	const uint8_t *b = p;
	uint32_t n = 77;
	prism_wire_reader_init(&r, p, sizeof(short_field));
	cr_assert_eq(prism_wire_get_bytes(&r, UINT32_MAX, &b, &n), PRISM_E_TRUNCATED);
	cr_assert_null(b);
	cr_assert_eq(n, 0);
	cr_assert_eq(r.off, 0, "a failed get consumes nothing, not even the length");
	/* Exactly what remains is fine. */
	p[0] = 4;
	prism_wire_reader_init(&r, p, sizeof(short_field));
	cr_assert_eq(prism_wire_get_bytes(&r, 4, &b, &n), 0);
	cr_assert_eq(n, 4);
	cr_assert_eq(b, p + 4);
	cr_assert_eq(prism_wire_reader_finish(&r), 0);
	free(p);

	/* 0xffffffff: truncated against the input, too big against a cap. */
	static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 'x'};
	p = dup_exact(huge, sizeof(huge));
	const char *s;
	prism_wire_reader_init(&r, p, sizeof(huge));
	cr_assert_eq(prism_wire_get_bytes(&r, UINT32_MAX, &b, &n), PRISM_E_TRUNCATED);
	prism_wire_reader_init(&r, p, sizeof(huge));
	cr_assert_eq(prism_wire_get_bytes(&r, 1 << 20, &b, &n), PRISM_E_TOO_BIG);
	prism_wire_reader_init(&r, p, sizeof(huge));
	cr_assert_eq(prism_wire_get_str(&r, UINT32_MAX, &s, &n), PRISM_E_TRUNCATED);
	cr_assert_null(s);
	prism_wire_reader_init(&r, p, sizeof(huge));
	cr_assert_eq(prism_wire_get_str(&r, 0, &s, &n), PRISM_E_TOO_BIG);
	free(p);

	/* A length prefix cut short. */
	p = dup_exact(huge, 3);
	prism_wire_reader_init(&r, p, 3);
	cr_assert_eq(prism_wire_get_bytes(&r, UINT32_MAX, &b, &n), PRISM_E_TRUNCATED);
	free(p);
}

Test(wire, reader_errors_are_sticky)
{
	static const uint8_t in[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
	uint8_t *p = dup_exact(in, sizeof(in));
	prism_wire_reader r;
	prism_wire_reader_init(&r, p, 3);
	uint32_t v32 = 1;
	cr_assert_eq(prism_wire_get_u32(&r, &v32), PRISM_E_TRUNCATED);
	cr_assert_eq(v32, 0);
	cr_assert_eq(prism_wire_reader_remaining(&r), 3);
	/* Data remains, but every later get fails with the first error and zeroes. */
	uint8_t v8 = 1;
	uint16_t v16 = 1;
	uint64_t v64 = 1;
	int64_t i64 = 1;
	double f = 1;
	uint8_t raw[2] = {1, 1};
	const uint8_t *view = p;
	prism_id id = test_id();
	cr_assert_eq(prism_wire_get_u8(&r, &v8), PRISM_E_TRUNCATED);
	cr_assert_eq(prism_wire_get_u16(&r, &v16), PRISM_E_TRUNCATED);
	cr_assert_eq(prism_wire_get_u64(&r, &v64), PRISM_E_TRUNCATED);
	cr_assert_eq(prism_wire_get_i64(&r, &i64), PRISM_E_TRUNCATED);
	cr_assert_eq(prism_wire_get_f64(&r, &f), PRISM_E_TRUNCATED);
	cr_assert_eq(prism_wire_get_raw(&r, raw, 2), PRISM_E_TRUNCATED);
	cr_assert_eq(prism_wire_get_view(&r, 1, &view), PRISM_E_TRUNCATED);
	cr_assert_eq(prism_wire_get_id(&r, &id), PRISM_E_TRUNCATED);
	cr_assert(v8 == 0 && v16 == 0 && v64 == 0 && i64 == 0 && f == 0.0);
	cr_assert(raw[0] == 0 && raw[1] == 0);
	cr_assert_null(view);
	cr_assert(prism_id_is_nil(id));
	cr_assert_eq(prism_wire_reader_remaining(&r), 3);
	cr_assert_eq(prism_wire_reader_finish(&r), PRISM_E_TRUNCATED);

	/* A later error does not replace the first. */
	prism_wire_reader_init(&r, "\x02\0\0\0\0x", 6);
	const char *s;
	uint32_t n;
	cr_assert_eq(prism_wire_get_str(&r, 16, &s, &n), PRISM_E_PROTO);
	const uint8_t *b;
	cr_assert_eq(prism_wire_get_bytes(&r, 0, &b, &n), PRISM_E_PROTO);
	free(p);
}

Test(wire, reader_finish_rejects_trailing_bytes)
{
	prism_wire_reader r;
	prism_wire_reader_init(&r, "\x01\x02", 2);
	uint8_t v;
	cr_assert_eq(prism_wire_get_u8(&r, &v), 0);
	cr_assert_eq(prism_wire_reader_finish(&r), PRISM_E_PROTO);
	cr_assert_eq(prism_wire_reader_remaining(&r), 1);
	cr_assert_eq(prism_wire_get_u8(&r, &v), 0);
	cr_assert_eq(prism_wire_reader_finish(&r), 0);
}

Test(wire, get_str_refuses_embedded_nul)
{
	static const uint8_t in[] = {3, 0, 0, 0, 'a', 0, 'b'};
	prism_wire_reader r;
	prism_wire_reader_init(&r, in, sizeof(in));
	const char *s = "x";
	uint32_t n = 9;
	cr_assert_eq(prism_wire_get_str(&r, UINT32_MAX, &s, &n), PRISM_E_PROTO);
	cr_assert_null(s);
	cr_assert_eq(n, 0);
	cr_assert_eq(r.off, 0);
	/* The same bytes are a fine bytes field. */
	prism_wire_reader_init(&r, in, sizeof(in));
	const uint8_t *b;
	cr_assert_eq(prism_wire_get_bytes(&r, UINT32_MAX, &b, &n), 0);
	cr_assert_eq(n, 3);
}

Test(wire, empty_and_null_buffers_are_safe)
{
	prism_wire_reader r;
	prism_wire_reader_init(&r, NULL, 100);
	const uint8_t *view;
	cr_assert_eq(prism_wire_get_view(&r, 0, &view), 0);
	cr_assert_not_null(view);
	cr_assert_eq(prism_wire_reader_finish(&r), 0);
	uint8_t v;
	cr_assert_eq(prism_wire_get_u8(&r, &v), PRISM_E_TRUNCATED);

	prism_wire_writer w;
	prism_wire_writer_init(&w, NULL, 100);
	uint8_t *hole;
	cr_assert_eq(prism_wire_reserve(&w, 0, &hole), 0);
	cr_assert_eq(prism_wire_put_raw(&w, NULL, 0), 0);
	size_t len;
	cr_assert_eq(prism_wire_writer_finish(&w, &len), 0);
	cr_assert_eq(len, 0);
	cr_assert_eq(prism_wire_put_u8(&w, 1), -EMSGSIZE);
}
