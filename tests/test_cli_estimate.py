"""``headroom estimate`` end to end, in subprocesses (what a user runs).

Errors must be one line on stderr with exit status 2 and no traceback. Expected numbers come from the
safetensors library (bytes of tensors the test writes) and from Meta's published parameter count for
Llama-3.1-8B: 8,030,261,248 (the "safetensors" parameter total shown on
https://huggingface.co/meta-llama/Llama-3.1-8B).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hubmock import HubMock  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LLAMA_31_8B_PARAMETERS = 8_030_261_248
TINY = json.load(open(os.path.join(REPO, "assets", "models", "llama-3.2-1b.json")))
TINY.update(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=128, head_dim=16)
TENSORS = {
    "model.embed_tokens.weight": torch.randn(128, 64, dtype=torch.bfloat16),
    "model.layers.0.self_attn.q_proj.weight": torch.zeros(64, 64, dtype=torch.float8_e4m3fn),
    "model.layers.0.self_attn.q_proj.weight_scale_inv": torch.ones(1, 1),
    "model.layers.0.mlp.up_proj.weight": torch.randn(96, 64, dtype=torch.bfloat16),
}
REAL_BYTES = sum(t.numel() * t.element_size() for t in TENSORS.values())


def headroom(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_ENDPOINT")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=120)


def in_process(capsys, *args: str) -> subprocess.CompletedProcess:
    """The same entry point in this process (cheaper than a subprocess; start-up cost is tested elsewhere)."""
    from app.cli import main

    capsys.readouterr()
    try:
        rc = main(list(args))
    except SystemExit as e:  # argparse usage errors
        rc = e.code
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc, out.out, out.err)


def assert_one_line_error(r: subprocess.CompletedProcess, *fragments: str) -> None:
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


# ---------------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------------

def test_json_for_a_catalog_model():
    r = headroom("estimate", "--model", "llama-3.1-8b", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for key in ("parameters", "weights_bytes", "kv_cache_bytes", "activations_bytes", "overhead_bytes",
                "total_bytes"):
        assert isinstance(out[key], int) and not isinstance(out[key], bool), key
    assert out["parameters"] == LLAMA_31_8B_PARAMETERS
    assert out["weights_bytes"] == 2 * LLAMA_31_8B_PARAMETERS  # bfloat16 checkpoint
    assert sum(out["components"].values()) == out["total_bytes"]
    assert all(k.split("/")[0] in ("weights", "kv_cache", "activations", "overhead") for k in out["components"])
    assert isinstance(out["assumptions"], list) and out["assumptions"]


def test_table_shows_gib_and_gb_groups_totals_and_assumptions(capsys):
    r = headroom("estimate", "--model", "llama-3.1-8b")
    assert r.returncode == 0, r.stderr
    out = json.loads(in_process(capsys, "estimate", "--model", "llama-3.1-8b", "--json").stdout)
    lines = r.stdout.splitlines()
    header = next(line for line in lines if line.startswith("component"))
    assert "GiB" in header and "GB" in header
    total = next(line for line in lines if line.startswith("total"))
    assert f"{out['total_bytes'] / 2**30:,.3f}" in total and f"{out['total_bytes'] / 1e9:,.3f}" in total
    weights = next(line for line in lines if line.startswith("weights "))
    assert f"{out['weights_bytes'] / 2**30:,.3f}" in weights
    for path in out["components"]:
        assert any(line.strip().startswith(path) for line in lines), path
    assert "assumptions:" in lines
    # aligned: the GiB and GB columns end at the same place on every row with numbers
    rows = [re.match(r"^(\s*\S+)\s+([\d,.]+)\s+([\d,.]+)", line) for line in lines
            if line.startswith(("weights", "  weights/", "total"))]
    assert len(rows) >= 3 and all(rows)
    assert len({m.end(2) for m in rows}) == 1 and len({m.end(3) for m in rows}) == 1


def test_config_file(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    r = in_process(capsys, "estimate", "--config", str(tmp_path / "config.json"), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["weights_bytes"] == 2 * out["parameters"]


def test_model_directory_uses_safetensors_header_bytes(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    save_file(TENSORS, str(tmp_path / "model.safetensors"))
    r = headroom("estimate", "--config", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["weights_bytes"] == REAL_BYTES
    assert out["components"]["weights/quant_state"] == 4
    assert any("safetensors" in a for a in out["assumptions"])


def test_model_directory_table_names_the_source(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    save_file(TENSORS, str(tmp_path / "model.safetensors"))
    table = in_process(capsys, "estimate", "--config", str(tmp_path)).stdout
    assert "safetensors header" in table


def test_explicit_weight_format_ignores_stored_bytes(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    save_file(TENSORS, str(tmp_path / "model.safetensors"))
    out = json.loads(in_process(capsys, "estimate", "--config", str(tmp_path), "--weights", "fp32", "--json").stdout)
    assert out["weights_bytes"] == 4 * out["parameters"]


def test_cli_start_up_stays_light_without_hub():
    code = ("import sys, contextlib, io; from app.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['estimate', '--model', 'llama-3.1-8b', '--json'])\n"
            "print(sorted(m for m in ('huggingface_hub', 'torch', 'transformers', 'streamlit', 'pandas') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------------
# errors: one line, exit 2
# ---------------------------------------------------------------------------------------------------

def test_unknown_model():
    assert_one_line_error(headroom("estimate", "--model", "llama-9"), "unknown model 'llama-9'", "headroom models")


def test_missing_file(tmp_path):
    assert_one_line_error(headroom("estimate", "--config", str(tmp_path / "nope.json")), "cannot read", "nope.json")


def test_directory_without_config(tmp_path, capsys):
    assert_one_line_error(in_process(capsys, "estimate", "--config", str(tmp_path)), "has no config.json")


def test_invalid_json(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    assert_one_line_error(headroom("estimate", "--config", str(tmp_path / "config.json")), "not valid JSON")


def test_oversized_config(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({**TINY, "pad": "x" * (1 << 20)}))
    assert_one_line_error(in_process(capsys, "estimate", "--config", str(tmp_path / "config.json")),
                          "a model config is at most 1,048,576 bytes")


def test_config_not_an_object(tmp_path):
    (tmp_path / "config.json").write_text("[1, 2, 3]")
    assert_one_line_error(headroom("estimate", "--config", str(tmp_path / "config.json")), "JSON object")


def test_unsupported_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({**TINY, "model_type": "not_a_model"}))
    assert_one_line_error(headroom("estimate", "--config", str(tmp_path / "config.json")),
                          "'not_a_model' is not supported", "--approximate")


def test_corrupt_safetensors_in_directory(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    (tmp_path / "model.safetensors").write_bytes(b"\x05\x00")
    assert_one_line_error(in_process(capsys, "estimate", "--config", str(tmp_path)), "model.safetensors",
                          "not a safetensors file")


def test_negative_batch():
    assert_one_line_error(headroom("estimate", "--model", "llama-3.1-8b", "--batch", "-3"),
                          "--batch", "at least 1")


@pytest.mark.parametrize("flag, value, fragment", [
    ("--batch", "zero", "--batch"),
    ("--context", "0", "--context"),
    ("--engine", "tgi", "--engine"),
])
def test_bad_plan_arguments(capsys, flag, value, fragment):
    assert_one_line_error(in_process(capsys, "estimate", "--model", "llama-3.1-8b", flag, value), fragment)


def test_no_model_source(capsys):
    assert_one_line_error(in_process(capsys, "estimate"), "--model", "--config", "--hub")


def test_unknown_weight_format():
    assert_one_line_error(headroom("estimate", "--model", "llama-3.1-8b", "--weights", "int3"),
                          "unknown weight format 'int3'")


def test_revision_without_hub(capsys):
    assert_one_line_error(in_process(capsys, "estimate", "--model", "llama-3.1-8b", "--revision", "v1"),
                          "--revision")


# ---------------------------------------------------------------------------------------------------
# --hub against the local hub mock
# ---------------------------------------------------------------------------------------------------

@pytest.fixture
def hub(tmp_path):
    with HubMock() as mock:
        mock.add_repo("org/tiny", {"config.json": json.dumps(TINY).encode(), "model.safetensors": save(TENSORS)})
        mock.add_repo("org/gated", {"config.json": json.dumps(TINY).encode()}, gated=True, tokens=("hf_ok",))
        mock.env = {"HF_ENDPOINT": mock.url, "HF_HUB_CACHE": str(tmp_path / "hf-cache"), "HF_HUB_OFFLINE": "0"}
        yield mock


def test_hub_json(hub):
    r = headroom("estimate", "--hub", "org/tiny", "--json", env=hub.env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["weights_bytes"] == REAL_BYTES
    assert out["components"]["weights/quant_state"] == 4


def test_hub_gated_with_token(hub):
    r = headroom("estimate", "--hub", "org/gated", "--json", env={**hub.env, "HF_TOKEN": "hf_ok"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["parameters"] > 0


@pytest.mark.parametrize("args, fragments", [
    (("--hub", "org/missing"), ("no model repo 'org/missing'", "check the repo id")),
    (("--hub", "org/gated"), ("gated", "set HF_TOKEN")),
])
def test_hub_errors(hub, args, fragments):
    assert_one_line_error(headroom("estimate", *args, env=hub.env), *fragments)


@pytest.mark.parametrize("args, env, fragments", [
    (("--hub", "org/tiny", "--revision", "nope"), {}, ("no revision 'nope'",)),
    (("--hub", "not a repo"), {}, ("not a Hugging Face repo id",)),
    (("--hub", "org/tiny"), {"HF_ENDPOINT": "http://127.0.0.1:9"}, ("cannot reach the hub", "--config")),
])
def test_more_hub_errors(hub, monkeypatch, capsys, args, env, fragments):
    from app.hub import clear_cache

    for k, v in {**hub.env, **env}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    clear_cache()
    assert_one_line_error(in_process(capsys, "estimate", *args), *fragments)
