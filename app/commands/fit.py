"""``headroom fit``: does a plan fit a GPU (or N of them), and the largest batch and context that do."""

from __future__ import annotations

import json

from app.cli_common import add_device_args, add_model_args, add_plan_args, resolve_args
from planner.fit import fit


def register(sub) -> None:
    p = sub.add_parser("fit", help="does a plan fit a GPU; largest batch and context that fit")
    add_model_args(p)
    add_plan_args(p)
    add_device_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output (see README)")
    p.set_defaults(func=run)


def run(args) -> int:
    src, plan, (device_bytes, gpus, label) = resolve_args(args)
    res = fit(src.spec, plan, device_bytes, gpus, stored=src.stored)
    out = {"model": src.spec.name or src.spec.model_type, "device": label, **res.to_json()}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    gib = 2**30
    print(f"{out['model']} on {gpus} x {label} ({device_bytes / gib:.2f} GiB each), engine {res.engine}")
    print(f"fits           {'yes' if res.fits else 'no'}  ({res.reason})")
    where = (f"in total over {gpus} GPUs (llama.cpp splits layers across them)"
             if res.engine == "llamacpp" and gpus > 1 else "per device")
    print(f"free           {res.free_bytes / gib:,.2f} GiB ({res.free_bytes / 1e9:,.2f} GB) {where}")
    print(f"max batch      {res.max_batch:,}  at context {plan.context:,}")
    print(f"max context    {res.max_context:,}  at batch {plan.batch:,}")
    if res.host_bytes is not None:
        print(f"host RAM       {res.host_bytes / gib:,.2f} GiB (llama.cpp: token_embd, CPU layers, host buffers)")
    if res.kv_cache_tokens is not None:
        print(f"KV cache       {res.kv_cache_tokens:,} tokens")
        print(f"concurrency    {res.max_concurrency:.2f}x at {plan.context:,} tokens per request")
    return 0
