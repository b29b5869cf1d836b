"""Sweeps: memory over a grid of batch x context x weight format x KV dtype, as one long DataFrame.

The grid is evaluated with numpy arrays, never a Python loop over points: per (weight format, KV dtype)
pair the parts that do not depend on batch and context are computed once, and the parts that do
(KV cache, activations, llama.cpp's padded context, vLLM's blocks per request) are computed for all
points at once by the same array-aware functions the scalar planner uses. A test checks rows against
:func:`planner.estimate.estimate` / the engines at sampled points.

Columns: ``weights``, ``kv_dtype``, ``batch``, ``context``, ``weights_bytes``, ``kv_cache_bytes``,
``activations_bytes``, ``overhead_bytes``, ``total_bytes`` (per GPU); with a device also ``fits`` and
``free_bytes`` (same meaning as :func:`planner.fit.fit`); vLLM adds ``kv_cache_tokens`` and
``max_concurrency``; llama.cpp adds ``host_bytes``.

In a sweep ``prompt_tokens`` is the whole context and a StaticCache's ``max_cache_len`` is the context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from planner import engines
from planner.errors import InputError
from planner.estimate import MAX_BATCH, MAX_CONTEXT, MAX_TP, Plan, estimate
from planner.spec import ModelSpec

#: Largest grid one call evaluates (rows of the DataFrame).
MAX_POINTS = 5_000_000

COLUMNS = ("weights", "kv_dtype", "batch", "context", "weights_bytes", "kv_cache_bytes", "activations_bytes",
           "overhead_bytes", "total_bytes")


def _ints(name: str, values, hi: int) -> np.ndarray:
    a = np.asarray(list(values) if not np.isscalar(values) else [values])
    if a.size == 0:
        raise InputError(f"give at least one {name} value")
    if a.dtype.kind == "f" and np.all(np.mod(a, 1) == 0):
        a = a.astype(np.int64)
    if a.dtype.kind not in "iu":
        raise InputError(f"{name} values must be whole numbers, got {list(values)!r}")
    a = a.astype(np.int64)
    if a.min() < 1 or a.max() > hi:
        raise InputError(f"{name} values must be from 1 to {hi:,}")
    return a


def _names(name: str, values, default: str) -> list[str]:
    if values is None:
        return [default]
    out = [values] if isinstance(values, str) else list(values)
    if not out or not all(isinstance(v, str) and v.strip() for v in out):
        raise InputError(f"give at least one {name} name")
    return list(dict.fromkeys(v.strip() for v in out))  # unique, in order


_DEFAULT_PLAN = Plan()


def sweep(spec: ModelSpec, plan: Plan = _DEFAULT_PLAN, *, batch: Sequence[int], context: Sequence[int],
          weights: Sequence[str] | None = None, kv_dtype: Sequence[str] | None = None,
          device_bytes: int | None = None, gpus: int = 1, stored=None) -> pd.DataFrame:
    """Memory of every (weights, kv_dtype, batch, context) combination, one row each, per GPU.

    ``plan`` supplies everything else (engine, attention, vLLM/llama.cpp settings). ``device_bytes``: the
    memory of one device (adds ``fits`` and ``free_bytes``); ``gpus``: devices used (tensor parallel for
    transformers and vLLM, a layer split for llama.cpp).
    """
    b_axis = _ints("batch", batch, MAX_BATCH)
    c_axis = _ints("context", context, MAX_CONTEXT)
    w_names = _names("weights", weights, plan.weights)
    k_names = _names("kv_dtype", kv_dtype, plan.kv_dtype)
    if not isinstance(gpus, int) or isinstance(gpus, bool) or not 1 <= gpus <= MAX_TP:
        raise InputError(f"gpus must be an integer from 1 to {MAX_TP}, got {gpus!r}")
    if device_bytes is not None and (not isinstance(device_bytes, int) or device_bytes <= 0):
        raise InputError(f"device memory must be a positive number of bytes, got {device_bytes!r}")
    n = b_axis.size * c_axis.size * len(w_names) * len(k_names)
    if n > MAX_POINTS:
        raise InputError(f"the grid has {n:,} points; at most {MAX_POINTS:,} per sweep")
    B, C = (g.ravel() for g in np.meshgrid(b_axis, c_axis, indexing="ij"))
    base = replace(plan, prompt_tokens=None, max_cache_len=None, batch=int(b_axis[0]), context=int(c_axis[0]))
    if plan.engine == "vllm":
        if device_bytes is None and plan.gpu_memory_bytes is None:
            raise InputError("the vllm engine reserves a fraction of the GPU's memory: give the GPU "
                             "(--gpu NAME or --memory-gib X)")
        base = replace(base, tp=gpus, gpu_memory_bytes=device_bytes or plan.gpu_memory_bytes)
    elif plan.engine == "transformers":
        base = replace(base, tp=gpus)

    parts: dict[str, list[np.ndarray]] = {}
    w_codes, k_codes = [], []
    for wi, w in enumerate(w_names):
        for ki, k in enumerate(k_names):
            p = replace(base, weights=w, kv_dtype=k)
            if plan.engine == "vllm":
                cols = _vllm_grid(spec, p, B, C)
            elif plan.engine == "llamacpp":
                cols = _llamacpp_grid(spec, p, B, C, device_bytes * gpus if device_bytes else None)
            else:
                cols = _transformers_grid(spec, p, B, C, stored, device_bytes)
            w_codes.append(np.full(B.size, wi, dtype=np.int16))
            k_codes.append(np.full(B.size, ki, dtype=np.int16))
            for name, arr in (("batch", B), ("context", C), *cols.items()):
                parts.setdefault(name, []).append(arr)
    combos = len(w_codes)
    data = {
        "weights": pd.Categorical.from_codes(np.concatenate(w_codes), categories=w_names),
        "kv_dtype": pd.Categorical.from_codes(np.concatenate(k_codes), categories=k_names),
    }
    for name, arrs in parts.items():
        data[name] = np.concatenate(arrs) if combos > 1 else arrs[0]
    return pd.DataFrame(data, copy=False)


def _totals(weights, kv, act, overhead, n: int) -> dict[str, np.ndarray]:
    def arr(x):
        return np.broadcast_to(np.asarray(x, dtype=np.int64), (n,)).copy()

    cols = {"weights_bytes": arr(weights), "kv_cache_bytes": arr(kv), "activations_bytes": arr(act),
            "overhead_bytes": arr(overhead)}
    cols["total_bytes"] = cols["weights_bytes"] + cols["kv_cache_bytes"] + cols["activations_bytes"] + cols["overhead_bytes"]
    return cols


# --------------------------------------------------------------------------------------------------- vLLM


def _vllm_grid(spec: ModelSpec, p: Plan, B: np.ndarray, C: np.ndarray) -> dict[str, np.ndarray]:
    """vLLM reserves the same memory whatever the batch and context; capacity depends on the context."""
    b = engines.vllm_breakdown(spec, p)
    cap = engines.vllm_capacity(spec, p)
    cols = _totals(b.weights_bytes, b.kv_cache_bytes, b.activations_bytes, b.overhead_bytes, B.size)
    blocks, need_one = engines.vllm_request_needs(spec, cap.layout, cap.group_kinds, cap.max_num_batched_tokens, C)
    blocks = np.asarray(blocks, dtype=np.int64)
    requests = cap.num_blocks // blocks
    starts = (cap.available_kv_bytes > 0) & (np.asarray(need_one) <= cap.kv_pool_bytes)
    row = cap.page_bytes * cap.layers_per_group
    cols["fits"] = starts & (requests >= B)
    cols["free_bytes"] = (cap.kv_pool_bytes - B * blocks * row) if cap.available_kv_bytes > 0 else \
        np.full(B.size, cap.available_kv_bytes, dtype=np.int64)
    cols["kv_cache_tokens"] = cap.num_blocks * C // blocks
    cols["max_concurrency"] = cap.num_blocks / blocks
    return cols


# ---------------------------------------------------------------------------------------------- llama.cpp


def _llamacpp_grid(spec: ModelSpec, p: Plan, B, C, capacity: int | None) -> dict[str, np.ndarray]:
    mem = engines.llamacpp_memory(spec, p)  # at the first grid point: everything that does not vary
    n_layer = spec.num_layers
    cpu_only = p.device == "cpu"
    ngl = 0 if cpu_only else (n_layer + 1 if p.n_gpu_layers is None else min(p.n_gpu_layers, n_layer + 1))
    kv = engines.llamacpp_kv_bytes(spec, mem.kv_type, max(n_layer - ngl, 0), cpu_only, B, C)
    kv_gpu = sum(g for g, _ in kv.values())
    kv_host = sum(h for _, h in kv.values())
    if cpu_only:
        kv_gpu, kv_host = kv_host, kv_host
    gpu, host = mem.gpu, mem.host
    cols = _totals(gpu.weights_bytes, kv_gpu, gpu.activations_bytes, gpu.overhead_bytes, B.size)
    out_buf = host.as_dict().get("activations/output_buffer", 0)
    host_fixed = host.total_bytes - host.kv_cache_bytes - out_buf
    if cpu_only:
        cols["activations_bytes"] = cols["activations_bytes"] - out_buf + spec.vocab_size * 4 * B
        cols["total_bytes"] = cols["weights_bytes"] + cols["kv_cache_bytes"] + cols["activations_bytes"] + cols["overhead_bytes"]
    cols["host_bytes"] = host_fixed + np.asarray(kv_host, dtype=np.int64) + spec.vocab_size * 4 * B
    if capacity is not None:
        cols["fits"] = cols["total_bytes"] <= capacity
        cols["free_bytes"] = capacity - cols["total_bytes"]
    return cols


# -------------------------------------------------------------------------------------------- transformers


def _transformers_grid(spec: ModelSpec, p: Plan, B, C, stored, device_bytes) -> dict[str, np.ndarray]:
    """Weights once; KV cache, activations and overhead for all points from the array-aware planner parts."""
    parts = _runtime_parts(spec, p, B, C, stored)
    cols = _totals(parts["weights"], parts["kv_cache"], parts["activations"], parts["overhead"], B.size)
    if device_bytes is not None:
        cols["fits"] = cols["total_bytes"] <= device_bytes
        cols["free_bytes"] = device_bytes - cols["total_bytes"]
    return cols


def _runtime_parts(spec: ModelSpec, p: Plan, B, C, stored) -> dict:
    """Group bytes of :func:`estimate` for every (B, C) point.

    ``estimate`` is evaluated once (it validates the plan and gives the weights, which do not vary); the
    KV cache, the activation peak and the overhead come from the same functions estimate is built from
    (:func:`planner.kv_cache.kv_cache_bytes`, :func:`planner.activations.activations_bytes`,
    :data:`planner.overhead.ASSUMPTIONS`), called once with arrays.
    """
    from planner import activations, kv_cache
    from planner.formats import resolve_format

    b0 = estimate(spec, p, stored=stored)
    weights_dtype = resolve_format(spec, p.weights).compute_dtype
    kv = kv_cache.kv_cache_bytes(spec, B, C, p.kv_dtype, weights_dtype=weights_dtype, cache=p.cache,
                                 max_cache_len=C if p.cache == "static" else None, tp=p.tp)
    prompt = None if p.prompt_tokens is None else np.minimum(p.prompt_tokens, C)
    act = activations.activations_bytes(spec, B, C, prompt=prompt, weights_dtype=weights_dtype,
                                        attention=p.attention, mode=p.mode, tp=p.tp, cache=p.cache,
                                        kv_dtype=p.kv_dtype)
    allocated = b0.weights_bytes + kv + act
    return {"weights": b0.weights_bytes, "kv_cache": kv, "activations": act, "overhead": _overhead(p, allocated)}


def _overhead(p: Plan, allocated: np.ndarray) -> np.ndarray:
    """:func:`planner.overhead.overhead_components` summed, for an array of torch-allocated bytes."""
    from planner.overhead import CPU_ASSUMPTIONS, GPU_ASSUMPTIONS

    total = np.zeros(np.shape(allocated), dtype=np.int64)
    overrides = dict(p.overrides)
    for a in CPU_ASSUMPTIONS if p.device == "cpu" else GPU_ASSUMPTIONS:
        if a.tp_only and p.tp <= 1:
            continue
        if a.name in overrides:
            total = total + overrides[a.name]
        elif a.fraction is not None:
            total = total + np.trunc(a.fraction * np.asarray(allocated, dtype=np.float64)).astype(np.int64)
        else:
            total = total + a.default_bytes
    return total
