/* objstore/objstore.h — the node's object store, shared by prismd and its clients.
 *
 * What.  prismd formats one region of its shared-memory segment as the store; the daemon
 * and every client (driver, worker) attach to it at whatever address they mapped the
 * segment, and create, write, seal, read and release objects directly, with no message to
 * the daemon per object.  Inside the region everything refers to everything else by
 * offset from the region start.  An object is an immutable byte string named by a 16-byte
 * prism_id; its data is 64-byte aligned.  Space comes from a TLSF allocator (O(1) malloc
 * and free); names from an open-addressing table (linear probing, tombstones).  When a
 * create does not fit, unpinned sealed objects are evicted, least recently used first.
 *
 * Lifecycle.  objstore_create() reserves space and an entry in state CREATED, pinned once
 * by the creator; the creator writes the bytes and calls objstore_seal() (the object
 * becomes SEALED: immutable and visible) or objstore_abort().  Sealing keeps the
 * creator's pin, as in Plasma: the creator drops it with objstore_release() when it no
 * longer reads the data.  objstore_get() pins a sealed object and returns its bytes;
 * objstore_release() unpins.  objstore_delete() frees an object at once, or at its last
 * release when it is pinned; from the delete on, gets do not find it.  Pinned and CREATED
 * objects are never evicted.
 *
 * Ownership.  Pointers returned by create and get point into the region: valid until the
 * matching seal-then-release, abort, or release.  A handle (objstore *) is process-local,
 * owned by the caller, freed with objstore_detach(), which does not touch the region.
 *
 * Clients and pins.  Each attached process has a client slot (0 to 63), chosen by the
 * daemon, unique among live processes.  Every entry holds one pin counter byte per slot
 * (64 bytes per entry), so a pin is one CAS on the counter word of the caller's slot, and
 * when a process dies the daemon calls objstore_release_client(slot): that drops exactly
 * the pins the dead process held, aborts its CREATED objects and deletes the SEALED ones
 * it owns, even if it died in the middle of a get.  The owner is the creator, or the
 * slot objstore_give() handed the object to.  A process may pin one object at most 255 times at once (the 256th get
 * returns PRISM_E_RANGE).  The daemon must not reuse a slot before releasing it.
 *
 * Thread and process safety.  Every function may be called concurrently from any thread
 * of any attached process.  objstore_get(), objstore_release() (unless it is the last
 * release of a deleted object) and objstore_contains() take no lock, allocate nothing and
 * make no system call.  create, seal, abort, delete, release_client and eviction take one
 * process-shared robust mutex in the region.
 *
 * Concurrency protocol.  Each entry has a seqlock `ver` (odd while a writer, under the
 * mutex, changes the entry).  A reader probes the table without the lock, reading each
 * entry between two equal even reads of ver.  Having found its SEALED object at version
 * v, it pins (CAS on its slot's counter) and then re-reads ver: if ver is still v, the pin
 * is good; otherwise it unpins and retries.  A writer about to free an entry (eviction,
 * delete) first makes ver odd and then reads every pin counter; all four steps are
 * sequentially consistent, so either the writer sees the reader's pin (and leaves the
 * object alone) or the reader sees the changed ver (and backs off): an object is never
 * freed between a reader's lookup and its pin, and a reader never returns bytes of
 * another object.  Delete sets DELETING before reading the pins; a release unpins before
 * reading the state; so either delete sees no pins and frees at once, or some releaser
 * sees DELETING and frees under the lock after its unpin.  Entries never move while in
 * use (no backward-shift deletion), so a pinned object's entry stays where it is.
 * A reader that finds an entry odd for longer than a short spin (a preempted or dead
 * writer) takes the mutex once, which waits for the writer or repairs after it.
 *
 * Crash repair.  If a process dies holding the mutex, the next locker gets EOWNERDEAD and
 * repairs before going on: every odd entry is closed (made even; each writer changes an
 * entry's state with one store, so the entry reads as either before or after the
 * operation), entries whose fields are out of range are dropped, and the allocator is
 * rebuilt from the table alone: live objects sorted by address become used blocks and
 * everything between them free blocks, so a half-done split, merge or list unlink, and a
 * block allocated but not yet recorded, all disappear.  Repair allocates nothing.
 *
 * Eviction order.  create and seal advance a shared tick by 2 and stamp the object; a get
 * stamps tick + 1 (newer than anything sealed so far) without writing the tick, so gets do
 * not contend on one cache line.  Victims are the oldest stamps among unpinned SEALED
 * objects in a window of 1,024 table entries after a rotating hand: exact LRU for tables of
 * up to 1,024 entries (max_objects <= 512), sampled LRU above (as Redis samples).  One
 * scan serves up to 16 evictions, and runs past the window only while it has found
 * nothing evictable.
 *
 * Errors: 0 or a negative code (base/error.h).  -EINVAL for bad arguments, -EEXIST for a
 * duplicate create, -ENOENT for an absent object, PRISM_E_AGAIN for an object that exists
 * but is not sealed yet, PRISM_E_TOO_BIG for a size above the capacity,
 * PRISM_E_STORE_FULL when the object does not fit even after evicting everything
 * evictable, PRISM_E_CORRUPT when the region fails a check.  No function crashes on bad
 * arguments, and a region another process scribbled on is met with checks, not trust:
 * header fields, entry offsets and sizes, and allocator links and block sizes are all
 * range-checked before use (only the mutex itself cannot be checked).
 *
 * Measured cost (RelWithDebInfo, gcc 12, one thread on this project's shared 2-vCPU VM;
 * a throwaway loop over N distinct 8-byte objects, spread over several runs):
 *   create + write 8 bytes + seal + release   0.22-0.45 us   (2.2-4.5 M/s)
 *   get + read + release                       0.04-0.06 us   (17-25 M/s), N <= 10,000
 *                                              0.13-0.24 us   (4-7.5 M/s), N = 100,000:
 *                                              the 64 MiB table misses cache and TLB
 *   get + release of one hot object            0.04 us
 * A put is two lock round trips (create, seal; a robust process-shared mutex costs about
 * 18 ns uncontended here) plus one probe each; a get is two lock-free probes (get and
 * release each look the id up) and two CASes.  So the runtime's goals, put_small >=
 * 1,000,000/s and get_small >= 2,000,000/s, are reachable through this API on one core,
 * with at least half of the budget left for the runtime's own work.
 */
#ifndef PRISM_OBJSTORE_H
#define PRISM_OBJSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/id.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OBJSTORE_MAX_CLIENTS 64
#define OBJSTORE_ALIGN 64     /* data alignment of every object */
#define OBJSTORE_MAX_PINS 255 /* pins of one object by one client slot */

typedef struct objstore objstore;

struct objstore_stats {
	uint64_t capacity;    /* largest object an empty store holds */
	uint64_t arena_bytes; /* bytes the allocator manages */
	uint64_t used_bytes;  /* arena bytes held by objects, headers and padding included */
	uint64_t data_bytes;  /* sum of object sizes */
	uint64_t objects;     /* CREATED, SEALED and deleted-but-pinned objects */
	uint64_t max_objects;
	uint64_t evictions; /* since format */
	uint64_t repairs;   /* times a dead lock holder's work was repaired */
};

/* Bytes a region needs for an arena of arena_bytes (rounded down to 64; at least 128) and
 * up to max_objects objects (1 to 2^30); 0 when either is out of range.  The table takes
 * 256 bytes per object (128-byte entries, at most half full). */
size_t objstore_region_size(size_t arena_bytes, uint32_t max_objects);

/* Format a region (daemon, once, before anyone attaches).  region must be 64-byte aligned
 * and hold objstore_region_size() bytes.  Errors: -EINVAL, -errno from pthread. */
int objstore_format(void *region, size_t region_size, size_t arena_bytes, uint32_t max_objects);

/* Attach to a formatted region (every process, the daemon included) as client_slot
 * (< OBJSTORE_MAX_CLIENTS).  Borrows the region, which must stay mapped until detach.
 * Every header field is checked against region_size first.  Errors: -EINVAL,
 * PRISM_E_BAD_MAGIC (not formatted), PRISM_E_BAD_VERSION, PRISM_E_CORRUPT, -ENOMEM. */
int objstore_attach(void *region, size_t region_size, uint32_t client_slot, objstore **out);
/* Free the handle; the region and the objects in it are untouched.  NULL-safe. */
void objstore_detach(objstore *os);

/* Create an object of `size` bytes (0 allowed) in state CREATED, pinned by the caller;
 * *data (valid until seal-then-release or abort) is where the caller writes it.  Evicts if
 * needed.  Errors: -EINVAL (nil id), -EEXIST (the id is live, deleted-but-pinned
 * included), PRISM_E_TOO_BIG, PRISM_E_STORE_FULL (no space, or max_objects live and none
 * evictable). */
int objstore_create(objstore *os, prism_id id, size_t size, void **data);
/* CREATED -> SEALED; the creator keeps its pin.  Errors: -ENOENT, -EPERM (another slot
 * created it), -EINVAL (not CREATED). */
int objstore_seal(objstore *os, prism_id id);
/* Free a CREATED object of the caller's.  Errors: -ENOENT, -EPERM, -EINVAL (not CREATED). */
int objstore_abort(objstore *os, prism_id id);

/* Pin a sealed object: *data and *size stay valid until objstore_release().
 * Errors: -ENOENT (absent or deleted), PRISM_E_AGAIN (not sealed yet; or, rarely, a
 * writer kept the entry busy through every retry), PRISM_E_RANGE (255 pins already),
 * PRISM_E_CORRUPT. */
int objstore_get(objstore *os, prism_id id, const void **data, size_t *size);
/* Drop one of the caller's pins (from get, or the creator's after seal).  Errors: -ENOENT,
 * PRISM_E_RELEASED (this slot holds no pin on it), -EINVAL (CREATED: seal or abort it). */
int objstore_release(objstore *os, prism_id id);
/* Delete a sealed object: freed now, or by the last release if pinned.  Errors: -ENOENT
 * (absent or already deleted), PRISM_E_AGAIN (still CREATED). */
int objstore_delete(objstore *os, prism_id id);
/* True when a sealed, undeleted object has this id.  Lock-free. */
bool objstore_contains(objstore *os, prism_id id);
/* Hand one of the caller's pins on a SEALED object, and its ownership, to client slot
 * to_slot: the object is pinned for to_slot, then unpinned for the caller, so it is never
 * unpinned in between (a worker passes a large result to its owner this way).  The caller must hold
 * a pin.  -EINVAL (not sealed, or a bad slot), PRISM_E_RELEASED (the caller held no pin),
 * PRISM_E_RANGE (to_slot's pin count is full). */
int objstore_give(objstore *os, prism_id id, uint32_t to_slot);

/* Daemon, when the process in client_slot died: drop every pin of that slot, abort the
 * slot's CREATED objects and delete the SEALED objects it owns (freed at once, or by the
 * last reader's release); deleted objects whose last pin this was are freed.  Costs one
 * pass over the table under the lock.  Errors: -EINVAL. */
int objstore_release_client(objstore *os, uint32_t client_slot);

/* Counters, read without the lock (each exact, together a near snapshot). */
int objstore_get_stats(objstore *os, struct objstore_stats *out);

/* Check every invariant under the lock: entries, allocator lists and chain, that live
 * objects and used blocks match one to one without overlap, counters.  O(table + blocks);
 * for tests and `prism status --check`.  0 or PRISM_E_CORRUPT (the reason is logged). */
int objstore_verify(objstore *os);

#ifdef __cplusplus
}
#endif
#endif
