"""Recommend: configurations that fit a workload (format x KV dtype x GPU x count), ranked, with reasons."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.app_pages import common
from planner.errors import HeadroomError
from planner.estimate import ENGINES
from planner.recommend import OBJECTIVE_LABELS, OBJECTIVES, Workload, catalog_gpu_options, recommend

GIB = 1 << 30
DEFAULT_WEIGHTS = {"vllm": ["bf16", "fp8"], "transformers": ["bf16", "bnb-nf4"], "llamacpp": ["gguf-Q4_K_M"]}
KV_CHOICES = {"vllm": ["auto", "fp8_e4m3", "fp8_e5m2"], "transformers": ["auto", "fp16", "bf16", "int8", "int4"],
              "llamacpp": ["auto", "q8_0", "q4_0"]}
EXPORT_SCENARIO_KEY = "hr_export_scenario"  # the Export page offers the option chosen here


@st.cache_data(max_entries=32, show_spinner="Ranking configurations...")
def _recommend(_spec, spec_key, workload: Workload, prices: tuple, objective: str):
    return recommend(_spec, workload, catalog_gpu_options(dict(prices)), objective)


def _parse_prices(text: str) -> tuple[dict[str, float], list[str]]:
    from planner.recommend import parse_prices

    prices, errors = {}, []
    for line in (text or "").replace(",", "\n").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            one = parse_prices([line.replace(" ", "")])
            catalog_gpu_options(one)  # the name must match a catalog GPU
            prices.update(one)
        except HeadroomError as e:
            errors.append(str(e))
    return prices, errors


r = common.require_plan()
st.title("Recommend")
st.caption(f"{r.model_label}: which GPUs, how many, and which formats serve this workload. "
           "Every option is checked with the same arithmetic as the Plan page.")

engine = st.session_state.get("hr_rec_engine", r.inputs.engine if r.inputs.engine in ENGINES else "vllm")
c1, c2, c3 = st.columns(3)
context = c1.number_input("Tokens per request (context)", min_value=1, max_value=1 << 24, value=r.inputs.context,
                          step=1024, key="hr_rec_context")
concurrency = c1.number_input("Concurrent requests", min_value=1, max_value=1 << 16, value=max(1, r.inputs.batch),
                              step=1, key="hr_rec_concurrency")
engine = c2.selectbox("Engine", ENGINES, index=list(ENGINES).index(engine), key="hr_rec_engine")
formats = list(common.weight_formats()) or ["bf16", "fp8"]
weights = c2.multiselect("Weight formats", formats, default=[f for f in DEFAULT_WEIGHTS[engine] if f in formats],
                         key=f"hr_rec_weights_{engine}")
kv = c2.multiselect("KV cache dtypes", KV_CHOICES[engine], default=["auto"], key=f"hr_rec_kv_{engine}")
objective = c3.selectbox("Rank by", OBJECTIVES, format_func=lambda o: OBJECTIVE_LABELS[o], key="hr_rec_objective")
max_gpus = c3.number_input("Up to this many GPUs", min_value=1, max_value=8, value=8, key="hr_rec_max_gpus")
util = c3.slider("GPU memory utilization (vLLM)", 0.5, 1.0, value=float(r.inputs.gpu_memory_utilization), step=0.01,
                 key="hr_rec_util")
prices_text = st.text_area("Prices (optional), one per line: `gpu = USD per GPU-hour`; a fragment such as "
                           "`h100` prices every H100 variant", key="hr_rec_prices", height=90,
                           placeholder="h100 = 2.49\nh200-sxm-141gb = 3.50")
prices, price_errors = _parse_prices(prices_text)
for e in price_errors:
    st.error(f"Prices: {e}")

if not weights or not kv:
    st.warning("Choose at least one weight format and one KV cache dtype.")
    st.stop()
try:
    workload = Workload(context=int(context), concurrency=int(concurrency), weights=tuple(weights),
                        kv_dtypes=tuple(kv), engine=engine, max_gpus=int(max_gpus), gpu_memory_utilization=float(util))
    rec = _recommend(r.spec, hash(r.spec), workload, tuple(sorted(prices.items())), objective)
except HeadroomError as e:
    st.error(str(e))
    st.stop()

st.subheader(f"{len(rec.feasible)} configurations fit · ranked by {OBJECTIVE_LABELS[objective]}")
if rec.feasible:
    rows = [{
        "rank": i, "option": f"{o.count} × {o.gpu.title}", "gpu": o.gpu.name, "gpus": o.count,
        "weights": o.weights, "kv_dtype": o.kv_dtype, "need per GPU (GiB)": o.needed_bytes / GIB,
        "free per GPU (GiB)": o.free_bytes / GIB, "max_concurrency": o.max_concurrency,
        "cost_per_hour": o.cost_per_hour,
    } for i, o in enumerate(rec.feasible, 1)]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config={"need per GPU (GiB)": st.column_config.NumberColumn(format="%.1f"),
                                "free per GPU (GiB)": st.column_config.NumberColumn(format="%.1f"),
                                "cost_per_hour": st.column_config.NumberColumn("USD per hour", format="%.2f")})
    best = rec.best
    st.success(f"Best: {best.count} × {best.gpu.title}, {best.weights} weights, KV {best.kv_dtype}"
               + (f", ${best.cost_per_hour:,.2f} per hour" if best.cost_per_hour is not None else ""))
    labels = [f"#{i} {o.count} × {o.gpu.name} · {o.weights} · KV {o.kv_dtype}" for i, o in enumerate(rec.feasible, 1)]
    pick = st.selectbox("Export this option", range(len(labels)), format_func=lambda i: labels[i], key="hr_rec_pick")
    if st.button("Use it on the Export page", key="hr_rec_use"):
        from app.report import model_source_for
        from planner.scenario import dumps, from_option

        try:
            s = from_option(model_source_for(r, st.session_state), rec.feasible[pick])
            st.session_state[EXPORT_SCENARIO_KEY] = dumps(s)
            st.info("Chosen. Open the Export page for launch commands, code, the scenario file and a report.")
        except (HeadroomError, OSError) as e:
            st.error(f"Cannot export this model: {e}")
else:
    st.warning("Nothing fits. The rejected options below say what each GPU lacks.")

summary = rec.rejected_summary()
if summary:
    st.subheader("Rejected, and why")
    st.dataframe(pd.DataFrame([{"gpu": o.gpu.name, "gpus tried": o.count, "weights": o.weights,
                                "kv_dtype": o.kv_dtype, "reason": o.reason} for o in summary]),
                 hide_index=True, width="stretch")
for n in rec.notes:
    st.caption(n)
