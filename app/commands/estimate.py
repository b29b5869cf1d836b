"""``headroom estimate``: memory breakdown of one plan."""

from __future__ import annotations

import json

from planner.catalog import catalog_spec
from planner.estimate import ATTENTIONS, ENGINES, Plan, estimate
from planner.spec import load_config_text, parse_config
from planner.errors import SourceError


def register(sub) -> None:
    p = sub.add_parser("estimate", help="memory breakdown of a model under a plan")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="catalog name (see 'headroom models')")
    src.add_argument("--config", help="path to a config.json or a model directory")
    src.add_argument("--hub", help="Hugging Face repo id")
    p.add_argument("--weights", default="auto", help="weight format (default: the checkpoint's own)")
    p.add_argument("--kv-dtype", default="auto")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--context", type=int, default=8192, help="tokens held per sequence (prompt + generated)")
    p.add_argument("--engine", default="transformers", choices=ENGINES)
    p.add_argument("--attention", default="sdpa", choices=ATTENTIONS)
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.model:
        spec = catalog_spec(args.model)
    elif args.config:
        try:
            text = open(args.config, "rb").read()
        except OSError as e:
            raise SourceError(f"cannot read {args.config}: {e.strerror}") from None
        spec = parse_config(load_config_text(text, source=args.config))
    else:
        raise SourceError("--hub is not wired yet")
    plan = Plan(weights=args.weights, kv_dtype=args.kv_dtype, batch=args.batch, context=args.context,
                engine=args.engine, attention=args.attention, tp=args.tp)
    b = estimate(spec, plan)
    if args.json:
        print(json.dumps(b.to_json(), indent=2))
    else:
        for path, n in b.as_dict().items():
            print(f"{path:<32} {n / 2**30:10.3f} GiB")
        print(f"{'total':<32} {b.total_bytes / 2**30:10.3f} GiB")
    return 0
