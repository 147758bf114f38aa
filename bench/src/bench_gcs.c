/* bench_gcs.c — the GCS: writes through chains of 1, 2 and 3 replicas, reads at the
 * tail, and Debian's redis-server driven the same way in the same run.
 *
 * The replicas run in a forked child (all of one chain in it, polled in turn, spinning);
 * the parent is the client, pinned to the other CPU, spinning too.  Every case keeps the
 * same fixed number of requests outstanding (WINDOW) for ~1 s after a warm-up and reports
 * ops/s and the per-request latency (issue to answer).  Redis gets the identical loop over
 * its own protocol (RESP, pipelined to the same depth) on a plain TCP socket. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "base/clock.h"
#include "base/error.h"
#include "base/hist.h"
#include "gcs/chain.h"
#include "gcs/record.h"
#include "suites.h"

#define SUITE "gcs"
/* 32 requests outstanding: a node's worth of concurrent control-plane writers. */
#define WINDOW 32
#define RUN_NS 1000000000ull
#define WARM_NS 200000000ull
#define KEYS 1000
#define VALUE_BYTES 64

static uint8_t token[TRANSPORT_TOKEN_BYTES];

/* ---- the chain, in children ------------------------------------------------------- */

/* The profile of a chain: per replica, the TSC cycles spent in polls that handled
 * something (the replica's own work, not its idle spinning), in memory shared with the
 * parent.  With every replica on one core, this is what says how fast each would go on a
 * core of its own. */
static struct busy {
	_Atomic uint64_t cycles[3];
} * busy;

static inline uint64_t tsc(void)
{
#if defined(__x86_64__)
	return __rdtsc();
#else
	return prism_now_ns();
#endif
}

/* Serve replicas r[0..n) (the first is chain position `first`) spinning until killed
 * (bounded anyway). */
static void serve(gcs_replica **r, int n, int first)
{
	uint64_t end = prism_now_ns() + 120ull * 1000000000ull;
	for (unsigned long it = 0;; it++) {
		/* The clock only every 4096 rounds: it was 10% of a profile. */
		if ((it & 4095) == 0 && prism_now_ns() > end)
			break;
		for (int i = 0; i < n; i++) {
			uint64_t t0 = tsc();
			int rc = gcs_replica_poll(r[i], 0);
			if (rc < 0)
				_exit(5);
			if (rc > 0)
				atomic_fetch_add_explicit(&busy->cycles[first + i], tsc() - t0,
							  memory_order_relaxed);
		}
	}
	_exit(0);
}

/* A child serving replicas (successor next_addr for the last of them, or NULL) on `cpu`;
 * writes each one's address to the pipe. */
/* The backend of the chain being measured (tcp, or softverbs for the log-ring case). */
static enum transport_backend chain_backend = TRANSPORT_TCP;

static pid_t start_replicas(int n, int first, int cpu, const char *next_addr, int wfd, int rfd)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	close(rfd);
	bench_pin_cpu(cpu);
	gcs_replica *r[3];
	char addr[3][TRANSPORT_ADDR_MAX];
	gcs_replica_opts o = {.backend = chain_backend, .listen = "tcp://127.0.0.1:0"};
	memcpy(o.token, token, sizeof(token));
	for (int i = 0; i < n; i++)
		if (gcs_replica_create(&o, addr[i], sizeof(addr[i]), &r[i]) != 0)
			_exit(2);
	for (int i = 0; i + 1 < n; i++)
		if (gcs_replica_set_next(r[i], addr[i + 1]) != 0)
			_exit(3);
	if (next_addr && gcs_replica_set_next(r[n - 1], next_addr) != 0)
		_exit(3);
	for (int i = 0; i < n; i++)
		if (write(wfd, addr[i], sizeof(addr[i])) != (ssize_t)sizeof(addr[i]))
			_exit(4);
	serve(r, n, first);
	return 0;
}

/* A chain of n replicas, spinning.  On a machine with a core for the client and one for
 * each replica, each replica is its own process on its own core (CPU 1 + i), as chains
 * run across machines; with fewer cores (this 2-vCPU VM) they share one process on
 * CPU 1, polled in turn.  *layout says which.  pids[] gets the children (0 past them). */
static int start_chain(int n, char *head, char *tail, pid_t *pids, const char **layout)
{
	bool apart = sysconf(_SC_NPROCESSORS_ONLN) >= n + 1;
	*layout = apart ? "core_per_replica" : "shared_core";
	int groups = apart ? n : 1, per = apart ? 1 : n;
	char next[TRANSPORT_ADDR_MAX] = "";
	for (int g = groups - 1; g >= 0; g--) { /* the tail first: its address is needed */
		int pfd[2];
		if (pipe(pfd) != 0)
			return -1;
		pids[g] = start_replicas(per, g * per, 1 + g, next[0] ? next : NULL, pfd[1],
					 pfd[0]);
		close(pfd[1]);
		char addr[3][TRANSPORT_ADDR_MAX];
		bool ok = pids[g] > 0;
		for (int i = 0; ok && i < per; i++)
			ok = read(pfd[0], addr[i], TRANSPORT_ADDR_MAX) == TRANSPORT_ADDR_MAX;
		close(pfd[0]);
		if (!ok)
			return -1;
		if (g == groups - 1)
			memcpy(tail, addr[per - 1], TRANSPORT_ADDR_MAX);
		memcpy(next, addr[0], TRANSPORT_ADDR_MAX);
	}
	memcpy(head, next, TRANSPORT_ADDR_MAX);
	return 0;
}

static void stop(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* ---- the windowed loop, shared by prism and redis ---------------------------------- */

typedef struct loop {
	uint64_t sent_at[WINDOW];
	long issued, done, counted;
	int errors;
	uint64_t t0, t_end;
	prism_hist *h;
} loop;

static void loop_done(loop *l, long slot)
{
	uint64_t now = prism_now_ns();
	if (now >= l->t0 && l->t0) {
		prism_hist_record(l->h, now - l->sent_at[slot % WINDOW]);
		l->counted++;
	}
	l->done++;
}

static void put_cb(void *arg, int status, uint64_t seq)
{
	(void)seq;
	loop *l = arg;
	if (status)
		l->errors++;
	loop_done(l, l->done);
}

static void get_cb(void *arg, int status, const uint8_t *v, size_t len, uint64_t ver)
{
	(void)v;
	(void)ver;
	loop *l = arg;
	if (status || len != VALUE_BYTES)
		l->errors++;
	loop_done(l, l->done);
}

/* Keep WINDOW requests of gcs (get or put) outstanding for RUN_NS after WARM_NS. */
static double run_gcs(gcs_client *c, bool get, prism_hist *h)
{
	loop l = {.h = h};
	uint8_t val[VALUE_BYTES];
	memset(val, 'v', sizeof(val));
	uint64_t start = prism_now_ns();
	l.t0 = start + WARM_NS;
	l.t_end = l.t0 + RUN_NS;
	while (prism_now_ns() < l.t_end) {
		while (l.issued - l.done < WINDOW) {
			char key[16];
			int kl = snprintf(key, sizeof(key), "k%ld", l.issued % KEYS);
			l.sent_at[l.issued % WINDOW] = prism_now_ns();
			int rc = get ? gcs_client_get(c, GCS_T_KV, key, (size_t)kl, get_cb, &l)
				     : gcs_client_put(c, GCS_T_KV, key, (size_t)kl, val,
						      sizeof(val), put_cb, &l);
			if (rc)
				return -1;
			l.issued++;
		}
		if (gcs_client_poll(c, 0) < 0)
			return -1;
	}
	/* Drain what is in flight so the next case starts clean (bounded). */
	uint64_t drain = prism_now_ns() + 5000000000ull;
	while (gcs_client_pending(c) && prism_now_ns() < drain)
		gcs_client_poll(c, 0);
	if (l.errors)
		return -1;
	return (double)l.counted / ((double)RUN_NS / 1e9);
}

/* ---- redis ------------------------------------------------------------------------- */

static pid_t start_redis(int port)
{
	if (access("/usr/bin/redis-server", X_OK) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		char p[16];
		snprintf(p, sizeof(p), "%d", port);
		int dn = open("/dev/null", O_WRONLY);
		dup2(dn, 1);
		bench_pin_cpu(1);
		execl("/usr/bin/redis-server", "redis-server", "--port", p, "--bind",
		      "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode",
		      "yes", (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int redis_connect(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < 200; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			return fd;
		}
		close(fd);
		usleep(10000);
	}
	return -1;
}

/* Count complete RESP replies in buf (simple strings, errors, bulk strings); returns how
 * many bytes they took. */
static size_t resp_replies(const char *buf, size_t len, long *n, int *errors)
{
	size_t o = 0;
	for (;;) {
		const char *nl = memchr(buf + o, '\n', len - o);
		if (!nl)
			return o;
		size_t line = (size_t)(nl - (buf + o)) + 1;
		if (buf[o] == '$') {
			long bl = atol(buf + o + 1);
			size_t need = line + (bl >= 0 ? (size_t)bl + 2 : 0);
			if (len - o < need)
				return o;
			o += need;
		} else {
			if (buf[o] == '-')
				(*errors)++;
			o += line;
		}
		(*n)++;
	}
}

/* Read what redis answered and complete those requests (timed or not). */
static char resp_in[1 << 16];
static size_t resp_have;

static int redis_take(int fd, loop *l, bool timed)
{
	ssize_t r = recv(fd, resp_in + resp_have, sizeof(resp_in) - resp_have, MSG_DONTWAIT);
	if (r == 0 || (r < 0 && errno != EAGAIN))
		return -1;
	if (r < 0)
		return 0;
	resp_have += (size_t)r;
	long n = 0;
	size_t used = resp_replies(resp_in, resp_have, &n, &l->errors);
	memmove(resp_in, resp_in + used, resp_have - used);
	resp_have -= used;
	while (n--)
		if (timed)
			loop_done(l, l->done);
		else
			l->done++;
	return 0;
}

static double run_redis(int fd, bool get, prism_hist *h)
{
	loop l = {.h = h};
	resp_have = 0;
	char val[VALUE_BYTES + 1];
	memset(val, 'v', VALUE_BYTES);
	val[VALUE_BYTES] = 0;
	l.t0 = prism_now_ns() + WARM_NS;
	l.t_end = l.t0 + RUN_NS;
	while (prism_now_ns() < l.t_end) {
		char out[WINDOW * 160];
		size_t on = 0;
		while (l.issued - l.done < WINDOW) {
			char key[16];
			int kl = snprintf(key, sizeof(key), "k%ld", l.issued % KEYS);
			on += get ? (size_t)snprintf(out + on, sizeof(out) - on,
						     "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", kl,
						     key)
				  : (size_t)snprintf(
					    out + on, sizeof(out) - on,
					    "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", kl,
					    key, VALUE_BYTES, val);
			l.sent_at[l.issued % WINDOW] = prism_now_ns();
			l.issued++;
		}
		if (on && write(fd, out, on) != (ssize_t)on)
			return -1;
		if (redis_take(fd, &l, true) < 0)
			return -1;
	}
	/* Drain the replies still in flight. */
	uint64_t drain = prism_now_ns() + 5000000000ull;
	while (l.done < l.issued && prism_now_ns() < drain)
		if (redis_take(fd, &l, false) < 0)
			return -1;
	return l.errors ? -1 : (double)l.counted / ((double)RUN_NS / 1e9);
}

/* ---- failover: the longest stall while a replica is killed and cut out -------------- */

/* One replica per process, sleeping in its poll (three spinning processes would starve
 * each other on two CPUs); the address goes to the parent through the pipe. */
static pid_t start_replica(char *addr_out)
{
	int pfd[2];
	if (pipe(pfd) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		gcs_replica_opts o = {.backend = TRANSPORT_TCP,
				      .listen = "tcp://127.0.0.1:0",
				      .standby = true};
		memcpy(o.token, token, sizeof(token));
		gcs_replica *r;
		char a[TRANSPORT_ADDR_MAX];
		if (gcs_replica_create(&o, a, sizeof(a), &r) != 0 ||
		    write(pfd[1], a, sizeof(a)) != (ssize_t)sizeof(a))
			_exit(2);
		uint64_t end = prism_now_ns() + 60ull * 1000000000ull;
		while (prism_now_ns() < end)
			if (gcs_replica_poll(r, 2000000) < 0)
				_exit(3);
		_exit(0);
	}
	close(pfd[1]);
	bool ok = read(pfd[0], addr_out, TRANSPORT_ADDR_MAX) == TRANSPORT_ADDR_MAX;
	close(pfd[0]);
	if (!ok) {
		stop(pid);
		return -1;
	}
	return pid;
}

typedef struct stall {
	long done;
	int failed;
	uint64_t last, longest;
} stall;

static void stall_cb(void *arg, int status, uint64_t seq)
{
	(void)seq;
	stall *s = arg;
	uint64_t now = prism_now_ns();
	if (s->last && now - s->last > s->longest)
		s->longest = now - s->last;
	s->last = now;
	s->done++;
	s->failed += status != 0;
}

/* The master runs in its own thread, as it would in the head node's loop: clients
 * block in gcs_client_open() until it answers. */
typedef struct master_thread {
	gcs_master *m;
	pthread_t th;
	pthread_mutex_t mu;
	atomic_bool stop;
} master_thread;

static void *master_main(void *arg)
{
	master_thread *mt = arg;
	while (!atomic_load(&mt->stop)) {
		pthread_mutex_lock(&mt->mu);
		gcs_master_poll(mt->m, 1000000);
		pthread_mutex_unlock(&mt->mu);
	}
	return NULL;
}

/* The events of the failover run, in order, and the chain after each. */
static const struct {
	const char *name;
	int at;   /* after this many writes completed */
	int kill; /* the replica SIGKILLed, or -1 */
	int add;  /* the replica added, or -1 */
} fo_events[] = {
	{"kill_middle", 2000, 1, -1}, /* [0 2] */
	{"add", 3500, -1, 3},         /* [0 2 3] */
	{"kill_head", 5000, 0, -1},   /* [2 3] */
	{"kill_tail", 6500, 3, -1},   /* [2] */
	{"add", 8000, -1, 4},         /* [2 4] */
};
#define FO_EVENTS (int)(sizeof(fo_events) / sizeof(fo_events[0]))
#define FO_WRITES 9500

/* Writes (WINDOW in flight) from a client of the master through three replicas (200 ms
 * heartbeat timeout), while replicas are killed (the middle, the head, the tail) and new
 * ones added by state transfer.  stall_ms[e]: the longest gap between two write
 * completions from event e to the next; the largest is returned, -1 on failure. */
static double failover_stall(double *stall_ms)
{
	char addr[5][TRANSPORT_ADDR_MAX], maddr[TRANSPORT_ADDR_MAX];
	pid_t kid[5] = {0};
	double worst = -1;
	master_thread mt = {.mu = PTHREAD_MUTEX_INITIALIZER};
	bool running = false;
	gcs_client *c = NULL;
	for (int i = 0; i < 5; i++)
		if ((kid[i] = start_replica(addr[i])) < 0)
			goto out;
	const char *a[3] = {addr[0], addr[1], addr[2]};
	gcs_master_opts mo = {.backend = TRANSPORT_TCP,
			      .listen = "tcp://127.0.0.1:0",
			      .timeout_ns = 200000000ull,
			      .shards = 1,
			      .replicas = 3,
			      .addrs = a};
	memcpy(mo.token, token, sizeof(token));
	if (gcs_master_open(&mo, maddr, sizeof(maddr), &mt.m) != 0)
		goto out;
	if (pthread_create(&mt.th, NULL, master_main, &mt) != 0)
		goto out;
	running = true;
	gcs_client_opts co = {.backend = TRANSPORT_TCP, .master = maddr};
	memcpy(co.token, token, sizeof(token));
	if (gcs_client_open(&co, &c) != 0)
		goto out;
	stall s = {0};
	long sent = 0;
	int ev = -1;
	uint8_t val[VALUE_BYTES];
	memset(val, 'v', sizeof(val));
	uint64_t end = prism_now_ns() + 30ull * 1000000000ull;
	while (s.done < FO_WRITES && prism_now_ns() < end) {
		while (sent < FO_WRITES && sent - s.done < WINDOW) {
			char key[16];
			int kl = snprintf(key, sizeof(key), "k%ld", sent % KEYS);
			if (gcs_client_put(c, GCS_T_KV, key, (size_t)kl, val, sizeof(val),
					   stall_cb, &s))
				goto out;
			sent++;
		}
		if (gcs_client_poll(c, 1000000) < 0)
			goto out;
		if (ev + 1 < FO_EVENTS && s.done >= fo_events[ev + 1].at) {
			if (ev >= 0)
				stall_ms[ev] = (double)s.longest / 1e6;
			s.longest = 0; /* from this event on */
			ev++;
			if (fo_events[ev].kill >= 0) {
				stop(kid[fo_events[ev].kill]);
				kid[fo_events[ev].kill] = 0;
			}
			if (fo_events[ev].add >= 0) {
				pthread_mutex_lock(&mt.mu);
				int rc = gcs_master_add(mt.m, addr[fo_events[ev].add]);
				pthread_mutex_unlock(&mt.mu);
				if (rc)
					goto out;
			}
		}
	}
	if (ev >= 0)
		stall_ms[ev] = (double)s.longest / 1e6;
	if (s.done == FO_WRITES && !s.failed && ev == FO_EVENTS - 1) {
		worst = 0;
		for (int e = 0; e < FO_EVENTS; e++)
			worst = stall_ms[e] > worst ? stall_ms[e] : worst;
	}
out:
	gcs_client_destroy(c);
	if (running) {
		atomic_store(&mt.stop, true);
		pthread_join(mt.th, NULL);
	}
	gcs_master_destroy(mt.m);
	for (int i = 0; i < 5; i++)
		if (kid[i] > 0)
			stop(kid[i]);
	return worst;
}

/* ---- the suite --------------------------------------------------------------------- */

static void report(const struct bench_opts *o, const char *name, double ops, prism_hist *h,
		   const char *layout)
{
	struct bench_field f[] = {
		{"ops_per_s", ops, NULL}, {"window", WINDOW, NULL}, {"layout", 0, layout}};
	bench_report_latency(o, SUITE, name, h, f, layout ? 3 : 2);
}

static void stop_all(pid_t *pids)
{
	for (int i = 0; i < 3; i++)
		if (pids[i] > 0)
			stop(pids[i]);
}

static int gcs_case(const struct bench_opts *o, int r, bool get, double *ops)
{
	if (!busy) {
		void *m = mmap(NULL, sizeof(*busy), PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			return -1;
		busy = m;
	}
	char head[TRANSPORT_ADDR_MAX], tail[TRANSPORT_ADDR_MAX], name[32];
	pid_t pids[3] = {0};
	const char *layout;
	if (start_chain(r, head, tail, pids, &layout) != 0) {
		stop_all(pids);
		return -1;
	}
	gcs_client *c;
	prism_hist *h;
	int rc = gcs_client_create(chain_backend, token, head, tail, &c);
	if (rc == 0 && prism_hist_create(&h) != 0)
		rc = -ENOMEM;
	if (rc) {
		stop_all(pids);
		return -1;
	}
	if (get) {
		/* Fill the keys first, so every read finds its value. */
		prism_hist *warm;
		prism_hist_create(&warm);
		run_gcs(c, false, warm);
		prism_hist_destroy(warm);
	}
	for (int i = 0; i < 3; i++)
		atomic_store(&busy->cycles[i], 0);
	uint64_t t0 = tsc();
	*ops = run_gcs(c, get, h);
	double cycles = (double)(tsc() - t0);
	const char *sv = chain_backend == TRANSPORT_SOFTVERBS ? "_softverbs" : "";
	if (get)
		snprintf(name, sizeof(name), "get%s", sv);
	else
		snprintf(name, sizeof(name), "put_r%d%s", r, sv);
	if (*ops > 0 && !get) {
		/* Each replica's own work per write: its busy share of the run over the rate. */
		struct bench_field f[3 + 3];
		char names[3][32]; /* room for any int: -Wformat-truncation */
		int nf = 0;
		f[nf++] = (struct bench_field){"ops_per_s", *ops, NULL};
		f[nf++] = (struct bench_field){"window", WINDOW, NULL};
		f[nf++] = (struct bench_field){"layout", 0, layout};
		for (int i = 0; i < r; i++) {
			snprintf(names[i], sizeof(names[i]), "busy_ns_per_op_%d", i);
			double share = (double)atomic_load(&busy->cycles[i]) / cycles;
			f[nf++] = (struct bench_field){names[i], share * 1e9 / *ops, NULL};
		}
		bench_report_latency(o, SUITE, name, h, f, nf);
	} else if (*ops > 0) {
		report(o, name, *ops, h, layout);
	}
	prism_hist_destroy(h);
	gcs_client_destroy(c);
	stop_all(pids);
	return *ops > 0 ? 0 : -1;
}

static int redis_case(const struct bench_opts *o, bool get, double *ops)
{
	int port = 20000 + (int)(getpid() % 20000);
	pid_t pid = start_redis(port);
	if (pid < 0) {
		bench_report_skip(
			o, SUITE, get ? "redis_get" : "redis_set",
			"redis-server is not installed (apt-get install redis-server)");
		*ops = 0;
		return 0;
	}
	int fd = redis_connect(port);
	prism_hist *h;
	prism_hist_create(&h);
	*ops = -1;
	if (fd >= 0) {
		if (get) {
			prism_hist *warm;
			prism_hist_create(&warm);
			run_redis(fd, false, warm);
			prism_hist_destroy(warm);
		}
		*ops = run_redis(fd, get, h);
		close(fd);
	}
	if (*ops > 0)
		report(o, get ? "redis_get" : "redis_set", *ops, h, NULL);
	prism_hist_destroy(h);
	stop(pid);
	return *ops > 0 ? 0 : -1;
}

int bench_gcs(const struct bench_opts *o)
{
	bench_report_header(o, SUITE,
			    "GCS chains of 1-3 replicas vs redis-server, same client loop");
	memset(token, 0x5a, sizeof(token));
	bench_pin_cpu(0);
	double put[4] = {0}, get = 0, rset = 0, rget = 0;
	int rc = 0;
	for (int r = 1; r <= 3; r++)
		rc |= gcs_case(o, r, false, &put[r]);
	rc |= gcs_case(o, 3, true, &get);
	/* The same chain over softverbs: batches go by WRITE into the successors' log
	 * rings, as on an RDMA cluster. */
	double put_sv = 0;
	chain_backend = TRANSPORT_SOFTVERBS;
	rc |= gcs_case(o, 3, false, &put_sv);
	chain_backend = TRANSPORT_TCP;
	rc |= redis_case(o, false, &rset);
	rc |= redis_case(o, true, &rget);
	double each[FO_EVENTS] = {0};
	double stall_ms = failover_stall(each);
	if (stall_ms >= 0) {
		struct bench_field f[2 + FO_EVENTS] = {{"target_max", 30, NULL},
						       {"window", WINDOW, NULL}};
		char names[FO_EVENTS][32];
		for (int e = 0; e < FO_EVENTS; e++) {
			snprintf(names[e], sizeof(names[e]), "%s_%d_ms", fo_events[e].name,
				 e + 1);
			f[2 + e] = (struct bench_field){names[e], each[e], NULL};
		}
		bench_report_value(o, SUITE, "failover_stall_ms", "ms", stall_ms, f,
				   2 + FO_EVENTS);
	} else {
		fprintf(stderr, "prism-bench gcs: failover_stall_ms failed\n");
		rc = 1;
	}
	if (put[1] > 0 && put[2] > 0)
		bench_report_value(o, SUITE, "put_r2_vs_r1", "ratio", put[2] / put[1], NULL, 0);
	if (put[1] > 0 && rset > 0)
		bench_report_value(o, SUITE, "put_r1_vs_redis_set", "ratio", put[1] / rset,
				   NULL, 0);
	if (get > 0 && rget > 0)
		bench_report_value(o, SUITE, "get_vs_redis_get", "ratio", get / rget, NULL, 0);
	return rc ? 1 : 0;
}
