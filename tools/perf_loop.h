/* perf_loop.h — the measuring loops shared by prism-perf and prism-bench's transport suite.
 *
 * One link between two transports; both sides spin on transport_poll(t, ev, n, 0), which
 * gives a transport's lowest latency.  The same loops run for every backend, so what
 * prism-perf shows an operator on a cluster is what the bench measures here.
 *
 * What crosses the link once the caller has set a run up:
 *   lat   the client sends a `size`-byte message and waits for the server's echo, one
 *         at a time; the time from send to echo is the round trip.
 *   bw    the client streams `size`-byte messages with `window` sends outstanding
 *         (posted, not completed); the server counts them and times them as they arrive
 *         (the receiver's view, so bytes buffered in a kernel are not counted as moved).
 *         A send's completion bounds nothing when the backend copies it (tcp completes
 *         sends of up to TRANSPORT_INLINE_MAX bytes when they are posted), so the server
 *         also acknowledges every perf_bw_ack_every() messages and the client keeps at
 *         most perf_bw_credit() unacknowledged: without that, a second of 64-byte sends
 *         queues gigabytes in the sender.  The credit is loose (at least 32 MiB or two
 *         windows) and does not bind where completions already pace the sender.
 *   read  the client READs `size` bytes of the server's region with `window`
 *         outstanding; the server only polls (tcp serves the READs from its poll).
 * Every run ends with a 0-byte message from the client, which is why messages of a run
 * are at least 1 byte.  The first `warm` messages or READs are not measured.
 *
 * Bounds: every wait fails with PRISM_E_TIMEOUT when nothing at all happens on the
 * transport for idle_ns, and loops end by count or time, so a dead peer never hangs a
 * caller.  Errors: 0 or a negative code, with what failed written to p->err.
 * Ownership: a perf_link borrows its transport and link.  Not thread-safe.
 */
#ifndef PRISM_TOOLS_PERF_LOOP_H
#define PRISM_TOOLS_PERF_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/hist.h"
#include "transport/transport.h"

/* 10 s without a single event: the peer is gone or stuck. */
#define PERF_IDLE_NS (10ull * 1000000000ull)

typedef struct perf_link {
	transport *t;      /* borrowed */
	transport_conn *c; /* the link measured; set by perf_wait_up() on a server */
	uint64_t idle_ns;  /* 0: PERF_IDLE_NS */
	/* Operations are numbered (wr_id) from 0 in posting order; they complete in that
	 * order, so a signalled completion of wr_id w means all before w are done too. */
	uint64_t next_wr; /* the wr_id of the next operation posted */
	uint64_t done;    /* wr_id + 1 of the latest signalled completion */
	uint64_t last_ns; /* when the last event arrived: the idle bound's reference */
	/* The message of the last perf_recv(): borrowed until the next poll. */
	const void *rx;
	size_t rx_len;
	/* Events polled but not handled yet. */
	transport_event ev[32];
	int nev, iev;
	bool pending; /* rx holds a message perf_recv() has not returned yet */
	bool closing; /* after perf_close(): failures of flushed operations are expected */
	bool closed;  /* CLOSED was seen for c */
	char err[256];
} perf_link;

/* A rate measured over an interval: what moved and for how long. */
typedef struct perf_rate {
	uint64_t ops, bytes, ns;
} perf_rate;

/* Wait for the link to come up: CONNECTED for p->c (a client), or the first ACCEPTED
 * (a server: p->c is set to it, and later inbound links are closed).  Sleeps in the
 * poll (timeout 10 ms) rather than spinning; waits at most wait_ns (-1: for ever). */
int perf_wait_up(perf_link *p, bool server, int64_t wait_ns);
/* Spin until a message arrives on p->c: into p->rx, p->rx_len. */
int perf_recv(perf_link *p);
/* transport_send of the next wr_id, with a failure explained in p->err. */
int perf_send(perf_link *p, const void *buf, size_t len, unsigned flags);
/* Post the 0-byte message that ends a run, signalled, and wait until it completed (then
 * so has every operation before it) or the peer's reply to it arrived (kept for the next
 * perf_recv()).  A completed send may still sit in a buffer on the way: close the link
 * after the peer's reply to the end message, not before. */
int perf_send_end(perf_link *p);

/* lat, client: warm + iters round trips of buf[0..size) (at most max_ns of measuring
 * when max_ns > 0), each measured one recorded in rtt (ns); then the end message. */
int perf_lat_client(perf_link *p, const void *buf, size_t size, uint64_t warm, uint64_t iters,
		    uint64_t max_ns, prism_hist *rtt);
/* lat, server: echo every message from buf (size bytes, the run's message size) until
 * the end message; *count round trips served. */
int perf_lat_server(perf_link *p, const void *buf, size_t size, uint64_t *count);

/* The bw run's flow control, from its message size and window (both sides compute it). */
uint64_t perf_bw_credit(size_t size, unsigned window);
uint64_t perf_bw_ack_every(size_t size, unsigned window);
/* The next message that is not a bw acknowledgement (a reply after a run). */
int perf_recv_reply(perf_link *p);

/* bw, client: stream buf[0..size) with `window` sends outstanding: warm messages, then
 * until max_msgs more (when > 0) or max_ns passed (when > 0), then the end message.  *sent
 * is the sender's view of the measured part. */
int perf_bw_client(perf_link *p, const void *buf, size_t size, unsigned window, uint64_t warm,
		   uint64_t max_msgs, uint64_t max_ns, perf_rate *sent);
/* bw, server: count messages of `size` bytes until the end message; *got covers those
 * after the first warm, timed from the arrival of the warm-th to the end message. */
int perf_bw_server(perf_link *p, size_t size, unsigned window, uint64_t warm, perf_rate *got);

/* read, client: READs of size bytes from the peer's region d into local (registered
 * here) with `window` outstanding, as perf_bw_client counts its sends; then the end
 * message.  *got: completed READs between the warm-th completion and the last measured. */
int perf_read_client(perf_link *p, void *local, size_t size, const transport_mr_desc *d,
		     unsigned window, uint64_t warm, uint64_t max_ops, uint64_t max_ns,
		     perf_rate *got);
/* read (or any run the peer drives), server: poll until the end message. */
int perf_serve_until_end(perf_link *p);

/* Close p->c and wait (at most 5 s) for its CLOSED event. */
int perf_close(perf_link *p);
/* Wait (at most wait_ns) until the peer closes p->c. */
int perf_wait_closed(perf_link *p, uint64_t wait_ns);

#endif
