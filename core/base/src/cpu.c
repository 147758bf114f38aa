/* cpu.c — keepers: a SCHED_IDLE spinner that keeps a CPU from halting; see base/cpu.h. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "base/alloc.h"
#include "base/cpu.h"

struct prism_cpu_keeper {
	pthread_t thread;
	atomic_int stop;
};

static void *keep(void *arg)
{
	prism_cpu_keeper *k = arg;
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
	/* Pinned from its start, and SCHED_OTHER, not the creator's policy (a thread made
	 * by a SCHED_FIFO one would spin at SCHED_FIFO).  glibc takes no SCHED_IDLE in the
	 * attributes: the creator lowers it right after, so it spins at most a moment as
	 * an ordinary thread. */
	pthread_attr_t attr;
	struct sched_param sp = {0};
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	pthread_attr_init(&attr);
	pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
	pthread_attr_setschedpolicy(&attr, SCHED_OTHER);
	pthread_attr_setschedparam(&attr, &sp);
	pthread_attr_setaffinity_np(&attr, sizeof(one), &one);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	int rc = pthread_create(&k->thread, &attr, keep, k);
	pthread_attr_destroy(&attr);
	if (rc == 0 && (rc = pthread_setschedparam(k->thread, SCHED_IDLE, &sp)) != 0) {
		atomic_store_explicit(&k->stop, 1, memory_order_relaxed);
		pthread_join(k->thread, NULL);
	}
	if (rc) {
		prism_free(k);
		return -rc;
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
	prism_free(k);
}
