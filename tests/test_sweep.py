"""sweep(): every row equals the scalar planner at that point; the grid is complete and well-formed."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.catalog import catalog_spec
from planner.engines import llamacpp_memory, vllm_breakdown, vllm_capacity
from planner.errors import InputError
from planner.estimate import Plan, estimate
from planner.fit import fit, fit_predicate
from planner.spec import parse_config
from planner.sweep import COLUMNS, sweep

GiB = 1 << 30
SAMPLES = 12  # rows checked against the scalar planner per grid


def tiny(**kw):
    cfg = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
           "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 256, "max_position_embeddings": 1 << 20}
    cfg.update(kw)
    return parse_config(cfg)


def sample_rows(df, n=SAMPLES, seed=0):
    idx = np.random.default_rng(seed).choice(len(df), size=min(n, len(df)), replace=False)
    return [df.iloc[int(i)] for i in idx]


def point(plan, row, **kw):
    return replace(plan, weights=str(row["weights"]), kv_dtype=str(row["kv_dtype"]), batch=int(row["batch"]),
                   context=int(row["context"]), **kw)


def test_grid_is_complete_and_has_the_contract_columns():
    df = sweep(tiny(), Plan(), batch=[1, 2, 4], context=[128, 1024], weights=["bf16", "fp32"], kv_dtype=["auto", "fp16"])
    assert len(df) == 3 * 2 * 2 * 2
    assert list(df.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert {(r.weights, r.kv_dtype, r.batch, r.context) for r in df.itertuples()} == {
        (w, k, b, c) for w in ("bf16", "fp32") for k in ("auto", "fp16") for b in (1, 2, 4) for c in (128, 1024)}
    assert all(df[c].dtype == np.int64 for c in COLUMNS[4:])


def test_transformers_rows_equal_scalar_estimate():
    spec = tiny()
    plan = Plan()
    df = sweep(spec, plan, batch=[1, 3, 8, 32], context=[1, 17, 512, 4096], weights=["bf16", "fp32"],
               kv_dtype=["auto", "fp16", "fp32"], device_bytes=GiB // 64)
    ok = fit_predicate(spec, plan, GiB // 64)
    for row in sample_rows(df):
        b = estimate(spec, point(plan, row))
        assert (row.weights_bytes, row.kv_cache_bytes, row.activations_bytes, row.overhead_bytes, row.total_bytes) == (
            b.weights_bytes, b.kv_cache_bytes, b.activations_bytes, b.overhead_bytes, b.total_bytes)
        assert row.fits == ok(int(row.batch), int(row.context)) == (b.total_bytes <= GiB // 64)
        assert row.free_bytes == GiB // 64 - b.total_bytes


def test_transformers_sliding_window_rows_equal_scalar_estimate():
    spec = catalog_spec("gemma-2-9b")
    plan = Plan()
    df = sweep(spec, plan, batch=[1, 2], context=[100, 4095, 4096, 9000], weights=["bf16"], kv_dtype=["auto"])
    for row in sample_rows(df, 8):
        assert row.total_bytes == estimate(spec, point(plan, row)).total_bytes


def test_vllm_rows_equal_the_engine_and_fit():
    spec = tiny()
    device = 64 << 20
    plan = Plan(engine="vllm", gpu_memory_utilization=0.5)
    df = sweep(spec, plan, batch=[1, 5, 50, 500], context=[16, 100, 4096, 20000], weights=["bf16", "fp16"],
               kv_dtype=["auto", "fp8"], device_bytes=device)
    for row in sample_rows(df):
        p = point(plan, row, gpu_memory_bytes=device)
        b, cap = vllm_breakdown(spec, p), vllm_capacity(spec, p)
        assert (row.weights_bytes, row.kv_cache_bytes, row.activations_bytes, row.overhead_bytes, row.total_bytes) == (
            b.weights_bytes, b.kv_cache_bytes, b.activations_bytes, b.overhead_bytes, b.total_bytes)
        assert row.kv_cache_tokens == cap.kv_cache_tokens
        assert row.max_concurrency == pytest.approx(cap.max_concurrency, rel=1e-12)
        res = fit(spec, p, device)
        assert (bool(row.fits), int(row.free_bytes)) == (res.fits, res.free_bytes)


def test_llamacpp_rows_equal_the_engine():
    spec = catalog_spec("llama-3.2-1b")
    device = 2 * GiB
    plan = Plan(engine="llamacpp", n_gpu_layers=10)
    df = sweep(spec, plan, batch=[1, 2, 7], context=[1, 300, 8192, 40000], weights=["gguf-Q4_K_M", "gguf-Q8_0"],
               kv_dtype=["f16", "q8_0", "q4_0"], device_bytes=device)
    for row in sample_rows(df):
        mem = llamacpp_memory(spec, point(plan, row))
        g = mem.gpu
        assert (row.weights_bytes, row.kv_cache_bytes, row.activations_bytes, row.overhead_bytes, row.total_bytes) == (
            g.weights_bytes, g.kv_cache_bytes, g.activations_bytes, g.overhead_bytes, g.total_bytes)
        assert row.host_bytes == mem.host_bytes
        assert row.fits == (g.total_bytes <= device)


def test_llamacpp_cpu_rows_equal_the_engine():
    spec = catalog_spec("gemma-2-9b")
    plan = Plan(engine="llamacpp", device="cpu", weights="gguf-Q4_K_M")
    df = sweep(spec, plan, batch=[1, 3], context=[512, 10000], kv_dtype=["f16", "q8_0"])
    for row in sample_rows(df, 4):
        mem = llamacpp_memory(spec, point(plan, row))
        assert row.total_bytes == mem.host_bytes == row.host_bytes


def test_memory_never_decreases_with_batch_or_context():
    df = sweep(tiny(), Plan(engine="llamacpp", weights="gguf-F16"), batch=[1, 2, 3, 9], context=[1, 255, 257, 5000])
    grid = df.pivot_table(index="batch", columns="context", values="total_bytes", observed=True).to_numpy()
    assert (np.diff(grid, axis=0) >= 0).all() and (np.diff(grid, axis=1) >= 0).all()


def test_duplicate_names_are_merged():
    df = sweep(tiny(), Plan(), batch=[1], context=[8], weights=["bf16", "bf16"])
    assert len(df) == 1


@pytest.mark.parametrize("kw", [dict(batch=[], context=[8]), dict(batch=[0], context=[8]),
                                dict(batch=[1.5], context=[8]), dict(batch=[1], context=[8], weights=[]),
                                dict(batch=list(range(1, 3001)), context=list(range(1, 3001)))])
def test_bad_grids_are_input_errors(kw):
    with pytest.raises(InputError):
        sweep(tiny(), Plan(), **kw)


def test_vllm_sweep_needs_the_gpu_memory():
    with pytest.raises(InputError, match="--gpu"):
        sweep(tiny(), Plan(engine="vllm"), batch=[1], context=[8])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 64), min_size=1, max_size=4), st.lists(st.integers(1, 70000), min_size=1, max_size=4),
       st.sampled_from(["f16", "q8_0", "q4_0"]))
def test_vectorized_llamacpp_equals_a_loop_of_scalar_calls(batches, contexts, kv):
    spec = tiny()
    plan = Plan(engine="llamacpp", weights="gguf-F16", n_gpu_layers=1)
    df = sweep(spec, plan, batch=batches, context=contexts, kv_dtype=[kv])
    for row in df.itertuples():
        mem = llamacpp_memory(spec, replace(plan, kv_dtype=kv, batch=int(row.batch), context=int(row.context)))
        assert (row.total_bytes, row.host_bytes) == (mem.gpu.total_bytes, mem.host_bytes)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 5000), min_size=1, max_size=4), st.lists(st.integers(1, 70000), min_size=1, max_size=4))
def test_vectorized_vllm_equals_a_loop_of_scalar_calls(batches, contexts):
    spec = tiny()
    plan = Plan(engine="vllm", gpu_memory_bytes=64 << 20, gpu_memory_utilization=0.5)
    df = sweep(spec, plan, batch=batches, context=contexts)
    for row in df.itertuples():
        p = replace(plan, batch=int(row.batch), context=int(row.context))
        cap = vllm_capacity(spec, p)
        assert row.kv_cache_tokens == cap.kv_cache_tokens
        assert bool(row.fits) == fit_predicate(spec, plan, 64 << 20)(int(row.batch), int(row.context))


@pytest.mark.parametrize("variant", [
    dict(attention="eager"), dict(mode="forward"), dict(cache="static"), dict(device="cpu"),
    dict(overrides=(("overhead/cuda_context", 123),)), dict(kv_dtype="int4"), dict(kv_dtype="fp8_e4m3"),
], ids=lambda v: ",".join(f"{k}={v[k]}" for k in v))
def test_transformers_plan_variants_equal_scalar_estimate(variant):
    spec = tiny()
    kv = variant.pop("kv_dtype", "auto")
    plan = Plan(**variant)
    df = sweep(spec, plan, batch=[1, 2, 9], context=[1, 130, 700], kv_dtype=[kv], device_bytes=1 << 24)
    for row in df.itertuples():
        b = estimate(spec, point(plan, df.loc[row.Index]))
        assert (row.kv_cache_bytes, row.activations_bytes, row.overhead_bytes, row.total_bytes) == (
            b.kv_cache_bytes, b.activations_bytes, b.overhead_bytes, b.total_bytes)


def test_transformers_tensor_parallel_rows_equal_scalar_estimate():
    spec = catalog_spec("llama-3.1-8b")
    df = sweep(spec, Plan(), batch=[1, 4], context=[1000, 32768], gpus=2, device_bytes=80 * GiB)
    for row in df.itertuples():
        b = estimate(spec, Plan(batch=int(row.batch), context=int(row.context), tp=2))
        assert (row.weights_bytes, row.total_bytes) == (b.weights_bytes, b.total_bytes)


def test_transformers_mla_and_moe_rows_equal_scalar_estimate():
    for name in ("deepseek-v3", "mixtral-8x7b"):
        spec = catalog_spec(name)
        df = sweep(spec, Plan(), batch=[1, 3], context=[64, 5000], weights=["bf16"])
        for row in df.itertuples():
            assert row.total_bytes == estimate(spec, point(Plan(), df.loc[row.Index])).total_bytes, name


def test_vllm_mla_rows_equal_the_engine():
    spec = catalog_spec("deepseek-v3")
    plan = Plan(engine="vllm", weights="fp8-block", gpu_memory_bytes=150 * GiB, tp=8)
    df = sweep(spec, plan, batch=[1, 100], context=[1000, 64000], gpus=8)
    for row in df.itertuples():
        cap = vllm_capacity(spec, replace(plan, batch=int(row.batch), context=int(row.context)))
        assert (row.kv_cache_bytes, row.kv_cache_tokens) == (cap.kv_pool_bytes, cap.kv_cache_tokens)
        assert cap.block_size == 64
