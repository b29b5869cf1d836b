"""End-to-end profiles of tiny synthetic llamas on CPU: the measured weight, quant-state and KV-cache
bytes (tensor ``nbytes`` of the real model and cache after real forward passes) equal the planner's
prediction exactly.

fp32 goes through everything a user runs: ``headroom profile ... --json`` -> child worker -> SQLite ->
reconcile -> ``headroom runs``. The other formats run the same worker code (:func:`profiler.worker.run`)
in this process, which saves a torch import per format.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json

import pytest

pytest.importorskip("torch")

from app.cli import main  # noqa: E402
from planner.spec import parse_config  # noqa: E402
from profiler.reconcile import reconcile_point  # noqa: E402
from profiler.request import ProfileRequest, grid  # noqa: E402
from tests._profiling import exact_mismatches  # noqa: E402

TINY = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256,
        "max_position_embeddings": 4096, "tie_word_embeddings": False, "rms_norm_eps": 1e-5}


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("profile")
    cfg = d / "config.json"
    cfg.write_text(json.dumps(TINY))
    db = d / "runs.db"
    rc, out, err = _cli(["profile", "--config", str(cfg), "--synthetic", "--device", "cpu", "--weights", "fp32",
                         "--batch", "1,3", "--context", "16,40", "--new-tokens", "3", "--db", str(db), "--json"])
    return {"rc": rc, "json": json.loads(out) if out.strip() else None, "err": err, "db": str(db)}


def test_cli_profile_runs_every_point_ok(cli_run):
    assert cli_run["rc"] == 0, cli_run["err"]
    doc = cli_run["json"]
    assert doc["status"] == "done"
    assert [(p["batch"], p["prompt_tokens"], p["new_tokens"]) for p in doc["points"]] == [
        (1, 16, 3), (1, 40, 3), (3, 16, 3), (3, 40, 3)]  # ascending: tokens held, then prompt
    assert all(p["status"] == "ok" for p in doc["points"])
    assert doc["facts"]["torch"] and doc["facts"]["transformers"] and doc["facts"]["date"]
    assert doc["facts"]["nvml"]  # says why NVML figures are absent on CPU


@pytest.mark.parametrize("component", ["weights", "quant_state", "kv_cache"])
def test_cli_profile_measured_equals_predicted_exactly(cli_run, component):
    for p in cli_run["json"]["points"]:
        assert p["measured"][component] == p["predicted"][component], (component, p)


def test_cli_profile_parts_add_up_to_the_measured_peak(cli_run):
    for p in cli_run["json"]["points"]:
        m = p["measured"]
        assert m["total"] == p["peak_bytes"] == sum(m[c] for c in ("weights", "quant_state", "kv_cache",
                                                                     "activations", "overhead"))
        assert p["raw"]["cache_tokens"] == p["prompt_tokens"] + p["new_tokens"]


def test_cli_profile_kv_cache_is_linear_in_batch(cli_run):
    kv = {(p["batch"], p["prompt_tokens"]): p["measured"]["kv_cache"] for p in cli_run["json"]["points"]}
    assert kv[(3, 16)] == 3 * kv[(1, 16)] and kv[(3, 40)] == 3 * kv[(1, 40)]


def test_runs_list_show_and_csv_export(cli_run):
    db = cli_run["db"]
    rc, out, _ = _cli(["runs", "list", "--db", db])
    assert rc == 0 and "done" in out and " 4/4" in out
    run_id = str(cli_run["json"]["run_id"])
    rc, out, _ = _cli(["runs", "show", run_id, "--db", db])
    assert rc == 0 and "kv_cache" in out
    rc, out, _ = _cli(["runs", "export", run_id, "--csv", "--db", db])
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 4 and rows[0]["measured_kv_cache_bytes"] == rows[0]["predicted_kv_cache_bytes"]
    rc, out, err = _cli(["runs", "show", "999", "--db", db])
    assert rc == 2 and "no run 999" in err


def test_samples_were_stored_for_the_live_chart(cli_run):
    from profiler.db import Store

    with Store(cli_run["db"]) as store:
        samples = store.samples(cli_run["json"]["run_id"])
    assert samples and all(s["rss_bytes"] > 0 for s in samples)
    assert {"load", "prefill"} <= {s["phase"] for s in samples}


# --- other formats, same worker code in this process -------------------------------------------------

def _profile_here(weights: str, points) -> tuple[dict, list[dict], ProfileRequest]:
    from profiler.worker import run

    req = ProfileRequest(source="tiny", source_kind="config", weights=weights, points=points, sample_interval_s=5)
    msgs: list[dict] = []
    run({"request": req.to_json(), "config": TINY}, msgs.append)
    failed = [m for m in msgs if m["type"] == "load_failed"]
    assert not failed, failed
    load = next(m for m in msgs if m["type"] == "loaded")["load"]
    return load, [m for m in msgs if m["type"] == "point"], req


@pytest.mark.parametrize("weights", ["bf16", "bnb-int8", "bnb-nf4"])
def test_worker_measured_bytes_equal_prediction_exactly(weights):
    load, points, req = _profile_here(weights, grid([1, 2], [24], 2))
    assert all(p["status"] == "ok" for p in points), points
    assert exact_mismatches(TINY, req, load, points) == [], weights
    if weights.startswith("bnb-"):
        assert load["quant_state_bytes"] > 0


@pytest.mark.parametrize("weights", ["bnb-int8", "bnb-nf4-dq"])
def test_synthetic_quantization_matches_transformers_from_pretrained(weights, tmp_path):
    """Our in-place bnb quantization holds exactly the bytes transformers' own loading path holds."""
    import torch
    from transformers import AutoModelForCausalLM

    from profiler.accounting import model_bytes
    from profiler.models import bnb_config, build_model

    ours = build_model(TINY, weights=weights, device=torch.device("cpu"), attention="sdpa", synthetic=True,
                       checkpoint=None)
    plain = build_model(TINY, weights="bf16", device=torch.device("cpu"), attention="sdpa", synthetic=True,
                        checkpoint=None)
    plain.save_pretrained(tmp_path)
    theirs = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16, device_map="cpu",
                                                  quantization_config=bnb_config(weights, torch.bfloat16))
    a, b = model_bytes(ours), model_bytes(theirs)
    assert (a["parameters_bytes"], a["quant_state_bytes"]) == (b["parameters_bytes"], b["quant_state_bytes"])


def test_checkpoint_weights_are_memory_mapped_and_reported_file_backed(tmp_path):
    """Real weights load as transformers does: safetensors memory-mapped, so once a forward has touched
    them they are file-backed RSS (RssFile), not anonymous memory (RssAnon)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from profiler.source import resolve_config
    from profiler.worker import run

    cfg = LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=32000, tie_word_embeddings=True)
    AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).save_pretrained(tmp_path)
    config, name = resolve_config("checkpoint", str(tmp_path))
    req = ProfileRequest(source=str(tmp_path), source_kind="checkpoint", synthetic=False, weights="fp32",
                         points=grid([1], [8], 1), sample_interval_s=5)
    msgs: list[dict] = []
    run({"request": req.to_json(), "config": config}, msgs.append)
    load = next(m for m in msgs if m["type"] == "loaded")["load"]
    point = next(m for m in msgs if m["type"] == "point")
    assert point["status"] == "ok"
    spec = parse_config(config)
    row = {"idx": 0, "batch": 1, "prompt_tokens": 8, "new_tokens": 1, "measured": point["measured"]}
    weights = next(r for r in reconcile_point(spec, req.to_json(), load, row) if r["component"] == "weights")
    assert weights["abs_error_bytes"] == 0
    params = load["parameters_bytes"]
    assert load["warm_rss_file_bytes"] - load["rss_file_bytes"] >= 0.9 * params
    assert load["warm_rss_anon_bytes"] - load["rss_anon_bytes"] < 0.1 * params
