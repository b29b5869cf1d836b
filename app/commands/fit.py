"""``headroom fit``: does a plan fit a GPU (or N of them), and the largest batch and context that do."""

from __future__ import annotations

import argparse
import json

from app.cli_common import add_model_args, add_plan_args, plan_from_args, positive_int, source_from_args
from planner.engines import VLLM_MAX_BATCHED_TOKENS_DEFAULT
from planner.errors import InputError
from planner.fit import fit
from planner.gpus import find_gpu

#: --memory-gib upper bound: far above any single accelerator
MAX_MEMORY_GIB = 1 << 20


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def add_device_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("device")
    dev = g.add_mutually_exclusive_group(required=required)
    dev.add_argument("--gpu", metavar="NAME", help="GPU from the catalog (see 'headroom gpus')")
    dev.add_argument("--memory-gib", type=positive_float, metavar="X", help="memory of one device in GiB")
    g.add_argument("--gpus", type=positive_int, default=None,
                   help="number of GPUs (tensor parallel for transformers/vllm; default: --tp)")
    g.add_argument("--gpu-memory-utilization", type=positive_float, default=0.9,
                   help="vllm: fraction of each GPU vLLM may use (default 0.9)")
    g.add_argument("--max-num-batched-tokens", type=positive_int, default=None,
                   help="vllm: tokens of the profiling run (default: vLLM serve's, 8192 on >= 70 GiB "
                        "GPUs other than A100s, else 2048)")
    g.add_argument("--max-num-seqs", type=positive_int, default=256,
                   help="vllm: max sequences at once (default 256; vllm serve uses 1024 on >= 70 GiB GPUs "
                        "other than A100s)")
    g.add_argument("--n-gpu-layers", type=int, default=None, metavar="N",
                   help="llamacpp: layers offloaded to the GPU (-ngl; default all)")


def device_from_args(args) -> tuple[int | None, int, str]:
    """(bytes of one device or None when no device was given, number of devices, label)."""
    gpus = args.gpus if args.gpus is not None else args.tp
    if args.gpus is not None and args.tp not in (1, args.gpus):
        raise InputError(f"--tp {args.tp} and --gpus {args.gpus} disagree; give one of them")
    if not args.gpu and args.memory_gib is None:
        return None, gpus, ""
    if args.gpu:
        g = find_gpu(args.gpu)
        if getattr(args, "engine", None) == "vllm" and g.vendor == "apple":
            raise InputError(f"vLLM does not run on Apple GPUs ({g.name}); use --engine llamacpp or transformers")
        return g.memory_bytes, gpus, g.name
    if args.memory_gib > MAX_MEMORY_GIB:
        raise InputError(f"--memory-gib must be at most {MAX_MEMORY_GIB:,}, got {args.memory_gib:g}")
    return int(args.memory_gib * 2**30), gpus, f"{args.memory_gib:g} GiB"


def engine_extra(args, device_bytes: int | None) -> dict:
    tokens = args.max_num_batched_tokens
    if tokens is None and args.gpu and "a100" in args.gpu.lower():
        # vLLM keeps the small default (2048) on A100s whatever their memory (EngineArgs, PR #17885)
        tokens = VLLM_MAX_BATCHED_TOKENS_DEFAULT
    return dict(gpu_memory_bytes=device_bytes, gpu_memory_utilization=args.gpu_memory_utilization,
                max_num_batched_tokens=tokens, max_num_seqs=args.max_num_seqs, n_gpu_layers=args.n_gpu_layers)


def register(sub) -> None:
    p = sub.add_parser("fit", help="does a plan fit a GPU; largest batch and context that fit")
    add_model_args(p)
    add_plan_args(p)
    add_device_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output (see README)")
    p.set_defaults(func=run)


def run(args) -> int:
    src = source_from_args(args)
    device_bytes, gpus, label = device_from_args(args)
    plan = plan_from_args(args, **engine_extra(args, device_bytes))
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
