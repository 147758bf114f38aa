#!/usr/bin/python3
"""Dask peer of `prism-bench tasks`: the same cases, measured on the same machine.

A LocalCluster with one single-threaded worker process per CPU, as prism runs one worker
process per CPU.  Cases and JSON fields follow ../../shared/BENCHMARKS.md, with
"peer": "dask" added:
  single_client_tasks_sync   submit one empty task and wait for it, repeatedly (us)
  single_client_tasks_async  many empty tasks in flight, gathered (ops/s)
Usage: dask_tasks.py [--quick] [--json]
"""
import os
import sys
import time

from dask.distributed import Client, LocalCluster

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from peerlib import percentile, report  # noqa: E402


def noop():
    return None


def main():
    quick = "--quick" in sys.argv
    as_json = "--json" in sys.argv
    ncpu = len(os.sched_getaffinity(0))
    cluster = LocalCluster(n_workers=ncpu, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    try:
        for _ in range(50):  # warm-up: workers connected, code paths hot
            client.submit(noop, pure=False).result()

        n = 200 if quick else 2000
        lat = []
        for _ in range(n):
            t0 = time.perf_counter()
            client.submit(noop, pure=False).result()
            lat.append((time.perf_counter() - t0) * 1e6)
        lat.sort()
        report(as_json, "tasks", "single_client_tasks_sync", "us", n=n,
               p50=round(percentile(lat, 50), 1), p99=round(percentile(lat, 99), 1),
               p999=round(percentile(lat, 99.9), 1), max=round(lat[-1], 1))

        n = 2000 if quick else 20000
        t0 = time.perf_counter()
        futures = [client.submit(noop, pure=False) for _ in range(n)]
        client.gather(futures)
        report(as_json, "tasks", "single_client_tasks_async", "ops/s",
               value=round(n / (time.perf_counter() - t0), 1), n=n)
    finally:
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
