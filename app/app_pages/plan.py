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
st.caption(f"{r.spec.model_type} · {b.parameters:,} parameters · "
           f"{common.weights_label(r.inputs.weights, r.spec)} weights · batch "
           f"{r.inputs.batch:,} × {r.inputs.context:,} tokens · {r.inputs.engine} · "
           f"{r.gpus} × {r.gpu_label}")
if r.spec.approximate:
    st.warning("This model type is planned as a llama-like approximation: the numbers are approximate.")
for note in r.notes:
    st.caption(note)

# two rows of three: six metrics in one row cut "1,249.88 GiB" to "1,249.8..." on a 1440-px screen
cols = [*st.columns(3), *st.columns(3)]
cols[0].metric("Parameters", f"{b.parameters / 1e9:,.3f} B", help=f"{b.parameters:,} parameters, exact")
cols[1].metric("Weights", fb(b.weights_bytes), help=f"{b.weights_bytes:,} bytes")
cols[2].metric("KV cache", fb(b.kv_cache_bytes), help=f"{b.kv_cache_bytes:,} bytes")
cols[3].metric("Activations", fb(b.activations_bytes), help=f"{b.activations_bytes:,} bytes")
cols[4].metric("Overhead", fb(b.overhead_bytes), help=f"{b.overhead_bytes:,} bytes")
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
    if r.plan.engine == "vllm" and fit.available:
        # vLLM's "free" is not GPU memory left over: vLLM reserves its whole budget and keeps the rest of it
        # as a KV pool; what is left is the part of that pool the requests do not use.
        reqs = f"{r.inputs.batch:,} request{'s' * (r.inputs.batch != 1)} of {r.inputs.context:,} tokens"
        free = (f"KV pool left unused by {reqs}: {fb(fit.free_bytes)}" if fit.fits
                else f"KV pool short for {reqs}: {fb(-fit.free_bytes)}")
    else:
        free = f"{fb(fit.free_bytes)} free" if fit.fits else f"{fb(-fit.free_bytes)} short"
    (st.success if fit.fits else st.error)(f"{verdict} on {r.gpus} × {r.gpu_label} "
                                           f"({fb(r.gpu_bytes)} each): {free}{per_gpu}.")
    if r.plan.engine == "vllm" and fit.capacity_bytes is not None:
        u = r.plan.gpu_memory_utilization
        st.caption(f"vLLM's budget{per_gpu} is gpu_memory_utilization × memory = {u:g} × {fb(r.gpu_bytes)} = "
                   f"{fb(fit.capacity_bytes)}. vLLM reserves all of it at startup: weights, activation peak "
                   f"and overheads take {fb(b.total_bytes - b.kv_cache_bytes)}, "
                   f"the rest ({fb(b.kv_cache_bytes)}) is the KV pool shared by the running requests. The Total above is that whole "
                   "reservation, so it stays the same whatever the batch and context.")
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
               f"{common.weights_label(r.plan.weights, r.spec)}.")

st.subheader("Assumptions")
for a in b.assumptions:
    st.markdown(f"- {a}")
