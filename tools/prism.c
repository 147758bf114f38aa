/* prism — the command line: start, stop and inspect a node, as `ray start/stop/status`. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "common.h"
#include "sched/node.h"
#include "sched/proto.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: prism COMMAND [--socket PATH] [OPTIONS]\n\n"
		"commands:\n"
		"  start   start a node in the background and print its address\n"
		"          --head: start a cluster (the GCS runs on this node; others join\n"
		"                  at --port, 6390 by default); prints how to join\n"
		"          --address HOST:PORT: join the cluster whose head is there (needs\n"
		"                  the head's token: --token-file F, or cluster.token beside\n"
		"                  the socket)\n"
		"          --wait SECONDS: how long to wait for the node to answer and, with\n"
		"                  --head or --address, to join (default 60; it says what\n"
		"                  it waits for every 5 s)\n"
		"          --foreground: run it here; other options go to prismd, see\n"
		"          `prismd --help`\n"
		"  stop    stop the node\n"
		"  status  show the node's workers, leases, queues and tasks, and every node\n"
		"          of its cluster with resources, load, object store and liveness\n\n"
		"The node's socket: --socket, else PRISM_ADDRESS, else\n"
		"$TMPDIR/prism-UID/node.sock.  Programs attach with prism_init() given that\n"
		"address, or PRISM_ADDRESS=... in their environment.\n");
}

/* How long `prism start` waits for its node (--wait). */
static double start_wait_s = 60;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waiting for `what` since t0: say so every 5 s, so a slow machine is not mistaken for a
 * hang; false once the --wait bound has passed. */
static bool still_waiting(double t0, double *said, const char *what)
{
	double now = now_s();
	if (now - *said >= 5) {
		*said = now;
		fprintf(stderr, "prism start: waiting for the node to %s (%.0f s of %.0f)\n",
			what, now - t0, start_wait_s);
	}
	return now - t0 < start_wait_s;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* The last `lines` lines of a file, to stderr. */
static void print_tail(const char *path, int lines)
{
	char buf[8192];
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	long from = size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0;
	fseek(f, from, SEEK_SET);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = buf + n;
	for (int k = 0; p > buf && k <= lines;)
		if (*--p == '\n' && p != buf + n - 1)
			k++;
	fprintf(stderr, "%s", p == buf ? p : p + 1);
}

static int find_prismd(char *out, size_t len)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		snprintf(out, len, "%s/prismd", dirname(self));
		if (access(out, X_OK) == 0)
			return 0;
	}
	snprintf(out, len, "prismd"); /* from PATH */
	return 0;
}

static void print_join(const char *addr);

/* After `prism start --address`: wait until the node says it joined (or could not). */
static int wait_joined(const char *addr, pid_t pid, const char *logpath)
{
	static char buf[SCHED_WIRE_MAX_PAYLOAD + 1];
	double t0 = now_s(), said = t0;
	while (still_waiting(t0, &said, "join the cluster")) {
		int st;
		if (pid > 0 && waitpid(pid, &st, WNOHANG) == pid) {
			fprintf(stderr,
				"prism start: the node could not join the cluster; %s says:\n",
				logpath);
			print_tail(logpath, 3);
			return 1;
		}
		if (tool_request(addr, SCHED_W_STATUS, buf, sizeof(buf)) ==
		    SCHED_W_STATUS_REPLY) {
			char *line = strstr(buf, "cluster: ");
			if (line && strstr(line, ", joined,") &&
			    strstr(line, ", joined,") < strchr(line, '\n'))
				return 0;
		}
		sleep_ms(10);
	}
	fprintf(stderr,
		"prism start: the node did not join within %.0f s (--wait); it may still; "
		"see %s\n",
		start_wait_s, logpath);
	return 1;
}

static int cmd_start(const char *addr, int argc, char **argv, int foreground)
{
	char prismd[4200], buf[256], logpath[4200], dir[4096];
	find_prismd(prismd, sizeof(prismd));
	if (tool_request(addr, SCHED_W_STATUS, buf, sizeof(buf)) == SCHED_W_STATUS_REPLY) {
		fprintf(stderr, "prism start: a node is already running at %s\n", addr);
		return 1;
	}
	char **args = calloc((size_t)argc + 4, sizeof(*args));
	if (!args)
		return 1;
	int k = 0;
	args[k++] = prismd;
	args[k++] = "--socket";
	args[k++] = (char *)addr;
	for (int i = 0; i < argc; i++)
		args[k++] = argv[i];
	args[k] = NULL;
	if (foreground) {
		execvp(prismd, args);
		fprintf(stderr, "prism start: cannot run %s: %s\n", prismd, strerror(errno));
		return 1;
	}
	if (sched_socket_dir(dir, sizeof(dir)) != 0)
		snprintf(dir, sizeof(dir), "/tmp");
	snprintf(logpath, sizeof(logpath), "%s/prismd.log", dir);
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		setsid();
		int log = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		int null = open("/dev/null", O_RDONLY);
		if (log >= 0) {
			dup2(log, 1);
			dup2(log, 2);
		}
		if (null >= 0)
			dup2(null, 0);
		execvp(prismd, args);
		_exit(127);
	}
	free(args);
	double t0 = now_s(), said = t0;
	while (still_waiting(t0, &said, "answer")) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			fprintf(stderr,
				"prism start: the node exited at once (status %d); %s says:\n",
				WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), logpath);
			print_tail(logpath, 5);
			return 1;
		}
		if (tool_request(addr, SCHED_W_STATUS, buf, sizeof(buf)) ==
		    SCHED_W_STATUS_REPLY) {
			bool head = false, join = false;
			for (int a = 0; a < argc; a++) {
				head |= strcmp(argv[a], "--head") == 0;
				join |= strcmp(argv[a], "--cluster-address") == 0;
			}
			if ((head || join) && wait_joined(addr, pid, logpath) != 0)
				return 1;
			if (head)
				print_join(addr);
			printf("prism node started: pid %d, address %s\n"
			       "  attach with:  PRISM_ADDRESS=%s  (or prism_init with "
			       ".address)\n"
			       "  log:          %s\n"
			       "  stop with:    prism stop\n",
			       (int)pid, addr, addr, logpath);
			return 0;
		}
		sleep_ms(10);
	}
	fprintf(stderr, "prism start: the node did not answer within %.0f s (--wait); see %s\n",
		start_wait_s, logpath);
	return 1;
}

/* The head tells how to join: its GCS address and the token file. */
static void print_join(const char *addr)
{
	static char buf[SCHED_WIRE_MAX_PAYLOAD + 1];
	if (tool_request(addr, SCHED_W_STATUS, buf, sizeof(buf)) != SCHED_W_STATUS_REPLY)
		return;
	char *gcs = strstr(buf, ", GCS tcp://");
	if (!gcs)
		return;
	gcs += strlen(", GCS tcp://");
	int m = (int)strcspn(gcs, "\n");
	char token[4200];
	snprintf(token, sizeof(token), "%s", addr);
	char *slash = strrchr(token, '/');
	if (slash)
		snprintf(slash + 1, sizeof(token) - (size_t)(slash + 1 - token),
			 "cluster.token");
	printf("prism cluster started: nodes join at %.*s\n"
	       "  join from another host with:\n"
	       "    prism start --address %.*s --token-file %s\n"
	       "  (copy %s there first: it is the cluster's secret)\n",
	       m, gcs, m, gcs, token, token);
}

static int cmd_stop(const char *addr)
{
	char buf[256];
	int rc = tool_request(addr, SCHED_W_STOP, buf, sizeof(buf));
	if (rc != SCHED_W_STOP_OK) {
		fprintf(stderr, "prism stop: no node answers at %s (%s)\n", addr,
			rc < 0 ? prism_strerror(rc) : "unexpected reply");
		return 1;
	}
	for (int i = 0; i < 1000; i++) {
		if (tool_request(addr, SCHED_W_STATUS, buf, sizeof(buf)) < 0) {
			printf("prism node at %s stopped\n", addr);
			return 0;
		}
		sleep_ms(10);
	}
	fprintf(stderr, "prism stop: the node at %s is still answering after 10 s\n", addr);
	return 1;
}

static int cmd_status(const char *addr)
{
	static char buf[SCHED_WIRE_MAX_PAYLOAD + 1];
	int rc = tool_request(addr, SCHED_W_STATUS, buf, sizeof(buf));
	if (rc != SCHED_W_STATUS_REPLY) {
		fprintf(stderr, "prism status: no node answers at %s (%s)\n", addr,
			rc < 0 ? prism_strerror(rc) : buf);
		return 1;
	}
	fputs(buf, stdout);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *cmd = argv[1], *given = NULL;
	int foreground = 0, rest = 0;
	char **pass = calloc((size_t)argc * 2 + 1, sizeof(*pass));
	if (!pass)
		return 1;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
			given = argv[++i];
		} else if (strcmp(cmd, "start") == 0 && strcmp(argv[i], "--address") == 0 &&
			   i + 1 < argc) {
			pass[rest++] = "--cluster-address";
			pass[rest++] = argv[++i];
		} else if (strcmp(cmd, "start") == 0 && strcmp(argv[i], "--head") == 0) {
			pass[rest++] = "--head";
			pass[rest++] = "true";
		} else if (strcmp(cmd, "start") == 0 && strcmp(argv[i], "--wait") == 0 &&
			   i + 1 < argc) {
			char *end;
			start_wait_s = strtod(argv[++i], &end);
			if (*end || !(start_wait_s > 0 && start_wait_s <= 86400)) {
				fprintf(stderr,
					"prism start: --wait takes seconds, 1 to 86400\n");
				return 2;
			}
		} else if (strcmp(argv[i], "--foreground") == 0) {
			foreground = 1;
		} else if (strcmp(cmd, "start") == 0) {
			pass[rest++] = argv[i];
		} else {
			fprintf(stderr, "prism %s: unexpected argument '%s'\n", cmd, argv[i]);
			return 2;
		}
	}
	char addr[4096];
	if (tool_address(given, addr, sizeof(addr)) != 0) {
		fprintf(stderr, "prism: cannot work out the node's address\n");
		return 1;
	}
	int rc;
	if (strcmp(cmd, "start") == 0)
		rc = cmd_start(addr, rest, pass, foreground);
	else if (strcmp(cmd, "stop") == 0)
		rc = cmd_stop(addr);
	else if (strcmp(cmd, "status") == 0)
		rc = cmd_status(addr);
	else
		rc = -1;
	free(pass);
	if (rc >= 0)
		return rc;
	fprintf(stderr, "prism: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
