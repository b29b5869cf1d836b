"""Validation sweep: profile several catalog models and print predicted versus measured peak as a table.

``python -m profiler.validate --device cuda:0`` profiles each model with synthetic weights in each format
at each point, stores every run in the run database, and prints a Markdown table (GPU, driver, torch
version and date in its caption) for the README. The target is a predicted peak within
:data:`TARGET_REL_ERROR` of the measured one at every point; rows outside it are marked.
"""

from __future__ import annotations

import argparse
import sys

from profiler.db import Store
from profiler.reconcile import reconcile_run
from profiler.request import ProfileRequest, grid, parse_int_list
from profiler.runner import run_profile

TARGET_REL_ERROR = 0.05
DEFAULT_MODELS = ("smollm2-135m", "qwen2.5-0.5b", "llama-3.2-1b", "tinyllama-1.1b", "qwen2.5-7b", "llama-3.1-8b")


def markdown_table(store: Store, run_ids: list[int]) -> str:
    lines = ["| model | weights | batch | prompt + new | predicted peak (GiB) | measured peak (GiB) | error |",
             "|---|---|---:|---:|---:|---:|---:|"]
    caption = ""
    for rid in run_ids:
        run = store.get_run(rid)
        facts = run.get("facts") or {}
        if not caption and facts:
            caption = (f"{facts.get('gpu_name') or facts.get('cpu_name')}, driver {facts.get('driver', '-')}, "
                       f"torch {facts.get('torch')}, transformers {facts.get('transformers')}, "
                       f"bitsandbytes {facts.get('bitsandbytes')}, {facts.get('date', '')[:10]}")
        rows = {(r["idx"]): r for r in reconcile_run(store, rid)["rows"] if r["component"] == "total"}
        for p in store.points(rid):
            r = rows.get(p["idx"])
            if r is None:
                lines.append(f"| {run['model']} | {run['weights']} | {p['batch']} | {p['prompt_tokens']} + "
                             f"{p['new_tokens']} | | | {p['status']} |")
                continue
            flag = "" if abs(r["rel_error"]) <= TARGET_REL_ERROR else " ⚠"
            lines.append(f"| {run['model']} | {run['weights']} | {p['batch']} | {p['prompt_tokens']} + "
                         f"{p['new_tokens']} | {r['predicted_bytes'] / 2**30:.3f} | {r['measured_bytes'] / 2**30:.3f}"
                         f" | {r['rel_error']:+.1%}{flag} |")
    return (f"Measured on {caption}.\n\n" if caption else "") + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m profiler.validate", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--weights", default="bf16,bnb-nf4")
    ap.add_argument("--batch", default="1,4")
    ap.add_argument("--context", default="512,2048")
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--db", default=None)
    args = ap.parse_args(argv)
    points = grid(parse_int_list(args.batch, "--batch"), parse_int_list(args.context, "--context"), args.new_tokens)
    store = Store(args.db)
    run_ids = []
    for model in [m for m in args.models.split(",") if m]:
        for weights in [w for w in args.weights.split(",") if w]:
            req = ProfileRequest(source=model, source_kind="catalog", weights=weights, device=args.device,
                                 points=points, timeout_s=args.timeout, label="validation")
            res = run_profile(req, store=store)
            print(f"{model} {weights}: run {res.run_id} {res.status} "
                  f"({sum(p.status == 'ok' for p in res.points)}/{len(points)} ok)", file=sys.stderr)
            run_ids.append(res.run_id)
    print(markdown_table(store, run_ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
