/* One conformance suite for every transport backend: tcp, softverbs and verbs (which
 * skips where no RDMA device exists).  Each case runs the same code against each backend
 * through the CONFORMANCE() table at the bottom. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "transport/transport.h"
#include "transport_int.h"

#define DEADLINE_NS (20ull * 1000000000ull)

/* ---- harness ----------------------------------------------------------------------- */

typedef struct side {
	transport *t;
	transport_conn *conn; /* the last link made or accepted */
	/* What arrived, in order. */
	transport_event evs[4096];
	unsigned nev;
	uint8_t *data[4096];
} side;

static void set_token(transport_opts *o, uint8_t fill)
{
	memset(o->token, fill, sizeof(o->token));
}

/* Make an endpoint of backend b, or skip the test when the backend has no device. */
static transport *make(enum transport_backend b, uint8_t token_fill)
{
	transport_opts o = {.backend = b};
	set_token(&o, token_fill);
	transport *t = NULL;
	int rc = transport_create(&o, &t);
	if (rc == PRISM_E_NO_DEVICE)
		cr_skip_test(
			"%s: no RDMA device on this machine (ibv_get_device_list found none)",
			transport_backend_name(b));
	cr_assert_eq(rc, 0, "transport_create(%s): %s", transport_backend_name(b),
		     prism_strerror(rc));
	return t;
}

static void side_clear(side *s)
{
	for (unsigned i = 0; i < s->nev; i++)
		free(s->data[i]);
	s->nev = 0;
}

/* Poll one side once, recording events (RECV data copied: it is borrowed). */
static void pump1(side *s)
{
	transport_event ev[64];
	int n = transport_poll(s->t, ev, 64, 0);
	cr_assert_geq(n, 0, "poll: %s", prism_strerror(n));
	for (int i = 0; i < n; i++) {
		cr_assert_lt(s->nev, 4096u, "too many events");
		s->evs[s->nev] = ev[i];
		s->data[s->nev] = NULL;
		if (ev[i].kind == TRANSPORT_EV_RECV && ev[i].len) {
			s->data[s->nev] = malloc(ev[i].len);
			memcpy(s->data[s->nev], ev[i].data, ev[i].len);
		}
		if (ev[i].kind == TRANSPORT_EV_ACCEPTED)
			s->conn = ev[i].conn;
		s->nev++;
	}
}

typedef bool (*cond_fn)(side *a, side *b, void *arg);

static void pump_until(side *a, side *b, cond_fn cond, void *arg, const char *what)
{
	uint64_t end = prism_now_ns() + DEADLINE_NS;
	while (!cond(a, b, arg)) {
		cr_assert_lt(prism_now_ns(), end, "timed out waiting for %s", what);
		pump1(a);
		if (b)
			pump1(b);
	}
}

static int count_kind(const side *s, enum transport_event_kind k)
{
	int n = 0;
	for (unsigned i = 0; i < s->nev; i++)
		n += s->evs[i].kind == k;
	return n;
}

static bool has_n(side *a, side *b, void *arg)
{
	(void)b;
	const int *want = arg; /* {kind, n} */
	return count_kind(a, (enum transport_event_kind)want[0]) >= want[1];
}

static bool has_n_b(side *a, side *b, void *arg)
{
	return has_n(b, a, arg);
}

static const transport_event *find_kind(const side *s, enum transport_event_kind k)
{
	for (unsigned i = 0; i < s->nev; i++)
		if (s->evs[i].kind == k)
			return &s->evs[i];
	return NULL;
}

/* A listening server and a client connected to it, both up. */
static void pair(enum transport_backend b, side *srv, side *cli)
{
	memset(srv, 0, sizeof(*srv));
	memset(cli, 0, sizeof(*cli));
	srv->t = make(b, 7);
	cli->t = make(b, 7);
	char addr[TRANSPORT_ADDR_MAX];
	cr_assert_eq(transport_listen(srv->t, "tcp://127.0.0.1:0", addr, sizeof(addr)), 0);
	cr_assert_eq(transport_connect(cli->t, addr, NULL, &cli->conn), 0);
	int want_c[2] = {TRANSPORT_EV_CONNECTED, 1}, want_a[2] = {TRANSPORT_EV_ACCEPTED, 1};
	pump_until(cli, srv, has_n, want_c, "connected");
	pump_until(srv, cli, has_n, want_a, "accepted");
	cr_assert_eq(find_kind(cli, TRANSPORT_EV_CONNECTED)->status, 0);
	side_clear(srv);
	side_clear(cli);
}

static void unpair(side *srv, side *cli)
{
	side_clear(srv);
	side_clear(cli);
	transport_destroy(cli->t);
	transport_destroy(srv->t);
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 9));
}

/* ---- cases ------------------------------------------------------------------------- */

/* Messages from 0 bytes to 64 MiB arrive whole, intact and in order. */
static void case_message_sizes(enum transport_backend b)
{
	static const size_t sizes[] = {
		0,     1,     63,    64,       4095,           4096,      4097,
		65535, 65536, 65537, 1u << 20, (1u << 20) + 3, 16u << 20, 64u << 20};
	side srv, cli;
	pair(b, &srv, &cli);
	size_t n = PRISM_ARRAY_LEN(sizes);
	uint8_t **bufs = calloc(n, sizeof(*bufs));
	for (size_t i = 0; i < n; i++) {
		bufs[i] = malloc(sizes[i] ? sizes[i] : 1);
		fill(bufs[i], sizes[i], (uint32_t)i);
		cr_assert_eq(transport_send(cli.conn, bufs[i], sizes[i], i, TRANSPORT_SIGNALED),
			     0);
	}
	int want_r[2] = {TRANSPORT_EV_RECV, (int)n}, want_s[2] = {TRANSPORT_EV_SEND, (int)n};
	pump_until(&srv, &cli, has_n, want_r, "every message");
	pump_until(&cli, &srv, has_n, want_s, "every send completion");
	for (size_t i = 0, k = 0; i < srv.nev; i++) {
		if (srv.evs[i].kind != TRANSPORT_EV_RECV)
			continue;
		cr_assert_eq(srv.evs[i].len, sizes[k], "message %zu: %zu bytes, want %zu", k,
			     srv.evs[i].len, sizes[k]);
		if (sizes[k])
			cr_assert(memcmp(srv.data[i], bufs[k], sizes[k]) == 0,
				  "message %zu intact", k);
		k++;
	}
	for (size_t i = 0, k = 0; i < cli.nev; i++) {
		if (cli.evs[i].kind != TRANSPORT_EV_SEND)
			continue;
		cr_assert_eq(cli.evs[i].status, 0);
		cr_assert_eq(cli.evs[i].wr_id, k, "send completions in posting order");
		k++;
	}
	for (size_t i = 0; i < n; i++)
		free(bufs[i]);
	free(bufs);
	unpair(&srv, &cli);
}

/* 3,000 messages of mixed sizes, unsignalled but the last, keep their order both ways. */
static void case_ordering(enum transport_backend b)
{
	side srv, cli;
	pair(b, &srv, &cli);
	enum { N = 3000 };
	/* Sends above TRANSPORT_INLINE_MAX are zero-copy: each needs its own buffer. */
	uint8_t *pool = malloc((size_t)N * 8004), buf[9000];
	for (uint32_t i = 0; i < N; i++) {
		size_t len = 4 + (i * 2654435761u) % 8000;
		uint8_t *m = pool + (size_t)i * 8004;
		memcpy(m, &i, 4);
		fill(m + 4, len - 4, i);
		unsigned fl = i == N - 1 ? TRANSPORT_SIGNALED : 0;
		cr_assert_eq(transport_send(cli.conn, m, len, i, fl), 0);
		if (i % 500 == 0)
			pump1(&cli);
	}
	int want[2] = {TRANSPORT_EV_RECV, N};
	pump_until(&srv, &cli, has_n, want, "3000 messages");
	uint32_t next = 0;
	for (unsigned i = 0; i < srv.nev; i++) {
		if (srv.evs[i].kind != TRANSPORT_EV_RECV)
			continue;
		uint32_t got;
		memcpy(&got, srv.data[i], 4);
		cr_assert_eq(got, next, "message %u arrived where %u was due", got, next);
		size_t len = 4 + (got * 2654435761u) % 8000;
		cr_assert_eq(srv.evs[i].len, len);
		fill(buf, len - 4, got);
		cr_assert(memcmp(srv.data[i] + 4, buf, len - 4) == 0);
		next++;
	}
	/* Only the signalled send reports; it implies the others. */
	int want_s[2] = {TRANSPORT_EV_SEND, 1};
	pump_until(&cli, &srv, has_n, want_s, "the signalled send");
	cr_assert_eq(count_kind(&cli, TRANSPORT_EV_SEND), 1);
	cr_assert_eq(find_kind(&cli, TRANSPORT_EV_SEND)->wr_id, N - 1);
	free(pool);
	unpair(&srv, &cli);
}

/* 48 links to one server at once; each sends 20 messages that the server echoes. */
static void case_many_links(enum transport_backend b)
{
	enum { L = 48, M = 20 };
	side srv = {0}, cli = {0};
	srv.t = make(b, 3);
	cli.t = make(b, 3);
	char addr[TRANSPORT_ADDR_MAX];
	cr_assert_eq(transport_listen(srv.t, "127.0.0.1:0", addr, sizeof(addr)), 0);
	transport_conn *links[L];
	for (uintptr_t i = 0; i < L; i++)
		cr_assert_eq(transport_connect(cli.t, addr, (void *)(i + 1), &links[i]), 0);
	int want_c[2] = {TRANSPORT_EV_CONNECTED, L};
	pump_until(&cli, &srv, has_n, want_c, "48 links up");
	for (unsigned i = 0; i < cli.nev; i++)
		cr_assert_eq(cli.evs[i].status, 0);
	for (uint32_t i = 0; i < L; i++)
		for (uint32_t m = 0; m < M; m++) {
			uint32_t v[2] = {i, m};
			cr_assert_eq(transport_send(links[i], v, sizeof(v), 0, 0), 0);
		}
	/* Echo everything back on the link it came from. */
	uint64_t end = prism_now_ns() + DEADLINE_NS;
	unsigned echoed = 0, seen = 0;
	while (count_kind(&cli, TRANSPORT_EV_RECV) < L * M) {
		cr_assert_lt(prism_now_ns(), end, "echoes: %d of %d",
			     count_kind(&cli, TRANSPORT_EV_RECV), L * M);
		pump1(&srv);
		for (; seen < srv.nev; seen++)
			if (srv.evs[seen].kind == TRANSPORT_EV_RECV) {
				cr_assert_eq(transport_send(srv.evs[seen].conn, srv.data[seen],
							    8, 0, 0),
					     0);
				echoed++;
			}
		pump1(&cli);
	}
	uint32_t next[L] = {0};
	for (unsigned i = 0; i < cli.nev; i++) {
		if (cli.evs[i].kind != TRANSPORT_EV_RECV)
			continue;
		uint32_t v[2];
		memcpy(v, cli.data[i], 8);
		uintptr_t ctx = (uintptr_t)cli.evs[i].ctx;
		cr_assert_eq(ctx, v[0] + 1, "echo came back on its own link");
		cr_assert_eq(v[1], next[v[0]]++, "per-link order");
	}
	cr_assert_eq(echoed, L * M);
	unpair(&srv, &cli);
}

/* READ and WRITE against a peer's region; a region it may not write; bad key; out of
 * bounds; an unregistered local buffer. */
static void case_one_sided(enum transport_backend b)
{
	side srv, cli;
	pair(b, &srv, &cli);
	size_t rlen = 4u << 20;
	uint8_t *remote = aligned_alloc(4096, rlen), *ro = aligned_alloc(4096, 4096);
	uint8_t *local = aligned_alloc(4096, rlen), *unreg = malloc(64);
	fill(remote, rlen, 11);
	memset(local, 0, rlen);
	transport_mr *rmr, *romr, *lmr;
	cr_assert_eq(transport_reg(srv.t, remote, rlen,
				   TRANSPORT_REMOTE_READ | TRANSPORT_REMOTE_WRITE, &rmr),
		     0);
	cr_assert_eq(transport_reg(srv.t, ro, 4096, TRANSPORT_REMOTE_READ, &romr), 0);
	cr_assert_eq(transport_reg(cli.t, local, rlen, 0, &lmr), 0);
	transport_mr *dup;
	cr_assert_eq(transport_reg(cli.t, local + 100, 10, 0, &dup), -EEXIST);
	/* The descriptor travels through its wire form, as it would in a message. */
	transport_mr_desc d, d2;
	transport_mr_desc_get(rmr, &d);
	uint8_t wire[TRANSPORT_MR_DESC_BYTES];
	cr_assert_eq(transport_mr_desc_encode(&d, wire, sizeof(wire)), 0);
	cr_assert_eq(transport_mr_desc_decode(wire, sizeof(wire), &d2), 0);
	cr_assert_eq(d2.rkey, d.rkey);
	cr_assert_eq(d2.addr, d.addr);

	/* READ: 1 byte, 4 KiB at an odd offset, the whole 4 MiB. */
	cr_assert_eq(
		transport_read(cli.conn, local, 1, d2.addr + 5, d2.rkey, 1, TRANSPORT_SIGNALED),
		0);
	cr_assert_eq(transport_read(cli.conn, local + 8, 4096, d2.addr + 12345, d2.rkey, 2,
				    TRANSPORT_SIGNALED),
		     0);
	int want[2] = {TRANSPORT_EV_READ, 2};
	pump_until(&cli, &srv, has_n, want, "two READs");
	cr_assert_eq(local[0], remote[5]);
	cr_assert(memcmp(local + 8, remote + 12345, 4096) == 0);
	cr_assert_eq(
		transport_read(cli.conn, local, rlen, d2.addr, d2.rkey, 3, TRANSPORT_SIGNALED),
		0);
	want[1] = 3;
	pump_until(&cli, &srv, has_n, want, "the 4 MiB READ");
	cr_assert(memcmp(local, remote, rlen) == 0, "4 MiB READ intact");
	for (unsigned i = 0; i < cli.nev; i++)
		cr_assert_eq(cli.evs[i].status, 0, "READ %lu: %s",
			     (unsigned long)cli.evs[i].wr_id,
			     prism_strerror(cli.evs[i].status));

	/* WRITE: 3 bytes and 2 MiB; then READ back what was written. */
	fill(local, rlen, 99);
	cr_assert_eq(transport_write(cli.conn, local, 3, d2.addr + 7, d2.rkey, 4, 0), 0);
	cr_assert_eq(transport_write(cli.conn, local + 4096, 2u << 20, d2.addr + (1u << 20),
				     d2.rkey, 5, TRANSPORT_SIGNALED),
		     0);
	int want_w[2] = {TRANSPORT_EV_WRITE, 1};
	pump_until(&cli, &srv, has_n, want_w, "the WRITEs");
	cr_assert_eq(find_kind(&cli, TRANSPORT_EV_WRITE)->wr_id, 5, "unsignalled WRITE silent");
	cr_assert(memcmp(remote + 7, local, 3) == 0);
	cr_assert(memcmp(remote + (1u << 20), local + 4096, 2u << 20) == 0,
		  "2 MiB WRITE landed");

	/* A WRITE then a message: when the message arrives, the written bytes are in
	 * place (the doorbell of a log ring relies on it, as on an RC queue pair). */
	side_clear(&srv);
	fill(local, 65536, 123);
	cr_assert_eq(transport_write(cli.conn, local, 65536, d2.addr + 8192, d2.rkey, 10, 0),
		     0);
	cr_assert_eq(transport_send(cli.conn, "bell", 4, 11, 0), 0);
	int want_r[2] = {TRANSPORT_EV_RECV, 1};
	pump_until(&srv, &cli, has_n, want_r, "the doorbell");
	cr_assert(memcmp(remote + 8192, local, 65536) == 0,
		  "the WRITE is in place when the message after it arrives");

	/* A local buffer outside every region is refused at post. */
	cr_assert_eq(transport_read(cli.conn, unreg, 8, d2.addr, d2.rkey, 6, 0), -EINVAL);
	cr_assert_eq(transport_read(cli.conn, local, 0, d2.addr, d2.rkey, 6, 0), -EINVAL);

	/* A WRITE into a read-only region: refused by key rights; the link then closes. */
	transport_mr_desc rod;
	transport_mr_desc_get(romr, &rod);
	side_clear(&cli);
	cr_assert_eq(transport_write(cli.conn, local, 8, rod.addr, rod.rkey, 7, 0), 0);
	cr_assert_eq(transport_send(cli.conn, "x", 1, 8, TRANSPORT_SIGNALED), 0);
	int want_cl[2] = {TRANSPORT_EV_CLOSED, 1};
	pump_until(&cli, &srv, has_n, want_cl, "the link to close after the refused WRITE");
	const transport_event *w = find_kind(&cli, TRANSPORT_EV_WRITE);
	cr_assert_not_null(w, "a failed WRITE reports even unsignalled");
	cr_assert_eq(w->status, PRISM_E_BAD_KEY, "got %s", prism_strerror(w->status));
	const transport_event *s = find_kind(&cli, TRANSPORT_EV_SEND);
	cr_assert_not_null(s);
	cr_assert(s->status == PRISM_E_FLUSHED || s->status == 0, "later send: %s",
		  prism_strerror(s->status));
	cr_assert_eq(transport_send(cli.conn, "x", 1, 9, 0), PRISM_E_CLOSED);
	transport_dereg(lmr);
	transport_destroy(cli.t);
	side_clear(&cli);
	transport_destroy(srv.t);
	side_clear(&srv);

	/* Bad key and out of bounds, each on a fresh link. */
	struct {
		uint64_t off, len;
		uint32_t key_xor;
		int want;
	} bad[] = {{0, 64, 0x5a5a5a5a, PRISM_E_BAD_KEY},
		   {rlen - 8, 64, 0, PRISM_E_OUT_OF_BOUNDS},
		   {(uint64_t)-4096, 16, 0, PRISM_E_OUT_OF_BOUNDS}};
	for (size_t i = 0; i < PRISM_ARRAY_LEN(bad); i++) {
		pair(b, &srv, &cli);
		cr_assert_eq(transport_reg(srv.t, remote, rlen, TRANSPORT_REMOTE_READ, &rmr),
			     0);
		cr_assert_eq(transport_reg(cli.t, local, rlen, 0, &lmr), 0);
		transport_mr_desc_get(rmr, &d);
		cr_assert_eq(transport_read(cli.conn, local, bad[i].len, d.addr + bad[i].off,
					    d.rkey ^ bad[i].key_xor, 1, TRANSPORT_SIGNALED),
			     0);
		pump_until(&cli, &srv, has_n, want_cl, "the failed READ to close the link");
		const transport_event *r = find_kind(&cli, TRANSPORT_EV_READ);
		cr_assert_not_null(r);
		cr_assert_eq(r->status, bad[i].want, "case %zu: %s, want %s", i,
			     prism_strerror(r->status), prism_strerror(bad[i].want));
		unpair(&srv, &cli);
	}
	free(remote);
	free(ro);
	free(local);
	free(unreg);
}

/* A wrong token: the client is told PRISM_E_AUTH, the server never announces the link. */
static void case_wrong_token(enum transport_backend b)
{
	side srv = {0}, cli = {0};
	srv.t = make(b, 1);
	cli.t = make(b, 2);
	char addr[TRANSPORT_ADDR_MAX];
	cr_assert_eq(transport_listen(srv.t, "127.0.0.1:0", addr, sizeof(addr)), 0);
	cr_assert_eq(transport_connect(cli.t, addr, NULL, &cli.conn), 0);
	int want[2] = {TRANSPORT_EV_CLOSED, 1};
	pump_until(&cli, &srv, has_n, want, "the refused link to close");
	cr_assert_eq(find_kind(&cli, TRANSPORT_EV_CLOSED)->status, PRISM_E_AUTH, "got %s",
		     prism_strerror(find_kind(&cli, TRANSPORT_EV_CLOSED)->status));
	cr_assert_eq(count_kind(&cli, TRANSPORT_EV_CONNECTED), 0);
	transport_stats st;
	for (int i = 0; i < 100; i++)
		pump1(&srv);
	transport_stats_get(srv.t, &st);
	cr_assert_eq(count_kind(&srv, TRANSPORT_EV_ACCEPTED), 0, "no link announced");
	cr_assert_geq(st.auth_refused, 1);
	unpair(&srv, &cli);
}

static int raw_connect(const char *addr)
{
	struct sockaddr_in sa;
	cr_assert_eq(transport__parse_addr(addr, &sa), 0);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* A real handshake by hand (the token is 7s), then a packet with an unknown op. */
static void garbage_after_auth(side *srv, enum transport_backend b, int fd2)
{
	uint8_t token[TRANSPORT_TOKEN_BYTES], hello[AUTH_HELLO_BYTES], peer[AUTH_HELLO_BYTES],
		proof[AUTH_PROOF_BYTES], pproof[AUTH_PROOF_BYTES];
	memset(token, 7, sizeof(token));
	auth_state a;
	auth__init(&a, false);
	auth__hello(&a, b, hello);
	cr_assert_eq(write(fd2, hello, sizeof(hello)), (ssize_t)sizeof(hello));
	/* The server's hello then its proof arrive while we pump it. */
	uint64_t end = prism_now_ns() + DEADLINE_NS;
	size_t got = 0;
	uint8_t in[AUTH_HELLO_BYTES + AUTH_PROOF_BYTES];
	while (got < sizeof(in)) {
		cr_assert_lt(prism_now_ns(), end);
		pump1(srv);
		ssize_t r = recv(fd2, in + got, sizeof(in) - got, MSG_DONTWAIT);
		if (r > 0)
			got += (size_t)r;
	}
	memcpy(peer, in, sizeof(peer));
	memcpy(pproof, in + AUTH_HELLO_BYTES, sizeof(pproof));
	cr_assert_eq(auth__take_hello(&a, b, peer), 0);
	cr_assert_eq(auth__check_proof(&a, token, pproof), 0, "the server proved the token");
	auth__proof(&a, token, proof);
	cr_assert_eq(write(fd2, proof, sizeof(proof)), (ssize_t)sizeof(proof));
	uint8_t badpkt[32];
	memset(badpkt, 0, sizeof(badpkt));
	badpkt[0] = 0xee;
	cr_assert_eq(write(fd2, badpkt, sizeof(badpkt)), (ssize_t)sizeof(badpkt));
}

/* Garbage for the emulated NIC: a connection request it accepts, then an unknown op. */
static void garbage_after_cm(int fd)
{
	uint8_t req[32] = {1}, bad[32] = {0xee};
	/* The private data of a CM request: magic "PRSV", version 1, 16 bytes. */
	uint32_t magic = 0x56535250u, aux = 1u << 16 | 16u;
	memcpy(req + 24, &magic, 4);
	memcpy(req + 28, &aux, 4);
	cr_assert_eq(write(fd, req, sizeof(req)), (ssize_t)sizeof(req));
	cr_assert_eq(write(fd, bad, sizeof(bad)), (ssize_t)sizeof(bad));
}

/* Garbage in place of a hello, and garbage after a valid handshake: both links are
 * dropped and logged, and the server keeps serving. */
static void case_garbage(enum transport_backend b)
{
	side srv, cli;
	pair(b, &srv, &cli);
	char addr[TRANSPORT_ADDR_MAX];
	transport_conn_peer(cli.conn, addr, sizeof(addr));
	/* 1: garbage instead of a hello. */
	int fd = raw_connect(addr);
	char junk[300];
	memset(junk, 0xa5, sizeof(junk));
	cr_assert_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	/* 2: a real handshake, then a packet with an unknown op. */
	int fd2 = raw_connect(addr);
	if (b == TRANSPORT_SOFTVERBS)
		garbage_after_cm(fd2);
	else
		garbage_after_auth(&srv, b, fd2);
	/* Both raw links end: the server closes them. */
	transport_stats st;
	uint64_t end = prism_now_ns() + DEADLINE_NS;
	for (;;) {
		pump1(&srv);
		transport_stats_get(srv.t, &st);
		if (st.protocol_errors >= 2)
			break;
		cr_assert_lt(prism_now_ns(), end, "protocol errors seen: %lu",
			     (unsigned long)st.protocol_errors);
	}
	char c;
	end = prism_now_ns() + DEADLINE_NS;
	while (recv(fd, &c, 1, MSG_DONTWAIT) != 0 || recv(fd2, &c, 1, MSG_DONTWAIT) != 0) {
		cr_assert_lt(prism_now_ns(), end, "server closed the garbage links");
		pump1(&srv);
	}
	close(fd);
	close(fd2);
	/* The good link still works. */
	side_clear(&srv);
	cr_assert_eq(transport_send(cli.conn, "still here", 10, 0, 0), 0);
	int want[2] = {TRANSPORT_EV_RECV, 1};
	pump_until(&srv, &cli, has_n, want, "a message after the garbage");
	unpair(&srv, &cli);
}

/* A peer killed mid-transfer: the survivor gets errors, not a hang. */
static void case_peer_killed(enum transport_backend b)
{
	side cli = {0};
	cli.t = make(b, 9); /* skips here, before forking, where the backend has no device */
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	pid_t pid = fork();
	if (pid == 0) {
		/* The peer: accepts, registers 64 MiB, sends its descriptor, serves until
		 * killed.  It never exits by itself (the parent kills it). */
		transport_opts o = {.backend = b};
		set_token(&o, 9);
		transport *t;
		if (transport_create(&o, &t) != 0)
			_exit(2);
		char addr[TRANSPORT_ADDR_MAX];
		if (transport_listen(t, "127.0.0.1:0", addr, sizeof(addr)) != 0)
			_exit(3);
		if (write(pfd[1], addr, sizeof(addr)) != (ssize_t)sizeof(addr))
			_exit(4);
		size_t len = 64u << 20;
		uint8_t *mem = malloc(len);
		memset(mem, 1, len);
		transport_mr *mr;
		transport_reg(t, mem, len, TRANSPORT_REMOTE_READ, &mr);
		transport_mr_desc d;
		transport_mr_desc_get(mr, &d);
		uint8_t wire[TRANSPORT_MR_DESC_BYTES];
		transport_mr_desc_encode(&d, wire, sizeof(wire));
		uint64_t end = prism_now_ns() + DEADLINE_NS * 2;
		while (prism_now_ns() < end) {
			transport_event ev[16];
			int n = transport_poll(t, ev, 16, 1000000);
			for (int i = 0; i < n; i++)
				if (ev[i].kind == TRANSPORT_EV_ACCEPTED)
					transport_send(ev[i].conn, wire, sizeof(wire), 0, 0);
		}
		_exit(0);
	}
	char addr[TRANSPORT_ADDR_MAX];
	close(pfd[1]);
	cr_assert_eq(read(pfd[0], addr, sizeof(addr)), (ssize_t)sizeof(addr),
		     "the peer started");
	cr_assert_eq(transport_connect(cli.t, addr, NULL, &cli.conn), 0);
	int want[2] = {TRANSPORT_EV_RECV, 1};
	pump_until(&cli, NULL, has_n, want, "the peer's descriptor");
	transport_mr_desc d;
	cr_assert_eq(
		transport_mr_desc_decode(cli.data[find_kind(&cli, TRANSPORT_EV_RECV) - cli.evs],
					 TRANSPORT_MR_DESC_BYTES, &d),
		0);
	size_t len = 64u << 20;
	uint8_t *local = malloc(len), *big = malloc(len);
	memset(big, 3, len);
	transport_mr *lmr;
	cr_assert_eq(transport_reg(cli.t, local, len, 0, &lmr), 0);
	/* Big READs and sends in flight, then the peer dies. */
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(transport_read(cli.conn, local, len, d.addr, d.rkey, (uint64_t)i,
					    TRANSPORT_SIGNALED),
			     0);
		cr_assert_eq(transport_send(cli.conn, big, len, 100 + (uint64_t)i,
					    TRANSPORT_SIGNALED),
			     0);
	}
	for (int i = 0; i < 20; i++)
		pump1(&cli);
	kill(pid, SIGKILL);
	int st;
	waitpid(pid, &st, 0);
	int want_cl[2] = {TRANSPORT_EV_CLOSED, 1};
	pump_until(&cli, NULL, has_n, want_cl, "the link to report the dead peer");
	const transport_event *cl = find_kind(&cli, TRANSPORT_EV_CLOSED);
	cr_assert_eq(cl->status, PRISM_E_PEER_GONE, "got %s", prism_strerror(cl->status));
	/* Every operation completed, and whatever did not finish says why. */
	int done = count_kind(&cli, TRANSPORT_EV_READ) + count_kind(&cli, TRANSPORT_EV_SEND);
	cr_assert_eq(done, 8, "all 8 operations completed (%d)", done);
	for (unsigned i = 0; i < cli.nev; i++)
		if (cli.evs[i].kind == TRANSPORT_EV_READ ||
		    cli.evs[i].kind == TRANSPORT_EV_SEND)
			cr_assert(cli.evs[i].status == 0 ||
					  cli.evs[i].status == PRISM_E_PEER_GONE ||
					  cli.evs[i].status == PRISM_E_FLUSHED,
				  "status %s", prism_strerror(cli.evs[i].status));
	transport_destroy(cli.t);
	side_clear(&cli);
	free(local);
	free(big);
	close(pfd[0]);
}

/* The fd becomes readable when a message waits, so a loop can sleep on it. */
static void case_fd_wakes(enum transport_backend b)
{
	side srv, cli;
	pair(b, &srv, &cli);
	cr_assert_eq(transport_send(cli.conn, "ping", 4, 0, 0), 0);
	cr_assert_eq(transport_flush(cli.t), 0);
	struct pollfd p = {.fd = transport_fd(srv.t), .events = POLLIN};
	cr_assert_eq(poll(&p, 1, 10000), 1, "the fd woke");
	int want[2] = {TRANSPORT_EV_RECV, 1};
	pump_until(&srv, &cli, has_n, want, "the message");
	/* A blocking poll returns with the event. */
	cr_assert_eq(transport_send(cli.conn, "pong", 4, 0, 0), 0);
	cr_assert_eq(transport_flush(cli.t), 0);
	transport_event ev[4];
	int n = 0;
	for (int i = 0; i < 10 && n == 0; i++)
		n = transport_poll(srv.t, ev, 4, 1000000000);
	cr_assert_eq(n, 1);
	cr_assert_eq(ev[0].kind, TRANSPORT_EV_RECV);
	cr_assert_eq(ev[0].len, 4);
	/* Closing: the closer sees CLOSED(0), the peer CLOSED(PEER_GONE). */
	transport_close(cli.conn);
	int want_c[2] = {TRANSPORT_EV_CLOSED, 1};
	pump_until(&cli, &srv, has_n, want_c, "the closer's event");
	cr_assert_eq(find_kind(&cli, TRANSPORT_EV_CLOSED)->status, 0);
	pump_until(&cli, &srv, has_n_b, want_c, "the peer's event");
	cr_assert_eq(find_kind(&srv, TRANSPORT_EV_CLOSED)->status, PRISM_E_PEER_GONE);
	unpair(&srv, &cli);
}

/* Bad input to the API: refused by name, nothing created. */
static void case_bad_input(enum transport_backend b)
{
	transport *t;
	transport_opts o = {.backend = b};
	cr_assert_eq(transport_create(&o, &t), -EINVAL, "an all-zero token is refused");
	cr_assert_null(t);
	t = make(b, 5);
	transport_conn *c;
	cr_assert_eq(transport_connect(t, "tcp://nohostport", NULL, &c), -EINVAL);
	cr_assert_eq(transport_connect(t, "127.0.0.1:99999", NULL, &c), -EINVAL);
	cr_assert_eq(transport_connect(t, "127.0.0.1:", NULL, &c), -EINVAL);
	cr_assert_null(c);
	char addr[TRANSPORT_ADDR_MAX];
	cr_assert_eq(transport_listen(t, "127.0.0.1:0", addr, sizeof(addr)), 0);
	cr_assert_eq(transport_listen(t, "127.0.0.1:0", addr, sizeof(addr)), -EBUSY);
	transport_mr *mr;
	char buf[16];
	cr_assert_eq(transport_reg(t, buf, 0, 0, &mr), -EINVAL);
	cr_assert_eq(transport_reg(t, buf, 16, 0x80, &mr), -EINVAL);
	/* Connecting to a port nobody listens on reports the refusal. */
	side cli = {.t = t};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sa.sin_port));
	cr_assert_eq(transport_connect(t, addr, NULL, &c), 0);
	int want[2] = {TRANSPORT_EV_CLOSED, 1};
	pump_until(&cli, NULL, has_n, want, "the refused connect");
	cr_assert_eq(find_kind(&cli, TRANSPORT_EV_CLOSED)->status, -ECONNREFUSED);
	close(fd);
	side_clear(&cli);
	transport_destroy(t);
}

#define CONFORMANCE(suite, backend)           \
	Test(suite, message_sizes_0_to_64mib) \
	{                                     \
		case_message_sizes(backend);  \
	}                                     \
	Test(suite, ordering)                 \
	{                                     \
		case_ordering(backend);       \
	}                                     \
	Test(suite, many_links)               \
	{                                     \
		case_many_links(backend);     \
	}                                     \
	Test(suite, one_sided_and_its_errors) \
	{                                     \
		case_one_sided(backend);      \
	}                                     \
	Test(suite, wrong_token_refused)      \
	{                                     \
		case_wrong_token(backend);    \
	}                                     \
	Test(suite, garbage_dropped)          \
	{                                     \
		case_garbage(backend);        \
	}                                     \
	Test(suite, peer_killed_mid_transfer) \
	{                                     \
		case_peer_killed(backend);    \
	}                                     \
	Test(suite, fd_wakes_and_close)       \
	{                                     \
		case_fd_wakes(backend);       \
	}                                     \
	Test(suite, bad_input)                \
	{                                     \
		case_bad_input(backend);      \
	}

CONFORMANCE(tcp, TRANSPORT_TCP)
CONFORMANCE(softverbs, TRANSPORT_SOFTVERBS)
CONFORMANCE(verbs, TRANSPORT_VERBS)
