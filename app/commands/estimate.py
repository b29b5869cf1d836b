"""``headroom estimate``: memory breakdown of one plan."""

from __future__ import annotations

import json

from app.cli_common import add_model_args, add_plan_args, plan_from_args, spec_from_args
from planner.estimate import estimate


def register(sub) -> None:
    p = sub.add_parser("estimate", help="memory breakdown of a model under a plan")
    add_model_args(p)
    add_plan_args(p)
    p.add_argument("--json", action="store_true", help="print the stable JSON schema (see README)")
    p.set_defaults(func=run)


def run(args) -> int:
    spec = spec_from_args(args)
    b = estimate(spec, plan_from_args(args))
    if args.json:
        print(json.dumps(b.to_json(), indent=2))
    else:
        for path, n in b.as_dict().items():
            print(f"{path:<32} {n / 2**30:10.3f} GiB {n / 1e9:10.3f} GB")
        print(f"{'total':<32} {b.total_bytes / 2**30:10.3f} GiB {b.total_bytes / 1e9:10.3f} GB")
    return 0
