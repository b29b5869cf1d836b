"""`make bench`: run every benchmarks/bench_*.py in turn, each in its own process, and print its report.

Each script prints its own figures and targets; the README's "Performance" section records one run.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    scripts = sorted(glob.glob(os.path.join(HERE, "bench_*.py")))
    failed = []
    for path in scripts:
        name = os.path.basename(path)
        print(f"\n=== {name}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, path], cwd=os.path.dirname(HERE))
        print(f"--- {name}: exit {rc} in {time.perf_counter() - t0:.1f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
