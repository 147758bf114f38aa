/* cpu.c — keepers: a SCHED_IDLE spinner that keeps a CPU from halting; see base/cpu.h. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "base/alloc.h"
#include "base/cpu.h"

struct prism_cpu_keeper {
	pthread_t thread;
	int cpu;
	atomic_int stop;
	/* Start-up: the thread reports whether it could pin itself and go SCHED_IDLE. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int started; /* 0 = not yet, 1 = running, < 0 = -errno */
};

static void report(prism_cpu_keeper *k, int v)
{
	pthread_mutex_lock(&k->mu);
	k->started = v;
	pthread_cond_signal(&k->cv);
	pthread_mutex_unlock(&k->mu);
}

static void *keep(void *arg)
{
	prism_cpu_keeper *k = arg;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(k->cpu, &set);
	struct sched_param sp = {0};
	int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (rc == 0)
		rc = pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
	report(k, rc ? -rc : 1);
	if (rc)
		return NULL;
	/* The pause hint keeps a sibling hyper-thread's share and the power draw down. */
	while (!atomic_load_explicit(&k->stop, memory_order_relaxed))
		for (int i = 0; i < 64; i++)
			prism_cpu_relax();
	return NULL;
}

int prism_cpu_keeper_start(int cpu, prism_cpu_keeper **out)
{
	*out = NULL;
	cpu_set_t allowed;
	if (cpu < 0 || cpu >= CPU_SETSIZE ||
	    sched_getaffinity(0, sizeof(allowed), &allowed) != 0 || !CPU_ISSET(cpu, &allowed))
		return -EINVAL;
	prism_cpu_keeper *k = prism_calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->cpu = cpu;
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
	/* Not the creator's policy: a thread made by a SCHED_FIFO one would spin at
	 * SCHED_FIFO until it lowers itself. */
	pthread_attr_t attr;
	struct sched_param sp = {0};
	pthread_attr_init(&attr);
	pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
	pthread_attr_setschedpolicy(&attr, SCHED_OTHER);
	pthread_attr_setschedparam(&attr, &sp);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	int rc = pthread_create(&k->thread, &attr, keep, k);
	pthread_attr_destroy(&attr);
	if (rc) {
		pthread_cond_destroy(&k->cv);
		pthread_mutex_destroy(&k->mu);
		prism_free(k);
		return -rc;
	}
	pthread_mutex_lock(&k->mu);
	while (k->started == 0)
		pthread_cond_wait(&k->cv, &k->mu);
	rc = k->started < 0 ? k->started : 0;
	pthread_mutex_unlock(&k->mu);
	if (rc) {
		pthread_join(k->thread, NULL);
		pthread_cond_destroy(&k->cv);
		pthread_mutex_destroy(&k->mu);
		prism_free(k);
		return rc;
	}
	*out = k;
	return 0;
}

void prism_cpu_keeper_stop(prism_cpu_keeper *k)
{
	if (!k)
		return;
	atomic_store_explicit(&k->stop, 1, memory_order_relaxed);
	pthread_join(k->thread, NULL);
	pthread_cond_destroy(&k->cv);
	pthread_mutex_destroy(&k->mu);
	prism_free(k);
}
