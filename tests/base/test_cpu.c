/* The CPU keeper: a SCHED_IDLE thread pinned to its CPU that runs while nothing else
 * wants the CPU, gives it up to any other thread, and is gone once stopped. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/cpu.h"
#include "../common/threads.h"

/* A CPU this process may run on. */
static int some_cpu(void)
{
	cpu_set_t set;
	cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set))
			return c;
	cr_assert_fail("no CPU");
	return -1;
}

/* The threads of this process at SCHED_IDLE, and the last one. */
static int idle_threads(struct proc_thread *last)
{
	struct proc_thread t[64];
	int n = proc_threads(0, t, 64), idle = 0;
	cr_assert_gt(n, 0);
	for (int i = 0; i < n; i++)
		if (t[i].policy == SCHED_IDLE) {
			idle++;
			*last = t[i];
		}
	return idle;
}

/* A thread's time on a CPU so far (ns), from schedstat. */
static uint64_t cpu_ns(int tid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", tid);
	FILE *f = fopen(path, "r");
	cr_assert(f, "%s: %s", path, strerror(errno));
	unsigned long long ns = 0;
	cr_assert_eq(fscanf(f, "%llu", &ns), 1);
	fclose(f);
	return ns;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

Test(cpu_keeper, runs_pinned_at_sched_idle_and_stops)
{
	int cpu = some_cpu();
	struct proc_thread k_thread;
	cr_assert_eq(idle_threads(&k_thread), 0);
	prism_cpu_keeper *k;
	cr_assert_eq(prism_cpu_keeper_start(cpu, &k), 0);
	cr_assert_eq(idle_threads(&k_thread), 1, "one SCHED_IDLE thread");
	char want[16];
	snprintf(want, sizeof(want), "%d", cpu);
	cr_assert_str_eq(k_thread.cpus, want, "pinned to its CPU");
	int tid = k_thread.tid;
	/* It runs: while this thread sleeps, it gets CPU time. */
	uint64_t t0 = cpu_ns(tid);
	sleep_ms(100);
	cr_assert_gt(cpu_ns(tid), t0, "the keeper spins");
	prism_cpu_keeper_stop(k);
	cr_assert_eq(idle_threads(&k_thread), 0, "stopped and joined");
	prism_cpu_keeper_stop(NULL);
}

static atomic_int busy_stop;
static atomic_int busy_tid;

static void *busy(void *arg)
{
	int cpu = *(int *)arg;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	atomic_store(&busy_tid, gettid());
	while (!atomic_load_explicit(&busy_stop, memory_order_relaxed))
		;
	return NULL;
}

Test(cpu_keeper, gives_way_to_any_other_thread)
{
	int cpu = some_cpu();
	struct proc_thread k_thread;
	prism_cpu_keeper *k;
	cr_assert_eq(prism_cpu_keeper_start(cpu, &k), 0);
	cr_assert_eq(idle_threads(&k_thread), 1);
	int tid = k_thread.tid;
	pthread_t b;
	cr_assert_eq(pthread_create(&b, NULL, busy, &cpu), 0);
	while (!atomic_load(&busy_tid))
		sleep_ms(1);
	sleep_ms(20);
	uint64_t k0 = cpu_ns(tid), b0 = cpu_ns(atomic_load(&busy_tid));
	sleep_ms(300);
	uint64_t kt = cpu_ns(tid) - k0, bt = cpu_ns(atomic_load(&busy_tid)) - b0;
	atomic_store(&busy_stop, 1);
	pthread_join(b, NULL);
	prism_cpu_keeper_stop(k);
	/* SCHED_IDLE against a nice-0 thread: weights 3 and 1024, so ~0.3 %; whatever else
	 * runs on the CPU shrinks both alike. */
	cr_assert(bt > 0 && kt * 20 < bt,
		  "a SCHED_OTHER thread on the CPU got %llu ns, the keeper %llu ns",
		  (unsigned long long)bt, (unsigned long long)kt);
}

Test(cpu_keeper, refuses_cpus_it_may_not_use)
{
	prism_cpu_keeper *k = (prism_cpu_keeper *)1;
	cr_assert_eq(prism_cpu_keeper_start(-1, &k), -EINVAL);
	cr_assert_null(k);
	cr_assert_eq(prism_cpu_keeper_start(CPU_SETSIZE, &k), -EINVAL);
	cpu_set_t all, one;
	cr_assert_eq(sched_getaffinity(0, sizeof(all), &all), 0);
	if (CPU_COUNT(&all) < 2)
		cr_skip("one CPU: no CPU outside this thread's set to try");
	int cpu = some_cpu(), other = -1;
	for (int c = cpu + 1; c < CPU_SETSIZE && other < 0; c++)
		if (CPU_ISSET(c, &all))
			other = c;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0);
	cr_assert_eq(prism_cpu_keeper_start(other, &k), -EINVAL);
	cr_assert_eq(sched_setaffinity(0, sizeof(all), &all), 0);
}
