"""Predicted versus measured, component by component (pure Python: planner + stored run data).

For every ``ok`` point the planner is asked about exactly the measured scenario:
``estimate(spec, Plan(engine="transformers", device=cpu|gpu, weights=<format>, attention=<impl>,
batch=B, context=prompt+new, prompt_tokens=prompt))``. Rows compare, in bytes:

==============  ===========================================  ===========================================
component       predicted                                    measured
==============  ===========================================  ===========================================
weights         ``weights/*`` except ``weights/quant_state``  sum of parameter ``nbytes`` (exact)
quant_state     ``weights/quant_state``                      absmax, codes, nested state, SCB (exact)
kv_cache        ``kv_cache/*``                               cache ``keys``/``values`` ``nbytes`` (exact)
activations     ``activations/*``                            peak above what persists (see worker)
overhead        ``overhead/*``                               peak - the four above (context, allocator
                                                             slack, buffers, runtime; CPU: process RSS)
total           the breakdown's total                        peak: NVML process / torch reserved / VmHWM
==============  ===========================================  ===========================================

``abs_error_bytes = predicted - measured`` (positive: the planner over-estimates) and ``rel_error =
abs_error / measured``. The run's summary figure is the worst ``|rel_error|`` of the total over its points.
"""

from __future__ import annotations

from planner.breakdown import MemoryBreakdown
from planner.estimate import Plan, estimate
from planner.spec import ModelSpec

COMPONENTS = ("weights", "quant_state", "kv_cache", "activations", "overhead", "total")
#: components the planner computes exactly and the worker measures exactly (tensor nbytes)
EXACT = ("weights", "quant_state", "kv_cache")


def plan_for(request: dict, batch: int, prompt_tokens: int, new_tokens: int) -> Plan:
    return Plan(weights=request["weights"], batch=batch, context=prompt_tokens + new_tokens,
                prompt_tokens=prompt_tokens, engine="transformers",
                attention=request.get("attention", "sdpa"),
                device="cpu" if request["device"] == "cpu" else "gpu")


def predicted_groups(b: MemoryBreakdown) -> dict[str, int]:
    qs = sum(c.bytes for c in b.components if c.path == "weights/quant_state")
    return {"weights": b.weights_bytes - qs, "quant_state": qs, "kv_cache": b.kv_cache_bytes,
            "activations": b.activations_bytes, "overhead": b.overhead_bytes, "total": b.total_bytes}


def measured_groups(load: dict, measured: dict) -> dict[str, int]:
    w = int(load["parameters_bytes"])
    qs = int(load["quant_state_bytes"])
    kv = int(measured["kv_cache_bytes"])
    act = int(measured["activation_peak_bytes"])
    peak = int(measured["peak_bytes"])
    return {"weights": w, "quant_state": qs, "kv_cache": kv, "activations": act,
            "overhead": max(peak - w - qs - kv - act, 0), "total": max(peak, w + qs + kv + act)}


def reconcile_point(spec: ModelSpec, request: dict, load: dict, point: dict) -> list[dict]:
    """One row per component for one ``ok`` point (``point`` as stored: batch, prompt_tokens, ...)."""
    plan = plan_for(request, point["batch"], point["prompt_tokens"], point["new_tokens"])
    pred = predicted_groups(estimate(spec, plan))
    meas = measured_groups(load, point["measured"])
    rows = []
    for comp in COMPONENTS:
        p, m = pred[comp], meas[comp]
        rows.append({
            "idx": point["idx"], "batch": point["batch"], "prompt_tokens": point["prompt_tokens"],
            "new_tokens": point["new_tokens"], "context": point["prompt_tokens"] + point["new_tokens"],
            "component": comp, "predicted_bytes": p, "measured_bytes": m, "abs_error_bytes": p - m,
            "rel_error": (p - m) / m if m else (0.0 if p == 0 else None),
        })
    return rows


def summarize(rows: list[dict]) -> dict:
    """One figure per run: the worst |relative error| of the total; plus which exact parts matched."""
    totals = [r for r in rows if r["component"] == "total" and r["rel_error"] is not None]
    out: dict = {"points": len({r["idx"] for r in rows})}
    if totals:
        worst = max(totals, key=lambda r: abs(r["rel_error"]))
        out["worst_total_rel_error"] = worst["rel_error"]
        out["worst_total_point"] = worst["idx"]
        out["mean_abs_total_rel_error"] = sum(abs(r["rel_error"]) for r in totals) / len(totals)
    for comp in EXACT:
        these = [r for r in rows if r["component"] == comp]
        if these:
            out[f"{comp}_exact"] = all(r["abs_error_bytes"] == 0 for r in these)
    return out


def reconcile_run(store, run_id: int) -> dict:
    """``{"rows": [...], "summary": {...}}`` for a stored run (rows only for ``ok`` points)."""
    from profiler.source import spec_for

    run = store.get_run(run_id)
    if run is None:
        from planner.errors import InputError

        raise InputError(f"no run {run_id} in {store.path}")
    spec = spec_for(run["config"], run["model"])
    rows: list[dict] = []
    load = run.get("load")
    if load:
        for p in store.points(run_id):
            if p["status"] == "ok" and p.get("measured"):
                rows.extend(reconcile_point(spec, run["request"], load, p))
    return {"rows": rows, "summary": summarize(rows)}


def predicted_curve(spec: ModelSpec, request: dict, batch: int, contexts, new_tokens: int = 0) -> list[dict]:
    """Predicted breakdown groups for ``batch`` over ``contexts`` (prompt = context - new tokens)."""
    out = []
    for ctx in contexts:
        ctx = int(ctx)
        prompt = max(ctx - new_tokens, 1)
        g = predicted_groups(estimate(spec, plan_for(request, batch, prompt, ctx - prompt)))
        out.append({"batch": batch, "context": ctx, **g})
    return out


def point_table(store, run_id: int) -> list[dict]:
    """One flat row per point (every status), with measured and predicted bytes per component and the
    relative error of each: the rows of ``headroom runs export --csv`` and the app's results table."""
    from profiler.source import spec_for

    run = store.get_run(run_id)
    if run is None:
        from planner.errors import InputError

        raise InputError(f"no run {run_id} in {store.path}")
    spec = spec_for(run["config"], run["model"])
    load = run.get("load") or {}
    out = []
    for p in store.points(run_id):
        row = {"run_id": run_id, "idx": p["idx"], "batch": p["batch"], "prompt_tokens": p["prompt_tokens"],
               "new_tokens": p["new_tokens"], "context": p["prompt_tokens"] + p["new_tokens"],
               "status": p["status"]}
        pred = predicted_groups(estimate(spec, plan_for(run["request"], p["batch"], p["prompt_tokens"],
                                                        p["new_tokens"])))
        meas = measured_groups(load, p["measured"]) if p["status"] == "ok" and p.get("measured") and load else {}
        for comp in COMPONENTS:
            row[f"predicted_{comp}_bytes"] = pred[comp]
            row[f"measured_{comp}_bytes"] = meas.get(comp)
        for comp in COMPONENTS:
            m = meas.get(comp)
            row[f"rel_error_{comp}"] = (pred[comp] - m) / m if m else None
        m = p.get("measured") or {}
        row["prefill_seconds"] = m.get("prefill_seconds")
        row["decode_tokens_per_second"] = m.get("decode_tokens_per_second")
        row["error"] = (p.get("error") or "").splitlines()[0][:300] if p.get("error") else ""
        out.append(row)
    return out
