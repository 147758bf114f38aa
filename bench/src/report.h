/* report.h — how every prism-bench suite prints its results.
 *
 * One format for all suites (../shared/BENCHMARKS.md): a readable table by default, and
 * with --json one JSON object per line with the fields suite, case, unit, then value or
 * n/p50/p99/p999/max, plus extras.  Latencies are recorded in nanoseconds and printed in
 * microseconds.  Not thread-safe: suites report from their main thread.
 */
#ifndef PRISM_BENCH_REPORT_H
#define PRISM_BENCH_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/hist.h"
#include "prism.h"

struct bench_opts {
	bool json;
	FILE *json_file; /* also write the JSON lines here (--json-file), or NULL */
	bool quick;      /* fewer iterations: the demo and smoke tests */
	int rounds;      /* interleaved rounds per suite; 0 = the suite's default */
};

/* An extra field: a name and a number, or a name and a string when str is set. */
struct bench_field {
	const char *name;
	double num;
	const char *str;
};

void bench_report_header(const struct bench_opts *o, const char *suite, const char *about);
/* A latency case from a histogram of nanoseconds. */
void bench_report_latency(const struct bench_opts *o, const char *suite, const char *name,
			  const prism_hist *ns, const struct bench_field *extra, int nextra);
/* A single-number case (ops/s, GB/s, ratio...). */
void bench_report_value(const struct bench_opts *o, const char *suite, const char *name,
			const char *unit, double value, const struct bench_field *extra,
			int nextra);
/* A case that could not run here (no such device...): a table line saying why, and in
 * JSON {"suite":..,"case":..,"skipped":true,"reason":..}, with no value. */
void bench_report_skip(const struct bench_opts *o, const char *suite, const char *name,
		       const char *reason);
/* A line of commentary: printed in table mode, omitted from JSON. */
void bench_note(const struct bench_opts *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* One call of the operation a suite measures (a task submit, an actor call): the i-th,
 * its ref to *out; 0 or a negative code. */
typedef int (*bench_call_fn)(void *arg, long i, prism_ref *out);
/* n round trips (call, get, release), each recorded in h (NULL: warm-up).  0, or 1
 * after printing why. */
int bench_sync_rounds(const char *suite, bench_call_fn call, void *arg, int n, prism_hist *h);
/* n calls with at most `window` in flight; the rate (ops/s), or < 0 after printing why. */
double bench_async_window(const char *suite, bench_call_fn call, void *arg, long n, int window);

/* The median of v[0..n) (sorts v). */
double bench_median(double *v, int n);
/* Run this binary again `clients` times as `exe flag ADDRESS SECONDS` (extra drivers on
 * this process's node), each printing "COUNT NS" on stdout; the sum of their rates
 * (COUNT per second), or < 0 when one failed. */
double bench_run_clients(const char *flag, int clients, double seconds);

/* Pin the calling process to one CPU (a no-op on a single-CPU machine), so a spinning
 * pair never shares a core. */
void bench_pin_cpu(int cpu);

#endif
