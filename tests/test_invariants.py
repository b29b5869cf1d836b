"""Hypothesis invariants of the transformers-engine planner (one property per test)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.activations import activations_bytes
from planner.catalog import catalog_spec
from planner.estimate import Plan, estimate
from planner.formats import resolve_format, weight_bytes
from planner.kv_cache import kv_cache_bytes

MODELS = ["llama-3.2-1b", "qwen2.5-0.5b", "gemma-2-9b", "mistral-7b-v0.1", "mixtral-8x7b", "deepseek-v3",
          "phi-3-mini-4k", "gpt2"]
models = st.sampled_from(MODELS)
#: models whose every layer is full attention (transformers' QuantizedCache supports only those)
FULL_ATTENTION_MODELS = ["llama-3.2-1b", "qwen2.5-0.5b", "llama-3.1-8b", "tinyllama-1.1b"]
batches = st.integers(1, 256)
contexts = st.integers(1, 200_000)
attentions = st.sampled_from(["sdpa", "eager", "flash_attention_2"])
kv_full_only = st.sampled_from(["auto", "fp32", "fp16", "bf16", "fp8_e4m3", "int8", "int4"])
SETTINGS = settings(max_examples=60, deadline=None)


@SETTINGS
@given(models, batches, contexts, attentions, st.integers(1, 64))
def test_total_never_decreases_with_batch(model, batch, context, attention, more):
    spec = catalog_spec(model)
    a = estimate(spec, Plan(batch=batch, context=context, attention=attention)).total_bytes
    b = estimate(spec, Plan(batch=batch + more, context=context, attention=attention)).total_bytes
    assert b >= a


@SETTINGS
@given(models, batches, contexts, attentions, st.integers(1, 10_000))
def test_total_never_decreases_with_context(model, batch, context, attention, more):
    spec = catalog_spec(model)
    a = estimate(spec, Plan(batch=batch, context=context, attention=attention)).total_bytes
    b = estimate(spec, Plan(batch=batch, context=context + more, attention=attention)).total_bytes
    assert b >= a


@SETTINGS
@given(models, batches, contexts, st.integers(2, 16))
def test_kv_cache_is_linear_in_batch(model, batch, context, k):
    spec = catalog_spec(model)
    assert kv_cache_bytes(spec, k * batch, context) == k * kv_cache_bytes(spec, batch, context)


@SETTINGS
@given(st.sampled_from(FULL_ATTENTION_MODELS), batches, contexts, kv_full_only)
def test_kv_cache_is_linear_in_batch_for_every_kv_dtype_without_residual(model, batch, context, kv_dtype):
    # quantized caches carry per-layer constants (fp8 scales) and group rounding, so compare exactly
    # only where they vanish: float dtypes
    spec = catalog_spec(model)
    if kv_dtype in ("int8", "int4", "fp8_e4m3"):
        assert kv_cache_bytes(spec, 2 * batch, context, kv_dtype) <= 2 * kv_cache_bytes(spec, batch, context, kv_dtype)
    else:
        assert kv_cache_bytes(spec, 2 * batch, context, kv_dtype) == 2 * kv_cache_bytes(spec, batch, context, kv_dtype)


@SETTINGS
@given(models, st.lists(batches, min_size=1, max_size=6), st.lists(contexts, min_size=1, max_size=6), attentions)
def test_vectorized_call_equals_loop_of_scalar_calls(model, bs, cs, attention):
    spec = catalog_spec(model)
    b = np.array(bs)[:, None]
    c = np.array(cs)[None, :]
    kv = kv_cache_bytes(spec, b, c)
    act = activations_bytes(spec, b, c, attention=attention)
    for i, bi in enumerate(bs):
        for j, cj in enumerate(cs):
            assert kv[i, j] == kv_cache_bytes(spec, bi, cj)
            assert act[i, j] == activations_bytes(spec, bi, cj, attention=attention)


@settings(max_examples=20, deadline=None)
@given(models)
def test_4bit_weights_never_exceed_8bit_never_exceed_16bit(model):
    spec = catalog_spec(model)
    size = {name: weight_bytes(spec, resolve_format(spec, name)) for name in ("bnb-nf4", "bnb-int8", "bf16")}
    assert size["bnb-nf4"] <= size["bnb-int8"] <= size["bf16"]
    assert estimate(spec, Plan(weights="bnb-nf4")).weights_bytes <= estimate(spec, Plan(weights="bf16")).weights_bytes


@SETTINGS
@given(st.sampled_from(FULL_ATTENTION_MODELS), batches, contexts)
def test_quantized_kv_dtypes_never_exceed_16bit(model, batch, context):
    spec = catalog_spec(model)
    bf16 = kv_cache_bytes(spec, batch, context, "bf16")
    # int4/int8 keep at most residual_length tokens in bf16 plus per-group scales
    assert kv_cache_bytes(spec, batch, context, "int4") <= kv_cache_bytes(spec, batch, context, "int8") <= bf16 * 1.1
