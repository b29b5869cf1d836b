"""The Profile page through its seams (AppTest): hosted refusal, no-GPU notice, stored runs with the
planner's predictions beside the measurements, and start / cancel of a real background run."""

from __future__ import annotations

import json
import os
import time

import pytest
from streamlit.testing.v1 import AppTest

from planner.estimate import Plan, estimate
from planner.spec import parse_config
from profiler.db import Store
from profiler.request import Point, ProfileRequest

PAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app", "app_pages", "profile.py")
TIMEOUT = 120
TINY = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256,
        "max_position_embeddings": 4096, "tie_word_embeddings": False}


@pytest.fixture
def db(tmp_path, monkeypatch):
    path = tmp_path / "runs.db"
    monkeypatch.setenv("HEADROOM_DB", str(path))
    monkeypatch.delenv("HEADROOM_MODE", raising=False)
    return path


def _stored_run(path) -> int:
    """A finished run as the worker stores it (measured figures as recorded from a tiny fp32 CPU run)."""
    req = ProfileRequest(source="tiny", source_kind="config", weights="fp32",
                         points=(Point(1, 16, 3), Point(2, 16, 3)))
    with Store(path) as s:
        rid = s.create_run(model="tiny", device="cpu", weights="fp32", request=req.to_json(), config=TINY)
        s.set_facts(rid, {"torch": "2.x", "transformers": "5.x", "cpu_name": "x86_64", "nvml": "NVML not used on cpu"})
        s.set_load(rid, {"parameters_bytes": 427264, "quant_state_bytes": 0, "buffers_bytes": 64})
        for i, p in enumerate(req.points):
            s.add_point(rid, i, p, "ok", {"kv_cache_bytes": 9728 * p.batch, "activation_peak_bytes": 6_000_000,
                                          "peak_bytes": 414_000_000 + i, "cache_tokens": 19}, None)
        s.add_samples(rid, [{"t": 0.1, "point": None, "phase": "load", "rss_bytes": 400_000_000}])
        s.finish_run(rid, "done")
    return rid


def test_hosted_mode_refuses_to_profile(db, monkeypatch):
    monkeypatch.setenv("HEADROOM_MODE", "hosted")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "disabled" in at.error[0].value
    assert not [b for b in at.button if b.key == "prof_start"]


def test_without_a_gpu_the_page_says_so_and_offers_the_cpu(db):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("No GPU found" in i.value for i in at.info)
    assert at.selectbox(key="prof_device").options == ["CPU"]


def test_stored_run_shows_measured_beside_the_planner_prediction(db):
    rid = _stored_run(db)
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.selectbox(key="prof_run").value == rid
    table = next(df.value for df in at.dataframe if "kv_cache predicted" in df.value.columns)
    spec = parse_config(dict(TINY))
    kv = estimate(spec, Plan(weights="fp32", batch=2, context=19, prompt_tokens=16, device="cpu")).kv_cache_bytes
    assert table["kv_cache predicted"].iloc[1] == f"{kv / 2**20:,.3f} MiB"
    assert table["kv_cache measured"].iloc[1] == f"{2 * 9728 / 2**20:,.3f} MiB"
    assert table["weights measured"].iloc[0] == f"{427264 / 2**20:,.3f} MiB"
    assert table["total measured"].iloc[0] == f"{414_000_000 / 2**30:,.3f} GiB"
    charts = [c for c in at.get("plotly_chart")]
    assert len(charts) >= 3  # bars per component, memory vs context, error per component


def test_start_then_cancel_a_real_run(db, tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(TINY))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.radio(key="prof_source_kind").set_value("config").run()
    at.text_input(key="prof_config").set_value(str(cfg))
    at.text_input(key="prof_batch").set_value("1")
    at.text_input(key="prof_context").set_value("8")
    at.button(key="prof_start").click().run()
    assert not at.exception, at.exception
    assert not at.error
    deadline = time.time() + 30
    runs = []
    while time.time() < deadline and not runs:
        with Store(db) as s:
            runs = s.list_runs()
        time.sleep(0.2)
    assert runs and runs[0]["status"] == "running"
    at.run()
    at.button(key="prof_cancel").click().run()
    deadline = time.time() + 60
    while time.time() < deadline:
        with Store(db) as s:
            status = s.get_run(runs[0]["id"])["status"]
        if status != "running":
            break
        time.sleep(0.3)
    assert status == "cancelled"


def test_memory_vs_context_puts_measured_peaks_as_markers():
    import pandas as pd

    from app import profile_charts as pc

    curve = pd.DataFrame({"batch": [1, 1, 1], "context": [8, 16, 32], "total": [2**30, 2 * 2**30, 3 * 2**30]})
    measured = pd.DataFrame({"batch": [1], "context": [16], "measured_total_bytes": [2**31 + 2**29]})
    fig = pc.memory_vs_context(curve, measured, "GiB")
    line, markers = fig.data
    assert list(line.y) == [1.0, 2.0, 3.0] and line.mode == "lines"
    assert list(markers.x) == [16] and list(markers.y) == [2.5] and markers.mode == "markers"


def test_stored_run_appears_in_the_multipage_app(db):
    rid = _stored_run(db)
    app = os.path.join(os.path.dirname(PAGE), os.pardir, "streamlit_app.py")
    at = AppTest.from_file(app, default_timeout=TIMEOUT).run()
    at.switch_page("app_pages/profile.py").run()
    assert not at.exception
    assert at.selectbox(key="prof_run").value == rid
    assert len(at.get("plotly_chart")) >= 3


def test_failed_run_shows_its_errors_without_charts(db):
    req = ProfileRequest(source="tiny", source_kind="config", weights="fp32", points=(Point(1, 16, 3),))
    with Store(db) as s:
        rid = s.create_run(model="tiny", device="cpu", weights="fp32", request=req.to_json(), config=TINY)
        s.add_point(rid, 0, req.points[0], "crashed", None, "worker killed by signal SIGKILL")
        s.finish_run(rid, "failed", "worker killed by signal SIGKILL")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("SIGKILL" in w.value for w in at.warning)
    table = next(df.value for df in at.dataframe if "status" in df.value.columns and "error" in df.value.columns)
    assert list(table["status"]) == ["crashed"]
    assert any("nothing to compare" in c.value for c in at.caption)


def test_without_torch_stored_runs_still_show(db, monkeypatch):
    import sys

    import streamlit as st

    rid = _stored_run(db)
    monkeypatch.setitem(sys.modules, "torch", None)  # as on a core-only install
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    finally:
        st.cache_resource.clear()
    assert not at.exception
    assert any("torch is not installed" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == "prof_start"]
    assert at.selectbox(key="prof_run").value == rid
