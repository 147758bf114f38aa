"""What every peer script shares: percentiles and the report line (JSON or text).

Lives in lib/ so `make bench`, which runs every bench/peers/*.py as a peer, skips it.
"""
import json


def percentile(sorted_us, pct):
    rank = max(1, -(-len(sorted_us) * pct // 100))  # ceil, at least the first
    return sorted_us[int(rank) - 1]


def report(as_json, suite, case, unit, **fields):
    row = {"suite": suite, "case": case, "unit": unit, "peer": "dask", **fields}
    if as_json:
        print(json.dumps(row), flush=True)
    else:
        print(f"dask {case}: " + ", ".join(f"{k}={v}" for k, v in fields.items()), flush=True)
