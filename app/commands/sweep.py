"""``headroom sweep``: memory over a grid of batch x context x weight format x KV dtype, as CSV or JSON."""

from __future__ import annotations

import argparse
import sys

from app.cli_common import (
    add_device_args,
    add_model_args,
    device_from_args,
    engine_extra,
    positive_int,
    source_from_args,
)
from planner.estimate import ATTENTIONS, CACHES, ENGINES, MODES, Plan


def int_list(text: str) -> list[int]:
    """``1,2,4`` or ``start:stop:step`` (stop included) or a mix: ``1,2,1024:8192:1024``."""
    from planner.sweep import MAX_POINTS  # pandas: imported only when sweep runs (CLI start-up stays light)

    out: list[int] = []
    try:
        for part in text.replace("_", "").split(","):
            part = part.strip()
            if not part:
                continue
            if ":" in part:
                bits = [int(x) for x in part.split(":")]
                if len(bits) not in (2, 3) or (len(bits) == 3 and bits[2] <= 0):
                    raise ValueError
                start, stop, step = bits[0], bits[1], bits[2] if len(bits) == 3 else 1
                if (stop - start) // step + 1 > MAX_POINTS:
                    raise argparse.ArgumentTypeError(f"range {part!r} has more than {MAX_POINTS:,} values")
                out.extend(range(start, stop + 1, step))
            else:
                out.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers like 1,2,4 or 1024:8192:1024, got {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError(f"expected at least one number, got {text!r}")
    if min(out) < 1:
        raise argparse.ArgumentTypeError(f"values must be at least 1, got {min(out)}")
    return out


def name_list(text: str) -> list[str]:
    out = [t.strip() for t in text.split(",") if t.strip()]
    if not out:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return out


def register(sub) -> None:
    p = sub.add_parser("sweep", help="memory over a grid of batch x context x weights x KV dtype (CSV or JSON)")
    add_model_args(p)
    g = p.add_argument_group("grid (comma-separated lists; ranges as start:stop:step)")
    g.add_argument("--batch", type=int_list, default=[1], help="batch sizes, e.g. 1,2,4 (default 1)")
    g.add_argument("--context", type=int_list, default=[8192], help="tokens per sequence, e.g. 1024,8192")
    g.add_argument("--weights", type=name_list, default=["auto"], help="weight formats, e.g. bf16,bnb-nf4")
    g.add_argument("--kv-dtype", type=name_list, default=["auto"], help="KV dtypes, e.g. auto,fp8_e4m3")
    q = p.add_argument_group("plan")
    q.add_argument("--engine", default="transformers", choices=ENGINES)
    q.add_argument("--attention", default="sdpa", choices=ATTENTIONS)
    q.add_argument("--cache", default="dynamic", choices=CACHES)
    q.add_argument("--mode", default="generate", choices=MODES)
    q.add_argument("--tp", type=positive_int, default=1, help="tensor-parallel GPUs (or use --gpus)")
    q.add_argument("--cpu", action="store_true", help="plan for CPU")
    add_device_args(p, required=False)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--csv", action="store_true", help="CSV on stdout (the default)")
    out.add_argument("--json", action="store_true", help="a JSON array of row objects on stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    from planner.sweep import sweep

    src = source_from_args(args)
    device_bytes, gpus, _label = device_from_args(args)
    extra = engine_extra(args, device_bytes)
    if device_bytes is None:
        extra["gpu_memory_bytes"] = None
    plan = Plan(engine=args.engine, attention=args.attention, cache=args.cache, mode=args.mode,
                tp=1, device="cpu" if args.cpu else "gpu", **extra)
    df = sweep(src.spec, plan, batch=args.batch, context=args.context, weights=args.weights,
               kv_dtype=args.kv_dtype, device_bytes=device_bytes, gpus=gpus, stored=src.stored)
    if args.json:
        sys.stdout.write(df.to_json(orient="records"))
        sys.stdout.write("\n")
    else:
        df.to_csv(sys.stdout, index=False)
    return 0
