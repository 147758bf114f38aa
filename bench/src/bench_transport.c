/* bench_transport.c — the transport suite: links between two processes over 127.0.0.1.
 *
 * For each backend (tcp, softverbs, verbs), with the loops prism-perf runs on clusters
 * (tools/perf_loop.h), both sides spinning on transport_poll(t, ev, n, 0):
 *   <backend>_rtt_64b     round trip of a 64-byte message (p50/p99/p99.9/max us)
 *   <backend>_bw_1mib     1 MiB messages streamed, 16 sends outstanding (GB/s as received)
 *   <backend>_bw_64mib    64 MiB messages, 4 outstanding (GB/s as received)
 *   <backend>_read_1mib   one-sided READs of 1 MiB of the peer's region, 16 outstanding
 * and beside them, in the same run, the floor of plain blocking sockets (TCP_NODELAY):
 *   raw_tcp_rtt_64b       write and read 64 bytes, ping-pong
 *   raw_tcp_bw_1mib       blocking send of 1 MiB buffers; the receiver reads into 1 MiB
 * and the ratios the transport is judged by: tcp_rtt_vs_raw (p50 over p50),
 * tcp_bw_vs_raw, softverbs_vs_tcp_rtt and softverbs_vs_tcp_bw.
 *
 * Every case forks its peer (the server side of the loops) and runs the measuring side
 * here; parent and child are pinned one to each CPU, as in the ring suite.  Streams run
 * for 1 s after a warm-up of 64 MiB (or 4 messages) and are timed at the receiver; every
 * figure is the median over the rounds (latency: all rounds' samples in one histogram),
 * the cases interleaved round by round.  A backend without a device (verbs here) is
 * reported as skipped; a backend that crashes or fails is reported on stderr, its cases
 * left out, and the suite fails.  Every case runs under alarm(), and the parent kills
 * and reaps its child on every failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/hist.h"
#include "base/wire.h"
#include "perf_loop.h"
#include "suites.h"
#include "transport/transport.h"

#define SUITE "transport"
/* A case's parent and child both die by SIGALRM if the case runs this long. */
#define CASE_ALARM_S 60
/* How long a peer may take to start, or to exit after its run. */
#define PEER_WAIT_NS (10 * PRISM_NS_PER_SEC)
#define MAX_ROUNDS 64
#define RESULT_BYTES 24u

enum tcase { C_RTT, C_BW1, C_BW64, C_READ, NCASES };
static const char *const case_names[NCASES] = {"rtt_64b", "bw_1mib", "bw_64mib", "read_1mib"};

static const enum transport_backend backends[] = {TRANSPORT_TCP, TRANSPORT_SOFTVERBS,
						  TRANSPORT_VERBS};
#define NBACKENDS ((int)(sizeof(backends) / sizeof(backends[0])))

/* What one case does: message size, window, warm-up, and how long it measures. */
struct params {
	size_t size;
	unsigned window;
	uint64_t warm, iters, ns;
};

/* Per backend: whether it runs, and its figures per round. */
struct bstate {
	int usable; /* 1 runs, 0 skipped (no device), -1 failed */
	char why[160];
	prism_hist *rtt;
	double gbs[NCASES][MAX_ROUNDS];
};

static uint8_t token[TRANSPORT_TOKEN_BYTES];

static void case_params(const struct bench_opts *o, enum tcase k, struct params *p)
{
	uint64_t secs = o->quick ? 300 * PRISM_NS_PER_MS : PRISM_NS_PER_SEC;
	switch (k) {
	case C_RTT:
		*p = (struct params){.size = 64,
				     .window = 1,
				     .warm = o->quick ? 200 : 1000,
				     .iters = o->quick ? 3000 : 20000,
				     .ns = secs};
		return;
	case C_BW1:
	case C_READ:
		*p = (struct params){.size = 1u << 20, .window = 16, .warm = 64, .ns = secs};
		return;
	case C_BW64:
		*p = (struct params){.size = 64u << 20, .window = 4, .warm = 4, .ns = secs};
		return;
	default:
		return;
	}
}

/* Wait for the peer; when the case failed, kill it unless it already ended (a crash
 * of the peer is worth saying), and kill it when it outlives the wait. */
static int reap(pid_t pid, bool failed, const char *what)
{
	int st = 0;
	pid_t r = 0;
	if (failed) {
		usleep(20000); /* a peer that crashed has ended by now */
		if ((r = waitpid(pid, &st, WNOHANG)) == 0)
			kill(pid, SIGKILL);
	}
	uint64_t end = prism_now_ns() + PEER_WAIT_NS;
	while (r != pid && (r = waitpid(pid, &st, failed ? 0 : WNOHANG)) != pid) {
		if (r < 0 && errno != EINTR)
			return -1;
		if (prism_now_ns() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			fprintf(stderr,
				"prism-bench " SUITE ": %s: the peer did not exit; killed\n",
				what);
			return -1;
		}
		usleep(1000);
	}
	if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL) {
		fprintf(stderr, "prism-bench " SUITE ": %s: the peer died of signal %d\n", what,
			WTERMSIG(st));
		return -1;
	}
	return !failed && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* Wait until fd is readable, at most PEER_WAIT_NS. */
static int wait_readable(int fd)
{
	struct pollfd pf = {.fd = fd, .events = POLLIN};
	int n;
	do
		n = poll(&pf, 1, (int)(PEER_WAIT_NS / PRISM_NS_PER_MS));
	while (n < 0 && errno == EINTR);
	return n == 1 ? 0 : -1;
}

/* ---- raw TCP: the floor -------------------------------------------------------------- */

static int full_io(int fd, void *buf, size_t n, bool wr)
{
	uint8_t *p = buf;
	while (n) {
		ssize_t k = wr ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k == 0 ? 1 : -errno; /* 1: end of stream */
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static void raw_sockopts(int fd)
{
	int one = 1;
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* The raw peer: echo 64-byte messages, or count a stream and send back what it counted
 * (bytes after the warm-up, and the ns from the end of the warm-up to the end). */
static int raw_peer(int lfd, bool bw, uint64_t warm_bytes)
{
	int fd = accept(lfd, NULL, NULL);
	close(lfd);
	if (fd < 0)
		return 3;
	raw_sockopts(fd);
	if (!bw) {
		uint8_t m[64];
		int rc;
		while ((rc = full_io(fd, m, sizeof(m), false)) == 0)
			if (full_io(fd, m, sizeof(m), true) != 0)
				return 4;
		return rc == 1 ? 0 : 5;
	}
	uint8_t *buf = malloc(1u << 20);
	uint64_t total = 0, from = 0, t0 = 0;
	if (!buf)
		return 6;
	for (;;) {
		ssize_t k = recv(fd, buf, 1u << 20, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return 7;
		if (k == 0)
			break;
		total += (uint64_t)k;
		if (!t0 && total >= warm_bytes) {
			t0 = prism_now_ns();
			from = total;
		}
	}
	uint8_t res[16];
	prism_le64_store(res, total - from);
	prism_le64_store(res + 8, t0 ? prism_now_ns() - t0 : 0);
	free(buf);
	return full_io(fd, res, sizeof(res), true) == 0 ? 0 : 8;
}

static int raw_rtt(int fd, const struct params *pr, prism_hist *h)
{
	uint8_t m[64] = {1};
	uint64_t end = UINT64_MAX;
	for (uint64_t i = 0; i < pr->warm + pr->iters; i++) {
		if (i == pr->warm)
			end = prism_cycles() + prism_ns_to_cycles(pr->ns);
		uint64_t t0 = prism_cycles();
		if (full_io(fd, m, sizeof(m), true) != 0 ||
		    full_io(fd, m, sizeof(m), false) != 0)
			return -1;
		uint64_t t1 = prism_cycles();
		if (i >= pr->warm) {
			prism_hist_record(h, prism_cycles_to_ns(t1 - t0));
			if (t1 >= end)
				break;
		}
	}
	return 0;
}

static double raw_bw(int fd, const struct params *pr)
{
	uint8_t *buf = malloc(pr->size), res[16];
	if (!buf)
		return -1;
	memset(buf, 0x5a, pr->size);
	uint64_t t0 = 0, n = 0;
	int rc = 0;
	for (; rc == 0; n++) {
		if (n == pr->warm)
			t0 = prism_cycles();
		else if (n > pr->warm && prism_cycles() - t0 >= prism_ns_to_cycles(pr->ns))
			break;
		rc = full_io(fd, buf, pr->size, true);
	}
	free(buf);
	if (rc || shutdown(fd, SHUT_WR) != 0 || full_io(fd, res, sizeof(res), false) != 0)
		return -1;
	uint64_t bytes = prism_le64_load(res), ns = prism_le64_load(res + 8);
	return ns ? (double)bytes / (double)ns : -1;
}

/* One raw case: the rtt into h, or the bandwidth (GB/s) into *gbs. */
static int raw_case(enum tcase k, const struct params *pr, prism_hist *h, double *gbs)
{
	const char *what = k == C_RTT ? "raw_tcp_rtt_64b" : "raw_tcp_bw_1mib";
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), fd = -1, rc = -1;
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, 1) != 0 || getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0) {
		fprintf(stderr, "prism-bench " SUITE ": %s: listening: %s\n", what,
			strerror(errno));
		if (lfd >= 0)
			close(lfd);
		return -1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		alarm(CASE_ALARM_S);
		bench_pin_cpu(1);
		_exit(raw_peer(lfd, k != C_RTT, pr->warm * pr->size));
	}
	close(lfd);
	if (pid < 0)
		return -1;
	alarm(CASE_ALARM_S);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		raw_sockopts(fd);
		if (k == C_RTT)
			rc = raw_rtt(fd, pr, h);
		else
			rc = (*gbs = raw_bw(fd, pr)) > 0 ? 0 : -1;
	}
	if (rc)
		fprintf(stderr, "prism-bench " SUITE ": %s: %s\n", what, strerror(errno));
	if (fd >= 0)
		close(fd);
	alarm(0);
	return reap(pid, rc != 0, what) == 0 ? rc : -1;
}

/* The floor for other suites (cluster): 64 B round trips into h (bw false), or 1 MiB
 * bandwidth in GB/s (bw true), between two processes on plain blocking sockets. */
int bench_raw_tcp(const struct bench_opts *o, bool bw, prism_hist *h, double *gbs)
{
	struct params pr;
	case_params(o, bw ? C_BW1 : C_RTT, &pr);
	return raw_case(bw ? C_BW1 : C_RTT, &pr, h, gbs);
}

/* ---- the transport's cases ----------------------------------------------------------- */

static int make(enum transport_backend b, transport **t)
{
	transport_opts o = {.backend = b};
	memcpy(o.token, token, sizeof(token));
	return transport_create(&o, t);
}

/* The peer of one case: listen, tell the parent where, serve the run, answer its end
 * message with a RESULT (what a bw receiver counted), wait for the parent to close. */
static int peer_run(enum transport_backend b, enum tcase k, const struct params *pr, int wfd)
{
	transport *t = NULL;
	char addr[TRANSPORT_ADDR_MAX] = "";
	perf_link p = {0};
	perf_rate r = {0};
	void *buf = NULL;
	transport_mr *mr = NULL;
	int rc = make(b, &t);
	if (rc == 0)
		rc = transport_listen(t, "tcp://127.0.0.1:0", addr, sizeof(addr));
	if (write(wfd, addr, sizeof(addr)) != (ssize_t)sizeof(addr) || rc) {
		fprintf(stderr, "prism-bench " SUITE ": peer: %s: %s\n",
			t ? "transport_listen" : "transport_create", prism_strerror(rc));
		transport_destroy(t);
		return 2;
	}
	close(wfd);
	p.t = t;
	if (posix_memalign(&buf, 4096, pr->size) != 0)
		goto fail;
	memset(buf, 0xa5, pr->size);
	if ((rc = perf_wait_up(&p, true, (int64_t)PEER_WAIT_NS)) != 0)
		goto fail;
	uint8_t msg[TRANSPORT_MR_DESC_BYTES > RESULT_BYTES ? TRANSPORT_MR_DESC_BYTES
							   : RESULT_BYTES];
	switch (k) {
	case C_RTT:
		rc = perf_lat_server(&p, buf, pr->size, &r.ops);
		break;
	case C_BW1:
	case C_BW64:
		rc = perf_bw_server(&p, pr->size, pr->window, pr->warm, &r);
		break;
	default: {
		transport_mr_desc d;
		rc = transport_reg(t, buf, pr->size, TRANSPORT_REMOTE_READ, &mr);
		if (rc) {
			snprintf(p.err, sizeof(p.err), "transport_reg: %s", prism_strerror(rc));
			goto fail;
		}
		transport_mr_desc_get(mr, &d);
		transport_mr_desc_encode(&d, msg, sizeof(msg));
		rc = perf_send(&p, msg, TRANSPORT_MR_DESC_BYTES, 0);
		if (rc == 0)
			rc = perf_serve_until_end(&p);
		break;
	}
	}
	if (rc)
		goto fail;
	prism_le64_store(msg, r.ops);
	prism_le64_store(msg + 8, r.bytes);
	prism_le64_store(msg + 16, r.ns);
	if ((rc = perf_send(&p, msg, RESULT_BYTES, 0)) != 0 ||
	    (rc = perf_wait_closed(&p, PEER_WAIT_NS)) != 0)
		goto fail;
	transport_dereg(mr);
	transport_destroy(t);
	free(buf);
	return 0;
fail:
	fprintf(stderr, "prism-bench " SUITE ": %s %s peer: %s\n", transport_backend_name(b),
		case_names[k], p.err[0] ? p.err : "out of memory");
	transport_dereg(mr);
	transport_destroy(t);
	free(buf);
	return 1;
}

/* The measuring side of a READ case: the peer's region comes first, as a message. */
static int read_side(perf_link *p, const struct params *pr, perf_rate *got)
{
	transport_mr_desc d;
	transport_mr *mr = NULL;
	void *local = NULL;
	int rc = perf_recv(p);
	if (rc)
		return rc;
	rc = transport_mr_desc_decode(p->rx, p->rx_len, &d);
	if (rc || d.len < pr->size) {
		snprintf(p->err, sizeof(p->err), "the peer's region descriptor is unusable");
		return rc ? rc : PRISM_E_PROTO;
	}
	if (posix_memalign(&local, 4096, pr->size) != 0)
		return -ENOMEM;
	memset(local, 0, pr->size);
	rc = transport_reg(p->t, local, pr->size, 0, &mr);
	if (rc)
		snprintf(p->err, sizeof(p->err), "transport_reg: %s", prism_strerror(rc));
	else
		rc = perf_read_client(p, local, pr->size, &d, pr->window, pr->warm, 0, pr->ns,
				      got);
	/* The peer's reply means every READ is done: the region may go after it. */
	if (rc == 0)
		rc = perf_recv_reply(p);
	if (perf_close(p) != 0 && rc == 0)
		rc = -EIO;
	transport_dereg(mr);
	free(local);
	return rc;
}

/* The measuring side of one case, on a link that is up. */
static int measure(perf_link *p, enum tcase k, const struct params *pr, prism_hist *h,
		   double *gbs)
{
	perf_rate r;
	void *buf = NULL;
	int rc;
	if (k == C_READ) {
		rc = read_side(p, pr, &r);
	} else {
		if (posix_memalign(&buf, 4096, pr->size) != 0)
			return -ENOMEM;
		memset(buf, 0x5a, pr->size);
		if (k == C_RTT)
			rc = perf_lat_client(p, buf, pr->size, pr->warm, pr->iters, pr->ns, h);
		else
			rc = perf_bw_client(p, buf, pr->size, pr->window, pr->warm, 0, pr->ns,
					    &r);
		if (rc == 0)
			rc = perf_recv_reply(p);
		if (rc == 0 && k != C_RTT) {
			if (p->rx_len != RESULT_BYTES)
				return PRISM_E_PROTO;
			r = (perf_rate){.ops = prism_le64_load(p->rx),
					.bytes = prism_le64_load((const uint8_t *)p->rx + 8),
					.ns = prism_le64_load((const uint8_t *)p->rx + 16)};
		}
		if (perf_close(p) != 0 && rc == 0)
			rc = -EIO;
		free(buf);
	}
	if (rc == 0 && k != C_RTT) {
		if (!r.ns || !r.ops)
			return PRISM_E_TIMEOUT;
		*gbs = (double)r.bytes / (double)r.ns;
	}
	return rc;
}

/* One case of one backend: fork the peer, connect to it, measure, reap. */
static int transport_case(enum transport_backend b, enum tcase k, const struct params *pr,
			  prism_hist *h, double *gbs)
{
	char what[64], addr[TRANSPORT_ADDR_MAX];
	snprintf(what, sizeof(what), "%s_%s", transport_backend_name(b), case_names[k]);
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		alarm(CASE_ALARM_S);
		bench_pin_cpu(1);
		_exit(peer_run(b, k, pr, pfd[1]));
	}
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		return -1;
	}
	alarm(CASE_ALARM_S);
	transport *t = NULL;
	perf_link p = {0};
	int rc = -1;
	bool got_addr = wait_readable(pfd[0]) == 0 &&
			read(pfd[0], addr, sizeof(addr)) == (ssize_t)sizeof(addr) && addr[0];
	close(pfd[0]);
	if (!got_addr) {
		snprintf(p.err, sizeof(p.err), "the peer did not start");
	} else if ((rc = make(b, &t)) != 0 || (rc = transport_connect(t, addr, NULL, &p.c))) {
		snprintf(p.err, sizeof(p.err), "%s: %s",
			 t ? "transport_connect" : "transport_create", prism_strerror(rc));
	} else {
		p.t = t;
		rc = perf_wait_up(&p, false, (int64_t)PEER_WAIT_NS);
		if (rc == 0)
			rc = measure(&p, k, pr, h, gbs);
	}
	transport_destroy(t);
	alarm(0);
	if (rc)
		fprintf(stderr, "prism-bench " SUITE ": %s: %s\n", what,
			p.err[0] ? p.err : prism_strerror(rc));
	return reap(pid, rc != 0, what) == 0 && rc == 0 ? 0 : -1;
}

/* Can this backend make an endpoint here?  1 yes, 0 no device (skip), -1 it failed or
 * crashed.  Asked in a child, so that a backend that crashes fails only itself. */
static int probe(enum transport_backend b, char *why, size_t len)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		alarm(CASE_ALARM_S);
		transport *t = NULL;
		int rc = make(b, &t);
		transport_destroy(t);
		if (rc && rc != PRISM_E_NO_DEVICE)
			fprintf(stderr, "prism-bench " SUITE ": %s: transport_create: %s\n",
				transport_backend_name(b), prism_strerror(rc));
		_exit(rc == PRISM_E_NO_DEVICE ? 77 : rc ? 1 : 0);
	}
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) != pid) {
		snprintf(why, len, "fork: %s", strerror(errno));
		return -1;
	}
	if (WIFSIGNALED(st)) {
		snprintf(why, len, "transport_create crashed (signal %d)", WTERMSIG(st));
		return -1;
	}
	if (WEXITSTATUS(st) == 77) {
		snprintf(why, len, "%s", prism_strerror(PRISM_E_NO_DEVICE));
		return 0;
	}
	if (WEXITSTATUS(st) != 0) {
		snprintf(why, len, "transport_create failed");
		return -1;
	}
	return 1;
}

/* ---- the suite ----------------------------------------------------------------------- */

static double p50_us(const prism_hist *h)
{
	return (double)prism_hist_percentile(h, 50.0) / 1e3;
}

static void report_ratio(const struct bench_opts *o, const char *name, double v, int rounds)
{
	struct bench_field f[1] = {{"rounds", rounds, NULL}};
	bench_report_value(o, SUITE, name, "ratio", v, f, 1);
}

static void report_backend(const struct bench_opts *o, enum transport_backend b,
			   struct bstate *s, int rounds)
{
	char name[64];
	const char *bn = transport_backend_name(b);
	for (int k = 0; k < NCASES; k++) {
		snprintf(name, sizeof(name), "%s_%s", bn, case_names[k]);
		if (s->usable == 0) {
			bench_report_skip(o, SUITE, name, s->why);
			continue;
		}
		if (s->usable < 0)
			continue;
		struct params pr;
		case_params(o, (enum tcase)k, &pr);
		struct bench_field f[3] = {{"rounds", rounds, NULL},
					   {"bytes", (double)pr.size, NULL},
					   {"window", pr.window, NULL}};
		if (k == C_RTT)
			bench_report_latency(o, SUITE, name, s->rtt, f, 2);
		else
			bench_report_value(o, SUITE, name, "GB/s",
					   bench_median(s->gbs[k], rounds), f, 3);
	}
}

/* One round: the raw floor, then every usable backend's cases. */
static int run_round(const struct bench_opts *o, int r, struct bstate *bs, prism_hist *raw_h,
		     double *raw_bw)
{
	struct params pr;
	case_params(o, C_RTT, &pr);
	if (raw_case(C_RTT, &pr, raw_h, NULL) != 0)
		return -1;
	case_params(o, C_BW1, &pr);
	if (raw_case(C_BW1, &pr, NULL, &raw_bw[r]) != 0)
		return -1;
	for (int i = 0; i < NBACKENDS; i++) {
		for (int k = 0; k < NCASES && bs[i].usable > 0; k++) {
			case_params(o, (enum tcase)k, &pr);
			if (transport_case(backends[i], (enum tcase)k, &pr, bs[i].rtt,
					   &bs[i].gbs[k][r]) != 0) {
				bs[i].usable = -1;
				snprintf(bs[i].why, sizeof(bs[i].why), "%s failed",
					 case_names[k]);
			}
		}
	}
	return 0;
}

int bench_transport(const struct bench_opts *o)
{
	int rounds = o->rounds ? o->rounds : (o->quick ? 1 : 3);
	if (rounds > MAX_ROUNDS)
		rounds = MAX_ROUNDS;
	struct bstate bs[NBACKENDS] = {0};
	prism_hist *raw_h = NULL;
	double raw_bw[MAX_ROUNDS];
	int rc = 1;
	if (getrandom(token, sizeof(token), 0) != (ssize_t)sizeof(token)) {
		fprintf(stderr, "prism-bench " SUITE ": getrandom: %s\n", strerror(errno));
		return 1;
	}
	if (prism_hist_create(&raw_h) != 0)
		return 1;
	for (int i = 0; i < NBACKENDS; i++) {
		bs[i].usable = probe(backends[i], bs[i].why, sizeof(bs[i].why));
		if (bs[i].usable < 0)
			fprintf(stderr,
				"prism-bench " SUITE ": %s: %s; its cases are left out\n",
				transport_backend_name(backends[i]), bs[i].why);
		if (prism_hist_create(&bs[i].rtt) != 0)
			goto out;
	}
	bench_pin_cpu(0);
	for (int r = 0; r < rounds; r++)
		if (run_round(o, r, bs, raw_h, raw_bw) != 0)
			goto out;
	bench_report_header(o, SUITE, "links between two processes over 127.0.0.1, spinning");
	struct bench_field f[1] = {{"rounds", rounds, NULL}};
	bench_report_latency(o, SUITE, "raw_tcp_rtt_64b", raw_h, f, 1);
	double raw = bench_median(raw_bw, rounds);
	struct bench_field fb[2] = {{"rounds", rounds, NULL}, {"bytes", 1u << 20, NULL}};
	bench_report_value(o, SUITE, "raw_tcp_bw_1mib", "GB/s", raw, fb, 2);
	for (int i = 0; i < NBACKENDS; i++)
		report_backend(o, backends[i], &bs[i], rounds);
	struct bstate *tcp = &bs[0], *sv = &bs[1];
	if (tcp->usable > 0) {
		report_ratio(o, "tcp_rtt_vs_raw", p50_us(tcp->rtt) / p50_us(raw_h), rounds);
		report_ratio(o, "tcp_bw_vs_raw", bench_median(tcp->gbs[C_BW1], rounds) / raw,
			     rounds);
	}
	if (tcp->usable > 0 && sv->usable > 0) {
		report_ratio(o, "softverbs_vs_tcp_rtt", p50_us(sv->rtt) / p50_us(tcp->rtt),
			     rounds);
		double sv_bw = bench_median(sv->gbs[C_BW1], rounds);
		report_ratio(o, "softverbs_vs_tcp_bw",
			     sv_bw / bench_median(tcp->gbs[C_BW1], rounds), rounds);
	}
	if (bs[2].usable == 0)
		bench_note(o, "verbs: skipped (%s); the JSON lines say \"skipped\":true",
			   bs[2].why);
	rc = 0;
	for (int i = 0; i < NBACKENDS; i++)
		if (bs[i].usable < 0) {
			fprintf(stderr, "prism-bench " SUITE ": %s: %s; no figures for it\n",
				transport_backend_name(backends[i]), bs[i].why);
			rc = 1;
		}
out:
	for (int i = 0; i < NBACKENDS; i++)
		prism_hist_destroy(bs[i].rtt);
	prism_hist_destroy(raw_h);
	return rc;
}
