/* sio.c — the io_uring socket engine (see sio.h). */
#include <liburing.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/wire.h"
#include "sio.h"

#define LOGM "transport"

/* 256 buffers of 32 KiB (8 MiB): a loopback TCP segment is at most 64 KiB, so a buffer
 * holds half of one, and 256 cover a full reap of every link's data between polls. */
#define NBUFS 256u
#define BUF_SIZE (32u << 10)
#define BGID 1
/* 64 KiB send chunks: many small packets batch into one send. */
#define CHUNK (64u << 10)
/* 128 completions per reap (the loop's own bound, base/loop.h). */
#define MAX_REAP 128u

enum { TAG_RECV = 1, TAG_SEND, TAG_DIRECT, TAG_CONNECT, TAG_ACCEPT, TAG_CANCEL, TAG_ZC };

/* A queued piece of output: a chunk of copied bytes, or a payload sent in place. */
typedef struct seg {
	struct seg *next;
	struct seg *zprev, *znext; /* on sio.zc_wait while the kernel holds its pages */
	bool on_zlist;
	bool has_cookie; /* a staged chunk: sent(cookie) once written */
	sio_conn *sc;
	uint8_t *buf;
	size_t len, off, cap;
	size_t flight; /* bytes of the send in flight */
	uint64_t cookie;
	bool ref;        /* buf is the caller's: sent(cookie) when done */
	bool done;       /* every byte sent */
	unsigned notifs; /* SEND_ZC notifications still to come */
} seg;

enum rstate { R_HELLO, R_PROOF, R_HDR, R_PAYLOAD };

struct sio_conn {
	sio *s;
	int fd;
	void *ctx;
	bool inbound, authed, closing, connected;
	bool logged; /* why it failed was logged already */
	/* The peer is on this host: SEND_ZC only adds a copy and a notification there
	 * (measured: 1 MiB streams at 0.53x raw TCP with it, 0.70x without). */
	bool loopback;
	unsigned inflight; /* kernel requests naming this link */
	auth_state auth;
	uint64_t hs_deadline;
	struct sockaddr_in peer;
	sio_conn *prev, *next;
	/* receive */
	enum rstate rs;
	uint8_t hb[64];
	uint32_t hb_got;
	sio_hdr h;
	uint8_t *dest;
	uint32_t got;
	bool recv_armed, cancel_sent, direct, need_rearm;
	/* Two assembly buffers, so one can fill while the other's message is handed over
	 * (a stream of large messages then never allocates). */
	uint8_t *asm_buf[2];
	size_t asm_cap[2];
	bool asm_busy[2]; /* filling, or handed over by this progress */
	bool extra;       /* dest is a buffer of its own, freed after the next progress */
	/* send */
	seg *sq_head, *sq_tail;
	bool send_inflight;
};

struct sio {
	transport *t;
	sio_cbs cbs;
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	size_t br_bytes;
	uint8_t *bufs;
	uint16_t held[NBUFS];
	unsigned nheld;
	int lfd;
	bool zc_ok;
	seg *free_chunks;
	void **deferred;
	unsigned ndeferred, deferred_cap;
	sio_conn *conns;
	seg *zc_wait;
	unsigned nhandshaking, nrearm, nclosing;
};

static void conn_fail(sio_conn *sc, int status);
static void kick(sio_conn *sc);

/* ---- submission -------------------------------------------------------------------- */

static struct io_uring_sqe *get_sqe(sio *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
	if (!sqe) {
		io_uring_submit(&s->ring);
		sqe = io_uring_get_sqe(&s->ring);
	}
	return sqe;
}

static uint64_t ud(void *p, unsigned tag)
{
	return (uint64_t)(uintptr_t)p | tag;
}

static void arm_recv(sio_conn *sc)
{
	struct io_uring_sqe *sqe = get_sqe(sc->s);
	if (!sqe) {
		sc->need_rearm = true;
		sc->s->nrearm++;
		return;
	}
	io_uring_prep_recv_multishot(sqe, sc->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, ud(sc, TAG_RECV));
	sc->recv_armed = true;
	sc->cancel_sent = false;
	sc->inflight++;
}

static void arm_direct(sio_conn *sc)
{
	struct io_uring_sqe *sqe = get_sqe(sc->s);
	if (!sqe) {
		conn_fail(sc, -ENOMEM);
		return;
	}
	io_uring_prep_recv(sqe, sc->fd, sc->dest + sc->got, sc->h.len - sc->got, MSG_WAITALL);
	io_uring_sqe_set_data64(sqe, ud(sc, TAG_DIRECT));
	sc->direct = true;
	sc->inflight++;
}

static void cancel_recv(sio_conn *sc)
{
	struct io_uring_sqe *sqe = get_sqe(sc->s);
	if (!sqe)
		return;
	io_uring_prep_cancel64(sqe, ud(sc, TAG_RECV), 0);
	io_uring_sqe_set_data64(sqe, ud(sc, TAG_CANCEL));
	sc->cancel_sent = true;
	sc->inflight++;
}

/* ---- memory ------------------------------------------------------------------------ */

static int defer_free(sio *s, void *p)
{
	if (s->ndeferred == s->deferred_cap) {
		unsigned cap = s->deferred_cap ? s->deferred_cap * 2 : 16;
		void **v = prism_realloc(s->deferred, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->deferred = v;
		s->deferred_cap = cap;
	}
	s->deferred[s->ndeferred++] = p;
	return 0;
}

/* A buffer of len bytes for a payload that has no destination; valid until the next
 * progress.  The link's own buffer is reused when it is free. */
static uint8_t *asm_get(sio_conn *sc, size_t len)
{
	for (int i = 0; i < 2; i++) {
		if (sc->asm_busy[i])
			continue;
		if (sc->asm_cap[i] < len) {
			uint8_t *b = prism_malloc(len);
			if (!b)
				return NULL;
			prism_free(sc->asm_buf[i]);
			sc->asm_buf[i] = b;
			sc->asm_cap[i] = len;
		}
		sc->asm_busy[i] = true;
		return sc->asm_buf[i];
	}
	uint8_t *b = prism_malloc(len ? len : 1);
	sc->extra = b != NULL;
	return b;
}

static seg *seg_new(sio *s, size_t need)
{
	seg *g;
	if (need <= CHUNK && s->free_chunks) {
		g = s->free_chunks;
		s->free_chunks = g->next;
	} else {
		size_t cap = need <= CHUNK ? CHUNK : need;
		g = prism_malloc(sizeof(*g) + cap);
		if (!g)
			return NULL;
		g->cap = cap;
		g->buf = (uint8_t *)(g + 1);
	}
	g->next = NULL;
	g->len = g->off = g->flight = 0;
	g->ref = g->done = false;
	g->notifs = 0;
	g->cookie = 0;
	g->zprev = g->znext = NULL;
	g->on_zlist = g->has_cookie = false;
	return g;
}

static void seg_free(sio *s, seg *g)
{
	if (!g->ref && g->cap == CHUNK) {
		g->next = s->free_chunks;
		s->free_chunks = g;
	} else {
		prism_free(g);
	}
}

static void sq_append(sio_conn *sc, seg *g)
{
	g->sc = sc;
	if (sc->sq_tail)
		sc->sq_tail->next = g;
	else
		sc->sq_head = g;
	sc->sq_tail = g;
}

/* Copy n bytes into the link's output. */
static int stage(sio_conn *sc, const void *p, size_t n)
{
	seg *g = sc->sq_tail;
	if (!g || g->ref || g->cap - g->len < n) {
		g = seg_new(sc->s, n);
		if (!g)
			return -ENOMEM;
		g->buf = (uint8_t *)(g + 1);
		sq_append(sc, g);
	}
	memcpy(g->buf + g->len, p, n);
	g->len += n;
	return 0;
}

/* ---- links ------------------------------------------------------------------------- */

static sio_conn *conn_new(sio *s, int fd, bool inbound)
{
	sio_conn *sc = prism_calloc(1, sizeof(*sc));
	if (!sc)
		return NULL;
	sc->s = s;
	sc->fd = fd;
	sc->inbound = inbound;
	sc->rs = R_HELLO;
	sc->hs_deadline = prism_now_ns() + s->t->opts.handshake_ns;
	auth__init(&sc->auth, inbound);
	sc->next = s->conns;
	if (s->conns)
		s->conns->prev = sc;
	s->conns = sc;
	s->nhandshaking++;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return sc;
}

static void conn_unlink_free(sio_conn *sc)
{
	sio *s = sc->s;
	if (sc->prev)
		sc->prev->next = sc->next;
	else
		s->conns = sc->next;
	if (sc->next)
		sc->next->prev = sc->prev;
	if (sc->closing)
		s->nclosing--;
	while (sc->sq_head) {
		seg *g = sc->sq_head;
		sc->sq_head = g->next;
		seg_free(s, g);
	}
	if (sc->fd >= 0)
		close(sc->fd);
	prism_free(sc->asm_buf[0]);
	prism_free(sc->asm_buf[1]);
	prism_free(sc);
}

static void maybe_free(sio_conn *sc)
{
	if (sc->closing && sc->inflight == 0)
		conn_unlink_free(sc);
}

/* Start the handshake on a connected socket: hello out, receive armed. */
static void conn_start(sio_conn *sc)
{
	if (sc->s->cbs.no_auth) {
		sc->authed = true;
		sc->s->nhandshaking--;
		sc->rs = R_HDR;
		arm_recv(sc);
		if (sc->inbound)
			sc->s->cbs.accepted(sc->s->cbs.arg, sc, &sc->peer);
		else
			sc->s->cbs.up(sc);
		return;
	}
	uint8_t hello[AUTH_HELLO_BYTES];
	auth__hello(&sc->auth, sc->s->t->backend, hello);
	if (stage(sc, hello, sizeof(hello)) != 0) {
		conn_fail(sc, -ENOMEM);
		return;
	}
	kick(sc);
	arm_recv(sc);
}

void sio_close(sio_conn *sc)
{
	if (!sc || sc->closing)
		return;
	if (!sc->authed)
		sc->s->nhandshaking--;
	if (sc->need_rearm) {
		sc->need_rearm = false;
		sc->s->nrearm--;
	}
	sc->closing = true;
	sc->s->nclosing++;
	/* Ends the receive and any send in flight; their completions free the link (or
	 * housekeeping does, when none is in flight).  Never freed here: callers up the
	 * stack may still hold it. */
	if (sc->fd >= 0)
		shutdown(sc->fd, SHUT_RDWR);
}

static void conn_fail(sio_conn *sc, int status)
{
	if (sc->closing)
		return;
	char who[TRANSPORT_ADDR_MAX];
	transport__format_addr(&sc->peer, who, sizeof(who));
	if (sc->authed || !sc->inbound) {
		if (status == PRISM_E_AUTH)
			sc->s->t->stats.auth_refused++;
		sc->s->cbs.down(sc, status);
	} else {
		sc->s->t->stats.auth_refused++;
		if (!sc->logged)
			PRISM_LOG(PRISM_LOG_WARN, LOGM,
				  "link from %s refused before it proved the token: %s", who,
				  prism_strerror(status));
	}
	sio_close(sc);
}

/* A malformed stream: count, log, drop. */
static void conn_protocol_error(sio_conn *sc, int status, const char *what)
{
	char who[TRANSPORT_ADDR_MAX];
	transport__format_addr(&sc->peer, who, sizeof(who));
	sc->s->t->stats.protocol_errors++;
	sc->logged = true;
	PRISM_LOG(PRISM_LOG_WARN, LOGM, "link %s dropped: %s (%s)", who, what,
		  prism_strerror(status));
	conn_fail(sc, status < 0 ? status : PRISM_E_PROTO);
}

void sio_set_ctx(sio_conn *sc, void *ctx)
{
	sc->ctx = ctx;
}

void *sio_ctx(const sio_conn *sc)
{
	return sc->ctx;
}

/* ---- sending ----------------------------------------------------------------------- */

static void encode_hdr(const sio_hdr *h, uint8_t *b)
{
	b[0] = h->op;
	b[1] = h->flags;
	prism_le16_store(b + 2, h->status);
	prism_le32_store(b + 4, h->len);
	prism_le64_store(b + 8, h->id);
	prism_le64_store(b + 16, h->addr);
	prism_le32_store(b + 24, h->key);
	prism_le32_store(b + 28, h->aux);
}

static void decode_hdr(const uint8_t *b, sio_hdr *h)
{
	h->op = b[0];
	h->flags = b[1];
	h->status = prism_le16_load(b + 2);
	h->len = prism_le32_load(b + 4);
	h->id = prism_le64_load(b + 8);
	h->addr = prism_le64_load(b + 16);
	h->key = prism_le32_load(b + 24);
	h->aux = prism_le32_load(b + 28);
}

int sio_send(sio_conn *sc, const sio_hdr *h, const void *payload, bool copy, uint64_t cookie)
{
	if (sc->closing)
		return PRISM_E_CLOSED;
	uint8_t hb[SIO_HDR_BYTES];
	encode_hdr(h, hb);
	int rc = stage(sc, hb, sizeof(hb));
	if (rc)
		return rc;
	if (!h->len && cookie != SIO_NO_COOKIE) {
		sc->sq_tail->cookie = cookie;
		sc->sq_tail->has_cookie = true;
	}
	if (h->len && (copy || h->len <= TRANSPORT_INLINE_MAX)) {
		rc = stage(sc, payload, h->len);
		if (rc == 0 && cookie != SIO_NO_COOKIE) {
			sc->sq_tail->cookie = cookie;
			sc->sq_tail->has_cookie = true;
		}
	} else if (h->len) {
		seg *g = prism_malloc(sizeof(*g));
		if (!g)
			return -ENOMEM;
		*g = (seg){.buf = (uint8_t *)payload,
			   .len = h->len,
			   .cookie = cookie,
			   .ref = true};
		sq_append(sc, g);
	}
	if (rc == 0)
		kick(sc);
	return rc;
}

/* Send the head of the queue if nothing is in flight. */
static void kick(sio_conn *sc)
{
	seg *g = sc->sq_head;
	if (sc->send_inflight || !g || sc->closing || !sc->connected)
		return;
	struct io_uring_sqe *sqe = get_sqe(sc->s);
	if (!sqe) {
		conn_fail(sc, -ENOMEM);
		return;
	}
	g->flight = g->len - g->off;
	if (g->ref && g->flight >= sc->s->t->opts.zerocopy_min && sc->s->zc_ok &&
	    !sc->loopback) {
		io_uring_prep_send_zc(sqe, sc->fd, g->buf + g->off, g->flight, MSG_NOSIGNAL, 0);
		io_uring_sqe_set_data64(sqe, ud(g, TAG_ZC));
		g->notifs++;
		sc->s->t->stats.zerocopy_sends++;
	} else {
		io_uring_prep_send(sqe, sc->fd, g->buf + g->off, g->flight, MSG_NOSIGNAL);
		io_uring_sqe_set_data64(sqe, ud(sc, TAG_SEND));
	}
	sc->send_inflight = true;
	sc->inflight++;
}

static void zc_unlink(sio *s, seg *g)
{
	if (g->zprev)
		g->zprev->znext = g->znext;
	else if (s->zc_wait == g)
		s->zc_wait = g->znext;
	if (g->znext)
		g->znext->zprev = g->zprev;
	g->zprev = g->znext = NULL;
}

static void seg_release(sio_conn *sc, seg *g)
{
	if (g->notifs) {
		/* The kernel still holds its pages: kept on a list until it lets go. */
		if (g->on_zlist)
			return;
		g->on_zlist = true;
		g->znext = sc->s->zc_wait;
		g->zprev = NULL;
		if (g->znext)
			g->znext->zprev = g;
		sc->s->zc_wait = g;
		return;
	}
	if (g->on_zlist)
		zc_unlink(sc->s, g);
	if ((g->ref || g->has_cookie) && !sc->closing)
		sc->s->cbs.sent(sc, g->cookie);
	seg_free(sc->s, g);
}

/* A send finished with res bytes (or an error). */
static void on_sent(sio_conn *sc, seg *g, int res)
{
	sc->send_inflight = false;
	if (sc->closing)
		return;
	if (res < 0) {
		conn_fail(sc, PRISM_E_PEER_GONE);
		return;
	}
	g->off += (size_t)res;
	if (g->off == g->len) {
		sc->sq_head = g->next;
		if (!sc->sq_head)
			sc->sq_tail = NULL;
		g->done = true;
		seg_release(sc, g);
	}
	kick(sc);
}

/* ---- receiving --------------------------------------------------------------------- */

static void deliver(sio_conn *sc, const uint8_t *payload)
{
	sio_hdr h = sc->h;
	/* An extra assembly buffer lives until the progress after the one that hands it over. */
	if (sc->extra) {
		sc->extra = false;
		if (defer_free(sc->s, sc->dest) != 0) {
			prism_free(sc->dest);
			conn_fail(sc, -ENOMEM);
			return;
		}
	}
	sc->rs = R_HDR;
	sc->hb_got = 0;
	sc->dest = NULL;
	int rc = sc->s->cbs.packet(sc, &h, payload);
	if (rc < 0)
		conn_protocol_error(sc, rc, "bad packet");
}

static int take_header(sio_conn *sc, const uint8_t *rest, size_t nrest, size_t *used)
{
	sio *s = sc->s;
	*used = 0;
	decode_hdr(sc->hb, &sc->h);
	if (sc->h.len > TRANSPORT_MAX_MSG) {
		conn_protocol_error(sc, PRISM_E_TOO_BIG, "packet length beyond the limit");
		return -1;
	}
	sc->dest = NULL;
	sc->got = 0;
	int rc = s->cbs.begin(sc, &sc->h, &sc->dest);
	if (rc < 0) {
		conn_protocol_error(sc, rc, "bad packet header");
		return -1;
	}
	if (sc->closing)
		return -1;
	if (sc->h.len == 0) {
		deliver(sc, NULL);
		return 0;
	}
	if (!sc->dest && nrest >= sc->h.len) {
		/* The whole payload sits in this receive buffer: hand it over in place. */
		*used = sc->h.len;
		deliver(sc, rest);
		return 0;
	}
	if (!sc->dest)
		sc->dest = asm_get(sc, sc->h.len);
	if (!sc->dest) {
		conn_fail(sc, -ENOMEM);
		return -1;
	}
	sc->rs = R_PAYLOAD;
	return 0;
}

static int take_handshake(sio_conn *sc)
{
	sio *s = sc->s;
	if (sc->rs == R_HELLO) {
		int rc = auth__take_hello(&sc->auth, s->t->backend, sc->hb);
		if (rc) {
			conn_protocol_error(sc, rc,
					    "bad hello: not a prism link of this backend");
			return -1;
		}
		uint8_t proof[AUTH_PROOF_BYTES];
		auth__proof(&sc->auth, s->t->opts.token, proof);
		if (stage(sc, proof, sizeof(proof)) != 0) {
			conn_fail(sc, -ENOMEM);
			return -1;
		}
		kick(sc);
		sc->rs = R_PROOF;
		return 0;
	}
	if (auth__check_proof(&sc->auth, s->t->opts.token, sc->hb) != 0) {
		char who[TRANSPORT_ADDR_MAX];
		transport__format_addr(&sc->peer, who, sizeof(who));
		PRISM_LOG(PRISM_LOG_WARN, LOGM,
			  "link %s failed authentication: wrong cluster token", who);
		sc->logged = true;
		conn_fail(sc, PRISM_E_AUTH);
		return -1;
	}
	sc->authed = true;
	s->nhandshaking--;
	sc->rs = R_HDR;
	if (sc->inbound)
		s->cbs.accepted(s->cbs.arg, sc, &sc->peer);
	else
		s->cbs.up(sc);
	return sc->closing ? -1 : 0;
}

/* Parse n received bytes at p. */
static void feed(sio_conn *sc, const uint8_t *p, size_t n)
{
	while (n > 0 && !sc->closing) {
		if (sc->rs == R_PAYLOAD) {
			size_t take = sc->h.len - sc->got;
			take = take < n ? take : n;
			memcpy(sc->dest + sc->got, p, take);
			sc->got += (uint32_t)take;
			p += take;
			n -= take;
			if (sc->got == sc->h.len)
				deliver(sc, sc->dest);
			continue;
		}
		size_t need = sc->rs == R_HELLO   ? AUTH_HELLO_BYTES
			      : sc->rs == R_PROOF ? AUTH_PROOF_BYTES
						  : SIO_HDR_BYTES;
		size_t take = need - sc->hb_got;
		take = take < n ? take : n;
		memcpy(sc->hb + sc->hb_got, p, take);
		sc->hb_got += (uint32_t)take;
		p += take;
		n -= take;
		if (sc->hb_got < need)
			break;
		sc->hb_got = 0;
		if (sc->rs != R_HDR) {
			if (take_handshake(sc) != 0)
				return;
			continue;
		}
		size_t used;
		if (take_header(sc, p, n, &used) != 0)
			return;
		p += used;
		n -= used;
	}
}

static void on_recv(sio_conn *sc, struct io_uring_cqe *cqe)
{
	sio *s = sc->s;
	bool more = cqe->flags & IORING_CQE_F_MORE;
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		s->held[s->nheld++] = bid;
		if (cqe->res > 0 && !sc->closing) {
			s->t->stats.bytes_recv += (uint64_t)cqe->res;
			feed(sc, s->bufs + (size_t)bid * BUF_SIZE, (size_t)cqe->res);
		}
	}
	if (!more) {
		sc->inflight--;
		sc->recv_armed = false;
	}
	if (sc->closing)
		return;
	if (cqe->res == 0 || (cqe->res < 0 && cqe->res != -ENOBUFS && cqe->res != -ECANCELED)) {
		conn_fail(sc, sc->authed || sc->inbound ? PRISM_E_PEER_GONE
			      : sc->rs == R_PROOF       ? PRISM_E_AUTH
							: PRISM_E_PEER_GONE);
		return;
	}
	if (more)
		return;
	size_t left = sc->rs == R_PAYLOAD ? sc->h.len - sc->got : 0;
	if (left >= SIO_DIRECT_MIN && sc->cancel_sent) {
		arm_direct(sc);
	} else if (cqe->res == -ENOBUFS) {
		/* Buffers come back at the next progress; re-arm then. */
		sc->need_rearm = true;
		s->nrearm++;
	} else {
		arm_recv(sc);
	}
}

static void on_direct(sio_conn *sc, int res)
{
	sc->direct = false;
	if (sc->closing)
		return;
	if (res <= 0) {
		conn_fail(sc, PRISM_E_PEER_GONE);
		return;
	}
	sc->s->t->stats.bytes_recv += (uint64_t)res;
	sc->got += (uint32_t)res;
	if (sc->got < sc->h.len) {
		arm_direct(sc);
		return;
	}
	deliver(sc, sc->dest);
	if (!sc->closing)
		arm_recv(sc);
}

/* After a recv completion: switch a long payload to the direct path. */
static void maybe_go_direct(sio_conn *sc)
{
	if (sc->closing || sc->rs != R_PAYLOAD || !sc->recv_armed || sc->cancel_sent)
		return;
	if (sc->h.len - sc->got >= SIO_DIRECT_MIN)
		cancel_recv(sc);
}

/* ---- listener and connect ---------------------------------------------------------- */

static void arm_accept(sio *s)
{
	struct io_uring_sqe *sqe = get_sqe(s);
	if (!sqe)
		return;
	io_uring_prep_multishot_accept(sqe, s->lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud(s, TAG_ACCEPT));
}

static void on_accept(sio *s, struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE))
		arm_accept(s);
	if (cqe->res < 0) {
		if (cqe->res != -ECANCELED)
			PRISM_LOG(PRISM_LOG_WARN, LOGM, "accept: %s", prism_strerror(cqe->res));
		return;
	}
	int fd = cqe->res;
	if (s->t->nconns + s->nhandshaking >= s->t->opts.max_conns) {
		PRISM_LOG(PRISM_LOG_WARN, LOGM, "link refused: %u links is the limit",
			  s->t->opts.max_conns);
		close(fd);
		return;
	}
	sio_conn *sc = conn_new(s, fd, true);
	if (!sc) {
		close(fd);
		return;
	}
	socklen_t sl = sizeof(sc->peer);
	getpeername(fd, (struct sockaddr *)&sc->peer, &sl);
	sc->loopback = (ntohl(sc->peer.sin_addr.s_addr) >> 24) == 127;
	sc->connected = true;
	conn_start(sc);
}

int sio_listen(sio *s, const struct sockaddr_in *sa, uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in b = *sa;
	socklen_t sl = sizeof(b);
	if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 || listen(fd, 128) != 0 ||
	    getsockname(fd, (struct sockaddr *)&b, &sl) != 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	s->lfd = fd;
	*port = ntohs(b.sin_port);
	arm_accept(s);
	return 0;
}

int sio_connect(sio *s, const struct sockaddr_in *sa, void *ctx, sio_conn **out)
{
	*out = NULL;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	sio_conn *sc = conn_new(s, fd, false);
	struct io_uring_sqe *sqe = sc ? get_sqe(s) : NULL;
	if (!sqe) {
		if (sc)
			sio_close(sc);
		else
			close(fd);
		return -ENOMEM;
	}
	sc->peer = *sa;
	sc->ctx = ctx;
	sc->loopback = (ntohl(sa->sin_addr.s_addr) >> 24) == 127;
	io_uring_prep_connect(sqe, fd, (const struct sockaddr *)&sc->peer, sizeof(sc->peer));
	io_uring_sqe_set_data64(sqe, ud(sc, TAG_CONNECT));
	sc->inflight++;
	*out = sc;
	return 0;
}

static void on_connect(sio_conn *sc, int res)
{
	if (sc->closing)
		return;
	if (res < 0) {
		conn_fail(sc, res);
		return;
	}
	sc->connected = true;
	conn_start(sc);
}

/* ---- progress ---------------------------------------------------------------------- */

static void on_cqe(sio *s, struct io_uring_cqe *cqe)
{
	uint64_t d = io_uring_cqe_get_data64(cqe);
	unsigned tag = d & 7u;
	void *p = (void *)(uintptr_t)(d & ~(uint64_t)7);
	if (tag == TAG_ACCEPT) {
		on_accept(s, cqe);
		return;
	}
	if (tag == TAG_ZC) {
		seg *g = p;
		sio_conn *sc = g->sc;
		if (cqe->flags & IORING_CQE_F_NOTIF) {
			g->notifs--;
			sc->inflight--;
			if (g->done)
				seg_release(sc, g);
		} else {
			if (!(cqe->flags & IORING_CQE_F_MORE)) {
				g->notifs--;
				sc->inflight--;
			}
			if (cqe->res == -EOPNOTSUPP || cqe->res == -EINVAL) {
				/* No zero-copy here: send plainly from now on. */
				s->zc_ok = false;
				sc->send_inflight = false;
				kick(sc);
			} else {
				on_sent(sc, g, cqe->res);
			}
		}
		maybe_free(sc);
		return;
	}
	sio_conn *sc = p;
	switch (tag) {
	case TAG_RECV:
		on_recv(sc, cqe);
		maybe_go_direct(sc);
		return maybe_free(sc);
	case TAG_SEND:
		sc->inflight--;
		on_sent(sc, sc->sq_head, cqe->res);
		return maybe_free(sc);
	case TAG_DIRECT:
		sc->inflight--;
		on_direct(sc, cqe->res);
		return maybe_free(sc);
	case TAG_CONNECT:
		sc->inflight--;
		on_connect(sc, cqe->res);
		return maybe_free(sc);
	case TAG_CANCEL:
		sc->inflight--;
		return maybe_free(sc);
	default:
		(void)PRISM_NEVER(1);
	}
}

/* Give the buffers handed out by the last progress back to the kernel. */
static void recycle(sio *s)
{
	for (unsigned i = 0; i < s->nheld; i++) {
		uint16_t bid = s->held[i];
		io_uring_buf_ring_add(s->br, s->bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, bid,
				      io_uring_buf_ring_mask(NBUFS), (int)i);
	}
	io_uring_buf_ring_advance(s->br, (int)s->nheld);
	s->nheld = 0;
	for (unsigned i = 0; i < s->ndeferred; i++)
		prism_free(s->deferred[i]);
	s->ndeferred = 0;
	for (sio_conn *sc = s->conns; sc; sc = sc->next)
		for (int i = 0; i < 2; i++)
			if (!(sc->rs == R_PAYLOAD && sc->dest == sc->asm_buf[i]))
				sc->asm_busy[i] = false;
}

static void housekeeping(sio *s)
{
	if (!s->nrearm && !s->nhandshaking && !s->nclosing)
		return;
	uint64_t now = s->nhandshaking ? prism_now_ns() : 0;
	for (sio_conn *sc = s->conns, *nx; sc; sc = nx) {
		nx = sc->next;
		if (sc->closing) {
			maybe_free(sc);
			continue;
		}
		if (sc->need_rearm) {
			sc->need_rearm = false;
			s->nrearm--;
			arm_recv(sc);
		}
		if (!sc->authed && now > sc->hs_deadline)
			conn_fail(sc, PRISM_E_TIMEOUT);
	}
}

static unsigned reap(sio *s)
{
	struct io_uring_cqe *cqe;
	unsigned n = 0;
	while (n < MAX_REAP && s->nheld < NBUFS && io_uring_peek_cqe(&s->ring, &cqe) == 0) {
		on_cqe(s, cqe);
		io_uring_cqe_seen(&s->ring, cqe);
		n++;
	}
	return n;
}

int sio_progress(sio *s, int64_t timeout_ns)
{
	recycle(s);
	housekeeping(s);
	int rc = io_uring_submit(&s->ring);
	if (rc < 0)
		return rc;
	unsigned n = reap(s);
	if (n || timeout_ns == 0 || s->t->evq.len)
		return 0;
	struct io_uring_cqe *cqe;
	if (timeout_ns < 0) {
		rc = io_uring_wait_cqe(&s->ring, &cqe);
	} else {
		/* Handshakes time out even when nothing else happens. */
		if (s->nhandshaking && (uint64_t)timeout_ns > s->t->opts.handshake_ns)
			timeout_ns = (int64_t)s->t->opts.handshake_ns;
		struct __kernel_timespec ts = {.tv_sec = timeout_ns / 1000000000,
					       .tv_nsec = timeout_ns % 1000000000};
		rc = io_uring_wait_cqe_timeout(&s->ring, &cqe, &ts);
	}
	if (rc < 0 && rc != -ETIME && rc != -EINTR)
		return rc;
	reap(s);
	housekeeping(s);
	return 0;
}

int sio_flush(sio *s)
{
	int rc = io_uring_submit(&s->ring);
	return rc < 0 ? rc : 0;
}

int sio_fd(const sio *s)
{
	return s->ring.ring_fd;
}

/* ---- create and destroy ------------------------------------------------------------ */

int sio_create(transport *t, const sio_cbs *cbs, sio **out)
{
	*out = NULL;
	sio *s = prism_calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->t = t;
	s->cbs = *cbs;
	s->lfd = -1;
	s->zc_ok = t->opts.zerocopy_min != SIZE_MAX;
	/* A CQ of 4096: every link's receive, send and notification at once for hundreds of
	 * links, so completions never wait for room. */
	/* COOP_TASKRUN: completions are posted when this thread next enters the kernel (a
	 * peek does when TASKRUN_FLAG says work waits) instead of by an IPI that interrupts
	 * the spinning poller; measured at a fifth of the receiver's time without it.
	 * Kernels before 5.19 refuse it: retry without. */
	struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN |
					     IORING_SETUP_TASKRUN_FLAG,
				    .cq_entries = 4096};
	int rc = io_uring_queue_init_params(256, &s->ring, &p);
	if (rc == -EINVAL) {
		p = (struct io_uring_params){.flags = IORING_SETUP_CQSIZE, .cq_entries = 4096};
		rc = io_uring_queue_init_params(256, &s->ring, &p);
	}
	if (rc < 0)
		goto fail_ring;
	s->br_bytes = NBUFS * sizeof(struct io_uring_buf);
	s->br = mmap(NULL, s->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		     0);
	if (s->br == MAP_FAILED) {
		rc = -errno;
		goto fail_br;
	}
	s->bufs = prism_aligned_alloc(4096, (size_t)NBUFS * BUF_SIZE);
	if (!s->bufs) {
		rc = -ENOMEM;
		goto fail_bufs;
	}
	struct io_uring_buf_reg reg = {
		.ring_addr = (uintptr_t)s->br, .ring_entries = NBUFS, .bgid = BGID};
	rc = io_uring_register_buf_ring(&s->ring, &reg, 0);
	if (rc < 0)
		goto fail_reg;
	io_uring_buf_ring_init(s->br);
	for (unsigned i = 0; i < NBUFS; i++)
		s->held[s->nheld++] = (uint16_t)i;
	recycle(s);
	*out = s;
	return 0;
fail_reg:
	prism_free(s->bufs);
fail_bufs:
	munmap(s->br, s->br_bytes);
fail_br:
	io_uring_queue_exit(&s->ring);
fail_ring:
	prism_free(s);
	return rc;
}

void sio_destroy(sio *s)
{
	if (!s)
		return;
	/* Tear the ring down first: the kernel then names nothing freed below. */
	io_uring_queue_exit(&s->ring);
	while (s->conns) {
		sio_conn *sc = s->conns;
		if (!sc->closing)
			s->nclosing++;
		sc->closing = true;
		/* Segments waiting for notifications are no longer named by the kernel. */
		conn_unlink_free(sc);
	}
	if (s->lfd >= 0)
		close(s->lfd);
	while (s->zc_wait) {
		seg *g = s->zc_wait;
		s->zc_wait = g->znext;
		prism_free(g);
	}
	while (s->free_chunks) {
		seg *g = s->free_chunks;
		s->free_chunks = g->next;
		prism_free(g);
	}
	for (unsigned i = 0; i < s->ndeferred; i++)
		prism_free(s->deferred[i]);
	prism_free(s->deferred);
	prism_free(s->bufs);
	munmap(s->br, s->br_bytes);
	prism_free(s);
}
