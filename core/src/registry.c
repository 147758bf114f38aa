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

#include "base/alloc.h"
#include "base/log.h"
#include "rt.h"

#define MAX_FNS 4096 /* a power of two: open addressing by hash */

static struct rt_fn table[MAX_FNS];
static unsigned count;

/* Add e under e->name.  0, or -EEXIST / -ENOSPC. */
static int add(const struct rt_fn *e, struct rt_fn **out)
{
	if (count >= MAX_FNS / 2) {
		PRISM_LOG_E("registry",
			    "more than %d remote functions and classes; '%s' not "
			    "registered",
			    MAX_FNS / 2, e->name);
		return -ENOSPC;
	}
	uint64_t h = e->hash;
	for (unsigned i = (unsigned)h & (MAX_FNS - 1);; i = (i + 1) & (MAX_FNS - 1)) {
		struct rt_fn *t = &table[i];
		if (!t->name) {
			*t = *e;
			count++;
			if (out)
				*out = t;
			return 0;
		}
		if (t->hash == h) {
			if (strcmp(t->name, e->name) == 0 && t->kind == e->kind &&
			    t->fn == e->fn && t->nargs == e->nargs && t->ctor == e->ctor &&
			    t->method == e->method) {
				if (out)
					*out = t;
				return 0; /* the same registration again (a library loaded twice) */
			}
			PRISM_LOG_E("registry", "cannot register '%s': '%s' is registered %s",
				    e->name, t->name,
				    strcmp(t->name, e->name) == 0 ? "under that name already"
								  : "with the same name hash");
			return -EEXIST;
		}
	}
}

int prism_register(const char *name, prism_fn fn, int nargs)
{
	if (!name || !*name || !fn || nargs < -1 || nargs > 65535)
		return -EINVAL;
	struct rt_fn e = {.name = name, .hash = sched_fn_hash(name), .fn = fn, .nargs = nargs};
	return add(&e, NULL);
}

int prism_register_actor(const char *cls, prism_actor_ctor ctor, prism_actor_dtor dtor)
{
	if (!cls || !*cls || !ctor || strchr(cls, '.'))
		return -EINVAL;
	struct rt_fn e = {.name = cls,
			  .hash = sched_fn_hash(cls),
			  .kind = RT_CLASS,
			  .nargs = -1,
			  .ctor = ctor,
			  .dtor = dtor};
	return add(&e, NULL);
}

static struct rt_fn *class_entry(const char *cls)
{
	struct rt_fn *c = (struct rt_fn *)rt_fn_by_name(cls);
	return c && c->kind == RT_CLASS ? c : NULL;
}

int prism_register_method(const char *cls, const char *method, prism_method fn)
{
	if (!cls || !method || !*method || !fn)
		return -EINVAL;
	struct rt_fn *c = class_entry(cls);
	if (!c) {
		PRISM_LOG_E("registry", "method %s of class %s: the class is not registered",
			    method, cls);
		return -ENOENT;
	}
	size_t len = strlen(cls) + 1 + strlen(method) + 1;
	char *full = prism_malloc(len); /* lives as long as the process */
	if (!full)
		return -ENOMEM;
	snprintf(full, len, "%s.%s", cls, method);
	struct rt_fn e = {.name = full,
			  .hash = sched_fn_hash(full),
			  .kind = RT_METHOD,
			  .nargs = -1,
			  .method = fn,
			  .cls = c};
	struct rt_fn *t = NULL;
	int rc = add(&e, &t);
	if (rc || t->name != full)
		prism_free(full); /* refused, or registered before under its own copy */
	return rc;
}

int prism_register_checkpoint(const char *cls, prism_actor_save save,
			      prism_actor_restore restore)
{
	struct rt_fn *c = cls ? class_entry(cls) : NULL;
	if (!c || !save || !restore)
		return c ? -EINVAL : -ENOENT;
	c->save = save;
	c->restore = restore;
	return 0;
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
