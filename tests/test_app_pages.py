"""The app through its seams (AppTest): widgets set by key, the numbers shown equal the planner's."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import replace

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app import charts, state
from planner.catalog import catalog_config, catalog_spec
from planner.errors import InputError, SourceError
from planner.estimate import Plan, estimate
from planner.fit import fit
from planner.gpus import find_gpu
from planner.params import parameter_components
from planner.spec import MAX_CONFIG_BYTES, parse_config

APP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app", "streamlit_app.py")
H100 = find_gpu("h100-sxm-80gb").memory_bytes
TIMEOUT = 60


def run_app(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    return at.run()


def qp(at: AppTest) -> dict[str, str]:
    """The app's query parameters as plain strings (the last value of a repeated key)."""
    return {k: (v if isinstance(v, str) else v[-1]) for k, v in at.query_params.items()}


def charts_shown(at: AppTest) -> list[dict]:
    """The plotly figures on the page, as JSON."""
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def _arr(v):
    """A plotly JSON array: a list, or a typed array {"dtype", "bdata"(base64)}."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return np.asarray(v).ravel().tolist()


def frame_with(at: AppTest, *columns: str):
    """The first table shown that has all ``columns`` (AppTest does not expose dataframe keys); else None."""
    for df in at.dataframe:
        v = df.value
        if all(c in v.columns for c in columns):
            return v
    return None


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def expected(spec, unit="GiB", **plan) -> dict[str, str]:
    b = estimate(spec, Plan(**{"weights": "bf16", "gpu_memory_bytes": H100, **plan}))
    f = lambda n: charts.fmt_bytes(n, unit)  # noqa: E731
    total_label = "Total per GPU" if plan.get("tp", 1) > 1 else "Total"
    return {"Parameters": f"{b.parameters / 1e9:,.3f} B", "Weights": f(b.weights_bytes),
            "KV cache": f(b.kv_cache_bytes), "Activations": f(b.activations_bytes), "Overhead": f(b.overhead_bytes),
            total_label: f(b.total_bytes)}


def shown(at: AppTest, exp: dict[str, str]) -> dict[str, str]:
    m = metrics(at)
    return {k: m.get(k) for k in exp}


def test_plan_page_defaults_show_the_planner_numbers():
    at = run_app()
    assert_clean(at)
    exp = expected(catalog_spec("llama-3.1-8b"))
    assert shown(at, exp) == exp
    assert qp(at)["model"] == "llama-3.1-8b"
    res = fit(catalog_spec("llama-3.1-8b"), Plan(weights="bf16", gpu_memory_bytes=H100), H100, 1)
    m = metrics(at)
    assert m["Largest batch at 8,192 tokens"] == f"{res.max_batch:,}"
    assert m["Largest context at batch 1"] == f"{res.max_context:,}"
    assert any(s.value.startswith("Fits on 1 × NVIDIA H100") for s in at.success) == res.fits
    params = frame_with(at, "component", "parameters")
    assert dict(zip(params["component"], params["parameters"], strict=True)) == \
        parameter_components(catalog_spec("llama-3.1-8b"))
    b = estimate(catalog_spec("llama-3.1-8b"), Plan(weights="bf16", gpu_memory_bytes=H100))
    assert {f"weights/{c}": n for c, n in zip(params["component"], params["weight bytes"], strict=True)} == \
        {p: n for p, n in b.as_dict().items() if p.startswith("weights/")}
    assert "Llama" in at.title[0].value


def test_changing_widgets_changes_the_numbers_and_the_link():
    at = run_app()
    at.number_input(key="hr_context").set_value(32768)
    at.number_input(key="hr_batch").set_value(4)
    at.selectbox(key="hr_weights").set_value("fp8")
    at.radio(key="hr_unit").set_value("GB")
    at.number_input(key="hr_gpus").set_value(2)
    at.run()
    assert_clean(at)
    exp = expected(catalog_spec("llama-3.1-8b"), "GB", weights="fp8", batch=4, context=32768, tp=2)
    assert shown(at, exp) == exp
    q = qp(at)
    assert q["context"] == "32768" and q["batch"] == "4" and q["weights"] == "fp8" and q["gpus"] == "2"
    link = at.sidebar.code[0].value
    assert "context=32768" in link and "weights=fp8" in link

    # the link reproduces the plan in a fresh session
    again = run_app(q)
    assert_clean(again)
    assert shown(again, exp) == exp
    assert not again.warning


@pytest.mark.parametrize(("engine", "weights", "kv"), [("vllm", "fp8", "fp8_e4m3"), ("llamacpp", "gguf-Q4_K_M", "q8_0")])
def test_engine_settings_reach_the_planner(engine, weights, kv):
    at = run_app()
    at.selectbox(key="hr_engine").set_value(engine).run()
    at.selectbox(key="hr_weights").set_value(weights)
    at.selectbox(key="hr_kv").set_value(kv)
    if engine == "vllm":
        at.slider(key="hr_util").set_value(0.8)
        at.number_input(key="hr_seqs").set_value(64)
        at.number_input(key="hr_ov_overhead/non_torch").set_value(100.0)  # an engine assumption overridden
    else:
        at.number_input(key="hr_ngl").set_value(20)
    at.run()
    assert_clean(at)
    extra = ({"gpu_memory_utilization": 0.8, "max_num_seqs": 64, "overrides": (("overhead/non_torch", 100 * 2**20),)}
             if engine == "vllm" else {"n_gpu_layers": 20})
    spec = catalog_spec("llama-3.1-8b")
    plan = Plan(engine=engine, weights=weights, kv_dtype=kv, gpu_memory_bytes=H100, **extra)
    exp = expected(spec, **{k: v for k, v in plan.__dict__.items() if k != "weights"}, weights=weights)
    assert shown(at, exp) == exp
    res = fit(spec, plan, H100, 1)
    m = metrics(at)
    assert m[f"Largest batch at {plan.context:,} tokens"] == f"{res.max_batch:,}"
    if engine == "vllm":
        assert m["vLLM KV-cache tokens"] == f"{res.kv_cache_tokens:,}"
        assert m["vLLM max concurrency"] == f"{res.max_concurrency:,.2f}×"
    elif res.host_bytes:
        assert m["Host RAM (llama.cpp)"] == charts.fmt_bytes(res.host_bytes, "GiB")
    q = qp(at)
    assert q["engine"] == engine and q["kv"] == kv


def test_a_bad_link_shows_what_is_wrong_and_keeps_the_defaults():
    at = run_app({"batch": "-3", "weights": "int3", "gremlins": "1", "context": "4096"})
    assert_clean(at)
    warnings = " ".join(w.value for w in at.sidebar.error)
    assert "batch must be from 1" in warnings and "unknown weight format" in warnings and "gremlins" in warnings
    exp = expected(catalog_spec("llama-3.1-8b"), context=4096)
    assert shown(at, exp) == exp


def _upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.radio(key="hr_source").set_value("upload").run()
    at.file_uploader(key="hr_upload_file").upload(name, data, "application/json")
    return at.run()


def test_an_uploaded_config_is_planned_and_travels_in_the_link():
    cfg = catalog_config("llama-3.2-1b")
    at = _upload(run_app(), "config.json", json.dumps(cfg, indent=2).encode())
    assert_clean(at)
    exp = expected(parse_config(cfg))
    assert shown(at, exp) == exp
    q = qp(at)
    assert q["src"] == "upload" and json.loads(state.decode_config(q["config"])) == cfg

    again = run_app(q)  # the config comes back from the link alone
    assert_clean(again)
    assert shown(again, exp) == exp


@pytest.mark.parametrize(("data", "needle"), [
    (b"this is not json", "is not valid JSON"),
    (b'{"hello": "world"}', "model_type"),
    (b"[1, 2, 3]", "must be a JSON object"),
    (b'{"model_type": "llama", "hidden_size": -5}', "hidden_size"),
    (b"{" + b" " * MAX_CONFIG_BYTES + b"}", "a model config is at most"),
])
def test_a_bad_upload_shows_a_clear_error_and_the_app_keeps_working(data, needle):
    at = _upload(run_app(), "bad.json", data)
    assert_clean(at)
    errors = " ".join(e.value for e in at.error)
    assert needle in errors, errors
    assert not at.metric
    at.radio(key="hr_source").set_value("catalog").run()  # recovers
    assert_clean(at)
    exp = expected(catalog_spec("llama-3.1-8b"))
    assert shown(at, exp) == exp


def test_a_config_too_large_for_a_link_makes_the_link_name_the_file():
    cfg = {**catalog_config("llama-3.2-1b"), "padding": [os.urandom(16).hex() for _ in range(2000)]}
    at = _upload(run_app(), "big-config.json", json.dumps(cfg).encode())
    assert_clean(at)
    q = qp(at)
    assert "config" not in q and q["upload"] == "big-config.json"
    again = run_app(q)
    assert_clean(again)
    assert "big-config.json" in " ".join(w.value for w in again.sidebar.warning)
    assert "upload that file" in " ".join(e.value for e in again.error)


def test_hub_failure_is_a_clear_error(monkeypatch):
    import app.hub

    def fail(*a, **k):
        raise SourceError("cannot reach the Hugging Face hub (offline?); upload the config.json instead")

    monkeypatch.setattr(app.hub, "fetch_hub_model", fail)
    at = run_app({"src": "hub", "hub": "org/some-model"})
    assert_clean(at)
    assert "cannot reach the Hugging Face hub" in " ".join(e.value for e in at.error)


def test_hub_model_is_planned_with_the_hub_limits(monkeypatch):
    import app.hub

    seen = {}
    cfg = catalog_config("qwen2.5-0.5b") if "qwen2" in _families() else catalog_config("llama-3.2-1b")

    def fake(repo_id, revision=None, **limits):
        seen.update(limits, repo_id=repo_id, revision=revision)
        return app.hub.HubModel(repo_id=repo_id, revision=None, sha=None, config_text=json.dumps(cfg), stored=None)

    monkeypatch.setattr(app.hub, "fetch_hub_model", fake)
    at = run_app({"src": "hub", "hub": "org/some-model@v1.0"})
    assert_clean(at)
    exp = expected(parse_config(cfg))
    assert shown(at, exp) == exp
    assert seen["repo_id"] == "org/some-model" and seen["revision"] == "v1.0"
    assert seen["max_config_bytes"] == MAX_CONFIG_BYTES
    assert qp(at)["hub"] == "org/some-model@v1.0"
    assert seen["timeout_s"] > 0


def _families():
    from planner.spec import supported_model_types

    return supported_model_types()


def test_explore_page_sweeps_with_the_planner():
    at = run_app()
    at.switch_page("app_pages/explore.py").run()
    assert_clean(at)
    at.multiselect(key="hr_ex_batches").set_value([1, 4])
    at.multiselect(key="hr_ex_formats").set_value(["bf16", "fp8"])
    at.run()
    assert_clean(at)
    table = frame_with(at, "format", "max_context").set_index("format")
    spec = catalog_spec("llama-3.1-8b")
    curves, heatmap = charts_shown(at)[:2]
    lines = {t["name"]: t for t in curves["data"]}
    assert set(lines) == {f"{f} · batch {b}" for f in ("bf16", "fp8") for b in (1, 4)}
    t = lines["fp8 · batch 4"]
    for x, y in zip(_arr(t["x"]), _arr(t["y"]), strict=True):
        b = estimate(spec, Plan(weights="fp8", batch=4, context=int(x), gpu_memory_bytes=H100))
        assert y == pytest.approx(b.total_bytes / 2**30)
    h = heatmap["data"][0]
    z = np.asarray(_arr(h["z"])).reshape(len(h["y"]), len(h["x"]))
    for i, bsz in enumerate(h["y"]):
        for j, ctx in enumerate(h["x"]):
            b = estimate(spec, Plan(weights="bf16", batch=int(bsz), context=int(ctx), gpu_memory_bytes=H100))
            assert z[i][j] == pytest.approx((H100 - b.total_bytes) / 2**30)
    assert not any(f.startswith("gguf-") for f in table.index)  # llama.cpp formats only with llama.cpp
    for fmt in ("bf16", "fp8", "bnb-nf4"):
        c = int(table.loc[fmt, "max_context"])
        res = fit(spec, Plan(weights=fmt, gpu_memory_bytes=H100), H100, 1)
        assert c == res.max_context > 0
        assert estimate(spec, Plan(weights=fmt, context=c, gpu_memory_bytes=H100)).total_bytes <= H100
        if c < res.context_limit:  # the boundary: one more token does not fit
            assert estimate(spec, Plan(weights=fmt, context=c + 1, gpu_memory_bytes=H100)).total_bytes > H100


def test_compare_page_lists_fits_with_cost_and_misfits_with_reasons():
    model = "llama-3.1-70b" if "llama-3.1-70b" in _catalog() else "llama-3.1-8b"
    at = run_app({"model": model})
    at.switch_page("app_pages/compare.py").run()
    at.text_area(key="hr_cmp_prices").set_value("h100-sxm-80gb = 2.5\nh200-sxm-141gb = 4\nnot-a-gpu = 1")
    at.run()
    assert_clean(at)
    assert "not-a-gpu" in " ".join(e.value for e in at.error)
    spec = catalog_spec(model)
    fits = frame_with(at, "option", "gpus")
    assert len(fits) > 0
    prices = {"h100-sxm-80gb": 2.5, "h200-sxm-141gb": 4.0}
    for _, row in fits.iterrows():  # each option shown fits, with the planner's per-GPU numbers
        n, mem = int(row["gpus"]), find_gpu(row["gpu"]).memory_bytes
        b = estimate(spec, Plan(weights="bf16", tp=n, gpu_memory_bytes=mem))
        assert fit(spec, Plan(weights="bf16", gpu_memory_bytes=mem), mem, n).fits
        for k in range(1, n):  # the smallest count that fits (counts that do not divide the heads are invalid)
            try:
                assert not fit(spec, Plan(weights="bf16", gpu_memory_bytes=mem), mem, k).fits
            except InputError:
                pass
        assert row["plan per GPU (GiB)"] == pytest.approx(b.total_bytes / 2**30)
        if row["gpu"] in prices:
            assert row["cost_per_hour"] == pytest.approx(prices[row["gpu"]] * n)
            assert row["cost_per_month"] == pytest.approx(prices[row["gpu"]] * n * 730)
    priced = fits["cost_per_hour"].dropna().tolist()
    assert priced == sorted(priced) and priced == fits["cost_per_hour"].tolist()[: len(priced)]
    mis = frame_with(at, "reason")
    if mis is not None:  # every misfit says why
        assert (mis["reason"].str.len() > 0).all()


def _catalog():
    from planner.catalog import catalog

    return catalog()


def test_assumptions_page_lists_the_plan_components_with_formulas():
    at = run_app()
    at.switch_page("app_pages/assumptions.py").run()
    assert_clean(at)
    comps = frame_with(at, "component", "bytes", "formula")
    b = estimate(catalog_spec("llama-3.1-8b"), Plan(weights="bf16", gpu_memory_bytes=H100))
    assert dict(zip(comps["component"], comps["bytes"], strict=True)) == b.as_dict()


def test_switching_to_llamacpp_picks_a_gguf_format_and_back():
    at = run_app()
    at.selectbox(key="hr_engine").set_value("llamacpp").run()
    assert_clean(at)
    assert at.selectbox(key="hr_weights").value == "gguf-Q4_K_M"
    assert any("GGUF" in i.value for i in at.sidebar.info)
    assert not at.error and metrics(at)["Total"]
    at.selectbox(key="hr_engine").set_value("transformers").run()
    assert at.selectbox(key="hr_weights").value == "auto"  # back to the checkpoint's own (bf16 here)
    exp = expected(catalog_spec("llama-3.1-8b"))
    assert shown(at, exp) == exp


def test_overhead_overrides_travel_in_the_link():
    name = "overhead/cuda_context"
    at = run_app({f"ov.{name}": str(300 * 2**20)})
    assert_clean(at)
    assert at.number_input(key=f"hr_ov_{name}").value == 300.0  # MiB
    exp = expected(catalog_spec("llama-3.1-8b"), overrides=((name, 300 * 2**20),))
    assert shown(at, exp) == exp
    at.number_input(key=f"hr_ov_{name}").set_value(200.0).run()
    assert qp(at)[f"ov.{name}"] == str(200 * 2**20)
    at.number_input(key=f"hr_ov_{name}").set_value(None).run()  # empty = the default: not in the link
    assert f"ov.{name}" not in qp(at)
    bad = run_app({f"ov.{name}": "-5", "ov.overhead/gremlins": "1"})
    errors = " ".join(e.value for e in bad.sidebar.error)
    assert "override overhead/cuda_context must be from 0" in errors and "gremlins" in errors


def test_page_settings_survive_a_visit_to_another_page():
    at = run_app()
    at.switch_page("app_pages/explore.py").run()
    at.multiselect(key="hr_ex_batches").set_value([2, 16]).run()
    at.switch_page("app_pages/plan.py").run()
    at.switch_page("app_pages/explore.py").run()
    assert_clean(at)
    assert at.multiselect(key="hr_ex_batches").value == [2, 16]


def test_an_unexpected_planner_failure_is_a_message_not_a_traceback(monkeypatch):
    import app.hub

    def broken(*a, **k):
        raise ConnectionResetError("peer reset")

    monkeypatch.setattr(app.hub, "fetch_hub_model", broken)
    at = run_app({"src": "hub", "hub": "org/model"})
    assert_clean(at)
    assert "ConnectionResetError: peer reset" in " ".join(e.value for e in at.error)


def test_plan_charts_carry_the_breakdown():
    at = run_app()
    b = estimate(catalog_spec("llama-3.1-8b"), Plan(weights="bf16", gpu_memory_bytes=H100))
    figs = {f["data"][0]["type"]: f for f in charts_shown(at)}
    bar = [t for t in figs["bar"]["data"]]
    assert {t["name"]: t["x"][0] * 2**30 for t in bar} == pytest.approx(b.as_dict())
    assert figs["indicator"]["data"][0]["value"] == pytest.approx(b.total_bytes / 2**30)
    at.radio(key="plan_chart").set_value("Treemap").run()
    tm = next(f for f in charts_shown(at) if f["data"][0]["type"] == "treemap")["data"][0]
    roots = [v for v, p in zip(_arr(tm["values"]), tm["parents"], strict=True) if p == ""]
    assert sum(roots) * 2**30 == pytest.approx(b.total_bytes)


def test_a_llamacpp_link_without_weights_plans_a_gguf_file():
    at = run_app({"engine": "llamacpp"})
    assert_clean(at)
    assert at.selectbox(key="hr_weights").value == "gguf-Q4_K_M" and not at.error
    exp = expected(catalog_spec("llama-3.1-8b"), engine="llamacpp", weights="gguf-Q4_K_M")
    assert shown(at, exp) == exp


# --- QA findings -----------------------------------------------------------------------------------------

H200 = find_gpu("h200-sxm-141gb").memory_bytes


def test_a_checkpoints_own_format_is_the_default_as_in_the_cli():
    """DeepSeek-V3 ships fp8 with 128x128 block scales: the app plans that by default, not bf16."""
    spec = catalog_spec("deepseek-v3")
    q = {"src": "catalog", "model": "deepseek-v3", "engine": "vllm", "gpu": "h200-sxm-141gb", "gpus": "8"}
    at = run_app(q)
    assert_clean(at)
    w = at.selectbox(key="hr_weights")
    assert w.value == "auto"
    assert "auto (fp8-block, the checkpoint's own)" in w.options
    plan = Plan(weights="auto", engine="vllm", tp=8, gpu_memory_bytes=H200)
    own, bf16 = estimate(spec, plan), estimate(spec, replace(plan, weights="bf16"))
    assert own.weights_bytes < bf16.weights_bytes
    assert metrics(at)["Weights"] == charts.fmt_bytes(own.weights_bytes, "GiB")
    res = fit(spec, plan, H200, 8)
    assert res.fits  # what `headroom fit --model deepseek-v3 --gpu h200-sxm-141gb --gpus 8 --engine vllm` says
    assert any(s.value.startswith("Fits on 8 × NVIDIA H200") for s in at.success) and not at.error
    assert qp(at)["weights"] == "auto"
    assert "auto (fp8-block)" in at.caption[0].value

    # another model: still auto (its own format); an explicit choice survives a model change
    at.selectbox(key="hr_model").set_value("llama-3.1-8b").run()
    assert at.selectbox(key="hr_weights").value == "auto"
    assert "auto (bf16, the checkpoint's own)" in at.selectbox(key="hr_weights").options
    at.selectbox(key="hr_weights").set_value("fp8").run()
    at.selectbox(key="hr_model").set_value("deepseek-v3").run()
    assert_clean(at)
    assert at.selectbox(key="hr_weights").value == "fp8" and qp(at)["weights"] == "fp8"


def test_vllm_free_is_named_as_the_unused_kv_pool_with_the_budget():
    model = "llama-3.1-70b" if "llama-3.1-70b" in _catalog() else "llama-3.1-8b"
    at = run_app({"model": model, "engine": "vllm", "gpus": "2"})
    assert_clean(at)
    spec = catalog_spec(model)
    plan = Plan(weights="auto", engine="vllm", tp=2, gpu_memory_bytes=H100)
    res, b = fit(spec, plan, H100, 2), estimate(spec, plan)
    verdict = " ".join(s.value for s in at.success) + " ".join(e.value for e in at.error)
    assert f"KV pool left unused by 1 request of 8,192 tokens: {charts.fmt_bytes(res.free_bytes, 'GiB')}" in verdict
    assert " free" not in verdict
    budget = [c.value for c in at.caption if "gpu_memory_utilization × memory" in c.value]
    assert budget and f"0.9 × {charts.fmt_bytes(H100, 'GiB')} = {charts.fmt_bytes(b.total_bytes, 'GiB')}" in budget[0]


def test_vllm_on_an_apple_gpu_is_an_error_without_a_verdict():
    at = run_app({"engine": "vllm", "gpu": "apple-m4-max-128gb"})
    assert_clean(at)
    assert not at.success and not at.metric
    assert any("vLLM does not run on Apple GPUs" in e.value for e in at.error)
    at.selectbox(key="hr_engine").set_value("transformers").run()  # the same Mac with transformers is planned
    assert_clean(at)
    assert at.success or at.error and metrics(at)["Total"]


def test_compare_tries_one_apple_gpu_only_and_none_for_vllm():
    at = run_app({"model": "llama-3.1-8b"})
    at.switch_page("app_pages/compare.py").run()
    at.checkbox(key="hr_cmp_all").check().run()
    assert_clean(at)
    fits = frame_with(at, "option", "gpus")
    apple = fits[fits["gpu"].str.startswith("apple-")]
    assert len(apple) > 0 and set(apple["gpus"]) == {1}
    assert fits[~fits["gpu"].str.startswith("apple-")]["gpus"].max() > 1  # the others are tried at 1..8

    at = run_app({"model": "llama-3.1-8b", "engine": "vllm"})
    at.switch_page("app_pages/compare.py").run()
    assert_clean(at)
    fits, mis = frame_with(at, "option", "gpus"), frame_with(at, "reason")
    assert not fits["gpu"].str.startswith("apple-").any()
    reasons = dict(zip(mis["gpu"], mis["reason"], strict=True))
    assert "vLLM does not run on Apple GPUs" in reasons["apple-m4-max-128gb"]


def test_metric_values_fit_their_columns():
    """Six metrics in one row cut "1,249.88 GiB" at 1440 px; at most three per row leave room."""
    at = run_app({"model": "deepseek-v3", "weights": "bf16"})
    assert_clean(at)
    assert metrics(at)["Weights"].startswith("1,2")
    six = {"Parameters", "Weights", "KV cache", "Activations", "Overhead", "Total"}
    weights = [c.weight for c in at.columns if {m.label for m in c.metric} & six]
    assert len(weights) == 6 and min(weights) >= 1 / 3 - 1e-6, weights


def test_an_attention_the_model_does_not_run_is_explained():
    at = run_app({"model": "gemma-2-9b"})
    assert_clean(at)
    note = [c.value for c in at.sidebar.caption if "runs **eager** attention" in c.value]
    assert note, [c.value for c in at.sidebar.caption]
    at = run_app({"model": "llama-3.1-8b"})
    assert not [c for c in at.sidebar.caption if "attention in transformers" in c.value]


def test_an_unsupported_model_type_names_the_checkbox_not_a_cli_flag():
    cfg = {**catalog_config("llama-3.1-8b"), "model_type": "not-a-real-arch"}
    at = run_app()
    at.radio(key="hr_source").set_value("upload").run()
    at.text_area(key="hr_paste").set_value(json.dumps(cfg)).run()
    assert_clean(at)
    text = " ".join(e.value for e in at.error)
    assert "not-a-real-arch" in text and "--approximate" not in text
    assert "Plan unsupported model types as llama-like (approximate)" in text
    at.checkbox(key="hr_approx").check().run()
    assert not at.error and metrics(at)["Total"]


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("hr_context", 0, "Context must be a whole number of tokens per sequence from 1"),
    ("hr_context", -5, "got -5"),
    ("hr_batch", 0, "Batch must be a whole number of sequences from 1"),
])
def test_an_invalid_typed_number_is_an_error_naming_the_field(key, value, needle):
    at = run_app()
    at.number_input(key="hr_context").set_value(4096).run()
    at.number_input(key=key).set_value(value).run()
    assert_clean(at)
    assert any(needle in e.value for e in at.sidebar.error)
    assert any(needle in e.value for e in at.main.error)
    assert not at.metric  # no plan from a value the user did not mean
    assert qp(at)["context"] == "4096"  # the link keeps the last valid plan
    at.number_input(key=key).set_value(2).run()
    assert not at.error and metrics(at)["Total"]


def test_the_profile_page_does_not_show_the_plan_sidebar_and_keeps_the_plan():
    at = run_app({"model": "qwen2.5-7b", "context": "4096"})
    assert at.sidebar.selectbox(key="hr_weights")
    at.switch_page("app_pages/profile.py").run()
    keys = {getattr(w, "key", None) for w in at.sidebar.selectbox} | {getattr(w, "key", None) for w in at.sidebar.number_input}
    assert not {k for k in keys if k and k.startswith("hr_")}
    at.switch_page("app_pages/plan.py").run()
    assert_clean(at)
    assert at.selectbox(key="hr_model").value == "qwen2.5-7b" and at.number_input(key="hr_context").value == 4096
