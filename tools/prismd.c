/* prismd — the node daemon (DESIGN.md section 2).  Usually started by `prism start`;
 * runs in the foreground until SIGTERM, SIGINT or `prism stop`. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "base/error.h"
#include "base/log.h"
#include "common.h"
#include "sched/node.h"
#include "transport/transport.h"

static sched_node *node;

static void on_signal(int sig)
{
	(void)sig;
	if (node)
		sched_node_stop(node);
}

static const prism_cfg_key schema[] = {
	{.name = "object_store_memory",
	 .type = PRISM_CFG_INT,
	 .def = "256Mi",
	 .min = "1Mi",
	 .max = "1024Gi",
	 .help = "object store size in bytes (suffixes k M G Ki Mi Gi)"},
	{.name = "num_workers",
	 .type = PRISM_CFG_INT,
	 .def = "0",
	 .min = "0",
	 .max = "56",
	 .help = "workers started per program ahead of need (0: one per CPU)"},
	{.name = "max_workers",
	 .type = PRISM_CFG_INT,
	 .def = "0",
	 .min = "0",
	 .max = "56",
	 .help = "most workers per program (0: four per CPU)"},
	{.name = "num_cpus",
	 .type = PRISM_CFG_INT,
	 .def = "0",
	 .min = "0",
	 .max = "4096",
	 .help = "CPUs offered to tasks (0: those this process may use)"},
	{.name = "num_gpus",
	 .type = PRISM_CFG_INT,
	 .def = "0",
	 .min = "0",
	 .max = "1024",
	 .help = "GPUs offered to tasks that ask for them"},
	{.name = "resources",
	 .type = PRISM_CFG_STRING,
	 .def = "",
	 .help = "custom resources, name=amount,... (e.g. camera=1,arm=2)"},
	{.name = "spin",
	 .type = PRISM_CFG_DURATION,
	 .def = "50us",
	 .min = "0ns",
	 .max = "1s",
	 .help = "how long idle workers spin before they sleep"},
	{.name = "head",
	 .type = PRISM_CFG_BOOL,
	 .def = "false",
	 .help = "start a cluster: serve the GCS here; other nodes join at --port"},
	{.name = "port",
	 .type = PRISM_CFG_INT,
	 .def = "6390",
	 .min = "1",
	 .max = "65535",
	 .help = "the head's port for nodes joining the cluster"},
	{.name = "cluster_address",
	 .type = PRISM_CFG_STRING,
	 .def = "",
	 .help = "join the cluster whose head is at HOST:PORT"},
	{.name = "node_ip",
	 .type = PRISM_CFG_STRING,
	 .def = "",
	 .help = "the IP other nodes reach this one at (default: the route to the head)"},
	{.name = "token_file",
	 .type = PRISM_CFG_STRING,
	 .def = "",
	 .help = "the cluster token (default: cluster.token beside the socket; the head "
		 "creates it)"},
	{.name = "node_timeout",
	 .type = PRISM_CFG_DURATION,
	 .def = "3s",
	 .min = "100ms",
	 .max = "1h",
	 .help = "a node without a heartbeat this long is declared dead (on the head)"},
	{.name = "gcs_wal",
	 .type = PRISM_CFG_STRING,
	 .def = "",
	 .help = "the head's GCS log (snapshots beside it); empty: in memory"},
};

/* The cluster token: given, else cluster.token in the socket's directory, which the head
 * creates when it is missing.  0, or 2 with the reason printed. */
static int cluster_token(const char *given, bool head, const char *socket_path, uint8_t *token,
			 char *used, size_t used_len)
{
	char why[512];
	if (given && *given) {
		snprintf(used, used_len, "%s", given);
	} else {
		snprintf(used, used_len, "%s", socket_path);
		char *slash = strrchr(used, '/');
		if (slash)
			snprintf(slash + 1, used_len - (size_t)(slash + 1 - used),
				 "cluster.token");
		else
			snprintf(used, used_len, "cluster.token");
	}
	if (head && access(used, F_OK) != 0) {
		if (transport_token_create(used, why, sizeof(why)) != 0) {
			fprintf(stderr, "prismd: cluster token: %s\n", why);
			return 2;
		}
		fprintf(stderr,
			"prismd: created the cluster token %s (mode 0600); nodes that join "
			"need a copy\n",
			used);
	}
	if (transport_token_load(used, token, why, sizeof(why)) != 0) {
		fprintf(stderr, "prismd: %s%s\n", why,
			head ? "" : " (copy the head's token file here, or give --token-file)");
		return 2;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: prismd [--socket PATH] [--config FILE] [--OPTION VALUE]...\n\n"
		"Runs a prism node in the foreground until SIGTERM, SIGINT or `prism stop`.\n"
		"  --socket PATH   Unix socket to listen on (default: PRISM_ADDRESS, else\n"
		"                  $TMPDIR/prism-UID/node.sock)\n"
		"  --config FILE   key = value settings (the options below, without --)\n"
		"  --log-level L   error, warn, info, debug or trace\n");
	for (size_t i = 0; i < sizeof(schema) / sizeof(schema[0]); i++)
		fprintf(f, "  --%-20s %s (default %s)\n", schema[i].name, schema[i].help,
			schema[i].def);
	fprintf(f, "Every option can also come from the environment: PRISM_NUM_WORKERS=4.\n");
}

/* Parse the command line into cfg.  0, HELP_SHOWN, or 2 (a usage error). */
#define HELP_SHOWN (-1)
static int parse_args(int argc, char **argv, prism_cfg *cfg, const char **socket_arg,
		      const char **config)
{
	char err[512];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return HELP_SHOWN;
		}
		if (strncmp(a, "--", 2) != 0 || i + 1 >= argc) {
			fprintf(stderr, "prismd: unexpected argument '%s'\n", a);
			usage(stderr);
			return 2;
		}
		const char *v = argv[++i];
		if (strcmp(a, "--socket") == 0) {
			*socket_arg = v;
		} else if (strcmp(a, "--config") == 0) {
			*config = v;
		} else if (strcmp(a, "--log-level") == 0) {
			int lvl;
			if (prism_log_parse_level(v, &lvl) != 0) {
				fprintf(stderr, "prismd: bad --log-level '%s'\n", v);
				return 2;
			}
			prism_log_set_level(lvl);
		} else {
			char key[64];
			snprintf(key, sizeof(key), "%s", a + 2);
			for (char *c = key; *c; c++)
				if (*c == '-')
					*c = '_';
			if (prism_cfg_set(cfg, key, v, err, sizeof(err)) != 0) {
				fprintf(stderr, "prismd: --%s: %s\n", a + 2, err);
				return 2;
			}
		}
	}
	return 0;
}

static int run(prism_cfg *cfg, const char *path)
{
	int64_t store, workers, maxw, cpus, gpus, spin;
	const char *res = NULL;
	prism_cfg_get_int(cfg, "object_store_memory", &store);
	prism_cfg_get_int(cfg, "num_gpus", &gpus);
	prism_cfg_get_str(cfg, "resources", &res);
	{
		struct sched_res scratch[SCHED_MAX_RES];
		uint32_t nscratch;
		char err[256];
		sched_res_defaults(scratch, &nscratch, 1, 0);
		if (res && sched_res_parse(res, scratch, &nscratch, err, sizeof(err)) != 0) {
			fprintf(stderr, "prismd: --resources: %s\n", err);
			return 2;
		}
	}
	prism_cfg_get_int(cfg, "num_workers", &workers);
	prism_cfg_get_int(cfg, "max_workers", &maxw);
	prism_cfg_get_int(cfg, "num_cpus", &cpus);
	prism_cfg_get_duration_ns(cfg, "spin", &spin);
	bool head = false;
	int64_t port, node_timeout;
	const char *join = NULL, *node_ip = NULL, *token_file = NULL, *gcs_wal = NULL;
	prism_cfg_get_bool(cfg, "head", &head);
	prism_cfg_get_int(cfg, "port", &port);
	prism_cfg_get_str(cfg, "cluster_address", &join);
	prism_cfg_get_str(cfg, "node_ip", &node_ip);
	prism_cfg_get_str(cfg, "token_file", &token_file);
	prism_cfg_get_duration_ns(cfg, "node_timeout", &node_timeout);
	prism_cfg_get_str(cfg, "gcs_wal", &gcs_wal);
	if (head && join && *join) {
		fprintf(stderr,
			"prismd: --head and --cluster-address exclude each other: a node "
			"starts a cluster or joins one\n");
		return 2;
	}
	struct sched_node_opts o = {.socket_path = path,
				    .objstore_bytes = (uint64_t)store,
				    .num_workers = (uint32_t)workers,
				    .max_workers = (uint32_t)maxw,
				    .ncpus = (uint32_t)cpus,
				    .num_gpus = (uint32_t)gpus,
				    .resources = res && *res ? res : NULL,
				    .spin_ns = (uint64_t)spin,
				    .head = head,
				    .port = (uint16_t)port,
				    .cluster_address = join && *join ? join : NULL,
				    .node_ip = node_ip && *node_ip ? node_ip : NULL,
				    .node_timeout_ns = (uint64_t)node_timeout,
				    .gcs_wal = gcs_wal && *gcs_wal ? gcs_wal : NULL};
	char token_path[4200];
	if ((head || o.cluster_address) &&
	    cluster_token(token_file, head, path, o.token, token_path, sizeof(token_path)))
		return 2;
	signal(SIGPIPE, SIG_IGN);
	int rc = sched_node_create(&o, &node);
	if (rc) {
		fprintf(stderr, "prismd: cannot start the node on %s: %s\n", path,
			rc == -EADDRINUSE ? "a node is already running there"
					  : prism_strerror(rc));
		return 1;
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	fprintf(stderr, "prismd: pid %d listening on %s\n", (int)getpid(), path);
	rc = sched_node_run(node);
	/* No stop request may reach the node while it is freed. */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	sched_node_destroy(node);
	node = NULL;
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	char err[512], path[4096];
	const char *socket_arg = NULL, *config = NULL;
	prism_cfg *cfg = NULL;
	int rc = prism_cfg_create(schema, sizeof(schema) / sizeof(schema[0]), &cfg);
	if (rc) {
		fprintf(stderr, "prismd: %s\n", prism_strerror(rc));
		return 1;
	}
	if (prism_cfg_load_env(cfg, "PRISM_", err, sizeof(err)) != 0) {
		fprintf(stderr, "prismd: %s\n", err);
		rc = 2;
	} else {
		rc = parse_args(argc, argv, cfg, &socket_arg, &config);
	}
	/* The file's values rank below the command line and the environment. */
	if (rc == 0 && config && prism_cfg_load_file(cfg, config, err, sizeof(err)) != 0) {
		fprintf(stderr, "prismd: %s\n", err);
		rc = 2;
	}
	if (rc == 0 && tool_address(socket_arg, path, sizeof(path)) != 0) {
		fprintf(stderr, "prismd: cannot find a place for the socket\n");
		rc = 1;
	}
	if (rc == 0)
		rc = run(cfg, path);
	prism_cfg_destroy(cfg);
	return rc == HELP_SHOWN ? 0 : rc;
}
