"""``headroom estimate``: memory breakdown of one plan.

With ``--json`` it prints :meth:`planner.breakdown.MemoryBreakdown.to_json` (the stable schema in the
README); otherwise a table in GiB and GB, grouped by weights / kv_cache / activations / overhead, with
totals, where each number comes from, and the assumptions behind it.
"""

from __future__ import annotations

import dataclasses
import json

from app.cli_common import add_device_args, add_model_args, add_plan_args, resolve_args
from planner.breakdown import GROUPS, MemoryBreakdown
from planner.estimate import estimate


def register(sub) -> None:
    p = sub.add_parser("estimate", help="memory breakdown of a model under a plan")
    add_model_args(p)
    add_plan_args(p)
    add_device_args(p, required=False)
    p.add_argument("--json", action="store_true", help="print the stable JSON schema (see README)")
    p.set_defaults(func=run)


def run(args) -> int:
    src, plan, (device_bytes, gpus, label) = resolve_args(args)
    if gpus != plan.tp and plan.engine != "llamacpp":
        plan = dataclasses.replace(plan, tp=gpus)  # --gpus N means tensor parallel over N
    b = estimate(src.spec, plan, stored=src.stored)
    if src.notes:
        b = dataclasses.replace(b, assumptions=b.assumptions + src.notes)
    if args.json:
        print(json.dumps(b.to_json(), indent=2))
    else:
        print(render_table(b, title=f"{src.spec.name or src.spec.model_type} ({src.label})"))
        if device_bytes is not None:
            free = device_bytes - b.total_bytes
            verdict = "fits" if free >= 0 else "does NOT fit"
            print(f"\n{verdict} on {gpus} x {label} ({device_bytes / 2**30:,.2f} GiB each): "
                  f"{free / 2**30:,.2f} GiB free per device (see 'headroom fit' for the largest batch and context)")
    return 0


def _gib(n: int) -> str:
    return f"{n / 2**30:,.3f}"


def _gb(n: int) -> str:
    return f"{n / 1e9:,.3f}"


def render_table(b: MemoryBreakdown, title: str = "") -> str:
    """A fixed-width table: one block per group (subtotal, then its components), a total, assumptions."""
    rows: list[tuple[str, int, str]] = []  # (label, bytes, source); source "" marks a subtotal row
    for g in GROUPS:
        comps = [c for c in b.components if c.group == g]
        if not comps:
            continue
        rows.append((g, b.group_bytes(g), ""))
        merged: dict[str, tuple[int, str]] = {}
        for c in comps:
            n, s = merged.get(c.path, (0, c.source))
            merged[c.path] = (n + c.bytes, s)
        rows.extend((f"  {path}", n, s) for path, (n, s) in merged.items())
    w = max([len("component")] + [len(r[0]) for r in rows])
    nw = max([10] + [len(_gb(r[1])) for r in rows] + [len(_gb(b.total_bytes))])
    lines = []
    if title:
        lines += [title, f"{b.parameters:,} parameters", ""]
    lines.append(f"{'component':<{w}}  {'GiB':>{nw}}  {'GB':>{nw}}  source")
    lines.append("-" * (w + 2 * nw + 12))
    for label, n, s in rows:
        lines.append(f"{label:<{w}}  {_gib(n):>{nw}}  {_gb(n):>{nw}}  {s}".rstrip())
    lines.append("-" * (w + 2 * nw + 12))
    lines.append(f"{'total':<{w}}  {_gib(b.total_bytes):>{nw}}  {_gb(b.total_bytes):>{nw}}")
    if b.assumptions:
        lines += ["", "assumptions:"] + [f"  - {a}" for a in b.assumptions]
    return "\n".join(lines)
