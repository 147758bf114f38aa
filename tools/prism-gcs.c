/* prism-gcs — the GCS as separate processes: replicas, the configuration master, and a
 * small client for scripts and operators.
 *
 *   prism-gcs replica --listen ADDR --token-file F [--wal PATH] [--snapshot-every N]
 *                     [--transport B] [--standby]
 *   prism-gcs master --listen ADDR --token-file F --shards S --replicas R
 *                    [--timeout-ms T] [--spare ADDR]... [--transport B] ADDR...
 *   prism-gcs put KEY VALUE | get KEY | del KEY  --master ADDR --token-file F
 *                    [--table kv] [--transport B]
 *   prism-gcs gen-token F
 *
 * A replica under a master runs with --standby (it takes its role from the master).  The
 * master gets S x R replica addresses, shard by shard, head first; a dead replica is cut
 * out, and a spare (--spare, in order) is added by state transfer to any shard left with
 * fewer than R replicas.  Servers print "listening on ADDR" on stdout once bound, and run
 * until SIGINT or SIGTERM.  Exit status: 0 done, 1 failed (the message says why), 2 bad
 * arguments; get of a missing key: 3.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "gcs/chain.h"
#include "gcs/record.h"
#include "transport/transport.h"

#define PROG "prism-gcs"
#define MAX_ADDRS 128
#define MAX_SPARES 16

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " replica --listen ADDR --token-file F [--wal PATH]\n"
		"                         [--snapshot-every N] [--transport B] [--standby]\n"
		"       " PROG " master --listen ADDR --token-file F --shards S --replicas R\n"
		"                        [--timeout-ms T] [--spare ADDR]... [--transport B] "
		"ADDR...\n"
		"       " PROG
		" put KEY VALUE | get KEY | del KEY --master ADDR --token-file F\n"
		"                        [--table kv] [--transport B]\n"
		"       " PROG " gen-token F\n\n"
		"  --listen ADDR      tcp://HOST:PORT to serve on (port 0: any free port)\n"
		"  --token-file F     the cluster token (32 raw bytes or 64 hex digits)\n"
		"  --wal PATH         the replica's log; snapshots go to PATH.snap\n"
		"  --snapshot-every N entries between snapshots (default 1000000)\n"
		"  --standby          take the role from the master (always, under one)\n"
		"  --shards S, --replicas R   the master's layout: S x R addresses follow\n"
		"  --timeout-ms T     a replica silent this long is dead (default 200)\n"
		"  --spare ADDR       a standby replica to add where one died (repeatable)\n"
		"  --master ADDR      the master clients ask for the configuration\n"
		"  --transport B      tcp, softverbs or verbs (default: $PRISM_TRANSPORT, "
		"tcp)\n");
}

static int bad_arg(const char *fmt, const char *arg)
{
	fprintf(stderr, PROG ": ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n\n");
	usage(stderr);
	return 2;
}

struct opts {
	const char *listen, *token_file, *wal, *master, *table;
	uint64_t snapshot_every;
	enum transport_backend backend;
	bool standby;
	int shards, replicas;
	uint64_t timeout_ms;
	const char *spares[MAX_SPARES];
	int nspares;
};

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

enum {
	O_LISTEN = 1,
	O_TOKEN,
	O_WAL,
	O_SNAP,
	O_TRANSPORT,
	O_STANDBY,
	O_SHARDS,
	O_REPLICAS,
	O_TIMEOUT,
	O_SPARE,
	O_MASTER,
	O_TABLE
};

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {{"listen", required_argument, 0, O_LISTEN},
					   {"token-file", required_argument, 0, O_TOKEN},
					   {"wal", required_argument, 0, O_WAL},
					   {"snapshot-every", required_argument, 0, O_SNAP},
					   {"transport", required_argument, 0, O_TRANSPORT},
					   {"standby", no_argument, 0, O_STANDBY},
					   {"shards", required_argument, 0, O_SHARDS},
					   {"replicas", required_argument, 0, O_REPLICAS},
					   {"timeout-ms", required_argument, 0, O_TIMEOUT},
					   {"spare", required_argument, 0, O_SPARE},
					   {"master", required_argument, 0, O_MASTER},
					   {"table", required_argument, 0, O_TABLE},
					   {0, 0, 0, 0}};
	*o = (struct opts){.timeout_ms = 200, .table = "kv"};
	int c;
	uint64_t v;
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case O_LISTEN:
			o->listen = optarg;
			break;
		case O_TOKEN:
			o->token_file = optarg;
			break;
		case O_WAL:
			o->wal = optarg;
			break;
		case O_SNAP:
			if (parse_u64(optarg, &o->snapshot_every) || !o->snapshot_every)
				return bad_arg("--snapshot-every: '%s' is not a positive count",
					       optarg);
			break;
		case O_TRANSPORT:
			if (transport_backend_parse(optarg, &o->backend) != 0)
				return bad_arg(
					"--transport: '%s' is not tcp, verbs or softverbs",
					optarg);
			break;
		case O_STANDBY:
			o->standby = true;
			break;
		case O_SHARDS:
			if (parse_u64(optarg, &v) || v < 1 || v > GCS_MAX_SHARDS)
				return bad_arg("--shards: '%s' is not 1 to 64", optarg);
			o->shards = (int)v;
			break;
		case O_REPLICAS:
			if (parse_u64(optarg, &v) || v < 1 || v > 8)
				return bad_arg("--replicas: '%s' is not 1 to 8", optarg);
			o->replicas = (int)v;
			break;
		case O_TIMEOUT:
			if (parse_u64(optarg, &o->timeout_ms) || !o->timeout_ms)
				return bad_arg("--timeout-ms: '%s' is not a positive count",
					       optarg);
			break;
		case O_SPARE:
			if (o->nspares == MAX_SPARES)
				return bad_arg("%s", "at most 16 --spare");
			o->spares[o->nspares++] = optarg;
			break;
		case O_MASTER:
			o->master = optarg;
			break;
		case O_TABLE:
			o->table = optarg;
			break;
		default:
			return bad_arg("%s", "unknown option");
		}
	}
	if (!o->token_file)
		return bad_arg("%s", "--token-file is required");
	return 0;
}

static int load_token(const char *path, uint8_t *token)
{
	char why[512];
	if (transport_token_load(path, token, why, sizeof(why)) == 0)
		return 0;
	fprintf(stderr, PROG ": %s\n", why);
	return -1;
}

static void catch_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* ---- servers ----------------------------------------------------------------------- */

static int run_replica(const struct opts *o)
{
	if (!o->listen)
		return bad_arg("%s", "replica: --listen is required");
	gcs_replica_opts ro = {.backend = o->backend,
			       .listen = o->listen,
			       .wal_path = o->wal,
			       .snapshot_every = o->snapshot_every,
			       .standby = o->standby};
	if (load_token(o->token_file, ro.token))
		return 1;
	char addr[TRANSPORT_ADDR_MAX];
	gcs_replica *r;
	int rc = gcs_replica_create(&ro, addr, sizeof(addr), &r);
	if (rc) {
		fprintf(stderr, PROG ": replica on %s: %s\n", o->listen, prism_strerror(rc));
		return 1;
	}
	printf("listening on %s\n", addr);
	fflush(stdout);
	catch_signals();
	while (!stopping) {
		rc = gcs_replica_poll(r, 50000000);
		if (rc < 0) {
			fprintf(stderr, PROG ": replica: %s\n", prism_strerror(rc));
			break;
		}
	}
	gcs_replica_destroy(r);
	return rc < 0 ? 1 : 0;
}

static int run_master(const struct opts *o, int nargs, char **args)
{
	if (!o->listen || !o->shards || !o->replicas)
		return bad_arg("%s", "master: --listen, --shards and --replicas are required");
	if (nargs != o->shards * o->replicas) {
		fprintf(stderr,
			PROG ": master: %d shards x %d replicas need %d addresses, got %d\n",
			o->shards, o->replicas, o->shards * o->replicas, nargs);
		return 2;
	}
	gcs_master_opts mo = {.backend = o->backend,
			      .listen = o->listen,
			      .timeout_ns = o->timeout_ms * 1000000ull,
			      .shards = o->shards,
			      .replicas = o->replicas,
			      .addrs = (const char *const *)args};
	if (load_token(o->token_file, mo.token))
		return 1;
	char addr[TRANSPORT_ADDR_MAX];
	gcs_master *m;
	int rc = gcs_master_open(&mo, addr, sizeof(addr), &m);
	if (rc) {
		fprintf(stderr, PROG ": master on %s: %s\n", o->listen, prism_strerror(rc));
		return 1;
	}
	printf("listening on %s\n", addr);
	fflush(stdout);
	catch_signals();
	int spare = 0;
	while (!stopping) {
		rc = gcs_master_poll(m, 50000000);
		if (rc < 0) {
			fprintf(stderr, PROG ": master: %s\n", prism_strerror(rc));
			break;
		}
		/* Shards short of replicas get the next spare. */
		for (int s = 0; s < o->shards && spare < o->nspares; s++) {
			char chain[8][TRANSPORT_ADDR_MAX];
			int n = gcs_master_shard_chain(m, s, chain, 8);
			if (n > 0 && n < o->replicas) {
				rc = gcs_master_add_to(m, s, o->spares[spare]);
				fprintf(stderr, PROG ": shard %d: adding spare %s: %s\n", s,
					o->spares[spare], rc ? prism_strerror(rc) : "started");
				spare++;
			}
		}
	}
	gcs_master_destroy(m);
	return rc < 0 ? 1 : 0;
}

/* ---- client commands ----------------------------------------------------------------- */

static int run_client(const char *cmd, const struct opts *o, int nargs, char **args)
{
	bool put = !strcmp(cmd, "put"), del = !strcmp(cmd, "del");
	if (!o->master)
		return bad_arg("%s: --master is required", cmd);
	if (nargs != (put ? 2 : 1))
		return bad_arg(put ? "%s: expected KEY VALUE" : "%s: expected KEY", cmd);
	static const char *const names[] = {
		[GCS_T_NODE] = "node",   [GCS_T_OBJECT] = "object",     [GCS_T_TASK] = "task",
		[GCS_T_ACTOR] = "actor", [GCS_T_FUNCTION] = "function", [GCS_T_JOB] = "job",
		[GCS_T_KV] = "kv"};
	int table = -1;
	for (int t = GCS_T_NODE; t <= GCS_T_KV; t++)
		if (names[t] && !strcmp(names[t], o->table))
			table = t;
	if (table < 0)
		return bad_arg(
			"--table: '%s' is not node, object, task, actor, function, job or kv",
			o->table);
	gcs_client_opts co = {.backend = o->backend, .master = o->master};
	if (load_token(o->token_file, co.token))
		return 1;
	gcs_client *c;
	int rc = gcs_client_open(&co, &c);
	if (rc) {
		fprintf(stderr, PROG ": no GCS at %s: %s\n", o->master, prism_strerror(rc));
		return 1;
	}
	const char *key = args[0];
	if (put || del) {
		uint64_t seq;
		rc = gcs_client_put_sync(c, (uint8_t)table, key, strlen(key),
					 put ? args[1] : NULL, put ? strlen(args[1]) : 0, &seq);
		if (rc == 0)
			printf("%s %s: seq %llu\n", cmd, key, (unsigned long long)seq);
	} else {
		uint8_t *v;
		size_t len;
		uint64_t ver;
		rc = gcs_client_get_sync(c, (uint8_t)table, key, strlen(key), &v, &len, &ver);
		if (rc == 0) {
			fwrite(v, 1, len, stdout);
			printf("\n");
			prism_free(v);
		}
	}
	gcs_client_destroy(c);
	if (rc == -ENOENT) {
		fprintf(stderr, PROG ": %s: no such key\n", key);
		return 3;
	}
	if (rc) {
		fprintf(stderr, PROG ": %s %s: %s\n", cmd, key, prism_strerror(rc));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return bad_arg("%s", "expected replica, master, put, get, del or gen-token");
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "gen-token")) {
		if (argc != 3)
			return bad_arg("%s", "gen-token: expected a file name");
		char why[512];
		if (transport_token_create(argv[2], why, sizeof(why)) != 0) {
			fprintf(stderr, PROG ": gen-token: %s\n", why);
			return 1;
		}
		return 0;
	}
	bool client = !strcmp(cmd, "put") || !strcmp(cmd, "get") || !strcmp(cmd, "del");
	if (strcmp(cmd, "replica") && strcmp(cmd, "master") && !client)
		return bad_arg("unknown command '%s'", cmd);
	struct opts o;
	int rc = parse(argc, argv, &o);
	if (rc)
		return rc;
	int nargs = argc - optind;
	char **args = argv + optind;
	if (!strcmp(cmd, "replica"))
		return nargs ? bad_arg("%s", "replica: unexpected arguments") : run_replica(&o);
	if (!strcmp(cmd, "master"))
		return run_master(&o, nargs, args);
	return run_client(cmd, &o, nargs, args);
}
