/* base/wire.h — framing and field codec shared by every prism protocol.
 *
 * Every message between prism processes (client <-> daemon over Unix sockets, daemon <->
 * daemon over the transport, GCS requests and replies) is one frame: a fixed 24-byte
 * header followed by `len` bytes of payload.  All integers on the wire are little-endian
 * whatever the host; they are written and read byte by byte, never by casting a struct,
 * so the layout below is the format and padding or alignment cannot change it.
 *
 *   offset  size  field
 *        0     4  magic    0x4d535250, the bytes "PRSM"
 *        4     2  version  PRISM_WIRE_VERSION
 *        6     2  type     message type, chosen by the protocol; 0 is never valid
 *        8     4  flags    per-type bits, passed through untouched by this codec
 *       12     4  len      payload length in bytes
 *       16     8  req_id   request id, echoed in the reply to match it with its request
 *       24        payload
 *
 * Payloads are built with a prism_wire_writer and parsed with a prism_wire_reader: a
 * plain sequence of fields with no tags and no padding, in the order the message's codec
 * defines.  Fixed-width integers and f64 (IEEE-754 bits) are little-endian; ids are their
 * 16 bytes as is; bytes and strings are a u32 length followed by the bytes.
 *
 * Ownership: nothing here allocates.  Writers write into a buffer the caller owns;
 * readers and prism_wire_decode() return pointers into the caller's input (zero-copy),
 * valid as long as that input is.
 *
 * Thread safety: the functions keep no global state.  A writer or reader is used by one
 * thread at a time.
 *
 * Errors: functions return 0 or a negative code from base/error.h.  Writers and readers
 * keep the first error they meet ("sticky"): every later put or get fails with that same
 * error and changes nothing, so a codec may issue a whole sequence of calls and check
 * once, with prism_wire_writer_finish() or prism_wire_reader_finish().  A get that fails
 * stores zero (or NULL, or the nil id) in its out-parameters, so an unchecked value is
 * never uninitialised.
 */
#ifndef PRISM_BASE_WIRE_H
#define PRISM_BASE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "base/api.h"
#include "base/id.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PRISM_WIRE_MAGIC 0x4d535250u /* "PRSM" once stored little-endian */
#define PRISM_WIRE_VERSION 1
#define PRISM_WIRE_HDR_SIZE 24

/* A frame's length is PRISM_WIRE_HDR_SIZE plus a u32; size_t must hold the sum.  prism
 * runs on 64-bit Linux only (io_uring, RDMA). */
_Static_assert(sizeof(size_t) >= 8, "prism's wire codec assumes a 64-bit size_t");

/* The variable fields of a frame header; magic and version are implied by the format.
 * A plain value the caller owns; every field may be read and written. */
typedef struct prism_wire_hdr {
	uint16_t type;   /* message type, nonzero */
	uint32_t flags;  /* per-type bits */
	uint32_t len;    /* payload length in bytes */
	uint64_t req_id; /* request id; 0 for messages that expect no reply */
} prism_wire_hdr;

/* ---- Little-endian loads and stores, for codecs that patch or peek at fixed offsets.
 * Byte by byte, so they work at any alignment; compilers turn them into single moves. */

static inline uint16_t prism_le16_load(const uint8_t *p)
{
	return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}
static inline uint32_t prism_le32_load(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}
static inline uint64_t prism_le64_load(const uint8_t *p)
{
	return (uint64_t)prism_le32_load(p) | (uint64_t)prism_le32_load(p + 4) << 32;
}
static inline void prism_le16_store(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void prism_le32_store(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}
static inline void prism_le64_store(uint8_t *p, uint64_t v)
{
	prism_le32_store(p, (uint32_t)v);
	prism_le32_store(p + 4, (uint32_t)(v >> 32));
}

/* ---- Frames ---- */

/* Bytes the whole frame described by *h occupies: header plus payload. */
static inline size_t prism_wire_frame_len(const prism_wire_hdr *h)
{
	return PRISM_WIRE_HDR_SIZE + (size_t)h->len;
}

/* Write the 24-byte header *h (with magic and version) at buf, which has cap bytes.
 * -EINVAL for a NULL argument or a zero type (the peer would reject it), -EMSGSIZE when
 * cap < PRISM_WIRE_HDR_SIZE; nothing is written on failure.  The usual way to send a
 * message: put the payload with a writer over buf + PRISM_WIRE_HDR_SIZE, set h.len from
 * prism_wire_writer_finish(), then write the header in front of it. */
int prism_wire_encode_hdr(uint8_t *buf, size_t cap, const prism_wire_hdr *h);

/* Write a whole frame: the header *h, then h->len bytes from payload.  payload may be NULL
 * only when h->len is 0; it may overlap buf (the bytes are moved before the header is
 * written, so a payload already built at buf + PRISM_WIRE_HDR_SIZE is fine).  On success
 * *frame_len (if not NULL) gets prism_wire_frame_len(h).  Errors as for
 * prism_wire_encode_hdr(), and -EMSGSIZE when the frame does not fit cap; nothing is
 * written on failure. */
int prism_wire_encode(uint8_t *buf, size_t cap, const prism_wire_hdr *h, const void *payload,
		      size_t *frame_len);

/* Decode the frame at the start of buf[0..len).  Checks, in this order:
 *   len < PRISM_WIRE_HDR_SIZE       -> PRISM_E_TRUNCATED
 *   magic                           -> PRISM_E_BAD_MAGIC
 *   version                         -> PRISM_E_BAD_VERSION
 *   type == 0                       -> PRISM_E_PROTO
 *   payload length > max_payload    -> PRISM_E_TOO_BIG
 *   payload not wholly in buf       -> PRISM_E_TRUNCATED
 * The size check comes before the wait for the payload, so a peer cannot make a reader
 * buffer up to 4 GiB for a frame it would refuse anyway.
 *
 * *h is filled on success and on a PRISM_E_TRUNCATED that follows a complete header; in
 * every other case it is zeroed.  Either way prism_wire_frame_len(h) is what a stream
 * reader must have buffered before it calls again: the full frame once the header is
 * known, PRISM_WIRE_HDR_SIZE before.  On success it is also how far to advance.
 *
 * On success *payload (if payload is not NULL) points at the h->len payload bytes inside
 * buf, borrowed; otherwise it is set to NULL.  Trailing bytes after the frame are the
 * next frame's and are left alone.  -EINVAL when h is NULL, or buf is NULL and len > 0. */
int prism_wire_decode(const uint8_t *buf, size_t len, uint32_t max_payload, prism_wire_hdr *h,
		      const uint8_t **payload);

/* ---- Payload writer ----
 *
 * Appends fields to a caller buffer.  A put that does not fit fails with -EMSGSIZE and
 * writes nothing; so does every later put (the error is sticky), so the buffer always
 * holds a prefix of whole fields.  Callers may read the fields but must not change them;
 * prism_wire_writer_finish() is the checked way to learn the length. */
typedef struct prism_wire_writer {
	uint8_t *buf; /* borrowed from the caller */
	size_t cap;
	size_t len; /* bytes written so far */
	int err;    /* first error, or 0 */
} prism_wire_writer;

/* Start writing at buf, which has cap bytes (a NULL buf is taken as cap 0). */
void prism_wire_writer_init(prism_wire_writer *w, void *buf, size_t cap);

/* Each put returns 0, or the writer's sticky error (possibly set by this call). */
int prism_wire_put_u8(prism_wire_writer *w, uint8_t v);
int prism_wire_put_u16(prism_wire_writer *w, uint16_t v);
int prism_wire_put_u32(prism_wire_writer *w, uint32_t v);
int prism_wire_put_u64(prism_wire_writer *w, uint64_t v);
int prism_wire_put_i64(prism_wire_writer *w, int64_t v);
/* The IEEE-754 bits, NaN payloads included. */
int prism_wire_put_f64(prism_wire_writer *w, double v);
/* n bytes with no length prefix (fixed-size fields).  -EINVAL if p is NULL and n > 0. */
int prism_wire_put_raw(prism_wire_writer *w, const void *p, size_t n);
/* A u32 length then n bytes.  PRISM_E_TOO_BIG when n > UINT32_MAX; -EINVAL if p is NULL
 * and n > 0. */
int prism_wire_put_bytes(prism_wire_writer *w, const void *p, size_t n);
/* The NUL-terminated string s, as put_bytes of its characters without the NUL.  -EINVAL
 * for NULL. */
int prism_wire_put_str(prism_wire_writer *w, const char *s);
/* The 16 bytes of id.  -EINVAL for a kind above PRISM_ID_KIND_MAX, which
 * prism_wire_get_id() would refuse. */
int prism_wire_put_id(prism_wire_writer *w, prism_id id);
/* Advance by n bytes and return in *p where they are, for a field known only later (a
 * count or a nested length, patched with prism_le32_store()).  The bytes are zeroed.
 * *p is NULL on failure. */
int prism_wire_reserve(prism_wire_writer *w, size_t n, uint8_t **p);

/* The sticky error, or 0 with the number of bytes written in *len (if len is not NULL). */
int prism_wire_writer_finish(const prism_wire_writer *w, size_t *len);

/* ---- Payload reader ----
 *
 * Takes fields from the front of a caller buffer and never reads past its end.  A get
 * that needs more bytes than remain fails with PRISM_E_TRUNCATED, consumes nothing, and
 * makes the error sticky.  Callers may read the fields but must not change them. */
typedef struct prism_wire_reader {
	const uint8_t *buf; /* borrowed from the caller */
	size_t len;
	size_t off; /* bytes consumed so far */
	int err;    /* first error, or 0 */
} prism_wire_reader;

/* Read from buf[0..len) (a NULL buf is taken as len 0). */
void prism_wire_reader_init(prism_wire_reader *r, const void *buf, size_t len);

/* Each get returns 0, or the reader's sticky error with *v set to 0. */
int prism_wire_get_u8(prism_wire_reader *r, uint8_t *v);
int prism_wire_get_u16(prism_wire_reader *r, uint16_t *v);
int prism_wire_get_u32(prism_wire_reader *r, uint32_t *v);
int prism_wire_get_u64(prism_wire_reader *r, uint64_t *v);
int prism_wire_get_i64(prism_wire_reader *r, int64_t *v);
int prism_wire_get_f64(prism_wire_reader *r, double *v);
/* Copy the next n bytes into out; on failure out is zeroed. */
int prism_wire_get_raw(prism_wire_reader *r, void *out, size_t n);
/* Borrow the next n bytes (no length prefix): *p points into the input, NULL on failure. */
int prism_wire_get_view(prism_wire_reader *r, size_t n, const uint8_t **p);
/* A u32 length then that many bytes, borrowed: *p points into the input and *n is the
 * length (*p is non-NULL even for 0 bytes).  PRISM_E_TOO_BIG when the length exceeds
 * max (pass UINT32_MAX for no limit beyond the input), then PRISM_E_TRUNCATED when it
 * exceeds what remains.  On failure *p is NULL, *n is 0 and nothing is consumed, not even
 * the length. */
int prism_wire_get_bytes(prism_wire_reader *r, uint32_t max, const uint8_t **p, uint32_t *n);
/* As prism_wire_get_bytes(), for text: *s is NOT NUL-terminated (it points into the
 * input), *n is its length.  PRISM_E_PROTO when it contains a NUL byte, so that a name
 * cannot mean one thing to a length-aware reader and another once copied to a C string.
 * The bytes are not checked to be UTF-8. */
int prism_wire_get_str(prism_wire_reader *r, uint32_t max, const char **s, uint32_t *n);
/* 16 bytes of id.  PRISM_E_PROTO for a kind above PRISM_ID_KIND_MAX. */
int prism_wire_get_id(prism_wire_reader *r, prism_id *id);

/* Bytes not consumed yet; after an error, those that remained before the failed get. */
static inline size_t prism_wire_reader_remaining(const prism_wire_reader *r)
{
	return r->len - r->off;
}

/* For strict messages, after the last field: the sticky error, else PRISM_E_PROTO when
 * bytes remain unread, else 0. */
int prism_wire_reader_finish(const prism_wire_reader *r);

#ifdef __cplusplus
}
#endif
#endif
