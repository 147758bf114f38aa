/* suites.h — the table of prism-bench suites.  A suite returns 0, or non-zero when it
 * could not run (its reason printed on stderr). */
#ifndef PRISM_BENCH_SUITES_H
#define PRISM_BENCH_SUITES_H

#include <stdbool.h>

#include "base/hist.h"
#include "report.h"

int bench_ring(const struct bench_opts *o);
int bench_tasks(const struct bench_opts *o);
int bench_tasks_client(const char *addr, double seconds);
int bench_actors(const struct bench_opts *o);
int bench_actors_client(const char *addr, double seconds);
int bench_transport(const struct bench_opts *o);
int bench_gcs(const struct bench_opts *o);
int bench_cluster(const struct bench_opts *o);
/* bench_cluster_tasks.c: remote_task_sync and tasks_async_3nodes on a three-node
 * cluster. */
int bench_cluster_tasks(const struct bench_opts *o);
/* bench_es.c: examples/es_humanoid against bench/peers/es_mpi.c, run as programs. */
int bench_es(const struct bench_opts *o);
/* bench_cluster_sim.c: cluster/sim_100_nodes, the global scheduler simulated. */
int bench_cluster_sim(const struct bench_opts *o);
/* bench_control.c: the control loop (issue 8); the child is its ES load process (this
 * binary run again), entered from main() before anything else. */
int bench_control(const struct bench_opts *o);
void bench_control_child(int argc, char **argv);
/* bench_transport.c: the raw TCP floor (64 B round trips into h, or 1 MiB GB/s). */
int bench_raw_tcp(const struct bench_opts *o, bool bw, prism_hist *h, double *gbs);

#endif
