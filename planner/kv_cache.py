"""KV cache bytes, with transformers' cache semantics (transformers 5.23 ``cache_utils.py``).

Notation: B batch, C tokens processed per sequence (``context``), KV key/value heads, d head_dim.

* Full-attention layers (``DynamicLayer``) hold all C tokens: 2 · B · C · KV · d elements.
* Sliding-window layers (``DynamicSlidingWindowLayer``) keep ``full_states[:, :, -W + 1:]`` after every
  update, i.e. min(C, W - 1) tokens, whatever the prefill/decode split (a prefill longer than the
  window is cut back to W - 1 at once). With W = 1 the slice ``[-0:]`` keeps everything.
* DeepSeek MLA: transformers 5.23 caches the compressed latent, not per-head K/V: keys are
  ``kv_nope`` [B, 1, C, kv_lora_rank] and values ``k_rot`` [B, 1, C, qk_rope_head_dim]
  (``DeepseekV3Attention.forward`` calls ``past_key_values.update`` before ``expand_kv``). vLLM and
  SGLang cache the same latent. The latent is not sharded by tensor parallelism.
* Mamba layers (Jamba) hold a fixed state per sequence in a ``LinearAttentionLayer``: the conv state
  [B, d_inner, conv_kernel] in the compute dtype and the SSM state [B, d_inner, state_size] in fp32.
* ``StaticCache`` preallocates ``max_cache_len`` tokens on full layers and min(W, max_cache_len) on
  sliding layers (``StaticSlidingWindowLayer``: W, not W - 1).
* KV dtypes: ``auto`` is the weights' compute dtype. ``fp8_e4m3``: ``QuantizedCache(backend="fp8")``
  stores float8_e4m3fn elements and one fp32 per-tensor scale for K and one for V per layer.
  ``int4``/``int8``: ``QuantizedCache`` with the quanto backend for int4 (transformers' default
  backend; quanto supports 2 and 4 bits only) and the HQQ backend for int8. Tokens are re-quantized in
  bulk whenever the full-precision residual reaches ``residual_length`` (128), so after a prompt of P
  tokens and C - P decode steps, (C - P) mod 128 tokens stay in the compute dtype. Quantized codes are
  grouped ``q_group_size`` (64) elements along the flattened tensor (axis 0); quanto packs the
  (groups, 64) uint8 codes two rows per byte (ceil(groups / 2) x 64 bytes), HQQ 8-bit stores one byte
  per element; each group has one scale and one zero-point in the compute dtype. Checked against both
  libraries (optimum-quanto 0.2.7, hqq 0.2.8). QuantizedCache supports full-attention layers only.

Every function accepts ``batch`` and ``context`` as ints or numpy arrays and broadcasts (pvlib style):
the same code serves one slider and a 100,000-point sweep.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from planner.breakdown import Component
from planner.errors import InputError
from planner.spec import FULL, SLIDING, ModelSpec

#: accepted KV-cache dtype names (llama.cpp's q8_0/q4_0 are handled by the llama.cpp engine)
KV_DTYPES = ("auto", "fp32", "fp16", "bf16", "fp8_e4m3", "fp8_e5m2", "int8", "int4")
#: alias -> canonical name
_KV_ALIASES = {
    "float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16",
    "fp8": "fp8_e4m3", "float8_e4m3fn": "fp8_e4m3", "fp8_e4m3fn": "fp8_e4m3", "float8_e5m2": "fp8_e5m2",
}
#: layer kinds that hold a KV cache
KV_KINDS = (FULL, SLIDING, "mla")

_FLOAT_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8_e4m3": 1, "fp8_e5m2": 1}
_DTYPE_TO_KV = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16",
                "fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}

#: transformers QuantizedCache defaults (cache_utils.QuantizedLayer.__init__)
QUANT_RESIDUAL_LENGTH = 128
QUANT_GROUP_SIZE = 64
_QUANT_BITS = {"int8": 8, "int4": 4}
#: fp8 QuantizedCache: one fp32 scale for K and one for V, per layer
_FP8_SCALE_BYTES = 4


def canonical_kv_dtype(kv_dtype: str, weights_dtype: str = "bfloat16") -> str:
    """Resolve aliases and ``auto`` (the weights' compute dtype) to one of KV_DTYPES (never ``auto``)."""
    if not isinstance(kv_dtype, str):
        raise InputError(f"KV dtype must be a name, got {kv_dtype!r}")
    name = kv_dtype.strip().lower()
    name = _KV_ALIASES.get(name, name)
    if name == "auto":
        w = str(weights_dtype).strip().lower().removeprefix("torch.")
        if w not in _DTYPE_TO_KV:
            raise InputError(f"weights compute dtype {weights_dtype!r} is not one of float32, float16, bfloat16")
        return _DTYPE_TO_KV[w]
    if name not in KV_DTYPES:
        raise InputError(f"unknown KV dtype {kv_dtype!r}; expected one of: {', '.join(KV_DTYPES)}")
    return name


def compute_dtype_bytes(weights_dtype: str) -> int:
    """Bytes of one element of the compute dtype (what full-precision activations and residuals use)."""
    return _FLOAT_BYTES[canonical_kv_dtype("auto", weights_dtype)]


def kv_heads_per_gpu(spec: ModelSpec, tp: int = 1) -> int:
    """Key/value heads one GPU holds under tensor parallelism: max(ceil(KV / TP), 1)."""
    return max(-(-spec.num_kv_heads // max(int(tp), 1)), 1)


def transformers_cached_heads(spec: ModelSpec) -> int:
    """K/V heads transformers' cache holds per layer (before tensor parallelism).

    Falcon with ``new_decoder_architecture`` (40B/180B, num_kv_heads > 1) broadcasts its K/V groups to
    all attention heads before ``layer_past.update`` (modeling_falcon.py: ``num_kv_heads = self.num_heads
    if self.new_decoder_architecture``), so transformers caches num_heads heads; vLLM caches the groups.
    """
    if spec.family == "falcon" and spec.num_kv_heads > 1:
        return spec.num_heads
    return spec.num_kv_heads


@lru_cache(maxsize=512)
def _per_token_elems(spec: ModelSpec, tp: int, transformers_layout: bool = False) -> dict[str, int]:
    """Cached elements per token per sequence, summed over the layers of each kind (K and V together)."""
    out = {k: 0 for k in KV_KINDS}
    heads = transformers_cached_heads(spec) if transformers_layout else spec.num_kv_heads
    kv = max(-(-heads // max(int(tp), 1)), 1)
    for kind in spec.layer_types:
        if kind in (FULL, SLIDING):
            out[kind] += 2 * kv * spec.head_dim
        elif kind == "mla":
            if spec.mla is None:
                raise InputError("an 'mla' layer needs the model's MLA dimensions (kv_lora_rank ...)")
            out["mla"] += spec.mla.kv_lora_rank + spec.mla.qk_rope_head_dim
    return out


def kv_bytes_per_token(spec: ModelSpec, kv_dtype: str = "auto", *, weights_dtype: str = "bfloat16",
                       tp: int = 1) -> dict[str, int]:
    """Bytes per token per sequence for each layer kind, summed over the layers of that kind.

    Keys: ``full_attention``, ``sliding_attention``, ``mla`` (only kinds the model has). For int8/int4
    this is the packed data only (bits/8 per element, rounded up), without group scales; engines use it
    for page arithmetic, so the heads are the model's KV heads (not transformers' Falcon broadcast).
    """
    name = canonical_kv_dtype(kv_dtype, weights_dtype)
    elems = _per_token_elems(spec, tp)
    out = {}
    for kind, n in elems.items():
        if kind not in spec.layer_types:
            continue
        if name in _QUANT_BITS:
            out[kind] = -(-n * _QUANT_BITS[name] // 8)
        else:
            out[kind] = n * _FLOAT_BYTES[name]
    return out


def _as_int_array(x, what: str):
    a = np.asarray(x)
    if a.dtype.kind not in "iu" and not (a.dtype.kind == "f" and np.all(np.mod(a, 1) == 0)):
        raise InputError(f"{what} must be whole numbers, got {x!r}")
    a = a.astype(np.int64)
    if np.any(a < 1):
        raise InputError(f"{what} must be at least 1")
    return a


def _ret(x, scalar: bool):
    return int(x) if scalar else x


def tokens_held(spec: ModelSpec, context, kind: str, *, cache: str = "dynamic", max_cache_len=None):
    """Tokens one layer of ``kind`` holds per sequence after ``context`` tokens (int or array)."""
    c = np.asarray(context, dtype=np.int64)
    if cache == "static":
        m = c if max_cache_len is None else np.broadcast_to(np.asarray(max_cache_len, dtype=np.int64), c.shape)
        if kind == SLIDING and spec.sliding_window:
            return np.minimum(m, spec.sliding_window)
        return m
    if cache != "dynamic":
        raise InputError(f"unknown cache {cache!r}; expected dynamic or static")
    if kind == SLIDING and spec.sliding_window and spec.sliding_window > 1:
        return np.minimum(c, spec.sliding_window - 1)
    return c


@lru_cache(maxsize=512)
def _layer_counts(spec: ModelSpec) -> dict[str, int]:
    return {k: sum(1 for t in spec.layer_types if t == k) for k in KV_KINDS}


def kv_cache_parts(spec: ModelSpec, batch, context, kv_dtype: str = "auto", *, weights_dtype: str = "bfloat16",
                   cache: str = "dynamic", max_cache_len=None, tp: int = 1, prompt=None) -> dict[str, np.ndarray]:
    """Bytes per component (``full``, ``sliding``, ``mla``, ``quant_state``) as int64 arrays.

    ``prompt``: tokens of the first forward pass (None: the whole context); it only matters for the
    int4/int8 quantized caches, whose full-precision residual depends on how many decode steps followed.
    """
    name = canonical_kv_dtype(kv_dtype, weights_dtype)
    b = _as_int_array(batch, "batch")
    c = _as_int_array(context, "context")
    b, c = np.broadcast_arrays(b, c)
    elems = _per_token_elems(spec, tp, transformers_layout=True)
    counts = _layer_counts(spec)
    parts: dict[str, np.ndarray] = {}
    quantized = name in _QUANT_BITS or name.startswith("fp8")
    n_mamba = sum(1 for t in spec.layer_types if t == "mamba")
    if quantized and (counts[SLIDING] or counts["mla"] or n_mamba):
        raise InputError(
            f"transformers' QuantizedCache (KV dtype {name}) supports only full-attention layers; this model has "
            "sliding-window or MLA layers. Use KV dtype auto/fp16/bf16/fp32, or the vllm engine."
        )
    if quantized and cache == "static":
        raise InputError("a quantized KV dtype uses transformers' QuantizedCache, which is dynamic; use --cache dynamic")
    zero = np.zeros(b.shape, dtype=np.int64)
    mamba = getattr(spec, "mamba", None)
    if n_mamba and mamba is not None:
        # LinearAttentionLayer: conv state [B, d_inner, conv_kernel] in the compute dtype and the SSM
        # (recurrent) state [B, d_inner, state_size] in fp32, whatever the context
        d_inner = mamba.d_inner(spec.hidden_size)
        per_seq = d_inner * (mamba.conv_kernel * compute_dtype_bytes(weights_dtype) + mamba.state_size * 4)
        parts["mamba_state"] = n_mamba * b * per_seq + zero
    if name in _FLOAT_BYTES and not name.startswith("fp8"):
        eb = _FLOAT_BYTES[name]
        for kind, label in ((FULL, "full"), (SLIDING, "sliding"), ("mla", "mla")):
            if counts[kind]:
                held = tokens_held(spec, c, kind, cache=cache, max_cache_len=max_cache_len)
                parts[label] = b * held * elems[kind] * eb
        return parts
    if name.startswith("fp8"):
        parts["full"] = b * c * elems[FULL] * 1
        parts["quant_state"] = zero + 2 * counts[FULL] * _FP8_SCALE_BYTES
        return parts
    # int8 / int4 QuantizedCache
    bits = _QUANT_BITS[name]
    rb = compute_dtype_bytes(weights_dtype)
    p = c if prompt is None else np.minimum(_as_int_array(prompt, "prompt"), c)
    residual = (c - p) % QUANT_RESIDUAL_LENGTH
    quant_tokens = c - residual
    per_layer_elems = elems[FULL] // max(counts[FULL], 1) // 2  # K (or V) elements per token per layer
    n = b * quant_tokens * per_layer_elems  # elements of one quantized K (or V) tensor
    groups = -(-n // QUANT_GROUP_SIZE)
    if bits == 4:
        # quanto packs the (groups, group_size) uint8 codes two rows per byte: ceil(groups / 2) rows
        data = -(-groups // 2) * QUANT_GROUP_SIZE
    else:
        # HQQ 8-bit: one uint8 per element
        data = n
    L = counts[FULL]
    parts["full"] = 2 * L * (data + b * residual * per_layer_elems * rb)
    parts["quant_state"] = 2 * L * groups * 2 * rb  # scale + zero-point per group, compute dtype
    return parts


def kv_cache_bytes(spec: ModelSpec, batch, context, kv_dtype: str = "auto", *, weights_dtype: str = "bfloat16",
                   cache: str = "dynamic", max_cache_len=None, tp: int = 1, prompt=None):
    """Bytes the transformers cache holds after ``context`` tokens per sequence, for ``batch`` sequences.

    ``batch``, ``context``: ints or numpy arrays (broadcast) -> int, or an int64 array. Per GPU when tp > 1.
    """
    scalar = np.ndim(batch) == 0 and np.ndim(context) == 0
    parts = kv_cache_parts(spec, batch, context, kv_dtype, weights_dtype=weights_dtype, cache=cache,
                           max_cache_len=max_cache_len, tp=tp, prompt=prompt)
    b = np.broadcast_arrays(np.asarray(batch), np.asarray(context))[0]
    total = np.zeros(b.shape, dtype=np.int64)
    for v in parts.values():
        total = total + v
    return _ret(total, scalar)


_FORMULAS = {
    "full": "2 x batch x context x kv_heads x head_dim x bytes, summed over full-attention layers",
    "sliding": "2 x batch x min(context, window - 1) x kv_heads x head_dim x bytes, over sliding layers",
    "mla": "batch x context x (kv_lora_rank + qk_rope_head_dim) x bytes, over MLA layers (latent)",
    "quant_state": "quantized-cache scales (and zero-points) stored beside the packed K/V",
    "mamba_state": "batch x d_inner x (conv_kernel x e + state_size x 4) per Mamba layer, any context",
}


def kv_components(spec: ModelSpec, plan, weights_dtype: str = "bfloat16") -> tuple[Component, ...]:
    """``kv_cache/full``, ``kv_cache/sliding``, ``kv_cache/mla``, ``kv_cache/quant_state`` for a Plan."""
    name = canonical_kv_dtype(plan.kv_dtype, weights_dtype)
    max_len = plan.max_cache_len if plan.cache == "static" else None
    if plan.cache == "static" and max_len is None:
        max_len = plan.context
    parts = kv_cache_parts(spec, plan.batch, plan.context, name, weights_dtype=weights_dtype, cache=plan.cache,
                           max_cache_len=max_len, tp=plan.tp, prompt=plan.prompt_tokens)
    comps = []
    for label, v in parts.items():
        formula = _FORMULAS[label]
        if plan.cache == "static" and label != "quant_state":
            formula = formula.replace("context", f"max_cache_len ({max_len})").replace("window - 1", "window")
        comps.append(Component(f"kv_cache/{label}", int(v), f"{formula}; {name}"))
    return tuple(comps)


def describe_kv(spec: ModelSpec, plan, weights_dtype: str = "bfloat16") -> list[str]:
    """Assumption lines explaining the cache model for this plan."""
    name = canonical_kv_dtype(plan.kv_dtype, weights_dtype)
    out = []
    cls = "StaticCache" if plan.cache == "static" else "DynamicCache"
    if name in _QUANT_BITS or name.startswith("fp8"):
        cls = "QuantizedCache"
    out.append(f"KV cache: transformers {cls}, {name} elements")
    if spec.n_sliding_layers and spec.sliding_window:
        kept = spec.sliding_window if plan.cache == "static" else spec.sliding_window - 1
        out.append(f"KV cache: {spec.n_sliding_layers} sliding-window layers keep {kept} tokens (window {spec.sliding_window})")
    if "mla" in spec.layer_types:
        out.append("KV cache: MLA layers cache the compressed latent (kv_lora_rank + qk_rope_head_dim per token)")
    if name.startswith("fp8"):
        out.append("KV cache: QuantizedCache(backend='fp8'): float8_e4m3fn elements and one fp32 scale per "
                   "layer for K and for V" + ("; e5m2 is sized the same (1 byte)" if name == "fp8_e5m2" else ""))
    if name in _QUANT_BITS:
        backend = "quanto" if name == "int4" else "HQQ"
        out.append(f"KV cache: QuantizedCache({backend}), {QUANT_GROUP_SIZE}-element groups with a scale and "
                   f"zero-point each, {QUANT_RESIDUAL_LENGTH}-token full-precision residual")
    if plan.tp > 1 and (spec.num_kv_heads % plan.tp):
        out.append(f"KV cache: {spec.num_kv_heads} KV heads over TP {plan.tp}: "
                   f"{kv_heads_per_gpu(spec, plan.tp)} per GPU (replicated)")
    return out
