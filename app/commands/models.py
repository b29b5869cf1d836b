"""``headroom models``: the bundled model catalog."""

from __future__ import annotations

import json

from planner.catalog import catalog, catalog_spec
from planner.params import parameter_count


def register(sub) -> None:
    p = sub.add_parser("models", help="list the bundled model catalog")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args) -> int:
    rows = []
    for e in catalog().values():
        spec = catalog_spec(e.name)
        rows.append({"name": e.name, "title": e.title, "family": spec.model_type,
                     "parameters": parameter_count(spec), "hub_id": e.hub_id})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<18} {'family':<12} {'parameters':>17}  hub id")
    for r in rows:
        print(f"{r['name']:<18} {r['family']:<12} {r['parameters']:>17,}  {r['hub_id']}")
    return 0
