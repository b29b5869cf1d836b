"""Shared check for the profiler tests: which exactly-predictable components disagree with the planner."""

from __future__ import annotations

from planner.spec import parse_config
from profiler.reconcile import EXACT, reconcile_point


def exact_mismatches(config: dict, req, load: dict, points: list[dict]) -> list[dict]:
    """Reconcile rows of ``points`` whose exact components (weights, quant state, KV cache) are off by any byte."""
    spec = parse_config(dict(config))
    bad = []
    for p in points:
        pt = req.points[p["index"]]
        row = {"idx": p["index"], "batch": pt.batch, "prompt_tokens": pt.prompt_tokens,
               "new_tokens": pt.new_tokens, "measured": p["measured"]}
        bad += [r for r in reconcile_point(spec, req.to_json(), load, row)
                if r["component"] in EXACT and r["abs_error_bytes"] != 0]
    return bad
