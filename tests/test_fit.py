"""fit(): exact integer boundaries in the planner's own arithmetic."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from planner.catalog import catalog_spec
from planner.engines import vllm_capacity
from planner.errors import InputError
from planner.estimate import MAX_BATCH, Plan
from planner.fit import fit, fit_predicate, largest
from planner.gpus import find_gpu
from planner.spec import parse_config

GiB = 1 << 30
H100 = find_gpu("h100-sxm-80gb").memory_bytes
ZERO = (("activations/profile_peak", 0), ("overhead/non_torch", 0), ("overhead/cuda_graphs", 0))


def tiny():
    return parse_config({"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
                         "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
                         "vocab_size": 256, "max_position_embeddings": 1 << 20})


@given(st.integers(0, 5000), st.integers(1, 5000))
def test_largest_finds_the_exact_threshold(t, hi):
    assert largest(lambda x: x <= t, 1, hi) == min(t, hi)


def test_largest_counts_calls_logarithmically():
    calls = []
    largest(lambda x: calls.append(x) or x <= 1000, 1, 1 << 24)
    assert len(calls) < 30


def assert_boundary(spec, plan, device, gpus, res):
    ok = fit_predicate(spec, plan, device, gpus)
    assert res.max_batch >= 1 and ok(res.max_batch, plan.context)
    assert res.max_batch == MAX_BATCH or not ok(res.max_batch + 1, plan.context)
    assert res.max_context >= 1 and ok(plan.batch, res.max_context)
    assert res.max_context == res.context_limit or not ok(plan.batch, res.max_context + 1)


def test_vllm_largest_batch_fits_and_one_more_does_not():
    spec = tiny()
    plan = Plan(engine="vllm", weights="bf16", context=1000, gpu_memory_utilization=0.5, overrides=ZERO)
    device = 64 << 20
    res = fit(spec, plan, device)
    cap = vllm_capacity(spec, replace(plan, gpu_memory_bytes=device))
    assert res.max_batch == cap.num_blocks // cap.blocks_per_request
    assert res.kv_cache_tokens == cap.kv_cache_tokens and res.max_concurrency == cap.max_concurrency
    assert_boundary(spec, plan, device, 1, res)


def test_vllm_largest_context_fits_and_one_more_does_not():
    spec = tiny()
    plan = Plan(engine="vllm", weights="bf16", batch=3, context=64, gpu_memory_utilization=0.5, overrides=ZERO)
    res = fit(spec, plan, 8 << 20)
    assert_boundary(spec, plan, 8 << 20, 1, res)
    assert res.max_context % 16 == 0  # whole blocks of 16 tokens


def test_llamacpp_largest_batch_and_context_are_exact():
    spec = catalog_spec("llama-3.2-1b")
    plan = Plan(engine="llamacpp", weights="gguf-Q4_K_M", context=4096)
    res = fit(spec, plan, 2 * GiB)
    assert res.fits and res.max_batch >= 1
    assert_boundary(spec, plan, 2 * GiB, 1, res)


def test_transformers_largest_batch_and_context_are_exact():
    spec = catalog_spec("smollm2-135m")
    plan = Plan(context=2048)
    device = 2 * GiB
    res = fit(spec, plan, device)
    assert_boundary(spec, plan, device, 1, res)


def test_nothing_fits_gives_zeros_and_negative_free():
    spec = catalog_spec("llama-3.1-70b")
    res = fit(spec, Plan(engine="llamacpp", weights="gguf-Q4_K_M"), 8 * GiB)
    assert not res.fits and res.free_bytes < 0
    assert res.max_batch == 0 and res.max_context == 0


def test_vllm_70b_on_two_80gb_gpus_reports_kv_capacity():
    res = fit(catalog_spec("llama-3.1-70b"), Plan(engine="vllm", context=8192), H100, gpus=2)
    assert res.fits and res.kv_cache_tokens > 8192 and res.max_concurrency > 1
    js = res.to_json()
    assert {"fits", "free_bytes", "max_batch", "max_context", "kv_cache_tokens", "max_concurrency"} <= set(js)
    assert isinstance(js["free_bytes"], int)


def test_vllm_70b_on_one_80gb_gpu_does_not_start():
    res = fit(catalog_spec("llama-3.1-70b"), Plan(engine="vllm"), H100)
    assert not res.fits and res.max_batch == 0 and res.max_context == 0
    assert "exceed the budget" in res.reason


def test_more_gpus_never_reduce_capacity():
    spec = catalog_spec("llama-3.1-8b")
    one = fit(spec, Plan(engine="vllm", context=8192), H100, 1)
    two = fit(spec, Plan(engine="vllm", context=8192), H100, 2)
    assert two.kv_cache_tokens > one.kv_cache_tokens


@pytest.mark.parametrize("device,gpus", [(0, 1), (-5, 1), (GiB, 0), (GiB, 1000)])
def test_bad_device_or_gpu_count_is_an_input_error(device, gpus):
    with pytest.raises(InputError):
        fit(tiny(), Plan(), device, gpus)
