"""Export: the plan as launch commands and code (copy buttons), and downloads of snippets, scenario and report."""

from __future__ import annotations

import streamlit as st

from app.app_pages import common
from planner.errors import HeadroomError
from planner.export import FILENAMES, LANGUAGES, TARGETS, snippet
from planner.scenario import Scenario, dumps, loads

EXPORT_SCENARIO_KEY = "hr_export_scenario"  # set by the Recommend page
TARGET_LABELS = {"transformers": "transformers (Python)", "vllm": "vLLM (vllm serve)",
                 "sglang": "SGLang (launch_server)", "tgi": "Text Generation Inference",
                 "llamacpp": "llama.cpp (llama-server)", "accelerate": "accelerate (max_memory map)",
                 "scenario": "Scenario JSON"}

st.title("Export")
st.caption("Ready-to-run commands and code for a plan, each annotated with the plan's numbers; the scenario "
           "file reproduces it (`headroom export --scenario FILE`); the report opens offline.")

sources = ["Current plan (sidebar)"]
if st.session_state.get(EXPORT_SCENARIO_KEY):
    sources.append("Option chosen on the Recommend page")
sources.append("Upload a scenario file")
source = st.radio("Export", sources, horizontal=True, key="hr_exp_source")

scenario: Scenario | None = None
try:
    if source.startswith("Current"):
        r = common.require_plan()
        from app.report import scenario_for

        scenario = scenario_for(r, st.session_state)
    elif source.startswith("Option"):
        scenario = loads(st.session_state[EXPORT_SCENARIO_KEY])
    else:
        up = st.file_uploader("scenario .json", type=["json"], key="hr_exp_upload")
        if up is None:
            st.info("Upload a scenario file saved from Headroom.")
            st.stop()
        scenario = loads(up.getvalue())
except (HeadroomError, OSError) as e:
    st.error(str(e))
    st.stop()

title = st.text_input("Title (shown in snippets and the report)", value=scenario.title, key="hr_exp_title")
if title != scenario.title:
    from dataclasses import replace

    scenario = replace(scenario, title=title)

p = scenario.plan
st.markdown(f"**{scenario.model.display_name}** · {p.weights} weights · KV {p.kv_dtype} · {p.engine} · "
            f"batch {p.batch} × {p.context:,} tokens · {scenario.gpu_count} × {scenario.gpu or 'custom GPU'}")

target = st.selectbox("Target", TARGETS, format_func=lambda t: TARGET_LABELS[t], key="hr_exp_target")
try:
    text = snippet(target, scenario)
except HeadroomError as e:
    st.warning(f"{TARGET_LABELS[target]}: {e}")
    text = None
if text is not None:
    st.code(text, language=LANGUAGES[target])  # st.code has a copy button
    st.download_button(f"Download {FILENAMES[target]}", text, file_name=FILENAMES[target],
                       mime="text/plain", key="hr_exp_dl_snippet")

st.subheader("Files")
c1, c2, c3, c4 = st.columns(4)
c1.download_button("Scenario (.json)", dumps(scenario), file_name="headroom-scenario.json",
                   mime="application/json", key="hr_exp_dl_scenario")


@st.cache_data(max_entries=16, show_spinner="Building the report...")
def _report(scenario_json: str, fmt: str) -> str:
    from app.report import render_report

    return render_report(loads(scenario_json), fmt)


try:
    sj = dumps(scenario)
    c2.download_button("Report (.html, offline)", _report(sj, "html"), file_name="headroom-report.html",
                       mime="text/html", key="hr_exp_dl_html")
    c3.download_button("Report (.md)", _report(sj, "md"), file_name="headroom-report.md", mime="text/markdown",
                       key="hr_exp_dl_md")
    c4.download_button("Report (.csv)", _report(sj, "csv"), file_name="headroom-report.csv", mime="text/csv",
                       key="hr_exp_dl_csv")
except HeadroomError as e:
    st.error(f"Report: {e}")
