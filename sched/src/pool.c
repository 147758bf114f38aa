/* pool.c — worker processes.
 *
 * A worker runs its driver's own program: the daemon starts the driver's executable
 * again, in the driver's directory and with the driver's environment, plus PRISM_WORKER
 * naming the client slot reserved for it.  prism_init() in that process sees the
 * variable, attaches as a worker and serves tasks instead of returning to main (the way
 * Ray's C++ workers re-enter the user's binary).  Workers are grouped by program
 * (struct code): a second driver of the same program reuses its idle workers.
 *
 * Each worker is watched through a pidfd; one that dies is reaped and replaced while a
 * driver of its program is attached.  A program whose workers die before they attach
 * five times in a row stops being restarted, and its lease requests fail with a clear
 * message instead of looping.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "node_int.h"

#define MAX_START_FAILURES 5
#define ENVIRON_MAX (1u << 20)

static void free_env(char **env)
{
	if (!env)
		return;
	for (char **e = env; *e; e++)
		prism_free(*e);
	prism_free(env);
}

/* A NUL-separated list from /proc/PID/<what> (environ, cmdline) as a NULL-terminated
 * array; for environ without PRISM_* variables (the worker gets its own).  NULL on
 * failure. */
static char **read_proc_list(pid_t pid, const char *what)
{
	char path[64];
	bool is_env = strcmp(what, "environ") == 0;
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	char *buf = prism_malloc(ENVIRON_MAX);
	size_t len = 0;
	ssize_t got;
	while (buf && len < ENVIRON_MAX - 1 &&
	       (got = read(fd, buf + len, ENVIRON_MAX - 1 - len)) > 0)
		len += (size_t)got;
	close(fd);
	if (!buf)
		return NULL;
	buf[len] = '\0';
	size_t count = 0;
	for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
		count++;
	char **env = prism_calloc(count + 1, sizeof(*env));
	size_t k = 0;
	for (size_t i = 0; env && i < len; i += strlen(buf + i) + 1) {
		if (is_env && !sched_env_inherited(buf + i))
			continue;
		env[k] = prism_strdup(buf + i);
		if (!env[k]) {
			free_env(env);
			env = NULL;
			break;
		}
		k++;
	}
	prism_free(buf);
	return env;
}

static void code_free(struct code *c)
{
	prism_free(c->exe);
	prism_free(c->cwd);
	prism_free(c->code_path);
	free_env(c->env);
	free_env(c->argv);
	memset(c, 0, sizeof(*c));
}

int pool__code_for(struct sched_node *n, pid_t driver_pid, const char *exe, const char *cwd,
		   const char *code_path)
{
	int free_idx = -1;
	for (int i = 0; i < (int)NODE_MAX_CODES; i++) {
		struct code *c =
			&n->codes[i]; /* One program: the same executable, directory and code path (a different
		 * code path means different functions in the workers). */
		if (c->used && strcmp(c->exe, exe) == 0 && strcmp(c->cwd, cwd) == 0 &&
		    strcmp(c->code_path, code_path) == 0) {
			if (c->start_failures >= MAX_START_FAILURES)
				c->start_failures = 0; /* a new driver gets a fresh chance */
			return i;
		}
		if (!c->used && free_idx < 0)
			free_idx = i;
	}
	if (free_idx < 0)
		return -ENOSPC;
	struct code *c = &n->codes[free_idx];
	memset(c, 0, sizeof(*c));
	c->exe = prism_strdup(exe);
	c->cwd = prism_strdup(cwd);
	c->code_path = prism_strdup(code_path);
	c->env = read_proc_list(driver_pid, "environ");
	/* The driver's own arguments, so main() runs in a worker as it did in the driver
	 * until prism_init() (a main that checks argc first would fail otherwise). */
	c->argv = read_proc_list(driver_pid, "cmdline");
	if (!c->exe || !c->cwd || !c->code_path) {
		code_free(c);
		return -ENOMEM;
	}
	c->used = true;
	return free_idx;
}

int pool__code_remote(struct sched_node *n, const char *exe, const char *cwd,
		      const char *code_path, char **argv, char **env)
{
	int free_idx = -1;
	for (int i = 0; i < (int)NODE_MAX_CODES; i++) {
		struct code *c = &n->codes[i];
		if (c->used && strcmp(c->exe, exe) == 0 && strcmp(c->cwd, cwd) == 0 &&
		    strcmp(c->code_path, code_path) == 0) {
			free_env(argv);
			free_env(env);
			c->drivers++;
			return i;
		}
		if (!c->used && free_idx < 0)
			free_idx = i;
	}
	if (free_idx < 0) {
		free_env(argv);
		free_env(env);
		return -ENOSPC;
	}
	struct code *c = &n->codes[free_idx];
	memset(c, 0, sizeof(*c));
	c->exe = prism_strdup(exe);
	c->cwd = prism_strdup(cwd);
	c->code_path = prism_strdup(code_path);
	/* Only PRISM_* variables this node sets for its workers are dropped, as for a local
	 * driver's environment. */
	size_t k = 0;
	for (size_t i = 0; env && env[i]; i++) {
		if (sched_env_inherited(env[i]))
			env[k++] = env[i];
		else
			prism_free(env[i]);
	}
	if (env)
		env[k] = NULL;
	c->env = env;
	c->argv = argv;
	if (!c->exe || !c->cwd || !c->code_path) {
		code_free(c);
		return -ENOMEM;
	}
	c->used = true;
	c->drivers = 1;
	return free_idx;
}

void pool__code_release(struct sched_node *n, int code)
{
	struct code *c = &n->codes[code];
	if (c->drivers && --c->drivers == 0)
		c->no_driver_since = prism_now_ns();
}

void pool__free_codes(struct sched_node *n)
{
	for (int i = 0; i < (int)NODE_MAX_CODES; i++) {
		struct code *c = &n->codes[i];
		if (!c->used)
			continue;
		code_free(c);
	}
}

static int worker_slot_of(struct sched_node *n, prism_loop_pid *w)
{
	for (int i = 0; i < (int)SCHED_MAX_CLIENTS; i++)
		if (n->cl[i].pidw == w)
			return i;
	return -1;
}

static void on_worker_exit(prism_loop_pid *w, int status, const prism_loop_exit *ex, void *arg)
{
	struct sched_node *n = arg;
	int slot = worker_slot_of(n, w);
	(void)status;
	if (slot < 0) {
		prism_loop_pid_close(w, NULL, NULL);
		return;
	}
	struct client_local *cl = &n->cl[slot];
	struct code *c = &n->codes[cl->code];
	struct sched_client *sc = node__client(n, (uint32_t)slot);
	uint32_t st = atomic_load(&sc->state);
	if (ex->signal)
		PRISM_LOG_I("pool", "worker pid %d (client %d) killed by signal %d",
			    (int)ex->pid, slot, ex->signal);
	else
		PRISM_LOG_I("pool", "worker pid %d (client %d) exited with %d", (int)ex->pid,
			    slot, ex->code);
	n->workers_died++;
	if (st == SCHED_CLIENT_RESERVED) {
		c->starting--;
		if (++c->start_failures == MAX_START_FAILURES)
			PRISM_LOG_E("pool",
				    "workers of %s die before attaching (last: %s %d); not "
				    "starting "
				    "more. Does main() call prism_init() first thing?",
				    c->exe, ex->signal ? "signal" : "exit code",
				    ex->signal ? ex->signal : ex->code);
	} else if (st == SCHED_CLIENT_ATTACHED) {
		node__client_gone(n, (uint32_t)slot, "worker process ended");
	}
	c->workers--;
	prism_loop_pid_close(w, NULL, NULL);
	int code = cl->code;
	memset(cl, 0, sizeof(*cl)); /* actor = 0: hosts none */
	cl->lease = -1;
	atomic_store(&sc->state, SCHED_CLIENT_FREE);
	pool__ensure(n, code);
	ctl__dispatch(n);
}

/* envp for a worker: the driver's environment and the worker's own variables. */
static char **worker_env(struct sched_node *n, struct code *c, uint32_t slot, uint32_t gen,
			 char vars[4][256], char *code_var)
{
	extern char **environ;
	char **base = c->env ? c->env : environ;
	size_t count = 0;
	while (base[count])
		count++;
	char **env = prism_calloc(count + 6, sizeof(*env));
	if (!env)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < count; i++)
		if (c->env || sched_env_inherited(base[i]))
			env[k++] = base[i];
	snprintf(vars[0], 256, "PRISM_WORKER=%u:%u", slot, gen);
	snprintf(vars[1], 256, "PRISM_NODE_SOCKET=%s", n->socket_path);
	snprintf(vars[2], 256, "PRISM_SPIN_NS=%llu", (unsigned long long)n->o.spin_ns);
	snprintf(vars[3], 256, "PRISM_ADDRESS=%s", n->socket_path);
	for (int i = 0; i < 4; i++)
		env[k++] = vars[i];
	if (*c->code_path)
		env[k++] = code_var;
	env[k] = NULL;
	return env;
}

int pool__spawn(struct sched_node *n, int code)
{
	struct code *c = &n->codes[code];
	uint32_t slot = UINT32_MAX;
	for (uint32_t i = 0; i < SCHED_DAEMON_SLOT; i++) {
		if (n->cl[i].kind == 0 &&
		    atomic_load(&node__client(n, i)->state) == SCHED_CLIENT_FREE) {
			slot = i;
			break;
		}
	}
	if (slot == UINT32_MAX)
		return -ENOSPC;
	struct sched_client *sc = node__client(n, slot);
	sc->generation++;
	sc->kind = SCHED_KIND_WORKER;
	sc->tasks_run = sc->tasks_failed = 0;
	char vars[4][256], code_var[4200];
	snprintf(code_var, sizeof(code_var), "PRISM_CODE_PATH=%s", c->code_path);
	char **env = worker_env(n, c, slot, sc->generation, vars, code_var);
	if (!env)
		return -ENOMEM;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addchdir_np(&fa, c->cwd);
	char *plain[] = {c->exe, NULL};
	pid_t pid;
	int rc = posix_spawn(&pid, c->exe, &fa, NULL, c->argv && c->argv[0] ? c->argv : plain,
			     env);
	posix_spawn_file_actions_destroy(&fa);
	prism_free(env);
	if (rc != 0) {
		PRISM_LOG_E("pool", "cannot start a worker from %s: %s", c->exe, strerror(rc));
		c->start_failures = MAX_START_FAILURES;
		return -rc;
	}
	struct client_local *cl = &n->cl[slot];
	*cl = (struct client_local){.kind = SCHED_KIND_WORKER,
				    .code = code,
				    .pid = pid,
				    .lease = -1,
				    .idle_since = prism_now_ns()};
	actors__fence_client(n, slot);
	sc->pid = pid;
	atomic_store(&sc->state, SCHED_CLIENT_RESERVED);
	rc = prism_loop_watch_pid(n->loop, pid, on_worker_exit, n, &cl->pidw);
	if (rc) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		memset(cl, 0, sizeof(*cl));
		cl->lease = -1;
		atomic_store(&sc->state, SCHED_CLIENT_FREE);
		return rc;
	}
	c->workers++;
	c->starting++;
	n->workers_spawned++;
	PRISM_LOG_D("pool", "started worker pid %d as client %u", (int)pid, slot);
	return 0;
}

void pool__ensure(struct sched_node *n, int code)
{
	struct code *c = &n->codes[code];
	while (c->drivers > 0 && c->workers < n->o.num_workers &&
	       c->start_failures < MAX_START_FAILURES && !n->stop_requested)
		if (pool__spawn(n, code) != 0)
			break;
}

/* Worker processes of every program, and whether the client table keeps room for
 * drivers beside one more. */
static bool room_for_worker(struct sched_node *n)
{
	uint32_t all = 0;
	for (int i = 0; i < (int)NODE_MAX_CODES; i++)
		all += n->codes[i].workers;
	return all < POOL_MAX_WORKERS;
}

/* Workers of a program blocked in a nested get (or wait) inside a task. */
static uint32_t blocked_workers(struct sched_node *n, int code)
{
	uint32_t k = 0;
	for (uint32_t s = 0; s < SCHED_MAX_CLIENTS; s++)
		k += n->cl[s].kind == SCHED_KIND_WORKER && n->cl[s].code == code &&
		     n->cl[s].blocked;
	return k;
}

bool pool__can_start(struct sched_node *n, int code, bool for_actor)
{
	struct code *c = &n->codes[code];
	if (c->start_failures >= MAX_START_FAILURES)
		return false;
	/* A worker per actor, beyond max_workers (as in Ray). */
	if (for_actor)
		return room_for_worker(n);
	if (c->workers < n->o.max_workers)
		return true;
	/* A worker blocked in a get lent its CPU back; one more may start for each, or a
	 * tree of tasks that wait for their children would hold every worker while the
	 * children wait for one (Ray does the same).  Bounded by the client table. */
	return c->workers < n->o.max_workers + blocked_workers(n, code) && room_for_worker(n);
}

void pool__reap_surplus(struct sched_node *n)
{
	uint64_t now = prism_now_ns();
	for (int i = 0; i < (int)NODE_MAX_CODES; i++) {
		struct code *c = &n->codes[i];
		uint32_t live = c->workers;
		for (uint32_t s = 0; s < SCHED_MAX_CLIENTS && live > n->o.max_workers; s++) {
			struct client_local *cl = &n->cl[s];
			/* Attached ones only: one still starting was started for a request
			 * (and on a loaded machine may take long to attach). */
			if (cl->kind != SCHED_KIND_WORKER || cl->code != i || cl->lease >= 0 ||
			    cl->actor || cl->pid <= 0 || cl->doomed ||
			    atomic_load(&node__client(n, s)->state) != SCHED_CLIENT_ATTACHED ||
			    now - cl->idle_since < POOL_SURPLUS_IDLE_NS)
				continue;
			kill(cl->pid, SIGTERM);
			cl->doomed = true;
			live--;
		}
	}
}

bool pool__broken(struct sched_node *n, int code)
{
	return n->codes[code].start_failures >= MAX_START_FAILURES;
}

void pool__reap_idle(struct sched_node *n)
{
	uint64_t now = prism_now_ns();
	for (int i = 0; i < (int)NODE_MAX_CODES; i++) {
		struct code *c = &n->codes[i];
		if (!c->used || c->drivers || now - c->no_driver_since < n->o.idle_worker_ns)
			continue;
		if (c->workers == 0) {
			code_free(c);
			continue;
		}
		for (uint32_t s = 0; s < SCHED_MAX_CLIENTS; s++) {
			struct client_local *cl = &n->cl[s];
			if (cl->kind == SCHED_KIND_WORKER && cl->code == i && cl->lease < 0 &&
			    !cl->actor && cl->pid > 0)
				kill(cl->pid, SIGTERM);
		}
	}
}
