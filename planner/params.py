"""Exact tensor inventory and parameter counts.

:func:`tensors` lists every weight tensor the transformers model built from the same config holds, in
groups (one :class:`TensorInfo` per distinct tensor, with the layers it appears in), so that a 671 B
MoE model is a few dozen entries, not forty thousand. Everything downstream (parameter counts, bytes per
weight format, GGUF mixes, tensor-parallel shards) is computed from this one list.

Ground truth: ``sum(p.numel() for p in model.parameters())`` of the transformers model on the ``meta``
device (tests/test_params_meta.py), tied embeddings counted once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import prod

from planner.spec import ModelSpec

#: Roles decide how weight formats treat a tensor.
#: linear  - 2-D weight of an nn.Linear (out x in) or GPT-2 Conv1D (in x out): quantizable
#: bias    - 1-D bias of a Linear: keeps the compute dtype
#: embedding, norm, lm_head - never quantized by bitsandbytes/GPTQ/AWQ
#: expert  - 3-D fused expert weights (num_experts x out x in), transformers 5.x MoE layout
#: router  - the MoE gate (expert scores)
#: other   - anything else (e.g. DeepSeek-V3's e_score_correction_bias)
ROLES = ("linear", "bias", "embedding", "norm", "lm_head", "expert", "router", "other")


@dataclass(frozen=True)
class TensorInfo:
    """One distinct weight tensor, possibly repeated across layers.

    ``component`` is its slash-path under ``weights/`` (``attention/qkv``, ``mlp``, ``experts`` ...).
    ``gguf`` is llama.cpp's tensor base name (``attn_q``, ``ffn_down``, ``token_embd``, ``output`` ...),
    used for GGUF type mixes. ``layers`` lists the decoder layers it appears in (empty: not per layer).
    ``split`` says how tensor parallelism shards it: ``column`` (output dim), ``row`` (input dim),
    ``vocab`` (embedding rows), ``expert`` (leading expert dim) or ``replicated``.
    """

    name: str
    component: str
    shape: tuple[int, ...]
    role: str
    gguf: str
    layers: tuple[int, ...] = ()
    split: str = "replicated"

    @property
    def numel_each(self) -> int:
        return prod(self.shape)

    @property
    def count(self) -> int:
        """How many copies of this tensor the model holds (one per listed layer, else one)."""
        return max(1, len(self.layers))

    @property
    def numel(self) -> int:
        return self.numel_each * self.count


def _layers(spec: ModelSpec, pred) -> tuple[int, ...]:
    return tuple(i for i in range(spec.num_layers) if pred(i))


@lru_cache(maxsize=256)
def tensors(spec: ModelSpec) -> tuple[TensorInfo, ...]:
    """Every weight tensor of the model, grouped across identical layers."""
    h, d = spec.hidden_size, spec.head_dim
    q_out, kv_out = spec.num_heads * d, spec.num_kv_heads * d
    all_layers = tuple(range(spec.num_layers))
    out: list[TensorInfo] = []

    def add(name, component, shape, role, gguf, layers=(), split="replicated"):
        if layers is not None and (layers == () or len(layers) > 0):
            out.append(TensorInfo(name, component, tuple(int(s) for s in shape), role, gguf, tuple(layers), split))

    add("embed_tokens.weight", "embeddings", (spec.vocab_size, h), "embedding", "token_embd", split="vocab")
    if spec.learned_positions:
        add("wpe.weight", "embeddings", (spec.learned_positions, h), "embedding", "position_embd")

    L = all_layers
    # attention
    if spec.fused_qkv:
        add("self_attn.qkv_proj.weight", "attention/qkv", (q_out + 2 * kv_out, h), "linear", "attn_qkv", L, "column")
        if spec.qkv_bias:
            add("self_attn.qkv_proj.bias", "attention/qkv", (q_out + 2 * kv_out,), "bias", "attn_qkv.bias", L, "column")
    else:
        for proj, width, g in (("q", q_out, "attn_q"), ("k", kv_out, "attn_k"), ("v", kv_out, "attn_v")):
            add(f"self_attn.{proj}_proj.weight", "attention/qkv", (width, h), "linear", g, L, "column")
            if spec.qkv_bias:
                add(f"self_attn.{proj}_proj.bias", "attention/qkv", (width,), "bias", g + ".bias", L, "column")
    add("self_attn.o_proj.weight", "attention/o", (h, q_out), "linear", "attn_output", L, "row")
    if spec.o_bias:
        add("self_attn.o_proj.bias", "attention/o", (h,), "bias", "attn_output.bias", L)
    if spec.qk_norm:
        add("self_attn.q_norm.weight", "norms", (d,), "norm", "attn_q_norm", L)
        add("self_attn.k_norm.weight", "norms", (d,), "norm", "attn_k_norm", L)

    # MLP (dense layers)
    dense = _layers(spec, lambda i: spec.mlp_types[i] == "dense")
    if dense:
        inter = spec.intermediate_size
        if spec.mlp_gated and spec.fused_gate_up:
            add("mlp.gate_up_proj.weight", "mlp", (2 * inter, h), "linear", "ffn_up", dense, "column")
        elif spec.mlp_gated:
            add("mlp.gate_proj.weight", "mlp", (inter, h), "linear", "ffn_gate", dense, "column")
            add("mlp.up_proj.weight", "mlp", (inter, h), "linear", "ffn_up", dense, "column")
        else:
            add("mlp.up_proj.weight", "mlp", (inter, h), "linear", "ffn_up", dense, "column")
        if spec.mlp_bias:
            n_up = 2 if spec.mlp_gated else 1
            for j in range(n_up):
                add(f"mlp.up_proj.bias{j}", "mlp", (inter,), "bias", "ffn_up.bias", dense, "column")
        add("mlp.down_proj.weight", "mlp", (h, inter), "linear", "ffn_down", dense, "row")
        if spec.mlp_bias:
            add("mlp.down_proj.bias", "mlp", (h,), "bias", "ffn_down.bias", dense)

    # norms per layer (input/post-attention, Gemma2/3 also pre/post feed-forward)
    for j in range(spec.norms_per_layer):
        add(f"norm{j}.weight", "norms", (h,), "norm", "attn_norm" if j == 0 else "ffn_norm", L)
        if spec.norm_bias:
            add(f"norm{j}.bias", "norms", (h,), "norm", "attn_norm.bias" if j == 0 else "ffn_norm.bias", L)

    add("norm.weight", "norms", (h,), "norm", "output_norm")
    if spec.norm_bias:
        add("norm.bias", "norms", (h,), "norm", "output_norm.bias")
    if not spec.tie_word_embeddings:
        add("lm_head.weight", "lm_head", (spec.vocab_size, h), "lm_head", "output", split="vocab")
    if spec.lm_head_bias:
        add("lm_head.bias", "lm_head", (spec.vocab_size,), "bias", "output.bias", split="vocab")
    return tuple(out)


def parameter_count(spec: ModelSpec) -> int:
    """Exact number of parameters, tied embeddings counted once."""
    return sum(t.numel for t in tensors(spec))


def parameter_components(spec: ModelSpec) -> dict[str, int]:
    """Parameters per slash-path component (``attention/qkv``, ``mlp``, ``norms`` ...), in model order."""
    comps: dict[str, int] = {}
    for t in tensors(spec):
        comps[t.component] = comps.get(t.component, 0) + t.numel
    return comps
