"""``headroom recommend``: configurations that fit a workload, ranked, with reasons for the rest."""

from __future__ import annotations

import json
import shlex

from app.cli_common import add_model_args, positive_int, spec_from_args
from planner.estimate import ENGINES
from planner.recommend import (
    MAX_GPUS,
    OBJECTIVE_LABELS,
    OBJECTIVES,
    Workload,
    catalog_gpu_options,
    parse_prices,
    recommend,
)

GIB = 1 << 30
#: weight formats tried when --weights is not given
DEFAULT_WEIGHTS = {"vllm": ("bf16", "fp8"), "transformers": ("bf16", "bnb-nf4"), "llamacpp": ("gguf-Q4_K_M",)}


def register(sub) -> None:
    p = sub.add_parser("recommend", help="rank GPU configurations that fit a workload",
                       description="Enumerate weight format x KV dtype x GPU x count (1-8) over the GPU catalog "
                                   "and rank what fits; say why the rest does not.")
    add_model_args(p)
    p.add_argument("--context", type=positive_int, default=8192, help="tokens per request (default 8192)")
    p.add_argument("--concurrency", "--batch", dest="concurrency", type=positive_int, default=1,
                   help="requests served at once (default 1)")
    p.add_argument("--engine", default="vllm", choices=ENGINES, help="serving engine (default vllm)")
    p.add_argument("--weights", nargs="+", metavar="FORMAT",
                   help="weight formats to try (default: vllm bf16 fp8; transformers bf16 bnb-nf4; "
                        "llamacpp gguf-Q4_K_M)")
    p.add_argument("--kv-dtype", nargs="+", metavar="DTYPE", default=["auto"], help="KV dtypes to try (default auto)")
    p.add_argument("--gpu", nargs="+", metavar="NAME", help="only these catalog GPUs (default: all)")
    p.add_argument("--max-gpus", type=positive_int, default=MAX_GPUS, help=f"largest GPU count (default {MAX_GPUS})")
    p.add_argument("--objective", default=None, choices=OBJECTIVES,
                   help="gpus (fewest), cost (lowest $/h; default when prices are given), free, concurrency")
    p.add_argument("--price", nargs="+", action="extend", metavar="NAME=USD_PER_HOUR", default=[],
                   help="price of one GPU per hour, e.g. --price h100=2.49 l40s=0.99")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vLLM memory fraction (default 0.9)")
    p.add_argument("--top", type=positive_int, default=10, help="feasible options to list (default 10)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _gib(n: int) -> str:
    return f"{n / GIB:,.1f}"


def export_command(args, option) -> str:
    """The ``headroom export`` line that reproduces one option."""
    src = (["--model", args.model] if args.model else ["--config", args.config] if args.config
           else ["--hub", args.hub])
    parts = ["headroom", "export", "--target", option.plan.engine, *src, "--engine", option.plan.engine, "--weights", option.weights,
             "--kv-dtype", option.kv_dtype, "--context", str(args.context), "--batch", str(args.concurrency),
             "--tp", str(option.count), "--gpu", option.gpu.name]
    if option.plan.engine == "vllm" and args.gpu_memory_utilization != 0.9:
        parts += ["--gpu-memory-utilization", f"{args.gpu_memory_utilization:g}"]
    return " ".join(shlex.quote(p) for p in parts)


def run(args) -> int:
    spec = spec_from_args(args)
    prices = parse_prices(args.price)
    objective = args.objective or ("cost" if prices else "gpus")
    weights = tuple(args.weights) if args.weights else DEFAULT_WEIGHTS[args.engine]
    workload = Workload(context=args.context, concurrency=args.concurrency, weights=weights,
                        kv_dtypes=tuple(args.kv_dtype), engine=args.engine, max_gpus=args.max_gpus,
                        gpu_memory_utilization=args.gpu_memory_utilization)
    gpus = catalog_gpu_options(prices, args.gpu)
    r = recommend(spec, workload, gpus, objective)
    if args.json:
        out = r.to_json()
        out["feasible"] = out["feasible"][: args.top] if args.top else out["feasible"]
        out["model"] = spec.name or spec.model_type
        if r.best is not None:
            out["export_command"] = export_command(args, r.best)
        print(json.dumps(out, indent=2))
        return 0 if r.best is not None else 1
    name = spec.name or spec.model_type
    print(f"{name}: {args.concurrency} concurrent request(s) x {args.context:,} tokens on {args.engine}; "
          f"objective: {OBJECTIVE_LABELS[objective]}")
    print(f"tried weights {', '.join(weights)} x KV {', '.join(args.kv_dtype)} x {len(gpus)} GPUs x 1-{args.max_gpus}")
    print()
    if not r.feasible:
        print("Nothing fits.")
    else:
        conc_head = "max conc."
        print(f"{'#':>3}  {'GPUs':<26} {'weights':<12} {'KV':<9} {'need/GPU':>9} {'free/GPU':>9} "
              f"{conc_head:>9} {'$/hour':>8}")
        for i, o in enumerate(r.feasible[: args.top], 1):
            cost = f"{o.cost_per_hour:,.2f}" if o.cost_per_hour is not None else "-"
            conc = str(o.max_concurrency) if o.max_concurrency is not None else "-"
            print(f"{i:>3}  {f'{o.count} x {o.gpu.name}':<26} {o.weights:<12} {o.kv_dtype:<9} "
                  f"{_gib(o.needed_bytes):>9} {_gib(o.free_bytes):>9} {conc:>9} {cost:>8}")
        if len(r.feasible) > args.top:
            print(f"     ... and {len(r.feasible) - args.top} more that fit (--top N to see them)")
        print("     (GiB per GPU; need = weights + activations + overhead + KV cache of the workload)")
    summary = r.rejected_summary()
    if summary:
        print()
        print("Rejected:")
        for o in summary:
            print(f"  {o.gpu.name:<22} {o.weights:<12} KV {o.kv_dtype:<9} {o.reason}")
    for n in r.notes:
        print(f"note: {n}")
    if r.best is not None:
        print()
        print("Launch the best one:")
        print("  " + export_command(args, r.best))
        return 0
    return 1
