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
/* A line of commentary: printed in table mode, omitted from JSON. */
void bench_note(const struct bench_opts *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The median of v[0..n) (sorts v). */
double bench_median(double *v, int n);
/* Run this binary again `clients` times as `exe flag ADDRESS SECONDS` (extra drivers on
 * this process's node), each printing "COUNT NS" on stdout; the sum of their rates
 * (COUNT per second), or < 0 when one failed. */
double bench_run_clients(const char *flag, int clients, double seconds);

#endif
