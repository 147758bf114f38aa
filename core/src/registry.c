/* registry.c — remote functions by name.
 *
 * PRISM_REMOTE registers from constructors, before main() and before any other prism
 * call, so the table is a fixed array filled without allocation.  A worker finds a
 * function by the 64-bit FNV-1a hash of its name that travels in each task; two names
 * with the same hash are refused at registration, so the hash is as good as the name.
 * Thread safety: registration happens before threads exist (constructors) or from the
 * single thread that uses prism; lookups only read.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "rt.h"

#define MAX_FNS 4096 /* a power of two: open addressing by hash */

static struct rt_fn table[MAX_FNS];
static unsigned count;

int prism_register(const char *name, prism_fn fn, int nargs)
{
	if (!name || !*name || !fn || nargs < -1 || nargs > 65535)
		return -EINVAL;
	if (count >= MAX_FNS / 2) {
		PRISM_LOG_E("registry", "more than %d remote functions; '%s' not registered",
			    MAX_FNS / 2, name);
		return -ENOSPC;
	}
	uint64_t h = sched_fn_hash(name);
	for (unsigned i = (unsigned)h & (MAX_FNS - 1);; i = (i + 1) & (MAX_FNS - 1)) {
		struct rt_fn *e = &table[i];
		if (!e->name) {
			*e = (struct rt_fn){.name = name, .hash = h, .fn = fn, .nargs = nargs};
			count++;
			return 0;
		}
		if (e->hash == h) {
			if (strcmp(e->name, name) == 0 && e->fn == fn && e->nargs == nargs)
				return 0; /* the same registration again (a library loaded twice) */
			PRISM_LOG_E("registry", "cannot register '%s': '%s' is registered %s",
				    name, e->name,
				    strcmp(e->name, name) == 0 ? "under that name already"
							       : "with the same name hash");
			return -EEXIST;
		}
	}
}

const struct rt_fn *rt_fn_by_hash(uint64_t h)
{
	for (unsigned i = (unsigned)h & (MAX_FNS - 1);; i = (i + 1) & (MAX_FNS - 1)) {
		if (!table[i].name)
			return NULL;
		if (table[i].hash == h)
			return &table[i];
	}
}

struct rt_fn *rt_fn_stats(uint64_t h)
{
	return (struct rt_fn *)rt_fn_by_hash(h);
}

const struct rt_fn *rt_fn_by_name(const char *name)
{
	const struct rt_fn *f = rt_fn_by_hash(sched_fn_hash(name));
	return f && strcmp(f->name, name) == 0 ? f : NULL;
}

/* Load every library on a ':'-separated path; their PRISM_REMOTE constructors register
 * their functions.  The libraries stay loaded for the life of the process. */
int rt_load_code_path(const char *path)
{
	char buf[4096];
	if (!path || !*path)
		return 0;
	if (strlen(path) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, path);
	for (char *save = NULL, *p = strtok_r(buf, ":", &save); p;
	     p = strtok_r(NULL, ":", &save)) {
		if (!dlopen(p, RTLD_NOW | RTLD_GLOBAL)) {
			rt_set_error("cannot load code path library %s: %s", p, dlerror());
			return -ENOENT;
		}
	}
	return 0;
}
