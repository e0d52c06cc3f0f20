#!/usr/bin/env python3
"""Replays the work of a two-or-more-rank bench under other ways of slicing its batches.

    python3 benches/slices.py artifacts/bench.json

`cargo xtask-mpi bench --distributed` records each timed step's items and work on every rank
(`rank_work` in its bench.json). Taking a rank's time for n items as n times its time per item in
that step, this script replays the same steps with equal slices, with slices by speed for several
weights of the speeds' moving average (the code's is 0.3; the first step sliced as recorded) and
with each step's items split by that step's own speeds (what no slicing decided before the step
can beat), and prints the mean of each step's slowest rank's work, beside the recorded steps'
own. Standard library only.
"""

import json
import math
import statistics
import sys

# The weight of one step's speed in the moving average the code keeps (slices.rs).
CODE_WEIGHT = 0.3
WEIGHTS = [0.1, 0.2, 0.3, 0.5, 0.7, 1.0]


def parts(items, speeds):
    """Each rank's items, in proportion to `speeds`, rounded as slices.rs rounds them."""
    size = len(speeds)
    if any(s <= 0 for s in speeds):
        return [(r + 1) * items // size - r * items // size for r in range(size)]
    total, before, start, out = sum(speeds), 0.0, 0, []
    least = 1 if items >= size else 0
    for rank, speed in enumerate(speeds):
        before += speed
        if rank + 1 == size:
            end = items
        else:
            end = math.floor(items * before / total + 0.5)
            end = min(max(end, start + least), items - least * (size - 1 - rank))
        out.append(end - start)
        start = end
    return out


def replay(per_item, items, weight, first):
    """Mean slowest work a step with slices by speed (moving average `weight`, the first step
    sliced as recorded, `first`), or equal slices for `weight` None."""
    size = len(per_item[0])
    smoothed = [float(n) for n in first]
    slowest = []
    for step in per_item:
        counts = parts(items, smoothed) if weight is not None else parts(items, [0.0] * size)
        work = [n * t for n, t in zip(counts, step)]
        slowest.append(max(work))
        if weight is not None:
            for rank, (n, w) in enumerate(zip(counts, work)):
                if n > 0 and w > 0:
                    speed = n / w
                    smoothed[rank] = (
                        weight * speed + (1 - weight) * smoothed[rank]
                        if smoothed[rank] > 0
                        else speed
                    )
    return statistics.fmean(slowest)


def main(path):
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"error: {path}: {e}")
    steps = [
        s
        for s in report.get("rank_work", [])
        if all(n > 0 for n in s["items"]) and all(w > 0 for w in s["work_ms"])
    ]
    if not steps:
        sys.exit(f"error: {path}: no step with work on every rank (rank_work: from bench --distributed)")
    items = sum(steps[0]["items"])
    per_item = [[w / n for n, w in zip(s["items"], s["work_ms"])] for s in steps]
    balanced = statistics.fmean(items / sum(1 / t for t in step) for step in per_item)
    size = len(per_item[0])
    print(f"{path}: {len(steps)} steps of {items} items over {size} ranks")
    for rank in range(size):
        times = [step[rank] for step in per_item]
        print(
            f"rank {rank}: time per item varies {100 * statistics.pstdev(times) / statistics.fmean(times):.1f}% "
            "from step to step"
        )
    ratio = [math.log(step[0] / step[1]) for step in per_item]
    if len(ratio) > 2 and statistics.pstdev(ratio) > 0:
        lag1 = statistics.correlation(ratio[:-1], ratio[1:])
        print(f"ranks 0 and 1: their speeds' ratio correlates {lag1:.2f} with the last step's")
    print(f"{'slicing':<34} {'slowest rank, ms a step':>24} {'over balanced':>14}")
    recorded = statistics.fmean(max(s["work_ms"]) for s in steps)
    how = "equal" if report.get("equal_slices") else "by speed"
    first = steps[0]["items"]
    rows = [(f"as recorded ({how})", recorded), ("equal", replay(per_item, items, None, first))]
    for weight in WEIGHTS:
        mark = " (the code's)" if weight == CODE_WEIGHT else ""
        rows.append((f"by speed, weight {weight}{mark}", replay(per_item, items, weight, first)))
    rows.append(("each step's own speeds", balanced))
    for name, ms in rows:
        print(f"{name:<34} {ms:>24.2f} {100 * (ms / balanced - 1):>13.1f}%")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 benches/slices.py BENCH.json")
    main(sys.argv[1])
