"""estimate() for the transformers engine: the JSON contract, composition, TP, overrides and errors."""

from __future__ import annotations

import json

import pytest

from app.cli import main
from planner.catalog import catalog_spec
from planner.errors import InputError
from planner.estimate import Plan, estimate
from planner.overhead import ASSUMPTIONS, parse_override, parse_size
from planner.params import parameter_count

MiB, GiB = 1 << 20, 1 << 30
CONTRACT = ("parameters", "weights_bytes", "kv_cache_bytes", "activations_bytes", "overhead_bytes",
            "total_bytes", "components", "assumptions")


def run_cli(capsys, *argv) -> dict:
    assert main(["estimate", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_done_when_llama_8b_32k_batch_4_gives_the_full_breakdown(capsys):
    out = run_cli(capsys, "--model", "llama-3.1-8b", "--context", "32768", "--batch", "4")
    assert set(CONTRACT) <= set(out)
    assert out["parameters"] == 8_030_261_248  # meta-device count (reference README)
    assert out["weights_bytes"] == 2 * 8_030_261_248  # bf16, every tensor 2 bytes
    # 32 layers x 2 (K, V) x 8 KV heads x 128 x 2 bytes x 32768 tokens x 4 sequences
    assert out["kv_cache_bytes"] == 32 * 2 * 8 * 128 * 2 * 32768 * 4 == 16 * GiB
    assert out["activations_bytes"] > 0 and out["overhead_bytes"] > 0
    groups = ("weights", "kv_cache", "activations", "overhead")
    for g in groups:
        assert out[f"{g}_bytes"] == sum(v for k, v in out["components"].items() if k.split("/")[0] == g)
    assert out["total_bytes"] == sum(out[f"{g}_bytes"] for g in groups) == sum(out["components"].values())
    assert all(isinstance(v, int) for v in out["components"].values())
    assert any(a.startswith("overhead/cuda_context") for a in out["assumptions"])
    assert "per_gpu_bytes" not in out


def test_tp_reports_per_gpu_numbers(capsys):
    one = run_cli(capsys, "--model", "llama-3.1-70b", "--context", "8192")
    two = run_cli(capsys, "--model", "llama-3.1-70b", "--context", "8192", "--tp", "2")
    assert two["tp"] == 2 and two["per_gpu_bytes"] == two["total_bytes"]
    assert two["kv_cache_bytes"] * 2 == one["kv_cache_bytes"]  # 8 KV heads -> 4 per GPU
    # sharded linears halve; norms are replicated, so a little more than half
    assert one["weights_bytes"] / 2 < two["weights_bytes"] < one["weights_bytes"] / 2 * 1.001
    assert two["components"]["overhead/nccl"] > 0 and "overhead/nccl" not in one["components"]


def test_kv_heads_never_drop_below_one_per_gpu():
    spec = catalog_spec("llama-3.1-8b")  # 8 KV heads
    kv8 = estimate(spec, Plan(context=4096, tp=8)).kv_cache_bytes
    kv16 = estimate(spec, Plan(context=4096, tp=16)).kv_cache_bytes
    assert kv8 == kv16 == estimate(spec, Plan(context=4096)).kv_cache_bytes // 8


def test_cpu_device_drops_gpu_overheads():
    spec = catalog_spec("llama-3.2-1b")
    b = estimate(spec, Plan(device="cpu"))
    overhead = {c.path for c in b.components if c.group == "overhead"}
    assert overhead == {"overhead/cpu_runtime"}  # the process itself; no CUDA context, workspace or slack
    assert b.overhead_bytes == 400 * MiB
    assert b.weights_bytes == estimate(spec, Plan()).weights_bytes


def test_override_replaces_an_assumption():
    spec = catalog_spec("llama-3.2-1b")
    b = estimate(spec, Plan(overrides=(("overhead/cuda_context", 600 * MiB),)))
    assert b.as_dict()["overhead/cuda_context"] == 600 * MiB
    assert any("600.0 MiB (override" in a for a in b.assumptions)


def test_unknown_override_is_one_clear_error():
    with pytest.raises(InputError, match="unknown assumption 'overhead/nope'"):
        estimate(catalog_spec("llama-3.2-1b"), Plan(overrides=(("overhead/nope", 1),)))


@pytest.mark.parametrize("text,expected", [("300MiB", 300 * MiB), ("1.5GiB", 3 * GiB // 2), ("2GB", 2 * 10**9),
                                           ("4096", 4096), ("16 KiB", 16384)])
def test_sizes_parse(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "GiB", "-1MiB", "3 parsecs", "1e9"])
def test_bad_sizes_are_one_clear_error(bad):
    with pytest.raises(InputError, match="not understood"):
        parse_size(bad)


def test_override_short_names_get_the_overhead_prefix():
    assert parse_override("cuda_context=300MiB") == ("overhead/cuda_context", 300 * MiB)


def test_cli_override_and_bad_override(capsys):
    out = run_cli(capsys, "--model", "llama-3.2-1b", "--override", "overhead/cublas_workspace=8MiB")
    assert out["components"]["overhead/cublas_workspace"] == 8 * MiB
    assert main(["estimate", "--model", "llama-3.2-1b", "--override", "cuda_context"]) == 2
    assert "NAME=SIZE" in capsys.readouterr().err


def test_assumptions_list_is_complete_for_the_app():
    names = {a.name for a in ASSUMPTIONS}
    assert {"overhead/cuda_context", "overhead/cublas_workspace", "overhead/allocator_slack",
            "overhead/nccl"} <= names
    assert all(a.default_bytes > 0 and a.description and a.source for a in ASSUMPTIONS)


def test_static_cache_preallocates_max_cache_len():
    spec = catalog_spec("llama-3.2-1b")
    dyn = estimate(spec, Plan(context=1000))
    static = estimate(spec, Plan(context=1000, cache="static", max_cache_len=4000))
    assert static.kv_cache_bytes == 4 * dyn.kv_cache_bytes


def test_eager_attention_costs_more_than_sdpa_at_long_context():
    spec = catalog_spec("llama-3.2-1b")
    assert (estimate(spec, Plan(context=8192, attention="eager")).activations_bytes
            > estimate(spec, Plan(context=8192)).activations_bytes)


def test_forward_mode_pays_for_all_logits():
    spec = catalog_spec("llama-3.2-1b")
    fwd = estimate(spec, Plan(context=4096, mode="forward"))
    assert fwd.as_dict()["activations/logits"] >= 4096 * spec.vocab_size * 2


def test_parameters_field_is_the_exact_count():
    spec = catalog_spec("qwen2.5-0.5b")
    assert estimate(spec).parameters == parameter_count(spec) == 494_032_768


def test_gguf_weights_need_the_llamacpp_engine():
    with pytest.raises(InputError, match="llamacpp"):
        estimate(catalog_spec("llama-3.2-1b"), Plan(weights="gguf-Q4_K_M"))


def test_quantized_kv_on_a_sliding_window_model_is_one_clear_error():
    spec = catalog_spec("gemma-2-9b")
    with pytest.raises(InputError, match="full-attention"):
        estimate(spec, Plan(kv_dtype="int4"))


def test_sliding_window_model_keeps_window_minus_one_tokens():
    spec = catalog_spec("gemma-2-9b")
    b = estimate(spec, Plan(context=32768))
    per_token = 2 * spec.num_kv_heads * spec.head_dim * 2
    n_sl = spec.n_sliding_layers
    assert b.as_dict()["kv_cache/sliding"] == n_sl * per_token * (spec.sliding_window - 1)
    assert b.as_dict()["kv_cache/full"] == (spec.num_layers - n_sl) * per_token * 32768


def test_other_engines_dispatch():
    spec = catalog_spec("llama-3.1-8b")
    b = estimate(spec, Plan(engine="vllm", gpu_memory_bytes=80 * GiB, context=8192))
    assert b.weights_bytes > 0 and b.kv_cache_bytes > 0
