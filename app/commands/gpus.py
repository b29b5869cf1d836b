"""``headroom gpus``: the hardware catalog."""

from __future__ import annotations

import json

from planner.gpus import gpus


def register(sub) -> None:
    p = sub.add_parser("gpus", help="list the GPU catalog (marketed and usable memory, bandwidth)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args) -> int:
    rows = gpus()
    if args.json:
        print(json.dumps([g.to_json() for g in rows], indent=2))
        return 0
    print(f"{'name':<22} {'marketed':<34} {'usable GiB':>10} {'GB/s':>6} {'bf16 TF':>8}  basis")
    for g in rows:
        bw = f"{g.bandwidth_gb_s:g}" if g.bandwidth_gb_s is not None else "-"
        tf = f"{g.bf16_tflops:g}" if g.bf16_tflops is not None else "-"
        print(f"{g.name:<22} {g.marketed_memory:<34} {g.memory_bytes / 2**30:>10.2f} {bw:>6} {tf:>8}  "
              f"{g.memory_basis_short}")
    print("usable: what CUDA reports as total where a cited log gives it ('cuda'), else nvidia-smi memory.total "
          "(rocminfo pool for AMD, the default macOS GPU limit for Apple); 'headroom gpus --json' cites sources")
    return 0
