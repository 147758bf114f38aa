/* prism-perf — latency and bandwidth of prism's transport between two hosts, in the
 * manner of perftest's ib_write_lat / ib_write_bw / ib_read_bw, so that an operator can
 * validate a cluster's fabric (InfiniBand, RoCE, or plain TCP) with prism's own code path.
 *
 *   prism-perf server lat|bw|read [--transport B] [--size N] [--listen ADDR] --token-file F
 *   prism-perf client lat|bw|read --address ADDR [--transport B] [--size N] [--iters N]
 *                     [--seconds S] [--window W] [--json] --token-file F
 *   prism-perf gen-token F
 *
 * The server serves one client run and exits 0.  The run is set up by a HELLO from the
 * client and a READY from the server (which carries the region's descriptor for read),
 * then measured by the loops of perf_loop.h, then closed by the client's end message,
 * which the server answers with its RESULT (for bw: what the receiver counted).  Exit
 * status: 0 done, 1 the run failed (the message says what), 2 bad arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/hist.h"
#include "base/wire.h"
#include "perf_loop.h"
#include "transport/transport.h"

#define PROG "prism-perf"
#define DEFAULT_LISTEN "tcp://0.0.0.0:18515"

/* Setup messages: "PRPF", version 1. */
#define PERF_MAGIC 0x46505250u
#define PERF_VERSION 1u
#define HELLO_BYTES 48u
#define READY_BYTES 48u /* then a reason, NUL-terminated, when status != 0 */
#define RESULT_BYTES 32u
#define REASON_MAX 160u

/* 10 s: how long a client waits for its link to come up. */
#define CONNECT_WAIT_NS (10 * (int64_t)PRISM_NS_PER_SEC)

enum mode { MODE_LAT = 1, MODE_BW = 2, MODE_READ = 3 };
static const char *const mode_names[] = {"?", "lat", "bw", "read"};

struct opts {
	bool server;
	enum mode mode;
	enum transport_backend backend;
	uint64_t size;
	bool size_set;
	const char *listen;
	const char *address;
	uint64_t iters; /* 0: not given */
	double seconds; /* 0: not given */
	unsigned window;
	bool window_set;
	bool json;
	const char *token_file;
};

/* What the client asks for; the wire form is HELLO_BYTES little-endian bytes. */
struct hello {
	enum mode mode;
	uint64_t size, warm, iters, max_ns;
	uint32_t window;
};

/* ---- arguments --------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG
		" server lat|bw|read [--transport tcp|verbs|softverbs] [--size N]\n"
		"                  [--listen ADDR] --token-file F\n"
		"       " PROG
		" client lat|bw|read --address tcp://HOST:PORT [--transport ...]\n"
		"                  [--size N] [--iters N] [--seconds S] [--window W] [--json]\n"
		"                  --token-file F\n"
		"       " PROG " gen-token F\n\n"
		"  lat    ping-pong of --size-byte messages, both sides spinning; one-way "
		"latency\n"
		"         (round trip / 2, as ib_write_lat reports it) and the round trip, in "
		"us\n"
		"  bw     the client streams --size-byte messages, --window outstanding; GB/s "
		"and\n"
		"         Mmsg/s as the server received them\n"
		"  read   one-sided READs of --size bytes from a region the server "
		"registered,\n"
		"         --window outstanding; GB/s\n\n"
		"  --transport B   tcp, verbs or softverbs (default: $PRISM_TRANSPORT, else "
		"tcp);\n"
		"                  verbs uses $PRISM_RDMA_DEVICE (mlx5_0:1) and "
		"$PRISM_RDMA_GID_INDEX\n"
		"  --size N        bytes, with K, M or G (x1024) suffixes; default 64 (lat),\n"
		"                  64K (bw, read).  The server takes the client's when not "
		"given.\n"
		"  --listen ADDR   server: where to listen (default " DEFAULT_LISTEN ")\n"
		"  --address ADDR  client: the server's address, tcp://HOST:PORT\n"
		"  --iters N       measured iterations (lat default 10000; bw/read: instead of "
		"a\n"
		"                  duration)\n"
		"  --seconds S     measured time after the warm-up (bw/read default 2)\n"
		"  --window W      operations outstanding (default: bw 128, read 16, at most\n"
		"                  256 MiB of them, and at least 2)\n"
		"  --json          one JSON object per result line (suite \"perf\")\n"
		"  --token-file F  the cluster token: 32 raw bytes or 64 hex digits; both "
		"sides\n"
		"                  must hold the same (`" PROG " gen-token F` makes one)\n");
}

static int bad_arg(const char *fmt, const char *arg)
{
	fprintf(stderr, PROG ": ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n\n");
	usage(stderr);
	return 2;
}

/* "64", "4K", "1M", "2G" (binary multiples; "KiB", "MB"... read the same). */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	case '\0':
		break;
	default:
		return -EINVAL;
	}
	if (shift) {
		end++;
		if (*end == 'i')
			end++;
		if (*end == 'B')
			end++;
	}
	if (*end || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_mode(const char *s, enum mode *out)
{
	for (int m = MODE_LAT; m <= MODE_READ; m++)
		if (strcmp(s, mode_names[m]) == 0) {
			*out = (enum mode)m;
			return 0;
		}
	return -EINVAL;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	enum {
		O_TRANSPORT = 1,
		O_SIZE,
		O_LISTEN,
		O_ADDRESS,
		O_ITERS,
		O_SECONDS,
		O_WINDOW,
		O_JSON,
		O_TOKEN
	};
	static const struct option lo[] = {
		{"transport", required_argument, 0, O_TRANSPORT},
		{"size", required_argument, 0, O_SIZE},
		{"listen", required_argument, 0, O_LISTEN},
		{"address", required_argument, 0, O_ADDRESS},
		{"iters", required_argument, 0, O_ITERS},
		{"seconds", required_argument, 0, O_SECONDS},
		{"window", required_argument, 0, O_WINDOW},
		{"json", no_argument, 0, O_JSON},
		{"token-file", required_argument, 0, O_TOKEN},
		{0, 0, 0, 0},
	};
	if (argc < 2)
		return bad_arg("%s", "expected server, client or gen-token");
	o->server = strcmp(argv[1], "server") == 0;
	if (!o->server && strcmp(argv[1], "client") != 0)
		return bad_arg("unknown command '%s' (server, client or gen-token)", argv[1]);
	if (argc < 3)
		return bad_arg("%s: which test? lat, bw or read", argv[1]);
	if (parse_mode(argv[2], &o->mode) != 0)
		return bad_arg("unknown test '%s' (lat, bw or read)", argv[2]);
	optind = 3;
	int c;
	char *end;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case O_TRANSPORT:
			if (transport_backend_parse(optarg, &o->backend) != 0)
				return bad_arg(
					"--transport: '%s' is not tcp, verbs or softverbs",
					optarg);
			break;
		case O_SIZE:
			if (parse_size(optarg, &o->size) != 0 || o->size == 0 ||
			    o->size > TRANSPORT_MAX_MSG)
				return bad_arg("--size: '%s' is not 1 to 1G bytes", optarg);
			o->size_set = true;
			break;
		case O_LISTEN:
			o->listen = optarg;
			break;
		case O_ADDRESS:
			o->address = optarg;
			break;
		case O_ITERS:
			if (parse_size(optarg, &o->iters) != 0 || o->iters == 0 ||
			    o->iters > (1ull << 40))
				return bad_arg("--iters: '%s' is not a positive count", optarg);
			break;
		case O_SECONDS:
			o->seconds = strtod(optarg, &end);
			if (*end || end == optarg || !(o->seconds > 0 && o->seconds <= 3600))
				return bad_arg("--seconds: '%s' is not in (0, 3600]", optarg);
			break;
		case O_WINDOW: {
			unsigned long w = strtoul(optarg, &end, 10);
			if (*end || end == optarg || w == 0 || w > 65536)
				return bad_arg("--window: '%s' is not 1 to 65536", optarg);
			o->window = (unsigned)w;
			o->window_set = true;
			break;
		}
		case O_JSON:
			o->json = true;
			break;
		case O_TOKEN:
			o->token_file = optarg;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc)
		return bad_arg("unexpected argument '%s'", argv[optind]);
	if (!o->token_file)
		return bad_arg("%s", "--token-file is required");
	if (!o->server && !o->address)
		return bad_arg("%s", "client: --address tcp://HOST:PORT is required");
	if (o->server && (o->address || o->iters || o->seconds > 0 || o->window || o->json))
		return bad_arg("%s",
			       "server: --address, --iters, --seconds, --window and --json "
			       "are client options");
	if (!o->server && o->listen)
		return bad_arg("%s", "client: --listen is a server option");
	if (!o->listen)
		o->listen = DEFAULT_LISTEN;
	if (!o->server && !o->size_set)
		o->size = o->mode == MODE_LAT ? 64 : 64u << 10;
	if (o->mode == MODE_LAT) {
		if (o->window_set && o->window != 1)
			return bad_arg("%s", "--window: lat has one message in flight");
		o->window = 1;
	} else if (!o->window_set) {
		/* perftest's depths (128 sends, 16 READs), but at most 256 MiB in flight: a
		 * deep window of huge messages only delays the end of a run. */
		uint64_t most = (256ull << 20) / (o->size ? o->size : 1);
		uint64_t depth = o->mode == MODE_READ ? 16 : 128;
		o->window = (unsigned)(most < 2 ? 2 : most < depth ? most : depth);
	}
	return 0;
}

/* ---- the token --------------------------------------------------------------------- */

static int read_token(const char *path, uint8_t token[TRANSPORT_TOKEN_BYTES])
{
	char why[512];
	if (transport_token_load(path, token, why, sizeof(why)) == 0)
		return 0;
	fprintf(stderr, PROG ": %s\n", why);
	return -1;
}

static int gen_token(const char *path)
{
	char why[512];
	if (transport_token_create(path, why, sizeof(why)) != 0) {
		fprintf(stderr, PROG ": gen-token: %s\n", why);
		return 1;
	}
	fprintf(stderr,
		PROG ": wrote a new 32-byte token to %s (mode 0600); copy it to every "
		     "host\n",
		path);
	return 0;
}

/* ---- setup messages ---------------------------------------------------------------- */

static void hello_encode(const struct hello *h, uint8_t *b)
{
	memset(b, 0, HELLO_BYTES);
	prism_le32_store(b, PERF_MAGIC);
	prism_le16_store(b + 4, PERF_VERSION);
	prism_le16_store(b + 6, (uint16_t)h->mode);
	prism_le64_store(b + 8, h->size);
	prism_le32_store(b + 16, h->window);
	prism_le64_store(b + 24, h->warm);
	prism_le64_store(b + 32, h->iters);
	prism_le64_store(b + 40, h->max_ns);
}

static int hello_decode(const uint8_t *b, size_t len, struct hello *h)
{
	if (len != HELLO_BYTES || prism_le32_load(b) != PERF_MAGIC)
		return PRISM_E_BAD_MAGIC;
	if (prism_le16_load(b + 4) != PERF_VERSION)
		return PRISM_E_BAD_VERSION;
	unsigned m = prism_le16_load(b + 6);
	*h = (struct hello){.mode = (enum mode)m,
			    .size = prism_le64_load(b + 8),
			    .window = prism_le32_load(b + 16),
			    .warm = prism_le64_load(b + 24),
			    .iters = prism_le64_load(b + 32),
			    .max_ns = prism_le64_load(b + 40)};
	if (m < MODE_LAT || m > MODE_READ || h->size == 0 || h->size > TRANSPORT_MAX_MSG)
		return PRISM_E_PROTO;
	return 0;
}

/* READY: magic, version, mode, status, size, the region's descriptor, a reason. */
static size_t ready_encode(enum mode mode, int status, uint64_t size,
			   const transport_mr_desc *d, const char *reason, uint8_t *b)
{
	memset(b, 0, READY_BYTES + REASON_MAX);
	prism_le32_store(b, PERF_MAGIC);
	prism_le16_store(b + 4, PERF_VERSION);
	prism_le16_store(b + 6, (uint16_t)mode);
	prism_le32_store(b + 8, (uint32_t)status);
	prism_le64_store(b + 16, size);
	if (d)
		transport_mr_desc_encode(d, b + 24, TRANSPORT_MR_DESC_BYTES);
	if (!reason)
		return READY_BYTES;
	size_t n = strnlen(reason, REASON_MAX - 1);
	memcpy(b + READY_BYTES, reason, n);
	return READY_BYTES + n + 1;
}

static void result_encode(enum mode mode, const perf_rate *r, uint8_t *b)
{
	prism_le32_store(b, PERF_MAGIC);
	prism_le16_store(b + 4, PERF_VERSION);
	prism_le16_store(b + 6, (uint16_t)mode);
	prism_le64_store(b + 8, r->ops);
	prism_le64_store(b + 16, r->bytes);
	prism_le64_store(b + 24, r->ns);
}

/* ---- common ------------------------------------------------------------------------ */

static int open_transport(const struct opts *o, transport **t)
{
	transport_opts to = {.backend = o->backend};
	if (read_token(o->token_file, to.token) != 0)
		return -1;
	int rc = transport_create(&to, t);
	explicit_bzero(to.token, sizeof(to.token));
	if (rc) {
		const char *b = o->backend ? transport_backend_name(o->backend)
					   : "the default ($PRISM_TRANSPORT, else tcp)";
		fprintf(stderr, PROG ": transport_create (%s backend): %s%s\n", b,
			prism_strerror(rc),
			rc == PRISM_E_NO_DEVICE ? " (is $PRISM_RDMA_DEVICE right? see "
						  "ibv_devices)"
						: "");
		return -1;
	}
	return 0;
}

static void *alloc_buffer(uint64_t size)
{
	/* Page-aligned, as perftest's buffers are, and touched before any timing. */
	void *p = NULL;
	if (posix_memalign(&p, 4096, (size_t)size) != 0) {
		fprintf(stderr, PROG ": cannot allocate %llu bytes\n",
			(unsigned long long)size);
		return NULL;
	}
	memset(p, 0xa5, (size_t)size);
	return p;
}

static const char *size_label(uint64_t size, char *buf, size_t len)
{
	if (size % (1ull << 30) == 0)
		snprintf(buf, len, "%llugib", (unsigned long long)(size >> 30));
	else if (size % (1ull << 20) == 0)
		snprintf(buf, len, "%llumib", (unsigned long long)(size >> 20));
	else if (size % (1ull << 10) == 0)
		snprintf(buf, len, "%llukib", (unsigned long long)(size >> 10));
	else
		snprintf(buf, len, "%llub", (unsigned long long)size);
	return buf;
}

static int run_failed(const char *what, const perf_link *p)
{
	fprintf(stderr, PROG ": %s: %s\n", what, p->err[0] ? p->err : "failed");
	return 1;
}

/* ---- server ------------------------------------------------------------------------ */

/* Checks the client's HELLO against what this server runs; a reason when refused. */
static const char *hello_refusal(const struct opts *o, const struct hello *h, char *buf,
				 size_t len)
{
	if (h->mode != o->mode) {
		snprintf(buf, len, "the server runs '%s', the client asked for '%s'",
			 mode_names[o->mode], mode_names[h->mode]);
		return buf;
	}
	if (o->size_set && (o->mode == MODE_READ ? h->size > o->size : h->size != o->size)) {
		snprintf(buf, len, "the server's --size is %llu bytes, the client's %llu",
			 (unsigned long long)o->size, (unsigned long long)h->size);
		return buf;
	}
	return NULL;
}

/* The measured part of a server's run: READY, then the loop until the end message. */
static int serve_run(const struct opts *o, perf_link *p, const struct hello *h, void *buf,
		     uint64_t size, transport_mr *mr, perf_rate *r)
{
	uint8_t ready[READY_BYTES + REASON_MAX];
	transport_mr_desc desc;
	if (mr)
		transport_mr_desc_get(mr, &desc);
	int rc = perf_send(p, ready,
			   ready_encode(o->mode, 0, size, mr ? &desc : NULL, NULL, ready), 0);
	if (rc)
		return rc;
	switch (o->mode) {
	case MODE_LAT:
		rc = perf_lat_server(p, buf, (size_t)size, &r->ops);
		r->bytes = r->ops * size;
		return rc;
	case MODE_BW:
		return perf_bw_server(p, (size_t)size, h->window, h->warm, r);
	case MODE_READ:
		rc = perf_serve_until_end(p);
		if (rc == 0) {
			/* The client drains its READs before its end message. */
			transport_stats st;
			transport_stats_get(p->t, &st);
			r->ops = st.reads_served;
			r->bytes = st.reads_served * h->size;
		}
		return rc;
	}
	return -EINVAL;
}

static int server_main(const struct opts *o)
{
	transport *t = NULL;
	char bound[TRANSPORT_ADDR_MAX], peer[TRANSPORT_ADDR_MAX] = "?";
	if (open_transport(o, &t) != 0)
		return 1;
	int rc = transport_listen(t, o->listen, bound, sizeof(bound));
	if (rc) {
		fprintf(stderr, PROG ": transport_listen on %s: %s\n", o->listen,
			prism_strerror(rc));
		transport_destroy(t);
		return 1;
	}
	const char *bname = transport_backend_name(transport_backend_of(t));
	printf(PROG " server: %s over %s, listening on %s (one run, then exit)\n",
	       mode_names[o->mode], bname, bound);
	fflush(stdout);
	perf_link p = {.t = t};
	struct hello h;
	perf_rate r = {0};
	void *buf = NULL;
	uint64_t size = 0;
	transport_mr *mr = NULL;
	int status = 1;
	if (perf_wait_up(&p, true, -1) != 0) {
		run_failed("waiting for a client", &p);
		goto out;
	}
	transport_conn_peer(p.c, peer, sizeof(peer));
	if (perf_recv(&p) != 0) {
		run_failed("waiting for the client's hello", &p);
		goto out;
	}
	rc = hello_decode(p.rx, p.rx_len, &h);
	if (rc) {
		fprintf(stderr, PROG ": client %s: bad hello: %s\n", peer, prism_strerror(rc));
		goto out;
	}
	char why[REASON_MAX];
	const char *refused = hello_refusal(o, &h, why, sizeof(why));
	if (refused) {
		uint8_t ready[READY_BYTES + REASON_MAX];
		size_t n = ready_encode(o->mode, PRISM_E_CONFIG, 0, NULL, refused, ready);
		fprintf(stderr, PROG ": client %s refused: %s\n", peer, refused);
		if (perf_send(&p, ready, n, 0) == 0)
			perf_wait_closed(&p, 5 * PRISM_NS_PER_SEC);
		goto out;
	}
	/* A read run's region is the server's --size, or the client's. */
	size = o->mode == MODE_READ && o->size_set ? o->size : h.size;
	if (!(buf = alloc_buffer(size)))
		goto out;
	if (o->mode == MODE_READ &&
	    (rc = transport_reg(t, buf, (size_t)size, TRANSPORT_REMOTE_READ, &mr)) != 0) {
		fprintf(stderr, PROG ": transport_reg of %llu bytes: %s\n",
			(unsigned long long)size, prism_strerror(rc));
		goto out;
	}
	if (serve_run(o, &p, &h, buf, size, mr, &r) != 0) {
		run_failed("serving the run", &p);
		goto out;
	}
	uint8_t res[RESULT_BYTES];
	result_encode(o->mode, &r, res);
	/* The buffer and the region outlive the link: nothing can still be using them. */
	if (perf_send(&p, res, sizeof(res), 0) != 0 ||
	    perf_wait_closed(&p, 10 * PRISM_NS_PER_SEC) != 0) {
		run_failed("finishing the run", &p);
		goto out;
	}
	printf(PROG " server: served %s for %s: %llu %s of %llu bytes\n", mode_names[o->mode],
	       peer, (unsigned long long)r.ops,
	       o->mode == MODE_LAT  ? "round trips"
	       : o->mode == MODE_BW ? "messages"
				    : "READs",
	       (unsigned long long)h.size);
	status = 0;
out:
	transport_dereg(mr);
	transport_destroy(t);
	free(buf);
	return status;
}

/* ---- client ------------------------------------------------------------------------ */

static void print_lat(const struct opts *o, const char *bname, const prism_hist *rtt)
{
	prism_hist_summary s;
	prism_hist_summarize(rtt, &s);
	char lab[32];
	size_label(o->size, lab, sizeof(lab));
	if (o->json) {
		/* One-way first (perftest's convention), then the round trip itself. */
		for (int half = 1; half >= 0; half--) {
			double d = half ? 2e3 : 1e3;
			printf("{\"suite\":\"perf\",\"case\":\"%s_%s_%s\",\"unit\":\"us\","
			       "\"n\":%llu,\"min\":%.3f,\"p50\":%.3f,\"p99\":%.3f,\"p999\":%."
			       "3f,"
			       "\"max\":%.3f,\"mean\":%.3f,\"bytes\":%llu,\"metric\":\"%s\","
			       "\"transport\":\"%s\",\"address\":\"%s\"}\n",
			       bname, half ? "lat" : "rtt", lab, (unsigned long long)s.count,
			       s.min / d, s.p50 / d, s.p99 / d, s.p999 / d, s.max / d,
			       s.mean / d, (unsigned long long)o->size,
			       half ? "one-way (round trip / 2)" : "round trip", bname,
			       o->address);
		}
		return;
	}
	printf("-------------------------------------------------------------------------------"
	       "-----------------\n");
	printf("                    prism-perf lat: %llu-byte message ping-pong over %s\n",
	       (unsigned long long)o->size, bname);
	printf(" remote: %s   both sides spinning on transport_poll\n", o->address);
	printf("-------------------------------------------------------------------------------"
	       "-----------------\n");
	static const char *const title[2] = {
		" round trip (not halved):",
		" one-way latency = round trip / 2 (what ib_write_lat / ib_send_lat report):"};
	for (int half = 1; half >= 0; half--) {
		double d = half ? 2e3 : 1e3;
		printf("%s\n", title[half]);
		printf(" %-8s %-12s %12s %12s %16s %12s %22s %24s\n", "#bytes", "#iterations",
		       "t_min[usec]", "t_max[usec]", "t_typical[usec]", "t_avg[usec]",
		       "99% percentile[usec]", "99.9% percentile[usec]");
		printf(" %-8llu %-12llu %12.2f %12.2f %16.2f %12.2f %22.2f %24.2f\n",
		       (unsigned long long)o->size, (unsigned long long)s.count, s.min / d,
		       s.max / d, s.p50 / d, s.mean / d, s.p99 / d, s.p999 / d);
	}
	printf("-------------------------------------------------------------------------------"
	       "-----------------\n");
}

static void print_rate(const struct opts *o, const char *bname, const perf_rate *r,
		       const char *measured_at)
{
	char lab[32];
	size_label(o->size, lab, sizeof(lab));
	double secs = (double)r->ns / 1e9, gbs = (double)r->bytes / (double)r->ns;
	double mmps = (double)r->ops / (double)r->ns * 1e3;
	if (o->json) {
		printf("{\"suite\":\"perf\",\"case\":\"%s_%s_%s\",\"unit\":\"GB/"
		       "s\",\"value\":%.6g,"
		       "\"mmsg_per_s\":%.6g,\"bytes\":%llu,\"ops\":%llu,\"seconds\":%.6g,"
		       "\"size\":%llu,\"window\":%u,\"measured_at\":\"%s\",\"transport\":\"%"
		       "s\","
		       "\"address\":\"%s\"}\n",
		       bname, mode_names[o->mode], lab, gbs, mmps, (unsigned long long)r->bytes,
		       (unsigned long long)r->ops, secs, (unsigned long long)o->size, o->window,
		       measured_at, bname, o->address);
		return;
	}
	printf("-------------------------------------------------------------------------------"
	       "--------\n");
	printf("                    prism-perf %s: %llu-byte %s over %s, window %u\n",
	       mode_names[o->mode], (unsigned long long)o->size,
	       o->mode == MODE_READ ? "one-sided READs" : "messages", bname, o->window);
	printf(" remote: %s   measured at the %s; GB/s = 10^9 bytes/s\n", o->address,
	       measured_at);
	printf("-------------------------------------------------------------------------------"
	       "--------\n");
	printf(" %-10s %-12s %10s %18s %16s %18s\n", "#bytes", "#iterations", "seconds",
	       "BW average[GB/s]", "BW average[Gb/s]", "MsgRate[Mmsg/s]");
	printf(" %-10llu %-12llu %10.3f %18.3f %16.2f %18.4f\n", (unsigned long long)o->size,
	       (unsigned long long)r->ops, secs, gbs, gbs * 8, mmps);
	printf("-------------------------------------------------------------------------------"
	       "--------\n");
}

/* Warm-up before measuring: 1/10 of a lat run (at most 1000 round trips); for streams,
 * a window or 64 MiB, whichever is more (at most 100,000 operations). */
static uint64_t warm_count(const struct opts *o)
{
	if (o->mode == MODE_LAT) {
		uint64_t it = o->iters ? o->iters : 10000;
		uint64_t w = it / 10 < 1000 ? it / 10 : 1000;
		return w ? w : 1;
	}
	uint64_t w = (64ull << 20) / o->size;
	if (w < o->window)
		w = o->window;
	return w < 100000 ? w : 100000;
}

static int parse_ready(const perf_link *p, const struct opts *o, transport_mr_desc *d)
{
	const uint8_t *b = p->rx;
	if (p->rx_len < READY_BYTES || prism_le32_load(b) != PERF_MAGIC ||
	    prism_le16_load(b + 4) != PERF_VERSION) {
		fprintf(stderr, PROG ": the server's answer is not a prism-perf READY\n");
		return -1;
	}
	int status = (int)prism_le32_load(b + 8);
	if (status) {
		char reason[REASON_MAX] = "";
		size_t n = p->rx_len - READY_BYTES;
		memcpy(reason, b + READY_BYTES, n < REASON_MAX - 1 ? n : REASON_MAX - 1);
		fprintf(stderr, PROG ": the server refused the run: %s (%s)\n", reason,
			prism_strerror(status));
		return -1;
	}
	if (o->mode == MODE_READ) {
		int rc = transport_mr_desc_decode(b + 24, TRANSPORT_MR_DESC_BYTES, d);
		if (rc || d->len < o->size || !(d->access & TRANSPORT_REMOTE_READ)) {
			fprintf(stderr,
				PROG ": the server's region descriptor is unusable: %s\n",
				rc ? prism_strerror(rc) : "too small or not readable");
			return -1;
		}
	}
	return 0;
}

static int client_measure(const struct opts *o, perf_link *p, const struct hello *h,
			  const transport_mr_desc *d, prism_hist *rtt, perf_rate *r)
{
	void *buf = alloc_buffer(o->size);
	transport_mr *mr = NULL;
	int rc = -1;
	if (!buf)
		return -1;
	switch (o->mode) {
	case MODE_LAT:
		rc = perf_lat_client(p, buf, (size_t)o->size, h->warm, h->iters, h->max_ns,
				     rtt);
		break;
	case MODE_BW:
		rc = perf_bw_client(p, buf, (size_t)o->size, o->window, h->warm, h->iters,
				    h->max_ns, r);
		break;
	case MODE_READ:
		rc = transport_reg(p->t, buf, (size_t)o->size, 0, &mr);
		if (rc) {
			fprintf(stderr, PROG ": transport_reg of %llu bytes: %s\n",
				(unsigned long long)o->size, prism_strerror(rc));
			break;
		}
		rc = perf_read_client(p, buf, (size_t)o->size, d, o->window, h->warm, h->iters,
				      h->max_ns, r);
		break;
	}
	if (rc && p->err[0])
		run_failed("the run", p);
	/* The server's RESULT comes after our end message: every operation is done then. */
	if (rc == 0 && (rc = perf_recv_reply(p)) != 0)
		run_failed("waiting for the server's result", p);
	if (rc == 0 && (p->rx_len != RESULT_BYTES || prism_le32_load(p->rx) != PERF_MAGIC)) {
		fprintf(stderr, PROG ": the server's result is malformed\n");
		rc = -1;
	}
	if (rc == 0 && o->mode == MODE_BW) {
		/* The receiver's count is the figure: bytes the sender's kernel merely
		 * buffered have not crossed the link. */
		const uint8_t *b = p->rx;
		*r = (perf_rate){.ops = prism_le64_load(b + 8),
				 .bytes = prism_le64_load(b + 16),
				 .ns = prism_le64_load(b + 24)};
	}
	if (perf_close(p) != 0 && rc == 0)
		rc = run_failed("closing the link", p);
	transport_dereg(mr);
	free(buf);
	return rc;
}

static int client_main(const struct opts *o)
{
	transport *t = NULL;
	prism_hist *rtt = NULL;
	int status = 1;
	if (open_transport(o, &t) != 0)
		return 1;
	const char *bname = transport_backend_name(transport_backend_of(t));
	perf_link p = {.t = t};
	int rc = transport_connect(t, o->address, NULL, &p.c);
	if (rc) {
		fprintf(stderr, PROG ": transport_connect to %s: %s\n", o->address,
			prism_strerror(rc));
		goto out;
	}
	if (perf_wait_up(&p, false, CONNECT_WAIT_NS) != 0) {
		fprintf(stderr, PROG ": connecting to %s over %s: %s\n", o->address, bname,
			p.err);
		if (strstr(p.err, prism_strerror(PRISM_E_AUTH)))
			fprintf(stderr,
				PROG ": the server holds another token: both sides need "
				     "the same --token-file\n");
		goto out;
	}
	struct hello h = {.mode = o->mode,
			  .size = o->size,
			  .window = o->window,
			  .warm = warm_count(o),
			  .iters = o->iters,
			  .max_ns = (uint64_t)(o->seconds * 1e9)};
	if (o->mode == MODE_LAT && !o->iters && !h.max_ns)
		h.iters = 10000;
	if (o->mode != MODE_LAT && !o->iters && !h.max_ns)
		h.max_ns = 2 * PRISM_NS_PER_SEC;
	uint8_t hb[HELLO_BYTES];
	hello_encode(&h, hb);
	transport_mr_desc d = {0};
	if (perf_send(&p, hb, sizeof(hb), 0) != 0 || perf_recv(&p) != 0) {
		run_failed("setting the run up", &p);
		goto out;
	}
	if (parse_ready(&p, o, &d) != 0)
		goto out;
	perf_rate r = {0};
	if (o->mode == MODE_LAT && prism_hist_create(&rtt) != 0) {
		fprintf(stderr, PROG ": out of memory\n");
		goto out;
	}
	if (client_measure(o, &p, &h, &d, rtt, &r) != 0)
		goto out;
	if (o->mode == MODE_LAT)
		print_lat(o, bname, rtt);
	else if (r.ns == 0 || r.ops == 0)
		fprintf(stderr, PROG ": the run was too short to measure (raise --iters or "
				     "--seconds)\n");
	else
		print_rate(o, bname, &r, o->mode == MODE_BW ? "receiver" : "reader");
	status = o->mode == MODE_LAT || (r.ns && r.ops) ? 0 : 1;
out:
	prism_hist_destroy(rtt);
	transport_destroy(t);
	return status;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "gen-token") == 0) {
		if (argc != 3)
			return bad_arg("%s", "gen-token wants one file name");
		return gen_token(argv[2]);
	}
	struct opts o = {0};
	int rc = parse_opts(argc, argv, &o);
	if (rc)
		return rc;
	prism_clock_calibrate();
	return o.server ? server_main(&o) : client_main(&o);
}
