"""Reports: HTML opens offline in headless Chromium and shows the plan's total; Markdown and CSV carry the
plan, the breakdown, the GPU comparison, every assumption and a link back to the planner."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from app.report import build_report, planner_link, render_report
from planner.errors import InputError
from planner.estimate import Plan
from planner.export import _breakdown
from planner.gpus import find_gpu
from planner.scenario import ModelSource, Scenario, dumps, loads

REPO = Path(__file__).resolve().parent.parent
GIB = 1 << 30
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def _scenario(**plan) -> Scenario:
    mem = find_gpu("h200-sxm-141gb").memory_bytes
    kw = dict(weights="fp8", batch=16, context=32768, engine="vllm", tp=2, gpu_memory_bytes=mem, max_num_seqs=16)
    kw.update(plan)
    return Scenario(ModelSource(catalog="llama-3.1-70b"), Plan(**kw), gpu="h200-sxm-141gb", gpu_count=kw["tp"],
                    title="70B chat service")


@pytest.fixture(scope="module")
def scenario():
    return _scenario()


@pytest.fixture(scope="module")
def expected_total(scenario):
    return _breakdown(scenario.spec(), scenario.plan).total_bytes


def test_markdown_has_plan_breakdown_comparison_assumptions_and_link(scenario, expected_total, monkeypatch):
    monkeypatch.setenv("HEADROOM_PUBLIC_URL", "https://headroom.example.org/")
    md = render_report(scenario, "md", prices={"h200": 3.5})
    assert f"**Total: {expected_total / GIB:,.2f} GiB**" in md
    assert f"{expected_total:,}" in md
    assert "<https://headroom.example.org/?" in md
    b = _breakdown(scenario.spec(), scenario.plan)
    for path in b.as_dict():
        assert f"| {path} |" in md
    for a in b.assumptions:
        assert f"- {a}" in md
    assert "| NVIDIA H200 SXM 141GB HBM3e | 2 |" in md and "| 7.00 |" in md  # 2 x 3.50 USD per hour
    assert "vllm serve meta-llama/Llama-3.3-70B-Instruct" in md
    # the embedded scenario reproduces the plan
    embedded = md.split("```json\n", 1)[1].split("```", 1)[0]
    assert loads(embedded) == scenario


def test_csv_rows_add_up_to_the_total(scenario, expected_total):
    rows = list(csv.DictReader(io.StringIO(render_report(scenario, "csv"))))
    parts = [int(r["value"]) for r in rows if r["section"] == "breakdown" and r["name"] != "total"]
    total = [int(r["value"]) for r in rows if r["section"] == "breakdown" and r["name"] == "total"]
    assert sum(parts) == total[0] == expected_total
    assert any(r["section"] == "assumption" for r in rows)
    assert any(r["section"] == "gpu_comparison" for r in rows)
    assert any(r["section"] == "report" and r["name"] == "link" for r in rows)


def test_comparison_lists_the_fewest_gpus_of_each_model_that_fit(scenario):
    d = build_report(scenario)
    names = [o.gpu.name for o in d.comparison]
    assert len(names) == len(set(names)) and names
    for o in d.comparison:
        assert o.feasible and o.free_bytes >= 0
    counts = [o.count for o in d.comparison]
    assert counts == sorted(counts)
    assert all(o.reason for o in d.misfits)


def test_link_reproduces_the_plan_in_the_app(scenario):
    from urllib.parse import parse_qs, urlparse

    from app import hosted, state
    from app.app_pages.common import choices

    link = planner_link(scenario, "https://h.example")
    q = {k: v[-1] for k, v in parse_qs(urlparse(link).query).items()}
    inputs, problems = state.from_query(q, choices(hosted.policy()))
    assert not problems
    p = scenario.plan
    assert (inputs.model, inputs.weights, inputs.batch, inputs.context, inputs.engine, inputs.gpus) == (
        "llama-3.1-70b", p.weights, p.batch, p.context, p.engine, p.tp)
    assert find_gpu(inputs.gpu).name == "h200-sxm-141gb"


def test_html_is_self_contained(scenario):
    page = render_report(scenario, "html")
    assert "<script src=" not in page and "cdn.plot.ly" not in page.split("<body>", 1)[0]
    assert "Plotly" in page and len(page) > 1_000_000  # plotly.js inline


def test_cli_report_writes_each_format(tmp_path, capsys):
    from app.cli import main

    for ext in ("html", "md", "csv"):
        out = tmp_path / f"r.{ext}"
        rc = main(["report", "--out", str(out), "--model", "llama-3.1-8b", "--engine", "vllm", "--gpu", "l4-24gb",
                   "--context", "8192", "--batch", "4"])
        assert rc == 0, capsys.readouterr().err
        assert out.stat().st_size > 0
    capsys.readouterr()
    rc = main(["report", "--out", str(tmp_path / "r.pdf"), "--model", "llama-3.1-8b"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and ".html" in err


@pytest.mark.browser
def test_html_report_opens_offline_in_chromium_and_shows_the_total(tmp_path, scenario, expected_total):
    from playwright.sync_api import sync_playwright

    path = tmp_path / "report.html"
    path.write_text(render_report(scenario, "html"), encoding="utf-8")
    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(offline=True)
            page = context.new_page()

            def route(r):
                requests.append(r.request.url)
                if r.request.url.startswith("file://"):
                    r.continue_()
                else:
                    r.abort()

            page.route("**/*", route)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.as_uri())
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
            assert page.inner_text("#total") == f"{expected_total / GIB:,.2f} GiB"
            assert page.locator(".js-plotly-plot").count() == 2  # breakdown and GPU comparison charts drawn
            assert "fits on" in page.inner_text("#verdict")
            assert loads(page.inner_text("#scenario")) == scenario
            page.screenshot(path=str(tmp_path / "report.png"))
        finally:
            browser.close()
    assert all(u.startswith("file://") for u in requests), requests
    assert not errors, errors


def test_report_of_an_embedded_config_scenario(tmp_path):
    cfg = {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8,
           "num_key_value_heads": 4, "intermediate_size": 512, "vocab_size": 32000, "_name_or_path": "tiny"}
    s = Scenario(ModelSource.from_config(cfg), Plan(weights="bf16", gpu_memory_bytes=find_gpu("l4-24gb").memory_bytes),
                 gpu="l4-24gb")
    md = render_report(loads(dumps(s)), "md")
    assert "Headroom report: tiny" in md and "fits on NVIDIA L4 24GB" in md


def test_link_of_a_hub_model_names_the_repo():
    from urllib.parse import parse_qs, urlparse

    cfg = {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8,
           "num_key_value_heads": 4, "intermediate_size": 512, "vocab_size": 32000}
    s = Scenario(ModelSource.from_config(cfg, hub_id="org/tiny"), Plan(weights="bf16"))
    q = {k: v[-1] for k, v in parse_qs(urlparse(planner_link(s, "https://h.example")).query).items()}
    assert q["src"] == "hub" and q["hub"] == "org/tiny"


def test_app_hub_model_is_embedded_with_the_hosted_limits(monkeypatch):
    """The Export page's scenario of a hub model: config fetched with the policy's limits, then embedded."""
    from types import SimpleNamespace

    import app.hub
    from app import hosted
    from app.report import scenario_for

    cfg = {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8,
           "num_key_value_heads": 4, "intermediate_size": 512, "vocab_size": 32000}
    seen = {}

    def fake_fetch(repo_id, revision=None, **limits):
        seen.update(limits, repo_id=repo_id)
        return SimpleNamespace(config=lambda: cfg, repo_id=repo_id)

    monkeypatch.setattr(app.hub, "fetch_hub_model", fake_fetch)
    policy = hosted.Policy(hosted=True, allow_profile=False, allow_local_paths=False, hub_max_config_bytes=1234)
    inputs = SimpleNamespace(source="hub", hub="org/tiny", approximate=False, gpu="l4-24gb")
    r = SimpleNamespace(inputs=inputs, policy=policy, plan=Plan(weights="bf16"), gpus=1, gpu_label="")
    s = scenario_for(r)
    assert seen["repo_id"] == "org/tiny" and seen["max_config_bytes"] == 1234
    assert s.model.hub_id == "org/tiny" and s.model.config() == cfg and s.gpu == "l4-24gb"
    assert loads(dumps(s)) == s
    with pytest.raises(InputError, match="hosted mode"):
        scenario_for(SimpleNamespace(inputs=SimpleNamespace(source="path", path="/etc", approximate=False, gpu=""),
                                     policy=policy, plan=Plan(), gpus=1, gpu_label=""))


def _override_scenario() -> Scenario:
    """The QA repro: `headroom export --target scenario --model llama-3.1-8b --override
    overhead/cuda_context=400MiB --gpu l4-24gb`."""
    return Scenario(ModelSource(catalog="llama-3.1-8b"),
                    Plan(weights="auto", overrides=(("overhead/cuda_context", 400 << 20),)), gpu="l4-24gb")


def test_link_keeps_the_overrides_and_opens_the_same_plan():
    """QA: the link dropped --override, so the planner opened with a different total."""
    from urllib.parse import parse_qs, urlparse

    from app import hosted, state
    from app.app_pages.common import _gpu, choices, make_plan
    from planner.estimate import estimate

    s = _override_scenario()
    q = {k: v[-1] for k, v in parse_qs(urlparse(planner_link(s, "https://h.example")).query).items()}
    assert q["ov.overhead/cuda_context"] == str(400 << 20)
    inputs, problems = state.from_query(q, choices(hosted.policy()))
    assert not problems, problems
    assert inputs.overrides == s.plan.overrides
    plan = make_plan(inputs, _gpu(inputs)[1])
    assert (plan.weights, plan.kv_dtype, plan.batch, plan.context, plan.engine, plan.tp, plan.overrides) == (
        s.plan.weights, s.plan.kv_dtype, s.plan.batch, s.plan.context, s.plan.engine, s.plan.tp, s.plan.overrides)
    spec = s.spec()
    assert estimate(spec, plan).total_bytes == _breakdown(spec, s.plan).total_bytes
    assert estimate(spec, plan).total_bytes != estimate(spec, Plan(weights="auto")).total_bytes  # the override counts


def test_csv_numbers_are_plain_and_auto_choices_are_resolved():
    s = _override_scenario()
    rows = list(csv.reader(io.StringIO(render_report(s, "csv"))))
    plan = {r[1]: (r[2], r[3]) for r in rows if r[0] == "plan"}
    assert plan["parameters"][0] == str(_breakdown(s.spec(), s.plan).parameters)  # 8030261248, no separators
    assert plan["context (tokens per sequence)"] == ("8192", "tokens")
    assert plan["GPU memory (each)"] == (str(find_gpu("l4-24gb").memory_bytes), "bytes")
    assert plan["override overhead/cuda_context"] == (str(400 << 20), "bytes")
    for r in rows:
        if r[3] in ("bytes", "tokens", "requests", "bytes free per GPU"):
            assert int(r[2]) >= 0, r  # a plain integer
    assert plan["weights"][0] == "auto (bf16)" and plan["KV cache dtype"][0] == "auto (bf16)"
    md = render_report(s, "md")
    assert "| weights | auto (bf16) |" in md and "| KV cache dtype | auto (bf16) |" in md
    ll = Scenario(ModelSource(catalog="llama-3.1-8b"), Plan(engine="llamacpp"))
    md = render_report(ll, "md")
    assert "| weights | auto (gguf-Q4_K_M) |" in md and "| KV cache dtype | auto (f16) |" in md


@pytest.mark.parametrize("engine", ["transformers", "vllm"])
def test_gpu_comparison_concurrency_is_fits_max_batch(engine):
    """The report's GPU table uses recommend, whose verdicts are planner.fit's (with the plan's overrides)."""
    from planner.fit import fit

    s = Scenario(ModelSource(catalog="llama-3.1-8b"),
                 Plan(weights="bf16", batch=4, context=32768, engine=engine, max_num_seqs=4,
                      overrides=(("overhead/cuda_context", 900 << 20),)), gpu="l4-24gb")
    d = build_report(s)
    assert d.comparison
    spec = s.spec()
    for o in d.comparison:
        assert o.plan.overrides == s.plan.overrides
        f = fit(spec, o.plan, o.gpu.memory_bytes, o.count)
        assert f.fits and o.max_concurrency == f.max_batch, (o.label, o.max_concurrency, f.max_batch)
    if engine == "transformers":
        l4 = next(o for o in d.comparison if o.gpu.name == "l4-24gb")
        assert l4.count == 4  # QA: L4 was reported as needing more than 8 GPUs
