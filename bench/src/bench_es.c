/* bench_es.c — the es suite: evolution strategies on the MuJoCo humanoid, prism against
 * OpenMPI (issue 8).
 *
 * It runs the two programs that implement the same algorithm on the same simulation code
 * (examples/es_humanoid/main.c on prism actors, bench/peers/es_mpi.c on MPI ranks) with
 * the same settings and budget of timesteps, one after the other, in rounds that
 * alternate which goes first, and reads the JSON line each prints.  Both stop at the
 * first generation that reaches the budget, and with the same seed they draw the same
 * tasks, so they simulate the same episodes (up to the order of floating-point sums of
 * the observation statistics).  Each counts only its generations: the noise table, the
 * model loading and (for prism) the actors' start are timed apart.  As many workers as
 * ranks: N = the CPUs online, each evaluating; MPI's rank 0 is the master and evaluates
 * too, prism's driver is the master and only waits.
 *
 * Cases (medians over the rounds): es/prism_timesteps_per_s, es/mpi_timesteps_per_s,
 * es/prism_episodes_per_s, es/mpi_episodes_per_s, and es/prism_vs_mpi (the median of the
 * rounds' prism/MPI timesteps-per-second ratios; target >= 0.95).
 *
 * The programs are looked for next to prism-bench, then where CMake built them.  Without
 * MuJoCo (no es_humanoid) or MPI (no es_mpi or mpirun) the cases that need them are
 * reported as skipped, with the reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "suites.h"

#define SUITE "es"
#define OUT_MAX (1 << 20) /* a run's output: its JSON lines and any error */
#define RUN_TIMEOUT_S 600 /* one run of one program */
#define MAX_ROUNDS 64

#ifndef PRISM_BENCH_ES_HUMANOID
#define PRISM_BENCH_ES_HUMANOID ""
#endif
#ifndef PRISM_BENCH_ES_MPI
#define PRISM_BENCH_ES_MPI ""
#endif
#ifndef PRISM_BENCH_MPIEXEC
#define PRISM_BENCH_MPIEXEC "mpirun"
#endif

/* The settings both programs get.  Full: the paper's settings as es_config_default()
 * has them (64 pairs, episodes of at most 1000 steps, a 25M-float table), 100,000
 * timesteps (about 50 generations at first, ~10 s at 10,000 timesteps/s on 2 vCPUs),
 * 3 rounds.  Quick: the tests' small budget, one round. */
struct es_settings {
	const char *timesteps, *pairs, *max_steps, *noise_floats;
	int rounds;
};
static const struct es_settings full = {"100000", "64", "1000", "25000000", 3};
static const struct es_settings quick = {"10000", "16", "200", "1048576", 1};

/* What one run of one program reported. */
struct es_result {
	double tps, eps, wall_s;
	double timesteps, episodes, generations;
	double busy;     /* prism: the actors' time in rollouts over workers x wall */
	double master_s; /* prism: the driver's time outside the evaluations */
};

/* The directory of this executable, with a trailing '/', into dir. */
static void self_dir(char *dir, size_t n)
{
	ssize_t len = readlink("/proc/self/exe", dir, n - 1);
	dir[len > 0 ? len : 0] = '\0';
	char *slash = strrchr(dir, '/');
	if (slash)
		slash[1] = '\0';
	else
		dir[0] = '\0';
}

/* path <- the program `name` next to prism-bench, else `built`; false when neither is
 * there. */
static bool find_prog(const char *name, const char *built, char *path, size_t n)
{
	char dir[PATH_MAX];
	self_dir(dir, sizeof(dir));
	snprintf(path, n, "%s%s", dir, name);
	if (dir[0] && access(path, X_OK) == 0)
		return true;
	snprintf(path, n, "%s", built);
	return built[0] && access(path, X_OK) == 0;
}

/* An executable's path for a bare name, searched in PATH; false when not found. */
static bool find_in_path(const char *name, char *path, size_t n)
{
	if (strchr(name, '/')) {
		snprintf(path, n, "%s", name);
		return access(path, X_OK) == 0;
	}
	const char *p = getenv("PATH");
	for (p = p ? p : "/usr/bin:/bin"; *p;) {
		size_t len = strcspn(p, ":");
		snprintf(path, n, "%.*s/%s", (int)len, p, name);
		if (len && access(path, X_OK) == 0)
			return true;
		p += len + (p[len] == ':');
	}
	return false;
}

/* Read the child's output until it closes or the deadline passes. */
static ssize_t read_all(int fd, char *buf, size_t cap, uint64_t deadline)
{
	size_t got = 0;
	for (;;) {
		int64_t left_ms = ((int64_t)deadline - (int64_t)prism_now_ns()) / 1000000;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (left_ms <= 0)
			return -ETIMEDOUT;
		int r = poll(&p, 1, (int)(left_ms > 1000 ? 1000 : left_ms));
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		char sink[4096];
		ssize_t n = got < cap ? read(fd, buf + got, cap - got)
				      : read(fd, sink, sizeof(sink));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return (ssize_t)got;
		if (got < cap)
			got += (size_t)n;
	}
}

/* Run argv (in a process group of its own, so mpirun's ranks go with it), its stdout and
 * stderr into out[OUT_MAX] (NUL-terminated); the exit status, or < 0. */
static int run_prog(char *const argv[], char *out)
{
	int pfd[2];
	if (pipe(pfd) != 0)
		return -errno;
	fflush(NULL);
	pid_t kid = fork();
	if (kid < 0)
		return -errno;
	if (kid == 0) {
		setpgid(0, 0);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		close(pfd[0]);
		close(pfd[1]);
		execv(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(kid, kid);
	close(pfd[1]);
	ssize_t n = read_all(pfd[0], out, OUT_MAX - 1,
			     prism_now_ns() + (uint64_t)RUN_TIMEOUT_S * PRISM_NS_PER_SEC);
	close(pfd[0]);
	out[n > 0 ? n : 0] = '\0';
	if (n == -ETIMEDOUT)
		kill(-kid, SIGKILL);
	int st = 0;
	while (waitpid(kid, &st, 0) < 0 && errno == EINTR)
		;
	if (n < 0)
		return (int)n;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The number after "field": in line, or NAN. */
static double json_num(const char *line, const char *field)
{
	char key[64];
	snprintf(key, sizeof(key), "\"%s\":", field);
	const char *p = strstr(line, key);
	return p ? strtod(p + strlen(key), NULL) : NAN;
}

/* The line of case `name` in out, parsed into r; false when it is not there. */
static bool parse_case(const char *out, const char *name, struct es_result *r)
{
	char key[96];
	snprintf(key, sizeof(key), "\"case\":\"%s\"", name);
	const char *line = strstr(out, key);
	if (!line)
		return false;
	while (line > out && line[-1] != '\n')
		line--;
	*r = (struct es_result){.tps = json_num(line, "timesteps_per_s"),
				.eps = json_num(line, "episodes_per_s"),
				.wall_s = json_num(line, "wall_s"),
				.timesteps = json_num(line, "timesteps"),
				.episodes = json_num(line, "episodes"),
				.generations = json_num(line, "generations"),
				.master_s = json_num(line, "master_s")};
	double workers = json_num(line, "workers");
	r->busy = json_num(line, "rollout_s") / (workers * r->wall_s);
	return r->tps > 0 && r->timesteps > 0;
}

/* The last line of out that is not JSON: what a failed run said. */
static void last_words(const char *out, char *why, size_t n)
{
	const char *best = NULL, *p = out;
	while (*p) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len && p[0] != '{')
			best = p;
		p += len + (e != NULL);
	}
	size_t len = best ? strcspn(best, "\n") : 0;
	snprintf(why, n, "%.*s", (int)(len > 300 ? 300 : len), best ? best : "no output");
}

struct es_bench {
	const struct bench_opts *o;
	const struct es_settings *s;
	char humanoid[PATH_MAX], mpi[PATH_MAX], mpiexec[PATH_MAX];
	bool have_prism, have_mpi;
	bool no_model; /* a run said the humanoid model is missing: skip, not fail */
	char why[320];
	char workers[16];
	char *out;
};

/* One run of one program; 0 with *r filled, or non-zero after saying why. */
static int run_one(struct es_bench *b, bool mpi, struct es_result *r)
{
	const struct es_settings *s = b->s;
	char *argv[32];
	int n = 0;
	if (mpi) {
		argv[n++] = b->mpiexec;
		argv[n++] = "--oversubscribe";
		argv[n++] = "-np";
		argv[n++] = b->workers;
		argv[n++] = b->mpi;
	} else {
		argv[n++] = b->humanoid;
		argv[n++] = "--workers";
		argv[n++] = b->workers;
	}
	char *common[] = {"--json",
			  "--timesteps",
			  (char *)s->timesteps,
			  "--pairs-per-gen",
			  (char *)s->pairs,
			  "--max-episode-steps",
			  (char *)s->max_steps,
			  "--noise-floats",
			  (char *)s->noise_floats,
			  "--seed",
			  "1"};
	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
		argv[n++] = common[i];
	argv[n] = NULL;
	int rc = run_prog(argv, b->out);
	const char *name = mpi ? "mpi_timesteps_per_s" : "prism_timesteps_per_s";
	if (rc == 0 && parse_case(b->out, name, r))
		return 0;
	char *why = b->why;
	last_words(b->out, why, sizeof(b->why));
	/* Both programs name the package when the model file is missing (humanoid.h). */
	if (rc > 0 && strstr(b->out, "libmujoco-samples")) {
		b->no_model = true;
		return rc;
	}
	char how[64];
	if (rc < 0)
		snprintf(how, sizeof(how), "%s", strerror(-rc));
	else if (rc == 0)
		snprintf(how, sizeof(how), "no result in its output");
	else
		snprintf(how, sizeof(how), "exit status %d", rc);
	fprintf(stderr, "prism-bench " SUITE ": %s failed (%s): %s\n",
		mpi ? "es_mpi" : "es_humanoid", how, why);
	return rc ? rc : 1;
}

static double median_of(const struct es_result *r, int n, size_t field)
{
	double v[MAX_ROUNDS];
	for (int i = 0; i < n; i++)
		v[i] = *(const double *)((const char *)&r[i] + field);
	return bench_median(v, n);
}

static void report_side(struct es_bench *b, const char *who, const struct es_result *r, int n)
{
	char name[64];
	double tps = median_of(r, n, offsetof(struct es_result, tps));
	struct bench_field f[] = {
		{"workers", atof(b->workers), NULL},
		{"rounds", n, NULL},
		{"timesteps", median_of(r, n, offsetof(struct es_result, timesteps)), NULL},
		{"episodes", median_of(r, n, offsetof(struct es_result, episodes)), NULL},
		{"generations", median_of(r, n, offsetof(struct es_result, generations)), NULL},
		{"wall_s", median_of(r, n, offsetof(struct es_result, wall_s)), NULL},
		{"budget", atof(b->s->timesteps), NULL},
		{"workers_busy", median_of(r, n, offsetof(struct es_result, busy)), NULL},
		{"master_s", median_of(r, n, offsetof(struct es_result, master_s)), NULL},
	};
	bool prism = strcmp(who, "prism") == 0; /* only prism reports its breakdown */
	snprintf(name, sizeof(name), "%s_timesteps_per_s", who);
	bench_report_value(b->o, SUITE, name, "timesteps/s", tps, f, prism ? 9 : 7);
	snprintf(name, sizeof(name), "%s_episodes_per_s", who);
	bench_report_value(b->o, SUITE, name, "episodes/s",
			   median_of(r, n, offsetof(struct es_result, eps)), f, 2);
}

/* Rounds of both programs, alternating which goes first; then the medians. */
static int run_rounds(struct es_bench *b, int rounds)
{
	struct es_result pr[MAX_ROUNDS], mr[MAX_ROUNDS];
	double ratio[MAX_ROUNDS];
	int np = 0, nm = 0, nr = 0, failed = 0;
	for (int i = 0; i < rounds && !b->no_model; i++) {
		for (int k = 0; k < 2 && !b->no_model; k++) {
			bool mpi = (k == 0) == (i % 2 == 1);
			if (mpi && b->have_mpi) {
				if (run_one(b, true, &mr[nm]) == 0)
					nm++;
				else
					failed = 1;
			} else if (!mpi && b->have_prism) {
				if (run_one(b, false, &pr[np]) == 0)
					np++;
				else
					failed = 1;
			}
		}
		if (np == i + 1 && nm == i + 1)
			ratio[nr++] = pr[i].tps / mr[i].tps;
		bench_note(b->o, "  round %d: prism %.0f, mpi %.0f timesteps/s", i + 1,
			   np == i + 1 ? pr[i].tps : 0.0, nm == i + 1 ? mr[i].tps : 0.0);
	}
	if (b->no_model) {
		bench_report_skip(b->o, SUITE, "prism_timesteps_per_s", b->why);
		bench_report_skip(b->o, SUITE, "mpi_timesteps_per_s", b->why);
		return 0;
	}
	if (np)
		report_side(b, "prism", pr, np);
	if (nm)
		report_side(b, "mpi", mr, nm);
	if (nr) {
		double lo = ratio[0], hi = ratio[0];
		for (int i = 1; i < nr; i++) {
			lo = ratio[i] < lo ? ratio[i] : lo;
			hi = ratio[i] > hi ? ratio[i] : hi;
		}
		struct bench_field f[] = {{"rounds", nr, NULL},
					  {"min", lo, NULL},
					  {"max", hi, NULL},
					  {"target", 0.95, NULL}};
		bench_report_value(b->o, SUITE, "prism_vs_mpi", "ratio",
				   bench_median(ratio, nr), f, 4);
	}
	return failed;
}

int bench_es(const struct bench_opts *o)
{
	struct es_bench b = {.o = o, .s = o->quick ? &quick : &full};
	int rounds = o->rounds ? o->rounds : b.s->rounds;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	/* 256: the most actors es_humanoid runs. */
	snprintf(b.workers, sizeof(b.workers), "%d",
		 ncpu < 1     ? 1
		 : ncpu > 256 ? 256
			      : (int)ncpu);
	b.have_prism = find_prog("es_humanoid", PRISM_BENCH_ES_HUMANOID, b.humanoid,
				 sizeof(b.humanoid));
	b.have_mpi = find_prog("es_mpi", PRISM_BENCH_ES_MPI, b.mpi, sizeof(b.mpi)) &&
		     find_in_path(PRISM_BENCH_MPIEXEC, b.mpiexec, sizeof(b.mpiexec));
	bench_report_header(o, SUITE,
			    "evolution strategies on the MuJoCo humanoid: prism vs MPI");
	if (!b.have_prism)
		bench_report_skip(o, SUITE, "prism_timesteps_per_s",
				  "es_humanoid is not built: MuJoCo was not found (Debian: "
				  "libmujoco-dev libmujoco-samples; make deps)");
	if (!b.have_mpi)
		bench_report_skip(
			o, SUITE, "mpi_timesteps_per_s",
			"es_mpi or mpirun is missing: OpenMPI or MuJoCo was not found "
			"(Debian: libopenmpi-dev openmpi-bin; make deps)");
	if (!b.have_prism && !b.have_mpi)
		return 0;
	if (rounds > MAX_ROUNDS)
		rounds = MAX_ROUNDS;
	bench_note(o,
		   "  %d round(s), %s workers/ranks, budget %s timesteps, %s pairs/gen, "
		   "episodes <= %s steps, %s-float noise table",
		   rounds, b.workers, b.s->timesteps, b.s->pairs, b.s->max_steps,
		   b.s->noise_floats);
	/* OpenMPI refuses root, and more ranks than cores, unless told. */
	setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
	setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
	if (!(b.out = malloc(OUT_MAX)))
		return 1;
	int rc = run_rounds(&b, rounds);
	free(b.out);
	return rc;
}
