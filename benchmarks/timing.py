"""Interleaved timing: contenders take turns within one process, so that drift in
the machine's load (this is a shared box) hits all of them alike."""

from __future__ import annotations

import math
import statistics
import time


def interleaved(contenders, *, repeats, min_time, warmup=1):
    """Time each zero-argument callable in ``contenders`` (a dict), taking turns.

    Each contender is warmed up (compilation happens there), then the number of
    calls per turn is chosen so the slowest contender's turn lasts ``min_time``.
    Turns alternate A,B then B,A, ``repeats`` times. Returns, per contender, the
    median seconds per call over the turns and every turn's figure.
    """
    names = list(contenders)
    for name in names:
        for _ in range(warmup):
            contenders[name]()
    single = {}
    for name in names:
        start = time.perf_counter()
        contenders[name]()
        single[name] = time.perf_counter() - start
    calls = max(1, math.ceil(min_time / max(max(single.values()), 1e-9)))
    per_call = {name: [] for name in names}
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            fn = contenders[name]
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            per_call[name].append((time.perf_counter() - start) / calls)
    return {
        name: {"median_s": statistics.median(t), "turns_s": t, "calls_per_turn": calls}
        for name, t in per_call.items()
    }


def paired_ratios(timings, numerator, denominator):
    """Ratio of two contenders' medians, and the spread of the turn-by-turn ratios."""
    num, den = timings[numerator], timings[denominator]
    pairs = [a / b for a, b in zip(num["turns_s"], den["turns_s"])]
    return num["median_s"] / den["median_s"], min(pairs), max(pairs)
