"""GPU profiling (marked ``gpu``: skipped without CUDA). Tiny synthetic llamas on cuda:0.

Exact components (weights, quant state, KV cache) must equal the planner on the GPU too; the allocator
figures must be consistent with them; NVML must report the process (or say plainly why not).
"""

from __future__ import annotations

import pytest

from profiler.request import ProfileRequest, grid
from tests._profiling import exact_mismatches

pytestmark = pytest.mark.gpu

TINY = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256,
        "max_position_embeddings": 4096, "tie_word_embeddings": False}


def _profile(weights: str):
    from profiler.worker import run

    req = ProfileRequest(source="tiny", source_kind="config", weights=weights, device="cuda:0",
                         points=grid([1, 4], [64, 256], 4), sample_interval_s=5)
    msgs: list[dict] = []
    run({"request": req.to_json(), "config": TINY}, msgs.append)
    assert not [m for m in msgs if m["type"] == "load_failed"], msgs
    facts = next(m for m in msgs if m["type"] == "hello")["facts"]
    load = next(m for m in msgs if m["type"] == "loaded")["load"]
    return req, facts, load, [m for m in msgs if m["type"] == "point"]


@pytest.mark.parametrize("weights", ["bf16", "fp16", "bnb-int8", "bnb-nf4", "bnb-nf4-dq"])
def test_gpu_measured_bytes_equal_prediction_exactly(weights):
    req, facts, load, points = _profile(weights)
    assert facts["gpu_name"] and facts["gpu_memory_bytes"] > 0
    assert all(p["status"] == "ok" for p in points), points
    assert exact_mismatches(TINY, req, load, points) == [], weights


def test_gpu_allocator_holds_at_least_the_exact_tensors():
    req, facts, load, points = _profile("bf16")
    assert load["gpu_allocated_bytes"] >= load["parameters_bytes"] + load["buffers_bytes"]
    for p in points:
        m = p["measured"]
        assert m["peak_allocated_bytes"] >= load["parameters_bytes"] + m["kv_cache_bytes"]
        assert m["peak_bytes"] >= m["peak_allocated_bytes"]
        assert m["allocator_slack_bytes"] >= 0


def test_gpu_nvml_reports_the_process_or_says_why_not():
    req, facts, load, points = _profile("bf16")
    if facts["nvml"] == "available":
        assert facts["driver"]
        assert load.get("nvml_process_used_bytes", 0) >= load["gpu_reserved_bytes"]
        assert 100 * 2**20 < load["cuda_context_bytes"] < 2 * 2**30  # a CUDA context: hundreds of MiB
    else:
        assert facts["nvml"].startswith("NVML unavailable")
