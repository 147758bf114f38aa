/* perf_loop.c — the measuring loops of prism-perf and the transport bench; see perf_loop.h. */
#include <stdarg.h>
#include <stdio.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/wire.h"
#include "perf_loop.h"

#define NEV ((int)(sizeof(((perf_link *)0)->ev) / sizeof(transport_event)))

/* Sends are signalled at least this often even in a deep window: a verbs send queue
 * reclaims its slots only at a signalled completion. */
#define SIGNAL_EVERY 64u

static int fail(perf_link *p, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(perf_link *p, int rc, const char *fmt, ...)
{
	char what[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(p->err, sizeof(p->err), "%s: %s", what, prism_strerror(rc));
	return rc;
}

static uint64_t idle_limit(const perf_link *p)
{
	return p->idle_ns ? p->idle_ns : PERF_IDLE_NS;
}

static const char *op_name(enum transport_event_kind k)
{
	return k == TRANSPORT_EV_SEND ? "send" : k == TRANSPORT_EV_READ ? "READ" : "WRITE";
}

/* Handle one event.  1: a message on p->c, now in p->rx; 0: handled; < 0: the run
 * failed. */
static int handle(perf_link *p, const transport_event *ev)
{
	if (ev->conn != p->c) {
		/* One peer per run: a second client is turned away; the events of links
		 * closed that way need nothing. */
		if (ev->kind == TRANSPORT_EV_ACCEPTED)
			transport_close(ev->conn);
		return 0;
	}
	switch (ev->kind) {
	case TRANSPORT_EV_RECV:
		if (p->closing)
			return 0;
		p->rx = ev->data;
		p->rx_len = ev->len;
		return 1;
	case TRANSPORT_EV_SEND:
	case TRANSPORT_EV_READ:
	case TRANSPORT_EV_WRITE:
		if (ev->status == 0) {
			if (ev->wr_id + 1 > p->done)
				p->done = ev->wr_id + 1;
			return 0;
		}
		if (p->closing)
			return 0;
		return fail(p, ev->status, "%s #%llu", op_name(ev->kind),
			    (unsigned long long)ev->wr_id);
	case TRANSPORT_EV_CLOSED:
		p->closed = true;
		if (p->closing)
			return 0;
		return fail(p, ev->status ? ev->status : PRISM_E_PEER_GONE,
			    "the link to the peer closed");
	default:
		return 0;
	}
}

/* Poll into the event buffer when it is empty; 0 events is not an error until the
 * transport has been idle for the limit. */
static int refill(perf_link *p, int64_t timeout_ns)
{
	if (p->iev < p->nev)
		return 0;
	int n = transport_poll(p->t, p->ev, NEV, timeout_ns);
	if (n < 0)
		return fail(p, n, "transport_poll");
	p->nev = n;
	p->iev = 0;
	uint64_t now = prism_now_ns();
	if (n > 0)
		p->last_ns = now;
	else if (now - p->last_ns > idle_limit(p))
		return fail(p, PRISM_E_TIMEOUT, "nothing happened on the link for %.0f s",
			    (double)idle_limit(p) / 1e9);
	return 0;
}

/* One step of a spinning wait: poll if needed and handle at most one event. */
static int pump(perf_link *p)
{
	int rc = refill(p, 0);
	if (rc < 0 || p->iev == p->nev)
		return rc;
	return handle(p, &p->ev[p->iev++]);
}

int perf_wait_up(perf_link *p, bool server, int64_t wait_ns)
{
	uint64_t start = prism_now_ns();
	for (;;) {
		p->last_ns = prism_now_ns(); /* this wait has its own bound */
		int rc = refill(p, 10 * (int64_t)PRISM_NS_PER_MS);
		if (rc < 0)
			return rc;
		while (p->iev < p->nev) {
			const transport_event *ev = &p->ev[p->iev++];
			if (server && ev->kind == TRANSPORT_EV_ACCEPTED && !p->c) {
				p->c = ev->conn;
				return 0;
			}
			if (!server && ev->conn == p->c && ev->kind == TRANSPORT_EV_CONNECTED)
				return 0;
			if (ev->conn == p->c && p->c && ev->kind == TRANSPORT_EV_CLOSED) {
				p->closed = true;
				return fail(p, ev->status ? ev->status : PRISM_E_PEER_GONE,
					    "the link closed before it came up");
			}
			if (p->c || ev->kind == TRANSPORT_EV_ACCEPTED)
				handle(p, ev);
		}
		if (wait_ns >= 0 && prism_now_ns() - start > (uint64_t)wait_ns)
			return fail(p, PRISM_E_TIMEOUT,
				    server ? "no client came" : "the link did not come up");
	}
}

int perf_recv(perf_link *p)
{
	if (p->pending) {
		p->pending = false;
		return 0;
	}
	p->last_ns = prism_now_ns();
	for (;;) {
		int rc = pump(p);
		if (rc)
			return rc < 0 ? rc : 0;
	}
}

int perf_send(perf_link *p, const void *buf, size_t len, unsigned flags)
{
	int rc = transport_send(p->c, buf, len, p->next_wr, flags);
	if (rc)
		return fail(p, rc, "transport_send of %zu bytes", len);
	p->next_wr++;
	return 0;
}

int perf_lat_client(perf_link *p, const void *buf, size_t size, uint64_t warm, uint64_t iters,
		    uint64_t max_ns, prism_hist *rtt)
{
	uint64_t total = iters ? warm + iters : UINT64_MAX;
	uint64_t end = UINT64_MAX;
	for (uint64_t i = 0; i < total; i++) {
		if (i == warm && max_ns)
			end = prism_cycles() + prism_ns_to_cycles(max_ns);
		unsigned flags = i % SIGNAL_EVERY == SIGNAL_EVERY - 1 ? TRANSPORT_SIGNALED : 0;
		uint64_t t0 = prism_cycles();
		int rc = perf_send(p, buf, size, flags);
		if (rc == 0)
			rc = perf_recv(p);
		uint64_t t1 = prism_cycles();
		if (rc)
			return rc;
		if (p->rx_len != size)
			return fail(p, PRISM_E_PROTO, "echo %llu has %zu bytes, not %zu",
				    (unsigned long long)i, p->rx_len, size);
		if (i >= warm) {
			prism_hist_record(rtt, prism_cycles_to_ns(t1 - t0));
			if (t1 >= end)
				break;
		}
	}
	return perf_send_end(p);
}

int perf_lat_server(perf_link *p, const void *buf, size_t size, uint64_t *count)
{
	uint64_t n = 0;
	*count = 0;
	for (;;) {
		int rc = perf_recv(p);
		if (rc)
			return rc;
		if (p->rx_len == 0)
			break;
		if (p->rx_len != size)
			return fail(p, PRISM_E_PROTO, "ping %llu has %zu bytes, not %zu",
				    (unsigned long long)n, p->rx_len, size);
		unsigned flags = n % SIGNAL_EVERY == SIGNAL_EVERY - 1 ? TRANSPORT_SIGNALED : 0;
		rc = perf_send(p, buf, size, flags);
		if (rc)
			return rc;
		n++;
	}
	*count = n;
	return 0;
}

/* Signal every `step` operations, and always the one that fills the window, so that a
 * full window always has a completion coming that opens it again. */
static unsigned window_flags(const perf_link *p, unsigned window, uint64_t *mark)
{
	uint64_t w = p->next_wr;
	unsigned step = window / 2 ? window / 2 : 1;
	if (step > SIGNAL_EVERY)
		step = SIGNAL_EVERY;
	if (w + 1 - *mark >= step || w + 1 - p->done >= window) {
		*mark = w + 1;
		return TRANSPORT_SIGNALED;
	}
	return 0;
}

static bool run_over(uint64_t n, uint64_t max_n, uint64_t t0, uint64_t max_cycles)
{
	return (max_n && n >= max_n) || (max_cycles && prism_cycles() - t0 >= max_cycles);
}

/* Acknowledgements of a bw run: "PACK" and the count of messages received so far. */
#define ACK_MAGIC 0x4b434150u
#define ACK_BYTES 12u

uint64_t perf_bw_credit(size_t size, unsigned window)
{
	/* 32 MiB: enough to cover any link's bandwidth-delay product many times over, and
	 * little enough to hold in memory when every byte is a copy. */
	uint64_t by_bytes = ((32ull << 20) + size - 1) / size;
	uint64_t by_window = 2ull * window;
	return by_bytes > by_window ? by_bytes : by_window;
}

uint64_t perf_bw_ack_every(size_t size, unsigned window)
{
	uint64_t c = perf_bw_credit(size, window) / 4;
	return c ? c : 1;
}

static bool is_ack(const perf_link *p, uint64_t *count)
{
	if (p->rx_len != ACK_BYTES || prism_le32_load(p->rx) != ACK_MAGIC)
		return false;
	*count = prism_le64_load((const uint8_t *)p->rx + 4);
	return true;
}

int perf_send_end(perf_link *p)
{
	int rc = perf_send(p, NULL, 0, TRANSPORT_SIGNALED);
	uint64_t n;
	p->last_ns = prism_now_ns();
	while (rc == 0 && p->done < p->next_wr) {
		rc = pump(p);
		if (rc == 1 && !is_ack(p, &n)) {
			/* The peer's reply: it has the end message, so everything arrived. */
			p->pending = true;
			return 0;
		}
		rc = rc < 0 ? rc : 0;
	}
	return rc;
}

int perf_recv_reply(perf_link *p)
{
	uint64_t n;
	for (;;) {
		int rc = perf_recv(p);
		if (rc || !is_ack(p, &n))
			return rc;
	}
}

int perf_bw_client(perf_link *p, const void *buf, size_t size, unsigned window, uint64_t warm,
		   uint64_t max_msgs, uint64_t max_ns, perf_rate *sent)
{
	uint64_t first = p->next_wr, from = first + warm, mark = first, t0 = 0, acked = 0;
	uint64_t credit = perf_bw_credit(size, window);
	uint64_t max_cycles = max_ns ? prism_ns_to_cycles(max_ns) : 0;
	bool stop = false;
	*sent = (perf_rate){0};
	p->last_ns = prism_now_ns();
	while (!stop) {
		while (p->next_wr - p->done < window && p->next_wr - first - acked < credit) {
			if (p->next_wr == from) {
				t0 = prism_cycles();
			} else if (p->next_wr > from &&
				   run_over(p->next_wr - from, max_msgs, t0, max_cycles)) {
				stop = true;
				break;
			}
			int rc = perf_send(p, buf, size, window_flags(p, window, &mark));
			if (rc)
				return rc;
		}
		int rc = pump(p);
		if (rc < 0)
			return rc;
		if (rc == 1 && !is_ack(p, &acked))
			return fail(p, PRISM_E_PROTO, "unexpected message during a bw run");
	}
	sent->ops = p->next_wr - from;
	sent->bytes = sent->ops * size;
	/* The sender's view ends when the end message, posted after the last byte, has
	 * completed: every send before it has then. */
	int rc = perf_send_end(p);
	sent->ns = prism_cycles_to_ns(prism_cycles() - t0);
	return rc;
}

int perf_bw_server(perf_link *p, size_t size, unsigned window, uint64_t warm, perf_rate *got)
{
	uint64_t n = 0, t0 = 0, every = perf_bw_ack_every(size, window), acks = 0;
	uint8_t ack[ACK_BYTES];
	*got = (perf_rate){0};
	if (warm == 0)
		warm = 1; /* the clock starts at a message */
	for (;;) {
		int rc = perf_recv(p);
		if (rc)
			return rc;
		if (p->rx_len == 0)
			break;
		if (p->rx_len != size)
			return fail(p, PRISM_E_PROTO, "message %llu has %zu bytes, not %zu",
				    (unsigned long long)n, p->rx_len, size);
		if (++n == warm)
			t0 = prism_now_ns();
		if (n % every == 0) {
			prism_le32_store(ack, ACK_MAGIC);
			prism_le64_store(ack + 4, n);
			acks++;
			unsigned flags = acks % SIGNAL_EVERY == 0 ? TRANSPORT_SIGNALED : 0;
			if ((rc = perf_send(p, ack, sizeof(ack), flags)) != 0)
				return rc;
		}
	}
	if (n > warm) {
		got->ops = n - warm;
		got->bytes = got->ops * size;
		got->ns = prism_now_ns() - t0;
	}
	return 0;
}

int perf_read_client(perf_link *p, void *local, size_t size, const transport_mr_desc *d,
		     unsigned window, uint64_t warm, uint64_t max_ops, uint64_t max_ns,
		     perf_rate *got)
{
	uint64_t from = p->next_wr + warm, mark = p->next_wr, base = 0, t0 = 0, t1 = 0;
	uint64_t max_cycles = max_ns ? prism_ns_to_cycles(max_ns) : 0;
	bool stop = false;
	*got = (perf_rate){0};
	p->last_ns = prism_now_ns();
	while (!stop) {
		while (!stop && p->next_wr - p->done < window) {
			uint64_t w = p->next_wr;
			int rc = transport_read(p->c, local, size, d->addr, d->rkey, w,
						window_flags(p, window, &mark));
			if (rc)
				return fail(p, rc, "transport_read of %zu bytes", size);
			p->next_wr++;
		}
		int rc = pump(p);
		if (rc < 0)
			return rc;
		if (rc == 1)
			return fail(p, PRISM_E_PROTO, "unexpected message during a read run");
		if (!t0 && p->done >= from) {
			t0 = prism_cycles();
			base = p->done;
		} else if (t0 && !stop && run_over(p->done - base, max_ops, t0, max_cycles)) {
			stop = true;
			t1 = prism_cycles();
			got->ops = p->done - base;
		}
	}
	got->bytes = got->ops * size;
	got->ns = prism_cycles_to_ns(t1 - t0);
	/* The READs still outstanding complete before the end message does. */
	return perf_send_end(p);
}

int perf_serve_until_end(perf_link *p)
{
	int rc = perf_recv(p);
	if (rc)
		return rc;
	if (p->rx_len != 0)
		return fail(p, PRISM_E_PROTO, "unexpected %zu-byte message", p->rx_len);
	return 0;
}

static int wait_closed(perf_link *p, uint64_t wait_ns, const char *what)
{
	uint64_t start = prism_now_ns();
	p->closing = true;
	while (!p->closed) {
		p->last_ns = prism_now_ns();
		int rc = refill(p, (int64_t)PRISM_NS_PER_MS);
		if (rc < 0)
			return rc;
		while (p->iev < p->nev && !p->closed)
			handle(p, &p->ev[p->iev++]);
		if (!p->closed && prism_now_ns() - start > wait_ns)
			return fail(p, PRISM_E_TIMEOUT, "%s", what);
	}
	return 0;
}

int perf_close(perf_link *p)
{
	if (p->closed)
		return 0;
	transport_close(p->c);
	return wait_closed(p, 5 * PRISM_NS_PER_SEC, "closing the link");
}

int perf_wait_closed(perf_link *p, uint64_t wait_ns)
{
	return wait_closed(p, wait_ns, "waiting for the peer to close the link");
}
