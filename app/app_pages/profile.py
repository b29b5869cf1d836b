"""Profile: run the real model here, watch memory live, compare measured with predicted.

A run goes in a background thread (``profiler.run_profile``: the model itself runs in a child process)
writing to the run database; the page polls the database with ``st.fragment(run_every=...)``. Hosted mode
refuses to run anything.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

import pandas as pd
import streamlit as st

from app import profile_charts as pc
from app.charts import fmt_bytes
from planner.errors import HeadroomError

POLL_S = 1.0


def _hosted() -> bool:
    if os.environ.get("HEADROOM_MODE", "").strip().lower() == "hosted":
        return True
    try:
        from app import hosted

        return bool(hosted.policy().hosted)
    except Exception:
        return False


st.title("Profile")
if _hosted():
    st.error("Profiling is disabled on this hosted planner: nothing runs a model on the server. "
             "Install Headroom locally (`make run`) to profile on your own GPU or CPU.")
    st.stop()

from profiler.db import Store, default_db_path  # noqa: E402
from profiler.devices import detect  # noqa: E402
from profiler.reconcile import point_table, predicted_curve, reconcile_run  # noqa: E402
from profiler.request import WEIGHT_FORMATS, ProfileRequest, grid, parse_int_list  # noqa: E402
from profiler.runner import run_profile  # noqa: E402
from profiler.source import spec_for  # noqa: E402

unit = st.session_state.get("hr_unit", "GiB")
if unit not in ("GiB", "GB"):
    unit = "GiB"


def fb(n) -> str:
    """Bytes in the chosen unit; below 1/100 of it in Mi/MB, so tiny test models are not all zeros."""
    if n is None or pd.isna(n):
        return "-"
    small = {"GiB": (2**20, "MiB"), "GB": (10**6, "MB")}[unit]
    if abs(n) < 100 * small[0]:
        return f"{n / small[0]:,.3f} {small[1]}"
    return fmt_bytes(n, unit, 3)



@dataclass
class Job:
    request: ProfileRequest
    db: str
    cancel: threading.Event = field(default_factory=threading.Event)
    run_id: int | None = None
    done: int = 0
    error: str | None = None
    thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


@st.cache_resource
def _jobs() -> dict:
    """Runs started from this server process, by database path (one at a time per database)."""
    return {}


@st.cache_resource(show_spinner="Looking for GPUs...")
def _devices():
    return detect()


def _start(job: Job) -> None:
    def on_event(e):
        if e.get("type") == "run":
            job.run_id = e["run_id"]

    def on_point(_p):
        job.done += 1

    def work():
        try:
            run_profile(job.request, db_path=job.db, on_event=on_event, on_point=on_point, cancel=job.cancel)
        except HeadroomError as e:
            job.error = str(e)
        except Exception as e:  # shown on the page, never a dead app
            job.error = f"{type(e).__name__}: {e}"

    job.thread = threading.Thread(target=work, daemon=True, name="headroom-profile")
    job.thread.start()


db_path = str(default_db_path())
try:
    store = Store(db_path)
except HeadroomError as e:
    st.error(str(e))
    st.stop()

devs = _devices()
for note in devs.notes:
    st.info(note)

# --- a new run ---------------------------------------------------------------------------------------
jobs = _jobs()
job: Job | None = jobs.get(db_path)
running = job is not None and job.alive

if devs.torch_installed:  # without torch, stored runs can still be read
    with st.expander("New run", expanded=not running):
        from planner.catalog import catalog

        c1, c2 = st.columns(2)
        kind = c1.radio("Model", ("catalog", "config", "checkpoint"), horizontal=True, key="prof_source_kind",
                        format_func={"catalog": "Catalog", "config": "config.json path",
                                     "checkpoint": "Local checkpoint"}.get)
        names = list(catalog())
        if kind == "catalog":
            source = c1.selectbox("Catalog model", names, key="prof_model",
                                  index=names.index("smollm2-135m") if "smollm2-135m" in names else 0)
        elif kind == "config":
            source = c1.text_input("Path to config.json", key="prof_config")
        else:
            source = c1.text_input("Checkpoint directory (config.json + *.safetensors)", key="prof_checkpoint")
        synthetic = c1.checkbox("Synthetic (random) weights", value=True, key="prof_synthetic",
                                disabled=kind != "checkpoint",
                                help="Built from the config on the device; nothing is downloaded.")
        device_ids = [d.device for d in devs.devices]
        device = c2.selectbox("Device", device_ids, key="prof_device",
                              format_func=lambda d: next(x.label for x in devs.devices if x.device == d),
                              index=len(device_ids) - 1 if devs.has_gpu else 0)
        default_w = "fp32" if device == "cpu" else "bf16"
        weights = c2.selectbox("Weights", WEIGHT_FORMATS, index=WEIGHT_FORMATS.index(default_w), key="prof_weights")
        attention = c2.selectbox("Attention", ("sdpa", "eager"), key="prof_attention")
        c3, c4, c5, c6 = st.columns(4)
        batch_text = c3.text_input("Batch sizes", "1,4", key="prof_batch")
        context_text = c4.text_input("Prompt tokens", "128,512", key="prof_context")
        new_tokens = c5.number_input("New tokens", 0, 4096, 8, key="prof_new_tokens")
        timeout = c6.number_input("Time limit per point (s)", 5, 86400, 600, key="prof_timeout")
        start = st.button("Start profiling", type="primary", key="prof_start", disabled=running)
        if start:
            try:
                req = ProfileRequest(
                    source=(source or "").strip(), source_kind=kind, synthetic=bool(synthetic) or kind != "checkpoint",
                    weights=weights, device=device, attention=attention,
                    points=grid(parse_int_list(batch_text, "batch"), parse_int_list(context_text, "prompt tokens"),
                                int(new_tokens)),
                    timeout_s=float(timeout))
                from profiler.source import resolve_config

                config, _name = resolve_config(req.source_kind, req.source)
                spec_for(config, _name)  # a config the planner rejects is reported here, not in the thread
            except HeadroomError as e:
                st.error(str(e))
            else:
                job = Job(req, db_path)
                jobs[db_path] = job
                _start(job)
                running = True
                st.session_state["prof_follow"] = True


@st.fragment(run_every=POLL_S if running else None)
def live() -> None:
    j: Job | None = _jobs().get(db_path)
    if j is None:
        return
    if j.error:
        st.error(j.error)
    if j.run_id is None:
        if j.alive:
            st.caption("Starting the worker...")
        return
    with Store(db_path) as s:
        run = s.get_run(j.run_id)
        samples = pd.DataFrame(s.samples(j.run_id))
    n = len(j.request.points)
    status = run["status"] if run else "running"
    st.subheader(f"Run {j.run_id}: {status}")
    st.progress(min(j.done / n, 1.0), text=f"{j.done}/{n} points")
    if j.alive and st.button("Cancel", key="prof_cancel"):
        j.cancel.set()
        st.caption("Cancelling: the worker is being stopped; measured points are kept.")
    st.plotly_chart(pc.live_memory(samples, unit), key="prof_live_chart")
    if not j.alive and st.session_state.get("prof_follow"):
        st.session_state["prof_follow"] = False
        st.session_state["prof_run"] = j.run_id
        st.rerun()


live()

# --- results and past runs ----------------------------------------------------------------------------
runs = store.list_runs()
st.header("Runs")
if not runs:
    st.caption(f"No runs yet in {db_path}. Start one above, or run "
               "`headroom profile --model smollm2-135m --synthetic --device cpu --batch 1,4 --context 128,512`.")
    st.stop()
listing = pd.DataFrame(runs)
listing["started"] = pd.to_datetime(listing["created_at"], unit="s").dt.strftime("%Y-%m-%d %H:%M")
listing["peak"] = listing["peak_bytes"].map(fb)
st.dataframe(listing[["id", "started", "model", "weights", "device", "status", "ok_points", "points", "peak"]],
             hide_index=True, key="prof_runs_table")
ids = [r["id"] for r in runs]
if st.session_state.get("prof_run") not in ids:
    st.session_state["prof_run"] = ids[0]
run_id = st.selectbox("Show run", ids, key="prof_run",
                      format_func=lambda i: next(f"{i}: {r['model']} {r['weights']} on {r['device']} ({r['status']})"
                                                 for r in runs if r["id"] == i))
run = store.get_run(run_id)
facts = run.get("facts") or {}
st.caption(" · ".join(str(x) for x in (
    facts.get("gpu_name") or facts.get("cpu_name"), f"torch {facts.get('torch')}",
    f"transformers {facts.get('transformers')}", f"bitsandbytes {facts.get('bitsandbytes')}",
    facts.get("driver") and f"driver {facts.get('driver')}", facts.get("nvml"), facts.get("host"),
    facts.get("date")) if x))
if run.get("error"):
    st.warning(run["error"])

table = pd.DataFrame(point_table(store, run_id))
if table.empty:
    st.caption("No points recorded yet.")
    st.stop()
shown = table[["idx", "batch", "prompt_tokens", "new_tokens", "status"]].copy()
for c in pc.COMPONENTS:
    shown[f"{c} measured"] = table[f"measured_{c}_bytes"].map(fb)
    shown[f"{c} predicted"] = table[f"predicted_{c}_bytes"].map(fb)
shown["error"] = table["error"]
st.dataframe(shown, hide_index=True, key="prof_points_table")
st.download_button("Download CSV", table.to_csv(index=False), file_name=f"headroom-run-{run_id}.csv",
                   mime="text/csv", key="prof_csv")

rec = reconcile_run(store, run_id)
rows = pd.DataFrame(rec["rows"])
if rows.empty:
    st.caption("No point finished ok: nothing to compare.")
    st.stop()
summary = rec["summary"]
m1, m2, m3 = st.columns(3)
m1.metric("Worst error of the total", f"{summary['worst_total_rel_error']:+.1%}",
          help="(predicted - measured) / measured peak, worst point of the run")
m2.metric("Mean |error| of the total", f"{summary['mean_abs_total_rel_error']:.1%}")
exact = [c for c in ("weights", "quant_state", "kv_cache") if summary.get(f"{c}_exact")]
m3.metric("Exact components", ", ".join(exact) if exact else "none")

ok = table[table["status"] == "ok"]
t1, t2, t3 = st.tabs(["Per component", "Memory vs context", "Error per component"])
with t1:
    labels = {int(r.idx): f"{int(r.idx)}: batch {int(r.batch)} × {int(r.context)} tokens" for r in ok.itertuples()}
    pick = st.selectbox("Point", list(labels), format_func=labels.get, key="prof_point",
                        index=len(labels) - 1)
    st.plotly_chart(pc.component_bars(rows[rows["idx"] == pick], unit), key="prof_bars")
with t2:
    spec = spec_for(run["config"], run["model"])
    new = int(ok["new_tokens"].max())
    top = int(ok["context"].max())
    contexts = sorted({int(x) for x in pd.Series(range(1, 41)) * max(top * 5 // 4 // 40, 1)} | set(ok["context"]))
    curve = pd.DataFrame([row for b in sorted(ok["batch"].unique())
                          for row in predicted_curve(spec, run["request"], int(b),
                                                     [c for c in contexts if c > new], new)])
    st.plotly_chart(pc.memory_vs_context(curve, ok, unit), key="prof_context_chart")
with t3:
    st.plotly_chart(pc.error_by_component(rows), key="prof_error_chart")
