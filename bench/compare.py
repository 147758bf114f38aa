#!/usr/bin/python3
"""Side by side: prism-bench's JSON lines and the peers' (bench/peers/*.py), case by case.

Reads JSON lines on stdin (rows with a "peer" field are a peer's) and prints, for each
case a peer measured too, prism's figure, the peer's, and how many times faster prism
is (for latency: the peer's p50 over prism's; for a rate: prism's over the peer's).
"""
import json
import sys


def main():
    prism, peers = {}, {}
    for line in sys.stdin:
        line = line.strip()
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        key = (row["suite"], row["case"])
        if "peer" in row:
            peers.setdefault(key, {})[row["peer"]] = row
        else:
            prism[key] = row
    if not peers:
        return
    print(f"\n{'case':40} {'prism':>14} {'peer':>8} {'peer value':>14} {'prism is':>12}")
    for key, by_peer in sorted(peers.items()):
        mine = prism.get(key)
        for name, theirs in sorted(by_peer.items()):
            case = f"{key[0]}/{key[1]}"
            if not mine:
                print(f"{case:40} {'(not run)':>14} {name:>8}")
                continue
            if "p50" in mine and "p50" in theirs:
                a, b = mine["p50"], theirs["p50"]
                print(f"{case:40} {a:>11.2f} us {name:>8} {b:>11.1f} us "
                      f"{b / a:>10.0f}x faster (p50)")
            elif "value" in mine and "value" in theirs:
                a, b = mine["value"], theirs["value"]
                print(f"{case:40} {a:>10.4g} {mine['unit']:>3} {name:>8} {b:>10.4g} "
                      f"{theirs['unit']:>3} {a / b:>10.0f}x")


if __name__ == "__main__":
    main()
