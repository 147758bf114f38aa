/* sio.h — the io_uring socket engine under the tcp and softverbs backends (internal).
 *
 * One sio per transport: an io_uring, a provided-buffer ring shared by its sockets, a
 * listener with multishot accept, and authenticated stream links that carry packets: a
 * fixed 32-byte header and a payload of header.len bytes.  What the ops mean is the
 * backend's business; sio frames, authenticates and moves bytes.
 *
 * Receiving: every link has a multishot recv drawing from the buffer ring.  For each
 * header, begin() may name where the payload goes (a user's READ buffer, a region for a
 * WRITE): sio copies it there, and for what remains of a large payload (at least
 * SIO_DIRECT_MIN bytes) cancels the multishot recv and receives straight into the
 * destination, then re-arms.  Without a destination, a payload that sits inside one
 * buffer is handed over in place, others are assembled; either stays valid until the
 * next sio_progress().
 *
 * Sending: sio_send() copies the header, and the payload too when asked (or when it is
 * small); otherwise it sends the payload in place, with SEND_ZC from zerocopy_min bytes,
 * and calls sent(cookie) once the kernel no longer needs it.  One send is in flight per
 * link, so bytes leave in the order they were queued.
 *
 * Handshake: a link says hello and proves the token (auth.c) before any packet; inbound
 * links that fail are closed and logged without a callback, outbound ones get down()
 * with PRISM_E_AUTH (or the connect error).  Single-threaded.
 */
#ifndef PRISM_TRANSPORT_SIO_H
#define PRISM_TRANSPORT_SIO_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "transport_int.h"

typedef struct sio sio;
typedef struct sio_conn sio_conn;

/* The packet header; the wire form is 32 little-endian bytes in this order. */
typedef struct sio_hdr {
	uint8_t op;
	uint8_t flags;
	uint16_t status; /* an error code's magnitude in replies */
	uint32_t len;    /* payload bytes */
	uint64_t id;
	uint64_t addr;
	uint32_t key;
	uint32_t aux;
} sio_hdr;
#define SIO_HDR_BYTES 32
/* 64 KiB: below this a payload is cheaper to copy out of the receive buffers than to
 * cancel and re-arm the multishot receive for. */
#define SIO_DIRECT_MIN (64u << 10)

typedef struct sio_cbs {
	/* An inbound link proved itself; ctx it gets with sio_set_ctx(). */
	void (*accepted)(void *arg, sio_conn *sc, const struct sockaddr_in *peer);
	/* An outbound link proved itself. */
	void (*up)(sio_conn *sc);
	/* The link failed (status < 0); sc is dead when this returns. */
	void (*down)(sio_conn *sc, int status);
	/* A header arrived: set *dest to where its payload goes (NULL: sio keeps it), or
	 * return < 0 to drop the link as malformed. */
	int (*begin)(sio_conn *sc, const sio_hdr *h, uint8_t **dest);
	/* The whole packet is in: payload is *dest or sio's, valid until the next progress. */
	int (*packet)(sio_conn *sc, const sio_hdr *h, const uint8_t *payload);
	/* The payload of sio_send(..., cookie) sent in place is no longer needed. */
	void (*sent)(sio_conn *sc, uint64_t cookie);
	void *arg;
	/* No token handshake: links are up once connected (softverbs authenticates above,
	 * as rc.c does over a real NIC). */
	bool no_auth;
} sio_cbs;

int sio_create(transport *t, const sio_cbs *cbs, sio **out);
void sio_destroy(sio *s);
int sio_listen(sio *s, const struct sockaddr_in *sa, uint16_t *port);
int sio_connect(sio *s, const struct sockaddr_in *sa, void *ctx, sio_conn **out);
void sio_set_ctx(sio_conn *sc, void *ctx);
void *sio_ctx(const sio_conn *sc);
/* Queue a packet.  copy: the payload is copied now (always for at most
 * TRANSPORT_INLINE_MAX bytes); else it is sent in place.  Unless cookie is
 * SIO_NO_COOKIE, sent(cookie) follows once the packet was written to the socket (and,
 * for a payload sent in place, once the kernel let go of it).  Copied packets report
 * in order and a report may stand for earlier copied packets of the link too. */
#define SIO_NO_COOKIE UINT64_MAX
int sio_send(sio_conn *sc, const sio_hdr *h, const void *payload, bool copy, uint64_t cookie);
/* Close at once: no callback names sc afterwards; sio frees it when the kernel is done. */
void sio_close(sio_conn *sc);
int sio_progress(sio *s, int64_t timeout_ns);
int sio_flush(sio *s);
int sio_fd(const sio *s);

#endif
