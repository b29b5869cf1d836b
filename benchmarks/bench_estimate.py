"""How fast is one estimate? In process, and as a whole ``headroom estimate --json`` process, compared with
what transformers needs to build the same model on the ``meta`` device (fresh process, imports included).

Targets (issue 2): one in-process estimate under 1 ms; the CLI process at least 10x faster than the
transformers meta-device build. Run: ``python benchmarks/bench_estimate.py`` (or ``make bench``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

MODEL = "llama-3.1-8b"
IN_PROCESS_RUNS = 2000
PROCESS_RUNS = 5
META_RUNS = 3

META_BUILD = """
import json, sys
import torch, transformers
cfg = json.load(open(sys.argv[1]))
config = transformers.AutoConfig.for_model(**cfg)
with torch.device("meta"):
    model = transformers.AutoModelForCausalLM.from_config(config)
print(sum(p.numel() for p in model.parameters()))
"""


def _in_process() -> tuple[float, float, float]:
    """(first call, median warm call, median call with the tensor inventory cache cleared), seconds."""
    from planner.catalog import catalog_spec
    from planner.estimate import Plan, estimate
    from planner.params import tensors

    spec = catalog_spec(MODEL)
    plan = Plan()
    t0 = time.perf_counter()
    estimate(spec, plan)
    first = time.perf_counter() - t0
    warm = []
    for _ in range(IN_PROCESS_RUNS):
        t0 = time.perf_counter()
        estimate(spec, plan)
        warm.append(time.perf_counter() - t0)
    cold = []
    for _ in range(IN_PROCESS_RUNS // 10):
        tensors.cache_clear()
        t0 = time.perf_counter()
        estimate(spec, plan)
        cold.append(time.perf_counter() - t0)
    return first, statistics.median(warm), statistics.median(cold)


def _process(cmd: list[str], runs: int) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if r.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
        out = r.stdout
    return statistics.median(times), out


def main() -> int:
    first, warm, cold = _in_process()
    cli_s, cli_out = _process([sys.executable, "-m", "app", "estimate", "--model", MODEL, "--json"], PROCESS_RUNS)
    cfg = os.path.join(REPO, "assets", "models", f"{MODEL}.json")
    try:
        meta_s, meta_out = _process([sys.executable, "-c", META_BUILD, cfg], META_RUNS)
    except SystemExit as e:
        meta_s, meta_out = float("nan"), str(e)
    planner_params = json.loads(cli_out)["parameters"]

    rows = [
        ("estimate(), first call in process", first * 1e3, "ms", "< 1 ms"),
        (f"estimate(), median of {IN_PROCESS_RUNS:,} (warm)", warm * 1e3, "ms", "< 1 ms"),
        ("estimate(), median, tensor cache cleared", cold * 1e3, "ms", "< 1 ms"),
        (f"headroom estimate --json (process, median of {PROCESS_RUNS})", cli_s, "s", ""),
        (f"transformers meta-device build (process, median of {META_RUNS})", meta_s, "s", ""),
        ("speed-up of the CLI over transformers", meta_s / cli_s, "x", ">= 10x"),
    ]
    w = max(len(r[0]) for r in rows)
    print(f"model: {MODEL}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    print(f"{'measure':<{w}}  {'value':>10}  unit  target")
    for name, v, unit, target in rows:
        print(f"{name:<{w}}  {v:>10.3f}  {unit:<4}  {target}")
    if meta_out.strip().isdigit():
        same = int(meta_out) == planner_params
        print(f"parameters: planner {planner_params:,}, transformers {int(meta_out):,} ({'equal' if same else 'DIFFER'})")
    else:
        print(f"transformers meta build unavailable: {meta_out.strip()[:200]}")
    ok = warm < 1e-3 and meta_s / cli_s >= 10
    print("targets met" if ok else "targets NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
