"""Transient memory of transformers inference: what torch allocates beyond weights and the KV cache.

The peak of ``generate()`` is weights + KV cache + the largest transient, where the candidates are:

* **prefill** (one forward pass over P prompt tokens per sequence, N = B·P tokens), at its worst layer:
  - ``activations/residual``: 4·N·h values stay alive inside a decoder layer (the embedding output
    held by the model's forward, the layer input held by its loop, the residual sum, the normed
    block input), plus the rotary cos/sin tables (2·N·d);
  - ``activations/mlp``: gated MLP (SwiGLU/GeGLU) holds gate-activation, up and their product,
    3·N·I; fused gate_up (Phi-3) 4·N·I; classic fc_in/act (GPT-2, NeoX) 2·N·I; MoE (grouped_mm over
    all T = N·k routed rows): T·(h + 4·I_moe) plus the router logits, or the shared expert's 3·N·I_sh;
  - ``activations/attention``: SDPA / flash attention never materialize S×S: rotated q, k, v and the
    attention output, (2·H + 2·KV)·N·d. Eager attention adds the scores
    B·H·P·P in the compute dtype, their fp32 softmax and the cast back (2·e + 4 bytes each with 16-bit
    weights, as CUDA's half-to-float softmax does; 8 with fp32), the repeat_kv
    copies of K and V (2·B·H·P·d) and the additive mask B·P·P; the softmaxed scores and the mask
    stay alive through the MLP (the decoder layer keeps the returned weights in ``_``). MLA (DeepSeek) decompresses the latent:
    kv_b_proj output N·H·(nope + v) plus the assembled keys N·H·(nope + rope);
  - ``activations/sliding_prefill``: a sliding-window layer keeps ``full[:, :, -W + 1:]``, a *view*, so
    after a prefill longer than the window its storage still holds all P tokens until the first decode
    step (DynamicSlidingWindowLayer.update); the extra (P - W + 1) tokens per sliding layer are live.
  - ``activations/logits``: ``generate()`` computes the last position only (``logits_to_keep=1``):
    B·V in the compute dtype plus the fp32 copy generate() makes (B·V·4). A plain forward
    (mode ``forward``) computes B·P·V.
* **decode** (one token per sequence with C tokens cached): ``activations/cache_growth`` is the
  ``torch.cat`` copy of one layer's K (or V) while the old tensor is still referenced (a quantized
  cache instead dequantizes one layer's whole K and V every step), plus the
  decode-step activations and the logits; MLA decompresses the whole cache every step; eager
  attention copies one layer's K and V to every query head (``repeat_kv``), 2·B·H·C·d.

``e`` is the compute dtype's size. All functions take ``batch``/``context``/``prompt`` as ints or numpy
arrays and broadcast. Under tensor parallelism attention heads and MLP widths are divided by TP, the
residual stream and the logits are not (transformers gathers them).
"""

from __future__ import annotations

import numpy as np

from planner.breakdown import Component
from planner.errors import InputError
from planner.kv_cache import (
    canonical_kv_dtype,
    compute_dtype_bytes,
    kv_heads_per_gpu,
    transformers_cached_heads,
)
from planner.spec import FULL, SLIDING, ModelSpec

ATTENTIONS = ("sdpa", "eager", "flash_attention_2")
#: families whose transformers 5.23 model has ``_supports_sdpa = False`` (Gemma2's logit softcapping,
#: gpt-oss's attention sinks): asking for sdpa loads them with eager attention
NO_SDPA_FAMILIES = ("gemma2", "gpt_oss")


def effective_attention(spec: ModelSpec, attention: str) -> str:
    """The attention implementation transformers actually uses for this model."""
    if attention == "sdpa" and spec.family in NO_SDPA_FAMILIES:
        return "eager"
    return attention
MODES = ("generate", "forward")

_FORMULAS = {
    "residual": "4 x batch x prompt x hidden x e (embeddings, layer input, residual, normed input) + rotary",
    "mlp": "MLP intermediates of the prefill: 3 x batch x prompt x intermediate x e (gated)",
    "attention": "q, k, v, rotary copies and output; eager adds batch x heads x prompt^2 scores",
    "sliding_prefill": "sliding layers' storage still holding the whole prompt until the first decode step",
    "logits": "generate(): batch x vocab x (e + 4) (last position, fp32 copy); forward: batch x prompt x vocab",
    "cache_growth": "torch.cat copy of one layer's K or V when the DynamicCache grows",
    "decode": "one decode step's activations (MLA: the decompressed cache)",
    "attention_decode": "eager decode: repeat_kv copies of one layer's K and V for every query head",
}


def _arr(x, what: str):
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        if a.dtype.kind == "f" and np.all(np.mod(a, 1) == 0):
            a = a.astype(np.int64)
        else:
            raise InputError(f"{what} must be whole numbers, got {x!r}")
    return a.astype(np.int64)


def _mlp_elems_per_token(spec: ModelSpec, tp: int, n_tokens) -> tuple[np.ndarray, str]:
    """Largest MLP transient (elements) over the model's layers for n_tokens tokens, and a label."""
    best = np.zeros(np.shape(n_tokens), dtype=np.int64)
    n = n_tokens
    if "dense" in spec.mlp_types:
        inter = -(-spec.intermediate_size // tp)
        if spec.mlp_gated and spec.fused_gate_up:
            k = 4
        elif spec.mlp_gated:
            k = 3
        else:
            k = 2
        best = np.maximum(best, k * n * inter)
    if spec.moe is not None and "moe" in spec.mlp_types:
        # transformers 5.23 runs the experts with grouped_mm over all routed rows T = N·k at once
        # (integrations/moe.py): gathered inputs T·h, gate_up output T·2I, act(gate) T·I, product T·I
        moe = spec.moe
        routed = n * moe.experts_per_token
        i_moe = -(-moe.expert_intermediate_size // tp)
        router = n * moe.num_experts * 2  # router logits and their softmax
        # a shared expert (Qwen2-MoE, DeepSeek) runs first: its output N·h stays alive meanwhile
        shared_out = n * spec.hidden_size if moe.shared_intermediate_size else 0
        best = np.maximum(best, routed * (spec.hidden_size + 4 * i_moe) + router + shared_out)
        if moe.shared_intermediate_size:
            best = np.maximum(best, n * spec.hidden_size + 3 * n * -(-moe.shared_intermediate_size // tp))
    return best, "mlp"


def _attention_elems(spec: ModelSpec, batch, prompt, attention: str, tp: int, e_bytes: int):
    """(elements in the compute dtype, extra fp32 elements) of the attention transient in prefill."""
    n = batch * prompt
    heads = -(-spec.num_heads // tp)
    kv = kv_heads_per_gpu(spec, tp)
    d = spec.head_dim
    if spec.mla is not None and "mla" in spec.layer_types:
        m = spec.mla
        q = n * heads * m.qk_head_dim
        latent = n * (m.kv_lora_rank + m.qk_rope_head_dim) * 2
        expanded = n * heads * (m.qk_nope_head_dim + m.v_head_dim) + n * heads * m.qk_head_dim
        out = n * heads * m.v_head_dim
        elems = 2 * q + latent + expanded + out
        kv_rep, dk = heads, m.qk_head_dim
    else:
        # rotated q, the output, k and v before the cache copies them; eager has only q at its peak
        elems = heads * n * d if attention == "eager" else (2 * heads + 2 * kv) * n * d
        kv_rep, dk = heads, d
    f32 = np.zeros(np.shape(elems), dtype=np.int64)
    if attention == "eager":
        # scores in the compute dtype, their fp32 softmax, and (for 16-bit) the cast back: e + 4 + e
        # bytes per score; the additive mask batch x prompt^2; repeat_kv's copies of K and V
        # peak of q·kᵀ and its scaled copy (2·e), of the masked copy (2·e) and of the fp32 softmax with
        # the cast back (e + 4 + e for 16-bit; fp32 softmax output is the result itself: e + 4)
        scores = batch * heads * prompt * prompt
        score_bytes = max(2 * e_bytes, 2 * e_bytes + 4 if e_bytes < 4 else e_bytes + 4)
        # one additive mask per attention kind (full, sliding) the model has
        n_masks = max(1, len({t for t in spec.layer_types if t in (FULL, SLIDING)}))
        elems = elems + 2 * batch * kv_rep * prompt * dk + n_masks * batch * prompt * prompt
        f32 = f32 + scores * score_bytes // 4
    return elems, f32


def activation_parts(spec: ModelSpec, batch, context, *, prompt=None, weights_dtype: str = "bfloat16",
                     attention: str = "sdpa", mode: str = "generate", tp: int = 1,
                     cache: str = "dynamic", kv_dtype: str = "auto") -> dict[str, dict[str, np.ndarray]]:
    """Transient bytes per phase: ``{"prefill": {...}, "logits": {...}, "decode": {...}}``.

    Each phase maps component names (``residual``, ``mlp``, ...) to int64 arrays broadcast over
    batch/context/prompt. The peak transient is the phase with the largest sum.
    """
    if attention not in ATTENTIONS:
        raise InputError(f"unknown attention {attention!r}; expected one of: {', '.join(ATTENTIONS)}")
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; expected one of: {', '.join(MODES)}")
    e = compute_dtype_bytes(weights_dtype)
    attention = effective_attention(spec, attention)
    tp = max(int(tp), 1)
    b = _arr(batch, "batch")
    c = _arr(context, "context")
    p = c if prompt is None else np.minimum(_arr(prompt, "prompt"), c)
    b, c, p = np.broadcast_arrays(b, c, p)
    n = b * p
    h, V = spec.hidden_size, spec.vocab_size

    # --- prefill
    # embeddings (held by the model's forward), the layer input (the loop variable), the residual sum
    # and the normed block input; plus the rotary cos/sin tables (batch x prompt x head_dim each)
    residual = 4 * n * h * e + 2 * n * spec.head_dim * e
    mlp, _ = _mlp_elems_per_token(spec, tp, n)
    att, att32 = _attention_elems(spec, b, p, attention, tp, e)
    prefill = {"residual": residual}
    # during attention the residual sum does not exist yet: one hidden-size tensor fewer than in the MLP
    mlp_b, att_b = mlp * e, np.maximum(att * e + att32 * 4 - n * h * e, 0)
    kept = np.zeros(b.shape, dtype=np.int64)
    if attention == "eager":
        # the decoder layer binds the returned attention weights to ``_`` until it returns, so the
        # softmaxed scores (compute dtype) and the additive mask stay alive through the MLP
        heads = -(-spec.num_heads // tp)
        n_masks = max(1, len({t for t in spec.layer_types if t in (FULL, SLIDING)}))
        kept = b * heads * p * p * e + n_masks * b * p * p * e
    mlp_wins = mlp_b + kept >= att_b
    prefill["mlp"] = np.where(mlp_wins, mlp_b, 0)
    prefill["attention"] = np.where(mlp_wins, kept, att_b)
    sliding_extra = np.zeros(b.shape, dtype=np.int64)
    if cache == "dynamic" and spec.sliding_window and spec.sliding_window > 1:
        n_sl = sum(1 for t in spec.layer_types if t == SLIDING)
        heads = max(-(-transformers_cached_heads(spec) // tp), 1)
        kept = spec.sliding_window - 1
        sliding_extra = n_sl * 2 * b * np.maximum(p - kept, 0) * heads * spec.head_dim * e
    prefill["sliding_prefill"] = sliding_extra

    # --- logits (end of the prefill forward)
    if mode == "forward":
        logits = n * V * e + n * h * e
    else:
        logits = b * V * (e + 4) + b * h * e
    logits_phase = {"sliding_prefill": sliding_extra, "logits": logits}

    # --- decode step with the cache at context tokens
    growth = np.zeros(b.shape, dtype=np.int64)
    decode_step = b * (3 * h + 3 * max(spec.intermediate_size, 1)) * e
    if cache == "dynamic":
        heads = max(-(-transformers_cached_heads(spec) // tp), 1)
        if FULL in spec.layer_types:
            growth = np.maximum(growth, b * c * heads * spec.head_dim * e)
        if SLIDING in spec.layer_types and spec.sliding_window:
            growth = np.maximum(growth, b * np.minimum(c, spec.sliding_window) * heads * spec.head_dim * e)
        if "mla" in spec.layer_types and spec.mla is not None:
            growth = np.maximum(growth, b * c * spec.mla.kv_lora_rank * e)
    kv_name = canonical_kv_dtype(kv_dtype, weights_dtype)
    if kv_name in ("int4", "int8", "fp8_e4m3", "fp8_e5m2") and FULL in spec.layer_types:
        # QuantizedCache dequantizes one layer's whole K and V every step (quanto/HQQ: dequantized copies
        # plus the concatenated states returned, 4·e per element; fp8: also an fp32 temporary, 4 + 4·e)
        heads = max(-(-transformers_cached_heads(spec) // tp), 1)
        per_elem = 4 + 4 * e if kv_name.startswith("fp8") else 4 * e
        growth = b * c * heads * spec.head_dim * per_elem
    if "mla" in spec.layer_types and spec.mla is not None:
        m = spec.mla
        heads_q = -(-spec.num_heads // tp)
        decode_step = decode_step + b * c * heads_q * (m.qk_nope_head_dim + m.v_head_dim + m.qk_head_dim) * e
    if mode == "generate":
        dec_logits = b * V * (e + 4)
    else:
        dec_logits = np.zeros(b.shape, dtype=np.int64)
    decode = {"cache_growth": growth, "decode": decode_step, "logits": dec_logits}
    if attention == "eager" and spec.mla is None:
        # eager decode: repeat_kv copies one layer's K and V to all query heads, plus one row of scores;
        # the cat copies are already released by then, so the two peaks do not add up
        heads_q = -(-spec.num_heads // tp)
        held = np.zeros(b.shape, dtype=np.int64)
        if FULL in spec.layer_types:
            held = np.maximum(held, c)
        if SLIDING in spec.layer_types and spec.sliding_window:
            held = np.maximum(held, np.minimum(c, spec.sliding_window))
        eager_dec = 2 * b * heads_q * held * spec.head_dim * e + b * heads_q * held * (2 * e + 4)
        decode["attention"] = eager_dec
        decode["cache_growth"] = np.maximum(growth - eager_dec, 0)
    return {"prefill": prefill, "logits": logits_phase, "decode": decode}


def _phase_totals(parts):
    return {k: sum(v.values()) for k, v in parts.items()}


def activations_bytes(spec: ModelSpec, batch, context, *, prompt=None, weights_dtype: str = "bfloat16",
                      attention: str = "sdpa", mode: str = "generate", tp: int = 1, cache: str = "dynamic",
                      kv_dtype: str = "auto"):
    """Peak transient bytes (the largest phase); int for scalar inputs, int64 array otherwise."""
    scalar = all(np.ndim(x) == 0 for x in (batch, context, prompt if prompt is not None else 0))
    parts = activation_parts(spec, batch, context, prompt=prompt, weights_dtype=weights_dtype,
                             attention=attention, mode=mode, tp=tp, cache=cache, kv_dtype=kv_dtype)
    totals = _phase_totals(parts)
    peak = np.maximum(np.maximum(totals["prefill"], totals["logits"]), totals["decode"])
    return int(peak) if scalar else peak


def activation_components(spec: ModelSpec, plan, weights_dtype: str = "bfloat16") -> tuple[Component, ...]:
    """Named components of the largest transient phase for one Plan (``activations/...``)."""
    return activation_breakdown(spec, plan, weights_dtype)[0]


def activation_breakdown(spec: ModelSpec, plan, weights_dtype: str = "bfloat16") -> tuple[tuple[Component, ...], str]:
    """(components of the largest transient phase, that phase's name) for one Plan."""
    parts = activation_parts(spec, plan.batch, plan.context, prompt=plan.prompt_tokens,
                             weights_dtype=weights_dtype, attention=plan.attention, mode=plan.mode,
                             tp=plan.tp, cache=plan.cache, kv_dtype=plan.kv_dtype)
    totals = {k: int(v) for k, v in _phase_totals(parts).items()}
    phase = max(totals, key=lambda k: totals[k])
    comps = []
    for name, v in parts[phase].items():
        if int(v):
            formula = _FORMULAS["attention_decode" if (phase, name) == ("decode", "attention") else name]
            comps.append(Component(f"activations/{name}", int(v), f"{phase} peak: {formula}", "estimate"))
    return tuple(comps), phase


def peak_phase(spec: ModelSpec, plan, weights_dtype: str = "bfloat16") -> str:
    """Which phase sets the activation peak: ``prefill``, ``logits`` or ``decode``."""
    parts = activation_parts(spec, plan.batch, plan.context, prompt=plan.prompt_tokens,
                             weights_dtype=weights_dtype, attention=plan.attention, mode=plan.mode,
                             tp=plan.tp, cache=plan.cache, kv_dtype=plan.kv_dtype)
    totals = {k: int(v) for k, v in _phase_totals(parts).items()}
    return max(totals, key=lambda k: totals[k])
