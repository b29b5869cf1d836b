"""Plan: the memory breakdown of one model under one plan, and whether it fits."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import charts
from app.app_pages import common
from planner.params import parameter_components

r = common.require_plan()
b, unit = r.breakdown, r.unit
fb = lambda n: charts.fmt_bytes(n, unit)  # noqa: E731

st.title(r.model_label)
per_gpu = " per GPU" if r.gpus > 1 else ""
st.caption(f"{r.spec.model_type} · {b.parameters:,} parameters · {r.inputs.weights} weights · batch "
           f"{r.inputs.batch:,} × {r.inputs.context:,} tokens · {r.inputs.engine} · "
           f"{r.gpus} × {r.gpu_label}")
if r.spec.approximate:
    st.warning("This model type is planned as a llama-like approximation: the numbers are approximate.")
for note in r.notes:
    st.caption(note)

cols = st.columns(6)
cols[0].metric("Parameters", f"{b.parameters / 1e9:,.3f} B", help=f"{b.parameters:,} parameters, exact")
cols[1].metric("Weights", fb(b.weights_bytes))
cols[2].metric("KV cache", fb(b.kv_cache_bytes))
cols[3].metric("Activations", fb(b.activations_bytes))
cols[4].metric("Overhead", fb(b.overhead_bytes))
cols[5].metric("Total" + per_gpu, fb(b.total_bytes), help=f"{b.total_bytes:,} bytes")

fit = r.fit
g1, g2 = st.columns([1, 1])
if fit.capacity_bytes is not None:  # the engine's own view (vLLM budget, llama.cpp layer split)
    g1.plotly_chart(charts.fit_gauge(fit.used_bytes, fit.capacity_bytes, unit), key="plan_gauge")
else:
    g1.plotly_chart(charts.fit_gauge(b.total_bytes, r.gpu_bytes, unit), key="plan_gauge")
with g2:
    st.subheader("Fit")
    verdict = "Fits" if fit.fits else "Does not fit"
    free = f"{fb(fit.free_bytes)} free" if fit.fits else f"{fb(-fit.free_bytes)} short"
    (st.success if fit.fits else st.error)(f"{verdict} on {r.gpus} × {r.gpu_label} "
                                           f"({fb(r.gpu_bytes)} each): {free}{per_gpu}.")
    if fit.reason:
        st.caption(fit.reason)
    f1, f2 = st.columns(2)
    if fit.available:
        f1.metric(f"Largest batch at {r.inputs.context:,} tokens",
                  f"{fit.max_batch:,}" if fit.max_batch else "none")
        f2.metric(f"Largest context at batch {r.inputs.batch:,}",
                  f"{fit.max_context:,}" if fit.max_context else "none")
        if fit.kv_cache_tokens is not None:
            f1.metric("vLLM KV-cache tokens", f"{fit.kv_cache_tokens:,}")
        if fit.max_concurrency is not None:
            f2.metric("vLLM max concurrency", f"{fit.max_concurrency:,.2f}×")
        if fit.host_bytes:
            f1.metric("Host RAM (llama.cpp)", fb(fit.host_bytes))
    else:
        st.caption("Largest batch and context arrive with the planner's fit module.")

# one chart at a time (a choice, not tabs): only the chart shown is built on each rerun
view = st.radio("Breakdown chart", ["Stacked bar", "Treemap"], horizontal=True, key="plan_chart",
                label_visibility="collapsed")
if view == "Treemap":
    st.plotly_chart(charts.treemap(b, unit), key="plan_treemap")
else:
    st.plotly_chart(charts.stacked_bar(b, unit, r.gpu_bytes), key="plan_bar")

st.subheader("Components")
m_tab, p_tab = st.tabs(["Memory per component", "Parameters per component"])
with m_tab:
    df = charts.breakdown_frame(b)
    df.insert(2, unit, df["bytes"] / charts.UNIT_BYTES[unit])
    st.dataframe(df, hide_index=True, key="plan_table", column_config={
        unit: st.column_config.NumberColumn(format="%.3f"),
        "share": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="percent"),
        "bytes": st.column_config.NumberColumn(format="%d"),
    })
with p_tab:
    params = parameter_components(r.spec)
    weights = {p.removeprefix("weights/"): n for p, n in b.as_dict().items() if p.startswith("weights/")}
    wlabel = "weight bytes" + per_gpu
    rows = [{"component": k, "parameters": params.get(k, 0), wlabel: weights.get(k, 0),
             f"{wlabel} ({unit})": weights.get(k, 0) / charts.UNIT_BYTES[unit]}
            for k in dict.fromkeys([*params, *weights])]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="plan_params")
    st.caption(f"{b.parameters:,} parameters in total (tied embeddings counted once); weights stored as "
               f"{r.plan.weights}.")

st.subheader("Assumptions")
for a in b.assumptions:
    st.markdown(f"- {a}")
