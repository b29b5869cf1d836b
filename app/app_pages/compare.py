"""Compare GPUs: every catalog GPU, 1 to 8 of them, that fits the plan; free memory and cost."""

from __future__ import annotations

import streamlit as st

from app import charts
from app.app_pages import common

r = common.require_plan()
unit = r.unit
gcat = common.gpu_catalog()
st.title("Compare GPUs")
st.caption(f"{r.model_label} · {common.weights_label(r.inputs.weights, r.spec)} weights · batch {r.inputs.batch:,} × "
           f"{r.inputs.context:,} tokens · {r.inputs.engine} (tensor parallel across the GPUs; an Apple GPU "
           "is one device with unified memory, so only 1 of it is tried)")
if not gcat:
    st.error("The GPU catalog is not available in this installation.")
    st.stop()

c1, c2 = st.columns([1, 2])
max_gpus = c1.number_input("Up to this many GPUs", min_value=1, max_value=8, value=8, step=1, key="hr_cmp_max")
all_counts = c1.checkbox("List every GPU count that fits (not only the smallest)", key="hr_cmp_all")
prices_text = c2.text_area(
    "Prices, one per line: `gpu-name = dollars per GPU-hour` (optional)", key="hr_cmp_prices", height=110,
    placeholder="h100-sxm-80gb = 2.49\nl40s-48gb = 0.99",
)
prices, price_errors = common.parse_prices(prices_text or "", gcat)
for e in price_errors:
    st.error(f"Prices: {e}")

df = common.compare_gpus(r, int(max_gpus), prices, all_counts)
fits = df[df["fits"]]
misfits = df[~df["fits"]]
st.subheader(f"{fits['gpu'].nunique()} of {len(gcat)} GPUs fit the plan")
if not fits.empty:
    view = fits.assign(
        option=[f"{int(n)} × {t}" for n, t in zip(fits["gpus"], fits["title"], strict=True)],
        **{f"memory per GPU ({unit})": fits["memory_per_gpu_bytes"] / charts.UNIT_BYTES[unit],
           f"plan per GPU ({unit})": fits["plan_per_gpu_bytes"] / charts.UNIT_BYTES[unit],
           f"free per GPU ({unit})": fits["free_bytes"] / charts.UNIT_BYTES[unit]},
    )
    sizes = [f"free per GPU ({unit})", f"plan per GPU ({unit})", f"memory per GPU ({unit})"]
    cols = ["option", "gpus", *(["cost_per_hour", "cost_per_month"] if prices else []), *sizes, "gpu"]
    st.dataframe(view[cols], hide_index=True, key="cmp_fits", column_config={
        c: st.column_config.NumberColumn(format="%.2f") for c in sizes
    } | {"cost_per_hour": st.column_config.NumberColumn("$ / hour", format="$%.2f"),
         "cost_per_month": st.column_config.NumberColumn("$ / month (730 h)", format="$%,.0f")})
    st.plotly_chart(charts.gpu_free_bar(view, unit), key="cmp_bar")
if not misfits.empty:
    st.subheader("Why the others do not fit")
    st.dataframe(misfits[["gpu", "title", "reason"]], hide_index=True, key="cmp_misfits")
