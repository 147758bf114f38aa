#!/usr/bin/python3
"""Dask peer of `prism-bench actors`: the same cases, measured on the same machine.

A LocalCluster with one single-threaded worker process per CPU, as prism runs one worker
process per CPU; actors are dask.distributed actors (Client.submit(cls, actor=True)),
whose method calls go from the client straight to the actor's worker.  Cases and JSON
fields follow ../../shared/BENCHMARKS.md, with "peer": "dask" added:
  1_1_actor_calls_sync    one caller, one actor: call a no-op method and wait, repeatedly (us)
  1_1_actor_calls_async   one caller, one actor: calls in batches of WINDOW in flight, each
                          batch awaited before the next, as Ray's microbenchmark (ops/s)
  n_n_actor_calls_async   one actor per CPU (one per worker), the client's calls spread over
                          them round robin, in batches of WINDOW (ops/s)
Every wait has a timeout, so a stuck cluster fails the run instead of hanging it.
Usage: dask_actors.py [--quick] [--json]
"""
import os
import sys
import time

from dask.distributed import Client, LocalCluster

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from peerlib import percentile, report  # noqa: E402

TIMEOUT_S = 60  # for any one wait
WINDOW = 1000  # calls in flight at once, as prism-bench


class Noop:
    def noop(self):
        return None


def make_actors(client, workers):
    """One Noop actor on each of the given worker addresses."""
    futures = [client.submit(Noop, actor=True, workers=[w], pure=False) for w in workers]
    return [f.result(timeout=TIMEOUT_S) for f in futures]


def calls_sync(actor, n):
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        actor.noop().result(timeout=TIMEOUT_S)
        lat.append((time.perf_counter() - t0) * 1e6)
    lat.sort()
    return dict(n=n, p50=round(percentile(lat, 50), 1), p99=round(percentile(lat, 99), 1),
                p999=round(percentile(lat, 99.9), 1), max=round(lat[-1], 1))


def calls_async(actors, n):
    """n calls spread round robin over the actors, WINDOW at a time in flight: ops/s."""
    t0 = time.perf_counter()
    for start in range(0, n, WINDOW):
        futures = [actors[i % len(actors)].noop() for i in range(start, min(n, start + WINDOW))]
        for f in futures:
            f.result(timeout=TIMEOUT_S)
    return dict(value=round(n / (time.perf_counter() - t0), 1), n=n)


def run(client, ncpu, quick, as_json):
    workers = sorted(client.scheduler_info()["workers"])
    actors = make_actors(client, workers[:ncpu])
    for _ in range(50):  # warm-up: connections open, code paths hot
        actors[0].noop().result(timeout=TIMEOUT_S)
    calls_async(actors, 200)

    report(as_json, "actors", "1_1_actor_calls_sync", "us",
           **calls_sync(actors[0], 200 if quick else 2000))
    n = 1000 if quick else 10000
    report(as_json, "actors", "1_1_actor_calls_async", "ops/s", **calls_async(actors[:1], n))
    report(as_json, "actors", "n_n_actor_calls_async", "ops/s", **calls_async(actors, n),
           actors=len(actors), callers=1)


def main():
    quick = "--quick" in sys.argv
    as_json = "--json" in sys.argv
    ncpu = len(os.sched_getaffinity(0))
    cluster = LocalCluster(n_workers=ncpu, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    try:
        client.wait_for_workers(ncpu, timeout=TIMEOUT_S)
        run(client, ncpu, quick, as_json)
    finally:
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
