"""Explore: memory against context for several batch sizes and formats, a fit heatmap, and the largest
context each weight format allows on the chosen GPU."""

from __future__ import annotations

import streamlit as st

from app import charts
from app.app_pages import common

r = common.require_plan()
unit = r.unit
st.title("Explore")
st.caption(f"{r.model_label} · {r.gpus} × {r.gpu_label} · {r.inputs.engine} · KV {r.inputs.kv_dtype}")

names = common.formats_for_engine(r.inputs.engine)
current = r.inputs.weights if r.inputs.weights != "auto" else (common.auto_format(r.spec) or "bf16")
if r.inputs.engine == "llamacpp":
    preferred = [current, "gguf-Q8_0", "gguf-Q5_K_M", "gguf-Q4_K_M"]
else:
    preferred = [current, "fp8", "bnb-nf4", "gguf-Q4_K_M"]
default_formats = [n for n in dict.fromkeys(preferred) if n in names][:4]
gcat = common.gpu_catalog()

c1, c2, c3 = st.columns([2, 2, 1])
batches = c1.multiselect("Batch sizes", common.EXPLORE_BATCHES, default=[1, 8, 32], key="hr_ex_batches")
formats = c2.multiselect("Weight formats", names, default=default_formats, key="hr_ex_formats")
max_ctx = c3.select_slider("Longest context", common.EXPLORE_CONTEXTS[3:], value=131072, key="hr_ex_max_context")
other_gpus = st.multiselect("Also draw the memory of", list(gcat), default=[], key="hr_ex_gpus",
                            format_func=lambda n: gcat[n].title)
contexts = [c for c in common.EXPLORE_CONTEXTS if c <= max_ctx]

if not batches or not formats:
    st.info("Pick at least one batch size and one weight format.")
    st.stop()

curves, errors = common.context_sweep(r, tuple(formats), tuple(sorted(batches)), tuple(contexts))
for e in errors:
    st.warning(e)
capacities = {f"{r.gpu_label}": r.gpu_bytes, **{gcat[g].title: gcat[g].memory_bytes for g in other_gpus}}
st.subheader("Memory against context" + (" (per GPU)" if r.gpus > 1 else ""))
if r.inputs.engine == "vllm":
    st.caption("vLLM reserves gpu_memory_utilization of the GPU whatever the context, so these lines are flat; "
               "the heatmap below shows whether the requests fit in its KV pool.")
if not curves.empty:
    st.plotly_chart(charts.context_curves(curves, unit, capacities), key="ex_curves")

st.subheader(f"Fit over batch × context ({common.weights_label(r.plan.weights, r.spec)} weights)")
grid, gerrors = common.grid_sweep(r, tuple(common.EXPLORE_BATCHES), tuple(contexts))
for e in gerrors:
    st.warning(e)
if not grid.empty:
    st.plotly_chart(charts.fit_heatmap(grid, r.gpu_bytes, unit), key="ex_heatmap")

st.subheader(f"Largest context per format (batch {r.inputs.batch:,}, {r.gpus} × {r.gpu_label})")
per_format = common.max_context_per_format(r, tuple(names))
st.plotly_chart(charts.max_context_bar(per_format), key="ex_maxctx")
st.dataframe(per_format, hide_index=True, key="ex_maxctx_table")
