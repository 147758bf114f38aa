/* threads.h — for tests: the threads of a process as /proc shows them, with their
 * scheduling policy and the CPUs they may run on.  Header-only. */
#ifndef PRISM_TESTS_THREADS_H
#define PRISM_TESTS_THREADS_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct proc_thread {
	int tid;
	long policy;   /* SCHED_OTHER, SCHED_FIFO, SCHED_IDLE, ... (-1: unread) */
	char cpus[64]; /* Cpus_allowed_list, e.g. "1" or "0-1" */
};

/* The threads of process pid (0: this one), at most max; returns how many, or -1 when
 * the process is gone. */
static inline int proc_threads(int pid, struct proc_thread *t, int max)
{
	char dir[64];
	if (pid)
		snprintf(dir, sizeof(dir), "/proc/%d/task", pid);
	else
		snprintf(dir, sizeof(dir), "/proc/self/task");
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while (n < max && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[400], buf[1024];
		struct proc_thread *p = &t[n];
		*p = (struct proc_thread){.tid = atoi(e->d_name), .policy = -1};
		snprintf(path, sizeof(path), "%s/%s/stat", dir, e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue; /* ended meanwhile */
		size_t len = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[len] = '\0';
		/* After the ")" that ends the name come fields 3 on; the policy is field 41. */
		char *s = strrchr(buf, ')');
		int field = 2;
		for (char *tok = s ? strtok(s + 1, " ") : NULL; tok; tok = strtok(NULL, " "))
			if (++field == 41)
				p->policy = strtol(tok, NULL, 10);
		snprintf(path, sizeof(path), "%s/%s/status", dir, e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		while (fgets(buf, sizeof(buf), f))
			if (sscanf(buf, "Cpus_allowed_list: %63s", p->cpus) == 1)
				break;
		fclose(f);
		n++;
	}
	closedir(d);
	return n;
}

#endif
