/* report.c — table and JSON output for prism-bench; see report.h. */
#include <math.h>
#include <sched.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "report.h"

static void json_extra(FILE *f, const struct bench_field *extra, int nextra)
{
	for (int i = 0; i < nextra; i++) {
		if (extra[i].str)
			fprintf(f, ",\"%s\":\"%s\"", extra[i].name, extra[i].str);
		else if (isfinite(extra[i].num))
			fprintf(f, ",\"%s\":%.6g", extra[i].name, extra[i].num);
		else
			fprintf(f, ",\"%s\":null", extra[i].name);
	}
}

static void table_extra(const struct bench_field *extra, int nextra)
{
	for (int i = 0; i < nextra; i++) {
		if (extra[i].str)
			printf("  %s=%s", extra[i].name, extra[i].str);
		else
			printf("  %s=%.4g", extra[i].name, extra[i].num);
	}
}

static void json_latency(FILE *f, const char *suite, const char *name,
			 const prism_hist_summary *s, const struct bench_field *extra,
			 int nextra)
{
	fprintf(f,
		"{\"suite\":\"%s\",\"case\":\"%s\",\"unit\":\"us\",\"n\":%llu,"
		"\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,\"mean\":%.3f",
		suite, name, (unsigned long long)s->count, s->p50 / 1e3, s->p99 / 1e3,
		s->p999 / 1e3, s->max / 1e3, s->mean / 1e3);
	json_extra(f, extra, nextra);
	fprintf(f, "}\n");
	fflush(f);
}

static void json_value(FILE *f, const char *suite, const char *name, const char *unit,
		       double value, const struct bench_field *extra, int nextra)
{
	fprintf(f, "{\"suite\":\"%s\",\"case\":\"%s\",\"unit\":\"%s\",\"value\":%.6g", suite,
		name, unit, value);
	json_extra(f, extra, nextra);
	fprintf(f, "}\n");
	fflush(f);
}

void bench_report_header(const struct bench_opts *o, const char *suite, const char *about)
{
	if (o->json)
		return;
	printf("\n== %s: %s\n", suite, about);
	printf("%-28s %10s %9s %9s %9s %9s %9s\n", "case", "n", "p50", "p99", "p99.9", "max",
	       "unit");
}

void bench_report_latency(const struct bench_opts *o, const char *suite, const char *name,
			  const prism_hist *ns, const struct bench_field *extra, int nextra)
{
	prism_hist_summary s;
	prism_hist_summarize(ns, &s);
	if (o->json_file)
		json_latency(o->json_file, suite, name, &s, extra, nextra);
	if (o->json) {
		json_latency(stdout, suite, name, &s, extra, nextra);
		return;
	}
	printf("%-28s %10llu %9.2f %9.2f %9.2f %9.1f %9s", name, (unsigned long long)s.count,
	       s.p50 / 1e3, s.p99 / 1e3, s.p999 / 1e3, s.max / 1e3, "us");
	table_extra(extra, nextra);
	printf("\n");
	fflush(stdout);
}

void bench_report_value(const struct bench_opts *o, const char *suite, const char *name,
			const char *unit, double value, const struct bench_field *extra,
			int nextra)
{
	if (o->json_file)
		json_value(o->json_file, suite, name, unit, value, extra, nextra);
	if (o->json) {
		json_value(stdout, suite, name, unit, value, extra, nextra);
		return;
	}
	printf("%-28s %10s %9.4g %39s %9s", name, "", value, "", unit);
	table_extra(extra, nextra);
	printf("\n");
	fflush(stdout);
}

static void json_skip(FILE *f, const char *suite, const char *name, const char *reason)
{
	fprintf(f, "{\"suite\":\"%s\",\"case\":\"%s\",\"skipped\":true,\"reason\":\"%s\"}\n",
		suite, name, reason);
	fflush(f);
}

void bench_report_skip(const struct bench_opts *o, const char *suite, const char *name,
		       const char *reason)
{
	if (o->json_file)
		json_skip(o->json_file, suite, name, reason);
	if (o->json) {
		json_skip(stdout, suite, name, reason);
		return;
	}
	printf("%-28s %10s   skipped: %s\n", name, "", reason);
	fflush(stdout);
}

void bench_note(const struct bench_opts *o, const char *fmt, ...)
{
	if (o->json)
		return;
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

double bench_median(double *v, int n)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
			double t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double bench_run_clients(const char *flag, int clients, double seconds)
{
	char exe[4096], secs[32];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0 || clients > 8)
		return -1;
	exe[n] = '\0';
	snprintf(secs, sizeof(secs), "%.3f", seconds);
	pid_t pids[8];
	int fds[8], started = 0;
	extern char **environ;
	for (; started < clients; started++) {
		int p[2];
		if (pipe(p) != 0)
			break;
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, p[1], 1);
		posix_spawn_file_actions_addclose(&fa, p[0]);
		char *argv[] = {exe, (char *)flag, (char *)prism_node_address(), secs, NULL};
		int rc = posix_spawn(&pids[started], exe, &fa, NULL, argv, environ);
		posix_spawn_file_actions_destroy(&fa);
		close(p[1]);
		if (rc != 0) {
			close(p[0]);
			break;
		}
		fds[started] = p[0];
	}
	double total = 0;
	bool ok = started == clients;
	for (int c = 0; c < started; c++) {
		char buf[128] = {0};
		ssize_t got = read(fds[c], buf, sizeof(buf) - 1);
		long count = 0;
		unsigned long long ns = 0;
		close(fds[c]);
		int st = 0;
		waitpid(pids[c], &st, 0);
		if (got <= 0 || sscanf(buf, "%ld %llu", &count, &ns) != 2 || ns == 0 ||
		    !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "prism-bench: client %d (%s) failed\n", c, flag);
			ok = false;
			continue;
		}
		total += (double)count / ((double)ns / 1e9);
	}
	return ok ? total : -1;
}

static int call_failed(const char *suite, const char *what, int rc)
{
	fprintf(stderr, "prism-bench %s: %s: %s (%s)\n", suite, what, prism_strerror(rc),
		prism_last_error());
	return 1;
}

int bench_sync_rounds(const char *suite, bench_call_fn call, void *arg, int n, prism_hist *h)
{
	for (int i = 0; i < n; i++) {
		prism_ref r;
		const void *v;
		size_t len;
		uint64_t t0 = prism_cycles();
		int rc = call(arg, i, &r);
		if (rc)
			return call_failed(suite, "call", rc);
		rc = prism_get(r, 10 * (int64_t)PRISM_NS_PER_SEC, &v, &len);
		uint64_t dt = prism_cycles() - t0;
		prism_ref_release(r);
		if (rc)
			return call_failed(suite, "get", rc);
		if (h)
			prism_hist_record(h, prism_cycles_to_ns(dt));
	}
	return 0;
}

double bench_async_window(const char *suite, bench_call_fn call, void *arg, long n, int window)
{
	prism_ref *ring = malloc((size_t)window * sizeof(*ring));
	if (!ring)
		return -1;
	long sent = 0, got = 0;
	int rc = 0;
	uint64_t t0 = prism_now_ns();
	while (got < n && rc == 0) {
		while (sent < n && sent - got < window && rc == 0)
			if ((rc = call(arg, sent, &ring[sent % window])) == 0)
				sent++;
			else
				call_failed(suite, "call", rc);
		if (rc)
			break;
		const void *v;
		size_t len;
		rc = prism_get(ring[got % window], 30 * (int64_t)PRISM_NS_PER_SEC, &v, &len);
		if (rc) {
			call_failed(suite, "get", rc);
			break;
		}
		prism_ref_release(ring[got % window]);
		got++;
	}
	for (long i = got; i < sent; i++)
		prism_ref_release(ring[i % window]);
	double secs = (double)(prism_now_ns() - t0) / 1e9;
	free(ring);
	return rc ? -1 : (double)n / secs;
}

void bench_pin_cpu(int cpu)
{
	cpu_set_t set;
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}
