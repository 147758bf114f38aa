#!/usr/bin/python3
"""Writes houses.csv, the data set of examples/param_server: 781 houses, size in square
feet and price in thousands of dollars, on the line price = 0.2 * size + 50 plus noise.

Deterministic: a 64-bit LCG (Knuth's MMIX constants) with a fixed seed drives both the
sizes (uniform in [500, 4000)) and the noise (the sum of 12 uniforms, minus 6, is close to
a standard normal; scaled to sd 25 k$).  Regenerate with:
    /usr/bin/python3 examples/data/gen_houses.py > examples/data/houses.csv
"""
import sys

ROWS = 781
SLOPE = 0.2  # k$ per square foot
INTERCEPT = 50.0  # k$
NOISE_SD = 25.0  # k$

state = 20240601


def uniform():
    """The next number in [0, 1) from the LCG: its top 53 bits."""
    global state
    state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
    return (state >> 11) / 2**53


def gaussian():
    return sum(uniform() for _ in range(12)) - 6.0


def main():
    out = sys.stdout
    out.write("size_sqft,price_k\n")
    for _ in range(ROWS):
        size = round(500 + 3500 * uniform())
        price = SLOPE * size + INTERCEPT + NOISE_SD * gaussian()
        out.write(f"{size},{price:.1f}\n")


if __name__ == "__main__":
    main()
