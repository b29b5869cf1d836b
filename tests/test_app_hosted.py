"""Hosted mode hides what it must, and the app runs with only the core install (no torch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from streamlit.testing.v1 import AppTest

from app import charts, hosted
from app.app_pages import common
from planner.catalog import catalog_spec
from planner.estimate import Plan, estimate
from planner.gpus import find_gpu

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(REPO, "app", "streamlit_app.py")


def test_mode_comes_from_the_environment():
    assert hosted.mode({"HEADROOM_MODE": "hosted"}) == "hosted"
    assert hosted.mode({"HEADROOM_MODE": " Hosted "}) == "hosted"
    assert hosted.mode({"HEADROOM_MODE": "local"}) == "local"
    assert hosted.policy({"HEADROOM_MODE": "hosted"}) == hosted.HOSTED


def test_hosted_policy_forbids_profiling_local_paths_and_remote_code():
    p = hosted.HOSTED
    assert not p.allow_profile and not p.allow_local_paths and not p.trust_remote_code
    assert p.hub_timeout_s <= 10 and p.hub_max_header_bytes <= 25 << 20 and p.hub_max_config_bytes <= 1 << 20
    assert not hosted.LOCAL.trust_remote_code


def test_hosted_navigation_has_no_profile_page(tmp_path):
    for f in ("plan.py", "profile.py", "export.py"):
        (tmp_path / f).write_text("")
    local = [p.file for p in common.nav_pages(hosted.LOCAL, str(tmp_path))]
    remote = [p.file for p in common.nav_pages(hosted.HOSTED, str(tmp_path))]
    assert local == ["plan.py", "profile.py", "export.py"]
    assert remote == ["plan.py", "export.py"]


def test_hosted_app_shows_the_banner_and_refuses_local_paths(monkeypatch):
    monkeypatch.setenv("HEADROOM_MODE", "hosted")
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["src"] = "path"
    at.query_params["path"] = "/etc/passwd"
    at.run()
    assert not at.exception
    assert any("Hosted planner" in i.value for i in at.info)
    assert "Local path" not in at.radio(key="hr_source").options
    assert any("local paths are disabled" in w.value for w in at.sidebar.error)
    h100 = find_gpu("h100-sxm-80gb").memory_bytes
    b = estimate(catalog_spec("llama-3.1-8b"), Plan(weights="bf16", gpu_memory_bytes=h100))
    assert {m.label: m.value for m in at.metric}["Total"] == charts.fmt_bytes(b.total_bytes, "GiB")


def test_local_app_reads_a_local_checkpoint_with_its_safetensors_headers(monkeypatch, tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    from planner.spec import parse_config
    from planner.stored import read_model_dir

    monkeypatch.delenv("HEADROOM_MODE", raising=False)
    cfg = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
           "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 256, "torch_dtype": "float16"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    save_file({"model.embed_tokens.weight": np.zeros((256, 64), np.float16),
               "model.layers.0.mlp.up_proj.weight": np.zeros((128, 64), np.float32)},
              str(tmp_path / "model.safetensors"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["src"] = "path"
    at.query_params["path"] = str(tmp_path)
    at.query_params["weights"] = "auto"
    at.run()
    assert not at.exception and not at.info
    assert "Local path" in at.radio(key="hr_source").options
    h100 = find_gpu("h100-sxm-80gb").memory_bytes
    b = estimate(parse_config(cfg), Plan(weights="auto", gpu_memory_bytes=h100), read_model_dir(tmp_path))
    table = next(d.value for d in at.dataframe if {"component", "bytes", "share"} <= set(d.value.columns))
    assert dict(zip(table["component"], table["bytes"], strict=True)) == b.as_dict()  # exact bytes
    assert b.as_dict()["weights/embeddings"] == 256 * 64 * 2  # as stored (float16), not recomputed
    assert any("safetensors" in a for a in b.assumptions)


# The core install has no torch, transformers, bitsandbytes or accelerate: block them and run every page.
_CORE_ONLY = textwrap.dedent(r"""
    import importlib.abc, json, sys
    BLOCKED = {"torch", "transformers", "bitsandbytes", "accelerate"}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked: core install only")
            return None

    sys.meta_path.insert(0, Block())
    from streamlit.testing.v1 import AppTest

    app = sys.argv[1]
    at = AppTest.from_file(app, default_timeout=120).run()
    out = {"pages": {}}
    for page in sys.argv[2:]:
        if page != "plan.py":
            at.switch_page("app_pages/" + page)
        at.run()
        out["pages"][page] = {
            "exceptions": [e.value for e in at.exception],
            "errors": [e.value for e in at.error],
            "metrics": {m.label: m.value for m in at.metric},
            "banner": any("Hosted planner" in i.value for i in at.info),
        }
    out["heavy_imported"] = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print("RESULT " + json.dumps(out))
""")


def test_hosted_app_runs_every_page_with_only_the_core_install(tmp_path):
    # HEADROOM_MODE comes from Streamlit secrets here (not the environment): both switches work.
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text('HEADROOM_MODE = "hosted"\n')
    env = {k: v for k, v in os.environ.items() if k != "HEADROOM_MODE"}
    env["PYTHONPATH"] = REPO
    pages = [p.file for p in common.nav_pages(hosted.HOSTED)]
    assert "profile.py" not in pages
    proc = subprocess.run([sys.executable, "-c", _CORE_ONLY, APP, *pages], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-4000:]
    out = json.loads(line[len("RESULT "):])
    assert out["heavy_imported"] == []
    for page, res in out["pages"].items():
        assert res["exceptions"] == [], (page, res["exceptions"])
        assert res["banner"], page
    h100 = find_gpu("h100-sxm-80gb").memory_bytes
    b = estimate(catalog_spec("llama-3.1-8b"), Plan(weights="bf16", gpu_memory_bytes=h100))
    assert out["pages"]["plan.py"]["metrics"]["Total"] == charts.fmt_bytes(b.total_bytes, "GiB")


def test_the_container_installs_only_the_core_and_runs_hosted():
    text = open(os.path.join(REPO, "Dockerfile")).read()
    assert "HEADROOM_MODE=hosted" in text
    runs = [line for line in text.splitlines() if line.startswith("RUN ")]
    installs = [part.strip() for line in runs for part in line[4:].split("&&") if "pip install" in part]
    assert installs == ["pip install ."]  # the core only: no [profile] extra, no torch
    for path in ("planner", "app", "assets", ".streamlit", "pyproject.toml"):  # everything the app reads
        assert f"COPY {path}" in text, path
    assert '"app/streamlit_app.py"' in text


def test_hosted_hub_access_uses_the_hosted_limits(monkeypatch):
    import app.hub

    seen = {}

    def fake(repo_id, revision=None, **limits):
        seen.update(limits)
        raise app.hub.SourceError("offline")

    monkeypatch.setenv("HEADROOM_MODE", "hosted")
    monkeypatch.setattr(app.hub, "fetch_hub_model", fake)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["src"] = "hub"
    at.query_params["hub"] = "org/model"
    at.run()
    assert not at.exception
    assert seen == {"max_config_bytes": hosted.HOSTED.hub_max_config_bytes,
                    "max_header_bytes": hosted.HOSTED.hub_max_header_bytes, "timeout_s": hosted.HOSTED.hub_timeout_s}
    assert any("offline" in e.value for e in at.error)
