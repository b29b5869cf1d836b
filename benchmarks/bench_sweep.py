"""How fast is a 100,000-point sweep? (issue 3: under 250 ms, vectorized, no Python loop over points)

Grid: 250 batch sizes x 100 context lengths x 2 weight formats x 2 KV dtypes = 100,000 rows, for each
engine, Llama-3.1-8B on an H100 80GB (so ``fits`` / ``free_bytes`` are computed too). Reports the median
of several warm runs (the first run also pays for the tensor inventory and GGUF type assignment).
Run: ``python benchmarks/bench_sweep.py`` (or ``make bench``).
"""

from __future__ import annotations

import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

from planner.catalog import catalog_spec  # noqa: E402
from planner.estimate import Plan  # noqa: E402
from planner.gpus import find_gpu  # noqa: E402
from planner.sweep import sweep  # noqa: E402

TARGET_S = 0.250
RUNS = 7
BATCH = np.arange(1, 251)
CONTEXT = np.linspace(256, 131072, 100).astype(np.int64)
GRIDS = {
    "transformers": (["bf16", "bnb-nf4"], ["auto", "fp8_e4m3"]),
    "vllm": (["bf16", "fp8"], ["auto", "fp8"]),
    "llamacpp": (["gguf-Q4_K_M", "gguf-Q8_0"], ["f16", "q8_0"]),
}


def main() -> int:
    spec = catalog_spec("llama-3.1-8b")
    device = find_gpu("h100-sxm-80gb").memory_bytes
    worst = 0.0
    print(f"{'engine':<13} {'rows':>8} {'first':>9} {'median':>9}  target {TARGET_S * 1000:.0f} ms")
    for engine, (weights, kv) in GRIDS.items():
        def run(engine=engine, weights=weights, kv=kv):
            return sweep(spec, Plan(engine=engine), batch=BATCH, context=CONTEXT, weights=weights, kv_dtype=kv,
                         device_bytes=device)

        t0 = time.perf_counter()
        df = run()
        first = time.perf_counter() - t0
        times = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        worst = max(worst, med)
        print(f"{engine:<13} {len(df):>8,} {first * 1000:>7.1f}ms {med * 1000:>7.1f}ms  "
              f"{'ok' if med < TARGET_S else 'SLOW'}")
    print(f"slowest median: {worst * 1000:.1f} ms for 100,000 points ({'meets' if worst < TARGET_S else 'misses'} "
          f"the {TARGET_S * 1000:.0f} ms target)")
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
