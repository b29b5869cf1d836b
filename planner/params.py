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
#: bias    - bias of a Linear (1-D), or GPT-OSS's per-expert biases (2-D): keeps the compute dtype
#: embedding, norm, lm_head - never quantized by bitsandbytes/GPTQ/AWQ
#: expert  - 3-D fused expert weights (num_experts x out x in; GPT-OSS: x in x out, see
#:           MoESpec.experts_in_out), transformers 5.x MoE layout: bare nn.Parameters, not nn.Linear
#: router  - the MoE gate (expert scores): a bare (E, h) nn.Parameter (plus GPT-OSS's (E,) bias)
#: other   - parameters of no module type above: Mamba's A_log, D and conv1d (Jamba), GPT-OSS's
#:           attention sinks. (DeepSeek-V3's e_score_correction_bias is a buffer, not listed.)
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


# Module names per family, as transformers 5.23 names them inside one decoder layer / the base model.
_ATTN = {"gpt2": "attn", "gpt_neox": "attention", "falcon": "self_attention"}
_QKV = {"gpt2": "c_attn", "gpt_neox": "query_key_value", "falcon": "query_key_value"}
_O = {"gpt2": "c_proj", "gpt_neox": "dense", "falcon": "dense", "phi": "dense"}
_MLP_IN_OUT = {"gpt2": ("c_fc", "c_proj"), "starcoder2": ("c_fc", "c_proj"),
               "gpt_neox": ("dense_h_to_4h", "dense_4h_to_h"), "falcon": ("dense_h_to_4h", "dense_4h_to_h"),
               "phi": ("fc1", "fc2")}
_EMBED = {"gpt2": "wte", "gpt_neox": "embed_in", "falcon": "word_embeddings"}
_FINAL_NORM = {"gpt2": "ln_f", "gpt_neox": "final_layer_norm", "falcon": "ln_f", "jamba": "final_layernorm",
               "phi": "final_layernorm"}
_QK_NORM = {"phi": ("q_layernorm", "k_layernorm")}
_MLP = {"jamba": "feed_forward"}
_ROUTER = {"jamba": "router", "gpt_oss": "router"}
#: per-layer norm module -> llama.cpp tensor base name
_NORM_GGUF = {"input_layernorm": "attn_norm", "ln_1": "attn_norm", "ln_attn": "attn_norm",
              "post_attention_layernorm": "ffn_norm", "ln_2": "ffn_norm", "ln_mlp": "attn_norm_2",
              "pre_feedforward_layernorm": "ffn_norm", "post_feedforward_layernorm": "post_ffw_norm",
              "pre_ff_layernorm": "ffn_norm"}


def _norm_names(spec: ModelSpec) -> tuple[str, ...]:
    if spec.norm_names:
        return spec.norm_names
    return ("input_layernorm", "post_attention_layernorm")[: spec.norms_per_layer]


def _norm_gguf(spec: ModelSpec, name: str) -> str:
    # Gemma2/3 and OLMo2 normalize after attention (post_attention_norm), before the residual add;
    # their pre-MLP norm is pre_feedforward_layernorm (Gemma) or none (OLMo2).
    if name == "post_attention_layernorm" and (len(_norm_names(spec)) == 4 or spec.family == "olmo2"):
        return "post_attention_norm"
    return _NORM_GGUF.get(name, name)


@lru_cache(maxsize=256)
def tensors(spec: ModelSpec) -> tuple[TensorInfo, ...]:
    """Every parameter tensor of the transformers model, grouped across layers that hold the same one.

    Names are transformers' own: per-layer tensors relative to the decoder layer
    (``self_attn.q_proj.weight``), the rest relative to the base model (``embed_tokens.weight``) or the
    top model (``lm_head.weight``). Shapes are the parameters' shapes: ``(out, in)`` for ``nn.Linear``,
    ``(in, out)`` for GPT-2's ``Conv1D`` (``spec.conv1d``), ``(experts, out, in)`` for fused experts.
    Tensors with no elements (a zero-width shared expert) are left out.
    """
    h, d, fam = spec.hidden_size, spec.head_dim, spec.family
    q_out, kv_out = spec.num_heads * d, spec.num_kv_heads * d
    L = tuple(range(spec.num_layers))
    # Jamba: attention modules only in attention layers; the others hold a Mamba mixer
    A = _layers(spec, lambda i: spec.layer_types[i] != "mamba")
    mlp = _MLP.get(fam, "mlp")
    out: list[TensorInfo] = []

    def add(name, component, shape, role, gguf, layers=(), split="replicated"):
        shape = tuple(int(s) for s in shape)
        if 0 in shape:  # e.g. a Qwen2-MoE shared expert of width 0: transformers holds an empty tensor
            return
        out.append(TensorInfo(name, component, shape, role, gguf, tuple(layers), split))

    def linear(name, component, out_f, in_f, gguf, layers, split, bias=False, bias_split=None):
        """One nn.Linear (or GPT-2 Conv1D, stored in x out) and its optional bias."""
        if not layers:
            return
        shape = (in_f, out_f) if spec.conv1d else (out_f, in_f)
        add(f"{name}.weight", component, shape, "linear", gguf, layers, split)
        if bias:
            b_split = bias_split or ("column" if split == "column" else "replicated")
            add(f"{name}.bias", component, (out_f,), "bias", f"{gguf}.bias", layers, b_split)

    def norm(name, width, gguf, layers=(), bias=False):
        add(f"{name}.weight", "norms", (width,), "norm", gguf, layers)
        if bias:
            add(f"{name}.bias", "norms", (width,), "norm", f"{gguf}.bias", layers)

    def gated_mlp(prefix, component, width, layers, gguf_suffix="", bias=False):
        """gate/up/down Linears (Llama-style MLP, shared experts)."""
        linear(f"{prefix}.gate_proj", component, width, h, "ffn_gate" + gguf_suffix, layers, "column", bias)
        linear(f"{prefix}.up_proj", component, width, h, "ffn_up" + gguf_suffix, layers, "column", bias)
        linear(f"{prefix}.down_proj", component, h, width, "ffn_down" + gguf_suffix, layers, "row", bias)

    # --- embeddings
    embed = _EMBED.get(fam, "embed_tokens")
    add(f"{embed}.weight", "embeddings", (spec.vocab_size, h), "embedding", "token_embd", split="vocab")
    if spec.learned_positions:  # GPT-2
        add("wpe.weight", "embeddings", (spec.learned_positions, h), "embedding", "position_embd")

    # --- attention
    attn = _ATTN.get(fam, "self_attn")
    if spec.mla is not None:  # DeepSeek-V2/V3 multi-head latent attention
        m = spec.mla
        q_width = spec.num_heads * m.qk_head_dim
        if m.q_lora_rank is None:  # DeepSeek-V2-Lite: a plain q_proj, never with bias
            linear(f"{attn}.q_proj", "attention/qkv", q_width, h, "attn_q", A, "column")
        else:
            linear(f"{attn}.q_a_proj", "attention/qkv", m.q_lora_rank, h, "attn_q_a", A, "replicated",
                   spec.qkv_bias)
            norm(f"{attn}.q_a_layernorm", m.q_lora_rank, "attn_q_a_norm", A)
            linear(f"{attn}.q_b_proj", "attention/qkv", q_width, m.q_lora_rank, "attn_q_b", A, "column")
        linear(f"{attn}.kv_a_proj_with_mqa", "attention/qkv", m.kv_lora_rank + m.qk_rope_head_dim, h,
               "attn_kv_a_mqa", A, "replicated", spec.qkv_bias)
        norm(f"{attn}.kv_a_layernorm", m.kv_lora_rank, "attn_kv_a_norm", A)
        linear(f"{attn}.kv_b_proj", "attention/qkv", spec.num_heads * (m.qk_nope_head_dim + m.v_head_dim),
               m.kv_lora_rank, "attn_kv_b", A, "column")
        linear(f"{attn}.o_proj", "attention/o", h, spec.num_heads * m.v_head_dim, "attn_output", A, "row",
               spec.o_bias)
    else:
        if spec.fused_qkv:  # Phi-3 qkv_proj, GPT-2 c_attn, NeoX/Falcon query_key_value
            linear(f"{attn}.{_QKV.get(fam, 'qkv_proj')}", "attention/qkv", q_out + 2 * kv_out, h, "attn_qkv", A,
                   "column", spec.qkv_bias)
        else:
            for proj, width in (("q", q_out), ("k", kv_out), ("v", kv_out)):
                linear(f"{attn}.{proj}_proj", "attention/qkv", width, h, f"attn_{proj}", A, "column", spec.qkv_bias)
        linear(f"{attn}.{_O.get(fam, 'o_proj')}", "attention/o", h, q_out, "attn_output", A, "row", spec.o_bias)
        if spec.attn_sinks:  # GPT-OSS: a bare (heads,) parameter on the attention module
            add(f"{attn}.sinks", "other", (spec.num_heads,), "other", "attn_sinks", A)
        if spec.qk_norm:
            qn, kn = _QK_NORM.get(fam, ("q_norm", "k_norm"))
            if spec.qk_norm_per_head:  # Qwen3, Gemma3 (head_dim), Phi (hidden // heads, LayerNorm)
                width = spec.qk_norm_width or d
                norm(f"{attn}.{qn}", width, "attn_q_norm", A, spec.norm_bias)
                norm(f"{attn}.{kn}", width, "attn_k_norm", A, spec.norm_bias)
            else:  # OLMo2: over the whole projection
                norm(f"{attn}.{qn}", q_out, "attn_q_norm", A)
                norm(f"{attn}.{kn}", kv_out, "attn_k_norm", A)

    # --- Mamba mixers (Jamba)
    M = _layers(spec, lambda i: spec.layer_types[i] == "mamba")
    if M and spec.mamba is not None:
        mb, di = spec.mamba, spec.mamba.d_inner(h)
        add("mamba.A_log", "mamba", (di, mb.state_size), "other", "ssm_a", M)
        add("mamba.D", "mamba", (di,), "other", "ssm_d", M)
        add("mamba.conv1d.weight", "mamba", (di, 1, mb.conv_kernel), "other", "ssm_conv1d", M)
        if mb.conv_bias:
            add("mamba.conv1d.bias", "mamba", (di,), "bias", "ssm_conv1d.bias", M)
        linear("mamba.in_proj", "mamba", 2 * di, h, "ssm_in", M, "column", mb.proj_bias)
        linear("mamba.x_proj", "mamba", mb.dt_rank + 2 * mb.state_size, di, "ssm_x", M, "row")
        linear("mamba.dt_proj", "mamba", di, mb.dt_rank, "ssm_dt", M, "column", True)
        linear("mamba.out_proj", "mamba", h, di, "ssm_out", M, "row", mb.proj_bias)
        if mb.inner_norms:
            norm("mamba.dt_layernorm", mb.dt_rank, "ssm_dt_norm", M)
            norm("mamba.b_layernorm", mb.state_size, "ssm_b_norm", M)
            norm("mamba.c_layernorm", mb.state_size, "ssm_c_norm", M)

    # --- dense MLP layers
    dense = _layers(spec, lambda i: spec.mlp_types[i] == "dense")
    inter = spec.intermediate_size
    if dense:
        if not spec.mlp_gated:  # GPT-2, NeoX, Falcon, StarCoder2: fc_in -> act -> fc_out
            fc_in, fc_out = _MLP_IN_OUT.get(fam, ("up_proj", "down_proj"))
            linear(f"{mlp}.{fc_in}", "mlp", inter, h, "ffn_up", dense, "column", spec.mlp_bias)
            linear(f"{mlp}.{fc_out}", "mlp", h, inter, "ffn_down", dense, "row", spec.mlp_bias)
        elif spec.fused_gate_up:  # Phi-3; llama.cpp stores it fused as ffn_up
            linear("mlp.gate_up_proj", "mlp", 2 * inter, h, "ffn_up", dense, "column", spec.mlp_bias)
            linear("mlp.down_proj", "mlp", h, inter, "ffn_down", dense, "row", spec.mlp_bias)
        else:
            gated_mlp(mlp, "mlp", inter, dense, bias=spec.mlp_bias)

    # --- MoE layers: router, fused 3-D experts (transformers 5.x), shared experts
    moe_layers = _layers(spec, lambda i: spec.mlp_types[i] == "moe")
    if moe_layers and spec.moe is not None:
        e, ei = spec.moe.num_experts, spec.moe.expert_intermediate_size
        # the router is a bare (E, h) nn.Parameter (TopKRouter), not an nn.Linear
        router = f"{mlp}.{_ROUTER.get(fam, 'gate')}"
        add(f"{router}.weight", "router", (e, h), "router", "ffn_gate_inp", moe_layers)
        if spec.moe.router_linear_bias:  # GPT-OSS
            add(f"{router}.bias", "router", (e,), "router", "ffn_gate_inp.bias", moe_layers)
        # gate and up fused in one (E, 2I, h) parameter; llama.cpp keeps ffn_gate_exps / ffn_up_exps.
        # GPT-OSS stores them (E, in, out): (E, h, 2I) and (E, I, h).
        io = spec.moe.experts_in_out
        add(f"{mlp}.experts.gate_up_proj", "experts", (e, h, 2 * ei) if io else (e, 2 * ei, h), "expert",
            "ffn_up_exps", moe_layers, "expert")
        if spec.moe.expert_bias:
            add(f"{mlp}.experts.gate_up_proj_bias", "experts", (e, 2 * ei), "bias", "ffn_up_exps.bias",
                moe_layers, "expert")
        add(f"{mlp}.experts.down_proj", "experts", (e, ei, h) if io else (e, h, ei), "expert", "ffn_down_exps",
            moe_layers, "expert")
        if spec.moe.expert_bias:
            add(f"{mlp}.experts.down_proj_bias", "experts", (e, h), "bias", "ffn_down_exps.bias", moe_layers,
                "expert")
        si = spec.moe.shared_intermediate_size
        if si:
            prefix = "mlp.shared_experts" if spec.mla is not None else "mlp.shared_expert"  # DeepSeek / Qwen2-MoE
            gated_mlp(prefix, "experts", si, moe_layers, "_shexp", bias=spec.mlp_bias)
        if spec.moe.shared_expert_gate:  # Qwen2-MoE: nn.Linear(h, 1), a real Linear
            linear("mlp.shared_expert_gate", "router", 1, h, "ffn_gate_inp_shexp", moe_layers, "replicated")

    # --- norms in every layer, final norm, output head
    for name in _norm_names(spec):
        norm(name, h, _norm_gguf(spec, name), L, spec.norm_bias)
    norm(_FINAL_NORM.get(fam, "norm"), h, "output_norm", bias=spec.norm_bias)
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


def active_parameter_count(spec: ModelSpec) -> int:
    """Parameters used per token: everything except the routed experts a token is not sent to.

    Routed expert tensors count ``experts_per_token / num_experts`` of their elements; shared experts,
    routers, attention, embeddings and the output head count fully. Equals :func:`parameter_count` for
    dense models.
    """
    total = 0
    for t in tensors(spec):
        if t.role == "expert" and spec.moe is not None and spec.moe.num_experts:
            total += t.numel_each // spec.moe.num_experts * spec.moe.experts_per_token * t.count
        else:
            total += t.numel
    return total
