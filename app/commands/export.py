"""``headroom export``: the chosen plan as a launch command, code, or scenario JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys

from app.cli_common import add_model_args, add_plan_args, plan_from_args, positive_int
from planner.errors import InputError, SourceError
from planner.export import TARGETS, snippet
from planner.scenario import ModelSource, Scenario, loads
from planner.spec import MAX_CONFIG_BYTES, load_config_text


def add_scenario_args(p: argparse.ArgumentParser) -> None:
    """Model and plan arguments, or ``--scenario FILE``; plus the GPU choice."""
    p.add_argument("--scenario", metavar="FILE", help="a scenario JSON file (instead of model and plan arguments)")
    add_model_args(p, required=False)
    add_plan_args(p)
    g = p.add_argument_group("GPU")
    g.add_argument("--gpu", help="GPU from the catalog (see 'headroom gpus')")
    g.add_argument("--gpus", type=positive_int, default=None, help="number of GPUs (default: --tp)")
    g.add_argument("--memory-gib", type=float, default=None, help="memory of one custom GPU, GiB")
    g.add_argument("--gpu-memory-utilization", type=float, default=0.9,
                   help="vLLM/SGLang/TGI memory fraction (default 0.9)")
    g.add_argument("--max-num-seqs", type=positive_int, default=None,
                   help="vLLM max-num-seqs / SGLang max-running-requests (default: --batch)")
    p.add_argument("--title", default="", help="a title shown on reports and snippets")


def model_source_from_args(args: argparse.Namespace) -> ModelSource:
    """The scenario's model source: a catalog name, or the config embedded (read from --config / --hub)."""
    approximate = bool(getattr(args, "approximate", False))
    if getattr(args, "model", None):
        from planner.catalog import find

        return ModelSource(catalog=find(args.model).name)
    if getattr(args, "config", None):
        path = args.config
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
        try:
            with open(path, "rb") as f:
                text = f.read(MAX_CONFIG_BYTES + 1)
        except OSError as e:
            raise SourceError(f"cannot read {path}: {e.strerror or e}") from None
        return ModelSource.from_config(load_config_text(text, source=path), approximate=approximate)
    if getattr(args, "hub", None):
        from app.hub import fetch_hub_model  # network only when --hub is used

        m = fetch_hub_model(args.hub, getattr(args, "revision", None))
        return ModelSource.from_config(m.config(), hub_id=m.repo_id, approximate=approximate)
    raise InputError("give --scenario FILE, or one of --model, --config or --hub")


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    if getattr(args, "scenario", None):
        if any(getattr(args, k, None) for k in ("model", "config", "hub")):
            raise InputError("give either --scenario or a model (--model/--config/--hub), not both")
        try:
            with open(args.scenario, "rb") as f:
                return loads(f.read())
        except OSError as e:
            raise SourceError(f"cannot read {args.scenario}: {e.strerror or e}") from None
    source = model_source_from_args(args)
    gpu_name = None
    memory = None
    if args.gpu:
        from planner.gpus import find_gpu

        g = find_gpu(args.gpu)
        gpu_name, memory = g.name, g.memory_bytes
    if args.memory_gib is not None:
        if not (args.memory_gib > 0) or args.memory_gib > 1 << 20:
            raise InputError(f"--memory-gib must be a positive number of GiB, got {args.memory_gib}")
        memory = int(args.memory_gib * 2**30)
    count = args.gpus or args.tp
    plan = plan_from_args(args, gpu_memory_bytes=memory, gpu_memory_utilization=args.gpu_memory_utilization,
                          max_num_seqs=args.max_num_seqs or args.batch)
    return Scenario(model=source, plan=plan, gpu=gpu_name, gpu_count=count, title=args.title)


def register(sub) -> None:
    p = sub.add_parser("export", help="the plan as a launch command, code or scenario JSON",
                       description="Print a ready-to-run snippet for the plan, annotated with its numbers.")
    p.add_argument("--target", required=True, choices=TARGETS, help="what to generate")
    add_scenario_args(p)
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of printing")
    p.add_argument("--json", action="store_true", help="print {target, language, text} as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from planner.export import LANGUAGES

    s = scenario_from_args(args)
    text = snippet(args.target, s)
    if args.json:
        text = json.dumps({"target": args.target, "language": LANGUAGES[args.target], "text": text}, indent=2) + "\n"
    if args.out:
        try:
            with open(args.out, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            raise SourceError(f"cannot write {args.out}: {e.strerror or e}") from None
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
