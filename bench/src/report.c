/* report.c — table and JSON output for prism-bench; see report.h. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

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
